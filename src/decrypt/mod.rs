//! TLS/DTLS record decryption from a key log.
//!
//! What is ours: the cipher-suite geometry (how many bytes a protected record
//! adds around its plaintext), the key schedules (TLS 1.2 PRF key block,
//! TLS 1.3 HKDF-Expand-Label traffic keys and KeyUpdate), nonces, additional
//! data and the TLS padding/MAC checks. The primitives are RustCrypto's.
//!
//! Supported: TLS 1.2 / DTLS 1.2 with AES-GCM, AES-CCM(-8), ChaCha20-Poly1305
//! and AES-CBC with HMAC-SHA1/256/384 (MAC-then-encrypt and encrypt-then-MAC);
//! TLS 1.3 with AES-GCM, ChaCha20-Poly1305, AES-CCM(-8). Key material never
//! appears in any output: errors say what failed, never with which key.

use aes_gcm::aead::{self, AeadInOut};
use aes_gcm::{Aes128Gcm, Aes256Gcm};
use ccm::Ccm;
use ccm::consts::{U8, U12, U16};
use chacha20poly1305::ChaCha20Poly1305;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Sha256, Sha384};
use tls_parser::{TlsCipherEnc, TlsCipherEncMode, TlsCipherMac, TlsCipherSuite};

use crate::keylog::Secret;

type Aes128Ccm = Ccm<aes::Aes128, U16, U12>;
type Aes256Ccm = Ccm<aes::Aes256, U16, U12>;
type Aes128Ccm8 = Ccm<aes::Aes128, U8, U12>;
type Aes256Ccm8 = Ccm<aes::Aes256, U8, U12>;

/// Largest TLS plaintext fragment (RFC 8446 5.1, RFC 5246 6.2.1).
pub const MAX_PLAINTEXT: usize = 1 << 14;
/// Largest protected record body a peer may send (TLS 1.2 allows 2048 bytes
/// of expansion; TLS 1.3 only 256).
pub const MAX_CIPHERTEXT: usize = MAX_PLAINTEXT + 2048;

/// Why a record (or a connection) could not be decrypted. No variant carries
/// key material.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecryptError {
    #[error("cipher suite {0:#06x} is not supported for decryption")]
    UnsupportedSuite(u16),
    #[error("protocol version {0:#06x} is not supported for decryption")]
    UnsupportedVersion(u16),
    #[error("key log secret has the wrong length for the cipher suite")]
    BadSecret,
    #[error("record authentication failed (wrong key, or a record was lost)")]
    Authentication,
    #[error("record is too short or too long for its cipher")]
    BadLength,
    #[error("record padding is invalid")]
    BadPadding,
    #[error("TLS 1.3 record has no inner content type")]
    NoContentType,
    #[error("the key log lacks a traffic secret this connection needs")]
    MissingSecret,
}

impl DecryptError {
    /// A short stable name, for statistics keys.
    pub fn kind(&self) -> &'static str {
        match self {
            DecryptError::UnsupportedSuite(_) => "unsupported_cipher_suite",
            DecryptError::UnsupportedVersion(_) => "unsupported_version",
            DecryptError::BadSecret => "bad_secret",
            DecryptError::Authentication => "authentication_failed",
            DecryptError::BadLength => "bad_record_length",
            DecryptError::BadPadding => "bad_padding",
            DecryptError::NoContentType => "no_inner_content_type",
            DecryptError::MissingSecret => "missing_secret",
        }
    }
}

/// Hash of a suite's PRF / HKDF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashAlg {
    Sha256,
    Sha384,
}

impl HashAlg {
    /// Output length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
        }
    }
}

/// Record MAC of a CBC suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MacAlg {
    Sha1,
    Sha256,
    Sha384,
}

impl MacAlg {
    fn len(self) -> usize {
        match self {
            MacAlg::Sha1 => 20,
            MacAlg::Sha256 => 32,
            MacAlg::Sha384 => 48,
        }
    }
}

/// An AEAD of the suites wiretax decrypts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AeadAlg {
    Aes128Gcm,
    Aes256Gcm,
    ChaCha20Poly1305,
    Aes128Ccm,
    Aes256Ccm,
    Aes128Ccm8,
    Aes256Ccm8,
}

