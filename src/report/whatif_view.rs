//! The terminal table of `wiretax whatif`. The figures are the
//! [`WhatifReport`]'s; nothing is computed here.

use super::table::human_bytes;
use crate::whatif::stacks::{PerDay, PerMessage, WhatifReport};
use comfy_table::{Cell, CellAlignment, Table as Comfy, presets::UTF8_FULL_CONDENSED};
use std::fmt::Write;

fn right(s: String) -> Cell {
    Cell::new(s).set_alignment(CellAlignment::Right)
}

fn ratio(r: Option<f64>) -> String {
    match r {
        Some(r) if r > 0.0 => format!("{:+.1}%", (r - 1.0) * 100.0),
        _ => "-".into(),
    }
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.digits$}"))
}

fn cost(f: Option<&crate::radio::CostReport>) -> String {
    match f.and_then(|c| c.fleet_month.cost.map(|m| (m, &c.currency))) {
        Some((m, cur)) => format!("{m:.2} {cur}"),
        None => f.map_or_else(|| "-".into(), |c| human_bytes(c.fleet_month.bytes as f64)),
    }
}

fn row(name: &str, m: &PerMessage, d: &PerDay, vs: (String, String), life: Option<f64>, month: String) -> Vec<Cell> {
    vec![
        Cell::new(name),
        right(human_bytes(m.wire_bytes)),
        right(human_bytes(d.bytes as f64)),
        right(human_bytes(d.billed_bytes as f64)),
        // A day without radio figures shows none (a 0 would read as one).
        right(if d.no_radio_figures { "-".into() } else { format!("{:.0}", d.radio_on_s) }),
        right(opt(d.charge(), 2)),
        right(vs.0),
        right(vs.1),
        right(opt(life, 1)),
        right(month),
    ]
}

pub fn render_table(r: &WhatifReport) -> String {
    let mut out = String::new();
    let radio = if r.radio.is_empty() { "no radio model".to_string() } else { format!("radio {}", r.radio) };
    let interval = r.interval_s.map_or_else(String::new, |i| format!(", re-timed to every {i} s"));
    let _ = writeln!(
        out,
        "{}: {} messages carried by other stacks ({radio}{interval}); per day as the capture's own projection\n",
        r.input, r.baseline.messages
    );
    let mut t = Comfy::new();
    t.load_style(UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "stack",
        "per message",
        "per day",
        "billed/day",
        "radio on s/day",
        "mAh/day",
        "bytes",
        "charge",
        "battery days",
        "fleet month",
    ]);
    let b = &r.baseline;
    t.add_row(row(
        &format!("capture ({})", b.basis),
        &b.per_message,
        &b.per_day,
        (String::new(), String::new()),
        b.battery_life_days,
        cost(b.fleet.as_ref()),
    ));
    for s in &r.scenarios {
        t.add_row(row(
            &s.stack,
            &s.per_message,
            &s.per_day,
            (ratio(Some(s.bytes_vs_baseline)), ratio(s.charge_vs_baseline)),
            s.battery_life_days,
            cost(s.fleet.as_ref()),
        ));
    }
    let _ = writeln!(out, "{t}");
    for n in &r.notes {
        let _ = writeln!(out, "note: {n}");
    }
    for s in &r.scenarios {
        let _ = writeln!(out, "\n{}: {}", s.stack, s.description);
        for a in &s.assumptions {
            let _ = writeln!(out, "  - {a}");
        }
    }
    out
}
