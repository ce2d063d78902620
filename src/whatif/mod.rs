//! The counterfactual engine: the same application messages (their sizes,
//! directions and times, per device) carried by a changed practice, as a
//! synthesized frame timeline run through the same radio model and the same
//! per-day projection as a capture.
//!
//! A device's timeline is its connections (opened, set up, torn down) and
//! its messages (exchanges: bytes and frames each way, start and end). The
//! baseline is that timeline synthesized as captured; a counterfactual
//! changes it (`Change`) and is synthesized the same way, so a saving is
//! the difference of two re-simulations, never bytes turned into charge pro
//! rata. Constants come from the capture where it shows them, else from the
//! defaults below, each named with its source (`Constants::assumptions`).

pub mod http;
pub mod stacks;

use crate::findings::stream::{Connection, Device, Message};
use crate::radio::{Profile, RadioOptions, RadioSim, Tick};
use crate::vocab::{L4, Proto};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// One synthesized frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Frame {
    pub t_ns: i64,
    pub uplink: bool,
    pub len: u32,
}

/// What a day of a timeline costs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DayFigures {
    pub bytes: u64,
    /// Without link-layer headers: what an operator bills.
    pub billed_bytes: u64,
    pub radio_on_s: f64,
    pub charge_mah: f64,
    pub energy_j: f64,
    pub wakeups: f64,
    /// The radio figures above are not figures (left at 0): there was no
    /// radio model, or a timeline had no steady cycle to project (its day
    /// is then its bytes at its own rate). A sum or difference with such a
    /// day has none either: a zero taken for a figure would price the other
    /// side whole.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_radio_figures: bool,
}

impl DayFigures {
    pub fn minus(&self, o: &DayFigures) -> DayFigures {
        DayFigures {
            bytes: self.bytes.saturating_sub(o.bytes),
            billed_bytes: self.billed_bytes.saturating_sub(o.billed_bytes),
            radio_on_s: self.radio_on_s - o.radio_on_s,
            charge_mah: self.charge_mah - o.charge_mah,
            energy_j: self.energy_j - o.energy_j,
            wakeups: self.wakeups - o.wakeups,
            no_radio_figures: self.no_radio_figures || o.no_radio_figures,
        }
        .radio_checked()
    }
    pub fn add(&mut self, o: &DayFigures) {
        self.bytes += o.bytes;
        self.billed_bytes += o.billed_bytes;
        self.radio_on_s += o.radio_on_s;
        self.charge_mah += o.charge_mah;
        self.energy_j += o.energy_j;
        self.wakeups += o.wakeups;
        self.no_radio_figures |= o.no_radio_figures;
        *self = self.radio_checked();
    }
    pub fn scaled(&self, f: f64) -> DayFigures {
        DayFigures {
            bytes: (self.bytes as f64 * f).round() as u64,
            billed_bytes: (self.billed_bytes as f64 * f).round() as u64,
            radio_on_s: self.radio_on_s * f,
            charge_mah: self.charge_mah * f,
            energy_j: self.energy_j * f,
            wakeups: self.wakeups * f,
            no_radio_figures: self.no_radio_figures,
        }
    }
    /// Without radio figures, the radio fields at 0 (never a part sum).
    fn radio_checked(self) -> DayFigures {
        if self.no_radio_figures {
            DayFigures { radio_on_s: 0.0, charge_mah: 0.0, energy_j: 0.0, wakeups: 0.0, ..self }
        } else {
            self
        }
    }
    /// The radio charge, when there is a figure.
    pub fn charge(&self) -> Option<f64> {
        (!self.no_radio_figures).then_some(self.charge_mah)
    }
    /// The radio-on time, when there is a figure.
    pub fn radio_on(&self) -> Option<f64> {
        (!self.no_radio_figures).then_some(self.radio_on_s)
    }
}

/// The radio a timeline runs through: the analysis's profile and options.
pub type Radio = (Profile, RadioOptions);

/// A day of `frames` (in time order): the radio model run over them and
/// projected to a day. The one place a synthesized timeline becomes
/// per-day figures: the projection of a capture (the radio model's own)
/// is used, so a counterfactual is projected exactly as its baseline.
pub fn per_day(frames: &[Frame], radio: Option<&Radio>, link_per_frame: f64) -> DayFigures {
    per_day_over(frames, 0.0, radio, link_per_frame)
}

