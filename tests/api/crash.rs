//! Crash safety of ingest: the real `claimgate ingest` process is killed with SIGKILL at
//! several points of a large file (while storing the raw file, and after several
//! committed batches), then run again until it finishes. The final tables must equal
//! those of an uninterrupted run of the same file: no record lost, none doubled.

use std::path::Path;
use std::time::{Duration, Instant};

use claimgate::audit::{AuditEvent, EventKind, Outcome};
use claimgate::authz::ProviderAdmin;
use claimgate::config::Settings;
use claimgate::providers::{ProviderCode, ProviderName};
use claimgate::store::Store;
use secrecy::ExposeSecret;
use sqlx::Connection;

use crate::helpers::*;

const CLAIMS: usize = 12_000;

fn ingest_command(dir: &Path, env: &[(String, String)], file: &Path) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_claimgate"));
    command
        .args(["ingest", "--provider", "acme", "--mapping", "x12", "--json"])
        .arg(file)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().cloned())
        .env("CLAIMGATE_INGEST__BATCH_CLAIMS", "250")
        .env("CLAIMGATE_INGEST__LEASE_SECS", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    command
}

/// The committed checkpoint of the upload, or -1 before it is recorded.
async fn upload_checkpoint(settings: &Settings) -> i64 {
    let url = settings.database.url.expose_secret().to_owned();
    let sql = "SELECT coalesce(max(checkpoint), -1) FROM uploads";
    if url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query_scalar(sql)
            .fetch_one(&mut conn)
            .await
            .unwrap_or(-1)
    } else {
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query_scalar(sql)
            .fetch_one(&mut conn)
            .await
            .unwrap_or(-1)
    }
}

/// What the run left, in a form independent of random ids: every claim (record, id,
/// frequency, charge, whether current), line and reject, and the upload's counts.
async fn tables(settings: &Settings) -> Vec<String> {
    let url = settings.database.url.expose_secret().to_owned();
    let queries = [
        "SELECT record_no || '|' || source_claim_id || '|' || frequency_code || '|' || coalesce(total_charge_cents, -1) || '|' || (superseded_at IS NULL) FROM claims ORDER BY record_no",
        "SELECT record_no || '|' || ordinal || '|' || coalesce(charge_cents, -1) FROM claim_lines ORDER BY record_no, ordinal",
        "SELECT ordinal || '|' || record_no || '|' || line_no || '|' || code FROM rejects ORDER BY ordinal",
        "SELECT state || '|' || checkpoint || '|' || records || '|' || accepted || '|' || rejected || '|' || claims || '|' || lines || '|' || total_charge_cents FROM uploads",
        "SELECT count(*) || '|' || count(DISTINCT record_no) FROM claims",
    ];
    let mut out = Vec::new();
    for sql in queries {
        let rows: Vec<String> = if url.starts_with("sqlite:") {
            let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
            sqlx::query_scalar(sql).fetch_all(&mut conn).await.unwrap()
        } else {
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            sqlx::query_scalar(sql).fetch_all(&mut conn).await.unwrap()
        };
        out.push(format!("{sql}: {} rows", rows.len()));
        out.extend(rows);
    }
    out
}

