#!/usr/bin/env python3
"""Rewrite real captures the way field captures come, for tests/data/field/.

Used by scripts/make-field-captures, for the encapsulations this machine's
kernel cannot make itself (no geneve, gre, erspan, sit, ipip or mpls
modules) and for those no Linux tool makes (GTP-U, compressed PPP,
802.11 radiotap): every record of a real capture made in a network
namespace is wrapped, unchanged, in the encapsulation's headers, as a
tunnel endpoint would have sent it. Python 3 stdlib, deterministic.

usage: field-wrap.py KIND IN.pcap OUT.pcap
  raw       strip the link header (Ethernet or Linux SLL) to raw IP (linktype 101)
  ipv4 / ipv6   keep the IPv4 / IPv6 packets of a raw capture
  geneve gretap gre erspan2 erspan3 mpls ipip 6in4 gtpu pppoe-compressed
  ppp ppp-hdlc radiotap wifi wifi-wpa   wrap each packet of a raw capture
  big-tcp   merge each run of same-direction TCP data segments into one
            segment past 64 KiB, as BIG TCP sends (IPv4 length 0, IPv6 jumbogram)
"""

import struct
import sys

LINKTYPE_ETHERNET = 1
LINKTYPE_PPP = 9
LINKTYPE_PPP_HDLC = 50
LINKTYPE_RAW = 101
LINKTYPE_IEEE802_11 = 105
LINKTYPE_LINUX_SLL = 113
LINKTYPE_RADIOTAP = 127

# Outer addresses of the tunnel endpoints (the inner ones are the capture's).
OUTER_A = bytes([10, 18, 0, 1])
OUTER_B = bytes([10, 18, 0, 2])
MAC_A = bytes.fromhex("02000000000a")
MAC_B = bytes.fromhex("02000000000b")
TEID_UP = 0x1000_0001
TEID_DOWN = 0x2000_0002


