//! HTTP/2 over cleartext TCP (h2c): with prior knowledge (the client
//! connection preface) or after an HTTP/1.1 `Upgrade: h2c`.
//!
//! Frame headers and HEADERS / CONTINUATION / PUSH_PROMISE frames are
//! `app_header`, DATA frame data `payload` (the pad length byte and padding
//! are framing, `app_header`), every other frame (SETTINGS, WINDOW_UPDATE,
//! PING, PRIORITY, RST_STREAM, GOAWAY, extensions) and the client preface
//! whole `app_control`. Header blocks are HPACK-decoded (bounded) for
//! methods, paths and status codes; DATA is never buffered. One exchange per
//! request stream.

use super::{Proto, Dir, PerDir, Dissector, Emit, Event, FlowCtx, HeaderBuf, L4, MsgRef, Probe, Protocol, truncated};
use crate::vocab::Class;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

pub static PROTOCOL: Protocol = Protocol { id: Proto::Http2, l4: &[L4::Tcp], ports: &[], probe, make };

/// The client connection preface (RFC 9113 3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER: usize = 9;
/// SETTINGS_MAX_FRAME_SIZE until a peer says otherwise.
const DEFAULT_MAX_FRAME: u64 = 16_384;
/// Most bytes of one header block kept for HPACK decoding.
const MAX_HEADER_BLOCK: usize = 64 * 1024;
/// Largest HPACK dynamic table a peer may ask for (memory bound).
const MAX_HPACK_TABLE: usize = 64 * 1024;
/// Streams tracked at once; more are counted as flow bytes.
const MAX_STREAMS: usize = 1024;
const MAX_WHAT: usize = 200;
/// Bytes of a pseudo-header kept: more than `MAX_WHAT` characters of any
/// UTF-8 (or replacement characters), so descriptions are the same as from
/// the whole value.
const MAX_PSEUDO_BYTES: usize = 4 * MAX_WHAT + 8;
/// Characters of a method or status kept as a statistics key.
const MAX_KEY: usize = 32;

fn probe(_l4: L4, dir: Dir, first: &[u8]) -> Probe {
    let n = first.len().min(PREFACE.len());
    if dir == Dir::C2S && n >= 14 && first.get(..n) == PREFACE.get(..n) { Probe::Yes } else { Probe::No }
}

fn make(ctx: &FlowCtx) -> Box<dyn Dissector> {
    Box::new(Http2::new(ctx))
}

/// The `http2` section of the report.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Stats {
    pub connections: u64,
    /// Frames by type name (DATA, HEADERS, SETTINGS, ...).
    pub frames: BTreeMap<String, u64>,
    /// Client connection prefaces seen.
    pub preface: u64,
    pub requests: u64,
    pub responses: u64,
    pub status_codes: BTreeMap<String, u64>,
    pub methods: BTreeMap<String, u64>,
    /// Frame headers plus whole HEADERS / CONTINUATION / PUSH_PROMISE frames
    /// plus DATA padding: everything `app_header`.
    pub header_block_and_frame_header_bytes: u64,
    pub data_payload_bytes_c2s: u64,
    pub data_payload_bytes_s2c: u64,
    /// Whole control frames and the client preface: everything `app_control`.
    pub control_frame_bytes: u64,
    pub stream_resets: u64,
    pub goaways: u64,
    /// Header blocks that could not be decoded (HPACK state lost after).
    pub hpack_errors: u64,
    pub malformed: u64,
}

impl Stats {
    pub fn merge(&mut self, o: &Stats) {
        self.connections += o.connections;
        for (a, b) in
            [(&mut self.frames, &o.frames), (&mut self.status_codes, &o.status_codes), (&mut self.methods, &o.methods)]
        {
            for (k, n) in b {
                super::bump(a, k, *n);
            }
        }
        self.preface += o.preface;
        self.requests += o.requests;
        self.responses += o.responses;
        self.header_block_and_frame_header_bytes += o.header_block_and_frame_header_bytes;
        self.data_payload_bytes_c2s += o.data_payload_bytes_c2s;
        self.data_payload_bytes_s2c += o.data_payload_bytes_s2c;
        self.control_frame_bytes += o.control_frame_bytes;
        self.stream_resets += o.stream_resets;
        self.goaways += o.goaways;
        self.hpack_errors += o.hpack_errors;
        self.malformed += o.malformed;
    }
}

