//! `wiretax live`: the pipeline fed as packets arrive, from an interface
//! (libpcap, cargo feature `live`) or a pcap/pcapng stream on standard
//! input, with a rolling view of the engine's snapshots.
//!
//! Three parts, each on its own thread where waiting could hold up another:
//! a stream reader (stdin blocks when the writer pauses), the capture loop
//! (owns the [`Engine`]: pushes packets, moves the clock on, takes a
//! snapshot every interval) and the output (renders the latest snapshot;
//! a slow terminal makes it skip snapshots, never the capture wait).

pub mod view;

use crate::analyze::{Engine, Options, SourceNotes};
use crate::capture::write::{CaptureWriter, WriteFormat};
use crate::capture::{CaptureReader, Packet};
use crate::ledger::{Class, Ledger};
use crate::report::{CaptureDrops, Report};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// What `wiretax live` is told besides the analysis options.
#[derive(clap::Args, Clone, Debug)]
pub struct LiveArgs {
    /// `-`: read a pcap or pcapng stream on standard input (`tcpdump -U -w - | wiretax live -`).
    #[arg(value_name = "-")]
    pub stdin: Option<PathBuf>,
    /// Read a capture stream from this file or pipe (`-`: standard input) instead of an interface.
    #[arg(short = 'r', long = "read", value_name = "FILE")]
    pub read: Option<PathBuf>,
    /// Capture on this interface through libpcap (`--list` shows them; needs the `live` build).
    #[arg(short = 'i', long, value_name = "IFACE")]
    pub interface: Option<String>,
    /// Capture only what this BPF filter passes (libpcap syntax, e.g. 'tcp port 1883').
    #[arg(long, value_name = "BPF")]
    pub filter: Option<String>,
    /// List the interfaces to capture on and exit.
    #[arg(long)]
    pub list: bool,
    /// Stop after this long, e.g. 90s, 10m, 2h.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Stop after this many packets.
    #[arg(long, short = 'c')]
    pub count: Option<u64>,
    /// Redraw the view (or write a JSON line) this often, e.g. 2s, 500ms.
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    pub interval: Duration,
    /// Also keep every packet in this capture file (`.pcap`: pcap, else pcapng);
    /// `wiretax analyze` of it gives the same final report.
    #[arg(long, value_name = "FILE")]
    pub write: Option<PathBuf>,
}

/// A duration: a number and a unit (`ms`, `s`, `m`, `h`; none: seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let scale = match unit.trim() {
        "ms" => 1e-3,
        "" | "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("`{s}` is not a duration such as 500ms, 2s, 10m or 1h")),
    };
    match number.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v * scale < 1e9 => Ok(Duration::from_secs_f64(v * scale)),
        _ => Err(format!("`{s}` is not a duration such as 500ms, 2s, 10m or 1h")),
    }
}

/// What the live run says of itself with each snapshot: the rates the
/// report cannot hold (they depend on the wall clock), for the view and the
/// JSON Lines (docs/REPORT.md, section 3).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LiveStatus {
    /// The interface, or `-` for standard input.
    pub source: String,
    /// Counts from 1; the final report's line is the last.
    pub snapshot: u64,
    /// The full report, written when the capture stopped.
    #[serde(rename = "final")]
    pub is_final: bool,
    /// Wall-clock seconds since the capture started.
    pub elapsed_s: f64,
    /// Rates over the wall-clock time since the previous snapshot.
    pub frames_per_s: f64,
    pub wire_bytes_per_s: f64,
    pub class_bytes_per_s: BTreeMap<Class, f64>,
    /// Wire bytes per second since the start.
    pub mean_wire_bytes_per_s: f64,
    /// Snapshots the output was too slow to show (the capture went on).
    pub snapshots_skipped: u64,
}

/// The rates between snapshots: what the live view adds to the report.
struct LiveModel {
    source: String,
    started: Instant,
    snapshots: u64,
    previous: Option<(Instant, u64, u64, Ledger)>,
}

