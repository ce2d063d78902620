use super::super::http::capture::{self, truth};
use super::super::testkit::{self, TestResult};
use super::super::{Config, L4};
use super::*;
use std::sync::Arc;

fn ctx() -> FlowCtx {
    FlowCtx { l4: L4::Tcp, server_port: 8080, cfg: Arc::new(Config::default()) }
}

fn http(ctx: &FlowCtx) -> Box<dyn Dissector> {
    (super::super::http::PROTOCOL.make)(ctx)
}

/// A stand-in for the MQTT dissector with its contract: PUBLISH fixed
/// header, topic and packet id `app_header`, message `payload`, every
/// other packet whole `app_control`; one exchange per PUBLISH.
#[derive(Clone, Default)]
struct MiniMqtt {
    held: [Vec<u8>; 2],
    next_id: u32,
}

fn mini_mqtt(_: &FlowCtx) -> Box<dyn Dissector> {
    Box::new(MiniMqtt::default())
}

impl Dissector for MiniMqtt {
    fn data(&mut self, dir: Dir, data: &[u8], emit: &mut Emit) {
        let held = &mut self.held[dir.idx()];
        held.extend_from_slice(data);
        loop {
            let mut len = 0usize;
            let mut i = 1;
            let whole = loop {
                let Some(&b) = held.get(i) else { break None };
                len |= usize::from(b & 0x7f) << (7 * (i - 1));
                i += 1;
                if b & 0x80 == 0 {
                    break Some(i + len);
                }
            };
            let Some(n) = whole.filter(|n| *n <= held.len()) else { return };
            if held[0] >> 4 == 3 {
                let topic = usize::from(u16::from_be_bytes([held[i], held[i + 1]]));
                let id = if held[0] & 6 != 0 { 2 } else { 0 };
                let hdr = i + 2 + topic + id;
                self.next_id += 1;
                emit.event(Event::Open { id: self.next_id, kind: crate::vocab::Proto::Mqtt, what: "PUBLISH".into() });
                emit.span(Class::AppHeader, hdr as u64, MsgRef::Exchange(self.next_id));
                emit.span(Class::Payload, (n - hdr) as u64, MsgRef::Exchange(self.next_id));
                emit.event(Event::Close { id: self.next_id });
            } else {
                emit.span(Class::AppControl, n as u64, MsgRef::Flow);
            }
            held.drain(..n);
        }
    }
    fn gap(&mut self, dir: Dir, _len: u64, emit: &mut Emit) {
        let h = &mut self.held[dir.idx()];
        emit.malformed(h.len() as u64, MsgRef::Flow, "cut by a gap");
        h.clear();
    }
    fn finish(&mut self, emit: &mut Emit) {
        for h in &mut self.held {
            emit.span(Class::Payload, h.len() as u64, MsgRef::Flow);
            h.clear();
        }
    }
}

#[test]
fn websocket_section_matches_truth() -> TestResult {
    for name in ["websocket.pcapng", "websocket-storm-fixed.pcap", "websocket-storm-backoff.pcap"] {
        let t = truth(name)?;
        for bytewise in [false, true] {
            let got = capture::run(name, http, bytewise)?;
            let w = serde_json::to_value(&got.stats.websocket)?;
            for k in [
                "connections",
                "frames",
                "masked_frames",
                "data_payload_bytes_c2s",
                "data_payload_bytes_s2c",
                "data_frame_header_bytes",
                "control_frame_bytes",
                "upgrade_bytes",
            ] {
                assert_eq!(w[k], t["websocket"][k], "{name} websocket.{k}");
            }
        }
    }
    Ok(())
}

