//! The test harness: spawn the app, make databases, speak HTTP/1.1 over TLS.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use claimgate::app::{Application, dev_certs};
use claimgate::config::Settings;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use secrecy::ExposeSecret;
use sqlx::Connection;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Canary PHI: a value that must never appear in any output.
pub const CANARY: &str = "ZZCANARY-078-05-1120";

/// A config file in a fresh directory using the test certificates and a free port.
pub fn config_dir(extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let certs = certs();
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let config = format!(
        "data_dir = \"{data}\"\n{extra}\n[http]\nlisten = \"127.0.0.1:0\"\n[tls]\ncert_file = \"{cert}\"\nkey_file = \"{key}\"\n\
         [auth]\npolicy_model_file = \"{model}\"\npolicy_file = \"{policy}\"\n\
         [sftp]\nlisten = \"127.0.0.1:0\"\nhost_key_file = \"{host_key}\"\n",
        data = dir.path().join("data").display(),
        cert = certs.join("server.pem").display(),
        key = certs.join("server.key").display(),
        model = policies.join("model.conf").display(),
        policy = policies.join("policy.csv").display(),
        host_key = host_key().display(),
    );
    std::fs::write(dir.path().join("claimgate.toml"), config).unwrap();
    dir
}

/// The example SFTP host key.
pub fn host_key() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("certs-example/sftp_host_ed25519_key")
}

/// A store (journaling like the gateway) and keyring over the database and master key of
/// `settings`, as a second process would have.
pub async fn keyring_for(
    settings: &Settings,
) -> (claimgate::store::Store, Arc<claimgate::keyring::Keyring>) {
    let journal = claimgate::audit::Journal::open(&settings.audit.dir).unwrap();
    let store = claimgate::store::Store::connect(&settings.database)
        .await
        .unwrap()
        .with_journal(journal);
    let kek = Arc::new(
        claimgate::crypto::MasterKey::load(
            &settings.keys.master_key,
            claimgate::config::Profile::Dev,
        )
        .unwrap(),
    );
    let keyring = Arc::new(claimgate::keyring::Keyring::new(store.clone(), kek));
    (store, keyring)
}

/// Records upload `upload` of `provider` (received, never processed), as the upload route
/// does before any claim of it is stored: claims must name their upload.
pub async fn record_upload(store: &claimgate::store::Store, provider: &str, upload: &str) {
    let mut sha256 = [0u8; 32];
    for (slot, byte) in sha256.iter_mut().zip(upload.bytes()) {
        *slot = byte;
    }
    store
        .create_upload(
            &claimgate::providers::ProviderCode::parse(provider).unwrap(),
            &claimgate::store::NewUpload {
                upload_id: upload,
                submitted_by: None,
                sha256: &sha256,
                size_bytes: 0,
                idempotency_key: None,
                interchange: None,
            },
            &claimgate::audit::AuditEvent::new(
                claimgate::audit::EventKind::UploadReceived,
                claimgate::audit::Outcome::Success,
            ),
        )
        .await
        .unwrap();
}

/// Stores `claims` for `provider` as records 1, 2, … of upload `upload`, through the real
/// protect stage (sealed PHI, blind indexes) and store.
pub async fn store_claims_for(
    settings: &Settings,
    provider: &str,
    upload: &str,
    claims: &[claimgate::claims::Claim],
) {
    let (store, keyring) = keyring_for(settings).await;
    record_upload(&store, provider, upload).await;
    let provider = claimgate::providers::ProviderCode::parse(provider).unwrap();
    let sealer = claimgate::protect::ClaimSealer::for_provider(&keyring, &provider)
        .await
        .unwrap();
    let rows: Vec<_> = claims
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let key = claimgate::store::ClaimKey {
                upload_id: upload.to_owned(),
                record_no: i as i64 + 1,
            };
            sealer.seal(key, c).unwrap()
        })
        .collect();
    store.insert_claims(&provider, &rows).await.unwrap();
    keyring.record_seal_counts().await.unwrap();
}

/// The binary, serving with `env`, its output going to files in `dir`.
pub struct Gateway {
    child: Option<std::process::Child>,
    pub addr: SocketAddr,
    pub admin_key: String,
}

