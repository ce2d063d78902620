//! wiretax command line: arguments in, library calls, exit codes out.

use clap::{Parser, Subcommand, ValueEnum};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use wiretax::analyze::{Options, analyze_all};
use wiretax::capture::inputs;
use wiretax::dissect;
use wiretax::report::{InputSummary, Report, table};

/// Exit statuses (also in `analyze --help` and the README).
mod exit {
    /// No report: nothing could be read, or the report could not be written.
    pub const NO_REPORT: u8 = 1;
    /// Bad arguments or options (clap's own usage errors are 2 too).
    pub const USAGE: u8 = 2;
    /// A report was written, but some inputs could not be read (each is
    /// listed in the report's `inputs` with its `error`).
    pub const SOME_INPUTS_FAILED: u8 = 3;
}

const ANALYZE_EXIT_STATUS: &str = "Exit status: 0 every input was read; 1 no report (no input could be read, \
or the report could not be written); 2 bad arguments; 3 a report was written but some inputs could not be \
read (each is listed in the report's inputs with its error).";

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
    /// One self-contained page with charts (no script, nothing fetched).
    Html,
    /// Markdown; its charts are SVG files beside it (needs -o).
    Md,
}

#[derive(Clone, Copy, ValueEnum)]
enum WhatifFormat {
    Table,
    Json,
}

