//! The workers' results put back into the order one worker would have
//! made them, and the input's report built from them.

use super::collect::*;
use super::dispatch::*;
use super::renumber::*;
use super::*;
use crate::decode;
use crate::flow::FlowRecord;
use crate::ledger::exchange::UNLISTED_FLOW;
use crate::ledger::{Class, Exchange};
use crate::report::InputReport;
use foldhash::{HashMap, HashMapExt};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Sorts `v` by `key` (stable) in place: the keys are sorted, then the
/// items are swapped into their places along the cycles of that order (at
/// most one swap a place), and no second list is made. Items
/// are large (a flow's record is 352 bytes) and lists long: a sorted copy
/// doubled them at the end of a run, when every worker sorts at once.
pub(super) fn sort_in_place_by_key<T, K: Ord>(v: &mut [T], key: impl Fn(&T) -> K) {
    let mut order: Vec<(K, usize)> = v.iter().enumerate().map(|(i, x)| (key(x), i)).collect();
    order.sort_by(|a, b| a.0.cmp(&b.0));
    // from[i]: the place of the item that goes to place i.
    let mut from: Vec<usize> = order.into_iter().map(|(_, i)| i).collect();
    for start in 0..from.len() {
        let mut at = start;
        // Place `at` holds the item that was at `start`; it takes its own
        // item and passes the one it held along, until the cycle closes.
        while let Some(next) = from.get_mut(at).map(|f| std::mem::replace(f, at)) {
            if next == start || next == at {
                break;
            }
            v.swap(at, next);
            at = next;
        }
    }
}

