//! The [`Application`]: loads keys and certificates, connects and migrates the store,
//! binds the HTTPS listener (port 0 allowed; the real address is reported) and runs
//! until stopped. There is no plaintext listener.

pub mod conn_limit;
pub mod dev_certs;
pub mod tls;

use std::any::Any;
use std::net::SocketAddr;

use actix_tls::accept::rustls_0_23::TlsStream;
use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, HttpServer, web};
use secrecy::SecretString;
use tokio::net::TcpStream;

use crate::api::{self, AppState, guard};
use std::sync::Arc;

use crate::api::auth::PeerCertificate;
use crate::audit::Journal;
use crate::audit::{AuditEvent, EventKind, Outcome};
use crate::authz::{
    ApiKey, FailureLimiter, Policy, PolicyError, PrincipalAdmin, PrincipalKind, Role,
};
use crate::config::{Profile, Settings, production_problems};
use crate::crypto::{KeyError, MasterKey, SigningKey};
use crate::keyring::Keyring;
use crate::store::{NewGrant, NewKey, NewPrincipal, Store, StoreError};
use conn_limit::{ConnectionLimiter, OverConnectionLimit};

/// Name of the principal the dev profile creates on first start.
pub const BOOTSTRAP_ADMIN: &str = "bootstrap-admin";

