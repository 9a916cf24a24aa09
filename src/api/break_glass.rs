//! `POST /v1/providers/{code}/break-glass`: emergency access. A principal allowed to ask
//! gets `phi_reader` on that provider for a limited time by stating a reason. The grant
//! lapses by itself; every PHI read it allows is audited with `break_glass` and `review`
//! set, so compliance staff can review each use. The reason is free text that could name
//! a patient: it is sealed under the provider's data key and kept with the grant, never
//! in the audit trail.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use crate::audit::EventKind;
use crate::authz::{Permission, Target};
use crate::providers::ProviderCode;

/// Body of the request.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct BreakGlassRequest {
    /// Why access is needed (10 to 1,000 characters).
    reason: String,
    /// How long, at most `auth.break_glass_max_minutes` (default 60).
    #[serde(default)]
    minutes: Option<u32>,
}

/// Grants the caller time-limited `phi_reader` on the provider: 201 with the expiry.
pub async fn request(
    caller: Caller,
    state: web::Data<AppState>,
    code: web::Path<String>,
    req: HttpRequest,
    body: super::Body,
) -> Result<HttpResponse, ApiError> {
    let code = ProviderCode::parse(&code).map_err(|_| ApiError::NotFound)?;
    let access = caller
        .authorize(
            &state,
            Permission::EmergencyAccessRequest,
            Target::Provider(&code),
        )
        .await?;
    let body: BreakGlassRequest = super::parse_json(&req, &body.0)?;
    let reason = body.reason.trim();
    if !(10..=1000).contains(&reason.chars().count()) {
        return Err(ApiError::InvalidField {
            field: "reason",
            code: "between_10_and_1000_characters",
        });
    }
    let max_minutes = state.break_glass_max.as_secs() / 60;
    let minutes = u64::from(body.minutes.unwrap_or(60));
    if minutes == 0 || minutes > max_minutes {
        return Err(ApiError::InvalidField {
            field: "minutes",
            code: "out_of_range",
        });
    }
    if state.store.provider(&code).await?.is_none() {
        return Err(ApiError::NotFound);
    }
    let expires_at = OffsetDateTime::now_utc() + time::Duration::minutes(minutes as i64);
    let mut event = caller.event_for(&access, EventKind::BreakGlassGranted);
    event.resource = Some("grant:phi_reader".into());
    event.break_glass = true;
    let row = format!(
        "{}/{code}/{}",
        access.principal_id,
        expires_at.unix_timestamp()
    );
    let slot = crate::crypto::FieldSlot {
        table: "role_grants",
        column: "sealed_reason",
        row: &row,
    };
    let sealed_reason = state
        .keyring
        .seal_field(&code, slot, reason.as_bytes())
        .await?;
    state
        .store
        .grant_break_glass(&access, expires_at, &sealed_reason, &event)
        .await?;
    Ok(HttpResponse::Created().json(serde_json::json!({
        "role": "phi_reader",
        "provider": code.as_str(),
        "expires_at": expires_at.format(&Rfc3339).unwrap_or_default(),
    })))
}