#[test]
fn each_data_message_is_an_exchange_and_control_frames_are_flow() -> TestResult {
    let conns = capture::tcp_conns("websocket.pcapng")?;
    let r = testkit::run(http(&ctx()).as_mut(), &conns[0].slices());
    r.assert_conserved();
    assert!(r.events.contains(&Event::App { proto: crate::vocab::Proto::Websocket }));
    let opens = r.events.iter().filter(|e| matches!(e, Event::Open { kind: crate::vocab::Proto::Websocket, .. })).count();
    let closes = r.events.iter().filter(|e| matches!(e, Event::Close { .. })).count();
    assert_eq!((opens, closes), (30, 30));
    // Upgrade request and response are connection setup.
    let setup: u64 = r.spans.iter().filter(|s| s.msg == MsgRef::Setup).map(|s| s.len).sum();
    assert_eq!(setup, 396);
    let control_flow: u64 =
        r.spans.iter().filter(|s| s.class == Class::AppControl && s.msg == MsgRef::Flow).map(|s| s.len).sum();
    assert_eq!(control_flow, 60);
    Ok(())
}

/// The MQTT-over-WebSocket capture after its upgrade (two segments).
fn mqtt_ws_frames() -> TestResult<Vec<(Dir, Vec<u8>)>> {
    let conns = capture::tcp_conns("mqtt-ws.pcap")?;
    let c = &conns[0];
    assert!(c.pieces[0].1.starts_with(b"GET /mqtt"));
    assert!(c.pieces[1].1.starts_with(b"HTTP/1.1 101"));
    assert_eq!(c.pieces[0].1.len() + c.pieces[1].1.len(), 453);
    Ok(c.pieces[2..].to_vec())
}

#[test]
fn mqtt_inside_matches_truth_classes() -> TestResult {
    let t = truth("mqtt-ws.pcap")?;
    let bc = &t["byte_classes"];
    let frames = mqtt_ws_frames()?;
    let pieces: Vec<(Dir, &[u8])> = frames.iter().map(|(d, b)| (*d, b.as_slice())).collect();
    // Negotiated (subprotocol mqtt) and sniffed (first binary message is
    // a CONNECT), fed as captured and bytewise: the same classes.
    for negotiated in [true, false] {
        let mut runs = vec![];
        for bytewise in [false, true] {
            let mut ws = WebSocket::with_inner(&ctx(), negotiated, 5, mini_mqtt);
            let r = if bytewise { testkit::run_bytewise(&mut ws, &pieces) } else { testkit::run(&mut ws, &pieces) };
            r.assert_conserved();
            assert_eq!(r.class(Class::AppHeader) + 453, bc["app_header"].as_u64().unwrap_or(0));
            assert_eq!(r.class(Class::AppControl), bc["app_control"].as_u64().unwrap_or(0));
            assert_eq!(r.class(Class::Payload), bc["payload"].as_u64().unwrap_or(0));
            assert_eq!(r.stats.websocket.header_bytes, t["websocket"]["header_bytes"].as_u64().unwrap_or(0));
            assert_eq!(r.stats.websocket.payload_bytes, t["websocket"]["payload_bytes"].as_u64().unwrap_or(0));
            assert_eq!(r.stats.websocket.frames.get("binary"), Some(&20));
            // Inner exchange ids come after the ones the flow used.
            assert!(r.events.contains(&Event::Open { id: 6, kind: crate::vocab::Proto::Mqtt, what: "PUBLISH".into() }));
            assert!(!r.events.iter().any(|e| matches!(e, Event::Open { kind: crate::vocab::Proto::Websocket, .. })));
            runs.push(capture::outline(&r));
        }
        assert_eq!(runs[0], runs[1]);
    }
    Ok(())
}

