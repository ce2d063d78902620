//! What the detectors keep while the capture goes by: aggregates over every
//! flow and every exchange, listed or not, in bounded memory.
//!
//! Each worker keeps its own `Streams`; `merge` adds them up. Everything is
//! kept in integers and in sets that keep the smallest keys (`Capped`,
//! `Firsts`), so the merged state depends only on what was seen, never on how
//! flows were spread over threads, and a report is the same for any number
//! of jobs. What a cap drops is said in the findings' `limits`.

use crate::flow::{Endpoint, FlowRecord};
use crate::ledger::Class;
use crate::ledger::exchange::ExchangeFacts;
use crate::vocab::{L4, Method, Proto};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::net::{IpAddr, SocketAddr};

/// Most resource groups (one client asking one server for one resource)
/// and server groups kept; past them the groups with the largest keys go.
pub const MAX_GROUPS: usize = 2048;
/// Exchanges of a resource group kept for timing (the first by time).
pub const SAMPLES: usize = 32;
/// Connection attempts counted per server in 50 ms windows: most windows.
pub const MAX_ATTEMPT_WINDOWS: usize = 16_384;
/// Devices whose messages and connections are kept for re-simulation, and
/// how many of each (the first by time).
pub const MAX_DEVICES: usize = 16;
pub const DEVICE_MESSAGES: usize = 2048;
pub const DEVICE_CONNECTIONS: usize = 512;
/// Distinct clients counted exactly per server; past it, "at least".
pub const CLIENTS_COUNTED: usize = 32;

/// The window connection attempts are counted in.
pub const ATTEMPT_WINDOW_NS: i64 = 50_000_000;
/// Exchanges of a resource group held back to be taken in time order by
/// its retry tally (`RetryTally`): facts come as exchanges end, from one
/// worker's flows after another's, so nearly but not quite in order.
pub const RETRY_REORDER: usize = 64;
/// Most gap values a retry tally counts (the gaps to the millisecond, or
/// coarser for a longer `retry_max_gap_s`): a bound on its memory.
pub const RETRY_GAP_STEPS: i64 = 1000;

/// The `n` smallest items seen (in any order of arrival): a max-heap of them.
#[derive(Clone, Debug)]
pub struct Firsts<T: Ord> {
    heap: BinaryHeap<T>,
    n: usize,
    /// Items seen, kept or not.
    pub seen: u64,
}

impl<T: Ord + Clone> Firsts<T> {
    pub fn new(n: usize) -> Self {
        Firsts { heap: BinaryHeap::new(), n, seen: 0 }
    }
    pub fn add(&mut self, x: T) {
        self.seen += 1;
        self.keep(x);
    }
    fn keep(&mut self, x: T) {
        if self.heap.len() < self.n {
            self.heap.push(x);
        } else if self.heap.peek().is_some_and(|top| x < *top) {
            self.heap.pop();
            self.heap.push(x);
        }
    }
    pub fn merge(&mut self, o: &Firsts<T>) {
        self.seen += o.seen;
        for x in o.heap.iter() {
            self.keep(x.clone());
        }
    }
    /// The items kept, smallest first.
    pub fn sorted(&self) -> Vec<T> {
        self.heap.clone().into_sorted_vec()
    }
    pub fn len(&self) -> usize {
        self.heap.len()
    }
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

/// A map that keeps at most `cap` keys, the smallest: which keys survive
/// depends on the keys seen, not on their order. Most calls on a full map
/// bring a key larger than all it keeps (a fleet has thousands of devices
/// and servers, the map keeps the first few by address): those are turned
/// away by one comparison with the largest key. The rest are looked up by
/// hash, once; the values sit in a list of their own, so the hash table
/// holds small slot numbers and a rehash moves no value. The keys' order
/// is kept apart, touched only when a key comes or goes.
#[derive(Clone, Debug)]
pub struct Capped<K: Ord + std::hash::Hash, V> {
    /// Each key's place in `values`.
    slots: foldhash::HashMap<K, u32>,
    values: Vec<V>,
    keys: BTreeSet<K>,
    /// The largest key kept.
    largest: Option<K>,
    cap: usize,
    /// A key was dropped for the cap.
    pub saturated: bool,
}

impl<K: Ord + Clone + std::hash::Hash, V: Default> Capped<K, V> {
    pub fn new(cap: usize) -> Self {
        Capped {
            slots: foldhash::HashMap::default(),
            values: Vec::new(),
            keys: BTreeSet::new(),
            largest: None,
            cap: cap.min(u32::MAX as usize),
            saturated: false,
        }
    }
    /// The entry for `k`, unless the map is full of smaller keys.
    #[inline]
    pub fn entry(&mut self, k: &K) -> Option<&mut V> {
        if self.keys.len() >= self.cap && self.largest.as_ref().is_none_or(|largest| k > largest) {
            self.saturated = true;
            return None;
        }
        match self.slots.get(k) {
            Some(&slot) => self.values.get_mut(slot as usize),
            None => self.add(k),
        }
    }
    /// A key not kept yet, smaller than the largest if the map is full: in
    /// a new place, or in the largest key's, which goes.
    fn add(&mut self, k: &K) -> Option<&mut V> {
        let slot = if self.keys.len() >= self.cap {
            self.saturated = true;
            let largest = self.keys.pop_last()?;
            let slot = self.slots.remove(&largest)?;
            *self.values.get_mut(slot as usize)? = V::default();
            slot
        } else {
            self.values.push(V::default());
            u32::try_from(self.values.len() - 1).ok()?
        };
        self.keys.insert(k.clone());
        self.slots.insert(k.clone(), slot);
        self.largest = self.keys.last().cloned();
        self.values.get_mut(slot as usize)
    }
    pub fn get(&self, k: &K) -> Option<&V> {
        self.values.get(*self.slots.get(k)? as usize)
    }
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && !self.saturated
    }
    /// The entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.keys.iter().filter_map(|k| self.get(k).map(|v| (k, v)))
    }
    pub fn merge(&mut self, o: &Capped<K, V>, add: impl Fn(&mut V, &V)) {
        self.saturated |= o.saturated;
        for (k, v) in o.iter() {
            if let Some(mine) = self.entry(k) {
                add(mine, v);
            }
        }
    }
}

