//! `wiretax whatif`: a device's application messages carried by another
//! protocol stack. Each message (its payload up and down, its time, from the
//! capture's exchanges; re-timed with `--interval`) is carried with the
//! stack's own per-connection and per-message frames, as measured on the
//! shipped captures, and the frame timeline so made runs through
//! [`super::per_day`]: the radio model and day projection of a capture.
//!
//! Every constant a stack uses is named with its source in the scenario's
//! `assumptions`: the capture's own where it shows it (frame headers, the
//! TLS handshake, HTTP headers), else a default measured on a named capture
//! in `captures/`.

use super::{DayFigures, Frame, Radio};
use crate::findings::stream::{Device, Message};
use crate::radio::{CostOptions, CostReport};
use crate::vocab::Proto;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A protocol stack a device's messages can be carried by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stack {
    HttpNew,
    HttpsNew,
    HttpsResumed,
    HttpKeepalive,
    HttpsKeepalive,
    Http2,
    Mqtt,
    MqttTls,
    MqttWs,
    CoapNon,
    CoapCon,
    CoapDtls,
}

impl Stack {
    pub const ALL: &[Stack] = &[
        Stack::HttpNew,
        Stack::HttpsNew,
        Stack::HttpsResumed,
        Stack::HttpKeepalive,
        Stack::HttpsKeepalive,
        Stack::Http2,
        Stack::Mqtt,
        Stack::MqttTls,
        Stack::MqttWs,
        Stack::CoapNon,
        Stack::CoapCon,
        Stack::CoapDtls,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stack::HttpNew => "http-new",
            Stack::HttpsNew => "https-new",
            Stack::HttpsResumed => "https-resumed",
            Stack::HttpKeepalive => "http-keepalive",
            Stack::HttpsKeepalive => "https-keepalive",
            Stack::Http2 => "http2",
            Stack::Mqtt => "mqtt",
            Stack::MqttTls => "mqtt-tls",
            Stack::MqttWs => "mqtt-ws",
            Stack::CoapNon => "coap-non",
            Stack::CoapCon => "coap-con",
            Stack::CoapDtls => "coap-dtls",
        }
    }

    pub fn parse(s: &str) -> Result<Stack, String> {
        let s = s.trim().to_ascii_lowercase();
        Stack::ALL.iter().copied().find(|k| k.name() == s).ok_or_else(|| {
            format!(
                "unknown stack `{s}`; one of {}",
                Stack::ALL.iter().map(|k| k.name()).collect::<Vec<_>>().join(", ")
            )
        })
    }

    fn tls(self) -> bool {
        matches!(self, Stack::HttpsNew | Stack::HttpsResumed | Stack::HttpsKeepalive | Stack::Http2 | Stack::MqttTls)
    }
}

/// What `whatif` was asked.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    pub stacks: Vec<Stack>,
    /// `--tls 1.3` (else 1.2) for the stacks over TLS.
    pub tls13: bool,
    /// `--qos` of the MQTT stacks.
    pub qos: u8,
    /// `--keepalive` of the MQTT stacks (s).
    pub keepalive_s: f64,
    /// `coap-dtls` with certificates rather than a pre-shared key.
    pub dtls_certificate: bool,
    /// `--interval`: every cycle of messages re-timed to this period.
    pub interval_s: Option<f64>,
}

impl Default for Request {
    fn default() -> Self {
        Request {
            stacks: Vec::new(),
            tls13: false,
            qos: 0,
            keepalive_s: DEFAULT_KEEPALIVE_S,
            dtls_certificate: false,
            interval_s: None,
        }
    }
}

/// mosquitto_pub's and paho's default keep-alive.
pub const DEFAULT_KEEPALIVE_S: f64 = 60.0;

/// What the capture showed of the wire, for the stacks' constants.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    /// Link-layer, IP and (data frames') TCP or UDP header bytes per frame.
    pub link_per_frame: Option<f64>,
    pub ip_per_frame: Option<f64>,
    pub tcp_per_frame: Option<f64>,
    /// TLS full-handshake record bytes per connection, by version (1.2, 1.3),
    /// when every handshake the capture shows was a full one of that version.
    pub tls12_full: Option<f64>,
    pub tls13_full: Option<f64>,
    /// HTTP header bytes of one exchange, request and response together.
    pub http_header: Option<f64>,
    /// The capture's wire bytes and duration, for the baseline without a radio model.
    pub wire_bytes: u64,
    /// Link-layer bytes of every frame, TCP control frames' included (the
    /// ledger books those whole as `tcp_control`): not billed.
    pub link_bytes: u64,
    pub frames: u64,
    pub duration_s: f64,
}

impl Seen {
    /// What a capture's totals and the detectors' aggregates show.
    pub fn of(
        s: &crate::findings::Streams,
        tls: &crate::dissect::tls::Stats,
        t: &crate::report::Totals,
        udp_streams: u64,
    ) -> Seen {
        use crate::ledger::Class;
        let per = |bytes: u64, n: u64| (n > 0 && bytes > 0).then(|| bytes as f64 / n as f64);
        // The ledger books a TCP control frame whole as `tcp_control`: the
        // link, network and transport classes hold the data frames' headers.
        let data_frames = t.frames.saturating_sub(s.tcp_control_frames);
        let tcp_only = udp_streams == 0 && s.tcp_control_frames > 0;
        let full = (tls.full_handshakes > 0 && tls.resumed_handshakes == 0)
            .then(|| per(s.tls_handshake_bytes, s.tls_handshake_flows))
            .flatten();
        let only = |v: &str| tls.versions.len() == 1 && tls.versions.contains_key(v);
        Seen {
            link_per_frame: per(t.classes.get(Class::Link), data_frames),
            ip_per_frame: per(t.classes.get(Class::Network), data_frames),
            tcp_per_frame: if tcp_only { per(t.classes.get(Class::Transport), data_frames) } else { None },
            tls12_full: full.filter(|_| only("TLS 1.2")),
            tls13_full: full.filter(|_| only("TLS 1.3")),
            http_header: s.headers.get(&Proto::Http).and_then(|h| per(h.header, h.exchanges)),
            wire_bytes: t.wire_bytes,
            // Wire bytes less those billed: every frame's link bytes.
            link_bytes: t.wire_bytes.saturating_sub(t.billed_bytes.unwrap_or(t.wire_bytes)),
            frames: t.frames,
            duration_s: t.duration_s,
        }
    }
}

