//! A worker's share of a round: its packets, sliced already and packed.
//! The reader writes them and a worker on another core reads them, so every
//! byte of an item crosses between the cores' caches once a packet.

use super::dispatch::Worker;
use crate::decode::{Decoded, LinkIds, Marks, TcpHeader, Transport};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::mpsc::SyncSender;

/// One TCP/UDP packet on its way to a worker. Only its payload is copied
/// into the batch (`at`, and the captured part's `len`), so the worker
/// neither copies headers nor decodes them again. Nearly every packet
/// (not tunnelled, one frame) has its headers packed here, in 72 bytes
/// where the decoder's form takes 112, its addresses too if both are IPv4
/// (else they are in `Batch::v6`, 34 bytes more); the others are whole in
/// `Batch::rare`.
pub(super) struct Item {
    idx: u64,
    ts_ns: i64,
    src: u32,
    dst: u32,
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    window: u16,
    /// TCP's flags, or the IP protocol number of `OTHER`.
    flags: u8,
    transport: u8,
    link_len: u32,
    net_len: u32,
    transport_len: u32,
    payload_len: u32,
    wire_len: u32,
    at: u32,
    len: u32,
    /// `PACKED`; or its addresses' place in `Batch::v6`; or, with `RARE`
    /// set, its headers' place in `Batch::rare`.
    rare: u32,
}

/// The headers of a packet that do not pack: tunnelled, with link ids or
/// a tunnel id, or joined from IP fragments.
struct Rare {
    head: Decoded<'static>,
    /// Frames it was joined from, and their repeated bytes.
    frames: u32,
    repeated: u32,
}

/// `Item::rare` of a packet whose headers are all in the item.
const PACKED: u32 = u32::MAX;
/// `Item::rare`'s bit for a place in `Batch::rare`. (A batch holds a
/// round's share: far fewer than 2^31 packets.)
const RARE: u32 = 1 << 31;
const UDP: u8 = 0;
const TCP: u8 = 1;
const OTHER: u8 = 2;

#[derive(Default)]
pub(super) struct Batch {
    data: Vec<u8>,
    items: Vec<Item>,
    /// The addresses of packed packets not between two IPv4 addresses.
    v6: Vec<(IpAddr, IpAddr)>,
    rare: Vec<Rare>,
    /// After the items: flows idle at this time end (`Engine::advance`).
    pub(super) expire_at: Option<i64>,
    /// After the items: the worker sends a finished copy of itself here
    /// (`Engine::snapshot`).
    pub(super) reply: Option<SyncSender<Worker>>,
}

/// A packet as the worker takes it: what `Batch::push` was given.
pub(super) struct Unpacked<'a> {
    pub(super) idx: u64,
    pub(super) ts_ns: i64,
    pub(super) wire_len: u32,
    pub(super) frames: u32,
    pub(super) repeated: u32,
    pub(super) d: Decoded<'a>,
}

