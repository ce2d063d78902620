//! HTTP/1.0 and HTTP/1.1 over TCP.
//!
//! Start lines, header blocks, chunk-size lines, chunk CRLFs and trailers are
//! `app_header`; message bodies (after de-chunking) are `payload`. Bodies are
//! never buffered: only an incomplete header block or chunk line is held
//! back until it is whole. Responses pair with requests first in, first out
//! (pipelining); `1xx` interim responses precede the final one. After a
//! `101 Switching Protocols` the connection is handed to the WebSocket or
//! HTTP/2 dissector; after a `2xx` to `CONNECT` what follows is a new
//! stream, recognised again (TLS, usually).

use super::tally::{Decimal, Tally, TallyKeys};
use super::{Proto, Dir, PerDir, Dissector, Emit, Event, FlowCtx, L4, MsgRef, OTHER, Probe, Protocol, bump, truncated};
use crate::vocab::{Class, Facets, Method, resource_hash};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::borrow::Cow;
use std::mem::MaybeUninit;

pub static PROTOCOL: Protocol =
    Protocol { id: Proto::Http, l4: &[L4::Tcp], ports: &[80, 8080, 8000, 8088, 2375], probe, make };

/// Request methods the probe and the statistics know by name.
const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE"];
/// Most bytes a start line plus header block may take (nginx's default
/// large_client_header_buffers is 4 x 8 KiB; this is generous).
const MAX_HEADER_BLOCK: usize = 64 * 1024;
/// Most bytes of a chunk-size or trailer line.
const MAX_LINE: usize = 8 * 1024;
/// Most bytes a client may send after an upgrade request before the server
/// answers (they are held until the answer says which protocol they are).
const MAX_EARLY_UPGRADE_BYTES: usize = 64 * 1024;
/// Requests waiting for their responses, per connection.
const MAX_PENDING_REQUESTS: usize = 1024;
const MAX_HEADERS: usize = 128;
/// Longest exchange description ("GET /path").
const MAX_WHAT: usize = 200;
/// Successful answers without validators up to this size are hashed (for
/// `duplicate-content`); CRC-32 streams at memory speed.
const MAX_HASHED_BODY: u64 = 1 << 20;
/// Text bodies of at least this size, and at most the next, are kept to be
/// compressed once whole (for `uncompressed-text`): smaller ones gain
/// nothing from gzip, larger ones are measured by their first part...
const MIN_SAMPLED_BODY: u64 = 256;
const MAX_SAMPLED_BODY: usize = 16 * 1024;
/// ...and at most this many a connection each way: the rest are counted,
/// the detector applies the measured ratio to them.
const SAMPLED_PER_SIDE: u8 = 4;

fn probe(_l4: L4, dir: Dir, first: &[u8]) -> Probe {
    match dir {
        Dir::C2S => probe_request(first),
        Dir::S2C if is_status_line_start(first) => Probe::Yes,
        Dir::S2C => Probe::No,
    }
}

/// A known method and a space, then " HTTP/1." on the same line.
fn probe_request(b: &[u8]) -> Probe {
    if method_prefix(b).is_none() {
        return Probe::No;
    }
    let line_end = memchr::memchr(b'\n', b);
    let line = line_end.and_then(|e| b.get(..e)).unwrap_or(b);
    if memchr::memmem::find(line, b" HTTP/1.").is_some() {
        Probe::Yes
    } else if line_end.is_none() {
        Probe::Maybe
    } else {
        Probe::No
    }
}

/// Length of a known method plus its space at the start of `b`.
fn method_prefix(b: &[u8]) -> Option<usize> {
    METHODS.iter().find_map(|m| {
        let m = m.as_bytes();
        (b.starts_with(m) && b.get(m.len()) == Some(&b' ')).then_some(m.len() + 1)
    })
}

/// "HTTP/1.x NNN" with three digits.
fn is_status_line_start(b: &[u8]) -> bool {
    match b.get(..12) {
        Some([b'H', b'T', b'T', b'P', b'/', b'1', b'.', minor, b' ', status @ ..]) => {
            minor.is_ascii_digit() && status.iter().all(u8::is_ascii_digit)
        }
        _ => false,
    }
}

fn make(ctx: &FlowCtx) -> Box<dyn Dissector> {
    Box::new(Http1::new(ctx))
}

/// The `http` section of the report.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Stats {
    pub requests: u64,
    /// Interim (1xx) responses included.
    pub responses: u64,
    pub status_codes: Tally<Decimal>,
    pub methods: Tally<Methods>,
    pub request_versions: Tally<Versions>,
    pub response_versions: Tally<Versions>,
    pub request_header_bytes: u64,
    pub request_body_bytes: u64,
    pub response_header_bytes: u64,
    pub response_body_bytes: u64,
    /// TCP connections that carried HTTP/1.x.
    pub connections: u64,
    pub requests_per_connection_max: u64,
    pub chunked_requests: u64,
    pub chunked_responses: u64,
    /// Successful protocol switches by target ("websocket", "h2c", "connect").
    pub upgrades: BTreeMap<String, u64>,
    pub hosts: BTreeMap<String, u64>,
    /// Byte runs that could not be parsed as HTTP.
    pub malformed: u64,
}

impl Stats {
    pub fn merge(&mut self, o: &Stats) {
        self.requests += o.requests;
        self.responses += o.responses;
        self.status_codes.merge(&o.status_codes);
        self.methods.merge(&o.methods);
        self.request_versions.merge(&o.request_versions);
        self.response_versions.merge(&o.response_versions);
        for (a, b) in [
            (&mut self.upgrades, &o.upgrades),
            (&mut self.hosts, &o.hosts),
        ] {
            for (k, n) in b {
                bump(a, k, *n);
            }
        }
        self.request_header_bytes += o.request_header_bytes;
        self.request_body_bytes += o.request_body_bytes;
        self.response_header_bytes += o.response_header_bytes;
        self.response_body_bytes += o.response_body_bytes;
        self.connections += o.connections;
        self.requests_per_connection_max = self.requests_per_connection_max.max(o.requests_per_connection_max);
        self.chunked_requests += o.chunked_requests;
        self.chunked_responses += o.chunked_responses;
        self.malformed += o.malformed;
    }
}

/// What a side's parser expects next.
#[derive(Clone, Copy, Debug, PartialEq)]
enum State {
    /// A start line (blank lines before it are tolerated).
    Start,
    /// `left` bytes of a Content-Length body.
    Body {
        left: u64,
        msg: MsgRef,
    },
    ChunkSize {
        msg: MsgRef,
    },
    ChunkData {
        left: u64,
        msg: MsgRef,
    },
    /// The CRLF after a chunk's data.
    ChunkEnd {
        msg: MsgRef,
    },
    /// Trailer lines after the last chunk, up to an empty line.
    Trailers {
        msg: MsgRef,
    },
    /// A response body delimited by the end of the connection.
    UntilClose {
        msg: MsgRef,
    },
    /// The client asked to switch protocols; what it sends next is held
    /// until the server's answer says how to read it.
    AwaitUpgrade,
    /// The connection switched protocols: bytes go to `Http1::tunnel`.
    Tunnel,
    /// Lost framing; `junk` bytes skipped so far while looking for the next
    /// start line; `line_start`: the next byte begins a line.
    Lost {
        junk: u64,
        line_start: bool,
    },
}

