//! The flow table: TCP connections (numbered the way Wireshark numbers
//! `tcp.stream`) and UDP flows, each with its reassembly, dissector and
//! ledger. Memory is bounded by the flows alive at once: idle and closed
//! flows are finished and handed downstream.

mod device_key;
pub mod tcp;
mod timers;

pub use device_key::{DeviceKey, canonical_map_key, describe as describe_device};

use crate::decode::{Decoded, TcpHeader, Transport, tcp_flags};
use crate::dissect::{self, Dir, Dissector, Emit, Event, FlowCtx, L4, MsgRef, Proto, ProtoStats, Span};
use crate::ledger::exchange::ExchangeFacts;
use crate::ledger::timeline::TimelineBuilder;
use crate::ledger::{Class, Exchange, FlowLedger, Ledger, LiveExchanges};
use crate::report::summary::ExchangeFigures;
use serde::{Deserialize, Serialize};
use std::hash::BuildHasher;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tcp::{HalfStream, Piece};
use timers::{Kind, Timers};

/// About 150 MB of flow state at most: a live flow takes about 470 bytes in
/// the table and up to about 1 KB more in its dissector (TLS, the largest;
/// measured with 200,000 TLS flows that never end, when a flow took 800
/// bytes in the table: 352 MB). The bench capture, a fleet's traffic, peaks
/// at 19 k.
pub const DEFAULT_MAX_LIVE_FLOWS: usize = 100_000;

/// Exchanges held by the live flows together: at most about 60 MB (a held
/// exchange takes 144 bytes, 300 more while it may be listed or when it is
/// a DNS lookup); the bench capture peaks at 47 k.
pub const DEFAULT_MAX_LIVE_EXCHANGES: usize = 131_072;

/// Flow-table settings.
#[derive(Clone)]
pub struct FlowConfig {
    /// A UDP flow idle this long is over; the next datagram starts a new one.
    pub udp_idle_ns: i64,
    /// An open TCP connection idle this long is finished (memory bound).
    pub tcp_idle_ns: i64,
    /// A closed TCP connection is kept this long for late segments.
    pub tcp_closed_linger_ns: i64,
    /// Most out-of-order bytes held per direction before giving up on a gap.
    pub reassembly_cap: usize,
    /// Most flows alive at once: past it, a new flow first finishes the one
    /// due to time out first (memory stays bounded under a SYN flood or a
    /// port scan, whose half-open connections would each live two hours).
    pub max_live_flows: usize,
    /// Most exchanges all live flows hold at once (see `LiveExchanges`).
    pub max_live_exchanges: usize,
    /// `--decode-as PORT=PROTO`.
    pub decode_as: Vec<(u16, &'static dissect::Protocol)>,
    pub dissect: Arc<dissect::Config>,
    /// What tells devices apart (`--device-key`).
    pub device_key: DeviceKey,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            udp_idle_ns: 300 * 1_000_000_000,
            tcp_idle_ns: 2 * 3600 * 1_000_000_000,
            // Long enough for retransmitted FINs and final ACKs; a closed
            // connection held longer only costs memory.
            tcp_closed_linger_ns: 10 * 1_000_000_000,
            reassembly_cap: 1 << 20,
            max_live_flows: DEFAULT_MAX_LIVE_FLOWS,
            max_live_exchanges: DEFAULT_MAX_LIVE_EXCHANGES,
            decode_as: Vec::new(),
            dissect: Arc::new(dissect::Config::default()),
            device_key: DeviceKey::Ip,
        }
    }
}

/// A flow's endpoint; written out as `ip:port` (`[ip]:port` for IPv6).
/// Kept as an address, not text: a flow is made without formatting anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint(pub SocketAddr);

impl Default for Endpoint {
    fn default() -> Self {
        Endpoint(SocketAddr::from(([0, 0, 0, 0], 0)))
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Endpoint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Endpoint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Endpoint, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(d)?;
        text.parse().map(Endpoint).map_err(|e| serde::de::Error::custom(format!("endpoint {text:?}: {e}")))
    }
}

/// A finished flow, as the report lists it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct FlowRecord {
    /// Index in creation order (for TCP, Wireshark's `tcp.stream` order).
    pub id: u64,
    /// Index of the flow's first packet in its input.
    #[serde(skip)]
    pub first_packet: u64,
    pub l4: L4,
    pub client: Endpoint,
    pub server: Endpoint,
    pub app: Proto,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inner: Option<Proto>,
    pub frames: u64,
    pub wire_bytes: u64,
    /// Of `wire_bytes`, every frame's link-layer bytes (headers, tunnels,
    /// trailers; TCP control frames' too, which the ledger books whole as
    /// `tcp_control`): the rest is billed. At most 4 GiB (counted in 32
    /// bits while the flow lives). Not in the report.
    #[serde(skip)]
    pub link_bytes: u64,
    pub payload_bytes_c2s: u64,
    pub payload_bytes_s2c: u64,
    pub control_frames: u64,
    pub retransmitted_frames: u64,
    pub retransmitted_bytes: u64,
    pub start_ts: f64,
    pub end_ts: f64,
    pub classes: Ledger,
    pub syn: u32,
    pub fin: u32,
    pub rst: u32,
    /// Sequence-space gaps the capture missed, and their bytes.
    pub gaps: u64,
    pub lost_bytes: u64,
    /// Bytes on the wire the capture cut off (snaplen), classified by inference.
    pub inferred_bytes: u64,
    pub exchanges: u64,
    /// Connection overhead shared evenly by its exchanges: TCP and TLS
    /// handshakes, MQTT CONNECT/CONNACK, keep-alives, teardown.
    pub setup_bytes: u64,
    /// Wire bytes of the DNS lookup that found this flow's server (shared
    /// by its exchanges too); 0 when none was seen.
    pub dns_lookup_bytes: u64,
    pub malformed_bytes: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub malformed: Vec<String>,
    /// The GTP-U tunnel id of a flow captured in a mobile core (the
    /// device's bearer): the one the client's packets carry, else the
    /// server's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teid: Option<u32>,
    /// The device's key (`DeviceKey`): the report's devices are keyed by it.
    #[serde(skip)]
    pub device: u128,
}

