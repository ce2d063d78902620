//! "All findings fixed": every finding's changes run together, per device,
//! through one re-simulation. The findings' own savings each assume only
//! their change and overlap (keep-alive and resumption both remove the same
//! handshakes); this one counts every byte once, so it is never more than
//! the baseline.

use super::{Counterfactual, Finding, Input, Saving, round6};
use crate::whatif::{self, Change, DayFigures};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// The combined scenario, reported once (`all_findings_fixed`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AllFixed {
    pub saving_per_day: Saving,
    pub counterfactual: Counterfactual,
    /// The findings whose changes it runs together (their ids).
    pub findings: Vec<String>,
    /// What the findings' own per-day savings add up to: more than the
    /// combined saving where they overlap.
    pub sum_of_findings: Saving,
    /// The re-simulated devices' day as captured.
    pub baseline_per_day: DayFigures,
}

impl AllFixed {
    /// Several inputs' combined scenarios, added up (their devices differ).
    pub fn sum(a: Option<AllFixed>, b: Option<AllFixed>) -> Option<AllFixed> {
        let (mut a, b) = match (a, b) {
            (Some(a), Some(b)) => (a, b),
            (a, b) => return a.or(b),
        };
        let add = |x: &mut Saving, y: &Saving| {
            x.bytes += y.bytes;
            x.billed_bytes += y.billed_bytes;
            x.radio_on_s = add_radio(x.radio_on_s, y.radio_on_s);
            x.charge_mah = add_radio(x.charge_mah, y.charge_mah);
        };
        add(&mut a.saving_per_day, &b.saving_per_day);
        add(&mut a.sum_of_findings, &b.sum_of_findings);
        a.baseline_per_day.add(&b.baseline_per_day);
        for id in b.findings {
            if !a.findings.contains(&id) {
                a.findings.push(id);
            }
        }
        a.counterfactual.description = format!("every finding fixed at once: {}", a.findings.join(", "));
        a.counterfactual.assumptions.push("the inputs' combined scenarios added up".into());
        Some(a)
    }
}

/// Two radio figures added up: none if either has none (a part is not the sum).
fn add_radio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(round6(a? + b?))
}

/// Runs every finding's changes together; None when no finding has any.
pub fn all_fixed(inp: &Input, findings: &[Finding]) -> Option<AllFixed> {
    let mut by_device: BTreeMap<IpAddr, Vec<Change>> = BTreeMap::new();
    let mut ids: Vec<String> = Vec::new();
    for f in findings {
        let Some(cf) = &f.counterfactual else { continue };
        if cf.changes.is_empty() {
            continue;
        }
        if !ids.contains(&f.id) {
            ids.push(f.id.clone());
        }
        for (ip, c) in &cf.changes {
            let chs = by_device.entry(*ip).or_default();
            if !chs.contains(c) {
                chs.push(c.clone());
            }
        }
    }
    if by_device.is_empty() {
        return None;
    }
    let k = inp.constants();
    let (mut base, mut cf) = (DayFigures::default(), DayFigures::default());
    let mut devices = 0u64;
    for (ip, chs) in &by_device {
        let Some(dev) = inp.streams.devices.get(ip) else { continue };
        let o = whatif::run(dev, chs, &k, inp.radio);
        base.add(&o.baseline);
        cf.add(&o.counterfactual);
        devices += 1;
    }
    let o = whatif::Outcome { baseline: base, counterfactual: cf };
    let s = o.saving();
    let mut sum = Saving {
        radio_on_s: Some(0.0),
        charge_mah: Some(0.0),
        charge_basis: "the findings' own savings added up (they overlap)".into(),
        ..Default::default()
    };
    for f in findings {
        let x = &f.saving_per_day;
        sum.bytes += x.bytes;
        sum.billed_bytes += x.billed_bytes;
        sum.radio_on_s = add_radio(sum.radio_on_s, x.radio_on_s);
        sum.charge_mah = add_radio(sum.charge_mah, x.charge_mah);
    }
    if sum.charge_mah.is_none() {
        sum.charge_basis.push_str("; no radio figures: a finding's saving has none");
    }
    let mut assumptions = k.assumptions.clone();
    assumptions.push(format!("{devices} devices re-simulated with every change that concerns them at once"));
    let left_out: Vec<&str> = findings
        .iter()
        .filter(|f| f.counterfactual.as_ref().is_none_or(|c| c.changes.is_empty()))
        .map(|f| f.id.as_str())
        .collect();
    if !left_out.is_empty() {
        assumptions
            .push(format!("not re-simulated, so not in it: {} (their savings are not timelines)", left_out.join(", ")));
    }
    let basis =
        "baseline minus every finding's change at once, each re-simulated on the radio model and projected to a day";
    let charge_basis = if inp.radio.is_none() {
        assumptions.push("no radio model: bytes only".into());
        format!("{basis}; no radio model: bytes only")
    } else if s.no_radio_figures {
        format!("{basis}; {}", super::NO_RADIO_FIGURES)
    } else {
        basis.into()
    };
    Some(AllFixed {
        saving_per_day: Saving {
            bytes: s.bytes,
            billed_bytes: s.billed_bytes.min(s.bytes),
            radio_on_s: s.radio_on().map(round6),
            charge_mah: s.charge().map(round6),
            charge_basis,
        },
        counterfactual: Counterfactual {
            description: format!("every finding fixed at once: {}", ids.join(", ")),
            assumptions,
            changes: Vec::new(),
        },
        findings: ids,
        sum_of_findings: sum,
        baseline_per_day: o.baseline,
    })
}