/// One client asking one server for one resource (or, encrypted, one
/// server asked again and again).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceKey {
    pub kind: Proto,
    pub server: SocketAddr,
    pub method: Method,
    pub resource: u64,
    pub client: IpAddr,
}

/// An exchange, for timing: ordered by start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Sample {
    pub start_ns: i64,
    pub end_ns: i64,
    pub up: u64,
    pub down: u64,
    pub status: u16,
}

#[derive(Clone, Debug)]
pub struct ResourceGroup {
    pub count: u64,
    /// Exchanges that opened their connection.
    pub connections: u64,
    pub up: u64,
    pub down: u64,
    pub payload_up: u64,
    pub payload_down: u64,
    pub header: u64,
    pub answered: u64,
    pub with_validators: u64,
    pub statuses: BTreeMap<u16, u64>,
    pub samples: Firsts<Sample>,
    /// What the HTTP findings keep of its bodies.
    pub bodies: super::http::BodyFacts,
    /// HTTP repeats after an error answer, over every exchange.
    pub retries: RetryTally,
}

/// Repeats of a resource after a 429 or 5xx answer, sooner than the
/// streams' `retry_max_gap_ns` after that answer: over every exchange of
/// the group, in bounded memory. Exchanges are taken in time order (by
/// start) through a buffer of `RETRY_REORDER`; each is paired with the one
/// taken before it. One arriving later than that buffer can hold (after a
/// later exchange was taken) is counted in `late` and paired with none.
#[derive(Clone, Debug, Default)]
pub struct RetryTally {
    /// Held back for order, smallest start first.
    pending: Vec<Sample>,
    /// The last exchange taken in order.
    last: Option<Sample>,
    pub retries: u64,
    /// The retries' wire bytes.
    pub bytes: u64,
    /// Retries by the status of the answer before them.
    pub after_status: BTreeMap<u16, u64>,
    /// First error answered and last retry made (start times).
    pub span: Option<(i64, i64)>,
    /// Retries by their gap after the answer, in steps of `gap_step_ns`.
    pub gaps: BTreeMap<i64, u64>,
    pub gap_step_ns: i64,
    pub late: u64,
}

impl RetryTally {
    fn add(&mut self, x: Sample, max_gap_ns: i64) {
        let at = self.pending.partition_point(|p| p <= &x);
        self.pending.insert(at, x);
        if self.pending.len() > RETRY_REORDER {
            let first = self.pending.remove(0);
            self.take(first, max_gap_ns);
        }
    }

    /// `x`, the next exchange in time order: a retry if the one before it
    /// was answered 429 or 5xx and `x` came sooner than `max_gap_ns` after.
    fn take(&mut self, x: Sample, max_gap_ns: i64) {
        let Some(a) = self.last else {
            self.last = Some(x);
            return;
        };
        if x < a {
            self.late += 1;
            return;
        }
        self.last = Some(x);
        if !(a.status == 429 || a.status >= 500) {
            return;
        }
        let gap = x.start_ns.saturating_sub(a.end_ns.max(a.start_ns));
        if gap >= max_gap_ns {
            return;
        }
        self.retries += 1;
        self.bytes += x.up + x.down;
        *self.after_status.entry(a.status).or_default() += 1;
        self.span = Some(self.span.map_or((a.start_ns, x.start_ns), |(s, e)| (s.min(a.start_ns), e.max(x.start_ns))));
        self.gap_step_ns = (max_gap_ns / RETRY_GAP_STEPS).max(1_000_000);
        *self.gaps.entry(gap.max(0) / self.gap_step_ns).or_default() += 1;
    }

