//! Packet decoding: link layer, tunnels, IP (v4 options, v6 extension
//! headers), TCP/UDP headers, IP defragmentation.
//!
//! Header parsing is our own, a few dozen lines per layer, because the
//! ledger needs what general slicers hide when a capture is cut short: the
//! claimed IP length, every header's length, and where the wire bytes the
//! capture did not keep belong.

// Parsers of hostile input: an index that can panic is an error (clippy
// runs with -D warnings); use .get() and friends.
#![warn(clippy::indexing_slicing)]

pub mod defrag;
pub mod icmp;
pub mod link;
mod tunnel;

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

/// What the decoder met besides plain headers: the encapsulations a frame
/// went through (each at most once a frame), and a length taken from the
/// frame because a Linux offload left the IP header's out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Marks(pub u16);

impl Marks {
    pub const NONE: Marks = Marks(0);
    pub const VXLAN: Marks = Marks(1);
    pub const GENEVE: Marks = Marks(1 << 1);
    pub const GRE: Marks = Marks(1 << 2);
    pub const ERSPAN: Marks = Marks(1 << 3);
    pub const MPLS: Marks = Marks(1 << 4);
    pub const IPIP: Marks = Marks(1 << 5);
    pub const IPV6_IN_IP: Marks = Marks(1 << 6);
    pub const GTPU: Marks = Marks(1 << 7);
    /// TSO/GSO or BIG TCP: the IP length was 0 (or a jumbo option's).
    pub const OFFLOADED: Marks = Marks(1 << 8);

    /// The encapsulations by their report names (`notes.encapsulations`).
    pub const ENCAPSULATIONS: [(Marks, &'static str); 8] = [
        (Marks::VXLAN, "vxlan"),
        (Marks::GENEVE, "geneve"),
        (Marks::GRE, "gre"),
        (Marks::ERSPAN, "erspan"),
        (Marks::MPLS, "mpls"),
        (Marks::IPIP, "ip_in_ip"),
        (Marks::IPV6_IN_IP, "ipv6_in_ip"),
        (Marks::GTPU, "gtpu"),
    ];

    #[inline(always)]
    pub fn any(self) -> bool {
        self.0 != 0
    }

    /// Came through an encapsulation (not only an offload).
    #[inline(always)]
    pub fn tunnelled(self) -> bool {
        self.0 & !Marks::OFFLOADED.0 != 0
    }

    #[inline(always)]
    pub fn has(self, m: Marks) -> bool {
        self.0 & m.0 == m.0
    }
}

/// Frames per mark, for the report's notes.
#[derive(Debug, Default, Clone, Copy)]
pub struct MarkCounts([u64; 9]);

impl MarkCounts {
    /// Counts `frames` frames marked `m`.
    #[inline]
    pub fn add(&mut self, m: Marks, frames: u32) {
        if m.any() {
            self.add_each(m, frames);
        }
    }

    #[cold]
    fn add_each(&mut self, m: Marks, frames: u32) {
        for (bit, n) in self.0.iter_mut().enumerate() {
            if m.0 >> bit & 1 == 1 {
                *n += u64::from(frames);
            }
        }
    }

    /// Frames per encapsulation, by report name (those met only).
    pub fn encapsulations(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        Marks::ENCAPSULATIONS.iter().map(|&(m, name)| (name, self.count(m))).filter(|&(_, n)| n > 0)
    }

    pub fn offloaded(&self) -> u64 {
        self.count(Marks::OFFLOADED)
    }

    fn count(&self, m: Marks) -> u64 {
        self.0.get(m.0.trailing_zeros() as usize).copied().unwrap_or(0)
    }
}

impl std::ops::BitOr for Marks {
    type Output = Marks;
    fn bitor(self, o: Marks) -> Marks {
        Marks(self.0 | o.0)
    }
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
    /// Encapsulations passed and offload lengths (usually none).
    pub marks: Marks,
    /// The GTP-U tunnel id the packet came in (a device, in a mobile core).
    pub teid: Option<u32>,
    /// The frame's MACs and VLAN: read only when devices are keyed by them
    /// (`--device-key mac|vlan`), all zero otherwise.
    pub link_ids: LinkIds,
}

/// A frame's link-layer identities: its source and destination MAC (all
/// zero when the link has none, or only its source's on a Linux cooked
/// capture) and its outer 802.1Q VLAN id.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkIds {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub vlan: Option<u16>,
}

