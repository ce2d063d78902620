use super::super::testkit::{self, TestResult};
use super::capture::{self, truth};
use super::*;
use crate::ledger::Class;
use std::sync::Arc;
use std::collections::BTreeSet;

fn ctx() -> FlowCtx {
    FlowCtx { l4: L4::Tcp, server_port: 80, cfg: Arc::new(super::super::Config::default()) }
}

/// Compares one capture's classes and `http` section with its truth
/// file, fed as captured and one byte at a time.
fn check_capture(name: &str) -> TestResult {
    let t = truth(name)?;
    let want = t.get("byte_classes").or(t.get("bytes_by_class")).ok_or("truth: no byte classes")?;
    for bytewise in [false, true] {
        let got = capture::run(name, make, bytewise)?;
        for c in [Class::AppHeader, Class::AppControl, Class::Payload] {
            assert_eq!(
                got.ledger.get(c),
                want[c.name()].as_u64().unwrap_or(0),
                "{name} {} bytewise={bytewise}",
                c.name()
            );
        }
        let h = serde_json::to_value(&got.stats.http)?;
        let th = &t["http"];
        for k in [
            "requests",
            "responses",
            "status_codes",
            "methods",
            "request_versions",
            "response_versions",
            "request_header_bytes",
            "request_body_bytes",
            "response_header_bytes",
            "response_body_bytes",
            "connections",
            "requests_per_connection_max",
            "chunked_requests",
            "chunked_responses",
        ] {
            assert_eq!(h[k], th[k], "{name} http.{k} bytewise={bytewise}");
        }
        assert_eq!(got.stats.http.malformed, 0, "{name}");
        for r in &got.runs {
            assert!(!r.events.iter().any(|e| matches!(e, Event::Malformed { .. })), "{name}: {:?}", r.events);
        }
    }
    Ok(())
}

#[test]
fn keepalive_matches_truth() -> TestResult {
    check_capture("http-keepalive.pcap")
}

#[test]
fn keepalive_ipv6_matches_truth() -> TestResult {
    check_capture("http-keepalive-ipv6.pcap")
}

#[test]
fn lossy_keepalive_matches_truth() -> TestResult {
    check_capture("http-keepalive-lossy.pcap")
}

#[test]
fn sparse_keepalive_matches_truth() -> TestResult {
    check_capture("sparse-http-keepalive-poll.pcap")
}

#[test]
fn pipelined_matches_truth() -> TestResult {
    check_capture("http-pipelined.pcap")
}

#[test]
fn poll_close_matches_truth() -> TestResult {
    check_capture("http-poll-close.pcap")
}

#[test]
fn post_batch_chunked_both_ways_and_100_continue_match_truth() -> TestResult {
    check_capture("http-post-batch.pcap")
}

#[test]
fn errors_match_truth() -> TestResult {
    check_capture("http-errors.pcap")
}

#[test]
fn http10_matches_truth() -> TestResult {
    check_capture("http10.pcap")
}

#[test]
fn websocket_upgrade_matches_truth() -> TestResult {
    check_capture("websocket.pcapng")
}

#[test]
fn websocket_storms_match_truth() -> TestResult {
    check_capture("websocket-storm-fixed.pcap")?;
    check_capture("websocket-storm-backoff.pcap")
}

/// Same spans (merged per class and exchange) and events whatever the
/// segmentation.
#[test]
fn bytewise_feeding_changes_nothing() -> TestResult {
    for name in ["http-pipelined.pcap", "http-post-batch.pcap", "websocket.pcapng", "http10.pcap"] {
        let a = capture::run(name, make, false)?;
        let b = capture::run(name, make, true)?;
        for (x, y) in a.runs.iter().zip(&b.runs) {
            assert_eq!(capture::outline(x), capture::outline(y), "{name}");
        }
    }
    Ok(())
}

