//! Link layers: how many header bytes precede the IP packet.

use super::{Marks, NotIp, be16};

pub const ETHERNET: u16 = 1;
pub const RAW: u16 = 101;
pub const RAW_OPENBSD: u16 = 12;
pub const RAW_OLD: u16 = 14;
pub const NULL: u16 = 0;
pub const LOOP: u16 = 108;
pub const LINUX_SLL: u16 = 113;
pub const LINUX_SLL2: u16 = 276;
pub const IPV4: u16 = 228;
pub const IPV6: u16 = 229;
/// PPP (RFC 1661), with or without the HDLC address and control bytes.
pub const PPP: u16 = 9;
/// PPP in HDLC-like framing (RFC 1662), or Cisco HDLC.
pub const PPP_HDLC: u16 = 50;
/// A PPPoE session header, then PPP.
pub const PPP_ETHER: u16 = 51;
pub const C_HDLC: u16 = 104;
pub const IEEE802_11: u16 = 105;
pub const IEEE802_11_RADIOTAP: u16 = 127;
/// Linux netfilter log (`tcpdump -i nflog:N`).
pub const NFLOG: u16 = 239;

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86dd;
const ETH_VLAN: u16 = 0x8100;
const ETH_QINQ: u16 = 0x88a8;
const ETH_QINQ_OLD: u16 = 0x9100;
const ETH_PPPOE_SESSION: u16 = 0x8864;
pub(super) const ETH_MPLS: u16 = 0x8847;
const ETH_MPLS_MULTICAST: u16 = 0x8848;
const PPP_IPV4: u16 = 0x0021;
const PPP_IPV6: u16 = 0x0057;
/// NFLOG's TLV holding the packet (NFULA_PAYLOAD).
const NFLOG_PAYLOAD: u16 = 9;

/// Splits a frame into (link header length, IP packet bytes).
#[inline]
pub fn strip(linktype: u16, f: &[u8]) -> Result<(u32, &[u8]), NotIp> {
    strip_marked(linktype, f).map(|(hdr, ip, _)| (hdr, ip))
}

/// `strip`, and the encapsulations passed on the way (an MPLS label stack).
#[inline]
pub(super) fn strip_marked(linktype: u16, f: &[u8]) -> Result<(u32, &[u8], Marks), NotIp> {
    // Nearly every frame: IP in plain Ethernet.
    if linktype == ETHERNET
        && let Some((hdr, ip)) = f.split_first_chunk::<14>()
        && let ETH_IPV4 | ETH_IPV6 = u16::from_be_bytes([hdr[12], hdr[13]])
    {
        return Ok((14, ip, Marks::NONE));
    }
    strip_any(linktype, f)
}

/// An Ethernet ARP frame's sender and target IPv4 addresses (behind VLAN
/// tags too): the devices a frame outside flows belongs to.
pub fn arp_addresses(linktype: u16, f: &[u8]) -> Option<(std::net::Ipv4Addr, std::net::Ipv4Addr)> {
    const ETH_ARP: u16 = 0x0806;
    if linktype != ETHERNET {
        return None;
    }
    let mut off = 12;
    while let ETH_VLAN | ETH_QINQ | ETH_QINQ_OLD = be16(f, off)? {
        off += 4;
    }
    if be16(f, off)? != ETH_ARP {
        return None;
    }
    // Hardware type, protocol type, lengths, operation; then sender MAC and
    // IP, target MAC and IP (Ethernet and IPv4 only).
    let arp = f.get(off + 2..)?;
    if be16(arp, 2)? != 0x0800 || arp.get(4..6)? != [6, 4] {
        return None;
    }
    let ip = |at: usize| -> Option<std::net::Ipv4Addr> {
        let b: [u8; 4] = arp.get(at..at + 4)?.try_into().ok()?;
        Some(std::net::Ipv4Addr::from(b))
    };
    Some((ip(14)?, ip(24)?))
}