/// What the decoder made of a frame.
#[derive(Clone, Debug)]
pub enum Frame<'a> {
    /// A whole (or reassembled) IP packet carrying TCP, UDP or another protocol.
    Ip(Decoded<'a>),
    /// A fragment held for reassembly: its bytes are `link`, `network` and
    /// (first fragment) `transport` header, the rest fragment payload.
    Fragment { link_len: u32, net_len: u32, marks: Marks },
    /// Not IP (ARP, LLDP, ...) or a link type wiretax does not decode.
    NotIp { why: NotIp, marks: Marks },
    /// Claims to be IP but the headers are broken or cut: `link_len` bytes
    /// of link header, the rest counted as network.
    Broken { link_len: u32, why: &'static str, marks: Marks },
}

impl Frame<'_> {
    /// The encapsulations and offloads met.
    #[inline]
    pub fn marks(&self) -> Marks {
        match self {
            Frame::Ip(d) => d.marks,
            Frame::Fragment { marks, .. } | Frame::NotIp { marks, .. } | Frame::Broken { marks, .. } => *marks,
        }
    }

    /// With `m` added to its marks.
    fn marked(mut self, m: Marks) -> Self {
        match &mut self {
            Frame::Ip(d) => d.marks = d.marks | m,
            Frame::Fragment { marks, .. } | Frame::NotIp { marks, .. } | Frame::Broken { marks, .. } => {
                *marks = *marks | m
            }
        }
        self
    }

    /// The frame of an inner packet decoded as if its tunnel packet were
    /// the whole frame, put back in the real frame: `outer_link` more link
    /// bytes, the tunnel's marks. An inner fragment is not reassembled
    /// (its IP header is not where the frame's would be): it is broken.
    fn tunnelled(self, outer_link: u32, m: Marks, teid: Option<u32>) -> Self {
        match self {
            Frame::Ip(mut d) => {
                d.link_len += outer_link;
                d.teid = teid.or(d.teid);
                Frame::Ip(Decoded { marks: d.marks | m, ..d })
            }
            Frame::Fragment { link_len, marks, .. } => Frame::Broken {
                link_len: link_len + outer_link,
                why: "IP fragment inside a tunnel (not reassembled)",
                marks: marks | m,
            },
            Frame::NotIp { why, marks } => Frame::NotIp { why, marks: marks | m },
            Frame::Broken { link_len, why, marks } => {
                Frame::Broken { link_len: link_len + outer_link, why, marks: marks | m }
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotIp {
    EtherType(u16),
    UnsupportedLinktype(u16),
    TooShort,
    /// A PPP frame of another protocol than IP (LCP, IPCP, ...).
    Ppp(u16),
    /// An IEEE 802.11 data frame protected at the Wi-Fi layer (WEP/WPA).
    WifiProtected,
    /// An IEEE 802.11 management or control frame, or data without payload.
    WifiManagement,
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
    let (link_hdr, ip, marks) = match link::strip_marked(linktype, data) {
        Ok(x) => x,
        Err(why) => return Frame::NotIp { why, marks: Marks::NONE },
    };
    let f = decode_ip(link_hdr, ip, wire_len);
    if marks.any() { f.marked(marks) } else { f }
}

/// Decodes the IP packet that starts `link_hdr` bytes into the frame.
#[inline]
pub fn decode_ip(link_hdr: u32, ip: &[u8], wire_len: u32) -> Frame<'_> {
    decode_ip_in(0, link_hdr, ip, wire_len)
}

/// `decode_ip` inside `depth` tunnels.
#[inline(always)]
fn decode_ip_in(depth: u8, link_hdr: u32, ip: &[u8], wire_len: u32) -> Frame<'_> {
    let broken = |why| Frame::Broken { link_len: link_hdr.min(wire_len), why, marks: Marks::NONE };
    let Some(&first) = ip.first() else { return broken("no IP header captured") };
    let wire_ip_max = wire_len.saturating_sub(link_hdr);
    let h = match first >> 4 {
        // IPv4 (nearly every packet) straight from its fields, with no `IpHdr` in between.
        4 => {
            let Some(mut h) = Ipv4Fields::of(ip) else { return broken("IP header cut short or malformed") };
            let mut marks = Marks::NONE;
            // A frame past 64 KiB cannot have its length in the header.
            if h.total_len < h.hdr_len || h.total_len > wire_ip_max || wire_ip_max > 0xffff {
                match offloaded_ipv4_len(&h, wire_ip_max) {
                    Some(len) => {
                        h.total_len = len;
                        marks = Marks::OFFLOADED;
                    }
                    None => return broken("IP length field disagrees with the frame"),
                }
            }
            let link_len = wire_len - h.total_len;
            if h.is_fragment() {
                return Frame::Fragment { link_len, net_len: h.hdr_len, marks: Marks::NONE };
            }
            let body = ip.get(h.hdr_len as usize..h.total_len.min(ip.len() as u32) as usize).unwrap_or(&[]);
            let body_wire = h.total_len - h.hdr_len;
            let f = transport_in(depth, h.src.into(), h.dst.into(), h.proto, body, body_wire, link_len, h.hdr_len);
            return if marks.any() { f.marked(marks) } else { f };
        }
        6 => match ipv6(ip, wire_ip_max) {
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
        return Frame::Fragment { link_len, net_len: h.hdr_len, marks: Marks::NONE };
    }
    let body = ip.get(h.hdr_len as usize..h.total_len.min(ip.len() as u32) as usize).unwrap_or(&[]);
    let body_wire = h.total_len - h.hdr_len;
    let f = transport_in(depth, h.src, h.dst, h.proto, body, body_wire, link_len, h.hdr_len);
    if h.offloaded { f.marked(Marks::OFFLOADED) } else { f }
}

/// The length of an IPv4 packet whose header's does not fit the frame,
/// when a Linux offload explains it: a segment sent with TSO/GSO or BIG TCP
/// and captured on the sending host (its length 0 past 64 KiB, or the
/// frame longer than any length field). None: the header is broken.
#[cold]
#[inline(never)]
fn offloaded_ipv4_len(h: &Ipv4Fields, wire_ip_max: u32) -> Option<u32> {
    let whole = !h.is_fragment() && matches!(h.proto, 6 | 17) && wire_ip_max > h.hdr_len;
    if whole && (h.total_len == 0 || (wire_ip_max > 0xffff && h.total_len <= wire_ip_max)) {
        return Some(wire_ip_max);
    }
    // A valid length in a frame past 64 KiB (padding, never): as it says.
    (h.total_len >= h.hdr_len && h.total_len <= wire_ip_max).then_some(h.total_len)
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
    transport_in(0, src, dst, proto, body, body_wire, link_len, net_len)
}

/// `transport` inside `depth` tunnels.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn transport_in<'a>(
    depth: u8,
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
        17 => match body.first_chunk::<4>() {
            Some(h) => {
                // One compare for nearly every datagram: not a tunnel port.
                if tunnel::is_udp_port(u16::from_be_bytes([h[2], h[3]]))
                    && let Some(inner) = tunnel::udp(depth, body, body_wire, link_len, net_len)
                {
                    return inner;
                }
                Some((Transport::Udp, 8, 8, [h[0], h[1]], [h[2], h[3]]))
            }
            None => None,
        },
        tunnel::IPIP | tunnel::IPV6_IN_IP | tunnel::GRE => {
            if let Some(inner) = tunnel::ip(depth, proto, body, body_wire, link_len, net_len) {
                return inner;
            }
            None
        }
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
            marks: Marks::NONE,
            teid: None,
            link_ids: LinkIds::default(),
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
            marks: Marks::NONE,
            teid: None,
            link_ids: LinkIds::default(),
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
    /// The length is the frame's (an offloaded segment: IPv6 payload
    /// length 0, with or without a jumbo option).
    pub offloaded: bool,
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
        offloaded: false,
    })
}

