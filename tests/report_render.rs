//! Reports people read: the HTML page opens in a browser with every chart
//! drawn, a hostile capture's strings stay text in every format, and
//! credentials never reach any format.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use std::path::Path;

/// Colored rectangles in `svg` that are not 10x10 legend boxes: data marks.
fn data_marks(svg: &str) -> usize {
    svg.split("<rect")
        .skip(1)
        .filter(|r| {
            let tag = r.split('>').next().unwrap_or("");
            let attr = |name: &str| {
                tag.split(&format!(" {name}=\"")).nth(1).and_then(|v| v.split('"').next()).unwrap_or("").to_string()
            };
            let fill = attr("fill").to_ascii_uppercase();
            let legend = attr("width") == "10" && attr("height") == "10";
            !fill.is_empty() && fill != "#FFFFFF" && fill != "NONE" && !legend
        })
        .count()
}

/// Every chart in `dom` (figures with class "chart") is an SVG with data marks; returns their number.
fn assert_charts_drawn(dom: &str, what: &str) -> usize {
    let figures: Vec<&str> = dom.split("<figure class=\"chart\"").skip(1).collect();
    assert!(!figures.is_empty(), "{what}: no chart");
    for f in &figures {
        let f = f.split("</figure>").next().unwrap_or("");
        let id = f.split("id=\"").nth(1).and_then(|v| v.split('"').next()).unwrap_or("?");
        assert!(f.contains("<svg"), "{what}: chart {id} has no SVG");
        assert!(data_marks(f) > 0, "{what}: chart {id} draws no data");
    }
    figures.len()
}

/// The screenshot is not blank: some share of its pixels are drawn, in several colours.
fn assert_not_blank(python: &Path, shot: &Path) {
    let script = r#"
import sys
from PIL import Image
im = Image.open(sys.argv[1]).convert("RGB")
w, h = im.size
px = im.getdata()
drawn = sum(1 for p in px if p != (255, 255, 255))
colors = len(set(px))
print(drawn / (w * h), colors)
assert drawn / (w * h) > 0.02 and colors > 16, (drawn / (w * h), colors)
"#;
    let out = std::process::Command::new(python).args(["-c", script]).arg(shot).output().expect("python runs");
    assert!(out.status.success(), "{}: blank? {}", shot.display(), String::from_utf8_lossy(&out.stderr));
}

/// What an offline, script-free page must not hold.
fn assert_self_contained(html: &str, what: &str) {
    let lower = html.to_ascii_lowercase();
    for bad in ["<script", "<link", "<img", "<iframe", "src=", "@import", "url("] {
        assert!(!lower.contains(bad), "{what}: holds {bad}");
    }
    assert!(lower.contains("content-security-policy"), "{what}: no content security policy");
}

#[test]
fn html_reports_draw_every_chart_in_a_browser() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let one = d.join("one.html");
    run(args!["analyze", cap("sparse-mqtt-gps.pcap"), "--format", "html", "-o", one], 0);
    let several = d.join("several.html");
    run(
        args![
            "analyze",
            cap("sparse-mqtt-gps.pcap"),
            cap("http-poll-close.pcap"),
            cap("coap-observe.pcap"),
            "--format",
            "html",
            "-o",
            several
        ],
        0,
    );
    let compare = d.join("compare.html");
    run(
        args![
            "compare",
            cap("sparse-https-poll.pcap"),
            cap("sparse-mqtt-gps.pcap"),
            "--keylog",
            cap("sparse-https-poll.keylog"),
            "--radio",
            "nbiot",
            "--timing",
            "link",
            "--format",
            "html",
            "-o",
            compare
        ],
        0,
    );
    // Expected charts: ledger per protocol, per flow, timeline, exchange
    // cost, energy, findings (when any); per input with several inputs;
    // both sides and the comparison's own for a comparison.
    let mut counts = Vec::new();
    for (page, min) in [(&one, 5), (&several, 9), (&compare, 11)] {
        let html = std::fs::read_to_string(page).unwrap();
        assert_self_contained(&html, &page.display().to_string());
        counts.push(assert_charts_drawn(&html, &page.display().to_string()));
        assert!(counts.last().is_some_and(|n| *n >= min), "{}: {counts:?} charts", page.display());
    }
    let (Some(chromium), Some(python)) = (chromium(), python()) else { return };
    for page in [&one, &several, &compare] {
        let shot = page.with_extension("png");
        let dom = browse(&chromium, page, &shot);
        let n = assert_charts_drawn(&dom, &format!("{} in chromium", page.display()));
        assert!(n >= 5, "{}: {n} charts in the browser", page.display());
        assert!(!dom.to_ascii_lowercase().contains("<script"), "{}", page.display());
        assert_not_blank(&python, &shot);
    }
}

