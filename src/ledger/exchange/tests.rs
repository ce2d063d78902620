use super::*;
use crate::dissect::testkit::TestResult;

fn open(id: u32) -> Event {
    Event::Open { id, kind: crate::vocab::Proto::Mqtt, what: format!("PUBLISH t qos1 id {id}") }
}

#[test]
fn a_long_flow_holds_few_exchanges_and_hands_the_rest_on() {
    let mut fl = FlowLedger::new(7);
    let mut live = LiveExchanges::default();
    let mut handed = 0;
    for i in 0..10_000u32 {
        fl.events(i as i64, i as u64, true, &mut vec![open(i)], &mut live);
        fl.book(Class::Payload, 10, MsgRef::Exchange(i));
        fl.events(i as i64 + 1, i as u64, true, &mut vec![Event::Close { id: i }], &mut live);
        fl.take_done(|_| handed += 1);
        assert!(fl.live.len() <= KEEP_CLOSED + 1, "{} held", fl.live.len());
    }
    let rest: Vec<Exchange> = fl.finish(&mut live).collect();
    assert_eq!(handed + rest.len(), 10_000);
    assert!(rest.iter().all(|x| x.wire_bytes == 10 && x.flow == 7));
    assert_eq!(fl.ledger.get(Class::Payload), 100_000);
}

#[test]
fn late_bytes_of_a_closed_exchange_still_reach_it() -> TestResult {
    let mut fl = FlowLedger::new(0);
    let mut live = LiveExchanges::default();
    fl.events(0, 0, true, &mut vec![open(1), open(2), Event::Close { id: 1 }], &mut live);
    // A response to 1 arriving while 2 is current.
    fl.book(Class::Payload, 5, MsgRef::Exchange(1));
    fl.book_frame(1, Dir::S2C, &[(Class::Link, 14)], 19, Some(MsgRef::Exchange(1)));
    let xs: Vec<Exchange> = fl.finish(&mut live).collect();
    let one = xs.iter().find(|x| x.what.ends_with("id 1")).ok_or("no exchange 1")?;
    assert_eq!((one.wire_bytes, one.frames_s2c), (19, 1));
    Ok(())
}

#[test]
fn setup_is_shared_evenly() {
    let mut fl = FlowLedger::new(0);
    let mut live = LiveExchanges::default();
    fl.book(Class::TcpControl, 180, MsgRef::Setup);
    fl.events(0, 0, true, &mut vec![open(1), open(2), open(3)], &mut live);
    let mut xs: Vec<Exchange> = fl.finish(&mut live).collect();
    for x in &mut xs {
        x.share_setup(fl.setup_bytes, fl.exchanges_total);
    }
    assert!(xs.iter().all(|x| x.setup_share_bytes == 60.0 && x.total_cost_bytes == 60.0));
}

#[test]
fn exchanges_never_closed_are_handed_on_oldest_first() {
    let mut fl = FlowLedger::new(0);
    let mut live = LiveExchanges::default();
    let mut handed = Vec::new();
    for i in 0..1_000u32 {
        fl.events(i as i64, i as u64, true, &mut vec![open(i)], &mut live);
        fl.take_done(|x| handed.push(x.id));
        assert!(fl.live.len() <= MAX_OPEN, "{} held", fl.live.len());
    }
    assert_eq!(handed, (0..(1_000 - MAX_OPEN) as u64).collect::<Vec<_>>());
    // The current (newest) exchange is never among them.
    assert_eq!(fl.live.back().map(|l| l.key), Some(999));
}

