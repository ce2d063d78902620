//! The report model (REPORT.md section 2) and its renderers. Renderers
//! compute nothing: every figure is in the model.

pub mod breakdown;
pub mod charts;
pub mod compare_view;
pub mod costs;
pub mod devices;
pub mod doc;
pub mod export;
pub mod html;
pub mod json;
pub mod markdown;
pub mod summary;
pub mod table;
/// The report's timeline of bytes: built by the flow stage from its ledgers.
pub use crate::ledger::timeline;
pub mod warnings;
pub mod whatif_view;

pub use summary::{ExchangeSummaries, ExchangeSummary};

use crate::dissect::ProtoStats;
use crate::findings::Finding;
use crate::flow::FlowRecord;
use crate::ledger::exchange::UNLISTED_FLOW;
use crate::ledger::{Exchange, Ledger};
use crate::radio::RadioReport;
use devices::{DeviceReport, FleetReport};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The report format: `wiretax/1` while changes are additive (docs/REPORT.md).
pub const SCHEMA: &str = "wiretax/1";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Totals {
    pub frames: u64,
    pub wire_bytes: u64,
    /// Bytes the capture kept (less than wire_bytes when snaplen cut frames).
    pub captured_bytes: u64,
    pub duration_s: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_ts: Option<f64>,
    pub classes: Ledger,
    pub goodput_ratio: f64,
    /// IP bytes, what an operator bills: every frame's wire length less its
    /// link-layer bytes (TCP control frames' too, which the ledger books
    /// whole as `tcp_control`, so `wire_bytes - classes.link` is more).
    /// Absent from reports saved before it was counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billed_bytes: Option<u64>,
}

/// What an input held besides flows: what was skipped and why.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Notes {
    pub format: String,
    pub linktypes: BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unsupported_linktypes: BTreeMap<String, u64>,
    pub non_ip_frames: u64,
    /// Non-IP frames by kind ("EtherType 0x0806", "PPP protocol 0xc021",
    /// "802.11 management or control", ...), and their wire bytes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub non_ip_types: BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub non_ip_bytes: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unsupported_linktype_bytes: u64,
    /// Frames per encapsulation they came in (`{"vxlan": 1200}`): the
    /// tunnel headers are `link`, the inner packet is analysed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub encapsulations: BTreeMap<String, u64>,
    /// IEEE 802.11 data frames protected at the Wi-Fi layer (WPA): `link`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub wifi_protected_frames: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub wifi_protected_bytes: u64,
    /// IEEE 802.11 management and control frames, and null data: `link`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub wifi_management_frames: u64,
    /// Segments of a Linux host's TSO/GSO or BIG TCP whose IP length was
    /// 0 or did not fit: their length was taken from the frame.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub offloaded_segments: u64,
    pub non_tcp_udp_packets: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub broken_packets: BTreeMap<String, u64>,
    pub ip_fragments: u64,
    pub abandoned_fragments: u64,
    /// Wire bytes the capture did not keep (snaplen), classified by inference.
    pub inferred_bytes: u64,
    pub skipped_blocks: u64,
    pub malformed_bytes: u64,
    pub flows_omitted: u64,
    pub exchanges_omitted: u64,
    /// Flows finished before their time to keep memory bounded
    /// (`--max-live-flows`): their later packets start new flows.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub flows_evicted: u64,
    /// Exchanges closed before their answer or end to keep memory bounded:
    /// a flow held 256 open ones, or the live flows together held more than
    /// 131,072. Their later bytes count to the exchange current then, or to
    /// the connection's setup.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub exchanges_closed_early: u64,
    /// Records of the capture skipped as corrupted, reading on after them
    /// (an original length past 1 MiB, a packet block that cannot hold its
    /// captured length): in no figure.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub skipped_records: u64,
    /// Why, for the first eight: `record N at byte offset O: ...`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped_record_notes: Vec<String>,
    /// Connections whose secrets the capture's Decryption Secrets Blocks
    /// carried past the 65,536 held (`keylog::MAX_FOUND_SESSIONS`): not
    /// kept, so those connections are not decrypted.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub secrets_dropped: u64,
    /// Why reading stopped early; the figures cover everything before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conservation_error: Option<String>,
    /// A live capture's packet statistics (`wiretax live -i`): packets
    /// dropped before wiretax saw them are in no other figure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_drops: Option<CaptureDrops>,
}

