//! WebSocket (RFC 6455), entered from HTTP/1.1 after a `101` upgrade.
//!
//! Frame headers (with extended length and mask key) are `app_header`, data
//! frame payloads (text, binary, continuation) `payload`, ping/pong/close
//! frames whole `app_control`. Payloads are never buffered. When the
//! connection carries MQTT (subprotocol `mqtt`, or a first binary message
//! that is an MQTT CONNECT), data payloads are unmasked and handed to an
//! inner MQTT dissector whose spans replace the payload spans; the header
//! of a frame that carried only MQTT control packets is then `app_control`
//! too, like the rest of such a frame.

use super::{Proto, Dir, PerDir, Dissector, Emit, Event, FlowCtx, HeaderBuf, MsgRef, Span};
use crate::vocab::Class;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Most payload bytes looked at to recognise an MQTT CONNECT.
const SNIFF_LEN: usize = 12;

/// The `websocket` section of the report.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Stats {
    /// Successful upgrades (counted by the HTTP dissector at the 101).
    pub connections: u64,
    /// Frames by opcode name: text, binary, continuation, close, ping, pong.
    pub frames: BTreeMap<String, u64>,
    pub masked_frames: u64,
    /// Data messages (a fragmented message counts once).
    pub messages: u64,
    pub data_payload_bytes_c2s: u64,
    pub data_payload_bytes_s2c: u64,
    /// Headers (with mask keys) of data frames.
    pub data_frame_header_bytes: u64,
    /// Whole ping, pong and close frames.
    pub control_frame_bytes: u64,
    /// HTTP upgrade request and 101 response (counted by the HTTP dissector).
    pub upgrade_bytes: u64,
    /// Headers of all frames, control frames included.
    pub header_bytes: u64,
    /// Payload of all data frames.
    pub payload_bytes: u64,
    /// Connections whose data frames carry another protocol, by name.
    pub inner: BTreeMap<String, u64>,
    pub malformed: u64,
}

impl Stats {
    pub fn merge(&mut self, o: &Stats) {
        self.connections += o.connections;
        for (k, n) in &o.frames {
            *self.frames.entry(k.clone()).or_default() += n;
        }
        for (k, n) in &o.inner {
            *self.inner.entry(k.clone()).or_default() += n;
        }
        self.masked_frames += o.masked_frames;
        self.messages += o.messages;
        self.data_payload_bytes_c2s += o.data_payload_bytes_c2s;
        self.data_payload_bytes_s2c += o.data_payload_bytes_s2c;
        self.data_frame_header_bytes += o.data_frame_header_bytes;
        self.control_frame_bytes += o.control_frame_bytes;
        self.upgrade_bytes += o.upgrade_bytes;
        self.header_bytes += o.header_bytes;
        self.payload_bytes += o.payload_bytes;
        self.malformed += o.malformed;
    }
}

/// Opcodes `start_frame` accepts, in the order of `WebSocket::frame_counts`.
const OPCODES: [u8; 6] = [0, 1, 2, 8, 9, 10];

fn opcode_name(op: u8) -> &'static str {
    match op {
        0 => "continuation",
        1 => "text",
        2 => "binary",
        8 => "close",
        9 => "ping",
        10 => "pong",
        _ => "reserved",
    }
}

/// The description of a data message's exchange.
fn message_what(opcode: u8, dir: Dir) -> String {
    // Fixed strings for what nearly every message is: no formatting.
    match (opcode, dir) {
        (1, Dir::C2S) => "text message c2s".to_owned(),
        (1, Dir::S2C) => "text message s2c".to_owned(),
        (2, Dir::C2S) => "binary message c2s".to_owned(),
        (2, Dir::S2C) => "binary message s2c".to_owned(),
        _ => {
            let arrow = if dir == Dir::C2S { "c2s" } else { "s2c" };
            format!("{} message {arrow}", opcode_name(opcode))
        }
    }
}

