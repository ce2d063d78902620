//! Packet decoding: link layer, IP (v4 options, v6 extension headers),
//! TCP/UDP headers, IP defragmentation.
//!
//! Header parsing is our own, a few dozen lines per layer, because the
//! ledger needs what general slicers hide when a capture is cut short: the
//! claimed IP length, every header's length, and where the wire bytes the
//! capture did not keep belong.

// Parsers of hostile input: an index that can panic is an error (clippy
// runs with -D warnings); use .get() and friends.
#![warn(clippy::indexing_slicing)]

pub mod defrag;
pub mod link;

use std::net::IpAddr;

pub use defrag::Defragmenter;

/// TCP flags we act on.
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const ACK: u8 = 0x10;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpHeader {
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
}

/// Transport of a decoded IP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp(TcpHeader),
    Udp,
    /// ICMP and every other IP protocol: no flow.
    Other(u8),
}

/// One IP packet's layers, with the wire byte count of each.
#[derive(Debug, Clone, Copy)]
pub struct Decoded<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub transport: Transport,
    /// Wire bytes per layer: link header + trailer, IP headers, TCP/UDP header.
    pub link_len: u32,
    pub net_len: u32,
    pub transport_len: u32,
    /// Transport payload length on the wire.
    pub payload_len: u32,
    /// The payload bytes captured (a prefix of the wire payload).
    pub payload: &'a [u8],
}

/// What the decoder made of a frame.
#[derive(Debug)]
pub enum Frame<'a> {
    /// A whole (or reassembled) IP packet carrying TCP, UDP or another protocol.
    Ip(Decoded<'a>),
    /// A fragment held for reassembly: its bytes are `link`, `network` and
    /// (first fragment) `transport` header, the rest fragment payload.
    Fragment { link_len: u32, net_len: u32 },
    /// Not IP (ARP, LLDP, ...) or a link type wiretax does not decode.
    NotIp { why: NotIp },
    /// Claims to be IP but the headers are broken or cut: `link_len` bytes
    /// of link header, the rest counted as network.
    Broken { link_len: u32, why: &'static str },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotIp {
    EtherType(u16),
    UnsupportedLinktype(u16),
    TooShort,
}

#[inline]
fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}
#[inline]
fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes([*b.get(at)?, *b.get(at + 1)?, *b.get(at + 2)?, *b.get(at + 3)?]))
}

/// Decodes a captured frame of `wire_len` bytes on the wire.
#[inline]
pub fn decode<'a>(linktype: u16, data: &'a [u8], wire_len: u32) -> Frame<'a> {
    let (link_hdr, ip) = match link::strip(linktype, data) {
        Ok(x) => x,
        Err(why) => return Frame::NotIp { why },
    };
    decode_ip(link_hdr, ip, wire_len)
}

/// Decodes the IP packet that starts `link_hdr` bytes into the frame.
#[inline]
pub fn decode_ip(link_hdr: u32, ip: &[u8], wire_len: u32) -> Frame<'_> {
    let broken = |why| Frame::Broken { link_len: link_hdr.min(wire_len), why };
    let Some(&first) = ip.first() else { return broken("no IP header captured") };
    let wire_ip_max = wire_len.saturating_sub(link_hdr);
    let h = match first >> 4 {
        // IPv4 (nearly every packet) straight from its fields, with no `IpHdr` in between.
        4 => {
            let Some(h) = Ipv4Fields::of(ip) else { return broken("IP header cut short or malformed") };
            if h.total_len < h.hdr_len || h.total_len > wire_ip_max {
                return broken("IP length field disagrees with the frame");
            }
            let link_len = wire_len - h.total_len;
            if h.is_fragment() {
                return Frame::Fragment { link_len, net_len: h.hdr_len };
            }
            let body = ip.get(h.hdr_len as usize..h.total_len.min(ip.len() as u32) as usize).unwrap_or(&[]);
            let body_wire = h.total_len - h.hdr_len;
            return transport(h.src.into(), h.dst.into(), h.proto, body, body_wire, link_len, h.hdr_len);
        }
        6 => match ipv6(ip) {
            Some(h) => h,
            None => return broken("IP header cut short or malformed"),
        },
        _ => return broken("IP version is neither 4 nor 6"),
    };
    if h.total_len < h.hdr_len || h.total_len > wire_ip_max {
        return broken("IP length field disagrees with the frame");
    }
    // Everything in the frame around the IP packet is link: header and trailer/padding.
    let link_len = wire_len - h.total_len;
    if h.fragment.is_some() {
        return Frame::Fragment { link_len, net_len: h.hdr_len };
    }
    let body = ip.get(h.hdr_len as usize..h.total_len.min(ip.len() as u32) as usize).unwrap_or(&[]);
    let body_wire = h.total_len - h.hdr_len;
    transport(h.src, h.dst, h.proto, body, body_wire, link_len, h.hdr_len)
}

