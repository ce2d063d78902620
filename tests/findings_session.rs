//! The session findings (src/findings/session.rs), each on a capture that
//! shows it and one that does not, and their savings against a measured
//! or independently computed counterpart.

// Helpers of a test may unwrap: a panic there fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use wiretax::analyze::{Options, analyze_file};
use wiretax::findings::Finding;
use wiretax::report::InputReport;

fn analyze_with(capture: &str, opts: &Options) -> InputReport {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures").join(capture);
    analyze_file(&p, opts).unwrap()
}

fn analyze(capture: &str) -> InputReport {
    analyze_with(capture, &Options::new())
}

fn ids(r: &InputReport) -> Vec<String> {
    r.findings.iter().map(|f| f.id.clone()).collect()
}

fn finding<'a>(r: &'a InputReport, id: &str) -> &'a Finding {
    r.findings.iter().find(|f| f.id == id).unwrap_or_else(|| panic!("no {id}: {:?}", ids(r)))
}

fn shows(id: &str, yes: &str, no: &str) {
    let (a, b) = (analyze(yes), analyze(no));
    assert!(ids(&a).iter().any(|i| i == id), "{yes} should show {id}: {:?}", ids(&a));
    assert!(!ids(&b).iter().any(|i| i == id), "{no} should not show {id}: {:?}", ids(&b));
}

fn close(got: f64, want: f64, share: f64) -> bool {
    (got - want).abs() <= share * want.abs()
}

#[test]
fn heartbeat_too_short() {
    // Keep-alive 5 s with pings, against 30 s (half the default 60 s timeout).
    shows("heartbeat-interval", "mqtt311-qos0-persistent.pcap", "mqtt311-qos1.pcap");
    let r = analyze("mqtt311-qos0-persistent.pcap");
    let f = finding(&r, "heartbeat-interval");
    assert_eq!(f.evidence["too_short"], true);
    assert_eq!(f.evidence["pings"], 6);
    assert_eq!(f.evidence["recommended_s"], 30.0);
    // A silent day: one PINGREQ and one PINGRESP every keep-alive period,
    // each a frame of the capture's headers and 2 bytes of MQTT.
    let m = r.stats.mqtt.clone();
    let ping_mqtt = m.packet_bytes.get("PINGREQ").unwrap() as f64 / m.packets.get("PINGREQ").unwrap() as f64;
    let tcp = &r.flows[0];
    let headers = (tcp.classes.get(wiretax::ledger::Class::TcpControl)) as f64 / tcp.control_frames as f64;
    let per_ping = 2.0 * (headers + ping_mqtt);
    let idle = &f.evidence["idle_day"];
    let saved = idle["bytes"].as_f64().unwrap() - idle["bytes_recommended"].as_f64().unwrap();
    let want = (86_400.0 / 5.0 - 86_400.0 / 30.0) * per_ping;
    assert!(close(saved, want, 0.05), "a silent day saves {saved} B, pings say {want}");
    // Fewer wake-ups cost less charge.
    assert!(idle["charge_mah"].as_f64().unwrap() > idle["charge_mah_recommended"].as_f64().unwrap());
    assert!(f.counterfactual.as_ref().unwrap().assumptions.iter().any(|a| a.contains("--nat-timeout")));
}

#[test]
fn heartbeat_at_the_timeout_and_nat_timeout_option() {
    // Keep-alive 60 s and a 66 s silence: a 60 s NAT forgets the connection.
    let r = analyze("sparse-mqtt-gps.pcap");
    let f = finding(&r, "heartbeat-interval");
    assert_eq!(f.evidence["too_long"], true, "{}", f.evidence);
    // Behind a 130 s timeout, 60 s is right (and not far below it).
    let mut opts = Options::new();
    opts.findings.nat_timeout_s = 130.0;
    let r = analyze_with("sparse-mqtt-gps.pcap", &opts);
    assert!(!ids(&r).iter().any(|i| i == "heartbeat-interval"), "{:?}", ids(&r));
    // The same from a settings file.
    let t = wiretax::findings::Thresholds::from_config("[findings]\nnat_timeout_s = 130\n").unwrap();
    assert_eq!(t.nat_timeout_s, 130.0);
}

