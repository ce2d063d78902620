//! The input formats of the fuzz targets and the checks they make, shared by
//! the targets (fuzz_targets/) and the seed builder (src/bin/make-seeds.rs),
//! which writes real conversations from captures/ in these formats.
//!
//! The formats are small and forgiving: any byte string is a valid input
//! (lengths past the end take what is left), so libFuzzer's mutations stay
//! meaningful.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use wiretax::decode::{Decoded, TcpHeader, Transport};
use wiretax::dissect::{Dir, Dissector, Emit, Event, ProtoStats, Span};
use wiretax::flow::{FlowRecord, FlowSink, FrameTick};
use wiretax::ledger::Exchange;

/// Reads the fields of a fuzz input; past its end, reads give `None`.
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Reader<'a> {
        Reader { rest: data }
    }
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }
    pub fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.rest.split_first()?;
        self.rest = rest;
        Some(b)
    }
    pub fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes([self.u8()?, self.u8()?]))
    }
    pub fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes([self.u8()?, self.u8()?, self.u8()?, self.u8()?]))
    }
    /// Up to `n` bytes: fewer when the input ends first.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.rest.split_at(n.min(self.rest.len()));
        self.rest = b;
        a
    }
    pub fn rest(&mut self) -> &'a [u8] {
        self.take(usize::MAX)
    }
}

// ---------------------------------------------------------------------------
// Conversations for one dissector

/// Mode byte bits of a conversation.
pub mod mode {
    /// `Emit::tight`: memory is short, keep no more than needed.
    pub const TIGHT: u8 = 1;
    /// `Emit::describe` false: exchanges are counted, not described.
    pub const NO_DESCRIBE: u8 = 2;
    /// Run over UDP (datagrams) rather than TCP (a stream), where the
    /// protocol has both.
    pub const UDP: u8 = 4;
    /// Target-specific (WebSocket: carrying MQTT).
    pub const EXTRA: u8 = 8;
}

/// Record control byte bits of a conversation.
pub mod rec {
    /// Server to client (else client to server).
    pub const S2C: u8 = 1;
    /// A gap of the record's length (no bytes follow).
    pub const GAP: u8 = 2;
    /// An hour passes before the record (else a second).
    pub const PAUSE: u8 = 4;
    /// The rest of the byte, shifted down by this, is the size of the
    /// pieces the data is fed in (0: all at once; TCP only).
    pub const PIECE_SHIFT: u8 = 3;
}

/// One step of a conversation.
#[derive(Debug)]
pub enum Step<'a> {
    Data { dir: Dir, piece: usize, pause: bool, bytes: &'a [u8] },
    Gap { dir: Dir, len: u64, pause: bool },
}

/// A conversation: a mode byte, then records of a control byte (`rec`), a
/// two-byte little-endian length and (unless a gap) that many bytes.
pub struct Conversation<'a> {
    pub mode: u8,
    pub steps: Vec<Step<'a>>,
}