const DATA: u8 = 0;
const HEADERS: u8 = 1;
const PRIORITY: u8 = 2;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const PUSH_PROMISE: u8 = 5;
const PING: u8 = 6;
const GOAWAY: u8 = 7;
const WINDOW_UPDATE: u8 = 8;
const CONTINUATION: u8 = 9;

const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY_FLAG: u8 = 0x20;

fn frame_name(t: u8) -> &'static str {
    match t {
        DATA => "DATA",
        HEADERS => "HEADERS",
        PRIORITY => "PRIORITY",
        RST_STREAM => "RST_STREAM",
        SETTINGS => "SETTINGS",
        PUSH_PROMISE => "PUSH_PROMISE",
        PING => "PING",
        GOAWAY => "GOAWAY",
        WINDOW_UPDATE => "WINDOW_UPDATE",
        CONTINUATION => "CONTINUATION",
        0xa => "ALTSVC",
        0xc => "ORIGIN",
        0x10 => "PRIORITY_UPDATE",
        _ => "UNKNOWN",
    }
}

/// The frame whose payload is being read.
#[derive(Clone, Copy, Debug)]
struct Frame {
    typ: u8,
    flags: u8,
    stream: u32,
    len: u64,
    left: u64,
    /// DATA: the pad length, once read.
    pad: u64,
    /// The payload is collected in `Side::frame_buf` (header blocks,
    /// SETTINGS); header-block frames then get their spans at the end.
    collect: bool,
    msg: MsgRef,
}

impl Frame {
    fn header_block(&self) -> bool {
        matches!(self.typ, HEADERS | CONTINUATION | PUSH_PROMISE)
    }
}

#[derive(Clone)]
struct Side {
    /// Preface bytes still expected (client side only).
    preface_left: usize,
    header: HeaderBuf<FRAME_HEADER>,
    frame: Option<Frame>,
    frame_buf: Vec<u8>,
    /// The header block being assembled from HEADERS + CONTINUATION.
    block: Vec<u8>,
    /// Stream whose header block continues in CONTINUATION frames.
    continuing: Option<u32>,
    /// The block being assembled is too big or its HEADERS frame was not
    /// collected: it will not be decoded.
    block_broken: bool,
    /// The HEADERS frame that started the block ended its stream.
    block_end_stream: bool,
    /// HPACK decoder for the header blocks this side sends.
    decoder: super::hpack::Decoder,
    hpack_ok: bool,
    /// SETTINGS_MAX_FRAME_SIZE this side advertised (frames it receives).
    max_frame: u64,
    lost: bool,
    junk: u64,
}

impl Side {
    fn new(preface: bool) -> Side {
        let decoder = super::hpack::Decoder::new(MAX_HPACK_TABLE);
        Side {
            preface_left: if preface { PREFACE.len() } else { 0 },
            header: HeaderBuf::default(),
            frame: None,
            frame_buf: Vec::new(),
            block: Vec::new(),
            continuing: None,
            block_broken: false,
            block_end_stream: false,
            decoder,
            hpack_ok: true,
            max_frame: DEFAULT_MAX_FRAME,
            lost: false,
            junk: 0,
        }
    }
}

/// A request stream and its exchange.
#[derive(Clone, Debug)]
struct Stream {
    id: u32,
    what: String,
    responded: bool,
}

/// Pseudo-headers of one decoded header block.
#[derive(Clone, Default)]
struct Pseudo {
    method: Option<String>,
    path: Option<String>,
    status: Option<String>,
}

/// The HTTP/2 dissector of one connection.
#[derive(Clone)]
pub struct Http2 {
    sides: PerDir<Side>,
    streams: HashMap<u32, Stream>,
    next_id: u32,
    counted: bool,
}

impl Http2 {
    pub fn new(_ctx: &FlowCtx) -> Http2 {
        Http2 { sides: PerDir([Side::new(true), Side::new(false)]), streams: HashMap::new(), next_id: 1, counted: false }
    }

    /// After an HTTP/1.1 upgrade: exchange ids start at `first_id`; the
    /// upgrade request (exchange id and description), already answered by
    /// the 101, gets its real response on stream 1.
    pub fn upgraded(ctx: &FlowCtx, first_id: u32, stream1: Option<(u32, String)>) -> Http2 {
        let mut h = Http2::new(ctx);
        h.next_id = first_id;
        if let Some((id, what)) = stream1 {
            h.streams.insert(1, Stream { id, what, responded: true });
        }
        h
    }

