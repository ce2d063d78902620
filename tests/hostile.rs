//! Captures made to hurt: they must cost time and memory in proportion to
//! their size, and their figures must still add up.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// An Ethernet/IPv4/TCP frame from 10.0.0.1:40000 to 10.0.0.2:80 (or back),
/// with `payload` captured and `uncaptured` more bytes on the wire.
fn frame(to_server: bool, seq: u32, ack: u32, flags: u8, payload: &[u8], uncaptured: u32) -> (Vec<u8>, u32) {
    let (client, server) = ([10, 0, 0, 1], [10, 0, 0, 2]);
    let (src, dst, sport, dport) =
        if to_server { (client, server, 40000u16, 80u16) } else { (server, client, 80, 40000) };
    let ip_len = 20 + 20 + payload.len() as u32 + uncaptured;
    let mut f = Vec::new();
    f.extend_from_slice(&[2, 2, 2, 2, 2, 2, 4, 4, 4, 4, 4, 4, 0x08, 0x00]);
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&(ip_len as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 0, 64, 6, 0, 0]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&ack.to_be_bytes());
    f.extend_from_slice(&[5 << 4, flags, 0xff, 0xff, 0, 0, 0, 0]);
    f.extend_from_slice(payload);
    (f, 14 + ip_len)
}

fn write_pcap(path: &Path, frames: &[(Vec<u8>, u32)]) -> std::io::Result<()> {
    let mut out = Vec::new();
    for v in [0xa1b2c3d4u32.to_le_bytes(), [2, 0, 4, 0], [0; 4], [0; 4], 65535u32.to_le_bytes(), 1u32.to_le_bytes()] {
        out.extend_from_slice(&v);
    }
    for (i, (data, wire)) in frames.iter().enumerate() {
        let (sec, usec) = (1_800_000_000u32 + i as u32 / 1000, (i as u32 % 1000) * 1000);
        for v in [sec, usec, data.len() as u32, *wire] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(data);
    }
    std::fs::write(path, out)
}

/// One connection whose client stream misses its first byte for good,
/// then brings `n` segments of one byte each (`uncaptured` 0) or of
/// `uncaptured` bytes none of which were captured.
fn gap_then_segments(n: u32, uncaptured: u32) -> Vec<(Vec<u8>, u32)> {
    const SYN: u8 = 0x02;
    const ACK: u8 = 0x10;
    const PSH_ACK: u8 = 0x18;
    let mut frames = vec![
        frame(true, 1000, 0, SYN, b"", 0),
        frame(false, 5000, 1001, SYN | ACK, b"", 0),
        frame(true, 1001, 5001, ACK, b"", 0),
    ];
    let (payload, step): (&[u8], u32) = if uncaptured == 0 { (b"x", 1) } else { (b"", uncaptured) };
    for i in 0..n {
        frames.push(frame(true, 1002 + i * step, 5001, PSH_ACK, payload, uncaptured));
    }
    frames
}

#[test]
fn a_gap_never_filled_before_many_small_segments_costs_linear_time() -> Result<(), Box<dyn std::error::Error>> {
    // Each new held segment was once checked against every one held before
    // it (minutes for a 70 MB capture of them), and segments with nothing
    // captured were held without limit.
    let dir = tempfile::tempdir()?;
    let n = 50_000;
    for (name, uncaptured) in [("tiny.pcap", 0), ("cut.pcap", 1000)] {
        let path = dir.path().join(name);
        write_pcap(&path, &gap_then_segments(n, uncaptured))?;
        let out =
            Command::new(env!("CARGO_BIN_EXE_wiretax")).args(["analyze", "--format", "json"]).arg(&path).output()?;
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let report: Value = serde_json::from_slice(&out.stdout)?;
        let flow = &report["flows"][0];
        let per_segment = u64::from(uncaptured.max(1));
        assert_eq!(flow["frames"], u64::from(n) + 3, "{name}");
        assert_eq!(flow["gaps"], 1, "{name}: the missing byte is given up once");
        assert_eq!(flow["lost_bytes"], 1, "{name}");
        assert_eq!(flow["payload_bytes_c2s"], u64::from(n) * per_segment, "{name}");
        let inferred = if uncaptured == 0 { 0 } else { u64::from(n) * per_segment };
        assert_eq!(flow["inferred_bytes"], inferred, "{name}: bytes on the wire but not captured");
    }
    Ok(())
}

#[test]
fn a_syn_flood_is_held_to_the_live_flow_cap() -> Result<(), Box<dyn std::error::Error>> {
    // Half-open connections live two hours each; a scan or a flood would
    // hold all of them.
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("syn-flood.pcap");
    let n = 5_000u32;
    let frames: Vec<_> = (0..n)
        .map(|i| {
            let (mut f, wire) = frame(true, i.wrapping_mul(7919), 0, 0x02, b"", 0);
            f[34..36].copy_from_slice(&(10_000 + i as u16).to_be_bytes());
            (f, wire)
        })
        .collect();
    write_pcap(&path, &frames)?;
    for jobs in ["1", "2"] {
        let out = Command::new(env!("CARGO_BIN_EXE_wiretax"))
            .args(["analyze", "--format", "json", "--max-live-flows", "1000", "--jobs", jobs])
            .arg(&path)
            .output()?;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let report: Value = serde_json::from_slice(&out.stdout)?;
        assert_eq!(report["tcp_streams"], u64::from(n));
        let evicted = report["inputs"][0]["notes"]["flows_evicted"].as_u64().ok_or("no flows_evicted")?;
        // The workers share the cap: 1,000 live flows in all, less what
        // splitting it among them rounds away.
        assert!((4_000..=4_010).contains(&evicted), "jobs {jobs}: {evicted} evicted");
    }
    Ok(())
}

