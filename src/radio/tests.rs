//! Hand-computed timelines, to the microjoule.
//!
//! Reference powers (from profiles/*.toml):
//! - LTE: promotion 0.26 s x 1.21 W = 0.3146 J; connected 1.2 W for 0.1 s;
//!   short DRX 1.06 + 0.62 x 2/20 = 1.122 W for 0.02 s; long DRX
//!   1.06 + 0.62 x 2/40 = 1.091 W for 10 s; full tail 0.12 + 0.02244 + 10.91
//!   = 11.05244 J over 10.12 s; idle 0.594 x 0.043 / 1.28 = 0.0199546875 W;
//!   438.39 nJ per uplink bit, 51.97 nJ per downlink bit.
//! - NB-IoT at 3.7 V: promotion 2.7 s x 0.2037 W = 0.54999 J; connected
//!   45 mA = 0.1665 W for 0.2 s; connected DRX 1.5 mA = 0.00555 W for 20 s;
//!   idle eDRX 37 uA = 136.9 uW for 60 s, left by an RRC set-up of 0.5 s
//!   at 45 mA = 0.08325 J; PSM 2.7 uA = 9.99 uW.

use super::*;
use crate::dissect::testkit::TestResult;

const UJ: f64 = 1e-6;
const LTE_PROMO: f64 = 0.3146;
const LTE_TAIL: f64 = 0.12 + 0.02244 + 10.91;
const LTE_IDLE_W: f64 = 0.0199546875;
const UP_BIT: f64 = 438.39e-9;
const DOWN_BIT: f64 = 51.97e-9;
const NB_PROMO: f64 = 2.7 * 0.2037;
const NB_CONN_W: f64 = 0.045 * 3.7;
/// An RRC connection set up from idle eDRX: 0.5 s at the connected current.
const NB_RRC: f64 = 0.5 * NB_CONN_W;
const NB_CDRX_W: f64 = 0.0015 * 3.7;
const NB_EDRX_W: f64 = 37e-6 * 3.7;
const NB_PSM_W: f64 = 2.7e-6 * 3.7;

fn assert_j(what: &str, got: f64, want: f64) {
    assert!((got - want).abs() < UJ, "{what}: got {got:.9} J, want {want:.9} J");
}

fn tick(t_s: f64, len: u32, uplink: bool) -> Tick {
    Tick { ts_ns: (t_s * 1e9).round() as i64, wire_len: len, uplink, flow: 0, exchange: None, link_len: 0 }
}

fn xtick(t_s: f64, len: u32, uplink: bool, exchange: u32) -> Tick {
    Tick { exchange: Some(exchange), ..tick(t_s, len, uplink) }
}

fn run(profile: &str, opts: RadioOptions, ticks: &[Tick]) -> TestResult<RadioReport> {
    let mut sim = RadioSim::new(Profile::builtin(profile).ok_or_else(|| format!("no profile {profile}"))?, opts);
    for t in ticks {
        sim.tick(t);
    }
    let span = match (ticks.first(), ticks.last()) {
        (Some(a), Some(b)) => (b.ts_ns - a.ts_ns) as f64 / 1e9,
        _ => 0.0,
    };
    Ok(sim.finish(span))
}

fn captured() -> RadioOptions {
    RadioOptions::default()
}

fn link() -> RadioOptions {
    RadioOptions { timing: Timing::Link, ..RadioOptions::default() }
}

fn state(r: &RadioReport, name: &str) -> (f64, f64) {
    let s = r.states.iter().find(|s| s.state == name).unwrap_or_else(|| panic!("no state {name}"));
    (s.time_s, s.energy_j)
}

fn check_split(r: &RadioReport) {
    let e = &r.energy;
    assert_j("split adds up", e.promotion_j + e.transfer_j + e.tail_j + e.idle_j, r.energy_j);
    let by_state: f64 = r.states.iter().map(|s| s.energy_j).sum();
    assert_j("states add up", by_state, r.energy_j);
    assert_j("tail field", r.tail_energy_j, e.tail_j);
    let flows: f64 = r.per_flow.iter().map(|f| f.energy_j).sum();
    assert_j("flows carry all but idle", flows, r.energy_j - e.idle_j);
}

#[test]
fn lte_one_packet() -> TestResult {
    let r = run("lte", captured(), &[tick(0.0, 100, true)])?;
    let bits = 800.0 * UP_BIT;
    assert_j("promotion", r.energy.promotion_j, LTE_PROMO);
    assert_j("transfer", r.energy.transfer_j, bits);
    assert_j("tail", r.energy.tail_j, LTE_TAIL);
    assert_j("idle", r.energy.idle_j, 0.0);
    assert_j("total", r.energy_j, 11.367390712);
    assert_j("radio on", r.radio_on_s, 0.26 + 10.12);
    assert_eq!((r.promotions, r.wakeups), (1, 1));
    assert_j("charge", r.charge_mah, 11.367390712 / 3.7 / 3.6);
    assert_j("long DRX time", state(&r, "long_drx").0, 10.0);
    assert_j("short DRX energy", state(&r, "short_drx").1, 0.02244);
    check_split(&r);
    Ok(())
}

