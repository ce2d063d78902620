//! Devices and the fleet: what each device costs a day, and all of them.

use crate::ledger::Ledger;
use crate::radio::sim::PerDay;
use serde::{Deserialize, Serialize};

/// One device: the address on the local side of its flows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceReport {
    /// The key's value as text (`10.0.0.2`); `unknown` for frames that
    /// carried no address before any device was seen.
    pub id: String,
    /// From `--device-map`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Every key the device was told apart by, as `kind:value` (`ip:10.0.0.2`).
    pub keys: Vec<String>,
    pub frames: u64,
    pub wire_bytes: u64,
    /// IP bytes: link headers excluded.
    #[serde(default)]
    pub billed_bytes: u64,
    /// The device's flows' bytes per class (frames outside flows are in the
    /// input's totals only).
    pub classes: Ledger,
    pub flows: u64,
    pub exchanges: u64,
    pub radio: DeviceRadioFigures,
    pub per_day: PerDay,
    pub battery_life_days: Option<f64>,
    /// Set when the address looks like several devices (many simultaneous
    /// connections of the same shape: clients behind a NAT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crowd: Option<Crowd>,
    /// The findings that concern the device: indices into the input's
    /// `findings` (see `analyze::devices::scope_findings`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<usize>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DeviceRadioFigures {
    pub radio_on_s: f64,
    pub energy_j: f64,
    pub charge_mah: f64,
    pub wakeups: u64,
    pub promotions: u64,
}

/// Many connections of one shape at once from one address.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Crowd {
    /// Most connections open at once to `server` (same transport and port).
    pub simultaneous: u64,
    pub server: String,
    /// Keys that could tell the devices apart in a capture taken before
    /// the address translation.
    pub separating_keys: Vec<String>,
}

/// Every device, summed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FleetReport {
    /// Devices in the fleet: those seen, or `--devices` when given.
    pub devices: u64,
    pub devices_seen: u64,
    /// Devices listed in `devices` (the first `--max-devices` seen).
    pub devices_listed: u64,
    /// `--devices` scaled the devices seen (their per-day sum times
    /// devices / devices_seen).
    pub scaled: bool,
    pub per_day: FleetDay,
    /// Over the devices with a per-day projection.
    pub spread: FleetSpread,
    /// Devices without a per-day projection (no repeating cycle).
    pub unprojected: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FleetDay {
    pub bytes: u64,
    pub billed_bytes: u64,
    pub charge_mah: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FleetSpread {
    pub bytes: Spread,
    pub billed_bytes: Spread,
    pub charge_mah: Spread,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Spread {
    pub median: f64,
    pub p90: f64,
    pub max: f64,
}

impl Spread {
    /// Median, 90th percentile (nearest rank) and maximum.
    pub fn of(v: &mut [f64]) -> Spread {
        if v.is_empty() {
            return Spread::default();
        }
        let median = crate::stats::median(v);
        let rank = ((v.len() as f64 * 0.9).ceil() as usize).clamp(1, v.len());
        Spread { median, p90: v.get(rank - 1).copied().unwrap_or(0.0), max: v.last().copied().unwrap_or(0.0) }
    }
}
