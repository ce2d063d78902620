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
