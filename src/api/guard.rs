//! The request guard: the one middleware every request passes through.
//!
//! In order: gives the request an id; refuses connections over the per-address cap;
//! refuses a declared body over the limit before reading it (413); wraps the body so that
//! an undeclared (chunked) body is counted against the same limit and a body slower than
//! the minimum rate is cut off (408); renders every error response through [`ApiError`]
//! with the request id; adds the security headers; logs one line per request with the
//! route template (never the URI, whose query could carry identifiers).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_web::body::BoxBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, web};

/// A boxed request body stream, as actix's `Payload` takes it.
type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>>;
use bytes::Bytes;
use futures_util::Stream;
use tracing::Instrument;

use super::error::ApiError;
use crate::app::conn_limit::OverConnectionLimit;
use crate::config::HttpSettings;

/// The headers added to every response.
const SECURITY_HEADERS: [(HeaderName, &str); 5] = [
    (header::STRICT_TRANSPORT_SECURITY, "max-age=63072000"),
    (header::CACHE_CONTROL, "no-store"),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; frame-ancestors 'none'",
    ),
    (header::REFERRER_POLICY, "no-referrer"),
];

/// The request's id: 128 random bits in hex, returned as `x-request-id` and in error bodies.
#[derive(Debug, Clone)]
pub struct RequestId(String);

impl RequestId {
    fn generate() -> Self {
        let mut bytes = [0u8; 16];
        // On the (theoretical) failure of the generator the id is all zeros: it is a
        // correlation id, not a secret, and the request must not fail for it.
        let _ = aws_lc_rs::rand::fill(&mut bytes);
        Self(hex::encode(bytes))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Body limits, taken from [`HttpSettings`].
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Largest body, in bytes.
    pub max_bytes: u64,
    /// Largest upload body (`POST /v1/uploads`), in bytes.
    pub max_upload_bytes: u64,
    /// Largest mapping preview sample (`POST …/mappings/{n}/preview`), in bytes.
    pub max_sample_bytes: u64,
    /// Rate window.
    pub window: Duration,
    /// Bytes that must arrive in each window (0 disables the rate check).
    pub min_bytes_per_window: u64,
}

impl BodyLimits {
    /// The limits of the HTTP settings, with the upload route's own maximum.
    pub fn new(http: &HttpSettings, ingest: &crate::config::IngestSettings) -> Self {
        Self {
            max_upload_bytes: ingest.max_upload_bytes,
            ..Self::from(http)
        }
    }

