//! The HTTP findings (src/findings/http.rs), each on a capture that shows
//! it and one that does not, and their savings against a measured
//! counterpart. Captures of tests/data/findings/ are made by
//! scripts/make-http-finding-captures (curl and nginx).

// Helpers of a test may unwrap: a panic there fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use wiretax::analyze::{Options, analyze_file};
use wiretax::findings::{Finding, Thresholds};
use wiretax::report::InputReport;

const IDS: [&str; 7] = [
    "http-errors",
    "duplicate-content",
    "uncompressed-text",
    "oversized-payload",
    "tiny-chunks",
    "unbatched-uploads",
    "unbatched-uploads",
];

fn path(capture: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shipped = root.join("captures").join(capture);
    if shipped.exists() { shipped } else { root.join("tests/data/findings").join(capture) }
}

fn analyze_with(capture: &str, keylog: bool, findings: Thresholds) -> InputReport {
    let p = path(capture);
    let mut opts = Options::new();
    opts.findings = findings;
    let k = p.with_extension("keylog");
    if keylog && k.exists() {
        let k = wiretax::keylog::KeyLog::load(&k).unwrap();
        opts.flow.dissect = std::sync::Arc::new(wiretax::dissect::Config {
            keylog: Some(std::sync::Arc::new(k)),
            ..Default::default()
        });
    }
    analyze_file(&p, &opts).unwrap()
}

fn analyze(capture: &str) -> InputReport {
    analyze_with(capture, false, Thresholds::default())
}

fn find<'a>(r: &'a InputReport, id: &str) -> Option<&'a Finding> {
    r.findings.iter().find(|f| f.id == id)
}

fn shows(id: &str, yes: &str, no: &str) -> Finding {
    let (a, b) = (analyze(yes), analyze(no));
    let ids = |r: &InputReport| r.findings.iter().map(|f| f.id.clone()).collect::<Vec<_>>();
    assert!(find(&b, id).is_none(), "{no} should not show {id}: {:?}", ids(&b));
    let f = find(&a, id).unwrap_or_else(|| panic!("{yes} should show {id}: {:?}", ids(&a))).clone();
    assert!(!f.recommendation.is_empty() && f.instances > 0 && f.counterfactual.is_some(), "{f:?}");
    f
}

fn num(v: &Value, k: &str) -> u64 {
    v.get(k).and_then(Value::as_u64).unwrap_or_else(|| panic!("{k} in {v}"))
}

/// Wire bytes a day of the capture, as its radio model projects it.
fn day_bytes(r: &InputReport) -> f64 {
    r.radio.as_ref().unwrap().per_day.bytes as f64
}

#[test]
fn http_errors_summarise_status_by_code_and_resource() {
    let f = shows("http-errors", "http-errors.pcap", "http-keepalive.pcap");
    let by = f.evidence.get("by_status").unwrap();
    assert_eq!(num(by, "404"), 12, "{by}");
    assert_eq!(num(by, "503"), 24, "{by}");
    assert_eq!(num(by, "429"), 46, "{by}");
    assert_eq!(num(&f.evidence, "errors"), 82);
    assert_eq!(num(&f.evidence, "answers"), 88);
    assert_eq!(f.evidence.get("by_resource").and_then(Value::as_array).map(Vec::len), Some(3));
    // Not a copy of retry-without-backoff: the 404s are no retries of a
    // 429/5xx, and every error counts, not only the quick repeats.
    let r = analyze("http-errors.pcap");
    let retry = find(&r, "retry-without-backoff").unwrap();
    assert!(num(&retry.evidence, "retries") < num(&f.evidence, "errors"));
    assert!(f.saving_per_day.bytes > retry.saving_per_day.bytes);
}

#[test]
fn http_errors_saving_is_the_error_exchanges() {
    // Every upload of http-413 is refused: without the error exchanges
    // (each on its own connection) nothing is left of the capture's day.
    let r = analyze("http-413.pcap");
    let f = find(&r, "http-errors").unwrap();
    let day = day_bytes(&r);
    let got = f.saving_per_day.bytes as f64;
    assert!((got - day).abs() <= 0.15 * day, "saves {got} B a day of {day}");
    // On http-errors.pcap the error connections carry most of the bytes:
    // 82 of 88 exchanges, each on its own connection (88 connections).
    let r = analyze("http-errors.pcap");
    let f = find(&r, "http-errors").unwrap();
    let share = f.saving_per_day.bytes as f64 / day_bytes(&r);
    // The error exchanges' own bytes (their connections' set-up aside)
    // are a lower bound of what goes with them.
    let wire_share = num(&f.evidence, "error_wire_bytes") as f64 / r.totals.wire_bytes as f64;
    assert!(share > 0.8 && share < 1.0, "saving {share} of the day");
    assert!(wire_share > 0.5 && wire_share < share, "errors' exchanges {wire_share} of the wire bytes");
}

