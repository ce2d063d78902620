//! Test helpers for dissectors: feed chunks, check the conservation contract.

use super::*;
use crate::ledger::Ledger;

/// What a dissector produced over a whole test conversation.
#[derive(Default, Debug)]
pub struct Run {
    pub spans: Vec<Span>,
    pub events: Vec<Event>,
    pub stats: ProtoStats,
    /// Bytes handed in (data + gaps).
    pub fed: u64,
}

impl Run {
    pub fn ledger(&self) -> Ledger {
        let mut l = Ledger::default();
        for s in &self.spans {
            l.add(s.class, s.len);
        }
        l
    }
    pub fn class(&self, c: Class) -> u64 {
        self.ledger().get(c)
    }
    /// Descriptions of the exchanges opened, in order.
    pub fn opens(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Open { what, .. } => Some(what.clone()),
                _ => None,
            })
            .collect()
    }
    /// Later descriptions of exchanges (`Event::Describe`), in order.
    pub fn describes(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Describe { what, .. } => Some(what.clone()),
                _ => None,
            })
            .collect()
    }
    /// Every byte fed is in exactly one span.
    pub fn assert_conserved(&self) {
        assert_eq!(self.ledger().total(), self.fed, "spans must cover every byte fed exactly once");
    }
}

/// Feeds `(dir, bytes)` pieces in order at 1 s apart, then finishes.
pub fn run(d: &mut dyn Dissector, pieces: &[(Dir, &[u8])]) -> Run {
    let mut r = Run::default();
    for (i, (dir, bytes)) in pieces.iter().enumerate() {
        let mut e = Emit::new(i as i64 * 1_000_000_000, &mut r.spans, &mut r.events, &mut r.stats);
        d.data(*dir, bytes, &mut e);
        r.fed += bytes.len() as u64;
    }
    let mut e = Emit::new(pieces.len() as i64 * 1_000_000_000, &mut r.spans, &mut r.events, &mut r.stats);
    d.finish(&mut e);
    r
}

/// Like `run`, but every piece is cut into one-byte segments: framing must
/// not depend on how the stream was segmented.
pub fn run_bytewise(d: &mut dyn Dissector, pieces: &[(Dir, &[u8])]) -> Run {
    let split: Vec<(Dir, &[u8])> = pieces.iter().flat_map(|(dir, b)| b.chunks(1).map(move |c| (*dir, c))).collect();
    run(d, &split)
}

/// What a test returns: any error fails it, so tests use `?` instead of
/// `unwrap`/`expect`.
pub type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;
