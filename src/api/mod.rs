//! The HTTP API: one route table ([`ROUTES`]), one error type ([`ApiError`]), one request
//! guard.
//!
//! Handlers are thin: they authenticate ([`auth::Caller`]), authorize (which yields the
//! capability the store function needs), parse into domain types and call the store.
//! Every route is registered from [`ROUTES`], which also states the permission each one
//! needs: the permission-matrix test walks the same table, so a route cannot exist
//! without being covered. Extractor errors from actix (JSON, path, query) are mapped to
//! [`ApiError`] here so their default texts, which quote input, never reach a client.

mod audit;
pub mod auth;
mod break_glass;
mod claims;
mod data_keys;
mod disclosures;
pub mod error;
mod exports;
pub mod guard;
mod health;
mod mappings;
mod multipart;
pub mod openapi;
mod principals;
mod providers;
mod uploads;

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::Method;
use actix_web::{HttpResponse, web};

pub use error::ApiError;

use crate::authz::{FailureLimiter, Permission, Policy};
use crate::store::Store;

/// Shared state of every handler.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The store.
    pub store: Store,
    /// The role → permission policy.
    pub policy: Arc<Policy>,
    /// Signs export manifests; its public key verifies checkpoints.
    pub signing_key: Arc<crate::crypto::SigningKey>,
    /// Provider data keys.
    pub keyring: Arc<crate::keyring::Keyring>,
    /// Failed-authentication counts.
    pub failures: FailureLimiter,
    /// Permission denials per principal and address, for the burst alert
    /// ([`auth::DENIAL_BURST`] in [`auth::DENIAL_BURST_WINDOW`]).
    pub denials: FailureLimiter,
    /// When each credential's success was last audited.
    pub successes: crate::authz::SuccessLog,
    /// How long `/readyz` waits for the database.
    pub readiness_timeout: Duration,
    /// Lifetime of a person's key unless one is asked for.
    pub person_key_ttl: Duration,
    /// Longest break-glass grant.
    pub break_glass_max: Duration,
    /// The encrypted raw store (uploads are written there as they arrive).
    pub raw: Arc<crate::raw_store::RawStore>,
    /// Ingest counters.
    pub metrics: Arc<crate::ingest::Metrics>,
    /// Wakes an idle worker when an upload arrives.
    pub ingest_wake: Arc<tokio::sync::Notify>,
}

impl AppState {
    /// Where received files are recorded.
    pub fn intake(&self) -> crate::ingest::Intake {
        crate::ingest::Intake {
            store: self.store.clone(),
            raw: self.raw.clone(),
            metrics: self.metrics.clone(),
            wake: self.ingest_wake.clone(),
        }
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (health checks).
    Public,
    /// Any authenticated principal.
    Authenticated,
    /// Holders of the permission, globally.
    Global(Permission),
    /// Holders of the permission for the provider named by the `{code}` path segment.
    Tenant(Permission),
    /// Holders of the permission for a provider: the credential's own (uploads), or the
    /// resource's (receipts; another provider's is 404).
    Credential(Permission),
}

/// One route: method, path pattern, who may call it, and its handler.
pub struct Route {
    /// The method.
    pub method: Method,
    /// The path pattern (`{name}` segments are parameters).
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    handler: fn() -> actix_web::Route,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} ({:?})", self.method, self.path, self.access)
    }
}

macro_rules! route {
    ($method:ident $path:literal, $access:expr, $handler:path) => {
        Route {
            method: Method::$method,
            path: $path,
            access: $access,
            handler: || web::method(Method::$method).to($handler),
        }
    };
}

use Access::{Authenticated, Credential, Global, Public, Tenant};
use Permission::{
    AuditRead, ClaimsReadDeidentified, ClaimsReadPhi, EmergencyAccessRequest, KeysManage,
    MappingsRead, MappingsWrite, MetricsRead, PrincipalsRead, PrincipalsWrite, ProvidersRead,
    ProvidersWrite, UploadsRead, UploadsWrite,
};

