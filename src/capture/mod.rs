//! Capture sources: pcap and pcapng captures from files or byte streams
//! (standard input, compressed files), read as a stream of `Record`s by the
//! pull-style `Source` trait. Readers know nothing of the packets' contents.

// Parsers of hostile input: an index that can panic is an error (clippy
// runs with -D warnings); use .get() and friends.
#![warn(clippy::indexing_slicing)]

use pcap_parser::PcapError;
use pcap_parser::nom::{self, Needed};
use pcap_parser::pcap::{
    LegacyPcapBlock, PcapHeader, parse_pcap_frame, parse_pcap_frame_be, parse_pcap_frame_modified, parse_pcap_header,
};
use pcap_parser::pcapng::{Block, SecretsType, parse_block_be, parse_block_le, parse_sectionheaderblock};
use pcap_parser::traits::PcapNGPacketBlock;
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

mod compressed;
pub mod inputs;
#[cfg(feature = "live")]
pub mod live;
pub mod write;
pub use compressed::Compression;

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

/// What a source yields: a frame, or secrets the capture carries for the
/// frames after it (pcapng Decryption Secrets Blocks).
#[derive(Debug, Clone, Copy)]
pub enum Record<'a> {
    Packet(Packet<'a>),
    /// The secrets as the block holds them (for `TlsKeyLog`: NSS key log text).
    Secrets {
        kind: SecretsKind,
        data: &'a [u8],
    },
}

/// The kind of a Decryption Secrets Block's secrets (its `secrets_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretsKind {
    /// 0x544c534b "TLSK": NSS key log text, what `editcap --inject-secrets tls,FILE` writes.
    TlsKeyLog,
    /// Any other type (WireGuard, SSH, ...), by number: wiretax has no use for it.
    Other(u32),
}

/// A capture read record by record, pulled by its consumer: `next` hands out
/// the next record (borrowed from the source's buffer until the next call),
/// reading more bytes when it needs them.
pub trait Source {
    /// The next record; `Ok(None)` at the end of the input. After an error
    /// the source is done: every record before it has been handed out.
    fn next(&mut self) -> Result<Option<Record<'_>>, ReadError>;
    fn stats(&self) -> &ReadStats;
    /// The input's name as the report shows it (a path, or `stdin`).
    fn name(&self) -> &str;
    /// Bytes of the input read so far, and its size when known (a regular
    /// file's size; for a compressed file both are compressed bytes).
    fn position(&self) -> (u64, Option<u64>);
}

/// The name a source reads standard input under, and the path that stands for it.
pub const STDIN_NAME: &str = "stdin";
pub const STDIN_PATH: &str = "-";

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

impl std::error::Error for ReadError {}

impl ReadError {
    /// What went wrong, without the input's name (for a report that names it).
    pub fn cause(&self) -> String {
        if self.record == 0 {
            self.what.clone()
        } else {
            format!("record {} at byte offset {}: {}", self.record, self.offset, self.what)
        }
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: record {} at byte offset {}: {}", self.input.display(), self.record, self.offset, self.what)
    }
}

/// Counts a reader keeps about what it skipped.
#[derive(Debug, Default, Clone, serde::Serialize)]
#[serde(default)]
pub struct ReadStats {
    pub records: u64,
    pub packets: u64,
    /// pcapng blocks that carry no packet and were skipped (name, statistics, unknown...).
    pub skipped_blocks: u64,
    pub unknown_blocks: u64,
    pub interfaces: u32,
    pub format: &'static str,
    pub bytes_read: u64,
    /// Decryption Secrets Blocks handed out as `Record::Secrets`.
    pub secrets_blocks: u64,
    /// How the input was compressed (`gzip`, `zstd`; empty: not compressed).
    pub compression: &'static str,
    /// Records skipped as corrupted, reading on after them: their framing
    /// held (a pcapng block's length, a pcap record's captured length) but
    /// what they say of their frame cannot be (an original length past
    /// `MAX_WIRE_LEN`, a captured length past the block).
    pub skipped_records: u64,
    /// What was wrong with the first `SKIPPED_NOTES` of them, each with its
    /// record and byte offset.
    pub skipped_notes: Vec<String>,
}

/// Skipped records whose reason is kept (the rest are counted).
pub const SKIPPED_NOTES: usize = 8;

