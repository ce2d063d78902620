//! The capture reader on pcap and pcapng files built around real frames
//! (coap-con-put.pcap), in every byte order, time resolution and block mix,
//! and on damaged files.

use super::*;
use crate::dissect::testkit::TestResult;
use std::io::Cursor;

static COAP_PUT: &[u8] = include_bytes!("../../captures/coap-con-put.pcap");

/// Records of a little-endian microsecond pcap: (seconds, microseconds, data).
fn records(pcap: &[u8]) -> Vec<(u32, u32, Vec<u8>)> {
    let u32_at = |at: usize| u32::from_le_bytes([pcap[at], pcap[at + 1], pcap[at + 2], pcap[at + 3]]);
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= pcap.len() {
        let caplen = u32_at(at + 8) as usize;
        out.push((u32_at(at), u32_at(at + 4), pcap[at + 16..at + 16 + caplen].to_vec()));
        at += 16 + caplen;
    }
    out
}

/// The PUT request (117 bytes) and its answer (47 bytes), with their times.
fn put_and_ack() -> TestResult<[(u32, u32, Vec<u8>); 2]> {
    let mut r = records(COAP_PUT).into_iter();
    let put = r.next().ok_or("coap-con-put.pcap: no PUT")?;
    let ack = r.next().ok_or("coap-con-put.pcap: no answer")?;
    Ok([put, ack])
}

#[derive(Clone, Copy)]
enum Order {
    Le,
    Be,
}

fn u16b(o: Order, v: u16) -> [u8; 2] {
    match o {
        Order::Le => v.to_le_bytes(),
        Order::Be => v.to_be_bytes(),
    }
}

fn u32b(o: Order, v: u32) -> [u8; 4] {
    match o {
        Order::Le => v.to_le_bytes(),
        Order::Be => v.to_be_bytes(),
    }
}

/// A pcap file; each record is (seconds, fraction, captured bytes, wire length).
fn pcap(o: Order, nano: bool, snaplen: u32, linktype: u32, recs: &[(u32, u32, &[u8], u32)]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend(u32b(o, if nano { 0xa1b2_3c4d } else { 0xa1b2_c3d4 }));
    f.extend(u16b(o, 2));
    f.extend(u16b(o, 4));
    f.extend([0; 8]);
    f.extend(u32b(o, snaplen));
    f.extend(u32b(o, linktype));
    for (sec, frac, data, wire) in recs {
        f.extend(u32b(o, *sec));
        f.extend(u32b(o, *frac));
        f.extend(u32b(o, data.len() as u32));
        f.extend(u32b(o, *wire));
        f.extend_from_slice(data);
    }
    f
}

fn padded(b: &[u8]) -> Vec<u8> {
    let mut v = b.to_vec();
    v.resize(b.len().div_ceil(4) * 4, 0);
    v
}

fn ng_block(o: Order, btype: u32, body: &[u8]) -> Vec<u8> {
    let body = padded(body);
    let len = 12 + body.len() as u32;
    [&u32b(o, btype)[..], &u32b(o, len), &body, &u32b(o, len)].concat()
}

fn ng_options(o: Order, opts: &[(u16, &[u8])]) -> Vec<u8> {
    let mut v = Vec::new();
    for (code, value) in opts {
        v.extend(u16b(o, *code));
        v.extend(u16b(o, value.len() as u16));
        v.extend(padded(value));
    }
    if !opts.is_empty() {
        v.extend([0; 4]);
    }
    v
}

fn shb(o: Order) -> Vec<u8> {
    let body = [&u32b(o, 0x1a2b_3c4d)[..], &u16b(o, 1), &u16b(o, 0), &[0xff; 8]].concat();
    ng_block(o, 0x0a0d_0d0a, &body)
}

fn idb(o: Order, linktype: u16, snaplen: u32, opts: &[(u16, &[u8])]) -> Vec<u8> {
    let body = [&u16b(o, linktype)[..], &u16b(o, 0), &u32b(o, snaplen), &ng_options(o, opts)].concat();
    ng_block(o, 1, &body)
}

fn epb(o: Order, if_id: u32, ticks: u64, data: &[u8], wire: u32) -> Vec<u8> {
    let body = [
        &u32b(o, if_id)[..],
        &u32b(o, (ticks >> 32) as u32),
        &u32b(o, ticks as u32),
        &u32b(o, data.len() as u32),
        &u32b(o, wire),
        &padded(data),
        // epb_flags: inbound; options after the data must not be read as data.
        &ng_options(o, &[(2, &u32b(o, 1))]),
    ]
    .concat();
    ng_block(o, 6, &body)
}

fn spb(o: Order, data: &[u8], wire: u32) -> Vec<u8> {
    ng_block(o, 3, &[&u32b(o, wire)[..], data].concat())
}

#[derive(Debug, PartialEq)]
struct Got {
    ts_ns: i64,
    wire_len: u32,
    data: Vec<u8>,
    linktype: u16,
}

/// Reads `bytes` through `rd`; every packet, the end result, the stats.
/// Every packet, how reading ended, and the reader's counts.
type Outcome = (Vec<Got>, Result<(), ReadError>, ReadStats);

fn read_with(rd: Box<dyn Read + Send>) -> Result<Outcome, ReadError> {
    let mut r = CaptureReader::from_read(Path::new("t.pcap"), rd)?;
    let mut got = Vec::new();
    let end = r.for_each(|p, _| {
        got.push(Got { ts_ns: p.ts_ns, wire_len: p.wire_len, data: p.data.to_vec(), linktype: p.linktype })
    });
    Ok((got, end, r.stats().clone()))
}

fn read(bytes: Vec<u8>) -> Result<Outcome, ReadError> {
    read_with(Box::new(Cursor::new(bytes)))
}

/// Like `read`, where opening the file must succeed: how reading ended is
/// the caller's to check.
fn opened(bytes: Vec<u8>) -> TestResult<Outcome> {
    read(bytes).map_err(|e| e.to_string().into())
}

fn read_ok(bytes: Vec<u8>) -> (Vec<Got>, ReadStats) {
    let (got, end, st) = read(bytes).unwrap_or_else(|e| panic!("{e}"));
    end.unwrap_or_else(|e| panic!("{e}"));
    (got, st)
}

fn ns(sec: u32, frac_ns: u32) -> i64 {
    sec as i64 * 1_000_000_000 + frac_ns as i64
}

