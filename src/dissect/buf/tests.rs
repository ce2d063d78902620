use super::*;
use crate::dissect::testkit::TestResult;

// Length-prefixed toy messages: first byte is the total length.
fn toy(seen: &mut Vec<usize>) -> impl FnMut(&[u8]) -> Framing + '_ {
    |b: &[u8]| {
        let n = b[0] as usize;
        if b.len() < n {
            Framing::NeedMore
        } else {
            seen.push(n);
            Framing::Message(n)
        }
    }
}

#[test]
fn frames_split_and_coalesced_messages() -> TestResult {
    let stream = [3u8, 0, 0, 2, 0, 4, 0, 0, 0];
    for cut in 0..stream.len() {
        let mut seen = vec![];
        let mut mb = MsgBuf::new(100);
        mb.feed(&stream[..cut], toy(&mut seen)).map_err(|n| format!("cut at {cut}: {n} bytes overflowed"))?;
        mb.feed(&stream[cut..], toy(&mut seen)).map_err(|n| format!("cut at {cut}: {n} bytes overflowed"))?;
        assert_eq!(seen, vec![3, 2, 4], "cut at {cut}");
        assert_eq!(mb.pending(), 0);
    }
    Ok(())
}

#[test]
fn overflow_is_reported_not_kept() {
    let mut seen = vec![];
    let mut mb = MsgBuf::new(4);
    assert_eq!(mb.feed(&[200, 1, 2, 3, 4, 5], toy(&mut seen)), Err(6));
    assert_eq!(mb.pending(), 0);
}

#[test]
fn a_header_gathers_across_pieces_up_to_what_is_needed() {
    let mut h = HeaderBuf::<4>::default();
    assert_eq!(h.fill(2, b"a"), 1);
    assert_eq!(h.fill(2, b"bcd"), 1, "takes no more than needed");
    assert_eq!(h.bytes(), b"ab");
    assert_eq!(h.fill(9, b"cdef"), 2, "never more than it holds");
    assert_eq!(h.bytes(), b"abcd");
    assert_eq!(h.take(), 4);
    assert!(h.is_empty() && h.bytes().is_empty());
}

#[test]
fn a_message_a_byte_at_a_time_is_framed_once_whole() -> TestResult {
    let mut seen = vec![];
    let mut mb = MsgBuf::new(100);
    let stream = [200u8, 9, 9, 9, 9, 9];
    for (i, b) in [5u8, 1, 2, 3, 4, 2, 0].iter().enumerate() {
        mb.feed(&[*b], toy(&mut seen)).map_err(|n| format!("byte {i}: {n} bytes overflowed"))?;
    }
    assert_eq!(seen, vec![5, 2], "the 5-byte message, then the 2-byte one");
    assert_eq!(mb.pending(), 0);
    // Waiting bytes past the cap are given up when they pass it.
    let mut over = Ok(());
    for b in stream.iter().cycle().take(101) {
        over = over.and(mb.feed(&[*b], toy(&mut seen)));
    }
    assert_eq!(over, Err(101));
    assert_eq!(mb.pending(), 0);
    Ok(())
}
