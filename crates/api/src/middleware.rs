//! Cross-cutting layers of the VSPC surface: `X-Request-id` idempotency, server errors as 520,
//! panics as 520.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use standby_model::Timestamp;
use standby_store::{IdempotencyKey, Reservation, StoredResponse};
use uuid::Uuid;

use crate::AppState;
use crate::error::{ApiError, SERVER_ERROR};
use crate::identity::authenticate;
use crate::params::Version;

/// The longest request target served, in bytes (path and query). Past it: 414 in the envelope.
/// (The HTTP/1 server refuses a target over 65,534 bytes itself, with an empty 414.)
pub const MAX_URI_BYTES: usize = 48 * 1024;
/// The most request headers, and their largest total size (names and values). Past either: 431
/// in the envelope.
pub const MAX_HEADERS: usize = 100;
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// What the HTTP server itself admits (HTTP/1 headers, and the request head or HTTP/2 header
/// list in bytes), a little past the limits above so that `request_limits`, not the server,
/// refuses with a body. Past these the server answers 414/431 itself, with an empty body.
pub const SERVER_MAX_HEADERS: usize = 2 * MAX_HEADERS;
pub const SERVER_MAX_HEAD_BYTES: usize = 4 * MAX_HEADER_BYTES;

/// Headers worth keeping with a stored response.
const KEPT_HEADERS: [&str; 2] = ["content-type", "location"];

/// PATCH and POST with `X-Request-id`: the first response is kept for the window; a repeat of
/// the same request by the same user replays it, a different request with the id gets 409.
/// On every method a malformed id is a 400.
pub async fn idempotency(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(header) = request.headers().get("x-request-id") else {
        return next.run(request).await;
    };
    // Declared as a UUID on every operation: a malformed one is refused even where it is unused.
    let request_id = match header
        .to_str()
        .ok()
        .and_then(|text| Uuid::parse_str(text.trim()).ok())
    {
        Some(id) => id,
        None => {
            return ApiError::bad_parameter("X-Request-id", "X-Request-id must be a UUID.")
                .into_response();
        }
    };
    if !matches!(*request.method(), Method::POST | Method::PATCH) {
        return next.run(request).await;
    }
    match replay_or_run(&state, request_id, request, next).await {
        Ok(response) | Err(response) => response,
    }
}

async fn replay_or_run(
    state: &AppState,
    request_id: Uuid,
    request: Request,
    next: Next,
) -> Result<Response, Response> {
    let version = Version::from_headers(request.headers()).map_err(IntoResponse::into_response)?;
    // The throttle layer has usually authenticated the request already.
    let principal = match request.extensions().get::<crate::identity::Principal>() {
        Some(principal) => principal.clone(),
        None => authenticate(state, request.headers())
            .await
            .map_err(IntoResponse::into_response)?,
    };
    // Every PATCH and POST here is a write: a replay is answered only to someone who may make
    // the request itself.
    crate::access::check_write(&principal).map_err(IntoResponse::into_response)?;
    let (mut parts, body) = request.into_parts();
    let body = to_bytes(body, crate::params::MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            ApiError::too_large(format!(
                "The request body is larger than {} bytes.",
                crate::params::MAX_BODY_BYTES
            ))
            .into_response()
        })?;
    let mut hasher = Sha256::new();
    for piece in [
        parts.method.as_str(),
        parts.uri.path(),
        parts.uri.query().unwrap_or(""),
        &version.0.to_string(),
    ] {
        hasher.update(piece.as_bytes());
        hasher.update([0]);
    }
    hasher.update(&body);
    let fingerprint: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let key = IdempotencyKey {
        request_id,
        principal_uid: principal.user_uid,
        fingerprint,
    };
    let now = Timestamp::now();
    let expires = now.plus_seconds(state.settings.idempotency_window_seconds);
    let reservation = state
        .store
        .reserve_request(&key, now, expires)
        .await
        .map_err(|e| ApiError::from(e).into_response())?;
    match reservation {
        Reservation::Replay(stored) => {
            metrics::counter!("standby_idempotent_replays_total").increment(1);
            return Ok(replayed(stored));
        }
        Reservation::InFlight => {
            return Err(ApiError::cannot_now(
                "A request with this X-Request-id is still being processed.",
            )
            .into_response());
        }
        Reservation::Mismatch => {
            return Err(ApiError::cannot_now(
                "This X-Request-id was already used for a different request.",
            )
            .into_response());
        }
        Reservation::Fresh => {}
    }
    parts.extensions.insert(principal);
    parts.extensions.insert(IdempotentRequest(request_id));
    let response = next.run(Request::from_parts(parts, Body::from(body))).await;
    if !response.status().is_success() {
        // Nothing happened; let a retry with the same id run again.
        if let Err(error) = state.store.release_request(request_id).await {
            tracing::error!(%error, "could not release an idempotency reservation");
        }
        return Ok(response);
    }
    let (parts, body) = response.into_parts();
    let body = to_bytes(body, usize::MAX)
        .await
        .map_err(|e| ApiError::internal(e).into_response())?;
    // A start or undo has stored this already, with its session; the same answer again is harmless.
    if let Err(error) = state
        .store
        .complete_request(request_id, &kept(&parts, &body))
        .await
    {
        // The change is done; failing to record it must not turn success into an error.
        tracing::error!(%error, "could not store an idempotent response");
    }
    Ok(Response::from_parts(parts, Body::from(body)))
}