const SECRETS: [&str; 4] =
    ["SECRET-AUTH-TOKEN-1234", "SECRET-COOKIE-5678", "SECRET-SETCOOKIE-9999", "SECRET-MQTT-PASSWORD"];
/// Shown as text if escaped; run or rendered as markup if not.
const SCRIPT: &str = "<script>document.title='PWNED'</script>";
const IMG: &str = "<img src=x onerror=\"document.title='PWNED'\">";

/// HTTP with a hostile path and Host and credentials in headers, then MQTT
/// with a password and a hostile topic (quotes, markup, an ANSI escape).
fn hostile_frames() -> Vec<Vec<u8>> {
    let request = format!(
        "GET /a{SCRIPT}?q='x\" HTTP/1.1\r\nHost: \"{IMG}\r\nAuthorization: Bearer {}\r\nCookie: session={}\r\n\r\n",
        SECRETS[0], SECRETS[1]
    );
    let response = format!("HTTP/1.1 200 OK\r\nSet-Cookie: id={}\r\nContent-Length: 2\r\n\r\nok", SECRETS[2]);
    let mut frames = tcp_connection(40000, 80, &[(true, request.as_bytes()), (false, response.as_bytes())]);

    let mut connect = vec![0x00, 0x04];
    connect.extend_from_slice(b"MQTT");
    connect.extend_from_slice(&[0x04, 0xC2, 0x00, 0x3C]);
    for field in [&b"dev1"[..], b"user", SECRETS[3].as_bytes()] {
        connect.extend_from_slice(&(field.len() as u16).to_be_bytes());
        connect.extend_from_slice(field);
    }
    let mut connect_packet = vec![0x10, connect.len() as u8];
    connect_packet.extend_from_slice(&connect);
    let topic = format!("fleet/{SCRIPT}/\"q'\x1b[31mred\x1b[0m{IMG}");
    let mut publish = (topic.len() as u16).to_be_bytes().to_vec();
    publish.extend_from_slice(topic.as_bytes());
    publish.extend_from_slice(b"{\"t\":21}");
    let mut publish_packet = vec![0x30, publish.len() as u8];
    publish_packet.extend_from_slice(&publish);
    frames.extend(tcp_connection(
        40001,
        1883,
        &[(true, &connect_packet), (false, &[0x20, 0x02, 0x00, 0x00]), (true, &publish_packet), (true, &[0xE0, 0x00])],
    ));
    frames
}