async fn prepare(
    backend: Backend,
    name: &str,
) -> Option<(
    tempfile::TempDir,
    Vec<(String, String)>,
    Settings,
    Option<TestDatabase>,
)> {
    let database = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => {
            let admin = postgres_admin_url(name).await?;
            Some(TestDatabase::create(&admin).await)
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let env = test_env(
        &dir.path().join("data"),
        database.as_ref().map(|d| d.url.as_str()),
        &[],
    );
    let settings = Settings::load(None, env.clone()).unwrap();
    let store = Store::connect(&settings.database).await.unwrap();
    store.migrate().await.unwrap();
    store
        .create_provider(
            &ProviderAdmin::operator_console(),
            &ProviderCode::parse("acme").unwrap(),
            &ProviderName::parse("Acme").unwrap(),
            &AuditEvent::new(EventKind::ProviderCreated, Outcome::Success),
        )
        .await
        .unwrap();
    Some((dir, env, settings, database))
}

async fn crash_on(backend: Backend) {
    let claims: Vec<X12Claim> = (0..CLAIMS)
        .map(|i| {
            let mut claim = X12Claim::new(&format!("K{i}"), 1_000 + i as i64);
            if i % 10 == 4 {
                claim.member = String::new();
            }
            claim
        })
        .collect();
    let file_dir = tempfile::tempdir().unwrap();
    let file = file_dir.path().join("big.x12");
    std::fs::write(&file, x12_837p(&claims)).unwrap();

    // The reference: one uninterrupted run.
    let Some((ref_dir, ref_env, ref_settings, _ref_db)) = prepare(backend, "crash_reference").await
    else {
        return;
    };
    let reference = ingest_command(ref_dir.path(), &ref_env, &file)
        .output()
        .unwrap();
    assert!(
        reference.status.success(),
        "{}",
        String::from_utf8_lossy(&reference.stderr)
    );
    let expected = tables(&ref_settings).await;
    assert!(
        expected.iter().any(|l| l.starts_with("done|")),
        "{:?}",
        &expected[expected.len() - 3..]
    );

    // Killed at several points, then finished.
    let (dir, env, settings, _db) = prepare(backend, "crash_killed").await.unwrap();
    let kill_points = [-1, 1_000, 4_000, 8_000];
    for point in kill_points {
        let mut child = ingest_command(dir.path(), &env, &file).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let reached = if point < 0 {
                // While the raw file is being stored (before the upload is recorded).
                tokio::time::sleep(Duration::from_millis(30)).await;
                true
            } else {
                upload_checkpoint(&settings).await >= point
            };
            if reached || child.try_wait().unwrap().is_some() {
                break;
            }
            assert!(Instant::now() < deadline, "no progress to {point}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
    }
    let done = ingest_command(dir.path(), &env, &file).output().unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let receipt: serde_json::Value =
        serde_json::from_slice(done.stdout.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(receipt["state"], "done", "{receipt}");
    assert_eq!(receipt["counts"]["records_read"], CLAIMS);
    assert_eq!(receipt["counts"]["rejected"], CLAIMS / 10);
    assert!(
        receipt["attempts"].as_i64().unwrap() >= 2,
        "it was interrupted: {receipt}"
    );
    let actual = tables(&settings).await;
    assert_eq!(actual.len(), expected.len());
    for (a, e) in actual.iter().zip(&expected) {
        assert_eq!(a, e);
    }
}

#[tokio::test]
async fn killing_ingest_at_any_point_loses_and_doubles_nothing_sqlite() {
    crash_on(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_killing_ingest_at_any_point_loses_and_doubles_nothing() {
    crash_on(Backend::Postgres).await;
}

#[tokio::test]
async fn the_bulk_cli_refuses_a_file_that_repeats_an_interchange() {
    let (dir, env, settings, _db) = prepare(Backend::Sqlite, "cli_replay").await.unwrap();
    let files = tempfile::tempdir().unwrap();
    let first = files.path().join("first.x12");
    let first_bytes = x12_837p(&[X12Claim::new("Q1", 1_000)]);
    std::fs::write(&first, &first_bytes).unwrap();
    let done = ingest_command(dir.path(), &env, &first).output().unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let receipt: serde_json::Value = serde_json::from_slice(&done.stdout).unwrap();
    let id = receipt["upload_id"].as_str().unwrap();

    let edited = files.path().join("edited.x12");
    let replayed = with_control_number(
        &x12_837p(&[X12Claim::new("Q2", 2_000)]),
        &control_number_in(&first_bytes),
    );
    std::fs::write(&edited, replayed).unwrap();
    let refused = ingest_command(dir.path(), &env, &edited).output().unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(stderr.contains("repeats the X12 interchange"), "{stderr}");
    assert!(stderr.contains(id), "the earlier upload is named: {stderr}");
    assert!(
        !stderr.contains("ZZ"),
        "no claim value in the message: {stderr}"
    );
    let url = settings.database.url.expose_secret().to_owned();
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let counts: (i64, i64) =
        sqlx::query_as("SELECT (SELECT count(*) FROM uploads), (SELECT count(*) FROM raw_files)")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(counts, (1, 1), "nothing of the refused file is recorded");

    // The first file again is its earlier upload, as before.
    let again = ingest_command(dir.path(), &env, &first).output().unwrap();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let receipt: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(receipt["upload_id"], id);
}
