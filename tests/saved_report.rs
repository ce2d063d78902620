//! A report saved as JSON reads back into the same report: `wiretax report`
//! prints exactly what `wiretax analyze` printed, as a table, as JSON, as
//! HTML and as Markdown.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::shipped_captures;
use std::path::Path;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_wiretax"))
}

fn run(args: &[&str]) -> Vec<u8> {
    let out = bin().args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

#[test]
fn a_saved_report_renders_as_analyze_rendered_it() {
    let dir = tempfile::tempdir().unwrap();
    for cap in shipped_captures() {
        let c = cap.to_str().unwrap();
        let keylog = cap.with_extension("keylog");
        let mut args = vec!["analyze", c, "--jobs", "1"];
        let k = keylog.to_str().unwrap().to_string();
        if keylog.exists() {
            args.extend(["--keylog", &k]);
        }
        let saved = dir.path().join("saved.json");
        let s = saved.to_str().unwrap();
        let json = run(&[&args[..], &["--format", "json"]].concat());
        std::fs::write(&saved, &json).unwrap();
        assert_eq!(run(&["report", s, "--format", "json"]), json, "{c}: JSON read back and written again");
        let table = run(&args);
        assert_eq!(String::from_utf8(run(&["report", s])).unwrap(), String::from_utf8(table).unwrap(), "{c}");
        let top3 = run(&[&args[..], &["--top", "3"]].concat());
        assert_eq!(run(&["report", s, "--top", "3"]), top3, "{c}: --top 3");
        let html = run(&[&args[..], &["--format", "html"]].concat());
        assert!(run(&["report", s, "--format", "html"]) == html, "{c}: HTML");
        // Markdown and its charts, each under its own stem.
        let (a, r) = (dir.path().join("analysed"), dir.path().join("reported"));
        for d in [&a, &r] {
            std::fs::create_dir_all(d).unwrap();
        }
        run(&[&args[..], &["--format", "md", "-o", a.join("x.md").to_str().unwrap()]].concat());
        run(&["report", s, "--format", "md", "-o", r.join("x.md").to_str().unwrap()]);
        let files = |d: &Path| {
            let mut v: Vec<_> = std::fs::read_dir(d).unwrap().map(|e| e.unwrap().path()).collect();
            v.sort();
            v.iter().map(|p| (p.file_name().unwrap().to_owned(), std::fs::read(p).unwrap())).collect::<Vec<_>>()
        };
        assert!(files(&a) == files(&r), "{c}: Markdown and its charts");
        for d in [&a, &r] {
            std::fs::remove_dir_all(d).unwrap();
        }
    }
}

#[test]
fn a_file_that_is_not_a_report_is_refused_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.json");
    for (text, why) in [("{}", "not a wiretax report"), ("[1, 2]", "not a wiretax report")] {
        std::fs::write(&p, text).unwrap();
        let out = bin().args(["report", p.to_str().unwrap()]).output().unwrap();
        // No report could be read: status 1, as analyze's unreadable input.
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains(why), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let json = run(&[
        "analyze",
        "--format",
        "json",
        Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/coap-non.pcap").to_str().unwrap(),
    ]);
    let other = String::from_utf8(json).unwrap().replacen("\"wiretax/1\"", "\"wiretax/9\"", 1);
    std::fs::write(&p, other).unwrap();
    let out = bin().args(["report", p.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("schema"));
}

/// The report read back a piece at a time (what the table draws from) is
/// the report read back whole from its JSON, with one input and with
/// several (whose devices and radios sit in `inputs`).
#[test]
fn a_report_read_back_piece_by_piece_is_the_report_read_back_whole() {
    use wiretax::analyze::{Options, analyze_file};
    use wiretax::report::{Report, json::write_pretty};
    let whole = |r: &Report| {
        let mut bytes = Vec::new();
        write_pretty(&mut bytes, r).unwrap();
        Report::read(bytes.as_slice()).unwrap()
    };
    let caps = shipped_captures();
    let opts = Options::new();
    let mut sets: Vec<Vec<_>> = caps.iter().map(|c| vec![c.clone()]).collect();
    sets.push(caps.iter().take(6).cloned().collect());
    for set in sets {
        let inputs = set.iter().map(|c| analyze_file(c, &opts).unwrap()).collect();
        let report = Report::combine(inputs, Vec::new());
        let want = serde_json::to_string(&whole(&report)).unwrap();
        let got = serde_json::to_string(&report.into_model_precision().unwrap()).unwrap();
        assert_eq!(got, want, "{set:?}");
    }
}

/// `--export` writes the same tables, Parquet and CSV, from the analysis
/// and from its saved report: numbers at the model's precision, as in the
/// JSON, not float noise (13.588035147000001).
#[test]
fn a_saved_report_exports_what_the_analysis_exported() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let tree = |root: &Path| {
        let mut files = Vec::new();
        for sub in std::fs::read_dir(root).unwrap() {
            for f in std::fs::read_dir(sub.unwrap().path()).unwrap() {
                let p = f.unwrap().path();
                files.push((p.strip_prefix(root).unwrap().to_owned(), std::fs::read(&p).unwrap()));
            }
        }
        files.sort();
        files
    };
    for name in ["http-pipelined.pcap", "sparse-mqtt-gps.pcap", "coap-observe.pcap"] {
        let c = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures").join(name);
        let (analysed, reported, saved) = (d.join("analysed"), d.join("reported"), d.join("saved.json"));
        let args = ["analyze", c.to_str().unwrap(), "--format", "json", "-o", saved.to_str().unwrap()];
        run(&[&args[..], &["--export", analysed.to_str().unwrap()]].concat());
        run(&["report", saved.to_str().unwrap(), "--export", reported.to_str().unwrap()]);
        let (a, r) = (tree(&analysed), tree(&reported));
        assert!(!a.is_empty() && a == r, "{name}: the exported tables differ");
        for p in [&analysed, &reported] {
            std::fs::remove_dir_all(p).unwrap();
        }
    }
}
