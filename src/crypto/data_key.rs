//! Per-provider data keys (DEKs) and the field envelope.
//!
//! A DEK is 32 random bytes, stored only wrapped by the key-encryption key (the
//! [`KeyWrapper`](super::KeyWrapper), with the key id as associated data). Each PHI value
//! is sealed into a versioned envelope
//!
//! ```text
//! version (1) | key id length (1) | key id | nonce (12) | ciphertext | tag (16)
//! ```
//!
//! with associated data binding table, column, row identity and key id, so a ciphertext
//! copied to another row or column fails to decrypt. A DEK counts what it seals and
//! refuses past 2^32 values (the NIST limit for random 96-bit nonces): rotate before.

use std::sync::atomic::{AtomicU64, Ordering};

use zeroize::Zeroizing;

use super::aead::{AeadKey, CryptoError, KEY_LEN, TAG_LEN, random_key, random_nonce};

/// Envelope format version.
pub const ENVELOPE_VERSION: u8 = 1;
/// Most values one DEK may seal.
pub const MAX_SEALS: u64 = 1 << 32;
const NONCE_LEN: usize = 12;
const FIELD_CONTEXT: &[u8] = b"claimgate field v1\0";

/// Where a value lives: what its ciphertext is bound to.
#[derive(Debug, Clone, Copy)]
pub struct FieldSlot<'a> {
    /// The table.
    pub table: &'a str,
    /// The column.
    pub column: &'a str,
    /// The row's stable identity (for example the provider's claim id and version).
    pub row: &'a str,
}

impl FieldSlot<'_> {
    fn aad(&self, key_id: &str) -> Vec<u8> {
        let mut aad = FIELD_CONTEXT.to_vec();
        for part in [self.table, self.column, self.row, key_id] {
            aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
            aad.extend_from_slice(part.as_bytes());
        }
        aad
    }
}

/// One data key, unwrapped, with its seal counter.
pub struct DataKey {
    id: String,
    key: AeadKey,
    bytes: Zeroizing<[u8; KEY_LEN]>,
    sealed: AtomicU64,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DataKey({})", self.id)
    }
}

impl DataKey {
    /// A new random key with id `id` (at most 255 bytes).
    pub fn generate(id: &str) -> Result<Self, CryptoError> {
        Self::from_bytes(id, random_key()?, 0)
    }

    /// A key from its bytes, having already sealed `sealed` values.
    pub fn from_bytes(
        id: &str,
        bytes: Zeroizing<[u8; KEY_LEN]>,
        sealed: u64,
    ) -> Result<Self, CryptoError> {
        if id.is_empty() || id.len() > 255 {
            return Err(CryptoError::Malformed);
        }
        Ok(Self {
            id: id.to_owned(),
            key: AeadKey::new(&bytes)?,
            bytes,
            sealed: AtomicU64::new(sealed),
        })
    }

    /// The key id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key bytes, for wrapping by the key-encryption key.
    pub fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }

    /// How many values it has sealed.
    pub fn sealed(&self) -> u64 {
        self.sealed.load(Ordering::Relaxed)
    }

    /// Seals `plaintext` for `slot` into an envelope.
    pub fn seal(&self, slot: FieldSlot<'_>, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if self.sealed.fetch_add(1, Ordering::Relaxed) >= MAX_SEALS {
            return Err(CryptoError::RotationDue(self.id.clone()));
        }
        let nonce = random_nonce()?;
        let mut out = Vec::with_capacity(2 + self.id.len() + NONCE_LEN + plaintext.len() + TAG_LEN);
        out.push(ENVELOPE_VERSION);
        out.push(self.id.len() as u8);
        out.extend_from_slice(self.id.as_bytes());
        out.extend_from_slice(&nonce);
        self.key
            .seal_into(nonce, &slot.aad(&self.id), plaintext, &mut out)?;
        Ok(out)
    }

    /// Opens an envelope this key sealed for `slot`.
    pub fn open(
        &self,
        slot: FieldSlot<'_>,
        envelope: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let parsed = Envelope::parse(envelope)?;
        if parsed.key_id != self.id {
            return Err(CryptoError::UnknownKey(parsed.key_id.to_owned()));
        }
        self.key
            .open(parsed.nonce, &slot.aad(&self.id), parsed.sealed)
    }
}

/// An envelope's parts.
#[derive(Debug)]
pub struct Envelope<'a> {
    /// The key that sealed it.
    pub key_id: &'a str,
    nonce: [u8; NONCE_LEN],
    sealed: &'a [u8],
}

impl<'a> Envelope<'a> {
    /// Splits an envelope; refuses unknown versions and short input.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, CryptoError> {
        let (&version, rest) = bytes.split_first().ok_or(CryptoError::Malformed)?;
        if version != ENVELOPE_VERSION {
            return Err(CryptoError::UnsupportedVersion(version));
        }
        let (&id_len, rest) = rest.split_first().ok_or(CryptoError::Malformed)?;
        let id_len = usize::from(id_len);
        if rest.len() < id_len + NONCE_LEN + TAG_LEN {
            return Err(CryptoError::Malformed);
        }
        let (id, rest) = rest.split_at(id_len);
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        Ok(Self {
            key_id: std::str::from_utf8(id).map_err(|_| CryptoError::Malformed)?,
            nonce: nonce.try_into().map_err(|_| CryptoError::Malformed)?,
            sealed,
        })
    }
}