#[test]
fn duplicate_content_without_validators_but_not_with_304s() {
    let f = shows("duplicate-content", "sparse-http-keepalive-poll.pcap", "conditional-poll.pcap");
    assert_eq!(num(&f.evidence, "repeats"), 7, "{}", f.evidence);
    assert_eq!(num(&f.evidence, "repeated_body_bytes"), 7 * 65, "{}", f.evidence);
    let ex = &f.evidence["examples"][0];
    assert_eq!(ex["body_bytes"], serde_json::json!([65]), "{ex}");
    // http-poll-close repeats a 56-byte body, but there a 304 and its
    // If-None-Match cost as many bytes as they save: nothing to offer.
    assert!(find(&analyze("http-poll-close.pcap"), "duplicate-content").is_none());
}

#[test]
fn duplicate_content_saving_is_what_304s_measure() {
    // Independent count from the frames (tshark): each of the 7 repeated
    // answers of sparse-http-keepalive-poll is a 285-byte frame (200, 65 B
    // of body, no validators); a 304 answer to the same poll is a 245-byte
    // frame and its request grows by If-None-Match (196 - 166 = 30 B), as
    // conditional-poll.pcap measures. The day's saving is that share of
    // the day's bytes.
    let r = analyze("sparse-http-keepalive-poll.pcap");
    let f = find(&r, "duplicate-content").unwrap();
    let per_capture = 7.0 * ((285.0 - 245.0) - 30.0);
    let want = per_capture / r.totals.wire_bytes as f64 * day_bytes(&r);
    let got = f.saving_per_day.bytes as f64;
    assert!((got - want).abs() <= 0.15 * want, "saves {got} B a day, the frames say {want}");
}

#[test]
fn uncompressed_text_but_not_gzip() {
    let f = shows("uncompressed-text", "text-plain.pcap", "text-gzip.pcap");
    let ratio = f.evidence["gzip_ratio"].as_f64().unwrap();
    assert!(ratio > 0.1 && ratio < 0.4, "{ratio}");
}

/// On a pair of captures that differ by one practice (the same 5 GETs
/// every 2 s, with and without gzip), the finding saves per day what the
/// pair's days differ by: bytes within 15%, charge within 15% or 1% of the
/// day's charge. Both days are projected by the radio model from their own
/// steady cycle, the same period: the message rate is the same.
#[test]
fn compression_saves_what_the_pair_measures() {
    let (a, b) = (analyze("text-plain.pcap"), analyze("text-gzip.pcap"));
    let f = find(&a, "uncompressed-text").unwrap();
    let (da, db) = (&a.radio.as_ref().unwrap().per_day, &b.radio.as_ref().unwrap().per_day);
    let want = da.bytes as f64 - db.bytes as f64;
    let got = f.saving_per_day.bytes as f64;
    assert!((got - want).abs() <= 0.15 * want, "saves {got} B a day, the pair measures {want}");
    let want = da.charge_mah - db.charge_mah;
    let got = f.saving_per_day.charge_mah.unwrap();
    let tolerance = (0.15 * want.abs()).max(0.01 * da.charge_mah);
    assert!((got - want).abs() <= tolerance, "saves {got} mAh a day, the pair measures {want}");
}

#[test]
fn oversized_payload_on_413() {
    let f = shows("oversized-payload", "http-413.pcap", "http-post-batch.pcap");
    assert_eq!(num(&f.evidence, "refused_413"), 4);
    // A limit in the settings: bodies above it are listed.
    let t = Thresholds { oversized_body_bytes: 3000, ..Default::default() };
    let r = analyze_with("text-plain.pcap", false, t);
    let f = find(&r, "oversized-payload").unwrap();
    assert!(num(&f.evidence, "largest_body_bytes") > 3000, "{}", f.evidence);
    assert!(find(&analyze("text-plain.pcap"), "oversized-payload").is_none());
}

