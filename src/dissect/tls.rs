//! TLS 1.0-1.3 over TCP and DTLS 1.0/1.2 over UDP.
//!
//! Records are framed here (one record per direction buffered at most,
//! 16 KiB + expansion); handshake messages are walked as a stream across
//! records and the hellos parsed with tls-parser. The ledger: whole records
//! of type 22 and 20 are `tls_handshake`, whole alerts `tls_record_overhead`,
//! application data splits into header + cipher expansion (overhead) and the
//! rest (`payload`, or the inner protocol's classes when a key log decrypts
//! it). TLS 1.3 without keys: each side's encrypted records up to its
//! Finished, inferred from the handshake's shape, count as `tls_handshake`.
//!
//! With a key log (`Config::keylog`), protected records are decrypted
//! (`crate::decrypt`) and booked by their real content type; application
//! data feeds an inner dissector chosen by ALPN or by content. A connection
//! the key log has no secrets for is counted and accounted without keys; one
//! whose decryption fails (wrong secret, unsupported suite) says so once in
//! an `Event::Malformed` and falls back to keyless accounting from there.

use super::{Dir, Dissector, Emit, Event, FlowCtx, L4, MsgRef, Probe, Protocol};
use crate::decrypt::{self, DecryptError, Expansion, Opened, RecordKeys, Side, Suite, Tls12Options};
use crate::ledger::Class;
use serde::Serialize;
use std::collections::BTreeMap;

pub static PROTOCOL: Protocol =
    Protocol { name: "tls", l4: &[L4::Tcp, L4::Udp], ports: &[443, 8443, 8883, 5684, 4433], probe, make };

const TLS_HEADER: usize = 5;
const DTLS_HEADER: usize = 13;
/// A record claiming a longer fragment is malformed (RFC 5246 6.2.3).
const MAX_RECORD: usize = decrypt::MAX_CIPHERTEXT;
/// Largest handshake message body kept for parsing (hellos, EncryptedExtensions).
const MAX_KEPT_MESSAGE: usize = 64 * 1024;
/// Keyless exchanges get ids from here up, apart from any inner dissector's.
const EXCHANGE_BASE: u32 = 0x4000_0000;

const CHANGE_CIPHER_SPEC: u8 = 20;
const ALERT: u8 = 21;
const HANDSHAKE: u8 = 22;
const APPLICATION_DATA: u8 = 23;
const HEARTBEAT: u8 = 24;

const CLIENT_HELLO: u8 = 1;
const SERVER_HELLO: u8 = 2;
const HELLO_VERIFY_REQUEST: u8 = 3;
const NEW_SESSION_TICKET: u8 = 4;
const ENCRYPTED_EXTENSIONS: u8 = 8;
const CERTIFICATE: u8 = 11;
const SERVER_KEY_EXCHANGE: u8 = 12;
const CERTIFICATE_REQUEST: u8 = 13;
const SERVER_HELLO_DONE: u8 = 14;
const FINISHED: u8 = 20;
const CERTIFICATE_STATUS: u8 = 22;
const KEY_UPDATE: u8 = 24;

const EXT_SNI: u16 = 0;
const EXT_ALPN: u16 = 16;
const EXT_ENCRYPT_THEN_MAC: u16 = 22;
const EXT_PRE_SHARED_KEY: u16 = 41;
const EXT_SUPPORTED_VERSIONS: u16 = 43;

/// ServerHello.random of a HelloRetryRequest (RFC 8446 4.1.3).
const HRR_RANDOM: [u8; 32] = [
    0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8, 0x91, 0xC2, 0xA2, 0x11,
    0x16, 0x7A, 0xBB, 0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C,
];

const TLS13: u16 = 0x0304;

fn probe(dir: Dir, first: &[u8]) -> Probe {
    // TLS record: type, 3.x, length; a handshake record whose first message
    // is a ClientHello (or, S2C, a ServerHello) is unmistakable.
    if let [typ, 3, minor, l0, l1, rest @ ..] = first {
        let len = usize::from(*l0) << 8 | usize::from(*l1);
        if *minor > 4 || len == 0 || len > MAX_RECORD {
            return Probe::No;
        }
        return match (*typ, rest) {
            (HANDSHAKE, [CLIENT_HELLO, _, _, _, 3, ..]) => Probe::Yes,
            (HANDSHAKE, [SERVER_HELLO, _, _, _, 3, ..]) if dir == Dir::S2C => Probe::Yes,
            (CHANGE_CIPHER_SPEC..=APPLICATION_DATA, _) => Probe::Maybe,
            _ => Probe::No,
        };
    }
    // DTLS record: type, 0xfe xx, epoch, sequence, length, then the
    // handshake header (type at offset 13).
    if let [typ, 0xfe, 0xff | 0xfd, rest @ ..] = first {
        if first.len() < DTLS_HEADER {
            return Probe::No;
        }
        return match (*typ, rest.get(DTLS_HEADER - 3)) {
            (HANDSHAKE, Some(&CLIENT_HELLO)) => Probe::Yes,
            (HANDSHAKE, Some(&(SERVER_HELLO | HELLO_VERIFY_REQUEST))) if dir == Dir::S2C => Probe::Yes,
            (CHANGE_CIPHER_SPEC..=APPLICATION_DATA, _) => Probe::Maybe,
            _ => Probe::No,
        };
    }
    Probe::No
}

fn make(ctx: &FlowCtx) -> Box<dyn Dissector> {
    Box::new(Tls::new(ctx))
}

/// The `tls` section of the report.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {
    pub connections: u64,
    pub full_handshakes: u64,
    pub resumed_handshakes: u64,
    /// Negotiated version per connection: `TLS 1.2`, `TLS 1.3`, `DTLS 1.2`.
    pub versions: BTreeMap<String, u64>,
    /// Bytes of records of outer type 22 and 20, headers included.
    pub handshake_record_bytes: u64,
    /// Bytes of records of outer type 23, headers included.
    pub app_data_record_bytes: u64,
    /// Bytes of records of outer type 21, headers included.
    pub alert_record_bytes: u64,
    /// Records by outer content type ("22", "23", "20", "21").
    pub records: BTreeMap<String, u64>,
    pub cipher_suites: BTreeMap<String, u64>,
    /// Alerts by description; alerts that could not be read are `encrypted`.
    pub alerts: BTreeMap<String, u64>,
    pub client_hellos: u64,
    pub hello_retry_requests: u64,
    pub hello_verify_requests: u64,
    pub new_session_tickets: u64,
    pub key_updates: u64,
    /// Certificate messages seen (cleartext, or decrypted in TLS 1.3).
    pub certificate_messages: u64,
    /// Bytes of those messages: what the certificate chains cost.
    pub certificate_chain_bytes: u64,
    /// TLS 1.3 encrypted records counted as `tls_handshake` by inference
    /// (no keys), headers included.
    pub inferred_handshake_bytes: u64,
    pub inferred_handshake_records: u64,
    /// Application-data records whose cipher expansion is only partly
    /// known without keys (CBC padding, unknown suite): a lower bound is booked.
    pub records_with_unknown_expansion: u64,
    /// Server names from ClientHellos.
    pub sni: BTreeMap<String, u64>,
    /// Negotiated ALPN protocols.
    pub alpn: BTreeMap<String, u64>,
    /// Bytes skipped because they were not TLS records, and records cut short.
    pub malformed_bytes: u64,
    pub truncated_records: u64,
    pub decryption: DecryptStats,
}

/// What the key log did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DecryptStats {
    /// Connections the key log had secrets for.
    pub connections_with_keys: u64,
    /// Connections seen while a key log was given that it had no secrets for.
    pub connections_without_keys: u64,
    pub records_decrypted: u64,
    /// Plaintext bytes of decrypted application data.
    pub plaintext_bytes: u64,
    /// Decrypted records by inner content type ("22", "23", "21").
    pub inner_content_types: BTreeMap<String, u64>,
    /// Connections whose decryption stopped, by reason.
    pub failures: BTreeMap<String, u64>,
}

impl Stats {
    pub fn merge(&mut self, o: &Stats) {
        self.connections += o.connections;
        self.full_handshakes += o.full_handshakes;
        self.resumed_handshakes += o.resumed_handshakes;
        add_map(&mut self.versions, &o.versions);
        self.handshake_record_bytes += o.handshake_record_bytes;
        self.app_data_record_bytes += o.app_data_record_bytes;
        self.alert_record_bytes += o.alert_record_bytes;
        add_map(&mut self.records, &o.records);
        add_map(&mut self.cipher_suites, &o.cipher_suites);
        add_map(&mut self.alerts, &o.alerts);
        self.client_hellos += o.client_hellos;
        self.hello_retry_requests += o.hello_retry_requests;
        self.hello_verify_requests += o.hello_verify_requests;
        self.new_session_tickets += o.new_session_tickets;
        self.key_updates += o.key_updates;
        self.certificate_messages += o.certificate_messages;
        self.certificate_chain_bytes += o.certificate_chain_bytes;
        self.inferred_handshake_bytes += o.inferred_handshake_bytes;
        self.inferred_handshake_records += o.inferred_handshake_records;
        self.records_with_unknown_expansion += o.records_with_unknown_expansion;
        add_map(&mut self.sni, &o.sni);
        add_map(&mut self.alpn, &o.alpn);
        self.malformed_bytes += o.malformed_bytes;
        self.truncated_records += o.truncated_records;
        let (a, b) = (&mut self.decryption, &o.decryption);
        a.connections_with_keys += b.connections_with_keys;
        a.connections_without_keys += b.connections_without_keys;
        a.records_decrypted += b.records_decrypted;
        a.plaintext_bytes += b.plaintext_bytes;
        add_map(&mut a.inner_content_types, &b.inner_content_types);
        add_map(&mut a.failures, &b.failures);
    }
}

/// Every map here has peer-chosen keys: bounded by `super::bump`.
fn add_map(a: &mut BTreeMap<String, u64>, b: &BTreeMap<String, u64>) {
    for (k, v) in b {
        super::bump(a, k, *v);
    }
}

fn bump(m: &mut BTreeMap<String, u64>, key: &str) {
    super::bump(m, key, 1);
}

/// `TLS 1.2`, `DTLS 1.2`, ... as the report names them.
pub fn version_name(v: u16) -> String {
    match v {
        0x0300 => "SSL 3.0".into(),
        0x0301 => "TLS 1.0".into(),
        0x0302 => "TLS 1.1".into(),
        0x0303 => "TLS 1.2".into(),
        0x0304 => "TLS 1.3".into(),
        0xfeff => "DTLS 1.0".into(),
        0xfefd => "DTLS 1.2".into(),
        0xfefc => "DTLS 1.3".into(),
        _ => format!("{v:#06x}"),
    }
}

fn suite_name(id: u16) -> String {
    match tls_parser::TlsCipherSuite::from_id(id) {
        Some(cs) => cs.name.to_string(),
        None => format!("{id:#06x}"),
    }
}

