//! The fuzz targets (fuzz/fuzz_targets/, run by scripts/fuzz): their input
//! formats, what each feeds to which stage, and the checks they make. Here,
//! not in fuzz/, so that tests/fuzz_regressions.rs replays every crash the
//! fuzzers found through the very same code. Not part of the API.
//!
//! The formats are small and forgiving: any byte string is a valid input
//! (lengths past the end take what is left), so libFuzzer's mutations stay
//! meaningful. fuzz/src/bin/make-seeds.rs writes real conversations from
//! captures/ in them. A failed check panics: that is what a fuzzer reports.

use crate::analyze::Options;
use crate::capture::CaptureReader;
use crate::decode::{self, Decoded, Defragmenter, Frame, TcpHeader, Transport};
use crate::decrypt::{RecordKeys, Side, Suite, Tls12Options};
use crate::dissect::{self, Dir, Dissector, Emit, Event, FlowCtx, L4, ProtoStats, Span};
use crate::flow::{FlowConfig, FlowRecord, FlowSink, FlowTable, FrameTick};
use crate::keylog::{KeyLog, Secret};
use crate::ledger::Exchange;
use crate::report::Report;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::Arc;

/// Every target, by name: what `run` takes.
pub const TARGETS: [&str; 12] = [
    "capture",
    "decode",
    "tcp_flow",
    "dissect_tls",
    "dissect_http",
    "dissect_http2",
    "dissect_mqtt",
    "dissect_coap",
    "dissect_websocket",
    "dissect_dns",
    "keylog_decrypt",
    "pipeline",
];

/// Runs fuzz target `target` on `data`; false for an unknown target.
pub fn run(target: &str, data: &[u8]) -> bool {
    match target {
        "capture" => capture(data),
        "decode" => decode_frames(data),
        "tcp_flow" => tcp_flow(data),
        "dissect_tls" => dissect_tls(data),
        "dissect_http" => dissect_tcp(&dissect::http::PROTOCOL, 80, data),
        "dissect_http2" => dissect_http2(data),
        "dissect_mqtt" => dissect_tcp(&dissect::mqtt::PROTOCOL, 1883, data),
        "dissect_coap" => dissect_coap(data),
        "dissect_websocket" => dissect_websocket(data),
        "dissect_dns" => dissect_dns(data),
        "keylog_decrypt" => keylog_decrypt(data),
        "pipeline" => pipeline(data),
        _ => return false,
    }
    true
}

// ---------------------------------------------------------------------------
// The whole pipeline

/// Runs the whole pipeline over capture file bytes, as `wiretax --format
/// json` would over a file holding them, and returns the JSON report, or
/// why the bytes could not be read at all.
///
/// The analysis reads files, so the bytes go through a temporary file (in
/// `TMPDIR`; scripts/fuzz points it at memory when it can). To be pointed at
/// an in-memory entry point once the analysis has one.
pub fn analyze_bytes(bytes: &[u8]) -> Result<String, String> {
    let path = std::path::Path::new("fuzz-input");
    let reader = crate::capture::CaptureReader::from_read(path, Box::new(std::io::Cursor::new(bytes.to_vec())))
        .map_err(|e| e.to_string())?;
    let mut opts = Options::new();
    opts.jobs = 1;
    let result = crate::analyze::analyze_reader(reader, path, &opts);
    let report = Report::combine(vec![result.map_err(|e| e.to_string())?], Vec::new());
    let mut out = Vec::new();
    crate::report::json::write_pretty(&mut out, &report).map_err(|e| e.to_string())?;
    String::from_utf8(out).map_err(|e| e.to_string())
}

fn class_sum(classes: &serde_json::Value) -> u64 {
    classes.as_object().map_or(0, |m| m.values().filter_map(serde_json::Value::as_u64).sum())
}

/// Target `pipeline`: capture file bytes to the JSON report. Checks the
/// conservation law: the ledger classes add up to the wire bytes, in total
/// and per listed flow, and the report says no `notes.conservation_error`.
pub fn pipeline(data: &[u8]) {
    let Ok(json) = analyze_bytes(data) else { return };
    let report: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
    let totals = &report["totals"];
    assert_eq!(class_sum(&totals["classes"]), totals["wire_bytes"].as_u64().unwrap_or(u64::MAX), "totals: {totals}");
    for input in report["inputs"].as_array().into_iter().flatten() {
        assert!(input["notes"].get("conservation_error").is_none(), "{}", input["notes"]);
    }
    for flow in report["flows"].as_array().into_iter().flatten() {
        assert_eq!(class_sum(&flow["classes"]), flow["wire_bytes"].as_u64().unwrap_or(u64::MAX), "flow {flow}");
    }
}

