use super::*;
use crate::decrypt::tests::{Conversation, read_conversations};
use crate::dissect::testkit::{self, Run, TestResult};
use crate::dissect::{Config, ProtoStats};
use crate::keylog::KeyLog;
use std::sync::Arc;

fn capture_path(name: &str) -> String {
    format!("{}/captures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn conversations(name: &str) -> TestResult<Vec<Conversation>> {
    read_conversations(&capture_path(&format!("{name}.pcap")))
}

fn truth(name: &str) -> TestResult<serde_json::Value> {
    Ok(serde_json::from_str(&std::fs::read_to_string(capture_path(&format!("{name}.truth.json")))?)?)
}

fn cfg(keylog: Option<&str>) -> TestResult<Arc<Config>> {
    let keylog = match keylog {
        Some(k) => Some(Arc::new(KeyLog::load(capture_path(k))?)),
        None => None,
    };
    Ok(Arc::new(Config { keylog, ..Default::default() }))
}

/// Runs every conversation of a capture through a fresh dissector.
fn run_capture(name: &str, cfg: Arc<Config>, bytewise: bool) -> TestResult<(Run, Vec<Run>)> {
    let mut all = Run::default();
    let mut runs = vec![];
    for c in conversations(name)? {
        let ctx = FlowCtx { l4: c.l4, server_port: c.server_port, cfg: cfg.clone() };
        let mut d = Tls::new(&ctx);
        let pieces: Vec<(Dir, &[u8])> = c.pieces.iter().map(|(d, b)| (*d, b.as_slice())).collect();
        let r = if bytewise && c.l4 == L4::Tcp {
            testkit::run_bytewise(&mut d, &pieces)
        } else {
            testkit::run(&mut d, &pieces)
        };
        r.assert_conserved();
        all.spans.extend(r.spans.iter().copied());
        all.events.extend(r.events.iter().cloned());
        all.stats.merge(&r.stats);
        all.fed += r.fed;
        runs.push(r);
    }
    Ok((all, runs))
}

fn class_of(t: &serde_json::Value, key: &str, class: &str) -> TestResult<u64> {
    let alt = key.replace("byte_classes", "bytes_by_class");
    let v = t.get(key).or_else(|| t.get(&alt)).or_else(|| t.get("byte_classes")).ok_or("truth: no byte classes")?;
    Ok(v[class].as_u64().ok_or_else(|| format!("truth: no {key}.{class}"))?)
}

fn check_tls_section(name: &str, st: &ProtoStats) -> TestResult {
    let t = truth(name)?;
    let want = &t["tls"];
    let got = serde_json::to_value(&st.tls)?;
    for k in [
        "connections",
        "full_handshakes",
        "resumed_handshakes",
        "versions",
        "handshake_record_bytes",
        "app_data_record_bytes",
        "records",
    ] {
        assert_eq!(got[k], want[k], "{name}: tls.{k}");
    }
    Ok(())
}

const TLS12: &[&str] = &["https-tls12-full", "https-tls12-resumed", "sparse-https-poll", "mqtt-tls12", "coap-dtls"];
const TLS13: &[&str] = &["https-tls13-full", "https-tls13-resumed", "mqtt-tls13"];

#[test]
fn keyless_tls12_and_dtls_classes_match_truth_exactly() -> TestResult {
    for name in TLS12 {
        let (r, _) = run_capture(name, cfg(None)?, false)?;
        let t = truth(name)?;
        for class in [Class::TlsHandshake, Class::TlsRecordOverhead, Class::Payload] {
            assert_eq!(r.class(class), class_of(&t, "byte_classes", class.name())?, "{name}: {}", class.name());
        }
        check_tls_section(name, &r.stats)?;
        assert!(!r.events.iter().any(|e| matches!(e, Event::Malformed { .. })), "{name}: {:?}", r.events);
    }
    Ok(())
}

#[test]
fn keyless_tls13_infers_handshake_within_truth_bounds() -> TestResult {
    for name in TLS13 {
        let (r, _) = run_capture(name, cfg(None)?, false)?;
        let t = truth(name)?;
        let hs = r.class(Class::TlsHandshake);
        let lo = class_of(&t, "byte_classes", "tls_handshake")?;
        let hi =
            t.get("byte_classes_decrypted").or_else(|| t.get("bytes_by_class_decrypted")).ok_or("truth: no decrypted classes")?
                ["tls_handshake"]
                .as_u64()
                .ok_or("truth: no decrypted tls_handshake")?;
        assert!(hs >= lo && hs <= hi, "{name}: tls_handshake {hs} not in [{lo}, {hi}]");
        assert!(hs > lo, "{name}: the encrypted flight should be inferred");
        assert_eq!(r.stats.tls.inferred_handshake_bytes, hs - lo, "{name}");
        check_tls_section(name, &r.stats)?;
    }
    Ok(())
}

#[test]
fn bytewise_feeding_gives_the_same_result() -> TestResult {
    for (name, keylog) in [
        ("https-tls12-resumed", None),
        ("mqtt-tls13", None),
        ("mqtt-tls13", Some("mqtt-tls13.keylog")),
        ("https-tls12-resumed", Some("https-tls12-resumed.keylog")),
    ] {
        let (a, _) = run_capture(name, cfg(keylog)?, false)?;
        let (b, _) = run_capture(name, cfg(keylog)?, true)?;
        assert_eq!(a.ledger(), b.ledger(), "{name}");
        assert_eq!(
            serde_json::to_value(&a.stats.tls)?,
            serde_json::to_value(&b.stats.tls)?,
            "{name}"
        );
        let opens = |r: &Run| r.events.iter().filter(|e| matches!(e, Event::Open { .. })).count();
        assert_eq!(opens(&a), opens(&b), "{name}");
    }
    Ok(())
}

#[test]
fn keyless_exchanges_pair_client_runs_with_answers() -> TestResult {
    let (_, runs) = run_capture("https-tls12-full", cfg(None)?, false)?;
    for r in &runs {
        let opens: Vec<_> = r
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Open { id, kind, .. } => Some((*id, *kind)),
                _ => None,
            })
            .collect();
        assert_eq!(opens.len(), 1, "{:?}", r.events);
        assert_eq!(opens[0].1, crate::vocab::Proto::Tls);
        let id = opens[0].0;
        assert!(r.events.contains(&Event::Responded { id }));
        assert!(r.events.contains(&Event::Close { id }));
        // Handshake bytes are setup, app data belongs to the exchange.
        let setup: u64 = r.spans.iter().filter(|s| s.msg == MsgRef::Setup).map(|s| s.len).sum();
        assert_eq!(setup, r.class(Class::TlsHandshake));
        assert!(r.spans.iter().any(|s| s.msg == MsgRef::Exchange(id) && s.class == Class::Payload));
    }
    Ok(())
}

