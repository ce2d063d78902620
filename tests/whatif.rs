//! `wiretax whatif` against measured captures: the same readings carried
//! by another stack land where a capture of that stack measured them.

// Helpers of a test may unwrap: a panic there fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use std::process::Command;

fn cap(name: &str) -> String {
    format!("{}/captures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn json(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_wiretax")).args(args).args(["--format", "json"]).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn analyze_day(capture: &str, radio: &str) -> Value {
    json(&["analyze", &cap(capture), "--radio", radio])["radio"]["per_day"].clone()
}

fn whatif(capture: &str, extra: &[&str]) -> Value {
    let c = cap(capture);
    let mut args = vec!["whatif", c.as_str()];
    args.extend_from_slice(extra);
    json(&args)
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap()
}

fn within(a: f64, b: f64, share: f64) -> bool {
    (a - b).abs() <= share * b.abs()
}

fn scenario<'a>(r: &'a Value, stack: &str) -> &'a Value {
    r["scenarios"].as_array().unwrap().iter().find(|s| s["stack"] == stack).unwrap()
}

/// The tracker's 85-byte readings, posted over HTTPS every 20 s
/// (sparse-https-poll), carried by MQTT QoS 1 and by CoAP NON: within 15%
/// of the captures of the same readings sent that way (sparse-mqtt-gps,
/// sparse-coap-non), in bytes and in charge per day, on LTE and NB-IoT.
#[test]
fn https_readings_as_mqtt_and_coap_match_their_captures() {
    let keys = cap("sparse-https-poll.keylog");
    for radio in ["lte", "nbiot"] {
        let r = whatif(
            "sparse-https-poll.pcap",
            &["--keylog", &keys, "--as", "mqtt", "--qos", "1", "--as", "coap-non", "--radio", radio],
        );
        for (stack, capture) in [("mqtt", "sparse-mqtt-gps.pcap"), ("coap-non", "sparse-coap-non.pcap")] {
            let measured = analyze_day(capture, radio);
            let s = &scenario(&r, stack)["per_day"];
            for k in ["bytes", "charge_mah"] {
                assert!(
                    within(f(&s[k]), f(&measured[k]), 0.15),
                    "{radio} {stack} {k}: whatif {} vs measured {} on {capture}",
                    s[k],
                    measured[k]
                );
            }
        }
        // Nothing said of a missing key log: the key log was given.
        assert!(!r["notes"].to_string().contains("no key log"));
    }
}

/// Carried by what it already uses (a new connection and a full TLS 1.2
/// handshake per reading), the capture comes back as its own baseline.
#[test]
fn https_new_reproduces_its_own_baseline() {
    let keys = cap("sparse-https-poll.keylog");
    for radio in ["lte", "nbiot"] {
        let r = whatif("sparse-https-poll.pcap", &["--keylog", &keys, "--as", "https-new", "--radio", radio]);
        let b = &r["baseline"];
        let s = scenario(&r, "https-new");
        for k in ["bytes", "billed_bytes", "charge_mah", "radio_on_s"] {
            assert!(
                within(f(&s["per_day"][k]), f(&b["per_day"][k]), 0.03),
                "{radio} {k}: {} vs {}",
                s["per_day"][k],
                b["per_day"][k]
            );
        }
        assert!(within(f(&s["per_message"]["wire_bytes"]), f(&b["per_message"]["wire_bytes"]), 0.03));
    }
}

