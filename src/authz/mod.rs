//! Principals, roles and API keys: who is calling, and what they may do.
//!
//! An API key is a bearer token `cgk_<key id>_<secret>`: the prefix makes leaked keys
//! greppable, the key id names the stored record (so a key can be revoked), and only a
//! SHA-256 hash of the 256-bit secret is stored. Hashes are compared in constant time.

pub mod api_key;

use std::fmt;
use std::str::FromStr;

pub use api_key::{ApiKey, KeyId, ParsedToken};

/// A role: a named set of permissions granted to a principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Manages principals, grants and keys.
    SecurityAdmin,
    /// Onboards providers and edits their mappings.
    MappingAdmin,
    /// A provider system that submits claim files.
    ProviderSubmitter,
    /// Claims operations staff who may read identified claims.
    PhiReader,
    /// Analysts: de-identified data only.
    Analyst,
    /// Compliance staff: audit trail and accounting of disclosures.
    ComplianceAuditor,
}

impl Role {
    /// The role's stable name, as stored and as written in policies.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SecurityAdmin => "security_admin",
            Self::MappingAdmin => "mapping_admin",
            Self::ProviderSubmitter => "provider_submitter",
            Self::PhiReader => "phi_reader",
            Self::Analyst => "analyst",
            Self::ComplianceAuditor => "compliance_auditor",
        }
    }
}

/// A role name that is not one of [`Role`]'s.
#[derive(Debug, thiserror::Error)]
#[error("unknown role")]
pub struct UnknownRole;

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            Self::SecurityAdmin,
            Self::MappingAdmin,
            Self::ProviderSubmitter,
            Self::PhiReader,
            Self::Analyst,
            Self::ComplianceAuditor,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
        .ok_or(UnknownRole)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Stored id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Roles granted (global grants only, for now).
    pub roles: Vec<Role>,
}

impl Principal {
    /// Whether the principal holds `role`.
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// What the store knows about one API key, for authentication.
#[derive(Debug, Clone)]
pub struct KeyRecord {
    /// The key's owner.
    pub principal: Principal,
    /// SHA-256 of the secret.
    pub secret_hash: Vec<u8>,
    /// After this instant the key no longer authenticates.
    pub expires_at: Option<time::OffsetDateTime>,
    /// Revoked keys never authenticate.
    pub revoked: bool,
    /// Disabled principals never authenticate.
    pub principal_disabled: bool,
}

impl KeyRecord {
    /// Checks a presented token against this record at `now`.
    pub fn authenticates(&self, token: &ParsedToken, now: time::OffsetDateTime) -> bool {
        let secret_ok = token.secret_matches(&self.secret_hash);
        let live =
            !self.revoked && !self.principal_disabled && self.expires_at.is_none_or(|t| now < t);
        secret_ok && live
    }
}
