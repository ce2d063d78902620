//! `wiretax live -i` on a real interface: a veth pair between two network
//! namespaces this test makes (addresses in 10.200.0.0/16, inside them
//! only), curl against `python3 -m http.server` and mosquitto_pub against
//! mosquitto across it, wiretax stopped by SIGINT. The report's exchanges
//! must be what the clients did, and `wiretax analyze` of the `--write`
//! file must give the same report.
//!
//! Needs the `live` build (libpcap), root (namespaces, capture), and the
//! Debian packages scripts/install-live-deps installs; skipped, saying
//! why, without root.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![cfg(feature = "live")]

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn run(cmd: &[&str]) {
    let out = Command::new(cmd[0]).args(&cmd[1..]).output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Two namespaces joined by a veth pair; torn down (with every process
/// started in them) when dropped, also when the test fails.
struct Lab {
    a: String,
    b: String,
    /// Address prefix, `10.200.N`.
    net: String,
    children: Vec<Child>,
}

impl Lab {
    fn new() -> Lab {
        let id = std::process::id();
        let lab = Lab {
            a: format!("wtx-live-a-{id}"),
            b: format!("wtx-live-b-{id}"),
            net: format!("10.200.{}", id % 250 + 1),
            children: Vec::new(),
        };
        let (va, vb) = (format!("wtxa{id}"), format!("wtxb{id}"));
        run(&["ip", "netns", "add", &lab.a]);
        run(&["ip", "netns", "add", &lab.b]);
        run(&["ip", "link", "add", &va, "netns", &lab.a, "type", "veth", "peer", "name", &vb, "netns", &lab.b]);
        for (ns, dev, host) in [(&lab.a, &va, 1), (&lab.b, &vb, 2)] {
            run(&["ip", "-n", ns, "addr", "add", &format!("{}.{host}/24", lab.net), "dev", dev]);
            run(&["ip", "-n", ns, "link", "set", dev, "up"]);
            run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        lab
    }

    fn dev_a(&self) -> String {
        format!("wtxa{}", std::process::id())
    }

    fn server(&self) -> String {
        format!("{}.2", self.net)
    }

    /// `cmd` in namespace `ns`.
    fn cmd(ns: &str, cmd: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).args(cmd);
        c
    }

    fn spawn(&mut self, ns: &str, cmd: &[&str], dir: &Path) {
        use std::os::unix::process::CommandExt;
        // A process group of its own: a launcher (a pyenv shim) may leave
        // the server as its child, and the whole group is ended.
        let child = Lab::cmd(ns, cmd)
            .current_dir(dir)
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.children.push(child);
    }

    /// Runs `cmd` in namespace A (the client side) until it succeeds, for up to 10 s.
    fn until_ok(&self, cmd: &[&str]) {
        let start = Instant::now();
        while !Lab::cmd(&self.a, cmd).output().unwrap().status.success() {
            assert!(start.elapsed() < Duration::from_secs(10), "{cmd:?} never succeeded");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = Command::new("kill").args(["-TERM", "--", &format!("-{}", c.id())]).output();
            let _ = c.wait();
        }
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

fn analyze(path: &Path) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_wiretax"))
        .args(["analyze", path.to_str().unwrap(), "--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// What the live report says of its source beyond what the file holds:
/// the input's name, the source's format and the capture statistics.
fn without_source(mut r: Value) -> Value {
    for i in r["inputs"].as_array_mut().unwrap() {
        i["input"] = Value::Null;
        i["notes"]["format"] = Value::Null;
        i["notes"].as_object_mut().unwrap().remove("capture_drops");
    }
    r
}

fn count(r: &Value, kind: &str, what: &str) -> usize {
    r["exchanges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["kind"] == kind && x["what"].as_str().unwrap().starts_with(what))
        .count()
}

#[test]
fn live_capture_of_real_clients() {
    if !is_root() {
        eprintln!("tests/live.rs skipped: live capture and network namespaces need root");
        return;
    }
    for tool in ["curl", "python3", "mosquitto", "mosquitto_pub"] {
        assert!(
            Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().unwrap().status.success(),
            "{tool} missing: run scripts/install-live-deps"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let mut lab = Lab::new();
    let server = lab.server();
    std::fs::write(dir.path().join("reading.json"), br#"{"t": 21.5}"#).unwrap();
    std::fs::write(dir.path().join("mosquitto.conf"), format!("listener 1883 {server}\nallow_anonymous true\n"))
        .unwrap();
    let (b, a) = (lab.b.clone(), lab.a.clone());
    lab.spawn(&b, &["python3", "-m", "http.server", "8080", "--bind", &server], dir.path());
    lab.spawn(&b, &["mosquitto", "-c", dir.path().join("mosquitto.conf").to_str().unwrap()], dir.path());
    let url = format!("http://{server}:8080/reading.json");
    // Both servers answer before the capture starts.
    lab.until_ok(&["curl", "-sf", "-o", "/dev/null", &url]);
    lab.until_ok(&["mosquitto_pub", "-h", &server, "-t", "ready", "-m", "1"]);

    let (report, written) = (dir.path().join("report.json"), dir.path().join("live.pcapng"));
    let mut wiretax = Lab::cmd(
        &a,
        &[
            env!("CARGO_BIN_EXE_wiretax"),
            "live",
            "-i",
            &lab.dev_a(),
            "--filter",
            "tcp",
            "--interval",
            "300ms",
            "--write",
            written.to_str().unwrap(),
            "--format",
            "json",
            "-o",
            report.to_str().unwrap(),
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // The first JSON line: the capture is open.
    let mut lines = BufReader::new(wiretax.stdout.take().unwrap()).lines();
    let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["live"]["source"], lab.dev_a().as_str());

    const GETS: usize = 3;
    const PUBLISHES: usize = 4;
    for _ in 0..GETS {
        let out = Lab::cmd(&a, &["curl", "-sf", &url]).output().unwrap();
        assert_eq!(out.stdout, br#"{"t": 21.5}"#);
    }
    for i in 0..PUBLISHES {
        let msg = format!("{{\"t\": 21.{i}}}");
        run(&["ip", "netns", "exec", &a, "mosquitto_pub", "-h", &server, "-t", "plant/t", "-q", "1", "-m", &msg]);
    }
    // Some UDP the filter keeps out.
    let _ = Lab::cmd(&a, &["sh", "-c", &format!("echo hi > /dev/udp/{server}/9999")]).output();
    std::thread::sleep(Duration::from_millis(800));
    run(&["kill", "-INT", &wiretax.id().to_string()]);
    let snapshots: Vec<Value> = lines.map(|l| serde_json::from_str(&l.unwrap()).unwrap()).collect();
    let out = wiretax.wait_with_output().unwrap();
    assert!(out.status.success(), "wiretax live: {}", String::from_utf8_lossy(&out.stderr));
    assert!(!snapshots.is_empty());

    let live: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(count(&live, "http", "GET"), GETS, "{:#}", live["exchanges"]);
    assert_eq!(count(&live, "mqtt", "PUBLISH"), PUBLISHES, "{:#}", live["exchanges"]);
    assert_eq!(live["http"]["requests"], GETS);
    assert_eq!(live["udp_streams"], 0, "the BPF filter lets only TCP through");
    assert_eq!(live["tcp_streams"], GETS + PUBLISHES);
    let drops = &live["inputs"][0]["notes"]["capture_drops"];
    assert_eq!(drops["dropped"], 0);
    assert_eq!(drops["received"], live["totals"]["frames"]);
    assert_eq!(live["inputs"][0]["notes"]["format"], "libpcap");
    // The view's snapshots saw the traffic grow.
    let frames: Vec<u64> = snapshots.iter().map(|s| s["totals"]["frames"].as_u64().unwrap()).collect();
    assert!(frames.windows(2).all(|w| w[0] <= w[1]), "{frames:?}");
    assert!(frames.last() <= live["totals"]["frames"].as_u64().as_ref());

    eprintln!(
        "live: {} frames, {} snapshots, {} HTTP GETs, {} MQTT PUBLISHes, drops {drops}",
        live["totals"]["frames"],
        snapshots.len(),
        GETS,
        PUBLISHES
    );
    let file = analyze(&written);
    assert_eq!(file["inputs"][0]["notes"]["format"], "pcapng");
    assert_eq!(without_source(live), without_source(file));
}

/// One line each, with the fix.
#[test]
fn errors_say_what_to_do() {
    let wiretax = || Command::new(env!("CARGO_BIN_EXE_wiretax"));
    let out = wiretax().args(["live", "-i", "wtx-no-such0"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    if is_root() {
        assert!(err.contains("no interface named \"wtx-no-such0\"") && err.contains("--list"), "{err}");
        let out = wiretax().args(["live", "-i", "lo", "--filter", "tcp port"]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("wiretax: bad --filter \"tcp port\"") && err.lines().count() == 1, "{err}");
        let out = wiretax().args(["live", "--list"]).output().unwrap();
        assert!(String::from_utf8_lossy(&out.stdout).lines().any(|l| l.starts_with("lo ")));
    } else {
        assert!(err.contains("setcap cap_net_raw,cap_net_admin+eip"), "{err}");
    }
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// Without the capabilities, the message says how to get them. Tested as
/// root by dropping them (setpriv, from util-linux).
#[test]
fn permission_denied_says_how_to_fix_it() {
    if !is_root() || !Command::new("sh").args(["-c", "command -v setpriv"]).output().unwrap().status.success() {
        eprintln!("permission_denied_says_how_to_fix_it skipped: needs root and setpriv");
        return;
    }
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all"])
        .args([env!("CARGO_BIN_EXE_wiretax"), "live", "-i", "lo"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("permission denied") && err.contains("setcap cap_net_raw,cap_net_admin+eip"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}