/// The first `max` items of `lists`, each sorted by `key`, in that order,
/// each with the number of its list. Items are moved once; those past `max`
/// are dropped unread.
pub(super) fn merge_first<T, K: Ord>(lists: Vec<Vec<T>>, max: usize, key: impl Fn(usize, &T) -> K) -> Vec<(usize, T)> {
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

/// Puts the workers' results in the order one worker would have made them
/// and builds the input's report. Each worker's lists come sorted, and only
/// the first `max_*` of their merge are listed, so the same flows and
/// exchanges are listed (and numbered) for any number of workers.
pub(super) fn assemble(
    name: &str,
    opts: &Options,
    st: InputState,
    workers: Vec<Worker>,
    mut tap: RadioTap,
) -> InputReport {
    let InputState {
        mut defrag,
        totals: mut t,
        outside,
        mut notes,
        linktypes,
        marks,
        mut timeline,
        span,
        source,
        outside_facts,
    } = st;
    defrag.finish();
    let mut outside = outside;
    // Fragments of datagrams never completed: their headers, and their data as payload.
    let outside_before = outside;
    outside.add(Class::Link, defrag.abandoned.link);
    outside.add(Class::Network, defrag.abandoned.network);
    outside.add(Class::Payload, defrag.abandoned.data);
    let (first_ns, last_ns) = (span.earliest_ns(), span.latest_ns());
    timeline.add_since(last_ns, &outside_before, &outside);
    notes.abandoned_fragments = defrag.abandoned.frames as u64;
    notes.read_error = source.read_error;

    let mut classes = outside;
    let mut summaries = crate::report::ExchangeSummaries::default();
    let mut apps = crate::report::breakdown::AppLedgers::default();
    let mut stats = crate::dissect::ProtoStats::default();
    let mut streams = std::mem::take(&mut tap.streams);
    let (mut tcp_streams, mut udp_streams) = (0, 0);
    let (mut flows_total, mut exchanges_total) = (0u64, 0u64);
    let (mut flow_lists, mut exchange_lists, mut lookup_lists) = (Vec::new(), Vec::new(), Vec::new());
    for mut w in workers {
        // The flows still live at the end, which the worker finished last.
        tap.tally_all(&mut w.out.tallies);
        classes.merge(&w.out.flow_ledger);
        timeline.merge(std::mem::take(&mut w.table.timeline));
        summaries.merge(&w.out.summaries);
        apps.merge(&w.out.apps);
        streams.absorb(std::mem::take(&mut w.out.streams));
        for f in w.out.ship.iter().flatten() {
            streams.fact(f);
        }
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
    // Outside flows (ICMP errors): after the workers', so that one
    // worker's state is taken whole; the order changes nothing.
    streams.absorb(outside_facts);
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
    // In 128 bits: timestamps far apart (a corrupted one) must not wrap.
    t.duration_s = first_ns.map(|f| (i128::from(last_ns) - i128::from(f)) as f64 / 1e9).unwrap_or(0.0);
    t.start_ts = first_ns.map(|f| f as f64 / 1e9);
    t.goodput_ratio = classes.goodput_ratio();
    t.billed_bytes = Some(t.wire_bytes.saturating_sub(tap.link_bytes));
    notes.inferred_bytes = t.wire_bytes.saturating_sub(t.captured_bytes);
    notes.format = source.format;
    notes.linktypes = linktypes.finish().into_iter().map(|(k, v)| (decode::link::name(k), v)).collect();
    notes.encapsulations = marks.encapsulations().map(|(name, n)| (name.to_string(), n)).collect();
    notes.offloaded_segments = marks.offloaded();
    notes.skipped_blocks = source.skipped_blocks;
    notes.skipped_records = source.skipped_records;
    notes.skipped_record_notes = source.skipped_notes;
    if classes.total() != t.wire_bytes {
        notes.conservation_error =
            Some(format!("classes add up to {} of {} wire bytes", classes.total(), t.wire_bytes));
    }
    let mut devices = (Vec::new(), None, Vec::new());
    let radio = tap.radios.take().map(|radios| {
        let (listed, sums, mut r) = radios.finish();
        let (list, fleet, cost, scopes) = super::devices::build(listed, &sums, &r, &tap.devices, opts);
        devices = (list, Some(fleet), scopes);
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
        r.cost = Some(cost);
        r
    });
    let lower = [Class::Link, Class::Network, Class::Transport].iter().map(|c| t.classes.get(*c)).sum();
    let (mut devices, fleet, scopes) = devices;
    let findings_input = crate::findings::Input {
        streams: &streams,
        tls: &stats.tls,
        mqtt_keepalive_s: stats.mqtt.keepalive_s,
        mqtt: Some(&stats.mqtt),
        wire_bytes: t.wire_bytes,
        frames: t.frames,
        lower_bytes: lower,
        link_bytes: tap.link_bytes,
        duration_s: t.duration_s,
        radio: opts.radio.as_ref(),
        thresholds: &opts.findings,
    };
    let findings = crate::findings::detect(&findings_input);
    let all_findings_fixed = crate::findings::all_fixed(&findings_input, &findings);
    let whatif = opts.whatif.as_ref().map(|req| {
        let seen = crate::whatif::stacks::Seen::of(&streams, &stats.tls, &t, udp_streams);
        let devices: Vec<&crate::findings::stream::Device> = streams.devices.iter().map(|(_, d)| d).collect();
        crate::whatif::stacks::report(
            req,
            &crate::whatif::stacks::Inputs {
                input: name,
                encrypted_messages: devices.iter().map(|d| crate::whatif::stacks::encrypted(d)).sum(),
                devices,
                devices_saturated: streams.devices.saturated,
                seen,
                radio: opts.radio.as_ref(),
                measured: radio.as_ref().map(|r| &r.per_day),
                cost: &opts.cost,
            },
        )
    });
    super::devices::scope_findings(&mut devices, &scopes, &findings);
    InputReport {
        whatif,
        all_findings_fixed,
        input: name.to_string(),
        totals: t,
        tcp_streams,
        udp_streams,
        flows,
        stats,
        exchanges,
        notes,
        radio,
        devices,
        fleet,
        findings,
        summaries,
        apps,
        timeline: timeline.finish(),
    }
}

/// Frames per link type. Counted by runs, since a capture's link type
/// seldom changes: a map lookup per run, not per frame.
#[derive(Clone, Default)]
pub(super) struct LinktypeCounts {
    pub(super) counts: BTreeMap<u16, u64>,
    pub(super) run: Option<(u16, u64)>,
}

impl LinktypeCounts {
    pub(super) fn add(&mut self, linktype: u16) {
        match &mut self.run {
            Some((lt, n)) if *lt == linktype => *n += 1,
            run => {
                if let Some((lt, n)) = run.replace((linktype, 1)) {
                    *self.counts.entry(lt).or_default() += n;
                }
            }
        }
    }

    pub(super) fn finish(mut self) -> BTreeMap<u16, u64> {
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
pub(super) fn attribute_dns_lookups(
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
