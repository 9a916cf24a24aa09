//! Fault injection with real processes (SECURITY-BAR §5 RS-01, RS-02, DB-07): the
//! gateway (`claimgate serve`) killed with SIGKILL at random moments while it receives
//! uploads and ingests a large file, and PostgreSQL stopped (`pg_ctl stop -m immediate`)
//! and restarted under a running gateway. Every acknowledged upload must end processed
//! exactly once, with tables equal to those of an uninterrupted run.
//!
//! Also a raw store whose disk fills up (RS-05, a small tmpfs).
//!
//! `CLAIMGATE_FAULT_TRIALS` sets the number of kills (default 20) and
//! `CLAIMGATE_FAULT_SEED` replays a run's random moments (each run prints its seed).
//! The tests that need root (a tmpfs mount, a private PostgreSQL cluster run as the
//! `postgres` user) say SKIPPED without it, unless `CLAIMGATE_TEST_REQUIRE_FAULTS=1`
//! (CI sets it) turns that into a failure.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::Connection;

use crate::helpers::*;

/// How long an upload may take to finish while the other tests load the machine.
const PATIENCE: Duration = Duration::from_secs(300);

const X12: &str = "Content-Type: application/edi-x12\r\n";
/// Claims of the large file: long enough that no single run between two kills finishes it.
const BIG_CLAIMS: usize = 20_000;
/// Claims of each small file sent while the gateway is about to be killed.
const SMALL_CLAIMS: usize = 200;

fn trials() -> usize {
    std::env::var("CLAIMGATE_FAULT_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
}

/// xorshift64*: reproducible random moments from a printed seed.
struct Moments(u64);

impl Moments {
    fn from_env(test: &str) -> Self {
        let seed = std::env::var("CLAIMGATE_FAULT_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| {
                let mut random = [0u8; 8];
                aws_lc_rs::rand::fill(&mut random).unwrap();
                u64::from_le_bytes(random) | 1
            });
        eprintln!("{test}: CLAIMGATE_FAULT_SEED={seed}");
        Self(seed)
    }

    /// A duration in `[0, max)`, to the millisecond.
    fn below(&mut self, max: Duration) -> Duration {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let r = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        Duration::from_millis(r % max.as_millis() as u64)
    }
}

/// The large file: every tenth claim has no member id, so is rejected.
fn big_file() -> Vec<u8> {
    let claims: Vec<X12Claim> = (0..BIG_CLAIMS)
        .map(|i| {
            let mut claim = X12Claim::new(&format!("B{i}"), 1_000 + i as i64);
            if i % 10 == 4 {
                claim.member = String::new();
            }
            claim
        })
        .collect();
    x12_837p(&claims)
}

fn small_file(n: usize) -> Vec<u8> {
    claims_file(n, SMALL_CLAIMS)
}

fn claims_file(n: usize, claims: usize) -> Vec<u8> {
    let claims: Vec<X12Claim> = (0..claims)
        .map(|i| X12Claim::new(&format!("S{n}C{i}"), 100 + i as i64))
        .collect();
    x12_837p(&claims)
}

/// Creates provider `acme` with the X12 mapping and returns a submitter's key.
async fn provider_and_submitter(addr: SocketAddr, admin_key: &str) -> String {
    let created = call_at(
        addr,
        admin_key,
        "POST",
        "/v1/admin/providers",
        r#"{"code":"acme","name":"Acme"}"#,
    )
    .await;
    assert_eq!(created.status, 201, "{created:?}");
    activate_mapping_at(addr, admin_key, "acme", "x12").await;
    let principal = call_at(
        addr,
        admin_key,
        "POST",
        "/v1/admin/principals",
        &json!({ "name": "acme-upload", "kind": "system",
                 "grants": [{ "role": "provider_submitter", "provider": "acme" }] })
        .to_string(),
    )
    .await;
    assert_eq!(principal.status, 201, "{principal:?}");
    principal.json()["token"].as_str().unwrap().to_owned()
}