/// Largest record accepted: a bigger length field is corruption, not a frame.
const MAX_RECORD: u32 = 256 * 1024;
/// Largest original (on the wire) length of a frame, in both formats: Linux
/// BIG TCP and GSO hand captures segments of up to 512 KiB, headers on top;
/// twice that is still more than any captured length the reader can hold
/// (its buffer is `BUFFER`, 1 MiB), whatever the file's snaplen says. A
/// record past it is corrupted, and skipped: booked as it stands, one
/// record could put 4 GiB on the wire.
pub const MAX_WIRE_LEN: u32 = 1 << 20;
/// Bytes read ahead of the parser (see `ReadBuf`).
const BUFFER: usize = 1 << 20;

/// Bytes read at a time once reading is under way: the records are parsed
/// while they are still in the nearest cache (reading a whole `BUFFER` at
/// once cost 3 to 5% more time on one core; the buffer still holds the
/// largest record).
const READ_AHEAD: usize = 64 << 10;

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

/// Streams records out of a pcap or pcapng capture: a file, standard input
/// or any byte stream, gzip- or zstd-compressed or not.
pub struct CaptureReader {
    path: PathBuf,
    name: String,
    buf: ReadBuf,
    format: Format,
    /// The legacy file header, until the first record is read.
    legacy_header: Option<PcapHeader>,
    st: State,
    /// Offset in the (decompressed) capture of the next record.
    offset: u64,
    /// Size of the record handed out last, taken in at the next call.
    pending: usize,
    /// Bytes of the compressed input read so far (compressed inputs only).
    raw_read: Option<compressed::Counter>,
    /// Size of the input file, when it is one.
    size: Option<u64>,
    done: bool,
}

/// Where the record found by `CaptureReader::step` lies in the bytes not
/// parsed yet: the record is taken apart once, then lent out from the
/// buffer (a found record owns nothing, so the buffer can be refilled
/// while looking for one).
#[derive(Debug, Clone, Copy)]
enum Found {
    Packet { ts_ns: i64, wire_len: u32, linktype: u16, at: usize, len: usize },
    Secrets { kind: SecretsKind, at: usize, len: usize },
}

impl Found {
    /// Packet `p`, whose bytes lie in `data` (the bytes read).
    #[inline]
    fn packet(data: &[u8], p: &Packet) -> Found {
        let (at, len) = locate(data, p.data);
        Found::Packet { ts_ns: p.ts_ns, wire_len: p.wire_len, linktype: p.linktype, at, len }
    }
}

/// The legacy record at the start of `data` when all of it is there: what
/// pcap-parser's `parse_pcap_frame` (or its big-endian or "modified" form)
/// would give.
#[inline(always)]
fn whole_legacy_record(data: &[u8], layout: Layout) -> Option<(&[u8], LegacyPcapBlock<'_>)> {
    let (header, be) = match layout {
        Layout::Le => (16usize, false),
        Layout::Be => (16, true),
        Layout::Modified => (24, false),
    };
    let [s0, s1, s2, s3, u0, u1, u2, u3, c0, c1, c2, c3, o0, o1, o2, o3] = *data.first_chunk::<16>()?;
    let word = |b: [u8; 4]| if be { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) };
    let caplen = word([c0, c1, c2, c3]);
    let size = header.saturating_add(caplen as usize);
    let (block, after) = (data.get(header..size)?, data.get(size..)?);
    let rec = LegacyPcapBlock {
        ts_sec: word([s0, s1, s2, s3]),
        ts_usec: word([u0, u1, u2, u3]),
        caplen,
        origlen: word([o0, o1, o2, o3]),
        data: block,
    };
    Some((after, rec))
}

/// Where `part` lies in `base` (a subslice of it), as (start, length).
#[inline]
fn locate(base: &[u8], part: &[u8]) -> (usize, usize) {
    ((part.as_ptr() as usize).wrapping_sub(base.as_ptr() as usize), part.len())
}

#[derive(Debug, Clone, Copy)]
enum Format {
    /// Legacy pcap, with the layout of its record headers.
    Legacy(Layout),
    /// pcapng; the byte order of each section is in `State::section_be`.
    Ng,
}

#[derive(Debug, Clone, Copy)]
enum Layout {
    Le,
    Be,
    /// The "modified" pcap format (magic a1b2cd34): 24-byte record headers.
    Modified,
}

/// The bytes read and not parsed yet, `mem[start..end]`. Records are parsed
/// in place; only an incomplete last record is moved to the front before the
/// next read, so each byte is copied once (by the read), not twice.
///
/// The size is that of pcap-parser's streaming reader, which this replaces,
/// because error messages depend on it: a record that needs the whole
/// buffer is "larger than any real frame". Past the file header, reads are
/// `READ_AHEAD` bytes; where they end changes nothing that is said (the
/// tests read in pieces of every size against pcap-parser's reader).
struct ReadBuf {
    src: Box<dyn Read + Send>,
    /// Always BUFFER bytes long.
    mem: Vec<u8>,
    start: usize,
    end: usize,
    /// A read returned no bytes: the input has ended.
    exhausted: bool,
}