#[derive(Subcommand)]
enum Cmd {
    /// Account for every byte of one or more captures (pcap/pcapng files, gzip- or zstd-compressed or not;
    /// directories; `-` for standard input).
    #[command(after_help = ANALYZE_EXIT_STATUS)]
    Analyze {
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// Re-time each device's cycles to this period (e.g. 30s) and project its day from them.
        #[arg(long)]
        interval: Option<String>,
        /// Read the captures in the subdirectories of directories named too.
        #[arg(short, long)]
        recursive: bool,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        /// Write the report here instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// SSLKEYLOGFILE (NSS key log) with TLS/DTLS secrets: decrypt and dissect what TLS carries. May be
        /// given several times. Secrets a pcapng capture carries (Decryption Secrets Blocks) are used too.
        #[arg(long)]
        keylog: Vec<PathBuf>,
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
        /// Also write flows, exchanges, findings and time bins as Parquet and CSV: DIR/TABLE/INPUT.parquet (docs/EXPORT.md).
        #[arg(long, value_name = "DIR")]
        export: Option<PathBuf>,
        /// Cores to use (default: all); each runs three worker threads. Results do not depend on it.
        #[arg(long, short = 'j')]
        jobs: Option<usize>,
        /// Settings file (TOML): `[findings]` sets the findings' thresholds (docs/REPORT.md).
        #[arg(long)]
        config: Option<PathBuf>,
        /// The shortest NAT or proxy idle timeout on the device's path, seconds (default 60: a common NAT
        /// mapping timeout); heartbeats belong at half of it. Overrides `[findings] nat_timeout_s`.
        #[arg(long, value_name = "SECONDS")]
        nat_timeout: Option<f64>,
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
        /// Also write the report's tables as Parquet and CSV: DIR/TABLE/INPUT.parquet (docs/EXPORT.md).
        #[arg(long, value_name = "DIR")]
        export: Option<PathBuf>,
    },
    /// Compare BEFORE and AFTER (each a capture, a directory of captures or a
    /// saved JSON report) per message and per device-day: did the change pay off?
    Compare {
        before: PathBuf,
        after: PathBuf,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        /// Write the comparison here instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// The message to compare by, 'KIND VERB [NAME]' (e.g. 'http POST /readings', 'mqtt PUBLISH fleet/+/gps');
        /// once for both sides or twice, BEFORE's then AFTER's. Default: each side's most frequent.
        #[arg(long)]
        unit: Vec<String>,
        /// Exit with status 1 when AFTER saves less than this share of BEFORE's bytes per device-day, or when a
        /// side has no per-day projection: a percentage (30%) or a fraction from 0 to 1 (0.3).
        #[arg(long, value_name = "PERCENT")]
        require_saving: Option<String>,
        /// SSLKEYLOGFILE (NSS key log) for the captures of either side; may be given several times.
        #[arg(long)]
        keylog: Vec<PathBuf>,
        /// Re-time each device's cycles to this period (e.g. 30s) and project its day from them, as
        /// `analyze --interval` (captures only: a saved report keeps its own projection).
        #[arg(long)]
        interval: Option<String>,
        #[arg(long, short = 'j')]
        jobs: Option<usize>,
        #[command(flatten)]
        radio: Box<RadioArgs>,
    },
    /// Watch a device's overhead as it talks: an interface (`-i`, libpcap) or a capture stream (`-`).
    Live {
        #[command(flatten)]
        live: wiretax::live::LiveArgs,
        /// The final report's format; `json` also makes the rolling view JSON Lines.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        /// Write the final report here instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Flows shown by the view and the table format.
        #[arg(long, default_value_t = 10)]
        top: usize,
        /// SSLKEYLOGFILE (NSS key log) with TLS/DTLS secrets; may be given several times.
        #[arg(long)]
        keylog: Vec<PathBuf>,
        /// Force a protocol on a port, as Wireshark's Decode As: PORT=PROTO.
        #[arg(long = "decode-as", value_name = "PORT=PROTO")]
        decode_as: Vec<String>,
        #[command(flatten)]
        radio: Box<RadioArgs>,
    },
    /// Carry a capture's application messages (their sizes, directions and times) by other protocol
    /// stacks and compare their bytes, radio time, charge and cost per day with the capture's own.
    Whatif {
        capture: PathBuf,
        /// A stack: http-new, https-new, https-resumed, http-keepalive, https-keepalive, http2, mqtt, mqtt-tls,
        /// mqtt-ws, coap-non, coap-con, coap-dtls. May be given several times.
        #[arg(long = "as", value_name = "STACK", required = true)]
        stacks: Vec<String>,
        /// Re-time the messages: a cycle every period (e.g. 30s).
        #[arg(long)]
        interval: Option<String>,
        /// TLS version of the stacks over TLS.
        #[arg(long, default_value = "1.2", value_parser = ["1.2", "1.3"])]
        tls: String,
        /// QoS of the MQTT stacks.
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
        qos: u8,
        /// Keep-alive of the MQTT stacks (PINGREQ once a period in which the client sent nothing).
        #[arg(long, default_value = "60s")]
        keepalive: String,
        /// How coap-dtls authenticates: a pre-shared key or certificates.
        #[arg(long, default_value = "psk", value_parser = ["psk", "cert"])]
        dtls: String,
        #[arg(long, value_enum, default_value = "table")]
        format: WhatifFormat,
        /// Write the result here instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// SSLKEYLOGFILE with the capture's TLS secrets: the messages' true sizes (without it, their encrypted sizes).
        #[arg(long)]
        keylog: Vec<PathBuf>,
        /// Force a protocol on a port, as Wireshark's Decode As: PORT=PROTO.
        #[arg(long = "decode-as", value_name = "PORT=PROTO")]
        decode_as: Vec<String>,
        #[command(flatten)]
        radio: Box<RadioArgs>,
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
    /// `--interval` of `analyze` and `compare` (`live` has an `--interval`
    /// of its own: how often it redraws).
    #[arg(skip)]
    interval: Option<String>,
    /// Bytes billed: `ip` (link headers excluded, as operators bill) or `link`.
    #[arg(long, value_enum, default_value = "ip")]
    bill: Bill,
    /// What tells devices apart: the address on the local side of their flows
    /// (`ip`), its MAC (`mac`: Ethernet, Wi-Fi), the frame's 802.1Q VLAN id
    /// (`vlan`) or the GTP-U tunnel of its packets (`teid`: a mobile core).
    /// Frames without the key keep their address.
    #[arg(long, value_enum, default_value = "ip")]
    device_key: DeviceKey,
    /// A CSV file of `key,name` lines naming devices (key: the device's id or
    /// key as the report writes it: `10.0.0.2`, `mac:02:00:00:00:00:01`,
    /// `vlan:100`, `teid:0x1234`).
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
    Mac,
    Vlan,
    Teid,
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
        // Keys as the report writes ids (`::ffff:10.0.0.1` and `ip:10.0.0.1` as `10.0.0.1`).
        names.insert(wiretax::flow::canonical_map_key(key), name.trim().to_string());
    }
    Ok(names)
}

