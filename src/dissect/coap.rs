//! CoAP over UDP (RFC 7252) with Observe (RFC 7641) and block-wise
//! transfers (RFC 7959). One call per datagram, or per decrypted DTLS record
//! when the TLS dissector hands its plaintext on.
//!
//! Ledger: 4-byte header, token, options and the 0xFF marker are
//! `app_header`, the rest `payload`; empty messages (code 0.00: empty ACK,
//! RST, ping) are `app_control` whole; a message its sender already sent with
//! the same Message ID and type is `retransmission` whole.
//!
//! The wire format is parsed by hand: the ledger needs the exact length of
//! the options region, which general CoAP libraries do not expose.

use super::tally::{Tally, TallyKeys};
use super::{Proto, Dir, PerDir, Dissector, Emit, Event, FlowCtx, L4, MsgRef, Probe, Protocol};
use crate::vocab::{Class, Facets, Method, resource_hash};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::ops::Bound;

pub static PROTOCOL: Protocol = Protocol { id: Proto::Coap, l4: &[L4::Udp], ports: &[5683, 5684], probe, make };

/// EXCHANGE_LIFETIME (RFC 7252 4.8.2): how long a Message ID stays bound to
/// one message, so how long a repeat counts as a retransmission, and how
/// long a request waits for its response before we close it unanswered.
const EXCHANGE_LIFETIME_NS: i64 = 247_000_000_000;
/// Message IDs remembered per direction for retransmission detection.
const MAX_SEEN: usize = 1024;
/// The same while memory is tight (`Emit::tight`): a repeat comes within a
/// few of its sender's messages (one confirmable message at a time, RFC
/// 7252 4.7), and a hundred thousand flows remembering 1024 would hold
/// gigabytes.
const TIGHT_SEEN: usize = 4;
/// Requests waiting for a response, messages waiting for an ACK.
const MAX_PENDING: usize = 256;
/// Active Observe registrations.
const MAX_OBSERVATIONS: usize = 64;
/// Distinct option names counted before unknown ones are lumped together.
const MAX_OPTION_NAMES: usize = 64;
/// Longest exchange description (path and query are attacker-sized).
const MAX_WHAT: usize = 200;

fn probe(_l4: L4, _dir: Dir, first: &[u8]) -> Probe {
    let Ok(msg) = parse(first) else { return Probe::No };
    if !matches!(msg.code >> 5, 0 | 2 | 4 | 5) {
        return Probe::No;
    }
    if looks_unmistakable(&msg) { Probe::Yes } else { Probe::Maybe }
}

/// A request whose every option is a registered one and which names its
/// resource in printable text: four random bytes pass the header checks
/// often enough, this shape almost never happens by chance.
fn looks_unmistakable(msg: &Message) -> bool {
    if !(1..=7).contains(&msg.code) || !matches!(msg.mtype, MsgType::Con | MsgType::Non) {
        return false;
    }
    let mut named_resource = false;
    for opt in Options::new(msg.options) {
        let Ok((number, value)) = opt else { return false };
        if !registered(number) {
            return false;
        }
        if matches!(number, OPT_URI_HOST | OPT_URI_PATH) {
            if value.is_empty() || !value.iter().all(|b| (0x21..0x7f).contains(b)) {
                return false;
            }
            named_resource = true;
        }
    }
    named_resource
}

fn make(_ctx: &FlowCtx) -> Box<dyn Dissector> {
    Box::new(Coap::default())
}

// ---------------------------------------------------------------------------
// Wire format

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MsgType {
    Con,
    Non,
    Ack,
    Rst,
}

impl MsgType {
    fn from_bits(b: u8) -> MsgType {
        match b & 3 {
            0 => MsgType::Con,
            1 => MsgType::Non,
            2 => MsgType::Ack,
            _ => MsgType::Rst,
        }
    }
    fn name(self) -> &'static str {
        match self {
            MsgType::Con => "CON",
            MsgType::Non => "NON",
            MsgType::Ack => "ACK",
            MsgType::Rst => "RST",
        }
    }
}

const OPT_URI_HOST: u32 = 3;
const OPT_OBSERVE: u32 = 6;
const OPT_URI_PATH: u32 = 11;
const OPT_URI_QUERY: u32 = 15;
const OPT_BLOCK2: u32 = 23;
const OPT_BLOCK1: u32 = 27;