impl LiveModel {
    fn status(&mut self, r: &Report, now: Instant, is_final: bool, skipped: u64) -> LiveStatus {
        self.snapshots += 1;
        let t = &r.totals;
        let elapsed = now.duration_since(self.started).as_secs_f64();
        let (since, frames0, wire0, classes0) = self.previous.take().unwrap_or((self.started, 0, 0, Ledger::default()));
        let dt = now.duration_since(since).as_secs_f64();
        let rate = |now: u64, then: u64| if dt > 0.0 { now.saturating_sub(then) as f64 / dt } else { 0.0 };
        let class_bytes_per_s = Class::ALL.iter().map(|&c| (c, rate(t.classes.get(c), classes0.get(c)))).collect();
        self.previous = Some((now, t.frames, t.wire_bytes, t.classes));
        LiveStatus {
            source: self.source.clone(),
            snapshot: self.snapshots,
            is_final,
            elapsed_s: elapsed,
            frames_per_s: rate(t.frames, frames0),
            wire_bytes_per_s: rate(t.wire_bytes, wire0),
            class_bytes_per_s,
            mean_wire_bytes_per_s: if elapsed > 0.0 { t.wire_bytes as f64 / elapsed } else { 0.0 },
            snapshots_skipped: skipped,
        }
    }
}

/// One JSON line: the live status and the snapshot report beside it (a line
/// reads as a report: the `live` key is one more field).
#[derive(Serialize)]
struct Line<'a> {
    live: &'a LiveStatus,
    #[serde(flatten)]
    report: &'a Report,
}

/// Where the output goes and how.
#[derive(Clone, Copy, Debug)]
pub struct Output {
    /// `--format json`.
    pub json: bool,
    /// The final report goes to standard output (no `-o`).
    pub to_stdout: bool,
    /// Flows shown by the view.
    pub top: usize,
}

/// Set by Ctrl-C or SIGTERM (or a closed output): the capture stops and
/// the final report is written. A second signal exits at once.
static STOP: AtomicBool = AtomicBool::new(false);

fn stop_requested() -> bool {
    STOP.load(Ordering::Relaxed)
}

fn catch_signals() {
    // Over whatever the process inherited: a job started in the background
    // (`cmd &`, `nohup`) comes with SIGINT or SIGHUP ignored, and ctrlc's
    // `try_set_handler` then sets no handler at all, so SIGTERM killed the
    // capture without its final report. Fails only if a handler is set
    // already (a second run in one process).
    let _ = ctrlc::set_handler(|| {
        if STOP.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
    });
}

/// Runs `wiretax live`. The final report comes back for the caller to
/// write in its format, or `None` when it is written already (the last JSON
/// line on standard output) or nothing was to be (`--list`).
pub fn run(args: &LiveArgs, opts: &Options, output: Output) -> Result<Option<Report>, String> {
    if args.list {
        print!("{}", list_interfaces()?);
        return Ok(None);
    }
    let mut opts = opts.clone();
    // One thread for the pipeline: a live input is slow beside a file.
    opts.jobs = 1;
    opts.progress = None;
    let stream = match (&args.read, &args.stdin) {
        (Some(_), Some(_)) => return Err("give the stream once: `-r FILE` or `-`".into()),
        (Some(p), None) | (None, Some(p)) => Some(p.clone()),
        (None, None) if args.interface.is_none() && !std::io::stdin().is_terminal() => Some(PathBuf::from("-")),
        (None, None) => None,
    };
    match (&stream, &args.interface) {
        (Some(_), Some(_)) => return Err("watch an interface (-i) or a stream (-r/-), not both".into()),
        (None, None) => {
            return Err("nothing to watch: `-i IFACE` (`--list` shows them), or pipe a capture in: \
                        `tcpdump -U -w - | wiretax live -`"
                .into());
        }
        (Some(_), None) if args.filter.is_some() => {
            return Err("--filter applies to an interface (-i); filter the stream where it is captured".into());
        }
        _ => {}
    }
    let writer = match &args.write {
        Some(p) => {
            let f = std::fs::File::create(p).map_err(|e| format!("--write {}: {e}", p.display()))?;
            Some((p.clone(), CaptureWriter::new(std::io::BufWriter::new(f), WriteFormat::for_path(p))))
        }
        None => None,
    };
    let lines = output.json || !std::io::stdout().is_terminal();
    match (stream, &args.interface) {
        (Some(path), _) => {
            let source = StreamSource::spawn(&path)?;
            let name = path.display().to_string();
            watch(source, &name, &opts, args, output, lines, writer)
        }
        (None, Some(iface)) => {
            let source = open_interface(iface, args.filter.as_deref())?;
            watch(source, iface, &opts, args, output, lines, writer)
        }
        (None, None) => Err("nothing to watch".into()),
    }
}

