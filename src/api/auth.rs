//! Authentication as an extractor, and authorization as a method on its result.
//!
//! A handler that takes [`Caller`] runs only for a live credential: a bearer API key, or
//! (without an `Authorization` header) a client certificate mapped to a principal. It is
//! the first extractor of every protected handler, so an unauthenticated request is
//! refused before its body is read. Every refusal answers the same 401 body; the reason
//! goes to the audit trail only. Failures are counted per client address and per key id,
//! and over the limit every attempt gets 429 with `Retry-After` until the window ends.
//! A success is audited once per credential per hour (a session start), not per request.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::time::{Duration, Instant};

/// Permission denials of one principal (or from one address) within
/// [`DENIAL_BURST_WINDOW`] that raise the `authz_denial_burst` alert (once a window):
/// far more than a person's mistakes, the pace of someone probing what they may reach.
pub const DENIAL_BURST: u32 = 20;
/// The window of [`DENIAL_BURST`].
pub const DENIAL_BURST_WINDOW: Duration = Duration::from_secs(60);

use actix_web::http::header;
use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload, web};

use super::AppState;
use super::error::ApiError;
use super::guard::RequestId;
use crate::audit::{AuditEvent, EventKind, Outcome};
use crate::authz::{Access, ParsedToken, Permission, Principal, SoleProvider, Target};
use crate::ingest::Alert;
use crate::providers::ProviderCode;

/// Longest `Authorization` header value considered (a real one is 88 bytes).
const MAX_AUTHORIZATION_LEN: usize = 256;

/// The SHA-256 fingerprint (lowercase hex) of the client certificate of a connection,
/// recorded when the TLS connection is accepted.
#[derive(Debug, Clone)]
pub struct PeerCertificate(pub String);

/// The authenticated caller of this request.
#[derive(Debug)]
pub struct Caller {
    /// Who.
    pub principal: Principal,
    /// From where.
    pub client: Option<IpAddr>,
    /// The request's id.
    pub request_id: Option<String>,
}

/// What was presented.
enum Credential {
    Token(ParsedToken),
    Malformed,
    Certificate(String),
    None,
}

impl Caller {
    /// An audit event for this caller's request, with actor, client and request id set.
    pub fn event(&self, kind: EventKind, outcome: Outcome) -> AuditEvent {
        let mut event = AuditEvent::new(kind, outcome);
        event.actor = Some(self.principal.id);
        event.client = self.client;
        event.request_id.clone_from(&self.request_id);
        event
    }

    /// The event for a use of `access`, with its role, provider and break-glass flag.
    pub fn event_for(&self, access: &Access, kind: EventKind) -> AuditEvent {
        let mut event = self.event(kind, Outcome::Success);
        event.role = Some(access.role);
        event.provider = access.provider.as_ref().map(|p| p.as_str().to_owned());
        event.break_glass = access.break_glass;
        event
    }

    /// The one provider this caller's credential holds `permission` for (an upload's
    /// provider comes from the credential, never from the request). No such provider is
    /// an audited 403; a credential that holds it globally or for several providers
    /// cannot say which, and is a 400.
    pub async fn own_provider(
        &self,
        state: &AppState,
        permission: Permission,
    ) -> Result<(Access, ProviderCode), ApiError> {
        let now = time::OffsetDateTime::now_utc();
        match self.principal.sole_provider(&state.policy, permission, now) {
            SoleProvider::One(Access {
                provider: Some(code),
                ..
            }) => {
                let access = self
                    .authorize(state, permission, Target::Provider(&code))
                    .await?;
                Ok((access, code))
            }
            SoleProvider::Nowhere => {
                // Refused (and audited) by the policy: no grant holds the permission.
                self.authorize(state, permission, Target::Global).await?;
                Err(ApiError::Forbidden)
            }
            _ => Err(ApiError::InvalidField {
                field: "provider",
                code: "credential_not_bound_to_one_provider",
            }),
        }
    }

