//! WebSocket (stub: to be written). Entered from HTTP after a 101 upgrade.

use serde::Serialize;

#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {}

impl Stats {
    pub fn merge(&mut self, _o: &Stats) {}
}
