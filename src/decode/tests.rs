//! Link stripping, IP/TCP/UDP decoding and defragmentation, on frames taken
//! from the shipped captures (figures checked with tshark).

use super::defrag::{Defragmenter, FragBytes};
use super::link::{self, strip};
use super::*;
use crate::dissect::testkit::TestResult;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

static COAP_PUT: &[u8] = include_bytes!("../../captures/coap-con-put.pcap");
static HTTP: &[u8] = include_bytes!("../../captures/http-keepalive.pcap");
static HTTP6: &[u8] = include_bytes!("../../captures/http-keepalive-ipv6.pcap");

/// Record `n` (0-based) of a little-endian microsecond pcap.
fn frame(pcap: &[u8], n: usize) -> Vec<u8> {
    let mut at = 24;
    for i in 0.. {
        let caplen = u32::from_le_bytes([pcap[at + 8], pcap[at + 9], pcap[at + 10], pcap[at + 11]]) as usize;
        if i == n {
            return pcap[at + 16..at + 16 + caplen].to_vec();
        }
        at += 16 + caplen;
    }
    unreachable!()
}

/// coap-con-put frame 1: CON PUT /example_data, 10.78.0.2:49204 -> 10.78.0.1:5683,
/// 117 bytes: Ethernet 14, IPv4 20 (id 0x3744, DF), UDP 8, CoAP 75.
fn coap_put() -> Vec<u8> {
    frame(COAP_PUT, 0)
}

/// coap-con-put frame 2: the 2.04 answer, 47 bytes (CoAP 5), unpadded.
fn coap_ack() -> Vec<u8> {
    frame(COAP_PUT, 1)
}

/// http-keepalive frame 4: GET, 196 bytes: Ethernet 14, IPv4 20, TCP 32, HTTP 130.
fn http_get() -> Vec<u8> {
    frame(HTTP, 3)
}

/// http-keepalive-ipv6 frame 1: SYN fd77::2:58782 -> fd77::1:80, 94 bytes: Ethernet 14, IPv6 40, TCP 40.
fn http6_syn() -> Vec<u8> {
    frame(HTTP6, 0)
}

fn ip_of(eth: &[u8]) -> &[u8] {
    &eth[14..]
}

fn with_link(header: &[u8], eth: &[u8]) -> Vec<u8> {
    [header, ip_of(eth)].concat()
}

fn ethernet_with(ethertypes: &[u8], eth: &[u8]) -> Vec<u8> {
    [&eth[..12], ethertypes, ip_of(eth)].concat()
}

