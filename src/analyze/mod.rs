//! The pipeline: packets in, an `InputReport` out, through the [`Engine`].
//!
//! - `mod.rs`: the engine (push, advance, snapshot, finish) and its drivers
//!   for files (`analyze_file`, `analyze_all`);
//! - `dispatch.rs`: packets to the flow workers, inline or on threads, and
//!   their frame ticks back to the radio model in packet order;
//! - `renumber.rs`: the ids the radio model sees;
//! - `collect.rs`: what each worker keeps of what its flows finish;
//! - `assemble.rs`: the workers' results merged into the input's report.
//!
//! The reading thread reads and decodes every frame, books what belongs to
//! no flow, joins IP fragments, and hands each TCP/UDP packet to a worker
//! chosen by its flow, so one flow always lands on the same worker. With
//! `jobs` > 1 the workers run on threads (three per core), and their frame
//! ticks are merged back into packet order for the radio model; everything
//! is put back in the order one worker would have made it, so the report is
//! the same for any number of jobs.

mod assemble;
mod batch;
mod collect;
mod devices;
mod dispatch;
mod renumber;
#[cfg(test)]
mod tests;

use crate::capture::{CaptureReader, Packet, ReadError, Record, SecretsKind, Source};
use crate::decode::{self, Decoded, Defragmenter, Frame, LinkIds, NotIp, Transport};
use crate::flow::{FlowConfig, FrameTick};
use crate::ledger::timeline::TimelineBuilder;
use crate::ledger::{Class, Ledger};
use crate::radio::{CostOptions, DeviceRadios, Profile, RadioOptions};
use crate::report::{InputReport, Notes, Report, Totals};
use assemble::*;
pub use dispatch::WORKERS_PER_CORE;
use dispatch::*;
use renumber::*;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Told how far reading has come: (input, bytes read, file size).
pub type Progress = Arc<dyn Fn(&Path, u64, u64) + Send + Sync>;

/// Everything `analyze` can be told.
#[derive(Clone, Default)]
pub struct Options {
    pub flow: FlowConfig,
    /// Most flows, exchanges and devices listed in a report (all are counted).
    pub max_flows: usize,
    pub max_exchanges: usize,
    pub max_devices: usize,
    /// `--device-map`: names by device id (its address as text).
    pub device_names: std::collections::HashMap<String, String>,
    /// Cores per input (1: everything on the calling thread; more: that many
    /// times `WORKERS_PER_CORE` worker threads).
    pub jobs: usize,
    pub progress: Option<Progress>,
    /// The radio model every frame drives (None: no radio section).
    pub radio: Option<(Profile, RadioOptions)>,
    pub cost: CostOptions,
    /// The findings' thresholds (`[findings]` of `--config`).
    pub findings: crate::findings::Thresholds,
    /// `wiretax whatif`: the stacks to carry each device's messages by.
    pub whatif: Option<crate::whatif::stacks::Request>,
}

impl Options {
    pub fn new() -> Options {
        Options {
            flow: FlowConfig::default(),
            max_flows: 10_000,
            max_exchanges: 10_000,
            max_devices: 10_000,
            device_names: Default::default(),
            jobs: 1,
            progress: None,
            radio: Profile::builtin("lte").map(|p| (p, RadioOptions::default())),
            cost: CostOptions::default(),
            findings: crate::findings::Thresholds::default(),
            whatif: None,
        }
    }
}

/// What the source of an input says of itself, for the report's notes.
#[derive(Clone, Debug, Default)]
pub struct SourceNotes {
    /// `pcap`, `pcapng`, ...
    pub format: String,
    pub skipped_blocks: u64,
    /// Records skipped as corrupted (reading went on), and why, for the first few.
    pub skipped_records: u64,
    pub skipped_notes: Vec<String>,
    /// Why reading stopped early, if it did.
    pub read_error: Option<String>,
}

