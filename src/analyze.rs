//! The pipeline: a capture in, an `InputReport` out.
//!
//! The reading thread reads and decodes every frame, books what belongs to
//! no flow, joins IP fragments, and hands each TCP/UDP packet to a worker
//! chosen by its flow, so one flow always lands on the same worker. With
//! `jobs` > 1 the workers run on threads (three per core), and their frame
//! ticks are merged back into packet order for the radio model; everything
//! is put back in the order one worker would have made it, so the report is
//! the same for any number of jobs.

use crate::capture::{CaptureReader, ReadError};
use crate::decode::{self, Decoded, Defragmenter, Frame, NotIp, Transport};
use crate::flow::{FlowConfig, FlowRecord, FlowSink, FlowTable, FrameTick};
use crate::ledger::exchange::UNLISTED_FLOW;
use crate::ledger::{Class, Exchange, Ledger, setup_share};
use crate::radio::{CostOptions, Profile, RadioOptions, RadioSim, Tick};
use crate::report::timeline::TimelineBuilder;
use crate::report::{InputReport, Notes, Totals};
use foldhash::{HashMap, HashMapExt, HashSet};
use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::sync::{Arc, Mutex};

/// Told how far reading has come: (input, bytes read, file size).
pub type Progress = Arc<dyn Fn(&Path, u64, u64) + Send + Sync>;

/// Everything `analyze` can be told.
#[derive(Clone, Default)]
pub struct Options {
    pub flow: FlowConfig,
    /// Most flows and exchanges listed in a report (all are counted).
    pub max_flows: usize,
    pub max_exchanges: usize,
    /// Cores per input (1: everything on the calling thread; more: that many
    /// times `WORKERS_PER_CORE` worker threads).
    pub jobs: usize,
    pub progress: Option<Progress>,
    /// The radio model every frame drives (None: no radio section).
    pub radio: Option<(Profile, RadioOptions)>,
    pub cost: CostOptions,
}

impl Options {
    pub fn new() -> Options {
        Options {
            flow: FlowConfig::default(),
            max_flows: 10_000,
            max_exchanges: 10_000,
            jobs: 1,
            progress: None,
            radio: Profile::builtin("lte").map(|p| (p, RadioOptions::default())),
            cost: CostOptions::default(),
        }
    }
}

/// Gets every frame, in capture order.
trait TickSink {
    fn tick(&mut self, t: &FrameTick);
}

/// How a worker's flow and exchange ids are told apart from other
/// workers': its number in the low bits, as many as the number of workers
/// needs (none for one). Split again for every frame, so with a shift and a
/// mask, not a division.
#[derive(Clone, Copy)]
struct WorkerTag {
    bits: u32,
}

impl WorkerTag {
    fn new(jobs: u64) -> WorkerTag {
        // `jobs` is a number of threads: 32 bits of worker number is plenty.
        WorkerTag { bits: (u64::BITS - jobs.saturating_sub(1).leading_zeros()).min(32) }
    }

    fn tag(self, local: u64, worker: u64) -> u64 {
        (local << self.bits) | worker
    }

    /// (worker, local id).
    fn split(self, id: u64) -> (u64, u64) {
        (id & ((1u64 << self.bits) - 1), id >> self.bits)
    }
}

/// Drives the radio model. Ticks name flows and exchanges by the id of
/// the worker that made them (`WorkerTag`); the model sees them numbered in
/// order of first appearance, which is the same for any number of jobs, and
/// the numbers are put right at the end.
struct RadioTap {
    sim: Option<RadioSim>,
    flows: Renumber,
    exchanges: Renumber,
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
struct Renumber {
    tag: WorkerTag,
    /// Per worker, by local id below `dense`: the sequence number, or `UNSEEN`.
    seq: Vec<Vec<u32>>,
    /// Sequence numbers of itemised ids at or above `dense`.
    far: HashMap<u64, u32>,
    dense: usize,
    ids: Vec<u64>,
    max: usize,
}

const UNSEEN: u32 = u32::MAX;

impl Renumber {
    fn new(max: usize, jobs: u64) -> Renumber {
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
    fn get(&mut self, id: u64) -> Option<u32> {
        let (worker, local) = self.tag.split(id);
        match self.seq.get(worker as usize).and_then(|seq| seq.get(usize::try_from(local).ok()?)) {
            Some(&s) if s != UNSEEN => Some(s),
            _ if self.ids.len() >= self.max && self.far.is_empty() => None,
            _ => self.number(id),
        }
    }

    #[inline(never)]
    fn number(&mut self, id: u64) -> Option<u32> {
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
        let Some(sim) = self.sim.as_mut() else { return };
        let flow = t.flow.and_then(|f| self.flows.get(f));
        let exchange = t.exchange.and_then(|x| self.exchanges.get(x));
        sim.tick(&Tick {
            ts_ns: t.ts_ns,
            wire_len: t.wire_len,
            uplink: t.uplink,
            flow: flow.unwrap_or(Tick::NO_FLOW),
            exchange,
        });
    }
}

/// Collects what one worker's flow table finishes, keeping the first
/// `max_*` flows and exchanges in capture order (memory stays bounded).
#[derive(Default)]
struct Collector {
    flows: Vec<FlowRecord>,
    exchanges: Vec<Exchange>,
    flows_total: u64,
    exchanges_total: u64,
    /// Of every flow, listed or not.
    malformed_bytes: u64,
    max_flows: usize,
    max_exchanges: usize,
    flow_ledger: Ledger,
    /// What the flows booked, by time bin.
    timeline: TimelineBuilder,
    ticks: Vec<FrameTick>,
    /// Exchanges kept per flow, and (setup bytes, exchanges) of the finished
    /// flows that have some kept: what their setup shares are made of.
    kept_per_flow: HashMap<u64, usize>,
    flow_setup: HashMap<u64, (u64, u64)>,
    /// Every DNS lookup (the first `MAX_LOOKUPS`), listed or not: a lookup
    /// is charged to the connection after it whatever the lists' caps.
    lookups: Vec<Lookup>,
    /// The flows those lookups belong to, whose setup their cost shares.
    lookup_flows: HashSet<u64>,
    /// Once the lists have been cut: the first key that cannot be listed.
    /// Flows and exchanges come roughly in capture order, so once the lists
    /// are full nearly everything is counted and dropped at once.
    exchange_cutoff: Option<(u64, u64, u64)>,
    flow_cutoff: Option<u64>,
    /// This worker's number, and what it tells the others of its lists
    /// (none when it works alone).
    worker: u64,
    kept: Option<Arc<Mutex<KeptKeys>>>,
    /// The list lengths at which the lists are cut next.
    next_flow_cut: usize,
    next_exchange_cut: usize,
}

/// The keys of the flows and exchanges each worker keeps, as it last told
/// them. The first `max` keys of them all bound what can be listed, so each
/// worker drops what the others' lists prove cannot be: without it every
/// worker would keep `max` of each list, and memory would grow with the
/// number of workers. (Keys a worker has dropped since are still keys of
/// real flows and exchanges, so an old list proves as much as a new one.)
struct KeptKeys {
    flows: Vec<Vec<u64>>,
    exchanges: Vec<Vec<(u64, u64, u64)>>,
}

/// The key past the first `max` of `lists` (keys are unique), if there are
/// more than `max`.
fn first_past<K: Ord + Copy>(lists: &[Vec<K>], max: usize) -> Option<K> {
    let mut all: Vec<K> = lists.iter().flatten().copied().collect();
    if all.len() <= max {
        return None;
    }
    all.select_nth_unstable(max);
    all.get(max).copied()
}

/// Cuts `list` to the first `max` of its own in the order of `key`, then to
/// what `tell` (the other workers' lists) leaves listable; `cutoff` becomes
/// the first key that cannot be listed.
fn cut_list<T, K: Ord + Copy>(
    list: &mut Vec<T>,
    cutoff: &mut Option<K>,
    max: usize,
    key: impl Fn(&T) -> K,
    tell: impl FnOnce(&[T]) -> Option<K>,
) {
    if let Some(c) = keep_first(list, max, &key) {
        *cutoff = Some(c);
    }
    if let Some(b) = tell(list)
        && cutoff.is_none_or(|c| b < c)
    {
        list.retain(|x| key(x) < b);
        *cutoff = Some(b);
    }
}

/// Tells the other workers the keys `worker` keeps of a list (`lists` picks
/// which), and returns the first key none can list, if their lists prove
/// one. Nothing to tell when a worker works alone.
fn tell_and_bound<K: Ord + Copy>(
    kept: Option<&Arc<Mutex<KeptKeys>>>,
    worker: u64,
    mine: impl FnOnce() -> Vec<K>,
    max: usize,
    lists: impl Fn(&mut KeptKeys) -> &mut Vec<Vec<K>>,
) -> Option<K> {
    let kept = kept?;
    let mine = mine();
    let mut kept = kept.lock().ok()?;
    let lists = lists(&mut kept);
    *lists.get_mut(worker as usize)? = mine;
    first_past(lists, max)
}

/// The list length at which a list of `len` that was just cut is cut
/// again: a quarter longer (so cuts stay rare), never past `slack(max)`.
fn next_cut(len: usize, max: usize) -> usize {
    (len + len / 4).max(1024).min(slack(max))
}

impl Collector {
    fn new(limits: &Limits, worker: u64, kept: Option<Arc<Mutex<KeptKeys>>>) -> Collector {
        let (max_flows, max_exchanges) = (limits.max_flows, limits.max_exchanges.max(1));
        // Alone, a worker's lists are cut at their cap; with others, early
        // and often, so what they tell each other keeps every list short.
        let first_cut = |max| if kept.is_some() { next_cut(0, max) } else { slack(max) };
        Collector {
            max_flows: limits.max_flows,
            max_exchanges: limits.max_exchanges,
            next_flow_cut: first_cut(max_flows),
            next_exchange_cut: first_cut(max_exchanges),
            worker,
            kept,
            ..Default::default()
        }
    }