fn decoded(f: Frame<'_>) -> Decoded<'_> {
    match f {
        Frame::Ip(d) => d,
        other => panic!("not a decoded IP packet: {other:?}"),
    }
}

fn v4(a: [u8; 4]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

// ------------------------------------------------------------ link::strip

#[test]
fn strip_every_supported_link_layer() {
    let eth = coap_put();
    let ip = ip_of(&eth);
    let cases: Vec<(u16, Vec<u8>, u32)> = vec![
        (link::ETHERNET, eth.clone(), 14),
        (link::ETHERNET, ethernet_with(&[0x81, 0x00, 0x00, 0x64, 0x08, 0x00], &eth), 18),
        (link::ETHERNET, ethernet_with(&[0x88, 0xa8, 0x00, 0xc8, 0x81, 0x00, 0x00, 0x64, 0x08, 0x00], &eth), 22),
        (link::ETHERNET, ethernet_with(&[0x91, 0x00, 0x00, 0xc8, 0x81, 0x00, 0x00, 0x64, 0x08, 0x00], &eth), 22),
        // PPPoE session: version/type, code, session, length; PPP protocol IPv4.
        (link::ETHERNET, ethernet_with(&[0x88, 0x64, 0x11, 0x00, 0x12, 0x34, 0x00, 0x69, 0x00, 0x21], &eth), 22),
        // PPPoE inside a VLAN.
        (
            link::ETHERNET,
            ethernet_with(&[0x81, 0x00, 0x00, 0x64, 0x88, 0x64, 0x11, 0x00, 0x12, 0x34, 0x00, 0x69, 0x00, 0x21], &eth),
            26,
        ),
        (link::LINUX_SLL, with_link(&[0, 4, 0, 1, 0, 6, 2, 0x78, 0, 0, 0, 2, 0, 0, 0x08, 0x00], &eth), 16),
        (link::LINUX_SLL2, with_link(&[0x08, 0x00, 0, 0, 0, 0, 0, 2, 0, 1, 4, 6, 2, 0x78, 0, 0, 0, 2, 0, 0], &eth), 20),
        (link::NULL, with_link(&[2, 0, 0, 0], &eth), 4),
        // NULL written by a big-endian host.
        (link::NULL, with_link(&[0, 0, 0, 2], &eth), 4),
        (link::LOOP, with_link(&[0, 0, 0, 2], &eth), 4),
        (link::RAW, ip.to_vec(), 0),
        (link::RAW_OPENBSD, ip.to_vec(), 0),
        (link::RAW_OLD, ip.to_vec(), 0),
        (link::IPV4, ip.to_vec(), 0),
    ];
    for (lt, f, hdr) in cases {
        let (n, rest) = strip(lt, &f).unwrap_or_else(|e| panic!("{} {:02x?}: {e:?}", link::name(lt), &f[..24]));
        assert_eq!(n, hdr, "{}", link::name(lt));
        assert_eq!(rest, ip, "{}", link::name(lt));
    }
}

#[test]
fn strip_ipv6_link_layers() {
    let eth = http6_syn();
    let ip = ip_of(&eth);
    let cases: Vec<(u16, Vec<u8>, u32)> = vec![
        (link::ETHERNET, eth.clone(), 14),
        (link::ETHERNET, ethernet_with(&[0x88, 0x64, 0x11, 0x00, 0x12, 0x34, 0x00, 0x52, 0x00, 0x57], &eth), 22),
        (link::LINUX_SLL2, with_link(&[0x86, 0xdd, 0, 0, 0, 0, 0, 2, 0, 1, 4, 6, 2, 0x77, 0, 0, 0, 1, 0, 0], &eth), 20),
        // BSD address families of IPv6: 24 (NetBSD/OpenBSD), 28 (FreeBSD), 30 (Darwin).
        (link::NULL, with_link(&[24, 0, 0, 0], &eth), 4),
        (link::NULL, with_link(&[28, 0, 0, 0], &eth), 4),
        (link::NULL, with_link(&[30, 0, 0, 0], &eth), 4),
        (link::LOOP, with_link(&[0, 0, 0, 24], &eth), 4),
        (link::IPV6, ip.to_vec(), 0),
    ];
    for (lt, f, hdr) in cases {
        assert_eq!(strip(lt, &f), Ok((hdr, ip)), "{}", link::name(lt));
    }
}

#[test]
fn strip_refuses_what_is_not_ip() {
    let eth = coap_put();
    // ARP, LLDP.
    assert_eq!(strip(link::ETHERNET, &ethernet_with(&[0x08, 0x06], &eth)), Err(NotIp::EtherType(0x0806)));
    assert_eq!(strip(link::ETHERNET, &ethernet_with(&[0x88, 0xcc], &eth)), Err(NotIp::EtherType(0x88cc)));
    // PPPoE carrying LCP, not IP.
    let lcp = ethernet_with(&[0x88, 0x64, 0x11, 0x00, 0x12, 0x34, 0x00, 0x69, 0xc0, 0x21], &eth);
    assert_eq!(strip(link::ETHERNET, &lcp), Err(NotIp::Ppp(0xc021)));
    // SLL carrying ARP; NULL with an unknown family.
    assert_eq!(
        strip(link::LINUX_SLL, &with_link(&[0, 4, 0, 1, 0, 6, 2, 0x78, 0, 0, 0, 2, 0, 0, 0x08, 0x06], &eth)),
        Err(NotIp::EtherType(0x0806))
    );
    assert!(matches!(strip(link::NULL, &with_link(&[7, 0, 0, 0], &eth)), Err(NotIp::EtherType(_))));
    // USER0: reported, not decoded.
    assert_eq!(strip(147, &eth), Err(NotIp::UnsupportedLinktype(147)));
    assert_eq!(link::name(147), "LINKTYPE 147");
}

#[test]
fn strip_short_frames_never_panic() {
    let eth = coap_put();
    let stacked = ethernet_with(&[0x88, 0xa8, 0, 1, 0x81, 0, 0, 2, 0x88, 0x64, 0x11, 0, 0, 1, 0, 0x69, 0, 0x21], &eth);
    for lt in [link::ETHERNET, link::LINUX_SLL, link::LINUX_SLL2, link::NULL, link::LOOP, link::RAW] {
        for f in [&eth, &stacked] {
            for n in 0..40.min(f.len()) {
                match strip(lt, &f[..n]) {
                    Ok((hdr, rest)) => assert_eq!(hdr as usize + rest.len(), n),
                    Err(NotIp::TooShort | NotIp::EtherType(_)) => {}
                    Err(e) => panic!("{lt} {n}: {e:?}"),
                }
            }
        }
    }
    // A frame that is nothing but VLAN tags.
    let tags: Vec<u8> = [&eth[..12], &[0x81, 0x00, 0, 1].repeat(100)[..]].concat();
    assert_eq!(strip(link::ETHERNET, &tags), Err(NotIp::TooShort));
}

// ------------------------------------------------------------ decode

#[test]
fn decode_udp_coap_put() {
    let f = coap_put();
    let d = decoded(decode(link::ETHERNET, &f, 117));
    assert_eq!((d.src, d.dst, d.sport, d.dport), (v4([10, 78, 0, 2]), v4([10, 78, 0, 1]), 49204, 5683));
    assert_eq!(d.transport, Transport::Udp);
    assert_eq!((d.link_len, d.net_len, d.transport_len, d.payload_len), (14, 20, 8, 75));
    assert_eq!(d.payload, &f[42..]);
    // CoAP version 1, CON, token length 1; code 0.03 PUT.
    assert_eq!(&d.payload[..2], &[0x41, 0x03]);
}

#[test]
fn decode_tcp_http_get() {
    let f = http_get();
    let d = decoded(decode(link::ETHERNET, &f, 196));
    // tshark: 58244 -> 80, seq 2958064320, ack 1342480168, PSH+ACK, window 63, header 32, len 130.
    assert_eq!((d.sport, d.dport), (58244, 80));
    assert_eq!(
        d.transport,
        Transport::Tcp(TcpHeader { seq: 2958064320, ack: 1342480168, flags: tcp_flags::ACK | 0x08, window: 63 })
    );
    assert_eq!((d.link_len, d.net_len, d.transport_len, d.payload_len), (14, 20, 32, 130));
    assert!(d.payload.starts_with(b"GET /api/v1/sensor/latest?seq=1 HTTP/1.1\r\n"));
}

#[test]
fn decode_tcp_ipv6_syn() -> TestResult {
    let f = http6_syn();
    let d = decoded(decode(link::ETHERNET, &f, 94));
    assert_eq!((d.sport, d.dport), (58782, 80));
    assert!(matches!(d.transport, Transport::Tcp(h) if h.flags == tcp_flags::SYN));
    assert_eq!((d.link_len, d.net_len, d.transport_len, d.payload_len), (14, 40, 40, 0));
    assert_eq!(d.dst, "fd77::1".parse::<IpAddr>()?);
    Ok(())
}

#[test]
fn ethernet_padding_and_trailers_are_link() {
    let mut f = coap_ack();
    f.resize(60, 0);
    let d = decoded(decode(link::ETHERNET, &f, 60));
    assert_eq!((d.link_len, d.net_len, d.transport_len, d.payload_len), (14 + 13, 20, 8, 5));
    assert_eq!(d.payload.len(), 5, "padding is not payload");
    // A 4-byte FCS kept by the capture.
    let mut f = coap_put();
    f.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    let d = decoded(decode(link::ETHERNET, &f, 121));
    assert_eq!((d.link_len, d.payload_len, d.payload.len()), (18, 75, 75));
}

#[test]
fn snaplen_cut_keeps_wire_lengths() {
    let f = http_get();
    // Cut inside the payload: lengths from the headers, payload a prefix.
    let d = decoded(decode(link::ETHERNET, &f[..100], 196));
    assert_eq!((d.link_len, d.net_len, d.transport_len, d.payload_len), (14, 20, 32, 130));
    assert_eq!(d.payload, &f[66..100]);
    // Cut inside the TCP options (snaplen 64): the header's length is still known.
    let d = decoded(decode(link::ETHERNET, &f[..64], 196));
    assert_eq!((d.transport_len, d.payload_len, d.payload.len()), (32, 130, 0));
    // Cut inside the UDP header: the datagram's length is the IP packet's.
    let f = coap_put();
    match decode(link::ETHERNET, &f[..36], 117) {
        Frame::Ip(d) => assert_eq!(d.link_len + d.net_len + d.transport_len + d.payload_len, 117),
        other => panic!("{other:?}"),
    }
    // Cut inside the IP header: only the link header is known.
    match decode(link::ETHERNET, &f[..30], 117) {
        Frame::Broken { link_len, .. } => assert_eq!(link_len, 14),
        other => panic!("{other:?}"),
    }
}

/// IPv4 header of `eth` rebuilt with `options`, every length fixed.
fn with_ipv4_options(eth: &[u8], options: &[u8]) -> Vec<u8> {
    let ip = ip_of(eth);
    let mut hdr = ip[..20].to_vec();
    hdr[0] = 0x40 | ((20 + options.len()) / 4) as u8;
    let total = (ip.len() + options.len()) as u16;
    hdr[2..4].copy_from_slice(&total.to_be_bytes());
    [&eth[..14], &hdr, options, &ip[20..]].concat()
}

#[test]
fn ipv4_options_are_network_bytes() {
    let f = with_ipv4_options(&coap_put(), &[1, 1, 1, 0]);
    let d = decoded(decode(link::ETHERNET, &f, 121));
    assert_eq!((d.link_len, d.net_len, d.transport_len, d.payload_len), (14, 24, 8, 75));
    assert_eq!(d.dport, 5683);
    // The largest header: 40 bytes of options.
    let f = with_ipv4_options(&coap_put(), &[1; 40]);
    let d = decoded(decode(link::ETHERNET, &f, 157));
    assert_eq!((d.net_len, d.payload_len), (60, 75));
}

/// IPv6 packet of `eth` with extension headers (each given with its
/// next-header byte in place) inserted after the fixed header.
fn with_ipv6_ext(eth: &[u8], first_next: u8, ext: &[u8]) -> Vec<u8> {
    let ip = ip_of(eth);
    let mut hdr = ip[..40].to_vec();
    let plen = u16::from_be_bytes([ip[4], ip[5]]) + ext.len() as u16;
    hdr[4..6].copy_from_slice(&plen.to_be_bytes());
    hdr[6] = first_next;
    [&eth[..14], &hdr, ext, &ip[40..]].concat()
}

#[test]
fn ipv6_extension_headers_are_network_bytes() {
    let syn = http6_syn();
    // Hop-by-hop (8) -> destination options (16) -> TCP.
    let ext = [[60, 0, 1, 4, 0, 0, 0, 0].as_slice(), &[6, 1, 1, 12], &[0; 12]].concat();
    let f = with_ipv6_ext(&syn, 0, &ext);
    let d = decoded(decode(link::ETHERNET, &f, f.len() as u32));
    assert_eq!((d.link_len, d.net_len, d.transport_len, d.payload_len), (14, 64, 40, 0));
    assert!(matches!(d.transport, Transport::Tcp(h) if h.flags == tcp_flags::SYN));
    // Routing header, then an authentication header (length in 4-byte units).
    let ext = [[51, 0, 0, 0, 0, 0, 0, 0].as_slice(), &[6, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]].concat();
    let f = with_ipv6_ext(&syn, 43, &ext);
    let d = decoded(decode(link::ETHERNET, &f, f.len() as u32));
    assert_eq!((d.net_len, d.transport_len), (60, 40));
    // No next header (59): the packet is all network.
    let f = with_ipv6_ext(&syn, 0, &[59, 0, 1, 4, 0, 0, 0, 0]);
    let d = decoded(decode(link::ETHERNET, &f, f.len() as u32));
    assert_eq!(d.transport, Transport::Other(59));
    assert_eq!(d.link_len + d.net_len, f.len() as u32);
}

#[test]
fn ipv6_extension_chain_past_the_packet_is_broken() {
    let syn = http6_syn();
    // A hop-by-hop header claiming 2 KB in a 48-byte payload.
    let f = with_ipv6_ext(&syn, 0, &[6, 255, 1, 4, 0, 0, 0, 0]);
    assert!(matches!(decode(link::ETHERNET, &f, f.len() as u32), Frame::Broken { link_len: 14, .. }));
}

/// IPv4 fragment `i` of `eth`'s datagram: `data` bytes per fragment.
fn ipv4_fragment(eth: &[u8], offset: usize, len: usize, more: bool) -> Vec<u8> {
    let ip = ip_of(eth);
    let payload = &ip[20..];
    let part = &payload[offset..(offset + len).min(payload.len())];
    let mut hdr = ip[..20].to_vec();
    hdr[2..4].copy_from_slice(&((20 + part.len()) as u16).to_be_bytes());
    let ff = (if more { 0x2000 } else { 0 }) | (offset / 8) as u16;
    hdr[6..8].copy_from_slice(&ff.to_be_bytes());
    [&eth[..14], &hdr, part].concat()
}

/// IPv6 fragment of `eth`'s IPv4 UDP datagram moved to IPv6.
fn ipv6_fragment(eth: &[u8], ident: u32, offset: usize, len: usize, more: bool) -> Vec<u8> {
    let payload = &ip_of(eth)[20..];
    let part = &payload[offset..(offset + len).min(payload.len())];
    let mut hdr = vec![0x60, 0, 0, 0];
    hdr.extend_from_slice(&((8 + part.len()) as u16).to_be_bytes());
    hdr.extend_from_slice(&[44, 64]);
    hdr.extend_from_slice(&Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, 2).octets());
    hdr.extend_from_slice(&Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, 1).octets());
    let ff = offset as u16 | more as u16;
    let fh = [[17, 0].as_slice(), &ff.to_be_bytes(), &ident.to_be_bytes()].concat();
    [&eth[..12], &[0x86, 0xdd], &hdr, &fh, part].concat()
}