/// The whole pipeline for one input, fed packet by packet: `push` each
/// packet in capture order, `advance` the clock when none comes (live
/// input), ask for a `snapshot` at any moment (it changes nothing) and
/// `finish` at the end. `analyze_file`, `--jobs` and live capture all
/// drive it.
pub struct Engine {
    name: String,
    opts: Options,
    dispatch: Dispatch,
    state: InputState,
    /// Secrets the input itself carries (pcapng Decryption Secrets
    /// Blocks), for the flows that open after them; this input's alone.
    found_secrets: Arc<crate::keylog::KeyStore>,
}

/// What the engine keeps itself, outside the flows: totals, frames of no
/// flow, IP fragments waiting for the rest of their datagram.
#[derive(Clone, Default)]
pub(super) struct InputState {
    defrag: Defragmenter,
    totals: Totals,
    outside: Ledger,
    notes: Notes,
    linktypes: LinktypeCounts,
    /// Frames per encapsulation, and offloaded segments.
    marks: decode::MarkCounts,
    /// The bytes of frames of no flow, by time bin (the flows' are the workers').
    timeline: TimelineBuilder,
    span: TimeSpan,
    source: SourceNotes,
    /// What frames of no flow tell the findings (ICMP port unreachable).
    outside_facts: crate::findings::Streams,
}

/// The capture's span: from its earliest frame to its latest, for a
/// merged or rewritten capture need not be in time order.
#[derive(Clone, Copy)]
pub(super) struct TimeSpan {
    earliest_ns: i64,
    latest_ns: i64,
}

impl Default for TimeSpan {
    fn default() -> TimeSpan {
        TimeSpan { earliest_ns: i64::MAX, latest_ns: i64::MIN }
    }
}

impl TimeSpan {
    #[inline]
    fn add(&mut self, ts_ns: i64) {
        self.earliest_ns = self.earliest_ns.min(ts_ns);
        self.latest_ns = self.latest_ns.max(ts_ns);
    }

    /// The earliest frame's time; None before any frame.
    pub(super) fn earliest_ns(&self) -> Option<i64> {
        (self.earliest_ns <= self.latest_ns).then_some(self.earliest_ns)
    }

    /// The latest frame's time; 0 before any frame.
    pub(super) fn latest_ns(&self) -> i64 {
        if self.earliest_ns <= self.latest_ns { self.latest_ns } else { 0 }
    }
}

impl Engine {
    /// An error if the worker threads (`opts.jobs` > 1) cannot be started.
    pub fn new(name: impl Into<String>, opts: &Options) -> Result<Engine, String> {
        let workers = if opts.jobs > 1 { opts.jobs.saturating_mul(WORKERS_PER_CORE).min(MAX_WORKERS) } else { 1 };
        let tap = RadioTap {
            radios: opts.radio.as_ref().map(|(p, o)| DeviceRadios::new(p.clone(), o.clone(), opts.max_devices)),
            flows: Renumber::new(opts.max_flows.max(1), workers as u64),
            exchanges: Renumber::new(opts.max_exchanges, workers as u64),
            streams: crate::findings::Streams::new(&opts.findings),
            devices: Default::default(),
            link_bytes: 0,
        };
        let dissect = opts.flow.dissect.for_input();
        let found_secrets = dissect.found_secrets.clone();
        let flow = FlowConfig { dissect: Arc::new(dissect), ..opts.flow.clone() };
        let limits = Limits {
            flow,
            max_flows: opts.max_flows.max(1),
            max_exchanges: opts.max_exchanges,
            findings: opts.findings.clone(),
        };
        let dispatch = Dispatch::new(&limits, workers, tap)?;
        Ok(Engine { name: name.into(), opts: opts.clone(), dispatch, state: InputState::default(), found_secrets })
    }

    /// TLS secrets the input carries: the flows opened from here on decrypt
    /// with them. Every packet pushed before is through its worker first, so
    /// the same packets see them for any number of jobs.
    pub fn add_secrets(&mut self, keys: crate::keylog::KeyLog) {
        self.dispatch.settle();
        self.state.notes.secrets_dropped += self.found_secrets.add(keys);
    }

