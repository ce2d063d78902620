//! MQTT 3.1, 3.1.1 and 5.0 on any in-order byte stream: plain TCP, or the
//! plaintext inside TLS or WebSocket when those dissectors nest this one.
//!
//! Framing is by hand: the fixed header (type, flags, Remaining Length
//! varint) gives every packet's length, so a packet whose content does not
//! parse is skipped without losing the stream. A Remaining Length longer than
//! four bytes, a reserved packet type or a capture gap outside a known packet
//! leaves no way to find the next packet: the rest of that direction is
//! unparsed payload.
//!
//! Ledger: a PUBLISH's fixed and variable header (topic, packet id, v5
//! properties) is `app_header` and its application message `payload`,
//! streamed as it goes by, never buffered. Every other packet is
//! `app_control`, whole; only a bounded prefix of it is kept for parsing.
//!
//! Exchanges: each PUBLISH opens one, closed at its end (QoS 0), by PUBACK
//! (QoS 1) or by PUBCOMP (QoS 2, with PUBREC and PUBREL in it); SUBSCRIBE /
//! SUBACK and UNSUBSCRIBE / UNSUBACK are exchanges too. CONNECT, CONNACK and
//! AUTH are connection setup; PINGREQ, PINGRESP and DISCONNECT belong to the
//! flow.

use super::tally::{Decimal, Tally, TallyKeys};
use super::{Proto, Dir, Dissector, Emit, Event, FlowCtx, L4, MsgRef, OTHER, Probe, Protocol};
use crate::vocab::{Class, Facets, Method, resource_hash};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, VecDeque};

pub static PROTOCOL: Protocol = Protocol { id: Proto::Mqtt, l4: &[L4::Tcp], ports: &[1883], probe, make };

/// Most bytes of a control packet kept for parsing; the rest is counted.
/// Every field wiretax needs sits in the first dozen bytes; the prefix is
/// for v5 properties and subscription filters.
const CONTROL_KEEP: usize = 1024;
/// Most bytes of a PUBLISH topic kept (for the exchange name and stats).
const TOPIC_KEEP: usize = 256;
/// Most bytes of a PUBLISH's v5 properties kept for parsing.
const PROPS_KEEP: usize = 1024;
/// Most unacknowledged packet ids remembered per sender; the oldest go first.
const INFLIGHT_CAP: usize = 1024;
/// Most v5 topic aliases remembered per sender.
const ALIAS_CAP: usize = 256;
/// Most distinct topics counted in `Stats::topics`; the rest in `topics_other`.
const TOPICS_CAP: usize = 64;
/// Most distinct keys in the small numeric maps of `Stats`.
const SMALL_MAP_CAP: usize = 64;
/// Longest topic or filter shown in an exchange name.
const SHOW_KEEP: usize = 128;

const KIND: Proto = Proto::Mqtt;

fn probe(_l4: L4, dir: Dir, first: &[u8]) -> Probe {
    let FixedParse::Ok(f) = parse_fixed(first) else {
        return Probe::No;
    };
    if !f.kind.flags_valid(f.flags) {
        return Probe::No;
    }
    let body = first.get(f.len..).unwrap_or(&[]);
    let rem = f.rem as usize;
    match f.kind {
        Kind::Connect => match connect_signature(body) {
            Signature::Match if dir == Dir::C2S && rem >= 10 => Probe::Yes,
            Signature::Match | Signature::Short => Probe::Maybe,
            Signature::Mismatch => Probe::No,
        },
        Kind::Pingreq | Kind::Pingresp if rem == 0 => Probe::Maybe,
        Kind::Connack | Kind::Puback | Kind::Pubrec | Kind::Pubrel | Kind::Pubcomp | Kind::Unsuback if rem >= 2 => {
            Probe::Maybe
        }
        Kind::Publish | Kind::Suback if rem >= 3 => Probe::Maybe,
        Kind::Subscribe | Kind::Unsubscribe if rem >= 5 => Probe::Maybe,
        Kind::Disconnect | Kind::Auth => Probe::Maybe,
        _ => Probe::No,
    }
}

fn make(_ctx: &FlowCtx) -> Box<dyn Dissector> {
    Box::new(Mqtt::new())
}

// ---------------------------------------------------------------------------
// Wire format

/// MQTT control packet types (the high nibble of the first byte; 0 is
/// reserved).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Connect,
    Connack,
    Publish,
    Puback,
    Pubrec,
    Pubrel,
    Pubcomp,
    Subscribe,
    Suback,
    Unsubscribe,
    Unsuback,
    Pingreq,
    Pingresp,
    Disconnect,
    Auth,
}

impl Kind {
    fn from_type(t: u8) -> Option<Kind> {
        Some(match t {
            1 => Kind::Connect,
            2 => Kind::Connack,
            3 => Kind::Publish,
            4 => Kind::Puback,
            5 => Kind::Pubrec,
            6 => Kind::Pubrel,
            7 => Kind::Pubcomp,
            8 => Kind::Subscribe,
            9 => Kind::Suback,
            10 => Kind::Unsubscribe,
            11 => Kind::Unsuback,
            12 => Kind::Pingreq,
            13 => Kind::Pingresp,
            14 => Kind::Disconnect,
            15 => Kind::Auth,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        self.names().0
    }

    /// Name, and the `packets_by_direction` keys for c2s and s2c.
    fn names(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Kind::Connect => ("CONNECT", "CONNECT_c2s", "CONNECT_s2c"),
            Kind::Connack => ("CONNACK", "CONNACK_c2s", "CONNACK_s2c"),
            Kind::Publish => ("PUBLISH", "PUBLISH_c2s", "PUBLISH_s2c"),
            Kind::Puback => ("PUBACK", "PUBACK_c2s", "PUBACK_s2c"),
            Kind::Pubrec => ("PUBREC", "PUBREC_c2s", "PUBREC_s2c"),
            Kind::Pubrel => ("PUBREL", "PUBREL_c2s", "PUBREL_s2c"),
            Kind::Pubcomp => ("PUBCOMP", "PUBCOMP_c2s", "PUBCOMP_s2c"),
            Kind::Subscribe => ("SUBSCRIBE", "SUBSCRIBE_c2s", "SUBSCRIBE_s2c"),
            Kind::Suback => ("SUBACK", "SUBACK_c2s", "SUBACK_s2c"),
            Kind::Unsubscribe => ("UNSUBSCRIBE", "UNSUBSCRIBE_c2s", "UNSUBSCRIBE_s2c"),
            Kind::Unsuback => ("UNSUBACK", "UNSUBACK_c2s", "UNSUBACK_s2c"),
            Kind::Pingreq => ("PINGREQ", "PINGREQ_c2s", "PINGREQ_s2c"),
            Kind::Pingresp => ("PINGRESP", "PINGRESP_c2s", "PINGRESP_s2c"),
            Kind::Disconnect => ("DISCONNECT", "DISCONNECT_c2s", "DISCONNECT_s2c"),
            Kind::Auth => ("AUTH", "AUTH_c2s", "AUTH_s2c"),
        }
    }

    fn dir_name(self, dir: Dir) -> &'static str {
        let (_, c2s, s2c) = self.names();
        if dir == Dir::C2S { c2s } else { s2c }
    }

    /// The kind counted at index `i` of a tally (`kind as usize`).
    fn of_index(i: usize) -> Option<Kind> {
        u8::try_from(i + 1).ok().and_then(Kind::from_type)
    }

