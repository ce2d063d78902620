//! wiretax command line: arguments in, library calls, exit codes out.

use clap::{Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use wiretax::analyze::{Options, analyze_all, expand_inputs};
use wiretax::dissect;
use wiretax::report::{Report, table};

#[derive(Parser)]
#[command(name = "wiretax", version, about = "What IoT protocols cost on the wire, in the radio and on the bill")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
}

#[derive(Subcommand)]
enum Cmd {
    /// Account for every byte of one or more captures (pcap/pcapng files or directories).
    Analyze {
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        /// Write the report here instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// SSLKEYLOGFILE (NSS key log) with TLS/DTLS secrets: decrypt and dissect what TLS carries.
        #[arg(long)]
        keylog: Option<PathBuf>,
        /// Force a protocol on a port, as Wireshark's Decode As: PORT=PROTO (http, tls, mqtt, coap, dns, http2).
        #[arg(long = "decode-as", value_name = "PORT=PROTO")]
        decode_as: Vec<String>,
        /// An idle UDP flow ends after this many seconds.
        #[arg(long, default_value_t = 300.0)]
        udp_timeout: f64,
        /// Most out-of-order bytes held per TCP direction while waiting for a missing segment.
        #[arg(long, default_value_t = 1 << 20)]
        reassembly_cap: usize,
        /// Most flows alive at once (memory bound); past it the flow due to time out first is finished early.
        #[arg(long, default_value_t = wiretax::flow::DEFAULT_MAX_LIVE_FLOWS)]
        max_live_flows: usize,
        /// Most flows listed in the report, the first in capture order (all are counted).
        #[arg(long, default_value_t = 10_000)]
        max_flows: usize,
        /// Most exchanges listed in the report, the first in capture order (all are counted).
        #[arg(long, default_value_t = 10_000)]
        max_exchanges: usize,
        /// Flows shown by the table format.
        #[arg(long, default_value_t = 10)]
        top: usize,
        /// Cores to use (default: all); each runs three worker threads. Results do not depend on it.
        #[arg(long, short = 'j')]
        jobs: Option<usize>,
        #[command(flatten)]
        radio: Box<RadioArgs>,
    },
    /// Render a report saved with `analyze --format json`, exactly as `analyze` would have.
    Report {
        saved: PathBuf,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        /// Write the report here instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Flows shown by the table format.
        #[arg(long, default_value_t = 10)]
        top: usize,
    },
    /// Radio profiles.
    Radio {
        #[command(subcommand)]
        cmd: RadioCmd,
    },
}

#[derive(Subcommand)]
enum RadioCmd {
    /// Every built-in profile with each parameter and its source.
    List,
}

#[derive(clap::Args)]
struct RadioArgs {
    /// Radio profile: a built-in name (lte, umts, wifi, ltem, nbiot) or a TOML file.
    #[arg(long, default_value = "lte")]
    radio: String,
    /// `captured`: the capture's timestamps drive the radio; `link`: each exchange is re-timed on the profile's link.
    #[arg(long, value_enum, default_value = "captured")]
    timing: wiretax::radio::Timing,
    /// Battery capacity for battery life, e.g. 3000mAh.
    #[arg(long)]
    battery: Option<String>,
    /// What the rest of the device draws asleep, e.g. 5uA.
    #[arg(long, default_value = "0uA")]
    sleep_current: String,
    /// Use the profile's release assistance (RAI) after each burst.
    #[arg(long)]
    rai: bool,
    /// Devices in the fleet, for fleet cost: multiplies a one-device capture; scales the devices a
    /// capture of several holds (default: the devices seen).
    #[arg(long)]
    devices: Option<u64>,
    /// Re-time each device's cycles to this period (e.g. 30s) and project its day from them.
    #[arg(long)]
    interval: Option<String>,
    /// Bytes billed: `ip` (link headers excluded, as operators bill) or `link`.
    #[arg(long, value_enum, default_value = "ip")]
    bill: Bill,
    /// What tells devices apart: the address on the local side of their flows (`ip`).
    #[arg(long, value_enum, default_value = "ip")]
    device_key: DeviceKey,
    /// A CSV file of `key,name` lines naming devices (key: the device's id, its address).
    #[arg(long)]
    device_map: Option<PathBuf>,
    /// Most devices listed in the report, the first seen (all are counted in the fleet).
    #[arg(long, default_value_t = 10_000)]
    max_devices: usize,
    /// Price of one MB of data (MB = 10^6 bytes unless --binary-units).
    #[arg(long)]
    price_per_mb: Option<f64>,
    #[arg(long, default_value = "EUR")]
    currency: String,
    /// Binary units: prices per MiB (2^20 bytes), bytes in KiB, MiB, GiB.
    #[arg(long)]
    binary_units: bool,
    /// Run no radio model.
    #[arg(long)]
    no_radio: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum Bill {
    Ip,
    Link,
}

#[derive(Clone, Copy, ValueEnum)]
enum DeviceKey {
    Ip,
}

/// `key,name` lines; blank lines and lines starting with `#` are skipped.
fn read_device_map(path: &std::path::Path) -> Result<std::collections::HashMap<String, String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("--device-map {}: {e}", path.display()))?;
    let mut names = std::collections::HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, name)) = line.split_once(',') else {
            return Err(format!("--device-map {}: line {}: expected key,name", path.display(), n + 1));
        };
        let key = key.trim().trim_start_matches("ip:");
        // Addresses as the report writes them (`::ffff:10.0.0.1` and `10.0.0.1` alike).
        let key = key.parse::<std::net::IpAddr>().map(|a| a.to_canonical().to_string()).unwrap_or(key.to_string());
        names.insert(key, name.trim().to_string());
    }
    Ok(names)
}

