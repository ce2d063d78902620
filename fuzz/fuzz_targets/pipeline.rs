//! The whole pipeline, capture file bytes to the JSON report, as
//! `wiretax --format json` runs it on a file.
//! Checks: no panic, and the conservation law: the ledger classes add up
//! to the wire bytes, in total and per listed flow, and the report says no
//! `notes.conservation_error`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn class_sum(classes: &Value) -> u64 {
    classes.as_object().map_or(0, |m| m.values().filter_map(Value::as_u64).sum())
}

fuzz_target!(|data: &[u8]| {
    let Ok(json) = wiretax::fuzzing::analyze_bytes(data) else { return };
    let report: Value = serde_json::from_str(&json).expect("the report is JSON");
    let totals = &report["totals"];
    let wire = totals["wire_bytes"].as_u64().expect("totals.wire_bytes");
    assert_eq!(class_sum(&totals["classes"]), wire, "totals: {totals}");
    for input in report["inputs"].as_array().expect("inputs") {
        assert!(input["notes"].get("conservation_error").is_none(), "{}", input["notes"]);
    }
    for flow in report["flows"].as_array().expect("flows") {
        assert_eq!(class_sum(&flow["classes"]), flow["wire_bytes"].as_u64().expect("wire_bytes"), "flow {flow}");
    }
});