/// Why no record could be parsed from the bytes read, in the terms of
/// pcap-parser's reader (whose outcomes the messages were written for).
#[derive(Debug, PartialEq, Eq)]
enum Stall {
    /// The input ended between records.
    Eof,
    /// More bytes are needed: read on.
    Incomplete,
    /// The input ended inside a record.
    UnexpectedEof,
    /// The record needs more than the whole buffer.
    BufferTooSmall,
    /// The parser refused the bytes: why.
    Corrupt(String),
}

impl ReadBuf {
    fn new(src: Box<dyn Read + Send>) -> ReadBuf {
        ReadBuf { src, mem: vec![0; BUFFER], start: 0, end: 0, exhausted: false }
    }

    #[inline]
    fn data(&self) -> &[u8] {
        self.mem.get(self.start..self.end).unwrap_or_default()
    }

    /// Marks `n` bytes as parsed.
    #[inline]
    fn consume(&mut self, n: usize) {
        self.start = self.start.saturating_add(n).min(self.end);
    }

    /// One read into the free space after the data.
    fn read_more(&mut self) -> std::io::Result<usize> {
        self.read_up_to(BUFFER)
    }

    /// One read of at most `max` bytes into the free space after the data.
    fn read_up_to(&mut self, max: usize) -> std::io::Result<usize> {
        let space = self.mem.get_mut(self.end..).unwrap_or_default();
        let space = match space.get_mut(..max) {
            Some(s) => s,
            None => space,
        };
        let n = self.src.read(space)?.min(space.len());
        self.end += n;
        Ok(n)
    }

    /// Moves the unparsed bytes to the front and reads after them (nothing
    /// when they fill the buffer).
    fn refill(&mut self) -> std::io::Result<()> {
        if self.start > 0 {
            self.mem.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.mem.len() {
            return Ok(());
        }
        self.exhausted = self.read_up_to(READ_AHEAD)? == 0;
        Ok(())
    }

    /// What pcap-parser's reader would have said of a failed parse of the
    /// last `available` bytes read.
    fn stall(&self, available: usize, e: nom::Err<PcapError<&[u8]>>) -> Stall {
        if available == 0 && self.exhausted {
            return Stall::Eof;
        }
        match e {
            nom::Err::Error(e) | nom::Err::Failure(e) => match e {
                PcapError::Eof => Stall::Eof,
                PcapError::Incomplete(_) => Stall::Incomplete,
                PcapError::UnexpectedEof => Stall::UnexpectedEof,
                PcapError::BufferTooSmall => Stall::BufferTooSmall,
                e => Stall::Corrupt(describe(&e)),
            },
            nom::Err::Incomplete(_) if self.exhausted => Stall::UnexpectedEof,
            nom::Err::Incomplete(Needed::Size(n)) if available.saturating_add(n.get()) >= BUFFER => {
                Stall::BufferTooSmall
            }
            // (A full buffer could never be completed by reading on.)
            nom::Err::Incomplete(Needed::Unknown) if available >= BUFFER => Stall::BufferTooSmall,
            nom::Err::Incomplete(_) => Stall::Incomplete,
        }
    }
}

/// Why no capture was recognised: what the parser said of the first bytes,
/// or the read that failed, as the reader said it (a decompressor's words).
type Unrecognised = Result<PcapError<&'static [u8]>, std::io::Error>;

/// Recognises the file as pcap-parser's `create_reader` does: one read to
/// see the format, more while a pipe has not yet delivered the whole file
/// header.
fn detect(buf: &mut ReadBuf) -> Result<(Format, Option<PcapHeader>), Unrecognised> {
    if buf.read_more().map_err(Err)? == 0 {
        return Err(Ok(PcapError::Eof));
    }
    // No read beyond the header: on a pipe the next read waits for the
    // writer, and the packets already read would wait with it.
    while header_incomplete(buf.data()) {
        if buf.read_more().map_err(Err)? == 0 {
            break;
        }
    }
    if parse_sectionheaderblock(buf.data()).is_ok() {
        // The section header is read again as the first block.
        return Ok((Format::Ng, None));
    }
    let header = match parse_pcap_header(buf.data()) {
        Ok((_, h)) => h,
        Err(nom::Err::Incomplete(_)) => return Err(Ok(PcapError::Incomplete(0))),
        Err(_) => return Err(Ok(PcapError::HeaderNotRecognized)),
    };
    let layout = if header.is_modified_format() {
        Layout::Modified
    } else if header.is_bigendian() {
        Layout::Be
    } else {
        Layout::Le
    };
    Ok((Format::Legacy(layout), Some(header)))
}

/// The bytes begin a file header that is not whole yet: a pcapng section
/// header block, or fewer bytes than a pcap file header.
fn header_incomplete(data: &[u8]) -> bool {
    const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];
    const PCAP_HEADER: usize = 24;
    if data.starts_with(&PCAPNG_MAGIC) {
        matches!(parse_sectionheaderblock(data), Err(nom::Err::Incomplete(_)))
    } else {
        data.len() < PCAP_HEADER
    }
}

