//! Storage: one interface over SQLite (the embedded default) and PostgreSQL (production).
//!
//! [`Store`] is an enum over the two backends; each method dispatches to `sqlite.rs` or
//! `postgres.rs`, which hold static SQL with every value bound (never spliced). Migrations
//! are embedded per backend and applied at start-up. Errors never carry row values:
//! database errors are reduced to their SQLSTATE code and constraint name.

mod postgres;
mod queries;
mod sqlite;

use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::migrate::Migrator;

use crate::authz::{ApiKey, KeyId, KeyRecord, Role};
use crate::config::DatabaseSettings;
use crate::providers::{Provider, ProviderCode, ProviderName};

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
    /// Any other database error.
    #[error("database error: {0}")]
    Database(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => Self::Conflict,
            _ => Self::Database(describe(&e)),
        }
    }
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

/// A new principal with one API key, as created by the bootstrap and (later) the admin API.
#[derive(Debug)]
pub struct NewPrincipal<'a> {
    /// Unique name.
    pub name: &'a str,
    /// `person` or `system`.
    pub kind: PrincipalKind,
    /// Global role grants.
    pub roles: &'a [Role],
    /// Its first API key.
    pub key: &'a ApiKey,
}

/// What kind of principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    /// A person.
    Person,
    /// A provider's or clearinghouse's system.
    System,
}

impl PrincipalKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Person => "person",
            Self::System => "system",
        }
    }
}

/// The storage handle: a connection pool for the configured backend.
#[derive(Debug, Clone)]
pub enum Store {
    /// The embedded default.
    Sqlite(sqlx::SqlitePool),
    /// Production.
    Postgres(sqlx::PgPool),
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
        if url.starts_with("sqlite:") {
            sqlite::connect(url, settings, &target)
                .await
                .map(Self::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            postgres::connect(url, settings)
                .await
                .map(Self::Postgres)
                .map_err(connect_err)
        } else {
            Err(StoreError::UnsupportedUrl)
        }
    }

    /// The migrations for this backend.
    pub fn migrator(&self) -> &'static Migrator {
        match self {
            Self::Sqlite(_) => &SQLITE_MIGRATIONS,
            Self::Postgres(_) => &POSTGRES_MIGRATIONS,
        }
    }

    /// Applies pending migrations; a no-op when the schema is current.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let result = match self {
            Self::Sqlite(pool) => SQLITE_MIGRATIONS.run(pool).await,
            Self::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await,
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
        Ok(match self {
            Self::Sqlite(pool) => sqlite::applied_migrations(pool).await?,
            Self::Postgres(pool) => postgres::applied_migrations(pool).await?,
        })
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
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    /// Creates a provider; [`StoreError::Conflict`] if the code is taken.
    pub async fn create_provider(
        &self,
        code: &ProviderCode,
        name: &ProviderName,
    ) -> Result<Provider, StoreError> {
        let now = now();
        match self {
            Self::Sqlite(pool) => sqlite::create_provider(pool, code, name, now).await,
            Self::Postgres(pool) => postgres::create_provider(pool, code, name, now).await,
        }
    }

    /// All providers, by code.
    pub async fn list_providers(&self) -> Result<Vec<Provider>, StoreError> {
        match self {
            Self::Sqlite(pool) => sqlite::list_providers(pool).await,
            Self::Postgres(pool) => postgres::list_providers(pool).await,
        }
    }

    /// One provider by code.
    pub async fn provider(&self, code: &ProviderCode) -> Result<Option<Provider>, StoreError> {
        match self {
            Self::Sqlite(pool) => sqlite::provider(pool, code).await,
            Self::Postgres(pool) => postgres::provider(pool, code).await,
        }
    }

    /// How many principals exist (the dev bootstrap runs only when there are none).
    pub async fn count_principals(&self) -> Result<i64, StoreError> {
        match self {
            Self::Sqlite(pool) => sqlite::count_principals(pool).await,
            Self::Postgres(pool) => postgres::count_principals(pool).await,
        }
    }

    /// Creates a principal, its role grants and its first key in one transaction.
    pub async fn create_principal(&self, new: &NewPrincipal<'_>) -> Result<i64, StoreError> {
        let now = now();
        match self {
            Self::Sqlite(pool) => sqlite::create_principal(pool, new, now).await,
            Self::Postgres(pool) => postgres::create_principal(pool, new, now).await,
        }
    }

    /// The record of one API key with its principal and roles.
    pub async fn api_key(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        match self {
            Self::Sqlite(pool) => sqlite::api_key(pool, id).await,
            Self::Postgres(pool) => postgres::api_key(pool, id).await,
        }
    }
}

fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
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

/// Turns stored role names into roles, skipping names this build does not know.
fn roles_from(names: Vec<String>) -> Vec<Role> {
    names.iter().filter_map(|n| n.parse().ok()).collect()
}

/// The file of a `sqlite:` URL, if `url` is one.
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    use std::str::FromStr;
    url.starts_with("sqlite:")
        .then(|| sqlx::sqlite::SqliteConnectOptions::from_str(url).ok())
        .flatten()
        .map(|o| o.get_filename().to_owned())
}
