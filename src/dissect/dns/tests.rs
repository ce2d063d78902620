use super::*;
use crate::dissect::testkit::{self, Run, TestResult};

/// `dig example.com` as a stub resolver sends it: RD+AD, EDNS0 with a
/// client cookie.
fn query(id: u16) -> Vec<u8> {
    let mut b = id.to_be_bytes().to_vec();
    b.extend_from_slice(&[0x01, 0x20, 0, 1, 0, 0, 0, 0, 0, 1]);
    b.extend_from_slice(b"\x07example\x03com\x00\x00\x01\x00\x01");
    b.extend_from_slice(&[0, 0x00, 0x29, 0x10, 0x00, 0, 0, 0, 0, 0x00, 0x0c]);
    b.extend_from_slice(&[0x00, 0x0a, 0x00, 0x08, 0xb5, 0x2f, 0x6c, 0x11, 0x3a, 0x9e, 0x04, 0x71]);
    b
}

/// Its answer: one A record named by a compression pointer, EDNS0.
fn response(id: u16) -> Vec<u8> {
    let mut b = id.to_be_bytes().to_vec();
    b.extend_from_slice(&[0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 1]);
    b.extend_from_slice(b"\x07example\x03com\x00\x00\x01\x00\x01");
    b.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 93, 184, 216, 34]);
    b.extend_from_slice(&[0, 0x00, 0x29, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    b
}

fn aaaa_query(id: u16) -> Vec<u8> {
    let mut b = id.to_be_bytes().to_vec();
    b.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    b.extend_from_slice(b"\x04NOPE\x07example\x03com\x00\x00\x1c\x00\x01");
    b
}

fn nxdomain(id: u16) -> Vec<u8> {
    let mut b = id.to_be_bytes().to_vec();
    b.extend_from_slice(&[0x81, 0x83, 0, 1, 0, 0, 0, 0, 0, 0]);
    b.extend_from_slice(b"\x04nope\x07example\x03com\x00\x00\x1c\x00\x01");
    b
}

fn udp() -> Box<dyn Dissector> {
    make(&FlowCtx { l4: L4::Udp, server_port: 53, cfg: Default::default() })
}
fn tcp() -> Box<dyn Dissector> {
    make(&FlowCtx { l4: L4::Tcp, server_port: 53, cfg: Default::default() })
}
fn framed(m: &[u8]) -> Vec<u8> {
    let mut b = (m.len() as u16).to_be_bytes().to_vec();
    b.extend_from_slice(m);
    b
}


#[test]
fn udp_query_and_response_are_one_exchange() {
    let (q, a) = (query(0xbeef), response(0xbeef));
    let r = testkit::run(udp().as_mut(), &[(Dir::C2S, &q), (Dir::S2C, &a)]);
    r.assert_conserved();
    assert_eq!(r.class(Class::AppHeader), (q.len() + a.len()) as u64);
    assert!(r.spans.iter().all(|s| s.msg == MsgRef::Exchange(0)));
    assert_eq!(
        r.events,
        vec![
            Event::Open { id: 0, kind: crate::vocab::Proto::Dns, what: "A example.com".into() },
            Event::Responded { id: 0 },
            Event::Describe { id: 0, what: "A example.com NOERROR 1 answer".into() },
            Event::Resolved { id: 0, addrs: vec![std::net::IpAddr::from([93, 184, 216, 34])] },
            Event::Close { id: 0 },
        ]
    );
    let s = &r.stats.dns;
    assert_eq!((s.queries, s.responses, s.answers), (1, 1, 1));
    assert_eq!(s.names.get("example.com"), Some(&1));
    assert_eq!(s.query_types.get("A"), Some(&1));
    assert_eq!(s.rcodes.get("NOERROR"), Some(&1));
    assert_eq!(s.total_dns_bytes, (q.len() + a.len()) as u64);
}

#[test]
fn responses_out_of_order_pair_by_id() {
    let (q1, q2, a2, a1) = (query(1), aaaa_query(2), nxdomain(2), response(1));
    let r = testkit::run(udp().as_mut(), &[(Dir::C2S, &q1), (Dir::C2S, &q2), (Dir::S2C, &a2), (Dir::S2C, &a1)]);
    assert_eq!(r.describes(), vec!["AAAA nope.example.com NXDOMAIN 0 answers", "A example.com NOERROR 1 answer"]);
    let owners: Vec<MsgRef> = r.spans.iter().map(|s| s.msg).collect();
    assert_eq!(owners, vec![MsgRef::Exchange(0), MsgRef::Exchange(1), MsgRef::Exchange(1), MsgRef::Exchange(0)]);
}

#[test]
fn tcp_prefix_is_header_too_and_framing_survives_any_segmentation() {
    let (q, a) = (framed(&query(7)), framed(&response(7)));
    let mut two = q.clone();
    two.extend_from_slice(&framed(&query(8)));
    let whole = testkit::run(tcp().as_mut(), &[(Dir::C2S, &two), (Dir::S2C, &a)]);
    let bytewise = testkit::run_bytewise(tcp().as_mut(), &[(Dir::C2S, &two), (Dir::S2C, &a)]);
    // (testkit feeds a piece per second: byte by byte, the query times
    // out before its answer, so only the framing is compared.)
    for r in [&whole, &bytewise] {
        r.assert_conserved();
        assert_eq!(r.class(Class::AppHeader), (two.len() + a.len()) as u64);
        assert_eq!(r.stats.dns.queries, 2);
        assert_eq!(r.stats.dns.total_dns_bytes, (two.len() + a.len()) as u64);
        assert_eq!(r.stats.dns.responses, 1);
        assert_eq!(r.stats.dns.malformed_messages, 0);
    }
    assert_eq!(whole.ledger(), bytewise.ledger());
    assert_eq!(whole.describes(), vec!["A example.com NOERROR 1 answer"]);
    // The unanswered query is closed at the end of the flow.
    assert_eq!(whole.events.last(), Some(&Event::Close { id: 1 }));
}

#[test]
fn tcp_gap_inside_a_message_resyncs_at_the_next_one() {
    let q = framed(&query(1));
    let next = framed(&query(2));
    let mut d = tcp();
    let mut r = Run::default();
    let mut e = Emit::new(0, &mut r.spans, &mut r.events, &mut r.stats);
    d.data(Dir::C2S, &q[..10], &mut e);
    d.gap(Dir::C2S, 5, &mut e);
    d.data(Dir::C2S, &q[15..], &mut e);
    d.data(Dir::C2S, &next, &mut e);
    d.finish(&mut e);
    r.fed = (q.len() - 5 + next.len()) as u64;
    r.assert_conserved();
    assert_eq!(r.class(Class::Payload), (q.len() - 5) as u64);
    assert_eq!(r.class(Class::AppHeader), next.len() as u64);
    assert_eq!(r.stats.dns.queries, 1);
    assert_eq!(r.stats.dns.malformed_messages, 1);
}

#[test]
fn tcp_gap_between_messages_gives_up_the_direction() {
    let q = framed(&query(1));
    let mut d = tcp();
    let mut r = Run::default();
    let mut e = Emit::new(0, &mut r.spans, &mut r.events, &mut r.stats);
    d.data(Dir::C2S, &q, &mut e);
    d.gap(Dir::C2S, 100, &mut e);
    d.data(Dir::C2S, &q, &mut e);
    d.finish(&mut e);
    r.fed = 2 * q.len() as u64;
    r.assert_conserved();
    assert_eq!(r.class(Class::AppHeader), q.len() as u64);
    assert_eq!(r.class(Class::Payload), q.len() as u64);
}

#[test]
fn truncated_and_garbage_are_malformed_never_panic() {
    let a = response(9);
    for n in 0..a.len() {
        assert!(parse(&a[..n]).is_err(), "prefix {n}");
        let r = testkit::run(udp().as_mut(), &[(Dir::S2C, &a[..n])]);
        r.assert_conserved();
        assert_eq!(r.class(Class::Payload), n as u64);
        let r = testkit::run_bytewise(tcp().as_mut(), &[(Dir::C2S, &framed(&a[..n]))]);
        r.assert_conserved();
    }
    // A pointer loop and a forward pointer.
    let mut looped = query(3);
    looped.splice(12..25, [0xc0, 0x0c]);
    assert_eq!(parse(&looped).unwrap_err(), FormatError::Name);
    let mut trailing = query(3);
    trailing.push(0);
    assert_eq!(parse(&trailing).unwrap_err(), FormatError::Trailing);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut d = udp();
    let mut t = tcp();
    let mut r = Run::default();
    for i in 0..3000 {
        let mut b = if i % 3 == 0 { response(1) } else { vec![] };
        for _ in 0..(seed % 60) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            if b.is_empty() || !seed.is_multiple_of(4) {
                b.push(seed as u8);
            } else {
                let at = (seed as usize / 7) % b.len();
                b[at] = (seed >> 8) as u8;
            }
        }
        let _ = probe(L4::Udp, Dir::C2S, &b);
        let mut e = Emit::new(i, &mut r.spans, &mut r.events, &mut r.stats);
        d.data(Dir::C2S, &b, &mut e);
        t.data(if i % 2 == 0 { Dir::C2S } else { Dir::S2C }, &b, &mut e);
        r.fed += 2 * b.len() as u64;
    }
    let mut e = Emit::new(0, &mut r.spans, &mut r.events, &mut r.stats);
    d.finish(&mut e);
    t.finish(&mut e);
    r.assert_conserved();
    assert!(r.stats.dns.malformed_messages > 0);
}

