//! HTTP findings: error answers, the same body fetched again and again
//! without validators, text sent uncompressed, oversized messages, tiny
//! chunks and uploads that could be batched. Each reads the resource
//! groups (`stream::ResourceGroup`) and prices its fix by re-simulating the
//! devices with an `HttpChange`.

use super::stream::{ResourceGroup, ResourceKey};
use super::{Finding, Input, Saving, round3, scope_of};
use crate::ledger::exchange::ExchangeFacts;
use crate::vocab::{Method, Proto};
use crate::whatif::Change;
use crate::whatif::http::{self as wh, HttpChange};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

/// Distinct bodies counted per resource (the smallest hashes).
const BODIES_KEPT: usize = 8;
/// Examples a finding lists.
const EXAMPLES: usize = 5;

/// What the HTTP findings keep of one resource group's bodies.
#[derive(Clone, Debug, Default)]
pub struct BodyFacts {
    /// Answers whose body was hashed, by hash (length and CRC-32).
    pub hashes: BTreeMap<u64, u64>,
    /// Requests sent conditionally (If-None-Match, If-Modified-Since).
    pub conditional: u64,
    /// Text bodies not content-coded (both ways) and their bytes; those
    /// compressed to measure, plain and gzip-coded.
    pub text_bodies: u64,
    pub text_bytes: u64,
    pub measured_bytes: u64,
    pub deflated_bytes: u64,
    /// Chunked request bodies, their data chunks and bytes.
    pub chunked_uploads: u64,
    pub chunks: u64,
    pub chunked_bytes: u64,
    /// Requests whose body held several records.
    pub batches: u64,
    /// Error answers (4xx, 5xx) and their exchanges' wire bytes.
    pub errors: u64,
    pub error_wire: u64,
    /// The largest body each way.
    pub largest_up: u64,
    pub largest_down: u64,
}

impl BodyFacts {
    pub fn add(&mut self, x: &ExchangeFacts) {
        let f = &x.facets;
        if f.body_hash != 0 {
            crate::dissect::bump_capped(&mut self.hashes, &f.body_hash, 1, BODIES_KEPT);
        }
        self.conditional += u64::from(f.conditional);
        for (bit, bytes, z) in [(1, x.payload_up, f.deflated_up), (2, x.payload_down, f.deflated_down)] {
            if f.text & bit != 0 {
                self.text_bodies += 1;
                self.text_bytes += bytes;
                if z > 0 {
                    self.measured_bytes += bytes;
                    self.deflated_bytes += u64::from(z);
                }
            }
        }
        if f.chunks_up > 0 {
            self.chunked_uploads += 1;
            self.chunks += u64::from(f.chunks_up);
            self.chunked_bytes += x.payload_up;
        }
        self.batches += u64::from(f.batch);
        if f.status >= 400 && matches!(x.kind, Proto::Http | Proto::Http2) {
            self.errors += 1;
            self.error_wire += x.up + x.down;
        }
        self.largest_up = self.largest_up.max(x.payload_up);
        self.largest_down = self.largest_down.max(x.payload_down);
    }

    pub fn merge(&mut self, o: &BodyFacts) {
        for (h, n) in &o.hashes {
            crate::dissect::bump_capped(&mut self.hashes, h, *n, BODIES_KEPT);
        }
        self.conditional += o.conditional;
        self.text_bodies += o.text_bodies;
        self.text_bytes += o.text_bytes;
        self.measured_bytes += o.measured_bytes;
        self.deflated_bytes += o.deflated_bytes;
        self.chunked_uploads += o.chunked_uploads;
        self.chunks += o.chunks;
        self.chunked_bytes += o.chunked_bytes;
        self.batches += o.batches;
        self.errors += o.errors;
        self.error_wire += o.error_wire;
        self.largest_up = self.largest_up.max(o.largest_up);
        self.largest_down = self.largest_down.max(o.largest_down);
    }

    /// Answers that repeated a body already sent (of the bodies kept).
    pub fn repeats(&self) -> u64 {
        self.hashes.values().map(|n| n.saturating_sub(1)).sum()
    }
}