/// Option names as tshark 4.0 shows them (the truth files count options by
/// these names); numbers it does not know are "Unknown Option (N)".
fn option_name(number: u32) -> Option<&'static str> {
    Some(match number {
        1 => "If-Match",
        3 => "Uri-Host",
        4 => "Etag",
        5 => "If-None-Match",
        6 => "Observe",
        7 => "Uri-Port",
        8 => "Location-Path",
        9 => "OSCORE",
        11 => "Uri-Path",
        12 => "Content-Format",
        14 => "Max-age",
        15 => "Uri-Query",
        16 => "Hop-Limit",
        17 => "Accept",
        20 => "Location-Query",
        23 => "Block2",
        27 => "Block1",
        28 => "Size2",
        35 => "Proxy-Uri",
        39 => "Proxy-Scheme",
        60 => "Size1",
        252 => "No-Op",
        _ => return None,
    })
}

/// IANA-registered option numbers, those tshark 4.0 does not name too
/// (Q-Block1/2, EDHOC, No-Response, Request-Tag).
fn registered(number: u32) -> bool {
    option_name(number).is_some() || matches!(number, 19 | 21 | 31 | 258 | 292)
}

/// Why a datagram is not a well-formed CoAP message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FormatError {
    Short,
    Version(u8),
    TokenLength(u8),
    EmptyNotEmpty,
    OptionReserved,
    OptionTruncated,
    OptionNumber,
    EmptyPayload,
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatError::Short => write!(f, "coap: shorter than the 4-byte header"),
            FormatError::Version(v) => write!(f, "coap: version {v}, not 1"),
            FormatError::TokenLength(n) => write!(f, "coap: token length {n} (reserved)"),
            FormatError::EmptyNotEmpty => write!(f, "coap: empty message (0.00) with token or content"),
            FormatError::OptionReserved => write!(f, "coap: option with reserved nibble 15"),
            FormatError::OptionTruncated => write!(f, "coap: option runs past the end of the message"),
            FormatError::OptionNumber => write!(f, "coap: option number above 65535"),
            FormatError::EmptyPayload => write!(f, "coap: payload marker without payload"),
        }
    }
}

/// One CoAP message, as slices of the datagram.
#[derive(Clone, Debug)]
struct Message<'a> {
    mtype: MsgType,
    code: u8,
    mid: u16,
    token: &'a [u8],
    /// The options region, from the first option byte up to the marker.
    options: &'a [u8],
    marker: bool,
    payload: &'a [u8],
}

impl Message<'_> {
    /// Header, token, options and marker: the `app_header` bytes.
    fn header_len(&self) -> usize {
        4 + self.token.len() + self.options.len() + usize::from(self.marker)
    }
    fn class(&self) -> u8 {
        self.code >> 5
    }
    fn is_empty(&self) -> bool {
        self.code == 0
    }
    fn is_request(&self) -> bool {
        self.class() == 0 && self.code != 0
    }
    fn is_response(&self) -> bool {
        matches!(self.class(), 2 | 4 | 5)
    }
}

fn parse(b: &[u8]) -> Result<Message<'_>, FormatError> {
    let Some((&[first, code, mid_hi, mid_lo], rest)) = b.split_first_chunk::<4>() else {
        return Err(FormatError::Short);
    };
    let version = first >> 6;
    if version != 1 {
        return Err(FormatError::Version(version));
    }
    let tkl = first & 0x0f;
    if tkl > 8 {
        return Err(FormatError::TokenLength(tkl));
    }
    let (token, after_token) = rest.split_at_checked(usize::from(tkl)).ok_or(FormatError::OptionTruncated)?;
    let mtype = MsgType::from_bits(first >> 4);
    let mid = u16::from_be_bytes([mid_hi, mid_lo]);
    if code == 0 {
        // RFC 7252 4.1: nothing may follow the Message ID of an empty message.
        if b.len() != 4 {
            return Err(FormatError::EmptyNotEmpty);
        }
        return Ok(Message { mtype, code, mid, token, options: &[], marker: false, payload: &[] });
    }
    let mut opts = Options::new(after_token);
    for opt in opts.by_ref() {
        opt?;
    }
    let options_len = opts.consumed();
    let tail = after_token.get(options_len..).unwrap_or_default();
    let (marker, payload) = match tail.split_first() {
        Some((_, [])) => return Err(FormatError::EmptyPayload),
        Some((_, payload)) => (true, payload),
        None => (false, tail),
    };
    let options = after_token.get(..options_len).unwrap_or_default();
    Ok(Message { mtype, code, mid, token, options, marker, payload })
}

/// Walks an options region: `(number, value)` per option, stopping before
/// the payload marker or at the end.
struct Options<'a> {
    bytes: &'a [u8],
    pos: usize,
    number: u32,
    failed: bool,
}