    /// The tally with the exchanges still held back taken too.
    pub fn finished(&self, max_gap_ns: i64) -> RetryTally {
        let mut t = self.clone();
        for x in std::mem::take(&mut t.pending) {
            t.take(x, max_gap_ns);
        }
        t
    }

    /// The median retry gap (s), to the gap step.
    pub fn median_gap_s(tallies: &[&RetryTally]) -> f64 {
        let mut steps: BTreeMap<i64, u64> = BTreeMap::new();
        for t in tallies {
            for (g, n) in &t.gaps {
                *steps.entry(g * t.gap_step_ns).or_default() += n;
            }
        }
        let n: u64 = steps.values().sum();
        // The middle one (or the two middle ones' mean), as `stats::median`.
        let nth = |k: u64| {
            let mut seen = 0;
            steps.iter().find_map(|(g, c)| {
                seen += c;
                (seen > k).then_some(*g as f64 / 1e9)
            })
        };
        match n {
            0 => 0.0,
            n if n % 2 == 1 => nth(n / 2).unwrap_or(0.0),
            n => (nth(n / 2 - 1).unwrap_or(0.0) + nth(n / 2).unwrap_or(0.0)) / 2.0,
        }
    }

    /// `o` added: its counts, and its held-back exchanges taken in here. The
    /// pair across the two (this one's last with its first) is not seen:
    /// only a state fed by every fact is exact (each run is one such).
    fn merge(&mut self, o: &RetryTally, max_gap_ns: i64) {
        self.retries += o.retries;
        self.bytes += o.bytes;
        for (s, n) in &o.after_status {
            *self.after_status.entry(*s).or_default() += n;
        }
        self.span = match (self.span, o.span) {
            (Some(a), Some(b)) => Some((a.0.min(b.0), a.1.max(b.1))),
            (a, b) => a.or(b),
        };
        self.gap_step_ns = self.gap_step_ns.max(o.gap_step_ns);
        for (g, n) in &o.gaps {
            *self.gaps.entry(*g).or_default() += n;
        }
        self.late += o.late;
        if self.last.is_none() {
            self.last = o.last;
        }
        for x in &o.pending {
            self.add(*x, max_gap_ns);
        }
    }
}

impl Default for ResourceGroup {
    fn default() -> Self {
        ResourceGroup {
            count: 0,
            connections: 0,
            up: 0,
            down: 0,
            payload_up: 0,
            payload_down: 0,
            header: 0,
            answered: 0,
            with_validators: 0,
            statuses: BTreeMap::new(),
            samples: Firsts::new(SAMPLES),
            bodies: Default::default(),
            retries: Default::default(),
        }
    }
}

impl ResourceGroup {
    fn merge(&mut self, o: &ResourceGroup, retry_max_gap_ns: i64) {
        self.count += o.count;
        self.connections += o.connections;
        self.up += o.up;
        self.down += o.down;
        self.payload_up += o.payload_up;
        self.payload_down += o.payload_down;
        self.header += o.header;
        self.answered += o.answered;
        self.with_validators += o.with_validators;
        for (s, n) in &o.statuses {
            crate::dissect::bump_capped(&mut self.statuses, s, *n, 16);
        }
        self.samples.merge(&o.samples);
        self.bodies.merge(&o.bodies);
        self.retries.merge(&o.retries, retry_max_gap_ns);
    }
}

/// What the flows to one server showed.
#[derive(Clone, Debug)]
pub struct ServerGroup {
    pub app: Proto,
    pub flows: u64,
    /// TCP connections opened (a SYN seen).
    pub opened: u64,
    /// Of those, connections that carried exactly one exchange, and what
    /// their setup (TCP control, TLS handshake, application control) and
    /// all their bytes came to.
    pub one_exchange: u64,
    pub one_exchange_setup: u64,
    pub one_exchange_wire: u64,
    /// Connections refused or reset before any data.
    pub refused: u64,
    pub refused_bytes: u64,
    /// Flows the server answered (bytes of payload back).
    pub answered_flows: u64,
    /// Flows with a TLS handshake.
    pub tls_flows: u64,
    /// Retransmitted bytes of its flows: with nothing listening, the
    /// client's repeats are not loss.
    pub retransmission_bytes: u64,
    /// ICMP port unreachable errors for it, and their wire bytes.
    pub unreachable: u64,
    pub unreachable_bytes: u64,
    /// The smallest `CLIENTS_COUNTED` client addresses.
    pub clients: BTreeSet<IpAddr>,
}

impl Default for ServerGroup {
    fn default() -> Self {
        ServerGroup {
            app: Proto::Unknown,
            flows: 0,
            opened: 0,
            one_exchange: 0,
            one_exchange_setup: 0,
            one_exchange_wire: 0,
            refused: 0,
            refused_bytes: 0,
            answered_flows: 0,
            tls_flows: 0,
            retransmission_bytes: 0,
            unreachable: 0,
            unreachable_bytes: 0,
            clients: BTreeSet::new(),
        }
    }
}