/// One frame, for the radio model and timelines. Made for every packet
/// and, with several jobs, handed from a worker's core to the radio stage's:
/// 64 bytes (a flow's ids and an outside frame's peer share their room).
#[derive(Debug, Clone, Copy)]
pub struct FrameTick {
    /// Index of the packet in its input.
    pub packet: u64,
    pub ts_ns: i64,
    /// A flow's frame: its flow's id and its exchange's (`NO_EXCHANGE`:
    /// none). A frame outside flows: its peer's address, low half first.
    ids: [u64; 2],
    /// The device's address ([`addr_bits`]): a flow's client; for a frame
    /// outside flows its source (0: it carries none).
    pub device: u128,
    pub wire_len: u32,
    /// Of `wire_len`, the link header and trailer.
    pub link_len: u32,
    /// Sent by the flow's client (the device, usually).
    pub uplink: bool,
    /// A frame outside flows (`ids` is its peer).
    outside: bool,
}

/// `FrameTick::ids[1]` of a flow's frame that belongs to no exchange.
const NO_EXCHANGE: u64 = u64::MAX;

impl FrameTick {
    /// A flow's frame.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub fn of_flow(
        packet: u64,
        ts_ns: i64,
        wire_len: u32,
        link_len: u32,
        uplink: bool,
        flow: u64,
        exchange: Option<u64>,
        device: u128,
    ) -> FrameTick {
        // (An exchange id is a count: it never reaches `NO_EXCHANGE`.)
        let ids = [flow, exchange.unwrap_or(NO_EXCHANGE)];
        FrameTick { packet, ts_ns, ids, device, wire_len, link_len, uplink, outside: false }
    }

    /// A frame outside flows (sent by `device` to `peer`; either may be 0).
    pub fn outside(packet: u64, ts_ns: i64, wire_len: u32, link_len: u32, device: u128, peer: u128) -> FrameTick {
        let ids = [peer as u64, (peer >> 64) as u64];
        FrameTick { packet, ts_ns, ids, device, wire_len, link_len, uplink: true, outside: true }
    }

    #[inline]
    pub fn flow(&self) -> Option<u64> {
        (!self.outside).then_some(self.ids[0])
    }

    #[inline]
    pub fn exchange(&self) -> Option<u64> {
        (!self.outside && self.ids[1] != NO_EXCHANGE).then_some(self.ids[1])
    }

    /// A frame outside flows: its destination, the device if the source is
    /// none (0 for a flow's frames).
    #[inline]
    pub fn peer(&self) -> u128 {
        if self.outside { u128::from(self.ids[0]) | (u128::from(self.ids[1]) << 64) } else { 0 }
    }

    /// A flow's frame with its flow's and exchange's ids mapped by `f`.
    #[inline]
    pub fn map_ids(&mut self, f: impl Fn(u64) -> u64) {
        if !self.outside {
            self.ids[0] = f(self.ids[0]);
            if self.ids[1] != NO_EXCHANGE {
                self.ids[1] = f(self.ids[1]);
            }
        }
    }
}

/// An IP address as one integer (IPv4 as IPv4-mapped IPv6), compared and
/// hashed per frame without the address enum's branches; 0 is no address.
#[inline]
pub fn addr_bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => a.to_ipv6_mapped().to_bits(),
        IpAddr::V6(a) => a.to_bits(),
    }
}