/// Why the gateway could not start. Each message is one line (several for several
/// production problems) naming the setting or file to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The production profile found unsafe settings.
    #[error("refusing to start in the production profile:\n{}", .0.join("\n"))]
    Unsafe(Vec<String>),
    /// Certificates or TLS policy.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The master key.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The access-control policy.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The audit journal directory.
    #[error(transparent)]
    Journal(#[from] crate::audit::journal::JournalError),
    /// A configuration file could not be read to record its digest.
    #[error("{path}: {reason}")]
    ConfigFile {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The data keys in the database do not match the configured key-encryption key.
    #[error(transparent)]
    Keyring(#[from] crate::keyring::KeyringError),
    /// The raw store's directory is unusable.
    #[error("ingest.raw_dir: {0}")]
    RawStore(#[from] crate::raw_store::RawStoreError),
    /// The database role serving requests could bypass row-level security.
    #[error("refusing to start: the database role is unsafe:\n{}", .0.join("\n"))]
    UnsafeDatabaseRole(Vec<String>),
    /// The listener could not be bound.
    #[error("http.listen: cannot listen on {addr}: {source}")]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The SFTP listener could not start.
    #[error(transparent)]
    Sftp(#[from] crate::sftp::SftpError),
    /// The bootstrap credential could not be generated.
    #[error("cannot generate the bootstrap credential: {0}")]
    Bootstrap(#[from] crate::authz::api_key::RandomFailed),
}

/// A built gateway, bound and ready to run.
pub struct Application {
    server: Server,
    https_addr: SocketAddr,
    sftp: Option<crate::sftp::SftpListener>,
    bootstrap_credential: Option<SecretString>,
    master_key_fingerprint: String,
    store: Store,
    signing_key: Arc<SigningKey>,
    keyring: Arc<Keyring>,
    housekeeping: tokio::task::JoinHandle<()>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Application {
    /// Checks the settings, loads credentials, prepares the store and binds the listener.
    pub async fn build(settings: &Settings) -> Result<Self, StartupError> {
        let problems = production_problems(settings);
        if !problems.is_empty() {
            return Err(StartupError::Unsafe(problems));
        }
        let tls_config = tls::server_config(&settings.tls)?;
        let master_key = Arc::new(MasterKey::load(
            &settings.keys.master_key,
            settings.profile,
        )?);
        let signing_key = Arc::new(SigningKey::load(
            &settings.keys.audit_signing_key,
            settings.profile,
        )?);
        let journal = Journal::open(&settings.audit.dir)?;
        let policy =
            Policy::load(&settings.auth.policy_model_file, &settings.auth.policy_file).await?;
        let store = Store::connect(&settings.database)
            .await?
            .with_journal(journal);
        store.migrate().await?;
        let role_problems = store.serving_role_problems(&settings.database.role).await?;
        if !role_problems.is_empty() {
            return Err(StartupError::UnsafeDatabaseRole(role_problems));
        }
        let keyring = Arc::new(Keyring::new(store.clone(), master_key.clone()));
        keyring.check_kek().await?;
        let housekeeping = spawn_housekeeping(
            store.clone(),
            signing_key.clone(),
            keyring.clone(),
            settings.audit.checkpoint_interval,
        );
        let raw = Arc::new(crate::raw_store::RawStore::configured(
            &settings.ingest,
            store.clone(),
            keyring.clone(),
        )?);
        let metrics = Arc::new(crate::ingest::Metrics::default());
        let wake = Arc::new(tokio::sync::Notify::new());
        let workers = crate::ingest::spawn_workers(
            crate::ingest::Runner {
                store: store.clone(),
                keyring: keyring.clone(),
                raw: raw.clone(),
                metrics: metrics.clone(),
                settings: crate::ingest::RunnerSettings {
                    batch_claims: settings.ingest.batch_claims,
                    lease: settings.ingest.lease,
                },
            },
            settings.ingest.workers,
            wake.clone(),
        );
        let bootstrap_credential = if settings.profile == Profile::Dev {
            bootstrap_admin(&store).await?
        } else {
            None
        };

        let config = config_digest(settings)?;
        let previous = store
            .last_audit_event(EventKind::ServerStarted)
            .await?
            .and_then(|e| running_config(&e.body));
        if let Some(previous) = previous.filter(|p| *p != config) {
            let mut changed = AuditEvent::new(EventKind::ConfigChanged, Outcome::Success);
            changed.resource = Some(format!("config:{previous}->{config}"));
            store.append_audit(&changed).await?;
        }
        let mut started = AuditEvent::new(EventKind::ServerStarted, Outcome::Success);
        started.resource = Some(format!(
            "profile:{:?}/tls:{:?}/client_auth:{:?}/master_key:{}/audit_key:{}/config:{config}",
            settings.profile,
            settings.tls.profile,
            settings.tls.client_auth,
            master_key.fingerprint(),
            signing_key.fingerprint()
        ));
        store.append_audit(&started).await?;
        tracing::info!(config_sha256 = %config, "running configuration");
        store.checkpoint(&signing_key).await?;

        let listener = std::net::TcpListener::bind(settings.http.listen).map_err(|source| {
            StartupError::Bind {
                addr: settings.http.listen,
                source,
            }
        })?;
        let https_addr = listener.local_addr().map_err(|source| StartupError::Bind {
            addr: settings.http.listen,
            source,
        })?;

        let policy = Arc::new(policy);
        let intake = crate::ingest::Intake {
            store: store.clone(),
            raw: raw.clone(),
            metrics: metrics.clone(),
            wake: wake.clone(),
        };
        let sftp = match settings.sftp.listen {
            None => None,
            Some(listen) => Some(
                crate::sftp::SftpListener::start(
                    &settings.sftp,
                    listen,
                    intake,
                    policy.clone(),
                    settings.ingest.max_upload_bytes,
                    settings.auth.failure_window,
                )
                .await?,
            ),
        };

        let state = web::Data::new(AppState {
            store: store.clone(),
            signing_key: signing_key.clone(),
            keyring: keyring.clone(),
            policy,
            failures: FailureLimiter::new(settings.auth.max_failures, settings.auth.failure_window),
            denials: FailureLimiter::new(
                crate::api::auth::DENIAL_BURST,
                crate::api::auth::DENIAL_BURST_WINDOW,
            ),
            successes: crate::authz::SuccessLog::new(std::time::Duration::from_secs(3600)),
            readiness_timeout: settings.database.acquire_timeout,
            person_key_ttl: settings.auth.person_key_ttl,
            break_glass_max: settings.auth.break_glass_max,
            raw,
            metrics,
            ingest_wake: wake,
        });
        let limits = web::Data::new(guard::BodyLimits::new(&settings.http, &settings.ingest));
        let max_body = settings.http.max_body_bytes;
        let limiter = ConnectionLimiter::new(settings.http.max_connections_per_ip);
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(limits.clone())
                .configure(api::configure(max_body))
                .wrap(actix_web::middleware::from_fn(guard::request_guard))
        })
        .on_connect(move |connection, data| claim_connection_slot(&limiter, connection, data))
        .client_request_timeout(settings.http.request_head_timeout)
        .tls_handshake_timeout(settings.http.request_head_timeout)
        .disable_signals();
        if settings.http.workers > 0 {
            server = server.workers(settings.http.workers);
        }
        let server = server
            .listen_rustls_0_23(listener, tls_config)
            .map_err(|source| StartupError::Bind {
                addr: settings.http.listen,
                source,
            })?
            .run();
        Ok(Self {
            server,
            https_addr,
            sftp,
            bootstrap_credential,
            master_key_fingerprint: master_key.fingerprint(),
            store,
            signing_key,
            keyring,
            housekeeping,
            workers,
        })
    }

    /// The address the HTTPS listener is bound to.
    pub fn https_addr(&self) -> SocketAddr {
        self.https_addr
    }

    /// The address the SFTP listener is bound to, if it is enabled.
    pub fn sftp_addr(&self) -> Option<SocketAddr> {
        self.sftp.as_ref().map(crate::sftp::SftpListener::addr)
    }

    /// The dev bootstrap admin's API key, if this start created it. Returned once.
    pub fn take_bootstrap_credential(&mut self) -> Option<SecretString> {
        self.bootstrap_credential.take()
    }

    /// The master key's fingerprint (safe to log).
    pub fn master_key_fingerprint(&self) -> &str {
        &self.master_key_fingerprint
    }

    /// A handle to stop the server gracefully.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped through [`Self::handle`]; then records the data keys' seal
    /// counts and the stop, and signs a last checkpoint of the audit chain.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        if let Some(sftp) = &self.sftp {
            sftp.stop();
        }
        self.housekeeping.abort();
        // A worker stopped mid-upload leaves its lease; the upload resumes from its last
        // committed checkpoint at the next start (or in another instance).
        for worker in &self.workers {
            worker.abort();
        }
        if let Err(e) = self.keyring.record_seal_counts().await {
            tracing::error!(error = %e, "could not record data-key seal counts");
        }
        let stopped = AuditEvent::new(EventKind::ServerStopped, Outcome::Success);
        if let Err(e) = self.store.append_audit(&stopped).await {
            tracing::error!(error = %e, "could not record the server stop");
        }
        if let Err(e) = self.store.checkpoint(&self.signing_key).await {
            tracing::error!(error = %e, "could not sign the last audit checkpoint");
        }
        served
    }
}

/// The SHA-256 (hex) of the running configuration: every setting (secrets redacted, as
/// `Debug` prints them) and the access-control model and policy files.
fn config_digest(settings: &Settings) -> Result<String, StartupError> {
    let mut digest = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    digest.update(format!("{settings:?}").as_bytes());
    for file in [&settings.auth.policy_model_file, &settings.auth.policy_file] {
        let bytes = std::fs::read(file).map_err(|e| StartupError::ConfigFile {
            path: file.display().to_string(),
            reason: e.to_string(),
        })?;
        digest.update(&(bytes.len() as u64).to_be_bytes());
        digest.update(&bytes);
    }
    Ok(hex::encode(digest.finish()))
}

/// The configuration digest a `server.started` event body names, if any.
fn running_config(body: &str) -> Option<String> {
    let body: serde_json::Value = serde_json::from_str(body).ok()?;
    let resource = body.get("resource")?.as_str()?;
    Some(resource.rsplit_once("/config:")?.1.to_owned())
}

/// Every `interval`: signs the audit chain head (when it moved), records the data keys'
/// seal counts, and runs the re-encryption job (values sealed by retired keys move to the
/// active key; a retired key nothing uses is erased). Each step commits in batches, so a
/// crash loses nothing and the next tick, here or in another instance, resumes.
fn spawn_housekeeping(
    store: Store,
    key: Arc<SigningKey>,
    keyring: Arc<Keyring>,
    interval: std::time::Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            if let Err(e) = store.checkpoint(&key).await {
                tracing::error!(error = %e, "could not sign an audit checkpoint");
            }
            if let Err(e) = keyring.record_seal_counts().await {
                tracing::error!(error = %e, "could not record data-key seal counts");
            }
            match keyring
                .reencrypt_all(&crate::authz::KeyAdmin::operator_console())
                .await
            {
                Ok(report) => {
                    for (provider, done) in report {
                        tracing::info!(
                            provider = %provider,
                            claims = done.claims,
                            files = done.files,
                            drained = done.drained.len(),
                            "re-encryption pass"
                        );
                    }
                }
                Err(e) => tracing::error!(error = %e, "re-encryption pass failed"),
            }
        }
    })
}