    /// The fixed-header flags the specification requires. Only the probe
    /// insists on them: MQTT 3.1 peers set QoS/DUP bits on some control
    /// packets, and the packet length is trustworthy either way.
    fn flags_valid(self, flags: u8) -> bool {
        match self {
            Kind::Publish => flags & 0x06 != 0x06,
            Kind::Pubrel | Kind::Subscribe | Kind::Unsubscribe => flags == 0x02,
            _ => flags == 0,
        }
    }
}

/// Protocol level, from CONNECT; it decides how the rest of the connection
/// parses (v5 adds properties and reason codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Version {
    V31,
    V311,
    V5,
}

impl Version {
    fn name(self) -> &'static str {
        match self {
            Version::V31 => "3.1",
            Version::V311 => "3.1.1",
            Version::V5 => "5.0",
        }
    }
}

/// A parsed fixed header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Fixed {
    kind: Kind,
    flags: u8,
    /// Bytes of the fixed header itself (2 to 5).
    len: usize,
    /// Remaining Length: bytes of the packet after the fixed header.
    rem: u32,
}

enum FixedParse {
    Need,
    Bad(&'static str),
    Ok(Fixed),
}

fn parse_fixed(b: &[u8]) -> FixedParse {
    let Some(&first) = b.first() else {
        return FixedParse::Need;
    };
    let Some(kind) = Kind::from_type(first >> 4) else {
        return FixedParse::Bad("reserved MQTT packet type 0");
    };
    match varint(b.get(1..).unwrap_or(&[])) {
        VarInt::Need => FixedParse::Need,
        VarInt::Bad => FixedParse::Bad("MQTT Remaining Length longer than 4 bytes"),
        VarInt::Ok(rem, n) => FixedParse::Ok(Fixed { kind, flags: first & 0x0f, len: 1 + n, rem }),
    }
}

enum VarInt {
    Need,
    Bad,
    /// Value and encoded length.
    Ok(u32, usize),
}

/// MQTT Variable Byte Integer: 7 bits a byte, least significant first, at
/// most 4 bytes.
fn varint(b: &[u8]) -> VarInt {
    let mut value: u32 = 0;
    for i in 0..4 {
        let Some(&byte) = b.get(i) else {
            return VarInt::Need;
        };
        value |= u32::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return VarInt::Ok(value, i + 1);
        }
    }
    VarInt::Bad
}

enum Signature {
    Match,
    /// Too few bytes to tell.
    Short,
    Mismatch,
}

/// Does a CONNECT body start with a known protocol name and level?
fn connect_signature(body: &[u8]) -> Signature {
    let mut c = Cursor::new(body);
    let Some(name_len) = c.u16() else {
        return Signature::Short;
    };
    if name_len != 4 && name_len != 6 {
        return Signature::Mismatch;
    }
    let (Some(name), Some(level)) = (c.take(usize::from(name_len)), c.u8()) else {
        return match body.get(2..) {
            Some(partial) if !b"MQTT".starts_with(partial) && !b"MQIsdp".starts_with(partial) => Signature::Mismatch,
            _ => Signature::Short,
        };
    };
    // The 0x80 bit of the level marks a bridge (mosquitto's try_private).
    match (name, level & 0x7f) {
        (b"MQTT", 4 | 5) | (b"MQIsdp", 3) => Signature::Match,
        _ => Signature::Mismatch,
    }
}

/// Reads big-endian fields from a byte slice; `None` when it runs out.
struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn new(b: &'a [u8]) -> Cursor<'a> {
        Cursor { b, at: 0 }
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let s = self.b.get(self.at..end)?;
        self.at = end;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }
    fn u16(&mut self) -> Option<u16> {
        let s = self.take(2)?;
        Some(u16::from_be_bytes([*s.first()?, *s.get(1)?]))
    }
    fn varint(&mut self) -> Option<u32> {
        match varint(self.b.get(self.at..)?) {
            VarInt::Ok(v, n) => {
                self.at += n;
                Some(v)
            }
            _ => None,
        }
    }
    /// A length-prefixed string or binary field.
    fn prefixed(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
    fn rest(&self) -> &'a [u8] {
        self.b.get(self.at..).unwrap_or(&[])
    }
}

/// What wiretax needs from a v5 property list.
#[derive(Clone, Default)]
struct Props {
    topic_alias: Option<u16>,
}

/// Walks v5 properties (the bytes after the property length), counting each
/// in `stats`. Stops at the first property that is cut off (the kept prefix
/// of a long list) or unknown (its length cannot be known).
fn walk_props(props: &[u8], stats: &mut Stats) -> Props {
    let mut out = Props::default();
    let mut c = Cursor::new(props);
    while let Some(id) = c.u8() {
        let Some(name) = property_name(id) else { break };
        let ok = match id {
            0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2a => c.u8().is_some(),
            0x13 | 0x21 | 0x22 => c.u16().is_some(),
            0x23 => match c.u16() {
                Some(alias) => {
                    out.topic_alias = Some(alias);
                    true
                }
                None => false,
            },
            0x02 | 0x11 | 0x18 | 0x27 => c.take(4).is_some(),
            0x0b => c.varint().is_some(),
            0x26 => c.prefixed().is_some() && c.prefixed().is_some(),
            _ => c.prefixed().is_some(),
        };
        if !ok {
            break;
        }
        bump(&mut stats.v5_properties, name, 1);
    }
    out
}

/// v5 property names as Wireshark shows them.
fn property_name(id: u8) -> Option<&'static str> {
    Some(match id {
        0x01 => "Payload Format Indicator (0x01)",
        0x02 => "Publication Expiry Interval (0x02)",
        0x03 => "Content Type (0x03)",
        0x08 => "Response Topic (0x08)",
        0x09 => "Correlation Data (0x09)",
        0x0b => "Subscription Identifier (0x0b)",
        0x11 => "Session Expiry Interval (0x11)",
        0x12 => "Assigned Client Identifier (0x12)",
        0x13 => "Server Keep Alive (0x13)",
        0x15 => "Authentication Method (0x15)",
        0x16 => "Authentication Data (0x16)",
        0x17 => "Request Problem Information (0x17)",
        0x18 => "Will Delay Interval (0x18)",
        0x19 => "Request Response Information (0x19)",
        0x1a => "Response Information (0x1a)",
        0x1c => "Server Reference (0x1c)",
        0x1f => "Reason String (0x1f)",
        0x21 => "Receive Maximum (0x21)",
        0x22 => "Topic Alias Maximum (0x22)",
        0x23 => "Topic Alias (0x23)",
        0x24 => "Maximum QoS (0x24)",
        0x25 => "Retain Available (0x25)",
        0x26 => "User Property (0x26)",
        0x27 => "Maximum Packet Size (0x27)",
        0x28 => "Wildcard Subscription Available (0x28)",
        0x29 => "Subscription Identifier Available (0x29)",
        0x2a => "Shared Subscription Available (0x2a)",
        _ => return None,
    })
}

// ---------------------------------------------------------------------------
// Dissector state

/// The answer an exchange waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Awaits {
    Puback,
    Pubrec,
    Pubcomp,
    Suback,
    Unsuback,
}

/// A packet id in use: the request that took it and the exchange it opened.
#[derive(Clone, Copy, Debug)]
struct Pending {
    packet_id: u16,
    exchange: u32,
    awaits: Awaits,
}