#[test]
fn nat_timeout_flag() {
    let cap = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/sparse-mqtt-gps.pcap");
    let run = |extra: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_wiretax"))
            .args(["analyze", "--format", "json"])
            .args(extra)
            .arg(&cap)
            .output()
            .unwrap();
        (out.status.success(), String::from_utf8(out.stdout).unwrap())
    };
    assert!(run(&[]).1.contains("heartbeat-interval"));
    assert!(!run(&["--nat-timeout", "130"]).1.contains("heartbeat-interval"));
    assert!(!run(&["--nat-timeout", "0"]).0);
}

#[test]
fn nothing_listening_not_loss() {
    shows("nothing-listening", "coap-port-unreachable.pcap", "coap-con-get.pcap");
    let r = analyze("coap-port-unreachable.pcap");
    // The client's repeats into a closed port are not loss on the link...
    assert!(!ids(&r).iter().any(|i| i == "retransmissions"), "{:?}", ids(&r));
    // ...while repeats for lost answers still are.
    assert!(ids(&analyze("coap-con-retransmit.pcap")).iter().any(|i| i == "retransmissions"));
    let f = finding(&r, "nothing-listening");
    assert_eq!(f.evidence["icmp_port_unreachable"], 4);
    // One attempt: stopping at the first error leaves the first request
    // frame and the first ICMP error of the capture.
    let flow = &r.flows[0];
    let request_frame = flow.wire_bytes / flow.frames;
    let icmp = (r.totals.wire_bytes - flow.wire_bytes) / 4;
    let want = r.totals.wire_bytes - request_frame - icmp;
    let e = f.saving_per_event.as_ref().unwrap();
    assert_eq!(e.bytes, want, "{e:?}");
    assert!(e.charge_mah.unwrap() > 0.0 && e.radio_on_s.unwrap() > 0.0, "{e:?}");
    assert_eq!(f.saving_per_day.bytes, 0);
}

#[test]
fn icmp_for_a_departed_client_is_not_a_dead_server() {
    // coap-dtls ends with the server's last datagram answered by ICMP port
    // unreachable from the client's closed port.
    let r = analyze("coap-dtls.pcap");
    assert!(!ids(&r).iter().any(|i| i == "nothing-listening"), "{:?}", ids(&r));
}

/// Exchanges a second, and wire bytes an exchange.
fn rate_and_cost(r: &InputReport) -> (f64, f64) {
    let n: usize = r.summaries.rows().iter().map(|s| s.count).sum();
    (n as f64 / r.totals.duration_s, r.totals.wire_bytes as f64 / n as f64)
}

#[test]
fn qos2_telemetry_saves_what_qos1_measures() {
    shows("mqtt-qos2-telemetry", "mqtt311-qos2.pcap", "mqtt311-qos1.pcap");
    let (a, b) = (analyze("mqtt311-qos2.pcap"), analyze("mqtt311-qos1.pcap"));
    let f = finding(&a, "mqtt-qos2-telemetry");
    let ((rate_a, cost_a), (_, cost_b)) = (rate_and_cost(&a), rate_and_cost(&b));
    let want = (cost_a - cost_b) * rate_a * 86_400.0;
    let got = f.saving_per_day.bytes as f64;
    assert!(close(got, want, 0.15), "saves {got} B a day, the pair measures {want}");
    // Always on at one message a second: the charge saved is small and not negative.
    let day = a.radio.as_ref().unwrap().per_day.charge_mah;
    let (ca, cb) = (day, b.radio.as_ref().unwrap().per_day.charge_mah);
    let charge = f.saving_per_day.charge_mah.unwrap();
    assert!((charge - (ca - cb)).abs() <= (0.15 * (ca - cb).abs()).max(0.01 * day), "{charge} mAh vs {}", ca - cb);
}

