//! The SQLite backend: connection set-up, then the portable queries.

use std::os::unix::fs::DirBuilderExt;
use std::str::FromStr;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::config::DatabaseSettings;

/// Opens (creating if missing) the database file, in WAL mode with full sync and foreign keys.
pub(super) async fn connect(
    url: &str,
    settings: &DatabaseSettings,
    target: &str,
) -> Result<SqlitePool, StoreError> {
    let fail = |reason: String| StoreError::Connect {
        target: target.to_owned(),
        reason,
    };
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|_| StoreError::BadUrl)?
        .create_if_missing(true)
        .foreign_keys(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(settings.acquire_timeout);
    if let Some(dir) = options
        .get_filename()
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
    }
    SqlitePoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        .connect_with(options)
        .await
        .map_err(|e| fail(super::describe(&e)))
}

super::queries::portable_queries!(SqlitePool, sqlx::sqlite::SqliteRow);
