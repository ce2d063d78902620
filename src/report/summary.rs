//! Exchange summaries over every exchange of an input, listed or not, in
//! bounded memory: per protocol, the count and totals exactly, and the
//! distribution of wire bytes, cost and payload per exchange exactly up to
//! `EXACT_VALUES` values, past that in a log-linear bucket sketch (HDR
//! histogram style) whose quantiles are within `SKETCH_ACCURACY` of the
//! true value (relative).
//!
//! Both forms merge by adding counts, so the result depends only on the
//! values seen, never on how flows were spread over threads.

use crate::ledger::exchange::CostBytes;
use crate::vocab::Proto;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Values kept exactly before a distribution turns into a sketch.
pub const EXACT_VALUES: usize = 4096;

/// Relative accuracy of a sketched quantile (half a bucket's width).
pub const SKETCH_ACCURACY: f64 = 0.004;

/// One exchange's figures, for the summaries.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ExchangeFigures {
    pub kind: Proto,
    pub wire_bytes: u64,
    pub payload_bytes: u64,
    /// Wire bytes plus its share of its connection's setup.
    pub cost_bytes: f64,
}

/// A distribution of non-negative values: exact while small, then a sketch.
#[derive(Clone, Debug)]
pub enum Quantiles {
    Exact(Vec<f64>),
    /// Counts by bucket (`bucket`: an array, one add per value), from
    /// bucket `first` on: only the octaves the values span are held (128
    /// buckets each), not every octave from 2^-20 up; zero (and below)
    /// counts apart.
    Sketch {
        zeros: u64,
        first: usize,
        buckets: Vec<u64>,
    },
}

impl Default for Quantiles {
    fn default() -> Self {
        Quantiles::Exact(Vec::new())
    }
}

/// Mantissa bits a bucket keeps: buckets are 2^-7 wide relative to their
/// value, so the value in the middle is within 2^-8 (0.39%) of every value
/// in it. Found from the float's bits: no logarithm per value.
const MANTISSA_BITS: u32 = 7;

/// The lowest bucket's exponent: 2^-20 (values below it count there).
const FIRST_EXPONENT: u64 = 1023 - 20;

fn bucket(v: f64) -> usize {
    let bits = v.to_bits() >> (52 - MANTISSA_BITS);
    bits.saturating_sub(FIRST_EXPONENT << MANTISSA_BITS) as usize
}

/// The value in the middle of a bucket.
fn bucket_value(at: usize) -> f64 {
    let low = f64::from_bits(((at as u64) + (FIRST_EXPONENT << MANTISSA_BITS)) << (52 - MANTISSA_BITS));
    low * (1.0 + 0.5 / f64::from(1u32 << MANTISSA_BITS))
}

/// Grows a sketch's held buckets (`buckets` from bucket `first`) to cover
/// buckets `lo..hi`, and returns them.
fn hold<'a>(first: &mut usize, buckets: &'a mut Vec<u64>, lo: usize, hi: usize) -> &'a mut Vec<u64> {
    if buckets.is_empty() {
        *first = lo;
    } else if lo < *first {
        let mut grown = vec![0; *first - lo];
        grown.append(buckets);
        *buckets = grown;
        *first = lo;
    }
    if buckets.len() < hi - *first {
        buckets.resize(hi - *first, 0);
    }
    buckets
}

impl Quantiles {
    pub fn add(&mut self, v: f64) {
        self.add_n(v, 1);
    }

    /// `n` values `v`: what `n` calls of `add` leave (a distribution turns
    /// into a sketch when it would hold more than `EXACT_VALUES` values,
    /// and a sketch counts each value in its bucket, so when it turns
    /// changes nothing).
    pub fn add_n(&mut self, v: f64, n: u64) {
        let v = if v.is_finite() { v } else { 0.0 };
        match self {
            Quantiles::Exact(values) => {
                if (values.len() as u64).saturating_add(n) > EXACT_VALUES as u64 {
                    self.make_sketch();
                    self.add_n(v, n);
                } else {
                    // No more than `EXACT_VALUES`, by the test above.
                    values.extend(std::iter::repeat_n(v, n as usize));
                }
            }
            Quantiles::Sketch { zeros, first, buckets } => {
                if v <= 0.0 {
                    *zeros += n;
                } else {
                    let at = bucket(v);
                    if let Some(c) = hold(first, buckets, at, at + 1).get_mut(at - *first) {
                        *c += n;
                    }
                }
            }
        }
    }

