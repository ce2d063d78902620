//! The radio state machine, driven one packet at a time.
//!
//! Memory does not grow with the capture: the simulator keeps the current
//! position on the timeline, per-state and per-category sums, one accumulator
//! per flow and per exchange (the report lists those anyway) and the
//! participants of the current burst.
//!
//! Conventions (the tests compute timelines by hand with exactly these):
//! - A packet is an instant on the captured timeline (`--timing captured`);
//!   on the link timeline it lasts its serialisation time at the profile's rate.
//! - After a packet the radio stays connected for `connected.inactivity`, then
//!   walks the tail stages in order, then idles. A packet arriving in a stage
//!   resumes the connection (with the stage's promotion, if it has one); a
//!   packet arriving in idle or in a released stage (`radio_on = false`) needs
//!   the profile's promotion and counts as a wake-up. A packet arriving exactly
//!   when a stage ends belongs to the next stage.
//! - Captured timing: the capture shows packets after the radio woke up, so
//!   the promotion occupies the time just before the packet. Link timing: the
//!   promotion delays the packet.
//! - Gaps up to `link.burst_gap` are protocol round trips: their energy is
//!   transfer energy, shared by the two packets' exchanges. Longer gaps are
//!   the application's pauses: tail (while the radio is up) and idle energy;
//!   the tail is shared by the exchanges of the burst that kept the radio up,
//!   in proportion to the time each kept it up.
//! - Link timing re-times each burst from the device's side: packets in the
//!   same direction go back to back; a downlink packet after an uplink one
//!   waits one round-trip time (the request has to reach the server and the
//!   answer has to come back); the device answers a downlink packet at once.
//!   The device stays connected with its receiver on through a modelled
//!   round trip (no DRX timer runs). Gaps longer than `burst_gap` are kept
//!   as captured.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::profile::{Profile, Promotion};
use super::timeline::{StateRecorder, StateTimeline};
use crate::stats::median_unordered;

/// One frame as the radio sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tick {
    pub ts_ns: i64,
    pub wire_len: u32,
    /// Sent by the device (the flow's client side).
    pub uplink: bool,
    /// Index into the report's flows.
    pub flow: u32,
    /// Index into the report's exchanges, if the frame belongs to one.
    pub exchange: Option<u32>,
    /// Of `wire_len`, the link header and trailer: what operators do not bill.
    pub link_len: u32,
}

impl Tick {
    /// `flow` of a frame that belongs to no flow (ICMP, ARP): it still costs
    /// radio time, but is in no `per_flow` entry.
    pub const NO_FLOW: u32 = u32::MAX;
}

/// Which clock drives the state machine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Timing {
    /// The capture's own timestamps.
    #[default]
    Captured,
    /// Each burst re-timed on the profile's link; pauses kept as captured.
    Link,
}