#[test]
fn lte_two_packets_inside_one_tail() -> TestResult {
    // Second packet 5 s later finds the radio in long DRX: no promotion.
    let r = run("lte", captured(), &[tick(0.0, 100, true), tick(5.0, 200, false)])?;
    let gap = 0.12 + 0.02244 + 4.88 * 1.091;
    let bits = 800.0 * UP_BIT + 1600.0 * DOWN_BIT;
    assert_eq!((r.promotions, r.wakeups), (1, 1));
    assert_j("tail", r.energy.tail_j, gap + LTE_TAIL);
    assert_j("total", r.energy_j, LTE_PROMO + bits + gap + LTE_TAIL);
    assert_j("total (by hand)", r.energy_j, 16.833993864);
    assert_j("radio on", r.radio_on_s, 0.26 + 5.0 + 10.12);
    check_split(&r);
    Ok(())
}

#[test]
fn lte_two_packets_just_outside_the_tail() -> TestResult {
    // 10.2 s > 10.12 s tail: the radio idled, the second packet needs a new
    // promotion. The capture shows the packet 0.08 s after the tail ended,
    // less than the 0.26 s promotion: the first tail still runs in full.
    let r = run("lte", captured(), &[tick(0.0, 100, true), tick(10.2, 100, true)])?;
    assert_eq!((r.promotions, r.wakeups), (2, 2));
    assert_j("promotion", r.energy.promotion_j, 2.0 * LTE_PROMO);
    assert_j("tail", r.energy.tail_j, 2.0 * LTE_TAIL);
    assert_j("total", r.energy_j, 22.734781424);
    check_split(&r);

    // Just inside (10.0 s): one promotion, the tail is cut short.
    let r = run("lte", captured(), &[tick(0.0, 100, true), tick(10.0, 100, true)])?;
    assert_eq!(r.promotions, 1);
    assert_j("total", r.energy_j, LTE_PROMO + 0.12 + 0.02244 + 9.88 * 1.091 + LTE_TAIL + 1600.0 * UP_BIT);

    // Well outside (15 s): idle paging for 15 - 10.12 - 0.26 s before the promotion.
    let r = run("lte", captured(), &[tick(0.0, 100, true), tick(15.0, 100, true)])?;
    let idle_s = 15.0 - 10.12 - 0.26;
    assert_j("idle time", state(&r, "idle").0, idle_s);
    assert_j("idle", r.energy.idle_j, idle_s * LTE_IDLE_W);
    assert_j("total", r.energy_j, 2.0 * (LTE_PROMO + LTE_TAIL + 800.0 * UP_BIT) + idle_s * LTE_IDLE_W);
    check_split(&r);
    Ok(())
}

#[test]
fn lte_long_transfer_at_a_known_rate_captured() -> TestResult {
    // 1000-byte frames every 10 ms for 2 s (800 kbit/s): continuous reception
    // throughout (10 ms < 100 ms inactivity).
    let ticks: Vec<Tick> = (0..=200).map(|i| tick(i as f64 * 0.01, 1000, true)).collect();
    let r = run("lte", captured(), &ticks)?;
    let bits = 201.0 * 8000.0 * UP_BIT;
    assert_j("transfer", r.energy.transfer_j, 2.0 * 1.2 + bits);
    assert_j("total", r.energy_j, LTE_PROMO + 2.4 + bits + LTE_TAIL);
    assert_j("connected time", state(&r, "connected").0, 2.0 + 0.1);
    assert_eq!(r.bursts, 1);
    check_split(&r);
    Ok(())
}

#[test]
fn lte_long_transfer_at_a_known_rate_on_the_link() -> TestResult {
    // 100 uplink frames of 1410 bytes, captured 1 ms apart: on a 5.64 Mbit/s
    // uplink each takes 11280 / 5.64e6 = 2 ms, back to back.
    let ticks: Vec<Tick> = (0..100).map(|i| tick(i as f64 * 0.001, 1410, true)).collect();
    let r = run("lte", link(), &ticks)?;
    let link = r.link.as_ref().ok_or("no link section")?;
    assert_j("airtime", link.airtime_s, 0.2);
    assert_eq!(link.round_trips, 0);
    assert_j("transfer", r.energy.transfer_j, 0.2 * 1.2 + 1_128_000.0 * UP_BIT);
    assert_j("total", r.energy_j, LTE_PROMO + 0.24 + 0.49450392 + LTE_TAIL);
    assert_j("radio on", r.radio_on_s, 0.26 + 0.2 + 10.12);
    // the promotion delays the transfer on the link timeline
    assert_j("retimed span", link.retimed_span_s, 0.26 + 0.2);
    assert_eq!(r.timing, Timing::Link);
    check_split(&r);
    Ok(())
}

