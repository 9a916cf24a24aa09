//! Keys and encryption.
//!
//! - [`MasterKey`]: the key-encryption key (KEK), behind the [`KeyWrapper`] trait so a KMS
//!   or HSM can take its place; it wraps data keys with the key id as associated data.
//! - [`DataKey`]: per-provider data keys (DEKs) and the versioned field envelope, bound
//!   to table, column, row and key id.
//! - [`BlindIndexKey`]: keyed HMAC indexes for exact look-ups without decrypting.
//! - [`raw_file`]: streaming chunked encryption of raw files.
//! - [`SigningKey`]: the Ed25519 key of audit checkpoints and export manifests.
//!
//! Key types never print their bytes, only an id or a fingerprint; key bytes and
//! decrypted values are zeroized on drop.

pub mod aead;
pub mod blind_index;
pub mod data_key;
pub mod master_key;
pub mod raw_file;
pub mod signing_key;

use zeroize::Zeroizing;

pub use aead::CryptoError;
pub use blind_index::{BlindIndexKey, IndexKind};
pub use data_key::{DataKey, Envelope, FieldSlot};
pub use master_key::{KeyError, MasterKey};
pub use signing_key::{SigningKey, verify_signature};

/// Wraps and unwraps data keys: the key-encryption key, wherever it lives.
pub trait KeyWrapper: Send + Sync {
    /// A short identifier of the wrapping key, safe to log and to store with what it wrapped.
    fn fingerprint(&self) -> String;
    /// Encrypts `key` with `key_id` as associated data.
    fn wrap(&self, key_id: &str, key: &[u8; aead::KEY_LEN]) -> Result<Vec<u8>, CryptoError>;
    /// Decrypts a wrapped key; fails for another key id or another wrapping key.
    fn unwrap(
        &self,
        key_id: &str,
        wrapped: &[u8],
    ) -> Result<Zeroizing<[u8; aead::KEY_LEN]>, CryptoError>;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::HashSet;
    use std::io::{Read, Write};

    use super::*;
    use crate::config::{MasterKeySource, Profile};

    fn kek(dir: &std::path::Path, name: &str) -> MasterKey {
        MasterKey::load(&MasterKeySource::File(dir.join(name)), Profile::Dev).unwrap()
    }

