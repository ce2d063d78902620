//! Capture sources: pcap and pcapng files, read as a stream of `Packet`s.
//! Readers know nothing of the packets' contents.

use pcap_parser::pcapng::Block;
use pcap_parser::traits::{PcapNGPacketBlock, PcapReaderIterator};
use pcap_parser::{PcapBlockOwned, PcapError, create_reader};
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// One captured frame.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    /// Capture time, nanoseconds since the Unix epoch.
    pub ts_ns: i64,
    /// The frame's length on the wire.
    pub wire_len: u32,
    /// The bytes captured (at most `wire_len`; fewer when snaplen cut it).
    pub data: &'a [u8],
    /// Link type (LINKTYPE_* number) of the interface it came from.
    pub linktype: u16,
}

/// Why reading stopped early, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadError {
    pub input: PathBuf,
    /// 1-based number of the record that could not be read.
    pub record: u64,
    /// Byte offset of that record in the file.
    pub offset: u64,
    pub what: String,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: record {} at byte offset {}: {}", self.input.display(), self.record, self.offset, self.what)
    }
}

/// Counts a reader keeps about what it skipped.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ReadStats {
    pub records: u64,
    pub packets: u64,
    /// pcapng blocks that carry no packet and were skipped (name, statistics, unknown...).
    pub skipped_blocks: u64,
    pub unknown_blocks: u64,
    pub interfaces: u32,
    pub format: &'static str,
    pub bytes_read: u64,
}

/// Largest record accepted: a bigger length field is corruption, not a frame.
const MAX_RECORD: u32 = 256 * 1024;
const BUFFER: usize = 1 << 20;

struct Interface {
    linktype: u16,
    /// Ticks per second of this interface's timestamps.
    ts_per_sec: u64,
    ts_offset_s: i64,
    /// Most bytes captured per packet (0: no limit).
    snaplen: u32,
}

/// `if_tsresol`: ticks per second (10^n, or 2^n with the high bit set);
/// None for a value no u64 can hold. pcap-parser 0.17 rejects every
/// power-of-two resolution, so it is decoded here.
fn ts_per_sec(raw: u8) -> Option<u64> {
    let exp = (raw & 0x7f) as u32;
    if raw & 0x80 != 0 { 1u64.checked_shl(exp).filter(|_| exp <= 63) } else { 10u64.checked_pow(exp) }
}

/// `if_tsoffset` (option 14) in the section's byte order; pcap-parser 0.17
/// always reads it little-endian.
fn ts_offset_s(idb: &pcap_parser::pcapng::InterfaceDescriptionBlock, big_endian: bool) -> i64 {
    idb.options
        .iter()
        .find(|o| o.code.0 == 14)
        .and_then(|o| o.value().get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()))
        .map(|b| if big_endian { i64::from_be_bytes(b) } else { i64::from_le_bytes(b) })
        .unwrap_or(0)
}

/// Streams packets out of a pcap or pcapng file.
pub struct CaptureReader {
    path: PathBuf,
    inner: Box<dyn PcapReaderIterator + Send>,
    st: State,
    offset: u64,
    done: bool,
}

/// What the reader learnt from the headers so far.
#[derive(Default)]
struct State {
    legacy_linktype: u16,
    legacy_ns: bool,
    legacy_be: bool,
    legacy_snaplen: u32,
    /// Byte order of the current pcapng section.
    section_be: bool,
    interfaces: Vec<Interface>,
    stats: ReadStats,
}

impl State {
    /// Largest record length that can be a frame.
    fn max_record(&self) -> u32 {
        MAX_RECORD.max(self.legacy_snaplen)
    }
}

impl CaptureReader {
    pub fn open(path: &Path) -> Result<CaptureReader, ReadError> {
        let err = |what: String| ReadError { input: path.to_path_buf(), record: 0, offset: 0, what };
        let file = File::open(path).map_err(|e| err(format!("cannot open: {e}")))?;
        Self::from_read(path, Box::new(file))
    }

