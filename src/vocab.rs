//! The words every stage shares: directions, transports, byte classes,
//! spans and events. Dissectors write them, the flow stage and the ledger
//! read them; neither imports the other for them.

pub use crate::dissect::Proto;
use serde::{Deserialize, Serialize};

/// One class of the byte ledger; every wire byte belongs to exactly one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    Link,
    Network,
    Transport,
    TcpControl,
    Retransmission,
    TlsHandshake,
    TlsRecordOverhead,
    AppHeader,
    AppControl,
    Payload,
}

impl Class {
    pub const ALL: [Class; 10] = [
        Class::Link,
        Class::Network,
        Class::Transport,
        Class::TcpControl,
        Class::Retransmission,
        Class::TlsHandshake,
        Class::TlsRecordOverhead,
        Class::AppHeader,
        Class::AppControl,
        Class::Payload,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Class::Link => "link",
            Class::Network => "network",
            Class::Transport => "transport",
            Class::TcpControl => "tcp_control",
            Class::Retransmission => "retransmission",
            Class::TlsHandshake => "tls_handshake",
            Class::TlsRecordOverhead => "tls_record_overhead",
            Class::AppHeader => "app_header",
            Class::AppControl => "app_control",
            Class::Payload => "payload",
        }
    }
}

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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum L4 {
    #[default]
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
    Open { id: u32, kind: Proto, what: String },
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
    App { proto: Proto },
    /// The dissector remembers `change` more (or, negative, fewer) message
    /// ids to spot repeats by (CoAP). Summed over the live flows they count
    /// towards the same memory bound as held exchanges (`Emit::tight`).
    Remembering { change: i32 },
    /// What exchange `id` is, as numbers findings can group and compare
    /// (method, status, resource hash...): set fields add to those set before.
    Facets { id: u32, facets: Facets },
}

/// What findings need to know of an exchange besides its bytes and times,
/// cheap to make (numbers, no strings: built for every exchange, listed or
/// not). Zero means not known.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Facets {
    pub method: Method,
    /// HTTP status, or a CoAP response code as class * 100 + detail (2.05 -> 205).
    pub status: u16,
    /// Hash of the resource (`resource_hash`): an HTTP path without its
    /// query, an MQTT topic, a CoAP Uri-Path.
    pub resource: u64,
    /// MQTT QoS of a PUBLISH.
    pub qos: u8,
    /// A CoAP request sent confirmable (CON).
    pub confirmable: bool,
    /// The answer carries cache validators or freshness (ETag,
    /// Last-Modified, Cache-Control, Expires): a repeat can be conditional.
    pub validators: bool,
    /// The answer's body is content-coded (Content-Encoding).
    pub encoded: bool,
    /// The request is conditional (If-None-Match, If-Modified-Since).
    pub conditional: bool,
    /// The answer's body: its length (high 32 bits) and CRC-32 (low), when
    /// it was hashed (a successful answer without validators).
    pub body_hash: u64,
    /// Bodies of a text type (JSON, XML, text/*) not content-coded: bit 0
    /// the request's, bit 1 the answer's.
    pub text: u8,
    /// Those bodies' size once gzip-compressed (level 1), when measured.
    pub deflated_up: u32,
    pub deflated_down: u32,
    /// Data chunks of a chunked request body.
    pub chunks_up: u32,
    /// The request body holds several records (a JSON array, or lines of
    /// NDJSON): a batch.
    pub batch: bool,
}

impl Facets {
    /// Adds what `o` knows to what is known.
    pub fn add(&mut self, o: &Facets) {
        if o.method != Method::Unknown {
            self.method = o.method;
        }
        let pick = |a: &mut u64, b: u64| {
            if b != 0 {
                *a = b
            }
        };
        if o.status != 0 {
            self.status = o.status;
        }
        pick(&mut self.resource, o.resource);
        self.qos = self.qos.max(o.qos);
        self.confirmable |= o.confirmable;
        self.validators |= o.validators;
        self.encoded |= o.encoded;
        self.conditional |= o.conditional;
        pick(&mut self.body_hash, o.body_hash);
        self.text |= o.text;
        self.deflated_up = self.deflated_up.max(o.deflated_up);
        self.deflated_down = self.deflated_down.max(o.deflated_down);
        self.chunks_up = self.chunks_up.max(o.chunks_up);
        self.batch |= o.batch;
    }
}

/// What a request asks for, across protocols.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    #[default]
    Unknown,
    Get,
    Post,
    Put,
    Delete,
    Patch,
    Head,
    Other,
    /// An MQTT PUBLISH.
    Publish,
    /// An MQTT SUBSCRIBE, a CoAP GET with Observe.
    Subscribe,
}

impl Method {
    pub fn from_http(m: &str) -> Method {
        match m {
            "GET" => Method::Get,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "PATCH" => Method::Patch,
            "HEAD" => Method::Head,
            _ => Method::Other,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Method::Unknown => "?",
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Patch => "PATCH",
            Method::Head => "HEAD",
            Method::Other => "other",
            Method::Publish => "PUBLISH",
            Method::Subscribe => "SUBSCRIBE",
        }
    }
    /// Whether the request sends data up (an upload) rather than asks for it.
    pub fn uploads(self) -> bool {
        matches!(self, Method::Post | Method::Put | Method::Patch | Method::Publish)
    }
}

/// The hash findings compare resources by: the same on every run and thread.
pub fn resource_hash(b: &[u8]) -> u64 {
    use std::hash::BuildHasher;
    // Never 0, which means "not known".
    foldhash::fast::FixedState::with_seed(0x5749_5245_5441_5820).hash_one(b) | 1
}

impl std::fmt::Display for L4 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl L4 {
    pub fn name(self) -> &'static str {
        match self {
            L4::Tcp => "tcp",
            L4::Udp => "udp",
        }
    }
}
