//! `wiretax compare`'s figures against their measured counterparts: the
//! captures' tshark truth (frames, wire bytes, the readings' period) and
//! `analyze`'s own report of each side under the same options.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use serde_json::Value;
use std::ffi::OsString;

/// Runs wiretax with `args`; its output.
fn wiretax(args: &[OsString]) -> std::process::Output {
    bin().args(args).output().unwrap()
}

fn os(v: &[&str]) -> Vec<OsString> {
    v.iter().map(OsString::from).collect()
}

/// `compare BEFORE AFTER --format json EXTRA...`: its JSON, stderr and status.
fn compare_json(before: &OsString, after: &OsString, extra: &[OsString]) -> (Value, String, Option<i32>) {
    let mut a = vec!["compare".into(), before.clone(), after.clone(), "--format".into(), "json".into()];
    a.extend(extra.iter().cloned());
    let out = wiretax(&a);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (v, stderr, out.status.code())
}

/// `analyze NAME.pcap [--keylog NAME.keylog] EXTRA... --format json`.
fn analyze_json(name: &str, extra: &[OsString]) -> Value {
    let mut a: Vec<OsString> = vec!["analyze".into(), cap(&format!("{name}.pcap")).into()];
    if cap(&format!("{name}.keylog")).exists() {
        a.extend(["--keylog".into(), cap(&format!("{name}.keylog")).into()]);
    }
    a.extend(extra.iter().cloned());
    a.extend(os(&["--format", "json"]));
    let out = wiretax(&a);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn pcap(name: &str) -> OsString {
    cap(&format!("{name}.pcap")).into()
}

fn keylog(name: &str) -> Vec<OsString> {
    vec!["--keylog".into(), cap(&format!("{name}.keylog")).into()]
}

fn truth(name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(cap(&format!("{name}.truth.json"))).unwrap()).unwrap()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// A side without a per-day projection (http-keepalive-lossy: 11 bursts, no
/// repeating cycle) has no per-day figures, says why, claims no per-day
/// change and fails `--require-saving` (was: "100% fewer bytes a day (23.24
/// MB to 0 B)", exit 0). With a projection on both sides all is there.
#[test]
fn a_side_without_a_day_projection_has_no_day_figures_and_fails_require_saving() {
    let (c, stderr, code) =
        compare_json(&pcap("http-keepalive"), &pcap("http-keepalive-lossy"), &os(&["--require-saving", "99%"]));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("no per-day projection to check --require-saving against"), "{stderr}");
    assert!(c["after"]["per_day"].is_null(), "{}", c["after"]["per_day"]);
    assert!(c["after"]["fleet_year"].is_null());
    assert!(c["change"]["per_day"].as_object().unwrap().is_empty());
    assert!(c["per_day_bytes_saving"].is_null());
    let notes = c["after"]["notes"].to_string();
    assert!(notes.contains("basis none") && notes.contains("--interval"), "{notes}");
    let verdict = c["verdict"].as_str().unwrap();
    assert!(!verdict.contains("a day ("), "{verdict}");
    assert!(verdict.contains("no per-day comparison (AFTER"), "{verdict}");
    // The analyze report says the same: no projection.
    assert_eq!(analyze_json("http-keepalive-lossy", &[])["radio"]["per_day"]["projected"], false);

    // Both projected (http-poll-close, http-keepalive): per-day figures, the
    // saving checked against analyze's days.
    let (c, stderr, code) =
        compare_json(&pcap("http-poll-close"), &pcap("http-keepalive"), &os(&["--require-saving", "1%"]));
    assert_eq!(code, Some(0), "{stderr}");
    let day = |n: &str| f(&analyze_json(n, &[])["radio"]["per_day"]["bytes"]);
    let want = 1.0 - day("http-keepalive") / day("http-poll-close");
    assert!((f(&c["per_day_bytes_saving"]) - want).abs() < 1e-12);
    assert!(c["verdict"].as_str().unwrap().contains("a day ("));
}