/// Where one direction's stream is.
#[derive(Clone, Debug)]
enum Phase {
    /// Between packets, collecting a fixed header (`Side::fixed`).
    Fixed,
    /// Inside a control packet; a prefix of it is kept in `Side::keep`.
    Control { fixed: Fixed, left: u64, seen: u64 },
    /// Inside a PUBLISH's variable header.
    Head(Head),
    /// Inside a PUBLISH's application message.
    Body { exchange: u32, left: u64, close: bool },
    /// Inside a packet that did not parse: its bytes go to payload.
    Skip { left: u64, seen: u64, reason: &'static str },
    /// Framing lost: the rest of this direction is unparsed payload.
    Lost,
}

/// The PUBLISH variable header is read field by field as bytes arrive, so a
/// long topic or property list never has to be held whole.
#[derive(Clone, Debug)]
struct Head {
    flags: u8,
    qos: u8,
    /// Packet bytes not yet read.
    left: u64,
    /// Packet bytes read so far, fixed header included.
    seen: u64,
    step: Step,
    /// A 2-byte field or a varint being read.
    field: [u8; 4],
    field_len: usize,
    topic_len: usize,
    topic_seen: usize,
    packet_id: Option<u16>,
    props_len: usize,
    props_seen: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    TopicLen,
    Topic,
    PacketId,
    PropsLen,
    Props,
    Done,
}

/// One direction of the connection.
#[derive(Clone, Debug)]
struct Side {
    phase: Phase,
    fixed: [u8; 5],
    fixed_len: usize,
    /// Prefix of the control packet being read (reused).
    keep: Vec<u8>,
    /// Prefix of the PUBLISH topic being read (reused).
    topic: Vec<u8>,
    /// Prefix of the PUBLISH properties being read (reused).
    props: Vec<u8>,
    last_publish_ns: Option<i64>,
    last_pingreq_ns: Option<i64>,
    /// Bytes given up on after framing was lost, and why.
    lost_bytes: u64,
    lost_reason: &'static str,
}

impl Side {
    fn new() -> Side {
        Side {
            phase: Phase::Fixed,
            fixed: [0; 5],
            fixed_len: 0,
            keep: Vec::new(),
            topic: Vec::new(),
            props: Vec::new(),
            last_publish_ns: None,
            last_pingreq_ns: None,
            lost_bytes: 0,
            lost_reason: "",
        }
    }
}

/// Packet ids awaiting an answer, oldest first, and the set of them: a
/// PUBLISH with a new id, or an acknowledgement of an unknown one, is
/// settled without walking up to `INFLIGHT_CAP` entries.
#[derive(Clone, Debug, Default)]
struct InFlight {
    queue: VecDeque<Pending>,
    ids: std::collections::HashSet<u16, foldhash::fast::RandomState>,
}

/// MQTT dissector for one connection (both directions).
#[derive(Clone, Debug)]
pub struct Mqtt {
    /// From CONNECT; 3.1.1 until one is seen.
    version: Version,
    counted: bool,
    next_exchange: u32,
    c2s: Side,
    s2c: Side,
    /// Packet ids awaiting an answer, by the direction that sent the request.
    inflight: [InFlight; 2],
    /// v5 topic aliases, by the direction that sends the PUBLISH.
    aliases: [HashMap<u16, String>; 2],
}

impl Default for Mqtt {
    fn default() -> Self {
        Mqtt::new()
    }
}

impl Mqtt {
    pub fn new() -> Mqtt {
        Mqtt {
            version: Version::V311,
            counted: false,
            next_exchange: 0,
            c2s: Side::new(),
            s2c: Side::new(),
            inflight: [InFlight::default(), InFlight::default()],
            aliases: [HashMap::new(), HashMap::new()],
        }
    }

    fn side(&mut self, dir: Dir) -> &mut Side {
        match dir {
            Dir::C2S => &mut self.c2s,
            Dir::S2C => &mut self.s2c,
        }
    }

    fn inflight(&mut self, originator: Dir) -> &mut InFlight {
        let [c2s, s2c] = &mut self.inflight;
        if originator == Dir::C2S { c2s } else { s2c }
    }

    fn aliases(&mut self, sender: Dir) -> &mut HashMap<u16, String> {
        let [c2s, s2c] = &mut self.aliases;
        if sender == Dir::C2S { c2s } else { s2c }
    }

    fn new_exchange(&mut self) -> u32 {
        self.next_exchange = self.next_exchange.wrapping_add(1);
        self.next_exchange
    }

    /// Remembers a packet id awaiting an answer; a stale entry for the same
    /// id (its answer never seen) is replaced.
    fn remember(&mut self, originator: Dir, p: Pending) {
        let f = self.inflight(originator);
        if !f.ids.insert(p.packet_id) {
            f.queue.retain(|e| e.packet_id != p.packet_id);
        }
        if f.queue.len() >= INFLIGHT_CAP
            && let Some(old) = f.queue.pop_front()
        {
            f.ids.remove(&old.packet_id);
        }
        f.queue.push_back(p);
    }

    fn lookup(&mut self, originator: Dir, packet_id: u16, awaits: &[Awaits]) -> Option<(usize, Pending)> {
        let f = self.inflight(originator);
        if !f.ids.contains(&packet_id) {
            return None;
        }
        f.queue
            .iter()
            .enumerate()
            .find(|(_, e)| e.packet_id == packet_id && awaits.contains(&e.awaits))
            .map(|(i, e)| (i, *e))
    }

    /// The answer to the `i`th packet id awaiting one has come.
    fn answered(&mut self, originator: Dir, i: usize) {
        let f = self.inflight(originator);
        if let Some(p) = f.queue.remove(i) {
            f.ids.remove(&p.packet_id);
        }
    }

    fn count_connection(&mut self, stats: &mut Stats) {
        if !self.counted {
            self.counted = true;
            stats.connections += 1;
        }
    }

    /// Consumes a prefix of `data` (at least one byte when `data` is not
    /// empty) and moves the direction's phase on.
    fn step(&mut self, dir: Dir, data: &[u8], emit: &mut Emit) -> usize {
        let phase = std::mem::replace(&mut self.side(dir).phase, Phase::Fixed);
        let (used, next) = match phase {
            Phase::Fixed => self.read_fixed(dir, data, emit),
            Phase::Control { fixed, left, seen } => {
                let n = take_len(left, data);
                let side = self.side(dir);
                let room = CONTROL_KEEP.saturating_sub(side.keep.len());
                side.keep.extend_from_slice(data.get(..n.min(room)).unwrap_or(&[]));
                let (left, seen) = (left - n as u64, seen + n as u64);
                if left == 0 {
                    (n, self.control_done(dir, fixed, seen, emit))
                } else {
                    (n, Phase::Control { fixed, left, seen })
                }
            }
            Phase::Head(head) => self.read_head(dir, head, data, emit),
            Phase::Body { exchange, left, close } => {
                let n = take_len(left, data);
                self.body_bytes(dir, exchange, n as u64, emit);
                (n, body_next(exchange, left - n as u64, close, emit))
            }
            Phase::Skip { left, seen, reason } => {
                let n = take_len(left, data);
                emit.span(Class::Payload, n as u64, MsgRef::Flow);
                (n, skip_next(left - n as u64, seen + n as u64, reason, emit))
            }
            Phase::Lost => {
                self.lose(dir, data.len() as u64, None, emit);
                (data.len(), Phase::Lost)
            }
        };
        self.side(dir).phase = next;
        used
    }