    /// Cuts the flow list to what can still be listed.
    fn cut_flows(&mut self) {
        let (kept, worker, max) = (self.kept.as_ref(), self.worker, self.max_flows);
        let tell = |l: &[FlowRecord]| {
            let mine = || l.iter().map(flow_order).collect();
            tell_and_bound(kept, worker, mine, max, |k| &mut k.flows)
        };
        cut_list(&mut self.flows, &mut self.flow_cutoff, max, flow_order, tell);
        self.next_flow_cut = next_cut(self.flows.len(), max);
    }

    /// Cuts the exchange list, then forgets the setup of flows none of the
    /// kept exchanges shares.
    fn cut_exchanges(&mut self) {
        let (kept, worker, max) = (self.kept.as_ref(), self.worker, self.max_exchanges);
        let tell = |l: &[Exchange]| {
            let mine = || l.iter().map(|x| exchange_order(worker, x)).collect();
            tell_and_bound(kept, worker, mine, max, |k| &mut k.exchanges)
        };
        cut_list(&mut self.exchanges, &mut self.exchange_cutoff, max, |x| exchange_order(worker, x), tell);
        self.kept_per_flow.clear();
        for x in &self.exchanges {
            *self.kept_per_flow.entry(x.flow).or_default() += 1;
        }
        self.prune_flow_setup();
        self.next_exchange_cut = next_cut(self.exchanges.len(), self.max_exchanges.max(1));
    }

    /// Cuts the lists to the first `max_*` in capture order (the lookups
    /// to exactly `MAX_LOOKUPS`, so the merged list is the same for any
    /// number of jobs) and sorts them, on the worker's own thread: the merge
    /// then handles no more than the report can list from each worker, in
    /// one pass. (Nothing past the caps is used: DNS lookups have a list of
    /// their own.)
    fn list_in_order(&mut self) {
        let w = self.worker;
        first_in_order(&mut self.flows, self.max_flows, flow_order);
        first_in_order(&mut self.exchanges, self.max_exchanges, |x| exchange_order(w, x));
        first_in_order(&mut self.lookups, MAX_LOOKUPS, lookup_order);
    }

    /// Forgets the setup of flows that neither a kept exchange nor a kept
    /// lookup shares.
    fn prune_flow_setup(&mut self) {
        let (kept, lookup_flows) = (&self.kept_per_flow, &self.lookup_flows);
        self.flow_setup.retain(|f, _| kept.contains_key(f) || lookup_flows.contains(f));
    }