// ---------------------------------------------------------------------------
// Capture readers

/// Hands out its bytes `step` at a time: records cut at every place a read
/// can end.
struct Pieces {
    data: Vec<u8>,
    at: usize,
    step: usize,
}

impl Read for Pieces {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let rest = self.data.get(self.at..).unwrap_or(&[]);
        let n = rest.len().min(buf.len()).min(self.step);
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), rest.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.at += n;
        Ok(n)
    }
}

/// Target `capture`: the pcap and pcapng readers on any bytes (the first
/// byte + 1: the size of the reads). Checks that no packet holds more bytes
/// than its wire length and that every packet is counted.
pub fn capture(data: &[u8]) {
    let Some((&step, capture)) = data.split_first() else { return };
    let src = Pieces { data: capture.to_vec(), at: 0, step: step as usize + 1 };
    let Ok(mut reader) = CaptureReader::from_read(Path::new("fuzz"), Box::new(src)) else { return };
    let mut packets = 0u64;
    let _ = reader.for_each(|p, _offset| {
        assert!(p.data.len() as u64 <= p.wire_len as u64, "{} bytes of a {}-byte frame", p.data.len(), p.wire_len);
        packets += 1;
    });
    assert_eq!(reader.stats().packets, packets);
}

// ---------------------------------------------------------------------------
// Link and IP decoding

fn check_frame(f: &Frame, wire: u32) {
    match f {
        Frame::Ip(d) => {
            assert_eq!(d.link_len + d.net_len + d.transport_len + d.payload_len, wire, "{d:?}");
            assert!(d.payload.len() as u64 <= d.payload_len as u64);
        }
        Frame::Fragment { link_len, net_len, .. } => assert!(link_len + net_len <= wire),
        Frame::Broken { link_len, .. } => assert!(*link_len <= wire),
        Frame::NotIp { .. } => {}
    }
}

/// Target `decode`: frames of any link type (`parse_frames`), decoded, and
/// fragments joined as the analysis joins them, within tight limits (four
/// datagrams, one second). Checks that the layers of a decoded frame add up
/// to its wire length, that a frame decoded as a fragment has a fragment
/// header, and that every fragment's wire bytes are accounted for, joined
/// or abandoned.
pub fn decode_frames(data: &[u8]) {
    let frames = parse_frames(data);
    let mut defrag = Defragmenter::new(4, 65_535 + 40, 1_000_000_000);
    let (mut fragment_bytes, mut joined_bytes) = (0u64, 0u64);
    for (i, f) in frames.iter().enumerate() {
        let ts = i as i64 * 100_000_000;
        let frame = decode::decode(f.linktype, f.data, f.wire_len);
        check_frame(&frame, f.wire_len);
        if let Frame::Fragment { link_len, .. } = frame {
            fragment_bytes += f.wire_len as u64;
            let ip = decode::link::strip(f.linktype, f.data).map(|(_, ip)| ip).unwrap_or(&[]);
            let h = decode::ip_header(ip, decode::wire_ip_len(f.wire_len, f.data, ip));
            let fi = h.and_then(|h| h.fragment);
            assert!(fi.is_some(), "a fragment without a fragment header: {h:?}");
            if let (Some(h), Some(fi)) = (h, fi)
                && let Some(j) = defrag.add(ts, &h, fi, ip, link_len)
            {
                joined_bytes += j.bytes.link + j.bytes.network + j.bytes.data;
                check_frame(&j.frame(), j.data.len() as u32);
            }
        }
    }
    defrag.finish();
    let a = defrag.abandoned;
    assert_eq!(fragment_bytes, joined_bytes + a.link + a.network + a.data);
}

// ---------------------------------------------------------------------------
// Flow table and TCP reassembly