/// Sends an upload and waits for the answer (at most `PATIENCE`).
async fn send_upload(addr: SocketAddr, token: &str, body: &[u8]) -> std::io::Result<Response> {
    let mut request = format!(
        "POST /v1/uploads HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
         {X12}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request_within(
        addr,
        client_config(ClientOptions::default()),
        &request,
        PATIENCE,
    )
    .await
}

/// The status and upload id of an upload the gateway acknowledged (200 or 202); `None`
/// when the connection broke first (the gateway was killed).
async fn try_upload(addr: SocketAddr, token: &str, body: &[u8]) -> Option<(u16, String)> {
    let response = send_upload(addr, token, body).await.ok()?;
    assert!(
        matches!(response.status, 200 | 202),
        "an upload answered, but not with 200 or 202: {response:?}"
    );
    let id = response.json()["upload_id"].as_str().unwrap().to_owned();
    Some((response.status, id))
}

/// An upload that must be acknowledged: its status and upload id.
async fn upload_ok(addr: SocketAddr, token: &str, body: &[u8]) -> (u16, String) {
    let response = send_upload(addr, token, body).await.expect("the upload");
    assert!(matches!(response.status, 200 | 202), "{response:?}");
    let id = response.json()["upload_id"].as_str().unwrap().to_owned();
    (response.status, id)
}

/// What an upload left, independent of random ids and of other uploads: its claims
/// (record, id, frequency, charge, current), lines, rejects and counts.
async fn upload_tables(url: &str, upload_id: &str) -> Vec<String> {
    let queries = [
        format!(
            "SELECT record_no || '|' || source_claim_id || '|' || frequency_code || '|' || \
             coalesce(total_charge_cents, -1) || '|' || CASE WHEN superseded_at IS NULL THEN 'current' ELSE 'superseded' END \
             FROM claims WHERE upload_id = '{upload_id}' ORDER BY record_no"
        ),
        format!(
            "SELECT record_no || '|' || ordinal || '|' || coalesce(charge_cents, -1) \
             FROM claim_lines WHERE upload_id = '{upload_id}' ORDER BY record_no, ordinal"
        ),
        format!(
            "SELECT ordinal || '|' || record_no || '|' || line_no || '|' || code FROM rejects \
             WHERE upload_id = '{upload_id}' ORDER BY ordinal"
        ),
        format!(
            "SELECT state || '|' || checkpoint || '|' || records || '|' || accepted || '|' || \
             rejected || '|' || claims || '|' || lines || '|' || total_charge_cents \
             FROM uploads WHERE upload_id = '{upload_id}'"
        ),
    ];
    let mut out = Vec::new();
    for (table, sql) in ["claims", "lines", "rejects", "upload"]
        .iter()
        .zip(&queries)
    {
        let rows: Vec<String> = if url.starts_with("sqlite:") {
            let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql.as_str()))
                .fetch_all(&mut conn)
                .await
                .unwrap()
        } else {
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql.as_str()))
                .fetch_all(&mut conn)
                .await
                .unwrap()
        };
        out.push(format!("{table}: {} rows", rows.len()));
        out.extend(rows);
    }
    out
}

/// Asserts `actual` equals `expected`, naming the first line that differs.
fn same_tables(actual: &[String], expected: &[String]) {
    let first = actual.iter().zip(expected).position(|(a, e)| a != e);
    if let Some(i) = first {
        panic!(
            "line {i} differs: {:?} != {:?} (context: {:?})",
            actual[i],
            expected[i],
            &actual[i.saturating_sub(2)..(i + 2).min(actual.len())]
        );
    }
    assert_eq!(actual.len(), expected.len(), "row counts");
}

/// One count from the database at `url`.
async fn count(url: &str, sql: &str) -> i64 {
    if url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&mut conn)
            .await
            .unwrap()
    } else {
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&mut conn)
            .await
            .unwrap()
    }
}

/// The database URL a test environment names, SQLite's default in `data` otherwise.
fn database_url(env: &[(String, String)], data: &Path) -> String {
    env.iter()
        .find(|(k, _)| k == "CLAIMGATE_DATABASE__URL")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| format!("sqlite://{}", data.join("claimgate.db").display()))
}

