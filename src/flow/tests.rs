//! Flow-table behaviour on hand-made segments: connection identity the way
//! Wireshark numbers tcp.stream, RST without FIN, retransmission and
//! control accounting, UDP idle timeout.

use super::*;
use crate::decode::{Decoded, TcpHeader, Transport, tcp_flags::*};
use std::net::Ipv4Addr;

const C: (Ipv4Addr, u16) = (Ipv4Addr::new(10, 0, 0, 2), 40000);
const S: (Ipv4Addr, u16) = (Ipv4Addr::new(10, 0, 0, 1), 80);

#[derive(Default)]
struct Sink {
    flows: Vec<FlowRecord>,
    ticks: usize,
}

impl FlowSink for Sink {
    fn tick(&mut self, _t: FrameTick) {
        self.ticks += 1;
    }
    fn exchange_done(&mut self, _x: Exchange) {}
    fn flow_done(&mut self, rec: FlowRecord) {
        self.flows.push(rec);
    }
}

/// A TCP segment of 54 wire bytes of headers plus its payload.
fn seg<'a>(from_client: bool, seq: u32, ack: u32, flags: u8, payload: &'a [u8]) -> Decoded<'a> {
    let (a, b) = if from_client { (C, S) } else { (S, C) };
    Decoded {
        src: a.0.into(),
        dst: b.0.into(),
        sport: a.1,
        dport: b.1,
        transport: Transport::Tcp(TcpHeader { seq, ack, flags, window: 1000 }),
        link_len: 14,
        net_len: 20,
        transport_len: 20,
        payload_len: payload.len() as u32,
        payload,
        marks: crate::decode::Marks::NONE,
        teid: None,
        link_ids: crate::decode::LinkIds::default(),
    }
}

fn run(segs: &[Decoded]) -> (FlowTable, Sink) {
    let mut t = FlowTable::new(FlowConfig::default());
    let mut sink = Sink::default();
    for (i, d) in segs.iter().enumerate() {
        let wire = 54 + d.payload_len;
        t.packet(i as u64, i as i64 * 1_000_000, wire, d, 1, 0, &mut sink);
    }
    t.finish_all(&mut sink);
    (t, sink)
}

#[test]
fn handshake_data_and_close_are_accounted() {
    let (t, sink) = run(&[
        seg(true, 100, 0, SYN, b""),
        seg(false, 500, 101, SYN | ACK, b""),
        seg(true, 101, 501, ACK, b""),
        seg(true, 101, 501, ACK, b"hello"),
        seg(false, 501, 106, ACK, b""),
        seg(true, 106, 501, FIN | ACK, b""),
        seg(false, 501, 107, FIN | ACK, b""),
        seg(true, 107, 502, ACK, b""),
    ]);
    assert_eq!(t.tcp_streams, 1);
    let f = &sink.flows[0];
    assert_eq!((f.frames, f.control_frames, f.payload_bytes_c2s, f.syn, f.fin), (8, 7, 5, 1, 2));
    assert_eq!(f.classes.get(Class::TcpControl), 7 * 54);
    assert_eq!(f.classes.get(Class::Payload), 5);
    assert_eq!(f.classes.total(), f.wire_bytes);
    assert_eq!(f.client.to_string(), "10.0.0.2:40000");
    assert_eq!(sink.ticks, 8);
}

#[test]
fn retransmitted_segment_is_retransmission_not_payload() {
    let (_, sink) = run(&[
        seg(true, 100, 0, SYN, b""),
        seg(true, 101, 0, ACK, b"abcd"),
        seg(true, 101, 0, ACK, b"abcd"),
        seg(true, 103, 0, ACK, b"cdef"),
    ]);
    let f = &sink.flows[0];
    assert_eq!(f.payload_bytes_c2s, 6);
    assert_eq!(f.retransmitted_frames, 1);
    assert_eq!(f.classes.get(Class::Retransmission), 4 + 2);
    assert_eq!(f.classes.get(Class::Payload), 6);
    assert_eq!(f.classes.total(), f.wire_bytes);
}

