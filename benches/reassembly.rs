//! TCP reassembly of one direction (`flow::tcp::HalfStream::segment`) over
//! the real segment sizes and bytes of the shipped captures: in order (the
//! common case, which must not copy), reordered, retransmitted, and lossy.
//!
//! `cargo bench --bench reassembly [FILTER...]`

mod common;

use common::{Harness, Work, capture_files, read_capture};
use std::collections::HashMap;
use wiretax::decode::{self, Frame, Transport};
use wiretax::flow::tcp::{HalfStream, Piece};

/// Every TCP payload of the shipped captures, in capture order.
fn payloads() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for f in capture_files() {
        for p in read_capture(&f) {
            if let Frame::Ip(d) = decode::decode(p.linktype, &p.data, p.wire_len)
                && matches!(d.transport, Transport::Tcp(_))
                && !d.payload.is_empty()
            {
                out.push(d.payload.to_vec());
            }
        }
    }
    out
}

/// The payloads as segments of one stream: (seq, bytes), starting after ISN 1000.
fn segments(payloads: &[Vec<u8>]) -> Vec<(u32, &[u8])> {
    let mut seq = 1001u32;
    payloads
        .iter()
        .map(|p| {
            let s = seq;
            seq = seq.wrapping_add(p.len() as u32);
            (s, p.as_slice())
        })
        .collect()
}

fn run(segs: &[(u32, &[u8])], acks: &HashMap<usize, u32>) -> u64 {
    let mut h = HalfStream::default();
    h.syn(1000);
    let mut delivered = 0u64;
    let mut out = |p: Piece<'_>| {
        delivered += match p {
            Piece::Data(d) => d.len() as u64,
            Piece::Cut(n) | Piece::Lost(n) => n,
        }
    };
    for (i, (seq, data)) in segs.iter().enumerate() {
        h.segment(*seq, data, data.len() as u64, 1 << 20, &mut out);
        if let Some(a) = acks.get(&i) {
            h.acked(*a, &mut out);
        }
    }
    h.flush(&mut out);
    delivered
}

fn main() {
    let h = Harness::from_args();
    let payloads = payloads();
    let in_order = segments(&payloads);
    let bytes: u64 = payloads.iter().map(|p| p.len() as u64).sum();
    let work = Work { packets: in_order.len() as u64, bytes };
    let none = HashMap::new();
    println!("stream: {} segments, {bytes} bytes", in_order.len());

    h.bench("reassembly/in order", work, || run(&in_order, &none));

    // Every pair of neighbours swapped: each other segment waits in the held map.
    let mut swapped = in_order.clone();
    for pair in swapped.chunks_mut(2) {
        pair.reverse();
    }
    h.bench("reassembly/pairs swapped", work, || run(&swapped, &none));

    // Every segment twice.
    let twice: Vec<(u32, &[u8])> = in_order.iter().flat_map(|s| [*s, *s]).collect();
    h.bench("reassembly/every segment retransmitted", Work { packets: twice.len() as u64, bytes: bytes * 2 }, || {
        run(&twice, &none)
    });

    // One segment in 20 never captured; the next segment's ACK from the peer
    // (as the flow table would report it) declares the hole lost.
    let mut lossy = Vec::new();
    let mut acks = HashMap::new();
    for (i, s) in in_order.iter().enumerate() {
        if i % 20 == 7 {
            continue;
        }
        lossy.push(*s);
        if i % 20 == 8 {
            acks.insert(lossy.len() - 1, s.0.wrapping_add(s.1.len() as u32));
        }
    }
    h.bench("reassembly/5% lost, acked past", work, || run(&lossy, &acks));
}