    fn new_id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.saturating_add(1);
        id
    }

    fn stream_msg(&self, stream: u32) -> MsgRef {
        self.streams.get(&stream).map_or(MsgRef::Flow, |s| MsgRef::Exchange(s.id))
    }

    /// Opens an exchange for `stream` (unless too many are open).
    fn open(&mut self, stream: u32, what: String, emit: &mut Emit) -> MsgRef {
        if self.streams.len() >= MAX_STREAMS {
            return MsgRef::Flow;
        }
        let id = self.new_id();
        emit.event(Event::Open { id, kind: Proto::Http2, what: what.clone() });
        self.streams.insert(stream, Stream { id, what, responded: false });
        MsgRef::Exchange(id)
    }

    fn close(&mut self, stream: u32, emit: &mut Emit) {
        if let Some(s) = self.streams.remove(&stream) {
            emit.event(Event::Close { id: s.id });
        }
    }

    fn responded(&mut self, stream: u32, emit: &mut Emit) {
        if let Some(s) = self.streams.get_mut(&stream)
            && !s.responded
        {
            s.responded = true;
            emit.event(Event::Responded { id: s.id });
        }
    }

    fn header_bytes(n: u64, msg: MsgRef, emit: &mut Emit) {
        emit.span(Class::AppHeader, n, msg);
        emit.stats.http2.header_block_and_frame_header_bytes += n;
    }

    fn control_bytes(n: u64, msg: MsgRef, emit: &mut Emit) {
        emit.span(Class::AppControl, n, msg);
        emit.stats.http2.control_frame_bytes += n;
    }

    /// Matches the client preface; returns the bytes used.
    fn preface(&mut self, dir: Dir, b: &[u8], emit: &mut Emit) -> usize {
        let side = &mut self.sides[dir];
        let pos = PREFACE.len() - side.preface_left;
        let want = PREFACE.get(pos..).unwrap_or(&[]);
        let k = side.preface_left.min(b.len());
        let m = b.iter().zip(want).take_while(|(a, b)| a == b).count();
        if m == k {
            side.preface_left -= k;
            Self::control_bytes(k as u64, MsgRef::Setup, emit);
            if side.preface_left == 0 {
                emit.stats.http2.preface += 1;
            }
            return k;
        }
        side.preface_left = 0;
        if pos == 0 && m == 0 {
            // No preface (a capture that started mid-connection): frames.
            return 0;
        }
        Self::control_bytes(m as u64, MsgRef::Setup, emit);
        self.lose(dir, emit);
        m
    }

    /// Framing of `dir` is lost at the current position.
    fn lose(&mut self, dir: Dir, emit: &mut Emit) {
        let side = &mut self.sides[dir];
        let have = side.header.take() as u64;
        side.frame = None;
        side.lost = true;
        side.junk += have;
        emit.span(Class::Payload, have, MsgRef::Flow);
        emit.stats.http2.malformed += 1;
    }

    /// Starts the frame whose header is in `side.header`; false: malformed.
    fn start_frame(&mut self, dir: Dir, emit: &mut Emit) -> bool {
        let Some(&h) = self.sides[dir].header.bytes().first_chunk::<FRAME_HEADER>() else { return false };
        let len = u64::from(h[0]) << 16 | u64::from(h[1]) << 8 | u64::from(h[2]);
        let (typ, flags) = (h[3], h[4]);
        let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
        let limit = self.sides[dir.flip()].max_frame;
        let shape_ok = match typ {
            DATA | HEADERS | CONTINUATION | PUSH_PROMISE => stream != 0,
            PRIORITY => len == 5 && stream != 0,
            RST_STREAM => len == 4 && stream != 0,
            SETTINGS => len % 6 == 0 && stream == 0 && (flags & ACK == 0 || len == 0),
            PING => len == 8 && stream == 0,
            GOAWAY => len >= 8 && stream == 0,
            WINDOW_UPDATE => len == 4,
            _ => true,
        };
        // A header block continues only in CONTINUATION frames of its stream.
        let order_ok = match self.sides[dir].continuing {
            Some(s) => typ == CONTINUATION && stream == s,
            None => typ != CONTINUATION,
        };
        if len > limit || !shape_ok || !order_ok {
            return false;
        }
        super::bump(&mut emit.stats.http2.frames, frame_name(typ), 1);
        if dir == Dir::S2C && stream != 0 {
            // The first server byte on a request stream answers it.
            self.responded(stream, emit);
        }
        let collect_limit = match typ {
            HEADERS | CONTINUATION | PUSH_PROMISE => MAX_HEADER_BLOCK,
            SETTINGS => 6 * 64,
            _ => 0,
        };
        let collect = len as usize <= collect_limit && !(typ == CONTINUATION && self.sides[dir].block_broken);
        let mut msg = match typ {
            SETTINGS => MsgRef::Setup,
            _ => self.stream_msg(stream),
        };
        let f_header_block = matches!(typ, HEADERS | CONTINUATION | PUSH_PROMISE);
        if f_header_block && !collect {
            // Too big to decode: classify as it streams past.
            if typ == HEADERS && dir == Dir::C2S && !self.streams.contains_key(&stream) {
                emit.stats.http2.requests += 1;
                msg = self.open(stream, "(headers not decoded)".into(), emit);
            }
            Self::header_bytes(FRAME_HEADER as u64, msg, emit);
            if typ != CONTINUATION {
                self.sides[dir].block.clear();
                self.sides[dir].block_end_stream = flags & END_STREAM != 0;
            }
            self.sides[dir].block_broken = true;
        } else if f_header_block {
            // Spans at the frame's end, once the exchange is known.
        } else if typ == DATA {
            Self::header_bytes(FRAME_HEADER as u64, msg, emit);
        } else {
            Self::control_bytes(FRAME_HEADER as u64, msg, emit);
        }
        self.sides[dir].frame_buf.clear();
        let f = Frame { typ, flags, stream, len, left: len, pad: 0, collect, msg };
        self.sides[dir].frame = Some(f);
        if len == 0 {
            self.end_frame(dir, emit);
        }
        true
    }

    /// `chunk` (at most what is left of the current frame) of payload.
    fn frame_payload(&mut self, dir: Dir, chunk: &[u8], emit: &mut Emit) {
        let Some(mut f) = self.sides[dir].frame else { return };
        let n = chunk.len() as u64;
        let done = f.len - f.left;
        if f.collect {
            self.sides[dir].frame_buf.extend_from_slice(chunk);
        }
        match f.typ {
            DATA => {
                let mut chunk = chunk;
                let mut pos = done;
                if f.flags & PADDED != 0
                    && pos == 0
                    && let Some((&pad, rest)) = chunk.split_first()
                {
                    f.pad = u64::from(pad);
                    Self::header_bytes(1, f.msg, emit);
                    chunk = rest;
                    pos = 1;
                }
                let data_end = if f.flags & PADDED != 0 { f.len.saturating_sub(f.pad).max(1) } else { f.len };
                let data = data_end.saturating_sub(pos).min(chunk.len() as u64);
                emit.span(Class::Payload, data, f.msg);
                match dir {
                    Dir::C2S => emit.stats.http2.data_payload_bytes_c2s += data,
                    Dir::S2C => emit.stats.http2.data_payload_bytes_s2c += data,
                }
                Self::header_bytes(chunk.len() as u64 - data, f.msg, emit);
            }
            _ if f.header_block() => {
                if !f.collect {
                    Self::header_bytes(n, f.msg, emit);
                }
            }
            _ => Self::control_bytes(n, f.msg, emit),
        }
        f.left -= n;
        self.sides[dir].frame = Some(f);
        if f.left == 0 {
            self.end_frame(dir, emit);
        }
    }

    fn end_frame(&mut self, dir: Dir, emit: &mut Emit) {
        let Some(f) = self.sides[dir].frame.take() else { return };
        match f.typ {
            DATA if f.flags & END_STREAM != 0 => self.end_stream(dir, f.stream, emit),
            HEADERS | CONTINUATION | PUSH_PROMISE => self.end_header_frame(dir, f, emit),
            SETTINGS if f.flags & ACK == 0 => {
                let buf = std::mem::take(&mut self.sides[dir].frame_buf);
                for s in buf.chunks_exact(6) {
                    // SETTINGS_MAX_FRAME_SIZE bounds what this side receives.
                    if let &[0, 5, v0, v1, v2, v3] = s {
                        let v = u64::from(u32::from_be_bytes([v0, v1, v2, v3]));
                        self.sides[dir].max_frame = v.clamp(DEFAULT_MAX_FRAME, (1 << 24) - 1);
                    }
                }
                self.sides[dir].frame_buf = buf;
            }
            RST_STREAM => {
                emit.stats.http2.stream_resets += 1;
                self.close(f.stream, emit);
            }
            GOAWAY => emit.stats.http2.goaways += 1,
            _ => {}
        }
    }

    fn end_stream(&mut self, dir: Dir, stream: u32, emit: &mut Emit) {
        // The exchange is complete when the server has finished answering.
        if dir == Dir::S2C {
            self.close(stream, emit);
        }
    }

    fn end_header_frame(&mut self, dir: Dir, f: Frame, emit: &mut Emit) {
        if f.typ != CONTINUATION {
            self.sides[dir].block.clear();
            self.sides[dir].block_broken = !f.collect;
            self.sides[dir].block_end_stream = f.flags & END_STREAM != 0;
        }
        if f.collect && !self.sides[dir].block_broken {
            let buf = std::mem::take(&mut self.sides[dir].frame_buf);
            match fragment(f.typ, f.flags, &buf) {
                Some(frag) if self.sides[dir].block.len() + frag.len() <= MAX_HEADER_BLOCK => {
                    self.sides[dir].block.extend_from_slice(frag);
                }
                _ => self.sides[dir].block_broken = true,
            }
            self.sides[dir].frame_buf = buf;
        }
        let stream = if f.typ == CONTINUATION { self.sides[dir].continuing.unwrap_or(f.stream) } else { f.stream };
        let ended = f.flags & END_HEADERS != 0;
        self.sides[dir].continuing = if ended { None } else { Some(stream) };

        let pseudo = if ended { self.decode_block(dir, emit) } else { None };
        let new_request = dir == Dir::C2S && f.typ == HEADERS && !self.streams.contains_key(&stream);
        let mut msg = self.stream_msg(stream);
        if new_request {
            emit.stats.http2.requests += 1;
            let what = match &pseudo {
                Some(p) => {
                    let m = p.method.clone().unwrap_or_else(|| "?".into());
                    super::bump(&mut emit.stats.http2.methods, &truncated(&m, MAX_KEY), 1);
                    emit.what(|| truncate(&format!("{m} {}", p.path.as_deref().unwrap_or("?"))))
                }
                None if !ended => "(header block continues)".into(),
                None => "(headers not decoded)".into(),
            };
            msg = self.open(stream, what, emit);
        } else if dir == Dir::C2S && f.typ == CONTINUATION && ended {
            // The request's header block finished in a CONTINUATION frame.
            if let (Some(p), Some(s)) = (&pseudo, self.streams.get_mut(&stream))
                && let Some(m) = &p.method
            {
                super::bump(&mut emit.stats.http2.methods, &truncated(m, MAX_KEY), 1);
                s.what = truncate(&format!("{m} {}", p.path.as_deref().unwrap_or("?")));
                emit.event(Event::Describe { id: s.id, what: s.what.clone() });
            }
        } else if dir == Dir::S2C && f.typ != PUSH_PROMISE && !self.streams.contains_key(&stream) && stream % 2 == 1 {
            // A response whose request was not captured.
            msg = self.open(stream, "(request not captured)".into(), emit);
            self.responded(stream, emit);
        }
        if dir == Dir::S2C
            && f.typ != PUSH_PROMISE
            && let Some(status) = pseudo.as_ref().and_then(|p| p.status.as_deref())
        {
            let status = truncated(status, MAX_KEY);
            emit.stats.http2.responses += 1;
            super::bump(&mut emit.stats.http2.status_codes, &status, 1);
            if let Some(s) = self.streams.get(&stream)
                && !status.starts_with('1')
                && !s.what.is_empty()
            {
                emit.event(Event::Describe { id: s.id, what: format!("{} {status}", s.what) });
            }
        }
        if f.collect {
            Self::header_bytes(FRAME_HEADER as u64 + f.len, msg, emit);
        }
        if ended && self.sides[dir].block_end_stream && f.typ != PUSH_PROMISE {
            self.end_stream(dir, stream, emit);
        }
    }

    /// Decodes the assembled header block of `dir`, keeping HPACK in step.
    fn decode_block(&mut self, dir: Dir, emit: &mut Emit) -> Option<Pseudo> {
        let side = &mut self.sides[dir];
        let block = std::mem::take(&mut side.block);
        let broken = std::mem::take(&mut side.block_broken);
        if broken || !side.hpack_ok {
            // Without the whole block the dynamic table is out of step.
            if side.hpack_ok {
                side.hpack_ok = false;
                emit.stats.http2.hpack_errors += 1;
            }
            side.block = block;
            side.block.clear();
            return None;
        }
        let mut p = Pseudo::default();
        let r = side.decoder.decode(&block, |name, value| {
            // Only what a description can show is copied: a block may name a
            // 64 KB table entry in every byte.
            let v = || String::from_utf8_lossy(value.get(..MAX_PSEUDO_BYTES).unwrap_or(value)).into_owned();
            match name {
                b":method" => p.method = Some(v()),
                b":path" => p.path = Some(v()),
                b":status" => p.status = Some(v()),
                _ => {}
            }
        });
        side.block = block;
        side.block.clear();
        match r {
            Ok(()) => Some(p),
            Err(_) => {
                side.hpack_ok = false;
                emit.stats.http2.hpack_errors += 1;
                None
            }
        }
    }
}