/// `--interval` re-times a side without a steady cycle, as analyze's does
/// (was refused: "unexpected argument").
#[test]
fn interval_gives_a_side_a_day_as_analyze_interval_does() {
    let (c, stderr, code) =
        compare_json(&pcap("http-keepalive"), &pcap("http-keepalive-lossy"), &os(&["--interval", "10s"]));
    assert_eq!(code, Some(0), "{stderr}");
    for (side, name) in [("before", "http-keepalive"), ("after", "http-keepalive-lossy")] {
        let a = analyze_json(name, &os(&["--interval", "10s"]));
        assert_eq!(a["radio"]["per_day"]["basis"], "interval");
        assert_eq!(f(&c[side]["per_day"]["wire_bytes"]), f(&a["radio"]["per_day"]["bytes"]), "{name}");
        assert_eq!(f(&c[side]["per_day"]["charge_mah"]), f(&a["radio"]["per_day"]["charge_mah"]), "{name}");
    }
    // A saved side keeps its own projection, and says so.
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("lossy.json");
    let out = wiretax(&[
        "analyze".into(),
        pcap("http-keepalive-lossy"),
        "--format".into(),
        "json".into(),
        "-o".into(),
        saved.clone().into(),
    ]);
    assert!(out.status.success());
    let (c, stderr, _) = compare_json(&pcap("http-keepalive"), &saved.into(), &os(&["--interval", "10s"]));
    assert!(stderr.contains("does not re-time AFTER"), "{stderr}");
    assert!(c["after"]["per_day"].is_null());
}