impl RadioArgs {
    fn apply(&self, opts: &mut Options) -> Result<(), String> {
        use wiretax::radio::{Profile, RadioOptions, parse_battery_mah, parse_current_ua, parse_interval_s};
        opts.flow.device_key = match self.device_key {
            DeviceKey::Ip => wiretax::flow::DeviceKey::Ip,
            DeviceKey::Mac => wiretax::flow::DeviceKey::Mac,
            DeviceKey::Vlan => wiretax::flow::DeviceKey::Vlan,
            DeviceKey::Teid => wiretax::flow::DeviceKey::Teid,
        };
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
        Cmd::Live { live, format, output, top, keylog, decode_as, radio } => {
            let mut opts = Options::new();
            if let Err(e) = dissection_options(&mut opts, &keylog, &decode_as) {
                eprintln!("wiretax: {e}");
                return ExitCode::from(exit::USAGE);
            }
            let out = wiretax::live::Output { json: matches!(format, Format::Json), to_stdout: output.is_none(), top };
            let out_file = match open_output(&output) {
                Ok(f) => f,
                Err(code) => return code,
            };
            match radio.apply(&mut opts).and_then(|_| wiretax::live::run(&live, &opts, out)) {
                Ok(Some(report)) => match emit(report, out_file, output.as_deref(), format, top) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(code) => code,
                },
                Ok(None) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("wiretax: {e}");
                    ExitCode::from(exit::USAGE)
                }
            }
        }
        Cmd::Whatif {
            capture,
            stacks,
            interval,
            tls,
            qos,
            keepalive,
            dtls,
            format,
            output,
            keylog,
            decode_as,
            mut radio,
        } => {
            use wiretax::whatif::stacks::{Request, Stack};
            let parsed = (|| -> Result<Request, String> {
                let stacks = stacks.iter().map(|s| Stack::parse(s)).collect::<Result<Vec<Stack>, String>>()?;
                let keepalive_s =
                    wiretax::radio::parse_interval_s(&keepalive).map_err(|e| format!("--keepalive: {e}"))?;
                let interval_s = match &interval {
                    Some(i) => Some(wiretax::radio::parse_interval_s(i).map_err(|e| format!("--interval: {e}"))?),
                    None => None,
                };
                Ok(Request {
                    stacks,
                    tls13: tls == "1.3",
                    qos,
                    keepalive_s,
                    dtls_certificate: dtls == "cert",
                    interval_s,
                })
            })();
            let request = match parsed {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("wiretax: {e}");
                    return ExitCode::from(exit::USAGE);
                }
            };
            radio.interval = interval;
            let mut opts = Options::new();
            if let Err(e) = radio.apply(&mut opts).and_then(|_| dissection_options(&mut opts, &keylog, &decode_as)) {
                eprintln!("wiretax: {e}");
                return ExitCode::from(exit::USAGE);
            }
            opts.whatif = Some(request);
            let jobs = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
            let report = match analyze_all(std::slice::from_ref(&capture), &opts, jobs).into_iter().next() {
                Some(Ok(r)) => {
                    tell_input_damage(&r);
                    r.whatif
                }
                Some(Err(e)) => {
                    eprintln!("wiretax: {e}");
                    return ExitCode::from(exit::NO_REPORT);
                }
                None => None,
            };
            let Some(report) = report else {
                eprintln!("wiretax: {}: nothing to re-simulate", capture.display());
                return ExitCode::from(exit::NO_REPORT);
            };
            let text = match format {
                WhatifFormat::Table => wiretax::report::whatif_view::render_table(&report),
                WhatifFormat::Json => match serde_json::to_string_pretty(&report) {
                    Ok(s) => s + "\n",
                    Err(e) => {
                        eprintln!("wiretax: {e}");
                        return ExitCode::from(exit::NO_REPORT);
                    }
                },
            };
            let written = match &output {
                Some(p) => std::fs::write(p, text),
                None => std::io::stdout().lock().write_all(text.as_bytes()),
            };
            match written {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    eprintln!("wiretax: cannot write the result: {e}");
                    ExitCode::from(exit::NO_REPORT)
                }
                _ => ExitCode::SUCCESS,
            }
        }
        Cmd::Compare { before, after, format, output, unit, require_saving, keylog, interval, jobs, mut radio } => {
            radio.interval = interval;
            compare(CompareArgs { before, after, format, output, unit, require_saving, keylog, jobs, radio })
        }
        Cmd::Report { saved, format, output, top, export } => {
            let report = match std::fs::File::open(&saved)
                .map_err(|e| e.to_string())
                .and_then(|f| Report::read(std::io::BufReader::new(f)))
            {
                Ok(r) => r,
                Err(e) => {
                    // As analyze's input that cannot be read: no report.
                    eprintln!("wiretax: {}: {e}", saved.display());
                    return ExitCode::from(exit::NO_REPORT);
                }
            };
            let out_file = match open_output(&output) {
                Ok(f) => f,
                Err(code) => return code,
            };
            if let Some(dir) = &export {
                // One input: its name; several: the saved report's (each row says its input).
                let name = match report.inputs.as_slice() {
                    [one] => wiretax::report::export::input_name(&one.input),
                    _ => wiretax::report::export::input_name(&saved.display().to_string()),
                };
                if let Err(e) = wiretax::report::export::write(&report, dir, &name) {
                    eprintln!("wiretax: --export: {e}");
                    return ExitCode::from(exit::NO_REPORT);
                }
            }
            match emit(report, out_file, output.as_deref(), format, top) {
                Ok(()) => ExitCode::SUCCESS,
                Err(code) => code,
            }
        }
        Cmd::Analyze {
            inputs,
            interval,
            recursive,
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
            export,
            jobs,
            config,
            nat_timeout,
            mut radio,
        } => {
            radio.interval = interval;
            let mut opts = Options::new();
            if let Some(path) = &config {
                match std::fs::read_to_string(path)
                    .map_err(|e| e.to_string())
                    .and_then(|t| wiretax::findings::Thresholds::from_config(&t))
                {
                    Ok(t) => opts.findings = t,
                    Err(e) => {
                        eprintln!("wiretax: --config {}: {e}", path.display());
                        return ExitCode::from(2);
                    }
                }
            }
            if let Some(t) = nat_timeout {
                if !(t.is_finite() && t > 0.0) {
                    eprintln!("wiretax: --nat-timeout {t}: a number of seconds above 0");
                    return ExitCode::from(exit::USAGE);
                }
                opts.findings.nat_timeout_s = t;
            }
            if let Err(e) = radio.apply(&mut opts) {
                eprintln!("wiretax: {e}");
                return ExitCode::from(exit::USAGE);
            }
            opts.max_flows = max_flows;
            opts.max_exchanges = max_exchanges;
            opts.flow.udp_idle_ns = (udp_timeout * 1e9) as i64;
            opts.flow.reassembly_cap = reassembly_cap;
            opts.flow.max_live_flows = max_live_flows.max(1);
            if let Err(e) = dissection_options(&mut opts, &keylog, &decode_as) {
                eprintln!("wiretax: {e}");
                return ExitCode::from(exit::USAGE);
            }
            opts.progress = progress_bar();
            let output_existed = output.as_ref().is_some_and(|p| p.exists());
            let out_file = match open_output(&output) {
                Ok(f) => f,
                Err(code) => return code,
            };
            if inputs.iter().any(|p| p.as_os_str() == wiretax::capture::STDIN_PATH) && std::io::stdin().is_terminal() {
                eprintln!("wiretax: `-` reads a capture from standard input, which is a terminal: pipe one in");
                return ExitCode::from(exit::USAGE);
            }
            let expanded = inputs::expand(&inputs, recursive);
            tell_expansion(&expanded);
            let files = expanded.files;
            if files.is_empty() {
                eprintln!(
                    "wiretax: no capture files in {}",
                    inputs.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
                );
                remove_unwritten(&output, output_existed);
                return ExitCode::from(exit::NO_REPORT);
            }
            let jobs =
                jobs.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)).max(1);
            let mut reports = Vec::new();
            let mut failed = Vec::new();
            let mut failed_at = Vec::new();
            for (position, result) in analyze_all(&files, &opts, jobs).into_iter().enumerate() {
                match result {
                    Ok(r) => {
                        tell_input_damage(&r);
                        reports.push(r)
                    }
                    Err(e) => {
                        // The error names the input, its record and offset.
                        eprintln!("wiretax: {e}");
                        failed.push(e.to_string());
                        failed_at.push((position, e));
                    }
                }
            }
            if reports.is_empty() {
                remove_unwritten(&output, output_existed);
                return ExitCode::from(exit::NO_REPORT);
            }
            if let Some(dir) = &export
                && let Err(e) = export_inputs(&reports, dir)
            {
                eprintln!("wiretax: --export: {e}");
                return ExitCode::from(exit::NO_REPORT);
            }
            let mut report = Report::combine(reports, failed);
            // Every input is listed where it was named, read or not.
            for (position, e) in failed_at {
                let at = position.min(report.inputs.len());
                report.inputs.insert(at, InputSummary::failed(e.input.display().to_string(), e.cause()));
            }
            let some_failed = report.inputs.iter().any(|i| i.error.is_some());
            if let Err(code) = emit(report, out_file, output.as_deref(), format, top) {
                return code;
            }
            if some_failed {
                return ExitCode::from(exit::SOME_INPUTS_FAILED);
            }
            ExitCode::SUCCESS
        }
    }
}

