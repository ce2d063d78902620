//! NSS key log files (SSLKEYLOGFILE), as written by curl, browsers, OpenSSL's
//! keylog callback and the `NAME.keylog` files beside the TLS captures.
//!
//! One secret per line: `LABEL <client_random hex> <secret hex>`. Lines that
//! do not parse are counted, never fatal: a truncated or half-garbled key log
//! still decrypts the connections its good lines cover. Secrets never leave
//! this module in printable form (`Debug` shows counts only).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// The TLS random is 32 bytes; the key log indexes secrets by the client's.
pub const RANDOM_LEN: usize = 32;

/// Most connections (client randoms) an input's own Decryption Secrets
/// Blocks may give secrets for: a connection's secrets take about 300
/// bytes, so some 20 MB. Past it the secrets of further connections are
/// dropped and counted (`notes.secrets_dropped`): a capture of 600,000
/// connections' secrets, or a hostile one, would otherwise hold them all.
/// Key logs named with `--keylog` are the user's own and are read whole.
pub const MAX_FOUND_SESSIONS: usize = 65_536;

/// Longest secret accepted: a TLS 1.2 master secret is 48 bytes, TLS 1.3
/// secrets are one hash long (at most SHA-512, 64 bytes).
const MAX_SECRET_LEN: usize = 64;

/// Key material; its bytes are never printed and are wiped when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(zeroize::Zeroizing<Vec<u8>>);

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Secret {
        Secret(zeroize::Zeroizing::new(bytes))
    }
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} bytes, redacted)", self.0.len())
    }
}

/// Every secret the key log holds for one client random.
#[derive(Clone, Default, Debug)]
pub struct SessionSecrets {
    /// TLS 1.2 and DTLS 1.2 (`CLIENT_RANDOM`): the 48-byte master secret.
    pub master_secret: Option<Secret>,
    pub client_early_traffic: Option<Secret>,
    pub client_handshake_traffic: Option<Secret>,
    pub server_handshake_traffic: Option<Secret>,
    /// `CLIENT_TRAFFIC_SECRET_0`
    pub client_traffic_0: Option<Secret>,
    /// `SERVER_TRAFFIC_SECRET_0`
    pub server_traffic_0: Option<Secret>,
}

impl SessionSecrets {
    /// Takes in every secret `other` has; where both have one, `other`'s
    /// (as a later line of one key log replaces an earlier one).
    pub fn merge(&mut self, other: SessionSecrets) {
        let SessionSecrets {
            master_secret,
            client_early_traffic,
            client_handshake_traffic,
            server_handshake_traffic,
            client_traffic_0,
            server_traffic_0,
        } = other;
        for (slot, new) in [
            (&mut self.master_secret, master_secret),
            (&mut self.client_early_traffic, client_early_traffic),
            (&mut self.client_handshake_traffic, client_handshake_traffic),
            (&mut self.server_handshake_traffic, server_handshake_traffic),
            (&mut self.client_traffic_0, client_traffic_0),
            (&mut self.server_traffic_0, server_traffic_0),
        ] {
            if new.is_some() {
                *slot = new;
            }
        }
    }

    /// Has the TLS 1.3 secrets needed to read a connection after its hello.
    pub fn has_tls13(&self) -> bool {
        self.client_handshake_traffic.is_some()
            || self.server_handshake_traffic.is_some()
            || self.client_traffic_0.is_some()
            || self.server_traffic_0.is_some()
    }
}

/// Why a key log could not be read at all (bad lines are not an error).
#[derive(Debug, thiserror::Error)]
pub enum KeyLogError {
    #[error("cannot read key log {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// Secrets from a key log, looked up by client random.
#[derive(Clone, Default)]
pub struct KeyLog {
    sessions: HashMap<[u8; RANDOM_LEN], SessionSecrets>,
    secret_lines: usize,
    bad_lines: usize,
    ignored_lines: usize,
}

impl fmt::Debug for KeyLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyLog")
            .field("sessions", &self.sessions.len())
            .field("secret_lines", &self.secret_lines)
            .field("bad_lines", &self.bad_lines)
            .field("ignored_lines", &self.ignored_lines)
            .finish()
    }
}

