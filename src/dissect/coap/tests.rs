use super::*;
use crate::dissect::ProtoStats;
use crate::dissect::testkit::{self, Run, TestResult};

/// UDP datagrams of one flow of a shipped capture: (time, direction, bytes).
type Flow = Vec<(i64, Dir, Vec<u8>)>;

/// The UDP flows of `captures/NAME.pcap` (Ethernet, IPv4), each oriented
/// by its first datagram's sender, in order of first appearance.
fn udp_flows(name: &str) -> TestResult<Vec<Flow>> {
    let path = format!("{}/captures/{name}.pcap", env!("CARGO_MANIFEST_DIR"));
    let file = std::fs::read(&path).map_err(|e| format!("{path}: {e}"))?;
    let (_, cap) = pcap_parser::parse_pcap(&file).map_err(|e| format!("{path}: {e:?}"))?;
    let mut keys: Vec<([u8; 6], [u8; 6])> = vec![];
    let mut flows: Vec<Flow> = vec![];
    for block in &cap.blocks {
        let f = block.data;
        if f[12..14] != [0x08, 0x00] {
            continue;
        }
        let ip = &f[14..];
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        if ip[9] != 17 {
            continue;
        }
        let udp = &ip[ihl..];
        let ulen = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
        let payload = udp[8..ulen].to_vec();
        let mut src = [0u8; 6];
        src[..4].copy_from_slice(&ip[12..16]);
        src[4..].copy_from_slice(&udp[0..2]);
        let mut dst = [0u8; 6];
        dst[..4].copy_from_slice(&ip[16..20]);
        dst[4..].copy_from_slice(&udp[2..4]);
        let ts = i64::from(block.ts_sec) * 1_000_000_000 + i64::from(block.ts_usec) * 1000;
        match keys.iter().position(|k| *k == (src, dst) || *k == (dst, src)) {
            Some(i) => {
                let dir = if keys[i].0 == src { Dir::C2S } else { Dir::S2C };
                flows[i].push((ts, dir, payload));
            }
            None => {
                keys.push((src, dst));
                flows.push(vec![(ts, Dir::C2S, payload)]);
            }
        }
    }
    Ok(flows)
}

/// Feeds each flow to its own dissector at the capture's timestamps.
fn feed(flows: &[Flow]) -> Run {
    let mut r = Run::default();
    for flow in flows {
        let mut d = make(&FlowCtx { l4: L4::Udp, server_port: 5683, cfg: Default::default() });
        let mut last = 0;
        for (ts, dir, bytes) in flow {
            let mut e = Emit::new(*ts, &mut r.spans, &mut r.events, &mut r.stats);
            d.data(*dir, bytes, &mut e);
            r.fed += bytes.len() as u64;
            last = *ts;
        }
        let mut e = Emit::new(last, &mut r.spans, &mut r.events, &mut r.stats);
        d.finish(&mut e);
    }
    r
}

fn truth(name: &str) -> TestResult<serde_json::Value> {
    let path = format!("{}/captures/{name}.truth.json", env!("CARGO_MANIFEST_DIR"));
    Ok(serde_json::from_str(&std::fs::read_to_string(path)?)?)
}

/// Every field of the truth's `coap` section that we also report, and
/// the upper byte classes (all of a UDP CoAP capture's are ours).
fn check_capture(name: &str) -> TestResult<Run> {
    let r = feed(&udp_flows(name)?);
    r.assert_conserved();
    let t = truth(name)?;
    let ours = serde_json::to_value(&r.stats.coap)?;
    let mut compared = 0;
    for (k, want) in t["coap"].as_object().ok_or("truth: no coap section")? {
        if let Some(got) = ours.get(k) {
            assert_eq!(got, want, "{name}: coap.{k}");
            compared += 1;
        }
    }
    assert!(compared >= 17, "{name}: only {compared} fields compared");
    for class in [Class::Retransmission, Class::AppHeader, Class::AppControl, Class::Payload] {
        let want = t["byte_classes"][class.name()].as_u64().ok_or_else(|| format!("truth: no byte_classes.{}", class.name()))?;
        assert_eq!(r.class(class), want, "{name}: class {}", class.name());
    }
    assert_eq!(r.stats.coap.malformed_messages, 0);
    // Every exchange opened is closed exactly once.
    let mut opened: Vec<u32> = r
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Open { id, .. } => Some(*id),
            _ => None,
        })
        .collect();
    let mut closed: Vec<u32> = r
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Close { id } => Some(*id),
            _ => None,
        })
        .collect();
    let n = opened.len();
    opened.sort_unstable();
    closed.sort_unstable();
    if flows_share_ids(name)? {
        // Several flows: ids repeat across flows; compare counts only.
        assert_eq!(opened.len(), closed.len(), "{name}: opens vs closes");
    } else {
        opened.dedup();
        assert_eq!(opened.len(), n, "{name}: exchange ids unique");
        assert_eq!(opened, closed, "{name}: every exchange closed once");
    }
    Ok(r)
}

