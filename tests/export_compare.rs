//! Tables for analysis read back by an independent reader (pyarrow) equal
//! the JSON report; `wiretax compare` gives the saving the two saved
//! reports give, and `--require-saving` holds a change to it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use serde_json::Value;

/// Checks, in Python with pyarrow, that the Parquet and CSV tables under
/// `dir` hold what `expected` (JSON, written beside them) says.
const CHECK: &str = r#"
import json, sys, glob, os
import pyarrow.parquet as pq
import pyarrow.csv as pc
import pyarrow as pa
root, expected = sys.argv[1], json.load(open(sys.argv[2]))
for name, want in expected.items():
    parquet = sorted(glob.glob(os.path.join(root, "*", name + ".parquet")))
    tables = {os.path.basename(os.path.dirname(p)): pq.read_table(p) for p in parquet}
    for t, table in tables.items():
        csv = pc.read_csv(os.path.join(root, t, name + ".csv"))
        assert csv.num_rows == table.num_rows, (name, t, "csv rows", csv.num_rows, table.num_rows)
        assert csv.column_names == table.column_names, (name, t, "csv columns")
        for col in table.column_names:
            if pa.types.is_integer(table.schema.field(col).type):
                a, b = table[col].to_pylist(), csv[col].to_pylist()
                assert a == b, (name, t, col, a[:5], b[:5])
    got = {
        "flows": tables["flows"].num_rows,
        "exchanges": tables["exchanges"].num_rows,
        "findings": tables["findings"].num_rows if "findings" in tables else 0,
        "flow_wire_bytes": tables["flows"]["wire_bytes"].to_pylist(),
        "exchange_ids": tables["exchanges"]["id"].to_pylist(),
        "exchange_cost": [round(x, 6) for x in tables["exchanges"]["total_cost_bytes"].to_pylist()],
        "finding_ids": sorted(tables["findings"]["id"].to_pylist()) if "findings" in tables else [],
        "finding_savings": sorted(tables["findings"]["saving_bytes_per_day"].to_pylist()) if "findings" in tables else [],
        "bins": tables["time_bins"].num_rows,
        "bin_classes": {c: sum(tables["time_bins"][c].to_pylist()) for c in want["bin_classes"]},
        "radio_bins": tables["radio_bins"].num_rows,
        "promotion_s": round(sum(tables["radio_bins"]["promotion_s"].to_pylist()), 6),
        "inputs": sorted(set(tables["flows"]["input"].to_pylist())),
        "device_wire_bytes": tables["devices"]["wire_bytes"].to_pylist() if "devices" in tables else [],
        "device_charge_per_day": [None if x is None else round(x, 6) for x in tables["devices"]["charge_mah_per_day"].to_pylist()] if "devices" in tables else [],
    }
    for k, v in want.items():
        assert got[k] == v, (name, k, got[k], v)
print("ok")
"#;

