use super::super::Config;
use super::super::http::capture::{self, truth};
use super::super::testkit::{self, TestResult};
use super::*;
use std::sync::Arc;

fn ctx() -> FlowCtx {
    FlowCtx { l4: L4::Tcp, server_port: 8081, cfg: Arc::new(Config::default()) }
}

#[test]
fn h2c_prior_knowledge_matches_truth() -> TestResult {
    let name = "h2c-keepalive.pcap";
    let t = truth(name)?;
    for bytewise in [false, true] {
        let got = capture::run(name, make, bytewise)?;
        for c in [Class::AppHeader, Class::AppControl, Class::Payload] {
            assert_eq!(
                got.ledger.get(c),
                t["byte_classes"][c.name()].as_u64().unwrap_or(0),
                "{} bytewise={bytewise}",
                c.name()
            );
        }
        let h = serde_json::to_value(&got.stats.http2)?;
        for k in [
            "connections",
            "frames",
            "preface",
            "requests",
            "status_codes",
            "header_block_and_frame_header_bytes",
            "data_payload_bytes_c2s",
            "data_payload_bytes_s2c",
            "control_frame_bytes",
        ] {
            assert_eq!(h[k], t["http2"][k], "http2.{k} bytewise={bytewise}");
        }
        assert_eq!(got.stats.http2.hpack_errors, 0);
        assert_eq!(got.stats.http2.malformed, 0);
    }
    let a = capture::run(name, make, false)?;
    let b = capture::run(name, make, true)?;
    assert_eq!(capture::outline(&a.runs[0]), capture::outline(&b.runs[0]));
    Ok(())
}

#[test]
fn one_exchange_per_stream() -> TestResult {
    let conns = capture::tcp_conns("h2c-keepalive.pcap")?;
    let r = testkit::run(&mut Http2::new(&ctx()), &conns[0].slices());
    r.assert_conserved();
    let opens: Vec<_> = r
        .events
        .iter()
        .filter_map(|e| if let Event::Open { id, what, .. } = e { Some((*id, what.clone())) } else { None })
        .collect();
    assert_eq!(opens.len(), 10);
    assert!(opens.iter().all(|(_, w)| w.starts_with("GET /")), "{opens:?}");
    for (id, what) in &opens {
        let mine: Vec<_> = r
            .events
            .iter()
            .filter(|e| match e {
                Event::Responded { id: i } | Event::Close { id: i } | Event::Describe { id: i, .. } => i == id,
                _ => false,
            })
            .collect();
        assert_eq!(
            mine,
            vec![
                &Event::Responded { id: *id },
                &Event::Describe { id: *id, what: format!("{what} 200") },
                &Event::Close { id: *id }
            ]
        );
        // Request HEADERS, response HEADERS and DATA belong to it.
        let n: u64 = r.spans.iter().filter(|s| s.msg == MsgRef::Exchange(*id)).map(|s| s.len).sum();
        assert!(n >= 37 + 62 + 65, "exchange {id}: {n}");
    }
    // The preface and SETTINGS are setup.
    let setup: u64 = r.spans.iter().filter(|s| s.msg == MsgRef::Setup).map(|s| s.len).sum();
    assert_eq!(setup, 24 + 45 + 27 + 9 + 9);
    Ok(())
}

#[test]
fn h2c_upgrade_hands_over_from_http1() -> TestResult {
    let conns = capture::tcp_conns("h2c-keepalive.pcap")?;
    let c = &conns[0];
    // Client: preface + SETTINGS + WINDOW_UPDATE (first segment), then
    // the SETTINGS ACK; server: its first two segments (SETTINGS,
    // WINDOW_UPDATE, SETTINGS ACK, HEADERS and DATA of stream 1).
    let preface = &c.pieces[0].1;
    assert!(preface.starts_with(PREFACE));
    let ack = &c.pieces[4].1;
    assert_eq!(ack.len(), 9);
    let mut s2c = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n".to_vec();
    s2c.extend_from_slice(&c.pieces[2].1);
    let req = b"GET /api HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n";
    let pieces: Vec<(Dir, &[u8])> =
        vec![(Dir::C2S, req), (Dir::S2C, &s2c), (Dir::C2S, preface), (Dir::S2C, &c.pieces[3].1), (Dir::C2S, ack)];
    for bytewise in [false, true] {
        let mut d = (super::super::http::PROTOCOL.make)(&ctx());
        let r =
            if bytewise { testkit::run_bytewise(d.as_mut(), &pieces) } else { testkit::run(d.as_mut(), &pieces) };
        r.assert_conserved();
        assert!(r.events.contains(&Event::App { proto: crate::vocab::Proto::Http2 }));
        assert_eq!(r.stats.http.upgrades.get("h2c"), Some(&1));
        assert_eq!(r.stats.http2.preface, 1);
        assert_eq!(r.stats.http2.responses, 1);
        assert_eq!(r.class(Class::Payload), 56);
        assert_eq!(
            r.events.iter().filter(|e| !matches!(e, Event::App { .. } | Event::Facets { .. })).cloned().collect::<Vec<_>>(),
            vec![
                Event::Open { id: 1, kind: crate::vocab::Proto::Http, what: "GET /api".into() },
                Event::Responded { id: 1 },
                Event::Describe { id: 1, what: "GET /api 101".into() },
                Event::Describe { id: 1, what: "GET /api 200".into() },
                Event::Close { id: 1 },
            ]
        );
    }
    Ok(())
}