#[test]
fn link_timing_waits_a_round_trip_for_the_answer() -> TestResult {
    let r = run("lte", link(), &[tick(0.0, 100, true), tick(0.001, 200, false), tick(0.002, 100, true)])?;
    let up = 800.0 / 5.64e6;
    let down = 1600.0 / 12.74e6;
    let link = r.link.as_ref().ok_or("no link section")?;
    assert_eq!(link.round_trips, 1);
    assert_j("on link", link.on_link_s, 2.0 * up + 0.07 + down);
    let connected = (2.0 * up + 0.07 + down) * 1.2;
    assert_j("total", r.energy_j, LTE_PROMO + connected + 1600.0 * UP_BIT + 1600.0 * DOWN_BIT + LTE_TAIL);
    check_split(&r);
    Ok(())
}

#[test]
fn umts_fach_promotion_uses_the_average() -> TestResult {
    let r = run("umts", captured(), &[tick(0.0, 100, true)])?;
    assert_j("one packet", r.energy_j, 2.0 * 0.65 + 4.0 * 1.30 + 10.0 * 0.30);
    assert_j("radio on", r.radio_on_s, 16.0);
    // A packet 6 s later finds FACH: 1.5 s FACH->DCH promotion at 0.8 W,
    // placed before the packet (FACH 4.0 .. 4.5 s, promotion 4.5 .. 6.0 s).
    let r = run("umts", captured(), &[tick(0.0, 100, true), tick(6.0, 100, true)])?;
    assert_eq!((r.promotions, r.wakeups), (2, 1));
    assert_j("fach->dch", state(&r, "promotion_from_fach").1, 1.2);
    assert_j("fach", state(&r, "fach").0, 0.5 + 10.0);
    assert_j("total", r.energy_j, 1.3 + 5.2 + 0.15 + 1.2 + 8.2);
    check_split(&r);
    Ok(())
}

#[test]
fn wifi_tail_then_power_save() -> TestResult {
    let r = run("wifi", captured(), &[tick(0.0, 100, true), tick(1.0, 100, false)])?;
    assert_eq!(r.wakeups, 2);
    assert_j("standby", state(&r, "standby_psm").1, 0.75 * 0.02);
    assert_j("total", r.energy_j, 2.0 * 0.25 * 0.403 + 0.75 * 0.02);
    check_split(&r);
    Ok(())
}

#[test]
fn nbiot_psm_entry_and_exit() -> TestResult {
    // Packet at 0 s, next at 200 s: connected 0.2 s, connected DRX 20 s,
    // idle eDRX 60 s (the active time), PSM from 80.2 s; the second packet
    // wakes the radio from PSM with a 2.7 s promotion ending at 200 s.
    let r = run("nbiot", captured(), &[tick(0.0, 100, true), tick(200.0, 100, true)])?;
    let psm_s = 200.0 - 2.7 - 80.2;
    let tail = 0.2 * NB_CONN_W + 20.0 * NB_CDRX_W + 60.0 * NB_EDRX_W;
    assert_j("tail by hand", tail, 0.152514);
    assert_j("psm time", state(&r, "psm").0, psm_s);
    assert_j("psm energy", r.energy.idle_j, psm_s * NB_PSM_W);
    assert_j("total", r.energy_j, 2.0 * NB_PROMO + 2.0 * tail + psm_s * NB_PSM_W);
    assert_j("total (by hand)", r.energy_j, 1.406177829);
    assert_eq!((r.promotions, r.wakeups), (2, 2));
    // idle eDRX and PSM are not radio-on time
    assert_j("radio on", r.radio_on_s, 2.0 * (2.7 + 20.2));
    check_split(&r);
    Ok(())
}

#[test]
fn nbiot_edrx_wakeup() -> TestResult {
    // Next packet at 50 s finds the radio released, in idle eDRX since
    // 20.2 s: an RRC set-up from idle (0.5 s at the connected current),
    // not the wake from PSM.
    let r = run("nbiot", captured(), &[tick(0.0, 100, true), tick(50.0, 100, true)])?;
    let edrx_s = 50.0 - 0.5 - 20.2;
    assert_j("edrx time", state(&r, "idle_edrx").0, edrx_s + 60.0);
    assert_eq!((r.wakeups, r.promotions), (2, 2));
    assert_j("set-up from idle", state(&r, "promotion_from_idle_edrx").1, NB_RRC);
    let first_gap = 0.2 * NB_CONN_W + 20.0 * NB_CDRX_W + edrx_s * NB_EDRX_W;
    assert_j("total", r.energy_j, NB_PROMO + NB_RRC + first_gap + 0.152514);
    assert_j("total (by hand)", r.energy_j, 0.93406517);
    assert_j("no PSM yet", r.energy.idle_j, 0.0);
    check_split(&r);
    Ok(())
}