/// Set on a request that holds an `X-Request-id` reservation, for handlers that store their
/// answer with their own change (start and undo).
#[derive(Debug, Clone, Copy)]
pub struct IdempotentRequest(pub Uuid);

/// A response in the form it is kept for replays.
pub async fn keep_response(response: Response) -> Result<StoredResponse, ApiError> {
    let (parts, body) = response.into_parts();
    let body = to_bytes(body, usize::MAX)
        .await
        .map_err(ApiError::internal)?;
    Ok(kept(&parts, &body))
}

fn kept(parts: &axum::http::response::Parts, body: &[u8]) -> StoredResponse {
    let headers = KEPT_HEADERS
        .iter()
        .filter_map(|name| {
            parts
                .headers
                .get(*name)
                .and_then(|v| v.to_str().ok())
                .map(|v| ((*name).to_owned(), v.to_owned()))
        })
        .collect();
    StoredResponse {
        status: parts.status.as_u16(),
        headers,
        body: body.to_vec(),
    }
}

/// A kept response, sent again.
pub fn stored_response(stored: StoredResponse) -> Response {
    let mut response = Response::new(Body::from(stored.body));
    *response.status_mut() = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    for (name, value) in stored.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

fn replayed(stored: StoredResponse) -> Response {
    let mut response = stored_response(stored);
    response
        .headers_mut()
        .insert("x-idempotent-replay", HeaderValue::from_static("true"));
    response
}

/// Refuses a request target or header block larger than Standby serves, in the error envelope.
pub async fn request_limits(request: Request, next: Next) -> Response {
    let target = request
        .uri()
        .path_and_query()
        .map_or(0, |target| target.as_str().len());
    if target > MAX_URI_BYTES {
        return ApiError::uri_too_long(format!(
            "The request target is longer than {MAX_URI_BYTES} bytes."
        ))
        .into_response();
    }
    let headers = request.headers();
    let header_bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if headers.len() > MAX_HEADERS || header_bytes > MAX_HEADER_BYTES {
        return ApiError::headers_too_large(format!(
            "A request may send at most {MAX_HEADERS} headers of {MAX_HEADER_BYTES} bytes in all."
        ))
        .into_response();
    }
    next.run(request).await
}

/// Any 5xx that escaped the handlers (a timeout, a framework error) leaves as VSPC's 520.
pub async fn server_errors_as_520(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status().as_u16();
    if status >= 500 && status != SERVER_ERROR {
        return ApiError::internal(format!("HTTP {status} from an inner layer")).into_response();
    }
    response
}

/// Wraps a router so that a timeout, a panic or any other 5xx leaves as VSPC's 520. Innermost
/// first: the timeout and the panic become error responses, which the outermost layer maps.
pub fn error_layers<S: Clone + Send + Sync + 'static>(
    router: axum::Router<S>,
    timeout: std::time::Duration,
) -> axum::Router<S> {
    router
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            timeout,
        ))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response,
        ))
        .layer(axum::middleware::from_fn(server_errors_as_520))
}

/// Used by the panic-catching layer: a panic in a handler becomes a 520.
pub fn panic_response(detail: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = detail
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| detail.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    ApiError::internal(format!("handler panicked: {message}")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::get;
    use tower::ServiceExt;

    async fn panics() -> StatusCode {
        panic!("boom")
    }

    async fn slow() -> StatusCode {
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        StatusCode::OK
    }

    async fn call(router: Router, path: &str) -> (u16, serde_json::Value) {
        let response = router
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn panics_and_other_server_errors_leave_as_520_in_the_envelope() {
        let router = error_layers(
            Router::new()
                .route("/panic", get(panics))
                .route("/slow", get(slow))
                .route("/502", get(|| async { StatusCode::BAD_GATEWAY })),
            std::time::Duration::from_millis(50),
        );
        for path in ["/panic", "/502", "/slow"] {
            let (status, body) = call(router.clone(), path).await;
            assert_eq!(status, 520, "{path}");
            assert_eq!(body["errors"][0]["type"], "unspecified");
            assert_eq!(body["errors"][0]["code"], 500);
            assert!(
                !body["errors"][0]["message"]
                    .as_str()
                    .unwrap()
                    .contains("boom"),
                "internals are not sent"
            );
        }
    }
}
