//! One direction of a TCP connection: sequence space, retransmissions,
//! reordering and gaps, delivering new bytes in order exactly once.

use std::collections::BTreeMap;

/// What happened to a run of stream bytes, in stream order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// New bytes, in order.
    Data(&'a [u8]),
    /// New bytes that were on the wire but not captured (snaplen).
    Cut(u64),
    /// Bytes of sequence space never seen in the capture; the stream resumes after them.
    Lost(u64),
}

/// How one segment's payload was accounted.
#[derive(Debug, Default, PartialEq, Eq, Clone, Copy)]
pub struct SegmentVerdict {
    /// Bytes repeating sequence space already seen.
    pub repeated: u64,
    /// Bytes new to the stream (delivered now or held out of order).
    pub new: u64,
}

/// Held out-of-order segment.
#[derive(Clone, Debug)]
struct Held {
    data: Vec<u8>,
    /// Wire length (data may be shorter when snaplen cut it).
    wire: u64,
}

/// What a held segment costs besides its bytes (its map entry and
/// allocation), counted against the cap: a hostile capture's held segments
/// of one byte, or of none (cut by snaplen), would otherwise pile up
/// without reaching it.
const HELD_OVERHEAD: usize = 64;

/// Reassembly state of one direction.
#[derive(Clone, Debug, Default)]
pub struct HalfStream {
    /// Sequence number of stream offset 0.
    base: Option<u32>,
    /// Next stream offset expected (everything below was delivered or lost).
    next: i64,
    /// What is held out of order: made the first time a segment is, as
    /// few connections' ever are (every live flow has two halves).
    held: Option<Box<Reorder>>,
}

/// Segments held out of order.
#[derive(Clone, Debug, Default)]
struct Reorder {
    /// Segments ahead of `next`, by stream offset; they never overlap.
    segments: BTreeMap<i64, Held>,
    /// Memory they take: their bytes plus `HELD_OVERHEAD` each.
    bytes: usize,
}

/// The segments of a half that never held one.
static NONE_HELD: BTreeMap<i64, Held> = BTreeMap::new();

impl HalfStream {
    /// A SYN fixes offset 0 at the byte after it.
    pub fn syn(&mut self, seq: u32) {
        if self.base.is_none() {
            self.base = Some(seq.wrapping_add(1));
        }
    }

    /// Stream offset of a sequence number: the 64-bit value nearest `next`.
    pub fn offset(&self, seq: u32) -> i64 {
        let base = self.base.unwrap_or(seq);
        let rel = seq.wrapping_sub(base) as i64;
        let hi = self.next - (self.next & 0xffff_ffff);
        let mut best = hi + rel;
        for cand in [hi + rel - (1 << 32), hi + rel + (1 << 32)] {
            if (cand - self.next).abs() < (best - self.next).abs() {
                best = cand;
            }
        }
        best
    }

    pub fn next_offset(&self) -> i64 {
        self.next
    }

    pub fn has_held(&self) -> bool {
        self.held.as_ref().is_some_and(|r| !r.segments.is_empty())
    }

    fn held(&self) -> &BTreeMap<i64, Held> {
        self.held.as_ref().map_or(&NONE_HELD, |r| &r.segments)
    }

    fn held_bytes(&self) -> usize {
        self.held.as_ref().map_or(0, |r| r.bytes)
    }

