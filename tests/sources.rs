//! Inputs other than a plain capture file: standard input (whole, and in
//! small pieces with pauses, as `tcpdump -U -w -` sends it), gzip and zstd
//! files, captures that carry their TLS secrets, several inputs with
//! failures among them, directories, and a reader that goes away.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_wiretax"))
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cap(name: &str) -> PathBuf {
    root().join("captures").join(name)
}

/// Every shipped capture.
fn shipped() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("captures"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("pcap" | "pcapng")))
        .collect();
    v.sort();
    assert!(v.len() > 30, "captures/ has {} captures", v.len());
    v
}

fn ok(out: Output, what: &str) -> Vec<u8> {
    assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// The JSON report of `args`, run with `stdin` on standard input.
fn report_with_stdin(args: &[&str], stdin: Vec<u8>) -> Vec<u8> {
    let mut child =
        bin().args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || input.write_all(&stdin));
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap().unwrap();
    ok(out, &format!("{args:?}"))
}

fn report(args: &[&str]) -> Vec<u8> {
    ok(bin().args(args).output().unwrap(), &format!("{args:?}"))
}

/// A report with the name of its (single) input replaced, to compare
/// reports of the same capture read from different places.
fn unnamed(report: &[u8]) -> Value {
    let mut v: Value = serde_json::from_slice(report).unwrap();
    let inputs = v["inputs"].as_array_mut().unwrap();
    assert_eq!(inputs.len(), 1);
    inputs[0]["input"] = Value::Null;
    v
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn standard_input_reads_as_the_file_for_every_shipped_capture() {
    for c in shipped() {
        let file = report(&["analyze", s(&c), "--format", "json"]);
        let piped = report_with_stdin(&["analyze", "-", "--format", "json"], std::fs::read(&c).unwrap());
        let v: Value = serde_json::from_slice(&piped).unwrap();
        assert_eq!(v["inputs"][0]["input"], "stdin");
        assert!(unnamed(&file) == unnamed(&piped), "{}: stdin report differs", c.display());
    }
}

#[test]
fn a_stream_in_small_pieces_with_pauses_reads_as_the_file() {
    for name in ["https-tls13-full.pcap", "websocket.pcapng", "coap-blockwise.pcap"] {
        let c = cap(name);
        let bytes = std::fs::read(&c).unwrap();
        let file = report(&["analyze", s(&c), "--format", "json"]);
        let mut child = bin()
            .args(["analyze", "-", "--format", "json"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        let feeder = std::thread::spawn(move || {
            // Pieces of 1 to 700 bytes (the first few shorter than a file
            // header), each flushed, with pauses between some of them.
            let mut at = 0;
            let mut n = 0usize;
            while at < bytes.len() {
                let len = [1, 3, 7, 700, 50, 13, 333][n % 7].min(bytes.len() - at);
                input.write_all(&bytes[at..at + len])?;
                input.flush()?;
                at += len;
                n += 1;
                if n.is_multiple_of(10) {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            Ok::<_, std::io::Error>(())
        });
        let piped = ok(child.wait_with_output().unwrap(), name);
        feeder.join().unwrap().unwrap();
        assert!(unnamed(&file) == unnamed(&piped), "{name}: report of the trickled stream differs");
    }
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

#[test]
fn compressed_captures_read_as_their_plain_file_at_any_number_of_jobs() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["http-keepalive.pcap", "websocket.pcapng", "mqtt-reconnect-per-message.pcap"] {
        let c = cap(name);
        let bytes = std::fs::read(&c).unwrap();
        let gz = dir.path().join(format!("{name}.gz"));
        std::fs::write(&gz, gzip(&bytes)).unwrap();
        let zst = dir.path().join(format!("{name}.zst"));
        std::fs::write(&zst, zstd::encode_all(bytes.as_slice(), 3).unwrap()).unwrap();
        // Recognised by content, not by name.
        let disguised = dir.path().join(format!("{name}.data"));
        std::fs::write(&disguised, zstd::encode_all(bytes.as_slice(), 19).unwrap()).unwrap();
        let file = report(&["analyze", s(&c), "--format", "json"]);
        for packed in [&gz, &zst, &disguised] {
            let one = report(&["analyze", s(packed), "--format", "json", "-j", "1"]);
            let two = report(&["analyze", s(packed), "--format", "json", "-j", "2"]);
            assert!(one == two, "{}: reports differ at 1 and 2 jobs", packed.display());
            assert!(unnamed(&file) == unnamed(&one), "{}: differs from the plain file", packed.display());
            // And compressed on standard input.
            let piped = report_with_stdin(&["analyze", "-", "--format", "json"], std::fs::read(packed).unwrap());
            assert!(unnamed(&file) == unnamed(&piped), "{}: differs on stdin", packed.display());
        }
    }
}

#[test]
fn standard_input_reports_are_the_same_at_one_and_two_jobs() {
    for name in ["websocket-storm-fixed.pcap", "https-tls12-full.pcap", "websocket.pcapng"] {
        let bytes = std::fs::read(cap(name)).unwrap();
        let one = report_with_stdin(&["analyze", "-", "--format", "json", "-j", "1"], bytes.clone());
        let two = report_with_stdin(&["analyze", "-", "--format", "json", "-j", "2"], bytes);
        assert!(one == two, "{name}: stdin reports differ at 1 and 2 jobs");
    }
}

/// The report without its `inputs` (whose notes name the file format).
fn without_inputs(report: &[u8]) -> Value {
    let mut v: Value = serde_json::from_slice(report).unwrap();
    v.as_object_mut().unwrap().remove("inputs");
    v
}

#[test]
fn secrets_the_capture_carries_decrypt_as_the_key_log_does() {
    // Made by scripts/make-secrets-samples (editcap --inject-secrets).
    for name in ["https-tls12-full", "https-tls13-full", "mqtt-tls12", "mqtt-tls13", "coap-dtls"] {
        let dsb = root().join(format!("tests/data/secrets/{name}.dsb.pcapng"));
        let pcap = cap(&format!("{name}.pcap"));
        let keylog = cap(&format!("{name}.keylog"));
        let with_keylog = report(&["analyze", s(&pcap), "--keylog", s(&keylog), "--format", "json"]);
        let without = report(&["analyze", s(&pcap), "--format", "json"]);
        for jobs in ["1", "2"] {
            let carried = report(&["analyze", s(&dsb), "--format", "json", "-j", jobs]);
            assert!(without_inputs(&carried) == without_inputs(&with_keylog), "{name} at {jobs} jobs");
        }
        assert!(without_inputs(&without) != without_inputs(&with_keylog), "{name}: the keys change nothing");
        // Given twice, and with the carried secrets too: the same.
        let twice = report(&["analyze", s(&dsb), "--keylog", s(&keylog), "--keylog", s(&keylog), "--format", "json"]);
        assert!(without_inputs(&twice) == without_inputs(&with_keylog), "{name}: --keylog twice");
    }
}

#[test]
fn secrets_found_in_one_input_stay_with_it() {
    // The capture with its secrets, then the same capture without: the
    // second is read as without a key log, at any number of jobs.
    let dsb = root().join("tests/data/secrets/https-tls12-full.dsb.pcapng");
    let pcap = cap("https-tls12-full.pcap");
    for jobs in ["1", "2"] {
        let v: Value =
            serde_json::from_slice(&report(&["analyze", s(&dsb), s(&pcap), "--format", "json", "-j", jobs])).unwrap();
        let alone: Value = serde_json::from_slice(&report(&["analyze", s(&pcap), "--format", "json"])).unwrap();
        assert_eq!(v["inputs"][1]["totals"], alone["inputs"][0]["totals"], "jobs {jobs}");
        assert_eq!(v["inputs"][1]["notes"], alone["inputs"][0]["notes"], "jobs {jobs}");
    }
}

#[test]
fn several_keylog_files_are_merged() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(cap("https-tls13-full.keylog")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let (a, b) = lines.split_at(lines.len() / 2);
    let (ka, kb) = (dir.path().join("a.keylog"), dir.path().join("b.keylog"));
    std::fs::write(&ka, a.join("\n")).unwrap();
    std::fs::write(&kb, b.join("\n")).unwrap();
    let c = cap("https-tls13-full.pcap");
    let whole = report(&["analyze", s(&c), "--keylog", s(&cap("https-tls13-full.keylog")), "--format", "json"]);
    let split = report(&["analyze", s(&c), "--keylog", s(&ka), "--keylog", s(&kb), "--format", "json"]);
    assert!(whole == split);
}

#[test]
fn an_unreadable_input_is_listed_with_its_error_and_the_status_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_capture = dir.path().join("notes.pcap");
    std::fs::write(&not_a_capture, "hello, this is not a capture file at all").unwrap();
    let good = cap("http-keepalive.pcap");
    let missing = dir.path().join("missing.pcap");
    let out = bin().args(["analyze", s(&good), s(&missing), s(&not_a_capture), "--format", "json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let inputs = v["inputs"].as_array().unwrap();
    assert_eq!(inputs.len(), 3);
    assert_eq!(inputs[0]["input"], s(&good));
    assert!(inputs[0].get("error").is_none());
    assert_eq!(inputs[1]["input"], s(&missing));
    assert!(inputs[1]["error"].as_str().unwrap().contains("cannot open"), "{}", inputs[1]);
    assert_eq!(inputs[2]["input"], s(&not_a_capture));
    assert!(inputs[2]["error"].as_str().unwrap().contains("not a pcap or pcapng"), "{}", inputs[2]);
    assert_eq!(v["failed_inputs"].as_array().unwrap().len(), 2);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("missing.pcap") && stderr.contains("notes.pcap"), "{stderr}");
    // The table says it too.
    let out = bin().args(["analyze", s(&good), s(&missing)]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stdout).contains("could not be read"));
    // Nothing readable: no report, status 1.
    let out = bin().args(["analyze", s(&missing)]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
}

#[test]
fn the_same_file_named_twice_is_read_once() {
    let good = cap("http-keepalive.pcap");
    let again = root().join("captures/../captures/http-keepalive.pcap");
    let out = bin().args(["analyze", s(&good), s(&again), "--format", "json"]).output().unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["inputs"].as_array().unwrap().len(), 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("read once"));
}

/// Waits for `child` at most `limit`; None (and the child killed) past it.
fn wait_at_most(child: &mut std::process::Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(st) = child.try_wait().unwrap() {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    None
}

#[test]
fn an_output_that_cannot_be_written_fails_before_the_analysis() {
    // Standard input left open: an analysis would wait for it forever.
    let mut child = bin()
        .args(["analyze", "-", "-o", "/nonexistent/dir/x.json"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take();
    let status = wait_at_most(&mut child, Duration::from_secs(20)).expect("wiretax waited for its input");
    drop(stdin);
    assert_eq!(status.code(), Some(1));
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("/nonexistent/dir/x.json"), "{err}");
}

#[test]
fn an_existing_output_file_is_left_alone_when_there_is_no_report() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("old.json");
    std::fs::write(&out, "old report").unwrap();
    let st = bin().args(["analyze", "/nonexistent/x.pcap", "-o", s(&out)]).output().unwrap();
    assert_eq!(st.status.code(), Some(1));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "old report");
    let fresh = dir.path().join("new.json");
    let _ = bin().args(["analyze", "/nonexistent/x.pcap", "-o", s(&fresh)]).output().unwrap();
    assert!(!fresh.exists());
}

#[test]
fn a_reader_that_goes_away_ends_the_run_quietly() {
    let storm = cap("websocket-storm-fixed.pcap");
    let errors = cap("http-errors.pcap");
    let json_args = vec![s(&storm), s(&errors), "--format", "json", "--max-exchanges=1000000"];
    let every = shipped();
    let mut table_args: Vec<&str> = every.iter().map(|p| s(p)).collect();
    table_args.extend(["--top", "100000"]);
    for (format, args) in [("json", json_args), ("table", table_args)] {
        // A report far larger than a pipe's buffer, so writing meets the closed pipe.
        let mut child = bin().arg("analyze").args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let mut first = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
        assert!(!first.is_empty());
        // (The reader dropped: the pipe is closed, as `| head -1` closes it.)
        let status = wait_at_most(&mut child, Duration::from_secs(60)).expect("wiretax hung");
        let mut err = String::new();
        child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        assert_eq!(err, "", "{format}");
        assert!(status.success(), "{format}: {status}");
    }
}

#[test]
fn recursive_reads_subdirectories_and_a_scan_says_what_it_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("day1");
    std::fs::create_dir(&sub).unwrap();
    std::fs::copy(cap("coap-con-get.pcap"), dir.path().join("a.pcap")).unwrap();
    std::fs::write(sub.join("b.pcap.gz"), gzip(&std::fs::read(cap("mqtt311-qos1.pcap")).unwrap())).unwrap();
    std::fs::write(dir.path().join("README.txt"), "notes").unwrap();
    let flat = bin().args(["analyze", s(dir.path()), "--format", "json"]).output().unwrap();
    assert!(flat.status.success());
    let v: Value = serde_json::from_slice(&flat.stdout).unwrap();
    assert_eq!(v["inputs"].as_array().unwrap().len(), 1);
    let err = String::from_utf8_lossy(&flat.stderr);
    assert!(err.contains("README.txt") && err.contains("--recursive"), "{err}");
    let deep = bin().args(["analyze", "--recursive", s(dir.path()), "--format", "json"]).output().unwrap();
    assert!(deep.status.success());
    let v: Value = serde_json::from_slice(&deep.stdout).unwrap();
    assert_eq!(v["inputs"].as_array().unwrap().len(), 2);
    assert_eq!(v["totals"]["frames"], 30 + 71);
}

/// The run of `args` (stderr kept), or None when it had not ended after `limit`.
fn run_at_most(args: &[&str], limit: Duration) -> Option<Output> {
    let mut child = bin().args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // Read both pipes while waiting, so a long stderr cannot stall the child.
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out.read_to_end(&mut b);
        b
    });
    let err_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err.read_to_end(&mut b);
        b
    });
    let status = wait_at_most(&mut child, limit)?;
    Some(Output { status, stdout: out_reader.join().unwrap(), stderr: err_reader.join().unwrap() })
}