/// Writes each input's tables under `dir`, named after the input.
fn export_inputs(reports: &[wiretax::report::InputReport], dir: &std::path::Path) -> Result<(), String> {
    let mut used = std::collections::HashSet::new();
    for r in reports {
        let base = wiretax::report::export::input_name(&r.input);
        let mut name = base.clone();
        let mut k = 1;
        while !used.insert(name.clone()) {
            k += 1;
            name = format!("{base}-{k}");
        }
        // At the model's precision, as the JSON report and `report --export` have it.
        let one = Report::combine(vec![r.clone()], Vec::new()).into_model_precision()?;
        wiretax::report::export::write(&one, dir, &name)?;
    }
    Ok(())
}

struct CompareArgs {
    before: PathBuf,
    after: PathBuf,
    format: Format,
    output: Option<PathBuf>,
    unit: Vec<String>,
    require_saving: Option<String>,
    keylog: Vec<PathBuf>,
    jobs: Option<usize>,
    radio: Box<RadioArgs>,
}

/// One side of a comparison: a saved JSON report, or captures analysed now.
struct LoadedSide {
    report: Report,
    /// A saved report, not captures analysed now.
    saved: bool,
    /// Some of its inputs could not be read (each said on stderr).
    some_failed: bool,
}

/// Reads one side; Err when nothing of it could be read.
fn load_side(path: &std::path::Path, opts: &Options, jobs: usize) -> Result<LoadedSide, String> {
    if path.is_file() && path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) {
        let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let report = Report::read(std::io::BufReader::new(f)).map_err(|e| format!("{}: {e}", path.display()))?;
        return Ok(LoadedSide { report, saved: true, some_failed: false });
    }
    let files = inputs::expand(&[path.to_path_buf()], false).files;
    if files.is_empty() {
        return Err(format!("no capture files in {}", path.display()));
    }
    let mut reports = Vec::new();
    let mut failed = Vec::new();
    for result in analyze_all(&files, opts, jobs) {
        match result {
            Ok(r) => {
                tell_input_damage(&r);
                reports.push(r)
            }
            Err(e) => {
                eprintln!("wiretax: {e}");
                failed.push(e.to_string());
            }
        }
    }
    if reports.is_empty() {
        return Err(format!("nothing in {} could be read", path.display()));
    }
    let some_failed = !failed.is_empty();
    // As its JSON would say it: a side saved and read back compares alike.
    let report = Report::combine(reports, failed).into_model_precision()?;
    Ok(LoadedSide { report, saved: false, some_failed })
}