    /// Books bytes of a direction that lost framing.
    fn lose(&mut self, dir: Dir, n: u64, reason: Option<&'static str>, emit: &mut Emit) {
        emit.span(Class::Payload, n, MsgRef::Flow);
        emit.stats.mqtt.unparsed_bytes += n;
        let side = self.side(dir);
        side.lost_bytes += n;
        if let Some(r) = reason
            && side.lost_reason.is_empty()
        {
            side.lost_reason = r;
        }
    }

    fn read_fixed(&mut self, dir: Dir, data: &[u8], emit: &mut Emit) -> (usize, Phase) {
        let mut used = 0;
        for &byte in data {
            let side = self.side(dir);
            let Some(slot) = side.fixed.get_mut(side.fixed_len) else {
                // Unreachable: a fixed header resolves within 5 bytes.
                break;
            };
            *slot = byte;
            side.fixed_len += 1;
            used += 1;
            match parse_fixed(side.fixed.get(..side.fixed_len).unwrap_or(&[])) {
                FixedParse::Need => {}
                FixedParse::Bad(reason) => {
                    let n = std::mem::take(&mut side.fixed_len) as u64;
                    self.lose(dir, n, Some(reason), emit);
                    return (used, Phase::Lost);
                }
                FixedParse::Ok(fixed) => {
                    side.fixed_len = 0;
                    return (used, self.begin(dir, fixed, emit));
                }
            }
        }
        (used, Phase::Fixed)
    }

    /// A fixed header was read: start on the packet's body.
    fn begin(&mut self, dir: Dir, fixed: Fixed, emit: &mut Emit) -> Phase {
        let rem = u64::from(fixed.rem);
        let seen = fixed.len as u64;
        if fixed.kind != Kind::Publish {
            self.side(dir).keep.clear();
            if rem == 0 {
                return self.control_done(dir, fixed, seen, emit);
            }
            return Phase::Control { fixed, left: rem, seen };
        }
        let qos = (fixed.flags >> 1) & 0x03;
        if qos == 3 {
            return damaged(seen, rem, "PUBLISH with QoS 3", emit);
        }
        let side = self.side(dir);
        side.topic.clear();
        side.props.clear();
        let head = Head {
            flags: fixed.flags,
            qos,
            left: rem,
            seen,
            step: Step::TopicLen,
            field: [0; 4],
            field_len: 0,
            topic_len: 0,
            topic_seen: 0,
            packet_id: None,
            props_len: 0,
            props_seen: 0,
        };
        // A PUBLISH with no body at all: let read_head find it malformed.
        if rem == 0 {
            let (_, next) = self.read_head(dir, head, &[], emit);
            return next;
        }
        Phase::Head(head)
    }

    fn read_head(&mut self, dir: Dir, mut h: Head, data: &[u8], emit: &mut Emit) -> (usize, Phase) {
        let v5 = self.version == Version::V5;
        let mut used = 0;
        loop {
            if h.step == Step::Done {
                return (used, self.head_done(dir, h, emit));
            }
            if h.left == 0 {
                return (used, damaged(h.seen, 0, "PUBLISH header longer than the packet", emit));
            }
            let avail = data.get(used..).unwrap_or(&[]);
            let avail = avail.get(..take_len(h.left, avail)).unwrap_or(&[]);
            if avail.is_empty() {
                return (used, Phase::Head(h));
            }
            let n = match h.step {
                Step::TopicLen | Step::PacketId => {
                    let n = (2 - h.field_len).min(avail.len());
                    for (slot, &b) in h.field.iter_mut().skip(h.field_len).zip(avail.iter().take(n)) {
                        *slot = b;
                    }
                    h.field_len += n;
                    if h.field_len == 2 {
                        let value = u16::from_be_bytes([h.field[0], h.field[1]]);
                        h.field_len = 0;
                        if h.step == Step::TopicLen {
                            h.topic_len = usize::from(value);
                            h.step = if value > 0 { Step::Topic } else { after_topic(h.qos, v5) };
                        } else {
                            h.packet_id = Some(value);
                            h.step = if v5 { Step::PropsLen } else { Step::Done };
                        }
                    }
                    n
                }
                Step::Topic => {
                    let n = (h.topic_len - h.topic_seen).min(avail.len());
                    let side = self.side(dir);
                    let room = TOPIC_KEEP.saturating_sub(side.topic.len());
                    side.topic.extend_from_slice(avail.get(..n.min(room)).unwrap_or(&[]));
                    h.topic_seen += n;
                    if h.topic_seen == h.topic_len {
                        h.step = after_topic(h.qos, v5);
                    }
                    n
                }
                Step::PropsLen => {
                    if let Some(slot) = h.field.get_mut(h.field_len) {
                        *slot = avail.first().copied().unwrap_or(0);
                    }
                    h.field_len += 1;
                    match varint(h.field.get(..h.field_len).unwrap_or(&[])) {
                        VarInt::Need => {}
                        VarInt::Ok(len, _) => {
                            h.field_len = 0;
                            h.props_len = len as usize;
                            h.step = if len > 0 { Step::Props } else { Step::Done };
                        }
                        VarInt::Bad => {
                            let (seen, left) = (h.seen + 1, h.left - 1);
                            return (
                                used + 1,
                                damaged(seen, left, "PUBLISH property length longer than 4 bytes", emit),
                            );
                        }
                    }
                    1
                }
                Step::Props => {
                    let n = (h.props_len - h.props_seen).min(avail.len());
                    let side = self.side(dir);
                    let room = PROPS_KEEP.saturating_sub(side.props.len());
                    side.props.extend_from_slice(avail.get(..n.min(room)).unwrap_or(&[]));
                    h.props_seen += n;
                    if h.props_seen == h.props_len {
                        h.step = Step::Done;
                    }
                    n
                }
                Step::Done => 0,
            };
            used += n;
            h.left -= n as u64;
            h.seen += n as u64;
        }
    }

