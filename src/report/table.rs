//! The terminal summary (`--format table`).

use super::Report;
use crate::ledger::Class;
use comfy_table::{Cell, CellAlignment, Table, presets::UTF8_FULL_CONDENSED};
use std::fmt::Write;

/// Bytes as a person reads them (SI units, as data plans bill them).
pub fn human_bytes(n: f64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n;
    let mut u = 0;
    while v.abs() >= 1000.0 && u + 1 < units.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 { format!("{v:.0} {}", units[u]) } else { format!("{v:.2} {}", units[u]) }
}

fn right(s: impl ToString) -> Cell {
    Cell::new(s).set_alignment(CellAlignment::Right)
}

pub fn render(r: &Report, top_flows: usize) -> String {
    let mut out = String::new();
    let t = &r.totals;
    let inputs: Vec<&str> = r.inputs.iter().map(|i| i.input.as_str()).collect();
    let _ = writeln!(out, "wiretax: {}", inputs.join(", "));
    let _ = writeln!(
        out,
        "{} frames, {} on the wire over {:.1} s; {} TCP connections, {} UDP flows; goodput {:.1}%",
        t.frames,
        human_bytes(t.wire_bytes as f64),
        t.duration_s,
        r.tcp_streams,
        r.udp_streams,
        t.goodput_ratio * 100.0
    );
    let mut ledger = Table::new();
    ledger.load_style(UTF8_FULL_CONDENSED).set_header(vec!["class", "bytes", "share"]);
    for c in Class::ALL {
        let n = t.classes.get(c);
        let share = if t.wire_bytes == 0 { 0.0 } else { n as f64 * 100.0 / t.wire_bytes as f64 };
        ledger.add_row(vec![Cell::new(c.name()), right(n), right(format!("{share:.1}%"))]);
    }
    ledger.add_row(vec![Cell::new("total"), right(t.classes.total()), right("100.0%")]);
    let _ = writeln!(out, "\nByte ledger\n{ledger}");

    if !r.exchange_summary.is_empty() {
        let mut xt = Table::new();
        xt.load_style(UTF8_FULL_CONDENSED).set_header(vec![
            "protocol",
            "exchanges",
            "median wire bytes",
            "median cost incl. setup",
            "median payload",
            "overhead factor",
        ]);
        for k in &r.exchange_summary {
            xt.add_row(vec![
                Cell::new(k.kind),
                right(k.count),
                right(human_bytes(k.median_wire_bytes)),
                right(human_bytes(k.median_cost_bytes)),
                right(human_bytes(k.median_payload_bytes)),
                right(k.overhead_factor.map_or("-".to_string(), |f| format!("{f:.1}x"))),
            ]);
        }
        let _ = writeln!(out, "\nExchanges\n{xt}");
    }

    let mut flows: Vec<_> = r.flows.iter().collect();
    flows.sort_by(|a, b| b.wire_bytes.cmp(&a.wire_bytes).then(a.id.cmp(&b.id)));
    let mut ft = Table::new();
    ft.load_style(UTF8_FULL_CONDENSED)
        .set_header(vec!["flow", "app", "frames", "wire", "payload", "goodput", "retrans"]);
    for f in flows.iter().take(top_flows) {
        let app = match f.inner {
            Some(i) => format!("{}/{}", f.app, i),
            None => f.app.to_string(),
        };
        let pay = f.classes.get(Class::Payload);
        let gp = if f.wire_bytes == 0 { 0.0 } else { pay as f64 * 100.0 / f.wire_bytes as f64 };
        ft.add_row(vec![
            Cell::new(format!("{} {} -> {}", f.l4, f.client, f.server)),
            Cell::new(app),
            right(f.frames),
            right(human_bytes(f.wire_bytes as f64)),
            right(human_bytes(pay as f64)),
            right(format!("{gp:.1}%")),
            right(f.retransmitted_frames),
        ]);
    }
    let _ = writeln!(
        out,
        "\nTop flows by wire bytes ({} of {})\n{ft}",
        flows.len().min(top_flows),
        r.tcp_streams + r.udp_streams
    );

    if !r.findings.is_empty() {
        let _ =
            writeln!(out, "\nFindings (by severity, then saving; savings overlap: each assumes only its own change)");
        for f in &r.findings {
            let _ = writeln!(out, "  [{}] {}: {}", f.severity, f.id, f.title);
            let s = &f.saving_per_day;
            if s.bytes > 0 || s.charge_mah != 0.0 {
                let _ = writeln!(
                    out,
                    "      saves about {} per day ({} billed){}",
                    human_bytes(s.bytes as f64),
                    human_bytes(s.billed_bytes as f64),
                    if s.charge_mah != 0.0 {
                        format!(", {:.2} mAh and {:.1} s of radio time", s.charge_mah, s.radio_on_s)
                    } else {
                        String::new()
                    }
                );
            }
            if let Some(e) = &f.saving_per_event {
                let _ = writeln!(out, "      saves about {} per event", human_bytes(e.bytes as f64));
            }
            if let Some(c) = &f.counterfactual {
                let _ = writeln!(out, "      if: {}", c.description);
            }
            let _ = writeln!(out, "      {}", f.recommendation);
        }
    }

    let radios: Vec<(&str, &crate::radio::RadioReport)> = match &r.radio {
        Some(radio) => vec![("", radio)],
        None => r.inputs.iter().filter_map(|i| i.radio.as_ref().map(|x| (i.input.as_str(), x))).collect(),
    };
    for (input, radio) in radios {
        let _ = writeln!(out, "\nRadio{}{}", if input.is_empty() { "" } else { ": " }, input);
        let _ = write!(out, "{}", indent(&radio.to_text()));
        if let Some(c) = &radio.cost {
            let _ = writeln!(out, "Data cost");
            let _ = write!(out, "{}", indent(&c.to_text()));
        }
    }

    for i in &r.inputs {
        let n = &i.notes;
        let mut lines = Vec::new();
        if let Some(e) = &i.error {
            lines.push(format!("could not be read: {e}"));
        }
        if let Some(e) = &n.read_error {
            lines.push(format!("stopped reading early: {e}"));
        }
        for w in &i.warnings {
            lines.push(format!("{} ({:.1}% of the wire bytes): {}", w.text, w.share * 100.0, w.advice));
        }
        for (why, c) in &n.broken_packets {
            lines.push(format!("{c} packets with broken IP headers ({why})"));
        }
        if n.abandoned_fragments > 0 {
            lines.push(format!("{} IP fragments never reassembled", n.abandoned_fragments));
        }
        if n.skipped_blocks > 0 {
            lines.push(format!("{} pcapng blocks without packets skipped", n.skipped_blocks));
        }
        if let Some(d) = &n.capture_drops {
            lines.push(format!(
                "live capture: {} packets dropped by the kernel/libpcap, {} by the interface, of {} received",
                d.dropped, d.interface_dropped, d.received
            ));
        }
        if let Some(e) = &n.conservation_error {
            lines.push(format!("INTERNAL ERROR: {e}"));
        }
        if !lines.is_empty() {
            let _ = writeln!(out, "\n{}:", i.input);
            for l in lines {
                let _ = writeln!(out, "  - {l}");
            }
        }
    }
    terminal_safe(out)
}

/// Text for a terminal: strings from captures (file names, hosts, topics)
/// may hold control characters and ANSI escapes; each becomes `?`.
pub fn terminal_safe(text: String) -> String {
    if !text.chars().any(|c| c.is_control() && c != '\n') {
        return text;
    }
    text.chars().map(|c| if c.is_control() && c != '\n' { '?' } else { c }).collect()
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}
