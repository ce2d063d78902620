//! Exchanges: application messages paired with their timing and bytes, and
//! the per-flow ledger that attributes every byte to an exchange, to the
//! connection's setup, or to the flow as a whole.

use super::Ledger;
use crate::report::summary::ExchangeFigures;
use crate::vocab::Class;
use crate::vocab::{Dir, Event, Facets, MsgRef, Proto, Span};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Most exchanges a flow keeps open at once; older ones are closed.
const MAX_OPEN: usize = 256;
/// Closed exchanges a flow still holds (their last bytes, a late
/// acknowledgement or a retransmission may still name them) before it hands
/// them on: a flow holds a bounded number of exchanges, however long it lives.
const KEEP_CLOSED: usize = 16;

/// The exchanges all the flows of one table hold, against a cap: each flow
/// keeps a few, but a hundred thousand flows each keeping hundreds of
/// unanswered requests would hold gigabytes. Past the cap, a flow that gets
/// an event keeps only its current exchange, so what is held stays near the
/// cap plus one or two a live flow.
#[derive(Clone, Debug)]
pub struct LiveExchanges {
    /// The id the next exchange opened gets.
    pub next_id: u64,
    held: usize,
    max: usize,
    /// Message ids the dissectors of the live flows remember to spot
    /// repeats by (`Event::Remembering`), and how many they may.
    remembered: usize,
    max_remembered: usize,
    /// Set past `max` (or `max_remembered`), cleared only below three
    /// quarters of both: were it cleared as soon as one flow gave some
    /// back, every other flow would grow its lists again at once and keep
    /// them.
    tight: bool,
    /// Exchanges closed before their end to stay within the caps (a flow
    /// held `MAX_OPEN` open ones, or all flows held more than `max`).
    pub closed_early: u64,
    /// Exchanges opened past the lists' caps: counted, not handed on.
    pub unlisted: u64,
    /// Facts of the exchanges handed on, for the findings, until the flow
    /// table passes them on (after the packet, or the flow's end, that
    /// handed them on: all of one flow). One list for all flows: no flow
    /// allocates one.
    pub facts: Vec<ExchangeFacts>,
}

impl LiveExchanges {
    pub fn new(max: usize) -> LiveExchanges {
        let max_remembered = max.saturating_mul(REMEMBERED_PER_EXCHANGE);
        LiveExchanges {
            next_id: 0,
            held: 0,
            max,
            remembered: 0,
            max_remembered,
            tight: false,
            closed_early: 0,
            unlisted: 0,
            facts: Vec::new(),
        }
    }

    /// Message ids the live flows' dissectors remember.
    pub fn remembered(&self) -> usize {
        self.remembered
    }

    /// Exchanges the flows hold now.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Whether the flows hold more exchanges than allowed, or did and have
    /// not given enough back yet.
    pub fn over(&self) -> bool {
        self.tight
    }

    fn settle(&mut self) {
        let below = |n: usize, max: usize| n <= max - max / 4;
        if self.held > self.max || self.remembered > self.max_remembered {
            self.tight = true;
        } else if below(self.held, self.max) && below(self.remembered, self.max_remembered) {
            self.tight = false;
        }
    }

    /// (closed, open) exchanges a flow may keep now.
    fn keep(&self) -> (usize, usize) {
        if self.over() { (0, 1) } else { (KEEP_CLOSED, MAX_OPEN) }
    }
}

impl Default for LiveExchanges {
    fn default() -> Self {
        LiveExchanges::new(usize::MAX)
    }
}

/// Message ids remembered allowed for each exchange held: an id takes 32
/// bytes (twice that in a growing list), a held exchange up to 330, so
/// the ids add at most about 40 MB to the exchanges' 40 MB.
const REMEMBERED_PER_EXCHANGE: usize = 4;

/// Exchanges a long-lived flow holds: `KEEP_CLOSED` closed ones, the current
/// one and one more.
const LONG_LIVED: usize = KEEP_CLOSED + 2;

/// An exchange's flow when that flow is not listed.
pub const UNLISTED_FLOW: u64 = u64::MAX;

fn flow_index_back<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(Option::<u64>::deserialize(d)?.unwrap_or(UNLISTED_FLOW))
}

