//! The list caps (`--max-flows`, `--max-exchanges`) limit what is listed,
//! never what is computed: totals, exchange summaries, protocol statistics
//! the radio model and the findings are the same with caps of 1 and caps
//! above the totals.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::shipped_captures;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn report(cap: &Path, caps: &str) -> Value {
    let keylog = cap.with_extension("keylog");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wiretax"));
    cmd.args(["analyze", "--format", "json", "--jobs", "1", "--max-flows", caps, "--max-exchanges", caps]).arg(cap);
    if keylog.exists() {
        cmd.arg("--keylog").arg(&keylog);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Everything but the lists themselves (and what says how long they are),
/// and the chart table drawn from the listed exchanges (`exchange_costs`:
/// docs/REPORT.md says so). `ledger_by_app` is over every flow.
fn computed(mut r: Value) -> Value {
    let o = r.as_object_mut().unwrap();
    for list in ["flows", "exchanges", "inputs", "exchange_costs"] {
        o.remove(list);
    }
    if let Some(radio) = o.get_mut("radio").and_then(Value::as_object_mut) {
        radio.remove("per_flow");
        radio.remove("per_exchange");
    }
    r
}

#[test]
fn caps_of_one_and_caps_above_the_totals_compute_the_same() {
    for cap in shipped_captures() {
        let one = report(&cap, "1");
        let all = report(&cap, "1000000");
        assert!(one["flows"].as_array().unwrap().len() <= 1);
        assert!(one["exchanges"].as_array().unwrap().len() <= 1);
        assert_eq!(computed(one), computed(all), "{}", cap.display());
    }
}
