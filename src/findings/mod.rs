//! Anti-patterns, named with their evidence: polling, short-lived
//! connections, missing TLS resumption, retries without back-off,
//! reconnection storms, retransmissions, header-heavy exchanges.
//!
//! Findings read the report's flows, exchanges and protocol sections; they
//! never reach back into dissectors. Savings are projected to a day from the
//! capture's own rate.

use crate::flow::{Endpoint, FlowRecord};
use crate::ledger::{Class, Exchange};
use crate::stats::median;
use crate::vocab::{L4, Proto};
use foldhash::HashMap;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::IpAddr;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Saving {
    pub bytes: u64,
    /// Radio charge the change would save per day, when a radio model ran:
    /// the model's charge per day in proportion to the bytes saved (a first
    /// estimate; wake-ups and tails do not scale with bytes).
    pub charge_mah: f64,
    /// How `charge_mah` was estimated.
    pub charge_basis: String,
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
}

/// What findings look at.
pub struct Input<'a> {
    pub flows: &'a [FlowRecord],
    pub exchanges: &'a [Exchange],
    /// The report's `tls` section, as JSON.
    pub tls: Value,
    pub wire_bytes: u64,
    pub duration_s: f64,
    /// Radio charge per day and bytes per day it was computed for, if a
    /// radio model ran: savings in bytes are turned into charge pro rata.
    pub radio_per_day: Option<(f64, f64)>,
}

impl Input<'_> {
    /// Capture bytes to bytes per day.
    fn per_day(&self, bytes: f64) -> u64 {
        if self.duration_s <= 0.0 {
            return bytes.max(0.0) as u64;
        }
        (bytes.max(0.0) * 86_400.0 / self.duration_s) as u64
    }

    fn saving(&self, capture_bytes: f64) -> Saving {
        let bytes = self.per_day(capture_bytes);
        let charge_mah = match self.radio_per_day {
            Some((mah, day_bytes)) if day_bytes > 0.0 => mah * bytes as f64 / day_bytes,
            _ => 0.0,
        };
        let charge_basis = if charge_mah > 0.0 { "radio charge per day pro rata to bytes" } else { "no radio model" };
        Saving { bytes, charge_mah, charge_basis: charge_basis.to_string() }
    }
}

