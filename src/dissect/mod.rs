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

use crate::vocab::Class;
pub use crate::vocab::{Dir, Event, L4, MsgRef, PerDir, Span};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

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
pub trait Dissector: Send + CloneDissector {
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

/// A dissector's copy, boxed: a snapshot of a running analysis finishes a
/// copy of every flow, dissector state included, and leaves the original.
pub trait CloneDissector {
    fn clone_box(&self) -> Box<dyn Dissector>;
}

impl<T: Dissector + Clone + 'static> CloneDissector for T {
    fn clone_box(&self) -> Box<dyn Dissector> {
        Box::new(self.clone())
    }
}

impl Clone for Box<dyn Dissector> {
    fn clone(&self) -> Self {
        self.clone_box()
    }
}

/// Options dissectors are created with.
#[derive(Clone, Default)]
pub struct Config {
    /// TLS session secrets, when the user gave a key log.
    pub keylog: Option<Arc<crate::keylog::KeyLog>>,
    /// TLS session secrets the input carries (pcapng Decryption Secrets
    /// Blocks), added by the reader as it meets them: one store per input.
    pub found_secrets: Arc<crate::keylog::KeyStore>,
}

impl Config {
    /// There are secrets to decrypt with (given, or found in the input so far).
    pub fn has_secrets(&self) -> bool {
        self.keylog.is_some() || self.found_secrets.has_secrets()
    }

    /// Every secret known for a connection: the key logs' and the input's
    /// (the input's replace the key logs' where both have one).
    pub fn secrets(&self, client_random: &[u8]) -> Option<crate::keylog::SessionSecrets> {
        let given = self.keylog.as_ref().and_then(|k| k.lookup(client_random)).cloned();
        match (given, self.found_secrets.lookup(client_random)) {
            (Some(mut given), Some(found)) => {
                given.merge(found);
                Some(given)
            }
            (given, found) => given.or(found),
        }
    }

    /// A copy with its own (empty) store of found secrets, for one input.
    pub fn for_input(&self) -> Config {
        // A store of its own, with the cap of this one's.
        let found_secrets = Arc::new(crate::keylog::KeyStore::with_cap(self.found_secrets.cap()));
        Config { keylog: self.keylog.clone(), found_secrets }
    }
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
    pub id: Proto,
    pub l4: &'static [L4],
    /// Well-known server ports (a hint; content decides first).
    pub ports: &'static [u16],
    /// Looks at the first payload a flow carries (in direction `dir`).
    pub probe: fn(l4: L4, dir: Dir, first: &[u8]) -> Probe,
    pub make: fn(&FlowCtx) -> Box<dyn Dissector>,
}

/// What a dissector is told about its flow when it is created.
#[derive(Clone)]
pub struct FlowCtx {
    pub l4: L4,
    pub server_port: u16,
    pub cfg: Arc<Config>,
}

/// Declares every protocol once: its module, its name in `Proto`, its place
/// in `PROTOCOLS` (recognised by content, in probe order; `nested` ones are
/// entered from another protocol), and its statistics section of the report.
macro_rules! protocols {
    (recognised: [$($p:ident: $pv:ident),*], nested: [$($n:ident: $nv:ident),*]) => {
        $(pub mod $p;)*
        $(pub mod $n;)*

        /// Every protocol wiretax recognises, in probe order.
        pub static PROTOCOLS: &[&Protocol] = &[$(&$p::PROTOCOL),*];

        /// A protocol's name: what a flow carries and what kind an exchange
        /// is. Written out as the protocol's module name (`"mqtt"`).
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Proto {
            $($pv,)*
            $($nv,)*
            /// Nothing recognised.
            #[default]
            Unknown,
        }

        impl Proto {
            pub const ALL: &[Proto] = &[$(Proto::$pv,)* $(Proto::$nv,)* Proto::Unknown];

            pub fn name(self) -> &'static str {
                match self {
                    $(Proto::$pv => stringify!($p),)*
                    $(Proto::$nv => stringify!($n),)*
                    Proto::Unknown => "unknown",
                }
            }
        }

        /// Per-protocol statistics: the `http`, `tls`, `mqtt`, `coap`, ...
        /// sections of the report, each defined in its protocol's file.
        #[derive(Clone, Debug, Default, Serialize, Deserialize)]
        #[serde(default)]
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

protocols! {
    recognised: [tls: Tls, http2: Http2, http: Http, mqtt: Mqtt, coap: Coap, dns: Dns],
    nested: [websocket: Websocket]
}

impl Proto {
    pub fn from_name(name: &str) -> Option<Proto> {
        Proto::ALL.iter().copied().find(|p| p.name() == name)
    }
}

impl std::fmt::Display for Proto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Proto {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Proto {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Proto, D::Error> {
        let name = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Proto::from_name(&name).ok_or_else(|| serde::de::Error::custom(format!("unknown protocol {name:?}")))
    }
}

pub fn by_name(name: &str) -> Option<&'static Protocol> {
    PROTOCOLS.iter().copied().find(|p| p.id.name() == name)
}

/// Choose the protocol of a flow from its first payload and its server port:
/// an unmistakable content match wins, then a plausible one on a registered
/// port. `None`: unknown.
pub fn recognise(l4: L4, server_port: u16, dir: Dir, first: &[u8]) -> Option<&'static Protocol> {
    let mut maybe_on_port = None;
    for p in PROTOCOLS.iter().copied().filter(|p| p.l4.contains(&l4)) {
        match (p.probe)(l4, dir, first) {
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

/// A statistics map keyed by numbers, read back from JSON (where its keys
/// are text). Needed because the sections are flattened into the report,
/// and serde reads a flattened map's keys as text only.
pub fn numbered_keys<'de, D, K>(d: D) -> Result<std::collections::BTreeMap<K, u64>, D::Error>
where
    D: serde::Deserializer<'de>,
    K: Ord + std::str::FromStr,
{
    std::collections::BTreeMap::<String, u64>::deserialize(d)?
        .into_iter()
        .map(|(k, n)| k.parse().map(|k| (k, n)).map_err(|_| serde::de::Error::custom(format!("bad key {k:?}"))))
        .collect()
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