fn compare(a: CompareArgs) -> ExitCode {
    use wiretax::compare::{Unit, default_unit, parse_saving};
    use wiretax::report::compare_view;
    let mut opts = Options::new();
    // Key logs as analyze reads them: several, merged.
    if let Err(e) = a.radio.apply(&mut opts).and_then(|_| dissection_options(&mut opts, &a.keylog, &[])) {
        eprintln!("wiretax: {e}");
        return ExitCode::from(exit::USAGE);
    }
    let required = match a.require_saving.as_deref().map(parse_saving).transpose() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("wiretax: {e}");
            return ExitCode::from(2);
        }
    };
    let units: Vec<Unit> = match a.unit.iter().map(|u| Unit::parse(u)).collect::<Result<Vec<Unit>, String>>() {
        Ok(u) if u.len() <= 2 => u,
        Ok(_) => {
            eprintln!("wiretax: --unit at most twice (BEFORE's, then AFTER's)");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("wiretax: {e}");
            return ExitCode::from(2);
        }
    };
    let jobs = a.jobs.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)).max(1);
    let (before, after) = match (load_side(&a.before, &opts, jobs), load_side(&a.after, &opts, jobs)) {
        (Ok(b), Ok(x)) => (b, x),
        (b, x) => {
            // As analyze: a side of which nothing could be read leaves no comparison.
            for e in [b.err(), x.err()].into_iter().flatten() {
                eprintln!("wiretax: {e}");
            }
            return ExitCode::from(exit::NO_REPORT);
        }
    };
    let some_failed = before.some_failed || after.some_failed;
    if a.radio.interval.is_some() {
        for (name, s) in [("BEFORE", &before), ("AFTER", &after)] {
            if s.saved {
                eprintln!("wiretax: --interval does not re-time {name}, a saved report: it keeps its own projection");
            }
        }
    }
    let (before, after) = (before.report, after.report);
    let unit_of = |r: &Report, given: Option<&Unit>| {
        given.cloned().or_else(|| default_unit(r)).unwrap_or(Unit {
            kind: "none".into(),
            verb: String::new(),
            name: None,
        })
    };
    let ub = unit_of(&before, units.first());
    let ua = unit_of(&after, units.get(1).or(units.first()));
    let c = wiretax::compare::compare(&before, &after, (&ub, &ua), &opts.cost);
    for n in &c.notes {
        eprintln!("wiretax: {n}");
    }
    let text = match a.format {
        Format::Table => compare_view::render_table(&c),
        Format::Json => match serde_json::to_string_pretty(&c) {
            Ok(s) => s + "\n",
            Err(e) => {
                eprintln!("wiretax: {e}");
                return ExitCode::from(1);
            }
        },
        Format::Html => compare_view::render_html(&c, &before, &after),
        Format::Md => {
            let code = emit_markdown(a.output.as_deref(), |stem| compare_view::render_md(&c, &before, &after, stem));
            if code != ExitCode::SUCCESS {
                return code;
            }
            String::new()
        }
    };
    if !matches!(a.format, Format::Md) {
        let written = match &a.output {
            Some(p) => std::fs::write(p, text),
            None => std::io::stdout().lock().write_all(text.as_bytes()),
        };
        if let Err(e) = written {
            eprintln!("wiretax: cannot write the comparison: {e}");
            return ExitCode::from(1);
        }
    }
    if let Some(req) = required {
        match c.per_day_bytes_saving {
            Some(s) if s >= req => {}
            Some(s) => {
                eprintln!(
                    "wiretax: AFTER saves {:.1}% of BEFORE's bytes per device-day; {:.1}% required",
                    s * 100.0,
                    req * 100.0
                );
                return ExitCode::from(1);
            }
            None => {
                let why = if c.before.radio_profile.is_none() || c.after.radio_profile.is_none() {
                    "no radio model"
                } else {
                    "a side has no per-day projection; --interval gives one"
                };
                eprintln!("wiretax: no per-day projection to check --require-saving against ({why})");
                return ExitCode::from(1);
            }
        }
    }
    if some_failed {
        return ExitCode::from(exit::SOME_INPUTS_FAILED);
    }
    ExitCode::SUCCESS
}