impl<'a> Conversation<'a> {
    pub fn parse(data: &'a [u8]) -> Conversation<'a> {
        let mut r = Reader::new(data);
        let mode = r.u8().unwrap_or(0);
        let mut steps = Vec::new();
        while let Some(c) = r.u8() {
            let len = r.u16().unwrap_or(0);
            let dir = if c & rec::S2C != 0 { Dir::S2C } else { Dir::C2S };
            let pause = c & rec::PAUSE != 0;
            if c & rec::GAP != 0 {
                steps.push(Step::Gap { dir, len: len as u64, pause });
            } else {
                let piece = (c >> rec::PIECE_SHIFT) as usize;
                steps.push(Step::Data { dir, piece, pause, bytes: r.take(len as usize) });
            }
        }
        Conversation { mode, steps }
    }

    pub fn udp(&self) -> bool {
        self.mode & mode::UDP != 0
    }
}

/// Appends a record of `bytes` in direction `dir`, fed at once (seeds).
pub fn push_data(out: &mut Vec<u8>, dir: Dir, bytes: &[u8]) {
    for chunk in bytes.chunks(u16::MAX as usize) {
        out.push(if dir == Dir::S2C { rec::S2C } else { 0 });
        out.extend_from_slice(&(chunk.len() as u16).to_le_bytes());
        out.extend_from_slice(chunk);
    }
}

/// Feeds a conversation to a dissector, then finishes it, and checks its
/// contract: every byte handed to `data` is in exactly one span, and no span
/// is emitted for bytes not handed over yet. Gaps get no span (the flow
/// stage books them).
pub fn run_dissector(d: &mut dyn Dissector, conv: &Conversation) {
    let mut spans: Vec<Span> = Vec::new();
    let mut events: Vec<Event> = Vec::new();
    let mut stats = ProtoStats::default();
    let (mut ts, mut fed, mut spanned) = (1_700_000_000_000_000_000i64, 0u64, 0u64);
    let tight = conv.mode & mode::TIGHT != 0;
    let describe = conv.mode & mode::NO_DESCRIBE == 0;
    let mut call = |spans: &mut Vec<Span>, events: &mut Vec<Event>, ts: i64, f: &mut dyn FnMut(&mut Emit)| {
        spans.clear();
        events.clear();
        let mut e = Emit::new(ts, spans, events, &mut stats);
        e.tight = tight;
        e.describe = describe;
        f(&mut e);
        spans.iter().map(|s| s.len).sum::<u64>()
    };
    for step in &conv.steps {
        let pause = match step {
            Step::Data { pause, .. } | Step::Gap { pause, .. } => *pause,
        };
        ts += if pause { 3_600_000_000_000 } else { 1_000_000_000 };
        match *step {
            Step::Data { dir, piece, bytes, .. } => {
                let size = if piece == 0 || conv.udp() { bytes.len().max(1) } else { piece };
                for part in bytes.chunks(size) {
                    fed += part.len() as u64;
                    spanned += call(&mut spans, &mut events, ts, &mut |e| d.data(dir, part, e));
                    assert!(spanned <= fed, "spans for {spanned} bytes after {fed} were fed");
                }
                if bytes.is_empty() && conv.udp() {
                    // An empty datagram.
                    spanned += call(&mut spans, &mut events, ts, &mut |e| d.data(dir, bytes, e));
                }
            }
            Step::Gap { dir, len, .. } => {
                spanned += call(&mut spans, &mut events, ts, &mut |e| d.gap(dir, len, e));
                assert!(spanned <= fed, "spans for {spanned} bytes after {fed} were fed (gap)");
            }
        }
    }
    spanned += call(&mut spans, &mut events, ts + 1, &mut |e| d.finish(e));
    assert_eq!(spanned, fed, "spans must cover every byte fed exactly once");
}

// ---------------------------------------------------------------------------
// Frames for the decoder

/// Link types a decode record can name by index (the last byte of the
/// record header picks one; past the list, the byte is the link type).
pub const LINKTYPES: [u16; 10] = [1, 101, 0, 108, 113, 276, 228, 229, 12, 14];

/// A frame of the decode target: link type selector, bytes the capture cut
/// off (wire length = captured + cut), two-byte length, the bytes.
pub struct Frame<'a> {
    pub linktype: u16,
    pub wire_len: u32,
    pub data: &'a [u8],
}

pub fn parse_frames(data: &[u8]) -> Vec<Frame<'_>> {
    let mut r = Reader::new(data);
    let mut out = Vec::new();
    while let Some(sel) = r.u8() {
        let cut = r.u8().unwrap_or(0) as u32;
        let len = r.u16().unwrap_or(0);
        let data = r.take(len as usize);
        let linktype = LINKTYPES.get(sel as usize).copied().unwrap_or(sel as u16);
        out.push(Frame { linktype, wire_len: data.len() as u32 + cut, data });
    }
    out
}

/// Appends a frame record (seeds).
pub fn push_frame(out: &mut Vec<u8>, linktype: u16, data: &[u8]) {
    let sel = LINKTYPES.iter().position(|&l| l == linktype).map_or(linktype.min(255) as u8, |i| i as u8);
    let data = data.get(..u16::MAX as usize).unwrap_or(data);
    out.push(sel);
    out.push(0);
    out.extend_from_slice(&(data.len() as u16).to_le_bytes());
    out.extend_from_slice(data);
}

// ---------------------------------------------------------------------------
// Segments for the flow table

