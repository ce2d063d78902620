//! The engine fed packet by packet: snapshots taken along the way change
//! nothing in the final report, which is the report `analyze` gives.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::shipped_captures;
use std::path::Path;
use wiretax::analyze::{Engine, Options, SourceNotes, analyze_file};
use wiretax::capture::CaptureReader;
use wiretax::report::{Report, json};

fn to_json(r: &Report) -> String {
    let mut out = Vec::new();
    json::write_pretty(&mut out, r).unwrap();
    String::from_utf8(out).unwrap()
}

fn options(jobs: usize) -> Options {
    let mut o = Options::new();
    o.jobs = jobs;
    o
}

/// Pushes every packet of `cap`, calling `between` after each, and finishes.
fn through_engine(cap: &Path, opts: &Options, mut between: impl FnMut(&mut Engine, u64, i64)) -> Report {
    let mut engine = Engine::new(cap.display().to_string(), opts).unwrap();
    let mut reader = CaptureReader::open(cap).unwrap();
    let mut n = 0u64;
    reader
        .for_each(|p, _| {
            engine.push(p);
            n += 1;
            between(&mut engine, n, p.ts_ns);
        })
        .unwrap();
    let stats = reader.stats();
    engine.set_source(SourceNotes {
        format: stats.format.to_string(),
        skipped_blocks: stats.skipped_blocks + stats.unknown_blocks,
        read_error: None,
        ..Default::default()
    });
    engine.finish().unwrap()
}

#[test]
fn snapshots_every_tenth_packet_leave_the_final_report_as_analyze_gives_it() {
    for jobs in [1, 2] {
        let opts = options(jobs);
        for cap in shipped_captures() {
            let want = to_json(&Report::combine(vec![analyze_file(&cap, &opts).unwrap()], Vec::new()));
            let mut snapshots = 0;
            let mut last_frames = 0;
            let got = through_engine(&cap, &opts, |e, n, _| {
                if n % 10 == 0 {
                    let s = e.snapshot().unwrap();
                    // A snapshot covers every packet pushed so far.
                    assert_eq!(s.totals.frames, n);
                    assert!(s.totals.frames >= last_frames);
                    assert_eq!(s.totals.classes.total(), s.totals.wire_bytes, "conservation in a snapshot");
                    last_frames = s.totals.frames;
                    snapshots += 1;
                }
            });
            assert_eq!(snapshots, got.totals.frames / 10, "{}", cap.display());
            assert!(to_json(&got) == want, "{} at --jobs {jobs}: the final report differs", cap.display());
        }
    }
}

#[test]
fn a_snapshot_at_the_end_is_the_final_report() {
    for jobs in [1, 2] {
        let opts = options(jobs);
        for name in ["http-keepalive.pcap", "mqtt-reconnect-per-message.pcap", "coap-observe.pcap"] {
            let cap = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures").join(name);
            let mut last = None;
            let fin = through_engine(&cap, &opts, |e, _, _| last = Some(to_json(&e.snapshot().unwrap())));
            // The last snapshot lacks only the source notes set at the end.
            let fin_json = to_json(&fin);
            let last = last.unwrap().replace("\"format\": \"\"", "\"format\": \"pcap\"");
            assert_eq!(last, fin_json, "{name} at --jobs {jobs}");
        }
    }
}

/// A clock moved past every idle timeout ends the flows as the end of the
/// input would: the report is the same.
#[test]
fn advancing_the_clock_ends_idle_flows_as_the_end_would() {
    for jobs in [1, 2] {
        let opts = options(jobs);
        for name in ["coap-non.pcap", "sparse-coap-non.pcap", "http-poll-close.pcap"] {
            let cap = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures").join(name);
            let plain = to_json(&through_engine(&cap, &opts, |_, _, _| {}));
            // The clock moved on two hours after the last packet.
            let mut engine = Engine::new(cap.display().to_string(), &opts).unwrap();
            let mut reader = CaptureReader::open(&cap).unwrap();
            let mut last = 0;
            reader
                .for_each(|p, _| {
                    engine.push(p);
                    last = p.ts_ns;
                })
                .unwrap();
            engine.advance(last + 7_200_000_000_000);
            engine.set_source(SourceNotes { format: "pcap".into(), ..Default::default() });
            let moved = engine.finish().unwrap();
            assert_eq!(to_json(&moved), plain, "{name} at --jobs {jobs}");
        }
    }
}