/// Writes the report to the `-o` file opened before the work (truncated
/// only now) or to standard output. A reader that went away (`| head`)
/// ends the run quietly: what it wanted it has. Markdown goes to `output`
/// with its charts beside it.
fn emit(
    report: Report,
    out_file: Option<std::fs::File>,
    output: Option<&std::path::Path>,
    format: Format,
    top: usize,
) -> Result<(), ExitCode> {
    // Every format but JSON draws from the report as its JSON says it, so
    // that a saved report renders exactly as the analysis did.
    let report = match format {
        Format::Json => report,
        _ => report.into_model_precision().map_err(|e| {
            eprintln!("wiretax: cannot write the report: {e}");
            ExitCode::from(exit::NO_REPORT)
        })?,
    };
    if let Format::Md = format {
        let code = emit_markdown(output, |stem| wiretax::report::markdown::render(&report, stem));
        return if code == ExitCode::SUCCESS { Ok(()) } else { Err(code) };
    }
    // Written through a concrete writer, not a `dyn Write`: the JSON
    // writer makes millions of small writes, which then inline.
    let written = match out_file {
        Some(f) => {
            // Not a device (`-o /dev/null`), which has no length.
            let is_file = f.metadata().map(|m| m.is_file()).unwrap_or(false);
            let emptied = if is_file { f.set_len(0) } else { Ok(()) };
            emptied.and_then(|_| write_report(std::io::BufWriter::with_capacity(OUT_BUFFER, f), &report, format, top))
        }
        None => {
            write_report(std::io::BufWriter::with_capacity(OUT_BUFFER, std::io::stdout().lock()), &report, format, top)
        }
    };
    match written {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => {
            eprintln!("wiretax: cannot write the report: {e}");
            Err(ExitCode::from(exit::NO_REPORT))
        }
        Ok(()) => Ok(()),
    }
}