fn frame(typ: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let l = payload.len() as u32;
    let mut f = vec![(l >> 16) as u8, (l >> 8) as u8, l as u8, typ, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

#[test]
fn padding_continuation_and_resets() {
    let mut enc = loona_hpack::Encoder::new();
    let block = enc.encode([(&b":method"[..], &b"POST"[..]), (b":path", b"/up"), (b":authority", b"x")]);
    let (a, b) = block.split_at(3);
    let mut c2s = PREFACE.to_vec();
    c2s.extend(frame(SETTINGS, 0, 0, &[0, 5, 0, 0, 0x40, 0]));
    // HEADERS padded with priority, then CONTINUATION.
    let mut h = vec![2u8, 0, 0, 0, 0, 16];
    h.extend_from_slice(a);
    h.extend_from_slice(&[0, 0]);
    c2s.extend(frame(HEADERS, PADDED | PRIORITY_FLAG, 1, &h));
    c2s.extend(frame(CONTINUATION, END_HEADERS, 1, b));
    // Padded DATA: pad length 3, "hello", 3 bytes padding.
    c2s.extend(frame(DATA, PADDED | END_STREAM, 1, b"\x03hello\0\0\0"));
    c2s.extend(frame(PING, 0, 0, &[0; 8]));
    // A second request, reset by the client.
    let block3 = enc.encode([(&b":method"[..], &b"GET"[..]), (b":path", b"/x")]);
    c2s.extend(frame(HEADERS, END_HEADERS | END_STREAM, 3, &block3));
    c2s.extend(frame(RST_STREAM, 0, 3, &[0, 0, 0, 8]));
    c2s.extend(frame(GOAWAY, 0, 0, &[0, 0, 0, 3, 0, 0, 0, 0]));
    let mut senc = loona_hpack::Encoder::new();
    let mut s2c = frame(SETTINGS, 0, 0, &[]);
    s2c.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &senc.encode([(&b":status"[..], &b"204"[..])])));
    let pieces: Vec<(Dir, &[u8])> = vec![(Dir::C2S, &c2s), (Dir::S2C, &s2c)];
    let mut outlines = vec![];
    for bytewise in [false, true] {
        let mut d = Http2::new(&ctx());
        let r = if bytewise { testkit::run_bytewise(&mut d, &pieces) } else { testkit::run(&mut d, &pieces) };
        r.assert_conserved();
        assert_eq!(r.class(Class::Payload), 5);
        assert_eq!(r.stats.http2.hpack_errors, 0);
        assert_eq!(r.stats.http2.methods.get("POST"), Some(&1));
        assert_eq!(r.stats.http2.status_codes.get("204"), Some(&1));
        assert_eq!(r.stats.http2.stream_resets, 1);
        assert_eq!(r.stats.http2.goaways, 1);
        assert!(r.events.contains(&Event::Open { id: 1, kind: crate::vocab::Proto::Http2, what: "(header block continues)".into() }));
        assert!(r.events.contains(&Event::Describe { id: 1, what: "POST /up".into() }));
        assert!(r.events.contains(&Event::Describe { id: 1, what: "POST /up 204".into() }));
        assert!(r.events.contains(&Event::Close { id: 2 }));
        let control = 24 + 15 + 17 + 13 + 17 + 9;
        assert_eq!(r.class(Class::AppControl), control);
        outlines.push(capture::outline(&r));
    }
    assert_eq!(outlines[0], outlines[1]);
}