#[test]
fn rst_without_fin_closes_and_a_new_syn_starts_a_new_connection() {
    let (t, sink) = run(&[
        seg(true, 100, 0, SYN, b""),
        seg(false, 0, 101, RST | ACK, b""),
        seg(true, 9000, 0, SYN, b""),
        seg(false, 700, 9001, SYN | ACK, b""),
    ]);
    assert_eq!(t.tcp_streams, 2);
    assert_eq!(sink.flows.len(), 2);
    assert_eq!((sink.flows[0].rst, sink.flows[0].frames), (1, 2));
    assert_eq!(sink.flows[1].frames, 2);
}

#[test]
fn retransmitted_syn_stays_in_the_same_connection() {
    let (t, _) = run(&[seg(true, 100, 0, SYN, b""), seg(true, 100, 0, SYN, b""), seg(false, 5, 101, SYN | ACK, b"")]);
    assert_eq!(t.tcp_streams, 1);
}

#[test]
fn mid_stream_start_takes_the_higher_port_as_client() {
    let (t, sink) = run(&[seg(false, 501, 106, ACK, b"HTTP/1.1 200 OK\r\n\r\n"), seg(true, 106, 520, ACK, b"")]);
    assert_eq!(t.tcp_streams, 1);
    let f = &sink.flows[0];
    assert_eq!(f.client.to_string(), "10.0.0.2:40000");
    assert_eq!(f.payload_bytes_s2c, 19);
}

#[test]
fn lost_segment_is_a_gap_and_the_stream_resumes() {
    let (_, sink) = run(&[
        seg(true, 100, 0, SYN, b""),
        seg(true, 101, 0, ACK, b"ab"),
        // 3 bytes at 103 never captured.
        seg(true, 106, 0, ACK, b"fg"),
        seg(false, 1, 108, ACK, b""),
    ]);
    let f = &sink.flows[0];
    assert_eq!((f.gaps, f.lost_bytes), (1, 3));
    assert_eq!(f.payload_bytes_c2s, 4);
    assert_eq!(f.classes.total(), f.wire_bytes, "lost bytes are not wire bytes");
}

#[test]
fn udp_flow_ends_after_idle_timeout() {
    let mut t = FlowTable::new(FlowConfig { udp_idle_ns: 5_000_000_000, ..FlowConfig::default() });
    let mut sink = Sink::default();
    let d = udp(5000);
    for (i, ts) in [0i64, 1, 10].iter().enumerate() {
        t.expire(ts * 1_000_000_000, &mut sink);
        t.packet(i as u64, ts * 1_000_000_000, 46, &d, 1, 0, &mut sink);
    }
    t.finish_all(&mut sink);
    assert_eq!(t.udp_streams, 2);
    assert_eq!(sink.flows.iter().map(|f| f.frames).collect::<Vec<_>>(), vec![2, 1]);
}

/// A UDP datagram from `port` to the CoAP port.
fn udp(port: u16) -> Decoded<'static> {
    Decoded {
        src: C.0.into(),
        dst: S.0.into(),
        sport: port,
        dport: 5683,
        transport: Transport::Udp,
        link_len: 14,
        net_len: 20,
        transport_len: 8,
        payload_len: 4,
        payload: &[0x50, 0x01, 0, 1],
        marks: crate::decode::Marks::NONE,
        teid: None,
        link_ids: crate::decode::LinkIds::default(),
    }
}