/// The address [`addr_bits`] made, back.
pub fn bits_addr(bits: u128) -> IpAddr {
    let v6 = std::net::Ipv6Addr::from_bits(bits);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

/// Where the flow table sends what it finishes.
pub trait FlowSink {
    fn tick(&mut self, t: FrameTick);
    /// An exchange is over (handed on as the flow goes, so a long flow
    /// holds few). Its setup share is added once its flow is done.
    fn exchange_done(&mut self, x: Exchange);
    /// The flow is over; every exchange of it was handed on before.
    fn flow_done(&mut self, rec: FlowRecord);
    /// `n` exchanges' figures for the summaries (every exchange, listed or
    /// not; most at their flow's end, when its setup share is known).
    fn exchange_figures(&mut self, _x: ExchangeFigures, _n: u32) {}
    /// Every exchange's facts, listed or not, for the findings: once each,
    /// with its connection's two ends.
    fn exchange_facts(&mut self, _client: SocketAddr, _server: SocketAddr, _x: &ExchangeFacts) {}
    /// Whether an exchange opened at this packet can still be listed; when
    /// not, dissectors skip building its description and the ledger only
    /// counts it (it never reaches `exchange_done`, unless a DNS lookup).
    fn lists_exchanges_opened_at(&self, _packet: u64) -> bool {
        true
    }
}

/// A flow's two ends, lower first, as plain integers: looked up for every
/// packet, so compared and hashed without the address enum's branches and
/// out-of-line compares. Packed to 8-byte alignment: its addresses' own
/// (16) would pad it and every live flow that holds it.
#[derive(Hash, PartialEq, Eq, Clone, Copy, Debug)]
#[repr(C, packed(8))]
struct FlowKey {
    lo: u128,
    hi: u128,
    lo_port: u16,
    hi_port: u16,
    /// The transport, and whether the addresses are IPv6 (so an IPv4 flow
    /// never meets an IPv6 one with a mapped address).
    l4: u8,
}

impl FlowKey {
    /// The key of a packet from `a` to `b`, and whether `a` is its lower end.
    fn of(l4: L4, a: (IpAddr, u16), b: (IpAddr, u16)) -> (FlowKey, bool) {
        let bits = |ip: IpAddr| match ip {
            IpAddr::V4(v4) => u128::from(v4.to_bits()),
            IpAddr::V6(v6) => v6.to_bits(),
        };
        let l4 = match l4 {
            L4::Tcp => 6,
            L4::Udp => 17,
        } | if a.0.is_ipv6() { 0x80 } else { 0 };
        let (a, b) = ((bits(a.0), a.1), (bits(b.0), b.1));
        let a_is_lo = a <= b;
        let (lo, hi) = if a_is_lo { (a, b) } else { (b, a) };
        (FlowKey { lo: lo.0, hi: hi.0, lo_port: lo.1, hi_port: hi.1, l4 }, a_is_lo)
    }

    /// One end, as the packets had it: the lower or the higher.
    fn end(&self, lower: bool) -> (IpAddr, u16) {
        let (bits, port) = if lower { (self.lo, self.lo_port) } else { (self.hi, self.hi_port) };
        let ip = if self.l4 & 0x80 != 0 {
            IpAddr::V6(std::net::Ipv6Addr::from_bits(bits))
        } else {
            IpAddr::V4(std::net::Ipv4Addr::from_bits(u32::try_from(bits).unwrap_or_default()))
        };
        (ip, port)
    }
}

#[derive(Clone, Default)]
struct TcpState {
    half: [HalfStream; 2],
    /// Sequence number of the first segment seen per direction (Wireshark's
    /// base_seq), when `seq_seen`: as two fields, 8 bytes less than options.
    first_seq: [u32; 2],
    seq_seen: [bool; 2],
    fin: [bool; 2],
    rst: bool,
}

impl TcpState {
    fn first_seq(&self, di: usize) -> Option<u32> {
        self.seq_seen.get(di).copied().unwrap_or(false).then(|| self.first_seq.get(di).copied()).flatten()
    }
}

/// A device key ([`DeviceKey`]) held 8-aligned, for the same reason as
/// [`FlowKey`].
#[derive(Clone, Copy)]
#[repr(C, packed(8))]
struct DeviceBits(u128);

#[derive(Clone)]
struct Flow {
    /// Its two ends: the client and the server are in it (`client`,
    /// `server`), not kept twice in every live flow.
    key: FlowKey,
    /// The client's address as the radio model keys devices.
    device: DeviceBits,
    tcp: Option<TcpState>,
    app: AppState,
    last_ns: i64,
}

/// What a flow counts while it lives. Its `FlowRecord` is made when it
/// ends: a record is more than twice as large, and a live flow's memory is
/// touched by every packet.
#[derive(Clone, Default)]
struct FlowCounts {
    first_packet: u64,
    app: Proto,
    inner: Option<Proto>,
    start_ns: i64,
    frames: u64,
    wire_bytes: u64,
    payload_bytes_c2s: u64,
    payload_bytes_s2c: u64,
    control_frames: u64,
    retransmitted_frames: u64,
    retransmitted_bytes: u64,
    syn: u32,
    fin: u32,
    rst: u32,
    /// Link-layer bytes of its frames, saturating at 4 GiB: in the padding
    /// after `rst`, so a live flow grows no larger; read for refused
    /// attempts (a few frames), where it never saturates.
    link_bytes: u32,
    missed: Option<Box<Missed>>,
    /// The GTP-U tunnel id, when `teid_seen` (not an `Option`: its tag
    /// would take the room `link_bytes` has).
    teid: u32,
    teid_seen: bool,
    /// `teid` is the client's.
    teid_of_client: bool,
}

/// What a flow's capture missed: few flows miss anything.
#[derive(Clone, Default)]
struct Missed {
    gaps: u64,
    lost_bytes: u64,
    inferred_bytes: u64,
}

/// A flow's application side: its dissector, ledger and counts.
#[derive(Clone)]
struct AppState {
    rec: FlowCounts,
    /// The client is the flow key's lower end (here, not in `Flow`: it
    /// fits in this one's padding).
    client_is_lo: bool,
    l4: L4,
    client_port: u16,
    server_port: u16,
    dissector: Option<Box<dyn Dissector>>,
    fl: FlowLedger,
    /// Bytes handed to the dissector less bytes its spans covered, read as
    /// signed (they are the same at the end when the dissector keeps its
    /// contract).
    unspanned: u64,
}

impl Flow {
    fn client(&self) -> (IpAddr, u16) {
        self.key.end(self.app.client_is_lo)
    }

    fn server(&self) -> (IpAddr, u16) {
        self.key.end(!self.app.client_is_lo)
    }

    fn closed(&self) -> bool {
        self.tcp.as_ref().is_some_and(|t| t.rst || (t.fin[0] && t.fin[1]))
    }

    /// Its kind of timeout, and how long it may stay idle.
    fn timeout(&self, cfg: &FlowConfig) -> (Kind, i64) {
        match &self.tcp {
            None => (Kind::Udp, cfg.udp_idle_ns),
            Some(_) if self.closed() => (Kind::TcpClosed, cfg.tcp_closed_linger_ns),
            Some(_) => (Kind::TcpOpen, cfg.tcp_idle_ns),
        }
    }
}

/// What every flow's dissection shares: settings, statistics, and scratch
/// buffers reused for every dissector call.
#[derive(Clone)]
struct Shared {
    cfg: FlowConfig,
    spans: Vec<Span>,
    events: Vec<Event>,
    stats: ProtoStats,
    live: LiveExchanges,
    /// Index of the packet being processed.
    packet: u64,
    /// Whether exchanges opened by this packet may be listed (`Emit::describe`,
    /// `FlowLedger::events`).
    describe: bool,
}

impl Shared {
    /// Where the next dissector call writes, its spans starting empty.
    fn emit(&mut self, ts_ns: i64) -> Emit<'_> {
        self.spans.clear();
        Emit {
            ts_ns,
            spans: &mut self.spans,
            events: &mut self.events,
            stats: &mut self.stats,
            describe: self.describe,
            tight: self.live.over(),
        }
    }
}

