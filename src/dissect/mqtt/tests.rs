use super::*;
use crate::dissect::testkit::{self, Run, TestResult};
use serde_json::Value;
use std::collections::HashMap;

/// One TCP connection's payloads from a shipped capture, in order.
struct Conn {
    pieces: Vec<(Dir, Vec<u8>)>,
}

impl Conn {
    fn refs(&self) -> Vec<(Dir, &[u8])> {
        self.pieces.iter().map(|(d, b)| (*d, b.as_slice())).collect()
    }
}

fn be16(b: &[u8], at: usize) -> usize {
    usize::from(u16::from_be_bytes([b[at], b[at + 1]]))
}

/// TCP payloads of an Ethernet/IPv4 pcap, one `Conn` per client port
/// (these captures have no retransmissions).
fn capture(name: &str, server_port: u16) -> Vec<Conn> {
    let path = format!("{}/captures/{name}.pcap", env!("CARGO_MANIFEST_DIR"));
    let pcap = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(&pcap[..4], &[0xd4, 0xc3, 0xb2, 0xa1], "little-endian microsecond pcap");
    let mut order: Vec<u16> = vec![];
    let mut conns: HashMap<u16, Conn> = HashMap::new();
    let mut at = 24;
    while at + 16 <= pcap.len() {
        let incl = u32::from_le_bytes([pcap[at + 8], pcap[at + 9], pcap[at + 10], pcap[at + 11]]) as usize;
        let frame = &pcap[at + 16..at + 16 + incl];
        at += 16 + incl;
        if be16(frame, 12) != 0x0800 || frame[14 + 9] != 6 {
            continue;
        }
        let ihl = usize::from(frame[14] & 0x0f) * 4;
        let ip_end = 14 + be16(frame, 16);
        let tcp = 14 + ihl;
        let (sport, dport) = (be16(frame, tcp) as u16, be16(frame, tcp + 2) as u16);
        let data = &frame[tcp + usize::from(frame[tcp + 12] >> 4) * 4..ip_end];
        let (dir, client) = if dport == server_port { (Dir::C2S, sport) } else { (Dir::S2C, dport) };
        if data.is_empty() {
            continue;
        }
        if !conns.contains_key(&client) {
            order.push(client);
        }
        conns.entry(client).or_insert(Conn { pieces: vec![] }).pieces.push((dir, data.to_vec()));
    }
    order.into_iter().filter_map(|p| conns.remove(&p)).collect()
}

fn truth(name: &str) -> TestResult<Value> {
    let path = format!("{}/captures/{name}.truth.json", env!("CARGO_MANIFEST_DIR"));
    Ok(serde_json::from_str(&std::fs::read_to_string(path)?)?)
}

/// Runs every connection of a capture through its own dissector.
fn dissect(conns: &[Conn], bytewise: bool) -> Vec<Run> {
    conns
        .iter()
        .map(|c| {
            let mut d = Mqtt::new();
            let r =
                if bytewise { testkit::run_bytewise(&mut d, &c.refs()) } else { testkit::run(&mut d, &c.refs()) };
            r.assert_conserved();
            r
        })
        .collect()
}

fn merged(runs: &[Run]) -> Stats {
    let mut s = Stats::default();
    for r in runs {
        s.merge(&r.stats.mqtt);
    }
    s
}

fn class_total(runs: &[Run], c: Class) -> u64 {
    runs.iter().map(|r| r.class(c)).sum()
}

const COMPARED: &[&str] = &[
    "version",
    "connections",
    "packets",
    "packet_bytes",
    "packets_by_direction",
    "keepalive_s",
    "publish_payload_bytes",
    "publish_header_bytes",
    "publish_payload_bytes_c2s",
    "publish_payload_bytes_s2c",
    "publish_c2s",
    "publish_s2c",
    "publish_qos",
    "publish_retain",
    "publish_dup",
    "topics",
    "publish_with_empty_topic_alias",
    "control_bytes",
    "total_mqtt_bytes",
    "v5_property_length_sum",
    "v5_properties",
];

