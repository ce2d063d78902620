//! The ten byte classes of the ledger (REPORT.md section 1).

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
