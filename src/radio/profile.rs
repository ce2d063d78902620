//! Radio profiles: the parameters of one radio's state machine, as data.
//!
//! A profile is a TOML file. Every number is a small table that carries its
//! unit and where it comes from, e.g. `duration = { s = 0.26, source = "..." }`,
//! so `wiretax radio list` can print each parameter with its source and a
//! user profile cannot silently mix up milliseconds and seconds.
//!
//! The model every profile fills in (all radios share it; only the numbers
//! and the number of tail stages differ):
//!
//! ```text
//!   idle --promotion--> connected --inactivity--> tail[0] --> tail[1] ... --> idle
//!            ^                ^                      |
//!            |                +---- packet ----------+  (stage promotion if the stage has one)
//!            +-- packet in idle or in a stage with radio_on = false
//! ```

use std::path::Path;

use serde::Serialize;
use toml::{Table, Value};

/// A profile that cannot be used. The message always names the field.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("cannot read radio profile {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("radio profile {path} is not valid TOML: {message}")]
    Syntax { path: String, message: String },
    #[error("radio profile {profile}: field `{field}`: {problem}")]
    Field { profile: String, field: String, problem: String },
    #[error("unknown radio profile `{0}`: not a built-in ({1}) and no such file")]
    Unknown(String, String),
}

/// A promotion: the radio powering up its connection before data can flow.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Promotion {
    pub duration_s: f64,
    pub power_w: f64,
}

/// Connected and moving data (LTE continuous reception, 3G DCH, WiFi active,
/// cellular-IoT RRC connected with the receiver on).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Connected {
    /// Power while connected, before per-byte terms.
    pub power_w: f64,
    /// Time without packets before the radio drops to the first tail stage.
    pub inactivity_s: f64,
    /// Extra energy per uplink / downlink bit, J/bit (ARO's alpha: mW/Mbps = 1e-9 J/bit).
    pub up_j_per_bit: f64,
    pub down_j_per_bit: f64,
    /// Power while transmitting / receiving; the excess over `power_w` is charged
    /// for each packet's airtime at the link rate.
    pub tx_power_w: Option<f64>,
    pub rx_power_w: Option<f64>,
}

/// One stage of the tail that follows the inactivity timer.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TailStage {
    pub name: String,
    pub duration_s: f64,
    /// Average power, on-duration pings included.
    pub power_w: f64,
    /// false: the connection is released (RRC idle with eDRX, PSM active timer);
    /// data arriving here needs the profile's promotion and counts as a wake-up.
    pub radio_on: bool,
    /// Promotion needed when data arrives in this stage (3G FACH -> DCH).
    pub promotion: Option<Promotion>,
}

/// The link as the device sees it, for `--timing link`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Link {
    pub up_bps: f64,
    pub down_bps: f64,
    pub rtt_s: f64,
    /// Captured gaps up to this long are protocol round trips (re-timed on the
    /// link, counted as transfer); longer gaps are the application's own
    /// pauses (kept as captured, counted as tail or idle).
    pub burst_gap_s: f64,
}

/// Release assistance (3GPP RAI): the device tells the network it expects no
/// more data, so the connection is released right after the burst instead of
/// after the network's inactivity timer.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReleaseAssistance {
    /// Time from the last packet of a burst to the release.
    pub release_after_s: f64,
}

/// One parameter as written in the profile, for `wiretax radio list`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ParamInfo {
    pub field: String,
    pub value: String,
    pub source: String,
}

/// A radio model. All values in SI units (s, W, bit/s, V).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Profile {
    pub name: String,
    pub description: String,
    /// The device class the numbers describe (`2012 smartphone LTE radio, AT&T ARO`).
    pub device_class: String,
    pub voltage_v: f64,
    pub promotion: Promotion,
    pub connected: Connected,
    pub tail: Vec<TailStage>,
    /// Average power when the radio is idle (paging or PSM floor included).
    pub idle_power_w: f64,
    pub idle_name: String,
    pub link: Link,
    pub release_assistance: Option<ReleaseAssistance>,
    #[serde(skip)]
    pub params: Vec<ParamInfo>,
}

const BUILTIN_SOURCES: [(&str, &str); 5] = [
    ("lte", include_str!("../../profiles/lte.toml")),
    ("umts", include_str!("../../profiles/umts.toml")),
    ("wifi", include_str!("../../profiles/wifi.toml")),
    ("ltem", include_str!("../../profiles/ltem.toml")),
    ("nbiot", include_str!("../../profiles/nbiot.toml")),
];

