//! Packets to workers: inline, or in rounds to worker threads whose frame
//! ticks are merged back into packet order for the radio model.

use super::batch::Batch;
use super::collect::*;
use super::devices::FlowTally;
use super::renumber::*;
use crate::decode::{self, Decoded};
use crate::findings::stream::Fact;
use crate::flow::{FlowConfig, FlowTable, FrameTick};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{
    Receiver, RecvTimeoutError, Sender, SyncSender, TryRecvError, TrySendError, channel, sync_channel,
};
use std::sync::{Arc, Mutex};

/// A flow table and what it finished.
#[derive(Clone)]
pub(super) struct Worker {
    pub(super) table: FlowTable,
    pub(super) out: Collector,
}

impl Worker {
    pub(super) fn new(limits: &Limits, worker: u64, kept: Option<Arc<Mutex<KeptKeys>>>) -> Worker {
        Worker { table: FlowTable::new(limits.flow.clone()), out: Collector::new(limits, worker, kept) }
    }

    pub(super) fn packet(&mut self, idx: u64, ts_ns: i64, wire_len: u32, d: &Decoded, frames: u32, repeated: u32) {
        self.table.expire(ts_ns, &mut self.out);
        self.table.packet(idx, ts_ns, wire_len, d, frames, repeated, &mut self.out);
    }

    pub(super) fn finish(&mut self) {
        self.table.finish_all(&mut self.out);
        self.out.list_in_order();
        self.out.share_setup();
    }

    /// A finished copy: what `finish` would give now. The copy tells the
    /// other workers nothing of its lists (they would take its keys for the
    /// original's).
    pub(super) fn finished_copy(&self) -> Worker {
        let mut copy = self.clone();
        copy.out.kept = None;
        copy.finish();
        copy
    }
}

/// What a worker needs to know.
#[derive(Clone)]
pub(super) struct Limits {
    pub(super) flow: FlowConfig,
    pub(super) max_flows: usize,
    pub(super) max_exchanges: usize,
    /// The detectors' thresholds, for the state they keep as facts come.
    pub(super) findings: crate::findings::Thresholds,
}

/// Packets in a round. Each round costs every thread a hand-over, and the
/// radio stage a merge, and every round in flight memory (its packets,
/// their ticks). On the 256 MB bench capture at `--jobs 2`: rounds of 16 k
/// packets, 2 MB and 4 ahead took 7% less time than rounds of 4 k (1 MB,
/// 8 ahead) when the radio stage was light; with a radio model per device
/// they peaked at 150 MB, rounds of 8 k, 1 MB and 2 ahead at 126 MB in
/// about the same time, rounds of 4 k (512 kB) at 120 MB and 5% slower.
pub(super) const BATCH: usize = 8_192;

/// Most payload bytes in a round (give or take a packet): with large frames
/// (captures of TSO/GRO traffic carry 64 KB ones) a round of `BATCH` would
/// hold a GB. Typical rounds hold 0.5 to 1 MB.
pub(super) const ROUND_BYTES: usize = 1 << 20;

/// Packets handed out in rounds: in each round every worker gets its share
/// (maybe none) and hands back its frame ticks, which the radio stage
/// merges with the reader's own ticks of the round back into packet order.
/// The reader and the workers each run on their own thread, joined only by
/// bounded queues; the radio stage runs on whichever of them is free.
pub(super) enum Dispatch {
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
        facts: Arc<Mutex<FactStage>>,
        /// The reader's own ticks and the route of each round sent, to the
        /// radio stage; and the count of rounds sent, to the fact stage:
        /// outside their locks, so the reader never waits for a stage that
        /// another thread is feeding.
        rounds: Sender<ReaderRound>,
        rounds_sent: Arc<AtomicU64>,
    },
}

/// Rounds a worker may queue; its ticks and facts may wait for the stages
/// for twice as many (`send_or_feed`, not the depth, keeps threads from
/// waiting in a cycle; as deep as the batch queue, they were no faster and
/// no smaller). Measured with `BATCH`: 4 ahead, 10 MB more at the peak and
/// no faster; 1 ahead, 5 MB less but 2.4% slower.
pub(super) const ROUNDS_AHEAD: usize = 2;