#[test]
fn fragments_are_held_not_decoded() {
    let f = coap_put();
    let first = ipv4_fragment(&f, 0, 24, true);
    assert!(matches!(decode(link::ETHERNET, &first, 58), Frame::Fragment { link_len: 14, net_len: 20, .. }));
    let last = ipv4_fragment(&f, 72, 24, false);
    assert!(matches!(decode(link::ETHERNET, &last, 45), Frame::Fragment { link_len: 14, net_len: 20, .. }));
    // A fragment padded to Ethernet's minimum: the padding is link.
    let mut padded = last.clone();
    padded.resize(60, 0);
    assert!(matches!(decode(link::ETHERNET, &padded, 60), Frame::Fragment { link_len: 29, net_len: 20, .. }));
    let first6 = ipv6_fragment(&f, 7, 0, 24, true);
    assert!(matches!(
        decode(link::ETHERNET, &first6, first6.len() as u32),
        Frame::Fragment { link_len: 14, net_len: 48, .. }
    ));
    let later6 = ipv6_fragment(&f, 7, 24, 24, true);
    assert!(matches!(
        decode(link::ETHERNET, &later6, later6.len() as u32),
        Frame::Fragment { link_len: 14, net_len: 48, .. }
    ));
    // An atomic fragment (offset 0, no more) is a whole datagram.
    let atomic = ipv6_fragment(&f, 7, 0, 100, false);
    let d = decoded(decode(link::ETHERNET, &atomic, atomic.len() as u32));
    assert_eq!((d.net_len, d.transport_len, d.payload_len, d.dport), (48, 8, 75, 5683));
}