    /// Asks the policy for `permission` on `target`; a refusal is audited and answers 403.
    pub async fn authorize(
        &self,
        state: &AppState,
        permission: Permission,
        target: Target<'_>,
    ) -> Result<Access, ApiError> {
        let now = time::OffsetDateTime::now_utc();
        if let Some(access) = self
            .principal
            .authorize(&state.policy, permission, target, now)
        {
            return Ok(access);
        }
        let mut event = self.event(EventKind::PermissionDenied, Outcome::Denied);
        event.resource = Some(format!("{}:{}", permission.object(), permission.action()));
        if let Target::Provider(code) = target {
            event.provider = Some(code.as_str().to_owned());
        }
        state.store.append_audit(&event).await?;
        let address = self.client.unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let who = format!("principal:{}", self.principal.id);
        if state
            .denials
            .record_failure(address, Some(&who), Instant::now())
        {
            tracing::warn!(
                alert = Alert::AuthzDenialBurst.code(),
                principal = self.principal.id,
                "a burst of permission denials from one principal or address"
            );
            state.metrics.alert(Alert::AuthzDenialBurst);
        }
        Err(ApiError::Forbidden)
    }
}

fn credential(req: &HttpRequest) -> Credential {
    match req.headers().get(header::AUTHORIZATION) {
        Some(value) => value
            .to_str()
            .ok()
            .filter(|v| v.len() <= MAX_AUTHORIZATION_LEN)
            .and_then(|v| v.strip_prefix("Bearer "))
            .and_then(|t| ParsedToken::parse(t.trim()))
            .map_or(Credential::Malformed, Credential::Token),
        None => match req.conn_data::<PeerCertificate>() {
            Some(cert) => Credential::Certificate(cert.0.clone()),
            None => Credential::None,
        },
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let credential = credential(req);
        let client = req.peer_addr().map(|a| a.ip());
        let request_id = req
            .extensions()
            .get::<RequestId>()
            .map(|r| r.as_str().to_owned());
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let Some(state) = state else {
                return Err(ApiError::Unauthenticated);
            };
            let key_id = match &credential {
                Credential::Token(t) => Some(t.id.as_str().to_owned()),
                _ => None,
            };
            let address = client.unwrap_or(IpAddr::from([0, 0, 0, 0]));
            if let Some(wait) = state
                .failures
                .locked(address, key_id.as_deref(), Instant::now())
            {
                return Err(ApiError::TooManyAttempts {
                    retry_after_secs: wait.as_secs().max(1),
                });
            }
            let now = time::OffsetDateTime::now_utc();
            let outcome: Result<Principal, &'static str> = match credential {
                Credential::None => return Err(ApiError::Unauthenticated),
                Credential::Malformed => Err("malformed_credential"),
                Credential::Token(token) => match state.store.api_key(&token.id).await? {
                    None => Err("unknown_key"),
                    Some(record) => record.check(&token, now).map(|()| record.principal),
                },
                Credential::Certificate(fingerprint) => state
                    .store
                    .principal_by_credential(
                        crate::store::CredentialKind::Certificate,
                        &fingerprint,
                    )
                    .await?
                    .ok_or("unknown_certificate"),
            };
            match outcome {
                Ok(principal) => {
                    let credential = key_id.as_ref().map_or_else(
                        || format!("principal:{}/certificate", principal.id),
                        |k| format!("key:{k}"),
                    );
                    if state.successes.first_in_window(&credential, Instant::now()) {
                        let mut event = AuditEvent::new(EventKind::AuthSuccess, Outcome::Success);
                        event.actor = Some(principal.id);
                        event.client = client;
                        event.request_id.clone_from(&request_id);
                        event.resource = Some(credential);
                        state.store.append_audit(&event).await?;
                    }
                    Ok(Self {
                        principal,
                        client,
                        request_id,
                    })
                }
                Err(reason) => {
                    let locked_out =
                        state
                            .failures
                            .record_failure(address, key_id.as_deref(), Instant::now());
                    let mut event = AuditEvent::new(EventKind::AuthFailure, Outcome::Denied);
                    event.client = client;
                    event.request_id = request_id;
                    event.resource = key_id.map(|k| format!("key:{k}"));
                    event.reason = Some(reason);
                    state.store.append_audit(&event).await?;
                    if locked_out {
                        tracing::warn!(
                            alert = Alert::AuthLockout.code(),
                            "failed authentications reached the limit; attempts are refused until the window ends"
                        );
                        state.metrics.alert(Alert::AuthLockout);
                        event.kind = EventKind::AuthLockout;
                        event.reason = Some("too_many_failures");
                        state.store.append_audit(&event).await?;
                    }
                    Err(ApiError::Unauthenticated)
                }
            }
        })
    }
}
