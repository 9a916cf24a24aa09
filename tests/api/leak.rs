//! The PHI leak test. The real binary runs with debug logging, its standard output and
//! error captured; a claim file with distinctive fake PHI (some records bad) is uploaded
//! over HTTPS and ingested through the whole pipeline; claims and a raw file are also
//! written through the store and raw-store paths; then everything is read back through
//! the API (receipts, rejects, metrics, claims opened and searched, PHI in the URL). Afterwards no PHI value may appear anywhere but in the
//! responses to the permitted reads: not in the database (raw bytes of the SQLite files,
//! every row of every PostgreSQL table), the raw store, the audit journal, the logs.

use std::path::Path;
use std::time::Duration;

use claimgate::config::Settings;
use claimgate::raw_store::RawStore;
use serde_json::json;

use crate::helpers::*;

/// The fake PHI of the claims stored (see [`phi_claim`]) and of the raw file.
const VALUES: [&str; 9] = [
    "ZZMLEAKQ",
    "ZZTOWN",
    "OAK ST",
    "ZZMEMLEAKQ",
    "ZZFIRSTLEAKQ",
    "ZZLASTLEAKQ",
    "ZZADDRLEAKQ",
    "ZZCITYLEAKQ",
    CANARY,
];

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn assert_absent(what: &str, bytes: &[u8]) {
    for value in VALUES {
        assert!(
            !bytes.windows(value.len()).any(|w| w == value.as_bytes()),
            "{value} found in {what}"
        );
    }
}

/// Every row of every table, as text with `bytea` values decoded, as superuser.
async fn postgres_rows(url: &str) -> Vec<u8> {
    use sqlx::{Connection, Row};
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert!(tables.contains(&"claims".to_owned()));
    let mut out = Vec::new();
    for table in tables {
        let columns: Vec<(String, String)> = sqlx::query_as(
            "SELECT column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name = $1",
        )
        .bind(&table)
        .fetch_all(&mut conn)
        .await
        .unwrap();
        for (column, kind) in columns {
            let sql = if kind == "bytea" {
                format!("SELECT \"{column}\" FROM \"{table}\"")
            } else {
                format!("SELECT \"{column}\"::text FROM \"{table}\"")
            };
            for row in sqlx::query(sqlx::AssertSqlSafe(sql))
                .fetch_all(&mut conn)
                .await
                .unwrap()
            {
                if kind == "bytea" {
                    out.extend(row.get::<Option<Vec<u8>>, _>(0).unwrap_or_default());
                } else {
                    out.extend(row.get::<Option<String>, _>(0).unwrap_or_default().bytes());
                }
                out.push(b'\n');
            }
        }
    }
    out
}

