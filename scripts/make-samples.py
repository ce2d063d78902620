#!/usr/bin/env python3
"""Derive the sample captures in tests/data/samples/ from the real captures in captures/.

Every sample is a rewrite of the records of a shipped capture (real frames
recorded with tcpdump), changed in one way only, so a test can predict its
figures exactly from the base capture's: another file format or byte order,
another link layer, extra IP header bytes, fragments, a snaplen cut, or
damage at a known record.

Deterministic: no clock, no randomness beyond a fixed seed. Python 3 stdlib.
Run from the repository root:  python3 scripts/make-samples.py
"""

import hashlib
import os
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CAPTURES = os.path.join(ROOT, "captures")
OUT = os.path.join(ROOT, "tests", "data", "samples")

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_USER0 = 147
LINKTYPE_LINUX_SLL2 = 276

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD


class Rec:
    """One frame: capture time in ns, captured bytes, length on the wire."""

    def __init__(self, ts_ns, data, wire_len=None):
        self.ts_ns = ts_ns
        self.data = bytes(data)
        self.wire_len = len(data) if wire_len is None else wire_len


# ---------------------------------------------------------------- pcap I/O


def read_pcap(name):
    with open(os.path.join(CAPTURES, name), "rb") as f:
        raw = f.read()
    magic = raw[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        end = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        end = ">"
    else:
        sys.exit(f"{name}: not a pcap file")
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    _, _, _, _, snaplen, linktype = struct.unpack(end + "HHiIII", raw[4:24])
    recs = []
    at = 24
    while at + 16 <= len(raw):
        sec, frac, incl, orig = struct.unpack(end + "IIII", raw[at:at + 16])
        data = raw[at + 16:at + 16 + incl]
        ts = sec * 1_000_000_000 + (frac if nano else frac * 1000)
        recs.append(Rec(ts, data, orig))
        at += 16 + incl
    return linktype, recs


def pcap_bytes(recs, linktype, end="<", nano=False, snaplen=262144):
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = bytearray(struct.pack(end + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype))
    for r in recs:
        sec, rem = divmod(r.ts_ns, 1_000_000_000)
        frac = rem if nano else rem // 1000
        data = r.data[:snaplen]
        out += struct.pack(end + "IIII", sec, frac, len(data), r.wire_len)
        out += data
    return bytes(out)


WRITTEN = []


def write(name, blob):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(blob)
    WRITTEN.append((name, len(blob)))
    print(f"{name}: {len(blob)} bytes")


# What each sample is; README.md lists them (every sample must have a line).
ABOUT = {
    "http-keepalive-be.pcap": "http-keepalive.pcap written big-endian",
    "http-keepalive-ns.pcap": "http-keepalive.pcap with nanosecond timestamps (magic a1b23c4d)",
    "coap-con-get-ns-be.pcap": "coap-con-get.pcap, big-endian and nanosecond",
    "multi-interface.pcapng": "SHB; IDBs: Ethernet (us), Linux SLL2 (if_tsresol 9), USER0 147 (unsupported); "
    "http-keepalive as EPBs on 0 with an unknown block (type 0xACE) after the 11th, coap-con-get as SLL2 EPBs on 1 "
    "(starting 1 s after the last HTTP frame), one frame on 2, coap-non's first 2 frames as SPBs",
    "http-keepalive-vlan.pcap": "802.1Q tag (VLAN 100) in every frame",
    "coap-con-get-qinq.pcap": "QinQ: 802.1ad (0x88a8, VLAN 200) + 802.1Q (VLAN 100)",
    "http-keepalive-pppoe.pcap": "PPPoE session (0x8864, session 0x1234), PPP 0x0021",
    "http-keepalive-ipv6-pppoe.pcap": "http-keepalive-ipv6 in PPPoE session, PPP 0x0057",
    "http-keepalive-sll.pcap": "Linux cooked v1 (113) instead of Ethernet",
    "coap-con-get-sll2.pcap": "Linux cooked v2 (276) instead of Ethernet",
    "http-keepalive-raw.pcap": "raw IPv4 (101)",
    "http-keepalive-ipv6-raw.pcap": "raw IPv6 (101)",
    "coap-con-get-null.pcap": "BSD NULL (0), address family 2 little-endian",
    "http-keepalive-ipv6-loop.pcap": "OpenBSD LOOP (108), address family 24 big-endian",
    "coap-con-get-linktype147.pcap": "coap-con-get.pcap's frames under link type 147 (USER0), which wiretax does not decode",
    "coap-con-get-padded.pcap": "frames under 60 bytes padded with zeros to 60 (the 15 52-byte requests)",
    "http-keepalive-ipv4-options.pcap": "4-byte IPv4 option (NOP NOP NOP EOL) in every packet; IHL, length, checksum fixed",
    "http-keepalive-ipv6-exthdr.pcap": "hop-by-hop + destination options headers (8 bytes each) in every packet",
    "coap-con-put-ipv4-frag.pcap": "coap-con-put's PUT datagrams cut into 24-byte IPv4 fragments (4 each); "
    "the 2nd datagram's last fragment first, the 4th's middle two swapped",
    "coap-con-put-ipv4-frag-dup.pcap": "the same, the first datagram's second fragment captured twice",
    "coap-con-put-ipv4-frag-snaplen40.pcap": "the fragments cut to 40 bytes (snaplen 40)",
    "coap-con-put-ipv6.pcap": "coap-con-put's datagrams over IPv6 (fd77::a.b.c.d), whole",
    "coap-con-put-ipv6-frag.pcap": "the same in 24-byte IPv6 fragments (fragment header), same reordering",
    "http-keepalive-snaplen64.pcap": "every frame cut to 64 bytes (inside the TCP options), wire length kept",
    "http-keepalive-snaplen128.pcap": "every frame cut to 128 bytes (inside the HTTP messages)",
    "truncated.pcap": "http-keepalive.pcap cut 20 bytes into record 30's data (offset 5268)",
    "bad-record-length.pcap": "record 20's caplen (offset 3298) set to 0x7fffffff",
    "bad-first-record.pcap": "record 1's caplen (offset 24) set to 0x7fffffff: nothing readable",
    "bad-block-length.pcapng": "multi-interface.pcapng with block 20's length (offset 2768) set to 65537",
    "extreme-timestamps.pcapng": "6 coap-con-get frames: 64-bit tick counts in seconds, if_tsoffset of +-2^63",
    "far-future.pcapng": "4 coap-con-get frames whose 64-bit microsecond tick counts start at 2^63",
    "truncated-header.pcap": "the first 10 bytes of a pcap header",
    "header-only.pcap": "a pcap header and no records",
    "empty.pcap": "0 bytes",
    "garbage.pcap": "2048 pseudo-random bytes (SHA-256 chain)",
}


def write_readme():
    lines = [
        "# Sample captures",
        "",
        "Made by `scripts/make-samples.py` from the real captures in `captures/`",
        "(run it from the repository root; it is deterministic). Each changes one",
        "thing; `tests/inputs.rs` checks wiretax's figures for each against its",
        "base capture's.",
        "",
        "| file | bytes | what |",
        "|---|---|---|",
    ]
    for name, size in WRITTEN:
        lines.append(f"| {name} | {size} | {ABOUT[name]} |")
    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


# ---------------------------------------------------------------- pcapng


def pad4(b):
    return b + b"\0" * (-len(b) % 4)


def block(btype, body):
    body = pad4(body)
    n = 12 + len(body)
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


def options(opts):
    out = b""
    for code, value in opts:
        out += struct.pack("<HH", code, len(value)) + pad4(value)
    if opts:
        out += struct.pack("<HH", 0, 0)  # opt_endofopt
    return out


def shb():
    # Byte-order magic, version 1.0, section length unknown (-1).
    return block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + options([(4, b"make-samples.py")]))


