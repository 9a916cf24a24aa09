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

/// A write transaction. `BEGIN IMMEDIATE` takes the write lock at once, so two writers
/// queue on the busy timeout instead of failing when a read would upgrade to a write.
async fn begin_write(
    pool: &SqlitePool,
) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
    pool.begin_with("BEGIN IMMEDIATE").await
}

/// SQLite has no row-level security: tenancy is the queries' `WHERE` clauses, checked by
/// the application's capabilities. The transaction writes (the audit event).
async fn begin_tenant(
    pool: &SqlitePool,
    _provider: &crate::providers::ProviderCode,
) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
    begin_write(pool).await
}

/// SQLite has no roles: a plain transaction.
async fn begin_audit_read(
    pool: &SqlitePool,
) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
    pool.begin().await
}

/// Writers are serialised by `BEGIN IMMEDIATE` already.
async fn lock_audit_chain(
    _tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
) -> Result<(), sqlx::Error> {
    Ok(())
}

/// Whether data key `key_id` still has its wrapped bytes (writers are serialised, so the
/// answer holds until the transaction ends).
async fn lock_data_key(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    key_id: &str,
) -> Result<bool, sqlx::Error> {
    let live: Option<bool> =
        sqlx::query_scalar("SELECT wrapped_key IS NOT NULL FROM data_keys WHERE key_id = $1")
            .bind(key_id)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(live.unwrap_or(false))
}

/// Claims the oldest waiting upload, or one whose lease expired (its worker died), for
/// `owner` until `lease_until`. `BEGIN IMMEDIATE` serialises claimers: one at a time
/// finds and takes a job.
pub(super) async fn claim_upload(
    pool: &SqlitePool,
    owner: &str,
    only: Option<&str>,
    lease_until: time::OffsetDateTime,
    now: time::OffsetDateTime,
) -> Result<Option<crate::store::ClaimedUpload>, StoreError> {
    let mut tx = begin_write(pool).await?;
    let row = sqlx::query(
        "UPDATE uploads SET state = 'processing', lease_owner = $1, lease_expires_at = $2, \
         attempts = attempts + 1, started_at = $3 \
         WHERE upload_id = (SELECT upload_id FROM uploads WHERE ($4 IS NULL OR upload_id = $4) \
           AND (state = 'received' OR (state = 'processing' AND lease_expires_at < $3)) ORDER BY received_at, upload_id LIMIT 1) \
         RETURNING *, (SELECT code FROM providers WHERE id = uploads.provider_id) AS code, \
           (SELECT mapping FROM providers WHERE id = uploads.provider_id) AS mapping",
    )
    .bind(owner)
    .bind(lease_until)
    .bind(now)
    .bind(only)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    row.as_ref().map(claimed_from).transpose()
}

fn claimed_from(row: &sqlx::sqlite::SqliteRow) -> Result<crate::store::ClaimedUpload, StoreError> {
    use sqlx::Row as _;
    Ok(crate::store::ClaimedUpload {
        upload_id: row.try_get("upload_id")?,
        provider: row.try_get("code")?,
        mapping: row.try_get("mapping")?,
        checkpoint: row.try_get("checkpoint")?,
        counts: counts_from(row)?,
        attempts: row.try_get("attempts")?,
    })
}

/// Claims and lines as multi-row INSERTs (prepared and cached per connection) inside the
/// caller's transaction.
async fn write_claim_rows(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    provider_id: i64,
    rows: &[crate::store::ClaimRow],
    now: time::OffsetDateTime,
) -> Result<(), StoreError> {
    insert_claim_rows(tx, provider_id, rows, now).await
}

super::queries::portable_queries!(SqlitePool, sqlx::sqlite::SqliteRow, sqlx::Sqlite);
