//! The flow table and TCP reassembly: segments with any flags, sequence
//! and acknowledgement numbers, lengths and snaplen cuts, both directions of
//! four connections (TCP or UDP, IPv4 or IPv6), at times from milliseconds
//! to hours apart, under tight memory limits.
//! Checks: no panic, every flow's classes add up to its wire bytes, every
//! frame is ticked once and every wire byte ends up in a flow.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wiretax::flow::{FlowConfig, FlowTable};
use wiretax_fuzz::{CheckingSink, parse_segments};

fuzz_target!(|data: &[u8]| {
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
});