    /// The PUBLISH variable header is complete: open (or continue) its
    /// exchange and book the header.
    fn head_done(&mut self, dir: Dir, h: Head, emit: &mut Emit) -> Phase {
        let v5 = self.version == Version::V5;
        let mut props = Props::default();
        if v5 {
            let side = self.side(dir);
            let kept = std::mem::take(&mut side.props);
            emit.stats.mqtt.v5_property_length_sum += h.props_len as u64;
            props = walk_props(&kept, &mut emit.stats.mqtt);
            self.side(dir).props = kept;
        }
        // The topic bytes are borrowed, not copied: a topic is owned only
        // when kept in the alias map or when a description shows an alias.
        let kept_topic = std::mem::take(&mut self.side(dir).topic);
        let stats = &mut emit.stats.mqtt;
        let topic: Cow<str> = if h.topic_len > 0 {
            let mut literal = String::from_utf8_lossy(&kept_topic);
            if h.topic_len > kept_topic.len() {
                literal.to_mut().push('…');
            }
            if let Some(alias) = props.topic_alias {
                stats.topic_alias_set += 1;
                let map = self.aliases(dir);
                if map.len() < ALIAS_CAP || map.contains_key(&alias) {
                    map.insert(alias, literal.clone().into_owned());
                }
            }
            count_topic(stats, &literal);
            literal
        } else if let Some(alias) = props.topic_alias {
            stats.publish_with_empty_topic_alias += 1;
            let found = self.aliases(dir).get(&alias);
            if found.is_none() {
                stats.topic_alias_unresolved += 1;
            }
            // Only the description shows the topic an alias stands for.
            match found {
                _ if !emit.describe => Cow::Borrowed(""),
                Some(t) => Cow::Owned(t.clone()),
                None => Cow::Owned(format!("alias {alias}")),
            }
        } else {
            // An empty topic without an alias is a protocol error; say so.
            Cow::Borrowed("(empty topic)")
        };

        let dup = h.flags & 0x08 != 0;
        let retain = h.flags & 0x01 != 0;
        let exchange = match h.packet_id.filter(|_| h.qos > 0) {
            Some(packet_id) => {
                let awaits = if h.qos == 1 { Awaits::Puback } else { Awaits::Pubrec };
                // A DUP resend of a packet still in flight continues its exchange.
                let resent = if dup { self.lookup(dir, packet_id, &[awaits]).map(|(_, p)| p.exchange) } else { None };
                match resent {
                    Some(ex) => ex,
                    None => {
                        let ex = self.new_exchange();
                        let what = emit.what(|| format!("PUBLISH {} qos{} id {packet_id}", shown(&topic), h.qos));
                        emit.event(Event::Open { id: ex, kind: KIND, what });
                        self.remember(dir, Pending { packet_id, exchange: ex, awaits });
                        ex
                    }
                }
            }
            None => {
                let ex = self.new_exchange();
                let what = emit.what(|| format!("PUBLISH {} qos0", shown(&topic)));
                emit.event(Event::Open { id: ex, kind: KIND, what });
                ex
            }
        };
        let facets = Facets {
            method: Method::Publish,
            qos: h.qos,
            resource: resource_hash(if kept_topic.is_empty() { topic.as_bytes() } else { &kept_topic }),
            ..Default::default()
        };
        emit.event(Event::Facets { id: exchange, facets });
        drop(topic);
        self.side(dir).topic = kept_topic;
        emit.span(Class::AppHeader, h.seen, MsgRef::Exchange(exchange));
        self.count_connection(&mut emit.stats.mqtt);

        let side = self.side(dir);
        let last = side.last_publish_ns.replace(emit.ts_ns);
        let stats = &mut emit.stats.mqtt;
        count_packet(stats, Kind::Publish, dir, h.seen);
        stats.publish_header_bytes += h.seen;
        match dir {
            Dir::C2S => stats.publish_c2s += 1,
            Dir::S2C => stats.publish_s2c += 1,
        }
        stats.publish_qos.add(usize::from(h.qos.min(3)), 1);
        stats.publish_retain += u64::from(retain);
        stats.publish_dup += u64::from(dup);
        Summary::add_to(&mut stats.publish_payload_size, h.left as f64);
        if let Some(prev) = last {
            let gap = emit.ts_ns.saturating_sub(prev) as f64 / 1e9;
            match dir {
                Dir::C2S => Summary::add_to(&mut stats.publish_interval_c2s_s, gap),
                Dir::S2C => Summary::add_to(&mut stats.publish_interval_s2c_s, gap),
            }
        }
        body_next(exchange, h.left, h.qos == 0, emit)
    }

    fn body_bytes(&mut self, dir: Dir, exchange: u32, n: u64, emit: &mut Emit) {
        emit.span(Class::Payload, n, MsgRef::Exchange(exchange));
        let stats = &mut emit.stats.mqtt;
        stats.publish_payload_bytes += n;
        match dir {
            Dir::C2S => stats.publish_payload_bytes_c2s += n,
            Dir::S2C => stats.publish_payload_bytes_s2c += n,
        }
        stats.packet_bytes.add(Kind::Publish as usize, n);
        stats.total_mqtt_bytes += n;
    }

    /// A control packet is complete: parse its kept prefix and book it.
    fn control_done(&mut self, dir: Dir, fixed: Fixed, total: u64, emit: &mut Emit) -> Phase {
        let kept = std::mem::take(&mut self.side(dir).keep);
        // Only a packet kept whole can be judged malformed past its first fields.
        let whole = kept.len() as u64 == u64::from(fixed.rem);
        match self.control(dir, fixed, &kept, whole, total, emit) {
            Ok(()) => {
                self.count_connection(&mut emit.stats.mqtt);
                count_packet(&mut emit.stats.mqtt, fixed.kind, dir, total);
                emit.stats.mqtt.control_bytes += total;
            }
            Err(reason) => {
                emit.stats.mqtt.malformed_packets += 1;
                emit.malformed(total, MsgRef::Flow, reason);
            }
        }
        let mut kept = kept;
        kept.clear();
        self.side(dir).keep = kept;
        Phase::Fixed
    }

