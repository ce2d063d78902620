//! HPACK (RFC 7541): decoding header blocks, table-driven.
//!
//! The HTTP/2 dissector needs the pseudo-headers of each block and must keep
//! the dynamic table in step. General decoders rebuild their Huffman tables
//! per string; this one builds a canonical-code index once.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::OnceLock;

/// Why a header block could not be decoded; the dynamic table is then out
/// of step and later blocks cannot be trusted either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// A field ran past the end of the block.
    Truncated,
    /// An integer longer than any real header needs.
    Integer,
    /// A table index that names no entry.
    Index,
    /// A Huffman string with bad padding or the EOS symbol inside.
    Huffman,
    /// A table size update above what was allowed.
    SizeUpdate,
}

/// A decoder for one direction of a connection.
#[derive(Clone, Debug)]
pub struct Decoder {
    /// Newest first.
    dynamic: VecDeque<(Vec<u8>, Vec<u8>)>,
    size: usize,
    max_size: usize,
    /// Most the peer may set the table to (memory bound).
    limit: usize,
}

/// Entry overhead counted in the table size (RFC 7541 4.1).
const ENTRY_OVERHEAD: usize = 32;
/// Longest header string accepted: memory stays bounded.
const MAX_STRING: usize = 64 * 1024;

impl Decoder {
    /// A decoder whose table starts at the protocol's 4096 bytes and may
    /// grow to `limit`.
    pub fn new(limit: usize) -> Decoder {
        Decoder { dynamic: VecDeque::new(), size: 0, max_size: 4096.min(limit), limit }
    }

    /// Decodes a whole header block, calling `field(name, value)` for each
    /// header in order.
    pub fn decode(&mut self, block: &[u8], mut field: impl FnMut(&[u8], &[u8])) -> Result<(), Error> {
        let mut at = 0;
        while let Some(&b) = block.get(at) {
            if b & 0x80 != 0 {
                let (index, n) = integer(block.get(at..).unwrap_or(&[]), 7)?;
                at += n;
                let (name, value) = self.entry(index)?;
                field(name, value);
            } else if b & 0xe0 == 0x20 {
                let (size, n) = integer(block.get(at..).unwrap_or(&[]), 5)?;
                at += n;
                if size > self.limit {
                    return Err(Error::SizeUpdate);
                }
                self.max_size = size;
                self.evict(0);
            } else {
                // Literal: with incremental indexing (01), without (0000) or never indexed (0001).
                let (prefix, index_it) = if b & 0xc0 == 0x40 { (6, true) } else { (4, false) };
                let (index, n) = integer(block.get(at..).unwrap_or(&[]), prefix)?;
                at += n;
                // A name from the table is copied only to be indexed again.
                let name = if index == 0 {
                    let (s, n) = string(block.get(at..).unwrap_or(&[]))?;
                    at += n;
                    Cow::Owned(s)
                } else {
                    Cow::Borrowed(self.entry(index)?.0)
                };
                let (value, n) = string(block.get(at..).unwrap_or(&[]))?;
                at += n;
                field(&name, &value);
                if index_it {
                    let name = name.into_owned();
                    self.insert(name, value);
                }
            }
        }
        Ok(())
    }

    fn entry(&self, index: usize) -> Result<(&[u8], &[u8]), Error> {
        match index {
            0 => Err(Error::Index),
            i if i <= STATIC_TABLE.len() => STATIC_TABLE.get(i - 1).map(|&(n, v)| (n, v)).ok_or(Error::Index),
            i => self
                .dynamic
                .get(i - STATIC_TABLE.len() - 1)
                .map(|(n, v)| (n.as_slice(), v.as_slice()))
                .ok_or(Error::Index),
        }
    }

    fn insert(&mut self, name: Vec<u8>, value: Vec<u8>) {
        let size = name.len() + value.len() + ENTRY_OVERHEAD;
        if size > self.max_size {
            // An entry larger than the table empties it (RFC 7541 4.4).
            self.dynamic.clear();
            self.size = 0;
            return;
        }
        self.evict(size);
        self.size += size;
        self.dynamic.push_front((name, value));
    }