// ------------------------------------------------------------ pcap

#[test]
fn pcap_both_byte_orders_and_resolutions() -> TestResult {
    let [(s0, u0, put), (s1, u1, ack)] = put_and_ack()?;
    for o in [Order::Le, Order::Be] {
        for nano in [false, true] {
            let (f0, f1) = if nano { (u0 * 1000 + 7, u1 * 1000 + 999) } else { (u0, u1) };
            let file = pcap(o, nano, 262_144, 1, &[(s0, f0, &put, 117), (s1, f1, &ack, 47)]);
            let (got, st) = read_ok(file);
            let scale = if nano { 1 } else { 1000 };
            assert_eq!(
                got,
                vec![
                    Got { ts_ns: ns(s0, f0 * scale), wire_len: 117, data: put.clone(), linktype: 1 },
                    Got { ts_ns: ns(s1, f1 * scale), wire_len: 47, data: ack.clone(), linktype: 1 },
                ]
            );
            assert_eq!((st.records, st.packets, st.format, st.bytes_read), (2, 2, "pcap", 24 + 16 * 2 + 117 + 47));
        }
    }
    Ok(())
}

#[test]
fn pcap_snaplen_cut_keeps_wire_length() -> TestResult {
    let [(s0, u0, put), _] = put_and_ack()?;
    let (got, _) = read_ok(pcap(Order::Le, false, 64, 1, &[(s0, u0, &put[..64], 117)]));
    assert_eq!((got[0].wire_len, got[0].data.len()), (117, 64));
    // A wire length below the captured one is corrupt: the captured bytes were on the wire.
    let (got, _) = read_ok(pcap(Order::Le, false, 262_144, 1, &[(s0, u0, &put, 20)]));
    assert_eq!(got[0].wire_len, 117);
    Ok(())
}

#[test]
fn pcap_link_type_is_passed_on() -> TestResult {
    let [(s0, u0, put), _] = put_and_ack()?;
    for lt in [0u32, 101, 113, 147, 276] {
        let (got, _) = read_ok(pcap(Order::Be, false, 65_535, lt, &[(s0, u0, &put, 117)]));
        assert_eq!(got[0].linktype as u32, lt);
    }
    Ok(())
}

#[test]
fn pcap_header_only_is_no_packets() {
    let (got, st) = read_ok(pcap(Order::Le, false, 65_535, 1, &[]));
    assert!(got.is_empty());
    assert_eq!((st.records, st.format), (0, "pcap"));
}

#[test]
fn pcap_damage_names_record_and_offset() -> TestResult {
    let [(s0, u0, put), (s1, u1, ack)] = put_and_ack()?;
    let good = pcap(Order::Le, false, 262_144, 1, &[(s0, u0, &put, 117), (s1, u1, &ack, 47), (s1, u1, &ack, 47)]);
    let second = 24 + 16 + 117;
    // Truncated inside the second record's data.
    let (got, end, _) = opened(good[..second + 16 + 10].to_vec())?;
    assert_eq!(got.len(), 1);
    let e = end.unwrap_err();
    assert_eq!((e.record, e.offset, e.input.as_path()), (2, second as u64, Path::new("t.pcap")));
    assert!(e.to_string().starts_with("t.pcap: record 2 at byte offset 157: "), "{e}");
    // Truncated inside the second record's header.
    let (got, end, _) = opened(good[..second + 5].to_vec())?;
    assert_eq!((got.len(), end.unwrap_err().record), (1, 2));
    // The second record's length field corrupted.
    for bad in [0x7fff_ffffu32, 0x0100_0000] {
        let mut f = good.clone();
        f[second + 8..second + 12].copy_from_slice(&bad.to_le_bytes());
        let (got, end, _) = opened(f)?;
        assert_eq!(got.len(), 1, "caplen {bad}");
        let e = end.unwrap_err();
        assert_eq!((e.record, e.offset), (2, second as u64), "caplen {bad}: {e}");
        assert!(e.what.contains("length"), "{e}");
    }
    // A wire length no frame has: the record is skipped, named by its
    // number and offset, and reading goes on.
    let mut f = good.clone();
    f[second + 12..second + 16].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
    let (got, end, st) = opened(f)?;
    end?;
    assert_eq!((got.len(), st.skipped_records), (2, 1));
    assert!(st.skipped_notes[0].starts_with(&format!("record 2 at byte offset {second}: ")), "{:?}", st.skipped_notes);
    assert!(st.skipped_notes[0].contains("original length 4294967280"), "{:?}", st.skipped_notes);
    Ok(())
}

#[test]
fn record_number_of_errors_found_in_a_parsed_record() -> TestResult {
    let [(s0, u0, put), (s1, u1, ack)] = put_and_ack()?;
    let good = pcap(Order::Le, false, 262_144, 1, &[(s0, u0, &put, 117), (s1, u1, &ack, 47)]);
    let mut f = good.clone();
    f[24 + 16 + 117 + 12..24 + 16 + 117 + 16].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
    assert!(opened(f)?.2.skipped_notes[0].starts_with("record 2 at "));
    let head = [shb(Order::Le), idb(Order::Le, 1, 0, &[])].concat();
    let one = epb(Order::Le, 0, 1, &put, 117);
    let file = [&head[..], &one, &epb(Order::Le, 3, 2, &put, 117)].concat();
    assert_eq!(opened(file)?.1.unwrap_err().record, 4);
    let file = [shb(Order::Le), spb(Order::Le, &put, 117)].concat();
    assert_eq!(opened(file)?.1.unwrap_err().record, 2);
    let file = [&head[..], &one, &shb(Order::Le), &epb(Order::Le, 0, 2, &put, 117)].concat();
    assert_eq!(opened(file)?.1.unwrap_err().record, 5);
    Ok(())
}

#[test]
fn pcap_moderately_large_record_length_is_called_corrupt() -> TestResult {
    let [(s0, u0, put), (s1, u1, ack)] = put_and_ack()?;
    let good = pcap(Order::Le, false, 262_144, 1, &[(s0, u0, &put, 117), (s1, u1, &ack, 47), (s1, u1, &ack, 47)]);
    let second = 24 + 16 + 117;
    for bad in [300_000u32, 0x0004_0001] {
        let mut f = good.clone();
        f[second + 8..second + 12].copy_from_slice(&bad.to_le_bytes());
        let (got, end, _) = opened(f)?;
        let e = end.unwrap_err();
        assert_eq!((got.len(), e.record, e.offset), (1, 2, second as u64));
        assert!(e.what.contains("length"), "caplen {bad}: {e}");
    }
    Ok(())
}

