//! Fuzz target `mapping_definition`: see `harness::mapping_definition`.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::mapping_definition(data));
