//! DNS (RFC 1035) over UDP and TCP, and mDNS on 5353.
//!
//! Ledger: a DNS message is metadata, not the device's data, so every byte of
//! it is `app_header` (over TCP the 2-byte length prefix too). Exchanges pair
//! a query with its response by ID (and question, for mDNS's ID 0).

use super::{Proto, Dir, Dissector, Emit, Event, FlowCtx, L4, MsgBuf, MsgRef, Probe, Protocol, bump, bump_capped};
use crate::dissect::Framing;
use crate::vocab::Class;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::net::IpAddr;

pub static PROTOCOL: Protocol = Protocol { id: Proto::Dns, l4: &[L4::Udp, L4::Tcp], ports: &[53, 5353], probe, make };

/// Queries waiting for a response.
const MAX_PENDING: usize = 256;
/// A query unanswered this long is given up (resolvers retry within seconds).
const QUERY_TIMEOUT_NS: i64 = 60_000_000_000;
/// Distinct query names kept in the statistics.
const MAX_NAMES: usize = 64;
/// Longest name we render (DNS names are at most 255 octets on the wire).
const MAX_NAME_CHARS: usize = 255;
/// Compression pointers followed per name before we call it a loop.
const MAX_POINTERS: usize = 32;

const HEADER_LEN: usize = 12;

/// Plausible DNS: a header with sane counts whose sections parse to the end
/// of the datagram, or a TCP length prefix in front of such a header. DNS has
/// no magic, so content alone is never unmistakable.
fn probe(_l4: L4, _dir: Dir, first: &[u8]) -> Probe {
    if parse(first).is_ok_and(|m| m.plausible()) {
        return Probe::Maybe;
    }
    // TCP: the segment may hold only the start of the first message.
    if let Some((len, rest)) = first.split_first_chunk::<2>() {
        let len = usize::from(u16::from_be_bytes(*len));
        if len >= HEADER_LEN
            && rest.len() >= len
            && parse(rest.get(..len).unwrap_or_default()).is_ok_and(|m| m.plausible())
        {
            return Probe::Maybe;
        }
        if len >= HEADER_LEN
            && rest.len() >= HEADER_LEN
            && rest.len() < len
            && parse_header(rest).is_some_and(|h| h.plausible())
        {
            return Probe::Maybe;
        }
    }
    Probe::No
}

fn make(ctx: &FlowCtx) -> Box<dyn Dissector> {
    Box::new(Dns::new(ctx.l4))
}

// ---------------------------------------------------------------------------
// Wire format

#[derive(Clone, Copy, Debug)]
struct Header {
    id: u16,
    flags: u16,
    qdcount: u16,
    ancount: u16,
    nscount: u16,
    arcount: u16,
}

impl Header {
    fn is_response(&self) -> bool {
        self.flags & 0x8000 != 0
    }
    fn opcode(&self) -> u16 {
        (self.flags >> 11) & 0x0f
    }
    fn rcode(&self) -> u16 {
        self.flags & 0x000f
    }
    /// Counts and opcode a real resolver or responder would send.
    fn plausible(&self) -> bool {
        let records = u32::from(self.ancount) + u32::from(self.nscount) + u32::from(self.arcount);
        matches!(self.opcode(), 0 | 1 | 2 | 4 | 5 | 6)
            && self.flags & 0x0040 == 0 // the one bit still reserved (Z)
            // mDNS announcements answer without repeating a question.
            && ((1..=16).contains(&self.qdcount) || (self.is_response() && self.ancount > 0))
            && records <= 256
            && (self.is_response() || self.ancount <= 16)
    }
}

fn parse_header(b: &[u8]) -> Option<Header> {
    let [i0, i1, f0, f1, q0, q1, a0, a1, n0, n1, r0, r1] = *b.first_chunk::<HEADER_LEN>()?;
    let word = u16::from_be_bytes;
    Some(Header {
        id: word([i0, i1]),
        flags: word([f0, f1]),
        qdcount: word([q0, q1]),
        ancount: word([a0, a1]),
        nscount: word([n0, n1]),
        arcount: word([r0, r1]),
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FormatError {
    Short,
    Name,
    Truncated,
    Trailing,
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FormatError::Short => "dns: shorter than the 12-byte header",
            FormatError::Name => "dns: bad name (label length, pointer or loop)",
            FormatError::Truncated => "dns: record runs past the end of the message",
            FormatError::Trailing => "dns: bytes after the last record",
        })
    }
}

