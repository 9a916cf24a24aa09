//! `/v1/whoami` and `/v1/admin/principals`, `/v1/admin/keys`: principals, their role
//! grants, API keys and client certificates.
//!
//! A key's token is in the response that creates it and nowhere else (`Cache-Control:
//! no-store`); afterwards only its id is shown. Nobody grants a role to themselves.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use crate::audit::EventKind;
use crate::authz::{
    ApiKey, Grant, KeyId, Permission, PrincipalAdmin, PrincipalKind, Role, Target,
    valid_principal_name,
};
use crate::providers::ProviderCode;
use crate::store::{NewCredential, NewGrant, NewKey, NewPrincipal, PrincipalView};

fn time_text(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

#[derive(Debug, Serialize)]
struct GrantView {
    role: Role,
    provider: Option<String>,
    expires_at: Option<String>,
    break_glass: bool,
}

impl From<&Grant> for GrantView {
    fn from(g: &Grant) -> Self {
        Self {
            role: g.role,
            provider: g.provider.as_ref().map(|p| p.as_str().to_owned()),
            expires_at: g.expires_at.map(time_text),
            break_glass: g.break_glass,
        }
    }
}

#[derive(Debug, Serialize)]
struct KeyJson {
    key_id: String,
    created_at: String,
    expires_at: Option<String>,
    revoked: bool,
}

#[derive(Debug, Serialize)]
struct PrincipalJson {
    name: String,
    kind: &'static str,
    created_at: String,
    disabled: bool,
    grants: Vec<GrantView>,
    keys: Vec<KeyJson>,
    certificates: Vec<String>,
    ssh_keys: Vec<String>,
}

impl From<PrincipalView> for PrincipalJson {
    fn from(v: PrincipalView) -> Self {
        Self {
            name: v.principal.name,
            kind: v.principal.kind.as_str(),
            created_at: time_text(v.created_at),
            disabled: v.disabled_at.is_some(),
            grants: v.principal.grants.iter().map(GrantView::from).collect(),
            keys: v
                .keys
                .into_iter()
                .map(|k| KeyJson {
                    key_id: k.key_id,
                    created_at: time_text(k.created_at),
                    expires_at: k.expires_at.map(time_text),
                    revoked: k.revoked_at.is_some(),
                })
                .collect(),
            certificates: v.certificates,
            ssh_keys: v.ssh_keys,
        }
    }
}

/// Authorizes `principals:write` and returns the access with its capability.
async fn principal_admin(
    caller: &Caller,
    state: &AppState,
) -> Result<(crate::authz::Access, PrincipalAdmin), ApiError> {
    let access = caller
        .authorize(state, Permission::PrincipalsWrite, Target::Global)
        .await?;
    let admin = PrincipalAdmin::from_access(&access).ok_or(ApiError::Forbidden)?;
    Ok((access, admin))
}

/// `GET /v1/whoami`: the caller's name, kind and live grants.
pub async fn whoami(caller: Caller) -> Result<HttpResponse, ApiError> {
    let now = OffsetDateTime::now_utc();
    let grants: Vec<GrantView> = caller
        .principal
        .grants
        .iter()
        .filter(|g| g.expires_at.is_none_or(|t| now < t))
        .map(GrantView::from)
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "name": caller.principal.name,
        "kind": caller.principal.kind.as_str(),
        "grants": grants,
    })))
}

/// `GET /v1/admin/principals`.
pub async fn list(caller: Caller, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    caller
        .authorize(&state, Permission::PrincipalsRead, Target::Global)
        .await?;
    let all: Vec<PrincipalJson> = state
        .store
        .list_principals()
        .await?
        .into_iter()
        .map(PrincipalJson::from)
        .collect();
    Ok(HttpResponse::Ok().json(all))
}

/// `GET /v1/admin/principals/{name}`.
pub async fn show(
    caller: Caller,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller
        .authorize(&state, Permission::PrincipalsRead, Target::Global)
        .await?;
    let view = state
        .store
        .principal(&name)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(PrincipalJson::from(view)))
}