/// What the reader learnt from the headers so far.
#[derive(Default)]
struct State {
    legacy_linktype: u16,
    /// Nanoseconds per tick of the record timestamps' fraction (1 or 1000).
    legacy_ns_per_tick: i64,
    legacy_be: bool,
    /// Largest record length that can be a frame: MAX_RECORD, or the
    /// snaplen if larger (set with the header).
    legacy_max_record: u32,
    /// Byte order of the current pcapng section.
    section_be: bool,
    interfaces: Vec<Interface>,
    /// The last enhanced packet block's time: a simple packet block has
    /// none, and is taken to come right after it.
    ng_last_ts_ns: i64,
    stats: ReadStats,
}

impl CaptureReader {
    /// Opens a capture file, or standard input for `-`.
    pub fn open(path: &Path) -> Result<CaptureReader, ReadError> {
        if path.as_os_str() == STDIN_PATH {
            return Self::from_read(Path::new(STDIN_NAME), Box::new(std::io::stdin()));
        }
        let err = |what: String| ReadError { input: path.to_path_buf(), record: 0, offset: 0, what };
        let file = File::open(path).map_err(|e| err(format!("cannot open: {e}")))?;
        let meta = file.metadata().map_err(|e| err(format!("cannot open: {e}")))?;
        if meta.is_dir() {
            return Err(err("is a directory".into()));
        }
        let mut r = Self::from_read(path, Box::new(file))?;
        r.size = meta.is_file().then_some(meta.len());
        Ok(r)
    }

    /// Reads a capture from a byte stream, compressed (recognised by its
    /// first bytes) or not; `path` names it in errors and reports.
    pub fn from_read(path: &Path, rd: Box<dyn Read + Send>) -> Result<CaptureReader, ReadError> {
        let err = |what: String| ReadError { input: path.to_path_buf(), record: 0, offset: 0, what };
        let (rd, compression, raw_read) =
            compressed::open(rd).map_err(|e| err(format!("cannot read the compressed capture: {e}")))?;
        let mut buf = ReadBuf::new(rd);
        let (format, legacy_header) = match detect(&mut buf) {
            Ok(r) => r,
            Err(Ok(PcapError::Eof)) => return Err(err("empty file".into())),
            Err(Ok(PcapError::HeaderNotRecognized)) => {
                return Err(err("not a pcap or pcapng capture (unknown file header)".into()));
            }
            Err(Ok(PcapError::Incomplete(_) | PcapError::UnexpectedEof)) => {
                return Err(err("file too short to hold a capture file header".into()));
            }
            Err(Err(e)) => return Err(err(read_failure(compression.name(), &e))),
            Err(Ok(e)) => return Err(err(format!("unreadable file header: {e:?}"))),
        };
        let mut st = State::default();
        st.stats.compression = compression.name();
        Ok(CaptureReader {
            path: path.to_path_buf(),
            name: path.display().to_string(),
            buf,
            format,
            legacy_header,
            st,
            offset: 0,
            pending: 0,
            raw_read,
            size: None,
            done: false,
        })
    }

    pub fn stats(&self) -> &ReadStats {
        &self.st.stats
    }

    /// `pcap` or `pcapng`, known from the file header (before any record is read).
    pub fn format_name(&self) -> &'static str {
        match self.format {
            Format::Ng => "pcapng",
            Format::Legacy(_) => "pcap",
        }
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

    /// Moves past a record of `size` bytes.
    #[inline]
    fn advance(&mut self, size: usize) {
        self.buf.consume(size);
        self.offset += size as u64;
        self.st.stats.bytes_read = self.offset;
    }

