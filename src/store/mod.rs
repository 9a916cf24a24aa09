//! Storage: one interface over SQLite (the embedded default) and PostgreSQL (production).
//!
//! [`Store`] is an enum over the two backends; each method dispatches to `sqlite.rs` or
//! `postgres.rs`, which hold static SQL with every value bound (never spliced). Migrations
//! are embedded per backend and applied at start-up. Errors never carry row values:
//! database errors are reduced to their SQLSTATE code and constraint name.

mod claim_rows;
pub mod columns;
mod export_rows;
mod mapping_queries;
pub mod pg_copy;
mod postgres;
mod queries;
mod sqlite;
mod upload_rows;

pub use claim_rows::{
    ClaimKey, ClaimRow, IndexColumn, LineRow, SealedFileKey, SealedPhi, StoredPhi,
};
pub use export_rows::{ExportClaim, ExportSealed, ExportSelection, ExportStart, ExportView};
pub use upload_rows::{
    Batch, BatchTurn, ClaimedUpload, NewUpload, RejectRow, UploadCounts, UploadRow,
};

use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::migrate::Migrator;

use time::OffsetDateTime;

use crate::audit::{AuditEvent, Checkpoint, Clock, Journal};
use crate::authz::{
    Access, ApiKey, ExportAccess, KeyAdmin, KeyId, KeyRecord, Permission, PhiAccess, Principal,
    PrincipalAdmin, PrincipalKind, ProviderAdmin, Role,
};
use crate::config::DatabaseSettings;
use crate::formats::x12::InterchangeId;
use crate::mapping::versions::MappingVersion;
use crate::providers::{InterchangeControl, Provider, ProviderCode, ProviderName};

/// Migrations for SQLite, embedded at build time.
pub static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
/// Migrations for PostgreSQL, embedded at build time.
pub static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// A storage failure. Messages name the operation and the database target (without its
/// password), never a stored value.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL is neither `sqlite:` nor `postgres:`/`postgresql:`.
    #[error("database.url: unsupported scheme (use sqlite:// or postgres://)")]
    UnsupportedUrl,
    /// The URL could not be parsed.
    #[error("database.url: not a valid database URL")]
    BadUrl,
    /// The database could not be reached at start-up.
    #[error("database {target}: cannot connect: {reason}")]
    Connect {
        /// The database, password removed.
        target: String,
        /// Why.
        reason: String,
    },
    /// Applying migrations failed.
    #[error("database {target}: migration failed: {reason}")]
    Migrate {
        /// The database, password removed.
        target: String,
        /// Why.
        reason: String,
    },
    /// A unique constraint refused the write.
    #[error("already exists")]
    Conflict,
    /// The principal, key or grant named does not exist.
    #[error("not found")]
    NotFound,
    /// A grant names a provider that does not exist.
    #[error("unknown provider")]
    UnknownProvider,
    /// The audit event could not be recorded, so the action was not done (fail closed).
    #[error("the audit trail is unavailable")]
    AuditUnavailable,
    /// The capability presented is not for this operation.
    #[error("not permitted")]
    NotPermitted,
    /// A write sealed values under a data key that has since been destroyed or drained:
    /// seal them again under the current key.
    #[error("the data key was erased; seal again")]
    KeyErased,
    /// The worker no longer holds the upload's lease (it expired and another worker
    /// took the upload over), or the batch before this one was not committed: nothing of
    /// this batch was written.
    #[error("the upload's lease was lost")]
    LeaseLost,
    /// A PHI read was asked for without a stated purpose.
    #[error("a PHI read needs a stated purpose")]
    PurposeRequired,
    /// The provider is disabled: it sends no more files.
    #[error("the provider is disabled")]
    ProviderDisabled,
    /// A new file repeats an X12 interchange (sender, receiver and ISA13) that this
    /// upload of the provider already carried, and the provider's control numbers are
    /// unique: nothing was recorded.
    #[error("the interchange was received before, as upload {0}")]
    InterchangeReplay(String),
    /// A mapping version cannot make this move; the code says why
    /// (`mapping_not_draft`, `mapping_stale`, `mapping_own_draft`, `mapping_not_approved`).
    #[error("the mapping version cannot do that ({0})")]
    MappingRefused(&'static str),
    /// The database cannot be reached or is shutting down, starting up or busy: the
    /// action was not done and may be retried later.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The database's disk is full (SQLite `SQLITE_FULL`, PostgreSQL SQLSTATE 53100).
    #[error("the database's storage is full")]
    StorageFull,
    /// Any other database error.
    #[error("database error: {0}")]
    Database(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => Self::Conflict,
            sqlx::Error::Database(db)
                if sqlite_code(&**db) == Some(13) || db.code().as_deref() == Some("53100") =>
            {
                Self::StorageFull
            }
            _ if is_unavailable(&e) => Self::Unavailable(describe(&e)),
            _ => Self::Database(describe(&e)),
        }
    }
}

/// Whether `e` means the database is out of reach for now rather than that the statement
/// was wrong: the connection failed or broke, no connection came in time, the server is
/// shutting down or starting up (PostgreSQL SQLSTATE classes 08 and 57P), or SQLite's
/// lock stayed busy past the timeout.
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // SQLite: SQLITE_BUSY (5) and its extended codes.
        sqlx::Error::Database(db) if sqlite_code(&**db).is_some() => sqlite_code(&**db) == Some(5),
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
        _ => false,
    }
}

/// A SQLite error's primary result code (the extended code's low byte); `None` for
/// PostgreSQL, whose SQLSTATEs can look numeric too (42501 & 0xff is 5).
fn sqlite_code(db: &dyn sqlx::error::DatabaseError) -> Option<u32> {
    let sqlite: &dyn sqlx::error::DatabaseError =
        db.try_downcast_ref::<sqlx::sqlite::SqliteError>()?;
    sqlite.code()?.parse::<u32>().ok().map(|c| c & 0xff)
}

/// A value-free description of a sqlx error: database errors can quote row values in
/// their message or detail, so only the SQLSTATE code and constraint are kept.
pub fn describe(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => format!(
            "SQLSTATE {} {}",
            db.code().unwrap_or_default(),
            db.constraint()
                .map(|c| format!("(constraint {c})"))
                .unwrap_or_default()
        ),
        sqlx::Error::PoolTimedOut => "timed out waiting for a connection".into(),
        sqlx::Error::Io(io) => format!("I/O error: {}", io.kind()),
        sqlx::Error::Tls(_) => "TLS error".into(),
        sqlx::Error::Configuration(_) => "invalid database configuration".into(),
        sqlx::Error::Protocol(_) => "protocol error".into(),
        sqlx::Error::PoolClosed => "connection pool closed".into(),
        _ => "database driver error".into(),
    }
}