/// The frame whose payload is being read.
#[derive(Clone, Copy, Debug)]
struct Frame {
    opcode: u8,
    fin: bool,
    left: u64,
    key: Option<[u8; 4]>,
    /// Payload bytes of this frame already read (for the mask key index).
    done: u64,
    header_len: u64,
    msg: MsgRef,
    /// With an inner dissector the header is classified at the frame's end.
    header_deferred: bool,
    /// What the inner dissector made of this frame's payload.
    inner_spans: bool,
    inner_all_control: bool,
    inner_msg: Option<MsgRef>,
}

impl Frame {
    fn control(&self) -> bool {
        self.opcode >= 8
    }
}

#[derive(Clone, Debug, Default)]
struct Side {
    header: HeaderBuf<14>,
    frame: Option<Frame>,
    /// The data message being received (its exchange when not nested).
    message: Option<MsgRef>,
    /// Framing lost: everything after is unparsed payload.
    lost: bool,
    junk: u64,
}

/// Bytes a frame header takes, once its first two bytes are known.
fn header_len(b0_b1: [u8; 2]) -> usize {
    let ext = match b0_b1[1] & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    2 + ext + if b0_b1[1] & 0x80 != 0 { 4 } else { 0 }
}

type MakeInner = fn(&FlowCtx) -> Box<dyn Dissector>;

/// A WebSocket connection after the handshake.
#[derive(Clone)]
pub struct WebSocket {
    ctx: FlowCtx,
    sides: PerDir<Side>,
    make_inner: MakeInner,
    inner: Option<Box<dyn Dissector>>,
    /// Whether data frames were checked for a carried protocol.
    inner_decided: bool,
    /// Told the flow about the carried protocol.
    inner_announced: bool,
    /// First payload bytes of the first binary message, held until they say
    /// whether it is an MQTT CONNECT.
    sniff: Vec<u8>,
    /// The direction whose first binary message is being sniffed.
    sniff_dir: Option<Dir>,
    /// Exchange ids from here on are ours (or the inner dissector's, offset).
    id_base: u32,
    next_id: u32,
    scratch_spans: Vec<Span>,
    scratch_events: Vec<Event>,
    unmasked: Vec<u8>,
    /// Frames seen per opcode (as in `OPCODES`), added to the statistics'
    /// map at the end: one map lookup per opcode instead of one per frame.
    frame_counts: [u64; OPCODES.len()],
}

impl WebSocket {
    /// `mqtt`: the handshake negotiated the MQTT subprotocol. `first_id`:
    /// the lowest exchange id not yet used in the flow.
    pub fn new(ctx: &FlowCtx, mqtt: bool, first_id: u32) -> WebSocket {
        Self::with_inner(ctx, mqtt, first_id, super::mqtt::PROTOCOL.make)
    }

    /// Like `new`, with the constructor of the carried protocol's dissector.
    fn with_inner(ctx: &FlowCtx, mqtt: bool, first_id: u32, make_inner: MakeInner) -> WebSocket {
        WebSocket {
            ctx: ctx.clone(),
            sides: PerDir::default(),
            make_inner,
            inner: mqtt.then(|| make_inner(ctx)),
            inner_decided: mqtt,
            inner_announced: false,
            sniff: Vec::new(),
            sniff_dir: None,
            id_base: first_id,
            next_id: first_id,
            scratch_spans: Vec::new(),
            scratch_events: Vec::new(),
            unmasked: Vec::new(),
            frame_counts: [0; OPCODES.len()],
        }
    }

