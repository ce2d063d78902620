//! The pipeline: one input (or several) in, one `InputReport` each out.

use crate::capture::{CaptureReader, ReadError};
use crate::decode::{self, Defragmenter, Frame, NotIp};
use crate::flow::{FlowConfig, FlowRecord, FlowSink, FlowTable, FrameTick};
use crate::ledger::{Class, Exchange, Ledger};
use crate::report::{InputReport, Notes, Totals};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Everything `analyze` can be told.
#[derive(Clone, Default)]
pub struct Options {
    pub flow: FlowConfig,
    /// Most flows and exchanges listed in a report (all are counted).
    pub max_flows: usize,
    pub max_exchanges: usize,
}

impl Options {
    pub fn new() -> Options {
        Options { flow: FlowConfig::default(), max_flows: 100_000, max_exchanges: 100_000 }
    }
}

/// Collects what the flow table finishes.
struct Collector {
    flows: Vec<FlowRecord>,
    flows_omitted: u64,
    exchanges: Vec<Exchange>,
    exchanges_omitted: u64,
    max_flows: usize,
    max_exchanges: usize,
    flow_ledger: Ledger,
}

impl FlowSink for Collector {
    fn tick(&mut self, _t: FrameTick) {}
    fn flow_done(&mut self, rec: FlowRecord, exchanges: Vec<Exchange>) {
        self.flow_ledger.merge(&rec.classes);
        if self.flows.len() < self.max_flows {
            self.flows.push(rec);
        } else {
            self.flows_omitted += 1;
        }
        for x in exchanges {
            if self.exchanges.len() < self.max_exchanges {
                self.exchanges.push(x);
            } else {
                self.exchanges_omitted += 1;
            }
        }
    }
}

/// Analyzes one capture file.
pub fn analyze_file(path: &Path, opts: &Options) -> Result<InputReport, ReadError> {
    let mut reader = CaptureReader::open(path)?;
    let mut table = FlowTable::new(opts.flow.clone());
    let mut defrag = Defragmenter::default();
    let mut sink = Collector {
        flows: Vec::new(),
        flows_omitted: 0,
        exchanges: Vec::new(),
        exchanges_omitted: 0,
        max_flows: opts.max_flows.max(1),
        max_exchanges: opts.max_exchanges,
        flow_ledger: Ledger::default(),
    };
    let mut t = Totals::default();
    let mut outside = Ledger::default();
    let mut notes = Notes::default();
    let mut linktypes: BTreeMap<u16, u64> = BTreeMap::new();
    let mut first_ns = None;
    let mut last_ns = 0i64;

    let result = reader.for_each(|p| {
        t.frames += 1;
        t.wire_bytes += p.wire_len as u64;
        t.captured_bytes += p.data.len() as u64;
        *linktypes.entry(p.linktype).or_default() += 1;
        first_ns.get_or_insert(p.ts_ns);
        last_ns = last_ns.max(p.ts_ns);
        table.expire(p.ts_ns, &mut sink);
        match decode::decode(p.linktype, p.data, p.wire_len) {
            Frame::Ip(d) => {
                if matches!(d.transport, decode::Transport::Other(_)) {
                    notes.non_tcp_udp_packets += 1;
                    outside.add(Class::Link, d.link_len as u64);
                    outside.add(Class::Network, d.net_len as u64);
                    sink.tick(FrameTick { ts_ns: p.ts_ns, wire_len: p.wire_len, uplink: true, flow: None, exchange: None });
                } else {
                    table.packet(p.ts_ns, p.wire_len, &d, 1, &mut sink);
                }
            }
            Frame::Fragment { link_len, .. } => {
                notes.ip_fragments += 1;
                let ip = p.data.get(link_len_of(p.linktype, p.data)..).unwrap_or(&[]);
                let joined = decode::ip_header(ip).and_then(|h| h.fragment.map(|fi| (h, fi))).and_then(|(h, fi)| defrag.add(p.ts_ns, &h, fi, ip, link_len));
                if let Some(j) = joined {
                    if let Frame::Ip(mut d) = j.frame() {
                        // The joined datagram's headers were spread over its fragments.
                        d.link_len = j.bytes.link as u32;
                        d.net_len = j.bytes.network as u32;
                        let wire = (j.bytes.link + j.bytes.network + j.bytes.data) as u32;
                        if matches!(d.transport, decode::Transport::Other(_)) {
                            outside.add(Class::Link, d.link_len as u64);
                            outside.add(Class::Network, d.net_len as u64);
                        } else {
                            table.packet(p.ts_ns, wire, &d, j.bytes.frames, &mut sink);
                        }
                    }
                }
            }
            Frame::NotIp { why } => {
                match why {
                    NotIp::UnsupportedLinktype(lt) => {
                        *notes.unsupported_linktypes.entry(decode::link::name(lt)).or_default() += 1;
                    }
                    _ => notes.non_ip_frames += 1,
                }
                outside.add(Class::Link, p.wire_len as u64);
            }
            Frame::Broken { link_len, why } => {
                *notes.broken_packets.entry(why).or_default() += 1;
                outside.add(Class::Link, link_len as u64);
                outside.add(Class::Network, (p.wire_len - link_len) as u64);
            }
        }
    });
    defrag.finish();
    table.finish_all(&mut sink);
    // Fragments of datagrams never completed: their headers, and their data as payload.
    outside.add(Class::Link, defrag.abandoned.link);
    outside.add(Class::Network, defrag.abandoned.network);
    outside.add(Class::Payload, defrag.abandoned.data);
    notes.abandoned_fragments = defrag.abandoned.frames as u64;

    if let Err(e) = &result {
        if t.frames == 0 {
            return Err(e.clone());
        }
        notes.read_error = Some(e.to_string());
    }
    let mut classes = sink.flow_ledger;
    classes.merge(&outside);
    t.classes = classes;
    t.duration_s = first_ns.map(|f| (last_ns - f) as f64 / 1e9).unwrap_or(0.0);
    t.start_ts = first_ns.map(|f| f as f64 / 1e9);
    t.goodput_ratio = classes.goodput_ratio();
    notes.inferred_bytes = t.wire_bytes.saturating_sub(t.captured_bytes);
    notes.format = reader.stats().format;
    notes.linktypes = linktypes.into_iter().map(|(k, v)| (decode::link::name(k), v)).collect();
    notes.skipped_blocks = reader.stats().skipped_blocks + reader.stats().unknown_blocks;
    notes.flows_omitted = sink.flows_omitted;
    notes.exchanges_omitted = sink.exchanges_omitted;
    notes.live_flows_max = table.live_max as u64;
    notes.malformed_bytes = sink.flows.iter().map(|f| f.malformed_bytes).sum();
    if classes.total() != t.wire_bytes {
        notes.conservation_error = Some(format!("classes add up to {} of {} wire bytes", classes.total(), t.wire_bytes));
    }
    Ok(InputReport {
        input: path.display().to_string(),
        totals: t,
        tcp_streams: table.tcp_streams,
        udp_streams: table.udp_streams,
        flows: sink.flows,
        stats: table.stats().clone(),
        exchanges: sink.exchanges,
        notes,
    })
}

fn link_len_of(linktype: u16, data: &[u8]) -> usize {
    decode::link::strip(linktype, data).map(|(n, _)| n as usize).unwrap_or(0)
}

/// Expands directories into the capture files they hold (sorted).
pub fn expand_inputs(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(p)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|q| matches!(q.extension().and_then(|e| e.to_str()), Some("pcap" | "pcapng" | "cap")))
                .collect();
            v.sort();
            out.extend(v);
        } else {
            out.push(p.clone());
        }
    }
    out
}