/// Worker threads per core. Flows are not spread evenly over time: for
/// stretches of a capture one worker's share is busier, and with one worker
/// a core the other core then waits. With several a core, the system runs
/// the busy ones on every core (two a core: 6% less time than one; three:
/// 5% less again; four: no better than two).
pub const WORKERS_PER_CORE: usize = 3;

/// Most worker threads for one input (128 cores' worth), and most inputs
/// analysed at once, whatever `--jobs` says: threads past the cores only
/// cost memory.
pub(super) const MAX_WORKERS: usize = 128 * WORKERS_PER_CORE;

pub(super) fn shard_of(d: &Decoded, n: usize) -> usize {
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
pub(super) fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Dispatch {
    /// An error if the worker threads cannot be started.
    pub(super) fn new(cfg: &Limits, workers: usize, tap: RadioTap) -> Result<Dispatch, String> {
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
        let mut facts = Vec::new();
        for _ in 0..workers {
            let (tx, rx) = sync_channel::<Batch>(ROUNDS_AHEAD);
            let (ttx, trx) = sync_channel::<TickRound>(2 * ROUNDS_AHEAD);
            let (btx, brx) = sync_channel::<Batch>(ROUNDS_AHEAD);
            let (spare_tx, spare_rx) = sync_channel::<TickRound>(2 * ROUNDS_AHEAD);
            // One more than the ticks: a round's facts go first.
            let (ftx, frx) = sync_channel::<Vec<Fact>>(2 * ROUNDS_AHEAD + 1);
            queues.push(WorkerQueues { batches: rx, ticks: ttx, batches_back: btx, ticks_back: spare_rx, facts: ftx });
            senders.push(tx);
            ticks.push((trx, spare_tx));
            returned.push(brx);
            facts.push(frx);
        }
        let (rounds, rounds_rx) = channel();
        let rounds_sent = Arc::new(AtomicU64::new(0));
        let radio = Arc::new(Mutex::new(RadioStage::new(tap, ticks, rounds_rx)));
        let facts = Arc::new(Mutex::new(FactStage::new(facts, rounds_sent.clone(), &cfg.findings)));
        let kept =
            Arc::new(Mutex::new(KeptKeys { flows: vec![Vec::new(); workers], exchanges: vec![Vec::new(); workers] }));
        // (If one cannot start, the senders go and those started end.)
        let handles = queues
            .into_iter()
            .enumerate()
            .map(|(worker, q)| {
                let w = Worker::new(cfg, worker as u64, Some(kept.clone()));
                let stages = (radio.clone(), facts.clone());
                std::thread::Builder::new()
                    .spawn(move || run_worker(w, q, stages, worker as u64, workers as u64))
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
            facts,
            rounds,
            rounds_sent,
        })
    }

    /// A frame that belongs to no flow (ICMP, ARP, broken...).
    pub(super) fn outside(&mut self, t: FrameTick) {
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
    #[inline(always)]
    pub(super) fn frame(&mut self, idx: u64, ts_ns: i64, wire_len: u32, d: &Decoded) {
        self.packet(idx, ts_ns, wire_len, 1, 0, d);
    }

    /// A TCP/UDP datagram joined from IP fragments: its headers are those
    /// its fragments carried.
    pub(super) fn joined(&mut self, idx: u64, ts_ns: i64, j: &decode::defrag::Joined, d: &Decoded) {
        let b = &j.bytes;
        let d = if d.link_len > 0 {
            // A tunnel's inner packet: the fragments' IP headers are outside it, so link.
            Decoded { link_len: (b.link + b.network) as u32 + d.link_len, ..*d }
        } else {
            Decoded { link_len: b.link as u32, net_len: b.network as u32, ..*d }
        };
        self.packet(idx, ts_ns, j.wire_len(), b.frames, b.repeated as u32, &d);
    }

    /// To the flow's worker: at once, or in the flow's share of the round.
    /// Always inlined: out of line, every packet paid for the call (8 M
    /// instructions on 500 k packets).
    #[inline(always)]
    pub(super) fn packet(&mut self, idx: u64, ts_ns: i64, wire_len: u32, frames: u32, repeated: u32, d: &Decoded) {
        match self {
            Dispatch::Inline(w, radio) => {
                w.packet(idx, ts_ns, wire_len, d, frames, repeated);
                radio.take(&mut w.out.ticks, &mut w.out.tallies);
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
    /// model the rounds whose ticks are all back, and the detectors those
    /// whose facts are, unless another thread is feeding them: the reader
    /// waits for a stage only when a worker's queue is full (then the
    /// stages may be what that worker waits for).
    pub(super) fn end_round(&mut self) {
        let Dispatch::Threads {
            senders,
            batches,
            in_round,
            round_bytes,
            returned,
            outside_ticks,
            route,
            radio,
            facts,
            rounds,
            rounds_sent,
            ..
        } = self
        else {
            return;
        };
        for ((tx, b), back) in senders.iter().zip(batches.iter_mut()).zip(returned.iter()) {
            // A worker that died has panicked; its join reports it.
            let _ = send_or_feed(tx, std::mem::take(b), radio, facts);
            // Batches are reused: no allocation, no page faults per round.
            // Taken back after the send: one that waited for the worker
            // finds the batch it has just emptied.
            if let Ok(next) = back.try_recv() {
                *b = next;
            }
        }
        let route = std::mem::replace(route, Vec::with_capacity(BATCH));
        // The stages hold the receivers until the reader is done with them.
        let _ = rounds.send((std::mem::take(outside_ticks), route));
        rounds_sent.fetch_add(1, Ordering::Release);
        let _ = feed_unless_busy(radio, facts);
        *in_round = 0;
        *round_bytes = 0;
    }

    /// Ends the flows idle at `now_ns`.
    pub(super) fn advance(&mut self, now_ns: i64) {
        match self {
            Dispatch::Inline(w, radio) => {
                w.table.expire(now_ns, &mut w.out);
                radio.take(&mut w.out.ticks, &mut w.out.tallies);
            }
            Dispatch::Threads { batches, .. } => {
                for b in batches.iter_mut() {
                    b.expire_at = Some(now_ns);
                }
                self.end_round();
            }
        }
    }

    /// Finished copies of the workers and of the radio's input, as `finish`
    /// would give them now; the originals go on. An error if a thread died.
    pub(super) fn snapshot(&mut self) -> Result<(Vec<Worker>, RadioTap), String> {
        match self {
            Dispatch::Inline(w, radio) => {
                let mut copy = w.finished_copy();
                let mut tap = (**radio).clone();
                tap.take(&mut copy.out.ticks, &mut copy.out.tallies);
                Ok((vec![copy], tap))
            }
            Dispatch::Threads { batches, .. } => {
                let mut replies = Vec::with_capacity(batches.len());
                for b in batches.iter_mut() {
                    let (tx, rx) = sync_channel(1);
                    b.reply = Some(tx);
                    replies.push(rx);
                }
                self.end_round();
                let Dispatch::Threads { radio, facts, .. } = self else {
                    return Err("internal error: no workers".into());
                };
                // Every round sent is fed to the radio and the detectors
                // first: a worker never waits for them while its copy is
                // awaited.
                let failed = || "internal error: an analysis thread failed".to_string();
                feed_everything(radio, facts);
                let mut tap = match radio.lock() {
                    Ok(r) => r.tap.clone(),
                    Err(_) => return Err(failed()),
                };
                match facts.lock() {
                    Ok(f) => tap.streams = f.streams.clone(),
                    Err(_) => return Err(failed()),
                }
                let workers =
                    replies.into_iter().map(|rx| rx.recv().map_err(|_| failed())).collect::<Result<Vec<_>, _>>()?;
                Ok((workers, tap))
            }
        }
    }

    /// Waits until every packet handed out so far has been through its
    /// worker, so that what the capture itself tells from here on (its
    /// secrets) reaches the same packets for any number of jobs. Rare (a
    /// capture's secrets blocks), so its cost does not matter.
    pub(super) fn settle(&mut self) {
        if let Dispatch::Threads { in_round, outside_ticks, .. } = self
            && (*in_round > 0 || !outside_ticks.is_empty())
        {
            self.end_round();
        }
        if let Dispatch::Threads { radio, facts, .. } = self {
            feed_everything(radio, facts);
        }
    }

    /// Finishes every flow and the radio's input; an error if a thread died
    /// (a bug: it is said, never passed over).
    pub(super) fn finish(mut self) -> Result<(Vec<Worker>, RadioTap), String> {
        if let Dispatch::Threads { in_round, outside_ticks, .. } = &self
            && (*in_round > 0 || !outside_ticks.is_empty())
        {
            self.end_round();
        }
        match self {
            Dispatch::Inline(mut w, mut radio) => {
                w.finish();
                radio.take(&mut w.out.ticks, &mut w.out.tallies);
                Ok((vec![*w], *radio))
            }
            Dispatch::Threads { senders, handles, radio, facts, .. } => {
                drop(senders);
                feed_everything(&radio, &facts);
                let failed = |e: Box<dyn std::any::Any + Send>| {
                    let why =
                        e.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| e.downcast_ref::<String>().cloned());
                    format!("internal error: an analysis thread failed ({})", why.unwrap_or_else(|| "panic".into()))
                };
                let workers = handles.into_iter().map(|h| h.join().map_err(failed)).collect::<Result<Vec<_>, _>>()?;
                // Every worker has ended, so the stage is the reader's alone.
                let stage = Arc::try_unwrap(radio).ok().and_then(|m| m.into_inner().ok());
                let stage = stage.ok_or_else(|| "internal error: the radio stage is still shared".to_string())?;
                let facts = Arc::try_unwrap(facts).ok().and_then(|m| m.into_inner().ok());
                let facts = facts.ok_or_else(|| "internal error: the detectors' stage is still shared".to_string())?;
                let mut tap = stage.tap;
                tap.streams = facts.streams;
                Ok((workers, tap))
            }
        }
    }
}

/// Sends `item`; if its queue is full, feeds both stages first, then waits
/// for room. The queue may be waiting for a stage (a worker's ticks and
/// facts always are, the reader's batches through the worker), and
/// threads that feed both before they wait never wait in a cycle: the
/// stages are fed by whoever is free, not by one thread each, and no
/// thread waits for anything while it holds a stage's lock. False if the
/// receiver is gone.
fn send_or_feed<T>(tx: &SyncSender<T>, item: T, radio: &Mutex<RadioStage>, facts: &Mutex<FactStage>) -> bool {
    match tx.try_send(item) {
        Ok(()) => true,
        Err(TrySendError::Full(item)) => {
            feed_all(radio, facts);
            tx.send(item).is_ok()
        }
        Err(TrySendError::Disconnected(_)) => false,
    }
}

/// Feeds both stages every round sent whose workers' share is back, taking
/// their locks; true if every round sent has been fed to both. (A lock is
/// poisoned only if a worker panicked holding it; its join reports that.)
fn feed_all(radio: &Mutex<RadioStage>, facts: &Mutex<FactStage>) -> bool {
    let radio_done = radio.lock().map(|mut r| r.catch_up()).unwrap_or(true);
    let facts_done = facts.lock().map(|mut f| f.catch_up()).unwrap_or(true);
    radio_done && facts_done
}

/// Feeds each stage whose lock no other thread holds (that thread is
/// feeding it); false if either was held.
fn feed_unless_busy(radio: &Mutex<RadioStage>, facts: &Mutex<FactStage>) -> bool {
    let radio_fed = radio.try_lock().map(|mut r| r.catch_up()).is_ok();
    let facts_fed = facts.try_lock().map(|mut f| f.catch_up()).is_ok();
    radio_fed && facts_fed
}

/// How often a thread waiting for the last rounds looks whether they are in.
const LAST_ROUNDS_LOOK: std::time::Duration = std::time::Duration::from_micros(100);

/// Feeds both stages every round sent, as the workers hand back their
/// share of each. Never waits holding a lock: a worker may need one to
/// hand its share back (`send_or_feed`).
fn feed_everything(radio: &Mutex<RadioStage>, facts: &Mutex<FactStage>) {
    while !feed_all(radio, facts) {
        std::thread::sleep(LAST_ROUNDS_LOOK);
    }
}

/// Feeds ticks from lists each sorted by packet to `radio` in packet order.
pub(super) fn merge_ticks(lists: &[Vec<FrameTick>], radio: &mut dyn TickSink) {
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
pub(super) fn follow_route(
    lists: &[Vec<FrameTick>],
    route: &[u32],
    heads: &mut Vec<usize>,
    radio: &mut dyn TickSink,
) -> bool {
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

/// A worker's round for the radio stage: its frames' ticks, and the
/// tallies of the flows it finished.
pub(super) type TickRound = (Vec<FrameTick>, Vec<FlowTally>);

/// The reader's part of a round for the radio stage: its own ticks (frames
/// of no flow) and the round's route.
pub(super) type ReaderRound = (Vec<FrameTick>, Vec<u32>);

/// Each worker's rounds, and the way their emptied lists go back to it.
pub(super) type TickQueues = (Receiver<TickRound>, SyncSender<TickRound>);

/// The radio model's input: each round's ticks from every worker, merged
/// with the reader's own back into packet order as soon as they are all
/// back, then the round's flow tallies worker by worker. Fed by whichever
/// thread is free: the reader after each round it sends, a worker after
/// each share of a round it hands back (the last one completes the round)
/// and before it waits for work, any thread before it waits for room in a
/// queue (`send_or_feed`).
pub(super) struct RadioStage {
    pub(super) tap: RadioTap,
    pub(super) ticks: Vec<TickQueues>,
    /// Rounds sent out, from the reader: its own ticks of each and its
    /// route, oldest first.
    rounds: Receiver<ReaderRound>,
    /// The oldest round not fed yet, once taken from `rounds`.
    current: Option<ReaderRound>,
    /// Its ticks and tallies received so far, worker by worker.
    pub(super) lists: Vec<Vec<FrameTick>>,
    pub(super) tallies: Vec<Vec<FlowTally>>,
    pub(super) heads: Vec<usize>,
}

impl RadioStage {
    pub(super) fn new(tap: RadioTap, ticks: Vec<TickQueues>, rounds: Receiver<ReaderRound>) -> RadioStage {
        RadioStage { tap, ticks, rounds, current: None, lists: Vec::new(), tallies: Vec::new(), heads: Vec::new() }
    }

    /// Feeds the radio model every round whose ticks are all back,
    /// stopping at the first worker not done with its share of a round;
    /// true if every round sent has been fed.
    pub(super) fn catch_up(&mut self) -> bool {
        loop {
            if self.current.is_none() {
                self.current = self.rounds.try_recv().ok();
            }
            let Some((mine, route)) = self.current.as_mut() else { return true };
            while let Some((rx, _)) = self.ticks.get(self.lists.len()) {
                match rx.try_recv() {
                    Ok((l, t)) => {
                        self.lists.push(l);
                        self.tallies.push(t);
                    }
                    Err(TryRecvError::Empty) => return false,
                    // A worker that died sends nothing more; its join reports it.
                    Err(TryRecvError::Disconnected) => {
                        self.lists.push(Vec::new());
                        self.tallies.push(Vec::new());
                    }
                }
            }
            self.lists.push(std::mem::take(mine));
            if !follow_route(&self.lists, route, &mut self.heads, &mut self.tap) {
                merge_ticks(&self.lists, &mut self.tap);
            }
            self.lists.pop();
            for f in self.tallies.iter().flatten() {
                self.tap.tally(f);
            }
            // Lists are reused: a new one per round would be a fresh mapping
            // (they are past malloc's mmap threshold) and page faults.
            for ((_, back), (mut l, mut t)) in self.ticks.iter().zip(self.lists.drain(..).zip(self.tallies.drain(..))) {
                l.clear();
                t.clear();
                let _ = back.try_send((l, t));
            }
            self.current = None;
        }
    }
}

/// The detectors' input: each worker's facts, a list a round, taken round
/// by round and worker by worker (the same order for any timing). Apart
/// from the radio stage, behind a lock of its own, so that two threads can
/// feed the two at once: each is a stream that must be taken in order, and
/// at two jobs neither should wait for the other.
pub(super) struct FactStage {
    pub(super) streams: crate::findings::Streams,
    facts: Vec<Receiver<Vec<Fact>>>,
    /// Rounds sent out (counted by the reader) and taken in.
    sent: Arc<AtomicU64>,
    taken: u64,
    /// Workers whose facts of the oldest round not taken are in.
    next: usize,
}

impl FactStage {
    pub(super) fn new(
        facts: Vec<Receiver<Vec<Fact>>>,
        sent: Arc<AtomicU64>,
        thresholds: &crate::findings::Thresholds,
    ) -> FactStage {
        FactStage { streams: crate::findings::Streams::new(thresholds), facts, sent, taken: 0, next: 0 }
    }

    /// Takes in every round whose facts are all in; true if every round
    /// sent has been taken in.
    pub(super) fn catch_up(&mut self) -> bool {
        let sent = self.sent.load(Ordering::Acquire);
        while self.taken < sent {
            while let Some(rx) = self.facts.get(self.next) {
                match rx.try_recv() {
                    Ok(facts) => {
                        for f in &facts {
                            self.streams.fact(f);
                        }
                    }
                    Err(TryRecvError::Empty) => return false,
                    // A worker that died sends nothing more; its join reports it.
                    Err(TryRecvError::Disconnected) => {}
                }
                self.next += 1;
            }
            self.next = 0;
            self.taken += 1;
        }
        true
    }
}

/// How often an idle worker looks again whether the stages have work.
const IDLE_LOOK: std::time::Duration = std::time::Duration::from_millis(2);

/// What joins a worker to the reader and to the radio stage.
pub(super) struct WorkerQueues {
    pub(super) batches: Receiver<Batch>,
    pub(super) ticks: SyncSender<TickRound>,
    pub(super) batches_back: SyncSender<Batch>,
    pub(super) ticks_back: Receiver<TickRound>,
    pub(super) facts: SyncSender<Vec<Fact>>,
}

pub(super) fn run_worker(
    mut w: Worker,
    q: WorkerQueues,
    (radio, facts): (Arc<Mutex<RadioStage>>, Arc<Mutex<FactStage>>),
    worker: u64,
    workers: u64,
) -> Worker {
    let tag = WorkerTag::new(workers);
    let next_batch = || match q.batches.try_recv() {
        Ok(b) => Some(b),
        Err(TryRecvError::Disconnected) => None,
        Err(TryRecvError::Empty) => loop {
            // Nothing to do: feed the radio model and the detectors
            // meanwhile, unless another thread is at it.
            if feed_unless_busy(&radio, &facts) {
                break q.batches.recv().ok();
            }
            // A stage another thread was feeding may get work after that
            // thread looked: if every thread then waited for work, none
            // would feed it. So look again soon.
            match q.batches.recv_timeout(IDLE_LOOK) {
                Ok(b) => break Some(b),
                Err(RecvTimeoutError::Disconnected) => break None,
                Err(RecvTimeoutError::Timeout) => {}
            }
        },
    };
    while let Some(mut b) = next_batch() {
        for p in b.packets() {
            w.packet(p.idx, p.ts_ns, p.wire_len, &p.d, p.frames, p.repeated);
        }
        for t in &mut w.out.ticks {
            t.map_ids(|id| tag.tag(id, worker));
        }
        if let Some(now) = b.expire_at.take() {
            w.table.expire(now, &mut w.out);
        }
        let reply = b.reply.take();
        b.clear();
        // The reader takes it back if it has room; else it is dropped.
        let _ = q.batches_back.try_send(b);
        let (next, next_tallies) =
            q.ticks_back.try_recv().unwrap_or_else(|_| (Vec::with_capacity(BATCH / workers as usize), Vec::new()));
        let t = (std::mem::replace(&mut w.out.ticks, next), std::mem::replace(&mut w.out.tallies, next_tallies));
        let shipped = w.out.ship.as_mut().map(std::mem::take).unwrap_or_default();
        if !send_or_feed(&q.facts, shipped, &radio, &facts) || !send_or_feed(&q.ticks, t, &radio, &facts) {
            break;
        }
        // The last worker of a round feeds it on at once, unless another
        // thread is feeding the stage: the round's ticks wait for no one.
        let _ = feed_unless_busy(&radio, &facts);
        if let Some(reply) = reply {
            let _ = reply.send(w.finished_copy());
        }
    }
    w.finish();
    w
}
