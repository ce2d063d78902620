//! Renderers of a comparison (`wiretax compare`): the terminal table,
//! HTML (the two sides' charts on the same scales) and Markdown. The
//! figures are the [`Comparison`]'s; nothing is computed here.

use super::Report;
use super::charts::{CLASS_COLORS, Stacked, TimelineChart, Unit, clean};
use super::doc::{self, Block, Doc, Scales, Section, Table};
use super::table::{Units, human_bytes};
use crate::compare::{Change, Comparison, Side};
use crate::ledger::Class;
use comfy_table::{Cell, CellAlignment, Table as Comfy, presets::UTF8_FULL_CONDENSED};
use std::collections::BTreeMap;
use std::fmt::Write;

/// How each compared figure reads: (key, label, unit).
const PER_MESSAGE: [(&str, &str, Fig); 6] = [
    ("wire_bytes", "wire bytes", Fig::Bytes),
    ("billed_bytes", "billed bytes (IP)", Fig::Bytes),
    ("payload_bytes", "payload", Fig::Bytes),
    ("charge_mah", "radio charge (mAh)", Fig::Num(4)),
    ("round_trips", "round trips", Fig::Num(2)),
    ("radio_on_s", "radio on (s)", Fig::Num(2)),
];
const PER_DAY: [(&str, &str, Fig); 7] = [
    ("wire_bytes", "wire bytes", Fig::Bytes),
    ("billed_bytes", "billed bytes (IP)", Fig::Bytes),
    ("messages", "messages", Fig::Num(1)),
    ("charge_mah", "radio charge (mAh)", Fig::Num(2)),
    ("radio_on_s", "radio on (s)", Fig::Num(0)),
    ("wakeups", "wake-ups", Fig::Num(1)),
    ("battery_life_days", "battery life (days)", Fig::Num(0)),
];

#[derive(Clone, Copy)]
enum Fig {
    Bytes,
    Num(usize),
}

impl Fig {
    /// `binary`: bytes in KiB, MiB, GiB, as `--binary-units` asks.
    fn show(self, v: f64, binary: bool) -> String {
        match self {
            Fig::Bytes if binary => Units { binary: true }.bytes(v),
            Fig::Bytes => human_bytes(v),
            Fig::Num(d) => format!("{v:.d$}"),
        }
    }
}

/// Whether the comparison writes bytes in binary units (`--binary-units`).
fn binary(c: &Comparison) -> bool {
    c.unit == "MiB"
}

/// The billed row's label: the ledger's estimate says so.
fn billed_label(c: &Comparison, label: &str) -> String {
    if c.before.billed_basis == "estimate" || c.after.billed_basis == "estimate" {
        "billed bytes (IP, estimate: upper bound)".into()
    } else {
        label.into()
    }
}

fn change_cell(c: &Change) -> String {
    match c.ratio {
        Some(r) => format!("{:+.1}%", (r - 1.0) * 100.0),
        None => "-".into(),
    }
}

fn rows(c: &Comparison, changes: &BTreeMap<String, Change>, figs: &[(&str, &str, Fig)]) -> Vec<Vec<String>> {
    let bin = binary(c);
    figs.iter()
        .filter_map(|(k, label, f)| {
            let label = if *k == "billed_bytes" { billed_label(c, label) } else { label.to_string() };
            changes.get(*k).map(|ch| vec![label, f.show(ch.before, bin), f.show(ch.after, bin), change_cell(ch)])
        })
        .collect()
}

fn head() -> Vec<String> {
    ["figure", "BEFORE", "AFTER", "change"].iter().map(|s| s.to_string()).collect()
}

fn side_line(name: &str, s: &Side) -> String {
    format!(
        "{name}: {} ({} messages of {} in {:.1} s{})",
        s.inputs.iter().map(|i| clean(i, 120)).collect::<Vec<_>>().join(", "),
        s.messages,
        clean(&s.unit, 120),
        s.duration_s,
        s.radio_profile.as_ref().map(|p| format!(", radio {}", clean(p, 40))).unwrap_or_default()
    )
}