/// Whether the store can serve requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Reachable, and the schema is the one this build expects.
    Ready,
    /// The database did not answer in time.
    Unreachable,
    /// The database answered, but migrations are missing (or newer than this build).
    SchemaMismatch,
}

/// A role to grant.
#[derive(Debug)]
pub struct NewGrant<'a> {
    /// The role.
    pub role: Role,
    /// Limited to this provider (`None`: global).
    pub provider: Option<&'a ProviderCode>,
    /// When it lapses by itself.
    pub expires_at: Option<OffsetDateTime>,
    /// Emergency access.
    pub break_glass: bool,
    /// Why (break-glass grants), sealed under the provider's data key: it is free text
    /// and may name a patient. Stored with the grant, never in the audit trail.
    pub sealed_reason: Option<&'a [u8]>,
    /// Who granted it (`None`: the operator console).
    pub granted_by: Option<i64>,
}

/// A key to store.
#[derive(Debug)]
pub struct NewKey<'a> {
    /// The key (only its id and hash are stored).
    pub key: &'a ApiKey,
    /// When it stops authenticating.
    pub expires_at: Option<OffsetDateTime>,
}

/// A new principal with its grants and, optionally, a first key.
#[derive(Debug)]
pub struct NewPrincipal<'a> {
    /// Unique name.
    pub name: &'a str,
    /// `person` or `system`.
    pub kind: PrincipalKind,
    /// Role grants.
    pub grants: &'a [NewGrant<'a>],
    /// Its first API key.
    pub key: Option<NewKey<'a>>,
}

/// A principal as administrators see it.
#[derive(Debug)]
pub struct PrincipalView {
    /// The principal and all its grants (expired break-glass grants included).
    pub principal: Principal,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it was disabled.
    pub disabled_at: Option<OffsetDateTime>,
    /// Its keys (ids only).
    pub keys: Vec<KeyView>,
    /// SHA-256 fingerprints of its client certificates.
    pub certificates: Vec<String>,
    /// OpenSSH SHA-256 fingerprints (`SHA256:…`) of its SFTP keys.
    pub ssh_keys: Vec<String>,
}

/// A credential, other than an API key, that authenticates as a principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// A TLS client certificate (HTTPS).
    Certificate,
    /// An SSH public key (SFTP).
    SshKey,
}

/// A credential to map to a principal.
#[derive(Debug, Clone, Copy)]
pub enum NewCredential<'a> {
    /// A client certificate: SHA-256 of its DER, 64 lowercase hex.
    Certificate {
        /// The fingerprint.
        fingerprint: &'a str,
    },
    /// An SSH public key.
    SshKey {
        /// OpenSSH's `SHA256:` fingerprint.
        fingerprint: &'a str,
        /// Its algorithm (`ssh-ed25519`, `ecdsa-sha2-nistp256`, …).
        algorithm: &'a str,
        /// The key in OpenSSH's one-line form, without its comment.
        public_key: &'a str,
    },
}

/// An API key as administrators see it: never the secret or its hash.
#[derive(Debug)]
pub struct KeyView {
    /// The key id.
    pub key_id: String,
    /// Issued.
    pub created_at: OffsetDateTime,
    /// Expires.
    pub expires_at: Option<OffsetDateTime>,
    /// Revoked.
    pub revoked_at: Option<OffsetDateTime>,
}

/// One stored claim's identity.
#[derive(Debug)]
pub struct ClaimSummary {
    /// Stored id.
    pub id: i64,
    /// The sender's claim id.
    pub source_claim_id: String,
    /// When it was stored.
    pub created_at: OffsetDateTime,
}

/// One stored claim with its sealed PHI, its lines and its versions (a PHI reader's view).
#[derive(Debug)]
pub struct ClaimDetail {
    /// Identity and sealed PHI.
    pub phi: StoredPhi,
    /// `professional` or `institutional`.
    pub claim_type: String,
    /// Frequency code (1, 7, 8, …).
    pub frequency_code: String,
    /// The claim a replacement or void refers to.
    pub original_claim_id: Option<String>,
    /// Total charge in cents.
    pub total_charge_cents: Option<i64>,
    /// The lines, in order.
    pub lines: Vec<LineRow>,
    /// Every stored version of the claim, oldest first.
    pub versions: Vec<ClaimVersion>,
}

/// One stored version of a claim.
#[derive(Debug)]
pub struct ClaimVersion {
    /// Stored id.
    pub id: i64,
    /// The upload it came from.
    pub upload_id: String,
    /// Its record number there.
    pub record_no: i64,
    /// Frequency code.
    pub frequency_code: String,
    /// When it was stored.
    pub created_at: OffsetDateTime,
    /// When a later version replaced it (`None`: it is the current one).
    pub superseded_at: Option<OffsetDateTime>,
    /// A replacement or void that matched no earlier claim.
    pub unmatched: bool,
}

/// One recorded disclosure of identified claims, as the accounting of disclosures lists it.
#[derive(Debug)]
pub struct DisclosureRow {
    /// Its id (named by the `phi.read` audit event of the read).
    pub id: i64,
    /// When.
    pub occurred_at: OffsetDateTime,
    /// Who (`None`: the operator console).
    pub principal: Option<String>,
    /// Under which role.
    pub role: Option<String>,
    /// The stated purpose.
    pub purpose: String,
    /// `claims.list`, `claim.read` or `claims.search`.
    pub action: String,
    /// The request's id.
    pub request_id: Option<String>,
    /// Allowed by a break-glass grant.
    pub break_glass: bool,
    /// The member's claims it touched (stored ids).
    pub claim_ids: Vec<i64>,
}

/// One stored audit event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAuditEvent {
    /// Sequence number.
    pub seq: i64,
    /// Event code.
    pub kind: String,
    /// Canonical JSON body, byte for byte as hashed.
    pub body: String,
    /// Hash of the previous event.
    pub prev_hash: Vec<u8>,
    /// This event's hash.
    pub hash: Vec<u8>,
}