#[derive(Clone)]
pub struct FlowTable {
    flows: Vec<Option<Flow>>,
    free: Vec<usize>,
    /// Live flows by key, as slot numbers: the key is compared in the slot,
    /// which the packet works on next anyway. A table this small stays in
    /// cache, so a lookup costs one memory access, not two.
    index: hashbrown::HashTable<u32>,
    hasher: foldhash::fast::RandomState,
    /// Every live flow's deadline, by slot.
    timers: Timers,
    next_flow: u64,
    sh: Shared,
    pub tcp_streams: u64,
    pub udp_streams: u64,
    /// Flows finished early to make room (`max_live_flows`).
    pub evicted_flows: u64,
    /// What the flows booked, by time bin: the report's timeline.
    pub timeline: TimelineBuilder,
}

impl FlowTable {
    pub fn new(cfg: FlowConfig) -> FlowTable {
        let live = LiveExchanges::new(cfg.max_live_exchanges);
        FlowTable {
            flows: Vec::new(),
            free: Vec::new(),
            index: hashbrown::HashTable::new(),
            hasher: foldhash::fast::RandomState::default(),
            timers: Timers::default(),
            next_flow: 0,
            timeline: TimelineBuilder::default(),
            sh: Shared {
                cfg,
                spans: Vec::new(),
                events: Vec::new(),
                stats: ProtoStats::default(),
                live,
                packet: 0,
                describe: true,
            },
            tcp_streams: 0,
            udp_streams: 0,
            evicted_flows: 0,
        }
    }

    pub fn stats(&self) -> &ProtoStats {
        &self.sh.stats
    }

    /// Exchanges closed before their end to keep memory bounded.
    pub fn exchanges_closed_early(&self) -> u64 {
        self.sh.live.closed_early
    }

    /// Exchanges opened when they could no longer be listed: counted here,
    /// never handed to the sink.
    pub fn exchanges_unlisted(&self) -> u64 {
        self.sh.live.unlisted
    }

    /// Finishes flows whose time is up at capture time `now`.
    pub fn expire(&mut self, now: i64, sink: &mut dyn FlowSink) {
        while let Some(slot) = self.timers.due_before(now) {
            if self.flows.get(slot).is_some_and(Option::is_some) {
                self.finish_slot(slot, sink);
            } else {
                // Not a live flow (cannot happen): forget it rather than loop.
                self.timers.unset(slot);
            }
        }
    }

    /// Finishes the live flow due to time out first, to make room.
    fn evict(&mut self, sink: &mut dyn FlowSink) {
        if let Some(slot) = self.timers.earliest()
            && self.flows.get(slot).is_some_and(Option::is_some)
        {
            self.finish_slot(slot, sink);
            self.evicted_flows += 1;
        }
    }

    /// The live flow with this key.
    fn find(&self, key: &FlowKey) -> Option<usize> {
        let flows = &self.flows;
        let in_slot = |&s: &u32| flows.get(s as usize).and_then(Option::as_ref).is_some_and(|f| f.key == *key);
        self.index.find(self.hasher.hash_one(key), in_slot).map(|&s| s as usize)
    }