    /// Frames pushed so far.
    pub fn frames(&self) -> u64 {
        self.state.totals.frames
    }

    /// What the source says of itself (format, skipped blocks, why it
    /// stopped), for the report's notes.
    pub fn set_source(&mut self, source: SourceNotes) {
        self.state.source = source;
    }

    /// The next packet of the input, in capture order.
    pub fn push(&mut self, p: &Packet) {
        let key = self.opts.flow.device_key;
        let (st, dispatch) = (&mut self.state, &mut self.dispatch);
        let t = &mut st.totals;
        let idx = t.frames;
        t.frames += 1;
        t.wire_bytes += p.wire_len as u64;
        t.captured_bytes += p.data.len() as u64;
        st.linktypes.add(p.linktype);
        st.span.add(p.ts_ns);
        // A frame outside flows: its device is one of the addresses it
        // carries (the radio stage picks which), its link bytes not billed.
        let link_ids =
            || if key.reads_link() { decode::link::link_ids(p.linktype, p.data) } else { LinkIds::default() };
        let lone = |link_len: u32, ends: Option<(IpAddr, IpAddr)>, teid: Option<u32>| {
            let (device, peer) = key.of_frame(ends, &link_ids(), teid);
            FrameTick::outside(idx, p.ts_ns, p.wire_len, link_len, device, peer)
        };
        let mut frame = decode::decode(p.linktype, p.data, p.wire_len);
        if key.reads_link()
            && let Frame::Ip(d) = &mut frame
        {
            d.link_ids = link_ids();
        }
        if let Frame::Ip(d) = &frame
            && !d.marks.any()
            && !matches!(d.transport, Transport::Other(_))
        {
            // Nearly every frame: a TCP/UDP packet, not tunnelled.
            dispatch.frame(idx, p.ts_ns, p.wire_len, d);
            return;
        }
        // A frame of no flow (or a fragment): its bytes are booked here.
        let outside_before = st.outside;
        let (notes, outside, marks) = (&mut st.notes, &mut st.outside, &mut st.marks);
        note_frame(&frame, p.wire_len as u64, 1, notes, marks);
        match frame {
            Frame::Ip(d) if matches!(d.transport, Transport::Other(_)) => {
                notes.non_tcp_udp_packets += 1;
                outside.add(Class::Link, d.link_len as u64);
                outside.add(Class::Network, d.net_len as u64);
                if let Transport::Other(1 | 58) = d.transport
                    && let Some(u) = decode::link::strip(p.linktype, p.data)
                        .ok()
                        .and_then(|(_, ip)| decode::icmp::port_unreachable(ip))
                {
                    let l4 = if u.tcp { crate::vocab::L4::Tcp } else { crate::vocab::L4::Udp };
                    st.outside_facts.port_unreachable(u.client, u.server, l4, p.ts_ns, p.wire_len);
                }
                dispatch.outside(lone(d.link_len, Some((d.src, d.dst)), d.teid));
            }
            Frame::Ip(d) => dispatch.frame(idx, p.ts_ns, p.wire_len, &d),
            Frame::Fragment { link_len, .. } => {
                notes.ip_fragments += 1;
                let ip = decode::link::strip(p.linktype, p.data).map(|(_, ip)| ip).unwrap_or(&[]);
                let header = decode::ip_header(ip, decode::wire_ip_len(p.wire_len, p.data, ip));
                let ends = header.as_ref().map(|h| (h.src, h.dst));
                let joined = header
                    .and_then(|h| h.fragment.map(|fi| (h, fi)))
                    .and_then(|(h, fi)| st.defrag.add(p.ts_ns, &h, fi, ip, link_len));
                match joined {
                    Some(j) => match j.frame() {
                        Frame::Ip(d) if !matches!(d.transport, Transport::Other(_)) => {
                            marks.add(d.marks, j.bytes.frames);
                            dispatch.joined(idx, p.ts_ns, &j, &Decoded { link_ids: link_ids(), ..d })
                        }
                        f => {
                            // A tunnel's inner packet: the fragments' IP headers are link too.
                            let (link, net) = match f {
                                Frame::Ip(d) if d.marks.any() => (
                                    d.link_len as u64 + j.bytes.network,
                                    j.bytes.data.saturating_sub(d.link_len as u64),
                                ),
                                Frame::NotIp { .. } => (j.bytes.network + j.bytes.data, 0),
                                _ => (0, j.bytes.network + j.bytes.data),
                            };
                            note_frame(&f, j.wire_len() as u64, j.bytes.frames, notes, marks);
                            outside.add(Class::Link, j.bytes.link + link);
                            outside.add(Class::Network, net);
                            dispatch.outside(lone(link_len, ends, None));
                        }
                    },
                    None => dispatch.outside(lone(link_len, ends, None)),
                }
            }
            Frame::NotIp { .. } => {
                outside.add(Class::Link, p.wire_len as u64);
                let arp = decode::link::arp_addresses(p.linktype, p.data);
                dispatch.outside(lone(p.wire_len, arp.map(|(s, t)| (IpAddr::V4(s), IpAddr::V4(t))), None));
            }
            Frame::Broken { link_len, why, .. } => {
                *notes.broken_packets.entry(why.to_string()).or_default() += 1;
                outside.add(Class::Link, link_len as u64);
                outside.add(Class::Network, (p.wire_len - link_len) as u64);
                dispatch.outside(lone(link_len, None, None));
            }
        }
        st.timeline.add_since(p.ts_ns, &outside_before, &st.outside);
    }