impl Timing {
    pub fn parse(s: &str) -> Option<Timing> {
        match s.to_ascii_lowercase().as_str() {
            "captured" => Some(Timing::Captured),
            "link" => Some(Timing::Link),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct RadioOptions {
    pub timing: Timing,
    /// Battery capacity for `battery_life_days`.
    pub battery_mah: Option<f64>,
    /// The rest of the device asleep (MCU, sensors), drawn all day.
    pub sleep_current_ua: f64,
    /// Use the profile's release assistance (RAI) after each burst.
    pub release_assistance: bool,
    /// `--interval`: each burst re-timed to begin this long after the one
    /// before (the device's cycle at another period).
    pub interval_s: Option<f64>,
}

impl Default for RadioOptions {
    fn default() -> Self {
        RadioOptions {
            timing: Timing::Captured,
            battery_mah: None,
            sleep_current_ua: 0.0,
            release_assistance: false,
            interval_s: None,
        }
    }
}

const SECONDS_PER_DAY: f64 = 86_400.0;
/// Joules to mAh at `v` volts: J / V = coulomb; 1 mAh = 3.6 C.
fn mah(energy_j: f64, v: f64) -> f64 {
    if v > 0.0 { energy_j / v / 3.6 } else { 0.0 }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    flow: u32,
    exchange: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cat {
    Promotion = 0,
    Transfer = 1,
    Tail = 2,
    Idle = 3,
}

#[derive(Clone, Debug, Default)]
struct Share {
    energy: [f64; 3], // promotion, transfer, tail
    radio_on_s: f64,
    bytes: u64,
    frames: u64,
    round_trips: u64,
}

#[derive(Clone, Copy, Debug, Default)]
struct BurstPart {
    weight_s: f64,
    bytes: u64,
}

/// The parts of the current burst, by key. Touched once or twice per frame,
/// so found by index where it can be: the latest key's part first (most
/// frames continue the key before them), then through a table by the
/// exchange's index for a key with an exchange, by the flow's for one
/// without; a table entry taken by another key (or an index past the dense
/// range) sends the key to a map.
#[derive(Clone, Default)]
#[repr(C)]
struct BurstParts {
    // In the order `part` reads them (see `DeviceSim`).
    /// The parts found through the tables, in order of appearance.
    parts: Vec<(Key, BurstPart)>,
    /// Position in `parts` of the part handed out last.
    latest: usize,
    no_flow: u32,
    other: HashMap<Key, BurstPart, foldhash::fast::RandomState>,
    /// `tail_fractions`' answer, its memory reused.
    fractions: Vec<(Key, f64)>,
}

/// Position in a device's `BurstParts::parts` plus one, by exchange and by
/// flow; 0: none yet. One table for every device's model: a flow (and its
/// exchanges) belongs to one device, so no two devices' parts share an entry.
#[derive(Clone, Default)]
pub struct BurstIndex {
    by_exchange: Vec<u32>,
    by_flow: Vec<u32>,
}

impl BurstParts {
    // Inlined: called on every frame.
    #[inline]
    fn part(&mut self, key: Key, index: &mut BurstIndex) -> &mut BurstPart {
        if self.parts.get(self.latest).is_none_or(|(k, _)| *k != key) {
            self.latest = self.position(key, index).unwrap_or(usize::MAX);
        }
        match self.parts.get_mut(self.latest) {
            Some((_, part)) => part,
            None => other_part(&mut self.other, key),
        }
    }

    /// `key`'s position in `parts` (added if new), or None if its table
    /// entry is taken or it has none.
    #[inline(never)]
    fn position(&mut self, key: Key, index: &mut BurstIndex) -> Option<usize> {
        let entry = match key.exchange {
            Some(x) if (x as usize) < DENSE_IDS => dense_entry(&mut index.by_exchange, x as usize)?,
            None if key.flow == Tick::NO_FLOW => &mut self.no_flow,
            None if (key.flow as usize) < DENSE_IDS => dense_entry(&mut index.by_flow, key.flow as usize)?,
            _ => return None,
        };
        if *entry == 0 {
            *entry = u32::try_from(self.parts.len() + 1).ok()?;
            self.parts.push((key, BurstPart::default()));
        }
        let at = *entry as usize - 1;
        (self.parts.get(at)?.0 == key).then_some(at)
    }

    fn clear(&mut self, index: &mut BurstIndex) {
        for (key, _) in self.parts.drain(..) {
            let entry = match key.exchange {
                Some(x) => index.by_exchange.get_mut(x as usize),
                None if key.flow == Tick::NO_FLOW => Some(&mut self.no_flow),
                None => index.by_flow.get_mut(key.flow as usize),
            };
            if let Some(entry) = entry {
                *entry = 0;
            }
        }
        self.other.clear();
        self.latest = 0;
    }

    /// Every part, in key order (float sums must not depend on hashing).
    fn sorted(&self) -> Vec<(Key, BurstPart)> {
        let mut parts: Vec<(Key, BurstPart)> = Vec::with_capacity(self.parts.len() + self.other.len());
        parts.extend_from_slice(&self.parts);
        parts.extend(self.other.iter().map(|(k, p)| (*k, *p)));
        parts.sort_unstable_by_key(|(k, _)| *k);
        parts
    }

    /// Each part's fraction of the burst's tail, in key order: by the time
    /// it kept the radio up, else by its bytes, else evenly.
    fn tail_fractions(&mut self) -> &[(Key, f64)] {
        self.fractions.clear();
        // One key (most bursts of a device's own radio): all of it, without
        // sorting or allocating.
        if let ([(key, _)], true) = (self.parts.as_slice(), self.other.is_empty()) {
            self.fractions.push((*key, 1.0));
            return &self.fractions;
        }
        let parts = self.sorted();
        let total_weight: f64 = parts.iter().map(|(_, p)| p.weight_s).sum();
        let total_bytes: u64 = parts.iter().map(|(_, p)| p.bytes).sum();
        let count = parts.len() as f64;
        self.fractions.extend(parts.iter().map(|(k, p)| {
            let f = if total_weight > 0.0 {
                p.weight_s / total_weight
            } else if total_bytes > 0 {
                p.bytes as f64 / total_bytes as f64
            } else {
                1.0 / count
            };
            (*k, f)
        }));
        &self.fractions
    }
}

/// A part kept in [`BurstParts::other`]; out of line: rarely needed.
#[inline(never)]
fn other_part(other: &mut HashMap<Key, BurstPart, foldhash::fast::RandomState>, key: Key) -> &mut BurstPart {
    other.entry(key).or_default()
}

fn dense_entry(v: &mut Vec<u32>, i: usize) -> Option<&mut u32> {
    if v.len() <= i {
        v.resize(i + 1, 0);
    }
    v.get_mut(i)
}

#[derive(Clone, Copy, Debug, Default)]
struct Snapshot {
    /// On the capture's clock: the application's schedule.
    cap_s: f64,
    energy_j: f64,
    radio_on_s: f64,
    bytes: u64,
    billed_bytes: u64,
    wakeups: u64,
}

/// Burst starts remembered per device for its cycle: the first ones (a
/// device's steady cycle shows in its first thousand bursts), so a model
/// takes at most 56 kB for them.
const MAX_MARKS: usize = 1024;

/// A state's figures; its name is the profile's (`state_names`), not
/// copied into each device's model.
#[derive(Clone, Debug)]
struct StateAcc {
    radio_on: bool,
    power_w: f64,
    time_s: f64,
    energy_j: f64,
}

/// A direction's per-frame constants, taken from the profile once.
#[derive(Clone, Copy, Debug)]
struct Direction {
    rate_bps: f64,
    j_per_bit: f64,
    /// The transmitter's (or receiver's) power above the connected power.
    active_excess_w: Option<f64>,
}

impl Direction {
    /// (downlink, uplink), indexed by `uplink`.
    fn both(profile: &Profile) -> [Direction; 2] {
        let c = &profile.connected;
        let excess = |p: Option<f64>| p.map(|p| (p - c.power_w).max(0.0));
        [
            Direction {
                rate_bps: profile.link.down_bps,
                j_per_bit: c.down_j_per_bit,
                active_excess_w: excess(c.rx_power_w),
            },
            Direction {
                rate_bps: profile.link.up_bps,
                j_per_bit: c.up_j_per_bit,
                active_excess_w: excess(c.tx_power_w),
            },
        ]
    }

    /// How long `bits` take on the link (0 when the rate is unknown).
    fn serialisation_s(&self, bits: f64) -> f64 {
        if self.rate_bps > 0.0 { bits / self.rate_bps } else { 0.0 }
    }

    /// A frame's energy above the connected power.
    fn extra_j(&self, bits: f64, serialisation_s: f64) -> f64 {
        let mut extra = bits * self.j_per_bit;
        if let Some(excess_w) = self.active_excess_w {
            extra += excess_w * serialisation_s;
        }
        extra
    }
}

/// Where the radio is after a gap.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Position {
    Connected,
    Stage(usize),
    Idle,
}

const IDLE: usize = 0;
const PROMOTION: usize = 1;
const CONNECTED: usize = 2;
const FIRST_STAGE: usize = 3;

/// Splits `gap` seconds after a packet into state segments, handing each
/// (state, seconds) to `segment` in time order; returns where the radio ends
/// and when (seconds into the gap) it entered that position. A closure, not a
/// filled array: callers book segments as they come, and a position-only
/// probe passes one that does nothing.
fn walk(profile: &Profile, gap: f64, rai: bool, mut segment: impl FnMut(usize, f64)) -> (Position, f64) {
    let mut left = gap.max(0.0);
    let connected_for = match (&profile.release_assistance, rai) {
        (Some(r), true) => r.release_after_s,
        _ => profile.connected.inactivity_s,
    };
    let mut push = |state: usize, dt: f64| {
        if dt > 0.0 {
            segment(state, dt);
        }
    };
    if left < connected_for {
        push(CONNECTED, left);
        return (Position::Connected, 0.0);
    }
    push(CONNECTED, connected_for);
    left -= connected_for;
    let mut entered = connected_for;
    for (k, stage) in profile.tail.iter().enumerate() {
        // RAI releases the connection at once: the connected stages are skipped.
        if rai && stage.radio_on {
            continue;
        }
        if left < stage.duration_s {
            push(FIRST_STAGE + k, left);
            return (Position::Stage(k), entered);
        }
        push(FIRST_STAGE + k, stage.duration_s);
        left -= stage.duration_s;
        entered += stage.duration_s;
    }
    push(IDLE, left);
    (Position::Idle, entered)
}

/// Time, energy and promotions per state and per category: what every booked
/// piece of the timeline adds to. Apart from the profile, so that a walk over
/// the profile's timers can book each piece as it comes.
#[derive(Clone)]
#[repr(C)]
struct Totals {
    // In the order `book` reads them (see `DeviceSim`).
    states: Vec<StateAcc>,
    /// Every booked piece of the timeline, by time bin.
    over_time: StateRecorder,
    radio_on_s: f64,
    cat_energy: [f64; 4],
    promotions: u64,
    wakeups: u64,
}

impl Totals {
    fn energy(&self) -> f64 {
        self.cat_energy.iter().sum()
    }

    /// Books time in a state; returns (energy, radio-on seconds).
    fn book(&mut self, state: usize, dt: f64, cat: Cat) -> (f64, f64) {
        let Some(acc) = self.states.get_mut(state) else {
            return (0.0, 0.0);
        };
        let energy = acc.power_w * dt;
        self.over_time.book(cat as usize, dt);
        acc.time_s += dt;
        acc.energy_j += energy;
        let on = if acc.radio_on { dt } else { 0.0 };
        self.radio_on_s += on;
        if let Some(e) = self.cat_energy.get_mut(cat as usize) {
            *e += energy;
        }
        (energy, on)
    }

    /// Books a frame's energy above the connected power (per bit, and the
    /// transmitter or receiver over its airtime), all of it transfer.
    fn book_extra(&mut self, extra: f64) {
        self.cat_energy[Cat::Transfer as usize] += extra;
        if let Some(acc) = self.states.get_mut(CONNECTED) {
            acc.energy_j += extra;
        }
    }

    /// Books a promotion; returns (energy, radio-on seconds).
    fn promote(&mut self, state: usize, p: &Promotion, wakeup: bool) -> (f64, f64) {
        if wakeup {
            self.wakeups += 1;
        }
        self.promotions += 1;
        self.book(state, p.duration_s, Cat::Promotion)
    }

    /// Books a gap: idle time as idle, the rest as `cat`, each piece's
    /// (energy, radio-on seconds) handed to `credit` in time order.
    fn book_gap(&mut self, profile: &Profile, gap: f64, rai: bool, cat: Cat, mut credit: impl FnMut(f64, f64)) {
        walk(profile, gap, rai, |state, dt| {
            if state == IDLE {
                self.book(IDLE, dt, Cat::Idle);
            } else {
                let (e, on) = self.book(state, dt, cat);
                credit(e, on);
            }
        });
    }

    /// Books a gap inside a burst as transfer time (see [`Totals::book_gap`]).
    fn book_round_trip(&mut self, profile: &Profile, gap: f64, link: bool, mut credit: impl FnMut(f64, f64)) {
        if link {
            // A modelled round trip: the device keeps its receiver on for the
            // answer (for NB-IoT and LTE-M most of the round trip is the air
            // interface's own scheduling and HARQ), so no DRX timer runs.
            // Nothing to book for packets back to back.
            if gap > 0.0 {
                let (e, on) = self.book(CONNECTED, gap, Cat::Transfer);
                credit(e, on);
            }
        } else {
            self.book_gap(profile, gap, false, Cat::Transfer, credit);
        }
    }
}

/// What every device's model shares: the flows' and exchanges' shares
/// (ids are the report's, unique over all devices) and the burst tables.
#[derive(Clone, Default)]
pub struct Book {
    shares: ShareBook,
    index: BurstIndex,
}

impl Book {
    /// The flows' and the exchanges' shares, in id order, at `v` volts.
    pub fn reports(&self, v: f64) -> (Vec<ShareReport>, Vec<ShareReport>) {
        (shares_report(&self.shares.flows, v), shares_report(&self.shares.exchanges, v))
    }
}

/// One radio: a device's state machine, fed that device's frames. Its
/// frames' shares go to a [`Book`] shared by every device's model.
#[derive(Clone)]
#[repr(C)]
pub struct DeviceSim {
    // What every frame touches comes first, in the order the fast path
    // (`tick_connected`) reads it: a fleet's models do not stay in the
    // cache, so each cache line a frame touches is a miss (`repr(C)` keeps
    // this order).
    profile: Arc<Profile>,
    /// Frames may take [`RadioSim::tick_connected`]: after the first, with captured timing.
    fast_path_ready: bool,
    last_uplink: bool,
    last_key: Key,
    last_cap_s: f64,
    last_end_s: f64,
    captured_burst_s: f64,
    /// Serialisation time of every frame at the profile's rates, and the
    /// captured time inside bursts: the first exceeding the second means the
    /// capture ran on a faster link than this radio's.
    needed_airtime_s: f64,
    round_trips: u64,
    frames: u64,
    bytes: u64,
    /// Bytes an operator bills: IP packets, link headers excluded.
    billed_bytes: u64,
    bytes_up: u64,
    bytes_down: u64,
    directions: [Direction; 2],
    burst: BurstParts,
    totals: Totals,
    // The rest: bursts, promotions, the end.
    opts: RadioOptions,
    /// Set only by tests, which check that the fast path books what the general one does.
    fast_path_off: bool,
    rai: bool,
    started: bool,
    stage_promotion_state: Vec<Option<usize>>,
    first_ts_ns: i64,
    timeline_start_s: f64,
    airtime_s: f64,
    burst_time_s: f64,
    bursts: u64,
    /// Totals when each burst began (the first `MAX_MARKS`): the cycles.
    marks: Vec<Snapshot>,
    /// Where the latest burst began on the capture's clock (re-timed with `--interval`).
    last_burst_cap_s: f64,
}

impl DeviceSim {
    pub fn new(profile: Arc<Profile>, opts: RadioOptions) -> Self {
        // In the order of `state_names`.
        let acc = |radio_on: bool, power_w: f64| StateAcc { radio_on, power_w, time_s: 0.0, energy_j: 0.0 };
        let mut states = vec![
            acc(false, profile.idle_power_w),
            acc(true, profile.promotion.power_w),
            acc(true, profile.connected.power_w),
        ];
        states.extend(profile.tail.iter().map(|stage| acc(stage.radio_on, stage.power_w)));
        let mut stage_promotion_state = Vec::with_capacity(profile.tail.len());
        for stage in &profile.tail {
            stage_promotion_state.push(stage.promotion.as_ref().map(|p| {
                states.push(acc(true, p.power_w));
                states.len() - 1
            }));
        }
        let rai = opts.release_assistance && profile.release_assistance.is_some();
        DeviceSim {
            directions: Direction::both(&profile),
            fast_path_ready: false,
            fast_path_off: false,
            profile,
            opts,
            rai,
            totals: Totals {
                states,
                cat_energy: [0.0; 4],
                radio_on_s: 0.0,
                promotions: 0,
                wakeups: 0,
                over_time: StateRecorder::default(),
            },
            stage_promotion_state,
            started: false,
            first_ts_ns: 0,
            last_cap_s: 0.0,
            last_end_s: 0.0,
            last_uplink: false,
            last_key: Key { flow: 0, exchange: None },
            timeline_start_s: 0.0,
            frames: 0,
            bytes: 0,
            bytes_up: 0,
            bytes_down: 0,
            round_trips: 0,
            airtime_s: 0.0,
            burst_time_s: 0.0,
            needed_airtime_s: 0.0,
            captured_burst_s: 0.0,
            bursts: 0,
            burst: BurstParts::default(),
            marks: Vec::new(),
            last_burst_cap_s: 0.0,
            billed_bytes: 0,
        }
    }

    /// The same simulator with no state timeline recorded.
    pub(super) fn without_timeline(mut self) -> Self {
        self.totals.over_time.off = true;
        self
    }

    /// The same simulator with every frame on the general path.
    #[cfg(test)]
    pub(super) fn without_fast_path(mut self) -> Self {
        self.fast_path_off = true;
        self
    }

    /// Books the tail after a burst (and idle time, once the radio got that
    /// far), sharing it among the burst's parts.
    fn book_tail(&mut self, gap: f64, book: &mut Book) {
        let fractions = self.burst.tail_fractions();
        let shares = &mut book.shares;
        self.totals.book_gap(&self.profile, gap, self.rai, Cat::Tail, |e, on| shares.credit_tail(fractions, e, on));
    }

    /// The promotion a packet needs after the radio reached `pos`: (state, promotion, wake-up).
    fn promotion_at(&self, pos: Position) -> Option<(usize, Promotion, bool)> {
        match pos {
            Position::Connected => None,
            Position::Idle => Some((PROMOTION, self.profile.promotion.clone(), true)),
            Position::Stage(k) => {
                let stage = self.profile.tail.get(k)?;
                if !stage.radio_on {
                    // Released (RRC idle): a new connection, the stage's
                    // own set-up if it has one (not the wake from PSM).
                    match (&stage.promotion, self.stage_promotion_state.get(k).copied().flatten()) {
                        (Some(p), Some(state)) => Some((state, p.clone(), true)),
                        _ => Some((PROMOTION, self.profile.promotion.clone(), true)),
                    }
                } else {
                    let p = stage.promotion.clone()?;
                    Some((self.stage_promotion_state.get(k).copied().flatten()?, p, false))
                }
            }
        }
    }

    /// Feeds one frame. Frames should come in capture order; a timestamp
    /// earlier than the previous one counts as no gap.
    /// Counts a frame's bytes, in all and by direction.
    #[inline]
    fn count_frame(&mut self, bytes: u64, link_len: u32, uplink: bool) {
        self.frames += 1;
        self.bytes = self.bytes.saturating_add(bytes);
        self.billed_bytes = self.billed_bytes.saturating_add(bytes.saturating_sub(u64::from(link_len)));
        if uplink {
            self.bytes_up = self.bytes_up.saturating_add(bytes);
        } else {
            self.bytes_down = self.bytes_down.saturating_add(bytes);
        }
    }

    pub fn tick(&mut self, t: &Tick, book: &mut Book) {
        if self.fast_path_ready && self.tick_connected(t, book) {
            return;
        }
        self.tick_any(t, book);
    }

    /// The common frame, in few instructions: on the captured clock, inside
    /// the current burst, the radio still connected (no tail stage reached,
    /// so no promotion and no airtime). Books exactly what
    /// [`RadioSim::tick_any`] books for such a frame, with the same float
    /// operations in the same order on each sum, without walking the
    /// profile's timers. Returns false, having changed nothing, for any
    /// other frame. Only after the first frame, with captured timing.
    #[inline]
    fn tick_connected(&mut self, t: &Tick, book: &mut Book) -> bool {
        let cap_gap = self.gap_since_last_capture(t);
        // The general path's tests, as written there (a NaN fails them).
        let continuation = cap_gap <= self.profile.link.burst_gap_s;
        if !continuation {
            return false;
        }
        let cap_s = self.last_cap_s + cap_gap;
        let gap = (cap_s - self.last_end_s).max(0.0);
        // The walk's test for the connected state (no release assistance
        // inside a burst).
        let still_connected = gap < self.profile.connected.inactivity_s;
        if !still_connected {
            return false;
        }
        self.last_cap_s = cap_s;
        self.captured_burst_s += cap_gap;
        let turn = self.last_uplink && !t.uplink;
        if turn {
            self.round_trips += 1;
        }
        let key = Key { flow: t.flow, exchange: t.exchange };
        let last_key = self.last_key;
        // The gap: this key's round trip, or one shared with the last key.
        let mut gap_credit = None;
        let gap_weight_s = if key == last_key {
            if gap > 0.0 {
                gap_credit = Some(self.totals.book(CONNECTED, gap, Cat::Transfer));
            }
            gap
        } else {
            self.book_shared_round_trip(key, last_key, gap, book);
            gap / 2.0
        };
        // The packet itself.
        let bytes = u64::from(t.wire_len);
        let bits = bytes as f64 * 8.0;
        let dir = self.directions[usize::from(t.uplink)];
        let serialisation_s = dir.serialisation_s(bits);
        self.needed_airtime_s += serialisation_s;
        let extra = dir.extra_j(bits, serialisation_s);
        let extra_credit = (extra > 0.0).then_some(extra);
        if extra > 0.0 {
            self.totals.book_extra(extra);
        }
        book.shares.of(key).add_connected_frame(gap_credit, turn, extra_credit, bytes);
        let part = self.burst.part(key, &mut book.index);
        // `+= airtime` left out: the airtime is 0 on this clock, and adding
        // 0 changes no sum that started at +0 (only -0 + 0 would).
        part.weight_s += gap_weight_s;
        part.bytes = part.bytes.saturating_add(bytes);
        self.count_frame(bytes, t.link_len, t.uplink);
        // `start_s + airtime` is `cap_s + 0`: a sum of captured gaps from
        // +0, never -0, so `cap_s` itself.
        self.last_end_s = cap_s;
        self.last_uplink = t.uplink;
        self.last_key = key;
        true
    }

    /// A round trip inside a burst between two keys (see [`RadioSim::tick_any`]):
    /// each is charged half; the last key kept the radio up for half.
    #[inline(never)]
    fn book_shared_round_trip(&mut self, key: Key, last_key: Key, gap: f64, book: &mut Book) {
        if gap > 0.0 {
            let (e, on) = self.totals.book(CONNECTED, gap, Cat::Transfer);
            book.shares.credit(key, Cat::Transfer, e / 2.0, on / 2.0);
            book.shares.credit(last_key, Cat::Transfer, e / 2.0, on / 2.0);
        }
        self.burst.part(last_key, &mut book.index).weight_s += gap / 2.0;
    }

    /// Any frame (see the module's conventions). Kept out of line: the fast
    /// path then needs few registers and a small stack frame.
    #[inline(never)]
    fn tick_any(&mut self, t: &Tick, book: &mut Book) {
        let link = self.opts.timing == Timing::Link;
        let key = Key { flow: t.flow, exchange: t.exchange };
        let bytes = u64::from(t.wire_len);
        let bits = bytes as f64 * 8.0;
        let dir = self.directions[usize::from(t.uplink)];
        let serialisation_s = dir.serialisation_s(bits);

        let start_s;
        let new_burst;
        // The frame's shares, looked up once for all its credits.
        let mut mine;
        // The frame's part of the round trip before it, for the tail's split.
        let mut gap_weight_s = 0.0;
        if !self.started {
            new_burst = true;
            self.started = true;
            self.first_ts_ns = t.ts_ns;
            self.last_cap_s = 0.0;
            let p = self.profile.promotion.clone();
            let promo_start = if link { 0.0 } else { -p.duration_s };
            self.timeline_start_s = promo_start;
            self.totals.over_time.start_at(promo_start);
            self.burst.clear(&mut book.index);
            self.bursts = 1;
            mine = book.shares.of(key);
            let (e, on) = self.totals.promote(PROMOTION, &p, true);
            mine.add(Cat::Promotion, e, on);
            start_s = if link { p.duration_s } else { 0.0 };
            self.fast_path_ready = !link && !self.fast_path_off;
        } else {
            let mut cap_gap = self.gap_since_last_capture(t);
            if let Some(interval_s) = self.opts.interval_s
                && self.profile.link.burst_gap_s < cap_gap
            {
                cap_gap = self.recadence(t.ts_ns, interval_s);
            }
            new_burst = self.profile.link.burst_gap_s < cap_gap;
            let cap_s = self.last_cap_s + cap_gap;
            self.last_cap_s = cap_s;
            let continuation = cap_gap <= self.profile.link.burst_gap_s;
            if continuation {
                self.captured_burst_s += cap_gap;
            }
            let turn = continuation && self.last_uplink && !t.uplink;
            if turn {
                self.round_trips += 1;
            }
            let gap = if link {
                if continuation { if turn { self.profile.link.rtt_s } else { 0.0 } } else { cap_gap }
            } else {
                // Captured: the radio's clock is the capture's.
                cap_s - self.last_end_s
            };
            let gap = gap.max(0.0);
            // Where does the packet find the radio? A modelled round trip
            // keeps it connected.
            let (arrival, entered) = if link && continuation {
                (Position::Connected, 0.0)
            } else {
                walk(&self.profile, gap, !continuation && self.rai, |_, _| {})
            };
            let promotion = self.promotion_at(arrival);
            let booked_gap = match (&promotion, link) {
                // Captured: the promotion ran during the last part of the gap,
                // but not before the radio reached the state it promotes from
                // (a capture not taken on the device can show the packet
                // sooner after the tail than a promotion takes).
                (Some((_, p, _)), false) => (gap - p.duration_s).max(entered),
                _ => gap,
            };
            let last_key = self.last_key;
            let same_key = key == last_key;
            if !continuation {
                // The tail of the previous burst; then a new burst begins.
                self.book_tail(booked_gap, book);
                self.burst.clear(&mut book.index);
                self.bursts += 1;
            } else if !same_key {
                // A round trip between two keys: each is charged half.
                let shares = &mut book.shares;
                self.totals.book_round_trip(&self.profile, booked_gap, link, |e, on| {
                    shares.credit(key, Cat::Transfer, e / 2.0, on / 2.0);
                    shares.credit(last_key, Cat::Transfer, e / 2.0, on / 2.0);
                });
                gap_weight_s = booked_gap / 2.0;
                self.burst.part(last_key, &mut book.index).weight_s += gap_weight_s;
            }
            mine = book.shares.of(key);
            if continuation {
                if same_key {
                    self.totals.book_round_trip(&self.profile, booked_gap, link, |e, on| {
                        mine.add(Cat::Transfer, e, on);
                    });
                    gap_weight_s = booked_gap;
                }
                if link {
                    self.burst_time_s += booked_gap;
                }
            }
            if turn {
                mine.add_round_trip();
            }
            let mut s = self.last_end_s + booked_gap;
            if let Some((state, p, wakeup)) = promotion {
                let (e, on) = self.totals.promote(state, &p, wakeup);
                mine.add(Cat::Promotion, e, on);
                s += p.duration_s;
            }
            start_s = if link { s } else { cap_s };
        }
        if new_burst {
            // Totals when the burst's first packet goes out (its promotion
            // done): consecutive marks bound exactly one cycle.
            self.last_burst_cap_s = self.last_cap_s;
            if self.marks.len() < MAX_MARKS {
                let snap = self.snapshot(self.last_cap_s);
                self.marks.push(snap);
            }
        }

        // The packet itself.
        self.needed_airtime_s += serialisation_s;
        let airtime = if link { serialisation_s } else { 0.0 };
        if airtime > 0.0 {
            let (e, on) = self.totals.book(CONNECTED, airtime, Cat::Transfer);
            mine.add(Cat::Transfer, e, on);
            self.airtime_s += airtime;
            self.burst_time_s += airtime;
        }
        let extra = dir.extra_j(bits, serialisation_s);
        if extra > 0.0 {
            self.totals.book_extra(extra);
            mine.add(Cat::Transfer, extra, 0.0);
        }
        mine.add_frame(bytes);
        let part = self.burst.part(key, &mut book.index);
        part.weight_s += gap_weight_s;
        part.weight_s += airtime;
        part.bytes = part.bytes.saturating_add(bytes);
        self.count_frame(bytes, t.link_len, t.uplink);
        self.last_end_s = start_s + airtime;
        self.last_uplink = t.uplink;
        self.last_key = key;
    }

    fn snapshot(&self, cap_s: f64) -> Snapshot {
        Snapshot {
            cap_s,
            energy_j: self.totals.energy(),
            radio_on_s: self.totals.radio_on_s,
            bytes: self.bytes,
            billed_bytes: self.billed_bytes,
            wakeups: self.totals.wakeups,
        }
    }

    /// `--interval`: the burst that begins at `ts_ns` is moved to begin
    /// `interval_s` after the latest one began (the bursts kept, the pauses
    /// changed), but never inside the latest one; every later frame moves
    /// with it. Returns the burst's gap on the re-timed clock.
    fn recadence(&mut self, ts_ns: i64, interval_s: f64) -> f64 {
        let burst_gap_s = self.profile.link.burst_gap_s;
        let want_s = (self.last_burst_cap_s + interval_s).max(self.last_cap_s + burst_gap_s + 1e-3);
        let now_s = ts_ns.saturating_sub(self.first_ts_ns) as f64 / 1e9;
        // The capture's clock shifted by whole nanoseconds: every later
        // frame's gap is computed as before.
        let shift_ns = ((want_s - now_s) * 1e9).round();
        if shift_ns.is_finite() {
            self.first_ts_ns = self.first_ts_ns.saturating_sub(shift_ns as i64);
        }
        self.gap_since_last_capture_ns(ts_ns)
    }

    fn gap_since_last_capture(&self, t: &Tick) -> f64 {
        self.gap_since_last_capture_ns(t.ts_ns)
    }

    #[inline]
    fn gap_since_last_capture_ns(&self, ts_ns: i64) -> f64 {
        let since_first_s = ts_ns.saturating_sub(self.first_ts_ns) as f64 / 1e9;
        // `since_first_s.max(last) - last` without `max`'s NaN handling:
        // neither is NaN (an integer over 1e9; a sum of such gaps from +0),
        // and `last - last` is +0.
        if since_first_s > self.last_cap_s { since_first_s - self.last_cap_s } else { 0.0 }
    }

    /// Runs the last tail to its end and builds the report. `capture_span_s`
    /// is the capture's duration (first to last frame) as the pipeline saw it.
    pub fn finish(mut self, capture_span_s: f64, book: &mut Book) -> RadioReport {
        let end = self.end(capture_span_s, book);
        self.report(end)
    }

    /// Runs the last tail to its end and works out every figure of the
    /// report that is not a name: what a fleet adds up of each device
    /// without making each one's report.
    pub(super) fn end(&mut self, capture_span_s: f64, book: &mut Book) -> Ending {
        let mut notes = Vec::new();
        if self.opts.release_assistance && self.profile.release_assistance.is_none() {
            notes.push(format!("profile {} has no release_assistance section: RAI ignored", self.profile.name));
        }
        // Only a clear mismatch: packets are instants on the captured
        // timeline, so single-packet bursts always look too fast.
        if self.opts.timing == Timing::Captured && self.needed_airtime_s > (2.0 * self.captured_burst_s).max(0.1) {
            notes.push(format!(
                "the capture moved its bursts in {:.3} s, but {} needs {:.3} s of airtime for them at {} / {} kbit/s: \
                 its timestamps come from a faster link; --timing link re-times them on this radio",
                self.captured_burst_s,
                self.profile.name,
                self.needed_airtime_s,
                self.profile.link.up_bps / 1e3,
                self.profile.link.down_bps / 1e3
            ));
        }
        let capture_span_s = if capture_span_s.is_finite() { capture_span_s.max(0.0) } else { 0.0 };
        let mut timeline_end_s = self.timeline_start_s;
        let last_frame = self.snapshot(self.last_cap_s);
        if self.started {
            // The last burst's tail runs to its end, even past the capture's end.
            let full_tail: f64 = self.profile.connected.inactivity_s.max(0.0)
                + self.profile.release_assistance.as_ref().map_or(0.0, |r| r.release_after_s)
                + self.profile.tail.iter().map(|s| s.duration_s).sum::<f64>();
            let fractions = self.burst.tail_fractions();
            let (totals, shares) = (&mut self.totals, &mut book.shares);
            let mut tail_len = 0.0;
            walk(&self.profile, full_tail, self.rai, |state, dt| {
                // Idle comes last: the tail ends there.
                if state != IDLE {
                    tail_len += dt;
                    let (e, on) = totals.book(state, dt, Cat::Tail);
                    shares.credit_tail(fractions, e, on);
                }
            });
            timeline_end_s = self.last_end_s + tail_len;
        }
        let v = self.profile.voltage_v;
        let episode_s = (timeline_end_s - self.timeline_start_s).max(0.0);
        let end = self.snapshot(self.last_cap_s);
        let tail_s = match (&self.profile.release_assistance, self.rai) {
            (Some(r), true) => r.release_after_s,
            _ => self.profile.connected_tail_s(),
        };
        let per_day = if self.started {
            let ends = Ends { last_frame, end, episode_s: episode_s.max(capture_span_s) };
            let mut day = per_day(&self.marks, &ends, self.opts.interval_s, tail_s, v);
            // The day's energy split as the capture's is (promotion,
            // transfer, tail, idle): the chart of a day's energy.
            let whole: f64 = self.totals.cat_energy.iter().sum();
            if whole > 0.0 {
                let part = |c: Cat| self.totals.cat_energy[c as usize] / whole * day.energy_j;
                day.energy_split = EnergySplit {
                    promotion_j: part(Cat::Promotion),
                    transfer_j: part(Cat::Transfer),
                    tail_j: part(Cat::Tail),
                    idle_j: part(Cat::Idle),
                };
            }
            day
        } else {
            PerDay {
                basis: "idle".into(),
                projected: true,
                charge_mah: mah(self.profile.idle_power_w * SECONDS_PER_DAY, v),
                energy_j: self.profile.idle_power_w * SECONDS_PER_DAY,
                energy_split: EnergySplit {
                    idle_j: self.profile.idle_power_w * SECONDS_PER_DAY,
                    ..EnergySplit::default()
                },
                ..PerDay::none(0, 0.0)
            }
        };
        let battery =
            self.opts.battery_mah.filter(|b| b.is_finite() && *b > 0.0 && per_day.projected).map(|capacity_mah| {
                let sleep_mah_per_day = self.opts.sleep_current_ua.max(0.0) * 24.0 / 1000.0;
                let total = per_day.charge_mah + sleep_mah_per_day;
                Battery {
                    capacity_mah,
                    sleep_current_ua: self.opts.sleep_current_ua.max(0.0),
                    radio_mah_per_day: per_day.charge_mah,
                    sleep_mah_per_day,
                    life_days: if total > 0.0 { Some(capacity_mah / total) } else { None },
                }
            });
        let link = (self.opts.timing == Timing::Link).then(|| LinkReport {
            up_kbps: self.profile.link.up_bps / 1e3,
            down_kbps: self.profile.link.down_bps / 1e3,
            rtt_s: self.profile.link.rtt_s,
            burst_gap_s: self.profile.link.burst_gap_s,
            round_trips: self.round_trips,
            rtt_wait_s: self.round_trips as f64 * self.profile.link.rtt_s,
            bytes_up: self.bytes_up,
            bytes_down: self.bytes_down,
            airtime_s: self.airtime_s,
            on_link_s: self.burst_time_s,
            retimed_span_s: (self.last_end_s - self.timeline_start_s.min(0.0)).max(0.0),
            captured_span_s: self.last_cap_s,
        });
        let energy_j = self.totals.energy();
        Ending {
            energy_j,
            charge_mah: mah(energy_j, v),
            energy: EnergySplit {
                promotion_j: self.totals.cat_energy[Cat::Promotion as usize],
                transfer_j: self.totals.cat_energy[Cat::Transfer as usize],
                tail_j: self.totals.cat_energy[Cat::Tail as usize],
                idle_j: self.totals.cat_energy[Cat::Idle as usize],
            },
            per_day,
            battery,
            link,
            notes,
        }
    }

    /// The report of a model run to its end (`end`).
    pub(super) fn report(self, end: Ending) -> RadioReport {
        let n = self.counts();
        let states = state_names(&self.profile)
            .into_iter()
            .zip(&self.totals.states)
            .map(|(state, s)| StateReport { state, radio_on: s.radio_on, time_s: s.time_s, energy_j: s.energy_j })
            .collect();
        RadioReport {
            profile: self.profile.name.clone(),
            device_class: self.profile.device_class.clone(),
            timing: self.opts.timing,
            release_assistance: self.rai,
            voltage_v: self.profile.voltage_v,
            radio_on_s: self.totals.radio_on_s,
            energy_j: end.energy_j,
            charge_mah: end.charge_mah,
            tail_energy_j: end.energy.tail_j,
            promotions: n.promotions,
            wakeups: n.wakeups,
            frames: n.frames,
            bytes: n.bytes,
            billed_bytes: n.billed_bytes,
            bytes_up: n.bytes_up,
            bytes_down: n.bytes_down,
            bursts: n.bursts,
            round_trips: n.round_trips,
            energy: end.energy,
            states,
            battery_life_days: end.battery.as_ref().and_then(|b| b.life_days),
            battery: end.battery,
            per_day: end.per_day,
            link: end.link,
            per_flow: Vec::new(),
            per_exchange: Vec::new(),
            cost: None,
            notes: end.notes,
            timeline: self.timeline(),
        }
    }

    /// The radio's states over time (None unless this model records them).
    pub(super) fn timeline(&self) -> Option<StateTimeline> {
        self.totals.over_time.finish(self.first_ts_ns as f64 / 1e9)
    }

    /// Seconds of radio on so far.
    pub(super) fn radio_on_s(&self) -> f64 {
        self.totals.radio_on_s
    }

    /// (time, energy) per state, in the order of `state_names`.
    pub(super) fn state_figures(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        self.totals.states.iter().map(|s| (s.time_s, s.energy_j))
    }

    /// The model's counts so far.
    pub(super) fn counts(&self) -> Counts {
        Counts {
            promotions: self.totals.promotions,
            wakeups: self.totals.wakeups,
            frames: self.frames,
            bytes: self.bytes,
            billed_bytes: self.billed_bytes,
            bytes_up: self.bytes_up,
            bytes_down: self.bytes_down,
            bursts: self.bursts,
            round_trips: self.round_trips,
        }
    }
}

/// A device model's counts at its end.
#[derive(Clone, Copy, Debug)]
pub(super) struct Counts {
    pub(super) promotions: u64,
    pub(super) wakeups: u64,
    pub(super) frames: u64,
    pub(super) bytes: u64,
    pub(super) billed_bytes: u64,
    pub(super) bytes_up: u64,
    pub(super) bytes_down: u64,
    pub(super) bursts: u64,
    pub(super) round_trips: u64,
}

/// What a model's end works out besides its running sums: the figures of
/// its report that are not names.
pub(super) struct Ending {
    pub(super) energy_j: f64,
    pub(super) charge_mah: f64,
    pub(super) energy: EnergySplit,
    pub(super) per_day: PerDay,
    pub(super) battery: Option<Battery>,
    pub(super) link: Option<LinkReport>,
    pub(super) notes: Vec<String>,
}

/// The names of a profile's states, in the order a model keeps them:
/// idle, promotion, connected, the tail's stages, then the promotions out
/// of those stages that have their own.
fn state_names(profile: &Profile) -> Vec<String> {
    let mut names = vec![profile.idle_name.clone(), "promotion".into(), "connected".into()];
    names.extend(profile.tail.iter().map(|stage| stage.name.clone()));
    names.extend(
        profile
            .tail
            .iter()
            .filter(|stage| stage.promotion.is_some())
            .map(|stage| format!("promotion_from_{}", stage.name)),
    );
    names
}

/// One radio fed every frame: a device's model with a book of its own.
#[derive(Clone)]
pub struct RadioSim {
    dev: DeviceSim,
    book: Book,
}

impl RadioSim {
    pub fn new(profile: Profile, opts: RadioOptions) -> Self {
        RadioSim { dev: DeviceSim::new(Arc::new(profile), opts), book: Book::default() }
    }

    /// The same simulator with every frame on the general path.
    #[cfg(test)]
    pub(super) fn without_fast_path(mut self) -> Self {
        self.dev = self.dev.without_fast_path();
        self
    }

    #[inline]
    pub fn tick(&mut self, t: &Tick) {
        self.dev.tick(t, &mut self.book);
    }

    /// The report, with every flow's and exchange's share.
    pub fn finish(mut self, capture_span_s: f64) -> RadioReport {
        let mut r = self.dev.finish(capture_span_s, &mut self.book);
        (r.per_flow, r.per_exchange) = self.book.reports(r.voltage_v);
        r
    }
}

/// Shares by flow or exchange id. Ids are handed out densely from 0, so a
/// vector indexed by id replaces a map lookup on every frame; ids past
/// `DENSE_IDS` (not made by the pipeline, but any u32 is valid) go to a map,
/// so memory follows the ids used, not their size.
#[derive(Clone, Default)]
struct Shares {
    dense: Vec<Option<Share>>,
    sparse: BTreeMap<u32, Share>,
}

const DENSE_IDS: usize = 1 << 18;

impl Shares {
    // Inlined: called on most frames.
    #[inline]
    fn entry(&mut self, id: u32) -> Option<&mut Share> {
        let i = id as usize;
        if !matches!(self.dense.get(i), Some(Some(_))) {
            if i >= DENSE_IDS {
                return Some(self.sparse.entry(id).or_default());
            }
            self.insert_dense(i);
        }
        self.dense.get_mut(i)?.as_mut()
    }

    /// A new share at dense index `i`; out of line: once per id.
    #[inline(never)]
    fn insert_dense(&mut self, i: usize) {
        if self.dense.len() <= i {
            self.dense.resize(i + 1, None);
        }
        if let Some(slot) = self.dense.get_mut(i) {
            slot.get_or_insert_with(Share::default);
        }
    }

    /// (id, share) in id order.
    fn iter(&self) -> impl Iterator<Item = (u32, &Share)> {
        let dense = self.dense.iter().enumerate().filter_map(|(i, s)| Some((u32::try_from(i).ok()?, s.as_ref()?)));
        dense.chain(self.sparse.iter().map(|(k, s)| (*k, s)))
    }
}

fn add_frame(share: &mut Share, bytes: u64) {
    share.bytes = share.bytes.saturating_add(bytes);
    share.frames += 1;
}

fn add_share(share: &mut Share, cat: Cat, energy: f64, on_s: f64) {
    if let Some(e) = share.energy.get_mut(cat as usize) {
        *e += energy;
    }
    share.radio_on_s += on_s;
}

/// The flows' and the exchanges' shares.
#[derive(Clone, Default)]
struct ShareBook {
    flows: Shares,
    exchanges: Shares,
}

impl ShareBook {
    /// The shares a frame of `key` is charged to: its flow's and its exchange's.
    fn of(&mut self, key: Key) -> KeyShares<'_> {
        KeyShares {
            flow: if key.flow == Tick::NO_FLOW { None } else { self.flows.entry(key.flow) },
            exchange: match key.exchange {
                Some(x) => self.exchanges.entry(x),
                None => None,
            },
        }
    }

    fn credit(&mut self, key: Key, cat: Cat, energy: f64, on_s: f64) {
        self.of(key).add(cat, energy, on_s);
    }

    /// Shares tail energy among the parts of the burst that just ended, by
    /// their [`BurstParts::tail_fractions`].
    fn credit_tail(&mut self, fractions: &[(Key, f64)], energy: f64, on_s: f64) {
        if energy == 0.0 && on_s == 0.0 {
            return;
        }
        for &(key, f) in fractions {
            self.credit(key, Cat::Tail, energy * f, on_s * f);
        }
    }
}

/// One key's shares, looked up once for several credits.
struct KeyShares<'a> {
    flow: Option<&'a mut Share>,
    exchange: Option<&'a mut Share>,
}

impl KeyShares<'_> {
    fn add(&mut self, cat: Cat, energy: f64, on_s: f64) {
        if let Some(share) = self.flow.as_deref_mut() {
            add_share(share, cat, energy, on_s);
        }
        if let Some(share) = self.exchange.as_deref_mut() {
            add_share(share, cat, energy, on_s);
        }
    }

