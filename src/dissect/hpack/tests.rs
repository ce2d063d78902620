use super::*;
use crate::dissect::testkit::TestResult;

fn decode_all(d: &mut Decoder, block: &[u8]) -> Result<Vec<(String, String)>, Error> {
    let mut out = vec![];
    d.decode(block, |n, v| out.push((String::from_utf8_lossy(n).into(), String::from_utf8_lossy(v).into())))?;
    Ok(out)
}

/// `decode_all` where decoding must succeed.
fn decoded(d: &mut Decoder, block: &[u8]) -> TestResult<Vec<(String, String)>> {
    decode_all(d, block).map_err(|e| format!("decoding failed: {e:?}").into())
}

fn hex(s: &str) -> TestResult<Vec<u8>> {
    let s: String = s.split_whitespace().collect();
    Ok((0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16)).collect::<Result<_, _>>()?)
}

/// RFC 7541 C.4: three requests with Huffman coding, one dynamic table.
#[test]
fn rfc7541_c4_requests_with_huffman() -> TestResult {
    let mut d = Decoder::new(4096);
    let a = decoded(&mut d, &hex("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff")?)?;
    assert_eq!(a[3], (":authority".into(), "www.example.com".into()));
    assert_eq!(d.size, 57);
    let b = decoded(&mut d, &hex("8286 84be 5886 a8eb 1064 9cbf")?)?;
    assert_eq!(b[4], ("cache-control".into(), "no-cache".into()));
    assert_eq!(b[3], (":authority".into(), "www.example.com".into()));
    let c = decoded(&mut d, &hex("8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf")?)?;
    assert_eq!(c[4], ("custom-key".into(), "custom-value".into()));
    assert_eq!(c[2], (":path".into(), "/index.html".into()));
    assert_eq!(d.size, 164);
    Ok(())
}

/// RFC 7541 C.6: responses with Huffman coding and evictions in a 256-byte table.
#[test]
fn rfc7541_c6_responses_with_eviction() -> TestResult {
    let mut d = Decoder::new(256);
    d.max_size = 256;
    let a = decoded(
        &mut d,
        &hex(
            "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
        )?,
    )?;
    assert_eq!(a[0], (":status".into(), "302".into()));
    assert_eq!(a[3], ("location".into(), "https://www.example.com".into()));
    assert_eq!(d.size, 222);
    let b = decoded(&mut d, &hex("4883 640e ffc1 c0bf")?)?;
    assert_eq!(b[0], (":status".into(), "307".into()));
    assert_eq!(d.size, 222);
    Ok(())
}

#[test]
fn garbage_and_truncation_are_errors_not_panics() -> TestResult {
    let block = hex("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff")?;
    for cut in 0..block.len() {
        let _ = decode_all(&mut Decoder::new(4096), &block[..cut]);
    }
    let mut seed = 0x1234_5678u32;
    for _ in 0..2000 {
        let junk: Vec<u8> = (0..24)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                seed as u8
            })
            .collect();
        let _ = decode_all(&mut Decoder::new(4096), &junk);
    }
    assert_eq!(decode_all(&mut Decoder::new(4096), &[0x80]), Err(Error::Index));
    assert_eq!(decode_all(&mut Decoder::new(100), &[0x3f, 0xe1, 0x1f]), Err(Error::SizeUpdate));
    assert_eq!(decode_all(&mut Decoder::new(4096), &[0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]), Err(Error::Integer));
    Ok(())
}

#[test]
fn matches_an_independent_encoder() -> TestResult {
    let mut enc = loona_hpack::Encoder::new();
    let mut dec = Decoder::new(4096);
    for i in 0..50 {
        let path = format!("/api/v1/sensor/{i}?seq={}", i * 7);
        let headers: Vec<(&[u8], &[u8])> = vec![
            (b":method", b"GET"),
            (b":path", path.as_bytes()),
            (b"user-agent", b"wiretax-test/1.0"),
            (b"x-n", b"v"),
        ];
        let block = enc.encode(headers.iter().copied());
        let got = decoded(&mut dec, &block)?;
        assert_eq!(got[1], (":path".into(), path.clone()));
        assert_eq!(got.len(), 4);
    }
    Ok(())
}
