//! The HTTP API: one route table, one error type ([`ApiError`]), one request guard.
//!
//! Handlers are thin: they authenticate, parse into domain types and call the store.
//! Extractor errors from actix (JSON, path, query) are mapped to [`ApiError`] here so
//! their default texts, which quote input, never reach a client.

pub mod auth;
pub mod error;
pub mod guard;
mod health;
mod providers;

use std::time::Duration;

use actix_web::{HttpResponse, web};

pub use error::ApiError;

use crate::store::Store;

/// Shared state of every handler.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The store.
    pub store: Store,
    /// How long `/readyz` waits for the database.
    pub readiness_timeout: Duration,
}

/// Registers every route and the extractor configuration.
pub fn configure(max_body_bytes: u64) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        let limit = usize::try_from(max_body_bytes).unwrap_or(usize::MAX);
        cfg.app_data(
            web::JsonConfig::default()
                .limit(limit)
                .error_handler(|e, _| ApiError::from(e).into()),
        )
        .app_data(web::PathConfig::default().error_handler(|_, _| ApiError::BadParameter.into()))
        .app_data(web::QueryConfig::default().error_handler(|_, _| ApiError::BadParameter.into()))
        .service(
            web::resource("/healthz")
                .route(web::get().to(health::healthz))
                .default_service(not_allowed("GET")),
        )
        .service(
            web::resource("/readyz")
                .route(web::get().to(health::readyz))
                .default_service(not_allowed("GET")),
        )
        .service(
            web::resource("/v1/admin/providers")
                .route(web::get().to(providers::list))
                .route(web::post().to(providers::create))
                .default_service(not_allowed("GET, POST")),
        )
        .service(
            web::resource("/v1/admin/providers/{code}")
                .route(web::get().to(providers::show))
                .default_service(not_allowed("GET")),
        )
        .default_service(web::to(|| async {
            Err::<HttpResponse, _>(ApiError::NotFound)
        }));
    }
}

/// The answer for a known path with a method it does not take.
fn not_allowed(allow: &'static str) -> actix_web::Route {
    web::to(move || async move { Err::<HttpResponse, _>(ApiError::MethodNotAllowed { allow }) })
}
