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

#[cfg(test)]
mod tests {
    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(super::median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(super::median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(super::median(&mut []), 0.0);
    }
}
