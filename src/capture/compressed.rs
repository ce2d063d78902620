//! Compressed captures (`.pcap.gz`, `.pcapng.zst`: what `tcpdump -z gzip`
//! and log rotation leave behind), recognised by their first bytes, never
//! by their name, and decompressed as they are read.

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// How an input is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// The name reports and errors use (empty for none).
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }

    /// Recognises a compressed stream by its magic number.
    pub fn of(head: &[u8]) -> Compression {
        const GZIP: [u8; 2] = [0x1f, 0x8b];
        const ZSTD: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
        if head.starts_with(&GZIP) {
            Compression::Gzip
        } else if head.starts_with(&ZSTD) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// Bytes read from a compressed input before decompression, shared with
/// the reader that counts them (the reader is owned by the decoder).
#[derive(Clone, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

struct Counted<R> {
    inner: R,
    count: Counter,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.0.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Most bytes needed to recognise a compression.
const MAGIC_LEN: usize = 4;

/// `rd` decompressed if its first bytes say it is compressed (then with a
/// counter of the compressed bytes read), else as it is.
pub fn open(mut rd: Box<dyn Read + Send>) -> io::Result<(Box<dyn Read + Send>, Compression, Option<Counter>)> {
    // A pipe may deliver fewer bytes than asked: read until the magic is
    // whole or the input ends.
    let mut head = [0u8; MAGIC_LEN];
    let mut got = 0;
    while let Some(space) = head.get_mut(got..).filter(|s| !s.is_empty()) {
        match rd.read(space) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let head = head.get(..got).unwrap_or_default().to_vec();
    let compression = Compression::of(&head);
    let whole = io::Cursor::new(head).chain(rd);
    if compression == Compression::None {
        return Ok((Box::new(whole), compression, None));
    }
    let count = Counter::default();
    let counted = io::BufReader::with_capacity(64 << 10, Counted { inner: whole, count: count.clone() });
    let decoded: Box<dyn Read + Send> = match compression {
        // Multi-member: concatenated gzip files (`cat a.gz b.gz`) are one stream.
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(counted)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(counted)?),
        Compression::None => Box::new(counted),
    };
    Ok((decoded, compression, Some(count)))
}
