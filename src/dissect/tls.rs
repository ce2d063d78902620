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

use super::tally::{Decimal, Tally};
use super::{Proto, Dir, PerDir, Dissector, Emit, Event, FlowCtx, L4, MsgRef, Probe, Protocol};
use crate::decrypt::{self, DecryptError, Expansion, Opened, RecordKeys, Side, Suite, Tls12Options};
use crate::vocab::Class;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub static PROTOCOL: Protocol =
    Protocol { id: Proto::Tls, l4: &[L4::Tcp, L4::Udp], ports: &[443, 8443, 8883, 5684, 4433], probe, make };

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

fn probe(l4: L4, dir: Dir, first: &[u8]) -> Probe {
    // TLS record: type, 3.x, length. Over TCP any plausible record header
    // starts TLS, in either direction (a capture that starts mid-connection,
    // a server that speaks first); over UDP a TLS-framed hello is sure,
    // other records are a guess for the port to confirm.
    if let [typ, 3, minor, l0, l1, rest @ ..] = first {
        let len = usize::from(*l0) << 8 | usize::from(*l1);
        if *minor > 4 || len > MAX_RECORD {
            return Probe::No;
        }
        if l4 == L4::Tcp {
            return if (CHANGE_CIPHER_SPEC..=APPLICATION_DATA).contains(typ) { Probe::Yes } else { Probe::No };
        }
        if len == 0 {
            return Probe::No;
        }
        return match (*typ, rest) {
            (HANDSHAKE, [CLIENT_HELLO, _, _, _, 3, ..]) => Probe::Yes,
            (HANDSHAKE, [SERVER_HELLO, _, _, _, 3, ..]) if dir == Dir::S2C => Probe::Yes,
            (CHANGE_CIPHER_SPEC..=APPLICATION_DATA, _) => Probe::Maybe,
            _ => Probe::No,
        };
    }
    if l4 == L4::Tcp && dir == Dir::C2S && sslv2_hello_len(first).is_some() {
        return Probe::Yes;
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

/// The length, header included, of the SSLv2-compatible ClientHello `b`
/// starts with (RFC 5246 E.2: a two-byte header with the high bit set,
/// message type 1, a 3.x version, three lengths), if it starts with one.
fn sslv2_hello_len(b: &[u8]) -> Option<usize> {
    match b {
        [h0, h1, CLIENT_HELLO, 3, minor, ..] if h0 & 0x80 != 0 && *minor <= 4 => {
            let len = usize::from(h0 & 0x7f) << 8 | usize::from(*h1);
            (len >= 9).then_some(2 + len)
        }
        _ => None,
    }
}

/// The `tls` section of the report.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
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
    /// SSLv2-compatible ClientHellos (old clients, scanners): `tls_handshake`
    /// bytes, in `client_hellos` too but not in `records`.
    pub sslv2_client_hellos: u64,
    /// Records by outer content type ("22", "23", "20", "21").
    pub records: Tally<Decimal>,
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
    /// Their bytes, headers included.
    pub unknown_expansion_record_bytes: u64,
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
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
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
        self.sslv2_client_hellos += o.sslv2_client_hellos;
        self.records.merge(&o.records);
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
        self.unknown_expansion_record_bytes += o.unknown_expansion_record_bytes;
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
#[derive(Clone, Debug)]
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
#[derive(Clone, Debug)]
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
#[derive(Clone, Default, Debug)]
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
#[derive(Clone, Default)]
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
    /// Boxed: only connections with a key log have them, and inline they
    /// cost every TLS flow 576 bytes.
    keys: Option<Box<RecordKeys>>,
    /// TLS 1.3 application keys, taken up after this side's Finished.
    next_keys: Option<Box<RecordKeys>>,
    /// TLS 1.3: this side's encrypted handshake flight is over.
    handshake_done: bool,
    /// DTLS: next handshake message_seq to parse (retransmissions repeat).
    dtls_next_msg_seq: u32,
    messages: Vec<HsMsg>,
}

/// What is known about the connection from its hellos.
#[derive(Clone, Default)]
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
#[derive(Clone, Default)]
struct Exchanges {
    next: u32,
    open: Option<(u32, bool)>, // (id, the server has answered / started it)
}

impl Exchanges {
    fn record(&mut self, d: Dir, sni: Option<&str>, emit: &mut Emit) -> u32 {
        let client = d == Dir::C2S;
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
        let what = emit.what(|| match (sni, client) {
            (Some(name), true) => format!("TLS application data to {name}"),
            (Some(name), false) => format!("TLS application data from {name} (server first)"),
            (None, true) => "TLS application data".to_string(),
            (None, false) => "TLS application data (server first)".to_string(),
        });
        emit.event(Event::Open { id, kind: Proto::Tls, what });
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
#[derive(Clone)]
pub struct Tls {
    ctx: FlowCtx,
    dtls: bool,
    halves: PerDir<Half>,
    conn: Conn,
    /// The protocol inside, fed with decrypted application data.
    inner: Option<Box<dyn Dissector>>,
    exchanges: Exchanges,
    /// Decryption is not (or no longer) possible on this connection.
    decrypt_off: bool,
    /// The client has sent bytes; of an SSLv2-compatible hello it opened
    /// with, how many are still to come.
    client_started: bool,
    sslv2_left: usize,
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
            decrypt_off: !ctx.cfg.has_secrets(),
            client_started: false,
            sslv2_left: 0,
        }
    }

    /// The client's first bytes: an SSLv2-compatible hello is counted, and
    /// its challenge is the client random (padded with zeros in front).
    fn client_start(&mut self, data: &[u8], emit: &mut Emit) {
        self.client_started = true;
        let Some(total) = sslv2_hello_len(data) else { return };
        self.sslv2_left = total;
        let st = &mut emit.stats.tls;
        st.sslv2_client_hellos += 1;
        st.client_hellos += 1;
        if !self.conn.counted {
            self.conn.counted = true;
            st.connections += 1;
        }
        // Type, version, cipher-spec, session-id and challenge lengths.
        let len = |at: usize| data.get(at..at + 2).and_then(|b| b.first_chunk::<2>()).map(|&[hi, lo]| usize::from(hi) << 8 | usize::from(lo));
        if let (Some(specs), Some(session), Some(challenge)) = (len(5), len(7), len(9))
            && (16..=32).contains(&challenge)
            && let Some(c) = data.get(11 + specs + session..11 + specs + session + challenge)
        {
            let mut random = [0u8; 32];
            if let Some(dst) = random.get_mut(32 - challenge..) {
                dst.copy_from_slice(c);
            }
            self.conn.client_random = Some(random);
        }
    }

    /// The bytes of an SSLv2-compatible hello at the start of `data`:
    /// handshake, connection setup. Returns the rest.
    fn sslv2_hello<'d>(&mut self, data: &'d [u8], emit: &mut Emit) -> &'d [u8] {
        let n = self.sslv2_left.min(data.len());
        self.sslv2_left -= n;
        emit.span(Class::TlsHandshake, n as u64, MsgRef::Setup);
        data.get(n..).unwrap_or_default()
    }

    // ---- framing -------------------------------------------------------

    fn data_tcp(&mut self, d: Dir, data: &[u8], emit: &mut Emit) {
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

    fn end_hunt(&mut self, d: Dir, emit: &mut Emit) {
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

    fn data_udp(&mut self, d: Dir, data: &[u8], emit: &mut Emit) {
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
        d: Dir,
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
        st.records.add(usize::from(typ), 1);
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

    fn has_keys(&self, d: Dir) -> bool {
        let h = &self.halves[d];
        h.keys.is_some() || h.next_keys.is_some()
    }

    /// Does this record carry protected content?
    fn is_protected(&self, d: Dir, typ: u8, header: &[u8; DTLS_HEADER]) -> bool {
        match typ {
            APPLICATION_DATA => true,
            ALERT | HANDSHAKE if self.dtls => header.get(3..5).is_some_and(|e| e != [0, 0]),
            ALERT | HANDSHAKE => !self.conn.tls13() && self.halves[d].protected,
            _ => false,
        }
    }

    /// How a record is booked when it is not decrypted.
    fn keyless_plan(&mut self, d: Dir, typ: u8, protected: bool, total: u64, emit: &mut Emit) -> Plan {
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
                    emit.stats.tls.unknown_expansion_record_bytes += total;
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
                } else if self.conn.tls13() && d == Dir::S2C && !self.conn.client_sent_data {
                    // Server records after the handshake and before the
                    // first request: NewSessionTickets.
                    MsgRef::Setup
                } else {
                    if d == Dir::C2S {
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
    fn infer_tls13_handshake(&mut self, d: Dir) -> bool {
        if self.dtls || !self.conn.tls13() || self.halves[d].handshake_done {
            return false;
        }
        if d == Dir::C2S {
            self.halves[Dir::C2S].handshake_done = true;
            self.halves[Dir::S2C].handshake_done = true;
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
    fn complete_record(&mut self, d: Dir, rec: Rec, body: &[u8], emit: &mut Emit) {
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

    fn change_cipher_spec(&mut self, d: Dir, emit: &mut Emit) {
        if d == Dir::S2C && self.conn.resumption_pending {
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

    fn gap_tcp(&mut self, d: Dir, len: u64, emit: &mut Emit) {
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
    fn make_lossy(&mut self, d: Dir, emit: &mut Emit) {
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
                inner.gap(d, plain as u64, emit);
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

    fn finish_half(&mut self, d: Dir, emit: &mut Emit) {
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

    fn cleartext_handshake(&mut self, d: Dir, body: &[u8], emit: &mut Emit) {
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
    fn dtls_fragments(&mut self, d: Dir, mut body: &[u8], out: &mut Vec<HsMsg>) {
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

    fn handshake_message(&mut self, d: Dir, m: &HsMsg, sealed: bool, emit: &mut Emit) {
        let server = d == Dir::S2C;
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
                8883 => Some(Proto::Mqtt),
                5684 => Some(Proto::Coap),
                _ => None,
            };
            if let Some(proto) = by_port {
                self.conn.app_announced = true;
                emit.event(Event::App { proto });
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
            emit.event(Event::App { proto: p.id });
        }
        self.conn.alpn = Some(alpn);
    }

    // ---- decryption ------------------------------------------------------

    /// After the ServerHello: find the connection's secrets and derive keys.
    fn setup_keys(&mut self, emit: &mut Emit) {
        if self.decrypt_off {
            return;
        }
        let (Some(cr), Some(suite_id), Some(version)) = (self.conn.client_random, self.conn.suite, self.conn.version)
        else {
            return;
        };
        let Some(secrets) = self.ctx.cfg.secrets(&cr) else {
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
                let c = &mut self.halves[Dir::C2S];
                c.keys = ck.map(Box::new);
                c.next_keys = cn.map(Box::new);
                let s = &mut self.halves[Dir::S2C];
                s.keys = sk.map(Box::new);
                s.next_keys = sn.map(Box::new);
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
        for h in &mut self.halves.0 {
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

    fn open(&mut self, d: Dir, header: &[u8], body: &[u8]) -> Result<Opened, DecryptError> {
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
        d: Dir,
        rec: &Rec,
        header: &[u8],
        body: &[u8],
        emit: &mut Emit,
    ) -> Result<(), DecryptError> {
        let opened = self.open(d, header, body)?;
        let total = rec.total() as u64;
        let st = &mut emit.stats.tls.decryption;
        st.records_decrypted += 1;
        bump(&mut st.inner_content_types, itoa::Buffer::new().format(opened.content_type));
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
                    let dir = d;
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
                .filter(|p| p.id != PROTOCOL.id);
            match proto {
                Some(p) => {
                    emit.event(Event::App { proto: p.id });
                    (p.make)(ctx)
                }
                None => Box::new(super::unknown::Unknown),
            }
        })
    }
}

impl Dissector for Tls {
    fn data(&mut self, dir: Dir, mut data: &[u8], emit: &mut Emit) {
        if self.dtls {
            self.data_udp(dir, data, emit);
            return;
        }
        if dir == Dir::C2S {
            if !self.client_started {
                self.client_start(data, emit);
            }
            if self.sslv2_left > 0 {
                data = self.sslv2_hello(data, emit);
            }
        }
        self.data_tcp(dir, data, emit);
    }

    fn gap(&mut self, dir: Dir, mut len: u64, emit: &mut Emit) {
        if dir == Dir::C2S {
            self.client_started = true;
            // Lost bytes of an SSLv2 hello: the flow stage books them.
            let lost = (self.sslv2_left as u64).min(len);
            self.sslv2_left -= lost as usize;
            len -= lost;
        }
        if !self.dtls && len > 0 {
            self.gap_tcp(dir, len, emit);
        }
    }

    fn finish(&mut self, emit: &mut Emit) {
        for d in [Dir::C2S, Dir::S2C] {
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
    // Named once per description, not once per alert (a stream of tiny
    // alerts is cheap to send).
    static NAMES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let name = match body {
        [_level, desc] => NAMES
            .get_or_init(|| (0..=u8::MAX).map(|d| snake_case(&tls_parser::TlsAlertDescription(d).to_string())).collect())
            .get(usize::from(*desc))
            .map_or("malformed", String::as_str),
        _ => "malformed",
    };
    bump(&mut emit.stats.tls.alerts, name);
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
mod tests;