impl<'a> Options<'a> {
    fn new(bytes: &'a [u8]) -> Options<'a> {
        Options { bytes, pos: 0, number: 0, failed: false }
    }
    /// Bytes of whole options walked so far.
    fn consumed(&self) -> usize {
        self.pos
    }
    /// An extended delta or length: nibble 13 adds one byte (+13), 14 two
    /// (+269), 15 is reserved.
    fn extended(&self, nibble: u8, at: &mut usize) -> Result<u32, FormatError> {
        match nibble {
            0..=12 => Ok(u32::from(nibble)),
            13 => {
                let v = *self.bytes.get(*at).ok_or(FormatError::OptionTruncated)?;
                *at += 1;
                Ok(u32::from(v) + 13)
            }
            14 => {
                let v = self.bytes.get(*at..).and_then(|b| b.first_chunk::<2>()).ok_or(FormatError::OptionTruncated)?;
                *at += 2;
                Ok(u32::from(u16::from_be_bytes(*v)) + 269)
            }
            _ => Err(FormatError::OptionReserved),
        }
    }
    fn step(&mut self) -> Result<Option<(u32, &'a [u8])>, FormatError> {
        let Some(&head) = self.bytes.get(self.pos) else { return Ok(None) };
        if head == 0xff {
            return Ok(None);
        }
        let mut at = self.pos + 1;
        let delta = self.extended(head >> 4, &mut at)?;
        let len = self.extended(head & 0x0f, &mut at)? as usize;
        let value = self.bytes.get(at..at + len).ok_or(FormatError::OptionTruncated)?;
        let number = self.number + delta;
        if number > u32::from(u16::MAX) {
            return Err(FormatError::OptionNumber);
        }
        self.number = number;
        self.pos = at + len;
        Ok(Some((number, value)))
    }
}

impl<'a> Iterator for Options<'a> {
    type Item = Result<(u32, &'a [u8]), FormatError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.step() {
            Ok(Some(opt)) => Some(Ok(opt)),
            Ok(None) => None,
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// An unsigned option value (at most 4 bytes, big-endian).
fn uint(value: &[u8]) -> u32 {
    value.iter().take(4).fold(0u32, |acc, &b| (acc << 8) | u32::from(b))
}

/// A Block1/Block2 option value (RFC 7959 2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Block {
    num: u32,
    more: bool,
    size: u32,
}

impl Block {
    fn from_value(value: &[u8]) -> Block {
        let v = uint(value);
        Block { num: v >> 4, more: v & 0x08 != 0, size: 1 << ((v & 0x07) + 4) }
    }
}

/// What the exchange tracking needs from a message's options.
#[derive(Clone, Default)]
struct Summary {
    observe: Option<u32>,
    block1: Option<Block>,
    block2: Option<Block>,
    /// "/a/b?x&y", capped at `MAX_WHAT`.
    resource: String,
}

fn summarize(options: &[u8], want_resource: bool) -> Summary {
    let mut s = Summary::default();
    let mut query = false;
    for (number, value) in Options::new(options).map_while(Result::ok) {
        match number {
            OPT_OBSERVE => s.observe = Some(uint(value)),
            OPT_BLOCK1 => s.block1 = Some(Block::from_value(value)),
            OPT_BLOCK2 => s.block2 = Some(Block::from_value(value)),
            OPT_URI_PATH if want_resource => push_capped(&mut s.resource, "/", value),
            OPT_URI_QUERY if want_resource => {
                push_capped(&mut s.resource, if query { "&" } else { "?" }, value);
                query = true;
            }
            _ => {}
        }
    }
    if want_resource && s.resource.is_empty() {
        s.resource.push('/');
    }
    s
}

fn push_capped(out: &mut String, sep: &str, value: &[u8]) {
    if out.len() >= MAX_WHAT {
        return;
    }
    out.push_str(sep);
    for ch in String::from_utf8_lossy(value).chars() {
        if out.len() >= MAX_WHAT {
            out.push('…');
            return;
        }
        out.push(if ch.is_control() { '.' } else { ch });
    }
}

const UNKNOWN_PREFIX: &str = "Unknown Option (";
/// Where the option numbers `options` does not list are counted.
const UNKNOWN_OTHER: &str = "Unknown Option (other)";

/// "Unknown Option (N)", written in `buf`: every unknown option of every
/// message is counted, and this costs no allocation when N is listed.
fn unknown_option_key(number: u32, buf: &mut [u8; 32]) -> &str {
    let mut digits = itoa::Buffer::new();
    let mut len = 0;
    for part in [UNKNOWN_PREFIX, digits.format(number), ")"] {
        if let Some(to) = buf.get_mut(len..len + part.len()) {
            to.copy_from_slice(part.as_bytes());
            len += part.len();
        }
    }
    std::str::from_utf8(buf.get(..len).unwrap_or(&[])).unwrap_or(UNKNOWN_OTHER)
}

/// Method names for 0.01-0.07, "c.dd" otherwise, "Empty" for 0.00.
fn code_name(code: u8) -> CodeName {
    let name = match code {
        0 => "Empty",
        1 => "GET",
        2 => "POST",
        3 => "PUT",
        4 => "DELETE",
        5 => "FETCH",
        6 => "PATCH",
        7 => "iPATCH",
        _ => {
            // Every message names its code: kept on the stack, not formatted.
            let (class, detail) = (code >> 5, code & 0x1f);
            return CodeName::Dotted([b'0' + class, b'.', b'0' + detail / 10, b'0' + detail % 10]);
        }
    };
    CodeName::Method(name)
}

/// A CoAP code as the report writes it.
enum CodeName {
    Method(&'static str),
    /// "c.dd": ASCII digits.
    Dotted([u8; 4]),
}

impl CodeName {
    fn as_str(&self) -> &str {
        match self {
            CodeName::Method(m) => m,
            CodeName::Dotted(d) => std::str::from_utf8(d).unwrap_or("?.??"),
        }
    }
}

impl std::fmt::Display for CodeName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---------------------------------------------------------------------------
// Statistics

/// Message types, by `MsgType as usize` (their two bits).
pub struct MsgTypes;

impl TallyKeys for MsgTypes {
    fn name(i: usize) -> Cow<'static, str> {
        Cow::Borrowed(MsgType::from_bits(i as u8).name())
    }
}

/// Codes, by their byte.
pub struct Codes;

impl TallyKeys for Codes {
    fn name(i: usize) -> Cow<'static, str> {
        match code_name(i as u8) {
            CodeName::Method(m) => Cow::Borrowed(m),
            dotted => Cow::Owned(dotted.as_str().to_owned()),
        }
    }
}

/// The `coap` section of the report. `messages`, `codes`, `payload_bytes`
/// and `total_coap_bytes` are REPORT.md's; the rest follows the truth files.
/// Retransmitted messages are counted like any other (as tshark does) and
/// also in `retransmitted_messages`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Stats {
    /// By type: CON, NON, ACK, RST.
    pub messages: Tally<MsgTypes>,
    /// Methods by name, responses as "c.dd", empty messages as "Empty".
    pub codes: Tally<Codes>,
    pub requests: u64,
    pub responses: u64,
    pub empty_messages: u64,
    /// Bytes after the payload marker.
    pub payload_bytes: u64,
    /// 4-byte headers of non-empty messages.
    pub fixed_header_bytes: u64,
    pub token_bytes: u64,
    pub option_bytes: u64,
    pub payload_marker_bytes: u64,
    /// Whole empty messages.
    pub empty_message_bytes: u64,
    /// Every byte of every well-formed CoAP message.
    pub total_coap_bytes: u64,
    /// Option instances by name.
    pub options: BTreeMap<String, u64>,
    /// How many of `options` are "Unknown Option (N)" keys.
    #[serde(skip)]
    unknown_listed: usize,
    /// Responses carrying an Observe option (the first answer to a
    /// registration included).
    pub observe_notifications: u64,
    pub block1_messages: u64,
    pub block2_messages: u64,
    /// Messages whose sender already sent that Message ID with that type.
    pub retransmitted_messages: u64,
    /// Datagrams that are not well-formed CoAP (counted nowhere else).
    pub malformed_messages: u64,
    pub malformed_bytes: u64,
}

