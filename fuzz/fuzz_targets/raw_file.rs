//! Fuzz target `raw_file`: see `harness::raw_file`.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::raw_file(data));
