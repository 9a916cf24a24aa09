//! The binary's start-up contract: bad configuration, certificates or ports stop it with
//! one clear line naming the setting or file; no panic, no backtrace, non-zero exit.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::helpers::*;

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs the real binary in `dir` with a clean environment and `RUST_BACKTRACE=1` (so a
/// panic would show its backtrace and fail the test's checks).
fn claimgate(dir: &Path, args: &[&str]) -> Run {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_claimgate"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_BACKTRACE", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    Run {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Asserts a refusal: non-zero exit, one error line containing every `needle`, no panic.
fn assert_refused(run: &Run, needles: &[&str]) {
    assert!(!run.ok, "should have failed; stdout:\n{}", run.stdout);
    let errors: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("claimgate: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "one error line expected:\n{}", run.stderr);
    for needle in needles {
        assert!(
            errors[0].contains(needle),
            "{needle:?} not in {:?}",
            errors[0]
        );
    }
    assert!(
        !run.stderr.contains("panicked") && !run.stderr.contains("stack backtrace"),
        "{}",
        run.stderr
    );
}

/// Replaces `from` with `to` in a settings file.
fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{from:?} not in {}", path.display());
    std::fs::write(path, text.replace(from, to)).unwrap();
}

#[test]
fn a_malformed_config_file_names_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        "[http]\nlisten = \"127.0.0.1:1\"\nthis is not toml\n",
    )
    .unwrap();
    let run = claimgate(dir.path(), &["--config", "bad.toml", "serve"]);
    assert_refused(&run, &["bad.toml", "line 3"]);
}

#[test]
fn an_unknown_key_is_named_with_its_path() {
    let dir = config_dir("");
    edit(
        &dir.path().join("claimgate.toml"),
        "[http]\n",
        "[http]\nlisen = 1\n",
    );
    assert_refused(
        &claimgate(dir.path(), &["--config", "claimgate.toml", "check-config"]),
        &["http.lisen"],
    );
}

#[test]
fn an_unreadable_certificate_is_named() {
    let dir = config_dir("");
    edit(
        &dir.path().join("claimgate.toml"),
        &certs().join("server.pem").display().to_string(),
        "/nonexistent/server.pem",
    );
    assert_refused(
        &claimgate(dir.path(), &["--config", "claimgate.toml", "serve"]),
        &["tls.cert_file", "/nonexistent/server.pem"],
    );
}

#[test]
fn a_certificate_that_does_not_match_its_key_is_refused() {
    let dir = config_dir("");
    edit(
        &dir.path().join("claimgate.toml"),
        &certs().join("server.key").display().to_string(),
        &other_certs().join("server.key").display().to_string(),
    );
    assert_refused(
        &claimgate(dir.path(), &["--config", "claimgate.toml", "serve"]),
        &["does not match the private key"],
    );
}

#[test]
fn a_port_in_use_is_named() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = config_dir("");
    let path = dir.path().join("claimgate.toml");
    edit(&path, "127.0.0.1:0", &format!("127.0.0.1:{port}"));
    assert_refused(
        &claimgate(dir.path(), &["--config", "claimgate.toml", "serve"]),
        &["http.listen", &port.to_string(), "in use"],
    );
}

#[test]
fn a_policy_with_a_mistake_stops_start_up_with_its_line() {
    let dir = config_dir("");
    let policy = dir.path().join("policy.csv");
    std::fs::write(
        &policy,
        "# roles\np, security_admin, global, principals, read\np, security_admin, global principals, write\n",
    )
    .unwrap();
    let config = dir.path().join("claimgate.toml");
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/policy.csv");
    edit(
        &config,
        &shipped.display().to_string(),
        &policy.display().to_string(),
    );
    for command in ["check-config", "serve"] {
        assert_refused(
            &claimgate(dir.path(), &["--config", "claimgate.toml", command]),
            &["policy.csv:3:", "expected 5 comma-separated fields"],
        );
    }
    std::fs::write(&policy, "p, superuser, global, principals, read\n").unwrap();
    assert_refused(
        &claimgate(dir.path(), &["--config", "claimgate.toml", "serve"]),
        &["policy.csv:1:", "unknown role `superuser`"],
    );
}

#[test]
fn check_config_accepts_the_dev_profile_and_creates_nothing() {
    let dir = config_dir("");
    let run = claimgate(dir.path(), &["--config", "claimgate.toml", "check-config"]);
    assert!(run.ok, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("ok: TLS certificate and key"));
    assert!(
        !dir.path().join("data").exists(),
        "check-config must not create runtime data"
    );
}