fn flows_share_ids(name: &str) -> TestResult<bool> {
    Ok(udp_flows(name)?.len() > 1)
}



fn flow_bytes(r: &Run) -> u64 {
    r.spans.iter().filter(|s| s.msg == MsgRef::Flow).map(|s| s.len).sum()
}

#[test]
fn con_get_matches_truth() -> TestResult {
    let r = check_capture("coap-con-get")?;
    assert_eq!(r.opens(), vec!["GET /time"; 15]);
    assert_eq!(r.describes(), vec!["GET /time 2.05"; 15]);
    assert_eq!(flow_bytes(&r), 0);
    Ok(())
}

#[test]
fn con_put_matches_truth() -> TestResult {
    let r = check_capture("coap-con-put")?;
    assert_eq!(r.opens(), vec!["PUT /example_data"; 12]);
    assert_eq!(r.describes()[0], "PUT /example_data 2.01");
    Ok(())
}

#[test]
fn non_matches_truth() -> TestResult {
    let r = check_capture("coap-non")?;
    assert_eq!(r.opens().len(), 15);
    assert_eq!(r.describes().len(), 15);
    assert_eq!(flow_bytes(&r), 0);
    Ok(())
}

#[test]
fn sparse_non_matches_truth() -> TestResult {
    let r = check_capture("sparse-coap-non")?;
    assert_eq!(r.describes().iter().filter(|d| d.ends_with("2.04")).count(), 7);
    Ok(())
}

#[test]
fn observe_matches_truth_and_pairs_notifications() -> TestResult {
    let r = check_capture("coap-observe")?;
    let o = r.opens();
    assert_eq!(o.len(), 22, "{o:?}");
    assert_eq!(o[0], "GET /time observe");
    assert_eq!(o.iter().filter(|w| *w == "notify /time").count(), 20);
    assert_eq!(o.last().ok_or("nothing opened")?, "GET /time cancel-observe");
    assert_eq!(r.describes(), vec!["GET /time observe 2.05", "GET /time cancel-observe 2.05"]);
    // Every empty ACK acknowledges a notification: none is flow-level.
    assert_eq!(flow_bytes(&r), 0);
    // A notification's exchange holds it and its ACK.
    let first_notify = r.events.iter().find_map(|e| match e {
        Event::Open { id, what, .. } if what == "notify /time" => Some(*id),
        _ => None,
    });
    let id = first_notify.ok_or("no notification opened")?;
    let mut classes: Vec<Class> =
        r.spans.iter().filter(|s| s.msg == MsgRef::Exchange(id)).map(|s| s.class).collect();
    classes.sort();
    assert_eq!(classes, vec![Class::AppHeader, Class::AppControl, Class::Payload]);
    Ok(())
}

#[test]
fn blockwise_matches_truth() -> TestResult {
    let r = check_capture("coap-blockwise")?;
    let o = r.opens();
    assert_eq!(o.len(), 22);
    assert_eq!(o[0], "PUT /example_data block1 #0+");
    assert!(o.contains(&"PUT /example_data block1 #10".to_string()), "{o:?}");
    assert!(r.describes().contains(&"PUT /example_data block1 #0+ 2.31".to_string()));
    Ok(())
}

#[test]
fn con_retransmit_matches_truth() -> TestResult {
    let r = check_capture("coap-con-retransmit")?;
    // Three requests; the two repeats belong to the first one's exchange.
    assert_eq!(r.opens(), vec!["GET /time"; 3]);
    let retrans: Vec<MsgRef> = r.spans.iter().filter(|s| s.class == Class::Retransmission).map(|s| s.msg).collect();
    assert_eq!(retrans.len(), 2);
    assert!(retrans.iter().all(|m| matches!(m, MsgRef::Exchange(_))));
    Ok(())
}

