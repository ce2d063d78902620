//! Spreading flows over threads must not change a single figure: the JSON
//! report with `--jobs 1` and `--jobs 2` is byte-identical.

// Helpers of a test may unwrap: a panic there fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use wiretax::analyze::{Options, analyze_file};
use wiretax::report::Report;

/// The shipped pcap and pcapng captures.
fn captures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures");
    let all = std::fs::read_dir(dir).unwrap().flatten().map(|e| e.path());
    all.filter(|p| matches!(p.extension().and_then(|x| x.to_str()), Some("pcap" | "pcapng"))).collect()
}

/// The default options, with `jobs` and the lists' caps.
fn options(jobs: usize, max_flows: usize, max_exchanges: usize) -> Options {
    Options { jobs, max_flows, max_exchanges, ..Options::new() }
}

fn json(cap: &Path, jobs: usize) -> String {
    json_listing(cap, jobs, usize::MAX)
}

/// The report listing at most `max` flows and `max` exchanges.
fn json_listing(cap: &Path, jobs: usize, max: usize) -> String {
    let d = Options::new();
    let r = analyze_file(cap, &options(jobs, max.min(d.max_flows), max.min(d.max_exchanges))).unwrap();
    serde_json::to_string_pretty(&Report::combine(vec![r], vec![])).unwrap()
}

#[test]
fn one_and_two_jobs_give_identical_reports() {
    let mut n = 0;
    for p in captures() {
        let (a, b) = (json(&p, 1), json(&p, 2));
        assert!(a == b, "{}: --jobs 1 and --jobs 2 differ", p.display());
        n += 1;
    }
    assert!(n > 30);
}

/// Any `--jobs` works: threads are capped (20,000 jobs once failed to
/// start 40,000 threads and aborted).
#[test]
fn an_absurd_number_of_jobs_gives_the_same_report() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures");
    let p = dir.join("http-keepalive.pcap");
    assert!(json(&p, 1) == json(&p, 100_000));
    let files = vec![p.clone(), dir.join("coap-con-get.pcap"), p];
    let o = Options::new();
    let one = wiretax::analyze::analyze_all(&files, &o, 1).into_iter().map(|r| r.unwrap());
    let many = wiretax::analyze::analyze_all(&files, &o, 100_000).into_iter().map(|r| r.unwrap());
    let one = serde_json::to_string(&Report::combine(one.collect(), vec![])).unwrap();
    assert_eq!(one, serde_json::to_string(&Report::combine(many.collect(), vec![])).unwrap());
}

#[test]
fn several_inputs_in_parallel_match_one_at_a_time() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures");
    let files = vec![dir.join("http-keepalive.pcap"), dir.join("coap-con-get.pcap"), dir.join("mqtt311-qos1.pcap")];
    let o = Options::new();
    let serial: Vec<_> = files.iter().map(|f| analyze_file(f, &o).unwrap()).collect();
    let parallel: Vec<_> = wiretax::analyze::analyze_all(&files, &o, 2).into_iter().map(|r| r.unwrap()).collect();
    let a = serde_json::to_string(&Report::combine(serial, vec![])).unwrap();
    let b = serde_json::to_string(&Report::combine(parallel, vec![])).unwrap();
    assert_eq!(a, b);
}

/// Once its list is full a worker stops building descriptions of the
/// exchanges it can no longer list: a short list must still be exactly the
/// start of the long one, descriptions included, for any number of jobs.
#[test]
fn capped_lists_are_the_start_of_the_full_ones() {
    let listed = |p: &Path, jobs: usize, max: usize| {
        let r = analyze_file(p, &options(jobs, max, max)).unwrap();
        let r = serde_json::to_value(Report::combine(vec![r], vec![])).unwrap();
        (r["exchanges"].as_array().unwrap().clone(), r["flows"].as_array().unwrap().clone())
    };
    let mut cut = 0;
    for p in captures() {
        let (all_x, all_f) = listed(&p, 1, usize::MAX);
        for jobs in [1, 2] {
            for max in [1, 3] {
                let (x, f) = listed(&p, jobs, max);
                assert_eq!(x[..], all_x[..all_x.len().min(max)], "{} exchanges, jobs {jobs} max {max}", p.display());
                assert_eq!(f[..], all_f[..all_f.len().min(max)], "{} flows, jobs {jobs} max {max}", p.display());
                cut += usize::from(all_x.len() > 2 * max + 1);
            }
        }
    }
    assert!(cut > 20, "too few captures long enough to cut their lists: {cut}");
}

