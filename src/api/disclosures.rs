//! `POST /v1/audit/disclosures`: the accounting of disclosures (45 CFR 164.528) for one
//! member, for holders of `audit:read` (the compliance auditor). Every identified read of
//! that member's claims in a time range (by default the six years the rule covers): who,
//! when, under which role, for which stated purpose, which claims. JSON, or CSV with
//! `"format": "csv"`. The member id travels in the body and is looked up through the
//! provider's blind index, never stored or logged; the accounting is itself audited.

use actix_web::{HttpRequest, HttpResponse, web};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::AppState;
use super::audit::csv_cell;
use super::auth::Caller;
use super::error::ApiError;
use crate::audit::EventKind;
use crate::authz::{Permission, Target};
use crate::protect::ClaimSealer;
use crate::providers::ProviderCode;
use crate::store::DisclosureRow;

/// What an accounting covers by default: the six years before the request.
const DEFAULT_SPAN: time::Duration = time::Duration::days(6 * 366);

/// Body of an accounting request.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Accounting {
    /// The provider whose member it is.
    provider: String,
    /// The member id (as the provider sends it).
    #[schemars(with = "String")]
    member_id: SecretString,
    /// From this time (RFC 3339; default six years before now).
    from: Option<String>,
    /// Before this time (RFC 3339; default now).
    to: Option<String>,
    /// `json` (default) or `csv`.
    format: Option<String>,
}

fn instant(value: Option<&str>, field: &'static str) -> Result<Option<OffsetDateTime>, ApiError> {
    value
        .map(|v| {
            OffsetDateTime::parse(v, &Rfc3339).map_err(|_| ApiError::InvalidField {
                field,
                code: "expected_rfc3339",
            })
        })
        .transpose()
}

/// The accounting of disclosures for one member.
pub async fn account(
    caller: Caller,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: super::Body,
) -> Result<HttpResponse, ApiError> {
    let access = caller
        .authorize(&state, Permission::AuditRead, Target::Global)
        .await?;
    let request: Accounting = super::parse_json(&req, &body.0)?;
    let csv = match request.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => {
            return Err(ApiError::InvalidField {
                field: "format",
                code: "json_or_csv",
            });
        }
    };
    let member = request.member_id.expose_secret().trim();
    if member.is_empty() {
        return Err(ApiError::InvalidField {
            field: "member_id",
            code: "required",
        });
    }
    let now = OffsetDateTime::now_utc();
    let to = instant(request.to.as_deref(), "to")?.unwrap_or(now);
    let from = instant(request.from.as_deref(), "from")?.unwrap_or(to - DEFAULT_SPAN);
    if from > to {
        return Err(ApiError::InvalidField {
            field: "from",
            code: "after_to",
        });
    }
    let code = ProviderCode::parse(&request.provider).map_err(|_| ApiError::InvalidField {
        field: "provider",
        code: "unknown_provider",
    })?;
    let sealer = ClaimSealer::for_provider(&state.keyring, &code).await?;
    let index = sealer.member_index(member);
    let mut event = caller.event_for(&access, EventKind::DisclosuresAccounted);
    event.provider = Some(code.as_str().to_owned());
    event.resource = Some("disclosures".into());
    event.phi = true;
    let rows = state
        .store
        .disclosures_for_member(&code, &index, (from, to), &event)
        .await?;
    let response = |content_type: &str| {
        let mut response = HttpResponse::Ok();
        response
            .content_type(content_type)
            .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"));
        response
    };
    if csv {
        Ok(response("text/csv; charset=utf-8").body(as_csv(&rows)))
    } else {
        let disclosures: Vec<serde_json::Value> = rows.iter().map(as_json).collect();
        Ok(response("application/json").json(serde_json::json!({
            "provider": code.as_str(),
            "from": from.format(&Rfc3339).unwrap_or_default(),
            "to": to.format(&Rfc3339).unwrap_or_default(),
            "disclosures": disclosures,
        })))
    }
}

fn as_json(row: &DisclosureRow) -> serde_json::Value {
    serde_json::json!({
        "disclosure_id": row.id,
        "occurred_at": row.occurred_at.format(&Rfc3339).unwrap_or_default(),
        "principal": row.principal.as_deref().unwrap_or("operator console"),
        "role": row.role,
        "purpose": row.purpose,
        "action": row.action,
        "request_id": row.request_id,
        "break_glass": row.break_glass,
        "claim_ids": row.claim_ids,
    })
}

/// The CSV columns of an accounting.
const CSV_COLUMNS: &str =
    "disclosure_id,occurred_at,principal,role,purpose,action,request_id,break_glass,claim_ids";

fn as_csv(rows: &[DisclosureRow]) -> String {
    let mut out = String::from(CSV_COLUMNS);
    out.push_str("\r\n");
    for row in rows {
        let claims: Vec<String> = row.claim_ids.iter().map(i64::to_string).collect();
        let cells = [
            row.id.to_string(),
            row.occurred_at.format(&Rfc3339).unwrap_or_default(),
            row.principal
                .clone()
                .unwrap_or_else(|| "operator console".into()),
            row.role.clone().unwrap_or_default(),
            row.purpose.clone(),
            row.action.clone(),
            row.request_id.clone().unwrap_or_default(),
            row.break_glass.to_string(),
            claims.join(" "),
        ];
        let line: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}