/// The comparison's own tables.
fn tables(c: &Comparison) -> Vec<Table> {
    let mut out = vec![Table {
        caption: "Per message (everything the capture sent, over the messages it carried)".into(),
        head: head(),
        rows: rows(c, &c.change.per_message, &PER_MESSAGE),
        folded: false,
    }];
    if !c.change.per_day.is_empty() {
        out.push(Table {
            caption: "Per device-day (the radio model's projection)".into(),
            head: head(),
            rows: rows(c, &c.change.per_day, &PER_DAY),
            folded: false,
        });
    }
    if !c.change.fleet_year.is_empty() {
        let mut t = Table {
            caption: format!("Fleet of {} device{}, one year", c.devices, if c.devices == 1 { "" } else { "s" }),
            head: head(),
            ..Default::default()
        };
        // The row says MiB only over mebibytes (`--binary-units`).
        let units = if binary(c) { ("mebibytes", "MiB") } else { ("megabytes", "MB") };
        for (k, label, f) in [
            ("bytes", "bytes".to_string(), Fig::Bytes),
            (units.0, units.1.to_string(), Fig::Num(1)),
            ("cost", clean(&c.currency, 12), Fig::Num(2)),
        ] {
            if let Some(ch) = c.change.fleet_year.get(k) {
                t.rows.push(vec![label, f.show(ch.before, binary(c)), f.show(ch.after, binary(c)), change_cell(ch)]);
            }
        }
        out.push(t);
    }
    let mut ledger = Table { caption: "The byte ledger of one message".into(), head: head(), ..Default::default() };
    for class in Class::ALL {
        if let Some(ch) = c.change.per_message.get(&format!("class_{}", class.name())) {
            ledger.rows.push(vec![
                class.name().into(),
                format!("{:.1}", ch.before),
                format!("{:.1}", ch.after),
                change_cell(ch),
            ]);
        }
    }
    out.push(ledger);
    let f = &c.findings;
    let list = |v: &Vec<String>| {
        if v.is_empty() { "-".to_string() } else { v.iter().map(|s| clean(s, 60)).collect::<Vec<_>>().join(", ") }
    };
    out.push(Table {
        caption: "Findings".into(),
        head: vec!["".into(), "ids".into()],
        rows: vec![
            vec!["fixed".into(), list(&f.fixed)],
            vec!["remaining".into(), list(&f.remaining)],
            vec!["new".into(), list(&f.new)],
        ],
        folded: false,
    });
    out
}

/// The terminal table.
pub fn render_table(c: &Comparison) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "wiretax compare");
    let _ = writeln!(o, "{}", side_line("BEFORE", &c.before));
    let _ = writeln!(o, "{}", side_line("AFTER ", &c.after));
    for t in tables(c) {
        let mut ct = Comfy::new();
        ct.load_style(UTF8_FULL_CONDENSED).set_header(t.head.clone());
        for r in &t.rows {
            ct.add_row(r.iter().enumerate().map(|(k, s)| {
                let cell = Cell::new(clean(s, 200));
                if k == 0 { cell } else { cell.set_alignment(CellAlignment::Right) }
            }));
        }
        let _ = writeln!(o, "\n{}\n{ct}", t.caption);
    }
    for (name, s) in [("BEFORE", &c.before), ("AFTER", &c.after)] {
        for n in &s.notes {
            let _ = writeln!(o, "{name}: {}", clean(n, 300));
        }
    }
    for n in &c.notes {
        let _ = writeln!(o, "Note: {}", clean(n, 300));
    }
    let _ = writeln!(o, "\n{}", clean(&c.verdict, 1000));
    super::table::terminal_safe(o)
}

/// Scales both sides' charts share.
fn shared_scales(before: &Report, after: &Report) -> Scales {
    let ledger = |r: &Report| r.ledger_by_app.iter().map(|a| a.classes.total() as f64).fold(0.0, f64::max);
    let cost = |r: &Report| r.exchange_costs.iter().map(|c| c.mean.total_bytes).fold(0.0, f64::max);
    let energy = |r: &Report| {
        let mut m: f64 = 0.0;
        for x in r.radio.iter().chain(r.inputs.iter().filter_map(|i| i.radio.as_ref())) {
            let s = &x.per_day.energy_split;
            m = m.max(s.promotion_j + s.transfer_j + s.tail_j + s.idle_j);
        }
        m
    };
    let timelines = |r: &Report| -> Vec<(f64, f64)> {
        let mut v = Vec::new();
        if let Some(t) = &r.timeline {
            let (lo, hi) = TimelineChart::own_span(t, r.radio.as_ref().and_then(|x| x.timeline.as_ref()));
            v.push((hi - lo, TimelineChart::fullest(t)));
        }
        for i in &r.inputs {
            if let Some(t) = &i.timeline {
                let (lo, hi) = TimelineChart::own_span(t, i.radio.as_ref().and_then(|x| x.timeline.as_ref()));
                v.push((hi - lo, TimelineChart::fullest(t)));
            }
        }
        v
    };
    let all: Vec<(f64, f64)> = timelines(before).into_iter().chain(timelines(after)).collect();
    let some = |v: f64| (v > 0.0).then_some(v);
    Scales {
        ledger_max: some(ledger(before).max(ledger(after))),
        cost_max: some(cost(before).max(cost(after))),
        energy_max: some(energy(before).max(energy(after))),
        timeline_max: some(all.iter().map(|x| x.1).fold(0.0, f64::max)),
        timeline_len: some(all.iter().map(|x| x.0).fold(0.0, f64::max)),
    }
}