#[test]
fn confirmable_telemetry_but_not_non_or_blockwise() {
    shows("coap-con-telemetry", "coap-con-put.pcap", "coap-non.pcap");
    // Block-wise transfers need their acknowledgements.
    let r = analyze("coap-blockwise.pcap");
    assert!(!ids(&r).iter().any(|i| i == "coap-con-telemetry"), "{:?}", ids(&r));
    // The answers go, the requests gain 3 bytes: at the upload period.
    let r = analyze("coap-con-put.pcap");
    let f = finding(&r, "coap-con-telemetry");
    let n = f.evidence["uploads"].as_f64().unwrap();
    let down = f.evidence["answer_bytes"].as_f64().unwrap() / n;
    let period = 2.0;
    let want = (down - 3.0) * 86_400.0 / period;
    let got = f.saving_per_day.bytes as f64;
    assert!(close(got, want, 0.05), "saves {got} B a day, the answers are {want}");
}

#[test]
fn good_practice_fires_nothing_but_its_real_findings_without_a_key_log() {
    for (capture, allowed) in [
        ("mqtt311-qos0-persistent.pcap", &["heartbeat-interval"][..]),
        // Its polling is real, and so is its one 56-byte body sent 15 times
        // without validators (`duplicate-content`, info): nothing tells it
        // from the issue's own trigger, sparse-http-keepalive-poll.
        ("http-keepalive.pcap", &["http-polling", "duplicate-content"][..]),
        ("coap-observe.pcap", &[][..]),
        ("coap-non.pcap", &[][..]),
        ("websocket-storm-backoff.pcap", &[][..]),
        ("https-tls12-resumed.pcap", &[][..]),
        ("https-tls13-resumed.pcap", &[][..]),
    ] {
        let got = ids(&analyze(capture));
        assert!(got.iter().all(|i| allowed.contains(&i.as_str())), "{capture}: {got:?}");
    }
}

#[test]
fn resumed_short_connections_are_not_reported_but_full_ones_are() {
    // Resumption is the recommended practice for a device that sleeps
    // between readings; full handshakes every time are not.
    assert!(ids(&analyze("https-tls12-full.pcap")).iter().any(|i| i == "short-lived-connections"));
    assert!(!ids(&analyze("https-tls12-resumed.pcap")).iter().any(|i| i == "short-lived-connections"));
}

fn analyze_data(capture: &str) -> InputReport {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/session").join(capture);
    analyze_file(&p, &Options::new()).unwrap()
}

#[test]
fn nothing_listening_on_tcp() {
    // curl five times to a closed port: SYN answered by RST.
    let r = analyze_data("tcp-refused.pcap");
    let f = finding(&r, "nothing-listening");
    assert_eq!(f.evidence["refused_connections"], 5, "{}", f.evidence);
    // Stopping at the first refusal: the four later attempts go, priced per attempt.
    let attempt = r.totals.wire_bytes / 5;
    assert_eq!(f.saving_per_event.as_ref().unwrap().bytes, 4 * attempt / 5);
    assert!(!ids(&analyze("http-keepalive.pcap")).iter().any(|i| i == "nothing-listening"));
}

