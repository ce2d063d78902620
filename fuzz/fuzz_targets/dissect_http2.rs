//! The http2 dissector over TCP: a conversation of data (cut in pieces of any
//! size), gaps and pauses in both directions, then finish.
//! HPACK is fuzzed through HEADERS and CONTINUATION frames, and directly on
//! the conversation's bytes as one header block.
//! Checks: no panic, and every byte fed is in exactly one span.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::Arc;
use wiretax::dissect::{Config, FlowCtx, L4};
use wiretax_fuzz::{Conversation, run_dissector};

fuzz_target!(|data: &[u8]| {
    let conv = Conversation::parse(data);
    let l4 = L4::Tcp;
    let ctx = FlowCtx { l4, server_port: 80, cfg: Arc::new(Config::default()) };
    let mut d = (wiretax::dissect::http2::PROTOCOL.make)(&ctx);
    run_dissector(d.as_mut(), &conv);
    // The same bytes as one header block, under a small table.
    let mut hpack = wiretax::dissect::hpack::Decoder::new(256);
    let _ = hpack.decode(data, |name, value| {
        std::hint::black_box((name, value));
    });
});
