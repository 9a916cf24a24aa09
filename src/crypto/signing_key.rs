//! The audit signing key: an Ed25519 key (its 32-byte seed as 64 hex characters, from
//! `keys.audit_signing_key` or `keys.audit_signing_key_file`, loaded like the master key)
//! that signs audit checkpoints and export manifests. Prints only its fingerprint.

use std::fmt;

use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

use super::master_key::{KeyError, load_key_bytes};
use crate::config::{MasterKeySource, Profile};

/// The key pair.
pub struct SigningKey(Ed25519KeyPair);

impl SigningKey {
    /// Loads the key; in the dev profile a missing key file is generated (mode 0600).
    pub fn load(source: &MasterKeySource, profile: Profile) -> Result<Self, KeyError> {
        let seed = load_key_bytes(source, profile, "keys.audit_signing_key_file")?;
        Ed25519KeyPair::from_seed_unchecked(seed.as_ref())
            .map(Self)
            .map_err(|_| KeyError::Format {
                setting: "keys.audit_signing_key_file",
            })
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.0.sign(message).as_ref().to_vec()
    }

    /// The public key (32 bytes), for verifiers.
    pub fn public_key(&self) -> Vec<u8> {
        self.0.public_key().as_ref().to_vec()
    }

    /// A short identifier of the public key, safe to log.
    pub fn fingerprint(&self) -> String {
        let digest =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, self.0.public_key().as_ref());
        hex::encode(digest.as_ref().get(..8).unwrap_or_default())
    }
}

/// Whether `signature` is `public_key`'s Ed25519 signature of `message`.
pub fn verify_signature(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    UnparsedPublicKey::new(&ED25519, public_key)
        .verify(message, signature)
        .is_ok()
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({})", self.fingerprint())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn signatures_verify_only_for_their_message_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let source = MasterKeySource::File(dir.path().join("audit.key"));
        let key = SigningKey::load(&source, Profile::Dev).unwrap();
        let again = SigningKey::load(&source, Profile::Dev).unwrap();
        assert_eq!(key.public_key(), again.public_key(), "the file is reused");
        let signature = key.sign(b"head 7");
        assert!(verify_signature(&key.public_key(), b"head 7", &signature));
        assert!(!verify_signature(&key.public_key(), b"head 8", &signature));
        let other = SigningKey::load(
            &MasterKeySource::File(dir.path().join("b.key")),
            Profile::Dev,
        )
        .unwrap();
        assert!(!verify_signature(
            &other.public_key(),
            b"head 7",
            &signature
        ));
    }
}