/// Runs every detector.
pub fn detect(inp: &Input) -> Vec<Finding> {
    let mut out = Vec::new();
    polling(inp, &mut out);
    short_lived_connections(inp, &mut out);
    no_tls_resumption(inp, &mut out);
    retry_without_backoff(inp, &mut out);
    reconnection_storm(inp, &mut out);
    retransmissions(inp, &mut out);
    header_overhead(inp, &mut out);
    out
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// "GET /a/b?x=1 200" -> ("GET", "/a/b", Some(200)).
fn parse_what(what: &str) -> (&str, &str, Option<u16>) {
    let mut it = what.split_whitespace();
    let method = it.next().unwrap_or("");
    let target = it.next().unwrap_or("");
    let path = target.split('?').next().unwrap_or("");
    let status = it.next().and_then(|s| s.parse().ok());
    (method, path, status)
}

/// A request repeated at a regular period: the same resource fetched again
/// and again instead of being pushed when it changes.
fn polling(inp: &Input, out: &mut Vec<Finding>) {
    let servers: HashMap<u64, Endpoint> = inp.flows.iter().map(|f| (f.id, f.server)).collect();
    let server_of = |x: &Exchange| servers.get(&x.flow).map_or_else(|| "?".to_string(), |s| s.to_string());
    let mut groups: BTreeMap<(Proto, String), Vec<&Exchange>> = BTreeMap::new();
    for x in inp.exchanges {
        let (method, path, _) = parse_what(&x.what);
        let fetch = match x.kind {
            Proto::Http | Proto::Http2 => method == "GET",
            Proto::Coap => method == "GET" && !x.what.contains("notify"),
            // Encrypted exchanges: the same server asked again and again.
            Proto::Tls => true,
            _ => false,
        };
        if fetch {
            let key = if x.kind == Proto::Tls { server_of(x) } else { format!("{method} {path}") };
            groups.entry((x.kind, key)).or_default().push(x);
        }
    }
    for ((kind, resource), xs) in groups {
        if xs.len() < 4 {
            continue;
        }
        let mut gaps: Vec<f64> = xs.windows(2).map(|w| w[1].start_ts - w[0].start_ts).collect();
        let period = median(&mut gaps.clone());
        if period < 0.2 {
            continue;
        }
        let regular = gaps.iter().filter(|g| (*g - period).abs() <= 0.25 * period).count();
        if (regular as f64) < 0.7 * gaps.len() as f64 {
            continue;
        }
        gaps.clear();
        let connections = {
            let mut f: Vec<u64> = xs.iter().map(|x| x.flow).collect();
            f.sort_unstable();
            f.dedup();
            f.len()
        };
        let cost: f64 = xs.iter().map(|x| x.total_cost_bytes).sum();
        let payload: u64 = xs.iter().map(|x| x.classes.get(Class::Payload)).sum();
        let request_bytes: f64 = xs.iter().map(|x| x.bytes_c2s as f64).sum();
        let id = match kind {
            Proto::Http | Proto::Http2 => "http-polling",
            Proto::Coap => "coap-polling",
            _ => "polling",
        };
        out.push(Finding {
            id: id.into(),
            severity: "warning".into(),
            title: format!("{} requests to {resource} every {:.1} s ({kind})", xs.len(), period),
            evidence: json!({
                "protocol": kind, "resource": resource, "requests": xs.len(), "period_s": round3(period),
                "connections": connections, "wire_bytes": round3(cost), "payload_bytes": payload,
                "wire_bytes_per_request": round3(cost / xs.len() as f64),
            }),
            // A subscription (MQTT, CoAP Observe, server push) sends only the news: the requests go.
            saving_per_day: inp.saving(request_bytes),
            recommendation: match kind {
                Proto::Coap => "Register with CoAP Observe (RFC 7641) instead of polling; the server then sends a notification only when the resource changes.".into(),
                _ => "Replace polling with a push channel (MQTT subscription, CoAP Observe, WebSocket or HTTP long-poll), or lengthen the period to what the data actually needs.".into(),
            },
        });
    }
}

/// Many TCP connections that each carry at most one exchange: every one
/// pays the TCP (and TLS, and MQTT CONNECT) setup again.
fn short_lived_connections(inp: &Input, out: &mut Vec<Finding>) {
    let mut by_server: BTreeMap<Endpoint, Vec<&FlowRecord>> = BTreeMap::new();
    for f in inp.flows.iter().filter(|f| f.l4 == L4::Tcp && f.syn > 0 && f.exchanges <= 1 && f.wire_bytes > 0) {
        by_server.entry(f.server).or_default().push(f);
    }
    for (server, fs) in by_server {
        let with_data: Vec<_> = fs.iter().filter(|f| f.exchanges == 1).collect();
        if with_data.len() < 3 {
            continue;
        }
        let n = with_data.len() as f64;
        let setup: f64 = with_data
            .iter()
            .map(|f| {
                (f.classes.get(Class::TcpControl)
                    + f.classes.get(Class::TlsHandshake)
                    + f.classes.get(Class::AppControl)) as f64
            })
            .sum();
        let wire: f64 = with_data.iter().map(|f| f.wire_bytes as f64).sum();
        let app = with_data.first().map(|f| f.inner.unwrap_or(f.app)).unwrap_or_default();
        out.push(Finding {
            // MQTT's name for it: a session per message.
            id: if app == Proto::Mqtt { "reconnect-per-message" } else { "short-lived-connections" }.into(),
            severity: "warning".into(),
            title: format!("{} connections to {server} carry one exchange each", with_data.len()),
            evidence: json!({
                "server": server, "app": app, "connections": with_data.len(), "exchanges_per_connection": 1,
                "setup_and_teardown_bytes": setup as u64, "wire_bytes": wire as u64,
                "setup_share": round3(if wire > 0.0 { setup / wire } else { 0.0 }),
            }),
            // One persistent connection pays the setup once.
            saving_per_day: inp.saving(setup * (n - 1.0) / n),
            recommendation: "Keep one connection open and reuse it (HTTP keep-alive, a persistent MQTT session); if the device must sleep between readings, use TLS session resumption and send several readings per connection.".into(),
        });
    }
}

/// Several full TLS handshakes and no resumed one: the certificate chain
/// and key exchange are paid every time.
fn no_tls_resumption(inp: &Input, out: &mut Vec<Finding>) {
    let get = |k: &str| inp.tls.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
    let (full, resumed, conns) = (get("full_handshakes"), get("resumed_handshakes"), get("connections"));
    if full < 3 || resumed > 0 || conns < 3 {
        return;
    }
    let hs: Vec<&FlowRecord> = inp.flows.iter().filter(|f| f.classes.get(Class::TlsHandshake) > 0).collect();
    let total_hs: u64 = hs.iter().map(|f| f.classes.get(Class::TlsHandshake)).sum();
    let per = total_hs as f64 / hs.len().max(1) as f64;
    // An abbreviated handshake is hellos, CCS and Finished: a few hundred bytes.
    const RESUMED_HANDSHAKE_BYTES: f64 = 350.0;
    let saving = ((per - RESUMED_HANDSHAKE_BYTES).max(0.0)) * (full - 1) as f64;
    out.push(Finding {
        id: "no-tls-resumption".into(),
        severity: "warning".into(),
        title: format!("{full} full TLS handshakes, none resumed"),
        evidence: json!({
            "full_handshakes": full, "resumed_handshakes": resumed, "connections": conns,
            "handshake_bytes_per_connection": round3(per),
            "assumed_resumed_handshake_bytes": RESUMED_HANDSHAKE_BYTES,
        }),
        saving_per_day: inp.saving(saving),
        recommendation: "Enable TLS session resumption (session tickets or a session cache on the server, and a client that stores and offers them; TLS 1.3 PSK), so reconnections skip the certificate chain and key exchange.".into(),
    });
}

/// Error responses answered by the same request again, faster than the
/// server can recover, and without backing off.
fn retry_without_backoff(inp: &Input, out: &mut Vec<Finding>) {
    let mut by_req: BTreeMap<String, Vec<&Exchange>> = BTreeMap::new();
    for x in inp.exchanges.iter().filter(|x| matches!(x.kind, Proto::Http | Proto::Http2)) {
        let (method, path, _) = parse_what(&x.what);
        by_req.entry(format!("{method} {path}")).or_default().push(x);
    }
    let mut retries = 0usize;
    let mut gaps = Vec::new();
    let mut wasted = 0.0;
    let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
    let mut resources = Vec::new();
    for (req, xs) in &by_req {
        let mut here = 0;
        for w in xs.windows(2) {
            let (_, _, status) = parse_what(&w[0].what);
            let Some(s) = status.filter(|s| *s == 429 || *s >= 500) else { continue };
            let gap = w[1].start_ts - w[0].end_ts.max(w[0].start_ts);
            // A retry that comes back within a second did not back off.
            if gap < 1.0 {
                here += 1;
                gaps.push(gap);
                wasted += w[1].total_cost_bytes;
                *statuses.entry(s).or_default() += 1;
            }
        }
        if here >= 3 {
            retries += here;
            resources.push(req.clone());
        }
    }
    if retries < 3 {
        return;
    }
    let med = median(&mut gaps);
    out.push(Finding {
        id: "retry-without-backoff".into(),
        severity: "critical".into(),
        title: format!("{retries} requests retried within a second of an error response"),
        evidence: json!({
            "retries": retries, "after_status": statuses, "median_retry_gap_s": round3(med), "requests": resources,
        }),
        saving_per_day: inp.saving(wasted),
        recommendation: "Back off exponentially with jitter after errors, honour Retry-After on 429 and 503, and cap the number of retries.".into(),
    });
}

/// Many clients opening connections to one server in the same instant,
/// again and again: a fleet reconnecting in lock-step after an outage.
fn reconnection_storm(inp: &Input, out: &mut Vec<Finding>) {
    let mut by_server: BTreeMap<Endpoint, Vec<(f64, IpAddr, bool)>> = BTreeMap::new();
    for f in inp.flows.iter().filter(|f| f.l4 == L4::Tcp && f.syn > 0) {
        let client_host = f.client.0.ip();
        let refused = f.rst > 0 && f.payload_bytes_c2s + f.payload_bytes_s2c == 0;
        by_server.entry(f.server).or_default().push((f.start_ts, client_host, refused));
    }
    const WINDOW_S: f64 = 0.1;
    const BURST: usize = 10;
    for (server, mut starts) in by_server {
        if starts.len() < 2 * BURST {
            continue;
        }
        starts.sort_by(|a, b| a.0.total_cmp(&b.0));
        // Bursts: at least BURST connection attempts within WINDOW_S.
        let mut bursts = Vec::new();
        let mut i = 0;
        let mut peak = 0;
        while i < starts.len() {
            let mut j = i;
            while j < starts.len() && starts[j].0 - starts[i].0 <= WINDOW_S {
                j += 1;
            }
            peak = peak.max(j - i);
            if j - i >= BURST {
                bursts.push((starts[i].0, j - i));
                i = j;
            } else {
                i += 1;
            }
        }
        let refused = starts.iter().filter(|s| s.2).count();
        if bursts.len() < 2 || refused == 0 {
            continue;
        }
        let mut clients: Vec<IpAddr> = starts.iter().map(|s| s.1).collect();
        clients.sort_unstable();
        clients.dedup();
        let refused_bytes: f64 = inp
            .flows
            .iter()
            .filter(|f| f.server == server && f.rst > 0 && f.payload_bytes_c2s + f.payload_bytes_s2c == 0)
            .map(|f| f.wire_bytes as f64)
            .sum();
        out.push(Finding {
            id: "reconnection-storm".into(),
            severity: "critical".into(),
            title: format!("{} bursts of {}+ connection attempts within {} ms to {server}", bursts.len(), BURST, (WINDOW_S * 1000.0) as u32),
            evidence: json!({
                "server": server, "connection_attempts": starts.len(), "refused_attempts": refused,
                "peak_attempts_per_100ms": peak, "bursts": bursts.len(),
                "burst_times": bursts.iter().take(20).map(|b| round3(b.0)).collect::<Vec<_>>(),
                "clients": clients.len(),
            }),
            saving_per_day: inp.saving(refused_bytes),
            recommendation: "Reconnect with exponential back-off and full jitter (delay = random(0, min(cap, base * 2^attempt))), so a fleet spreads its reconnections instead of hitting the server in lock-step.".into(),
        });
    }
}

/// Bytes sent twice: loss on the link, or timers too eager.
fn retransmissions(inp: &Input, out: &mut Vec<Finding>) {
    let total: u64 = inp.flows.iter().map(|f| f.classes.get(Class::Retransmission)).sum();
    if total == 0 || inp.wire_bytes == 0 {
        return;
    }
    let share = total as f64 / inp.wire_bytes as f64;
    if share < 0.01 {
        return;
    }
    let frames: u64 = inp.flows.iter().map(|f| f.retransmitted_frames).sum();
    let mut worst: Vec<&FlowRecord> = inp.flows.iter().filter(|f| f.classes.get(Class::Retransmission) > 0).collect();
    worst.sort_by_key(|f| std::cmp::Reverse(f.classes.get(Class::Retransmission)));
    out.push(Finding {
        id: "retransmissions".into(),
        severity: if share > 0.05 { "critical" } else { "warning" }.into(),
        title: format!("{:.1}% of the wire bytes are retransmissions", share * 100.0),
        evidence: json!({
            "retransmission_bytes": total, "retransmitted_frames": frames, "share": round3(share),
            "flows": worst.iter().take(5).map(|f| json!({"client": f.client, "server": f.server, "app": f.app,
                "retransmission_bytes": f.classes.get(Class::Retransmission)})).collect::<Vec<_>>(),
        }),
        saving_per_day: inp.saving(total as f64),
        recommendation: "Find the loss (radio coverage, a congested uplink, a middlebox) or the timer: for CoAP check ACK_TIMEOUT against the real round trip; for TCP look at the path's loss rate.".into(),
    });
}

/// Exchanges whose headers outweigh what they carry.
fn header_overhead(inp: &Input, out: &mut Vec<Finding>) {
    let xs: Vec<&Exchange> = inp
        .exchanges
        .iter()
        .filter(|x| matches!(x.kind, Proto::Http | Proto::Http2 | Proto::Coap | Proto::Mqtt | Proto::Websocket))
        .collect();
    if xs.len() < 3 {
        return;
    }
    let header: u64 = xs.iter().map(|x| x.classes.get(Class::AppHeader)).sum();
    let payload: u64 = xs.iter().map(|x| x.classes.get(Class::Payload)).sum();
    if header <= payload || header < 1000 {
        return;
    }
    let mut per_header: Vec<f64> = xs.iter().map(|x| x.classes.get(Class::AppHeader) as f64).collect();
    let mut per_payload: Vec<f64> = xs.iter().map(|x| x.classes.get(Class::Payload) as f64).collect();
    let (mh, mp) = (median(&mut per_header), median(&mut per_payload));
    let mut kinds: Vec<Proto> = xs.iter().map(|x| x.kind).collect();
    kinds.sort_unstable();
    kinds.dedup();
    out.push(Finding {
        id: "header-overhead".into(),
        severity: if header > 4 * payload { "warning" } else { "info" }.into(),
        title: format!("application headers ({header} B) outweigh the payload ({payload} B)"),
        evidence: json!({
            "protocols": kinds, "exchanges": xs.len(), "header_bytes": header, "payload_bytes": payload,
            "median_header_bytes": mh, "median_payload_bytes": mp,
            "header_to_payload": round3(header as f64 / payload.max(1) as f64),
        }),
        // Compact framing (MQTT/CoAP) spends a few bytes where HTTP spends hundreds.
        saving_per_day: inp.saving((header as f64 - xs.len() as f64 * 20.0).max(0.0)),
        recommendation: "Trim headers the server does not need (User-Agent, Accept, cookies), or move to a compact protocol (MQTT, CoAP) whose headers are a few bytes.".into(),
    });
}