fn flow_index<S: serde::Serializer>(flow: &u64, s: S) -> Result<S::Ok, S::Error> {
    match *flow {
        UNLISTED_FLOW => s.serialize_none(),
        i => s.serialize_u64(i),
    }
}

/// One request/response (or one-way message) and what it cost.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Exchange {
    /// Index in the report's `exchanges`.
    pub id: u64,
    /// Index of the flow in the report's `flows`; `null` in the report when
    /// the flow is past that list's cap (`UNLISTED_FLOW` here).
    #[serde(serialize_with = "flow_index", deserialize_with = "flow_index_back")]
    pub flow: u64,
    pub kind: Proto,
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
    /// A DNS lookup's answers; its cost is added to the setup of the first
    /// connection that follows to one of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resolved: Vec<std::net::IpAddr>,
    /// Of `setup_share_bytes`, the share of the DNS lookup that found the server.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dns_share_bytes: f64,
    /// Index of the packet that opened it: orders exchanges the same way
    /// however the flows were spread over threads.
    #[serde(skip)]
    pub open_packet: u64,
    #[serde(skip)]
    last_dir: Option<Dir>,
    #[serde(skip)]
    start_ns: i64,
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

fn secs(ns: i64) -> f64 {
    ns as f64 / 1e9
}

/// The ledger of one flow, with its exchanges. Finished exchanges are
/// handed on (`take_done`) as the flow goes, not kept until it ends.
///
/// Every live flow holds one, in the flow table's slots: what most flows
/// never need is in `rare`, allocated the first time it is.
#[derive(Clone, Debug, Default)]
pub struct FlowLedger {
    pub ledger: Ledger,
    /// Connection overhead shared by the exchanges (setup, keep-alives,
    /// teardown, bytes of no exchange): only its total is ever needed.
    pub setup_bytes: u64,
    /// Exchanges not handed on yet, oldest first.
    live: VecDeque<Live>,
    /// The dissector id of the exchange the flow's current bytes belong to.
    current: Option<u32>,
    pub exchanges_total: u64,
    /// Inner/upgraded application name learned from the dissector.
    pub app: Option<Proto>,
    flow: u64,
    /// True once the connection is closing: later bytes are teardown.
    pub closing: bool,
    /// Message ids this flow's dissector remembers (`Event::Remembering`):
    /// 32 bits, as no memory holds 2^32 of them.
    remembered: u32,
    /// Changes with every push or removal in `live`.
    live_version: u32,
    /// The last walk of `live`: at which version, for which id, what it
    /// found (`NOT_HELD`: nothing).
    last_walk: std::cell::Cell<(u32, u32, u32)>,
    /// Handed-on exchanges waiting for the flow's end, by (kind, wire bytes,
    /// payload bytes). The first kept inline: most flows carry one kind of
    /// message, and a list each would be an allocation a flow.
    handed_first: Option<Handed>,
    /// An exchange was handed on already.
    handed_any: bool,
    rare: Option<Box<Rare>>,
}

/// What few flows of a large capture need: listed exchanges (only the
/// first ones of a capture may be), malformed bytes, many kinds of
/// exchange. Kept apart so that the others do not carry its room.
#[derive(Clone, Debug, Default)]
struct Rare {
    /// Finished exchanges waiting to be handed on.
    done: Vec<Exchange>,
    /// Bytes, reason and how many times in a row it was given.
    malformed: Vec<(u64, String, u64)>,
    malformed_bytes: u64,
    /// Handed-on exchanges past `handed_first`.
    handed_rest: Vec<Handed>,
    /// Exchanges summarised before the flow's end (past `HANDED_DISTINCT`).
    early: Vec<ExchangeFigures>,
}

/// Handed-on exchanges of one kind, wire and payload bytes: how many.
#[derive(Clone, Copy, Debug)]
struct Handed {
    kind: Proto,
    wire: u64,
    payload: u64,
    n: u32,
}

/// `FlowLedger::last_walk` found no exchange.
const NOT_HELD: u32 = u32::MAX;