/// A parsed message: header, first question, and the addresses its
/// answers give (A and AAAA); other records are walked for structure only.
#[derive(Clone, Debug)]
struct Message {
    header: Header,
    /// First question, if any: lower-case name and type.
    question: Option<(String, u16)>,
    addrs: Vec<IpAddr>,
}

/// Most addresses kept from one answer.
const MAX_ADDRS: usize = 16;

impl Message {
    fn plausible(&self) -> bool {
        self.header.plausible()
    }
    fn question_text(&self) -> String {
        match &self.question {
            Some((name, qtype)) => format!("{} {}", type_name(*qtype), name),
            None => "(no question)".to_string(),
        }
    }
}

fn parse(b: &[u8]) -> Result<Message, FormatError> {
    let header = parse_header(b).ok_or(FormatError::Short)?;
    let mut pos = HEADER_LEN;
    let mut question = None;
    for i in 0..header.qdcount {
        let (name, next) = read_name(b, pos, i == 0)?;
        let fixed = b.get(next..next + 4).and_then(|f| f.first_chunk::<2>()).ok_or(FormatError::Truncated)?;
        if i == 0 {
            question = Some((name, u16::from_be_bytes(*fixed)));
        }
        pos = next + 4;
    }
    let records = u32::from(header.ancount) + u32::from(header.nscount) + u32::from(header.arcount);
    let mut addrs = Vec::new();
    for i in 0..records {
        let (_, next) = read_name(b, pos, false)?;
        // type, class, TTL, RDLENGTH, then RDATA.
        let rtype = b.get(next..next + 2).and_then(|f| f.first_chunk::<2>()).ok_or(FormatError::Truncated)?;
        let rdlen = b.get(next + 8..next + 10).and_then(|f| f.first_chunk::<2>()).ok_or(FormatError::Truncated)?;
        let end = next + 10 + usize::from(u16::from_be_bytes(*rdlen));
        let rdata = b.get(next + 10..end).ok_or(FormatError::Truncated)?;
        if i < u32::from(header.ancount) && addrs.len() < MAX_ADDRS {
            match (u16::from_be_bytes(*rtype), rdata.len()) {
                (1, 4) => addrs.extend(<[u8; 4]>::try_from(rdata).ok().map(IpAddr::from)),
                (28, 16) => addrs.extend(<[u8; 16]>::try_from(rdata).ok().map(IpAddr::from)),
                _ => {}
            }
        }
        pos = end;
    }
    if pos != b.len() {
        return Err(FormatError::Trailing);
    }
    Ok(Message { header, question, addrs })
}

/// Reads the name at `pos`; returns it (when `render`) and the offset just
/// after it in place (compression pointers are followed, backwards only).
fn read_name(b: &[u8], mut pos: usize, render: bool) -> Result<(String, usize), FormatError> {
    let mut name = String::new();
    let mut after: Option<usize> = None;
    let mut pointers = 0;
    let mut wire_len = 0usize;
    loop {
        let len = *b.get(pos).ok_or(FormatError::Truncated)?;
        match len & 0xc0 {
            0x00 if len == 0 => {
                let next = after.unwrap_or(pos + 1);
                if render && name.is_empty() {
                    name.push('.');
                }
                return Ok((name, next));
            }
            0x00 => {
                let label = b.get(pos + 1..pos + 1 + usize::from(len)).ok_or(FormatError::Truncated)?;
                wire_len += 1 + label.len();
                if wire_len > 255 {
                    return Err(FormatError::Name);
                }
                if render && name.len() < MAX_NAME_CHARS {
                    if !name.is_empty() {
                        name.push('.');
                    }
                    for &c in label {
                        let c = c.to_ascii_lowercase();
                        name.push(if c.is_ascii_graphic() { char::from(c) } else { '?' });
                    }
                }
                pos += 1 + label.len();
            }
            0xc0 => {
                let lo = *b.get(pos + 1).ok_or(FormatError::Truncated)?;
                let target = usize::from(u16::from_be_bytes([len & 0x3f, lo]));
                pointers += 1;
                if target >= pos || pointers > MAX_POINTERS {
                    return Err(FormatError::Name);
                }
                after.get_or_insert(pos + 2);
                pos = target;
            }
            // 0x40 (extended label types) and 0x80 are not in use.
            _ => return Err(FormatError::Name),
        }
    }
}

