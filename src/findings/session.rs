//! Findings about how a device keeps (or fails to keep) its sessions:
//! heartbeats against the path's idle timeout, a server port with nothing
//! listening, and acknowledgements that telemetry does not need (MQTT QoS 2,
//! confirmable CoAP uploads). Each saving is a re-simulation of the devices'
//! timelines through `crate::whatif`, as the other findings'.

use super::{Counterfactual, Finding, Input, Saving, round3, round6, scope_of};
use crate::vocab::{L4, Method, Proto};
use crate::whatif::{self, Change, DayFigures};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

/// The shortest idle timeout a connection meets on a typical path, when
/// `--nat-timeout` does not say: 60 s, the UDP mapping timeout many home
/// and carrier NATs use (RFC 4787 REQ-5 asks for at least 120 s; measured
/// carrier-grade NATs go down to about 60 s, and TCP mappings idle behind
/// mobile operators' middleboxes are dropped from minutes down to a few
/// tens of seconds). Heartbeats belong at half the shortest timeout.
pub const DEFAULT_NAT_TIMEOUT_S: f64 = 60.0;

/// The source of the NAT timeout, for the finding's assumptions.
fn nat_source(inp: &Input) -> String {
    let t = inp.thresholds.nat_timeout_s;
    if (t - DEFAULT_NAT_TIMEOUT_S).abs() < f64::EPSILON {
        format!(
            "path idle timeout {t:.0} s (default: a common NAT mapping timeout; RFC 4787 asks for 120 s, carrier NATs go lower; set --nat-timeout)"
        )
    } else {
        format!("path idle timeout {t:.0} s (--nat-timeout or [findings] nat_timeout_s)")
    }
}

/// Like `Input::saving`, with the baseline itself changed (`base`): for a
/// practice the stored timeline keeps but does not place in time.
fn saving_between(
    inp: &Input,
    changes: &[(IpAddr, Change, Change)],
    instances: u64,
    what: &str,
) -> (Saving, Counterfactual) {
    let k = inp.constants();
    let mut by_device: BTreeMap<IpAddr, (Vec<Change>, Vec<Change>)> = BTreeMap::new();
    for (d, b, c) in changes {
        let e = by_device.entry(*d).or_default();
        e.0.push(b.clone());
        e.1.push(c.clone());
    }
    let mut total = DayFigures::default();
    let mut covered = 0u64;
    for (ip, (base, chs)) in &by_device {
        let Some(dev) = inp.streams.devices.get(ip) else { continue };
        total.add(&whatif::run_between(dev, base, chs, &k, inp.radio).saving());
        covered += chs.len() as u64;
    }
    // The baseline itself changes here: not a change the combined scenario
    // can stack on the others.
    inp.saving_of(total, covered, instances, &k, what, Vec::new())
}

/// The devices (and their servers) with long-lived MQTT connections.
fn mqtt_sessions(inp: &Input) -> Vec<(IpAddr, SocketAddr)> {
    let mut out = BTreeSet::new();
    for (ip, d) in inp.streams.devices.iter() {
        for c in d.connections.sorted() {
            if c.app == Proto::Mqtt && c.l4 == L4::Tcp && c.syn {
                out.insert((*ip, c.server));
            }
        }
    }
    out.into_iter().collect()
}

/// The longest silence (no message of the device to the server) within a
/// connection of it, seconds.
fn longest_silence(inp: &Input, ip: IpAddr, server: SocketAddr) -> f64 {
    let Some(d) = inp.streams.devices.get(&ip) else { return 0.0 };
    let msgs = d.messages.sorted();
    let mut longest = 0i64;
    for c in d.connections.sorted().iter().filter(|c| c.server == server && c.syn) {
        let busy = whatif::busy_marks(&msgs, server, c);
        for w in busy.windows(2) {
            if let [a, b] = *w {
                longest = longest.max(b - a);
            }
        }
    }
    longest as f64 / 1e9
}