/// What `frames` cost as they are, not projected to a day: for a one-off
/// event, priced per event.
pub fn totals(frames: &[Frame], radio: Option<&Radio>, link_per_frame: f64) -> DayFigures {
    let bytes: u64 = frames.iter().map(|f| u64::from(f.len)).sum();
    let link = (link_per_frame * frames.len() as f64).min(bytes as f64);
    let billed_bytes = (bytes as f64 - link).round() as u64;
    let Some(radio) = radio else {
        return DayFigures { bytes, billed_bytes, no_radio_figures: true, ..Default::default() };
    };
    if frames.is_empty() {
        return DayFigures::default();
    }
    let r = simulate(frames, radio, span_of(frames));
    DayFigures {
        bytes,
        billed_bytes,
        radio_on_s: r.radio_on_s,
        charge_mah: r.charge_mah,
        energy_j: r.energy_j,
        wakeups: r.wakeups as f64,
        no_radio_figures: false,
    }
}

/// Runs `changes` on device `d` as a one-off event: the timelines' own
/// totals, not projected to a day.
pub fn run_event(d: &Device, changes: &[Change], k: &Constants, radio: Option<&Radio>) -> Outcome {
    let b = synthesize(d, &[], k);
    let cf = synthesize(d, changes, k);
    Outcome { baseline: totals(&b, radio, k.link_per_frame), counterfactual: totals(&cf, radio, k.link_per_frame) }
}

/// The radio model run over `frames` (in time order), finished over `span_s`.
/// Billed bytes are not its business: callers work them out from the
/// frames' link share, so every frame goes in without a link length.
fn simulate(frames: &[Frame], (profile, opts): &Radio, span_s: f64) -> crate::radio::RadioReport {
    let mut sim = RadioSim::new(profile.clone(), opts.clone());
    for f in frames {
        sim.tick(&Tick {
            ts_ns: f.t_ns,
            wire_len: f.len,
            uplink: f.uplink,
            flow: Tick::NO_FLOW,
            exchange: None,
            link_len: 0,
        });
    }
    sim.finish(span_s)
}

/// When connection `c` to `server` was busy: its opening and closing, and
/// its messages' starts and ends, in time order; the gaps between are its
/// silences.
pub fn busy_marks(msgs: &[Message], server: SocketAddr, c: &Connection) -> Vec<i64> {
    let mut busy: Vec<i64> = msgs
        .iter()
        .filter(|m| m.server == server && m.start_ns >= c.start_ns && m.start_ns <= c.end_ns)
        .flat_map(|m| [m.start_ns, m.end_ns.max(m.start_ns)])
        .collect();
    busy.push(c.start_ns);
    busy.push(c.end_ns);
    busy.sort_unstable();
    busy
}

/// The time `frames` span, seconds.
fn span_of(frames: &[Frame]) -> f64 {
    match (frames.first(), frames.last()) {
        (Some(a), Some(b)) => b.t_ns.saturating_sub(a.t_ns) as f64 / 1e9,
        _ => 0.0,
    }
}

/// `per_day` over at least `min_span_s`: a counterfactual that removes the
/// last frames of its baseline still covers the baseline's time, not the
/// shorter span its own frames leave.
pub fn per_day_over(frames: &[Frame], min_span_s: f64, radio: Option<&Radio>, link_per_frame: f64) -> DayFigures {
    if frames.is_empty() {
        return DayFigures::default();
    }
    let span_s = span_of(frames).max(min_span_s);
    let bytes: u64 = frames.iter().map(|f| u64::from(f.len)).sum();
    let link = (link_per_frame * frames.len() as f64).min(bytes as f64);
    let billed_share = if bytes > 0 { 1.0 - link / bytes as f64 } else { 1.0 };
    match radio {
        Some(radio) => {
            let r = simulate(frames, radio, span_s);
            if !r.per_day.projected {
                // No steady cycle to project: the bytes at the timeline's
                // rate, and no radio figures (as the capture's own day).
                let day_bytes = if span_s > 0.0 { bytes as f64 * 86_400.0 / span_s } else { r.per_day.bytes as f64 };
                return DayFigures {
                    bytes: day_bytes.round() as u64,
                    billed_bytes: (day_bytes * billed_share).round() as u64,
                    no_radio_figures: true,
                    ..Default::default()
                };
            }
            DayFigures {
                bytes: r.per_day.bytes,
                billed_bytes: (r.per_day.bytes as f64 * billed_share).round() as u64,
                radio_on_s: r.per_day.radio_on_s,
                charge_mah: r.per_day.charge_mah,
                energy_j: r.per_day.energy_j,
                wakeups: r.per_day.wakeups,
                no_radio_figures: false,
            }
        }
        None => {
            let f = if span_s > 0.0 { 86_400.0 / span_s } else { 1.0 };
            DayFigures {
                bytes: (bytes as f64 * f).round() as u64,
                billed_bytes: (bytes as f64 * f * billed_share).round() as u64,
                no_radio_figures: true,
                ..Default::default()
            }
        }
    }
}

