//! The pcap and pcapng readers, read in pieces of any size.
//! Input format and checks: `wiretax::fuzzing` (shared with
//! tests/fuzz_regressions.rs, which replays the crashes found).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    wiretax::fuzzing::run("capture", data);
});