/// What findings know of every exchange, listed or not: its times, bytes
/// each way and facets. Plain numbers, made once per exchange.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ExchangeFacts {
    pub kind: Proto,
    pub start_ns: i64,
    pub end_ns: i64,
    /// Wire bytes each way (the client's `up`), frames each way.
    pub up: u64,
    pub down: u64,
    pub frames_up: u32,
    pub frames_down: u32,
    /// Payload (`Class::Payload`) bytes each way, and application header bytes.
    pub payload_up: u64,
    pub payload_down: u64,
    pub header: u64,
    pub facets: Facets,
    /// The first exchange of its connection.
    pub first: bool,
    /// Answered (a response, an acknowledgement) at all.
    pub answered: bool,
    /// Its bytes by what they were for (`exchange_costs`).
    pub cost: CostBytes,
}

/// An exchange a flow holds. Its bytes are booked whole only while it may
/// still be listed (or is a DNS lookup, charged to a later connection
/// whatever the lists' caps): past the caps, nearly every exchange of a large
/// capture is only counted, and moving hundreds of bytes of it around cost
/// more than all else it needs. Unlisted or not, it takes its bytes from
/// the connection's setup the same way, and the radio model sees its id.
#[derive(Clone, Debug)]
struct Live {
    /// The dissector's id for it.
    key: u32,
    /// The table's id (`Exchange::id`).
    id: u64,
    closed: bool,
    whole: Option<Box<Exchange>>,
    /// What the summaries need of it, listed or not.
    kind: Proto,
    bytes: CostBytes,
    /// What the findings need of it, listed or not.
    facts: LiveFacts,
}

impl Live {
    /// `n` bytes of `class` in the exchange's figures.
    #[inline]
    fn book(&mut self, class: Class, n: u64) {
        self.bytes.add(class, n);
        if class == Class::AppHeader {
            self.facts.header = self.facts.header.saturating_add(clamp32(n));
        }
        if let Some(x) = self.whole.as_mut() {
            x.classes.add(class, n);
        }
    }
}

/// An exchange's wire bytes and what they were for, as `exchange_costs`
/// splits them; the rest of `wire` is headers (link, network, transport
/// and application).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CostBytes {
    pub wire: u64,
    pub payload: u64,
    /// TLS handshake records and record overhead.
    pub tls: u64,
    /// TCP control frames and application control messages.
    pub control: u64,
    pub retransmission: u64,
}

impl CostBytes {
    #[inline]
    pub fn add(&mut self, class: Class, n: u64) {
        self.wire += n;
        match class {
            Class::Payload => self.payload += n,
            Class::TlsHandshake | Class::TlsRecordOverhead => self.tls += n,
            Class::TcpControl | Class::AppControl => self.control += n,
            Class::Retransmission => self.retransmission += n,
            Class::Link | Class::Network | Class::Transport | Class::AppHeader => {}
        }
    }

    pub fn merge(&mut self, o: &CostBytes) {
        self.wire += o.wire;
        self.payload += o.payload;
        self.tls += o.tls;
        self.control += o.control;
        self.retransmission += o.retransmission;
    }

    /// Link, network, transport and application headers.
    pub fn headers(&self) -> u64 {
        self.wire.saturating_sub(self.payload + self.tls + self.control + self.retransmission)
    }
}

/// What a held exchange keeps for its `ExchangeFacts`: small, since every
/// live flow holds a few exchanges.
#[derive(Clone, Copy, Debug, Default)]
struct LiveFacts {
    start_ns: i64,
    end_ns: i64,
    up: u32,
    down: u32,
    payload_up: u32,
    header: u32,
    frames_up: u16,
    frames_down: u16,
    answered: bool,
    facets: Facets,
}

/// Distinct (kind, wire bytes, payload bytes) of handed-on exchanges a
/// flow keeps until it ends, when their setup share is known; exchanges of
/// a flow past it are summarised at once with the share so far. Flows of
/// one message size (most IoT traffic) never reach it.
const HANDED_DISTINCT: usize = 32;

/// The kind of exchange that is always booked whole (see `Live`).
const LOOKUP_KIND: Proto = Proto::Dns;

impl FlowLedger {
    pub fn new(flow: u64) -> FlowLedger {
        FlowLedger { flow, ..Default::default() }
    }

