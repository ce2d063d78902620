//! Tables for analysis (`--export DIR`): the report's flows, exchanges,
//! findings, time bins, radio state bins and exchange costs as Parquet and
//! CSV, one file per table per input (`DIR/flows/INPUT.parquet`), so that
//! many runs form one dataset a query engine reads with a glob. Columns and
//! units: docs/EXPORT.md. The rows are the model's; nothing is computed.

use super::Report;
use super::costs::message_of;
use crate::ledger::{Class, Ledger};
use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringArray, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One column's values.
enum Col {
    U64(Vec<Option<u64>>),
    F64(Vec<Option<f64>>),
    Str(Vec<Option<String>>),
}

/// A table being filled row by row.
struct Table {
    name: &'static str,
    cols: Vec<(String, Col)>,
}

impl Table {
    fn new(name: &'static str) -> Table {
        Table { name, cols: Vec::new() }
    }

    /// The column `name`, made by `make` on the first row.
    fn col(&mut self, name: &str, make: fn() -> Col) -> Option<&mut Col> {
        let at = match self.cols.iter().position(|(n, _)| n == name) {
            Some(i) => i,
            None => {
                self.cols.push((name.to_string(), make()));
                self.cols.len() - 1
            }
        };
        self.cols.get_mut(at).map(|(_, c)| c)
    }

    fn u64(&mut self, name: &str, v: Option<u64>) {
        if let Some(Col::U64(c)) = self.col(name, || Col::U64(Vec::new())) {
            c.push(v);
        }
    }

    fn f64(&mut self, name: &str, v: Option<f64>) {
        if let Some(Col::F64(c)) = self.col(name, || Col::F64(Vec::new())) {
            c.push(v.filter(|x| x.is_finite()));
        }
    }

    fn str(&mut self, name: &str, v: Option<String>) {
        if let Some(Col::Str(c)) = self.col(name, || Col::Str(Vec::new())) {
            c.push(v);
        }
    }

    fn classes(&mut self, l: &Ledger) {
        for c in Class::ALL {
            self.u64(c.name(), Some(l.get(c)));
        }
    }

    fn batch(&self) -> Result<RecordBatch, String> {
        let mut fields = Vec::new();
        let mut arrays: Vec<ArrayRef> = Vec::new();
        for (name, col) in &self.cols {
            let (dt, a): (DataType, ArrayRef) = match col {
                Col::U64(v) => (DataType::UInt64, Arc::new(UInt64Array::from(v.clone()))),
                Col::F64(v) => (DataType::Float64, Arc::new(Float64Array::from(v.clone()))),
                Col::Str(v) => (DataType::Utf8, Arc::new(StringArray::from(v.clone()))),
            };
            fields.push(Field::new(name, dt, true));
            arrays.push(a);
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(|e| format!("{}: {e}", self.name))
    }
}

/// A file name for an input: its file name without the extension, with
/// anything but letters, digits, `-`, `_` and `.` made `_`.
pub fn input_name(input: &str) -> String {
    let base = Path::new(input).file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
    let name: String = base
        .chars()
        .take(120)
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' { c } else { '_' })
        .collect();
    let name = name.trim_start_matches('.').to_string();
    if name.is_empty() { "input".into() } else { name }
}

/// What one input holds of its own: with several inputs, each input's.
struct InputParts<'a> {
    input: Option<String>,
    radio: Option<&'a crate::radio::RadioReport>,
    timeline: Option<&'a super::timeline::Timeline>,
    devices: &'a [super::DeviceReport],
}

