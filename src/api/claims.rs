//! A provider's stored claims, for holders of `claims:read_phi` on that provider, read
//! under the provider's tenancy (row-level security on PostgreSQL) and audited as PHI
//! reads:
//!
//! - `GET /v1/providers/{code}/claims`: the list (identities only);
//! - `GET /v1/providers/{code}/claims/{id}`: one claim with its PHI opened (410
//!   `key_destroyed` after crypto-shredding);
//! - `POST /v1/providers/{code}/claims/search`: exact look-up by member id, or by last
//!   name, first name and birth date, through blind indexes (nothing is decrypted to
//!   search; the values travel in the body, never in a URL that could be logged).

use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use crate::audit::EventKind;
use crate::authz::{Access, Permission, PhiAccess, Target};
use crate::protect::ClaimSealer;
use crate::providers::ProviderCode;
use crate::store::IndexColumn;

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

async fn phi_access(
    caller: &Caller,
    state: &AppState,
    code: &str,
) -> Result<(Access, PhiAccess, ProviderCode), ApiError> {
    let code = ProviderCode::parse(code).map_err(|_| ApiError::NotFound)?;
    let access = caller
        .authorize(state, Permission::ClaimsReadPhi, Target::Provider(&code))
        .await?;
    let phi = PhiAccess::from_access(&access).ok_or(ApiError::Forbidden)?;
    Ok((access, phi, code))
}

/// One claim with its PHI opened.
pub async fn show(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
) -> Result<HttpResponse, ApiError> {
    let (code, id) = path.into_inner();
    let (access, phi, _) = phi_access(&caller, &state, &code).await?;
    let mut event = caller.event_for(&access, EventKind::PhiRead);
    event.resource = Some(format!("claim:{id}"));
    event.phi = true;
    event.records = Some(1);
    let stored = state
        .store
        .claim_phi(&phi, id, &event)
        .await?
        .ok_or(ApiError::NotFound)?;
    let opened = crate::protect::open_phi(&state.keyring, &stored).await?;
    let date = |d: Option<time::Date>| d.map(|d| d.to_string());
    let body = serde_json::json!({
        "id": stored.id,
        "source_claim_id": stored.source_claim_id,
        "upload_id": stored.key.upload_id,
        "record": stored.key.record_no,
        "created_at": stored.created_at.format(&Rfc3339).unwrap_or_default(),
        "member_id": opened.member_id.expose(),
        "patient_first_name": opened.first_name.expose(),
        "patient_last_name": opened.last_name.expose(),
        "birth_date": date(*opened.birth_date.expose()),
        "address": opened.address.expose(),
        "city": opened.city.expose(),
        "zip": opened.zip.expose(),
    });
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(body))
}

/// Body of a search: a member id, or a last name, first name and birth date.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Search {
    #[schemars(with = "Option<String>")]
    member_id: Option<SecretString>,
    #[schemars(with = "Option<String>")]
    last_name: Option<SecretString>,
    #[schemars(with = "Option<String>")]
    first_name: Option<SecretString>,
    #[schemars(with = "Option<String>")]
    birth_date: Option<SecretString>,
}

/// Ids of the provider's claims matching the search exactly.
pub async fn search(
    caller: Caller,
    state: web::Data<AppState>,
    code: web::Path<String>,
    req: HttpRequest,
    body: super::Body,
) -> Result<HttpResponse, ApiError> {
    let (access, phi, code) = phi_access(&caller, &state, &code).await?;
    let search: Search = super::parse_json(&req, &body.0)?;
    let sealer = ClaimSealer::for_provider(&state.keyring, &code).await?;
    let (column, index) = match search {
        Search {
            member_id: Some(member),
            last_name: None,
            first_name: None,
            birth_date: None,
        } if !member.expose_secret().trim().is_empty() => (
            IndexColumn::Member,
            sealer.member_index(member.expose_secret()),
        ),
        Search {
            member_id: None,
            last_name: Some(last),
            first_name: Some(first),
            birth_date: Some(born),
        } => {
            let format = time::macros::format_description!("[year]-[month]-[day]");
            let born = time::Date::parse(born.expose_secret(), &format).map_err(|_| {
                ApiError::InvalidField {
                    field: "birth_date",
                    code: "expected_yyyy_mm_dd",
                }
            })?;
            (
                IndexColumn::Person,
                sealer.person_index(last.expose_secret(), first.expose_secret(), born),
            )
        }
        _ => {
            return Err(ApiError::InvalidField {
                field: "member_id",
                code: "member_id_or_name_and_birth_date",
            });
        }
    };
    let ids = state.store.find_claims(&phi, column, &index).await?;
    let mut event = caller.event_for(&access, EventKind::PhiRead);
    event.resource = Some("claims:search".into());
    event.phi = true;
    event.records = Some(ids.len() as u64);
    state.store.append_audit(&event).await?;
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({ "ids": ids })))
}