/// What libpcap and the kernel say of a live capture (pcap_stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CaptureDrops {
    /// Packets that passed the filter.
    pub received: u64,
    /// Dropped by the kernel or libpcap for want of buffer space.
    pub dropped: u64,
    /// Dropped by the interface or its driver.
    pub interface_dropped: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The analysis of one input.
#[derive(Debug, Clone)]
pub struct InputReport {
    pub input: String,
    pub totals: Totals,
    pub tcp_streams: u64,
    pub udp_streams: u64,
    pub flows: Vec<FlowRecord>,
    pub stats: ProtoStats,
    pub exchanges: Vec<Exchange>,
    pub notes: Notes,
    pub radio: Option<RadioReport>,
    /// One per device (with the radio model), and all of them.
    pub devices: Vec<DeviceReport>,
    pub fleet: Option<FleetReport>,
    pub findings: Vec<Finding>,
    /// Every exchange, listed or not, by kind.
    pub summaries: ExchangeSummaries,
    /// Every flow, listed or not, by application protocol.
    pub apps: breakdown::AppLedgers,
    pub timeline: Option<timeline::Timeline>,
    /// Every finding's changes re-simulated together.
    pub all_findings_fixed: Option<crate::findings::AllFixed>,
    /// `wiretax whatif`'s scenarios, when it asked for them.
    pub whatif: Option<crate::whatif::stacks::WhatifReport>,
}

/// One input's summary in a report over several.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InputSummary {
    pub input: String,
    pub totals: Totals,
    pub tcp_streams: u64,
    pub udp_streams: u64,
    pub notes: Notes,
    /// What could not be read, one line each in the table.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<warnings::Warning>,
    /// This input's radio model (the top-level `radio` when there is one input).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub radio: Option<RadioReport>,
    /// Why the input could not be read at all (its figures are then zero).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// This input's bytes per time bin (the top-level `timeline` when there is one input).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<timeline::Timeline>,
    /// This input's devices and fleet (top-level when there is one input).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<FleetReport>,
}

impl InputSummary {
    /// An input that could not be read: named, with why.
    pub fn failed(input: String, error: String) -> InputSummary {
        InputSummary {
            input,
            totals: Totals::default(),
            tcp_streams: 0,
            udp_streams: 0,
            notes: Notes::default(),
            warnings: Vec::new(),
            radio: None,
            error: Some(error),
            timeline: None,
            devices: Vec::new(),
            fleet: None,
        }
    }
}

/// The whole report, as `--format json` writes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub schema: String,
    pub totals: Totals,
    pub tcp_streams: u64,
    pub udp_streams: u64,
    pub flows: Vec<FlowRecord>,
    /// The protocol sections (`http`, `tls`, `mqtt`, `coap`, ...).
    #[serde(flatten)]
    pub stats: ProtoStats,
    pub exchanges: Vec<Exchange>,
    /// Per exchange kind: count, median bytes, overhead factor.
    pub exchange_summary: Vec<ExchangeSummary>,
    /// The radio model of the input (with several inputs: each input's is in `inputs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub radio: Option<RadioReport>,
    /// The input's devices, each with its own radio (with several inputs:
    /// each input's are in `inputs`).
    #[serde(default)]
    pub devices: Vec<DeviceReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<FleetReport>,
    pub findings: Vec<Finding>,
    /// Every finding's changes re-simulated together, once: the findings'
    /// own savings overlap (with several inputs: their sum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all_findings_fixed: Option<crate::findings::AllFixed>,
    /// The input's bytes per time bin by class (with several inputs: each input's is in `inputs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<timeline::Timeline>,
    /// Per exchange kind and per message (kind and verb): what one exchange
    /// cost, class by class, with its share of the connection's setup.
    #[serde(default)]
    pub exchange_costs: Vec<costs::ExchangeCost>,
    /// The byte ledger per application protocol, of the listed flows.
    #[serde(default)]
    pub ledger_by_app: Vec<breakdown::AppLedger>,
    pub inputs: Vec<InputSummary>,
    /// Inputs that could not be read at all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_inputs: Vec<String>,
}

