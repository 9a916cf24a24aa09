//! The audit trail's event model and hash chain: one closed set of event kinds with stable
//! codes, one canonical encoding, one chain.
//!
//! An event holds ids, codes and counts, never PHI and never free text a caller typed
//! (a break-glass reason is stored with its grant, not here). Each stored event carries
//! `prev_hash` (the previous event's hash; 32 zero bytes for the first) and
//! `hash = SHA-256(prev_hash || canonical body)`, so changing or removing any event breaks
//! every later hash. The store appends events under a lock, in the transaction of the
//! action they record where that action is a database write.

pub mod journal;

use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::authz::Role;

pub use journal::{Appended, Journal, JournalHealth};

/// Where audit times come from: the system clock, or (in tests) any other.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> OffsetDateTime + Send + Sync>);

impl Clock {
    /// The system clock, UTC.
    pub fn system() -> Self {
        Self(Arc::new(OffsetDateTime::now_utc))
    }

    /// A clock that reads `f`.
    pub fn from_fn(f: impl Fn() -> OffsetDateTime + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    /// The time now.
    pub fn now(&self) -> OffsetDateTime {
        (self.0)()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

/// Version of the canonical encoding; part of every body.
pub const ENCODING_VERSION: u32 = 1;

/// The hash that precedes the first event.
pub const GENESIS_HASH: [u8; 32] = [0; 32];

/// What happened. Codes are stable: a new meaning gets a new code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum EventKind {
    /// A credential was refused (or the caller was rate limited).
    #[serde(rename = "auth.failure")]
    AuthFailure,
    /// An authenticated caller was refused a permission.
    #[serde(rename = "authz.denied")]
    PermissionDenied,
    /// A provider tenant was created.
    #[serde(rename = "provider.created")]
    ProviderCreated,
    /// A provider was disabled.
    #[serde(rename = "provider.disabled")]
    ProviderDisabled,
    /// A provider's setting was changed (`resource` names the setting and its new value).
    #[serde(rename = "provider.changed")]
    ProviderChanged,
    /// A principal was created.
    #[serde(rename = "principal.created")]
    PrincipalCreated,
    /// A principal was disabled.
    #[serde(rename = "principal.disabled")]
    PrincipalDisabled,
    /// A role was granted.
    #[serde(rename = "grant.added")]
    RoleGranted,
    /// A role was revoked.
    #[serde(rename = "grant.revoked")]
    RoleRevoked,
    /// An API key was issued.
    #[serde(rename = "key.created")]
    KeyCreated,
    /// An API key was revoked.
    #[serde(rename = "key.revoked")]
    KeyRevoked,
    /// A client certificate was mapped to a principal.
    #[serde(rename = "certificate.mapped")]
    CertificateMapped,
    /// An SSH public key was mapped to a principal (SFTP).
    #[serde(rename = "ssh_key.mapped")]
    SshKeyMapped,
    /// An SFTP session authenticated (its id is the event's request id).
    #[serde(rename = "sftp.session_opened")]
    SftpSessionOpened,
    /// An SFTP session ended.
    #[serde(rename = "sftp.session_closed")]
    SftpSessionClosed,
    /// A client address or key reached the failed-authentication limit: attempts are
    /// refused until the window ends.
    #[serde(rename = "auth.lockout")]
    AuthLockout,
    /// An SFTP login was refused (unknown key, disabled principal, no upload grant, limits).
    #[serde(rename = "sftp.login_refused")]
    SftpLoginRefused,
    /// An SFTP operation was refused (outside the jail, not allowed in the folder).
    #[serde(rename = "sftp.refused")]
    SftpRefused,
    /// An SFTP file was not completed (connection lost mid-transfer, too large, a
    /// temporary name never renamed): its bytes were discarded, never processed.
    #[serde(rename = "sftp.upload_discarded")]
    SftpUploadDiscarded,
    /// Emergency access was granted.
    #[serde(rename = "breakglass.granted")]
    BreakGlassGranted,
    /// Identified claims were read.
    #[serde(rename = "phi.read")]
    PhiRead,
    /// An accounting of disclosures was produced for one member.
    #[serde(rename = "disclosures.accounted")]
    DisclosuresAccounted,
    /// The gateway loaded its settings and started serving.
    #[serde(rename = "server.started")]
    ServerStarted,
    /// The gateway stopped.
    #[serde(rename = "server.stopped")]
    ServerStopped,
    /// The audit trail was searched or verified.
    #[serde(rename = "audit.read")]
    AuditRead,
    /// The audit trail was exported.
    #[serde(rename = "audit.exported")]
    AuditExported,
    /// A credential was accepted (recorded once per credential per hour, not per request).
    #[serde(rename = "auth.success")]
    AuthSuccess,
    /// A claim file was received.
    #[serde(rename = "upload.received")]
    UploadReceived,
    /// A claim file sent again (the same bytes, or the same idempotency key) was answered
    /// with its earlier upload (`resource`) and not stored a second time.
    #[serde(rename = "upload.duplicate")]
    UploadDuplicate,
    /// A claim file was read, mapped and stored.
    #[serde(rename = "upload.processed")]
    UploadProcessed,
    /// A claim file was refused as a whole.
    #[serde(rename = "upload.rejected")]
    UploadRejected,
    /// A mapping version was drafted.
    #[serde(rename = "mapping.created")]
    MappingCreated,
    /// A mapping draft was edited.
    #[serde(rename = "mapping.changed")]
    MappingChanged,
    /// A mapping version was approved by a second principal.
    #[serde(rename = "mapping.approved")]
    MappingApproved,
    /// A sample file was read with a mapping version (nothing stored).
    #[serde(rename = "mapping.previewed")]
    MappingPreviewed,
    /// A mapping version's impact was measured on stored files (counts only).
    #[serde(rename = "mapping.impact_measured")]
    MappingImpactMeasured,
    /// A mapping version was activated.
    #[serde(rename = "mapping.activated")]
    MappingActivated,
    /// Claims were exported.
    #[serde(rename = "claims.exported")]
    ClaimsExported,
    /// A provider data key was created.
    #[serde(rename = "datakey.created")]
    DataKeyCreated,
    /// A provider data key was rotated.
    #[serde(rename = "datakey.rotated")]
    DataKeyRotated,
    /// A provider data key was destroyed (crypto-shredding).
    #[serde(rename = "datakey.destroyed")]
    DataKeyDestroyed,
    /// A retired data key was erased after re-encryption moved every value off it.
    #[serde(rename = "datakey.drained")]
    DataKeyDrained,
    /// Every data key was wrapped anew under another key-encryption key.
    #[serde(rename = "kek.rotated")]
    KekRotated,
    /// A stored encrypted value failed its integrity check when read (tampered, or moved
    /// from another row, column or provider); nothing was returned.
    #[serde(rename = "integrity.failure")]
    IntegrityFailure,
    /// The gateway started with a configuration (settings, access-control model or
    /// policy) other than the one it last ran with; `resource` names both digests.
    #[serde(rename = "config.changed")]
    ConfigChanged,
}

impl EventKind {
    /// The stable code.
    pub fn code(self) -> &'static str {
        match self {
            Self::AuthFailure => "auth.failure",
            Self::AuthLockout => "auth.lockout",
            Self::PermissionDenied => "authz.denied",
            Self::ProviderCreated => "provider.created",
            Self::ProviderDisabled => "provider.disabled",
            Self::ProviderChanged => "provider.changed",
            Self::PrincipalCreated => "principal.created",
            Self::PrincipalDisabled => "principal.disabled",
            Self::RoleGranted => "grant.added",
            Self::RoleRevoked => "grant.revoked",
            Self::KeyCreated => "key.created",
            Self::KeyRevoked => "key.revoked",
            Self::CertificateMapped => "certificate.mapped",
            Self::SshKeyMapped => "ssh_key.mapped",
            Self::SftpSessionOpened => "sftp.session_opened",
            Self::SftpSessionClosed => "sftp.session_closed",
            Self::SftpLoginRefused => "sftp.login_refused",
            Self::SftpRefused => "sftp.refused",
            Self::SftpUploadDiscarded => "sftp.upload_discarded",
            Self::BreakGlassGranted => "breakglass.granted",
            Self::PhiRead => "phi.read",
            Self::DisclosuresAccounted => "disclosures.accounted",
            Self::ServerStarted => "server.started",
            Self::ServerStopped => "server.stopped",
            Self::AuditRead => "audit.read",
            Self::AuditExported => "audit.exported",
            Self::AuthSuccess => "auth.success",
            Self::UploadReceived => "upload.received",
            Self::UploadDuplicate => "upload.duplicate",
            Self::UploadProcessed => "upload.processed",
            Self::UploadRejected => "upload.rejected",
            Self::MappingCreated => "mapping.created",
            Self::MappingChanged => "mapping.changed",
            Self::MappingApproved => "mapping.approved",
            Self::MappingPreviewed => "mapping.previewed",
            Self::MappingImpactMeasured => "mapping.impact_measured",
            Self::MappingActivated => "mapping.activated",
            Self::ClaimsExported => "claims.exported",
            Self::DataKeyCreated => "datakey.created",
            Self::DataKeyRotated => "datakey.rotated",
            Self::DataKeyDestroyed => "datakey.destroyed",
            Self::DataKeyDrained => "datakey.drained",
            Self::KekRotated => "kek.rotated",
            Self::IntegrityFailure => "integrity.failure",
            Self::ConfigChanged => "config.changed",
        }
    }
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Done.
    Success,
    /// Refused: bad credential, missing permission, or invalid request.
    Denied,
}

/// One event, before it is sequenced and chained.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEvent {
    /// What happened (written first by [`AuditEvent::canonical`]).
    #[serde(skip)]
    pub kind: EventKind,
    /// How it ended.
    pub outcome: Outcome,
    /// The acting principal's id (`None`: unauthenticated, or the operator console).
    pub actor: Option<i64>,
    /// The role that allowed the action.
    pub role: Option<Role>,
    /// The provider tenant concerned, by code.
    pub provider: Option<String>,
    /// What was acted on: `principal:<name>`, `key:<key id>`, `grant:<role>`, …
    pub resource: Option<String>,
    /// The request's id (`x-request-id`).
    pub request_id: Option<String>,
    /// The client's address.
    pub client: Option<IpAddr>,
    /// Records touched.
    pub records: Option<u64>,
    /// Whether PHI was read or written.
    pub phi: bool,
    /// Allowed by a break-glass grant: flagged for review.
    pub break_glass: bool,
    /// A stable reason code (for refusals), never free text.
    pub reason: Option<&'static str>,
    /// Why PHI was read, as the reader stated it (PHI reads only; left out of the
    /// canonical body when absent, so events written before it existed still verify).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purpose: Option<Purpose>,
}