#[cfg(unix)]
#[test]
fn recursive_scan_enters_each_directory_once_through_symbolic_link_loops() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("d");
    std::fs::create_dir_all(d.join("s")).unwrap();
    std::fs::copy(cap("coap-con-get.pcap"), d.join("a.pcap")).unwrap();
    // Two links back up: without a check, every path through them is a new
    // directory (2^40 of them before ELOOP).
    symlink("..", d.join("s/l1")).unwrap();
    symlink("..", d.join("s/l2")).unwrap();
    let out = run_at_most(&["analyze", "-r", s(&d), "--format", "json"], Duration::from_secs(30))
        .expect("a scan through two link loops hung");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["inputs"].as_array().unwrap().len(), 1, "{err}");
    assert_eq!(v["totals"]["frames"], 30);
    assert_eq!(err.lines().filter(|l| l.contains("already scanned")).count(), 2, "{err}");
    assert!(err.contains("l1") && err.contains("l2"), "{err}");
    // One link to the parent and a dangling one: each met once.
    let one = dir.path().join("one");
    std::fs::create_dir(&one).unwrap();
    std::fs::copy(cap("coap-con-get.pcap"), one.join("a.pcap")).unwrap();
    symlink(".", one.join("loop")).unwrap();
    symlink("/nonexistent", one.join("gone.txt")).unwrap();
    let out = run_at_most(&["analyze", "-r", s(&one), "--format", "json"], Duration::from_secs(30)).expect("hung");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(err.matches("gone.txt").count(), 1, "{err}");
    assert_eq!(err.lines().filter(|l| l.contains("already scanned")).count(), 1, "{err}");
    // A link to a directory not scanned otherwise is followed.
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::copy(cap("mqtt311-qos1.pcap"), other.join("b.pcap")).unwrap();
    symlink(&other, one.join("elsewhere")).unwrap();
    let out = run_at_most(&["analyze", "-r", s(&one), "--format", "json"], Duration::from_secs(30)).expect("hung");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["totals"]["frames"], 30 + 71, "{}", String::from_utf8_lossy(&out.stderr));
}