impl Gateway {
    pub fn start(dir: &Path, env: &[(String, String)]) -> Self {
        Self::start_named(dir, env, "", true)
    }

    /// Like [`Gateway::start`], its output in `stdout<name>.log` and `stderr<name>.log`.
    /// `expect_key`: wait for the dev bootstrap key (printed on the first start only).
    pub fn start_named(dir: &Path, env: &[(String, String)], name: &str, expect_key: bool) -> Self {
        let stdout = std::fs::File::create(dir.join(format!("stdout{name}.log"))).unwrap();
        let stderr = std::fs::File::create(dir.join(format!("stderr{name}.log"))).unwrap();
        // Owned by the value at once, so that a failed wait below still stops it (Drop).
        let mut gateway = Self {
            child: Some(
                std::process::Command::new(env!("CARGO_BIN_EXE_claimgate"))
                    .arg("serve")
                    .current_dir(dir)
                    .env_clear()
                    .env("PATH", std::env::var("PATH").unwrap_or_default())
                    .envs(env.iter().cloned())
                    .env("CLAIMGATE_LOG__LEVEL", "debug")
                    .env("CLAIMGATE_AUDIT__CHECKPOINT_INTERVAL_SECS", "1")
                    .stdin(std::process::Stdio::null())
                    .stdout(stdout)
                    .stderr(stderr)
                    .spawn()
                    .unwrap(),
            ),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin_key: String::new(),
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let out =
                std::fs::read_to_string(dir.join(format!("stdout{name}.log"))).unwrap_or_default();
            let err =
                std::fs::read_to_string(dir.join(format!("stderr{name}.log"))).unwrap_or_default();
            // The listening line names the address (the port is chosen by the system).
            let port = err
                .lines()
                .find(|l| l.contains("claimgate listening"))
                .and_then(|l| l.split("127.0.0.1:").nth(1))
                .and_then(|rest| {
                    rest.split(|c: char| !c.is_ascii_digit())
                        .next()
                        .and_then(|p| p.parse::<u16>().ok())
                });
            if let Some(port) = port {
                gateway.addr.set_port(port);
                // The dev bootstrap key, printed by the first start only.
                gateway.admin_key = out
                    .split_whitespace()
                    .find(|w| w.starts_with("cgk_"))
                    .unwrap_or_default()
                    .to_owned();
                if gateway.admin_key.is_empty() && expect_key {
                    // The first start prints its bootstrap key after the listening line.
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
                return gateway;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the gateway did not start: {}",
                std::fs::read_to_string(dir.join(format!("stderr{name}.log"))).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL, as a crash or the out-of-memory killer would: no clean-up runs.
    pub fn kill(mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        let _ = child.wait();
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, std::process::Child::id)
    }

    /// Whether the process is still running (it has not exited or crashed).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    /// SIGTERM, without waiting.
    pub fn terminate(&self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits at most `limit` for the process to exit; its exit status.
    pub fn wait_exit(mut self, limit: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("the gateway did not exit within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(mut self) {
        let mut child = self.child.take().unwrap();
        let pid = child.id().to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = child.wait().unwrap();
        assert!(exit.success(), "clean shutdown: {exit:?}");
    }
}

impl Drop for Gateway {
    /// A failed test must not leave the gateway running.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One claim of a generated 837P.
#[derive(Debug, Clone)]
pub struct X12Claim {
    /// CLM01.
    pub id: String,
    /// CLM05-3: '1', '7' or '8'.
    pub frequency: char,
    /// REF*F8 (the claim a replacement or void corrects).
    pub original: Option<String>,
    /// Member id (NM1*IL09); empty leaves it out, which rejects the claim.
    pub member: String,
    /// Patient's last name.
    pub last: String,
    /// Patient's first name.
    pub first: String,
    /// Street (N301); `None`: `ZZ<n> OAK ST` for the n-th claim.
    pub street: Option<String>,
    /// ZIP code (N403).
    pub zip: String,
    /// Birth date, `YYYYMMDD` (DMG02).
    pub born: String,
    /// The HI composites after `HI*`, e.g. `ABK:J020*ABF:R05`.
    pub diagnoses: String,
    /// The lines: SV101 (procedure and modifiers, `:`-separated) and charge in cents;
    /// the claim's charge is their sum.
    pub lines: Vec<(String, i64)>,
}

impl X12Claim {
    /// An original claim with fake PHI derived from `id`.
    pub fn new(id: &str, charge_cents: i64) -> Self {
        Self {
            id: id.to_owned(),
            frequency: '1',
            original: None,
            member: format!("ZZM{id}"),
            last: format!(
                "ZZLAST{}",
                id.replace(|c: char| !c.is_ascii_alphabetic(), "")
            ),
            first: "ZZFIRST".into(),
            street: None,
            zip: "54321".into(),
            born: "19600229".into(),
            diagnoses: "ABK:J020".into(),
            lines: vec![("99213".into(), charge_cents)],
        }
    }
}

/// An 837P (005010X222A1) with `claims`; envelope counts correct.
pub fn x12_837p(claims: &[X12Claim]) -> Vec<u8> {
    let money = |c: i64| format!("{}.{:02}", c / 100, c % 100);
    let mut segments: Vec<String> = vec![
        "ST*837*0001*005010X222A1".into(),
        "BHT*0019*00*1*20240101*1200*CH".into(),
        "NM1*41*2*SUBMITTER*****46*S1".into(),
        "PER*IC*CONTACT*TE*5555550100".into(),
        "NM1*40*2*RECEIVER*****46*R1".into(),
        "HL*1**20*1".into(),
        "NM1*85*2*BILLING CLINIC*****XX*1234567893".into(),
        "N3*1 MAIN ST".into(),
        "N4*CITY*ST*12345".into(),
        "REF*EI*123456789".into(),
    ];
    for (i, c) in claims.iter().enumerate() {
        segments.push(format!("HL*{}*1*22*0", i + 2));
        segments.push("SBR*P*18*GRP1******CI".into());
        if c.member.is_empty() {
            segments.push(format!("NM1*IL*1*{}*{}", c.last, c.first));
        } else {
            segments.push(format!(
                "NM1*IL*1*{}*{}****MI*{}",
                c.last, c.first, c.member
            ));
        }
        match &c.street {
            Some(street) => segments.push(format!("N3*{street}")),
            None => segments.push(format!("N3*ZZ{} OAK ST", i + 1)),
        }
        segments.push(format!("N4*ZZTOWN*ST*{}", c.zip));
        segments.push(format!("DMG*D8*{}*F", c.born));
        segments.push("NM1*PR*2*PAYER*****PI*P1".into());
        let total: i64 = c.lines.iter().map(|l| l.1).sum();
        segments.push(format!(
            "CLM*{}*{}***11:B:{}*Y*A*Y*Y",
            c.id,
            money(total),
            c.frequency
        ));
        if let Some(original) = &c.original {
            segments.push(format!("REF*F8*{original}"));
        }
        segments.push(format!("HI*{}", c.diagnoses));
        for (n, (procedure, cents)) in c.lines.iter().enumerate() {
            segments.push(format!("LX*{}", n + 1));
            segments.push(format!("SV1*HC:{procedure}*{}*UN*1***1", money(*cents)));
            segments.push("DTP*472*D8*20240115".into());
        }
    }
    segments.push(format!("SE*{}*0001", segments.len() + 1));
    let control = control_number_of(&segments);
    let mut out = format!(
        "ISA*00*          *00*          *ZZ*SUBMITTER      *ZZ*RECEIVER       *240101*1200*^*00501*{control}*0*P*:~\nGS*HC*SUB*REC*20240101*1200*1*X*005010X222A1~\n",
    );
    for segment in segments {
        out.push_str(&segment);
        out.push_str("~\n");
    }
    out.push_str(&format!("GE*1*1~\nIEA*1*{control}~\n"));
    out.into_bytes()
}

/// The interchange control number (ISA13) of a file made by [`x12_837p`].
pub fn control_number_in(file: &[u8]) -> String {
    let text = std::str::from_utf8(file).unwrap();
    let at = text.find("*00501*").unwrap() + "*00501*".len();
    text[at..at + 9].to_owned()
}

/// `file` (made by [`x12_837p`]) with its interchange control number (ISA13 and IEA02)
/// set to `control`.
pub fn with_control_number(file: &[u8], control: &str) -> Vec<u8> {
    let old = control_number_in(file);
    String::from_utf8(file.to_vec())
        .unwrap()
        .replace(&format!("*00501*{old}*"), &format!("*00501*{control}*"))
        .replace(&format!("IEA*1*{old}~"), &format!("IEA*1*{control}~"))
        .into_bytes()
}

/// An interchange control number (ISA13) for a file of `segments`, as a sender numbers
/// its interchanges: the same content gets the same number (so a file built twice is the
/// same file), other content another (FNV-1a of the segments, nine digits).
pub fn control_number_of(segments: &[String]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in segments.iter().flat_map(|s| s.bytes().chain([b'~'])) {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{:09}", hash % 1_000_000_000)
}

/// Sends `body` to `POST /v1/uploads` as `token` with extra header lines.
pub async fn upload_at(addr: SocketAddr, token: &str, body: &[u8], headers: &str) -> Response {
    let mut request = format!(
        "POST /v1/uploads HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: {}\r\n{headers}Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request_with(addr, client_config(ClientOptions::default()), &request)
        .await
        .unwrap()
}

/// Polls an upload's receipt until it is `done` or `failed` (at most 60 s).
pub async fn receipt_when_finished(
    addr: SocketAddr,
    token: &str,
    upload_id: &str,
) -> serde_json::Value {
    receipt_within(addr, token, upload_id, Duration::from_secs(60)).await
}

/// Polls an upload's receipt until it is `done` or `failed`, at most `limit` (large
/// files, or a machine busy with other tests).
pub async fn receipt_within(
    addr: SocketAddr,
    token: &str,
    upload_id: &str,
    limit: Duration,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let receipt = call_at(addr, token, "GET", &format!("/v1/uploads/{upload_id}"), "").await;
        assert_eq!(receipt.status, 200, "{receipt:?}");
        let json = receipt.json();
        if json["state"] == "done" || json["state"] == "failed" {
            return json;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still {}",
            json["state"]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A claim carrying distinctive fake PHI: every value starts with `ZZ` and contains `tag`
/// (member `ZZMEM<tag>`, names `ZZFIRST<tag>` and `ZZLAST<tag>`, address `ZZADDR<tag>`,
/// city `ZZCITY<tag>`, ZIP `99<tag>`), born 1950-02-03, with one line.
pub fn phi_claim(source_claim_id: &str, tag: &str) -> claimgate::claims::Claim {
    use claimgate::claims::{Claim, ClaimLine, ClaimType, Money, Phi};
    let mut claim = Claim::new(ClaimType::Professional);
    claim.source_claim_id = source_claim_id.to_owned();
    claim.member_id = Phi::new(Some(format!("ZZMEM{tag}")));
    claim.patient_first_name = Phi::new(Some(format!("ZZFIRST{tag}")));
    claim.patient_last_name = Phi::new(Some(format!("ZZLAST{tag}")));
    claim.birth_date = Phi::new(Some(time::macros::date!(1950 - 02 - 03)));
    claim.address = Phi::new(Some(format!("ZZADDR{tag}")));
    claim.city = Phi::new(Some(format!("ZZCITY{tag}")));
    claim.zip = Phi::new(Some(format!("99{tag}")));
    claim.total_charge = Some(Money::from_cents(12_345));
    claim.lines.push(ClaimLine {
        line_number: 1,
        charge: Some(Money::from_cents(12_345)),
        ..ClaimLine::default()
    });
    claim
}

/// A certificate set made once per test run by the product's own `dev-certs`.
pub fn certs() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("claimgate-test-certs-{}", std::process::id()));
        dev_certs::write_dev_certs(&dir, 90).unwrap();
        dir
    })
}

/// A second, unrelated certificate set (another CA).
pub fn other_certs() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir =
            std::env::temp_dir().join(format!("claimgate-test-other-certs-{}", std::process::id()));
        dev_certs::write_dev_certs(&dir, 90).unwrap();
        dir
    })
}

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The admin URL of the PostgreSQL server for tests, or `None` (with a note on stderr)
/// when it is not reachable and not required.
pub async fn postgres_admin_url(test: &str) -> Option<String> {
    let url = std::env::var("CLAIMGATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let required = std::env::var("CLAIMGATE_TEST_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
    match tokio::time::timeout(Duration::from_secs(5), sqlx::PgConnection::connect(&url)).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Some(url)
        }
        outcome => {
            assert!(
                !required,
                "PostgreSQL is required (CLAIMGATE_TEST_REQUIRE_POSTGRES=1) but unreachable: {outcome:?}"
            );
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: PostgreSQL not reachable (set CLAIMGATE_TEST_POSTGRES_URL)"
            );
            None
        }
    }
}

/// A fresh PostgreSQL database with a random name; dropped when the value is dropped
/// (best effort, on a separate runtime thread).
pub struct TestDatabase {
    pub url: String,
    admin_url: String,
    name: String,
}

impl TestDatabase {
    pub async fn create(admin_url: &str) -> Self {
        let mut random = [0u8; 8];
        aws_lc_rs::rand::fill(&mut random).unwrap();
        let name = format!("claimgate_test_{}", hex::encode(random));
        let mut admin = sqlx::PgConnection::connect(admin_url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap();
        let mut url = url::Url::parse(admin_url).unwrap();
        url.set_path(&name);
        Self {
            url: url.to_string(),
            admin_url: admin_url.to_owned(),
            name,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url).await {
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                        .execute(&mut admin)
                        .await;
                }
            });
        })
        .join();
    }
}

