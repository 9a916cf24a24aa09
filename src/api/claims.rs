//! A provider's stored claims, for holders of `claims:read_phi` on that provider, read
//! under the provider's tenancy (row-level security on PostgreSQL). Every call states its
//! purpose (`treatment`, `payment`, `operations`, `research`, `legal`, `other`) and is
//! recorded as a disclosure of the claims it touched, audited in the same transaction:
//!
//! - `GET /v1/providers/{code}/claims?purpose=…`: the list (identities only);
//! - `GET /v1/providers/{code}/claims/{id}?purpose=…`: one claim with its PHI opened, its
//!   lines and its versions (410 `key_destroyed` after crypto-shredding);
//! - `POST /v1/providers/{code}/claims/search`: exact look-up by member id, or by last
//!   name, first name and birth date, through blind indexes (nothing is decrypted to
//!   search; the values and the purpose travel in the body, never in a URL that could be
//!   logged).

use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use crate::audit::{EventKind, Purpose};
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

/// The stated purpose of a PHI read: required, one of the fixed list.
pub(super) fn stated_purpose(value: Option<&str>) -> Result<Purpose, ApiError> {
    match value.map(str::trim) {
        None | Some("") => Err(ApiError::InvalidField {
            field: "purpose",
            code: "purpose_required",
        }),
        Some(code) => Purpose::parse(code).ok_or(ApiError::InvalidField {
            field: "purpose",
            code: "unknown_purpose",
        }),
    }
}

/// `?purpose=…` of a GET.
#[derive(Deserialize, schemars::JsonSchema)]
pub(super) struct PurposeParam {
    /// Why: treatment, payment, operations, research, legal or other.
    #[schemars(with = "Purpose")]
    purpose: Option<String>,
}

fn query_purpose(req: &HttpRequest) -> Result<Purpose, ApiError> {
    let param = web::Query::<PurposeParam>::from_query(req.query_string()).map_err(|_| {
        ApiError::InvalidField {
            field: "purpose",
            code: "purpose_required",
        }
    })?;
    stated_purpose(param.purpose.as_deref())
}

/// Lists the provider's claims.
pub async fn list(
    caller: Caller,
    state: web::Data<AppState>,
    code: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let code = ProviderCode::parse(&code).map_err(|_| ApiError::NotFound)?;
    let access = caller
        .authorize(&state, Permission::ClaimsReadPhi, Target::Provider(&code))
        .await?;
    let phi = PhiAccess::from_access(&access).ok_or(ApiError::Forbidden)?;
    let mut event = caller.event_for(&access, EventKind::PhiRead);
    event.purpose = Some(query_purpose(&req)?);
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

/// One claim with its PHI opened, its lines and its versions.
pub async fn show(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(String, i64)>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (code, id) = path.into_inner();
    let (access, phi, _) = phi_access(&caller, &state, &code).await?;
    let mut event = caller.event_for(&access, EventKind::PhiRead);
    event.purpose = Some(query_purpose(&req)?);
    event.phi = true;
    let detail = state
        .store
        .claim_phi(&phi, id, &event)
        .await?
        .ok_or(ApiError::NotFound)?;
    let stored = &detail.phi;
    let opened = match crate::protect::open_phi(&state.keyring, stored).await {
        Ok(opened) => opened,
        Err(crate::keyring::KeyringError::Crypto(_)) => {
            // Tampering, or a value moved from its place: an alert and an audit event of
            // its own, beside the read already recorded.
            tracing::error!(
                alert = "integrity_failure",
                claim = id,
                "a stored value failed its integrity check"
            );
            state.metrics.integrity_failure();
            let mut failure = caller.event_for(&access, EventKind::IntegrityFailure);
            failure.outcome = crate::audit::Outcome::Denied;
            failure.resource = Some(format!("claim:{id}"));
            state.store.append_audit(&failure).await?;
            return Err(ApiError::IntegrityFailure);
        }
        Err(e) => return Err(e.into()),
    };
    let date = |d: Option<time::Date>| d.map(|d| d.to_string());
    let time = |t: time::OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
    let lines: Vec<serde_json::Value> = detail
        .lines
        .iter()
        .map(|l| {
            serde_json::json!({
                "line_number": l.line_number,
                "service_from": date(l.service_from),
                "service_through": date(l.service_through),
                "procedure_code": l.procedure_code,
                "modifiers": l.modifiers,
                "revenue_code": l.revenue_code,
                "ndc": l.ndc,
                "units_milli": l.units_milli,
                "charge_cents": l.charge_cents,
                "paid_cents": l.paid_cents,
                "allowed_cents": l.allowed_cents,
                "rendering_npi": l.rendering_npi,
                "place_of_service": l.place_of_service,
            })
        })
        .collect();
    let versions: Vec<serde_json::Value> = detail
        .versions
        .iter()
        .map(|v| {
            serde_json::json!({
                "id": v.id,
                "upload_id": v.upload_id,
                "record": v.record_no,
                "frequency_code": v.frequency_code,
                "created_at": time(v.created_at),
                "superseded_at": v.superseded_at.map(time),
                "current": v.superseded_at.is_none(),
                "unmatched": v.unmatched,
            })
        })
        .collect();
    let body = serde_json::json!({
        "id": stored.id,
        "source_claim_id": stored.source_claim_id,
        "upload_id": stored.key.upload_id,
        "record": stored.key.record_no,
        "created_at": time(stored.created_at),
        "claim_type": detail.claim_type,
        "frequency_code": detail.frequency_code,
        "original_claim_id": detail.original_claim_id,
        "total_charge_cents": detail.total_charge_cents,
        "member_id": opened.member_id.expose(),
        "patient_first_name": opened.first_name.expose(),
        "patient_last_name": opened.last_name.expose(),
        "birth_date": date(*opened.birth_date.expose()),
        "address": opened.address.expose(),
        "city": opened.city.expose(),
        "zip": opened.zip.expose(),
        "lines": lines,
        "versions": versions,
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
    /// Why: treatment, payment, operations, research, legal or other (required).
    purpose: Option<Purpose>,
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
    let mut search: Search = super::parse_json(&req, &body.0)?;
    let purpose = search.purpose.take().ok_or(ApiError::InvalidField {
        field: "purpose",
        code: "purpose_required",
    })?;
    let sealer = ClaimSealer::for_provider(&state.keyring, &code).await?;
    let (column, index) = match search {
        Search {
            member_id: Some(member),
            last_name: None,
            first_name: None,
            birth_date: None,
            ..
        } if !member.expose_secret().trim().is_empty() => (
            IndexColumn::Member,
            sealer.member_index(member.expose_secret()),
        ),
        Search {
            member_id: None,
            last_name: Some(last),
            first_name: Some(first),
            birth_date: Some(born),
            ..
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
    let mut event = caller.event_for(&access, EventKind::PhiRead);
    event.purpose = Some(purpose);
    event.phi = true;
    let ids = state
        .store
        .find_claims(&phi, (column, &index), &event)
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({ "ids": ids })))
}
