//! Fuzz target `audit_chain`: see `harness::audit_chain`.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::audit_chain(data));