/// Target `tcp_flow`: the flow table and TCP reassembly on segments with any
/// flags, sequence and acknowledgement numbers, lengths and snaplen cuts,
/// both directions of four connections (TCP or UDP, IPv4 or IPv6), from
/// milliseconds to hours apart (`parse_segments`), under tight memory
/// limits. Checks that every flow's classes add up to its wire bytes, every
/// frame is ticked once and every wire byte ends up in a flow.
pub fn tcp_flow(data: &[u8]) {
    let (ports, segments) = parse_segments(data);
    let cfg = FlowConfig {
        reassembly_cap: 4096,
        max_live_flows: 3,
        max_live_exchanges: 16,
        tcp_closed_linger_ns: 10_000_000_000,
        ..FlowConfig::default()
    };
    let mut table = FlowTable::new(cfg);
    let mut sink = CheckingSink::default();
    let mut ts = 1_700_000_000_000_000_000i64;
    let mut wire_total = 0u64;
    for (i, s) in segments.iter().enumerate() {
        ts += s.dt_ns;
        let (d, wire) = s.decoded(ports.get(s.conn).copied().unwrap_or(80));
        table.expire(ts, &mut sink);
        table.packet(i as u64, ts, wire, &d, 1, 0, &mut sink);
        wire_total += wire as u64;
    }
    table.finish_all(&mut sink);
    assert_eq!(sink.ticks, segments.len() as u64);
    assert_eq!(sink.tick_bytes, wire_total);
    assert_eq!(sink.flow_bytes, wire_total);
}

// ---------------------------------------------------------------------------
// Dissectors: a conversation (data cut in pieces of any size, gaps and
// pauses in both directions, then finish); each checks that every byte fed
// is in exactly one span.

fn ctx(l4: L4, server_port: u16) -> FlowCtx {
    FlowCtx { l4, server_port, cfg: Arc::new(dissect::Config::default()) }
}

/// Targets `dissect_http`, `dissect_mqtt`: a TCP protocol's dissector.
pub fn dissect_tcp(proto: &dissect::Protocol, port: u16, data: &[u8]) {
    let conv = Conversation::parse(data);
    let mut d = (proto.make)(&ctx(L4::Tcp, port));
    run_dissector(d.as_mut(), &conv);
}

/// Target `dissect_tls`: TLS over TCP, or DTLS (mode bit UDP), without a key
/// log (`keylog_decrypt` runs it with one).
pub fn dissect_tls(data: &[u8]) {
    let conv = Conversation::parse(data);
    let l4 = if conv.udp() { L4::Udp } else { L4::Tcp };
    let mut d = (dissect::tls::PROTOCOL.make)(&ctx(l4, 443));
    run_dissector(d.as_mut(), &conv);
}

/// Target `dissect_http2`: HTTP/2, and HPACK directly on the same bytes as
/// one header block under a small table.
pub fn dissect_http2(data: &[u8]) {
    dissect_tcp(&dissect::http2::PROTOCOL, 80, data);
    let mut hpack = dissect::hpack::Decoder::new(256);
    let _ = hpack.decode(data, |name, value| {
        std::hint::black_box((name, value));
    });
}

/// Target `dissect_coap`: CoAP datagrams.
pub fn dissect_coap(data: &[u8]) {
    let mut conv = Conversation::parse(data);
    conv.mode |= mode::UDP;
    let mut d = (dissect::coap::PROTOCOL.make)(&ctx(L4::Udp, 5683));
    run_dissector(d.as_mut(), &conv);
}

/// Target `dissect_dns`: DNS over TCP, or UDP (mode bit).
pub fn dissect_dns(data: &[u8]) {
    let conv = Conversation::parse(data);
    let l4 = if conv.udp() { L4::Udp } else { L4::Tcp };
    let mut d = (dissect::dns::PROTOCOL.make)(&ctx(l4, 53));
    run_dissector(d.as_mut(), &conv);
}

/// Target `dissect_websocket`: WebSocket as entered from HTTP after an
/// Upgrade (mode bit EXTRA: carrying MQTT).
pub fn dissect_websocket(data: &[u8]) {
    let conv = Conversation::parse(data);
    let mut d = dissect::websocket::WebSocket::new(&ctx(L4::Tcp, 80), conv.mode & mode::EXTRA != 0, 1);
    run_dissector(&mut d, &conv);
}

// ---------------------------------------------------------------------------
// Key logs and decryption

