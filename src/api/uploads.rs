//! Uploads: a provider system sends a claim file; the body streams into the encrypted raw
//! store while its SHA-256 is computed (memory stays flat whatever its size); a recorded
//! upload is queued for the workers and answered 202 with its id and status URL.
//!
//! - `POST /v1/uploads` (`uploads:write`; the provider is the credential's): the body is
//!   the file, or `multipart/form-data` with exactly one part (`curl -F file=@…`). Optional headers: `X-Content-SHA256` (hex; checked on arrival),
//!   `Idempotency-Key`. The same file (provider and SHA-256) sent again, or the same
//!   idempotency key, answers 200 with the earlier upload and is not processed again
//!   (audited `upload.duplicate`). A new file that repeats an earlier X12 interchange
//!   (sender, receiver and ISA13) answers 409 `interchange_replay` with the earlier
//!   upload's id, unless the provider is set to reuse control numbers.
//! - `GET /v1/uploads/{id}` (`uploads:read`): the receipt: state, counts, control totals,
//!   timings.
//! - `GET /v1/uploads/{id}/rejects` (`uploads:read`): every refused record's position,
//!   field, code and message (never a value), paged by `after` and `limit`.
//! - `GET /v1/uploads/{id}/999` (`uploads:read`): the 999 acknowledgement of an X12 file.
//!
//! A body cut off, too large or failing its checksum is never recorded: the partial raw
//! file is removed and the refusal audited (`upload.rejected`).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt as _;
use serde::Deserialize;

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use crate::audit::{EventKind, Outcome};
use crate::authz::{Access, Permission};
use crate::ingest::IntakeError;
use crate::providers::ProviderCode;
use crate::raw_store::RawFileStream;
use crate::store::UploadRow;

/// Content types a claim file may be sent as.
const FILE_TYPES: [&str; 10] = [
    "application/octet-stream",
    "application/edi-x12",
    "text/plain",
    "text/csv",
    "application/xml",
    "text/xml",
    "application/json",
    "application/fhir+json",
    "application/x-ndjson",
    "application/fhir+ndjson",
];

fn header_text<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

fn accepted_response(row: &UploadRow, created: bool) -> HttpResponse {
    let status_url = format!("/v1/uploads/{}", row.upload_id);
    let mut response = if created {
        HttpResponse::Accepted()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::LOCATION, status_url.clone()))
        .json(serde_json::json!({
            "upload_id": row.upload_id,
            "status_url": status_url,
            "state": row.state,
            "sha256": row.sha256,
            "size_bytes": row.size_bytes,
            "duplicate": !created,
        }))
}