/// What the findings learn of a body as it goes by: its hash, a sample to
/// compress, its chunks and records. Set up only for the bodies a detector
/// needs; nothing else is kept of a body.
#[derive(Clone, Debug, Default)]
struct BodyProbe {
    /// The exchange the body belongs to.
    id: u32,
    hash: Option<crc32fast::Hasher>,
    len: u64,
    /// A text body, not content-coded.
    text: bool,
    sample: Option<Vec<u8>>,
    /// Lost to a capture gap: the hash and sample mean nothing.
    broken: bool,
    chunks: u32,
    /// A request's body: its records are looked for.
    up: bool,
    /// First and latest non-blank bytes, line breaks, an array of objects
    /// (`[{`): a request's records.
    first: u8,
    nonblank: u8,
    newlines: u32,
    last: u8,
    records: bool,
}

impl BodyProbe {
    fn feed(&mut self, data: Option<&[u8]>) {
        let Some(d) = data else {
            self.broken = true;
            return;
        };
        self.len += d.len() as u64;
        if let Some(h) = self.hash.as_mut() {
            h.update(d);
        }
        if self.text && self.up {
            // Byte by byte, so that how the body was cut makes no difference.
            for &c in d.iter().filter(|c| !c.is_ascii_whitespace()) {
                if self.first == 0 {
                    self.first = c;
                }
                self.records |= self.nonblank == b'[' && c == b'{';
                self.nonblank = c;
            }
            self.newlines = self.newlines.saturating_add(memchr::memchr_iter(b'\n', d).count() as u32);
            if let Some(c) = d.last() {
                self.last = *c;
            }
        }
        if let Some(s) = self.sample.as_mut() {
            let room = MAX_SAMPLED_BODY.saturating_sub(s.len());
            s.extend_from_slice(d.get(..room.min(d.len())).unwrap_or(&[]));
        }
    }

    /// What the body showed, as facets of its exchange (`up`: a request's).
    fn facets(self, up: bool) -> Facets {
        let mut f = Facets::default();
        if self.broken {
            return f;
        }
        if let Some(h) = self.hash.filter(|_| self.len > 0) {
            f.body_hash = (self.len.min(u64::from(u32::MAX)) << 32) | u64::from(h.finalize()) | 1 << 63;
        }
        if self.text && self.len > 0 {
            f.text = if up { 1 } else { 2 };
        }
        let deflated = self.sample.filter(|s| s.len() as u64 == self.len && self.len >= MIN_SAMPLED_BODY).and_then(|s| gzip_len(&s));
        if up {
            f.deflated_up = deflated.unwrap_or(0);
            f.chunks_up = self.chunks;
            // Several records: a JSON array (of objects, or at the top),
            // or several lines of NDJSON.
            let lines = self.newlines + u32::from(self.last != b'\n');
            f.batch = self.text && (self.first == b'[' || self.records || lines >= 2);
        } else {
            f.deflated_down = deflated.unwrap_or(0);
        }
        f
    }
}

/// Size of `body` gzip-compressed at level 1 (what nginx's gzip does by default).
fn gzip_len(body: &[u8]) -> Option<u32> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 2), flate2::Compression::fast());
    e.write_all(body).ok()?;
    u32::try_from(e.finish().ok()?.len()).ok()
}

/// A media type whose bodies are text (JSON, XML, text/*, NDJSON, forms):
/// what gzip shrinks.
fn is_text_type(v: &[u8]) -> bool {
    let t = v.split(|c| *c == b';').next().unwrap_or(&[]);
    let t = trim_ascii(t);
    // Compared without case, in place: a lowercase copy was an allocation
    // for every message with a Content-Type.
    let ends = |p: &[u8]| t.len().checked_sub(p.len()).and_then(|i| t.get(i..)).is_some_and(|h| h.eq_ignore_ascii_case(p));
    starts_without_case(t, b"text/")
        || ends(b"json")
        || ends(b"xml")
        || ends(b"javascript")
        || ends(b"x-www-form-urlencoded")
        || ends(b"csv")
}

/// `v` starts with `prefix`, ASCII case aside.
fn starts_without_case(v: &[u8], prefix: &[u8]) -> bool {
    v.get(..prefix.len()).is_some_and(|h| h.eq_ignore_ascii_case(prefix))
}

#[derive(Clone, Debug)]
struct Side {
    state: State,
    /// An incomplete header block or line, held until it is whole.
    held: Vec<u8>,
    /// How far the held header block was already searched for its end.
    scanned: usize,
    /// Why framing was last lost.
    lost_reason: &'static str,
    /// The current body's probe, when a detector needs it.
    probe: Option<BodyProbe>,
    /// Bodies sampled for compression on this side so far.
    sampled: u8,
}

impl Default for Side {
    fn default() -> Self {
        Side { state: State::Start, held: Vec::new(), scanned: 0, lost_reason: "", probe: None, sampled: 0 }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Upgrade {
    WebSocket,
    H2c,
    Connect,
}

impl Upgrade {
    fn name(self) -> &'static str {
        match self {
            Upgrade::WebSocket => "websocket",
            Upgrade::H2c => "h2c",
            Upgrade::Connect => "connect",
        }
    }
}

/// A request waiting for (the end of) its response.
#[derive(Clone, Debug)]
struct Pending {
    msg: MsgRef,
    what: String,
    head: bool,
    /// A GET: its answer may repeat (`duplicate-content`).
    get: bool,
    upgrade: Option<Upgrade>,
    header_bytes: u64,
    responded: bool,
}

/// Requests waiting for their responses, oldest first. A connection nearly
/// always has at most one at a time: it is kept inline, so most connections
/// never allocate a queue.
#[derive(Clone, Debug, Default)]
struct PendingQueue {
    /// The oldest; `None` only when `later` is empty too.
    first: Option<Pending>,
    later: VecDeque<Pending>,
}

impl PendingQueue {
    fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.later.len()
    }

    fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    fn push_back(&mut self, p: Pending) {
        if self.first.is_none() {
            self.first = Some(p);
        } else {
            self.later.push_back(p);
        }
    }

    fn pop_front(&mut self) -> Option<Pending> {
        let oldest = self.first.take();
        self.first = self.later.pop_front();
        oldest
    }

    fn front(&self) -> Option<&Pending> {
        self.first.as_ref()
    }

    fn front_mut(&mut self) -> Option<&mut Pending> {
        self.first.as_mut()
    }

    fn back(&self) -> Option<&Pending> {
        self.later.back().or(self.first.as_ref())
    }
}

/// Where the line at the start of the input ends.
enum Line {
    End(usize),
    NeedMore,
    /// Too long to be a line: framing lost.
    Lost,
}

