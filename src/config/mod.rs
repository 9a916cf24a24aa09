//! Settings: the one tree of configuration every part of claimgate reads.
//!
//! Layers, later wins: built-in defaults for the profile → the TOML file → `CLAIMGATE_*`
//! environment variables (`CLAIMGATE_HTTP__LISTEN` sets `http.listen`; `DATABASE_URL` is
//! accepted for `database.url`). Every secret `x` may instead be given as `x_file`, a path
//! whose content is the value; giving both is an error. Unknown keys are errors that name
//! their path and where they came from. Secrets are [`SecretString`]s: `Debug` output of
//! [`Settings`] never shows them.
//!
//! Settings are passed explicitly to what needs them; there is no global configuration.

mod layers;
mod production;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

pub use layers::ConfigError;
pub use production::production_problems;

/// Which set of defaults and safety checks applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Local development: everything defaults to files under `./data/` and `certs-example/`.
    Dev,
    /// Production: refuses example certificates, loose key files and (by default) SQLite.
    Production,
}

/// TLS protocol profile of a listener (Mozilla Server Side TLS 6.0 names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsProfile {
    /// TLS 1.2 and 1.3, ECDHE + AEAD suites only: for senders on older Java/.NET stacks.
    Intermediate,
    /// TLS 1.3 only.
    Modern,
}

/// Whether the HTTPS listener asks for client certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// No certificate is requested.
    Off,
    /// A certificate is requested; if one is sent it must chain to `tls.client_ca_file`.
    Optional,
    /// A certificate chaining to `tls.client_ca_file` is required to complete the handshake.
    Required,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable single lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Active profile.
    pub profile: Profile,
    /// Directory for runtime data in the dev profile (database, generated master key).
    pub data_dir: PathBuf,
    /// HTTPS listener and request limits.
    pub http: HttpSettings,
    /// The SFTP listener.
    pub sftp: SftpSettings,
    /// Certificates and TLS policy.
    pub tls: TlsSettings,
    /// Database connection.
    pub database: DatabaseSettings,
    /// Key material.
    pub keys: KeySettings,
    /// Authentication and authorization.
    pub auth: AuthSettings,
    /// The audit trail.
    pub audit: AuditSettings,
    /// Ingest: uploads, the raw store, workers.
    pub ingest: IngestSettings,
    /// Logging.
    pub log: LogSettings,
}

/// HTTPS listener and request limits.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Address to listen on (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Worker threads; 0 means one per core.
    pub workers: usize,
    /// Largest request body accepted on API routes, in bytes.
    pub max_body_bytes: u64,
    /// Largest sample file of a mapping preview, in bytes (held in memory while read).
    pub max_sample_bytes: u64,
    /// A request body must deliver at least `body_min_bytes_per_sec` in every window of this length.
    pub body_rate_window: Duration,
    /// Minimum body transfer rate, averaged over `body_rate_window`.
    pub body_min_bytes_per_sec: u64,
    /// Most simultaneous connections from one client address.
    pub max_connections_per_ip: usize,
    /// Time allowed to send the request head.
    pub request_head_timeout: Duration,
}

/// The embedded SFTP server (provider accounts are principals with SSH keys).
#[derive(Debug, Clone)]
pub struct SftpSettings {
    /// Address to listen on (port 0 picks a free port); `None`: no SFTP listener.
    pub listen: Option<SocketAddr>,
    /// The server's host key (OpenSSH private key file, ed25519 or ECDSA).
    pub host_key_file: PathBuf,
    /// Most simultaneous sessions of one provider.
    pub max_sessions_per_provider: usize,
    /// A session idle this long is closed.
    pub idle_timeout: Duration,
    /// Refused logins allowed per client address in `auth.failure_window`.
    pub max_auth_failures: u32,
}

/// Certificates and TLS policy.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// Protocol profile.
    pub profile: TlsProfile,
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key of the leaf.
    pub key_file: PathBuf,
    /// Client certificate policy.
    pub client_auth: ClientAuth,
    /// PEM CA certificate(s) that client certificates must chain to.
    pub client_ca_file: Option<PathBuf>,
}