#[cfg(unix)]
#[test]
fn a_fifo_named_as_a_capture_in_a_directory_is_skipped_but_read_when_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(cap("coap-con-get.pcap"), dir.path().join("a.pcap")).unwrap();
    let fifo = dir.path().join("stale.pcap");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    // Nobody writes to it: opening it would wait forever.
    let out = run_at_most(&["analyze", s(dir.path()), "--format", "json"], Duration::from_secs(30))
        .expect("a directory scan waited on a FIFO");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("stale.pcap") && err.contains("a FIFO"), "{err}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["inputs"].as_array().unwrap().len(), 1);
    assert_eq!(v["totals"]["frames"], 30);
    // Named on the command line, a FIFO is a pipe to read.
    let bytes = std::fs::read(cap("coap-con-get.pcap")).unwrap();
    let writer_fifo = fifo.clone();
    let writer = std::thread::spawn(move || std::fs::write(writer_fifo, bytes));
    let out = run_at_most(&["analyze", s(&fifo), "--format", "json"], Duration::from_secs(30)).expect("hung");
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["totals"]["frames"], 30);
}

#[test]
fn a_report_to_a_device_or_over_a_longer_file() {
    let c = cap("coap-con-get.pcap");
    let st = bin().args(["analyze", s(&c), "-o", "/dev/null"]).output().unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    // An older, longer file is replaced whole.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.json");
    std::fs::write(&out, vec![b'x'; 1 << 20]).unwrap();
    let st = bin().args(["analyze", s(&c), "--format", "json", "-o", s(&out)]).output().unwrap();
    assert!(st.status.success());
    let _: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
}