/// Settings for a test: dev profile, port 0, the test certificates, a database in `dir`.
pub fn test_settings(
    dir: &Path,
    database_url: Option<&str>,
    extra_env: &[(&str, &str)],
) -> Settings {
    Settings::load(None, test_env(dir, database_url, extra_env)).unwrap()
}

/// The environment of [`test_settings`], to start the real binary with.
pub fn test_env(
    dir: &Path,
    database_url: Option<&str>,
    extra_env: &[(&str, &str)],
) -> Vec<(String, String)> {
    let certs = certs();
    let mut env: Vec<(String, String)> = vec![
        ("CLAIMGATE_DATA_DIR".into(), dir.display().to_string()),
        ("CLAIMGATE_HTTP__LISTEN".into(), "127.0.0.1:0".into()),
        ("CLAIMGATE_HTTP__WORKERS".into(), "2".into()),
        ("CLAIMGATE_SFTP__LISTEN".into(), "127.0.0.1:0".into()),
        (
            "CLAIMGATE_SFTP__HOST_KEY_FILE".into(),
            host_key().display().to_string(),
        ),
        (
            "CLAIMGATE_TLS__CERT_FILE".into(),
            certs.join("server.pem").display().to_string(),
        ),
        (
            "CLAIMGATE_TLS__KEY_FILE".into(),
            certs.join("server.key").display().to_string(),
        ),
        (
            "CLAIMGATE_TLS__CLIENT_CA_FILE".into(),
            certs.join("ca.pem").display().to_string(),
        ),
    ];
    if let Some(url) = database_url {
        env.push(("CLAIMGATE_DATABASE__URL".into(), url.to_owned()));
    }
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    env.push((
        "CLAIMGATE_AUTH__POLICY_MODEL_FILE".into(),
        policies.join("model.conf").display().to_string(),
    ));
    env.push((
        "CLAIMGATE_AUTH__POLICY_FILE".into(),
        policies.join("policy.csv").display().to_string(),
    ));
    env.extend(
        extra_env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    env
}

/// A running gateway.
pub struct TestApp {
    pub addr: SocketAddr,
    pub sftp: Option<SocketAddr>,
    pub admin_key: String,
    pub settings: Settings,
    handle: actix_web::dev::ServerHandle,
    _dir: tempfile::TempDir,
    _database: Option<TestDatabase>,
}

impl TestApp {
    /// Starts the gateway on SQLite with extra `CLAIMGATE_*` settings.
    pub async fn sqlite(extra_env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let settings = test_settings(dir.path(), None, extra_env);
        Self::start(settings, dir, None).await
    }

    /// Starts the gateway on a fresh PostgreSQL database, or `None` if PostgreSQL is skipped.
    pub async fn postgres(test: &str, extra_env: &[(&str, &str)]) -> Option<Self> {
        let admin = postgres_admin_url(test).await?;
        let database = TestDatabase::create(&admin).await;
        let dir = tempfile::tempdir().unwrap();
        let settings = test_settings(dir.path(), Some(&database.url), extra_env);
        Some(Self::start(settings, dir, Some(database)).await)
    }

    /// Starts on the given backend (`None` when PostgreSQL is skipped).
    pub async fn on(backend: Backend, test: &str, extra_env: &[(&str, &str)]) -> Option<Self> {
        match backend {
            Backend::Sqlite => Some(Self::sqlite(extra_env).await),
            Backend::Postgres => Self::postgres(test, extra_env).await,
        }
    }

    pub async fn start(
        settings: Settings,
        dir: tempfile::TempDir,
        database: Option<TestDatabase>,
    ) -> Self {
        let mut app = Application::build(&settings).await.unwrap();
        let addr = app.https_addr();
        let sftp = app.sftp_addr();
        let admin_key = app
            .take_bootstrap_credential()
            .unwrap()
            .expose_secret()
            .to_owned();
        let handle = app.handle();
        tokio::spawn(app.run_until_stopped());
        Self {
            addr,
            sftp,
            admin_key,
            settings,
            handle,
            _dir: dir,
            _database: database,
        }
    }

    /// Sends one request with the default client and returns the response.
    pub async fn send(&self, request: &str) -> Response {
        request_with(
            self.addr,
            client_config(ClientOptions::default()),
            request.as_bytes(),
        )
        .await
        .unwrap()
    }

    /// An authenticated JSON request.
    pub fn json_request(&self, method: &str, path: &str, body: &str) -> String {
        format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.admin_key,
            body.len()
        )
    }
}