    fn add_frame(&mut self, bytes: u64) {
        if let Some(share) = self.flow.as_deref_mut() {
            add_frame(share, bytes);
        }
        if let Some(share) = self.exchange.as_deref_mut() {
            add_frame(share, bytes);
        }
    }

    /// A frame's credits from [`RadioSim::tick_connected`], in the order
    /// the general path makes them: the gap, the round trip, the energy
    /// above the connected power, the frame.
    #[inline]
    fn add_connected_frame(&mut self, gap: Option<(f64, f64)>, turn: bool, extra: Option<f64>, bytes: u64) {
        for share in [self.flow.as_deref_mut(), self.exchange.as_deref_mut()].into_iter().flatten() {
            if let Some((energy, on_s)) = gap {
                add_share(share, Cat::Transfer, energy, on_s);
            }
            if turn {
                share.round_trips += 1;
            }
            if let Some(energy) = extra {
                add_share(share, Cat::Transfer, energy, 0.0);
            }
            add_frame(share, bytes);
        }
    }

    fn add_round_trip(&mut self) {
        if let Some(share) = self.flow.as_deref_mut() {
            share.round_trips += 1;
        }
        if let Some(share) = self.exchange.as_deref_mut() {
            share.round_trips += 1;
        }
    }
}

fn shares_report(map: &Shares, v: f64) -> Vec<ShareReport> {
    map.iter()
        .map(|(index, s)| {
            let energy_j: f64 = s.energy.iter().sum();
            let frac = |x: f64| if energy_j > 0.0 { x / energy_j } else { 0.0 };
            ShareReport {
                index,
                energy_j,
                charge_mah: mah(energy_j, v),
                radio_on_s: s.radio_on_s,
                promotion_j: s.energy[0],
                transfer_j: s.energy[1],
                tail_j: s.energy[2],
                promotion_share: frac(s.energy[0]),
                transfer_share: frac(s.energy[1]),
                tail_share: frac(s.energy[2]),
                frames: s.frames,
                bytes: s.bytes,
                round_trips: s.round_trips,
            }
        })
        .collect()
}

