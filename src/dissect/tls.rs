//! tls (stub: to be written).

use super::{Dir, Dissector, FlowCtx, L4, Probe, Protocol};
use serde::Serialize;

pub static PROTOCOL: Protocol = Protocol { name: "tls", l4: &[L4::Tcp, L4::Udp], ports: &[443, 8443, 8883, 5684, 4433], probe, make };

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