#[test]
fn unreadable_files_are_errors() {
    let e = read(Vec::new()).expect_err("empty");
    assert_eq!((e.record, e.offset), (0, 0));
    assert!(e.what.contains("empty"), "{e}");
    let e = read(b"GET / HTTP/1.1\r\nHost: example\r\n\r\n".to_vec()).expect_err("garbage");
    assert!(e.what.contains("not a pcap"), "{e}");
    let e = read(pcap(Order::Le, false, 65_535, 1, &[])[..10].to_vec()).expect_err("cut header");
    assert!(e.to_string().starts_with("t.pcap: "), "{e}");
}

#[test]
fn every_prefix_of_a_file_is_handled() -> TestResult {
    let [(s0, u0, put), (s1, u1, ack)] = put_and_ack()?;
    let files = [
        pcap(Order::Be, true, 262_144, 1, &[(s0, u0, &put, 117), (s1, u1, &ack, 47)]),
        [shb(Order::Le), idb(Order::Le, 1, 0, &[(9, &[9])]), epb(Order::Le, 0, 5, &put, 117), spb(Order::Le, &ack, 47)]
            .concat(),
    ];
    for file in files {
        let full = read_ok(file.clone()).0.len();
        for cut in 0..file.len() {
            match read(file[..cut].to_vec()) {
                Ok((got, end, _)) => {
                    assert!(got.len() <= full);
                    if let Err(e) = end {
                        assert!(e.record > 0 && e.offset < cut as u64, "cut {cut}: {e}");
                    }
                }
                Err(e) => assert_eq!(e.record, 0),
            }
        }
    }
    Ok(())
}

/// A reader that hands out the file in small pieces, as a pipe does.
struct Trickle(Cursor<Vec<u8>>, usize);
impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // The first read holds the file header; then 7 bytes at a time.
        let n = if self.1 == 0 { 64 } else { 7 };
        self.1 += 1;
        let len = n.min(buf.len());
        self.0.read(&mut buf[..len])
    }
}

#[test]
fn short_reads_give_the_same_packets() -> TestResult {
    let [(s0, u0, put), (s1, u1, ack)] = put_and_ack()?;
    let files = [
        pcap(Order::Le, false, 262_144, 1, &[(s0, u0, &put, 117), (s1, u1, &ack, 47)]),
        [shb(Order::Be), idb(Order::Be, 1, 0, &[]), epb(Order::Be, 0, 5, &put, 117), epb(Order::Be, 0, 6, &ack, 47)]
            .concat(),
    ];
    for file in files {
        let (want, _) = read_ok(file.clone());
        let (got, end, _) = read_with(Box::new(Trickle(Cursor::new(file), 0))).map_err(|e| e.to_string())?;
        end.map_err(|e| e.to_string())?;
        assert_eq!(got, want);
    }
    Ok(())
}

// ------------------------------------------------------------ pcapng

#[test]
fn pcapng_interfaces_link_types_and_resolutions() -> TestResult {
    let [(s0, u0, put), (_, _, ack)] = put_and_ack()?;
    let us = s0 as u64 * 1_000_000 + u0 as u64;
    for o in [Order::Le, Order::Be] {
        let file = [
            shb(o),
            idb(o, 1, 0, &[(2, b"veth0")]),
            // Nanoseconds, and an SLL2 interface.
            idb(o, 276, 0, &[(9, &[9])]),
            // 2^-20 s ticks.
            idb(o, 101, 0, &[(9, &[0x80 | 20])]),
            epb(o, 0, us, &put, 117),
            epb(o, 1, us * 1000 + 123, &ack, 47),
            // Name resolution block: skipped.
            ng_block(o, 4, &[0; 4]),
            // A block type nobody defined: skipped and counted.
            ng_block(o, 0x0000_0ace, b"???"),
            epb(o, 0, us + 1, &put[..60], 117),
        ]
        .concat();
        let (got, st) = read_ok(file);
        assert_eq!(got.len(), 3);
        assert_eq!((got[0].ts_ns, got[0].linktype, got[0].wire_len, &got[0].data), (ns(s0, u0 * 1000), 1, 117, &put));
        assert_eq!(
            (got[1].ts_ns, got[1].linktype, got[1].wire_len, &got[1].data),
            (ns(s0, u0 * 1000) + 123, 276, 47, &ack)
        );
        assert_eq!((got[2].wire_len, got[2].data.len()), (117, 60));
        assert_eq!((st.format, st.interfaces, st.packets, st.records), ("pcapng", 3, 3, 9));
        assert_eq!(st.skipped_blocks + st.unknown_blocks, 2);
        assert_eq!(st.unknown_blocks, 1);
    }
    Ok(())
}

#[test]
fn pcapng_power_of_two_resolution() -> TestResult {
    let [(_, _, put), _] = put_and_ack()?;
    // 2^-20 s ticks: 3 s and a half.
    let ticks = (3u64 << 20) + (1 << 19);
    let file =
        [shb(Order::Le), idb(Order::Le, 101, 0, &[(9, &[0x80 | 20])]), epb(Order::Le, 0, ticks, &put[14..], 103)]
            .concat();
    let (got, _) = read_ok(file);
    assert_eq!(got[0].ts_ns, 3_500_000_000);
    Ok(())
}

#[test]
fn pcapng_timestamp_offset() -> TestResult {
    let [(_, _, put), _] = put_and_ack()?;
    // if_tsoffset: 1,600,000,000 s added to every timestamp.
    let off = 1_600_000_000i64;
    let file =
        [shb(Order::Le), idb(Order::Le, 1, 0, &[(14, &off.to_le_bytes())]), epb(Order::Le, 0, 2_500_000, &put, 117)]
            .concat();
    let (got, _) = read_ok(file);
    assert_eq!(got[0].ts_ns, off * 1_000_000_000 + 2_500_000_000);
    Ok(())
}