/// A frame's MACs and outer VLAN id, for `--device-key mac|vlan` (read per
/// frame only then): Ethernet, IEEE 802.11 (with radiotap) and Linux
/// cooked captures (the source's MAC only); none for other links.
pub fn link_ids(linktype: u16, f: &[u8]) -> super::LinkIds {
    let mac = |at: usize| -> [u8; 6] { f.get(at..at + 6).and_then(|m| m.try_into().ok()).unwrap_or([0; 6]) };
    match linktype {
        ETHERNET => super::LinkIds {
            dst_mac: mac(0),
            src_mac: mac(6),
            vlan: match be16(f, 12) {
                Some(ETH_VLAN | ETH_QINQ | ETH_QINQ_OLD) => be16(f, 14).map(|tci| tci & 0x0fff),
                _ => None,
            },
        },
        // Packet type, link type, address length, address (the source's).
        LINUX_SLL if be16(f, 4) == Some(6) => super::LinkIds { src_mac: mac(6), ..Default::default() },
        // Protocol, reserved, interface, link type, packet type, address length, address.
        LINUX_SLL2 if f.get(11) == Some(&6) => super::LinkIds { src_mac: mac(12), ..Default::default() },
        IEEE802_11 => wifi_macs(f, 0),
        IEEE802_11_RADIOTAP => match f {
            [0, _, l0, l1, ..] => wifi_macs(f, usize::from(u16::from_le_bytes([*l0, *l1]))),
            _ => super::LinkIds::default(),
        },
        _ => super::LinkIds::default(),
    }
}

/// An 802.11 frame's source and destination MAC: which address field holds
/// them depends on the to-DS and from-DS bits (IEEE 802.11 table 9-26).
fn wifi_macs(f: &[u8], at: usize) -> super::LinkIds {
    let mac = |n: usize| -> [u8; 6] { f.get(at + n..at + n + 6).and_then(|m| m.try_into().ok()).unwrap_or([0; 6]) };
    let (a1, a2, a3, a4) = (4, 10, 16, 24);
    let (dst, src) = match f.get(at + 1).map(|fc1| fc1 & 3) {
        Some(0) => (a1, a2),
        Some(1) => (a3, a2),
        Some(2) => (a1, a3),
        Some(_) => (a3, a4),
        None => return super::LinkIds::default(),
    };
    super::LinkIds { src_mac: mac(src), dst_mac: mac(dst), vlan: None }
}

/// `strip` for every link type and encapsulation.
pub(super) fn strip_any(linktype: u16, f: &[u8]) -> Result<(u32, &[u8], Marks), NotIp> {
    let at = |n: usize| f.get(n..).map(|ip| (n as u32, ip, Marks::NONE)).ok_or(NotIp::TooShort);
    let marked = |(n, m): (usize, Marks)| f.get(n..).map(|ip| (n as u32, ip, m)).ok_or(NotIp::TooShort);
    match linktype {
        ETHERNET => ethernet(f).and_then(marked),
        LINUX_SLL => match be16(f, 14).ok_or(NotIp::TooShort)? {
            ETH_IPV4 | ETH_IPV6 => at(16),
            et => Err(NotIp::EtherType(et)),
        },
        LINUX_SLL2 => match be16(f, 0).ok_or(NotIp::TooShort)? {
            ETH_IPV4 | ETH_IPV6 => at(20),
            et => Err(NotIp::EtherType(et)),
        },
        NULL | LOOP => {
            let b: [u8; 4] = f.get(..4).and_then(|b| b.try_into().ok()).ok_or(NotIp::TooShort)?;
            // NULL stores the address family in the writer's byte order, LOOP big-endian.
            // (A big-endian NULL header starts with two zero bytes.)
            let big_endian = linktype == LOOP || (b[0] == 0 && b[1] == 0);
            let fam = if big_endian { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) };
            match fam {
                2 | 24 | 28 | 30 => at(4),
                _ => Err(NotIp::EtherType(fam as u16)),
            }
        }
        RAW | RAW_OPENBSD | RAW_OLD | IPV4 | IPV6 => at(0),
        PPP => {
            // The address and control bytes are optional (RFC 1662 ACFC).
            let start = if f.starts_with(&[0xff, 0x03]) { 2 } else { 0 };
            ppp(f, start).and_then(at)
        }
        PPP_HDLC | C_HDLC => match f {
            [0xff, 0x03, ..] => ppp(f, 2).and_then(at),
            // Cisco HDLC: address (unicast or broadcast), control, EtherType.
            [0x0f | 0x8f, 0x00, ..] => match be16(f, 2).ok_or(NotIp::TooShort)? {
                ETH_IPV4 | ETH_IPV6 => at(4),
                et => Err(NotIp::EtherType(et)),
            },
            _ => ppp(f, 0).and_then(at),
        },
        PPP_ETHER => ppp(f, 6).and_then(at),
        IEEE802_11 => wifi(f, 0).and_then(at),
        IEEE802_11_RADIOTAP => {
            // Radiotap: version 0, pad, little-endian length of the whole header.
            match f {
                [0, _, l0, l1, ..] => wifi(f, usize::from(u16::from_le_bytes([*l0, *l1]))).and_then(at),
                [_, _, _, _, ..] => Err(NotIp::UnsupportedLinktype(linktype)),
                _ => Err(NotIp::TooShort),
            }
        }
        NFLOG => nflog(f).and_then(at),
        other => Err(NotIp::UnsupportedLinktype(other)),
    }
}