/// Database connection.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// `sqlite://…` or `postgres://…`; may carry a password, so it is secret.
    pub url: SecretString,
    /// Permit SQLite in the production profile.
    pub allow_sqlite: bool,
    /// Pool size.
    pub max_connections: u32,
    /// How long to wait for a connection before a request fails (and `/readyz` says not ready).
    pub acquire_timeout: Duration,
    /// PostgreSQL: the role every serving connection assumes (`SET ROLE`); it must not be a
    /// superuser, have `BYPASSRLS` or own tables. Default `claimgate_api`.
    pub role: String,
}

/// Authentication and authorization.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// The casbin model (`policies/model.conf`).
    pub policy_model_file: PathBuf,
    /// The role → permission policy (`policies/policy.csv`).
    pub policy_file: PathBuf,
    /// Failed authentications allowed per client address and per key id in a window.
    pub max_failures: u32,
    /// The failure-counting window (and the lock-out after the limit).
    pub failure_window: Duration,
    /// Lifetime of a person's API key unless one is given (automatic logoff).
    pub person_key_ttl: Duration,
    /// Longest break-glass grant.
    pub break_glass_max: Duration,
}

/// Where a 32-byte key (the master key, the audit signing key) comes from.
#[derive(Debug, Clone)]
pub enum MasterKeySource {
    /// Given directly (64 hex characters) through `keys.master_key`.
    Inline(SecretString),
    /// A file holding 64 hex characters; in the dev profile it is generated if missing.
    File(PathBuf),
}

/// Key material.
#[derive(Debug, Clone)]
pub struct KeySettings {
    /// The master key.
    pub master_key: MasterKeySource,
    /// The Ed25519 seed that signs audit checkpoints and export manifests.
    pub audit_signing_key: MasterKeySource,
}

/// The audit trail.
#[derive(Debug, Clone)]
pub struct AuditSettings {
    /// Directory of the JSON-lines journal (daily files).
    pub dir: PathBuf,
    /// How often the chain head is signed into a checkpoint (when it moved).
    pub checkpoint_interval: Duration,
}

/// Ingest.
#[derive(Debug, Clone)]
pub struct IngestSettings {
    /// Directory of the encrypted raw store.
    pub raw_dir: PathBuf,
    /// Largest upload body, in bytes.
    pub max_upload_bytes: u64,
    /// Workers processing uploads in this process (0: none; another process does it).
    pub workers: usize,
    /// Claims (and rejects) per committed batch.
    pub batch_claims: usize,
    /// How long a worker holds an upload without committing before another may take it.
    pub lease: Duration,
    /// S3-compatible object storage for raw files (`None`: the local `raw_dir` keeps them).
    pub s3: Option<S3Settings>,
}

/// An S3-compatible bucket for the raw store. Raw files are encrypted before they leave
/// the process; `raw_dir` still holds a file while it is written or read.
#[derive(Debug, Clone)]
pub struct S3Settings {
    /// Bucket.
    pub bucket: String,
    /// Region (default `us-east-1`).
    pub region: String,
    /// Endpoint URL of an S3-compatible service (default: AWS).
    pub endpoint: Option<String>,
    /// Access key id (default: the environment's AWS credentials).
    pub access_key_id: Option<String>,
    /// Secret access key (`secret_access_key_file` to read it from a file).
    pub secret_access_key: Option<secrecy::SecretString>,
    /// Allow a plain-HTTP endpoint (local test servers only; refused in production).
    pub allow_http: bool,
}

/// Logging.
#[derive(Debug, Clone)]
pub struct LogSettings {
    /// A `tracing` filter, for example `info` or `claimgate=debug,info`.
    pub level: String,
    /// Line format.
    pub format: LogFormat,
}

impl Settings {
    /// Loads settings from an optional TOML file and the given environment.
    ///
    /// `env` is passed in (usually `std::env::vars()`) so that tests need not touch the
    /// process environment.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        layers::load(file, env)
    }

    /// Whether the database URL points at SQLite.
    pub fn uses_sqlite(&self) -> bool {
        use secrecy::ExposeSecret;
        self.database.url.expose_secret().starts_with("sqlite:")
    }
}
