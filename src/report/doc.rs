//! The story a report tells, as headings, sentences, charts and tables,
//! laid out once for the HTML and Markdown renderers. Text here is plain
//! (each renderer escapes it for its format); charts are finished SVG.
//! Nothing is computed: figures are the model's, formatted.

use super::Report;
use super::charts::{CLASS_COLORS, COST_COLORS, STATE_COLORS, STATE_NAMES, Stacked, TimelineChart, Unit, clean};
use super::table::human_bytes;
use crate::ledger::{Class, Ledger};
use crate::radio::RadioReport;

/// Longest capture string shown in a label or cell.
const MAX_TEXT: usize = 120;
/// Most timelines drawn (one per input).
const MAX_TIMELINES: usize = 8;
/// Flows shown in the top-flows chart.
const TOP_FLOWS: usize = 10;
/// Exchanges listed, the costliest first.
const TOP_EXCHANGES: usize = 20;
/// Names (hosts, server names, topics) listed per kind.
const TOP_NAMES: usize = 12;

pub struct Doc {
    pub title: String,
    pub sections: Vec<Section>,
}

pub struct Section {
    pub id: String,
    pub heading: String,
    pub blocks: Vec<Block>,
}

pub enum Block {
    Para(String),
    /// A chart and the table of its figures.
    Figure {
        name: String,
        title: String,
        svg: String,
        table: Table,
    },
    Table(Table),
}

#[derive(Default)]
pub struct Table {
    pub caption: String,
    pub head: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Long tables are folded away in HTML.
    pub folded: bool,
}

/// A capture string for a label or cell.
pub fn text(s: &str) -> String {
    clean(s, MAX_TEXT)
}

fn pct(part: f64, whole: f64) -> String {
    if whole > 0.0 { format!("{:.1}%", part * 100.0 / whole) } else { "-".into() }
}

fn class_head(first: &[&str]) -> Vec<String> {
    let mut h: Vec<String> = first.iter().map(|s| s.to_string()).collect();
    h.extend(Class::ALL.iter().map(|c| c.name().to_string()));
    h.push("total".into());
    h
}

fn class_cells(l: &Ledger) -> Vec<String> {
    let mut v: Vec<String> = Class::ALL.iter().map(|c| l.get(*c).to_string()).collect();
    v.push(l.total().to_string());
    v
}

fn class_values(l: &Ledger) -> Vec<f64> {
    Class::ALL.iter().map(|c| l.get(*c) as f64).collect()
}

fn class_parts() -> Vec<(&'static str, plotters::style::RGBColor)> {
    Class::ALL.iter().zip(CLASS_COLORS).map(|(c, col)| (c.name(), col)).collect()
}

/// A chart of ledgers, one bar per row, and its table.
pub fn ledger_figure(name: &str, title: &str, first_head: &str, rows: &[(String, Ledger)], max: Option<f64>) -> Block {
    let chart = Stacked {
        title,
        rows: rows.iter().map(|(l, _)| l.clone()).collect(),
        parts: class_parts(),
        values: rows.iter().map(|(_, l)| class_values(l)).collect(),
        unit: Unit::Bytes,
        max,
    };
    let table = Table {
        caption: format!("{title} (bytes)"),
        head: class_head(&[first_head]),
        rows: rows
            .iter()
            .map(|(label, l)| {
                let mut r = vec![label.clone()];
                r.extend(class_cells(l));
                r
            })
            .collect(),
        folded: false,
    };
    Block::Figure { name: name.into(), title: title.into(), svg: chart.svg(), table }
}

/// Scales shared by charts drawn side by side (a comparison).
#[derive(Default, Clone, Copy)]
pub struct Scales {
    pub ledger_max: Option<f64>,
    pub cost_max: Option<f64>,
    pub energy_max: Option<f64>,
    pub timeline_max: Option<f64>,
    /// Length of the time axis, seconds.
    pub timeline_len: Option<f64>,
}