    fn new_id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.saturating_add(1);
        id
    }

    /// Starts the frame whose whole header is `h`; false: malformed.
    fn start_frame(&mut self, dir: Dir, h: &[u8], emit: &mut Emit) -> bool {
        let (b0, b1) = match h {
            [a, b, ..] => (*a, *b),
            _ => return false,
        };
        let fin = b0 & 0x80 != 0;
        let opcode = b0 & 0x0f;
        let masked = b1 & 0x80 != 0;
        if h.len() != header_len([b0, b1]) {
            return false;
        }
        let ext = h.get(2..).unwrap_or(&[]);
        let len = match (b1 & 0x7f, ext) {
            (126, [a, b, ..]) => u64::from(u16::from_be_bytes([*a, *b])),
            (127, [a, b, c, d, e, f, g, h, ..]) => u64::from_be_bytes([*a, *b, *c, *d, *e, *f, *g, *h]),
            (n, _) => u64::from(n),
        };
        let Some(kind) = OPCODES.iter().position(|&op| op == opcode) else { return false };
        let control = opcode >= 8;
        if len >> 63 != 0 || (control && (!fin || len > 125)) {
            return false;
        }
        // The masking key ends the header.
        let key = if masked {
            let Some(&k) = h.last_chunk::<4>() else { return false };
            Some(k)
        } else {
            None
        };
        let header_len = h.len() as u64;
        let nested = self.inner.is_some() || (!self.inner_decided && opcode == 2);
        if opcode == 1 && self.sniff_dir.is_none() {
            // MQTT rides in binary messages only.
            self.inner_decided = true;
        }

        if let Some(n) = self.frame_counts.get_mut(kind) {
            *n += 1;
        }
        let st = &mut emit.stats.websocket;
        st.masked_frames += u64::from(masked);
        st.header_bytes += header_len;

        let msg = if control {
            st.control_frame_bytes += header_len + len;
            emit.span(Class::AppControl, header_len, MsgRef::Flow);
            MsgRef::Flow
        } else {
            st.data_frame_header_bytes += header_len;
            let msg = self.message_for(dir, opcode, nested, emit);
            if !nested {
                emit.span(Class::AppHeader, header_len, msg);
            }
            msg
        };
        self.sides[dir].frame = Some(Frame {
            opcode,
            fin,
            left: len,
            key,
            done: 0,
            header_len,
            msg,
            header_deferred: !control && nested,
            inner_spans: false,
            inner_all_control: true,
            inner_msg: None,
        });
        if len == 0 {
            self.end_frame(dir, emit);
        }
        true
    }

    /// The exchange a data frame belongs to: a new message opens one (unless
    /// an inner protocol's exchanges are the exchanges), a continuation frame
    /// belongs to its message's.
    fn message_for(&mut self, dir: Dir, opcode: u8, nested: bool, emit: &mut Emit) -> MsgRef {
        if opcode == 0 {
            return self.sides[dir].message.unwrap_or(MsgRef::Flow);
        }
        emit.stats.websocket.messages += 1;
        if let Some(MsgRef::Exchange(id)) = self.sides[dir].message.take() {
            // A new message before the last one's final frame.
            emit.event(Event::Close { id });
        }
        let msg = if nested {
            MsgRef::Flow
        } else {
            let id = self.new_id();
            let what = emit.what(|| message_what(opcode, dir));
            emit.event(Event::Open { id, kind: Proto::Websocket, what });
            MsgRef::Exchange(id)
        };
        self.sides[dir].message = Some(msg);
        msg
    }

    fn end_frame(&mut self, dir: Dir, emit: &mut Emit) {
        let Some(mut f) = self.sides[dir].frame.take() else { return };
        if self.sniff_dir == Some(dir) {
            // The whole (short) first binary frame is in hand: decide now.
            self.decide_inner(dir, &mut f, emit);
        }
        self.emit_deferred_header(&f, emit);
        if !f.control() && f.fin {
            if let Some(MsgRef::Exchange(id)) = self.sides[dir].message.take() {
                emit.event(Event::Close { id });
            }
            self.sides[dir].message = None;
        }
    }

    fn emit_deferred_header(&self, f: &Frame, emit: &mut Emit) {
        if f.header_deferred {
            let (class, msg) = if f.inner_spans && f.inner_all_control {
                (Class::AppControl, f.inner_msg.unwrap_or(MsgRef::Flow))
            } else {
                (Class::AppHeader, f.inner_msg.unwrap_or(f.msg))
            };
            emit.span(class, f.header_len, msg);
        }
    }

    /// `chunk` (at most what is left of the current frame) of payload.
    fn payload(&mut self, dir: Dir, chunk: &[u8], emit: &mut Emit) {
        let Some(mut f) = self.sides[dir].frame else { return };
        let total = chunk.len() as u64;
        let mut chunk = chunk;
        if f.control() {
            emit.span(Class::AppControl, total, MsgRef::Flow);
            f.done += total;
        } else {
            let st = &mut emit.stats.websocket;
            st.payload_bytes += total;
            match dir {
                Dir::C2S => st.data_payload_bytes_c2s += total,
                Dir::S2C => st.data_payload_bytes_s2c += total,
            }
            if !self.inner_decided && f.header_deferred && self.sniff_dir.is_none_or(|d| d == dir) {
                // Hold the first bytes of the first binary message.
                let k = chunk.len().min(SNIFF_LEN.saturating_sub(self.sniff.len()));
                let (head, rest) = chunk.split_at(k);
                let start = self.sniff.len();
                self.sniff.extend_from_slice(head);
                if let Some(key) = f.key {
                    unmask(self.sniff.get_mut(start..).unwrap_or_default(), key, f.done);
                }
                self.sniff_dir = Some(dir);
                f.done += k as u64;
                chunk = rest;
                if self.sniff.len() >= SNIFF_LEN {
                    self.decide_inner(dir, &mut f, emit);
                }
            }
            if !chunk.is_empty() {
                if self.inner.is_some() {
                    let mut bytes = std::mem::take(&mut self.unmasked);
                    bytes.clear();
                    bytes.extend_from_slice(chunk);
                    if let Some(key) = f.key {
                        unmask(&mut bytes, key, f.done);
                    }
                    self.feed_inner(dir, &bytes, &mut f, emit);
                    self.unmasked = bytes;
                } else {
                    emit.span(Class::Payload, chunk.len() as u64, f.msg);
                }
                f.done += chunk.len() as u64;
            }
        }
        f.left = f.left.saturating_sub(total);
        let ended = f.left == 0;
        self.sides[dir].frame = Some(f);
        if ended {
            self.end_frame(dir, emit);
        }
    }

    /// Decides from the held first bytes of the first binary message whether
    /// the connection carries MQTT, then classifies those bytes.
    fn decide_inner(&mut self, dir: Dir, f: &mut Frame, emit: &mut Emit) {
        if self.inner_decided {
            return;
        }
        self.inner_decided = true;
        self.sniff_dir = None;
        let held = std::mem::take(&mut self.sniff);
        if looks_like_mqtt_connect(&held) {
            self.inner = Some((self.make_inner)(&self.ctx));
            if !held.is_empty() {
                self.feed_inner(dir, &held, f, emit);
            }
        } else {
            // Plain binary messages: this one is an exchange of its own.
            let id = self.new_id();
            let what = emit.what(|| message_what(2, dir));
            emit.event(Event::Open { id, kind: Proto::Websocket, what });
            f.msg = MsgRef::Exchange(id);
            self.sides[dir].message = Some(f.msg);
            emit.span(Class::Payload, held.len() as u64, f.msg);
        }
    }

    /// Runs the inner dissector on unmasked payload bytes, moving its spans
    /// and events into ours with its exchange ids offset past ours.
    fn feed_inner(&mut self, dir: Dir, bytes: &[u8], f: &mut Frame, emit: &mut Emit) {
        let Some(inner) = self.inner.as_mut() else {
            emit.span(Class::Payload, bytes.len() as u64, f.msg);
            return;
        };
        if !self.inner_announced {
            // The flow stays a WebSocket flow (its `App`); the carried
            // protocol shows in its own statistics and exchanges.
            self.inner_announced = true;
            *emit.stats.websocket.inner.entry("mqtt".to_string()).or_default() += 1;
        }
        inner.data(dir, bytes, &mut emit.nested(&mut self.scratch_spans, &mut self.scratch_events));
        relay(self.id_base, &mut self.scratch_spans, &mut self.scratch_events, Some(f), emit);
    }

    /// Framing of `dir` is lost at the current position.
    fn lose(&mut self, dir: Dir, emit: &mut Emit) {
        let side = &mut self.sides[dir];
        let have = side.header.take() as u64;
        side.lost = true;
        side.junk += have;
        emit.span(Class::Payload, have, MsgRef::Flow);
        emit.stats.websocket.malformed += 1;
    }
}