    /// Takes one decoded TCP or UDP packet. A datagram joined from IP
    /// fragments is `frames` frames, `repeated` bytes of which carried data
    /// another fragment had carried already (booked as retransmission).
    #[allow(clippy::too_many_arguments)]
    pub fn packet(
        &mut self,
        packet: u64,
        ts_ns: i64,
        wire_len: u32,
        d: &Decoded,
        frames: u32,
        repeated: u32,
        sink: &mut dyn FlowSink,
    ) {
        self.sh.packet = packet;
        self.sh.describe = sink.lists_exchanges_opened_at(packet);
        let l4 = match d.transport {
            Transport::Tcp(_) => L4::Tcp,
            Transport::Udp => L4::Udp,
            Transport::Other(_) => return,
        };
        let src = (d.src, d.sport);
        let dst = (d.dst, d.dport);
        let (key, src_is_lo) = FlowKey::of(l4, src, dst);
        let mut slot = self.find(&key);

        // A new SYN on a known 4-tuple with another initial sequence number
        // starts a new connection (Wireshark's tcp.stream rule).
        if let (Some(s), Transport::Tcp(h)) = (slot, d.transport)
            && h.flags & (tcp_flags::SYN | tcp_flags::ACK) == tcp_flags::SYN
            && let Some(f) = self.flows.get(s).and_then(|f| f.as_ref())
        {
            let dir = if src_is_lo == f.app.client_is_lo { 0 } else { 1 };
            let base = f.tcp.as_ref().and_then(|t| t.first_seq(dir));
            if base.is_some_and(|b| b != h.seq) {
                self.finish_slot(s, sink);
                slot = None;
            }
        }
        let slot = match slot {
            Some(s) => s,
            None => {
                if self.index.len() >= self.sh.cfg.max_live_flows {
                    self.evict(sink);
                }
                self.create(key, src_is_lo, l4, ts_ns, src, dst, d)
            }
        };
        // The flow is worked on in place: it is large, and moving it out and
        // back for every packet costs more than the work itself.
        let Some(f) = self.flows.get_mut(slot).and_then(|f| f.as_mut()) else { return };
        let sh = &mut self.sh;
        // The source is the client, as compared by value: the key's two ends
        // may be one.
        let dir = if src_is_lo == f.app.client_is_lo { Dir::C2S } else { Dir::S2C };
        // The flow's run of packets in one time bin is over when a packet
        // falls in another: the run is the packets since, each in its
        // predecessor's bin, so all in the last packet's.
        if !self.timeline.same_bin(f.last_ns, ts_ns) {
            self.timeline.add_run(f.last_ns, &f.app.fl.ledger, Some(ts_ns));
        }
        f.last_ns = ts_ns;
        let rec = &mut f.app.rec;
        rec.frames += frames as u64;
        rec.wire_bytes += wire_len as u64;
        rec.link_bytes = rec.link_bytes.saturating_add(d.link_len);
        if let Some(teid) = d.teid
            && !rec.teid_of_client
        {
            rec.teid = teid;
            rec.teid_seen = true;
            rec.teid_of_client = dir == Dir::C2S;
            // Keyed by tunnel, a device is its uplink tunnel: the client's.
            if rec.teid_of_client && sh.cfg.device_key == DeviceKey::Teid {
                f.device = DeviceBits(device_key::teid_bits(teid));
            }
        }
        let lower = [
            (Class::Link, d.link_len as u64),
            (Class::Network, d.net_len as u64),
            (Class::Transport, d.transport_len as u64),
        ];
        let to = match d.transport {
            Transport::Tcp(h) => tcp_segment(sh, f, ts_ns, dir, h, d, wire_len, &lower),
            _ => udp_datagram(sh, &mut f.app, ts_ns, dir, d, wire_len, &lower),
        };
        if repeated > 0 {
            f.app.rec.retransmitted_bytes += repeated as u64;
            f.app.fl.book(Class::Retransmission, repeated as u64, to.unwrap_or(MsgRef::Flow));
        }
        sink.tick(FrameTick::of_flow(
            packet,
            ts_ns,
            wire_len,
            d.link_len,
            dir == Dir::C2S,
            f.app.fl.flow(),
            f.app.fl.exchange_of_frame(to),
            f.device.0,
        ));
        f.app.fl.take_done(|x| sink.exchange_done(x));
        if !self.sh.live.facts.is_empty() {
            let (client, server) = (SocketAddr::from(f.client()), SocketAddr::from(f.server()));
            for x in self.sh.live.facts.drain(..) {
                sink.exchange_facts(client, server, &x);
            }
        }
        if f.app.fl.has_early() {
            for x in f.app.fl.take_early() {
                sink.exchange_figures(x, 1);
            }
        }
        let (kind, timeout) = f.timeout(&self.sh.cfg);
        self.timers.set(slot, kind, ts_ns.saturating_add(timeout));
    }

