//! What the micro-benchmarks share: a small timing harness (no criterion:
//! one less heavy dependency to build on a small machine) and real packets
//! from the shipped captures, laid out as a fleet the way `scripts/bench`
//! builds its big capture.
#![allow(dead_code)]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use wiretax::capture::CaptureReader;

// ---------------------------------------------------------------- harness

/// What one iteration of a benchmark processes, for throughput figures.
#[derive(Clone, Copy, Default)]
pub struct Work {
    pub packets: u64,
    pub bytes: u64,
}

/// Runs benchmarks named on the command line (substring match; none: all).
/// `BENCH_SECS` sets the measuring time per benchmark (default 1 s).
pub struct Harness {
    filters: Vec<String>,
    budget: Duration,
}

impl Harness {
    pub fn from_args() -> Harness {
        // cargo bench passes `--bench`; everything not a flag is a filter.
        let filters = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
        let secs = std::env::var("BENCH_SECS").ok().and_then(|s| s.parse::<f64>().ok()).unwrap_or(1.0);
        Harness { filters, budget: Duration::from_secs_f64(secs.max(0.01)) }
    }

    pub fn wants(&self, name: &str) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|f| name.contains(f.as_str()))
    }

    /// Times `f` and prints the median time per iteration with packets/s and MB/s.
    pub fn bench<T>(&self, name: &str, work: Work, mut f: impl FnMut() -> T) {
        if !self.wants(name) {
            return;
        }
        // Warm up, and size the batches to ~1/10 of the budget each.
        let t = Instant::now();
        black_box(f());
        let once = t.elapsed().max(Duration::from_nanos(1));
        let per_batch = ((self.budget.as_secs_f64() / 10.0) / once.as_secs_f64()).clamp(1.0, 1e9) as u64;
        let mut samples = Vec::new();
        let start = Instant::now();
        while samples.len() < 3 || (start.elapsed() < self.budget && samples.len() < 50) {
            let t = Instant::now();
            for _ in 0..per_batch {
                black_box(f());
            }
            samples.push(t.elapsed().as_secs_f64() / per_batch as f64);
        }
        samples.sort_by(|a, b| a.total_cmp(b));
        let med = samples[samples.len() / 2];
        let spread = (samples[samples.len() - 1] - samples[0]) / med * 100.0;
        let mut line = format!("{name:<40} {:>12}/iter (±{spread:>4.1}%)", human_time(med));
        if work.packets > 0 {
            line += &format!(
                "  {:>8.2} Mpkt/s  {:>7.1} ns/pkt",
                work.packets as f64 / med / 1e6,
                med * 1e9 / work.packets as f64
            );
        }
        if work.bytes > 0 {
            line += &format!("  {:>8.1} MB/s", work.bytes as f64 / med / 1e6);
        }
        println!("{line}");
    }
}

fn human_time(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.3} s")
    } else if s >= 1e-3 {
        format!("{:.3} ms", s * 1e3)
    } else if s >= 1e-6 {
        format!("{:.3} µs", s * 1e6)
    } else {
        format!("{:.1} ns", s * 1e9)
    }
}

// ---------------------------------------------------------------- packets

pub const LINKTYPE_ETHERNET: u16 = 1;
const LINKTYPE_LINUX_SLL2: u16 = 276;

/// One frame of a shipped capture, owned.
#[derive(Clone)]
pub struct OwnedPacket {
    pub ts_ns: i64,
    pub wire_len: u32,
    pub linktype: u16,
    pub data: Vec<u8>,
}

pub fn captures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("captures")
}

/// Every shipped capture file, sorted by name.
pub fn capture_files() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> =
        std::fs::read_dir(captures_dir()).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    v.retain(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("pcap" | "pcapng")));
    v.sort();
    v
}

/// The frames of one capture file.
pub fn read_capture(path: &Path) -> Vec<OwnedPacket> {
    let mut out = Vec::new();
    let Ok(mut rd) = CaptureReader::open(path) else { return out };
    let _ = rd.for_each(|p, _offset| {
        out.push(OwnedPacket { ts_ns: p.ts_ns, wire_len: p.wire_len, linktype: p.linktype, data: p.data.to_vec() })
    });
    out
}

