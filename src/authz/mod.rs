//! Principals, roles and API keys: who is calling, and what they may do.
//!
//! An API key is a bearer token `cgk_<key id>_<secret>`: the prefix makes leaked keys
//! greppable, the key id names the stored record (so a key can be revoked), and only a
//! SHA-256 hash of the 256-bit secret is stored. Hashes are compared in constant time.
//!
//! Authorization: [`Principal::authorize`] asks the casbin [`Policy`] once per live grant
//! and returns an [`Access`]; capabilities ([`PrincipalAdmin`], [`ProviderAdmin`],
//! [`PhiAccess`]) are made only from an `Access` for their permission, and the store
//! functions that change principals or read PHI require them.

pub mod api_key;
pub mod failures;
pub mod policy;

use std::fmt;
use std::str::FromStr;

pub use api_key::{ApiKey, KeyId, ParsedToken};
pub use failures::{FailureLimiter, SuccessLog};
pub use policy::{Policy, PolicyError};

use crate::providers::ProviderCode;

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
    /// A metrics scraper: operational counters only.
    Monitoring,
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
            Self::Monitoring => "monitoring",
        }
    }
}

impl serde::Serialize for Role {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A role name that is not one of [`Role`]'s.
#[derive(Debug, thiserror::Error)]
#[error("unknown role")]
pub struct UnknownRole;

impl Role {
    /// Every role.
    pub const ALL: [Self; 7] = [
        Self::SecurityAdmin,
        Self::MappingAdmin,
        Self::ProviderSubmitter,
        Self::PhiReader,
        Self::Analyst,
        Self::ComplianceAuditor,
        Self::Monitoring,
    ];

    /// The role names, comma-separated, for messages.
    pub fn names() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }
}

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
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

/// What kind of principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    /// A person: their keys expire by default (automatic logoff).
    Person,
    /// A provider's or clearinghouse's system.
    System,
}

impl PrincipalKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Person => "person",
            Self::System => "system",
        }
    }

    /// Parses a stored or submitted name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "person" => Some(Self::Person),
            "system" => Some(Self::System),
            _ => None,
        }
    }
}

/// The scope with which a role is held: over everything, or over one provider tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every provider, and resources that belong to none.
    Global,
    /// The one provider the request is about.
    Tenant,
}

impl Scope {
    /// The name used in `policy.csv`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Global => "global",
            Self::Tenant => "tenant",
        }
    }

    /// Parses a policy name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "global" => Some(Self::Global),
            "tenant" => Some(Self::Tenant),
            _ => None,
        }
    }
}

/// Everything the policy can allow: an object and an action, as in `policy.csv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// See principals, their grants, keys and certificates.
    PrincipalsRead,
    /// Create and disable principals; grant and revoke roles; issue and revoke keys.
    PrincipalsWrite,
    /// See providers.
    ProvidersRead,
    /// Create providers.
    ProvidersWrite,
    /// See mappings.
    MappingsRead,
    /// Edit and activate mappings.
    MappingsWrite,
    /// Upload claim files.
    UploadsWrite,
    /// See uploads, receipts and rejects.
    UploadsRead,
    /// Read identified (decrypted) claims.
    ClaimsReadPhi,
    /// Read de-identified claims.
    ClaimsReadDeidentified,
    /// Search and export the audit trail.
    AuditRead,
    /// Ask for time-limited emergency (break-glass) PHI access.
    EmergencyAccessRequest,
    /// Rotate and destroy data keys.
    KeysManage,
    /// Read operational metrics.
    MetricsRead,
}

impl Permission {
    /// Every permission.
    pub const ALL: [Self; 14] = [
        Self::PrincipalsRead,
        Self::PrincipalsWrite,
        Self::ProvidersRead,
        Self::ProvidersWrite,
        Self::MappingsRead,
        Self::MappingsWrite,
        Self::UploadsWrite,
        Self::UploadsRead,
        Self::ClaimsReadPhi,
        Self::ClaimsReadDeidentified,
        Self::AuditRead,
        Self::EmergencyAccessRequest,
        Self::KeysManage,
        Self::MetricsRead,
    ];

    fn parts(self) -> (&'static str, &'static str) {
        match self {
            Self::PrincipalsRead => ("principals", "read"),
            Self::PrincipalsWrite => ("principals", "write"),
            Self::ProvidersRead => ("providers", "read"),
            Self::ProvidersWrite => ("providers", "write"),
            Self::MappingsRead => ("mappings", "read"),
            Self::MappingsWrite => ("mappings", "write"),
            Self::UploadsWrite => ("uploads", "write"),
            Self::UploadsRead => ("uploads", "read"),
            Self::ClaimsReadPhi => ("claims", "read_phi"),
            Self::ClaimsReadDeidentified => ("claims", "read_deidentified"),
            Self::AuditRead => ("audit", "read"),
            Self::EmergencyAccessRequest => ("emergency_access", "request"),
            Self::KeysManage => ("keys", "manage"),
            Self::MetricsRead => ("metrics", "read"),
        }
    }

