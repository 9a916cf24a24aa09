//! Key material and encryption.
//!
//! For now: the master key (key-encryption key) that will wrap the per-provider data keys.
//! Key types never print their bytes, only a fingerprint.

pub mod master_key;

pub use master_key::{KeyError, MasterKey};