#[test]
fn nbiot_release_assistance_skips_the_connected_tail() -> TestResult {
    let opts = RadioOptions { release_assistance: true, ..captured() };
    let r = run("nbiot", opts, &[tick(0.0, 100, true)])?;
    assert!(r.release_assistance);
    assert_j("tail", r.energy.tail_j, 0.1 * NB_CONN_W + 60.0 * NB_EDRX_W);
    assert_j("total", r.energy_j, NB_PROMO + 0.024864);
    // without RAI
    let r = run("nbiot", captured(), &[tick(0.0, 100, true)])?;
    assert_j("total", r.energy_j, NB_PROMO + 0.152514);
    // LTE has no RAI: ignored, and the report says so
    let r = run("lte", RadioOptions { release_assistance: true, ..captured() }, &[tick(0.0, 100, true)])?;
    assert!(!r.release_assistance);
    assert_eq!(r.notes.len(), 1);
    Ok(())
}

#[test]
fn shared_tail_is_split_by_the_time_each_exchange_kept_the_radio_up() -> TestResult {
    // Exchange 0: 0.0 up, 0.2 down. Exchange 1: 0.3 up, 0.35 down.
    // Radio time: gap 0.2 -> ex 0; gap 0.1 (ex 0 -> ex 1) split; gap 0.05 -> ex 1.
    // Weights 0.25 and 0.10; the final tail is split 5:2.
    let ticks =
        [xtick(0.0, 100, true, 0), xtick(0.2, 100, false, 0), xtick(0.3, 100, true, 1), xtick(0.35, 100, false, 1)];
    let r = run("lte", captured(), &ticks)?;
    let bits = 800.0 * (UP_BIT + DOWN_BIT);
    let e0 = &r.per_exchange[0];
    let e1 = &r.per_exchange[1];
    assert_j("ex0 promotion", e0.promotion_j, LTE_PROMO);
    assert_j("ex0 transfer", e0.transfer_j, 0.12 + 0.02244 + 0.08 * 1.091 + 0.06 + bits);
    assert_j("ex1 transfer", e1.transfer_j, 0.06 + 0.06 + bits);
    assert_j("ex0 tail", e0.tail_j, LTE_TAIL * 0.25 / 0.35);
    assert_j("ex1 tail", e1.tail_j, LTE_TAIL * 0.10 / 0.35);
    assert_j("exchanges carry all", e0.energy_j + e1.energy_j, r.energy_j);
    assert!((e1.tail_share - e1.tail_j / e1.energy_j).abs() < 1e-12);
    assert_eq!(r.round_trips, 2);
    check_split(&r);
    Ok(())
}

#[test]
fn link_round_trips_are_charged_to_their_exchange_and_back_to_back_packets_to_none() -> TestResult {
    // Re-timed: ex 0 up, one round trip, ex 0 down; ex 1 up at once (no turn:
    // a zero gap, split between the two exchanges), a round trip, ex 1 down.
    // Both kept the radio up for a round trip and two airtimes: the final
    // tail is split evenly.
    let ticks =
        [xtick(0.0, 100, true, 0), xtick(0.2, 100, false, 0), xtick(0.3, 100, true, 1), xtick(0.35, 100, false, 1)];
    let r = run("lte", link(), &ticks)?;
    let airtime = 800.0 / 5.64e6 + 800.0 / 12.74e6;
    let each = (0.07 + airtime) * 1.2 + 800.0 * (UP_BIT + DOWN_BIT);
    let e0 = &r.per_exchange[0];
    let e1 = &r.per_exchange[1];
    assert_j("ex0 promotion", e0.promotion_j, LTE_PROMO);
    assert_j("ex1 promotion", e1.promotion_j, 0.0);
    assert_j("ex0 transfer", e0.transfer_j, each);
    assert_j("ex1 transfer", e1.transfer_j, each);
    assert_j("ex0 tail", e0.tail_j, LTE_TAIL / 2.0);
    assert_j("ex1 tail", e1.tail_j, LTE_TAIL / 2.0);
    assert_eq!((e0.round_trips, e1.round_trips, r.round_trips), (1, 1, 2));
    assert_eq!((e0.frames, e1.frames), (2, 2));
    check_split(&r);
    Ok(())
}