impl Stats {
    pub fn merge(&mut self, o: &Stats) {
        self.messages.merge(&o.messages);
        self.codes.merge(&o.codes);
        for (k, v) in &o.options {
            if k.starts_with(UNKNOWN_PREFIX) && k != UNKNOWN_OTHER {
                self.count_unknown_option(k, *v);
            } else {
                *self.options.entry(k.clone()).or_default() += v;
            }
        }
        self.requests += o.requests;
        self.responses += o.responses;
        self.empty_messages += o.empty_messages;
        self.payload_bytes += o.payload_bytes;
        self.fixed_header_bytes += o.fixed_header_bytes;
        self.token_bytes += o.token_bytes;
        self.option_bytes += o.option_bytes;
        self.payload_marker_bytes += o.payload_marker_bytes;
        self.empty_message_bytes += o.empty_message_bytes;
        self.total_coap_bytes += o.total_coap_bytes;
        self.observe_notifications += o.observe_notifications;
        self.block1_messages += o.block1_messages;
        self.block2_messages += o.block2_messages;
        self.retransmitted_messages += o.retransmitted_messages;
        self.malformed_messages += o.malformed_messages;
        self.malformed_bytes += o.malformed_bytes;
    }

    /// Counts `n` instances of the option without a name under `key`
    /// ("Unknown Option (N)"). At most `MAX_OPTION_NAMES` such numbers are
    /// listed, the smallest keys (so which ones does not depend on the order
    /// they came in, nor on how flows were spread over threads); the rest
    /// count under "Unknown Option (other)".
    fn count_unknown_option(&mut self, key: &str, n: u64) {
        if let Some(v) = self.options.get_mut(key) {
            *v += n;
            return;
        }
        let spilled = if self.unknown_listed < MAX_OPTION_NAMES {
            self.options.insert(key.to_owned(), n);
            self.unknown_listed += 1;
            0
        } else {
            // The numbered keys: digits follow the prefix, and ':' follows '9'.
            let numbered = (Bound::Included(UNKNOWN_PREFIX), Bound::Excluded("Unknown Option (:"));
            match self.options.range::<str, _>(numbered).next_back() {
                Some((largest, _)) if key < largest.as_str() => {
                    let largest = largest.clone();
                    let evicted = self.options.remove(&largest).unwrap_or(0);
                    self.options.insert(key.to_owned(), n);
                    evicted
                }
                _ => n,
            }
        };
        if spilled > 0 {
            *self.options.entry(UNKNOWN_OTHER.to_owned()).or_default() += spilled;
        }
    }

