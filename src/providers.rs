//! Provider tenants: the organisations that send claims. Every claim, upload and mapping
//! belongs to exactly one provider, named by its [`ProviderCode`].

use std::fmt;

/// A provider's short, stable code: 1–64 characters of `a-z`, `0-9`, `-` and `_`,
/// starting with a letter or digit. Used in URLs, so it is never PHI.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProviderCode(String);

/// Why a provider code was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "a provider code is 1-64 characters of a-z, 0-9, '-' and '_', starting with a letter or digit"
)]
pub struct InvalidProviderCode;

impl ProviderCode {
    /// Parses a code, refusing anything outside the allowed alphabet and length.
    pub fn parse(text: &str) -> Result<Self, InvalidProviderCode> {
        let valid_char =
            |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_';
        let first_ok = text
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if first_ok && text.len() <= 64 && text.chars().all(valid_char) {
            Ok(Self(text.to_owned()))
        } else {
            Err(InvalidProviderCode)
        }
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProviderCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A provider's display name: 1–200 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderName(String);

/// Why a provider name was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a provider name is 1-200 characters without control characters")]
pub struct InvalidProviderName;

impl ProviderName {
    /// Parses a name after trimming surrounding white space.
    pub fn parse(text: &str) -> Result<Self, InvalidProviderName> {
        let text = text.trim();
        let len = text.chars().count();
        if (1..=200).contains(&len) && !text.chars().any(char::is_control) {
            Ok(Self(text.to_owned()))
        } else {
            Err(InvalidProviderName)
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A stored provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    /// Its code.
    pub code: ProviderCode,
    /// Its display name.
    pub name: String,
    /// When it was created.
    pub created_at: time::OffsetDateTime,
    /// Whether it has been disabled.
    pub disabled: bool,
    /// Whether its X12 interchange control numbers are unique.
    pub interchange_control: InterchangeControl,
}

/// Whether a provider's X12 interchange control numbers (ISA13, per sender and receiver)
/// are unique, as X12 requires, or reused.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum InterchangeControl {
    /// Every interchange has its own control number: a new file that repeats one already
    /// received is refused as a replay (409 `interchange_replay`).
    #[default]
    Unique,
    /// The sender reuses control numbers (some clearinghouses do, across days): files
    /// are deduplicated by their bytes alone.
    Reused,
}

impl InterchangeControl {
    /// The stored code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unique => "unique",
            Self::Reused => "reused",
        }
    }

    /// Parses a stored code.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "unique" => Some(Self::Unique),
            "reused" => Some(Self::Reused),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_a_closed_alphabet() {
        for good in ["acme", "acme-clinic_2", "9lives", &"a".repeat(64)] {
            assert!(ProviderCode::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "-acme",
            "Acme",
            "acme clinic",
            "acme/../x",
            "ácme",
            &"a".repeat(65),
        ] {
            assert_eq!(ProviderCode::parse(bad), Err(InvalidProviderCode), "{bad}");
        }
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(
            ProviderName::parse("  Acme Clinic ").map(|n| n.0),
            Ok("Acme Clinic".into())
        );
        assert!(ProviderName::parse("   ").is_err());
        assert!(ProviderName::parse("a\u{0}b").is_err());
        assert!(ProviderName::parse(&"x".repeat(201)).is_err());
    }
}