/// Receives a claim file.
pub async fn create(
    caller: Caller,
    state: web::Data<AppState>,
    req: HttpRequest,
    mut payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (access, provider) = caller
        .own_provider(&state, Permission::UploadsWrite)
        .await?;
    // Refused before a byte of the body is stored (the store checks again on record).
    if state
        .store
        .provider(&provider)
        .await?
        .is_some_and(|p| p.disabled)
    {
        return Err(ApiError::ProviderDisabled);
    }
    let mut multipart = file_body(&req)?;
    let expected = match header_text(&req, "x-content-sha256") {
        None => None,
        Some(text) => Some(
            hex::decode(text.trim())
                .ok()
                .filter(|d| d.len() == 32)
                .ok_or(ApiError::InvalidField {
                    field: "x-content-sha256",
                    code: "expected_64_hex_characters",
                })?,
        ),
    };
    let idempotency_key = match req.headers().get("idempotency-key") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .filter(|k| (1..=128).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()))
                .ok_or(ApiError::InvalidField {
                    field: "idempotency-key",
                    code: "expected_1_to_128_visible_characters",
                })?
                .to_owned(),
        ),
    };
    // A retried request with the same key is answered before its body is read.
    if let Some(key) = &idempotency_key {
        if let Some(earlier) = state
            .store
            .upload_by_idempotency_key(&provider, key)
            .await?
        {
            let mut event = caller.event_for(&access, EventKind::UploadDuplicate);
            event.resource = Some(format!("upload:{}", earlier.upload_id));
            state.store.append_audit(&event).await?;
            return Ok(accepted_response(&earlier, false));
        }
    }
    // The body goes to a blocking thread that encrypts, hashes and writes it; the
    // channel's bound keeps memory flat (back-pressure reaches the client through TCP).
    let stream = RawFileStream::start(state.raw.begin(&provider).await?);
    let mut failure = None;
    'receive: while let Some(chunk) = payload.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => {
                failure = Some(ApiError::from(e));
                break;
            }
        };
        let pieces = match multipart.as_mut() {
            None => vec![chunk],
            Some(parser) => {
                let mut pieces = Vec::new();
                if let Err(e) = parser.push(&chunk, &mut |b| {
                    pieces.push(bytes::Bytes::copy_from_slice(b));
                }) {
                    failure = Some(multipart_error(e));
                    break;
                }
                pieces
            }
        };
        for piece in pieces {
            if !stream.send(piece).await {
                break 'receive;
            }
        }
    }
    if failure.is_none() {
        if let Some(Err(e)) = multipart.as_ref().map(super::multipart::OnePart::finish) {
            failure = Some(multipart_error(e));
        }
    }
    let written = stream.finish().await;
    let refuse = |state: &AppState, bytes: u64, error: ApiError, reason: &'static str| {
        state.metrics.refused(bytes);
        let mut event = caller.event_for(&access, EventKind::UploadRejected);
        event.outcome = Outcome::Denied;
        event.reason = Some(reason);
        if let ApiError::InterchangeReplay { earlier } = &error {
            event.resource = Some(format!("upload:{earlier}"));
        }
        let store = state.store.clone();
        async move {
            store.append_audit(&event).await?;
            Err::<HttpResponse, ApiError>(error)
        }
    };
    let writer = match (written, failure) {
        (Ok(writer), None) => writer,
        (Ok(writer), Some(error)) => {
            let reason = match error {
                ApiError::PayloadTooLarge => "too_large",
                ApiError::BodyTimeout => "too_slow",
                ApiError::InvalidField { .. } => "malformed_multipart",
                _ => "incomplete",
            };
            return refuse(&state, writer.received(), error, reason).await;
        }
        (Err(e), _) if e.is_storage_full() => {
            return refuse(&state, 0, e.into(), "storage_full").await;
        }
        (Err(e), _) => return Err(ApiError::internal(e)),
    };
    if writer.received() == 0 {
        return refuse(
            &state,
            0,
            ApiError::InvalidField {
                field: "body",
                code: "empty_upload",
            },
            "empty",
        )
        .await;
    }
    let sha256 = writer.sha256();
    if expected.as_deref().is_some_and(|e| e != sha256) {
        return refuse(
            &state,
            writer.received(),
            ApiError::InvalidField {
                field: "x-content-sha256",
                code: "checksum_mismatch",
            },
            "checksum_mismatch",
        )
        .await;
    }
    let recorded = state
        .intake()
        .record(
            &provider,
            writer,
            Some(caller.principal.id),
            idempotency_key.as_deref(),
            caller.event_for(&access, EventKind::UploadReceived),
        )
        .await;
    match recorded {
        Ok((row, created)) => Ok(accepted_response(&row, created)),
        Err(IntakeError::InterchangeReplay { earlier, received }) => {
            let error = ApiError::InterchangeReplay { earlier };
            refuse(&state, received, error, "interchange_replay").await
        }
        Err(e) => Err(e.into()),
    }
}

/// How a claim file arrives in a body: `None` as the body itself (one of the file content
/// types), `Some` as the one part of a `multipart/form-data` body; 415 otherwise.
pub(super) fn file_body(req: &HttpRequest) -> Result<Option<super::multipart::OnePart>, ApiError> {
    let content_type = header_text(req, "content-type")
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    match content_type.as_deref() {
        Some("multipart/form-data") => Ok(Some(
            super::multipart::OnePart::new(header_text(req, "content-type").unwrap_or_default())
                .map_err(|_| ApiError::InvalidField {
                    field: "content-type",
                    code: "multipart_boundary",
                })?,
        )),
        Some(t) if FILE_TYPES.contains(&t) => Ok(None),
        _ => Err(ApiError::UnsupportedMediaType),
    }
}