/// Where the IP packet of an Ethernet frame starts, past VLAN tags, a PPPoE
/// session header or an MPLS label stack (also for the Ethernet frames
/// tunnels carry).
pub(super) fn ethernet(f: &[u8]) -> Result<(usize, Marks), NotIp> {
    let mut off = 12;
    loop {
        let et = be16(f, off).ok_or(NotIp::TooShort)?;
        match et {
            ETH_VLAN | ETH_QINQ | ETH_QINQ_OLD => off += 4,
            ETH_IPV4 | ETH_IPV6 => return Ok((off + 2, Marks::NONE)),
            // PPPoE header (6) then the PPP protocol field.
            ETH_PPPOE_SESSION => return ppp(f, off + 2 + 6).map(|at| (at, Marks::NONE)),
            ETH_MPLS | ETH_MPLS_MULTICAST => return mpls(f, off + 2).map(|at| (at, Marks::MPLS)),
            other => return Err(NotIp::EtherType(other)),
        }
    }
}

/// Where the IP packet starts after a PPP protocol field at `at`: two
/// bytes, or one when compressed (RFC 1661 protocol-field compression: a
/// protocol's first byte is even, its last odd, so an odd first byte is a
/// one-byte field).
fn ppp(f: &[u8], at: usize) -> Result<usize, NotIp> {
    let first = *f.get(at).ok_or(NotIp::TooShort)?;
    let (proto, len) = if first & 1 == 1 { (u16::from(first), 1) } else { (be16(f, at).ok_or(NotIp::TooShort)?, 2) };
    match proto {
        PPP_IPV4 | PPP_IPV6 => Ok(at + len),
        p => Err(NotIp::Ppp(p)),
    }
}

/// Where the IP packet starts after the MPLS label stack at `at`: after
/// the entry with the bottom-of-stack bit, told IPv4 or IPv6 by its
/// version (RFC 3032 leaves it to the label; this is how every analyser
/// reads it). Anything else there (a pseudowire) is not read.
pub(super) fn mpls(f: &[u8], mut at: usize) -> Result<usize, NotIp> {
    // Label stacks are a few entries deep; a longer one is not MPLS.
    for _ in 0..16 {
        let bottom = *f.get(at + 2).ok_or(NotIp::TooShort)? & 1 == 1;
        at += 4;
        if bottom {
            return match f.get(at).map(|b| b >> 4) {
                Some(4 | 6) => Ok(at),
                Some(_) => Err(NotIp::EtherType(ETH_MPLS)),
                None => Err(NotIp::TooShort),
            };
        }
    }
    Err(NotIp::EtherType(ETH_MPLS))
}