impl KeyLog {
    /// Reads and parses a key log file. Only an unreadable file is an error;
    /// see `bad_lines` for lines that were skipped.
    pub fn load(path: impl AsRef<Path>) -> Result<KeyLog, KeyLogError> {
        let path = path.as_ref();
        let bytes = zeroize::Zeroizing::new(
            std::fs::read(path).map_err(|source| KeyLogError::Io { path: path.to_path_buf(), source })?,
        );
        // Not UTF-8 somewhere: the lines that are still parse; the rest count as bad.
        Ok(KeyLog::parse(&String::from_utf8_lossy(&bytes)))
    }

    /// Parses key log text.
    pub fn parse(text: &str) -> KeyLog {
        let mut log = KeyLog::default();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match parse_line(line) {
                Line::Secret { label, client_random, secret } => {
                    let s = log.sessions.entry(client_random).or_default();
                    let slot = match label {
                        Label::ClientRandom => &mut s.master_secret,
                        Label::ClientEarly => &mut s.client_early_traffic,
                        Label::ClientHandshake => &mut s.client_handshake_traffic,
                        Label::ServerHandshake => &mut s.server_handshake_traffic,
                        Label::ClientTraffic0 => &mut s.client_traffic_0,
                        Label::ServerTraffic0 => &mut s.server_traffic_0,
                    };
                    *slot = Some(secret);
                    log.secret_lines += 1;
                }
                Line::Ignored => log.ignored_lines += 1,
                Line::Bad => log.bad_lines += 1,
            }
        }
        log
    }

    /// Takes in every secret of `other` (several `--keylog` files, or the
    /// secrets a capture carries); where both have one, `other`'s, as if its
    /// lines came after this log's. Line counts add up.
    pub fn merge(&mut self, other: KeyLog) {
        for (random, secrets) in other.sessions {
            self.sessions.entry(random).or_default().merge(secrets);
        }
        self.secret_lines += other.secret_lines;
        self.bad_lines += other.bad_lines;
        self.ignored_lines += other.ignored_lines;
    }

    /// As `merge`, but holding secrets for at most `max_sessions`
    /// connections: secrets for a connection already held are taken in,
    /// those of a new one past the cap are dropped (where the cap falls
    /// inside `other`, its smallest client randoms are kept). Returns how many
    /// connections' secrets were dropped.
    pub fn merge_capped(&mut self, other: KeyLog, max_sessions: usize) -> u64 {
        let mut dropped = 0;
        // In order of client random, so which are kept when the cap falls
        // inside `other` is the same on every run (a map's order is not).
        let mut sessions: Vec<_> = other.sessions.into_iter().collect();
        sessions.sort_unstable_by_key(|s| s.0);
        for (random, secrets) in sessions {
            let room = self.sessions.len() < max_sessions;
            match self.sessions.entry(random) {
                std::collections::hash_map::Entry::Occupied(mut held) => held.get_mut().merge(secrets),
                std::collections::hash_map::Entry::Vacant(slot) if room => {
                    slot.insert(secrets);
                }
                std::collections::hash_map::Entry::Vacant(_) => dropped += 1,
            }
        }
        self.secret_lines += other.secret_lines;
        self.bad_lines += other.bad_lines;
        self.ignored_lines += other.ignored_lines;
        dropped
    }

    /// The secrets logged for a connection, by its ClientHello random.
    pub fn lookup(&self, client_random: &[u8]) -> Option<&SessionSecrets> {
        let key: [u8; RANDOM_LEN] = client_random.try_into().ok()?;
        self.sessions.get(&key)
    }

    /// Connections (client randoms) the key log has secrets for.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }
    /// Lines that gave a usable secret.
    pub fn secret_lines(&self) -> usize {
        self.secret_lines
    }
    /// Lines that could not be parsed (truncated, bad hex, wrong lengths).
    pub fn bad_lines(&self) -> usize {
        self.bad_lines
    }
    /// Well-formed lines of kinds wiretax has no use for (`EXPORTER_SECRET`,
    /// `RSA` pre-master secrets, ...).
    pub fn ignored_lines(&self) -> usize {
        self.ignored_lines
    }
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }
}