/// Where packets come from.
trait Source {
    /// Gives `f` the packets that arrive before `until` (while it returns
    /// true); false once the input has ended.
    fn poll(&mut self, until: Instant, f: impl FnMut(&Packet) -> bool) -> Result<bool, String>;
    /// What the capture dropped so far, when it can tell.
    fn drops(&mut self) -> Option<CaptureDrops>;
    /// What the source says of itself at the end.
    fn notes(&mut self) -> SourceNotes;
}

/// How far behind the wall clock the engine's clock is kept: a packet can
/// reach us this long after its timestamp (buffers, a pipe over ssh), and
/// the clock must never pass a packet still on its way, or a flow would
/// end earlier than `analyze` of the same packets ends it.
const CLOCK_MARGIN_NS: i64 = 2_000_000_000;

/// Longest wait for packets before looking at the signals and the clock.
const TICK: Duration = Duration::from_millis(100);

type Writer = (PathBuf, CaptureWriter<std::io::BufWriter<std::fs::File>>);

/// The capture loop. The output runs on a thread of its own, fed through a
/// one-report slot.
fn watch(
    mut source: impl Source,
    name: &str,
    opts: &Options,
    args: &LiveArgs,
    output: Output,
    lines: bool,
    mut writer: Option<Writer>,
) -> Result<Option<Report>, String> {
    catch_signals();
    let mut engine = Engine::new(name, opts)?;
    engine.set_source(source.notes());
    let started = Instant::now();
    let mut model = LiveModel { source: name.to_string(), started, snapshots: 0, previous: None };
    let slot = Arc::new(Slot::default());
    let out_thread = {
        let slot = slot.clone();
        std::thread::Builder::new()
            .name("wiretax-live-output".into())
            .spawn(move || show(&slot, lines, output.top))
            .map_err(|e| format!("cannot start the output thread: {e}"))?
    };
    let deadline = args.duration.map(|d| started + d);
    let mut next_snapshot = started + args.interval;
    let (mut pushed, mut last_ts, mut last_at, mut advanced) = (0u64, None::<i64>, started, i64::MIN);
    let mut write_error = None;
    let limit = args.count.unwrap_or(u64::MAX);
    let result = loop {
        let now = Instant::now();
        if stop_requested() || deadline.is_some_and(|d| now >= d) || pushed >= limit {
            break Ok(());
        }
        if now >= next_snapshot {
            let mut report = engine.snapshot()?;
            attach_drops(&mut report, source.drops());
            slot.put(&mut model, report, now, false);
            while next_snapshot <= now {
                next_snapshot += args.interval;
            }
        }
        let mut until = next_snapshot.min(now + TICK);
        if let Some(d) = deadline {
            until = until.min(d);
        }
        let before = pushed;
        let more = source.poll(until, |p| {
            if pushed >= limit {
                return false;
            }
            engine.push(p);
            if let Some((path, w)) = &mut writer
                && let Err(e) = w.write(p)
            {
                write_error =
                    Some(format!("--write {}: {e}; the file stops before packet {}", path.display(), pushed + 1));
                writer = None;
            }
            pushed += 1;
            last_ts = Some(last_ts.map_or(p.ts_ns, |t: i64| t.max(p.ts_ns)));
            true
        });
        if pushed > before {
            last_at = Instant::now();
        }
        match more {
            Ok(true) => {}
            Ok(false) => break Ok(()),
            Err(e) => break Err(e),
        }
        // The engine's clock: the latest packet's time plus the time since
        // it came, less the margin. Flows idle past their timeout end by it.
        if let Some(ts) = last_ts {
            let since = i64::try_from(last_at.elapsed().as_nanos()).unwrap_or(i64::MAX);
            let now_ns = ts.saturating_add(since).saturating_sub(CLOCK_MARGIN_NS);
            if now_ns > ts && now_ns > advanced {
                engine.advance(now_ns);
                advanced = now_ns;
            }
        }
    };
    let mut notes = source.notes();
    if let Err(e) = result {
        if engine.frames() == 0 {
            slot.close();
            let _ = out_thread.join();
            return Err(e);
        }
        notes.read_error.get_or_insert(e);
    }
    engine.set_source(notes);
    let drops = source.drops();
    if let Some((path, w)) = &mut writer
        && let Err(e) = w.start(None).and_then(|_| w.flush())
    {
        write_error = Some(format!("--write {}: {e}", path.display()));
    }
    let mut report = engine.finish()?;
    attach_drops(&mut report, drops);
    // The last line on standard output is the final report itself.
    let final_line = lines && output.json && output.to_stdout;
    let status = model.status(&report, Instant::now(), true, slot.skipped());
    slot.close();
    let _ = out_thread.join();
    if let Some(e) = write_error {
        eprintln!("wiretax: {e}");
    }
    if let Some(e) = &report.inputs.first().and_then(|i| i.notes.read_error.clone()) {
        eprintln!("wiretax: {name}: {e}; the report covers the {} frames before it", report.totals.frames);
    }
    if !lines && output.to_stdout {
        // The view goes; the report takes the screen.
        print!("{}", view::CLEAR);
    }
    if final_line {
        let mut out = std::io::stdout().lock();
        crate::report::json::write_compact(&mut out, &Line { live: &status, report: &report })
            .map_err(|e| format!("cannot write the report: {e}"))?;
        let _ = out.write_all(b"\n");
        let _ = out.flush();
        return Ok(None);
    }
    Ok(Some(report))
}