/// Ledger classes and the `mqtt` section equal the tshark truth.
fn check_capture(name: &str) -> TestResult {
    let t = truth(name)?;
    let runs = dissect(&capture(name, 1883), false);
    for (class, key) in
        [(Class::AppHeader, "app_header"), (Class::AppControl, "app_control"), (Class::Payload, "payload")]
    {
        assert_eq!(class_total(&runs, class), t["byte_classes"][key].as_u64().ok_or_else(|| format!("truth: no byte_classes.{key}"))?, "{name}: {key}");
    }
    let ours = serde_json::to_value(merged(&runs))?;
    let want = &t["mqtt"];
    for key in COMPARED {
        if let Some(w) = want.get(*key) {
            assert_eq!(&ours[*key], w, "{name}: mqtt.{key}");
        }
    }
    let size = &want["publish_payload_size"];
    for key in ["n", "min", "max"] {
        assert_eq!(ours["publish_payload_size"][key].as_f64(), size[key].as_f64(), "{name}: payload size {key}");
    }
    for r in &runs {
        assert!(!r.events.iter().any(|e| matches!(e, Event::Malformed { .. })), "{name}: {:?}", r.events);
    }

    // Byte at a time: the same ledger, exchanges and counts.
    let bytewise = dissect(&capture(name, 1883), true);
    for (a, b) in runs.iter().zip(&bytewise) {
        assert_eq!(a.ledger(), b.ledger(), "{name}: bytewise ledger");
        assert_eq!(by_msg(a), by_msg(b), "{name}: bytewise spans by exchange");
        assert_eq!(a.events, b.events, "{name}: bytewise events");
    }
    let mut bw = serde_json::to_value(merged(&bytewise))?;
    let mut ours = ours;
    for v in [&mut bw, &mut ours] {
        let m = v.as_object_mut().ok_or("stats are not a JSON object")?;
        for k in ["publish_interval_c2s_s", "publish_interval_s2c_s", "pingreq_interval_s"] {
            m.remove(k);
        }
    }
    assert_eq!(ours, bw, "{name}: bytewise stats");
    Ok(())
}

/// Bytes per (exchange, class).
fn by_msg(r: &Run) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for s in &r.spans {
        *m.entry(format!("{:?} {:?}", s.msg, s.class)).or_default() += s.len;
    }
    m
}

#[test]
fn qos0_persistent_matches_truth() -> TestResult {
    check_capture("mqtt311-qos0-persistent")
}

#[test]
fn qos1_matches_truth() -> TestResult {
    check_capture("mqtt311-qos1")
}

#[test]
fn qos2_matches_truth() -> TestResult {
    check_capture("mqtt311-qos2")
}

#[test]
fn v5_properties_match_truth() -> TestResult {
    check_capture("mqtt5-properties")
}

#[test]
fn subscribe_matches_truth() -> TestResult {
    check_capture("mqtt-subscribe")
}

#[test]
fn reconnect_per_message_matches_truth() -> TestResult {
    check_capture("mqtt-reconnect-per-message")
}

#[test]
fn sparse_gps_matches_truth() -> TestResult {
    check_capture("sparse-mqtt-gps")
}

fn events_of(r: &Run, id: u32) -> Vec<&'static str> {
    r.events
        .iter()
        .filter_map(|e| match e {
            Event::Open { id: i, .. } if *i == id => Some("open"),
            Event::Responded { id: i } if *i == id => Some("responded"),
            Event::Close { id: i } if *i == id => Some("close"),
            _ => None,
        })
        .collect()
}

