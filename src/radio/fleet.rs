//! One radio per device. The radio stage runs on one thread in packet
//! order; it keeps a model for each device (keyed by address) in bounded
//! memory: past `MAX_LIVE_DEVICES` models, the least recently active
//! eighth is finished at once. Finished devices past the listing cap are
//! folded into the fleet's sums and spread, not kept.

use super::profile::Profile;
use super::sim::{Book, DeviceSim, Ending, EnergySplit, PerDay, RadioOptions, RadioReport, Tick};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Device models alive at once (about 20 kB each at most).
pub const MAX_LIVE_DEVICES: usize = 4096;

/// A device's model, while frames come.
#[derive(Clone)]
#[repr(C)]
struct LiveDevice {
    // What every frame reads first (`DeviceRadios::tick`), next to the
    // model's own first fields.
    addr: u128,
    first_ns: i64,
    last_ns: i64,
    sim: DeviceSim,
    /// Order of first appearance.
    order: u64,
}

/// A device's finished model.
#[derive(Clone, Debug)]
pub struct DeviceRadio {
    /// The key the device was told apart by (`flow::addr_bits`; 0: frames
    /// that carried no address before any device was seen).
    pub addr: u128,
    pub order: u64,
    pub figures: DeviceFigures,
}

/// What a device's entry in the report needs of its finished model: kept
/// for every listed device (10,000 by default), so a few hundred bytes,
/// not the whole report (its states, notes and shares).
#[derive(Clone, Debug, Serialize)]
pub struct DeviceFigures {
    pub frames: u64,
    pub bytes: u64,
    pub bytes_down: u64,
    pub billed_bytes: u64,
    pub radio_on_s: f64,
    pub energy_j: f64,
    pub charge_mah: f64,
    pub wakeups: u64,
    pub promotions: u64,
    pub battery_life_days: Option<f64>,
    pub per_day: PerDay,
}

impl DeviceFigures {
    fn of(sim: &DeviceSim, end: &Ending) -> DeviceFigures {
        let n = sim.counts();
        DeviceFigures {
            frames: n.frames,
            bytes: n.bytes,
            bytes_down: n.bytes_down,
            billed_bytes: n.billed_bytes,
            radio_on_s: sim.radio_on_s(),
            energy_j: end.energy_j,
            charge_mah: end.charge_mah,
            wakeups: n.wakeups,
            promotions: n.promotions,
            battery_life_days: end.battery.as_ref().and_then(|b| b.life_days),
            per_day: end.per_day.clone(),
        }
    }
}

/// Every device's radio, fed in packet order.
#[derive(Clone)]
pub struct DeviceRadios {
    profile: Arc<Profile>,
    opts: RadioOptions,
    book: Book,
    index: HashMap<u128, u32, foldhash::fast::RandomState>,
    /// The latest lookups, direct-mapped by the address's hash: in a
    /// fleet's capture nearly every frame is another device's, and a slot
    /// found here costs a multiply and a compare, not a hash-table probe.
    /// (address, slot + 1); 0: empty.
    recent: Vec<(u128, u32)>,
    live: Vec<LiveDevice>,
    /// Finished devices that are listed (the first `max_listed` by order).
    done: Vec<DeviceRadio>,
    max_listed: usize,
    /// Addresses whose first model is listed: what else is kept of a device
    /// (its flows' tally) is kept for these only, so memory stays bounded
    /// however many devices the capture holds.
    listed: HashSet<u128, foldhash::fast::RandomState>,
    /// Every finished device's per-day (billed bytes, link bytes, mAh) for
    /// the fleet's spread, in order of finishing; sums of all devices.
    fleet: FleetSums,
    last_addr: u128,
    last_slot: usize,
    next_order: u64,
    cap: usize,
}