/// The stacks' constants when the capture does not show them: each
/// measured on a named shipped capture, or from its specification.
const DEFAULTS: &[(&str, f64, &str)] = &[
    ("link header", 14.0, "Ethernet II, default as on every shipped capture (captures/sparse-mqtt-gps.pcap)"),
    ("IP header", 20.0, "IPv4 without options, default (captures/sparse-mqtt-gps.pcap)"),
    ("TCP header", 32.0, "TCP with timestamps (Linux), default (captures/sparse-mqtt-gps.pcap)"),
    (
        "TCP SYN header",
        40.0,
        "SYN and SYN-ACK with MSS, SACK, timestamps and window scale, default (captures/sparse-mqtt-gps.pcap)",
    ),
    ("UDP header", 8.0, "RFC 768"),
    ("TCP segment payload (MSS)", 1448.0, "MSS 1460 less 12 B of timestamps (captures/sparse-mqtt-gps.pcap)"),
    (
        "TLS 1.2 full handshake",
        1579.0,
        "264 B up (ClientHello 171; ClientKeyExchange, ChangeCipherSpec, Finished 93), 1,315 B down (ServerHello to ServerHelloDone 1,264; ChangeCipherSpec, Finished 51): ECDHE-RSA-AES128-GCM-SHA256 with an RSA certificate, captures/sparse-https-poll.pcap",
    ),
    ("TLS 1.2 resumed handshake", 410.0, "254 B up, 156 B down, session resumption: captures/https-tls12-resumed.pcap"),
    (
        "TLS 1.3 full handshake",
        1891.0,
        "324 B up (ClientHello 260; ChangeCipherSpec, Finished 64), 1,567 B down (ServerHello to Finished 1,409; two NewSessionTickets 158): captures/https-tls13-full.pcap",
    ),
    ("TLS 1.3 resumed handshake", 1142.0, "611 B up, 531 B down, PSK resumption: captures/https-tls13-resumed.pcap"),
    (
        "TLS 1.2 record overhead",
        29.0,
        "5 B header, 8 B explicit nonce, 16 B GCM tag a record (captures/sparse-https-poll.pcap)",
    ),
    ("TLS 1.3 record overhead", 22.0, "5 B header, 1 B inner type, 16 B tag a record (captures/https-tls13-full.pcap)"),
    ("TLS 1.2 close_notify", 31.0, "one alert record (captures/sparse-https-poll.pcap)"),
    ("TLS 1.3 close_notify", 24.0, "one alert record (captures/https-tls13-full.pcap)"),
    (
        "HTTP request header",
        160.0,
        "POST /api/v1/readings with Content-Type and Content-Length, curl (captures/sparse-https-poll.pcap)",
    ),
    ("HTTP response header", 159.0, "201 Created, nginx (captures/sparse-https-poll.pcap)"),
    (
        "HTTP keep-alive idle timeout",
        75.0,
        "nginx's keepalive_timeout default (the server of captures/sparse-http-keepalive-poll.pcap): a longer gap opens a new connection",
    ),
    (
        "HTTP/2 connection setup",
        140.0,
        "91 B up (preface 24, SETTINGS 45, WINDOW_UPDATE 13, SETTINGS ACK 9), 49 B down (SETTINGS 27, WINDOW_UPDATE 13, SETTINGS ACK 9): captures/h2c-keepalive.pcap",
    ),
    (
        "HTTP/2 request HEADERS",
        37.0,
        "9 B frame header, 28 B HPACK block (captures/h2c-keepalive.pcap, warm dynamic table)",
    ),
    ("HTTP/2 response HEADERS", 62.0, "9 B frame header, 53 B HPACK block (captures/h2c-keepalive.pcap)"),
    ("HTTP/2 DATA frame header", 9.0, "RFC 9113 section 4.1 (captures/h2c-keepalive.pcap)"),
    ("MQTT CONNECT", 22.0, "clean session, short client id, no credentials (captures/sparse-mqtt-gps.pcap)"),
    ("MQTT CONNACK", 4.0, "captures/sparse-mqtt-gps.pcap"),
    ("MQTT topic", 18.0, "`fleet/trk-0042/gps` (captures/sparse-mqtt-gps.pcap)"),
    (
        "MQTT acknowledgement",
        4.0,
        "PUBACK, PUBREC, PUBREL, PUBCOMP (captures/sparse-mqtt-gps.pcap, captures/mqtt311-qos2.pcap)",
    ),
    ("MQTT PINGREQ/PINGRESP", 2.0, "each (captures/sparse-mqtt-gps.pcap)"),
    ("MQTT DISCONNECT", 2.0, "captures/sparse-mqtt-gps.pcap"),
    (
        "WebSocket upgrade",
        453.0,
        "GET /mqtt Upgrade 218 B up, 101 Switching Protocols 235 B down (captures/mqtt-ws.pcap)",
    ),
    (
        "WebSocket frame header",
        6.0,
        "6 B a client frame (masked), 2 B a server frame, payloads under 126 B (captures/mqtt-ws.pcap)",
    ),
    (
        "CoAP request overhead",
        21.0,
        "4 B header, 1 B token, Uri-Path `example_data` 13 B, Content-Format 2 B, payload marker 1 B (captures/sparse-coap-non.pcap)",
    ),
    ("CoAP response", 5.0, "4 B header, 1 B token: an empty 2.04 (captures/sparse-coap-non.pcap)"),
    (
        "DTLS PSK handshake",
        893.0,
        "425 B up, 468 B down in 6 datagrams, cookie exchange included (captures/coap-dtls.pcap)",
    ),
    ("DTLS record overhead", 29.0, "13 B header, 8 B explicit nonce, 8 B CCM_8 tag a record (captures/coap-dtls.pcap)"),
    (
        "DTLS certificate messages",
        1210.0,
        "estimate, no shipped capture shows DTLS with certificates: the Certificate (860 B) and ServerKeyExchange (300 B) of captures/sparse-https-poll.pcap with 25 B of DTLS record and handshake headers each, on top of the PSK handshake",
    ),
];

/// A constant and where it came from.
#[derive(Clone, Debug)]
struct K {
    v: f64,
    src: String,
}

/// The constants the stacks use, by name; each used one goes into the
/// scenario's assumptions.
struct Wire {
    k: BTreeMap<&'static str, K>,
}

