//! ICMP destination unreachable errors that say a port has nothing
//! listening: ICMPv4 type 3 code 3 and ICMPv6 type 1 code 4 (RFC 792,
//! RFC 4443). The error quotes the packet it answers (its IP header and at
//! least 8 bytes past it), which names the client and the server port.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The quoted packet's ends: the client that sent it, the server it was for,
/// and whether it was TCP (else UDP).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unreachable {
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub tcp: bool,
}

/// The port unreachable error an IP packet (`ip`: from its IP header on)
/// carries, if it is one; `None` for anything else or a quote cut short.
pub fn port_unreachable(ip: &[u8]) -> Option<Unreachable> {
    let version = ip.first()? >> 4;
    let (icmp, v6) = match version {
        4 => {
            let ihl = usize::from(ip.first()? & 0x0f) * 4;
            if *ip.get(9)? != 1 {
                return None;
            }
            (ip.get(ihl..)?, false)
        }
        // ICMPv6 directly after the fixed header (no extension headers:
        // an error is sent without them).
        6 if *ip.get(6)? == 58 => (ip.get(40..)?, true),
        _ => return None,
    };
    let (kind, code) = (*icmp.first()?, *icmp.get(1)?);
    let is_port = if v6 { kind == 1 && code == 4 } else { kind == 3 && code == 3 };
    if !is_port {
        return None;
    }
    // Type, code, checksum and 4 unused bytes, then the quoted packet.
    quoted(icmp.get(8..)?)
}

/// The ends of a quoted IP packet carrying TCP or UDP.
fn quoted(q: &[u8]) -> Option<Unreachable> {
    let (src, dst, proto, rest) = match q.first()? >> 4 {
        4 => {
            let ihl = usize::from(q.first()? & 0x0f) * 4;
            let a: [u8; 4] = q.get(12..16)?.try_into().ok()?;
            let b: [u8; 4] = q.get(16..20)?.try_into().ok()?;
            (IpAddr::V4(Ipv4Addr::from(a)), IpAddr::V4(Ipv4Addr::from(b)), *q.get(9)?, q.get(ihl..)?)
        }
        6 => {
            let a: [u8; 16] = q.get(8..24)?.try_into().ok()?;
            let b: [u8; 16] = q.get(24..40)?.try_into().ok()?;
            (IpAddr::V6(Ipv6Addr::from(a)), IpAddr::V6(Ipv6Addr::from(b)), *q.get(6)?, q.get(40..)?)
        }
        _ => return None,
    };
    if proto != 6 && proto != 17 {
        return None;
    }
    let sport = u16::from_be_bytes([*rest.first()?, *rest.get(1)?]);
    let dport = u16::from_be_bytes([*rest.get(2)?, *rest.get(3)?]);
    Some(Unreachable { client: SocketAddr::new(src, sport), server: SocketAddr::new(dst, dport), tcp: proto == 6 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_quoted_ends_and_nothing_else() -> Result<(), std::net::AddrParseError> {
        // ICMPv4 port unreachable quoting UDP 10.0.0.2:40000 -> 10.0.0.1:5683.
        let mut p = vec![0x45, 0, 0, 56, 0, 0, 0, 0, 64, 1, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
        p.extend([3, 3, 0, 0, 0, 0, 0, 0]);
        p.extend([0x45, 0, 0, 40, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 2, 10, 0, 0, 1]);
        p.extend([0x9c, 0x40, 0x16, 0x33, 0, 20, 0, 0]);
        let u = port_unreachable(&p);
        assert_eq!(
            u,
            Some(Unreachable { client: "10.0.0.2:40000".parse()?, server: "10.0.0.1:5683".parse()?, tcp: false })
        );
        // Host unreachable (code 1) is not "nothing listening".
        let mut host = p.clone();
        if let Some(code) = host.get_mut(21) {
            *code = 1;
        }
        assert_eq!(port_unreachable(&host), None);
        // Cut short anywhere: no answer, no panic.
        for n in 0..p.len() - 4 {
            assert_eq!(port_unreachable(p.get(..n).unwrap_or_default()), None);
        }
        Ok(())
    }
}
