//! Link layers: how many header bytes precede the IP packet.

use super::{NotIp, be16};

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

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86dd;
const ETH_VLAN: u16 = 0x8100;
const ETH_QINQ: u16 = 0x88a8;
const ETH_QINQ_OLD: u16 = 0x9100;
const ETH_PPPOE_SESSION: u16 = 0x8864;
const PPP_IPV4: u16 = 0x0021;
const PPP_IPV6: u16 = 0x0057;

/// Splits a frame into (link header length, IP packet bytes).
#[inline]
pub fn strip(linktype: u16, f: &[u8]) -> Result<(u32, &[u8]), NotIp> {
    // Nearly every frame: IP in plain Ethernet.
    if linktype == ETHERNET
        && let Some((hdr, ip)) = f.split_first_chunk::<14>()
        && let ETH_IPV4 | ETH_IPV6 = u16::from_be_bytes([hdr[12], hdr[13]])
    {
        return Ok((14, ip));
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

/// `strip` for every link type and encapsulation.
pub(super) fn strip_any(linktype: u16, f: &[u8]) -> Result<(u32, &[u8]), NotIp> {
    let at = |n: usize| f.get(n..).map(|ip| (n as u32, ip)).ok_or(NotIp::TooShort);
    match linktype {
        ETHERNET => {
            let mut off = 12;
            loop {
                let et = be16(f, off).ok_or(NotIp::TooShort)?;
                match et {
                    ETH_VLAN | ETH_QINQ | ETH_QINQ_OLD => off += 4,
                    ETH_IPV4 | ETH_IPV6 => return at(off + 2),
                    ETH_PPPOE_SESSION => {
                        // PPPoE header (6) then the PPP protocol field (2).
                        let proto = be16(f, off + 2 + 6).ok_or(NotIp::TooShort)?;
                        return match proto {
                            PPP_IPV4 | PPP_IPV6 => at(off + 2 + 8),
                            p => Err(NotIp::EtherType(p)),
                        };
                    }
                    other => return Err(NotIp::EtherType(other)),
                }
            }
        }
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
        other => Err(NotIp::UnsupportedLinktype(other)),
    }
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
        n => format!("LINKTYPE {n}"),
    }
}