impl Wire {
    fn new(seen: &Seen) -> Wire {
        let mut k = BTreeMap::new();
        let mut put = |name: &'static str, v: f64, src: &str| {
            k.insert(name, K { v, src: src.to_string() });
        };
        for &(name, v, src) in DEFAULTS {
            put(name, v, src);
        }
        // What the capture shows, in place of the defaults.
        if let Some(v) = seen.link_per_frame {
            put("link header", v, "measured on this capture");
        }
        if let Some(v) = seen.ip_per_frame {
            put("IP header", v, "measured on this capture");
        }
        if let Some(v) = seen.tcp_per_frame {
            put("TCP header", v, "measured on this capture's data frames");
        }
        if let Some(v) = seen.tls12_full {
            put(
                "TLS 1.2 full handshake",
                v,
                "measured on this capture (split up and down as captures/sparse-https-poll.pcap)",
            );
        }
        if let Some(v) = seen.tls13_full {
            put(
                "TLS 1.3 full handshake",
                v,
                "measured on this capture (split up and down as captures/https-tls13-full.pcap)",
            );
        }
        if let Some(v) = seen.http_header {
            // Split as the default's request and response headers.
            put(
                "HTTP request header",
                v * 160.0 / 319.0,
                "measured on this capture (its share of the exchange's headers)",
            );
            put(
                "HTTP response header",
                v * 159.0 / 319.0,
                "measured on this capture (its share of the exchange's headers)",
            );
        }
        Wire { k }
    }
}

/// The frames of one stack being laid out, and the constants they used.
struct Synth<'a> {
    w: &'a Wire,
    used: BTreeMap<&'static str, ()>,
    frames: Vec<Frame>,
    t: i64,
    /// Link bytes of the frames made (not billed).
    link_bytes: u64,
    udp: bool,
}

/// Frames of one burst follow each other this far apart: time within a
/// burst is not modelled (the radio's tail dwarfs it).
const STEP_NS: i64 = 500_000;

impl<'a> Synth<'a> {
    fn new(w: &'a Wire, udp: bool) -> Self {
        Synth { w, used: BTreeMap::new(), frames: Vec::new(), t: 0, link_bytes: 0, udp }
    }

    fn k(&mut self, name: &'static str) -> f64 {
        self.used.insert(name, ());
        self.w.k.get(name).map_or(0.0, |k| k.v)
    }

    fn ku(&mut self, name: &'static str) -> u64 {
        self.k(name).round().max(0.0) as u64
    }

    fn at(&mut self, t_ns: i64) {
        self.t = self.t.max(t_ns);
    }

    fn frame(&mut self, uplink: bool, transport: u64, payload: u64) {
        let link = self.k("link header");
        let ip = self.k("IP header");
        let len = link + ip + transport as f64 + payload as f64;
        self.link_bytes += link.round() as u64;
        self.frames.push(Frame { t_ns: self.t, uplink, len: len.round().min(f64::from(u32::MAX)) as u32 });
        self.t += STEP_NS;
    }

    /// `payload` bytes one way, in as many segments (TCP) or datagrams as
    /// the MSS makes them.
    fn data(&mut self, uplink: bool, payload: u64) {
        let (header, mss) = if self.udp {
            (self.ku("UDP header"), 1400)
        } else {
            (self.ku("TCP header"), self.ku("TCP segment payload (MSS)").max(1))
        };
        let mut left = payload;
        loop {
            let n = left.min(mss);
            self.frame(uplink, header, n);
            left -= n;
            if left == 0 {
                break;
            }
        }
    }

    fn ack(&mut self, uplink: bool) {
        let h = self.ku("TCP header");
        self.frame(uplink, h, 0);
    }

    fn tcp_open(&mut self) {
        let syn = self.ku("TCP SYN header");
        self.frame(true, syn, 0);
        self.frame(false, syn, 0);
        self.ack(true);
    }

    fn tcp_close(&mut self) {
        self.ack(true);
        self.ack(false);
        self.ack(true);
    }

    /// The TLS handshake's flights (up, down, up, down), from its total as the
    /// named capture splits it.
    fn tls_handshake(&mut self, tls13: bool, resumed: bool) {
        let (name, split): (&'static str, [f64; 4]) = match (tls13, resumed) {
            (false, false) => ("TLS 1.2 full handshake", [171.0, 1264.0, 93.0, 51.0]),
            (false, true) => ("TLS 1.2 resumed handshake", [203.0, 156.0, 51.0, 0.0]),
            (true, false) => ("TLS 1.3 full handshake", [260.0, 1409.0, 64.0, 158.0]),
            (true, true) => ("TLS 1.3 resumed handshake", [547.0, 244.0, 64.0, 287.0]),
        };
        let total = self.k(name);
        let sum: f64 = split.iter().sum();
        let f = if sum > 0.0 { total / sum } else { 0.0 };
        let [u1, d1, u2, d2] = split.map(|x| (x * f).round() as u64);
        self.data(true, u1);
        self.ack(false);
        self.data(false, d1);
        self.ack(true);
        self.data(true, u2);
        if d2 > 0 {
            self.data(false, d2);
        }
    }

    fn record_overhead(&mut self, tls13: bool) -> u64 {
        self.ku(if tls13 { "TLS 1.3 record overhead" } else { "TLS 1.2 record overhead" })
    }

    fn close_notify(&mut self, tls13: bool) {
        let n = self.ku(if tls13 { "TLS 1.3 close_notify" } else { "TLS 1.2 close_notify" });
        self.data(true, n);
    }
}

/// One application message: its time and payload each way.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AppMessage {
    pub t_ns: i64,
    pub up: u64,
    pub down: u64,
}

impl AppMessage {
    /// An upload (the answer only acknowledges it) or a fetch (the answer
    /// carries the data).
    fn upload(&self) -> bool {
        self.up >= self.down
    }
}

/// A device's messages from its exchanges: payload bytes each way, at the
/// exchange's start. An ICMP error in the timeline (kind unknown) is the
/// network's answer, not the application's message.
pub fn messages(d: &Device) -> Vec<AppMessage> {
    d.messages
        .sorted()
        .iter()
        .filter(|m| m.kind != Proto::Unknown)
        .map(|m: &Message| AppMessage { t_ns: m.start_ns, up: m.payload_up, down: m.payload_down })
        .collect()
}