    /// Gives every kept exchange and lookup its share of its flow's setup.
    fn share_setup(&mut self) {
        for x in &mut self.exchanges {
            if let Some(&(setup, n)) = self.flow_setup.get(&x.flow) {
                x.share_setup(setup, n);
            }
        }
        for l in &mut self.lookups {
            if let Some(&(setup, n)) = self.flow_setup.get(&l.flow) {
                l.cost_bytes = l.wire_bytes as f64 + setup_share(setup, n);
            }
        }
    }
}

/// Keeps the first `max` of `v` in the order of `key` (unsorted), and
/// returns the key of the first one dropped, if any.
fn keep_first<T, K: Ord>(v: &mut Vec<T>, max: usize, key: impl Fn(&T) -> K) -> Option<K> {
    if v.len() <= max {
        return None;
    }
    v.select_nth_unstable_by_key(max, &key);
    let first_dropped = v.get(max).map(&key);
    v.truncate(max);
    first_dropped
}

/// The first `max` of `v` in the order of `key`, sorted.
fn first_in_order<T, K: Ord>(v: &mut Vec<T>, max: usize, key: impl Fn(&T) -> K) {
    keep_first(v, max, &key);
    *v = sorted_by_key(std::mem::take(v), key);
}

/// The capture orders of flows, exchanges and lookups (within one worker).
fn flow_order(f: &FlowRecord) -> u64 {
    f.first_packet
}

/// Exchanges by the packet that opened them, then (several opened by one
/// packet) by worker and the worker's own numbering.
fn exchange_order(worker: u64, x: &Exchange) -> (u64, u64, u64) {
    (x.open_packet, worker, x.id)
}

fn lookup_order(l: &Lookup) -> (u64, u64) {
    (l.open_packet, l.id)
}

/// Most DNS lookups remembered for charging them to the connections after
/// them (the first ones in capture order): memory stays bounded (a few MB).
const MAX_LOOKUPS: usize = 16_384;

/// A DNS lookup, kept apart from the exchange list (which is capped).
struct Lookup {
    open_packet: u64,
    /// The exchange's and its flow's ids, as the worker numbered them.
    id: u64,
    flow: u64,
    end_ts: f64,
    resolved: Vec<IpAddr>,
    wire_bytes: u64,
    /// What the lookup cost: its bytes and its share of its flow's setup
    /// (the exchange's `total_cost_bytes`).
    cost_bytes: f64,
}

/// How long a list may grow before it is cut back to `max`: a quarter more,
/// so cuts are rare (and rarer still once the cutoff drops late arrivals)
/// while each thread's lists stay small.
fn slack(max: usize) -> usize {
    max.saturating_add(max / 4 + 16)
}

impl FlowSink for Collector {
    fn tick(&mut self, t: FrameTick) {
        self.ticks.push(t);
    }
    fn exchange_done(&mut self, x: Exchange) {
        self.exchanges_total += 1;
        if !x.resolved.is_empty() {
            self.lookup_flows.insert(x.flow);
            self.lookups.push(Lookup {
                open_packet: x.open_packet,
                id: x.id,
                flow: x.flow,
                end_ts: x.end_ts,
                resolved: x.resolved.clone(),
                wire_bytes: x.wire_bytes,
                cost_bytes: x.total_cost_bytes,
            });
            if self.lookups.len() > slack(MAX_LOOKUPS) {
                keep_first(&mut self.lookups, MAX_LOOKUPS, lookup_order);
                // Only the flows of the lookups kept need their setup known.
                self.lookup_flows = self.lookups.iter().map(|l| l.flow).collect();
                self.prune_flow_setup();
            }
        }
        if self.exchange_cutoff.is_some_and(|c| exchange_order(self.worker, &x) >= c) {
            return;
        }
        *self.kept_per_flow.entry(x.flow).or_default() += 1;
        self.exchanges.push(x);
        // Keep the first ones in capture order; the final sort orders them.
        if self.exchanges.len() > self.next_exchange_cut {
            self.cut_exchanges();
        }
    }
    fn booked(&mut self, ts_ns: i64, classes: &Ledger) {
        self.timeline.add(ts_ns, classes);
    }
    fn lists_exchanges_opened_at(&self, packet: u64) -> bool {
        self.exchange_cutoff.is_none_or(|(p, _, _)| packet <= p)
    }
    fn flow_done(&mut self, rec: FlowRecord) {
        self.flow_ledger.merge(&rec.classes);
        self.flows_total += 1;
        self.malformed_bytes += rec.malformed_bytes;
        if self.kept_per_flow.contains_key(&rec.id) || self.lookup_flows.contains(&rec.id) {
            self.flow_setup.insert(rec.id, (rec.setup_bytes, rec.exchanges));
        }
        if self.flow_cutoff.is_some_and(|c| flow_order(&rec) >= c) {
            return;
        }
        self.flows.push(rec);
        if self.flows.len() > self.next_flow_cut {
            self.cut_flows();
        }
    }
}

/// A flow table and what it finished.
struct Worker {
    table: FlowTable,
    out: Collector,
}

impl Worker {
    fn new(limits: &Limits, worker: u64, kept: Option<Arc<Mutex<KeptKeys>>>) -> Worker {
        Worker { table: FlowTable::new(limits.flow.clone()), out: Collector::new(limits, worker, kept) }
    }

    fn packet(&mut self, idx: u64, ts_ns: i64, wire_len: u32, d: &Decoded, frames: u32, repeated: u32) {
        self.table.expire(ts_ns, &mut self.out);
        self.table.packet(idx, ts_ns, wire_len, d, frames, repeated, &mut self.out);
    }

    fn finish(&mut self) {
        self.table.finish_all(&mut self.out);
        self.out.list_in_order();
        self.out.share_setup();
    }
}

/// What a worker needs to know.
#[derive(Clone)]
struct Limits {
    flow: FlowConfig,
    max_flows: usize,
    max_exchanges: usize,
}

/// One TCP/UDP packet on its way to a worker, sliced already: only its
/// payload is copied into the batch (`at`, its length in `head.payload_len`
/// and the captured part's `len`), so the worker neither copies headers nor
/// decodes them again.
struct Item {
    idx: u64,
    ts_ns: i64,
    wire_len: u32,
    /// Frames it was joined from (IP fragments), and their repeated bytes.
    frames: u32,
    repeated: u32,
    /// The decoded headers, with an empty payload.
    head: Decoded<'static>,
    at: u32,
    len: u32,
}

#[derive(Default)]
struct Batch {
    data: Vec<u8>,
    items: Vec<Item>,
}

impl Batch {
    fn push(&mut self, idx: u64, ts_ns: i64, wire_len: u32, frames: u32, repeated: u32, d: &Decoded) {
        let at = self.data.len() as u32;
        self.data.extend_from_slice(d.payload);
        let head = Decoded { payload: &[], ..*d };
        self.items.push(Item { idx, ts_ns, wire_len, frames, repeated, head, at, len: d.payload.len() as u32 });
    }
}

/// Packets in a round. Each round costs every thread a hand-over, and the
/// radio stage a merge: on the bench capture at `--jobs 2`, rounds of 16 k
/// packets (with `ROUND_BYTES` 2 MB and 4 rounds ahead) took 7% less time
/// than rounds of 4 k (1 MB, 8 ahead), for 14 MB more.
const BATCH: usize = 16_384;

/// Most payload bytes in a round (give or take a packet): with large frames
/// (captures of TSO/GRO traffic carry 64 KB ones) a round of `BATCH` would
/// hold a GB. Typical rounds hold 1 to 2 MB.
const ROUND_BYTES: usize = 2 << 20;

/// Packets handed out in rounds: in each round every worker gets its share
/// (maybe none) and hands back its frame ticks, which the radio stage
/// merges with the reader's own ticks of the round back into packet order.
/// The reader and the workers each run on their own thread, joined only by
/// bounded queues; the radio stage runs on whichever of them is free.
enum Dispatch {
    Inline(Box<Worker>, Box<RadioTap>),
    Threads {
        senders: Vec<SyncSender<Batch>>,
        batches: Vec<Batch>,
        in_round: usize,
        /// Payload bytes copied into the round's batches.
        round_bytes: usize,
        handles: Vec<std::thread::JoinHandle<Worker>>,
        /// Emptied batches coming back from each worker, for reuse.
        returned: Vec<Receiver<Batch>>,
        outside_ticks: Vec<FrameTick>,
        /// Packet by packet, the list its tick will be in: a worker's
        /// number, or the number of workers for the reader's own list.
        route: Vec<u32>,
        radio: Arc<Mutex<RadioStage>>,
    },
}

/// Rounds a worker may queue; its ticks may wait for the radio stage for
/// twice as many (more than it can queue, so it never waits for the reader
/// while the reader waits for it). Measured with `BATCH`.
const ROUNDS_AHEAD: usize = 4;

/// Worker threads per core. Flows are not spread evenly over time: for
/// stretches of a capture one worker's share is busier, and with one worker
/// a core the other core then waits. With several a core, the system runs
/// the busy ones on every core (two a core: 6% less time than one; three:
/// 5% less again; four: no better than two).
pub const WORKERS_PER_CORE: usize = 3;

/// Most worker threads for one input (128 cores' worth), and most inputs
/// analysed at once, whatever `--jobs` says: threads past the cores only
/// cost memory.
const MAX_WORKERS: usize = 128 * WORKERS_PER_CORE;

fn shard_of(d: &Decoded, n: usize) -> usize {
    // Direction-independent (the two ends summed, then mixed): both
    // directions of a flow land together. Fixed, so the spread is the same
    // every run; computed for every packet on the reading thread, so kept
    // cheap.
    fn end(ip: IpAddr, port: u16) -> u64 {
        let bits = match ip {
            IpAddr::V4(a) => u64::from(a.to_bits()),
            IpAddr::V6(a) => {
                let b = a.to_bits();
                (b as u64) ^ ((b >> 64) as u64).rotate_left(29)
            }
        };
        bits ^ (u64::from(port) << 48) ^ u64::from(port)
    }
    let h = mix(end(d.src, d.sport).wrapping_add(end(d.dst, d.dport)));
    // The hash scaled to 0..n: a multiply, not a 64-bit division.
    ((u128::from(h) * n as u128) >> 64) as usize
}

/// splitmix64's finaliser: every input bit moves every output bit.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Dispatch {
    /// An error if the worker threads cannot be started.
    fn new(cfg: &Limits, workers: usize, tap: RadioTap) -> Result<Dispatch, String> {
        if workers <= 1 {
            return Ok(Dispatch::Inline(Box::new(Worker::new(cfg, 0, None)), Box::new(tap)));
        }
        // The workers share the live-flow budget.
        let mut cfg = cfg.clone();
        cfg.flow.max_live_flows = (cfg.flow.max_live_flows / workers).max(1);
        cfg.flow.max_live_exchanges = (cfg.flow.max_live_exchanges / workers).max(1);
        let cfg = &cfg;
        let mut senders = Vec::new();
        let mut ticks = Vec::new();
        let mut returned = Vec::new();
        let mut queues = Vec::new();
        for _ in 0..workers {
            let (tx, rx) = sync_channel::<Batch>(ROUNDS_AHEAD);
            let (ttx, trx) = sync_channel::<Vec<FrameTick>>(2 * ROUNDS_AHEAD);
            let (btx, brx) = sync_channel::<Batch>(ROUNDS_AHEAD);
            let (spare_tx, spare_rx) = sync_channel::<Vec<FrameTick>>(2 * ROUNDS_AHEAD);
            queues.push(WorkerQueues { batches: rx, ticks: ttx, batches_back: btx, ticks_back: spare_rx });
            senders.push(tx);
            ticks.push((trx, spare_tx));
            returned.push(brx);
        }
        let radio = Arc::new(Mutex::new(RadioStage::new(tap, ticks)));
        let kept =
            Arc::new(Mutex::new(KeptKeys { flows: vec![Vec::new(); workers], exchanges: vec![Vec::new(); workers] }));
        // (If one cannot start, the senders go and those started end.)
        let handles = queues
            .into_iter()
            .enumerate()
            .map(|(worker, q)| {
                let w = Worker::new(cfg, worker as u64, Some(kept.clone()));
                let radio = radio.clone();
                std::thread::Builder::new()
                    .spawn(move || run_worker(w, q, radio, worker as u64, workers as u64))
                    .map_err(|e| format!("cannot start {workers} analysis threads: {e}"))
            })
            .collect::<Result<_, _>>()?;
        let batches = (0..workers).map(|_| Batch::default()).collect();
        Ok(Dispatch::Threads {
            senders,
            batches,
            in_round: 0,
            round_bytes: 0,
            handles,
            returned,
            outside_ticks: Vec::new(),
            route: Vec::with_capacity(BATCH),
            radio,
        })
    }

