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
        /// Force a protocol on a port, as Wireshark's Decode As: PORT=PROTO (http, tls, mqtt, coap, dns, http2).
        #[arg(long = "decode-as", value_name = "PORT=PROTO")]
        decode_as: Vec<String>,
        /// An idle UDP flow ends after this many seconds.
        #[arg(long, default_value_t = 300.0)]
        udp_timeout: f64,
        /// Most out-of-order bytes held per TCP direction while waiting for a missing segment.
        #[arg(long, default_value_t = 1 << 20)]
        reassembly_cap: usize,
        /// Most flows listed in the report (all are counted).
        #[arg(long, default_value_t = 100_000)]
        max_flows: usize,
        /// Most exchanges listed in the report (all are counted).
        #[arg(long, default_value_t = 100_000)]
        max_exchanges: usize,
        /// Flows shown by the table format.
        #[arg(long, default_value_t = 10)]
        top: usize,
        /// Worker threads (default: all cores). Results do not depend on it.
        #[arg(long, short = 'j')]
        jobs: Option<usize>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Analyze { inputs, format, output, decode_as, udp_timeout, reassembly_cap, max_flows, max_exchanges, top, jobs } => {
            let mut opts = Options::new();
            opts.max_flows = max_flows;
            opts.max_exchanges = max_exchanges;
            opts.flow.udp_idle_ns = (udp_timeout * 1e9) as i64;
            opts.flow.reassembly_cap = reassembly_cap;
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
            opts.flow.dissect = Arc::new(dissect::Config::default());
            opts.progress = progress_bar();
            let files = expand_inputs(&inputs);
            if files.is_empty() {
                eprintln!("wiretax: no capture files in {}", inputs.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "));
                return ExitCode::from(1);
            }
            let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)).max(1);
            let mut reports = Vec::new();
            let mut failed = Vec::new();
            for (f, result) in files.iter().zip(analyze_all(&files, &opts, jobs)) {
                match result {
                    Ok(r) => {
                        if let Some(e) = &r.notes.read_error {
                            eprintln!("wiretax: {e}; the report covers the {} frames before it", r.totals.frames);
                        }
                        reports.push(r)
                    }
                    Err(e) => {
                        eprintln!("wiretax: {}: {e}", f.display());
                        failed.push(e.to_string());
                    }
                }
            }
            if reports.is_empty() {
                return ExitCode::from(1);
            }
            let report = Report::combine(reports, failed);
            let text = match format {
                Format::Json => match serde_json::to_string_pretty(&report) {
                    Ok(s) => s + "\n",
                    Err(e) => {
                        eprintln!("wiretax: cannot write JSON: {e}");
                        return ExitCode::from(1);
                    }
                },
                Format::Table => table::render(&report, top),
            };
            let written = match &output {
                Some(p) => std::fs::write(p, text.as_bytes()),
                None => std::io::stdout().lock().write_all(text.as_bytes()),
            };
            if let Err(e) = written {
                eprintln!("wiretax: cannot write the report: {e}");
                return ExitCode::from(1);
            }
            ExitCode::SUCCESS
        }
    }
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
            if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}") {
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
