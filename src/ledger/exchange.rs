//! Exchanges: application messages paired with their timing and bytes, and
//! the per-flow ledger that attributes every byte to an exchange, to the
//! connection's setup, or to the flow as a whole.

use super::{Class, Ledger};
use crate::dissect::{Dir, Event, MsgRef, Span};
use foldhash::HashMap;
use serde::Serialize;
use std::collections::VecDeque;

/// Most exchanges a flow keeps open at once; older ones are closed.
const MAX_OPEN: usize = 256;
/// Most finished exchanges a flow keeps for its setup share; past this the
/// flow's exchanges are counted but not listed.
const MAX_KEPT: usize = 100_000;

/// One request/response (or one-way message) and what it cost.
#[derive(Debug, Clone, Serialize)]
pub struct Exchange {
    /// Index in the report's `exchanges`.
    pub id: u64,
    /// Index of the flow in the report's `flows`.
    pub flow: u64,
    pub kind: &'static str,
    pub what: String,
    pub start_ts: f64,
    /// Seconds from the start to the first byte of the answer.
    pub ttfb_s: Option<f64>,
    pub end_ts: f64,
    /// Bytes of this exchange by class, its own frames' headers included.
    pub classes: Ledger,
    pub wire_bytes: u64,
    /// Its even share of the connection's setup (TCP and TLS handshakes,
    /// MQTT CONNECT/CONNACK, WebSocket upgrade, teardown).
    pub setup_share_bytes: f64,
    /// Wire bytes including the setup share: what this exchange cost.
    pub total_cost_bytes: f64,
    pub frames_c2s: u32,
    pub frames_s2c: u32,
    pub bytes_c2s: u64,
    pub bytes_s2c: u64,
    /// Direction changes within the exchange (request->response = 1).
    pub turns: u32,
    /// Index of the packet that opened it: orders exchanges the same way
    /// however the flows were spread over threads.
    #[serde(skip)]
    pub open_packet: u64,
    #[serde(skip)]
    last_dir: Option<Dir>,
    #[serde(skip)]
    closed: bool,
}

fn secs(ns: i64) -> f64 {
    ns as f64 / 1e9
}

/// The ledger of one flow, with its exchanges.
#[derive(Debug, Default)]
pub struct FlowLedger {
    pub ledger: Ledger,
    /// Setup and teardown bytes, to share among the exchanges.
    pub setup: Ledger,
    open: Vec<(u32, usize)>,
    exchanges: Vec<Exchange>,
    /// Exchange the flow's current bytes belong to.
    current: Option<usize>,
    ids: HashMap<u32, usize>,
    /// Closed exchanges stay addressable for a while: their last bytes, a
    /// late acknowledgement or a retransmission may still name them.
    closed_ids: VecDeque<u32>,
    pub exchanges_total: u64,
    pub malformed: Vec<(u64, String)>,
    pub malformed_bytes: u64,
    /// Inner/upgraded application name learned from the dissector.
    pub app: Option<&'static str>,
    flow: u64,
    /// True once the connection is closing: later bytes are teardown.
    pub closing: bool,
}

impl FlowLedger {
    pub fn new(flow: u64) -> FlowLedger {
        FlowLedger { flow, ..Default::default() }
    }

    /// Where bytes tagged `msg` go: an exchange, or (None) the connection's
    /// shared overhead (setup, keep-alives, teardown).
    fn target(&self, msg: MsgRef) -> Option<usize> {
        if self.closing {
            return None;
        }
        match msg {
            MsgRef::Exchange(id) => self.ids.get(&id).copied().or(self.current),
            MsgRef::Setup | MsgRef::Flow => None,
        }
    }

    /// Where a frame's own headers go: the exchange its payload went to,
    /// else the current one (a pure ACK belongs to what it acknowledges).
    fn frame_target(&self, to: Option<MsgRef>) -> Option<usize> {
        match to {
            Some(m) => self.target(m),
            None if self.closing => None,
            None => self.current,
        }
    }

    fn book_at(&mut self, class: Class, n: u64, at: Option<usize>) {
        if n == 0 {
            return;
        }
        self.ledger.add(class, n);
        match at.and_then(|i| self.exchanges.get_mut(i)) {
            Some(x) => x.classes.add(class, n),
            None => self.setup.add(class, n),
        }
    }

    /// Books `n` bytes of `class`.
    pub fn book(&mut self, class: Class, n: u64, msg: MsgRef) {
        self.book_at(class, n, self.target(msg));
    }