#[test]
fn per_day_from_wakeup_cycles_and_battery_life() -> TestResult {
    // A reading every 20 s, 8 readings: 7 full cycles between the first and
    // the last wake-up, each = promotion + bits + tail + idle.
    let ticks: Vec<Tick> = (0..8).map(|i| tick(i as f64 * 20.0, 100, true)).collect();
    let opts = RadioOptions { battery_mah: Some(3000.0), sleep_current_ua: 5.0, ..captured() };
    let r = run("lte", opts, &ticks)?;
    assert_eq!(r.wakeups, 8);
    let cycle = LTE_PROMO + 800.0 * UP_BIT + LTE_TAIL + (20.0 - 10.12 - 0.26) * LTE_IDLE_W;
    let per_day_j = cycle * 4320.0;
    assert!((r.per_day.wakeups - 4320.0).abs() < 1e-9);
    assert_eq!(r.per_day.bytes, 432_000);
    assert!((r.per_day.energy_j - per_day_j).abs() < 1e-6);
    assert!((r.per_day.charge_mah - per_day_j / 3.7 / 3.6).abs() < 1e-6);
    assert!((r.per_day.radio_on_s - 4320.0 * 10.38).abs() < 1e-6);
    let battery = r.battery.as_ref().ok_or("no battery section")?;
    assert!((battery.sleep_mah_per_day - 0.12).abs() < 1e-12);
    let life = 3000.0 / (per_day_j / 3.7 / 3.6 + 0.12);
    assert!((r.battery_life_days.ok_or("no battery life")? - life).abs() < 1e-9);
    Ok(())
}

#[test]
fn one_burst_has_no_day_unless_an_interval_is_given() -> TestResult {
    let r = run("lte", captured(), &[tick(0.0, 100, true)])?;
    assert!(!r.per_day.projected);
    assert_eq!((r.per_day.basis.as_str(), r.per_day.bytes, r.per_day.charge_mah), ("none", 0, 0.0));
    // episode: 0.26 s promotion + 10.12 s tail
    assert!((r.per_day.window_s - 10.38).abs() < 1e-9);
    assert_eq!(r.battery_life_days, None);
    // Every 30 s: the burst, its tail, idle to the period.
    let every_30s = RadioOptions { interval_s: Some(30.0), ..captured() };
    let r = run("lte", every_30s, &[tick(0.0, 100, true)])?;
    assert_eq!(r.per_day.basis, "interval");
    assert_eq!(r.per_day.bytes, 100 * 2880);
    assert!((r.per_day.wakeups - 2880.0).abs() < 1e-9);
    assert!((r.per_day.energy_j - 2880.0 * (LTE_PROMO + 800.0 * UP_BIT + LTE_TAIL)).abs() < 1e-6);
    Ok(())
}

#[test]
fn interval_re_times_the_bursts_and_keeps_them() -> TestResult {
    // Readings every 20 s re-timed to every 30 s: each cycle gets 10 s
    // more idle; the bursts themselves are as captured.
    let ticks: Vec<Tick> =
        (0..8).flat_map(|i| [tick(i as f64 * 20.0, 100, true), tick(i as f64 * 20.0 + 0.05, 60, false)]).collect();
    let r = run("lte", RadioOptions { interval_s: Some(30.0), ..captured() }, &ticks)?;
    let c = r.per_day.cycle.as_ref().ok_or("no cycle")?;
    assert_eq!((c.cycles, c.period_s, r.per_day.basis.as_str()), (7, 30.0, "interval"));
    assert!((r.per_day.wakeups - 2880.0).abs() < 1e-9);
    assert_eq!(r.per_day.bytes, 160 * 2880);
    let cycle = LTE_PROMO
        + 0.05 * 1.2
        + 800.0 * UP_BIT
        + 480.0 * DOWN_BIT
        + LTE_TAIL
        + (30.0 - 10.12 - 0.26 - 0.05) * LTE_IDLE_W;
    assert!((c.energy_j - cycle).abs() < 1e-6, "{} vs {cycle}", c.energy_j);
    // Shorter than the tail: the radio never sleeps, and the report says why.
    let r = run("lte", RadioOptions { interval_s: Some(2.0), ..captured() }, &ticks)?;
    let n = r.per_day.never_sleeps.as_ref().ok_or("no never_sleeps")?;
    assert_eq!((n.period_s, n.tail_s), (2.0, 10.12));
    assert_eq!(r.per_day.wakeups, 0.0);
    Ok(())
}

#[test]
fn steady_cycle_leaves_start_up_shut_down_and_storms_out() -> TestResult {
    // A connect burst, 6 readings every 20 s, a storm of bursts 1 s apart,
    // 4 more readings, then a keep-alive 60 s later and a disconnect.
    let mut ticks = vec![tick(0.0, 500, true), tick(0.05, 400, false)];
    let mut at = |t: f64| ticks.push(tick(t, 100, true));
    for i in 0..6 {
        at(10.0 + 20.0 * i as f64);
    }
    for i in 0..5 {
        at(111.0 + i as f64);
    }
    for i in 0..4 {
        at(130.0 + 20.0 * i as f64);
    }
    at(250.0);
    at(256.0);
    let r = run("lte", captured(), &ticks)?;
    let d = &r.per_day;
    let c = d.cycle.as_ref().ok_or("no cycle")?;
    assert_eq!((d.basis.as_str(), c.period_s, c.bytes, c.wakeups), ("cycle", 20.0, 100.0, 1.0));
    assert!((d.wakeups - 4320.0).abs() < 1e-9);
    assert_eq!(d.bytes, 432_000);
    assert!(c.irregular > 0);
    // Start-up: the connect burst and its promotion; shut-down: the keep-alive and disconnect.
    let (s, e) = (d.startup.as_ref().ok_or("no start-up")?, d.shutdown.as_ref().ok_or("no shut-down")?);
    assert_eq!(s.bytes, 900);
    assert!(e.bytes >= 100 && e.energy_j > LTE_TAIL, "{e:?}");
    Ok(())
}

