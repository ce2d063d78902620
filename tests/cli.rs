//! The command line as a user meets it.

// Helpers of a test may unwrap: a panic there fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_wiretax"))
}

fn cap(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("captures").join(name)
}

fn json(args: &[&str]) -> Value {
    let out = bin().args(args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn table_is_the_default_and_names_the_ledger() {
    let out = bin().args(["analyze", cap("http-keepalive.pcap").to_str().unwrap()]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for word in ["Byte ledger", "tcp_control", "payload", "Exchanges", "Top flows", "Radio", "Findings", "http-polling"]
    {
        assert!(text.contains(word), "table lacks {word}:\n{text}");
    }
}

#[test]
fn json_report_has_the_contract_fields() {
    let r = json(&["analyze", cap("mqtt311-qos1.pcap").to_str().unwrap(), "--format", "json"]);
    assert_eq!(r["schema"], "wiretax/1");
    for k in [
        "totals",
        "tcp_streams",
        "udp_streams",
        "flows",
        "http",
        "tls",
        "mqtt",
        "coap",
        "exchanges",
        "radio",
        "findings",
    ] {
        assert!(r.get(k).is_some(), "missing {k}");
    }
    for k in ["profile", "radio_on_s", "energy_j", "charge_mah", "tail_energy_j", "promotions", "per_day"] {
        assert!(r["radio"].get(k).is_some(), "radio lacks {k}");
    }
    assert_eq!(r["totals"]["wire_bytes"], 6583);
}

#[test]
fn output_file_and_directory_input() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(cap("coap-con-get.pcap"), dir.path().join("a.pcap")).unwrap();
    std::fs::copy(cap("mqtt311-qos1.pcap"), dir.path().join("b.pcap")).unwrap();
    let out = dir.path().join("r.json");
    let st = bin()
        .args(["analyze", dir.path().to_str().unwrap(), "--format", "json", "-o", out.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(st.success());
    let r: Value = serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap();
    assert_eq!(r["inputs"].as_array().unwrap().len(), 2);
    assert_eq!(r["totals"]["frames"], 30 + 71);
    assert!(r["inputs"][0]["radio"].is_object(), "each input has its own radio model");
}

#[test]
fn decode_as_overrides_recognition() {
    let c = cap("http-keepalive.pcap");
    let r = json(&["analyze", c.to_str().unwrap(), "--format", "json"]);
    assert_eq!(r["flows"][0]["app"], "http");
    let r = json(&["analyze", c.to_str().unwrap(), "--format", "json", "--decode-as", "80=mqtt"]);
    assert_eq!(r["flows"][0]["app"], "mqtt");
    let bad = bin().args(["analyze", c.to_str().unwrap(), "--decode-as", "80=gopher"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn nothing_readable_exits_non_zero_and_says_why() {
    let out = bin().args(["analyze", "/nonexistent/x.pcap"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/x.pcap"));
}

#[test]
fn radio_list_prints_every_profile_with_sources() {
    let out = bin().args(["radio", "list"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for p in ["lte", "umts", "wifi", "ltem", "nbiot"] {
        assert!(text.contains(p), "{p} missing");
    }
    // Each parameter line ends with its source.
    for cited in ["ARO lte.conf", "i997", "WiFi.conf", "nRF9160"] {
        assert!(text.contains(cited), "{cited} not cited:\n{text}");
    }
}

#[test]
fn bad_radio_profile_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.toml");
    std::fs::write(&f, "name = \"x\"\n").unwrap();
    let out = bin()
        .args(["analyze", cap("coap-con-get.pcap").to_str().unwrap(), "--radio", f.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml"), "{err}");
}

#[test]
fn fleet_cost_in_the_report() {
    let r = json(&[
        "analyze",
        cap("sparse-mqtt-gps.pcap").to_str().unwrap(),
        "--format",
        "json",
        "--devices",
        "5000",
        "--price-per-mb",
        "0.01",
        "--currency",
        "EUR",
    ]);
    let cost = &r["radio"]["cost"];
    assert!(cost.is_object(), "{}", r["radio"]);
    let s = cost.to_string();
    assert!(s.contains("fleet_year") && s.contains("EUR"), "{s}");
}