/// Billed bytes are IP bytes: wire bytes less each frame's 14-byte
/// Ethernet header (tshark's frame count). The ledger less its `link` class
/// counted TCP control frames' headers (http-poll-close: 15,036 for 13,356);
/// a UDP capture (sparse-coap-non) has no such frames and was right.
#[test]
fn billed_bytes_are_wire_bytes_less_every_link_header() {
    for (before, after) in [("http-poll-close", "sparse-coap-non"), ("sparse-https-poll", "sparse-mqtt-gps")] {
        let mut extra = keylog("sparse-https-poll");
        extra.extend(os(&["--radio", "nbiot"]));
        let (c, stderr, code) = compare_json(&pcap(before), &pcap(after), &extra);
        assert_eq!(code, Some(0), "{stderr}");
        for (side, name) in [("before", before), ("after", after)] {
            let t = truth(name);
            assert_eq!(t["link_type"], "EN10MB");
            let want = t["wire_bytes"].as_u64().unwrap() - 14 * t["frames"].as_u64().unwrap();
            let s = &c[side];
            assert_eq!(s["billed_bytes"].as_u64(), Some(want), "{name}");
            assert_eq!(s["billed_basis"], "counted");
            let messages = s["messages"].as_f64().unwrap();
            assert!((f(&s["per_message"]["billed_bytes"]) - want as f64 / messages).abs() < 1e-9, "{name}");
            // A day's billed bytes are the projection's own.
            let a = analyze_json(name, &os(&["--radio", "nbiot"]));
            assert_eq!(f(&s["per_day"]["billed_bytes"]), f(&a["radio"]["per_day"]["billed_bytes"]), "{name}");
        }
    }
    // Without a radio model the count is the same.
    let (c, _, _) = compare_json(&pcap("http-poll-close"), &pcap("http-keepalive"), &os(&["--no-radio"]));
    assert_eq!(
        (c["before"]["billed_bytes"].as_u64(), c["before"]["billed_basis"].as_str()),
        (Some(13_356), Some("counted"))
    );
    // A report saved before totals counted them, without a radio model:
    // the ledger's estimate, said to be one.
    let dir = tempfile::tempdir().unwrap();
    let mut old = analyze_json("http-poll-close", &os(&["--no-radio"]));
    old["totals"].as_object_mut().unwrap().remove("billed_bytes");
    let saved = dir.path().join("old.json");
    std::fs::write(&saved, old.to_string()).unwrap();
    let out = wiretax(&["compare".into(), saved.clone().into(), pcap("http-keepalive"), "--no-radio".into()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("billed bytes (IP, estimate: upper bound)") && text.contains("an upper bound"), "{text}");
    let (c, _, _) = compare_json(&saved.into(), &pcap("http-keepalive"), &os(&["--no-radio"]));
    assert_eq!(c["before"]["billed_basis"], "estimate");
}

/// Fleet cost prices what analyze prices (`--bill`, IP bytes by default):
/// sparse-https-poll's year for 5,000 devices at 0.01 a MB is analyze's
/// 226,980.36 EUR (was 243,536.76: wire bytes).
#[test]
fn fleet_cost_is_analyze_fleet_cost() {
    for bill in ["ip", "link"] {
        let opts = os(&["--devices", "5000", "--price-per-mb", "0.01", "--bill", bill]);
        let mut extra = keylog("sparse-https-poll");
        extra.extend(opts.iter().cloned());
        let (c, stderr, code) = compare_json(&pcap("sparse-https-poll"), &pcap("sparse-mqtt-gps"), &extra);
        assert_eq!(code, Some(0), "{stderr}");
        for (side, name) in [("before", "sparse-https-poll"), ("after", "sparse-mqtt-gps")] {
            let a = analyze_json(name, &opts);
            let want = &a["radio"]["cost"]["fleet_year"];
            assert_eq!(c[side]["fleet_year"]["bytes"], want["bytes"], "{name} --bill {bill}");
            assert!((f(&c[side]["fleet_year"]["cost"]) - f(&want["cost"])).abs() < 1e-6, "{name} --bill {bill}");
        }
        if bill == "ip" {
            assert!((f(&c["before"]["fleet_year"]["cost"]) - 226_980.36).abs() < 0.005);
        }
    }
}

/// `--binary-units`: the fleet row named MiB holds mebibytes (analyze's
/// `mebibytes`), the JSON has them, and byte cells are in KiB, MiB, GiB
/// (was: decimal megabytes under "MiB").
#[test]
fn binary_units_write_mebibytes_under_mib() {
    let opts = os(&["--devices", "5000", "--price-per-mb", "0.01", "--binary-units"]);
    let mut extra = keylog("sparse-https-poll");
    extra.extend(opts.iter().cloned());
    let (c, stderr, code) = compare_json(&pcap("sparse-https-poll"), &pcap("sparse-mqtt-gps"), &extra);
    assert_eq!(code, Some(0), "{stderr}");
    let want = f(&analyze_json("sparse-https-poll", &opts)["radio"]["cost"]["fleet_year"]["mebibytes"]);
    assert!((f(&c["change"]["fleet_year"]["mebibytes"]["before"]) - want).abs() < 1e-6);
    assert_eq!(c["unit"], "MiB");
    let mut a: Vec<OsString> = vec!["compare".into(), pcap("sparse-https-poll"), pcap("sparse-mqtt-gps")];
    a.extend(extra);
    let out = wiretax(&a);
    let text = String::from_utf8_lossy(&out.stdout);
    let row = text.lines().find(|l| l.starts_with("│ MiB ")).unwrap_or_default();
    assert!(row.contains(&format!("{want:.1}")), "want {want:.1} in {row:?}:\n{text}");
    assert!(text.contains("KiB") && !text.contains(" kB") && !text.contains(" MB "), "{text}");
    // Without it, decimal units throughout.
    let (c, _, _) = compare_json(&pcap("sparse-https-poll"), &pcap("sparse-mqtt-gps"), &keylog("sparse-https-poll"));
    assert!(c["change"]["fleet_year"].get("mebibytes").is_none());
}

/// Messages a day are the unit's messages per cycle times the cycles a day:
/// both sparse captures publish every 20 s (their truth's readings, tshark),
/// 4,320 a day; the MQTT one's connect and disconnect are not multiplied
/// (was 3,106), nor for a side of several inputs.
#[test]
fn messages_a_day_are_messages_per_cycle_times_cycles() {
    let mut extra = keylog("sparse-https-poll");
    extra.extend(os(&["--radio", "nbiot"]));
    let (c, stderr, code) = compare_json(&pcap("sparse-https-poll"), &pcap("sparse-mqtt-gps"), &extra);
    assert_eq!(code, Some(0), "{stderr}");
    for (side, name) in [("before", "sparse-https-poll"), ("after", "sparse-mqtt-gps")] {
        let readings = &truth(name)["readings"];
        let want = 86_400.0 / f(&readings["interval_s"]);
        assert!((f(&c[side]["per_day"]["messages"]) - want).abs() < 1e-6, "{name}: {}", c[side]["per_day"]);
    }
    // A side of two inputs (one device each): the mean of their days.
    let dir = tempfile::tempdir().unwrap();
    for n in ["a", "b"] {
        std::fs::copy(cap("sparse-mqtt-gps.pcap"), dir.path().join(format!("{n}.pcap"))).unwrap();
    }
    let (c, stderr, code) = compare_json(&dir.path().as_os_str().into(), &pcap("sparse-mqtt-gps"), &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(c["before"]["messages"], 16);
    assert!((f(&c["before"]["per_day"]["messages"]) - 4320.0).abs() < 1e-6, "{}", c["before"]["per_day"]);
    assert!((f(&c["after"]["per_day"]["messages"]) - 4320.0).abs() < 1e-6);
}

/// A saved side modelled on NB-IoT against a capture on LTE: the change in
/// charge is the radio's as much as the traffic's; said in the notes, on
/// stderr and in the verdict (was: "7971% more radio charge", unqualified).
#[test]
fn different_radio_profiles_are_said() {
    let dir = tempfile::tempdir().unwrap();
    let nb = dir.path().join("nb.json");
    let out = wiretax(&[
        "analyze".into(),
        pcap("sparse-mqtt-gps"),
        "--radio".into(),
        "nbiot".into(),
        "--format".into(),
        "json".into(),
        "-o".into(),
        nb.clone().into(),
    ]);
    assert!(out.status.success());
    let (c, stderr, code) = compare_json(&nb.clone().into(), &pcap("sparse-mqtt-gps"), &[]);
    assert_eq!(code, Some(0));
    assert_eq!(c["before"]["radio_profile"], "nbiot");
    assert_eq!(c["after"]["radio_profile"], "lte");
    assert!(c["notes"].to_string().contains("different radio profiles"), "{}", c["notes"]);
    assert!(stderr.contains("different radio profiles"), "{stderr}");
    assert!(c["verdict"].as_str().unwrap().contains("different radio profile (nbiot to lte)"), "{}", c["verdict"]);
    // The same profile on both sides: nothing to say.
    let (c, stderr, _) = compare_json(&nb.into(), &pcap("sparse-mqtt-gps"), &os(&["--radio", "nbiot"]));
    assert!(c.get("notes").is_none() && !stderr.contains("different"), "{stderr}");
    assert!(!c["verdict"].as_str().unwrap().contains("different"));
}

/// `--keylog` may be given several times, as analyze takes it: each side's
/// TLS is decrypted with its own key log (was: "cannot be used multiple times").
#[test]
fn keylog_may_be_given_several_times() {
    let mut extra = keylog("https-tls12-full");
    extra.extend(keylog("https-tls12-resumed"));
    let (c, stderr, code) = compare_json(&pcap("https-tls12-full"), &pcap("https-tls12-resumed"), &extra);
    assert_eq!(code, Some(0), "{stderr}");
    for (side, name) in [("before", "https-tls12-full"), ("after", "https-tls12-resumed")] {
        let unit = c[side]["unit"].as_str().unwrap();
        assert!(unit.starts_with("http "), "{name} decrypted: {unit}");
        let a = analyze_json(name, &[]);
        let http = a["exchanges"].as_array().unwrap().iter().filter(|x| x["kind"] == "http").count();
        assert_eq!(c[side]["messages"].as_u64(), Some(http as u64), "{name}");
    }
    // One key log: the other side stays encrypted.
    let (c, _, code) =
        compare_json(&pcap("https-tls12-full"), &pcap("https-tls12-resumed"), &keylog("https-tls12-full"));
    assert_eq!(code, Some(0));
    assert!(c["before"]["unit"].as_str().unwrap().starts_with("http "));
    assert!(c["after"]["unit"].as_str().unwrap().starts_with("tls"), "{}", c["after"]["unit"]);
}

/// `--require-saving`: `30%` or a fraction in [0, 1]; a bare 30 (was read as
/// 3,000%), a negative or more than 100% is refused with status 2 and how
/// to write it.
#[test]
fn require_saving_takes_a_percentage_or_a_fraction() {
    let (b, a) = (pcap("http-poll-close"), pcap("http-keepalive"));
    let saving = f(&compare_json(&b, &a, &[]).0["per_day_bytes_saving"]);
    assert!(saving > 0.3 && saving < 0.99, "{saving}");
    for ok in ["30%", "0.3"] {
        assert_eq!(compare_json(&b, &a, &os(&["--require-saving", ok])).2, Some(0), "{ok}");
    }
    assert_eq!(compare_json(&b, &a, &os(&["--require-saving", "99%"])).2, Some(1));
    for bad in ["30", "-10%", "150%", "-0.2", "lots"] {
        let (_, stderr, code) = compare_json(&b, &a, &os(&[&format!("--require-saving={bad}")]));
        assert_eq!(code, Some(2), "{bad}: {stderr}");
        assert!(stderr.contains("30%") && stderr.contains("0.3"), "{bad}: {stderr}");
    }
}

/// Exit statuses as README documents them: a side that cannot be read at
/// all leaves no comparison (1, as analyze's unreadable input; was 2, bad
/// arguments); a side with some unreadable inputs still compares (3); a
/// saved report that cannot be read is no report (1).
#[test]
fn exit_statuses_follow_analyze() {
    let dir = tempfile::tempdir().unwrap();
    let missing: OsString = dir.path().join("missing.pcap").into();
    let good = pcap("http-keepalive");
    assert_eq!(compare_json(&missing, &good, &[]).2, Some(1));
    assert_eq!(compare_json(&good, &missing, &[]).2, Some(1));
    assert_eq!(wiretax(&["analyze".into(), missing.clone()]).status.code(), Some(1));
    assert_eq!(compare_json(&good, &good, &[]).2, Some(0));
    assert_eq!(compare_json(&good, &good, &os(&["--radio", "no-such-radio"])).2, Some(2));
    // Part of a side unreadable: compared, status 3.
    let side = dir.path().join("side");
    std::fs::create_dir(&side).unwrap();
    std::fs::copy(cap("http-keepalive.pcap"), side.join("a.pcap")).unwrap();
    std::fs::write(side.join("b.pcap"), b"not a capture").unwrap();
    let (c, stderr, code) = compare_json(&side.clone().into(), &good, &[]);
    assert_eq!(code, Some(3), "{stderr}");
    assert_eq!(c["schema"], "wiretax-compare/1");
    assert_eq!(wiretax(&["analyze".into(), side.into()]).status.code(), Some(3));
    // `report`: a missing file and a file that is not a report.
    let not_a_report = dir.path().join("x.json");
    std::fs::write(&not_a_report, "{}").unwrap();
    for p in [dir.path().join("missing.json"), not_a_report] {
        assert_eq!(wiretax(&["report".into(), p.into()]).status.code(), Some(1));
    }
}

/// A truncated capture is said by `compare` (stderr and the side's notes)
/// and by `whatif` (stderr), as `analyze` says it: its figures cover only
/// the frames before the damage.
#[test]
fn a_truncated_side_is_said() {
    let dir = tempfile::tempdir().unwrap();
    let whole = std::fs::read(cap("http-keepalive.pcap")).unwrap();
    let cut = dir.path().join("cut.pcap");
    std::fs::write(&cut, &whole[..3000]).unwrap();
    let (v, stderr, code) = compare_json(&cap("http-keepalive.pcap").into(), &cut.clone().into(), &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("truncated") && stderr.contains("frames before it"), "{stderr}");
    let notes = v["after"]["notes"].to_string();
    assert!(notes.contains("truncated") && notes.contains("frames before"), "{notes}");
    assert!(!v["before"]["notes"].to_string().contains("truncated"));
    let out = wiretax(&[OsString::from("whatif"), cut.into(), "--as".into(), "mqtt".into()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.contains("truncated"), "{stderr}");
}