/// What the fleet adds up to over every device, listed or not.
#[derive(Clone, Debug, Default)]
pub struct FleetSums {
    pub devices: u64,
    pub per_day: Vec<(f64, f64, f64)>,
    /// Every device's report summed (one device: its own report); taken
    /// by `finish`.
    total: Option<RadioReport>,
}

/// Entries of `DeviceRadios::recent` (20 kB).
const RECENT: usize = 1024;

fn recent_at(addr: u128) -> usize {
    let x = (addr as u64) ^ ((addr >> 64) as u64);
    (x.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 54) as usize % RECENT
}

/// Spread samples kept (16 MB); past them, devices are summed only.
const MAX_SPREAD_SAMPLES: usize = 1 << 20;

impl DeviceRadios {
    pub fn new(profile: Profile, opts: RadioOptions, max_listed: usize) -> DeviceRadios {
        DeviceRadios {
            profile: Arc::new(profile),
            opts,
            book: Book::default(),
            index: HashMap::default(),
            recent: vec![(0, 0); RECENT],
            live: Vec::new(),
            done: Vec::new(),
            max_listed,
            listed: HashSet::default(),
            fleet: FleetSums::default(),
            last_addr: 0,
            last_slot: usize::MAX,
            next_order: 0,
            cap: MAX_LIVE_DEVICES,
        }
    }

    /// A smaller cap on live models (tests).
    pub fn with_cap(mut self, cap: usize) -> DeviceRadios {
        self.cap = cap.max(1);
        self
    }

    /// Whether the device with this address is listed in the report (its
    /// first model is among the first `max_listed`): fixed from its first
    /// frame on, so the same answer for any number of jobs once that frame
    /// has been ticked.
    pub fn is_listed(&self, addr: u128) -> bool {
        self.listed.contains(&addr)
    }

    /// One frame: a flow's (`peer` 0: `device` is its client's address) or
    /// one outside flows (its source and destination; either may be 0).
    #[inline]
    pub fn tick(&mut self, device: u128, peer: u128, t: &Tick) {
        let slot = if peer == 0 && device != 0 && device == self.last_addr {
            self.last_slot
        } else {
            self.resolve(device, peer)
        };
        let mut t = *t;
        if peer != 0 && self.live.get(slot).is_some_and(|d| d.addr == peer && d.addr != device) {
            // Sent to the device.
            t.uplink = false;
        }
        if let Some(d) = self.live.get_mut(slot) {
            d.first_ns = d.first_ns.min(t.ts_ns);
            d.last_ns = d.last_ns.max(t.ts_ns);
            d.sim.tick(&t, &mut self.book);
        }
    }

    /// The slot of a frame's device, made if new.
    #[inline(never)]
    fn resolve(&mut self, device: u128, peer: u128) -> usize {
        let slot = if peer == 0 && device != 0 {
            self.slot_of(device)
        } else if let Some(&s) = self.index.get(&device).filter(|_| device != 0) {
            s as usize
        } else if let Some(&s) = self.index.get(&peer).filter(|_| peer != 0) {
            s as usize
        } else if self.last_slot < self.live.len() {
            // Addresses of no device (a gateway's ARP, a broken frame):
            // the device of the frames around it.
            self.last_slot
        } else {
            self.slot_of(if device != 0 { device } else { peer })
        };
        self.last_slot = slot;
        self.last_addr = self.live.get(slot).map_or(0, |d| d.addr);
        slot
    }

