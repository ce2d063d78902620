//! The rolling view on a terminal: a renderer of a snapshot report and
//! the live rates beside it. It computes nothing.

use super::LiveStatus;
use crate::ledger::Class;
use crate::report::Report;
use crate::report::table::human_bytes;
use std::fmt::Write;

/// Cursor home, then clear to the end of the screen: each view is drawn
/// over the last one.
pub const CLEAR: &str = "\x1b[H\x1b[J";

/// Findings shown; the rest are counted.
const FINDINGS: usize = 6;

fn rate(bytes_per_s: f64) -> String {
    format!("{}/s", human_bytes(bytes_per_s))
}

fn clock(s: f64) -> String {
    let s = s.max(0.0) as u64;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

pub fn render(st: &LiveStatus, r: &Report, top: usize) -> String {
    let mut out = String::new();
    let t = &r.totals;
    let _ = writeln!(
        out,
        "wiretax live: {}   {}   snapshot {}   (Ctrl-C: stop and write the report)",
        st.source,
        clock(st.elapsed_s),
        st.snapshot
    );
    let _ = writeln!(
        out,
        "{} frames ({:.0}/s)   {} on the wire ({} now, {} mean)   goodput {:.1}%",
        t.frames,
        st.frames_per_s,
        human_bytes(t.wire_bytes as f64),
        rate(st.wire_bytes_per_s),
        rate(st.mean_wire_bytes_per_s),
        t.goodput_ratio * 100.0,
    );
    let mut notes = Vec::new();
    for i in &r.inputs {
        if let Some(d) = &i.notes.capture_drops {
            notes.push(format!(
                "dropped {} by the kernel/libpcap, {} by the interface (of {} received)",
                d.dropped, d.interface_dropped, d.received
            ));
        }
        if let Some(e) = &i.notes.read_error {
            notes.push(format!("stopped reading: {e}"));
        }
    }
    if st.snapshots_skipped > 0 {
        notes.push(format!("{} snapshots not shown (slow output)", st.snapshots_skipped));
    }
    if !notes.is_empty() {
        let _ = writeln!(out, "{}", notes.join("; "));
    }

    let _ = writeln!(out, "\n{:<21} {:>12} {:>7} {:>12}", "class", "so far", "share", "now");
    for c in Class::ALL {
        let n = t.classes.get(c);
        let share = if t.wire_bytes == 0 { 0.0 } else { n as f64 * 100.0 / t.wire_bytes as f64 };
        let now = st.class_bytes_per_s.get(&c).copied().unwrap_or(0.0);
        let _ = writeln!(out, "{:<21} {:>12} {:>6.1}% {:>12}", c.name(), human_bytes(n as f64), share, rate(now));
    }

    if !r.exchange_summary.is_empty() {
        let _ = writeln!(
            out,
            "\n{:<10} {:>9} {:>12} {:>14} {:>10}",
            "exchanges", "count", "median wire", "median cost", "overhead"
        );
        for k in &r.exchange_summary {
            let _ = writeln!(
                out,
                "{:<10} {:>9} {:>12} {:>14} {:>10}",
                k.kind.to_string(),
                k.count,
                human_bytes(k.median_wire_bytes),
                human_bytes(k.median_cost_bytes),
                k.overhead_factor.map_or("-".to_string(), |f| format!("{f:.1}x"))
            );
        }
    }

    let mut flows: Vec<_> = r.flows.iter().collect();
    flows.sort_by(|a, b| b.wire_bytes.cmp(&a.wire_bytes).then(a.id.cmp(&b.id)));
    let _ = writeln!(
        out,
        "\ntop flows by wire bytes ({} of {} TCP connections, {} UDP flows)",
        flows.len().min(top),
        r.tcp_streams,
        r.udp_streams
    );
    for f in flows.iter().take(top) {
        let app = match f.inner {
            Some(i) => format!("{}/{}", f.app, i),
            None => f.app.to_string(),
        };
        let pay = f.classes.get(Class::Payload);
        let gp = if f.wire_bytes == 0 { 0.0 } else { pay as f64 * 100.0 / f.wire_bytes as f64 };
        let _ = writeln!(
            out,
            "  {:<48} {:<10} {:>6} fr {:>10}  goodput {:>5.1}%",
            format!("{} {} -> {}", f.l4, f.client, f.server),
            app,
            f.frames,
            human_bytes(f.wire_bytes as f64),
            gp
        );
    }

    if let Some(radio) = &r.radio {
        let _ = writeln!(
            out,
            "\nradio {}: on {:.1} s, {:.3} J ({:.4} mAh), wake-ups {}, bursts {}",
            radio.profile, radio.radio_on_s, radio.energy_j, radio.charge_mah, radio.wakeups, radio.bursts
        );
        let states: Vec<String> =
            radio.states.iter().map(|s| format!("{} {:.1} s ({:.3} J)", s.state, s.time_s, s.energy_j)).collect();
        for line in states.chunks(3) {
            let _ = writeln!(out, "  {}", line.join(", "));
        }
    }

    let _ = writeln!(out, "\nfindings ({})", r.findings.len());
    for f in r.findings.iter().take(FINDINGS) {
        let _ = writeln!(out, "  [{}] {}: {}", f.severity, f.id, f.title);
    }
    if r.findings.len() > FINDINGS {
        let _ = writeln!(out, "  ... and {} more", r.findings.len() - FINDINGS);
    }
    out
}