/// Where the IP packet of an IEEE 802.11 frame at `at` starts: data frames
/// with an LLC/SNAP header are read; management and control frames, and
/// data frames without payload (null data), are `WifiManagement`; data
/// protected at the Wi-Fi layer (WEP/WPA) is `WifiProtected`.
fn wifi(f: &[u8], at: usize) -> Result<usize, NotIp> {
    let (fc0, fc1) = match f.get(at..at + 2) {
        Some(&[a, b]) => (a, b),
        _ => return Err(NotIp::TooShort),
    };
    let (kind, subtype) = ((fc0 >> 2) & 3, fc0 >> 4);
    if kind != 2 || subtype & 0x4 != 0 {
        return Err(NotIp::WifiManagement);
    }
    if fc1 & 0x40 != 0 {
        return Err(NotIp::WifiProtected);
    }
    // Three addresses, or four between access points (to and from DS);
    // QoS data adds QoS control, and with Order set HT control.
    let mut hdr = 24;
    if fc1 & 0x03 == 0x03 {
        hdr += 6;
    }
    if subtype & 0x8 != 0 {
        hdr += 2;
        if fc1 & 0x80 != 0 {
            hdr += 4;
        }
    }
    let llc = at + hdr;
    match f.get(llc..llc + 6) {
        // SNAP with the RFC 1042 or the bridge-tunnel OUI.
        Some([0xaa, 0xaa, 0x03, 0x00, 0x00, 0x00 | 0xf8]) => match be16(f, llc + 6).ok_or(NotIp::TooShort)? {
            ETH_IPV4 | ETH_IPV6 => Ok(llc + 8),
            et => Err(NotIp::EtherType(et)),
        },
        Some(_) => Err(NotIp::EtherType(0)),
        None => Err(NotIp::TooShort),
    }
}

/// Where the packet of an NFLOG record starts: in its payload TLV. The
/// header is 4 bytes (family, version, resource id); the TLVs' length and
/// type are in the byte order of the host that logged them, told here by
/// the first TLV (NFLOG types are small: one byte order gives a small type
/// and a length that fits, the other does not).
fn nflog(f: &[u8]) -> Result<usize, NotIp> {
    let tlv = |at: usize, little: bool| -> Option<(usize, u16)> {
        let b: [u8; 4] = f.get(at..at + 4)?.try_into().ok()?;
        let (len, typ) = if little {
            (u16::from_le_bytes([b[0], b[1]]), u16::from_le_bytes([b[2], b[3]]))
        } else {
            (u16::from_be_bytes([b[0], b[1]]), u16::from_be_bytes([b[2], b[3]]))
        };
        // The high bits of the type are netlink flags (nested, byte order).
        Some((usize::from(len), typ & 0x3fff))
    };
    let plausible =
        |little| tlv(4, little).is_some_and(|(len, typ)| len >= 4 && len <= f.len().saturating_sub(4) && typ < 64);
    let little = plausible(true) || !plausible(false);
    let mut at = 4;
    while let Some((len, typ)) = tlv(at, little) {
        if typ == NFLOG_PAYLOAD {
            return Ok(at + 4);
        }
        if len < 4 {
            break;
        }
        // TLVs are padded to 4 bytes.
        at += (len + 3) & !3;
    }
    Err(NotIp::TooShort)
}

/// Human name of a link type, for reports.
pub fn name(linktype: u16) -> String {
    match linktype {
        ETHERNET => "EN10MB".into(),
        RAW | RAW_OPENBSD | RAW_OLD => "RAW".into(),
        NULL => "NULL".into(),
        LOOP => "LOOP".into(),
        LINUX_SLL => "LINUX_SLL".into(),
        LINUX_SLL2 => "LINUX_SLL2".into(),
        IPV4 => "IPV4".into(),
        IPV6 => "IPV6".into(),
        PPP => "PPP".into(),
        PPP_HDLC => "PPP_HDLC".into(),
        PPP_ETHER => "PPP_ETHER".into(),
        C_HDLC => "C_HDLC".into(),
        IEEE802_11 => "IEEE802_11".into(),
        IEEE802_11_RADIOTAP => "IEEE802_11_RADIO".into(),
        NFLOG => "NFLOG".into(),
        n => format!("LINKTYPE {n}"),
    }
}
