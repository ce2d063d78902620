#!/usr/bin/env python3
"""Writes the captures of tests/device_key.rs: two devices that share an IP
address and are told apart only by their MAC, their VLAN or their GTP-U
tunnel (`--device-key mac|vlan|teid`).

Made from two shipped captures, sparse-mqtt-gps (client 10.79.0.22) and
sparse-http-keepalive-poll (client 10.79.0.42, rewritten to 10.79.0.22 with
its checksums fixed), so both devices have the same address:

  tests/data/devkey/mac-{a,b}.pcap, mac-shared-ip.pcap
      client MACs 02:00:00:00:00:0a and 02:00:00:00:00:0b
  tests/data/devkey/vlan-{a,b}.pcap, vlan-shared-ip.pcap
      802.1Q VLAN 100 and 200, the same MACs for both devices
  tests/data/devkey/gtp-{a,b}.pcap, gtp-shared-ip.pcap
      each inner IP packet in GTP-U (UDP 2152) between 10.200.0.1 (eNodeB)
      and 10.200.0.2 (gateway); device a's uplink TEID 0x1001 and downlink
      0x2001, device b's 0x1002 and 0x2002

The *-shared-ip files are the a and b files merged in time order (as
mergecap would). Standard library only: python3 scripts/make-device-key-captures.py
"""

import os
import struct
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(REPO, "tests", "data", "devkey")

CLIENT = bytes([10, 79, 0, 22])
OTHER_CLIENT = bytes([10, 79, 0, 42])
MAC_A = bytes.fromhex("02000000000a")
MAC_B = bytes.fromhex("02000000000b")
ENB = bytes([10, 200, 0, 1])
GATEWAY = bytes([10, 200, 0, 2])
ENB_MAC = bytes.fromhex("020000c80001")
GATEWAY_MAC = bytes.fromhex("020000c80002")


def read_pcap(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = data[:4]
    if magic == b"\xd4\xc3\xb2\xa1":
        endian = "<"
    elif magic == b"\xa1\xb2\xc3\xd4":
        endian = ">"
    else:
        sys.exit(f"{path}: not a microsecond pcap")
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    if linktype != 1:
        sys.exit(f"{path}: link type {linktype}, expected Ethernet")
    records, at = [], 24
    while at + 16 <= len(data):
        sec, usec, incl, orig = struct.unpack(endian + "IIII", data[at : at + 16])
        frame = data[at + 16 : at + 16 + incl]
        if incl != orig:
            sys.exit(f"{path}: cut frames are not rewritten")
        records.append((sec, usec, frame))
        at += 16 + incl
    return records


def write_pcap(path, records):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        for sec, usec, frame in records:
            f.write(struct.pack("<IIII", sec, usec, len(frame), len(frame)))
            f.write(frame)


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def fix_checksums(ip):
    """IPv4 header and TCP/UDP checksums of `ip` (a bytearray) made right."""
    ihl = (ip[0] & 15) * 4
    ip[10:12] = b"\0\0"
    ip[10:12] = struct.pack("!H", checksum(bytes(ip[:ihl])))
    proto, total = ip[9], struct.unpack("!H", ip[2:4])[0]
    seg = ip[ihl:total]
    pseudo = ip[12:20] + struct.pack("!BBH", 0, proto, len(seg))
    at = {6: 16, 17: 6}.get(proto)
    if at is None:
        return
    seg[at : at + 2] = b"\0\0"
    c = checksum(bytes(pseudo + seg))
    if proto == 17 and c == 0:
        c = 0xFFFF
    seg[at : at + 2] = struct.pack("!H", c)
    ip[ihl:total] = seg


def device(capture, old_client):
    """The capture's frames with the client's address made CLIENT: (sec,
    usec, ethernet header without its EtherType, IP packet, uplink)."""
    out = []
    for sec, usec, frame in read_pcap(os.path.join(REPO, "captures", capture)):
        if frame[12:14] != b"\x08\x00":
            sys.exit(f"{capture}: a frame that is not IPv4")
        ip = bytearray(frame[14:])
        uplink = ip[12:16] == old_client
        if not uplink and ip[16:20] != old_client:
            sys.exit(f"{capture}: a frame that is not the client's")
        if old_client != CLIENT:
            ip[12 + (0 if uplink else 4) : 16 + (0 if uplink else 4)] = CLIENT
            fix_checksums(ip)
        out.append((sec, usec, bytearray(frame[:12]), bytes(ip), uplink))
    return out


def ethernet(frames, client_mac, vlan=None):
    records = []
    for sec, usec, macs, ip, uplink in frames:
        macs = bytearray(macs)
        macs[6 if uplink else 0 : 12 if uplink else 6] = client_mac
        tag = b"" if vlan is None else b"\x81\x00" + struct.pack("!H", vlan)
        records.append((sec, usec, bytes(macs) + tag + b"\x08\x00" + ip))
    return records


def gtp(frames, teid_up, teid_down):
    records = []
    for n, (sec, usec, _, ip, uplink) in enumerate(frames):
        teid = teid_up if uplink else teid_down
        gtpu = struct.pack("!BBHI", 0x30, 0xFF, len(ip), teid) + ip
        udp = struct.pack("!HHHH", 2152, 2152, 8 + len(gtpu), 0) + gtpu
        src, dst = (ENB, GATEWAY) if uplink else (GATEWAY, ENB)
        outer = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), n & 0xFFFF, 0, 64, 17, 0, src, dst))
        outer += udp
        fix_checksums(outer)
        macs = (GATEWAY_MAC + ENB_MAC) if uplink else (ENB_MAC + GATEWAY_MAC)
        records.append((sec, usec, macs + b"\x08\x00" + bytes(outer)))
    return records


def merged(a, b):
    return sorted(a + b, key=lambda r: (r[0], r[1]))


def main():
    os.makedirs(OUT, exist_ok=True)
    a = device("sparse-mqtt-gps.pcap", CLIENT)
    b = device("sparse-http-keepalive-poll.pcap", OTHER_CLIENT)
    sets = {
        "mac": (ethernet(a, MAC_A), ethernet(b, MAC_B)),
        "vlan": (ethernet(a, MAC_A, vlan=100), ethernet(b, MAC_A, vlan=200)),
        "gtp": (gtp(a, 0x1001, 0x2001), gtp(b, 0x1002, 0x2002)),
    }
    for name, (ra, rb) in sets.items():
        write_pcap(os.path.join(OUT, f"{name}-a.pcap"), ra)
        write_pcap(os.path.join(OUT, f"{name}-b.pcap"), rb)
        write_pcap(os.path.join(OUT, f"{name}-shared-ip.pcap"), merged(ra, rb))
    print(f"wrote {len(sets) * 3} captures to {os.path.relpath(OUT, REPO)}")


if __name__ == "__main__":
    main()
