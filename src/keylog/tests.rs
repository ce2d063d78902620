use super::*;
use crate::dissect::testkit::TestResult;

const CR: &str = "0102030405060708091011121314151617181920212223242526272829303132";

#[test]
fn parses_tls12_and_tls13_lines_and_counts_bad_ones() -> TestResult {
    let ms = "aa".repeat(48);
    let s32 = "bb".repeat(32);
    let text = format!(
        "# comment\n\
         CLIENT_RANDOM {CR} {ms}\n\
         CLIENT_HANDSHAKE_TRAFFIC_SECRET {CR} {s32}\n\
         SERVER_TRAFFIC_SECRET_0 {CR} {s32}\n\
         EXPORTER_SECRET {CR} {s32}\n\
         CLIENT_RANDOM {CR} abc\n\
         CLIENT_RANDOM 0102 {ms}\n\
         NONSENSE\n\
         CLIENT_TRAFFIC_SECRET_0 {CR} {}",
        &s32[..20]
    );
    let log = KeyLog::parse(&text);
    assert_eq!(log.sessions(), 1);
    assert_eq!(log.secret_lines(), 3);
    assert_eq!(log.ignored_lines(), 1);
    assert_eq!(log.bad_lines(), 4);
    let cr = decode_hex(CR).ok_or("CR is not hex")?;
    let s = log.lookup(&cr).ok_or("no session for CR")?;
    assert_eq!(s.master_secret.as_ref().ok_or("no master secret")?.bytes(), &[0xaa; 48][..]);
    assert!(s.has_tls13());
    assert!(s.client_traffic_0.is_none());
    assert!(log.lookup(&[0u8; 32]).is_none());
    assert!(log.lookup(&[0u8; 3]).is_none());
    Ok(())
}

#[test]
fn debug_never_shows_secrets() -> TestResult {
    let text = format!("CLIENT_RANDOM {CR} {}\n", "c7".repeat(48));
    let log = KeyLog::parse(&text);
    let shown =
        format!("{log:?} {:?}", log.lookup(&decode_hex(CR).ok_or("CR is not hex")?).ok_or("no session for CR")?);
    assert!(!shown.contains("c7c7"), "{shown}");
    assert!(!shown.contains("199"), "{shown}");
    assert!(shown.contains("redacted"));
    Ok(())
}

#[test]
fn load_reads_shipped_key_log_and_reports_missing_file() -> TestResult {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/captures/https-tls12-full.keylog");
    let log = KeyLog::load(path)?;
    assert_eq!(log.bad_lines(), 0);
    assert_eq!(log.sessions(), 12);
    let err = KeyLog::load("/nonexistent/wiretax.keylog").unwrap_err();
    assert!(err.to_string().contains("/nonexistent/wiretax.keylog"));
    Ok(())
}

#[test]
fn garbage_and_truncation_never_panic() -> TestResult {
    let full = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/captures/https-tls13-full.keylog"))?;
    for cut in (0..full.len()).step_by(37) {
        let log = KeyLog::parse(&full[..cut]);
        assert!(log.bad_lines() <= 1);
    }
    let log = KeyLog::parse("\u{0}\u{ff}CLIENT_RANDOM \u{1F600}\n\t\t\n");
    assert_eq!(log.sessions(), 0);
    Ok(())
}

#[test]
fn a_key_store_holds_at_most_its_cap_of_connections() -> TestResult {
    let line = |i: u32| format!("CLIENT_RANDOM {i:064x} {}\n", "cd".repeat(48));
    let store = KeyStore::with_cap(3);
    let first: String = (1..=2).map(line).collect();
    assert_eq!(store.add(KeyLog::parse(&first)), 0);
    // One more fits; two more do not; a connection already held takes a new secret.
    let more: String = (2..=5).map(line).collect();
    assert_eq!(store.add(KeyLog::parse(&more)), 2);
    assert!(store.lookup(&[0; 31].iter().copied().chain([3]).collect::<Vec<_>>()).is_some());
    assert!(store.lookup(&[0; 31].iter().copied().chain([5]).collect::<Vec<_>>()).is_none());
    assert_eq!(KeyStore::default().cap(), MAX_FOUND_SESSIONS);
    Ok(())
}