#[test]
fn pcapng_extreme_times_do_not_overflow() -> TestResult {
    let [(_, _, put), _] = put_and_ack()?;
    let file = [
        shb(Order::Le),
        idb(Order::Le, 1, 0, &[(9, &[0])]),
        idb(Order::Le, 1, 0, &[(14, &i64::MAX.to_le_bytes())]),
        idb(Order::Le, 1, 0, &[(14, &i64::MIN.to_le_bytes())]),
        epb(Order::Le, 0, u64::MAX, &put, 117),
        epb(Order::Le, 1, u64::MAX, &put, 117),
        epb(Order::Le, 2, 1, &put, 117),
    ]
    .concat();
    let (got, _) = read_ok(file);
    assert_eq!(got.len(), 3);
    Ok(())
}

#[test]
fn pcapng_timestamp_offset_big_endian() -> TestResult {
    let [(_, _, put), _] = put_and_ack()?;
    let off = 1_600_000_000i64;
    let file =
        [shb(Order::Be), idb(Order::Be, 1, 0, &[(14, &off.to_be_bytes())]), epb(Order::Be, 0, 2_500_000, &put, 117)]
            .concat();
    let (got, _) = read_ok(file);
    assert_eq!(got[0].ts_ns, off * 1_000_000_000 + 2_500_000_000);
    Ok(())
}

#[test]
fn pcapng_simple_packet_blocks_use_interface_zero() -> TestResult {
    let [(_, _, put), (_, _, ack)] = put_and_ack()?;
    let file = [
        shb(Order::Le),
        idb(Order::Le, 1, 0, &[]),
        idb(Order::Le, 113, 0, &[]),
        spb(Order::Le, &put, 117),
        spb(Order::Le, &ack, 47),
    ]
    .concat();
    let (got, st) = read_ok(file);
    assert_eq!(
        got.iter().map(|g| (g.linktype, g.wire_len, g.data.len())).collect::<Vec<_>>(),
        vec![(1, 117, 117), (1, 47, 47)]
    );
    assert_eq!(got[1].data, ack);
    assert_eq!(st.packets, 2);
    Ok(())
}

#[test]
fn pcapng_simple_packet_block_cut_by_snaplen() -> TestResult {
    let [(_, _, put), _] = put_and_ack()?;
    // Snaplen 62: 62 bytes kept, padded to 64 in the block.
    let file = [shb(Order::Le), idb(Order::Le, 1, 62, &[]), spb(Order::Le, &put[..62], 117)].concat();
    let (got, _) = read_ok(file);
    assert_eq!((got[0].wire_len, got[0].data.len()), (117, 62));
    assert_eq!(got[0].data, &put[..62]);
    Ok(())
}

#[test]
fn pcapng_errors_name_the_block() -> TestResult {
    let [(_, _, put), _] = put_and_ack()?;
    let head = [shb(Order::Le), idb(Order::Le, 1, 0, &[])].concat();
    let one = epb(Order::Le, 0, 1, &put, 117);
    // An EPB naming an interface never described.
    let file = [&head[..], &one, &epb(Order::Le, 3, 2, &put, 117)].concat();
    let (got, end, _) = opened(file)?;
    let e = end.unwrap_err();
    assert_eq!((got.len(), e.offset), (1, (head.len() + one.len()) as u64));
    assert!(e.what.contains("interface 3"), "{e}");
    // An SPB before any IDB.
    let (got, end, _) = opened([shb(Order::Le), spb(Order::Le, &put, 117)].concat())?;
    assert_eq!((got.len(), end.unwrap_err().offset), (0, 28));
    // A new section forgets the interfaces of the last one.
    let file = [&head[..], &one, &shb(Order::Le), &epb(Order::Le, 0, 2, &put, 117)].concat();
    let (got, end, _) = opened(file)?;
    assert_eq!((got.len(), end.unwrap_err().offset), (1, (head.len() + one.len() + 28) as u64));
    // Block lengths that disagree, are not multiples of 4, or run past the file.
    for (at, bad) in [(4usize, 0x0001_0001u32), (4, 8), (one.len() - 4, 36)] {
        let mut b = one.clone();
        b[at..at + 4].copy_from_slice(&bad.to_le_bytes());
        let file = [&head[..], &one, &b, &one].concat();
        let (got, end, _) = opened(file)?;
        assert_eq!(got.len(), 1, "length {bad} at {at}");
        let e = end.expect_err("damage reported");
        assert_eq!((e.record, e.offset), (4, (head.len() + one.len()) as u64), "{e}");
    }
    Ok(())
}

#[test]
fn pcapng_sections_of_both_byte_orders() -> TestResult {
    let [(_, _, put), (_, _, ack)] = put_and_ack()?;
    let file = [
        shb(Order::Le),
        idb(Order::Le, 1, 0, &[]),
        epb(Order::Le, 0, 1, &put, 117),
        shb(Order::Be),
        idb(Order::Be, 113, 0, &[(9, &[9])]),
        epb(Order::Be, 0, 2, &ack, 47),
    ]
    .concat();
    let (got, st) = read_ok(file);
    assert_eq!(
        got.iter().map(|g| (g.linktype, g.ts_ns, g.wire_len)).collect::<Vec<_>>(),
        vec![(1, 1000, 117), (113, 2, 47)]
    );
    assert_eq!((st.records, st.packets, st.interfaces), (6, 2, 2));
    Ok(())
}

#[test]
fn pcapng_packet_length_beyond_its_block() -> TestResult {
    let [(_, _, put), _] = put_and_ack()?;
    let head = [shb(Order::Le), idb(Order::Le, 1, 0, &[])].concat();
    let mut bad = epb(Order::Le, 0, 1, &put, 117);
    // Captured length 200 in a block holding 117 bytes (and an option).
    bad[20..24].copy_from_slice(&200u32.to_le_bytes());
    let (got, end, _) = opened([&head[..], &bad, &epb(Order::Le, 0, 2, &put, 117)].concat())?;
    // Either the block is refused, or its packet is no longer than the block's data.
    match end {
        Err(e) => assert_eq!((got.len(), e.offset), (0, head.len() as u64), "{e}"),
        Ok(()) => assert!(got.iter().all(|g| g.data.len() <= 120 && g.wire_len >= g.data.len() as u32), "{got:?}"),
    }
    Ok(())
}

// ------------------------------------------------ against pcap-parser's reader

