//! Blind indexes: keyed HMAC-SHA256 over normalised values, so that exact look-ups (a
//! member id; a name with a birth date) work without decrypting. The index key is separate
//! from every encryption key. Indexes are truncated to 16 bytes (128 bits): enough that
//! accidental collisions never happen in practice, short enough to keep indexes small;
//! a look-up still decrypts and compares the candidates it finds.

use aws_lc_rs::hmac;
use zeroize::Zeroizing;

use super::aead::{CryptoError, KEY_LEN, random_key};

/// Bytes kept of each HMAC.
pub const INDEX_LEN: usize = 16;

/// What an index is over; part of the MAC input, so indexes of different kinds never match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexKind {
    /// A member (subscriber) id.
    MemberId,
    /// Last name, first name and birth date together.
    NameAndBirthDate,
}

impl IndexKind {
    fn label(self) -> &'static [u8] {
        match self {
            Self::MemberId => b"member_id\0",
            Self::NameAndBirthDate => b"name_birth_date\0",
        }
    }
}

/// A blind-index key.
pub struct BlindIndexKey {
    key: hmac::Key,
    bytes: Zeroizing<[u8; KEY_LEN]>,
}

impl std::fmt::Debug for BlindIndexKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlindIndexKey(..)")
    }
}

impl BlindIndexKey {
    /// A new random key.
    pub fn generate() -> Result<Self, CryptoError> {
        Ok(Self::from_bytes(random_key()?))
    }

    /// A key from its bytes.
    pub fn from_bytes(bytes: Zeroizing<[u8; KEY_LEN]>) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, bytes.as_ref()),
            bytes,
        }
    }

    /// The key bytes, for wrapping.
    pub fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }

    /// The index of an already normalised value.
    pub fn index(&self, kind: IndexKind, normalised: &str) -> [u8; INDEX_LEN] {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(b"claimgate blind index v1\0");
        ctx.update(kind.label());
        ctx.update(normalised.as_bytes());
        let tag = ctx.sign();
        let mut out = [0u8; INDEX_LEN];
        out.copy_from_slice(tag.as_ref().get(..INDEX_LEN).unwrap_or(&[0; INDEX_LEN]));
        out
    }

    /// The index of a member id: letters and digits only, upper case.
    pub fn member_id(&self, member_id: &str) -> [u8; INDEX_LEN] {
        let normalised: Zeroizing<String> = Zeroizing::new(
            member_id
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .map(|c| c.to_ascii_uppercase())
                .collect(),
        );
        self.index(IndexKind::MemberId, &normalised)
    }

    /// The index of a person: last and first name (letters only, upper case) and the
    /// birth date as `YYYYMMDD`.
    pub fn name_and_birth_date(
        &self,
        last: &str,
        first: &str,
        birth_date: time::Date,
    ) -> [u8; INDEX_LEN] {
        let letters = |s: &str| -> String {
            s.chars()
                .filter(|c| c.is_alphabetic())
                .flat_map(char::to_uppercase)
                .collect()
        };
        let normalised = Zeroizing::new(format!(
            "{}|{}|{:04}{:02}{:02}",
            letters(last),
            letters(first),
            birth_date.year(),
            u8::from(birth_date.month()),
            birth_date.day()
        ));
        self.index(IndexKind::NameAndBirthDate, &normalised)
    }
}
