//! libFuzzer entry for `airlock::fuzz::template`; see host/src/fuzz.rs for what it exercises.
#![no_main]

libfuzzer_sys::fuzz_target!(|input: &[u8]| airlock::fuzz::template(input));