#[test]
fn pipelined_responses_pair_first_in_first_out() -> TestResult {
    let conns = capture::tcp_conns("http-pipelined.pcap")?;
    let c = &conns[0];
    // The first segment holds four requests.
    assert_eq!(c.pieces[0].1.windows(4).filter(|w| w == b"GET ").count(), 4);
    let r = testkit::run(&mut Http1::new(&ctx()), &c.slices());
    let mut opened = vec![];
    let mut order = vec![];
    for e in &r.events {
        match e {
            Event::Open { id, what, .. } => opened.push((*id, what.clone())),
            Event::Describe { id, what } => {
                let req = &opened.iter().find(|(i, _)| i == id).ok_or("described before opened")?.1;
                assert!(what.starts_with(req.as_str()), "{what} answers {req}");
                assert!(what.ends_with(" 200") || what.ends_with(" 404"), "{what}");
            }
            Event::Close { id } => order.push(*id),
            _ => {}
        }
    }
    assert_eq!(opened.len(), 12);
    assert_eq!(order, (1..=12).collect::<Vec<u32>>());
    // Every exchange's bytes: its request and its response.
    for id in 1..=12 {
        let n: u64 = r.spans.iter().filter(|s| s.msg == MsgRef::Exchange(id)).map(|s| s.len).sum();
        assert!(n > 100, "exchange {id}: {n} bytes");
    }
    Ok(())
}

#[test]
fn exchange_events_follow_request_and_response() -> TestResult {
    let conns = capture::tcp_conns("http-keepalive.pcap")?;
    let r = testkit::run(&mut Http1::new(&ctx()), &conns[0].slices());
    // Facets are checked on their own below.
    let ev: Vec<_> = r.events.iter().filter(|e| !matches!(e, Event::Facets { .. })).take(4).cloned().collect();
    assert_eq!(
        ev,
        vec![
            Event::Open { id: 1, kind: crate::vocab::Proto::Http, what: "GET /api/v1/sensor/latest?seq=1".into() },
            Event::Responded { id: 1 },
            Event::Describe { id: 1, what: "GET /api/v1/sensor/latest?seq=1 200".into() },
            Event::Close { id: 1 },
        ]
    );
    assert_eq!(r.events.iter().filter(|e| matches!(e, Event::Close { .. })).count(), 15);
    Ok(())
}

#[test]
fn continue_is_a_response_and_the_final_one_follows() -> TestResult {
    let conns = capture::tcp_conns("http-post-batch.pcap")?;
    let put = conns.iter().find(|c| c.pieces[0].1.starts_with(b"PUT ")).ok_or("no PUT connection")?;
    let r = testkit::run(&mut Http1::new(&ctx()), &put.slices());
    assert_eq!(r.stats.http.responses, 2);
    assert_eq!(r.stats.http.status_codes.get("100"), Some(1));
    assert_eq!(r.stats.http.chunked_requests, 1);
    // Six 29-byte NDJSON lines are the body; chunk framing is header.
    assert_eq!(r.stats.http.request_body_bytes, 6 * 29);
    let describes: Vec<_> = r.events.iter().filter(|e| matches!(e, Event::Describe { .. })).collect();
    assert_eq!(describes.len(), 1);
    assert!(matches!(describes[0], Event::Describe { what, .. } if what.ends_with(" 201")));
    assert_eq!(r.events.iter().filter(|e| matches!(e, Event::Responded { .. })).count(), 1);
    Ok(())
}

fn feed(pieces: &[(Dir, &[u8])]) -> testkit::Run {
    let r = testkit::run(&mut Http1::new(&ctx()), pieces);
    r.assert_conserved();
    let rb = testkit::run_bytewise(&mut Http1::new(&ctx()), pieces);
    rb.assert_conserved();
    assert_eq!(capture::outline(&r), capture::outline(&rb));
    r
}

#[test]
fn head_204_and_304_have_no_body() {
    let r = feed(&[
        (Dir::C2S, b"HEAD /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\n\r\nGET /c HTTP/1.1\r\n\r\nGET /d HTTP/1.1\r\n\r\n"),
        (
            Dir::S2C,
            b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\nHTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        ),
    ]);
    assert_eq!(r.stats.http.responses, 4);
    assert_eq!(r.class(Class::Payload), 2);
    assert_eq!(r.events.iter().filter(|e| matches!(e, Event::Close { .. })).count(), 4);
}