impl ServerGroup {
    fn merge(&mut self, o: &ServerGroup) {
        self.app = known_min(self.app, o.app);
        self.flows += o.flows;
        self.opened += o.opened;
        self.one_exchange += o.one_exchange;
        self.one_exchange_setup += o.one_exchange_setup;
        self.one_exchange_wire += o.one_exchange_wire;
        self.refused += o.refused;
        self.refused_bytes += o.refused_bytes;
        self.answered_flows += o.answered_flows;
        self.tls_flows += o.tls_flows;
        self.retransmission_bytes += o.retransmission_bytes;
        self.unreachable += o.unreachable;
        self.unreachable_bytes += o.unreachable_bytes;
        for c in &o.clients {
            self.add_client(*c);
        }
    }

    /// Distinct clients (at least this many when `CLIENTS_COUNTED` were kept).
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    fn add_client(&mut self, c: IpAddr) {
        if self.clients.len() < CLIENTS_COUNTED || self.clients.last().is_some_and(|l| c < *l) {
            self.clients.insert(c);
            if self.clients.len() > CLIENTS_COUNTED {
                self.clients.pop_last();
            }
        }
    }
}

/// Connection attempts in one 50 ms window.
#[derive(Clone, Copy, Debug, Default)]
pub struct Attempts {
    pub attempts: u64,
    pub refused: u64,
    pub refused_bytes: u64,
    /// Of `refused_bytes`, the IP bytes (link-layer bytes out): billed.
    pub refused_billed_bytes: u64,
}

/// A connection of a device, for re-simulation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Connection {
    pub start_ns: i64,
    pub end_ns: i64,
    pub server: SocketAddr,
    pub l4: L4,
    pub app: Proto,
    /// Bytes of no exchange: handshakes, keep-alives, teardown, by class
    /// (TCP control, TLS handshake, application control, the rest).
    pub tcp_control: u64,
    pub tls_handshake: u64,
    pub app_control: u64,
    pub setup_bytes: u64,
    pub control_frames: u64,
    pub exchanges: u64,
    pub syn: bool,
    /// Retransmitted bytes and frames (in its messages' bytes, or its setup's).
    pub retrans_bytes: u64,
    pub retrans_frames: u64,
}

/// An application message of a device, for re-simulation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Message {
    pub start_ns: i64,
    pub end_ns: i64,
    pub server: SocketAddr,
    pub kind: Proto,
    pub up: u64,
    pub down: u64,
    pub frames_up: u32,
    pub frames_down: u32,
    pub payload_up: u64,
    pub payload_down: u64,
    pub method: Method,
    pub resource: u64,
    pub first: bool,
    /// MQTT QoS of a PUBLISH; a CoAP request sent confirmable.
    pub qos: u8,
    pub confirmable: bool,
    /// Application header bytes, both ways.
    pub header: u64,
    /// What else the dissector knew of it (status, body hash...).
    pub facets: crate::vocab::Facets,
}

/// A DNS lookup of a device (a query and its answer), for re-simulation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Lookup {
    pub start_ns: i64,
    pub end_ns: i64,
    pub up: u64,
    pub down: u64,
}

/// One device's timeline, the first of it by time.
#[derive(Clone, Debug)]
pub struct Device {
    pub messages: Firsts<Message>,
    pub connections: Firsts<Connection>,
    /// Its DNS lookups (`seen` counts them all).
    pub lookups: Firsts<Lookup>,
}

impl Default for Device {
    fn default() -> Self {
        Device {
            messages: Firsts::new(DEVICE_MESSAGES),
            connections: Firsts::new(DEVICE_CONNECTIONS),
            lookups: Firsts::new(DEVICE_CONNECTIONS),
        }
    }
}

/// Header and payload bytes of one kind of exchange.
#[derive(Clone, Debug, Default)]
pub struct HeaderSums {
    pub exchanges: u64,
    pub header: u64,
    pub payload: u64,
}

/// A flow with retransmissions, for the worst-flows list.
pub type RetransFlow = (Reverse<u64>, Endpoint, Endpoint, Proto, i64);

/// What a flow worker tells the detectors, when they run on the radio
/// stage (workers on threads): the detectors' state is then kept once, not
/// once a worker. Their state does not depend on the order facts come in.
/// Facts travel unboxed, in a list a round: a box each would be an
/// allocation on one thread freed on another, for every exchange and flow.
#[derive(Clone, Debug)]
pub enum Fact {
    Exchange(SocketAddr, SocketAddr, ExchangeFacts),
    Flow(FlowFacts),
}

