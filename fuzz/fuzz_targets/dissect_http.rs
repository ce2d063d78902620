//! The HTTP/1 dissector.
//! Input format and checks: `wiretax::fuzzing` (shared with
//! tests/fuzz_regressions.rs, which replays the crashes found).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    wiretax::fuzzing::run("dissect_http", data);
});