    #[inline]
    fn live_index(&self, id: u32) -> Option<usize> {
        // Newest first: a reused id names its latest exchange. Nearly
        // always the newest itself, checked before walking the list.
        let last = self.live.len().checked_sub(1)?;
        match self.live.get(last) {
            Some(l) if l.key == id => Some(last),
            _ => {
                // Else the bytes of one older exchange, many spans in a row
                // (a long answer to the oldest of hundreds of pipelined
                // requests, or to one handed on already): walked once.
                let (version, key, at) = self.last_walk.get();
                if version == self.live_version && key == id {
                    return (at != NOT_HELD).then_some(at as usize);
                }
                let at = self.live.iter().rposition(|l| l.key == id);
                let cached = at.and_then(|i| u32::try_from(i).ok()).unwrap_or(NOT_HELD);
                self.last_walk.set((self.live_version, id, cached));
                at
            }
        }
    }

    /// The list of held exchanges changed shape: positions found before
    /// are stale.
    fn live_changed(&mut self) {
        self.live_version = self.live_version.wrapping_add(1);
    }

    /// Where bytes tagged `msg` go: an exchange, or (None) the connection's
    /// shared overhead (setup, keep-alives, teardown).
    fn target(&self, msg: MsgRef) -> Option<usize> {
        if self.closing {
            return None;
        }
        match msg {
            MsgRef::Exchange(id) => self.live_index(id).or_else(|| self.current.and_then(|c| self.live_index(c))),
            MsgRef::Setup | MsgRef::Flow => None,
        }
    }

    /// Where a frame's own headers go: the exchange its payload went to,
    /// else the current one (a pure ACK belongs to what it acknowledges).
    fn frame_target(&self, to: Option<MsgRef>) -> Option<usize> {
        match to {
            Some(m) => self.target(m),
            None if self.closing => None,
            None => self.current.and_then(|c| self.live_index(c)),
        }
    }

    /// Books `parts` (bytes by class) to the live exchange at `at` (none:
    /// the flow's setup), and hands that exchange back, so that the caller
    /// need not look it up again.
    #[inline]
    fn book_at(&mut self, parts: &[(Class, u64)], at: Option<usize>) -> Option<&mut Live> {
        for &(c, n) in parts {
            self.ledger.add(c, n);
        }
        match at.and_then(|i| self.live.get_mut(i)) {
            Some(l) => {
                for &(c, n) in parts {
                    l.book(c, n);
                }
                Some(l)
            }
            None => {
                self.setup_bytes += parts.iter().map(|&(_, n)| n).sum::<u64>();
                None
            }
        }
    }

    /// Books `n` bytes of `class`.
    pub fn book(&mut self, class: Class, n: u64, msg: MsgRef) {
        self.book_at(&[(class, n)], self.target(msg));
    }

    /// Books a frame's lower-layer bytes (`to`: where its payload went).
    /// One look-up of the exchange for the whole frame, not one a class
    /// (every TCP/UDP frame comes here).
    pub fn book_frame(&mut self, ts_ns: i64, dir: Dir, lower: &[(Class, u64)], wire: u64, to: Option<MsgRef>) {
        let at = self.frame_target(to);
        let Some(l) = self.book_at(lower, at) else { return };
        let f = &mut l.facts;
        match dir {
            Dir::C2S => {
                f.up = f.up.saturating_add(clamp32(wire));
                f.frames_up = f.frames_up.saturating_add(1);
            }
            Dir::S2C => {
                f.down = f.down.saturating_add(clamp32(wire));
                f.frames_down = f.frames_down.saturating_add(1);
            }
        }
        if !l.closed {
            f.end_ns = ts_ns;
        }
        if let Some(x) = l.whole.as_mut() {
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
            if !l.closed {
                x.end_ts = secs(ts_ns);
            }
        }
    }

    /// The exchange a frame belongs to, for the radio model.
    pub fn exchange_of_frame(&self, to: Option<MsgRef>) -> Option<u64> {
        self.frame_target(to).and_then(|i| self.live.get(i)).map(|l| l.id)
    }

    /// Books a dissector call's spans, of bytes sent in `dir`.
    pub fn spans(&mut self, spans: &[Span], dir: Dir) {
        for s in spans {
            let at = self.target(s.msg);
            if let Some(l) = self.book_at(&[(s.class, s.len)], at)
                && dir == Dir::C2S
                && s.class == Class::Payload
            {
                l.facts.payload_up = l.facts.payload_up.saturating_add(clamp32(s.len));
            }
        }
    }

