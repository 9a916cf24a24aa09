//! The embedded SFTP server: provider systems drop claim files into their own `/inbox`
//! and read receipts from their `/outbox` ([`jail`], [`files`]).
//!
//! - Public-key authentication only. An account is a principal with SSH keys mapped to
//!   it (`POST /v1/admin/principals/{name}/ssh-keys`); the SSH user name must be the
//!   principal's name, the principal must be enabled and must hold `uploads:write` for
//!   exactly one provider, and that provider must be enabled. Passwords and every other
//!   method are refused.
//! - Modern algorithms only: curve25519 (or the ML-KEM hybrid) key exchange, ed25519 and
//!   ECDSA host and client keys, ChaCha20-Poly1305 or AES-GCM, encrypt-then-MAC SHA-2
//!   MACs; no SHA-1, no CBC. RSA client keys are refused unless the gateway is built with
//!   the `sftp-rsa-keys` feature (the `rsa` crate behind them carries the unfixed Marvin
//!   timing advisory, RUSTSEC-2023-0071).
//! - Limits: sessions per provider, an idle timeout, refused logins per client address
//!   (`sftp.*` settings), file size (`ingest.max_upload_bytes`).
//! - Audited with the session id as the request id: `sftp.session_opened`,
//!   `sftp.session_closed`, `sftp.login_refused` (with a reason code), `sftp.refused`,
//!   `sftp.upload_discarded`, and `upload.received` for every completed file.

pub mod files;
pub mod jail;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use russh::keys::{Algorithm, EcdsaCurve, HashAlg, PrivateKey, PublicKey};
use russh::server::{Auth, Msg, Session};
use russh::{Channel, ChannelId, MethodKind, MethodSet, Preferred, SshId};

use crate::audit::{AuditEvent, EventKind, Outcome};
use crate::authz::{Access, FailureLimiter, Permission, Policy, Role, SoleProvider};
use crate::config::SftpSettings;
use crate::ingest::{Alert, Intake};
use crate::providers::ProviderCode;
use crate::raw_store::RawFileWriter;
use crate::store::CredentialKind;

/// Why the SFTP listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum SftpError {
    /// The host key file is missing or not an OpenSSH private key.
    #[error("sftp.host_key_file: cannot load {path}: {reason}")]
    HostKey {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The listener could not be bound.
    #[error("sftp.listen: cannot listen on {addr}: {source}")]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// What every session of the listener shares.
pub(crate) struct Shared {
    intake: Intake,
    policy: Arc<Policy>,
    max_file_bytes: u64,
    max_sessions: usize,
    sessions: Mutex<HashMap<ProviderCode, usize>>,
    failures: FailureLimiter,
}

impl Shared {
    /// Appends `event`; a failure is logged (the operation it records is refused or
    /// discarded anyway).
    async fn audit(&self, event: &AuditEvent) {
        if let Err(e) = self.intake.store.append_audit(event).await {
            tracing::error!(error = %e, kind = event.kind.code(), "sftp audit event not recorded");
        }
    }

    /// Drops a file that will not be processed (its partial raw file goes with it) and
    /// audits why.
    async fn discard(&self, account: &Account, writer: RawFileWriter, reason: &'static str) {
        let bytes = writer.received();
        drop(writer);
        self.discarded(account, bytes, reason).await;
    }

    /// Audits a file of `bytes` received that will not be processed, and already gone.
    async fn discarded(&self, account: &Account, bytes: u64, reason: &'static str) {
        self.intake.metrics.refused(bytes);
        let mut event = account.event(EventKind::SftpUploadDiscarded, Outcome::Denied);
        event.reason = Some(reason);
        event.records = Some(bytes);
        self.audit(&event).await;
    }

    /// Takes one of the provider's session slots, if one is free.
    fn take_slot(self: &Arc<Self>, provider: &ProviderCode) -> Option<SessionSlot> {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        let count = sessions.entry(provider.clone()).or_default();
        if *count >= self.max_sessions {
            return None;
        }
        *count += 1;
        Some(SessionSlot {
            shared: self.clone(),
            provider: provider.clone(),
        })
    }
}

/// One of a provider's concurrent sessions; freed when dropped.
struct SessionSlot {
    shared: Arc<Shared>,
    provider: ProviderCode,
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        let mut sessions = self
            .shared
            .sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = sessions.get_mut(&self.provider) {
            *count = count.saturating_sub(1);
        }
    }
}

/// An authenticated SFTP account in one session.
#[derive(Debug, Clone)]
pub(crate) struct Account {
    session: String,
    principal_id: i64,
    role: Role,
    provider: ProviderCode,
    client: Option<IpAddr>,
}

impl Account {
    /// An event of this session, with actor, role, provider, client and session id.
    fn event(&self, kind: EventKind, outcome: Outcome) -> AuditEvent {
        let mut event = AuditEvent::new(kind, outcome);
        event.actor = Some(self.principal_id);
        event.role = Some(self.role);
        event.provider = Some(self.provider.as_str().to_owned());
        event.client = self.client;
        event.request_id = Some(self.session.clone());
        event
    }
}