/// How the bytes of one record are booked.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Plan {
    /// The whole record is one class.
    Whole(Class, MsgRef),
    /// Application data that stays opaque: header and cipher expansion are
    /// overhead, the rest payload.
    Opaque { exp: Expansion, msg: MsgRef },
    /// A protected record to decrypt once it is whole.
    Decrypt,
}

/// The record being received in one direction.
#[derive(Debug)]
struct Rec {
    header: [u8; DTLS_HEADER],
    header_len: usize,
    typ: u8,
    /// Fragment length (after the header).
    len: usize,
    /// Fragment bytes received (or skipped over by a gap).
    done: usize,
    /// Bytes were lost: it is booked piece by piece as it streams past.
    lossy: bool,
    plan: Plan,
}

impl Rec {
    fn total(&self) -> usize {
        self.header_len + self.len
    }
}

/// A handshake message as walked from the stream.
#[derive(Debug)]
struct HsMsg {
    typ: u8,
    len: usize,
    /// The body, for the messages worth parsing.
    body: Option<Vec<u8>>,
}

fn keep_body(typ: u8) -> bool {
    matches!(typ, CLIENT_HELLO | SERVER_HELLO | ENCRYPTED_EXTENSIONS | KEY_UPDATE)
}

/// Cuts a handshake byte stream (TLS framing: type, 24-bit length) into
/// messages, whatever the record boundaries; keeps only bodies worth parsing.
#[derive(Default, Debug)]
struct HsWalker {
    hdr: [u8; 4],
    hdr_len: usize,
    typ: u8,
    len: usize,
    got: usize,
    body: Vec<u8>,
    keep: bool,
    /// Bytes were lost: no more messages from this stream.
    broken: bool,
}

impl HsWalker {
    fn feed(&mut self, mut data: &[u8], out: &mut Vec<HsMsg>) {
        while !data.is_empty() && !self.broken {
            if self.hdr_len < 4 {
                let take = 4usize.saturating_sub(self.hdr_len).min(data.len());
                if let (Some(dst), Some(src)) = (self.hdr.get_mut(self.hdr_len..self.hdr_len + take), data.get(..take))
                {
                    dst.copy_from_slice(src);
                }
                self.hdr_len += take;
                data = data.get(take..).unwrap_or_default();
                if self.hdr_len == 4 {
                    let [typ, a, b, c] = self.hdr;
                    self.typ = typ;
                    self.len = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
                    self.got = 0;
                    self.keep = keep_body(typ) && self.len <= MAX_KEPT_MESSAGE;
                    self.body.clear();
                    if self.len == 0 {
                        self.emit(out);
                    }
                }
                continue;
            }
            let take = self.len.saturating_sub(self.got).min(data.len());
            if self.keep {
                self.body.extend_from_slice(data.get(..take).unwrap_or_default());
            }
            self.got += take;
            data = data.get(take..).unwrap_or_default();
            if self.got == self.len {
                self.emit(out);
            }
        }
    }

    fn emit(&mut self, out: &mut Vec<HsMsg>) {
        let body = self.keep.then(|| std::mem::take(&mut self.body));
        out.push(HsMsg { typ: self.typ, len: self.len, body });
        self.hdr_len = 0;
    }
}

/// One direction of the connection.
#[derive(Default)]
struct Half {
    /// Record header bytes received so far (TCP).
    hdr: [u8; TLS_HEADER],
    hdr_len: usize,
    rec: Option<Rec>,
    /// The current record's fragment, while it is incomplete.
    body: Vec<u8>,
    /// Looking for a record header after bytes that were not one.
    hunting: bool,
    hunt_skipped: u64,
    /// Cleartext handshake messages.
    walker: HsWalker,
    /// Decrypted handshake messages (TLS 1.2 Finished, TLS 1.3 flight and
    /// post-handshake messages).
    sealed_walker: HsWalker,
    /// This side sent ChangeCipherSpec (TLS <= 1.2): its records are protected.
    protected: bool,
    keys: Option<RecordKeys>,
    /// TLS 1.3 application keys, taken up after this side's Finished.
    next_keys: Option<RecordKeys>,
    /// TLS 1.3: this side's encrypted handshake flight is over.
    handshake_done: bool,
    /// DTLS: next handshake message_seq to parse (retransmissions repeat).
    dtls_next_msg_seq: u32,
    messages: Vec<HsMsg>,
}

/// What is known about the connection from its hellos.
#[derive(Default)]
struct Conn {
    counted: bool,
    client_random: Option<[u8; 32]>,
    server_random: Option<[u8; 32]>,
    offered_session_id: Vec<u8>,
    sni: Option<String>,
    /// Negotiated version (supported_versions for TLS 1.3).
    version: Option<u16>,
    suite: Option<u16>,
    server_hello: bool,
    encrypt_then_mac: bool,
    alpn: Option<String>,
    /// TLS <= 1.2: ServerHello seen, full or abbreviated not yet known.
    resumption_pending: bool,
    session_id_echoed: bool,
    app_announced: bool,
    /// The client has sent application data (keyless exchanges).
    client_sent_data: bool,
}

impl Conn {
    fn tls13(&self) -> bool {
        self.server_hello && self.version == Some(TLS13)
    }
}

/// Keyless exchanges: a run of client application-data records and the
/// server's answer.
#[derive(Default)]
struct Exchanges {
    next: u32,
    open: Option<(u32, bool)>, // (id, the server has answered / started it)
}

impl Exchanges {
    fn record(&mut self, d: usize, sni: Option<&str>, emit: &mut Emit) -> u32 {
        let client = d == Dir::C2S.idx();
        match self.open {
            Some((id, answered)) if client && !answered => id,
            Some((id, true)) if !client => id,
            Some((id, false)) => {
                emit.event(Event::Responded { id });
                self.open = Some((id, true));
                id
            }
            Some((id, true)) => {
                emit.event(Event::Close { id });
                self.start(client, sni, emit)
            }
            None => self.start(client, sni, emit),
        }
    }

    fn start(&mut self, client: bool, sni: Option<&str>, emit: &mut Emit) -> u32 {
        let id = EXCHANGE_BASE.saturating_add(self.next);
        self.next = self.next.saturating_add(1);
        let what = match (sni, client) {
            (Some(name), true) => format!("TLS application data to {name}"),
            (Some(name), false) => format!("TLS application data from {name} (server first)"),
            (None, true) => "TLS application data".to_string(),
            (None, false) => "TLS application data (server first)".to_string(),
        };
        emit.event(Event::Open { id, kind: "tls", what });
        self.open = Some((id, !client));
        id
    }

    fn close(&mut self, emit: &mut Emit) {
        if let Some((id, _)) = self.open.take() {
            emit.event(Event::Close { id });
        }
    }
}

/// The TLS/DTLS dissector of one flow.
pub struct Tls {
    ctx: FlowCtx,
    dtls: bool,
    halves: [Half; 2],
    conn: Conn,
    /// The protocol inside, fed with decrypted application data.
    inner: Option<Box<dyn Dissector>>,
    exchanges: Exchanges,
    /// Decryption is not (or no longer) possible on this connection.
    decrypt_off: bool,
}

impl Tls {
    pub fn new(ctx: &FlowCtx) -> Tls {
        Tls {
            ctx: ctx.clone(),
            dtls: ctx.l4 == L4::Udp,
            halves: Default::default(),
            conn: Conn::default(),
            inner: None,
            exchanges: Exchanges::default(),
            decrypt_off: ctx.cfg.keylog.is_none(),
        }
    }

    // ---- framing -------------------------------------------------------

    fn data_tcp(&mut self, d: usize, data: &[u8], emit: &mut Emit) {
        let mut i = 0;
        let mut skipped = 0u64;
        while i < data.len() {
            let rest = data.get(i..).unwrap_or_default();
            if self.halves[d].rec.is_none() {
                let h = &mut self.halves[d];
                let take = TLS_HEADER.saturating_sub(h.hdr_len).min(rest.len());
                if let (Some(dst), Some(src)) = (h.hdr.get_mut(h.hdr_len..h.hdr_len + take), rest.get(..take)) {
                    dst.copy_from_slice(src);
                }
                h.hdr_len += take;
                i += take;
                if h.hdr_len < TLS_HEADER {
                    break;
                }
                let hdr = h.hdr;
                let hunting = h.hunting;
                if let Some(len) = self.valid_tls_header(&hdr, hunting) {
                    self.end_hunt(d, emit);
                    let h = &mut self.halves[d];
                    h.hdr_len = 0;
                    let mut header = [0u8; DTLS_HEADER];
                    if let Some(dst) = header.get_mut(..TLS_HEADER) {
                        dst.copy_from_slice(&hdr);
                    }
                    self.start_record(d, header, TLS_HEADER, hdr[0], len, emit);
                    if len == 0
                        && let Some(rec) = self.halves[d].rec.take()
                    {
                        self.complete_record(d, rec, &[], emit);
                    }
                } else {
                    // Not a record header: skip one byte and look again.
                    let h = &mut self.halves[d];
                    if !h.hunting {
                        h.hunting = true;
                        h.hunt_skipped = 0;
                    }
                    h.hunt_skipped += 1;
                    skipped += 1;
                    h.hdr.copy_within(1.., 0);
                    h.hdr_len = TLS_HEADER - 1;
                }
                continue;
            }
            // Inside a record.
            let Some(rec) = self.halves[d].rec.as_ref() else { break };
            let need = rec.len.saturating_sub(rec.done);
            let take = need.min(rest.len());
            let chunk = rest.get(..take).unwrap_or_default();
            i += take;
            if rec.lossy {
                let (plan, total, off) = (rec.plan, rec.total(), rec.header_len + rec.done);
                book(plan, total, rec.header_len, off, take, emit);
                if let Some(rec) = self.halves[d].rec.as_mut() {
                    rec.done += take;
                }
            } else if self.halves[d].body.is_empty() && take == need {
                // The whole fragment is in this piece: no copy.
                if let Some(rec) = self.halves[d].rec.as_mut() {
                    rec.done += take;
                }
                let rec = self.halves[d].rec.take();
                if let Some(rec) = rec {
                    self.complete_record(d, rec, chunk, emit);
                }
                continue;
            } else {
                let h = &mut self.halves[d];
                h.body.extend_from_slice(chunk);
                if let Some(rec) = h.rec.as_mut() {
                    rec.done += take;
                }
            }
            let h = &mut self.halves[d];
            if h.rec.as_ref().is_some_and(|r| r.done >= r.len) {
                let rec = h.rec.take();
                let body = std::mem::take(&mut h.body);
                if let Some(rec) = rec
                    && !rec.lossy
                {
                    self.complete_record(d, rec, &body, emit);
                }
                // Keep the allocation for the next record.
                let h = &mut self.halves[d];
                if h.body.is_empty() {
                    h.body = body;
                    h.body.clear();
                }
            }
        }
        if skipped > 0 {
            emit.span(Class::Payload, skipped, MsgRef::Flow);
            emit.stats.tls.malformed_bytes += skipped;
        }
    }

