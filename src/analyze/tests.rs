use super::assemble::{merge_first, sort_in_place_by_key};
use super::collect::{first_past, next_cut, slack};
use super::dispatch::{BATCH, Dispatch, Limits, ROUND_BYTES, follow_route, merge_ticks};
use super::renumber::{RadioTap, Renumber, TickSink, WorkerTag};
use crate::decode::{Decoded, Transport};
use crate::flow::{FlowConfig, FrameTick};

#[derive(Default)]
struct Seen(Vec<u64>);

impl TickSink for Seen {
    fn tick(&mut self, t: &FrameTick) {
        self.0.push(t.packet);
    }
}

fn ticks(packets: &[u64]) -> Vec<FrameTick> {
    packets.iter().map(|&packet| FrameTick::outside(packet, 0, 0, 0, 0, 0)).collect()
}

#[test]
fn a_route_gives_the_order_a_merge_by_packet_gives() {
    let lists = [ticks(&[0, 3, 4]), ticks(&[2, 6]), ticks(&[1, 5])];
    let mut by_route = Seen::default();
    assert!(follow_route(&lists, &[0, 2, 1, 0, 0, 2, 1], &mut Vec::new(), &mut by_route));
    let mut merged = Seen::default();
    merge_ticks(&lists, &mut merged);
    assert_eq!(by_route.0, vec![0, 1, 2, 3, 4, 5, 6]);
    assert_eq!(by_route.0, merged.0);
}

#[test]
fn a_route_that_does_not_fit_its_lists_feeds_nothing() {
    let lists = [ticks(&[0, 2]), ticks(&[1])];
    for route in [&[0u32, 1][..], &[0, 1, 1], &[0, 1, 0, 0], &[0, 5, 0]] {
        let mut seen = Seen::default();
        assert!(!follow_route(&lists, route, &mut Vec::new(), &mut seen));
        assert!(seen.0.is_empty());
    }
}

#[test]
fn worker_tags_split_back_into_worker_and_local_id() {
    for jobs in [1u64, 2, 3, 4, 7, 8, 64, 1000] {
        let tag = WorkerTag::new(jobs);
        for worker in 0..jobs.min(9) {
            for local in [0u64, 1, 2, 12_345, 1 << 40] {
                assert_eq!(tag.split(tag.tag(local, worker)), (worker, local), "jobs {jobs}");
            }
        }
    }
    assert_eq!(WorkerTag::new(1).tag(77, 0), 77);
}

#[test]
fn the_key_past_the_first_max_of_several_lists() {
    let lists = [vec![9u64, 1, 5], vec![3, 2], vec![]];
    assert_eq!(first_past(&lists, 3), Some(5));
    assert_eq!(first_past(&lists, 0), Some(1));
    assert_eq!(first_past(&lists, 4), Some(9));
    assert_eq!(first_past(&lists, 5), None);
}

#[test]
fn lists_are_cut_again_a_quarter_longer_but_never_past_their_slack() {
    assert_eq!(next_cut(0, 10_000), 1024);
    assert_eq!(next_cut(4000, 10_000), 5000);
    assert_eq!(next_cut(12_000, 10_000), slack(10_000));
    assert_eq!(next_cut(0, 1), slack(1));
}

#[test]
fn a_sort_in_place_gives_what_a_stable_sort_gives() {
    // Keys with repeats (stability shows), cycles of every length, and
    // lists already sorted or reversed.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        seed = super::dispatch::mix(seed);
        seed
    };
    let mut lists: Vec<Vec<(u64, usize)>> = vec![vec![], vec![(1, 0)], (0..50).map(|i| (i, i as usize)).collect()];
    lists.push((0..50).rev().map(|i| (i, 0)).collect());
    for len in [2, 3, 7, 100, 1000] {
        for range in [3, 1000] {
            lists.push((0..len).map(|i| (next() % range, i)).collect());
        }
    }
    for list in lists {
        let mut want = list.clone();
        want.sort_by_key(|x| x.0);
        let mut got = list;
        sort_in_place_by_key(&mut got, |x| x.0);
        assert_eq!(got, want);
    }
}