#[test]
fn broken_ip_headers() {
    let f = coap_put();
    let mut bad_version = f.clone();
    bad_version[14] = 0x75;
    let mut short_ihl = f.clone();
    short_ihl[14] = 0x44;
    let mut too_long = f.clone();
    too_long[16..18].copy_from_slice(&200u16.to_be_bytes());
    let mut shorter_than_header = f.clone();
    shorter_than_header[16..18].copy_from_slice(&10u16.to_be_bytes());
    for (what, frame) in
        [("version", bad_version), ("ihl", short_ihl), ("length", too_long), ("short", shorter_than_header)]
    {
        match decode(link::ETHERNET, &frame, 117) {
            Frame::Broken { link_len, .. } => assert_eq!(link_len, 14, "{what}"),
            other => panic!("{what}: {other:?}"),
        }
    }
    // Nothing after the link header.
    assert!(matches!(decode(link::ETHERNET, &f[..14], 14), Frame::Broken { link_len: 14, .. }));
}

#[test]
fn bad_transport_headers_count_as_network() {
    let f = http_get();
    let mut bad_offset = f.clone();
    bad_offset[14 + 20 + 12] = 0x40; // data offset 4 words: below the minimum
    let d = decoded(decode(link::ETHERNET, &bad_offset, 196));
    assert_eq!(d.transport, Transport::Other(6));
    assert_eq!((d.link_len, d.net_len, d.transport_len, d.payload_len), (14, 182, 0, 0));
    let mut past_end = f.clone();
    past_end[14 + 20 + 12] = 0xf0; // 60 bytes of header in a 162-byte segment: fine
    assert_eq!(decoded(decode(link::ETHERNET, &past_end, 196)).transport_len, 60);
    // UDP header cut by the IP length.
    let mut f = coap_put();
    f[16..18].copy_from_slice(&24u16.to_be_bytes());
    let d = decoded(decode(link::ETHERNET, &f[..38], 38));
    assert_eq!(d.transport, Transport::Other(17));
    assert_eq!(d.link_len + d.net_len, 38);
}

/// Small deterministic generator for mutation tests.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Whatever the bytes, decoding never panics and every wire byte of the
/// frame is accounted once by the layer lengths it returns.
#[test]
fn mutated_frames_never_panic_and_lengths_add_up() {
    let seeds = [
        coap_put(),
        coap_ack(),
        http_get(),
        http6_syn(),
        ipv4_fragment(&coap_put(), 24, 24, true),
        ipv6_fragment(&coap_put(), 9, 24, 24, true),
    ];
    let lts = [link::ETHERNET, link::LINUX_SLL, link::LINUX_SLL2, link::NULL, link::LOOP, link::RAW, link::IPV6, 147];
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for round in 0..200_000 {
        let mut f = seeds[round % seeds.len()].clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(f.len().min(80));
            f[at] = rng.next() as u8;
        }
        // Sometimes a snaplen cut, sometimes a wire length beyond the capture.
        if rng.below(3) == 0 {
            f.truncate(rng.below(f.len() + 1));
        }
        let wire = f.len() as u32 + if rng.below(4) == 0 { rng.below(3000) as u32 } else { 0 };
        let lt = lts[rng.below(lts.len())];
        match decode(lt, &f, wire) {
            Frame::Ip(d) => {
                assert_eq!(d.link_len + d.net_len + d.transport_len + d.payload_len, wire, "{lt} {f:02x?}");
                assert!(d.payload.len() as u32 <= d.payload_len);
            }
            Frame::Fragment { link_len, net_len, .. } => assert!(link_len + net_len <= wire),
            Frame::Broken { link_len, .. } => assert!(link_len <= wire),
            Frame::NotIp { .. } => {}
        }
    }
}

