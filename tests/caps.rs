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
/// and the rows of `exchange_costs` per message, which are of the listed
/// exchanges (`listed_only`; docs/REPORT.md says so): its rows per kind are
/// over every exchange. `ledger_by_app` is over every flow.
fn computed(mut r: Value) -> Value {
    let o = r.as_object_mut().unwrap();
    for list in ["flows", "exchanges", "inputs"] {
        o.remove(list);
    }
    if let Some(costs) = o.get_mut("exchange_costs").and_then(Value::as_array_mut) {
        costs.retain(|c| c["listed_only"] == false);
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

/// A kind's row of `exchange_costs` (kept over every exchange as it comes)
/// equals the means worked out here from the whole list of its exchanges,
/// part by part, as docs/REPORT.md defines them.
#[test]
fn exchange_costs_per_kind_match_the_listed_exchanges_when_all_are_listed() {
    let class = |x: &Value, c: &str| x["classes"][c].as_f64().unwrap();
    for cap in shipped_captures() {
        let all = report(&cap, "1000000");
        let exchanges = all["exchanges"].as_array().unwrap();
        for row in all["exchange_costs"].as_array().unwrap().iter().filter(|c| c["listed_only"] == false) {
            let of_kind: Vec<&Value> = exchanges.iter().filter(|x| x["kind"] == row["kind"]).collect();
            assert_eq!(row["count"].as_u64().unwrap(), of_kind.len() as u64, "{}", cap.display());
            let n = of_kind.len() as f64;
            let mean = |f: &dyn Fn(&Value) -> f64| of_kind.iter().map(|x| f(x)).sum::<f64>() / n;
            let expected = [
                ("payload_bytes", mean(&|x| class(x, "payload"))),
                (
                    "header_bytes",
                    mean(&|x| class(x, "link") + class(x, "network") + class(x, "transport") + class(x, "app_header")),
                ),
                ("tls_bytes", mean(&|x| class(x, "tls_handshake") + class(x, "tls_record_overhead"))),
                ("control_bytes", mean(&|x| class(x, "tcp_control") + class(x, "app_control"))),
                ("retransmission_bytes", mean(&|x| class(x, "retransmission"))),
                ("setup_share_bytes", mean(&|x| x["setup_share_bytes"].as_f64().unwrap())),
                ("total_bytes", mean(&|x| x["total_cost_bytes"].as_f64().unwrap())),
            ];
            for (part, want) in expected {
                let got = row["mean"][part].as_f64().unwrap();
                assert!(
                    (got - want).abs() <= 1e-5 * want.abs().max(1.0),
                    "{} {} {part}: {got} against {want}",
                    cap.display(),
                    row["kind"]
                );
            }
        }
    }
}
