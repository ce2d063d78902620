//! Writes packets back out as a capture file: what `wiretax live --write`
//! keeps, so `wiretax analyze` of it gives the live run's final report.
//! pcapng (one interface per link type) or classic pcap (one link type),
//! both with nanosecond timestamps: every field of a [`Packet`] is kept.

use super::Packet;
use std::io::{self, Write};

/// The container written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteFormat {
    Pcapng,
    /// Classic pcap, nanosecond variant (magic `a1b23c4d`).
    Pcap,
}

impl WriteFormat {
    /// pcap for a name ending in `.pcap`, else pcapng.
    pub fn for_path(path: &std::path::Path) -> WriteFormat {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("pcap") => WriteFormat::Pcap,
            _ => WriteFormat::Pcapng,
        }
    }
}

/// The largest frame a reader accepts is larger than this; libpcap's own default.
const SNAPLEN: u32 = 262_144;

pub struct CaptureWriter<W: Write> {
    out: W,
    format: WriteFormat,
    /// pcapng: the link type of each interface written, by interface id;
    /// pcap: the one link type of the file, once its header is written.
    interfaces: Vec<u16>,
    started: bool,
}

impl<W: Write> CaptureWriter<W> {
    pub fn new(out: W, format: WriteFormat) -> CaptureWriter<W> {
        CaptureWriter { out, format, interfaces: Vec::new(), started: false }
    }

    /// Writes the file header now (a capture of no packets is still a capture).
    pub fn start(&mut self, linktype: Option<u16>) -> io::Result<()> {
        if self.started {
            return Ok(());
        }
        self.started = true;
        match self.format {
            WriteFormat::Pcapng => {
                // Section header: byte-order magic, version 1.0, length unknown.
                let mut b = Vec::with_capacity(28);
                b.extend_from_slice(&0x0A0D_0D0Au32.to_le_bytes());
                b.extend_from_slice(&28u32.to_le_bytes());
                b.extend_from_slice(&0x1A2B_3C4Du32.to_le_bytes());
                b.extend_from_slice(&1u16.to_le_bytes());
                b.extend_from_slice(&0u16.to_le_bytes());
                b.extend_from_slice(&(-1i64).to_le_bytes());
                b.extend_from_slice(&28u32.to_le_bytes());
                self.out.write_all(&b)?;
                if let Some(lt) = linktype {
                    self.interface(lt)?;
                }
                Ok(())
            }
            WriteFormat::Pcap => {
                let Some(lt) = linktype else {
                    // Written with the first packet, which names the link type.
                    self.started = false;
                    return Ok(());
                };
                let mut b = Vec::with_capacity(24);
                b.extend_from_slice(&0xA1B2_3C4Du32.to_le_bytes());
                b.extend_from_slice(&2u16.to_le_bytes());
                b.extend_from_slice(&4u16.to_le_bytes());
                b.extend_from_slice(&0i32.to_le_bytes());
                b.extend_from_slice(&0u32.to_le_bytes());
                b.extend_from_slice(&SNAPLEN.to_le_bytes());
                b.extend_from_slice(&u32::from(lt).to_le_bytes());
                self.interfaces.push(lt);
                self.out.write_all(&b)
            }
        }
    }