fn type_name(t: u16) -> String {
    let n = match t {
        1 => "A",
        2 => "NS",
        5 => "CNAME",
        6 => "SOA",
        12 => "PTR",
        13 => "HINFO",
        15 => "MX",
        16 => "TXT",
        28 => "AAAA",
        33 => "SRV",
        35 => "NAPTR",
        41 => "OPT",
        43 => "DS",
        46 => "RRSIG",
        47 => "NSEC",
        48 => "DNSKEY",
        64 => "SVCB",
        65 => "HTTPS",
        252 => "AXFR",
        255 => "ANY",
        257 => "CAA",
        _ => return format!("TYPE{t}"),
    };
    n.to_string()
}

fn rcode_name(r: u16) -> String {
    let n = match r {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        _ => return format!("RCODE{r}"),
    };
    n.to_string()
}

// ---------------------------------------------------------------------------
// Statistics

/// The `dns` section of the report.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Stats {
    pub queries: u64,
    pub responses: u64,
    /// Answer records (ANCOUNT) over all responses.
    pub answers: u64,
    /// Responses by RCODE name (NOERROR, NXDOMAIN, ...).
    pub rcodes: BTreeMap<String, u64>,
    /// Queries by question type (A, AAAA, ...).
    pub query_types: BTreeMap<String, u64>,
    /// Queries by question name, for the `MAX_NAMES` smallest names (the same
    /// whatever order they came in).
    pub names: BTreeMap<String, u64>,
    /// Queries whose name did not fit in `names`.
    pub names_not_listed: u64,
    /// Every byte of every well-formed message (TCP length prefixes included).
    pub total_dns_bytes: u64,
    pub malformed_messages: u64,
    pub malformed_bytes: u64,
}

impl Stats {
    pub fn merge(&mut self, o: &Stats) {
        self.queries += o.queries;
        self.responses += o.responses;
        self.answers += o.answers;
        for (k, v) in &o.rcodes {
            bump(&mut self.rcodes, k, *v);
        }
        for (k, v) in &o.query_types {
            bump(&mut self.query_types, k, *v);
        }
        for (k, v) in &o.names {
            self.names_not_listed += bump_capped(&mut self.names, k.as_str(), *v, MAX_NAMES);
        }
        self.names_not_listed += o.names_not_listed;
        self.total_dns_bytes += o.total_dns_bytes;
        self.malformed_messages += o.malformed_messages;
        self.malformed_bytes += o.malformed_bytes;
    }

    fn count(&mut self, msg: &Message, wire_len: usize) {
        self.total_dns_bytes += wire_len as u64;
        let h = &msg.header;
        if h.is_response() {
            self.responses += 1;
            self.answers += u64::from(h.ancount);
            bump(&mut self.rcodes, &rcode_name(h.rcode()), 1);
            return;
        }
        self.queries += 1;
        if let Some((name, qtype)) = &msg.question {
            bump(&mut self.query_types, &type_name(*qtype), 1);
            self.names_not_listed += bump_capped(&mut self.names, name.as_str(), 1, MAX_NAMES);
        }
    }
}

// ---------------------------------------------------------------------------
// Per-flow state

/// A query waiting for its response.
#[derive(Clone)]
struct Pending {
    exchange: u32,
    asker: Dir,
    id: u16,
    question: String,
    ts_ns: i64,
}

