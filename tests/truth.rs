//! Every shipped capture against its tshark-computed truth file
//! (captures/NAME.truth.json), the way ../shared/tools/truthcheck.py
//! compares them, plus the decrypted sections for captures with a key log.

// Helpers of a test may unwrap: a panic there fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use wiretax::analyze::{Options, analyze_file};
use wiretax::report::Report;

const LOWER: [&str; 4] = ["link", "network", "transport", "tcp_control"];
const UPPER: [&str; 6] =
    ["retransmission", "tls_handshake", "tls_record_overhead", "app_header", "app_control", "payload"];

fn captures() -> Vec<(PathBuf, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures");
    let mut out = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()).collect();
    names.sort();
    for p in names {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        let Some(base) = name.strip_suffix(".truth.json") else { continue };
        let cap = ["pcap", "pcapng"].iter().map(|e| dir.join(format!("{base}.{e}"))).find(|c| c.exists());
        if let Some(cap) = cap {
            let t: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            out.push((cap, t));
        }
    }
    out
}

fn report(cap: &Path, opts: &Options) -> Value {
    let r = analyze_file(cap, opts).unwrap_or_else(|e| panic!("{e}"));
    serde_json::to_value(Report::combine(vec![r], vec![])).unwrap()
}

fn num(v: &Value) -> i64 {
    v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)).unwrap_or(0)
}

fn cmp(errs: &mut Vec<String>, what: &str, want: Option<&Value>, got: Option<&Value>) {
    let Some(want) = want else { return };
    let ok = match (want, got) {
        (Value::Number(w), Some(Value::Number(g))) if w.is_f64() || g.is_f64() => {
            let (w, g) = (w.as_f64().unwrap(), g.as_f64().unwrap());
            (w - g).abs() <= 1e-3f64.max(1e-3 * w.abs())
        }
        (w, Some(g)) => w == g,
        _ => false,
    };
    if !ok {
        errs.push(format!("{what}: want {want} got {}", got.map(|g| g.to_string()).unwrap_or("nothing".into())));
    }
}

fn truth_classes(t: &Value) -> Option<&Value> {
    t.get("byte_classes").or_else(|| t.get("bytes_by_class"))
}

fn is_tls13(t: &Value) -> bool {
    t.pointer("/tls/versions/TLS 1.3").is_some_and(|v| num(v) > 0)
}

fn check_core(t: &Value, r: &Value, errs: &mut Vec<String>) {
    cmp(errs, "frames", t.get("frames"), r.pointer("/totals/frames"));
    cmp(errs, "wire_bytes", t.get("wire_bytes"), r.pointer("/totals/wire_bytes"));
    cmp(errs, "tcp_streams", t.get("tcp_streams"), r.get("tcp_streams"));
    cmp(errs, "udp_streams", t.get("udp_streams"), r.get("udp_streams"));
    let sum: i64 = r["totals"]["classes"].as_object().unwrap().values().map(num).sum();
    if sum != num(&r["totals"]["wire_bytes"]) {
        errs.push(format!("conservation: classes sum {sum} != wire_bytes {}", r["totals"]["wire_bytes"]));
    }
    let ours = r["flows"].as_array().unwrap();
    for f in ours {
        let fs: i64 = f["classes"].as_object().unwrap().values().map(num).sum();
        if fs != num(&f["wire_bytes"]) {
            errs.push(format!("flow {} conservation: {fs} != {}", f["client"], f["wire_bytes"]));
        }
    }
    let mut by_key: BTreeMap<(String, String, String), Vec<&Value>> = BTreeMap::new();
    for f in ours {
        by_key.entry((f["l4"].to_string(), f["client"].to_string(), f["server"].to_string())).or_default().push(f);
    }
    for tf in t["flows"].as_array().unwrap() {
        let key = (tf["l4"].to_string(), tf["client"].to_string(), tf["server"].to_string());
        let Some(of) = by_key.get_mut(&key).and_then(|v| if v.is_empty() { None } else { Some(v.remove(0)) }) else {
            errs.push(format!("flow {key:?} missing"));
            continue;
        };
        for k in
            ["frames", "wire_bytes", "payload_bytes_c2s", "payload_bytes_s2c", "control_frames", "retransmitted_frames"]
        {
            cmp(errs, &format!("flow {}->{} {k}", key.1, key.2), tf.get(k), of.get(k));
        }
    }
}