impl TestApp {
    /// A request with `token` as bearer credential (none when empty) and a JSON body
    /// (none when empty).
    pub async fn call(&self, token: &str, method: &str, path: &str, body: &str) -> Response {
        call_at(self.addr, token, method, path, body).await
    }

    /// Creates a principal through the API as the bootstrap admin; returns its token.
    pub async fn principal(&self, name: &str, kind: &str, grants: serde_json::Value) -> String {
        let body = serde_json::json!({ "name": name, "kind": kind, "grants": grants });
        let response = self
            .call(
                &self.admin_key,
                "POST",
                "/v1/admin/principals",
                &body.to_string(),
            )
            .await;
        assert_eq!(response.status, 201, "{response:?}");
        response.json()["token"].as_str().unwrap().to_owned()
    }

    /// Drafts, approves (by a second mapping admin) and activates `mapping` for `provider`.
    pub async fn activate_mapping(&self, provider: &str, mapping: &str) -> i64 {
        activate_mapping_at(self.addr, &self.admin_key, provider, mapping).await
    }

    /// Creates a provider through the API as the bootstrap admin.
    pub async fn provider(&self, code: &str) {
        let body = serde_json::json!({ "code": code, "name": code.to_uppercase() });
        let response = self
            .call(
                &self.admin_key,
                "POST",
                "/v1/admin/providers",
                &body.to_string(),
            )
            .await;
        assert_eq!(response.status, 201, "{response:?}");
    }