#[test]
fn exports_read_back_by_pyarrow_equal_the_json_report() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let captures =
        [("sparse-mqtt-gps", None), ("sparse-https-poll", Some("sparse-https-poll.keylog")), ("coap-observe", None)];
    let mut expected = serde_json::Map::new();
    for (name, keylog) in captures {
        let pcap = cap(&format!("{name}.pcap"));
        let mut a: Vec<std::ffi::OsString> = vec!["analyze".into(), pcap.into(), "--format".into(), "json".into()];
        if let Some(k) = keylog {
            a.push("--keylog".into());
            a.push(cap(k).into());
        }
        a.push("--export".into());
        a.push(d.join("x").into());
        let out = bin().args(&a).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let r: Value = serde_json::from_slice(&out.stdout).unwrap();
        let list = |k: &str| r[k].as_array().cloned().unwrap_or_default();
        let mut finding_ids: Vec<String> =
            list("findings").iter().filter_map(|f| f["id"].as_str().map(str::to_string)).collect();
        finding_ids.sort();
        let mut savings: Vec<u64> =
            list("findings").iter().filter_map(|f| f["saving_per_day"]["bytes"].as_u64()).collect();
        savings.sort();
        let radio_bins = r["radio"]["timeline"]["bins"].as_array().cloned().unwrap_or_default();
        let promotion: f64 = radio_bins.iter().filter_map(|b| b["promotion_s"].as_f64()).sum();
        expected.insert(
            name.to_string(),
            serde_json::json!({
                "flows": list("flows").len(),
                "exchanges": list("exchanges").len(),
                "findings": list("findings").len(),
                "flow_wire_bytes": list("flows").iter().map(|f| f["wire_bytes"].clone()).collect::<Vec<_>>(),
                "exchange_ids": list("exchanges").iter().map(|x| x["id"].clone()).collect::<Vec<_>>(),
                "exchange_cost": list("exchanges").iter().map(|x| (x["total_cost_bytes"].as_f64().unwrap_or(0.0) * 1e6).round() / 1e6).collect::<Vec<_>>(),
                "finding_ids": finding_ids,
                "finding_savings": savings,
                "bins": r["timeline"]["bins"].as_array().map_or(0, |b| b.len()),
                // The time bins add up to the report's ledger.
                "bin_classes": r["totals"]["classes"].clone(),
                "radio_bins": radio_bins.len(),
                "promotion_s": (promotion * 1e6).round() / 1e6,
                "inputs": [name],
                "device_wire_bytes": list("devices").iter().map(|d| d["wire_bytes"].clone()).collect::<Vec<_>>(),
                "device_charge_per_day": list("devices").iter().map(|d| {
                    let day = &d["per_day"];
                    if day["projected"].as_bool().unwrap_or(true) { day["charge_mah"].as_f64().map(|c| (c * 1e6).round() / 1e6) } else { None }
                }).collect::<Vec<_>>(),
            }),
        );
    }
    let want = d.join("expected.json");
    std::fs::write(&want, serde_json::to_vec(&Value::Object(expected)).unwrap()).unwrap();
    let out = std::process::Command::new(&python).args(["-c", CHECK]).arg(d.join("x")).arg(&want).output().unwrap();
    assert!(
        out.status.success(),
        "pyarrow disagrees with the JSON report:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The shipped HTTPS polling capture (a new TLS connection per reading)
/// against the MQTT one, both under NB-IoT with link timing.
const RADIO: [&str; 6] = ["--radio", "nbiot", "--timing", "link", "--battery", "3000mAh"];

fn saved(d: &std::path::Path, name: &str, keylog: bool) -> (std::path::PathBuf, Value) {
    let path = d.join(format!("{name}.json"));
    let mut a: Vec<std::ffi::OsString> = vec!["analyze".into(), cap(&format!("{name}.pcap")).into()];
    if keylog {
        a.extend(["--keylog".into(), cap(&format!("{name}.keylog")).into()]);
    }
    a.extend(RADIO.iter().map(|s| s.into()));
    a.extend(["--format".into(), "json".into(), "-o".into(), path.clone().into()]);
    let out = bin().args(&a).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    (path, v)
}

fn compare(before: &std::ffi::OsStr, after: &std::ffi::OsStr, extra: &[&str]) -> std::process::Output {
    let mut c = bin();
    c.arg("compare").arg(before).arg(after).args(["--keylog"]).arg(cap("sparse-https-poll.keylog"));
    c.args(RADIO).args(extra);
    c.output().unwrap()
}

#[test]
fn compare_gives_the_saving_the_saved_reports_give_and_holds_a_change_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (https_json, https) = saved(d, "sparse-https-poll", true);
    let (mqtt_json, mqtt) = saved(d, "sparse-mqtt-gps", false);
    let day = |r: &Value, k: &str| r["radio"]["per_day"][k].as_f64().unwrap_or(f64::NAN);
    let want_saving = 1.0 - day(&mqtt, "bytes") / day(&https, "bytes");
    let want_charge = 1.0 - day(&mqtt, "charge_mah") / day(&https, "charge_mah");
    // Per message: every byte over the readings (8 each).
    let count =
        |r: &Value, kind: &str| r["exchanges"].as_array().unwrap().iter().filter(|x| x["kind"] == kind).count() as f64;
    let per_message = |r: &Value, kind: &str| r["totals"]["wire_bytes"].as_f64().unwrap_or(0.0) / count(r, kind);
    let (before_msg, after_msg) = (per_message(&https, "http"), per_message(&mqtt, "mqtt"));
    assert!(want_saving > 0.5 && after_msg < before_msg, "the shipped pair: MQTT sends less");

    // From the captures and from the saved reports alike, to the byte.
    let mut outputs = Vec::new();
    for (before, after) in [
        (cap("sparse-https-poll.pcap").into_os_string(), cap("sparse-mqtt-gps.pcap").into_os_string()),
        (https_json.clone().into_os_string(), mqtt_json.clone().into_os_string()),
    ] {
        let out = compare(&before, &after, &["--format", "json"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let c: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(c["schema"], "wiretax-compare/1");
        assert_eq!(c["before"]["unit"], "http POST");
        assert_eq!(c["after"]["unit"], "mqtt PUBLISH");
        let saving = c["per_day_bytes_saving"].as_f64().unwrap();
        assert!((saving - want_saving).abs() < 1e-9, "per-day saving {saving} vs {want_saving}");
        let ch = &c["change"]["per_day"]["charge_mah"];
        assert!((1.0 - ch["ratio"].as_f64().unwrap() - want_charge).abs() < 1e-9);
        let pm = &c["change"]["per_message"]["wire_bytes"];
        assert!((pm["before"].as_f64().unwrap() - before_msg).abs() < 1e-9);
        assert!((pm["after"].as_f64().unwrap() - after_msg).abs() < 1e-9);
        assert!(pm["ratio"].as_f64().unwrap() < 1.0);
        let verdict = c["verdict"].as_str().unwrap();
        assert!(verdict.starts_with("AFTER sends") && verdict.contains("fewer bytes"), "{verdict}");
        let fixed: Vec<&str> = c["findings"]["fixed"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
        assert!(fixed.contains(&"no-tls-resumption"), "{fixed:?}");
        outputs.push(out.stdout);
    }
    assert_eq!(String::from_utf8_lossy(&outputs[0]), String::from_utf8_lossy(&outputs[1]));

    // Swapped, AFTER costs more: the saving is negative.
    let out = compare(&mqtt_json.clone().into_os_string(), &https_json.clone().into_os_string(), &["--format", "json"]);
    let c: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(c["per_day_bytes_saving"].as_f64().unwrap() < 0.0);
    assert!(c["verdict"].as_str().unwrap().contains("more"));

    // --require-saving either side of the saving.
    let pct = want_saving * 100.0;
    let (b, a) = (https_json.into_os_string(), mqtt_json.into_os_string());
    let below = format!("{:.1}%", pct - 0.5);
    let above = format!("{:.1}%", pct + 0.5);
    assert_eq!(compare(&b, &a, &["--require-saving", &below]).status.code(), Some(0));
    let out = compare(&b, &a, &["--require-saving", &above]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("required"));
    // The terminal table names both units and the verdict.
    let out = compare(&b, &a, &["--unit", "http POST /api/v1/+", "--unit", "mqtt PUBLISH fleet/+/gps"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    for word in
        ["Per message", "Per device-day", "Fleet of", "fixed", "8 messages of http POST /api/v1/+", "AFTER sends"]
    {
        assert!(text.contains(word), "no {word:?} in:\n{text}");
    }
}

/// Billed bytes are IP bytes, TCP control frames' link headers left out
/// too (the ledger books those frames whole as `tcp_control`, so wire
/// bytes less its `link` class is more): the report's totals and compare's
/// sides give tshark's sums (`tshark -r CAPTURE -T fields -e ip.len`,
/// summed: 23,032 B for sparse-https-poll, 13,356 B for http-poll-close),
/// and compare's day is the radio model's own billed bytes.
#[test]
fn billed_bytes_are_the_ip_bytes_tshark_counts() {
    let out = bin()
        .arg("compare")
        .arg(cap("sparse-https-poll.pcap"))
        .arg(cap("http-poll-close.pcap"))
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let c: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(c["before"]["billed_bytes"], 23_032);
    assert_eq!(c["after"]["billed_bytes"], 13_356);
    assert_eq!(c["after"]["per_message"]["billed_bytes"].as_f64(), Some(13_356.0 / 15.0));
    let out = bin().arg("analyze").arg(cap("http-poll-close.pcap")).args(["--format", "json"]).output().unwrap();
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["totals"]["billed_bytes"], 13_356);
    assert_eq!(r["radio"]["billed_bytes"], 13_356);
    assert_eq!(c["after"]["per_day"]["billed_bytes"].as_f64(), r["radio"]["per_day"]["billed_bytes"].as_f64());
}
