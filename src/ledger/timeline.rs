//! The capture's bytes over time: wire bytes per time bin by ledger class,
//! at most [`MAX_BINS`] bins of a width that doubles as the capture grows
//! (1.05 ms at first: 2^20 ns). Built from what flows booked to their
//! ledgers (and the bytes of no flow), so its bins add up to the report's
//! ledger exactly.
//!
//! A flow's bytes are booked a run at a time, not a packet at a time: a
//! run is its packets each in the same bin as the one before, and it is
//! booked when a packet falls in another bin or the flow ends, as the
//! flow's ledger then, added to the run's bin and taken from the next
//! run's (what the next run adds to the ledger is then that run's). Until
//! the flow's next run is booked a bin may hold less than nothing, so bins
//! add with wrapping; once every flow has ended each holds what it should.
//! Bins nest: a bin at one width lies inside one bin at every larger width,
//! so a run stays in one bin however wide the bins grow, and the bins are
//! those that booking packet by packet gives.

use crate::bins::{AdaptiveBins, BinValue, MAX_BINS};
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

/// The number of the bin that holds time `ts_ns` when bins are at `level`.
#[inline]
fn cell_at(ts_ns: i64, level: u32) -> i64 {
    ts_ns >> (BASE_SHIFT + level).min(63)
}

/// Bytes per class in one bin, summed with wrapping (see the module).
#[derive(Debug, Clone, Copy, Default)]
struct Cell([u64; 10]);

impl Cell {
    fn add(&mut self, bytes: &[u64; 10]) {
        for (a, b) in self.0.iter_mut().zip(bytes) {
            *a = a.wrapping_add(*b);
        }
    }

    fn sub(&mut self, bytes: &[u64; 10]) {
        for (a, b) in self.0.iter_mut().zip(bytes) {
            *a = a.wrapping_sub(*b);
        }
    }
}

impl BinValue for Cell {
    fn absorb(&mut self, other: &Self) {
        self.add(&other.0);
    }
}

/// Collects a timeline while packets stream by; parts built by several
/// workers merge exactly (their bins lie on one grid).
#[derive(Debug, Clone, Default)]
pub struct TimelineBuilder {
    bins: AdaptiveBins<Cell>,
}

impl TimelineBuilder {
    fn cell(&self, ts_ns: i64) -> i64 {
        cell_at(ts_ns, self.bins.level())
    }

    /// The bin of bytes booked at `ts_ns`.
    fn bin(&mut self, ts_ns: i64) -> &mut Cell {
        self.bins.at(|level| cell_at(ts_ns, level))
    }

    /// Whether bytes booked at `a_ns` and at `b_ns` fall in one bin.
    #[inline]
    pub fn same_bin(&self, a_ns: i64, b_ns: i64) -> bool {
        self.cell(a_ns) == self.cell(b_ns)
    }

    /// A run of a flow's packets, whose last came at `run_ns`, is over:
    /// `ledger` is the flow's ledger now. `next_ns`: when the flow's next
    /// run begins (None: the flow has ended).
    pub fn add_run(&mut self, run_ns: i64, ledger: &Ledger, next_ns: Option<i64>) {
        if ledger.0.iter().all(|&n| n == 0) {
            return;
        }
        self.bin(run_ns).add(&ledger.0);
        if let Some(next_ns) = next_ns {
            self.bin(next_ns).sub(&ledger.0);
        }
    }

    /// Adds what a ledger gained from `before` to `after` at capture time
    /// `ts_ns` (bytes of no flow, a packet at a time).
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
        self.bin(ts_ns).add(&gained);
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
                .map(|(k, c)| (k, Ledger(c.0)))
                .filter(|(_, c)| c.total() > 0)
                .map(|(k, c)| TimeBin { t_s: k as f64 * width_ns / 1e9, wire_bytes: c.total(), classes: c })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Class;

    /// Flows booked a run at a time give the bins that booking every packet
    /// gives: flows interleaved, a clock that jumps back and far ahead (the
    /// bins grow wider as it goes), the flows split between two workers'
    /// parts that are merged at the end.
    #[test]
    fn runs_give_the_bins_of_packets() {
        let mut by_packet = TimelineBuilder::default();
        let mut parts = [TimelineBuilder::default(), TimelineBuilder::default()];
        // Per flow: its ledger and its last packet's time.
        let mut flows = [(Ledger::default(), 0i64); 7];
        let mut seen = [false; 7];
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut ts = 1_700_000_000_000_000_000i64;
        for i in 0..20_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ts += match x % 100 {
                0 => -3_000_000_000,
                1 => 600_000_000_000,
                _ => (x % 2_000_000) as i64,
            };
            let f = (x >> 8) as usize % flows.len();
            let part = &mut parts[f % 2];
            let (ledger, last_ns) = &mut flows[f];
            if !seen[f] {
                seen[f] = true;
                *last_ns = ts;
            }
            if !part.same_bin(*last_ns, ts) {
                part.add_run(*last_ns, ledger, Some(ts));
            }
            *last_ns = ts;
            let mut l = Ledger::default();
            l.add(Class::Link, 14);
            l.add(if i % 3 == 0 { Class::Payload } else { Class::AppHeader }, (x >> 20) % 1500);
            by_packet.add_since(ts, &Ledger::default(), &l);
            ledger.merge(&l);
        }
        for (f, (ledger, last_ns)) in flows.iter().enumerate() {
            parts[f % 2].add_run(*last_ns, ledger, None);
        }
        let [mut runs, other] = parts;
        runs.merge(other);
        let (a, b) = (by_packet.finish().unwrap_or_default(), runs.finish().unwrap_or_default());
        assert!(a.bin_s > 1.0, "the bins grew: {} s", a.bin_s);
        assert_eq!(a, b);
    }

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