/// Writes a production config: a real-CA-looking certificate is not available offline,
/// so the certificate problem is tested separately from the others.
fn production_dir(master_key_mode: Option<u32>, database: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("master.key");
    let signing_path = dir.path().join("audit-signing.key");
    if let Some(mode) = master_key_mode {
        for path in [&key_path, &signing_path] {
            std::fs::write(path, "11".repeat(32)).unwrap();
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
    }
    let certs = certs();
    let config = format!(
        "profile = \"production\"\n[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n[database]\nurl = \"{database}\"\n[keys]\nmaster_key_file = \"{}\"\naudit_signing_key_file = \"{}\"\n",
        certs.join("server.pem").display(),
        certs.join("server.key").display(),
        key_path.display(),
        signing_path.display(),
    );
    std::fs::write(dir.path().join("prod.toml"), config).unwrap();
    dir
}

fn problems(dir: &Path) -> Vec<String> {
    let run = claimgate(dir, &["--config", "prod.toml", "check-config"]);
    assert!(!run.ok);
    assert!(!run.stderr.contains("panicked"));
    run.stderr.lines().skip(1).map(str::to_owned).collect()
}

#[test]
fn production_refuses_each_unsafe_setting_with_one_line_naming_it() {
    // Example certificate + missing key files + SQLite: four lines, one per setting.
    let lines = problems(production_dir(None, "sqlite://x.db").path());
    assert_eq!(lines.len(), 4, "{lines:#?}");
    assert!(
        lines[0].starts_with("tls.cert_file:") && lines[0].contains("development certificate"),
        "{lines:#?}"
    );
    assert!(
        lines[1].starts_with("keys.master_key_file:") && lines[1].contains("does not exist"),
        "{lines:#?}"
    );
    assert!(
        lines[2].starts_with("keys.audit_signing_key_file:") && lines[2].contains("does not exist"),
        "{lines:#?}"
    );
    assert!(
        lines[3].starts_with("database.url:") && lines[3].contains("database.allow_sqlite"),
        "{lines:#?}"
    );

    // Group-readable key files, and PostgreSQL: the certificate and the modes remain.
    let lines = problems(production_dir(Some(0o640), "postgres://u@127.0.0.1:1/x").path());
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(
        lines[1].starts_with("keys.master_key_file:") && lines[1].contains("chmod 600"),
        "{lines:#?}"
    );
    assert!(
        lines[2].starts_with("keys.audit_signing_key_file:") && lines[2].contains("chmod 600"),
        "{lines:#?}"
    );

    // A 0600 key and SQLite explicitly allowed: only the development certificate is left.
    let dir = production_dir(Some(0o600), "sqlite://x.db");
    let path = dir.path().join("prod.toml");
    edit(&path, "[database]\n", "[database]\nallow_sqlite = true\n");
    let lines = problems(dir.path());
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(lines[0].starts_with("tls.cert_file:"));
}

#[test]
fn production_refuses_a_loose_tls_key_and_requires_explicit_settings() {
    let dir = production_dir(Some(0o600), "postgres://u@127.0.0.1:1/x");
    let loose_key = dir.path().join("server.key");
    std::fs::copy(certs().join("server.key"), &loose_key).unwrap();
    std::fs::set_permissions(&loose_key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let path = dir.path().join("prod.toml");
    edit(
        &path,
        &certs().join("server.key").display().to_string(),
        &loose_key.display().to_string(),
    );
    let lines = problems(dir.path());
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("tls.key_file:") && l.contains("0644")),
        "{lines:#?}"
    );

    let bare = tempfile::tempdir().unwrap();
    std::fs::write(bare.path().join("prod.toml"), "profile = \"production\"\n").unwrap();
    assert_refused(
        &claimgate(bare.path(), &["--config", "prod.toml", "check-config"]),
        &["tls.cert_file", "required"],
    );
}

#[test]
fn dev_certs_writes_private_keys_with_mode_0600() {
    let dir = tempfile::tempdir().unwrap();
    let run = claimgate(dir.path(), &["dev-certs", "--out", "set", "--days", "30"]);
    assert!(run.ok, "{}", run.stderr);
    for (file, mode) in [
        ("ca.pem", 0o644),
        ("ca.key", 0o600),
        ("server.pem", 0o644),
        ("server.key", 0o600),
        ("client.pem", 0o644),
        ("client.key", 0o600),
    ] {
        let meta = std::fs::metadata(dir.path().join("set").join(file)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, mode, "{file}");
    }
    assert_refused(
        &claimgate(dir.path(), &["dev-certs", "--out", "set", "--days", "0"]),
        &["--days"],
    );
}

