//! Fleet cost: what the bytes of one device-day cost over a fleet.
//!
//! `--devices N --price-per-mb P --currency EUR`; a megabyte is 10^6 bytes
//! unless `--binary-units` (then a MiB, 2^20 bytes). A month is 30 days, a
//! year 365.

use serde::{Deserialize, Serialize};

pub const MONTH_DAYS: f64 = 30.0;
pub const YEAR_DAYS: f64 = 365.0;

#[derive(Clone, Debug, PartialEq)]
pub struct CostOptions {
    pub devices: u64,
    /// Price of one MB (or MiB with `binary_units`); without a price only bytes are projected.
    pub price_per_mb: Option<f64>,
    pub currency: String,
    pub binary_units: bool,
}

impl Default for CostOptions {
    fn default() -> Self {
        CostOptions { devices: 1, price_per_mb: None, currency: "EUR".into(), binary_units: false }
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
    /// In the report's unit (MB or MiB).
    pub megabytes: f64,
    pub cost: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CostReport {
    pub devices: u64,
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
            megabytes: bytes / unit,
            cost: price.map(|p| bytes / unit * p),
        }
    };
    CostReport {
        devices: opts.devices,
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

impl CostReport {
    /// A human-readable block for the text report.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut o = String::new();
        let _ = writeln!(o, "cost: {} devices, 1 {} = {} bytes", self.devices, self.unit, self.bytes_per_unit);
        for (label, line) in [
            ("device-day", &self.device_day),
            ("fleet-day", &self.fleet_day),
            ("fleet-month (30 d)", &self.fleet_month),
            ("fleet-year (365 d)", &self.fleet_year),
        ] {
            let money = match line.cost {
                Some(c) => format!(", {c:.2} {}", self.currency),
                None => String::new(),
            };
            let _ = writeln!(o, "  {label:<19} {:>20} bytes = {:.3} {}{money}", line.bytes, line.megabytes, self.unit);
        }
        o
    }
}

#[cfg(test)]
mod tests;