    #[allow(clippy::too_many_arguments)]
    fn create(
        &mut self,
        key: FlowKey,
        src_is_lo: bool,
        l4: L4,
        ts_ns: i64,
        src: (IpAddr, u16),
        dst: (IpAddr, u16),
        d: &Decoded,
    ) -> usize {
        // Client: the SYN sender; the SYN-ACK receiver; for UDP the first
        // sender; with no SYN seen, the side with the higher port.
        let client = match (l4, d.transport) {
            (L4::Udp, _) => src,
            (_, Transport::Tcp(h)) if h.flags & tcp_flags::SYN != 0 => {
                if h.flags & tcp_flags::ACK == 0 {
                    src
                } else {
                    dst
                }
            }
            _ => {
                if src.1 >= dst.1 {
                    src
                } else {
                    dst
                }
            }
        };
        let server = if client == src { dst } else { src };
        let id = self.next_flow;
        self.next_flow += 1;
        match l4 {
            L4::Tcp => self.tcp_streams += 1,
            L4::Udp => self.udp_streams += 1,
        }
        let rec =
            FlowCounts { first_packet: self.sh.packet, app: Proto::Unknown, start_ns: ts_ns, ..FlowCounts::default() };
        let flow = Flow {
            key,
            device: DeviceBits(self.sh.cfg.device_key.of_flow(client.0, client == src, d)),
            tcp: (l4 == L4::Tcp).then(TcpState::default),
            app: AppState {
                rec,
                // (When both ends are one, the source is the client and the lower end.)
                client_is_lo: if client == src { src_is_lo } else { !src_is_lo },
                l4,
                client_port: client.1,
                server_port: server.1,
                dissector: None,
                fl: FlowLedger::new(id),
                unspanned: 0,
            },
            last_ns: ts_ns,
        };
        let slot = match self.free.pop() {
            Some(s) => {
                if let Some(x) = self.flows.get_mut(s) {
                    *x = Some(flow);
                }
                s
            }
            None => {
                self.flows.push(Some(flow));
                self.flows.len() - 1
            }
        };
        // Slot numbers are kept as u32: a smaller table stays in cache. No
        // memory holds 2^32 flows.
        if let Ok(s) = u32::try_from(slot) {
            let (flows, hasher) = (&self.flows, &self.hasher);
            self.index.insert_unique(hasher.hash_one(key), s, |&s| {
                flows.get(s as usize).and_then(Option::as_ref).map_or(0, |f| hasher.hash_one(f.key))
            });
        }
        slot
    }

    fn finish_slot(&mut self, slot: usize, sink: &mut dyn FlowSink) {
        // Finished in place and dropped there: a flow is large to move.
        let Some(entry) = self.flows.get_mut(slot) else { return };
        let Some(f) = entry.as_mut() else { return };
        self.timers.unset(slot);
        if let Ok(e) = self.index.find_entry(self.hasher.hash_one(f.key), |&s| s as usize == slot) {
            e.remove();
        }
        self.free.push(slot);
        let ts = f.last_ns;
        let (client, server) = (SocketAddr::from(f.client()), SocketAddr::from(f.server()));
        let app = &mut f.app;
        // Deliver what reordering still holds, then let the dissector finish.
        if let Some(t) = f.tcp.as_mut() {
            for dir in [Dir::C2S, Dir::S2C] {
                let mut feeder = Feeder::new(&mut self.sh, app, ts, dir);
                if let Some(h) = t.half.get_mut(dir.idx()) {
                    h.flush(&mut |p| feeder.piece(p));
                }
            }
        }
        if let Some(dis) = app.dissector.as_mut() {
            dis.finish(&mut self.sh.emit(ts));
            Feeder::new(&mut self.sh, app, ts, Dir::C2S).apply();
        }
        let mut malformed = Vec::new();
        // The dissector contract: every byte fed is in exactly one span.
        let unspanned = app.unspanned as i64;
        if unspanned > 0 {
            let n = unspanned.unsigned_abs();
            app.fl.book(Class::Payload, n, MsgRef::Flow);
            malformed.push(format!("{n} bytes left unclassified by the {} dissector", app.rec.app));
        } else if unspanned < 0 {
            malformed.push(format!(
                "{} dissector classified {} bytes more than it was given",
                app.rec.app,
                unspanned.unsigned_abs()
            ));
        }
        for x in app.fl.finish(&mut self.sh.live) {
            sink.exchange_done(x);
        }
        for x in app.fl.take_early() {
            sink.exchange_figures(x, 1);
        }
        app.fl.take_handed(|x, n| sink.exchange_figures(x, n));

        for x in self.sh.live.facts.drain(..) {
            sink.exchange_facts(client, server, &x);
        }
        self.timeline.add_run(ts, &app.fl.ledger, None);
        for (n, why, times) in app.fl.take_malformed() {
            malformed.push(match times {
                1 => format!("{n} bytes: {why}"),
                _ => format!("{n} bytes: {why} ({times} times)"),
            });
        }
        let c = &app.rec;
        let rec = FlowRecord {
            id: app.fl.flow(),
            first_packet: c.first_packet,
            l4: app.l4,
            client: Endpoint(client),
            server: Endpoint(server),
            app: c.app,
            inner: c.inner,
            frames: c.frames,
            wire_bytes: c.wire_bytes,
            link_bytes: u64::from(c.link_bytes),
            payload_bytes_c2s: c.payload_bytes_c2s,
            payload_bytes_s2c: c.payload_bytes_s2c,
            control_frames: c.control_frames,
            retransmitted_frames: c.retransmitted_frames,
            retransmitted_bytes: c.retransmitted_bytes,
            start_ts: c.start_ns as f64 / 1e9,
            end_ts: ts as f64 / 1e9,
            classes: app.fl.ledger,
            syn: c.syn,
            fin: c.fin,
            rst: c.rst,
            gaps: c.missed.as_ref().map_or(0, |m| m.gaps),
            lost_bytes: c.missed.as_ref().map_or(0, |m| m.lost_bytes),
            inferred_bytes: c.missed.as_ref().map_or(0, |m| m.inferred_bytes),
            exchanges: app.fl.exchanges_total,
            setup_bytes: app.fl.setup_bytes,
            dns_lookup_bytes: 0,
            malformed_bytes: app.fl.malformed_bytes(),
            malformed,
            teid: c.teid_seen.then_some(c.teid),
            device: f.device.0,
        };
        *entry = None;
        sink.flow_done(rec);
    }

