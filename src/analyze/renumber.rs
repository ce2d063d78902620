//! Ids the radio model sees: workers number their flows and exchanges
//! themselves; the radio stage renumbers them in order of first appearance.

use crate::flow::FrameTick;
use crate::radio::{DeviceRadios, Tick};
use foldhash::{HashMap, HashMapExt};

/// Gets every frame, in capture order.
pub(super) trait TickSink {
    fn tick(&mut self, t: &FrameTick);
}

/// How a worker's flow and exchange ids are told apart from other
/// workers': its number in the low bits, as many as the number of workers
/// needs (none for one). Split again for every frame, so with a shift and a
/// mask, not a division.
#[derive(Clone, Copy)]
pub(super) struct WorkerTag {
    pub(super) bits: u32,
}

impl WorkerTag {
    pub(super) fn new(jobs: u64) -> WorkerTag {
        // `jobs` is a number of threads: 32 bits of worker number is plenty.
        WorkerTag { bits: (u64::BITS - jobs.saturating_sub(1).leading_zeros()).min(32) }
    }

    pub(super) fn tag(self, local: u64, worker: u64) -> u64 {
        (local << self.bits) | worker
    }

    /// (worker, local id).
    pub(super) fn split(self, id: u64) -> (u64, u64) {
        (id & ((1u64 << self.bits) - 1), id >> self.bits)
    }
}

/// Drives the radio model. Ticks name flows and exchanges by the id of
/// the worker that made them (`WorkerTag`); the model sees them numbered in
/// order of first appearance, which is the same for any number of jobs, and
/// the numbers are put right at the end.
#[derive(Clone)]
pub(super) struct RadioTap {
    /// One radio per device.
    pub(super) radios: Option<DeviceRadios>,
    pub(super) flows: Renumber,
    pub(super) exchanges: Renumber,
    /// The detectors' state, when workers on threads ship their facts:
    /// kept once, not once a worker (on the dispatch's fact stage while
    /// packets come, here at the end).
    pub(super) streams: crate::findings::Streams,
    /// The listed devices' tallies of their flows.
    pub(super) devices: super::devices::DeviceTallies,
    /// Link-layer bytes (headers, tunnels, trailers) of every frame: wire
    /// bytes less this are the IP bytes an operator bills. The ledger's
    /// `link` class is not it: a TCP control frame is booked whole as
    /// `tcp_control`, link header and all.
    pub(super) link_bytes: u64,
}

impl RadioTap {
    /// A finished flow, for its device's tally if the device is listed.
    /// Taken after every frame of the flow has been ticked (so its device
    /// has been seen), which makes the answer the same for any number of
    /// jobs.
    pub(super) fn tally(&mut self, f: &super::devices::FlowTally) {
        if self.radios.as_ref().is_some_and(|r| r.is_listed(f.device())) {
            self.devices.add(f);
        }
    }

    /// Finished flows, each for its device's tally.
    pub(super) fn tally_all(&mut self, tallies: &mut Vec<super::devices::FlowTally>) {
        for f in tallies.drain(..) {
            self.tally(&f);
        }
    }

    /// Ticks, then the tallies of the flows they end, in that order.
    /// Called after every packet at one job, so without `drain`'s
    /// bookkeeping (about 50 instructions a packet for one tick and no
    /// tally).
    #[inline]
    pub(super) fn take(&mut self, ticks: &mut Vec<FrameTick>, tallies: &mut Vec<super::devices::FlowTally>) {
        for t in ticks.iter() {
            self.tick(t);
        }
        ticks.clear();
        if !tallies.is_empty() {
            self.tally_all(tallies);
        }
    }
}

/// Worker ids in order of first appearance; the first `max` only (the
/// rest are not itemised), so memory stays bounded and the same ids are
/// itemised for any number of jobs.
///
/// Looked up for every frame, so by index, not by hash: a worker numbers
/// its flows and exchanges from 0 up, and once `max` ids are itemised no
/// id above the highest itemised one of its worker can be. Ids far apart
/// (thousands of exchanges in each frame) are kept by hash past `dense`:
/// by index they would take memory in proportion to the highest one.
#[derive(Clone)]
pub(super) struct Renumber {
    pub(super) tag: WorkerTag,
    /// Per worker, by local id below `dense`: the sequence number, or `UNSEEN`.
    pub(super) seq: Vec<Vec<u32>>,
    /// Sequence numbers of itemised ids at or above `dense`.
    pub(super) far: HashMap<u64, u32>,
    pub(super) dense: usize,
    pub(super) ids: Vec<u64>,
    pub(super) max: usize,
}

pub(super) const UNSEEN: u32 = u32::MAX;

impl Renumber {
    pub(super) fn new(max: usize, jobs: u64) -> Renumber {
        let max = max.min(Tick::NO_FLOW as usize);
        Renumber {
            tag: WorkerTag::new(jobs),
            seq: (0..jobs.max(1)).map(|_| Vec::new()).collect(),
            far: HashMap::new(),
            dense: max.saturating_mul(4).saturating_add(1024),
            ids: Vec::new(),
            max,
        }
    }

    // Inlined (twice a frame); numbering a new id is out of line.
    #[inline]
    pub(super) fn get(&mut self, id: u64) -> Option<u32> {
        let (worker, local) = self.tag.split(id);
        match self.seq.get(worker as usize).and_then(|seq| seq.get(usize::try_from(local).ok()?)) {
            Some(&s) if s != UNSEEN => Some(s),
            _ if self.ids.len() >= self.max && self.far.is_empty() => None,
            _ => self.number(id),
        }
    }

    #[inline(never)]
    pub(super) fn number(&mut self, id: u64) -> Option<u32> {
        let (worker, local) = self.tag.split(id);
        let local = usize::try_from(local).ok()?;
        if local >= self.dense
            && let Some(&s) = self.far.get(&id)
        {
            return Some(s);
        }
        if self.ids.len() >= self.max {
            return None;
        }
        let seq = self.seq.get_mut(worker as usize)?;
        let s = u32::try_from(self.ids.len()).ok()?;
        if local >= self.dense {
            self.far.insert(id, s);
        } else {
            if seq.len() <= local {
                seq.resize(local + 1, UNSEEN);
            }
            *seq.get_mut(local)? = s;
        }
        self.ids.push(id);
        Some(s)
    }
}

impl TickSink for RadioTap {
    fn tick(&mut self, t: &FrameTick) {
        self.link_bytes += u64::from(t.link_len);
        let Some(radios) = self.radios.as_mut() else { return };
        let flow = t.flow().and_then(|f| self.flows.get(f));
        let exchange = t.exchange().and_then(|x| self.exchanges.get(x));
        let tick = Tick {
            ts_ns: t.ts_ns,
            wire_len: t.wire_len,
            uplink: t.uplink,
            flow: flow.unwrap_or(Tick::NO_FLOW),
            exchange,
            link_len: t.link_len,
        };
        radios.tick(t.device, t.peer(), &tick);
    }
}
