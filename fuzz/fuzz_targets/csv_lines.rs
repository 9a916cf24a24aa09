//! Fuzz target `csv_lines`: see `harness::csv_lines`.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::csv_lines(data));
