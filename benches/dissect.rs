//! Each registered dissector (`dissect::PROTOCOLS`) over the real streams of
//! the shipped captures: every flow's in-order bytes (reassembled the way the
//! flow table does it) or datagrams, fed to a fresh dissector made by the
//! protocol's `make`, then `finish`. Also the content probes.
//!
//! `cargo bench --bench dissect [FILTER...]`

mod common;

use common::{Harness, Work, capture_files, read_capture};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use wiretax::decode::{self, Frame, Transport, tcp_flags};
use wiretax::dissect::{self, Dir, Emit, Event, FlowCtx, L4, ProtoStats, Protocol, Span};
use wiretax::flow::tcp::{HalfStream, Piece};

/// What a dissector is fed, in order.
enum Feed {
    Data(Dir, Vec<u8>),
    Gap(Dir, u64),
}

struct Stream {
    l4: L4,
    server_port: u16,
    first: Option<(Dir, Vec<u8>)>,
    feed: Vec<Feed>,
    half: [HalfStream; 2],
}

type Endpoint = (IpAddr, u16);

/// Server ports of the shipped captures that no protocol registers (the
/// captures' README says what runs there); content probes decide first.
fn capture_port_hint(port: u16) -> Option<&'static str> {
    match port {
        8765 | 8080 => Some("http"),
        8081 => Some("http2"),
        4443 | 9443 => Some("tls"),
        _ => None,
    }
}

fn registered_port(l4: L4, port: u16) -> bool {
    dissect::PROTOCOLS.iter().any(|p| p.l4.contains(&l4) && p.ports.contains(&port))
        || capture_port_hint(port).is_some()
}

/// Where reassembled pieces of one direction go.
fn collect<'s>(feed: &'s mut Vec<Feed>, first: &'s mut Option<(Dir, Vec<u8>)>, dir: Dir) -> impl FnMut(Piece<'_>) + 's {
    move |p| match p {
        Piece::Data(b) => {
            if first.is_none() {
                *first = Some((dir, b.to_vec()));
            }
            feed.push(Feed::Data(dir, b.to_vec()))
        }
        Piece::Cut(n) | Piece::Lost(n) => feed.push(Feed::Gap(dir, n)),
    }
}

/// Every flow of every shipped capture, as the feed its dissector gets.
fn streams() -> Vec<Stream> {
    let mut all = Vec::new();
    for f in capture_files() {
        let mut flows: HashMap<(u8, Endpoint, Endpoint), usize> = HashMap::new();
        let mut list: Vec<(Endpoint, Stream)> = Vec::new();
        for p in read_capture(&f) {
            let Frame::Ip(d) = decode::decode(p.linktype, &p.data, p.wire_len) else { continue };
            let (l4, proto) = match d.transport {
                Transport::Tcp(_) => (L4::Tcp, 6),
                Transport::Udp => (L4::Udp, 17),
                Transport::Other(_) => continue,
            };
            let (a, b) = ((d.src, d.sport), (d.dst, d.dport));
            let key = if a <= b { (proto, a, b) } else { (proto, b, a) };
            let idx = *flows.entry(key).or_insert_with(|| {
                // The server: the SYN's receiver, else the side on a known port.
                let syn = matches!(d.transport, Transport::Tcp(h) if h.flags & (tcp_flags::SYN | tcp_flags::ACK) == tcp_flags::SYN);
                let server = if syn || registered_port(l4, b.1) || !registered_port(l4, a.1) { b } else { a };
                let client = if server == b { a } else { b };
                list.push((client, Stream { l4, server_port: server.1, first: None, feed: Vec::new(), half: Default::default() }));
                list.len() - 1
            });
            let (client, s) = &mut list[idx];
            let dir = if a == *client { Dir::C2S } else { Dir::S2C };
            match d.transport {
                Transport::Tcp(h) => {
                    if h.flags & tcp_flags::SYN != 0 {
                        s.half[dir.idx()].syn(h.seq);
                    }
                    if d.payload_len > 0 {
                        s.half[dir.idx()].segment(
                            h.seq,
                            d.payload,
                            d.payload_len as u64,
                            1 << 20,
                            &mut collect(&mut s.feed, &mut s.first, dir),
                        );
                    }
                    if h.flags & tcp_flags::ACK != 0 {
                        s.half[dir.flip().idx()].acked(h.ack, &mut collect(&mut s.feed, &mut s.first, dir.flip()));
                    }
                }
                _ => {
                    if !d.payload.is_empty() {
                        if s.first.is_none() {
                            s.first = Some((dir, d.payload.to_vec()));
                        }
                        s.feed.push(Feed::Data(dir, d.payload.to_vec()));
                    }
                }
            }
        }
        for (_, mut s) in list {
            for dir in [Dir::C2S, Dir::S2C] {
                s.half[dir.idx()].flush(&mut collect(&mut s.feed, &mut s.first, dir));
            }
            if !s.feed.is_empty() {
                all.push(s);
            }
        }
    }
    all
}