    /// The clock has reached `now_ns` with no packet: flows idle past their
    /// timeout end now, as a packet at that time would have ended them.
    pub fn advance(&mut self, now_ns: i64) {
        self.dispatch.advance(now_ns);
    }

    /// The report of everything pushed so far, as if the input ended here.
    /// Computed on a copy of the state: nothing that comes later changes
    /// because of it.
    pub fn snapshot_input(&mut self) -> Result<InputReport, String> {
        let (workers, tap) = self.dispatch.snapshot()?;
        Ok(assemble(&self.name, &self.opts, self.state.clone(), workers, tap))
    }

    /// [`Engine::snapshot_input`] as a whole report.
    pub fn snapshot(&mut self) -> Result<Report, String> {
        Ok(Report::combine(vec![self.snapshot_input()?], Vec::new()))
    }

    /// The input's report: every flow still open is finished.
    pub fn finish_input(self) -> Result<InputReport, String> {
        let (workers, tap) = self.dispatch.finish()?;
        Ok(assemble(&self.name, &self.opts, self.state, workers, tap))
    }

    /// [`Engine::finish_input`] as a whole report.
    pub fn finish(self) -> Result<Report, String> {
        Ok(Report::combine(vec![self.finish_input()?], Vec::new()))
    }
}

/// Counts in `notes` what decoding met in `frames` frames of `wire_len`
/// bytes besides a plain TCP/UDP packet: encapsulations and offloads, and
/// why a frame is not IP.
fn note_frame(f: &Frame, wire_len: u64, frames: u32, notes: &mut Notes, marks: &mut decode::MarkCounts) {
    marks.add(f.marks(), frames);
    let Frame::NotIp { why, .. } = f else { return };
    let n = u64::from(frames);
    if let NotIp::UnsupportedLinktype(lt) = why {
        *notes.unsupported_linktypes.entry(decode::link::name(*lt)).or_default() += n;
        notes.unsupported_linktype_bytes += wire_len;
        return;
    }
    notes.non_ip_frames += n;
    notes.non_ip_bytes += wire_len;
    match why {
        NotIp::WifiProtected => {
            notes.wifi_protected_frames += n;
            notes.wifi_protected_bytes += wire_len;
        }
        NotIp::WifiManagement => notes.wifi_management_frames += n,
        _ => {}
    }
    let kind = match *why {
        NotIp::EtherType(et) => format!("EtherType {et:#06x}"),
        NotIp::Ppp(p) => format!("PPP protocol {p:#06x}"),
        NotIp::WifiProtected => "802.11 protected data".into(),
        NotIp::WifiManagement => "802.11 management or control".into(),
        NotIp::TooShort | NotIp::UnsupportedLinktype(_) => "cut short".into(),
    };
    // Bounded like every map of peer-chosen keys.
    crate::dissect::bump(&mut notes.non_ip_types, &kind, n);
}