/// A bound SFTP listener, serving until dropped or stopped.
pub struct SftpListener {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl SftpListener {
    /// Loads the host key and binds `listen`; sessions are served on the current runtime.
    pub async fn start(
        settings: &SftpSettings,
        listen: SocketAddr,
        intake: Intake,
        policy: Arc<Policy>,
        max_file_bytes: u64,
        failure_window: std::time::Duration,
    ) -> Result<Self, SftpError> {
        let host_key = load_host_key(&settings.host_key_file)?;
        let config = Arc::new(russh::server::Config {
            server_id: SshId::Standard("SSH-2.0-claimgate".into()),
            methods: MethodSet::from(&[MethodKind::PublicKey][..]),
            auth_rejection_time: std::time::Duration::from_millis(300),
            auth_rejection_time_initial: Some(std::time::Duration::ZERO),
            keys: vec![host_key],
            inactivity_timeout: Some(settings.idle_timeout),
            max_auth_attempts: 6,
            preferred: preferred_algorithms(),
            nodelay: true,
            ..Default::default()
        });
        let socket = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| SftpError::Bind {
                addr: listen,
                source,
            })?;
        let addr = socket.local_addr().map_err(|source| SftpError::Bind {
            addr: listen,
            source,
        })?;
        let mut server = Server {
            shared: Arc::new(Shared {
                intake,
                policy,
                max_file_bytes,
                max_sessions: settings.max_sessions_per_provider,
                sessions: Mutex::default(),
                failures: FailureLimiter::new(settings.max_auth_failures, failure_window),
            }),
        };
        let task = tokio::spawn(async move {
            use russh::server::Server as _;
            if let Err(e) = server.run_on_socket(config, &socket).await {
                tracing::error!(error = %e, "the sftp listener stopped");
            }
        });
        Ok(Self { addr, task })
    }

    /// The address the listener is bound to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting sessions (open ones end with their connections).
    pub fn stop(&self) {
        self.task.abort();
    }
}

/// The algorithms offered: nothing with SHA-1, no CBC, no RSA (unless built with
/// `sftp-rsa-keys`, and then only with SHA-2 signatures).
fn preferred_algorithms() -> Preferred {
    use russh::{cipher, kex, mac};
    let mut keys = vec![
        Algorithm::Ed25519,
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP256,
        },
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP384,
        },
        Algorithm::Ecdsa {
            curve: EcdsaCurve::NistP521,
        },
    ];
    if cfg!(feature = "sftp-rsa-keys") {
        keys.push(Algorithm::Rsa {
            hash: Some(HashAlg::Sha512),
        });
        keys.push(Algorithm::Rsa {
            hash: Some(HashAlg::Sha256),
        });
    }
    Preferred {
        kex: vec![
            kex::MLKEM768X25519_SHA256,
            kex::CURVE25519,
            kex::CURVE25519_PRE_RFC_8731,
            kex::EXTENSION_SUPPORT_AS_SERVER,
            kex::EXTENSION_OPENSSH_STRICT_KEX_AS_SERVER,
        ]
        .into(),
        key: keys.into(),
        cipher: vec![
            cipher::CHACHA20_POLY1305,
            cipher::AES_256_GCM,
            cipher::AES_128_GCM,
        ]
        .into(),
        mac: vec![mac::HMAC_SHA256_ETM, mac::HMAC_SHA512_ETM].into(),
        ..Preferred::DEFAULT
    }
}

/// Whether a client key's algorithm is accepted for an account.
pub fn accepted_key_algorithm(key: &PublicKey) -> bool {
    match key.algorithm() {
        Algorithm::Ed25519 | Algorithm::Ecdsa { .. } => true,
        Algorithm::Rsa { .. } => cfg!(feature = "sftp-rsa-keys"),
        _ => false,
    }
}

/// OpenSSH's `SHA256:` fingerprint of a public key.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// The `SHA256:` fingerprint of the host key in `path`, if it is one.
pub fn host_key_fingerprint(path: &std::path::Path) -> Option<String> {
    load_host_key(path)
        .ok()
        .map(|key| fingerprint(key.public_key()))
}

fn load_host_key(path: &std::path::Path) -> Result<PrivateKey, SftpError> {
    let fail = |reason: String| SftpError::HostKey {
        path: path.display().to_string(),
        reason,
    };
    let key = russh::keys::load_secret_key(path, None).map_err(|e| fail(e.to_string()))?;
    match key.algorithm() {
        Algorithm::Ed25519 | Algorithm::Ecdsa { .. } => Ok(key),
        other => Err(fail(format!(
            "{} host keys are not used; make an ed25519 key (ssh-keygen -t ed25519)",
            other.as_str()
        ))),
    }
}

struct Server {
    shared: Arc<Shared>,
}

impl russh::server::Server for Server {
    type Handler = Connection;