/// Longest accepted duration or timer (a year): keeps every sum finite.
const MAX_DURATION_S: f64 = 365.0 * 86_400.0;
/// Highest accepted power (a kilowatt is no handset radio).
const MAX_POWER_W: f64 = 1_000.0;

impl Profile {
    /// A built-in profile by name (`lte`, `umts`/`3g`, `wifi`, `ltem`/`lte-m`, `nbiot`/`nb-iot`).
    pub fn builtin(name: &str) -> Option<Profile> {
        let canonical = match name.to_ascii_lowercase().as_str() {
            "lte" | "4g" => "lte",
            "umts" | "3g" => "umts",
            "wifi" | "wi-fi" => "wifi",
            "ltem" | "lte-m" | "catm1" | "cat-m1" => "ltem",
            "nbiot" | "nb-iot" | "nb1" => "nbiot",
            _ => return None,
        };
        let (_, text) = BUILTIN_SOURCES.iter().find(|(n, _)| *n == canonical)?;
        // Built-ins are checked by the tests; a broken one is reported as absent
        // rather than taking the program down.
        Profile::parse(text, canonical).ok()
    }

    /// Every built-in profile, in a fixed order.
    pub fn builtins() -> Vec<Profile> {
        BUILTIN_SOURCES.iter().filter_map(|(n, _)| Profile::builtin(n)).collect()
    }

    /// Names of the built-in profiles.
    pub fn builtin_names() -> Vec<&'static str> {
        BUILTIN_SOURCES.iter().map(|(n, _)| *n).collect()
    }

    /// Loads a user profile from a TOML file with the built-ins' fields.
    pub fn load(path: impl AsRef<Path>) -> Result<Profile, ProfileError> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        // A profile is a few kilobytes; refuse to slurp anything huge.
        let meta = std::fs::metadata(path).map_err(|source| ProfileError::Io { path: shown.clone(), source })?;
        if meta.len() > 1 << 20 {
            return Err(ProfileError::Syntax { path: shown, message: "file larger than 1 MiB".into() });
        }
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Io { path: shown.clone(), source })?;
        Profile::parse(&text, &shown)
    }

    /// A built-in name, else a file path.
    pub fn resolve(name_or_path: &str) -> Result<Profile, ProfileError> {
        if let Some(p) = Profile::builtin(name_or_path) {
            return Ok(p);
        }
        let path = Path::new(name_or_path);
        if path.exists() {
            return Profile::load(path);
        }
        Err(ProfileError::Unknown(name_or_path.to_string(), Profile::builtin_names().join(", ")))
    }

    /// Parses profile text; `origin` names the profile in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Profile, ProfileError> {
        let table: Table = text
            .parse()
            .map_err(|e: toml::de::Error| ProfileError::Syntax { path: origin.to_string(), message: e.to_string() })?;
        let mut r = Reader { profile: origin.to_string(), params: Vec::new(), voltage_v: None };
        r.profile_from(&table)
    }

    /// Sum of the tail stages in which the radio stays connected, plus the inactivity timer.
    pub fn connected_tail_s(&self) -> f64 {
        self.connected.inactivity_s + self.tail.iter().filter(|s| s.radio_on).map(|s| s.duration_s).sum::<f64>()
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Dim {
    Time,
    Power,
    Rate,
    Voltage,
    EnergyPerBit,
}

impl Dim {
    fn units(self) -> &'static [(&'static str, f64)] {
        match self {
            Dim::Time => &[("s", 1.0), ("ms", 1e-3)],
            // Currents are converted with the profile's voltage (factor applied later).
            Dim::Power => &[("w", 1.0), ("mw", 1e-3), ("ma", 1e-3), ("ua", 1e-6)],
            Dim::Rate => &[("bps", 1.0), ("kbps", 1e3), ("mbps", 1e6)],
            Dim::Voltage => &[("v", 1.0)],
            Dim::EnergyPerBit => &[("mw_per_mbps", 1e-9)],
        }
    }
    fn describe(self) -> &'static str {
        match self {
            Dim::Time => "a duration: { s = .. } or { ms = .. }",
            Dim::Power => "a power: { w = .. }, { mw = .. }, { ma = .. } or { ua = .. }",
            Dim::Rate => "a rate: { kbps = .. }, { mbps = .. } or { bps = .. }",
            Dim::Voltage => "a voltage: { v = .. }",
            Dim::EnergyPerBit => "energy per throughput: { mw_per_mbps = .. }",
        }
    }
}