    /// The fragment length of a plausible TLS record header.
    fn valid_tls_header(&self, h: &[u8; TLS_HEADER], hunting: bool) -> Option<usize> {
        let [typ, major, minor, l0, l1] = *h;
        let len = usize::from(l0) << 8 | usize::from(l1);
        let ok = if hunting {
            // Stricter while resynchronising inside opaque bytes.
            (CHANGE_CIPHER_SPEC..=APPLICATION_DATA).contains(&typ) && major == 3 && (1..=3).contains(&minor) && len > 0
        } else {
            (CHANGE_CIPHER_SPEC..=HEARTBEAT).contains(&typ) && major == 3 && minor <= 4
        };
        (ok && len <= MAX_RECORD).then_some(len)
    }

    fn end_hunt(&mut self, d: usize, emit: &mut Emit) {
        let h = &mut self.halves[d];
        if h.hunting {
            h.hunting = false;
            let n = std::mem::take(&mut h.hunt_skipped);
            if n > 0 {
                emit.event(Event::Malformed {
                    bytes: n,
                    reason: format!("{n} bytes are not TLS records; skipped to the next record header"),
                });
            }
        }
    }

    fn data_udp(&mut self, d: usize, data: &[u8], emit: &mut Emit) {
        let mut rest = data;
        while !rest.is_empty() {
            let parsed = (|| {
                let h = rest.get(..DTLS_HEADER)?;
                let typ = *h.first()?;
                let len = usize::from(*h.get(11)?) << 8 | usize::from(*h.get(12)?);
                let ok =
                    (CHANGE_CIPHER_SPEC..=HEARTBEAT).contains(&typ) && h.get(1) == Some(&0xfe) && len <= MAX_RECORD;
                let body = rest.get(DTLS_HEADER..DTLS_HEADER + len)?;
                ok.then_some((typ, len, body))
            })();
            let Some((typ, len, body)) = parsed else {
                let n = rest.len() as u64;
                emit.stats.tls.malformed_bytes += n;
                emit.malformed(n, MsgRef::Flow, "datagram holds no whole DTLS record here");
                break;
            };
            let mut header = [0u8; DTLS_HEADER];
            if let Some(src) = rest.get(..DTLS_HEADER) {
                header.copy_from_slice(src);
            }
            self.start_record(d, header, DTLS_HEADER, typ, len, emit);
            if let Some(mut rec) = self.halves[d].rec.take() {
                rec.done = len;
                self.complete_record(d, rec, body, emit);
            }
            rest = rest.get(DTLS_HEADER + len..).unwrap_or_default();
        }
    }

    // ---- records ---------------------------------------------------------

    /// A record header was read: count it and decide how to book it.
    fn start_record(
        &mut self,
        d: usize,
        header: [u8; DTLS_HEADER],
        header_len: usize,
        typ: u8,
        len: usize,
        emit: &mut Emit,
    ) {
        if !self.conn.counted {
            self.conn.counted = true;
            emit.stats.tls.connections += 1;
        }
        let total = (header_len + len) as u64;
        let st = &mut emit.stats.tls;
        bump(&mut st.records, &typ.to_string());
        match typ {
            HANDSHAKE | CHANGE_CIPHER_SPEC => st.handshake_record_bytes += total,
            APPLICATION_DATA => st.app_data_record_bytes += total,
            ALERT => st.alert_record_bytes += total,
            _ => {}
        }
        let protected = self.is_protected(d, typ, &header);
        let plan = if protected && !self.decrypt_off && self.has_keys(d) {
            Plan::Decrypt
        } else {
            self.keyless_plan(d, typ, protected, total, emit)
        };
        self.halves[d].rec = Some(Rec { header, header_len, typ, len, done: 0, lossy: false, plan });
    }

    fn has_keys(&self, d: usize) -> bool {
        let h = &self.halves[d];
        h.keys.is_some() || h.next_keys.is_some()
    }

    /// Does this record carry protected content?
    fn is_protected(&self, d: usize, typ: u8, header: &[u8; DTLS_HEADER]) -> bool {
        match typ {
            APPLICATION_DATA => true,
            ALERT | HANDSHAKE if self.dtls => header.get(3..5).is_some_and(|e| e != [0, 0]),
            ALERT | HANDSHAKE => !self.conn.tls13() && self.halves[d].protected,
            _ => false,
        }
    }

    /// How a record is booked when it is not decrypted.
    fn keyless_plan(&mut self, d: usize, typ: u8, protected: bool, total: u64, emit: &mut Emit) -> Plan {
        match typ {
            HANDSHAKE | CHANGE_CIPHER_SPEC => Plan::Whole(Class::TlsHandshake, MsgRef::Setup),
            ALERT | HEARTBEAT => {
                if protected && typ == ALERT {
                    bump(&mut emit.stats.tls.alerts, "encrypted");
                }
                Plan::Whole(Class::TlsRecordOverhead, MsgRef::Flow)
            }
            _ => {
                if self.infer_tls13_handshake(d) {
                    emit.stats.tls.inferred_handshake_bytes += total;
                    emit.stats.tls.inferred_handshake_records += 1;
                    return Plan::Whole(Class::TlsHandshake, MsgRef::Setup);
                }
                let exp = self.expansion();
                if !exp.exact {
                    emit.stats.tls.records_with_unknown_expansion += 1;
                }
                let header_len = if self.dtls { DTLS_HEADER } else { TLS_HEADER };
                let plain = (total as usize).saturating_sub(header_len + exp.pre + exp.post);
                let msg = if self.inner.is_some() {
                    // A key log is decrypting this flow: the inner dissector
                    // owns the exchanges; a stray opaque record belongs to none.
                    MsgRef::Flow
                } else if exp.exact && plain <= 2 {
                    // Two bytes or less: a TLS 1.3 alert hidden in application
                    // data, or a keep-alive ping; no exchange of its own.
                    MsgRef::Flow
                } else if self.conn.tls13() && d == Dir::S2C.idx() && !self.conn.client_sent_data {
                    // Server records after the handshake and before the
                    // first request: NewSessionTickets.
                    MsgRef::Setup
                } else {
                    if d == Dir::C2S.idx() {
                        self.conn.client_sent_data = true;
                    }
                    MsgRef::Exchange(self.exchanges.record(d, self.conn.sni.as_deref(), emit))
                };
                Plan::Opaque { exp, msg }
            }
        }
    }

    /// TLS 1.3 without keys: the server's encrypted records from its
    /// ServerHello until the client's first encrypted record, and that
    /// record (its Finished), are handshake.
    fn infer_tls13_handshake(&mut self, d: usize) -> bool {
        if self.dtls || !self.conn.tls13() || self.halves[d].handshake_done {
            return false;
        }
        if d == Dir::C2S.idx() {
            self.halves[Dir::C2S.idx()].handshake_done = true;
            self.halves[Dir::S2C.idx()].handshake_done = true;
        }
        true
    }

    fn expansion(&self) -> Expansion {
        match (self.conn.suite, self.conn.version) {
            (Some(s), Some(v)) => decrypt::expansion(s, v),
            _ => Expansion::UNKNOWN,
        }
    }

    /// A whole record (header + `body`) is here.
    fn complete_record(&mut self, d: usize, rec: Rec, body: &[u8], emit: &mut Emit) {
        let header = rec.header.get(..rec.header_len).unwrap_or_default();
        let total = rec.total();
        let plan = if rec.plan == Plan::Decrypt {
            match self.decrypt_record(d, &rec, header, body, emit) {
                Ok(()) => return,
                // A handshake record the key log has no secret for; the
                // application secrets may still open what follows.
                Err(DecryptError::MissingSecret) => self.keyless_plan(d, rec.typ, true, total as u64, emit),
                Err(why) => {
                    self.stop_decrypting(why, emit);
                    self.keyless_plan(d, rec.typ, true, total as u64, emit)
                }
            }
        } else {
            rec.plan
        };
        book(plan, total, rec.header_len, 0, total, emit);
        match rec.typ {
            HANDSHAKE if !self.is_protected(d, HANDSHAKE, &rec.header) => self.cleartext_handshake(d, body, emit),
            CHANGE_CIPHER_SPEC => self.change_cipher_spec(d, emit),
            ALERT if !self.is_protected(d, ALERT, &rec.header) => count_alert(body, emit),
            _ => {}
        }
    }

    fn change_cipher_spec(&mut self, d: usize, emit: &mut Emit) {
        if d == Dir::S2C.idx() && self.conn.resumption_pending {
            // ChangeCipherSpec right after ServerHello: abbreviated handshake.
            self.decide_resumption(true, emit);
        }
        // A ChangeCipherSpec before the ServerHello (after a
        // HelloRetryRequest) or in TLS 1.3 is only for middlebox
        // compatibility: nothing after it is protected by it.
        if self.conn.server_hello && !self.conn.tls13() {
            self.halves[d].protected = true;
        }
    }

    // ---- gaps and the end ----------------------------------------------

    fn gap_tcp(&mut self, d: usize, len: u64, emit: &mut Emit) {
        let mut left = len;
        if self.halves[d].rec.is_some() {
            self.make_lossy(d, emit);
            if let Some(rec) = self.halves[d].rec.as_mut() {
                let room = rec.len.saturating_sub(rec.done) as u64;
                let skip = room.min(left);
                rec.done += skip as usize;
                left -= skip;
                if rec.done >= rec.len {
                    self.halves[d].rec = None;
                }
            }
        } else if self.halves[d].hdr_len > 0 {
            let n = std::mem::take(&mut self.halves[d].hdr_len) as u64;
            emit.stats.tls.malformed_bytes += n;
            emit.malformed(n, MsgRef::Flow, "TLS record header cut by missing bytes");
            self.halves[d].walker.broken = true;
        }
        if left > 0 {
            // The next record header is gone: look for one.
            let h = &mut self.halves[d];
            h.hunting = true;
            h.walker.broken = true;
        }
    }

    /// Bytes of the current record were lost: book what arrived by
    /// position and stream the rest; the record cannot be read any more.
    fn make_lossy(&mut self, d: usize, emit: &mut Emit) {
        let Some(rec) = self.halves[d].rec.as_ref() else { return };
        if rec.lossy {
            return;
        }
        let (typ, total, header_len, done) = (rec.typ, rec.total(), rec.header_len, rec.done);
        let protected = self.is_protected(d, typ, &rec.header);
        let mut plan = rec.plan;
        if plan == Plan::Decrypt {
            // Its sequence number is spent; the inner stream misses its plaintext.
            let exp = self.expansion();
            let h = &mut self.halves[d];
            if let Some(k) = h.keys.as_mut() {
                k.skip_record();
            }
            if let Some(inner) = self.inner.as_mut()
                && typ == APPLICATION_DATA
            {
                let plain = rec_plain_estimate(total.saturating_sub(header_len), exp);
                inner.gap(dir_of(d), plain as u64, emit);
            }
            plan = match typ {
                HANDSHAKE => Plan::Whole(Class::TlsHandshake, MsgRef::Setup),
                ALERT => Plan::Whole(Class::TlsRecordOverhead, MsgRef::Flow),
                _ => Plan::Opaque { exp, msg: MsgRef::Flow },
            };
        }
        if typ == HANDSHAKE && !protected {
            self.halves[d].walker.broken = true;
        }
        book(plan, total, header_len, 0, header_len + done, emit);
        let h = &mut self.halves[d];
        h.body.clear();
        if let Some(rec) = h.rec.as_mut() {
            rec.plan = plan;
            rec.lossy = true;
        }
    }