/// Sizes the capture showed, or stated defaults.
#[derive(Clone, Debug)]
pub struct Constants {
    /// Link, network and transport headers of one frame (bytes).
    pub lower_per_frame: f64,
    /// Link-layer bytes of one frame (not billed).
    pub link_per_frame: f64,
    /// Handshake bytes (TLS records) of a resumed handshake.
    pub resumed_handshake_bytes: u64,
    /// MQTT keep-alive the client asked for (s).
    pub mqtt_keepalive_s: f64,
    pub assumptions: Vec<String>,
}

/// Handshake record bytes of a resumed TLS 1.2 handshake (session ticket):
/// measured on `captures/https-tls12-resumed.pcap` (OpenSSL).
pub const RESUMED_TLS12_BYTES: u64 = 410;
/// The same for TLS 1.3 (PSK with a NewSessionTicket in return): measured on
/// `captures/https-tls13-resumed.pcap`.
pub const RESUMED_TLS13_BYTES: u64 = 1142;
/// MQTT keep-alive when the capture shows no CONNECT: what paho and
/// mosquitto clients default to.
pub const DEFAULT_MQTT_KEEPALIVE_S: f64 = 60.0;
/// Ethernet II, IPv4 and TCP with timestamps, when the capture shows no frame.
pub const DEFAULT_LOWER_PER_FRAME: f64 = 14.0 + 20.0 + 32.0;

/// What a notification carries more than a piggybacked response to the
/// same GET: its Observe option (RFC 7641 section 2), 1 B as measured on
/// `captures/coap-observe.pcap` against `captures/coap-con-get.pcap`.
pub const COAP_OBSERVE_OPTION_BYTES: u64 = 1;

/// A changed practice, applied to one device's timeline.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// One connection kept open to `server` instead of one per exchange:
    /// the first connection's setup and the last one's teardown remain; MQTT
    /// adds the pings its keep-alive needs.
    KeepAlive { server: SocketAddr },
    /// Every connection to `server` after the first resumes its TLS session.
    Resume { server: SocketAddr },
    /// The server pushes what the client polled for: the request leg of each
    /// exchange of `resource` goes (an acknowledgement remains where the
    /// push is confirmable), and one connection carries them.
    Push { server: SocketAddr, resource: u64, kind: Proto, acknowledged: bool },
    /// The device's long-lived connections to `server` send a heartbeat
    /// (MQTT PINGREQ and PINGRESP) after every `period_s` of silence (0:
    /// none); a middlebox forgets a connection silent for longer than
    /// `drop_after_s` (0: never), and the device then connects again. The
    /// heartbeats the capture holds stay where the connection opened: apply
    /// this to both timelines compared (`run_between`).
    Heartbeat { server: SocketAddr, period_s: f64, drop_after_s: f64 },
    /// The device stops at the first error from `server` (nothing listens
    /// there): the first attempt (its first frame) and the first error in
    /// answer remain; the repeats, later attempts and their errors go.
    StopAtError { server: SocketAddr },
    /// The device's QoS 2 PUBLISHes to `server` are sent with QoS 1: the
    /// PUBREL and PUBCOMP legs (and the TCP ACK after PUBREL) go, PUBREC
    /// becomes PUBACK (the same 4 bytes).
    Qos1 { server: SocketAddr },
    /// The device's confirmable CoAP uploads (PUT, POST) to `server` go
    /// non-confirmable with No-Response (RFC 7967): the answer goes, the
    /// request gains the option.
    NoResponse { server: SocketAddr },
    /// The device caches DNS answers for `ttl_s`: a lookup within that
    /// long of the last one made goes.
    CacheDns { ttl_s: f64 },
    /// Nothing is sent twice on the device's connections to `server`: each
    /// connection's retransmitted bytes and frames leave its messages in
    /// proportion to their bytes (what they cannot hold leaves its setup).
    Lossless { server: SocketAddr },
    /// The device's `kind` exchanges with `server` (but those of the
    /// resources `except`) carry `header_bytes` of application headers each,
    /// as a compact protocol's: the rest of their headers go, frames stay.
    CompactHeaders { server: SocketAddr, kind: Proto, except: Vec<u64>, header_bytes: u64 },
    /// A changed HTTP practice (`http::HttpChange`).
    Http(http::HttpChange),
}