enum Step {
    /// This many bytes were handled (0: the state changed, look again).
    Used(usize),
    NeedMore,
}

/// Header fields the dissector acts on.
#[derive(Clone, Default)]
struct Fields<'h> {
    content_length: Option<u64>,
    bad_length: bool,
    chunked: bool,
    /// Transfer-Encoding present but not ending in chunked.
    other_coding: bool,
    conn_upgrade: bool,
    upgrade: Option<Upgrade>,
    /// Cache validators or freshness (ETag, Last-Modified, Cache-Control, Expires).
    validators: bool,
    /// Content-Encoding present.
    encoded: bool,
    /// A conditional request (If-None-Match, If-Modified-Since).
    conditional: bool,
    /// Content-Type is text (`is_text_type`).
    text: bool,
    /// Borrowed from the header block: most requests name a host, and
    /// copying it for every one cost more than counting it.
    host: Option<Cow<'h, str>>,
    ws_protocol_mqtt: bool,
}

/// The header fields `fields` acts on.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Known {
    ContentLength,
    TransferEncoding,
    Connection,
    Upgrade,
    Host,
    WsProtocol,
    Validator,
    ContentEncoding,
    Conditional,
    ContentType,
}

/// Which known field `name` is. Most headers are none of them: their length
/// says so before any comparison.
fn known_field(name: &str) -> Option<Known> {
    // Each arm compares with a literal of the arm's length: unrolled.
    match name.len() {
        4 if is_named(name, "host") => Some(Known::Host),
        4 if is_named(name, "etag") => Some(Known::Validator),
        7 if is_named(name, "upgrade") => Some(Known::Upgrade),
        7 if is_named(name, "expires") => Some(Known::Validator),
        10 if is_named(name, "connection") => Some(Known::Connection),
        12 if is_named(name, "content-type") => Some(Known::ContentType),
        13 if is_named(name, "cache-control") || is_named(name, "last-modified") => Some(Known::Validator),
        13 if is_named(name, "if-none-match") => Some(Known::Conditional),
        14 if is_named(name, "content-length") => Some(Known::ContentLength),
        16 if is_named(name, "content-encoding") => Some(Known::ContentEncoding),
        17 if is_named(name, "transfer-encoding") => Some(Known::TransferEncoding),
        17 if is_named(name, "if-modified-since") => Some(Known::Conditional),
        22 if is_named(name, "sec-websocket-protocol") => Some(Known::WsProtocol),
        _ => None,
    }
}

/// `name.eq_ignore_ascii_case(lower)` where `lower` holds only lowercase
/// ASCII letters and '-', without a branch per byte: where `lower` has a
/// letter (bit 0x40 set) the name byte may differ in the case bit 0x20
/// alone; a '-' must match exactly.
#[inline(always)]
fn is_named(name: &str, lower: &str) -> bool {
    name.len() == lower.len()
        && name.bytes().zip(lower.bytes()).fold(0, |diff, (c, l)| diff | ((c | ((l & 0x40) >> 1)) ^ l)) == 0
}

fn fields<'h>(headers: &[httparse::Header<'h>]) -> Fields<'h> {
    let mut f = Fields::default();
    for h in headers {
        // Only the values of known fields are decoded.
        let Some(known) = known_field(h.name) else { continue };
        if known == Known::Validator {
            f.validators = true;
        } else if known == Known::ContentEncoding {
            f.encoded |= !trim_ascii(h.value).eq_ignore_ascii_case(b"identity");
        } else if known == Known::Conditional {
            f.conditional = true;
        } else if known == Known::ContentType {
            f.text = is_text_type(h.value);
        } else if known == Known::Host {
            // Values are nearly always valid UTF-8 (ASCII): checking is
            // cheaper than the lossy decoder, which gives the same string then.
            f.host = Some(match std::str::from_utf8(h.value) {
                Ok(s) => truncated(s.trim(), MAX_WHAT),
                Err(_) => Cow::Owned(truncate(String::from_utf8_lossy(h.value).trim(), MAX_WHAT)),
            });
        } else if h.value.is_ascii() {
            // ASCII (nearly always): read as bytes, no decoding.
            f.note_ascii(known, trim_ascii(h.value));
        } else {
            f.note_text(known, String::from_utf8_lossy(h.value).trim());
        }
    }
    f
}

impl Fields<'_> {
    /// Notes the value `v` (trimmed, ASCII) of a known field other than Host.
    /// Gives what `note_text` gives for the same text.
    fn note_ascii(&mut self, known: Known, v: &[u8]) {
        let is_comma = |c: &u8| *c == b',';
        match known {
            Known::ContentLength => match parse_decimal(v) {
                Some(n) if self.content_length.is_none_or(|m| m == n) => self.content_length = Some(n),
                _ => self.bad_length = true,
            },
            Known::TransferEncoding => {
                let last = v.rsplit(is_comma).next().unwrap_or(&[]);
                self.chunked = trim_ascii(last).eq_ignore_ascii_case(b"chunked");
                self.other_coding = !self.chunked;
            }
            Known::Connection => {
                self.conn_upgrade |= v.split(is_comma).any(|t| trim_ascii(t).eq_ignore_ascii_case(b"upgrade"));
            }
            Known::Upgrade => {
                let first = trim_ascii(v.split(is_comma).next().unwrap_or(&[]));
                if first.eq_ignore_ascii_case(b"websocket") {
                    self.upgrade = Some(Upgrade::WebSocket);
                } else if first.eq_ignore_ascii_case(b"h2c") {
                    self.upgrade = Some(Upgrade::H2c);
                }
            }
            Known::WsProtocol => {
                // A token starting with "mqtt", any case.
                self.ws_protocol_mqtt |= v
                    .split(is_comma)
                    .any(|t| starts_without_case(trim_ascii(t), b"mqtt"));
            }
            Known::Host | Known::Validator | Known::ContentEncoding | Known::Conditional | Known::ContentType => {}
        }
    }

    /// Notes the value `v` (decoded, trimmed) of a known field other than Host.
    fn note_text(&mut self, known: Known, v: &str) {
        match known {
            Known::ContentLength => match v.parse::<u64>() {
                Ok(n) if self.content_length.is_none_or(|m| m == n) => self.content_length = Some(n),
                _ => self.bad_length = true,
            },
            Known::TransferEncoding => {
                let last = v.rsplit(',').next().unwrap_or("").trim();
                self.chunked = last.eq_ignore_ascii_case("chunked");
                self.other_coding = !self.chunked;
            }
            Known::Connection => {
                self.conn_upgrade |= v.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
            }
            Known::Upgrade => {
                let first = v.split(',').next().unwrap_or("").trim();
                if first.eq_ignore_ascii_case("websocket") {
                    self.upgrade = Some(Upgrade::WebSocket);
                } else if first.eq_ignore_ascii_case("h2c") {
                    self.upgrade = Some(Upgrade::H2c);
                }
            }
            Known::WsProtocol => {
                // A token starting with "mqtt", any case.
                self.ws_protocol_mqtt |=
                    v.split(',').any(|t| starts_without_case(t.trim().as_bytes(), b"mqtt"));
            }
            Known::Host | Known::Validator | Known::ContentEncoding | Known::Conditional | Known::ContentType => {}
        }
    }
}

