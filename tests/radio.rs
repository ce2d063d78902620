//! The radio model end to end, on the shipped captures.

// Helpers of a test may unwrap: a panic there fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use std::process::Command;

fn report(capture: &str, args: &[&str]) -> Value {
    let cap = format!("{}/captures/{capture}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(env!("CARGO_BIN_EXE_wiretax"))
        .args(["analyze", &cap, "--format", "json"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A reading over a new TCP+TLS connection each time costs at least three
/// times the radio energy of a reading over one open MQTT-over-TLS
/// connection, on NB-IoT re-timed to its link; the report shows why.
#[test]
fn nbiot_reading_over_new_tls_connections_costs_three_times_mqtt() {
    let nb = ["--radio", "nbiot", "--timing", "link"];
    let https = report("https-tls12-full.pcap", &nb);
    let mqtt = report("mqtt-tls12.pcap", &nb);
    // 12 HTTPS polls; 15 MQTT publishes (captures/README).
    let (https_readings, mqtt_readings) = (12.0, 15.0);
    let per = |r: &Value, n: f64, k: &str| r["radio"][k].as_f64().unwrap() / n;
    let (e_https, e_mqtt) = (per(&https, https_readings, "energy_j"), per(&mqtt, mqtt_readings, "energy_j"));
    assert!(e_https >= 3.0 * e_mqtt, "{e_https} J vs {e_mqtt} J per reading");
    assert_eq!(https["radio"]["timing"], "link");
    // Why: round trips and bytes per reading.
    let rt = |r: &Value, n: f64| r["radio"]["link"]["round_trips"].as_f64().unwrap() / n;
    assert!(rt(&https, https_readings) > 3.0 * rt(&mqtt, mqtt_readings));
    assert!(per(&https, https_readings, "bytes") > 3.0 * per(&mqtt, mqtt_readings, "bytes"));
    // Every exchange carries its share of energy, split into promotion, transfer and tail.
    let xs = https["radio"]["per_exchange"].as_array().unwrap();
    assert_eq!(xs.len(), 12);
    for x in xs {
        let s: f64 = ["promotion_share", "transfer_share", "tail_share"].iter().map(|k| x[*k].as_f64().unwrap()).sum();
        // Shares are reported to six significant digits.
        assert!((s - 1.0).abs() < 1e-5 || x["energy_j"].as_f64().unwrap() == 0.0);
    }
}

#[test]
fn captured_timing_is_the_default_and_said() {
    let r = report("sparse-mqtt-gps.pcap", &[]);
    assert_eq!(r["radio"]["profile"], "lte");
    assert_eq!(r["radio"]["timing"], "captured");
    assert!(r["radio"]["per_day"]["charge_mah"].as_f64().unwrap() > 0.0);
}

#[test]
fn battery_life_from_battery_and_sleep_current() {
    let r = report("sparse-mqtt-gps.pcap", &["--battery", "3000mAh", "--sleep-current", "5uA"]);
    let days = r["radio"]["battery_life_days"].as_f64().unwrap();
    let per_day = r["radio"]["per_day"]["charge_mah"].as_f64().unwrap();
    let sleep = 5e-3 * 24.0;
    assert!((days - 3000.0 / (per_day + sleep)).abs() / days < 0.05, "{days} days vs {per_day} mAh/day");
}
