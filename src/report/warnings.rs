//! What could not be read, one line each (the table's notes): how much,
//! its share of the wire bytes, and what to do about it.

use super::InputReport;
use serde::{Deserialize, Serialize};

/// One kind of input wiretax could not read (fully).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Warning {
    /// `non_ip_frames`, `unsupported_linktypes`, `wifi_protected_frames`,
    /// `tls_unknown_expansion`, `malformed_bytes`, `inferred_bytes`.
    pub kind: String,
    /// How many (frames, records or bytes, as `text` says).
    pub count: u64,
    /// Wire bytes concerned, and their share of the input's wire bytes.
    pub bytes: u64,
    pub share: f64,
    pub text: String,
    pub advice: String,
}

/// The warnings of one input, in a fixed order; none for what did not occur.
pub fn of(r: &InputReport) -> Vec<Warning> {
    let (n, tls, wire) = (&r.notes, &r.stats.tls, r.totals.wire_bytes);
    let mut out = Vec::new();
    let mut add = |kind: &str, count: u64, bytes: u64, text: String, advice: &str| {
        if count > 0 {
            let share = if wire == 0 { 0.0 } else { bytes as f64 / wire as f64 };
            out.push(Warning { kind: kind.to_string(), count, bytes, share, text, advice: advice.to_string() });
        }
    };
    let non_ip = n.non_ip_frames.saturating_sub(n.wifi_protected_frames);
    let kinds: Vec<String> = n
        .non_ip_types
        .iter()
        .filter(|(k, _)| k.as_str() != "802.11 protected data")
        .map(|(k, c)| format!("{k}: {c}"))
        .collect();
    add(
        "non_ip_frames",
        non_ip,
        n.non_ip_bytes.saturating_sub(n.wifi_protected_bytes),
        format!("{non_ip} non-IP frames ({}) counted as link", kinds.join(", ")),
        "link-layer traffic (ARP, LLDP, PPP control, Wi-Fi management); to leave it out, capture with a filter such as 'ip or ip6'",
    );
    let unsupported: u64 = n.unsupported_linktypes.values().sum();
    let names: Vec<&str> = n.unsupported_linktypes.keys().map(String::as_str).collect();
    add(
        "unsupported_linktypes",
        unsupported,
        n.unsupported_linktype_bytes,
        format!("{unsupported} frames of unsupported link type {} counted as link", names.join(", ")),
        "capture on an Ethernet or Linux cooked (any) interface, or convert the capture's link type",
    );
    add(
        "wifi_protected_frames",
        n.wifi_protected_frames,
        n.wifi_protected_bytes,
        format!("{} frames protected at the Wi-Fi layer (WPA) counted as link", n.wifi_protected_frames),
        "capture on the access point's wired side, or decrypt the capture first (Wireshark with the WPA passphrase, then export)",
    );
    add(
        "tls_unknown_expansion",
        tls.records_with_unknown_expansion,
        tls.unknown_expansion_record_bytes,
        format!(
            "{} TLS records of unknown cipher expansion (CBC padding or an unknown suite): a lower bound is booked as overhead",
            tls.records_with_unknown_expansion
        ),
        "give the TLS key log (--keylog, SSLKEYLOGFILE format) to read them exactly",
    );
    add(
        "malformed_bytes",
        n.malformed_bytes,
        n.malformed_bytes,
        format!("{} bytes of application messages could not be parsed (counted as payload)", n.malformed_bytes),
        "the flows' `malformed` lists say which and why; --decode-as PORT=PROTO if a protocol was misrecognised",
    );
    add(
        "inferred_bytes",
        n.inferred_bytes,
        n.inferred_bytes,
        format!("{} wire bytes were cut by snaplen and classified by inference", n.inferred_bytes),
        "capture whole frames (tcpdump -s 0) for exact figures",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Notes, Totals};

    /// TLS records whose cipher expansion is not known (no real capture
    /// here has them: every shipped one uses AEAD suites).
    #[test]
    fn tls_records_of_unknown_expansion_are_a_warning() {
        let mut r = InputReport {
            input: "x".into(),
            totals: Totals { wire_bytes: 1000, ..Totals::default() },
            tcp_streams: 1,
            udp_streams: 0,
            flows: vec![],
            stats: Default::default(),
            exchanges: vec![],
            notes: Notes::default(),
            radio: None,
            findings: vec![],
            summaries: Default::default(),
            apps: Default::default(),
            timeline: None,
            whatif: None,
            all_findings_fixed: None,
            devices: Vec::new(),
            fleet: None,
        };
        assert!(of(&r).is_empty());
        r.stats.tls.records_with_unknown_expansion = 3;
        r.stats.tls.unknown_expansion_record_bytes = 250;
        let w = of(&r);
        assert_eq!(w.len(), 1);
        assert_eq!((w[0].kind.as_str(), w[0].count, w[0].bytes, w[0].share), ("tls_unknown_expansion", 3, 250, 0.25));
        assert!(w[0].text.starts_with("3 TLS records") && w[0].advice.contains("--keylog"));
    }
}
