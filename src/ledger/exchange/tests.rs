use super::*;
use crate::dissect::testkit::TestResult;

fn open(id: u32) -> Event {
    Event::Open { id, kind: "mqtt", what: format!("PUBLISH t qos1 id {id}") }
}

#[test]
fn a_long_flow_holds_few_exchanges_and_hands_the_rest_on() {
    let mut fl = FlowLedger::new(7);
    let mut live = LiveExchanges::default();
    let mut handed = 0;
    for i in 0..10_000u32 {
        fl.events(i as i64, i as u64, &mut vec![open(i)], &mut live);
        fl.book(Class::Payload, 10, MsgRef::Exchange(i));
        fl.events(i as i64 + 1, i as u64, &mut vec![Event::Close { id: i }], &mut live);
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
    fl.events(0, 0, &mut vec![open(1), open(2), Event::Close { id: 1 }], &mut live);
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
    fl.events(0, 0, &mut vec![open(1), open(2), open(3)], &mut live);
    let mut xs: Vec<Exchange> = fl.finish(&mut live).collect();
    for x in &mut xs {
        x.share_setup(fl.setup.total(), fl.exchanges_total);
    }
    assert!(xs.iter().all(|x| x.setup_share_bytes == 60.0 && x.total_cost_bytes == 60.0));
}

#[test]
fn exchanges_never_closed_are_handed_on_oldest_first() {
    let mut fl = FlowLedger::new(0);
    let mut live = LiveExchanges::default();
    let mut handed = Vec::new();
    for i in 0..1_000u32 {
        fl.events(i as i64, i as u64, &mut vec![open(i)], &mut live);
        fl.take_done(|x| handed.push(x.id));
        assert!(fl.live.len() <= MAX_OPEN, "{} held", fl.live.len());
    }
    assert_eq!(handed, (0..(1_000 - MAX_OPEN) as u64).collect::<Vec<_>>());
    // The current (newest) exchange is never among them.
    assert_eq!(fl.live.back().map(|(id, _)| *id), Some(999));
}