/// When the capture's clock steps back, a flow's deadline comes before
/// deadlines set earlier; it still ends on time: the next datagram after its
/// timeout starts a new flow.
#[test]
fn a_flow_past_its_timeout_ends_even_when_the_clock_stepped_back() {
    let mut t = FlowTable::new(FlowConfig { udp_idle_ns: 5_000_000_000, ..FlowConfig::default() });
    let mut sink = Sink::default();
    let s = 1_000_000_000i64;
    // Flow A at 100 s (deadline 105 s), then flow B at 50 s (deadline 55 s,
    // set after A's), then B again at 60 s: past its timeout.
    for (i, (port, ts)) in [(1000u16, 100 * s), (2000, 50 * s), (2000, 60 * s)].into_iter().enumerate() {
        t.expire(ts, &mut sink);
        t.packet(i as u64, ts, 46, &udp(port), 1, 0, &mut sink);
    }
    t.finish_all(&mut sink);
    assert_eq!(t.udp_streams, 3, "B's second datagram starts a new flow");
}

#[test]
fn past_the_live_flow_cap_the_flow_due_first_is_finished_early() {
    // Five half-open connections from five ports, room for two live ones.
    let cfg = FlowConfig { max_live_flows: 2, ..FlowConfig::default() };
    let mut t = FlowTable::new(cfg);
    let mut sink = Sink::default();
    for i in 0..5u16 {
        let mut d = seg(true, 100, 0, SYN, b"");
        d.sport = 40000 + i;
        t.packet(u64::from(i), i64::from(i) * 1_000_000, 54, &d, 1, 0, &mut sink);
        assert!(t.index.len() <= 2);
    }
    // The oldest went first, each when a new one needed its room.
    let ports: Vec<u16> = sink.flows.iter().map(|f| f.client.0.port()).collect();
    assert_eq!(ports, vec![40000, 40001, 40002]);
    assert_eq!((t.evicted_flows, t.tcp_streams), (3, 5));
    t.finish_all(&mut sink);
    assert_eq!(sink.flows.len(), 5);
}

#[test]
fn a_finished_table_gives_its_slots_back_and_still_takes_flows() {
    let mut t = FlowTable::new(FlowConfig::default());
    let mut sink = Sink::default();
    for port in 0..100 {
        t.packet(u64::from(port), 0, 46, &udp(40000 + port), 1, 0, &mut sink);
    }
    t.finish_all(&mut sink);
    assert_eq!(sink.flows.len(), 100);
    assert_eq!((t.flows.capacity(), t.free.capacity(), t.index.capacity()), (0, 0, 0));
    // A packet after the end (none comes in a run) is still a flow.
    t.packet(100, 1, 46, &udp(40000), 1, 0, &mut sink);
    t.finish_all(&mut sink);
    assert_eq!((sink.flows.len(), t.udp_streams), (101, 101));
}

/// For each Message ID of `mids`, one CoAP message (first byte `head`:
/// version, type and no token; `code`) from each of `flows` clients, in
/// turn, a millisecond apart; `after` looks at the table after each.
fn coap_round_robin(
    t: &mut FlowTable,
    sink: &mut Sink,
    flows: u16,
    mids: std::ops::Range<u16>,
    head: u8,
    code: u8,
    mut after: impl FnMut(&FlowTable),
) {
    for k in mids {
        for f in 0..flows {
            let msg = [head, code, (k >> 8) as u8, k as u8];
            let d = Decoded { payload: &msg, ..udp(40000 + f) };
            let i = u64::from(k) * u64::from(flows) + u64::from(f);
            t.packet(i, i as i64 * 1_000_000, 46, &d, 1, 0, sink);
            after(t);
        }
    }
}

#[test]
fn past_the_live_exchange_cap_flows_keep_only_their_current_exchange() {
    // 50 flows, each asking 40 CoAP requests never answered, round robin:
    // 2,000 open exchanges, room for 100 held at once.
    let (flows, asks) = (50u16, 40u16);
    let run = |max_live_exchanges: usize| {
        let mut t = FlowTable::new(FlowConfig { max_live_exchanges, ..FlowConfig::default() });
        let mut sink = Sink::default();
        let mut most_held = 0;
        // CON GET, no token.
        coap_round_robin(&mut t, &mut sink, flows, 0..asks, 0x40, 0x01, |t| {
            most_held = most_held.max(t.sh.live.held())
        });
        t.finish_all(&mut sink);
        assert_eq!(t.sh.live.held(), 0);
        (most_held, t.exchanges_closed_early(), sink.flows.iter().map(|f| f.exchanges).sum::<u64>())
    };
    assert_eq!(run(DEFAULT_MAX_LIVE_EXCHANGES), (2_000, 0, 2_000), "under the cap nothing is closed early");
    let (most_held, closed_early, exchanges) = run(100);
    assert!(most_held <= 100 + 2 * usize::from(flows), "{most_held} held");
    assert!(closed_early > 1_000, "{closed_early} closed early");
    assert_eq!(exchanges, 2_000, "every exchange is still counted");
}

