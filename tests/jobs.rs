//! Spreading flows over threads must not change a single figure: the JSON
//! report with `--jobs 1` and `--jobs 2` is byte-identical.

use std::path::Path;
use wiretax::analyze::{Options, analyze_file};
use wiretax::report::Report;

fn json(cap: &Path, jobs: usize) -> String {
    let mut o = Options::new();
    o.jobs = jobs;
    let r = analyze_file(cap, &o).unwrap();
    serde_json::to_string_pretty(&Report::combine(vec![r], vec![])).unwrap()
}

#[test]
fn one_and_two_jobs_give_identical_reports() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if !matches!(p.extension().and_then(|x| x.to_str()), Some("pcap" | "pcapng")) {
            continue;
        }
        let (a, b) = (json(&p, 1), json(&p, 2));
        assert!(a == b, "{}: --jobs 1 and --jobs 2 differ", p.display());
        n += 1;
    }
    assert!(n > 30);
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
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures");
    let listed = |p: &Path, jobs: usize, max: usize| {
        let mut o = Options::new();
        o.jobs = jobs;
        o.max_exchanges = max;
        o.max_flows = max;
        let r = serde_json::to_value(Report::combine(vec![analyze_file(p, &o).unwrap()], vec![])).unwrap();
        (r["exchanges"].as_array().unwrap().clone(), r["flows"].as_array().unwrap().clone())
    };
    let mut cut = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if !matches!(p.extension().and_then(|x| x.to_str()), Some("pcap" | "pcapng")) {
            continue;
        }
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
