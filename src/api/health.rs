//! `GET /healthz` (the process is alive) and `GET /readyz` (it can serve: the database
//! answers and its schema is the one this build expects).

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::AppState;
use super::error::ApiError;
use crate::store::Readiness;

/// Always 200 while the process serves requests.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "alive" }))
}

/// 200 when ready; 503 `not_ready` with a reason otherwise.
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    match state.store.readiness(state.readiness_timeout).await {
        Readiness::Ready => Ok(HttpResponse::Ok().json(json!({ "status": "ready" }))),
        Readiness::Unreachable => Err(ApiError::NotReady {
            reason: "database_unreachable",
        }),
        Readiness::SchemaMismatch => Err(ApiError::NotReady {
            reason: "schema_mismatch",
        }),
    }
}