/// The 400 of a refused multipart body.
pub(super) fn multipart_error(e: super::multipart::MultipartError) -> ApiError {
    use super::multipart::MultipartError;
    ApiError::InvalidField {
        field: "body",
        code: match e {
            MultipartError::Boundary => "multipart_boundary",
            MultipartError::Malformed => "multipart_malformed",
            MultipartError::SeveralParts => "multipart_one_file_only",
            MultipartError::Incomplete => "multipart_incomplete",
        },
    }
}

/// An upload the caller may read: it holds `uploads:read` on the upload's provider.
/// Anything else is 404 (whether another provider's upload exists is not revealed) once
/// the caller is known to hold the permission somewhere (otherwise an audited 403).
async fn readable(
    caller: &Caller,
    state: &AppState,
    upload_id: &str,
) -> Result<(Access, UploadRow, ProviderCode), ApiError> {
    let now = time::OffsetDateTime::now_utc();
    let holds_somewhere = caller.principal.grants.iter().any(|g| {
        let target = match &g.provider {
            Some(p) => crate::authz::Target::Provider(p),
            None => crate::authz::Target::Global,
        };
        caller
            .principal
            .authorize(&state.policy, Permission::UploadsRead, target, now)
            .is_some()
    });
    if !holds_somewhere {
        caller
            .authorize(state, Permission::UploadsRead, crate::authz::Target::Global)
            .await?;
    }
    let row = state
        .store
        .upload(None, upload_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let code = ProviderCode::parse(&row.provider).map_err(|_| ApiError::NotFound)?;
    let access = caller
        .principal
        .authorize(
            &state.policy,
            Permission::UploadsRead,
            crate::authz::Target::Provider(&code),
            now,
        )
        .ok_or(ApiError::NotFound)?;
    Ok((access, row, code))
}

/// The receipt.
pub async fn show(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (_, row, _) = readable(&caller, &state, &id).await?;
    Ok(HttpResponse::Ok().json(crate::ingest::receipt_json(&row)))
}

/// Query of the rejects listing.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectsQuery {
    after: Option<i64>,
    limit: Option<i64>,
}

/// The rejects, in file order.
pub async fn rejects(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<RejectsQuery>,
) -> Result<HttpResponse, ApiError> {
    let (_, row, code) = readable(&caller, &state, &id).await?;
    let limit = query.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::InvalidField {
            field: "limit",
            code: "between_1_and_10000",
        });
    }
    let rows = state
        .store
        .rejects(&code, &row.upload_id, query.after.unwrap_or(0), limit)
        .await?;
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| r.ordinal))
        .flatten();
    let items: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "ordinal": r.ordinal,
                "record": r.record_no,
                "line": r.line_no,
                "byte": r.byte_offset,
                "segment": r.segment,
                "field": r.field,
                "code": r.code,
                "severity": r.severity,
                "message": r.message,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "rejects": items, "next": next })))
}

/// The 999 acknowledgement of an X12 upload (404 for other formats; 409 while it is
/// still being processed).
pub async fn ack(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (_, row, code) = readable(&caller, &state, &id).await?;
    if row.state == "received" || row.state == "processing" {
        return Err(ApiError::Conflict);
    }
    let ack = state
        .store
        .upload_ack(&code, &row.upload_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok()
        .content_type("application/edi-x12")
        .body(ack))
}

/// `GET /metrics`: Prometheus text.
pub async fn metrics(caller: Caller, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    caller
        .authorize(
            &state,
            Permission::MetricsRead,
            crate::authz::Target::Global,
        )
        .await?;
    let queue = state.store.queue_depth().await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render(&queue, state.store.journal_health())))
}