    fn slot_of(&mut self, addr: u128) -> usize {
        let at = recent_at(addr);
        if let Some(&(a, s)) = self.recent.get(at)
            && a == addr
            && s > 0
        {
            return s as usize - 1;
        }
        if let Some(&s) = self.index.get(&addr) {
            if let Some(r) = self.recent.get_mut(at) {
                *r = (addr, s + 1);
            }
            return s as usize;
        }
        // Frames without an address came first: they were this device's.
        if self.live.len() == 1
            && self.fleet.devices == 0
            && let Some(d) = self.live.first_mut()
            && d.addr == 0
        {
            d.addr = addr;
            self.listed.insert(addr);
            self.index.clear();
            self.index.insert(addr, 0);
            self.recent.fill((0, 0));
            return 0;
        }
        if self.live.len() >= self.cap {
            self.finish_least_recent();
        }
        let slot = self.live.len();
        if (self.next_order as usize) < self.max_listed {
            self.listed.insert(addr);
        }
        self.live.push(LiveDevice {
            addr,
            order: self.next_order,
            // The first device alone draws the input's radio timeline.
            sim: match self.next_order {
                0 => DeviceSim::new(self.profile.clone(), self.opts.clone()),
                _ => DeviceSim::new(self.profile.clone(), self.opts.clone()).without_timeline(),
            },
            first_ns: i64::MAX,
            last_ns: i64::MIN,
        });
        self.next_order += 1;
        self.index.insert(addr, slot as u32);
        slot
    }

    /// Finishes the least recently active eighth of the live models (one
    /// scan for many new devices).
    #[inline(never)]
    fn finish_least_recent(&mut self) {
        let n = (self.live.len() / 8).max(1);
        let mut by_age: Vec<(i64, u64, usize)> =
            self.live.iter().enumerate().map(|(i, d)| (d.last_ns, d.order, i)).collect();
        let nth = n.min(by_age.len().saturating_sub(1));
        by_age.select_nth_unstable(nth);
        let mut gone: Vec<usize> = by_age.iter().take(n).map(|&(_, _, i)| i).collect();
        // From the last: each removal moves one model (the last) into its
        // place, and none that is still to be removed.
        gone.sort_unstable_by(|a, b| b.cmp(a));
        let mut finished: Vec<LiveDevice> = Vec::with_capacity(gone.len());
        for i in gone {
            if i < self.live.len() {
                finished.push(self.live.swap_remove(i));
            }
        }
        finished.sort_by_key(|d| d.order);
        for d in finished {
            self.finish_device(d);
        }
        self.recent.fill((0, 0));
        self.index.clear();
        for (i, d) in self.live.iter().enumerate() {
            self.index.insert(d.addr, i as u32);
        }
        self.last_addr = 0;
        self.last_slot = usize::MAX;
    }

    fn finish_device(&mut self, d: LiveDevice) {
        let span_s = if d.last_ns >= d.first_ns { d.last_ns.saturating_sub(d.first_ns) as f64 / 1e9 } else { 0.0 };
        let mut sim = d.sim;
        let end = sim.end(span_s, &mut self.book);
        let f = &mut self.fleet;
        f.devices += 1;
        if f.per_day.len() < MAX_SPREAD_SAMPLES && end.per_day.projected {
            let p = &end.per_day;
            f.per_day.push((p.billed_bytes as f64, p.bytes as f64, p.charge_mah));
        }
        if (d.order as usize) < self.max_listed {
            if self.done.capacity() == 0 {
                // The listed devices' figures are a few hundred bytes each:
                // room for all of them at once, not twice what they need.
                self.done.reserve_exact(self.max_listed.min(1 << 16));
            }
            self.done.push(DeviceRadio { addr: d.addr, order: d.order, figures: DeviceFigures::of(&sim, &end) });
        }
        f.total = Some(match f.total.take() {
            // The first device's own report: with one device, the report.
            None => sim.report(end),
            Some(mut t) => {
                add_device(&mut t, &sim, end);
                // The first device alone draws the radio timeline, whenever
                // it ends.
                if d.order == 0 {
                    t.timeline = sim.timeline();
                }
                t
            }
        });
    }