    /// End of input: finish every flow, in creation order.
    pub fn finish_all(&mut self, sink: &mut dyn FlowSink) {
        let mut slots: Vec<(u64, usize)> =
            self.flows.iter().enumerate().filter_map(|(i, f)| f.as_ref().map(|f| (f.app.fl.flow(), i))).collect();
        slots.sort_unstable();
        for (_, s) in slots {
            self.finish_slot(s, sink);
        }
        // No flow is left: the slots' memory goes back now, before the
        // lists are put in order (at two jobs every worker finishes at
        // once, and this was part of the run's peak).
        self.timers.clear();
        self.flows = Vec::new();
        self.free = Vec::new();
        self.index = hashbrown::HashTable::new();
    }
}

#[allow(clippy::too_many_arguments)]
fn tcp_segment(
    sh: &mut Shared,
    f: &mut Flow,
    ts_ns: i64,
    dir: Dir,
    h: TcpHeader,
    d: &Decoded,
    wire_len: u32,
    lower: &[(Class, u64); 3],
) -> Option<MsgRef> {
    let cap = sh.cfg.reassembly_cap;
    let t = f.tcp.as_mut()?;
    let app = &mut f.app;
    let di = dir.idx();
    if let (Some(seen), Some(first)) = (t.seq_seen.get_mut(di), t.first_seq.get_mut(di))
        && !*seen
    {
        (*seen, *first) = (true, h.seq);
    }
    if h.flags & tcp_flags::SYN != 0 {
        app.rec.syn += (h.flags & tcp_flags::ACK == 0) as u32;
        t.half.get_mut(di)?.syn(h.seq);
    }
    let teardown = h.flags & (tcp_flags::FIN | tcp_flags::RST) != 0;
    if h.flags & tcp_flags::FIN != 0 {
        app.rec.fin += 1;
    }
    if h.flags & tcp_flags::RST != 0 {
        app.rec.rst += 1;
    }
    let to;
    if d.payload_len == 0 {
        // A segment with no payload is control, whole frame.
        app.rec.control_frames += 1;
        let setup = h.flags & tcp_flags::SYN != 0 || teardown || app.fl.closing;
        to = if setup { Some(MsgRef::Setup) } else { None };
        if d.marks.tunnelled() {
            // The tunnel's bytes are link (REPORT.md): the segment is the inner packet.
            let link = u64::from(d.link_len);
            let parts = [(Class::Link, link), (Class::TcpControl, u64::from(wire_len).saturating_sub(link))];
            app.fl.book_frame(ts_ns, dir, &parts, wire_len as u64, to);
        } else {
            app.fl.book_frame(ts_ns, dir, &[(Class::TcpControl, wire_len as u64)], wire_len as u64, to);
        }
    } else {
        // Sequence space decides what is new and what repeats; new bytes go
        // to the dissector in order, straight from the packet when in order.
        let mut feeder = Feeder::new(sh, app, ts_ns, dir);
        let v = t.half.get_mut(di)?.segment(h.seq, d.payload, d.payload_len as u64, cap, &mut |p| feeder.piece(p));
        to = feeder.to;
        if v.repeated > 0 {
            app.rec.retransmitted_bytes += v.repeated;
            if v.new == 0 {
                app.rec.retransmitted_frames += 1;
            }
        }
        match dir {
            Dir::C2S => app.rec.payload_bytes_c2s += v.new,
            Dir::S2C => app.rec.payload_bytes_s2c += v.new,
        }
        app.fl.book(Class::Retransmission, v.repeated, to.unwrap_or(MsgRef::Flow));
        app.fl.book_frame(ts_ns, dir, lower, wire_len as u64, to);
    }
    // The peer's acknowledgement tells whether bytes we never saw were lost
    // to the capture rather than still in flight.
    if h.flags & tcp_flags::ACK != 0 {
        let other = dir.flip();
        let mut feeder = Feeder::new(sh, app, ts_ns, other);
        t.half.get_mut(other.idx())?.acked(h.ack, &mut |p| feeder.piece(p));
    }
    if h.flags & tcp_flags::FIN != 0 {
        t.fin[di] = true;
    }
    if h.flags & tcp_flags::RST != 0 {
        t.rst = true;
    }
    if t.rst || (t.fin[0] && t.fin[1]) {
        app.fl.closing = true;
    }
    to
}

