//! The wide claim-line export (Tuva `medical_claim` layout), streamed as Parquet or CSV:
//!
//! - `GET /v1/providers/{code}/exports/medical_claim`: de-identified (Safe Harbor), for
//!   holders of `claims:read_deidentified` (analysts); pseudonyms of the export
//!   configuration named by `configuration`; audited as `claims.exported`.
//! - `GET /v1/providers/{code}/exports/medical_claim/identified`: identified, for holders
//!   of `claims:read_phi`, with a stated `purpose`; every claim it selects is recorded as
//!   disclosed before the first byte is sent.
//!
//! Final-action claims by default (`history=true`: every version); `upload`, `from` and
//! `to` narrow it. The file name is made by the server. A failure after the response
//! started ends the response without its last chunk, so a client never takes a cut-off
//! file for a whole one.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use time::Date;
use tokio::sync::mpsc;

use super::AppState;
use super::auth::Caller;
use super::claims::stated_purpose;
use super::error::ApiError;
use crate::audit::{EventKind, Purpose};
use crate::authz::{ExportAccess, Permission, Target};
use crate::export::{
    ChannelWriter, DEFAULT_CONFIGURATION, Export, ExportRequest, Format, valid_configuration,
};
use crate::providers::ProviderCode;
use crate::store::ExportSelection;

/// Query parameters of an export.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ExportQuery {
    /// `parquet` (default) or `csv`.
    format: Option<String>,
    /// Every version of each claim (default: final-action claims only).
    history: Option<bool>,
    /// Only claims of this upload.
    upload: Option<String>,
    /// Lines served on or after this date (`YYYY-MM-DD`).
    from: Option<String>,
    /// Lines served on or before this date (`YYYY-MM-DD`).
    to: Option<String>,
    /// De-identified: the export configuration whose pseudonyms are used (`default`).
    configuration: Option<String>,
    /// Identified: why (treatment, payment, operations, research, legal, other).
    #[schemars(with = "Option<Purpose>")]
    purpose: Option<String>,
}

fn date(value: Option<&str>, field: &'static str) -> Result<Option<Date>, ApiError> {
    value
        .map(|v| {
            Date::parse(v, time::macros::format_description!("[year]-[month]-[day]")).map_err(
                |_| ApiError::InvalidField {
                    field,
                    code: "expected_yyyy_mm_dd",
                },
            )
        })
        .transpose()
}

fn request(
    query: ExportQuery,
    identified: bool,
) -> Result<(ExportRequest, Option<Purpose>), ApiError> {
    let format = match query.format.as_deref() {
        None => Format::Parquet,
        Some(f) => Format::parse(f).ok_or(ApiError::InvalidField {
            field: "format",
            code: "parquet_or_csv",
        })?,
    };
    if query.upload.as_deref().is_some_and(|u| {
        u.is_empty()
            || u.len() > 128
            || !u
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }) {
        return Err(ApiError::InvalidField {
            field: "upload",
            code: "unknown_upload",
        });
    }
    let from = date(query.from.as_deref(), "from")?;
    let to = date(query.to.as_deref(), "to")?;
    if from.zip(to).is_some_and(|(f, t)| f > t) {
        return Err(ApiError::InvalidField {
            field: "from",
            code: "after_to",
        });
    }
    let configuration = query
        .configuration
        .unwrap_or_else(|| DEFAULT_CONFIGURATION.to_owned());
    if !valid_configuration(&configuration) {
        return Err(ApiError::InvalidField {
            field: "configuration",
            code: "expected_lowercase_name",
        });
    }
    let purpose = if identified {
        Some(stated_purpose(query.purpose.as_deref())?)
    } else {
        None
    };
    Ok((
        ExportRequest {
            format,
            identified,
            configuration,
            selection: ExportSelection {
                history: query.history.unwrap_or(false),
                upload: query.upload,
                from,
                to,
            },
        },
        purpose,
    ))
}

/// The de-identified export.
pub async fn deidentified(
    caller: Caller,
    state: web::Data<AppState>,
    code: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    export(caller, state, &code, req, false).await
}

/// The identified export.
pub async fn identified(
    caller: Caller,
    state: web::Data<AppState>,
    code: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    export(caller, state, &code, req, true).await
}

async fn export(
    caller: Caller,
    state: web::Data<AppState>,
    code: &str,
    req: HttpRequest,
    identified: bool,
) -> Result<HttpResponse, ApiError> {
    let code = ProviderCode::parse(code).map_err(|_| ApiError::NotFound)?;
    let permission = if identified {
        Permission::ClaimsReadPhi
    } else {
        Permission::ClaimsReadDeidentified
    };
    let access = caller
        .authorize(&state, permission, Target::Provider(&code))
        .await?;
    let capability = ExportAccess::from_access(&access).ok_or(ApiError::Forbidden)?;
    let query = web::Query::<ExportQuery>::from_query(req.query_string())
        .map_err(|_| ApiError::BadParameter)?
        .into_inner();
    let (request, purpose) = request(query, identified)?;
    let format = request.format;
    let mut event = if identified {
        caller.event_for(&access, EventKind::PhiRead)
    } else {
        caller.event_for(&access, EventKind::ClaimsExported)
    };
    event.provider = Some(code.as_str().to_owned());
    event.purpose = purpose;
    event.phi = identified;
    event.resource = Some(if identified {
        "export:medical_claim:identified".to_owned()
    } else {
        format!("export:medical_claim:{}", request.configuration)
    });
    let export = Export::start(
        state.store.clone(),
        state.keyring.clone(),
        capability,
        request,
        &event,
    )
    .await
    .map_err(export_error)?;
    let (tx, rx) = mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(8);
    let failed = tx.clone();
    tokio::spawn(async move {
        let writer = ChannelWriter::new(tx);
        if let Err(e) = export.write_to(writer, Arc::new(AtomicU64::new(0))).await {
            tracing::warn!(error = %e, "export ended early");
            let _ = failed
                .send(Err(std::io::Error::other("the export ended early")))
                .await;
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let stamp = time::OffsetDateTime::now_utc().date();
    let name = format!(
        "medical_claim-{}-{}{stamp}.{}",
        code.as_str(),
        if identified { "identified-" } else { "" },
        format.extension()
    );
    Ok(HttpResponse::Ok()
        .content_type(format.content_type())
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .insert_header((
            actix_web::http::header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        ))
        .streaming(body))
}

fn export_error(e: crate::export::ExportError) -> ApiError {
    use crate::export::ExportError;
    match e {
        ExportError::Store(e) => e.into(),
        ExportError::Keyring(e) => e.into(),
        other => ApiError::Internal(Box::new(other)),
    }
}