/// The report as a document. `prefix` names its charts (`ledger` becomes
/// `PREFIXledger`), so two reports' charts can share one page.
pub fn build(r: &Report, prefix: &str, scales: Scales) -> Doc {
    let inputs: Vec<String> = r.inputs.iter().map(|i| text(&i.input)).collect();
    let mut sections = Vec::new();
    let t = &r.totals;

    // Overview.
    let mut blocks = vec![Block::Para(format!(
        "{} frames, {} on the wire over {:.1} s in {} TCP connections and {} UDP flows; goodput {:.1}% (payload over wire bytes).",
        t.frames,
        human_bytes(t.wire_bytes as f64),
        t.duration_s,
        r.tcp_streams,
        r.udp_streams,
        t.goodput_ratio * 100.0
    ))];
    if let Some(top) = r.exchange_costs.iter().filter(|c| !c.message.is_empty()).max_by_key(|c| c.count) {
        blocks.push(Block::Para(format!(
            "The most frequent message of the listed exchanges, {} ({} times), carried {} of payload and cost {} with its share of the connection's setup{}.",
            text(&top.message),
            top.count,
            human_bytes(top.mean.payload_bytes),
            human_bytes(top.mean.total_bytes),
            top.overhead_factor.map(|f| format!(": {f:.1} times its payload")).unwrap_or_default()
        )));
    }
    if let Some(radio) = &r.radio {
        blocks.push(Block::Para(radio_sentence(radio)));
    }
    let st = &r.stats;
    for (what, names) in
        [("HTTP hosts", &st.http.hosts), ("TLS server names", &st.tls.sni), ("MQTT topics", &st.mqtt.topics)]
    {
        if !names.is_empty() {
            let mut v: Vec<(&String, &u64)> = names.iter().collect();
            v.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
            let shown: Vec<String> = v.iter().take(TOP_NAMES).map(|(n, c)| format!("{} ({c})", text(n))).collect();
            let more = if v.len() > TOP_NAMES { format!(" and {} more", v.len() - TOP_NAMES) } else { String::new() };
            blocks.push(Block::Para(format!("{what}: {}{more}.", shown.join(", "))));
        }
    }
    if !r.failed_inputs.is_empty() {
        blocks.push(Block::Para(format!(
            "Inputs that could not be read: {}.",
            r.failed_inputs.iter().map(|s| text(s)).collect::<Vec<_>>().join("; ")
        )));
    }
    sections.push(Section { id: format!("{prefix}overview"), heading: "Overview".into(), blocks });

    // The ledger.
    let mut blocks = Vec::new();
    let mut totals = Table {
        caption: "Every wire byte by class".into(),
        head: vec!["class".into(), "bytes".into(), "share".into()],
        ..Default::default()
    };
    for c in Class::ALL {
        let n = t.classes.get(c);
        totals.rows.push(vec![c.name().into(), n.to_string(), pct(n as f64, t.wire_bytes as f64)]);
    }
    totals.rows.push(vec!["total".into(), t.classes.total().to_string(), "100.0%".into()]);
    blocks.push(Block::Table(totals));
    if !r.ledger_by_app.is_empty() {
        let rows: Vec<(String, Ledger)> = r
            .ledger_by_app
            .iter()
            .map(|a| {
                let label = match a.inner {
                    Some(i) => format!("{}/{} ({} flows)", a.app, i, a.flows),
                    None => format!("{} ({} flows)", a.app, a.flows),
                };
                (label, a.classes)
            })
            .collect();
        blocks.push(ledger_figure(
            &format!("{prefix}ledger"),
            "Byte ledger per protocol",
            "protocol",
            &rows,
            scales.ledger_max,
        ));
    }
    if r.inputs.len() > 1 {
        let mut rows: Vec<(String, Ledger)> = r.inputs.iter().map(|i| (text(&i.input), i.totals.classes)).collect();
        rows.push(("all inputs".into(), t.classes));
        blocks.push(ledger_figure(
            &format!("{prefix}ledger-inputs"),
            "Byte ledger per input (device) and in all",
            "input",
            &rows,
            None,
        ));
    }
    let mut flows: Vec<_> = r.flows.iter().collect();
    flows.sort_by(|a, b| b.wire_bytes.cmp(&a.wire_bytes).then(a.id.cmp(&b.id)));
    if !flows.is_empty() {
        let rows: Vec<(String, Ledger)> = flows
            .iter()
            .take(TOP_FLOWS)
            .map(|f| {
                let app = match f.inner {
                    Some(i) => format!("{}/{}", f.app, i),
                    None => f.app.to_string(),
                };
                (format!("#{} {} {} -> {}", f.id, app, f.client, f.server), f.classes)
            })
            .collect();
        blocks.push(ledger_figure(
            &format!("{prefix}ledger-flows"),
            &format!("Byte ledger of the top {} flows by wire bytes", rows.len()),
            "flow",
            &rows,
            None,
        ));
    }
    sections.push(Section { id: format!("{prefix}ledger"), heading: "Where the bytes went".into(), blocks });

    // Timelines.
    let mut timelines: Vec<(String, &super::timeline::Timeline, Option<&RadioReport>)> = Vec::new();
    if let Some(tl) = &r.timeline {
        timelines.push((inputs.first().cloned().unwrap_or_default(), tl, r.radio.as_ref()));
    }
    for i in &r.inputs {
        if let Some(tl) = &i.timeline {
            timelines.push((text(&i.input), tl, i.radio.as_ref()));
        }
    }
    if !timelines.is_empty() {
        let mut blocks = vec![Block::Para(
            "Bytes per time bin stacked by class; under them the radio's time in each state (promotion, transfer, \
             tail, idle) on the radio model's clock."
                .into(),
        )];
        let shown = timelines.len().min(MAX_TIMELINES);
        for (k, (input, tl, radio)) in timelines.iter().take(MAX_TIMELINES).enumerate() {
            let states = radio.and_then(|x| x.timeline.as_ref());
            let span = scales.timeline_len.map(|len| {
                let (lo, _) = TimelineChart::own_span(tl, states);
                (lo, lo + len)
            });
            let title = if shown > 1 || timelines.len() > 1 { format!("Timeline: {input}") } else { "Timeline".into() };
            let chart = TimelineChart { title: &title, bytes: tl, states, span, max: scales.timeline_max };
            let mut table = Table {
                caption: format!("Bytes per {:.3} s bin (bins with traffic){}", tl.bin_s, ""),
                head: class_head(&["t (s)"]),
                folded: true,
                ..Default::default()
            };
            for b in tl.bins.iter().filter(|b| b.wire_bytes > 0) {
                let mut row = vec![format!("{:.3}", b.t_s)];
                row.extend(class_cells(&b.classes));
                table.rows.push(row);
            }
            let suffix = if k == 0 { String::new() } else { format!("-{}", k + 1) };
            blocks.push(Block::Figure {
                name: format!("{prefix}timeline{suffix}"),
                title: title.clone(),
                svg: chart.svg(),
                table,
            });
            if let Some(s) = states {
                let mut st = Table {
                    caption: format!("Radio: seconds in each state per {:.3} s bin (bins not only idle)", s.bin_s),
                    head: vec!["t (s)".into()],
                    folded: true,
                    ..Default::default()
                };
                st.head.extend(STATE_NAMES.iter().map(|n| format!("{n} (s)")));
                for b in s.bins.iter().filter(|b| b.promotion_s + b.transfer_s + b.tail_s > 0.0) {
                    st.rows.push(vec![
                        format!("{:.3}", b.t_s + s.start_ts - tl.start_ts),
                        format!("{:.4}", b.promotion_s),
                        format!("{:.4}", b.transfer_s),
                        format!("{:.4}", b.tail_s),
                        format!("{:.4}", b.idle_s),
                    ]);
                }
                blocks.push(Block::Table(st));
            }
        }
        if timelines.len() > MAX_TIMELINES {
            blocks.push(Block::Para(format!(
                "{} more inputs have timelines in the JSON report and the exports.",
                timelines.len() - MAX_TIMELINES
            )));
        }
        sections.push(Section { id: format!("{prefix}timeline"), heading: "Over time".into(), blocks });
    }

    // What one exchange cost.
    if !r.exchange_costs.is_empty() {
        let rows: Vec<String> = r
            .exchange_costs
            .iter()
            .map(|c| if c.message.is_empty() { format!("all {}", c.kind) } else { text(&c.message) })
            .collect();
        let chart = Stacked {
            title: "What one exchange cost (mean bytes)",
            rows: rows.clone(),
            parts: r
                .exchange_costs
                .first()
                .map(|c| c.mean.named().iter().map(|(n, _)| *n).collect::<Vec<_>>())
                .unwrap_or_default()
                .into_iter()
                .zip(COST_COLORS)
                .collect(),
            values: r.exchange_costs.iter().map(|c| c.mean.named().iter().map(|(_, v)| *v).collect()).collect(),
            unit: Unit::Bytes,
            max: scales.cost_max,
        };
        let mut table = Table {
            caption: "Mean bytes of one exchange by part, with its share of the connection's setup (a kind: every exchange; a message: the listed exchanges)".into(),
            head: [
                "exchange",
                "count",
                "payload",
                "headers",
                "tls",
                "control",
                "retransmission",
                "setup share",
                "total",
                "total / payload",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            ..Default::default()
        };
        for (label, c) in rows.iter().zip(&r.exchange_costs) {
            let m = &c.mean;
            table.rows.push(vec![
                label.clone(),
                c.count.to_string(),
                format!("{:.1}", m.payload_bytes),
                format!("{:.1}", m.header_bytes),
                format!("{:.1}", m.tls_bytes),
                format!("{:.1}", m.control_bytes),
                format!("{:.1}", m.retransmission_bytes),
                format!("{:.1}", m.setup_share_bytes),
                format!("{:.1}", m.total_bytes),
                c.overhead_factor.map_or("-".into(), |f| format!("{f:.1}x")),
            ]);
        }
        let mut blocks = vec![Block::Figure {
            name: format!("{prefix}exchange-cost"),
            title: "What one exchange cost".into(),
            svg: chart.svg(),
            table,
        }];
        let mut costliest: Vec<_> = r.exchanges.iter().collect();
        costliest.sort_by(|a, b| b.total_cost_bytes.total_cmp(&a.total_cost_bytes).then(a.id.cmp(&b.id)));
        let mut xt = Table {
            caption: format!(
                "The costliest exchanges ({} of {} listed)",
                costliest.len().min(TOP_EXCHANGES),
                costliest.len()
            ),
            head: ["#", "kind", "what", "start (s)", "wire bytes", "payload", "cost with setup share"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            ..Default::default()
        };
        for x in costliest.iter().take(TOP_EXCHANGES) {
            xt.rows.push(vec![
                x.id.to_string(),
                x.kind.to_string(),
                text(&x.what),
                t.start_ts.map_or("-".into(), |s0| format!("{:.3}", x.start_ts - s0)),
                x.wire_bytes.to_string(),
                x.classes.get(Class::Payload).to_string(),
                format!("{:.1}", x.total_cost_bytes),
            ]);
        }
        blocks.push(Block::Table(xt));
        sections.push(Section {
            id: format!("{prefix}exchange-cost"),
            heading: "What one exchange cost".into(),
            blocks,
        });
    }

    // Energy.
    let radios: Vec<(String, &RadioReport)> = match &r.radio {
        Some(x) => vec![(inputs.first().cloned().unwrap_or_default(), x)],
        None => r.inputs.iter().filter_map(|i| i.radio.as_ref().map(|x| (text(&i.input), x))).collect(),
    };
    if !radios.is_empty() {
        let chart = Stacked {
            title: "Radio energy per day (J)",
            rows: radios.iter().map(|(i, x)| format!("{i} ({})", x.profile)).collect(),
            parts: STATE_NAMES.iter().copied().zip(STATE_COLORS).collect(),
            values: radios
                .iter()
                .map(|(_, x)| {
                    let s = &x.per_day.energy_split;
                    vec![s.promotion_j, s.transfer_j, s.tail_j, s.idle_j]
                })
                .collect(),
            unit: Unit::Joules,
            max: scales.energy_max,
        };
        let mut table = Table {
            caption: "Radio per device-day, projected from the capture".into(),
            head: [
                "input",
                "profile",
                "bytes / day",
                "wake-ups / day",
                "radio on (s / day)",
                "charge (mAh / day)",
                "promotion (J)",
                "transfer (J)",
                "tail (J)",
                "idle (J)",
                "battery life (days)",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            ..Default::default()
        };
        for (input, x) in &radios {
            let d = &x.per_day;
            let s = &d.energy_split;
            table.rows.push(vec![
                input.clone(),
                text(&x.profile),
                d.bytes.to_string(),
                format!("{:.1}", d.wakeups),
                format!("{:.1}", d.radio_on_s),
                format!("{:.3}", d.charge_mah),
                format!("{:.2}", s.promotion_j),
                format!("{:.2}", s.transfer_j),
                format!("{:.2}", s.tail_j),
                format!("{:.2}", s.idle_j),
                x.battery_life_days.map_or("-".into(), |b| format!("{b:.0}")),
            ]);
        }
        let mut blocks = vec![Block::Figure {
            name: format!("{prefix}energy"),
            title: "Radio energy per day".into(),
            svg: chart.svg(),
            table,
        }];
        for (input, x) in &radios {
            blocks.push(Block::Para(format!("{input}: {}", radio_sentence(x))));
            if let Some(c) = &x.cost {
                let mut t = Table {
                    caption: format!("{input}: data cost, {} devices", c.devices),
                    head: vec!["period".into(), "bytes".into(), c.unit.clone(), c.currency.clone()],
                    ..Default::default()
                };
                for (label, line) in [
                    ("device-day", &c.device_day),
                    ("fleet-day", &c.fleet_day),
                    ("fleet-month (30 d)", &c.fleet_month),
                    ("fleet-year (365 d)", &c.fleet_year),
                ] {
                    t.rows.push(vec![
                        label.into(),
                        line.bytes.to_string(),
                        format!("{:.3}", line.megabytes),
                        line.cost.map_or("-".into(), |v| format!("{v:.2}")),
                    ]);
                }
                blocks.push(Block::Table(t));
            }
        }
        sections.push(Section { id: format!("{prefix}energy"), heading: "Radio and battery".into(), blocks });
    }

    // Findings, by saving.
    if !r.findings.is_empty() {
        let mut ranked: Vec<_> = r.findings.iter().collect();
        ranked.sort_by(|a, b| b.saving_per_day.bytes.cmp(&a.saving_per_day.bytes).then_with(|| a.id.cmp(&b.id)));
        // Charted: the findings with a saving per day (a one-off event's,
        // or one whose capture's day it does not change, has none to draw).
        let charted: Vec<_> = ranked.iter().filter(|f| f.saving_per_day.bytes > 0).collect();
        let chart = Stacked {
            title: "Findings by bytes saved per day",
            rows: charted.iter().map(|f| text(&f.id)).collect(),
            parts: vec![("bytes saved per day", CLASS_COLORS[9])],
            values: charted.iter().map(|f| vec![f.saving_per_day.bytes as f64]).collect(),
            unit: Unit::Bytes,
            max: None,
        };
        let mut table = Table {
            caption: "Findings ranked by saving, with their evidence and what to change".into(),
            head: ["#", "finding", "severity", "what", "saves / day", "charge / day (mAh)", "evidence", "instead"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            ..Default::default()
        };
        for (k, f) in ranked.iter().enumerate() {
            table.rows.push(vec![
                (k + 1).to_string(),
                text(&f.id),
                text(&f.severity),
                clean(&f.title, 400),
                human_bytes(f.saving_per_day.bytes as f64),
                f.saving_per_day.charge_mah.map_or_else(|| "-".into(), |c| format!("{c:.3}")),
                clean(&f.evidence.to_string(), 600),
                clean(&f.recommendation, 600),
            ]);
        }
        let mut blocks = if charted.is_empty() {
            vec![Block::Table(table)]
        } else {
            vec![Block::Figure { name: format!("{prefix}findings"), title: "Findings".into(), svg: chart.svg(), table }]
        };
        if let Some(a) = &r.all_findings_fixed {
            blocks.push(Block::Para(format!(
                "Each finding's saving assumes only its own change, so they overlap: together they add up to {} a day. All of them fixed at once ({}) save {} a day ({} billed){}.",
                human_bytes(a.sum_of_findings.bytes as f64),
                a.findings.join(", "),
                human_bytes(a.saving_per_day.bytes as f64),
                human_bytes(a.saving_per_day.billed_bytes as f64),
                a.saving_per_day.charge_mah.map_or_else(String::new, |c| format!(" and {c:.3} mAh"))
            )));
        }
        sections.push(Section { id: format!("{prefix}findings"), heading: "Findings".into(), blocks });
    }

    // Inputs, one row each and the total.
    if r.inputs.len() > 1 {
        let mut table = Table {
            caption: "One row per input (device) and the fleet total".into(),
            head: [
                "input",
                "frames",
                "wire bytes",
                "payload",
                "goodput",
                "duration (s)",
                "bytes / day",
                "charge / day (mAh)",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            ..Default::default()
        };
        for i in &r.inputs {
            table.rows.push(vec![
                text(&i.input),
                i.totals.frames.to_string(),
                i.totals.wire_bytes.to_string(),
                i.totals.classes.get(Class::Payload).to_string(),
                format!("{:.1}%", i.totals.goodput_ratio * 100.0),
                format!("{:.1}", i.totals.duration_s),
                i.radio.as_ref().map_or("-".into(), |x| x.per_day.bytes.to_string()),
                i.radio.as_ref().map_or("-".into(), |x| format!("{:.3}", x.per_day.charge_mah)),
            ]);
        }
        table.rows.push(vec![
            "total".into(),
            t.frames.to_string(),
            t.wire_bytes.to_string(),
            t.classes.get(Class::Payload).to_string(),
            format!("{:.1}%", t.goodput_ratio * 100.0),
            format!("{:.1}", t.duration_s),
            "-".into(),
            "-".into(),
        ]);
        sections.push(Section {
            id: format!("{prefix}inputs"),
            heading: "Inputs".into(),
            blocks: vec![Block::Table(table)],
        });
    }

    // Notes: what was skipped and why.
    let mut notes = Vec::new();
    for i in &r.inputs {
        let n = &i.notes;
        if let Some(e) = &n.read_error {
            notes.push(format!("{}: stopped reading early: {}", text(&i.input), text(e)));
        }
        if n.skipped_records > 0 {
            let first = n.skipped_record_notes.first().map(|w| format!(" (first: {})", text(w))).unwrap_or_default();
            notes.push(format!("{}: {} corrupted records skipped{first}", text(&i.input), n.skipped_records));
        }
        if n.secrets_dropped > 0 {
            notes.push(format!(
                "{}: secrets of {} connections in the capture's secrets blocks dropped past the cap (not decrypted)",
                text(&i.input),
                n.secrets_dropped
            ));
        }
        if n.inferred_bytes > 0 {
            notes.push(format!(
                "{}: {} wire bytes cut by snaplen, classified by inference",
                text(&i.input),
                n.inferred_bytes
            ));
        }
        if n.malformed_bytes > 0 {
            notes.push(format!(
                "{}: {} bytes could not be parsed (counted as payload)",
                text(&i.input),
                n.malformed_bytes
            ));
        }
        if n.flows_omitted > 0 || n.exchanges_omitted > 0 {
            notes.push(format!(
                "{}: {} flows and {} exchanges counted but not listed (charts by protocol, flow and exchange show the listed ones)",
                text(&i.input),
                n.flows_omitted,
                n.exchanges_omitted
            ));
        }
    }
    if !notes.is_empty() {
        sections.push(Section {
            id: format!("{prefix}notes"),
            heading: "Notes".into(),
            blocks: notes.into_iter().map(Block::Para).collect(),
        });
    }

    Doc { title: format!("wiretax: {}", inputs.join(", ")), sections }
}

/// One sentence on the radio's day.
pub fn radio_sentence(x: &RadioReport) -> String {
    let d = &x.per_day;
    let mut s = format!(
        "On {} ({} timing) the radio is on {:.0} s a day over {:.0} wake-ups and draws {:.2} mAh a day for {} a day",
        text(&x.profile),
        match x.timing {
            crate::radio::Timing::Captured => "captured",
            crate::radio::Timing::Link => "link",
        },
        d.radio_on_s,
        d.wakeups,
        d.charge_mah,
        human_bytes(d.bytes as f64)
    );
    let e = &d.energy_split;
    let total = e.promotion_j + e.transfer_j + e.tail_j + e.idle_j;
    if total > 0.0 {
        s.push_str(&format!(
            "; of its energy, {} goes to promotions, {} to transfers, {} to tails and {} to idle",
            pct(e.promotion_j, total),
            pct(e.transfer_j, total),
            pct(e.tail_j, total),
            pct(e.idle_j, total)
        ));
    }
    if let Some(b) = x.battery_life_days {
        s.push_str(&format!("; a battery lasts about {b:.0} days"));
    }
    s.push('.');
    s
}
