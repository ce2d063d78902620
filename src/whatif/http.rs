//! Changed HTTP practices: what the HTTP findings' counterfactuals do to a
//! device's timeline (`Change::Http`). Each changes the messages of one
//! resource; a connection left with none of its exchanges is not opened.

use super::{ConnShape, Constants};
use crate::findings::stream::{Connection, Message};
use std::net::SocketAddr;

/// A 304 Not Modified answer, start line and headers (nginx 1.22: Server,
/// Date, Last-Modified, Connection, ETag): measured on
/// `tests/data/findings/conditional-poll.pcap`.
pub const NOT_MODIFIED_BYTES: u64 = 179;
/// What `If-None-Match: "<etag>"` adds to a request there.
pub const IF_NONE_MATCH_BYTES: u64 = 30;
/// `Accept-Encoding: gzip` on a request, and `Content-Encoding: gzip` on
/// its answer, with their line ends.
pub const ACCEPT_ENCODING_BYTES: u64 = 23;
pub const CONTENT_ENCODING_BYTES: u64 = 24;
/// A chunk's framing: its size line (a few hex digits, CRLF) and the CRLF
/// after its data.
pub const CHUNK_FRAMING_BYTES: u64 = 7;

#[derive(Clone, Debug, PartialEq)]
pub enum HttpChange {
    /// Exchanges of `resource` answered `min_status` or above are not made.
    DropErrors { server: SocketAddr, resource: u64, min_status: u16 },
    /// The quick repeats of `method` on `resource` are not made (the device
    /// backs off): an exchange started sooner than `max_gap_ns` after a 429
    /// or 5xx answer to the one before it.
    DropRetries { server: SocketAddr, method: crate::vocab::Method, resource: u64, max_gap_ns: i64 },
    /// A repeated answer (a body seen before) comes as 304 Not Modified to a
    /// conditional request.
    NotModified { server: SocketAddr, resource: u64 },
    /// Text bodies are sent gzip-coded: measured sizes where the body was
    /// compressed, else `ratio` (compressed over plain) of the resource's.
    Compress { server: SocketAddr, resource: u64, ratio: f64, min_body: u64 },
    /// A chunked upload is sent in chunks of `chunk` bytes at least.
    Rechunk { server: SocketAddr, resource: u64, chunk: u64 },
    /// Uploads sent `batch` at a time: the readings wait and go together
    /// with the last of them, on one exchange.
    Batch { server: SocketAddr, resource: u64, batch: u64 },
    /// Uploads above `limit` bytes of body are cut to `limit` (the device
    /// honours the server's or link's limit and sends in parts).
    Limit { server: SocketAddr, resource: u64, status: u16 },
}

impl HttpChange {
    fn target(&self) -> (SocketAddr, u64) {
        match *self {
            HttpChange::DropErrors { server, resource, .. }
            | HttpChange::DropRetries { server, resource, .. }
            | HttpChange::NotModified { server, resource }
            | HttpChange::Compress { server, resource, .. }
            | HttpChange::Rechunk { server, resource, .. }
            | HttpChange::Batch { server, resource, .. }
            | HttpChange::Limit { server, resource, .. } => (server, resource),
        }
    }
}

fn is(m: &Message, server: SocketAddr, resource: u64) -> bool {
    m.server == server && m.resource == resource
}

/// A message's application bytes one way: its wire bytes less the lower
/// headers of its frames.
fn app(wire: u64, frames: u32, k: &Constants) -> u64 {
    wire.saturating_sub((f64::from(frames) * k.lower_per_frame) as u64)
}

/// Frames for `new` bytes where `old` took `frames`: as many as the bytes need.
fn frames_for(frames: u32, old: u64, new: u64) -> u32 {
    if old == 0 || frames <= 1 {
        return frames;
    }
    let f = (f64::from(frames) * new as f64 / old as f64).ceil() as u32;
    f.clamp(1, frames)
}

/// One way's body gzipped: to `deflated` bytes where the capture measured
/// it, else by `ratio`, with its Content-Encoding header; the wire bytes and
/// frames shrink with it. False (nothing changed) when that is no smaller.
fn compress(payload: &mut u64, wire: &mut u64, frames: &mut u32, deflated: u32, ratio: f64) -> bool {
    let z = if deflated > 0 { u64::from(deflated) } else { (*payload as f64 * ratio).round() as u64 };
    if z + CONTENT_ENCODING_BYTES >= *payload {
        return false;
    }
    let new = wire.saturating_sub(*payload - z - CONTENT_ENCODING_BYTES);
    *frames = frames_for(*frames, *wire, new);
    *wire = new;
    *payload = z;
    true
}

