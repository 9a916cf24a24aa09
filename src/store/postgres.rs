//! The PostgreSQL backend: connection set-up, then the portable queries.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

use crate::config::DatabaseSettings;

/// Checks that the server answers, then makes the serving pool: every connection in it
/// assumes `settings.role` (`SET ROLE`), so requests run as a non-owner role under
/// row-level security. The pool is lazy because the role exists only once migrations ran.
pub(super) async fn connect(url: &str, settings: &DatabaseSettings) -> Result<PgPool, sqlx::Error> {
    let options = PgConnectOptions::from_str(url)?.application_name("claimgate");
    let probe = tokio::time::timeout(
        settings.acquire_timeout,
        PgConnection::connect_with(&options),
    )
    .await
    .map_err(|_| sqlx::Error::PoolTimedOut)??;
    probe.close().await?;
    let role = settings.role.clone();
    Ok(PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        .after_connect(move |conn, _| {
            let role = role.clone();
            Box::pin(async move {
                sqlx::query("SELECT set_config('role', $1, false)")
                    .bind(role)
                    .execute(conn)
                    .await
                    .map(|_| ())
            })
        })
        .connect_lazy_with(options))
}

/// Applies migrations on a connection of its own, as the login user (the schema owner),
/// never as the serving role.
///
/// Roles are cluster-wide: two databases of one cluster migrating at the same moment can
/// update the same role's row (`ALTER ROLE`, role grants), and PostgreSQL then fails one
/// with "tuple concurrently updated". Each migration runs in its own transaction, so the
/// failed one left nothing behind; it is retried a few times.
pub(super) async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    let mut attempt = 0u64;
    loop {
        let mut conn = PgConnection::connect_with(&pool.connect_options()).await?;
        let result = super::POSTGRES_MIGRATIONS.run(&mut conn).await;
        conn.close().await?;
        match result {
            Err(e) if attempt < 5 && is_shared_catalog_race(&e) => {
                attempt += 1;
                tracing::warn!(
                    attempt,
                    "a migration met a concurrent role change in another database; retrying"
                );
                tokio::time::sleep(std::time::Duration::from_millis(50 * attempt)).await;
            }
            other => return other,
        }
    }
}

/// Whether a migration failed because another database's migration changed the same
/// shared catalog row at the same time.
fn is_shared_catalog_race(e: &sqlx::migrate::MigrateError) -> bool {
    match e {
        sqlx::migrate::MigrateError::Execute(sqlx::Error::Database(db))
        | sqlx::migrate::MigrateError::ExecuteMigration(sqlx::Error::Database(db), _) => {
            db.message().contains("tuple concurrently updated")
        }
        _ => false,
    }
}

/// What the serving role may not be, as one line per problem (empty: fine).
pub(super) async fn serving_role_problems(
    pool: &PgPool,
    role: &str,
) -> Result<Vec<String>, sqlx::Error> {
    let (user, superuser, bypass, owns, members, ingest_bypass): (String, bool, bool, bool, bool, bool) = sqlx::query_as(
        "SELECT current_user::text, r.rolsuper, r.rolbypassrls, \
         EXISTS (SELECT 1 FROM pg_tables t WHERE t.schemaname = current_schema() AND t.tableowner = current_user), \
         pg_has_role(session_user, 'claimgate_audit_writer', 'MEMBER') \
         AND pg_has_role(session_user, 'claimgate_auditor', 'MEMBER') \
         AND pg_has_role(session_user, 'claimgate_ingest', 'MEMBER') \
         AND pg_has_role(session_user, 'claimgate_analyst', 'MEMBER'), \
         (SELECT rolbypassrls FROM pg_roles WHERE rolname = 'claimgate_ingest') \
         FROM pg_roles r WHERE r.rolname = current_user",
    )
    .fetch_one(pool)
    .await?;
    let mut problems = Vec::new();
    if user != role {
        problems.push(format!(
            "database.role: connections run as {user}, not {role}"
        ));
    }
    if superuser {
        problems.push(format!(
            "database.role: {user} is a superuser (row-level security would not apply)"
        ));
    }
    if bypass {
        problems.push(format!("database.role: {user} has BYPASSRLS"));
    }
    if owns {
        problems.push(format!(
            "database.role: {user} owns tables (owners can switch row-level security off)"
        ));
    }
    if !members {
        problems.push(
            "database.url: the login user must be a member of claimgate_audit_writer, claimgate_auditor, claimgate_ingest and claimgate_analyst"
                .into(),
        );
    }
    if !ingest_bypass {
        problems.push(
            "database: claimgate_ingest writes claims with COPY and needs BYPASSRLS; a superuser must run ALTER ROLE claimgate_ingest BYPASSRLS"
                .into(),
        );
    }
    Ok(problems)
}

async fn begin_write(
    pool: &PgPool,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
    pool.begin().await
}

