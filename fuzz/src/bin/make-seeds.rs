//! Builds the fuzz targets' seed corpora from the shipped captures, in each
//! target's input format: `make-seeds REPO_ROOT OUT_DIR` writes
//! OUT_DIR/<target>/<name>. Run by scripts/fuzz (the corpora are not
//! committed: they are made again from captures/, tests/data/samples/ and
//! src/decrypt/testdata/).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use wiretax::capture::CaptureReader;
use wiretax::decode::{self, Frame, Transport, tcp_flags};
use wiretax::dissect::{self, Dir, L4};
use wiretax::flow::tcp::{HalfStream, Piece};
use wiretax::fuzzing::{PORTS, SegmentWriter, mode, push_data, push_frame};

/// Longest seed written (the runs' -max_len).
const MAX_SEED: usize = 32 << 10;

struct Flow {
    l4: L4,
    client: (IpAddr, u16),
    server_port: u16,
    halves: [HalfStream; 2],
    /// The conversation's records, in capture order.
    conv: Vec<u8>,
    /// Each direction's stream, for the WebSocket seeds.
    streams: [Vec<u8>; 2],
    first: Option<(Dir, Vec<u8>)>,
}

struct Seeds {
    out: PathBuf,
    written: usize,
}

impl Seeds {
    fn write(&mut self, target: &str, name: &str, bytes: &[u8]) {
        let dir = self.out.join(target);
        let _ = std::fs::create_dir_all(&dir);
        let bytes = bytes.get(..MAX_SEED).unwrap_or(bytes);
        if std::fs::write(dir.join(name), bytes).is_ok() {
            self.written += 1;
        }
    }
}

/// Packets of a capture: (linktype, ts_ns, wire length, bytes).
fn packets(path: &Path) -> Vec<(u16, i64, u32, Vec<u8>)> {
    let mut out = Vec::new();
    let Ok(mut r) = CaptureReader::open(path) else { return out };
    let _ = r.for_each(|p, _| out.push((p.linktype, p.ts_ns, p.wire_len, p.data.to_vec())));
    out
}

fn capture(seeds: &mut Seeds, path: &Path, name: &str) {
    let Ok(bytes) = std::fs::read(path) else { return };
    // Reads of 256 bytes, and of 7 (records cut everywhere).
    for step in [255u8, 6] {
        let mut b = vec![step];
        b.extend_from_slice(&bytes);
        seeds.write("capture", &format!("{name}.{step}"), &b);
    }
    seeds.write("pipeline", name, &bytes);
    let pkts = packets(path);
    let mut frames = Vec::new();
    for (lt, _, _, data) in &pkts {
        push_frame(&mut frames, *lt, data);
    }
    seeds.write("decode", name, &frames);
    conversations(seeds, path, name, &pkts);
}

fn keylog_of(path: &Path) -> Option<String> {
    std::fs::read_to_string(path.with_extension("keylog")).ok()
}

fn conversations(seeds: &mut Seeds, path: &Path, name: &str, pkts: &[(u16, i64, u32, Vec<u8>)]) {
    let mut flows: Vec<Flow> = Vec::new();
    let mut index: HashMap<(bool, (IpAddr, u16), (IpAddr, u16)), usize> = HashMap::new();
    let mut segs: Option<SegmentWriter> = None;
    let mut last_ts = None;
    for (lt, ts, wire, data) in pkts {
        let Frame::Ip(d) = decode::decode(*lt, data, *wire) else { continue };
        let (l4, h) = match d.transport {
            Transport::Tcp(h) => (L4::Tcp, Some(h)),
            Transport::Udp => (L4::Udp, None),
            Transport::Other(_) => continue,
        };
        let (a, b) = ((d.src, d.sport), (d.dst, d.dport));
        let udp = l4 == L4::Udp;
        let key = if a < b { (udp, a, b) } else { (udp, b, a) };
        let fi = *index.entry(key).or_insert_with(|| {
            // The SYN's sender, or the sender to the lower (well-known) port.
            let client_is_src = match h {
                Some(h) if h.flags & tcp_flags::SYN != 0 => h.flags & tcp_flags::ACK == 0,
                _ => d.dport <= d.sport,
            };
            let (client, server_port) = if client_is_src { (a, d.dport) } else { (b, d.sport) };
            flows.push(Flow {
                l4,
                client,
                server_port,
                halves: Default::default(),
                conv: vec![if l4 == L4::Udp { mode::UDP } else { 0 }],
                streams: Default::default(),
                first: None,
            });
            flows.len() - 1
        });
        let Some(f) = flows.get_mut(fi) else { continue };
        let dir = if a == f.client { Dir::C2S } else { Dir::S2C };
        // The flow-table run: the first four flows, in their order.
        let w = segs.get_or_insert_with(|| {
            let pi = |p: u16| PORTS.iter().position(|&x| x == p).unwrap_or(14) as u8;
            SegmentWriter::new(pi(f.server_port) | (pi(f.server_port) << 4))
        });
        let dt = last_ts.map_or(0, |l| ts.saturating_sub(l));
        last_ts = Some(*ts);
        if fi < 4 {
            let (seq, ack, flags) = h.map_or((0, 0, 0), |h| (h.seq, h.ack, h.flags));
            w.push(fi, dir == Dir::S2C, l4 == L4::Udp, flags, seq, ack, dt, d.payload);
        }
        // The dissector's conversation: new stream bytes in order.
        let mut delivered: Vec<Vec<u8>> = Vec::new();
        match h {
            Some(h) => {
                let Some(half) = f.halves.get_mut(dir.idx()) else { continue };
                if h.flags & tcp_flags::SYN != 0 {
                    half.syn(h.seq);
                }
                if !d.payload.is_empty() {
                    half.segment(h.seq, d.payload, d.payload_len as u64, 1 << 20, &mut |p| {
                        if let Piece::Data(b) = p {
                            delivered.push(b.to_vec());
                        }
                    });
                }
            }
            None => delivered.push(d.payload.to_vec()),
        }
        for b in delivered {
            if f.first.is_none() {
                f.first = Some((dir, b.clone()));
            }
            if f.conv.len() < MAX_SEED {
                push_data(&mut f.conv, dir, &b);
            }
            if let Some(s) = f.streams.get_mut(dir.idx())
                && s.len() < MAX_SEED
            {
                s.extend_from_slice(&b);
            }
        }
    }
    if let Some(w) = segs {
        seeds.write("tcp_flow", name, &w.out);
    }
    let keylog = keylog_of(path);
    for (i, f) in flows.iter().enumerate() {
        let Some((dir, first)) = &f.first else { continue };
        let Some(proto) = dissect::recognise(f.l4, f.server_port, *dir, first) else { continue };
        let seed = format!("{name}.{i}");
        seeds.write(&format!("dissect_{}", proto.id), &seed, &f.conv);
        if proto.id == wiretax::vocab::Proto::Tls
            && let Some(k) = &keylog
        {
            let mut b = k.as_bytes().to_vec();
            b.push(0);
            b.extend_from_slice(&f.conv);
            seeds.write("keylog_decrypt", &seed, &b);
        }
        if proto.id == wiretax::vocab::Proto::Http {
            websocket(seeds, &seed, f);
        }
    }
}