#[test]
fn probe_verdicts() {
    assert_eq!(probe(L4::Udp, Dir::C2S, &query(1)), Probe::Maybe);
    assert_eq!(probe(L4::Udp, Dir::S2C, &response(1)), Probe::Maybe);
    assert_eq!(probe(L4::Udp, Dir::C2S, &framed(&query(1))), Probe::Maybe);
    // TCP segment holding only the start of the first message.
    assert_eq!(probe(L4::Udp, Dir::C2S, &framed(&query(1))[..20]), Probe::Maybe);
    assert_eq!(probe(L4::Udp, Dir::C2S, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), Probe::No);
    assert_eq!(probe(L4::Udp, Dir::C2S, &[0x40, 0x01, 0x00, 0x01, 0xb4, b't', b'i', b'm', b'e']), Probe::No);
    assert_eq!(probe(L4::Udp, Dir::C2S, &[0u8; 12]), Probe::No); // no question
    // An mDNS announcement: a response with answers only.
    let mut announce = vec![0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0];
    announce.extend_from_slice(b"\x06sensor\x05local\x00\x00\x01\x80\x01\x00\x00\x00\x78\x00\x04\x0a\x00\x00\x07");
    assert_eq!(probe(L4::Udp, Dir::C2S, &announce), Probe::Maybe);
}