/// A role grant in a request.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct GrantRequest {
    role: String,
    #[serde(default)]
    provider: Option<String>,
}

struct ParsedGrant {
    role: Role,
    provider: Option<ProviderCode>,
}

fn parse_grant(g: &GrantRequest) -> Result<ParsedGrant, ApiError> {
    Ok(ParsedGrant {
        role: g.role.parse().map_err(|_| ApiError::InvalidField {
            field: "role",
            code: "unknown_role",
        })?,
        provider: g
            .provider
            .as_deref()
            .map(ProviderCode::parse)
            .transpose()
            .map_err(|_| ApiError::InvalidField {
                field: "provider",
                code: "invalid_provider_code",
            })?,
    })
}

/// Body of `POST /v1/admin/principals`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreatePrincipal {
    name: String,
    kind: String,
    #[serde(default)]
    grants: Vec<GrantRequest>,
    /// Issue a first key (default true).
    #[serde(default)]
    key: Option<bool>,
    #[serde(default)]
    key_expires_in_hours: Option<u32>,
}

/// A key's expiry: as asked, or the person default (automatic logoff), or none for systems.
fn key_expiry(
    state: &AppState,
    kind: PrincipalKind,
    hours: Option<u32>,
) -> Result<Option<OffsetDateTime>, ApiError> {
    let now = OffsetDateTime::now_utc();
    match (hours, kind) {
        (Some(0), _) => Err(ApiError::InvalidField {
            field: "key_expires_in_hours",
            code: "must_be_positive",
        }),
        (Some(h), _) => Ok(Some(now + time::Duration::hours(i64::from(h)))),
        (None, PrincipalKind::Person) => Ok(Some(now + state.person_key_ttl)),
        (None, PrincipalKind::System) => Ok(None),
    }
}

fn key_response(
    status: actix_web::http::StatusCode,
    name: &str,
    key: Option<(&ApiKey, Option<OffsetDateTime>)>,
) -> HttpResponse {
    let body = match key {
        Some((key, expires)) => serde_json::json!({
            "name": name,
            "key_id": key.id.as_str(),
            "token": key.reveal(),
            "expires_at": expires.map(time_text),
        }),
        None => serde_json::json!({ "name": name }),
    };
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body)
}

/// `POST /v1/admin/principals`: 201 with the first key's token (shown once).
pub async fn create(
    caller: Caller,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: super::Body,
) -> Result<HttpResponse, ApiError> {
    let (access, admin) = principal_admin(&caller, &state).await?;
    let body: CreatePrincipal = super::parse_json(&req, &body.0)?;
    if !valid_principal_name(&body.name) {
        return Err(ApiError::InvalidField {
            field: "name",
            code: "invalid_principal_name",
        });
    }
    let kind = PrincipalKind::parse(&body.kind).ok_or(ApiError::InvalidField {
        field: "kind",
        code: "person_or_system",
    })?;
    let parsed = body
        .grants
        .iter()
        .map(parse_grant)
        .collect::<Result<Vec<_>, _>>()?;
    let grants: Vec<NewGrant<'_>> = parsed
        .iter()
        .map(|g| NewGrant {
            role: g.role,
            provider: g.provider.as_ref(),
            expires_at: None,
            break_glass: false,
            sealed_reason: None,
            granted_by: Some(caller.principal.id),
        })
        .collect();
    let key = match body.key {
        Some(false) => None,
        _ => Some((
            ApiKey::generate().map_err(ApiError::internal)?,
            key_expiry(&state, kind, body.key_expires_in_hours)?,
        )),
    };
    let mut event = caller.event_for(&access, EventKind::PrincipalCreated);
    event.resource = Some(format!("principal:{}", body.name));
    state
        .store
        .create_principal(
            &admin,
            &NewPrincipal {
                name: &body.name,
                kind,
                grants: &grants,
                key: key.as_ref().map(|(key, expires_at)| NewKey {
                    key,
                    expires_at: *expires_at,
                }),
            },
            &event,
        )
        .await?;
    Ok(key_response(
        actix_web::http::StatusCode::CREATED,
        &body.name,
        key.as_ref().map(|(k, e)| (k, *e)),
    ))
}