/// The comparison as a document: the verdict, its tables, and a chart of
/// one message's ledger before and after.
fn compare_doc(c: &Comparison) -> Doc {
    let mut blocks = vec![
        Block::Para(c.verdict.clone()),
        Block::Para(side_line("BEFORE", &c.before)),
        Block::Para(side_line("AFTER", &c.after)),
    ];
    let ts = tables(c);
    let per_message_ledger = |s: &Side| -> Vec<f64> {
        Class::ALL.iter().map(|k| s.per_message.classes.get(k.name()).copied().unwrap_or(0.0)).collect()
    };
    let chart = Stacked {
        title: "One message's bytes by class",
        rows: vec![format!("BEFORE: {}", clean(&c.before.unit, 60)), format!("AFTER: {}", clean(&c.after.unit, 60))],
        parts: Class::ALL.iter().zip(CLASS_COLORS).map(|(k, col)| (k.name(), col)).collect(),
        values: vec![per_message_ledger(&c.before), per_message_ledger(&c.after)],
        unit: Unit::Bytes,
        max: None,
    };
    let mut rest = Vec::new();
    for t in ts {
        if t.caption == "The byte ledger of one message" {
            rest.push(Block::Figure {
                name: "compare-ledger".into(),
                title: "One message's bytes by class".into(),
                svg: chart.svg(),
                table: t,
            });
        } else {
            blocks.push(Block::Table(t));
        }
    }
    blocks.extend(rest);
    for (name, s) in [("BEFORE", &c.before), ("AFTER", &c.after)] {
        for n in &s.notes {
            blocks.push(Block::Para(format!("{name}: {n}")));
        }
    }
    for n in &c.notes {
        blocks.push(Block::Para(format!("Note: {n}")));
    }
    Doc {
        title: "wiretax compare".into(),
        sections: vec![Section { id: "compare".into(), heading: "BEFORE and AFTER".into(), blocks }],
    }
}

/// The HTML page: the comparison, then both reports side by side on the same scales.
pub fn render_html(c: &Comparison, before: &Report, after: &Report) -> String {
    use super::html;
    let scales = shared_scales(before, after);
    let mut o = String::new();
    html::open(&mut o, "wiretax compare");
    let _ = write!(o, "<h1>wiretax compare</h1><p class=\"verdict\">{}</p>", html::escape(&c.verdict));
    let mut d = compare_doc(c);
    if let Some(s) = d.sections.first_mut()
        && !s.blocks.is_empty()
    {
        // The verdict is already the page's lead.
        s.blocks.remove(0);
    }
    html::body(&mut o, &d, 2);
    o.push_str("<div class=\"side\">");
    for (name, r, prefix) in [("BEFORE", before, "before-"), ("AFTER", after, "after-")] {
        let _ = write!(o, "<div><h2>{name}</h2>");
        html::body(&mut o, &doc::build(r, prefix, scales), 3);
        o.push_str("</div>");
    }
    o.push_str("</div>");
    html::close(&mut o);
    o
}

/// The Markdown and its chart files.
pub fn render_md(c: &Comparison, before: &Report, after: &Report, stem: &str) -> (String, Vec<(String, String)>) {
    use super::markdown;
    let scales = shared_scales(before, after);
    let mut files = Vec::new();
    let mut o = String::from("# wiretax compare\n");
    markdown::body(&mut o, &mut files, &compare_doc(c), stem, 2);
    for (name, r, prefix) in [("BEFORE", before, "before-"), ("AFTER", after, "after-")] {
        let _ = writeln!(o, "\n## {name}");
        markdown::body(&mut o, &mut files, &doc::build(r, prefix, scales), stem, 3);
    }
    (o, files)
}