/// A transaction scoped to one provider: row-level security sees only its rows (and none
/// when the code names no provider).
async fn begin_tenant(
    pool: &PgPool,
    provider: &crate::providers::ProviderCode,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "SELECT set_config('app.provider_id', \
         coalesce((SELECT id::text FROM providers WHERE code = $1), ''), true)",
    )
    .bind(provider.as_str())
    .execute(&mut *tx)
    .await?;
    Ok(tx)
}

/// Opens the write transaction that a batch of `provider`'s upload goes into.
pub(super) async fn begin_batches(
    pool: &PgPool,
    provider: &crate::providers::ProviderCode,
) -> Result<(sqlx::Transaction<'static, sqlx::Postgres>, i64), StoreError> {
    let mut tx = begin_tenant(pool, provider).await?;
    let provider_id = provider_id_in(&mut tx, provider).await?;
    Ok((tx, provider_id))
}

/// A read-only transaction as the auditor role, the only one that may read event bodies.
async fn begin_audit_read(
    pool: &PgPool,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL ROLE claimgate_auditor")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// Serialises appends (any role may take an advisory lock), then assumes the audit-writer
/// role for the rest of the transaction.
async fn lock_audit_chain(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(7235007)")
        .execute(&mut **tx)
        .await?;
    sqlx::query("SET LOCAL ROLE claimgate_audit_writer")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Whether data key `key_id` still has its wrapped bytes, holding a share lock on its row
/// until the transaction ends: draining or destroying the key (an UPDATE) waits for a
/// write that seals under it, and a write started after them sees the key erased.
async fn lock_data_key(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    key_id: &str,
) -> Result<bool, sqlx::Error> {
    let live: Option<bool> = sqlx::query_scalar(
        "SELECT wrapped_key IS NOT NULL FROM data_keys WHERE key_id = $1 FOR SHARE",
    )
    .bind(key_id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(live.unwrap_or(false))
}

/// The checkpoint of upload `upload_id` while `owner` processes it, with the row locked
/// until the transaction ends. A batch of the same upload that holds the row is waited
/// for, and the checkpoint read is the one it committed (a plain `UPDATE … WHERE
/// checkpoint = …` would instead skip the row on its older version without waiting).
async fn lock_upload_checkpoint(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    upload_id: &str,
    owner: &str,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT checkpoint FROM uploads WHERE upload_id = $1 AND lease_owner = $2 \
         AND state = 'processing' FOR NO KEY UPDATE",
    )
    .bind(upload_id)
    .bind(owner)
    .fetch_optional(&mut **tx)
    .await
}

/// Claims the oldest waiting upload, or one whose lease expired (its worker died), for
/// `owner` until `lease_until`. `FOR UPDATE SKIP LOCKED`: concurrent workers never claim
/// the same upload and never wait for each other.
pub(super) async fn claim_upload(
    pool: &PgPool,
    owner: &str,
    only: Option<&str>,
    lease_until: time::OffsetDateTime,
    now: time::OffsetDateTime,
) -> Result<Option<crate::store::ClaimedUpload>, StoreError> {
    let row = sqlx::query(
        "UPDATE uploads u SET state = 'processing', lease_owner = $1, lease_expires_at = $2, \
         attempts = attempts + 1, started_at = $3 \
         WHERE u.upload_id = (SELECT upload_id FROM uploads WHERE ($4 IS NULL OR upload_id = $4) \
           AND (state = 'received' OR (state = 'processing' AND lease_expires_at < $3)) \
           ORDER BY received_at, upload_id LIMIT 1 FOR UPDATE SKIP LOCKED) \
         RETURNING u.*, (SELECT code FROM providers WHERE id = u.provider_id) AS code, \
           (SELECT content FROM mapping_versions WHERE id = u.mapping_version_id) AS mapping",
    )
    .bind(owner)
    .bind(lease_until)
    .bind(now)
    .bind(only)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(claimed_from).transpose()
}

/// Claims and lines into the caller's transaction, each table with one binary `COPY`.
///
/// PostgreSQL refuses `COPY` into a table whose row-level security applies to the
/// writer, so the rest of the transaction runs as `claimgate_ingest`, which bypasses it
/// and reads no PHI column. What it writes is held to its tenant by keys instead: a
/// claim's provider must be its upload's, a line's its claim's (migration 0007).
async fn write_claim_rows(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    provider_id: i64,
    rows: &[crate::store::ClaimRow],
    now: time::OffsetDateTime,
) -> Result<(), StoreError> {
    use super::columns::{CLAIM_COLUMNS, LINE_COLUMNS};
    use super::pg_copy;
    sqlx::query("SET LOCAL ROLE claimgate_ingest")
        .execute(&mut **tx)
        .await?;
    let mut buffer = Vec::with_capacity(rows.len() * 768);
    pg_copy::header(&mut buffer);
    pg_copy::claim_rows(&mut buffer, provider_id, rows, now);
    pg_copy::trailer(&mut buffer);
    let mut copy = tx
        .copy_in_raw(&format!(
            "COPY claims ({CLAIM_COLUMNS}) FROM STDIN (FORMAT binary)"
        ))
        .await?;
    copy.send(buffer.as_slice()).await?;
    copy.finish().await?;
    buffer.clear();
    pg_copy::header(&mut buffer);
    pg_copy::line_rows(&mut buffer, provider_id, rows);
    pg_copy::trailer(&mut buffer);
    let mut copy = tx
        .copy_in_raw(&format!(
            "COPY claim_lines ({LINE_COLUMNS}) FROM STDIN (FORMAT binary)"
        ))
        .await?;
    copy.send(buffer.as_slice()).await?;
    copy.finish().await?;
    Ok(())
}

/// The de-identified export reads the analyst view, as the analyst role.
const DEIDENTIFIED_EXPORT: &str = super::columns::POSTGRES_DEIDENTIFIED_EXPORT;
/// The identified export reads the tables, as the serving role.
const IDENTIFIED_EXPORT: &str = super::columns::POSTGRES_IDENTIFIED_EXPORT;
/// The view takes the configuration from the session (`app.export_configuration`).
const DEIDENTIFIED_BINDS_CONFIGURATION: bool = false;

/// The read transaction of an export, with the provider's id: under its tenancy, without
/// parallel workers (they would interleave claims' lines); for a de-identified export
/// also naming the selection and the configuration whose pseudonyms the analyst view
/// shows, and as `claimgate_analyst`, which can read that view and no table of the claim
/// store.
async fn begin_export_read(
    pool: &PgPool,
    provider: &crate::providers::ProviderCode,
    configuration: Option<&str>,
    (selection, upto): (&crate::store::ExportSelection, i64),
) -> Result<(sqlx::Transaction<'static, sqlx::Postgres>, i64), StoreError> {
    let mut tx = begin_tenant(pool, provider).await?;
    let provider_id: i64 = sqlx::query_scalar("SELECT id FROM providers WHERE code = $1")
        .bind(provider.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::UnknownProvider)?;
    sqlx::query("SET LOCAL max_parallel_workers_per_gather = 0")
        .execute(&mut *tx)
        .await?;
    if let Some(configuration) = configuration {
        let date = |d: Option<time::Date>| d.map(|d| d.to_string()).unwrap_or_default();
        sqlx::query(
            "SELECT set_config('app.export_configuration', $1, true), \
             set_config('app.export_upto', $2, true), set_config('app.export_history', $3, true), \
             set_config('app.export_upload', $4, true), set_config('app.export_from', $5, true), \
             set_config('app.export_to', $6, true)",
        )
        .bind(configuration)
        .bind(upto.to_string())
        .bind(if selection.history { "on" } else { "off" })
        .bind(selection.upload.as_deref().unwrap_or_default())
        .bind(date(selection.from))
        .bind(date(selection.to))
        .execute(&mut *tx)
        .await?;
        sqlx::query("SET LOCAL ROLE claimgate_analyst")
            .execute(&mut *tx)
            .await?;
    }
    Ok((tx, provider_id))
}

/// Draws a random pseudonym (`gen_random_uuid`, from the server's strong random source)
/// for every member and claim id of the provider's claims up to `upto` that has none in
/// `configuration` yet.
async fn fill_pseudonyms(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    configuration: &str,
    provider_id: i64,
    upto: i64,
    now: time::OffsetDateTime,
) -> Result<(), StoreError> {
    for sql in [
        "INSERT INTO export_pseudonyms (configuration, provider_id, kind, subject, pseudonym, created_at) \
         SELECT $1, $2, 'member', s.subject, replace(gen_random_uuid()::text, '-', ''), $4 \
         FROM (SELECT DISTINCT member_index AS subject FROM claims \
               WHERE provider_id = $2 AND id <= $3 AND member_index IS NOT NULL) s \
         WHERE NOT EXISTS (SELECT 1 FROM export_pseudonyms e WHERE e.configuration = $1 \
               AND e.provider_id = $2 AND e.kind = 'member' AND e.subject = s.subject) \
         ON CONFLICT DO NOTHING",
        "INSERT INTO export_pseudonyms (configuration, provider_id, kind, subject, pseudonym, created_at) \
         SELECT $1, $2, 'claim', s.subject, replace(gen_random_uuid()::text, '-', ''), $4 \
         FROM (SELECT DISTINCT convert_to(source_claim_id, 'UTF8') AS subject FROM claims \
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

super::queries::portable_queries!(PgPool, sqlx::postgres::PgRow, sqlx::Postgres);
super::mapping_queries::mapping_queries!(PgPool, sqlx::postgres::PgRow, sqlx::Postgres);