#[test]
fn a_merge_takes_the_first_max_of_sorted_lists_with_their_list() {
    let lists = vec![vec![1u64, 4, 6], vec![2, 3, 7]];
    let m = merge_first(lists.clone(), 4, |_, &x| x);
    assert_eq!(m, vec![(0, 1), (1, 2), (1, 3), (0, 4)]);
    assert_eq!(merge_first(lists, 100, |_, &x| x).len(), 6);
}

/// Ids are numbered in order of first appearance, the first `max` only,
/// however far apart they are: ids thousands apart (an MQTT segment of
/// thousands of messages names one exchange) once took memory in
/// proportion to the highest.
#[test]
fn renumbering_far_apart_ids_takes_memory_for_the_numbered_only() {
    let tag = WorkerTag::new(2);
    let mut r = Renumber::new(100, 2);
    for round in 0..2 {
        for i in 0..300u64 {
            let id = tag.tag(i * 10_000, i % 2);
            let want = if i < 100 { Some(i as u32) } else { None };
            assert_eq!(r.get(id), want, "id {i}, round {round}");
        }
    }
    assert_eq!(r.ids.len(), 100);
    assert!(r.seq.iter().all(|s| s.len() <= r.dense), "{:?}", r.seq.iter().map(Vec::len).collect::<Vec<_>>());
    assert!(!r.far.is_empty());
}

/// Four worker threads, with no radio model.
fn four_workers() -> Result<Dispatch, String> {
    let limits = Limits { flow: FlowConfig::default(), max_flows: 10, max_exchanges: 10, findings: Default::default() };
    let tap = RadioTap {
        radios: None,
        flows: Renumber::new(10, 4),
        exchanges: Renumber::new(10, 4),
        streams: crate::findings::Streams::default(),
        devices: Default::default(),
        link_bytes: 0,
    };
    Dispatch::new(&limits, 4, tap)
}

/// Frames of no flow (ICMP, ARP...) count towards a round like any
/// packet: a capture of nothing else once piled up all their ticks.
#[test]
fn frames_of_no_flow_end_rounds_too() -> Result<(), String> {
    let mut d = four_workers()?;
    for packet in 0..3 * BATCH as u64 + 5 {
        d.outside(FrameTick::outside(packet, 0, 60, 0, 0, 0));
        if let Dispatch::Threads { outside_ticks, route, .. } = &d {
            assert!(outside_ticks.len() <= BATCH && route.len() <= BATCH);
        }
    }
    d.finish().map(|_| ())
}

/// A round ends at `ROUND_BYTES` of payload too: with 64 KB frames
/// (TSO/GRO captures) a round of `BATCH` packets once held 256 MB.
#[test]
fn rounds_of_large_frames_end_at_their_byte_budget() -> Result<(), String> {
    let mut d = four_workers()?;
    let payload = vec![0u8; 60_000];
    let frame = Decoded {
        src: [10, 0, 0, 1].into(),
        dst: [10, 0, 0, 2].into(),
        sport: 40_000,
        dport: 9,
        transport: Transport::Udp,
        link_len: 14,
        net_len: 20,
        transport_len: 8,
        payload_len: 60_000,
        payload: &payload,
        marks: crate::decode::Marks::NONE,
        teid: None,
        link_ids: crate::decode::LinkIds::default(),
    };
    for packet in 0..200 {
        d.frame(packet, packet as i64, 60_042, &frame);
        if let Dispatch::Threads { batches, .. } = &d {
            let held: usize = batches.iter().map(|b| b.payload_bytes()).sum();
            assert!(held < ROUND_BYTES + payload.len(), "{held} bytes in a round");
        }
    }
    d.finish().map(|_| ())
}

