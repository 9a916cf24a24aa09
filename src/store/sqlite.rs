//! The SQLite backend: connection set-up, then the portable queries.

use std::os::unix::fs::DirBuilderExt;
use std::str::FromStr;

use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, SqlitePool};

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
        .busy_timeout(settings.acquire_timeout)
        // 4 MiB of page cache a pooled connection: every connection of the pool keeps
        // its cache full for as long as it lives. An upload's writer takes more (see
        // `batch_connection`).
        .pragma("cache_size", "-4096");
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

/// 32 MiB of page cache for an upload's batch writer. Bulk loads that commit in batches
/// otherwise re-read index pages: against a bare load of 1 million lines, ingest
/// measured 1.7× with 2 MiB and 1.3× with 32 MiB.
const WRITER_CACHE: &str = "PRAGMA cache_size = -32768";

/// The connection an upload's batches are all written on, with a large page cache. One
/// connection for every transaction of the upload: SQLite drops a connection's cache
/// when another connection has written since it last read, so transactions spread over
/// the pool would each start cold, and every pooled connection would grow a large cache.
/// It is closed, not returned to the pool, when dropped, which frees that cache.
pub(super) async fn batch_connection(
    pool: &SqlitePool,
) -> Result<PoolConnection<sqlx::Sqlite>, StoreError> {
    let mut conn = pool.acquire().await?;
    conn.close_on_drop();
    sqlx::query(WRITER_CACHE).execute(&mut *conn).await?;
    Ok(conn)
}