/// `b` without the ASCII whitespace `str::trim` removes at either end
/// (U+000B included, unlike `u8::is_ascii_whitespace`).
fn trim_ascii(b: &[u8]) -> &[u8] {
    let space = |c: &u8| matches!(c, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ');
    let start = b.iter().position(|c| !space(c)).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !space(c)).map_or(start, |p| p + 1);
    b.get(start..end).unwrap_or(&[])
}

/// What `str::parse::<u64>` makes of `b`: an optional '+', then decimal
/// digits, no overflow.
fn parse_decimal(b: &[u8]) -> Option<u64> {
    let digits = match b {
        [b'+', rest @ ..] => rest,
        _ => b,
    };
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &c| {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(d))
    })
}

fn truncate(s: &str, max: usize) -> String {
    truncated(s, max).into_owned()
}

/// "METHOD path", cut to `MAX_WHAT` characters like `truncate`.
fn describe_request(method: &str, path: &str) -> String {
    let mut what = String::with_capacity(method.len() + 1 + path.len());
    what.push_str(method);
    what.push(' ');
    what.push_str(path);
    if what.len() > MAX_WHAT
        && let Some((i, _)) = what.char_indices().nth(MAX_WHAT)
    {
        what.truncate(i);
        what.push_str("...");
    }
    what
}

/// "METHOD path code" from a request's description.
fn describe_response(request_what: &str, code: u16) -> String {
    let mut digits = itoa::Buffer::new();
    let code = digits.format(code);
    let mut what = String::with_capacity(request_what.len() + 1 + code.len());
    what.push_str(request_what);
    what.push(' ');
    what.push_str(code);
    what
}

/// Responses are read as leniently as browsers do.
fn response_parser() -> httparse::ParserConfig {
    let mut c = httparse::ParserConfig::default();
    c.allow_spaces_after_header_name_in_responses(true)
        .allow_obsolete_multiline_headers_in_responses(true)
        .allow_multiple_spaces_in_response_status_delimiters(true);
    c
}

/// The methods counted by name; any other counts as "other".
pub struct Methods;

impl TallyKeys for Methods {
    fn name(i: usize) -> Cow<'static, str> {
        Cow::Borrowed(METHODS.get(i).copied().unwrap_or(OTHER))
    }
}

fn method_index(method: &str) -> usize {
    METHODS.iter().position(|m| *m == method).unwrap_or(METHODS.len())
}

pub struct Versions;

const VERSIONS: [&str; 3] = ["HTTP/1.0", "HTTP/1.1", "HTTP/1.x"];

impl TallyKeys for Versions {
    fn name(i: usize) -> Cow<'static, str> {
        Cow::Borrowed(VERSIONS.get(i).copied().unwrap_or(VERSIONS[2]))
    }
}

fn version_index(v: Option<u8>) -> usize {
    match v {
        Some(0) => 0,
        Some(1) => 1,
        _ => 2,
    }
}

/// The HTTP/1.x dissector of one TCP connection.
#[derive(Clone)]
pub struct Http1 {
    ctx: FlowCtx,
    sides: PerDir<Side>,
    pending: PendingQueue,
    next_id: u32,
    counted_connection: bool,
    requests_here: u64,
    /// The protocol the connection switched to.
    tunnel: Option<Box<dyn Dissector>>,
}

impl Http1 {
    pub fn new(ctx: &FlowCtx) -> Http1 {
        Http1 {
            ctx: ctx.clone(),
            sides: PerDir::default(),
            pending: PendingQueue::default(),
            next_id: 1,
            counted_connection: false,
            requests_here: 0,
            tunnel: None,
        }
    }