/// The `radio` section of the report.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RadioReport {
    pub profile: String,
    /// The device class the profile describes (`2012 smartphone LTE radio, AT&T ARO`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub device_class: String,
    pub timing: Timing,
    pub release_assistance: bool,
    pub voltage_v: f64,
    pub radio_on_s: f64,
    pub energy_j: f64,
    pub charge_mah: f64,
    pub tail_energy_j: f64,
    /// Every promotion, 3G FACH->DCH included.
    pub promotions: u64,
    /// Promotions from idle or from a released state.
    pub wakeups: u64,
    pub frames: u64,
    pub bytes: u64,
    /// IP bytes (link headers excluded): what operators bill.
    #[serde(default)]
    pub billed_bytes: u64,
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// Runs of frames separated by gaps longer than the profile's burst gap.
    pub bursts: u64,
    /// Uplink-to-downlink turns inside bursts.
    pub round_trips: u64,
    pub energy: EnergySplit,
    pub states: Vec<StateReport>,
    pub per_day: PerDay,
    pub battery_life_days: Option<f64>,
    pub battery: Option<Battery>,
    /// What drove `--timing link`; absent with captured timing.
    pub link: Option<LinkReport>,
    /// Idle energy belongs to no flow; everything else is charged to flows.
    pub per_flow: Vec<ShareReport>,
    /// Frames outside any exchange (connection setup, keep-alives, teardown)
    /// are charged to their flow only.
    pub per_exchange: Vec<ShareReport>,
    /// Fleet cost, filled by the caller with [`super::cost::cost`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<super::cost::CostReport>,
    pub notes: Vec<String>,
    /// The radio's states per time bin: seconds of promotion, transfer,
    /// tail and idle (at most 512 bins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<StateTimeline>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EnergySplit {
    pub promotion_j: f64,
    pub transfer_j: f64,
    pub tail_j: f64,
    pub idle_j: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StateReport {
    pub state: String,
    pub radio_on: bool,
    pub time_s: f64,
    pub energy_j: f64,
}

