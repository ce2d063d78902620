//! `wiretax compare BEFORE AFTER`: two reports side by side, normalised so
//! that captures of different lengths compare: per message (the exchange
//! the device exists to send: a reading, a position) and per device-day
//! (the radio model's projection). The figures are computed here, once;
//! the table, JSON, HTML and Markdown renderers only show them.

use crate::ledger::{Class, Exchange, Ledger};
use crate::radio::{CostLine, CostOptions};
use crate::report::Report;
use crate::report::costs::message_of;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

pub const SCHEMA: &str = "wiretax-compare/1";

/// Which exchanges are "one message": `KIND VERB [NAME]`, as in
/// `http POST /readings` or `mqtt PUBLISH fleet/+/gps`. NAME is the
/// second word of the exchange's description (an HTTP path without its
/// query, an MQTT topic), matched level by level on `/` with MQTT's
/// wildcards: `+` one level, `#` all that follow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unit {
    pub kind: String,
    pub verb: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Unit {
    pub fn parse(s: &str) -> Result<Unit, String> {
        let mut words = s.split_whitespace();
        let (Some(kind), Some(verb)) = (words.next(), words.next()) else {
            return Err(format!("--unit {s:?}: want KIND VERB [NAME], e.g. 'http POST /readings'"));
        };
        let name = words.next().map(str::to_string);
        if words.next().is_some() {
            return Err(format!("--unit {s:?}: want KIND VERB [NAME]"));
        }
        Ok(Unit { kind: kind.to_ascii_lowercase(), verb: verb.to_string(), name })
    }

    pub fn matches(&self, x: &Exchange) -> bool {
        let mut words = x.what.split_whitespace();
        let verb = words.next().unwrap_or("");
        if !x.kind.to_string().eq_ignore_ascii_case(&self.kind)
            || !(self.verb.is_empty() || verb.eq_ignore_ascii_case(&self.verb))
        {
            return false;
        }
        match &self.name {
            None => true,
            Some(pattern) => {
                let name = words.next().unwrap_or("");
                let name = name.split_once('?').map_or(name, |(path, _)| path);
                topic_matches(pattern, name)
            }
        }
    }
}

impl std::fmt::Display for Unit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind, self.verb)?;
        if let Some(n) = &self.name {
            write!(f, " {n}")?;
        }
        Ok(())
    }
}

