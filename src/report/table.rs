//! The terminal summary (`--format table`).

use super::Report;
use super::devices::{DeviceReport, FleetReport};
use crate::ledger::Class;
use crate::radio::sim::PerDay;
use crate::radio::{CostReport, RadioReport};
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
    let units = Units { binary: binary_units(r) };
    let human_bytes = |n: f64| units.bytes(n);
    let t = &r.totals;
    let inputs: Vec<&str> = r.inputs.iter().map(|i| i.input.as_str()).collect();
    let _ = writeln!(out, "wiretax: {}", inputs.join(", "));
    let _ = writeln!(
        out,
        "{}, {} on the wire over {:.1} s; {}, {}; goodput {:.1}%",
        count(t.frames, "frame", "frames"),
        human_bytes(t.wire_bytes as f64),
        t.duration_s,
        count(r.tcp_streams, "TCP connection", "TCP connections"),
        count(r.udp_streams, "UDP flow", "UDP flows"),
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
            let charge = s.charge_mah.filter(|c| *c != 0.0);
            if s.bytes > 0 || charge.is_some() {
                let _ = writeln!(
                    out,
                    "      saves about {} per day ({} billed){}",
                    human_bytes(s.bytes as f64),
                    human_bytes(s.billed_bytes as f64),
                    radio_saving(charge, s.radio_on_s)
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
        if let Some(a) = &r.all_findings_fixed {
            let s = &a.saving_per_day;
            let _ = writeln!(
                out,
                "  All findings fixed together ({}): saves about {} per day ({} billed){};\n      the savings above overlap and add up to {} per day",
                a.findings.join(", "),
                human_bytes(s.bytes as f64),
                human_bytes(s.billed_bytes as f64),
                radio_saving(s.charge_mah, s.radio_on_s),
                human_bytes(a.sum_of_findings.bytes as f64),
            );
        }
    }

    let radios: Vec<(&str, &crate::radio::RadioReport, &[DeviceReport], Option<&FleetReport>)> = match &r.radio {
        Some(radio) => vec![("", radio, r.devices.as_slice(), r.fleet.as_ref())],
        None => r
            .inputs
            .iter()
            .filter_map(|i| i.radio.as_ref().map(|x| (i.input.as_str(), x, i.devices.as_slice(), i.fleet.as_ref())))
            .collect(),
    };
    for (input, radio, devices, fleet) in radios {
        let _ = writeln!(out, "\nRadio{}{}", if input.is_empty() { "" } else { ": " }, input);
        let _ = write!(out, "{}", indent(&radio_text(radio, devices.len(), units)));
        if devices.len() > 1
            && let Some(fleet) = fleet
        {
            let _ = writeln!(out, "Devices");
            let _ = write!(out, "{}", indent(&devices_text(devices, fleet, top_flows, units)));
        } else {
            // One device has no devices section, but one address may be many.
            let _ = write!(out, "{}", indent(&crowd_notes(devices)));
        }
        if let Some(c) = &radio.cost {
            let _ = writeln!(out, "Data cost");
            let _ = write!(out, "{}", indent(&cost_text(c, units)));
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
        if n.skipped_records > 0 {
            let first = n.skipped_record_notes.first().map(|w| format!(" (first: {w})")).unwrap_or_default();
            lines.push(format!("{} corrupted records skipped{first}", n.skipped_records));
        }
        if n.secrets_dropped > 0 {
            lines.push(format!(
                "secrets of {} connections in the capture's secrets blocks dropped past the cap (not decrypted)",
                n.secrets_dropped
            ));
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

/// Whether the report's figures are in binary units (`--binary-units`):
/// its data cost says so.
fn binary_units(r: &Report) -> bool {
    let mut costs =
        r.radio.iter().chain(r.inputs.iter().filter_map(|i| i.radio.as_ref())).filter_map(|x| x.cost.as_ref());
    costs.next().is_some_and(|c| c.unit == "MiB")
}

/// How figures are written: SI or binary byte units.
#[derive(Clone, Copy, Debug, Default)]
pub struct Units {
    pub binary: bool,
}

impl Units {
    /// Bytes scaled to three significant figures: B, kB, MB, GB, TB (powers
    /// of 1,000) or B, KiB, MiB, GiB, TiB (powers of 1,024).
    pub fn bytes(self, n: f64) -> String {
        let (base, names) = if self.binary {
            (1024.0, ["B", "KiB", "MiB", "GiB", "TiB"])
        } else {
            (1000.0, ["B", "kB", "MB", "GB", "TB"])
        };
        if !n.is_finite() {
            return "-".into();
        }
        let mut v = n;
        let mut unit = 0;
        while v.abs() >= base * 0.9995 && unit + 1 < names.len() {
            v /= base;
            unit += 1;
        }
        let name = names.get(unit).copied().unwrap_or("B");
        if unit == 0 { format!("{} {name}", thousands(v.round() as u64)) } else { format!("{} {name}", sig3(v)) }
    }
}

/// Three significant figures, thousands separated (`0.00257`, `2.57`,
/// `257`, `2,570`).
pub fn sig3(x: f64) -> String {
    if !x.is_finite() {
        return "-".into();
    }
    if x == 0.0 {
        return "0".into();
    }
    let magnitude = x.abs().log10().floor() as i32;
    if magnitude >= 2 {
        let step = 10f64.powi(magnitude - 2);
        let rounded = (x.abs() / step).round() * step;
        let sign = if x < 0.0 { "-" } else { "" };
        return format!("{sign}{}", thousands(rounded.round() as u64));
    }
    let decimals = (2 - magnitude).max(0) as usize;
    let text = format!("{x:.decimals$}");
    // 9.996 rounds up to 10.00: three figures are 10.0.
    match text.trim_start_matches('-').split_once('.') {
        Some((whole, frac)) if whole.len() + frac.len() > 3 && whole != "0" => {
            let keep = 3usize.saturating_sub(whole.len());
            format!("{x:.keep$}")
        }
        _ => text,
    }
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `1 wake-up`, `2 wake-ups` (a count and its noun, singular or plural).
pub fn count(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", thousands(n), if n == 1 { one } else { many })
}

/// A count that may be fractional (per day): `4,320 wake-ups`, `0.5 wake-ups`.
fn count_f(x: f64, one: &str, many: &str) -> String {
    let text = if x >= 100.0 || x == x.round() { thousands(x.round() as u64) } else { sig3(x) };
    format!("{text} {}", if text == "1" { one } else { many })
}

/// Seconds to three significant figures.
fn secs(x: f64) -> String {
    format!("{} s", sig3(x))
}

/// The radio section of one input.
pub fn radio_text(r: &RadioReport, devices: usize, u: Units) -> String {
    let mut o = String::new();
    let timing = match r.timing {
        crate::radio::Timing::Captured => "captured timestamps",
        crate::radio::Timing::Link => "re-timed on the profile's link",
    };
    let class = if r.device_class.is_empty() { String::new() } else { format!(": {}", r.device_class) };
    let _ = writeln!(o, "profile {}{class} ({timing}{})", r.profile, if r.release_assistance { ", RAI" } else { "" });
    if devices > 1 {
        let _ = writeln!(o, "{} radios, one per device; their sums:", thousands(devices as u64));
    }
    let _ = writeln!(
        o,
        "radio on {}, {}, {}, energy {} J = {} mAh at {} V",
        secs(r.radio_on_s),
        count(r.wakeups, "wake-up", "wake-ups"),
        count(r.promotions, "promotion", "promotions"),
        sig3(r.energy_j),
        sig3(r.charge_mah),
        r.voltage_v
    );
    let e = &r.energy;
    let pct = |x: f64| if r.energy_j > 0.0 { 100.0 * x / r.energy_j } else { 0.0 };
    let _ = writeln!(
        o,
        "energy: promotion {} J ({:.1}%), transfer {} J ({:.1}%), tail {} J ({:.1}%), idle {} J ({:.1}%)",
        sig3(e.promotion_j),
        pct(e.promotion_j),
        sig3(e.transfer_j),
        pct(e.transfer_j),
        sig3(e.tail_j),
        pct(e.tail_j),
        sig3(e.idle_j),
        pct(e.idle_j)
    );
    let states: Vec<String> =
        r.states.iter().filter(|s| s.time_s > 0.0).map(|s| format!("{} {}", s.state, secs(s.time_s))).collect();
    let _ = writeln!(o, "time per state: {}", states.join(", "));
    if let Some(l) = &r.link {
        let _ = writeln!(
            o,
            "link: {} x {}, {} up at {} kbit/s, {} down at {} kbit/s, {} airtime, {} on the link",
            count(l.round_trips, "round trip", "round trips"),
            secs(l.rtt_s),
            u.bytes(l.bytes_up as f64),
            sig3(l.up_kbps),
            u.bytes(l.bytes_down as f64),
            sig3(l.down_kbps),
            secs(l.airtime_s),
            secs(l.on_link_s)
        );
    }
    o.push_str(&per_day_text(&r.per_day, &r.profile, devices, u));
    if let Some(b) = &r.battery {
        match b.life_days {
            Some(days) => {
                let _ = writeln!(
                    o,
                    "battery {} mAh with {} uA sleep current: {} days ({} years)",
                    sig3(b.capacity_mah),
                    sig3(b.sleep_current_ua),
                    sig3(days),
                    sig3(days / 365.0)
                );
            }
            None => {
                let _ = writeln!(o, "battery {} mAh: no drain modelled", sig3(b.capacity_mah));
            }
        }
    }
    for note in &r.notes {
        let _ = writeln!(o, "note: {note}");
    }
    o
}

/// A day's projection, its basis in words, and why the radio never sleeps.
fn per_day_text(d: &PerDay, profile: &str, devices: usize, u: Units) -> String {
    let mut o = String::new();
    let figures = |o: &mut String, lead: &str| {
        let _ = writeln!(
            o,
            "{lead}{} billed ({} on the wire), {}, radio on {}, {} mAh",
            u.bytes(d.billed_bytes as f64),
            u.bytes(d.bytes as f64),
            count_f(d.wakeups, "wake-up", "wake-ups"),
            secs(d.radio_on_s),
            sig3(d.charge_mah)
        );
    };
    match d.basis.as_str() {
        "none" => {
            let _ = writeln!(
                o,
                "per day: no projection: no repeating cycle in {} over {} (a one-off transfer?); --interval gives the period",
                count(d.bursts, "burst", "bursts"),
                secs(d.window_s)
            );
        }
        "idle" => {
            let _ = writeln!(o, "per day: no traffic: idle all day, {} mAh", sig3(d.charge_mah));
        }
        "devices" => figures(&mut o, &format!("per day, {} devices summed: ", thousands(devices as u64))),
        "continuous" => {
            let _ = writeln!(
                o,
                "per day: no repeating burst: traffic kept the radio connected for {}; the day at that rate:",
                secs(d.window_s)
            );
            figures(&mut o, "  ");
        }
        basis => {
            if let Some(c) = &d.cycle {
                let how = if basis == "interval" { " (re-timed by --interval)" } else { "" };
                let _ = writeln!(
                    o,
                    "per day: {} of {}{how}; a cycle: {}, radio {}, {} J",
                    count(c.cycles, "cycle", "cycles"),
                    secs(c.period_s),
                    u.bytes(c.bytes),
                    secs(c.radio_on_s),
                    sig3(c.energy_j)
                );
                figures(&mut o, &format!("  x {} cycles a day: ", thousands(c.per_day.round() as u64)));
                if c.irregular > 0 {
                    let _ = writeln!(
                        o,
                        "  {} of another period left out (a storm, a pause)",
                        count(c.irregular, "cycle", "cycles")
                    );
                }
            } else {
                figures(&mut o, &format!("per day ({basis}): "));
            }
            for (what, once) in [("start-up", &d.startup), ("shut-down", &d.shutdown)] {
                if let Some(x) = once
                    && (x.bytes > 0 || x.energy_j > 0.0)
                {
                    let _ = writeln!(
                        o,
                        "  {what}, once (not multiplied): {}, radio {}, {} J",
                        u.bytes(x.bytes as f64),
                        secs(x.radio_on_s),
                        sig3(x.energy_j)
                    );
                }
            }
            if let Some(n) = d.never_sleeps.as_ref().filter(|_| d.basis != "continuous") {
                let _ = writeln!(
                    o,
                    "  the radio never sleeps: the period {} is shorter than the {} the {profile} radio stays on after a burst",
                    secs(n.period_s),
                    secs(n.tail_s)
                );
            }
        }
    }
    o
}

/// The devices section: the top devices by their day's billed bytes, the
/// spread, the fleet, and addresses that look like several devices.
pub fn devices_text(devices: &[DeviceReport], fleet: &FleetReport, top: usize, u: Units) -> String {
    let mut o = String::new();
    let mut order: Vec<&DeviceReport> = devices.iter().collect();
    order.sort_by(|a, b| {
        b.per_day
            .billed_bytes
            .cmp(&a.per_day.billed_bytes)
            .then(b.per_day.charge_mah.total_cmp(&a.per_day.charge_mah))
            .then(a.id.cmp(&b.id))
    });
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED).set_header(vec![
        "device",
        "frames",
        "wire",
        "radio on",
        "energy",
        "billed a day",
        "mAh a day",
        "wake-ups a day",
        "day from",
    ]);
    for d in order.iter().take(top) {
        let name = match &d.name {
            Some(n) => format!("{n} ({})", d.id),
            None => d.id.clone(),
        };
        let p = &d.per_day;
        let projected = p.projected && p.basis != "none";
        let dash = |s: String| if projected { s } else { "-".to_string() };
        let from = match (&p.cycle, p.basis.as_str()) {
            (Some(c), _) => format!("{} x {}", thousands(c.cycles), secs(c.period_s)),
            (None, "none") => "no cycle".to_string(),
            (None, b) => b.to_string(),
        };
        t.add_row(vec![
            Cell::new(name),
            right(thousands(d.frames)),
            right(u.bytes(d.wire_bytes as f64)),
            right(secs(d.radio.radio_on_s)),
            right(format!("{} J", sig3(d.radio.energy_j))),
            right(dash(u.bytes(p.billed_bytes as f64))),
            right(dash(sig3(p.charge_mah))),
            right(dash(count_f(p.wakeups, "", "").trim().to_string())),
            Cell::new(from),
        ]);
    }
    let _ = writeln!(
        o,
        "{} seen, the top {} by billed bytes a day:",
        count(fleet.devices_seen, "device", "devices"),
        thousands(order.len().min(top) as u64)
    );
    let _ = writeln!(o, "{t}");
    let s = &fleet.spread;
    let _ = writeln!(
        o,
        "per device-day: billed bytes median {}, p90 {}, max {}; charge median {} mAh, p90 {} mAh, max {} mAh",
        u.bytes(s.billed_bytes.median),
        u.bytes(s.billed_bytes.p90),
        u.bytes(s.billed_bytes.max),
        sig3(s.charge_mah.median),
        sig3(s.charge_mah.p90),
        sig3(s.charge_mah.max)
    );
    if fleet.unprojected > 0 {
        let _ = writeln!(
            o,
            "{} without a repeating cycle: not in the day's figures (--interval gives one)",
            count(fleet.unprojected, "device", "devices")
        );
    }
    let whose = if fleet.scaled {
        format!(
            "{} (--devices, scaled from the {} seen)",
            count(fleet.devices, "device", "devices"),
            thousands(fleet.devices_seen)
        )
    } else {
        count(fleet.devices, "device", "devices")
    };
    let _ = writeln!(
        o,
        "fleet of {whose}, a day: {} billed ({} on the wire), {} mAh",
        u.bytes(fleet.per_day.billed_bytes as f64),
        u.bytes(fleet.per_day.bytes as f64),
        sig3(fleet.per_day.charge_mah)
    );
    o.push_str(&crowd_notes(devices));
    o
}

/// A note for each device that looks like several behind one address.
fn crowd_notes(devices: &[DeviceReport]) -> String {
    let mut o = String::new();
    for d in devices {
        if let Some(c) = &d.crowd {
            let _ = writeln!(
                o,
                "note: {} looks like several devices ({} connections at once to {}): clients behind a NAT? \
                 a capture before the translation, keyed by {}, would tell them apart",
                d.id,
                thousands(c.simultaneous),
                c.server,
                c.separating_keys.join(" or ")
            );
        }
    }
    o
}

/// The data cost section.
pub fn cost_text(c: &CostReport, u: Units) -> String {
    let mut o = String::new();
    let bill = if c.bill == "link" {
        "link bytes billed (link headers included: --bill link)"
    } else {
        "IP bytes billed (link headers excluded; --bill link includes them)"
    };
    let fleet = if c.scaled {
        format!(
            "{} (--devices, scaled from the {} seen)",
            count(c.devices, "device", "devices"),
            thousands(c.devices_seen)
        )
    } else {
        count(c.devices, "device", "devices")
    };
    let price = match c.price_per_unit {
        Some(p) => format!(", {} {} per {}", sig3(p), c.currency, c.unit),
        None => String::new(),
    };
    let _ = writeln!(o, "{bill}; fleet of {fleet}{price}");
    for (label, line) in [
        ("device-day", &c.device_day),
        ("fleet-day", &c.fleet_day),
        ("fleet-month (30 d)", &c.fleet_month),
        ("fleet-year (365 d)", &c.fleet_year),
    ] {
        let money = match line.cost {
            Some(m) => format!(", {} {}", thousands_money(m), c.currency),
            None => String::new(),
        };
        let _ =
            writeln!(o, "  {label:<19} {:>10} ({} bytes){money}", u.bytes(line.bytes as f64), thousands(line.bytes));
    }
    o
}

/// Money with two decimals and thousands separators.
fn thousands_money(x: f64) -> String {
    if !x.is_finite() {
        return "-".into();
    }
    let cents = (x.abs() * 100.0).round() as u64;
    format!("{}{}.{:02}", if x < 0.0 { "-" } else { "" }, thousands(cents / 100), cents % 100)
}

/// ", X mAh and Y s of radio time" of a saving, or nothing when it has no
/// radio figures (a zero printed would read as a figure).
fn radio_saving(charge_mah: Option<f64>, radio_on_s: Option<f64>) -> String {
    match (charge_mah, radio_on_s) {
        (Some(c), Some(r)) => format!(", {c:.2} mAh and {r:.1} s of radio time"),
        (Some(c), None) => format!(", {c:.2} mAh"),
        _ => String::new(),
    }
}