    /// The `claimgate_alerts_total` count of `alert`, read from `/metrics` as the admin.
    pub async fn alerts(&self, alert: &str) -> u64 {
        let metrics = self.call(&self.admin_key, "GET", "/metrics", "").await;
        assert_eq!(metrics.status, 200, "{metrics:?}");
        let series = format!("claimgate_alerts_total{{alert=\"{alert}\"}} ");
        let line = metrics.body.lines().find(|l| l.starts_with(&series));
        line.and_then(|l| l[series.len()..].parse().ok())
            .unwrap_or_else(|| panic!("no {series}in {}", metrics.body))
    }

    /// Runs SQL on the app's own database, as the login user (not the serving role).
    pub async fn sql(&self, sql: &str) {
        let url = self.settings.database.url.expose_secret().to_owned();
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        if url.starts_with("sqlite:") {
            let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
            sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
        } else {
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
        }
    }

    /// Runs SQL on the app's own database as the login user; its error, if any.
    pub async fn try_sql(&self, sql: &str) -> Result<(), sqlx::Error> {
        let url = self.settings.database.url.expose_secret().to_owned();
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        if url.starts_with("sqlite:") {
            let mut conn = sqlx::SqliteConnection::connect(&url).await?;
            sqlx::raw_sql(sql).execute(&mut conn).await.map(|_| ())
        } else {
            let mut conn = sqlx::PgConnection::connect(&url).await?;
            sqlx::raw_sql(sql).execute(&mut conn).await.map(|_| ())
        }
    }

