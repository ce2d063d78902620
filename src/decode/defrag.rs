//! IP defragmentation with fixed limits: fragments are held only until
//! their datagram completes, is evicted for age, or the pool is full.

use super::{FragInfo, Frame, IpHdr, transport};
use foldhash::HashMap;
use std::collections::BTreeSet;
use std::net::IpAddr;

/// Bytes of wire overhead held with a pending datagram, so the ledger can
/// still book every fragment's own headers when it completes or is dropped.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FragBytes {
    pub frames: u32,
    pub link: u64,
    pub network: u64,
    /// Fragment data bytes on the wire (repeated ones included).
    pub data: u64,
    /// Of `data`, bytes that repeat what another fragment already carried.
    pub repeated: u64,
}

#[derive(Hash, PartialEq, Eq, PartialOrd, Ord, Clone, Copy, Debug)]
struct Key {
    src: IpAddr,
    dst: IpAddr,
    id: u32,
    proto: u8,
}

#[derive(Clone)]
struct Pending {
    first_ts_ns: i64,
    /// The datagram's payload as far as captured so far, in one buffer
    /// (bytes not captured yet are zero): at most its own size however its
    /// fragments come. Only bytes no earlier fragment had captured are
    /// written (a repeated byte's first capture is kept). A buffer per
    /// fragment cost ten times the data for thousands of tiny ones.
    data: Vec<u8>,
    /// Wire byte ranges received, merged and sorted.
    covered: Ranges,
    /// Captured byte ranges, merged and sorted.
    captured: Ranges,
    /// Datagram payload length, once the last fragment is seen.
    total: Option<u32>,
    bytes: FragBytes,
}

/// Disjoint, sorted, merged byte ranges [start, end). Added to in place,
/// by position: a hostile datagram of thousands of fragments that never
/// touch each other costs a search and a short move per fragment, not a
/// sort of them all.
#[derive(Clone, Default)]
struct Ranges(Vec<(u32, u32)>);

impl Ranges {
    /// The parts of [start, end) no range covers, in order.
    fn gaps(&self, start: u32, end: u32) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        let mut cur = start;
        let first = self.0.partition_point(|&(_, b)| b <= start);
        for &(a, b) in self.0.get(first..).unwrap_or(&[]) {
            if a >= end {
                break;
            }
            if a > cur {
                out.push((cur, a));
            }
            cur = cur.max(b);
        }
        if cur < end {
            out.push((cur, end));
        }
        out
    }

    /// Adds [start, end); returns how much of it was covered already.
    fn add(&mut self, start: u32, end: u32) -> u32 {
        if start >= end {
            return 0;
        }
        // The ranges that touch [start, end) are merged with it.
        let lo = self.0.partition_point(|&(_, b)| b < start);
        let hi = self.0.partition_point(|&(a, _)| a <= end);
        let touching = self.0.get(lo..hi).unwrap_or(&[]);
        let seen = touching.iter().map(|&(a, b)| b.min(end).saturating_sub(a.max(start))).sum();
        let merged = touching.iter().fold((start, end), |(s, e), &(a, b)| (s.min(a), e.max(b)));
        self.0.splice(lo..hi, [merged]);
        seen
    }

    /// End of the range that starts at 0 (0 if none does).
    fn end_of_first(&self) -> u32 {
        match self.0.first() {
            Some(&(0, b)) => b,
            _ => 0,
        }
    }
}

impl Pending {
    fn complete(&self) -> bool {
        self.total.is_some_and(|t| self.covered.0.as_slice() == [(0, t)])
    }
}

/// A reassembled datagram.
pub struct Joined {
    /// The datagram payload; bytes no fragment had captured are zero.
    pub data: Vec<u8>,
    /// How many bytes from the start were captured without a hole: the
    /// rest was on the wire but cut by snaplen.
    pub captured: usize,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub bytes: FragBytes,
}

impl Joined {
    /// The transport view of the joined datagram: its captured part, with
    /// the wire length of the whole. Lower-layer byte counts are zero: they
    /// are in `bytes`, spread over the fragments.
    pub fn frame(&self) -> Frame<'_> {
        let seen = self.data.get(..self.captured).unwrap_or(&[]);
        transport(self.src, self.dst, self.proto, seen, self.data.len() as u32, 0, 0)
    }

    /// Wire bytes of all its fragments.
    pub fn wire_len(&self) -> u32 {
        (self.bytes.link + self.bytes.network + self.bytes.data) as u32
    }
}

#[derive(Clone)]
pub struct Defragmenter {
    pending: HashMap<Key, Pending>,
    /// The pending datagrams by first fragment's time: the oldest is found
    /// without a walk over all of them for every fragment.
    by_age: BTreeSet<(i64, Key)>,
    max_datagrams: usize,
    max_datagram_bytes: u32,
    timeout_ns: i64,
    /// Fragments whose datagram was never completed, for the ledger.
    pub abandoned: FragBytes,
    pub abandoned_datagrams: u64,
    pub joined_datagrams: u64,
}