/// Length of a hashed body (`Facets::body_hash`).
fn body_len(hash: u64) -> u64 {
    (hash >> 32) & 0x7fff_ffff
}

fn is_http(k: &ResourceKey) -> bool {
    matches!(k.kind, Proto::Http | Proto::Http2)
}

fn example(k: &ResourceKey, g: &ResourceGroup) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert("client".into(), json!(k.client));
    m.insert("server".into(), json!(k.server));
    m.insert("method".into(), json!(k.method.name()));
    m.insert("requests".into(), json!(g.count));
    m
}

/// A finding over resource groups, priced by re-simulating `changes`.
struct Found<'a> {
    id: &'a str,
    severity: &'a str,
    title: String,
    evidence: Value,
    recommendation: &'a str,
    what: String,
    assumptions: Vec<String>,
}

/// Wire bytes and frames `changes` save over the captured timelines
/// themselves (the devices re-simulated), not projected to a day.
fn captured_saving(inp: &Input, changes: &[(IpAddr, Change)]) -> (u64, u64) {
    let k = inp.constants();
    let mut by_device: BTreeMap<IpAddr, Vec<Change>> = BTreeMap::new();
    for (d, c) in changes {
        by_device.entry(*d).or_default().push(c.clone());
    }
    let size =
        |frames: &[crate::whatif::Frame]| (frames.iter().map(|f| u64::from(f.len)).sum::<u64>(), frames.len() as u64);
    let (mut bytes, mut frames) = (0, 0);
    for (ip, chs) in &by_device {
        let Some(d) = inp.streams.devices.get(ip) else { continue };
        let (b, f) = size(&crate::whatif::synthesize(d, &[], &k));
        let (cb, cf) = size(&crate::whatif::synthesize(d, chs, &k));
        bytes += b.saturating_sub(cb);
        frames += f.saturating_sub(cf);
    }
    (bytes, frames)
}

fn push(inp: &Input, out: &mut Vec<Finding>, f: Found, changes: Vec<(IpAddr, Change)>, servers: &[SocketAddr]) {
    let instances = changes.len() as u64;
    let (saving, mut cf) = inp.saving(&changes, instances, &f.what);
    cf.assumptions.extend(f.assumptions);
    out.push(Finding {
        id: f.id.into(),
        severity: f.severity.into(),
        title: f.title,
        evidence: f.evidence,
        saving_per_day: saving,
        recommendation: f.recommendation.into(),
        scope: scope_of(servers),
        instances,
        counterfactual: Some(cf),
        saving_per_event: None,
    });
}

/// Runs the HTTP detectors.
pub fn detect(inp: &Input, out: &mut Vec<Finding>) {
    http_errors(inp, out);
    duplicate_content(inp, out);
    uncompressed_text(inp, out);
    oversized_payload(inp, out);
    tiny_chunks(inp, out);
    unbatched_uploads(inp, out);
}