fn udp_datagram(
    sh: &mut Shared,
    app: &mut AppState,
    ts_ns: i64,
    dir: Dir,
    d: &Decoded,
    wire_len: u32,
    lower: &[(Class, u64); 3],
) -> Option<MsgRef> {
    match dir {
        Dir::C2S => app.rec.payload_bytes_c2s += d.payload_len as u64,
        Dir::S2C => app.rec.payload_bytes_s2c += d.payload_len as u64,
    }
    let mut feeder = Feeder::new(sh, app, ts_ns, dir);
    if !d.payload.is_empty() {
        feeder.piece(Piece::Data(d.payload));
    }
    let cut = (d.payload_len as u64).saturating_sub(d.payload.len() as u64);
    if cut > 0 {
        feeder.piece(Piece::Cut(cut));
    }
    let (to, all_control, repeated) = (feeder.to, feeder.all_control, feeder.retransmitted);
    if repeated > 0 {
        // A message re-sent whole (CoAP, same Message ID): the datagram is
        // a retransmission, as a TCP segment with nothing new is.
        app.rec.retransmitted_bytes += repeated;
        if repeated >= d.payload_len as u64 {
            app.rec.retransmitted_frames += 1;
        }
    }
    if all_control {
        // A datagram holding nothing but an application control message (a
        // CoAP empty ACK) is the UDP counterpart of a bare TCP ACK.
        app.rec.control_frames += 1;
    }
    app.fl.book_frame(ts_ns, dir, lower, wire_len as u64, to);
    to
}

/// Hands stream pieces of one direction to a flow's dissector and books
/// what it says.
struct Feeder<'a> {
    sh: &'a mut Shared,
    app: &'a mut AppState,
    ts_ns: i64,
    dir: Dir,
    /// Where this frame's payload went, for its headers' attribution.
    to: Option<MsgRef>,
    /// Everything classified so far was app_control.
    all_control: bool,
    /// Bytes the dissector classified as `retransmission` (a repeated
    /// datagram message).
    retransmitted: u64,
}

impl<'a> Feeder<'a> {
    fn new(sh: &'a mut Shared, app: &'a mut AppState, ts_ns: i64, dir: Dir) -> Feeder<'a> {
        Feeder { sh, app, ts_ns, dir, to: None, all_control: false, retransmitted: 0 }
    }

    fn piece(&mut self, p: Piece<'_>) {
        match p {
            Piece::Data(data) => {
                if self.app.dissector.is_none() {
                    self.choose_dissector(data);
                }
                let Some(dis) = self.app.dissector.as_mut() else { return };
                dis.data(self.dir, data, &mut self.sh.emit(self.ts_ns));
                self.app.unspanned = self.app.unspanned.wrapping_add(data.len() as u64);
                self.apply();
            }
            Piece::Cut(n) => {
                // On the wire but not captured: payload, by inference.
                self.app.rec.missed.get_or_insert_default().inferred_bytes += n;
                self.app.fl.book(Class::Payload, n, MsgRef::Flow);
                self.gap(n);
            }
            Piece::Lost(n) => {
                let missed = self.app.rec.missed.get_or_insert_default();
                missed.gaps += 1;
                missed.lost_bytes += n;
                self.gap(n);
            }
        }
    }

    fn gap(&mut self, n: u64) {
        if let Some(dis) = self.app.dissector.as_mut() {
            dis.gap(self.dir, n, &mut self.sh.emit(self.ts_ns));
            self.apply();
        }
    }

    /// Books the spans and events of the last dissector call.
    fn apply(&mut self) {
        let app = &mut *self.app;
        // Events first: an exchange opened by these bytes must exist before
        // its bytes are booked.
        app.fl.events(self.ts_ns, self.sh.packet, self.sh.describe, &mut self.sh.events, &mut self.sh.live);
        self.all_control = !self.sh.spans.is_empty() && self.sh.spans.iter().all(|s| s.class == Class::AppControl);
        for s in &self.sh.spans {
            app.unspanned = app.unspanned.wrapping_sub(s.len);
            if s.class == Class::Retransmission {
                self.retransmitted += s.len;
            }
            if matches!(s.msg, MsgRef::Exchange(_)) || self.to.is_none() {
                self.to = Some(s.msg);
            }
        }
        app.fl.spans(&self.sh.spans, self.dir);
        if let Some(a) = app.fl.app.take() {
            if app.rec.app == Proto::Tls {
                app.rec.inner = Some(a);
            } else {
                app.rec.app = a;
            }
        }
    }

    fn choose_dissector(&mut self, first: &[u8]) {
        let app = &mut *self.app;
        let cfg = &self.sh.cfg;
        let forced =
            cfg.decode_as.iter().find(|(p, _)| *p == app.server_port || *p == app.client_port).map(|(_, proto)| *proto);
        let proto = forced.or_else(|| dissect::recognise(app.l4, app.server_port, self.dir, first));
        let ctx = FlowCtx { l4: app.l4, server_port: app.server_port, cfg: cfg.dissect.clone() };
        match proto {
            Some(p) => {
                app.rec.app = p.id;
                app.dissector = Some((p.make)(&ctx));
            }
            None => app.dissector = Some(Box::new(dissect::unknown::Unknown)),
        }
    }
}

#[cfg(test)]
mod tests;