/// Linux cooked v2 to Ethernet, so that every frame fits one pcap file.
fn to_ethernet(p: &mut OwnedPacket) -> bool {
    match p.linktype {
        LINKTYPE_ETHERNET => true,
        LINKTYPE_LINUX_SLL2 if p.data.len() >= 20 => {
            let proto = [p.data[0], p.data[1]];
            let mut eth = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, proto[0], proto[1]];
            eth.extend_from_slice(&p.data[20..]);
            p.data = eth;
            p.wire_len = p.wire_len.saturating_sub(6);
            p.linktype = LINKTYPE_ETHERNET;
            true
        }
        _ => false,
    }
}

/// Gives an Ethernet frame's IP addresses their own block: capture `k`,
/// copy `i` (IPv4 10.0.0.0/8 bytes 1..3, IPv6 bytes 2..6). Checksums are
/// left stale: wiretax does not verify them.
fn readdress(frame: &mut [u8], k: usize, i: usize) {
    let Some(et) = frame.get(12..14) else { return };
    let et = u16::from_be_bytes([et[0], et[1]]);
    let (k, i) = (k as u8, i as u16);
    match et {
        0x0800 => {
            for at in [26usize, 30] {
                if let Some(a) = frame.get_mut(at..at + 4) {
                    a[0] = 10 + (i >> 8) as u8;
                    a[1] = i as u8;
                    a[2] = k;
                }
            }
        }
        0x86dd => {
            for at in [22usize, 38] {
                if let Some(a) = frame.get_mut(at..at + 16) {
                    a[2] = 0;
                    a[3] = k;
                    a[4..6].copy_from_slice(&i.to_be_bytes());
                }
            }
        }
        _ => {}
    }
}

/// The shipped captures as one fleet: capture `k` starts `k` x 0.25 s after
/// the first, copy `i` of the whole mix `i` x `step` later, every capture and
/// copy with its own addresses, all in time order. Ethernet frames only.
pub fn fleet(copies: usize, step: Duration) -> Vec<OwnedPacket> {
    let mut mix: Vec<(usize, OwnedPacket)> = Vec::new();
    for (k, f) in capture_files().iter().enumerate() {
        let pkts = read_capture(f);
        let Some(start) = pkts.first().map(|p| p.ts_ns) else { continue };
        for mut p in pkts {
            if to_ethernet(&mut p) {
                p.ts_ns = p.ts_ns - start + k as i64 * 250_000_000;
                mix.push((k, p));
            }
        }
    }
    let t0: i64 = 1_798_761_600 * 1_000_000_000;
    let mut out = Vec::with_capacity(mix.len() * copies);
    for i in 0..copies {
        for (k, p) in &mix {
            let mut q = p.clone();
            q.ts_ns += t0 + i as i64 * step.as_nanos() as i64;
            readdress(&mut q.data, *k, i);
            out.push(q);
        }
    }
    // Stable: frames of one capture at the same instant keep their order.
    out.sort_by_key(|p| p.ts_ns);
    out
}

/// A classic pcap file image (microsecond timestamps, Ethernet) of `pkts`.
pub fn pcap_image(pkts: &[OwnedPacket]) -> Vec<u8> {
    let mut out = Vec::with_capacity(24 + pkts.iter().map(|p| 16 + p.data.len()).sum::<usize>());
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&262_144u32.to_le_bytes());
    out.extend_from_slice(&(LINKTYPE_ETHERNET as u32).to_le_bytes());
    for p in pkts {
        let secs = p.ts_ns.div_euclid(1_000_000_000) as u32;
        let usecs = (p.ts_ns.rem_euclid(1_000_000_000) / 1000) as u32;
        out.extend_from_slice(&secs.to_le_bytes());
        out.extend_from_slice(&usecs.to_le_bytes());
        out.extend_from_slice(&(p.data.len() as u32).to_le_bytes());
        out.extend_from_slice(&p.wire_len.to_le_bytes());
        out.extend_from_slice(&p.data);
    }
    out
}

pub fn work_of(pkts: &[OwnedPacket]) -> Work {
    Work { packets: pkts.len() as u64, bytes: pkts.iter().map(|p| p.data.len() as u64).sum() }
}