impl AeadAlg {
    fn key_len(self) -> usize {
        match self {
            AeadAlg::Aes128Gcm | AeadAlg::Aes128Ccm | AeadAlg::Aes128Ccm8 => 16,
            _ => 32,
        }
    }
    fn tag_len(self) -> usize {
        match self {
            AeadAlg::Aes128Ccm8 | AeadAlg::Aes256Ccm8 => 8,
            _ => 16,
        }
    }
    /// TLS 1.2 explicit per-record nonce (RFC 5288, 6655); ChaCha20 (RFC 7905) has none.
    fn explicit_nonce_len(self) -> usize {
        match self {
            AeadAlg::ChaCha20Poly1305 => 0,
            _ => 8,
        }
    }
    /// TLS 1.2 implicit nonce part from the key block.
    fn fixed_iv_len_tls12(self) -> usize {
        match self {
            AeadAlg::ChaCha20Poly1305 => 12,
            _ => 4,
        }
    }
}

/// How a suite protects records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protection {
    Aead(AeadAlg),
    /// AES-CBC with an HMAC; `key_len` 16 or 32.
    Cbc {
        key_len: usize,
        mac: MacAlg,
    },
}

/// A cipher suite wiretax can decrypt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Suite {
    pub id: u16,
    pub tls13: bool,
    pub hash: HashAlg,
    pub protection: Protection,
}

impl Suite {
    /// The suite with this IANA id, when wiretax can decrypt it.
    pub fn from_id(id: u16) -> Option<Suite> {
        let tls13 = |aead, hash| Some(Suite { id, tls13: true, hash, protection: Protection::Aead(aead) });
        match id {
            0x1301 => return tls13(AeadAlg::Aes128Gcm, HashAlg::Sha256),
            0x1302 => return tls13(AeadAlg::Aes256Gcm, HashAlg::Sha384),
            0x1303 => return tls13(AeadAlg::ChaCha20Poly1305, HashAlg::Sha256),
            0x1304 => return tls13(AeadAlg::Aes128Ccm, HashAlg::Sha256),
            0x1305 => return tls13(AeadAlg::Aes128Ccm8, HashAlg::Sha256),
            _ => {}
        }
        let cs = TlsCipherSuite::from_id(id)?;
        // The PRF hash of a TLS 1.2 suite is SHA-384 exactly when its name says so.
        let hash = if cs.name.ends_with("SHA384") { HashAlg::Sha384 } else { HashAlg::Sha256 };
        let aes256 = cs.enc_size == 256;
        let protection = match (cs.enc, cs.enc_mode) {
            (TlsCipherEnc::Aes, TlsCipherEncMode::Gcm) => {
                Protection::Aead(if aes256 { AeadAlg::Aes256Gcm } else { AeadAlg::Aes128Gcm })
            }
            (TlsCipherEnc::Aes, TlsCipherEncMode::Ccm) => Protection::Aead(match (aes256, cs.name.ends_with("_8")) {
                (false, false) => AeadAlg::Aes128Ccm,
                (true, false) => AeadAlg::Aes256Ccm,
                (false, true) => AeadAlg::Aes128Ccm8,
                (true, true) => AeadAlg::Aes256Ccm8,
            }),
            (TlsCipherEnc::Chacha20_Poly1305, _) => Protection::Aead(AeadAlg::ChaCha20Poly1305),
            (TlsCipherEnc::Aes, TlsCipherEncMode::Cbc) => {
                let mac = match cs.mac {
                    TlsCipherMac::HmacSha1 => MacAlg::Sha1,
                    TlsCipherMac::HmacSha256 => MacAlg::Sha256,
                    TlsCipherMac::HmacSha384 => MacAlg::Sha384,
                    _ => return None,
                };
                Protection::Cbc { key_len: if aes256 { 32 } else { 16 }, mac }
            }
            _ => return None,
        };
        Some(Suite { id, tls13: false, hash, protection })
    }
}

/// Bytes a protected record adds around its plaintext, as far as can be
/// told without keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expansion {
    /// Before the plaintext (explicit nonce or CBC IV), after the record header.
    pub pre: usize,
    /// After it (tag or MAC, CBC padding, TLS 1.3 inner content type).
    pub post: usize,
    /// False when part of the expansion is unknowable without keys (CBC
    /// padding beyond its length byte, TLS 1.3 padding) or the suite is
    /// unknown: `pre`/`post` are then a lower bound.
    pub exact: bool,
}