    fn new_id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.saturating_add(1);
        id
    }

    fn note_connection(&mut self, emit: &mut Emit) {
        if !self.counted_connection {
            self.counted_connection = true;
            emit.stats.http.connections += 1;
        }
    }

    /// Frames as much of `b` as possible; returns the bytes handled. The
    /// rest is an incomplete header block or line.
    fn consume(&mut self, dir: Dir, b: &[u8], emit: &mut Emit) -> usize {
        let mut off = 0;
        let mut idle = 0;
        while off < b.len() {
            let rest = b.get(off..).unwrap_or(&[]);
            match self.step(dir, rest, emit) {
                Step::Used(0) => {
                    // A state change without progress; more than a few in a
                    // row would be a loop.
                    idle += 1;
                    if idle > 4 {
                        break;
                    }
                }
                Step::Used(n) => {
                    idle = 0;
                    off += n.min(rest.len());
                }
                Step::NeedMore => break,
            }
        }
        off
    }

    fn step(&mut self, dir: Dir, b: &[u8], emit: &mut Emit) -> Step {
        match self.sides[dir].state {
            State::Start => self.start(dir, b, emit),
            State::Body { left, msg } => {
                let n = left.min(b.len() as u64);
                self.body_bytes(dir, n, left, msg, b.get(..n as usize), emit);
                Step::Used(n as usize)
            }
            State::ChunkSize { msg } => {
                let end = match self.line_end(dir, b, emit) {
                    Line::End(end) => end,
                    Line::NeedMore => return Step::NeedMore,
                    Line::Lost => return Step::Used(0),
                };
                let line = b.get(..end).unwrap_or(b);
                let digits = line.iter().take_while(|c| c.is_ascii_hexdigit()).count();
                let size = std::str::from_utf8(line.get(..digits).unwrap_or(&[])).ok().and_then(|s| u64::from_str_radix(s, 16).ok());
                match size {
                    Some(size) if digits > 0 => {
                        self.header(dir, end, msg, emit);
                        if size > 0
                            && let Some(p) = self.sides[dir].probe.as_mut()
                        {
                            p.chunks = p.chunks.saturating_add(1);
                        }
                        self.sides[dir].state =
                            if size == 0 { State::Trailers { msg } } else { State::ChunkData { left: size, msg } };
                        Step::Used(end)
                    }
                    _ => self.lose(dir, "bad chunk size line", emit),
                }
            }
            State::ChunkData { left, msg } => {
                let n = left.min(b.len() as u64);
                self.body_bytes(dir, n, left, msg, b.get(..n as usize), emit);
                Step::Used(n as usize)
            }
            State::ChunkEnd { msg } => {
                let n = match b {
                    [b'\n', ..] => 1,
                    [b'\r', b'\n', ..] => 2,
                    [b'\r'] => return Step::NeedMore,
                    _ => return self.lose(dir, "chunk data not followed by CRLF", emit),
                };
                self.header(dir, n, msg, emit);
                self.sides[dir].state = State::ChunkSize { msg };
                Step::Used(n)
            }
            State::Trailers { msg } => {
                let end = match self.line_end(dir, b, emit) {
                    Line::End(end) => end,
                    Line::NeedMore => return Step::NeedMore,
                    Line::Lost => return Step::Used(0),
                };
                self.header(dir, end, msg, emit);
                if matches!(b.get(..end), Some(b"\n" | b"\r\n")) {
                    self.end_message(dir, emit);
                }
                Step::Used(end)
            }
            State::UntilClose { msg } => {
                self.body(dir, b.len() as u64, msg, Some(b), emit);
                Step::Used(b.len())
            }
            State::AwaitUpgrade => Step::NeedMore,
            State::Tunnel => {
                match self.tunnel.as_mut() {
                    Some(t) => t.data(dir, b, emit),
                    None => emit.span(Class::Payload, b.len() as u64, MsgRef::Flow),
                }
                Step::Used(b.len())
            }
            State::Lost { junk, line_start } => self.resync(dir, b, junk, line_start, emit),
        }
    }

    /// Counts `n` body bytes (`data`, when the capture has them).
    fn body(&mut self, dir: Dir, n: u64, msg: MsgRef, data: Option<&[u8]>, emit: &mut Emit) {
        if let Some(p) = self.sides[dir].probe.as_mut() {
            p.feed(data);
        }
        emit.span(Class::Payload, n, msg);
        Self::count_body(dir, n, emit);
    }

    /// Body statistics; bytes missing from the capture count too (they were
    /// sent), though the flow stage classifies them.
    fn count_body(dir: Dir, n: u64, emit: &mut Emit) {
        match dir {
            Dir::C2S => emit.stats.http.request_body_bytes += n,
            Dir::S2C => emit.stats.http.response_body_bytes += n,
        }
    }

    /// Counts `n <= left` bytes of a length-delimited body or chunk and
    /// moves on when it is complete. `data`: `None` when lost to the
    /// capture (no span).
    fn body_bytes(&mut self, dir: Dir, n: u64, left: u64, msg: MsgRef, data: Option<&[u8]>, emit: &mut Emit) {
        if data.is_some() {
            self.body(dir, n, msg, data, emit);
        } else {
            if let Some(p) = self.sides[dir].probe.as_mut() {
                p.feed(None);
            }
            Self::count_body(dir, n, emit);
        }
        let left = left.saturating_sub(n);
        match self.sides[dir].state {
            State::Body { .. } if left == 0 => self.end_message(dir, emit),
            State::Body { .. } => self.sides[dir].state = State::Body { left, msg },
            State::ChunkData { .. } if left == 0 => self.sides[dir].state = State::ChunkEnd { msg },
            State::ChunkData { .. } => self.sides[dir].state = State::ChunkData { left, msg },
            _ => {}
        }
    }

    /// Counts `n` framing bytes of a message.
    fn header(&mut self, dir: Dir, n: usize, msg: MsgRef, emit: &mut Emit) {
        emit.span(Class::AppHeader, n as u64, msg);
        match dir {
            Dir::C2S => emit.stats.http.request_header_bytes += n as u64,
            Dir::S2C => emit.stats.http.response_header_bytes += n as u64,
        }
    }

    /// End (exclusive) of the line at the start of `b`, when whole. A line
    /// longer than `MAX_LINE` loses the framing.
    fn line_end(&mut self, dir: Dir, b: &[u8], emit: &mut Emit) -> Line {
        let side = &mut self.sides[dir];
        let from = side.scanned.min(b.len());
        match b.get(from..).and_then(|rest| memchr::memchr(b'\n', rest)) {
            Some(p) => {
                side.scanned = 0;
                Line::End(from + p + 1)
            }
            None if b.len() > MAX_LINE => {
                self.lose(dir, "overlong chunk or trailer line", emit);
                Line::Lost
            }
            None => {
                side.scanned = b.len();
                Line::NeedMore
            }
        }
    }

    /// Gives up the framing of `dir` at the current position: bytes up to
    /// the next plausible start line are malformed.
    fn lose(&mut self, dir: Dir, reason: &'static str, emit: &mut Emit) -> Step {
        emit.stats.http.malformed += 1;
        let side = &mut self.sides[dir];
        side.scanned = 0;
        side.probe = None;
        side.state = State::Lost { junk: 0, line_start: false };
        side.lost_reason = reason;
        Step::Used(0)
    }

    /// In `Lost`: skips to the start of a line that begins a request (C2S)
    /// or status line (S2C); the skipped bytes are malformed.
    fn resync(&mut self, dir: Dir, b: &[u8], junk: u64, line_start: bool, emit: &mut Emit) -> Step {
        let mut start = 0;
        if !line_start {
            match b.iter().position(|&c| c == b'\n') {
                Some(nl) => start = nl + 1,
                None => {
                    emit.span(Class::Payload, b.len() as u64, MsgRef::Flow);
                    self.sides[dir].state = State::Lost { junk: junk + b.len() as u64, line_start: false };
                    return Step::Used(b.len());
                }
            }
        }
        if start > 0 {
            // Skip to the line start, look at the line next time round.
            emit.span(Class::Payload, start as u64, MsgRef::Flow);
            self.sides[dir].state = State::Lost { junk: junk + start as u64, line_start: true };
            return Step::Used(start);
        }
        let verdict = match dir {
            Dir::C2S => match method_prefix(b) {
                Some(_) => Some(true),
                None if METHODS.iter().any(|m| b.len() <= m.len() && m.as_bytes().starts_with(b)) => None,
                None => Some(false),
            },
            Dir::S2C => {
                let k = b.len().min(7);
                if b.get(..k) != b"HTTP/1.".get(..k) {
                    Some(false)
                } else if b.len() < 12 {
                    None
                } else {
                    Some(is_status_line_start(b))
                }
            }
        };
        match verdict {
            Some(true) => {
                let reason = self.sides[dir].lost_reason;
                if junk > 0 {
                    emit.event(Event::Malformed { bytes: junk, reason: reason.into() });
                }
                self.sides[dir].state = State::Start;
                Step::Used(0)
            }
            None => Step::NeedMore,
            Some(false) => {
                self.sides[dir].state = State::Lost { junk, line_start: false };
                Step::Used(0)
            }
        }
    }

    /// Responded for the request at the head of the queue, once.
    fn first_response_byte(&mut self, emit: &mut Emit) {
        if let Some(p) = self.pending.front_mut()
            && !p.responded
        {
            p.responded = true;
            if let MsgRef::Exchange(id) = p.msg {
                emit.event(Event::Responded { id });
            }
        }
    }

    fn start(&mut self, dir: Dir, b: &[u8], emit: &mut Emit) -> Step {
        // Blank lines before a start line are tolerated (RFC 9112 2.2).
        let blank = b.iter().take_while(|&&c| c == b'\r' || c == b'\n').count();
        if blank > 0 {
            self.header(dir, blank, MsgRef::Flow, emit);
            return Step::Used(blank);
        }
        let plausible = match dir {
            Dir::C2S => {
                // A token, then a space, within the first bytes.
                let tok =
                    b.iter().take(16).take_while(|c| c.is_ascii_alphabetic() || **c == b'-' || **c == b'_').count();
                tok == b.len().min(16) || (tok > 0 && b.get(tok) == Some(&b' '))
            }
            Dir::S2C => b"HTTP/".starts_with(b.get(..5).unwrap_or(b)),
        };
        if !plausible {
            return self.lose(dir, "not a start line", emit);
        }
        if dir == Dir::S2C {
            self.first_response_byte(emit);
        }
        if self.sides[dir].scanned == 0
            && let Some(step) = self.head(dir, b, None, emit)
        {
            return step;
        }
        let Some(end) = header_end(b, &mut self.sides[dir].scanned) else {
            if b.len() > MAX_HEADER_BLOCK {
                return self.lose(dir, "header block too large", emit);
            }
            return Step::NeedMore;
        };
        self.sides[dir].scanned = 0;
        self.head(dir, b.get(..end).unwrap_or(b), Some(end), emit).unwrap_or(Step::Used(0))
    }

    /// Parses the header block at the start of `b` and acts on it. `end`:
    /// where `header_end` found the block to end (then `b` is the block),
    /// else `None` (the first look at fresh bytes): a block httparse finds
    /// whole is acted on, anything else is left to the careful path (`None`).
    /// httparse ends a block at its first empty line, as `header_end` does,
    /// so the first look need not search for the end first.
    #[inline(never)]
    fn head(&mut self, dir: Dir, b: &[u8], end: Option<usize>, emit: &mut Emit) -> Option<Step> {
        // Whether a block httparse found whole ends where `end` says.
        let agrees = |n: usize| match end {
            Some(end) => n == end,
            None => ends_with_empty_line(b.get(..n).unwrap_or(&[])),
        };
        // Left uninitialised: the parser writes the headers it finds, and
        // clearing all MAX_HEADERS slots cost more than most parses.
        let mut headers = [const { MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
        match dir {
            Dir::C2S => {
                let mut req = httparse::Request::new(&mut []);
                match req.parse_with_uninit_headers(b, &mut headers) {
                    Ok(httparse::Status::Complete(n)) if agrees(n) => {
                        let method = req.method.unwrap_or("?");
                        let path = req.path.unwrap_or("?");
                        let version = req.version;
                        let f = fields(req.headers);
                        Some(self.request(method, path, version, f, n, emit))
                    }
                    _ if end.is_none() => None,
                    _ => Some(self.lose(dir, "bad request header", emit)),
                }
            }
            Dir::S2C => {
                let mut resp = httparse::Response::new(&mut []);
                match response_parser().parse_response_with_uninit_headers(&mut resp, b, &mut headers) {
                    Ok(httparse::Status::Complete(n)) if agrees(n) => {
                        let code = resp.code.unwrap_or(0);
                        let version = resp.version;
                        let f = fields(resp.headers);
                        Some(self.response(code, version, f, n, emit))
                    }
                    _ if end.is_none() => None,
                    _ => Some(self.lose(dir, "bad response header", emit)),
                }
            }
        }
    }

    fn request(
        &mut self,
        method: &str,
        path: &str,
        version: Option<u8>,
        f: Fields,
        hdr: usize,
        emit: &mut Emit,
    ) -> Step {
        if f.bad_length || (f.other_coding && !f.chunked) {
            return self.lose(Dir::C2S, "request body length unknown", emit);
        }
        self.note_connection(emit);
        self.requests_here += 1;
        let st = &mut emit.stats.http;
        st.requests += 1;
        st.requests_per_connection_max = st.requests_per_connection_max.max(self.requests_here);
        st.methods.add(method_index(method), 1);
        st.request_versions.add(version_index(version), 1);
        if let Some(h) = &f.host {
            bump(&mut st.hosts, h, 1);
        }
        let upgrade = if method == "CONNECT" {
            Some(Upgrade::Connect)
        } else if f.conn_upgrade {
            f.upgrade
        } else {
            None
        };
        let what = emit.what(|| describe_request(method, path));
        // A WebSocket upgrade is connection setup; every other request,
        // h2c's included (it becomes HTTP/2 stream 1), is an exchange.
        let msg = if upgrade == Some(Upgrade::WebSocket) {
            MsgRef::Setup
        } else {
            let id = self.new_id();
            emit.event(Event::Open { id, kind: Proto::Http, what: what.clone() });
            let resource = resource_hash(path.split('?').next().unwrap_or(path).as_bytes());
            let facets = Facets {
                method: Method::from_http(method),
                resource,
                conditional: f.conditional,
                ..Default::default()
            };
            emit.event(Event::Facets { id, facets });
            let text = f.text && !f.encoded;
            if text || f.chunked {
                self.start_probe(Dir::C2S, id, false, text, f.content_length);
            }
            MsgRef::Exchange(id)
        };
        self.header(Dir::C2S, hdr, msg, emit);
        if self.pending.len() < MAX_PENDING_REQUESTS {
            self.pending.push_back(Pending {
                msg,
                what,
                head: method == "HEAD",
                get: method == "GET",
                upgrade,
                header_bytes: hdr as u64,
                responded: false,
            });
        }
        if f.chunked {
            emit.stats.http.chunked_requests += 1;
            self.sides[Dir::C2S].state = State::ChunkSize { msg };
        } else {
            match f.content_length {
                Some(n) if n > 0 => self.sides[Dir::C2S].state = State::Body { left: n, msg },
                _ => self.end_message(Dir::C2S, emit),
            }
        }
        Step::Used(hdr)
    }

    fn response(&mut self, code: u16, version: Option<u8>, f: Fields, hdr: usize, emit: &mut Emit) -> Step {
        if f.bad_length {
            return self.lose(Dir::S2C, "response body length unknown", emit);
        }
        self.note_connection(emit);
        let st = &mut emit.stats.http;
        st.responses += 1;
        st.status_codes.add(usize::from(code), 1);
        st.response_versions.add(version_index(version), 1);
        if self.pending.is_empty() {
            // The request was not seen (the capture started mid-connection).
            let id = self.new_id();
            emit.event(Event::Open { id, kind: Proto::Http, what: "(request not captured)".into() });
            emit.event(Event::Responded { id });
            self.pending.push_back(Pending {
                msg: MsgRef::Exchange(id),
                what: "(request not captured)".into(),
                head: false,
                get: false,
                upgrade: None,
                header_bytes: 0,
                responded: true,
            });
        }
        let Some(p) = self.pending.front() else { return Step::Used(0) };
        let (msg, head, upgrade, req_hdr, get) = (p.msg, p.head, p.upgrade, p.header_bytes, p.get);
        // An exchange opened undescribed is not listed: it needs no description.
        let what = if p.what.is_empty() { String::new() } else { describe_response(&p.what, code) };
        self.header(Dir::S2C, hdr, msg, emit);

        if code == 101 {
            // Switching protocols: to what the request asked for, else to
            // what the response names.
            let target = upgrade.filter(|u| *u != Upgrade::Connect).or(f.upgrade);
            let request_what = self.pending.pop_front().map(|p| p.what).unwrap_or_default();
            let exchange = match msg {
                MsgRef::Exchange(id) => {
                    emit.event(Event::Describe { id, what });
                    Some((id, request_what))
                }
                _ => None,
            };
            self.start_tunnel(target, exchange, req_hdr + hdr as u64, f.ws_protocol_mqtt, emit);
            return Step::Used(hdr);
        }
        if (100..200).contains(&code) {
            // Interim: the final response follows.
            return Step::Used(hdr);
        }
        if let MsgRef::Exchange(id) = msg {
            emit.event(Event::Describe { id, what });
            let facets = Facets {
                status: code,
                validators: f.validators,
                encoded: f.encoded,
                ..Default::default()
            };
            emit.event(Event::Facets { id, facets });
            let has_body = !(head || code == 204 || code == 304);
            // Only a successful answer to a GET that the client could have
            // asked for conditionally is hashed (`duplicate-content`); only
            // text bodies large enough to gain from gzip are followed as
            // text (`uncompressed-text`).
            let hash = get
                && (200..300).contains(&code)
                && !f.validators
                && f.content_length.is_none_or(|n| n <= MAX_HASHED_BODY);
            let text = f.text && !f.encoded && f.content_length.is_none_or(|n| n >= MIN_SAMPLED_BODY);
            if has_body && (hash || text) {
                self.start_probe(Dir::S2C, id, hash, text, f.content_length);
            }
        }
        if upgrade == Some(Upgrade::Connect) && (200..300).contains(&code) {
            self.pending.pop_front();
            if let MsgRef::Exchange(id) = msg {
                emit.event(Event::Close { id });
            }
            self.start_tunnel(Some(Upgrade::Connect), None, 0, false, emit);
            return Step::Used(hdr);
        }
        if upgrade.is_some() {
            // Refused: what the client sent meanwhile is HTTP again.
            self.resume_client(emit);
        }
        if head || code == 204 || code == 304 {
            self.end_message(Dir::S2C, emit);
        } else if f.chunked {
            emit.stats.http.chunked_responses += 1;
            self.sides[Dir::S2C].state = State::ChunkSize { msg };
        } else if f.other_coding {
            self.sides[Dir::S2C].state = State::UntilClose { msg };
        } else {
            match f.content_length {
                Some(0) => self.end_message(Dir::S2C, emit),
                Some(n) => self.sides[Dir::S2C].state = State::Body { left: n, msg },
                None => self.sides[Dir::S2C].state = State::UntilClose { msg },
            }
        }
        Step::Used(hdr)
    }

    /// Follows the body of exchange `id` going `dir` for the findings.
    fn start_probe(&mut self, dir: Dir, id: u32, hash: bool, text: bool, length: Option<u64>) {
        let side = &mut self.sides[dir];
        let sample = text
            && side.sampled < SAMPLED_PER_SIDE
            && length.is_none_or(|n| (MIN_SAMPLED_BODY..=MAX_SAMPLED_BODY as u64).contains(&n));
        side.sampled += u8::from(sample);
        side.probe = Some(BodyProbe {
            id,
            up: dir == Dir::C2S,
            hash: hash.then(crc32fast::Hasher::new),
            text,
            // Sized once when the length is known (it is then within the cap).
            sample: sample.then(|| Vec::with_capacity(length.map_or(0, |n| n as usize))),
            ..Default::default()
        });
    }

    fn end_message(&mut self, dir: Dir, emit: &mut Emit) {
        if let Some(p) = self.sides[dir].probe.take() {
            let id = p.id;
            let facets = p.facets(dir == Dir::C2S);
            if facets != Facets::default() {
                emit.event(Event::Facets { id, facets });
            }
        }
        match dir {
            Dir::C2S => {
                let awaits = self.pending.back().is_some_and(|p| p.upgrade.is_some() && !p.responded);
                self.sides[dir].state = if awaits { State::AwaitUpgrade } else { State::Start };
            }
            Dir::S2C => {
                if let Some(p) = self.pending.pop_front()
                    && let MsgRef::Exchange(id) = p.msg
                {
                    emit.event(Event::Close { id });
                }
                self.sides[dir].state = State::Start;
            }
        }
    }

    /// The client's held bytes after a refused upgrade are parsed as HTTP.
    fn resume_client(&mut self, emit: &mut Emit) {
        if matches!(self.sides[Dir::C2S].state, State::AwaitUpgrade) {
            self.sides[Dir::C2S].state = State::Start;
            let held = std::mem::take(&mut self.sides[Dir::C2S].held);
            if !held.is_empty() {
                self.data(Dir::C2S, &held, emit);
            }
        }
    }

    /// The connection switches to `target` (unknown: opaque payload).
    fn start_tunnel(
        &mut self,
        target: Option<Upgrade>,
        exchange: Option<(u32, String)>,
        upgrade_bytes: u64,
        mqtt: bool,
        emit: &mut Emit,
    ) {
        let first_id = self.next_id;
        let inner: Box<dyn Dissector> = match target {
            Some(Upgrade::WebSocket) => {
                emit.event(Event::App { proto: Proto::Websocket });
                emit.stats.websocket.connections += 1;
                emit.stats.websocket.upgrade_bytes += upgrade_bytes;
                Box::new(super::websocket::WebSocket::new(&self.ctx, mqtt, first_id))
            }
            Some(Upgrade::H2c) => {
                emit.event(Event::App { proto: Proto::Http2 });
                Box::new(super::http2::Http2::upgraded(&self.ctx, first_id, exchange))
            }
            Some(Upgrade::Connect) => Box::new(Reprobe { ctx: self.ctx.clone(), inner: None, started: PerDir::default() }),
            _ => Box::new(super::unknown::Unknown),
        };
        bump(&mut emit.stats.http.upgrades, target.map_or("unknown", Upgrade::name), 1);
        self.tunnel = Some(inner);
        self.sides[Dir::S2C].state = State::Tunnel;
        if let State::Lost { junk, .. } = self.sides[Dir::C2S].state
            && junk > 0
        {
            let reason = self.sides[Dir::C2S].lost_reason;
            emit.event(Event::Malformed { bytes: junk, reason: reason.into() });
        }
        self.sides[Dir::C2S].state = State::Tunnel;
        self.sides[Dir::C2S].scanned = 0;
        let held = std::mem::take(&mut self.sides[Dir::C2S].held);
        if !held.is_empty()
            && let Some(t) = self.tunnel.as_mut()
        {
            t.data(Dir::C2S, &held, emit);
        }
    }

    /// Keeps the unhandled tail of `dir`'s input, within bounds.
    fn keep(&mut self, dir: Dir, rest: &[u8], emit: &mut Emit) {
        let side = &mut self.sides[dir];
        side.held.extend_from_slice(rest);
        let cap = match side.state {
            State::AwaitUpgrade => MAX_EARLY_UPGRADE_BYTES,
            _ => MAX_HEADER_BLOCK + MAX_LINE,
        };
        if side.held.len() > cap {
            let n = side.held.len() as u64;
            side.held.clear();
            side.scanned = 0;
            side.state = State::Lost { junk: 0, line_start: false };
            side.lost_reason = "HTTP message framing exceeds limits";
            emit.stats.http.malformed += 1;
            emit.malformed(n, MsgRef::Flow, "HTTP message framing exceeds limits");
        }
    }

    /// Classifies what `dir` still holds as malformed (a gap or the end).
    fn drop_held(&mut self, dir: Dir, reason: &str, emit: &mut Emit) {
        let side = &mut self.sides[dir];
        let held = side.held.len() as u64;
        side.held.clear();
        side.scanned = 0;
        let junk = match side.state {
            State::Lost { junk, .. } => junk,
            _ => 0,
        };
        if held > 0 {
            emit.span(Class::Payload, held, MsgRef::Flow);
        }
        if held + junk > 0 {
            let reason = if junk > 0 { side.lost_reason } else { reason };
            emit.stats.http.malformed += u64::from(junk == 0);
            emit.event(Event::Malformed { bytes: held + junk, reason: reason.into() });
        }
        if let State::Lost { line_start, .. } = side.state {
            side.state = State::Lost { junk: 0, line_start };
        }
    }
}

/// A CONNECT tunnel's bytes: a new stream, its protocol recognised from
/// its first bytes as a connection's would be (stray CR/LF before a
/// direction's first byte are `app_header`), then dissected by it.
#[derive(Clone)]
struct Reprobe {
    ctx: FlowCtx,
    inner: Option<Box<dyn Dissector>>,
    /// A direction's first byte past line ends has come.
    started: PerDir<bool>,
}

impl Dissector for Reprobe {
    fn data(&mut self, dir: Dir, mut data: &[u8], emit: &mut Emit) {
        if !self.started[dir] {
            let crlf = data.iter().take_while(|b| matches!(b, b'\r' | b'\n')).count();
            emit.span(Class::AppHeader, crlf as u64, MsgRef::Flow);
            data = data.get(crlf..).unwrap_or_default();
            if data.is_empty() {
                return;
            }
            self.started[dir] = true;
        }
        let ctx = &self.ctx;
        let inner = self.inner.get_or_insert_with(|| {
            match super::recognise(L4::Tcp, 0, dir, data) {
                Some(p) => {
                    emit.event(Event::App { proto: p.id });
                    (p.make)(ctx)
                }
                None => Box::new(super::unknown::Unknown),
            }
        });
        inner.data(dir, data, emit);
    }

    fn gap(&mut self, dir: Dir, len: u64, emit: &mut Emit) {
        self.started[dir] = true;
        if let Some(inner) = self.inner.as_mut() {
            inner.gap(dir, len, emit);
        }
    }

    fn finish(&mut self, emit: &mut Emit) {
        if let Some(inner) = self.inner.as_mut() {
            inner.finish(emit);
        }
    }
}

/// End (exclusive) of the header block at the start of `b`: the first empty
/// line. `scanned` carries the search position across calls.
fn header_end(b: &[u8], scanned: &mut usize) -> Option<usize> {
    let from = scanned.saturating_sub(2).min(b.len());
    let mut i = from;
    while let Some(p) = b.get(i..).and_then(|rest| memchr::memchr(b'\n', rest)) {
        let nl = i + p;
        match b.get(nl + 1..) {
            Some([b'\n', ..]) => return Some(nl + 2),
            Some([b'\r', b'\n', ..]) => return Some(nl + 3),
            _ => i = nl + 1,
        }
    }
    *scanned = b.len();
    None
}

/// Whether `b` ends with an empty line (as a block `header_end` finds does).
fn ends_with_empty_line(b: &[u8]) -> bool {
    b.ends_with(b"\n\n") || b.ends_with(b"\n\r\n")
}

impl Dissector for Http1 {
    fn data(&mut self, dir: Dir, data: &[u8], emit: &mut Emit) {
        if matches!(self.sides[dir].state, State::Tunnel)
            && self.sides[dir].held.is_empty()
            && !data.is_empty()
            && let Some(t) = self.tunnel.as_mut()
        {
            // After an upgrade (most calls on such connections): straight
            // through, as `consume` would pass it.
            t.data(dir, data, emit);
            return;
        }
        if self.sides[dir].held.is_empty() {
            let used = self.consume(dir, data, emit);
            self.keep(dir, data.get(used..).unwrap_or(&[]), emit);
        } else {
            let mut buf = std::mem::take(&mut self.sides[dir].held);
            buf.extend_from_slice(data);
            let used = self.consume(dir, &buf, emit).min(buf.len());
            buf.drain(..used);
            // Nothing else fills this side's buffer while it is consumed.
            self.sides[dir].held = buf;
            self.keep(dir, &[], emit);
        }
    }

    /// The flow stage classifies the missing bytes; here only the framing
    /// follows: a body counts down past them, anything else is lost until
    /// the next start line.
    fn gap(&mut self, dir: Dir, len: u64, emit: &mut Emit) {
        if self.sides[dir].held.is_empty() {
            match self.sides[dir].state {
                State::Tunnel => {
                    if let Some(t) = self.tunnel.as_mut() {
                        t.gap(dir, len, emit);
                    }
                    return;
                }
                State::Body { left, msg } | State::ChunkData { left, msg } if len <= left => {
                    self.body_bytes(dir, len, left, msg, None, emit);
                    return;
                }
                State::UntilClose { .. } => {
                    Self::count_body(dir, len, emit);
                    return;
                }
                _ => {}
            }
        }
        // Framing is lost: held bytes are unparsed.
        self.drop_held(dir, "HTTP message cut by a capture gap", emit);
        if !matches!(self.sides[dir].state, State::Lost { .. }) {
            emit.stats.http.malformed += 1;
        }
        let side = &mut self.sides[dir];
        side.state = State::Lost { junk: 0, line_start: false };
        side.lost_reason = "HTTP framing lost at a capture gap";
    }

    fn finish(&mut self, emit: &mut Emit) {
        for dir in [Dir::C2S, Dir::S2C] {
            match self.sides[dir].state {
                State::UntilClose { .. } if self.sides[dir].held.is_empty() => self.end_message(dir, emit),
                _ => self.drop_held(dir, "HTTP message truncated at the end of the capture", emit),
            }
        }
        if let Some(t) = self.tunnel.as_mut() {
            t.finish(emit);
        }
    }
}

/// Test support shared by the HTTP, WebSocket and HTTP/2 tests: TCP
/// conversations straight from the shipped captures.
#[cfg(test)]
pub(crate) mod capture;

#[cfg(test)]
mod tests;

/// Mutated real conversations through every dissector of this family:
/// whatever the bytes, no panic and every byte in exactly one span.
#[cfg(test)]
mod fuzz;
