//! Tunnels: VXLAN, Geneve, GRE (IP, transparent Ethernet bridging, ERSPAN
//! types I to III, MPLS), IP-in-IP and IPv6-in-IP, GTP-U. Everything
//! outside the innermost IP packet is `link` (REPORT.md), and the inner
//! packet is decoded as if captured directly. Reached only from a UDP
//! datagram to a tunnel port or an IP packet of protocol 4, 41 or 47, so
//! other packets pay a port compare at most.

use super::link::{ETH_MPLS, ethernet, mpls};
use super::{Frame, Marks, NotIp, be16, be32, decode_ip_in};

/// Tunnels inside tunnels are read this deep; deeper ones stay opaque (a
/// hostile capture cannot make the decoder recurse without end).
const MAX_DEPTH: u8 = 4;

pub(super) const IPIP: u8 = 4;
pub(super) const IPV6_IN_IP: u8 = 41;
pub(super) const GRE: u8 = 47;

const VXLAN_PORT: u16 = 4789;
/// The Linux kernel's VXLAN default port (before IANA's).
const VXLAN_LINUX_PORT: u16 = 8472;
const GENEVE_PORT: u16 = 6081;
const GTPU_PORT: u16 = 2152;

const PROTO_IPV4: u16 = 0x0800;
const PROTO_IPV6: u16 = 0x86dd;
const PROTO_ETHERNET: u16 = 0x6558;
const PROTO_ERSPAN_2: u16 = 0x88be;
const PROTO_ERSPAN_3: u16 = 0x22eb;

/// A UDP destination port some tunnel uses.
#[inline(always)]
pub(super) fn is_udp_port(port: u16) -> bool {
    matches!(port, VXLAN_PORT | VXLAN_LINUX_PORT | GENEVE_PORT | GTPU_PORT)
}

/// Where the inner packet starts in the tunnel's payload (`Err`: a tunnel,
/// but what it carries is not IP), and the encapsulations it went through.
type Inner = (Result<usize, NotIp>, Marks);

/// What an Ethernet frame at `base` of a tunnel marked `m` carries.
fn ether_at(f: &[u8], base: usize, m: Marks) -> Inner {
    match f.get(base..).map(ethernet) {
        Some(Ok((at, mm))) => (Ok(base + at), m | mm),
        Some(Err(why)) => (Err(why), m),
        None => (Err(NotIp::TooShort), m),
    }
}

/// A UDP datagram to a tunnel port (`body`: its UDP header on; the outer
/// packet had `net_len` bytes of IP header and `link_len` of link): the
/// inner packet's frame, or None when the datagram is not that tunnel's.
#[cold]
#[inline(never)]
pub(super) fn udp(depth: u8, body: &[u8], body_wire: u32, link_len: u32, net_len: u32) -> Option<Frame<'_>> {
    if depth >= MAX_DEPTH {
        return None;
    }
    let p = body.get(8..)?;
    let mut teid = None;
    let inner = match be16(body, 2)? {
        VXLAN_PORT | VXLAN_LINUX_PORT => vxlan(p)?,
        GENEVE_PORT => geneve(p)?,
        _ => {
            let (at, id) = gtpu(p)?;
            teid = Some(id);
            (Ok(at), Marks::GTPU)
        }
    };
    Some(inner_frame(depth, body, 8, inner, body_wire, link_len, net_len, teid))
}

/// An IP packet of protocol 4, 41 or 47: the inner packet's frame, or None
/// when it is not a tunnel read here (GRE of another kind).
#[cold]
#[inline(never)]
pub(super) fn ip(depth: u8, proto: u8, body: &[u8], body_wire: u32, link_len: u32, net_len: u32) -> Option<Frame<'_>> {
    if depth >= MAX_DEPTH {
        return None;
    }
    let version = body.first().map(|b| b >> 4);
    let inner = match proto {
        IPIP if version == Some(4) => (Ok(0), Marks::IPIP),
        IPV6_IN_IP if version == Some(6) => (Ok(0), Marks::IPV6_IN_IP),
        GRE => gre(body)?,
        _ => return None,
    };
    Some(inner_frame(depth, body, 0, inner, body_wire, link_len, net_len, None))
}