/// The purpose a PHI reader states for a read (45 CFR 164.528 asks an accounting of
/// disclosures to give it). A fixed list, never free text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// Treatment of the individual.
    Treatment,
    /// Payment (claims processing, coordination of benefits).
    Payment,
    /// Health care operations (quality, audits, business management).
    Operations,
    /// Research (under a waiver or authorization).
    Research,
    /// Legal: a court order, subpoena or law-enforcement request.
    Legal,
    /// Anything else; the reviewer follows it up.
    Other,
}

impl Purpose {
    /// Every purpose.
    pub const ALL: [Self; 6] = [
        Self::Treatment,
        Self::Payment,
        Self::Operations,
        Self::Research,
        Self::Legal,
        Self::Other,
    ];

    /// The stable code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Treatment => "treatment",
            Self::Payment => "payment",
            Self::Operations => "operations",
            Self::Research => "research",
            Self::Legal => "legal",
            Self::Other => "other",
        }
    }

    /// The purpose named `code`.
    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.code() == code)
    }
}

impl AuditEvent {
    /// An event of `kind` with `outcome` and nothing else filled in.
    pub fn new(kind: EventKind, outcome: Outcome) -> Self {
        Self {
            kind,
            outcome,
            actor: None,
            role: None,
            provider: None,
            resource: None,
            request_id: None,
            client: None,
            records: None,
            phi: false,
            break_glass: false,
            reason: None,
            purpose: None,
        }
    }

