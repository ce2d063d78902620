//! Radio cost of a capture: states, time, energy, battery life and money.
//!
//! A battery pays for radio time, not bytes. The pipeline feeds every frame
//! as a [`Tick`] to a [`RadioSim`] built from a [`Profile`] (data: see
//! `profiles/*.toml`), then calls [`RadioSim::finish`] for the report's
//! `radio` section. Fleet cost is [`cost::cost`].

pub mod cost;
pub mod fleet;
pub mod profile;
pub mod sim;
pub mod timeline;

pub use cost::{CostLine, CostOptions, CostReport, cost};
pub use fleet::{DeviceRadio, DeviceRadios, FleetSums};
pub use profile::{Profile, ProfileError, list_text};
pub use sim::{Book, DeviceSim, RadioOptions, RadioReport, RadioSim, Tick, Timing};

/// Parses a battery capacity: `3000mAh`, `3000 mAh`, `3Ah` or a bare number of mAh.
pub fn parse_battery_mah(s: &str) -> Result<f64, String> {
    parse_quantity(s, &[("mah", 1.0), ("ah", 1000.0), ("", 1.0)], "a battery capacity such as 3000mAh")
}

/// Parses a current into microamperes: `5uA`, `5µA`, `0.005mA`, `5` (uA).
pub fn parse_current_ua(s: &str) -> Result<f64, String> {
    parse_quantity(
        s,
        &[("ua", 1.0), ("µa", 1.0), ("μa", 1.0), ("na", 1e-3), ("ma", 1e3), ("a", 1e6), ("", 1.0)],
        "a current such as 5uA",
    )
}

/// Parses a period into seconds: `30s`, `500ms`, `2m`, `1h` or a bare number of seconds.
pub fn parse_interval_s(s: &str) -> Result<f64, String> {
    let v = parse_quantity(
        s,
        &[("ms", 1e-3), ("s", 1.0), ("min", 60.0), ("m", 60.0), ("h", 3600.0), ("", 1.0)],
        "a period such as 30s",
    )?;
    if v > 0.0 && v <= 365.0 * 86_400.0 { Ok(v) } else { Err(format!("`{s}` is not a period from 1 ms to a year")) }
}

fn parse_quantity(s: &str, units: &[(&str, f64)], what: &str) -> Result<f64, String> {
    let lower = s.trim().to_lowercase();
    for (unit, factor) in units {
        if let Some(number) = lower.strip_suffix(unit)
            && let Ok(v) = number.trim().parse::<f64>()
            && v.is_finite()
            && v >= 0.0
        {
            return Ok(v * factor);
        }
    }
    Err(format!("`{s}` is not {what}"))
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod parse_tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(parse_battery_mah("3000mAh"), Ok(3000.0));
        assert_eq!(parse_battery_mah("3 Ah"), Ok(3000.0));
        assert_eq!(parse_battery_mah("2500"), Ok(2500.0));
        assert_eq!(parse_current_ua("5uA"), Ok(5.0));
        assert_eq!(parse_current_ua("5µA"), Ok(5.0));
        assert_eq!(parse_current_ua("0.01mA"), Ok(10.0));
        assert!(parse_current_ua("five").is_err());
        assert!(parse_battery_mah("-3mAh").is_err());
        assert!(parse_battery_mah("NaN").is_err());
        assert_eq!(parse_interval_s("30s"), Ok(30.0));
        assert_eq!(parse_interval_s("500ms"), Ok(0.5));
        assert_eq!(parse_interval_s("2m"), Ok(120.0));
        assert_eq!(parse_interval_s("1h"), Ok(3600.0));
        assert_eq!(parse_interval_s("15"), Ok(15.0));
        assert!(parse_interval_s("0s").is_err());
        assert!(parse_interval_s("soon").is_err());
    }
}