/// Segment header bits (first byte of a segment record).
pub mod seg {
    /// Which of four connections (two bits).
    pub const CONN_MASK: u8 = 3;
    /// Sent by the server.
    pub const FROM_SERVER: u8 = 4;
    /// A UDP datagram rather than a TCP segment.
    pub const UDP: u8 = 8;
    /// IPv6 addresses.
    pub const V6: u8 = 16;
    /// Sequence and acknowledgement numbers are absolute (four bytes each)
    /// rather than two-byte signed offsets from what the harness expects.
    pub const ABSOLUTE: u8 = 32;
}

/// The server port of each of the four connections of a flow-table run
/// (the port decides some protocols): picked by the run's first byte.
pub const PORTS: [u16; 16] = [80, 443, 1883, 5683, 53, 8080, 8883, 5684, 8000, 4433, 5353, 2375, 8443, 9000, 1, 0];

/// One TCP segment or UDP datagram of a flow-table run. Record: header
/// byte (`seg`), TCP flags, seq and ack (absolute u32 or i16 offsets), time
/// step (ms cubed: up to hours), payload length (u16), bytes cut off the
/// end by snaplen (u8), payload.
#[derive(Debug)]
pub struct Segment<'a> {
    pub conn: usize,
    pub from_server: bool,
    pub udp: bool,
    pub v6: bool,
    pub flags: u8,
    pub seq: u32,
    pub ack: u32,
    pub dt_ns: i64,
    pub wire_payload: u32,
    pub payload: &'a [u8],
}

/// Follows what each direction of each connection expects next, for the
/// relative sequence numbers.
#[derive(Default)]
pub struct SeqTrack {
    next: [[u32; 2]; 4],
}

impl SeqTrack {
    fn after(&mut self, conn: usize, dir: usize, seq: u32, len: u32, flags: u8) {
        let ctl = u32::from(flags & (wiretax::decode::tcp_flags::SYN | wiretax::decode::tcp_flags::FIN) != 0);
        if let Some(n) = self.next.get_mut(conn).and_then(|c| c.get_mut(dir)) {
            *n = seq.wrapping_add(len).wrapping_add(ctl);
        }
    }
    fn next(&self, conn: usize, dir: usize) -> u32 {
        self.next.get(conn).and_then(|c| c.get(dir)).copied().unwrap_or(0)
    }
}

/// Parses a flow-table run: a ports byte (two connections' port indexes
/// into `PORTS`, the other two use the same), then segment records.
pub fn parse_segments(data: &[u8]) -> (Vec<u16>, Vec<Segment<'_>>) {
    let mut r = Reader::new(data);
    let p = r.u8().unwrap_or(0);
    let ports =
        vec![PORTS[(p & 15) as usize], PORTS[(p >> 4) as usize], PORTS[(p & 15) as usize], PORTS[(p >> 4) as usize]];
    let mut track = SeqTrack::default();
    let mut out = Vec::new();
    while let Some(h) = r.u8() {
        let conn = (h & seg::CONN_MASK) as usize;
        let from_server = h & seg::FROM_SERVER != 0;
        let dir = usize::from(from_server);
        let flags = r.u8().unwrap_or(0);
        let (seq, ack) = if h & seg::ABSOLUTE != 0 {
            (r.u32().unwrap_or(0), r.u32().unwrap_or(0))
        } else {
            let ds = r.u16().unwrap_or(0) as i16;
            let da = r.u16().unwrap_or(0) as i16;
            (
                track.next(conn, dir).wrapping_add(ds as i32 as u32),
                track.next(conn, 1 - dir).wrapping_add(da as i32 as u32),
            )
        };
        let step = r.u8().unwrap_or(0) as i64;
        let len = r.u16().unwrap_or(0);
        let cut = r.u8().unwrap_or(0) as u32;
        let payload = r.take(len as usize);
        let wire_payload = payload.len() as u32 + cut;
        track.after(conn, dir, seq, wire_payload, flags);
        out.push(Segment {
            conn,
            from_server,
            udp: h & seg::UDP != 0,
            v6: h & seg::V6 != 0,
            flags,
            seq,
            ack,
            dt_ns: step * step * step * 1_000_000,
            wire_payload,
            payload,
        });
    }
    (ports, out)
}

/// Writes flow-table runs (seeds), tracking sequence numbers as the parser
/// does so that a real conversation's numbers come out as small offsets.
pub struct SegmentWriter {
    pub out: Vec<u8>,
    track: SeqTrack,
}