impl Expansion {
    pub const UNKNOWN: Expansion = Expansion { pre: 0, post: 0, exact: false };
}

/// Expansion of an application-data record of `suite_id` at `version`
/// (the negotiated one: 0x0304 for TLS 1.3, 0xfefd for DTLS 1.2).
pub fn expansion(suite_id: u16, version: u16) -> Expansion {
    let tls13 = version == 0x0304;
    if tls13 {
        let tag = match suite_id {
            0x1305 => 8,
            0x1301..=0x1304 => 16,
            _ => return Expansion { pre: 0, post: 17, exact: false },
        };
        // Inner content type byte + tag; zero padding is invisible.
        return Expansion { pre: 0, post: 1 + tag, exact: true };
    }
    let Some(cs) = TlsCipherSuite::from_id(suite_id) else { return Expansion::UNKNOWN };
    let explicit_iv = version != 0x0301 && version != 0x0300; // TLS 1.1+ / DTLS
    match (cs.enc, cs.enc_mode) {
        (_, TlsCipherEncMode::Gcm) => Expansion { pre: 8, post: 16, exact: true },
        (_, TlsCipherEncMode::Ccm) => {
            Expansion { pre: 8, post: if cs.name.ends_with("_8") { 8 } else { 16 }, exact: true }
        }
        (TlsCipherEnc::Chacha20_Poly1305, _) => Expansion { pre: 0, post: 16, exact: true },
        (TlsCipherEnc::Null, _) | (TlsCipherEnc::Rc4, _) => Expansion { pre: 0, post: cs.mac_length(), exact: true },
        (_, TlsCipherEncMode::Cbc) => {
            let block = cs.enc_block_size();
            // MAC + at least the padding-length byte; how much padding
            // precedes it is encrypted.
            Expansion { pre: if explicit_iv { block } else { 0 }, post: cs.mac_length() + 1, exact: false }
        }
        _ => Expansion::UNKNOWN,
    }
}

/// TLS 1.2 PRF (RFC 5246 section 5): P_hash(secret, label + seed).
pub fn prf_tls12(hash: HashAlg, secret: &[u8], label: &[u8], seed: &[u8], out: &mut [u8]) {
    match hash {
        HashAlg::Sha256 => p_hash::<Hmac<Sha256>>(secret, label, seed, out),
        HashAlg::Sha384 => p_hash::<Hmac<Sha384>>(secret, label, seed, out),
    }
}

fn p_hash<M: Mac + KeyInit + Clone>(secret: &[u8], label: &[u8], seed: &[u8], out: &mut [u8]) {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail.
    let Ok(keyed) = <M as KeyInit>::new_from_slice(secret) else { return };
    // A(1) = HMAC(secret, label + seed)
    let mut a = {
        let mut m = keyed.clone();
        m.update(label);
        m.update(seed);
        m.finalize().into_bytes()
    };
    let mut filled = 0;
    while filled < out.len() {
        let mut m = keyed.clone();
        m.update(&a);
        m.update(label);
        m.update(seed);
        let block = m.finalize().into_bytes();
        let n = block.len().min(out.len() - filled);
        if let (Some(dst), Some(src)) = (out.get_mut(filled..filled + n), block.get(..n)) {
            dst.copy_from_slice(src);
        }
        filled += n;
        let mut m = keyed.clone();
        m.update(&a);
        a = m.finalize().into_bytes();
    }
}

/// HKDF-Expand-Label (RFC 8446 section 7.1).
pub fn hkdf_expand_label(
    hash: HashAlg,
    secret: &[u8],
    label: &[u8],
    context: &[u8],
    out: &mut [u8],
) -> Result<(), DecryptError> {
    let full_label_len = 6 + label.len();
    if full_label_len > 255 || context.len() > 255 || out.len() > u16::MAX as usize {
        return Err(DecryptError::BadSecret);
    }
    let mut info = Vec::with_capacity(4 + full_label_len + context.len());
    info.extend_from_slice(&(out.len() as u16).to_be_bytes());
    info.push(full_label_len as u8);
    info.extend_from_slice(b"tls13 ");
    info.extend_from_slice(label);
    info.push(context.len() as u8);
    info.extend_from_slice(context);
    let r = match hash {
        HashAlg::Sha256 => {
            hkdf::Hkdf::<Sha256>::from_prk(secret).map_err(|_| ()).and_then(|h| h.expand(&info, out).map_err(|_| ()))
        }
        HashAlg::Sha384 => {
            hkdf::Hkdf::<Sha384>::from_prk(secret).map_err(|_| ()).and_then(|h| h.expand(&info, out).map_err(|_| ()))
        }
    };
    r.map_err(|_| DecryptError::BadSecret)
}