/// An exchange that can no longer be listed is only counted, but takes its
/// bytes from the setup as a listed one does (its flow's setup, and so the
/// setup shares of its listed exchanges, must not change), and the radio
/// model sees the same ids. A DNS lookup is booked whole all the same.
#[test]
fn unlisted_exchanges_are_counted_and_take_their_bytes_from_the_setup() -> TestResult {
    let run = |listable: bool| {
        let mut fl = FlowLedger::new(0);
        let mut live = LiveExchanges::default();
        let mut ids = Vec::new();
        fl.book(Class::TcpControl, 120, MsgRef::Setup);
        for i in 0..40u32 {
            let lookup = Event::Open { id: 1000 + i, kind: crate::vocab::Proto::Dns, what: String::new() };
            fl.events(i.into(), i.into(), listable, &mut vec![open(i), lookup], &mut live);
            fl.book(Class::AppHeader, 30, MsgRef::Exchange(i));
            fl.book(Class::Payload, 4, MsgRef::Exchange(1000 + i));
            fl.book_frame(i.into(), Dir::C2S, &[(Class::Link, 14)], 48, Some(MsgRef::Exchange(i)));
            ids.push(fl.exchange_of_frame(Some(MsgRef::Exchange(i))));
            fl.events(i.into(), i.into(), listable, &mut vec![Event::Close { id: i }], &mut live);
            // A late acknowledgement of the exchange before.
            fl.book_frame(i.into(), Dir::S2C, &[(Class::TcpControl, 54)], 54, None);
        }
        let mut handed = Vec::new();
        fl.take_done(|x| handed.push(x));
        handed.extend(fl.finish(&mut live));
        (fl.ledger, fl.setup_bytes, fl.exchanges_total, ids, live.unlisted, handed)
    };
    let (ledger, setup, total, ids, unlisted, handed) = run(true);
    let (ledger2, setup2, total2, ids2, unlisted2, handed2) = run(false);
    assert_eq!((ledger, setup, total, ids), (ledger2, setup2, total2, ids2));
    assert_eq!((unlisted, unlisted2), (0, 40));
    assert_eq!(handed.len(), 80);
    let lookups: Vec<&Exchange> = handed.iter().filter(|x| x.kind == crate::vocab::Proto::Dns).collect();
    assert_eq!(serde_json::to_string(&lookups)?, serde_json::to_string(&handed2)?);
    Ok(())
}

/// Bytes of an older exchange, span after span, reach it while exchanges
/// are opened and handed on around it (each change moves positions in the
/// held list), and once it is handed on they go to the current one.
#[test]
fn bytes_of_an_older_exchange_follow_it_as_the_list_changes() -> TestResult {
    let mut fl = FlowLedger::new(0);
    let mut live = LiveExchanges::default();
    let mut handed = Vec::new();
    fl.events(0, 0, true, &mut vec![open(0), open(1)], &mut live);
    for i in 2..400u32 {
        fl.book(Class::Payload, 1, MsgRef::Exchange(1));
        fl.book(Class::Payload, 1, MsgRef::Exchange(1));
        fl.events(i as i64, i as u64, true, &mut vec![open(i)], &mut live);
        fl.take_done(|x| handed.push(x));
    }
    handed.extend(fl.finish(&mut live));
    let by_what = |id: u32| handed.iter().find(|x| x.what.ends_with(&format!("id {id}"))).map(|x| x.wire_bytes);
    // Held until the open list passed its cap, then handed on; the bytes
    // after that went to the exchange current at the time.
    let first = by_what(1).ok_or("no exchange 1")?;
    assert!(first >= 2 * (MAX_OPEN as u64 - 2) && first < 798, "{first}");
    let total: u64 = handed.iter().map(|x| x.wire_bytes).sum();
    assert_eq!(total, 2 * 398);
    Ok(())
}

/// A reason given again in a row adds to the last one; up to 16 are kept,
/// and every malformed byte is counted whatever is kept.
#[test]
fn repeated_malformed_reasons_are_kept_once_with_their_count() {
    let mut fl = FlowLedger::new(0);
    let mut live = LiveExchanges::default();
    let bad = |bytes: u64, reason: &str| Event::Malformed { bytes, reason: reason.into() };
    let mut events = vec![bad(5, "gap"), bad(7, "gap"), bad(1, "junk"), bad(2, "gap")];
    events.extend((0..40).map(|i| bad(1, if i % 2 == 0 { "odd" } else { "even" })));
    fl.events(0, 0, true, &mut events, &mut live);
    assert_eq!(fl.malformed_bytes(), 5 + 7 + 1 + 2 + 40);
    let malformed = fl.take_malformed();
    let first: Vec<(u64, &str, u64)> = malformed.iter().take(3).map(|(n, w, t)| (*n, w.as_str(), *t)).collect();
    assert_eq!(first, vec![(12, "gap", 2), (1, "junk", 1), (2, "gap", 1)]);
    assert_eq!(malformed.len(), 16);
}

/// Every live flow holds a few exchanges, up to `DEFAULT_MAX_LIVE_EXCHANGES`
/// in all (src/flow/mod.rs states what that costs from this size).
#[test]
fn a_held_exchange_stays_small() {
    let size = std::mem::size_of::<Live>();
    assert!(size <= 144, "a held exchange takes {size} bytes");
}
