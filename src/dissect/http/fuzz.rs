//! Mutated real conversations through the HTTP, WebSocket and HTTP/2
//! dissectors (tests only).

use super::super::testkit::{self, TestResult};
use super::super::{Config, Dir, Dissector, FlowCtx, L4};
use super::capture;
use std::sync::Arc;

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate_and_run(name: &str, make: fn(&FlowCtx) -> Box<dyn Dissector>, rounds: usize) -> TestResult {
    let ctx = FlowCtx { l4: L4::Tcp, server_port: 80, cfg: Arc::new(Config::default()) };
    let mut rng = Lcg(name.len() as u64 * 7919);
    for conn in capture::tcp_conns(name)?.iter().take(3) {
        for _ in 0..rounds {
            // Flip, insert or drop a few bytes, then cut the stream
            // into random pieces.
            let mut stream: Vec<(Dir, Vec<u8>)> = conn.pieces.clone();
            for _ in 0..1 + rng.below(4) {
                let p = rng.below(stream.len());
                let b = &mut stream[p].1;
                let at = rng.below(b.len());
                match rng.below(3) {
                    0 => b[at] = rng.next() as u8,
                    1 => b.insert(at, rng.next() as u8),
                    _ => {
                        b.remove(at);
                    }
                }
            }
            let mut pieces: Vec<(Dir, &[u8])> = vec![];
            for (d, b) in &stream {
                let mut rest = b.as_slice();
                while !rest.is_empty() {
                    let n = 1 + rng.below(rest.len().min(64));
                    let (a, r) = rest.split_at(n);
                    pieces.push((*d, a));
                    rest = r;
                }
            }
            let mut d = make(&ctx);
            let r = testkit::run(d.as_mut(), &pieces);
            r.assert_conserved();
        }
    }
    Ok(())
}

#[test]
fn mutated_captures_never_panic_and_conserve() -> TestResult {
    let http = super::PROTOCOL.make;
    mutate_and_run("http-pipelined.pcap", http, 150)?;
    mutate_and_run("http-post-batch.pcap", http, 150)?;
    mutate_and_run("websocket.pcapng", http, 150)?;
    mutate_and_run("mqtt-ws.pcap", http, 150)?;
    mutate_and_run("h2c-keepalive.pcap", super::super::http2::PROTOCOL.make, 300)?;
    Ok(())
}