    fn count(&mut self, msg: &Message, len: usize) {
        let len = len as u64;
        self.total_coap_bytes += len;
        self.messages.add(msg.mtype as usize, 1);
        self.codes.add(usize::from(msg.code), 1);
        if msg.is_empty() {
            self.empty_messages += 1;
            self.empty_message_bytes += len;
            return;
        }
        if msg.is_request() {
            self.requests += 1;
        } else if msg.is_response() {
            self.responses += 1;
        }
        self.fixed_header_bytes += 4;
        self.token_bytes += msg.token.len() as u64;
        self.option_bytes += msg.options.len() as u64;
        self.payload_marker_bytes += u64::from(msg.marker);
        self.payload_bytes += msg.payload.len() as u64;
        let (mut observe, mut block1, mut block2) = (false, false, false);
        for (number, _) in Options::new(msg.options).map_while(Result::ok) {
            match option_name(number) {
                // Names are few and fixed: always listed.
                Some(name) => match self.options.get_mut(name) {
                    Some(n) => *n += 1,
                    None => {
                        self.options.insert(name.to_owned(), 1);
                    }
                },
                None => self.count_unknown_option(unknown_option_key(number, &mut [0; 32]), 1),
            }
            observe |= number == OPT_OBSERVE;
            block1 |= number == OPT_BLOCK1;
            block2 |= number == OPT_BLOCK2;
        }
        self.observe_notifications += u64::from(observe && msg.is_response());
        self.block1_messages += u64::from(block1);
        self.block2_messages += u64::from(block2);
    }
}

// ---------------------------------------------------------------------------
// Per-flow state: retransmissions and exchanges

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
struct Token {
    len: u8,
    bytes: [u8; 8],
}

impl Token {
    fn new(b: &[u8]) -> Token {
        let mut t = Token::default();
        for (dst, src) in t.bytes.iter_mut().zip(b) {
            *dst = *src;
            t.len += 1;
        }
        t
    }
}

/// Tells the flow table how many more (or fewer) message ids are remembered.
fn remembering(emit: &mut Emit, before: usize, after: usize) {
    if after != before {
        // (Both at most MAX_SEEN.)
        emit.event(Event::Remembering { change: after as i32 - before as i32 });
    }
}

/// A message a sender has put on the wire, for spotting its repeats.
#[derive(Clone)]
struct Seen {
    mid: u16,
    mtype: MsgType,
    token: Token,
    ts_ns: i64,
    msg: MsgRef,
}

/// A request waiting for its response.
#[derive(Clone)]
struct Pending {
    id: u32,
    requester: Dir,
    token: Token,
    mid: u16,
    observe: Option<u32>,
    ts_ns: i64,
    /// Kept for few requests (listed ones, Observe registrations), and
    /// apart: unanswered requests wait an exchange lifetime, thousands of
    /// them in a fleet's capture.
    text: Option<Box<PendingText>>,
}