/// A pcapng file (one Ethernet interface, microsecond times) of a
/// little-endian microsecond pcap's records, with a TLS key log Decryption
/// Secrets Block inserted before record `secrets_at`.
fn pcapng_with_secrets(pcap: &[u8], keylog: &[u8], secrets_at: usize) -> Vec<u8> {
    fn block(kind: u32, body: &[u8]) -> Vec<u8> {
        let mut body = body.to_vec();
        body.resize(body.len().div_ceil(4) * 4, 0);
        let len = (12 + body.len()) as u32;
        [&kind.to_le_bytes()[..], &len.to_le_bytes(), &body, &len.to_le_bytes()].concat()
    }
    let le = |b: &[u8]| u32::from_le_bytes(b[..4].try_into().unwrap());
    assert_eq!(le(&pcap[..4]), 0xa1b2_c3d4, "a little-endian microsecond pcap");
    let linktype = le(&pcap[20..24]) as u16;
    let shb = [&0x1a2b_3c4du32.to_le_bytes()[..], &1u16.to_le_bytes(), &0u16.to_le_bytes(), &[0xff; 8]].concat();
    let idb = [&linktype.to_le_bytes()[..], &[0, 0], &0u32.to_le_bytes()].concat();
    let dsb = [&0x544c_534bu32.to_le_bytes()[..], &(keylog.len() as u32).to_le_bytes(), keylog].concat();
    let mut out = [block(0x0a0d_0d0a, &shb), block(1, &idb)].concat();
    let (mut at, mut n) = (24, 0);
    while at + 16 <= pcap.len() {
        let (sec, usec, caplen, origlen) =
            (le(&pcap[at..]), le(&pcap[at + 4..]), le(&pcap[at + 8..]), le(&pcap[at + 12..]));
        if n == secrets_at {
            out.extend(block(0x0a, &dsb));
        }
        let ticks = sec as u64 * 1_000_000 + usec as u64;
        let data = &pcap[at + 16..at + 16 + caplen as usize];
        let epb = [
            &0u32.to_le_bytes()[..],
            &((ticks >> 32) as u32).to_le_bytes(),
            &(ticks as u32).to_le_bytes(),
            &caplen.to_le_bytes(),
            &origlen.to_le_bytes(),
            data,
        ]
        .concat();
        out.extend(block(6, &epb));
        at += 16 + caplen as usize;
        n += 1;
    }
    out
}

