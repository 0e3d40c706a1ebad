//! Every console request counts toward its address's and its signed-in user's request budgets:
//! the API's own (`standby_api::throttle`), so a person gets no more through the browser than
//! through the API, and a client cannot flood the server with pages. Assets are not counted (a
//! browser keeps them an hour). A refused request gets the error page with status 429 and
//! `Retry-After`.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use standby_api::AppState;
use standby_api::audit::address_of;
use standby_api::error::ApiError;
use standby_api::identity::authenticate_token;

use crate::session;
use crate::view::PageError;

pub async fn throttle(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let address = address_of(request.extensions());
    // Held while the request is served (for an event stream: until its answer starts).
    let _by_address = match state.throttle.admit_address(&address) {
        Ok(slot) => slot,
        Err(error) => return refused(error),
    };
    let user = match session::secret_of(request.headers()) {
        // An unknown or ended session is sent to sign in by the page itself.
        Some(secret) => authenticate_token(&state, &secret).await.ok(),
        None => None,
    };
    let _by_user = match &user {
        Some(principal) => match state.throttle.admit_user(principal.user_uid) {
            Ok(slot) => Some(slot),
            Err(error) => return refused(error),
        },
        None => None,
    };
    // The page's `Operator` takes the principal from here rather than asking again.
    if let Some(principal) = user {
        request.extensions_mut().insert(principal);
    }
    next.run(request).await
}

/// The error page for a refusal: 429 with `Retry-After`, or whatever else went wrong.
fn refused(error: ApiError) -> Response {
    let retry_after = error.error.retry_after;
    let mut response = PageError::from(error).into_response();
    if let Some(seconds) =
        retry_after.filter(|_| response.status() == StatusCode::TOO_MANY_REQUESTS)
    {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}
