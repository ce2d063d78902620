//! `wiretax live -`: a capture stream on standard input, written in chunks
//! with pauses as `tcpdump -U -w -` would, watched as it comes. Needs no
//! libpcap.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_wiretax"))
}

fn cap(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("captures").join(name)
}

/// `wiretax analyze FILE --format json`.
fn analyze(path: &Path) -> Value {
    let out = bin().args(["analyze", path.to_str().unwrap(), "--format", "json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The report with its input's name taken out (the stream is `-`, the file has its path).
fn unnamed(mut r: Value) -> Value {
    for i in r["inputs"].as_array_mut().unwrap() {
        i["input"] = Value::Null;
    }
    r
}

/// Runs `wiretax live - ARGS` with `file` written to its stdin in `chunks`
/// pieces, `pause` apart; its stdout and the run's exit.
fn stream(file: &Path, chunks: usize, pause: Duration, args: &[&str]) -> String {
    let bytes = std::fs::read(file).unwrap();
    let mut child = bin()
        .args(["live", "-", "--interval", "200ms"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // Read as it comes: a full pipe would hold the output up, and a slow
    // output skips snapshots by design.
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut text).map(|_| text)
    });
    let piece = bytes.len().div_ceil(chunks);
    for chunk in bytes.chunks(piece) {
        stdin.write_all(chunk).unwrap();
        stdin.flush().unwrap();
        std::thread::sleep(pause);
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    reader.join().unwrap().unwrap()
}

#[test]
fn snapshots_grow_and_the_final_report_is_the_files() {
    let file = cap("websocket-storm-backoff.pcap");
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let written = dir.path().join("kept.pcapng");
    let stdout = stream(
        &file,
        6,
        Duration::from_millis(300),
        &["--format", "json", "-o", report.to_str().unwrap(), "--write", written.to_str().unwrap()],
    );
    let lines: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines.len() >= 2, "{} JSON lines", lines.len());
    let frames: Vec<u64> = lines.iter().map(|l| l["totals"]["frames"].as_u64().unwrap()).collect();
    assert!(frames.windows(2).all(|w| w[0] <= w[1]), "frames went down: {frames:?}");
    assert!(frames.first() < frames.last(), "no growth: {frames:?}");
    let snapshots: Vec<u64> = lines.iter().map(|l| l["live"]["snapshot"].as_u64().unwrap()).collect();
    assert!(snapshots.windows(2).all(|w| w[0] < w[1]), "{snapshots:?}");
    assert!(lines.iter().all(|l| l["live"]["final"] == false && l["live"]["source"] == "-"));
    assert!(lines.iter().all(|l| l["schema"] == "wiretax/1"));

    let expected = analyze(&file);
    let got: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(got["inputs"][0]["input"], "-");
    assert!(got.get("live").is_none(), "the report file is the report alone");
    assert_eq!(unnamed(got), unnamed(expected.clone()));
    // The copy kept with --write gives the same report too.
    let kept = analyze(&written);
    let mut kept = unnamed(kept);
    kept["inputs"][0]["notes"]["format"] = "pcap".into();
    assert_eq!(kept, unnamed(expected));
}

/// Without `-o`, the final report is the last JSON line, marked final.
#[test]
fn the_last_line_is_the_final_report() {
    let file = cap("mqtt-reconnect-per-message.pcap");
    let stdout = stream(&file, 3, Duration::from_millis(250), &["--format", "json"]);
    let lines: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let (last, before) = lines.split_last().unwrap();
    assert_eq!(last["live"]["final"], true);
    assert!(before.iter().all(|l| l["live"]["final"] == false));
    let mut last = last.clone();
    last.as_object_mut().unwrap().remove("live");
    assert_eq!(unnamed(last), unnamed(analyze(&file)));
}

/// Piped and asked for a table: JSON Lines while it runs, then the table.
#[test]
fn a_table_follows_the_lines_off_a_terminal() {
    let file = cap("coap-observe.pcap");
    let stdout = stream(&file, 2, Duration::from_millis(300), &[]);
    let (json, table): (Vec<&str>, Vec<&str>) = stdout.lines().partition(|l| l.starts_with('{'));
    assert!(!json.is_empty());
    let table = table.join("\n");
    assert!(table.contains("wiretax: -") && table.contains("Byte ledger"), "{table}");
}

#[test]
fn errors_say_what_to_do() {
    let out = bin().args(["live", "-"]).stdin(Stdio::null()).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("empty file") && err.lines().count() == 1, "{err}");

    let out = bin().args(["live", "-", "--filter", "tcp"]).stdin(Stdio::null()).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("--filter applies to an interface"));

    let out = bin().args(["live", "-", "--interval", "soon"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a duration"));

    if cfg!(not(feature = "live")) {
        let out = bin().args(["live", "-i", "lo"]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("--features live"), "{err}");
    }
}

/// Starts `wiretax live - ARGS`, writes `file` to it and keeps its stdin
/// open (a stream that has not ended); the first JSON line it writes.
fn open_stream(file: &Path, args: &[&str]) -> (std::process::Child, std::process::ChildStdin, Value) {
    let mut cmd = bin();
    cmd.args(["live", "-", "--interval", "200ms", "--format", "json"]).args(args);
    start_stream(cmd, file)
}

/// `cmd` (a `wiretax live -`) started on `file` as `open_stream` starts it.
fn start_stream(mut cmd: Command, file: &Path) -> (std::process::Child, std::process::ChildStdin, Value) {
    use std::io::BufRead;
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&std::fs::read(file).unwrap()).unwrap();
    stdin.flush().unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let first = serde_json::from_str(&line).unwrap();
    child.stdout = Some(out.into_inner());
    (child, stdin, first)
}

fn last_line(out: &std::process::Output) -> Value {
    // The status says how it ended (an exit code, or the signal that killed it).
    assert!(out.status.success(), "{}: {}", out.status, String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap()).unwrap()
}

/// SIGTERM stops a stream that has not ended, and the final report is
/// written as for its end.
#[test]
fn sigterm_stops_cleanly() {
    let file = cap("http-keepalive.pcap");
    let (child, stdin, first) = open_stream(&file, &[]);
    stops_cleanly_on_sigterm(child, stdin, &first, &file);
}

/// The same when the process starts with SIGINT and SIGHUP ignored, as a
/// background job (`&`) or `nohup` starts it: SIGTERM once killed it there,
/// with no final report (no handler was set).
#[test]
fn sigterm_stops_cleanly_when_started_with_signals_ignored() {
    let file = cap("http-keepalive.pcap");
    let mut cmd = Command::new("sh");
    cmd.args(["-c", r#"trap "" HUP INT; exec "$0" live - --interval 200ms --format json"#])
        .arg(env!("CARGO_BIN_EXE_wiretax"));
    let (child, stdin, first) = start_stream(cmd, &file);
    stops_cleanly_on_sigterm(child, stdin, &first, &file);
}

/// Sends SIGTERM to a stream that has not ended (`first`: its first line);
/// its last line is the final report, equal to `analyze`'s of `file`.
fn stops_cleanly_on_sigterm(child: std::process::Child, stdin: std::process::ChildStdin, first: &Value, file: &Path) {
    assert_eq!(first["live"]["final"], false);
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    let mut last = last_line(&out);
    assert_eq!(last["live"]["final"], true);
    last.as_object_mut().unwrap().remove("live");
    assert_eq!(unnamed(last), unnamed(analyze(file)));
}

/// --duration ends a stream that has not ended; --count stops after that many packets.
#[test]
fn duration_and_count_stop_cleanly() {
    let file = cap("http-keepalive.pcap");
    let started = std::time::Instant::now();
    let (child, stdin, _) = open_stream(&file, &["--duration", "1s"]);
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    assert!(started.elapsed() < Duration::from_secs(10));
    let last = last_line(&out);
    assert_eq!(last["live"]["final"], true);
    assert_eq!(last["totals"]["frames"], analyze(&file)["totals"]["frames"]);

    // Seven packets come before the first interval: the first line is the last.
    let (child, stdin, first) = open_stream(&file, &["--count", "7"]);
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    assert!(out.status.success() && out.stdout.is_empty());
    assert_eq!(first["live"]["final"], true);
    assert_eq!(first["totals"]["frames"], 7);
}

/// Live takes the key log as analyze does: a TLS stream is decrypted and
/// its final report is analyze's with the same key log.
#[test]
fn a_key_log_decrypts_live_as_it_does_analyze() {
    let file = cap("https-tls12-full.pcap");
    let keylog = cap("https-tls12-full.keylog");
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let args = ["--format", "json", "-o", report.to_str().unwrap(), "--keylog", keylog.to_str().unwrap()];
    stream(&file, 2, Duration::from_millis(100), &args);
    let got: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let out = bin()
        .args(["analyze", file.to_str().unwrap(), "--format", "json", "--keylog", keylog.to_str().unwrap()])
        .output()
        .unwrap();
    let want: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(got["http"]["requests"].as_u64().unwrap() > 0, "decrypted HTTP requests");
    assert_eq!(unnamed(got), unnamed(want));
}
