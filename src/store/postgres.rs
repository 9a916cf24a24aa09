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
pub(super) async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    let mut conn = PgConnection::connect_with(&pool.connect_options()).await?;
    super::POSTGRES_MIGRATIONS.run(&mut conn).await?;
    conn.close().await?;
    Ok(())
}

/// What the serving role may not be, as one line per problem (empty: fine).
pub(super) async fn serving_role_problems(
    pool: &PgPool,
    role: &str,
) -> Result<Vec<String>, sqlx::Error> {
    let (user, superuser, bypass, owns, audit_member): (String, bool, bool, bool, bool) = sqlx::query_as(
        "SELECT current_user::text, r.rolsuper, r.rolbypassrls, \
         EXISTS (SELECT 1 FROM pg_tables t WHERE t.schemaname = current_schema() AND t.tableowner = current_user), \
         pg_has_role(session_user, 'claimgate_audit_writer', 'MEMBER') \
         AND pg_has_role(session_user, 'claimgate_auditor', 'MEMBER') \
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
    if !audit_member {
        problems
            .push("database.url: the login user must be a member of claimgate_audit_writer and claimgate_auditor".into());
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
           (SELECT mapping FROM providers WHERE id = u.provider_id) AS mapping",
    )
    .bind(owner)
    .bind(lease_until)
    .bind(now)
    .bind(only)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(claimed_from).transpose()
}

/// Claims and lines into the caller's transaction, each table with one `INSERT … SELECT
/// FROM unnest(…)` of column arrays sent in binary, checked by the tables' row-level
/// security like any insert. (COPY cannot target a table under row-level security; COPY
/// into a temporary staging table then `INSERT … SELECT` measured no faster, 1.9× a bare
/// COPY against 1.4–1.8× for this, and needs per-session tables.)
async fn write_claim_rows(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    provider_id: i64,
    rows: &[crate::store::ClaimRow],
    now: time::OffsetDateTime,
) -> Result<(), StoreError> {
    use super::columns::{CLAIM_COLUMNS, LINE_COLUMNS};
    type Texts = Vec<Option<String>>;
    let text = |f: &dyn Fn(&crate::store::ClaimRow) -> Option<String>| -> Texts {
        rows.iter().map(f).collect()
    };
    let date =
        |f: &dyn Fn(&crate::store::ClaimRow) -> Option<time::Date>| -> Vec<Option<time::Date>> {
            rows.iter().map(f).collect()
        };
    let int = |f: &dyn Fn(&crate::store::ClaimRow) -> Option<i64>| -> Vec<Option<i64>> {
        rows.iter().map(f).collect()
    };
    let mut query = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO claims ({CLAIM_COLUMNS}) SELECT * FROM unnest($1::bigint[], $2::text[], \
         $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], \
         $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[], \
         $17::text[], $18::text[], $19::text[], $20::date[], $21::date[], $22::date[], $23::date[], \
         $24::text[], $25::text[], $26::text[], $27::text[], $28::text[], $29::text[], $30::bigint[], \
         $31::bigint[], $32::bigint[], $33::int[], $34::text[], $35::bytea[], $36::bytea[], \
         $37::bytea[], $38::bytea[], $39::bytea[], $40::bytea[], $41::bytea[], $42::bytea[], \
         $43::bytea[], $44::timestamptz[])"
    )))
    .bind(vec![provider_id; rows.len()])
    .bind(text(&|r| Some(r.key.upload_id.clone())))
    .bind(int(&|r| Some(r.key.record_no)))
    .bind(text(&|r| Some(r.source_claim_id.clone())))
    .bind(text(&|r| Some(r.claim_type.to_owned())))
    .bind(text(&|r| Some(r.frequency_code.clone())))
    .bind(text(&|r| r.original_claim_id.clone()))
    .bind(text(&|r| r.payer_id.clone()))
    .bind(text(&|r| r.payer_name.clone()))
    .bind(text(&|r| r.plan.clone()))
    .bind(text(&|r| r.sex.clone()))
    .bind(text(&|r| r.state.clone()))
    .bind(text(&|r| r.billing_npi.clone()))
    .bind(text(&|r| r.billing_tin.clone()))
    .bind(text(&|r| r.rendering_npi.clone()))
    .bind(text(&|r| r.attending_npi.clone()))
    .bind(text(&|r| r.facility_npi.clone()))
    .bind(text(&|r| r.bill_type.clone()))
    .bind(text(&|r| r.place_of_service.clone()))
    .bind(date(&|r| r.statement_from))
    .bind(date(&|r| r.statement_through))
    .bind(date(&|r| r.admission_date))
    .bind(date(&|r| r.discharge_date))
    .bind(text(&|r| r.admit_type.clone()))
    .bind(text(&|r| r.admit_source.clone()))
    .bind(text(&|r| r.discharge_status.clone()))
    .bind(text(&|r| r.drg.clone()))
    .bind(text(&|r| Some(r.diagnoses.clone())))
    .bind(text(&|r| Some(r.procedures.clone())))
    .bind(int(&|r| r.total_charge_cents))
    .bind(int(&|r| r.paid_cents))
    .bind(int(&|r| r.allowed_cents))
    .bind(
        rows.iter()
            .map(|r| i32::try_from(r.lines.len()).unwrap_or(i32::MAX))
            .collect::<Vec<i32>>(),
    )
    .bind(text(&|r| Some(r.data_key_id.clone())));
    for column in 0..crate::store::SealedPhi::COLUMNS.len() {
        let sealed: Vec<Option<&[u8]>> = rows
            .iter()
            .map(|r| r.phi.values().get(column).copied().flatten())
            .collect();
        query = query.bind(sealed);
    }
    query
        .bind(
            rows.iter()
                .map(|r| r.member_index.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|r| r.person_index.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(vec![now; rows.len()])
        .execute(&mut **tx)
        .await?;

    let lines: Vec<(&crate::store::ClaimRow, usize, &crate::store::LineRow)> = rows
        .iter()
        .flat_map(|r| r.lines.iter().enumerate().map(move |(i, l)| (r, i + 1, l)))
        .collect();
    let ltext = |f: &dyn Fn(&crate::store::LineRow) -> Option<String>| -> Texts {
        lines.iter().map(|(_, _, l)| f(l)).collect()
    };
    let lint = |f: &dyn Fn(&crate::store::LineRow) -> Option<i64>| -> Vec<Option<i64>> {
        lines.iter().map(|(_, _, l)| f(l)).collect()
    };
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO claim_lines ({LINE_COLUMNS}) SELECT * FROM unnest($1::bigint[], $2::text[], \
         $3::bigint[], $4::int[], $5::int[], $6::date[], $7::date[], $8::text[], $9::text[], \
         $10::text[], $11::text[], $12::bigint[], $13::bigint[], $14::bigint[], $15::bigint[], \
         $16::text[], $17::text[])"
    )))
    .bind(vec![provider_id; lines.len()])
    .bind(
        lines
            .iter()
            .map(|(r, _, _)| r.key.upload_id.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        lines
            .iter()
            .map(|(r, _, _)| r.key.record_no)
            .collect::<Vec<_>>(),
    )
    .bind(
        lines
            .iter()
            .map(|(_, i, _)| i32::try_from(*i).unwrap_or(i32::MAX))
            .collect::<Vec<_>>(),
    )
    .bind(
        lines
            .iter()
            .map(|(_, _, l)| l.line_number)
            .collect::<Vec<_>>(),
    )
    .bind(
        lines
            .iter()
            .map(|(_, _, l)| l.service_from)
            .collect::<Vec<_>>(),
    )
    .bind(
        lines
            .iter()
            .map(|(_, _, l)| l.service_through)
            .collect::<Vec<_>>(),
    )
    .bind(ltext(&|l| l.procedure_code.clone()))
    .bind(ltext(&|l| Some(l.modifiers.clone())))
    .bind(ltext(&|l| l.revenue_code.clone()))
    .bind(ltext(&|l| l.ndc.clone()))
    .bind(lint(&|l| l.units_milli))
    .bind(lint(&|l| l.charge_cents))
    .bind(lint(&|l| l.paid_cents))
    .bind(lint(&|l| l.allowed_cents))
    .bind(ltext(&|l| l.rendering_npi.clone()))
    .bind(ltext(&|l| l.place_of_service.clone()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

super::queries::portable_queries!(PgPool, sqlx::postgres::PgRow, sqlx::Postgres);