static GTPU: &[u8] = include_bytes!("../../tests/data/field/gtpu.pcap");
static ERSPAN3: &[u8] = include_bytes!("../../tests/data/field/erspan3.pcap");
static RADIOTAP: &[u8] = include_bytes!("../../tests/data/field/radiotap.pcap");
static NFLOG: &[u8] = include_bytes!("../../tests/data/field/nflog.pcap");

/// Tunnels, 802.11 and NFLOG under mutation: no panic, and every wire byte
/// in exactly one layer.
#[test]
fn mutated_field_frames_never_panic_and_lengths_add_up() {
    let seeds = [
        (link::ETHERNET, frame(GTPU, 3)),
        (link::ETHERNET, frame(ERSPAN3, 3)),
        (link::IEEE802_11_RADIOTAP, frame(RADIOTAP, 3)),
        (link::NFLOG, frame(NFLOG, 3)),
    ];
    for (lt, f) in &seeds {
        let Frame::Ip(d) = decode(*lt, f, f.len() as u32) else { panic!("{lt}: {f:02x?}") };
        assert!(d.marks.any() || *lt != link::ETHERNET);
    }
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    for round in 0..100_000 {
        let (lt, mut f) = seeds[round % seeds.len()].clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(f.len().min(140));
            f[at] = rng.next() as u8;
        }
        if rng.below(3) == 0 {
            f.truncate(rng.below(f.len() + 1));
        }
        let wire = f.len() as u32 + if rng.below(4) == 0 { rng.below(3000) as u32 } else { 0 };
        match decode(lt, &f, wire) {
            Frame::Ip(d) => {
                assert_eq!(d.link_len + d.net_len + d.transport_len + d.payload_len, wire, "{lt} {f:02x?}");
                assert!(d.payload.len() as u32 <= d.payload_len);
            }
            Frame::Fragment { link_len, net_len, .. } => assert!(link_len + net_len <= wire),
            Frame::Broken { link_len, .. } => assert!(link_len <= wire),
            Frame::NotIp { .. } => {}
        }
    }
}

/// IP in IP in IP...: read four tunnels deep, the rest opaque (`network`).
#[test]
fn tunnels_nest_only_so_deep() {
    let inner = ip_of(&coap_put()).to_vec();
    let mut pkt = inner.clone();
    for _ in 0..10 {
        let mut outer = inner[..20].to_vec();
        outer[9] = 4;
        outer[2..4].copy_from_slice(&((20 + pkt.len()) as u16).to_be_bytes());
        outer.extend_from_slice(&pkt);
        pkt = outer;
    }
    let d = decoded(decode(link::RAW, &pkt, pkt.len() as u32));
    assert_eq!(d.transport, Transport::Other(4));
    assert_eq!(d.link_len, 4 * 20);
    assert!(d.marks.has(Marks::IPIP));
}

/// IPv4 of length 0 (BIG TCP) and IPv6 jumbograms take their length from
/// the frame, and say so.
#[test]
fn offloaded_lengths_come_from_the_frame() {
    let mut f = http_get();
    f[16..18].copy_from_slice(&[0, 0]);
    let d = decoded(decode(link::ETHERNET, &f, f.len() as u32));
    assert_eq!((d.payload_len, d.marks), (130, Marks::OFFLOADED));
    // A jumbogram: payload length 0, a hop-by-hop jumbo option.
    let syn = http6_syn();
    let mut j = syn[..54].to_vec();
    j[18..20].copy_from_slice(&[0, 0]);
    j[20] = 0;
    j.extend_from_slice(&[6, 0, 0xc2, 4, 0, 0, 0, 48]);
    j.extend_from_slice(&syn[54..]);
    let d = decoded(decode(link::ETHERNET, &j, j.len() as u32));
    assert_eq!((d.net_len, d.transport_len, d.marks), (48, 40, Marks::OFFLOADED));
    // A fragment of length 0 is still broken.
    let mut frag = ipv4_fragment(&coap_put(), 24, 24, true);
    frag[16..18].copy_from_slice(&[0, 0]);
    assert!(matches!(decode(link::ETHERNET, &frag, frag.len() as u32), Frame::Broken { .. }));
}

// ------------------------------------------------------------ defragmentation

/// Feeds one Ethernet fragment frame to `d`, as the pipeline does.
fn add(d: &mut Defragmenter, ts_ns: i64, eth: &[u8]) -> TestResult<Option<defrag::Joined>> {
    let Frame::Fragment { link_len, .. } = decode(link::ETHERNET, eth, eth.len() as u32) else {
        panic!("not a fragment: {eth:02x?}");
    };
    let ip = ip_of(eth);
    let h = ip_header(ip, wire_ip_len(eth.len() as u32, eth, ip)).ok_or("no IP header")?;
    Ok(d.add(ts_ns, &h, h.fragment.ok_or("no fragment header")?, ip, link_len))
}

/// The UDP datagram of coap_put() in fragments of 24 data bytes: 24, 24, 24, 11.
fn put_fragments() -> Vec<Vec<u8>> {
    let f = coap_put();
    vec![
        ipv4_fragment(&f, 0, 24, true),
        ipv4_fragment(&f, 24, 24, true),
        ipv4_fragment(&f, 48, 24, true),
        ipv4_fragment(&f, 72, 24, false),
    ]
}