/// Secrets learnt while an input is read (its pcapng Decryption Secrets
/// Blocks), shared by the reader that adds them and the dissectors that look
/// them up. Looked up once per connection, at its handshake, so a lock is
/// cheap; empty until the input gives secrets. Holds secrets for at most
/// `max_sessions` connections (`MAX_FOUND_SESSIONS` by default).
pub struct KeyStore {
    log: std::sync::RwLock<KeyLog>,
    /// Some secrets were added (read without taking the lock).
    any: std::sync::atomic::AtomicBool,
    max_sessions: usize,
}

impl Default for KeyStore {
    fn default() -> KeyStore {
        KeyStore::with_cap(MAX_FOUND_SESSIONS)
    }
}

impl fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyStore").field("any", &self.has_secrets()).finish()
    }
}

impl KeyStore {
    /// An empty store that holds secrets for at most `max_sessions` connections.
    pub fn with_cap(max_sessions: usize) -> KeyStore {
        KeyStore { log: Default::default(), any: Default::default(), max_sessions }
    }

    /// Most connections it holds secrets for.
    pub fn cap(&self) -> usize {
        self.max_sessions
    }

    /// Adds secrets: connections whose handshake comes after see them.
    /// Returns how many connections' secrets were dropped, past the cap.
    pub fn add(&self, log: KeyLog) -> u64 {
        if log.is_empty() {
            return 0;
        }
        // A poisoned lock means a reader panicked while holding it; the log is still whole.
        let mut held = self.log.write().unwrap_or_else(|e| e.into_inner());
        let dropped = held.merge_capped(log, self.max_sessions);
        if !held.is_empty() {
            self.any.store(true, std::sync::atomic::Ordering::Release);
        }
        dropped
    }

    pub fn has_secrets(&self) -> bool {
        self.any.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The secrets held for a connection (a copy: the lock is not held past the call).
    pub fn lookup(&self, client_random: &[u8]) -> Option<SessionSecrets> {
        if !self.has_secrets() {
            return None;
        }
        let held = self.log.read().unwrap_or_else(|e| e.into_inner());
        held.lookup(client_random).cloned()
    }
}

#[derive(Clone, Copy)]
enum Label {
    ClientRandom,
    ClientEarly,
    ClientHandshake,
    ServerHandshake,
    ClientTraffic0,
    ServerTraffic0,
}

enum Line {
    Secret { label: Label, client_random: [u8; RANDOM_LEN], secret: Secret },
    Ignored,
    Bad,
}

fn parse_line(line: &str) -> Line {
    let mut fields = line.split_ascii_whitespace();
    let (Some(label), Some(random), Some(secret), None) = (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Line::Bad;
    };
    let label = match label {
        "CLIENT_RANDOM" => Label::ClientRandom,
        "CLIENT_EARLY_TRAFFIC_SECRET" => Label::ClientEarly,
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET" => Label::ClientHandshake,
        "SERVER_HANDSHAKE_TRAFFIC_SECRET" => Label::ServerHandshake,
        "CLIENT_TRAFFIC_SECRET_0" => Label::ClientTraffic0,
        "SERVER_TRAFFIC_SECRET_0" => Label::ServerTraffic0,
        "EXPORTER_SECRET" | "EARLY_EXPORTER_SECRET" | "RSA" | "ECH_SECRET" | "ECH_CONFIG" => {
            return if hex_ok(random) && hex_ok(secret) { Line::Ignored } else { Line::Bad };
        }
        _ => return Line::Bad,
    };
    let Some(random) = decode_hex(random) else { return Line::Bad };
    let Ok(client_random) = <[u8; RANDOM_LEN]>::try_from(random.as_slice()) else { return Line::Bad };
    let Some(secret) = decode_hex(secret) else { return Line::Bad };
    let len_ok = match label {
        Label::ClientRandom => secret.len() == 48,
        _ => matches!(secret.len(), 32 | 48 | MAX_SECRET_LEN),
    };
    if !len_ok {
        return Line::Bad;
    }
    Line::Secret { label, client_random, secret: Secret::new(secret) }
}

fn hex_ok(s: &str) -> bool {
    !s.is_empty() && s.len().is_multiple_of(2) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Hex to bytes; `None` on odd length or a non-hex digit.
pub(crate) fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !hex_ok(s) {
        return None;
    }
    let digit = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    s.as_bytes().chunks(2).map(|p| Some(digit(*p.first()?)? << 4 | digit(*p.get(1)?)?)).collect()
}

#[cfg(test)]
mod tests;