/// Creates the bootstrap admin (`security_admin` and `mapping_admin`) with a fresh API
/// key when no principal exists yet. Dev profile only; its key does not expire, so a
/// development database stays usable.
async fn bootstrap_admin(store: &Store) -> Result<Option<SecretString>, StartupError> {
    if store.count_principals().await? > 0 {
        return Ok(None);
    }
    let key = ApiKey::generate()?;
    let grant = |role| NewGrant {
        role,
        provider: None,
        expires_at: None,
        break_glass: false,
        sealed_reason: None,
        granted_by: None,
    };
    let mut event = AuditEvent::new(EventKind::PrincipalCreated, Outcome::Success);
    event.resource = Some(format!("principal:{BOOTSTRAP_ADMIN}"));
    store
        .create_principal(
            &PrincipalAdmin::operator_console(),
            &NewPrincipal {
                name: BOOTSTRAP_ADMIN,
                kind: PrincipalKind::Person,
                grants: &[grant(Role::SecurityAdmin), grant(Role::MappingAdmin)],
                key: Some(NewKey {
                    key: &key,
                    expires_at: None,
                }),
            },
            &event,
        )
        .await?;
    Ok(Some(key.token))
}

/// Takes a connection slot for the peer's address; over the cap, the connection is
/// shut down at once and marked so that nothing already read from it is served.
fn claim_connection_slot(
    limiter: &ConnectionLimiter,
    connection: &dyn Any,
    data: &mut actix_web::dev::Extensions,
) {
    let Some(tls) = connection.downcast_ref::<TlsStream<TcpStream>>() else {
        return;
    };
    let (tcp, session) = tls.get_ref();
    if let Some(cert) = session.peer_certificates().and_then(|c| c.first()) {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, cert.as_ref());
        data.insert(PeerCertificate(hex::encode(digest.as_ref())));
    }
    match tcp
        .peer_addr()
        .ok()
        .and_then(|peer| limiter.try_acquire(peer.ip()))
    {
        Some(slot) => {
            data.insert(slot);
        }
        None => {
            let _ = socket2::SockRef::from(tcp).shutdown(std::net::Shutdown::Both);
            data.insert(OverConnectionLimit);
        }
    }
}