/// Suites the direct record mode of `keylog_decrypt` picks from.
const SUITES: [u16; 16] = [
    0x1301, 0x1302, 0x1303, 0x1304, 0x1305, 0xc02f, 0xc030, 0xcca8, 0xc0ac, 0xc0ae, 0x003c, 0x002f, 0x009d, 0xc028,
    0x0035, 0xc0a2,
];

/// Keys made from the input, and records opened with them: a selector byte
/// (suite, DTLS, server side, encrypt-then-MAC), the secrets, then
/// operations (KeyUpdate, a lost record, or a record: header, two-byte
/// length, body).
fn open_records(data: &[u8]) {
    let mut r = Reader::new(data);
    let sel = r.u8().unwrap_or(0);
    let Some(suite) = SUITES.get((sel & 15) as usize).and_then(|&id| Suite::from_id(id)) else { return };
    let dtls = sel & 16 != 0;
    let keys = if suite.tls13 {
        RecordKeys::tls13(suite, &Secret::new(r.take(suite.hash.output_len()).to_vec()))
    } else {
        let (master, client, server) = (r.take(48), r.take(32), r.take(32));
        let side = if sel & 32 != 0 { Side::Server } else { Side::Client };
        let opts = Tls12Options { dtls, encrypt_then_mac: sel & 64 != 0 };
        RecordKeys::tls12(suite, master, client, server, side, opts)
    };
    let Ok(mut keys) = keys else { return };
    while let Some(op) = r.u8() {
        match op & 3 {
            0 => {
                let _ = keys.key_update();
            }
            1 => keys.skip_record(),
            _ => {
                let header = r.take(if dtls { 13 } else { 5 });
                let len = r.u16().unwrap_or(0) as usize;
                let body = r.take(len);
                if let Ok(o) = keys.open(header, body) {
                    assert!(o.pre + o.plaintext.len() <= body.len(), "{} + {} of {}", o.pre, o.plaintext.len(), len);
                }
            }
        }
    }
}

/// Target `keylog_decrypt`: key log text, a NUL, then either (mode bit 0x80
/// clear) a conversation for the TLS dissector holding that key log, so
/// handshakes are followed and records decrypted as in a capture, or (bit
/// set) records opened directly (`open_records`).
pub fn keylog_decrypt(data: &[u8]) {
    let (text, rest) = match data.iter().position(|&b| b == 0) {
        Some(i) => (data.get(..i).unwrap_or(&[]), data.get(i + 1..).unwrap_or(&[])),
        None => (data, &[][..]),
    };
    let text = String::from_utf8_lossy(text);
    let log = KeyLog::parse(&text);
    assert!(log.sessions() <= log.secret_lines());
    if let Some((&m, records)) = rest.split_first()
        && m & 0x80 != 0
    {
        open_records(records);
        return;
    }
    let conv = Conversation::parse(rest);
    let l4 = if conv.udp() { L4::Udp } else { L4::Tcp };
    let ctx = FlowCtx { l4, server_port: 443, cfg: config_with_keylog(&text) };
    let mut d = (dissect::tls::PROTOCOL.make)(&ctx);
    run_dissector(d.as_mut(), &conv);
}

// ---------------------------------------------------------------------------
// Input formats

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
pub struct FrameRecord<'a> {
    pub linktype: u16,
    pub wire_len: u32,
    pub data: &'a [u8],
}

pub fn parse_frames(data: &[u8]) -> Vec<FrameRecord<'_>> {
    let mut r = Reader::new(data);
    let mut out = Vec::new();
    while let Some(sel) = r.u8() {
        let cut = r.u8().unwrap_or(0) as u32;
        let len = r.u16().unwrap_or(0);
        let data = r.take(len as usize);
        let linktype = LINKTYPES.get(sel as usize).copied().unwrap_or(sel as u16);
        out.push(FrameRecord { linktype, wire_len: data.len() as u32 + cut, data });
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
        let ctl = u32::from(flags & (crate::decode::tcp_flags::SYN | crate::decode::tcp_flags::FIN) != 0);
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
            marks: crate::decode::Marks::NONE,
            teid: None,
            link_ids: crate::decode::LinkIds::default(),
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
pub fn config_with_keylog(text: &str) -> Arc<dissect::Config> {
    Arc::new(dissect::Config { keylog: Some(Arc::new(KeyLog::parse(text))), ..Default::default() })
}