    /// A frame that belongs to no flow (ICMP, ARP, broken...).
    fn outside(&mut self, t: FrameTick) {
        match self {
            Dispatch::Inline(_, radio) => radio.tick(&t),
            Dispatch::Threads { outside_ticks, route, senders, in_round, .. } => {
                outside_ticks.push(t);
                route.push(senders.len() as u32);
                // Counted in the round like any packet: a capture of nothing
                // but such frames must not pile up their ticks.
                *in_round += 1;
                if *in_round >= BATCH {
                    self.end_round();
                }
            }
        }
    }

    /// A TCP/UDP packet of one frame.
    fn frame(&mut self, idx: u64, ts_ns: i64, wire_len: u32, d: &Decoded) {
        self.packet(idx, ts_ns, wire_len, 1, 0, d);
    }

    /// A TCP/UDP datagram joined from IP fragments: its headers are those
    /// its fragments carried.
    fn joined(&mut self, idx: u64, ts_ns: i64, j: &decode::defrag::Joined, d: &Decoded) {
        let b = &j.bytes;
        let d = Decoded { link_len: b.link as u32, net_len: b.network as u32, ..*d };
        self.packet(idx, ts_ns, j.wire_len(), b.frames, b.repeated as u32, &d);
    }

    /// To the flow's worker: at once, or in the flow's share of the round.
    /// Always inlined: out of line, every packet paid for the call (8 M
    /// instructions on 500 k packets).
    #[inline(always)]
    fn packet(&mut self, idx: u64, ts_ns: i64, wire_len: u32, frames: u32, repeated: u32, d: &Decoded) {
        match self {
            Dispatch::Inline(w, radio) => {
                w.packet(idx, ts_ns, wire_len, d, frames, repeated);
                for t in w.out.ticks.drain(..) {
                    radio.tick(&t);
                }
            }
            Dispatch::Threads { batches, route, in_round, round_bytes, .. } => {
                let shard = shard_of(d, batches.len());
                if let Some(b) = batches.get_mut(shard) {
                    b.push(idx, ts_ns, wire_len, frames, repeated, d);
                    route.push(shard as u32);
                }
                *in_round += 1;
                *round_bytes += d.payload.len();
                if *in_round >= BATCH || *round_bytes >= ROUND_BYTES {
                    self.end_round();
                }
            }
        }
    }

    /// Sends every worker its share of the round, then feeds the radio
    /// model the rounds whose ticks are all back.
    fn end_round(&mut self) {
        let Dispatch::Threads {
            senders, batches, in_round, round_bytes, returned, outside_ticks, route, radio, ..
        } = self
        else {
            return;
        };
        for ((tx, b), back) in senders.iter().zip(batches.iter_mut()).zip(returned.iter()) {
            // Batches are reused: no allocation, no page faults per round.
            let next = back.try_recv().unwrap_or_default();
            // A worker that died has panicked; its join reports it.
            let _ = tx.send(std::mem::replace(b, next));
        }
        let route = std::mem::replace(route, Vec::with_capacity(BATCH));
        // Poisoned only if a worker panicked in it; its join reports that.
        if let Ok(mut r) = radio.lock() {
            r.pending.push_back((std::mem::take(outside_ticks), route));
            r.catch_up(false);
        }
        *in_round = 0;
        *round_bytes = 0;
    }

    /// Finishes every flow and the radio's input; an error if a thread died
    /// (a bug: it is said, never passed over).
    fn finish(mut self) -> Result<(Vec<Worker>, RadioTap), String> {
        if let Dispatch::Threads { in_round, outside_ticks, .. } = &self
            && (*in_round > 0 || !outside_ticks.is_empty())
        {
            self.end_round();
        }
        match self {
            Dispatch::Inline(mut w, mut radio) => {
                w.finish();
                for t in w.out.ticks.drain(..) {
                    radio.tick(&t);
                }
                Ok((vec![*w], *radio))
            }
            Dispatch::Threads { senders, handles, radio, .. } => {
                drop(senders);
                if let Ok(mut r) = radio.lock() {
                    r.catch_up(true);
                }
                let failed = |e: Box<dyn std::any::Any + Send>| {
                    let why =
                        e.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| e.downcast_ref::<String>().cloned());
                    format!("internal error: an analysis thread failed ({})", why.unwrap_or_else(|| "panic".into()))
                };
                let workers = handles.into_iter().map(|h| h.join().map_err(failed)).collect::<Result<Vec<_>, _>>()?;
                // Every worker has ended, so the stage is the reader's alone.
                let stage = Arc::try_unwrap(radio).ok().and_then(|m| m.into_inner().ok());
                let stage = stage.ok_or_else(|| "internal error: the radio stage is still shared".to_string())?;
                Ok((workers, stage.tap))
            }
        }
    }
}

