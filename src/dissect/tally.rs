//! Statistics counted under the keys of a small closed set (HTTP methods,
//! TLS record types, MQTT packet kinds, ...), each key known by an index:
//! counted with an add where a map lookup by text cost a hundred
//! instructions, on paths taken for nearly every message.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::marker::PhantomData;

/// Names the keys of a [`Tally`].
pub trait TallyKeys {
    /// The key written out for index `i`.
    fn name(i: usize) -> Cow<'static, str>;
}

/// Counts by key index. Written out as the map [`super::bump`] would have
/// built from the same counts: the keys counted, in text order, at most
/// [`super::MAX_MAP_KEYS`] of them besides "other", which takes the rest.
pub struct Tally<K> {
    counts: Vec<u64>,
    /// Counts by key text: what a saved report read back holds.
    by_name: BTreeMap<String, u64>,
    // A function type: the marker says nothing of `K`'s thread safety.
    keys: PhantomData<fn() -> K>,
}

impl<K> Default for Tally<K> {
    fn default() -> Self {
        Tally { counts: Vec::new(), by_name: BTreeMap::new(), keys: PhantomData }
    }
}

impl<K> Clone for Tally<K> {
    fn clone(&self) -> Self {
        Tally { counts: self.counts.clone(), by_name: self.by_name.clone(), keys: PhantomData }
    }
}

impl<K: TallyKeys> std::fmt::Debug for Tally<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.to_map().fmt(f)
    }
}

impl<K: TallyKeys> Tally<K> {
    /// Adds `n > 0` under key `i` (a key counted 0 is not written out).
    pub fn add(&mut self, i: usize, n: u64) {
        match self.counts.get_mut(i) {
            Some(c) => *c += n,
            None => {
                self.counts.resize(i + 1, 0);
                if let Some(c) = self.counts.get_mut(i) {
                    *c = n;
                }
            }
        }
    }

    pub fn merge(&mut self, o: &Tally<K>) {
        for (i, &n) in o.counts.iter().enumerate() {
            if n > 0 {
                self.add(i, n);
            }
        }
        for (k, &n) in &o.by_name {
            super::bump(&mut self.by_name, k, n);
        }
    }

    /// The map written out.
    pub fn to_map(&self) -> BTreeMap<String, u64> {
        let mut map = BTreeMap::new();
        for (i, &n) in self.counts.iter().enumerate() {
            if n > 0 {
                super::bump(&mut map, &K::name(i), n);
            }
        }
        for (k, &n) in &self.by_name {
            super::bump(&mut map, k, n);
        }
        map
    }

    /// The count written out under `name`, if any.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.to_map().get(name).copied()
    }

    pub fn is_empty(&self) -> bool {
        self.counts.iter().all(|&n| n == 0) && self.by_name.is_empty()
    }
}

impl<K: TallyKeys> Serialize for Tally<K> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_map().serialize(s)
    }
}

impl<'de, K> Deserialize<'de> for Tally<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Tally { counts: Vec::new(), by_name: BTreeMap::deserialize(d)?, keys: PhantomData })
    }
}

/// Keys that are numbers written in decimal (status codes, record types).
pub struct Decimal;

impl TallyKeys for Decimal {
    fn name(i: usize) -> Cow<'static, str> {
        Cow::Owned(itoa::Buffer::new().format(i).to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Letters;
    impl TallyKeys for Letters {
        fn name(i: usize) -> Cow<'static, str> {
            Cow::Borrowed(["b", "a", "other"].get(i).copied().unwrap_or("z"))
        }
    }

    #[test]
    fn a_tally_writes_the_map_bump_builds() -> Result<(), serde_json::Error> {
        let mut t = Tally::<Letters>::default();
        let mut m = BTreeMap::new();
        for (i, n) in [(1, 2), (0, 1), (2, 5), (1, 1)] {
            t.add(i, n);
            super::super::bump(&mut m, &Letters::name(i), n);
        }
        assert_eq!(serde_json::to_string(&t)?, serde_json::to_string(&m)?);
        assert_eq!(serde_json::to_string(&t)?, r#"{"a":3,"b":1,"other":5}"#);
        assert_eq!((t.get("a"), t.get("c")), (Some(3), None));
        Ok(())
    }

    #[test]
    fn a_tally_of_many_keys_keeps_the_first_and_counts_the_rest_as_other() -> Result<(), serde_json::Error> {
        let (mut t, mut m, mut merged) = (Tally::<Decimal>::default(), BTreeMap::new(), Tally::<Decimal>::default());
        for i in (0..300).rev() {
            t.add(i, 1);
            super::super::bump(&mut m, &Decimal::name(i), 1);
        }
        merged.merge(&t);
        assert_eq!(serde_json::to_string(&t)?, serde_json::to_string(&m)?);
        assert_eq!(serde_json::to_string(&merged)?, serde_json::to_string(&m)?);
        assert_eq!(t.to_map().len(), super::super::MAX_MAP_KEYS + 1);
        Ok(())
    }
}
