//! [`ApiError`]: the one error type of the HTTP API and its one mapping to responses.
//!
//! Every error body is `{"error_code", "message", "request_id"}` with a stable code and a
//! fixed message: never the submitted value (which can be PHI), never an internal cause.
//! 5xx causes go to the log (by request id), not to the client. actix's own extractor
//! errors are converted here too, so their default texts (which echo input) never leave.

use std::error::Error as StdError;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// The `Retry-After` of a 503 for an unavailable database or audit trail, in seconds.
const RETRY_UNAVAILABLE_SECS: u64 = 5;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON, or not the JSON this endpoint takes.
    #[error("the request body is not valid JSON for this endpoint")]
    MalformedJson,
    /// A path or query parameter has the wrong shape.
    #[error("a path or query parameter is not valid")]
    BadParameter,
    /// The request body is not `application/json`.
    #[error("the request body must be application/json")]
    UnsupportedMediaType,
    /// The body carries a `Content-Encoding`: bodies are taken as sent, never inflated.
    #[error("request bodies must not be content-encoded (compressed)")]
    EncodingNotAllowed,
    /// The body exceeds the configured limit.
    #[error("the request body is larger than allowed")]
    PayloadTooLarge,
    /// The body arrived slower than the minimum rate.
    #[error("the request body arrived too slowly")]
    BodyTimeout,
    /// The body ended or failed before it was complete.
    #[error("the request body was incomplete")]
    IncompleteBody,
    /// A field failed validation; `field` names it, `code` says how.
    #[error("field `{field}` is not valid ({code})")]
    InvalidField {
        /// The field's name.
        field: &'static str,
        /// A stable reason code.
        code: &'static str,
    },
    /// A mapping definition has problems: each with its path in the mapping and a code
    /// (the mapping is the caller's own text; problems quote none of a claim file).
    #[error("the mapping has {} problem(s)", .0.len())]
    MappingInvalid(Vec<crate::mapping::MappingProblem>),
    /// No valid credential was presented.
    #[error("authentication required")]
    Unauthenticated,
    /// The credential is valid but lacks permission.
    #[error("not permitted")]
    Forbidden,
    /// A principal tried to grant a role to itself.
    #[error("no one may grant a role to themselves")]
    SelfGrant,
    /// Too many failed authentications from this address or for this key.
    #[error("too many failed attempts; try again later")]
    TooManyAttempts {
        /// Seconds until the lock-out ends, for `Retry-After`.
        retry_after_secs: u64,
    },
    /// No such resource.
    #[error("no such resource")]
    NotFound,
    /// The resource exists but not with this method.
    #[error("method not allowed")]
    MethodNotAllowed {
        /// Methods the resource accepts, for the `Allow` header.
        allow: String,
    },
    /// The resource already exists.
    #[error("the resource already exists")]
    Conflict,
    /// The caller's provider is disabled and sends no more files.
    #[error("the provider is disabled")]
    ProviderDisabled,
    /// A new file repeats the X12 interchange (sender, receiver and ISA13) of upload
    /// `earlier`, and the provider's control numbers are unique: nothing was stored.
    #[error(
        "this interchange (sender, receiver and control number ISA13) was received before; \
         a new or corrected file needs a new interchange control number"
    )]
    InterchangeReplay {
        /// The upload that carried the interchange first (the caller's own provider's).
        earlier: String,
    },
    /// A mapping version cannot make this move (its code says why: not a draft, changed
    /// since it was read, approved by its own author, not approved).
    #[error("the mapping version does not allow this ({0})")]
    MappingState(&'static str),
    /// A change to a draft or its approval must say which content it saw (`If-Match`).
    #[error("If-Match with the version's ETag is required")]
    PreconditionRequired,
    /// This client address holds too many connections.
    #[error("too many connections from this address")]
    TooManyConnections,
    /// A dependency (the database) is not available.
    #[error("the service is not ready")]
    NotReady {
        /// A stable reason code.
        reason: &'static str,
    },
    /// The data key needed was destroyed (crypto-shredding).
    #[error("the data was encrypted under a destroyed key and cannot be read")]
    KeyDestroyed,
    /// A stored encrypted value failed its integrity check (tampered, or moved from
    /// another row or column); the value is not returned.
    #[error("a stored value failed its integrity check and was not returned")]
    IntegrityFailure,
    /// The audit trail could not record the action, so it was refused (fail closed).
    #[error("the audit trail is unavailable; the action was not performed")]
    AuditUnavailable,
    /// The storage for received files (or the database's) is full; nothing was stored,
    /// the request may be retried once there is room.
    #[error("the storage is full; nothing was stored, retry later")]
    StorageFull,
    /// The database is out of reach for now; nothing was done, the request may be retried.
    #[error("the database is unavailable; the action was not performed, retry later")]
    DatabaseUnavailable,
    /// Anything unexpected; the cause is logged, never returned.
    #[error("internal error")]
    Internal(#[source] Box<dyn StdError + Send + Sync>),
}

/// The JSON error body.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ErrorBody<'a> {
    /// Stable machine-readable code.
    pub error_code: &'static str,
    /// Fixed human-readable message.
    pub message: String,
    /// The request's id, as in the `x-request-id` header.
    pub request_id: &'a str,
    /// For `mapping_invalid`: each problem's path, code and message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problems: Option<Vec<serde_json::Value>>,
    /// For `interchange_replay`: the earlier upload that carried the interchange.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload_id: Option<String>,
}