/// Opens the write transaction that batches of `provider`'s upload go into, on the
/// upload's own connection.
pub(super) async fn begin_batches_on<'c>(
    conn: &'c mut PoolConnection<sqlx::Sqlite>,
    provider: &crate::providers::ProviderCode,
) -> Result<(sqlx::Transaction<'c, sqlx::Sqlite>, i64), StoreError> {
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let provider_id = provider_id_in(&mut tx, provider).await?;
    Ok((tx, provider_id))
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

/// The checkpoint of upload `upload_id` while `owner` processes it (writers are
/// serialised, so it holds until the transaction ends).
async fn lock_upload_checkpoint(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    upload_id: &str,
    owner: &str,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT checkpoint FROM uploads WHERE upload_id = $1 AND lease_owner = $2 AND state = 'processing'",
    )
    .bind(upload_id)
    .bind(owner)
    .fetch_optional(&mut **tx)
    .await
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
           (SELECT content FROM mapping_versions WHERE id = uploads.mapping_version_id) AS mapping",
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

/// Claims per multi-row INSERT (47 columns: under SQLite's 32,766 parameters).
const CLAIMS_PER_STATEMENT: usize = 500;
/// Lines per multi-row INSERT (17 columns).
const LINES_PER_STATEMENT: usize = 1_500;

/// Multi-row INSERTs of claims, then of their lines (a bounded number of rows per
/// statement), prepared and cached per connection, inside the caller's transaction.
async fn write_claim_rows(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    provider_id: i64,
    rows: &[crate::store::ClaimRow],
    now: time::OffsetDateTime,
) -> Result<(), StoreError> {
    for chunk in rows.chunks(CLAIMS_PER_STATEMENT) {
        let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO claims (provider_id, upload_id, record_no, source_claim_id, claim_type, \
             frequency_code, original_claim_id, payer_id, payer_name, plan, sex, state, billing_npi, \
             billing_tin, rendering_npi, attending_npi, facility_npi, bill_type, place_of_service, \
             statement_from, statement_through, admission_date, discharge_date, admit_type, \
             admit_source, discharge_status, drg, diagnoses, procedures, total_charge_cents, \
             paid_cents, allowed_cents, line_count, data_key_id, member_id, first_name, last_name, \
             birth_date, address, city, zip, member_index, person_index, created_at, deid_zip3, \
             deid_age) ",
        );
        insert.push_values(chunk, |mut b, r| {
            b.push_bind(provider_id)
                .push_bind(r.key.upload_id.as_str())
                .push_bind(r.key.record_no)
                .push_bind(r.source_claim_id.as_str())
                .push_bind(r.claim_type)
                .push_bind(r.frequency_code.as_str())
                .push_bind(r.original_claim_id.as_deref())
                .push_bind(r.payer_id.as_deref())
                .push_bind(r.payer_name.as_deref())
                .push_bind(r.plan.as_deref())
                .push_bind(r.sex.as_deref())
                .push_bind(r.state.as_deref())
                .push_bind(r.billing_npi.as_deref())
                .push_bind(r.billing_tin.as_deref())
                .push_bind(r.rendering_npi.as_deref())
                .push_bind(r.attending_npi.as_deref())
                .push_bind(r.facility_npi.as_deref())
                .push_bind(r.bill_type.as_deref())
                .push_bind(r.place_of_service.as_deref())
                .push_bind(r.statement_from)
                .push_bind(r.statement_through)
                .push_bind(r.admission_date)
                .push_bind(r.discharge_date)
                .push_bind(r.admit_type.as_deref())
                .push_bind(r.admit_source.as_deref())
                .push_bind(r.discharge_status.as_deref())
                .push_bind(r.drg.as_deref())
                .push_bind(r.diagnoses.as_str())
                .push_bind(r.procedures.as_str())
                .push_bind(r.total_charge_cents)
                .push_bind(r.paid_cents)
                .push_bind(r.allowed_cents)
                .push_bind(i32::try_from(r.lines.len()).unwrap_or(i32::MAX))
                .push_bind(r.data_key_id.as_str());
            for value in r.phi.values() {
                b.push_bind(value);
            }
            b.push_bind(r.member_index.as_deref())
                .push_bind(r.person_index.as_deref())
                .push_bind(now)
                .push_bind(r.deid_zip3.as_deref())
                .push_bind(r.deid_age);
        });
        insert.build().execute(&mut **tx).await?;
    }
    let lines: Vec<(&crate::store::ClaimRow, usize, &crate::store::LineRow)> = rows
        .iter()
        .flat_map(|r| r.lines.iter().enumerate().map(move |(i, l)| (r, i + 1, l)))
        .collect();
    for chunk in lines.chunks(LINES_PER_STATEMENT) {
        let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO claim_lines (provider_id, upload_id, record_no, ordinal, line_number, \
             service_from, service_through, procedure_code, modifiers, revenue_code, ndc, \
             units_milli, charge_cents, paid_cents, allowed_cents, rendering_npi, place_of_service) ",
        );
        insert.push_values(chunk, |mut b, (r, ordinal, l)| {
            b.push_bind(provider_id)
                .push_bind(r.key.upload_id.as_str())
                .push_bind(r.key.record_no)
                .push_bind(i32::try_from(*ordinal).unwrap_or(i32::MAX))
                .push_bind(l.line_number)
                .push_bind(l.service_from)
                .push_bind(l.service_through)
                .push_bind(l.procedure_code.as_deref())
                .push_bind(l.modifiers.as_str())
                .push_bind(l.revenue_code.as_deref())
                .push_bind(l.ndc.as_deref())
                .push_bind(l.units_milli)
                .push_bind(l.charge_cents)
                .push_bind(l.paid_cents)
                .push_bind(l.allowed_cents)
                .push_bind(l.rendering_npi.as_deref())
                .push_bind(l.place_of_service.as_deref());
        });
        insert.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// The de-identified export on SQLite: the base tables with the configuration's
/// pseudonyms, no sealed column.
const DEIDENTIFIED_EXPORT: &str = super::columns::SQLITE_DEIDENTIFIED_EXPORT;
/// The identified export on SQLite.
const IDENTIFIED_EXPORT: &str = super::columns::SQLITE_IDENTIFIED_EXPORT;
/// The configuration is bound as `$7`.
const DEIDENTIFIED_BINDS_CONFIGURATION: bool = true;

/// The read transaction of an export, with the provider's id (SQLite has no roles; the
/// queries' `WHERE` clauses keep to the provider).
async fn begin_export_read(
    pool: &SqlitePool,
    provider: &crate::providers::ProviderCode,
    _configuration: Option<&str>,
    _selection: (&crate::store::ExportSelection, i64),
) -> Result<(sqlx::Transaction<'static, sqlx::Sqlite>, i64), StoreError> {
    let mut tx = pool.begin().await?;
    let provider_id: i64 = sqlx::query_scalar("SELECT id FROM providers WHERE code = $1")
        .bind(provider.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::UnknownProvider)?;
    Ok((tx, provider_id))
}

/// Draws a random pseudonym (`randomblob`) for every member and claim id of the
/// provider's claims up to `upto` that has none in `configuration` yet.
async fn fill_pseudonyms(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    configuration: &str,
    provider_id: i64,
    upto: i64,
    now: time::OffsetDateTime,
) -> Result<(), StoreError> {
    for sql in [
        "INSERT INTO export_pseudonyms (configuration, provider_id, kind, subject, pseudonym, created_at) \
         SELECT $1, $2, 'member', s.subject, lower(hex(randomblob(16))), $4 \
         FROM (SELECT DISTINCT member_index AS subject FROM claims \
               WHERE provider_id = $2 AND id <= $3 AND member_index IS NOT NULL) s \
         WHERE NOT EXISTS (SELECT 1 FROM export_pseudonyms e WHERE e.configuration = $1 \
               AND e.provider_id = $2 AND e.kind = 'member' AND e.subject = s.subject) \
         ON CONFLICT DO NOTHING",
        "INSERT INTO export_pseudonyms (configuration, provider_id, kind, subject, pseudonym, created_at) \
         SELECT $1, $2, 'claim', s.subject, lower(hex(randomblob(16))), $4 \
         FROM (SELECT DISTINCT CAST(source_claim_id AS BLOB) AS subject FROM claims \
               WHERE provider_id = $2 AND id <= $3) s \
         WHERE NOT EXISTS (SELECT 1 FROM export_pseudonyms e WHERE e.configuration = $1 \
               AND e.provider_id = $2 AND e.kind = 'claim' AND e.subject = s.subject) \
         ON CONFLICT DO NOTHING",
    ] {
        sqlx::query(sql)
            .bind(configuration)
            .bind(provider_id)
            .bind(upto)
            .bind(now)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

super::queries::portable_queries!(SqlitePool, sqlx::sqlite::SqliteRow, sqlx::Sqlite);
super::mapping_queries::mapping_queries!(SqlitePool, sqlx::sqlite::SqliteRow, sqlx::Sqlite);