/// Messages re-timed to `interval_s`: cycles (messages closer than half
/// the typical gap belong to one) start one period apart, each keeping its
/// messages' offsets.
pub fn retime(msgs: &[AppMessage], interval_s: f64) -> Vec<AppMessage> {
    let Some(first) = msgs.first() else { return Vec::new() };
    let mut gaps: Vec<f64> = msgs
        .windows(2)
        .filter_map(|w| match w {
            [a, b] => Some(b.t_ns.saturating_sub(a.t_ns) as f64 / 1e9),
            _ => None,
        })
        .filter(|g| *g >= 0.1)
        .collect();
    let typical = crate::stats::median(&mut gaps);
    let period = (interval_s * 1e9) as i64;
    let mut out = Vec::with_capacity(msgs.len());
    let mut cycle = 0i64;
    let mut cycle_start = first.t_ns;
    let mut prev = first.t_ns;
    for m in msgs {
        if m.t_ns != first.t_ns && m.t_ns.saturating_sub(prev) as f64 / 1e9 >= 0.5 * typical {
            cycle += 1;
            cycle_start = m.t_ns;
        }
        prev = m.t_ns;
        let t =
            first.t_ns.saturating_add(cycle.saturating_mul(period)).saturating_add(m.t_ns.saturating_sub(cycle_start));
        out.push(AppMessage { t_ns: t, ..*m });
    }
    out
}

/// Bytes of an MQTT PUBLISH carrying `payload`.
fn mqtt_publish(topic: u64, qos: u8, payload: u64) -> u64 {
    let remaining = 2 + topic + if qos > 0 { 2 } else { 0 } + payload;
    let length_bytes = match remaining {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    };
    1 + length_bytes + remaining
}

/// How a stack's MQTT packets travel: on TCP, in TLS records, or in
/// WebSocket frames.
#[derive(Clone, Copy)]
enum Carrier {
    Tcp,
    Tls(bool),
    Ws,
}

fn wrap(s: &mut Synth, c: Carrier, uplink: bool, bytes: u64) -> u64 {
    match c {
        Carrier::Tcp => bytes,
        Carrier::Tls(v13) => bytes + s.record_overhead(v13),
        Carrier::Ws => {
            let h = s.ku("WebSocket frame header");
            bytes + if uplink { h } else { 2 }
        }
    }
}

/// The frames of `msgs` carried by `stack`.
fn synthesize(stack: Stack, msgs: &[AppMessage], req: &Request, s: &mut Synth) {
    let v13 = req.tls13;
    match stack {
        Stack::HttpNew | Stack::HttpsNew | Stack::HttpsResumed => {
            for (i, m) in msgs.iter().enumerate() {
                s.at(m.t_ns);
                s.tcp_open();
                if stack.tls() {
                    s.tls_handshake(v13, stack == Stack::HttpsResumed && i > 0);
                }
                if stack.tls() {
                    http_exchange(s, m, Some(v13));
                } else {
                    // On a fresh connection the server acknowledges the
                    // request at once (Linux quick-ACK) and the client the
                    // answer (captures/http-poll-close.pcap).
                    let req = s.ku("HTTP request header") + m.up;
                    let resp = s.ku("HTTP response header") + m.down;
                    s.data(true, req);
                    s.ack(false);
                    s.data(false, resp);
                    s.ack(true);
                }
                if stack.tls() {
                    s.close_notify(v13);
                }
                s.tcp_close();
            }
        }
        Stack::HttpKeepalive | Stack::HttpsKeepalive | Stack::Http2 => {
            let idle = (s.k("HTTP keep-alive idle timeout") * 1e9) as i64;
            let tls = stack.tls().then_some(v13);
            let mut last: Option<i64> = None;
            for m in msgs {
                let reopen = last.is_none_or(|l| m.t_ns.saturating_sub(l) > idle);
                if reopen && last.is_some() {
                    // The server closed the idle connection (its timeout).
                    if let Some(v) = tls {
                        s.close_notify(v);
                    }
                    s.tcp_close();
                }
                s.at(m.t_ns);
                if reopen {
                    s.tcp_open();
                    if let Some(v) = tls {
                        s.tls_handshake(v, false);
                    }
                    if stack == Stack::Http2 {
                        let total = s.ku("HTTP/2 connection setup");
                        let up = (total as f64 * 91.0 / 140.0).round() as u64;
                        let o = tls.map_or(0, |v| s.record_overhead(v));
                        s.data(true, up + o);
                        s.data(false, total.saturating_sub(up) + o);
                        s.ack(true);
                    }
                }
                if stack == Stack::Http2 {
                    h2_exchange(s, m, tls);
                } else {
                    http_exchange(s, m, tls);
                }
                s.ack(true);
                last = Some(m.t_ns);
            }
            if last.is_some() {
                if let Some(v) = tls {
                    s.close_notify(v);
                }
                s.tcp_close();
            }
        }
        Stack::Mqtt | Stack::MqttTls | Stack::MqttWs => {
            let carrier = match stack {
                Stack::MqttTls => Carrier::Tls(v13),
                Stack::MqttWs => Carrier::Ws,
                _ => Carrier::Tcp,
            };
            mqtt(s, msgs, req, carrier);
        }
        Stack::CoapNon | Stack::CoapCon | Stack::CoapDtls => {
            let dtls = stack == Stack::CoapDtls;
            let over = if dtls { s.ku("DTLS record overhead") } else { 0 };
            if dtls && let Some(first) = msgs.first() {
                s.at(first.t_ns);
                // The PSK handshake's six datagrams, as captured; certificates add theirs.
                let total = s.ku("DTLS PSK handshake") as f64 / 893.0;
                for (up, b) in
                    [(true, 147.0), (false, 60.0), (true, 179.0), (false, 134.0), (true, 99.0), (false, 274.0)]
                {
                    s.data(up, (b * total).round() as u64);
                }
                if req.dtls_certificate {
                    let extra = s.ku("DTLS certificate messages");
                    s.data(false, extra);
                }
            }
            let request = s.ku("CoAP request overhead");
            let response = s.ku("CoAP response");
            for m in msgs {
                s.at(m.t_ns);
                if m.upload() {
                    // PUT with the reading; the answer (2.04, NON or a
                    // piggybacked ACK) carries nothing.
                    s.data(true, request + m.up + over);
                    s.data(false, response + over);
                } else {
                    // GET without Content-Format or payload; the answer has both.
                    s.data(true, request.saturating_sub(3) + m.up + over);
                    s.data(false, response + 3 + m.down + over);
                }
            }
        }
    }
}