    /// This request's limits: an upload, and a preview's sample file, may be larger than
    /// other bodies.
    fn for_request(self, req: &ServiceRequest) -> Self {
        let post = req.method() == actix_web::http::Method::POST;
        let path = req.path();
        let max_bytes = if post && path == "/v1/uploads" {
            self.max_upload_bytes
        } else if post && path.starts_with("/v1/admin/providers/") && path.ends_with("/preview") {
            self.max_sample_bytes
        } else {
            self.max_bytes
        };
        Self { max_bytes, ..self }
    }
}

impl From<&HttpSettings> for BodyLimits {
    fn from(http: &HttpSettings) -> Self {
        Self {
            max_upload_bytes: http.max_body_bytes,
            max_sample_bytes: http.max_sample_bytes,
            max_bytes: http.max_body_bytes,
            window: http.body_rate_window,
            min_bytes_per_window: http
                .body_min_bytes_per_sec
                .saturating_mul(http.body_rate_window.as_secs()),
        }
    }
}

/// Whether the request says its body is compressed (any `Content-Encoding` but
/// `identity`). Such bodies are refused, not inflated: a small compressed body can
/// decode to gigabytes (a decompression bomb), and a file must be stored as sent.
fn content_encoded(req: &ServiceRequest) -> bool {
    req.headers()
        .get_all(actix_web::http::header::CONTENT_ENCODING)
        .any(|v| {
            !v.to_str()
                .is_ok_and(|v| v.trim().eq_ignore_ascii_case("identity"))
        })
}

/// The middleware function (install with `actix_web::middleware::from_fn`).
pub async fn request_guard(
    mut req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let started = Instant::now();
    let request_id = RequestId::generate();
    req.extensions_mut().insert(request_id.clone());
    let span =
        tracing::info_span!("request", request_id = request_id.as_str(), method = %req.method());
    let limits = req
        .app_data::<web::Data<BodyLimits>>()
        .map(|d| d.get_ref().for_request(&req));

    let refusal = if req.conn_data::<OverConnectionLimit>().is_some() {
        Some(ApiError::TooManyConnections)
    } else if let Some(limits) = limits {
        if declared_length(&req).is_some_and(|len| len > limits.max_bytes) {
            Some(ApiError::PayloadTooLarge)
        } else if content_encoded(&req) {
            Some(ApiError::EncodingNotAllowed)
        } else {
            let body = GuardedBody::new(req.take_payload(), limits);
            req.set_payload(Payload::from(Box::pin(body) as BodyStream));
            None
        }
    } else {
        None
    };

    let mut response = match refusal {
        // Rendered here, with its own code: not mapped again from its status below.
        Some(error) => req.into_response(error.to_response(request_id.as_str())),
        // The router turns handler errors into responses; an `Err` here can only come
        // from a failing service layer, and the request is gone with it (cloning it
        // before routing is not allowed), so it is answered as an opaque internal error.
        None => match next.call(req).instrument(span.clone()).await {
            Ok(response) => render_error(response, &request_id, &span),
            Err(error) => {
                span.in_scope(|| tracing::error!(cause = %error, "service layer failed"));
                return Err(ApiError::Internal("service layer failed".into()).into());
            }
        },
    };
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if let Ok(value) = HeaderValue::from_str(request_id.as_str()) {
        headers.insert(HeaderName::from_static("x-request-id"), value);
    }
    let status = response.status();
    let route = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".into());
    let elapsed_ms = started.elapsed().as_millis() as u64;
    span.in_scope(|| {
        if status.is_server_error() {
            tracing::error!(%route, status = status.as_u16(), elapsed_ms, "request failed");
        } else {
            tracing::info!(%route, status = status.as_u16(), elapsed_ms, "request");
        }
    });
    Ok(response)
}

/// Replaces the body of any error response with the project's error body.
fn render_error(
    response: ServiceResponse<BoxBody>,
    request_id: &RequestId,
    span: &tracing::Span,
) -> ServiceResponse<BoxBody> {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let rendered = match response
        .response()
        .error()
        .and_then(|e| e.as_error::<ApiError>())
    {
        Some(api_error) => {
            if let ApiError::Internal(cause) = api_error {
                span.in_scope(|| tracing::error!(error_code = api_error.code(), cause = %cause, "internal error"));
            }
            api_error.to_response(request_id.as_str())
        }
        None => ApiError::from_status(status).to_response(request_id.as_str()),
    };
    response.into_response(rendered)
}

fn declared_length(req: &ServiceRequest) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// A request body that counts its bytes and enforces the minimum transfer rate.
struct GuardedBody<S> {
    inner: S,
    limits: BodyLimits,
    received: u64,
    received_at_window_start: u64,
    /// How long in this window the handler waited for the client (asked for more and
    /// had none). A window in which it waited less than half the time (the gateway
    /// itself was busy: a database call before the body is read, a disk that stalls)
    /// says little of the client's rate and is not held against it.
    waited: Duration,
    /// Since when the handler has been waiting for the client, if it is.
    waiting_since: Option<tokio::time::Instant>,
    window_ends: Pin<Box<tokio::time::Sleep>>,
    failed: bool,
}

impl<S> GuardedBody<S> {
    fn new(inner: S, limits: BodyLimits) -> Self {
        Self {
            inner,
            limits,
            received: 0,
            received_at_window_start: 0,
            waited: Duration::ZERO,
            waiting_since: None,
            window_ends: Box::pin(tokio::time::sleep(limits.window)),
            failed: false,
        }
    }