    /// The object, as in `policy.csv`.
    pub fn object(self) -> &'static str {
        self.parts().0
    }

    /// The action, as in `policy.csv`.
    pub fn action(self) -> &'static str {
        self.parts().1
    }

    /// The permission named by an object and an action.
    pub fn from_parts(object: &str, action: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.parts() == (object, action))
    }
}

/// Whether `name` is a valid principal name: 1–64 characters of `a-z`, `0-9`, `.`, `_`,
/// `@` and `-`.
pub fn valid_principal_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'@' | b'-')
        })
}

/// One role held by a principal.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The role.
    pub role: Role,
    /// The provider it is limited to (`None`: global).
    pub provider: Option<ProviderCode>,
    /// When it lapses by itself (break-glass grants always do).
    pub expires_at: Option<time::OffsetDateTime>,
    /// Granted as emergency access: every use is flagged for review.
    pub break_glass: bool,
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Stored id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Person or system.
    pub kind: PrincipalKind,
    /// Live grants.
    pub grants: Vec<Grant>,
}

/// What a request is about: nothing provider-specific, or one provider tenant.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// Resources that belong to no provider (principals, the provider list, the audit trail).
    Global,
    /// One provider's data.
    Provider(&'a ProviderCode),
}

/// A granted permission: which grant allowed it, for the audit trail and the capabilities.
#[derive(Debug, Clone)]
pub struct Access {
    /// The caller.
    pub principal_id: i64,
    /// The permission granted.
    pub permission: Permission,
    /// The role that allowed it.
    pub role: Role,
    /// The provider the request is about, if any.
    pub provider: Option<ProviderCode>,
    /// Allowed only by a break-glass grant: the use must be flagged for review.
    pub break_glass: bool,
}

impl Principal {
    /// Asks the policy whether any live grant allows `permission` on `target` at `now`.
    /// Standing grants are preferred to break-glass ones, so that a break-glass use is
    /// recorded only when nothing else would have allowed it.
    pub fn authorize(
        &self,
        policy: &Policy,
        permission: Permission,
        target: Target<'_>,
        now: time::OffsetDateTime,
    ) -> Option<Access> {
        let scope_of = |grant: &Grant| match (&grant.provider, target) {
            (None, _) => Some(Scope::Global),
            (Some(p), Target::Provider(t)) if p == t => Some(Scope::Tenant),
            (Some(_), _) => None,
        };
        let mut allowed: Option<&Grant> = None;
        for grant in &self.grants {
            let live = grant.expires_at.is_none_or(|t| now < t);
            let applies = scope_of(grant).is_some_and(|s| policy.allows(grant.role, s, permission));
            if live && applies && allowed.is_none_or(|a| a.break_glass && !grant.break_glass) {
                allowed = Some(grant);
            }
        }
        allowed.map(|grant| Access {
            principal_id: self.id,
            permission,
            role: grant.role,
            provider: match target {
                Target::Global => None,
                Target::Provider(code) => Some(code.clone()),
            },
            break_glass: grant.break_glass,
        })
    }

    /// The one provider this principal holds `permission` for, with the access that
    /// allows it. An upload's provider comes from the credential this way, on every
    /// channel.
    pub fn sole_provider(
        &self,
        policy: &Policy,
        permission: Permission,
        now: time::OffsetDateTime,
    ) -> SoleProvider {
        let mut held: Vec<Access> = self
            .grants
            .iter()
            .filter_map(|g| g.provider.as_ref())
            .filter_map(|p| self.authorize(policy, permission, Target::Provider(p), now))
            .collect();
        held.sort_unstable_by(|a, b| {
            let (a, b) = (a.provider.as_ref(), b.provider.as_ref());
            a.map(ProviderCode::as_str)
                .cmp(&b.map(ProviderCode::as_str))
        });
        held.dedup_by(|a, b| a.provider == b.provider);
        let global = self
            .authorize(policy, permission, Target::Global, now)
            .is_some();
        match (held.pop(), held.is_empty(), global) {
            (None, _, false) => SoleProvider::Nowhere,
            (Some(access), true, false) => SoleProvider::One(access),
            _ => SoleProvider::Ambiguous,
        }
    }
}

/// Which provider a credential acts for ([`Principal::sole_provider`]).
#[derive(Debug, Clone)]
pub enum SoleProvider {
    /// It holds the permission for no provider.
    Nowhere,
    /// Exactly this one (the access names it).
    One(Access),
    /// Globally or for several providers: it cannot say which.
    Ambiguous,
}

