//! The capture's bytes over time: wire bytes per time bin by ledger class,
//! at most [`MAX_BINS`] bins of a width that doubles as the capture grows
//! (1.05 ms at first: 2^20 ns). Built from what each packet booked to its
//! flow's ledger (and the bytes of no flow), so its bins add up to the
//! report's ledger exactly.

use crate::bins::{AdaptiveBins, MAX_BINS};
use crate::ledger::Ledger;
use serde::{Deserialize, Serialize};

/// The narrowest bin: 2^20 ns.
const BASE_SHIFT: u32 = 20;

/// Bytes per time bin, for charts and exports.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Timeline {
    /// Start of the first bin, seconds since the Unix epoch.
    pub start_ts: f64,
    /// Width of every bin, seconds (a power of two times 2^20 ns).
    pub bin_s: f64,
    /// Seconds from `start_ts` to the end of the last bin.
    pub span_s: f64,
    /// The bins that hold bytes, in time order (`t_s` places each).
    pub bins: Vec<TimeBin>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TimeBin {
    /// Seconds from `start_ts` to this bin's start.
    pub t_s: f64,
    pub wire_bytes: u64,
    pub classes: Ledger,
}

/// Collects a timeline while packets stream by; parts built by several
/// workers merge exactly (their bins lie on one grid).
#[derive(Debug, Clone, Default)]
pub struct TimelineBuilder {
    bins: AdaptiveBins<Ledger>,
}

impl TimelineBuilder {
    /// Adds what a ledger gained from `before` to `after` at capture time
    /// `ts_ns`. Read from the two ledgers, not from a difference made for
    /// the call: a ledger just written and read back at once waits on the
    /// store (5% of the time to book a packet).
    #[inline]
    pub fn add_since(&mut self, ts_ns: i64, before: &Ledger, after: &Ledger) {
        let mut gained = [0u64; 10];
        let mut any = 0;
        for ((g, a), b) in gained.iter_mut().zip(&after.0).zip(&before.0) {
            *g = a.saturating_sub(*b);
            any |= *g;
        }
        if any == 0 {
            return;
        }
        let bin = self.bins.at(|level| ts_ns >> (BASE_SHIFT + level).min(63));
        for (n, g) in bin.0.iter_mut().zip(gained) {
            *n += g;
        }
    }

    pub fn merge(&mut self, other: TimelineBuilder) {
        self.bins.merge(other.bins);
    }

    /// The timeline, or None when nothing was booked.
    pub fn finish(&self) -> Option<Timeline> {
        if self.bins.is_empty() {
            return None;
        }
        let shift = (BASE_SHIFT + self.bins.level()).min(62);
        let width_ns = (1i64 << shift) as f64;
        let (first, bins) = self.bins.bins();
        debug_assert!(bins.len() <= MAX_BINS);
        Some(Timeline {
            start_ts: first as f64 * width_ns / 1e9,
            bin_s: width_ns / 1e9,
            span_s: bins.len() as f64 * width_ns / 1e9,
            bins: bins
                .iter()
                .enumerate()
                .filter(|(_, c)| c.total() > 0)
                .map(|(k, c)| TimeBin { t_s: k as f64 * width_ns / 1e9, wire_bytes: c.total(), classes: *c })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Class;

    #[test]
    fn bins_add_up_to_what_was_booked() {
        let mut a = TimelineBuilder::default();
        let mut b = TimelineBuilder::default();
        let mut total = Ledger::default();
        for i in 0..5000i64 {
            let mut l = Ledger::default();
            l.add(Class::Payload, 10);
            l.add(Class::Link, 14);
            let ts = 1_700_000_000_000_000_000 + i * 7_000_000;
            if i % 3 == 0 {
                a.add_since(ts, &Ledger::default(), &l)
            } else {
                b.add_since(ts, &Ledger::default(), &l)
            }
            total.merge(&l);
        }
        a.merge(b);
        let t = a.finish().unwrap_or_default();
        assert!(t.bins.len() <= MAX_BINS && t.bins.len() > MAX_BINS / 4, "{} bins", t.bins.len());
        assert!(t.bins.iter().all(|b| b.wire_bytes > 0 && b.t_s < t.span_s));
        let mut sum = Ledger::default();
        for bin in &t.bins {
            sum.merge(&bin.classes);
            assert_eq!(bin.wire_bytes, bin.classes.total());
        }
        assert_eq!(sum, total);
        assert!(t.start_ts <= 1_700_000_000.0 && t.start_ts + t.bin_s > 1_700_000_000.0);
        // 35 s of capture in at most 512 bins.
        assert!(t.span_s >= 35.0 && t.span_s <= t.bin_s * MAX_BINS as f64);
    }
}