/// MQTT keep-alive far below the path's idle timeout (the device wakes to
/// ping more often than any middlebox needs) or at or above it (a silent
/// connection is forgotten on the path and the device must connect again).
/// The seed's rule: a heartbeat at half the shortest idle timeout.
pub fn heartbeat_interval(inp: &Input, out: &mut Vec<Finding>) {
    let t = inp.thresholds;
    let (Some(keepalive), Some(mqtt)) = (inp.mqtt_keepalive_s, inp.mqtt) else { return };
    let nat = t.nat_timeout_s;
    if nat <= 0.0 {
        return;
    }
    let keepalive = f64::from(keepalive);
    let recommended = nat / 2.0;
    let pings = mqtt.packets.get("PINGREQ").unwrap_or(0);
    let sessions = mqtt_sessions(inp);
    if sessions.is_empty() {
        return;
    }
    let silences: Vec<f64> = sessions.iter().map(|(ip, s)| longest_silence(inp, *ip, *s)).collect();
    let longest = silences.iter().copied().fold(0.0, f64::max);
    // Too short: the pings show, at well under half the timeout.
    let too_short = keepalive > 0.0 && keepalive < t.heartbeat_short_share * nat && pings > 0;
    // Too long: none, or not before the path forgets, and a silence that long was seen.
    let too_long = (keepalive == 0.0 || keepalive >= nat) && longest >= nat;
    if !too_short && !too_long {
        return;
    }
    let changes: Vec<(IpAddr, Change, Change)> = sessions
        .iter()
        .map(|(ip, server)| {
            (
                *ip,
                Change::Heartbeat { server: *server, period_s: keepalive, drop_after_s: nat },
                Change::Heartbeat { server: *server, period_s: recommended, drop_after_s: nat },
            )
        })
        .collect();
    let what = format!(
        "PINGREQ after {recommended:.0} s of silence (half the path's {nat:.0} s idle timeout) instead of {keepalive:.0} s"
    );
    let (saving, mut cf) = saving_between(inp, &changes, sessions.len() as u64, &what);
    // The capture's day may never fall silent (the steady cycle has no
    // heartbeat in it): what a day of silence costs shows the heartbeat alone.
    let k = inp.constants();
    let ping_bytes = 2 * (2.0 + k.lower_per_frame) as u64;
    // A connection's opening as measured: its setup less the teardown and
    // the heartbeats the capture holds.
    let reopen = inp
        .streams
        .devices
        .iter()
        .flat_map(|(_, d)| d.connections.sorted())
        .find(|c| c.app == Proto::Mqtt && c.syn)
        .map_or(0, |c| c.setup_bytes.saturating_sub(3 * k.lower_per_frame as u64 + pings * ping_bytes));
    // Past the timeout every beat is a reconnection; without a keep-alive
    // the device learns it when it next sends, so one a timeout is the least.
    let (idle_period, idle_reopen) =
        if too_long { (if keepalive > 0.0 { keepalive } else { nat }, reopen.max(ping_bytes)) } else { (keepalive, 0) };
    let idle_now = whatif::idle_heartbeat_day(idle_period, idle_reopen, &k, inp.radio);
    let idle_then = whatif::idle_heartbeat_day(recommended, 0, &k, inp.radio);
    let idle_day = json!({
        "bytes": idle_now.bytes, "charge_mah": round3(idle_now.charge_mah), "reconnect_bytes": idle_reopen,
        "bytes_recommended": idle_then.bytes, "charge_mah_recommended": round3(idle_then.charge_mah),
    });
    cf.assumptions.push(nat_source(inp));
    cf.assumptions.push(
        "a heartbeat is a PINGREQ and a PINGRESP (2 B each, frame headers as measured) after each keep-alive period of silence, as mosquitto and paho clients send them; the captured ones are re-placed the same way on both sides"
            .into(),
    );
    if too_long {
        cf.assumptions.push(
            "a connection silent past the idle timeout is forgotten on the path: the device opens it again (TCP handshake and CONNECT, as measured)"
                .into(),
        );
    }
    let servers: Vec<SocketAddr> = sessions.iter().map(|s| s.1).collect();
    let intervals =
        mqtt.pingreq_interval_s.as_ref().map(|s| json!({"n": s.n, "min": s.min, "max": s.max, "mean": s.mean}));
    let (title, severity, recommendation) = if too_short {
        (
            format!("MQTT keep-alive {keepalive:.0} s, far below the path's {nat:.0} s idle timeout ({pings} pings)"),
            "warning",
            format!(
                "Lengthen the MQTT keep-alive to about {recommended:.0} s (half the shortest NAT or proxy idle timeout on the path): each ping wakes the radio and keeps it on for its tail time."
            ),
        )
    } else {
        (
            format!(
                "MQTT keep-alive {} at or above the path's {nat:.0} s idle timeout (silences up to {longest:.0} s)",
                if keepalive == 0.0 { "off".to_string() } else { format!("{keepalive:.0} s") }
            ),
            "warning",
            format!(
                "Set the MQTT keep-alive to about {recommended:.0} s (half the shortest NAT or proxy idle timeout): a connection silent for longer is dropped by the path without notice, and the device only learns it when the next message fails and it must reconnect."
            ),
        )
    };
    let mut saving = saving;
    if saving.bytes == 0 {
        saving.charge_basis = format!(
            "{}; the capture's steady cycle holds no silence, so the heartbeat costs little in its day: evidence.idle_day is a day of silence",
            saving.charge_basis
        );
    }
    out.push(Finding {
        id: "heartbeat-interval".into(),
        severity: severity.into(),
        title,
        evidence: json!({
            "protocol": "mqtt", "keepalive_s": keepalive, "nat_timeout_s": nat, "recommended_s": recommended,
            "too_short": too_short, "too_long": too_long, "pings": pings, "ping_interval_s": intervals,
            "longest_silence_s": round3(longest), "connections": sessions.len(), "idle_day": idle_day,
        }),
        saving_per_day: saving,
        recommendation,
        scope: scope_of(&servers),
        instances: sessions.len() as u64,
        counterfactual: Some(cf),
        saving_per_event: None,
    });
}

