//! Anti-patterns, named with their evidence: polling, short-lived
//! connections, missing TLS resumption, retries without back-off,
//! reconnection storms, retransmissions, header-heavy exchanges.
//!
//! Detection runs over every flow and exchange as they go by (`stream`),
//! never over the report's capped lists. A finding is one kind of problem in
//! one scope (a server, or the capture) with its instances counted and a few
//! examples. Its saving is the difference between two re-simulations of the
//! affected devices' timelines (`crate::whatif`): as captured, and with the
//! practice changed.

pub mod combined;
pub mod http;
pub mod session;
pub mod stream;

use crate::dissect::tls::Stats as TlsStats;
use crate::vocab::{Method, Proto};
use crate::whatif::{self, Change, Constants, DayFigures, Radio};
pub use combined::{AllFixed, all_fixed};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
pub use stream::{FlowFacts, Streams};
use stream::{ResourceGroup, ResourceKey};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Saving {
    pub bytes: u64,
    /// Bytes without link-layer headers: what an operator bills.
    #[serde(default)]
    pub billed_bytes: u64,
    /// Radio time and charge the change saves (negative: it costs more),
    /// from re-simulating the timeline with the change. None (JSON null):
    /// no radio figures, as `charge_basis` says why (no radio model, or a
    /// timeline with no steady cycle to project).
    #[serde(default)]
    pub radio_on_s: Option<f64>,
    #[serde(default)]
    pub charge_mah: Option<f64>,
    /// How the saving was found.
    pub charge_basis: String,
}

impl Saving {
    /// The per-day saving of a one-off event: none (it is priced per event).
    fn one_off() -> Saving {
        Saving {
            radio_on_s: Some(0.0),
            charge_mah: Some(0.0),
            charge_basis: "a one-off event: see saving_per_event".into(),
            ..Default::default()
        }
    }
    /// The radio figures of `d` (rounded), or none when it has none.
    fn radio_of(d: &DayFigures) -> (Option<f64>, Option<f64>) {
        (d.radio_on().map(round6), d.charge().map(round6))
    }
}

/// What `charge_basis` adds when a saving has no radio figures.
pub const NO_RADIO_FIGURES: &str = "no radio figures: a timeline (as captured or changed) has no steady cycle for the radio model to project, so its day is its bytes at its own rate";

/// The practice a finding's saving assumes, in one line, and what it takes for granted.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Counterfactual {
    pub description: String,
    pub assumptions: Vec<String>,
    /// The changes re-simulated, per device: what the combined "all findings
    /// fixed" scenario runs together (`all_fixed`). A detector whose saving
    /// comes from `Input::saving` contributes its changes without more ado.
    #[serde(skip)]
    pub changes: Vec<(IpAddr, Change)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Finding {
    pub id: String,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    pub title: String,
    pub evidence: Value,
    pub saving_per_day: Saving,
    pub recommendation: String,
    /// Where it was seen: `server 10.0.0.1:80`, `3 servers`, `capture`.
    #[serde(default)]
    pub scope: String,
    /// Instances of it grouped here (servers, resources, devices).
    #[serde(default)]
    pub instances: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counterfactual: Option<Counterfactual>,
    /// A one-off event (a reconnection storm) is priced per event, not per day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saving_per_event: Option<Saving>,
}

