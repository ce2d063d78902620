//! NSS key log files (SSLKEYLOGFILE) (stub: to be written).

/// Secrets from a key log, looked up by client random.
#[derive(Debug, Default)]
pub struct KeyLog {}
