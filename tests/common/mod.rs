//! Helpers of the integration tests: the shipped captures, captures built
//! byte by byte, the tools scripts/install-test-deps installs (headless
//! Chromium, Python with pyarrow and Pillow), and running wiretax.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_wiretax"))
}

pub fn cap(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("captures").join(name)
}

/// Every capture shipped in captures/, sorted.
pub fn shipped_captures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("pcap" | "pcapng")))
        .collect();
    v.sort();
    v
}

/// Runs wiretax; panics with its error output unless it exits with `code`.
pub fn run(args: &[&std::ffi::OsStr], code: i32) -> Output {
    let out = bin().args(args).output().expect("wiretax runs");
    assert_eq!(out.status.code(), Some(code), "wiretax {:?}: {}", args, String::from_utf8_lossy(&out.stderr));
    out
}

/// Arguments from strings and paths.
#[macro_export]
macro_rules! args {
    ($($a:expr),* $(,)?) => { &[$(std::ffi::OsStr::new(&$a)),*] };
}

/// Whether the tools a test needs must be there (scripts/test sets
/// WIRETAX_TEST_DEPS=1 after installing them); otherwise a test without
/// them says so and passes.
fn required() -> bool {
    std::env::var("WIRETAX_TEST_DEPS").is_ok_and(|v| v == "1")
}

fn missing(what: &str) -> Option<PathBuf> {
    assert!(!required(), "{what} is missing; scripts/install-test-deps installs it");
    eprintln!("skipped: {what} is missing (scripts/install-test-deps installs it)");
    None
}

/// Debian's headless Chromium.
pub fn chromium() -> Option<PathBuf> {
    for name in ["chromium", "chromium-browser"] {
        if let Ok(out) = Command::new("sh").args(["-c", &format!("command -v {name}")]).output()
            && out.status.success()
        {
            let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if !p.is_empty() {
                return Some(PathBuf::from(p));
            }
        }
    }
    missing("chromium")
}

/// A Python with pyarrow and Pillow: WIRETAX_TEST_PYTHON, or the
/// virtualenv scripts/install-test-deps makes.
pub fn python() -> Option<PathBuf> {
    let candidates = [
        std::env::var("WIRETAX_TEST_PYTHON").ok().map(PathBuf::from),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-venv/bin/python")),
    ];
    for p in candidates.into_iter().flatten() {
        if Command::new(&p).args(["-c", "import pyarrow, PIL"]).output().is_ok_and(|o| o.status.success()) {
            return Some(p);
        }
    }
    missing("python with pyarrow and pillow")
}

/// Headless Chromium's DOM of `page` after loading it, and a screenshot of it in `shot`.
pub fn browse(chromium: &Path, page: &Path, shot: &Path) -> String {
    let profile = tempfile::tempdir().expect("profile dir");
    let chrome = || {
        let mut c = Command::new(chromium);
        c.args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"])
            .arg(format!("--user-data-dir={}", profile.path().display()));
        c
    };
    let dom = chrome().arg("--dump-dom").arg(page).output().expect("chromium runs");
    assert!(dom.status.success(), "chromium --dump-dom: {}", String::from_utf8_lossy(&dom.stderr));
    let out = chrome()
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--window-size=1400,2000")
        .arg(page)
        .output()
        .expect("chromium runs");
    assert!(out.status.success() && shot.exists(), "chromium --screenshot: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&dom.stdout).to_string()
}

/// Ethernet/IPv4/TCP frame between 10.0.0.1:`cport` and 10.0.0.2:`sport`.
pub fn tcp_frame(to_server: bool, cport: u16, sport: u16, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let (client, server) = ([10, 0, 0, 1], [10, 0, 0, 2]);
    let (src, dst, sp, dp) = if to_server { (client, server, cport, sport) } else { (server, client, sport, cport) };
    let ip_len = 20 + 20 + payload.len() as u16;
    let mut f = Vec::new();
    f.extend_from_slice(&[2, 2, 2, 2, 2, 2, 4, 4, 4, 4, 4, 4, 0x08, 0x00]);
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&ip_len.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&sp.to_be_bytes());
    f.extend_from_slice(&dp.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&ack.to_be_bytes());
    f.extend_from_slice(&[5 << 4, flags, 0xff, 0xff, 0, 0, 0, 0]);
    f.extend_from_slice(payload);
    f
}

/// A whole TCP connection: handshake, each (to_server, bytes) message
/// acknowledged, and a close.
pub fn tcp_connection(cport: u16, sport: u16, messages: &[(bool, &[u8])]) -> Vec<Vec<u8>> {
    const SYN: u8 = 0x02;
    const ACK: u8 = 0x10;
    const PSH_ACK: u8 = 0x18;
    const FIN_ACK: u8 = 0x11;
    let (mut c, mut s) = (1000u32, 5000u32);
    let mut frames = vec![
        tcp_frame(true, cport, sport, c, 0, SYN, b""),
        tcp_frame(false, cport, sport, s, c + 1, SYN | ACK, b""),
        tcp_frame(true, cport, sport, c + 1, s + 1, ACK, b""),
    ];
    c += 1;
    s += 1;
    for (to_server, data) in messages {
        if *to_server {
            frames.push(tcp_frame(true, cport, sport, c, s, PSH_ACK, data));
            c += data.len() as u32;
            frames.push(tcp_frame(false, cport, sport, s, c, ACK, b""));
        } else {
            frames.push(tcp_frame(false, cport, sport, s, c, PSH_ACK, data));
            s += data.len() as u32;
            frames.push(tcp_frame(true, cport, sport, c, s, ACK, b""));
        }
    }
    frames.push(tcp_frame(true, cport, sport, c, s, FIN_ACK, b""));
    frames.push(tcp_frame(false, cport, sport, s, c + 1, FIN_ACK, b""));
    frames.push(tcp_frame(true, cport, sport, c + 1, s + 1, ACK, b""));
    frames
}

/// A pcap of `frames`, 10 ms apart.
pub fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let mut out = Vec::new();
    for v in [0xa1b2c3d4u32.to_le_bytes(), [2, 0, 4, 0], [0; 4], [0; 4], 65535u32.to_le_bytes(), 1u32.to_le_bytes()] {
        out.extend_from_slice(&v);
    }
    for (i, data) in frames.iter().enumerate() {
        let (sec, usec) = (1_800_000_000u32 + i as u32 / 100, (i as u32 % 100) * 10_000);
        for v in [sec, usec, data.len() as u32, data.len() as u32] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(data);
    }
    std::fs::write(path, out).expect("pcap written");
}