/// A server port with nothing listening: datagrams answered by ICMP port
/// unreachable, or TCP SYNs answered by a reset, and never an answer.
pub fn nothing_listening(inp: &Input, out: &mut Vec<Finding>) {
    let dead = dead_servers(inp);
    if dead.is_empty() {
        return;
    }
    let mut changes = Vec::new();
    for (server, _, g) in &dead {
        for c in &g.clients {
            changes.push((*c, Change::StopAtError { server: *server }));
        }
    }
    let servers: Vec<SocketAddr> = dead.iter().map(|d| d.0).collect();
    let unreachable: u64 = dead.iter().map(|d| d.2.unreachable).sum();
    let refused: u64 = dead.iter().map(|d| d.2.refused).sum();
    let attempts: u64 = dead.iter().map(|d| d.2.flows).sum();
    // A failed attempt is an event: how often the device makes one is not
    // in a capture of it; what one costs is.
    let k = inp.constants();
    let mut total = DayFigures::default();
    let mut covered_attempts = 0u64;
    for (ip, c) in &changes {
        let Some(d) = inp.streams.devices.get(ip) else { continue };
        total.add(&whatif::run_event(d, std::slice::from_ref(c), &k, inp.radio).saving());
        let Change::StopAtError { server } = c else { continue };
        covered_attempts += d.connections.sorted().iter().filter(|x| x.server == *server).count() as u64;
    }
    let per = total.scaled(1.0 / covered_attempts.max(1) as f64);
    let per_event = Saving {
        bytes: per.bytes,
        billed_bytes: per.billed_bytes.min(per.bytes),
        radio_on_s: per.radio_on().map(round6),
        charge_mah: per.charge().map(round6),
        charge_basis: "one failed attempt (a flow to the dead port) re-simulated as it went and stopping at the first error; the radio model run over each, not projected to a day".into(),
    };
    let mut assumptions = k.assumptions.clone();
    assumptions.push("priced per attempt: how often the device tries is not in the capture".into());
    assumptions.push("the repeats of one request are placed at its start (the errors in answer at their times)".into());
    if inp.radio.is_none() {
        assumptions.push("no radio model: bytes only".into());
    }
    let cf = Counterfactual {
        description: "the device stops at the first error: its first attempt and the error in answer remain, the repeats and their errors go".into(),
        assumptions,
        // Priced per attempt, not per day: not part of the combined day.
        changes: Vec::new(),
    };
    let wasted: u64 = dead.iter().map(|d| d.2.unreachable_bytes + d.2.refused_bytes).sum();
    let examples: Vec<_> = dead
        .iter()
        .take(3)
        .map(|(s, l4, g)| {
            json!({"server": s, "l4": l4, "flows": g.flows, "icmp_port_unreachable": g.unreachable,
                   "refused_connections": g.refused, "clients": g.client_count()})
        })
        .collect();
    out.push(Finding {
        id: "nothing-listening".into(),
        severity: "critical".into(),
        title: format!("nothing listens on {} ({unreachable} ICMP port unreachable, {refused} refused)", scope_of(&servers)),
        evidence: json!({
            "servers": servers.len(), "flows": attempts, "icmp_port_unreachable": unreachable,
            "refused_connections": refused, "error_bytes": wasted, "examples": examples,
        }),
        saving_per_day: Saving::one_off(),
        recommendation: "Check the server address and port the device is configured with, and that the service runs; a client should stop (or back off hard) on ICMP port unreachable or a refused connection rather than retransmit into nothing.".into(),
        scope: scope_of(&servers),
        instances: changes.len() as u64,
        counterfactual: Some(cf),
        saving_per_event: Some(per_event),
    });
}

