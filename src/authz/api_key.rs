//! API key tokens: generation, parsing and verification.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// The token prefix: a leaked key is recognisable by it.
const PREFIX: &str = "cgk_";
/// Key id length in bytes (16 hex characters).
const KEY_ID_LEN: usize = 8;
/// Secret length in bytes (64 hex characters).
const SECRET_LEN: usize = 32;
/// Domain separation for the stored hash.
const HASH_CONTEXT: &[u8] = b"claimgate api key v1\0";

/// The public identifier of a key (16 hex characters), safe to log and store.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyId(String);

impl KeyId {
    /// Parses a key id (16 hex characters, as shown in listings).
    pub fn parse(text: &str) -> Option<Self> {
        (text.len() == KEY_ID_LEN * 2 && text.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| Self(text.to_ascii_lowercase()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A newly generated key: the token is shown once, the hash is stored.
pub struct ApiKey {
    /// The key id.
    pub id: KeyId,
    /// The full bearer token; never stored, never logged.
    pub token: SecretString,
    /// SHA-256 of the secret, with domain separation.
    pub secret_hash: Vec<u8>,
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Why a key could not be generated.
#[derive(Debug, thiserror::Error)]
#[error("the system random generator failed")]
pub struct RandomFailed;

impl ApiKey {
    /// Generates a key from the system's cryptographic random generator.
    pub fn generate() -> Result<Self, RandomFailed> {
        let mut id = [0u8; KEY_ID_LEN];
        let mut secret = Zeroizing::new([0u8; SECRET_LEN]);
        aws_lc_rs::rand::fill(&mut id).map_err(|_| RandomFailed)?;
        aws_lc_rs::rand::fill(secret.as_mut()).map_err(|_| RandomFailed)?;
        let id = KeyId(hex::encode(id));
        let secret_hex = Zeroizing::new(hex::encode(secret.as_ref()));
        Ok(Self {
            token: SecretString::from(format!("{PREFIX}{id}_{}", secret_hex.as_str())),
            secret_hash: hash_secret(secret_hex.as_bytes()),
            id,
        })
    }
}

/// A bearer token split into its parts; the secret part stays zeroized.
pub struct ParsedToken {
    /// The key id named by the token.
    pub id: KeyId,
    secret: Zeroizing<String>,
}

impl fmt::Debug for ParsedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParsedToken")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl ParsedToken {
    /// Splits `cgk_<16 hex>_<64 hex>`; anything else is `None`.
    pub fn parse(token: &str) -> Option<Self> {
        let rest = token.strip_prefix(PREFIX)?;
        let (id, secret) = rest.split_once('_')?;
        let is_hex =
            |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
        (is_hex(id, KEY_ID_LEN * 2) && is_hex(secret, SECRET_LEN * 2)).then(|| Self {
            id: KeyId(id.to_ascii_lowercase()),
            secret: Zeroizing::new(secret.to_ascii_lowercase()),
        })
    }

    /// Compares the token's secret with a stored hash in constant time.
    pub fn secret_matches(&self, stored_hash: &[u8]) -> bool {
        hash_secret(self.secret.as_bytes())
            .ct_eq(stored_hash)
            .into()
    }
}

fn hash_secret(secret_hex: &[u8]) -> Vec<u8> {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(HASH_CONTEXT);
    ctx.update(secret_hex);
    ctx.finish().as_ref().to_vec()
}

impl ApiKey {
    /// The token text, for showing once to its owner.
    pub fn reveal(&self) -> &str {
        self.token.expose_secret()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn generated_tokens_parse_and_verify() {
        let key = ApiKey::generate().unwrap();
        assert!(key.reveal().starts_with("cgk_"));
        let parsed = ParsedToken::parse(key.reveal()).unwrap();
        assert_eq!(parsed.id, key.id);
        assert!(parsed.secret_matches(&key.secret_hash));
        let other = ApiKey::generate().unwrap();
        assert!(!parsed.secret_matches(&other.secret_hash));
        assert!(
            !format!("{key:?}{parsed:?}").contains(&key.reveal()[21..]),
            "Debug hides the secret"
        );
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let key = ApiKey::generate().unwrap();
        let t = key.reveal();
        for bad in [
            "",
            "cgk_",
            "Bearer x",
            &t[..t.len() - 1],
            &format!("{t}0"),
            &t.replace("cgk_", "cgx_"),
        ] {
            assert!(ParsedToken::parse(bad).is_none(), "{bad:?}");
        }
    }
}
