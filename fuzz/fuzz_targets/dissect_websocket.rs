//! The WebSocket dissector (entered from HTTP after an Upgrade; mode bit
//! EXTRA: carrying MQTT): a conversation of frames cut in pieces of any
//! size, gaps and pauses in both directions, then finish.
//! Checks: no panic, and every byte fed is in exactly one span.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::Arc;
use wiretax::dissect::websocket::WebSocket;
use wiretax::dissect::{Config, FlowCtx, L4};
use wiretax_fuzz::{Conversation, mode, run_dissector};

fuzz_target!(|data: &[u8]| {
    let conv = Conversation::parse(data);
    let ctx = FlowCtx { l4: L4::Tcp, server_port: 80, cfg: Arc::new(Config::default()) };
    let mut d = WebSocket::new(&ctx, conv.mode & mode::EXTRA != 0, 1);
    run_dissector(&mut d, &conv);
});