/// 4xx and 5xx answers: requests that bought nothing. A status summary by
/// code and by resource; quick retries of them are `retry-without-backoff`.
fn http_errors(inp: &Input, out: &mut Vec<Finding>) {
    let t = inp.thresholds;
    let mut by_status: BTreeMap<u16, u64> = BTreeMap::new();
    let (mut errors, mut answers, mut wire) = (0u64, 0u64, 0u64);
    let (mut changes, mut servers, mut resources) = (Vec::new(), Vec::new(), Vec::new());
    for (k, g) in inp.streams.resources.iter().filter(|(k, _)| is_http(k)) {
        answers += g.statuses.values().sum::<u64>();
        if g.bodies.errors == 0 {
            continue;
        }
        errors += g.bodies.errors;
        wire += g.bodies.error_wire;
        for (s, n) in g.statuses.iter().filter(|(s, _)| **s >= 400) {
            *by_status.entry(*s).or_default() += n;
        }
        servers.push(k.server);
        changes.push((
            k.client,
            Change::Http(HttpChange::DropErrors { server: k.server, resource: k.resource, min_status: 400 }),
        ));
        if resources.len() < EXAMPLES {
            let mut e = example(k, g);
            e.insert("errors".into(), json!(g.bodies.errors));
            e.insert("statuses".into(), json!(g.statuses));
            resources.push(Value::Object(e));
        }
    }
    if errors < t.http_errors_min {
        return;
    }
    let share = errors as f64 / answers.max(1) as f64;
    let summary: Vec<String> = by_status.iter().map(|(s, n)| format!("{n} x {s}")).collect();
    let found = Found {
        id: "http-errors",
        severity: if share >= 0.5 { "critical" } else { "warning" },
        title: format!("{errors} of {answers} HTTP answers are errors ({})", summary.join(", ")),
        evidence: json!({
            "errors": errors, "answers": answers, "error_share": round3(share), "by_status": by_status,
            "error_wire_bytes": wire, "resources": changes.len(), "by_resource": resources,
        }),
        recommendation: "Fix what the errors say: a 404 is a wrong URL or a removed resource (update the device's configuration), a 401/403 an expired credential, a 429/503 a device asking too often (honour Retry-After); stop requests that cannot succeed.",
        what: "the requests answered 4xx or 5xx are not made (nor the connections that carried only them)".into(),
        assumptions: vec![
            "the error exchanges bought nothing: the data they would carry is not counted elsewhere".into(),
            "overlaps retry-without-backoff, which drops only the quick retries of 429 and 5xx answers".into(),
        ],
    };
    push(inp, out, found, changes, &servers);
}

/// The same body answered again and again to a GET that never asks
/// conditionally, with no validators to ask with.
fn duplicate_content(inp: &Input, out: &mut Vec<Finding>) {
    let t = inp.thresholds;
    let (mut repeats, mut repeated_bytes, mut answers) = (0u64, 0u64, 0u64);
    let (mut changes, mut servers, mut examples) = (Vec::new(), Vec::new(), Vec::new());
    for (k, g) in inp.streams.resources.iter() {
        let b = &g.bodies;
        let here = b.repeats();
        if !is_http(k) || k.method != Method::Get || here < t.duplicate_min_repeats || b.conditional > 0 {
            continue;
        }
        let bytes: u64 = b.hashes.iter().map(|(h, n)| body_len(*h) * n.saturating_sub(1)).sum();
        repeats += here;
        repeated_bytes += bytes;
        answers += b.hashes.values().sum::<u64>();
        servers.push(k.server);
        changes.push((k.client, Change::Http(HttpChange::NotModified { server: k.server, resource: k.resource })));
        if examples.len() < EXAMPLES {
            let mut e = example(k, g);
            e.insert("distinct_bodies".into(), json!(b.hashes.len()));
            e.insert("repeats".into(), json!(here));
            e.insert("body_bytes".into(), json!(b.hashes.keys().map(|h| body_len(*h)).collect::<Vec<_>>()));
            examples.push(Value::Object(e));
        }
    }
    if changes.is_empty() {
        return;
    }
    // Validators pay when the bodies outweigh a 304 answer and the
    // If-None-Match that asks for it; a few bytes of body gain little.
    let mean_body = repeated_bytes / repeats.max(1);
    let found = Found {
        id: "duplicate-content",
        severity: if mean_body > wh::NOT_MODIFIED_BYTES + wh::IF_NONE_MATCH_BYTES { "warning" } else { "info" },
        title: format!("{repeats} answers repeat a body already sent, with no validators ({repeated_bytes} B)"),
        evidence: json!({
            "answers": answers, "repeats": repeats, "repeated_body_bytes": repeated_bytes,
            "validators": "none (no ETag, Last-Modified, Cache-Control or Expires; no If-None-Match)",
            "examples": examples,
        }),
        recommendation: "Send an ETag (or Last-Modified) with the resource and have the client ask with If-None-Match, so an unchanged resource is answered 304 Not Modified without its body; or give it Cache-Control: max-age for as long as it stays valid.",
        what: format!(
            "the server sends an ETag and the client asks with If-None-Match: a repeated body is answered 304 Not Modified ({} B of start line and headers)",
            wh::NOT_MODIFIED_BYTES
        ),
        assumptions: vec![format!(
            "a 304 answer: {} B, and If-None-Match: {} B on each request after the first (nginx 1.22 and curl, measured on tests/data/findings/conditional-poll.pcap)",
            wh::NOT_MODIFIED_BYTES,
            wh::IF_NONE_MATCH_BYTES
        )],
    };
    push(inp, out, found, changes, &servers);
    // Bodies so small that a 304 and its If-None-Match cost as much: no fix
    // to offer, no finding.
    if out.last().is_some_and(|f| f.id == "duplicate-content" && f.saving_per_day.bytes == 0) {
        out.pop();
    }
}