fn tables(r: &Report, input: &str) -> Vec<Table> {
    let input = Some(input.to_string());

    let mut flows = Table::new("flows");
    for f in &r.flows {
        flows.str("input", input.clone());
        flows.u64("id", Some(f.id));
        flows.str("l4", Some(f.l4.to_string()));
        flows.str("client", Some(f.client.to_string()));
        flows.str("server", Some(f.server.to_string()));
        flows.str("app", Some(f.app.to_string()));
        flows.str("inner", f.inner.map(|i| i.to_string()));
        flows.u64("frames", Some(f.frames));
        flows.u64("wire_bytes", Some(f.wire_bytes));
        flows.u64("payload_bytes_c2s", Some(f.payload_bytes_c2s));
        flows.u64("payload_bytes_s2c", Some(f.payload_bytes_s2c));
        flows.u64("control_frames", Some(f.control_frames));
        flows.u64("retransmitted_frames", Some(f.retransmitted_frames));
        flows.u64("retransmitted_bytes", Some(f.retransmitted_bytes));
        flows.f64("start_ts", Some(f.start_ts));
        flows.f64("end_ts", Some(f.end_ts));
        flows.u64("exchanges", Some(f.exchanges));
        flows.u64("setup_bytes", Some(f.setup_bytes));
        flows.u64("dns_lookup_bytes", Some(f.dns_lookup_bytes));
        flows.u64("malformed_bytes", Some(f.malformed_bytes));
        flows.classes(&f.classes);
    }

    // One input's parts are at the top; several inputs' are each in
    // `inputs`, named by their own input.
    let parts: Vec<InputParts> = if r.inputs.len() > 1 {
        r.inputs
            .iter()
            .map(|i| InputParts {
                input: Some(input_name(&i.input)),
                radio: i.radio.as_ref(),
                timeline: i.timeline.as_ref(),
                devices: &i.devices,
            })
            .collect()
    } else {
        vec![InputParts {
            input: input.clone(),
            radio: r.radio.as_ref(),
            timeline: r.timeline.as_ref(),
            devices: &r.devices,
        }]
    };
    // Several inputs' shares name the combined report's exchange ids.
    let radio_of: HashMap<u64, &crate::radio::sim::ShareReport> = parts
        .iter()
        .flat_map(|p| p.radio.iter().flat_map(|x| x.per_exchange.iter()))
        .map(|s| (u64::from(s.index), s))
        .collect();
    let mut exchanges = Table::new("exchanges");
    for x in &r.exchanges {
        exchanges.str("input", input.clone());
        exchanges.u64("id", Some(x.id));
        exchanges.u64("flow", (x.flow != crate::ledger::exchange::UNLISTED_FLOW).then_some(x.flow));
        exchanges.str("kind", Some(x.kind.to_string()));
        exchanges.str("message", Some(message_of(x)));
        exchanges.str("what", Some(x.what.clone()));
        exchanges.f64("start_ts", Some(x.start_ts));
        exchanges.f64("end_ts", Some(x.end_ts));
        exchanges.f64("ttfb_s", x.ttfb_s);
        exchanges.u64("wire_bytes", Some(x.wire_bytes));
        exchanges.f64("setup_share_bytes", Some(x.setup_share_bytes));
        exchanges.f64("total_cost_bytes", Some(x.total_cost_bytes));
        exchanges.u64("frames_c2s", Some(u64::from(x.frames_c2s)));
        exchanges.u64("frames_s2c", Some(u64::from(x.frames_s2c)));
        exchanges.u64("bytes_c2s", Some(x.bytes_c2s));
        exchanges.u64("bytes_s2c", Some(x.bytes_s2c));
        exchanges.u64("turns", Some(u64::from(x.turns)));
        let share = radio_of.get(&x.id);
        exchanges.f64("radio_energy_j", share.map(|s| s.energy_j));
        exchanges.f64("radio_charge_mah", share.map(|s| s.charge_mah));
        exchanges.f64("radio_on_s", share.map(|s| s.radio_on_s));
        exchanges.classes(&x.classes);
    }

    let mut findings = Table::new("findings");
    for f in &r.findings {
        findings.str("input", input.clone());
        findings.str("id", Some(f.id.clone()));
        findings.str("severity", Some(f.severity.clone()));
        findings.str("title", Some(f.title.clone()));
        findings.u64("saving_bytes_per_day", Some(f.saving_per_day.bytes));
        findings.f64("saving_charge_mah_per_day", f.saving_per_day.charge_mah);
        findings.str("recommendation", Some(f.recommendation.clone()));
        findings.str("evidence", Some(f.evidence.to_string()));
    }

    let mut bins = Table::new("time_bins");
    for (t, input) in parts.iter().filter_map(|p| p.timeline.map(|t| (t, &p.input))) {
        for b in &t.bins {
            bins.str("input", input.clone());
            bins.f64("start_ts", Some(t.start_ts + b.t_s));
            bins.f64("bin_s", Some(t.bin_s));
            bins.u64("wire_bytes", Some(b.wire_bytes));
            bins.classes(&b.classes);
        }
    }

    let mut states = Table::new("radio_bins");
    for (s, input) in parts.iter().filter_map(|p| p.radio.and_then(|x| x.timeline.as_ref()).map(|s| (s, &p.input))) {
        for b in &s.bins {
            states.str("input", input.clone());
            states.f64("start_ts", Some(s.start_ts + b.t_s));
            states.f64("bin_s", Some(s.bin_s));
            states.f64("promotion_s", Some(b.promotion_s));
            states.f64("transfer_s", Some(b.transfer_s));
            states.f64("tail_s", Some(b.tail_s));
            states.f64("idle_s", Some(b.idle_s));
        }
    }

    let mut devices = Table::new("devices");
    for (d, input) in parts.iter().flat_map(|p| p.devices.iter().map(move |d| (d, &p.input))) {
        devices.str("input", input.clone());
        devices.str("device", Some(d.id.clone()));
        devices.str("name", d.name.clone());
        devices.u64("frames", Some(d.frames));
        devices.u64("wire_bytes", Some(d.wire_bytes));
        devices.u64("billed_bytes", Some(d.billed_bytes));
        devices.u64("flows", Some(d.flows));
        devices.u64("exchanges", Some(d.exchanges));
        devices.f64("radio_on_s", Some(d.radio.radio_on_s));
        devices.f64("energy_j", Some(d.radio.energy_j));
        devices.f64("charge_mah", Some(d.radio.charge_mah));
        devices.u64("wakeups", Some(d.radio.wakeups));
        let day = d.per_day.projected.then_some(&d.per_day);
        devices.u64("bytes_per_day", day.map(|p| p.bytes));
        devices.u64("billed_bytes_per_day", day.map(|p| p.billed_bytes));
        devices.f64("radio_on_s_per_day", day.map(|p| p.radio_on_s));
        devices.f64("charge_mah_per_day", day.map(|p| p.charge_mah));
        devices.str("per_day_basis", Some(d.per_day.basis.clone()));
        devices.f64("battery_life_days", d.battery_life_days);
        devices.classes(&d.classes);
    }

    let mut costs = Table::new("exchange_costs");
    for c in &r.exchange_costs {
        costs.str("input", input.clone());
        costs.str("kind", Some(c.kind.to_string()));
        costs.str("message", (!c.message.is_empty()).then(|| c.message.clone()));
        costs.u64("count", Some(c.count));
        let m = &c.mean;
        costs.f64("payload_bytes", Some(m.payload_bytes));
        costs.f64("header_bytes", Some(m.header_bytes));
        costs.f64("tls_bytes", Some(m.tls_bytes));
        costs.f64("control_bytes", Some(m.control_bytes));
        costs.f64("retransmission_bytes", Some(m.retransmission_bytes));
        costs.f64("setup_share_bytes", Some(m.setup_share_bytes));
        costs.f64("total_bytes", Some(m.total_bytes));
        costs.f64("overhead_factor", c.overhead_factor);
        costs.u64("listed_only", Some(u64::from(c.listed_only)));
    }

    vec![flows, exchanges, devices, findings, bins, states, costs]
}

