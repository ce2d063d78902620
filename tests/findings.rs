//! Every finding, on a capture that shows it and on one that does not.

// Helpers of a test may unwrap: a panic there fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use wiretax::analyze::{Options, analyze_file};

fn ids(capture: &str) -> Vec<String> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures").join(capture);
    analyze_file(&p, &Options::new()).unwrap().findings.iter().map(|f| f.id.clone()).collect()
}

fn shows(id: &str, yes: &str, no: &str) {
    assert!(ids(yes).iter().any(|i| i == id), "{yes} should show {id}: {:?}", ids(yes));
    assert!(!ids(no).iter().any(|i| i == id), "{no} should not show {id}: {:?}", ids(no));
}

#[test]
fn http_polling() {
    shows("http-polling", "http-keepalive.pcap", "http-post-batch.pcap");
}

#[test]
fn coap_polling_but_not_observe() {
    shows("coap-polling", "coap-con-get.pcap", "coap-observe.pcap");
}

#[test]
fn short_lived_connections() {
    shows("short-lived-connections", "http-poll-close.pcap", "http-keepalive.pcap");
}

#[test]
fn mqtt_reconnect_per_message() {
    shows("reconnect-per-message", "mqtt-reconnect-per-message.pcap", "mqtt311-qos1.pcap");
}

#[test]
fn no_tls_resumption() {
    shows("no-tls-resumption", "https-tls12-full.pcap", "https-tls12-resumed.pcap");
    shows("no-tls-resumption", "https-tls13-full.pcap", "https-tls13-resumed.pcap");
}

#[test]
fn retry_without_backoff() {
    shows("retry-without-backoff", "http-errors.pcap", "http-keepalive.pcap");
}

#[test]
fn reconnection_storm_but_not_with_jittered_backoff() {
    shows("reconnection-storm", "websocket-storm-fixed.pcap", "websocket-storm-backoff.pcap");
}

#[test]
fn retransmissions() {
    shows("retransmissions", "http-keepalive-lossy.pcap", "http-keepalive.pcap");
    shows("retransmissions", "coap-con-retransmit.pcap", "coap-con-get.pcap");
}

#[test]
fn header_overhead() {
    // POST uploads: http-keepalive's headers are its polling's (that finding removes them).
    shows("header-overhead", "http-post-batch.pcap", "mqtt311-qos1.pcap");
}

fn analyze(capture: &str) -> wiretax::report::InputReport {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures").join(capture);
    let mut opts = Options::new();
    let keylog = p.with_extension("keylog");
    if keylog.exists() {
        let k = wiretax::keylog::KeyLog::load(&keylog).unwrap();
        opts.flow.dissect = std::sync::Arc::new(wiretax::dissect::Config {
            keylog: Some(std::sync::Arc::new(k)),
            ..Default::default()
        });
    }
    analyze_file(&p, &opts).unwrap()
}

/// Exchanges a second, and wire bytes an exchange.
fn rate_and_cost(r: &wiretax::report::InputReport) -> (f64, f64) {
    let n: usize = r.summaries.rows().iter().map(|s| s.count).sum();
    (n as f64 / r.totals.duration_s, r.totals.wire_bytes as f64 / n as f64)
}

/// On a pair of captures that differ by one practice, the first's finding
/// saves per day what the pair measures, brought to the first's message
/// rate: bytes within 15%, charge within 15% or 1% of the day's charge.
fn saving_matches_pair(id: &str, with: &str, without: &str) {
    let (a, b) = (analyze(with), analyze(without));
    let f = a.findings.iter().find(|f| f.id == id).unwrap_or_else(|| panic!("{with}: no {id}"));
    let ((rate_a, cost_a), (rate_b, cost_b)) = (rate_and_cost(&a), rate_and_cost(&b));
    let bytes = (cost_a - cost_b) * rate_a * 86_400.0;
    let got = f.saving_per_day.bytes as f64;
    assert!(
        (got - bytes).abs() <= 0.15 * bytes.abs(),
        "{id} on {with}: saves {got} B a day, the pair measures {bytes}"
    );
    let (ra, rb) = (&a.radio.as_ref().unwrap().per_day, &b.radio.as_ref().unwrap().per_day);
    let (ca, cb) = (ra.charge_mah, rb.charge_mah);
    // A radio on all day costs the same whatever the message rate: only a
    // radio that sleeps costs in proportion to the messages.
    let always_on = ra.radio_on_s > 0.99 * 86_400.0 && rb.radio_on_s > 0.99 * 86_400.0;
    let charge = if always_on { ca - cb } else { ca - cb * rate_a / rate_b };
    let got = f.saving_per_day.charge_mah.unwrap();
    let tolerance = (0.15 * charge.abs()).max(0.01 * ca);
    assert!((got - charge).abs() <= tolerance, "{id} on {with}: saves {got} mAh a day, the pair measures {charge}");
}

#[test]
fn keep_alive_saves_what_the_pair_measures() {
    saving_matches_pair("short-lived-connections", "http-poll-close.pcap", "http-keepalive.pcap");
}

#[test]
fn tls12_resumption_saves_what_the_pair_measures() {
    saving_matches_pair("no-tls-resumption", "https-tls12-full.pcap", "https-tls12-resumed.pcap");
}

#[test]
fn tls13_resumption_saves_what_the_pair_measures() {
    saving_matches_pair("no-tls-resumption", "https-tls13-full.pcap", "https-tls13-resumed.pcap");
}

#[test]
fn observe_saves_what_the_pair_measures() {
    saving_matches_pair("coap-polling", "coap-con-get.pcap", "coap-observe.pcap");
}