/// What the detectors read of a finished flow: about what an exchange's
/// facts take (a list of facts is as wide as its widest kind).
#[derive(Clone, Copy, Debug)]
pub struct FlowFacts {
    pub classes: crate::ledger::Ledger,
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub frames: u64,
    pub wire_bytes: u64,
    /// Of `wire_bytes`, every frame's link-layer bytes.
    pub link_bytes: u64,
    pub control_frames: u64,
    pub retransmitted_frames: u64,
    pub exchanges: u64,
    pub setup_bytes: u64,
    pub start_ts: f64,
    pub end_ts: f64,
    pub l4: L4,
    pub app: Proto,
    /// The application inside its tunnel (WebSocket, HTTP CONNECT).
    pub inner: Option<Proto>,
    /// A SYN seen; reset with no payload either way; payload from the server.
    pub syn: bool,
    pub refused: bool,
    pub answered: bool,
}

impl FlowFacts {
    pub fn of(f: &FlowRecord) -> FlowFacts {
        FlowFacts {
            classes: f.classes,
            client: f.client.0,
            server: f.server.0,
            frames: f.frames,
            wire_bytes: f.wire_bytes,
            link_bytes: f.link_bytes,
            control_frames: f.control_frames,
            retransmitted_frames: f.retransmitted_frames,
            exchanges: f.exchanges,
            setup_bytes: f.setup_bytes,
            start_ts: f.start_ts,
            end_ts: f.end_ts,
            l4: f.l4,
            app: f.app,
            inner: f.inner,
            syn: f.syn > 0,
            refused: f.rst > 0 && f.payload_bytes_c2s + f.payload_bytes_s2c == 0,
            answered: f.payload_bytes_s2c > 0,
        }
    }
}

/// Every detector's running state.
#[derive(Clone, Debug)]
pub struct Streams {
    pub resources: Capped<ResourceKey, ResourceGroup>,
    pub servers: Capped<(SocketAddr, L4), ServerGroup>,
    pub attempts: Capped<(SocketAddr, i64), Attempts>,
    pub devices: Capped<IpAddr, Device>,
    pub headers: BTreeMap<Proto, HeaderSums>,
    pub retransmission_bytes: u64,
    pub retransmitted_frames: u64,
    pub worst_retransmitters: Firsts<RetransFlow>,
    /// Flows with TLS handshake bytes, and those bytes.
    pub tls_handshake_flows: u64,
    pub tls_handshake_bytes: u64,
    /// Frames of flows. (Their link bytes are counted per frame where every
    /// frame is seen, `Input::link_bytes`: the ledger's `link` class leaves
    /// out TCP control frames'.)
    pub frames: u64,
    /// TCP control frames (headers only) and their bytes: one frame's headers.
    pub tcp_control_frames: u64,
    pub tcp_control_bytes: u64,
    /// `retry_max_gap_s` of the thresholds, in ns: the retry tallies count
    /// repeats sooner than this after an error answer.
    pub retry_max_gap_ns: i64,
}

impl Streams {
    /// An empty state for the detectors' `thresholds`.
    pub fn new(thresholds: &super::Thresholds) -> Streams {
        Streams { retry_max_gap_ns: (thresholds.retry_max_gap_s * 1e9) as i64, ..Default::default() }
    }
}

impl Default for Streams {
    fn default() -> Self {
        Streams {
            resources: Capped::new(MAX_GROUPS),
            servers: Capped::new(MAX_GROUPS),
            attempts: Capped::new(MAX_ATTEMPT_WINDOWS),
            devices: Capped::new(MAX_DEVICES),
            headers: BTreeMap::new(),
            retransmission_bytes: 0,
            retransmitted_frames: 0,
            worst_retransmitters: Firsts::new(5),
            tls_handshake_flows: 0,
            tls_handshake_bytes: 0,
            frames: 0,
            tcp_control_frames: 0,
            tcp_control_bytes: 0,
            retry_max_gap_ns: (super::Thresholds::default().retry_max_gap_s * 1e9) as i64,
        }
    }
}

/// Whether a kind of exchange is a request a client makes of a server
/// (grouped by resource).
fn requested(kind: Proto) -> bool {
    matches!(kind, Proto::Http | Proto::Http2 | Proto::Coap | Proto::Tls)
}