impl RadioArgs {
    fn apply(&self, opts: &mut Options) -> Result<(), String> {
        use wiretax::radio::{Profile, RadioOptions, parse_battery_mah, parse_current_ua, parse_interval_s};
        let DeviceKey::Ip = self.device_key;
        opts.max_devices = self.max_devices;
        if let Some(path) = &self.device_map {
            opts.device_names = read_device_map(path)?;
        }
        opts.cost = wiretax::radio::CostOptions {
            devices: self.devices.unwrap_or(1).max(1),
            devices_given: self.devices.is_some(),
            bill_link: matches!(self.bill, Bill::Link),
            price_per_mb: self.price_per_mb,
            currency: self.currency.clone(),
            binary_units: self.binary_units,
        };
        if self.no_radio {
            opts.radio = None;
            return Ok(());
        }
        let profile = Profile::resolve(&self.radio).map_err(|e| format!("--radio {}: {e}", self.radio))?;
        let battery_mah = match &self.battery {
            Some(b) => Some(parse_battery_mah(b).map_err(|e| format!("--battery: {e}"))?),
            None => None,
        };
        let sleep_current_ua = parse_current_ua(&self.sleep_current).map_err(|e| format!("--sleep-current: {e}"))?;
        let interval_s = match &self.interval {
            Some(i) => Some(parse_interval_s(i).map_err(|e| format!("--interval: {e}"))?),
            None => None,
        };
        opts.radio = Some((
            profile,
            RadioOptions {
                timing: self.timing,
                battery_mah,
                sleep_current_ua,
                release_assistance: self.rai,
                interval_s,
            },
        ));
        Ok(())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Radio { cmd: RadioCmd::List } => {
            print!("{}", wiretax::radio::list_text());
            ExitCode::SUCCESS
        }
        Cmd::Report { saved, format, output, top } => {
            let report = match std::fs::File::open(&saved)
                .map_err(|e| e.to_string())
                .and_then(|f| Report::read(std::io::BufReader::new(f)).map_err(|e| e.to_string()))
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("wiretax: {}: {e}", saved.display());
                    return ExitCode::from(2);
                }
            };
            emit(&report, output.as_deref(), format, top)
        }
        Cmd::Analyze {
            inputs,
            format,
            output,
            keylog,
            decode_as,
            udp_timeout,
            reassembly_cap,
            max_live_flows,
            max_flows,
            max_exchanges,
            top,
            jobs,
            radio,
        } => {
            let mut opts = Options::new();
            if let Err(e) = radio.apply(&mut opts) {
                eprintln!("wiretax: {e}");
                return ExitCode::from(2);
            }
            opts.max_flows = max_flows;
            opts.max_exchanges = max_exchanges;
            opts.flow.udp_idle_ns = (udp_timeout * 1e9) as i64;
            opts.flow.reassembly_cap = reassembly_cap;
            opts.flow.max_live_flows = max_live_flows.max(1);
            for d in &decode_as {
                let Some((port, proto)) = d.split_once('=') else {
                    eprintln!("wiretax: --decode-as wants PORT=PROTO, got {d:?}");
                    return ExitCode::from(2);
                };
                let (Ok(port), Some(p)) = (port.trim().parse::<u16>(), dissect::by_name(proto.trim())) else {
                    eprintln!("wiretax: --decode-as {d:?}: unknown port or protocol");
                    return ExitCode::from(2);
                };
                opts.flow.decode_as.push((port, p));
            }
            let keylog = match keylog {
                None => None,
                Some(path) => match wiretax::keylog::KeyLog::load(&path) {
                    Ok(k) => {
                        if k.bad_lines() > 0 {
                            eprintln!(
                                "wiretax: {}: {} lines are not key log entries and were skipped",
                                path.display(),
                                k.bad_lines()
                            );
                        }
                        Some(Arc::new(k))
                    }
                    Err(e) => {
                        eprintln!("wiretax: {e}");
                        return ExitCode::from(2);
                    }
                },
            };
            opts.flow.dissect = Arc::new(dissect::Config { keylog });
            opts.progress = progress_bar();
            let files = expand_inputs(&inputs);
            if files.is_empty() {
                eprintln!(
                    "wiretax: no capture files in {}",
                    inputs.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
                );
                return ExitCode::from(1);
            }
            let jobs =
                jobs.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)).max(1);
            let mut reports = Vec::new();
            let mut failed = Vec::new();
            for result in analyze_all(&files, &opts, jobs) {
                match result {
                    Ok(r) => {
                        if let Some(e) = &r.notes.read_error {
                            eprintln!("wiretax: {e}; the report covers the {} frames before it", r.totals.frames);
                        }
                        reports.push(r)
                    }
                    Err(e) => {
                        // The error names the input, its record and offset.
                        eprintln!("wiretax: {e}");
                        failed.push(e.to_string());
                    }
                }
            }
            if reports.is_empty() {
                return ExitCode::from(1);
            }
            let report = Report::combine(reports, failed);
            emit(&report, output.as_deref(), format, top)
        }
    }
}

