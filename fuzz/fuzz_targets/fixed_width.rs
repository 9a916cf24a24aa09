//! Fuzz target `fixed_width`: see `harness::fixed_width`.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::fixed_width(data));
