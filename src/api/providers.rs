//! `/v1/admin/providers`: create, list and show provider tenants (role `mapping_admin`).

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;

use super::AppState;
use super::auth::Authenticated;
use super::error::ApiError;
use crate::authz::Role;
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
    auth: Authenticated,
    state: web::Data<AppState>,
    body: web::Json<CreateProvider>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Role::MappingAdmin)?;
    let code = ProviderCode::parse(&body.code).map_err(|_| ApiError::InvalidField {
        field: "code",
        code: "invalid_provider_code",
    })?;
    let name = ProviderName::parse(&body.name).map_err(|_| ApiError::InvalidField {
        field: "name",
        code: "invalid_provider_name",
    })?;
    let provider = state.store.create_provider(&code, &name).await?;
    Ok(HttpResponse::Created().json(ProviderView::from(provider)))
}

/// Lists all providers.
pub async fn list(
    auth: Authenticated,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Role::MappingAdmin)?;
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
    auth: Authenticated,
    state: web::Data<AppState>,
    code: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    auth.require(Role::MappingAdmin)?;
    let code = ProviderCode::parse(&code).map_err(|_| ApiError::NotFound)?;
    let provider = state
        .store
        .provider(&code)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(ProviderView::from(provider)))
}