struct Reader {
    profile: String,
    params: Vec<ParamInfo>,
    voltage_v: Option<f64>,
}

impl Reader {
    fn err(&self, field: &str, problem: impl Into<String>) -> ProfileError {
        ProfileError::Field { profile: self.profile.clone(), field: field.to_string(), problem: problem.into() }
    }

    fn check_keys(&self, table: &Table, prefix: &str, allowed: &[&str]) -> Result<(), ProfileError> {
        for key in table.keys() {
            if !allowed.contains(&key.as_str()) {
                return Err(
                    self.err(&join(prefix, key), format!("unknown field (expected one of: {})", allowed.join(", ")))
                );
            }
        }
        Ok(())
    }

    fn string(&self, table: &Table, prefix: &str, key: &str) -> Result<Option<String>, ProfileError> {
        match table.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.err(&join(prefix, key), "expected a string")),
        }
    }

    fn table<'t>(&self, table: &'t Table, prefix: &str, key: &str) -> Result<Option<&'t Table>, ProfileError> {
        match table.get(key) {
            None => Ok(None),
            Some(Value::Table(t)) => Ok(Some(t)),
            Some(_) => Err(self.err(&join(prefix, key), "expected a table")),
        }
    }

    fn required_table<'t>(&self, table: &'t Table, prefix: &str, key: &str) -> Result<&'t Table, ProfileError> {
        self.table(table, prefix, key)?.ok_or_else(|| self.err(&join(prefix, key), "missing"))
    }

    /// Reads `{ <unit> = number, source = "..." }`, returns the value in SI units.
    fn param(&mut self, table: &Table, prefix: &str, key: &str, dim: Dim) -> Result<Option<f64>, ProfileError> {
        let field = join(prefix, key);
        let Some(value) = table.get(key) else {
            return Ok(None);
        };
        let Value::Table(t) = value else {
            return Err(self.err(&field, format!("expected {} with a source", dim.describe())));
        };
        let mut found: Option<(&str, f64, f64)> = None;
        let mut source = None;
        for (k, v) in t {
            if k == "source" {
                match v {
                    Value::String(s) if !s.trim().is_empty() => source = Some(s.clone()),
                    _ => return Err(self.err(&field, "`source` must be a non-empty string")),
                }
                continue;
            }
            let Some(&(unit, factor)) = dim.units().iter().find(|(u, _)| *u == k.as_str()) else {
                return Err(self.err(&field, format!("unknown key `{k}`: expected {}", dim.describe())));
            };
            let number = match v {
                Value::Float(f) => *f,
                Value::Integer(i) => *i as f64,
                _ => return Err(self.err(&field, format!("`{k}` must be a number"))),
            };
            if found.is_some() {
                return Err(self.err(&field, "give the value in one unit only"));
            }
            found = Some((unit, number, factor));
        }
        let Some((unit, number, factor)) = found else {
            return Err(self.err(&field, format!("no value: expected {}", dim.describe())));
        };
        let Some(source) = source else {
            return Err(self.err(&field, "missing `source`: every parameter must say where it comes from"));
        };
        if !number.is_finite() || number < 0.0 {
            return Err(self.err(&field, format!("{number} is not a finite non-negative number")));
        }
        let mut si = number * factor;
        if dim == Dim::Power && (unit == "ma" || unit == "ua") {
            let Some(v) = self.voltage_v else {
                return Err(self.err(&field, "a current needs `voltage` to be set"));
            };
            si *= v;
        }
        let (limit, what) = match dim {
            Dim::Time => (MAX_DURATION_S, "longer than a year"),
            Dim::Power => (MAX_POWER_W, "more than 1 kW"),
            Dim::Rate => (1e12, "faster than 1 Tbit/s"),
            Dim::Voltage => (1e3, "more than 1 kV"),
            Dim::EnergyPerBit => (1e-3, "more than 1 mJ per bit"),
        };
        if si > limit {
            return Err(self.err(&field, format!("{number} {unit} is {what}")));
        }
        let shown_unit = match unit {
            "w" => "W",
            "mw" => "mW",
            "ma" => "mA",
            "ua" => "uA",
            "v" => "V",
            "kbps" => "kbit/s",
            "mbps" => "Mbit/s",
            "bps" => "bit/s",
            "mw_per_mbps" => "mW/Mbps",
            other => other,
        };
        self.params.push(ParamInfo { field, value: format!("{number} {shown_unit}"), source });
        Ok(Some(si))
    }

    fn required(&mut self, table: &Table, prefix: &str, key: &str, dim: Dim) -> Result<f64, ProfileError> {
        self.param(table, prefix, key, dim)?
            .ok_or_else(|| self.err(&join(prefix, key), format!("missing: expected {} with a source", dim.describe())))
    }

    fn positive(&self, field: &str, v: f64) -> Result<f64, ProfileError> {
        if v > 0.0 { Ok(v) } else { Err(self.err(field, "must be greater than zero")) }
    }

    /// `power`, optionally with `ping_on`, `ping_period`, `ping_power`:
    /// returns the average power of a duty-cycled state. The phase of the
    /// cycle is unknown, so the average is the honest figure.
    fn duty_cycled_power(&mut self, table: &Table, prefix: &str) -> Result<f64, ProfileError> {
        let base = self.required(table, prefix, "power", Dim::Power)?;
        let on = self.param(table, prefix, "ping_on", Dim::Time)?;
        let period = self.param(table, prefix, "ping_period", Dim::Time)?;
        let ping_power = self.param(table, prefix, "ping_power", Dim::Power)?;
        match (on, period, ping_power) {
            (None, None, None) => Ok(base),
            (Some(on), Some(period), Some(ping_power)) => {
                let period = self.positive(&join(prefix, "ping_period"), period)?;
                if on > period {
                    return Err(self.err(&join(prefix, "ping_on"), "longer than ping_period"));
                }
                Ok(base + (ping_power - base) * on / period)
            }
            _ => Err(self.err(prefix, "ping_on, ping_period and ping_power go together")),
        }
    }

    fn promotion(&mut self, table: &Table, prefix: &str) -> Result<Promotion, ProfileError> {
        self.check_keys(table, prefix, &["duration", "power"])?;
        Ok(Promotion {
            duration_s: self.required(table, prefix, "duration", Dim::Time)?,
            power_w: self.required(table, prefix, "power", Dim::Power)?,
        })
    }

    fn profile_from(&mut self, root: &Table) -> Result<Profile, ProfileError> {
        self.check_keys(
            root,
            "",
            &[
                "name",
                "description",
                "device_class",
                "voltage",
                "promotion",
                "connected",
                "tail",
                "idle",
                "link",
                "release_assistance",
            ],
        )?;
        let name = self.string(root, "", "name")?.ok_or_else(|| self.err("name", "missing"))?;
        if name.trim().is_empty() || name.len() > 64 {
            return Err(self.err("name", "must be 1 to 64 characters"));
        }
        let description = self.string(root, "", "description")?.unwrap_or_default();
        let device_class = self.string(root, "", "device_class")?.unwrap_or_default();
        let voltage_v = self.required(root, "", "voltage", Dim::Voltage)?;
        if voltage_v < 0.1 {
            return Err(self.err("voltage", "below 0.1 V"));
        }
        self.voltage_v = Some(voltage_v);

        let promotion_table = self.required_table(root, "", "promotion")?;
        let promotion = self.promotion(promotion_table, "promotion")?;

        let c = self.required_table(root, "", "connected")?;
        self.check_keys(c, "connected", &["power", "inactivity", "up_energy", "down_energy", "tx_power", "rx_power"])?;
        let connected = Connected {
            power_w: self.required(c, "connected", "power", Dim::Power)?,
            inactivity_s: self.required(c, "connected", "inactivity", Dim::Time)?,
            up_j_per_bit: self.param(c, "connected", "up_energy", Dim::EnergyPerBit)?.unwrap_or(0.0),
            down_j_per_bit: self.param(c, "connected", "down_energy", Dim::EnergyPerBit)?.unwrap_or(0.0),
            tx_power_w: self.param(c, "connected", "tx_power", Dim::Power)?,
            rx_power_w: self.param(c, "connected", "rx_power", Dim::Power)?,
        };

        let mut tail = Vec::new();
        match root.get("tail") {
            None => {}
            Some(Value::Array(stages)) => {
                if stages.len() > 16 {
                    return Err(self.err("tail", "more than 16 stages"));
                }
                for (i, stage) in stages.iter().enumerate() {
                    let prefix = format!("tail[{i}]");
                    let Value::Table(t) = stage else {
                        return Err(self.err(&prefix, "expected a table ([[tail]])"));
                    };
                    self.check_keys(
                        t,
                        &prefix,
                        &["name", "duration", "power", "ping_on", "ping_period", "ping_power", "radio_on", "promotion"],
                    )?;
                    let stage_name =
                        self.string(t, &prefix, "name")?.ok_or_else(|| self.err(&join(&prefix, "name"), "missing"))?;
                    if stage_name.trim().is_empty() || stage_name.len() > 32 {
                        return Err(self.err(&join(&prefix, "name"), "must be 1 to 32 characters"));
                    }
                    if ["idle", "promotion", "connected"].contains(&stage_name.as_str())
                        || tail.iter().any(|s: &TailStage| s.name == stage_name)
                    {
                        return Err(self.err(&join(&prefix, "name"), format!("`{stage_name}` is already a state name")));
                    }
                    let prefix = format!("tail[{i}] ({stage_name})");
                    let duration_s = self.required(t, &prefix, "duration", Dim::Time)?;
                    let power_w = self.duty_cycled_power(t, &prefix)?;
                    let radio_on = match t.get("radio_on") {
                        None => true,
                        Some(Value::Boolean(b)) => *b,
                        Some(_) => {
                            return Err(self.err(&join(&prefix, "radio_on"), "expected true or false"));
                        }
                    };
                    let promotion = match self.table(t, &prefix, "promotion")? {
                        None => None,
                        Some(p) => Some(self.promotion(p, &join(&prefix, "promotion"))?),
                    };
                    tail.push(TailStage { name: stage_name, duration_s, power_w, radio_on, promotion });
                }
            }
            Some(_) => return Err(self.err("tail", "expected an array of tables ([[tail]])")),
        }
        // Once released, the connection stays released until the next promotion.
        if let Some(pos) = tail.iter().position(|s| !s.radio_on)
            && let Some(bad) = tail.iter().skip(pos).find(|s| s.radio_on)
        {
            return Err(self.err(
                &format!("tail ({})", bad.name),
                "a stage with radio_on = true cannot follow a released (radio_on = false) stage",
            ));
        }

        let idle = self.required_table(root, "", "idle")?;
        self.check_keys(idle, "idle", &["name", "power", "ping_on", "ping_period", "ping_power"])?;
        let idle_name = self.string(idle, "idle", "name")?.unwrap_or_else(|| "idle".to_string());
        let idle_power_w = self.duty_cycled_power(idle, "idle")?;

        let l = self.required_table(root, "", "link")?;
        self.check_keys(l, "link", &["up", "down", "rtt", "burst_gap"])?;
        let up = self.required(l, "link", "up", Dim::Rate)?;
        let down = self.required(l, "link", "down", Dim::Rate)?;
        for (field, rate) in [("link.up", up), ("link.down", down)] {
            if rate < 1.0 {
                return Err(self.err(field, "below 1 bit/s"));
            }
        }
        let link = Link {
            up_bps: up,
            down_bps: down,
            rtt_s: self.required(l, "link", "rtt", Dim::Time)?,
            burst_gap_s: self.required(l, "link", "burst_gap", Dim::Time)?,
        };

        let release_assistance = match self.table(root, "", "release_assistance")? {
            None => None,
            Some(t) => {
                self.check_keys(t, "release_assistance", &["release_after"])?;
                Some(ReleaseAssistance {
                    release_after_s: self.required(t, "release_assistance", "release_after", Dim::Time)?,
                })
            }
        };

        Ok(Profile {
            name,
            description,
            device_class,
            voltage_v,
            promotion,
            connected,
            tail,
            idle_power_w,
            idle_name,
            link,
            release_assistance,
            params: std::mem::take(&mut self.params),
        })
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() { key.to_string() } else { format!("{prefix}.{key}") }
}

/// Text for `wiretax radio list`: every built-in profile, every parameter with its source.
pub fn list_text() -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for p in Profile::builtins() {
        if p.device_class.is_empty() {
            let _ = writeln!(out, "{} -- {}", p.name, p.description);
        } else {
            let _ = writeln!(out, "{}: {} -- {}", p.name, p.device_class, p.description);
        }
        let width = p.params.iter().map(|i| i.field.len()).max().unwrap_or(0);
        for info in &p.params {
            let _ = writeln!(out, "  {:width$}  {:>14}  {}", info.field, info.value, info.source, width = width);
        }
        let _ = writeln!(
            out,
            "  derived: connected tail {:.3} s, idle average {:.6} W, promotion {:.6} J\n",
            p.connected_tail_s(),
            p.idle_power_w,
            p.promotion.duration_s * p.promotion.power_w
        );
    }
    out.push_str("A user profile with the same fields loads with --radio FILE.\n");
    out
}

#[cfg(test)]
mod tests;
