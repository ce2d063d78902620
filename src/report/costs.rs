//! What one exchange cost, part by part: its payload against the headers,
//! TLS, control frames, retransmissions and its share of the connection's
//! setup that carrying it took ("a 32-byte reading cost 3 kB"). One row per
//! exchange kind and one per message (kind and verb), for charts, exports
//! and `wiretax compare`.

use crate::ledger::{Class, Exchange};
use crate::report::summary::{ExchangeSummaries, KindSummary};
use crate::vocab::Proto;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Most per-message rows kept (the most frequent messages).
pub const MAX_MESSAGE_ROWS: usize = 20;

/// Mean bytes of one exchange, by what they were for. The parts add up to
/// `total_bytes`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CostParts {
    pub payload_bytes: f64,
    /// Link, network and transport headers, and application headers.
    pub header_bytes: f64,
    /// TLS handshake records and record overhead carried by the exchange itself.
    pub tls_bytes: f64,
    /// Whole TCP control frames and application control messages.
    pub control_bytes: f64,
    pub retransmission_bytes: f64,
    /// The exchange's even share of its connection's setup (TCP and TLS
    /// handshakes, MQTT CONNECT, teardown, the DNS lookup).
    pub setup_share_bytes: f64,
    pub total_bytes: f64,
}

impl CostParts {
    /// The parts as (name, bytes), in the order charts stack them.
    pub fn named(&self) -> [(&'static str, f64); 6] {
        [
            ("payload", self.payload_bytes),
            ("headers", self.header_bytes),
            ("tls", self.tls_bytes),
            ("control", self.control_bytes),
            ("retransmission", self.retransmission_bytes),
            ("setup share", self.setup_share_bytes),
        ]
    }
}

/// One kind of exchange (`message` empty: over every exchange) or one
/// message of a kind (over the listed exchanges: `listed_only`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExchangeCost {
    pub kind: Proto,
    /// `KIND VERB` (`http POST`, `mqtt PUBLISH`), or empty for the whole kind.
    #[serde(default)]
    pub message: String,
    pub count: u64,
    /// Mean bytes of one exchange.
    pub mean: CostParts,
    /// Total cost over total payload (None without payload).
    pub overhead_factor: Option<f64>,
    /// Of the listed exchanges only (`--max-exchanges`): a message's verb
    /// is known only for those. A kind's row is over every exchange.
    #[serde(default)]
    pub listed_only: bool,
}

/// The message an exchange is: its kind and the first word of its
/// description (the HTTP method, the MQTT packet type, the CoAP method).
pub fn message_of(x: &Exchange) -> String {
    let verb = x.what.split_whitespace().next().unwrap_or("");
    let verb: String = verb.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-').take(24).collect();
    if verb.is_empty() { x.kind.to_string() } else { format!("{} {verb}", x.kind) }
}

fn parts_of(x: &Exchange) -> CostParts {
    let c = |class| x.classes.get(class) as f64;
    CostParts {
        payload_bytes: c(Class::Payload),
        header_bytes: c(Class::Link) + c(Class::Network) + c(Class::Transport) + c(Class::AppHeader),
        tls_bytes: c(Class::TlsHandshake) + c(Class::TlsRecordOverhead),
        control_bytes: c(Class::TcpControl) + c(Class::AppControl),
        retransmission_bytes: c(Class::Retransmission),
        setup_share_bytes: x.setup_share_bytes,
        total_bytes: x.classes.total() as f64 + x.setup_share_bytes,
    }
}

#[derive(Default)]
struct Sum {
    count: u64,
    parts: CostParts,
}

impl Sum {
    fn add(&mut self, p: &CostParts) {
        self.count += 1;
        let s = &mut self.parts;
        s.payload_bytes += p.payload_bytes;
        s.header_bytes += p.header_bytes;
        s.tls_bytes += p.tls_bytes;
        s.control_bytes += p.control_bytes;
        s.retransmission_bytes += p.retransmission_bytes;
        s.setup_share_bytes += p.setup_share_bytes;
        s.total_bytes += p.total_bytes;
    }

    fn row(&self, kind: Proto, message: String) -> ExchangeCost {
        mean_row(kind, message, self.count, &self.parts, true)
    }
}

/// The row of `count` exchanges whose parts add up to `sum`: their means.
fn mean_row(kind: Proto, message: String, count: u64, sum: &CostParts, listed_only: bool) -> ExchangeCost {
    let n = count.max(1) as f64;
    ExchangeCost {
        kind,
        message,
        count,
        mean: CostParts {
            payload_bytes: sum.payload_bytes / n,
            header_bytes: sum.header_bytes / n,
            tls_bytes: sum.tls_bytes / n,
            control_bytes: sum.control_bytes / n,
            retransmission_bytes: sum.retransmission_bytes / n,
            setup_share_bytes: sum.setup_share_bytes / n,
            total_bytes: sum.total_bytes / n,
        },
        overhead_factor: (sum.payload_bytes > 0.0).then(|| sum.total_bytes / sum.payload_bytes),
        listed_only,
    }
}

/// A kind's row over every exchange of it.
fn kind_row(kind: Proto, s: &KindSummary) -> ExchangeCost {
    let b = &s.total_bytes;
    let total = s.total_cost();
    let sum = CostParts {
        payload_bytes: b.payload as f64,
        header_bytes: b.headers() as f64,
        tls_bytes: b.tls as f64,
        control_bytes: b.control as f64,
        retransmission_bytes: b.retransmission as f64,
        setup_share_bytes: (total - b.wire as f64).max(0.0),
        total_bytes: total,
    };
    mean_row(kind, String::new(), s.wire.count(), &sum, false)
}

impl ExchangeCost {
    /// A row per kind over every exchange (`summaries`), then a row per
    /// message (the most frequent [`MAX_MESSAGE_ROWS`]) of the listed
    /// exchanges.
    pub fn of(summaries: &ExchangeSummaries, exchanges: &[Exchange]) -> Vec<ExchangeCost> {
        let mut messages: BTreeMap<(Proto, String), Sum> = BTreeMap::new();
        for x in exchanges {
            messages.entry((x.kind, message_of(x))).or_default().add(&parts_of(x));
        }
        let mut out: Vec<ExchangeCost> = summaries.by_kind.iter().map(|(k, s)| kind_row(*k, s)).collect();
        let mut msgs: Vec<ExchangeCost> = messages.into_iter().map(|((k, m), s)| s.row(k, m)).collect();
        msgs.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.message.cmp(&b.message)));
        msgs.truncate(MAX_MESSAGE_ROWS);
        out.extend(msgs);
        out
    }
}