/// Flows of `many_rounds`.
const FLOWS: usize = 1000;

/// Forty rounds of small UDP packets over `FLOWS` flows through `workers`
/// worker threads, a snapshot every five; the flows the radio stage saw.
fn many_rounds(workers: usize) -> Result<usize, String> {
    let profile = crate::radio::Profile::builtin("lte").ok_or("no lte profile")?;
    let limits = Limits { flow: FlowConfig::default(), max_flows: 10, max_exchanges: 10, findings: Default::default() };
    let tap = RadioTap {
        radios: Some(crate::radio::DeviceRadios::new(profile, crate::radio::RadioOptions::default(), 10)),
        flows: Renumber::new(100_000, workers as u64),
        exchanges: Renumber::new(10, workers as u64),
        streams: crate::findings::Streams::default(),
        devices: Default::default(),
        link_bytes: 0,
    };
    let mut d = Dispatch::new(&limits, workers, tap)?;
    let payload = [0u8; 32];
    for packet in 0..40 * BATCH as u64 {
        let frame = Decoded {
            src: [10, 0, 0, 1].into(),
            dst: [10, 0, 0, 2].into(),
            sport: 10_000 + (packet % FLOWS as u64) as u16,
            dport: 9,
            transport: Transport::Udp,
            link_len: 14,
            net_len: 20,
            transport_len: 8,
            payload_len: 32,
            payload: &payload,
            marks: crate::decode::Marks::NONE,
            teid: None,
            link_ids: crate::decode::LinkIds::default(),
        };
        d.frame(packet, packet as i64 * 1_000, 74, &frame);
        if packet % (5 * BATCH as u64) == 5 * BATCH as u64 - 1 {
            // A snapshot waits for every round sent while workers go on.
            let (_, tap) = d.snapshot()?;
            if tap.flows.ids.len() != FLOWS {
                return Err(format!("a snapshot saw {} flows", tap.flows.ids.len()));
            }
        }
    }
    let (_, tap) = d.finish()?;
    Ok(tap.flows.ids.len())
}

/// Many rounds through many workers on few cores: queues fill, the radio
/// and fact stages are fed by whichever thread is free, snapshots wait for
/// the rounds sent, and every round still reaches the stages (threads
/// waiting for each other in a cycle would hang here, so the run has a
/// deadline).
#[test]
fn many_rounds_through_many_workers_all_reach_the_stages() {
    for workers in [12, 3] {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(many_rounds(workers)));
        let seen = rx.recv_timeout(std::time::Duration::from_secs(300));
        assert_eq!(seen, Ok(Ok(FLOWS)), "{workers} workers");
    }
}

/// Only listed devices are tallied: a fleet of more devices than the
/// report lists once kept every device's tally (50 MB of 155 on the 1 GB
/// bench capture, 51 k devices), for the report to use 10,000 of them.
#[test]
fn only_listed_devices_are_tallied() {
    let profile = crate::radio::Profile::builtin("lte").unwrap_or_else(|| panic!("no lte"));
    let mut tap = RadioTap {
        radios: Some(crate::radio::DeviceRadios::new(profile, crate::radio::RadioOptions::default(), 2)),
        flows: Renumber::new(10, 1),
        exchanges: Renumber::new(10, 1),
        streams: crate::findings::Streams::default(),
        devices: Default::default(),
        link_bytes: 0,
    };
    let addrs: Vec<u128> = (1..=5).map(|n| crate::flow::addr_bits([10, 0, 0, n].into())).collect();
    for (i, &device) in addrs.iter().enumerate() {
        tap.tick(&FrameTick::outside(i as u64, i as i64, 60, 0, device, 0));
    }
    for &device in &addrs {
        tap.tally(&super::devices::FlowTally::of(&crate::flow::FlowRecord { device, ..Default::default() }));
    }
    assert_eq!(tap.devices.len(), 2);
}
