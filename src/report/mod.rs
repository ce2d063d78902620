//! The report model (REPORT.md section 2) and its renderers. Renderers
//! compute nothing: every figure is in the model.

pub mod devices;
pub mod json;
pub mod table;

use crate::dissect::{Proto, ProtoStats};
use crate::findings::Finding;
use crate::flow::FlowRecord;
use crate::ledger::exchange::UNLISTED_FLOW;
use crate::ledger::{Class, Exchange, Ledger};
use crate::radio::RadioReport;
use crate::stats::median;
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
    /// Why reading stopped early; the figures cover everything before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conservation_error: Option<String>,
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
}

/// One input's summary in a report over several.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InputSummary {
    pub input: String,
    pub totals: Totals,
    pub tcp_streams: u64,
    pub udp_streams: u64,
    pub notes: Notes,
    /// This input's radio model (the top-level `radio` when there is one input).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub radio: Option<RadioReport>,
    /// This input's devices and fleet (top-level when there is one input).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<FleetReport>,
}

/// Exchanges of one kind, summarised: what a typical one cost.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExchangeSummary {
    pub kind: Proto,
    pub count: usize,
    pub median_wire_bytes: f64,
    /// Including each exchange's share of its connection's setup.
    pub median_cost_bytes: f64,
    pub median_payload_bytes: f64,
    /// Total cost (setup shares included) over total payload.
    pub overhead_factor: Option<f64>,
}

impl ExchangeSummary {
    fn of(exchanges: &[Exchange]) -> Vec<ExchangeSummary> {
        let mut kinds: Vec<Proto> = exchanges.iter().map(|x| x.kind).collect();
        kinds.sort_unstable();
        kinds.dedup();
        kinds
            .into_iter()
            .map(|kind| {
                let xs: Vec<&Exchange> = exchanges.iter().filter(|x| x.kind == kind).collect();
                let mut wire: Vec<f64> = xs.iter().map(|x| x.wire_bytes as f64).collect();
                let mut cost: Vec<f64> = xs.iter().map(|x| x.total_cost_bytes).collect();
                let mut pay: Vec<f64> = xs.iter().map(|x| x.classes.get(Class::Payload) as f64).collect();
                let total_cost: f64 = cost.iter().sum();
                let total_pay: f64 = pay.iter().sum();
                ExchangeSummary {
                    kind,
                    count: xs.len(),
                    median_wire_bytes: median(&mut wire),
                    median_cost_bytes: median(&mut cost),
                    median_payload_bytes: median(&mut pay),
                    overhead_factor: (total_pay > 0.0).then(|| total_cost / total_pay),
                }
            })
            .collect()
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
    pub inputs: Vec<InputSummary>,
    /// Inputs that could not be read at all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_inputs: Vec<String>,
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
        let (mut top_radio, mut top_devices, mut top_fleet) = (None, Vec::new(), None);
        for r in inputs {
            totals.frames += r.totals.frames;
            totals.wire_bytes += r.totals.wire_bytes;
            totals.captured_bytes += r.totals.captured_bytes;
            totals.classes.merge(&r.totals.classes);
            if let Some(s) = r.totals.start_ts {
                start = Some(start.map_or(s, |x: f64| x.min(s)));
                end = end.max(s + r.totals.duration_s);
            }
            tcp += r.tcp_streams;
            udp += r.udp_streams;
            stats.merge(&r.stats);
            // Ids stay unique across inputs.
            flows.extend(r.flows.into_iter().map(|mut f| {
                f.id += flow_base;
                f
            }));
            exchanges.extend(r.exchanges.into_iter().map(|mut x| {
                x.id += x_base;
                if x.flow != UNLISTED_FLOW {
                    x.flow += flow_base;
                }
                x
            }));
            flow_base += r.tcp_streams + r.udp_streams;
            x_base = exchanges.last().map_or(x_base, |x| x.id + 1);
            findings.extend(r.findings);
            let (radio, devices, fleet) = if single {
                (top_radio, top_devices, top_fleet) = (r.radio, r.devices, r.fleet);
                (None, Vec::new(), None)
            } else {
                (r.radio, r.devices, r.fleet)
            };
            summaries.push(InputSummary {
                input: r.input,
                totals: r.totals,
                tcp_streams: r.tcp_streams,
                udp_streams: r.udp_streams,
                notes: r.notes,
                radio,
                devices,
                fleet,
            });
        }
        totals.start_ts = start;
        totals.duration_s = start.map(|s| end - s).unwrap_or(0.0);
        totals.goodput_ratio = totals.classes.goodput_ratio();
        Report {
            schema: SCHEMA.to_string(),
            totals,
            tcp_streams: tcp,
            udp_streams: udp,
            flows,
            stats,
            exchange_summary: ExchangeSummary::of(&exchanges),
            exchanges,
            radio: top_radio,
            devices: top_devices,
            fleet: top_fleet,
            findings,
            inputs: summaries,
            failed_inputs: failed,
        }
    }
}