/// How the reader worked before it kept its own buffer: pcap-parser's
/// streaming reader, whose buffer shifts and errors the new one must match.
fn read_reference(rd: Box<dyn Read + Send>) -> Result<Outcome, ReadError> {
    use pcap_parser::{PcapBlockOwned, create_reader};
    let path = Path::new("t.pcap");
    let err = |what: String| ReadError { input: path.to_path_buf(), record: 0, offset: 0, what };
    let mut inner = match create_reader(BUFFER, rd) {
        Ok(r) => r,
        Err(PcapError::Eof) => return Err(err("empty file".into())),
        Err(PcapError::HeaderNotRecognized) => {
            return Err(err("not a pcap or pcapng capture (unknown file header)".into()));
        }
        Err(PcapError::Incomplete(_) | PcapError::UnexpectedEof) => {
            return Err(err("file too short to hold a capture file header".into()));
        }
        Err(e) => return Err(err(format!("unreadable file header: {e:?}"))),
    };
    let mut st = State::default();
    let mut got = Vec::new();
    let mut offset = 0u64;
    let corrupt_legacy_length = |st: &State, data: &[u8]| {
        let b: [u8; 4] = data.get(8..12)?.try_into().ok()?;
        let caplen = if st.legacy_be { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) };
        (st.stats.format == "pcap" && caplen > st.legacy_max_record)
            .then(|| format!("record length {caplen} is not a frame length (corrupted length field)"))
    };
    let end = loop {
        let fail = |record: u64, what: String| ReadError { input: path.to_path_buf(), record, offset, what };
        let next_record = st.stats.records + 1;
        match inner.next() {
            Ok((size, block)) => {
                let packet = match block {
                    PcapBlockOwned::LegacyHeader(h) => {
                        st.legacy_header(&h);
                        Ok(None)
                    }
                    PcapBlockOwned::Legacy(b) => st.legacy_packet(&b).map(Some),
                    PcapBlockOwned::NG(b) => st.ng_block(b).map(|r| match r {
                        Some(Record::Packet(p)) => Some(p),
                        _ => None,
                    }),
                };
                match packet {
                    Ok(Some(p)) => got.push(Got {
                        ts_ns: p.ts_ns,
                        wire_len: p.wire_len,
                        data: p.data.to_vec(),
                        linktype: p.linktype,
                    }),
                    Ok(None) => {}
                    Err(Bad::Skip(what)) => {
                        st.stats.skipped_records += 1;
                        if st.stats.skipped_notes.len() < SKIPPED_NOTES {
                            st.stats
                                .skipped_notes
                                .push(format!("record {next_record} at byte offset {offset}: {what}"));
                        }
                    }
                    Err(Bad::Fatal(what)) => break Err(fail(next_record, what)),
                }
                inner.consume(size);
                offset += size as u64;
                st.stats.bytes_read = offset;
            }
            Err(PcapError::Eof) => break Ok(()),
            Err(PcapError::Incomplete(_)) => {
                if let Some(what) = corrupt_legacy_length(&st, inner.data()) {
                    break Err(fail(next_record, what));
                }
                if inner.refill().is_err() {
                    break Err(fail(next_record, "read error".into()));
                }
            }
            Err(PcapError::UnexpectedEof) => {
                let what = corrupt_legacy_length(&st, inner.data())
                    .unwrap_or_else(|| "file ends in the middle of a record (truncated capture)".into());
                break Err(fail(next_record, what));
            }
            Err(PcapError::BufferTooSmall) => {
                break Err(fail(
                    next_record,
                    "record length larger than any real frame (corrupted length field)".into(),
                ));
            }
            Err(e) => break Err(fail(next_record, format!("corrupted record: {}", describe(&e)))),
        }
    };
    Ok((got, end, st.stats))
}

/// Hands out a file in pieces of pseudo-random sizes (some empty-looking
/// pipes give a few bytes, some a lot).
struct Chunks(Cursor<Vec<u8>>, u64);
impl Read for Chunks {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.1 = self.1.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let n = match self.1 >> 61 {
            0 => 1 + (self.1 >> 40) as usize % 16,
            1..=3 => 1 + (self.1 >> 40) as usize % 4096,
            _ => 1 + (self.1 >> 40) as usize % (3 << 20),
        };
        let len = n.min(buf.len());
        self.0.read(&mut buf[..len])
    }
}

/// Makes a source of a file's bytes, given a seed for the piece sizes.
type MakeReader = fn(Vec<u8>, u64) -> Box<dyn Read + Send>;

/// Both readers on `file`, read whole and in pieces: same packets, counts and errors.
fn same_as_reference(name: &str, file: &[u8]) -> TestResult {
    let seed = file.len() as u64;
    let sources: [MakeReader; 2] = [|f, _| Box::new(Cursor::new(f)), |f, seed| Box::new(Chunks(Cursor::new(f), seed))];
    for source in sources {
        let mut want = read_reference(source(file.to_vec(), seed));
        // pcap-parser gives up on a first read shorter than the file header
        // ("too short", or "unknown header" for a pcapng section header cut);
        // this reader reads on (a pipe may deliver a few bytes at a time),
        // and then reads as pcap-parser reads the whole file.
        if want.as_ref().is_err_and(|e| e.record == 0) {
            want = read_reference(Box::new(Cursor::new(file.to_vec())));
        }
        let got = read_with(source(file.to_vec(), seed));
        match (want, got) {
            (Ok((wp, we, ws)), Ok((gp, ge, gs))) => {
                assert_eq!(we, ge, "{name}");
                assert_eq!(format!("{ws:?}"), format!("{gs:?}"), "{name}");
                assert!(wp == gp, "{name}: packets differ ({} and {})", wp.len(), gp.len());
            }
            (want, got) => assert_eq!(want.err(), got.err(), "{name}"),
        }
    }
    Ok(())
}