impl SegmentWriter {
    pub fn new(ports: u8) -> SegmentWriter {
        SegmentWriter { out: vec![ports], track: SeqTrack::default() }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn push(
        &mut self,
        conn: usize,
        from_server: bool,
        udp: bool,
        flags: u8,
        seq: u32,
        ack: u32,
        dt_ns: i64,
        payload: &[u8],
    ) {
        let dir = usize::from(from_server);
        let payload = payload.get(..u16::MAX as usize).unwrap_or(payload);
        let ds = seq.wrapping_sub(self.track.next(conn, dir)) as i32;
        let da = ack.wrapping_sub(self.track.next(conn, 1 - dir)) as i32;
        let relative = i16::try_from(ds).is_ok() && i16::try_from(da).is_ok();
        let mut h = (conn as u8 & seg::CONN_MASK) | if from_server { seg::FROM_SERVER } else { 0 };
        if udp {
            h |= seg::UDP;
        }
        if !relative {
            h |= seg::ABSOLUTE;
        }
        self.out.push(h);
        self.out.push(flags);
        if relative {
            self.out.extend_from_slice(&(ds as i16 as u16).to_le_bytes());
            self.out.extend_from_slice(&(da as i16 as u16).to_le_bytes());
        } else {
            self.out.extend_from_slice(&seq.to_le_bytes());
            self.out.extend_from_slice(&ack.to_le_bytes());
        }
        // The step whose cube (in ms) is nearest below the real gap.
        let ms = (dt_ns / 1_000_000).max(0);
        let step = (0..=255i64).take_while(|s| s * s * s <= ms).last().unwrap_or(0);
        self.out.push(step as u8);
        self.out.extend_from_slice(&(payload.len() as u16).to_le_bytes());
        self.out.push(0);
        self.out.extend_from_slice(payload);
        self.track.after(conn, dir, seq, payload.len() as u32, flags);
    }
}

/// The addresses of connection `conn` (client, server).
pub fn endpoints(conn: usize, v6: bool) -> (IpAddr, IpAddr) {
    let c = conn as u8;
    if v6 {
        (
            IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2 + c as u16)),
            IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1)),
        )
    } else {
        (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2 + c)), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)))
    }
}

impl Segment<'_> {
    /// The segment as the decoder would have decoded it, and its wire length.
    pub fn decoded(&self, server_port: u16) -> (Decoded<'_>, u32) {
        let (client, server) = endpoints(self.conn, self.v6);
        let client_port = 40000 + self.conn as u16;
        let ((src, sport), (dst, dport)) = if self.from_server {
            ((server, server_port), (client, client_port))
        } else {
            ((client, client_port), (server, server_port))
        };
        let (transport, transport_len) = if self.udp {
            (Transport::Udp, 8)
        } else {
            (Transport::Tcp(TcpHeader { seq: self.seq, ack: self.ack, flags: self.flags, window: 1000 }), 20)
        };
        let net_len = if self.v6 { 40 } else { 20 };
        let d = Decoded {
            src,
            dst,
            sport,
            dport,
            transport,
            link_len: 14,
            net_len,
            transport_len,
            payload_len: self.wire_payload,
            payload: self.payload,
        };
        (d, 14 + net_len + transport_len + self.wire_payload)
    }
}

/// A flow sink that checks what the flow table hands on: every flow's
/// classes add up to its wire bytes.
#[derive(Default)]
pub struct CheckingSink {
    pub ticks: u64,
    pub tick_bytes: u64,
    pub flow_bytes: u64,
    pub flows: u64,
    pub exchanges: u64,
}

impl FlowSink for CheckingSink {
    fn tick(&mut self, t: FrameTick) {
        self.ticks += 1;
        self.tick_bytes += t.wire_len as u64;
    }
    fn exchange_done(&mut self, _x: Exchange) {
        self.exchanges += 1;
    }
    fn flow_done(&mut self, rec: FlowRecord) {
        assert_eq!(rec.classes.total(), rec.wire_bytes, "flow {} classes {:?}", rec.id, rec.classes);
        self.flows += 1;
        self.flow_bytes += rec.wire_bytes;
    }
}

/// The dissector configuration with a key log.
pub fn config_with_keylog(text: &str) -> Arc<wiretax::dissect::Config> {
    Arc::new(wiretax::dissect::Config { keylog: Some(Arc::new(wiretax::keylog::KeyLog::parse(text))) })
}
