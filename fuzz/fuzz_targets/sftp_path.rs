//! Fuzz target `sftp_path`: see `harness::sftp_path`.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::sftp_path(data));
