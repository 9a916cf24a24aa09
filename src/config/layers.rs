//! Reading the layers (file, environment) into one table and resolving it to [`Settings`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use super::{
    AuditSettings, AuthSettings, ClientAuth, DatabaseSettings, HttpSettings, IngestSettings,
    KeySettings, LogFormat, LogSettings, MasterKeySource, Profile, S3Settings, Settings,
    SftpSettings, TlsProfile, TlsSettings,
};

/// Prefix of environment variables that override settings.
const ENV_PREFIX: &str = "CLAIMGATE_";
/// Environment variables with the prefix that are not settings: the config file path,
/// and the `CLAIMGATE_TEST_` family read by the test harness.
fn is_setting_variable(name: &str) -> bool {
    name != "CLAIMGATE_CONFIG" && !name.starts_with("CLAIMGATE_TEST_")
}
/// Paths of settings whose values are secret: their values never appear in errors.
const SECRET_PATHS: &[&str] = &["database.url", "keys.master_key"];

/// Why the configuration could not be loaded. Each message is one line naming the
/// file or setting and the problem; none contains a secret value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The config file is not valid TOML.
    #[error("config file {path}, line {line}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// What is wrong (never the text of the line).
        message: String,
    },
    /// A setting is unknown or has a value of the wrong shape.
    #[error("{origin}: setting `{path}`: {message}")]
    Invalid {
        /// Where the setting came from (file or environment variable).
        origin: String,
        /// Dotted path of the setting.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A secret was given both directly and as a file.
    #[error("both `{0}` and `{0}_file` are set: keep one")]
    SecretTwice(String),
    /// A secret file could not be read.
    #[error("setting `{setting}`: cannot read {path}: {source}")]
    SecretFile {
        /// The `_file` setting.
        setting: String,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A required setting has no value for this profile.
    #[error("setting `{0}` is required in the production profile")]
    Missing(&'static str),
    /// A setting's value is out of its allowed range.
    #[error("setting `{path}`: {message}")]
    OutOfRange {
        /// Dotted path of the setting.
        path: &'static str,
        /// What is allowed.
        message: &'static str,
    },
}

/// The file layout, every field optional so that layers can be merged before defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    profile: Option<Profile>,
    data_dir: Option<PathBuf>,
    #[serde(default)]
    http: RawHttp,
    #[serde(default)]
    tls: RawTls,
    #[serde(default)]
    database: RawDatabase,
    #[serde(default)]
    keys: RawKeys,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    auth: RawAuth,
    #[serde(default)]
    audit: RawAudit,
    #[serde(default)]
    ingest: RawIngest,
    #[serde(default)]
    sftp: RawSftp,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSftp {
    enabled: Option<bool>,
    listen: Option<SocketAddr>,
    host_key_file: Option<PathBuf>,
    max_sessions_per_provider: Option<u64>,
    idle_timeout_secs: Option<u64>,
    max_auth_failures: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIngest {
    raw_dir: Option<PathBuf>,
    max_upload_bytes: Option<u64>,
    workers: Option<usize>,
    batch_claims: Option<u64>,
    lease_secs: Option<u64>,
    s3: Option<RawS3>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawS3 {
    bucket: Option<String>,
    region: Option<String>,
    endpoint: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<SecretString>,
    secret_access_key_file: Option<PathBuf>,
    allow_http: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    policy_model_file: Option<PathBuf>,
    policy_file: Option<PathBuf>,
    max_failures: Option<u32>,
    failure_window_secs: Option<u64>,
    person_key_ttl_hours: Option<u64>,
    break_glass_max_minutes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    listen: Option<SocketAddr>,
    workers: Option<usize>,
    max_body_bytes: Option<u64>,
    max_sample_bytes: Option<u64>,
    body_rate_window_secs: Option<u64>,
    body_min_bytes_per_sec: Option<u64>,
    max_connections_per_ip: Option<usize>,
    request_head_timeout_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    profile: Option<TlsProfile>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    client_auth: Option<ClientAuth>,
    client_ca_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    url: Option<SecretString>,
    url_file: Option<PathBuf>,
    allow_sqlite: Option<bool>,
    max_connections: Option<u32>,
    acquire_timeout_secs: Option<u64>,
    role: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeys {
    master_key: Option<SecretString>,
    master_key_file: Option<PathBuf>,
    audit_signing_key: Option<SecretString>,
    audit_signing_key_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    dir: Option<PathBuf>,
    checkpoint_interval_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    level: Option<String>,
    format: Option<LogFormat>,
}

/// Loads and resolves all layers.
pub(super) fn load(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Settings, ConfigError> {
    let mut table = toml::Table::new();
    let mut origins = BTreeMap::new();
    let file_origin = file.map(|p| format!("config file {}", p.display()));
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
            path: path.to_owned(),
            source,
        })?;
        table = text
            .parse::<toml::Table>()
            .map_err(|e| ConfigError::Syntax {
                path: path.to_owned(),
                line: e
                    .span()
                    .and_then(|s| text.get(..s.start))
                    .map_or(1, |before| before.matches('\n').count() + 1),
                message: e.message().trim().to_owned(),
            })?;
    }
    apply_env(&mut table, &mut origins, env)?;
    let raw: RawSettings =
        serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
            let path = e.path().to_string();
            let origin = origins
                .get(&path)
                .cloned()
                .or_else(|| file_origin.clone())
                .unwrap_or_else(|| "environment".to_owned());
            let message = if SECRET_PATHS.contains(&path.as_str()) {
                "must be a string".to_owned()
            } else {
                e.into_inner().message().trim().to_owned()
            };
            ConfigError::Invalid {
                origin,
                path,
                message,
            }
        })?;
    resolve(raw)
}

/// Merges `CLAIMGATE_*` variables (and `DATABASE_URL`) into the table.
fn apply_env(
    table: &mut toml::Table,
    origins: &mut BTreeMap<String, String>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    let mut vars: Vec<(String, String)> = env.into_iter().collect();
    // DATABASE_URL first so that CLAIMGATE_DATABASE__URL overrides it.
    vars.sort_by_key(|(name, _)| name != "DATABASE_URL");
    for (name, value) in vars {
        let path: Vec<String> = if name == "DATABASE_URL" {
            vec!["database".into(), "url".into()]
        } else if let Some(rest) = name.strip_prefix(ENV_PREFIX) {
            if !is_setting_variable(&name) {
                continue;
            }
            rest.split("__").map(str::to_ascii_lowercase).collect()
        } else {
            continue;
        };
        let dotted = path.join(".");
        // Sections are one level deep, except `ingest.s3`.
        let depth = if path.len() == 3 && path[0] == "ingest" && path[1] == "s3" {
            2
        } else {
            path.len()
        };
        if path.iter().any(String::is_empty) || depth > 2 {
            return Err(ConfigError::Invalid {
                origin: format!("environment variable {name}"),
                path: dotted,
                message: "unknown setting".into(),
            });
        }
        let mut node = &mut *table;
        for section in path.iter().take(path.len() - 1) {
            let entry = node
                .entry(section.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            node = match entry {
                toml::Value::Table(t) => t,
                _ => {
                    return Err(ConfigError::Invalid {
                        origin: format!("environment variable {name}"),
                        path: dotted,
                        message: "not a section".into(),
                    });
                }
            };
        }
        if let Some(key) = path.last() {
            node.insert(key.clone(), env_value(&value));
            origins.insert(dotted, format!("environment variable {name}"));
        }
    }
    Ok(())
}

/// Environment values are strings; whole integers and `true`/`false` become TOML values
/// so that numeric and boolean settings can be overridden.
fn env_value(value: &str) -> toml::Value {
    if let Ok(i) = value.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    match value {
        "true" => toml::Value::Boolean(true),
        "false" => toml::Value::Boolean(false),
        other => toml::Value::String(other.to_owned()),
    }
}

/// Reads `x` or `x_file`, refusing both.
fn secret(
    name: &str,
    direct: Option<SecretString>,
    file: Option<PathBuf>,
) -> Result<Option<SecretSource>, ConfigError> {
    match (direct, file) {
        (Some(_), Some(_)) => Err(ConfigError::SecretTwice(name.to_owned())),
        (Some(value), None) => Ok(Some(SecretSource::Value(value))),
        (None, Some(path)) => Ok(Some(SecretSource::File(path))),
        (None, None) => Ok(None),
    }
}

enum SecretSource {
    Value(SecretString),
    File(PathBuf),
}

fn read_secret_file(setting: &str, path: &Path) -> Result<SecretString, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::SecretFile {
        setting: setting.to_owned(),
        path: path.to_owned(),
        source,
    })?;
    Ok(SecretString::from(text.trim().to_owned()))
}

