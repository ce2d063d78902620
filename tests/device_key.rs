//! `--device-key mac|vlan|teid`: devices that share an IP address told
//! apart by their MAC, their VLAN or their GTP-U tunnel.
//!
//! The captures under `tests/data/devkey/` are made by
//! `scripts/make-device-key-captures.py` from two shipped captures
//! (sparse-mqtt-gps and sparse-http-keepalive-poll, the second's client
//! rewritten to the first's address 10.79.0.22): `X-a.pcap` and `X-b.pcap`
//! hold one device each, `X-shared-ip.pcap` both, merged in time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use std::process::Command;

fn path(rel: &str) -> String {
    format!("{}/tests/data/devkey/{rel}", env!("CARGO_MANIFEST_DIR"))
}

fn json(capture: &str, args: &[&str]) -> Value {
    let cap = path(capture);
    let out = Command::new(env!("CARGO_BIN_EXE_wiretax"))
        .args([&["analyze", cap.as_str(), "--format", "json"], args].concat())
        .output()
        .unwrap();
    assert!(out.status.success(), "{capture} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()).max(1e-12)
}

fn devices(report: &Value) -> &Vec<Value> {
    report["devices"].as_array().unwrap()
}

/// With `key`, the merged capture holds the two devices with the figures
/// each has alone, keyed `expected`; with `ip`, one device.
fn splits(set: &str, key: &str, expected: [&str; 2]) {
    for profile in ["lte", "nbiot"] {
        let merged = json(&format!("{set}-shared-ip.pcap"), &["--radio", profile, "--device-key", key]);
        let list = devices(&merged);
        assert_eq!(list.len(), 2, "{set} {profile}: {list:#?}");
        assert_eq!(merged["fleet"]["devices"], 2);
        let mut mah = 0.0;
        for (one, want) in ["a", "b"].into_iter().zip(expected) {
            let alone = json(&format!("{set}-{one}.pcap"), &["--radio", profile, "--device-key", key]);
            let alone = &devices(&alone)[0];
            assert_eq!(alone["keys"][0], want, "{set}-{one}");
            let d = list
                .iter()
                .find(|d| d["keys"][0] == want)
                .unwrap_or_else(|| panic!("{set} {profile}: no device {want} in {list:#?}"));
            assert_eq!(d["id"], alone["id"]);
            for field in ["radio_on_s", "energy_j", "charge_mah"] {
                let (a, b) = (f(&alone["radio"][field]), f(&d["radio"][field]));
                assert!(close(a, b, 0.01), "{set} {profile} {want} radio.{field}: alone {a}, merged {b}");
            }
            assert_eq!(alone["radio"]["wakeups"], d["radio"]["wakeups"], "{set} {want}");
            for field in ["bytes", "billed_bytes", "radio_on_s", "charge_mah", "wakeups"] {
                let (a, b) = (f(&alone["per_day"][field]), f(&d["per_day"][field]));
                assert!(close(a, b, 0.01), "{set} {profile} {want} per_day.{field}: alone {a}, merged {b}");
            }
            for field in ["frames", "wire_bytes", "billed_bytes", "classes", "flows", "exchanges"] {
                assert_eq!(alone[field], d[field], "{set} {profile} {want} {field}");
            }
            mah += f(&d["per_day"]["charge_mah"]);
        }
        assert!(close(f(&merged["fleet"]["per_day"]["charge_mah"]), mah, 1e-9), "{set} {profile}");

        // By address, the two are one device: one radio for both, which
        // sleeps less than the two apart.
        let by_ip = json(&format!("{set}-shared-ip.pcap"), &["--radio", profile]);
        let one = devices(&by_ip);
        assert_eq!(one.len(), 1, "{set} {profile}");
        assert_eq!(one[0]["keys"][0], "ip:10.79.0.22");
        let apart: f64 = list.iter().map(|d| f(&d["radio"]["radio_on_s"])).sum();
        assert!(f(&one[0]["radio"]["radio_on_s"]) < apart * 0.99, "{set} {profile}: one radio is on less than two");
    }
}

#[test]
fn mac_tells_apart_devices_that_share_an_address() {
    splits("mac", "mac", ["mac:02:00:00:00:00:0a", "mac:02:00:00:00:00:0b"]);
}

#[test]
fn vlan_tells_apart_devices_that_share_an_address() {
    splits("vlan", "vlan", ["vlan:100", "vlan:200"]);
    // The two share a MAC too: by MAC they are one.
    assert_eq!(devices(&json("vlan-shared-ip.pcap", &["--device-key", "mac"])).len(), 1);
}

#[test]
fn teid_tells_apart_devices_in_a_mobile_core() {
    // A device is keyed by its uplink tunnel (the TEID its own packets carry).
    splits("gtp", "teid", ["teid:0x1001", "teid:0x1002"]);
}

#[test]
fn a_device_map_names_devices_by_any_key() {
    let dir = std::env::temp_dir().join(format!("wiretax-devkey-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let map = dir.join("names.csv");
    std::fs::write(
        &map,
        "mac:02:00:00:00:00:0A,tracker-a\n02:00:00:00:00:0b,tracker-b\nvlan:200,meter\nteid:0x00001001,bearer-a\n",
    )
    .unwrap();
    let map = map.to_str().unwrap();
    let names = |set: &str, key: &str| -> Vec<String> {
        let r = json(&format!("{set}-shared-ip.pcap"), &["--device-key", key, "--device-map", map]);
        let mut v: Vec<String> = devices(&r).iter().map(|d| d["name"].as_str().unwrap_or("-").to_string()).collect();
        v.sort();
        v
    };
    assert_eq!(names("mac", "mac"), ["tracker-a", "tracker-b"]);
    assert_eq!(names("vlan", "vlan"), ["-", "meter"]);
    assert_eq!(names("gtp", "teid"), ["-", "bearer-a"]);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn frames_without_the_key_keep_their_address() {
    // No VLAN tags and no tunnels: the key falls back to the IP address.
    for key in ["vlan", "teid"] {
        let r = json("mac-shared-ip.pcap", &["--device-key", key]);
        let keys: Vec<&str> = devices(&r).iter().map(|d| d["keys"][0].as_str().unwrap()).collect();
        assert_eq!(keys, ["ip:10.79.0.22"], "{key}");
    }
}
