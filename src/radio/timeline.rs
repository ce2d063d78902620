//! The radio's states over time, for the report's timeline: seconds of
//! promotion, transfer (connected, moving data), tail and idle per time bin,
//! at most [`MAX_BINS`] bins of a width that doubles as the timeline grows
//! (2^-10 s at first). The simulator books every piece of its timeline here
//! in time order, as it books the piece's energy.

use crate::bins::{AdaptiveBins, MAX_BINS};
use serde::{Deserialize, Serialize};

/// The narrowest bin is 2^-BASE_EXP seconds.
const BASE_EXP: i32 = 10;

/// Seconds in each of the four energy categories, per bin.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StateTimeline {
    /// Start of the first bin, seconds since the Unix epoch (on the radio's
    /// clock: re-timed with `--timing link`).
    pub start_ts: f64,
    pub bin_s: f64,
    /// Seconds from `start_ts` to the end of the last bin.
    pub span_s: f64,
    /// The bins not idle all through, in time order (`t_s` places each);
    /// the radio idles where there is none.
    pub bins: Vec<StateBin>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StateBin {
    /// Seconds from `start_ts` to this bin's start.
    pub t_s: f64,
    pub promotion_s: f64,
    /// Connected, moving data (round trips and airtime inside bursts).
    pub transfer_s: f64,
    /// After a burst until idle: the inactivity timer and the tail stages.
    pub tail_s: f64,
    pub idle_s: f64,
}

fn width(level: u32) -> f64 {
    2f64.powi(level as i32 - BASE_EXP)
}

fn cell(t: f64, level: u32) -> i64 {
    // `as` saturates: no overflow for absurd times.
    (t / width(level)).floor() as i64
}

/// The clock and the bins the simulator books into.
#[derive(Debug, Clone, Default)]
#[repr(C)]
pub struct StateRecorder {
    /// Records nothing: one timeline is drawn per input, so of a capture's
    /// many devices only the first records its states (memory stays that
    /// of one device's bins). First: for every other device, `book` reads
    /// nothing else.
    pub off: bool,
    /// Seconds from the first frame, on the radio's timeline.
    pub clock_s: f64,
    /// The bin the clock is in, as (start, end, position), once known:
    /// most frames book a piece inside it, with two compares.
    current: Option<(f64, f64, usize)>,
    bins: AdaptiveBins<[f64; 4]>,
}

impl StateRecorder {
    /// Sets the clock (before the first piece is booked).
    pub fn start_at(&mut self, clock_s: f64) {
        self.clock_s = clock_s;
        self.current = None;
    }

    /// Books `dt` seconds of category `cat` (promotion, transfer, tail,
    /// idle: 0..4) from the clock on, and moves the clock past them.
    #[inline]
    pub fn book(&mut self, cat: usize, dt: f64) {
        if self.off || !dt.is_finite() || dt <= 0.0 || cat >= 4 {
            return;
        }
        let end = self.clock_s + dt;
        let t = self.clock_s;
        if let Some((start, stop, pos)) = self.current
            && t >= start
            && end < stop
            && let Some(s) = self.bins.slot_mut(pos).and_then(|b| b.get_mut(cat))
        {
            *s += dt;
            self.clock_s = end;
            return;
        }
        self.book_across(cat, t, end);
        self.clock_s = end;
        // The bin the clock is in now (the layout may have changed).
        let level = self.bins.level();
        let c = cell(end, level);
        let (first, bins) = self.bins.bins();
        self.current = usize::try_from(c - first)
            .ok()
            .filter(|&pos| pos < bins.len())
            .map(|pos| (c as f64 * width(level), (c as f64 + 1.0) * width(level), pos));
    }

    /// Books `[t, end)` of `cat` into the bins it spans, making room first.
    #[inline(never)]
    fn book_across(&mut self, cat: usize, mut t: f64, end: f64) {
        // Bins wide enough for the whole piece first (its last instant
        // inside it), so the walk below touches at most MAX_BINS of them.
        let last = end - (end - t).min(1e-9);
        self.bins.at(|l| cell(last, l));
        self.bins.at(|l| cell(t, l));
        // A piece per bin touched; bounded, so float rounding cannot loop.
        for _ in 0..(MAX_BINS + 4) {
            // Makes room first (the bins may grow coarser), then books.
            self.bins.at(|l| cell(t, l));
            let level = self.bins.level();
            let bin_end = (cell(t, level) as f64 + 1.0) * width(level);
            let piece_end = if bin_end > t { bin_end.min(end) } else { end };
            if let Some(s) = self.bins.at(|l| cell(t, l)).get_mut(cat) {
                *s += piece_end - t;
            }
            t = piece_end;
            if t >= end {
                break;
            }
        }
    }

    /// The timeline; `origin_ts` is the first frame's time, seconds since the epoch.
    pub fn finish(&self, origin_ts: f64) -> Option<StateTimeline> {
        if self.off {
            return None;
        }
        if self.bins.is_empty() {
            return None;
        }
        let w = width(self.bins.level());
        let (first, bins) = self.bins.bins();
        Some(StateTimeline {
            start_ts: origin_ts + first as f64 * w,
            bin_s: w,
            span_s: bins.len() as f64 * w,
            bins: bins
                .iter()
                .enumerate()
                .filter(|(_, b)| b[0] + b[1] + b[2] > 0.0)
                .map(|(k, b)| StateBin {
                    t_s: k as f64 * w,
                    promotion_s: b[0],
                    transfer_s: b[1],
                    tail_s: b[2],
                    idle_s: b[3],
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booked_time_lands_in_its_bins_and_adds_up() {
        let mut r = StateRecorder { clock_s: -0.5, ..Default::default() };
        r.book(0, 0.5);
        for _ in 0..100 {
            r.book(1, 0.2);
            r.book(2, 10.0);
            r.book(3, 49.8);
        }
        let t = r.finish(1000.0).unwrap_or_default();
        assert!(t.bins.len() <= MAX_BINS);
        let sum = |f: fn(&StateBin) -> f64| t.bins.iter().map(f).sum::<f64>();
        assert!((sum(|b| b.promotion_s) - 0.5).abs() < 1e-9);
        assert!((sum(|b| b.transfer_s) - 20.0).abs() < 1e-6);
        assert!((sum(|b| b.tail_s) - 1000.0).abs() < 1e-6);
        // Bins idle all through are left out; the others hold their idle time.
        assert!(sum(|b| b.idle_s) < 4980.0);
        assert!(t.bins.iter().all(|b| b.promotion_s + b.transfer_s + b.tail_s > 0.0));
        assert!(t.start_ts <= 999.5);
        // No bin holds more time than it is wide.
        for b in &t.bins {
            assert!(b.promotion_s + b.transfer_s + b.tail_s + b.idle_s <= t.bin_s * (1.0 + 1e-9));
        }
    }
}