#[test]
fn dns_per_connection_saves_what_the_cached_client_measures() {
    // The same 8 requests on new connections: a curl process each (a lookup
    // each), or one curl process (its DNS cache answers all but the first).
    let (a, b) = (analyze_data("dns-per-connection.pcap"), analyze_data("dns-cached.pcap"));
    let f = finding(&a, "dns-per-connection");
    assert_eq!(f.evidence["lookups"], 8);
    assert!(!ids(&b).iter().any(|i| i == "dns-per-connection"), "{:?}", ids(&b));
    let http = |r: &InputReport| r.flows.iter().filter(|f| f.app.name() != "dns").count() as f64;
    let want = (a.totals.wire_bytes as f64 / http(&a) - b.totals.wire_bytes as f64 / http(&b)) * http(&a)
        / a.totals.duration_s
        * 86_400.0;
    let got = f.saving_per_day.bytes as f64;
    assert!(close(got, want, 0.15), "saves {got} B a day, the pair measures {want}");
    // One request a second keeps the radio on either way: within 1% of the day.
    let day = a.radio.as_ref().unwrap().per_day.charge_mah;
    let measured = day - b.radio.as_ref().unwrap().per_day.charge_mah;
    assert!(
        (f.saving_per_day.charge_mah.unwrap() - measured).abs() <= 0.01 * day,
        "{} vs {measured}",
        f.saving_per_day.charge_mah.unwrap()
    );
}

#[test]
fn parallel_connections_but_not_one_kept_alive() {
    // 16 files from 4 shard names of one server, curl --parallel over
    // HTTP/1.1, 3 rounds 2 s apart.
    let r = analyze_data("parallel-connections.pcap");
    let f = finding(&r, "parallel-connections");
    assert!(f.evidence["most_open_at_once"].as_u64().unwrap() >= 8, "{}", f.evidence);
    assert!(!ids(&analyze("http-keepalive.pcap")).iter().any(|i| i == "parallel-connections"));
    // Many devices' long-lived sessions behind one address are not a pool.
    assert!(!ids(&analyze("websocket-storm-fixed.pcap")).iter().any(|i| i == "parallel-connections"));
    // One connection instead: each round's connection set-up and teardown go.
    let setup: u64 = r.flows.iter().filter(|f| f.app.name() == "http").map(|f| f.setup_bytes).sum();
    let period = r.radio.as_ref().unwrap().per_day.cycle.as_ref().unwrap().period_s;
    let want = setup as f64 / 3.0 * 86_400.0 / period;
    let got = f.saving_per_day.bytes as f64;
    assert!(close(got, want, 0.15), "saves {got} B a day, the set-ups are {want}");
}

#[test]
fn retransmissions_save_what_the_lossless_capture_measures() {
    // The same keep-alive polling, 15% of the client's segments dropped or not.
    let (a, b) = (analyze("http-keepalive-lossy.pcap"), analyze("http-keepalive.pcap"));
    let f = finding(&a, "retransmissions");
    let ((rate_a, cost_a), (_, cost_b)) = (rate_and_cost(&a), rate_and_cost(&b));
    let want = (cost_a - cost_b) * rate_a * 86_400.0;
    let got = f.saving_per_day.bytes as f64;
    assert!(close(got, want, 0.15), "saves {got} B a day, the pair measures {want}");
    assert!(f.counterfactual.as_ref().unwrap().assumptions.iter().any(|s| s.contains("frame headers")));
}

#[test]
fn header_overhead_is_a_re_simulation_of_compact_headers() {
    // http-keepalive's 15 GETs every 2 s, not taken as polling here: each
    // exchange's headers shrink to 20 B, at the 2 s cycle.
    let mut opts = Options::new();
    opts.findings.polling_min_requests = 1_000;
    let r = analyze_with("http-keepalive.pcap", &opts);
    let f = finding(&r, "header-overhead");
    let n = f.evidence["exchanges"].as_f64().unwrap();
    let header = f.evidence["header_bytes"].as_f64().unwrap();
    let period = r.radio.as_ref().unwrap().per_day.cycle.as_ref().unwrap().period_s;
    let want = (header - 20.0 * n) / n * 86_400.0 / period;
    let got = f.saving_per_day.bytes as f64;
    assert!(close(got, want, 0.05), "saves {got} B a day, the headers say {want}");
    assert!(f.saving_per_day.charge_mah.unwrap() >= 0.0);
}
