//! SFTP intake through the real OpenSSH `sftp` client: uploads processed once, receipts
//! in `/outbox`, refused logins, the jail, interrupted and renamed transfers, and
//! concurrent sessions of several providers.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use super::helpers::{Backend, TestApp, host_key};

/// A provider's SFTP account: a principal with `provider_submitter` and an SSH key.
struct Account {
    name: String,
    /// Its API key (the HTTPS side of the same account).
    token: String,
    key: PathBuf,
    dir: tempfile::TempDir,
}

/// What one run of the `sftp` client did.
struct Run {
    ok: bool,
    output: String,
}

/// Makes an ed25519 key with `ssh-keygen` in `dir`.
fn keygen(dir: &Path, name: &str) -> PathBuf {
    let key = dir.join(name);
    let status = std::process::Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "claimgate-test",
            "-f",
        ])
        .arg(&key)
        .status()
        .expect("ssh-keygen (OpenSSH) must be installed");
    assert!(status.success());
    key
}

async fn account(app: &TestApp, name: &str, provider: &str) -> Account {
    let token = app
        .principal(
            name,
            "system",
            json!([{ "role": "provider_submitter", "provider": provider }]),
        )
        .await;
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "id_ed25519");
    map_key(app, name, &key).await;
    Account {
        name: name.to_owned(),
        token,
        key,
        dir,
    }
}

async fn map_key(app: &TestApp, name: &str, key: &Path) {
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let mapped = app
        .call(
            &app.admin_key,
            "POST",
            &format!("/v1/admin/principals/{name}/ssh-keys"),
            &json!({ "public_key": public }).to_string(),
        )
        .await;
    assert_eq!(mapped.status, 201, "{mapped:?}");
    assert!(
        mapped.json()["fingerprint"]
            .as_str()
            .unwrap()
            .starts_with("SHA256:")
    );
}

/// A known_hosts file that trusts exactly the example host key on `addr`.
fn known_hosts(dir: &Path, addr: SocketAddr) -> PathBuf {
    let public = std::fs::read_to_string(host_key().with_extension("pub")).unwrap();
    let mut fields = public.split_whitespace();
    let line = format!(
        "[127.0.0.1]:{} {} {}\n",
        addr.port(),
        fields.next().unwrap(),
        fields.next().unwrap()
    );
    let path = dir.join("known_hosts");
    std::fs::write(&path, line).unwrap();
    path
}

/// The `sftp` command for `user` with `key`, verifying the server's host key, with
/// `options` before the destination.
fn sftp_command(
    addr: SocketAddr,
    user: &str,
    key: &Path,
    dir: &Path,
    options: &[&std::ffi::OsStr],
) -> tokio::process::Command {
    let mut command = tokio::process::Command::new("sftp");
    command
        .arg("-F")
        .arg("/dev/null")
        .arg("-P")
        .arg(addr.port().to_string())
        .arg("-i")
        .arg(key)
        .args(["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"])
        .args(["-o", "StrictHostKeyChecking=yes", "-o", "LogLevel=ERROR"])
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            known_hosts(dir, addr).display()
        ))
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null())
        .args(options)
        .arg(format!("{user}@127.0.0.1"));
    command
}

/// Runs `batch` (sftp batch commands; a leading `-` lets the batch go on past a failure).
async fn sftp(addr: SocketAddr, account: &Account, batch: &str) -> Run {
    sftp_as(addr, &account.name, &account.key, account.dir.path(), batch).await
}