/// A CoAP No-Response option (number 258, one byte of value) after the
/// request's other options: a header byte, an extended delta byte, the value.
pub const COAP_NO_RESPONSE_OPTION_BYTES: u64 = 3;
/// MQTT PUBREL and PUBCOMP: a fixed header and a packet id, 4 bytes each.
pub const MQTT_ACK_PACKET_BYTES: u64 = 4;

/// Most frames one `emit` makes: a message of more than 1.5 MB goes in
/// larger frames. The radio model charges a frame by its bytes, so the
/// day's figures barely move, while a message that claims gigabytes (a TCP
/// gap in a hostile capture is booked as inferred bytes) stays a few
/// thousand frames, not millions to sort and simulate (found by fuzzing).
const MAX_EMIT_FRAMES: u64 = 1024;

/// Frames of `bytes` sent one way, split into frames of at most 1,514 bytes
/// (`frames` at least, `MAX_EMIT_FRAMES` at most), starting at `t_ns`.
fn emit(out: &mut Vec<Frame>, t_ns: i64, uplink: bool, bytes: u64, frames: u32) {
    if bytes == 0 {
        return;
    }
    let n = u64::from(frames.max(1)).max(bytes.div_ceil(1514)).min(MAX_EMIT_FRAMES);
    let each = bytes / n;
    let mut left = bytes;
    for i in 0..n {
        let len = if i + 1 == n { left } else { each };
        left -= len;
        out.push(Frame {
            t_ns: t_ns.saturating_add((i as i64).saturating_mul(100_000)),
            uplink,
            len: u32::try_from(len).unwrap_or(u32::MAX),
        });
    }
}

/// A connection's bytes on its own: opened (handshakes) and closed.
#[derive(Clone, Copy, Debug)]
struct ConnShape {
    start_ns: i64,
    end_ns: i64,
    open_bytes: u64,
    close_bytes: u64,
}

fn shape(c: &Connection, k: &Constants) -> ConnShape {
    // TCP teardown: FIN, FIN and ACK frames with nothing but headers.
    let close = if c.l4 == L4::Tcp && c.syn { (3.0 * k.lower_per_frame) as u64 } else { 0 };
    let close = close.min(c.setup_bytes);
    ConnShape { start_ns: c.start_ns, end_ns: c.end_ns, open_bytes: c.setup_bytes - close, close_bytes: close }
}