/// A device's day, projected from its steady cycle (or from `--interval`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PerDay {
    /// Link bytes (frames as captured).
    pub bytes: u64,
    /// IP bytes: what an operator bills (link headers excluded).
    #[serde(default)]
    pub billed_bytes: u64,
    pub wakeups: f64,
    pub radio_on_s: f64,
    pub charge_mah: f64,
    pub energy_j: f64,
    /// How the day was projected: `cycle` (the steady cycle times the cycles
    /// in a day), `interval` (the cycle re-timed by `--interval`), `none` (no
    /// repeating cycle: every figure 0), `idle` (no traffic), `devices` (the
    /// sum of the devices' days).
    pub basis: String,
    /// The captured time the projection stands on (the steady cycles').
    pub window_s: f64,
    /// `energy_j` split as the report's `energy` is: promotion, transfer, tail, idle.
    #[serde(default)]
    pub energy_split: EnergySplit,
    /// Whether there is a projection (false: `basis` is `none`).
    #[serde(default = "yes")]
    pub projected: bool,
    /// The typical cycle, multiplied by the cycles in a day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cycle: Option<CycleFigures>,
    /// Before the steady cycles (the first connection's set-up included)
    /// and after them (the final disconnect): counted once, not multiplied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup: Option<OneOff>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shutdown: Option<OneOff>,
    /// Set when the cycle's period is shorter than the radio's tail: the
    /// radio never sleeps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub never_sleeps: Option<NeverSleeps>,
    /// Bursts seen (with `basis` `none`: why there is no cycle).
    #[serde(default)]
    pub bursts: u64,
}

