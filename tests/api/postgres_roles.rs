//! PostgreSQL roles (DESIGN.md §4): each role can do what it is for and is refused what it
//! is not; row-level security scopes claims to one provider for every role but the ingest
//! writer, whose rows keys bind to their upload's provider; the audit table refuses
//! UPDATE, DELETE and TRUNCATE even to its owner.

use claimgate::config::Settings;
use claimgate::store::Store;
use sqlx::{Connection, PgConnection};

use crate::helpers::*;

/// Runs `sql` as `role` (optionally scoped to a provider) in a transaction that is rolled
/// back; returns the number of rows returned or affected, or the SQLSTATE.
async fn as_role(
    conn: &mut PgConnection,
    role: &str,
    provider: Option<i64>,
    sql: &'static str,
) -> Result<u64, String> {
    let mut tx = conn.begin().await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("SET LOCAL ROLE {role}")))
        .execute(&mut *tx)
        .await
        .unwrap();
    if let Some(p) = provider {
        sqlx::query("SELECT set_config('app.provider_id', $1, true)")
            .bind(p.to_string())
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    let outcome = match sqlx::raw_sql(sql).fetch_all(&mut *tx).await {
        Ok(rows) if !rows.is_empty() => Ok(rows.len() as u64),
        Ok(_) => Ok(0),
        Err(sqlx::Error::Database(e)) => Err(e.code().unwrap_or_default().into_owned()),
        Err(e) => Err(e.to_string()),
    };
    tx.rollback().await.unwrap();
    outcome
}

/// Rows of the analyst view as `claimgate_analyst`, with the tenant and the export's
/// newest claim id set (or not).
async fn view_rows(conn: &mut PgConnection, provider: Option<&str>, upto: Option<&str>) -> usize {
    let mut tx = conn.begin().await.unwrap();
    for (name, value) in [("app.provider_id", provider), ("app.export_upto", upto)] {
        if let Some(value) = value {
            sqlx::query("SELECT set_config($1, $2, true)")
                .bind(name)
                .bind(value)
                .execute(&mut *tx)
                .await
                .unwrap();
        }
    }
    sqlx::raw_sql("SET LOCAL ROLE claimgate_analyst")
        .execute(&mut *tx)
        .await
        .unwrap();
    let rows = sqlx::raw_sql("SELECT * FROM analyst_claim_lines")
        .fetch_all(&mut *tx)
        .await
        .unwrap()
        .len();
    tx.rollback().await.unwrap();
    rows
}

const DENIED: &str = "42501";
const FOREIGN_KEY: &str = "23503";