    /// Applies dissector events at time `ts_ns`; `live` hands out the
    /// table's exchange ids and counts what its flows hold. `listable`:
    /// whether exchanges opened now may be listed.
    pub fn events(
        &mut self,
        ts_ns: i64,
        packet: u64,
        listable: bool,
        events: &mut Vec<Event>,
        live: &mut LiveExchanges,
    ) {
        for e in events.drain(..) {
            match e {
                Event::Open { id, kind, what } => {
                    self.exchanges_total += 1;
                    if self.live.len() == self.live.capacity() {
                        self.live.reserve_exact(live_growth(self.live.capacity()));
                    }
                    let whole = (listable || kind == LOOKUP_KIND).then(|| {
                        Box::new(Exchange {
                            id: live.next_id,
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
                            resolved: Vec::new(),
                            dns_share_bytes: 0.0,
                            open_packet: packet,
                            last_dir: None,
                            start_ns: ts_ns,
                        })
                    });
                    if whole.is_none() {
                        live.unlisted += 1;
                    }
                    self.live.push_back(Live {
                        key: id,
                        id: live.next_id,
                        closed: false,
                        whole,
                        kind,
                        bytes: CostBytes::default(),
                        facts: LiveFacts { start_ns: ts_ns, end_ns: ts_ns, ..Default::default() },
                    });
                    self.live_changed();
                    live.next_id += 1;
                    live.held += 1;
                    self.current = Some(id);
                }
                Event::Describe { id, what } => {
                    if let Some(x) = self.whole(id) {
                        x.what = what;
                    }
                }
                Event::Facets { id, facets } => {
                    if let Some(l) = self.live_index(id).and_then(|i| self.live.get_mut(i)) {
                        l.facts.facets.add(&facets);
                    }
                }
                Event::Responded { id } => {
                    if let Some(l) = self.live_index(id).and_then(|i| self.live.get_mut(i)) {
                        l.facts.answered = true;
                    }
                    if let Some(x) = self.whole(id)
                        && x.ttfb_s.is_none()
                    {
                        // From the nanosecond clock: seconds since the epoch
                        // subtracted as floats leave noise below the microsecond.
                        x.ttfb_s = Some(secs(ts_ns.saturating_sub(x.start_ns).max(0)));
                    }
                }
                Event::Close { id } | Event::GaveUp { id } => {
                    if let Some(l) = self.live_index(id).and_then(|i| self.live.get_mut(i)) {
                        if matches!(e, Event::GaveUp { .. }) && !l.closed {
                            live.closed_early += 1;
                        }
                        l.closed = true;
                        l.facts.end_ns = l.facts.end_ns.max(ts_ns);
                        if let Some(x) = l.whole.as_mut() {
                            x.end_ts = x.end_ts.max(secs(ts_ns));
                        }
                    }
                }
                Event::Malformed { bytes, reason } => {
                    let rare = self.rare();
                    rare.malformed_bytes += bytes;
                    // The same reason again (a flood of one broken message,
                    // gap after gap in a cut capture) adds to the last one
                    // rather than holding and showing a copy each time.
                    let held = rare.malformed.len();
                    match rare.malformed.last_mut() {
                        Some((n, why, times)) if *why == reason => {
                            *n += bytes;
                            *times += 1;
                        }
                        _ if held < 16 => rare.malformed.push((bytes, reason, 1)),
                        _ => {}
                    }
                }
                Event::Resolved { id, addrs } => {
                    if let Some(x) = self.whole(id) {
                        x.resolved = addrs;
                    }
                }
                Event::App { proto } => self.app = Some(proto),
                Event::Remembering { change } => {
                    let now = self.remembered.saturating_add_signed(change);
                    live.remembered = (live.remembered + now as usize).saturating_sub(self.remembered as usize);
                    self.remembered = now;
                }
            }
        }
        live.settle();
        self.retire(live);
        live.settle();
    }

    /// The whole exchange the dissector calls `id`, if it is held whole.
    fn whole(&mut self, id: u32) -> Option<&mut Exchange> {
        let i = self.live_index(id)?;
        self.live.get_mut(i)?.whole.as_deref_mut()
    }