/// The frames after an HTTP Upgrade to WebSocket.
fn websocket(seeds: &mut Seeds, seed: &str, f: &Flow) {
    let [c2s, s2c] = &f.streams;
    let upgrade = |s: &[u8]| {
        let text = String::from_utf8_lossy(s.get(..4096.min(s.len())).unwrap_or(&[])).to_ascii_lowercase();
        text.contains("upgrade: websocket").then(|| text.find("\r\n\r\n").map(|i| (i + 4, text.contains("mqtt"))))?
    };
    let (Some((c, mqtt)), Some((s, _))) = (upgrade(c2s), upgrade(s2c)) else { return };
    let mut conv = vec![if mqtt { mode::EXTRA } else { 0 }];
    // Interleaved in pieces, as a conversation would go.
    let (mut c2s, mut s2c) = (c2s.get(c..).unwrap_or(&[]), s2c.get(s..).unwrap_or(&[]));
    while !c2s.is_empty() || !s2c.is_empty() {
        let (a, b) = c2s.split_at(c2s.len().min(512));
        push_data(&mut conv, Dir::C2S, a);
        c2s = b;
        let (a, b) = s2c.split_at(s2c.len().min(512));
        push_data(&mut conv, Dir::S2C, a);
        s2c = b;
    }
    seeds.write("dissect_websocket", seed, &conv);
}

/// A DNS query (A or AAAA) for sensor.example, or its answer: two
/// addresses, with a name compressed to the question's and an OPT record.
fn dns(id: u16, response: bool, aaaa: bool) -> Vec<u8> {
    let mut m = id.to_be_bytes().to_vec();
    m.extend_from_slice(if response {
        &[0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 1]
    } else {
        &[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1]
    });
    m.extend_from_slice(b"\x06sensor\x07example\x00\x00");
    m.extend_from_slice(if aaaa { &[28, 0, 1] } else { &[1, 0, 1] });
    if response {
        for last in [1u8, 2] {
            m.extend_from_slice(&[0xc0, 0x0c, 0, if aaaa { 28 } else { 1 }, 0, 1, 0, 0, 0x0e, 0x10]);
            if aaaa {
                m.extend_from_slice(&[0, 16, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, last]);
            } else {
                m.extend_from_slice(&[0, 4, 10, 77, 0, last]);
            }
        }
    }
    // OPT: root name, type 41, payload size 1232, no options.
    m.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    m
}

fn dns_seeds(seeds: &mut Seeds) {
    for aaaa in [false, true] {
        let (q, a) = (dns(0x1234, false, aaaa), dns(0x1234, true, aaaa));
        let name = if aaaa { "aaaa" } else { "a" };
        let mut udp = vec![mode::UDP];
        push_data(&mut udp, Dir::C2S, &q);
        push_data(&mut udp, Dir::S2C, &a);
        seeds.write("dissect_dns", &format!("udp-{name}"), &udp);
        // Over TCP each message has a two-byte length before it.
        let mut tcp = vec![0];
        for (dir, m) in [(Dir::C2S, &q), (Dir::S2C, &a)] {
            let mut framed = (m.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(m);
            push_data(&mut tcp, dir, &framed);
        }
        seeds.write("dissect_dns", &format!("tcp-{name}"), &tcp);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(root), Some(out)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: make-seeds REPO_ROOT OUT_DIR");
        std::process::exit(2);
    };
    let root = Path::new(root);
    let mut seeds = Seeds { out: PathBuf::from(out), written: 0 };
    for dir in ["captures", "tests/data/samples", "src/decrypt/testdata"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else { continue };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for p in paths {
            let Some(name) = p.file_name().and_then(|n| n.to_str()).map(str::to_owned) else { continue };
            if name.ends_with(".pcap") || name.ends_with(".pcapng") {
                capture(&mut seeds, &p, &name);
            }
        }
    }
    dns_seeds(&mut seeds);
    // Key logs alone.
    for dir in ["captures", "src/decrypt/testdata"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "keylog")
                && let Ok(text) = std::fs::read(&p)
            {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("keylog").to_owned();
                seeds.write("keylog_decrypt", &format!("{name}.only"), &text);
            }
        }
    }
    println!("make-seeds: {} seeds in {}", seeds.written, out);
}