fn yes() -> bool {
    true
}

impl PerDay {
    /// No projection, for `bursts` bursts over `window_s`.
    pub fn none(bursts: u64, window_s: f64) -> PerDay {
        PerDay {
            bytes: 0,
            billed_bytes: 0,
            wakeups: 0.0,
            radio_on_s: 0.0,
            charge_mah: 0.0,
            energy_j: 0.0,
            basis: "none".into(),
            window_s,
            projected: false,
            cycle: None,
            startup: None,
            shutdown: None,
            never_sleeps: None,
            bursts,
            energy_split: EnergySplit::default(),
        }
    }
}

/// A device's last frame and the end of its last tail.
struct Ends {
    last_frame: Snapshot,
    end: Snapshot,
    episode_s: f64,
}

/// Traffic that kept the radio connected throughout (one wake-up, no
/// repeating burst, at least this long) is its own cycle: the day at its
/// captured rate, from the first burst's start to the last frame.
const MIN_CONTINUOUS_S: f64 = 10.0;

fn continuous_day(first: &Snapshot, ends: &Ends, bursts: u64, tail_s: f64, v: f64) -> PerDay {
    let run = between(first, &ends.last_frame);
    if ends.end.wakeups != 1 || run.period_s < MIN_CONTINUOUS_S {
        return PerDay::none(bursts, ends.episode_s);
    }
    let per_day = SECONDS_PER_DAY / run.period_s;
    let energy_j = run.energy_j * per_day;
    let startup = between(&Snapshot::default(), first);
    let shutdown = between(&ends.last_frame, &ends.end);
    let once = |c: CycleObs| OneOff {
        bytes: c.bytes as u64,
        billed_bytes: c.billed_bytes as u64,
        radio_on_s: c.radio_on_s,
        energy_j: c.energy_j,
    };
    PerDay {
        bytes: (run.bytes * per_day).round() as u64,
        billed_bytes: (run.billed_bytes * per_day).round() as u64,
        wakeups: 0.0,
        radio_on_s: SECONDS_PER_DAY,
        charge_mah: mah(energy_j, v),
        energy_j,
        basis: "continuous".into(),
        window_s: run.period_s,
        projected: true,
        cycle: None,
        startup: Some(once(startup)),
        shutdown: Some(once(shutdown)),
        never_sleeps: Some(NeverSleeps { period_s: 0.0, tail_s }),
        bursts,
        energy_split: EnergySplit::default(),
    }
}