/// `POST /v1/admin/principals/{name}/disable`.
pub async fn disable(
    caller: Caller,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (access, admin) = principal_admin(&caller, &state).await?;
    let mut event = caller.event_for(&access, EventKind::PrincipalDisabled);
    event.resource = Some(format!("principal:{name}"));
    state.store.disable_principal(&admin, &name, &event).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /v1/admin/principals/{name}/grants`: 204; 403 `self_grant` for oneself.
pub async fn grant(
    caller: Caller,
    state: web::Data<AppState>,
    name: web::Path<String>,
    req: HttpRequest,
    body: super::Body,
) -> Result<HttpResponse, ApiError> {
    let (access, admin) = principal_admin(&caller, &state).await?;
    if *name == caller.principal.name {
        let mut event = caller.event(EventKind::RoleGranted, crate::audit::Outcome::Denied);
        event.resource = Some(format!("principal:{name}"));
        event.reason = Some("self_grant");
        state.store.append_audit(&event).await?;
        return Err(ApiError::SelfGrant);
    }
    let request: GrantRequest = super::parse_json(&req, &body.0)?;
    let parsed = parse_grant(&request)?;
    let mut event = caller.event_for(&access, EventKind::RoleGranted);
    event.resource = Some(format!("principal:{name}/grant:{}", parsed.role));
    event.provider = parsed.provider.as_ref().map(|p| p.as_str().to_owned());
    state
        .store
        .add_grant(
            &admin,
            &name,
            &NewGrant {
                role: parsed.role,
                provider: parsed.provider.as_ref(),
                expires_at: None,
                break_glass: false,
                sealed_reason: None,
                granted_by: Some(caller.principal.id),
            },
            &event,
        )
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Query of the revoke route.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeQuery {
    provider: Option<String>,
}

/// `DELETE /v1/admin/principals/{name}/grants/{role}[?provider=CODE]`.
pub async fn revoke(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    query: web::Query<RevokeQuery>,
) -> Result<HttpResponse, ApiError> {
    let (access, admin) = principal_admin(&caller, &state).await?;
    let (name, role) = path.into_inner();
    let parsed = parse_grant(&GrantRequest {
        role,
        provider: query.into_inner().provider,
    })?;
    let mut event = caller.event_for(&access, EventKind::RoleRevoked);
    event.resource = Some(format!("principal:{name}/grant:{}", parsed.role));
    event.provider = parsed.provider.as_ref().map(|p| p.as_str().to_owned());
    state
        .store
        .revoke_grant(&admin, &name, parsed.role, parsed.provider.as_ref(), &event)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Body of `POST /v1/admin/principals/{name}/keys`.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateKey {
    #[serde(default)]
    expires_in_hours: Option<u32>,
}

/// `POST /v1/admin/principals/{name}/keys`: 201 with the token (shown once).
pub async fn create_key(
    caller: Caller,
    state: web::Data<AppState>,
    name: web::Path<String>,
    req: HttpRequest,
    body: super::Body,
) -> Result<HttpResponse, ApiError> {
    let (access, admin) = principal_admin(&caller, &state).await?;
    let request: CreateKey = if body.0.is_empty() {
        CreateKey::default()
    } else {
        super::parse_json(&req, &body.0)?
    };
    let view = state
        .store
        .principal(&name)
        .await?
        .ok_or(ApiError::NotFound)?;
    let expires_at = key_expiry(&state, view.principal.kind, request.expires_in_hours)?;
    let key = ApiKey::generate().map_err(ApiError::internal)?;
    let mut event = caller.event_for(&access, EventKind::KeyCreated);
    event.resource = Some(format!("principal:{name}/key:{}", key.id));
    state
        .store
        .add_key(
            &admin,
            &name,
            &NewKey {
                key: &key,
                expires_at,
            },
            &event,
        )
        .await?;
    Ok(key_response(
        actix_web::http::StatusCode::CREATED,
        &name,
        Some((&key, expires_at)),
    ))
}

/// `DELETE /v1/admin/keys/{key_id}`: revokes at once (204; 404 for an unknown id).
pub async fn revoke_key(
    caller: Caller,
    state: web::Data<AppState>,
    key_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (access, admin) = principal_admin(&caller, &state).await?;
    let id = KeyId::parse(&key_id).ok_or(ApiError::NotFound)?;
    let mut event = caller.event_for(&access, EventKind::KeyRevoked);
    event.resource = Some(format!("key:{id}"));
    state.store.revoke_key(&admin, &id, &event).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Body of `POST /v1/admin/principals/{name}/certificates`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AddCertificate {
    /// SHA-256 of the certificate's DER encoding, hex (colons allowed).
    sha256: String,
}

/// `POST /v1/admin/principals/{name}/certificates`: the certificate now authenticates as
/// the principal (mutual TLS, without an `Authorization` header).
pub async fn add_certificate(
    caller: Caller,
    state: web::Data<AppState>,
    name: web::Path<String>,
    req: HttpRequest,
    body: super::Body,
) -> Result<HttpResponse, ApiError> {
    let (access, admin) = principal_admin(&caller, &state).await?;
    let request: AddCertificate = super::parse_json(&req, &body.0)?;
    let fingerprint: String = request
        .sha256
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    if fingerprint.len() != 64 || !fingerprint.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::InvalidField {
            field: "sha256",
            code: "not_a_sha256_fingerprint",
        });
    }
    let mut event = caller.event_for(&access, EventKind::CertificateMapped);
    event.resource = Some(format!("principal:{name}/certificate:{fingerprint}"));
    state
        .store
        .add_credential(
            &admin,
            &name,
            &NewCredential::Certificate {
                fingerprint: &fingerprint,
            },
            &event,
        )
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Body of `POST /v1/admin/principals/{name}/ssh-keys`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AddSshKey {
    /// The public key as one OpenSSH line (`ssh-ed25519 AAAA… comment`; the comment is
    /// not kept). ed25519 and ECDSA keys; RSA only in a build with `sftp-rsa-keys`.
    public_key: String,
}

/// `POST /v1/admin/principals/{name}/ssh-keys`: the key now logs in to SFTP as the
/// principal (the SSH user name must be the principal's name).
pub async fn add_ssh_key(
    caller: Caller,
    state: web::Data<AppState>,
    name: web::Path<String>,
    req: HttpRequest,
    body: super::Body,
) -> Result<HttpResponse, ApiError> {
    let (access, admin) = principal_admin(&caller, &state).await?;
    let request: AddSshKey = super::parse_json(&req, &body.0)?;
    let invalid = |code| ApiError::InvalidField {
        field: "public_key",
        code,
    };
    let mut key = russh::keys::PublicKey::from_openssh(request.public_key.trim())
        .map_err(|_| invalid("not_an_openssh_public_key"))?;
    if !crate::sftp::accepted_key_algorithm(&key) {
        return Err(invalid("key_algorithm_refused"));
    }
    key.set_comment("");
    let line = key
        .to_openssh()
        .map_err(|_| invalid("not_an_openssh_public_key"))?;
    let fingerprint = crate::sftp::fingerprint(&key);
    let algorithm = key.algorithm().as_str().to_owned();
    let mut event = caller.event_for(&access, EventKind::SshKeyMapped);
    event.resource = Some(format!("principal:{name}/ssh-key:{fingerprint}"));
    state
        .store
        .add_credential(
            &admin,
            &name,
            &NewCredential::SshKey {
                fingerprint: &fingerprint,
                algorithm: &algorithm,
                public_key: line.trim(),
            },
            &event,
        )
        .await?;
    Ok(HttpResponse::Created().json(serde_json::json!({
        "principal": name.as_str(),
        "fingerprint": fingerprint,
        "algorithm": algorithm,
    })))
}
