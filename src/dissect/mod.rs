//! Protocol dissectors: ordered stream bytes (TCP) or whole datagrams (UDP)
//! in, `Span`s (a ledger class for a run of bytes and the exchange it
//! belongs to) and `Event`s out. Dissectors never see packets and never
//! panic on their input; everything they cannot parse stays `payload` and is
//! reported as malformed.
//!
//! Adding a protocol: one file in this folder (a `PROTOCOL`, a `Stats`
//! with `merge`, and the dissector) and its name in `protocols!` below.

// Parsers of hostile input: an index that can panic is an error (clippy
// runs with -D warnings); use .get() and friends.
#![warn(clippy::indexing_slicing)]

pub mod buf;
pub mod hpack;
pub mod tally;
pub mod unknown;

pub use buf::{Framing, HeaderBuf, MsgBuf};

use crate::ledger::Class;
use serde::Serialize;
use std::sync::Arc;

/// Direction of a byte run relative to the flow's client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dir {
    /// Client to server (the SYN sender, or the first datagram's sender).
    C2S = 0,
    S2C = 1,
}

impl Dir {
    pub fn flip(self) -> Dir {
        match self {
            Dir::C2S => Dir::S2C,
            Dir::S2C => Dir::C2S,
        }
    }
    pub fn idx(self) -> usize {
        self as usize
    }
}

/// One value per direction, indexed by `Dir`: an index that cannot be out
/// of bounds, where `[T; 2]` indexed by `Dir::idx` could be as far as the
/// compiler (and clippy's `indexing_slicing`) can tell.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PerDir<T>(pub [T; 2]);

impl<T> std::ops::Index<Dir> for PerDir<T> {
    type Output = T;
    #[inline]
    fn index(&self, dir: Dir) -> &T {
        let [c2s, s2c] = &self.0;
        match dir {
            Dir::C2S => c2s,
            Dir::S2C => s2c,
        }
    }
}

impl<T> std::ops::IndexMut<Dir> for PerDir<T> {
    #[inline]
    fn index_mut(&mut self, dir: Dir) -> &mut T {
        let [c2s, s2c] = &mut self.0;
        match dir {
            Dir::C2S => c2s,
            Dir::S2C => s2c,
        }
    }
}

/// Transport a dissector runs over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L4 {
    Tcp,
    Udp,
}

/// What a run of bytes belongs to, for per-exchange accounting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsgRef {
    /// Connection setup shared by every exchange of the flow (TLS handshake,
    /// MQTT CONNECT/CONNACK, WebSocket upgrade, ...).
    Setup,
    /// An exchange, by an id the dissector chose, unique within its flow.
    Exchange(u32),
    /// Neither: keep-alives, connection teardown, unparsed bytes.
    Flow,
}

/// A dissector's verdict on `len` consecutive bytes it was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub class: Class,
    pub len: u64,
    pub msg: MsgRef,
}

/// Exchange lifecycle, reported by dissectors at the time of the bytes being
/// fed (`Emit::ts_ns`).
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A request (or unsolicited message) starts exchange `id`.
    Open { id: u32, kind: &'static str, what: String },
    /// More detail learned later (a status code, a topic).
    Describe { id: u32, what: String },
    /// First byte of the answer to exchange `id`.
    Responded { id: u32 },
    /// Exchange `id` is complete.
    Close { id: u32 },
    /// Exchange `id` is closed unanswered: the dissector stopped waiting for
    /// its answer to keep memory bounded (`notes.exchanges_closed_early`).
    GaveUp { id: u32 },
    /// Bytes that could not be parsed (they are in a `payload` span).
    Malformed { bytes: u64, reason: String },
    /// Exchange `id` (a DNS lookup) resolved these addresses: the first
    /// connection to one of them after it pays for the lookup.
    Resolved { id: u32, addrs: Vec<std::net::IpAddr> },
    /// The flow's application protocol, as learned (`inner` of a TLS flow,
    /// `websocket` after an HTTP upgrade).
    App { name: &'static str },
    /// The dissector remembers `change` more (or, negative, fewer) message
    /// ids to spot repeats by (CoAP). Summed over the live flows they count
    /// towards the same memory bound as held exchanges (`Emit::tight`).
    Remembering { change: i32 },
}

/// Where a dissector writes. Reused across calls: no allocation per packet.
pub struct Emit<'a> {
    /// Capture time of the bytes being fed, ns since the Unix epoch.
    pub ts_ns: i64,
    pub spans: &'a mut Vec<Span>,
    pub events: &'a mut Vec<Event>,
    pub stats: &'a mut ProtoStats,
    /// False when no exchange opened now can be listed in the report (the
    /// list is full with earlier ones): descriptions would be thrown away,
    /// so dissectors need not build them (see `Emit::what`).
    pub describe: bool,
    /// True while the flows hold more exchanges, or remember more message
    /// ids, than the table allows (see `ledger::LiveExchanges`): each flow
    /// then keeps only its current exchange, and a dissector keeps no more
    /// requests waiting for an answer (`Emit::make_room`) or ids remembered
    /// than it must, so its memory is bounded too.
    pub tight: bool,
}

