use super::*;
use crate::dissect::testkit::TestResult;

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

/// The textbook example: 5,000 GPS trackers posting every 30 s.
#[test]
fn gps_tracker_worked_example() -> TestResult {
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
    let fleet = CostOptions {
        devices: 5_000,
        price_per_mb: Some(0.5),
        currency: "EUR".into(),
        binary_units: false,
        ..CostOptions::default()
    };
    let https_day = per_day_bytes(6_885.0, interval_s);
    let h = cost(https_day, &fleet);
    assert_eq!((h.unit.as_str(), h.bytes_per_unit), ("MB", 1_000_000));
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
    // Lines say which unit their values are in.
    assert!(close(hb.device_day.mebibytes.ok_or("no mebibytes")?, 19.364_062_5, 1e-9));
    assert!(close(hb.fleet_day.mebibytes.ok_or("no mebibytes")?, 96_820.312_5, 1e-6));
    assert!(close(hb.device_day.megabytes, 19.364_062_5 * 1.048_576, 1e-9));
    assert!(close(hb.device_day.cost.ok_or("no cost")?, 19.364_062_5 * 0.5, 1e-9));
    assert_eq!(h.device_day.mebibytes, None);

    // With a price (EUR 0.50 per MB), the annual costs: 36,187,560 MB and
    // 47,304 MB a year for the fleet.
    assert!(close(h.fleet_year.megabytes, 36_187_560.0, 1e-3));
    assert!(close(h.fleet_year.cost.ok_or("no fleet_year.cost")?, 18_093_780.0, 1e-3));
    assert!(close(q.fleet_year.megabytes, 47_304.0, 1e-6));
    assert!(close(q.fleet_year.cost.ok_or("no fleet_year.cost")?, 23_652.0, 1e-6));
    assert!(close(h.fleet_month.cost.ok_or("no fleet_month.cost")?, 19.8288 * 30.0 * 5_000.0 * 0.5, 1e-3));
    assert_eq!((h.fleet_month.days, h.fleet_year.days), (30.0, 365.0));
    assert_eq!(h.currency, "EUR");
    Ok(())
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