/// Servers that never answered and whose host said nothing listens.
pub(super) fn dead_servers<'a>(inp: &Input<'a>) -> Vec<(SocketAddr, L4, &'a super::stream::ServerGroup)> {
    inp.streams
        .servers
        .iter()
        // Attempts made to it (an error for a packet the server sent a
        // departed client names the client's port, where no flow goes).
        .filter(|(_, g)| {
            g.flows > 0 && g.answered_flows == 0 && (g.unreachable > 0 || (g.refused > 0 && g.refused == g.opened))
        })
        .map(|((s, l4), g)| (*s, *l4, g))
        .collect()
}

/// Retransmitted bytes to servers where nothing listens: the client's
/// repeats into nothing, not loss on the link.
pub(super) fn dead_retransmission_bytes(inp: &Input) -> u64 {
    dead_servers(inp).iter().map(|d| d.2.retransmission_bytes).sum()
}

/// Uploads of a device to a server, by kind, counted from its timeline.
struct Uploads {
    count: u64,
    up: u64,
    down: u64,
    starts: Vec<i64>,
}

impl Uploads {
    /// The median gap between uploads, seconds (0 for fewer than two).
    fn median_gap_s(&self) -> f64 {
        let mut gaps: Vec<f64> = self
            .starts
            .windows(2)
            .filter_map(|w| match w {
                [a, b] => Some((b - a) as f64 / 1e9),
                _ => None,
            })
            .collect();
        if gaps.is_empty() { 0.0 } else { super::median(&mut gaps) }
    }
}

fn uploads(inp: &Input, keep: impl Fn(&super::stream::Message) -> bool) -> BTreeMap<(IpAddr, SocketAddr), Uploads> {
    let mut out: BTreeMap<(IpAddr, SocketAddr), Uploads> = BTreeMap::new();
    for (ip, d) in inp.streams.devices.iter() {
        for m in d.messages.sorted().iter().filter(|m| keep(m)) {
            let e = out.entry((*ip, m.server)).or_insert(Uploads { count: 0, up: 0, down: 0, starts: Vec::new() });
            e.count += 1;
            e.starts.push(m.start_ns);
            e.up += m.up;
            e.down += m.down;
        }
    }
    out
}