#[derive(Clone)]
enum Cipher {
    Aes128Gcm(Box<Aes128Gcm>),
    Aes256Gcm(Box<Aes256Gcm>),
    ChaCha(Box<ChaCha20Poly1305>),
    Aes128Ccm(Box<Aes128Ccm>),
    Aes256Ccm(Box<Aes256Ccm>),
    Aes128Ccm8(Box<Aes128Ccm8>),
    Aes256Ccm8(Box<Aes256Ccm8>),
    Cbc { key: Secret, mac: MacAlg, mac_key: Secret },
}

impl Cipher {
    fn aead(alg: AeadAlg, key: &[u8]) -> Result<Cipher, DecryptError> {
        fn mk<A: KeyInit>(key: &[u8]) -> Result<Box<A>, DecryptError> {
            A::new_from_slice(key).map(Box::new).map_err(|_| DecryptError::BadSecret)
        }
        Ok(match alg {
            AeadAlg::Aes128Gcm => Cipher::Aes128Gcm(mk(key)?),
            AeadAlg::Aes256Gcm => Cipher::Aes256Gcm(mk(key)?),
            AeadAlg::ChaCha20Poly1305 => Cipher::ChaCha(mk(key)?),
            AeadAlg::Aes128Ccm => Cipher::Aes128Ccm(mk(key)?),
            AeadAlg::Aes256Ccm => Cipher::Aes256Ccm(mk(key)?),
            AeadAlg::Aes128Ccm8 => Cipher::Aes128Ccm8(mk(key)?),
            AeadAlg::Aes256Ccm8 => Cipher::Aes256Ccm8(mk(key)?),
        })
    }

    /// Decrypts `buf` (ciphertext followed by the tag) in place.
    fn open(&self, nonce: &[u8], aad: &[u8], buf: &mut Vec<u8>) -> Result<(), DecryptError> {
        fn go<A: AeadInOut>(a: &A, nonce: &[u8], aad: &[u8], buf: &mut Vec<u8>) -> Result<(), DecryptError> {
            let nonce = aead::Nonce::<A>::try_from(nonce).map_err(|_| DecryptError::BadLength)?;
            a.decrypt_in_place(&nonce, aad, buf).map_err(|_| DecryptError::Authentication)
        }
        match self {
            Cipher::Aes128Gcm(a) => go(a.as_ref(), nonce, aad, buf),
            Cipher::Aes256Gcm(a) => go(a.as_ref(), nonce, aad, buf),
            Cipher::ChaCha(a) => go(a.as_ref(), nonce, aad, buf),
            Cipher::Aes128Ccm(a) => go(a.as_ref(), nonce, aad, buf),
            Cipher::Aes256Ccm(a) => go(a.as_ref(), nonce, aad, buf),
            Cipher::Aes128Ccm8(a) => go(a.as_ref(), nonce, aad, buf),
            Cipher::Aes256Ccm8(a) => go(a.as_ref(), nonce, aad, buf),
            Cipher::Cbc { .. } => Err(DecryptError::BadLength),
        }
    }
}

/// A decrypted record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opened {
    /// The real content type (TLS 1.3: the inner one).
    pub content_type: u8,
    pub plaintext: Vec<u8>,
    /// Bytes of the record body before the plaintext (explicit nonce, IV);
    /// everything after it is `body_len - pre - plaintext.len()`.
    pub pre: usize,
}

/// Which side's keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Client,
    Server,
}

/// One direction's read state: keys, IV and record sequence number.
#[derive(Clone)]
pub struct RecordKeys {
    suite: Suite,
    cipher: Cipher,
    /// AEAD implicit IV (TLS 1.2: 4 or 12 bytes; TLS 1.3: 12).
    iv: Vec<u8>,
    /// Next TLS record sequence number (DTLS takes it from the header).
    seq: u64,
    dtls: bool,
    encrypt_then_mac: bool,
    /// TLS 1.3 traffic secret, kept for KeyUpdate.
    secret: Option<Secret>,
}