def read_pcap(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        raise SystemExit(f"{path}: not a pcap file")
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack(e + "I", data[20:24])[0] & 0xFFFF
    recs, at = [], 24
    while at + 16 <= len(data):
        sec, frac, caplen, wire = struct.unpack(e + "IIII", data[at : at + 16])
        ts_ns = sec * 1_000_000_000 + (frac if nano else frac * 1000)
        recs.append((ts_ns, data[at + 16 : at + 16 + caplen], wire))
        at += 16 + caplen
    return linktype, recs


def write_pcap(path, linktype, recs, snaplen=262144):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, snaplen, linktype))
        for ts_ns, data, wire in recs:
            f.write(struct.pack("<IIII", ts_ns // 1_000_000_000, ts_ns % 1_000_000_000, len(data), wire))
            f.write(data)


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4(proto, payload_len, src=OUTER_A, dst=OUTER_B, ident=0):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + payload_len, ident & 0xFFFF, 0x4000, 64, proto, 0, src, dst)
    return h[:10] + struct.pack("!H", csum(h)) + h[12:]


def udp(sport, dport, payload_len):
    return struct.pack("!HHHH", sport, dport, 8 + payload_len, 0)


def ether(ethertype, src=MAC_A, dst=MAC_B):
    return dst + src + struct.pack("!H", ethertype)


def version(pkt):
    return pkt[0] >> 4


def ip_ethertype(pkt):
    return 0x0800 if version(pkt) == 4 else 0x86DD


def uplink(pkt, client):
    """Sent by the client (the side that sent the first packet)."""
    src = pkt[12:16] if version(pkt) == 4 else pkt[8:24]
    return src == client


def client_of(recs):
    p = recs[0][1]
    return p[12:16] if version(p) == 4 else p[8:24]


def wrap_outer_udp(dport, tunnel, pkt, i, up):
    """The tunnel payload in UDP in IPv4 in Ethernet, outer ends swapped downlink."""
    body = tunnel + pkt
    sport = 49152 + (i * 7919) % 16384 if dport != 2152 else 2152
    src, dst = (OUTER_A, OUTER_B) if up else (OUTER_B, OUTER_A)
    smac, dmac = (MAC_A, MAC_B) if up else (MAC_B, MAC_A)
    return ether(0x0800, smac, dmac) + ipv4(17, 8 + len(body), src, dst, i) + udp(sport, dport, len(body)) + body


def wrap_outer_ip(proto, inner, i, up):
    src, dst = (OUTER_A, OUTER_B) if up else (OUTER_B, OUTER_A)
    smac, dmac = (MAC_A, MAC_B) if up else (MAC_B, MAC_A)
    return ether(0x0800, smac, dmac) + ipv4(proto, len(inner), src, dst, i) + inner


def inner_ether(pkt, up):
    """The packet in the Ethernet frame its sender's interface would have made."""
    return ether(ip_ethertype(pkt), *((MAC_A, MAC_B) if up else (MAC_B, MAC_A))) + pkt


def wrap(kind, recs):
    """(linktype, records) of the raw-IP `recs` wrapped as `kind`."""
    client = client_of(recs)
    out = []
    for i, (ts, pkt, wire) in enumerate(recs):
        if len(pkt) != wire:
            raise SystemExit("wrap: the capture must hold whole packets")
        up = uplink(pkt, client)
        f = None
        lt = LINKTYPE_ETHERNET
        if kind == "geneve":
            # Version 0, one 8-byte option (class 0x0102, type 0x80), VNI 42.
            opt = struct.pack("!HBB", 0x0102, 0x80, 1) + b"\x01\x02\x03\x04"
            hdr = struct.pack("!BBH", len(opt) // 4, 0, 0x6558) + struct.pack("!I", 42 << 8) + opt
            f = wrap_outer_udp(6081, hdr, inner_ether(pkt, up), i, up)
        elif kind == "gretap":
            # Key flag, key 42.
            f = wrap_outer_ip(47, struct.pack("!HHI", 0x2000, 0x6558, 42) + inner_ether(pkt, up), i, up)
        elif kind == "gre":
            f = wrap_outer_ip(47, struct.pack("!HH", 0, ip_ethertype(pkt)) + pkt, i, up)
        elif kind == "erspan2":
            # Sequence flag and number; ERSPAN II: version 1, VLAN 0, session 12, index 0.
            erspan = struct.pack("!HHI", 0x1000 | 0, (0 << 13) | 12, 0)
            gre = struct.pack("!HHI", 0x1000, 0x88BE, i)
            f = wrap_outer_ip(47, gre + erspan + inner_ether(pkt, up), i, up)
        elif kind == "erspan3":
            # ERSPAN III: version 2, session 12, timestamp, SGT 0, frame type
            # Ethernet, hardware id 1, the O flag and an 8-byte platform subheader.
            erspan = struct.pack("!HHIHBB", 0x2000, 12, ts // 1000 & 0xFFFFFFFF, 0, 0x00, 0x11) + bytes(8)
            gre = struct.pack("!HHI", 0x1000, 0x22EB, i)
            f = wrap_outer_ip(47, gre + erspan + inner_ether(pkt, up), i, up)
        elif kind == "mpls":
            # Two labels: 1000, then 2000 with the bottom-of-stack bit.
            labels = struct.pack("!II", (1000 << 12) | 64, (2000 << 12) | 0x100 | 64)
            f = ether(0x8847, *((MAC_A, MAC_B) if up else (MAC_B, MAC_A))) + labels + pkt
        elif kind == "ipip":
            assert version(pkt) == 4
            f = wrap_outer_ip(4, pkt, i, up)
        elif kind == "6in4":
            assert version(pkt) == 6
            f = wrap_outer_ip(41, pkt, i, up)
        elif kind == "gtpu":
            # G-PDU; every other one with a PDU session container extension
            # (type 0x85, QFI 9), as a 5G core sends.
            teid = TEID_UP if up else TEID_DOWN
            if i % 2:
                ext = struct.pack("!HBB", 0, 0, 0x85) + struct.pack("!BBBB", 1, 0x10 if up else 0x00, 9, 0)
                hdr = struct.pack("!BBHI", 0x34, 0xFF, len(ext) + len(pkt), teid) + ext
            else:
                hdr = struct.pack("!BBHI", 0x30, 0xFF, len(pkt), teid)
            f = wrap_outer_udp(2152, hdr, pkt, i, up)
        elif kind == "pppoe-compressed":
            # PPPoE session 0x1234; PPP protocol field compressed to one byte.
            proto = b"\x21" if version(pkt) == 4 else b"\x57"
            hdr = struct.pack("!BBHH", 0x11, 0, 0x1234, len(proto) + len(pkt))
            f = ether(0x8864, *((MAC_A, MAC_B) if up else (MAC_B, MAC_A))) + hdr + proto + pkt
        elif kind == "ppp":
            # No address/control bytes; compressed protocol field every other packet.
            lt = LINKTYPE_PPP
            proto = struct.pack("!H", 0x21 if version(pkt) == 4 else 0x57)
            f = (proto[1:] if i % 2 else proto) + pkt
        elif kind == "ppp-hdlc":
            lt = LINKTYPE_PPP_HDLC
            f = b"\xff\x03" + struct.pack("!H", 0x21 if version(pkt) == 4 else 0x57) + pkt
        elif kind in ("radiotap", "wifi", "wifi-wpa"):
            lt = LINKTYPE_RADIOTAP if kind != "wifi" else LINKTYPE_IEEE802_11
            f = wifi_data(pkt, up, i, protected=kind == "wifi-wpa")
            if lt == LINKTYPE_RADIOTAP:
                f = radiotap() + f
        else:
            raise SystemExit(f"unknown kind {kind}")
        out.append((ts, f, len(f)))
        if kind in ("radiotap", "wifi", "wifi-wpa") and i % 4 == 0:
            # The 802.11 acknowledgement, and now and then a beacon.
            ack = struct.pack("<BBH", 0xD4, 0, 0) + (MAC_A if up else MAC_B)
            ack = (radiotap() if lt == LINKTYPE_RADIOTAP else b"") + ack
            out.append((ts + 10_000, ack, len(ack)))
    if kind in ("radiotap", "wifi", "wifi-wpa"):
        beacon = struct.pack("<BBH", 0x80, 0, 0) + b"\xff" * 6 + MAC_B + MAC_B + struct.pack("<H", 0)
        beacon += bytes(8) + struct.pack("<HH", 100, 0x0411) + b"\x00\x05field"
        beacon = (radiotap() if lt == LINKTYPE_RADIOTAP else b"") + beacon
        out.insert(0, (recs[0][0] - 50_000, beacon, len(beacon)))
    return lt, out


def radiotap():
    """Radiotap: version 0, length 12, present: flags, rate, with no FCS."""
    return struct.pack("<BBHI", 0, 0, 12, 0x00000006) + struct.pack("<BBH", 0x00, 0x0C, 0)


def wifi_data(pkt, up, seq, protected):
    """A QoS data frame, to or from the access point (MAC_B), LLC/SNAP inside."""
    bssid = MAC_B
    if up:
        fc = struct.pack("<BB", 0x88, 0x01 | (0x40 if protected else 0))  # to DS
        addrs = bssid + MAC_A + b"\x02\x00\x00\x00\x00\x0c"
    else:
        fc = struct.pack("<BB", 0x88, 0x02 | (0x40 if protected else 0))  # from DS
        addrs = MAC_A + bssid + b"\x02\x00\x00\x00\x00\x0c"
    hdr = fc + struct.pack("<H", 44) + addrs + struct.pack("<H", (seq & 0xFFF) << 4) + struct.pack("<H", 0)
    body = b"\xaa\xaa\x03\x00\x00\x00" + struct.pack("!H", ip_ethertype(pkt)) + pkt
    if protected:
        # CCMP: 8-byte header, the body encrypted (here: scrambled), 8-byte MIC.
        body = struct.pack("<BBBBI", seq & 0xFF, 0, 0, 0x20, 0) + bytes(b ^ 0x5A for b in body) + bytes(8)
    return hdr + body


def to_raw(linktype, recs):
    out = []
    for ts, d, wire in recs:
        if linktype == LINKTYPE_ETHERNET:
            et = struct.unpack("!H", d[12:14])[0]
            if et not in (0x0800, 0x86DD):
                continue
            out.append((ts, d[14:], wire - 14))
        elif linktype == LINKTYPE_LINUX_SLL:
            et = struct.unpack("!H", d[14:16])[0]
            if et not in (0x0800, 0x86DD):
                continue
            out.append((ts, d[16:], wire - 16))
        elif linktype == LINKTYPE_RAW:
            out.append((ts, d, wire))
        else:
            raise SystemExit(f"raw: linktype {linktype} not handled")
    return out


def big_tcp(recs):
    """Merges runs of same-direction TCP data segments into one segment past
    64 KiB, as BIG TCP sends them: IPv4 with total length 0, IPv6 as a
    jumbogram (payload length 0, hop-by-hop jumbo option). The capture is
    cut to 200 bytes a frame, so only the first segment's bytes are kept."""
    out = []
    i = 0

    def tcp_lens(p):
        if version(p) == 4:
            ihl = (p[0] & 15) * 4
            if p[9] != 6:
                return None
            return ihl, (p[ihl + 12] >> 4) * 4, struct.unpack("!H", p[2:4])[0] - ihl
        if p[6] != 6:
            return None
        return 40, (p[52] >> 4) * 4, struct.unpack("!H", p[4:6])[0]

    def src(p):
        return p[12:16] if version(p) == 4 else p[8:24]

    while i < len(recs):
        ts, p, wire = recs[i]
        lens = tcp_lens(p)
        if lens is None or lens[2] - lens[1] < 1000:
            out.append(recs[i])
            i += 1
            continue
        ihl, doff, _ = lens
        # The run: this side's data segments up to 180,000 bytes, past the
        # other side's ACKs (kept, after the merged segment).
        total = 0
        j = i
        others = []
        while j < len(recs):
            q = recs[j][1]
            ql = tcp_lens(q)
            if ql is not None and version(q) == version(p) and src(q) != src(p):
                others.append(recs[j])
                j += 1
                continue
            if ql is None or version(q) != version(p) or ql[2] - ql[1] == 0 or total + ql[2] - ql[1] > 180_000:
                break
            total += ql[2] - ql[1]
            j += 1
        if total + doff <= 65535 - ihl:
            out.append(recs[i])
            i += 1
            continue
        head = p[: ihl + doff]
        if version(p) == 4:
            seg = bytearray(head)
            seg[2:4] = b"\0\0"
        else:
            # Next header: hop-by-hop (jumbo option, then TCP).
            hbh = struct.pack("!BBBBI", 6, 0, 0xC2, 4, 8 + doff + total)
            seg = bytearray(head[:40] + hbh + head[40:])
            seg[4:6] = b"\0\0"
            seg[6] = 0
        wire_len = len(seg) + total
        seg += p[ihl + doff : ihl + doff + 200 - len(seg)]
        out.append((ts, bytes(seg), wire_len))
        out.extend(others)
        i = j
    return out


def main():
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    kind, src, dst = sys.argv[1:]
    lt, recs = read_pcap(src)
    if kind == "raw":
        write_pcap(dst, LINKTYPE_RAW, to_raw(lt, recs))
    elif kind in ("ipv4", "ipv6"):
        want = 4 if kind == "ipv4" else 6
        write_pcap(dst, LINKTYPE_RAW, [r for r in to_raw(lt, recs) if version(r[1]) == want])
    elif kind == "big-tcp":
        write_pcap(dst, LINKTYPE_RAW, big_tcp(to_raw(lt, recs)), snaplen=200)
    else:
        lt2, out = wrap(kind, to_raw(lt, recs))
        write_pcap(dst, lt2, out)


if __name__ == "__main__":
    main()
