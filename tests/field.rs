//! Captures as they come from the field (tests/data/field/, made by
//! scripts/make-field-captures): tunnels and mirrors, GTP-U, Wi-Fi, NFLOG,
//! PPP, Linux offloads, a CONNECT tunnel and an SSLv2 hello. Each tunnelled
//! or differently framed capture gives what the same traffic captured
//! inside the tunnel gives (`inner*.pcap`, `nflog-ref.pcap`: raw IP), and
//! each agrees with tshark's view of it (`truth.json`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use wiretax::analyze::{Options, analyze_file};
use wiretax::report::Report;

fn field(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/field").join(name)
}

fn report(name: &str) -> Value {
    let r = analyze_file(&field(name), &Options::new()).unwrap_or_else(|e| panic!("{name}: {e}"));
    let v = serde_json::to_value(Report::combine(vec![r], vec![])).unwrap();
    let sum: u64 = v["totals"]["classes"].as_object().unwrap().values().map(|n| n.as_u64().unwrap()).sum();
    assert_eq!(sum, v["totals"]["wire_bytes"].as_u64().unwrap(), "{name}: classes add up to the wire bytes");
    v
}

fn notes(r: &Value) -> &Value {
    &r["inputs"][0]["notes"]
}

fn truth(name: &str) -> Value {
    let t: Value = serde_json::from_str(&std::fs::read_to_string(field("truth.json")).unwrap()).unwrap();
    t[name].clone()
}

/// The classes besides `link` (and, when the framing is a link type rather
/// than a tunnel, `tcp_control`, which holds control frames whole).
fn classes_but(r: &Value, skip: &[&str]) -> Value {
    let mut c = r["totals"]["classes"].clone();
    for k in skip {
        c.as_object_mut().unwrap().remove(*k);
    }
    c
}

/// What must not change with the framing: flows, protocol sections,
/// exchanges and the classes above the link.
fn inner_view(r: &Value, skip: &[&str]) -> Value {
    let flows: Vec<Value> = r["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            json!([
                f["l4"],
                f["client"],
                f["server"],
                f["app"],
                f["inner"],
                f["frames"],
                f["payload_bytes_c2s"],
                f["payload_bytes_s2c"],
                f["control_frames"],
                f["exchanges"]
            ])
        })
        .collect();
    let exchanges: Vec<Value> = r["exchanges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            let mut c = x["classes"].clone();
            for k in skip {
                c.as_object_mut().unwrap().remove(*k);
            }
            json!([x["kind"], x["what"], x["flow"], c, x["frames_c2s"], x["frames_s2c"]])
        })
        .collect();
    let sections: Vec<Value> =
        ["http", "tls", "http2", "mqtt", "coap", "dns", "websocket"].iter().map(|s| r[*s].clone()).collect();
    json!({
        "tcp_streams": r["tcp_streams"], "udp_streams": r["udp_streams"], "flows": flows,
        "sections": sections, "exchanges": exchanges, "classes": classes_but(r, skip),
    })
}

fn assert_same_inner(outer: &str, inner: &str, skip: &[&str]) {
    let (o, i) = (report(outer), report(inner));
    let (ov, iv) = (inner_view(&o, skip), inner_view(&i, skip));
    for k in ["tcp_streams", "udp_streams", "flows", "sections", "exchanges", "classes"] {
        assert_eq!(ov[k], iv[k], "{outer} against {inner}: {k}");
    }
    assert!(iv["tcp_streams"].as_u64().unwrap() > 0 && !iv["exchanges"].as_array().unwrap().is_empty());
}

/// wiretax agrees with tshark on the inner traffic.
fn assert_tshark_agrees(name: &str) {
    assert_tshark_agrees_but_payload(name, name);
}