    /// The canonical body of this event as event `seq` at `at`: JSON with a fixed field
    /// order, which is what the hash covers.
    pub fn canonical(&self, seq: i64, at: OffsetDateTime) -> Vec<u8> {
        #[derive(Serialize)]
        struct Body<'a> {
            v: u32,
            seq: i64,
            ts: String,
            kind: EventKind,
            review: bool,
            #[serde(flatten)]
            event: &'a AuditEvent,
        }
        serde_json::to_vec(&Body {
            v: ENCODING_VERSION,
            seq,
            ts: at.format(&Rfc3339).unwrap_or_default(),
            kind: self.kind,
            review: self.break_glass,
            event: self,
        })
        .unwrap_or_default()
    }
}

/// `SHA-256(prev_hash || body)`.
pub fn chain_hash(prev_hash: &[u8], body: &[u8]) -> Vec<u8> {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(prev_hash);
    ctx.update(body);
    ctx.finish().as_ref().to_vec()
}

/// A signed statement of the chain head: "event `seq` has hash `hash`".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The head's sequence number.
    pub seq: i64,
    /// The head's hash.
    pub hash: Vec<u8>,
    /// When it was signed.
    pub signed_at: OffsetDateTime,
    /// The Ed25519 public key that signed it.
    pub public_key: Vec<u8>,
    /// The signature of `Checkpoint::message_for`.
    pub signature: Vec<u8>,
}