fn truncate(s: &str) -> String {
    truncated(s, MAX_WHAT).into_owned()
}

/// The header block fragment in a HEADERS / PUSH_PROMISE / CONTINUATION
/// payload (without pad length, priority, promised stream id, padding).
fn fragment(typ: u8, flags: u8, p: &[u8]) -> Option<&[u8]> {
    if typ == CONTINUATION {
        return Some(p);
    }
    let (pad, mut rest) = if flags & PADDED != 0 {
        let (&pad, rest) = p.split_first()?;
        (usize::from(pad), rest)
    } else {
        (0, p)
    };
    if typ == HEADERS && flags & PRIORITY_FLAG != 0 {
        rest = rest.get(5..)?;
    }
    if typ == PUSH_PROMISE {
        rest = rest.get(4..)?;
    }
    rest.get(..rest.len().checked_sub(pad)?)
}

impl Dissector for Http2 {
    fn data(&mut self, dir: Dir, data: &[u8], emit: &mut Emit) {
        if !self.counted {
            self.counted = true;
            emit.stats.http2.connections += 1;
        }
        let mut off = 0;
        while let Some(rest) = data.get(off..).filter(|r| !r.is_empty()) {
            if self.sides[dir].lost {
                emit.span(Class::Payload, rest.len() as u64, MsgRef::Flow);
                self.sides[dir].junk += rest.len() as u64;
                return;
            }
            if self.sides[dir].preface_left > 0 {
                off += self.preface(dir, rest, emit);
                continue;
            }
            if let Some(f) = self.sides[dir].frame {
                let n = f.left.min(rest.len() as u64) as usize;
                self.frame_payload(dir, rest.get(..n).unwrap_or(rest), emit);
                off += n;
                continue;
            }
            let header = &mut self.sides[dir].header;
            off += header.fill(FRAME_HEADER, rest);
            if header.len() < FRAME_HEADER {
                continue;
            }
            if self.start_frame(dir, emit) {
                self.sides[dir].header.take();
            } else {
                self.lose(dir, emit);
            }
        }
    }