    /// A legacy record header whose length no frame can have, in the bytes
    /// not parsed yet: said at once, rather than as a truncated file.
    fn corrupt_legacy_length(&self) -> Option<String> {
        if self.st.stats.format != "pcap" {
            return None;
        }
        let h = self.buf.data().get(8..12)?;
        let b: [u8; 4] = h.try_into().ok()?;
        let caplen = if self.st.legacy_be { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) };
        (caplen > self.st.legacy_max_record)
            .then(|| format!("record length {caplen} is not a frame length (corrupted length field)"))
    }

    /// Reads on after a failed parse, or says why reading stops.
    fn recover(&mut self, stall: Stall) -> Result<(), ReadError> {
        match stall {
            Stall::Eof => {
                self.done = true;
                Ok(())
            }
            Stall::Incomplete => {
                if let Some(what) = self.corrupt_legacy_length() {
                    return Err(self.fail(what));
                }
                if let Err(e) = self.buf.refill() {
                    let what = read_failure(self.st.stats.compression, &e);
                    return Err(self.fail(what));
                }
                Ok(())
            }
            Stall::UnexpectedEof => {
                let what = self
                    .corrupt_legacy_length()
                    .unwrap_or_else(|| "file ends in the middle of a record (truncated capture)".into());
                Err(self.fail(what))
            }
            Stall::BufferTooSmall => {
                Err(self.fail("record length larger than any real frame (corrupted length field)".into()))
            }
            Stall::Corrupt(why) => Err(self.fail(format!("corrupted record: {why}"))),
        }
    }

    /// Calls `f` on each packet (with its byte offset in the capture) until
    /// the end of the input; secrets are passed over. Returns the error that
    /// stopped reading early, if any; every packet before it has been
    /// delivered.
    pub fn for_each(&mut self, mut f: impl FnMut(&Packet, u64)) -> Result<(), ReadError> {
        while let Some(found) = self.step()? {
            if let Record::Packet(p) = self.lend(found) {
                f(&p, self.offset);
            }
        }
        Ok(())
    }

    /// Finds the next record, taking in the one handed out before.
    #[inline(always)]
    fn step(&mut self) -> Result<Option<Found>, ReadError> {
        if self.pending > 0 {
            let n = std::mem::take(&mut self.pending);
            self.advance(n);
        }
        if self.done {
            return Ok(None);
        }
        match self.format {
            Format::Legacy(layout) => {
                if let Some(h) = self.legacy_header.take() {
                    self.st.legacy_header(&h);
                    self.advance(h.size());
                }
                if let Some(found) = self.legacy_quick(layout) {
                    return Ok(Some(found));
                }
                // One copy of the loop per record layout, so the layout is
                // not asked again while the loop looks for a whole record.
                match layout {
                    Layout::Le => self.legacy_step(parse_pcap_frame),
                    Layout::Be => self.legacy_step(parse_pcap_frame_be),
                    Layout::Modified => self.legacy_step(parse_pcap_frame_modified),
                }
            }
            Format::Ng => self.ng_step(),
        }
    }

    /// The record `found` describes, lent from the buffer.
    #[inline]
    fn lend(&self, found: Found) -> Record<'_> {
        let data = self.buf.data();
        match found {
            Found::Packet { ts_ns, wire_len, linktype, at, len } => Record::Packet(Packet {
                ts_ns,
                wire_len,
                data: data.get(at..at.saturating_add(len)).unwrap_or_default(),
                linktype,
            }),
            Found::Secrets { kind, at, len } => {
                Record::Secrets { kind, data: data.get(at..at.saturating_add(len)).unwrap_or_default() }
            }
        }
    }

    /// The next legacy record when it lies whole in the bytes read and its
    /// lengths are a frame's, as `legacy_step` would find it: nearly every
    /// record, without the loop and the results that the other cases need
    /// (about 55 instructions a packet less). Anything else is left to
    /// `legacy_step`.
    #[inline(always)]
    fn legacy_quick(&mut self, layout: Layout) -> Option<Found> {
        let data = self.buf.data();
        let (after, rec) = whole_legacy_record(data, layout)?;
        if !self.st.legacy_fits(&rec) {
            return None;
        }
        let p = self.st.legacy_frame(&rec);
        self.pending = data.len() - after.len();
        Some(Found::packet(data, &p))
    }

    /// The next record of a legacy file, parsed with `parse`.
    #[inline(always)]
    fn legacy_step(
        &mut self,
        parse: impl Fn(&[u8]) -> nom::IResult<&[u8], LegacyPcapBlock<'_>, PcapError<&[u8]>>,
    ) -> Result<Option<Found>, ReadError> {
        while !self.done {
            let data = self.buf.data();
            match parse(data) {
                Ok((after, rec)) => {
                    let record = self.st.stats.records + 1;
                    let size = data.len() - after.len();
                    match self.st.legacy_packet(&rec) {
                        Ok(p) => {
                            self.pending = size;
                            return Ok(Some(Found::packet(data, &p)));
                        }
                        Err(Bad::Skip(what)) => {
                            self.skip(record, what);
                            self.advance(size);
                        }
                        Err(Bad::Fatal(what)) => return Err(self.fail_at(record, what)),
                    }
                }
                Err(e) => {
                    let stall = self.buf.stall(data.len(), e);
                    self.recover(stall)?;
                }
            }
        }
        Ok(None)
    }

    /// The length field of the next pcapng block when it is below 12 bytes
    /// (type and both length fields): pcap-parser 0.17 computes `length -
    /// 12` for some block types (process information, whose own minimum it
    /// takes as 4), an overflow. A section header is left to the parser: its
    /// byte order may be another section's.
    fn short_ng_block(&self) -> Option<u32> {
        let data = self.buf.data();
        let (ty, len) = (data.first_chunk::<4>()?, data.get(4..8)?.first_chunk::<4>()?);
        if *ty == [0x0a, 0x0d, 0x0d, 0x0a] {
            return None;
        }
        let len = if self.st.section_be { u32::from_be_bytes(*len) } else { u32::from_le_bytes(*len) };
        (len < 12).then_some(len)
    }

    /// The type and length of the next pcapng block when the whole of it is
    /// in the bytes read and both its length fields agree: its framing is
    /// intact, so a block after it can be read whatever it holds. Not a
    /// section header (its byte order is the next section's).
    fn whole_ng_block(&self) -> Option<(u32, u32)> {
        let (ty, len) = (self.ng_word(0)?, self.ng_word(4)?);
        if ty == 0x0a0d_0d0a || len < 12 {
            return None;
        }
        (self.ng_word((len as usize).checked_sub(4)?)? == len).then_some((ty, len))
    }

    /// The 32-bit word `at` bytes into the bytes read, in the section's
    /// byte order.
    fn ng_word(&self, at: usize) -> Option<u32> {
        let b = self.buf.data().get(at..)?.first_chunk::<4>()?;
        Some(if self.st.section_be { u32::from_be_bytes(*b) } else { u32::from_le_bytes(*b) })
    }

    /// Why the whole pcapng block at the front (of type `ty`, `len` bytes)
    /// does not parse, in words: which block, which length. `why` is the
    /// parser's.
    fn unparsable_ng_block(&self, ty: u32, len: u32, why: String) -> String {
        const EPB: u32 = 6;
        const EPB_FIXED: u32 = 32;
        const SPB: u32 = 3;
        const SPB_FIXED: u32 = 16;
        let skipped = "block skipped";
        match ty {
            EPB if len < EPB_FIXED => format!(
                "enhanced packet block of {len} bytes is shorter than the {EPB_FIXED} bytes of its fixed fields; {skipped}"
            ),
            EPB => match self.ng_word(20) {
                Some(caplen) if u64::from(caplen).next_multiple_of(4) > u64::from(len - EPB_FIXED) => format!(
                    "enhanced packet block of {len} bytes cannot hold its captured length {caplen} (room for {}); {skipped}",
                    len - EPB_FIXED
                ),
                _ => format!("enhanced packet block of {len} bytes: its options do not parse ({why}); {skipped}"),
            },
            SPB if len < SPB_FIXED => format!(
                "simple packet block of {len} bytes is shorter than the {SPB_FIXED} bytes of its fixed fields; {skipped}"
            ),
            _ => format!("block of type {ty:#x} and {len} bytes does not parse ({why}); {skipped}"),
        }
    }

    /// Counts a record skipped as corrupted (number `record`, at the
    /// current offset), keeping why for the first few.
    fn skip(&mut self, record: u64, what: String) {
        let stats = &mut self.st.stats;
        stats.skipped_records += 1;
        if stats.skipped_notes.len() < SKIPPED_NOTES {
            stats.skipped_notes.push(format!("record {record} at byte offset {}: {what}", self.offset));
        }
    }

    /// The next packet or secrets block of a pcapng file; the blocks before
    /// it (headers, interfaces, statistics...) are taken in on the way.
    fn ng_step(&mut self) -> Result<Option<Found>, ReadError> {
        while !self.done {
            if let Some(len) = self.short_ng_block() {
                return Err(self.fail(format!("corrupted record: block length {len} is below the 12-byte minimum")));
            }
            let data = self.buf.data();
            let parsed = if self.st.section_be { parse_block_be(data) } else { parse_block_le(data) };
            match parsed {
                Ok((rest, block)) => {
                    let size = data.len() - rest.len();
                    let record = self.st.stats.records + 1;
                    match self.st.ng_block(block) {
                        Ok(Some(r)) => {
                            self.pending = size;
                            return Ok(Some(match r {
                                Record::Packet(p) => Found::packet(data, &p),
                                Record::Secrets { kind, data: s } => {
                                    let (at, len) = locate(data, s);
                                    Found::Secrets { kind, at, len }
                                }
                            }));
                        }
                        Ok(None) => {}
                        Err(Bad::Skip(what)) => self.skip(record, what),
                        Err(Bad::Fatal(what)) => return Err(self.fail_at(record, what)),
                    }
                    self.advance(size);
                }
                Err(e) => {
                    let why = match &e {
                        nom::Err::Error(e) | nom::Err::Failure(e) => describe(e),
                        nom::Err::Incomplete(_) => "its contents run past its length".into(),
                    };
                    // A block whose own length frames it but whose contents
                    // do not parse: skipped, reading on after it.
                    if let Some((ty, len)) = self.whole_ng_block() {
                        let what = self.unparsable_ng_block(ty, len, why);
                        self.st.stats.records += 1;
                        self.skip(self.st.stats.records, what);
                        self.advance(len as usize);
                        continue;
                    }
                    let stall = self.buf.stall(data.len(), e);
                    self.recover(stall)?;
                }
            }
        }
        Ok(None)
    }
}