#[test]
fn garbage_and_truncation_are_malformed_never_panic() -> TestResult {
    let conns = capture::tcp_conns("h2c-keepalive.pcap")?;
    let first = &conns[0].pieces[0].1;
    let second = &conns[0].pieces[1].1;
    let mut both = first.clone();
    both.extend_from_slice(second);
    for cut in 0..both.len() {
        let r = testkit::run(&mut Http2::new(&ctx()), &[(Dir::C2S, &both[..cut])]);
        r.assert_conserved();
    }
    let mut noise = vec![0u8; 4000];
    let mut x = 99u32;
    for b in noise.iter_mut() {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        *b = (x >> 16) as u8;
    }
    let mut after_preface = PREFACE.to_vec();
    after_preface.extend_from_slice(&noise);
    let bad_hpack = frame(HEADERS, END_HEADERS, 1, &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    let (settings, ping, cont) =
        (frame(SETTINGS, 0, 1, &[0; 6]), frame(PING, 0, 0, &[0; 7]), frame(CONTINUATION, 0, 1, &[0; 3]));
    let cases: Vec<Vec<(Dir, &[u8])>> = vec![
        vec![(Dir::C2S, &after_preface), (Dir::S2C, &noise)],
        vec![(Dir::C2S, b"PRI * HTTP/2.0\r\n\r\nXX")],
        vec![(Dir::S2C, &settings)],
        vec![(Dir::S2C, &ping)],
        vec![(Dir::S2C, &cont)],
        vec![(Dir::S2C, &[0, 0x50, 0, 0, 0, 0, 0, 0, 1])],
    ];
    for case in &cases {
        let r = testkit::run(&mut Http2::new(&ctx()), case);
        r.assert_conserved();
        assert!(r.events.iter().any(|e| matches!(e, Event::Malformed { .. })), "{:?}", r.events);
        let rb = testkit::run_bytewise(&mut Http2::new(&ctx()), case);
        rb.assert_conserved();
    }
    let r = testkit::run(&mut Http2::new(&ctx()), &[(Dir::S2C, &bad_hpack), (Dir::S2C, &bad_hpack)]);
    r.assert_conserved();
    assert_eq!(r.stats.http2.hpack_errors, 1);
    assert_eq!(r.class(Class::AppHeader), 2 * 15);
    Ok(())
}

#[test]
fn random_header_blocks_never_panic() {
    let mut x = 7u64;
    let mut d = Http2::new(&ctx());
    let mut r = testkit::Run::default();
    let mut fed = 0u64;
    for round in 0..3000u32 {
        let mut block = vec![];
        for _ in 0..(round % 40) {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            block.push((x >> 40) as u8);
        }
        let f = frame(HEADERS, END_HEADERS | END_STREAM, 2 * round + 1, &block);
        fed += f.len() as u64;
        let mut e = Emit::new(0, &mut r.spans, &mut r.events, &mut r.stats);
        d.data(Dir::S2C, &f, &mut e);
        // A fresh decoder each time so every block is really decoded.
        d.sides[Dir::S2C] = Side::new(false);
    }
    let mut e = Emit::new(0, &mut r.spans, &mut r.events, &mut r.stats);
    d.finish(&mut e);
    r.fed = fed;
    r.assert_conserved();
    assert!(r.stats.http2.hpack_errors > 0);
}

#[test]
fn probe_wants_the_preface() {
    assert_eq!(probe(L4::Tcp, Dir::C2S, PREFACE), Probe::Yes);
    assert_eq!(probe(L4::Tcp, Dir::C2S, &PREFACE[..16]), Probe::Yes);
    assert_eq!(probe(L4::Tcp, Dir::C2S, b"PRI * HTTP/1.1\r\n"), Probe::No);
    assert_eq!(probe(L4::Tcp, Dir::S2C, PREFACE), Probe::No);
    assert_eq!(probe(L4::Tcp, Dir::C2S, b"GET / HTTP/1.1\r\n"), Probe::No);
}

/// Header values of kilobytes: descriptions and statistics keys are cut
/// (one response code of 64 KB, named by one byte in each response, once
/// made every exchange's description 64 KB), and the same as cut from the
/// whole value.
#[test]
fn long_pseudo_headers_are_cut() {
    let method = "M".repeat(100);
    let path = format!("/{}", "é".repeat(1000));
    let status = "5".repeat(5000);
    let mut enc = loona_hpack::Encoder::new();
    let mut senc = loona_hpack::Encoder::new();
    let (mut c2s, mut s2c) = (PREFACE.to_vec(), frame(SETTINGS, 0, 0, &[]));
    c2s.extend(frame(SETTINGS, 0, 0, &[]));
    for stream in [1u32, 3, 5] {
        let block = enc.encode([(&b":method"[..], method.as_bytes()), (b":path", path.as_bytes())]);
        c2s.extend(frame(HEADERS, END_HEADERS | END_STREAM, stream, &block));
        let block = senc.encode([(&b":status"[..], status.as_bytes())]);
        s2c.extend(frame(HEADERS, END_HEADERS | END_STREAM, stream, &block));
    }
    let r = testkit::run(&mut Http2::new(&ctx()), &[(Dir::C2S, &c2s), (Dir::S2C, &s2c)]);
    r.assert_conserved();
    assert_eq!(r.stats.http2.hpack_errors, 0);
    let request = truncate(&format!("{method} {path}"));
    assert!(r.events.contains(&Event::Open { id: 1, kind: crate::vocab::Proto::Http2, what: request.clone() }));
    let key = |s: &str| truncated(s, MAX_KEY).into_owned();
    assert!(r.events.contains(&Event::Describe { id: 1, what: format!("{request} {}", key(&status)) }));
    assert_eq!(r.stats.http2.methods.get(&key(&method)), Some(&3));
    assert_eq!(r.stats.http2.status_codes.get(&key(&status)), Some(&3));
}