    fn make_sketch(&mut self) {
        if let Quantiles::Exact(values) = self {
            let values = std::mem::take(values);
            *self = Quantiles::Sketch { zeros: 0, first: 0, buckets: Vec::new() };
            for v in values {
                self.add(v);
            }
        }
    }

    pub fn count(&self) -> u64 {
        match self {
            Quantiles::Exact(v) => v.len() as u64,
            Quantiles::Sketch { zeros, buckets, .. } => zeros + buckets.iter().sum::<u64>(),
        }
    }

    pub fn merge(&mut self, o: &Quantiles) {
        match o {
            Quantiles::Exact(values) if matches!(self, Quantiles::Exact(_)) || values.len() < 64 => {
                for &v in values {
                    self.add(v);
                }
            }
            _ => {
                self.make_sketch();
                let mut other = o.clone();
                other.make_sketch();
                if let (
                    Quantiles::Sketch { zeros, first, buckets },
                    Quantiles::Sketch { zeros: oz, first: of, buckets: ob },
                ) = (self, other)
                {
                    *zeros += oz;
                    if !ob.is_empty() {
                        let held = hold(first, buckets, of, of + ob.len());
                        let skip = of - *first;
                        for (c, n) in held.iter_mut().skip(skip).zip(ob) {
                            *c += n;
                        }
                    }
                }
            }
        }
    }

    /// The `q` quantile (0 to 1): for an exact distribution the median is
    /// the mean of the two middle values when their number is even, as
    /// `stats::median` computes it; other quantiles are the nearest rank.
    pub fn quantile(&self, q: f64) -> f64 {
        match self {
            Quantiles::Exact(values) => {
                if values.is_empty() {
                    return 0.0;
                }
                let mut v = values.clone();
                v.sort_by(f64::total_cmp);
                if q == 0.5 {
                    return crate::stats::median(&mut v);
                }
                let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
                v.get(rank - 1).copied().unwrap_or(0.0)
            }
            Quantiles::Sketch { zeros, first, buckets } => {
                let n = self.count();
                if n == 0 {
                    return 0.0;
                }
                let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
                if rank <= *zeros {
                    return 0.0;
                }
                let mut seen = *zeros;
                for (at, &c) in buckets.iter().enumerate() {
                    seen += c;
                    if seen >= rank {
                        return bucket_value(first + at);
                    }
                }
                buckets.len().checked_sub(1).map_or(0.0, |at| bucket_value(first + at))
            }
        }
    }

    pub fn is_exact(&self) -> bool {
        matches!(self, Quantiles::Exact(_))
    }

    /// The `q` quantile of whole numbers (byte counts): a sketched one
    /// rounded to the nearest whole number, as every value was one.
    pub fn whole_quantile(&self, q: f64) -> f64 {
        let v = self.quantile(q);
        if self.is_exact() { v } else { v.round() }
    }
}

/// Every exchange of one kind, summarised as they come.
#[derive(Clone, Debug, Default)]
pub struct KindSummary {
    pub wire: Quantiles,
    pub cost: Quantiles,
    pub payload: Quantiles,
    /// In units of 2^-20 bytes: added as integers, so the total does not
    /// depend on the order exchanges came in (threads).
    pub total_cost_fixed: u128,
    pub total_payload: u64,
    /// Every exchange's bytes by what they were for, summed.
    pub total_bytes: CostBytes,
}

const FIXED_ONE: f64 = (1u64 << 20) as f64;

impl KindSummary {
    /// Every exchange's cost (wire bytes and setup share), summed.
    pub fn total_cost(&self) -> f64 {
        self.total_cost_fixed as f64 / FIXED_ONE
    }
}

/// Every exchange of an input, by kind.
#[derive(Clone, Debug, Default)]
pub struct ExchangeSummaries {
    pub by_kind: BTreeMap<Proto, KindSummary>,
}