/// Shares' ids moved by `base` (an id past `u32` stays at the largest).
fn shift_shares(shares: &mut [crate::radio::sim::ShareReport], base: u64) {
    for s in shares {
        s.index = u32::try_from(u64::from(s.index) + base).unwrap_or(u32::MAX);
    }
}

/// `v` written as the JSON report writes it (compact: its numbers are
/// the same) into `bytes`, and read back.
fn read_back<T: Serialize + serde::de::DeserializeOwned>(v: &T, bytes: &mut Vec<u8>) -> Result<T, String> {
    bytes.clear();
    json::write_compact(&mut *bytes, v).map_err(|e| e.to_string())?;
    serde_json::from_slice(bytes).map_err(|e| format!("not a wiretax report: {e}"))
}

/// Every entry of `list` written as JSON and read back, one at a time.
fn read_back_each<T: Serialize + serde::de::DeserializeOwned>(
    list: Vec<T>,
    bytes: &mut Vec<u8>,
) -> Result<Vec<T>, String> {
    list.into_iter().map(|v| read_back(&v, bytes)).collect()
}

/// `more` after `list`; `more` itself if `list` is empty.
fn append<T>(list: &mut Vec<T>, mut more: Vec<T>) {
    if list.is_empty() {
        *list = more;
    } else {
        list.append(&mut more);
    }
}

impl Report {
    /// A report saved as JSON (`analyze --format json`), read back. Reports
    /// of another schema are refused: their fields may mean other things.
    pub fn read(rd: impl std::io::Read) -> Result<Report, String> {
        let report: Report = serde_json::from_reader(rd).map_err(|e| format!("not a wiretax report: {e}"))?;
        if report.schema != SCHEMA {
            return Err(format!("schema {:?}, this wiretax reads {SCHEMA:?}", report.schema));
        }
        Ok(report)
    }

    /// The report as its JSON says it: every number at the precision the
    /// model has (`json::model_precision`). Renderers other than JSON draw
    /// from this, so a saved report renders exactly as the analysis did.
    /// Read back a piece at a time, each list an entry at a time, each
    /// entry's memory freed as its copy is made: the whole report's JSON
    /// (43 MB on the bench's capture) and a second whole report are never
    /// held at once.
    pub fn into_model_precision(mut self) -> Result<Report, String> {
        let flows = std::mem::take(&mut self.flows);
        let exchanges = std::mem::take(&mut self.exchanges);
        let devices = std::mem::take(&mut self.devices);
        let inputs = std::mem::take(&mut self.inputs);
        let bytes = &mut Vec::new();
        let mut back = read_back(&self, bytes)?;
        drop(self);
        back.flows = read_back_each(flows, bytes)?;
        back.exchanges = read_back_each(exchanges, bytes)?;
        back.devices = read_back_each(devices, bytes)?;
        back.inputs = inputs
            .into_iter()
            .map(|mut i| {
                let devices = std::mem::take(&mut i.devices);
                let mut back = read_back(&i, bytes)?;
                back.devices = read_back_each(devices, bytes)?;
                Ok(back)
            })
            .collect::<Result<_, String>>()?;
        Ok(back)
    }

