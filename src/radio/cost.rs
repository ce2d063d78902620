//! Fleet cost: what the bytes of one device-day cost over a fleet.
//!
//! `--devices N --price-per-mb P --currency EUR`; a megabyte is 10^6 bytes
//! unless `--binary-units` (then prices are per MiB, 2^20 bytes, and lines
//! say `mebibytes`). A month is 30 days, a year 365. Operators bill IP
//! bytes: link headers are left out unless `--bill link`.

use serde::{Deserialize, Serialize};

pub const MONTH_DAYS: f64 = 30.0;
pub const YEAR_DAYS: f64 = 365.0;

#[derive(Clone, Debug, PartialEq)]
pub struct CostOptions {
    pub devices: u64,
    /// `--devices` was given: it scales a capture of several devices.
    pub devices_given: bool,
    /// Bill link bytes (headers included), not IP bytes.
    pub bill_link: bool,
    /// Price of one MB (or MiB with `binary_units`); without a price only bytes are projected.
    pub price_per_mb: Option<f64>,
    pub currency: String,
    pub binary_units: bool,
}

impl Default for CostOptions {
    fn default() -> Self {
        CostOptions {
            devices: 1,
            devices_given: false,
            bill_link: false,
            price_per_mb: None,
            currency: "EUR".into(),
            binary_units: false,
        }
    }
}

impl CostOptions {
    pub fn bytes_per_unit(&self) -> f64 {
        if self.binary_units { 1_048_576.0 } else { 1_000_000.0 }
    }
}

/// Bytes, megabytes and money over one period.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CostLine {
    pub days: f64,
    pub devices: u64,
    pub bytes: u64,
    /// 10^6 bytes.
    pub megabytes: f64,
    /// 2^20 bytes, with `--binary-units`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mebibytes: Option<f64>,
    /// At `price_per_unit` per `unit`.
    pub cost: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CostReport {
    pub devices: u64,
    /// Which bytes are billed: `ip` (link headers excluded) or `link`.
    #[serde(default = "ip")]
    pub bill: String,
    /// Devices the capture held, and whether `--devices` scaled them.
    #[serde(default)]
    pub devices_seen: u64,
    #[serde(default)]
    pub scaled: bool,
    /// "MB" (10^6 bytes) or "MiB" (2^20 bytes).
    pub unit: String,
    pub bytes_per_unit: u64,
    pub currency: String,
    pub price_per_unit: Option<f64>,
    pub device_day: CostLine,
    pub fleet_day: CostLine,
    /// 30 days.
    pub fleet_month: CostLine,
    /// 365 days.
    pub fleet_year: CostLine,
}

fn ip() -> String {
    "ip".into()
}

/// Bytes per day of something that happens every `interval_s` seconds.
pub fn per_day_bytes(bytes_per_event: f64, interval_s: f64) -> f64 {
    if interval_s > 0.0 && bytes_per_event.is_finite() { bytes_per_event * 86_400.0 / interval_s } else { 0.0 }
}

/// Projects one device's daily bytes over the fleet.
pub fn cost(per_day_bytes: f64, opts: &CostOptions) -> CostReport {
    let per_day = if per_day_bytes.is_finite() { per_day_bytes.max(0.0) } else { 0.0 };
    let unit = opts.bytes_per_unit();
    let price = opts.price_per_mb.filter(|p| p.is_finite() && *p >= 0.0);
    let line = |days: f64, devices: u64| {
        let bytes = per_day * days * devices as f64;
        CostLine {
            days,
            devices,
            // `as` saturates: an absurd fleet cannot wrap around.
            bytes: bytes.round() as u64,
            megabytes: bytes / 1e6,
            mebibytes: opts.binary_units.then_some(bytes / 1_048_576.0),
            cost: price.map(|p| bytes / unit * p),
        }
    };
    CostReport {
        devices: opts.devices,
        bill: if opts.bill_link { "link" } else { "ip" }.into(),
        devices_seen: 1,
        scaled: false,
        unit: if opts.binary_units { "MiB" } else { "MB" }.to_string(),
        bytes_per_unit: unit as u64,
        currency: opts.currency.clone(),
        price_per_unit: price,
        device_day: line(1.0, 1),
        fleet_day: line(1.0, opts.devices),
        fleet_month: line(MONTH_DAYS, opts.devices),
        fleet_year: line(YEAR_DAYS, opts.devices),
    }
}

#[cfg(test)]
mod tests;
