//! Fuzz target `field_envelope`: see `harness::field_envelope`.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::field_envelope(data));
