//! Hot paths of the per-packet pipeline, each on its own, over a fleet of
//! copies of the shipped captures: record reading, packet slicing, the flow
//! table (lookup, TCP reassembly, dissectors), the whole of `analyze_file`
//! and the JSON report.
//!
//! `cargo bench --bench pipeline [FILTER...]`; `FLEET_COPIES` (default 32)
//! sets how many copies of the mix the fleet holds.

mod common;

use common::{Harness, OwnedPacket, Work, fleet, pcap_image, work_of};
use std::hint::black_box;
use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use wiretax::analyze::{Options, analyze_file};
use wiretax::capture::CaptureReader;
use wiretax::decode::{self, Decoded, Frame, Transport};
use wiretax::flow::{FlowRecord, FlowSink, FlowTable, FrameTick};
use wiretax::ledger::Exchange;
use wiretax::report::Report;

/// Counts what the flow table hands downstream, and drops it.
#[derive(Default)]
struct CountingSink {
    ticks: u64,
    flows: u64,
    exchanges: u64,
}

impl FlowSink for CountingSink {
    fn tick(&mut self, t: FrameTick) {
        self.ticks += t.wire_len as u64 & 1;
    }
    fn exchange_done(&mut self, x: Exchange) {
        self.exchanges += 1 + (x.wire_bytes & 1);
    }
    fn flow_done(&mut self, rec: FlowRecord) {
        self.flows += 1 + (rec.frames & 1);
    }
}

/// An in-memory file the reader can own without copying it each time.
struct SharedBytes(Arc<Vec<u8>>);

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

fn decoded<'a>(pkts: &'a [OwnedPacket]) -> Vec<(i64, u32, Decoded<'a>)> {
    pkts.iter()
        .filter_map(|p| match decode::decode(p.linktype, &p.data, p.wire_len) {
            Frame::Ip(d) if !matches!(d.transport, Transport::Other(_)) => Some((p.ts_ns, p.wire_len, d)),
            _ => None,
        })
        .collect()
}

fn main() {
    let h = Harness::from_args();
    let copies = std::env::var("FLEET_COPIES").ok().and_then(|s| s.parse().ok()).unwrap_or(32);
    let pkts = fleet(copies, Duration::from_secs(1));
    let image = pcap_image(&pkts);
    let work = work_of(&pkts);
    let file_work = Work { packets: work.packets, bytes: image.len() as u64 };
    println!("fleet: {copies} copies of the shipped captures, {} packets, {} bytes of pcap", pkts.len(), image.len());

    // Reading: pcap-parser alone over a slice (the memory-mapped limit), the
    // same through its streaming reader, and wiretax's reader on top of it.
    h.bench("read/pcap-parser slice", file_work, || {
        let mut n = 0u64;
        let Ok((mut rest, _hdr)) = pcap_parser::pcap::parse_pcap_header(&image) else { return 0 };
        while let Ok((r, b)) = pcap_parser::pcap::parse_pcap_frame(rest) {
            n += b.caplen as u64;
            rest = r;
        }
        n
    });
    h.bench("read/pcap-parser reader 1MiB", file_work, || {
        use pcap_parser::traits::PcapReaderIterator;
        let mut n = 0u64;
        let Ok(mut rd) = pcap_parser::LegacyPcapReader::new(1 << 20, Cursor::new(&image[..])) else { return 0 };
        loop {
            match rd.next() {
                Ok((size, b)) => {
                    if let pcap_parser::PcapBlockOwned::Legacy(b) = b {
                        n += b.caplen as u64;
                    }
                    rd.consume(size);
                }
                Err(pcap_parser::PcapError::Incomplete(_)) => {
                    if rd.refill().is_err() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        n
    });
    let shared = Arc::new(image.clone());
    h.bench("read/CaptureReader", file_work, || {
        let mut n = 0u64;
        let src = Cursor::new(SharedBytes(shared.clone()));
        let Ok(mut rd) = CaptureReader::from_read(Path::new("fleet"), Box::new(src)) else { return 0 };
        let _ = rd.for_each(|p, _offset| n += p.data.len() as u64);
        n
    });

    // Slicing: link, IP and transport headers.
    h.bench("decode/decode", work, || {
        let mut n = 0u64;
        for p in &pkts {
            if let Frame::Ip(d) = decode::decode(p.linktype, &p.data, p.wire_len) {
                n += d.payload.len() as u64;
            }
        }
        n
    });

    // The flow table: with payloads stripped it is lookup and bookkeeping
    // alone; with them, reassembly and the registered dissectors too.
    let frames = decoded(&pkts);
    let flow_work = Work { packets: frames.len() as u64, bytes: work.bytes };
    let headers_only: Vec<(i64, u32, Decoded)> = frames
        .iter()
        .map(|(t, w, d)| {
            let mut d = *d;
            d.payload = &[];
            d.payload_len = 0;
            (*t, *w, d)
        })
        .collect();
    h.bench("flow/table headers only (lookup)", flow_work, || {
        let mut table = FlowTable::new(Options::new().flow);
        let mut sink = CountingSink::default();
        for (i, (t, w, d)) in headers_only.iter().enumerate() {
            table.expire(*t, &mut sink);
            table.packet(i as u64, *t, *w, d, 1, 0, &mut sink);
        }
        table.finish_all(&mut sink);
        sink.flows
    });
    h.bench("flow/table full (reassembly+dissect)", flow_work, || {
        let mut table = FlowTable::new(Options::new().flow);
        let mut sink = CountingSink::default();
        for (i, (t, w, d)) in frames.iter().enumerate() {
            table.expire(*t, &mut sink);
            table.packet(i as u64, *t, *w, d, 1, 0, &mut sink);
        }
        table.finish_all(&mut sink);
        sink.flows
    });

    // The whole pipeline on a file (in the page cache), and the JSON report.
    let dir = std::env::temp_dir().join(format!("wiretax-bench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("fleet.pcap");
    if std::fs::write(&path, &image).is_ok() {
        let opts = Options::new();
        h.bench("analyze/analyze_file", file_work, || analyze_file(&path, &opts).map(|r| r.totals.frames).unwrap_or(0));
        let two = Options { jobs: 2, ..Options::new() };
        h.bench("analyze/analyze_file jobs 2", file_work, || {
            analyze_file(&path, &two).map(|r| r.totals.frames).unwrap_or(0)
        });
        if h.wants("report/json")
            && let Ok(r) = analyze_file(&path, &opts)
        {
            let report = Report::combine(vec![r], Vec::new());
            let len = serde_json::to_string_pretty(&report).map(|s| s.len()).unwrap_or(0);
            println!("report: {} flows, {} exchanges, {len} bytes of JSON", report.flows.len(), report.exchanges.len());
            h.bench("report/json pretty", Work { packets: 0, bytes: len as u64 }, || {
                serde_json::to_string_pretty(&report).map(|s| s.len()).unwrap_or(0)
            });
            h.bench("report/json to writer", Work { packets: 0, bytes: len as u64 }, || {
                let mut out = std::io::sink();
                serde_json::to_writer_pretty(&mut out, &report).is_ok()
            });
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    black_box(());
}