/// Thresholds of the detectors: `[findings]` in `--config wiretax.toml`.
/// Each default is documented in docs/REPORT.md.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// Polling: at least this many requests for one resource...
    pub polling_min_requests: u64,
    /// ...at a period of at least this...
    pub polling_min_period_s: f64,
    /// ...with this share of the gaps within 25% of the median. Encrypted
    /// (no key log), the answers must carry this many times the request's
    /// bytes: a request's headers and an answer's are of a size, so only a
    /// clearly larger answer shows data coming down.
    pub polling_regular_share: f64,
    pub polling_encrypted_answer_ratio: f64,
    /// Short-lived connections: at least this many carrying one exchange.
    pub short_lived_min_connections: u64,
    /// No TLS resumption: at least this many full handshakes, none resumed.
    pub tls_min_full_handshakes: u64,
    /// Retries: a repeat this soon after an error answer did not back off.
    pub retry_max_gap_s: f64,
    pub retry_min_count: u64,
    /// Reconnection storm: this many attempts within 100 ms is a burst.
    pub storm_burst_attempts: u64,
    /// Retransmissions: share of the wire bytes (warning, critical).
    pub retransmission_share: f64,
    pub retransmission_critical_share: f64,
    /// Header overhead: headers at least this many bytes and above the payload.
    pub header_min_bytes: u64,
    /// The shortest idle timeout on the path (a NAT or a proxy), seconds:
    /// `--nat-timeout`. Heartbeats belong at half of it.
    pub nat_timeout_s: f64,
    /// A heartbeat below this share of the NAT timeout is too short.
    pub heartbeat_short_share: f64,
    /// QoS 2 telemetry, confirmable CoAP uploads: at least this many.
    pub qos2_min_publishes: u64,
    pub coap_con_min_uploads: u64,
    /// DNS per connection: at least this many lookups by a device, about
    /// one a connection; a cache keeps an answer this long (s).
    pub dns_min_lookups: u64,
    pub dns_ttl_s: f64,
    /// Parallel connections: at least this many open at once to one server.
    pub parallel_min_connections: u64,
    /// HTTP errors: at least this many 4xx/5xx answers.
    pub http_errors_min: u64,
    /// Duplicate content: at least this many answers repeating a body.
    pub duplicate_min_repeats: u64,
    /// Uncompressed text: bodies of at least this size, compressing to at
    /// most this share of it.
    pub text_min_body_bytes: u64,
    pub text_max_ratio: f64,
    /// Oversized payload: a body above this many bytes (or a 413 answer).
    pub oversized_body_bytes: u64,
    /// Tiny chunks: at least this many chunks of at most this mean size;
    /// the counterfactual sends chunks of `rechunk_bytes`.
    pub tiny_chunks_min: u64,
    pub tiny_chunk_bytes: u64,
    pub rechunk_bytes: u64,
    /// Unbatched uploads: at least this many at a regular period, each at
    /// most this many bytes; the counterfactual sends `unbatched_batch` at a time.
    pub unbatched_min_uploads: u64,
    pub unbatched_max_body_bytes: u64,
    pub unbatched_batch: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            polling_min_requests: 4,
            polling_min_period_s: 0.2,
            polling_regular_share: 0.7,
            polling_encrypted_answer_ratio: 2.0,
            short_lived_min_connections: 3,
            tls_min_full_handshakes: 3,
            retry_max_gap_s: 1.0,
            retry_min_count: 3,
            storm_burst_attempts: 10,
            retransmission_share: 0.01,
            retransmission_critical_share: 0.05,
            header_min_bytes: 1000,
            nat_timeout_s: session::DEFAULT_NAT_TIMEOUT_S,
            heartbeat_short_share: 0.25,
            qos2_min_publishes: 3,
            coap_con_min_uploads: 3,
            dns_min_lookups: 3,
            dns_ttl_s: 300.0,
            parallel_min_connections: 3,
            http_errors_min: 3,
            duplicate_min_repeats: 3,
            text_min_body_bytes: 256,
            text_max_ratio: 0.7,
            oversized_body_bytes: 256 * 1024,
            tiny_chunks_min: 4,
            tiny_chunk_bytes: 256,
            rechunk_bytes: 4096,
            unbatched_min_uploads: 4,
            unbatched_max_body_bytes: 1024,
            unbatched_batch: 10,
        }
    }
}

impl Thresholds {
    /// The `[findings]` table of a settings file (TOML); the defaults for
    /// what it does not set. Other tables are for other stages.
    pub fn from_config(text: &str) -> Result<Thresholds, String> {
        #[derive(Deserialize)]
        struct File {
            #[serde(default)]
            findings: Thresholds,
        }
        let mut doc: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
        let findings = doc.remove("findings").unwrap_or_else(|| toml::Value::Table(Default::default()));
        let mut t = toml::Table::new();
        t.insert("findings".into(), findings);
        let file: File = toml::Value::Table(t).try_into().map_err(|e: toml::de::Error| e.to_string())?;
        Ok(file.findings)
    }
}

/// What findings look at: the streams' merged state and the statistics
/// computed over every flow.
pub struct Input<'a> {
    pub streams: &'a Streams,
    pub tls: &'a TlsStats,
    /// The keep-alive the first MQTT CONNECT asked for.
    pub mqtt_keepalive_s: Option<u16>,
    /// MQTT statistics (pings seen), when the capture has MQTT.
    pub mqtt: Option<&'a crate::dissect::mqtt::Stats>,
    pub wire_bytes: u64,
    pub frames: u64,
    /// Link, network and transport header bytes of the capture.
    pub lower_bytes: u64,
    /// Link-layer bytes of every frame (the ledger's `link` class leaves
    /// out TCP control frames'): wire bytes less these are billed.
    pub link_bytes: u64,
    pub duration_s: f64,
    pub radio: Option<&'a Radio>,
    pub thresholds: &'a Thresholds,
}