/// The frames of a device's timeline after `changes`.
pub fn synthesize(d: &Device, changes: &[Change], k: &Constants) -> Vec<Frame> {
    let conns = d.connections.sorted();
    let mut msgs = d.messages.sorted();
    let mut shapes: Vec<(Connection, ConnShape)> = conns.iter().map(|c| (*c, shape(c, k))).collect();
    let mut kept: Vec<SocketAddr> = Vec::new();
    let mut lookups = d.lookups.sorted();
    for ch in changes {
        match *ch {
            // Once a server: several findings (keep-alive, push) may each ask for it.
            Change::KeepAlive { server } if !kept.contains(&server) => {
                kept.push(server);
                keep_alive(&mut shapes, &mut msgs, server, k)
            }
            Change::KeepAlive { .. } => {}
            Change::Resume { server } => {
                let mut first = true;
                for (c, s) in shapes.iter_mut().filter(|(c, _)| c.server == server && c.tls_handshake > 0) {
                    if !first {
                        let less = c.tls_handshake.saturating_sub(k.resumed_handshake_bytes);
                        s.open_bytes = s.open_bytes.saturating_sub(less);
                    }
                    first = false;
                }
            }
            Change::Push { server, resource, kind, acknowledged } => {
                let ack = (k.lower_per_frame + if kind == Proto::Coap { 4.0 } else { 0.0 }) as u64;
                let mut registered = false;
                for m in msgs.iter_mut().filter(|m| m.server == server && m.resource == resource && m.kind == kind) {
                    if !registered {
                        // The first request stays: it registers (or subscribes).
                        registered = true;
                        continue;
                    }
                    // The answer comes unasked; what goes up is its acknowledgement.
                    m.up = if acknowledged { ack } else { 0 };
                    m.frames_up = u32::from(acknowledged);
                    if kind == Proto::Coap {
                        m.down += COAP_OBSERVE_OPTION_BYTES;
                    }
                }
                if kind != Proto::Coap && !kept.contains(&server) {
                    kept.push(server);
                    keep_alive(&mut shapes, &mut msgs, server, k);
                }
            }
            Change::Http(ref h) => http::apply(h, &mut shapes, &mut msgs, k),
            Change::Heartbeat { server, period_s, drop_after_s } => {
                heartbeat(&mut shapes, &msgs, server, period_s, drop_after_s, k)
            }
            Change::StopAtError { server } => {
                let (mut request, mut error) = (false, false);
                msgs.retain_mut(|m| {
                    if m.server != server {
                        return true;
                    }
                    // Errors in answer (ICMP) are the messages of no protocol.
                    let seen = if m.kind == Proto::Unknown { &mut error } else { &mut request };
                    if *seen {
                        return false;
                    }
                    *seen = true;
                    if m.kind != Proto::Unknown && m.frames_up > 1 {
                        m.up /= u64::from(m.frames_up);
                        m.frames_up = 1;
                    }
                    true
                });
                let mut first = true;
                shapes.retain(|(c, _)| c.server != server || std::mem::take(&mut first));
            }
            Change::Qos1 { server } => {
                let lower = k.lower_per_frame as u64;
                for m in
                    msgs.iter_mut().filter(|m| m.server == server && m.kind == Proto::Mqtt && m.qos == 2 && m.up > 0)
                {
                    // PUBREL, and the ACK of PUBCOMP when the exchange shows one.
                    let (frames, bytes) = if m.frames_up >= 4 { (2, 2 * lower) } else { (1, lower) };
                    if m.frames_up > frames {
                        m.frames_up -= frames;
                        m.up = m.up.saturating_sub(bytes + MQTT_ACK_PACKET_BYTES);
                    }
                    if m.frames_down >= 2 {
                        m.frames_down -= 1;
                        m.down = m.down.saturating_sub(lower + MQTT_ACK_PACKET_BYTES);
                    }
                }
            }
            Change::CacheDns { ttl_s } => {
                let ttl = (ttl_s * 1e9) as i64;
                // A resolution's queries (A and AAAA) come together: those
                // within 100 ms of the one that began it stay with it.
                let mut last: Option<i64> = None;
                lookups.retain(|l| {
                    let cached = last.is_some_and(|t| {
                        l.start_ns.saturating_sub(t) >= 100_000_000 && l.start_ns.saturating_sub(t) < ttl
                    });
                    if last.is_none_or(|t| l.start_ns.saturating_sub(t) >= ttl) {
                        last = Some(l.start_ns);
                    }
                    !cached
                });
            }
            Change::Lossless { server } => {
                for (c, s) in shapes.iter_mut().filter(|(c, _)| c.server == server && c.retrans_bytes > 0) {
                    // The ledger books a repeat's payload as retransmission
                    // and its frame's headers as link, network, transport.
                    let repeated = c.retrans_bytes + (c.retrans_frames as f64 * k.lower_per_frame) as u64;
                    let inside = |m: &Message| m.server == server && m.start_ns >= c.start_ns && m.start_ns <= c.end_ns;
                    let total: u64 = msgs.iter().filter(|m| inside(m)).map(|m| m.up + m.down).sum();
                    let frames: u64 =
                        msgs.iter().filter(|m| inside(m)).map(|m| u64::from(m.frames_up + m.frames_down)).sum();
                    let (mut bytes_left, mut frames_left) = (repeated.min(total), c.retrans_frames.min(frames));
                    let (mut bytes_seen, mut frames_seen) = (0u64, 0u64);
                    let (bytes_all, frames_all) = (bytes_left, frames_left);
                    for m in msgs.iter_mut().filter(|m| inside(m)) {
                        // Shares by running totals: the cuts add up exactly.
                        let before = (bytes_seen, frames_seen);
                        bytes_seen += m.up + m.down;
                        frames_seen += u64::from(m.frames_up + m.frames_down);
                        let cut =
                            (bytes_all * bytes_seen / total.max(1)).saturating_sub(bytes_all * before.0 / total.max(1));
                        let cut_frames = (frames_all * frames_seen / frames.max(1))
                            .saturating_sub(frames_all * before.1 / frames.max(1));
                        let cut = cut.min(bytes_left);
                        bytes_left -= cut;
                        frames_left = frames_left.saturating_sub(cut_frames);
                        let up_cut = (cut * m.up).checked_div(m.up + m.down).unwrap_or(0);
                        m.up -= up_cut.min(m.up);
                        m.down = m.down.saturating_sub(cut - up_cut.min(cut));
                        let mut fc = u32::try_from(cut_frames).unwrap_or(u32::MAX);
                        // Each side keeps a frame while it keeps bytes.
                        let spare_up = m.frames_up.saturating_sub(u32::from(m.up > 0));
                        let take_up = fc.min(spare_up);
                        m.frames_up -= take_up;
                        fc -= take_up;
                        let spare_down = m.frames_down.saturating_sub(u32::from(m.down > 0));
                        m.frames_down -= fc.min(spare_down);
                    }
                    s.open_bytes = s.open_bytes.saturating_sub(repeated - (bytes_all - bytes_left));
                }
            }
            Change::CompactHeaders { server, kind, ref except, header_bytes } => {
                for m in
                    msgs.iter_mut().filter(|m| m.server == server && m.kind == kind && !except.contains(&m.resource))
                {
                    let cut = m.header.saturating_sub(header_bytes);
                    let both = m.up + m.down;
                    if both == 0 {
                        continue;
                    }
                    // Each way gives up its share of the headers (by its bytes).
                    let up_cut = (cut * m.up / both).min(m.up);
                    m.up -= up_cut;
                    m.down = m.down.saturating_sub(cut - up_cut);
                    m.header -= cut;
                }
            }
            Change::NoResponse { server } => {
                for m in msgs
                    .iter_mut()
                    .filter(|m| m.server == server && m.kind == Proto::Coap && m.confirmable && m.payload_up > 0)
                {
                    m.up += COAP_NO_RESPONSE_OPTION_BYTES;
                    m.down = 0;
                    m.frames_down = 0;
                }
            }
        }
    }
    let mut out = Vec::with_capacity(msgs.len() * 4 + shapes.len() * 4);
    for (c, s) in &shapes {
        // Handshakes alternate ways; bytes split evenly over the opening.
        let half = s.open_bytes / 2;
        emit(&mut out, s.start_ns, true, s.open_bytes - half, 2);
        emit(&mut out, s.start_ns.saturating_add(1_000_000), false, half, 1);
        emit(&mut out, s.end_ns, true, s.close_bytes, if c.l4 == L4::Tcp { 2 } else { 1 });
    }
    for l in &lookups {
        emit(&mut out, l.start_ns, true, l.up, 1);
        emit(&mut out, l.end_ns.max(l.start_ns.saturating_add(1_000_000)), false, l.down, 1);
    }
    for m in &msgs {
        emit(&mut out, m.start_ns, true, m.up, m.frames_up);
        emit(&mut out, m.end_ns.max(m.start_ns.saturating_add(1_000_000)), false, m.down, m.frames_down);
    }
    out.sort_unstable();
    out
}