/// `--interval 30s` re-times the readings: fewer a day, so fewer bytes a
/// day in the same proportion (20 s to 30 s), the baseline as well.
#[test]
fn interval_changes_the_message_rate() {
    let keys = cap("sparse-https-poll.keylog");
    let base = whatif("sparse-https-poll.pcap", &["--keylog", &keys, "--as", "mqtt", "--qos", "1"]);
    let slow =
        whatif("sparse-https-poll.pcap", &["--keylog", &keys, "--as", "mqtt", "--qos", "1", "--interval", "30s"]);
    assert_eq!(slow["interval_s"], 30.0);
    let bytes = |r: &Value| f(&scenario(r, "mqtt")["per_day"]["bytes"]);
    let ratio = bytes(&slow) / bytes(&base);
    assert!(within(ratio, 20.0 / 30.0, 0.05), "per-day bytes at 30 s over at 20 s: {ratio}");
    let b = |r: &Value| f(&r["baseline"]["per_day"]["bytes"]);
    assert!(within(b(&slow) / b(&base), 20.0 / 30.0, 0.05));
    // Past the keep-alive, MQTT pings once a period it sent nothing.
    let slower =
        whatif("sparse-https-poll.pcap", &["--keylog", &keys, "--as", "mqtt", "--qos", "1", "--interval", "90s"]);
    let per_msg = |r: &Value| f(&scenario(r, "mqtt")["per_message"]["wire_bytes"]);
    assert!(per_msg(&slower) > per_msg(&slow), "pings add bytes at 90 s with keep-alive 60 s");
    // Every 10 minutes, with keep-alive 60 s: 144 readings a day at 311 B
    // (PUBLISH 175, PUBACK 70, ACK 66 on captures/sparse-mqtt-gps.pcap) and
    // 9 pings between each two at 202 B (PINGREQ 68, PINGRESP 68, ACK 66).
    let tenth =
        whatif("sparse-https-poll.pcap", &["--keylog", &keys, "--as", "mqtt", "--qos", "1", "--interval", "10m"]);
    assert_eq!(f(&scenario(&tenth, "mqtt")["per_day"]["bytes"]), (144 * 311 + 144 * 9 * 202) as f64);
    assert_eq!(f(&scenario(&slower, "mqtt")["per_day"]["bytes"]), (960 * (311 + 202)) as f64);
}

/// Without a key log the messages' encrypted sizes are used, and the
/// output says so.
#[test]
fn without_a_key_log_encrypted_sizes_are_used_and_said() {
    let r = whatif("sparse-https-poll.pcap", &["--as", "mqtt"]);
    assert!(r["notes"].to_string().contains("no key log"), "{}", r["notes"]);
    let with_keys = whatif("sparse-https-poll.pcap", &["--keylog", &cap("sparse-https-poll.keylog"), "--as", "mqtt"]);
    let m = |r: &Value| f(&scenario(r, "mqtt")["per_message"]["wire_bytes"]);
    // The encrypted messages carry the HTTP headers too.
    assert!(m(&r) > m(&with_keys) + 100.0);
}

/// Every stack runs on captures of each kind; the JSON has the shape the
/// contract gives, every scenario says its assumptions with their sources,
/// and battery life and fleet cost come with their options.
#[test]
fn every_stack_reports_its_figures_and_assumptions() {
    let stacks = [
        "http-new",
        "https-new",
        "https-resumed",
        "http-keepalive",
        "https-keepalive",
        "http2",
        "mqtt",
        "mqtt-tls",
        "mqtt-ws",
        "coap-non",
        "coap-con",
        "coap-dtls",
    ];
    for capture in ["http-keepalive.pcap", "mqtt311-qos1.pcap", "coap-con-get.pcap"] {
        let mut args = vec!["--battery", "3000mAh", "--price-per-mb", "0.5", "--devices", "1000", "--tls", "1.3"];
        for s in stacks {
            args.extend(["--as", s]);
        }
        let r = whatif(capture, &args);
        assert_eq!(r["schema"], "wiretax-whatif/1");
        assert!(f(&r["baseline"]["per_message"]["wire_bytes"]) > 0.0);
        for k in ["bytes", "billed_bytes", "radio_on_s", "charge_mah"] {
            assert!(r["baseline"]["per_day"][k].is_number(), "{capture} baseline {k}");
        }
        let sc = r["scenarios"].as_array().unwrap();
        assert_eq!(sc.len(), stacks.len());
        for s in sc {
            assert!(f(&s["per_message"]["wire_bytes"]) > 0.0, "{capture} {}", s["stack"]);
            assert!(f(&s["per_day"]["bytes"]) > 0.0, "{capture} {}", s["stack"]);
            assert!(f(&s["per_day"]["billed_bytes"]) < f(&s["per_day"]["bytes"]));
            assert!(f(&s["battery_life_days"]) > 0.0);
            assert!(f(&s["fleet"]["fleet_month"]["cost"]) > 0.0);
            let a = s["assumptions"].as_array().unwrap();
            assert!(!a.is_empty());
            // Each constant names where it came from: the capture or a shipped one.
            for line in a.iter().map(|x| x.as_str().unwrap()).filter(|l| l.contains(" B (")) {
                assert!(line.contains("captures/") || line.contains("this capture") || line.contains("RFC"), "{line}");
            }
        }
        // Stacks that open a connection a message cost more than those that keep one.
        let day = |st: &str| f(&scenario(&r, st)["per_day"]["bytes"]);
        assert!(day("https-new") > day("https-resumed"));
        assert!(day("https-resumed") > day("https-keepalive"));
        assert!(day("http-new") > day("http-keepalive"));
        assert!(day("mqtt-tls") > day("mqtt"));
        assert!(day("coap-dtls") > day("coap-non"));
    }
}