    fn gap(&mut self, dir: Dir, len: u64, emit: &mut Emit) {
        match self.sides[dir].frame {
            // Missing DATA bytes: framing survives.
            // The flow stage classifies the missing bytes; DATA counts down
            // past them.
            Some(f) if f.typ == DATA && f.flags & PADDED == 0 && len <= f.left && !self.sides[dir].lost => {
                match dir {
                    Dir::C2S => emit.stats.http2.data_payload_bytes_c2s += len,
                    Dir::S2C => emit.stats.http2.data_payload_bytes_s2c += len,
                }
                let mut f = f;
                f.left -= len;
                self.sides[dir].frame = Some(f);
                if f.left == 0 {
                    self.end_frame(dir, emit);
                }
            }
            _ => {
                if !self.sides[dir].lost {
                    self.flush_frame(dir, emit);
                    self.lose(dir, emit);
                }
            }
        }
    }

    fn finish(&mut self, emit: &mut Emit) {
        for dir in [Dir::C2S, Dir::S2C] {
            self.flush_frame(dir, emit);
            if !self.sides[dir].header.is_empty() {
                // A frame header cut off by the end of the capture.
                self.lose(dir, emit);
            }
            let side = &mut self.sides[dir];
            if side.junk > 0 {
                emit.event(Event::Malformed { bytes: side.junk, reason: "not an HTTP/2 frame".into() });
                side.junk = 0;
            }
        }
    }
}

impl Http2 {
    /// A frame cut short: classify the collected part of a header-block
    /// frame, whose spans were waiting for the frame's end.
    fn flush_frame(&mut self, dir: Dir, emit: &mut Emit) {
        if let Some(f) = self.sides[dir].frame.take()
            && f.header_block()
            && f.collect
        {
            let got = (f.len - f.left) + FRAME_HEADER as u64;
            Self::header_bytes(got, f.msg, emit);
        }
    }
}

#[cfg(test)]
mod tests;