impl ExchangeSummaries {
    /// An exchange's bytes by what they were for (from its facts: every
    /// exchange has its figures and its facts once each).
    pub fn add_bytes(&mut self, kind: Proto, bytes: &CostBytes) {
        self.by_kind.entry(kind).or_default().total_bytes.merge(bytes);
    }

    /// `n` exchanges of the same figures (a flow hands those of its
    /// exchanges that match counted together: two an exchange on the
    /// bench capture), added at once.
    pub fn add_many(&mut self, x: &ExchangeFigures, n: u32) {
        if n == 0 {
            return;
        }
        let k = self.by_kind.entry(x.kind).or_default();
        k.wire.add_n(x.wire_bytes as f64, n.into());
        k.cost.add_n(x.cost_bytes, n.into());
        k.payload.add_n(x.payload_bytes as f64, n.into());
        k.total_cost_fixed += (x.cost_bytes.max(0.0) * FIXED_ONE).round() as u128 * u128::from(n);
        k.total_payload += x.payload_bytes * u64::from(n);
    }

    pub fn merge(&mut self, o: &ExchangeSummaries) {
        for (kind, s) in &o.by_kind {
            let k = self.by_kind.entry(*kind).or_default();
            k.wire.merge(&s.wire);
            k.cost.merge(&s.cost);
            k.payload.merge(&s.payload);
            k.total_cost_fixed += s.total_cost_fixed;
            k.total_payload += s.total_payload;
            k.total_bytes.merge(&s.total_bytes);
        }
    }

    /// The report's `exchange_summary`, one row per kind in name order.
    pub fn rows(&self) -> Vec<ExchangeSummary> {
        let mut rows: Vec<ExchangeSummary> = self
            .by_kind
            .iter()
            .map(|(kind, s)| (kind, s, s.total_cost()))
            .map(|(kind, s, total_cost)| ExchangeSummary {
                kind: *kind,
                count: s.wire.count() as usize,
                median_wire_bytes: s.wire.whole_quantile(0.5),
                median_cost_bytes: s.cost.quantile(0.5),
                median_payload_bytes: s.payload.whole_quantile(0.5),
                p90_wire_bytes: s.wire.whole_quantile(0.9),
                p90_cost_bytes: s.cost.quantile(0.9),
                total_cost_bytes: total_cost,
                total_payload_bytes: s.total_payload,
                overhead_factor: (s.total_payload > 0).then(|| total_cost / s.total_payload as f64),
                exact: s.wire.is_exact() && s.cost.is_exact() && s.payload.is_exact(),
            })
            .collect();
        rows.sort_by(|a, b| a.kind.name().cmp(b.kind.name()));
        rows
    }
}

/// Exchanges of one kind, summarised: what a typical one cost. Over every
/// exchange of the input, listed or not.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExchangeSummary {
    pub kind: Proto,
    pub count: usize,
    pub median_wire_bytes: f64,
    /// Including each exchange's share of its connection's setup.
    pub median_cost_bytes: f64,
    pub median_payload_bytes: f64,
    #[serde(default)]
    pub p90_wire_bytes: f64,
    #[serde(default)]
    pub p90_cost_bytes: f64,
    #[serde(default)]
    pub total_cost_bytes: f64,
    #[serde(default)]
    pub total_payload_bytes: u64,
    /// Total cost (setup shares included) over total payload.
    pub overhead_factor: Option<f64>,
    /// False when a distribution was sketched (more than `EXACT_VALUES`
    /// exchanges): its quantiles are then within 0.4%.
    #[serde(default = "yes")]
    pub exact: bool,
}