/// `v` in the order of `key`. Records are large: their keys are sorted, and
/// each record moved once, not at every step of a sort.
fn sorted_by_key<T, K: Ord>(v: Vec<T>, key: impl Fn(&T) -> K) -> Vec<T> {
    let mut order: Vec<(K, usize)> = v.iter().enumerate().map(|(i, x)| (key(x), i)).collect();
    order.sort_by(|a, b| a.0.cmp(&b.0));
    let mut slots: Vec<Option<T>> = v.into_iter().map(Some).collect();
    order.into_iter().filter_map(|(_, i)| slots.get_mut(i).and_then(Option::take)).collect()
}

/// The first `max` items of `lists`, each sorted by `key`, in that order,
/// each with the number of its list. Items are moved once; those past `max`
/// are dropped unread.
fn merge_first<T, K: Ord>(lists: Vec<Vec<T>>, max: usize, key: impl Fn(usize, &T) -> K) -> Vec<(usize, T)> {
    let total = lists.iter().map(Vec::len).sum::<usize>();
    let mut heads: Vec<_> = lists.into_iter().map(|l| l.into_iter().peekable()).collect();
    let mut out = Vec::with_capacity(total.min(max));
    while out.len() < max {
        let mut best: Option<(usize, K)> = None;
        for (i, h) in heads.iter_mut().enumerate() {
            if let Some(x) = h.peek() {
                let k = key(i, x);
                if best.as_ref().is_none_or(|(_, b)| k < *b) {
                    best = Some((i, k));
                }
            }
        }
        let Some((i, _)) = best else { break };
        if let Some(x) = heads.get_mut(i).and_then(Iterator::next) {
            out.push((i, x));
        }
    }
    out
}

/// Feeds ticks from lists each sorted by packet to `radio` in packet order.
fn merge_ticks(lists: &[Vec<FrameTick>], radio: &mut dyn TickSink) {
    let mut heads = vec![0usize; lists.len()];
    loop {
        let mut best: Option<(usize, u64)> = None;
        for (i, l) in lists.iter().enumerate() {
            if let Some(t) = heads.get(i).and_then(|&h| l.get(h))
                && best.is_none_or(|(_, p)| t.packet < p)
            {
                best = Some((i, t.packet));
            }
        }
        let Some((i, _)) = best else { break };
        if let (Some(h), Some(l)) = (heads.get_mut(i), lists.get(i)) {
            if let Some(t) = l.get(*h) {
                radio.tick(t);
            }
            *h += 1;
        }
    }
}

/// Feeds a round's ticks to `radio` in packet order by following `route`:
/// packet by packet, the list that holds its tick (a worker's, or the
/// reader's own, last). Every packet makes exactly one tick, so this needs
/// no comparisons; a round whose lists do not match its route (a bug) is
/// refused before anything is fed (false), and merged by packet number.
fn follow_route(lists: &[Vec<FrameTick>], route: &[u32], heads: &mut Vec<usize>, radio: &mut dyn TickSink) -> bool {
    heads.clear();
    heads.resize(lists.len(), 0);
    for &r in route {
        match heads.get_mut(r as usize) {
            Some(n) => *n += 1,
            None => return false,
        }
    }
    if heads.iter().zip(lists).any(|(n, l)| *n != l.len()) {
        return false;
    }
    heads.iter_mut().for_each(|h| *h = 0);
    for &r in route {
        let (Some(h), Some(l)) = (heads.get_mut(r as usize), lists.get(r as usize)) else { continue };
        if let Some(t) = l.get(*h) {
            radio.tick(t);
        }
        *h += 1;
    }
    true
}

/// Each worker's ticks, and the way their emptied lists go back to it.
type TickQueues = (Receiver<Vec<FrameTick>>, SyncSender<Vec<FrameTick>>);

/// The radio model's input: each round's ticks from every worker, merged
/// with the reader's own back into packet order as soon as they are all
/// back. Fed by the reader after each round it sends, and by any worker
/// about to wait for work.
struct RadioStage {
    tap: RadioTap,
    ticks: Vec<TickQueues>,
    /// Rounds sent out and not fed yet, oldest first: the reader's own
    /// ticks of each and its route.
    pending: VecDeque<(Vec<FrameTick>, Vec<u32>)>,
    /// The oldest pending round's ticks received so far, worker by worker.
    lists: Vec<Vec<FrameTick>>,
    heads: Vec<usize>,
}

impl RadioStage {
    fn new(tap: RadioTap, ticks: Vec<TickQueues>) -> RadioStage {
        RadioStage { tap, ticks, pending: VecDeque::new(), lists: Vec::new(), heads: Vec::new() }
    }

    /// Feeds the radio model every round whose ticks are all back. With
    /// `wait` (the workers have been told to finish), waits for them all;
    /// else stops at the first worker not done with its share of a round.
    fn catch_up(&mut self, wait: bool) {
        while let Some((mine, route)) = self.pending.front_mut() {
            while let Some((rx, _)) = self.ticks.get(self.lists.len()) {
                let got = if wait { rx.recv().map_err(|_| TryRecvError::Disconnected) } else { rx.try_recv() };
                match got {
                    Ok(l) => self.lists.push(l),
                    Err(TryRecvError::Empty) => return,
                    // A worker that died sends nothing more; its join reports it.
                    Err(TryRecvError::Disconnected) => self.lists.push(Vec::new()),
                }
            }
            self.lists.push(std::mem::take(mine));
            if !follow_route(&self.lists, route, &mut self.heads, &mut self.tap) {
                merge_ticks(&self.lists, &mut self.tap);
            }
            self.lists.pop();
            // Lists are reused: a new one per round would be a fresh mapping
            // (they are past malloc's mmap threshold) and page faults.
            for ((_, back), mut l) in self.ticks.iter().zip(self.lists.drain(..)) {
                l.clear();
                let _ = back.try_send(l);
            }
            self.pending.pop_front();
        }
    }
}

/// What joins a worker to the reader and to the radio stage.
struct WorkerQueues {
    batches: Receiver<Batch>,
    ticks: SyncSender<Vec<FrameTick>>,
    batches_back: SyncSender<Batch>,
    ticks_back: Receiver<Vec<FrameTick>>,
}

fn run_worker(mut w: Worker, q: WorkerQueues, radio: Arc<Mutex<RadioStage>>, worker: u64, workers: u64) -> Worker {
    let tag = WorkerTag::new(workers);
    let next_batch = || match q.batches.try_recv() {
        Ok(b) => Some(b),
        Err(TryRecvError::Disconnected) => None,
        Err(TryRecvError::Empty) => {
            // Nothing to do: feed the radio model meanwhile, unless another
            // thread is at it.
            if let Ok(mut r) = radio.try_lock() {
                r.catch_up(false);
            }
            q.batches.recv().ok()
        }
    };
    while let Some(mut b) = next_batch() {
        for item in &b.items {
            let payload = b.data.get(item.at as usize..(item.at + item.len) as usize).unwrap_or(&[]);
            let d = Decoded { payload, ..item.head };
            w.packet(item.idx, item.ts_ns, item.wire_len, &d, item.frames, item.repeated);
        }
        for t in &mut w.out.ticks {
            t.flow = t.flow.map(|f| tag.tag(f, worker));
            t.exchange = t.exchange.map(|x| tag.tag(x, worker));
        }
        b.data.clear();
        b.items.clear();
        // The reader takes it back if it has room; else it is dropped.
        let _ = q.batches_back.try_send(b);
        let next = q.ticks_back.try_recv().unwrap_or_else(|_| Vec::with_capacity(BATCH / workers as usize));
        let t = std::mem::replace(&mut w.out.ticks, next);
        if q.ticks.send(t).is_err() {
            break;
        }
    }
    w.finish();
    w
}