/// One direction of a TCP flow: messages framed by their length prefix.
#[derive(Clone, Default)]
struct TcpSide {
    buf: MsgBuf,
    /// Bytes still to come of a message broken by a gap.
    skip: u64,
    /// A gap fell where message boundaries cannot be recovered: the rest of
    /// this direction is unparsed.
    lost: bool,
}

#[derive(Clone)]
pub struct Dns {
    l4: L4,
    tcp: [TcpSide; 2],
    pending: VecDeque<Pending>,
    next_exchange: u32,
}

impl Dns {
    fn new(l4: L4) -> Dns {
        // A message is at most 65535 bytes plus its prefix: one always fits.
        let side = || TcpSide { buf: MsgBuf::new(70 * 1024), ..TcpSide::default() };
        Dns { l4, tcp: [side(), side()], pending: VecDeque::new(), next_exchange: 0 }
    }
}

impl Dissector for Dns {
    fn data(&mut self, dir: Dir, data: &[u8], emit: &mut Emit) {
        self.expire(emit);
        if self.l4 == L4::Udp {
            self.message(dir, data, 0, emit);
            return;
        }
        let Dns { tcp, pending, next_exchange, .. } = self;
        let Some(side) = tcp.get_mut(dir.idx()) else { return };
        let mut data = data;
        if side.lost {
            emit.stats.dns.malformed_bytes += data.len() as u64;
            emit.span(Class::Payload, data.len() as u64, MsgRef::Flow);
            return;
        }
        if side.skip > 0 {
            let n = data.len().min(usize::try_from(side.skip).unwrap_or(usize::MAX));
            side.skip -= n as u64;
            emit.stats.dns.malformed_bytes += n as u64;
            emit.span(Class::Payload, n as u64, MsgRef::Flow);
            data = data.get(n..).unwrap_or_default();
        }
        let mut state = Flowing { pending, next_exchange };
        let fed = side.buf.feed(data, |b| {
            let Some((len, rest)) = b.split_first_chunk::<2>() else { return Framing::NeedMore };
            let len = usize::from(u16::from_be_bytes(*len));
            match rest.get(..len) {
                Some(body) => {
                    state.message(dir, body, 2, emit);
                    Framing::Message(2 + len)
                }
                None => Framing::NeedMore,
            }
        });
        if let Err(n) = fed {
            // Cannot happen with a buffer larger than any message; stay safe.
            emit.stats.dns.malformed_messages += 1;
            emit.stats.dns.malformed_bytes += n as u64;
            emit.malformed(n as u64, MsgRef::Flow, "dns: TCP message larger than its buffer");
        }
    }

    fn gap(&mut self, dir: Dir, len: u64, emit: &mut Emit) {
        if self.l4 == L4::Udp {
            return;
        }
        let Some(side) = self.tcp.get_mut(dir.idx()) else { return };
        if side.lost {
            return;
        }
        if side.skip > 0 {
            if len <= side.skip {
                side.skip -= len;
            } else {
                side.skip = 0;
                side.lost = true;
            }
            return;
        }
        // The message in progress lost its middle: what we hold is unparsed;
        // its remaining length tells where the next message starts.
        let held = side.buf.bytes();
        let expected = held.first_chunk::<2>().map(|l| 2 + u64::from(u16::from_be_bytes(*l)));
        let held_len = side.buf.take() as u64;
        if held_len > 0 {
            emit.stats.dns.malformed_messages += 1;
            emit.stats.dns.malformed_bytes += held_len;
            emit.malformed(held_len, MsgRef::Flow, "dns: message broken by a capture gap");
        }
        match expected.map(|total| total.saturating_sub(held_len)) {
            Some(remaining) if len <= remaining => side.skip = remaining - len,
            // A gap between messages (or longer than the rest of one) hides
            // how many messages it held: no way to find the next prefix.
            _ => side.lost = true,
        }
    }