impl Input<'_> {
    fn constants(&self) -> Constants {
        let mut assumptions = Vec::new();
        let s = self.streams;
        // A TCP control frame is headers alone; the ledger books the
        // headers of control frames with them, so that is where they show.
        let data_frames = self.frames.saturating_sub(s.tcp_control_frames);
        let lower_per_frame = if s.tcp_control_frames > 0 {
            let v = s.tcp_control_bytes as f64 / s.tcp_control_frames as f64;
            assumptions.push(format!("frame headers {v:.1} B (a TCP control frame's, measured)"));
            v
        } else if data_frames > 0 {
            let v = self.lower_bytes as f64 / data_frames as f64;
            assumptions.push(format!("frame headers {v:.1} B (link, network, transport: measured)"));
            v
        } else {
            assumptions.push(format!(
                "frame headers {} B (Ethernet, IPv4, TCP with timestamps: default)",
                whatif::DEFAULT_LOWER_PER_FRAME
            ));
            whatif::DEFAULT_LOWER_PER_FRAME
        };
        // Every frame's link bytes (control frames' too): what a
        // synthesized frame does not bill, on average.
        let link_per_frame = if self.frames > 0 { self.link_bytes as f64 / self.frames as f64 } else { 14.0 };
        let tls13 = self.tls.versions.get("TLS 1.3").copied().unwrap_or(0);
        let tls12 = self.tls.versions.get("TLS 1.2").copied().unwrap_or(0);
        let resumed_handshake_bytes =
            if tls13 > tls12 { whatif::RESUMED_TLS13_BYTES } else { whatif::RESUMED_TLS12_BYTES };
        let mqtt_keepalive_s = match self.mqtt_keepalive_s {
            Some(k) => f64::from(k),
            None => whatif::DEFAULT_MQTT_KEEPALIVE_S,
        };
        Constants { lower_per_frame, link_per_frame, resumed_handshake_bytes, mqtt_keepalive_s, assumptions }
    }

    /// Re-simulates each kept device with the changes that concern it;
    /// devices past the kept ones are scaled in by their share of the
    /// instances.
    fn saving(&self, changes: &[(IpAddr, Change)], instances: u64, what: &str) -> (Saving, Counterfactual) {
        let k = self.constants();
        let mut total = DayFigures::default();
        let mut covered = 0u64;
        let mut by_device: BTreeMap<IpAddr, Vec<Change>> = BTreeMap::new();
        for (d, c) in changes {
            by_device.entry(*d).or_default().push(c.clone());
        }
        for (ip, chs) in &by_device {
            let Some(dev) = self.streams.devices.get(ip) else { continue };
            let o = whatif::run(dev, chs, &k, self.radio);
            let s = o.saving();
            total.add(&s);
            covered += chs.len() as u64;
        }
        self.saving_of(total, covered, instances, &k, what, changes.to_vec())
    }

    /// The saving of the re-simulated devices' `total` (`covered` of
    /// `instances` re-simulated: the rest scaled in), with its assumptions.
    fn saving_of(
        &self,
        mut total: DayFigures,
        covered: u64,
        instances: u64,
        k: &Constants,
        what: &str,
        changes: Vec<(IpAddr, Change)>,
    ) -> (Saving, Counterfactual) {
        let mut assumptions = k.assumptions.clone();
        if covered < instances && covered > 0 {
            total = total.scaled(instances as f64 / covered as f64);
            assumptions.push(format!(
                "{covered} of {instances} instances re-simulated (the first {} devices); the rest scaled in",
                stream::MAX_DEVICES
            ));
        }
        let basis = "baseline minus counterfactual, each re-simulated on the radio model and projected to a day";
        let charge_basis = if self.radio.is_none() {
            assumptions.push("no radio model: bytes only".into());
            format!("{basis}; no radio model: bytes only")
        } else if total.no_radio_figures {
            format!("{basis}; {NO_RADIO_FIGURES}")
        } else {
            basis.into()
        };
        let (radio_on_s, charge_mah) = Saving::radio_of(&total);
        let saving = Saving {
            bytes: total.bytes,
            billed_bytes: total.billed_bytes.min(total.bytes),
            radio_on_s,
            charge_mah,
            charge_basis,
        };
        (saving, Counterfactual { description: what.to_string(), assumptions, changes })
    }
}