/// Analyzes one capture file.
pub fn analyze_file(path: &Path, opts: &Options) -> Result<InputReport, ReadError> {
    analyze_reader(CaptureReader::open(path)?, path, opts)
}

/// Analyzes what `reader` reads (a file, a pipe, bytes in memory); `path`
/// names it in errors and progress.
pub fn analyze_reader(mut reader: CaptureReader, path: &Path, opts: &Options) -> Result<InputReport, ReadError> {
    let error = |what| ReadError { input: path.to_path_buf(), record: 0, offset: 0, what };
    let mut engine = Engine::new(reader.name(), opts).map_err(error)?;
    let size = reader.position().1.unwrap_or(0);
    let result = loop {
        let (offset, _) = reader.position();
        match reader.next() {
            Ok(Some(Record::Packet(p))) => {
                if engine.frames() % 65_536 == 0
                    && let Some(cb) = &opts.progress
                {
                    cb(path, offset, size);
                }
                engine.push(&p);
            }
            Ok(Some(Record::Secrets { kind: SecretsKind::TlsKeyLog, data })) => {
                engine.add_secrets(crate::keylog::KeyLog::parse(&String::from_utf8_lossy(data)));
            }
            Ok(Some(Record::Secrets { .. })) => {}
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    if let Some(cb) = &opts.progress {
        cb(path, size, size);
    }
    if let Err(e) = &result
        && engine.frames() == 0
    {
        return Err(e.clone());
    }
    let stats = reader.stats();
    engine.set_source(SourceNotes {
        format: stats.format.to_string(),
        skipped_blocks: stats.skipped_blocks + stats.unknown_blocks,
        skipped_records: stats.skipped_records,
        skipped_notes: stats.skipped_notes.clone(),
        read_error: result.err().map(|e| e.to_string()),
    });
    let frames = engine.frames();
    engine.finish_input().map_err(|what| ReadError { input: path.to_path_buf(), record: frames, offset: size, what })
}

/// Analyzes several files with `jobs` threads in all: several files at once
/// when there are enough of them, else each file's flows spread over the
/// threads. Results come back in the order of `files`.
pub fn analyze_all(files: &[PathBuf], opts: &Options, jobs: usize) -> Vec<Result<InputReport, ReadError>> {
    let jobs = jobs.max(1);
    if files.len() < 2 || jobs < 2 {
        let mut o = opts.clone();
        o.jobs = jobs;
        return files.iter().map(|f| analyze_file(f, &o)).collect();
    }
    let mut o = opts.clone();
    o.jobs = 1;
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<Result<InputReport, ReadError>>>> =
        files.iter().map(|_| std::sync::Mutex::new(None)).collect();
    let work = || {
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(f) = files.get(i) else { break };
            let r = analyze_file(f, &o);
            if let Some(slot) = results.get(i)
                && let Ok(mut g) = slot.lock()
            {
                *g = Some(r);
            }
        }
    };
    std::thread::scope(|s| {
        // The calling thread is one of them; a thread that cannot start
        // leaves its share to the others.
        for _ in 1..jobs.min(files.len()).min(MAX_WORKERS) {
            if std::thread::Builder::new().spawn_scoped(s, work).is_err() {
                break;
            }
        }
        work();
    });
    results
        .into_iter()
        .zip(files)
        .map(|(m, f)| {
            m.into_inner().ok().flatten().unwrap_or_else(|| {
                Err(ReadError { input: f.clone(), record: 0, offset: 0, what: "analysis thread failed".into() })
            })
        })
        .collect()
}