def idb(linktype, tsresol=None, name=None):
    opts = []
    if name:
        opts.append((2, name.encode()))  # if_name
    if tsresol is not None:
        opts.append((9, bytes([tsresol])))  # if_tsresol: 10^-tsresol s
    return block(0x00000001, struct.pack("<HHI", linktype, 0, 0) + options(opts))


def epb(if_id, ticks, data, wire_len):
    return block(0x00000006, struct.pack("<IIIII", if_id, ticks >> 32, ticks & 0xFFFFFFFF, len(data), wire_len) + data)


def spb(data):
    return block(0x00000003, struct.pack("<I", len(data)) + data)


# ---------------------------------------------------------------- headers


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def eth_split(frame):
    """(MAC addresses, ethertype, IP packet, trailer) of an untagged Ethernet frame."""
    macs, et = frame[:12], struct.unpack("!H", frame[12:14])[0]
    ip = frame[14:]
    n = ip_total_len(ip)
    return macs, et, ip[:n], ip[n:]


def ip_total_len(ip):
    if ip[0] >> 4 == 4:
        return struct.unpack("!H", ip[2:4])[0]
    return 40 + struct.unpack("!H", ip[4:6])[0]


def ipv4_with_header(ip, ihl_bytes, options_bytes, total, flags_frag=None):
    """IPv4 header of `ip` rebuilt with options and a new total length."""
    h = bytearray(ip[:20])
    h[0] = 0x40 | ((20 + len(options_bytes)) // 4)
    h[2:4] = struct.pack("!H", total)
    if flags_frag is not None:
        h[6:8] = struct.pack("!H", flags_frag)
    h[10:12] = b"\0\0"
    h = bytes(h) + options_bytes
    return h[:10] + struct.pack("!H", csum(h)) + h[12:]


def v4_to_v6_addr(a):
    # fd77::a.b.c.d keeps the real hosts apart and recognisable.
    return b"\xfd\x77" + b"\0" * 10 + a


def udp_over_ipv6(ip4):
    """An IPv4/UDP packet as IPv6/UDP with the same ports and payload."""
    ihl = (ip4[0] & 0x0F) * 4
    src, dst = v4_to_v6_addr(ip4[12:16]), v4_to_v6_addr(ip4[16:20])
    udp = bytearray(ip4[ihl:ip_total_len(ip4)])
    udp[6:8] = b"\0\0"
    pseudo = src + dst + struct.pack("!IxxxB", len(udp), 17)
    c = csum(pseudo + bytes(udp)) or 0xFFFF
    udp[6:8] = struct.pack("!H", c)
    hdr = struct.pack("!IHBB", 0x60000000, len(udp), 17, ip4[8]) + src + dst
    return hdr + bytes(udp)


# ---------------------------------------------------------------- link layers


def sll(et, frame_macs, outgoing):
    # Linux cooked v1: packet type, ARPHRD_ETHER, address length, source address (padded to 8), protocol.
    src = frame_macs[6:12]
    return struct.pack("!HHH", 4 if outgoing else 0, 1, 6) + src + b"\0\0" + struct.pack("!H", et)


def sll2(et, frame_macs, outgoing):
    # Linux cooked v2: protocol, reserved, ifindex, ARPHRD_ETHER, packet type, address length, address.
    src = frame_macs[6:12]
    return struct.pack("!HHIHBB", et, 0, 2, 1, 4 if outgoing else 0, 6) + src + b"\0\0"


def relink(recs, make_header, keep_trailer=False):
    """Replaces each Ethernet header with another link header."""
    first_src = recs[0].data[6:12]
    out = []
    for r in recs:
        macs, et, ip, trailer = eth_split(r.data)
        outgoing = macs[6:12] == first_src
        data = make_header(et, macs, outgoing) + ip + (trailer if keep_trailer else b"")
        out.append(Rec(r.ts_ns, data))
    return out


def with_eth_tags(recs, tags):
    """Inserts VLAN/QinQ tags (list of (TPID, TCI)) after the MAC addresses."""
    tag_bytes = b"".join(struct.pack("!HH", tpid, tci) for tpid, tci in tags)
    return [Rec(r.ts_ns, r.data[:12] + tag_bytes + r.data[12:]) for r in recs]


def pppoe_session(recs, session_id=0x1234):
    out = []
    for r in recs:
        macs, et, ip, trailer = eth_split(r.data)
        ppp_proto = 0x0021 if et == ETH_IPV4 else 0x0057
        # PPPoE: version 1 type 1, code 0 (session data), session id, length of the PPP frame.
        hdr = struct.pack("!HBBHHH", 0x8864, 0x11, 0x00, session_id, len(ip) + 2, ppp_proto)
        out.append(Rec(r.ts_ns, macs + hdr + ip + trailer))
    return out


def pad_to_60(recs):
    # Ethernet pads frames shorter than its 60-byte minimum (before the FCS).
    return [Rec(r.ts_ns, r.data + b"\0" * max(0, 60 - len(r.data))) for r in recs]


# ---------------------------------------------------------------- IP rewrites


IPV4_OPTION = bytes([0x01, 0x01, 0x01, 0x00])  # NOP NOP NOP EOL


def with_ipv4_options(recs):
    out = []
    for r in recs:
        macs, et, ip, trailer = eth_split(r.data)
        assert et == ETH_IPV4 and (ip[0] & 0x0F) == 5
        hdr = ipv4_with_header(ip, 24, IPV4_OPTION, len(ip) + 4)
        out.append(Rec(r.ts_ns, macs + struct.pack("!H", et) + hdr + ip[20:] + trailer))
    return out


def with_ipv6_ext_headers(recs):
    out = []
    for r in recs:
        macs, et, ip, trailer = eth_split(r.data)
        assert et == ETH_IPV6
        upper = ip[6]
        # Hop-by-hop options (next: destination options), then destination options (next: the
        # original upper layer); each 8 bytes, padded with a PadN option.
        hbh = bytes([60, 0, 1, 4, 0, 0, 0, 0])
        dst = bytes([upper, 0, 1, 4, 0, 0, 0, 0])
        plen = struct.unpack("!H", ip[4:6])[0] + 16
        hdr = ip[:4] + struct.pack("!HB", plen, 0) + ip[7:40]
        out.append(Rec(r.ts_ns, macs + struct.pack("!H", et) + hdr + hbh + dst + ip[40:] + trailer))
    return out


FRAG_DATA = 24  # bytes of IP payload per fragment (a multiple of 8)


def pieces(payload):
    return [(off, payload[off:off + FRAG_DATA]) for off in range(0, len(payload), FRAG_DATA)]


def reorder(frags, n):
    """The second datagram (n = 1) gets its last fragment first, the fourth its middle ones swapped."""
    if n == 1:
        return frags[-1:] + frags[:-1]
    if n == 3 and len(frags) >= 3:
        return [frags[0], frags[2], frags[1]] + frags[3:]
    return frags


def fragment_ipv4(recs):
    out, n = [], 0
    for r in recs:
        macs, et, ip, trailer = eth_split(r.data)
        payload = ip[20:]
        if len(payload) <= FRAG_DATA:
            out.append(r)
            continue
        frags = []
        ps = pieces(payload)
        for i, (off, part) in enumerate(ps):
            more = 0x2000 if i + 1 < len(ps) else 0
            hdr = ipv4_with_header(ip, 20, b"", 20 + len(part), more | (off // 8))
            frags.append(macs + struct.pack("!H", et) + hdr + part)
        for i, f in enumerate(reorder(frags, n)):
            out.append(Rec(r.ts_ns + i * 1000, f))
        n += 1
    return out


def fragment_ipv6(recs):
    out, n = [], 0
    for r in recs:
        macs, et, ip4, trailer = eth_split(r.data)
        ip = udp_over_ipv6(ip4)
        eth = macs + struct.pack("!H", ETH_IPV6)
        payload = ip[40:]
        if len(payload) <= FRAG_DATA:
            out.append(Rec(r.ts_ns, eth + ip))
            continue
        frags = []
        ps = pieces(payload)
        ident = 0x5A000000 + n
        for i, (off, part) in enumerate(ps):
            more = 1 if i + 1 < len(ps) else 0
            fh = struct.pack("!BBHI", 17, 0, off | more, ident)
            hdr = ip[:4] + struct.pack("!HB", 8 + len(part), 44) + ip[7:40]
            frags.append(eth + hdr + fh + part)
        for i, f in enumerate(reorder(frags, n)):
            out.append(Rec(r.ts_ns + i * 1000, f))
        n += 1
    return out


def udp_ipv6_whole(recs):
    """The same datagrams over IPv6, unfragmented: the fragment sample's reference."""
    out = []
    for r in recs:
        macs, et, ip4, trailer = eth_split(r.data)
        out.append(Rec(r.ts_ns, macs + struct.pack("!H", ETH_IPV6) + udp_over_ipv6(ip4)))
    return out


# ---------------------------------------------------------------- samples


def main():
    os.makedirs(OUT, exist_ok=True)
    _, http = read_pcap("http-keepalive.pcap")
    _, http6 = read_pcap("http-keepalive-ipv6.pcap")
    _, coap = read_pcap("coap-con-get.pcap")
    _, put = read_pcap("coap-con-put.pcap")
    _, non = read_pcap("coap-non.pcap")
    eth = LINKTYPE_ETHERNET

    # File formats.
    write("http-keepalive-be.pcap", pcap_bytes(http, eth, end=">"))
    write("http-keepalive-ns.pcap", pcap_bytes(http, eth, nano=True))
    write("coap-con-get-ns-be.pcap", pcap_bytes(coap, eth, end=">", nano=True))

    # pcapng: interface 0 Ethernet (microseconds), 1 Linux SLL2 (nanoseconds),
    # 2 a link type wiretax does not decode; EPBs on all three, SPBs (which
    # always belong to interface 0) last; one unknown block type.
    ng = shb()
    ng += idb(eth, name="veth0")
    ng += idb(LINKTYPE_LINUX_SLL2, tsresol=9, name="any")
    ng += idb(LINKTYPE_USER0, tsresol=9, name="user0")
    for i, r in enumerate(http):
        ng += epb(0, r.ts_ns // 1000, r.data, r.wire_len)
        if i == 10:
            ng += block(0x00000ACE, b"not a block type anyone defined")
    shift = http[-1].ts_ns + 1_000_000_000 - coap[0].ts_ns
    for r in relink(coap, sll2):
        ng += epb(1, r.ts_ns + shift, r.data, len(r.data))
    ng += epb(2, http[-1].ts_ns + 2_000_000_000, coap[0].data, len(coap[0].data))
    for r in non[:2]:
        ng += spb(r.data)
    write("multi-interface.pcapng", ng)

    # Link layers.
    write("http-keepalive-vlan.pcap", pcap_bytes(with_eth_tags(http, [(0x8100, 0x0064)]), eth))
    write("coap-con-get-qinq.pcap", pcap_bytes(with_eth_tags(coap, [(0x88A8, 0x00C8), (0x8100, 0x0064)]), eth))
    write("http-keepalive-pppoe.pcap", pcap_bytes(pppoe_session(http), eth))
    write("http-keepalive-ipv6-pppoe.pcap", pcap_bytes(pppoe_session(http6), eth))
    write("http-keepalive-sll.pcap", pcap_bytes(relink(http, sll), LINKTYPE_LINUX_SLL))
    write("coap-con-get-sll2.pcap", pcap_bytes(relink(coap, sll2), LINKTYPE_LINUX_SLL2))
    write("http-keepalive-raw.pcap", pcap_bytes(relink(http, lambda et, m, o: b""), LINKTYPE_RAW))
    write("http-keepalive-ipv6-raw.pcap", pcap_bytes(relink(http6, lambda et, m, o: b""), LINKTYPE_RAW))
    # NULL: address family in the writer's (here little-endian) byte order; LOOP: big-endian.
    af_le = lambda et, m, o: struct.pack("<I", 2 if et == ETH_IPV4 else 24)
    af_be = lambda et, m, o: struct.pack(">I", 2 if et == ETH_IPV4 else 24)
    write("coap-con-get-null.pcap", pcap_bytes(relink(coap, af_le), LINKTYPE_NULL))
    write("http-keepalive-ipv6-loop.pcap", pcap_bytes(relink(http6, af_be), LINKTYPE_LOOP))
    write("coap-con-get-linktype147.pcap", pcap_bytes(coap, LINKTYPE_USER0))
    write("coap-con-get-padded.pcap", pcap_bytes(pad_to_60(coap), eth))

    # IP layer.
    write("http-keepalive-ipv4-options.pcap", pcap_bytes(with_ipv4_options(http), eth))
    write("http-keepalive-ipv6-exthdr.pcap", pcap_bytes(with_ipv6_ext_headers(http6), eth))
    write("coap-con-put-ipv4-frag.pcap", pcap_bytes(fragment_ipv4(put), eth))
    # The same, with the first datagram's second fragment captured twice (as
    # a mirror port or a capture on both ends of a bridge shows it).
    frags = fragment_ipv4(put)
    write("coap-con-put-ipv4-frag-dup.pcap", pcap_bytes(frags[:2] + [Rec(frags[1].ts_ns + 1, frags[1].data)] + frags[2:], eth))
    # The fragments cut by a 40-byte snaplen: 6 data bytes kept of each.
    write("coap-con-put-ipv4-frag-snaplen40.pcap", pcap_bytes(frags, eth, snaplen=40))
    write("coap-con-put-ipv6.pcap", pcap_bytes(udp_ipv6_whole(put), eth))
    write("coap-con-put-ipv6-frag.pcap", pcap_bytes(fragment_ipv6(put), eth))

    # Snaplen: frames cut to 64 bytes (inside the TCP options), wire length kept.
    write("http-keepalive-snaplen64.pcap", pcap_bytes(http, eth, snaplen=64))
    # 128: headers whole, HTTP messages cut part-way.
    write("http-keepalive-snaplen128.pcap", pcap_bytes(http, eth, snaplen=128))

    # Damaged inputs.
    good = pcap_bytes(http, eth)
    offsets = [24]
    for r in http:
        offsets.append(offsets[-1] + 16 + len(r.data))
    # Cut in the middle of record 30's data.
    write("truncated.pcap", good[:offsets[29] + 16 + 20])
    # Record 20's captured length overwritten with 0x7fffffff.
    bad = bytearray(good)
    bad[offsets[19] + 8:offsets[19] + 12] = struct.pack("<I", 0x7FFFFFFF)
    write("bad-record-length.pcap", bytes(bad))
    # The same damage in record 1: nothing is readable.
    bad = bytearray(good)
    bad[24 + 8:24 + 12] = struct.pack("<I", 0x7FFFFFFF)
    write("bad-first-record.pcap", bytes(bad))
    # A pcapng whose 20th block (an EPB) claims a length that is not a multiple of 4.
    blocks, at = [], 0
    while at < len(ng):
        n = struct.unpack("<I", ng[at + 4:at + 8])[0]
        blocks.append(at)
        at += n
    bad = bytearray(ng)
    bad[blocks[19] + 4:blocks[19] + 8] = struct.pack("<I", 0x00010001)
    write("bad-block-length.pcapng", bytes(bad))
    # Timestamps at the ends of what the formats can say: a 64-bit tick count
    # in whole seconds, and interfaces whose if_tsoffset is the largest and
    # the smallest 64-bit offset. Valid pcapng; the frames are coap-con-get's.
    ext = shb()
    ext += idb(eth, tsresol=0)
    ext += block(0x00000001, struct.pack("<HHI", eth, 0, 0) + options([(14, struct.pack("<q", 2**63 - 1))]))
    ext += block(0x00000001, struct.pack("<HHI", eth, 0, 0) + options([(14, struct.pack("<q", -2**63))]))
    for i, r in enumerate(coap[:6]):
        ticks = [2**64 - 1, 2**63, 1][i % 3]
        ext += epb(i % 3, ticks, r.data, r.wire_len)
    write("extreme-timestamps.pcapng", ext)
    # One interface, microseconds, no offset: a tick count of 2^63 (a
    # corrupted timestamp; 292,000 years) saturates the nanosecond clock.
    far = shb() + idb(eth)
    for i, r in enumerate(coap[:4]):
        far += epb(0, 2**63 + i, r.data, r.wire_len)
    write("far-future.pcapng", far)
    write("truncated-header.pcap", good[:10])
    write("header-only.pcap", good[:24])
    write("empty.pcap", b"")
    seed, junk = b"wiretax garbage", b""
    while len(junk) < 2048:
        seed = hashlib.sha256(seed).digest()
        junk += seed
    write("garbage.pcap", junk[:2048])
    write_readme()


if __name__ == "__main__":
    main()
