//! Test support, compiled only for tests (`#[cfg(test)] mod capture` in
//! http.rs): TCP conversations straight from the shipped captures, for the
//! HTTP, WebSocket and HTTP/2 tests. A broken test capture is a failed
//! test: the helpers return errors for the tests to pass on with `?`.

use super::super::testkit::{self, Run, TestResult};
use super::super::{Config, Dir, Dissector, FlowCtx, L4, ProtoStats};
use crate::ledger::Ledger;
use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use pcap_parser::{Block, PcapBlockOwned, PcapError};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// One TCP connection's payload in capture order, retransmitted bytes
/// removed.
pub struct Conn {
    pub server_port: u16,
    pub pieces: Vec<(Dir, Vec<u8>)>,
}

impl Conn {
    pub fn slices(&self) -> Vec<(Dir, &[u8])> {
        self.pieces.iter().map(|(d, b)| (*d, b.as_slice())).collect()
    }
}

pub fn path(name: &str) -> String {
    format!("{}/captures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn frames(name: &str) -> TestResult<Vec<(u32, Vec<u8>)>> {
    let file = std::fs::File::open(path(name)).map_err(|e| format!("{name}: {e}"))?;
    let mut reader = pcap_parser::create_reader(1 << 20, file)?;
    let mut out = vec![];
    let mut linktype = 1u32;
    loop {
        match reader.next() {
            Ok((off, block)) => {
                match block {
                    PcapBlockOwned::LegacyHeader(h) => linktype = h.network.0 as u32,
                    PcapBlockOwned::Legacy(b) => out.push((linktype, b.data.to_vec())),
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => linktype = idb.linktype.0 as u32,
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        out.push((linktype, epb.data[..epb.caplen as usize].to_vec()))
                    }
                    _ => {}
                }
                reader.consume(off);
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::Incomplete(_)) => reader.refill().map_err(|e| format!("{name}: {e:?}"))?,
            Err(e) => return Err(format!("{name}: {e:?}").into()),
        }
    }
    Ok(out)
}

struct Track {
    client: SocketAddr,
    next: [Option<u32>; 2],
    conn: Conn,
}

/// Every TCP connection of capture `name` (in `captures/`).
pub fn tcp_conns(name: &str) -> TestResult<Vec<Conn>> {
    // Connections in order of their first packet.
    let mut all: Vec<Track> = vec![];
    let mut open: HashMap<(SocketAddr, SocketAddr), usize> = HashMap::new();
    for (lt, data) in frames(name)? {
        let pkt = match lt {
            1 => SlicedPacket::from_ethernet(&data),
            113 => SlicedPacket::from_linux_sll(&data),
            276 => SlicedPacket::from_ip(&data[20..]),
            _ => return Err(format!("{name}: link type {lt}").into()),
        };
        let Ok(pkt) = pkt else { continue };
        let (src, dst) = match &pkt.net {
            Some(NetSlice::Ipv4(s)) => {
                (IpAddr::V4(s.header().source_addr()), IpAddr::V4(s.header().destination_addr()))
            }
            Some(NetSlice::Ipv6(s)) => {
                (IpAddr::V6(s.header().source_addr()), IpAddr::V6(s.header().destination_addr()))
            }
            _ => continue,
        };
        let Some(TransportSlice::Tcp(tcp)) = &pkt.transport else { continue };
        let src = SocketAddr::new(src, tcp.source_port());
        let dst = SocketAddr::new(dst, tcp.destination_port());
        let key = if src < dst { (src, dst) } else { (dst, src) };
        if tcp.syn() && !tcp.ack() {
            open.remove(&key);
        }
        let idx = *open.entry(key).or_insert_with(|| {
            let client = if tcp.syn() && !tcp.ack() || src.port() > dst.port() { src } else { dst };
            let server_port = if client == src { dst.port() } else { src.port() };
            all.push(Track { client, next: [None, None], conn: Conn { server_port, pieces: vec![] } });
            all.len() - 1
        });
        let t = &mut all[idx];
        let dir = if src == t.client { Dir::C2S } else { Dir::S2C };
        let seq = tcp.sequence_number();
        if tcp.syn() {
            t.next[dir.idx()] = Some(seq.wrapping_add(1));
            continue;
        }
        let payload = tcp.payload();
        if payload.is_empty() {
            continue;
        }
        let next = *t.next[dir.idx()].get_or_insert(seq);
        let ahead = seq.wrapping_sub(next) as i32;
        let skip = if ahead < 0 { (-ahead) as usize } else { 0 };
        assert!(ahead <= 0, "{name}: a hole in the capture");
        if skip >= payload.len() {
            continue;
        }
        t.conn.pieces.push((dir, payload[skip..].to_vec()));
        t.next[dir.idx()] = Some(seq.wrapping_add(payload.len() as u32));
    }
    Ok(all.into_iter().map(|t| t.conn).filter(|c| !c.pieces.is_empty()).collect())
}

/// Everything the dissectors made of a whole capture.
#[derive(Default)]
pub struct Total {
    pub ledger: Ledger,
    pub stats: ProtoStats,
    pub runs: Vec<Run>,
}

/// Runs a new dissector from `make` over every TCP connection of
/// `name`; `bytewise`: one byte per call. Checks conservation per flow.
pub fn run(name: &str, make: fn(&FlowCtx) -> Box<dyn Dissector>, bytewise: bool) -> TestResult<Total> {
    let mut total = Total::default();
    for c in tcp_conns(name)? {
        let ctx = FlowCtx { l4: L4::Tcp, server_port: c.server_port, cfg: Arc::new(Config::default()) };
        let mut d = make(&ctx);
        let r = if bytewise {
            testkit::run_bytewise(d.as_mut(), &c.slices())
        } else {
            testkit::run(d.as_mut(), &c.slices())
        };
        r.assert_conserved();
        total.ledger.merge(&r.ledger());
        total.stats.merge(&r.stats);
        total.runs.push(r);
    }
    Ok(total)
}

pub fn truth(name: &str) -> TestResult<serde_json::Value> {
    let base = name.rsplit_once('.').map_or(name, |(b, _)| b);
    let t = std::fs::read_to_string(path(&format!("{base}.truth.json")))?;
    Ok(serde_json::from_str(&t)?)
}

/// The spans and events of a run, for comparing two runs.
pub fn outline(r: &Run) -> (Vec<(crate::ledger::Class, super::super::MsgRef, u64)>, Vec<super::super::Event>, u64) {
    // Adjacent spans of one class and exchange merge: segmentation may
    // split them differently.
    let mut spans: Vec<(crate::ledger::Class, super::super::MsgRef, u64)> = vec![];
    for s in &r.spans {
        match spans.last_mut() {
            Some(l) if l.0 == s.class && l.1 == s.msg => l.2 += s.len,
            _ => spans.push((s.class, s.msg, s.len)),
        }
    }
    // Where a malformed run is cut into events may depend on the
    // segmentation; how many bytes are malformed may not.
    let bad = r
        .events
        .iter()
        .map(|e| if let super::super::Event::Malformed { bytes, .. } = e { *bytes } else { 0 })
        .sum();
    let events = r.events.iter().filter(|e| !matches!(e, super::super::Event::Malformed { .. })).cloned().collect();
    (spans, events, bad)
}
