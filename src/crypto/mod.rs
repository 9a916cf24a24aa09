//! Key material and encryption.
//!
//! The master key (key-encryption key) that will wrap the per-provider data keys, and the
//! audit signing key. Key types never print their bytes, only a fingerprint.

pub mod master_key;
pub mod signing_key;

pub use master_key::{KeyError, MasterKey};
pub use signing_key::{SigningKey, verify_signature};