/// With fewer flows listed than there are, the same flows are listed for
/// any number of jobs, an exchange whose flow is not listed names none, and
/// DNS lookups are charged to listed flows only. (Two workers once listed
/// more flows between them than one, and numbered such an exchange's flow.)
#[test]
fn a_flow_cap_lists_the_same_for_any_jobs() {
    let report = |p: &Path, jobs: usize, max_flows: usize| {
        let o = options(jobs, max_flows, Options::new().max_exchanges);
        let r = analyze_file(p, &o).unwrap();
        // Twice: numbers are offset per input when inputs are combined.
        let both = Report::combine(vec![analyze_file(p, &o).unwrap(), r], vec![]);
        serde_json::to_value(both).unwrap()
    };
    let mut unlisted = 0;
    for p in captures() {
        for max_flows in [1, 2] {
            let one = report(&p, 1, max_flows);
            assert!(one == report(&p, 2, max_flows), "{}: --max-flows {max_flows}", p.display());
            let flows = one["flows"].as_array().unwrap().len();
            for x in one["exchanges"].as_array().unwrap() {
                match x["flow"].as_u64() {
                    Some(f) => assert!(one["flows"].as_array().unwrap().iter().any(|g| g["id"] == f), "{x}"),
                    None => {
                        assert!(x["flow"].is_null());
                        unlisted += 1;
                    }
                }
            }
            assert!(flows <= 2 * max_flows);
        }
    }
    assert!(unlisted > 10, "too few exchanges of unlisted flows: {unlisted}");
}

/// A pcap record: capture time in ns, and its record header and data.
type Record = (i64, Vec<u8>);

/// A classic pcap's link type and records.
fn pcap_records(p: &Path) -> Option<(u32, Vec<Record>)> {
    let b = std::fs::read(p).ok()?;
    let magic = u32::from_le_bytes(b.get(..4)?.try_into().ok()?);
    let nano = match magic {
        0xa1b2_c3d4 => false,
        0xa1b2_3c4d => true,
        _ => return None,
    };
    let linktype = u32::from_le_bytes(b.get(20..24)?.try_into().ok()?);
    let mut out = Vec::new();
    let mut at = 24;
    while let Some(h) = b.get(at..at + 16) {
        let word = |i: usize| u32::from_le_bytes(h[i..i + 4].try_into().unwrap());
        let frac = word(4) as i64 * if nano { 1 } else { 1000 };
        let len = word(8) as usize;
        out.push((word(0) as i64 * 1_000_000_000 + frac, b.get(at..at + 16 + len)?.to_vec()));
        at += 16 + len;
    }
    Some((linktype, out))
}

/// Every shipped Ethernet capture in one file, each started 50 ms after
/// the previous, so their flows interleave and spread over the workers:
/// statistics merged from several threads (maps past their cap, the first
/// CONNECT's keep-alive) must come out as from one.
#[test]
fn a_merge_of_all_captures_gives_identical_reports_for_any_jobs() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures");
    let mut names: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()).collect();
    names.sort();
    let mut all: Vec<Record> = Vec::new();
    let mut merged = 0;
    for p in names.iter().filter(|p| p.extension().is_some_and(|x| x == "pcap")) {
        let Some((1, recs)) = pcap_records(p) else { continue };
        let Some(first) = recs.first().map(|r| r.0) else { continue };
        let start = 1_800_000_000_000_000_000 + merged * 50_000_000;
        for (ts, mut rec) in recs {
            let ts = ts - first + start;
            rec[..4].copy_from_slice(&((ts / 1_000_000_000) as u32).to_le_bytes());
            rec[4..8].copy_from_slice(&((ts % 1_000_000_000) as u32).to_le_bytes());
            all.push((ts, rec));
        }
        merged += 1;
    }
    assert!(merged > 20, "only {merged} Ethernet pcap captures");
    all.sort_by_key(|r| r.0);
    // Little-endian, nanosecond pcap, version 2.4, snaplen 262144, Ethernet.
    let mut file: Vec<u8> = vec![0x4d, 0x3c, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 1, 0, 0, 0];
    for (_, rec) in &all {
        file.extend_from_slice(rec);
    }
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("all.pcap");
    std::fs::write(&path, &file).unwrap();
    let one = json(&path, 1);
    for jobs in [2, 3] {
        assert!(one == json(&path, jobs), "--jobs 1 and --jobs {jobs} differ on the merged capture");
    }
    // Short lists: the workers cut theirs by what the others keep, often.
    for max in [5, 40] {
        let one = json_listing(&path, 1, max);
        for jobs in [2, 3] {
            assert!(one == json_listing(&path, jobs, max), "--jobs 1 and --jobs {jobs} differ listing {max}");
        }
    }
}
