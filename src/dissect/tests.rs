use super::*;
use std::collections::BTreeMap;

/// Counts `keys` (one each) into a fresh map with `bump`.
fn counted<'a>(keys: impl Iterator<Item = &'a String>) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for k in keys {
        bump(&mut m, k, 1);
    }
    m
}

#[test]
fn a_full_map_keeps_the_same_keys_whatever_the_order() {
    let keys: Vec<String> = (0..3 * MAX_MAP_KEYS).map(|i| format!("host-{:03}", (i * 37) % 150)).collect();
    let forward = counted(keys.iter());
    let backward = counted(keys.iter().rev());
    assert_eq!(forward, backward);
    assert_eq!(forward.len(), MAX_MAP_KEYS + 1, "the kept keys and other");
    assert_eq!(forward.values().sum::<u64>(), keys.len() as u64, "nothing lost");
    // The kept keys are the smallest ones.
    assert_eq!(forward.keys().next().map(String::as_str), Some("host-000"));
    assert!(forward.contains_key("host-063") && !forward.contains_key("host-064"));

    // Split in two (two threads), counted apart and merged either way.
    let (a, b) = keys.split_at(keys.len() / 3);
    let (ma, mb) = (counted(a.iter()), counted(b.iter()));
    for (x, y) in [(&ma, &mb), (&mb, &ma)] {
        let mut merged = x.clone();
        for (k, n) in y {
            bump(&mut merged, k, *n);
        }
        assert_eq!(merged, forward);
    }
}

#[test]
fn other_is_never_evicted_and_a_literal_other_adds_to_it() {
    let mut m = BTreeMap::new();
    for i in 0..MAX_MAP_KEYS {
        bump(&mut m, &format!("k{i:02}"), 1);
    }
    bump(&mut m, "zz", 5);
    bump(&mut m, OTHER, 2);
    bump(&mut m, "a", 1);
    assert_eq!(m.get(OTHER), Some(&(5 + 2 + 1)), "zz, the literal other, and the evicted k63");
    assert!(m.contains_key("a") && !m.contains_key("k63"));
    assert_eq!(m.len(), MAX_MAP_KEYS + 1);
    // Past the largest key kept, on either side of "other" itself.
    bump(&mut m, "q", 3);
    bump(&mut m, "l", 4);
    assert_eq!(m.get(OTHER), Some(&(8 + 3 + 4)));
    assert_eq!(m.len(), MAX_MAP_KEYS + 1);
}