fn attach_drops(report: &mut Report, drops: Option<CaptureDrops>) {
    if let Some(i) = report.inputs.first_mut() {
        i.notes.capture_drops = drops;
    }
}

/// The latest snapshot, waiting for the output thread; a newer one
/// replaces it unseen.
#[derive(Default)]
struct Slot {
    state: Mutex<SlotState>,
    ready: Condvar,
}

#[derive(Default)]
struct SlotState {
    latest: Option<Box<(LiveStatus, Report)>>,
    closed: bool,
    skipped: u64,
}

impl Slot {
    fn put(&self, model: &mut LiveModel, report: Report, now: Instant, is_final: bool) {
        let Ok(mut st) = self.state.lock() else { return };
        if st.latest.is_some() {
            st.skipped += 1;
        }
        let status = model.status(&report, now, is_final, st.skipped);
        st.latest = Some(Box::new((status, report)));
        self.ready.notify_one();
    }

    fn skipped(&self) -> u64 {
        self.state.lock().map(|s| s.skipped).unwrap_or(0)
    }

    fn close(&self) {
        if let Ok(mut st) = self.state.lock() {
            st.closed = true;
        }
        self.ready.notify_one();
    }

    /// The next snapshot to show; None once closed.
    fn take(&self) -> Option<Box<(LiveStatus, Report)>> {
        let mut st = self.state.lock().ok()?;
        loop {
            if st.closed {
                return None;
            }
            if let Some(s) = st.latest.take() {
                return Some(s);
            }
            st = self.ready.wait(st).ok()?;
        }
    }
}