impl Source for CaptureReader {
    #[inline]
    fn next(&mut self) -> Result<Option<Record<'_>>, ReadError> {
        match self.step()? {
            Some(found) => Ok(Some(self.lend(found))),
            None => Ok(None),
        }
    }

    fn stats(&self) -> &ReadStats {
        &self.st.stats
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn position(&self) -> (u64, Option<u64>) {
        match &self.raw_read {
            Some(c) => (c.get(), self.size),
            None => (self.offset, self.size),
        }
    }
}

impl State {
    fn legacy_header(&mut self, h: &PcapHeader) {
        self.stats.format = "pcap";
        self.legacy_linktype = h.network.0 as u16;
        self.legacy_ns_per_tick = if h.is_nanosecond_precision() { 1 } else { 1000 };
        self.legacy_be = h.is_bigendian();
        self.legacy_max_record = MAX_RECORD.max(h.snaplen);
    }

    #[inline]
    fn legacy_packet<'a>(&mut self, b: &LegacyPcapBlock<'a>) -> Result<Packet<'a>, Bad> {
        if self.legacy_fits(b) {
            return Ok(self.legacy_frame(b));
        }
        // Said as when the record is cut by the end of the bytes read, so
        // where it lies in the file does not change what is said.
        if b.caplen > self.legacy_max_record {
            return Err(Bad::Fatal(format!(
                "record length {} is not a frame length (corrupted length field)",
                b.caplen
            )));
        }
        // The captured length framed the record: the next one is where it says.
        self.stats.records += 1;
        Err(Bad::Skip(format!("{}; record skipped", wire_len_past_bound("pcap record", b.origlen))))
    }

    /// Whether a legacy record's lengths are a frame's (`legacy_packet`
    /// says why not).
    #[inline]
    fn legacy_fits(&self, b: &LegacyPcapBlock) -> bool {
        b.caplen <= self.legacy_max_record && b.origlen <= MAX_WIRE_LEN
    }

    /// A legacy record whose lengths are a frame's, counted: its packet.
    #[inline]
    fn legacy_frame<'a>(&mut self, b: &LegacyPcapBlock<'a>) -> Packet<'a> {
        self.stats.records += 1;
        self.stats.packets += 1;
        // The parser took exactly `caplen` bytes.
        let data = b.data;
        Packet {
            ts_ns: b.ts_sec as i64 * 1_000_000_000 + b.ts_usec as i64 * self.legacy_ns_per_tick,
            wire_len: b.origlen.max(data.len() as u32),
            data,
            linktype: self.legacy_linktype,
        }
    }

    fn ng_block<'a>(&mut self, block: Block<'a>) -> Result<Option<Record<'a>>, Bad> {
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
                    return Err(Bad::Fatal(format!("packet names interface {} that was never described", epb.if_id)));
                };
                if epb.origlen > MAX_WIRE_LEN {
                    return Err(Bad::Skip(format!(
                        "{}; block skipped",
                        wire_len_past_bound("enhanced packet block", epb.origlen)
                    )));
                }
                let ticks = ((epb.ts_high as u64) << 32) | epb.ts_low as u64;
                let ts_ns =
                    ticks_to_ns(ticks, ifc.ts_per_sec).saturating_add(ifc.ts_offset_s.saturating_mul(1_000_000_000));
                let data = epb.data.get(..epb.caplen as usize).unwrap_or(epb.data);
                self.stats.packets += 1;
                self.ng_last_ts_ns = ts_ns;
                Ok(Some(Record::Packet(Packet {
                    ts_ns,
                    wire_len: epb.orig_len().max(data.len() as u32),
                    data,
                    linktype: ifc.linktype,
                })))
            }
            Block::SimplePacket(spb) => {
                let Some(ifc) = self.interfaces.first() else {
                    return Err(Bad::Fatal("simple packet block before any interface description".into()));
                };
                if spb.origlen > MAX_WIRE_LEN {
                    return Err(Bad::Skip(format!(
                        "{}; block skipped",
                        wire_len_past_bound("simple packet block", spb.origlen)
                    )));
                }
                // An SPB holds min(origlen, snaplen) bytes, then padding.
                let cap = if ifc.snaplen == 0 { spb.origlen } else { spb.origlen.min(ifc.snaplen) };
                let data = spb.data.get(..cap as usize).unwrap_or(spb.data);
                self.stats.packets += 1;
                // SPBs carry no timestamp (tshark shows none): placed at
                // the last packet's time, not in 1970, so that they stretch
                // no flow, timeline or span (capinfos leaves them out).
                Ok(Some(Record::Packet(Packet {
                    ts_ns: self.ng_last_ts_ns,
                    wire_len: spb.origlen.max(data.len() as u32),
                    data,
                    linktype: ifc.linktype,
                })))
            }
            Block::DecryptionSecrets(dsb) => {
                self.stats.secrets_blocks += 1;
                let kind = match dsb.secrets_type {
                    SecretsType::TlsKeyLog => SecretsKind::TlsKeyLog,
                    SecretsType(other) => SecretsKind::Other(other),
                };
                // The data is padded to 32 bits; the secrets are its first `secrets_len` bytes.
                let data = dsb.data.get(..dsb.secrets_len as usize).unwrap_or(dsb.data);
                Ok(Some(Record::Secrets { kind, data }))
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

/// Why a read failed, in the words of what failed: the decompressor's for
/// a compressed input (`compression`: its name, or empty), as a stream cut
/// short or a damaged one.
fn read_failure(compression: &str, e: &std::io::Error) -> String {
    match compression {
        "" => format!("read error: {e}"),
        c if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            format!("the {c} stream ends early (truncated file?): {e}")
        }
        c => format!("the {c} stream cannot be decompressed: {e}"),
    }
}