impl ApiError {
    /// Wraps any error as an internal error (logged, not shown).
    pub fn internal(e: impl StdError + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(e))
    }

    /// A blocking thread that reads a request's file stopped (panicked or was cancelled).
    /// The join error is dropped, not wrapped: its text carries the panic message, which
    /// must not reach the log from a thread that held claim data.
    pub fn thread_stopped(_: tokio::task::JoinError) -> Self {
        Self::Internal("a file-reading thread stopped".into())
    }

    /// A store error on a route whose path names the provider: an unknown one is 404.
    pub fn for_path_provider(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::UnknownProvider => Self::NotFound,
            other => other.into(),
        }
    }

    /// The stable code in the body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MalformedJson => "malformed_json",
            Self::BadParameter => "bad_parameter",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::EncodingNotAllowed => "encoding_not_allowed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::BodyTimeout => "body_timeout",
            Self::IncompleteBody => "incomplete_body",
            Self::InvalidField { .. } => "invalid_field",
            Self::MappingInvalid(_) => "mapping_invalid",
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden => "forbidden",
            Self::SelfGrant => "self_grant",
            Self::TooManyAttempts { .. } => "too_many_attempts",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::Conflict => "conflict",
            Self::MappingState(code) => code,
            Self::ProviderDisabled => "provider_disabled",
            Self::InterchangeReplay { .. } => "interchange_replay",
            Self::PreconditionRequired => "precondition_required",
            Self::TooManyConnections => "too_many_connections",
            Self::NotReady { .. } => "not_ready",
            Self::AuditUnavailable => "audit_unavailable",
            Self::DatabaseUnavailable => "database_unavailable",
            Self::StorageFull => "storage_full",
            Self::KeyDestroyed => "key_destroyed",
            Self::IntegrityFailure => "integrity_check_failed",
            Self::Internal(_) => "internal",
        }
    }

    /// The error for a bare status produced outside our handlers (actix's router, say).
    pub fn from_status(status: StatusCode) -> Self {
        match status {
            StatusCode::NOT_FOUND => Self::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => Self::MethodNotAllowed {
                allow: String::new(),
            },
            StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::UnsupportedMediaType,
            StatusCode::REQUEST_TIMEOUT => Self::BodyTimeout,
            StatusCode::UNAUTHORIZED => Self::Unauthenticated,
            StatusCode::FORBIDDEN => Self::Forbidden,
            StatusCode::CONFLICT => Self::Conflict,
            StatusCode::SERVICE_UNAVAILABLE => Self::NotReady {
                reason: "unavailable",
            },
            s if s.is_client_error() => Self::BadParameter,
            _ => Self::Internal("unexpected error status".into()),
        }
    }

    /// Renders the full response for the request `request_id`.
    pub fn to_response(&self, request_id: &str) -> HttpResponse {
        let message = match self {
            Self::NotReady { reason } => format!("the service is not ready ({reason})"),
            other => other.to_string(),
        };
        let mut response = HttpResponse::build(self.status_code());
        match self {
            Self::MethodNotAllowed { allow } if !allow.is_empty() => {
                if let Ok(value) = HeaderValue::from_str(allow) {
                    response.insert_header((header::ALLOW, value));
                }
            }
            Self::TooManyAttempts { retry_after_secs } => {
                response.insert_header((header::RETRY_AFTER, *retry_after_secs));
            }
            Self::DatabaseUnavailable | Self::AuditUnavailable => {
                response.insert_header((header::RETRY_AFTER, RETRY_UNAVAILABLE_SECS));
            }
            // The unread rest of the body would be taken for the next request: close.
            Self::StorageFull => {
                response.insert_header((header::RETRY_AFTER, RETRY_UNAVAILABLE_SECS));
                response.insert_header((header::CONNECTION, HeaderValue::from_static("close")));
            }
            Self::Unauthenticated => {
                response
                    .insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
            }
            // The unread rest of the body would be taken for the next request: close.
            Self::PayloadTooLarge
            | Self::BodyTimeout
            | Self::IncompleteBody
            | Self::TooManyConnections => {
                response.insert_header((header::CONNECTION, HeaderValue::from_static("close")));
            }
            _ => {}
        }
        let problems = match self {
            Self::MappingInvalid(problems) => Some(
                problems
                    .iter()
                    .map(|p| serde_json::json!({ "path": p.path, "code": p.code, "message": p.message }))
                    .collect(),
            ),
            _ => None,
        };
        let upload_id = match self {
            Self::InterchangeReplay { earlier } => Some(earlier.clone()),
            _ => None,
        };
        response.json(ErrorBody {
            error_code: self.code(),
            message,
            request_id,
            problems,
            upload_id,
        })
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::MalformedJson
            | Self::BadParameter
            | Self::InvalidField { .. }
            | Self::MappingInvalid(_)
            | Self::IncompleteBody => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType | Self::EncodingNotAllowed => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::Forbidden | Self::SelfGrant | Self::ProviderDisabled => StatusCode::FORBIDDEN,
            Self::KeyDestroyed => StatusCode::GONE,
            Self::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict | Self::MappingState(_) | Self::InterchangeReplay { .. } => {
                StatusCode::CONFLICT
            }
            Self::PreconditionRequired => StatusCode::PRECONDITION_REQUIRED,
            Self::TooManyConnections
            | Self::NotReady { .. }
            | Self::AuditUnavailable
            | Self::DatabaseUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::StorageFull => StatusCode::INSUFFICIENT_STORAGE,
            Self::Internal(_) | Self::IntegrityFailure => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The request id is filled in by the request guard, which renders every error body.
    fn error_response(&self) -> HttpResponse {
        self.to_response("")
    }
}