/// An Ethernet/IPv4/UDP frame from 10.0.0.1:`sport` to 10.0.0.2:5683 (CoAP).
fn udp_to_coap(sport: u16, payload: &[u8]) -> (Vec<u8>, u32) {
    let ip_len = 20 + 8 + payload.len() as u16;
    let mut f = vec![2, 2, 2, 2, 2, 2, 4, 4, 4, 4, 4, 4, 0x08, 0x00, 0x45, 0];
    f.extend_from_slice(&ip_len.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&5683u16.to_be_bytes());
    f.extend_from_slice(&(ip_len - 20).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    let wire = f.len() as u32;
    (f, wire)
}

#[test]
fn unanswered_requests_of_many_flows_are_held_to_the_live_exchange_cap() -> Result<(), Box<dyn std::error::Error>> {
    // 600 flows sending 256 CoAP requests each, never answered: each flow
    // may hold 256 open, all of them together 131,072 (about 40 MB).
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("unanswered.pcap");
    let (flows, asks) = (600u16, 256u16);
    let mut frames = Vec::new();
    for k in 0..asks {
        for f in 0..flows {
            // CON GET, Message ID k, no token.
            let [hi, lo] = k.to_be_bytes();
            frames.push(udp_to_coap(20_000 + f, &[0x40, 0x01, hi, lo]));
        }
    }
    write_pcap(&path, &frames)?;
    let out = Command::new(env!("CARGO_BIN_EXE_wiretax"))
        .args(["analyze", "--format", "json", "--jobs", "1", "--no-radio"])
        .arg(&path)
        .output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout)?;
    let input = &report["inputs"][0];
    let closed_early = input["notes"]["exchanges_closed_early"].as_u64().ok_or("no exchanges_closed_early")?;
    let all = u64::from(flows) * u64::from(asks);
    assert!(closed_early > all - 131_072, "{closed_early} closed early");
    let counted: u64 =
        report["flows"].as_array().ok_or("no flows")?.iter().filter_map(|f| f["exchanges"].as_u64()).sum();
    assert_eq!(counted, all, "every request is still an exchange");
    Ok(())
}

#[test]
fn malformed_bytes_of_flows_not_listed_are_still_noted() -> Result<(), Box<dyn std::error::Error>> {
    // Three CoAP flows, each with one datagram too short to be CoAP; only
    // one flow listed. The note once summed the listed flows only.
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("malformed.pcap");
    let mut frames = Vec::new();
    for port in 40_000..40_003 {
        frames.push(udp_to_coap(port, &[0x40, 0x01, 0, 1]));
        frames.push(udp_to_coap(port, &[1, 2, 3]));
    }
    write_pcap(&path, &frames)?;
    let out = Command::new(env!("CARGO_BIN_EXE_wiretax"))
        .args(["analyze", "--format", "json", "--max-flows", "1"])
        .arg(&path)
        .output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(report["flows"].as_array().map(Vec::len), Some(1));
    assert_eq!(report["inputs"][0]["notes"]["malformed_bytes"], 9);
    Ok(())
}

/// A legacy pcap's records: (header, data), after its 24-byte header.
fn pcap_records(bytes: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let head = bytes[at..at + 16].to_vec();
        let caplen = u32::from_le_bytes(head[8..12].try_into().unwrap()) as usize;
        out.push((head, bytes[at + 16..at + 16 + caplen].to_vec()));
        at += 16 + caplen;
    }
    out
}

#[test]
fn a_capture_out_of_time_order_spans_its_earliest_to_its_latest_frame() -> Result<(), Box<dyn std::error::Error>> {
    // As mergecap -a leaves it: records in file order, times not. The span
    // once ran from the first record to the latest (0 s reversed).
    let dir = tempfile::tempdir()?;
    let original = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/http-keepalive.pcap");
    let bytes = std::fs::read(&original)?;
    let records = pcap_records(&bytes);
    let mut reversed = bytes[..24].to_vec();
    for (head, data) in records.iter().rev() {
        reversed.extend_from_slice(head);
        reversed.extend_from_slice(data);
    }
    let path = dir.path().join("reversed.pcap");
    std::fs::write(&path, reversed)?;
    let totals = |p: &Path| -> Result<Value, Box<dyn std::error::Error>> {
        let out = Command::new(env!("CARGO_BIN_EXE_wiretax")).args(["analyze", "--format", "json"]).arg(p).output()?;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let report: Value = serde_json::from_slice(&out.stdout)?;
        Ok(report["totals"].clone())
    };
    let (want, got) = (totals(&original)?, totals(&path)?);
    // `capinfos -u`: 28.028864 s from the earliest packet to the latest.
    assert!((want["duration_s"].as_f64().unwrap() - 28.028864).abs() < 1e-6, "{want}");
    assert_eq!(got["duration_s"], want["duration_s"]);
    assert_eq!(got["start_ts"], want["start_ts"]);
    Ok(())
}