    fn finish_half(&mut self, d: usize, emit: &mut Emit) {
        if self.halves[d].hdr_len > 0 {
            let n = std::mem::take(&mut self.halves[d].hdr_len) as u64;
            self.halves[d].hunt_skipped += n;
            self.halves[d].hunting = true;
            emit.span(Class::Payload, n, MsgRef::Flow);
            emit.stats.tls.malformed_bytes += n;
        }
        if self.halves[d].rec.is_some() {
            emit.stats.tls.truncated_records += 1;
            self.make_lossy(d, emit);
            self.halves[d].rec = None;
        }
        self.end_hunt(d, emit);
    }

    // ---- handshake -------------------------------------------------------

    fn cleartext_handshake(&mut self, d: usize, body: &[u8], emit: &mut Emit) {
        let mut msgs = std::mem::take(&mut self.halves[d].messages);
        msgs.clear();
        if self.dtls {
            self.dtls_fragments(d, body, &mut msgs);
        } else {
            self.halves[d].walker.feed(body, &mut msgs);
        }
        for m in msgs.drain(..) {
            self.handshake_message(d, &m, false, emit);
        }
        self.halves[d].messages = msgs;
    }

    /// DTLS handshake fragments (12-byte headers); whole, new messages only.
    fn dtls_fragments(&mut self, d: usize, mut body: &[u8], out: &mut Vec<HsMsg>) {
        let u24 = |b: &[u8], at: usize| -> Option<usize> {
            Some(usize::from(*b.get(at)?) << 16 | usize::from(*b.get(at + 1)?) << 8 | usize::from(*b.get(at + 2)?))
        };
        while body.len() >= 12 {
            let (Some(&typ), Some(len), Some(off), Some(flen)) =
                (body.first(), u24(body, 1), u24(body, 6), u24(body, 9))
            else {
                break;
            };
            let seq = u32::from(*body.get(4).unwrap_or(&0)) << 8 | u32::from(*body.get(5).unwrap_or(&0));
            let Some(frag) = body.get(12..12 + flen) else { break };
            let h = &mut self.halves[d];
            // A message counts at its first fragment; only unfragmented
            // ones are parsed. A retransmitted flight repeats message_seq
            // values already seen.
            if off == 0 && seq >= h.dtls_next_msg_seq {
                h.dtls_next_msg_seq = seq + 1;
                out.push(HsMsg { typ, len, body: (flen == len && keep_body(typ)).then(|| frag.to_vec()) });
            }
            body = body.get(12 + flen..).unwrap_or_default();
        }
    }

    fn handshake_message(&mut self, d: usize, m: &HsMsg, sealed: bool, emit: &mut Emit) {
        let server = d == Dir::S2C.idx();
        if server && self.conn.resumption_pending && !sealed && m.typ != SERVER_HELLO {
            match m.typ {
                CERTIFICATE | SERVER_KEY_EXCHANGE | CERTIFICATE_REQUEST | SERVER_HELLO_DONE | CERTIFICATE_STATUS => {
                    self.decide_resumption(false, emit)
                }
                NEW_SESSION_TICKET => self.decide_resumption(true, emit),
                _ => {}
            }
        }
        match m.typ {
            CLIENT_HELLO if !server && !sealed => {
                emit.stats.tls.client_hellos += 1;
                if let Some(body) = &m.body {
                    self.client_hello(body, emit);
                }
            }
            SERVER_HELLO if server && !sealed => {
                if let Some(body) = &m.body {
                    self.server_hello(body, emit);
                }
            }
            HELLO_VERIFY_REQUEST => emit.stats.tls.hello_verify_requests += 1,
            NEW_SESSION_TICKET => emit.stats.tls.new_session_tickets += 1,
            CERTIFICATE => {
                emit.stats.tls.certificate_messages += 1;
                emit.stats.tls.certificate_chain_bytes += m.len as u64;
            }
            ENCRYPTED_EXTENSIONS if server => {
                if let Some(alpn) = m
                    .body
                    .as_deref()
                    .and_then(|b| b.get(2..))
                    .and_then(|exts| find_ext(exts, EXT_ALPN))
                    .and_then(alpn_first)
                {
                    self.negotiated_alpn(alpn, emit);
                }
            }
            FINISHED if sealed && self.conn.tls13() && !self.halves[d].handshake_done => {
                // The next record of this side uses its application keys.
                let h = &mut self.halves[d];
                h.handshake_done = true;
                match h.next_keys.take() {
                    Some(next) => h.keys = Some(next),
                    None => self.stop_decrypting(DecryptError::MissingSecret, emit),
                }
            }
            KEY_UPDATE if sealed => {
                emit.stats.tls.key_updates += 1;
                if let Some(k) = self.halves[d].keys.as_mut()
                    && let Err(why) = k.key_update()
                {
                    self.stop_decrypting(why, emit);
                }
            }
            _ => {}
        }
    }

    fn client_hello(&mut self, body: &[u8], emit: &mut Emit) {
        let owned;
        let body = if self.dtls {
            match dtls_client_hello_without_cookie(body) {
                Some(b) => {
                    owned = b;
                    &owned[..]
                }
                None => {
                    emit.event(Event::Malformed { bytes: 0, reason: "DTLS ClientHello does not parse".into() });
                    return;
                }
            }
        } else {
            body
        };
        let Ok((_, ch)) = tls_parser::parse_tls_handshake_client_hello(body) else {
            emit.event(Event::Malformed { bytes: 0, reason: "TLS ClientHello does not parse".into() });
            return;
        };
        // A second ClientHello (after HelloRetryRequest / HelloVerifyRequest)
        // keeps the random; only the first one names the connection.
        if self.conn.client_random.is_none() {
            self.conn.client_random = ch.random.try_into().ok();
        }
        self.conn.offered_session_id = ch.session_id.unwrap_or_default().to_vec();
        if self.conn.sni.is_none()
            && let Some(name) = ch.ext.and_then(|e| find_ext(e, EXT_SNI)).and_then(sni_host_name)
        {
            bump(&mut emit.stats.tls.sni, &name);
            self.conn.sni = Some(name);
        }
    }

    fn server_hello(&mut self, body: &[u8], emit: &mut Emit) {
        let Some(sh) = ServerHello::parse(body) else {
            emit.event(Event::Malformed { bytes: 0, reason: "TLS ServerHello does not parse".into() });
            return;
        };
        if sh.random == HRR_RANDOM {
            emit.stats.tls.hello_retry_requests += 1;
            return;
        }
        if self.conn.server_hello {
            return; // a repeated ServerHello (renegotiation is encrypted; DTLS repeats are filtered)
        }
        let version = sh
            .ext
            .and_then(|e| find_ext(e, EXT_SUPPORTED_VERSIONS))
            .and_then(|v| Some(u16::from_be_bytes(v.get(..2)?.try_into().ok()?)))
            .unwrap_or(sh.version);
        self.conn.server_hello = true;
        self.conn.version = Some(version);
        self.conn.suite = Some(sh.suite);
        self.conn.server_random = Some(sh.random);
        self.conn.encrypt_then_mac = sh.ext.is_some_and(|e| find_ext(e, EXT_ENCRYPT_THEN_MAC).is_some());
        let st = &mut emit.stats.tls;
        bump(&mut st.versions, &version_name(version));
        bump(&mut st.cipher_suites, &suite_name(sh.suite));
        if version == TLS13 {
            let resumed = sh.ext.is_some_and(|e| find_ext(e, EXT_PRE_SHARED_KEY).is_some());
            self.conn.resumption_pending = true;
            self.decide_resumption(resumed, emit);
        } else {
            self.conn.resumption_pending = true;
            self.conn.session_id_echoed =
                !sh.session_id.is_empty() && sh.session_id == self.conn.offered_session_id.as_slice();
            if let Some(alpn) = sh.ext.and_then(|e| find_ext(e, EXT_ALPN)).and_then(alpn_first) {
                self.negotiated_alpn(alpn, emit);
            }
        }
        if self.conn.alpn.is_none() && !self.conn.app_announced {
            // The IANA ports of MQTT and CoAP over TLS/DTLS say what is inside.
            let by_port = match self.ctx.server_port {
                8883 => Some("mqtt"),
                5684 => Some("coap"),
                _ => None,
            };
            if let Some(name) = by_port {
                self.conn.app_announced = true;
                emit.event(Event::App { name });
            }
        }
        self.setup_keys(emit);
    }

    fn decide_resumption(&mut self, resumed: bool, emit: &mut Emit) {
        if !std::mem::take(&mut self.conn.resumption_pending) {
            return;
        }
        if resumed {
            emit.stats.tls.resumed_handshakes += 1;
        } else {
            emit.stats.tls.full_handshakes += 1;
        }
    }

    fn negotiated_alpn(&mut self, alpn: String, emit: &mut Emit) {
        bump(&mut emit.stats.tls.alpn, &alpn);
        if let Some(p) = alpn_protocol(&alpn)
            && !self.conn.app_announced
        {
            self.conn.app_announced = true;
            emit.event(Event::App { name: p.name });
        }
        self.conn.alpn = Some(alpn);
    }

    // ---- decryption ------------------------------------------------------

    /// After the ServerHello: find the connection's secrets and derive keys.
    fn setup_keys(&mut self, emit: &mut Emit) {
        if self.decrypt_off {
            return;
        }
        let Some(keylog) = self.ctx.cfg.keylog.clone() else { return };
        let (Some(cr), Some(suite_id), Some(version)) = (self.conn.client_random, self.conn.suite, self.conn.version)
        else {
            return;
        };
        let Some(secrets) = keylog.lookup(&cr) else {
            self.decrypt_off = true;
            emit.stats.tls.decryption.connections_without_keys += 1;
            return;
        };
        let Some(suite) = Suite::from_id(suite_id) else {
            self.stop_decrypting(DecryptError::UnsupportedSuite(suite_id), emit);
            return;
        };
        let result = if version == TLS13 {
            if !secrets.has_tls13() {
                self.decrypt_off = true;
                emit.stats.tls.decryption.connections_without_keys += 1;
                return;
            }
            let mk = |s: &Option<crate::keylog::Secret>| s.as_ref().map(|s| RecordKeys::tls13(suite, s)).transpose();
            (|| {
                let c = (mk(&secrets.client_handshake_traffic)?, mk(&secrets.client_traffic_0)?);
                let s = (mk(&secrets.server_handshake_traffic)?, mk(&secrets.server_traffic_0)?);
                Ok::<_, DecryptError>((c, s))
            })()
        } else if version == 0x0303 || version == 0xfefd {
            let (Some(master), Some(sr)) = (&secrets.master_secret, self.conn.server_random) else {
                self.decrypt_off = true;
                emit.stats.tls.decryption.connections_without_keys += 1;
                return;
            };
            let opts = Tls12Options { dtls: self.dtls, encrypt_then_mac: self.conn.encrypt_then_mac };
            (|| {
                let c = RecordKeys::tls12(suite, master.bytes(), &cr, &sr, Side::Client, opts)?;
                let s = RecordKeys::tls12(suite, master.bytes(), &cr, &sr, Side::Server, opts)?;
                Ok::<_, DecryptError>(((Some(c), None), (Some(s), None)))
            })()
        } else {
            Err(DecryptError::UnsupportedVersion(version))
        };
        match result {
            Ok(((ck, cn), (sk, sn))) => {
                emit.stats.tls.decryption.connections_with_keys += 1;
                let c = &mut self.halves[Dir::C2S.idx()];
                c.keys = ck;
                c.next_keys = cn;
                let s = &mut self.halves[Dir::S2C.idx()];
                s.keys = sk;
                s.next_keys = sn;
            }
            Err(why) => self.stop_decrypting(why, emit),
        }
    }

