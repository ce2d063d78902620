//! Every input the fuzzers found a crash with (scripts/fuzz), replayed
//! through the same target code: tests/data/fuzz/<target>/<name>, one
//! file per crash, added before the fix.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use wiretax::fuzzing::{TARGETS, run};

#[test]
fn every_crash_found_by_fuzzing_stays_fixed() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz");
    let mut replayed = 0;
    for target in TARGETS {
        let Ok(entries) = std::fs::read_dir(root.join(target)) else { continue };
        let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            // Said before the run: a panic's message then names its input.
            eprintln!("replaying {}", path.display());
            assert!(run(target, &data), "{target}: no such target");
            replayed += 1;
        }
    }
    eprintln!("{replayed} fuzz regressions replayed");
}

#[test]
fn every_crash_directory_is_a_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz");
    for e in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if e.path().is_dir() {
            assert!(TARGETS.contains(&name.as_str()), "tests/data/fuzz/{name}: not a fuzz target");
        }
    }
}

/// The pipeline target reads captures from memory through the engine: every
/// shipped capture passes its checks (the conservation law), and its report
/// is the file's.
#[test]
fn the_pipeline_target_passes_every_shipped_capture() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures");
    let mut seen = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let path = e.path();
        if !matches!(path.extension().and_then(|x| x.to_str()), Some("pcap" | "pcapng")) {
            continue;
        }
        let data = std::fs::read(&path).unwrap();
        assert!(run("pipeline", &data));
        let json = wiretax::fuzzing::analyze_bytes(&data).unwrap();
        let report: serde_json::Value = serde_json::from_str(&json).unwrap();
        let mut opts = wiretax::analyze::Options::new();
        opts.jobs = 1;
        let file = wiretax::analyze::analyze_file(&path, &opts).unwrap();
        assert_eq!(report["totals"]["wire_bytes"].as_u64(), Some(file.totals.wire_bytes), "{}", path.display());
        seen += 1;
    }
    assert!(seen >= 37);
}