fn assert_joined_put(j: &defrag::Joined, frames: u32) {
    let whole = coap_put();
    assert_eq!(j.data, &whole[34..]);
    assert_eq!(j.captured, j.data.len());
    assert_eq!((j.src, j.dst, j.proto), (v4([10, 78, 0, 2]), v4([10, 78, 0, 1]), 17));
    assert_eq!(
        j.bytes,
        FragBytes { frames, link: 14 * frames as u64, network: 20 * frames as u64, data: 83, repeated: 0 }
    );
    let d = decoded(j.frame());
    assert_eq!((d.sport, d.dport, d.transport_len, d.payload_len), (49204, 5683, 8, 75));
    assert_eq!(d.payload, &whole[42..]);
}

#[test]
fn defrag_in_order() -> TestResult {
    let mut d = Defragmenter::default();
    let fr = put_fragments();
    for f in &fr[..3] {
        assert!(add(&mut d, 0, f)?.is_none());
    }
    let j = add(&mut d, 1, &fr[3])?.ok_or("the last fragment did not complete it")?;
    assert_joined_put(&j, 4);
    assert_eq!((d.joined_datagrams, d.abandoned_datagrams), (1, 0));
    Ok(())
}

#[test]
fn defrag_out_of_order() -> TestResult {
    for order in [[3, 0, 1, 2], [0, 2, 1, 3], [3, 2, 1, 0], [1, 3, 0, 2]] {
        let mut d = Defragmenter::default();
        let fr = put_fragments();
        let mut joined = None;
        for (n, &i) in order.iter().enumerate() {
            let j = add(&mut d, n as i64, &fr[i])?;
            assert_eq!(j.is_some(), n == 3, "{order:?} after {n}");
            joined = joined.or(j);
        }
        assert_joined_put(&joined.ok_or("nothing joined")?, 4);
    }
    Ok(())
}

#[test]
fn defrag_ipv6() -> TestResult {
    let f = coap_put();
    let mut d = Defragmenter::default();
    let parts = [(48, 24, true), (0, 24, true), (72, 24, false), (24, 24, true)];
    let mut joined = None;
    for (n, &(off, len, more)) in parts.iter().enumerate() {
        let eth = ipv6_fragment(&f, 0x5a00_0001, off, len, more);
        let j = add(&mut d, n as i64, &eth)?;
        assert_eq!(j.is_some(), n == 3);
        joined = joined.or(j);
    }
    let j = joined.ok_or("nothing joined")?;
    assert_eq!(j.data, &f[34..]);
    assert_eq!(j.bytes, FragBytes { frames: 4, link: 56, network: 4 * 48, data: 83, repeated: 0 });
    Ok(())
}

#[test]
fn defrag_keeps_datagrams_apart() -> TestResult {
    // Same id, different sources: two datagrams, neither complete alone.
    let f = coap_put();
    let mut other = f.clone();
    other[14 + 12..14 + 16].copy_from_slice(&[10, 78, 0, 9]);
    let mut d = Defragmenter::default();
    assert!(add(&mut d, 0, &ipv4_fragment(&f, 0, 48, true))?.is_none());
    assert!(add(&mut d, 1, &ipv4_fragment(&other, 48, 48, false))?.is_none());
    assert!(add(&mut d, 2, &ipv4_fragment(&other, 0, 48, true))?.is_some());
    assert!(add(&mut d, 3, &ipv4_fragment(&f, 48, 48, false))?.is_some());
    assert_eq!(d.joined_datagrams, 2);
    Ok(())
}

#[test]
fn defrag_duplicate_fragment_does_not_complete_a_datagram() -> TestResult {
    let mut d = Defragmenter::default();
    let fr = put_fragments();
    assert!(add(&mut d, 0, &fr[0])?.is_none());
    assert!(add(&mut d, 1, &fr[0])?.is_none());
    assert!(add(&mut d, 2, &fr[2])?.is_none());
    // Fragment 2 (bytes 24..48) is still missing.
    assert!(add(&mut d, 3, &fr[3])?.is_none(), "joined with a hole");
    let j = add(&mut d, 4, &fr[1])?.ok_or("not complete with the missing fragment")?;
    assert_eq!(j.data, &coap_put()[34..]);
    Ok(())
}

#[test]
fn defrag_overlapping_fragments_do_not_hide_a_hole() -> TestResult {
    let f = coap_put();
    let mut d = Defragmenter::default();
    // 0..48, then 8..56 over it, then the last (72..83): 56..72 is missing.
    assert!(add(&mut d, 0, &ipv4_fragment(&f, 0, 48, true))?.is_none());
    assert!(add(&mut d, 1, &ipv4_fragment(&f, 8, 48, true))?.is_none());
    assert!(add(&mut d, 2, &ipv4_fragment(&f, 72, 24, false))?.is_none(), "joined with bytes 56..72 missing");
    Ok(())
}

#[test]
fn defrag_abandons_on_timeout_pool_size_and_finish() -> TestResult {
    let fr = put_fragments();
    // Timeout: 30 s by default; a later fragment of another datagram expires it.
    let mut d = Defragmenter::default();
    add(&mut d, 0, &fr[0])?;
    add(&mut d, 1_000, &fr[1])?;
    let mut other = fr[0].clone();
    other[14 + 4] ^= 0xff; // another IP id
    add(&mut d, 31_000_000_000, &other)?;
    assert_eq!(d.abandoned_datagrams, 1);
    assert_eq!(d.abandoned, FragBytes { frames: 2, link: 28, network: 40, data: 48, repeated: 0 });
    // The expired datagram's last fragments start a new, incomplete one.
    assert!(add(&mut d, 31_000_000_001, &fr[2])?.is_none());
    assert!(add(&mut d, 31_000_000_002, &fr[3])?.is_none());
    d.finish();
    assert_eq!(d.abandoned_datagrams, 3);
    assert_eq!(d.abandoned.frames, 5);
    assert_eq!(d.abandoned.data, 48 + 24 + 24 + 11);

    // Pool of 2: a third datagram evicts the oldest.
    let mut d = Defragmenter::new(2, 65_535, 30_000_000_000);
    for id in 0..3u8 {
        let mut f = fr[0].clone();
        f[14 + 5] = id;
        add(&mut d, id as i64, &f)?;
    }
    assert_eq!((d.abandoned_datagrams, d.abandoned.frames), (1, 1));

    // A datagram bigger than the limit is dropped at once, its bytes counted.
    let mut d = Defragmenter::new(8, 60, 30_000_000_000);
    assert!(add(&mut d, 0, &fr[1])?.is_none());
    assert!(add(&mut d, 1, &fr[2])?.is_none());
    assert_eq!(d.abandoned_datagrams, 1);
    d.finish();
    assert_eq!(d.abandoned.frames, 2);
    assert_eq!(d.abandoned.network + d.abandoned.link + d.abandoned.data, 2 * 58);
    Ok(())
}