    /// Parses a control packet's body (`body`: its kept prefix) and books its
    /// `total` bytes; `Err` leaves the booking to the caller.
    fn control(
        &mut self,
        dir: Dir,
        fixed: Fixed,
        body: &[u8],
        whole: bool,
        total: u64,
        emit: &mut Emit,
    ) -> Result<(), &'static str> {
        let v5 = self.version == Version::V5;
        let mut c = Cursor::new(body);
        let control = |emit: &mut Emit, msg| emit.span(Class::AppControl, total, msg);
        match fixed.kind {
            Kind::Connect => {
                let short = "CONNECT too short";
                let name = c.prefixed().ok_or(short)?;
                let level = c.u8().ok_or(short)?;
                let flags = c.u8().ok_or(short)?;
                let keepalive = c.u16().ok_or(short)?;
                let version = match (name, level & 0x7f) {
                    (b"MQTT", 4) => Version::V311,
                    (b"MQTT", 5) => Version::V5,
                    (b"MQIsdp", 3) => Version::V31,
                    _ => return Err("CONNECT with an unknown protocol name or level"),
                };
                self.version = version;
                let stats = &mut emit.stats.mqtt;
                stats.note_version(version.name());
                stats.note_first_connect(emit.ts_ns, keepalive);
                bump_capped(&mut stats.keepalives, keepalive, 1);
                if version == Version::V5 {
                    self.props(&mut c, stats);
                    // Will properties follow the client id.
                    if flags & 0x04 != 0 && c.prefixed().is_some() {
                        self.props(&mut c, stats);
                    }
                }
                control(emit, MsgRef::Setup);
            }
            Kind::Connack => {
                let _flags = c.u8().ok_or("CONNACK too short")?;
                let code = c.u8().ok_or("CONNACK too short")?;
                bump_capped(&mut emit.stats.mqtt.connack_codes, code, 1);
                if v5 {
                    self.props(&mut c, &mut emit.stats.mqtt);
                }
                control(emit, MsgRef::Setup);
            }
            Kind::Puback | Kind::Pubrec | Kind::Pubrel | Kind::Pubcomp => {
                let packet_id = c.u16().ok_or("acknowledgement without a packet id")?;
                let reason = if v5 { c.u8().unwrap_or(0) } else { 0 };
                if v5 {
                    self.props(&mut c, &mut emit.stats.mqtt);
                }
                if reason >= 0x80 {
                    note_reason(&mut emit.stats.mqtt, fixed.kind, reason);
                }
                self.acknowledge(dir, fixed.kind, packet_id, reason, total, emit);
            }
            Kind::Subscribe | Kind::Unsubscribe => {
                let packet_id = c.u16().ok_or("SUBSCRIBE/UNSUBSCRIBE without a packet id")?;
                if v5 {
                    self.props(&mut c, &mut emit.stats.mqtt);
                }
                let subscribe = fixed.kind == Kind::Subscribe;
                let mut filters = 0usize;
                let mut first: Option<&[u8]> = None;
                while let Some(filter) = c.prefixed() {
                    if subscribe && c.u8().is_none() {
                        break;
                    }
                    first.get_or_insert(filter);
                    filters += 1;
                }
                if whole && (filters == 0 || !c.rest().is_empty()) {
                    return Err("SUBSCRIBE/UNSUBSCRIBE with a bad topic filter list");
                }
                let first = first.unwrap_or_default();
                let exchange = self.new_exchange();
                let what = emit.what(|| {
                    let shown: String = String::from_utf8_lossy(first).chars().take(SHOW_KEEP).collect();
                    let more = if filters > 1 { format!(" +{}", filters - 1) } else { String::new() };
                    format!("{} {shown}{more} id {packet_id}", fixed.kind.name())
                });
                emit.event(Event::Open { id: exchange, kind: KIND, what });
                if subscribe {
                    let facets = Facets { method: Method::Subscribe, resource: resource_hash(first), ..Default::default() };
                    emit.event(Event::Facets { id: exchange, facets });
                }
                let awaits = if subscribe { Awaits::Suback } else { Awaits::Unsuback };
                self.remember(dir, Pending { packet_id, exchange, awaits });
                control(emit, MsgRef::Exchange(exchange));
            }
            Kind::Suback | Kind::Unsuback => {
                let packet_id = c.u16().ok_or("SUBACK/UNSUBACK without a packet id")?;
                if v5 {
                    self.props(&mut c, &mut emit.stats.mqtt);
                }
                // Return codes: v3.1.1 SUBACK and every v5 ack carry them.
                if fixed.kind == Kind::Suback || v5 {
                    for &code in c.rest() {
                        if code >= 0x80 {
                            note_reason(&mut emit.stats.mqtt, fixed.kind, code);
                        }
                    }
                }
                let awaits = if fixed.kind == Kind::Suback { Awaits::Suback } else { Awaits::Unsuback };
                match self.lookup(dir.flip(), packet_id, &[awaits]) {
                    Some((i, p)) => {
                        self.answered(dir.flip(), i);
                        emit.event(Event::Responded { id: p.exchange });
                        control(emit, MsgRef::Exchange(p.exchange));
                        emit.event(Event::Close { id: p.exchange });
                    }
                    None => control(emit, MsgRef::Flow),
                }
            }
            Kind::Pingreq | Kind::Pingresp => {
                if whole && !body.is_empty() {
                    return Err("PINGREQ/PINGRESP with a body");
                }
                if fixed.kind == Kind::Pingreq {
                    let last = self.side(dir).last_pingreq_ns.replace(emit.ts_ns);
                    if let Some(prev) = last {
                        let gap = emit.ts_ns.saturating_sub(prev) as f64 / 1e9;
                        Summary::add_to(&mut emit.stats.mqtt.pingreq_interval_s, gap);
                    }
                }
                control(emit, MsgRef::Flow);
            }
            Kind::Disconnect | Kind::Auth => {
                if v5 {
                    if let Some(reason) = c.u8()
                        && reason >= 0x80
                    {
                        note_reason(&mut emit.stats.mqtt, fixed.kind, reason);
                    }
                    self.props(&mut c, &mut emit.stats.mqtt);
                }
                let msg = if fixed.kind == Kind::Auth { MsgRef::Setup } else { MsgRef::Flow };
                control(emit, msg);
            }
            Kind::Publish => return Err("PUBLISH taken for a control packet"),
        }
        Ok(())
    }

    /// Reads a v5 property length and the properties it covers (as far as
    /// the kept prefix goes).
    fn props(&self, c: &mut Cursor, stats: &mut Stats) {
        let Some(len) = c.varint() else { return };
        stats.v5_property_length_sum += u64::from(len);
        let rest = c.rest();
        let (list, _) = rest.split_at(rest.len().min(len as usize));
        walk_props(list, stats);
        let _ = c.take(list.len());
    }

    /// PUBACK, PUBREC, PUBREL and PUBCOMP: find the PUBLISH exchange they
    /// belong to and move it on.
    fn acknowledge(&mut self, dir: Dir, kind: Kind, packet_id: u16, reason: u8, total: u64, emit: &mut Emit) {
        // PUBREL travels with the PUBLISH; the other three answer it.
        let (originator, awaits): (Dir, &[Awaits]) = match kind {
            Kind::Puback => (dir.flip(), &[Awaits::Puback]),
            Kind::Pubrec => (dir.flip(), &[Awaits::Pubrec]),
            Kind::Pubrel => (dir, &[Awaits::Pubcomp, Awaits::Pubrec]),
            _ => (dir.flip(), &[Awaits::Pubcomp, Awaits::Pubrec]),
        };
        let Some((i, p)) = self.lookup(originator, packet_id, awaits) else {
            emit.span(Class::AppControl, total, MsgRef::Flow);
            return;
        };
        let msg = MsgRef::Exchange(p.exchange);
        // A v5 PUBREC with a failure reason ends the QoS 2 flow.
        let done = match kind {
            Kind::Puback | Kind::Pubcomp => true,
            Kind::Pubrec => reason >= 0x80,
            _ => false,
        };
        if matches!(kind, Kind::Puback | Kind::Pubrec) {
            emit.event(Event::Responded { id: p.exchange });
        }
        emit.span(Class::AppControl, total, msg);
        if done {
            self.answered(originator, i);
            emit.event(Event::Close { id: p.exchange });
        } else if let Some(e) = self.inflight(originator).queue.get_mut(i) {
            e.awaits = Awaits::Pubcomp;
        }
    }

    /// `len` bytes are missing (the flow stage books them): no span for
    /// them here, only framing. Bytes seen before the gap in a packet the
    /// gap damages are booked as payload.
    fn gap_in(&mut self, dir: Dir, len: u64, emit: &mut Emit) {
        let phase = std::mem::replace(&mut self.side(dir).phase, Phase::Fixed);
        let lost = "capture gap: MQTT framing lost";
        let next = match phase {
            // Lost bytes inside a message body: framing survives.
            Phase::Body { exchange, left, close } if len <= left => body_next(exchange, left - len, close, emit),
            Phase::Body { .. } => {
                self.lose(dir, 0, Some(lost), emit);
                Phase::Lost
            }
            // Inside a header or control packet: the packet is damaged but
            // its end is known.
            Phase::Control { left, seen, .. } if len <= left => {
                emit.span(Class::Payload, seen, MsgRef::Flow);
                skip_next(left - len, seen, "MQTT packet cut by a capture gap", emit)
            }
            Phase::Head(h) if len <= h.left => {
                emit.span(Class::Payload, h.seen, MsgRef::Flow);
                skip_next(h.left - len, h.seen, "MQTT packet cut by a capture gap", emit)
            }
            Phase::Skip { left, seen, reason } if len <= left => skip_next(left - len, seen, reason, emit),
            Phase::Control { seen, .. } => {
                self.lose(dir, seen, Some(lost), emit);
                Phase::Lost
            }
            Phase::Head(h) => {
                self.lose(dir, h.seen, Some(lost), emit);
                Phase::Lost
            }
            Phase::Skip { .. } => {
                self.lose(dir, 0, Some(lost), emit);
                Phase::Lost
            }
            Phase::Fixed => {
                let partial = std::mem::take(&mut self.side(dir).fixed_len) as u64;
                self.lose(dir, partial, Some(lost), emit);
                Phase::Lost
            }
            Phase::Lost => Phase::Lost,
        };
        self.side(dir).phase = next;
    }