/// A finding over uploads grouped by (device, server): one change a group,
/// re-simulated together, and the groups' bytes.
struct UploadFix {
    changes: Vec<(IpAddr, Change)>,
    servers: Vec<SocketAddr>,
    saving: Saving,
    cf: Counterfactual,
    up: u64,
    down: u64,
}

impl UploadFix {
    fn of(
        inp: &Input,
        groups: &BTreeMap<(IpAddr, SocketAddr), Uploads>,
        change: impl Fn(SocketAddr) -> Change,
        what: &str,
        assumption: String,
    ) -> UploadFix {
        let changes: Vec<(IpAddr, Change)> = groups.keys().map(|(ip, s)| (*ip, change(*s))).collect();
        let (saving, mut cf) = inp.saving(&changes, changes.len() as u64, what);
        cf.assumptions.push(assumption);
        let (up, down) = groups.values().fold((0, 0), |a, u| (a.0 + u.up, a.1 + u.down));
        UploadFix { servers: groups.keys().map(|k| k.1).collect(), changes, saving, cf, up, down }
    }
}

/// Telemetry published with QoS 2: the exactly-once handshake (PUBREC,
/// PUBREL, PUBCOMP) for readings that a duplicate would not harm.
pub fn mqtt_qos2_telemetry(inp: &Input, out: &mut Vec<Finding>) {
    let groups =
        uploads(inp, |m| m.kind == Proto::Mqtt && m.method == Method::Publish && m.qos == 2 && m.payload_up > 0);
    let n: u64 = groups.values().map(|u| u.count).sum();
    if n < inp.thresholds.qos2_min_publishes {
        return;
    }
    let UploadFix { changes, servers, saving, cf, up, down } = UploadFix::of(
        inp,
        &groups,
        |server| Change::Qos1 { server },
        "the same PUBLISHes with QoS 1: PUBACK answers each, the PUBREL and PUBCOMP legs go",
        format!(
            "PUBREL and PUBCOMP {} B each in a frame of their own, and the TCP ACK after PUBREL, as on captures/mqtt311-qos2.pcap",
            whatif::MQTT_ACK_PACKET_BYTES
        ),
    );
    out.push(Finding {
        id: "mqtt-qos2-telemetry".into(),
        severity: "info".into(),
        title: format!("{n} PUBLISHes with QoS 2 ({})", scope_of(&servers)),
        evidence: json!({
            "publishes": n, "wire_bytes_per_publish": round3((up + down) as f64 / n.max(1) as f64),
            "up_bytes": up, "down_bytes": down, "frames_per_publish_qos2": 6, "frames_per_publish_qos1": 3,
        }),
        saving_per_day: saving,
        recommendation: "Publish telemetry with QoS 1 (at least once; readings carry a timestamp, so a duplicate is harmless) or QoS 0 when a lost reading is acceptable; keep QoS 2 for commands that must not run twice.".into(),
        scope: scope_of(&servers),
        instances: changes.len() as u64,
        counterfactual: Some(cf),
        saving_per_event: None,
    });
}