fn yes() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_quantiles_are_the_median_of_the_values() {
        let mut q = Quantiles::default();
        for v in [5.0, 1.0, 3.0, 2.0] {
            q.add(v);
        }
        assert_eq!(q.quantile(0.5), 2.5);
        assert_eq!(q.quantile(0.9), 5.0);
        assert!(q.is_exact());
    }

    #[test]
    fn a_sketch_keeps_quantiles_within_its_accuracy_and_merges_in_any_order() {
        let values: Vec<f64> = (0..200_000u64).map(|i| ((i * 7919) % 100_000) as f64 + 0.5).collect();
        let (mut one, mut a, mut b) = (Quantiles::default(), Quantiles::default(), Quantiles::default());
        for (i, &v) in values.iter().enumerate() {
            one.add(v);
            if i % 3 == 0 { a.add(v) } else { b.add(v) }
        }
        assert!(!one.is_exact());
        let mut ab = a.clone();
        ab.merge(&b);
        let mut ba = b.clone();
        ba.merge(&a);
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        for q in [0.1, 0.5, 0.9, 0.99] {
            let truth = sorted[((q * sorted.len() as f64).ceil() as usize) - 1];
            let got = one.quantile(q);
            assert!((got - truth).abs() <= truth * SKETCH_ACCURACY * 1.01, "q {q}: {got} vs {truth}");
            assert_eq!(ab.quantile(q).to_bits(), got.to_bits());
            assert_eq!(ba.quantile(q).to_bits(), got.to_bits());
        }
        assert_eq!(ab.count(), 200_000);
    }

    #[test]
    fn values_added_at_once_are_the_values_added_one_by_one() {
        // Staying exact, turning into a sketch on the way (from empty and
        // from part full), zeros, and a sketch already made.
        let cases: [(&[f64], f64, u64); 5] = [
            (&[3.0, 1.0], 2.0, 7),
            (&[], 5.5, EXACT_VALUES as u64 + 3),
            (&[1.0; 4000], 9.0, 200),
            (&[1.0; 4000], 0.0, 97),
            (&[2.0; 5000], 7.25, 1000),
        ];
        for (before, v, n) in cases {
            let (mut one_by_one, mut at_once) = (Quantiles::default(), Quantiles::default());
            for &b in before {
                one_by_one.add(b);
                at_once.add(b);
            }
            (0..n).for_each(|_| one_by_one.add(v));
            at_once.add_n(v, n);
            assert_eq!((at_once.is_exact(), at_once.count()), (one_by_one.is_exact(), one_by_one.count()));
            for q in [0.0, 0.1, 0.5, 0.9, 1.0] {
                assert_eq!(at_once.quantile(q).to_bits(), one_by_one.quantile(q).to_bits(), "q {q}");
            }
        }
        let x = ExchangeFigures { kind: Proto::Http, wire_bytes: 700, payload_bytes: 40, cost_bytes: 712.3 };
        let (mut one_by_one, mut at_once) = (ExchangeSummaries::default(), ExchangeSummaries::default());
        (0..5).for_each(|_| one_by_one.add_many(&x, 1));
        at_once.add_many(&x, 5);
        at_once.add_many(&x, 0);
        let json = |s: &ExchangeSummaries| serde_json::to_string(&s.rows()).unwrap_or_default();
        assert_eq!(json(&at_once), json(&one_by_one));
    }

    /// Sketches hold only the buckets their values span; ranges apart,
    /// values below the held range, and merges either way give the same
    /// counts and quantiles as one sketch of everything.
    #[test]
    fn sketches_of_ranges_apart_merge_into_one() {
        let low: Vec<f64> = (0..5_000u64).map(|i| 100.0 + (i % 100) as f64).collect();
        let high: Vec<f64> = (0..5_000u64).map(|i| 40_000.0 + (i % 1_000) as f64).collect();
        let (mut one, mut a, mut b) = (Quantiles::default(), Quantiles::default(), Quantiles::default());
        // High values first: the low ones are then below the held range.
        for &v in high.iter().chain(&low) {
            one.add(v);
        }
        low.iter().for_each(|&v| a.add(v));
        high.iter().for_each(|&v| b.add(v));
        if let Quantiles::Sketch { buckets, .. } = &a {
            assert!(buckets.len() < 200, "{} buckets held for values 100 to 199", buckets.len());
        }
        let (mut ab, mut ba) = (a.clone(), b.clone());
        ab.merge(&b);
        ba.merge(&a);
        assert_eq!((one.count(), ab.count(), ba.count()), (10_000, 10_000, 10_000));
        for q in [0.01, 0.25, 0.5, 0.75, 0.99] {
            let got = one.quantile(q);
            assert_eq!((ab.quantile(q).to_bits(), ba.quantile(q).to_bits()), (got.to_bits(), got.to_bits()), "q {q}");
        }
    }
}
