//! The dns dissector over TCP or (mode bit) UDP: a conversation of data (cut in pieces of any
//! size), gaps and pauses in both directions, then finish.
//! Checks: no panic, and every byte fed is in exactly one span.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::Arc;
use wiretax::dissect::{Config, FlowCtx, L4};
use wiretax_fuzz::{Conversation, run_dissector};

fuzz_target!(|data: &[u8]| {
    let conv = Conversation::parse(data);
    let l4 = if conv.udp() { L4::Udp } else { L4::Tcp };
    let ctx = FlowCtx { l4, server_port: 53, cfg: Arc::new(Config::default()) };
    let mut d = (wiretax::dissect::dns::PROTOCOL.make)(&ctx);
    run_dissector(d.as_mut(), &conv);
});