    /// Takes a segment: `seq`, the captured payload `data`, and its wire
    /// length `wire` (>= data.len()). New in-order bytes go to `out`.
    pub fn segment(
        &mut self,
        seq: u32,
        data: &[u8],
        wire: u64,
        cap: usize,
        out: &mut impl FnMut(Piece<'_>),
    ) -> SegmentVerdict {
        if self.base.is_none() {
            // Capture started mid-connection: the first byte seen is offset 0.
            self.base = Some(seq);
        }
        let start = self.offset(seq);
        let end = start + wire as i64;
        let mut v = SegmentVerdict::default();
        if end <= self.next {
            v.repeated = wire;
            return v;
        }
        // Skip the part already delivered.
        let (start, data, wire) = if start < self.next {
            let skip = (self.next - start) as u64;
            v.repeated += skip;
            let d = data.get(skip as usize..).unwrap_or(&[]);
            (self.next, d, wire - skip)
        } else {
            (start, data, wire)
        };
        if start == self.next {
            // Held segments may overlap what arrives now: that part repeats.
            let overlap = self.overlap_with_held(start, start + wire as i64);
            v.repeated += overlap;
            v.new += wire - overlap;
            deliver(data, wire, out);
            self.next = start + wire as i64;
            self.drain(out);
        } else {
            let overlap = self.overlap_with_held(start, end);
            v.repeated += overlap;
            let fresh = wire - overlap;
            v.new += fresh;
            if overlap == 0 {
                self.hold(start, Held { data: data.to_vec(), wire });
            } else {
                // Partial overlap with held data: keep the bytes beyond what is held.
                self.hold_fresh_parts(start, data, wire);
            }
            // No room to wait for the missing bytes any longer: give up on them.
            while self.held_bytes() > cap && self.has_held() {
                self.resync_to_first_held(out);
            }
        }
        v
    }

    fn hold(&mut self, start: i64, h: Held) {
        let r = self.held.get_or_insert_default();
        r.bytes += h.data.len() + HELD_OVERHEAD;
        if let Some(old) = r.segments.insert(start, h) {
            // (Only an empty segment can share a start with another.)
            r.bytes -= old.data.len() + HELD_OVERHEAD;
        }
    }

    /// The held segments that overlap [start, end), as (start, end) in
    /// order. Held segments never overlap, so only the last one starting
    /// before `start` can reach into the range: found by position, not by
    /// walking every segment before it (which made a stream of many held
    /// segments quadratic).
    fn held_within(&self, start: i64, end: i64) -> impl Iterator<Item = (i64, i64)> + '_ {
        let held = self.held();
        let before = held.range(..start).next_back();
        before
            .into_iter()
            .chain(held.range(start..end.max(start)))
            .map(|(&s, h)| (s, s + h.wire as i64))
            .filter(move |&(s, e)| e > start && s < end)
    }

    /// Bytes of [start, end) already covered by held segments.
    fn overlap_with_held(&self, start: i64, end: i64) -> u64 {
        self.held_within(start, end).map(|(s, e)| (e.min(end) - s.max(start)) as u64).sum()
    }

    fn hold_fresh_parts(&mut self, start: i64, data: &[u8], wire: u64) {
        // Walk [start, end) and insert the sub-ranges no held segment covers.
        let end = start + wire as i64;
        let mut cur = start;
        let covered: Vec<(i64, i64)> = self.held_within(start, end).collect();
        for (s, e) in covered.into_iter().chain(std::iter::once((end, end))) {
            if s > cur {
                let a = (cur - start) as usize;
                let b = (s - start) as usize;
                let piece = data.get(a.min(data.len())..b.min(data.len())).unwrap_or(&[]);
                self.hold(cur, Held { data: piece.to_vec(), wire: (s - cur) as u64 });
            }
            cur = cur.max(e);
        }
    }

