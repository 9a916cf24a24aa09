//! `/v1/admin/providers`: create, list, show and disable provider tenants, and set whether
//! their X12 interchange control numbers are unique.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use crate::audit::EventKind;
use crate::authz::{Permission, ProviderAdmin, Target};
use crate::providers::{InterchangeControl, Provider, ProviderCode, ProviderName};

/// Body of `POST /v1/admin/providers`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProvider {
    code: String,
    name: String,
    /// Whether the provider's X12 interchange control numbers are unique (the default):
    /// a new file that repeats one is refused with 409 `interchange_replay`.
    #[serde(default)]
    interchange_control: InterchangeControl,
}

/// Body of `PUT /v1/admin/providers/{code}/interchange-control`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetInterchangeControl {
    /// `unique`: a new file that repeats an interchange already received is refused;
    /// `reused`: the sender reuses control numbers, files are deduplicated by bytes.
    interchange_control: InterchangeControl,
}

/// A provider as the API shows it.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ProviderView {
    code: String,
    name: String,
    created_at: String,
    disabled: bool,
    interchange_control: InterchangeControl,
}

impl From<Provider> for ProviderView {
    fn from(p: Provider) -> Self {
        Self {
            code: p.code.to_string(),
            name: p.name,
            created_at: p.created_at.format(&Rfc3339).unwrap_or_default(),
            disabled: p.disabled,
            interchange_control: p.interchange_control,
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
        .create_provider_with(&admin, &code, &name, body.interchange_control, &event)
        .await?;
    Ok(HttpResponse::Created().json(ProviderView::from(provider)))
}

/// Sets whether a provider's X12 interchange control numbers are unique or reused (from
/// now on; uploads received while they were reused hold no control number against later
/// files). 404 if there is none.
pub async fn set_interchange_control(
    caller: Caller,
    state: web::Data<AppState>,
    code: web::Path<String>,
    req: HttpRequest,
    body: super::Body,
) -> Result<HttpResponse, ApiError> {
    let access = caller
        .authorize(&state, Permission::ProvidersWrite, Target::Global)
        .await?;
    let admin = ProviderAdmin::from_access(&access).ok_or(ApiError::Forbidden)?;
    let code = ProviderCode::parse(&code).map_err(|_| ApiError::NotFound)?;
    let body: SetInterchangeControl = super::parse_json(&req, &body.0)?;
    let policy = body.interchange_control;
    let mut event = caller.event_for(&access, EventKind::ProviderChanged);
    event.provider = Some(code.as_str().to_owned());
    event.resource = Some(format!("interchange_control:{}", policy.as_str()));
    let provider = state
        .store
        .set_interchange_control(&admin, &code, policy, &event)
        .await
        .map_err(ApiError::for_path_provider)?;
    Ok(HttpResponse::Ok().json(ProviderView::from(provider)))
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