/// The output thread: each snapshot as the view (a terminal) or a JSON line.
fn show(slot: &Slot, lines: bool, top: usize) {
    while let Some(shown) = slot.take() {
        let (status, report) = &*shown;
        let mut out = std::io::stdout().lock();
        let written = if lines {
            crate::report::json::write_compact(&mut out, &Line { live: status, report })
                .map_err(std::io::Error::from)
                .and_then(|_| out.write_all(b"\n"))
        } else {
            out.write_all(view::CLEAR.as_bytes())
                .and_then(|_| out.write_all(view::render(status, report, top).as_bytes()))
        };
        if written.and_then(|_| out.flush()).is_err() {
            // Nobody reads any more (a closed pipe): stop as Ctrl-C would.
            STOP.store(true, Ordering::SeqCst);
            return;
        }
    }
}

/// Packets read on a thread of their own, sent in batches.
#[derive(Default)]
struct Batch {
    data: Vec<u8>,
    packets: Vec<(i64, u32, u16, usize)>,
}

impl Batch {
    const PACKETS: usize = 256;

    fn add(&mut self, p: &Packet) {
        self.data.extend_from_slice(p.data);
        self.packets.push((p.ts_ns, p.wire_len, p.linktype, p.data.len()));
    }
}

enum Msg {
    /// The stream's format, known from its header.
    Format(&'static str),
    Packets(Batch),
    End(Result<SourceNotes, String>),
}

/// A pcap or pcapng stream (standard input, a pipe, a file).
struct StreamSource {
    rx: Receiver<Msg>,
    format: &'static str,
    /// Once the stream has ended: what the reader said of it.
    notes: Option<SourceNotes>,
}

/// The stream as read: before each read (which may wait for the writer)
/// the packets parsed so far are sent on, so none waits for the next.
struct FlushingRead {
    inner: Box<dyn Read + Send>,
    pending: Arc<Mutex<Batch>>,
    tx: SyncSender<Msg>,
}

impl FlushingRead {
    fn flush(pending: &Mutex<Batch>, tx: &SyncSender<Msg>) {
        let batch = match pending.lock() {
            Ok(mut b) if !b.packets.is_empty() => std::mem::take(&mut *b),
            _ => return,
        };
        // A closed channel: the capture loop is done; the rest goes unread.
        let _ = tx.send(Msg::Packets(batch));
    }
}

impl Read for FlushingRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        Self::flush(&self.pending, &self.tx);
        self.inner.read(buf)
    }
}

impl StreamSource {
    fn spawn(path: &Path) -> Result<StreamSource, String> {
        let inner: Box<dyn Read + Send> = if path.as_os_str() == "-" {
            Box::new(std::io::stdin())
        } else {
            Box::new(std::fs::File::open(path).map_err(|e| format!("{}: cannot open: {e}", path.display()))?)
        };
        let (tx, rx) = sync_channel(16);
        let path = path.to_path_buf();
        std::thread::Builder::new()
            .name("wiretax-live-reader".into())
            .spawn(move || {
                let pending = Arc::new(Mutex::new(Batch::default()));
                let rd = FlushingRead { inner, pending: pending.clone(), tx: tx.clone() };
                let mut reader = match CaptureReader::from_read(&path, Box::new(rd)) {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = tx.send(Msg::End(Err(e.to_string())));
                        return;
                    }
                };
                let _ = tx.send(Msg::Format(reader.format_name()));
                let result = reader.for_each(|p, _| {
                    let full = pending.lock().map(|mut b| {
                        b.add(p);
                        b.packets.len() >= Batch::PACKETS
                    });
                    if full.unwrap_or(false) {
                        FlushingRead::flush(&pending, &tx);
                    }
                });
                FlushingRead::flush(&pending, &tx);
                let stats = reader.stats();
                let _ = tx.send(Msg::End(Ok(SourceNotes {
                    format: stats.format.to_string(),
                    skipped_blocks: stats.skipped_blocks + stats.unknown_blocks,
                    skipped_records: stats.skipped_records,
                    skipped_notes: stats.skipped_notes.clone(),
                    read_error: result.err().map(|e| e.to_string()),
                })));
            })
            .map_err(|e| format!("cannot start the reader thread: {e}"))?;
        Ok(StreamSource { rx, format: "", notes: None })
    }
}