#[test]
fn defrag_of_snaplen_cut_fragments() -> TestResult {
    let fr = put_fragments();
    let mut d = Defragmenter::default();
    let mut joined = None;
    for (i, f) in fr.iter().enumerate() {
        // Every fragment cut after 40 bytes (6 of its data bytes).
        let cut = &f[..40.min(f.len())];
        let Frame::Fragment { link_len, .. } = decode(link::ETHERNET, cut, f.len() as u32) else { panic!() };
        let ip = ip_of(cut);
        let h = ip_header(ip, wire_ip_len(f.len() as u32, cut, ip)).ok_or("no IP header")?;
        let j = d.add(i as i64, &h, h.fragment.ok_or("no fragment header")?, ip, link_len);
        joined = joined.or(j);
    }
    let j = joined.ok_or("not joined: lengths come from the headers")?;
    assert!(j.captured < j.data.len());
    assert_eq!(j.data.len(), 83);
    assert_eq!(j.bytes.data, 83);
    Ok(())
}

#[test]
fn defrag_takes_a_cut_fragments_bytes_from_a_whole_copy() -> TestResult {
    // The first fragment cut after 6 data bytes, then captured whole: the
    // datagram is captured whole.
    let fr = put_fragments();
    let mut d = Defragmenter::default();
    let cut = &fr[0][..40];
    let Frame::Fragment { link_len, .. } = decode(link::ETHERNET, cut, fr[0].len() as u32) else { panic!() };
    let h = ip_header(ip_of(cut), wire_ip_len(fr[0].len() as u32, cut, ip_of(cut))).ok_or("no IP header")?;
    assert!(d.add(0, &h, h.fragment.ok_or("no fragment header")?, ip_of(cut), link_len).is_none());
    for (i, f) in fr.iter().enumerate() {
        if let Some(j) = add(&mut d, 1 + i as i64, f)? {
            assert_eq!((j.data.as_slice(), j.captured), (&coap_put()[34..], 83));
            assert_eq!(j.bytes.repeated, 24);
            return Ok(());
        }
    }
    Err("not joined".into())
}

#[test]
fn defrag_holds_a_datagram_once_however_often_its_fragments_come() -> TestResult {
    // A hostile capture: one fragment ten thousand times (its copies were
    // all held), and a datagram of fragments that never touch (each once
    // cost a sort of all before it).
    let fr = put_fragments();
    let mut d = Defragmenter::default();
    for i in 0..10_000 {
        assert!(add(&mut d, i, &fr[0])?.is_none());
    }
    assert_eq!(d.held_bytes(), 24);
    let f = coap_put();
    let mut d = Defragmenter::new(8, 65_535 + 40, 30_000_000_000);
    let mut big = f.clone();
    big.resize(14 + 20 + 65_000, 0);
    let total = (big.len() - 14) as u16;
    big[16..18].copy_from_slice(&total.to_be_bytes());
    for i in 0..65_000 / 16 {
        assert!(add(&mut d, 0, &ipv4_fragment(&big, i * 16, 8, true))?.is_none());
    }
    assert_eq!(d.held_bytes(), 65_000 / 16 * 8);
    Ok(())
}

/// The decoder as it was before its fast paths (IPv4 without `IpHdr`, TCP
/// and UDP from fixed-size reads), kept to check them against.
mod plain {
    use super::super::{Decoded, FragInfo, Frame, IpHdr, Marks, TcpHeader, Transport, be16, be32};
    use std::net::IpAddr;