impl<'a> Emit<'a> {
    pub fn new(
        ts_ns: i64,
        spans: &'a mut Vec<Span>,
        events: &'a mut Vec<Event>,
        stats: &'a mut ProtoStats,
    ) -> Emit<'a> {
        Emit { ts_ns, spans, events, stats, describe: true, tight: false }
    }

    /// Makes room in `waiting` (oldest first) for one more request waiting
    /// for its answer: at most `own` wait, or one while memory is tight (the
    /// ledger keeps no more exchanges open then, and the room of the others
    /// is given back). The exchanges of those given up, `exchange(..)`, are
    /// closed unanswered.
    pub fn make_room<T>(
        &mut self,
        waiting: &mut std::collections::VecDeque<T>,
        own: usize,
        exchange: impl Fn(&T) -> Option<u32>,
    ) {
        let cap = if self.tight { 1 } else { own };
        while waiting.len() >= cap
            && let Some(old) = waiting.pop_front()
        {
            if let Some(id) = exchange(&old) {
                self.event(Event::GaveUp { id });
            }
        }
        if self.tight {
            waiting.shrink_to(cap);
        }
    }

    /// An exchange's description, built only when a report may list the
    /// exchange; else empty (and no allocation).
    #[inline]
    pub fn what(&self, f: impl FnOnce() -> String) -> String {
        if self.describe { f() } else { String::new() }
    }

    #[inline]
    pub fn span(&mut self, class: Class, len: u64, msg: MsgRef) {
        if len > 0 {
            self.spans.push(Span { class, len, msg });
        }
    }
    #[inline]
    pub fn event(&mut self, e: Event) {
        self.events.push(e);
    }
    /// Where a dissector nested in another writes: `spans` and `events`
    /// (emptied first), with this call's time and statistics; the outer
    /// dissector then relays what the inner one said.
    pub fn nested<'b>(&'b mut self, spans: &'b mut Vec<Span>, events: &'b mut Vec<Event>) -> Emit<'b> {
        spans.clear();
        events.clear();
        Emit { ts_ns: self.ts_ns, spans, events, stats: &mut *self.stats, describe: self.describe, tight: self.tight }
    }

    /// Unparseable bytes: count them as payload and say so.
    pub fn malformed(&mut self, len: u64, msg: MsgRef, reason: impl Into<String>) {
        self.span(Class::Payload, len, msg);
        self.events.push(Event::Malformed { bytes: len, reason: reason.into() });
    }
}

/// A protocol parser for one flow.
///
/// Contract: every byte handed to `data` or `gap` ends up in exactly one
/// span, at the latest in `finish`. The flow stage checks this and books any
/// difference as `payload`.
pub trait Dissector: Send {
    /// In-order bytes of one direction (TCP), or one whole datagram (UDP).
    fn data(&mut self, dir: Dir, data: &[u8], emit: &mut Emit);
    /// `len` bytes of this direction are missing from the stream (a segment
    /// the capture lost, or bytes snaplen cut off). The flow stage accounts
    /// for them itself: emit no span for them, only resynchronise (a
    /// dissector counting down a body can skip them; one mid-header must
    /// give up its pending bytes as malformed and look for a new start).
    fn gap(&mut self, dir: Dir, len: u64, emit: &mut Emit);
    /// The flow is over: classify anything still buffered.
    fn finish(&mut self, emit: &mut Emit);
}

/// Options dissectors are created with.
#[derive(Clone, Default)]
pub struct Config {
    /// TLS session secrets, when the user gave a key log.
    pub keylog: Option<Arc<crate::keylog::KeyLog>>,
}

/// How sure a content probe is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Probe {
    No,
    /// Plausible (a CoAP header that parses); taken when the port agrees too.
    Maybe,
    /// Unmistakable (an HTTP request line, a TLS ClientHello, MQTT CONNECT).
    Yes,
}

/// A registered protocol.
pub struct Protocol {
    pub name: &'static str,
    pub l4: &'static [L4],
    /// Well-known server ports (a hint; content decides first).
    pub ports: &'static [u16],
    /// Looks at the first payload a flow carries (in direction `dir`).
    pub probe: fn(dir: Dir, first: &[u8]) -> Probe,
    pub make: fn(&FlowCtx) -> Box<dyn Dissector>,
}

/// What a dissector is told about its flow when it is created.
#[derive(Clone)]
pub struct FlowCtx {
    pub l4: L4,
    pub server_port: u16,
    pub cfg: Arc<Config>,
}