impl Batch {
    #[inline]
    pub(super) fn push(&mut self, idx: u64, ts_ns: i64, wire_len: u32, frames: u32, repeated: u32, d: &Decoded) {
        let at = self.data.len() as u32;
        self.data.extend_from_slice(d.payload);
        let (transport, seq, ack, window, flags) = match d.transport {
            Transport::Tcp(h) => (TCP, h.seq, h.ack, h.window, h.flags),
            Transport::Udp => (UDP, 0, 0, 0, 0),
            Transport::Other(protocol) => (OTHER, 0, 0, 0, protocol),
        };
        let packs = frames == 1
            && repeated == 0
            && d.marks == Marks::NONE
            && d.teid.is_none()
            && d.link_ids == LinkIds::default();
        let (src, dst, rare) = match (d.src, d.dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) if packs => (src.to_bits(), dst.to_bits(), PACKED),
            ends if packs => {
                self.v6.push(ends);
                (0, 0, (self.v6.len() - 1) as u32)
            }
            _ => {
                self.rare.push(Rare { head: Decoded { payload: &[], ..*d }, frames, repeated });
                (0, 0, (self.rare.len() - 1) as u32 | RARE)
            }
        };
        self.items.push(Item {
            idx,
            ts_ns,
            src,
            dst,
            sport: d.sport,
            dport: d.dport,
            seq,
            ack,
            window,
            flags,
            transport,
            link_len: d.link_len,
            net_len: d.net_len,
            transport_len: d.transport_len,
            payload_len: d.payload_len,
            wire_len,
            at,
            len: d.payload.len() as u32,
            rare,
        });
    }

    /// The packets, in the order they were pushed.
    pub(super) fn packets(&self) -> impl Iterator<Item = Unpacked<'_>> {
        self.items.iter().map(|i| {
            let at = i.at as usize;
            let payload = self.data.get(at..at + i.len as usize).unwrap_or(&[]);
            let (idx, ts_ns, wire_len) = (i.idx, i.ts_ns, i.wire_len);
            let packed_v4 = || (IpAddr::V4(Ipv4Addr::from_bits(i.src)), IpAddr::V4(Ipv4Addr::from_bits(i.dst)));
            let (src, dst) = match i.rare {
                PACKED => packed_v4(),
                r if r & RARE != 0 => {
                    if let Some(r) = self.rare.get((r & !RARE) as usize) {
                        let d = Decoded { payload, ..r.head };
                        return Unpacked { idx, ts_ns, wire_len, frames: r.frames, repeated: r.repeated, d };
                    }
                    packed_v4()
                }
                r => self.v6.get(r as usize).copied().unwrap_or_else(packed_v4),
            };
            let transport = match i.transport {
                TCP => Transport::Tcp(TcpHeader { seq: i.seq, ack: i.ack, flags: i.flags, window: i.window }),
                UDP => Transport::Udp,
                _ => Transport::Other(i.flags),
            };
            let d = Decoded {
                src,
                dst,
                sport: i.sport,
                dport: i.dport,
                transport,
                link_len: i.link_len,
                net_len: i.net_len,
                transport_len: i.transport_len,
                payload_len: i.payload_len,
                payload,
                marks: Marks::NONE,
                teid: None,
                link_ids: LinkIds::default(),
            };
            Unpacked { idx, ts_ns, wire_len, frames: 1, repeated: 0, d }
        })
    }

    /// Payload bytes held.
    #[cfg(test)]
    pub(super) fn payload_bytes(&self) -> usize {
        self.data.len()
    }

    /// Emptied for reuse, its memory kept.
    pub(super) fn clear(&mut self) {
        self.data.clear();
        self.items.clear();
        self.v6.clear();
        self.rare.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    fn v4(a: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, a))
    }

    /// Every field the decoder fills comes back as it went in, packed or
    /// not, with each packet's own payload.
    #[test]
    fn packets_come_out_as_they_went_in() {
        let tcp = Transport::Tcp(TcpHeader { seq: 0xdead_beef, ack: 7, flags: 0x18, window: 65_535 });
        let base = Decoded {
            src: v4(1),
            dst: v4(2),
            sport: 40_000,
            dport: 443,
            transport: tcp,
            link_len: 14,
            net_len: 20,
            transport_len: 32,
            payload_len: 1_400,
            payload: b"hello",
            marks: Marks::NONE,
            teid: None,
            link_ids: LinkIds::default(),
        };
        let v6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
        let ids = LinkIds { src_mac: [2, 0, 0, 0, 0, 1], dst_mac: [2, 0, 0, 0, 0, 2], vlan: Some(42) };
        // (decoded, frames, repeated)
        let cases = [
            (base, 1, 0),
            (Decoded { transport: Transport::Udp, payload: b"", payload_len: 0, ..base }, 1, 0),
            (Decoded { transport: Transport::Other(1), ..base }, 1, 0),
            (Decoded { src: v6, ..base }, 1, 0),
            (Decoded { dst: v6, ..base }, 1, 0),
            (Decoded { src: v6, dst: v6, teid: Some(3), ..base }, 1, 0),
            (Decoded { marks: Marks::VXLAN, link_len: 64, ..base }, 1, 0),
            (Decoded { teid: Some(9), ..base }, 1, 0),
            (Decoded { teid: Some(0), ..base }, 1, 0),
            (Decoded { link_ids: ids, ..base }, 1, 0),
            (Decoded { payload: b"joined", ..base }, 3, 0),
            (Decoded { payload: b"again", ..base }, 2, 8),
            (Decoded { src: v4(0), dst: IpAddr::V4(Ipv4Addr::BROADCAST), sport: 0, dport: u16::MAX, ..base }, 1, 0),
            (
                Decoded {
                    link_len: u32::MAX,
                    net_len: u32::MAX,
                    transport_len: u32::MAX,
                    payload_len: u32::MAX,
                    ..base
                },
                1,
                0,
            ),
        ];
        let mut b = Batch::default();
        for round in 0..2 {
            for (n, (d, frames, repeated)) in cases.iter().enumerate() {
                b.push(n as u64, -(n as i64), 60 + n as u32, *frames, *repeated, d);
            }
            let out: Vec<Unpacked> = b.packets().collect();
            assert_eq!(out.len(), cases.len());
            for (n, (p, (d, frames, repeated))) in out.iter().zip(&cases).enumerate() {
                assert_eq!((p.idx, p.ts_ns, p.wire_len), (n as u64, -(n as i64), 60 + n as u32), "round {round}");
                assert_eq!((p.frames, p.repeated), (*frames, *repeated), "case {n}");
                assert_eq!(format!("{:?}", p.d), format!("{d:?}"), "case {n}");
            }
            b.clear();
            assert_eq!(b.packets().count(), 0);
        }
        // Only what does not pack is kept apart.
        for (d, frames, repeated) in &cases {
            b.push(0, 0, 0, *frames, *repeated, d);
        }
        assert_eq!((b.v6.len(), b.rare.len()), (2, 7));
    }

    /// The point of packing: an item is what crosses between cores for
    /// every packet.
    #[test]
    fn an_item_stays_small() {
        let size = std::mem::size_of::<Item>();
        assert!(size <= 72, "an item takes {size} bytes");
    }
}