impl Source for StreamSource {
    fn poll(&mut self, until: Instant, mut f: impl FnMut(&Packet) -> bool) -> Result<bool, String> {
        if self.notes.is_some() {
            return Ok(false);
        }
        let mut wait = until.saturating_duration_since(Instant::now());
        loop {
            let msg = match self.rx.recv_timeout(wait) {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) => return Ok(true),
                Err(RecvTimeoutError::Disconnected) => {
                    self.notes = Some(SourceNotes::default());
                    return Ok(false);
                }
            };
            match msg {
                Msg::Packets(b) => {
                    let mut at = 0usize;
                    for &(ts_ns, wire_len, linktype, len) in &b.packets {
                        let data = b.data.get(at..at + len).unwrap_or_default();
                        at += len;
                        if !f(&Packet { ts_ns, wire_len, data, linktype }) {
                            return Ok(true);
                        }
                    }
                }
                Msg::Format(f) => self.format = f,
                Msg::End(Ok(notes)) => {
                    self.notes = Some(notes);
                    return Ok(false);
                }
                Msg::End(Err(e)) => return Err(e),
            }
            // More batches already waiting are taken now; else back to the loop.
            wait = Duration::ZERO;
            if Instant::now() >= until {
                return Ok(true);
            }
        }
    }

    fn drops(&mut self) -> Option<CaptureDrops> {
        None
    }

    fn notes(&mut self) -> SourceNotes {
        self.notes.clone().unwrap_or_else(|| SourceNotes { format: self.format.to_string(), ..SourceNotes::default() })
    }
}

#[cfg(feature = "live")]
struct InterfaceSource {
    cap: crate::capture::live::LiveCapture,
    format: String,
}

#[cfg(feature = "live")]
fn open_interface(iface: &str, filter: Option<&str>) -> Result<InterfaceSource, String> {
    let cap = crate::capture::live::LiveCapture::open(iface, filter)?;
    Ok(InterfaceSource { cap, format: "libpcap".into() })
}

#[cfg(feature = "live")]
impl Source for InterfaceSource {
    fn poll(&mut self, until: Instant, f: impl FnMut(&Packet) -> bool) -> Result<bool, String> {
        self.cap.poll(until, f).map(|_| true)
    }

    fn drops(&mut self) -> Option<CaptureDrops> {
        self.cap.drops().map(|d| CaptureDrops {
            received: d.received,
            dropped: d.dropped,
            interface_dropped: d.interface_dropped,
        })
    }

    fn notes(&mut self) -> SourceNotes {
        SourceNotes { format: self.format.clone(), ..SourceNotes::default() }
    }
}

#[cfg(feature = "live")]
fn list_interfaces() -> Result<String, String> {
    crate::capture::live::list()
}

#[cfg(not(feature = "live"))]
const NO_LIBPCAP: &str = "this wiretax was built without live capture: build it with `cargo build --release \
                          --features live` (needs libpcap-dev), or pipe a capture in: `tcpdump -U -w - | wiretax live -`";

#[cfg(not(feature = "live"))]
enum InterfaceSource {}

#[cfg(not(feature = "live"))]
fn open_interface(_iface: &str, _filter: Option<&str>) -> Result<InterfaceSource, String> {
    Err(NO_LIBPCAP.into())
}

#[cfg(not(feature = "live"))]
impl Source for InterfaceSource {
    fn poll(&mut self, _: Instant, _: impl FnMut(&Packet) -> bool) -> Result<bool, String> {
        match *self {}
    }
    fn drops(&mut self) -> Option<CaptureDrops> {
        match *self {}
    }
    fn notes(&mut self) -> SourceNotes {
        match *self {}
    }
}

#[cfg(not(feature = "live"))]
fn list_interfaces() -> Result<String, String> {
    Err(NO_LIBPCAP.into())
}

#[cfg(test)]
mod tests;
