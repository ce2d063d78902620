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