#[test]
fn persistent_session_saves_what_the_pair_measures() {
    saving_matches_pair("reconnect-per-message", "mqtt-reconnect-per-message.pcap", "mqtt311-qos0-persistent.pcap");
}

#[test]
fn findings_are_grouped_and_ordered() {
    let r = analyze("websocket-storm-fixed.pcap");
    let mut seen = std::collections::BTreeSet::new();
    for f in &r.findings {
        assert!(seen.insert((f.id.clone(), f.scope.clone())), "{} twice in {}", f.id, f.scope);
        assert!(f.instances >= 1);
    }
    let rank = |s: &str| ["critical", "warning", "info"].iter().position(|x| *x == s).unwrap();
    for w in r.findings.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        assert!(
            rank(&a.severity) < rank(&b.severity)
                || (a.severity == b.severity && a.saving_per_day.bytes >= b.saving_per_day.bytes),
            "{} before {}",
            a.id,
            b.id
        );
    }
}

#[test]
fn a_storm_is_priced_per_event() {
    let r = analyze("websocket-storm-fixed.pcap");
    let f = r.findings.iter().find(|f| f.id == "reconnection-storm").unwrap();
    assert_eq!(f.saving_per_day.bytes, 0);
    // 30 clients, each trying once a burst.
    assert!(f.evidence["clients"].as_u64().unwrap() >= 20, "{}", f.evidence);
    // An event is a burst with refused attempts. tshark: 150 SYNs in 4
    // bursts of 30 (4.834, 5.836, 6.838, 7.840 s:
    //   tshark -r captures/websocket-storm-fixed.pcap -Y 'tcp.flags.syn==1 && tcp.flags.ack==0'
    // ), 90 RSTs, all in the first three bursts (-Y tcp.flags.reset==1); each
    // refused attempt is a SYN (74 B) and a RST (54 B): 11,520 B, of which
    // 11,520 - 180 * 14 = 9,000 B are IP bytes (-T fields -e ip.len, summed).
    assert_eq!(f.evidence["bursts"], 4, "{}", f.evidence);
    assert_eq!(f.evidence["refused_bursts"], 3, "{}", f.evidence);
    assert_eq!(f.evidence["refused_attempts"], 90);
    assert_eq!(f.evidence["refused_bytes"], 11_520);
    let e = f.saving_per_event.as_ref().unwrap();
    assert_eq!((e.bytes, e.billed_bytes), (11_520 / 3, 9_000 / 3), "{e:?}");
}

#[test]
fn uploads_over_tls_are_not_polling() {
    // Without a key log: encrypted POST uploads and an MQTT publisher.
    for c in ["sparse-https-poll.pcap", "mqtt-tls12.pcap"] {
        assert!(!ids(c).iter().any(|i| i == "polling"), "{c}: {:?}", ids(c));
    }
}

#[test]
fn thresholds_are_set_in_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("wiretax.toml");
    std::fs::write(&cfg, "[findings]\nshort_lived_min_connections = 100\n").unwrap();
    let cap = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/http-poll-close.pcap");
    let run = |extra: &[&std::ffi::OsStr]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_wiretax"))
            .args(["analyze", "--format", "json"])
            .args(extra)
            .arg(&cap)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(run(&[]).contains("short-lived-connections"));
    assert!(!run(&["--config".as_ref(), cfg.as_os_str()]).contains("short-lived-connections"));
}

/// Retries are counted over every exchange, not over the first ones a
/// resource keeps for timing. The finding's definition (docs/REPORT.md,
/// `retry_max_gap_s`): a request for the same resource (method, path
/// without its query) made less than 1 s after a 429 or 5xx answer to the
/// one before it. tshark counts 21 after 503 and 46 after 429 on
/// http-errors (one request a connection):
///   tshark -r captures/http-errors.pcap -d tcp.port==80,http -Y http -T fields \
///     -e frame.time_epoch -e tcp.stream -e http.request.method -e http.request.uri -e http.response.code
/// grouped by method and path, each request against the answer to the one
/// before it. Those 67 connections are 75,743 of the capture's 98,762 wire
/// bytes (tshark -e tcp.stream -e frame.len, summed): the saving is that
/// share of the day, within 10% (the day is projected from its cycles).
#[test]
fn retries_are_counted_over_every_exchange() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/http-errors.pcap");
    let mut reports = Vec::new();
    for (jobs, max_exchanges) in [(1, 100_000), (1, 1), (3, 100_000)] {
        let mut opts = Options::new();
        opts.jobs = jobs;
        opts.max_exchanges = max_exchanges;
        reports.push(analyze_file(&p, &opts).unwrap());
    }
    let found: Vec<&wiretax::findings::Finding> =
        reports.iter().map(|r| r.findings.iter().find(|f| f.id == "retry-without-backoff").unwrap()).collect();
    let f = found[0];
    assert_eq!(f.evidence["retries"], 67, "{}", f.evidence);
    assert_eq!(f.evidence["after_status"], serde_json::json!({"429": 46, "503": 21}));
    let day = reports[0].radio.as_ref().unwrap().per_day.bytes as f64;
    let want = 75_743.0 / 98_762.0 * day;
    let got = f.saving_per_day.bytes as f64;
    assert!((got - want).abs() <= 0.1 * want, "saves {got} B a day, the retries' connections {want}");
    // Neither the listing nor the number of jobs changes it.
    for other in &found[1..] {
        assert_eq!(other.evidence, f.evidence);
        assert_eq!(other.saving_per_day.bytes, f.saving_per_day.bytes);
    }
}