/// Writes every table of `r` as `DIR/TABLE/NAME.parquet` and `.csv`;
/// `name` names the input (see [`input_name`]). A table without rows has
/// no file (its directory is made). Returns the files written.
pub fn write(r: &Report, dir: &Path, name: &str) -> Result<Vec<PathBuf>, String> {
    let mut written = Vec::new();
    for t in tables(r, name) {
        let sub = dir.join(t.name);
        std::fs::create_dir_all(&sub).map_err(|e| format!("{}: {e}", sub.display()))?;
        if t.cols.is_empty() {
            // No rows: no columns known to write.
            continue;
        }
        let batch = t.batch()?;
        let pq = sub.join(format!("{name}.parquet"));
        let file = std::fs::File::create(&pq).map_err(|e| format!("{}: {e}", pq.display()))?;
        let props = parquet::file::properties::WriterProperties::builder()
            .set_compression(parquet::basic::Compression::SNAPPY)
            .build();
        let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), Some(props))
            .map_err(|e| format!("{}: {e}", pq.display()))?;
        w.write(&batch).map_err(|e| format!("{}: {e}", pq.display()))?;
        w.close().map_err(|e| format!("{}: {e}", pq.display()))?;
        written.push(pq);
        let csv = sub.join(format!("{name}.csv"));
        let file = std::fs::File::create(&csv).map_err(|e| format!("{}: {e}", csv.display()))?;
        let mut w = arrow_csv::Writer::new(std::io::BufWriter::new(file));
        w.write(&batch).map_err(|e| format!("{}: {e}", csv.display()))?;
        written.push(csv);
    }
    Ok(written)
}