#[test]
fn mqtt_ws_through_http_conserves_and_counts_frames() -> TestResult {
    let got = capture::run("mqtt-ws.pcap", http, false)?;
    let t = truth("mqtt-ws.pcap")?;
    let bc = &t["byte_classes"];
    let app =
        |l: &crate::ledger::Ledger| l.get(Class::AppHeader) + l.get(Class::AppControl) + l.get(Class::Payload);
    let want = bc["app_header"].as_u64().unwrap_or(0)
        + bc["app_control"].as_u64().unwrap_or(0)
        + bc["payload"].as_u64().unwrap_or(0);
    assert_eq!(app(&got.ledger), want);
    // With the real MQTT dissector inside: exactly the truth's classes.
    for c in [Class::AppHeader, Class::AppControl, Class::Payload] {
        assert_eq!(got.ledger.get(c), bc[c.name()].as_u64().unwrap_or(0), "{}", c.name());
    }
    let m = serde_json::to_value(&got.stats.mqtt)?;
    for k in ["packets", "keepalive_s", "publish_payload_bytes", "total_mqtt_bytes"] {
        assert_eq!(m[k], t["mqtt"][k], "mqtt.{k}");
    }
    assert_eq!(got.stats.websocket.frames.get("binary"), Some(&20));
    assert_eq!(got.stats.websocket.header_bytes, 112);
    assert_eq!(got.stats.websocket.upgrade_bytes, 453);
    assert_eq!(got.stats.websocket.inner.get("mqtt"), Some(&1));
    assert!(got.runs[0].events.contains(&Event::App { proto: crate::vocab::Proto::Websocket }));
    Ok(())
}

fn feed(ws: &mut WebSocket, pieces: &[(Dir, &[u8])]) -> testkit::Run {
    let r = testkit::run(ws, pieces);
    r.assert_conserved();
    r
}

#[test]
fn fragments_extended_lengths_and_masks() {
    // Text "Hel" + continuation "lo" (masked, client), then a 300-byte
    // binary frame (16-bit length) and a ping between the fragments.
    let key = [1u8, 2, 3, 4];
    let mut c2s = vec![0x01, 0x83];
    c2s.extend_from_slice(&key);
    c2s.extend(b"Hel".iter().zip(key.iter().cycle()).map(|(b, k)| b ^ k));
    c2s.extend_from_slice(&[0x89, 0x80, 0, 0, 0, 0]);
    c2s.extend_from_slice(&[0x80, 0x82]);
    c2s.extend_from_slice(&key);
    c2s.extend(b"lo".iter().zip(key.iter().cycle()).map(|(b, k)| b ^ k));
    let mut s2c = vec![0x82, 126, 0x01, 0x2c];
    s2c.extend(std::iter::repeat_n(7u8, 300));
    let mut big = vec![0x82, 127, 0, 0, 0, 0, 0, 0, 0x01, 0x00];
    big.extend(std::iter::repeat_n(1u8, 256));
    let pieces: Vec<(Dir, &[u8])> = vec![(Dir::C2S, &c2s), (Dir::S2C, &s2c), (Dir::S2C, &big)];
    for bytewise in [false, true] {
        let mut ws = WebSocket::new(&ctx(), false, 1);
        let r = if bytewise { testkit::run_bytewise(&mut ws, &pieces) } else { feed(&mut ws, &pieces) };
        r.assert_conserved();
        assert_eq!(r.class(Class::Payload), 5 + 300 + 256);
        assert_eq!(r.class(Class::AppControl), 6);
        assert_eq!(r.class(Class::AppHeader), 6 + 6 + 4 + 10);
        assert_eq!(r.stats.websocket.messages, 3);
        assert_eq!(r.stats.websocket.masked_frames, 3);
        let frames: Vec<(&str, u64)> = r.stats.websocket.frames.iter().map(|(k, n)| (k.as_str(), *n)).collect();
        assert_eq!(frames, [("binary", 2), ("continuation", 1), ("ping", 1), ("text", 1)]);
        // The fragmented message is one exchange; the ping is not.
        let text: u64 = r.spans.iter().filter(|s| s.msg == MsgRef::Exchange(1)).map(|s| s.len).sum();
        assert_eq!(text, 6 + 3 + 6 + 2);
        assert_eq!(r.events.iter().filter(|e| matches!(e, Event::Close { .. })).count(), 3);
    }
}