    /// Every device's model finished: the listed devices in order of first
    /// appearance, the fleet's sums, and the flows' and exchanges' shares
    /// in the total report.
    pub fn finish(mut self) -> (Vec<DeviceRadio>, FleetSums, RadioReport) {
        // Fixed order (first appearance): float sums do not depend on eviction.
        let mut live = std::mem::take(&mut self.live);
        live.sort_by_key(|d| d.order);
        for d in live {
            self.finish_device(d);
        }
        self.done.sort_by_key(|d| d.order);
        let mut fleet = std::mem::take(&mut self.fleet);
        let mut total = fleet.total.take().unwrap_or_else(|| {
            DeviceSim::new(self.profile.clone(), self.opts.clone()).finish(0.0, &mut Book::default())
        });
        (total.per_flow, total.per_exchange) = self.book.reports(total.voltage_v);
        (self.done, fleet, total)
    }
}

/// A device's figures added to the fleet's report so far (the first
/// device's own, at first): time, energy, counts and the per-day
/// projections; what belongs to one device (battery, cycle) goes.
fn add_device(a: &mut RadioReport, sim: &DeviceSim, b: Ending) {
    let n = sim.counts();
    a.radio_on_s += sim.radio_on_s();
    a.energy_j += b.energy_j;
    a.charge_mah += b.charge_mah;
    a.tail_energy_j += b.energy.tail_j;
    a.promotions += n.promotions;
    a.wakeups += n.wakeups;
    a.frames += n.frames;
    a.bytes += n.bytes;
    a.billed_bytes += n.billed_bytes;
    a.bytes_up += n.bytes_up;
    a.bytes_down += n.bytes_down;
    a.bursts += n.bursts;
    a.round_trips += n.round_trips;
    let (e, f) = (&mut a.energy, &b.energy);
    *e = EnergySplit {
        promotion_j: e.promotion_j + f.promotion_j,
        transfer_j: e.transfer_j + f.transfer_j,
        tail_j: e.tail_j + f.tail_j,
        idle_j: e.idle_j + f.idle_j,
    };
    for (s, (time_s, energy_j)) in a.states.iter_mut().zip(sim.state_figures()) {
        s.time_s += time_s;
        s.energy_j += energy_j;
    }
    if let (Some(l), Some(m)) = (a.link.as_mut(), b.link.as_ref()) {
        l.round_trips += m.round_trips;
        l.rtt_wait_s += m.rtt_wait_s;
        l.bytes_up += m.bytes_up;
        l.bytes_down += m.bytes_down;
        l.airtime_s += m.airtime_s;
        l.on_link_s += m.on_link_s;
        l.retimed_span_s = l.retimed_span_s.max(m.retimed_span_s);
        l.captured_span_s = l.captured_span_s.max(m.captured_span_s);
    }
    let (p, q) = (&a.per_day, &b.per_day);
    a.per_day = PerDay {
        bytes: p.bytes.saturating_add(q.bytes),
        billed_bytes: p.billed_bytes.saturating_add(q.billed_bytes),
        wakeups: p.wakeups + q.wakeups,
        radio_on_s: p.radio_on_s + q.radio_on_s,
        charge_mah: p.charge_mah + q.charge_mah,
        energy_j: p.energy_j + q.energy_j,
        basis: "devices".into(),
        window_s: p.window_s.max(q.window_s),
        projected: p.projected || q.projected,
        cycle: None,
        startup: None,
        shutdown: None,
        never_sleeps: None,
        bursts: p.bursts + q.bursts,
        energy_split: EnergySplit {
            promotion_j: p.energy_split.promotion_j + q.energy_split.promotion_j,
            transfer_j: p.energy_split.transfer_j + q.energy_split.transfer_j,
            tail_j: p.energy_split.tail_j + q.energy_split.tail_j,
            idle_j: p.energy_split.idle_j + q.energy_split.idle_j,
        },
    };
    a.battery = None;
    a.battery_life_days = None;
    for n in b.notes {
        if !a.notes.contains(&n) {
            a.notes.push(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tick(t_s: f64) -> Tick {
        Tick {
            ts_ns: (t_s * 1e9) as i64,
            wire_len: 100,
            uplink: true,
            flow: Tick::NO_FLOW,
            exchange: None,
            link_len: 14,
        }
    }

    fn run(cap: usize) -> (Vec<DeviceRadio>, FleetSums, RadioReport) {
        let profile = Profile::builtin("lte").unwrap_or_else(|| panic!("no lte"));
        let mut radios = DeviceRadios::new(profile, RadioOptions::default(), 2).with_cap(cap);
        // Three devices one after the other, readings every 20 s; a
        // gateway's ARP (no device's address) goes to the device around it.
        for (n, addr) in [11u128, 12, 13].into_iter().enumerate() {
            for i in 0..5 {
                radios.tick(addr, 0, &tick(1000.0 * n as f64 + 20.0 * i as f64));
            }
            radios.tick(99, 98, &tick(1000.0 * n as f64 + 90.0));
        }
        radios.finish()
    }

    #[test]
    fn models_finished_past_the_cap_report_what_they_would_have() {
        let (all, sums, total) = run(MAX_LIVE_DEVICES);
        let (capped, capped_sums, capped_total) = run(1);
        // Two listed (max_listed 2), three in the fleet.
        assert_eq!((all.len(), sums.devices, capped.len(), capped_sums.devices), (2, 3, 2, 3));
        for (a, b) in all.iter().zip(&capped) {
            assert_eq!((a.addr, a.order), (b.addr, b.order));
            assert_eq!(serde_json::to_string(&a.figures).ok(), serde_json::to_string(&b.figures).ok());
            assert_eq!(a.figures.frames, 6);
            assert_eq!(a.figures.billed_bytes, 6 * 86);
            assert_eq!(a.figures.per_day.cycle.as_ref().map(|c| c.period_s), Some(20.0));
        }
        assert_eq!(total.frames, 18);
        assert_eq!((total.per_day.basis.as_str(), capped_total.per_day.bytes), ("devices", total.per_day.bytes));
        assert_eq!(sums.per_day.len(), 3);
    }

    #[test]
    fn the_first_device_draws_the_timeline_whenever_its_model_ends() {
        // With two live models at most, the third device ends the second's
        // model, while the first is still active: the fleet's report is
        // begun by the second device, and the timeline is still the first's.
        let run = |cap: usize| {
            let profile = Profile::builtin("lte").unwrap_or_else(|| panic!("no lte"));
            let mut radios = DeviceRadios::new(profile, RadioOptions::default(), 10).with_cap(cap);
            radios.tick(11, 0, &tick(0.0));
            radios.tick(12, 0, &tick(30.0));
            radios.tick(11, 0, &tick(60.0));
            radios.tick(13, 0, &tick(90.0));
            radios.tick(11, 0, &tick(120.0));
            radios.finish().2
        };
        let (capped, all) = (run(2), run(MAX_LIVE_DEVICES));
        let first = all.timeline.as_ref().map(|t| t.bins.len());
        assert!(first.is_some_and(|n| n > 0), "no timeline");
        assert_eq!(capped.timeline, all.timeline);
        assert_eq!((capped.frames, capped.bytes), (all.frames, all.bytes));
    }

    #[test]
    fn frames_without_an_address_before_any_device_are_the_first_devices() {
        let profile = Profile::builtin("lte").unwrap_or_else(|| panic!("no lte"));
        let mut radios = DeviceRadios::new(profile, RadioOptions::default(), 10);
        radios.tick(0, 0, &tick(0.0));
        radios.tick(7, 0, &tick(0.1));
        // ICMP to the device: its destination is the device, and downlink.
        radios.tick(5, 7, &tick(0.2));
        let (devices, sums, _) = radios.finish();
        assert_eq!((devices.len(), sums.devices), (1, 1));
        let d = devices.first().unwrap_or_else(|| panic!("no device"));
        assert_eq!((d.addr, d.figures.frames, d.figures.bytes_down), (7, 3, 100));
    }
}