#[derive(Clone)]
struct PendingText {
    /// "GET /time" (plus block details); empty unless listed.
    what: String,
    /// "/time": what an Observe registration watches; empty for others.
    resource: String,
}

impl Pending {
    fn what(&self) -> &str {
        self.text.as_ref().map_or("", |t| t.what.as_str())
    }
}

/// A confirmable message waiting for its ACK (or RST).
#[derive(Clone)]
struct AwaitingAck {
    sender: Dir,
    mid: u16,
    msg: MsgRef,
    /// The exchange ends with this ACK (a CON response or notification);
    /// a CON request's exchange goes on to its response.
    closes: bool,
    /// For a notification: the observation an RST cancels.
    observation: Option<Token>,
    ts_ns: i64,
}

/// An Observe registration that notifications arrive on.
#[derive(Clone)]
struct Observation {
    requester: Dir,
    token: Token,
    resource: String,
}

#[derive(Clone, Default)]
pub struct Coap {
    seen: PerDir<VecDeque<Seen>>,
    pending: VecDeque<Pending>,
    awaiting: VecDeque<AwaitingAck>,
    observations: VecDeque<Observation>,
    next_id: u32,
}

impl Dissector for Coap {
    fn data(&mut self, dir: Dir, data: &[u8], emit: &mut Emit) {
        self.expire(emit);
        let len = data.len() as u64;
        let msg = match parse(data) {
            Ok(m) => m,
            Err(e) => {
                emit.stats.coap.malformed_messages += 1;
                emit.stats.coap.malformed_bytes += len;
                emit.malformed(len, MsgRef::Flow, e.to_string());
                return;
            }
        };
        emit.stats.coap.count(&msg, data.len());
        if let Some(original) = self.repeat_of(dir, &msg, emit.ts_ns) {
            emit.stats.coap.retransmitted_messages += 1;
            emit.span(Class::Retransmission, len, original);
            return;
        }
        let owner = if msg.is_empty() {
            self.on_empty(dir, &msg, emit)
        } else if msg.is_request() {
            self.on_request(dir, &msg, emit)
        } else if msg.is_response() {
            self.on_response(dir, &msg, emit)
        } else {
            // Reserved classes (1, 3, 6, 7): well-formed, but no exchange.
            MsgRef::Flow
        };
        self.remember(dir, &msg, owner, emit);
        if msg.is_empty() {
            emit.span(Class::AppControl, len, owner);
        } else {
            emit.span(Class::AppHeader, msg.header_len() as u64, owner);
            emit.span(Class::Payload, msg.payload.len() as u64, owner);
        }
    }

    /// A datagram cut short by the capture: the flow stage books the missing
    /// bytes; every datagram stands alone, so there is nothing to resync.
    fn gap(&mut self, _dir: Dir, _len: u64, _emit: &mut Emit) {}

    fn finish(&mut self, emit: &mut Emit) {
        // Exchanges still waiting end with the flow (unanswered ones never
        // saw `Responded`).
        let mut open: Vec<u32> = self.pending.drain(..).map(|p| p.id).collect();
        open.extend(self.awaiting.drain(..).filter(|a| a.closes).filter_map(|a| exchange_id(a.msg)));
        open.sort_unstable();
        open.dedup();
        for id in open {
            emit.event(Event::Close { id });
        }
    }
}

fn exchange_id(m: MsgRef) -> Option<u32> {
    match m {
        MsgRef::Exchange(id) => Some(id),
        _ => None,
    }
}