impl std::fmt::Debug for RecordKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordKeys")
            .field("suite", &format_args!("{:#06x}", self.suite.id))
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

/// TLS 1.2 / DTLS 1.2 options that change the record layout.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tls12Options {
    pub dtls: bool,
    /// RFC 7366 encrypt_then_mac was negotiated (CBC suites only).
    pub encrypt_then_mac: bool,
}

impl RecordKeys {
    /// TLS 1.2 / DTLS 1.2 keys of `side` from the master secret
    /// (`CLIENT_RANDOM` line) and both hello randoms.
    pub fn tls12(
        suite: Suite,
        master_secret: &[u8],
        client_random: &[u8],
        server_random: &[u8],
        side: Side,
        opts: Tls12Options,
    ) -> Result<RecordKeys, DecryptError> {
        if suite.tls13 {
            return Err(DecryptError::UnsupportedSuite(suite.id));
        }
        if master_secret.len() != 48 {
            return Err(DecryptError::BadSecret);
        }
        let (mac_len, key_len, iv_len) = match suite.protection {
            Protection::Aead(a) => (0, a.key_len(), a.fixed_iv_len_tls12()),
            Protection::Cbc { key_len, mac } => (mac.len(), key_len, 0),
        };
        let mut seed = Vec::with_capacity(64);
        seed.extend_from_slice(server_random);
        seed.extend_from_slice(client_random);
        let total = 2 * (mac_len + key_len + iv_len);
        let mut block = vec![0u8; total];
        prf_tls12(suite.hash, master_secret, b"key expansion", &seed, &mut block);
        let block = Secret::new(block);
        let b = block.bytes();
        let pick = |off: usize, len: usize| b.get(off..off + len).map(<[u8]>::to_vec).ok_or(DecryptError::BadSecret);
        let s = if side == Side::Client { 0 } else { 1 };
        let mac_key = pick(s * mac_len, mac_len)?;
        let key = pick(2 * mac_len + s * key_len, key_len)?;
        let iv = pick(2 * mac_len + 2 * key_len + s * iv_len, iv_len)?;
        let cipher = match suite.protection {
            Protection::Aead(a) => Cipher::aead(a, &key)?,
            Protection::Cbc { mac, .. } => Cipher::Cbc { key: Secret::new(key), mac, mac_key: Secret::new(mac_key) },
        };
        Ok(RecordKeys {
            suite,
            cipher,
            iv,
            seq: 0,
            dtls: opts.dtls,
            encrypt_then_mac: opts.encrypt_then_mac,
            secret: None,
        })
    }

    /// TLS 1.3 keys from a traffic secret (`*_HANDSHAKE_TRAFFIC_SECRET`,
    /// `*_TRAFFIC_SECRET_0`).
    pub fn tls13(suite: Suite, traffic_secret: &Secret) -> Result<RecordKeys, DecryptError> {
        let Protection::Aead(alg) = suite.protection else { return Err(DecryptError::UnsupportedSuite(suite.id)) };
        if !suite.tls13 {
            return Err(DecryptError::UnsupportedSuite(suite.id));
        }
        if traffic_secret.len() != suite.hash.output_len() {
            return Err(DecryptError::BadSecret);
        }
        let mut key = vec![0u8; alg.key_len()];
        hkdf_expand_label(suite.hash, traffic_secret.bytes(), b"key", b"", &mut key)?;
        let key = Secret::new(key);
        let mut iv = vec![0u8; 12];
        hkdf_expand_label(suite.hash, traffic_secret.bytes(), b"iv", b"", &mut iv)?;
        let cipher = Cipher::aead(alg, key.bytes())?;
        Ok(RecordKeys {
            suite,
            cipher,
            iv,
            seq: 0,
            dtls: false,
            encrypt_then_mac: false,
            secret: Some(traffic_secret.clone()),
        })
    }

    /// TLS 1.3 KeyUpdate: the next traffic secret and keys (RFC 8446 7.2).
    pub fn key_update(&mut self) -> Result<(), DecryptError> {
        let Some(secret) = &self.secret else { return Err(DecryptError::UnsupportedVersion(0x0303)) };
        let mut next = vec![0u8; self.suite.hash.output_len()];
        hkdf_expand_label(self.suite.hash, secret.bytes(), b"traffic upd", b"", &mut next)?;
        *self = RecordKeys::tls13(self.suite, &Secret::new(next))?;
        Ok(())
    }