/// JSON, XML and text bodies sent without Content-Encoding that gzip
/// shrinks well, measured by compressing the bodies seen.
fn uncompressed_text(inp: &Input, out: &mut Vec<Finding>) {
    let t = inp.thresholds;
    let (mut bodies, mut bytes, mut measured, mut deflated) = (0u64, 0u64, 0u64, 0u64);
    let (mut changes, mut servers, mut examples) = (Vec::new(), Vec::new(), Vec::new());
    for (k, g) in inp.streams.resources.iter() {
        let b = &g.bodies;
        if !is_http(k) || b.measured_bytes < t.text_min_body_bytes {
            continue;
        }
        let ratio = b.deflated_bytes as f64 / b.measured_bytes as f64;
        if ratio > t.text_max_ratio {
            continue;
        }
        bodies += b.text_bodies;
        bytes += b.text_bytes;
        measured += b.measured_bytes;
        deflated += b.deflated_bytes;
        servers.push(k.server);
        changes.push((
            k.client,
            Change::Http(HttpChange::Compress {
                server: k.server,
                resource: k.resource,
                ratio,
                min_body: t.text_min_body_bytes,
            }),
        ));
        if examples.len() < EXAMPLES {
            let mut e = example(k, g);
            e.insert("text_bytes".into(), json!(b.text_bytes));
            e.insert("gzip_ratio".into(), json!(round3(ratio)));
            examples.push(Value::Object(e));
        }
    }
    if changes.is_empty() {
        return;
    }
    let ratio = deflated as f64 / measured.max(1) as f64;
    let found = Found {
        id: "uncompressed-text",
        severity: if ratio < 0.4 { "warning" } else { "info" },
        title: format!(
            "{bodies} text bodies ({bytes} B) sent uncompressed; gzip makes them {:.0}% of their size",
            ratio * 100.0
        ),
        evidence: json!({
            "text_bodies": bodies, "text_bytes": bytes, "measured_bytes": measured, "gzip_bytes": deflated,
            "gzip_ratio": round3(ratio), "examples": examples,
        }),
        recommendation: "Compress text bodies: gzip (or br) on the server for answers the client accepts with Accept-Encoding, and Content-Encoding: gzip on large uploads; or send a compact binary encoding (CBOR, protobuf).",
        what: "text bodies sent gzip-coded (Content-Encoding: gzip; the client sends Accept-Encoding: gzip)".into(),
        assumptions: vec![
            format!(
                "each body's gzip size measured by compressing it (level 1, nginx's default); bodies not kept to compress at the resource's ratio; bodies under {} B unchanged",
                t.text_min_body_bytes
            ),
            format!(
                "Content-Encoding: {} B on each compressed body, Accept-Encoding: {} B on its request",
                wh::CONTENT_ENCODING_BYTES,
                wh::ACCEPT_ENCODING_BYTES
            ),
        ],
    };
    push(inp, out, found, changes, &servers);
}

