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

/// A Parquet file's batches.
fn parquet_batches(p: &Path) -> Vec<arrow_array::RecordBatch> {
    let f = std::fs::File::open(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f).unwrap().build().unwrap();
    reader.map(|b| b.unwrap()).collect()
}

fn f64_column(batches: &[arrow_array::RecordBatch], name: &str) -> Vec<Option<f64>> {
    use arrow_array::Array;
    let mut out = Vec::new();
    for b in batches {
        let col = b.column_by_name(name).unwrap_or_else(|| panic!("no column {name}"));
        let col = col.as_any().downcast_ref::<arrow_array::Float64Array>().unwrap();
        out.extend((0..col.len()).map(|i| (!col.is_null(i)).then(|| col.value(i))));
    }
    out
}

/// A saved report of several inputs exports each input's devices, time
/// bins and radio bins, and its exchanges' radio shares, as the analysis
/// exported them input by input (the lists of every input are one file,
/// named after the saved report).
#[test]
fn a_saved_report_of_several_inputs_exports_every_inputs_tables() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let names = ["sparse-https-poll", "sparse-mqtt-gps", "coap-observe"];
    let caps: Vec<String> = names
        .iter()
        .map(|n| Path::new(env!("CARGO_MANIFEST_DIR")).join("captures").join(format!("{n}.pcap")).display().to_string())
        .collect();
    let (analysed, reported, saved) = (d.join("analysed"), d.join("reported"), d.join("saved.json"));
    let mut args: Vec<&str> = vec!["analyze"];
    args.extend(caps.iter().map(String::as_str));
    args.extend(["--format", "json", "-o", saved.to_str().unwrap(), "--export", analysed.to_str().unwrap()]);
    run(&args);
    run(&["report", saved.to_str().unwrap(), "--export", reported.to_str().unwrap()]);
    for table in ["devices", "time_bins", "radio_bins"] {
        // CSV lines: a header, then the rows.
        let lines = |p: &Path| -> (String, Vec<String>) {
            let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let mut l = text.lines().map(str::to_string);
            (l.next().unwrap_or_default(), l.collect())
        };
        let per_input: Vec<_> = names.iter().map(|n| lines(&analysed.join(table).join(format!("{n}.csv")))).collect();
        let want: Vec<String> = per_input.iter().flat_map(|(_, rows)| rows.clone()).collect();
        let (header, got) = lines(&reported.join(table).join("saved.csv"));
        assert!(!want.is_empty(), "{table}: no rows");
        assert_eq!(header, per_input[0].0, "{table}");
        assert_eq!(got, want, "{table}");
    }
    for column in ["radio_energy_j", "radio_charge_mah", "radio_on_s"] {
        let want: Vec<Option<f64>> = names
            .iter()
            .flat_map(|n| {
                f64_column(&parquet_batches(&analysed.join("exchanges").join(format!("{n}.parquet"))), column)
            })
            .collect();
        let got = f64_column(&parquet_batches(&reported.join("exchanges").join("saved.parquet")), column);
        assert!(want.iter().filter(|v| v.is_some()).count() > 10, "{column}: too few shares to test");
        assert_eq!(got, want, "{column}");
    }
}