#[test]
fn damaged_files_read_as_pcap_parser_read_them() -> TestResult {
    let [(s0, u0, put), (s1, u1, ack)] = put_and_ack()?;
    // About 2.5 MB of records, so buffer refills fall in many places.
    let n = 16_000;
    let recs: Vec<(u32, u32, &[u8], u32)> =
        (0..n).map(|i| if i % 2 == 0 { (s0, u0, &put[..], 117) } else { (s1, u1, &ack[..], 47) }).collect();
    let legacy = pcap(Order::Le, false, 65_535, 1, &recs);
    let legacy_be = pcap(Order::Be, true, 65_535, 1, &recs);
    let mut starts = vec![24usize];
    for (_, _, d, _) in &recs {
        let last = starts.last().copied().unwrap_or(24);
        starts.push(last + 16 + d.len());
    }
    let mut ng = [shb(Order::Le), idb(Order::Le, 1, 0, &[])].concat();
    let mut ng_starts = Vec::new();
    for (i, (_, _, d, w)) in recs.iter().enumerate() {
        ng_starts.push(ng.len());
        ng.extend(epb(Order::Le, 0, i as u64, d, *w));
    }
    same_as_reference("legacy", &legacy)?;
    same_as_reference("legacy big-endian", &legacy_be)?;
    same_as_reference("pcapng", &ng)?;
    let mb = 1u32 << 20;
    let lengths = [262_145, 300_000, 700_000, mb - 17, mb - 16, mb - 15, mb, 0x7fff_ffff, u32::MAX];
    // Records near where 1 MB and 0.5 MB reads end, and elsewhere.
    let picks = [3usize, 3_800, 3_830, 3_850, 7_000, 7_661, 7_700, 11_480, 11_500, 15_000];
    for (i, &rec) in picks.iter().enumerate() {
        let at = starts[rec];
        for (j, &len) in lengths.iter().enumerate() {
            if (i + j) % 3 != 0 {
                continue;
            }
            let mut f = legacy.clone();
            f[at + 8..at + 12].copy_from_slice(&len.to_le_bytes());
            same_as_reference(&format!("caplen {len} at record {rec}"), &f)?;
            f.truncate(at + 16 + (len as usize % 5_000));
            same_as_reference(&format!("caplen {len} at record {rec}, cut"), &f)?;
            let mut f = legacy.clone();
            f[at + 12..at + 16].copy_from_slice(&len.to_le_bytes());
            same_as_reference(&format!("origlen {len} at record {rec}"), &f)?;
            let mut f = ng.clone();
            let at = ng_starts[rec];
            f[at + 4..at + 8].copy_from_slice(&(len & !3).to_le_bytes());
            same_as_reference(&format!("block length {len} at block {rec}"), &f)?;
        }
        same_as_reference(&format!("legacy cut at record {rec}"), &legacy[..starts[rec] + 9])?;
        same_as_reference(&format!("pcapng cut at block {rec}"), &ng[..ng_starts[rec] + 13])?;
    }
    // A snaplen that lets records be as long as they like.
    let mut f = legacy.clone();
    f[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
    let at = starts[3_830];
    f[at + 8..at + 12].copy_from_slice(&(700_000u32).to_le_bytes());
    same_as_reference("snaplen 2^32-1", &f)?;
    Ok(())
}

#[test]
fn modified_pcap_reads_as_pcap_parser_read_it() -> TestResult {
    let [(s0, u0, put), (s1, u1, ack)] = put_and_ack()?;
    // The "modified" format: magic a1b2cd34, 8 more bytes per record header.
    let mut f = pcap(Order::Le, false, 65_535, 1, &[]);
    f[..4].copy_from_slice(&0xa1b2_cd34u32.to_le_bytes());
    for (sec, frac, data) in [(s0, u0, &put), (s1, u1, &ack)] {
        f.extend([sec, frac, data.len() as u32, data.len() as u32, 2].map(u32::to_le_bytes).concat());
        f.extend([0x08, 0x00, 0, 0]);
        f.extend_from_slice(data);
    }
    let (got, st) = read_ok(f.clone());
    assert_eq!(got.iter().map(|g| &g.data).collect::<Vec<_>>(), [&put, &ack]);
    assert_eq!((st.records, st.bytes_read), (2, f.len() as u64));
    same_as_reference("modified", &f)?;
    same_as_reference("modified, cut", &f[..f.len() - 3])?;
    Ok(())
}

/// A record too long to be a frame is said the same way wherever it lies:
/// whole in the bytes read (the file's first record) or cut by their end
/// (one far into the file, read in pieces).
#[test]
fn a_too_long_record_is_said_the_same_wherever_it_lies() -> TestResult {
    let [(s0, u0, put), _] = put_and_ack()?;
    let recs: Vec<(u32, u32, &[u8], u32)> = (0..4_000).map(|_| (s0, u0, &put[..], 117)).collect();
    let mut said = Vec::new();
    for at in [0usize, 3_000] {
        let mut f = pcap(Order::Le, false, 65_535, 1, &recs);
        let start = 24 + at * (16 + put.len());
        f[start + 8..start + 12].copy_from_slice(&300_000u32.to_le_bytes());
        let (got, end, st) = opened(f)?;
        let e = end.err().ok_or("read on past a 300,000-byte record")?;
        assert_eq!((got.len(), e.record, st.records), (at, at as u64 + 1, at as u64), "{e}");
        said.push(e.what);
    }
    assert_eq!(said[0], said[1]);
    assert!(said[0].contains("not a frame length (corrupted length field)"), "{}", said[0]);
    Ok(())
}

// ------------------------------------------------------- sources

/// A reader that hands out one byte at a time, header included.
struct Dribble(Cursor<Vec<u8>>);
impl Read for Dribble {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let len = 1.min(buf.len());
        self.0.read(&mut buf[..len])
    }
}

fn dsb(o: Order, kind: u32, secrets: &[u8]) -> Vec<u8> {
    ng_block(o, 0x0000_000a, &[&u32b(o, kind)[..], &u32b(o, secrets.len() as u32), &padded(secrets)].concat())
}

/// Secrets handed out by a source: (kind, bytes).
type GotSecrets = Vec<(SecretsKind, Vec<u8>)>;

/// Every record of a source, owned: packets as `Got`, secrets as (kind, bytes).
fn records_of(src: &mut dyn Source) -> (Vec<Got>, GotSecrets, Result<(), ReadError>) {
    let (mut packets, mut secrets) = (Vec::new(), Vec::new());
    let end = loop {
        match src.next() {
            Ok(Some(Record::Packet(p))) => {
                packets.push(Got { ts_ns: p.ts_ns, wire_len: p.wire_len, data: p.data.to_vec(), linktype: p.linktype })
            }
            Ok(Some(Record::Secrets { kind, data })) => secrets.push((kind, data.to_vec())),
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    (packets, secrets, end)
}

fn gzip(b: &[u8]) -> TestResult<Vec<u8>> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b)?;
    Ok(e.finish()?)
}