#[tokio::test]
async fn postgres_each_role_does_its_job_and_nothing_else() {
    let Some(admin) = postgres_admin_url("postgres_each_role_does_its_job_and_nothing_else").await
    else {
        return;
    };
    let db = TestDatabase::create(&admin).await;
    let dir = tempfile::tempdir().unwrap();
    let settings: Settings = test_settings(dir.path(), Some(&db.url), &[]);
    Store::connect(&settings.database)
        .await
        .unwrap()
        .migrate()
        .await
        .unwrap();

    let mut conn = PgConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql(
        "INSERT INTO providers (code, name) VALUES ('p1', 'One'), ('p2', 'Two');
         INSERT INTO data_keys (key_id, provider_id, kek_fingerprint, wrapped_key, created_at) VALUES ('k1', 1, 'f', '\\x00', now()), ('k2', 2, 'f', '\\x00', now());
         INSERT INTO uploads (upload_id, provider_id, sha256, size_bytes, state, received_at) VALUES ('u1', 1, '\\x01', 0, 'received', now()), ('u2', 2, '\\x02', 0, 'received', now());
         INSERT INTO claims (provider_id, upload_id, record_no, source_claim_id, claim_type, frequency_code, diagnoses, procedures, line_count, data_key_id, member_id, created_at) VALUES (1, 'u1', 1, 'c1', 'professional', '1', '', '', 0, 'k1', '\\x01', now()), (2, 'u2', 1, 'c2', 'professional', '1', '', '', 0, 'k2', '\\x02', now());
         INSERT INTO claim_lines (provider_id, upload_id, record_no, ordinal, line_number, modifiers) VALUES (1, 'u1', 1, 5, 1, ''), (2, 'u2', 1, 5, 1, '');
         INSERT INTO audit_events (seq, ts, kind, body, prev_hash, hash) VALUES (1, now(), 'server_start', '{}', '\\x00', '\\x01');",
    )
    .execute(&mut conn)
    .await
    .unwrap();

    let roles: Vec<(String, bool, bool, bool)> = sqlx::query_as(
        "SELECT rolname, rolcanlogin, rolsuper, rolbypassrls FROM pg_roles WHERE rolname LIKE 'claimgate\\_%' ORDER BY rolname",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let names: Vec<&str> = roles.iter().map(|r| r.0.as_str()).collect();
    for role in [
        "claimgate_analyst",
        "claimgate_api",
        "claimgate_audit_writer",
        "claimgate_auditor",
        "claimgate_ingest",
    ] {
        assert!(names.contains(&role), "{role} exists");
    }
    assert!(
        roles.iter().all(|r| !r.1 && !r.2),
        "group roles: no login, not superuser"
    );
    assert!(
        roles.iter().all(|r| r.3 == (r.0 == "claimgate_ingest")),
        "only the ingest writer bypasses row-level security (COPY needs it)"
    );

    // claimgate_ingest: writes claims with COPY, which row-level security would refuse, so
    // keys hold each row to its upload's provider; reads no PHI column; no audit.
    let ingest = "claimgate_ingest";
    assert_eq!(as_role(&mut conn, ingest, Some(1), "INSERT INTO claims (provider_id, upload_id, record_no, source_claim_id, claim_type, frequency_code, diagnoses, procedures, line_count, data_key_id, member_id, created_at) VALUES (1, 'u1', 2, 'c3', 'professional', '1', '', '', 0, 'k1', '\\x03', now())").await, Ok(0));
    assert_eq!(
        as_role(&mut conn, "claimgate_api", Some(1), "COPY claims (provider_id, upload_id, record_no, source_claim_id, claim_type, frequency_code, diagnoses, procedures, line_count, data_key_id, created_at) FROM STDIN").await,
        Err("0A000".into()),
        "the serving role, under row-level security, may not COPY"
    );
    assert_eq!(
        as_role(
            &mut conn,
            ingest,
            None,
            "SELECT id, source_claim_id, original_claim_id, frequency_code FROM claims"
        )
        .await,
        Ok(2),
        "the columns that link versions, of every provider"
    );
    assert_eq!(
        as_role(&mut conn, ingest, None, "SELECT payer_id FROM claims").await,
        Err(DENIED.into())
    );
    assert_eq!(as_role(&mut conn, ingest, None, "INSERT INTO claims (provider_id, upload_id, record_no, source_claim_id, claim_type, frequency_code, diagnoses, procedures, line_count, data_key_id, member_id, created_at) VALUES (2, 'u1', 9, 'x', 'professional', '1', '', '', 0, 'k2', '\\x00', now())").await, Err(FOREIGN_KEY.into()), "not under another provider than its upload's");
    assert_eq!(as_role(&mut conn, ingest, None, "INSERT INTO claim_lines (provider_id, upload_id, record_no, ordinal, line_number, modifiers) VALUES (2, 'u1', 1, 1, 1, '')").await, Err(FOREIGN_KEY.into()), "a line not under another provider than its claim's");
    assert_eq!(as_role(&mut conn, ingest, None, "INSERT INTO rejects (upload_id, provider_id, ordinal, record_no, line_no, byte_offset, code, severity, message) VALUES ('u1', 2, 1, 1, 1, 0, 'x', 'error', 'x')").await, Err(FOREIGN_KEY.into()), "a reject not under another provider than its upload's");
    assert_eq!(
        as_role(
            &mut conn,
            ingest,
            None,
            "UPDATE uploads SET provider_id = 2"
        )
        .await,
        Err(DENIED.into()),
        "an upload's owner never changes"
    );
    assert_eq!(
        as_role(&mut conn, ingest, None, "INSERT INTO uploads (upload_id, provider_id, sha256, size_bytes, state, received_at) VALUES ('u9', 2, '\\x09', 0, 'received', now())").await,
        Err(DENIED.into()),
        "uploads come only from the serving role"
    );
    assert_eq!(
        as_role(&mut conn, ingest, None, "UPDATE uploads SET checkpoint = 5").await,
        Ok(0),
        "it records progress"
    );
    assert_eq!(
        as_role(&mut conn, ingest, Some(1), "SELECT member_id FROM claims").await,
        Err(DENIED.into())
    );
    assert_eq!(as_role(&mut conn, ingest, Some(1), "INSERT INTO claims (provider_id, upload_id, record_no, source_claim_id, claim_type, frequency_code, diagnoses, procedures, line_count, data_key_id, member_id, created_at) VALUES (2, 'u2', 2, 'x', 'professional', '1', '', '', 0, 'k2', '\\x00', now())").await, Ok(0), "any upload's rows, under that upload's provider: the setting does not scope it");
    assert_eq!(
        as_role(
            &mut conn,
            ingest,
            Some(1),
            "UPDATE claims SET member_id = '\\x00'"
        )
        .await,
        Err(DENIED.into()),
        "ingest cannot rewrite sealed PHI"
    );
    assert_eq!(
        as_role(
            &mut conn,
            ingest,
            Some(1),
            "UPDATE data_keys SET wrapped_key = NULL"
        )
        .await,
        Err(DENIED.into()),
        "ingest cannot erase a key"
    );
    assert_eq!(
        as_role(
            &mut conn,
            ingest,
            Some(1),
            "UPDATE claims SET source_claim_id = 'x'"
        )
        .await,
        Err(DENIED.into())
    );
    assert_eq!(
        as_role(&mut conn, ingest, None, "SELECT seq FROM audit_events").await,
        Err(DENIED.into())
    );

    // claimgate_api: reads one provider's claims through RLS; nothing unscoped; no writes.
    let api = "claimgate_api";
    assert_eq!(
        as_role(&mut conn, api, Some(1), "SELECT * FROM claims").await,
        Ok(1),
        "only provider 1's claim"
    );
    assert_eq!(
        as_role(
            &mut conn,
            api,
            Some(2),
            "SELECT * FROM claims WHERE provider_id = 1"
        )
        .await,
        Ok(0)
    );
    assert_eq!(
        as_role(&mut conn, api, None, "SELECT * FROM claims").await,
        Ok(0),
        "unscoped sees nothing"
    );
    assert_eq!(
        as_role(
            &mut conn,
            api,
            Some(1),
            "UPDATE claims SET superseded_at = now() WHERE provider_id = 2 RETURNING id"
        )
        .await,
        Ok(0),
        "another provider's row cannot be updated"
    );
    assert_eq!(
        as_role(
            &mut conn,
            api,
            Some(1),
            "UPDATE claims SET superseded_at = now() RETURNING id"
        )
        .await,
        Ok(1),
        "without a WHERE clause, only the provider's own row"
    );
    assert_eq!(
        as_role(
            &mut conn,
            api,
            Some(1),
            "UPDATE claims SET provider_id = 2 RETURNING id"
        )
        .await,
        Err(DENIED.into()),
        "no other column may change"
    );
    // The serving process runs the ingest workers: it writes claims, but only its tenant's.
    assert_eq!(as_role(&mut conn, api, Some(1), "INSERT INTO claims (provider_id, upload_id, record_no, source_claim_id, claim_type, frequency_code, diagnoses, procedures, line_count, data_key_id, member_id, created_at) VALUES (1, 'u1', 3, 'x', 'professional', '1', '', '', 0, 'k1', '\\x00', now())").await, Ok(0));
    assert_eq!(as_role(&mut conn, api, Some(1), "INSERT INTO claims (provider_id, upload_id, record_no, source_claim_id, claim_type, frequency_code, diagnoses, procedures, line_count, data_key_id, member_id, created_at) VALUES (2, 'u2', 3, 'x', 'professional', '1', '', '', 0, 'k2', '\\x00', now())").await, Err(DENIED.into()));
    assert_eq!(
        as_role(&mut conn, api, Some(1), "DELETE FROM claims").await,
        Err(DENIED.into()),
        "stored claims are never deleted"
    );
    assert_eq!(
        as_role(&mut conn, api, None, "SELECT * FROM audit_events").await,
        Err(DENIED.into())
    );

    // claimgate_audit_writer: appends and reads the chain head; nothing else.
    let writer = "claimgate_audit_writer";
    assert_eq!(as_role(&mut conn, writer, None, "INSERT INTO audit_events (seq, ts, kind, body, prev_hash, hash) VALUES (2, now(), 'x', '{}', '\\x01', '\\x02')").await, Ok(0));
    assert_eq!(
        as_role(
            &mut conn,
            writer,
            None,
            "SELECT seq, hash FROM audit_events"
        )
        .await,
        Ok(1)
    );
    assert_eq!(
        as_role(&mut conn, writer, None, "SELECT body FROM audit_events").await,
        Err(DENIED.into())
    );
    assert_eq!(
        as_role(
            &mut conn,
            writer,
            None,
            "UPDATE audit_events SET kind = 'y'"
        )
        .await,
        Err(DENIED.into())
    );
    assert_eq!(
        as_role(&mut conn, writer, None, "DELETE FROM audit_events").await,
        Err(DENIED.into())
    );
    assert_eq!(
        as_role(&mut conn, writer, Some(1), "SELECT id FROM claims").await,
        Err(DENIED.into())
    );

    // claimgate_auditor: reads the audit trail, no claims, no writes.
    let auditor = "claimgate_auditor";
    assert_eq!(
        as_role(&mut conn, auditor, None, "SELECT * FROM audit_events").await,
        Ok(1)
    );
    assert_eq!(
        as_role(&mut conn, auditor, Some(1), "SELECT id FROM claims").await,
        Err(DENIED.into())
    );
    assert_eq!(as_role(&mut conn, auditor, None, "INSERT INTO audit_events (seq, ts, kind, body, prev_hash, hash) VALUES (3, now(), 'x', '{}', '\\x01', '\\x02')").await, Err(DENIED.into()));

    // claimgate_analyst (the de-identified export): one view, of the session's provider
    // only, without any sealed PHI column; no table of the claim store at all.
    let analyst = "claimgate_analyst";
    // The view selects by the session's export settings: every claim up to id 1000 here.
    assert_eq!(view_rows(&mut conn, Some("1"), Some("1000")).await, 1);
    assert_eq!(
        view_rows(&mut conn, None, Some("1000")).await,
        0,
        "without a provider, nothing (even though the view's owner bypasses RLS here)"
    );
    assert_eq!(
        view_rows(&mut conn, Some("1"), None).await,
        0,
        "without a selection, nothing"
    );
    for sql in [
        "SELECT member_id FROM claims",
        "SELECT first_name, birth_date, zip FROM claims",
        "SELECT id, source_claim_id FROM claims",
        "SELECT * FROM claim_lines",
        "SELECT * FROM export_pseudonyms",
        "SELECT * FROM phi_disclosures",
        "SELECT * FROM audit_events",
        "INSERT INTO export_pseudonyms (configuration, provider_id, kind, subject, pseudonym, created_at) VALUES ('x', 1, 'member', '\\x01', 'p', now())",
    ] {
        assert_eq!(
            as_role(&mut conn, analyst, Some(1), sql).await,
            Err(DENIED.into()),
            "{sql}"
        );
    }
    let view_columns: Vec<String> = sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns WHERE table_name = 'analyst_claim_lines'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert!(view_columns.len() > 40, "{view_columns:?}");
    for hidden in [
        "member_id",
        "first_name",
        "last_name",
        "birth_date",
        "address",
        "city",
        "zip",
        "member_index",
        "person_index",
        "source_claim_id",
        "data_key_id",
    ] {
        assert!(
            !view_columns.iter().any(|c| c == hidden),
            "{hidden} in the analyst view"
        );
    }

    // Even the owner (here a superuser) cannot rewrite the audit trail.
    for sql in [
        "UPDATE audit_events SET kind = 'forged'",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events",
    ] {
        let err = sqlx::raw_sql(sql).execute(&mut conn).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    // And FORCE ROW LEVEL SECURITY holds for a non-superuser owner-like role too: the table is
    // marked so in the catalogue.
    let (rls, force): (bool, bool) = sqlx::query_as(
        "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname = 'claims'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(rls && force);
}