fn http_exchange(s: &mut Synth, m: &AppMessage, tls: Option<bool>) {
    let o = tls.map_or(0, |v| s.record_overhead(v));
    let req = s.ku("HTTP request header") + m.up + o;
    let resp = s.ku("HTTP response header") + m.down + o;
    s.data(true, req);
    s.data(false, resp);
}

fn h2_exchange(s: &mut Synth, m: &AppMessage, tls: Option<bool>) {
    let o = tls.map_or(0, |v| s.record_overhead(v));
    let data = s.ku("HTTP/2 DATA frame header");
    let headers_up = s.ku("HTTP/2 request HEADERS");
    let up = headers_up + if m.up > 0 { data + m.up } else { 0 };
    s.data(true, up + o);
    let h = s.ku("HTTP/2 response HEADERS");
    s.data(false, h + o);
    if m.down > 0 {
        s.data(false, data + m.down + o);
    }
}

fn mqtt(s: &mut Synth, msgs: &[AppMessage], req: &Request, c: Carrier) {
    let (Some(first), Some(last)) = (msgs.first(), msgs.last()) else { return };
    let qos = req.qos.min(2);
    let topic = s.ku("MQTT topic");
    let ack = s.ku("MQTT acknowledgement");
    s.at(first.t_ns);
    s.tcp_open();
    match c {
        Carrier::Tls(v13) => s.tls_handshake(v13, false),
        Carrier::Ws => {
            let total = s.ku("WebSocket upgrade");
            let up = (total as f64 * 218.0 / 453.0).round() as u64;
            s.data(true, up);
            s.ack(false);
            s.data(false, total.saturating_sub(up));
            s.ack(true);
        }
        Carrier::Tcp => {}
    }
    let connect = s.ku("MQTT CONNECT");
    let b = wrap(s, c, true, connect);
    s.data(true, b);
    s.ack(false);
    let connack = s.ku("MQTT CONNACK");
    let b = wrap(s, c, false, connack);
    s.data(false, b);
    s.ack(true);
    if msgs.iter().any(|m| !m.upload()) {
        // SUBSCRIBE (packet id, topic, options) and SUBACK.
        let sub = wrap(s, c, true, 2 + 2 + 2 + topic + 1);
        s.data(true, sub);
        let suback = wrap(s, c, false, 5);
        s.data(false, suback);
        s.ack(true);
    }
    let keepalive = (req.keepalive_s * 1e9) as i64;
    let ping = s.ku("MQTT PINGREQ/PINGRESP");
    let mut sent = first.t_ns;
    for m in msgs {
        // mosquitto sends PINGREQ once a keep-alive period in which it sent nothing.
        if keepalive > 0 {
            let mut t = sent.saturating_add(keepalive);
            while t < m.t_ns {
                s.at(t);
                let p = wrap(s, c, true, ping);
                s.data(true, p);
                let p = wrap(s, c, false, ping);
                s.data(false, p);
                s.ack(true);
                sent = t;
                t = t.saturating_add(keepalive);
            }
        }
        s.at(m.t_ns);
        let (up, payload) = if m.upload() { (true, m.up) } else { (false, m.down) };
        let publish = wrap(s, c, up, mqtt_publish(topic, qos, payload));
        let ack_to = wrap(s, c, !up, ack);
        let ack_back = wrap(s, c, up, ack);
        s.data(up, publish);
        match qos {
            0 => s.ack(!up),
            1 => {
                s.data(!up, ack_to);
                s.ack(up);
            }
            _ => {
                s.data(!up, ack_to);
                // PUBREL waits on the client's loop: the PUBREC is acknowledged first.
                s.ack(up);
                s.data(up, ack_back);
                s.data(!up, ack_to);
                s.ack(up);
            }
        }
        if up {
            sent = m.t_ns;
        } else if qos > 0 {
            // Its acknowledgement was the client's.
            sent = m.t_ns;
        }
    }
    s.at(last.t_ns);
    let d = s.ku("MQTT DISCONNECT");
    let d = wrap(s, c, true, d);
    s.data(true, d);
    if let Carrier::Tls(v13) = c {
        s.close_notify(v13);
    }
    s.tcp_close();
}

/// Message cycles added to find a day by difference.
const ADDED_CYCLES: usize = 8;

/// The typical gap between messages (their period), when MQTT keep-alive
/// pings fall within it: then the steady cycle of bursts is not the
/// messages' cycle.
fn pings_within_cycle(stack: Stack, msgs: &[AppMessage], req: &Request) -> Option<f64> {
    if !matches!(stack, Stack::Mqtt | Stack::MqttTls | Stack::MqttWs) || req.keepalive_s <= 0.0 {
        return None;
    }
    let mut gaps: Vec<f64> = msgs
        .windows(2)
        .filter_map(|w| match w {
            [a, b] => Some(b.t_ns.saturating_sub(a.t_ns) as f64 / 1e9),
            _ => None,
        })
        .filter(|g| *g >= 0.1)
        .collect();
    if gaps.is_empty() {
        return None;
    }
    let period = crate::stats::median(&mut gaps);
    (period > req.keepalive_s).then_some(period)
}

/// What the radio model totals over a timeline: (radio on s, energy J,
/// charge mAh, wake-ups).
fn totals(frames: &[Frame], radio: &Radio) -> (f64, f64, f64, f64) {
    let (Some(first), Some(last)) = (frames.first(), frames.last()) else { return (0.0, 0.0, 0.0, 0.0) };
    let mut sim = crate::radio::RadioSim::new(radio.0.clone(), radio.1.clone());
    for f in frames {
        sim.tick(&crate::radio::Tick {
            ts_ns: f.t_ns,
            wire_len: f.len,
            uplink: f.uplink,
            flow: crate::radio::Tick::NO_FLOW,
            exchange: None,
            link_len: 0,
        });
    }
    let r = sim.finish(last.t_ns.saturating_sub(first.t_ns) as f64 / 1e9);
    (r.radio_on_s, r.energy_j, r.charge_mah, r.wakeups as f64)
}