    /// Decryption ends for this connection: say why once, and account for
    /// the rest of it without keys.
    fn stop_decrypting(&mut self, why: DecryptError, emit: &mut Emit) {
        if self.decrypt_off {
            return;
        }
        self.decrypt_off = true;
        for h in &mut self.halves {
            h.keys = None;
            h.next_keys = None;
        }
        bump(&mut emit.stats.tls.decryption.failures, why.kind());
        emit.event(Event::Malformed {
            bytes: 0,
            reason: format!("TLS decryption stopped on this connection: {why}; the rest is accounted without keys"),
        });
        if let Some(mut inner) = self.inner.take() {
            inner.finish(emit);
        }
    }

    fn open(&mut self, d: usize, header: &[u8], body: &[u8]) -> Result<Opened, DecryptError> {
        let h = &mut self.halves[d];
        let first = match h.keys.as_mut() {
            Some(k) => k.open(header, body),
            // TLS 1.3 without the handshake secrets: only application data opens.
            None => Err(DecryptError::MissingSecret),
        };
        match first {
            Ok(o) => Ok(o),
            Err(e) => {
                // TLS 1.3: the Finished that switches keys may have been missed.
                let Some(next) = h.next_keys.as_mut() else { return Err(e) };
                let o = next.open(header, body).map_err(|_| e)?;
                h.keys = h.next_keys.take();
                h.handshake_done = true;
                Ok(o)
            }
        }
    }

    fn decrypt_record(
        &mut self,
        d: usize,
        rec: &Rec,
        header: &[u8],
        body: &[u8],
        emit: &mut Emit,
    ) -> Result<(), DecryptError> {
        let opened = self.open(d, header, body)?;
        let total = rec.total() as u64;
        let st = &mut emit.stats.tls.decryption;
        st.records_decrypted += 1;
        bump(&mut st.inner_content_types, &opened.content_type.to_string());
        match opened.content_type {
            HANDSHAKE => {
                emit.span(Class::TlsHandshake, total, MsgRef::Setup);
                let mut msgs = std::mem::take(&mut self.halves[d].messages);
                msgs.clear();
                if self.dtls {
                    self.dtls_fragments(d, &opened.plaintext, &mut msgs);
                } else {
                    self.halves[d].sealed_walker.feed(&opened.plaintext, &mut msgs);
                }
                for m in msgs.drain(..) {
                    self.handshake_message(d, &m, true, emit);
                }
                self.halves[d].messages = msgs;
            }
            ALERT => {
                emit.span(Class::TlsRecordOverhead, total, MsgRef::Flow);
                count_alert(&opened.plaintext, emit);
            }
            APPLICATION_DATA => {
                let plain = opened.plaintext.len() as u64;
                let overhead = total.saturating_sub(plain);
                emit.stats.tls.decryption.plaintext_bytes += plain;
                let mut msg = MsgRef::Flow;
                if plain > 0 {
                    let dir = dir_of(d);
                    let inner = self.inner_for(dir, &opened.plaintext, emit);
                    let first_span = emit.spans.len();
                    inner.data(dir, &opened.plaintext, emit);
                    // The record's overhead goes with the exchange its plaintext opened or continued.
                    msg = emit
                        .spans
                        .get(first_span..)
                        .unwrap_or_default()
                        .iter()
                        .map(|s| s.msg)
                        .find(|m| matches!(m, MsgRef::Exchange(_)))
                        .unwrap_or(MsgRef::Flow);
                }
                emit.span(Class::TlsRecordOverhead, overhead, msg);
            }
            other => {
                emit.span(Class::TlsRecordOverhead, total.saturating_sub(opened.plaintext.len() as u64), MsgRef::Flow);
                emit.stats.tls.malformed_bytes += opened.plaintext.len() as u64;
                emit.malformed(
                    opened.plaintext.len() as u64,
                    MsgRef::Flow,
                    format!("decrypted TLS record has unknown content type {other}"),
                );
            }
        }
        Ok(())
    }

    /// The dissector for the decrypted stream, chosen by ALPN or by content.
    fn inner_for(&mut self, dir: Dir, first: &[u8], emit: &mut Emit) -> &mut Box<dyn Dissector> {
        let ctx = &self.ctx;
        let alpn = self.conn.alpn.as_deref();
        self.inner.get_or_insert_with(|| {
            let proto = alpn
                .and_then(alpn_protocol)
                .or_else(|| super::recognise(ctx.l4, ctx.server_port, dir, first))
                .or_else(|| super::recognise(ctx.l4, cleartext_port(ctx.server_port), dir, first))
                .filter(|p| p.name != PROTOCOL.name);
            match proto {
                Some(p) => {
                    emit.event(Event::App { name: p.name });
                    (p.make)(ctx)
                }
                None => Box::new(super::unknown::Unknown),
            }
        })
    }
}

impl Dissector for Tls {
    fn data(&mut self, dir: Dir, data: &[u8], emit: &mut Emit) {
        if self.dtls {
            self.data_udp(dir.idx(), data, emit);
        } else {
            self.data_tcp(dir.idx(), data, emit);
        }
    }

    fn gap(&mut self, dir: Dir, len: u64, emit: &mut Emit) {
        if !self.dtls && len > 0 {
            self.gap_tcp(dir.idx(), len, emit);
        }
    }

    fn finish(&mut self, emit: &mut Emit) {
        for d in 0..2 {
            self.finish_half(d, emit);
        }
        if self.conn.resumption_pending {
            let resumed = self.conn.session_id_echoed;
            self.decide_resumption(resumed, emit);
        }
        self.exchanges.close(emit);
        if let Some(mut inner) = self.inner.take() {
            inner.finish(emit);
        }
    }
}

fn dir_of(d: usize) -> Dir {
    if d == 0 { Dir::C2S } else { Dir::S2C }
}

/// The port the same service uses without TLS, for recognising the inner protocol.
fn cleartext_port(port: u16) -> u16 {
    match port {
        443 | 4433 => 80,
        8443 => 8080,
        8883 => 1883,
        5684 => 5683,
        p => p,
    }
}

fn alpn_protocol(alpn: &str) -> Option<&'static Protocol> {
    let name = match alpn {
        "http/1.1" | "http/1.0" => "http",
        "h2" | "h2c" => "http2",
        "mqtt" => "mqtt",
        "coap" => "coap",
        _ => return None,
    };
    super::by_name(name)
}

/// Plaintext length of a protected fragment of `body_len` bytes, as far as
/// the expansion is known.
fn rec_plain_estimate(body_len: usize, exp: Expansion) -> usize {
    body_len.saturating_sub(exp.pre + exp.post)
}

/// Books bytes `[off, off + n)` of a record of `total` bytes (header of
/// `header_len` included) according to `plan`.
fn book(plan: Plan, total: usize, header_len: usize, off: usize, n: usize, emit: &mut Emit) {
    if n == 0 {
        return;
    }
    match plan {
        Plan::Whole(class, msg) => emit.span(class, n as u64, msg),
        Plan::Opaque { exp, msg } => {
            // [0, lead) overhead, [lead, tail) payload, [tail, total) overhead.
            let lead = (header_len + exp.pre).min(total);
            let tail = total.saturating_sub(exp.post).max(lead);
            let end = off + n;
            let seg = |a: usize, b: usize| end.min(b).saturating_sub(off.max(a)) as u64;
            emit.span(Class::TlsRecordOverhead, seg(0, lead), msg);
            emit.span(Class::Payload, seg(lead, tail), msg);
            emit.span(Class::TlsRecordOverhead, seg(tail, total), msg);
        }
        Plan::Decrypt => emit.span(Class::Payload, n as u64, MsgRef::Flow),
    }
}

fn count_alert(body: &[u8], emit: &mut Emit) {
    let name = match body {
        [_level, desc] => snake_case(&tls_parser::TlsAlertDescription(*desc).to_string()),
        _ => "malformed".to_string(),
    };
    bump(&mut emit.stats.tls.alerts, &name);
}

/// `CloseNotify` -> `close_notify`, the RFC's spelling.
fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The parts of a ServerHello wiretax uses (TLS and DTLS alike).
struct ServerHello<'a> {
    version: u16,
    random: [u8; 32],
    session_id: &'a [u8],
    suite: u16,
    ext: Option<&'a [u8]>,
}

impl<'a> ServerHello<'a> {
    fn parse(b: &'a [u8]) -> Option<ServerHello<'a>> {
        let version = u16::from_be_bytes(b.get(..2)?.try_into().ok()?);
        let random: [u8; 32] = b.get(2..34)?.try_into().ok()?;
        let sid_len = usize::from(*b.get(34)?);
        if sid_len > 32 {
            return None;
        }
        let session_id = b.get(35..35 + sid_len)?;
        let at = 35 + sid_len;
        let suite = u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?);
        let _compression = *b.get(at + 2)?;
        let ext = match b.get(at + 3..at + 5) {
            Some(l) => {
                let len = usize::from(u16::from_be_bytes(l.try_into().ok()?));
                Some(b.get(at + 5..at + 5 + len)?)
            }
            None => None,
        };
        Some(ServerHello { version, random, session_id, suite, ext })
    }
}

/// The data of extension `typ` in a raw extensions block.
fn find_ext(mut exts: &[u8], typ: u16) -> Option<&[u8]> {
    while exts.len() >= 4 {
        let t = u16::from_be_bytes([*exts.first()?, *exts.get(1)?]);
        let len = usize::from(u16::from_be_bytes([*exts.get(2)?, *exts.get(3)?]));
        let data = exts.get(4..4 + len)?;
        if t == typ {
            return Some(data);
        }
        exts = exts.get(4 + len..)?;
    }
    None
}