    /// The single integer `sql` selects, from the app's own database.
    pub async fn count(&self, sql: &str) -> i64 {
        let url = self.settings.database.url.expose_secret().to_owned();
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        if url.starts_with("sqlite:") {
            let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
            sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
        } else {
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
        }
    }

    /// A keyring over the app's database and master key (as a second process would have).
    pub async fn keyring(&self) -> (claimgate::store::Store, Arc<claimgate::keyring::Keyring>) {
        keyring_for(&self.settings).await
    }

    /// Stores `claims` for `provider` as records 1, 2, … of upload `upload`.
    pub async fn store_claims(
        &self,
        provider: &str,
        upload: &str,
        claims: &[claimgate::claims::Claim],
    ) {
        store_claims_for(&self.settings, provider, upload, claims).await;
    }

    /// The app's audit trail, read through a store of its own.
    pub async fn audit(&self) -> Vec<claimgate::store::StoredAuditEvent> {
        let store = claimgate::store::Store::connect(&self.settings.database)
            .await
            .unwrap();
        store.audit_events().await.unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

/// A request to the gateway at `addr` with `token` as bearer credential (none when empty)
/// and a JSON body (none when empty).
pub async fn call_at(
    addr: SocketAddr,
    token: &str,
    method: &str,
    path: &str,
    body: &str,
) -> Response {
    call_with_headers_at(addr, token, method, path, "", body).await
}

/// [`call_at`] with extra header lines (each ending in `\r\n`).
pub async fn call_with_headers_at(
    addr: SocketAddr,
    token: &str,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> Response {
    let auth = if token.is_empty() {
        String::new()
    } else {
        format!("Authorization: Bearer {token}\r\n")
    };
    let content = if body.is_empty() {
        String::new()
    } else {
        format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        )
    };
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{auth}{headers}{content}Connection: close\r\n\r\n{body}"
    );
    request_with(
        addr,
        client_config(ClientOptions::default()),
        request.as_bytes(),
    )
    .await
    .unwrap()
}

/// Makes `mapping` the provider's active mapping the way an operator must: the admin
/// drafts it, a second mapping admin (created here) approves the content it read, the
/// admin activates it. Returns the version number.
pub async fn activate_mapping_at(
    addr: SocketAddr,
    admin_key: &str,
    provider: &str,
    mapping: &str,
) -> i64 {
    let base = format!("/v1/admin/providers/{provider}/mappings");
    let body = serde_json::json!({ "mapping": mapping, "comment": "test set-up" }).to_string();
    let drafted = call_at(addr, admin_key, "POST", &base, &body).await;
    assert_eq!(drafted.status, 201, "{drafted:?}");
    let version = drafted.json()["version"].as_i64().unwrap();
    let etag = drafted.header("etag").unwrap().to_owned();
    let reviewer = call_at(
        addr,
        admin_key,
        "POST",
        "/v1/admin/principals",
        &serde_json::json!({
            "name": format!("reviewer-{provider}-{version}"),
            "kind": "person",
            "grants": [{ "role": "mapping_admin" }],
        })
        .to_string(),
    )
    .await;
    assert_eq!(reviewer.status, 201, "{reviewer:?}");
    let reviewer = reviewer.json()["token"].as_str().unwrap().to_owned();
    let approved = call_with_headers_at(
        addr,
        &reviewer,
        "POST",
        &format!("{base}/{version}/approve"),
        &format!("If-Match: {etag}\r\n"),
        "",
    )
    .await;
    assert_eq!(approved.status, 200, "{approved:?}");
    let activated = call_at(
        addr,
        admin_key,
        "POST",
        &format!("{base}/{version}/activate"),
        "",
    )
    .await;
    assert_eq!(activated.status, 200, "{activated:?}");
    version
}

/// A GET request with `Connection: close`.
pub fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
}