/// Opens `-o` before any work, which may take long: the report must have
/// somewhere to go. Opened without truncating: a run that writes no report
/// leaves an existing file as it was.
fn open_output(output: &Option<PathBuf>) -> Result<Option<std::fs::File>, ExitCode> {
    match output {
        Some(p) => match std::fs::OpenOptions::new().write(true).create(true).truncate(false).open(p) {
            Ok(f) => Ok(Some(f)),
            Err(e) => {
                eprintln!("wiretax: cannot write {}: {e}", p.display());
                Err(ExitCode::from(exit::NO_REPORT))
            }
        },
        None => Ok(None),
    }
}

/// `--decode-as` and `--keylog`, as `analyze` and `live` take them.
fn dissection_options(opts: &mut Options, keylog: &[PathBuf], decode_as: &[String]) -> Result<(), String> {
    for d in decode_as {
        let (port, proto) = d.split_once('=').ok_or_else(|| format!("--decode-as wants PORT=PROTO, got {d:?}"))?;
        let (Ok(port), Some(p)) = (port.trim().parse::<u16>(), dissect::by_name(proto.trim())) else {
            return Err(format!("--decode-as {d:?}: unknown port or protocol"));
        };
        opts.flow.decode_as.push((port, p));
    }
    let keylog = load_keylogs(keylog)?;
    opts.flow.dissect = Arc::new(dissect::Config { keylog, ..Default::default() });
    Ok(())
}

/// Every `--keylog` file, merged (a later file's secret wins where two
/// give one); None without any.
fn load_keylogs(paths: &[PathBuf]) -> Result<Option<Arc<wiretax::keylog::KeyLog>>, String> {
    let mut merged: Option<wiretax::keylog::KeyLog> = None;
    for path in paths {
        let k = wiretax::keylog::KeyLog::load(path).map_err(|e| e.to_string())?;
        if k.bad_lines() > 0 {
            eprintln!("wiretax: {}: {} lines are not key log entries and were skipped", path.display(), k.bad_lines());
        }
        match &mut merged {
            Some(m) => m.merge(k),
            None => merged = Some(k),
        }
    }
    Ok(merged.map(Arc::new))
}

/// Says on stderr what reading an input passed over: where a truncated or
/// damaged capture stopped (its figures cover the frames before), the
/// corrupted records skipped, the secrets past the cap.
fn tell_input_damage(r: &wiretax::report::InputReport) {
    let n = &r.notes;
    if let Some(e) = &n.read_error {
        eprintln!("wiretax: {e}; the report covers the {} frames before it", r.totals.frames);
    }
    for note in &n.skipped_record_notes {
        eprintln!("wiretax: {}: {note}", r.input);
    }
    let unsaid = n.skipped_records.saturating_sub(n.skipped_record_notes.len() as u64);
    if unsaid > 0 {
        eprintln!("wiretax: {}: {unsaid} more corrupted records skipped", r.input);
    }
    if n.secrets_dropped > 0 {
        eprintln!(
            "wiretax: {}: the capture's Decryption Secrets Blocks carry secrets for more than {} connections; those of {} more were dropped and they are not decrypted",
            r.input,
            wiretax::keylog::MAX_FOUND_SESSIONS,
            n.secrets_dropped
        );
    }
}