/// Messages above a limit: uploads refused with 413, bodies larger than
/// the device's link or broker takes in one piece.
fn oversized_payload(inp: &Input, out: &mut Vec<Finding>) {
    let t = inp.thresholds;
    let (mut refused, mut largest, mut over) = (0u64, 0u64, 0u64);
    let (mut changes, mut servers, mut examples) = (Vec::new(), Vec::new(), Vec::new());
    for (k, g) in inp.streams.resources.iter().filter(|(k, _)| is_http(k)) {
        let n413 = g.statuses.get(&413).copied().unwrap_or(0);
        let big = g.bodies.largest_up.max(g.bodies.largest_down);
        if n413 == 0 && big <= t.oversized_body_bytes {
            continue;
        }
        refused += n413;
        largest = largest.max(big);
        over += u64::from(big > t.oversized_body_bytes);
        servers.push(k.server);
        changes
            .push((k.client, Change::Http(HttpChange::Limit { server: k.server, resource: k.resource, status: 413 })));
        if examples.len() < EXAMPLES {
            let mut e = example(k, g);
            e.insert("refused_413".into(), json!(n413));
            e.insert("largest_upload_bytes".into(), json!(g.bodies.largest_up));
            e.insert("largest_answer_bytes".into(), json!(g.bodies.largest_down));
            examples.push(Value::Object(e));
        }
    }
    if changes.is_empty() {
        return;
    }
    let found = Found {
        id: "oversized-payload",
        severity: if refused > 0 { "critical" } else { "warning" },
        title: if refused > 0 {
            format!("{refused} uploads refused as too large (413)")
        } else {
            format!("messages up to {largest} B, above the {} B limit", t.oversized_body_bytes)
        },
        evidence: json!({
            "refused_413": refused, "largest_body_bytes": largest, "limit_bytes": t.oversized_body_bytes,
            "resources_over_limit": over, "examples": examples,
        }),
        recommendation: "Keep messages within what the server, broker or link takes (ask for its limit; split large uploads into bounded parts, e.g. chunks or ranges of a few kB, and resume rather than resend); never resend an upload a server refused as too large unchanged.",
        what: "uploads kept within the limit: the ones refused with 413 are not sent".into(),
        assumptions: vec![
            "a refused upload bought nothing; the data's delivery within the limit is not counted".into(),
            "bodies over the limit but accepted are listed, not priced".into(),
        ],
    };
    push(inp, out, found, changes, &servers);
}

/// Chunked uploads in many tiny chunks: each pays its framing and, sent as
/// it comes, a frame (and a radio wake-up) of its own.
fn tiny_chunks(inp: &Input, out: &mut Vec<Finding>) {
    let t = inp.thresholds;
    let (mut uploads, mut chunks, mut bytes) = (0u64, 0u64, 0u64);
    let (mut changes, mut servers, mut examples) = (Vec::new(), Vec::new(), Vec::new());
    for (k, g) in inp.streams.resources.iter().filter(|(k, _)| is_http(k)) {
        let b = &g.bodies;
        if b.chunks < t.tiny_chunks_min || b.chunked_bytes > b.chunks * t.tiny_chunk_bytes {
            continue;
        }
        uploads += b.chunked_uploads;
        chunks += b.chunks;
        bytes += b.chunked_bytes;
        servers.push(k.server);
        changes.push((
            k.client,
            Change::Http(HttpChange::Rechunk { server: k.server, resource: k.resource, chunk: t.rechunk_bytes }),
        ));
        if examples.len() < EXAMPLES {
            let mut e = example(k, g);
            e.insert("chunks".into(), json!(b.chunks));
            e.insert("mean_chunk_bytes".into(), json!(round3(b.chunked_bytes as f64 / b.chunks.max(1) as f64)));
            examples.push(Value::Object(e));
        }
    }
    if changes.is_empty() {
        return;
    }
    let found = Found {
        id: "tiny-chunks",
        severity: "info",
        title: format!(
            "{uploads} chunked upload{} in {chunks} chunks of {:.0} B on average",
            if uploads == 1 { "" } else { "s" },
            bytes as f64 / chunks.max(1) as f64
        ),
        evidence: json!({
            "chunked_uploads": uploads, "chunks": chunks, "body_bytes": bytes,
            "mean_chunk_bytes": round3(bytes as f64 / chunks.max(1) as f64), "examples": examples,
        }),
        recommendation: "Buffer a streamed upload into chunks of a few kB (or send it whole with Content-Length): every chunk costs its framing and, sent alone, a packet and a radio wake-up.",
        what: format!("the same uploads in chunks of at least {} B", t.rechunk_bytes),
        assumptions: vec![format!(
            "each chunk saved took a frame of its own and {} B of chunk framing",
            wh::CHUNK_FRAMING_BYTES
        )],
    };
    // A streamed upload is often a one-off the day's steady cycle leaves
    // out: it is priced per upload too.
    let (bytes, frames) = captured_saving(inp, &changes);
    let link = (frames as f64 * inp.constants().link_per_frame) as u64;
    let (per_upload, billed) = (bytes / uploads.max(1), bytes.saturating_sub(link) / uploads.max(1));
    push(inp, out, found, changes, &servers);
    if let Some(f) = out.last_mut().filter(|f| f.id == "tiny-chunks") {
        f.saving_per_event = Some(Saving {
            bytes: per_upload,
            billed_bytes: billed,
            radio_on_s: None,
            charge_mah: None,
            charge_basis: "one chunked upload, as captured and re-chunked (bytes only)".into(),
        });
    }
}