fn check_classes(t: &Value, r: &Value, errs: &mut Vec<String>) {
    let Some(want) = truth_classes(t) else { return };
    let got = &r["totals"]["classes"];
    for c in LOWER {
        cmp(errs, &format!("class {c}"), Some(&want[c]), got.get(c));
    }
    let ws: i64 = UPPER.iter().map(|c| num(&want[*c])).sum();
    let gs: i64 = UPPER.iter().map(|c| num(&got[*c])).sum();
    if ws != gs {
        errs.push(format!("upper classes sum: want {ws} got {gs}"));
    }
    if is_tls13(t) {
        cmp(errs, "class retransmission", Some(&want["retransmission"]), got.get("retransmission"));
        let (w, g) = (num(&want["tls_handshake"]), num(&got["tls_handshake"]));
        if g < w {
            errs.push(format!("class tls_handshake: want >= {w} got {g}"));
        }
        let dec = t.get("byte_classes_decrypted").or_else(|| t.get("bytes_by_class_decrypted"));
        if let Some(d) = dec
            && g > num(&d["tls_handshake"])
        {
            errs.push(format!("class tls_handshake: want <= {} got {g}", d["tls_handshake"]));
        }
    } else {
        for c in UPPER {
            cmp(errs, &format!("class {c}"), Some(&want[c]), got.get(c));
        }
    }
}

fn check_protocols(t: &Value, r: &Value, errs: &mut Vec<String>, decrypted: bool) {
    let inner_hidden = t.get("tls").is_some() && !decrypted;
    let sections: [(&str, &[&str]); 4] = [
        (
            "http",
            &[
                "requests",
                "responses",
                "status_codes",
                "request_header_bytes",
                "request_body_bytes",
                "response_header_bytes",
                "response_body_bytes",
                "connections",
                "chunked_responses",
            ],
        ),
        (
            "tls",
            &[
                "connections",
                "full_handshakes",
                "resumed_handshakes",
                "versions",
                "handshake_record_bytes",
                "app_data_record_bytes",
                "records",
            ],
        ),
        ("mqtt", &["packets", "keepalive_s", "publish_payload_bytes", "total_mqtt_bytes"]),
        ("coap", &["messages", "codes", "payload_bytes", "total_coap_bytes"]),
    ];
    for (sec, keys) in sections {
        let Some(ts) = t.get(sec).filter(|v| v.is_object()) else { continue };
        if inner_hidden && sec != "tls" {
            continue;
        }
        for k in keys {
            cmp(errs, &format!("{sec}.{k}"), ts.get(*k), r.get(sec).and_then(|s| s.get(*k)));
        }
    }
}

fn run_all(check: impl Fn(&Path, &Value) -> Vec<String>) {
    let mut failures = Vec::new();
    let caps = captures();
    assert!(caps.len() >= 30, "shipped captures missing");
    for (cap, t) in &caps {
        let errs = check(cap, t);
        if !errs.is_empty() {
            failures.push(format!("{}: {}", cap.file_name().unwrap().to_string_lossy(), errs.join("; ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} captures disagree with their truth:\n{}",
        failures.len(),
        caps.len(),
        failures.join("\n")
    );
}

#[test]
fn core_figures_match_truth() {
    run_all(|cap, t| {
        let r = report(cap, &Options::new());
        let mut errs = Vec::new();
        check_core(t, &r, &mut errs);
        errs
    });
}

#[test]
fn classes_and_protocol_sections_match_truth() {
    run_all(|cap, t| {
        let r = report(cap, &Options::new());
        let mut errs = Vec::new();
        check_classes(t, &r, &mut errs);
        check_protocols(t, &r, &mut errs, false);
        errs
    });
}

/// With each capture's key log: the protocols inside TLS/DTLS and the
/// decrypted tls_handshake bytes equal the truth.
#[test]
fn decrypted_sections_match_truth() {
    run_all(|cap, t| {
        let keylog = cap.with_extension("keylog");
        if !keylog.exists() {
            return vec![];
        }
        let mut o = Options::new();
        let k = wiretax::keylog::KeyLog::load(&keylog).unwrap();
        o.flow.dissect = std::sync::Arc::new(wiretax::dissect::Config {
            keylog: Some(std::sync::Arc::new(k)),
            ..Default::default()
        });
        let r = report(cap, &o);
        let mut errs = Vec::new();
        check_protocols(t, &r, &mut errs, true);
        let dec = t.get("byte_classes_decrypted").or_else(|| t.get("bytes_by_class_decrypted"));
        cmp(
            &mut errs,
            "class tls_handshake (decrypted)",
            dec.and_then(|d| d.get("tls_handshake")),
            r.pointer("/totals/classes/tls_handshake"),
        );
        let sum: i64 = r["totals"]["classes"].as_object().unwrap().values().map(num).sum();
        if sum != num(&r["totals"]["wire_bytes"]) {
            errs.push("conservation with keys".into());
        }
        errs
    });
}