impl Streams {
    /// One exchange, listed or not.
    pub fn exchange(&mut self, client: SocketAddr, server: SocketAddr, x: &ExchangeFacts) {
        let f = &x.facets;
        let retry_max_gap_ns = self.retry_max_gap_ns;
        if requested(x.kind) {
            let key = ResourceKey { kind: x.kind, server, method: f.method, resource: f.resource, client: client.ip() };
            if let Some(g) = self.resources.entry(&key) {
                g.count += 1;
                g.connections += u64::from(x.first);
                g.up += x.up;
                g.down += x.down;
                g.payload_up += x.payload_up;
                g.payload_down += x.payload_down;
                g.header += x.header;
                g.answered += u64::from(x.answered);
                g.with_validators += u64::from(f.validators);
                if f.status != 0 {
                    crate::dissect::bump_capped(&mut g.statuses, &f.status, 1, 16);
                }
                g.bodies.add(x);
                let sample =
                    Sample { start_ns: x.start_ns, end_ns: x.end_ns, up: x.up, down: x.down, status: f.status };
                g.samples.add(sample);
                if matches!(x.kind, Proto::Http | Proto::Http2) {
                    g.retries.add(sample, retry_max_gap_ns);
                }
            }
        }
        if matches!(x.kind, Proto::Http | Proto::Http2 | Proto::Coap | Proto::Mqtt | Proto::Websocket) {
            let h = self.headers.entry(x.kind).or_default();
            h.exchanges += 1;
            h.header += x.header;
            let payload = x.payload_up + x.payload_down;
            h.payload += payload;
        }
        if x.kind == Proto::Dns
            && let Some(d) = self.devices.entry(&client.ip())
        {
            d.lookups.add(Lookup { start_ns: x.start_ns, end_ns: x.end_ns, up: x.up, down: x.down });
        }
        if x.kind != Proto::Dns
            && let Some(d) = self.devices.entry(&client.ip())
        {
            d.messages.add(Message {
                start_ns: x.start_ns,
                end_ns: x.end_ns,
                server,
                kind: x.kind,
                up: x.up,
                down: x.down,
                frames_up: x.frames_up,
                frames_down: x.frames_down,
                payload_up: x.payload_up,
                payload_down: x.payload_down,
                method: f.method,
                resource: f.resource,
                first: x.first,
                qos: f.qos,
                confirmable: f.confirmable,
                header: x.header,
                facets: *f,
            });
        }
    }

    /// One finished flow, listed or not.
    pub fn flow(&mut self, f: &FlowFacts) {
        let retrans = f.classes.get(Class::Retransmission);
        self.retransmission_bytes += retrans;
        self.retransmitted_frames += f.retransmitted_frames;
        if retrans > 0 {
            let start_ns = (f.start_ts * 1e9).round() as i64;
            self.worst_retransmitters.add((Reverse(retrans), Endpoint(f.client), Endpoint(f.server), f.app, start_ns));
        }
        let hs = f.classes.get(Class::TlsHandshake);
        if hs > 0 {
            self.tls_handshake_flows += 1;
            self.tls_handshake_bytes += hs;
        }
        self.frames += f.frames;
        if f.l4 == L4::Tcp {
            self.tcp_control_frames += f.control_frames;
            self.tcp_control_bytes += f.classes.get(Class::TcpControl);
        }
        let (app, refused) = (f.inner.unwrap_or(f.app), f.refused);
        let start_ns = (f.start_ts * 1e9).round() as i64;
        let end_ns = (f.end_ts * 1e9).round() as i64;
        if let Some(s) = self.servers.entry(&(f.server, f.l4)) {
            s.app = known_min(s.app, app);
            s.flows += 1;
            s.add_client(f.client.ip());
            s.answered_flows += u64::from(f.answered);
            s.tls_flows += u64::from(hs > 0);
            s.retransmission_bytes += retrans;
            if f.l4 == L4::Tcp && f.syn {
                s.opened += 1;
                if f.exchanges == 1 && f.wire_bytes > 0 {
                    s.one_exchange += 1;
                    s.one_exchange_setup += setup_of(f);
                    s.one_exchange_wire += f.wire_bytes;
                }
                if refused {
                    s.refused += 1;
                    s.refused_bytes += f.wire_bytes;
                }
            }
        }
        if f.l4 == L4::Tcp
            && f.syn
            && let Some(a) = self.attempts.entry(&(f.server, start_ns.div_euclid(ATTEMPT_WINDOW_NS)))
        {
            a.attempts += 1;
            if refused {
                a.refused += 1;
                a.refused_bytes += f.wire_bytes;
                a.refused_billed_bytes += f.wire_bytes.saturating_sub(f.link_bytes);
            }
        }
        if app != Proto::Dns
            && let Some(d) = self.devices.entry(&f.client.ip())
        {
            d.connections.add(Connection {
                start_ns,
                end_ns,
                server: f.server,
                l4: f.l4,
                app,
                tcp_control: f.classes.get(Class::TcpControl),
                tls_handshake: hs,
                app_control: f.classes.get(Class::AppControl),
                setup_bytes: f.setup_bytes,
                control_frames: f.control_frames,
                exchanges: f.exchanges,
                syn: f.syn,
                retrans_bytes: retrans,
                retrans_frames: f.retransmitted_frames,
            });
        }
    }

    /// An ICMP port unreachable error a server's host sent back for a
    /// datagram (or segment) from `client` to `server`: nothing listens
    /// there. It is the server's answer on the device's timeline.
    pub fn port_unreachable(&mut self, client: SocketAddr, server: SocketAddr, l4: L4, ts_ns: i64, wire_len: u32) {
        if let Some(s) = self.servers.entry(&(server, l4)) {
            s.add_client(client.ip());
            s.unreachable += 1;
            s.unreachable_bytes += u64::from(wire_len);
        }
        if let Some(d) = self.devices.entry(&client.ip()) {
            d.messages.add(Message {
                start_ns: ts_ns,
                end_ns: ts_ns,
                server,
                kind: Proto::Unknown,
                up: 0,
                down: u64::from(wire_len),
                frames_up: 0,
                frames_down: 1,
                payload_up: 0,
                payload_down: 0,
                method: Method::Unknown,
                resource: 0,
                first: false,
                qos: 0,
                confirmable: false,
                header: 0,
                facets: crate::vocab::Facets::default(),
            });
        }
    }