#[test]
fn decrypted_classes_match_truth_with_key_logs() -> TestResult {
    for name in TLS12.iter().chain(TLS13) {
        let (r, _) = run_capture(name, cfg(Some(&format!("{name}.keylog")))?, false)?;
        let t = truth(name)?;
        let dec = |c: &str| class_of(&t, "byte_classes_decrypted", c);
        let st = &r.stats.tls.decryption;
        assert!(st.failures.is_empty(), "{name}: {st:?} {:?}", r.events);
        assert_eq!(st.connections_without_keys, 0, "{name}");
        assert_eq!(st.connections_with_keys, r.stats.tls.connections, "{name}");
        assert_eq!(r.class(Class::TlsHandshake), dec("tls_handshake")?, "{name}: tls_handshake");
        assert_eq!(r.class(Class::TlsRecordOverhead), dec("tls_record_overhead")?, "{name}: tls_record_overhead");
        // The inner dissector owns the plaintext: everything else.
        let inner: u64 = [Class::AppHeader, Class::AppControl, Class::Payload].iter().map(|c| r.class(*c)).sum();
        assert_eq!(inner, dec("app_header")? + dec("app_control")? + dec("payload")?, "{name}: plaintext");
        assert_eq!(st.plaintext_bytes, inner, "{name}");
        // The outer-type statistics do not change with keys.
        check_tls_section(name, &r.stats)?;
        assert!(!r.events.iter().any(|e| matches!(e, Event::Malformed { .. })), "{name}: {:?}", r.events);
    }
    Ok(())
}

/// Stands in for the inner protocol: keeps what it is fed.
type Seen = Arc<std::sync::Mutex<Vec<(Dir, Vec<u8>)>>>;
#[derive(Clone)]
struct Recorder(Seen);

impl Dissector for Recorder {
    fn data(&mut self, dir: Dir, data: &[u8], emit: &mut Emit) {
        let Ok(mut seen) = self.0.lock() else { panic!("recorder: lock poisoned") };
        seen.push((dir, data.to_vec()));
        emit.span(Class::Payload, data.len() as u64, MsgRef::Flow);
    }
    fn gap(&mut self, _dir: Dir, _len: u64, _emit: &mut Emit) {}
    fn finish(&mut self, _emit: &mut Emit) {}
}

