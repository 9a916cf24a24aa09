//! `/v1/admin/providers`: create, list and show provider tenants.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use crate::audit::EventKind;
use crate::authz::{Permission, ProviderAdmin, Target};
use crate::providers::{Provider, ProviderCode, ProviderName};

/// Body of `POST /v1/admin/providers`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProvider {
    code: String,
    name: String,
}

/// A provider as the API shows it.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ProviderView {
    code: String,
    name: String,
    created_at: String,
    disabled: bool,
}

impl From<Provider> for ProviderView {
    fn from(p: Provider) -> Self {
        Self {
            code: p.code.to_string(),
            name: p.name,
            created_at: p.created_at.format(&Rfc3339).unwrap_or_default(),
            disabled: p.disabled,
        }
    }
}

/// Creates a provider: 201 with it, 409 if the code is taken.
pub async fn create(
    caller: Caller,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: super::Body,
) -> Result<HttpResponse, ApiError> {
    let access = caller
        .authorize(&state, Permission::ProvidersWrite, Target::Global)
        .await?;
    let admin = ProviderAdmin::from_access(&access).ok_or(ApiError::Forbidden)?;
    let body: CreateProvider = super::parse_json(&req, &body.0)?;
    let code = ProviderCode::parse(&body.code).map_err(|_| ApiError::InvalidField {
        field: "code",
        code: "invalid_provider_code",
    })?;
    let name = ProviderName::parse(&body.name).map_err(|_| ApiError::InvalidField {
        field: "name",
        code: "invalid_provider_name",
    })?;
    let mut event = caller.event_for(&access, EventKind::ProviderCreated);
    event.provider = Some(code.as_str().to_owned());
    let provider = state
        .store
        .create_provider(&admin, &code, &name, &event)
        .await?;
    Ok(HttpResponse::Created().json(ProviderView::from(provider)))
}

/// Disables a provider: its submitters' files are refused (403 `provider_disabled`) from
/// now on; files already received are still processed. 404 if there is none.
pub async fn disable(
    caller: Caller,
    state: web::Data<AppState>,
    code: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let access = caller
        .authorize(&state, Permission::ProvidersWrite, Target::Global)
        .await?;
    let admin = ProviderAdmin::from_access(&access).ok_or(ApiError::Forbidden)?;
    let code = ProviderCode::parse(&code).map_err(|_| ApiError::NotFound)?;
    let mut event = caller.event_for(&access, EventKind::ProviderDisabled);
    event.provider = Some(code.as_str().to_owned());
    let provider = state
        .store
        .disable_provider(&admin, &code, &event)
        .await
        .map_err(ApiError::for_path_provider)?;
    Ok(HttpResponse::Ok().json(ProviderView::from(provider)))
}

/// Lists all providers.
pub async fn list(caller: Caller, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    caller
        .authorize(&state, Permission::ProvidersRead, Target::Global)
        .await?;
    let providers: Vec<ProviderView> = state
        .store
        .list_providers()
        .await?
        .into_iter()
        .map(ProviderView::from)
        .collect();
    Ok(HttpResponse::Ok().json(providers))
}

/// Shows one provider, 404 if there is none with that code.
pub async fn show(
    caller: Caller,
    state: web::Data<AppState>,
    code: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller
        .authorize(&state, Permission::ProvidersRead, Target::Global)
        .await?;
    let code = ProviderCode::parse(&code).map_err(|_| ApiError::NotFound)?;
    let provider = state
        .store
        .provider(&code)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(ProviderView::from(provider)))
}
