//! The pcap and pcapng readers: any bytes, read in pieces of any size.
//! Checks: no panic, every packet holds no more bytes than its wire length,
//! and the reader stops at an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::Read;
use std::path::Path;
use wiretax::capture::CaptureReader;

/// Hands out the input `step` bytes at a time (1 to 256): records cut at
/// every place a read can end.
struct Pieces {
    data: Vec<u8>,
    at: usize,
    step: usize,
}

impl Read for Pieces {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let rest = self.data.get(self.at..).unwrap_or(&[]);
        let n = rest.len().min(buf.len()).min(self.step);
        buf[..n].copy_from_slice(&rest[..n]);
        self.at += n;
        Ok(n)
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&step, capture)) = data.split_first() else { return };
    let src = Pieces { data: capture.to_vec(), at: 0, step: step as usize + 1 };
    let Ok(mut reader) = CaptureReader::from_read(Path::new("fuzz"), Box::new(src)) else { return };
    let mut packets = 0u64;
    let _ = reader.for_each(|p, _offset| {
        assert!(p.data.len() as u64 <= p.wire_len as u64, "{} bytes of a {}-byte frame", p.data.len(), p.wire_len);
        packets += 1;
    });
    assert_eq!(reader.stats().packets, packets);
});