/// A data key to store: only its wrapped bytes.
#[derive(Debug)]
pub struct NewDataKey<'a> {
    /// The key id.
    pub key_id: &'a str,
    /// The fingerprint of the key-encryption key that wrapped it.
    pub kek_fingerprint: &'a str,
    /// The wrapped key.
    pub wrapped_key: &'a [u8],
    /// What it is for.
    pub purpose: KeyPurpose,
    /// `true`: a rotation, which retires the active key; `false`: the provider's first
    /// key for the purpose, refused with [`StoreError::Conflict`] when another request
    /// created one first (that key must not be retired: what it sealed may not be
    /// written yet, so a re-encryption pass would find nothing and erase it).
    pub replaces_active: bool,
}

/// What a data key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPurpose {
    /// Seals PHI fields and raw-file keys; rotates.
    Seal,
    /// Computes blind indexes; never rotates (the indexes would change).
    Index,
}

impl KeyPurpose {
    /// `seal` or `index`, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Seal => "seal",
            Self::Index => "index",
        }
    }
}

/// A raw file's record (its encrypted bytes live in the raw store).
#[derive(Debug)]
pub struct NewRawFile<'a> {
    /// The file id.
    pub file_id: &'a str,
    /// The per-file key, sealed under the provider's data key.
    pub sealed_key: &'a [u8],
    /// Size of the encrypted file.
    pub stored_bytes: i64,
    /// The data key that sealed `sealed_key`.
    pub data_key_id: &'a str,
}

/// A stored data key.
#[derive(Debug, Clone)]
pub struct StoredDataKey {
    /// The key id.
    pub key_id: String,
    /// Its provider's code.
    pub provider: String,
    /// The key-encryption key that wrapped it.
    pub kek_fingerprint: String,
    /// The wrapped key; `None` once destroyed.
    pub wrapped_key: Option<Vec<u8>>,
    /// Values it has sealed, as last recorded.
    pub sealed: i64,
    /// Created.
    pub created_at: OffsetDateTime,
    /// Rotated out: opens old values, seals nothing new.
    pub retired_at: Option<OffsetDateTime>,
    /// Destroyed (crypto-shredded).
    pub destroyed_at: Option<OffsetDateTime>,
    /// `seal` or `index`.
    pub purpose: String,
    /// Erased after re-encryption moved everything off it.
    pub drained_at: Option<OffsetDateTime>,
}

impl StoredDataKey {
    /// `active`, `retired`, `drained` or `destroyed`.
    pub fn state(&self) -> &'static str {
        if self.destroyed_at.is_some() {
            "destroyed"
        } else if self.drained_at.is_some() {
            "drained"
        } else if self.retired_at.is_some() {
            "retired"
        } else {
            "active"
        }
    }
}

/// The storage handle: a connection pool for the configured backend, the clock that
/// stamps audit events, and the audit journal each committed event is copied to.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
    clock: Clock,
    journal: Journal,
}

/// What writes one upload's batches. On SQLite it keeps one connection, with a large page
/// cache, for every transaction of the upload, and closes it when dropped; on PostgreSQL
/// each transaction takes a pooled connection.
#[derive(Debug, Default)]
pub struct BatchWriter {
    sqlite: Option<sqlx::pool::PoolConnection<sqlx::Sqlite>>,
}

/// Batches of one upload written into one open transaction; dropped uncommitted, it
/// rolls every one of them back.
#[derive(Debug)]
pub struct OpenBatches<'w> {
    tx: OpenTx<'w>,
    rows: usize,
    opened: std::time::Instant,
}

