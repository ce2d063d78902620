//! Live capture from a network interface through libpcap (cargo feature
//! `live`). Errors are one line that says how to fix them.

use super::Packet;
use pcap::{Active, Capture, Device, Error, Precision};
use std::time::Instant;

/// An open interface.
pub struct LiveCapture {
    cap: Capture<Active>,
    linktype: u16,
}

/// What libpcap says it dropped since the capture started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drops {
    /// Packets that passed the filter.
    pub received: u64,
    /// Dropped for lack of buffer space (the reader did not keep up).
    pub dropped: u64,
    /// Dropped by the interface or its driver.
    pub interface_dropped: u64,
}

/// How often a read with no packet returns, so the caller can redraw and
/// move the clock on.
const READ_TIMEOUT_MS: i32 = 100;

fn permission_fix() -> String {
    let exe = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "wiretax".into());
    format!("run as root, or once: sudo setcap cap_net_raw,cap_net_admin+eip {exe}")
}

/// libpcap's error for opening `iface`, as one line with the fix.
fn open_error(iface: &str, e: &Error) -> String {
    let text = e.to_string();
    let lower = text.to_lowercase();
    if lower.contains("permission") || lower.contains("not permitted") {
        format!("cannot capture on {iface}: permission denied; {}", permission_fix())
    } else if lower.contains("no such device") || lower.contains("doesn't exist") {
        format!("no interface named {iface:?}; `wiretax live --list` shows the interfaces")
    } else {
        format!("cannot capture on {iface}: {text}")
    }
}

impl LiveCapture {
    /// Opens `iface` (promiscuous, nanosecond timestamps, each packet
    /// delivered at once) with the BPF `filter`, if any.
    pub fn open(iface: &str, filter: Option<&str>) -> Result<LiveCapture, String> {
        let cap = Capture::from_device(iface)
            .map_err(|e| open_error(iface, &e))?
            .promisc(true)
            .immediate_mode(true)
            .timeout(READ_TIMEOUT_MS)
            .precision(Precision::Nano)
            .snaplen(262_144)
            .buffer_size(16 << 20)
            .open()
            .map_err(|e| open_error(iface, &e))?;
        let mut cap = cap.setnonblock().map_err(|e| open_error(iface, &e))?;
        if let Some(f) = filter {
            cap.filter(f, true).map_err(|e| {
                format!("bad --filter {f:?}: {e} (the syntax is libpcap's: `man pcap-filter`, e.g. 'tcp port 1883')")
            })?;
        }
        let linktype = u16::try_from(cap.get_datalink().0).map_err(|_| format!("{iface}: unknown link type"))?;
        Ok(LiveCapture { cap, linktype })
    }

    /// Gives `f` every packet that arrives until `until` (while `f` returns
    /// true), and returns then or after a while with no packet. An error if
    /// the interface went away.
    pub fn poll(&mut self, until: Instant, mut f: impl FnMut(&Packet) -> bool) -> Result<(), String> {
        let linktype = self.linktype;
        let mut idle_since: Option<Instant> = None;
        let mut n = 0u32;
        loop {
            match self.cap.next_packet() {
                Ok(p) => {
                    idle_since = None;
                    let h = p.header;
                    // Precision::Nano: the "microseconds" field holds nanoseconds.
                    // (time_t and suseconds_t are not i64 everywhere.)
                    #[allow(clippy::unnecessary_cast)]
                    let ts_ns = (h.ts.tv_sec as i64).saturating_mul(1_000_000_000).saturating_add(h.ts.tv_usec as i64);
                    let packet = Packet { ts_ns, wire_len: h.len, data: p.data, linktype };
                    if !f(&packet) {
                        return Ok(());
                    }
                    n = n.wrapping_add(1);
                    // A look at the clock every few packets, not every one.
                    if n.is_multiple_of(64) && Instant::now() >= until {
                        return Ok(());
                    }
                }
                Err(Error::TimeoutExpired) => {
                    // Non-blocking: nothing waiting. Sleep a little, not spin.
                    let now = Instant::now();
                    if now >= until {
                        return Ok(());
                    }
                    let since = *idle_since.get_or_insert(now);
                    let nap = if now.duration_since(since).as_millis() < 5 { 200 } else { 2_000 };
                    std::thread::sleep(std::time::Duration::from_micros(nap).min(until - now));
                }
                Err(Error::NoMorePackets) => return Ok(()),
                Err(e) => return Err(format!("capture stopped: {e}")),
            }
        }
    }

    pub fn drops(&mut self) -> Option<Drops> {
        self.cap.stats().ok().map(|s| Drops {
            received: s.received.into(),
            dropped: s.dropped.into(),
            interface_dropped: s.if_dropped.into(),
        })
    }
}

/// The interfaces libpcap can capture on, one a line: name, state,
/// addresses, description.
pub fn list() -> Result<String, String> {
    let devices = Device::list().map_err(|e| format!("cannot list the interfaces: {e}"))?;
    let mut out = String::new();
    for d in devices {
        let f = &d.flags;
        let mut state = Vec::new();
        if f.is_up() {
            state.push("up");
        }
        if f.is_running() {
            state.push("running");
        }
        if f.is_loopback() {
            state.push("loopback");
        }
        if f.is_wireless() {
            state.push("wireless");
        }
        let addrs: Vec<String> = d.addresses.iter().map(|a| a.addr.to_string()).collect();
        let mut line = format!("{:<16} {:<24}", d.name, state.join(","));
        if !addrs.is_empty() {
            line.push(' ');
            line.push_str(&addrs.join(" "));
        }
        if let Some(desc) = &d.desc {
            line.push_str(&format!("  ({desc})"));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    if out.is_empty() {
        out = format!("no interfaces to capture on; {}\n", permission_fix());
    }
    Ok(out)
}
