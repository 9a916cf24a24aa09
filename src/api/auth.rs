//! Bearer-token authentication as an extractor: a handler that takes [`Authenticated`]
//! runs only for a caller with a live API key. It is the first extractor of every
//! protected handler, so an unauthenticated request is refused before its body is read.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};

use super::AppState;
use super::error::ApiError;
use crate::authz::{ParsedToken, Principal, Role};

/// The authenticated caller of this request.
#[derive(Debug)]
pub struct Authenticated(pub Principal);

impl Authenticated {
    /// Refuses (403) unless the caller holds `role`.
    pub fn require(&self, role: Role) -> Result<&Principal, ApiError> {
        if self.0.has_role(role) {
            Ok(&self.0)
        } else {
            Err(ApiError::Forbidden)
        }
    }
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .and_then(|t| ParsedToken::parse(t.trim()));
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let (Some(token), Some(state)) = (token, state) else {
                return Err(ApiError::Unauthenticated);
            };
            let record = state.store.api_key(&token.id).await?;
            match record {
                Some(record) if record.authenticates(&token, time::OffsetDateTime::now_utc()) => {
                    Ok(Self(record.principal))
                }
                _ => Err(ApiError::Unauthenticated),
            }
        })
    }
}
