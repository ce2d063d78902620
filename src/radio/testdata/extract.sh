#!/bin/sh
# Regenerates NAME.ticks from captures/NAME.pcap: one line per frame,
# "ts_ns wire_len uplink flow"; uplink = sent by the device (the side that sent
# the first SYN, or for UDP the first datagram); flow = tcp.stream or
# 1000 + udp.stream.
set -e
cd "$(dirname "$0")/../../.."
for name in "$@"; do
  tshark -r "captures/$name.pcap" -T fields -e frame.time_epoch -e frame.len -e ip.src \
    -e tcp.stream -e udp.stream -e tcp.flags.syn -e tcp.flags.ack 2>/dev/null |
  python3 -c '
import sys
from decimal import Decimal
name = sys.argv[1]
rows = [l.rstrip("\n").split("\t") for l in sys.stdin]
client = None
for t, n, src, ts, us, syn, ack in rows:
    if ts and syn in ("1", "True") and ack in ("0", "False"):
        client = src; break
if client is None:
    client = next(r[2] for r in rows if r[4])
print("# ts_ns wire_len uplink(1=device) flow  from captures/%s.pcap (src/radio/testdata/extract.sh)" % name)
for t, n, src, ts, us, syn, ack in rows:
    flow = ts if ts else str(1000 + int(us)) if us else "4294967295"
    print(int(Decimal(t) * 10**9), n, 1 if src == client else 0, flow)
' "$name" > "src/radio/testdata/$name.ticks"
done