/// Telemetry uploaded as confirmable CoAP requests: each waits for an
/// acknowledgement (and is retransmitted without one) where a
/// non-confirmable request with No-Response would do.
pub fn coap_con_telemetry(inp: &Input, out: &mut Vec<Finding>) {
    let mut groups = uploads(inp, |m| {
        m.kind == Proto::Coap && m.confirmable && matches!(m.method, Method::Put | Method::Post) && m.payload_up > 0
    });
    // Readings come spread out in time; a block-wise transfer's blocks come
    // back to back, each waiting for the last one's acknowledgement.
    groups.retain(|_, u| u.median_gap_s() >= inp.thresholds.polling_min_period_s);
    let n: u64 = groups.values().map(|u| u.count).sum();
    if n < inp.thresholds.coap_con_min_uploads {
        return;
    }
    let UploadFix { changes, servers, saving, cf, up, down } = UploadFix::of(
        inp,
        &groups,
        |server| Change::NoResponse { server },
        "the same uploads non-confirmable with No-Response (RFC 7967): no acknowledgement or response comes back",
        format!(
            "the No-Response option adds {} B to each request; the answer's frame goes",
            whatif::COAP_NO_RESPONSE_OPTION_BYTES
        ),
    );
    out.push(Finding {
        id: "coap-con-telemetry".into(),
        severity: "info".into(),
        title: format!("{n} telemetry uploads sent confirmable ({})", scope_of(&servers)),
        evidence: json!({
            "uploads": n, "up_bytes": up, "answer_bytes": down,
            "wire_bytes_per_upload": round3((up + down) as f64 / n.max(1) as f64),
        }),
        saving_per_day: saving,
        recommendation: "Send periodic readings as non-confirmable (NON) requests, with No-Response (RFC 7967) when the answer is not used; a lost reading is superseded by the next. Keep CON for commands and for the occasional reading that must arrive.".into(),
        scope: scope_of(&servers),
        instances: changes.len() as u64,
        counterfactual: Some(cf),
        saving_per_event: None,
    });
}

/// A DNS lookup before (nearly) every connection: the answer is not cached
/// for its lifetime, so each connection waits for and pays a round trip.
pub fn dns_per_connection(inp: &Input, out: &mut Vec<Finding>) {
    let t = inp.thresholds;
    let mut devices = Vec::new();
    for (ip, d) in inp.streams.devices.iter() {
        let lookups = d.lookups.sorted();
        let connections = d.connections.sorted().iter().filter(|c| c.syn).count() as u64;
        // Resolutions: lookups more than 100 ms after the one before (A and
        // AAAA queries of one resolution come together).
        let mut resolutions = 0u64;
        let mut repeated = 0u64;
        let mut last: Option<i64> = None;
        for l in &lookups {
            if last.is_none_or(|x| l.start_ns.saturating_sub(x) >= 100_000_000) {
                resolutions += 1;
                if last.is_some_and(|x| (l.start_ns.saturating_sub(x) as f64) < t.dns_ttl_s * 1e9) {
                    repeated += 1;
                }
            }
            last = Some(l.start_ns);
        }
        // About one resolution a connection, again and again within the TTL.
        if resolutions >= t.dns_min_lookups
            && connections >= t.dns_min_lookups
            && resolutions * 5 >= connections * 4
            && repeated + 1 >= t.dns_min_lookups
        {
            let bytes: u64 = lookups.iter().map(|l| l.up + l.down).sum();
            devices.push((*ip, resolutions, connections, repeated, bytes));
        }
    }
    if devices.is_empty() {
        return;
    }
    let changes: Vec<(IpAddr, Change)> =
        devices.iter().map(|d| (d.0, Change::CacheDns { ttl_s: t.dns_ttl_s })).collect();
    let (saving, mut cf) = inp.saving(
        &changes,
        changes.len() as u64,
        "the device caches each DNS answer for its lifetime: one lookup a TTL, the others go",
    );
    cf.assumptions.push(format!(
        "answers live {:.0} s ([findings] dns_ttl_s; the TTL the capture's answers carry is not read)",
        t.dns_ttl_s
    ));
    let resolutions: u64 = devices.iter().map(|d| d.1).sum();
    let connections: u64 = devices.iter().map(|d| d.2).sum();
    let repeated: u64 = devices.iter().map(|d| d.3).sum();
    let bytes: u64 = devices.iter().map(|d| d.4).sum();
    let examples: Vec<_> = devices
        .iter()
        .take(3)
        .map(|d| json!({"client": d.0, "lookups": d.1, "connections": d.2, "repeated_within_ttl": d.3}))
        .collect();
    out.push(Finding {
        id: "dns-per-connection".into(),
        severity: "info".into(),
        title: format!("{resolutions} DNS lookups for {connections} connections ({repeated} within a TTL of the last)"),
        evidence: json!({
            "devices": devices.len(), "lookups": resolutions, "connections": connections,
            "repeated_within_ttl": repeated, "lookup_wire_bytes": bytes,
            "wire_bytes_per_lookup": round3(bytes as f64 / resolutions.max(1) as f64), "examples": examples,
        }),
        saving_per_day: saving,
        recommendation: "Cache DNS answers for their TTL on the device (a resolver cache such as systemd-resolved or dnsmasq, or the client library's own cache kept across connections), or keep the connection open so there is nothing to look up.".into(),
        scope: format!("{} device{}", devices.len(), if devices.len() == 1 { "" } else { "s" }),
        instances: devices.len() as u64,
        counterfactual: Some(cf),
        saving_per_event: None,
    });
}

