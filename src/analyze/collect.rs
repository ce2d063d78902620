//! What a worker keeps of the flows and exchanges its flow table finishes:
//! the first in capture order for the report's lists, every one counted.

use super::assemble::*;
use super::dispatch::*;
use crate::findings::stream::Fact;
use crate::flow::{FlowRecord, FlowSink, FrameTick};
use crate::ledger::exchange::ExchangeFacts;
use crate::ledger::{Exchange, Ledger, setup_share};
use crate::report::summary::{ExchangeFigures, ExchangeSummaries};
use foldhash::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

/// Collects what one worker's flow table finishes, keeping the first
/// `max_*` flows and exchanges in capture order (memory stays bounded).
#[derive(Clone, Default)]
pub(super) struct Collector {
    pub(super) flows: Vec<FlowRecord>,
    pub(super) exchanges: Vec<Exchange>,
    pub(super) flows_total: u64,
    pub(super) exchanges_total: u64,
    /// Of every flow, listed or not.
    pub(super) malformed_bytes: u64,
    pub(super) max_flows: usize,
    pub(super) max_exchanges: usize,
    pub(super) flow_ledger: Ledger,
    /// Every exchange, listed or not, summarised by kind.
    pub(super) summaries: ExchangeSummaries,
    pub(super) ticks: Vec<FrameTick>,
    /// Exchanges kept per flow, and (setup bytes, exchanges) of the finished
    /// flows that have some kept: what their setup shares are made of.
    pub(super) kept_per_flow: HashMap<u64, usize>,
    pub(super) flow_setup: HashMap<u64, (u64, u64)>,
    /// Every DNS lookup (the first `MAX_LOOKUPS`), listed or not: a lookup
    /// is charged to the connection after it whatever the lists' caps.
    pub(super) lookups: Vec<Lookup>,
    /// The flows those lookups belong to, whose setup their cost shares.
    pub(super) lookup_flows: HashSet<u64>,
    /// Once the lists have been cut: the first key that cannot be listed.
    /// Flows and exchanges come roughly in capture order, so once the lists
    /// are full nearly everything is counted and dropped at once.
    pub(super) exchange_cutoff: Option<(u64, u64, u64)>,
    pub(super) flow_cutoff: Option<u64>,
    /// This worker's number, and what it tells the others of its lists
    /// (none when it works alone).
    pub(super) worker: u64,
    pub(super) kept: Option<Arc<Mutex<KeptKeys>>>,
    /// The list lengths at which the lists are cut next.
    pub(super) next_flow_cut: usize,
    pub(super) next_exchange_cut: usize,
    /// The findings' aggregates over every flow and exchange.
    pub(super) streams: crate::findings::Streams,
    /// With workers on threads: what the detectors are told, shipped to the
    /// fact stage each round (one detector state, not one a worker).
    pub(super) ship: Option<Vec<Fact>>,
    /// What the flows finished since the radio stage last took them leave
    /// their devices' tallies: taken after the frames' ticks.
    pub(super) tallies: Vec<super::devices::FlowTally>,
    /// Every flow's classes by application protocol.
    pub(super) apps: crate::report::breakdown::AppLedgers,
}

/// The keys of the flows and exchanges each worker keeps, as it last told
/// them. The first `max` keys of them all bound what can be listed, so each
/// worker drops what the others' lists prove cannot be: without it every
/// worker would keep `max` of each list, and memory would grow with the
/// number of workers. (Keys a worker has dropped since are still keys of
/// real flows and exchanges, so an old list proves as much as a new one.)
pub(super) struct KeptKeys {
    pub(super) flows: Vec<Vec<u64>>,
    pub(super) exchanges: Vec<Vec<(u64, u64, u64)>>,
}

