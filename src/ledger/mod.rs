//! The byte ledger: ten counters that add up to the wire bytes.

pub mod exchange;
pub mod timeline;
pub use crate::vocab::Class;
pub use exchange::{Exchange, FlowLedger, LiveExchanges, setup_share};

use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Bytes per class. Serialises as `{"link": n, ...}` with all ten keys.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ledger(pub [u64; 10]);

impl Ledger {
    #[inline]
    pub fn add(&mut self, class: Class, n: u64) {
        self.0[class as usize] += n;
    }
    #[inline]
    pub fn get(&self, class: Class) -> u64 {
        self.0[class as usize]
    }
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
    pub fn merge(&mut self, other: &Ledger) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a += *b;
        }
    }
    /// Useful payload over wire bytes.
    pub fn goodput_ratio(&self) -> f64 {
        let t = self.total();
        if t == 0 { 0.0 } else { self.get(Class::Payload) as f64 / t as f64 }
    }
}

impl Serialize for Ledger {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(10))?;
        for c in Class::ALL {
            m.serialize_entry(c.name(), &self.get(c))?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for Ledger {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Ledger, D::Error> {
        let by_name = std::collections::BTreeMap::<Class, u64>::deserialize(d)?;
        let mut l = Ledger::default();
        for (c, n) in by_name {
            l.add(c, n);
        }
        Ok(l)
    }
}