impl Checkpoint {
    /// Signs the head `(seq, hash)` at `at`.
    pub fn sign(
        key: &crate::crypto::SigningKey,
        seq: i64,
        hash: Vec<u8>,
        at: OffsetDateTime,
    ) -> Self {
        // PostgreSQL keeps microseconds: sign what will be read back.
        let at = at
            .replace_nanosecond(at.nanosecond() / 1000 * 1000)
            .unwrap_or(at);
        let message = Self::message_for(seq, &hash, at);
        Self {
            seq,
            hash,
            signed_at: at,
            public_key: key.public_key(),
            signature: key.sign(&message),
        }
    }

    fn message_for(seq: i64, hash: &[u8], at: OffsetDateTime) -> Vec<u8> {
        format!(
            "claimgate audit checkpoint v1\n{seq}\n{}\n{}",
            hex::encode(hash),
            at.unix_timestamp_nanos()
        )
        .into_bytes()
    }

    /// Whether the signature holds for `public_key`.
    pub fn verifies(&self, public_key: &[u8]) -> bool {
        self.public_key == public_key
            && crate::crypto::verify_signature(
                public_key,
                &Self::message_for(self.seq, &self.hash, self.signed_at),
                &self.signature,
            )
    }
}

/// What is wrong with a stored trail, naming the first bad sequence number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    /// An event is missing, out of order, altered, or does not link to its predecessor.
    #[error("the audit chain is broken at sequence number {seq}")]
    Broken {
        /// The first event that does not verify (or the first missing number).
        seq: i64,
    },
    /// A checkpoint's signature does not verify with the configured key.
    #[error("the checkpoint at sequence number {seq} is not validly signed")]
    BadCheckpoint {
        /// The checkpoint's sequence number.
        seq: i64,
    },
    /// Events at or before a signed checkpoint are missing: the tail was cut.
    #[error("the trail ends before the signed checkpoint: sequence number {seq} is missing")]
    Truncated {
        /// The first missing sequence number.
        seq: i64,
    },
}

impl ChainBreak {
    /// The first bad sequence number.
    pub fn seq(&self) -> i64 {
        match self {
            Self::Broken { seq } | Self::BadCheckpoint { seq } | Self::Truncated { seq } => *seq,
        }
    }
}

/// Checks a stored trail: sequence numbers 1, 2, 3…, each `prev_hash` the previous
/// event's hash, each hash recomputed from its body. Returns the number of events.
pub fn verify_chain(events: &[crate::store::StoredAuditEvent]) -> Result<usize, ChainBreak> {
    let mut prev: &[u8] = &GENESIS_HASH;
    for (index, event) in events.iter().enumerate() {
        let expected_seq = i64::try_from(index).unwrap_or(i64::MAX).saturating_add(1);
        if event.seq != expected_seq {
            return Err(ChainBreak::Broken {
                seq: expected_seq.min(event.seq),
            });
        }
        let ok = event.prev_hash == prev && chain_hash(prev, event.body.as_bytes()) == event.hash;
        if !ok {
            return Err(ChainBreak::Broken { seq: event.seq });
        }
        prev = &event.hash;
    }
    Ok(events.len())
}

/// [`verify_chain`], then every checkpoint against `public_key` and against the events:
/// a checkpoint beyond the last event means the tail was removed.
pub fn verify_trail(
    events: &[crate::store::StoredAuditEvent],
    checkpoints: &[Checkpoint],
    public_key: &[u8],
) -> Result<usize, ChainBreak> {
    let count = verify_chain(events)?;
    for checkpoint in checkpoints {
        if !checkpoint.verifies(public_key) {
            return Err(ChainBreak::BadCheckpoint {
                seq: checkpoint.seq,
            });
        }
        let index = usize::try_from(checkpoint.seq.saturating_sub(1)).unwrap_or(usize::MAX);
        match events.get(index) {
            None => {
                return Err(ChainBreak::Truncated {
                    seq: i64::try_from(count).unwrap_or(i64::MAX).saturating_add(1),
                });
            }
            Some(event) if event.hash != checkpoint.hash => {
                return Err(ChainBreak::Broken { seq: event.seq });
            }
            Some(_) => {}
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_canonical_and_the_hash_chains() {
        let mut event = AuditEvent::new(EventKind::PhiRead, Outcome::Success);
        event.actor = Some(7);
        event.break_glass = true;
        let at = time::macros::datetime!(2026-11-27 12:00 UTC);
        let body = String::from_utf8(event.canonical(3, at)).unwrap_or_default();
        assert!(
            body.starts_with(
                r#"{"v":1,"seq":3,"ts":"2026-11-27T12:00:00Z","kind":"phi.read","review":true,"#
            ),
            "{body}"
        );
        let first = chain_hash(&GENESIS_HASH, body.as_bytes());
        assert_eq!(first.len(), 32);
        assert_ne!(chain_hash(&first, body.as_bytes()), first);
    }
}