impl From<actix_web::error::PayloadError> for ApiError {
    fn from(e: actix_web::error::PayloadError) -> Self {
        use actix_web::error::PayloadError;
        match e {
            PayloadError::Overflow => Self::PayloadTooLarge,
            PayloadError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => Self::BodyTimeout,
            _ => Self::IncompleteBody,
        }
    }
}

impl From<actix_web::error::JsonPayloadError> for ApiError {
    fn from(e: actix_web::error::JsonPayloadError) -> Self {
        use actix_web::error::JsonPayloadError;
        match e {
            JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => {
                Self::PayloadTooLarge
            }
            JsonPayloadError::ContentType => Self::UnsupportedMediaType,
            JsonPayloadError::Payload(p) => p.into(),
            _ => Self::MalformedJson,
        }
    }
}

impl From<crate::keyring::KeyringError> for ApiError {
    fn from(e: crate::keyring::KeyringError) -> Self {
        use crate::keyring::KeyringError;
        match e {
            KeyringError::KeyDestroyed(_) => Self::KeyDestroyed,
            KeyringError::Crypto(e) => {
                tracing::error!(error = %e, "a stored value failed to open");
                Self::IntegrityFailure
            }
            KeyringError::Store(store) => store.into(),
            other => Self::internal(other),
        }
    }
}

impl From<crate::ingest::IntakeError> for ApiError {
    fn from(e: crate::ingest::IntakeError) -> Self {
        match e {
            crate::ingest::IntakeError::Store(store) => store.into(),
            crate::ingest::IntakeError::RawStore(raw) => raw.into(),
            crate::ingest::IntakeError::InterchangeReplay { earlier, .. } => {
                Self::InterchangeReplay { earlier }
            }
        }
    }
}

impl From<crate::raw_store::RawStoreError> for ApiError {
    fn from(e: crate::raw_store::RawStoreError) -> Self {
        use crate::raw_store::RawStoreError;
        match e {
            e if e.is_storage_full() => {
                tracing::warn!(error = %e, "storage full: upload refused with 507");
                Self::StorageFull
            }
            RawStoreError::Store(store) => store.into(),
            other => Self::internal(other),
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match e {
            StoreError::Conflict => Self::Conflict,
            StoreError::NotFound => Self::NotFound,
            StoreError::UnknownProvider => Self::InvalidField {
                field: "provider",
                code: "unknown_provider",
            },
            StoreError::NotPermitted => Self::Forbidden,
            StoreError::MappingRefused(code) => Self::MappingState(code),
            StoreError::ProviderDisabled => Self::ProviderDisabled,
            StoreError::InterchangeReplay(earlier) => Self::InterchangeReplay { earlier },
            StoreError::AuditUnavailable => Self::AuditUnavailable,
            StoreError::StorageFull => Self::StorageFull,
            StoreError::Unavailable(reason) => {
                tracing::warn!(%reason, "database unavailable: request refused with 503");
                Self::DatabaseUnavailable
            }
            StoreError::PurposeRequired => Self::InvalidField {
                field: "purpose",
                code: "purpose_required",
            },
            other => Self::internal(other),
        }
    }
}