    fn finish(&mut self, emit: &mut Emit) {
        for side in &mut self.tcp {
            let n = side.buf.take() as u64;
            if n > 0 {
                emit.stats.dns.malformed_messages += 1;
                emit.stats.dns.malformed_bytes += n;
                emit.malformed(n, MsgRef::Flow, "dns: TCP message cut off by the end of the flow");
            }
        }
        for p in self.pending.drain(..) {
            emit.event(Event::Close { id: p.exchange });
        }
    }
}

impl Dns {
    fn message(&mut self, dir: Dir, body: &[u8], prefix: usize, emit: &mut Emit) {
        Flowing { pending: &mut self.pending, next_exchange: &mut self.next_exchange }.message(dir, body, prefix, emit);
    }

    fn expire(&mut self, emit: &mut Emit) {
        let now = emit.ts_ns;
        while self.pending.front().is_some_and(|p| now.saturating_sub(p.ts_ns) > QUERY_TIMEOUT_NS) {
            if let Some(p) = self.pending.pop_front() {
                emit.event(Event::Close { id: p.exchange });
            }
        }
    }
}

/// The exchange state, borrowed apart from the TCP buffers so the framing
/// closure can use it.
struct Flowing<'a> {
    pending: &'a mut VecDeque<Pending>,
    next_exchange: &'a mut u32,
}

impl Flowing<'_> {
    /// One whole message (`prefix`: its TCP length prefix, 0 on UDP).
    fn message(&mut self, dir: Dir, body: &[u8], prefix: usize, emit: &mut Emit) {
        let wire = (prefix + body.len()) as u64;
        let msg = match parse(body) {
            Ok(m) => m,
            Err(e) => {
                emit.stats.dns.malformed_messages += 1;
                emit.stats.dns.malformed_bytes += wire;
                emit.malformed(wire, MsgRef::Flow, e.to_string());
                return;
            }
        };
        emit.stats.dns.count(&msg, prefix + body.len());
        let owner = if msg.header.is_response() { self.response(dir, &msg, emit) } else { self.query(dir, &msg, emit) };
        emit.span(Class::AppHeader, wire, MsgRef::Exchange(owner));
    }

    fn open(&mut self, what: String, emit: &mut Emit) -> u32 {
        let id = *self.next_exchange;
        *self.next_exchange = self.next_exchange.wrapping_add(1);
        emit.event(Event::Open { id, kind: Proto::Dns, what });
        id
    }

    fn query(&mut self, dir: Dir, msg: &Message, emit: &mut Emit) -> u32 {
        let question = msg.question_text();
        let exchange = self.open(question.clone(), emit);
        emit.make_room(self.pending, MAX_PENDING, |p| Some(p.exchange));
        self.pending.push_back(Pending { exchange, asker: dir, id: msg.header.id, question, ts_ns: emit.ts_ns });
        exchange
    }

    fn response(&mut self, dir: Dir, msg: &Message, emit: &mut Emit) -> u32 {
        let asker = dir.flip();
        let question = msg.question_text();
        // Same ID from the other side; with several (mDNS uses ID 0), the
        // one asking the same question.
        let same_id = |p: &Pending| p.asker == asker && p.id == msg.header.id;
        let found = self
            .pending
            .iter()
            .position(|p| same_id(p) && p.question == question)
            .or_else(|| self.pending.iter().position(same_id));
        let answers = msg.header.ancount;
        let outcome =
            format!("{} {answers} answer{}", rcode_name(msg.header.rcode()), if answers == 1 { "" } else { "s" });
        let exchange = match found.and_then(|i| self.pending.remove(i)) {
            Some(p) => {
                emit.event(Event::Responded { id: p.exchange });
                emit.event(Event::Describe { id: p.exchange, what: format!("{} {outcome}", p.question) });
                p.exchange
            }
            None => {
                let id = self.open(format!("{question} {outcome} (query not seen)"), emit);
                emit.event(Event::Responded { id });
                id
            }
        };
        if !msg.addrs.is_empty() {
            // Connections to these addresses paid for this lookup.
            emit.event(Event::Resolved { id: exchange, addrs: msg.addrs.clone() });
        }
        emit.event(Event::Close { id: exchange });
        exchange
    }
}

#[cfg(test)]
mod tests;