async fn sftp_as(addr: SocketAddr, user: &str, key: &Path, dir: &Path, batch: &str) -> Run {
    let file = dir.join("batch");
    std::fs::write(&file, batch).unwrap();
    let mut command = sftp_command(addr, user, key, dir, &["-b".as_ref(), file.as_os_str()]);
    let output = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .expect("sftp did not finish")
        .unwrap();
    Run {
        ok: output.status.success(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

/// The outbox entries once `count` receipts are there.
async fn outbox_when(addr: SocketAddr, account: &Account, count: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let run = sftp(addr, account, "ls -1 /outbox\n").await;
        assert!(run.ok, "{}", run.output);
        let receipts: Vec<String> = run
            .output
            .lines()
            .filter(|l| l.ends_with(".receipt.json"))
            .map(|l| l.trim().trim_start_matches("/outbox/").to_owned())
            .collect();
        if receipts.len() >= count {
            return receipts;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {count} receipts",
            receipts.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The bodies of the audit events of `kind`.
async fn events(app: &TestApp, kind: &str) -> Vec<serde_json::Value> {
    app.audit()
        .await
        .iter()
        .filter(|e| e.kind == kind)
        .map(|e| serde_json::from_str(&e.body).unwrap())
        .collect()
}

/// The reason codes of the audit events of `kind`.
async fn reasons(app: &TestApp, kind: &str) -> Vec<String> {
    events(app, kind)
        .await
        .iter()
        .filter_map(|e| e["reason"].as_str().map(str::to_owned))
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes).as_ref())
}

async fn gateway(backend: Backend, test: &str, extra: &[(&str, &str)]) -> Option<TestApp> {
    let app = TestApp::on(backend, test, extra).await?;
    assert!(app.sftp.is_some(), "the test settings enable SFTP");
    Some(app)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corpus_file_put_with_openssh_is_processed_and_its_receipt_fetched_back() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(app) = gateway(backend, "sftp_corpus", &[]).await else {
            continue;
        };
        let addr = app.sftp.unwrap();
        app.provider("acme").await;
        app.activate_mapping("acme", "x12").await;
        let acme = account(&app, "acme-sftp", "acme").await;
        let name = "oopfactory-x12parser/837P_5010/Example1_2_And_3_Combined.txt";
        let (file, expected) = super::mappings::corpus_file(name).unwrap_or_else(|| {
            let sample =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sample-837p.x12");
            (
                std::fs::read(sample).unwrap(),
                json!({ "claims": 3, "service_lines": 3 }),
            )
        });
        let local = acme.dir.path().join("claims.837");
        std::fs::write(&local, &file).unwrap();
        // The remote name carries a distinctive token: names may hold PHI, so none is
        // ever recorded.
        let run = sftp(
            addr,
            &acme,
            &format!("pwd\nput {} ZZNAMEQX-claims.837\nls /\n", local.display()),
        )
        .await;
        assert!(run.ok, "{backend:?}: {}", run.output);
        assert!(
            run.output.contains("Remote working directory: /inbox"),
            "{}",
            run.output
        );

        let receipts = outbox_when(addr, &acme, 1).await;
        assert_eq!(receipts.len(), 1, "{receipts:?}");
        let upload_id = receipts[0].trim_end_matches(".receipt.json").to_owned();
        let fetched = acme.dir.path().join("receipt.json");
        let ack = acme.dir.path().join("ack.999");
        let run = sftp(
            addr,
            &acme,
            &format!(
                "get /outbox/{upload_id}.receipt.json {}\nget /outbox/{upload_id}.999 {}\n",
                fetched.display(),
                ack.display()
            ),
        )
        .await;
        assert!(run.ok, "{}", run.output);
        let receipt: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&fetched).unwrap()).unwrap();
        assert_eq!(receipt["state"], "done", "{receipt}");
        assert_eq!(receipt["provider"], "acme");
        assert_eq!(receipt["sha256"], sha256_hex(&file));
        assert_eq!(receipt["counts"]["claims"], expected["claims"], "{receipt}");
        assert_eq!(
            receipt["counts"]["lines"], expected["service_lines"],
            "{receipt}"
        );
        // The same receipt the HTTPS API gives.
        let api = app
            .call(&acme.token, "GET", &format!("/v1/uploads/{upload_id}"), "")
            .await;
        assert_eq!(api.status, 200, "{api:?}");
        assert_eq!(api.json()["counts"], receipt["counts"]);
        assert!(std::fs::read_to_string(&ack).unwrap().starts_with("ISA*"));

        // The same file again is the same upload, not processed twice.
        let run = sftp(addr, &acme, &format!("put {} again.837\n", local.display())).await;
        assert!(run.ok, "{}", run.output);
        assert_eq!(app.count("SELECT count(*) FROM uploads").await, 1);
        for kind in ["sftp.session_opened", "sftp.session_closed"] {
            assert!(!events(&app, kind).await.is_empty(), "{kind} missing");
        }
        let received = events(&app, "upload.received").await;
        assert_eq!(received.len(), 1, "{received:?}");
        assert!(
            received[0]["request_id"]
                .as_str()
                .is_some_and(|id| id.starts_with("sftp-")),
            "{received:?}"
        );
        assert_eq!(received[0]["resource"], format!("upload:{upload_id}"));
        let trail = app.audit().await;
        assert!(trail.iter().all(|e| !e.body.contains("ZZNAMEQX")));
        let journal = walk(&app.settings.audit.dir)
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap())
            .collect::<String>();
        assert!(journal.contains("sftp.session_opened") && !journal.contains("ZZNAMEQX"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_unknown_keys_and_disabled_principals_are_refused() {
    let app = gateway(Backend::Sqlite, "sftp_logins", &[]).await.unwrap();
    let addr = app.sftp.unwrap();
    app.provider("acme").await;
    let acme = account(&app, "acme-sftp", "acme").await;
    assert!(sftp(addr, &acme, "pwd\n").await.ok);

    // A password: the server offers public keys only.
    let mut password = sftp_command(
        addr,
        "acme-sftp",
        &acme.key,
        acme.dir.path(),
        &[
            "-o".as_ref(),
            "PreferredAuthentications=password,keyboard-interactive".as_ref(),
            "-o".as_ref(),
            "PubkeyAuthentication=no".as_ref(),
        ],
    );
    let output = password.output().await.unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("Permission denied (publickey)"),
        "{output:?}"
    );

    // A key nobody mapped, and the right key for the wrong user name.
    let stranger = keygen(acme.dir.path(), "stranger");
    let run = sftp_as(addr, "acme-sftp", &stranger, acme.dir.path(), "pwd\n").await;
    assert!(!run.ok, "{}", run.output);
    let run = sftp_as(addr, "root", &acme.key, acme.dir.path(), "pwd\n").await;
    assert!(!run.ok, "{}", run.output);

    // A disabled principal's key, and a principal with no upload grant.
    let disabled = app
        .call(
            &app.admin_key,
            "POST",
            "/v1/admin/principals/acme-sftp/disable",
            "",
        )
        .await;
    assert!(disabled.status < 300, "{disabled:?}");
    let run = sftp(addr, &acme, "pwd\n").await;
    assert!(!run.ok, "{}", run.output);
    assert!(run.output.contains("Permission denied"), "{}", run.output);
    app.principal(
        "reader",
        "system",
        json!([{ "role": "analyst", "provider": "acme" }]),
    )
    .await;
    let reader_key = keygen(acme.dir.path(), "reader");
    map_key(&app, "reader", &reader_key).await;
    let run = sftp_as(addr, "reader", &reader_key, acme.dir.path(), "pwd\n").await;
    assert!(!run.ok, "{}", run.output);

    let reasons = reasons(&app, "sftp.login_refused").await;
    for reason in [
        "unknown_key",
        "user_does_not_match_key",
        "not_bound_to_one_provider",
    ] {
        assert!(
            reasons.iter().any(|r| r == reason),
            "{reason} missing: {reasons:?}"
        );
    }

    // An RSA key is refused when mapped (this build has no RSA client keys).
    let rsa = acme.dir.path().join("rsa");
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "rsa", "-b", "2048", "-N", "", "-f"])
        .arg(&rsa)
        .status()
        .unwrap();
    assert!(status.success());
    let public = std::fs::read_to_string(rsa.with_extension("pub")).unwrap();
    let refused = app
        .call(
            &app.admin_key,
            "POST",
            "/v1/admin/principals/reader/ssh-keys",
            &json!({ "public_key": public }).to_string(),
        )
        .await;
    assert_eq!(refused.status, 400, "{refused:?}");
    assert!(
        refused.body.contains("key_algorithm_refused"),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_outside_the_jail_is_reachable() {
    let app = gateway(Backend::Sqlite, "sftp_jail", &[]).await.unwrap();
    let addr = app.sftp.unwrap();
    for provider in ["acme", "beta"] {
        app.provider(provider).await;
        app.activate_mapping(provider, "x12").await;
    }
    let acme = account(&app, "acme-sftp", "acme").await;
    let beta = account(&app, "beta-sftp", "beta").await;
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sample-837p.x12");
    let run = sftp(addr, &beta, &format!("put {} b.837\n", sample.display())).await;
    assert!(run.ok, "{}", run.output);
    let beta_receipts = outbox_when(addr, &beta, 1).await;

    let escape = Path::new("/etc/claimgate-sftp-escape");
    assert!(!escape.exists());
    let batch = format!(
        "-cd ..\n\
         -cd /etc\n\
         -put {sample} /etc/claimgate-sftp-escape\n\
         -put {sample} ../claimgate-sftp-escape\n\
         -get ../beta/{beta_file} {local}\n\
         -get /outbox/{beta_file} {local}\n\
         -symlink /etc /inbox/etc\n\
         -ln -s /etc /inbox/etc\n\
         -rm /outbox/{beta_file}\n\
         -mkdir /inbox/sub\n\
         -ls /inbox\n\
         -chmod 777 /outbox\n\
         ls /outbox\n",
        sample = sample.display(),
        beta_file = beta_receipts[0],
        local = acme.dir.path().join("stolen").display(),
    );
    let run = sftp(addr, &acme, &batch).await;
    assert!(run.ok, "{}", run.output);
    assert!(!escape.exists(), "a file was written outside the jail");
    assert!(!acme.dir.path().join("stolen").exists(), "{}", run.output);
    let denied = run.output.matches("Permission denied").count()
        + run.output.matches("outside this account's folders").count();
    assert!(denied >= 9, "{}", run.output);
    assert!(
        run.output.contains("not found"),
        "another provider's receipt is simply not there: {}",
        run.output
    );
    let reasons = reasons(&app, "sftp.refused").await;
    for reason in [
        "path_traversal",
        "outside_jail",
        "symlink",
        "remove",
        "mkdir",
        "inbox_read",
        "setstat",
    ] {
        assert!(
            reasons.iter().any(|r| r == reason),
            "{reason} missing: {reasons:?}"
        );
    }
    // acme's outbox shows none of beta's uploads.
    let run = sftp(addr, &acme, "ls -1 /outbox\n").await;
    assert!(!run.output.contains(&beta_receipts[0]), "{}", run.output);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_transfer_is_never_processed_and_a_renamed_one_is_processed_once() {
    let app = gateway(Backend::Sqlite, "sftp_partial", &[]).await.unwrap();
    let addr = app.sftp.unwrap();
    app.provider("acme").await;
    app.activate_mapping("acme", "x12").await;
    let acme = account(&app, "acme-sftp", "acme").await;

    // 6 MB sent at 2 Mbit/s: the client is killed a couple of seconds in.
    let big = acme.dir.path().join("big.837");
    std::fs::write(&big, vec![b'X'; 6_000_000]).unwrap();
    let batch = acme.dir.path().join("slow-batch");
    std::fs::write(&batch, format!("put {} big.837\n", big.display())).unwrap();
    let mut command = sftp_command(
        addr,
        "acme-sftp",
        &acme.key,
        acme.dir.path(),
        &[
            "-l".as_ref(),
            "2000".as_ref(),
            "-b".as_ref(),
            batch.as_os_str(),
        ],
    );
    let mut child = command.spawn().unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    child.kill().await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let discarded = loop {
        if let Some(event) = events(&app, "sftp.upload_discarded").await.pop() {
            break event;
        }
        assert!(std::time::Instant::now() < deadline, "no discard audited");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(discarded["reason"], "incomplete");
    let kept = discarded["records"].as_u64().unwrap();
    assert!(kept > 0 && kept < 6_000_000, "{discarded}");
    assert_eq!(app.count("SELECT count(*) FROM uploads").await, 0);
    assert_eq!(app.count("SELECT count(*) FROM raw_files").await, 0);
    let raw_dir = &app.settings.ingest.raw_dir;
    let leftovers: Vec<_> = walk(raw_dir);
    assert!(
        leftovers.is_empty(),
        "partial raw files left: {leftovers:?}"
    );

    // Upload under a temporary name, then rename: the rename is the completion.
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sample-837p.x12");
    let run = sftp(
        addr,
        &acme,
        &format!(
            "put {} claims.837.part\nls /\nrename claims.837.part claims.837\n",
            sample.display()
        ),
    )
    .await;
    assert!(run.ok, "{}", run.output);
    let receipts = outbox_when(addr, &acme, 1).await;
    assert_eq!(receipts.len(), 1);
    assert_eq!(app.count("SELECT count(*) FROM uploads").await, 1);
    assert_eq!(
        app.count("SELECT count(*) FROM uploads WHERE state = 'done'")
            .await,
        1
    );

    // A temporary file never renamed is discarded when the session ends.
    let run = sftp(addr, &acme, &format!("put {} other.tmp\n", big.display())).await;
    assert!(run.ok, "{}", run.output);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !reasons(&app, "sftp.upload_discarded")
        .await
        .iter()
        .any(|r| r == "never_renamed")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "never_renamed not audited"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(app.count("SELECT count(*) FROM uploads").await, 1);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_uploads_from_four_providers_are_each_processed_once_in_their_own_provider()
 {
    // PostgreSQL when it is there (the production store), SQLite otherwise.
    let app = match gateway(Backend::Postgres, "sftp_concurrent", &[]).await {
        Some(app) => app,
        None => gateway(Backend::Sqlite, "sftp_concurrent", &[])
            .await
            .unwrap(),
    };
    let addr = app.sftp.unwrap();
    let sample = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sample-837p.x12"),
    )
    .unwrap();
    let providers = ["pa", "pb", "pc", "pd"];
    let mut accounts = Vec::new();
    for code in providers {
        app.provider(code).await;
        app.activate_mapping(code, "x12").await;
        accounts.push(account(&app, &format!("{code}-sftp"), code).await);
    }
    let mut runs = Vec::new();
    for (p, account) in accounts.iter().enumerate() {
        for n in 0..5 {
            // Each file differs (its claim ids and its interchange control number, as a
            // sender numbers its files), so none is a duplicate or a replay of another.
            let control = format!("{:09}", p * 10 + n + 1);
            let body = sample
                .replace("CLM*SAMPLE", &format!("CLM*P{p}F{n}S"))
                .replace("*00501*000000001*", &format!("*00501*{control}*"))
                .replace("IEA*1*000000001", &format!("IEA*1*{control}"));
            let local = account.dir.path().join(format!("f{n}.837"));
            std::fs::write(&local, body).unwrap();
            let dir = tempfile::tempdir().unwrap();
            let batch = format!("put {} f{n}.837\n", local.display());
            let name = account.name.clone();
            let key = account.key.clone();
            runs.push(tokio::spawn(async move {
                let run = sftp_as(addr, &name, &key, dir.path(), &batch).await;
                assert!(run.ok, "{name} f{n}: {}", run.output);
            }));
        }
    }
    for run in runs {
        run.await.unwrap();
    }
    for (p, account) in accounts.iter().enumerate() {
        let receipts = outbox_when(addr, account, 5).await;
        assert_eq!(receipts.len(), 5, "{receipts:?}");
        let code = providers[p];
        let done = app
            .count(&format!(
                "SELECT count(*) FROM uploads u JOIN providers p ON p.id = u.provider_id \
                 WHERE p.code = '{code}' AND u.state = 'done' AND u.attempts = 1"
            ))
            .await;
        assert_eq!(done, 5, "{code}");
        let claims = app
            .count(&format!(
                "SELECT count(*) FROM claims c JOIN providers p ON p.id = c.provider_id \
                 WHERE p.code = '{code}' AND c.source_claim_id LIKE 'P{p}F%'"
            ))
            .await;
        assert_eq!(claims, 15, "{code}: three claims in each of five files");
    }
    assert_eq!(app.count("SELECT count(*) FROM uploads").await, 20);
    assert_eq!(app.count("SELECT count(*) FROM claims").await, 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_sessions_idle_time_and_failed_logins_are_limited() {
    let app = gateway(
        Backend::Sqlite,
        "sftp_limits",
        &[
            ("CLAIMGATE_INGEST__MAX_UPLOAD_BYTES", "4096"),
            ("CLAIMGATE_SFTP__MAX_SESSIONS_PER_PROVIDER", "1"),
            ("CLAIMGATE_SFTP__IDLE_TIMEOUT_SECS", "2"),
            ("CLAIMGATE_SFTP__MAX_AUTH_FAILURES", "3"),
        ],
    )
    .await
    .unwrap();
    let addr = app.sftp.unwrap();
    app.provider("acme").await;
    let acme = account(&app, "acme-sftp", "acme").await;

    // Over the size limit: refused mid-transfer, discarded, never an upload.
    let big = acme.dir.path().join("big.837");
    std::fs::write(&big, vec![b'X'; 20_000]).unwrap();
    let run = sftp(addr, &acme, &format!("put {} big.837\n", big.display())).await;
    assert!(!run.ok, "{}", run.output);
    assert!(run.output.contains("write remote"), "{}", run.output);
    assert_eq!(app.count("SELECT count(*) FROM uploads").await, 0);
    assert!(
        reasons(&app, "sftp.upload_discarded")
            .await
            .contains(&"too_large".to_owned())
    );

    // One session at a time for this provider; an idle one is closed after 2 s.
    let mut idle = sftp_command(addr, "acme-sftp", &acme.key, acme.dir.path(), &[]);
    idle.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut idle = idle.spawn().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while events(&app, "sftp.session_opened").await.len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the idle session did not open"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let run = sftp(addr, &acme, "pwd\n").await;
    assert!(!run.ok, "a second session was let in: {}", run.output);
    assert!(
        reasons(&app, "sftp.login_refused")
            .await
            .contains(&"too_many_sessions".to_owned())
    );
    // The client notices the server closing the idle connection and exits.
    tokio::time::timeout(Duration::from_secs(20), idle.wait())
        .await
        .expect("the idle session was not closed")
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while events(&app, "sftp.session_closed").await.len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the idle session's end was not audited"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let run = sftp(addr, &acme, "pwd\n").await;
    assert!(run.ok, "after the idle session ended: {}", run.output);

    // Three refused logins from an address lock it out, even with the right key.
    let stranger = keygen(acme.dir.path(), "stranger");
    for _ in 0..3 {
        let run = sftp_as(addr, "acme-sftp", &stranger, acme.dir.path(), "pwd\n").await;
        assert!(!run.ok, "{}", run.output);
    }
    let run = sftp(addr, &acme, "pwd\n").await;
    assert!(!run.ok, "a locked-out address logged in: {}", run.output);
    let lockouts = events(&app, "auth.lockout").await;
    assert_eq!(
        lockouts.len(),
        1,
        "one lock-out, however often it is knocked on: {lockouts:?}"
    );
    assert_eq!(app.alerts("auth_lockout").await, 1);
    assert!(
        reasons(&app, "sftp.login_refused")
            .await
            .contains(&"too_many_failures".to_owned())
    );
}

/// HT-03 on SFTP: thirty clients stall before logging in (ten send nothing, ten send
/// their SSH version and stop, ten trickle a packet one byte a second). The server closes
/// each within its idle timeout (2 s here; a margin for a loaded machine), and a real
/// `sftp` session during the stall works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_clients_before_login_are_closed_and_a_real_one_gets_in() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = gateway(
        Backend::Sqlite,
        "sftp_stalled",
        &[("CLAIMGATE_SFTP__IDLE_TIMEOUT_SECS", "2")],
    )
    .await
    .unwrap();
    let addr = app.sftp.unwrap();
    app.provider("acme").await;
    let acme = account(&app, "acme-sftp", "acme").await;
    let mut stalled = Vec::new();
    for i in 0..30 {
        stalled.push(tokio::spawn(async move {
            let started = std::time::Instant::now();
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (mut read, mut write) = stream.split();
            let stall = async {
                if i >= 10 {
                    write.write_all(b"SSH-2.0-stalled\r\n").await?;
                }
                if i >= 20 {
                    // A 256-byte packet that never completes: its length, then a byte a second.
                    for byte in [0u8, 0, 1, 0].into_iter().chain(std::iter::repeat_n(0, 26)) {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        write.write_all(&[byte]).await?;
                    }
                }
                std::future::pending::<()>().await;
                Ok::<_, std::io::Error>(())
            };
            // Drain what the server sends (its version, its key exchange) until it closes.
            let closed = async {
                let mut buf = [0u8; 4096];
                while read.read(&mut buf).await.is_ok_and(|n| n > 0) {}
            };
            let outcome = tokio::time::timeout(Duration::from_secs(30), async {
                tokio::select! {
                    () = closed => {}
                    _ = stall => {}
                }
            })
            .await;
            assert!(outcome.is_ok(), "stalled client {i} was never closed");
            started.elapsed()
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let run = sftp(addr, &acme, "pwd\n").await;
    assert!(run.ok, "a real session during the stall: {}", run.output);
    for (i, client) in stalled.into_iter().enumerate() {
        let held = client.await.unwrap();
        assert!(
            held < Duration::from_secs(8),
            "stalled client {i} was held for {held:?}"
        );
    }
}

/// SF-08: the raw store's disk fills up during an SFTP upload. The client gets a failure
/// status, the partial file is removed, the discard is audited as `storage_full`, and
/// nothing is recorded; once there is room the same file goes through and is processed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_raw_store_fails_the_sftp_upload_and_recovers() {
    let Some(disk) = crate::faults::SmallDisk::mount("sftp_raw_store_full", "1m") else {
        return;
    };
    let raw = disk.path().join("raw");
    let app = gateway(
        Backend::Sqlite,
        "sftp_disk_full",
        &[("CLAIMGATE_INGEST__RAW_DIR", raw.to_str().unwrap())],
    )
    .await
    .unwrap();
    let addr = app.sftp.unwrap();
    app.provider("acme").await;
    app.activate_mapping("acme", "x12").await;
    let acme = account(&app, "acme-sftp", "acme").await;
    let claims: Vec<_> = (0..10_000)
        .map(|i| crate::helpers::X12Claim::new(&format!("D{i}"), 100 + i))
        .collect();
    let big = acme.dir.path().join("big.837");
    std::fs::write(&big, crate::helpers::x12_837p(&claims)).unwrap();
    assert!(std::fs::metadata(&big).unwrap().len() > 2 << 20);

    let put = format!("put {} big.837\n", big.display());
    let run = sftp(addr, &acme, &put).await;
    assert!(!run.ok, "{}", run.output);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !reasons(&app, "sftp.upload_discarded")
        .await
        .contains(&"storage_full".to_owned())
    {
        assert!(
            std::time::Instant::now() < deadline,
            "storage_full not audited"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(app.count("SELECT count(*) FROM uploads").await, 0);
    assert_eq!(app.count("SELECT count(*) FROM raw_files").await, 0);
    assert_eq!(
        disk.files(),
        Vec::<PathBuf>::new(),
        "the partial file is removed"
    );

    disk.resize("16m");
    let run = sftp(addr, &acme, &put).await;
    assert!(run.ok, "{}", run.output);
    let receipts = outbox_when(addr, &acme, 1).await;
    assert_eq!(receipts.len(), 1);
    assert_eq!(
        app.count("SELECT count(*) FROM uploads WHERE state = 'done'")
            .await,
        1
    );
    assert_eq!(app.count("SELECT count(*) FROM claims").await, 10_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sftp_put_that_repeats_an_interchange_is_refused_sqlite() {
    let app = gateway(Backend::Sqlite, "sftp_replay", &[]).await.unwrap();
    let addr = app.sftp.unwrap();
    app.provider("acme").await;
    app.activate_mapping("acme", "x12").await;
    let acme = account(&app, "acme-sftp", "acme").await;
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sample-837p.x12");
    let run = sftp(
        addr,
        &acme,
        &format!("put {} first.837\n", sample.display()),
    )
    .await;
    assert!(run.ok, "{}", run.output);
    outbox_when(addr, &acme, 1).await;

    // Other claims under the sample's sender, receiver and ISA13: the put fails.
    let text = std::fs::read_to_string(&sample).unwrap();
    assert!(text.contains("*00501*000000001*"));
    let edited = acme.dir.path().join("edited.837");
    std::fs::write(&edited, text.replace("SAMPLE", "EDITED")).unwrap();
    let run = sftp(
        addr,
        &acme,
        &format!("put {} edited.837\n", edited.display()),
    )
    .await;
    assert!(!run.ok, "{}", run.output);
    assert_eq!(app.count("SELECT count(*) FROM uploads").await, 1);
    assert_eq!(app.count("SELECT count(*) FROM raw_files").await, 1);
    let discarded = events(&app, "sftp.upload_discarded").await;
    assert_eq!(discarded.len(), 1, "{discarded:?}");
    assert_eq!(discarded[0]["reason"], "interchange_replay");
    assert_eq!(discarded[0]["records"], text.len() as u64);

    // With a control number of its own, the same content is taken.
    let renumbered = acme.dir.path().join("renumbered.837");
    std::fs::write(
        &renumbered,
        text.replace("SAMPLE", "EDITED")
            .replace("*00501*000000001*", "*00501*000000002*")
            .replace("IEA*1*000000001", "IEA*1*000000002"),
    )
    .unwrap();
    let run = sftp(
        addr,
        &acme,
        &format!("put {} renumbered.837\n", renumbered.display()),
    )
    .await;
    assert!(run.ok, "{}", run.output);
    outbox_when(addr, &acme, 2).await;
}