    /// Books a frame's lower-layer bytes (`to`: where its payload went).
    pub fn book_frame(&mut self, ts_ns: i64, dir: Dir, lower: &[(Class, u64)], wire: u64, to: Option<MsgRef>) {
        let at = self.frame_target(to);
        for &(c, n) in lower {
            self.book_at(c, n, at);
        }
        if let Some(x) = at.and_then(|i| self.exchanges.get_mut(i)) {
            match dir {
                Dir::C2S => {
                    x.frames_c2s += 1;
                    x.bytes_c2s += wire;
                }
                Dir::S2C => {
                    x.frames_s2c += 1;
                    x.bytes_s2c += wire;
                }
            }
            if x.last_dir.is_some_and(|d| d != dir) {
                x.turns += 1;
            }
            x.last_dir = Some(dir);
            if !x.closed {
                x.end_ts = secs(ts_ns);
            }
        }
    }

    /// The exchange a frame belongs to, for the radio model.
    pub fn exchange_of_frame(&self, to: Option<MsgRef>) -> Option<u64> {
        self.frame_target(to).and_then(|i| self.exchanges.get(i)).map(|x| x.id)
    }

    pub fn spans(&mut self, spans: &[Span]) {
        for s in spans {
            self.book(s.class, s.len, s.msg);
        }
    }

    /// Applies dissector events at time `ts_ns`; `next_id` hands out global
    /// exchange ids.
    pub fn events(&mut self, ts_ns: i64, packet: u64, events: &mut Vec<Event>, next_id: &mut u64) {
        for e in events.drain(..) {
            match e {
                Event::Open { id, kind, what } => {
                    if self.open.len() >= MAX_OPEN {
                        let (_, i) = self.open.remove(0);
                        if let Some(x) = self.exchanges.get_mut(i) {
                            x.closed = true;
                        }
                    }
                    self.exchanges_total += 1;
                    if self.exchanges.len() >= MAX_KEPT {
                        continue;
                    }
                    let i = self.exchanges.len();
                    self.exchanges.push(Exchange {
                        id: *next_id,
                        flow: self.flow,
                        kind,
                        what,
                        start_ts: secs(ts_ns),
                        ttfb_s: None,
                        end_ts: secs(ts_ns),
                        classes: Ledger::default(),
                        wire_bytes: 0,
                        setup_share_bytes: 0.0,
                        total_cost_bytes: 0.0,
                        frames_c2s: 0,
                        frames_s2c: 0,
                        bytes_c2s: 0,
                        bytes_s2c: 0,
                        turns: 0,
                        open_packet: packet,
                        last_dir: None,
                        closed: false,
                    });
                    *next_id += 1;
                    self.ids.insert(id, i);
                    self.open.push((id, i));
                    self.current = Some(i);
                }
                Event::Describe { id, what } => {
                    if let Some(x) = self.ids.get(&id).and_then(|&i| self.exchanges.get_mut(i)) {
                        x.what = what;
                    }
                }
                Event::Responded { id } => {
                    if let Some(x) = self.ids.get(&id).and_then(|&i| self.exchanges.get_mut(i))
                        && x.ttfb_s.is_none()
                    {
                        x.ttfb_s = Some((secs(ts_ns) - x.start_ts).max(0.0));
                    }
                }
                Event::Close { id } => {
                    if let Some(&i) = self.ids.get(&id) {
                        if let Some(x) = self.exchanges.get_mut(i) {
                            x.end_ts = x.end_ts.max(secs(ts_ns));
                            x.closed = true;
                        }
                        self.open.retain(|&(oid, _)| oid != id);
                        self.closed_ids.push_back(id);
                        if self.closed_ids.len() > MAX_OPEN
                            && let Some(old) = self.closed_ids.pop_front()
                        {
                            // An id reused by a newer exchange points there now.
                            if self.ids.get(&old).is_some_and(|&i| self.exchanges.get(i).is_some_and(|x| x.closed)) {
                                self.ids.remove(&old);
                            }
                        }
                    }
                }
                Event::Malformed { bytes, reason } => {
                    self.malformed_bytes += bytes;
                    if self.malformed.len() < 16 {
                        self.malformed.push((bytes, reason));
                    }
                }
                Event::App { name } => self.app = Some(name),
            }
        }
    }

    /// Ends the flow: shares the setup cost among its exchanges.
    pub fn finish(&mut self) -> Vec<Exchange> {
        let mut xs = std::mem::take(&mut self.exchanges);
        let n = xs.len().max(1) as f64;
        let share = self.setup.total() as f64 / n;
        for x in &mut xs {
            x.wire_bytes = x.classes.total();
            x.setup_share_bytes = share;
            x.total_cost_bytes = x.wire_bytes as f64 + x.setup_share_bytes;
        }
        xs
    }
}