    pub fn decode_ip(link_hdr: u32, ip: &[u8], wire_len: u32) -> Frame<'_> {
        let broken = |why| Frame::Broken { link_len: link_hdr.min(wire_len), why, marks: Marks::NONE };
        let Some(&first) = ip.first() else { return broken("no IP header captured") };
        let wire_ip_max = wire_len.saturating_sub(link_hdr);
        let parsed = match first >> 4 {
            4 => ipv4(ip),
            6 => super::ipv6(ip, wire_ip_max),
            _ => return broken("IP version is neither 4 nor 6"),
        };
        let Some(h) = parsed else { return broken("IP header cut short or malformed") };
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
        transport(h.src, h.dst, h.proto, body, body_wire, link_len, h.hdr_len)
    }

    fn transport<'a>(
        src: IpAddr,
        dst: IpAddr,
        proto: u8,
        body: &'a [u8],
        body_wire: u32,
        link_len: u32,
        net_len: u32,
    ) -> Frame<'a> {
        let other = Decoded {
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
            link_ids: crate::decode::LinkIds::default(),
        };
        // (transport, header length) of TCP and UDP; anything else, or a
        // header cut short, is `other`.
        let parsed = match proto {
            6 => match (be32(body, 4), be32(body, 8), body.get(12), body.get(13), be16(body, 14)) {
                (Some(seq), Some(ack), Some(off), Some(&flags), Some(window)) => {
                    Some((Transport::Tcp(TcpHeader { seq, ack, flags, window }), ((off >> 4) as u32) * 4, 20))
                }
                _ => None,
            },
            17 => Some((Transport::Udp, 8, 8)),
            _ => None,
        };
        let (Some((transport, hl, min_hl)), Some(sport), Some(dport)) = (parsed, be16(body, 0), be16(body, 2)) else {
            return Frame::Ip(other);
        };
        if hl < min_hl || hl > body_wire {
            return Frame::Ip(other);
        }
        Frame::Ip(Decoded {
            src,
            dst,
            sport,
            dport,
            transport,
            link_len,
            net_len,
            transport_len: hl,
            payload_len: body_wire - hl,
            payload: body.get(hl as usize..).unwrap_or(&[]),
            marks: Marks::NONE,
            teid: None,
            link_ids: crate::decode::LinkIds::default(),
        })
    }

    fn ipv4(b: &[u8]) -> Option<IpHdr> {
        let ihl = (*b.first()? & 0x0f) as u32 * 4;
        if ihl < 20 || (b.len() as u32) < ihl {
            return None;
        }
        let total = be16(b, 2)? as u32;
        let id = be16(b, 4)? as u32;
        let ff = be16(b, 6)?;
        let more = ff & 0x2000 != 0;
        let offset = (ff & 0x1fff) as u32 * 8;
        let src: [u8; 4] = b.get(12..16)?.try_into().ok()?;
        let dst: [u8; 4] = b.get(16..20)?.try_into().ok()?;
        Some(IpHdr {
            src: IpAddr::from(src),
            dst: IpAddr::from(dst),
            hdr_len: ihl,
            total_len: total,
            proto: *b.get(9)?,
            fragment: (more || offset > 0).then_some(FragInfo { id, offset, more }),
            offloaded: false,
        })
    }
}

/// The fast paths decode every frame as the plain decoder does, and the
/// Ethernet shortcut strips as the general link code does.
#[test]
fn fast_paths_agree_with_the_plain_decoder() {
    let seeds = [
        coap_put(),
        coap_ack(),
        http_get(),
        http6_syn(),
        with_ipv4_options(&http_get(), &[1, 1, 1, 1]),
        ipv4_fragment(&coap_put(), 24, 24, true),
        ipv4_fragment(&coap_put(), 0, 24, true),
        ipv6_fragment(&coap_put(), 9, 24, 24, true),
    ];
    let lts = [link::ETHERNET, link::ETHERNET, link::LINUX_SLL, link::RAW];
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    for round in 0..200_000 {
        let mut f = seeds[round % seeds.len()].clone();
        for _ in 0..rng.below(4) {
            let at = rng.below(f.len().min(60));
            f[at] = rng.next() as u8;
        }
        if rng.below(3) == 0 {
            f.truncate(rng.below(f.len() + 1));
        }
        let wire = f.len() as u32 + if rng.below(4) == 0 { rng.below(3000) as u32 } else { 0 };
        let lt = lts[rng.below(lts.len())];
        let stripped = strip(lt, &f);
        assert_eq!(stripped, link::strip_any(lt, &f).map(|(hdr, ip, _)| (hdr, ip)), "{lt} {f:02x?}");
        let (got, want) = match stripped {
            Ok((hdr, ip)) => (decode_ip(hdr, ip, wire), plain::decode_ip(hdr, ip, wire)),
            Err(_) => continue,
        };
        // Tunnels and offloaded lengths (a mutation can make either) are
        // the plain decoder's broken or opaque packets.
        if got.marks().any() {
            continue;
        }
        assert_eq!(format!("{got:?}"), format!("{want:?}"), "{lt} {wire} {f:02x?}");
    }
}

#[test]
fn link_ids_read_the_macs_and_vlan_of_each_link() -> Result<(), String> {
    use super::link::link_ids;
    let (a, b) = ([2, 0, 0, 0, 0, 0x0a], [2, 0, 0, 0, 0, 0x0b]);
    // Ethernet: destination, source, then an 802.1Q tag (PCP 5, VID 100).
    let mut eth = [b, a].concat();
    eth.extend_from_slice(&[0x81, 0x00, 0xa0, 0x64, 0x08, 0x00]);
    let ids = link_ids(link::ETHERNET, &eth);
    assert_eq!((ids.src_mac, ids.dst_mac, ids.vlan), (a, b, Some(100)));
    assert_eq!(link_ids(link::ETHERNET, &eth[..13]).vlan, None);
    // 802.11 data to the AP (to-DS): A1 the BSSID, A2 the source, A3 the destination.
    let ap = [2, 0, 0, 0, 0, 0xff];
    let mut wifi = vec![0x08, 0x01, 0, 0];
    wifi.extend_from_slice(&[ap, a, b].concat());
    let ids = link_ids(link::IEEE802_11, &wifi);
    assert_eq!((ids.src_mac, ids.dst_mac), (a, b));
    // From the AP (from-DS): A1 the destination, A2 the BSSID, A3 the source.
    wifi[1] = 0x02;
    wifi.splice(4..22, [b, ap, a].concat());
    let ids = link_ids(link::IEEE802_11, &wifi);
    assert_eq!((ids.src_mac, ids.dst_mac), (a, b));
    // Linux cooked: the source's address only.
    let mut sll = vec![0, 4, 0, 1, 0, 6];
    sll.extend_from_slice(&a);
    sll.extend_from_slice(&[0, 0, 0x08, 0x00]);
    let ids = link_ids(link::LINUX_SLL, &sll);
    assert_eq!((ids.src_mac, ids.dst_mac), (a, [0; 6]));
    // No MACs on a raw IP link; nothing read from a cut frame.
    assert_eq!(link_ids(link::RAW, &eth), super::LinkIds::default());
    assert_eq!(link_ids(link::ETHERNET, &eth[..4]).src_mac, [0; 6]);
    Ok(())
}
