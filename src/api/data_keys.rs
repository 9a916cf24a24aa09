//! `/v1/admin/providers/{code}/keys`: a provider's data keys (`keys:manage`, which the
//! shipped policy gives `security_admin`): list them, rotate (new writes use the new key;
//! the old one still opens what it sealed), destroy (crypto-shredding, with the provider
//! code repeated as confirmation).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use time::format_description::well_known::Rfc3339;

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use crate::audit::EventKind;
use crate::authz::{Access, KeyAdmin, Permission, Target};
use crate::providers::ProviderCode;

async fn key_admin(
    caller: &Caller,
    state: &AppState,
    code: &str,
) -> Result<(Access, KeyAdmin, ProviderCode), ApiError> {
    let access = caller
        .authorize(state, Permission::KeysManage, Target::Global)
        .await?;
    let admin = KeyAdmin::from_access(&access).ok_or(ApiError::Forbidden)?;
    let code = ProviderCode::parse(code).map_err(|_| ApiError::NotFound)?;
    state
        .store
        .provider(&code)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok((access, admin, code))
}

/// Lists the provider's data keys: ids, states and times (never key material).
pub async fn list(
    caller: Caller,
    state: web::Data<AppState>,
    code: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (_, _, code) = key_admin(&caller, &state, &code).await?;
    let time = |t: Option<time::OffsetDateTime>| t.and_then(|t| t.format(&Rfc3339).ok());
    let keys: Vec<serde_json::Value> = state
        .store
        .data_keys(Some(&code))
        .await?
        .into_iter()
        .map(|k| {
            serde_json::json!({
                "key_id": k.key_id,
                "kek_fingerprint": k.kek_fingerprint,
                "created_at": time(Some(k.created_at)),
                "retired_at": time(k.retired_at),
                "destroyed_at": time(k.destroyed_at),
                "drained_at": time(k.drained_at),
                "purpose": k.purpose,
                "state": k.state(),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(keys))
}

/// Rotates: 201 with the new key id.
pub async fn rotate(
    caller: Caller,
    state: web::Data<AppState>,
    code: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (access, admin, code) = key_admin(&caller, &state, &code).await?;
    let event = caller.event_for(&access, EventKind::DataKeyRotated);
    let key_id = state.keyring.rotate(&admin, &code, &event).await?;
    Ok(HttpResponse::Created().json(serde_json::json!({ "key_id": key_id })))
}

/// Body of the destroy request.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Destroy {
    /// The provider code again, as confirmation.
    confirm: String,
}

/// Destroys every data key of the provider: its PHI can never be read again.
pub async fn destroy(
    caller: Caller,
    state: web::Data<AppState>,
    code: web::Path<String>,
    req: HttpRequest,
    body: super::Body,
) -> Result<HttpResponse, ApiError> {
    let (access, admin, code) = key_admin(&caller, &state, &code).await?;
    let request: Destroy = super::parse_json(&req, &body.0)?;
    if request.confirm != code.as_str() {
        return Err(ApiError::InvalidField {
            field: "confirm",
            code: "must_repeat_the_provider_code",
        });
    }
    let mut event = caller.event_for(&access, EventKind::DataKeyDestroyed);
    event.provider = Some(code.as_str().to_owned());
    let destroyed = state.keyring.destroy(&admin, &code, &event).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "destroyed": destroyed })))
}