    /// Delivers held segments that are now in order.
    fn drain(&mut self, out: &mut impl FnMut(Piece<'_>)) {
        let Some(r) = self.held.as_mut() else { return };
        while let Some(entry) = r.segments.first_entry() {
            let s = *entry.key();
            if s > self.next {
                break;
            }
            let h = entry.remove();
            r.bytes -= h.data.len() + HELD_OVERHEAD;
            let e = s + h.wire as i64;
            if e <= self.next {
                continue;
            }
            let skip = (self.next - s) as u64;
            let d = h.data.get(skip as usize..).unwrap_or(&[]);
            deliver(d, h.wire - skip, out);
            self.next = e;
        }
    }

    fn lose(&mut self, n: i64, out: &mut impl FnMut(Piece<'_>)) {
        if n > 0 {
            out(Piece::Lost(n as u64));
            self.next += n;
        }
    }

    fn resync_to_first_held(&mut self, out: &mut impl FnMut(Piece<'_>)) {
        if let Some((&s, _)) = self.held().first_key_value() {
            self.lose(s - self.next, out);
            self.drain(out);
        }
    }

    /// The peer acknowledged `ack`: bytes below it that the capture never
    /// showed are lost to the capture, not in flight; deliver what follows.
    pub fn acked(&mut self, ack: u32, out: &mut impl FnMut(Piece<'_>)) {
        if self.base.is_none() || !self.has_held() {
            return;
        }
        let a = self.offset(ack);
        if let Some((&s, _)) = self.held().first_key_value()
            && a >= s
        {
            self.resync_to_first_held(out);
        }
    }

    /// End of the connection (or of the capture): deliver everything held,
    /// skipping the holes.
    pub fn flush(&mut self, out: &mut impl FnMut(Piece<'_>)) {
        while self.has_held() {
            self.resync_to_first_held(out);
        }
    }
}

fn deliver(data: &[u8], wire: u64, out: &mut impl FnMut(Piece<'_>)) {
    if !data.is_empty() {
        out(Piece::Data(data));
    }
    let cut = wire - data.len() as u64;
    if cut > 0 {
        out(Piece::Cut(cut));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq, Eq)]
    enum P {
        D(Vec<u8>),
        C(u64),
        L(u64),
    }

    fn seg(h: &mut HalfStream, seq: u32, data: &[u8], got: &mut Vec<P>) -> SegmentVerdict {
        seg_cap(h, seq, data, data.len() as u64, 1 << 20, got)
    }

    fn seg_cap(h: &mut HalfStream, seq: u32, data: &[u8], wire: u64, cap: usize, got: &mut Vec<P>) -> SegmentVerdict {
        h.segment(seq, data, wire, cap, &mut |p| {
            got.push(match p {
                Piece::Data(d) => P::D(d.to_vec()),
                Piece::Cut(n) => P::C(n),
                Piece::Lost(n) => P::L(n),
            })
        })
    }

    fn joined(got: &[P]) -> Vec<u8> {
        got.iter().flat_map(|p| if let P::D(d) = p { d.clone() } else { vec![] }).collect()
    }

    #[test]
    fn in_order_after_syn() {
        let mut h = HalfStream::default();
        h.syn(1000);
        let mut got = vec![];
        assert_eq!(seg(&mut h, 1001, b"abc", &mut got).new, 3);
        assert_eq!(seg(&mut h, 1004, b"de", &mut got).new, 2);
        assert_eq!(joined(&got), b"abcde");
    }

    #[test]
    fn out_of_order_is_held_then_delivered_in_order() {
        let mut h = HalfStream::default();
        h.syn(0);
        let mut got = vec![];
        let v = seg(&mut h, 4, b"def", &mut got);
        assert_eq!((v.new, v.repeated), (3, 0));
        assert!(got.is_empty());
        seg(&mut h, 1, b"abc", &mut got);
        assert_eq!(joined(&got), b"abcdef");
    }

    #[test]
    fn duplicate_is_repeated() {
        let mut h = HalfStream::default();
        h.syn(0);
        let mut got = vec![];
        seg(&mut h, 1, b"abc", &mut got);
        let v = seg(&mut h, 1, b"abc", &mut got);
        assert_eq!((v.new, v.repeated), (0, 3));
        assert_eq!(joined(&got), b"abc");
    }

    #[test]
    fn partial_overlap_counts_only_the_new_tail() {
        let mut h = HalfStream::default();
        h.syn(0);
        let mut got = vec![];
        seg(&mut h, 1, b"abcd", &mut got);
        let v = seg(&mut h, 3, b"cdef", &mut got);
        assert_eq!((v.new, v.repeated), (2, 2));
        assert_eq!(joined(&got), b"abcdef");
    }

    #[test]
    fn overlap_with_held_segment_is_repeated_once() {
        let mut h = HalfStream::default();
        h.syn(0);
        let mut got = vec![];
        seg(&mut h, 5, b"efgh", &mut got);
        let v = seg(&mut h, 3, b"cdefgh", &mut got); // c,d new; e..h held already
        assert_eq!((v.new, v.repeated), (2, 4));
        let v = seg(&mut h, 1, b"ab", &mut got);
        assert_eq!((v.new, v.repeated), (2, 0));
        assert_eq!(joined(&got), b"abcdefgh");
    }

    #[test]
    fn sequence_wraparound() {
        let mut h = HalfStream::default();
        h.syn(u32::MAX - 2); // data starts at MAX-1
        let mut got = vec![];
        seg(&mut h, u32::MAX - 1, b"ab", &mut got);
        seg(&mut h, 0, b"cd", &mut got);
        let v = seg(&mut h, u32::MAX, b"bc", &mut got);
        assert_eq!((v.new, v.repeated), (0, 2));
        assert_eq!(joined(&got), b"abcd");
        assert_eq!(h.next_offset(), 4);
    }

    #[test]
    fn gap_is_lost_when_peer_acks_past_it() {
        let mut h = HalfStream::default();
        h.syn(0);
        let mut got = vec![];
        seg(&mut h, 1, b"ab", &mut got);
        seg(&mut h, 6, b"fg", &mut got); // c..e never captured
        h.acked(8, &mut |p| {
            got.push(match p {
                Piece::Data(d) => P::D(d.to_vec()),
                Piece::Cut(n) => P::C(n),
                Piece::Lost(n) => P::L(n),
            })
        });
        assert_eq!(got, vec![P::D(b"ab".to_vec()), P::L(3), P::D(b"fg".to_vec())]);
    }

    #[test]
    fn gap_is_given_up_when_buffer_is_full() {
        let mut h = HalfStream::default();
        h.syn(0);
        let mut got = vec![];
        // Room for one held segment of two bytes, not two.
        let cap = 2 + HELD_OVERHEAD + 1;
        seg_cap(&mut h, 11, b"kl", 2, cap, &mut got);
        assert_eq!(got, vec![]);
        // Would exceed the cap: the first gap is given up, the second waited for.
        seg_cap(&mut h, 14, b"op", 2, cap, &mut got);
        assert_eq!(got, vec![P::L(10), P::D(b"kl".to_vec())]);
    }

    #[test]
    fn many_small_held_segments_stay_under_the_cap_in_linear_time() {
        // A hostile stream: a gap never filled, then segments of one byte,
        // or of none captured (cut by snaplen). Each was once checked
        // against every segment held before it, and empty ones never
        // counted against the cap.
        for captured in [&b"x"[..], &b""[..]] {
            let (mut h, mut got) = (HalfStream::default(), vec![]);
            h.syn(0);
            let cap = 1 << 20;
            let (n, wire) = (200_000u32, 1u32);
            let mut new = 0;
            for i in 0..n {
                new += seg_cap(&mut h, 2 + i * wire, captured, u64::from(wire), cap, &mut got).new;
                assert!(h.held().len() <= cap / HELD_OVERHEAD, "{} segments held", h.held().len());
            }
            assert_eq!(new, u64::from(n * wire));
            assert!(got.first() == Some(&P::L(1)), "the gap is given up: {:?}", got.first());
        }
    }

    #[test]
    fn mid_stream_start_takes_first_seq_as_origin() {
        let mut h = HalfStream::default();
        let mut got = vec![];
        seg(&mut h, 5000, b"xy", &mut got);
        seg(&mut h, 5002, b"z", &mut got);
        assert_eq!(joined(&got), b"xyz");
        let v = seg(&mut h, 4990, b"0123456789", &mut got);
        assert_eq!((v.new, v.repeated), (0, 10), "data before the first seen byte counts as repeated");
    }

    #[test]
    fn snaplen_cut_is_reported() {
        let mut h = HalfStream::default();
        h.syn(0);
        let mut got = vec![];
        let v = seg_cap(&mut h, 1, b"ab", 10, 1 << 20, &mut got);
        assert_eq!(v.new, 10);
        assert_eq!(got, vec![P::D(b"ab".to_vec()), P::C(8)]);
    }

    #[test]
    fn flush_skips_holes() {
        let mut h = HalfStream::default();
        h.syn(0);
        let mut got = vec![];
        seg(&mut h, 3, b"c", &mut got);
        h.flush(&mut |p| {
            got.push(match p {
                Piece::Data(d) => P::D(d.to_vec()),
                Piece::Cut(n) => P::C(n),
                Piece::Lost(n) => P::L(n),
            })
        });
        assert_eq!(got, vec![P::L(2), P::D(b"c".to_vec())]);
    }
}