/// Every route of the API.
pub static ROUTES: &[Route] = &[
    route!(GET "/healthz", Public, health::healthz),
    route!(GET "/readyz", Public, health::readyz),
    route!(GET "/openapi.json", Public, openapi::serve),
    route!(GET "/v1/whoami", Authenticated, principals::whoami),
    route!(GET "/v1/admin/providers", Global(ProvidersRead), providers::list),
    route!(POST "/v1/admin/providers", Global(ProvidersWrite), providers::create),
    route!(GET "/v1/admin/providers/{code}", Global(ProvidersRead), providers::show),
    route!(POST "/v1/admin/providers/{code}/disable", Global(ProvidersWrite), providers::disable),
    route!(PUT "/v1/admin/providers/{code}/interchange-control", Global(ProvidersWrite), providers::set_interchange_control),
    route!(GET "/v1/admin/providers/{code}/mappings", Global(MappingsRead), mappings::list),
    route!(POST "/v1/admin/providers/{code}/mappings", Global(MappingsWrite), mappings::draft),
    route!(POST "/v1/admin/providers/{code}/mappings/validate", Global(MappingsRead), mappings::validate),
    route!(GET "/v1/admin/providers/{code}/mappings/{version:\\d{1,9}}", Global(MappingsRead), mappings::show),
    route!(PUT "/v1/admin/providers/{code}/mappings/{version:\\d{1,9}}", Global(MappingsWrite), mappings::edit),
    route!(GET "/v1/admin/providers/{code}/mappings/{version:\\d{1,9}}/diff/{other:\\d{1,9}}", Global(MappingsRead), mappings::diff),
    route!(POST "/v1/admin/providers/{code}/mappings/{version:\\d{1,9}}/approve", Global(MappingsWrite), mappings::approve),
    route!(POST "/v1/admin/providers/{code}/mappings/{version:\\d{1,9}}/activate", Global(MappingsWrite), mappings::activate),
    route!(POST "/v1/admin/providers/{code}/mappings/{version:\\d{1,9}}/preview", Global(MappingsRead), mappings::preview),
    route!(POST "/v1/admin/providers/{code}/mappings/{version:\\d{1,9}}/impact", Global(MappingsRead), mappings::impact),
    route!(GET "/v1/admin/providers/{code}/keys", Global(KeysManage), data_keys::list),
    route!(POST "/v1/admin/providers/{code}/keys/rotate", Global(KeysManage), data_keys::rotate),
    route!(POST "/v1/admin/providers/{code}/keys/destroy", Global(KeysManage), data_keys::destroy),
    route!(GET "/v1/admin/principals", Global(PrincipalsRead), principals::list),
    route!(POST "/v1/admin/principals", Global(PrincipalsWrite), principals::create),
    route!(GET "/v1/admin/principals/{name}", Global(PrincipalsRead), principals::show),
    route!(POST "/v1/admin/principals/{name}/disable", Global(PrincipalsWrite), principals::disable),
    route!(POST "/v1/admin/principals/{name}/grants", Global(PrincipalsWrite), principals::grant),
    route!(DELETE "/v1/admin/principals/{name}/grants/{role}", Global(PrincipalsWrite), principals::revoke),
    route!(POST "/v1/admin/principals/{name}/keys", Global(PrincipalsWrite), principals::create_key),
    route!(POST "/v1/admin/principals/{name}/certificates", Global(PrincipalsWrite), principals::add_certificate),
    route!(POST "/v1/admin/principals/{name}/ssh-keys", Global(PrincipalsWrite), principals::add_ssh_key),
    route!(DELETE "/v1/admin/keys/{key_id}", Global(PrincipalsWrite), principals::revoke_key),
    route!(POST "/v1/providers/{code}/break-glass", Tenant(EmergencyAccessRequest), break_glass::request),
    route!(GET "/v1/providers/{code}/claims", Tenant(ClaimsReadPhi), claims::list),
    route!(POST "/v1/providers/{code}/claims/search", Tenant(ClaimsReadPhi), claims::search),
    route!(GET "/v1/providers/{code}/claims/{id:\\d{1,18}}", Tenant(ClaimsReadPhi), claims::show),
    route!(GET "/v1/providers/{code}/exports/medical_claim", Tenant(ClaimsReadDeidentified), exports::deidentified),
    route!(GET "/v1/providers/{code}/exports/medical_claim/identified", Tenant(ClaimsReadPhi), exports::identified),
    route!(POST "/v1/uploads", Credential(UploadsWrite), uploads::create),
    route!(GET "/v1/uploads/{id}", Credential(UploadsRead), uploads::show),
    route!(GET "/v1/uploads/{id}/rejects", Credential(UploadsRead), uploads::rejects),
    route!(GET "/v1/uploads/{id}/999", Credential(UploadsRead), uploads::ack),
    route!(GET "/metrics", Global(MetricsRead), uploads::metrics),
    route!(GET "/v1/audit/events", Global(AuditRead), audit::search),
    route!(GET "/v1/audit/verify", Global(AuditRead), audit::verify),
    route!(GET "/v1/audit/export", Global(AuditRead), audit::export),
    route!(GET "/v1/audit/export/manifest", Global(AuditRead), audit::manifest),
    route!(POST "/v1/audit/disclosures", Global(AuditRead), disclosures::account),
];