fn resolve(raw: RawSettings) -> Result<Settings, ConfigError> {
    let profile = raw.profile.unwrap_or(Profile::Dev);
    let dev = profile == Profile::Dev;
    let data_dir = raw.data_dir.unwrap_or_else(|| PathBuf::from("./data"));
    let example = |file: &str| PathBuf::from("certs-example").join(file);
    let dev_default = |value: Option<PathBuf>, name: &'static str, default: PathBuf| match value {
        Some(v) => Ok(v),
        None if dev => Ok(default),
        None => Err(ConfigError::Missing(name)),
    };

    let http = HttpSettings {
        listen: raw
            .http
            .listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8443))),
        workers: raw.http.workers.unwrap_or(0),
        max_body_bytes: positive(raw.http.max_body_bytes, 1024 * 1024, "http.max_body_bytes")?,
        max_sample_bytes: positive(
            raw.http.max_sample_bytes,
            16 * 1024 * 1024,
            "http.max_sample_bytes",
        )?,
        body_rate_window: Duration::from_secs(positive(
            raw.http.body_rate_window_secs,
            10,
            "http.body_rate_window_secs",
        )?),
        body_min_bytes_per_sec: raw.http.body_min_bytes_per_sec.unwrap_or(1024),
        max_connections_per_ip: positive(
            raw.http.max_connections_per_ip.map(|n| n as u64),
            64,
            "http.max_connections_per_ip",
        )? as usize,
        request_head_timeout: Duration::from_secs(positive(
            raw.http.request_head_timeout_secs,
            5,
            "http.request_head_timeout_secs",
        )?),
    };

    let client_auth = raw.tls.client_auth.unwrap_or(ClientAuth::Off);
    let client_ca_file = match (raw.tls.client_ca_file, client_auth) {
        (Some(path), _) => Some(path),
        (None, ClientAuth::Off) => None,
        (None, _) if dev => Some(example("ca.pem")),
        (None, _) => return Err(ConfigError::Missing("tls.client_ca_file")),
    };
    let tls = TlsSettings {
        profile: raw.tls.profile.unwrap_or(TlsProfile::Intermediate),
        cert_file: dev_default(raw.tls.cert_file, "tls.cert_file", example("server.pem"))?,
        key_file: dev_default(raw.tls.key_file, "tls.key_file", example("server.key"))?,
        client_auth,
        client_ca_file,
    };

    let url = match secret("database.url", raw.database.url, raw.database.url_file)? {
        Some(SecretSource::Value(v)) => v,
        Some(SecretSource::File(p)) => read_secret_file("database.url_file", &p)?,
        None if dev => SecretString::from(format!(
            "sqlite://{}?mode=rwc",
            data_dir.join("claimgate.db").display()
        )),
        None => return Err(ConfigError::Missing("database.url")),
    };
    let database = DatabaseSettings {
        url,
        allow_sqlite: raw.database.allow_sqlite.unwrap_or(false),
        max_connections: positive(
            raw.database.max_connections.map(u64::from),
            10,
            "database.max_connections",
        )? as u32,
        acquire_timeout: Duration::from_secs(positive(
            raw.database.acquire_timeout_secs,
            3,
            "database.acquire_timeout_secs",
        )?),
        role: match raw.database.role {
            None => "claimgate_api".to_owned(),
            Some(role) if is_role_name(&role) => role,
            Some(_) => {
                return Err(ConfigError::OutOfRange {
                    path: "database.role",
                    message: "must be a PostgreSQL role name: a-z, 0-9 and _, starting with a letter or _",
                });
            }
        },
    };
    let auth = AuthSettings {
        policy_model_file: raw
            .auth
            .policy_model_file
            .unwrap_or_else(|| PathBuf::from("policies/model.conf")),
        policy_file: raw
            .auth
            .policy_file
            .unwrap_or_else(|| PathBuf::from("policies/policy.csv")),
        max_failures: positive(
            raw.auth.max_failures.map(u64::from),
            10,
            "auth.max_failures",
        )? as u32,
        failure_window: Duration::from_secs(positive(
            raw.auth.failure_window_secs,
            300,
            "auth.failure_window_secs",
        )?),
        person_key_ttl: Duration::from_secs(
            3600 * positive(
                raw.auth.person_key_ttl_hours,
                12,
                "auth.person_key_ttl_hours",
            )?,
        ),
        break_glass_max: Duration::from_secs(
            60 * positive(
                raw.auth.break_glass_max_minutes,
                240,
                "auth.break_glass_max_minutes",
            )?,
        ),
    };

    let master_key = match secret(
        "keys.master_key",
        raw.keys.master_key,
        raw.keys.master_key_file,
    )? {
        Some(SecretSource::Value(v)) => MasterKeySource::Inline(v),
        Some(SecretSource::File(p)) => MasterKeySource::File(p),
        None if dev => MasterKeySource::File(data_dir.join("master.key")),
        None => return Err(ConfigError::Missing("keys.master_key_file")),
    };

    let audit_signing_key = match secret(
        "keys.audit_signing_key",
        raw.keys.audit_signing_key,
        raw.keys.audit_signing_key_file,
    )? {
        Some(SecretSource::Value(v)) => MasterKeySource::Inline(v),
        Some(SecretSource::File(p)) => MasterKeySource::File(p),
        None if dev => MasterKeySource::File(data_dir.join("audit-signing.key")),
        None => return Err(ConfigError::Missing("keys.audit_signing_key_file")),
    };
    let audit = AuditSettings {
        dir: raw.audit.dir.unwrap_or_else(|| data_dir.join("audit")),
        checkpoint_interval: Duration::from_secs(positive(
            raw.audit.checkpoint_interval_secs,
            60,
            "audit.checkpoint_interval_secs",
        )?),
    };

    let ingest = IngestSettings {
        raw_dir: raw.ingest.raw_dir.unwrap_or_else(|| data_dir.join("raw")),
        max_upload_bytes: positive(
            raw.ingest.max_upload_bytes,
            8 << 30,
            "ingest.max_upload_bytes",
        )?,
        workers: raw.ingest.workers.unwrap_or(1),
        batch_claims: usize::try_from(positive(
            raw.ingest.batch_claims,
            2_000,
            "ingest.batch_claims",
        )?)
        .unwrap_or(usize::MAX),
        lease: Duration::from_secs(positive(raw.ingest.lease_secs, 60, "ingest.lease_secs")?),
        s3: match raw.ingest.s3 {
            None => None,
            Some(s3) => Some(S3Settings {
                bucket: s3
                    .bucket
                    .filter(|b| !b.is_empty())
                    .ok_or(ConfigError::Missing("ingest.s3.bucket"))?,
                region: s3.region.unwrap_or_else(|| "us-east-1".to_owned()),
                endpoint: s3.endpoint,
                access_key_id: s3.access_key_id,
                secret_access_key: match secret(
                    "ingest.s3.secret_access_key",
                    s3.secret_access_key,
                    s3.secret_access_key_file,
                )? {
                    Some(SecretSource::Value(v)) => Some(v),
                    Some(SecretSource::File(p)) => {
                        Some(read_secret_file("ingest.s3.secret_access_key_file", &p)?)
                    }
                    None => None,
                },
                allow_http: s3.allow_http.unwrap_or(false),
            }),
        },
    };

    // SFTP is on by default in the dev profile (with the example host key) and off in
    // production unless enabled with a host key of its own.
    let sftp_enabled = raw.sftp.enabled.unwrap_or(dev);
    let sftp = SftpSettings {
        listen: sftp_enabled.then(|| {
            raw.sftp
                .listen
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 2222)))
        }),
        host_key_file: match raw.sftp.host_key_file {
            Some(path) => path,
            None if dev || !sftp_enabled => example("sftp_host_ed25519_key"),
            None => return Err(ConfigError::Missing("sftp.host_key_file")),
        },
        max_sessions_per_provider: usize::try_from(positive(
            raw.sftp.max_sessions_per_provider,
            8,
            "sftp.max_sessions_per_provider",
        )?)
        .unwrap_or(usize::MAX),
        idle_timeout: Duration::from_secs(positive(
            raw.sftp.idle_timeout_secs,
            300,
            "sftp.idle_timeout_secs",
        )?),
        max_auth_failures: u32::try_from(positive(
            raw.sftp.max_auth_failures,
            10,
            "sftp.max_auth_failures",
        )?)
        .unwrap_or(u32::MAX),
    };

    Ok(Settings {
        profile,
        data_dir,
        http,
        sftp,
        tls,
        database,
        keys: KeySettings {
            master_key,
            audit_signing_key,
        },
        auth,
        audit,
        ingest,
        log: LogSettings {
            level: raw.log.level.unwrap_or_else(|| "info".to_owned()),
            format: raw.log.format.unwrap_or(if dev {
                LogFormat::Text
            } else {
                LogFormat::Json
            }),
        },
    })
}

/// A role name that is safe without quoting: lowercase ASCII letters, digits and `_`.
fn is_role_name(name: &str) -> bool {
    name.len() <= 63
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// A setting that must be at least 1.
fn positive(value: Option<u64>, default: u64, path: &'static str) -> Result<u64, ConfigError> {
    match value.unwrap_or(default) {
        0 => Err(ConfigError::OutOfRange {
            path,
            message: "must be at least 1",
        }),
        v => Ok(v),
    }
}