/// Every file under `dir`, as bytes.
fn files_under(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push((p.display().to_string(), std::fs::read(&p).unwrap()));
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn a_hostile_capture_stays_text_and_credentials_appear_in_no_format() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A file name with markup, quotes and an ANSI escape.
    let pcap = d.join(format!("dev {SCRIPT} \"q\" 'x' \x1b[31mred.pcap").replace('/', "_"));
    write_pcap(&pcap, &hostile_frames());
    let out = d.join("out");
    std::fs::create_dir(&out).unwrap();

    // Every format, and a comparison of the capture with itself.
    let json = run(args!["analyze", pcap, "--format", "json"], 0).stdout;
    let report: serde_json::Value = serde_json::from_slice(&json).unwrap();
    let whats: Vec<&str> = report["exchanges"].as_array().unwrap().iter().filter_map(|x| x["what"].as_str()).collect();
    assert!(whats.iter().any(|w| w.contains("<script>")), "the hostile path is in the model: {whats:?}");
    assert!(whats.iter().any(|w| w.contains('\x1b')), "the hostile topic is in the model: {whats:?}");
    std::fs::write(out.join("report.json"), &json).unwrap();
    let table = run(args!["analyze", pcap], 0).stdout;
    std::fs::write(out.join("table.txt"), &table).unwrap();
    run(args!["analyze", pcap, "--format", "html", "-o", out.join("report.html")], 0);
    run(args!["analyze", pcap, "--format", "md", "-o", out.join("report.md"), "--export", out.join("export")], 0);
    run(args!["report", out.join("report.json"), "--export", out.join("export2")], 0);
    let cmp = run(args!["compare", pcap, pcap, "--unit", "http GET"], 0).stdout;
    std::fs::write(out.join("compare.txt"), &cmp).unwrap();
    run(args!["compare", pcap, out.join("report.json"), "--format", "html", "-o", out.join("compare.html")], 0);
    run(args!["compare", pcap, pcap, "--format", "md", "-o", out.join("compare.md")], 0);
    run(args!["compare", pcap, pcap, "--format", "json", "-o", out.join("compare.json")], 0);

    if let Ok(keep) = std::env::var("WIRETAX_KEEP_TEST_OUTPUT") {
        // To look at what the test checked.
        let _ = std::process::Command::new("cp").arg("-r").arg(&out).arg(&pcap).arg(keep).status();
    }
    let files = files_under(&out);
    assert!(files.len() > 20, "{} files", files.len());
    for (name, bytes) in &files {
        for s in SECRETS {
            assert!(!contains(bytes, s.as_bytes()), "{name} shows a credential: {s}");
        }
        let text = String::from_utf8_lossy(bytes);
        let is = |ext: &str| name.ends_with(ext);
        if is(".html") || is(".md") || is(".svg") {
            let lower = text.to_ascii_lowercase();
            assert!(!lower.contains("<script"), "{name}: unescaped <script>");
            assert!(!lower.contains("<img"), "{name}: unescaped <img>");
            assert!(!text.contains('\x1b'), "{name}: an escape character");
        }
        if is(".txt") {
            assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{name}: control characters for the terminal");
        }
        if is(".html") {
            assert!(text.contains("&lt;script&gt;"), "{name}: the hostile strings are shown, escaped");
        }
        if is(".md") && name.ends_with("report.md") {
            assert!(text.contains("&lt;script&gt;"), "{name}: the hostile strings are shown, escaped");
        }
    }

    let Some(chromium) = chromium() else { return };
    for page in ["report.html", "compare.html"] {
        let dom = browse(&chromium, &out.join(page), &d.join(format!("{page}.png")));
        let title = dom.split("<title>").nth(1).and_then(|t| t.split("</title>").next()).unwrap_or("");
        assert!(!title.contains("PWNED") || title.contains("&lt;script"), "{page}: script ran: {title}");
        let lower = dom.to_ascii_lowercase();
        assert!(!lower.contains("<script") && !lower.contains("<img"), "{page}: markup from the capture in the DOM");
    }
}

/// A TLS session ticket a client offered, from a shipped capture: the
/// session_ticket extension (type 35) of its resumed ClientHello.
fn session_ticket(pcap: &[u8]) -> Option<Vec<u8>> {
    (0..pcap.len().saturating_sub(4)).find_map(|i| {
        let len = u16::from_be_bytes([pcap[i + 2], pcap[i + 3]]) as usize;
        (pcap[i] == 0 && pcap[i + 1] == 0x23 && (32..2000).contains(&len) && i + 4 + len <= pcap.len())
            .then(|| pcap[i + 4..i + 4 + len].to_vec())
    })
}

#[test]
fn a_session_ticket_appears_in_no_format() {
    let capture =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/decrypt/testdata/tls12-ticket-resumption.pcap");
    let keylog = capture.with_extension("keylog");
    let ticket = session_ticket(&std::fs::read(&capture).unwrap()).expect("the capture offers a ticket");
    let hex: String = ticket.iter().take(16).map(|b| format!("{b:02x}")).collect();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let json = run(args!["analyze", capture, "--keylog", keylog, "--format", "json"], 0).stdout;
    let table = run(args!["analyze", capture, "--keylog", keylog], 0).stdout;
    run(args!["analyze", capture, "--keylog", keylog, "--format", "html", "-o", d.join("r.html")], 0);
    run(
        args!["analyze", capture, "--keylog", keylog, "--format", "md", "-o", d.join("r.md"), "--export", d.join("x")],
        0,
    );
    let mut all = vec![("json".to_string(), json), ("table".to_string(), table)];
    all.extend(files_under(d));
    for (name, bytes) in all {
        let text = String::from_utf8_lossy(&bytes).to_ascii_lowercase();
        assert!(!text.contains(&hex), "{name} shows the session ticket");
        assert!(!contains(&bytes, &ticket[..16]), "{name} holds the session ticket's bytes");
    }
}