/// Small uploads at a regular period, one reading each: batching several
/// into one request pays the request (and its connection) once.
fn unbatched_uploads(inp: &Input, out: &mut Vec<Finding>) {
    let t = inp.thresholds;
    let (mut uploads, mut payload) = (0u64, 0u64);
    let mut periods = Vec::new();
    let (mut changes, mut servers, mut examples) = (Vec::new(), Vec::new(), Vec::new());
    let mut batches = std::collections::BTreeSet::new();
    for (k, g) in inp.streams.resources.iter() {
        let upload = match k.kind {
            Proto::Http | Proto::Http2 => matches!(k.method, Method::Post | Method::Put) && g.bodies.batches == 0,
            // Encrypted: uploads each on a connection of its own (a stream
            // of messages on one connection may be anything).
            Proto::Tls => g.payload_up > g.payload_down && g.connections >= g.count,
            _ => false,
        };
        if !upload || g.count < t.unbatched_min_uploads || g.payload_up > g.count * t.unbatched_max_body_bytes {
            continue;
        }
        let Some(period) = super::regular_period(g, t) else { continue };
        uploads += g.count;
        payload += g.payload_up;
        periods.push(period);
        servers.push(k.server);
        // At most a third of the uploads seen go in a batch, so that the
        // capture holds three: a day is projected from the steady cycles
        // between them (the radio model needs two).
        let batch = t.unbatched_batch.min((g.count / 3).max(2));
        batches.insert(batch);
        changes.push((k.client, Change::Http(HttpChange::Batch { server: k.server, resource: k.resource, batch })));
        if examples.len() < EXAMPLES {
            let mut e = example(k, g);
            e.insert("period_s".into(), json!(round3(period)));
            e.insert("mean_upload_bytes".into(), json!(round3(g.payload_up as f64 / g.count.max(1) as f64)));
            e.insert("wire_bytes_per_upload".into(), json!(round3((g.up + g.down) as f64 / g.count.max(1) as f64)));
            e.insert("batch".into(), json!(batch));
            examples.push(Value::Object(e));
        }
    }
    if changes.is_empty() {
        return;
    }
    let period = super::median(&mut periods);
    // The batch sizes the saving was computed for (each resource's own).
    let (least, most) = (batches.first().copied().unwrap_or(0), batches.last().copied().unwrap_or(0));
    let sizes = if least == most { format!("{least}") } else { format!("{least} to {most}") };
    let found = Found {
        id: "unbatched-uploads",
        severity: "info",
        title: format!(
            "{uploads} small uploads every {period:.1} s, one reading each ({:.0} B on average)",
            payload as f64 / uploads.max(1) as f64
        ),
        evidence: json!({
            "uploads": uploads, "payload_bytes": payload, "period_s": round3(period),
            "mean_upload_bytes": round3(payload as f64 / uploads.max(1) as f64),
            "batch": least, "batch_sizes": batches, "examples": examples,
        }),
        recommendation: "If the readings can wait, send several in one request (a JSON array or NDJSON body) every few periods: the request, its headers and its connection are paid once per batch.",
        what: format!(
            "the readings sent {sizes} at a time ({} at most, and at most a third of those seen, so that the capture holds three batches), with the last of them",
            t.unbatched_batch
        ),
        assumptions: vec![
            "the readings can wait for the batch (latency up to the batch's span)".into(),
            "a batch's body is the readings' bodies together; its headers and connection one upload's".into(),
        ],
    };
    push(inp, out, found, changes, &servers);
}