#[test]
fn port_unreachable_matches_truth() -> TestResult {
    let r = check_capture("coap-port-unreachable")?;
    assert_eq!(r.opens(), vec!["GET /sensors/temp"]);
    // Never answered: closed at the end of the flow, no Responded.
    assert!(!r.events.iter().any(|e| matches!(e, Event::Responded { .. })));
    Ok(())
}

/// Parsing agrees with coap-lite on every message of every capture.
#[test]
fn parse_agrees_with_coap_lite() -> TestResult {
    for name in CAPTURES {
        for flow in udp_flows(name)? {
            for (_, _, bytes) in flow {
                let ours = parse(&bytes).map_err(|e| format!("{name}: {e:?}"))?;
                let lite = coap_lite::Packet::from_bytes(&bytes)?;
                assert_eq!(ours.token, lite.get_token());
                assert_eq!(ours.mid, lite.header.message_id);
                assert_eq!(ours.payload, &lite.payload[..]);
                let n = Options::new(ours.options).count();
                let m: usize = lite.options().map(|(_, v)| v.len()).sum();
                assert_eq!(n, m);
            }
        }
    }
    Ok(())
}

// Hand-built messages for the cases the captures do not show.

fn msg(mtype: u8, code: u8, mid: u16, token: &[u8], options: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0x40 | (mtype << 4) | token.len() as u8, code];
    b.extend_from_slice(&mid.to_be_bytes());
    b.extend_from_slice(token);
    b.extend_from_slice(options);
    if !payload.is_empty() {
        b.push(0xff);
        b.extend_from_slice(payload);
    }
    b
}
const CON: u8 = 0;
const NON: u8 = 1;
const ACK: u8 = 2;
const RST: u8 = 3;
const PATH_A: &[u8] = &[0xb1, b'a'];
const PATH_B: &[u8] = &[0xb1, b'b'];