#[tokio::test]
async fn the_principals_console_bootstraps_an_admin_and_refuses_mistakes_clearly() {
    let dir = config_dir("");
    let console = |args: &[&str]| {
        let mut all = vec!["--config", "claimgate.toml", "principals"];
        all.extend_from_slice(args);
        claimgate(dir.path(), &all)
    };
    let created = console(&[
        "create",
        "--name",
        "root",
        "--kind",
        "person",
        "--role",
        "security_admin",
    ]);
    assert!(created.ok, "{}{}", created.stdout, created.stderr);
    let token = created
        .stdout
        .lines()
        .find(|l| l.starts_with("cgk_"))
        .expect("the key is printed once")
        .to_owned();

    assert_refused(
        &console(&[
            "create",
            "--name",
            "feed",
            "--kind",
            "system",
            "--role",
            "provider_submitter@acme",
        ]),
        &["cannot create principal feed", "unknown provider"],
    );
    assert_refused(
        &console(&["grant", "--name", "root", "--role", "wizard"]),
        &["unknown role \"wizard\""],
    );
    assert_refused(
        &console(&["grant", "--name", "nobody", "--role", "analyst"]),
        &["cannot grant analyst to nobody", "not found"],
    );
    assert_refused(
        &console(&["create", "--name", "Root Admin", "--kind", "person"]),
        &["--name"],
    );
    let granted = console(&["grant", "--name", "root", "--role", "compliance_auditor"]);
    assert!(granted.ok, "{}", granted.stderr);
    let listed = console(&["list"]);
    assert!(
        listed
            .stdout
            .contains("root\tperson\tenabled\troles: compliance_auditor, security_admin"),
        "{}",
        listed.stdout
    );
    assert!(
        !listed.stdout.contains(&token[21..]),
        "list never shows a secret"
    );

    // The printed key is the stored one, and it authenticates until the principal is disabled.
    let settings = claimgate::config::Settings::load(
        Some(&dir.path().join("claimgate.toml")),
        Vec::<(String, String)>::new(),
    )
    .unwrap();
    let store = claimgate::store::Store::connect(&settings.database)
        .await
        .unwrap();
    let parsed = claimgate::authz::ParsedToken::parse(&token).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let record = store.api_key(&parsed.id).await.unwrap().unwrap();
    assert!(record.authenticates(&parsed, now));
    assert!(record.expires_at.is_some(), "a person's key expires");
    assert!(console(&["disable", "--name", "root"]).ok);
    let record = store.api_key(&parsed.id).await.unwrap().unwrap();
    assert!(!record.authenticates(&parsed, now));

    let trail = store.audit_events().await.unwrap();
    claimgate::audit::verify_chain(&trail).unwrap();
    let kinds: Vec<&str> = trail.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["principal.created", "grant.added", "principal.disabled"]
    );
    assert!(
        trail.iter().all(|e| e.body.contains("\"actor\":null")),
        "console changes have no actor"
    );

    // `claimgate audit verify` checks the chain, and names the first altered event.
    let verify = || {
        claimgate(
            dir.path(),
            &["--config", "claimgate.toml", "audit", "verify"],
        )
    };
    let clean = verify();
    assert!(
        clean.ok && clean.stdout.contains("ok: 3 audit events"),
        "{}{}",
        clean.stdout,
        clean.stderr
    );
    use secrecy::ExposeSecret;
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(settings.database.url.expose_secret())
        .await
        .unwrap();
    sqlx::raw_sql(
        "DROP TRIGGER audit_events_no_update; \
         UPDATE audit_events SET body = replace(body, 'compliance_auditor', 'security_admin') WHERE seq = 2",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    assert_refused(&verify(), &["broken at sequence number 2"]);

    // The keys console refuses what it cannot do, with one clear line.
    let keys = |args: &[&str]| {
        let mut all = vec!["--config", "claimgate.toml", "keys"];
        all.extend_from_slice(args);
        claimgate(dir.path(), &all)
    };
    assert_refused(
        &keys(&["rotate", "--provider", "acme"]),
        &["--provider acme: no such provider"],
    );
    assert_refused(
        &keys(&["destroy", "--provider", "acme", "--confirm", "acm"]),
        &["--confirm must repeat the provider code"],
    );
    let listed = keys(&["list"]);
    assert!(
        listed.ok && listed.stdout.is_empty(),
        "{}{}",
        listed.stdout,
        listed.stderr
    );
}