/// A typical cycle: the median of each figure over the steady cycles.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CycleFigures {
    /// Steady cycles found, and their median period on the capture's clock.
    pub cycles: u64,
    pub period_s: f64,
    pub bytes: f64,
    pub billed_bytes: f64,
    pub radio_on_s: f64,
    pub energy_j: f64,
    pub wakeups: f64,
    /// Cycles in a day: 86,400 s over the period.
    pub per_day: f64,
    /// Cycles whose period was not the steady one (a storm, a pause).
    pub irregular: u64,
}

/// What happens once: before or after the steady cycles.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OneOff {
    pub bytes: u64,
    pub billed_bytes: u64,
    pub radio_on_s: f64,
    pub energy_j: f64,
}

/// Why the radio never sleeps: the cycle's period is shorter than the
/// time the radio stays on after a burst.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NeverSleeps {
    pub period_s: f64,
    pub tail_s: f64,
}

/// A cycle's period is steady within this fraction of the median period.
const STEADY_TOLERANCE: f64 = 0.2;

/// Figures between two marks.
#[derive(Clone, Copy, Debug, Default)]
struct CycleObs {
    period_s: f64,
    bytes: f64,
    billed_bytes: f64,
    radio_on_s: f64,
    energy_j: f64,
    wakeups: f64,
}

fn between(a: &Snapshot, b: &Snapshot) -> CycleObs {
    CycleObs {
        period_s: b.cap_s - a.cap_s,
        bytes: b.bytes.saturating_sub(a.bytes) as f64,
        billed_bytes: b.billed_bytes.saturating_sub(a.billed_bytes) as f64,
        radio_on_s: (b.radio_on_s - a.radio_on_s).max(0.0),
        energy_j: (b.energy_j - a.energy_j).max(0.0),
        wakeups: b.wakeups.saturating_sub(a.wakeups) as f64,
    }
}

/// What a cycle has beyond the typical one (set-up, a final disconnect),
/// plus what came before or after the steady cycles.
fn one_off(outside: CycleObs, edge: CycleObs, typical: &CycleObs) -> OneOff {
    let extra = |o: f64, e: f64, t: f64| o + (e - t).max(0.0);
    OneOff {
        bytes: extra(outside.bytes, edge.bytes, typical.bytes).round() as u64,
        billed_bytes: extra(outside.billed_bytes, edge.billed_bytes, typical.billed_bytes).round() as u64,
        radio_on_s: extra(outside.radio_on_s, edge.radio_on_s, typical.radio_on_s),
        energy_j: extra(outside.energy_j, edge.energy_j, typical.energy_j),
    }
}

/// The day of a device whose bursts began at `marks` (totals at each
/// burst's start) and whose timeline ended at `end`: the steady cycle's
/// median figures times the cycles in a day. Cycles are burst start to
/// burst start; the steady ones have the median period (within
/// `STEADY_TOLERANCE`), and at least two are needed, or one with
/// `--interval` (which re-timed every cycle to its period). One burst with
/// `--interval`: the burst and its tail make the cycle, idle to the period.
fn per_day(marks: &[Snapshot], ends: &Ends, interval_s: Option<f64>, tail_s: f64, v: f64) -> PerDay {
    let (end, episode_s) = (ends.end, ends.episode_s);
    let cycles: Vec<CycleObs> = marks.windows(2).filter_map(|w| Some(between(w.first()?, w.get(1)?))).collect();
    let bursts = marks.len() as u64;
    let mut periods: Vec<f64> = cycles.iter().map(|c| c.period_s).collect();
    let period = median_unordered(&mut periods);
    let steady: Vec<usize> = (0..cycles.len())
        .filter(|&i| {
            cycles.get(i).is_some_and(|c| period > 0.0 && (c.period_s - period).abs() <= STEADY_TOLERANCE * period)
        })
        .collect();
    let needed = if interval_s.is_some() { 1 } else { 2 };
    let (Some(&first), Some(&last)) = (steady.first(), steady.last()) else {
        return match (interval_s, marks.first()) {
            // Its promotion included: the cycle begins in idle.
            (Some(interval_s), Some(_)) if interval_s > 0.0 && cycles.is_empty() => {
                one_burst_day(between(&Snapshot::default(), &end), episode_s, interval_s, tail_s, v)
            }
            (None, Some(first)) => continuous_day(first, ends, bursts, tail_s, v),
            _ => PerDay::none(bursts, episode_s),
        };
    };
    if steady.len() < needed {
        return match (interval_s, marks.first()) {
            (None, Some(first)) => continuous_day(first, ends, bursts, tail_s, v),
            _ => PerDay::none(bursts, episode_s),
        };
    }
    // One list for the six medians (`periods`, done with).
    let mut pick = |f: fn(&CycleObs) -> f64| {
        periods.clear();
        periods.extend(steady.iter().filter_map(|&i| cycles.get(i)).map(f));
        median_unordered(&mut periods)
    };
    let typical = CycleObs {
        period_s: pick(|c| c.period_s),
        bytes: pick(|c| c.bytes),
        billed_bytes: pick(|c| c.billed_bytes),
        radio_on_s: pick(|c| c.radio_on_s),
        energy_j: pick(|c| c.energy_j),
        wakeups: pick(|c| c.wakeups),
    };
    let zero = Snapshot::default();
    let (Some(m_first), Some(m_last_end)) = (marks.get(first), marks.get(last + 1)) else {
        return PerDay::none(bursts, episode_s);
    };
    let before = between(&Snapshot { cap_s: 0.0, ..zero }, m_first);
    // The last burst starts a cycle the capture does not close: the part
    // of what follows the steady cycles beyond one typical cycle is the
    // shut-down.
    let after = between(m_last_end, &end);
    let edge = |i: usize| cycles.get(i).copied().unwrap_or_default();
    // Three significant figures: a 20.004 s period is the 20 s schedule
    // and its jitter, not 4,319.6 cycles a day.
    let period_s = round3(typical.period_s);
    let per_day = SECONDS_PER_DAY / period_s;
    let energy_j = typical.energy_j * per_day;
    PerDay {
        bytes: (typical.bytes * per_day).round() as u64,
        billed_bytes: (typical.billed_bytes * per_day).round() as u64,
        wakeups: typical.wakeups * per_day,
        radio_on_s: (typical.radio_on_s * per_day).min(SECONDS_PER_DAY),
        charge_mah: mah(energy_j, v),
        energy_j,
        basis: if interval_s.is_some() { "interval" } else { "cycle" }.into(),
        window_s: m_last_end.cap_s - m_first.cap_s,
        projected: true,
        cycle: Some(CycleFigures {
            cycles: steady.len() as u64,
            period_s,
            bytes: typical.bytes,
            billed_bytes: typical.billed_bytes,
            radio_on_s: typical.radio_on_s,
            energy_j: typical.energy_j,
            wakeups: typical.wakeups,
            per_day,
            irregular: (cycles.len() - steady.len()) as u64,
        }),
        startup: Some(one_off(before, edge(first), &typical)),
        shutdown: Some(one_off(CycleObs::default(), after, &typical)),
        never_sleeps: (period_s < tail_s).then_some(NeverSleeps { period_s, tail_s }),
        bursts,
        energy_split: EnergySplit::default(),
    }
}