#[test]
fn no_traffic_and_hostile_input_do_not_panic() -> TestResult {
    let r = RadioSim::new(Profile::builtin("lte").ok_or("no such profile")?, RadioOptions::default()).finish(f64::NAN);
    assert_eq!(r.energy_j, 0.0);
    assert_eq!(r.per_day.bytes, 0);
    assert!(r.per_day.charge_mah > 0.0); // idle paging all day
    for timing in [Timing::Captured, Timing::Link] {
        for name in Profile::builtin_names() {
            let mut sim = RadioSim::new(
                Profile::builtin(name).ok_or("no such profile")?,
                RadioOptions { timing, ..RadioOptions::default() },
            );
            for (i, ts) in [i64::MIN, i64::MAX, 0, -5, i64::MAX, 3].into_iter().enumerate() {
                sim.tick(&Tick {
                    ts_ns: ts,
                    wire_len: u32::MAX,
                    uplink: i % 2 == 0,
                    flow: u32::MAX,
                    exchange: Some(u32::MAX),
                    link_len: u32::MAX,
                });
            }
            let r = sim.finish(-1.0);
            assert!(r.energy_j.is_finite() && r.energy_j >= 0.0, "{name}");
            assert!(r.per_flow.is_empty(), "NO_FLOW frames are in no flow");
            assert!(r.per_day.charge_mah.is_finite(), "{name}");
            serde_json::to_string(&r)?;
        }
    }
    Ok(())
}

#[test]
fn report_has_the_contract_fields() -> TestResult {
    let r = run("lte", captured(), &[tick(0.0, 100, true)])?;
    let v = serde_json::to_value(&r)?;
    for k in ["profile", "radio_on_s", "energy_j", "charge_mah", "tail_energy_j", "promotions", "per_day"] {
        assert!(v.get(k).is_some(), "{k}");
    }
    for k in ["bytes", "wakeups", "radio_on_s", "charge_mah"] {
        assert!(v["per_day"].get(k).is_some(), "per_day.{k}");
    }
    assert_eq!(v["profile"], "lte");
    assert_eq!(v["timing"], "captured");
    Ok(())
}

/// Ticks extracted from a shipped capture with tshark (see the file's header).
fn capture_ticks(text: &str) -> TestResult<Vec<Tick>> {
    let mut ticks = vec![];
    for l in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let f: Vec<&str> = l.split_whitespace().collect();
        ticks.push(Tick {
            ts_ns: f[0].parse()?,
            wire_len: f[1].parse()?,
            uplink: f[2] == "1",
            flow: f[3].parse()?,
            exchange: None,
            link_len: 14,
        });
    }
    Ok(ticks)
}

#[test]
fn nbiot_new_tls_connection_per_reading_costs_three_times_an_open_mqtt_connection() -> TestResult {
    let https = capture_ticks(include_str!("testdata/https-tls12-full.ticks"))?;
    let mqtt = capture_ticks(include_str!("testdata/mqtt-tls12.ticks"))?;
    assert_eq!((https.len(), mqtt.len()), (180, 63));
    let h = run("nbiot", link(), &https)?;
    let m = run("nbiot", link(), &mqtt)?;
    let per_reading_h = h.energy_j / 12.0; // 12 polls, each a new TCP + TLS 1.2 connection
    let per_reading_m = m.energy_j / 15.0; // 15 QoS 1 publishes on one connection
    let (hl, ml) = (h.link.as_ref().ok_or("no link section")?, m.link.as_ref().ok_or("no link section")?);
    let why = format!(
        "https {per_reading_h:.4} J/reading ({} round trips, {} bytes, tail {:.3} J), mqtt {per_reading_m:.4} J/reading ({} round trips, {} bytes, tail {:.3} J)",
        hl.round_trips, h.bytes, h.tail_energy_j, ml.round_trips, m.bytes, m.tail_energy_j
    );
    assert!(per_reading_h >= 3.0 * per_reading_m, "{why}");
    // The JSON shows why: more round trips and bytes per reading.
    assert!(hl.round_trips as f64 / 12.0 >= 3.0 * ml.round_trips as f64 / 15.0, "{why}");
    assert!(h.bytes as f64 / 12.0 > 3.0 * m.bytes as f64 / 15.0, "{why}");
    let v = serde_json::to_value(&h)?;
    assert_eq!(v["timing"], "link");
    assert!(v["link"]["round_trips"].as_u64().ok_or("no link.round_trips")? > 0);
    assert_eq!(h.per_flow.len(), 12);
    eprintln!("{why}");
    Ok(())
}

