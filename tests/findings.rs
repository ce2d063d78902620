//! Every finding, on a capture that shows it and on one that does not.

// Helpers of a test may unwrap: a panic there fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use wiretax::analyze::{Options, analyze_file};

fn ids(capture: &str) -> Vec<&'static str> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures").join(capture);
    analyze_file(&p, &Options::new()).unwrap().findings.iter().map(|f| f.id).collect()
}

fn shows(id: &str, yes: &str, no: &str) {
    assert!(ids(yes).contains(&id), "{yes} should show {id}: {:?}", ids(yes));
    assert!(!ids(no).contains(&id), "{no} should not show {id}: {:?}", ids(no));
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
    shows("header-overhead", "http-keepalive.pcap", "mqtt311-qos1.pcap");
}

#[test]
fn savings_are_projected_per_day() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/http-poll-close.pcap");
    let r = analyze_file(&p, &Options::new()).unwrap();
    let f = r.findings.iter().find(|f| f.id == "short-lived-connections").unwrap();
    // 15 connections over 28.2 s, each paying 10 control frames' worth of setup;
    // one connection would pay it once: 14/15 of it, times 86400/28.2 per day.
    let setup: u64 = r.flows.iter().map(|f| f.classes.get(wiretax::ledger::Class::TcpControl)).sum();
    let want = setup as f64 * 14.0 / 15.0 * 86_400.0 / r.totals.duration_s;
    assert!((f.saving_per_day.bytes as f64 - want).abs() < 2.0, "{} vs {want}", f.saving_per_day.bytes);
    assert!(f.saving_per_day.charge_mah > 0.0);
}
