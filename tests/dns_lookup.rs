//! A DNS lookup is part of what the connection after it costs.

// Helpers of a test may unwrap: a panic there fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use wiretax::analyze::{Options, analyze_file};

fn udp_frame(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00];
    let ip_len = (20 + 8 + payload.len()) as u16;
    f.extend_from_slice(&[0x45, 0, (ip_len >> 8) as u8, ip_len as u8, 0, 1, 0, 0, 64, 17, 0, 0]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    let udp_len = (8 + payload.len()) as u16;
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&udp_len.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

fn dns(response: bool) -> Vec<u8> {
    let mut m = vec![0x12, 0x34];
    m.extend_from_slice(if response {
        &[0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]
    } else {
        &[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]
    });
    m.extend_from_slice(b"\x06sensor\x07example\x00\x00\x01\x00\x01");
    if response {
        m.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 77, 0, 1]);
    }
    m
}

fn record(ts_sec: u32, ts_usec: u32, frame: &[u8]) -> Vec<u8> {
    let mut r = Vec::new();
    for v in [ts_sec, ts_usec, frame.len() as u32, frame.len() as u32] {
        r.extend_from_slice(&v.to_le_bytes());
    }
    r.extend_from_slice(frame);
    r
}

/// The http-keepalive capture (a connection to 10.77.0.1), the time of its
/// first record, and a DNS query and answer that resolve that address.
struct Parts {
    base: Vec<u8>,
    first_sec: u32,
    query: Vec<u8>,
    answer: Vec<u8>,
}

impl Parts {
    /// Writes a capture of the `earlier` records, the lookup a second before
    /// the connection, then the connection.
    fn write(&self, dir: &Path, name: &str, earlier: &[u8]) -> std::path::PathBuf {
        let mut file = self.base[..24].to_vec();
        file.extend_from_slice(earlier);
        file.extend(record(self.first_sec - 1, 0, &self.query));
        file.extend(record(self.first_sec - 1, 2_000, &self.answer));
        file.extend_from_slice(&self.base[24..]);
        let path = dir.join(name);
        std::fs::write(&path, file).unwrap();
        path
    }
}

fn parts() -> Parts {
    let base = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/http-keepalive.pcap")).unwrap();
    let first_sec = u32::from_le_bytes(base[24..28].try_into().unwrap());
    let query = udp_frame([10, 77, 0, 2], 41000, [10, 77, 0, 53], 53, &dns(false));
    let answer = udp_frame([10, 77, 0, 53], 53, [10, 77, 0, 2], 41000, &dns(true));
    Parts { base, first_sec, query, answer }
}

#[test]
fn the_lookup_before_a_connection_is_shared_by_its_exchanges() {
    let p = parts();
    let dir = tempfile::tempdir().unwrap();
    let path = p.write(dir.path(), "dns-then-http.pcap", &[]);

    let r = analyze_file(&path, &Options::new()).unwrap();
    let lookup_bytes = (p.query.len() + p.answer.len()) as u64;
    let dns_flow = r.flows.iter().find(|f| f.app.name() == "dns").expect("dns flow");
    assert_eq!(dns_flow.wire_bytes, lookup_bytes);
    assert_eq!(r.stats.dns.answers, 1);
    let http = r.flows.iter().find(|f| f.app.name() == "http").expect("http flow");
    assert_eq!(http.dns_lookup_bytes, lookup_bytes);
    let xs: Vec<_> = r.exchanges.iter().filter(|x| x.flow == http.id).collect();
    assert_eq!(xs.len(), 15);
    for x in xs {
        assert!((x.dns_share_bytes - lookup_bytes as f64 / 15.0).abs() < 1e-9);
        assert!((x.total_cost_bytes - x.wire_bytes as f64 - x.setup_share_bytes).abs() < 1e-9);
    }
    // Without a lookup, nothing is added.
    let plain =
        analyze_file(&Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/http-keepalive.pcap"), &Options::new())
            .unwrap();
    assert!(plain.flows.iter().all(|f| f.dns_lookup_bytes == 0));
    assert!(plain.exchanges.iter().all(|x| x.dns_share_bytes == 0.0));
}

/// `base`'s records with every 10.77.0.x address moved to 10.`net`.0.x and
/// every timestamp moved by `shift_s` seconds.
fn moved(base: &[u8], net: u8, shift_s: i64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= base.len() {
        let caplen = u32::from_le_bytes(base[at + 8..at + 12].try_into().unwrap()) as usize;
        let mut rec = base[at..at + 16 + caplen].to_vec();
        let ts = u32::from_le_bytes(rec[0..4].try_into().unwrap()) as i64 + shift_s;
        rec[0..4].copy_from_slice(&(ts as u32).to_le_bytes());
        for ip in [16 + 26, 16 + 30] {
            if rec[ip..ip + 2] == [10, 77] {
                rec[ip + 1] = net;
            }
        }
        out.extend(rec);
        at += 16 + caplen;
    }
    out
}

/// A lookup past the exchange list's cap still goes to the connection after
/// it, the same for any number of jobs (each thread's list may run past the
/// cap by different amounts before it is cut back).
#[test]
fn a_lookup_past_the_list_cap_is_charged_the_same_for_any_jobs() {
    let p = parts();
    // Two earlier keep-alive connections elsewhere (30 exchanges), then the
    // lookup, then the connection to the address it found.
    let mut earlier = moved(&p.base, 78, -100);
    earlier.extend(moved(&p.base, 79, -50));
    let dir = tempfile::tempdir().unwrap();
    let path = p.write(dir.path(), "busy-then-dns-then-http.pcap", &earlier);

    let lookup_bytes = (p.query.len() + p.answer.len()) as u64;
    let mut reports = Vec::new();
    for jobs in [1, 2, 3] {
        let mut o = Options::new();
        o.jobs = jobs;
        o.max_exchanges = 8;
        let r = analyze_file(&path, &o).unwrap();
        let to_server: Vec<_> =
            r.flows.iter().filter(|f| f.app.name() == "http" && f.server.to_string() == "10.77.0.1:80").collect();
        assert_eq!(to_server.len(), 1, "jobs {jobs}");
        assert_eq!(to_server[0].dns_lookup_bytes, lookup_bytes, "jobs {jobs}");
        reports.push(serde_json::to_string(&wiretax::report::Report::combine(vec![r], vec![])).unwrap());
    }
    assert!(reports.iter().all(|r| *r == reports[0]), "reports differ with --jobs");
}
