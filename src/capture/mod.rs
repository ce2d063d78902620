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
    legacy_snaplen: u32,
    interfaces: Vec<Interface>,
    stats: ReadStats,
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
            Err(e) => return Err(err(format!("unreadable file header: {e:?}"))),
        };
        Ok(CaptureReader {
            path: path.to_path_buf(),
            inner,
            st: State::default(),
            offset: 0,
            done: false,
        })
    }

    pub fn stats(&self) -> &ReadStats {
        &self.st.stats
    }

    fn fail(&mut self, what: String) -> ReadError {
        self.done = true;
        ReadError { input: self.path.clone(), record: self.st.stats.records + 1, offset: self.offset, what }
    }

    /// Calls `f` on each packet (with the byte offset reached in the file)
    /// until the end of the file. Returns the error that stopped reading
    /// early, if any; every packet before it has been delivered.
    pub fn for_each(&mut self, mut f: impl FnMut(&Packet, u64)) -> Result<(), ReadError> {
        while !self.done {
            match self.inner.next() {
                Ok((size, block)) => {
                    let bad = match self.st.packet_of(block) {
                        Ok(Some(p)) => {
                            f(&p, self.offset);
                            None
                        }
                        Ok(None) => None,
                        Err(what) => Some(what),
                    };
                    if let Some(what) = bad {
                        return Err(self.fail(what));
                    }
                    self.inner.consume(size);
                    self.offset += size as u64;
                    self.st.stats.bytes_read = self.offset;
                }
                Err(PcapError::Eof) => self.done = true,
                Err(PcapError::Incomplete(_)) => {
                    if self.inner.refill().is_err() {
                        return Err(self.fail("read error".into()));
                    }
                }
                Err(PcapError::UnexpectedEof) => {
                    return Err(self.fail("file ends in the middle of a record (truncated capture)".into()));
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
                self.legacy_snaplen = h.snaplen;
                Ok(None)
            }
            PcapBlockOwned::Legacy(b) => {
                self.stats.records += 1;
                if b.caplen > MAX_RECORD.max(self.legacy_snaplen) || b.origlen > MAX_RECORD {
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
                    Block::SectionHeader(_) => {
                        // A new section starts a new interface numbering.
                        self.interfaces.clear();
                        Ok(None)
                    }
                    Block::InterfaceDescription(idb) => {
                        let ts_per_sec = idb.ts_resolution().unwrap_or(1_000_000).max(1);
                        self.interfaces.push(Interface { linktype: idb.linktype.0 as u16, ts_per_sec, ts_offset_s: idb.ts_offset() });
                        self.stats.interfaces += 1;
                        Ok(None)
                    }
                    Block::EnhancedPacket(epb) => {
                        let Some(ifc) = self.interfaces.get(epb.if_id as usize) else {
                            return Err(format!("packet names interface {} that was never described", epb.if_id));
                        };
                        let ticks = ((epb.ts_high as u64) << 32) | epb.ts_low as u64;
                        let ts_ns = ticks_to_ns(ticks, ifc.ts_per_sec) + ifc.ts_offset_s.saturating_mul(1_000_000_000);
                        let data = epb.data.get(..epb.caplen as usize).unwrap_or(epb.data);
                        self.stats.packets += 1;
                        Ok(Some(Packet { ts_ns, wire_len: epb.orig_len().max(data.len() as u32), data, linktype: ifc.linktype }))
                    }
                    Block::SimplePacket(spb) => {
                        let Some(ifc) = self.interfaces.first() else {
                            return Err("simple packet block before any interface description".into());
                        };
                        let data = spb.data.get(..spb.origlen as usize).unwrap_or(spb.data);
                        self.stats.packets += 1;
                        // SPBs carry no timestamp.
                        Ok(Some(Packet { ts_ns: 0, wire_len: spb.origlen.max(data.len() as u32), data, linktype: ifc.linktype }))
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
    (secs as i64).saturating_mul(1_000_000_000).saturating_add(frac)
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