impl Coap {
    fn new_exchange(&mut self, what: String, emit: &mut Emit) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        emit.event(Event::Open { id, kind: Proto::Coap, what });
        id
    }

    /// The exchange of the earlier copy, when `dir` already sent this
    /// Message ID with this type (and token: a repeat is the same message)
    /// within EXCHANGE_LIFETIME.
    fn repeat_of(&self, dir: Dir, msg: &Message, now: i64) -> Option<MsgRef> {
        self.seen[dir]
            .iter()
            .rev()
            .find(|s| s.mid == msg.mid && s.mtype == msg.mtype && s.token == Token::new(msg.token))
            .filter(|s| now.saturating_sub(s.ts_ns) <= EXCHANGE_LIFETIME_NS)
            .map(|s| s.msg)
    }

    fn remember(&mut self, dir: Dir, msg: &Message, owner: MsgRef, emit: &mut Emit) {
        let seen = &mut self.seen[dir];
        let before = seen.len();
        let cap = if emit.tight { TIGHT_SEEN } else { MAX_SEEN };
        while seen.len() >= cap {
            seen.pop_front();
        }
        let ts_ns = emit.ts_ns;
        seen.push_back(Seen { mid: msg.mid, mtype: msg.mtype, token: Token::new(msg.token), ts_ns, msg: owner });
        if emit.tight {
            seen.shrink_to(cap);
        }
        remembering(emit, before, seen.len());
    }

    fn await_ack(&mut self, entry: AwaitingAck, emit: &mut Emit) {
        emit.make_room(&mut self.awaiting, MAX_PENDING, |a| exchange_id(a.msg).filter(|_| a.closes));
        self.awaiting.push_back(entry);
    }

    /// Closes exchanges whose answer is overdue; forgets Message IDs whose
    /// lifetime is over.
    fn expire(&mut self, emit: &mut Emit) {
        let now = emit.ts_ns;
        let old = |ts: i64| now.saturating_sub(ts) > EXCHANGE_LIFETIME_NS;
        while self.pending.front().is_some_and(|p| old(p.ts_ns)) {
            if let Some(p) = self.pending.pop_front() {
                emit.event(Event::Close { id: p.id });
            }
        }
        while self.awaiting.front().is_some_and(|a| old(a.ts_ns)) {
            if let Some(a) = self.awaiting.pop_front()
                && a.closes
                && let Some(id) = exchange_id(a.msg)
            {
                emit.event(Event::Close { id });
            }
        }
        for seen in &mut self.seen.0 {
            let before = seen.len();
            while seen.front().is_some_and(|s| old(s.ts_ns)) {
                seen.pop_front();
            }
            remembering(emit, before, seen.len());
        }
    }

    fn on_request(&mut self, dir: Dir, msg: &Message, emit: &mut Emit) -> MsgRef {
        let s = summarize(msg.options, true);
        let what = emit.what(|| {
            let mut what = format!("{} {}", code_name(msg.code), s.resource);
            if let Some(b) = s.block1 {
                what.push_str(&format!(" block1 #{}{}", b.num, if b.more { "+" } else { "" }));
            }
            if let Some(b) = s.block2 {
                what.push_str(&format!(" block2 #{}", b.num));
            }
            match s.observe {
                Some(0) => what.push_str(" observe"),
                Some(1) => what.push_str(" cancel-observe"),
                _ => {}
            }
            what
        });
        let id = self.new_exchange(what.clone(), emit);
        let method = match (msg.code, s.observe) {
            (1, Some(0)) => Method::Subscribe,
            (1, _) => Method::Get,
            (2, _) => Method::Post,
            (3, _) => Method::Put,
            (4, _) => Method::Delete,
            _ => Method::Other,
        };
        let facets = Facets {
            method,
            resource: resource_hash(s.resource.as_bytes()),
            confirmable: msg.mtype == MsgType::Con,
            ..Default::default()
        };
        emit.event(Event::Facets { id, facets });
        emit.make_room(&mut self.pending, MAX_PENDING, |p| Some(p.id));
        let token = Token::new(msg.token);
        let registers = s.observe == Some(0);
        let text = (registers || !what.is_empty()).then(|| {
            Box::new(PendingText { what, resource: if registers { s.resource } else { String::new() } })
        });
        self.pending.push_back(Pending { id, requester: dir, token, mid: msg.mid, observe: s.observe, ts_ns: emit.ts_ns, text });
        if msg.mtype == MsgType::Con {
            let entry = AwaitingAck {
                sender: dir,
                mid: msg.mid,
                msg: MsgRef::Exchange(id),
                closes: false,
                observation: None,
                ts_ns: emit.ts_ns,
            };
            self.await_ack(entry, emit);
        }
        MsgRef::Exchange(id)
    }

    fn on_response(&mut self, dir: Dir, msg: &Message, emit: &mut Emit) -> MsgRef {
        let requester = dir.flip();
        let token = Token::new(msg.token);
        let s = summarize(msg.options, false);
        let observing = self.observations.iter().position(|o| o.requester == requester && o.token == token);

        // A piggybacked response shares the request's Message ID: that
        // settles it. Otherwise the token does, except that a notification
        // on an active observation is not the answer to a later request
        // with the same token (unless that request re-registers).
        let piggybacked = (msg.mtype == MsgType::Ack)
            .then(|| self.pending.iter().position(|p| p.requester == requester && p.mid == msg.mid && p.token == token))
            .flatten();
        let matched = piggybacked.or_else(|| {
            self.pending.iter().position(|p| p.requester == requester && p.token == token).filter(|&i| {
                let is_notification = s.observe.is_some() && observing.is_some();
                !is_notification || self.pending.get(i).is_some_and(|p| p.observe == Some(0))
            })
        });

        let code = code_name(msg.code);
        let (id, observation) = match matched.and_then(|i| self.pending.remove(i)) {
            Some(p) => {
                emit.event(Event::Responded { id: p.id });
                let status = u16::from(msg.code >> 5) * 100 + u16::from(msg.code & 0x1f);
                emit.event(Event::Facets { id: p.id, facets: Facets { status, ..Default::default() } });
                if !p.what().is_empty() {
                    emit.event(Event::Describe { id: p.id, what: format!("{} {code}", p.what()) });
                }
                if msg.mtype == MsgType::Ack {
                    self.awaiting.retain(|a| !(a.sender == requester && a.mid == p.mid));
                }
                let registered = p.observe == Some(0) && s.observe.is_some() && msg.class() == 2;
                if registered {
                    if observing.is_none() {
                        if self.observations.len() >= MAX_OBSERVATIONS {
                            self.observations.pop_front();
                        }
                        let resource = p.text.map(|t| t.resource).unwrap_or_default();
                        self.observations.push_back(Observation { requester, token, resource });
                    }
                } else if p.observe.is_some()
                    && let Some(i) = observing
                {
                    // Deregistered, or the registration was refused.
                    self.observations.remove(i);
                }
                (p.id, None)
            }
            None if s.observe.is_some() => {
                let resource = observing.and_then(|i| self.observations.get(i)).map_or("?", |o| o.resource.as_str());
                let what = emit.what(|| {
                    if msg.class() == 2 { format!("notify {resource}") } else { format!("notify {resource} {code}") }
                });
                let id = self.new_exchange(what, emit);
                if msg.class() != 2
                    && let Some(i) = observing
                {
                    // An error notification ends the observation (RFC 7641 3.2).
                    self.observations.remove(i);
                }
                (id, observing.map(|_| token))
            }
            None => {
                let id = self.new_exchange(format!("{code} (request not seen)"), emit);
                emit.event(Event::Responded { id });
                (id, None)
            }
        };
        if msg.mtype == MsgType::Con {
            let entry = AwaitingAck {
                sender: dir,
                mid: msg.mid,
                msg: MsgRef::Exchange(id),
                closes: true,
                observation,
                ts_ns: emit.ts_ns,
            };
            self.await_ack(entry, emit);
        } else {
            emit.event(Event::Close { id });
        }
        MsgRef::Exchange(id)
    }

    /// Empty ACK / RST: belongs to the confirmable message it answers.
    /// Empty CON: a ping (RFC 7252 4.3), flow-level.
    fn on_empty(&mut self, dir: Dir, msg: &Message, emit: &mut Emit) -> MsgRef {
        match msg.mtype {
            MsgType::Con => {
                let entry = AwaitingAck {
                    sender: dir,
                    mid: msg.mid,
                    msg: MsgRef::Flow,
                    closes: false,
                    observation: None,
                    ts_ns: emit.ts_ns,
                };
                self.await_ack(entry, emit);
                MsgRef::Flow
            }
            MsgType::Non => MsgRef::Flow,
            MsgType::Ack | MsgType::Rst => {
                let sender = dir.flip();
                let Some(i) = self.awaiting.iter().position(|a| a.sender == sender && a.mid == msg.mid) else {
                    return MsgRef::Flow;
                };
                let Some(a) = self.awaiting.remove(i) else { return MsgRef::Flow };
                let reset = msg.mtype == MsgType::Rst;
                if reset && let Some(token) = a.observation {
                    // RST to a notification cancels the observation (RFC 7641 3.6).
                    self.observations.retain(|o| !(o.requester == dir && o.token == token));
                }
                if let MsgRef::Exchange(id) = a.msg {
                    if a.closes {
                        emit.event(Event::Close { id });
                    } else if reset && let Some(p) = self.pending.iter().position(|p| p.id == id) {
                        // The peer rejected the request: no response will come.
                        if let Some(p) = self.pending.remove(p) {
                            emit.event(Event::Responded { id });
                            emit.event(Event::Describe { id, what: format!("{} RST", p.what()) });
                            emit.event(Event::Close { id });
                        }
                    }
                }
                a.msg
            }
        }
    }
}

#[cfg(test)]
mod tests;