    /// Evicts oldest entries until `incoming` more bytes fit.
    fn evict(&mut self, incoming: usize) {
        while self.size + incoming > self.max_size {
            let Some((n, v)) = self.dynamic.pop_back() else { break };
            self.size = self.size.saturating_sub(n.len() + v.len() + ENTRY_OVERHEAD);
        }
    }
}

/// An integer with an `n`-bit prefix (RFC 7541 5.1): (value, bytes used).
fn integer(b: &[u8], n: u32) -> Result<(usize, usize), Error> {
    let mask = (1usize << n) - 1;
    let first = *b.first().ok_or(Error::Truncated)? as usize & mask;
    if first < mask {
        return Ok((first, 1));
    }
    let mut value = mask;
    for (i, &byte) in b.iter().enumerate().skip(1) {
        let shift = 7 * (i - 1);
        if shift > 21 {
            return Err(Error::Integer);
        }
        value += ((byte & 0x7f) as usize) << shift;
        if byte & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    Err(Error::Truncated)
}

/// A string literal (RFC 7541 5.2): (bytes, bytes used).
fn string(b: &[u8]) -> Result<(Vec<u8>, usize), Error> {
    let huffman = b.first().ok_or(Error::Truncated)? & 0x80 != 0;
    let (len, n) = integer(b, 7)?;
    if len > MAX_STRING {
        return Err(Error::Integer);
    }
    let raw = b.get(n..n + len).ok_or(Error::Truncated)?;
    let s = if huffman { huffman_decode(raw)? } else { raw.to_vec() };
    Ok((s, n + len))
}

/// Canonical-code index of the HPACK Huffman code: codes of one length are
/// consecutive, so a code of length `l` is symbol
/// `sorted[first_index[l] + code - first_code[l]]` when below `count[l]`.
struct Canonical {
    first_code: [u32; 31],
    first_index: [u16; 31],
    count: [u16; 31],
    sorted: Vec<u16>,
}

// Built once from the constant code table, whose lengths are all below 31.
#[allow(clippy::indexing_slicing)]
fn canonical() -> &'static Canonical {
    static C: OnceLock<Canonical> = OnceLock::new();
    C.get_or_init(|| {
        let mut order: Vec<u16> = (0..HUFFMAN.len() as u16).collect();
        order.sort_by_key(|&s| {
            let (code, len) = HUFFMAN[s as usize];
            (len, code)
        });
        let mut c =
            Canonical { first_code: [u32::MAX; 31], first_index: [0; 31], count: [0; 31], sorted: order.clone() };
        for (i, &s) in order.iter().enumerate() {
            let (code, len) = HUFFMAN[s as usize];
            let l = len as usize;
            if c.count[l] == 0 {
                c.first_code[l] = code;
                c.first_index[l] = i as u16;
            }
            c.count[l] += 1;
        }
        c
    })
}

const EOS: u16 = 256;

fn huffman_decode(b: &[u8]) -> Result<Vec<u8>, Error> {
    let c = canonical();
    let mut out = Vec::with_capacity(b.len() * 8 / 5);
    let (mut code, mut len) = (0u32, 0usize);
    for &byte in b {
        for bit in (0..8).rev() {
            code = (code << 1) | ((byte >> bit) & 1) as u32;
            len += 1;
            if len > 30 {
                return Err(Error::Huffman);
            }
            let (Some(&first), Some(&count), Some(&index)) =
                (c.first_code.get(len), c.count.get(len), c.first_index.get(len))
            else {
                return Err(Error::Huffman);
            };
            if count > 0 && code >= first && code - first < count as u32 {
                let Some(&sym) = c.sorted.get(index as usize + (code - first) as usize) else {
                    return Err(Error::Huffman);
                };
                if sym == EOS {
                    return Err(Error::Huffman);
                }
                out.push(sym as u8);
                code = 0;
                len = 0;
            }
        }
    }
    // Padding: fewer than 8 bits, all ones (the EOS prefix).
    if len > 7 || code != (1u32 << len) - 1 {
        return Err(Error::Huffman);
    }
    Ok(out)
}

/// RFC 7541 Appendix A.
static STATIC_TABLE: &[(&[u8], &[u8])] = &[
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
];