/// Declares every protocol once: its module, its place in `PROTOCOLS`
/// (recognised by content, in probe order; `nested` ones are entered from
/// another protocol), and its statistics section of the report.
macro_rules! protocols {
    (recognised: [$($p:ident),*], nested: [$($n:ident),*]) => {
        $(pub mod $p;)*
        $(pub mod $n;)*

        /// Every protocol wiretax recognises, in probe order.
        pub static PROTOCOLS: &[&Protocol] = &[$(&$p::PROTOCOL),*];

        /// Per-protocol statistics: the `http`, `tls`, `mqtt`, `coap`, ...
        /// sections of the report, each defined in its protocol's file.
        #[derive(Clone, Debug, Default, Serialize)]
        pub struct ProtoStats {
            $(pub $p: $p::Stats,)*
            $(pub $n: $n::Stats,)*
        }

        impl ProtoStats {
            pub fn merge(&mut self, o: &ProtoStats) {
                $(self.$p.merge(&o.$p);)*
                $(self.$n.merge(&o.$n);)*
            }
        }
    };
}

protocols! { recognised: [tls, http2, http, mqtt, coap, dns], nested: [websocket] }

pub fn by_name(name: &str) -> Option<&'static Protocol> {
    PROTOCOLS.iter().copied().find(|p| p.name == name)
}

/// Choose the protocol of a flow from its first payload and its server port:
/// an unmistakable content match wins, then a plausible one on a registered
/// port. `None`: unknown.
pub fn recognise(l4: L4, server_port: u16, dir: Dir, first: &[u8]) -> Option<&'static Protocol> {
    let mut maybe_on_port = None;
    for p in PROTOCOLS.iter().copied().filter(|p| p.l4.contains(&l4)) {
        match (p.probe)(dir, first) {
            Probe::Yes => return Some(p),
            Probe::Maybe if maybe_on_port.is_none() && p.ports.contains(&server_port) => maybe_on_port = Some(p),
            _ => {}
        }
    }
    maybe_on_port
}

/// `s` cut to `max` characters (marked with "..."), borrowed when it fits.
pub fn truncated(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    use std::borrow::Cow;
    // No more bytes than `max`: no more characters either.
    if s.len() <= max {
        return Cow::Borrowed(s);
    }
    match s.char_indices().nth(max) {
        Some((i, _)) => Cow::Owned(format!("{}...", &s[..i])),
        None => Cow::Borrowed(s),
    }
}

/// Most distinct keys a statistics map keeps; the rest count under "other",
/// so hostile input cannot grow a report without bound.
pub const MAX_MAP_KEYS: usize = 64;

/// The key under which a full statistics map counts the keys it dropped.
pub const OTHER: &str = "other";

/// Adds `n` under `key` in a statistics map of at most `MAX_MAP_KEYS` keys
/// besides "other", where the keys it cannot keep are counted.
pub fn bump(map: &mut std::collections::BTreeMap<String, u64>, key: &str, n: u64) {
    if let Some(v) = map.get_mut(key) {
        *v += n;
        return;
    }
    if key == OTHER {
        map.insert(OTHER.to_owned(), n);
        return;
    }
    let kept = map.len() - usize::from(map.contains_key(OTHER));
    let spilled = if kept < MAX_MAP_KEYS {
        map.insert(key.to_owned(), n);
        0
    } else {
        // Full: as `bump_capped` decides among the keys other than "other"
        // (the largest goes if the new key sorts before it, else the new
        // one spills), with no key built or moved for a key that spills.
        let evicted = map.keys().rev().find(|k| k.as_str() != OTHER).filter(|largest| key < largest.as_str()).cloned();
        match evicted {
            Some(largest) => {
                let spilled = map.remove(&largest).unwrap_or(0);
                map.insert(key.to_owned(), n);
                spilled
            }
            None => n,
        }
    };
    if spilled > 0 {
        match map.get_mut(OTHER) {
            Some(v) => *v += spilled,
            None => {
                map.insert(OTHER.to_owned(), spilled);
            }
        }
    }
}

/// Adds `n` under `key` in a map of at most `cap` keys, and returns the
/// count that could not be kept (0 when none). A full map keeps its smallest
/// keys: which keys it holds then depends on the keys seen, not on the order
/// they came in, so reports do not change with how flows were spread over
/// threads.
pub fn bump_capped<K, Q>(map: &mut std::collections::BTreeMap<K, u64>, key: &Q, n: u64, cap: usize) -> u64
where
    K: Ord + std::borrow::Borrow<Q>,
    Q: Ord + ToOwned<Owned = K> + ?Sized,
{
    if let Some(v) = map.get_mut(key) {
        *v += n;
        return 0;
    }
    if map.len() < cap {
        map.insert(key.to_owned(), n);
        return 0;
    }
    match map.last_key_value() {
        Some((largest, _)) if key < largest.borrow() => {
            let evicted = map.pop_last().map_or(0, |(_, v)| v);
            map.insert(key.to_owned(), n);
            evicted
        }
        _ => n,
    }
}

#[cfg(test)]
pub mod testkit;

#[cfg(test)]
mod tests;