fn fixture(name: &str) -> String {
    format!("{}/src/decrypt/testdata/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Runs a generated capture (OpenSSL s_client -> s_server -rev) with its
/// key log; returns the run and the plaintext per direction.
fn run_fixture(name: &str, with_keys: bool) -> TestResult<(Run, Vec<u8>, Vec<u8>)> {
    let convs = read_conversations(&fixture(&format!("{name}.pcap")))?;
    assert_eq!(convs.len(), 1, "{name}");
    let c = &convs[0];
    let keylog = if with_keys { Some(Arc::new(KeyLog::load(fixture(&format!("{name}.keylog")))?)) } else { None };
    let ctx = FlowCtx { l4: c.l4, server_port: c.server_port, cfg: Arc::new(Config { keylog, ..Default::default() }) };
    let seen = Arc::new(std::sync::Mutex::new(vec![]));
    let mut d = Tls::new(&ctx);
    d.inner = Some(Box::new(Recorder(seen.clone())));
    let pieces: Vec<(Dir, &[u8])> = c.pieces.iter().map(|(d, b)| (*d, b.as_slice())).collect();
    let r = testkit::run(&mut d, &pieces);
    r.assert_conserved();
    let seen = seen.lock().map_err(|e| e.to_string())?;
    let side = |dir| seen.iter().filter(|(d, _)| *d == dir).flat_map(|(_, b)| b.clone()).collect::<Vec<u8>>();
    Ok((r, side(Dir::C2S), side(Dir::S2C)))
}

const FIXTURES: &[&str] = &[
    "tls12-chacha20",
    "tls12-aes128-ccm",
    "tls12-aes256-ccm8",
    "tls12-aes128-cbc-sha-mte",
    "tls12-aes128-cbc-sha256-mte",
    "tls12-aes256-cbc-sha384-etm",
    "tls13-chacha20",
    "tls13-aes128-ccm",
    "tls13-aes128-ccm8",
    "tls13-hello-retry",
];

#[test]
fn every_cipher_family_decrypts() -> TestResult {
    for name in FIXTURES {
        let (r, c2s, s2c) = run_fixture(name, true)?;
        let st = &r.stats.tls;
        assert!(st.decryption.failures.is_empty(), "{name}: {:?} {:?}", st.decryption, r.events);
        assert_eq!(c2s, b"reading 1\nreading 2\n", "{name}");
        assert_eq!(s2c, b"1 gnidaer\n2 gnidaer\n", "{name}");
        assert_eq!(r.class(Class::Payload), 40, "{name}");
        assert_eq!(st.alerts.get("close_notify"), Some(&2), "{name}: {:?}", st.alerts);
        // Every record of outer type 22/20, and every decrypted
        // handshake record, is handshake; nothing else.
        let inner_hs = st.decryption.inner_content_types.get("22").copied().unwrap_or(0);
        assert!(inner_hs >= if name.starts_with("tls13") { 6 } else { 2 }, "{name}: {:?}", st.decryption);
        let expected_suite = if name.starts_with("tls13") { "TLS 1.3" } else { "TLS 1.2" };
        assert_eq!(st.versions.get(expected_suite), Some(&1), "{name}");
        // Without keys the same capture books the same handshake
        // bytes (TLS 1.2) and a lower bound of the expansion (CBC).
        let (k, _, _) = run_fixture(name, false)?;
        if name.starts_with("tls12") {
            assert_eq!(k.class(Class::TlsHandshake), r.class(Class::TlsHandshake), "{name}");
            assert!(k.class(Class::TlsRecordOverhead) <= r.class(Class::TlsRecordOverhead), "{name}");
            assert_eq!(k.stats.tls.records_with_unknown_expansion > 0, name.contains("cbc"), "{name}");
            if !name.contains("cbc") {
                assert_eq!(k.class(Class::TlsRecordOverhead), r.class(Class::TlsRecordOverhead), "{name}");
            }
        } else {
            assert!(k.class(Class::TlsHandshake) <= r.class(Class::TlsHandshake), "{name}");
            assert!(k.stats.tls.inferred_handshake_bytes > 0, "{name}");
        }
    }
    Ok(())
}

#[test]
fn dtls12_gcm_and_cbc_decrypt() -> TestResult {
    for name in ["dtls12-aes128-gcm", "dtls12-aes256-cbc-sha"] {
        let (r, c2s, s2c) = run_fixture(name, true)?;
        let st = &r.stats.tls;
        assert!(st.decryption.failures.is_empty(), "{name}: {:?} {:?}", st.decryption, r.events);
        assert_eq!(c2s, b"reading 1\nreading 2\n", "{name}");
        assert_eq!(s2c, b"ack 1\n", "{name}");
        assert_eq!(st.versions.get("DTLS 1.2"), Some(&1), "{name}");
        assert_eq!((st.full_handshakes, st.hello_verify_requests, st.certificate_messages), (1, 1, 1), "{name}");
        // Both Finished messages decrypted and read with DTLS framing.
        assert_eq!(st.decryption.inner_content_types.get("22"), Some(&2), "{name}");
        assert_eq!(st.key_updates, 0, "{name}");
        let (k, _, _) = run_fixture(name, false)?;
        assert_eq!(k.class(Class::TlsHandshake), r.class(Class::TlsHandshake), "{name}");
    }
    Ok(())
}

#[test]
fn hello_retry_request_is_counted_and_the_second_hello_parsed() -> TestResult {
    for keys in [false, true] {
        let (r, _, _) = run_fixture("tls13-hello-retry", keys)?;
        let st = &r.stats.tls;
        assert_eq!((st.client_hellos, st.hello_retry_requests, st.full_handshakes), (2, 1, 1));
        assert_eq!(st.versions.get("TLS 1.3"), Some(&1));
        assert_eq!(st.sni.len(), 0, "s_client to an IP address sends no SNI");
        if !keys {
            // Server flight (4 records) and the client's Finished.
            assert_eq!(st.inferred_handshake_records, 5);
        }
    }
    Ok(())
}

#[test]
fn unsupported_cipher_suite_says_so_and_stays_keyless() -> TestResult {
    let (r, c2s, _) = run_fixture("tls12-aria128-gcm", true)?;
    let (k, _, _) = run_fixture("tls12-aria128-gcm", false)?;
    assert_eq!(r.stats.tls.decryption.failures.get("unsupported_cipher_suite"), Some(&1));
    assert!(
        r.events.iter().any(|e| matches!(e, Event::Malformed { reason, .. } if reason.contains("0xc05c"))),
        "{:?}",
        r.events
    );
    assert!(c2s.is_empty());
    assert_eq!(r.ledger(), k.ledger());
    assert_eq!(r.stats.tls.cipher_suites.get("TLS_ECDHE_ECDSA_WITH_ARIA_128_GCM_SHA256"), Some(&1));
    Ok(())
}

#[test]
fn tls12_ticket_resumption_is_resumed_and_decrypts() -> TestResult {
    let convs = read_conversations(&fixture("tls12-ticket-resumption.pcap"))?;
    assert_eq!(convs.len(), 2);
    let keylog = Arc::new(KeyLog::load(fixture("tls12-ticket-resumption.keylog"))?);
    let mut stats = ProtoStats::default();
    for c in &convs {
        let ctx = FlowCtx {
            l4: c.l4,
            server_port: c.server_port,
            cfg: Arc::new(Config { keylog: Some(keylog.clone()), ..Default::default() }),
        };
        let seen: Seen = Default::default();
        let mut d = Tls::new(&ctx);
        d.inner = Some(Box::new(Recorder(seen.clone())));
        let pieces: Vec<(Dir, &[u8])> = c.pieces.iter().map(|(d, b)| (*d, b.as_slice())).collect();
        let r = testkit::run(&mut d, &pieces);
        r.assert_conserved();
        let plain: Vec<u8> =
            seen.lock().map_err(|e| e.to_string())?.iter().filter(|(d, _)| *d == Dir::C2S).flat_map(|(_, b)| b.clone()).collect();
        assert_eq!(plain, b"reading 1\n");
        stats.merge(&r.stats);
    }
    let st = &stats.tls;
    assert_eq!((st.full_handshakes, st.resumed_handshakes, st.certificate_messages), (1, 1, 1));
    assert!(st.decryption.failures.is_empty());
    Ok(())
}

#[test]
fn tls13_key_update_is_followed() -> TestResult {
    let (r, c2s, s2c) = run_fixture("tls13-keyupdate", true)?;
    let st = &r.stats.tls;
    assert!(st.decryption.failures.is_empty(), "{:?} {:?}", st.decryption, r.events);
    assert_eq!(st.key_updates, 2);
    // The records after each update decrypt.
    assert_eq!(c2s, b"reading 1\nreading 2\nreading 3\n");
    assert_eq!(s2c, b"1 gnidaer\n2 gnidaer\n");
    Ok(())
}

#[test]
fn wrong_key_log_falls_back_to_keyless_accounting() -> TestResult {
    // The right client randoms with corrupted secrets.
    let good = std::fs::read_to_string(capture_path("https-tls12-full.keylog"))?;
    let bad: String = good
        .lines()
        .map(|l| {
            let mut f: Vec<String> = l.split(' ').map(str::to_string).collect();
            f[2] = f[2].chars().rev().collect();
            f.join(" ") + "\n"
        })
        .collect();
    let cfg = Arc::new(Config { keylog: Some(Arc::new(KeyLog::parse(&bad))), ..Default::default() });
    let (r, runs) = run_capture("https-tls12-full", cfg, false)?;
    let (k, _) = run_capture("https-tls12-full", self::cfg(None)?, false)?;
    assert_eq!(r.ledger(), k.ledger());
    assert_eq!(r.stats.tls.decryption.failures.get("authentication_failed"), Some(&12));
    for run in &runs {
        let msgs: Vec<_> = run
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Malformed { reason, .. } => Some(reason.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(msgs.len(), 1, "{msgs:?}");
        assert!(msgs[0].contains("authentication"), "{msgs:?}");
        // Keyless exchanges take over.
        assert!(run.events.iter().any(|e| matches!(e, Event::Open { kind: crate::vocab::Proto::Tls, .. })));
    }
    // A malformed key log: every line bad, every connection keyless.
    let malformed = KeyLog::parse(&good.replace("CLIENT_RANDOM ", "CLIENT_RANDOM 00"));
    assert_eq!(malformed.bad_lines(), 12);
    let cfg = Arc::new(Config { keylog: Some(Arc::new(malformed)), ..Default::default() });
    let (r, _) = run_capture("https-tls12-full", cfg, false)?;
    assert_eq!(r.ledger(), k.ledger());
    assert_eq!(r.stats.tls.decryption.connections_without_keys, 12);
    // A key log whose secrets match no connection: counted, no noise.
    let unrelated = format!("CLIENT_RANDOM {} {}\n", "11".repeat(32), "22".repeat(48));
    let cfg = Arc::new(Config { keylog: Some(Arc::new(KeyLog::parse(&unrelated))), ..Default::default() });
    let (r, _) = run_capture("https-tls12-full", cfg, false)?;
    assert_eq!(r.ledger(), k.ledger());
    assert_eq!(r.stats.tls.decryption.connections_without_keys, 12);
    assert!(r.stats.tls.decryption.failures.is_empty());
    assert!(!r.events.iter().any(|e| matches!(e, Event::Malformed { .. })));
    Ok(())
}

#[test]
fn tls13_key_log_with_only_some_secrets() -> TestResult {
    let good = std::fs::read_to_string(capture_path("mqtt-tls13.keylog"))?;
    let only = |keep: &str| {
        let text: String = good.lines().filter(|l| l.contains(keep)).map(|l| format!("{l}\n")).collect();
        Arc::new(Config { keylog: Some(Arc::new(KeyLog::parse(&text))), ..Default::default() })
    };
    let (full, _) = run_capture("mqtt-tls13", cfg(Some("mqtt-tls13.keylog"))?, false)?;
    // Application secrets only: the handshake is inferred, the data decrypts.
    let (app, _) = run_capture("mqtt-tls13", only("TRAFFIC_SECRET_0"), false)?;
    assert!(app.stats.tls.decryption.failures.is_empty(), "{:?}", app.events);
    assert_eq!(app.stats.tls.decryption.plaintext_bytes, full.stats.tls.decryption.plaintext_bytes);
    assert!(app.stats.tls.inferred_handshake_records > 0);
    // Handshake secrets only: decryption stops at the Finished, and says why.
    let (hs, _) = run_capture("mqtt-tls13", only("HANDSHAKE_TRAFFIC_SECRET"), false)?;
    assert_eq!(hs.stats.tls.decryption.failures.get("missing_secret"), Some(&1));
    assert!(hs.events.iter().any(|e| matches!(e, Event::Malformed { reason, .. } if reason.contains("lacks"))));
    assert_eq!(hs.stats.tls.decryption.plaintext_bytes, 0);
    Ok(())
}

#[test]
fn capture_mixing_connections_with_and_without_keys() -> TestResult {
    // Keep the secrets of every other connection only.
    let good = std::fs::read_to_string(capture_path("https-tls13-full.keylog"))?;
    let convs = conversations("https-tls13-full")?;
    let randoms: Vec<String> =
        convs.iter().map(|c| c.pieces[0].1[11..43].iter().map(|b| format!("{b:02x}")).collect()).collect();
    let keep: String = good
        .lines()
        .filter(|l| randoms.iter().step_by(2).any(|r| l.contains(r.as_str())))
        .map(|l| format!("{l}\n"))
        .collect();
    let cfg = Arc::new(Config { keylog: Some(Arc::new(KeyLog::parse(&keep))), ..Default::default() });
    let (_, runs) = run_capture("https-tls13-full", cfg, false)?;
    let (_, keyless) = run_capture("https-tls13-full", self::cfg(None)?, false)?;
    let (_, keyed) = run_capture("https-tls13-full", self::cfg(Some("https-tls13-full.keylog"))?, false)?;
    for (i, r) in runs.iter().enumerate() {
        let want = if i % 2 == 0 { &keyed[i] } else { &keyless[i] };
        assert_eq!(r.ledger(), want.ledger(), "connection {i}");
        assert_eq!(r.stats.tls.decryption.connections_with_keys, u64::from(i % 2 == 0), "connection {i}");
    }
    Ok(())
}

#[test]
fn a_gap_inside_a_record_loses_only_that_record() -> TestResult {
    let convs = conversations("mqtt-tls12")?;
    let c = &convs[0];
    let stream = |dir| c.pieces.iter().filter(|(d, _)| *d == dir).flat_map(|(_, b)| b.clone()).collect::<Vec<u8>>();
    let (c2s, s2c) = (stream(Dir::C2S), stream(Dir::S2C));
    // Record starts of the client's stream; the 8th application-data record is hit.
    let mut starts = vec![];
    let mut at = 0;
    while at + 5 <= c2s.len() {
        starts.push((c2s[at], at));
        at += 5 + usize::from(u16::from_be_bytes([c2s[at + 3], c2s[at + 4]]));
    }
    let (_, hit) = starts.iter().filter(|(t, _)| *t == APPLICATION_DATA).nth(7).copied().ok_or("fewer than 8 application-data records")?;
    let hit_len = 5 + usize::from(u16::from_be_bytes([c2s[hit + 3], c2s[hit + 4]]));
    let run = |gap: bool| -> TestResult<(Run, usize)> {
        let ctx = FlowCtx { l4: L4::Tcp, server_port: 8883, cfg: cfg(Some("mqtt-tls12.keylog"))? };
        let seen: Seen = Default::default();
        let mut d = Tls::new(&ctx);
        d.inner = Some(Box::new(Recorder(seen.clone())));
        let mut r = Run::default();
        let mut e = Emit::new(0, &mut r.spans, &mut r.events, &mut r.stats);
        let (lo, hi) = (hit + 10, hit + 30);
        let mut off = 0;
        for (dir, b) in &c.pieces {
            let (start, end) = (off, off + b.len());
            if *dir == Dir::C2S {
                off = end;
            }
            if gap && *dir == Dir::C2S && start <= lo && hi <= end {
                d.data(*dir, &b[..lo - start], &mut e);
                d.gap(*dir, 20, &mut e);
                d.data(*dir, &b[hi - start..], &mut e);
            } else {
                d.data(*dir, b, &mut e);
            }
        }
        d.finish(&mut e);
        let plain: usize =
            seen.lock().map_err(|e| e.to_string())?.iter().filter(|(d, _)| *d == Dir::C2S).map(|(_, b)| b.len()).sum();
        Ok((r, plain))
    };
    let (full, all_plain) = run(false)?;
    let (lossy, plain) = run(true)?;
    assert!(lossy.stats.tls.decryption.failures.is_empty(), "{:?}", lossy.events);
    // Exactly that record's plaintext (its length less 5 + 8 + 16) is missing.
    assert_eq!(all_plain - plain, hit_len - 29);
    assert_eq!(full.stats.tls.decryption.records_decrypted, lossy.stats.tls.decryption.records_decrypted + 1);
    let total: u64 = lossy.spans.iter().map(|s| s.len).sum();
    assert_eq!(total, (c2s.len() + s2c.len() - 20) as u64);
    Ok(())
}

/// Mutated real conversations in random pieces, with and without keys:
/// never a panic, every byte booked once.
#[test]
fn mutated_streams_never_panic_and_conserve() -> TestResult {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for (name, keylog) in [
        ("mqtt-tls13", "mqtt-tls13.keylog"),
        ("https-tls12-resumed", "https-tls12-resumed.keylog"),
        ("coap-dtls", "coap-dtls.keylog"),
    ] {
        let convs = conversations(name)?;
        let c = &convs[0];
        for round in 0..60 {
            let mut pieces: Vec<(Dir, Vec<u8>)> = c.pieces.clone();
            for _ in 0..(1 + round % 5) {
                let i = (rnd() as usize) % pieces.len();
                let p = &mut pieces[i].1;
                if p.is_empty() {
                    continue;
                }
                let at = (rnd() as usize) % p.len();
                match rnd() % 4 {
                    0 => p[at] ^= 1 << (rnd() % 8),
                    1 => p.truncate(at),
                    2 => p.insert(at, rnd() as u8),
                    _ => p[at] = 0xff,
                }
            }
            let cfg = if round % 2 == 0 { cfg(Some(keylog))? } else { cfg(None)? };
            let ctx = FlowCtx { l4: c.l4, server_port: c.server_port, cfg };
            let mut d = Tls::new(&ctx);
            let mut split: Vec<(Dir, &[u8])> = vec![];
            for (dir, b) in &pieces {
                if c.l4 == L4::Udp {
                    split.push((*dir, b.as_slice()));
                    continue;
                }
                let mut rest = b.as_slice();
                while !rest.is_empty() {
                    let n = 1 + (rnd() as usize) % rest.len().min(700);
                    split.push((*dir, &rest[..n]));
                    rest = &rest[n..];
                }
            }
            let r = testkit::run(&mut d, &split);
            r.assert_conserved();
        }
    }
    Ok(())
}

#[test]
fn print_stats_for_eyeballing() -> TestResult {
    for name in TLS12.iter().chain(TLS13) {
        let (r, _) = run_capture(name, cfg(Some(&format!("{name}.keylog")))?, false)?;
        eprintln!("{name}: {:?}\n{}", r.ledger(), serde_json::to_string(&r.stats.tls)?);
    }
    Ok(())
}

#[test]
fn keyless_tls13_has_one_exchange_per_request() -> TestResult {
    for name in ["https-tls13-full", "https-tls13-resumed"] {
        let (_, runs) = run_capture(name, cfg(None)?, false)?;
        let mut tickets_as_setup = 0;
        for r in &runs {
            // The close_notify alerts belong to no exchange.
            let opens = r.events.iter().filter(|e| matches!(e, Event::Open { .. })).count();
            assert_eq!(opens, 1, "{name}: {:?}", r.events);
            // NewSessionTickets sent before the request are setup.
            tickets_as_setup +=
                r.spans.iter().filter(|s| s.msg == MsgRef::Setup && s.class == Class::Payload).count();
        }
        assert!(tickets_as_setup > 0, "{name}");
    }
    let (r, _) = run_capture("mqtt-tls13", cfg(None)?, false)?;
    let opens = r.events.iter().filter(|e| matches!(e, Event::Open { .. })).count();
    // CONNECT, 15 PUBLISH and DISCONNECT each start a run of client records.
    assert_eq!(opens, 16, "{:?}", r.events);
    Ok(())
}

#[test]
fn probe_recognises_hellos() -> TestResult {
    let convs = conversations("https-tls12-full")?;
    let ch = &convs[0].pieces[0].1;
    assert_eq!(probe(L4::Tcp, Dir::C2S, ch), Probe::Yes);
    let sh = &convs[0].pieces[1].1;
    assert_eq!(probe(L4::Tcp, Dir::S2C, sh), Probe::Yes);
    let dtls = conversations("coap-dtls")?;
    assert_eq!(probe(L4::Udp, Dir::C2S, &dtls[0].pieces[0].1), Probe::Yes);
    assert_eq!(probe(L4::Tcp, Dir::C2S, b"GET / HTTP/1.1\r\n"), Probe::No);
    assert_eq!(probe(L4::Tcp, Dir::C2S, &[0x10, 0x16, 0x00, 0x04]), Probe::No);
    assert_eq!(probe(L4::Udp, Dir::C2S, &[23, 3, 3, 0, 40]), Probe::Maybe);
    // Over TCP any plausible record header, either way, zero length too.
    assert_eq!(probe(L4::Tcp, Dir::C2S, &[23, 3, 3, 0, 40]), Probe::Yes);
    assert_eq!(probe(L4::Tcp, Dir::S2C, &[21, 3, 1, 0, 0]), Probe::Yes);
    assert_eq!(probe(L4::Tcp, Dir::C2S, &[24, 3, 3, 0, 1]), Probe::No);
    assert_eq!(probe(L4::Tcp, Dir::C2S, &[23, 3, 5, 0, 1]), Probe::No);
    assert_eq!(probe(L4::Tcp, Dir::C2S, &[23, 3, 3, 0x48, 1]), Probe::No);
    // An SSLv2-compatible ClientHello (length 46, TLS 1.2).
    assert_eq!(probe(L4::Tcp, Dir::C2S, &[0x80, 46, 1, 3, 3, 0, 15, 0, 0, 0, 16]), Probe::Yes);
    assert_eq!(probe(L4::Tcp, Dir::C2S, &[0x80, 46, 1, 2, 0, 0, 15, 0, 0, 0, 16]), Probe::No);
    assert_eq!(probe(L4::Tcp, Dir::C2S, &[]), Probe::No);
    Ok(())
}

#[test]
fn garbage_truncation_and_gaps_never_panic_and_conserve() -> TestResult {
    let convs = conversations("https-tls13-full")?;
    let c = &convs[0];
    let stream: Vec<u8> = c.pieces.iter().filter(|(d, _)| *d == Dir::S2C).flat_map(|(_, b)| b.clone()).collect();
    let ctx = FlowCtx { l4: L4::Tcp, server_port: 443, cfg: cfg(None)? };
    for cut in [0, 1, 4, 5, 6, 100, 1000, stream.len() - 1] {
        let mut d = Tls::new(&ctx);
        let r = testkit::run(&mut d, &[(Dir::S2C, &stream[..cut])]);
        r.assert_conserved();
    }
    // Garbage: all payload, reported once per resynchronisation.
    let garbage: Vec<u8> = (0..5000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let mut d = Tls::new(&ctx);
    let r = testkit::run(&mut d, &[(Dir::C2S, &garbage), (Dir::S2C, &garbage)]);
    r.assert_conserved();
    assert!(r.events.iter().any(|e| matches!(e, Event::Malformed { .. })));
    // A record claiming more than 16 KiB + expansion is malformed.
    let mut d = Tls::new(&ctx);
    let r = testkit::run(&mut d, &[(Dir::C2S, &[23, 3, 3, 0xff, 0xff, 1, 2, 3])]);
    r.assert_conserved();
    assert_eq!(r.class(Class::Payload), 8);
    // A gap in the middle of a record, then the stream goes on.
    let mut d = Tls::new(&ctx);
    let mut r = Run::default();
    let mut e = Emit::new(0, &mut r.spans, &mut r.events, &mut r.stats);
    d.data(Dir::S2C, &stream[..200], &mut e);
    d.gap(Dir::S2C, 300, &mut e);
    d.data(Dir::S2C, &stream[500..], &mut e);
    d.finish(&mut e);
    r.fed = (stream.len() - 300) as u64;
    r.assert_conserved();
    // DTLS: a datagram cut inside a record.
    let dtls = conversations("coap-dtls")?;
    let ctx = FlowCtx { l4: L4::Udp, server_port: 5684, cfg: cfg(None)? };
    for (dir, dg) in &dtls[0].pieces {
        for cut in [0, 3, 13, 20, dg.len() - 1] {
            let mut d = Tls::new(&ctx);
            let r = testkit::run(&mut d, &[(*dir, &dg[..cut])]);
            r.assert_conserved();
        }
    }
    Ok(())
}

/// An SSLv2-compatible ClientHello opens TLS: its bytes are handshake,
/// counted apart from the records; the server's records follow as usual.
#[test]
fn an_sslv2_compatible_hello_is_handshake() {
    let specs = [0u8, 0xc0, 0x2f, 0, 0, 0x2f];
    let challenge = [7u8; 16];
    let mut body = vec![1u8, 3, 3, 0, specs.len() as u8, 0, 0, 0, challenge.len() as u8];
    body.extend_from_slice(&specs);
    body.extend_from_slice(&challenge);
    let mut hello = vec![0x80, body.len() as u8];
    hello.extend_from_slice(&body);
    assert_eq!(probe(L4::Tcp, Dir::C2S, &hello), Probe::Yes);
    let server_hello = [22u8, 3, 3, 0, 4, 2, 0, 0, 0];
    let ctx = FlowCtx { l4: L4::Tcp, server_port: 443, cfg: Arc::new(Config::default()) };
    let mut d = Tls::new(&ctx);
    let r = testkit::run(&mut d, &[(Dir::C2S, &hello), (Dir::S2C, &server_hello)]);
    r.assert_conserved();
    assert_eq!(r.class(Class::TlsHandshake), (hello.len() + server_hello.len()) as u64);
    let tls = &r.stats.tls;
    assert_eq!((tls.sslv2_client_hellos, tls.client_hellos, tls.connections), (1, 1, 1));
    assert_eq!(serde_json::to_value(&tls.records).unwrap_or_default(), serde_json::json!({"22": 1}));
    let mut random = [0u8; 32];
    random[16..].copy_from_slice(&challenge);
    assert_eq!(d.conn.client_random, Some(random));
    // Split across segments: the same bytes (the random needs it whole).
    let mut d = Tls::new(&ctx);
    let r = testkit::run(&mut d, &[(Dir::C2S, &hello[..10]), (Dir::C2S, &hello[10..]), (Dir::S2C, &server_hello)]);
    assert_eq!(r.class(Class::TlsHandshake), (hello.len() + server_hello.len()) as u64);
    assert_eq!(r.stats.tls.sslv2_client_hellos, 1);
}