/// The protocol the flow table would choose, else the one its port suggests.
fn protocol_of(s: &Stream) -> Option<&'static Protocol> {
    let by_content = s.first.as_ref().and_then(|(dir, b)| dissect::recognise(s.l4, s.server_port, *dir, b));
    by_content
        .or_else(|| {
            dissect::PROTOCOLS.iter().copied().find(|p| p.l4.contains(&s.l4) && p.ports.contains(&s.server_port))
        })
        .or_else(|| capture_port_hint(s.server_port).and_then(dissect::by_name))
}

fn dissect_all(proto: &Protocol, streams: &[&Stream], scratch: &mut (Vec<Span>, Vec<Event>, ProtoStats)) -> u64 {
    let cfg = Arc::new(dissect::Config::default());
    let mut spanned = 0u64;
    let (spans, events, stats) = scratch;
    for s in streams {
        let mut dis = (proto.make)(&FlowCtx { l4: s.l4, server_port: s.server_port, cfg: cfg.clone() });
        for item in &s.feed {
            let mut e = Emit::new(0, spans, events, stats);
            match item {
                Feed::Data(dir, b) => dis.data(*dir, b, &mut e),
                Feed::Gap(dir, n) => dis.gap(*dir, *n, &mut e),
            }
            spanned += spans.iter().map(|s| s.len).sum::<u64>();
            spans.clear();
            events.clear();
        }
        let mut e = Emit::new(0, spans, events, stats);
        dis.finish(&mut e);
        spanned += spans.iter().map(|s| s.len).sum::<u64>();
        spans.clear();
        events.clear();
    }
    spanned
}

fn main() {
    let h = Harness::from_args();
    let streams = streams();
    let mut scratch = (Vec::new(), Vec::new(), ProtoStats::default());

    let firsts: Vec<(L4, u16, Dir, &[u8])> =
        streams.iter().filter_map(|s| s.first.as_ref().map(|(d, b)| (s.l4, s.server_port, *d, b.as_slice()))).collect();
    h.bench("dissect/recognise (first payloads)", Work { packets: firsts.len() as u64, bytes: 0 }, || {
        firsts.iter().filter(|(l4, port, dir, b)| dissect::recognise(*l4, *port, *dir, b).is_some()).count()
    });

    for proto in dissect::PROTOCOLS.iter().copied() {
        let mine: Vec<&Stream> = streams.iter().filter(|s| protocol_of(s).is_some_and(|p| p.id == proto.id)).collect();
        let calls = mine.iter().map(|s| s.feed.len() as u64).sum();
        let bytes =
            mine.iter().flat_map(|s| &s.feed).map(|f| if let Feed::Data(_, b) = f { b.len() as u64 } else { 0 }).sum();
        let name = format!("dissect/{} ({} flows)", proto.id, mine.len());
        if mine.is_empty() {
            if h.wants(&name) {
                println!("{name:<40} no flow of the shipped captures");
            }
            continue;
        }
        h.bench(&name, Work { packets: calls, bytes }, || dissect_all(proto, &mine, &mut scratch));
    }
}
