//! Decryption tests: published vectors (RFC 8448, the TLS 1.2 PRF test
//! vector) here; whole-connection tests over real captures in
//! `dissect::tls`. Also the small pcap reader those tests share.

use super::*;
use crate::dissect::testkit::TestResult;
use crate::dissect::{Dir, L4};

fn h(s: &str) -> TestResult<Vec<u8>> {
    let digits: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    Ok(crate::keylog::decode_hex(&digits).ok_or("test vector is not hex")?)
}

fn secret(s: &str) -> TestResult<Secret> {
    Ok(Secret::new(h(s)?))
}

#[test]
fn tls12_prf_sha256_vector() -> TestResult {
    let mut out = [0u8; 100];
    prf_tls12(
        HashAlg::Sha256,
        &h("9b be 43 6b a9 40 f0 17 b1 76 52 84 9a 71 db 35")?,
        b"test label",
        &h("a0 ba 9f 93 6c da 31 18 27 a6 f7 96 ff d5 19 8c")?,
        &mut out,
    );
    assert_eq!(
        out.to_vec(),
        h("e3 f2 29 ba 72 7b e1 7b 8d 12 26 20 55 7c d4 53 c2 aa b2 1d 07 c3 d4 95 32 9b 52 d4 e6 1e db 5a
           6b 30 17 91 e9 0d 35 c9 c9 a4 6b 4e 14 ba f9 af 0f a0 22 f7 07 7d ef 17 ab fd 37 97 c0 56 4b ab
           4f bc 91 66 6e 9d ef 9b 97 fc e3 4f 79 67 89 ba a4 80 82 d1 22 ee 42 c5 a7 2e 5a 51 10 ff f7 01
           87 34 7b 66")?
    );
    Ok(())
}

// RFC 8448 section 3, Simple 1-RTT Handshake (TLS_AES_128_GCM_SHA256).
const C_HS_TRAFFIC: &str =
    "b3 ed db 12 6e 06 7f 35 a7 80 b3 ab f4 5e 2d 8f 3b 1a 95 07 38 f5 2e 96 00 74 6a 0e 27 a5 5a 21";
const S_HS_TRAFFIC: &str =
    "b6 7b 7d 69 0c c1 6c 4e 75 e5 42 13 cb 2d 37 b4 e9 c9 12 bc de d9 10 5d 42 be fd 59 d3 91 ad 38";
const C_AP_TRAFFIC: &str =
    "9e 40 64 6c e7 9a 7f 9d c0 5a f8 88 9b ce 65 52 87 5a fa 0b 06 df 00 87 f7 92 eb b7 c1 75 04 a5";
const S_AP_TRAFFIC: &str =
    "a1 1a f9 f0 55 31 f8 56 ad 47 11 6b 45 a9 50 32 82 04 b4 f4 4b fb 6b 3a 4b 4f 1f 3f cb 63 16 43";
const C_FINISHED_RECORD: &str =
    "17 03 03 00 35 75 ec 4d c2 38 cc e6 0b 29 80 44 a7 1e 21 9c 56 cc 77 b0 51 7f e9 b9 3c 7a 4b fc
    44 d8 7f 38 f8 03 38 ac 98 fc 46 de b3 84 bd 1c ae ac ab 68 67 d7 26 c4 05 46";
const C_APP_RECORD: &str = "17 03 03 00 43 a2 3f 70 54 b6 2c 94 d0 af fa fe 82 28 ba 55 cb ef ac ea 42 f9 14 aa 66 bc ab 3f
    2b 98 19 a8 a5 b4 6b 39 5b d5 4a 9a 20 44 1e 2b 62 97 4e 1f 5a 62 92 a2 97 70 14 bd 1e 3d ea e6 3a ee bb 21 69 49 15 e4";
const S_APP_RECORD: &str = "17 03 03 00 43 2e 93 7e 11 ef 4a c7 40 e5 38 ad 36 00 5f c4 a4 69 32 fc 32 25 d0 5f 82 aa 1b 36
    e3 0e fa f9 7d 90 e6 df fc 60 2d cb 50 1a 59 a8 fc c4 9c 4b f2 e5 f0 a2 1c 00 47 c2 ab f3 32 54 0d d0 32 e1 67 c2 95 5d";
const C_ALERT_RECORD: &str = "17 03 03 00 13 c9 87 27 60 65 56 66 b7 4d 7f f1 15 3e fd 6d b6 d0 b0 e3";

fn open_record(keys: &mut RecordKeys, record: &[u8]) -> Result<Opened, DecryptError> {
    keys.open(&record[..5], &record[5..])
}

#[test]
fn rfc8448_traffic_keys() -> TestResult {
    let s = h(S_HS_TRAFFIC)?;
    let mut key = [0u8; 16];
    let mut iv = [0u8; 12];
    hkdf_expand_label(HashAlg::Sha256, &s, b"key", b"", &mut key)?;
    hkdf_expand_label(HashAlg::Sha256, &s, b"iv", b"", &mut iv)?;
    assert_eq!(key.to_vec(), h("3f ce 51 60 09 c2 17 27 d0 f2 e4 e8 6e e4 03 bc")?);
    assert_eq!(iv.to_vec(), h("5d 31 3e b2 67 12 76 ee 13 00 0b 30")?);
    let s = h(S_AP_TRAFFIC)?;
    hkdf_expand_label(HashAlg::Sha256, &s, b"key", b"", &mut key)?;
    hkdf_expand_label(HashAlg::Sha256, &s, b"iv", b"", &mut iv)?;
    assert_eq!(key.to_vec(), h("9f 02 28 3b 6c 9c 07 ef c2 6b b9 f2 ac 92 e3 56")?);
    assert_eq!(iv.to_vec(), h("cf 78 2b 88 dd 83 54 9a ad f1 e9 84")?);
    Ok(())
}

#[test]
fn rfc8448_records_decrypt_with_their_inner_types() -> TestResult {
    let suite = Suite::from_id(0x1301).ok_or("unknown suite")?;
    // The client's Finished under its handshake keys.
    let mut c_hs = RecordKeys::tls13(suite, &secret(C_HS_TRAFFIC)?)?;
    let fin = open_record(&mut c_hs, &h(C_FINISHED_RECORD)?)?;
    assert_eq!(fin.content_type, 22);
    assert_eq!(&fin.plaintext[..4], &[20, 0, 0, 32]);
    assert_eq!(fin.plaintext.len(), 36);
    // Application data: 00 01 .. 31 both ways.
    let payload: Vec<u8> = (0u8..50).collect();
    let mut c_ap = RecordKeys::tls13(suite, &secret(C_AP_TRAFFIC)?)?;
    let app = open_record(&mut c_ap, &h(C_APP_RECORD)?)?;
    assert_eq!((app.content_type, &app.plaintext, app.pre), (23, &payload, 0));
    // The client's close_notify is its second application-key record.
    let alert = open_record(&mut c_ap, &h(C_ALERT_RECORD)?)?;
    assert_eq!((alert.content_type, alert.plaintext.as_slice()), (21, &[1u8, 0][..]));
    // The server sent a NewSessionTicket (sequence 0) before its data.
    let mut s_ap = RecordKeys::tls13(suite, &secret(S_AP_TRAFFIC)?)?;
    s_ap.skip_record();
    let app = open_record(&mut s_ap, &h(S_APP_RECORD)?)?;
    assert_eq!((app.content_type, &app.plaintext), (23, &payload));
    Ok(())
}

#[test]
fn wrong_key_fails_authentication_and_keeps_the_sequence() -> TestResult {
    let suite = Suite::from_id(0x1301).ok_or("unknown suite")?;
    let mut wrong = RecordKeys::tls13(suite, &secret(S_AP_TRAFFIC)?)?;
    assert_eq!(open_record(&mut wrong, &h(C_APP_RECORD)?), Err(DecryptError::Authentication));
    // Truncated and empty records are errors, not panics.
    let rec = h(C_APP_RECORD)?;
    for cut in [0, 1, 5, 6, 20, rec.len() - 1] {
        let mut k = RecordKeys::tls13(suite, &secret(C_AP_TRAFFIC)?)?;
        assert!(k.open(&rec[..cut.min(5)], &rec[cut.min(5)..cut]).is_err(), "cut {cut}");
    }
    // A secret of the wrong length for the suite is refused.
    assert!(matches!(
        RecordKeys::tls13(Suite::from_id(0x1302).ok_or("unknown suite")?, &secret(C_AP_TRAFFIC)?),
        Err(DecryptError::BadSecret)
    ));
    // The right key still opens the record at sequence 0 after the failure.
    let mut right = RecordKeys::tls13(suite, &secret(C_AP_TRAFFIC)?)?;
    assert!(open_record(&mut right, &h(C_APP_RECORD)?).is_ok());
    Ok(())
}

#[test]
fn key_update_derives_the_next_secret() -> TestResult {
    // RFC 8446 7.2: application_traffic_secret_N+1 =
    // HKDF-Expand-Label(application_traffic_secret_N, "traffic upd", "", Hash.length)
    let suite = Suite::from_id(0x1301).ok_or("unknown suite")?;
    let mut k = RecordKeys::tls13(suite, &secret(C_AP_TRAFFIC)?)?;
    k.key_update()?;
    let mut next = [0u8; 32];
    hkdf_expand_label(HashAlg::Sha256, &h(C_AP_TRAFFIC)?, b"traffic upd", b"", &mut next)?;
    let expect = RecordKeys::tls13(suite, &Secret::new(next.to_vec()))?;
    assert_eq!(k.secret.as_ref().map(Secret::bytes), Some(&next[..]));
    assert_eq!(k.iv, expect.iv);
    assert_eq!(k.seq, 0);
    // The old generation's records no longer open.
    assert!(open_record(&mut k, &h(C_APP_RECORD)?).is_err());
    // ...and a TLS 1.2 key set has no KeyUpdate.
    let s12 = Suite::from_id(0xc02f).ok_or("unknown suite")?;
    let mut k12 = RecordKeys::tls12(s12, &[7u8; 48], &[1u8; 32], &[2u8; 32], Side::Client, Tls12Options::default())?;
    assert!(k12.key_update().is_err());
    Ok(())
}

#[test]
fn suites_and_expansion_by_family() -> TestResult {
    use AeadAlg::*;
    let aead = |id| -> TestResult<AeadAlg> {
        match Suite::from_id(id).ok_or("unknown suite")?.protection {
            Protection::Aead(a) => Ok(a),
            p => Err(format!("{id:#x}: {p:?}").into()),
        }
    };
    assert_eq!(aead(0x1301)?, Aes128Gcm);
    assert_eq!(aead(0x1302)?, Aes256Gcm);
    assert_eq!(aead(0x1303)?, ChaCha20Poly1305);
    assert_eq!(aead(0x1304)?, Aes128Ccm);
    assert_eq!(aead(0x1305)?, Aes128Ccm8);
    assert_eq!(aead(0xc02f)?, Aes128Gcm);
    assert_eq!(aead(0xc030)?, Aes256Gcm);
    assert_eq!(Suite::from_id(0xc030).ok_or("unknown suite")?.hash, HashAlg::Sha384);
    assert_eq!(aead(0xcca8)?, ChaCha20Poly1305);
    assert_eq!(aead(0xc0a8)?, Aes128Ccm8); // TLS_PSK_WITH_AES_128_CCM_8 (CoAPS)
    assert_eq!(aead(0xc0ac)?, Aes128Ccm);
    assert_eq!(
        Suite::from_id(0xc009).ok_or("unknown suite")?.protection,
        Protection::Cbc { key_len: 16, mac: MacAlg::Sha1 }
    );
    assert_eq!(
        Suite::from_id(0xc024).ok_or("unknown suite")?.protection,
        Protection::Cbc { key_len: 32, mac: MacAlg::Sha384 }
    );
    assert_eq!(Suite::from_id(0x000a), None); // 3DES
    assert_eq!(expansion(0xc02f, 0x0303), Expansion { pre: 8, post: 16, exact: true });
    assert_eq!(expansion(0xc0a8, 0xfefd), Expansion { pre: 8, post: 8, exact: true });
    assert_eq!(expansion(0xcca8, 0x0303), Expansion { pre: 0, post: 16, exact: true });
    assert_eq!(expansion(0x1301, 0x0304), Expansion { pre: 0, post: 17, exact: true });
    assert_eq!(expansion(0x1305, 0x0304), Expansion { pre: 0, post: 9, exact: true });
    assert_eq!(expansion(0xc009, 0x0303), Expansion { pre: 16, post: 21, exact: false });
    assert!(!expansion(0xffff, 0x0303).exact);
    Ok(())
}

#[test]
fn debug_output_has_no_key_material() -> TestResult {
    let suite = Suite::from_id(0x1301).ok_or("unknown suite")?;
    let k = RecordKeys::tls13(suite, &secret(C_AP_TRAFFIC)?)?;
    let shown = format!("{k:?}");
    assert!(!shown.contains("9e") && !shown.contains("158"), "{shown}");
    Ok(())
}

/// One transport conversation of a shipped capture: its payloads in
/// capture order.
pub(crate) struct Conversation {
    pub l4: L4,
    pub server_port: u16,
    pub pieces: Vec<(Dir, Vec<u8>)>,
}

/// Minimal classic-pcap, Ethernet/IPv4 reader: enough for the shipped
/// TLS captures (no retransmissions, no IP fragments).
pub(crate) fn read_conversations(path: &str) -> TestResult<Vec<Conversation>> {
    let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    assert_eq!(&bytes[..4], &[0xd4, 0xc3, 0xb2, 0xa1], "little-endian pcap");
    let mut off = 24;
    type Endpoint = [u8; 6];
    let mut convs: Vec<((Endpoint, Endpoint), Conversation)> = vec![];
    while off + 16 <= bytes.len() {
        let caplen = u32::from_le_bytes(bytes[off + 8..off + 12].try_into()?) as usize;
        let frame = &bytes[off + 16..off + 16 + caplen];
        off += 16 + caplen;
        if frame.len() < 34 || frame[12..14] != [0x08, 0x00] {
            continue;
        }
        let ip = &frame[14..];
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        let proto = ip[9];
        let (src, dst) = (&ip[12..16], &ip[16..20]);
        let l4 = &ip[ihl..total];
        let (sport, dport) = (u16::from_be_bytes([l4[0], l4[1]]), u16::from_be_bytes([l4[2], l4[3]]));
        let ep = |a: &[u8], p: u16| {
            let mut e = [0u8; 6];
            e[..4].copy_from_slice(a);
            e[4..].copy_from_slice(&p.to_be_bytes());
            e
        };
        let (s, t) = (ep(src, sport), ep(dst, dport));
        let (kind, payload, syn) = match proto {
            6 => {
                let doff = usize::from(l4[12] >> 4) * 4;
                let flags = l4[13];
                (L4::Tcp, &l4[doff..], flags & 0x12 == 0x02)
            }
            17 => (L4::Udp, &l4[8..], false),
            _ => continue,
        };
        let found = convs.iter().rposition(|((a, b), c)| c.l4 == kind && ((*a, *b) == (s, t) || (*a, *b) == (t, s)));
        let idx = match found {
            Some(i) if !syn => i,
            _ => {
                if kind == L4::Tcp && !syn {
                    continue;
                }
                convs.push(((s, t), Conversation { l4: kind, server_port: dport, pieces: vec![] }));
                convs.len() - 1
            }
        };
        if payload.is_empty() {
            continue;
        }
        let dir = if convs[idx].0.0 == s { Dir::C2S } else { Dir::S2C };
        convs[idx].1.pieces.push((dir, payload.to_vec()));
    }
    Ok(convs.into_iter().map(|(_, c)| c).filter(|c| !c.pieces.is_empty()).collect())
}