/// The key past the first `max` of `lists` (keys are unique), if there are
/// more than `max`.
pub(super) fn first_past<K: Ord + Copy>(lists: &[Vec<K>], max: usize) -> Option<K> {
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
pub(super) fn cut_list<T, K: Ord + Copy>(
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
pub(super) fn tell_and_bound<K: Ord + Copy>(
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
pub(super) fn next_cut(len: usize, max: usize) -> usize {
    (len + len / 4).max(1024).min(slack(max))
}

impl Collector {
    pub(super) fn new(limits: &Limits, worker: u64, kept: Option<Arc<Mutex<KeptKeys>>>) -> Collector {
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
            ship: kept.is_some().then(Vec::new),
            kept,
            streams: crate::findings::Streams::new(&limits.findings),
            ..Default::default()
        }
    }

    /// Cuts the flow list to what can still be listed.
    pub(super) fn cut_flows(&mut self) {
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
    pub(super) fn cut_exchanges(&mut self) {
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
    pub(super) fn list_in_order(&mut self) {
        let w = self.worker;
        first_in_order(&mut self.flows, self.max_flows, flow_order);
        first_in_order(&mut self.exchanges, self.max_exchanges, |x| exchange_order(w, x));
        first_in_order(&mut self.lookups, MAX_LOOKUPS, lookup_order);
    }

    /// Forgets the setup of flows that neither a kept exchange nor a kept
    /// lookup shares.
    pub(super) fn prune_flow_setup(&mut self) {
        let (kept, lookup_flows) = (&self.kept_per_flow, &self.lookup_flows);
        self.flow_setup.retain(|f, _| kept.contains_key(f) || lookup_flows.contains(f));
    }

    /// Gives every kept exchange and lookup its share of its flow's setup.
    pub(super) fn share_setup(&mut self) {
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
pub(super) fn keep_first<T, K: Ord>(v: &mut Vec<T>, max: usize, key: impl Fn(&T) -> K) -> Option<K> {
    if v.len() <= max {
        return None;
    }
    v.select_nth_unstable_by_key(max, &key);
    let first_dropped = v.get(max).map(&key);
    v.truncate(max);
    first_dropped
}

/// The first `max` of `v` in the order of `key`, sorted.
pub(super) fn first_in_order<T, K: Ord>(v: &mut Vec<T>, max: usize, key: impl Fn(&T) -> K) {
    keep_first(v, max, &key);
    sort_in_place_by_key(v, key);
}

/// The capture orders of flows, exchanges and lookups (within one worker).
pub(super) fn flow_order(f: &FlowRecord) -> u64 {
    f.first_packet
}

/// Exchanges by the packet that opened them, then (several opened by one
/// packet) by worker and the worker's own numbering.
pub(super) fn exchange_order(worker: u64, x: &Exchange) -> (u64, u64, u64) {
    (x.open_packet, worker, x.id)
}

pub(super) fn lookup_order(l: &Lookup) -> (u64, u64) {
    (l.open_packet, l.id)
}

/// Most DNS lookups remembered for charging them to the connections after
/// them (the first ones in capture order): memory stays bounded (a few MB).
pub(super) const MAX_LOOKUPS: usize = 16_384;

/// A DNS lookup, kept apart from the exchange list (which is capped).
#[derive(Clone)]
pub(super) struct Lookup {
    pub(super) open_packet: u64,
    /// The exchange's and its flow's ids, as the worker numbered them.
    pub(super) id: u64,
    pub(super) flow: u64,
    pub(super) end_ts: f64,
    pub(super) resolved: Vec<IpAddr>,
    pub(super) wire_bytes: u64,
    /// What the lookup cost: its bytes and its share of its flow's setup
    /// (the exchange's `total_cost_bytes`).
    pub(super) cost_bytes: f64,
}

/// How long a list may grow before it is cut back to `max`: a quarter more,
/// so cuts are rare (and rarer still once the cutoff drops late arrivals)
/// while each thread's lists stay small.
pub(super) fn slack(max: usize) -> usize {
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
    fn lists_exchanges_opened_at(&self, packet: u64) -> bool {
        self.exchange_cutoff.is_none_or(|(p, _, _)| packet <= p)
    }
    fn exchange_figures(&mut self, x: ExchangeFigures, n: u32) {
        self.summaries.add_many(&x, n);
    }
    fn exchange_facts(&mut self, client: SocketAddr, server: SocketAddr, x: &ExchangeFacts) {
        self.summaries.add_bytes(x.kind, &x.cost);
        match &mut self.ship {
            Some(facts) => facts.push(Fact::Exchange(client, server, *x)),
            None => self.streams.exchange(client, server, x),
        }
    }
    fn flow_done(&mut self, rec: FlowRecord) {
        let facts = crate::findings::FlowFacts::of(&rec);
        match &mut self.ship {
            Some(list) => list.push(Fact::Flow(facts)),
            None => self.streams.flow(&facts),
        }
        self.tallies.push(super::devices::FlowTally::of(&rec));
        self.flow_ledger.merge(&rec.classes);
        self.apps.add(&rec);
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