/// Keeps one connection to `server` open: the first one's opening and the
/// last one's closing remain, and MQTT pings fill its idle keep-alive periods.
fn keep_alive(shapes: &mut Vec<(Connection, ConnShape)>, msgs: &mut [Message], server: SocketAddr, k: &Constants) {
    let to: Vec<usize> = shapes.iter().enumerate().filter(|(_, (c, _))| c.server == server).map(|(i, _)| i).collect();
    let (Some(&first), Some(&last)) = (to.first(), to.last()) else { return };
    let end = shapes.get(last).map_or(0, |(_, s)| s.end_ns);
    let close = shapes.get(last).map_or(0, |(_, s)| s.close_bytes);
    let mqtt = shapes.get(first).is_some_and(|(c, _)| c.app == Proto::Mqtt);
    for &i in &to {
        if i != first
            && let Some((_, s)) = shapes.get_mut(i)
        {
            s.open_bytes = 0;
            s.close_bytes = 0;
        }
    }
    if let Some((_, s)) = shapes.get_mut(first) {
        s.end_ns = end;
        s.close_bytes = close;
    }
    // On a fresh connection Linux acknowledges at once (quick-ACK mode), so
    // the server's ACK of a request goes in a frame of its own; on a warm one
    // the answer, sent at once, carries it: that frame goes.
    let first_start = shapes.get(first).map_or(i64::MIN, |(c, _)| c.start_ns);
    for m in msgs.iter_mut().filter(|m| m.server == server && m.first && m.start_ns > first_start) {
        if m.payload_down > 0 && m.frames_down >= 2 && m.up > 0 {
            m.down = m.down.saturating_sub(k.lower_per_frame as u64);
            m.frames_down -= 1;
        }
    }
    if mqtt && k.mqtt_keepalive_s > 0.0 {
        // PINGREQ and PINGRESP (2 bytes each, plus headers) once per keep-alive
        // period in which the client sent nothing: the periods between the
        // connection's own openings show when it sent.
        let opens: Vec<i64> = to.iter().filter_map(|&i| shapes.get(i).map(|(c, _)| c.start_ns)).collect();
        let period = (k.mqtt_keepalive_s * 1e9) as i64;
        let mut pings = Vec::new();
        for w in opens.windows(2) {
            if let [a, b] = *w {
                let mut t = a.saturating_add(period);
                while t < b {
                    pings.push(t);
                    t = t.saturating_add(period);
                }
            }
        }
        let ping = (2.0 + k.lower_per_frame) as u64;
        let Some(&(conn, _)) = shapes.get(first) else { return };
        for t in pings {
            let c = Connection { start_ns: t, end_ns: t, l4: L4::Udp, ..conn };
            let s = ConnShape { start_ns: t, end_ns: t, open_bytes: 2 * ping, close_bytes: 0 };
            shapes.push((c, s));
        }
    }
}