/// A day from whole message cycles: the timeline re-simulated as it is and
/// with `ADDED_CYCLES` more of its last cycle, `period` apart; the
/// difference is that many cycles, start-up and shut-down cancelled out.
fn by_added_cycles(
    msgs: &[AppMessage],
    period_s: f64,
    radio: Option<&Radio>,
    link_per_frame: f64,
    lay_out: impl Fn(&[AppMessage]) -> Vec<Frame>,
) -> DayFigures {
    let Some(last) = msgs.last() else { return DayFigures::default() };
    let period = (period_s * 1e9) as i64;
    // The last cycle: the messages within half a period of the last one.
    let cycle: Vec<AppMessage> =
        msgs.iter().filter(|m| last.t_ns.saturating_sub(m.t_ns) < period / 2).copied().collect();
    let mut longer = msgs.to_vec();
    for i in 1..=ADDED_CYCLES as i64 {
        longer.extend(cycle.iter().map(|m| AppMessage { t_ns: m.t_ns.saturating_add(period.saturating_mul(i)), ..*m }));
    }
    let (a, b) = (lay_out(msgs), lay_out(&longer));
    let bytes = |f: &[Frame]| f.iter().map(|x| f64::from(x.len)).sum::<f64>();
    let per_day = 86_400.0 / (period_s * ADDED_CYCLES as f64);
    let day_bytes = ((bytes(&b) - bytes(&a)) * per_day).max(0.0);
    let day_link = ((b.len() as f64 - a.len() as f64) * link_per_frame * per_day).max(0.0);
    let mut d = DayFigures {
        bytes: day_bytes.round() as u64,
        billed_bytes: (day_bytes - day_link).max(0.0).round() as u64,
        no_radio_figures: radio.is_none(),
        ..Default::default()
    };
    if let Some(r) = radio {
        let (ta, tb) = (totals(&a, r), totals(&b, r));
        d.radio_on_s = ((tb.0 - ta.0) * per_day).clamp(0.0, 86_400.0);
        d.energy_j = (tb.1 - ta.1) * per_day;
        d.charge_mah = (tb.2 - ta.2) * per_day;
        d.wakeups = (tb.3 - ta.3) * per_day;
    }
    d
}

/// Per message: wire bytes, billed bytes and frames.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PerMessage {
    pub wire_bytes: f64,
    pub billed_bytes: f64,
    pub frames: f64,
}

/// A day of the device (or the capture's devices together).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PerDay {
    pub bytes: u64,
    pub billed_bytes: u64,
    pub radio_on_s: f64,
    pub charge_mah: f64,
    pub energy_j: f64,
    pub wakeups: f64,
    /// The radio figures are not figures (left at 0): no radio model, or
    /// no steady cycle to project (the day is the bytes at their rate).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_radio_figures: bool,
}

impl From<&DayFigures> for PerDay {
    fn from(d: &DayFigures) -> Self {
        PerDay {
            bytes: d.bytes,
            billed_bytes: d.billed_bytes,
            radio_on_s: round(d.radio_on_s, 1e3),
            charge_mah: round(d.charge_mah, 1e6),
            energy_j: round(d.energy_j, 1e3),
            wakeups: round(d.wakeups, 1e3),
            no_radio_figures: d.no_radio_figures,
        }
    }
}

impl PerDay {
    /// The day's charge, when it is a figure.
    pub fn charge(&self) -> Option<f64> {
        (!self.no_radio_figures).then_some(self.charge_mah)
    }
}

fn round(x: f64, f: f64) -> f64 {
    (x * f).round() / f
}

/// The capture as it is.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Baseline {
    /// Application messages (exchanges) the figures stand on.
    pub messages: u64,
    pub per_message: PerMessage,
    pub per_day: PerDay,
    /// How the day was projected (the radio model's basis, or `span`
    /// without one).
    pub basis: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub battery_life_days: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<CostReport>,
}

/// The same messages carried by one stack.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Scenario {
    pub stack: String,
    pub description: String,
    pub per_message: PerMessage,
    pub per_day: PerDay,
    /// Scenario per-day bytes over the baseline's (1.0: the same).
    pub bytes_vs_baseline: f64,
    /// Scenario per-day charge over the baseline's; None (null) when
    /// either day has no radio figures.
    pub charge_vs_baseline: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub battery_life_days: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<CostReport>,
    /// Every constant the stack used, with its source.
    pub assumptions: Vec<String>,
}

/// `wiretax whatif`'s report (docs/REPORT.md, "whatif").
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct WhatifReport {
    pub schema: String,
    pub input: String,
    /// The radio profile the days ran on (empty without one).
    pub radio: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_s: Option<f64>,
    pub baseline: Baseline,
    pub scenarios: Vec<Scenario>,
    /// What holds for every scenario (a missing key log, devices past the cap).
    pub notes: Vec<String>,
}

pub const SCHEMA: &str = "wiretax-whatif/1";

/// The capture whose frame sequence a stack's messages follow.
fn pattern(stack: Stack) -> &'static str {
    match stack {
        Stack::HttpNew => "captures/http-poll-close.pcap",
        Stack::HttpsNew => "captures/sparse-https-poll.pcap",
        Stack::HttpsResumed => "captures/https-tls12-resumed.pcap",
        Stack::HttpKeepalive | Stack::HttpsKeepalive => "captures/http-keepalive.pcap",
        Stack::Http2 => "captures/h2c-keepalive.pcap, in TLS records",
        Stack::Mqtt => "captures/sparse-mqtt-gps.pcap (QoS 2: captures/mqtt311-qos2.pcap)",
        Stack::MqttTls => "captures/mqtt-tls12.pcap",
        Stack::MqttWs => "captures/mqtt-ws.pcap",
        Stack::CoapNon => "captures/sparse-coap-non.pcap",
        Stack::CoapCon => "captures/coap-con-put.pcap",
        Stack::CoapDtls => "captures/coap-dtls.pcap",
    }
}

fn description(stack: Stack, req: &Request) -> String {
    let tls = if req.tls13 { "TLS 1.3" } else { "TLS 1.2" };
    match stack {
        Stack::HttpNew => "HTTP/1.1, a new TCP connection per message".into(),
        Stack::HttpsNew => format!("HTTPS, a new TCP connection and a full {tls} handshake per message"),
        Stack::HttpsResumed => format!("HTTPS, a new TCP connection per message, {tls} resumed after the first"),
        Stack::HttpKeepalive => "HTTP/1.1 on one kept-alive TCP connection".into(),
        Stack::HttpsKeepalive => format!("HTTPS ({tls}) on one kept-alive connection"),
        Stack::Http2 => format!("HTTP/2 over {tls} on one connection"),
        Stack::Mqtt => format!("MQTT 3.1.1 on one TCP connection, QoS {}, keep-alive {} s", req.qos, req.keepalive_s),
        Stack::MqttTls => {
            format!("MQTT 3.1.1 over {tls} on one connection, QoS {}, keep-alive {} s", req.qos, req.keepalive_s)
        }
        Stack::MqttWs => {
            format!("MQTT 3.1.1 over WebSocket on one connection, QoS {}, keep-alive {} s", req.qos, req.keepalive_s)
        }
        Stack::CoapNon => "CoAP non-confirmable over UDP".into(),
        Stack::CoapCon => "CoAP confirmable over UDP, answers piggybacked on the ACK".into(),
        Stack::CoapDtls => format!(
            "CoAP confirmable over DTLS 1.2 ({}), one session",
            if req.dtls_certificate { "certificates" } else { "pre-shared key" }
        ),
    }
}