#[test]
fn per_day_when_the_radio_never_idles() -> TestResult {
    // A reading every second on LTE: one wake-up, the tail never expires;
    // each 1 s cycle is the packet's bits plus 1 s of timer-held tail.
    let ticks: Vec<Tick> = (0..15).map(|i| tick(i as f64, 100, true)).collect();
    let r = run("lte", captured(), &ticks)?;
    assert_eq!((r.wakeups, r.bursts), (1, 15));
    let cycle = 800.0 * UP_BIT + 0.12 + 0.02244 + 0.88 * 1.091;
    assert!((r.per_day.energy_j - cycle * 86_400.0).abs() < 1e-6);
    assert_eq!(r.per_day.wakeups, 0.0);
    assert!((r.per_day.radio_on_s - 86_400.0).abs() < 1e-6);
    assert_eq!(r.per_day.bytes, 8_640_000);
    Ok(())
}

#[test]
fn lte_wakeups_match_the_truth_files() -> TestResult {
    // `wakeups_lte_10_12s` in captures/NAME.truth.json: bursts separated by
    // more than the 10.12 s LTE tail, counted by the capture generator.
    for (ticks, want) in [
        (include_str!("testdata/sparse-https-poll.ticks"), 8),
        (include_str!("testdata/sparse-mqtt-gps.ticks"), 9),
        (include_str!("testdata/sparse-coap-non.ticks"), 8),
        (include_str!("testdata/sparse-http-keepalive-poll.ticks"), 8),
    ] {
        let r = run("lte", captured(), &capture_ticks(ticks)?)?;
        assert_eq!(r.wakeups, want);
        assert_eq!(r.promotions, want);
        check_split(&r);
    }
    // A reading every 20 s: 4,320 wake-ups a day.
    let r = run("lte", captured(), &capture_ticks(include_str!("testdata/sparse-https-poll.ticks"))?)?;
    assert!((r.per_day.wakeups - 4320.0).abs() < 5.0, "{}", r.per_day.wakeups);
    assert_eq!(r.per_flow.len(), 8);
    Ok(())
}

#[test]
fn nbiot_sparse_tracker_https_versus_mqtt() -> TestResult {
    // The textbook tracker on NB-IoT, 8 readings 20 s apart each way.
    let h = run("nbiot", link(), &capture_ticks(include_str!("testdata/sparse-https-poll.ticks"))?)?;
    let m = run("nbiot", link(), &capture_ticks(include_str!("testdata/sparse-mqtt-gps.ticks"))?)?;
    let (hl, ml) = (h.link.as_ref().ok_or("no link section")?, m.link.as_ref().ok_or("no link section")?);
    eprintln!(
        "https {:.4} J/reading, {} round trips; mqtt {:.4} J/reading, {} round trips",
        h.energy_j / 8.0,
        hl.round_trips,
        m.energy_j / 8.0,
        ml.round_trips
    );
    assert!(h.energy_j > 2.0 * m.energy_j);
    // Captured timing on NB-IoT says the timestamps cannot be this radio's.
    let c = run("nbiot", captured(), &capture_ticks(include_str!("testdata/sparse-https-poll.ticks"))?)?;
    assert!(c.notes.iter().any(|n| n.contains("--timing link")), "{:?}", c.notes);
    assert!(h.notes.is_empty(), "{:?}", h.notes);
    assert!(hl.round_trips > 3 * ml.round_trips);
    Ok(())
}

#[test]
fn per_day_keeps_the_captured_schedule_with_link_timing() -> TestResult {
    // 8 readings, 20 s apart on the capture; on NB-IoT each burst takes
    // longer, but the day still holds 4,320 readings.
    let ticks: Vec<Tick> =
        (0..8).flat_map(|i| [tick(i as f64 * 20.0, 1000, true), tick(i as f64 * 20.0 + 0.001, 1000, false)]).collect();
    let r = run("nbiot", link(), &ticks)?;
    assert_eq!(r.per_day.bytes, 8_640_000);
    assert!((r.per_day.window_s - 140.0).abs() < 1e-6);
    assert_eq!(r.per_day.cycle.as_ref().map(|c| c.period_s), Some(20.0));
    Ok(())
}