/// A request body read whole (the request guard has already bounded its size and rate),
/// with read failures mapped to [`ApiError`] like every other error.
#[derive(Debug)]
pub struct Body(pub bytes::Bytes);

impl actix_web::FromRequest for Body {
    type Error = ApiError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, ApiError>>>>;

    fn from_request(
        _: &actix_web::HttpRequest,
        payload: &mut actix_web::dev::Payload,
    ) -> Self::Future {
        use futures_util::StreamExt as _;
        let mut payload = payload.take();
        Box::pin(async move {
            let mut body = bytes::BytesMut::new();
            while let Some(chunk) = payload.next().await {
                body.extend_from_slice(&chunk?);
            }
            Ok(Self(body.freeze()))
        })
    }
}

/// Parses a JSON request body. Handlers take the body as bytes and parse it only after
/// authorizing, so that a caller without permission learns nothing from validation.
pub fn parse_json<T: serde::de::DeserializeOwned>(
    req: &actix_web::HttpRequest,
    body: &[u8],
) -> Result<T, ApiError> {
    let is_json = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(ApiError::UnsupportedMediaType);
    }
    serde_json::from_slice(body).map_err(|_| ApiError::MalformedJson)
}

/// Registers every route of [`ROUTES`] and the extractor configuration. A known path
/// with another method answers 405 with the methods it takes.
pub fn configure(max_body_bytes: u64) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        let limit = usize::try_from(max_body_bytes).unwrap_or(usize::MAX);
        cfg.app_data(
            web::JsonConfig::default()
                .limit(limit)
                .error_handler(|e, _| ApiError::from(e).into()),
        )
        .app_data(web::PathConfig::default().error_handler(|_, _| ApiError::BadParameter.into()))
        .app_data(web::QueryConfig::default().error_handler(|_, _| ApiError::BadParameter.into()));
        let mut paths: Vec<&'static str> = Vec::new();
        for route in ROUTES {
            if !paths.contains(&route.path) {
                paths.push(route.path);
            }
        }
        for path in paths {
            let on_path = ROUTES.iter().filter(|r| r.path == path);
            let allow = on_path
                .clone()
                .map(|r| r.method.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            let mut resource = web::resource(path);
            for route in on_path {
                resource = resource.route((route.handler)());
            }
            cfg.service(resource.default_service(web::to(move || {
                let allow = allow.clone();
                async move { Err::<HttpResponse, _>(ApiError::MethodNotAllowed { allow }) }
            })));
        }
        cfg.default_service(web::to(|| async {
            Err::<HttpResponse, _>(ApiError::NotFound)
        }));
    }
}