/// XORs `bytes`, which start `offset` bytes into a frame's payload, with the
/// frame's mask key.
fn unmask(bytes: &mut [u8], key: [u8; 4], offset: u64) {
    // Rotate the key once so that it lines up with `bytes[0]`; then whole
    // 4-byte groups take it as it is (no index arithmetic per byte).
    let mut aligned = key;
    aligned.rotate_left((offset % 4) as usize);
    let mut groups = bytes.chunks_exact_mut(4);
    for group in &mut groups {
        for (b, k) in group.iter_mut().zip(aligned) {
            *b ^= k;
        }
    }
    for (b, k) in groups.into_remainder().iter_mut().zip(aligned) {
        *b ^= k;
    }
}

/// An MQTT CONNECT at the start of `b` (packet type 1, a remaining length,
/// then the protocol name "MQTT" or "MQIsdp").
fn looks_like_mqtt_connect(b: &[u8]) -> bool {
    if b.first() != Some(&0x10) {
        return false;
    }
    let len_bytes = b.iter().skip(1).take(4).take_while(|&&c| c & 0x80 != 0).count() + 1;
    let name = b.get(1 + len_bytes..).unwrap_or(&[]);
    name.starts_with(b"\x00\x04MQTT") || name.starts_with(b"\x00\x06MQIs")
}