fn opens(r: &Run) -> Vec<(u32, String)> {
    r.events
        .iter()
        .filter_map(|e| match e {
            Event::Open { id, what, .. } => Some((*id, what.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn qos2_exchange_pairs_publish_pubrec_pubrel_pubcomp() {
    let runs = dissect(&capture("mqtt311-qos2", 1883), false);
    let r = &runs[0];
    let opens = opens(r);
    assert_eq!(opens.len(), 15);
    let bytes = by_msg(r);
    for (id, what) in &opens {
        assert!(what.starts_with("PUBLISH plant1/line3/th-01/alarm qos2 id "), "{what}");
        assert_eq!(events_of(r, *id), ["open", "responded", "close"], "{what}");
        // PUBREC + PUBREL + PUBCOMP, 4 bytes each, belong to the exchange.
        assert_eq!(bytes[&format!("Exchange({id}) AppControl")], 12, "{what}");
        assert_eq!(bytes[&format!("Exchange({id}) AppHeader")], 30, "{what}");
    }
    assert_eq!(bytes["Setup AppControl"], 24 + 4);
    assert_eq!(bytes["Flow AppControl"], 2);
}

#[test]
fn qos1_publish_closed_by_puback_and_qos0_at_once() {
    let r = &dissect(&capture("mqtt311-qos1", 1883), false)[0];
    for (id, _) in opens(r) {
        assert_eq!(events_of(r, id), ["open", "responded", "close"]);
    }
    let r = &dissect(&capture("mqtt311-qos0-persistent", 1883), false)[0];
    let opens = opens(r);
    assert_eq!(opens.len(), 20);
    for (id, what) in opens {
        assert_eq!(what, "PUBLISH plant1/line3/th-01/telemetry qos0");
        assert_eq!(events_of(r, id), ["open", "close"]);
    }
}

#[test]
fn server_publish_acked_by_client_and_subscribe_exchange() {
    let r = &dissect(&capture("mqtt-subscribe", 1883), false)[0];
    let opens = opens(r);
    assert_eq!(opens.len(), 16);
    assert_eq!(opens[0].1, "SUBSCRIBE plant1/line3/+/cmd id 1");
    for (id, what) in &opens {
        assert_eq!(events_of(r, *id), ["open", "responded", "close"], "{what}");
    }
    let bytes = by_msg(r);
    assert_eq!(bytes["Flow AppControl"], 2, "only DISCONNECT is unpaired");
}

#[test]
fn v5_topic_alias_resolved_in_exchange_names() {
    let r = &dissect(&capture("mqtt5-properties", 1883), false)[0];
    let opens = opens(r);
    assert_eq!(opens.len(), 15);
    for (_, what) in &opens {
        assert!(what.starts_with("PUBLISH plant1/line3/th-01/telemetry qos1 id "), "{what}");
    }
    assert_eq!(r.stats.mqtt.topic_alias_set, 1);
    assert_eq!(r.stats.mqtt.topic_alias_unresolved, 0);
}

fn stream(name: &str, dir: Dir) -> Vec<u8> {
    capture(name, 1883)[0].pieces.iter().filter(|(d, _)| *d == dir).flat_map(|(_, b)| b.clone()).collect()
}

fn malformed(r: &Run) -> u64 {
    r.events.iter().map(|e| if let Event::Malformed { bytes, .. } = e { *bytes } else { 0 }).sum()
}

#[test]
fn every_truncation_is_conserved_and_flagged() {
    let full = stream("mqtt5-properties", Dir::C2S);
    for cut in 0..full.len() {
        let mut d = Mqtt::new();
        let r = testkit::run(&mut d, &[(Dir::C2S, &full[..cut])]);
        r.assert_conserved();
        let s = &r.stats.mqtt;
        let parsed = s.total_mqtt_bytes;
        // Whatever is not a whole packet is malformed or a cut-off PUBLISH.
        assert!(parsed + malformed(&r) == cut as u64 || s.truncated_publishes == 1, "cut {cut}");
    }
}

#[test]
fn garbage_is_conserved_without_panic() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for round in 0..200 {
        let mut bytes = vec![0u8; 1 + round * 7];
        for b in bytes.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let mut d = Mqtt::new();
        let half = bytes.len() / 2;
        let r = testkit::run(&mut d, &[(Dir::C2S, &bytes[..half]), (Dir::S2C, &bytes), (Dir::C2S, &bytes[half..])]);
        r.assert_conserved();
        let mut d = Mqtt::new();
        testkit::run_bytewise(&mut d, &[(Dir::C2S, &bytes)]).assert_conserved();
    }
}

#[test]
fn bad_remaining_length_loses_the_direction_only() {
    let mut c2s = vec![0x30, 0xff, 0xff, 0xff, 0xff, 0x01];
    c2s.extend_from_slice(&[0xc0, 0x00, 0xc0, 0x00]);
    let mut d = Mqtt::new();
    let r = testkit::run(&mut d, &[(Dir::C2S, &c2s), (Dir::S2C, &[0xd0, 0x00])]);
    r.assert_conserved();
    assert_eq!(r.class(Class::Payload), c2s.len() as u64);
    assert_eq!(r.class(Class::AppControl), 2, "the other direction still parses");
    assert_eq!(malformed(&r), c2s.len() as u64);
    assert_eq!(r.stats.mqtt.unparsed_bytes, c2s.len() as u64);
}

#[test]
fn malformed_packet_is_skipped_by_its_length() {
    // PUBLISH whose topic length (0x00ff) overruns its Remaining Length (4),
    // QoS 3 PUBLISH, CONNECT with a bad protocol name, then a good PINGREQ.
    let c2s = [
        0x30, 0x04, 0x00, 0xff, b'a', b'b', 0x36, 0x01, 0x00, 0x10, 0x0c, 0x00, 0x04, b'M', b'Q', b'X', b'X', 0x04,
        0x02, 0x00, 0x3c, 0x00, 0x00, 0xc0, 0x00,
    ];
    for bytewise in [false, true] {
        let mut d = Mqtt::new();
        let pieces = [(Dir::C2S, &c2s[..])];
        let r = if bytewise { testkit::run_bytewise(&mut d, &pieces) } else { testkit::run(&mut d, &pieces) };
        r.assert_conserved();
        assert_eq!(r.class(Class::AppControl), 2);
        assert_eq!(r.class(Class::Payload), c2s.len() as u64 - 2);
        assert_eq!(r.stats.mqtt.malformed_packets, 3);
        assert_eq!(malformed(&r), c2s.len() as u64 - 2);
        assert_eq!(r.stats.mqtt.packets.get("PINGREQ"), Some(1));
    }
}

/// A QoS 1 PUBLISH with a `len`-byte payload.
fn publish(topic: &str, id: u16, len: usize) -> Vec<u8> {
    let rem = 2 + topic.len() + 2 + len;
    let mut p = vec![0x32];
    let mut r = rem;
    loop {
        let mut b = (r % 128) as u8;
        r /= 128;
        if r > 0 {
            b |= 0x80;
        }
        p.push(b);
        if r == 0 {
            break;
        }
    }
    p.extend_from_slice(&(topic.len() as u16).to_be_bytes());
    p.extend_from_slice(topic.as_bytes());
    p.extend_from_slice(&id.to_be_bytes());
    p.extend(std::iter::repeat_n(0x5a, len));
    p
}

#[test]
fn large_publish_streams_without_buffering() {
    let big = publish("a/b", 9, 3_000_000);
    let mut d = Mqtt::new();
    let mut pieces: Vec<(Dir, &[u8])> = big.chunks(1448).map(|c| (Dir::C2S, c)).collect();
    pieces.push((Dir::S2C, &[0x40, 0x02, 0x00, 0x09]));
    let mut r = Run::default();
    for (i, (dir, b)) in pieces.iter().enumerate() {
        let mut e = Emit::new(i as i64, &mut r.spans, &mut r.events, &mut r.stats);
        d.data(*dir, b, &mut e);
        r.fed += b.len() as u64;
        // Nothing of the message is held.
        assert!(d.c2s.keep.capacity() <= CONTROL_KEEP && d.c2s.topic.capacity() <= TOPIC_KEEP);
    }
    let mut e = Emit::new(0, &mut r.spans, &mut r.events, &mut r.stats);
    d.finish(&mut e);
    r.assert_conserved();
    assert_eq!(r.class(Class::Payload), 3_000_000);
    assert_eq!(r.class(Class::AppHeader), big.len() as u64 - 3_000_000);
    assert_eq!(r.class(Class::AppControl), 4);
    assert_eq!(events_of(&r, 1), ["open", "responded", "close"]);
}

#[test]
fn gap_inside_payload_keeps_framing() {
    let p = publish("t", 1, 500);
    let mut d = Mqtt::new();
    let mut r = Run::default();
    let mut e = Emit::new(0, &mut r.spans, &mut r.events, &mut r.stats);
    d.data(Dir::C2S, &p[..100], &mut e);
    d.gap(Dir::C2S, 300, &mut e);
    d.data(Dir::C2S, &p[400..], &mut e);
    d.data(Dir::C2S, &[0xc0, 0x00], &mut e);
    d.gap(Dir::C2S, 10, &mut e);
    d.data(Dir::C2S, &[0xc0, 0x00], &mut e);
    d.finish(&mut e);
    // Gap bytes are booked by the flow stage, not by the dissector.
    r.fed = p.len() as u64 - 300 + 2 + 2;
    r.assert_conserved();
    assert_eq!(r.class(Class::Payload), 500 - 300 + 2);
    assert_eq!(r.class(Class::AppControl), 2, "PINGREQ before the second gap");
    assert_eq!(r.stats.mqtt.unparsed_bytes, 2);
    assert_eq!(malformed(&r), 2);
}

#[test]
fn gap_inside_control_packet_skips_it() {
    let mut d = Mqtt::new();
    let mut r = Run::default();
    let mut e = Emit::new(0, &mut r.spans, &mut r.events, &mut r.stats);
    d.data(Dir::S2C, &[0x40, 0x02], &mut e);
    d.gap(Dir::S2C, 1, &mut e);
    d.data(Dir::S2C, &[0x01, 0xd0, 0x00], &mut e);
    d.finish(&mut e);
    r.fed = 5;
    r.assert_conserved();
    assert_eq!(r.class(Class::Payload), 3);
    assert_eq!(r.class(Class::AppControl), 2);
    assert_eq!(r.stats.mqtt.malformed_packets, 1);
}

#[test]
fn probe_recognises_connect_and_rejects_other_protocols() {
    for name in ["mqtt311-qos1", "mqtt5-properties", "sparse-mqtt-gps"] {
        let first = &capture(name, 1883)[0].pieces[0];
        assert_eq!(first.0, Dir::C2S);
        assert_eq!(probe(L4::Tcp, Dir::C2S, &first.1), Probe::Yes, "{name}");
    }
    assert_eq!(probe(L4::Tcp, Dir::C2S, b"\x10\x10\x00\x06MQIsdp\x03\x02\x00\x3c\x00\x02id"), Probe::Yes);
    assert_eq!(probe(L4::Tcp, Dir::S2C, &[0x20, 0x02, 0x00, 0x00]), Probe::Maybe);
    assert_eq!(probe(L4::Tcp, Dir::C2S, &[0xc0, 0x00]), Probe::Maybe);
    assert_eq!(probe(L4::Tcp, Dir::C2S, &[0x10, 0x0c, 0x00]), Probe::Maybe);
    assert_eq!(probe(L4::Tcp, Dir::C2S, b"\x10\x0c\x00\x04HTTP\x04\x02\x00\x3c"), Probe::No);
    assert_eq!(probe(L4::Tcp, Dir::C2S, b"GET / HTTP/1.1\r\n\r\n"), Probe::No);
    assert_eq!(probe(L4::Tcp, Dir::C2S, &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]), Probe::No);
    assert_eq!(probe(L4::Tcp, Dir::C2S, &[0x30, 0xff, 0xff, 0xff, 0xff]), Probe::No);
    assert_eq!(probe(L4::Tcp, Dir::C2S, &[]), Probe::No);
}

/// The MQTT bytes of a WebSocket connection: the data-frame payloads,
/// unmasked, in the order the frames complete (what the WebSocket
/// dissector hands its nested MQTT dissector).
fn websocket_messages(conn: &Conn) -> Vec<(Dir, Vec<u8>)> {
    let mut buf: [Vec<u8>; 2] = [vec![], vec![]];
    let mut upgraded = [false, false];
    let mut out = vec![];
    for (dir, bytes) in &conn.pieces {
        let i = dir.idx();
        buf[i].extend_from_slice(bytes);
        if !upgraded[i] {
            let Some(end) = buf[i].windows(4).position(|w| w == b"\r\n\r\n") else { continue };
            buf[i].drain(..end + 4);
            upgraded[i] = true;
        }
        loop {
            let b = &buf[i];
            if b.len() < 2 {
                break;
            }
            let (opcode, masked, len7) = (b[0] & 0x0f, b[1] & 0x80 != 0, usize::from(b[1] & 0x7f));
            let (len, mut at) = match len7 {
                126 if b.len() >= 4 => (be16(b, 2), 4),
                127 => panic!("no 64-bit frames in this capture"),
                126 => break,
                n => (n, 2),
            };
            let key = if masked {
                at += 4;
                b.get(at - 4..at).map(|k| k.to_vec())
            } else {
                Some(vec![0; 4])
            };
            let (Some(key), true) = (key, b.len() >= at + len) else { break };
            let payload: Vec<u8> = b[at..at + len].iter().enumerate().map(|(j, x)| x ^ key[j % 4]).collect();
            if opcode == 0 || opcode == 2 {
                out.push((*dir, payload));
            }
            buf[i].drain(..at + len);
        }
    }
    out
}

#[test]
fn mqtt_over_websocket_matches_truth() -> TestResult {
    let conns = capture("mqtt-ws", 8080);
    let messages = websocket_messages(&conns[0]);
    let pieces: Vec<(Dir, &[u8])> = messages.iter().map(|(d, b)| (*d, b.as_slice())).collect();
    let want = &truth("mqtt-ws")?["mqtt"];
    for bytewise in [false, true] {
        let mut d = Mqtt::new();
        let r = if bytewise { testkit::run_bytewise(&mut d, &pieces) } else { testkit::run(&mut d, &pieces) };
        r.assert_conserved();
        let ours = serde_json::to_value(&r.stats.mqtt)?;
        for key in COMPARED {
            if let Some(w) = want.get(*key) {
                assert_eq!(&ours[*key], w, "mqtt-ws: mqtt.{key}");
            }
        }
        assert_eq!(r.class(Class::AppHeader), 480);
        assert_eq!(r.class(Class::AppControl), 33);
        assert_eq!(r.class(Class::Payload), 816);
    }
    Ok(())
}

#[test]
fn stats_merge_adds_up() {
    let runs = dissect(&capture("mqtt-reconnect-per-message", 1883), false);
    let s = merged(&runs);
    assert_eq!(s.connections, 20);
    assert_eq!(s.publish_interval_c2s_s, None, "one PUBLISH per connection: no interval");
    assert_eq!(s.publish_payload_size.as_ref().map(|p| p.n), Some(20));
    assert_eq!(s.keepalives.get(&60), Some(&20));
    assert_eq!(s.connack_codes.get(&0), Some(&20));
}

/// `keepalive_s` is the first CONNECT's, by capture time: merging the
/// statistics of two threads in either order gives the same.
#[test]
fn first_connect_keepalive_survives_merging_in_any_order() {
    let (mut early, mut late) = (Stats::default(), Stats::default());
    early.note_first_connect(1_000, 60);
    late.note_first_connect(2_000, 10);
    late.note_first_connect(3_000, 30);
    for (a, b) in [(&early, &late), (&late, &early)] {
        let mut m = a.clone();
        m.merge(b);
        assert_eq!(m.keepalive_s, Some(60));
    }
    // Within one thread too: a later CONNECT does not replace it.
    assert_eq!(late.keepalive_s, Some(10));
}

/// Packet ids in flight past the cap: the oldest are forgotten, a reused id
/// names its latest PUBLISH, and acknowledgements find exactly those held.
#[test]
fn packet_ids_in_flight_past_the_cap_and_reused() {
    let mut d = Mqtt::new();
    let mut pieces: Vec<(Dir, Vec<u8>)> = (1..=1100u16).map(|id| (Dir::C2S, publish("t", id, 1))).collect();
    pieces.push((Dir::C2S, publish("t", 1050, 1)));
    for id in [5u16, 1050, 1100, 1050] {
        pieces.push((Dir::S2C, vec![0x40, 0x02, (id >> 8) as u8, id as u8]));
    }
    let refs: Vec<(Dir, &[u8])> = pieces.iter().map(|(d, b)| (*d, b.as_slice())).collect();
    let r = testkit::run(&mut d, &refs);
    r.assert_conserved();
    let answered: Vec<u32> =
        r.events.iter().filter_map(|e| if let Event::Responded { id } = e { Some(*id) } else { None }).collect();
    // Id 5 was forgotten (1,024 held); 1050's latest PUBLISH is exchange
    // 1101, and its second PUBACK finds nothing left.
    assert_eq!(answered, vec![1101, 1100]);
    assert_eq!(d.inflight[Dir::C2S.idx()].queue.len(), INFLIGHT_CAP - 2);
    assert_eq!(d.inflight[Dir::C2S.idx()].ids.len(), INFLIGHT_CAP - 2);
}