    /// Hands on the oldest closed exchanges past what `live` lets a flow
    /// keep (never the current one), closing the oldest open ones past it.
    fn retire(&mut self, live: &mut LiveExchanges) {
        let (keep_closed, keep_open) = live.keep();
        // Runs after every dissector call: most flows hold too few
        // exchanges for there to be anything to hand on.
        if self.live.len() <= keep_closed.min(keep_open) {
            return;
        }
        let held = self.live.len();
        let closed = self.live.iter().filter(|l| l.closed).count();
        let open = self.live.len() - closed;
        let (mut extra_closed, mut extra_open) = (closed.saturating_sub(keep_closed), open.saturating_sub(keep_open));
        let current = self.current;
        // Oldest first, removed in place: they are at the front.
        let mut i = 0;
        while extra_closed + extra_open > 0 {
            let Some(l) = self.live.get_mut(i) else { break };
            let hand_on = current != Some(l.key) && if l.closed { extra_closed > 0 } else { extra_open > 0 };
            if !hand_on {
                i += 1;
                continue;
            }
            if l.closed {
                extra_closed -= 1;
            } else {
                extra_open -= 1;
                l.closed = true;
                live.closed_early += 1;
            }
            if let Some(l) = self.live.remove(i) {
                self.live_changed();
                live.held -= 1;
                self.hand_figures(&l, &mut live.facts);
                if let Some(x) = l.whole {
                    self.rare().done.push(finished(*x));
                }
            }
        }
        self.live.shrink_to(room_after(self.live.capacity(), held));
    }

    /// Keeps a handed-on exchange's figures for the summaries, and its
    /// facts for the findings.
    fn hand_figures(&mut self, l: &Live, to: &mut Vec<ExchangeFacts>) {
        let f = &l.facts;
        let facts = ExchangeFacts {
            kind: l.kind,
            start_ns: f.start_ns,
            end_ns: f.end_ns,
            up: u64::from(f.up),
            down: u64::from(f.down),
            frames_up: u32::from(f.frames_up),
            frames_down: u32::from(f.frames_down),
            payload_up: u64::from(f.payload_up),
            payload_down: l.bytes.payload.saturating_sub(u64::from(f.payload_up)),
            header: u64::from(f.header),
            facets: f.facets,
            first: !self.handed_any,
            answered: f.answered,
            cost: l.bytes,
        };
        self.handed_any = true;
        to.push(facts);
        let (kind, wire, payload) = (l.kind, l.bytes.wire, l.bytes.payload);
        let same = |h: &Handed| h.kind == kind && h.wire == wire && h.payload == payload;
        match &mut self.handed_first {
            None => {
                self.handed_first = Some(Handed { kind, wire, payload, n: 1 });
                return;
            }
            Some(h) if same(h) => {
                h.n += 1;
                return;
            }
            _ => {}
        }
        let (setup, exchanges) = (self.setup_bytes, self.exchanges_total);
        let rare = self.rare();
        if let Some(h) = rare.handed_rest.iter_mut().find(|h| same(h)) {
            h.n += 1;
        } else if rare.handed_rest.len() + 1 < HANDED_DISTINCT {
            rare.handed_rest.push(Handed { kind, wire, payload, n: 1 });
        } else {
            rare.early.push(ExchangeFigures {
                kind: l.kind,
                wire_bytes: wire,
                payload_bytes: payload,
                cost_bytes: wire as f64 + setup_share(setup, exchanges),
            });
        }
    }

    /// Hands the exchanges finished since the last call to `to`.
    pub fn take_done(&mut self, to: impl FnMut(Exchange)) {
        if let Some(rare) = self.rare.as_mut() {
            rare.done.drain(..).for_each(to);
            // Only exchanges that may be listed (and lookups) pass through
            // here, a few in all: room kept for them in every live flow would
            // cost more.
            rare.done.shrink_to(0);
        }
    }