    pub fn from_read(path: &Path, rd: Box<dyn Read + Send>) -> Result<CaptureReader, ReadError> {
        let err = |what: String| ReadError { input: path.to_path_buf(), record: 0, offset: 0, what };
        let inner = match create_reader(BUFFER, rd) {
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
        Ok(CaptureReader { path: path.to_path_buf(), inner, st: State::default(), offset: 0, done: false })
    }

    pub fn stats(&self) -> &ReadStats {
        &self.st.stats
    }

    /// Stops reading at the record after the last one read.
    fn fail(&mut self, what: String) -> ReadError {
        let record = self.st.stats.records + 1;
        self.fail_at(record, what)
    }

    fn fail_at(&mut self, record: u64, what: String) -> ReadError {
        self.done = true;
        ReadError { input: self.path.clone(), record, offset: self.offset, what }
    }

    /// A legacy record header whose length no frame can have, in the bytes
    /// not parsed yet: said at once, rather than as a truncated file.
    fn corrupt_legacy_length(&self) -> Option<String> {
        if self.st.stats.format != "pcap" {
            return None;
        }
        let h = self.inner.data().get(8..12)?;
        let b: [u8; 4] = h.try_into().ok()?;
        let caplen = if self.st.legacy_be { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) };
        (caplen > self.st.max_record())
            .then(|| format!("record length {caplen} is not a frame length (corrupted length field)"))
    }

    /// Calls `f` on each packet (with the byte offset reached in the file)
    /// until the end of the file. Returns the error that stopped reading
    /// early, if any; every packet before it has been delivered.
    pub fn for_each(&mut self, mut f: impl FnMut(&Packet, u64)) -> Result<(), ReadError> {
        while !self.done {
            match self.inner.next() {
                Ok((size, block)) => {
                    let record = self.st.stats.records + 1;
                    let bad = match self.st.packet_of(block) {
                        Ok(Some(p)) => {
                            f(&p, self.offset);
                            None
                        }
                        Ok(None) => None,
                        Err(what) => Some(what),
                    };
                    if let Some(what) = bad {
                        return Err(self.fail_at(record, what));
                    }
                    self.inner.consume(size);
                    self.offset += size as u64;
                    self.st.stats.bytes_read = self.offset;
                }
                Err(PcapError::Eof) => self.done = true,
                Err(PcapError::Incomplete(_)) => {
                    if let Some(what) = self.corrupt_legacy_length() {
                        return Err(self.fail(what));
                    }
                    if self.inner.refill().is_err() {
                        return Err(self.fail("read error".into()));
                    }
                }
                Err(PcapError::UnexpectedEof) => {
                    let what = self
                        .corrupt_legacy_length()
                        .unwrap_or_else(|| "file ends in the middle of a record (truncated capture)".into());
                    return Err(self.fail(what));
                }
                Err(PcapError::BufferTooSmall) => {
                    return Err(self.fail("record length larger than any real frame (corrupted length field)".into()));
                }
                Err(e) => {
                    let what = format!("corrupted record: {}", describe(&e));
                    return Err(self.fail(what));
                }
            }
        }
        Ok(())
    }
}