/// Heartbeats at `period_s` in every silence of the device's connections
/// to `server` that the timeline leaves; past `drop_after_s` of silence the
/// connection is forgotten on the path and opened again.
fn heartbeat(
    shapes: &mut Vec<(Connection, ConnShape)>,
    msgs: &[Message],
    server: SocketAddr,
    period_s: f64,
    drop_after_s: f64,
    k: &Constants,
) {
    let period = (period_s * 1e9) as i64;
    let drop_after = (drop_after_s * 1e9) as i64;
    let ping = (2.0 + k.lower_per_frame) as u64;
    let mut added = Vec::new();
    for (c, s) in shapes.iter().filter(|(c, _)| c.server == server && c.l4 == L4::Tcp && c.syn) {
        let busy = busy_marks(msgs, server, c);
        for w in busy.windows(2) {
            let [a, b] = *w else { continue };
            let mut quiet_since = a;
            loop {
                let next_ping = if period > 0 { quiet_since.saturating_add(period) } else { i64::MAX };
                if drop_after > 0
                    && b.saturating_sub(quiet_since) > drop_after
                    && next_ping.saturating_sub(quiet_since) >= drop_after
                {
                    // Forgotten before the next heartbeat: the next thing
                    // sent finds no path and the device connects again.
                    let at = next_ping.min(b);
                    let reopen = ConnShape { start_ns: at, end_ns: at, open_bytes: s.open_bytes, close_bytes: 0 };
                    added.push((Connection { start_ns: at, end_ns: at, ..*c }, reopen));
                    if at >= b {
                        break;
                    }
                    quiet_since = at;
                } else if next_ping < b && added.len() < MAX_HEARTBEATS {
                    let beat =
                        ConnShape { start_ns: next_ping, end_ns: next_ping, open_bytes: 2 * ping, close_bytes: 0 };
                    added.push((Connection { start_ns: next_ping, end_ns: next_ping, l4: L4::Udp, ..*c }, beat));
                    quiet_since = next_ping;
                } else {
                    break;
                }
            }
        }
    }
    shapes.extend(added);
}

/// Most heartbeats and reconnections a `Heartbeat` change adds: a bound on
/// memory for a very long timeline with a very short period.
const MAX_HEARTBEATS: usize = 200_000;

/// What a scenario costs against its baseline, for one or more devices.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub baseline: DayFigures,
    pub counterfactual: DayFigures,
}

impl Outcome {
    /// Baseline minus counterfactual; without radio figures when either
    /// side has none (a side's zeros are not a figure).
    pub fn saving(&self) -> DayFigures {
        self.baseline.minus(&self.counterfactual)
    }
}

/// Runs `changes` on device `d`: its baseline and counterfactual days.
pub fn run(d: &Device, changes: &[Change], k: &Constants, radio: Option<&Radio>) -> Outcome {
    run_between(d, &[], changes, k, radio)
}

