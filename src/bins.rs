//! Time bins that stay few however long the timeline: at most [`MAX_BINS`],
//! each twice as wide once the span outgrows them. Timelines of bytes and of
//! radio states are kept in them while the capture streams by, without
//! knowing its length beforehand.

/// Most bins a timeline keeps.
pub const MAX_BINS: usize = 512;

/// Something a bin holds: two neighbouring bins add up into one.
pub trait BinValue: Default + Clone {
    fn absorb(&mut self, other: &Self);
}

impl BinValue for [f64; 4] {
    fn absorb(&mut self, other: &Self) {
        for (a, b) in self.iter_mut().zip(other) {
            *a += *b;
        }
    }
}

/// Bins numbered on a grid of `base * 2^level` wide cells: bin `i` at
/// level `l` holds bins `2i` and `2i + 1` of level `l - 1`, so two
/// timelines on the same base merge exactly at the coarser level.
#[derive(Clone, Debug, Default)]
pub struct AdaptiveBins<T> {
    level: u32,
    /// Number of the first bin held (at `level`).
    first: i64,
    bins: Vec<T>,
}

impl<T: BinValue> AdaptiveBins<T> {
    pub fn level(&self) -> u32 {
        self.level
    }

    /// The first bin's number and the bins, at `level()`.
    pub fn bins(&self) -> (i64, &[T]) {
        (self.first, &self.bins)
    }

    /// The bin at `pos` in `bins()`.
    #[inline]
    pub fn slot_mut(&mut self, pos: usize) -> Option<&mut T> {
        self.bins.get_mut(pos)
    }

    pub fn is_empty(&self) -> bool {
        self.bins.is_empty()
    }

    /// The bin for the cell `index(level)` gives, made coarser first if the
    /// bins would otherwise grow past [`MAX_BINS`]. `index` maps a level to
    /// a cell number at that level (the caller's clock divided by the width).
    #[inline]
    pub fn at(&mut self, index: impl Fn(u32) -> i64) -> &mut T {
        let mut i = index(self.level);
        if self.bins.is_empty() {
            self.first = i;
            self.bins.push(T::default());
        }
        // The common case: inside the held range.
        let at = i.wrapping_sub(self.first);
        if at >= 0 && (at as usize) < self.bins.len() {
            // In range: checked just above (a `get_mut` here could not be
            // returned early and the bins grown below).
            return &mut self.bins[at as usize];
        }
        loop {
            let last = self.first.saturating_add(self.bins.len() as i64 - 1);
            let lo = self.first.min(i);
            let hi = last.max(i);
            if (hi as i128 - lo as i128) < MAX_BINS as i128 || self.level >= 62 {
                break;
            }
            self.coarsen();
            i = index(self.level);
        }
        if i < self.first {
            let extra = (self.first - i).clamp(0, MAX_BINS as i64 * 4) as usize;
            let mut v = vec![T::default(); extra];
            v.append(&mut self.bins);
            self.bins = v;
            self.first = i;
        }
        let at = (i - self.first).clamp(0, MAX_BINS as i64 * 4) as usize;
        if at >= self.bins.len() {
            self.bins.resize(at + 1, T::default());
        }
        let len = self.bins.len();
        // `at < len` by the resize above.
        &mut self.bins[at.min(len - 1)]
    }

    /// Twice as wide bins: each pair of neighbours on the grid becomes one.
    pub fn coarsen(&mut self) {
        if self.level >= 62 {
            return;
        }
        let new_first = self.first >> 1;
        let mut out: Vec<T> = Vec::with_capacity(self.bins.len() / 2 + 1);
        for (k, b) in self.bins.iter().enumerate() {
            let at = ((self.first + k as i64) >> 1) - new_first;
            let at = at as usize;
            if out.len() <= at {
                out.resize(at + 1, T::default());
            }
            if let Some(slot) = out.get_mut(at) {
                slot.absorb(b);
            }
        }
        self.level += 1;
        self.first = new_first;
        self.bins = out;
    }

    /// Adds `other` (on the same base grid) into these bins.
    pub fn merge(&mut self, mut other: AdaptiveBins<T>) {
        if other.bins.is_empty() {
            return;
        }
        while other.level < self.level {
            other.coarsen();
        }
        while self.level < other.level {
            self.coarsen();
        }
        for (k, b) in other.bins.iter().enumerate() {
            let cell = other.first + k as i64;
            let level = other.level;
            // Cells of `other` at its level; `self` may coarsen meanwhile.
            self.at(|l| cell >> (l - level)).absorb(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_stay_few_and_keep_every_value() {
        let mut b = AdaptiveBins::<[f64; 4]>::default();
        for t in 0..10_000i64 {
            b.at(|l| t >> l)[0] += 1.0;
        }
        assert!(b.bins().1.len() <= MAX_BINS);
        let sum: f64 = b.bins().1.iter().map(|x| x[0]).sum();
        assert_eq!(sum, 10_000.0);
        // Earlier cells than the first are added in front.
        b.at(|l| -5_000i64 >> l)[1] += 2.0;
        assert!(b.bins().1.len() <= MAX_BINS);
        assert_eq!(b.bins().1.first().map(|x| x[1]), Some(2.0));
    }

    #[test]
    fn merged_bins_equal_one_timeline_fed_everything() {
        let (mut a, mut b, mut all) = (
            AdaptiveBins::<[f64; 4]>::default(),
            AdaptiveBins::<[f64; 4]>::default(),
            AdaptiveBins::<[f64; 4]>::default(),
        );
        for t in (0..3000i64).step_by(7) {
            a.at(|l| t >> l)[2] += t as f64;
            all.at(|l| t >> l)[2] += t as f64;
        }
        for t in (100..9000i64).step_by(13) {
            b.at(|l| t >> l)[2] += t as f64;
            all.at(|l| t >> l)[2] += t as f64;
        }
        a.merge(b);
        while a.level() < all.level() {
            a.coarsen();
        }
        while all.level() < a.level() {
            all.coarsen();
        }
        assert_eq!(a.bins().0, all.bins().0);
        assert_eq!(a.bins().1.len(), all.bins().1.len());
        for (x, y) in a.bins().1.iter().zip(all.bins().1) {
            assert_eq!(x[2], y[2]);
        }
    }
}