    fn finish_side(&mut self, dir: Dir, emit: &mut Emit) {
        let phase = std::mem::replace(&mut self.side(dir).phase, Phase::Fixed);
        let stats = &mut emit.stats.mqtt;
        match phase {
            Phase::Fixed => {
                let n = std::mem::take(&mut self.side(dir).fixed_len) as u64;
                if n > 0 {
                    stats.malformed_packets += 1;
                    emit.malformed(n, MsgRef::Flow, "truncated MQTT fixed header");
                }
            }
            Phase::Control { fixed, seen, .. } => {
                stats.malformed_packets += 1;
                emit.malformed(seen, MsgRef::Flow, format!("truncated MQTT {}", fixed.kind.name()));
            }
            Phase::Head(h) => {
                stats.malformed_packets += 1;
                emit.malformed(h.seen, MsgRef::Flow, "truncated MQTT PUBLISH header");
            }
            // Its bytes are booked; the message just ended early.
            Phase::Body { .. } => stats.truncated_publishes += 1,
            Phase::Skip { seen, reason, .. } => {
                stats.malformed_packets += 1;
                emit.event(Event::Malformed { bytes: seen, reason: reason.into() });
            }
            Phase::Lost => {}
        }
        let side = self.side(dir);
        let lost = std::mem::take(&mut side.lost_bytes);
        if lost > 0 {
            emit.event(Event::Malformed { bytes: lost, reason: side.lost_reason.into() });
        }
    }
}

impl Dissector for Mqtt {
    fn data(&mut self, dir: Dir, data: &[u8], emit: &mut Emit) {
        let mut rest = data;
        while !rest.is_empty() {
            let used = self.step(dir, rest, emit);
            if used == 0 {
                // Cannot happen (every phase consumes a byte); never spin.
                self.lose(dir, rest.len() as u64, Some("MQTT dissector stalled"), emit);
                self.side(dir).phase = Phase::Lost;
                return;
            }
            rest = rest.get(used..).unwrap_or(&[]);
        }
    }

    fn gap(&mut self, dir: Dir, len: u64, emit: &mut Emit) {
        if len > 0 {
            self.gap_in(dir, len, emit);
        }
    }

    fn finish(&mut self, emit: &mut Emit) {
        self.finish_side(Dir::C2S, emit);
        self.finish_side(Dir::S2C, emit);
    }
}

/// Bytes of `data` that belong to a run with `left` bytes to go.
fn take_len(left: u64, data: &[u8]) -> usize {
    usize::try_from(left).map_or(data.len(), |l| l.min(data.len()))
}

fn after_topic(qos: u8, v5: bool) -> Step {
    if qos > 0 {
        Step::PacketId
    } else if v5 {
        Step::PropsLen
    } else {
        Step::Done
    }
}

/// A topic or filter as an exchange name shows it: at most `SHOW_KEEP`
/// characters.
fn shown(topic: &str) -> Cow<'_, str> {
    match topic.char_indices().nth(SHOW_KEEP) {
        Some((cut, _)) => Cow::Owned(format!("{}…", topic.get(..cut).unwrap_or(""))),
        None => Cow::Borrowed(topic),
    }
}

fn body_next(exchange: u32, left: u64, close: bool, emit: &mut Emit) -> Phase {
    if left > 0 {
        return Phase::Body { exchange, left, close };
    }
    if close {
        emit.event(Event::Close { id: exchange });
    }
    Phase::Fixed
}

/// A packet that does not parse: its `seen` bytes are booked as payload
/// here, the `left` still to come will be skipped.
fn damaged(seen: u64, left: u64, reason: &'static str, emit: &mut Emit) -> Phase {
    emit.span(Class::Payload, seen, MsgRef::Flow);
    skip_next(left, seen, reason, emit)
}

fn skip_next(left: u64, seen: u64, reason: &'static str, emit: &mut Emit) -> Phase {
    if left > 0 {
        return Phase::Skip { left, seen, reason };
    }
    emit.stats.mqtt.malformed_packets += 1;
    emit.event(Event::Malformed { bytes: seen, reason: reason.into() });
    Phase::Fixed
}

// ---------------------------------------------------------------------------
// Statistics

/// The `mqtt` section of the report. REPORT.md fixes `packets`,
/// `keepalive_s`, `publish_payload_bytes` and `total_mqtt_bytes`; the rest
/// mirrors the truth files' extras.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Stats {
    /// Protocol version of the connections ("3.1", "3.1.1", "5.0"; "mixed").
    pub version: Option<String>,
    /// Connections (CONNECTs) by version.
    pub versions: BTreeMap<String, u64>,
    /// Connections that carried at least one MQTT packet.
    pub connections: u64,
    /// Well-formed packets by type.
    pub packets: Tally<Kinds>,
    /// Bytes of those packets by type, fixed header included.
    pub packet_bytes: Tally<Kinds>,
    /// Packets by type and direction (`PUBLISH_c2s`).
    pub packets_by_direction: Tally<KindsByDir>,
    /// Keep-alive of the first CONNECT, seconds.
    pub keepalive_s: Option<u16>,
    /// (capture time, keep-alive) of the first CONNECT: the earliest wins a
    /// merge, whichever thread saw it.
    #[serde(skip)]
    first_connect: Option<(i64, u16)>,
    /// Keep-alives of all CONNECTs, seconds, by value (the `SMALL_MAP_CAP` smallest values).
    #[serde(deserialize_with = "super::numbered_keys")]
    pub keepalives: BTreeMap<u16, u64>,
    pub publish_payload_bytes: u64,
    /// PUBLISH fixed + variable headers (the `app_header` they cost).
    pub publish_header_bytes: u64,
    pub publish_payload_bytes_c2s: u64,
    pub publish_payload_bytes_s2c: u64,
    pub publish_c2s: u64,
    pub publish_s2c: u64,
    pub publish_qos: Tally<Decimal>,
    pub publish_payload_size: Option<Summary>,
    pub publish_retain: u64,
    pub publish_dup: u64,
    /// PUBLISH count by topic name as sent (an alias-only PUBLISH is in
    /// `publish_with_empty_topic_alias`), for the `TOPICS_CAP` smallest topics.
    pub topics: BTreeMap<String, u64>,
    /// PUBLISHes to topics beyond that cap.
    pub topics_other: u64,
    /// v5 PUBLISHes with an empty topic that rely on a topic alias.
    pub publish_with_empty_topic_alias: u64,
    /// v5 PUBLISHes that set a topic alias (topic + alias).
    pub topic_alias_set: u64,
    /// Alias-only PUBLISHes whose alias was never seen set.
    pub topic_alias_unresolved: u64,
    /// Bytes of every packet but PUBLISH (the `app_control` they cost).
    pub control_bytes: u64,
    /// Bytes of all well-formed MQTT packets.
    pub total_mqtt_bytes: u64,
    pub publish_interval_c2s_s: Option<Summary>,
    pub publish_interval_s2c_s: Option<Summary>,
    pub pingreq_interval_s: Option<Summary>,
    /// Sum of the v5 property lengths of all packets.
    pub v5_property_length_sum: u64,
    pub v5_properties: BTreeMap<String, u64>,
    /// CONNACK return / reason codes.
    #[serde(deserialize_with = "super::numbered_keys")]
    pub connack_codes: BTreeMap<u8, u64>,
    /// Failure reason codes (>= 0x80) by packet type, e.g. `PUBACK 0x87`.
    pub error_reason_codes: BTreeMap<String, u64>,
    /// Packets whose content did not parse (their bytes are payload).
    pub malformed_packets: u64,
    /// Bytes after framing was lost (payload).
    pub unparsed_bytes: u64,
    /// PUBLISHes whose message was cut off by the end of the flow.
    pub truncated_publishes: u64,
}