/// What the whatif report needs of the analysis.
pub struct Inputs<'a> {
    pub input: &'a str,
    pub devices: Vec<&'a Device>,
    /// Devices seen beyond those kept.
    pub devices_saturated: bool,
    /// Messages of kind TLS: encrypted, their sizes as encrypted.
    pub encrypted_messages: u64,
    pub seen: Seen,
    pub radio: Option<&'a Radio>,
    /// The capture's own projected day (the radio model's), if any.
    pub measured: Option<&'a crate::radio::sim::PerDay>,
    pub cost: &'a CostOptions,
}

fn battery_days(radio: Option<&Radio>, charge_mah: f64) -> Option<f64> {
    let (_, opts) = radio?;
    let mah = opts.battery_mah?;
    let day = charge_mah + opts.sleep_current_ua.max(0.0) * 24.0 / 1000.0;
    (day > 0.0).then(|| round(mah / day, 1e3))
}

fn fleet(cost: &CostOptions, d: &PerDay) -> Option<CostReport> {
    let billed = if cost.bill_link { d.bytes } else { d.billed_bytes };
    (cost.price_per_mb.is_some() || cost.devices_given).then(|| crate::radio::cost(billed as f64, cost))
}

/// Runs every asked stack over the devices' messages.
pub fn report(req: &Request, inp: &Inputs) -> WhatifReport {
    let w = Wire::new(&inp.seen);
    let per_device: Vec<Vec<AppMessage>> = inp
        .devices
        .iter()
        .map(|d| {
            let m = messages(d);
            match req.interval_s {
                Some(i) => retime(&m, i),
                None => m,
            }
        })
        .filter(|m| !m.is_empty())
        .collect();
    let n_messages: u64 = per_device.iter().map(|m| m.len() as u64).sum();
    let mut notes = Vec::new();
    if inp.measured.is_none() && req.interval_s.is_some() {
        notes.push("no radio model: the baseline's day is its bytes at the capture's rate, not re-timed".into());
    }
    if n_messages == 0 {
        notes.push("no application messages (exchanges) in the capture: nothing to carry".into());
    }
    if inp.encrypted_messages > 0 {
        notes.push(format!(
            "no key log for {} encrypted messages: their sizes are the TLS records' contents as encrypted (application headers included); give --keylog for the true payloads",
            inp.encrypted_messages
        ));
    }
    if inp.devices_saturated {
        notes.push(format!(
            "only the first {} devices are re-simulated: the per-day figures are theirs",
            crate::findings::stream::MAX_DEVICES
        ));
    }
    notes.push(
        "messages: each exchange's payload up and down at its start; an answer smaller than its request acknowledges an upload, and MQTT and CoAP carry it as their own acknowledgement".into(),
    );
    if let Some(i) = req.interval_s {
        notes.push(format!(
            "messages re-timed: a cycle every {i} s (messages nearer than half the typical gap are one cycle)"
        ));
    }
    let measured_wire = inp.seen.wire_bytes;
    let baseline_day = match inp.measured {
        Some(p) => PerDay {
            bytes: p.bytes,
            billed_bytes: p.billed_bytes,
            radio_on_s: round(p.radio_on_s, 1e3),
            charge_mah: round(p.charge_mah, 1e6),
            energy_j: round(p.energy_j, 1e3),
            wakeups: round(p.wakeups, 1e3),
            no_radio_figures: !p.projected,
        },
        None => {
            let f = if inp.seen.duration_s > 0.0 { 86_400.0 / inp.seen.duration_s } else { 1.0 };
            let billed = measured_wire.saturating_sub(inp.seen.link_bytes);
            PerDay {
                bytes: (measured_wire as f64 * f).round() as u64,
                billed_bytes: (billed as f64 * f).round() as u64,
                no_radio_figures: true,
                ..Default::default()
            }
        }
    };
    let baseline = Baseline {
        messages: n_messages,
        per_message: PerMessage {
            wire_bytes: round(measured_wire as f64 / n_messages.max(1) as f64, 1e3),
            billed_bytes: round(
                measured_wire.saturating_sub(inp.seen.link_bytes) as f64 / n_messages.max(1) as f64,
                1e3,
            ),
            frames: round(inp.seen.frames as f64 / n_messages.max(1) as f64, 1e3),
        },
        basis: inp.measured.map_or_else(|| "span".to_string(), |p| p.basis.clone()),
        battery_life_days: baseline_day.charge().and_then(|c| battery_days(inp.radio, c)),
        fleet: fleet(inp.cost, &baseline_day),
        per_day: baseline_day,
    };
    // The messages are re-timed already: the radio model must not re-time
    // the bursts again (a ping would become a cycle of its own).
    let radio: Option<Radio> =
        inp.radio.map(|(p, o)| (p.clone(), crate::radio::RadioOptions { interval_s: None, ..o.clone() }));
    let mut scenarios = Vec::new();
    for &stack in &req.stacks {
        let mut day = DayFigures::default();
        let (mut bytes, mut link, mut frames) = (0u64, 0u64, 0u64);
        let mut used = BTreeMap::new();
        let mut by_cycles = false;
        for msgs in &per_device {
            let udp = matches!(stack, Stack::CoapNon | Stack::CoapCon | Stack::CoapDtls);
            let mut s = Synth::new(&w, udp);
            synthesize(stack, msgs, req, &mut s);
            s.frames.sort_unstable();
            bytes += s.frames.iter().map(|f| u64::from(f.len)).sum::<u64>();
            frames += s.frames.len() as u64;
            link += s.link_bytes;
            let link_per_frame = s.link_bytes as f64 / s.frames.len().max(1) as f64;
            let pinged = pings_within_cycle(stack, msgs, req);
            match pinged {
                Some(period) => {
                    day.add(&by_added_cycles(msgs, period, radio.as_ref(), link_per_frame, |m| {
                        let mut s2 = Synth::new(&w, udp);
                        synthesize(stack, m, req, &mut s2);
                        s2.frames.sort_unstable();
                        s2.frames
                    }));
                    by_cycles = true;
                }
                None => day.add(&super::per_day(&s.frames, radio.as_ref(), link_per_frame)),
            }
            used.append(&mut s.used);
        }
        let n = n_messages.max(1) as f64;
        let mut assumptions: Vec<String> = used
            .keys()
            .filter_map(|name| {
                let unit = if name.ends_with("timeout") { "s" } else { "B" };
                w.k.get(name).map(|k| format!("{name}: {} {unit} ({})", round(k.v, 10.0), k.src))
            })
            .collect();
        if matches!(stack, Stack::Mqtt | Stack::MqttTls | Stack::MqttWs) {
            assumptions.push(format!(
                "PINGREQ once every {} s in which the client sent nothing, as mosquitto does",
                req.keepalive_s
            ));
        }
        assumptions.push(format!(
            "frames of one burst {} ms apart (time within a burst is not modelled)",
            STEP_NS as f64 / 1e6
        ));
        assumptions.push(format!(
            "frames (segments, pure ACKs, handshakes, teardown) in the order {} shows them; no loss, no retransmission",
            pattern(stack)
        ));
        if by_cycles {
            assumptions.push(format!(
                "keep-alive pings between the messages make a cycle of unequal bursts: the day is the difference of two re-simulations, with and without {ADDED_CYCLES} more message cycles, over those cycles"
            ));
        }
        let per_day = PerDay::from(&day);
        let ratio = |a: f64, b: f64| if b > 0.0 { round(a / b, 1e4) } else { 0.0 };
        scenarios.push(Scenario {
            stack: stack.name().into(),
            description: description(stack, req),
            per_message: PerMessage {
                wire_bytes: round(bytes as f64 / n, 1e3),
                billed_bytes: round(bytes.saturating_sub(link) as f64 / n, 1e3),
                frames: round(frames as f64 / n, 1e3),
            },
            bytes_vs_baseline: ratio(per_day.bytes as f64, baseline.per_day.bytes as f64),
            charge_vs_baseline: per_day
                .charge()
                .zip(baseline.per_day.charge())
                .map(|(scenario, captured)| ratio(scenario, captured)),
            battery_life_days: per_day.charge().and_then(|c| battery_days(inp.radio, c)),
            fleet: fleet(inp.cost, &per_day),
            per_day,
            assumptions,
        });
    }
    WhatifReport {
        schema: SCHEMA.into(),
        input: inp.input.to_string(),
        radio: inp.radio.map(|(p, _)| p.name.clone()).unwrap_or_default(),
        interval_s: req.interval_s,
        baseline,
        scenarios,
        notes,
    }
}