/// RFC 7541 Appendix B: (code, length in bits) of symbols 0..=256 (EOS).
static HUFFMAN: &[(u32, u8)] = &[
    (0x1ff8, 13),
    (0x7fffd8, 23),
    (0xfffffe2, 28),
    (0xfffffe3, 28),
    (0xfffffe4, 28),
    (0xfffffe5, 28),
    (0xfffffe6, 28),
    (0xfffffe7, 28),
    (0xfffffe8, 28),
    (0xffffea, 24),
    (0x3ffffffc, 30),
    (0xfffffe9, 28),
    (0xfffffea, 28),
    (0x3ffffffd, 30),
    (0xfffffeb, 28),
    (0xfffffec, 28),
    (0xfffffed, 28),
    (0xfffffee, 28),
    (0xfffffef, 28),
    (0xffffff0, 28),
    (0xffffff1, 28),
    (0xffffff2, 28),
    (0x3ffffffe, 30),
    (0xffffff3, 28),
    (0xffffff4, 28),
    (0xffffff5, 28),
    (0xffffff6, 28),
    (0xffffff7, 28),
    (0xffffff8, 28),
    (0xffffff9, 28),
    (0xffffffa, 28),
    (0xffffffb, 28),
    (0x14, 6),
    (0x3f8, 10),
    (0x3f9, 10),
    (0xffa, 12),
    (0x1ff9, 13),
    (0x15, 6),
    (0xf8, 8),
    (0x7fa, 11),
    (0x3fa, 10),
    (0x3fb, 10),
    (0xf9, 8),
    (0x7fb, 11),
    (0xfa, 8),
    (0x16, 6),
    (0x17, 6),
    (0x18, 6),
    (0x0, 5),
    (0x1, 5),
    (0x2, 5),
    (0x19, 6),
    (0x1a, 6),
    (0x1b, 6),
    (0x1c, 6),
    (0x1d, 6),
    (0x1e, 6),
    (0x1f, 6),
    (0x5c, 7),
    (0xfb, 8),
    (0x7ffc, 15),
    (0x20, 6),
    (0xffb, 12),
    (0x3fc, 10),
    (0x1ffa, 13),
    (0x21, 6),
    (0x5d, 7),
    (0x5e, 7),
    (0x5f, 7),
    (0x60, 7),
    (0x61, 7),
    (0x62, 7),
    (0x63, 7),
    (0x64, 7),
    (0x65, 7),
    (0x66, 7),
    (0x67, 7),
    (0x68, 7),
    (0x69, 7),
    (0x6a, 7),
    (0x6b, 7),
    (0x6c, 7),
    (0x6d, 7),
    (0x6e, 7),
    (0x6f, 7),
    (0x70, 7),
    (0x71, 7),
    (0x72, 7),
    (0xfc, 8),
    (0x73, 7),
    (0xfd, 8),
    (0x1ffb, 13),
    (0x7fff0, 19),
    (0x1ffc, 13),
    (0x3ffc, 14),
    (0x22, 6),
    (0x7ffd, 15),
    (0x3, 5),
    (0x23, 6),
    (0x4, 5),
    (0x24, 6),
    (0x5, 5),
    (0x25, 6),
    (0x26, 6),
    (0x27, 6),
    (0x6, 5),
    (0x74, 7),
    (0x75, 7),
    (0x28, 6),
    (0x29, 6),
    (0x2a, 6),
    (0x7, 5),
    (0x2b, 6),
    (0x76, 7),
    (0x2c, 6),
    (0x8, 5),
    (0x9, 5),
    (0x2d, 6),
    (0x77, 7),
    (0x78, 7),
    (0x79, 7),
    (0x7a, 7),
    (0x7b, 7),
    (0x7ffe, 15),
    (0x7fc, 11),
    (0x3ffd, 14),
    (0x1ffd, 13),
    (0xffffffc, 28),
    (0xfffe6, 20),
    (0x3fffd2, 22),
    (0xfffe7, 20),
    (0xfffe8, 20),
    (0x3fffd3, 22),
    (0x3fffd4, 22),
    (0x3fffd5, 22),
    (0x7fffd9, 23),
    (0x3fffd6, 22),
    (0x7fffda, 23),
    (0x7fffdb, 23),
    (0x7fffdc, 23),
    (0x7fffdd, 23),
    (0x7fffde, 23),
    (0xffffeb, 24),
    (0x7fffdf, 23),
    (0xffffec, 24),
    (0xffffed, 24),
    (0x3fffd7, 22),
    (0x7fffe0, 23),
    (0xffffee, 24),
    (0x7fffe1, 23),
    (0x7fffe2, 23),
    (0x7fffe3, 23),
    (0x7fffe4, 23),
    (0x1fffdc, 21),
    (0x3fffd8, 22),
    (0x7fffe5, 23),
    (0x3fffd9, 22),
    (0x7fffe6, 23),
    (0x7fffe7, 23),
    (0xffffef, 24),
    (0x3fffda, 22),
    (0x1fffdd, 21),
    (0xfffe9, 20),
    (0x3fffdb, 22),
    (0x3fffdc, 22),
    (0x7fffe8, 23),
    (0x7fffe9, 23),
    (0x1fffde, 21),
    (0x7fffea, 23),
    (0x3fffdd, 22),
    (0x3fffde, 22),
    (0xfffff0, 24),
    (0x1fffdf, 21),
    (0x3fffdf, 22),
    (0x7fffeb, 23),
    (0x7fffec, 23),
    (0x1fffe0, 21),
    (0x1fffe1, 21),
    (0x3fffe0, 22),
    (0x1fffe2, 21),
    (0x7fffed, 23),
    (0x3fffe1, 22),
    (0x7fffee, 23),
    (0x7fffef, 23),
    (0xfffea, 20),
    (0x3fffe2, 22),
    (0x3fffe3, 22),
    (0x3fffe4, 22),
    (0x7ffff0, 23),
    (0x3fffe5, 22),
    (0x3fffe6, 22),
    (0x7ffff1, 23),
    (0x3ffffe0, 26),
    (0x3ffffe1, 26),
    (0xfffeb, 20),
    (0x7fff1, 19),
    (0x3fffe7, 22),
    (0x7ffff2, 23),
    (0x3fffe8, 22),
    (0x1ffffec, 25),
    (0x3ffffe2, 26),
    (0x3ffffe3, 26),
    (0x3ffffe4, 26),
    (0x7ffffde, 27),
    (0x7ffffdf, 27),
    (0x3ffffe5, 26),
    (0xfffff1, 24),
    (0x1ffffed, 25),
    (0x7fff2, 19),
    (0x1fffe3, 21),
    (0x3ffffe6, 26),
    (0x7ffffe0, 27),
    (0x7ffffe1, 27),
    (0x3ffffe7, 26),
    (0x7ffffe2, 27),
    (0xfffff2, 24),
    (0x1fffe4, 21),
    (0x1fffe5, 21),
    (0x3ffffe8, 26),
    (0x3ffffe9, 26),
    (0xffffffd, 28),
    (0x7ffffe3, 27),
    (0x7ffffe4, 27),
    (0x7ffffe5, 27),
    (0xfffec, 20),
    (0xfffff3, 24),
    (0xfffed, 20),
    (0x1fffe6, 21),
    (0x3fffe9, 22),
    (0x1fffe7, 21),
    (0x1fffe8, 21),
    (0x7ffff3, 23),
    (0x3fffea, 22),
    (0x3fffeb, 22),
    (0x1ffffee, 25),
    (0x1ffffef, 25),
    (0xfffff4, 24),
    (0xfffff5, 24),
    (0x3ffffea, 26),
    (0x7ffff4, 23),
    (0x3ffffeb, 26),
    (0x7ffffe6, 27),
    (0x3ffffec, 26),
    (0x3ffffed, 26),
    (0x7ffffe7, 27),
    (0x7ffffe8, 27),
    (0x7ffffe9, 27),
    (0x7ffffea, 27),
    (0x7ffffeb, 27),
    (0xffffffe, 28),
    (0x7ffffec, 27),
    (0x7ffffed, 27),
    (0x7ffffee, 27),
    (0x7ffffef, 27),
    (0x7fffff0, 27),
    (0x3ffffee, 26),
    (0x3fffffff, 30),
];

#[cfg(test)]
mod tests;