#[test]
fn body_until_close_and_chunk_trailers() {
    let r = feed(&[
        (Dir::C2S, b"GET / HTTP/1.0\r\n\r\n"),
        (Dir::S2C, b"HTTP/1.0 200 OK\r\n\r\nhello "),
        (Dir::S2C, b"world"),
    ]);
    assert_eq!(r.class(Class::Payload), 11);
    assert_eq!(r.events.last(), Some(&Event::Close { id: 1 }));

    let r = feed(&[
        (Dir::C2S, b"GET / HTTP/1.1\r\n\r\n"),
        (
            Dir::S2C,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-Sum: 1\r\n\r\n",
        ),
    ]);
    assert_eq!(r.class(Class::Payload), 5);
    assert_eq!(r.stats.http.response_body_bytes, 5);
    assert_eq!(r.events.last(), Some(&Event::Close { id: 1 }));
}

#[test]
fn response_without_request_opens_an_exchange() {
    let r = feed(&[(Dir::S2C, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")]);
    assert_eq!(r.class(Class::Payload), 2);
    assert!(matches!(r.events[0], Event::Open { id: 1, .. }));
    assert_eq!(r.events.last(), Some(&Event::Close { id: 1 }));
}

#[test]
fn garbage_is_malformed_and_framing_recovers() {
    let r = feed(&[
        (Dir::C2S, b"\x16\x03\x01\x02\x00junk junk\r\nmore junk\r\nGET /ok HTTP/1.1\r\n\r\n"),
        (Dir::S2C, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
    ]);
    let bad: u64 = r
        .events
        .iter()
        .filter_map(|e| if let Event::Malformed { bytes, .. } = e { Some(*bytes) } else { None })
        .sum();
    assert_eq!(bad, 27);
    assert_eq!(r.stats.http.requests, 1);
    assert_eq!(r.stats.http.responses, 1);
    assert_eq!(r.class(Class::Payload), 27);
}

#[test]
fn truncated_and_hostile_input_never_panics() -> TestResult {
    let real = capture::tcp_conns("http-post-batch.pcap")?;
    let c = &real[0];
    // Every truncation point of the first request/response pair.
    let req = &c.pieces[0].1;
    for cut in 0..req.len() {
        let r = feed(&[(Dir::C2S, &req[..cut])]);
        if cut > 0 && !req[..cut].ends_with(b"\r\n\r\n") {
            assert!(
                r.events.iter().any(|e| matches!(e, Event::Malformed { .. })) || r.stats.http.requests == 1,
                "cut {cut}"
            );
        }
    }
    // Bad lengths, bad chunk sizes, endless headers, binary noise.
    let big = vec![b'a'; MAX_HEADER_BLOCK + 10];
    let mut noise = vec![0u8; 5000];
    let mut x = 12345u32;
    for b in noise.iter_mut() {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        *b = (x >> 16) as u8;
    }
    let cases: Vec<Vec<(Dir, &[u8])>> = vec![
        vec![(Dir::C2S, b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\nxx")],
        vec![(Dir::C2S, b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n")],
        vec![(Dir::C2S, b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")],
        vec![(Dir::C2S, b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n")],
        vec![(Dir::C2S, b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY")],
        vec![(Dir::C2S, b"GET / HTTP/1.1\r\n"), (Dir::C2S, &big)],
        vec![(Dir::C2S, &noise), (Dir::S2C, &noise)],
        vec![(Dir::S2C, b"HTTP/1.1 abc\r\n\r\n")],
        vec![(Dir::C2S, b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"), (Dir::C2S, &big)],
        vec![
            (Dir::S2C, b"HTTP/1.1 101 Switching\r\nUpgrade: websocket\r\n\r\n"),
            (Dir::S2C, &noise),
            (Dir::C2S, &noise),
        ],
        vec![(Dir::S2C, b"HTTP/1.1 101 Switching\r\nUpgrade: h2c\r\n\r\n"), (Dir::S2C, &noise), (Dir::C2S, &noise)],
    ];
    for case in &cases {
        let r = feed(case);
        assert!(r.events.iter().any(|e| matches!(e, Event::Malformed { .. })), "{:?}", r.events);
    }
    // Gaps in a body, in a header, and in a tunnel.
    let mut d = Http1::new(&ctx());
    let mut r = testkit::Run::default();
    let mut e = Emit::new(0, &mut r.spans, &mut r.events, &mut r.stats);
    d.data(Dir::C2S, b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nab", &mut e);
    d.gap(Dir::C2S, 5, &mut e);
    d.data(Dir::C2S, b"cde", &mut e);
    d.data(Dir::C2S, b"GET / HT", &mut e);
    d.gap(Dir::C2S, 7, &mut e);
    d.data(Dir::C2S, b"\r\n\r\nGET / HTTP/1.1\r\n\r\n", &mut e);
    d.finish(&mut e);
    assert_eq!(r.stats.http.requests, 2);
    assert_eq!(r.stats.http.request_body_bytes, 10);
    // Gap bytes are the flow stage's to classify.
    let fed = 41 + 3 + 8 + 4 + 18;
    assert_eq!(r.ledger().total(), fed);
    Ok(())
}

#[test]
fn probe_recognises_requests_and_status_lines() {
    assert_eq!(probe(L4::Tcp, Dir::C2S, b"GET /x HTTP/1.1\r\nHost: a\r\n"), Probe::Yes);
    assert_eq!(probe(L4::Tcp, Dir::C2S, b"POST /x HTT"), Probe::Maybe);
    assert_eq!(probe(L4::Tcp, Dir::C2S, b"GETX /x HTTP/1.1\r\n"), Probe::No);
    assert_eq!(probe(L4::Tcp, Dir::C2S, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Probe::No);
    assert_eq!(probe(L4::Tcp, Dir::S2C, b"HTTP/1.1 200 OK\r\n"), Probe::Yes);
    assert_eq!(probe(L4::Tcp, Dir::S2C, b"HTTP/1.1 2"), Probe::No);
    assert_eq!(probe(L4::Tcp, Dir::C2S, b""), Probe::No);
}

/// The quick helpers give what the plain library calls they replace gave.
#[test]
fn helpers_match_the_library_calls() {
    for lower in ["host", "content-length", "sec-websocket-protocol"] {
        for at in 0..lower.len() {
            for c in 0..=u8::MAX {
                let mut name = lower.as_bytes().to_vec();
                name[at] = c;
                let name = String::from_utf8_lossy(&name);
                assert_eq!(is_named(&name, lower), name.eq_ignore_ascii_case(lower), "{name:?}");
            }
        }
        assert!(!is_named(&lower[1..], lower));
    }
    let long = "/".repeat(MAX_WHAT + 5);
    let wide = "é".repeat(MAX_WHAT);
    for (method, path) in [("GET", "/"), ("POST", long.as_str()), ("GET", wide.as_str()), ("X", "é")] {
        assert_eq!(describe_request(method, path), truncate(&format!("{method} {path}"), MAX_WHAT));
    }
    assert_eq!(describe_response("GET /", 404), "GET / 404");
}

/// Pipelined requests queue in order, the first inline and the rest behind.
#[test]
fn pending_queue_is_first_in_first_out() {
    let pending = |id| Pending {
        msg: MsgRef::Exchange(id),
        what: String::new(),
        head: false,
        get: false,
        upgrade: None,
        header_bytes: 0,
        responded: false,
    };
    let id = |p: Option<&Pending>| p.map(|p| p.msg);
    let mut q = PendingQueue::default();
    assert!(q.is_empty() && q.pop_front().is_none() && q.back().is_none());
    q.push_back(pending(1));
    assert_eq!((id(q.front()), id(q.back()), q.len()), (Some(MsgRef::Exchange(1)), Some(MsgRef::Exchange(1)), 1));
    q.push_back(pending(2));
    q.push_back(pending(3));
    assert_eq!((id(q.front()), id(q.back()), q.len()), (Some(MsgRef::Exchange(1)), Some(MsgRef::Exchange(3)), 3));
    assert_eq!(q.pop_front().map(|p| p.msg), Some(MsgRef::Exchange(1)));
    q.push_back(pending(4));
    for want in [2, 3, 4] {
        assert_eq!(q.pop_front().map(|p| p.msg), Some(MsgRef::Exchange(want)));
    }
    assert!(q.is_empty() && q.front_mut().is_none());
    assert_eq!(q.len(), 0);
}

/// What a `Fields` says, for comparing two readings.
fn summary(f: &Fields) -> (Option<u64>, bool, bool, bool, bool, Option<Upgrade>, bool) {
    (f.content_length, f.bad_length, f.chunked, f.other_coding, f.conn_upgrade, f.upgrade, f.ws_protocol_mqtt)
}

/// The byte reader of ASCII values gives what the text reader gives.
#[test]
fn ascii_field_values_read_as_text_values_do() {
    let parts = [
        "", " ", "\t", "\x0b", "\x0c", "\r\n ", ",", "+", "-", "0", "7", "42", "18446744073709551615",
        "18446744073709551616", "chunked", "CHUNKED", "gzip", "upgrade", "Upgrade", "keep-alive", "websocket",
        "WebSocket", "h2c", "mqtt", "MQTTv3.1", "mqt", "x",
    ];
    let mut values = vec![];
    for a in parts {
        for b in parts {
            for c in ["", ",", " , ", "\t"] {
                values.push(format!("{a}{c}{b}"));
            }
        }
    }
    for known in
        [Known::ContentLength, Known::TransferEncoding, Known::Connection, Known::Upgrade, Known::WsProtocol]
    {
        for v in &values {
            // Twice: a repeated Content-Length must agree with the first.
            let (mut bytes, mut text) = (Fields::default(), Fields::default());
            for _ in 0..2 {
                bytes.note_ascii(known, trim_ascii(v.as_bytes()));
                text.note_text(known, v.trim());
            }
            assert_eq!(summary(&bytes), summary(&text), "{known:?} {v:?}");
        }
    }
    for v in &values {
        assert_eq!(trim_ascii(v.as_bytes()), v.trim().as_bytes(), "{v:?}");
        assert_eq!(parse_decimal(v.as_bytes()), v.parse::<u64>().ok(), "{v:?}");
    }
}

/// Non-ASCII values go through the text reader: Unicode spaces trim, bad
/// UTF-8 is replaced.
#[test]
fn non_ascii_field_values_are_read_as_text() {
    let f = fields(&[
        httparse::Header { name: "Content-Length", value: "\u{a0}12\u{3000}".as_bytes() },
        httparse::Header { name: "Connection", value: "\u{85}upgrade".as_bytes() },
        httparse::Header { name: "Host", value: b"h\xffst " },
    ]);
    assert_eq!(f.content_length, Some(12));
    assert!(f.conn_upgrade && !f.bad_length);
    assert_eq!(f.host.as_deref(), Some("h\u{fffd}st"));
}

/// A header block seen whole goes straight to httparse; seen in pieces it
/// is found first, then parsed: both give the same.
#[test]
fn whole_and_split_header_blocks_agree() {
    // Obsolete line folding, LF-only lines, body bytes right behind.
    let r = feed(&[
        (Dir::C2S, b"GET /a HTTP/1.1\nHost: a\n\nGET /b HTTP/1.1\r\nHost: b\r\n\r\n"),
        (Dir::S2C, b"HTTP/1.1 200 OK\r\nX-Long: a\r\n b\r\nContent-Length: 2\r\n\r\nhi"),
        (Dir::S2C, b"HTTP/1.1 200 OK\nContent-Length: 1\n\nx"),
    ]);
    assert_eq!((r.stats.http.requests, r.stats.http.responses, r.stats.http.malformed), (2, 2, 0));
    assert_eq!(r.stats.http.response_body_bytes, 3);
    // httparse refuses a block: found whole, it is malformed up to the next request.
    let r = feed(&[(Dir::C2S, b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\nGET /ok HTTP/1.1\r\n\r\n")]);
    assert_eq!((r.stats.http.requests, r.stats.http.malformed), (1, 1));
    // A refused start with no end yet waits for the end, as before.
    let r = feed(&[(Dir::C2S, b"GET / HTTP/1.1\r\nBad Name: x\r\n")]);
    assert_eq!(r.stats.http.requests, 0);
    assert!(r.events.iter().any(|e| matches!(e, Event::Malformed { .. })));
}

/// After a 2xx to CONNECT the tunnel's bytes are a new stream: recognised
/// again (here TLS), with stray line ends before it as `app_header`.
#[test]
fn a_connect_tunnel_is_recognised_again() {
    let req = b"CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n";
    let resp = b"HTTP/1.1 200 Connection established\r\n\r\n";
    let hello = [22u8, 3, 1, 0, 4, 1, 0, 0, 0];
    let server_hello = [22u8, 3, 3, 0, 4, 2, 0, 0, 0];
    let mut d = Http1::new(&ctx());
    let r = testkit::run(
        &mut d,
        &[(Dir::C2S, req), (Dir::S2C, resp), (Dir::C2S, b"\r\n"), (Dir::C2S, &hello), (Dir::S2C, &server_hello)],
    );
    r.assert_conserved();
    assert!(r.events.contains(&Event::App { proto: crate::vocab::Proto::Tls }), "{:?}", r.events);
    assert_eq!(r.class(Class::TlsHandshake), 18);
    assert_eq!(r.class(Class::AppHeader), (req.len() + resp.len() + 2) as u64);
    assert_eq!(r.stats.tls.connections, 1);
    assert_eq!(r.stats.http.upgrades.get("connect"), Some(&1));
}

#[test]
fn requests_and_responses_carry_their_facets() -> TestResult {
    use crate::vocab::{Facets, Method, resource_hash};
    let conns = capture::tcp_conns("http-keepalive.pcap")?;
    let r = testkit::run(&mut Http1::new(&ctx()), &conns[0].slices());
    let facets: Vec<Facets> =
        r.events.iter().filter_map(|e| if let Event::Facets { facets, .. } = e { Some(*facets) } else { None }).collect();
    let request = facets.first().copied().unwrap_or_default();
    assert_eq!(request.method, Method::Get);
    // The query is not part of the resource.
    assert_eq!(request.resource, resource_hash(b"/api/v1/sensor/latest"));
    assert_eq!(facets.get(1).map(|f| f.status), Some(200));
    Ok(())
}

/// What the HTTP findings need of bodies: a repeated body's hash, text
/// bodies and their records, a chunked upload's chunks.
#[test]
fn bodies_leave_their_facets() -> TestResult {
    use crate::vocab::Facets;
    let facets_of = |conn: &capture::Conn| -> Vec<(u32, Facets)> {
        let r = testkit::run(&mut Http1::new(&ctx()), &conn.slices());
        let mut by_id: BTreeMap<u32, Facets> = BTreeMap::new();
        for e in &r.events {
            if let Event::Facets { id, facets } = e {
                by_id.entry(*id).or_default().add(facets);
            }
        }
        by_id.into_iter().collect()
    };
    // The same 56-byte JSON answer every time, hashed alike, no validators.
    let conns = capture::tcp_conns("http-keepalive.pcap")?;
    let f = facets_of(&conns[0]);
    assert_eq!(f.len(), 15);
    let hashes: BTreeSet<u64> = f.iter().map(|(_, x)| x.body_hash).collect();
    assert_eq!(hashes.len(), 1);
    let h = hashes.first().copied().unwrap_or(0);
    assert_eq!((h >> 32) & 0x7fff_ffff, 56);
    // Too small to gain from gzip: not followed as text.
    assert!(f.iter().all(|(_, x)| x.text == 0 && !x.conditional && x.deflated_down == 0));
    // Batched POSTs (a JSON array of readings) and a chunked NDJSON upload
    // of six chunks, one reading a line.
    let conns = capture::tcp_conns("http-post-batch.pcap")?;
    let all: Vec<Facets> = conns.iter().flat_map(|c| facets_of(c).into_iter().map(|x| x.1)).collect();
    let posts: Vec<&Facets> = all.iter().filter(|x| x.method == crate::vocab::Method::Post).collect();
    assert_eq!(posts.len(), 8);
    assert!(posts.iter().all(|x| x.batch && x.text & 1 == 1 && x.chunks_up == 0));
    let put = all.iter().find(|x| x.method == crate::vocab::Method::Put).copied().unwrap_or_default();
    assert_eq!((put.chunks_up, put.batch), (6, true));
    Ok(())
}

#[test]
fn text_types_and_their_gzip_size() {
    for t in [
        "application/json",
        "text/html; charset=utf-8",
        "application/problem+json",
        "application/xml",
        "text/csv",
        "Application/JSON",
        " TEXT/Plain ;q=1",
        "json",
        "application/X-WWW-Form-Urlencoded",
    ] {
        assert!(is_text_type(t.as_bytes()), "{t}");
    }
    for t in ["application/octet-stream", "image/png", "application/cbor", "", "son", "text", "; json", "json/x"] {
        assert!(!is_text_type(t.as_bytes()), "{t}");
    }
    let body = br#"{"sensor":"node-1","temp_c":21.5}"#.repeat(40);
    let z = gzip_len(&body).unwrap_or(u32::MAX);
    assert!(z > 18 && (z as usize) < body.len() / 5, "{z}");
}