    /// A record of this direction was lost: its sequence number is spent.
    pub fn skip_record(&mut self) {
        self.seq = self.seq.wrapping_add(1);
    }

    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// Decrypts one record. `header` is the record header as on the wire
    /// (5 bytes; DTLS 13), `body` the record's fragment. The sequence
    /// number advances only when the record authenticates.
    pub fn open(&mut self, header: &[u8], body: &[u8]) -> Result<Opened, DecryptError> {
        let seq = if self.dtls {
            // epoch (2) + sequence number (6), exactly as on the wire.
            let b = header.get(3..11).ok_or(DecryptError::BadLength)?;
            u64::from_be_bytes(b.try_into().map_err(|_| DecryptError::BadLength)?)
        } else {
            self.seq
        };
        let outer_type = *header.first().ok_or(DecryptError::BadLength)?;
        let version = header.get(1..3).ok_or(DecryptError::BadLength)?;
        let opened = if self.suite.tls13 {
            self.open_tls13(header, body, seq)?
        } else {
            match self.suite.protection {
                Protection::Aead(alg) => self.open_tls12_aead(alg, outer_type, version, body, seq)?,
                Protection::Cbc { .. } => self.open_tls12_cbc(outer_type, version, body, seq)?,
            }
        };
        self.seq = seq.wrapping_add(1);
        Ok(opened)
    }

    fn nonce_xor_seq(&self, seq: u64) -> Vec<u8> {
        let mut nonce = self.iv.clone();
        let n = nonce.len();
        for (i, b) in seq.to_be_bytes().iter().enumerate() {
            if let Some(x) = nonce.get_mut(n.saturating_sub(8) + i) {
                *x ^= b;
            }
        }
        nonce
    }

    fn open_tls13(&self, header: &[u8], body: &[u8], seq: u64) -> Result<Opened, DecryptError> {
        let nonce = self.nonce_xor_seq(seq);
        let mut buf = body.to_vec();
        self.cipher.open(&nonce, header, &mut buf)?;
        // TLSInnerPlaintext: content, content type, zero padding.
        let Some(type_at) = buf.iter().rposition(|&b| b != 0) else { return Err(DecryptError::NoContentType) };
        let content_type = buf.get(type_at).copied().ok_or(DecryptError::NoContentType)?;
        buf.truncate(type_at);
        Ok(Opened { content_type, plaintext: buf, pre: 0 })
    }

    fn open_tls12_aead(
        &self,
        alg: AeadAlg,
        outer_type: u8,
        version: &[u8],
        body: &[u8],
        seq: u64,
    ) -> Result<Opened, DecryptError> {
        let explicit = alg.explicit_nonce_len();
        let tag = alg.tag_len();
        let plain_len = body.len().checked_sub(explicit + tag).ok_or(DecryptError::BadLength)?;
        let nonce = if explicit == 0 {
            self.nonce_xor_seq(seq)
        } else {
            let mut n = self.iv.clone();
            n.extend_from_slice(body.get(..explicit).ok_or(DecryptError::BadLength)?);
            n
        };
        let aad = additional_data(seq, outer_type, version, plain_len);
        let mut buf = body.get(explicit..).ok_or(DecryptError::BadLength)?.to_vec();
        self.cipher.open(&nonce, &aad, &mut buf)?;
        Ok(Opened { content_type: outer_type, plaintext: buf, pre: explicit })
    }