fn sni_host_name(data: &[u8]) -> Option<String> {
    let (_, tls_parser::TlsExtension::SNI(names)) = tls_parser::parse_tls_extension_sni_content(data).ok()? else {
        return None;
    };
    let (_, host) = names.into_iter().find(|(t, _)| t.0 == 0)?;
    let host = std::str::from_utf8(host).ok()?;
    // Printable names only, and not unbounded.
    (host.len() <= 255 && host.bytes().all(|b| b.is_ascii_graphic())).then(|| host.to_ascii_lowercase())
}

fn alpn_first(data: &[u8]) -> Option<String> {
    let (_, tls_parser::TlsExtension::ALPN(list)) = tls_parser::parse_tls_extension_alpn_content(data).ok()? else {
        return None;
    };
    let p = std::str::from_utf8(list.first()?).ok()?;
    p.bytes().all(|b| b.is_ascii_graphic()).then(|| p.to_string())
}

/// A DTLS ClientHello is a TLS one with a cookie after the session id.
fn dtls_client_hello_without_cookie(body: &[u8]) -> Option<Vec<u8>> {
    let sid_len = usize::from(*body.get(34)?);
    let cookie_at = 35 + sid_len;
    let cookie_len = usize::from(*body.get(cookie_at)?);
    let mut v = body.get(..cookie_at)?.to_vec();
    v.extend_from_slice(body.get(cookie_at + 1 + cookie_len..)?);
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decrypt::tests::{Conversation, read_conversations};
    use crate::dissect::testkit::{self, Run};
    use crate::dissect::{Config, ProtoStats};
    use crate::keylog::KeyLog;
    use std::sync::Arc;

    fn capture_path(name: &str) -> String {
        format!("{}/captures/{name}", env!("CARGO_MANIFEST_DIR"))
    }

    fn conversations(name: &str) -> Vec<Conversation> {
        read_conversations(&capture_path(&format!("{name}.pcap")))
    }

    fn truth(name: &str) -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(capture_path(&format!("{name}.truth.json"))).unwrap()).unwrap()
    }

    fn cfg(keylog: Option<&str>) -> Arc<Config> {
        Arc::new(Config { keylog: keylog.map(|k| Arc::new(KeyLog::load(capture_path(k)).unwrap())) })
    }

    /// Runs every conversation of a capture through a fresh dissector.
    fn run_capture(name: &str, cfg: Arc<Config>, bytewise: bool) -> (Run, Vec<Run>) {
        let mut all = Run::default();
        let mut runs = vec![];
        for c in conversations(name) {
            let ctx = FlowCtx { l4: c.l4, server_port: c.server_port, cfg: cfg.clone() };
            let mut d = Tls::new(&ctx);
            let pieces: Vec<(Dir, &[u8])> = c.pieces.iter().map(|(d, b)| (*d, b.as_slice())).collect();
            let r = if bytewise && c.l4 == L4::Tcp {
                testkit::run_bytewise(&mut d, &pieces)
            } else {
                testkit::run(&mut d, &pieces)
            };
            r.assert_conserved();
            all.spans.extend(r.spans.iter().copied());
            all.events.extend(r.events.iter().cloned());
            all.stats.merge(&r.stats);
            all.fed += r.fed;
            runs.push(r);
        }
        (all, runs)
    }

    fn class_of(t: &serde_json::Value, key: &str, class: &str) -> u64 {
        let alt = key.replace("byte_classes", "bytes_by_class");
        let v = t.get(key).or_else(|| t.get(&alt)).or_else(|| t.get("byte_classes")).unwrap();
        v[class].as_u64().unwrap()
    }

    fn check_tls_section(name: &str, st: &ProtoStats) {
        let t = truth(name);
        let want = &t["tls"];
        let got = serde_json::to_value(&st.tls).unwrap();
        for k in [
            "connections",
            "full_handshakes",
            "resumed_handshakes",
            "versions",
            "handshake_record_bytes",
            "app_data_record_bytes",
            "records",
        ] {
            assert_eq!(got[k], want[k], "{name}: tls.{k}");
        }
    }

    const TLS12: &[&str] = &["https-tls12-full", "https-tls12-resumed", "sparse-https-poll", "mqtt-tls12", "coap-dtls"];
    const TLS13: &[&str] = &["https-tls13-full", "https-tls13-resumed", "mqtt-tls13"];

    #[test]
    fn keyless_tls12_and_dtls_classes_match_truth_exactly() {
        for name in TLS12 {
            let (r, _) = run_capture(name, cfg(None), false);
            let t = truth(name);
            for class in [Class::TlsHandshake, Class::TlsRecordOverhead, Class::Payload] {
                assert_eq!(r.class(class), class_of(&t, "byte_classes", class.name()), "{name}: {}", class.name());
            }
            check_tls_section(name, &r.stats);
            assert!(!r.events.iter().any(|e| matches!(e, Event::Malformed { .. })), "{name}: {:?}", r.events);
        }
    }

    #[test]
    fn keyless_tls13_infers_handshake_within_truth_bounds() {
        for name in TLS13 {
            let (r, _) = run_capture(name, cfg(None), false);
            let t = truth(name);
            let hs = r.class(Class::TlsHandshake);
            let lo = class_of(&t, "byte_classes", "tls_handshake");
            let hi =
                t.get("byte_classes_decrypted").or_else(|| t.get("bytes_by_class_decrypted")).unwrap()["tls_handshake"]
                    .as_u64()
                    .unwrap();
            assert!(hs >= lo && hs <= hi, "{name}: tls_handshake {hs} not in [{lo}, {hi}]");
            assert!(hs > lo, "{name}: the encrypted flight should be inferred");
            assert_eq!(r.stats.tls.inferred_handshake_bytes, hs - lo, "{name}");
            check_tls_section(name, &r.stats);
        }
    }

    #[test]
    fn bytewise_feeding_gives_the_same_result() {
        for (name, keylog) in [
            ("https-tls12-resumed", None),
            ("mqtt-tls13", None),
            ("mqtt-tls13", Some("mqtt-tls13.keylog")),
            ("https-tls12-resumed", Some("https-tls12-resumed.keylog")),
        ] {
            let (a, _) = run_capture(name, cfg(keylog), false);
            let (b, _) = run_capture(name, cfg(keylog), true);
            assert_eq!(a.ledger(), b.ledger(), "{name}");
            assert_eq!(
                serde_json::to_value(&a.stats.tls).unwrap(),
                serde_json::to_value(&b.stats.tls).unwrap(),
                "{name}"
            );
            let opens = |r: &Run| r.events.iter().filter(|e| matches!(e, Event::Open { .. })).count();
            assert_eq!(opens(&a), opens(&b), "{name}");
        }
    }

    #[test]
    fn keyless_exchanges_pair_client_runs_with_answers() {
        let (_, runs) = run_capture("https-tls12-full", cfg(None), false);
        for r in &runs {
            let opens: Vec<_> = r
                .events
                .iter()
                .filter_map(|e| match e {
                    Event::Open { id, kind, .. } => Some((*id, *kind)),
                    _ => None,
                })
                .collect();
            assert_eq!(opens.len(), 1, "{:?}", r.events);
            assert_eq!(opens[0].1, "tls");
            let id = opens[0].0;
            assert!(r.events.contains(&Event::Responded { id }));
            assert!(r.events.contains(&Event::Close { id }));
            // Handshake bytes are setup, app data belongs to the exchange.
            let setup: u64 = r.spans.iter().filter(|s| s.msg == MsgRef::Setup).map(|s| s.len).sum();
            assert_eq!(setup, r.class(Class::TlsHandshake));
            assert!(r.spans.iter().any(|s| s.msg == MsgRef::Exchange(id) && s.class == Class::Payload));
        }
    }

    #[test]
    fn decrypted_classes_match_truth_with_key_logs() {
        for name in TLS12.iter().chain(TLS13) {
            let (r, _) = run_capture(name, cfg(Some(&format!("{name}.keylog"))), false);
            let t = truth(name);
            let dec = |c: &str| class_of(&t, "byte_classes_decrypted", c);
            let st = &r.stats.tls.decryption;
            assert!(st.failures.is_empty(), "{name}: {st:?} {:?}", r.events);
            assert_eq!(st.connections_without_keys, 0, "{name}");
            assert_eq!(st.connections_with_keys, r.stats.tls.connections, "{name}");
            assert_eq!(r.class(Class::TlsHandshake), dec("tls_handshake"), "{name}: tls_handshake");
            assert_eq!(r.class(Class::TlsRecordOverhead), dec("tls_record_overhead"), "{name}: tls_record_overhead");
            // The inner dissector owns the plaintext: everything else.
            let inner: u64 = [Class::AppHeader, Class::AppControl, Class::Payload].iter().map(|c| r.class(*c)).sum();
            assert_eq!(inner, dec("app_header") + dec("app_control") + dec("payload"), "{name}: plaintext");
            assert_eq!(st.plaintext_bytes, inner, "{name}");
            // The outer-type statistics do not change with keys.
            check_tls_section(name, &r.stats);
            assert!(!r.events.iter().any(|e| matches!(e, Event::Malformed { .. })), "{name}: {:?}", r.events);
        }
    }

    /// Stands in for the inner protocol: keeps what it is fed.
    type Seen = Arc<std::sync::Mutex<Vec<(Dir, Vec<u8>)>>>;
    struct Recorder(Seen);

    impl Dissector for Recorder {
        fn data(&mut self, dir: Dir, data: &[u8], emit: &mut Emit) {
            self.0.lock().unwrap().push((dir, data.to_vec()));
            emit.span(Class::Payload, data.len() as u64, MsgRef::Flow);
        }
        fn gap(&mut self, _dir: Dir, _len: u64, _emit: &mut Emit) {}
        fn finish(&mut self, _emit: &mut Emit) {}
    }

    fn fixture(name: &str) -> String {
        format!("{}/src/decrypt/testdata/{name}", env!("CARGO_MANIFEST_DIR"))
    }

    /// Runs a generated capture (OpenSSL s_client -> s_server -rev) with its
    /// key log; returns the run and the plaintext per direction.
    fn run_fixture(name: &str, with_keys: bool) -> (Run, Vec<u8>, Vec<u8>) {
        let convs = read_conversations(&fixture(&format!("{name}.pcap")));
        assert_eq!(convs.len(), 1, "{name}");
        let c = &convs[0];
        let keylog = with_keys.then(|| Arc::new(KeyLog::load(fixture(&format!("{name}.keylog"))).unwrap()));
        let ctx = FlowCtx { l4: c.l4, server_port: c.server_port, cfg: Arc::new(Config { keylog }) };
        let seen = Arc::new(std::sync::Mutex::new(vec![]));
        let mut d = Tls::new(&ctx);
        d.inner = Some(Box::new(Recorder(seen.clone())));
        let pieces: Vec<(Dir, &[u8])> = c.pieces.iter().map(|(d, b)| (*d, b.as_slice())).collect();
        let r = testkit::run(&mut d, &pieces);
        r.assert_conserved();
        let seen = seen.lock().unwrap();
        let side = |dir| seen.iter().filter(|(d, _)| *d == dir).flat_map(|(_, b)| b.clone()).collect::<Vec<u8>>();
        (r, side(Dir::C2S), side(Dir::S2C))
    }

    const FIXTURES: &[&str] = &[
        "tls12-chacha20",
        "tls12-aes128-ccm",
        "tls12-aes256-ccm8",
        "tls12-aes128-cbc-sha-mte",
        "tls12-aes128-cbc-sha256-mte",
        "tls12-aes256-cbc-sha384-etm",
        "tls13-chacha20",
        "tls13-aes128-ccm",
        "tls13-aes128-ccm8",
        "tls13-hello-retry",
    ];

    #[test]
    fn every_cipher_family_decrypts() {
        for name in FIXTURES {
            let (r, c2s, s2c) = run_fixture(name, true);
            let st = &r.stats.tls;
            assert!(st.decryption.failures.is_empty(), "{name}: {:?} {:?}", st.decryption, r.events);
            assert_eq!(c2s, b"reading 1\nreading 2\n", "{name}");
            assert_eq!(s2c, b"1 gnidaer\n2 gnidaer\n", "{name}");
            assert_eq!(r.class(Class::Payload), 40, "{name}");
            assert_eq!(st.alerts.get("close_notify"), Some(&2), "{name}: {:?}", st.alerts);
            // Every record of outer type 22/20, and every decrypted
            // handshake record, is handshake; nothing else.
            let inner_hs = st.decryption.inner_content_types.get("22").copied().unwrap_or(0);
            assert!(inner_hs >= if name.starts_with("tls13") { 6 } else { 2 }, "{name}: {:?}", st.decryption);
            let expected_suite = if name.starts_with("tls13") { "TLS 1.3" } else { "TLS 1.2" };
            assert_eq!(st.versions.get(expected_suite), Some(&1), "{name}");
            // Without keys the same capture books the same handshake
            // bytes (TLS 1.2) and a lower bound of the expansion (CBC).
            let (k, _, _) = run_fixture(name, false);
            if name.starts_with("tls12") {
                assert_eq!(k.class(Class::TlsHandshake), r.class(Class::TlsHandshake), "{name}");
                assert!(k.class(Class::TlsRecordOverhead) <= r.class(Class::TlsRecordOverhead), "{name}");
                assert_eq!(k.stats.tls.records_with_unknown_expansion > 0, name.contains("cbc"), "{name}");
                if !name.contains("cbc") {
                    assert_eq!(k.class(Class::TlsRecordOverhead), r.class(Class::TlsRecordOverhead), "{name}");
                }
            } else {
                assert!(k.class(Class::TlsHandshake) <= r.class(Class::TlsHandshake), "{name}");
                assert!(k.stats.tls.inferred_handshake_bytes > 0, "{name}");
            }
        }
    }

    #[test]
    fn dtls12_gcm_and_cbc_decrypt() {
        for name in ["dtls12-aes128-gcm", "dtls12-aes256-cbc-sha"] {
            let (r, c2s, s2c) = run_fixture(name, true);
            let st = &r.stats.tls;
            assert!(st.decryption.failures.is_empty(), "{name}: {:?} {:?}", st.decryption, r.events);
            assert_eq!(c2s, b"reading 1\nreading 2\n", "{name}");
            assert_eq!(s2c, b"ack 1\n", "{name}");
            assert_eq!(st.versions.get("DTLS 1.2"), Some(&1), "{name}");
            assert_eq!((st.full_handshakes, st.hello_verify_requests, st.certificate_messages), (1, 1, 1), "{name}");
            // Both Finished messages decrypted and read with DTLS framing.
            assert_eq!(st.decryption.inner_content_types.get("22"), Some(&2), "{name}");
            assert_eq!(st.key_updates, 0, "{name}");
            let (k, _, _) = run_fixture(name, false);
            assert_eq!(k.class(Class::TlsHandshake), r.class(Class::TlsHandshake), "{name}");
        }
    }

    #[test]
    fn hello_retry_request_is_counted_and_the_second_hello_parsed() {
        for keys in [false, true] {
            let (r, _, _) = run_fixture("tls13-hello-retry", keys);
            let st = &r.stats.tls;
            assert_eq!((st.client_hellos, st.hello_retry_requests, st.full_handshakes), (2, 1, 1));
            assert_eq!(st.versions.get("TLS 1.3"), Some(&1));
            assert_eq!(st.sni.len(), 0, "s_client to an IP address sends no SNI");
            if !keys {
                // Server flight (4 records) and the client's Finished.
                assert_eq!(st.inferred_handshake_records, 5);
            }
        }
    }

    #[test]
    fn unsupported_cipher_suite_says_so_and_stays_keyless() {
        let (r, c2s, _) = run_fixture("tls12-aria128-gcm", true);
        let (k, _, _) = run_fixture("tls12-aria128-gcm", false);
        assert_eq!(r.stats.tls.decryption.failures.get("unsupported_cipher_suite"), Some(&1));
        assert!(
            r.events.iter().any(|e| matches!(e, Event::Malformed { reason, .. } if reason.contains("0xc05c"))),
            "{:?}",
            r.events
        );
        assert!(c2s.is_empty());
        assert_eq!(r.ledger(), k.ledger());
        assert_eq!(r.stats.tls.cipher_suites.get("TLS_ECDHE_ECDSA_WITH_ARIA_128_GCM_SHA256"), Some(&1));
    }

    #[test]
    fn tls12_ticket_resumption_is_resumed_and_decrypts() {
        let convs = read_conversations(&fixture("tls12-ticket-resumption.pcap"));
        assert_eq!(convs.len(), 2);
        let keylog = Arc::new(KeyLog::load(fixture("tls12-ticket-resumption.keylog")).unwrap());
        let mut stats = ProtoStats::default();
        for c in &convs {
            let ctx = FlowCtx {
                l4: c.l4,
                server_port: c.server_port,
                cfg: Arc::new(Config { keylog: Some(keylog.clone()) }),
            };
            let seen: Seen = Default::default();
            let mut d = Tls::new(&ctx);
            d.inner = Some(Box::new(Recorder(seen.clone())));
            let pieces: Vec<(Dir, &[u8])> = c.pieces.iter().map(|(d, b)| (*d, b.as_slice())).collect();
            let r = testkit::run(&mut d, &pieces);
            r.assert_conserved();
            let plain: Vec<u8> =
                seen.lock().unwrap().iter().filter(|(d, _)| *d == Dir::C2S).flat_map(|(_, b)| b.clone()).collect();
            assert_eq!(plain, b"reading 1\n");
            stats.merge(&r.stats);
        }
        let st = &stats.tls;
        assert_eq!((st.full_handshakes, st.resumed_handshakes, st.certificate_messages), (1, 1, 1));
        assert!(st.decryption.failures.is_empty());
    }

    #[test]
    fn tls13_key_update_is_followed() {
        let (r, c2s, s2c) = run_fixture("tls13-keyupdate", true);
        let st = &r.stats.tls;
        assert!(st.decryption.failures.is_empty(), "{:?} {:?}", st.decryption, r.events);
        assert_eq!(st.key_updates, 2);
        // The records after each update decrypt.
        assert_eq!(c2s, b"reading 1\nreading 2\nreading 3\n");
        assert_eq!(s2c, b"1 gnidaer\n2 gnidaer\n");
    }

    #[test]
    fn wrong_key_log_falls_back_to_keyless_accounting() {
        // The right client randoms with corrupted secrets.
        let good = std::fs::read_to_string(capture_path("https-tls12-full.keylog")).unwrap();
        let bad: String = good
            .lines()
            .map(|l| {
                let mut f: Vec<String> = l.split(' ').map(str::to_string).collect();
                f[2] = f[2].chars().rev().collect();
                f.join(" ") + "\n"
            })
            .collect();
        let cfg = Arc::new(Config { keylog: Some(Arc::new(KeyLog::parse(&bad))) });
        let (r, runs) = run_capture("https-tls12-full", cfg, false);
        let (k, _) = run_capture("https-tls12-full", self::cfg(None), false);
        assert_eq!(r.ledger(), k.ledger());
        assert_eq!(r.stats.tls.decryption.failures.get("authentication_failed"), Some(&12));
        for run in &runs {
            let msgs: Vec<_> = run
                .events
                .iter()
                .filter_map(|e| match e {
                    Event::Malformed { reason, .. } => Some(reason.clone()),
                    _ => None,
                })
                .collect();
            assert_eq!(msgs.len(), 1, "{msgs:?}");
            assert!(msgs[0].contains("authentication"), "{msgs:?}");
            // Keyless exchanges take over.
            assert!(run.events.iter().any(|e| matches!(e, Event::Open { kind: "tls", .. })));
        }
        // A malformed key log: every line bad, every connection keyless.
        let malformed = KeyLog::parse(&good.replace("CLIENT_RANDOM ", "CLIENT_RANDOM 00"));
        assert_eq!(malformed.bad_lines(), 12);
        let cfg = Arc::new(Config { keylog: Some(Arc::new(malformed)) });
        let (r, _) = run_capture("https-tls12-full", cfg, false);
        assert_eq!(r.ledger(), k.ledger());
        assert_eq!(r.stats.tls.decryption.connections_without_keys, 12);
        // A key log whose secrets match no connection: counted, no noise.
        let unrelated = format!("CLIENT_RANDOM {} {}\n", "11".repeat(32), "22".repeat(48));
        let cfg = Arc::new(Config { keylog: Some(Arc::new(KeyLog::parse(&unrelated))) });
        let (r, _) = run_capture("https-tls12-full", cfg, false);
        assert_eq!(r.ledger(), k.ledger());
        assert_eq!(r.stats.tls.decryption.connections_without_keys, 12);
        assert!(r.stats.tls.decryption.failures.is_empty());
        assert!(!r.events.iter().any(|e| matches!(e, Event::Malformed { .. })));
    }

    #[test]
    fn tls13_key_log_with_only_some_secrets() {
        let good = std::fs::read_to_string(capture_path("mqtt-tls13.keylog")).unwrap();
        let only = |keep: &str| {
            let text: String = good.lines().filter(|l| l.contains(keep)).map(|l| format!("{l}\n")).collect();
            Arc::new(Config { keylog: Some(Arc::new(KeyLog::parse(&text))) })
        };
        let (full, _) = run_capture("mqtt-tls13", cfg(Some("mqtt-tls13.keylog")), false);
        // Application secrets only: the handshake is inferred, the data decrypts.
        let (app, _) = run_capture("mqtt-tls13", only("TRAFFIC_SECRET_0"), false);
        assert!(app.stats.tls.decryption.failures.is_empty(), "{:?}", app.events);
        assert_eq!(app.stats.tls.decryption.plaintext_bytes, full.stats.tls.decryption.plaintext_bytes);
        assert!(app.stats.tls.inferred_handshake_records > 0);
        // Handshake secrets only: decryption stops at the Finished, and says why.
        let (hs, _) = run_capture("mqtt-tls13", only("HANDSHAKE_TRAFFIC_SECRET"), false);
        assert_eq!(hs.stats.tls.decryption.failures.get("missing_secret"), Some(&1));
        assert!(hs.events.iter().any(|e| matches!(e, Event::Malformed { reason, .. } if reason.contains("lacks"))));
        assert_eq!(hs.stats.tls.decryption.plaintext_bytes, 0);
    }

    #[test]
    fn capture_mixing_connections_with_and_without_keys() {
        // Keep the secrets of every other connection only.
        let good = std::fs::read_to_string(capture_path("https-tls13-full.keylog")).unwrap();
        let convs = conversations("https-tls13-full");
        let randoms: Vec<String> =
            convs.iter().map(|c| c.pieces[0].1[11..43].iter().map(|b| format!("{b:02x}")).collect()).collect();
        let keep: String = good
            .lines()
            .filter(|l| randoms.iter().step_by(2).any(|r| l.contains(r.as_str())))
            .map(|l| format!("{l}\n"))
            .collect();
        let cfg = Arc::new(Config { keylog: Some(Arc::new(KeyLog::parse(&keep))) });
        let (_, runs) = run_capture("https-tls13-full", cfg, false);
        let (_, keyless) = run_capture("https-tls13-full", self::cfg(None), false);
        let (_, keyed) = run_capture("https-tls13-full", self::cfg(Some("https-tls13-full.keylog")), false);
        for (i, r) in runs.iter().enumerate() {
            let want = if i % 2 == 0 { &keyed[i] } else { &keyless[i] };
            assert_eq!(r.ledger(), want.ledger(), "connection {i}");
            assert_eq!(r.stats.tls.decryption.connections_with_keys, u64::from(i % 2 == 0), "connection {i}");
        }
    }

    #[test]
    fn a_gap_inside_a_record_loses_only_that_record() {
        let convs = conversations("mqtt-tls12");
        let c = &convs[0];
        let stream = |dir| c.pieces.iter().filter(|(d, _)| *d == dir).flat_map(|(_, b)| b.clone()).collect::<Vec<u8>>();
        let (c2s, s2c) = (stream(Dir::C2S), stream(Dir::S2C));
        // Record starts of the client's stream; the 8th application-data record is hit.
        let mut starts = vec![];
        let mut at = 0;
        while at + 5 <= c2s.len() {
            starts.push((c2s[at], at));
            at += 5 + usize::from(u16::from_be_bytes([c2s[at + 3], c2s[at + 4]]));
        }
        let (_, hit) = starts.iter().filter(|(t, _)| *t == APPLICATION_DATA).nth(7).copied().unwrap();
        let hit_len = 5 + usize::from(u16::from_be_bytes([c2s[hit + 3], c2s[hit + 4]]));
        let run = |gap: bool| {
            let ctx = FlowCtx { l4: L4::Tcp, server_port: 8883, cfg: cfg(Some("mqtt-tls12.keylog")) };
            let seen: Seen = Default::default();
            let mut d = Tls::new(&ctx);
            d.inner = Some(Box::new(Recorder(seen.clone())));
            let mut r = Run::default();
            let mut e = Emit { ts_ns: 0, spans: &mut r.spans, events: &mut r.events, stats: &mut r.stats };
            let (lo, hi) = (hit + 10, hit + 30);
            let mut off = 0;
            for (dir, b) in &c.pieces {
                let (start, end) = (off, off + b.len());
                if *dir == Dir::C2S {
                    off = end;
                }
                if gap && *dir == Dir::C2S && start <= lo && hi <= end {
                    d.data(*dir, &b[..lo - start], &mut e);
                    d.gap(*dir, 20, &mut e);
                    d.data(*dir, &b[hi - start..], &mut e);
                } else {
                    d.data(*dir, b, &mut e);
                }
            }
            d.finish(&mut e);
            let plain: usize = seen.lock().unwrap().iter().filter(|(d, _)| *d == Dir::C2S).map(|(_, b)| b.len()).sum();
            (r, plain)
        };
        let (full, all_plain) = run(false);
        let (lossy, plain) = run(true);
        assert!(lossy.stats.tls.decryption.failures.is_empty(), "{:?}", lossy.events);
        // Exactly that record's plaintext (its length less 5 + 8 + 16) is missing.
        assert_eq!(all_plain - plain, hit_len - 29);
        assert_eq!(full.stats.tls.decryption.records_decrypted, lossy.stats.tls.decryption.records_decrypted + 1);
        let total: u64 = lossy.spans.iter().map(|s| s.len).sum();
        assert_eq!(total, (c2s.len() + s2c.len() - 20) as u64);
    }

    /// Mutated real conversations in random pieces, with and without keys:
    /// never a panic, every byte booked once.
    #[test]
    fn mutated_streams_never_panic_and_conserve() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for (name, keylog) in [
            ("mqtt-tls13", "mqtt-tls13.keylog"),
            ("https-tls12-resumed", "https-tls12-resumed.keylog"),
            ("coap-dtls", "coap-dtls.keylog"),
        ] {
            let convs = conversations(name);
            let c = &convs[0];
            for round in 0..60 {
                let mut pieces: Vec<(Dir, Vec<u8>)> = c.pieces.clone();
                for _ in 0..(1 + round % 5) {
                    let i = (rnd() as usize) % pieces.len();
                    let p = &mut pieces[i].1;
                    if p.is_empty() {
                        continue;
                    }
                    let at = (rnd() as usize) % p.len();
                    match rnd() % 4 {
                        0 => p[at] ^= 1 << (rnd() % 8),
                        1 => p.truncate(at),
                        2 => p.insert(at, rnd() as u8),
                        _ => p[at] = 0xff,
                    }
                }
                let cfg = if round % 2 == 0 { cfg(Some(keylog)) } else { cfg(None) };
                let ctx = FlowCtx { l4: c.l4, server_port: c.server_port, cfg };
                let mut d = Tls::new(&ctx);
                let mut split: Vec<(Dir, &[u8])> = vec![];
                for (dir, b) in &pieces {
                    if c.l4 == L4::Udp {
                        split.push((*dir, b.as_slice()));
                        continue;
                    }
                    let mut rest = b.as_slice();
                    while !rest.is_empty() {
                        let n = 1 + (rnd() as usize) % rest.len().min(700);
                        split.push((*dir, &rest[..n]));
                        rest = &rest[n..];
                    }
                }
                let r = testkit::run(&mut d, &split);
                r.assert_conserved();
            }
        }
    }

    #[test]
    fn print_stats_for_eyeballing() {
        for name in TLS12.iter().chain(TLS13) {
            let (r, _) = run_capture(name, cfg(Some(&format!("{name}.keylog"))), false);
            eprintln!("{name}: {:?}\n{}", r.ledger(), serde_json::to_string(&r.stats.tls).unwrap());
        }
    }

    #[test]
    fn keyless_tls13_has_one_exchange_per_request() {
        for name in ["https-tls13-full", "https-tls13-resumed"] {
            let (_, runs) = run_capture(name, cfg(None), false);
            let mut tickets_as_setup = 0;
            for r in &runs {
                // The close_notify alerts belong to no exchange.
                let opens = r.events.iter().filter(|e| matches!(e, Event::Open { .. })).count();
                assert_eq!(opens, 1, "{name}: {:?}", r.events);
                // NewSessionTickets sent before the request are setup.
                tickets_as_setup +=
                    r.spans.iter().filter(|s| s.msg == MsgRef::Setup && s.class == Class::Payload).count();
            }
            assert!(tickets_as_setup > 0, "{name}");
        }
        let (r, _) = run_capture("mqtt-tls13", cfg(None), false);
        let opens = r.events.iter().filter(|e| matches!(e, Event::Open { .. })).count();
        // CONNECT, 15 PUBLISH and DISCONNECT each start a run of client records.
        assert_eq!(opens, 16, "{:?}", r.events);
    }

    #[test]
    fn probe_recognises_hellos() {
        let convs = conversations("https-tls12-full");
        let ch = &convs[0].pieces[0].1;
        assert_eq!(probe(Dir::C2S, ch), Probe::Yes);
        let sh = &convs[0].pieces[1].1;
        assert_eq!(probe(Dir::S2C, sh), Probe::Yes);
        let dtls = conversations("coap-dtls");
        assert_eq!(probe(Dir::C2S, &dtls[0].pieces[0].1), Probe::Yes);
        assert_eq!(probe(Dir::C2S, b"GET / HTTP/1.1\r\n"), Probe::No);
        assert_eq!(probe(Dir::C2S, &[0x10, 0x16, 0x00, 0x04]), Probe::No);
        assert_eq!(probe(Dir::C2S, &[23, 3, 3, 0, 40]), Probe::Maybe);
        assert_eq!(probe(Dir::C2S, &[]), Probe::No);
    }

    #[test]
    fn garbage_truncation_and_gaps_never_panic_and_conserve() {
        let convs = conversations("https-tls13-full");
        let c = &convs[0];
        let stream: Vec<u8> = c.pieces.iter().filter(|(d, _)| *d == Dir::S2C).flat_map(|(_, b)| b.clone()).collect();
        let ctx = FlowCtx { l4: L4::Tcp, server_port: 443, cfg: cfg(None) };
        for cut in [0, 1, 4, 5, 6, 100, 1000, stream.len() - 1] {
            let mut d = Tls::new(&ctx);
            let r = testkit::run(&mut d, &[(Dir::S2C, &stream[..cut])]);
            r.assert_conserved();
        }
        // Garbage: all payload, reported once per resynchronisation.
        let garbage: Vec<u8> = (0..5000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        let mut d = Tls::new(&ctx);
        let r = testkit::run(&mut d, &[(Dir::C2S, &garbage), (Dir::S2C, &garbage)]);
        r.assert_conserved();
        assert!(r.events.iter().any(|e| matches!(e, Event::Malformed { .. })));
        // A record claiming more than 16 KiB + expansion is malformed.
        let mut d = Tls::new(&ctx);
        let r = testkit::run(&mut d, &[(Dir::C2S, &[23, 3, 3, 0xff, 0xff, 1, 2, 3])]);
        r.assert_conserved();
        assert_eq!(r.class(Class::Payload), 8);
        // A gap in the middle of a record, then the stream goes on.
        let mut d = Tls::new(&ctx);
        let mut r = Run::default();
        let mut e = Emit { ts_ns: 0, spans: &mut r.spans, events: &mut r.events, stats: &mut r.stats };
        d.data(Dir::S2C, &stream[..200], &mut e);
        d.gap(Dir::S2C, 300, &mut e);
        d.data(Dir::S2C, &stream[500..], &mut e);
        d.finish(&mut e);
        r.fed = (stream.len() - 300) as u64;
        r.assert_conserved();
        // DTLS: a datagram cut inside a record.
        let dtls = conversations("coap-dtls");
        let ctx = FlowCtx { l4: L4::Udp, server_port: 5684, cfg: cfg(None) };
        for (dir, dg) in &dtls[0].pieces {
            for cut in [0, 3, 13, 20, dg.len() - 1] {
                let mut d = Tls::new(&ctx);
                let r = testkit::run(&mut d, &[(*dir, &dg[..cut])]);
                r.assert_conserved();
            }
        }
    }
}