    /// Ends the flow: every exchange still held is finished and handed on
    /// (after those `take_done` still holds).
    pub fn finish(&mut self, live: &mut LiveExchanges) -> impl Iterator<Item = Exchange> + '_ {
        self.current = None;
        live.held -= self.live.len();
        live.remembered = live.remembered.saturating_sub(std::mem::take(&mut self.remembered) as usize);
        live.settle();
        self.live_changed();
        let held = std::mem::take(&mut self.live);
        for l in &held {
            self.hand_figures(l, &mut live.facts);
        }
        let done = self.rare.as_mut().map(|r| r.done.drain(..));
        done.into_iter().flatten().chain(held.into_iter().filter_map(|l| l.whole.map(|x| finished(*x))))
    }

    /// At the flow's end: the figures of every exchange not summarised
    /// yet, each with its share of the flow's setup, to `to`.
    pub fn take_handed(&mut self, mut to: impl FnMut(ExchangeFigures, u32)) {
        let share = setup_share(self.setup_bytes, self.exchanges_total);
        let rest = self.rare.as_mut().map(|r| r.handed_rest.drain(..));
        for Handed { kind, wire, payload, n } in self.handed_first.take().into_iter().chain(rest.into_iter().flatten())
        {
            to(ExchangeFigures { kind, wire_bytes: wire, payload_bytes: payload, cost_bytes: wire as f64 + share }, n);
        }
    }

    #[inline]
    pub fn has_early(&self) -> bool {
        self.rare.as_ref().is_some_and(|r| !r.early.is_empty())
    }

    /// Figures of the exchanges summarised early since the last call.
    pub fn take_early(&mut self) -> Vec<ExchangeFigures> {
        self.rare.as_mut().map(|r| std::mem::take(&mut r.early)).unwrap_or_default()
    }

    /// The flow's index (`Exchange::flow`).
    #[inline]
    pub fn flow(&self) -> u64 {
        self.flow
    }

    /// Bytes the dissector called malformed.
    pub fn malformed_bytes(&self) -> u64 {
        self.rare.as_ref().map_or(0, |r| r.malformed_bytes)
    }

    /// Why bytes were malformed: bytes, reason and how many times in a row
    /// it was given (at most 16 reasons).
    pub fn take_malformed(&mut self) -> Vec<(u64, String, u64)> {
        self.rare.as_mut().map(|r| std::mem::take(&mut r.malformed)).unwrap_or_default()
    }

    fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_default()
    }
}

/// Room to add to a full list of `cap` live exchanges. Many flows hold one
/// exchange in all (a lookup, a report sent once), most a few at a time,
/// long-lived ones up to `KEEP_CLOSED` closed ones and the current one: the
/// list grows to those sizes first, then doubles.
fn live_growth(cap: usize) -> usize {
    match cap {
        0 => 1,
        1..4 => 4 - cap,
        4..8 => 8 - cap,
        8..LONG_LIVED => LONG_LIVED - cap,
        _ => cap,
    }
}

/// Room to keep in a list of `cap` that just held `used`: a flow that once
/// held hundreds (made to hand them on at once by the caps) gives the room
/// back, one that holds hundreds at every packet keeps it.
fn room_after(cap: usize, used: usize) -> usize {
    let need = used.max(LONG_LIVED);
    if cap > 4 * need { need } else { cap }
}

/// An exchange handed on: its wire bytes fixed. Its share of the setup is
/// known only when its flow ends (`Exchange::share_setup`).
fn finished(mut x: Exchange) -> Exchange {
    x.wire_bytes = x.classes.total();
    x.total_cost_bytes = x.wire_bytes as f64;
    x
}

/// Byte counts a held exchange keeps in 32 bits (an exchange of more than
/// 4 GiB is counted as 4 GiB by the findings; the ledger keeps all of it).
fn clamp32(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// One exchange's even share of its connection's `setup` bytes, over
/// `exchanges` exchanges.
pub fn setup_share(setup: u64, exchanges: u64) -> f64 {
    setup as f64 / exchanges.max(1) as f64
}

impl Exchange {
    /// Adds its even share of its connection's overhead: `setup` bytes over
    /// `exchanges` exchanges.
    pub fn share_setup(&mut self, setup: u64, exchanges: u64) {
        self.setup_share_bytes = setup_share(setup, exchanges);
        self.total_cost_bytes = self.wire_bytes as f64 + self.setup_share_bytes;
    }

    /// Adds its even share of the DNS lookup its connection needed.
    pub fn share_dns(&mut self, lookup_bytes: f64, exchanges: u64) {
        let share = lookup_bytes / exchanges.max(1) as f64;
        self.dns_share_bytes += share;
        self.setup_share_bytes += share;
        self.total_cost_bytes += share;
    }
}

#[cfg(test)]
mod tests;