/// Analyzes one capture file.
pub fn analyze_file(path: &Path, opts: &Options) -> Result<InputReport, ReadError> {
    let mut reader = CaptureReader::open(path)?;
    let workers = if opts.jobs > 1 { opts.jobs.saturating_mul(WORKERS_PER_CORE).min(MAX_WORKERS) } else { 1 };
    let tap = RadioTap {
        sim: opts.radio.as_ref().map(|(p, o)| RadioSim::new(p.clone(), o.clone())),
        flows: Renumber::new(opts.max_flows.max(1), workers as u64),
        exchanges: Renumber::new(opts.max_exchanges, workers as u64),
    };
    let limits =
        Limits { flow: opts.flow.clone(), max_flows: opts.max_flows.max(1), max_exchanges: opts.max_exchanges };
    let mut dispatch = Dispatch::new(&limits, workers, tap).map_err(|what| ReadError {
        input: path.to_path_buf(),
        record: 0,
        offset: 0,
        what,
    })?;
    let mut defrag = Defragmenter::default();
    let mut t = Totals::default();
    let mut outside = Ledger::default();
    let mut timeline = TimelineBuilder::default();
    let mut notes = Notes::default();
    let mut linktypes = LinktypeCounts::default();
    let mut first_ns = None;
    let mut last_ns = 0i64;
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);

    let result = reader.for_each(|p, offset| {
        let idx = t.frames;
        if idx % 65_536 == 0
            && let Some(cb) = &opts.progress
        {
            cb(path, offset, size);
        }
        t.frames += 1;
        t.wire_bytes += p.wire_len as u64;
        t.captured_bytes += p.data.len() as u64;
        linktypes.add(p.linktype);
        first_ns.get_or_insert(p.ts_ns);
        last_ns = last_ns.max(p.ts_ns);
        let lone =
            FrameTick { packet: idx, ts_ns: p.ts_ns, wire_len: p.wire_len, uplink: true, flow: None, exchange: None };
        let frame = match decode::decode(p.linktype, p.data, p.wire_len) {
            Frame::Ip(d) if !matches!(d.transport, Transport::Other(_)) => {
                dispatch.frame(idx, p.ts_ns, p.wire_len, &d);
                return;
            }
            other => other,
        };
        // A frame of no flow (or a fragment): its bytes are booked here.
        let outside_before = outside;
        match frame {
            Frame::Ip(d) => {
                notes.non_tcp_udp_packets += 1;
                outside.add(Class::Link, d.link_len as u64);
                outside.add(Class::Network, d.net_len as u64);
                dispatch.outside(lone);
            }
            Frame::Fragment { link_len, .. } => {
                notes.ip_fragments += 1;
                let ip = decode::link::strip(p.linktype, p.data).map(|(_, ip)| ip).unwrap_or(&[]);
                let joined = decode::ip_header(ip)
                    .and_then(|h| h.fragment.map(|fi| (h, fi)))
                    .and_then(|(h, fi)| defrag.add(p.ts_ns, &h, fi, ip, link_len));
                match joined {
                    Some(j) => match j.frame() {
                        Frame::Ip(d) if !matches!(d.transport, Transport::Other(_)) => {
                            dispatch.joined(idx, p.ts_ns, &j, &d)
                        }
                        _ => {
                            outside.add(Class::Link, j.bytes.link);
                            outside.add(Class::Network, j.bytes.network + j.bytes.data);
                            dispatch.outside(lone);
                        }
                    },
                    None => dispatch.outside(lone),
                }
            }
            Frame::NotIp { why } => {
                match why {
                    NotIp::UnsupportedLinktype(lt) => {
                        *notes.unsupported_linktypes.entry(decode::link::name(lt)).or_default() += 1
                    }
                    _ => notes.non_ip_frames += 1,
                }
                outside.add(Class::Link, p.wire_len as u64);
                dispatch.outside(lone);
            }
            Frame::Broken { link_len, why } => {
                *notes.broken_packets.entry(why.to_string()).or_default() += 1;
                outside.add(Class::Link, link_len as u64);
                outside.add(Class::Network, (p.wire_len - link_len) as u64);
                dispatch.outside(lone);
            }
        }
        timeline.add(p.ts_ns, &outside.since(&outside_before));
    });
    if let Some(cb) = &opts.progress {
        cb(path, size, size);
    }
    let (workers, mut tap) = match dispatch.finish() {
        Ok(w) => w,
        Err(what) => return Err(ReadError { input: path.to_path_buf(), record: t.frames, offset: size, what }),
    };
    defrag.finish();
    // Fragments of datagrams never completed: their headers, and their data as payload.
    let outside_before = outside;
    outside.add(Class::Link, defrag.abandoned.link);
    outside.add(Class::Network, defrag.abandoned.network);
    outside.add(Class::Payload, defrag.abandoned.data);
    timeline.add(last_ns, &outside.since(&outside_before));
    notes.abandoned_fragments = defrag.abandoned.frames as u64;

    if let Err(e) = &result {
        if t.frames == 0 {
            return Err(e.clone());
        }
        notes.read_error = Some(e.to_string());
    }

    // Put the workers' results in the order one worker would have made them:
    // each worker's lists come sorted, and only the first `max_*` of their
    // merge are listed, so the same flows and exchanges are listed (and
    // numbered) for any number of workers.
    let mut classes = outside;
    let mut stats = crate::dissect::ProtoStats::default();
    let (mut tcp_streams, mut udp_streams) = (0, 0);
    let (mut flows_total, mut exchanges_total) = (0u64, 0u64);
    let (mut flow_lists, mut exchange_lists, mut lookup_lists) = (Vec::new(), Vec::new(), Vec::new());
    for mut w in workers {
        classes.merge(&w.out.flow_ledger);
        timeline.merge(std::mem::take(&mut w.out.timeline));
        stats.merge(w.table.stats());
        tcp_streams += w.table.tcp_streams;
        notes.flows_evicted += w.table.evicted_flows;
        notes.exchanges_closed_early += w.table.exchanges_closed_early();
        udp_streams += w.table.udp_streams;
        flows_total += w.out.flows_total;
        notes.malformed_bytes += w.out.malformed_bytes;
        exchanges_total += w.out.exchanges_total + w.table.exchanges_unlisted();
        flow_lists.push(w.out.flows);
        exchange_lists.push(w.out.exchanges);
        lookup_lists.push(w.out.lookups);
    }
    let max_flows = opts.max_flows.max(1);
    let mut flows = merge_first(flow_lists, max_flows, |_, f| flow_order(f));
    let mut flow_ids: HashMap<(usize, u64), u64> = HashMap::with_capacity(flows.len());
    for (new, (wi, f)) in flows.iter_mut().enumerate() {
        flow_ids.insert((*wi, f.id), new as u64);
        f.id = new as u64;
    }
    let mut exchanges = merge_first(exchange_lists, opts.max_exchanges, |wi, x| exchange_order(wi as u64, x));
    let mut exchange_ids: HashMap<(usize, u64), u64> = HashMap::with_capacity(exchanges.len());
    for (new, (wi, x)) in exchanges.iter_mut().enumerate() {
        exchange_ids.insert((*wi, x.id), new as u64);
        x.id = new as u64;
        x.flow = flow_ids.get(&(*wi, x.flow)).copied().unwrap_or(UNLISTED_FLOW);
    }
    let lookups = merge_first(lookup_lists, MAX_LOOKUPS, |wi, l| (l.open_packet, wi, l.id));
    let lookups: Vec<Lookup> = lookups.into_iter().map(|(_, l)| l).collect();
    // Lookups are charged to listed flows only: which flows past the cap
    // one worker would have seen depends on the number of workers.
    attribute_dns_lookups(&mut flows, &mut exchanges, &lookups);
    notes.flows_omitted = flows_total.saturating_sub(flows.len() as u64);
    notes.exchanges_omitted = exchanges_total.saturating_sub(exchanges.len() as u64);
    let flows: Vec<FlowRecord> = flows.into_iter().map(|(_, f)| f).collect();
    let exchanges: Vec<Exchange> = exchanges.into_iter().map(|(_, x)| x).collect();

    t.classes = classes;
    t.duration_s = first_ns.map(|f| (last_ns - f) as f64 / 1e9).unwrap_or(0.0);
    t.start_ts = first_ns.map(|f| f as f64 / 1e9);
    t.goodput_ratio = classes.goodput_ratio();
    notes.inferred_bytes = t.wire_bytes.saturating_sub(t.captured_bytes);
    notes.format = reader.stats().format.to_string();
    notes.linktypes = linktypes.finish().into_iter().map(|(k, v)| (decode::link::name(k), v)).collect();
    notes.skipped_blocks = reader.stats().skipped_blocks + reader.stats().unknown_blocks;
    if classes.total() != t.wire_bytes {
        notes.conservation_error =
            Some(format!("classes add up to {} of {} wire bytes", classes.total(), t.wire_bytes));
    }
    let radio = tap.sim.take().map(|sim| {
        let mut r = sim.finish(t.duration_s);
        // Worker-local ids to report indices; entries past the listed ones go.
        let remap = |v: &mut Vec<crate::radio::sim::ShareReport>,
                     seq: &Renumber,
                     ids: &HashMap<(usize, u64), u64>,
                     max: usize| {
            v.retain_mut(|s| {
                let Some(&enc) = seq.ids.get(s.index as usize) else { return false };
                let (worker, local) = seq.tag.split(enc);
                let worker = worker as usize;
                match ids
                    .get(&(worker, local))
                    .filter(|&&id| (id as usize) < max)
                    .and_then(|&id| u32::try_from(id).ok())
                {
                    Some(id) => {
                        s.index = id;
                        true
                    }
                    None => false,
                }
            });
            v.sort_by_key(|s| s.index);
        };
        remap(&mut r.per_flow, &tap.flows, &flow_ids, max_flows);
        remap(&mut r.per_exchange, &tap.exchanges, &exchange_ids, opts.max_exchanges);
        r.cost = Some(crate::radio::cost(r.per_day.bytes as f64, &opts.cost));
        r
    });
    let findings = crate::findings::detect(&crate::findings::Input {
        flows: &flows,
        exchanges: &exchanges,
        tls: serde_json::to_value(&stats.tls).unwrap_or_default(),
        wire_bytes: t.wire_bytes,
        duration_s: t.duration_s,
        radio_per_day: radio.as_ref().map(|r| (r.per_day.charge_mah, r.per_day.bytes as f64)),
    });
    Ok(InputReport {
        input: path.display().to_string(),
        totals: t,
        tcp_streams,
        udp_streams,
        flows,
        stats,
        exchanges,
        notes,
        radio,
        findings,
        timeline: timeline.finish(),
    })
}