#[test]
fn an_unknown_stack_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_wiretax"))
        .args(["whatif", &cap("coap-non.pcap"), "--as", "smoke-signals"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown stack"));
}

/// The table says the same as the JSON, with the assumptions listed.
#[test]
fn the_table_lists_the_stacks_and_their_assumptions() {
    let out = Command::new(env!("CARGO_BIN_EXE_wiretax"))
        .args(["whatif", &cap("sparse-coap-non.pcap"), "--as", "mqtt", "--as", "coap-con"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let t = String::from_utf8_lossy(&out.stdout);
    for s in ["capture (cycle)", "mqtt", "coap-con", "captures/sparse-mqtt-gps.pcap", "per day"] {
        assert!(t.contains(s), "{s} missing from\n{t}");
    }
}

/// Every finding's changes run together (`all_findings_fixed`): on
/// https-tls12-full, where polling, short-lived connections and missing
/// resumption all remove the same handshakes, the combined saving is no
/// more than the findings' savings added up, nor than the day's bytes; the
/// table says the savings overlap and shows the combined one.
#[test]
fn all_findings_fixed_counts_each_byte_once() {
    let c = cap("https-tls12-full.pcap");
    let r = json(&["analyze", &c]);
    let all = &r["all_findings_fixed"];
    let findings = r["findings"].as_array().unwrap();
    assert!(findings.len() >= 2, "{findings:?}");
    let sum: f64 = findings.iter().map(|x| f(&x["saving_per_day"]["bytes"])).sum();
    let combined = f(&all["saving_per_day"]["bytes"]);
    let day = f(&r["radio"]["per_day"]["bytes"]);
    assert!(combined > 0.0);
    assert!(combined <= sum, "combined {combined} vs the findings' sum {sum}");
    assert!(sum > day, "the findings overlap here: {sum} of {day}");
    assert!(combined <= day, "combined {combined} vs the day's {day}");
    assert!(f(&all["saving_per_day"]["billed_bytes"]) <= combined);
    assert_eq!(f(&all["sum_of_findings"]["bytes"]), sum);
    // The re-simulated baseline is the capture's own day.
    assert!(within(f(&all["baseline_per_day"]["bytes"]), day, 0.02));
    let max_charge = findings.iter().map(|x| f(&x["saving_per_day"]["charge_mah"])).fold(0.0, f64::max);
    assert!(f(&all["saving_per_day"]["charge_mah"]) >= max_charge - 1e-6);
    assert!(all["counterfactual"]["description"].as_str().unwrap().contains("every finding fixed"));
    let out = Command::new(env!("CARGO_BIN_EXE_wiretax")).args(["analyze", &c]).output().unwrap();
    let t = String::from_utf8_lossy(&out.stdout);
    assert!(t.contains("All findings fixed together"), "{t}");
    assert!(t.contains("overlap"));
    let out = Command::new(env!("CARGO_BIN_EXE_wiretax")).args(["analyze", &c, "--format", "html"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("All of them fixed at once"));
    // Two inputs: their combined scenarios add up.
    let two = json(&["analyze", &c, &cap("http-poll-close.pcap")]);
    let one = json(&["analyze", &cap("http-poll-close.pcap")]);
    assert_eq!(
        f(&two["all_findings_fixed"]["saving_per_day"]["bytes"]),
        combined + f(&one["all_findings_fixed"]["saving_per_day"]["bytes"])
    );
}

/// The good-practice capture has nothing to fix in its day (its heartbeat
/// finding is about reliability and changes nothing per day): no combined
/// scenario.
#[test]
fn nothing_to_fix_no_combined_scenario() {
    let r = json(&["analyze", &cap("sparse-mqtt-gps.pcap")]);
    let ids: Vec<&str> = r["findings"].as_array().unwrap().iter().filter_map(|f| f["id"].as_str()).collect();
    assert_eq!(ids, ["heartbeat-interval"], "{}", r["findings"]);
    assert!(r.get("all_findings_fixed").is_none());
}

fn keyed(capture: &str) -> Vec<String> {
    let keys = cap(&capture.replace(".pcap", ".keylog"));
    if std::path::Path::new(&keys).exists() { vec!["--keylog".into(), keys] } else { Vec::new() }
}

/// Each stack carrying a capture made with it gives that capture back:
/// bytes per message within 5% (connection set-up included).
#[test]
fn each_stack_reproduces_a_capture_made_with_it() {
    let cases: &[(&str, &str, &[&str])] = &[
        ("http-poll-close.pcap", "http-new", &[]),
        ("http10.pcap", "http-new", &[]),
        ("http-keepalive.pcap", "http-keepalive", &[]),
        ("sparse-http-keepalive-poll.pcap", "http-keepalive", &[]),
        ("https-tls12-full.pcap", "https-new", &[]),
        ("https-tls12-resumed.pcap", "https-resumed", &[]),
        ("https-tls13-full.pcap", "https-new", &["--tls", "1.3"]),
        ("https-tls13-resumed.pcap", "https-resumed", &["--tls", "1.3"]),
        ("mqtt311-qos1.pcap", "mqtt", &["--qos", "1"]),
        ("mqtt311-qos2.pcap", "mqtt", &["--qos", "2"]),
        ("mqtt-tls12.pcap", "mqtt-tls", &["--qos", "1", "--keepalive", "20s"]),
        ("mqtt-tls13.pcap", "mqtt-tls", &["--qos", "1", "--tls", "1.3", "--keepalive", "20s"]),
        ("coap-non.pcap", "coap-non", &[]),
        ("coap-con-put.pcap", "coap-con", &[]),
        ("coap-dtls.pcap", "coap-dtls", &[]),
    ];
    for (capture, stack, extra) in cases {
        let mut args: Vec<String> = keyed(capture);
        args.extend(["--as".to_string(), stack.to_string()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let r = whatif(capture, &args.iter().map(String::as_str).collect::<Vec<_>>());
        let (got, want) =
            (f(&scenario(&r, stack)["per_message"]["wire_bytes"]), f(&r["baseline"]["per_message"]["wire_bytes"]));
        assert!(within(got, want, 0.05), "{capture} as {stack}: {got} B a message vs {want} B captured");
    }
}

/// Pairs of captures that differ by one practice, at the same period: the
/// first carried by the second's stack lands on the second's measured day
/// (bytes within 10%, charge within 1%: at a 1-2 s period on LTE the radio
/// never sleeps).
#[test]
fn the_first_of_a_pair_as_the_seconds_stack_lands_on_the_second() {
    let pairs: &[(&str, &str, &[&str], &str)] = &[
        ("http-poll-close.pcap", "http-keepalive", &[], "http-keepalive.pcap"),
        ("https-tls12-full.pcap", "https-resumed", &[], "https-tls12-resumed.pcap"),
        ("https-tls13-full.pcap", "https-resumed", &["--tls", "1.3"], "https-tls13-resumed.pcap"),
        ("mqtt-reconnect-per-message.pcap", "mqtt", &["--keepalive", "5s"], "mqtt311-qos0-persistent.pcap"),
    ];
    for (capture, stack, extra, measured) in pairs {
        let mut args: Vec<String> = keyed(capture);
        args.extend(["--as".to_string(), stack.to_string()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let r = whatif(capture, &args.iter().map(String::as_str).collect::<Vec<_>>());
        let m = analyze_day(measured, "lte");
        let s = &scenario(&r, stack)["per_day"];
        assert!(
            within(f(&s["bytes"]), f(&m["bytes"]), 0.10),
            "{capture} as {stack}: {} vs {measured} {}",
            s["bytes"],
            m["bytes"]
        );
        assert!(
            within(f(&s["charge_mah"]), f(&m["charge_mah"]), 0.01),
            "{capture} as {stack}: {} vs {}",
            s["charge_mah"],
            m["charge_mah"]
        );
    }
}

/// A timeline the radio model cannot project (no steady cycle: its day is
/// its bytes at its own rate) has no radio figures, so a saving against it
/// has none either: its zeros are not a figure (once, against a projected
/// baseline, the saving was the baseline's whole charge: the unit test
/// `a_saving_against_a_day_without_projection_has_no_radio_figures` in
/// src/whatif/mod.rs has that case). http-keepalive-lossy has no
/// projection: the findings and the combined scenario show no radio figures.
#[test]
fn a_counterfactual_without_a_projection_saves_no_radio_figures() {
    let r = json(&["analyze", &cap("http-keepalive-lossy.pcap")]);
    let all = &r["all_findings_fixed"]["saving_per_day"];
    assert!(f(&all["bytes"]) > 0.0, "{all}");
    assert!(all["charge_mah"].is_null() && all["radio_on_s"].is_null(), "{all}");
    assert!(all["charge_basis"].as_str().unwrap().contains("no radio figures"), "{all}");
    assert!(r["all_findings_fixed"]["sum_of_findings"]["charge_mah"].is_null());
    for x in r["findings"].as_array().unwrap() {
        if f(&x["saving_per_day"]["bytes"]) > 0.0 {
            assert!(x["saving_per_day"]["charge_mah"].is_null(), "{x}");
        }
    }
    // http-keepalive-lossy: the table prints no radio figures for it.
    let out = Command::new(env!("CARGO_BIN_EXE_wiretax"))
        .args(["analyze", &cap("http-keepalive-lossy.pcap")])
        .output()
        .unwrap();
    let t = String::from_utf8_lossy(&out.stdout);
    let line = t.lines().find(|l| l.contains("All findings fixed together")).unwrap();
    assert!(!line.contains("mAh") && !line.contains("radio time"), "{line}");
    // whatif on it: the capture's day has no projection, so no scenario's
    // charge compares with it (once 0.0: "no charge at all"), and a
    // scenario without a steady cycle of its own shows no radio figures.
    let r = whatif("http-keepalive-lossy.pcap", &["--as", "mqtt", "--as", "coap-non"]);
    assert_eq!(r["baseline"]["per_day"]["no_radio_figures"], true, "{}", r["baseline"]);
    for s in r["scenarios"].as_array().unwrap() {
        assert!(s["charge_vs_baseline"].is_null(), "{s}");
    }
    let coap = &scenario(&r, "coap-non")["per_day"];
    assert_eq!(coap["no_radio_figures"], true, "{coap}");
    assert!(scenario(&r, "coap-non").get("battery_life_days").is_none());
}

/// Billed bytes are IP bytes: every frame's wire length less its link
/// header, TCP control frames included (the ledger books those whole as
/// `tcp_control`, link header and all, so its `link` class misses them).
#[test]
fn whatif_baseline_bills_ip_bytes() {
    // tshark -r captures/sparse-https-poll.pcap -T fields -e ip.len, summed:
    // 23,032 B in 8 messages: 2,879 B each.
    let keys = cap("sparse-https-poll.keylog");
    let r = whatif("sparse-https-poll.pcap", &["--keylog", &keys, "--as", "https-new"]);
    assert_eq!(f(&r["baseline"]["per_message"]["billed_bytes"]), 23_032.0 / 8.0);
    assert_eq!(f(&scenario(&r, "https-new")["per_message"]["billed_bytes"]), 23_032.0 / 8.0);
    // Without a radio model the day is the capture's bytes at its rate:
    // tshark -T fields -e ip.len on http-poll-close.pcap sums to 13,356 B
    // over 28.236268 s (capinfos' duration).
    let r = whatif("http-poll-close.pcap", &["--as", "mqtt", "--no-radio"]);
    let want = 13_356.0 * 86_400.0 / 28.236268;
    assert!((f(&r["baseline"]["per_day"]["billed_bytes"]) - want).abs() <= 1.0, "{}", r["baseline"]);
    assert_eq!(f(&r["baseline"]["per_message"]["billed_bytes"]), 13_356.0 / 15.0);
}