/// What is wrong with a record: reading cannot go on past it, or its
/// framing held and the next record is where it says.
#[derive(Debug)]
enum Bad {
    Fatal(String),
    Skip(String),
}

/// A record whose original length is past `MAX_WIRE_LEN`.
fn wire_len_past_bound(what: &str, orig_len: u32) -> String {
    format!("{what}'s original length {orig_len} is past the {MAX_WIRE_LEN}-byte bound on a frame (corrupted)")
}

fn ticks_to_ns(ticks: u64, per_sec: u64) -> i64 {
    let secs = ticks / per_sec;
    let rem = ticks % per_sec;
    let frac = (rem as u128 * 1_000_000_000u128 / per_sec as u128) as i64;
    i64::try_from(secs).unwrap_or(i64::MAX).saturating_mul(1_000_000_000).saturating_add(frac)
}

fn describe<I>(e: &PcapError<I>) -> String {
    match e {
        PcapError::NomError(_, k) | PcapError::OwnedNomError(_, k) => match k {
            // What pcap-parser checks with `Verify`: a block's two length
            // fields, its magic, a length below the block's minimum.
            nom::error::ErrorKind::Verify => "a length or type field does not check out".into(),
            nom::error::ErrorKind::Eof => "its contents run past its length".into(),
            k => format!("the parser stopped at {k:?}"),
        },
        PcapError::HeaderNotRecognized => "block header not recognized".into(),
        PcapError::ReadError => "read error".into(),
        _ => "malformed".into(),
    }
}

#[cfg(test)]
mod tests;