pub(super) fn apply(
    ch: &HttpChange,
    shapes: &mut Vec<(Connection, ConnShape)>,
    msgs: &mut Vec<Message>,
    k: &Constants,
) {
    let (server, resource) = ch.target();
    let before = msgs.len();
    match *ch {
        HttpChange::DropErrors { min_status, .. } => {
            msgs.retain(|m| !(is(m, server, resource) && m.facets.status >= min_status));
        }
        HttpChange::DropRetries { method, max_gap_ns, .. } => {
            // In time order (the messages are sorted), each against the one
            // before it as captured: a retry of a retry goes too.
            let mut before: Option<(u16, i64)> = None;
            msgs.retain(|m| {
                if !is(m, server, resource) || m.method != method {
                    return true;
                }
                let retry = before.is_some_and(|(status, answered)| {
                    (status == 429 || status >= 500) && m.start_ns.saturating_sub(answered) < max_gap_ns
                });
                before = Some((m.facets.status, m.end_ns.max(m.start_ns)));
                !retry
            });
        }
        HttpChange::NotModified { .. } => {
            let mut seen = std::collections::BTreeSet::new();
            for m in msgs.iter_mut().filter(|m| is(m, server, resource) && m.facets.body_hash != 0) {
                // Every request after the first sends the validator back.
                if !seen.is_empty() && !m.facets.conditional {
                    m.up += IF_NONE_MATCH_BYTES;
                }
                if !seen.insert(m.facets.body_hash) {
                    let body_and_head = app(m.down, m.frames_down, k);
                    if body_and_head > NOT_MODIFIED_BYTES {
                        let new = m.down - (body_and_head - NOT_MODIFIED_BYTES);
                        m.frames_down = frames_for(m.frames_down, m.down, new);
                        m.down = new;
                        m.payload_down = 0;
                    }
                }
            }
        }
        HttpChange::Compress { ratio, min_body, .. } => {
            for m in msgs.iter_mut().filter(|m| is(m, server, resource)) {
                let f = m.facets;
                let text = |bit: u8, payload: u64| f.text & bit != 0 && payload >= min_body;
                if text(2, m.payload_down)
                    && compress(&mut m.payload_down, &mut m.down, &mut m.frames_down, f.deflated_down, ratio)
                {
                    m.up += ACCEPT_ENCODING_BYTES;
                }
                if text(1, m.payload_up) {
                    compress(&mut m.payload_up, &mut m.up, &mut m.frames_up, f.deflated_up, ratio);
                }
            }
        }
        HttpChange::Rechunk { chunk, .. } => {
            for m in msgs.iter_mut().filter(|m| is(m, server, resource) && m.facets.chunks_up > 1) {
                let chunks = u64::from(m.facets.chunks_up);
                let fewer = m.payload_up.div_ceil(chunk.max(1)).max(1);
                if fewer < chunks {
                    let gone = chunks - fewer;
                    // Each tiny chunk went in a frame of its own, with its framing.
                    let less = gone * (CHUNK_FRAMING_BYTES + k.lower_per_frame as u64);
                    m.up = m.up.saturating_sub(less);
                    m.frames_up = m.frames_up.saturating_sub(u32::try_from(gone).unwrap_or(u32::MAX)).max(1);
                    m.facets.chunks_up = u32::try_from(fewer).unwrap_or(u32::MAX);
                }
            }
        }
        HttpChange::Batch { batch, .. } => {
            let batch = batch.max(1) as usize;
            let mut out = Vec::with_capacity(msgs.len());
            let mut group: Vec<Message> = Vec::new();
            let flush = |group: &mut Vec<Message>, out: &mut Vec<Message>| {
                let Some(last) = group.last().copied() else { return };
                let payload: u64 = group.iter().map(|m| m.payload_up).sum();
                let extra = payload - last.payload_up;
                let mut m = last;
                m.up += extra;
                m.payload_up = payload;
                m.frames_up = frames_for(m.frames_up, last.up, m.up).max(m.frames_up);
                out.push(m);
                group.clear();
            };
            for m in msgs.drain(..) {
                if is(&m, server, resource) {
                    group.push(m);
                    if group.len() == batch {
                        flush(&mut group, &mut out);
                    }
                } else {
                    out.push(m);
                }
            }
            flush(&mut group, &mut out);
            out.sort_unstable();
            *msgs = out;
        }
        HttpChange::Limit { status, .. } => {
            // The refused uploads are not sent: the device keeps within the limit.
            msgs.retain(|m| !(is(m, server, resource) && m.facets.status == status));
        }
    }
    if msgs.len() != before {
        drop_empty_connections(shapes, msgs, server);
    }
}

/// Connections to `server` that carried exchanges and now carry none are
/// not opened.
fn drop_empty_connections(shapes: &mut Vec<(Connection, ConnShape)>, msgs: &[Message], server: SocketAddr) {
    shapes.retain(|(c, _)| {
        c.server != server
            || c.exchanges == 0
            || msgs.iter().any(|m| m.server == server && m.start_ns >= c.start_ns && m.start_ns <= c.end_ns)
    });
}
