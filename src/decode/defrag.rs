//! IP defragmentation with fixed limits: fragments are held only until
//! their datagram completes, is evicted for age, or the pool is full.

use super::{FragInfo, Frame, IpHdr, transport};
use std::collections::HashMap;
use std::net::IpAddr;

/// Bytes of wire overhead held with a pending datagram, so the ledger can
/// still book every fragment's own headers when it completes or is dropped.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FragBytes {
    pub frames: u32,
    pub link: u64,
    pub network: u64,
    /// Fragment payload bytes on the wire.
    pub data: u64,
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
    /// Wire bytes of data held (captured or not).
    wire_data: u32,
    /// Datagram payload length, once the last fragment is seen.
    total: Option<u32>,
    bytes: FragBytes,
}

/// A reassembled datagram, its transport sliced from the joined payload.
pub struct Joined {
    pub data: Vec<u8>,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub bytes: FragBytes,
    /// True when every fragment was captured in full.
    pub complete_capture: bool,
}

impl Joined {
    /// The transport view of the joined datagram; the lower-layer byte
    /// counts in it are the last fragment's and must be replaced by `bytes`.
    pub fn frame(&self) -> Frame<'_> {
        transport(self.src, self.dst, self.proto, &self.data, self.data.len() as u32, 0, 0)
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
            pending: HashMap::new(),
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
            wire_data: 0,
            total: None,
            bytes: FragBytes::default(),
        });
        let wire_data = h.total_len - h.hdr_len;
        p.bytes.frames += 1;
        p.bytes.link += link_len as u64;
        p.bytes.network += h.hdr_len as u64;
        p.bytes.data += wire_data as u64;
        p.wire_data = p.wire_data.saturating_add(wire_data);
        if !f.more {
            p.total = Some(f.offset + wire_data);
        }
        let captured = ip.get(h.hdr_len as usize..(h.total_len as usize).min(ip.len())).unwrap_or(&[]);
        let too_big = f.offset.saturating_add(wire_data) > self.max_datagram_bytes;
        if !too_big {
            p.parts.push((f.offset, captured.to_vec()));
        }
        if too_big {
            let p = self.pending.remove(&key)?;
            self.abandon(p.bytes);
            return None;
        }
        let total = p.total?;
        if p.wire_data < total {
            return None;
        }
        let p = self.pending.remove(&key)?;
        let mut data = vec![0u8; total as usize];
        let mut covered = 0u64;
        for (off, part) in &p.parts {
            let end = (*off as usize + part.len()).min(data.len());
            if let (Some(dst), Some(src)) = (data.get_mut(*off as usize..end), part.get(..end.saturating_sub(*off as usize))) {
                dst.copy_from_slice(src);
                covered += src.len() as u64;
            }
        }
        self.joined_datagrams += 1;
        Some(Joined {
            complete_capture: covered >= total as u64,
            data,
            src: key.src,
            dst: key.dst,
            proto: key.proto,
            bytes: p.bytes,
        })
    }

    fn abandon(&mut self, b: FragBytes) {
        self.abandoned.frames += b.frames;
        self.abandoned.link += b.link;
        self.abandoned.network += b.network;
        self.abandoned.data += b.data;
        self.abandoned_datagrams += 1;
    }

    fn evict_oldest(&mut self) {
        if let Some(k) = self.pending.iter().min_by_key(|(_, p)| p.first_ts_ns).map(|(k, _)| *k) {
            if let Some(p) = self.pending.remove(&k) {
                self.abandon(p.bytes);
            }
        }
    }

    fn expire(&mut self, now: i64) {
        if self.pending.is_empty() {
            return;
        }
        let old: Vec<Key> =
            self.pending.iter().filter(|(_, p)| now - p.first_ts_ns > self.timeout_ns).map(|(k, _)| *k).collect();
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
