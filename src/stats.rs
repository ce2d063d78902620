//! Small numeric helpers shared by the models and the report.

/// Median of `v` (sorted in place); 0 for an empty slice.
pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len() / 2;
    match (v.get(m), m.checked_sub(1).and_then(|i| v.get(i))) {
        (Some(&hi), Some(&lo)) if v.len().is_multiple_of(2) => (lo + hi) / 2.0,
        (Some(&mid), _) => mid,
        _ => 0.0,
    }
}

/// The same value as [`median`], found by selection rather than a sort
/// (a device's cycles are medianed six times when its model finishes):
/// `v` is left in no particular order.
pub fn median_unordered(v: &mut [f64]) -> f64 {
    let n = v.len();
    if n == 0 {
        return 0.0;
    }
    let (below, &mut mid, _) = v.select_nth_unstable_by(n / 2, f64::total_cmp);
    if n.is_multiple_of(2) {
        // The element just below the middle: the largest of those below it.
        let lo = below.iter().copied().max_by(f64::total_cmp).unwrap_or(mid);
        (lo + mid) / 2.0
    } else {
        mid
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(super::median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(super::median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(super::median(&mut []), 0.0);
    }

    /// Selection gives the sort's median bit for bit, repeats and signed
    /// zeros included.
    #[test]
    fn median_by_selection_is_the_median_by_sorting() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for n in 0..200usize {
            let v: Vec<f64> = (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    match x % 7 {
                        0 => 0.0,
                        1 => -0.0,
                        2 => 1.5,
                        _ => (x % 10_000) as f64 / 7.0 - 500.0,
                    }
                })
                .collect();
            let (mut a, mut b) = (v.clone(), v);
            assert_eq!(super::median(&mut a).to_bits(), super::median_unordered(&mut b).to_bits(), "n {n}");
        }
    }
}