#[test]
fn out_of_order_responses_pair_by_token() -> TestResult {
    let mut d = Coap::default();
    let pieces: Vec<(Dir, Vec<u8>)> = vec![
        (Dir::C2S, msg(NON, 1, 1, &[0xa1], PATH_A, b"")),
        (Dir::C2S, msg(NON, 1, 2, &[0xb2], PATH_B, b"")),
        (Dir::S2C, msg(NON, 69, 900, &[0xb2], &[], b"bee")),
        (Dir::S2C, msg(NON, 132, 901, &[0xa1], &[], b"")),
    ];
    let refs: Vec<(Dir, &[u8])> = pieces.iter().map(|(d, b)| (*d, b.as_slice())).collect();
    let r = testkit::run(&mut d, &refs);
    r.assert_conserved();
    let describes: Vec<(u32, String)> = r
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Describe { id, what } => Some((*id, what.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(describes, vec![(1, "GET /b 2.05".to_string()), (0, "GET /a 4.04".to_string())]);
    let owners: Vec<MsgRef> = r.spans.iter().map(|s| s.msg).collect();
    assert_eq!(owners[0], MsgRef::Exchange(0));
    assert_eq!(*owners.last().ok_or("no spans")?, MsgRef::Exchange(0));
    Ok(())
}

/// While memory is tight a flow remembers the few latest Message IDs of
/// each sender, telling the flow table what it gave back.
#[test]
fn message_ids_remembered_are_cut_while_memory_is_tight() {
    let mut d = Coap::default();
    let mut r = Run::default();
    for mid in 0..12u16 {
        let mut e = Emit::new(mid.into(), &mut r.spans, &mut r.events, &mut r.stats);
        e.tight = mid >= 8;
        d.data(Dir::C2S, &msg(ACK, 0, mid, &[], &[], b""), &mut e);
        let told: i32 =
            r.events.iter().map(|e| if let Event::Remembering { change } = e { *change } else { 0 }).sum();
        let held = d.seen.0.iter().map(|s| s.len()).sum::<usize>();
        assert_eq!(told, held as i32, "after message {mid}");
    }
    assert_eq!(d.seen[Dir::C2S].iter().map(|s| s.mid).collect::<Vec<_>>(), vec![8, 9, 10, 11]);
    assert!(d.seen[Dir::C2S].capacity() <= 2 * TIGHT_SEEN);
}

#[test]
fn separate_response_after_empty_ack() {
    let mut d = Coap::default();
    let pieces: Vec<(Dir, Vec<u8>)> = vec![
        (Dir::C2S, msg(CON, 1, 10, &[7], PATH_A, b"")),
        (Dir::S2C, msg(ACK, 0, 10, &[], &[], b"")),
        (Dir::S2C, msg(CON, 69, 300, &[7], &[], b"late")),
        (Dir::C2S, msg(ACK, 0, 300, &[], &[], b"")),
    ];
    let refs: Vec<(Dir, &[u8])> = pieces.iter().map(|(d, b)| (*d, b.as_slice())).collect();
    let r = testkit::run(&mut d, &refs);
    r.assert_conserved();
    assert!(r.spans.iter().all(|s| s.msg == MsgRef::Exchange(0)));
    assert_eq!(r.class(Class::AppControl), 8);
    assert_eq!(r.class(Class::Payload), 4);
    // Closed once, after the client's ACK of the separate response (what
    // is remembered of that ACK aside).
    let events: Vec<&Event> = r.events.iter().filter(|e| !matches!(e, Event::Remembering { .. })).collect();
    let closes: Vec<usize> =
        events.iter().enumerate().filter(|(_, e)| matches!(e, Event::Close { .. })).map(|(i, _)| i).collect();
    assert_eq!(closes, vec![events.len() - 1]);
    assert_eq!(r.stats.coap.codes.get("Empty"), Some(2));
}

#[test]
fn piggybacked_ack_pairs_by_mid_when_tokens_are_empty() {
    let mut d = Coap::default();
    let pieces: Vec<(Dir, Vec<u8>)> = vec![
        (Dir::C2S, msg(CON, 1, 1, &[], PATH_A, b"")),
        (Dir::C2S, msg(CON, 1, 2, &[], PATH_B, b"")),
        (Dir::S2C, msg(ACK, 69, 2, &[], &[], b"b")),
        (Dir::S2C, msg(ACK, 69, 1, &[], &[], b"a")),
    ];
    let refs: Vec<(Dir, &[u8])> = pieces.iter().map(|(d, b)| (*d, b.as_slice())).collect();
    let r = testkit::run(&mut d, &refs);
    assert_eq!(r.describes(), vec!["GET /b 2.05", "GET /a 2.05"]);
}

#[test]
fn rst_rejects_request_and_ping_is_flow() {
    let mut d = Coap::default();
    let pieces: Vec<(Dir, Vec<u8>)> = vec![
        (Dir::C2S, msg(CON, 1, 5, &[1], PATH_A, b"")),
        (Dir::S2C, msg(RST, 0, 5, &[], &[], b"")),
        (Dir::C2S, msg(CON, 0, 6, &[], &[], b"")),
        (Dir::S2C, msg(RST, 0, 6, &[], &[], b"")),
    ];
    let refs: Vec<(Dir, &[u8])> = pieces.iter().map(|(d, b)| (*d, b.as_slice())).collect();
    let r = testkit::run(&mut d, &refs);
    r.assert_conserved();
    assert_eq!(r.describes(), vec!["GET /a RST"]);
    assert_eq!(flow_bytes(&r), 8);
    assert_eq!(r.stats.coap.messages.get("RST"), Some(2));
}

#[test]
fn mid_reuse_after_exchange_lifetime_is_not_a_retransmission() {
    let mut d = Coap::default();
    let m = msg(NON, 2, 77, &[1], PATH_A, b"x");
    let mut r = Run::default();
    for ts in [0, 1_000_000_000, 300_000_000_000] {
        let mut e = Emit::new(ts, &mut r.spans, &mut r.events, &mut r.stats);
        d.data(Dir::C2S, &m, &mut e);
    }
    assert_eq!(r.stats.coap.retransmitted_messages, 1);
    assert_eq!(r.class(Class::Retransmission), m.len() as u64);
    // The first request was closed unanswered when its lifetime ran out.
    assert!(r.events.contains(&Event::Close { id: 0 }));
}

#[test]
fn truncated_and_garbage_are_malformed_never_panic() {
    let good = msg(CON, 1, 1, &[1, 2, 3, 4], &[0xb4, b't', b'i', b'm', b'e', 0xd1, 0x0a, 0x05], b"payload");
    let mut cases: Vec<Vec<u8>> = (0..good.len()).map(|n| good[..n].to_vec()).collect();
    cases.push(vec![0x40, 0x00, 0x00, 0x01, 0x00]); // empty with content
    cases.push(vec![0x49, 0x01, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // TKL 9
    cases.push(vec![0x80, 0x01, 0, 1]); // version 2
    cases.push(vec![0x40, 0x01, 0, 1, 0xff]); // marker, no payload
    cases.push(vec![0x40, 0x01, 0, 1, 0xf1, 0]); // delta 15
    cases.push(vec![0x40, 0x01, 0, 1, 0x1f, 0]); // length 15
    cases.push(vec![0x40, 0x01, 0, 1, 0xe0, 0xff, 0xff, 0xe0, 0xff, 0xff]); // number > 65535
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..2000 {
        let len = (seed % 40) as usize;
        let mut b = vec![];
        for _ in 0..len {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            b.push(seed as u8);
        }
        if let Some(first) = b.first_mut() {
            *first = 0x40 | (*first & 0x3f);
        }
        cases.push(b);
    }
    let mut d = Coap::default();
    let mut r = Run::default();
    for (i, c) in cases.iter().enumerate() {
        let mut e = Emit::new(i as i64, &mut r.spans, &mut r.events, &mut r.stats);
        d.data(if i % 2 == 0 { Dir::C2S } else { Dir::S2C }, c, &mut e);
        r.fed += c.len() as u64;
        let _ = probe(L4::Udp, Dir::C2S, c);
    }
    let mut e = Emit::new(0, &mut r.spans, &mut r.events, &mut r.stats);
    d.finish(&mut e);
    r.assert_conserved();
    // Cuts inside the header, token or an option, or right after the
    // marker, are malformed; cuts between options or in the payload are
    // shorter well-formed messages.
    let broken: Vec<usize> = (0..good.len()).filter(|&n| parse(&good[..n]).is_err()).collect();
    let expect: Vec<usize> = (0..8).chain(9..13).chain([14, 15, 17]).collect();
    assert_eq!(broken, expect);
    assert!(r.stats.coap.malformed_messages >= broken.len() as u64 + 7);
    // The seven hand-made broken messages.
    for c in &cases[good.len()..good.len() + 7] {
        assert!(parse(c).is_err(), "{c:02x?}");
    }
    assert!(d.pending.len() <= MAX_PENDING && d.awaiting.len() <= MAX_PENDING);
    assert!(d.seen.0.iter().all(|s| s.len() <= MAX_SEEN));
}

#[test]
fn unknown_option_names_are_capped() {
    let mut d = Coap::default();
    let mut r = Run::default();
    for n in 0..200u16 {
        // One unknown option, number 1000 + n (delta 14: two extra bytes).
        let number = 1000 + n - 269;
        let opts = [0xe0, (number >> 8) as u8, number as u8];
        let m = msg(NON, 2, n, &[], &opts, b"");
        let mut e = Emit::new(0, &mut r.spans, &mut r.events, &mut r.stats);
        d.data(Dir::C2S, &m, &mut e);
    }
    let options = &r.stats.coap.options;
    assert_eq!(options.len(), MAX_OPTION_NAMES + 1);
    assert_eq!(options.values().sum::<u64>(), 200);
    assert_eq!(options.get("Unknown Option (1000)"), Some(&1));
}

/// Past the cap, the unknown option numbers listed are the smallest keys:
/// the same whichever order messages came in, and however flows were
/// spread over threads. Named options are always listed.
#[test]
fn listed_unknown_options_do_not_depend_on_order() {
    // 200 messages: an unknown option 1000 + (37 i mod 150), and Uri-Path.
    let messages: Vec<Vec<u8>> = (0..200u16)
        .map(|i| {
            // Uri-Path (11) "x", then the unknown option: delta from 11, 14-form.
            let ext = 1000 + (i * 37) % 150 - 11 - 269;
            let opts = [0xb1, b'x', 0xe0, (ext >> 8) as u8, ext as u8];
            msg(NON, 2, i, &[], &opts, b"")
        })
        .collect();
    let stats = |ms: &[Vec<u8>]| {
        let mut d = Coap::default();
        let mut r = Run::default();
        for m in ms {
            d.data(Dir::C2S, m, &mut Emit::new(0, &mut r.spans, &mut r.events, &mut r.stats));
        }
        r.stats.coap
    };
    let forward = stats(&messages);
    let backward = stats(&messages.iter().rev().cloned().collect::<Vec<_>>());
    assert_eq!(forward.options, backward.options);
    assert_eq!(forward.options.get("Uri-Path"), Some(&200));
    assert_eq!(forward.options.values().sum::<u64>(), 400);
    assert!(forward.options.contains_key("Unknown Option (1063)"));
    assert!(!forward.options.contains_key("Unknown Option (1064)"));
    let (a, b) = messages.split_at(messages.len() / 3);
    for (x, y) in [(stats(a), stats(b)), (stats(b), stats(a))] {
        let mut merged = x;
        merged.merge(&y);
        assert_eq!(merged.options, forward.options);
    }
}

#[test]
fn probe_verdicts() -> TestResult {
    let get = msg(CON, 1, 1, &[1], &[0xb4, b't', b'i', b'm', b'e'], b"");
    assert_eq!(probe(L4::Udp, Dir::C2S, &get), Probe::Yes);
    // libcoap's first Block1 PUT carries Request-Tag (292).
    let first_block = &udp_flows("coap-blockwise")?[0][0].2;
    assert_eq!(probe(L4::Udp, Dir::C2S, first_block), Probe::Yes);
    assert_eq!(probe(L4::Udp, Dir::C2S, &msg(CON, 0, 1, &[], &[], b"")), Probe::Maybe);
    assert_eq!(probe(L4::Udp, Dir::C2S, &msg(NON, 69, 1, &[1], &[], b"x")), Probe::Maybe);
    assert_eq!(probe(L4::Udp, Dir::C2S, &msg(CON, 1, 1, &[1], &[0xb2, 0x01, 0x02], b"")), Probe::Maybe);
    assert_eq!(probe(L4::Udp, Dir::C2S, &msg(CON, 0x61, 1, &[], &[], b"x")), Probe::No); // class 3
    assert_eq!(probe(L4::Udp, Dir::C2S, b"GET / HTTP/1.1\r\n"), Probe::No);
    // A DNS query for example.com is not CoAP.
    let dns = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01";
    assert_eq!(probe(L4::Udp, Dir::C2S, dns), Probe::No);
    Ok(())
}

#[test]
fn probe_knows_every_shipped_flow() -> TestResult {
    for name in CAPTURES {
        for flow in udp_flows(name)? {
            assert_eq!(probe(L4::Udp, Dir::C2S, &flow[0].2), Probe::Yes, "{name}");
        }
    }
    // DTLS records are not CoAP.
    for flow in udp_flows("coap-dtls")? {
        assert!(flow.iter().all(|(_, dir, b)| probe(L4::Udp, *dir, b) == Probe::No));
    }
    Ok(())
}

const CAPTURES: [&str; 8] = [
    "coap-con-get",
    "coap-con-put",
    "coap-non",
    "coap-observe",
    "coap-blockwise",
    "coap-con-retransmit",
    "coap-port-unreachable",
    "sparse-coap-non",
];

#[test]
fn stats_merge_adds() -> TestResult {
    let r = feed(&udp_flows("coap-con-get")?);
    let mut all = ProtoStats::default();
    all.merge(&r.stats);
    all.merge(&r.stats);
    assert_eq!(all.coap.total_coap_bytes, 2 * 510);
    assert_eq!(all.coap.messages.get("CON"), Some(30));
    assert_eq!(all.coap.options.get("Uri-Path"), Some(&30));
    Ok(())
}

#[test]
fn unknown_option_keys_are_written_whole() {
    for n in [0u32, 9, 1000, 65_535 + 269, u32::MAX] {
        assert_eq!(unknown_option_key(n, &mut [0; 32]), format!("Unknown Option ({n})"));
    }
}

/// Requests wait for their response up to an exchange lifetime (247 s):
/// a fleet's unanswered NON requests are thousands of them at once. What
/// few need (a listed one's description, an Observe registration's
/// resource) is kept apart.
#[test]
fn a_pending_request_stays_small() {
    let size = std::mem::size_of::<Pending>();
    assert!(size <= 48, "a pending request takes {size} bytes");
}