#[derive(Debug)]
enum OpenTx<'w> {
    Sqlite((sqlx::Transaction<'w, sqlx::Sqlite>, i64)),
    Postgres((sqlx::Transaction<'w, sqlx::Postgres>, i64)),
}

impl OpenBatches<'_> {
    /// Whether the transaction should be committed now under `plan`: it holds enough
    /// rows, or has held the write lock long enough.
    pub fn due(&self, plan: &BatchPlan) -> bool {
        self.rows >= plan.rows_per_transaction || self.opened.elapsed() >= plan.max_hold
    }
}

/// How a backend takes an upload's batches.
#[derive(Debug, Clone, Copy)]
pub struct BatchPlan {
    /// Batches written at once, each in its own transaction (more than one: each commits
    /// in turn).
    pub concurrent: usize,
    /// With one at a time: claims and rejects a transaction gathers before it commits.
    pub rows_per_transaction: usize,
    /// With one at a time: the longest a transaction stays open once it has a batch.
    pub max_hold: Duration,
    /// Batches the reading side may have ready ahead of the one being written.
    pub queued: usize,
}

#[derive(Debug, Clone)]
enum Backend {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

/// Calls the function of the same name in the backend's module with the pool first.
/// The provider an export may read, if the capability allows the view.
fn export_provider<'a>(
    access: &'a ExportAccess,
    view: ExportView<'_>,
) -> Result<&'a ProviderCode, StoreError> {
    match view {
        ExportView::Identified if !access.identified() => Err(StoreError::NotPermitted),
        _ => Ok(access.provider()),
    }
}

macro_rules! on_backend {
    ($self:ident, $f:ident($($arg:expr),*)) => {
        match &$self.backend {
            Backend::Sqlite(pool) => sqlite::$f(pool, $($arg),*).await,
            Backend::Postgres(pool) => postgres::$f(pool, $($arg),*).await,
        }
    };
}

impl Store {
    /// Connects to the configured database (creating a SQLite file and its directory if
    /// needed). Does not migrate.
    pub async fn connect(settings: &DatabaseSettings) -> Result<Self, StoreError> {
        let url = settings.url.expose_secret();
        let target = redacted(url);
        let connect_err = |e: sqlx::Error| StoreError::Connect {
            target: target.clone(),
            reason: describe(&e),
        };
        let backend = if url.starts_with("sqlite:") {
            sqlite::connect(url, settings, &target)
                .await
                .map(Backend::Sqlite)?
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            postgres::connect(url, settings)
                .await
                .map(Backend::Postgres)
                .map_err(connect_err)?
        } else {
            return Err(StoreError::UnsupportedUrl);
        };
        Ok(Self {
            backend,
            clock: Clock::system(),
            journal: Journal::disabled(),
        })
    }

    /// The same store, copying every committed audit event to `journal`.
    pub fn with_journal(mut self, journal: Journal) -> Self {
        self.journal = journal;
        self
    }

    /// The audit journal's health (failed writes, events waiting, events lost).
    pub fn journal_health(&self) -> crate::audit::JournalHealth {
        self.journal.health()
    }

    /// The same store, stamping audit events with `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The migrations for this backend.
    pub fn migrator(&self) -> &'static Migrator {
        match &self.backend {
            Backend::Sqlite(_) => &SQLITE_MIGRATIONS,
            Backend::Postgres(_) => &POSTGRES_MIGRATIONS,
        }
    }

    /// Applies pending migrations; a no-op when the schema is current.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let result = match &self.backend {
            Backend::Sqlite(pool) => SQLITE_MIGRATIONS.run(pool).await,
            Backend::Postgres(pool) => postgres::migrate(pool).await,
        };
        result.map_err(|e| StoreError::Migrate {
            target: self.backend_name().into(),
            reason: match e {
                sqlx::migrate::MigrateError::Execute(inner) => describe(&inner),
                other => other.to_string(),
            },
        })
    }

    /// Versions of the migrations recorded as applied, in order.
    pub async fn applied_migrations(&self) -> Result<Vec<i64>, StoreError> {
        Ok(on_backend!(self, applied_migrations())?)
    }

    /// Whether the database answers within `timeout` and its schema matches this build.
    pub async fn readiness(&self, timeout: Duration) -> Readiness {
        match tokio::time::timeout(timeout, self.applied_migrations()).await {
            Ok(Ok(applied)) => {
                let expected: Vec<i64> = self.migrator().iter().map(|m| m.version).collect();
                if applied == expected {
                    Readiness::Ready
                } else {
                    Readiness::SchemaMismatch
                }
            }
            Ok(Err(_)) | Err(_) => Readiness::Unreachable,
        }
    }

    /// `sqlite` or `postgres`.
    pub fn backend_name(&self) -> &'static str {
        match &self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// PostgreSQL: what is wrong with the role serving connections run as (superuser,
    /// `BYPASSRLS`, table owner, not the configured role), one line each; SQLite: nothing.
    pub async fn serving_role_problems(&self, role: &str) -> Result<Vec<String>, StoreError> {
        match &self.backend {
            Backend::Sqlite(_) => Ok(Vec::new()),
            Backend::Postgres(pool) => Ok(postgres::serving_role_problems(pool, role).await?),
        }
    }

    /// Creates a provider whose interchange control numbers are unique (the default);
    /// [`StoreError::Conflict`] if the code is taken.
    pub async fn create_provider(
        &self,
        admin: &ProviderAdmin,
        code: &ProviderCode,
        name: &ProviderName,
        audit: &AuditEvent,
    ) -> Result<Provider, StoreError> {
        self.create_provider_with(admin, code, name, InterchangeControl::default(), audit)
            .await
    }

    /// Creates a provider with the given interchange policy; [`StoreError::Conflict`] if
    /// the code is taken.
    pub async fn create_provider_with(
        &self,
        _: &ProviderAdmin,
        code: &ProviderCode,
        name: &ProviderName,
        interchange_control: InterchangeControl,
        audit: &AuditEvent,
    ) -> Result<Provider, StoreError> {
        let now = self.clock.now();
        on_backend!(
            self,
            create_provider(code, name, interchange_control, audit, &self.journal, now)
        )
    }

    /// Disables a provider: its files are refused from then on (files already received
    /// are still processed). Audited.
    pub async fn disable_provider(
        &self,
        _: &ProviderAdmin,
        code: &ProviderCode,
        audit: &AuditEvent,
    ) -> Result<Provider, StoreError> {
        let now = self.clock.now();
        on_backend!(self, disable_provider(code, audit, &self.journal, now))
    }

    /// Sets whether a provider's X12 interchange control numbers are unique (a new file
    /// repeating one is refused) or reused; audited. From then on: uploads received
    /// under `reused` hold no identity against later files.
    pub async fn set_interchange_control(
        &self,
        _: &ProviderAdmin,
        code: &ProviderCode,
        policy: InterchangeControl,
        audit: &AuditEvent,
    ) -> Result<Provider, StoreError> {
        let now = self.clock.now();
        on_backend!(
            self,
            set_interchange_control(code, policy, audit, &self.journal, now)
        )
    }

    /// All providers, by code.
    pub async fn list_providers(&self) -> Result<Vec<Provider>, StoreError> {
        on_backend!(self, list_providers())
    }

    /// One provider by code.
    pub async fn provider(&self, code: &ProviderCode) -> Result<Option<Provider>, StoreError> {
        on_backend!(self, provider(code))
    }

    /// How many principals exist (the dev bootstrap runs only when there are none).
    pub async fn count_principals(&self) -> Result<i64, StoreError> {
        on_backend!(self, count_principals())
    }

    /// Creates a principal with its grants and first key, and its audit event, in one
    /// transaction. [`StoreError::Conflict`] if the name is taken.
    pub async fn create_principal(
        &self,
        _: &PrincipalAdmin,
        new: &NewPrincipal<'_>,
        audit: &AuditEvent,
    ) -> Result<i64, StoreError> {
        let now = self.clock.now();
        on_backend!(self, create_principal(new, audit, &self.journal, now))
    }

    /// Grants a role to the principal `name`.
    pub async fn add_grant(
        &self,
        _: &PrincipalAdmin,
        name: &str,
        grant: &NewGrant<'_>,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        on_backend!(self, add_grant(name, grant, audit, &self.journal, now))
    }

    /// Revokes a role (global when `provider` is `None`); [`StoreError::NotFound`] if the
    /// principal does not hold it.
    pub async fn revoke_grant(
        &self,
        _: &PrincipalAdmin,
        name: &str,
        role: Role,
        provider: Option<&ProviderCode>,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        on_backend!(
            self,
            revoke_grant(name, role, provider, audit, &self.journal, now)
        )
    }

    /// Disables a principal: none of its credentials authenticate any more.
    pub async fn disable_principal(
        &self,
        _: &PrincipalAdmin,
        name: &str,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        on_backend!(self, disable_principal(name, audit, &self.journal, now))
    }

    /// Stores a new key for the principal `name`.
    pub async fn add_key(
        &self,
        _: &PrincipalAdmin,
        name: &str,
        key: &NewKey<'_>,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        on_backend!(self, add_key(name, key, audit, &self.journal, now))
    }

    /// Revokes a key at once.
    pub async fn revoke_key(
        &self,
        _: &PrincipalAdmin,
        key_id: &KeyId,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        on_backend!(self, revoke_key(key_id, audit, &self.journal, now))
    }

    /// Maps a client certificate or an SSH key to `name`.
    pub async fn add_credential(
        &self,
        _: &PrincipalAdmin,
        name: &str,
        credential: &NewCredential<'_>,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        on_backend!(
            self,
            add_credential(name, credential, audit, &self.journal, now)
        )
    }

    /// The record of one API key with its principal and grants.
    pub async fn api_key(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        on_backend!(self, api_key(id))
    }

    /// The enabled principal a certificate or SSH key fingerprint maps to.
    pub async fn principal_by_credential(
        &self,
        kind: CredentialKind,
        fingerprint: &str,
    ) -> Result<Option<Principal>, StoreError> {
        on_backend!(self, principal_by_credential(kind, fingerprint))
    }

    /// Every principal, by name.
    pub async fn list_principals(&self) -> Result<Vec<PrincipalView>, StoreError> {
        on_backend!(self, list_principals())
    }

    /// One principal by name.
    pub async fn principal(&self, name: &str) -> Result<Option<PrincipalView>, StoreError> {
        on_backend!(self, principal(name))
    }

    /// Grants the caller of `access` (which must be for
    /// [`Permission::EmergencyAccessRequest`] on a provider) `phi_reader` on that provider
    /// until `expires_at`, keeping the (sealed) reason with the grant.
    pub async fn grant_break_glass(
        &self,
        access: &Access,
        expires_at: OffsetDateTime,
        sealed_reason: &[u8],
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let (Permission::EmergencyAccessRequest, Some(provider)) =
            (access.permission, &access.provider)
        else {
            return Err(StoreError::NotPermitted);
        };
        let now = self.clock.now();
        let id = access.principal_id;
        let grant = NewGrant {
            role: Role::PhiReader,
            provider: Some(provider),
            expires_at: Some(expires_at),
            break_glass: true,
            sealed_reason: Some(sealed_reason),
            granted_by: Some(id),
        };
        on_backend!(
            self,
            grant_break_glass(id, &grant, audit, &self.journal, now)
        )
    }

    /// The provider's stored claims, read under its tenancy (row-level security on
    /// PostgreSQL); the PHI read is audited in the same transaction.
    pub async fn list_claims(
        &self,
        access: &PhiAccess,
        audit: &AuditEvent,
    ) -> Result<Vec<ClaimSummary>, StoreError> {
        let now = self.clock.now();
        on_backend!(
            self,
            list_claims(&access.provider, audit, &self.journal, now)
        )
    }

    /// Starts an export of `provider`'s claims (see [`ExportView`]): fixes what it may
    /// include and, in one committed transaction before any row is read, appends `audit`
    /// and either draws the configuration's missing pseudonyms (de-identified) or records
    /// every selected claim as disclosed (identified; `audit` must state a purpose).
    pub async fn start_export(
        &self,
        access: &ExportAccess,
        view: ExportView<'_>,
        selection: &ExportSelection,
        audit: &AuditEvent,
    ) -> Result<ExportStart, StoreError> {
        let now = self.clock.now();
        let provider = export_provider(access, view)?;
        on_backend!(
            self,
            start_export(provider, view, selection, audit, &self.journal, now)
        )
    }

    /// Streams the claims of an export started with [`Store::start_export`] to `sink`;
    /// returns the lines read.
    pub async fn export_claims(
        &self,
        access: &ExportAccess,
        view: ExportView<'_>,
        selection: &ExportSelection,
        start: ExportStart,
        sink: &tokio::sync::mpsc::Sender<Vec<ExportClaim>>,
    ) -> Result<u64, StoreError> {
        let provider = export_provider(access, view)?;
        on_backend!(
            self,
            export_claims(provider, view, selection, start.upto, sink)
        )
    }

    /// Stores claim rows and their lines under the provider's tenancy, in one transaction.
    pub async fn insert_claims(
        &self,
        provider: &ProviderCode,
        rows: &[ClaimRow],
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        on_backend!(self, insert_claims(provider, rows, now))
    }

    /// One claim's sealed PHI, read under the provider's tenancy and audited (`audit` is
    /// recorded in the same transaction); `None` when the provider has no such claim.
    pub async fn claim_phi(
        &self,
        access: &PhiAccess,
        id: i64,
        audit: &AuditEvent,
    ) -> Result<Option<ClaimDetail>, StoreError> {
        let now = self.clock.now();
        on_backend!(
            self,
            claim_phi(&access.provider, id, audit, &self.journal, now)
        )
    }

    /// Ids of the provider's claims whose blind index in `column` is `index`, recorded
    /// as a disclosure for the purpose `audit` states and audited.
    pub async fn find_claims(
        &self,
        access: &PhiAccess,
        (column, index): (IndexColumn, &[u8]),
        audit: &AuditEvent,
    ) -> Result<Vec<i64>, StoreError> {
        let now = self.clock.now();
        on_backend!(
            self,
            find_claims(&access.provider, (column, index), audit, &self.journal, now)
        )
    }

    /// The accounting of disclosures for one member of `provider` (by the blind index of
    /// the member id) in `[from, to)`, audited with `audit`.
    pub async fn disclosures_for_member(
        &self,
        provider: &ProviderCode,
        member_index: &[u8],
        range: (OffsetDateTime, OffsetDateTime),
        audit: &AuditEvent,
    ) -> Result<Vec<DisclosureRow>, StoreError> {
        let now = self.clock.now();
        on_backend!(
            self,
            disclosures_for_member(provider, member_index, range, audit, &self.journal, now)
        )
    }

    /// Up to `limit` of the provider's claims sealed by `key_id` (re-encryption).
    pub async fn phi_sealed_by(
        &self,
        _: &KeyAdmin,
        provider: &ProviderCode,
        key_id: &str,
        limit: i64,
    ) -> Result<Vec<StoredPhi>, StoreError> {
        on_backend!(self, phi_sealed_by(provider, key_id, limit))
    }

    /// Moves claims from `old_key_id` to values sealed by `new_key_id`; how many moved.
    pub async fn reseal_phi(
        &self,
        _: &KeyAdmin,
        provider: &ProviderCode,
        (old_key_id, new_key_id): (&str, &str),
        rows: &[(i64, SealedPhi)],
    ) -> Result<u64, StoreError> {
        on_backend!(self, reseal_phi(provider, old_key_id, new_key_id, rows))
    }

    /// The provider's raw files whose key `key_id` sealed.
    pub async fn file_keys_sealed_by(
        &self,
        _: &KeyAdmin,
        provider: &ProviderCode,
        key_id: &str,
    ) -> Result<Vec<SealedFileKey>, StoreError> {
        on_backend!(self, file_keys_sealed_by(provider, key_id))
    }

    /// Moves one raw file's key from `old_key_id` to its new sealing by `new_key_id`.
    pub async fn reseal_file_key(
        &self,
        _: &KeyAdmin,
        provider: &ProviderCode,
        (old_key_id, new_key_id): (&str, &str),
        file: &SealedFileKey,
    ) -> Result<u64, StoreError> {
        on_backend!(
            self,
            reseal_file_key(provider, old_key_id, new_key_id, file)
        )
    }

    /// Erases retired key `key_id` if nothing is sealed by it any more; audited.
    pub async fn drain_data_key(
        &self,
        _: &KeyAdmin,
        provider: &ProviderCode,
        key_id: &str,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let now = self.clock.now();
        on_backend!(
            self,
            drain_data_key(provider, key_id, audit, &self.journal, now)
        )
    }

    /// Records a received upload (audited). When the provider already sent the same file
    /// (SHA-256) or used the same idempotency key, that earlier upload is returned with
    /// `false` and nothing is recorded. A new file repeating an earlier upload's
    /// interchange is [`StoreError::InterchangeReplay`] when the provider's control
    /// numbers are unique.
    pub async fn create_upload(
        &self,
        provider: &ProviderCode,
        upload: &NewUpload<'_>,
        audit: &AuditEvent,
    ) -> Result<(UploadRow, bool), StoreError> {
        let now = self.clock.now();
        on_backend!(
            self,
            create_upload(provider, upload, audit, &self.journal, now)
        )
    }

    /// One upload; only the provider's own when `provider` is given.
    pub async fn upload(
        &self,
        provider: Option<&ProviderCode>,
        upload_id: &str,
    ) -> Result<Option<UploadRow>, StoreError> {
        on_backend!(self, upload(provider, upload_id))
    }

    /// The provider's upload sent with this idempotency key, if any.
    pub async fn upload_by_idempotency_key(
        &self,
        provider: &ProviderCode,
        key: &str,
    ) -> Result<Option<UploadRow>, StoreError> {
        on_backend!(self, upload_by_idempotency_key(provider, key))
    }

    /// The provider's upload that holds interchange `id` against later files (the
    /// provider's control numbers are unique and were when it was received), if any.
    pub async fn interchange_holder(
        &self,
        provider: &ProviderCode,
        id: &InterchangeId,
    ) -> Result<Option<String>, StoreError> {
        on_backend!(self, interchange_holder(provider, id))
    }

    /// The provider's upload of the file with this SHA-256, if any.
    pub async fn upload_by_sha256(
        &self,
        provider: &ProviderCode,
        sha256: &[u8],
    ) -> Result<Option<UploadRow>, StoreError> {
        on_backend!(self, upload_by_sha256(provider, sha256))
    }

    /// Uploads by state (the queue depth).
    pub async fn queue_depth(&self) -> Result<Vec<(String, i64)>, StoreError> {
        on_backend!(self, queue_depth())
    }

    /// Claims the next upload to process (or only `only`) for `owner`, holding it for
    /// `lease`: one waiting, or one whose lease expired.
    pub async fn claim_upload(
        &self,
        owner: &str,
        lease: Duration,
        only: Option<&str>,
    ) -> Result<Option<ClaimedUpload>, StoreError> {
        let now = self.clock.now();
        on_backend!(self, claim_upload(owner, only, now + lease, now))
    }

    /// The highest reject ordinal committed for an upload (a resumed run skips those).
    pub async fn reject_ordinal(
        &self,
        provider: &ProviderCode,
        upload_id: &str,
    ) -> Result<i64, StoreError> {
        on_backend!(self, reject_ordinal(provider, upload_id))
    }

    /// Opens a write transaction for batches of `provider`'s upload, through the upload's
    /// `writer`.
    pub async fn begin_batches<'w>(
        &self,
        writer: &'w mut BatchWriter,
        provider: &ProviderCode,
    ) -> Result<OpenBatches<'w>, StoreError> {
        let tx = match &self.backend {
            Backend::Sqlite(pool) => {
                let conn = match writer.sqlite.take() {
                    Some(conn) => conn,
                    None => sqlite::batch_connection(pool).await?,
                };
                let conn = writer.sqlite.insert(conn);
                OpenTx::Sqlite(sqlite::begin_batches_on(conn, provider).await?)
            }
            Backend::Postgres(pool) => {
                OpenTx::Postgres(postgres::begin_batches(pool, provider).await?)
            }
        };
        Ok(OpenBatches {
            tx,
            rows: 0,
            opened: std::time::Instant::now(),
        })
    }

    /// Writes a batch with its checkpoint into `open` while `owner` holds the lease
    /// (extended by `lease`), in its `turn`; returns how many replacements or voids in it
    /// matched no earlier claim. Nothing is visible until [`Store::commit_batches`].
    pub async fn write_batch(
        &self,
        open: &mut OpenBatches<'_>,
        (upload_id, owner): (&str, &str),
        lease: Duration,
        batch: &Batch,
        turn: BatchTurn,
    ) -> Result<i64, StoreError> {
        let now = self.clock.now();
        let unmatched = match &mut open.tx {
            OpenTx::Sqlite(tx) => {
                sqlite::write_batch(tx, upload_id, owner, now + lease, batch, turn, now).await?
            }
            OpenTx::Postgres(tx) => {
                postgres::write_batch(tx, upload_id, owner, now + lease, batch, turn, now).await?
            }
        };
        open.rows += batch.claims.len() + batch.rejects.len();
        Ok(unmatched)
    }

    /// Commits every batch written into `open`, with the last one's checkpoint.
    pub async fn commit_batches(&self, open: OpenBatches<'_>) -> Result<(), StoreError> {
        match open.tx {
            OpenTx::Sqlite((tx, _)) => tx.commit().await?,
            OpenTx::Postgres((tx, _)) => tx.commit().await?,
        }
        Ok(())
    }

    /// Writes and commits one batch in its own transaction (see [`Store::write_batch`]).
    pub async fn commit_batch(
        &self,
        (provider, upload_id, owner): (&ProviderCode, &str, &str),
        lease: Duration,
        batch: &Batch,
        turn: BatchTurn,
    ) -> Result<i64, StoreError> {
        let mut writer = BatchWriter::default();
        let mut open = self.begin_batches(&mut writer, provider).await?;
        let unmatched = self
            .write_batch(&mut open, (upload_id, owner), lease, batch, turn)
            .await?;
        self.commit_batches(open).await?;
        Ok(unmatched)
    }

    /// How batches of one upload are best written on this backend.
    pub fn batch_plan(&self) -> BatchPlan {
        match &self.backend {
            // One writer. Each commit writes every page its rows touched to the WAL
            // again, and the random blind indexes put a transaction's claims on about as
            // many index pages as it has claims: against a bare load of 1 million lines,
            // commits of 2,000 claims measured 1.32–1.46×, of 10,000 0.97–1.16×, of
            // 20,000 1.02–1.14×; but the ingest's peak RSS grows with the transaction
            // (75, 90–105, 120–140 MiB). Other writers wait at most `max_hold` (plus one
            // batch) for the lock. All of an upload's transactions run on one connection
            // (`BatchWriter`), whose page cache stays warm from one commit to the next.
            Backend::Sqlite(_) => BatchPlan {
                concurrent: 1,
                rows_per_transaction: 10_000,
                max_hold: Duration::from_secs(1),
                // Each batch held costs memory; one ready is enough to keep the writer busy.
                queued: 1,
            },
            // One backend writes its rows while the other finishes and commits.
            Backend::Postgres(_) => BatchPlan {
                concurrent: 2,
                rows_per_transaction: 0,
                max_hold: Duration::ZERO,
                queued: 2,
            },
        }
    }

    /// Marks an upload done (`failure` `None`) or failed with a code, with its 999
    /// acknowledgement when there is one, audited.
    pub async fn finish_upload(
        &self,
        upload_id: &str,
        owner: &str,
        (failure, ack): (Option<&str>, Option<&str>),
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        on_backend!(
            self,
            finish_upload(upload_id, owner, (failure, ack), audit, &self.journal, now)
        )
    }

    /// Up to `limit` syntax findings (`x12.…`) of an upload: (segment number, code).
    pub async fn syntax_findings(
        &self,
        provider: &ProviderCode,
        upload_id: &str,
        limit: i64,
    ) -> Result<Vec<(String, String)>, StoreError> {
        on_backend!(self, syntax_findings(provider, upload_id, limit))
    }

    /// An upload's 999 acknowledgement (X12 uploads, once processed).
    pub async fn upload_ack(
        &self,
        provider: &ProviderCode,
        upload_id: &str,
    ) -> Result<Option<String>, StoreError> {
        on_backend!(self, upload_ack(provider, upload_id))
    }

    /// Stored claims of an upload and how many of its records have rejects.
    pub async fn upload_outcome(
        &self,
        provider: &ProviderCode,
        upload_id: &str,
    ) -> Result<(i64, i64), StoreError> {
        on_backend!(self, upload_outcome(provider, upload_id))
    }

    /// Up to `limit` rejects of an upload after ordinal `after`.
    pub async fn rejects(
        &self,
        provider: &ProviderCode,
        upload_id: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<RejectRow>, StoreError> {
        on_backend!(self, rejects(provider, upload_id, after, limit))
    }

    /// The content of the provider's active mapping version (`None`: none is active).
    pub async fn active_mapping(
        &self,
        provider: &ProviderCode,
    ) -> Result<Option<String>, StoreError> {
        on_backend!(self, active_mapping(provider))
    }

    /// The provider's processed uploads (done or failed; ids, newest first, with whether
    /// each has a 999), at most `limit`.
    pub async fn finished_uploads(
        &self,
        provider: &ProviderCode,
        limit: i64,
    ) -> Result<Vec<(String, bool)>, StoreError> {
        on_backend!(self, finished_uploads(provider, limit))
    }

    /// The provider's most recent processed uploads (ids, newest first), at most `limit`.
    pub async fn recent_uploads(
        &self,
        provider: &ProviderCode,
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        on_backend!(self, recent_uploads(provider, limit))
    }

    /// Every version of the provider's mapping, oldest first.
    pub async fn mapping_versions(
        &self,
        provider: &ProviderCode,
    ) -> Result<Vec<MappingVersion>, StoreError> {
        on_backend!(self, mapping_versions(provider))
    }

    /// One version of the provider's mapping.
    pub async fn mapping_version(
        &self,
        provider: &ProviderCode,
        version: i32,
    ) -> Result<Option<MappingVersion>, StoreError> {
        on_backend!(self, mapping_version(provider, version))
    }

    /// Stores `content` as the provider's next mapping version, a draft by `author`;
    /// audited with the version and its content hash.
    pub async fn draft_mapping(
        &self,
        _: &ProviderAdmin,
        provider: &ProviderCode,
        (content, comment, author): (&str, &str, &str),
        audit: &AuditEvent,
    ) -> Result<MappingVersion, StoreError> {
        let now = self.clock.now();
        on_backend!(
            self,
            create_mapping_version(
                provider,
                (content, comment, author),
                false,
                audit,
                &self.journal,
                now
            )
        )
    }

    /// The operator console's assignment: `content` becomes the provider's next version
    /// and is active at once, without a second reviewer (the console holds the master
    /// key; the version records that no one approved it). Audited.
    pub async fn assign_mapping_from_console(
        &self,
        _: &ProviderAdmin,
        provider: &ProviderCode,
        content: &str,
        audit: &AuditEvent,
    ) -> Result<MappingVersion, StoreError> {
        let now = self.clock.now();
        on_backend!(
            self,
            create_mapping_version(
                provider,
                (
                    content,
                    "assigned by the operator console",
                    "operator-console"
                ),
                true,
                audit,
                &self.journal,
                now
            )
        )
    }

    /// Replaces a draft's content if it is still the content whose SHA-256 is `seen`.
    pub async fn edit_mapping_draft(
        &self,
        _: &ProviderAdmin,
        provider: &ProviderCode,
        (version, seen): (i32, &str),
        (content, comment): (&str, &str),
        audit: &AuditEvent,
    ) -> Result<MappingVersion, StoreError> {
        let now = self.clock.now();
        on_backend!(
            self,
            edit_mapping_draft(
                provider,
                (version, seen),
                (content, comment),
                audit,
                &self.journal,
                now
            )
        )
    }

    /// Approves a draft (content hash `seen`) by `approver`, who is not its author.
    pub async fn approve_mapping(
        &self,
        _: &ProviderAdmin,
        provider: &ProviderCode,
        (version, seen): (i32, &str),
        approver: &str,
        audit: &AuditEvent,
    ) -> Result<MappingVersion, StoreError> {
        let now = self.clock.now();
        on_backend!(
            self,
            approve_mapping_version(
                provider,
                (version, seen),
                approver,
                audit,
                &self.journal,
                now
            )
        )
    }

    /// Activates a reviewed version (a rollback when it was active before).
    pub async fn activate_mapping(
        &self,
        _: &ProviderAdmin,
        provider: &ProviderCode,
        version: i32,
        by: &str,
        audit: &AuditEvent,
    ) -> Result<MappingVersion, StoreError> {
        let now = self.clock.now();
        on_backend!(
            self,
            activate_mapping_version(provider, version, by, audit, &self.journal, now)
        )
    }

    /// Data keys of one provider, or of all (`None`), oldest first.
    pub async fn data_keys(
        &self,
        provider: Option<&ProviderCode>,
    ) -> Result<Vec<StoredDataKey>, StoreError> {
        on_backend!(self, data_keys(provider))
    }

    /// One data key by id.
    pub async fn data_key(&self, key_id: &str) -> Result<Option<StoredDataKey>, StoreError> {
        on_backend!(self, data_key(key_id))
    }

    /// Retires the provider's active data key and stores `new` as active, audited.
    pub async fn rotate_data_key(
        &self,
        _: &KeyAdmin,
        provider: &ProviderCode,
        new: &NewDataKey<'_>,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        on_backend!(
            self,
            rotate_data_key(provider, new, audit, &self.journal, now)
        )
    }

    /// Records a stored raw file (under the provider's tenancy).
    pub async fn insert_raw_file(
        &self,
        provider: &ProviderCode,
        file: &NewRawFile<'_>,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        on_backend!(self, insert_raw_file(provider, file, now))
    }

    /// The sealed key of one of the provider's raw files.
    pub async fn raw_file_key(
        &self,
        provider: &ProviderCode,
        file_id: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        on_backend!(self, raw_file_key(provider, file_id))
    }

    /// Records how many values each data key has sealed (counts only go up).
    pub async fn record_seal_counts(&self, counts: &[(String, i64)]) -> Result<(), StoreError> {
        on_backend!(self, record_seal_counts(counts))
    }

    /// Stores every live data key wrapped anew by the key-encryption key `kek_fingerprint`,
    /// in one transaction, audited.
    pub async fn rewrap_data_keys(
        &self,
        _: &KeyAdmin,
        rewrapped: &[(String, Vec<u8>)],
        kek_fingerprint: &str,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        on_backend!(
            self,
            rewrap_data_keys(rewrapped, kek_fingerprint, audit, &self.journal, now)
        )
    }

    /// Erases the provider's wrapped data keys (crypto-shredding), audited; how many.
    pub async fn destroy_data_keys(
        &self,
        _: &KeyAdmin,
        provider: &ProviderCode,
        audit: &AuditEvent,
    ) -> Result<u64, StoreError> {
        let now = self.clock.now();
        on_backend!(self, destroy_data_keys(provider, audit, &self.journal, now))
    }

    /// Appends one audit event on its own.
    pub async fn append_audit(&self, event: &AuditEvent) -> Result<i64, StoreError> {
        let now = self.clock.now();
        on_backend!(self, append_audit(event, &self.journal, now))
    }

    /// The chain head: the last event's sequence number and hash.
    pub async fn audit_head(&self) -> Result<Option<(i64, Vec<u8>)>, StoreError> {
        on_backend!(self, audit_head())
    }

    /// Up to `limit` events with `after_seq < seq <= until_seq`, in `[from, to)` when given,
    /// in sequence order.
    pub async fn audit_page(
        &self,
        after_seq: i64,
        until_seq: i64,
        window: (Option<OffsetDateTime>, Option<OffsetDateTime>),
        limit: i64,
    ) -> Result<Vec<StoredAuditEvent>, StoreError> {
        let (from, to) = window;
        on_backend!(self, audit_page(after_seq, until_seq, from, to, limit))
    }

    /// Signs the chain head into a checkpoint if it moved since the last one.
    pub async fn checkpoint(
        &self,
        key: &crate::crypto::SigningKey,
    ) -> Result<Option<Checkpoint>, StoreError> {
        let now = self.clock.now();
        on_backend!(self, checkpoint(key, now))
    }

    /// The newest event of `kind`, if any.
    pub async fn last_audit_event(
        &self,
        kind: crate::audit::EventKind,
    ) -> Result<Option<StoredAuditEvent>, StoreError> {
        on_backend!(self, last_audit_event(kind.code()))
    }

    /// Every checkpoint, in sequence order.
    pub async fn audit_checkpoints(&self) -> Result<Vec<Checkpoint>, StoreError> {
        on_backend!(self, audit_checkpoints())
    }

    /// The whole audit trail in sequence order (for verification and tests; the search
    /// and export API comes with the audit issue).
    pub async fn audit_events(&self) -> Result<Vec<StoredAuditEvent>, StoreError> {
        on_backend!(self, audit_events())
    }
}

/// The database URL without its password (and without query parameters), for messages.
pub fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("REDACTED"));
            }
            parsed.set_query(None);
            parsed.to_string()
        }
        Err(_) => "(unparseable database URL)".into(),
    }
}

/// The file of a `sqlite:` URL, if `url` is one.
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    use std::str::FromStr;
    url.starts_with("sqlite:")
        .then(|| sqlx::sqlite::SqliteConnectOptions::from_str(url).ok())
        .flatten()
        .map(|o| o.get_filename().to_owned())
}