impl Default for Defragmenter {
    fn default() -> Self {
        Defragmenter::new(1024, 65_535 + 40, 30_000_000_000)
    }
}

impl Defragmenter {
    pub fn new(max_datagrams: usize, max_datagram_bytes: u32, timeout_ns: i64) -> Self {
        Defragmenter {
            pending: HashMap::default(),
            by_age: BTreeSet::new(),
            max_datagrams,
            max_datagram_bytes,
            timeout_ns,
            abandoned: FragBytes::default(),
            abandoned_datagrams: 0,
            joined_datagrams: 0,
        }
    }

    /// Takes one fragment (`ip` is the whole captured IP packet whose header
    /// is `h`). Returns the datagram when this fragment completes it.
    pub fn add(&mut self, ts_ns: i64, h: &IpHdr, f: FragInfo, ip: &[u8], link_len: u32) -> Option<Joined> {
        self.expire(ts_ns);
        let key = Key { src: h.src, dst: h.dst, id: f.id, proto: h.proto };
        if !self.pending.contains_key(&key) && self.pending.len() >= self.max_datagrams {
            self.evict_oldest();
        }
        // (Borrowed apart: the map's entry is taken while it is noted.)
        let by_age = &mut self.by_age;
        let p = self.pending.entry(key).or_insert_with(|| {
            by_age.insert((ts_ns, key));
            Pending {
                first_ts_ns: ts_ns,
                data: Vec::new(),
                covered: Ranges::default(),
                captured: Ranges::default(),
                total: None,
                bytes: FragBytes::default(),
            }
        });
        let wire_data = h.total_len - h.hdr_len;
        let end = f.offset.saturating_add(wire_data);
        p.bytes.frames += 1;
        p.bytes.link += link_len as u64;
        p.bytes.network += h.hdr_len as u64;
        p.bytes.data += wire_data as u64;
        if end > self.max_datagram_bytes
            || p.total.is_some_and(|t| end > t)
            || (!f.more && p.covered.0.last().is_some_and(|c| c.1 > end))
        {
            // Larger than any datagram, or past its end: not one we can join.
            let p = self.remove(&key)?;
            self.abandon(p.bytes);
            return None;
        }
        p.bytes.repeated += p.covered.add(f.offset, end) as u64;
        if !f.more {
            p.total = Some(end);
        }
        let captured = ip.get(h.hdr_len as usize..(h.total_len as usize).min(ip.len())).unwrap_or(&[]);
        let captured_end = f.offset.saturating_add(captured.len() as u32);
        for (a, b) in p.captured.gaps(f.offset, captured_end) {
            if let Some(fresh) = captured.get((a - f.offset) as usize..(b - f.offset) as usize) {
                // (`end` is at most `max_datagram_bytes`: so is the buffer.)
                if p.data.len() < b as usize {
                    p.data.resize(b as usize, 0);
                }
                if let Some(dst) = p.data.get_mut(a as usize..b as usize) {
                    dst.copy_from_slice(fresh);
                }
            }
        }
        p.captured.add(f.offset, captured_end);
        if !p.complete() {
            return None;
        }
        let p = self.remove(&key)?;
        let total = p.total.unwrap_or(0) as usize;
        let mut data = p.data;
        data.resize(total, 0);
        let captured_upto = (p.captured.end_of_first() as usize).min(total);
        self.joined_datagrams += 1;
        Some(Joined { data, captured: captured_upto, src: key.src, dst: key.dst, proto: key.proto, bytes: p.bytes })
    }

    fn abandon(&mut self, b: FragBytes) {
        self.abandoned.frames += b.frames;
        self.abandoned.link += b.link;
        self.abandoned.network += b.network;
        self.abandoned.data += b.data;
        self.abandoned_datagrams += 1;
    }

    /// Captured bytes held for pending datagrams.
    #[cfg(test)]
    pub fn held_bytes(&self) -> usize {
        self.pending.values().flat_map(|p| &p.captured.0).map(|&(a, b)| (b - a) as usize).sum()
    }

    fn remove(&mut self, key: &Key) -> Option<Pending> {
        let p = self.pending.remove(key)?;
        self.by_age.remove(&(p.first_ts_ns, *key));
        Some(p)
    }

    /// Abandons the oldest pending datagram (ties: the lowest key).
    fn evict_oldest(&mut self) {
        if let Some(&(_, k)) = self.by_age.first()
            && let Some(p) = self.remove(&k)
        {
            self.abandon(p.bytes);
        }
    }

    fn expire(&mut self, now: i64) {
        while let Some(&(first, k)) = self.by_age.first()
            && now.saturating_sub(first) > self.timeout_ns
        {
            match self.remove(&k) {
                Some(p) => self.abandon(p.bytes),
                None => {
                    self.by_age.pop_first();
                }
            }
        }
    }

    /// End of input: whatever is pending is abandoned.
    pub fn finish(&mut self) {
        self.by_age.clear();
        for (_, p) in std::mem::take(&mut self.pending) {
            self.abandon(p.bytes);
        }
    }
}