/// The same, TCP payload bytes from `payload_of`'s truth.
fn assert_tshark_agrees_but_payload(name: &str, payload_of: &str) {
    let (r, t) = (report(name), truth(name));
    assert!(t.is_object(), "{name} has no truth");
    assert_eq!(r["totals"]["frames"], t["frames"], "{name} frames");
    assert_eq!(r["totals"]["wire_bytes"], t["wire_bytes"], "{name} wire bytes");
    assert_eq!(r["tcp_streams"], t["tcp_streams"], "{name} TCP connections");
    assert_eq!(r["http"]["requests"], t["http_requests"], "{name} HTTP requests");
    let payload: u64 = r["flows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["l4"] == "tcp")
        .map(|f| f["payload_bytes_c2s"].as_u64().unwrap() + f["payload_bytes_s2c"].as_u64().unwrap())
        .sum();
    assert_eq!(json!(payload), truth(payload_of)["tcp_payload_bytes"], "{name} TCP payload bytes");
}

/// Tunnels: the tunnel's bytes are `link`, everything else is what the
/// inner capture gives; every frame is counted under its encapsulation.
#[test]
fn tunnelled_captures_give_what_the_inner_capture_gives() {
    let cases: [(&str, &str, &[&str]); 10] = [
        ("vxlan.pcap", "inner.pcap", &["vxlan"]),
        ("geneve.pcap", "inner4.pcap", &["geneve"]),
        ("gretap.pcap", "inner4.pcap", &["gre"]),
        ("gre.pcap", "inner4.pcap", &["gre"]),
        ("erspan2.pcap", "inner4.pcap", &["gre", "erspan"]),
        ("erspan3.pcap", "inner4.pcap", &["gre", "erspan"]),
        ("mpls.pcap", "inner4.pcap", &["mpls"]),
        ("ipip.pcap", "inner4.pcap", &["ip_in_ip"]),
        ("6in4.pcap", "inner6.pcap", &["ipv6_in_ip"]),
        ("gtpu.pcap", "inner4.pcap", &["gtpu"]),
    ];
    for (outer, inner, encaps) in cases {
        assert_same_inner(outer, inner, &["link"]);
        assert_tshark_agrees(outer);
        let r = report(outer);
        let frames = r["totals"]["frames"].as_u64().unwrap();
        let counted = notes(&r)["encapsulations"].as_object().unwrap();
        assert_eq!(counted.len(), encaps.len(), "{outer}: {counted:?}");
        for e in encaps {
            let n = counted[*e].as_u64().unwrap();
            // The VXLAN capture also holds the underlay's own ARP, if any.
            assert!(n == frames || (*e == "vxlan" && n + 4 >= frames), "{outer}: {e} {n} of {frames}");
        }
    }
}

/// In a mobile core the GTP-U tunnel id is the device: kept per flow, the
/// client's (uplink) one.
#[test]
fn gtpu_flows_keep_the_uplink_teid() {
    let r = report("gtpu.pcap");
    let flows = r["flows"].as_array().unwrap();
    assert!(!flows.is_empty());
    for f in flows {
        assert_eq!(f["teid"], json!(0x1000_0001u32), "{f}");
    }
    assert!(report("inner4.pcap")["flows"][0].get("teid").is_none());
}

/// Link types: NFLOG, 802.11 with and without radiotap, PPP, PPP in HDLC
/// framing and PPPoE with a one-byte protocol field give the flows and
/// exchanges of the same packets captured as raw IP (their link headers,
/// counted whole in control frames, aside).
#[test]
fn other_link_types_give_what_raw_ip_gives() {
    for (name, reference) in [
        ("nflog.pcap", "nflog-ref.pcap"),
        ("radiotap.pcap", "inner4.pcap"),
        ("wifi.pcap", "inner4.pcap"),
        ("ppp.pcap", "inner4.pcap"),
        ("ppp-hdlc.pcap", "inner4.pcap"),
        ("pppoe-compressed.pcap", "inner4.pcap"),
    ] {
        assert_same_inner(name, reference, &["link", "tcp_control"]);
        assert_tshark_agrees(name);
    }
    // An 802.11 ACK after every fourth packet, and one beacon.
    let (r, packets) = (report("radiotap.pcap"), report("inner4.pcap")["totals"]["frames"].as_u64().unwrap());
    assert_eq!(notes(&r)["wifi_management_frames"], json!(packets.div_ceil(4) + 1));
    assert!(notes(&r).get("wifi_protected_frames").is_none());
}

/// A capture of WPA-protected Wi-Fi has nothing to analyse: its frames are
/// `link`, counted, and the table says so in one line.
#[test]
fn wpa_protected_wifi_is_link_and_said_in_one_table_line() {
    let (r, packets) = (report("wifi-wpa.pcap"), report("inner4.pcap")["totals"]["frames"].as_u64().unwrap());
    assert_eq!(notes(&r)["wifi_protected_frames"], json!(packets));
    assert_eq!(r["tcp_streams"], json!(0));
    assert_eq!(r["totals"]["classes"]["link"], r["totals"]["wire_bytes"]);
    let rep = Report::combine(vec![analyze_file(&field("wifi-wpa.pcap"), &Options::new()).unwrap()], vec![]);
    let table = wiretax::report::table::render(&rep, 10);
    let lines: Vec<&str> = table.lines().filter(|l| l.contains("protected")).collect();
    assert_eq!(lines.len(), 1, "{table}");
    assert!(lines[0].contains(&format!("{packets} frames")) && lines[0].contains('%'), "{}", lines[0]);
}

/// TSO and BIG TCP: segments past the MTU captured on the sending host,
/// IPv4 ones of length 0 and IPv6 jumbograms past 64 KiB, give their
/// connections and exchanges.
#[test]
fn offloaded_segments_keep_their_connections() {
    assert_tshark_agrees("tso.pcap");
    // tshark takes one merged segment for a retransmission (its heuristic
    // on the ACKs after it): the payload is the unmerged stream's.
    assert_tshark_agrees_but_payload("big-tcp.pcap", "tso.pcap");
    let (tso, big) = (report("tso.pcap"), report("big-tcp.pcap"));
    assert!(notes(&tso).get("broken_packets").is_none() && notes(&big).get("broken_packets").is_none());
    let offloaded = notes(&big)["offloaded_segments"].as_u64().unwrap();
    assert!(offloaded >= 2, "{offloaded}");
    assert_eq!(
        inner_view(&tso, &["link", "network", "transport", "tcp_control"])["sections"],
        inner_view(&big, &["link", "network", "transport", "tcp_control"])["sections"]
    );
    assert_eq!(big["http"]["requests"], json!(2));
    assert_eq!(big["exchanges"].as_array().unwrap().len(), 2);
}

/// TLS through an HTTP CONNECT proxy: after the 200, each direction is
/// probed again and TLS found.
#[test]
fn a_connect_tunnel_shows_its_tls() {
    assert_tshark_agrees("connect-tls.pcap");
    let r = report("connect-tls.pcap");
    assert_eq!(r["tls"]["connections"], json!(1));
    assert_eq!(r["tls"]["versions"]["TLS 1.3"], json!(1));
    assert!(r["totals"]["classes"]["tls_handshake"].as_u64().unwrap() > 1000, "{}", r["totals"]["classes"]);
    assert_eq!(r["http"]["upgrades"]["connect"], json!(1));
    assert_eq!(r["flows"][0]["app"], json!("tls"));
}

/// An SSLv2-compatible ClientHello starts TLS: its bytes are handshake,
/// counted apart from the TLS records.
#[test]
fn an_sslv2_hello_starts_tls() {
    assert_tshark_agrees("sslv2-hello.pcap");
    let (r, t) = (report("sslv2-hello.pcap"), truth("sslv2-hello.pcap"));
    assert_eq!(r["tls"]["sslv2_client_hellos"], json!(1));
    assert_eq!(r["tls"]["records"], t["tls_records"]);
    assert_eq!(r["flows"][0]["app"], json!("tls"));
    assert_eq!(r["totals"]["classes"]["payload"], json!(0));
}

/// What could not be read is one table line each, with its count, its
/// share of the wire bytes and what to do.
#[test]
fn the_table_says_what_could_not_be_read() {
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/samples");
    let cases = [
        (samples.join("coap-con-get-linktype147.pcap"), "unsupported_linktypes", "30 frames of unsupported link type"),
        (samples.join("http-keepalive-snaplen64.pcap"), "inferred_bytes", "cut by snaplen"),
        (samples.join("http-keepalive-snaplen128.pcap"), "malformed_bytes", "could not be parsed"),
        (field("vxlan.pcap"), "non_ip_frames", "EtherType 0x0806"),
        (field("wifi-wpa.pcap"), "wifi_protected_frames", "frames protected at the Wi-Fi layer"),
    ];
    for (path, kind, text) in cases {
        let r = Report::combine(vec![analyze_file(&path, &Options::new()).unwrap()], vec![]);
        let w = r.inputs[0].warnings.iter().find(|w| w.kind == kind).unwrap_or_else(|| panic!("{kind}"));
        assert!(w.count > 0 && w.bytes > 0 && w.share > 0.0 && w.share <= 1.0, "{w:?}");
        let want = format!("{:.1}% of the wire bytes", w.share * 100.0);
        let table = wiretax::report::table::render(&r, 10);
        let lines: Vec<&str> = table.lines().filter(|l| l.contains(text)).collect();
        assert_eq!(lines.len(), 1, "{kind}: {table}");
        assert!(lines[0].contains(&want) && lines[0].contains(w.advice.as_str()), "{}", lines[0]);
    }
    // Shipped captures read whole: no warning.
    let clean = Report::combine(vec![analyze_file(&field("inner.pcap"), &Options::new()).unwrap()], vec![]);
    assert!(clean.inputs[0].warnings.is_empty());
}