#[test]
fn tiny_chunks_of_a_streamed_upload() {
    let f = shows("tiny-chunks", "http-post-batch.pcap", "http-keepalive.pcap");
    assert_eq!(num(&f.evidence, "chunks"), 6);
    assert_eq!(num(&f.evidence, "chunked_uploads"), 1);
    // A one-off upload: priced per upload. Independent count (tshark): the
    // six 29-byte chunks went in six frames of 101 B (66 B of headers, a
    // 4-byte size line, the data, CRLF); in one chunk, five frames and five
    // chunks' framing go: 5 x (66 + 6) B.
    let e = f.saving_per_event.as_ref().unwrap();
    let want = 5.0 * (66.0 + 6.0);
    assert!((e.bytes as f64 - want).abs() <= 0.15 * want, "saves {} B an upload, the frames say {want}", e.bytes);
    assert!(e.billed_bytes < e.bytes);
}

#[test]
fn unbatched_uploads_but_not_batches() {
    // The tracker's POSTs, encrypted (a connection each) and decrypted.
    let f = shows("unbatched-uploads", "sparse-https-poll.pcap", "http-post-batch.pcap");
    assert_eq!(num(&f.evidence, "uploads"), 8);
    let r = analyze_with("sparse-https-poll.pcap", true, Thresholds::default());
    let f = find(&r, "unbatched-uploads").unwrap();
    assert_eq!(num(&f.evidence, "uploads"), 8);
    assert_eq!(f.evidence["mean_upload_bytes"].as_f64(), Some(85.0), "{}", f.evidence);
    // 8 readings in the capture: batches of 2 (a third at most, so that
    // the capture holds the cycles a day is projected from). Independent
    // count: 4 of the 8 connections (3,089 B each: TCP, a full TLS 1.2
    // handshake, one POST) go, and each of the 4 left carries one reading
    // more (85 B of JSON and 29 B of TLS record). Charge: at a 20 s period
    // each reading wakes the radio, so half the wake-ups is half the charge.
    let per_capture = 4.0 * (24_712.0 / 8.0 - (85.0 + 29.0));
    let want = per_capture / r.totals.wire_bytes as f64 * day_bytes(&r);
    let got = f.saving_per_day.bytes as f64;
    assert!((got - want).abs() <= 0.15 * want, "saves {got} B a day, the connections say {want}");
    let day = r.radio.as_ref().unwrap().per_day.charge_mah;
    let got = f.saving_per_day.charge_mah.unwrap();
    assert!((got - 0.5 * day).abs() <= 0.15 * 0.5 * day, "saves {got} mAh a day of {day}");
    // The text and the evidence name the batch the saving was computed
    // for (2 here), not the setting's most (10).
    let what = &f.counterfactual.as_ref().unwrap().description;
    assert!(what.starts_with("the readings sent 2 at a time"), "{what}");
    assert_eq!(num(&f.evidence, "batch"), 2, "{}", f.evidence);
    assert_eq!(f.evidence["batch_sizes"], serde_json::json!([2]));
    assert_eq!(num(&f.evidence["examples"][0], "batch"), 2);
}

#[test]
fn thresholds_come_from_the_settings() {
    let t = Thresholds::from_config("[findings]\nhttp_errors_min = 100\nduplicate_min_repeats = 8\n").unwrap();
    let r = analyze_with("http-errors.pcap", false, t.clone());
    assert!(find(&r, "http-errors").is_none());
    let r = analyze_with("sparse-http-keepalive-poll.pcap", false, t);
    assert!(find(&r, "duplicate-content").is_none());
}

#[test]
fn none_on_the_good_practice_captures() {
    for c in [
        "mqtt311-qos0-persistent.pcap",
        "http-keepalive.pcap",
        "coap-observe.pcap",
        "coap-non.pcap",
        "websocket-storm-backoff.pcap",
        "https-tls12-resumed.pcap",
    ] {
        let r = analyze(c);
        for f in &r.findings {
            // http-keepalive's poll does answer the same 56-byte body 15
            // times without validators: the practice its polling finding
            // names, and what 304s would save there is a few bytes.
            if c == "http-keepalive.pcap" && f.id == "duplicate-content" {
                assert_eq!(f.severity, "info", "{f:?}");
                continue;
            }
            assert!(!IDS.contains(&f.id.as_str()), "{c}: {} ({})", f.id, f.title);
        }
    }
}