#[test]
fn past_the_memory_cap_flows_remember_few_message_ids() {
    // 50 flows, each sending 40 CoAP empty ACKs with Message IDs never seen
    // before, round robin: no exchange, but 2,000 ids to remember.
    let (flows, acks) = (50u16, 40u16);
    let run = |max_live_exchanges: usize| {
        let mut t = FlowTable::new(FlowConfig { max_live_exchanges, ..FlowConfig::default() });
        let mut sink = Sink::default();
        let mut most = 0;
        coap_round_robin(&mut t, &mut sink, flows, 0..acks, 0x60, 0x00, |t| most = most.max(t.sh.live.remembered()));
        // A repeat of each flow's last ACK is still spotted.
        coap_round_robin(&mut t, &mut sink, flows, acks - 1..acks, 0x60, 0x00, |_| ());
        let repeats = t.stats().coap.retransmitted_messages;
        t.finish_all(&mut sink);
        assert_eq!(t.sh.live.remembered(), 0, "finished flows give their ids back");
        (most, repeats)
    };
    assert_eq!(run(DEFAULT_MAX_LIVE_EXCHANGES), (2_000, 50));
    // Room for 10 exchanges: 40 ids, then each flow keeps a few.
    let (most, repeats) = run(10);
    assert!(most <= 40 + 4 * usize::from(flows), "{most} remembered");
    assert_eq!(repeats, 50);
}

/// The table keeps its live flows in one vector of slots, as large as the
/// most flows alive at once (tens of thousands in a fleet's capture): a
/// flow's size is most of the table's memory, 800 bytes before what few
/// flows use was boxed apart (the ledger's `Rare`, `Missed`, a half
/// stream's `Reorder`). A field added inline grows every slot.
#[test]
fn a_live_flow_stays_small() {
    let size = std::mem::size_of::<Option<Flow>>();
    assert!(size <= 464, "a live flow takes {size} bytes");
}

/// A tick is made for every frame and, with several jobs, crosses from a
/// worker's core to the radio stage's: one cache line. What it carries
/// comes back as it was given.
#[test]
fn a_frame_tick_fits_a_cache_line_and_keeps_its_ids() {
    assert!(std::mem::size_of::<FrameTick>() <= 64, "{} bytes", std::mem::size_of::<FrameTick>());
    let mut t = FrameTick::of_flow(7, -3, 60, 14, false, 5, Some(9), 1 << 100);
    assert_eq!((t.flow(), t.exchange(), t.peer(), t.device), (Some(5), Some(9), 0, 1 << 100));
    assert_eq!((t.packet, t.ts_ns, t.wire_len, t.link_len, t.uplink), (7, -3, 60, 14, false));
    t.map_ids(|id| id * 4 + 1);
    assert_eq!((t.flow(), t.exchange()), (Some(21), Some(37)));
    let mut t = FrameTick::of_flow(0, 0, 0, 0, true, u64::MAX - 1, None, 0);
    t.map_ids(|id| id + 1);
    assert_eq!((t.flow(), t.exchange()), (Some(u64::MAX), None));
    let peer = (0xfedc_u128 << 112) | 0x1234;
    let mut t = FrameTick::outside(1, 2, 3, 4, 0, peer);
    t.map_ids(|_| 0);
    assert_eq!((t.flow(), t.exchange(), t.peer(), t.device, t.uplink), (None, None, peer, 0, true));
}