/// A day of nothing but heartbeats every `period_s` (a PINGREQ up, a
/// PINGRESP 50 ms later): what an idle device's heartbeat costs. With
/// `reconnect_bytes`, each beat finds the connection forgotten on the path
/// and opens a new one (those bytes, half each way) instead.
pub fn idle_heartbeat_day(period_s: f64, reconnect_bytes: u64, k: &Constants, radio: Option<&Radio>) -> DayFigures {
    if period_s <= 0.0 {
        return DayFigures::default();
    }
    let ping = if reconnect_bytes > 0 { reconnect_bytes / 2 } else { (2.0 + k.lower_per_frame) as u64 };
    let ping = u32::try_from(ping).unwrap_or(u32::MAX);
    let period = (period_s * 1e9) as i64;
    let beats = (3600.0 / period_s).ceil().max(2.0) as i64;
    let frames: Vec<Frame> = (0..=beats)
        .flat_map(|i| {
            let t = i * period;
            [
                Frame { t_ns: t, uplink: true, len: ping },
                Frame { t_ns: t.saturating_add(50_000_000), uplink: false, len: ping },
            ]
        })
        .collect();
    per_day(&frames, radio, k.link_per_frame)
}

/// Two changed timelines of device `d` against each other: `base` as the
/// baseline (a practice the stored timeline does not place in time, such as
/// the captured heartbeat) and `changes` as the counterfactual.
pub fn run_between(d: &Device, base: &[Change], changes: &[Change], k: &Constants, radio: Option<&Radio>) -> Outcome {
    let b = synthesize(d, base, k);
    let cf = synthesize(d, changes, k);
    Outcome {
        baseline: per_day(&b, radio, k.link_per_frame),
        counterfactual: per_day_over(&cf, span_of(&b), radio, k.link_per_frame),
    }
}

/// Messages of a device, for stacks: (time, bytes up, bytes down) of the
/// application's own data.
pub fn readings(d: &Device) -> Vec<(i64, u64, u64)> {
    d.messages
        .sorted()
        .iter()
        .filter(|m| m.kind != Proto::Unknown)
        .map(|m: &Message| (m.start_ns, m.payload_up, m.payload_down))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A projected baseline against a counterfactual without a steady cycle
    /// (one burst): the saving has no radio figures, not the baseline's
    /// whole charge (what the zeros of "no figures" once made it).
    #[test]
    fn a_saving_against_a_day_without_projection_has_no_radio_figures() {
        let Some(profile) = crate::radio::Profile::builtin("lte") else { panic!("no lte profile") };
        let radio: Radio = (profile, RadioOptions::default());
        let frame = |t_s: f64| Frame { t_ns: (t_s * 1e9) as i64, uplink: true, len: 200 };
        let steady: Vec<Frame> = (0..10).map(|i| frame(f64::from(i) * 30.0)).collect();
        let base = per_day(&steady, Some(&radio), 14.0);
        assert!(base.charge().is_some_and(|c| c > 0.0), "{base:?}");
        let cf = per_day_over(&[frame(0.0)], span_of(&steady), Some(&radio), 14.0);
        assert!(cf.no_radio_figures, "{cf:?}");
        let s = Outcome { baseline: base, counterfactual: cf }.saving();
        assert_eq!((s.charge(), s.radio_on()), (None, None), "{s:?}");
        assert!(s.bytes > 0 && s.charge_mah == 0.0);
        // Added to a device's saving that has figures: the sum has none.
        let mut total = Outcome { baseline: base, counterfactual: base }.saving();
        assert_eq!(total.charge(), Some(0.0));
        total.add(&s);
        assert_eq!(total.charge(), None);
    }

    #[test]
    fn a_message_of_gigabytes_is_a_bounded_number_of_frames() {
        let mut out = Vec::new();
        emit(&mut out, i64::MAX - 10, true, 4_000_000_000, 2);
        assert_eq!(out.len() as u64, MAX_EMIT_FRAMES);
        assert_eq!(out.iter().map(|f| u64::from(f.len)).sum::<u64>(), 4_000_000_000);
        // Times saturate rather than overflow.
        assert!(out.iter().all(|f| f.t_ns >= i64::MAX - 10));
        let mut small = Vec::new();
        emit(&mut small, 0, false, 3_000, 1);
        assert_eq!(small.iter().map(|f| f.len).collect::<Vec<_>>(), [1500, 1500]);
    }
}