/// `x` to three significant figures.
fn round3(x: f64) -> f64 {
    if x > 0.0 && x.is_finite() {
        let step = 10f64.powi(x.log10().floor() as i32 - 2);
        (x / step).round() * step
    } else {
        x
    }
}

/// One burst repeated every `interval_s`: its cycle is the burst, its tail
/// and idle time to the period; a tail longer than the period is cut there
/// (its energy taken pro rata: the next burst would find the radio on).
fn one_burst_day(episode: CycleObs, episode_s: f64, interval_s: f64, tail_s: f64, v: f64) -> PerDay {
    let keep = if episode_s > interval_s && episode_s > 0.0 { interval_s / episode_s } else { 1.0 };
    let per_day = SECONDS_PER_DAY / interval_s;
    let cycle = CycleObs {
        period_s: interval_s,
        radio_on_s: episode.radio_on_s * keep,
        energy_j: episode.energy_j * keep,
        wakeups: if keep < 1.0 { 0.0 } else { episode.wakeups },
        ..episode
    };
    let energy_j = cycle.energy_j * per_day;
    PerDay {
        bytes: (cycle.bytes * per_day).round() as u64,
        billed_bytes: (cycle.billed_bytes * per_day).round() as u64,
        wakeups: cycle.wakeups * per_day,
        radio_on_s: (cycle.radio_on_s * per_day).min(SECONDS_PER_DAY),
        charge_mah: mah(energy_j, v),
        energy_j,
        basis: "interval".into(),
        window_s: episode_s,
        projected: true,
        cycle: Some(CycleFigures {
            cycles: 1,
            period_s: interval_s,
            bytes: cycle.bytes,
            billed_bytes: cycle.billed_bytes,
            radio_on_s: cycle.radio_on_s,
            energy_j: cycle.energy_j,
            wakeups: cycle.wakeups,
            per_day,
            irregular: 0,
        }),
        startup: Some(OneOff::default()),
        shutdown: Some(OneOff::default()),
        never_sleeps: (interval_s < tail_s).then_some(NeverSleeps { period_s: interval_s, tail_s }),
        bursts: 1,
        energy_split: EnergySplit::default(),
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Battery {
    pub capacity_mah: f64,
    pub sleep_current_ua: f64,
    pub radio_mah_per_day: f64,
    pub sleep_mah_per_day: f64,
    pub life_days: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinkReport {
    pub up_kbps: f64,
    pub down_kbps: f64,
    pub rtt_s: f64,
    pub burst_gap_s: f64,
    pub round_trips: u64,
    pub rtt_wait_s: f64,
    pub bytes_up: u64,
    pub bytes_down: u64,
    /// Serialisation time of every frame at the link's rates.
    pub airtime_s: f64,
    /// Time inside bursts: airtime plus round-trip waits.
    pub on_link_s: f64,
    pub retimed_span_s: f64,
    pub captured_span_s: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShareReport {
    pub index: u32,
    pub energy_j: f64,
    pub charge_mah: f64,
    pub radio_on_s: f64,
    pub promotion_j: f64,
    pub transfer_j: f64,
    pub tail_j: f64,
    pub promotion_share: f64,
    pub transfer_share: f64,
    pub tail_share: f64,
    pub frames: u64,
    pub bytes: u64,
    pub round_trips: u64,
}

#[cfg(test)]
mod burst_tests {
    use super::*;

    /// A fleet's models do not stay in the cache: what every frame reads
    /// (`tick_connected`, `BurstParts::part`, `Totals::book`) sits in the
    /// first cache lines of a model, the rest after it.
    #[test]
    fn what_every_frame_reads_comes_first() {
        use std::mem::{offset_of, size_of};
        let burst_latest = offset_of!(DeviceSim, burst) + offset_of!(BurstParts, latest) + size_of::<usize>();
        let totals = offset_of!(DeviceSim, totals);
        let recorder_off = totals + offset_of!(Totals, over_time) + offset_of!(StateRecorder, off);
        let radio_on = totals + offset_of!(Totals, radio_on_s) + size_of::<f64>();
        assert!(offset_of!(DeviceSim, bytes_down) < 2 * 64);
        assert!(burst_latest <= 4 * 64, "{burst_latest}");
        assert!(recorder_off < 5 * 64, "{recorder_off}");
        assert!(radio_on <= 7 * 64, "{radio_on}");
        assert!(radio_on < offset_of!(DeviceSim, opts));
    }

    #[test]
    fn gap_since_last_capture_is_the_max_formula_to_the_bit() -> crate::dissect::testkit::TestResult {
        let profile = Profile::builtin("lte").ok_or("no such profile")?;
        let mut sim = DeviceSim::new(Arc::new(profile), RadioOptions::default());
        sim.first_ts_ns = 1_000;
        for last in [0.0, 1e-9, 0.5, 3.25, 9.3e9] {
            sim.last_cap_s = last;
            for ts_ns in [i64::MIN, -5, 0, 999, 1_000, 1_001, 500_001_000, 3_250_001_000, i64::MAX] {
                let since_first_s = ts_ns.saturating_sub(1_000) as f64 / 1e9;
                let want = since_first_s.max(last) - last;
                let got = sim.gap_since_last_capture(&Tick {
                    ts_ns,
                    wire_len: 0,
                    uplink: true,
                    flow: 0,
                    exchange: None,
                    link_len: 0,
                });
                assert_eq!(got.to_bits(), want.to_bits(), "ts {ts_ns} last {last}");
            }
        }
        Ok(())
    }

    #[test]
    fn burst_parts_keep_every_key_apart() {
        let key = |flow, exchange| Key { flow, exchange };
        let (a, b, c) = (key(1, Some(5)), key(2, Some(5)), key(Tick::NO_FLOW, None));
        let (far, flow_only) = (key(3, Some(u32::MAX)), key(1, None));
        let mut parts = BurstParts::default();
        let index = &mut BurstIndex::default();
        for (k, w) in [(a, 1.0), (b, 2.0), (a, 4.0), (a, 8.0), (c, 16.0), (far, 32.0), (flow_only, 64.0), (b, 128.0)] {
            let p = parts.part(k, index);
            p.weight_s += w;
            p.bytes += 1;
        }
        let got: Vec<(Key, f64, u64)> = parts.sorted().into_iter().map(|(k, p)| (k, p.weight_s, p.bytes)).collect();
        let want = vec![(flow_only, 64.0, 1), (a, 13.0, 3), (b, 130.0, 2), (far, 32.0, 1), (c, 16.0, 1)];
        assert_eq!(got, want);
        parts.part(b, index).weight_s += 256.0;
        assert_eq!(parts.sorted().iter().find(|(k, _)| *k == b).map(|(_, p)| p.weight_s), Some(386.0));
        parts.clear(index);
        assert!(parts.sorted().is_empty());
        assert_eq!(parts.part(b, index).weight_s, 0.0);
        assert_eq!(parts.sorted().len(), 1);
    }
}