/// Frames per link type. Counted by runs, since a capture's link type
/// seldom changes: a map lookup per run, not per frame.
#[derive(Default)]
struct LinktypeCounts {
    counts: BTreeMap<u16, u64>,
    run: Option<(u16, u64)>,
}

impl LinktypeCounts {
    fn add(&mut self, linktype: u16) {
        match &mut self.run {
            Some((lt, n)) if *lt == linktype => *n += 1,
            run => {
                if let Some((lt, n)) = run.replace((linktype, 1)) {
                    *self.counts.entry(lt).or_default() += n;
                }
            }
        }
    }

    fn finish(mut self) -> BTreeMap<u16, u64> {
        if let Some((lt, n)) = self.run.take() {
            *self.counts.entry(lt).or_default() += n;
        }
        self.counts
    }
}

/// A DNS lookup is part of what the connection that follows it costs: the
/// first flow to an address a lookup resolved (within `LOOKUP_VALID_S`
/// after it) takes the lookup's bytes into its setup, shared evenly by its
/// exchanges. Flows, exchanges and lookups are in capture order; a lookup
/// counts whether or not the exchange list has room for it.
fn attribute_dns_lookups(
    flows: &mut [(usize, FlowRecord)],
    exchanges: &mut [(usize, Exchange)],
    all_lookups: &[Lookup],
) {
    const LOOKUP_VALID_S: f64 = 300.0;
    let mut lookups: HashMap<IpAddr, Vec<usize>> = HashMap::new();
    for (i, l) in all_lookups.iter().enumerate() {
        for a in &l.resolved {
            lookups.entry(*a).or_default().push(i);
        }
    }
    if lookups.is_empty() {
        return;
    }
    let mut claimed = vec![false; all_lookups.len()];
    let mut by_flow: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, (_, x)) in exchanges.iter().enumerate() {
        by_flow.entry(x.flow).or_default().push(i);
    }
    for (_, f) in flows.iter_mut().filter(|(_, f)| f.app != crate::vocab::Proto::Dns) {
        let Some(candidates) = lookups.get(&f.server.0.ip()) else { continue };
        // The latest lookup answered before the flow began, not used yet.
        let found = candidates.iter().rev().copied().find(|&i| {
            all_lookups.get(i).is_some_and(|l| {
                l.end_ts <= f.start_ts
                    && f.start_ts - l.end_ts <= LOOKUP_VALID_S
                    && !claimed.get(i).copied().unwrap_or(true)
            })
        });
        let Some(i) = found else { continue };
        if let Some(c) = claimed.get_mut(i) {
            *c = true;
        }
        let cost = all_lookups.get(i).map_or(0.0, |l| l.cost_bytes);
        f.dns_lookup_bytes = cost.round() as u64;
        let mine = by_flow.get(&f.id).map(Vec::as_slice).unwrap_or(&[]);
        for &j in mine {
            if let Some((_, x)) = exchanges.get_mut(j) {
                x.share_dns(cost, f.exchanges);
            }
        }
    }
}

/// Analyzes several files with `jobs` threads in all: several files at once
/// when there are enough of them, else each file's flows spread over the
/// threads. Results come back in the order of `files`.
pub fn analyze_all(files: &[PathBuf], opts: &Options, jobs: usize) -> Vec<Result<InputReport, ReadError>> {
    let jobs = jobs.max(1);
    if files.len() < 2 || jobs < 2 {
        let mut o = opts.clone();
        o.jobs = jobs;
        return files.iter().map(|f| analyze_file(f, &o)).collect();
    }
    let mut o = opts.clone();
    o.jobs = 1;
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<Result<InputReport, ReadError>>>> =
        files.iter().map(|_| std::sync::Mutex::new(None)).collect();
    let work = || {
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(f) = files.get(i) else { break };
            let r = analyze_file(f, &o);
            if let Some(slot) = results.get(i)
                && let Ok(mut g) = slot.lock()
            {
                *g = Some(r);
            }
        }
    };
    std::thread::scope(|s| {
        // The calling thread is one of them; a thread that cannot start
        // leaves its share to the others.
        for _ in 1..jobs.min(files.len()).min(MAX_WORKERS) {
            if std::thread::Builder::new().spawn_scoped(s, work).is_err() {
                break;
            }
        }
        work();
    });
    results
        .into_iter()
        .zip(files)
        .map(|(m, f)| {
            m.into_inner().ok().flatten().unwrap_or_else(|| {
                Err(ReadError { input: f.clone(), record: 0, offset: 0, what: "analysis thread failed".into() })
            })
        })
        .collect()
}