#[test]
fn secrets_blocks_are_handed_out_between_the_packets() -> TestResult {
    let [(_, _, put), (_, _, ack)] = put_and_ack()?;
    let keys = b"CLIENT_RANDOM 00 11\n";
    for o in [Order::Le, Order::Be] {
        let file = [
            shb(o),
            idb(o, 1, 0, &[]),
            epb(o, 0, 5, &put, 117),
            dsb(o, 0x544c_534b, keys),
            dsb(o, 0x5747_4b4c, b"wg"),
            epb(o, 0, 6, &ack, 47),
        ]
        .concat();
        let mut r = CaptureReader::from_read(Path::new("t.pcapng"), Box::new(Cursor::new(file)))?;
        let (packets, secrets, end) = records_of(&mut r);
        end?;
        assert_eq!(packets.len(), 2);
        // The padding is not part of the secrets.
        assert_eq!(
            secrets,
            vec![(SecretsKind::TlsKeyLog, keys.to_vec()), (SecretsKind::Other(0x5747_4b4c), b"wg".to_vec())]
        );
        assert_eq!(r.stats().secrets_blocks, 2);
        assert_eq!(r.stats().skipped_blocks, 0);
        // for_each passes the secrets over.
        assert_eq!(
            read_ok([shb(o), idb(o, 1, 0, &[]), dsb(o, 0x544c_534b, keys), epb(o, 0, 5, &put, 117)].concat()).0.len(),
            1
        );
    }
    Ok(())
}

#[test]
fn compressed_captures_read_as_the_plain_file() -> TestResult {
    let [(s0, u0, put), (s1, u1, ack)] = put_and_ack()?;
    let files = [
        pcap(Order::Le, false, 262_144, 1, &[(s0, u0, &put, 117), (s1, u1, &ack, 47)]),
        [shb(Order::Be), idb(Order::Be, 1, 0, &[]), epb(Order::Be, 0, 5, &put, 117), epb(Order::Be, 0, 6, &ack, 47)]
            .concat(),
    ];
    for file in files {
        let (want, want_stats) = read_ok(file.clone());
        let gz = gzip(&file)?;
        let zst = zstd::encode_all(file.as_slice(), 3)?;
        // Two gzip members, as `cat a.gz b.gz` makes: one stream.
        let half = file.len() / 2;
        let two = [gzip(&file[..half])?, gzip(&file[half..])?].concat();
        for (packed, name) in [(gz, "gzip"), (zst, "zstd"), (two, "gzip")] {
            let size = packed.len() as u64;
            let mut r = CaptureReader::from_read(Path::new("t"), Box::new(Dribble(Cursor::new(packed))))?;
            let (got, _, end) = records_of(&mut r);
            end?;
            assert_eq!(got, want, "{name}");
            assert_eq!(r.stats().compression, name);
            assert_eq!(r.stats().bytes_read, want_stats.bytes_read);
            // Where a compressed input is: in compressed bytes.
            assert_eq!(r.position().0, size, "{name}");
        }
    }
    Ok(())
}

#[test]
fn a_pipe_that_gives_a_byte_at_a_time_gives_the_same_packets() -> TestResult {
    let [(s0, u0, put), (s1, u1, ack)] = put_and_ack()?;
    let files = [
        pcap(Order::Be, true, 262_144, 1, &[(s0, u0, &put, 117), (s1, u1, &ack, 47)]),
        [shb(Order::Le), idb(Order::Le, 1, 0, &[(9, &[9])]), epb(Order::Le, 0, 5, &put, 117), spb(Order::Le, &ack, 47)]
            .concat(),
    ];
    for file in files {
        let (want, _) = read_ok(file.clone());
        let (got, end, _) = read_with(Box::new(Dribble(Cursor::new(file)))).map_err(|e| e.to_string())?;
        end.map_err(|e| e.to_string())?;
        assert_eq!(got, want);
    }
    Ok(())
}

#[test]
fn damaged_compressed_streams_are_errors_not_panics() -> TestResult {
    let file = pcap(Order::Le, false, 262_144, 1, &[]);
    let gz = gzip(&file)?;
    // Not a gzip stream past its magic.
    let bad = [&gz[..2], &[0xff; 40][..]].concat();
    assert!(CaptureReader::from_read(Path::new("t"), Box::new(Cursor::new(bad))).is_err());
    // Cut short: the header may be whole, the rest is missing.
    for cut in 0..gz.len() {
        if let Ok(mut r) = CaptureReader::from_read(Path::new("t"), Box::new(Cursor::new(gz[..cut].to_vec()))) {
            let _ = records_of(&mut r);
        }
    }
    // The name says nothing: a plain file named .gz is read as it is.
    assert_eq!(Compression::of(&file), Compression::None);
    Ok(())
}

#[test]
fn pcapng_block_length_below_the_minimum_is_corrupt_not_a_panic() -> TestResult {
    // A process information block (which pcap-parser takes as short as 4
    // bytes) and an unknown one, each claiming 8 bytes, after a packet.
    for o in [Order::Le, Order::Be] {
        for btype in [0x8000_0001u32, 0x0bad_0bad] {
            let good = [shb(o), idb(o, 1, 0, &[]), epb(o, 0, 1, &[1, 2, 3], 3)].concat();
            let bad = [&good[..], &u32b(o, btype), &u32b(o, 8), &[0; 8]].concat();
            let (got, end, _) = opened(bad)?;
            assert_eq!(got.len(), 1);
            let e = end.unwrap_err();
            assert_eq!((e.record, e.offset), (4, good.len() as u64), "{e}");
            assert!(e.what.contains("block length 8 is below the 12-byte minimum"), "{e}");
        }
    }
    Ok(())
}

// ------------------------------------------- lengths a frame cannot have