/// MQTT topic filter matching, level by level.
fn topic_matches(pattern: &str, name: &str) -> bool {
    let mut p = pattern.split('/');
    let mut n = name.split('/');
    loop {
        match (p.next(), n.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// The most frequent message of a report: its exchanges' kind and verb,
/// TLS handshakes and DNS lookups only when there is nothing else.
pub fn default_unit(r: &Report) -> Option<Unit> {
    let mut counts: BTreeMap<String, (u64, bool)> = BTreeMap::new();
    for x in &r.exchanges {
        let e = counts.entry(message_of(x)).or_default();
        e.0 += 1;
        e.1 = !matches!(x.kind, crate::vocab::Proto::Tls | crate::vocab::Proto::Dns);
    }
    let best = counts.iter().max_by(|a, b| (a.1.1, a.1.0).cmp(&(b.1.1, b.1.0)).then_with(|| b.0.cmp(a.0)))?;
    Unit::parse(best.0).ok().or_else(|| Some(Unit { kind: best.0.clone(), verb: String::new(), name: None }))
}

/// Figures of one message (the unit), averaged over the capture: every
/// byte the capture holds, setup and keep-alives included, over the
/// messages it carried.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PerMessage {
    pub wire_bytes: f64,
    /// IP bytes (wire bytes without link-layer headers): what a mobile operator bills.
    pub billed_bytes: f64,
    pub payload_bytes: f64,
    pub charge_mah: f64,
    pub round_trips: f64,
    pub radio_on_s: f64,
    /// The byte ledger of one message, by class.
    pub classes: BTreeMap<String, f64>,
}

/// One device's day, as the radio model projects it (the mean over the
/// side's inputs, one device each).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PerDay {
    pub wire_bytes: f64,
    pub billed_bytes: f64,
    pub messages: f64,
    pub charge_mah: f64,
    pub radio_on_s: f64,
    pub wakeups: f64,
    pub battery_life_days: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Side {
    pub inputs: Vec<String>,
    /// The message compared by.
    pub unit: String,
    /// Exchanges of that message in the listed exchanges.
    pub messages: u64,
    pub duration_s: f64,
    pub wire_bytes: u64,
    pub billed_bytes: u64,
    /// Where `billed_bytes` come from: `counted` (`totals.billed_bytes`:
    /// each frame's wire length less its link header); for a report saved
    /// before totals counted them, `radio` (the radio model's count) or
    /// `estimate` (no radio model: the ledger less its `link` class, an
    /// upper bound).
    #[serde(default = "radio_basis")]
    pub billed_basis: String,
    pub classes: Ledger,
    pub radio_profile: Option<String>,
    pub per_message: PerMessage,
    /// None without a radio model.
    pub per_day: Option<PerDay>,
    /// What a year of the fleet's bytes costs (the comparison's cost options).
    pub fleet_year: Option<CostLine>,
    pub findings: Vec<String>,
    /// Why a figure could not be normalised.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

fn radio_basis() -> String {
    "radio".into()
}

/// One figure before and after; `ratio` is after over before.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub before: f64,
    pub after: f64,
    pub ratio: Option<f64>,
}

impl Change {
    fn of(before: f64, after: f64) -> Change {
        Change { before, after, ratio: (before > 0.0 && after.is_finite()).then(|| after / before) }
    }

    /// The saving: 1 - ratio (negative when AFTER costs more).
    pub fn saving(&self) -> Option<f64> {
        self.ratio.map(|r| 1.0 - r)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Changes {
    pub per_message: BTreeMap<String, Change>,
    pub per_day: BTreeMap<String, Change>,
    pub fleet_year: BTreeMap<String, Change>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FindingsChange {
    /// In BEFORE, not in AFTER.
    pub fixed: Vec<String>,
    pub remaining: Vec<String>,
    /// In AFTER only.
    pub new: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub schema: String,
    pub before: Side,
    pub after: Side,
    pub change: Changes,
    pub findings: FindingsChange,
    pub devices: u64,
    /// "MB" or "MiB".
    pub unit: String,
    pub currency: String,
    pub price_per_unit: Option<f64>,
    /// The per-day bytes saving, 1 - after / before (None without per-day figures).
    pub per_day_bytes_saving: Option<f64>,
    /// What the figures do not say: the sides' radio profiles differ, a
    /// side has no per-day projection.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    pub verdict: String,
}

/// The ledger's estimate of billed bytes, for a report saved before
/// totals counted them (`totals.billed_bytes`) and without a radio model:
/// every byte less the `link` class. An upper bound: `tcp_control` frames
/// are booked whole, their link headers included.
fn billed_estimate(classes: &Ledger) -> u64 {
    classes.total().saturating_sub(classes.get(Class::Link))
}

/// How many of the unit's messages each input of `r` holds. Exchanges name
/// their flow, and each input's flows have the next ids; an exchange whose
/// flow is past `--max-flows` counts towards the last input whose flows
/// come before it.
fn messages_by_input(r: &Report, unit: &Unit) -> Vec<u64> {
    let mut ends = Vec::with_capacity(r.inputs.len());
    let mut next = 0u64;
    for i in &r.inputs {
        next += i.tcp_streams + i.udp_streams;
        ends.push(next);
    }
    let mut counts = vec![0u64; r.inputs.len()];
    let mut current = 0usize;
    for x in r.exchanges.iter().filter(|x| unit.matches(x)) {
        let at = if x.flow == crate::ledger::exchange::UNLISTED_FLOW {
            current
        } else {
            ends.iter().position(|&e| x.flow < e).unwrap_or(current)
        };
        current = at;
        if let Some(c) = counts.get_mut(at) {
            *c += 1;
        }
    }
    counts
}

/// The unit's messages in one device's projected day: the messages over
/// the typical cycles the capture's repeating part holds (its bytes less
/// the start-up and shut-down, which are not multiplied), times the cycles
/// in a day; so messages a day scale with the repeating bytes, never with
/// the one-off ones.
fn messages_a_day(x: &crate::radio::RadioReport, messages: u64) -> f64 {
    let day = &x.per_day;
    let once = |o: &Option<crate::radio::sim::OneOff>| o.as_ref().map_or(0, |o| o.bytes);
    let repeating = x.bytes.saturating_sub(once(&day.startup)).saturating_sub(once(&day.shutdown));
    if repeating == 0 { 0.0 } else { messages as f64 * day.bytes as f64 / repeating as f64 }
}

/// Why an input's day is not projected, for a note.
fn unprojected(input: &str, x: &crate::radio::RadioReport) -> String {
    format!(
        "{input}: no per-day projection (basis {}: {} bursts over {:.1} s, no repeating cycle): \
         no per-day figures; --interval P gives one a period",
        x.per_day.basis, x.per_day.bursts, x.per_day.window_s
    )
}

/// One side's figures.
pub fn side(r: &Report, unit: &Unit, cost: &CostOptions) -> Side {
    let mut notes = Vec::new();
    let messages = r.exchanges.iter().filter(|x| unit.matches(x)).count() as u64;
    if messages == 0 {
        notes.push(format!("no exchange is a {unit}: nothing to divide by"));
    }
    let omitted: u64 = r.inputs.iter().map(|i| i.notes.exchanges_omitted).sum();
    if omitted > 0 {
        notes.push(format!("{omitted} exchanges were not listed (--max-exchanges): per-message figures are high"));
    }
    for i in &r.inputs {
        if let Some(e) = &i.notes.read_error {
            notes.push(format!("{}: {e}: its figures cover the {} frames before", i.input, i.totals.frames));
        }
    }
    // Each input's radio model with its name and its messages of the unit.
    let by_input = messages_by_input(r, unit);
    let inputs: Vec<(&str, &crate::radio::RadioReport, u64)> = match (&r.radio, r.inputs.first()) {
        (Some(x), first) => vec![(first.map_or("", |i| i.input.as_str()), x, messages)],
        (None, _) => r
            .inputs
            .iter()
            .zip(by_input.iter().copied())
            .filter_map(|(i, m)| i.radio.as_ref().map(|x| (i.input.as_str(), x, m)))
            .collect(),
    };
    let radios: Vec<&crate::radio::RadioReport> = inputs.iter().map(|(_, x, _)| *x).collect();
    let t = &r.totals;
    let n = messages as f64;
    let per = |v: f64| if messages > 0 { v / n } else { 0.0 };
    // Billed bytes are counted frame by frame (`totals.billed_bytes`,
    // and the radio model's); a report saved before totals counted them,
    // without a radio model, only lets the ledger estimate them.
    let (billed_bytes, billed_basis) = match (t.billed_bytes, radios.is_empty()) {
        (Some(b), _) => (b, "counted"),
        (None, false) => (radios.iter().map(|x| x.billed_bytes).sum(), "radio"),
        (None, true) => {
            notes.push(
                "billed bytes are the ledger's estimate (wire bytes less the link class), an upper bound: \
                 TCP control frames' link headers are still counted (a report saved before totals counted them)"
                    .into(),
            );
            (billed_estimate(&t.classes), "estimate")
        }
    };
    let per_message = PerMessage {
        wire_bytes: per(t.wire_bytes as f64),
        billed_bytes: per(billed_bytes as f64),
        payload_bytes: per(t.classes.get(Class::Payload) as f64),
        charge_mah: per(radios.iter().map(|x| x.charge_mah).sum()),
        round_trips: per(radios.iter().map(|x| x.round_trips as f64).sum()),
        radio_on_s: per(radios.iter().map(|x| x.radio_on_s).sum()),
        classes: Class::ALL.iter().map(|c| (c.name().to_string(), per(t.classes.get(*c) as f64))).collect(),
    };
    // Per device-day: each input is one device; its day is the radio
    // model's projection. An input without one leaves the side without:
    // a mean that took it as zero would claim a saving nobody made.
    let missing: Vec<String> =
        inputs.iter().filter(|(_, x, _)| !x.per_day.projected).map(|(i, x, _)| unprojected(i, x)).collect();
    notes.extend(missing.iter().cloned());
    let per_day = (!inputs.is_empty() && missing.is_empty()).then(|| {
        let k = inputs.len() as f64;
        let mut d = PerDay::default();
        let mut lives = Vec::new();
        for (_, x, msgs) in &inputs {
            d.wire_bytes += x.per_day.bytes as f64 / k;
            d.billed_bytes += x.per_day.billed_bytes as f64 / k;
            d.charge_mah += x.per_day.charge_mah / k;
            d.radio_on_s += x.per_day.radio_on_s / k;
            d.wakeups += x.per_day.wakeups / k;
            d.messages += messages_a_day(x, *msgs) / k;
            lives.extend(x.battery_life_days);
        }
        if !lives.is_empty() {
            d.battery_life_days = Some(lives.iter().sum::<f64>() / lives.len() as f64);
        }
        d
    });
    if inputs.is_empty() {
        notes.push("no radio model: no per-day figures (analyze with a radio profile)".into());
    }
    // Priced as analyze prices: IP bytes unless `--bill link`.
    let fleet_year = per_day
        .as_ref()
        .map(|d| crate::radio::cost(if cost.bill_link { d.wire_bytes } else { d.billed_bytes }, cost).fleet_year);
    let mut findings: Vec<String> =
        r.findings.iter().map(|f| f.id.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    findings.sort();
    let mut profiles: Vec<String> = radios.iter().map(|x| x.profile.clone()).collect();
    profiles.dedup();
    if profiles.len() > 1 {
        notes.push(format!("its inputs were modelled with different radio profiles ({})", profiles.join(", ")));
    }
    Side {
        inputs: r.inputs.iter().map(|i| i.input.clone()).collect(),
        unit: unit.to_string(),
        messages,
        duration_s: t.duration_s,
        wire_bytes: t.wire_bytes,
        billed_bytes,
        billed_basis: billed_basis.into(),
        classes: t.classes,
        radio_profile: radios.first().map(|x| x.profile.clone()),
        per_message,
        per_day,
        fleet_year,
        findings,
        notes,
    }
}

/// Compares two reports, each by its unit.
pub fn compare(before: &Report, after: &Report, units: (&Unit, &Unit), cost: &CostOptions) -> Comparison {
    let b = side(before, units.0, cost);
    let a = side(after, units.1, cost);
    let mut change = Changes::default();
    let pm = |m: &mut BTreeMap<String, Change>, k: &str, x: f64, y: f64| {
        m.insert(k.to_string(), Change::of(x, y));
    };
    let (bm, am) = (&b.per_message, &a.per_message);
    pm(&mut change.per_message, "wire_bytes", bm.wire_bytes, am.wire_bytes);
    pm(&mut change.per_message, "billed_bytes", bm.billed_bytes, am.billed_bytes);
    pm(&mut change.per_message, "payload_bytes", bm.payload_bytes, am.payload_bytes);
    pm(&mut change.per_message, "charge_mah", bm.charge_mah, am.charge_mah);
    pm(&mut change.per_message, "round_trips", bm.round_trips, am.round_trips);
    pm(&mut change.per_message, "radio_on_s", bm.radio_on_s, am.radio_on_s);
    for c in Class::ALL {
        let k = c.name();
        pm(
            &mut change.per_message,
            &format!("class_{k}"),
            bm.classes.get(k).copied().unwrap_or(0.0),
            am.classes.get(k).copied().unwrap_or(0.0),
        );
    }
    if let (Some(bd), Some(ad)) = (&b.per_day, &a.per_day) {
        pm(&mut change.per_day, "wire_bytes", bd.wire_bytes, ad.wire_bytes);
        pm(&mut change.per_day, "billed_bytes", bd.billed_bytes, ad.billed_bytes);
        pm(&mut change.per_day, "messages", bd.messages, ad.messages);
        pm(&mut change.per_day, "charge_mah", bd.charge_mah, ad.charge_mah);
        pm(&mut change.per_day, "radio_on_s", bd.radio_on_s, ad.radio_on_s);
        pm(&mut change.per_day, "wakeups", bd.wakeups, ad.wakeups);
        if let (Some(x), Some(y)) = (bd.battery_life_days, ad.battery_life_days) {
            pm(&mut change.per_day, "battery_life_days", x, y);
        }
    }
    if let (Some(by), Some(ay)) = (&b.fleet_year, &a.fleet_year) {
        pm(&mut change.fleet_year, "bytes", by.bytes as f64, ay.bytes as f64);
        pm(&mut change.fleet_year, "megabytes", by.megabytes, ay.megabytes);
        if let (Some(x), Some(y)) = (by.mebibytes, ay.mebibytes) {
            pm(&mut change.fleet_year, "mebibytes", x, y);
        }
        if let (Some(x), Some(y)) = (by.cost, ay.cost) {
            pm(&mut change.fleet_year, "cost", x, y);
        }
    }
    let before_ids: BTreeSet<&String> = b.findings.iter().collect();
    let after_ids: BTreeSet<&String> = a.findings.iter().collect();
    let findings = FindingsChange {
        fixed: before_ids.difference(&after_ids).map(|s| s.to_string()).collect(),
        remaining: before_ids.intersection(&after_ids).map(|s| s.to_string()).collect(),
        new: after_ids.difference(&before_ids).map(|s| s.to_string()).collect(),
    };
    let per_day_bytes_saving = change.per_day.get("wire_bytes").and_then(Change::saving);
    let mut notes = Vec::new();
    if let (Some(x), Some(y)) = (&b.radio_profile, &a.radio_profile)
        && x != y
    {
        notes.push(format!(
            "the sides were modelled with different radio profiles (BEFORE {x}, AFTER {y}): \
             radio charge, radio-on time, wake-ups and battery life differ by the radio as much as by the traffic"
        ));
    }
    for (name, s) in [("BEFORE", &b), ("AFTER", &a)] {
        if s.per_day.is_none() && s.radio_profile.is_some() {
            notes.push(format!("{name} has no per-day projection: no per-day change is claimed"));
        }
    }
    let verdict = verdict(&b, &a, &change, cost.binary_units);
    Comparison {
        schema: SCHEMA.to_string(),
        before: b,
        after: a,
        change,
        findings,
        devices: cost.devices,
        unit: if cost.binary_units { "MiB" } else { "MB" }.to_string(),
        currency: cost.currency.clone(),
        price_per_unit: cost.price_per_mb,
        per_day_bytes_saving,
        notes,
        verdict,
    }
}

/// "87% fewer" or "20% more".
fn fewer(saving: f64, fewer: &str, more: &str) -> String {
    if saving >= 0.0 { format!("{:.0}% {fewer}", saving * 100.0) } else { format!("{:.0}% {more}", -saving * 100.0) }
}

fn verdict(b: &Side, a: &Side, c: &Changes, binary_units: bool) -> String {
    let bytes = |v: f64| {
        if binary_units {
            crate::report::table::Units { binary: true }.bytes(v)
        } else {
            crate::report::table::human_bytes(v)
        }
    };
    let mut v = String::from("AFTER ");
    match c.per_message.get("wire_bytes") {
        Some(ch) if b.messages > 0 && a.messages > 0 => {
            let s = ch.saving().unwrap_or(0.0);
            v.push_str(&format!(
                "sends {} bytes per message ({} vs {}), {} to {}",
                fewer(s, "fewer", "more"),
                a.unit,
                b.unit,
                bytes(ch.before),
                bytes(ch.after)
            ));
        }
        _ => v.push_str("cannot be compared per message (no message of the unit on one side)"),
    }
    if let Some(ch) = c.per_day.get("wire_bytes")
        && let Some(s) = ch.saving()
    {
        v.push_str(&format!(
            ", {} a day ({} to {})",
            fewer(s, "fewer bytes", "more bytes"),
            bytes(ch.before),
            bytes(ch.after)
        ));
    }
    if let Some(ch) = c.per_day.get("charge_mah")
        && let Some(s) = ch.saving()
    {
        v.push_str(&format!(
            ", and uses {} radio charge a day ({:.2} to {:.2} mAh)",
            fewer(s, "less", "more"),
            ch.before,
            ch.after
        ));
        if let (Some(x), Some(y)) = (&b.radio_profile, &a.radio_profile)
            && x != y
        {
            v.push_str(&format!(" on a different radio profile ({x} to {y}): not the change's doing alone"));
        }
    }
    let unprojected: Vec<&str> =
        [("BEFORE", b), ("AFTER", a)].iter().filter(|(_, s)| s.per_day.is_none()).map(|(n, _)| *n).collect();
    if !unprojected.is_empty() && (b.radio_profile.is_some() || a.radio_profile.is_some()) {
        v.push_str(&format!("; no per-day comparison ({} without a per-day projection)", unprojected.join(" and ")));
    }
    v
}

/// Parses a saving: `30%` (0% to 100%) or a fraction in [0, 1] (`0.3`).
/// A bare number above 1 is refused, not read as a fraction: `30` means
/// 30% to whoever wrote it, and 3,000% to a fraction.
pub fn parse_saving(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let how = "write it as a percentage (30%) or a fraction from 0 to 1 (0.3)";
    let (v, percent) = match t.strip_suffix('%') {
        Some(p) => (p.trim().parse::<f64>().map(|x| x / 100.0), true),
        None => (t.parse::<f64>(), false),
    };
    match v {
        Ok(x) if x.is_finite() && (0.0..=1.0).contains(&x) => Ok(x),
        Ok(x) if x.is_finite() && x > 1.0 && !percent => {
            Err(format!("--require-saving {s:?}: a bare number is a fraction of 1; {how} (--require-saving {t}%?)"))
        }
        _ => Err(format!("--require-saving {s:?}: {how}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_filters_match_as_mqtt_does() {
        assert!(topic_matches("fleet/+/gps", "fleet/dev1/gps"));
        assert!(!topic_matches("fleet/+/gps", "fleet/dev1/temp"));
        assert!(topic_matches("fleet/#", "fleet/a/b/c"));
        assert!(topic_matches("/readings", "/readings"));
        assert!(!topic_matches("/readings", "/readings/x"));
    }

    #[test]
    fn units_and_savings_parse() {
        assert_eq!(
            Unit::parse("mqtt PUBLISH fleet/+/gps"),
            Ok(Unit { kind: "mqtt".into(), verb: "PUBLISH".into(), name: Some("fleet/+/gps".into()) })
        );
        assert!(Unit::parse("http").is_err());
        assert_eq!(parse_saving("30%"), Ok(0.3));
        assert_eq!(parse_saving("0.5"), Ok(0.5));
        assert!(parse_saving("lots").is_err());
        assert_eq!(parse_saving("100%"), Ok(1.0));
        assert_eq!(parse_saving("0"), Ok(0.0));
        assert_eq!(parse_saving("1"), Ok(1.0));
        // A bare 30 is not 3,000%; negative and past 100% are no saving to require.
        for bad in ["30", "1.5", "-0.1", "-5%", "101%", "NaN", "inf%"] {
            let e = parse_saving(bad).expect_err(bad);
            assert!(e.contains("30%") && e.contains("0.3"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_saving_is_one_minus_the_ratio() {
        let c = Change::of(2480.0, 311.0);
        assert!((c.saving().unwrap_or(0.0) - (1.0 - 311.0 / 2480.0)).abs() < 1e-12);
        assert_eq!(Change::of(0.0, 5.0).ratio, None);
        assert!(fewer(-0.2, "fewer", "more").contains("20% more"));
    }
}
