//! AES-256-GCM with random 96-bit nonces, the one primitive behind key wrapping, field
//! envelopes and (with counter nonces) raw-file chunks. aws-lc-rs provides it (already in
//! the tree for TLS; hardware AES-GCM); nonces come from its random generator, a
//! user-space DRBG seeded by the operating system, so a nonce costs no system call.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use zeroize::Zeroizing;

/// Length of an AES-256 key.
pub const KEY_LEN: usize = 32;
/// Length of the GCM tag.
pub const TAG_LEN: usize = 16;

/// Why a cryptographic operation failed. Never carries key material or plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// Authentication failed: wrong key, altered ciphertext, nonce or tag, or associated
    /// data (a value moved to another row or column). Deliberately one case.
    #[error("the ciphertext does not authenticate")]
    Decrypt,
    /// The envelope is too short or its structure is wrong.
    #[error("the ciphertext envelope is malformed")]
    Malformed,
    /// The envelope's version is not one this build reads.
    #[error("unsupported ciphertext version {0}")]
    UnsupportedVersion(u8),
    /// The envelope names a key that is not available.
    #[error("data key {0} is not available")]
    UnknownKey(String),
    /// The data key has encrypted its limit of values and must be rotated first.
    #[error("data key {0} must be rotated before it encrypts more values")]
    RotationDue(String),
    /// The random generator failed.
    #[error("the random generator failed")]
    Random,
}

/// An AES-256-GCM key.
pub struct AeadKey(LessSafeKey);

impl std::fmt::Debug for AeadKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AeadKey(..)")
    }
}

impl AeadKey {
    /// A key from its 32 bytes.
    pub fn new(bytes: &[u8; KEY_LEN]) -> Result<Self, CryptoError> {
        UnboundKey::new(&AES_256_GCM, bytes)
            .map(|k| Self(LessSafeKey::new(k)))
            .map_err(|_| CryptoError::Malformed)
    }

    /// Encrypts `plaintext` under `nonce` and `aad`, appending ciphertext and tag to `out`.
    pub fn seal_into(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), CryptoError> {
        // Encrypt in place at the end of `out`: no separate copy of the plaintext is made
        // (and none is left behind in freed memory).
        let start = out.len();
        out.extend_from_slice(plaintext);
        let tag = self
            .0
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                out.get_mut(start..).ok_or(CryptoError::Malformed)?,
            )
            .map_err(|_| CryptoError::Decrypt)?;
        out.extend_from_slice(tag.as_ref());
        Ok(())
    }

    /// Decrypts `ciphertext_and_tag`; the plaintext is zeroized when dropped.
    pub fn open(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        ciphertext_and_tag: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let mut buffer = Zeroizing::new(ciphertext_and_tag.to_vec());
        let plain_len = self
            .0
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut buffer,
            )
            .map_err(|_| CryptoError::Decrypt)?
            .len();
        buffer.truncate(plain_len);
        Ok(buffer)
    }
}

/// Random bytes drawn from the DRBG at a time for nonces: one call yields 341 nonces.
const NONCE_POOL: usize = 4092;

/// Each thread's pool of random bytes for nonces. Drawing 12 bytes at a time from the DRBG
/// cost more than the encryption itself (each call does its own locking, reseed checks and
/// entropy mixing); drawing 4 KiB and slicing it keeps every nonce from the same generator.
/// Nonces are public, so the pool needs no secrecy; each byte is handed out once.
struct NoncePool {
    bytes: [u8; NONCE_POOL],
    used: usize,
}

thread_local! {
    static NONCES: std::cell::RefCell<NoncePool> = const {
        std::cell::RefCell::new(NoncePool { bytes: [0; NONCE_POOL], used: NONCE_POOL })
    };
}

/// A fresh random nonce.
pub fn random_nonce() -> Result<[u8; NONCE_LEN], CryptoError> {
    NONCES.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.used + NONCE_LEN > NONCE_POOL {
            aws_lc_rs::rand::fill(&mut pool.bytes).map_err(|_| CryptoError::Random)?;
            pool.used = 0;
        }
        let mut nonce = [0u8; NONCE_LEN];
        let start = pool.used;
        nonce.copy_from_slice(&pool.bytes[start..start + NONCE_LEN]);
        pool.used += NONCE_LEN;
        Ok(nonce)
    })
}

/// A fresh random 256-bit key.
pub fn random_key() -> Result<Zeroizing<[u8; KEY_LEN]>, CryptoError> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    aws_lc_rs::rand::fill(key.as_mut()).map_err(|_| CryptoError::Random)?;
    Ok(key)
}

/// Seals with a random nonce: `nonce || ciphertext || tag`.
pub fn seal_random(key: &AeadKey, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let nonce = random_nonce()?;
    let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
    out.extend_from_slice(&nonce);
    key.seal_into(nonce, aad, plaintext, &mut out)?;
    Ok(out)
}

/// Opens `nonce || ciphertext || tag`.
pub fn open_random(
    key: &AeadKey,
    aad: &[u8],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(CryptoError::Malformed);
    }
    let (nonce, rest) = sealed.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| CryptoError::Malformed)?;
    key.open(nonce, aad, rest)
}