/// Counts a device's messages that were encrypted (TLS without a key).
pub fn encrypted(d: &Device) -> u64 {
    d.messages.sorted().iter().filter(|m| m.kind == Proto::Tls).count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stacks_parse_by_name() {
        for s in Stack::ALL {
            assert_eq!(Stack::parse(s.name()), Ok(*s));
        }
        assert!(Stack::parse("carrier-pigeon").is_err());
    }

    #[test]
    fn publish_size_as_captured() {
        // captures/sparse-mqtt-gps.pcap: 85 B reading, 18 B topic, QoS 1: 109 B.
        assert_eq!(mqtt_publish(18, 1, 85), 109);
        assert_eq!(mqtt_publish(18, 0, 200), 1 + 2 + 2 + 18 + 200);
    }

    #[test]
    fn retime_keeps_cycles_and_moves_them() {
        let m = |t: f64| AppMessage { t_ns: (t * 1e9) as i64, up: 1, down: 0 };
        let msgs = vec![m(0.0), m(0.01), m(20.0), m(20.01), m(40.0), m(40.01)];
        let r = retime(&msgs, 30.0);
        let ts: Vec<i64> = r.iter().map(|x| x.t_ns / 10_000_000).collect();
        assert_eq!(ts, vec![0, 1, 3000, 3001, 6000, 6001]);
    }

    #[test]
    fn https_new_reproduces_the_captured_connection() {
        // One reading over a new connection and a full TLS 1.2 handshake:
        // 3,089 B on captures/sparse-https-poll.pcap.
        let w = Wire::new(&Seen::default());
        let mut s = Synth::new(&w, false);
        let req = Request::default();
        synthesize(Stack::HttpsNew, &[AppMessage { t_ns: 0, up: 85, down: 11 }], &req, &mut s);
        assert_eq!(s.frames.iter().map(|f| u64::from(f.len)).sum::<u64>(), 3089);
        assert_eq!(s.frames.len(), 15);
    }
}

#[cfg(test)]
mod day_tests {
    use super::*;

    /// On a timeline of equal cycles, the day by added cycles is the radio
    /// model's own steady-cycle day.
    #[test]
    fn added_cycles_agree_with_the_steady_cycle() -> Result<(), String> {
        for name in ["lte", "nbiot"] {
            for period in [20.0, 90.0, 600.0] {
                let profile = crate::radio::Profile::builtin(name).ok_or("no profile")?;
                let radio: Radio = (profile, crate::radio::RadioOptions::default());
                let w = Wire::new(&Seen::default());
                let msgs: Vec<AppMessage> =
                    (0..8).map(|i| AppMessage { t_ns: (i as f64 * period * 1e9) as i64, up: 85, down: 0 }).collect();
                let lay_out = |m: &[AppMessage]| {
                    let mut s = Synth::new(&w, true);
                    synthesize(Stack::CoapNon, m, &Request::default(), &mut s);
                    s.frames.sort_unstable();
                    s.frames
                };
                let frames = lay_out(&msgs);
                let steady = super::super::per_day(&frames, Some(&radio), 14.0);
                let added = by_added_cycles(&msgs, period, Some(&radio), 14.0, lay_out);
                assert_eq!(steady.bytes, added.bytes);
                assert!((steady.charge_mah - added.charge_mah).abs() <= 0.02 * steady.charge_mah, "{name} {period}");
                assert!((steady.radio_on_s - added.radio_on_s).abs() <= 0.02 * steady.radio_on_s.max(1.0));
            }
        }
        Ok(())
    }
}