/// A deterministic mix of what the pipeline feeds: back-to-back frames,
/// round trips, pauses into every tail stage and past, timestamps going
/// backwards, frames outside any flow, exchanges, ids past the dense range,
/// and an exchange id shared by two flows.
fn mixed_ticks(seed: u64, n: usize) -> Vec<Tick> {
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        state >> 33
    };
    let mut ts_ns: i64 = 1_700_000_000_000_000_000;
    let mut ticks = Vec::with_capacity(n);
    for _ in 0..n {
        ts_ns += match next() % 16 {
            0..=6 => (next() % 2_000_000) as i64,    // inside the connected time
            7..=9 => (next() % 200_000_000) as i64,  // round trips
            10 => (next() % 3_000_000_000) as i64,   // into the first tail stages
            11 => (next() % 30_000_000_000) as i64,  // long DRX, eDRX
            12 => (next() % 300_000_000_000) as i64, // idle, PSM
            13 => -((next() % 5_000_000) as i64),    // out of order
            _ => 0,                                  // same instant
        };
        let (flow, exchange) = match next() % 10 {
            0..=3 => (Tick::NO_FLOW, None),
            4 | 5 => ((next() % 4) as u32, None),
            6 | 7 => ((next() % 4) as u32, Some((next() % 3) as u32)),
            8 => (u32::MAX - 1 - (next() % 2) as u32, Some(u32::MAX - (next() % 2) as u32)),
            _ => ((1 << 20) + (next() % 2) as u32, None),
        };
        let wire_len = (next() % 1500) as u32;
        ticks.push(Tick { ts_ns, wire_len, uplink: next() % 2 == 0, flow, exchange, link_len: wire_len.min(14) });
    }
    ticks
}

#[test]
fn fast_path_books_what_the_general_path_books_to_the_bit() -> TestResult {
    let mut streams = vec![
        capture_ticks(include_str!("testdata/https-tls12-full.ticks"))?,
        capture_ticks(include_str!("testdata/mqtt-tls12.ticks"))?,
        capture_ticks(include_str!("testdata/sparse-https-poll.ticks"))?,
    ];
    streams.extend((1..=4).map(|seed| mixed_ticks(seed, 3000)));
    // Runs of one key inside a burst: the fast path's own case.
    streams.push((0..500).map(|i| tick(i as f64 * 0.001, 100, i % 3 == 0)).collect());
    for name in Profile::builtin_names() {
        for timing in [Timing::Captured, Timing::Link] {
            for release_assistance in [false, true] {
                let opts = RadioOptions { timing, release_assistance, ..RadioOptions::default() };
                for (i, ticks) in streams.iter().enumerate() {
                    let profile = Profile::builtin(name).ok_or("no such profile")?;
                    let mut fast = RadioSim::new(profile.clone(), opts.clone());
                    let mut general = RadioSim::new(profile, opts.clone()).without_fast_path();
                    for t in ticks {
                        fast.tick(t);
                        general.tick(t);
                    }
                    let (fast, general) =
                        (serde_json::to_string(&fast.finish(10.0))?, serde_json::to_string(&general.finish(10.0))?);
                    assert!(fast == general, "{name} {timing:?} rai={release_assistance} stream {i}");
                }
            }
        }
    }
    Ok(())
}

#[test]
fn the_state_timeline_holds_every_booked_second_where_it_happened() -> TestResult {
    // LTE, captured: a packet at 0 s and 100 s. Promotion 0.26 s before each
    // packet, connected 0.1 s, DRX 10.02 s, idle until the next promotion.
    let r = run("lte", captured(), &[tick(0.0, 100, true), tick(100.0, 100, true)])?;
    let t = r.timeline.ok_or("no timeline")?;
    assert!(t.span_s / t.bin_s <= crate::bins::MAX_BINS as f64 && t.span_s / t.bin_s > 100.0);
    let sum = |f: fn(&super::timeline::StateBin) -> f64| t.bins.iter().map(f).sum::<f64>();
    let state_time: f64 = r.states.iter().map(|s| s.time_s).sum();
    // Bins idle all through are left out: the span holds them.
    let binned = sum(|b| b.promotion_s) + sum(|b| b.transfer_s) + sum(|b| b.tail_s) + sum(|b| b.idle_s);
    let idle_bins = t.span_s / t.bin_s - t.bins.len() as f64;
    assert!((binned + idle_bins * t.bin_s - state_time).abs() < 1e-6, "{binned} vs {state_time}");
    assert!((sum(|b| b.promotion_s) - 0.52).abs() < 1e-9);
    assert!((sum(|b| b.tail_s) - 2.0 * 10.12).abs() < 1e-9);
    // The timeline starts with the first promotion, 0.26 s before the first packet.
    let first_packet_s = 0.0;
    assert!(t.start_ts <= first_packet_s - 0.26 + 1e-9 && t.start_ts + t.bin_s > first_packet_s - 0.26);
    // The second promotion is in the bin holding 99.74 s.
    let at = |s: f64| t.bins.iter().find(|b| t.start_ts + b.t_s <= s && s < t.start_ts + b.t_s + t.bin_s);
    assert!(at(99.8).is_some_and(|b| b.promotion_s > 0.0), "bins of {} s", t.bin_s);
    assert!(at(50.0).is_none(), "idle all through");
    // The per-day energy split adds up to the per-day energy.
    let e = &r.per_day.energy_split;
    assert_j("per-day split", e.promotion_j + e.transfer_j + e.tail_j + e.idle_j, r.per_day.energy_j);
    Ok(())
}