/// An IPv6 header and its extension headers; `wire_ip_max`: the wire bytes
/// from the header on.
fn ipv6(b: &[u8], wire_ip_max: u32) -> Option<IpHdr> {
    let mut payload_len = be16(b, 4)? as u32;
    let src: [u8; 16] = b.get(8..24)?.try_into().ok()?;
    let dst: [u8; 16] = b.get(24..40)?.try_into().ok()?;
    let mut next = *b.get(6)?;
    let mut offloaded = false;
    if payload_len == 0 && next != 59 && wire_ip_max > 40 {
        // A jumbogram (RFC 2675: its length in a hop-by-hop option), or a
        // BIG TCP segment without one: the length is the frame's.
        payload_len = match next {
            0 => jumbo_len(b).unwrap_or(wire_ip_max - 40),
            _ => wire_ip_max - 40,
        };
        offloaded = true;
    }
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
        offloaded,
    })
}

/// The jumbo payload length option of a hop-by-hop header right after
/// the IPv6 header.
fn jumbo_len(b: &[u8]) -> Option<u32> {
    let end = 40 + (*b.get(41)? as usize + 1) * 8;
    let mut at = 42;
    while at < end {
        match *b.get(at)? {
            // Pad1.
            0 => at += 1,
            0xc2 => return be32(b, at + 2),
            _ => at += 2 + *b.get(at + 1)? as usize,
        }
    }
    None
}

/// Reads the IP header alone (for defragmentation), its length as
/// `decode_ip` reads it: `wire_ip_max` is the frame's wire bytes from the
/// IP header on, not the captured ones, or a cut fragment's bytes past the
/// cut would be nobody's (found by fuzzing).
pub fn ip_header(ip: &[u8], wire_ip_max: u32) -> Option<IpHdr> {
    match ip.first()? >> 4 {
        4 => {
            let mut h = ipv4(ip)?;
            if h.total_len < h.hdr_len || h.total_len > wire_ip_max || wire_ip_max > 0xffff {
                h.total_len = offloaded_ipv4_len(&Ipv4Fields::of(ip)?, wire_ip_max)?;
            }
            Some(h)
        }
        6 => ipv6(ip, wire_ip_max),
        _ => None,
    }
}

/// The wire bytes of a frame from its IP header on: `ip` is the captured
/// tail of `captured` from there.
pub fn wire_ip_len(wire_len: u32, captured: &[u8], ip: &[u8]) -> u32 {
    wire_len.saturating_sub(u32::try_from(captured.len().saturating_sub(ip.len())).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests;