async fn leak_test_on(backend: Backend) {
    let database = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => {
            let Some(admin) = postgres_admin_url("leak_test").await else {
                return;
            };
            Some(TestDatabase::create(&admin).await)
        }
    };
    // DB-05: the server logs every statement of this database, with its parameters.
    let server_log = match &database {
        Some(database) => statement_log(&database.url).await,
        None => None,
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let env = test_env(&data, database.as_ref().map(|d| d.url.as_str()), &[]);
    let settings = Settings::load(None, env.clone()).unwrap();
    let gateway = Gateway::start(dir.path(), &env);
    let call = |token: String, method: &'static str, path: String, body: String| {
        let addr = gateway.addr;
        async move { call_at(addr, &token, method, &path, &body).await }
    };
    let admin = gateway.admin_key.clone();
    let created = call(
        admin.clone(),
        "POST",
        "/v1/admin/providers".into(),
        json!({ "code": "acme", "name": "Acme" }).to_string(),
    )
    .await;
    assert_eq!(created.status, 201);
    let principal = call(
        admin.clone(),
        "POST",
        "/v1/admin/principals".into(),
        json!({ "name": "reader", "kind": "person", "grants": [{ "role": "phi_reader", "provider": "acme" }] }).to_string(),
    )
    .await;
    assert_eq!(principal.status, 201, "{principal:?}");
    let reader = principal.json()["token"].as_str().unwrap().to_owned();

    // Claims and a raw file through the store paths, as the ingest worker writes them.
    let (store, keyring) = keyring_for(&settings).await;
    store_claims_for(
        &settings,
        "acme",
        "leak-upload",
        &[phi_claim("LEAK-1", "LEAKQ"), phi_claim("LEAK-2", "LEAKQ")],
    )
    .await;
    let raw = RawStore::new(&data.join("raw"), store.clone(), keyring.clone()).unwrap();
    let original = format!("NM1*IL*1*ZZLASTLEAKQ*ZZFIRSTLEAKQ****MI*{CANARY}~\n").repeat(1000);
    let file = raw
        .put(
            &claimgate::providers::ProviderCode::parse("acme").unwrap(),
            original.as_bytes(),
        )
        .await
        .unwrap();

    // Permitted reads return PHI; refused and malformed ones must not echo it anywhere.
    let listed = call(
        reader.clone(),
        "GET",
        "/v1/providers/acme/claims?purpose=payment".into(),
        String::new(),
    )
    .await;
    let id = listed.json()[0]["id"].as_i64().unwrap();
    let shown = call(
        reader.clone(),
        "GET",
        format!("/v1/providers/acme/claims/{id}?purpose=payment"),
        String::new(),
    )
    .await;
    assert_eq!(shown.status, 200);
    assert_eq!(
        shown.json()["member_id"],
        "ZZMEMLEAKQ",
        "the permitted read works"
    );
    let found = call(
        reader.clone(),
        "POST",
        "/v1/providers/acme/claims/search".into(),
        json!({ "member_id": "ZZMEMLEAKQ", "purpose": "payment" }).to_string(),
    )
    .await;
    assert_eq!(found.json()["ids"].as_array().unwrap().len(), 2);
    for (token, method, path, body) in [
        (
            reader.clone(),
            "GET",
            format!("/v1/providers/acme/claims/{CANARY}?purpose=payment"),
            String::new(),
        ),
        (
            reader.clone(),
            "GET",
            format!("/v1/providers/acme/claims?member_id={CANARY}"),
            String::new(),
        ),
        (
            reader.clone(),
            "POST",
            "/v1/providers/acme/claims/search".into(),
            format!(r#"{{"member_id": "{CANARY}", "x": 1}}"#),
        ),
        (
            reader.clone(),
            "POST",
            "/v1/providers/acme/claims/search".into(),
            format!(r#"{{"last_name": "{CANARY}"}}"#),
        ),
        (
            String::new(),
            "POST",
            "/v1/providers/acme/claims/search".into(),
            json!({ "member_id": CANARY }).to_string(),
        ),
        (
            format!("cgk_{CANARY}"),
            "GET",
            "/v1/whoami".into(),
            String::new(),
        ),
    ] {
        let response = call(token, method, path.clone(), body).await;
        assert!(response.status < 500, "{path}: {response:?}");
        assert_absent(
            &format!("the response to {method} {path}"),
            response.body.as_bytes(),
        );
    }
    // The whole pipeline: an upload over HTTPS with fake PHI, one record bad.
    activate_mapping_at(gateway.addr, &admin, "acme", "x12").await;
    let submitter = call(
        admin.clone(),
        "POST",
        "/v1/admin/principals".into(),
        json!({ "name": "acme-sftp", "kind": "system", "grants": [{ "role": "provider_submitter", "provider": "acme" }] }).to_string(),
    )
    .await
    .json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut claims: Vec<X12Claim> = (1..=30)
        .map(|i| X12Claim::new(&format!("LEAKQ{i}"), 5_000))
        .collect();
    claims[4].member = String::new();
    let sent = upload_at(
        gateway.addr,
        &submitter,
        &x12_837p(&claims),
        "Content-Type: application/edi-x12\r\n",
    )
    .await;
    assert_eq!(sent.status, 202, "{sent:?}");
    let upload_id = sent.json()["upload_id"].as_str().unwrap().to_owned();
    let receipt = receipt_when_finished(gateway.addr, &submitter, &upload_id).await;
    assert_eq!(receipt["state"], "done", "{receipt}");
    assert_eq!(receipt["counts"]["rejected"], 1);
    assert_absent("the receipt", receipt.to_string().as_bytes());
    let rejects = call(
        submitter.clone(),
        "GET",
        format!("/v1/uploads/{upload_id}/rejects"),
        String::new(),
    )
    .await;
    assert_eq!(rejects.status, 200);
    assert!(rejects.body.contains("member_id"), "{}", rejects.body);
    assert_absent("the rejects", rejects.body.as_bytes());
    let metrics = call(admin.clone(), "GET", "/metrics".into(), String::new()).await;
    assert!(
        metrics.body.contains("claimgate_claims_stored_total 29"),
        "{}",
        metrics.body
    );
    assert_absent("the metrics", metrics.body.as_bytes());
    let ingested = call(
        reader.clone(),
        "POST",
        "/v1/providers/acme/claims/search".into(),
        json!({ "member_id": "ZZMLEAKQ7", "purpose": "payment" }).to_string(),
    )
    .await;
    assert_eq!(
        ingested.json()["ids"].as_array().unwrap().len(),
        1,
        "the ingested claim is found"
    );

    let mut reopened = Vec::new();
    std::io::Read::read_to_end(
        &mut raw
            .open(
                &claimgate::providers::ProviderCode::parse("acme").unwrap(),
                &file.file_id,
            )
            .await
            .unwrap(),
        &mut reopened,
    )
    .unwrap();
    assert_eq!(reopened, original.as_bytes());
    drop((store, keyring, raw));
    // Let a checkpoint run, then stop cleanly (the stop path writes events too).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    gateway.stop();

    // Nothing holds the values: every file the gateway wrote (database, WAL, raw store,
    // journal, keys) and its output.
    let written = files(dir.path());
    assert!(
        written
            .iter()
            .any(|f| f.extension().is_some_and(|e| e == "cgrf"))
    );
    assert!(written.iter().any(|f| f.ends_with("stderr.log")));
    for path in &written {
        assert_absent(&path.display().to_string(), &std::fs::read(path).unwrap());
    }
    let stderr = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
    assert!(stderr.contains("DEBUG"), "debug logging was on");
    if let Some(database) = &database {
        assert_absent("the PostgreSQL tables", &postgres_rows(&database.url).await);
    }
    if let Some((log, from)) = server_log {
        let bytes = std::fs::read(&log).unwrap();
        let ours = &bytes[usize::try_from(from).unwrap().min(bytes.len())..];
        assert!(
            ours.windows(19)
                .any(|w| w == b"INSERT INTO claims ".as_slice())
                || ours.windows(12).any(|w| w == b"COPY claims ".as_slice()),
            "{}: the statements were logged",
            log.display()
        );
        assert_absent(&log.display().to_string(), ours);
    }
}

/// Turns on `log_statement = 'all'` for the database at `url` (its statements and bind
/// parameters go to the server log) and returns the server's log file with its length
/// now, to read what follows. A server whose log file cannot be found here is skipped,
/// and fails the test when PostgreSQL tests are required.
async fn statement_log(url: &str) -> Option<(std::path::PathBuf, u64)> {
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::raw_sql(
        "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET log_statement = %L', current_database(), 'all'); END $$",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let current: Option<String> = sqlx::query_scalar("SELECT pg_current_logfile()")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let data_dir: String = sqlx::query_scalar("SHOW data_directory")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let version: String = sqlx::query_scalar("SHOW server_version_num")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let debian = format!(
        "/var/log/postgresql/postgresql-{}-main.log",
        version.get(..2).unwrap_or_default()
    );
    let log = current
        .map(|f| Path::new(&data_dir).join(f))
        .into_iter()
        .chain([std::path::PathBuf::from(debian)])
        .find(|f| std::fs::File::open(f).is_ok());
    match log {
        Some(log) => {
            let from = std::fs::metadata(&log).unwrap().len();
            Some((log, from))
        }
        None => {
            let required = std::env::var("CLAIMGATE_TEST_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "DB-05: the PostgreSQL server log is not readable here"
            );
            eprintln!("DB-05 skipped: the PostgreSQL server log is not readable here");
            None
        }
    }
}

#[tokio::test]
async fn no_phi_reaches_the_database_raw_store_journal_or_logs_sqlite() {
    leak_test_on(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_no_phi_reaches_the_database_raw_store_journal_or_logs() {
    leak_test_on(Backend::Postgres).await;
}