    fn open_tls12_cbc(&self, outer_type: u8, version: &[u8], body: &[u8], seq: u64) -> Result<Opened, DecryptError> {
        let Cipher::Cbc { key, mac, mac_key } = &self.cipher else { return Err(DecryptError::BadLength) };
        const BLOCK: usize = 16;
        let mac_len = mac.len();
        let iv = body.get(..BLOCK).ok_or(DecryptError::BadLength)?;
        let (ciphertext, wire_mac) = if self.encrypt_then_mac {
            let end = body.len().checked_sub(mac_len).ok_or(DecryptError::BadLength)?;
            if end < BLOCK {
                return Err(DecryptError::BadLength);
            }
            let ct = body.get(BLOCK..end).ok_or(DecryptError::BadLength)?;
            let wire_mac = body.get(end..).ok_or(DecryptError::BadLength)?;
            // RFC 7366: the MAC covers IV and ciphertext.
            let aad = additional_data(seq, outer_type, version, end);
            let iv_and_ct = body.get(..end).ok_or(DecryptError::BadLength)?;
            if !verify_mac(*mac, mac_key.bytes(), &aad, iv_and_ct, wire_mac) {
                return Err(DecryptError::Authentication);
            }
            (ct, Some(()))
        } else {
            (body.get(BLOCK..).ok_or(DecryptError::BadLength)?, None)
        };
        if ciphertext.is_empty() || ciphertext.len() % BLOCK != 0 {
            return Err(DecryptError::BadLength);
        }
        let mut buf = ciphertext.to_vec();
        cbc_decrypt(key.bytes(), iv, &mut buf)?;
        // Padding: `pad` bytes of value `pad`, then the length byte itself.
        let pad = usize::from(*buf.last().ok_or(DecryptError::BadLength)?);
        let unpadded = buf.len().checked_sub(pad + 1).ok_or(DecryptError::BadPadding)?;
        if buf.get(unpadded..).is_none_or(|p| p.iter().any(|&b| usize::from(b) != pad)) {
            return Err(DecryptError::BadPadding);
        }
        if wire_mac.is_some() {
            buf.truncate(unpadded);
            return Ok(Opened { content_type: outer_type, plaintext: buf, pre: BLOCK });
        }
        let plain_len = unpadded.checked_sub(mac_len).ok_or(DecryptError::BadLength)?;
        let (plain, record_mac) = buf.get(..unpadded).ok_or(DecryptError::BadLength)?.split_at(plain_len);
        let aad = additional_data(seq, outer_type, version, plain_len);
        if !verify_mac(*mac, mac_key.bytes(), &aad, plain, record_mac) {
            return Err(DecryptError::Authentication);
        }
        buf.truncate(plain_len);
        Ok(Opened { content_type: outer_type, plaintext: buf, pre: BLOCK })
    }
}

/// TLS 1.2 MAC / AEAD additional data: seq_num, type, version, length.
fn additional_data(seq: u64, content_type: u8, version: &[u8], len: usize) -> Vec<u8> {
    let mut aad = Vec::with_capacity(13);
    aad.extend_from_slice(&seq.to_be_bytes());
    aad.push(content_type);
    aad.extend_from_slice(version);
    aad.extend_from_slice(&(len.min(u16::MAX as usize) as u16).to_be_bytes());
    aad
}

fn verify_mac(alg: MacAlg, key: &[u8], aad: &[u8], data: &[u8], expected: &[u8]) -> bool {
    fn go<M: Mac + KeyInit>(key: &[u8], aad: &[u8], data: &[u8], expected: &[u8]) -> bool {
        let Ok(mut m) = <M as KeyInit>::new_from_slice(key) else { return false };
        m.update(aad);
        m.update(data);
        m.verify_slice(expected).is_ok()
    }
    match alg {
        MacAlg::Sha1 => go::<Hmac<sha1::Sha1>>(key, aad, data, expected),
        MacAlg::Sha256 => go::<Hmac<Sha256>>(key, aad, data, expected),
        MacAlg::Sha384 => go::<Hmac<Sha384>>(key, aad, data, expected),
    }
}

fn cbc_decrypt(key: &[u8], iv: &[u8], buf: &mut [u8]) -> Result<(), DecryptError> {
    use cbc::cipher::block_padding::NoPadding;
    use cbc::cipher::{BlockModeDecrypt, KeyIvInit};
    let r = match key.len() {
        16 => cbc::Decryptor::<aes::Aes128>::new_from_slices(key, iv)
            .map_err(|_| DecryptError::BadSecret)?
            .decrypt_padded::<NoPadding>(buf)
            .map(|_| ()),
        32 => cbc::Decryptor::<aes::Aes256>::new_from_slices(key, iv)
            .map_err(|_| DecryptError::BadSecret)?
            .decrypt_padded::<NoPadding>(buf)
            .map(|_| ()),
        _ => return Err(DecryptError::BadSecret),
    };
    r.map_err(|_| DecryptError::BadLength)
}

#[cfg(test)]
pub(crate) mod tests;
