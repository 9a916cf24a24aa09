//! `GET /v1/providers/{code}/claims`: a provider's stored claims, for holders of
//! `claims:read_phi` on that provider. Read under the provider's tenancy (row-level
//! security on PostgreSQL) and audited as a PHI read in the same transaction.

use actix_web::{HttpResponse, web};
use serde::Serialize;
use time::format_description::well_known::Rfc3339;

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use crate::audit::EventKind;
use crate::authz::{Permission, PhiAccess, Target};
use crate::providers::ProviderCode;

#[derive(Debug, Serialize)]
struct ClaimJson {
    id: i64,
    source_claim_id: String,
    created_at: String,
}

/// Lists the provider's claims.
pub async fn list(
    caller: Caller,
    state: web::Data<AppState>,
    code: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let code = ProviderCode::parse(&code).map_err(|_| ApiError::NotFound)?;
    let access = caller
        .authorize(&state, Permission::ClaimsReadPhi, Target::Provider(&code))
        .await?;
    let phi = PhiAccess::from_access(&access).ok_or(ApiError::Forbidden)?;
    let mut event = caller.event_for(&access, EventKind::PhiRead);
    event.resource = Some("claims".into());
    event.phi = true;
    let claims: Vec<ClaimJson> = state
        .store
        .list_claims(&phi, &event)
        .await?
        .into_iter()
        .map(|c| ClaimJson {
            id: c.id,
            source_claim_id: c.source_claim_id,
            created_at: c.created_at.format(&Rfc3339).unwrap_or_default(),
        })
        .collect();
    Ok(HttpResponse::Ok().json(claims))
}
