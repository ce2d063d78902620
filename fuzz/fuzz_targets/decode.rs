//! Link and IP decoding with IP defragmentation, as the analysis runs them:
//! frames of any link type, fragments joined within tight limits.
//! Checks: no panic; the layers of a decoded frame add up to its wire
//! length; a frame decoded as a fragment has a fragment header; and the
//! defragmenter accounts for every fragment's wire bytes, joined or
//! abandoned.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wiretax::decode::{self, Defragmenter, Frame};

fn check(f: &Frame, wire: u32) {
    match f {
        Frame::Ip(d) => {
            assert_eq!(d.link_len + d.net_len + d.transport_len + d.payload_len, wire, "{d:?}");
            assert!(d.payload.len() as u64 <= d.payload_len as u64);
        }
        Frame::Fragment { link_len, net_len } => assert!(link_len + net_len <= wire),
        Frame::Broken { link_len, .. } => assert!(*link_len <= wire),
        Frame::NotIp { .. } => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let frames = wiretax_fuzz::parse_frames(data);
    // Four datagrams at once, joined within a second.
    let mut defrag = Defragmenter::new(4, 65_535 + 40, 1_000_000_000);
    let (mut fragment_bytes, mut joined_bytes) = (0u64, 0u64);
    for (i, f) in frames.iter().enumerate() {
        let ts = i as i64 * 100_000_000;
        let frame = decode::decode(f.linktype, f.data, f.wire_len);
        check(&frame, f.wire_len);
        if let Frame::Fragment { link_len, .. } = frame {
            fragment_bytes += f.wire_len as u64;
            let ip = decode::link::strip(f.linktype, f.data).map(|(_, ip)| ip).unwrap_or(&[]);
            let h = decode::ip_header(ip).expect("a fragment's IP header parses");
            let fi = h.fragment.expect("a fragment has a fragment header");
            if let Some(j) = defrag.add(ts, &h, fi, ip, link_len) {
                joined_bytes += j.bytes.link + j.bytes.network + j.bytes.data;
                check(&j.frame(), j.data.len() as u32);
            }
        }
    }
    defrag.finish();
    let a = defrag.abandoned;
    assert_eq!(fragment_bytes, joined_bytes + a.link + a.network + a.data);
});