#[test]
fn bad_frames_are_malformed_and_never_panic() {
    let cases: Vec<Vec<u8>> = vec![
        vec![0x83, 0x00, 1, 2, 3],                     // reserved opcode
        vec![0x09, 0x01, 0],                           // fragmented ping
        vec![0x89, 126, 0, 200],                       // ping longer than 125
        vec![0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1, 9], // 64-bit length with the top bit
        vec![0x82, 0x85, 1, 2],                        // cut in the mask key
        vec![0x82, 0x05, 1, 2],                        // cut in the payload
    ];
    for case in &cases {
        for make_inner in [false, true] {
            let mut ws = WebSocket::with_inner(&ctx(), make_inner, 1, mini_mqtt);
            let r = feed(&mut ws, &[(Dir::C2S, case), (Dir::S2C, case)]);
            // A header read in place and one gathered byte by byte agree.
            let mut ws = WebSocket::with_inner(&ctx(), make_inner, 1, mini_mqtt);
            let rb = testkit::run_bytewise(&mut ws, &[(Dir::C2S, case), (Dir::S2C, case)]);
            assert_eq!(capture::outline(&r), capture::outline(&rb), "{case:?}");
            assert_eq!(r.stats.websocket.frames, rb.stats.websocket.frames, "{case:?}");
            let malformed = r.events.iter().any(|e| matches!(e, Event::Malformed { .. }));
            let truncated_payload = case == &cases[5];
            assert!(malformed || truncated_payload, "{case:?}: {:?}", r.events);
        }
    }
    // Gaps inside a payload keep the framing; elsewhere they lose it.
    let mut ws = WebSocket::new(&ctx(), false, 1);
    let mut r = testkit::Run::default();
    let mut e = Emit::new(0, &mut r.spans, &mut r.events, &mut r.stats);
    ws.data(Dir::S2C, &[0x81, 10, b'a'], &mut e);
    ws.gap(Dir::S2C, 8, &mut e);
    ws.data(Dir::S2C, &[b'z', 0x89, 0], &mut e);
    ws.data(Dir::S2C, &[0x81], &mut e);
    ws.gap(Dir::S2C, 3, &mut e);
    ws.data(Dir::S2C, &[1, 2, 3], &mut e);
    ws.finish(&mut e);
    // Gap bytes are the flow stage's to classify.
    assert_eq!(r.ledger().total(), 3 + 3 + 1 + 3);
    assert_eq!(r.class(Class::AppControl), 2);
    assert_eq!(r.stats.websocket.data_payload_bytes_s2c, 10);
    assert!(r.events.iter().any(|e| matches!(e, Event::Malformed { bytes: 4, .. })));
}

#[test]
fn unmask_matches_the_key_byte_by_byte_at_any_offset() {
    let key = [0x12, 0x34, 0x56, 0x78];
    for offset in 0..8u64 {
        for len in 0..11usize {
            let plain: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(37)).collect();
            let mut bytes = plain.clone();
            unmask(&mut bytes, key, offset);
            let want: Vec<u8> =
                plain.iter().enumerate().map(|(j, b)| b ^ key[((offset + j as u64) % 4) as usize]).collect();
            assert_eq!(bytes, want, "offset {offset} len {len}");
        }
    }
}

#[test]
fn message_descriptions_are_the_formatted_ones() {
    for opcode in 0..16u8 {
        for (dir, arrow) in [(Dir::C2S, "c2s"), (Dir::S2C, "s2c")] {
            assert_eq!(message_what(opcode, dir), format!("{} message {arrow}", opcode_name(opcode)));
        }
    }
}

#[test]
fn gap_past_the_frame_end_classifies_the_sniffed_bytes() {
    // A binary frame of 18 bytes, one of them in, then a gap past its end:
    // the byte held to decide whether it carries MQTT is spanned, the
    // framing lost.
    let ctx = ctx();
    let mut ws = WebSocket::new(&ctx, false, 1);
    let (mut spans, mut events, mut stats) = (Vec::new(), Vec::new(), super::super::ProtoStats::default());
    let mut emit = Emit::new(0, &mut spans, &mut events, &mut stats);
    ws.data(Dir::C2S, &[0x82, 0x12, 0x00], &mut emit);
    ws.gap(Dir::C2S, 212, &mut emit);
    ws.finish(&mut emit);
    assert_eq!(spans.iter().map(|s| s.len).sum::<u64>(), 3, "{spans:?}");
}
