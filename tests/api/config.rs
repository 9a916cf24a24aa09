//! Settings: layering, unknown keys, secrets from files, and secrets kept out of `Debug`.

use std::path::PathBuf;

use claimgate::config::{ClientAuth, ConfigError, MasterKeySource, Profile, Settings, TlsProfile};
use secrecy::ExposeSecret;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("claimgate.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

#[test]
fn no_config_means_the_dev_profile_defaults() {
    let s = Settings::load(None, env(&[])).unwrap();
    assert_eq!(s.profile, Profile::Dev);
    assert_eq!(s.http.listen.to_string(), "127.0.0.1:8443");
    assert_eq!(s.tls.profile, TlsProfile::Intermediate);
    assert_eq!(s.tls.client_auth, ClientAuth::Off);
    assert_eq!(s.tls.cert_file, PathBuf::from("certs-example/server.pem"));
    assert_eq!(
        s.database.url.expose_secret(),
        "sqlite://./data/claimgate.db?mode=rwc"
    );
    assert!(
        matches!(&s.keys.master_key, MasterKeySource::File(p) if p == &PathBuf::from("./data/master.key"))
    );
}

#[test]
fn environment_overrides_the_file_which_overrides_defaults() {
    let (_dir, path) = file(
        "[http]\nlisten = \"127.0.0.1:9000\"\nmax_body_bytes = 2048\n[tls]\nprofile = \"modern\"\n",
    );
    let s = Settings::load(
        Some(&path),
        env(&[
            ("CLAIMGATE_HTTP__LISTEN", "127.0.0.1:9001"),
            ("HOME", "/root"),
        ]),
    )
    .unwrap();
    assert_eq!(
        s.http.listen.to_string(),
        "127.0.0.1:9001",
        "env wins over the file"
    );
    assert_eq!(s.http.max_body_bytes, 2048, "the file wins over defaults");
    assert_eq!(s.tls.profile, TlsProfile::Modern);
    let s = Settings::load(
        None,
        env(&[
            ("CLAIMGATE_DATABASE__URL", "postgres://a@h/one"),
            ("DATABASE_URL", "postgres://a@h/two"),
        ]),
    )
    .unwrap();
    assert_eq!(
        s.database.url.expose_secret(),
        "postgres://a@h/one",
        "CLAIMGATE_DATABASE__URL beats DATABASE_URL"
    );
    let s = Settings::load(None, env(&[("DATABASE_URL", "postgres://a@h/two")])).unwrap();
    assert_eq!(s.database.url.expose_secret(), "postgres://a@h/two");
}

#[test]
fn unknown_keys_are_errors_naming_their_path_and_origin() {
    let (_dir, path) = file("[http]\nlisen = \"127.0.0.1:9000\"\n");
    let err = Settings::load(Some(&path), env(&[]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("http.lisen") && err.contains("claimgate.toml"),
        "{err}"
    );
    let (_dir, path) = file("[tsl]\nprofile = \"modern\"\n");
    let err = Settings::load(Some(&path), env(&[]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("tsl"), "{err}");
    let err = Settings::load(None, env(&[("CLAIMGATE_TLS__PROFLE", "modern")]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("tls.profle") && err.contains("CLAIMGATE_TLS__PROFLE"),
        "{err}"
    );
    let err = Settings::load(None, env(&[("CLAIMGATE_TLS__PROFILE", "legacy")]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("tls.profile") && err.contains("CLAIMGATE_TLS__PROFILE"),
        "{err}"
    );
}

#[test]
fn a_secret_may_come_from_a_file_but_not_from_both() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("db-url");
    std::fs::write(
        &secret_file,
        "postgres://gw:pw-from-file@127.0.0.1/claims\n",
    )
    .unwrap();
    let file_env = (
        "CLAIMGATE_DATABASE__URL_FILE",
        secret_file.to_str().unwrap(),
    );
    let s = Settings::load(None, env(&[file_env])).unwrap();
    assert_eq!(
        s.database.url.expose_secret(),
        "postgres://gw:pw-from-file@127.0.0.1/claims"
    );
    let err = Settings::load(
        None,
        env(&[file_env, ("CLAIMGATE_DATABASE__URL", "postgres://x")]),
    )
    .unwrap_err();
    assert!(
        matches!(err, ConfigError::SecretTwice(ref name) if name == "database.url"),
        "{err}"
    );
    let err = Settings::load(
        None,
        env(&[
            ("CLAIMGATE_KEYS__MASTER_KEY", "ab"),
            ("CLAIMGATE_KEYS__MASTER_KEY_FILE", "/k"),
        ]),
    )
    .unwrap_err();
    assert!(err.to_string().contains("keys.master_key"), "{err}");
}

#[test]
fn secrets_never_appear_in_debug_output_or_errors() {
    let password = "ZZCANARY-db-password";
    let master = "ab".repeat(32);
    let s = Settings::load(
        None,
        env(&[
            (
                "CLAIMGATE_DATABASE__URL",
                &format!("postgres://gw:{password}@127.0.0.1/claims"),
            ),
            ("CLAIMGATE_KEYS__MASTER_KEY", &master),
        ]),
    )
    .unwrap();
    let debug = format!("{s:?} {s:#?}");
    assert!(
        !debug.contains(password),
        "database password in Debug output"
    );
    assert!(!debug.contains(&master), "master key in Debug output");
    // A secret of the wrong type is reported without its value.
    let (_dir, path) = file(&format!(
        "[database]\nurl = {{ nested = \"{password}\" }}\n"
    ));
    let err = Settings::load(Some(&path), env(&[]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("database.url") && !err.contains(password),
        "{err}"
    );
    // The store's redaction keeps the password out of connection errors.
    let redacted = claimgate::store::redacted(&format!(
        "postgres://gw:{password}@db.internal:5432/claims?sslmode=verify-full"
    ));
    assert!(
        !redacted.contains(password) && redacted.contains("db.internal"),
        "{redacted}"
    );
}

#[test]
fn zero_limits_are_refused() {
    let err = Settings::load(
        None,
        env(&[("CLAIMGATE_HTTP__MAX_CONNECTIONS_PER_IP", "0")]),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("http.max_connections_per_ip"),
        "{err}"
    );
}