/// Writes the report to `output` or standard output.
fn emit(report: &Report, output: Option<&std::path::Path>, format: Format, top: usize) -> ExitCode {
    // Written through a concrete writer, not a `dyn Write`: the JSON
    // writer makes millions of small writes, which then inline.
    let written = match output {
        Some(p) => match std::fs::File::create(p) {
            Ok(f) => write_report(std::io::BufWriter::new(f), report, format, top),
            Err(e) => {
                eprintln!("wiretax: cannot write {}: {e}", p.display());
                return ExitCode::from(1);
            }
        },
        None => write_report(std::io::BufWriter::new(std::io::stdout().lock()), report, format, top),
    };
    if let Err(e) = written {
        eprintln!("wiretax: cannot write the report: {e}");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

/// Writes the report. JSON is streamed out: a report is never held twice in memory.
fn write_report(mut out: impl Write, report: &Report, format: Format, top: usize) -> std::io::Result<()> {
    match format {
        Format::Json => wiretax::report::json::write_pretty(&mut out, report)
            .map_err(std::io::Error::from)
            .and_then(|_| out.write_all(b"\n"))?,
        Format::Table => out.write_all(table::render(report, top).as_bytes())?,
    }
    out.flush()
}

/// A progress bar on stderr for inputs that take more than a second; none
/// when stderr is not a terminal.
fn progress_bar() -> Option<wiretax::analyze::Progress> {
    use indicatif::{ProgressBar, ProgressStyle};
    use std::io::IsTerminal;
    use std::sync::Mutex;
    use std::time::Instant;
    if !std::io::stderr().is_terminal() {
        return None;
    }
    struct State {
        bar: Option<ProgressBar>,
        started: Instant,
        file: PathBuf,
    }
    let state = Mutex::new(State { bar: None, started: Instant::now(), file: PathBuf::new() });
    Some(Arc::new(move |file: &std::path::Path, done: u64, total: u64| {
        let Ok(mut st) = state.lock() else { return };
        if st.file != file {
            if let Some(b) = st.bar.take() {
                b.finish_and_clear();
            }
            st.file = file.to_path_buf();
            st.started = Instant::now();
        }
        if st.bar.is_none() && done < total && st.started.elapsed().as_secs_f64() > 1.0 {
            let b = ProgressBar::new(total);
            if let Ok(style) =
                ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            {
                b.set_style(style.progress_chars("=> "));
            }
            b.set_message(file.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default());
            st.bar = Some(b);
        }
        if let Some(b) = &st.bar {
            b.set_position(done);
            if done >= total {
                b.finish_and_clear();
                st.bar = None;
            }
        }
    }))
}