/// Moves an inner dissector's output into `emit`, offsetting exchange ids by
/// `base` (ids that would overflow become flow bytes / are dropped), and
/// notes in `f` what the frame's payload turned out to be.
fn relay(base: u32, spans: &mut Vec<Span>, events: &mut Vec<Event>, mut f: Option<&mut Frame>, emit: &mut Emit) {
    let remap = |id: u32| base.checked_add(id);
    for s in spans.drain(..) {
        let msg = match s.msg {
            MsgRef::Exchange(id) => remap(id).map_or(MsgRef::Flow, MsgRef::Exchange),
            m => m,
        };
        if let Some(f) = f.as_deref_mut() {
            f.inner_spans = true;
            f.inner_all_control &= s.class == Class::AppControl;
            if f.inner_msg.is_none() {
                f.inner_msg = Some(msg);
            }
        }
        emit.span(s.class, s.len, msg);
    }
    for e in events.drain(..) {
        let e = match e {
            Event::Open { id, kind, what } => remap(id).map(|id| Event::Open { id, kind, what }),
            Event::Describe { id, what } => remap(id).map(|id| Event::Describe { id, what }),
            Event::Responded { id } => remap(id).map(|id| Event::Responded { id }),
            Event::Close { id } => remap(id).map(|id| Event::Close { id }),
            Event::GaveUp { id } => remap(id).map(|id| Event::GaveUp { id }),
            Event::Facets { id, facets } => remap(id).map(|id| Event::Facets { id, facets }),
            other => Some(other),
        };
        if let Some(e) = e {
            emit.event(e);
        }
    }
}

