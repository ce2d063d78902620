//! Fleet cost: what the bytes of one device-day cost over a fleet.
//!
//! `--devices N --price-per-mb P --currency EUR`; a megabyte is 10^6 bytes
//! unless `--binary-units` (then a MiB, 2^20 bytes). A month is 30 days, a
//! year 365.

use serde::Serialize;

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
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CostLine {
    pub days: f64,
    pub devices: u64,
    pub bytes: u64,
    /// In the report's unit (MB or MiB).
    pub megabytes: f64,
    pub cost: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CostReport {
    pub devices: u64,
    /// "MB" (10^6 bytes) or "MiB" (2^20 bytes).
    pub unit: &'static str,
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
        unit: if opts.binary_units { "MiB" } else { "MB" },
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
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    /// The textbook example: 5,000 GPS trackers posting every 30 s.
    #[test]
    fn gps_tracker_worked_example() {
        let interval_s = 30.0;
        let requests_per_day = 86_400.0 / interval_s;
        assert_eq!(requests_per_day, 2_880.0);

        // The book's own arithmetic, in its own units. It mixes them: KB -> MB
        // by 1,024 for HTTPS, MB -> GB by 1,000, and KB -> MB by 1,000 for MQTT.
        let https_kb_day = 6.885 * requests_per_day;
        assert!(close(https_kb_day, 19_828.8, 1e-9));
        assert!(close(https_kb_day / 1024.0, 19.4, 0.05)); // "about 19.4 MB per device-day"
        assert!(close(https_kb_day / 1024.0 * 5_000.0 / 1000.0, 97.0, 0.5)); // "about 97 GB per fleet-day"
        // MQTT: 0.009 KB per reading. Keep-alives (0.12 KB a minute) are only
        // sent after a whole keep-alive period of silence, which a reading
        // every 30 s never leaves, so the 0.026 MB counts readings only.
        let mqtt_kb_day = 0.009 * requests_per_day;
        assert!(close(mqtt_kb_day / 1000.0, 0.026, 0.0005)); // "about 0.026 MB per device-day"
        // Had the tracker been silent all day, keep-alives alone would be 0.17 MB.
        assert!(close(per_day_bytes(120.0, 60.0) / 1e6, 0.1728, 1e-9));

        // wiretax, one unit system at a time. Decimal: KB = 1,000 bytes, MB = 10^6.
        let fleet =
            CostOptions { devices: 5_000, price_per_mb: Some(0.5), currency: "EUR".into(), binary_units: false };
        let https_day = per_day_bytes(6_885.0, interval_s);
        let h = cost(https_day, &fleet);
        assert_eq!((h.unit, h.bytes_per_unit), ("MB", 1_000_000));
        assert_eq!(h.device_day.bytes, 19_828_800);
        assert!(close(h.device_day.megabytes, 19.8288, 1e-9));
        assert_eq!(h.fleet_day.bytes, 99_144_000_000); // 99.1 GB
        let mqtt_day = per_day_bytes(9.0, interval_s);
        let q = cost(mqtt_day, &fleet);
        assert_eq!(q.device_day.bytes, 25_920);
        assert!(close(q.device_day.megabytes, 0.026, 0.0005));
        // Binary: KB = 1,024 bytes, MiB = 2^20: the book's 19.4 and 97 (thousand) are MiB.
        let binary = CostOptions { binary_units: true, ..fleet.clone() };
        let hb = cost(per_day_bytes(6.885 * 1024.0, interval_s), &binary);
        assert_eq!(hb.unit, "MiB");
        assert!(close(hb.device_day.megabytes, 19.364_062_5, 1e-9));
        assert!(close(hb.fleet_day.megabytes, 96_820.312_5, 1e-6));

        // With a price (EUR 0.50 per MB), the annual costs: 36,187,560 MB and
        // 47,304 MB a year for the fleet.
        assert!(close(h.fleet_year.megabytes, 36_187_560.0, 1e-3));
        assert!(close(h.fleet_year.cost.unwrap(), 18_093_780.0, 1e-3));
        assert!(close(q.fleet_year.megabytes, 47_304.0, 1e-6));
        assert!(close(q.fleet_year.cost.unwrap(), 23_652.0, 1e-6));
        assert!(close(h.fleet_month.cost.unwrap(), 19.8288 * 30.0 * 5_000.0 * 0.5, 1e-3));
        assert_eq!((h.fleet_month.days, h.fleet_year.days), (30.0, 365.0));
        assert_eq!(h.currency, "EUR");
    }

    #[test]
    fn absurd_inputs_stay_finite() {
        let r = cost(f64::INFINITY, &CostOptions::default());
        assert_eq!(r.device_day.bytes, 0);
        let r = cost(1e300, &CostOptions { devices: u64::MAX, ..CostOptions::default() });
        assert_eq!(r.fleet_year.bytes, u64::MAX);
        assert_eq!(per_day_bytes(100.0, 0.0), 0.0);
        let r = cost(1e6, &CostOptions { price_per_mb: Some(f64::NAN), ..CostOptions::default() });
        assert_eq!(r.device_day.cost, None);
        assert_eq!(r.device_day.megabytes, 1.0);
    }
}