/// A frame past 256 KiB on the wire (Linux BIG TCP: 300,000 bytes, cut at
/// tcpdump's 262,144-byte snaplen) is read as any frame; one whose original
/// length is past `MAX_WIRE_LEN` is skipped with what was wrong, and the
/// records after it are read.
#[test]
fn original_lengths_past_the_bound_are_skipped_and_big_tcp_is_read() -> TestResult {
    let [(s0, u0, put), (s1, u1, ack)] = put_and_ack()?;
    let mut big = put.clone();
    big.resize(262_144, 0);
    let recs: Vec<(u32, u32, &[u8], u32)> = vec![
        (s0, u0, &put[..], 117),
        (s0, u0, &big[..], 300_000),
        (s0, u0, &put[..], MAX_WIRE_LEN),
        (s0, u0, &put[..], MAX_WIRE_LEN + 1),
        (s1, u1, &ack[..], u32::MAX),
        (s1, u1, &ack[..], 47),
    ];
    let legacy = pcap(Order::Le, false, 262_144, 1, &recs);
    let (got, st) = read_ok(legacy);
    assert_eq!(got.iter().map(|g| g.wire_len).collect::<Vec<_>>(), [117, 300_000, MAX_WIRE_LEN, 47]);
    assert_eq!((st.records, st.packets, st.skipped_records), (6, 4, 2));
    let at4 = 24 + 16 * 3 + 117 * 2 + 262_144;
    assert_eq!(
        st.skipped_notes[0],
        format!(
            "record 4 at byte offset {at4}: pcap record's original length 1048577 is past the 1048576-byte bound on a frame (corrupted); record skipped"
        )
    );
    assert!(st.skipped_notes[1].starts_with(&format!("record 5 at byte offset {}: ", at4 + 16 + 117)));
    assert!(st.skipped_notes[1].contains("original length 4294967295"), "{}", st.skipped_notes[1]);

    // pcapng: each block carries its own length, so a bad original length
    // costs that block alone.
    for o in [Order::Le, Order::Be] {
        let head = [shb(o), idb(o, 1, 0, &[])].concat();
        let blocks = [
            epb(o, 0, 1, &put, 117),
            epb(o, 0, 2, &put, u32::MAX),
            epb(o, 0, 3, &big, 300_000),
            spb(o, &ack, 0xFFFF_FFF0),
            spb(o, &ack, 47),
        ];
        let skipped_at = head.len() + blocks[0].len();
        let (got, st) = read_ok([&head[..], &blocks.concat()].concat());
        assert_eq!(got.iter().map(|g| g.wire_len).collect::<Vec<_>>(), [117, 300_000, 47]);
        assert_eq!((st.records, st.packets, st.skipped_records), (7, 3, 2));
        assert_eq!(
            st.skipped_notes[0],
            format!(
                "record 4 at byte offset {skipped_at}: enhanced packet block's original length 4294967295 is past the 1048576-byte bound on a frame (corrupted); block skipped"
            )
        );
        assert!(st.skipped_notes[1].contains("simple packet block's original length 4294967280"));
    }
    Ok(())
}

/// An enhanced packet block that cannot hold what it says it holds is
/// said in words (which block, which length), skipped, and reading goes
/// on: its own length frames it.
#[test]
fn malformed_packet_blocks_are_said_in_words_and_skipped() -> TestResult {
    let [(_, _, put), (_, _, ack)] = put_and_ack()?;
    let head = [shb(Order::Le), idb(Order::Le, 1, 0, &[])].concat();
    let mut beyond = epb(Order::Le, 0, 1, &put, 117);
    beyond[20..24].copy_from_slice(&217u32.to_le_bytes());
    let short = ng_block(Order::Le, 6, &[0; 8]);
    let after = epb(Order::Le, 0, 2, &ack, 47);
    for (bad, says) in [
        (
            &beyond,
            format!(
                "enhanced packet block of {} bytes cannot hold its captured length 217 (room for {}); block skipped",
                beyond.len(),
                beyond.len() - 32
            ),
        ),
        (
            &short,
            "enhanced packet block of 20 bytes is shorter than the 32 bytes of its fixed fields; block skipped".into(),
        ),
    ] {
        let (got, st) = read_ok([&head[..], bad, &after].concat());
        assert_eq!(got.iter().map(|g| g.wire_len).collect::<Vec<_>>(), [47]);
        assert_eq!(st.skipped_notes, [format!("record 3 at byte offset {}: {says}", head.len())]);
        // The last block of the file too.
        let (got, st) = read_ok([&head[..], &after, bad].concat());
        assert_eq!((got.len(), st.skipped_records), (1, 1));
    }
    // Lengths that disagree: the framing cannot be trusted, reading stops.
    let mut torn = epb(Order::Le, 0, 1, &put, 117);
    let n = torn.len();
    torn[n - 4..].copy_from_slice(&9999u32.to_le_bytes());
    let (got, end, _) = opened([&head[..], &after, &torn, &after].concat())?;
    let e = end.err().ok_or("read on past a torn block")?;
    assert_eq!(got.len(), 1);
    assert!(!e.what.contains("Verify"), "{e}");
    Ok(())
}

/// A reader that gives `bytes`, then fails as a decompressor would.
struct FailingAfter(Cursor<Vec<u8>>, std::io::ErrorKind, &'static str);
impl Read for FailingAfter {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.0.read(buf)? {
            0 => Err(std::io::Error::new(self.1, self.2)),
            n => Ok(n),
        }
    }
}

/// A compressed capture cut short, or damaged, says what the decompressor
/// said, not a bare "read error".
#[test]
fn truncated_or_corrupt_compressed_captures_say_why() -> TestResult {
    use std::io::Write;
    let whole = COAP_PUT.to_vec();
    let cut = whole.len() - 30;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&whole)?;
    let gz = gz.finish()?;
    let zst = zstd::encode_all(&whole[..], 3)?;
    for (name, bytes, says) in [("gzip", gz, "the gzip stream ends early"), ("zstd", zst, "the zstd stream ends early")]
    {
        // Cut short: said so, whether the first read (the file header) or a
        // later one meets the end.
        let why = |bytes: &[u8]| match read(bytes.to_vec()) {
            Ok((_, end, _)) => end.err().map(|e| e.what),
            Err(e) => Some(e.what),
        };
        let said = why(&bytes[..bytes.len() * 2 / 3]).ok_or("read on past the end of a cut stream")?;
        assert!(said.starts_with(says), "{name}: {said}");
        // Damaged in the middle: what the decompressor says is kept.
        let mut bad = bytes.clone();
        let mid = bytes.len() / 2;
        for b in &mut bad[mid..mid + 8] {
            *b ^= 0x5a;
        }
        if let Some(said) = why(&bad) {
            assert!(said.contains(name) && said.len() > format!("the {name} stream ").len() + 20, "{name}: {said}");
        }
    }
    // An uncompressed input keeps the cause too.
    let mut r = CaptureReader::from_read(
        Path::new("t.pcap"),
        Box::new(FailingAfter(Cursor::new(whole[..cut].to_vec()), std::io::ErrorKind::Other, "device gone")),
    )?;
    let e = r.for_each(|_, _| {}).err().ok_or("no error")?;
    assert_eq!(e.what, "read error: device gone");
    Ok(())
}