    const SLOT: FieldSlot<'static> = FieldSlot {
        table: "claims",
        column: "member_id",
        row: "acme/C1/1",
    };

    #[test]
    fn data_keys_wrap_under_the_kek_bound_to_their_id() {
        let dir = tempfile::tempdir().unwrap();
        let (kek, other) = (kek(dir.path(), "a.key"), kek(dir.path(), "b.key"));
        let dek = DataKey::generate("acme-1").unwrap();
        let wrapped = kek.wrap(dek.id(), dek.bytes()).unwrap();
        assert_eq!(
            kek.unwrap("acme-1", &wrapped).unwrap().as_ref(),
            dek.bytes()
        );
        assert_eq!(
            kek.unwrap("acme-2", &wrapped),
            Err(CryptoError::Decrypt),
            "another id"
        );
        assert_eq!(
            other.unwrap("acme-1", &wrapped),
            Err(CryptoError::Decrypt),
            "another KEK"
        );
        assert!(!format!("{dek:?}{kek:?}").contains(&hex::encode(dek.bytes())));
    }

    #[test]
    fn field_envelopes_detect_every_kind_of_tampering() {
        let dek = DataKey::generate("acme-1").unwrap();
        let sealed = dek.seal(SLOT, b"ZZCANARY-M123").unwrap();
        assert_eq!(
            dek.open(SLOT, &sealed).unwrap().as_slice(),
            b"ZZCANARY-M123"
        );
        assert!(
            !sealed.windows(6).any(|w| w == b"CANARY"),
            "no plaintext in the envelope"
        );
        assert_eq!(Envelope::parse(&sealed).unwrap().key_id, "acme-1");

        let moved_row = FieldSlot {
            row: "acme/C2/1",
            ..SLOT
        };
        let moved_column = FieldSlot {
            column: "patient_last_name",
            ..SLOT
        };
        assert_eq!(dek.open(moved_row, &sealed), Err(CryptoError::Decrypt));
        assert_eq!(dek.open(moved_column, &sealed), Err(CryptoError::Decrypt));
        let other = DataKey::from_bytes("acme-1", aead::random_key().unwrap(), 0).unwrap();
        assert_eq!(
            other.open(SLOT, &sealed),
            Err(CryptoError::Decrypt),
            "wrong key"
        );
        let header = 2 + "acme-1".len();
        for (what, at) in [
            ("nonce", header),
            ("ciphertext", header + 12),
            ("tag", sealed.len() - 1),
        ] {
            let mut bad = sealed.clone();
            bad[at] ^= 0x01;
            assert_eq!(dek.open(SLOT, &bad), Err(CryptoError::Decrypt), "{what}");
        }
        let mut renamed = sealed.clone();
        renamed[2] = b'b';
        assert!(matches!(
            dek.open(SLOT, &renamed),
            Err(CryptoError::UnknownKey(_))
        ));
        let mut future = sealed.clone();
        future[0] = 9;
        assert_eq!(
            dek.open(SLOT, &future),
            Err(CryptoError::UnsupportedVersion(9))
        );
        assert_eq!(dek.open(SLOT, &sealed[..10]), Err(CryptoError::Malformed));
    }

    #[test]
    fn a_data_key_refuses_past_its_seal_limit() {
        let dek = DataKey::from_bytes("old", aead::random_key().unwrap(), data_key::MAX_SEALS - 1)
            .unwrap();
        assert!(dek.seal(SLOT, b"x").is_ok());
        assert_eq!(
            dek.seal(SLOT, b"x"),
            Err(CryptoError::RotationDue("old".into()))
        );
    }

    #[test]
    fn nonces_do_not_repeat_in_a_million_encryptions_under_one_key() {
        let dek = DataKey::generate("k").unwrap();
        let mut seen = HashSet::with_capacity(1_000_000);
        for _ in 0..1_000_000 {
            let sealed = dek.seal(SLOT, b"").unwrap();
            let nonce: [u8; 12] = sealed[3..15].try_into().unwrap();
            assert!(seen.insert(nonce), "a nonce repeated");
        }
        assert_eq!(dek.sealed(), 1_000_000);
    }

    #[test]
    fn blind_indexes_match_normalised_values_only_under_their_key() {
        let key = BlindIndexKey::generate().unwrap();
        assert_eq!(key.member_id("m-123 456"), key.member_id("M123456"));
        assert_ne!(key.member_id("M123456"), key.member_id("M123457"));
        let dob = time::macros::date!(1960 - 02 - 29);
        assert_eq!(
            key.name_and_birth_date("O'Brien", "Jane", dob),
            key.name_and_birth_date("OBRIEN ", "jane", dob)
        );
        assert_ne!(
            key.name_and_birth_date("OBRIEN", "JANE", dob),
            key.name_and_birth_date("OBRIEN", "JANE", time::macros::date!(1960 - 03 - 01))
        );
        let other = BlindIndexKey::generate().unwrap();
        assert_ne!(key.member_id("M1"), other.member_id("M1"));
        assert_ne!(
            key.index(IndexKind::MemberId, "X"),
            key.index(IndexKind::NameAndBirthDate, "X"),
            "kinds are separated"
        );
    }

    fn encrypt(key: &[u8; 32], id: &str, data: &[u8]) -> Vec<u8> {
        let mut writer = raw_file::EncryptingWriter::new(Vec::new(), key, id).unwrap();
        for piece in data.chunks(7_001) {
            writer.write_all(piece).unwrap();
        }
        writer.finish().unwrap()
    }

    fn decrypt(key: &[u8; 32], id: &str, data: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        raw_file::DecryptingReader::new(data, key, id)?.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn raw_files_round_trip_and_detect_truncation_reordering_and_tampering() {
        let key = aead::random_key().unwrap();
        let chunk = raw_file::CHUNK;
        for size in [0, 1, chunk - 1, chunk, chunk + 1, 3 * chunk + 5] {
            let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let sealed = encrypt(&key, "file-1", &data);
            assert_eq!(
                decrypt(&key, "file-1", &sealed).unwrap(),
                data,
                "size {size}"
            );
        }
        let data: Vec<u8> = (0..3 * chunk + 5).map(|i| (i % 251) as u8).collect();
        let sealed = encrypt(&key, "file-1", &data);
        let header = 12;
        let frame = chunk + 16;
        let invalid = |bytes: &[u8], id: &str| {
            decrypt(&key, id, bytes).map_err(|e| e.kind()).err()
                == Some(std::io::ErrorKind::InvalidData)
        };
        assert!(
            invalid(&sealed[..header + 2 * frame], "file-1"),
            "cut at a chunk boundary"
        );
        assert!(
            invalid(&sealed[..sealed.len() - 1], "file-1"),
            "cut inside the last chunk"
        );
        let mut swapped = sealed[..header].to_vec();
        swapped.extend_from_slice(&sealed[header + frame..header + 2 * frame]);
        swapped.extend_from_slice(&sealed[header..header + frame]);
        swapped.extend_from_slice(&sealed[header + 2 * frame..]);
        assert!(invalid(&swapped, "file-1"), "two chunks swapped");
        let mut flipped = sealed.clone();
        flipped[header + frame + 100] ^= 1;
        assert!(invalid(&flipped, "file-1"), "a flipped bit");
        assert!(invalid(&sealed, "file-2"), "another file's id");
        let other = aead::random_key().unwrap();
        assert!(decrypt(&other, "file-1", &sealed).is_err(), "another key");
        assert!(invalid(&sealed[..5], "file-1"), "no header");
        assert!(
            !sealed
                .windows(16)
                .any(|w| data.windows(16).next() == Some(w)),
            "no plaintext in the output"
        );
    }
}