/// The frame of the packet at `at + inner` in `body`, decoded as if the
/// outer IP packet were its whole frame, then with the outer link bytes
/// and the tunnel's marks added.
#[allow(clippy::too_many_arguments)]
fn inner_frame(
    depth: u8,
    body: &[u8],
    at: usize,
    inner: Inner,
    body_wire: u32,
    link_len: u32,
    net_len: u32,
    teid: Option<u32>,
) -> Frame<'_> {
    let outer = net_len + body_wire;
    let (off, marks) = match inner {
        (Ok(off), marks) => (at + off, marks),
        (Err(why), marks) => return Frame::NotIp { why, marks },
    };
    let ip = body.get(off..).unwrap_or(&[]);
    let hdr = net_len.saturating_add(off as u32).min(outer);
    decode_ip_in(depth + 1, hdr, ip, outer).tunnelled(link_len, marks, teid)
}

/// VXLAN (RFC 7348): flags with the VNI bit, 3 reserved, VNI, reserved;
/// then an Ethernet frame.
fn vxlan(p: &[u8]) -> Option<Inner> {
    if p.first()? & 0x08 == 0 {
        return None;
    }
    Some(ether_at(p, 8, Marks::VXLAN))
}

/// Geneve (RFC 8926): version and option length, flags, protocol, VNI;
/// options; then Ethernet or IP.
fn geneve(p: &[u8]) -> Option<Inner> {
    let first = *p.first()?;
    if first >> 6 != 0 {
        return None;
    }
    let at = 8 + usize::from(first & 0x3f) * 4;
    Some(match be16(p, 2)? {
        PROTO_ETHERNET => ether_at(p, at, Marks::GENEVE),
        PROTO_IPV4 | PROTO_IPV6 => (Ok(at), Marks::GENEVE),
        _ => return None,
    })
}

/// GTP-U (3GPP TS 29.281): a G-PDU's header (version 1, protocol type
/// GTP), its optional fields and extension headers, then the user's IP
/// packet. The TEID with it. Other messages (echo, end marker) are not
/// tunnelled traffic.
fn gtpu(p: &[u8]) -> Option<(usize, u32)> {
    let flags = *p.first()?;
    if flags >> 5 != 1 || flags & 0x10 == 0 || *p.get(1)? != 0xff {
        return None;
    }
    let teid = be32(p, 4)?;
    let mut at = 8;
    if flags & 0x07 != 0 {
        // Sequence number, N-PDU number, next extension header type.
        let mut next = *p.get(11)?;
        at = 12;
        // Each extension: length in 4-byte units, content, next type.
        for _ in 0..16 {
            if next == 0 {
                break;
            }
            let len = usize::from(*p.get(at)?) * 4;
            if len == 0 {
                return None;
            }
            next = *p.get(at + len - 1)?;
            at += len;
        }
        if next != 0 {
            return None;
        }
    }
    matches!(p.get(at)? >> 4, 4 | 6).then_some((at, teid))
}

/// GRE (RFC 2784/2890): flags and version 0, protocol, then checksum, key
/// and sequence number as flagged. Carries IP, Ethernet (0x6558), ERSPAN
/// or MPLS.
fn gre(p: &[u8]) -> Option<Inner> {
    let flags = be16(p, 0)?;
    if flags & 0x0007 != 0 {
        // Version 1 is PPTP's enhanced GRE: not read.
        return None;
    }
    let sequenced = flags & 0x1000 != 0;
    let at = 4 + 4 * (usize::from(flags & 0xc000 != 0) + usize::from(flags & 0x2000 != 0) + usize::from(sequenced));
    let erspan = Marks::GRE | Marks::ERSPAN;
    Some(match be16(p, 2)? {
        PROTO_IPV4 | PROTO_IPV6 => (Ok(at), Marks::GRE),
        PROTO_ETHERNET => ether_at(p, at, Marks::GRE),
        // ERSPAN type I has no header of its own (and no sequence number);
        // type II has 8 bytes, version 1.
        PROTO_ERSPAN_2 if !sequenced => ether_at(p, at, erspan),
        PROTO_ERSPAN_2 => {
            if p.get(at)? >> 4 != 1 {
                return None;
            }
            ether_at(p, at + 8, erspan)
        }
        // Type III: 12 bytes, version 2, and 8 more with the O flag; the
        // frame type says Ethernet (0) or IP (2).
        PROTO_ERSPAN_3 => {
            if p.get(at)? >> 4 != 2 {
                return None;
            }
            let (b10, b11) = (*p.get(at + 10)?, *p.get(at + 11)?);
            let start = at + 12 + if b11 & 1 != 0 { 8 } else { 0 };
            match (b10 >> 2) & 0x1f {
                0 => ether_at(p, start, erspan),
                2 => (Ok(start), erspan),
                _ => return None,
            }
        }
        ETH_MPLS => (mpls(p, at), Marks::GRE | Marks::MPLS),
        _ => return None,
    })
}
