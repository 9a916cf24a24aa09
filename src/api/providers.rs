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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateProvider {
    code: String,
    name: String,
}

/// A provider as the API shows it.
#[derive(Debug, Serialize)]
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

/// Body of `PUT /v1/admin/providers/{code}/mapping`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignMapping {
    /// `x12`, a built-in name, or a mapping definition (TOML).
    mapping: String,
}

/// Assigns the mapping the provider's files are read with (checked first: every problem
/// is listed with its path and code).
pub async fn set_mapping(
    caller: Caller,
    state: web::Data<AppState>,
    code: web::Path<String>,
    req: HttpRequest,
    body: super::Body,
) -> Result<HttpResponse, ApiError> {
    let access = caller
        .authorize(&state, Permission::MappingsWrite, Target::Global)
        .await?;
    let admin = ProviderAdmin::from_access(&access).ok_or(ApiError::Forbidden)?;
    let code = ProviderCode::parse(&code).map_err(|_| ApiError::NotFound)?;
    let body: AssignMapping = super::parse_json(&req, &body.0)?;
    crate::pipeline::MappingChoice::resolve(&body.mapping).map_err(ApiError::MappingInvalid)?;
    let mut event = caller.event_for(&access, EventKind::MappingActivated);
    event.provider = Some(code.to_string());
    event.resource = Some(format!("provider:{code}/mapping"));
    state
        .store
        .set_provider_mapping(&admin, &code, &body.mapping, &event)
        .await
        .map_err(|e| match e {
            crate::store::StoreError::UnknownProvider => ApiError::NotFound,
            other => other.into(),
        })?;
    Ok(HttpResponse::NoContent().finish())
}
