//! Key-log parsing and TLS record decryption. The input is key log text, a
//! NUL, then either (mode bit 0x80 clear) a conversation for the TLS
//! dissector holding that key log, so handshakes are followed and records
//! decrypted as in a capture, or (bit set) keys made from the input and
//! records opened with them directly: a suite picked from those wiretax
//! decrypts, TLS 1.2 or DTLS layouts, KeyUpdates and lost records.
//! Checks: no panic, spans conserve bytes, an opened record's plaintext
//! fits in its body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wiretax::decrypt::{RecordKeys, Side, Suite, Tls12Options};
use wiretax::dissect::{FlowCtx, L4};
use wiretax::keylog::{KeyLog, Secret};
use wiretax_fuzz::{Conversation, Reader, config_with_keylog, mode, run_dissector};

const SUITES: [u16; 16] = [
    0x1301, 0x1302, 0x1303, 0x1304, 0x1305, 0xc02f, 0xc030, 0xcca8, 0xc0ac, 0xc0ae, 0x003c, 0x002f, 0x009d, 0xc028,
    0x0035, 0xc0a2,
];

fn records(data: &[u8]) {
    let mut r = Reader::new(data);
    let sel = r.u8().unwrap_or(0);
    let Some(suite) = Suite::from_id(SUITES[(sel & 15) as usize]) else { return };
    let dtls = sel & 16 != 0;
    let keys = if suite.tls13 {
        RecordKeys::tls13(suite, &Secret::new(r.take(suite.hash.output_len()).to_vec()))
    } else {
        let (master, client, server) = (r.take(48), r.take(32), r.take(32));
        let side = if sel & 32 != 0 { Side::Server } else { Side::Client };
        let opts = Tls12Options { dtls, encrypt_then_mac: sel & 64 != 0 };
        RecordKeys::tls12(suite, master, client, server, side, opts)
    };
    let Ok(mut keys) = keys else { return };
    while let Some(op) = r.u8() {
        match op & 3 {
            0 => {
                let _ = keys.key_update();
            }
            1 => keys.skip_record(),
            _ => {
                let header = r.take(if dtls { 13 } else { 5 });
                let len = r.u16().unwrap_or(0) as usize;
                let body = r.take(len);
                if let Ok(o) = keys.open(header, body) {
                    assert!(o.pre + o.plaintext.len() <= body.len(), "{} + {} of {}", o.pre, o.plaintext.len(), len);
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let (text, rest) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let text = String::from_utf8_lossy(text);
    let log = KeyLog::parse(&text);
    assert!(log.sessions() as u64 <= log.secret_lines() as u64);
    if rest.first().is_some_and(|m| m & 0x80 != 0) {
        records(&rest[1..]);
        return;
    }
    let conv = Conversation::parse(rest);
    let l4 = if conv.mode & mode::UDP != 0 { L4::Udp } else { L4::Tcp };
    let ctx = FlowCtx { l4, server_port: 443, cfg: config_with_keylog(&text) };
    let mut d = (wiretax::dissect::tls::PROTOCOL.make)(&ctx);
    run_dissector(d.as_mut(), &conv);
});
