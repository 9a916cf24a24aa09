//! The master key: 32 bytes from `keys.master_key` or `keys.master_key_file` (64 hex
//! characters). In the dev profile a missing key file is generated with mode 0600.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use secrecy::ExposeSecret;
use zeroize::Zeroizing;

use crate::config::{MasterKeySource, Profile};

/// Length of the master key in bytes (AES-256).
const KEY_LEN: usize = 32;

/// Why the master key could not be loaded. Never contains key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be read or created.
    #[error("{setting}: {path}: {reason}")]
    Io {
        /// The setting that named the file.
        setting: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        reason: std::io::Error,
    },
    /// The key is not 64 hex characters.
    #[error("{setting}: the key must be 64 hex characters (32 bytes)")]
    Format {
        /// The setting that held it.
        setting: &'static str,
    },
    /// The system random generator failed.
    #[error("cannot generate a key: the system random generator failed")]
    Random,
}

/// The key-encryption key. Zeroized on drop; `Debug` shows only its fingerprint.
pub struct MasterKey(Zeroizing<[u8; KEY_LEN]>);

/// Loads 32 key bytes from `source` (64 hex characters); in the dev profile a missing key
/// file is generated with mode 0600. `setting` names the file setting in messages.
pub fn load_key_bytes(
    source: &MasterKeySource,
    profile: Profile,
    setting: &'static str,
) -> Result<Zeroizing<[u8; KEY_LEN]>, KeyError> {
    match source {
        MasterKeySource::Inline(hex) => {
            parse(hex.expose_secret(), setting.trim_end_matches("_file"))
        }
        MasterKeySource::File(path) => {
            if profile == Profile::Dev && !path.exists() {
                generate_into(path, setting)?;
            }
            let text =
                Zeroizing::new(
                    std::fs::read_to_string(path).map_err(|reason| KeyError::Io {
                        setting,
                        path: path.clone(),
                        reason,
                    })?,
                );
            parse(&text, setting)
        }
    }
}

fn parse(hex_text: &str, setting: &'static str) -> Result<Zeroizing<[u8; KEY_LEN]>, KeyError> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    hex::decode_to_slice(hex_text.trim(), key.as_mut())
        .map_err(|_| KeyError::Format { setting })?;
    Ok(key)
}

fn generate_into(path: &Path, setting: &'static str) -> Result<(), KeyError> {
    let io = |reason| KeyError::Io {
        setting,
        path: path.to_owned(),
        reason,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io)?;
    }
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    aws_lc_rs::rand::fill(key.as_mut()).map_err(|_| KeyError::Random)?;
    let hex_text = Zeroizing::new(hex::encode(key.as_ref()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    file.write_all(hex_text.as_bytes()).map_err(io)?;
    file.write_all(b"\n").map_err(io)
}

impl MasterKey {
    /// Loads the key from its source; in the dev profile a missing key file is created.
    pub fn load(source: &MasterKeySource, profile: Profile) -> Result<Self, KeyError> {
        load_key_bytes(source, profile, "keys.master_key_file").map(Self)
    }

    /// A short, stable identifier of the key, safe to log.
    pub fn fingerprint(&self) -> String {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, self.0.as_ref());
        hex::encode(digest.as_ref().get(..8).unwrap_or_default())
    }

    /// Domain separation of wrapped keys.
    const WRAP_CONTEXT: &'static [u8] = b"claimgate kek wrap v1\0";

    fn wrap_aad(key_id: &str) -> Vec<u8> {
        [Self::WRAP_CONTEXT, key_id.as_bytes()].concat()
    }
}

impl super::KeyWrapper for MasterKey {
    fn fingerprint(&self) -> String {
        MasterKey::fingerprint(self)
    }

    fn wrap(&self, key_id: &str, key: &[u8; KEY_LEN]) -> Result<Vec<u8>, super::CryptoError> {
        let kek = super::aead::AeadKey::new(&self.0)?;
        super::aead::seal_random(&kek, &Self::wrap_aad(key_id), key)
    }

    fn unwrap(
        &self,
        key_id: &str,
        wrapped: &[u8],
    ) -> Result<Zeroizing<[u8; KEY_LEN]>, super::CryptoError> {
        let kek = super::aead::AeadKey::new(&self.0)?;
        let plain = super::aead::open_random(&kek, &Self::wrap_aad(key_id), wrapped)?;
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        if plain.len() != KEY_LEN {
            return Err(super::CryptoError::Malformed);
        }
        key.copy_from_slice(&plain);
        Ok(key)
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({})", self.fingerprint())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn dev_profile_generates_a_private_key_file_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/master.key");
        let source = MasterKeySource::File(path.clone());
        let first = MasterKey::load(&source, Profile::Dev).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let second = MasterKey::load(&source, Profile::Dev).unwrap();
        assert_eq!(
            first.fingerprint(),
            second.fingerprint(),
            "the key is reused, not regenerated"
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !format!("{first:?}").contains(text.trim()),
            "Debug never shows the key"
        );
    }

    #[test]
    fn production_never_generates_and_bad_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let err = MasterKey::load(&MasterKeySource::File(path.clone()), Profile::Production);
        assert!(matches!(err, Err(KeyError::Io { .. })));
        assert!(!path.exists());
        std::fs::write(&path, "not hex").unwrap();
        let err = MasterKey::load(&MasterKeySource::File(path), Profile::Production);
        assert!(matches!(err, Err(KeyError::Format { .. })));
    }
}