    pub fn fact(&mut self, f: &Fact) {
        match f {
            Fact::Exchange(client, server, x) => self.exchange(*client, *server, x),
            Fact::Flow(f) => self.flow(f),
        }
    }

    /// Nothing seen yet: every field as `default` leaves it.
    pub fn is_empty(&self) -> bool {
        // Every field named, so that a new one is not forgotten here.
        let Streams {
            resources,
            servers,
            attempts,
            devices,
            headers,
            retransmission_bytes,
            retransmitted_frames,
            worst_retransmitters,
            tls_handshake_flows,
            tls_handshake_bytes,
            frames,
            tcp_control_frames,
            tcp_control_bytes,
            // A setting, not something seen.
            retry_max_gap_ns: _,
        } = self;
        resources.is_empty()
            && servers.is_empty()
            && attempts.is_empty()
            && devices.is_empty()
            && headers.is_empty()
            && worst_retransmitters.seen == 0
            && [
                *retransmission_bytes,
                *retransmitted_frames,
                *tls_handshake_flows,
                *tls_handshake_bytes,
                *frames,
                *tcp_control_frames,
                *tcp_control_bytes,
            ]
            .iter()
            .all(|&n| n == 0)
    }

    /// `o` added, taken whole if nothing was seen here yet (one worker: its
    /// state is the whole state, and copying it key by key cost as much as
    /// a tenth of a small capture's run).
    pub fn absorb(&mut self, o: Streams) {
        if self.is_empty() {
            *self = o;
        } else {
            self.merge(&o);
        }
    }

    pub fn merge(&mut self, o: &Streams) {
        let gap = self.retry_max_gap_ns;
        self.resources.merge(&o.resources, |a, b| a.merge(b, gap));
        self.servers.merge(&o.servers, ServerGroup::merge);
        self.attempts.merge(&o.attempts, |a, b| {
            a.attempts += b.attempts;
            a.refused += b.refused;
            a.refused_bytes += b.refused_bytes;
            a.refused_billed_bytes += b.refused_billed_bytes;
        });
        self.devices.merge(&o.devices, |a, b| {
            a.messages.merge(&b.messages);
            a.connections.merge(&b.connections);
            a.lookups.merge(&b.lookups);
        });
        for (k, h) in &o.headers {
            let mine = self.headers.entry(*k).or_default();
            mine.exchanges += h.exchanges;
            mine.header += h.header;
            mine.payload += h.payload;
        }
        self.retransmission_bytes += o.retransmission_bytes;
        self.retransmitted_frames += o.retransmitted_frames;
        self.worst_retransmitters.merge(&o.worst_retransmitters);
        self.tls_handshake_flows += o.tls_handshake_flows;
        self.tls_handshake_bytes += o.tls_handshake_bytes;
        self.frames += o.frames;
        self.tcp_control_frames += o.tcp_control_frames;
        self.tcp_control_bytes += o.tcp_control_bytes;
    }
}

/// The smaller of two protocols, `Unknown` only when both are: the same
/// whichever comes first.
fn known_min(a: Proto, b: Proto) -> Proto {
    match (a, b) {
        (Proto::Unknown, x) | (x, Proto::Unknown) => x,
        (a, b) => a.min(b),
    }
}

/// A connection's setup and teardown: TCP control, TLS handshake and
/// application control bytes.
pub fn setup_of(f: &FlowFacts) -> u64 {
    f.classes.get(Class::TcpControl) + f.classes.get(Class::TlsHandshake) + f.classes.get(Class::AppControl)
}

#[cfg(test)]
mod tests {
    use super::Capped;
    use std::collections::BTreeMap;