/// The environment of a gateway under faults: small batches (many checkpoints), a short
/// lease (a killed worker's upload is taken over within a second).
fn fault_env(data: &Path, database: Option<&str>) -> Vec<(String, String)> {
    test_env(
        data,
        database,
        &[
            ("CLAIMGATE_INGEST__BATCH_CLAIMS", "100"),
            ("CLAIMGATE_INGEST__LEASE_SECS", "1"),
            ("CLAIMGATE_DATABASE__ACQUIRE_TIMEOUT_SECS", "2"),
        ],
    )
}

/// The large file's tables after an uninterrupted run on a fresh database.
async fn reference_tables(backend: Backend, file: &[u8]) -> Option<Vec<String>> {
    let database = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => {
            Some(TestDatabase::create(&postgres_admin_url("faults_reference").await?).await)
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let env = fault_env(&data, database.as_ref().map(|d| d.url.as_str()));
    let gateway = Gateway::start(dir.path(), &env);
    let submitter = provider_and_submitter(gateway.addr, &gateway.admin_key).await;
    let (status, id) = upload_ok(gateway.addr, &submitter, file).await;
    assert_eq!(status, 202);
    let receipt = receipt_within(gateway.addr, &submitter, &id, PATIENCE).await;
    assert_eq!(receipt["state"], "done", "{receipt}");
    assert_eq!(receipt["attempts"], 1, "{receipt}");
    let tables = upload_tables(&database_url(&env, &data), &id).await;
    gateway.stop();
    Some(tables)
}

/// Runs `claimgate audit verify` on the environment's database and audit key.
fn audit_verifies(dir: &Path, env: &[(String, String)]) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_claimgate"))
        .args(["audit", "verify"])
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().cloned())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "audit verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// RS-01/RS-02: the gateway is killed `trials()` times at random moments: while it
/// starts, while it receives a small upload, while it ingests the large one. Then it
/// runs undisturbed; every upload it acknowledged ends done exactly once (a sender whose
/// upload was cut off sends it again), and the large file's tables equal an
/// uninterrupted run's.
async fn killed_at_random_on(backend: Backend) {
    let big = big_file();
    let Some(expected) = reference_tables(backend, &big).await else {
        return;
    };
    let mut moments = Moments::from_env(&format!("gateway_kill_{backend:?}"));
    let database = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => {
            Some(TestDatabase::create(&postgres_admin_url("faults_killed").await.unwrap()).await)
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let env = fault_env(&data, database.as_ref().map(|d| d.url.as_str()));
    let url = database_url(&env, &data);

    let first = Gateway::start_named(dir.path(), &env, "-0", true);
    let submitter = provider_and_submitter(first.addr, &first.admin_key).await;
    let (status, big_id) = upload_ok(first.addr, &submitter, &big).await;
    assert_eq!(status, 202);
    let mut first = Some(first);

    let mut acknowledged = Vec::new();
    let mut cut_off = Vec::new();
    for trial in 0..trials() {
        let gateway = first
            .take()
            .unwrap_or_else(|| Gateway::start_named(dir.path(), &env, &format!("-{trial}"), false));
        let small = small_file(trial);
        // The first kill lands inside the large file's ingest (after its first committed
        // batch), whatever the machine's speed; the others at random moments.
        let window = if trial == 0 {
            let deadline = Instant::now() + PATIENCE;
            let started = format!(
                "SELECT count(*) FROM uploads WHERE upload_id = '{big_id}' AND checkpoint > 0"
            );
            while count(&url, &started).await == 0 {
                assert!(Instant::now() < deadline, "the large file never started");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Duration::from_millis(200)
        } else {
            Duration::from_millis(2_500)
        };
        let (addr, token, body) = (gateway.addr, submitter.clone(), small.clone());
        let sending = tokio::spawn(async move { try_upload(addr, &token, &body).await });
        tokio::time::sleep(moments.below(window)).await;
        gateway.kill();
        match sending.await.unwrap() {
            Some((_, id)) => acknowledged.push((trial, id)),
            None => cut_off.push((trial, small)),
        }
    }

    let gateway = Gateway::start_named(dir.path(), &env, "-final", false);
    // The senders whose upload was cut off send it again: an upload the gateway had
    // recorded before it died answers 200 with its id, a lost one starts afresh.
    for (trial, small) in &cut_off {
        let (_, id) = upload_ok(gateway.addr, &submitter, small).await;
        acknowledged.push((*trial, id));
    }
    eprintln!(
        "{} kills: {} small uploads acknowledged before the kill, {} sent again",
        trials(),
        acknowledged.len() - cut_off.len(),
        cut_off.len()
    );
    let receipt = receipt_within(gateway.addr, &submitter, &big_id, PATIENCE).await;
    assert_eq!(receipt["state"], "done", "{receipt}");
    assert!(
        receipt["attempts"].as_i64().unwrap() >= 2,
        "the large file was interrupted: {receipt}"
    );
    for (trial, id) in &acknowledged {
        let receipt = receipt_within(gateway.addr, &submitter, id, PATIENCE).await;
        assert_eq!(receipt["state"], "done", "trial {trial}: {receipt}");
        assert_eq!(receipt["counts"]["accepted"], SMALL_CLAIMS, "{receipt}");
    }
    same_tables(&upload_tables(&url, &big_id).await, &expected);
    // One upload per file, one claim per record: nothing lost, nothing doubled.
    assert_eq!(
        count(&url, "SELECT count(*) FROM uploads").await,
        1 + trials() as i64
    );
    assert_eq!(
        count(&url, "SELECT count(*) FROM uploads WHERE state <> 'done'").await,
        0
    );
    let stored = (BIG_CLAIMS - BIG_CLAIMS / 10 + trials() * SMALL_CLAIMS) as i64;
    assert_eq!(count(&url, "SELECT count(*) FROM claims").await, stored);
    assert_eq!(
        count(
            &url,
            "SELECT count(*) FROM (SELECT DISTINCT upload_id, record_no FROM claims) d"
        )
        .await,
        stored
    );
    gateway.stop();
    audit_verifies(dir.path(), &env);
}

#[tokio::test]
async fn killing_the_gateway_at_random_moments_loses_and_doubles_nothing_sqlite() {
    killed_at_random_on(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_killing_the_gateway_at_random_moments_loses_and_doubles_nothing() {
    killed_at_random_on(Backend::Postgres).await;
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// Says on stderr that `test` is skipped and why; fails when fault tests are required.
fn skip_fault_test(test: &str, why: &str) {
    let required = std::env::var("CLAIMGATE_TEST_REQUIRE_FAULTS").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "{test}: required (CLAIMGATE_TEST_REQUIRE_FAULTS=1) but {why}"
    );
    eprintln!("SKIPPED {test}: {why}");
}

/// A PostgreSQL cluster of the test's own (initdb in a temporary directory, run as the
/// `postgres` system user), so that it can be stopped without disturbing other tests.
struct PrivateCluster {
    _dir: tempfile::TempDir,
    data: PathBuf,
    bin: PathBuf,
    port: u16,
}

impl PrivateCluster {
    /// Needs root, the `postgres` user and PostgreSQL's server binaries; `None` (skipped,
    /// said on stderr) without them, unless PostgreSQL tests are required.
    fn start(test: &str) -> Option<Self> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|versions| {
                versions
                    .filter_map(Result::ok)
                    .map(|v| v.path().join("bin"))
                    .find(|b| b.join("initdb").exists())
            });
        let uid = std::process::Command::new("id")
            .args(["-u", "postgres"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .trim()
                    .parse::<u32>()
                    .ok()
            });
        let (Some(bin), Some(uid), true) = (bin, uid, is_root()) else {
            skip_fault_test(
                test,
                "a private PostgreSQL cluster needs root, the postgres user and initdb",
            );
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::chown(dir.path(), Some(uid), None).unwrap();
        let data = dir.path().join("data");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let cluster = Self {
            _dir: dir,
            data,
            bin,
            port,
        };
        cluster.as_postgres(
            "initdb",
            &[
                "-D",
                &cluster.data.display().to_string(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        cluster.up();
        Some(cluster)
    }

    fn as_postgres(&self, program: &str, args: &[&str]) {
        let out = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join(program))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{program}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn up(&self) {
        let socket_dir = self.data.parent().unwrap().display().to_string();
        let options = format!(
            "-p {} -k {socket_dir} -c listen_addresses=127.0.0.1",
            self.port
        );
        let log = self.data.parent().unwrap().join("postgresql.log");
        self.as_postgres(
            "pg_ctl",
            &[
                "-D",
                &self.data.display().to_string(),
                "-l",
                &log.display().to_string(),
                "-o",
                &options,
                "-w",
                "start",
            ],
        );
    }

    /// `pg_ctl stop -m immediate`: every backend killed, no shutdown checkpoint (crash
    /// recovery on the next start).
    fn crash(&self) {
        self.as_postgres(
            "pg_ctl",
            &[
                "-D",
                &self.data.display().to_string(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args([
                "-D",
                &self.data.display().to_string(),
                "-m",
                "immediate",
                "stop",
            ])
            .output();
    }
}

/// DB-07: PostgreSQL stops (immediate shutdown) in the middle of a large ingest and
/// comes back after several seconds. Meanwhile the gateway stays up and answers 503 (the
/// database is unavailable; nothing acknowledged); afterwards the large upload completes
/// once, its tables equal an uninterrupted run's, and a refused upload sent again is
/// accepted and processed.
#[tokio::test]
async fn postgres_stopped_and_restarted_mid_ingest_the_upload_completes_once() {
    let big = big_file();
    let Some(expected) = reference_tables(Backend::Postgres, &big).await else {
        return;
    };
    let Some(cluster) = PrivateCluster::start("postgres_outage") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let url = cluster.url();
    let env = fault_env(&data, Some(&url));
    let mut gateway = Gateway::start(dir.path(), &env);
    let submitter = provider_and_submitter(gateway.addr, &gateway.admin_key).await;
    let (status, big_id) = upload_ok(gateway.addr, &submitter, &big).await;
    assert_eq!(status, 202);
    let deadline = Instant::now() + Duration::from_secs(120);
    while count(&url, "SELECT coalesce(max(checkpoint), -1) FROM uploads").await < 2_000 {
        assert!(Instant::now() < deadline, "no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    cluster.crash();
    let outage = Instant::now();
    // A small body: the gateway answers before it reads one.
    let small = claims_file(0, 5);
    let refused = upload_at(gateway.addr, &submitter, &small, X12).await;
    assert_eq!(refused.status, 503, "{refused:?}");
    assert_eq!(
        refused.json()["error_code"],
        "database_unavailable",
        "{refused:?}"
    );
    assert!(refused.header("retry-after").is_some(), "{refused:?}");
    let receipt = call_at(
        gateway.addr,
        &submitter,
        "GET",
        &format!("/v1/uploads/{big_id}"),
        "",
    )
    .await;
    assert_eq!(receipt.status, 503, "{receipt:?}");
    let ready = call_at(gateway.addr, "", "GET", "/readyz", "").await;
    assert_eq!(ready.status, 503, "{ready:?}");
    tokio::time::sleep(Duration::from_secs(5).saturating_sub(outage.elapsed())).await;
    assert!(gateway.is_running(), "the gateway outlived the outage");
    cluster.up();

    let receipt = receipt_within(gateway.addr, &submitter, &big_id, PATIENCE).await;
    assert_eq!(receipt["state"], "done", "{receipt}");
    same_tables(&upload_tables(&url, &big_id).await, &expected);
    let (status, small_id) = upload_ok(gateway.addr, &submitter, &small).await;
    assert_eq!(status, 202, "the refused upload is new to the gateway");
    let receipt = receipt_within(gateway.addr, &submitter, &small_id, PATIENCE).await;
    assert_eq!(receipt["counts"]["accepted"], 5, "{receipt}");
    assert_eq!(count(&url, "SELECT count(*) FROM uploads").await, 2);
    gateway.stop();
    audit_verifies(dir.path(), &env);
    let log = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
    assert!(log.contains("database unavailable"), "the outage is logged");
}

/// A tmpfs of a given size on a temporary directory (root only), unmounted on drop.
pub(crate) struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    pub(crate) fn mount(test: &str, size: &str) -> Option<Self> {
        if !is_root() {
            skip_fault_test(test, "mounting a tmpfs needs root");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "mount tmpfs");
        Some(Self { dir })
    }

    pub(crate) fn resize(&self, size: &str) {
        let status = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "remount tmpfs");
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Every regular file under the mount.
    pub(crate) fn files(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).unwrap().filter_map(Result::ok) {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out);
                } else {
                    out.push(path);
                }
            }
        }
        let mut out = Vec::new();
        walk(self.path(), &mut out);
        out
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// RS-05: the raw store's disk fills up during an upload. The sender gets 507
/// `storage_full` (with Retry-After), the refusal is audited, the partial file is removed
/// and nothing is recorded or processed; the database stays intact, and once there is
/// room the same file is accepted and processed.
#[tokio::test]
async fn a_full_raw_store_refuses_the_upload_and_recovers_sqlite() {
    let Some(disk) = SmallDisk::mount("raw_store_full", "1m") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let raw = disk.path().join("raw");
    let mut env = fault_env(&data, None);
    env.push((
        "CLAIMGATE_INGEST__RAW_DIR".into(),
        raw.display().to_string(),
    ));
    env.push((
        "CLAIMGATE_HTTP__MAX_BODY_BYTES".into(),
        (64 << 20).to_string(),
    ));
    let gateway = Gateway::start(dir.path(), &env);
    let submitter = provider_and_submitter(gateway.addr, &gateway.admin_key).await;
    // About 2.6 MB: more than the disk holds.
    let file = claims_file(0, 10_000);
    assert!(file.len() > 2 << 20);

    let refused = upload_at(gateway.addr, &submitter, &file, X12).await;
    assert_eq!(refused.status, 507, "{refused:?}");
    assert_eq!(refused.json()["error_code"], "storage_full");
    assert!(refused.header("retry-after").is_some(), "{refused:?}");
    assert_eq!(
        disk.files(),
        Vec::<PathBuf>::new(),
        "the partial file is removed"
    );
    let url = database_url(&env, &data);
    assert_eq!(count(&url, "SELECT count(*) FROM uploads").await, 0);
    assert_eq!(
        count(
            &url,
            "SELECT count(*) FROM audit_events WHERE kind = 'upload.rejected' AND body LIKE '%storage_full%'"
        )
        .await,
        1,
        "the refusal is audited"
    );
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let integrity: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(integrity, "ok");

    disk.resize("16m");
    let (status, id) = upload_ok(gateway.addr, &submitter, &file).await;
    assert_eq!(status, 202, "accepted once there is room");
    let receipt = receipt_within(gateway.addr, &submitter, &id, PATIENCE).await;
    assert_eq!(receipt["state"], "done", "{receipt}");
    assert_eq!(receipt["counts"]["accepted"], 10_000, "{receipt}");
    assert_eq!(disk.files().len(), 1, "the stored raw file");
    gateway.stop();
}

/// Fills the file system holding `dir` with a file in it; returns that file.
fn fill(dir: &Path) -> PathBuf {
    let filler = dir.join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    let block = vec![0u8; 64 << 10];
    loop {
        match std::io::Write::write(&mut file, &block) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(28), "ENOSPC, not {e}");
                break;
            }
        }
    }
    filler
}

/// The value of one sample line of `/metrics`.
fn sample(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {metrics}"))
}

/// AU-03 (and the file half of AU-02): the journal's disk is full while the database is
/// up. Audited requests still succeed, because each event commits with its change in the
/// database; the journal raises an `audit_sink_degraded` alert, the metrics show the
/// failed writes and the waiting events, and once the disk has room again the journal
/// writes every waiting event, so it again holds exactly the database's events.
#[tokio::test]
async fn a_full_audit_journal_disk_degrades_loudly_and_backfills_on_recovery() {
    let Some(disk) = SmallDisk::mount("audit_journal_full", "1m") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let journal = disk.path().join("audit");
    let mut env = fault_env(&data, None);
    env.push(("CLAIMGATE_AUDIT__DIR".into(), journal.display().to_string()));
    let gateway = Gateway::start(dir.path(), &env);
    let submitter = provider_and_submitter(gateway.addr, &gateway.admin_key).await;
    let url = database_url(&env, &data);
    let metrics = || async {
        let response = call_at(gateway.addr, &gateway.admin_key, "GET", "/metrics", "").await;
        assert_eq!(response.status, 200, "{response:?}");
        response.body
    };
    let healthy = metrics().await;
    assert_eq!(
        sample(&healthy, "claimgate_audit_sink_degraded{sink=\"journal\"}"),
        0.0
    );
    assert_eq!(
        sample(
            &healthy,
            "claimgate_audit_sink_failures_total{sink=\"journal\"}"
        ),
        0.0
    );

    let filler = fill(disk.path());
    let before = count(&url, "SELECT count(*) FROM audit_events").await;
    let (status, id) = upload_ok(gateway.addr, &submitter, &claims_file(0, 300)).await;
    assert_eq!(
        status, 202,
        "an audited upload succeeds on the database sink"
    );
    let receipt = receipt_within(gateway.addr, &submitter, &id, PATIENCE).await;
    assert_eq!(receipt["state"], "done", "{receipt}");
    assert_eq!(receipt["counts"]["accepted"], 300, "{receipt}");
    assert!(count(&url, "SELECT count(*) FROM audit_events").await > before);

    let degraded = metrics().await;
    assert_eq!(
        sample(&degraded, "claimgate_audit_sink_degraded{sink=\"journal\"}"),
        1.0
    );
    assert!(
        sample(
            &degraded,
            "claimgate_audit_sink_failures_total{sink=\"journal\"}"
        ) >= 1.0
    );
    assert!(sample(&degraded, "claimgate_audit_sink_backlog{sink=\"journal\"}") >= 1.0);
    let log = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap_or_default();
    let alerts = || {
        format!("{}{}", log("stdout.log"), log("stderr.log"))
            .lines()
            .filter(|l| l.contains("audit_sink_degraded"))
            .count()
    };
    assert_eq!(
        alerts(),
        1,
        "one alert when the sink degrades, not one a write"
    );
    let behind = claimgate::audit::Journal::read_all(&journal).unwrap().len() as i64;
    assert!(
        behind < count(&url, "SELECT count(*) FROM audit_events").await,
        "the journal fell behind"
    );

    std::fs::remove_file(filler).unwrap();
    // The next audited write (a second upload, or a signed checkpoint) drains the backlog.
    let (status, _) = upload_ok(gateway.addr, &submitter, &claims_file(1, 10)).await;
    assert_eq!(status, 202);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let recovered = metrics().await;
        let written: Vec<i64> = claimgate::audit::Journal::read_all(&journal)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        let total = count(&url, "SELECT count(*) FROM audit_events").await;
        let max = count(&url, "SELECT max(seq) FROM audit_events").await;
        let mut sorted = written.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sample(&recovered, "claimgate_audit_sink_backlog{sink=\"journal\"}") == 0.0
            && sorted.len() == written.len()
            && sorted == (1..=max).collect::<Vec<_>>()
            && total == max
        {
            assert_eq!(
                sample(
                    &recovered,
                    "claimgate_audit_sink_degraded{sink=\"journal\"}"
                ),
                0.0
            );
            assert_eq!(
                sample(
                    &recovered,
                    "claimgate_audit_sink_lost_total{sink=\"journal\"}"
                ),
                0.0
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the journal holds {} of {total} events, each once: {}",
            sorted.len(),
            sorted.len() == written.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        log("stdout.log").contains("audit_sink_recovered")
            || log("stderr.log").contains("audit_sink_recovered")
    );
    gateway.stop();
    audit_verifies(dir.path(), &env);
}

/// RS-08: SIGTERM while twenty uploads are half sent. The gateway stops taking
/// connections but finishes the requests in flight: each sender gets 202, or a clean
/// refusal (503, or a connection closed before anything was acknowledged). The process
/// exits 0 with `server.stopped` on the audit trail, and after a restart every
/// acknowledged upload is processed, once; nothing unacknowledged is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_twenty_uploads_loses_no_acknowledged_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let env = fault_env(&data, None);
    let gateway = Gateway::start(dir.path(), &env);
    let submitter = provider_and_submitter(gateway.addr, &gateway.admin_key).await;
    let (ready, mut readies) = tokio::sync::mpsc::channel::<()>(20);
    let (go, _) = tokio::sync::watch::channel(false);
    let mut senders = Vec::new();
    for n in 0..20 {
        let (addr, token, ready, mut go) = (
            gateway.addr,
            submitter.clone(),
            ready.clone(),
            go.subscribe(),
        );
        senders.push(tokio::spawn(async move {
            let body = claims_file(n, 200);
            let mut request = format!(
                "POST /v1/uploads HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
                 {X12}Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .into_bytes();
            request.extend_from_slice(&body);
            let half = request.len() / 2;
            let mut stream = connect(addr, client_config(ClientOptions::default())).await?;
            send_bytes(&mut stream, &request[..half]).await?;
            ready.send(()).await.unwrap();
            go.wait_for(|go| *go).await.unwrap();
            send_bytes(&mut stream, &request[half..]).await?;
            read_response_within(&mut stream, PATIENCE).await
        }));
    }
    for _ in 0..20 {
        readies.recv().await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    gateway.terminate();
    tokio::time::sleep(Duration::from_millis(300)).await;
    go.send(true).unwrap();
    let mut acknowledged = Vec::new();
    for sender in senders {
        match sender.await.unwrap() {
            Ok(response) if response.status == 202 => {
                acknowledged.push(response.json()["upload_id"].as_str().unwrap().to_owned());
            }
            Ok(response) => assert_eq!(response.status, 503, "{response:?}"),
            Err(e) => assert_ne!(e.kind(), std::io::ErrorKind::TimedOut, "no answer: {e}"),
        }
    }
    let exit = gateway.wait_exit(Duration::from_secs(60));
    assert!(exit.success(), "clean exit: {exit:?}");
    assert!(
        acknowledged.len() >= 10,
        "the requests in flight were finished: {} of 20",
        acknowledged.len()
    );
    let url = database_url(&env, &data);
    assert_eq!(
        count(
            &url,
            "SELECT count(*) FROM audit_events WHERE kind = 'server.stopped'"
        )
        .await,
        1
    );
    assert_eq!(
        count(&url, "SELECT count(*) FROM audit_events WHERE seq > (SELECT max(seq) FROM audit_events WHERE kind = 'server.stopped')").await,
        0,
        "server.stopped is the last event"
    );
    assert_eq!(
        count(&url, "SELECT count(*) FROM uploads").await,
        acknowledged.len() as i64,
        "nothing unacknowledged was recorded"
    );

    let gateway = Gateway::start_named(dir.path(), &env, "-restarted", false);
    for id in &acknowledged {
        let receipt = receipt_within(gateway.addr, &submitter, id, PATIENCE).await;
        assert_eq!(receipt["state"], "done", "{receipt}");
        assert_eq!(receipt["counts"]["accepted"], 200, "{receipt}");
    }
    assert_eq!(
        count(&url, "SELECT count(*) FROM claims").await,
        200 * acknowledged.len() as i64
    );
    gateway.stop();
    audit_verifies(dir.path(), &env);
}
