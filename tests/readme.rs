//! README's samples are what the binary prints today: the table's top,
//! `compare`'s table (written by scripts/make-reports) and `whatif`'s.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

/// Runs wiretax from the project's root (the samples name captures by
/// their relative paths); its standard output.
fn run(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_wiretax"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap()
}

/// The first fenced block after the line `after`, without its fences.
fn block_after(text: &str, after: &str) -> String {
    let rest = text.split_once(after).unwrap_or_else(|| panic!("README has no {after:?}")).1;
    let body = rest.split_once("```\n").unwrap().1;
    body.split_once("```").unwrap().0.to_string()
}

#[test]
fn the_sample_table_is_the_top_of_what_analyze_prints() {
    let sample = block_after(&readme(), "## A sample");
    let table = run(&["analyze", "captures/https-tls12-full.pcap"]);
    assert!(table.starts_with(&sample), "README's sample is stale: run\n{table}");
}

#[test]
fn the_compare_sample_is_what_compare_prints() {
    // As scripts/make-reports writes it: the class-by-class table left out.
    let table = run(&[
        "compare",
        "captures/sparse-https-poll.pcap",
        "captures/sparse-mqtt-gps.pcap",
        "--keylog",
        "captures/sparse-https-poll.keylog",
        "--radio",
        "nbiot",
        "--timing",
        "link",
        "--battery",
        "3000mAh",
        "--sleep-current",
        "5uA",
        "--devices",
        "5000",
        "--price-per-mb",
        "0.01",
    ]);
    let parts: Vec<&str> = table.split("\n\n").filter(|p| !p.starts_with("The byte ledger of one message")).collect();
    let want = format!(
        "$ wiretax compare captures/sparse-https-poll.pcap captures/sparse-mqtt-gps.pcap ...\n{}",
        parts.join("\n\n")
    );
    let readme = readme();
    let sample = block_after(&readme, "<!-- compare:begin -->");
    assert_eq!(sample, want, "README's compare sample is stale: run scripts/make-reports");
}

#[test]
fn the_whatif_sample_is_what_whatif_prints() {
    let sample = block_after(&readme(), "what `whatif` finds):");
    let table = run(&[
        "whatif",
        "captures/sparse-https-poll.pcap",
        "--keylog",
        "captures/sparse-https-poll.keylog",
        "--as",
        "https-resumed",
        "--as",
        "mqtt",
        "--qos",
        "1",
        "--as",
        "coap-non",
        "--radio",
        "nbiot",
        "--battery",
        "3000mAh",
        "--devices",
        "5000",
        "--price-per-mb",
        "0.01",
    ]);
    // The sample is the command's two lines, then the scenarios' table.
    let rows: Vec<&str> = sample.lines().skip_while(|l| !l.starts_with('┌')).collect();
    assert!(!rows.is_empty());
    assert!(table.contains(&(rows.join("\n") + "\n")), "README's whatif sample is stale:\n{table}");
}