/// Decryption Secrets Blocks of `sessions` made-up connections'
/// CLIENT_RANDOM lines, each block under the reader's 1 MB buffer.
fn junk_secrets_blocks(sessions: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let lines: Vec<String> =
        (0..sessions).map(|i| format!("CLIENT_RANDOM {:064x} {}\n", i + 1, "ab".repeat(48))).collect();
    for chunk in lines.chunks(4_096) {
        let text = chunk.concat();
        let mut body =
            [&0x544c_534bu32.to_le_bytes()[..], &(text.len() as u32).to_le_bytes(), text.as_bytes()].concat();
        body.resize(body.len().div_ceil(4) * 4, 0);
        let len = (12 + body.len()) as u32;
        out.extend([&0x0au32.to_le_bytes()[..], &len.to_le_bytes(), &body, &len.to_le_bytes()].concat());
    }
    out
}

#[test]
fn secrets_blocks_past_the_cap_are_dropped_and_said() {
    let name = "https-tls12-full";
    let pcap = std::fs::read(cap(&format!("{name}.pcap"))).unwrap();
    let keylog = std::fs::read(cap(&format!("{name}.keylog"))).unwrap();
    let real = pcapng_with_secrets(&pcap, &keylog, 0);
    // After the section header (28 bytes) and the interface (20): before the real secrets.
    let head = 28 + 20;
    let dir = tempfile::tempdir().unwrap();
    let cap_sessions = wiretax::keylog::MAX_FOUND_SESSIONS;
    for (junk, dropped) in [(1_000, 0), (cap_sessions, 12)] {
        let file = dir.path().join(format!("junk{junk}.pcapng"));
        std::fs::write(&file, [&real[..head], &junk_secrets_blocks(junk), &real[head..]].concat()).unwrap();
        let out = bin().args(["analyze", s(&file), "--format", "json"]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let decrypted = v["tls"]["decryption"]["connections_with_keys"].as_u64().unwrap_or(0);
        assert_eq!(v["inputs"][0]["notes"]["secrets_dropped"].as_u64().unwrap_or(0), dropped, "{junk}");
        if dropped == 0 {
            assert_eq!(decrypted, 12, "{junk}");
            assert!(!err.contains("dropped"), "{err}");
        } else {
            // The cap was full of made-up connections: the real ones' secrets went.
            assert_eq!(decrypted, 0);
            assert!(err.contains("Decryption Secrets Blocks") && err.contains("12 more were dropped"), "{err}");
        }
    }
}

#[test]
fn secrets_in_the_middle_reach_the_connections_after_them_at_any_number_of_jobs() {
    let name = "https-tls12-full";
    let pcap = std::fs::read(cap(&format!("{name}.pcap"))).unwrap();
    let keylog = std::fs::read(cap(&format!("{name}.keylog"))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let connections = |r: &Value| r["tls"]["connections"].as_u64().unwrap();
    let decrypted = |r: &Value| r["tls"]["decryption"]["connections_with_keys"].as_u64().unwrap_or(0);
    let frames =
        serde_json::from_slice::<Value>(&report(&["analyze", s(&cap(&format!("{name}.pcap"))), "--format", "json"]))
            .unwrap()["totals"]["frames"]
            .as_u64()
            .unwrap() as usize;
    let mut seen = Vec::new();
    for secrets_at in [0, frames / 3, frames / 2, frames] {
        let f = dir.path().join(format!("{secrets_at}.pcapng"));
        std::fs::write(&f, pcapng_with_secrets(&pcap, &keylog, secrets_at)).unwrap();
        let one = report(&["analyze", s(&f), "--format", "json", "-j", "1"]);
        let two = report(&["analyze", s(&f), "--format", "json", "-j", "2"]);
        assert!(one == two, "secrets before frame {secrets_at}: reports differ at 1 and 2 jobs");
        let r: Value = serde_json::from_slice(&one).unwrap();
        seen.push(decrypted(&r));
        if secrets_at == 0 {
            assert_eq!(decrypted(&r), connections(&r), "{r:#}");
        }
    }
    // The later the secrets, the fewer connections they reach; at the end, none.
    assert!(seen.windows(2).all(|w| w[0] >= w[1]), "{seen:?}");
    assert!(seen[0] > seen[1] && seen[1] > 0, "{seen:?}");
    assert_eq!(seen.last(), Some(&0));
}