/// Capability: may change principals, grants, keys and certificates. Store functions that
/// do so take one, so a handler that forgot to authorize does not compile.
#[derive(Debug)]
pub struct PrincipalAdmin {
    /// Who acts (`None`: the operator console, outside the API).
    pub actor: Option<i64>,
}

impl PrincipalAdmin {
    /// From an [`Access`] for [`Permission::PrincipalsWrite`].
    pub fn from_access(access: &Access) -> Option<Self> {
        (access.permission == Permission::PrincipalsWrite).then_some(Self {
            actor: Some(access.principal_id),
        })
    }

    /// For `claimgate principals …`: the operator runs it with the database's own
    /// credentials, so the database's access control is the check.
    pub fn operator_console() -> Self {
        Self { actor: None }
    }
}

/// Capability: may create, rotate and destroy data keys.
#[derive(Debug)]
pub struct KeyAdmin(());

impl KeyAdmin {
    /// From an [`Access`] for [`Permission::KeysManage`].
    pub fn from_access(access: &Access) -> Option<Self> {
        (access.permission == Permission::KeysManage).then_some(Self(()))
    }

    /// For the operator console, and for creating a provider's first key on first use.
    pub fn operator_console() -> Self {
        Self(())
    }
}

/// Capability: may create providers.
#[derive(Debug)]
pub struct ProviderAdmin(());

impl ProviderAdmin {
    /// From an [`Access`] for [`Permission::ProvidersWrite`] or (to assign a provider's
    /// mapping) [`Permission::MappingsWrite`].
    pub fn from_access(access: &Access) -> Option<Self> {
        matches!(
            access.permission,
            Permission::ProvidersWrite | Permission::MappingsWrite
        )
        .then_some(Self(()))
    }

    /// For the operator console (and the dev bootstrap).
    pub fn operator_console() -> Self {
        Self(())
    }
}

/// Capability: may read one provider's identified claims.
#[derive(Debug)]
pub struct PhiAccess {
    /// The provider whose claims may be read.
    pub provider: ProviderCode,
    /// Allowed by a break-glass grant.
    pub break_glass: bool,
}

impl PhiAccess {
    /// From an [`Access`] for [`Permission::ClaimsReadPhi`] on a provider.
    pub fn from_access(access: &Access) -> Option<Self> {
        match (&access.provider, access.permission) {
            (Some(provider), Permission::ClaimsReadPhi) => Some(Self {
                provider: provider.clone(),
                break_glass: access.break_glass,
            }),
            _ => None,
        }
    }
}

/// Capability: may export one provider's claims; identified only with `claims:read_phi`.
#[derive(Debug)]
pub enum ExportAccess {
    /// De-identified exports only (`claims:read_deidentified`).
    Deidentified(ProviderCode),
    /// Identified or de-identified exports (`claims:read_phi`).
    Identified(PhiAccess),
}

impl ExportAccess {
    /// From an [`Access`] for [`Permission::ClaimsReadDeidentified`] or
    /// [`Permission::ClaimsReadPhi`] on a provider.
    pub fn from_access(access: &Access) -> Option<Self> {
        match (&access.provider, access.permission) {
            (Some(provider), Permission::ClaimsReadDeidentified) => {
                Some(Self::Deidentified(provider.clone()))
            }
            (Some(_), Permission::ClaimsReadPhi) => {
                PhiAccess::from_access(access).map(Self::Identified)
            }
            _ => None,
        }
    }

    /// The provider whose claims may be exported.
    pub fn provider(&self) -> &ProviderCode {
        match self {
            Self::Deidentified(provider) => provider,
            Self::Identified(phi) => &phi.provider,
        }
    }

    /// Whether identified exports are allowed.
    pub fn identified(&self) -> bool {
        matches!(self, Self::Identified(_))
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
    /// Checks a presented token against this record at `now`; a refusal carries its stable
    /// reason code (for the audit trail only: every refusal answers the same 401).
    pub fn check(
        &self,
        token: &ParsedToken,
        now: time::OffsetDateTime,
    ) -> Result<(), &'static str> {
        if !token.secret_matches(&self.secret_hash) {
            Err("wrong_secret")
        } else if self.revoked {
            Err("revoked_key")
        } else if self.principal_disabled {
            Err("disabled_principal")
        } else if self.expires_at.is_some_and(|t| now >= t) {
            Err("expired_key")
        } else {
            Ok(())
        }
    }

    /// Whether a presented token authenticates at `now`.
    pub fn authenticates(&self, token: &ParsedToken, now: time::OffsetDateTime) -> bool {
        self.check(token, now).is_ok()
    }
}