impl State {
    fn packet_of<'a>(&mut self, block: PcapBlockOwned<'a>) -> Result<Option<Packet<'a>>, String> {
        match block {
            PcapBlockOwned::LegacyHeader(h) => {
                self.stats.format = "pcap";
                self.legacy_linktype = h.network.0 as u16;
                self.legacy_ns = h.is_nanosecond_precision();
                self.legacy_be = h.is_bigendian();
                self.legacy_snaplen = h.snaplen;
                Ok(None)
            }
            PcapBlockOwned::Legacy(b) => {
                self.stats.records += 1;
                if b.caplen > self.max_record() || b.origlen > MAX_RECORD {
                    return Err(format!("record length {} is not a frame length (corrupted)", b.caplen));
                }
                let frac = if self.legacy_ns { b.ts_usec as i64 } else { b.ts_usec as i64 * 1000 };
                let data = b.data.get(..b.caplen as usize).unwrap_or(b.data);
                self.stats.packets += 1;
                Ok(Some(Packet {
                    ts_ns: b.ts_sec as i64 * 1_000_000_000 + frac,
                    wire_len: b.origlen.max(data.len() as u32),
                    data,
                    linktype: self.legacy_linktype,
                }))
            }
            PcapBlockOwned::NG(block) => {
                self.stats.records += 1;
                self.stats.format = "pcapng";
                match block {
                    Block::SectionHeader(shb) => {
                        // A new section starts a new interface numbering.
                        self.interfaces.clear();
                        self.section_be = shb.big_endian();
                        Ok(None)
                    }
                    Block::InterfaceDescription(idb) => {
                        let ts_per_sec = ts_per_sec(idb.if_tsresol).unwrap_or(1_000_000).max(1);
                        let ts_offset_s = ts_offset_s(&idb, self.section_be);
                        self.interfaces.push(Interface {
                            linktype: idb.linktype.0 as u16,
                            ts_per_sec,
                            ts_offset_s,
                            snaplen: idb.snaplen,
                        });
                        self.stats.interfaces += 1;
                        Ok(None)
                    }
                    Block::EnhancedPacket(epb) => {
                        let Some(ifc) = self.interfaces.get(epb.if_id as usize) else {
                            return Err(format!("packet names interface {} that was never described", epb.if_id));
                        };
                        let ticks = ((epb.ts_high as u64) << 32) | epb.ts_low as u64;
                        let ts_ns = ticks_to_ns(ticks, ifc.ts_per_sec)
                            .saturating_add(ifc.ts_offset_s.saturating_mul(1_000_000_000));
                        let data = epb.data.get(..epb.caplen as usize).unwrap_or(epb.data);
                        self.stats.packets += 1;
                        Ok(Some(Packet {
                            ts_ns,
                            wire_len: epb.orig_len().max(data.len() as u32),
                            data,
                            linktype: ifc.linktype,
                        }))
                    }
                    Block::SimplePacket(spb) => {
                        let Some(ifc) = self.interfaces.first() else {
                            return Err("simple packet block before any interface description".into());
                        };
                        // An SPB holds min(origlen, snaplen) bytes, then padding.
                        let cap = if ifc.snaplen == 0 { spb.origlen } else { spb.origlen.min(ifc.snaplen) };
                        let data = spb.data.get(..cap as usize).unwrap_or(spb.data);
                        self.stats.packets += 1;
                        // SPBs carry no timestamp.
                        Ok(Some(Packet {
                            ts_ns: 0,
                            wire_len: spb.origlen.max(data.len() as u32),
                            data,
                            linktype: ifc.linktype,
                        }))
                    }
                    Block::Unknown(_) => {
                        self.stats.unknown_blocks += 1;
                        Ok(None)
                    }
                    _ => {
                        self.stats.skipped_blocks += 1;
                        Ok(None)
                    }
                }
            }
        }
    }
}

fn ticks_to_ns(ticks: u64, per_sec: u64) -> i64 {
    let secs = ticks / per_sec;
    let rem = ticks % per_sec;
    let frac = (rem as u128 * 1_000_000_000u128 / per_sec as u128) as i64;
    i64::try_from(secs).unwrap_or(i64::MAX).saturating_mul(1_000_000_000).saturating_add(frac)
}

fn describe<I>(e: &PcapError<I>) -> String {
    match e {
        PcapError::NomError(_, k) => format!("{k:?}"),
        PcapError::OwnedNomError(_, k) => format!("{k:?}"),
        PcapError::HeaderNotRecognized => "block header not recognized".into(),
        PcapError::ReadError => "read error".into(),
        _ => "malformed".into(),
    }
}

#[cfg(test)]
mod tests;
