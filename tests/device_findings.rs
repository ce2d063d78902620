//! Each device's findings: which findings concern which device, on
//! `tests/data/fleet-sparse.pcap` (the four shipped sparse captures merged,
//! each device with its own addresses; see tests/devices.rs).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use std::collections::BTreeMap;
use std::process::Command;

fn json(capture: &str, args: &[&str]) -> Value {
    let cap = format!("{}/{capture}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(env!("CARGO_BIN_EXE_wiretax"))
        .args([&["analyze", cap.as_str(), "--format", "json"], args].concat())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Device id -> the ids of its findings.
fn by_device(r: &Value) -> BTreeMap<String, Vec<String>> {
    let findings = r["findings"].as_array().unwrap();
    r["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let mut ids: Vec<String> = d["findings"]
                .as_array()
                .map(|v| {
                    v.iter()
                        .map(|i| findings[i.as_u64().unwrap() as usize]["id"].as_str().unwrap().to_string())
                        .collect()
                })
                .unwrap_or_default();
            ids.sort();
            (d["id"].as_str().unwrap().to_string(), ids)
        })
        .collect()
}

#[test]
fn each_device_lists_the_findings_that_concern_it() {
    let r = json("tests/data/fleet-sparse.pcap", &[]);
    let got = by_device(&r);
    let want: BTreeMap<String, Vec<String>> = [
        // MQTT: a 60 s keep-alive with silences past the 60 s idle timeout.
        ("10.79.0.22", vec!["heartbeat-interval"]),
        // HTTPS polling: a new TLS connection per request, never resumed.
        // and one small upload each time: unbatched.
        ("10.79.0.12", vec!["no-tls-resumption", "short-lived-connections", "unbatched-uploads"]),
        // CoAP NON uploads: nothing to fix.
        ("10.79.0.32", vec![]),
        // HTTP keep-alive polling every 15 s (its headers go with the polling
        // it would remove, so no header-overhead finding of its own).
        // The same body every time, without validators.
        ("10.79.0.42", vec!["duplicate-content", "http-polling"]),
    ]
    .into_iter()
    .map(|(d, f)| (d.to_string(), f.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(got, want);
    // Each finding that names a device is listed on it, and on no other.
    for (i, f) in r["findings"].as_array().unwrap().iter().enumerate() {
        let on: Vec<&str> = r["devices"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["findings"].as_array().is_some_and(|v| v.iter().any(|x| x == i)))
            .map(|d| d["id"].as_str().unwrap())
            .collect();
        assert!(!on.is_empty(), "finding {i} ({}) concerns no device", f["id"]);
    }
}

#[test]
fn a_single_device_capture_lists_every_finding_on_its_device() {
    let r = json("captures/sparse-https-poll.pcap", &[]);
    let n = r["findings"].as_array().unwrap().len();
    assert!(n > 0);
    let d = &r["devices"][0];
    let listed: Vec<u64> = d["findings"].as_array().unwrap().iter().map(|i| i.as_u64().unwrap()).collect();
    assert_eq!(listed, (0..n as u64).collect::<Vec<_>>());
}