impl Dissector for WebSocket {
    fn data(&mut self, dir: Dir, data: &[u8], emit: &mut Emit) {
        let mut off = 0;
        while let Some(rest) = data.get(off..).filter(|r| !r.is_empty()) {
            if self.sides[dir].lost {
                emit.span(Class::Payload, rest.len() as u64, MsgRef::Flow);
                self.sides[dir].junk += rest.len() as u64;
                return;
            }
            if let Some(left) = self.sides[dir].frame.as_ref().map(|f| f.left) {
                let n = left.min(rest.len() as u64) as usize;
                self.payload(dir, rest.get(..n).unwrap_or(rest), emit);
                off += n;
                continue;
            }
            if self.sides[dir].header.is_empty()
                && let [b0, b1, ..] = rest
                && let Some(h) = rest.get(..header_len([*b0, *b1]))
            {
                // The whole header is here (nearly always): read it in place.
                if self.start_frame(dir, h, emit) {
                    off += h.len();
                } else {
                    off += self.sides[dir].header.fill(h.len(), h);
                    self.lose(dir, emit);
                }
                continue;
            }
            // Gather a frame header: 2 bytes tell how long it is.
            let header = &mut self.sides[dir].header;
            let known_len = |h: &HeaderBuf<14>| match h.bytes() {
                [b0, b1, ..] => Some(header_len([*b0, *b1])),
                _ => None,
            };
            let need = known_len(header).unwrap_or(2);
            off += header.fill(need, rest);
            if header.len() < need || known_len(header) != Some(need) {
                // Still short, or the first two bytes just told the whole length.
                continue;
            }
            let whole = *header;
            if self.start_frame(dir, whole.bytes(), emit) {
                self.sides[dir].header.take();
            } else {
                self.lose(dir, emit);
            }
        }
    }

    fn gap(&mut self, dir: Dir, len: u64, emit: &mut Emit) {
        let side = &self.sides[dir];
        match side.frame {
            Some(f) if !side.lost && len <= f.left => {
                let mut f = f;
                if self.sniff_dir == Some(dir) {
                    self.decide_inner(dir, &mut f, emit);
                }
                // The flow stage classifies the missing bytes; the frame
                // counts down past them.
                if !f.control() {
                    let st = &mut emit.stats.websocket;
                    st.payload_bytes += len;
                    match dir {
                        Dir::C2S => st.data_payload_bytes_c2s += len,
                        Dir::S2C => st.data_payload_bytes_s2c += len,
                    }
                    if let Some(inner) = self.inner.as_mut() {
                        inner.gap(dir, len, &mut emit.nested(&mut self.scratch_spans, &mut self.scratch_events));
                        relay(self.id_base, &mut self.scratch_spans, &mut self.scratch_events, Some(&mut f), emit);
                    }
                }
                f.done += len;
                f.left -= len;
                self.sides[dir].frame = Some(f);
                if f.left == 0 {
                    self.end_frame(dir, emit);
                }
            }
            _ => {
                if !self.sides[dir].lost {
                    if let Some(mut f) = self.sides[dir].frame.take() {
                        // The first payload bytes held to decide on MQTT
                        // are classified before framing is given up.
                        if self.sniff_dir == Some(dir) {
                            self.decide_inner(dir, &mut f, emit);
                        }
                        self.emit_deferred_header(&f, emit);
                    }
                    self.lose(dir, emit);
                }
            }
        }
    }

    fn finish(&mut self, emit: &mut Emit) {
        let frames = &mut emit.stats.websocket.frames;
        for (&opcode, n) in OPCODES.iter().zip(std::mem::take(&mut self.frame_counts)) {
            if n == 0 {
                continue;
            }
            super::bump(frames, opcode_name(opcode), n);
        }
        for dir in [Dir::C2S, Dir::S2C] {
            if let Some(mut f) = self.sides[dir].frame.take() {
                if self.sniff_dir == Some(dir) {
                    self.decide_inner(dir, &mut f, emit);
                }
                self.emit_deferred_header(&f, emit);
            }
            if !self.sides[dir].header.is_empty() {
                // A frame header cut off by the end of the capture.
                self.lose(dir, emit);
            }
            let side = &mut self.sides[dir];
            if side.junk > 0 {
                emit.event(Event::Malformed { bytes: side.junk, reason: "not a WebSocket frame".into() });
                side.junk = 0;
            }
        }
        if let Some(inner) = self.inner.as_mut() {
            inner.finish(&mut emit.nested(&mut self.scratch_spans, &mut self.scratch_events));
            relay(self.id_base, &mut self.scratch_spans, &mut self.scratch_events, None, emit);
        }
    }
}

#[cfg(test)]
mod tests;