    /// A pcapng interface description for `linktype`, nanosecond resolution; its id.
    fn interface(&mut self, linktype: u16) -> io::Result<u32> {
        let mut b = Vec::with_capacity(32);
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&32u32.to_le_bytes());
        b.extend_from_slice(&linktype.to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(&SNAPLEN.to_le_bytes());
        // if_tsresol = 9: timestamps count nanoseconds.
        b.extend_from_slice(&9u16.to_le_bytes());
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&[9, 0, 0, 0]);
        // opt_endofopt
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&32u32.to_le_bytes());
        self.out.write_all(&b)?;
        self.interfaces.push(linktype);
        Ok(self.interfaces.len() as u32 - 1)
    }

    pub fn write(&mut self, p: &Packet) -> io::Result<()> {
        if !self.started {
            self.start(Some(p.linktype))?;
        }
        let caplen = u32::try_from(p.data.len()).map_err(|_| io::Error::other("frame too large"))?;
        let ts = u64::try_from(p.ts_ns).unwrap_or(0);
        match self.format {
            WriteFormat::Pcapng => {
                let id = match self.interfaces.iter().position(|&lt| lt == p.linktype) {
                    Some(i) => i as u32,
                    None => self.interface(p.linktype)?,
                };
                let pad = (4 - p.data.len() % 4) % 4;
                let len = 32 + caplen + pad as u32;
                let mut h = [0u8; 28];
                for (i, v) in [6, len, id, (ts >> 32) as u32, ts as u32, caplen, p.wire_len].into_iter().enumerate() {
                    if let Some(slot) = h.get_mut(i * 4..i * 4 + 4) {
                        slot.copy_from_slice(&v.to_le_bytes());
                    }
                }
                self.out.write_all(&h)?;
                self.out.write_all(p.data)?;
                self.out.write_all([0u8; 3].get(..pad).unwrap_or_default())?;
                self.out.write_all(&len.to_le_bytes())
            }
            WriteFormat::Pcap => {
                if self.interfaces.first() != Some(&p.linktype) {
                    return Err(io::Error::other(
                        "a pcap file holds one link type; write .pcapng for frames of several",
                    ));
                }
                let secs = u32::try_from(ts / 1_000_000_000).unwrap_or(u32::MAX);
                let nanos = (ts % 1_000_000_000) as u32;
                let mut h = [0u8; 16];
                for (i, v) in [secs, nanos, caplen, p.wire_len].into_iter().enumerate() {
                    if let Some(slot) = h.get_mut(i * 4..i * 4 + 4) {
                        slot.copy_from_slice(&v.to_le_bytes());
                    }
                }
                self.out.write_all(&h)?;
                self.out.write_all(p.data)
            }
        }
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::CaptureReader;
    use std::path::Path;

    /// Every packet of a shipped capture, written and read back: the same
    /// timestamps, lengths, bytes and link types.
    #[test]
    fn round_trip() -> crate::dissect::testkit::TestResult {
        for (name, format) in [("websocket.pcapng", WriteFormat::Pcapng), ("http-keepalive.pcap", WriteFormat::Pcap)] {
            for format in [format, WriteFormat::Pcapng] {
                let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures").join(name);
                let mut original = Vec::new();
                let mut r = CaptureReader::open(&path)?;
                r.for_each(|p, _| original.push((p.ts_ns, p.wire_len, p.data.to_vec(), p.linktype)))?;
                assert!(!original.is_empty());
                let mut w = CaptureWriter::new(Vec::new(), format);
                for (ts_ns, wire_len, data, linktype) in &original {
                    w.write(&Packet { ts_ns: *ts_ns, wire_len: *wire_len, data, linktype: *linktype })?;
                }
                let bytes = w.out;
                let mut back = Vec::new();
                let mut r = CaptureReader::from_read(Path::new("written"), Box::new(std::io::Cursor::new(bytes)))?;
                r.for_each(|p, _| back.push((p.ts_ns, p.wire_len, p.data.to_vec(), p.linktype)))?;
                assert_eq!(back, original, "{name} as {format:?}");
                assert_eq!(r.stats().skipped_blocks + r.stats().unknown_blocks, 0);
            }
        }
        Ok(())
    }

    #[test]
    fn pcap_refuses_a_second_linktype() -> crate::dissect::testkit::TestResult {
        let mut w = CaptureWriter::new(Vec::new(), WriteFormat::Pcap);
        w.write(&Packet { ts_ns: 1, wire_len: 1, data: &[0], linktype: 1 })?;
        assert!(w.write(&Packet { ts_ns: 2, wire_len: 1, data: &[0], linktype: 101 }).is_err());
        let mut w = CaptureWriter::new(Vec::new(), WriteFormat::Pcapng);
        w.write(&Packet { ts_ns: 1, wire_len: 1, data: &[0], linktype: 1 })?;
        w.write(&Packet { ts_ns: 2, wire_len: 1, data: &[0], linktype: 101 })?;
        assert_eq!(w.interfaces, vec![1, 101]);
        Ok(())
    }
}
