//! Entry points for the fuzz targets (fuzz/): not part of the API.

use crate::analyze::{Options, analyze_file};
use crate::report::Report;
use std::sync::atomic::{AtomicU64, Ordering};

/// Runs the whole pipeline over capture file bytes, as `wiretax --format
/// json` would over a file holding them, and returns the JSON report, or
/// why the bytes could not be read at all.
///
/// The analysis reads files, so the bytes go through a temporary file (in
/// `TMPDIR`; scripts/fuzz points it at memory when it can). To be pointed at
/// an in-memory entry point once the analysis has one.
#[doc(hidden)]
pub fn analyze_bytes(bytes: &[u8]) -> Result<String, String> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("wiretax-fuzz-{}-{n}.cap", std::process::id()));
    std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut opts = Options::new();
    opts.jobs = 1;
    let result = analyze_file(&path, &opts);
    let _ = std::fs::remove_file(&path);
    let report = Report::combine(vec![result.map_err(|e| e.to_string())?], Vec::new());
    let mut out = Vec::new();
    crate::report::json::write_pretty(&mut out, &report).map_err(|e| e.to_string())?;
    String::from_utf8(out).map_err(|e| e.to_string())
}