impl Stats {
    fn note_first_connect(&mut self, ts_ns: i64, keepalive: u16) {
        // Ties (same timestamp) go to the smaller value, so the outcome does
        // not depend on the order flows were seen in.
        if self.first_connect.is_none_or(|first| (ts_ns, keepalive) < first) {
            self.first_connect = Some((ts_ns, keepalive));
            self.keepalive_s = Some(keepalive);
        }
    }

    pub fn merge(&mut self, o: &Stats) {
        if let Some(v) = &o.version {
            self.note_version_only(v);
        }
        merge_map(&mut self.versions, &o.versions);
        self.connections += o.connections;
        self.packets.merge(&o.packets);
        self.packet_bytes.merge(&o.packet_bytes);
        self.packets_by_direction.merge(&o.packets_by_direction);
        if let Some((ts, k)) = o.first_connect {
            self.note_first_connect(ts, k);
        }
        for (k, n) in &o.keepalives {
            bump_capped(&mut self.keepalives, *k, *n);
        }
        self.publish_payload_bytes += o.publish_payload_bytes;
        self.publish_header_bytes += o.publish_header_bytes;
        self.publish_payload_bytes_c2s += o.publish_payload_bytes_c2s;
        self.publish_payload_bytes_s2c += o.publish_payload_bytes_s2c;
        self.publish_c2s += o.publish_c2s;
        self.publish_s2c += o.publish_s2c;
        self.publish_qos.merge(&o.publish_qos);
        Summary::merge_into(&mut self.publish_payload_size, &o.publish_payload_size);
        self.publish_retain += o.publish_retain;
        self.publish_dup += o.publish_dup;
        for (topic, n) in &o.topics {
            add_topic(self, topic, *n);
        }
        self.topics_other += o.topics_other;
        self.publish_with_empty_topic_alias += o.publish_with_empty_topic_alias;
        self.topic_alias_set += o.topic_alias_set;
        self.topic_alias_unresolved += o.topic_alias_unresolved;
        self.control_bytes += o.control_bytes;
        self.total_mqtt_bytes += o.total_mqtt_bytes;
        Summary::merge_into(&mut self.publish_interval_c2s_s, &o.publish_interval_c2s_s);
        Summary::merge_into(&mut self.publish_interval_s2c_s, &o.publish_interval_s2c_s);
        Summary::merge_into(&mut self.pingreq_interval_s, &o.pingreq_interval_s);
        self.v5_property_length_sum += o.v5_property_length_sum;
        merge_map(&mut self.v5_properties, &o.v5_properties);
        for (k, n) in &o.connack_codes {
            bump_capped(&mut self.connack_codes, *k, *n);
        }
        for (k, n) in &o.error_reason_codes {
            *self.error_reason_codes.entry(k.clone()).or_default() += n;
        }
        self.malformed_packets += o.malformed_packets;
        self.unparsed_bytes += o.unparsed_bytes;
        self.truncated_publishes += o.truncated_publishes;
    }

    fn note_version(&mut self, v: &str) {
        self.note_version_only(v);
        bump(&mut self.versions, v, 1);
    }

    fn note_version_only(&mut self, v: &str) {
        match &self.version {
            None => self.version = Some(v.to_owned()),
            Some(cur) if cur == v || cur == "mixed" => {}
            Some(_) => self.version = Some("mixed".to_owned()),
        }
    }
}

/// Count, smallest, largest and mean of a series.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Summary {
    pub n: u64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    /// The sum in billionths, an integer: merged in any order it gives the
    /// same mean (a float sum would not), so reports do not depend on how
    /// flows were spread over threads.
    #[serde(skip)]
    sum_e9: i128,
}

impl Summary {
    fn add_to(s: &mut Option<Summary>, v: f64) {
        let s = s.get_or_insert_with(|| Summary { n: 0, min: v, max: v, mean: 0.0, sum_e9: 0 });
        s.n += 1;
        s.min = s.min.min(v);
        s.max = s.max.max(v);
        s.sum_e9 += (v * 1e9).round() as i128;
        s.mean = s.sum_e9 as f64 / 1e9 / s.n as f64;
    }

    fn merge_into(s: &mut Option<Summary>, o: &Option<Summary>) {
        let Some(o) = o else { return };
        match s {
            None => *s = Some(o.clone()),
            Some(s) => {
                s.n += o.n;
                s.min = s.min.min(o.min);
                s.max = s.max.max(o.max);
                s.sum_e9 += o.sum_e9;
                s.mean = if s.n > 0 { s.sum_e9 as f64 / 1e9 / s.n as f64 } else { 0.0 };
            }
        }
    }
}

fn bump(map: &mut BTreeMap<String, u64>, key: &str, n: u64) {
    // Nearly always a key already there: a plain lookup is cheaper than
    // building an entry (and allocates nothing).
    match map.get_mut(key) {
        Some(count) => *count += n,
        None => {
            map.insert(key.to_owned(), n);
        }
    }
}

fn merge_map(into: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
    for (k, n) in from {
        bump(into, k, *n);
    }
}

/// Packet kinds, by `kind as usize`.
pub struct Kinds;

impl TallyKeys for Kinds {
    fn name(i: usize) -> Cow<'static, str> {
        Cow::Borrowed(Kind::of_index(i).map_or(OTHER, Kind::name))
    }
}

/// Packet kinds and directions, by `kind as usize * 2 + dir.idx()`.
pub struct KindsByDir;

impl TallyKeys for KindsByDir {
    fn name(i: usize) -> Cow<'static, str> {
        let dir = if i.is_multiple_of(2) { Dir::C2S } else { Dir::S2C };
        Cow::Borrowed(Kind::of_index(i / 2).map_or(OTHER, |k| k.dir_name(dir)))
    }
}

fn count_packet(stats: &mut Stats, kind: Kind, dir: Dir, bytes: u64) {
    stats.packets.add(kind as usize, 1);
    stats.packet_bytes.add(kind as usize, bytes);
    stats.packets_by_direction.add(kind as usize * 2 + dir.idx(), 1);
    stats.total_mqtt_bytes += bytes;
}

fn count_topic(stats: &mut Stats, topic: &str) {
    add_topic(stats, topic, 1);
}

fn add_topic(stats: &mut Stats, topic: &str, n: u64) {
    stats.topics_other += super::bump_capped(&mut stats.topics, topic, n, TOPICS_CAP);
}

fn note_reason(stats: &mut Stats, kind: Kind, code: u8) {
    *stats.error_reason_codes.entry(format!("{} 0x{code:02x}", kind.name())).or_default() += 1;
}

/// Counts a value in a map of at most `SMALL_MAP_CAP` keys (the smallest).
fn bump_capped<K: Ord + Clone>(map: &mut BTreeMap<K, u64>, key: K, n: u64) {
    super::bump_capped(map, &key, n, SMALL_MAP_CAP);
}

#[cfg(test)]
mod tests;