/// Several connections open at once from one device to one server (domain
/// sharding, or a browser-style connection pool over HTTP/1.1), where one
/// HTTP/2 connection would carry the same requests multiplexed.
pub fn parallel_connections(inp: &Input, out: &mut Vec<Finding>) {
    let t = inp.thresholds;
    let mut groups: Vec<(IpAddr, SocketAddr, u64, u64)> = Vec::new();
    for (ip, d) in inp.streams.devices.iter() {
        let conns = d.connections.sorted();
        let mut servers: Vec<SocketAddr> = conns.iter().filter(|c| c.syn).map(|c| c.server).collect();
        servers.sort_unstable();
        servers.dedup();
        for server in servers {
            // Opens and closes in time order: the most open at once.
            let mut edges: Vec<(i64, i32)> = conns
                .iter()
                // Request-response connections (HTTP, or HTTPS unread): long-lived
                // sessions of many devices behind one address are not a pool.
                .filter(|c| c.server == server && c.syn && c.l4 == L4::Tcp && matches!(c.app, Proto::Http | Proto::Tls))
                .flat_map(|c| [(c.start_ns, 1), (c.end_ns.max(c.start_ns), -1)])
                .collect();
            edges.sort_unstable();
            let (mut open, mut most) = (0i32, 0i32);
            for (_, e) in &edges {
                open += e;
                most = most.max(open);
            }
            let most = u64::try_from(most).unwrap_or(0);
            if most >= t.parallel_min_connections {
                groups.push((*ip, server, most, (edges.len() / 2) as u64));
            }
        }
    }
    if groups.is_empty() {
        return;
    }
    let changes: Vec<(IpAddr, Change)> = groups.iter().map(|g| (g.0, Change::KeepAlive { server: g.1 })).collect();
    let (saving, mut cf) = inp.saving(
        &changes,
        changes.len() as u64,
        "one HTTP/2 connection to the server carries the same requests multiplexed: one handshake, no parallel ones",
    );
    cf.assumptions
        .push("HTTP/2 header compression (HPACK) and its framing not counted: the requests keep their sizes".into());
    let servers: Vec<SocketAddr> = groups.iter().map(|g| g.1).collect();
    let most = groups.iter().map(|g| g.2).max().unwrap_or(0);
    let connections: u64 = groups.iter().map(|g| g.3).sum();
    let examples: Vec<_> = groups
        .iter()
        .take(3)
        .map(|g| json!({"client": g.0, "server": g.1, "most_open_at_once": g.2, "connections": g.3}))
        .collect();
    out.push(Finding {
        id: "parallel-connections".into(),
        severity: "warning".into(),
        title: format!("up to {most} connections open at once to one server ({})", scope_of(&servers)),
        evidence: json!({
            "most_open_at_once": most, "connections": connections, "groups": groups.len(), "examples": examples,
        }),
        saving_per_day: saving,
        recommendation: "Use one HTTP/2 (or HTTP/3) connection and multiplex the requests on it instead of opening parallel connections or sharding over several host names; on HTTP/1.1, reuse a kept-alive connection.".into(),
        scope: scope_of(&servers),
        instances: groups.len() as u64,
        counterfactual: Some(cf),
        saving_per_event: None,
    });
}
