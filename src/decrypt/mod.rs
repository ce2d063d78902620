//! TLS/DTLS record decryption from a key log (stub: to be written).