    /// One report over every input; flows and exchanges keep their input's order.
    pub fn combine(inputs: Vec<InputReport>, failed: Vec<String>) -> Report {
        let mut totals = Totals::default();
        let mut stats = ProtoStats::default();
        let (mut tcp, mut udp) = (0, 0);
        let mut flows = Vec::new();
        let mut exchanges = Vec::new();
        let mut summaries = Vec::new();
        let (mut start, mut end): (Option<f64>, f64) = (None, 0.0);
        let (mut flow_base, mut x_base) = (0u64, 0u64);
        let single = inputs.len() == 1;
        let mut findings = Vec::new();
        let mut all_fixed = None;
        let (mut top_radio, mut top_devices, mut top_fleet) = (None, Vec::new(), None);
        let mut all_exchanges = ExchangeSummaries::default();
        let mut all_apps = breakdown::AppLedgers::default();
        let mut top_timeline = None;
        for (i, mut r) in inputs.into_iter().enumerate() {
            let warnings = warnings::of(&r);
            if !single && let Some(x) = r.radio.as_mut() {
                // An input's radio shares name its flows and exchanges by
                // their ids, which are shifted below: shifted with them.
                shift_shares(&mut x.per_flow, flow_base);
                shift_shares(&mut x.per_exchange, x_base);
            }
            totals.frames += r.totals.frames;
            totals.wire_bytes += r.totals.wire_bytes;
            totals.captured_bytes += r.totals.captured_bytes;
            // Known for the sum only when known for every input.
            totals.billed_bytes = match (i, totals.billed_bytes, r.totals.billed_bytes) {
                (0, _, b) => b,
                (_, a, b) => a.zip(b).map(|(a, b)| a + b),
            };
            totals.classes.merge(&r.totals.classes);
            if let Some(s) = r.totals.start_ts {
                start = Some(start.map_or(s, |x: f64| x.min(s)));
                end = end.max(s + r.totals.duration_s);
            }
            tcp += r.tcp_streams;
            udp += r.udp_streams;
            stats.merge(&r.stats);
            // Ids stay unique across inputs. The first input's lists are
            // taken as they are, not copied (10,000 of each by default).
            let mut input_flows = r.flows;
            input_flows.iter_mut().for_each(|f| f.id += flow_base);
            append(&mut flows, input_flows);
            let mut input_exchanges = r.exchanges;
            for x in &mut input_exchanges {
                x.id += x_base;
                if x.flow != UNLISTED_FLOW {
                    x.flow += flow_base;
                }
            }
            append(&mut exchanges, input_exchanges);
            flow_base += r.tcp_streams + r.udp_streams;
            x_base = exchanges.last().map_or(x_base, |x| x.id + 1);
            findings.extend(r.findings);
            all_fixed = crate::findings::AllFixed::sum(all_fixed, r.all_findings_fixed);
            all_exchanges.merge(&r.summaries);
            all_apps.merge(&r.apps);
            let (radio, devices, fleet) = if single {
                (top_radio, top_devices, top_fleet) = (r.radio, r.devices, r.fleet);
                (None, Vec::new(), None)
            } else {
                (r.radio, r.devices, r.fleet)
            };
            let timeline = if single {
                top_timeline = r.timeline;
                None
            } else {
                r.timeline
            };
            summaries.push(InputSummary {
                warnings,
                input: r.input,
                totals: r.totals,
                tcp_streams: r.tcp_streams,
                udp_streams: r.udp_streams,
                notes: r.notes,
                radio,
                error: None,
                timeline,
                devices,
                fleet,
            });
        }
        totals.start_ts = start;
        totals.duration_s = start.map(|s| end - s).unwrap_or(0.0);
        totals.goodput_ratio = totals.classes.goodput_ratio();
        let ledger_by_app = all_apps.rows();
        Report {
            schema: SCHEMA.to_string(),
            totals,
            tcp_streams: tcp,
            udp_streams: udp,
            flows,
            stats,
            exchange_summary: all_exchanges.rows(),
            exchange_costs: costs::ExchangeCost::of(&all_exchanges, &exchanges),
            ledger_by_app,
            exchanges,
            radio: top_radio,
            devices: top_devices,
            fleet: top_fleet,
            findings,
            all_findings_fixed: all_fixed,
            timeline: top_timeline,
            inputs: summaries,
            failed_inputs: failed,
        }
    }
}