/// Client TLS options.
#[derive(Debug, Default, Clone, Copy)]
pub struct ClientOptions {
    /// Offer only this TLS version (12 or 13); both when `None`.
    pub only_version: Option<u8>,
    /// Present the client certificate of this set.
    pub client_cert_from: Option<&'static Path>,
}

pub fn client_config(options: ClientOptions) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(certs().join("ca.pem")).unwrap())
        .unwrap();
    let versions: &[&rustls::SupportedProtocolVersion] = match options.only_version {
        Some(12) => &[&rustls::version::TLS12],
        Some(13) => &[&rustls::version::TLS13],
        _ => rustls::ALL_VERSIONS,
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    let config = match options.client_cert_from {
        Some(dir) => {
            let chain = vec![CertificateDer::from_pem_file(dir.join("client.pem")).unwrap()];
            let key = PrivateKeyDer::from_pem_file(dir.join("client.key")).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

/// Opens a TLS connection to the gateway.
pub async fn connect(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

/// A parsed HTTP/1.1 response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Writes all of `bytes` and flushes them. Over TLS, `write_all` alone only hands the
/// plaintext to rustls: when the socket is full at the last write, the final records stay
/// in the client's buffer and a client that then only reads waits forever (the gateway
/// never sees the end of the body). Every TLS write of the tests goes through here.
pub async fn send_bytes<S: AsyncWriteExt + Unpin>(
    stream: &mut S,
    bytes: &[u8],
) -> std::io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await
}

/// Sends raw request bytes and reads the response to the end of the connection.
pub async fn request_with(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    request: &[u8],
) -> std::io::Result<Response> {
    let mut stream = connect(addr, config).await?;
    send_bytes(&mut stream, request).await?;
    read_response(&mut stream).await
}

/// Sends raw request bytes and reads the response to the end of the connection, waiting
/// at most `limit` for it (a large upload on a busy machine).
pub async fn request_within(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    request: &[u8],
    limit: Duration,
) -> std::io::Result<Response> {
    let mut stream = connect(addr, config).await?;
    send_bytes(&mut stream, request).await?;
    read_response_within(&mut stream, limit).await
}

/// Reads one response (until the server closes, or ten seconds pass).
pub async fn read_response<S: AsyncReadExt + Unpin>(stream: &mut S) -> std::io::Result<Response> {
    read_response_within(stream, Duration::from_secs(10)).await
}

/// Reads one response (until the server closes, or `limit` passes).
pub async fn read_response_within<S: AsyncReadExt + Unpin>(
    stream: &mut S,
    limit: Duration,
) -> std::io::Result<Response> {
    let mut raw = Vec::new();
    let read = tokio::time::timeout(limit, async {
        let mut buf = [0u8; 8192];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => return Ok(()),
                Ok(n) => raw.extend_from_slice(&buf[..n]),
                // A close without TLS close_notify after a complete response is fine.
                Err(e) if !raw.is_empty() && e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
    })
    .await;
    match read {
        Ok(result) => result?,
        Err(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no response in time",
            ));
        }
    }
    parse_response(&raw)
}

pub fn parse_response(raw: &[u8]) -> std::io::Result<Response> {
    let bad = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not an HTTP response: {:?}", String::from_utf8_lossy(raw)),
        )
    };
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(bad)?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let body = &raw[split + 4..];
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.strip_prefix("HTTP/1.1 "))
        .and_then(|l| l.get(..3))
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers.iter().any(|(n, v): &(String, String)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    // Chunk sizes count bytes, so a binary body is decoded before it becomes text.
    let body = if chunked {
        dechunk(body).ok_or_else(bad)?
    } else {
        body.to_vec()
    };
    Ok(Response {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// Decodes a chunked body (sizes in hex, each chunk followed by CRLF, ending with 0).
fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size =
            usize::from_str_radix(std::str::from_utf8(&rest[..end]).ok()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(body);
        }
        let after = rest.get(end + 2..)?;
        body.extend_from_slice(after.get(..size)?);
        rest = after.get(size + 2..)?;
    }
}