/// Slices the transport header of an IP payload of `body_wire` wire bytes
/// (of which `body` was captured).
#[inline(always)]
pub fn transport<'a>(
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    body: &'a [u8],
    body_wire: u32,
    link_len: u32,
    net_len: u32,
) -> Frame<'a> {
    // (transport, header length, least header length, source port,
    // destination port) of TCP and UDP; anything else, or a header cut
    // short, is `Other`.
    let parsed = match proto {
        // Ports, sequence and ack numbers, offset, flags, window: 16 bytes.
        6 => body.first_chunk::<16>().map(|h| {
            let tcp = TcpHeader {
                seq: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
                ack: u32::from_be_bytes([h[8], h[9], h[10], h[11]]),
                flags: h[13],
                window: u16::from_be_bytes([h[14], h[15]]),
            };
            (Transport::Tcp(tcp), ((h[12] >> 4) as u32) * 4, 20, [h[0], h[1]], [h[2], h[3]])
        }),
        17 => body.first_chunk::<4>().map(|h| (Transport::Udp, 8, 8, [h[0], h[1]], [h[2], h[3]])),
        _ => None,
    };
    match parsed {
        Some((transport, hl, min_hl, sport, dport)) if hl >= min_hl && hl <= body_wire => Frame::Ip(Decoded {
            src,
            dst,
            sport: u16::from_be_bytes(sport),
            dport: u16::from_be_bytes(dport),
            transport,
            link_len,
            net_len,
            transport_len: hl,
            payload_len: body_wire - hl,
            payload: body.get(hl as usize..).unwrap_or(&[]),
        }),
        _ => Frame::Ip(Decoded {
            src,
            dst,
            sport: 0,
            dport: 0,
            transport: Transport::Other(proto),
            link_len,
            // Non-TCP/UDP packets count wholly as network (REPORT.md).
            net_len: net_len + body_wire,
            transport_len: 0,
            payload_len: 0,
            payload: &[],
        }),
    }
}

/// An IP header as the ledger needs it.
#[derive(Debug, Clone, Copy)]
pub struct IpHdr {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// Header bytes: IPv4 with options, IPv6 with extension headers.
    pub hdr_len: u32,
    /// Header plus payload, from the length field.
    pub total_len: u32,
    /// Upper-layer protocol number.
    pub proto: u8,
    pub fragment: Option<FragInfo>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragInfo {
    pub id: u32,
    /// Offset of this fragment's data in the datagram payload, bytes.
    pub offset: u32,
    pub more: bool,
}

/// The fields of an IPv4 header that wiretax reads.
struct Ipv4Fields {
    src: [u8; 4],
    dst: [u8; 4],
    hdr_len: u32,
    total_len: u32,
    id: u16,
    /// Flags and fragment offset.
    flags_frag: u16,
    proto: u8,
}

impl Ipv4Fields {
    /// None when the header is cut short or its length is impossible.
    #[inline(always)]
    fn of(b: &[u8]) -> Option<Ipv4Fields> {
        // Every header has the 20 fixed bytes (options follow).
        let h = b.first_chunk::<20>()?;
        let ihl = (h[0] & 0x0f) as u32 * 4;
        if ihl < 20 || (b.len() as u32) < ihl {
            return None;
        }
        Some(Ipv4Fields {
            src: [h[12], h[13], h[14], h[15]],
            dst: [h[16], h[17], h[18], h[19]],
            hdr_len: ihl,
            total_len: u16::from_be_bytes([h[2], h[3]]) as u32,
            id: u16::from_be_bytes([h[4], h[5]]),
            flags_frag: u16::from_be_bytes([h[6], h[7]]),
            proto: h[9],
        })
    }

    /// More fragments follow, or this one is not the first.
    #[inline(always)]
    fn is_fragment(&self) -> bool {
        self.flags_frag & 0x3fff != 0
    }
}

fn ipv4(b: &[u8]) -> Option<IpHdr> {
    let h = Ipv4Fields::of(b)?;
    let more = h.flags_frag & 0x2000 != 0;
    let offset = (h.flags_frag & 0x1fff) as u32 * 8;
    Some(IpHdr {
        src: IpAddr::from(h.src),
        dst: IpAddr::from(h.dst),
        hdr_len: h.hdr_len,
        total_len: h.total_len,
        proto: h.proto,
        fragment: h.is_fragment().then_some(FragInfo { id: h.id as u32, offset, more }),
    })
}

fn ipv6(b: &[u8]) -> Option<IpHdr> {
    let payload_len = be16(b, 4)? as u32;
    let src: [u8; 16] = b.get(8..24)?.try_into().ok()?;
    let dst: [u8; 16] = b.get(24..40)?.try_into().ok()?;
    let mut next = *b.get(6)?;
    let mut at = 40usize;
    let mut fragment = None;
    // Walk extension headers; their bytes are network-layer overhead.
    loop {
        match next {
            0 | 43 | 60 | 135 | 139 | 140 | 253 | 254 => {
                let len = (*b.get(at + 1)? as usize + 1) * 8;
                next = *b.get(at)?;
                at += len;
            }
            51 => {
                // Authentication header: length in 4-byte units, minus 2.
                let len = (*b.get(at + 1)? as usize + 2) * 4;
                next = *b.get(at)?;
                at += len;
            }
            44 => {
                let ff = be16(b, at + 2)?;
                fragment = Some(FragInfo { id: be32(b, at + 4)?, offset: (ff & 0xfff8) as u32, more: ff & 1 != 0 });
                next = *b.get(at)?;
                at += 8;
                if fragment.is_some_and(|f| f.offset > 0) {
                    // Later fragments carry no upper-layer header.
                    break;
                }
            }
            _ => break,
        }
        if at > 40 + payload_len as usize {
            return None;
        }
    }
    let f = fragment.filter(|f| f.more || f.offset > 0);
    Some(IpHdr {
        src: IpAddr::from(src),
        dst: IpAddr::from(dst),
        hdr_len: at as u32,
        total_len: 40 + payload_len,
        proto: next,
        fragment: f,
    })
}

/// Reads the IP header alone (for defragmentation).
pub fn ip_header(ip: &[u8]) -> Option<IpHdr> {
    match ip.first()? >> 4 {
        4 => ipv4(ip),
        6 => ipv6(ip),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