    /// Keys in a scrambled order, some repeated: the map keeps the
    /// smallest `cap` keys with every count of theirs seen since they were
    /// last let in, the same whatever the order, and merges to the same.
    #[test]
    fn capped_keeps_the_smallest_keys_whatever_the_order() {
        let keys: Vec<u64> = (0..5_000u64).map(|i| (i.wrapping_mul(2_654_435_761) >> 7) % 700).collect();
        let mut all: BTreeMap<u64, u64> = BTreeMap::new();
        for k in &keys {
            *all.entry(*k).or_default() += 1;
        }
        let fill = |keys: &mut dyn Iterator<Item = &u64>| {
            let mut m: Capped<u64, u64> = Capped::new(64);
            for k in keys {
                if let Some(v) = m.entry(k) {
                    *v += 1;
                }
            }
            m
        };
        let forward = fill(&mut keys.iter());
        let backward = fill(&mut keys.iter().rev());
        let smallest: Vec<u64> = all.keys().take(64).copied().collect();
        for m in [&forward, &backward] {
            assert!(m.saturated);
            let kept: Vec<u64> = m.iter().map(|(k, _)| *k).collect();
            assert_eq!(kept, smallest);
        }
        // A key's count restarts when it is let in again, so counts match
        // the full tally only for keys never pushed out: compare the merge
        // of two halves against one pass in the same order instead.
        let (a, b) = keys.split_at(keys.len() / 2);
        let mut merged = fill(&mut a.iter());
        merged.merge(&fill(&mut b.iter()), |x, y| *x += *y);
        let merged: Vec<(u64, u64)> = merged.iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(merged.iter().map(|(k, _)| *k).collect::<Vec<_>>(), smallest);
        assert!(merged.iter().all(|(k, v)| *v >= 1 && *v <= all[k]));
        assert_eq!(forward.get(&smallest[0]), Some(&all[&smallest[0]]));
        assert_eq!(forward.get(&699), None);
    }

    /// What a detectors' state holds, written out in key order (its hash
    /// maps' order is not the same from one map to the next).
    fn contents(s: &super::Streams) -> String {
        let resources: Vec<_> = s.resources.iter().map(|(k, g)| (*k, g.count, g.up, g.samples.sorted())).collect();
        let servers: Vec<_> = s.servers.iter().map(|(k, g)| (*k, g.flows, g.opened, g.clients.clone())).collect();
        let attempts: Vec<_> = s.attempts.iter().map(|(k, a)| (*k, a.attempts)).collect();
        let devices: Vec<_> =
            s.devices.iter().map(|(k, d)| (*k, d.messages.sorted(), d.connections.sorted(), d.lookups.seen)).collect();
        format!(
            "{resources:?} {servers:?} {attempts:?} {devices:?} {:?} {:?} {} {} {} {} {}",
            s.headers,
            s.worst_retransmitters.sorted(),
            s.retransmission_bytes,
            s.tls_handshake_bytes,
            s.frames,
            s.tcp_control_bytes,
            s.resources.saturated || s.devices.saturated
        )
    }

    /// Taken whole into an empty state, or merged into a fed one, a
    /// worker's state gives what feeding every fact to one state gives.
    #[test]
    fn absorbing_a_state_equals_feeding_its_facts() {
        use super::{Fact, FlowFacts, Streams};
        use crate::ledger::{Class, Ledger, exchange::ExchangeFacts};
        use crate::vocab::{L4, Proto};
        use std::net::SocketAddr;
        let facts: Vec<Fact> = (0..3_000u32)
            .flat_map(|i| {
                let client = SocketAddr::from(([10, 0, (i % 40) as u8, (i % 251) as u8], 40_000 + (i % 7) as u16));
                let server = SocketAddr::from(([192, 0, 2, (i % 9) as u8], if i % 3 == 0 { 443 } else { 1883 }));
                let start_ns = i64::from(i) * 13_000_000;
                let mut classes = Ledger::default();
                classes.add(Class::TcpControl, 120);
                classes.add(Class::Retransmission, u64::from(i % 5 == 0) * 60);
                let flow = FlowFacts {
                    classes,
                    client,
                    server,
                    frames: 9,
                    wire_bytes: 900,
                    link_bytes: 14 * 8,
                    control_frames: 5,
                    retransmitted_frames: u64::from(i % 5 == 0),
                    exchanges: u64::from(i % 4),
                    setup_bytes: 120,
                    start_ts: start_ns as f64 / 1e9,
                    end_ts: start_ns as f64 / 1e9 + 0.5,
                    l4: L4::Tcp,
                    app: if i % 3 == 0 { Proto::Http } else { Proto::Mqtt },
                    inner: None,
                    syn: true,
                    refused: i % 11 == 0,
                    answered: i % 11 != 0,
                };
                let kind = if i % 3 == 0 { Proto::Http } else { Proto::Mqtt };
                let exchange = ExchangeFacts {
                    kind,
                    start_ns,
                    end_ns: start_ns + 9_000_000,
                    up: 300,
                    down: 200,
                    ..Default::default()
                };
                [Fact::Exchange(client, server, exchange), Fact::Flow(flow)]
            })
            .collect();
        let fed = |facts: &[Fact]| {
            let mut s = Streams::default();
            for f in facts {
                s.fact(f);
            }
            s
        };
        let whole = contents(&fed(&facts));
        let (a, b) = facts.split_at(facts.len() / 3);
        let mut taken = Streams::default();
        taken.absorb(fed(a));
        assert_eq!(contents(&taken), contents(&fed(a)));
        taken.absorb(fed(b));
        assert_eq!(contents(&taken), whole);
        let mut other_way = fed(b);
        other_way.absorb(fed(a));
        assert_eq!(contents(&other_way), whole);
        assert!(Streams::default().is_empty() && !fed(a).is_empty() && fed(a).devices.saturated);
    }
}