#[test]
fn names_are_capped() -> TestResult {
    let mut s = Stats::default();
    for i in 0..(MAX_NAMES + 10) {
        let msg = Message {
            header: parse_header(&query(1)).ok_or("query(1) has no header")?,
            question: Some((format!("host{i}.example"), 1)),
            addrs: vec![],
        };
        s.count(&msg, 40);
    }
    assert_eq!(s.names.len(), MAX_NAMES);
    assert_eq!(s.names_not_listed, 10);
    let mut all = Stats::default();
    all.merge(&s);
    all.merge(&s);
    assert_eq!(all.queries, 2 * (MAX_NAMES as u64 + 10));
    assert_eq!(all.names.len(), MAX_NAMES);
    assert_eq!(all.names_not_listed, 20);
    Ok(())
}

/// A query for `label`.example.com, type A.
fn named_query(id: u16, label: &str) -> Vec<u8> {
    let mut b = id.to_be_bytes().to_vec();
    b.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    b.push(label.len() as u8);
    b.extend_from_slice(label.as_bytes());
    b.extend_from_slice(b"\x07example\x03com\x00\x00\x01\x00\x01");
    b
}

/// Past the cap, the names listed are the smallest: the same whichever
/// order the queries came in, and however flows were spread over threads.
#[test]
fn listed_names_do_not_depend_on_order() {
    let queries: Vec<Vec<u8>> =
        (0..3 * MAX_NAMES).map(|i| named_query(i as u16, &format!("h{:03}", (i * 37) % 150))).collect();
    let stats = |qs: &[Vec<u8>]| {
        let pieces: Vec<(Dir, &[u8])> = qs.iter().map(|q| (Dir::C2S, q.as_slice())).collect();
        testkit::run(udp().as_mut(), &pieces).stats.dns
    };
    let forward = stats(&queries);
    let backward = stats(&queries.iter().rev().cloned().collect::<Vec<_>>());
    assert_eq!((&forward.names, forward.names_not_listed), (&backward.names, backward.names_not_listed));
    assert_eq!(forward.names.len(), MAX_NAMES);
    assert_eq!(forward.names.values().sum::<u64>() + forward.names_not_listed, queries.len() as u64);
    assert!(forward.names.contains_key("h000.example.com"));
    let (a, b) = queries.split_at(queries.len() / 3);
    for (x, y) in [(stats(a), stats(b)), (stats(b), stats(a))] {
        let mut merged = x;
        merged.merge(&y);
        assert_eq!((&merged.names, merged.names_not_listed), (&forward.names, forward.names_not_listed));
    }
}

/// While memory is tight a flow keeps one query waiting, closing the others
/// (the ledger keeps no more of them open), and gives back their room.
#[test]
fn queries_waiting_are_cut_to_one_while_memory_is_tight() {
    let mut d = Dns::new(L4::Udp);
    let mut r = Run::default();
    for (i, tight) in [(0u16, false), (1, false), (2, false), (3, true), (4, true)] {
        let mut e = Emit::new(i.into(), &mut r.spans, &mut r.events, &mut r.stats);
        e.tight = tight;
        d.data(Dir::C2S, &query(i), &mut e);
    }
    assert_eq!(d.pending.iter().map(|p| p.id).collect::<Vec<_>>(), vec![4]);
    let closed: Vec<u32> =
        r.events.iter().filter_map(|e| if let Event::GaveUp { id } = e { Some(*id) } else { None }).collect();
    assert_eq!(closed, vec![0, 1, 2, 3]);
    assert!(d.pending.capacity() <= 4);
}
