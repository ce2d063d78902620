//! http2 (stub: to be written).

use super::{Dir, Dissector, FlowCtx, L4, Probe, Protocol};
use serde::Serialize;

pub static PROTOCOL: Protocol = Protocol { name: "http2", l4: &[L4::Tcp], ports: &[], probe, make };

fn probe(_dir: Dir, _first: &[u8]) -> Probe {
    Probe::No
}

fn make(_ctx: &FlowCtx) -> Box<dyn Dissector> {
    Box::new(super::unknown::Unknown)
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {}

impl Stats {
    pub fn merge(&mut self, _o: &Stats) {}
}
