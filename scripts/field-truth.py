#!/usr/bin/env python3
"""tshark's view of each capture in tests/data/field/, for tests/field.rs:
frames, wire bytes, TCP connections, HTTP requests and responses, TCP
payload bytes (retransmissions left out) and TLS records by content type,
of the innermost packets (tshark decodes every tunnel here). Writes
tests/data/field/truth.json. Needs tshark (apt-get install tshark).
"""
import glob, json, os, subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIR = os.path.join(ROOT, "tests", "data", "field")


def fields(cap, *names, filt=None):
    cmd = ["tshark", "-r", cap, "-T", "fields", "-E", "occurrence=l", "-E", "separator=\t",
           "-d", "tcp.port==4434,tls", "-d", "tcp.port==4433,tls", "-o", "tcp.relative_sequence_numbers:TRUE"]
    if filt:
        cmd += ["-Y", filt]
    for n in names:
        cmd += ["-e", n]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


def truth(cap):
    rows = fields(cap, "frame.len", "tcp.stream", "tcp.len", "http.request", "http.response")
    t = {"frames": len(rows), "wire_bytes": sum(int(r[0]) for r in rows)}
    t["tcp_streams"] = len({r[1] for r in rows if r[1]})
    t["http_requests"] = sum(1 for r in rows if r[3])
    t["http_responses"] = sum(1 for r in rows if r[4])
    data = fields(cap, "tcp.len", filt="tcp.len > 0 && !tcp.analysis.retransmission && !tcp.analysis.spurious_retransmission")
    t["tcp_payload_bytes"] = sum(int(r[0]) for r in data if r[0])
    records = {}
    recs = subprocess.run(["tshark", "-r", cap, "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,",
                           "-d", "tcp.port==4434,tls", "-d", "tcp.port==4433,tls", "-Y", "tls.record",
                           "-e", "tls.record.content_type"], capture_output=True, text=True, check=True).stdout
    for line in recs.splitlines():
        for typ in line.split(","):
            if typ:
                records[typ] = records.get(typ, 0) + 1
    t["tls_records"] = records
    return t


out = {os.path.basename(c): truth(c) for c in sorted(glob.glob(os.path.join(DIR, "*.pcap")))}
with open(os.path.join(DIR, "truth.json"), "w") as f:
    json.dump(out, f, indent=1, sort_keys=True)
    f.write("\n")