    fn new_client(&mut self, peer: Option<SocketAddr>) -> Connection {
        let mut random = [0u8; 8];
        let _ = aws_lc_rs::rand::fill(&mut random);
        Connection {
            shared: self.shared.clone(),
            client: peer.map(|p| p.ip()),
            session: format!("sftp-{}", hex::encode(random)),
            account: None,
            slot: None,
            channels: HashMap::new(),
        }
    }

    fn handle_session_error(&mut self, error: russh::Error) {
        tracing::debug!(error = %error, "sftp connection ended with an error");
    }
}

/// One SSH connection.
pub(crate) struct Connection {
    shared: Arc<Shared>,
    client: Option<IpAddr>,
    session: String,
    account: Option<Account>,
    slot: Option<SessionSlot>,
    channels: HashMap<ChannelId, Channel<Msg>>,
}

impl Connection {
    /// Audits a refused login and counts it against the client's address.
    async fn refuse(&self, reason: &'static str, principal: Option<i64>) -> Auth {
        let locked_out = self.client.is_some_and(|ip| {
            self.shared
                .failures
                .record_failure(ip, None, Instant::now())
        });
        let mut event = AuditEvent::new(EventKind::SftpLoginRefused, Outcome::Denied);
        event.actor = principal;
        event.client = self.client;
        event.request_id = Some(self.session.clone());
        event.reason = Some(reason);
        self.shared.audit(&event).await;
        if locked_out {
            tracing::warn!(
                alert = Alert::AuthLockout.code(),
                session = %self.session,
                "failed sftp logins reached the limit; this address is refused until the window ends"
            );
            self.shared.intake.metrics.alert(Alert::AuthLockout);
            event.kind = EventKind::AuthLockout;
            event.reason = Some("too_many_failures");
            self.shared.audit(&event).await;
        }
        Auth::reject()
    }

    /// The account `key` logs in as `user`, or the reason it may not.
    async fn account_for(
        &self,
        user: &str,
        key: &PublicKey,
    ) -> Result<Account, (&'static str, Option<i64>)> {
        if let Some(ip) = self.client {
            if self
                .shared
                .failures
                .locked(ip, None, Instant::now())
                .is_some()
            {
                return Err(("too_many_failures", None));
            }
        }
        if !accepted_key_algorithm(key) {
            return Err(("key_algorithm_refused", None));
        }
        let principal = self
            .shared
            .intake
            .store
            .principal_by_credential(CredentialKind::SshKey, &fingerprint(key))
            .await
            .map_err(|_| ("store_unavailable", None))?
            .ok_or(("unknown_key", None))?;
        if principal.name != user {
            return Err(("user_does_not_match_key", Some(principal.id)));
        }
        let now = time::OffsetDateTime::now_utc();
        let SoleProvider::One(Access {
            role,
            provider: Some(provider),
            ..
        }) = principal.sole_provider(&self.shared.policy, Permission::UploadsWrite, now)
        else {
            return Err(("not_bound_to_one_provider", Some(principal.id)));
        };
        let enabled = self
            .shared
            .intake
            .store
            .provider(&provider)
            .await
            .map_err(|_| ("store_unavailable", Some(principal.id)))?
            .is_some_and(|p| !p.disabled);
        if !enabled {
            return Err(("provider_disabled", Some(principal.id)));
        }
        Ok(Account {
            session: self.session.clone(),
            principal_id: principal.id,
            role,
            provider,
            client: self.client,
        })
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let Some(account) = self.account.take() else {
            return;
        };
        let shared = self.shared.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let event = account.event(EventKind::SftpSessionClosed, Outcome::Success);
                shared.audit(&event).await;
            });
        }
    }
}

impl russh::server::Handler for Connection {
    type Error = russh::Error;

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: russh::server::PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        match self.account_for(user, offer.public_key).await {
            Ok(_) => Ok(Auth::Accept),
            Err((reason, principal)) => Ok(self.refuse(reason, principal).await),
        }
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: russh::server::VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let account = match self.account_for(user, key.public_key).await {
            Ok(account) => account,
            Err((reason, principal)) => return Ok(self.refuse(reason, principal).await),
        };
        let Some(slot) = self.shared.take_slot(&account.provider) else {
            return Ok(self
                .refuse("too_many_sessions", Some(account.principal_id))
                .await);
        };
        let event = account.event(EventKind::SftpSessionOpened, Outcome::Success);
        self.shared.audit(&event).await;
        self.slot = Some(slot);
        self.account = Some(account);
        Ok(Auth::Accept)
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.account.is_some() && self.channels.is_empty() {
            self.channels.insert(channel.id(), channel);
            reply.accept().await;
        }
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let (Some(account), "sftp") = (&self.account, name) else {
            return session.channel_failure(channel);
        };
        let Some(stream) = self.channels.remove(&channel) else {
            return session.channel_failure(channel);
        };
        session.channel_success(channel)?;
        let files = files::FileSession::new(self.shared.clone(), account.clone());
        russh_sftp::server::run(stream.into_stream(), files).await;
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }
}