/// Expands directories into the capture files they hold (sorted).
pub fn expand_inputs(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(p)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|q| matches!(q.extension().and_then(|e| e.to_str()), Some("pcap" | "pcapng" | "cap")))
                .collect();
            v.sort();
            out.extend(v);
        } else {
            out.push(p.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{
        BATCH, Decoded, Dispatch, FlowConfig, FrameTick, Limits, ROUND_BYTES, RadioTap, Renumber, TickSink, Transport,
        WorkerTag, first_past, follow_route, merge_first, merge_ticks, next_cut, slack,
    };

    #[derive(Default)]
    struct Seen(Vec<u64>);

    impl TickSink for Seen {
        fn tick(&mut self, t: &FrameTick) {
            self.0.push(t.packet);
        }
    }

    fn ticks(packets: &[u64]) -> Vec<FrameTick> {
        packets
            .iter()
            .map(|&packet| FrameTick { packet, ts_ns: 0, wire_len: 0, uplink: true, flow: None, exchange: None })
            .collect()
    }

    #[test]
    fn a_route_gives_the_order_a_merge_by_packet_gives() {
        let lists = [ticks(&[0, 3, 4]), ticks(&[2, 6]), ticks(&[1, 5])];
        let mut by_route = Seen::default();
        assert!(follow_route(&lists, &[0, 2, 1, 0, 0, 2, 1], &mut Vec::new(), &mut by_route));
        let mut merged = Seen::default();
        merge_ticks(&lists, &mut merged);
        assert_eq!(by_route.0, vec![0, 1, 2, 3, 4, 5, 6]);
        assert_eq!(by_route.0, merged.0);
    }

    #[test]
    fn a_route_that_does_not_fit_its_lists_feeds_nothing() {
        let lists = [ticks(&[0, 2]), ticks(&[1])];
        for route in [&[0u32, 1][..], &[0, 1, 1], &[0, 1, 0, 0], &[0, 5, 0]] {
            let mut seen = Seen::default();
            assert!(!follow_route(&lists, route, &mut Vec::new(), &mut seen));
            assert!(seen.0.is_empty());
        }
    }

    #[test]
    fn worker_tags_split_back_into_worker_and_local_id() {
        for jobs in [1u64, 2, 3, 4, 7, 8, 64, 1000] {
            let tag = WorkerTag::new(jobs);
            for worker in 0..jobs.min(9) {
                for local in [0u64, 1, 2, 12_345, 1 << 40] {
                    assert_eq!(tag.split(tag.tag(local, worker)), (worker, local), "jobs {jobs}");
                }
            }
        }
        assert_eq!(WorkerTag::new(1).tag(77, 0), 77);
    }

    #[test]
    fn the_key_past_the_first_max_of_several_lists() {
        let lists = [vec![9u64, 1, 5], vec![3, 2], vec![]];
        assert_eq!(first_past(&lists, 3), Some(5));
        assert_eq!(first_past(&lists, 0), Some(1));
        assert_eq!(first_past(&lists, 4), Some(9));
        assert_eq!(first_past(&lists, 5), None);
    }

    #[test]
    fn lists_are_cut_again_a_quarter_longer_but_never_past_their_slack() {
        assert_eq!(next_cut(0, 10_000), 1024);
        assert_eq!(next_cut(4000, 10_000), 5000);
        assert_eq!(next_cut(12_000, 10_000), slack(10_000));
        assert_eq!(next_cut(0, 1), slack(1));
    }

    #[test]
    fn a_merge_takes_the_first_max_of_sorted_lists_with_their_list() {
        let lists = vec![vec![1u64, 4, 6], vec![2, 3, 7]];
        let m = merge_first(lists.clone(), 4, |_, &x| x);
        assert_eq!(m, vec![(0, 1), (1, 2), (1, 3), (0, 4)]);
        assert_eq!(merge_first(lists, 100, |_, &x| x).len(), 6);
    }

    /// Ids are numbered in order of first appearance, the first `max` only,
    /// however far apart they are: ids thousands apart (an MQTT segment of
    /// thousands of messages names one exchange) once took memory in
    /// proportion to the highest.
    #[test]
    fn renumbering_far_apart_ids_takes_memory_for_the_numbered_only() {
        let tag = WorkerTag::new(2);
        let mut r = Renumber::new(100, 2);
        for round in 0..2 {
            for i in 0..300u64 {
                let id = tag.tag(i * 10_000, i % 2);
                let want = if i < 100 { Some(i as u32) } else { None };
                assert_eq!(r.get(id), want, "id {i}, round {round}");
            }
        }
        assert_eq!(r.ids.len(), 100);
        assert!(r.seq.iter().all(|s| s.len() <= r.dense), "{:?}", r.seq.iter().map(Vec::len).collect::<Vec<_>>());
        assert!(!r.far.is_empty());
    }

    /// Four worker threads, with no radio model.
    fn four_workers() -> Result<Dispatch, String> {
        let limits = Limits { flow: FlowConfig::default(), max_flows: 10, max_exchanges: 10 };
        let tap = RadioTap { sim: None, flows: Renumber::new(10, 4), exchanges: Renumber::new(10, 4) };
        Dispatch::new(&limits, 4, tap)
    }

    /// Frames of no flow (ICMP, ARP...) count towards a round like any
    /// packet: a capture of nothing else once piled up all their ticks.
    #[test]
    fn frames_of_no_flow_end_rounds_too() -> Result<(), String> {
        let mut d = four_workers()?;
        for packet in 0..3 * BATCH as u64 + 5 {
            d.outside(FrameTick { packet, ts_ns: 0, wire_len: 60, uplink: true, flow: None, exchange: None });
            if let Dispatch::Threads { outside_ticks, route, .. } = &d {
                assert!(outside_ticks.len() <= BATCH && route.len() <= BATCH);
            }
        }
        d.finish().map(|_| ())
    }

    /// A round ends at `ROUND_BYTES` of payload too: with 64 KB frames
    /// (TSO/GRO captures) a round of `BATCH` packets once held 256 MB.
    #[test]
    fn rounds_of_large_frames_end_at_their_byte_budget() -> Result<(), String> {
        let mut d = four_workers()?;
        let payload = vec![0u8; 60_000];
        let frame = Decoded {
            src: [10, 0, 0, 1].into(),
            dst: [10, 0, 0, 2].into(),
            sport: 40_000,
            dport: 9,
            transport: Transport::Udp,
            link_len: 14,
            net_len: 20,
            transport_len: 8,
            payload_len: 60_000,
            payload: &payload,
        };
        for packet in 0..200 {
            d.frame(packet, packet as i64, 60_042, &frame);
            if let Dispatch::Threads { batches, .. } = &d {
                let held: usize = batches.iter().map(|b| b.data.len()).sum();
                assert!(held < ROUND_BYTES + payload.len(), "{held} bytes in a round");
            }
        }
        d.finish().map(|_| ())
    }
}
