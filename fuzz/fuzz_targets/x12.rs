//! Fuzz target `x12`: see `harness::x12`.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::x12(data));
