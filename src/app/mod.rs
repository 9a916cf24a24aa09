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
use crate::authz::{ApiKey, Role};
use crate::config::{Profile, Settings, production_problems};
use crate::crypto::{KeyError, MasterKey};
use crate::store::{NewPrincipal, PrincipalKind, Store, StoreError};
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
    /// The listener could not be bound.
    #[error("http.listen: cannot listen on {addr}: {source}")]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The bootstrap credential could not be generated.
    #[error("cannot generate the bootstrap credential: {0}")]
    Bootstrap(#[from] crate::authz::api_key::RandomFailed),
}

/// A built gateway, bound and ready to run.
pub struct Application {
    server: Server,
    https_addr: SocketAddr,
    bootstrap_credential: Option<SecretString>,
    master_key_fingerprint: String,
}

impl Application {
    /// Checks the settings, loads credentials, prepares the store and binds the listener.
    pub async fn build(settings: &Settings) -> Result<Self, StartupError> {
        let problems = production_problems(settings);
        if !problems.is_empty() {
            return Err(StartupError::Unsafe(problems));
        }
        let tls_config = tls::server_config(&settings.tls)?;
        let master_key = MasterKey::load(&settings.keys.master_key, settings.profile)?;
        let store = Store::connect(&settings.database).await?;
        store.migrate().await?;
        let bootstrap_credential = if settings.profile == Profile::Dev {
            bootstrap_admin(&store).await?
        } else {
            None
        };

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

        let state = web::Data::new(AppState {
            store,
            readiness_timeout: settings.database.acquire_timeout,
        });
        let limits = web::Data::new(guard::BodyLimits::from(&settings.http));
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
            bootstrap_credential,
            master_key_fingerprint: master_key.fingerprint(),
        })
    }

    /// The address the HTTPS listener is bound to.
    pub fn https_addr(&self) -> SocketAddr {
        self.https_addr
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

    /// Serves until stopped through [`Self::handle`].
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// Creates the bootstrap admin with a fresh API key when no principal exists yet.
async fn bootstrap_admin(store: &Store) -> Result<Option<SecretString>, StartupError> {
    if store.count_principals().await? > 0 {
        return Ok(None);
    }
    let key = ApiKey::generate()?;
    store
        .create_principal(&NewPrincipal {
            name: BOOTSTRAP_ADMIN,
            kind: PrincipalKind::Person,
            roles: &[Role::SecurityAdmin, Role::MappingAdmin],
            key: &key,
        })
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
    let tcp = tls.get_ref().0;
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