/// Says on stderr what expanding the inputs passed over.
fn tell_expansion(e: &inputs::Inputs) {
    for (dropped, kept) in &e.duplicates {
        eprintln!("wiretax: {} is {} named again; read once", dropped.display(), kept.display());
    }
    for (dir, why) in &e.unlisted {
        eprintln!("wiretax: cannot list {}: {why}", dir.display());
    }
    for (dir, first) in &e.revisited {
        eprintln!(
            "wiretax: not entering {}: it is {}, already scanned (a symbolic link back to it)",
            dir.display(),
            first.display()
        );
    }
    for (file, kind) in &e.not_regular {
        eprintln!(
            "wiretax: skipped {}: {kind}, not a regular file (name it on the command line to read a pipe)",
            file.display()
        );
    }
    if !e.skipped.is_empty() {
        const SHOWN: usize = 5;
        let names: Vec<String> = e.skipped.iter().take(SHOWN).map(|p| p.display().to_string()).collect();
        let more = e.skipped.len().saturating_sub(SHOWN);
        let more = if more > 0 { format!(" and {more} more") } else { String::new() };
        eprintln!(
            "wiretax: skipped {} files not named as captures (.pcap, .pcapng, .cap, maybe .gz/.zst): {}{more}",
            e.skipped.len(),
            names.join(", ")
        );
    }
    if !e.subdirectories.is_empty() {
        eprintln!(
            "wiretax: skipped {} subdirectories ({}); --recursive reads them",
            e.subdirectories.len(),
            e.subdirectories.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        );
    }
}

/// Removes the `-o` file created before the analysis when no report went into it.
fn remove_unwritten(output: &Option<PathBuf>, existed: bool) {
    if let Some(p) = output.as_ref().filter(|_| !existed) {
        let _ = std::fs::remove_file(p);
    }
}

/// Writes Markdown to `output` and its charts beside it (`STEM-NAME.svg`).
fn emit_markdown(
    output: Option<&std::path::Path>,
    render: impl FnOnce(&str) -> (String, Vec<(String, String)>),
) -> ExitCode {
    let Some(output) = output else {
        eprintln!("wiretax: --format md needs -o FILE.md: its charts are written beside it");
        return ExitCode::from(2);
    };
    let stem = output.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "report".into());
    let dir = output.parent().unwrap_or(std::path::Path::new(""));
    let (md, charts) = render(&stem);
    for (name, svg) in &charts {
        let path = dir.join(name);
        if let Err(e) = std::fs::write(&path, svg) {
            eprintln!("wiretax: cannot write {}: {e}", path.display());
            return ExitCode::from(1);
        }
    }
    if let Err(e) = std::fs::write(output, md) {
        eprintln!("wiretax: cannot write {}: {e}", output.display());
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

/// Bytes written to the output at once: a fleet's JSON report is tens of
/// megabytes, thousands of system calls with `BufWriter`'s 8 kB.
const OUT_BUFFER: usize = 256 * 1024;

/// Writes the report. JSON is streamed out: a report is never held twice in memory.
fn write_report(mut out: impl Write, report: &Report, format: Format, top: usize) -> std::io::Result<()> {
    match format {
        Format::Json => wiretax::report::json::write_pretty(&mut out, report)
            .map_err(std::io::Error::from)
            .and_then(|_| out.write_all(b"\n"))?,
        Format::Table => out.write_all(table::render(report, top).as_bytes())?,
        Format::Html => out.write_all(wiretax::report::html::render(report).as_bytes())?,
        // Written by `emit_markdown`, which has a file to put the charts beside.
        Format::Md => out.write_all(wiretax::report::markdown::render(report, "report").0.as_bytes())?,
    }
    out.flush()
}

/// A progress bar on stderr for inputs that take more than a second; none
/// when stderr is not a terminal.
fn progress_bar() -> Option<wiretax::analyze::Progress> {
    use indicatif::{ProgressBar, ProgressStyle};
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
