//! IP defragmentation with fixed limits: fragments are held only until
//! their datagram completes, is evicted for age, or the pool is full.

use super::{FragInfo, Frame, IpHdr, transport};
use foldhash::HashMap;
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

#[derive(Hash, PartialEq, Eq, Clone, Copy, Debug)]
struct Key {
    src: IpAddr,
    dst: IpAddr,
    id: u32,
    proto: u8,
}

struct Pending {
    first_ts_ns: i64,
    /// Captured fragment data by offset.
    parts: Vec<(u32, Vec<u8>)>,
    /// Wire byte ranges received, merged and sorted.
    covered: Vec<(u32, u32)>,
    /// Datagram payload length, once the last fragment is seen.
    total: Option<u32>,
    bytes: FragBytes,
}

impl Pending {
    /// Adds [start, end) to the coverage; returns how much of it was
    /// already covered.
    fn cover(&mut self, start: u32, end: u32) -> u32 {
        let mut seen = 0;
        for &(a, b) in &self.covered {
            let (lo, hi) = (a.max(start), b.min(end));
            if hi > lo {
                seen += hi - lo;
            }
        }
        self.covered.push((start, end));
        self.covered.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(self.covered.len());
        for &(a, b) in &self.covered {
            match merged.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        self.covered = merged;
        seen
    }

    fn complete(&self) -> bool {
        self.total.is_some_and(|t| self.covered.as_slice() == [(0, t)])
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

pub struct Defragmenter {
    pending: HashMap<Key, Pending>,
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
        let p = self.pending.entry(key).or_insert_with(|| Pending {
            first_ts_ns: ts_ns,
            parts: Vec::new(),
            covered: Vec::new(),
            total: None,
            bytes: FragBytes::default(),
        });
        let wire_data = h.total_len - h.hdr_len;
        let end = f.offset.saturating_add(wire_data);
        p.bytes.frames += 1;
        p.bytes.link += link_len as u64;
        p.bytes.network += h.hdr_len as u64;
        p.bytes.data += wire_data as u64;
        if end > self.max_datagram_bytes
            || p.total.is_some_and(|t| end > t)
            || (!f.more && p.covered.last().is_some_and(|c| c.1 > end))
        {
            // Larger than any datagram, or past its end: not one we can join.
            let p = self.pending.remove(&key)?;
            self.abandon(p.bytes);
            return None;
        }
        p.bytes.repeated += p.cover(f.offset, end) as u64;
        if !f.more {
            p.total = Some(end);
        }
        let captured = ip.get(h.hdr_len as usize..(h.total_len as usize).min(ip.len())).unwrap_or(&[]);
        p.parts.push((f.offset, captured.to_vec()));
        if !p.complete() {
            return None;
        }
        let p = self.pending.remove(&key)?;
        let total = p.total.unwrap_or(0) as usize;
        let mut data = vec![0u8; total];
        let mut parts = p.parts;
        parts.sort_by_key(|(off, _)| *off);
        let mut captured_upto = 0usize;
        for (off, part) in &parts {
            let off = *off as usize;
            let end = (off + part.len()).min(total);
            if let (Some(dst), Some(src)) = (data.get_mut(off..end), part.get(..end.saturating_sub(off))) {
                dst.copy_from_slice(src);
            }
            if off <= captured_upto {
                captured_upto = captured_upto.max(end);
            }
        }
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

    fn evict_oldest(&mut self) {
        if let Some(k) = self.pending.iter().min_by_key(|(_, p)| p.first_ts_ns).map(|(k, _)| *k)
            && let Some(p) = self.pending.remove(&k)
        {
            self.abandon(p.bytes);
        }
    }

    fn expire(&mut self, now: i64) {
        if self.pending.is_empty() {
            return;
        }
        let old: Vec<Key> = self
            .pending
            .iter()
            .filter(|(_, p)| now.saturating_sub(p.first_ts_ns) > self.timeout_ns)
            .map(|(k, _)| *k)
            .collect();
        for k in old {
            if let Some(p) = self.pending.remove(&k) {
                self.abandon(p.bytes);
            }
        }
    }

    /// End of input: whatever is pending is abandoned.
    pub fn finish(&mut self) {
        for (_, p) in std::mem::take(&mut self.pending) {
            self.abandon(p.bytes);
        }
    }
}
