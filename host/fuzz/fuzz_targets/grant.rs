//! libFuzzer entry for `airlock::fuzz::grant`; see host/src/fuzz.rs for what it exercises.
#![no_main]

libfuzzer_sys::fuzz_target!(|input: &[u8]| airlock::fuzz::grant(input));
