use super::*;
use crate::analyze::analyze_file;
use crate::report::Report;

fn capture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("captures").join(name)
}

#[test]
fn durations() {
    assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
    assert_eq!(parse_duration("200ms"), Ok(Duration::from_millis(200)));
    assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
    assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
    assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
    for bad in ["", "0s", "-1s", "2 weeks", "s", "1e400s", "NaNs"] {
        assert!(parse_duration(bad).is_err(), "{bad}");
    }
}

/// Rates are the growth since the previous snapshot over the wall time between.
#[test]
fn rates_between_snapshots() {
    let started = Instant::now();
    let mut model = LiveModel { source: "-".into(), started, snapshots: 0, previous: None };
    let mut r = Report::combine(vec![analyze_file(&capture("http-keepalive.pcap"), &Options::new()).unwrap()], vec![]);
    let first = model.status(&r, started + Duration::from_secs(2), false, 0);
    assert_eq!(first.snapshot, 1);
    assert_eq!(first.wire_bytes_per_s, r.totals.wire_bytes as f64 / 2.0);
    assert_eq!(first.class_bytes_per_s.values().sum::<f64>(), r.totals.wire_bytes as f64 / 2.0);
    let (frames, wire) = (r.totals.frames, r.totals.wire_bytes);
    r.totals.frames += 40;
    r.totals.wire_bytes += 4000;
    r.totals.classes.add(Class::Payload, 4000);
    let second = model.status(&r, started + Duration::from_secs(4), true, 3);
    assert_eq!(second.snapshot, 2);
    assert!(second.is_final);
    assert_eq!(second.frames_per_s, 20.0);
    assert_eq!(second.wire_bytes_per_s, 2000.0);
    assert_eq!(second.class_bytes_per_s.get(&Class::Payload), Some(&2000.0));
    assert_eq!(second.class_bytes_per_s.get(&Class::Link), Some(&0.0));
    assert_eq!(second.mean_wire_bytes_per_s, (wire + 4000) as f64 / 4.0);
    assert_eq!(second.snapshots_skipped, 3);
    assert!(frames > 0);
}

/// The view shows the snapshot's figures and the rates, and nothing it
/// would have to work out.
#[test]
fn view_shows_the_snapshot() {
    let r = Report::combine(
        vec![analyze_file(&capture("mqtt-reconnect-per-message.pcap"), &Options::new()).unwrap()],
        vec![],
    );
    let mut model = LiveModel { source: "veth0".into(), started: Instant::now(), snapshots: 0, previous: None };
    let st = model.status(&r, model.started + Duration::from_secs(65), false, 0);
    let text = view::render(&st, &r, 3);
    assert!(text.starts_with("wiretax live: veth0   00:01:05   snapshot 1"), "{text}");
    assert!(text.contains(&format!("{} frames", r.totals.frames)), "{text}");
    for c in Class::ALL {
        assert!(text.contains(c.name()), "{text}");
    }
    assert!(text.contains("top flows by wire bytes (3 of "), "{text}");
    assert!(text.contains("radio lte: on"), "{text}");
    assert!(text.contains(&format!("findings ({})", r.findings.len())), "{text}");
    for f in r.findings.iter().take(3) {
        assert!(text.contains(&f.id), "{text}");
    }
}

/// A JSON line reads back as the report it carries (the `live` key is one
/// more field), and its status as a `LiveStatus`.
#[test]
fn json_line_is_a_report() {
    let r = Report::combine(vec![analyze_file(&capture("coap-observe.pcap"), &Options::new()).unwrap()], vec![]);
    let mut model = LiveModel { source: "-".into(), started: Instant::now(), snapshots: 0, previous: None };
    let st = model.status(&r, model.started + Duration::from_secs(1), false, 0);
    let line = serde_json::to_string(&Line { live: &st, report: &r }).unwrap();
    assert!(!line.contains('\n'));
    let back = Report::read(line.as_bytes()).unwrap();
    assert_eq!(serde_json::to_value(&back).unwrap(), serde_json::to_value(&r).unwrap());
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let st_back: LiveStatus = serde_json::from_value(v["live"].clone()).unwrap();
    assert_eq!(st_back, st);
}

/// The live clock's premise: the engine moved on to just before each next
/// packet (as `advance` does when packets pause) ends flows as `analyze`
/// does, on every shipped capture.
#[test]
fn advancing_the_clock_changes_no_report() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
        .collect();
    files.sort();
    assert!(files.len() > 30);
    for path in files {
        let opts = Options::new();
        let expected = Report::combine(vec![analyze_file(&path, &opts).unwrap()], vec![]);
        let mut engine = Engine::new(path.display().to_string(), &opts).unwrap();
        let mut reader = CaptureReader::open(&path).unwrap();
        let mut last = None::<i64>;
        reader
            .for_each(|p, _| {
                if let Some(t) = last
                    && p.ts_ns > t + 1
                {
                    engine.advance(p.ts_ns - 1);
                }
                last = Some(last.map_or(p.ts_ns, |t| t.max(p.ts_ns)));
                engine.push(p);
            })
            .unwrap();
        let stats = reader.stats();
        engine.set_source(SourceNotes {
            format: stats.format.to_string(),
            skipped_blocks: stats.skipped_blocks + stats.unknown_blocks,
            read_error: None,
            ..SourceNotes::default()
        });
        let got = engine.finish().unwrap();
        assert_eq!(
            serde_json::to_string(&got).unwrap(),
            serde_json::to_string(&expected).unwrap(),
            "{}",
            path.display()
        );
    }
}

/// The capture never waits for the output: a snapshot not yet shown is
/// replaced by the next, and counted.
#[test]
fn a_slow_output_skips_snapshots() {
    let r = Report::combine(vec![analyze_file(&capture("coap-non.pcap"), &Options::new()).unwrap()], vec![]);
    let started = Instant::now();
    let mut model = LiveModel { source: "-".into(), started, snapshots: 0, previous: None };
    let slot = Slot::default();
    for i in 1..=3 {
        slot.put(&mut model, r.clone(), started + Duration::from_secs(i), false);
    }
    assert_eq!(slot.skipped(), 2);
    let shown = slot.take().unwrap();
    assert_eq!(shown.0.snapshot, 3);
    assert_eq!(shown.0.snapshots_skipped, 2);
    // Closed: the output thread's wait ends.
    let slot = Arc::new(slot);
    let waiter = {
        let slot = slot.clone();
        std::thread::spawn(move || slot.take().is_none())
    };
    std::thread::sleep(Duration::from_millis(50));
    slot.close();
    assert!(waiter.join().unwrap());
}