/// Runs every detector; findings by severity, then by saving.
pub fn detect(inp: &Input) -> Vec<Finding> {
    let mut out = Vec::new();
    polling(inp, &mut out);
    short_lived_connections(inp, &mut out);
    no_tls_resumption(inp, &mut out);
    retry_without_backoff(inp, &mut out);
    reconnection_storm(inp, &mut out);
    retransmissions(inp, &mut out);
    header_overhead(inp, &mut out);
    session::heartbeat_interval(inp, &mut out);
    session::nothing_listening(inp, &mut out);
    session::mqtt_qos2_telemetry(inp, &mut out);
    session::coap_con_telemetry(inp, &mut out);
    session::dns_per_connection(inp, &mut out);
    session::parallel_connections(inp, &mut out);
    http::detect(inp, &mut out);
    let rank = |s: &str| match s {
        "critical" => 0,
        "warning" => 1,
        _ => 2,
    };
    out.sort_by(|a, b| {
        rank(&a.severity)
            .cmp(&rank(&b.severity))
            .then(b.saving_per_day.bytes.cmp(&a.saving_per_day.bytes))
            .then(a.id.cmp(&b.id))
            .then(a.scope.cmp(&b.scope))
    });
    out
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

fn median(v: &mut [f64]) -> f64 {
    crate::stats::median(v)
}

/// "server 10.0.0.1:80" for one server, "3 servers" for more.
fn scope_of(servers: &[SocketAddr]) -> String {
    let mut s = servers.to_vec();
    s.sort_unstable();
    s.dedup();
    match s.as_slice() {
        [one] => format!("server {one}"),
        many => format!("{} servers", many.len()),
    }
}

/// A regular period of the group's exchanges, if it has one.
fn regular_period(g: &ResourceGroup, t: &Thresholds) -> Option<f64> {
    let s = g.samples.sorted();
    let gaps: Vec<f64> = s
        .windows(2)
        .filter_map(|w| match w {
            [a, b] => Some(b.start_ns.saturating_sub(a.start_ns) as f64 / 1e9),
            _ => None,
        })
        .collect();
    if gaps.is_empty() {
        return None;
    }
    let period = median(&mut gaps.clone());
    if period < t.polling_min_period_s {
        return None;
    }
    let regular = gaps.iter().filter(|g| (*g - period).abs() <= 0.25 * period).count();
    ((regular as f64) >= t.polling_regular_share * gaps.len() as f64).then_some(period)
}

/// Whether a resource group is polled: the polling finding's id for it and
/// its period.
fn polled(k: &ResourceKey, g: &ResourceGroup, t: &Thresholds) -> Option<(&'static str, f64)> {
    let fetch = match k.kind {
        Proto::Http | Proto::Http2 => k.method == Method::Get,
        Proto::Coap => k.method == Method::Get,
        Proto::Tls => {
            g.answered * 2 >= g.count && g.payload_down as f64 >= t.polling_encrypted_answer_ratio * g.payload_up as f64
        }
        _ => false,
    };
    if !fetch || g.count < t.polling_min_requests {
        return None;
    }
    let period = regular_period(g, t)?;
    let id = match k.kind {
        Proto::Http | Proto::Http2 => "http-polling",
        Proto::Coap => "coap-polling",
        _ => "polling",
    };
    Some((id, period))
}

/// A request repeated at a regular period: the same resource fetched again
/// and again instead of being pushed when it changes. Encrypted exchanges
/// count only when their answers carry the data (more bytes down than up):
/// uploads are not polling.
fn polling(inp: &Input, out: &mut Vec<Finding>) {
    let mut by_id: BTreeMap<&str, Vec<(&ResourceKey, &ResourceGroup, f64)>> = BTreeMap::new();
    for (k, g) in inp.streams.resources.iter() {
        if let Some((id, period)) = polled(k, g, inp.thresholds) {
            by_id.entry(id).or_default().push((k, g, period));
        }
    }
    for (id, groups) in by_id {
        let requests: u64 = groups.iter().map(|g| g.1.count).sum();
        let wire: u64 = groups.iter().map(|g| g.1.up + g.1.down).sum();
        let connections: u64 = groups.iter().map(|g| g.1.connections).sum();
        let payload: u64 = groups.iter().map(|g| g.1.payload_up + g.1.payload_down).sum();
        let servers: Vec<SocketAddr> = groups.iter().map(|g| g.0.server).collect();
        let mut periods: Vec<f64> = groups.iter().map(|g| g.2).collect();
        let period = median(&mut periods);
        let kind = groups.first().map(|g| g.0.kind).unwrap_or_default();
        let changes: Vec<(IpAddr, Change)> = groups
            .iter()
            .map(|(k, _, _)| {
                (k.client, Change::Push { server: k.server, resource: k.resource, kind: k.kind, acknowledged: true })
            })
            .collect();
        let what = match kind {
            Proto::Coap => {
                "the client registers once with CoAP Observe; each answer comes as a confirmable notification, acknowledged"
            }
            _ => {
                "the server pushes each answer on one kept-open connection (MQTT subscription, WebSocket, server push); the requests and their connections go"
            }
        };
        let (saving, cf) = inp.saving(&changes, groups.len() as u64, what);
        let examples: Vec<Value> = groups
            .iter()
            .take(3)
            .map(|(k, g, p)| {
                json!({"client": k.client, "server": k.server, "method": k.method.name(), "requests": g.count,
                       "period_s": round3(*p), "wire_bytes_per_request": round3((g.up + g.down) as f64 / g.count.max(1) as f64)})
            })
            .collect();
        out.push(Finding {
            id: id.into(),
            severity: "warning".into(),
            title: format!(
                "{requests} requests for {} resource{} every {:.1} s ({kind})",
                groups.len(),
                if groups.len() == 1 { "" } else { "s" },
                period
            ),
            evidence: json!({
                "protocol": kind, "resources": groups.len(), "requests": requests, "period_s": round3(period),
                "connections": connections, "wire_bytes": wire, "payload_bytes": payload,
                "wire_bytes_per_request": round3(wire as f64 / requests.max(1) as f64), "examples": examples,
            }),
            saving_per_day: saving,
            recommendation: match kind {
                Proto::Coap => "Register with CoAP Observe (RFC 7641) instead of polling; the server then sends a notification only when the resource changes.".into(),
                _ => "Replace polling with a push channel (MQTT subscription, CoAP Observe, WebSocket or HTTP long-poll), or lengthen the period to what the data actually needs.".into(),
            },
            scope: scope_of(&servers),
            instances: groups.len() as u64,
            counterfactual: Some(cf),
            saving_per_event: None,
        });
    }
}

/// Many TCP connections that each carry one exchange: every one pays the
/// TCP (and TLS, and MQTT CONNECT) setup again.
fn short_lived_connections(inp: &Input, out: &mut Vec<Finding>) {
    let t = inp.thresholds;
    let mut by_id: BTreeMap<&str, Vec<(SocketAddr, &stream::ServerGroup)>> = BTreeMap::new();
    // Short connections whose TLS sessions resume are what a device that
    // sleeps between readings should do (the recommendation below): when
    // most handshakes resume, TLS connections are not reported.
    let resuming = inp.tls.resumed_handshakes > 0 && inp.tls.resumed_handshakes >= inp.tls.full_handshakes;
    for ((server, _), g) in inp.streams.servers.iter() {
        if g.one_exchange < t.short_lived_min_connections || (resuming && g.tls_flows > 0) {
            continue;
        }
        // MQTT's name for it: a session per message.
        let id = if g.app == Proto::Mqtt { "reconnect-per-message" } else { "short-lived-connections" };
        by_id.entry(id).or_default().push((*server, g));
    }
    for (id, groups) in by_id {
        let n: u64 = groups.iter().map(|g| g.1.one_exchange).sum();
        let setup: u64 = groups.iter().map(|g| g.1.one_exchange_setup).sum();
        let wire: u64 = groups.iter().map(|g| g.1.one_exchange_wire).sum();
        let servers: Vec<SocketAddr> = groups.iter().map(|g| g.0).collect();
        let mut changes = Vec::new();
        for (server, g) in &groups {
            for c in &g.clients {
                changes.push((*c, Change::KeepAlive { server: *server }));
            }
        }
        let instances = changes.len() as u64;
        let what = if id == "reconnect-per-message" {
            "one persistent MQTT session: one CONNECT, the messages on it, PINGREQ once per idle keep-alive period"
        } else {
            "one kept-alive connection per server: one handshake, the same requests on it"
        };
        let (saving, cf) = inp.saving(&changes, instances, what);
        let app = groups.first().map(|g| g.1.app).unwrap_or_default();
        let examples: Vec<Value> = groups
            .iter()
            .take(3)
            .map(|(s, g)| json!({"server": s, "connections": g.one_exchange, "clients": g.client_count()}))
            .collect();
        out.push(Finding {
            id: id.into(),
            severity: "warning".into(),
            title: format!("{n} connections carry one exchange each ({})", scope_of(&servers)),
            evidence: json!({
                "app": app, "connections": n, "exchanges_per_connection": 1,
                "setup_and_teardown_bytes": setup, "wire_bytes": wire,
                "setup_share": round3(if wire > 0 { setup as f64 / wire as f64 } else { 0.0 }),
                "examples": examples,
            }),
            saving_per_day: saving,
            recommendation: "Keep one connection open and reuse it (HTTP keep-alive, a persistent MQTT session); if the device must sleep between readings, use TLS session resumption and send several readings per connection.".into(),
            scope: scope_of(&servers),
            instances,
            counterfactual: Some(cf),
            saving_per_event: None,
        });
    }
}

/// Several full TLS handshakes and no resumed one: the certificate chain
/// and key exchange are paid every time.
fn no_tls_resumption(inp: &Input, out: &mut Vec<Finding>) {
    let tls = inp.tls;
    let (full, resumed, conns) = (tls.full_handshakes, tls.resumed_handshakes, tls.connections);
    let min = inp.thresholds.tls_min_full_handshakes;
    if full < min || resumed > 0 || conns < min {
        return;
    }
    let s = inp.streams;
    let per = s.tls_handshake_bytes as f64 / s.tls_handshake_flows.max(1) as f64;
    let mut changes = Vec::new();
    let mut servers = Vec::new();
    for (ip, d) in s.devices.iter() {
        let mut seen: Vec<SocketAddr> =
            d.connections.sorted().iter().filter(|c| c.tls_handshake > 0).map(|c| c.server).collect();
        seen.sort_unstable();
        seen.dedup();
        for server in seen {
            servers.push(server);
            changes.push((*ip, Change::Resume { server }));
        }
    }
    let k = inp.constants();
    let what = format!(
        "every connection after the first resumes its TLS session: {} B of handshake instead of {:.0} B",
        k.resumed_handshake_bytes, per
    );
    let (saving, mut cf) = inp.saving(&changes, changes.len() as u64, &what);
    cf.assumptions.push(format!(
        "a resumed handshake: {} B of TLS records (TLS 1.2: {} B, measured on captures/https-tls12-resumed.pcap; TLS 1.3: {} B, captures/https-tls13-resumed.pcap)",
        k.resumed_handshake_bytes,
        whatif::RESUMED_TLS12_BYTES,
        whatif::RESUMED_TLS13_BYTES
    ));
    out.push(Finding {
        id: "no-tls-resumption".into(),
        severity: "warning".into(),
        title: format!("{full} full TLS handshakes, none resumed"),
        evidence: json!({
            "full_handshakes": full, "resumed_handshakes": resumed, "connections": conns,
            "handshake_bytes_per_connection": round3(per),
            "assumed_resumed_handshake_bytes": k.resumed_handshake_bytes,
        }),
        saving_per_day: saving,
        recommendation: "Enable TLS session resumption (session tickets or a session cache on the server, and a client that stores and offers them; TLS 1.3 PSK), so reconnections skip the certificate chain and key exchange.".into(),
        scope: scope_of(&servers),
        instances: changes.len() as u64,
        counterfactual: Some(cf),
        saving_per_event: None,
    });
}

/// Error responses answered by the same request again, faster than the
/// server can recover, and without backing off.
fn retry_without_backoff(inp: &Input, out: &mut Vec<Finding>) {
    let t = inp.thresholds;
    let max_gap_ns = inp.streams.retry_max_gap_ns;
    let mut retries = 0u64;
    let mut wasted = 0u64;
    let mut late = 0u64;
    let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
    let mut tallies = Vec::new();
    let mut changes = Vec::new();
    let mut servers = Vec::new();
    let mut examples = Vec::new();
    for (k, g) in inp.streams.resources.iter() {
        if !matches!(k.kind, Proto::Http | Proto::Http2) {
            continue;
        }
        // Every exchange of the group, taken in time order as it came.
        let r = g.retries.finished(max_gap_ns);
        if r.retries < t.retry_min_count {
            continue;
        }
        retries += r.retries;
        wasted += r.bytes;
        late += r.late;
        for (s, n) in &r.after_status {
            *statuses.entry(*s).or_default() += n;
        }
        servers.push(k.server);
        let (server, method, resource) = (k.server, k.method, k.resource);
        let drop = whatif::http::HttpChange::DropRetries { server, method, resource, max_gap_ns };
        changes.push((k.client, Change::Http(drop)));
        if examples.len() < 3 {
            let span_s = r.span.map_or(0.0, |(a, b)| round3(b.saturating_sub(a) as f64 / 1e9));
            examples.push(json!({"client": k.client, "server": k.server, "method": k.method.name(),
                                 "retries": r.retries, "span_s": span_s}));
        }
        tallies.push(r);
    }
    if retries < t.retry_min_count {
        return;
    }
    let med = stream::RetryTally::median_gap_s(&tallies.iter().collect::<Vec<_>>());
    let (saving, cf) = inp.saving(
        &changes,
        changes.len() as u64,
        "the retries after an error answer wait with exponential back-off: the quick repeats go",
    );
    out.push(Finding {
        id: "retry-without-backoff".into(),
        severity: "critical".into(),
        title: format!("{retries} requests retried within a second of an error response"),
        evidence: {
            let mut e = json!({
                "retries": retries, "after_status": statuses, "median_retry_gap_s": round3(med),
                "retry_wire_bytes": wasted, "examples": examples,
            });
            // Exchanges that reached the tally too far out of time order to be paired.
            if late > 0 {
                e["unpaired_late_exchanges"] = json!(late);
            }
            e
        },
        saving_per_day: saving,
        recommendation: "Back off exponentially with jitter after errors, honour Retry-After on 429 and 503, and cap the number of retries.".into(),
        scope: scope_of(&servers),
        instances: changes.len() as u64,
        counterfactual: Some(cf),
        saving_per_event: None,
    });
}

/// Many clients opening connections to one server in the same instant,
/// again and again: a fleet reconnecting in lock-step after an outage.
/// Priced per event: an outage is not a daily habit.
fn reconnection_storm(inp: &Input, out: &mut Vec<Finding>) {
    let t = inp.thresholds;
    let mut per_server: BTreeMap<SocketAddr, Vec<(i64, stream::Attempts)>> = BTreeMap::new();
    for ((server, w), a) in inp.streams.attempts.iter() {
        per_server.entry(*server).or_default().push((*w, *a));
    }
    let mut storms = Vec::new();
    for (server, windows) in per_server {
        let attempts: u64 = windows.iter().map(|w| w.1.attempts).sum();
        if attempts < 2 * t.storm_burst_attempts {
            continue;
        }
        // Bursts: two neighbouring 50 ms windows (100 ms) holding the burst
        // size; neighbouring bursts are one. A burst spans its windows from
        // the first marked to the one after the last (the pair's second).
        let count = |w: i64| windows.iter().find(|x| x.0 == w).map_or(0, |x| x.1.attempts);
        let mut spans: Vec<(i64, i64)> = Vec::new();
        let mut peak = 0u64;
        for (w, a) in &windows {
            let pair = a.attempts + count(w + 1);
            peak = peak.max(pair);
            if pair >= t.storm_burst_attempts {
                match spans.last_mut() {
                    Some(last) if w - (last.1 - 1) <= 2 => last.1 = w + 1,
                    _ => spans.push((*w, w + 1)),
                }
            }
        }
        let bursts = spans.len() as u64;
        let refused: u64 = windows.iter().map(|w| w.1.refused).sum();
        let refused_bytes: u64 = windows.iter().map(|w| w.1.refused_bytes).sum();
        if bursts < 2 || refused == 0 {
            continue;
        }
        // The event priced: a burst with refused attempts (a burst all of
        // whose attempts got through costs nothing a back-off would save).
        let mut refused_bursts = 0u64;
        let (mut burst_bytes, mut burst_billed) = (0u64, 0u64);
        for (first, last) in &spans {
            let inside = windows.iter().filter(|(w, _)| w >= first && w <= last);
            let (n, bytes, billed) = inside
                .fold((0, 0, 0), |(n, b, i), (_, a)| (n + a.refused, b + a.refused_bytes, i + a.refused_billed_bytes));
            if n > 0 {
                refused_bursts += 1;
                burst_bytes += bytes;
                burst_billed += billed;
            }
        }
        storms.push(Storm {
            server,
            attempts,
            refused,
            refused_bytes,
            bursts,
            refused_bursts,
            burst_bytes,
            burst_billed,
            peak,
        });
    }
    if storms.is_empty() {
        return;
    }
    let servers: Vec<SocketAddr> = storms.iter().map(|s| s.server).collect();
    let bursts: u64 = storms.iter().map(|s| s.bursts).sum();
    let refused_bursts: u64 = storms.iter().map(|s| s.refused_bursts).sum();
    let refused_bytes: u64 = storms.iter().map(|s| s.refused_bytes).sum();
    let burst_bytes: u64 = storms.iter().map(|s| s.burst_bytes).sum();
    let burst_billed: u64 = storms.iter().map(|s| s.burst_billed).sum();
    let attempts: u64 = storms.iter().map(|s| s.attempts).sum();
    let refused: u64 = storms.iter().map(|s| s.refused).sum();
    let peak = storms.iter().map(|s| s.peak).max().unwrap_or(0);
    let examples: Vec<Value> = storms
        .iter()
        .take(3)
        .map(|s| {
            json!({"server": s.server, "connection_attempts": s.attempts, "refused_attempts": s.refused,
                   "bursts": s.bursts, "refused_bursts": s.refused_bursts})
        })
        .collect();
    let per_event = Saving {
        bytes: burst_bytes / refused_bursts.max(1),
        billed_bytes: burst_billed / refused_bursts.max(1),
        radio_on_s: None,
        charge_mah: None,
        charge_basis: "the refused connection attempts of one burst with refusals (per event, not per day; bytes only)"
            .into(),
    };
    out.push(Finding {
        id: "reconnection-storm".into(),
        severity: "critical".into(),
        title: format!("{bursts} bursts of {}+ connection attempts within 100 ms ({})", t.storm_burst_attempts, scope_of(&servers)),
        evidence: json!({
            "connection_attempts": attempts, "refused_attempts": refused, "refused_bytes": refused_bytes,
            "peak_attempts_per_100ms": peak, "bursts": bursts, "refused_bursts": refused_bursts,
            // Each client tries once per burst: the largest burst counts them.
            "clients": peak, "examples": examples,
        }),
        saving_per_day: Saving::one_off(),
        recommendation: "Reconnect with exponential back-off and full jitter (delay = random(0, min(cap, base * 2^attempt))), so a fleet spreads its reconnections instead of hitting the server in lock-step.".into(),
        scope: scope_of(&servers),
        instances: storms.len() as u64,
        counterfactual: Some(Counterfactual {
            description: "the clients back off with jitter: the refused attempts of a burst are not made".into(),
            assumptions: vec![
                "priced per burst with refused attempts (an event): an outage does not recur daily".into(),
            ],
            ..Default::default()
        }),
        saving_per_event: Some(per_event),
    });
}

/// A server's reconnection storm, for `reconnection_storm`.
struct Storm {
    server: SocketAddr,
    attempts: u64,
    refused: u64,
    refused_bytes: u64,
    bursts: u64,
    /// Bursts with refused attempts (the events), and those attempts'
    /// wire and billed (IP) bytes.
    refused_bursts: u64,
    burst_bytes: u64,
    burst_billed: u64,
    peak: u64,
}

/// Bytes sent twice: loss on the link, or timers too eager.
fn retransmissions(inp: &Input, out: &mut Vec<Finding>) {
    let s = inp.streams;
    // Repeats to a port where nothing listens are not loss: `nothing-listening` has them.
    let total = s.retransmission_bytes.saturating_sub(session::dead_retransmission_bytes(inp));
    if total == 0 || inp.wire_bytes == 0 {
        return;
    }
    let share = total as f64 / inp.wire_bytes as f64;
    if share < inp.thresholds.retransmission_share {
        return;
    }
    let worst = s.worst_retransmitters.sorted();
    let dead: Vec<SocketAddr> = session::dead_servers(inp).iter().map(|d| d.0).collect();
    let mut changes = Vec::new();
    for (ip, d) in s.devices.iter() {
        let mut servers: Vec<SocketAddr> = d
            .connections
            .sorted()
            .iter()
            .filter(|c| c.retrans_bytes > 0 && !dead.contains(&c.server))
            .map(|c| c.server)
            .collect();
        servers.sort_unstable();
        servers.dedup();
        changes.extend(servers.into_iter().map(|server| (*ip, Change::Lossless { server })));
    }
    let (saving, mut cf) = inp.saving(&changes, changes.len() as u64, "a loss-free link: nothing sent twice");
    cf.assumptions.push(
        "a connection's retransmitted bytes and frames leave its messages in proportion to their bytes; the repeats are placed with the message they repeat"
            .into(),
    );
    out.push(Finding {
        id: "retransmissions".into(),
        severity: if share > inp.thresholds.retransmission_critical_share { "critical" } else { "warning" }.into(),
        title: format!("{:.1}% of the wire bytes are retransmissions", share * 100.0),
        evidence: json!({
            "retransmission_bytes": total, "retransmitted_frames": s.retransmitted_frames, "share": round3(share),
            "flows": worst.iter().map(|(b, c, sv, app, _)| json!({"client": c, "server": sv, "app": app,
                "retransmission_bytes": b.0})).collect::<Vec<_>>(),
        }),
        saving_per_day: saving,
        recommendation: "Find the loss (radio coverage, a congested uplink, a middlebox) or the timer: for CoAP check ACK_TIMEOUT against the real round trip; for TCP look at the path's loss rate.".into(),
        scope: "capture".into(),
        instances: worst.len() as u64,
        counterfactual: Some(cf),
        saving_per_event: None,
    });
}

/// Application header bytes an exchange of a compact protocol spends.
const COMPACT_HEADER_BYTES: u64 = 20;

/// Exchanges whose headers outweigh what they carry.
fn header_overhead(inp: &Input, out: &mut Vec<Finding>) {
    let hs = &inp.streams.headers;
    // Polled exchanges are the polling finding's: its fix removes their
    // requests, headers and all; counted here too, the two savings would
    // overlap on the same bytes.
    let (mut polled_n, mut polled_header, mut polled_payload) = (0u64, 0u64, 0u64);
    let mut polled_resources: BTreeMap<(IpAddr, SocketAddr, Proto), Vec<u64>> = BTreeMap::new();
    for (k, g) in inp.streams.resources.iter() {
        if k.kind != Proto::Tls && polled(k, g, inp.thresholds).is_some() {
            polled_n += g.count;
            polled_header += g.header;
            polled_payload += g.payload_up + g.payload_down;
            polled_resources.entry((k.client, k.server, k.kind)).or_default().push(k.resource);
        }
    }
    let exchanges: u64 = hs.values().map(|h| h.exchanges).sum::<u64>().saturating_sub(polled_n);
    if exchanges < 3 {
        return;
    }
    let header: u64 = hs.values().map(|h| h.header).sum::<u64>().saturating_sub(polled_header);
    let payload: u64 = hs.values().map(|h| h.payload).sum::<u64>().saturating_sub(polled_payload);
    if header <= payload || header < inp.thresholds.header_min_bytes {
        return;
    }
    let kinds: Vec<Proto> = hs.keys().copied().collect();
    // Compact framing (MQTT/CoAP) spends a few bytes where HTTP spends
    // hundreds: each device's exchanges with each server, re-simulated.
    let mut changes = Vec::new();
    for (ip, d) in inp.streams.devices.iter() {
        let mut seen: Vec<(SocketAddr, Proto)> = d
            .messages
            .sorted()
            .iter()
            .filter(|m| m.header > COMPACT_HEADER_BYTES && kinds.contains(&m.kind))
            .map(|m| (m.server, m.kind))
            .collect();
        seen.sort_unstable();
        seen.dedup();
        for (server, kind) in seen {
            let except = polled_resources.get(&(*ip, server, kind)).cloned().unwrap_or_default();
            changes.push((*ip, Change::CompactHeaders { server, kind, except, header_bytes: COMPACT_HEADER_BYTES }));
        }
    }
    let (saving, mut cf) = inp.saving(
        &changes,
        changes.len() as u64,
        &format!("the same exchanges with {COMPACT_HEADER_BYTES} B of headers each (a compact protocol's), frames and times unchanged"),
    );
    cf.assumptions.push(format!(
        "{COMPACT_HEADER_BYTES} B of application headers an exchange: an MQTT PUBLISH with a short topic and its PUBACK, or a CoAP request and response with a few options"
    ));
    out.push(Finding {
        id: "header-overhead".into(),
        severity: if header > 4 * payload { "warning" } else { "info" }.into(),
        title: format!("application headers ({header} B) outweigh the payload ({payload} B)"),
        evidence: json!({
            "protocols": kinds, "exchanges": exchanges, "header_bytes": header, "payload_bytes": payload,
            "mean_header_bytes": round3(header as f64 / exchanges as f64),
            "mean_payload_bytes": round3(payload as f64 / exchanges as f64),
            "header_to_payload": round3(header as f64 / payload.max(1) as f64),
        }),
        saving_per_day: saving,
        recommendation: "Trim headers the server does not need (User-Agent, Accept, cookies), or move to a compact protocol (MQTT, CoAP) whose headers are a few bytes.".into(),
        scope: "capture".into(),
        instances: exchanges,
        counterfactual: Some(cf),
        saving_per_event: None,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_come_from_the_findings_table() -> Result<(), String> {
        let t = Thresholds::from_config("[findings]\npolling_min_requests = 10\n[radio]\nx = 1\n")?;
        assert_eq!(t.polling_min_requests, 10);
        assert_eq!(t.retry_min_count, Thresholds::default().retry_min_count);
        assert!(Thresholds::from_config("[findings]\nno_such = 1\n").is_err());
        assert_eq!(Thresholds::from_config("")?, Thresholds::default());
        Ok(())
    }
}
