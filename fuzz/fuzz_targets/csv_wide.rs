//! Fuzz target `csv_wide`: see `harness::csv_wide`.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::csv_wide(data));