    /// Called when a window has ended: fails if the handler waited for the client for
    /// at least half of it and too little arrived.
    fn close_window(&mut self) -> Result<(), PayloadError> {
        let now = tokio::time::Instant::now();
        let waited = self.waited + self.waiting_since.map_or(Duration::ZERO, |s| now - s);
        let in_window = self.received - self.received_at_window_start;
        if waited * 2 >= self.limits.window
            && self.limits.min_bytes_per_window > 0
            && in_window < self.limits.min_bytes_per_window
        {
            return Err(PayloadError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "request body below the minimum transfer rate",
            )));
        }
        self.received_at_window_start = self.received;
        self.waited = Duration::ZERO;
        // A wait still going on counts in the next window from now.
        self.waiting_since = self.waiting_since.map(|_| now);
        self.window_ends.as_mut().reset(now + self.limits.window);
        Ok(())
    }

    fn fail(&mut self, error: PayloadError) -> Poll<Option<Result<Bytes, PayloadError>>> {
        self.failed = true;
        Poll::Ready(Some(Err(error)))
    }
}

impl<S: Stream<Item = Result<Bytes, PayloadError>> + Unpin> Stream for GuardedBody<S> {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.failed {
            return Poll::Ready(None);
        }
        // Check the window first, so that a trickle of tiny chunks cannot keep it open.
        while this.window_ends.as_mut().poll(cx).is_ready() {
            if let Err(e) = this.close_window() {
                return this.fail(e);
            }
        }
        let polled = Pin::new(&mut this.inner).poll_next(cx);
        match (&polled, this.waiting_since) {
            (Poll::Pending, None) => this.waiting_since = Some(tokio::time::Instant::now()),
            (Poll::Ready(_), Some(since)) => {
                this.waited += since.elapsed();
                this.waiting_since = None;
            }
            _ => {}
        }
        match polled {
            Poll::Ready(Some(Ok(chunk))) => {
                this.received = this.received.saturating_add(chunk.len() as u64);
                if this.received > this.limits.max_bytes {
                    return this.fail(PayloadError::Overflow);
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use futures_util::StreamExt as _;

    use super::*;

    fn limits() -> BodyLimits {
        BodyLimits {
            max_bytes: 1 << 20,
            max_upload_bytes: 1 << 20,
            max_sample_bytes: 1 << 20,
            window: Duration::from_secs(10),
            min_bytes_per_window: 1_000,
        }
    }

    /// A body whose chunks the test sends as a client would.
    fn body() -> (
        tokio::sync::mpsc::Sender<Bytes>,
        GuardedBody<impl Stream<Item = Result<Bytes, PayloadError>> + Unpin>,
    ) {
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<Bytes>(16);
        let stream =
            futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx).map(|c| c.map(Ok)));
        (sender, GuardedBody::new(stream, limits()))
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_trickles_is_refused_when_its_window_ends() {
        let (client, mut body) = body();
        client
            .send(Bytes::from_static(b"ten bytes."))
            .await
            .unwrap();
        assert_eq!(body.next().await.unwrap().unwrap().len(), 10);
        let started = tokio::time::Instant::now();
        let refused = body.next().await.unwrap().unwrap_err();
        assert!(
            matches!(refused, PayloadError::Io(ref e) if e.kind() == std::io::ErrorKind::TimedOut)
        );
        assert_eq!(started.elapsed(), Duration::from_secs(10));
        assert!(body.next().await.is_none(), "nothing after the refusal");
        drop(client);
    }

    #[tokio::test(start_paused = true)]
    async fn a_gateway_busy_for_most_of_a_window_does_not_blame_the_client() {
        let (client, mut body) = body();
        // Less than the window's minimum arrives in the first window.
        client.send(Bytes::from(vec![b'x'; 500])).await.unwrap();
        assert_eq!(body.next().await.unwrap().unwrap().len(), 500);
        // The client sends its next chunk 10.5 s from now; the handler is busy (a
        // stalled disk, say) for 9 s of the window, then waits for the client.
        let sending = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(10_500)).await;
            client.send(Bytes::from(vec![b'y'; 2_000])).await.unwrap();
        });
        tokio::time::sleep(Duration::from_secs(9)).await;
        assert_eq!(body.next().await.unwrap().unwrap().len(), 2_000);
        sending.await.unwrap();
        assert!(body.next().await.is_none(), "the body ends normally");
    }
}
