//! Console sessions. A browser signs in with the form; the password check, its throttling and
//! its audit are the API's own (`auth::check_password`). The session is an access token of the
//! console's lifetime, kept in an HttpOnly, SameSite=Strict cookie, so every request is
//! authenticated, scoped and revocable exactly as a bearer token is (`auth::authenticate_token`).
//! Every form carries a CSRF token derived from the session's secret, checked on every POST.

use axum::extract::{FromRequestParts, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use standby_api::AppState;
use standby_api::access::{check_read, check_write, is_provider_admin};
use standby_api::audit::ClientAddress;
use standby_api::auth::{
    LoginRefusal, check_password, close_console_session, open_console_session,
};
use standby_api::identity::{Principal, authenticate_token};
use standby_api::secrets::{new_token, token_hash};

use crate::form::Fields;
use crate::view::{self, Page, PageError};

const SESSION_COOKIE: &str = "standby_session";
/// The login form's own CSRF token (double-submitted: cookie and field), before any session.
const LOGIN_COOKIE: &str = "standby_login";

/// A signed-in person, as every console page sees them.
#[derive(Debug, Clone)]
pub struct Operator {
    pub principal: Principal,
    /// The token every form of this session carries.
    pub csrf: String,
    /// Where the request came from, for the audit trail.
    pub address: String,
    secret: String,
}

impl Operator {
    /// May start, test and undo (a read-only role sees no such control, and is refused anyway).
    pub fn can_write(&self) -> bool {
        check_write(&self.principal).is_ok()
    }

    pub fn is_admin(&self) -> bool {
        is_provider_admin(&self.principal)
    }

    /// The session's secret (the live view re-checks it while it streams).
    pub(crate) fn secret(&self) -> &str {
        &self.secret
    }

    /// Refuses a form whose CSRF token is not this session's.
    pub fn check_csrf(&self, fields: &Fields) -> Result<(), PageError> {
        let given = fields.get("csrf").unwrap_or("");
        if constant_time_eq(given.as_bytes(), self.csrf.as_bytes()) {
            Ok(())
        } else {
            Err(PageError::new(
                StatusCode::FORBIDDEN,
                "The form has expired or did not come from this console. Reload the page and try again.",
            ))
        }
    }

    /// Refuses a write from a session that may not write.
    pub fn check_write(&self) -> Result<(), PageError> {
        check_write(&self.principal)
            .map_err(|error| PageError::new(StatusCode::FORBIDDEN, error.error.message.clone()))
    }
}

/// The session's form token: half of a SHA-256 of its secret under a label of its own (it
/// reveals nothing of the secret, and no other session's token matches).
fn csrf_for(secret: &str) -> String {
    let mut token = token_hash(&format!("standby-console-csrf\0{secret}"));
    token.truncate(32);
    token
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn random_token() -> Result<String, PageError> {
    Ok(new_token()?)
}

/// Where to go after signing in: only a path on this site (never `//host` or a URL).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.contains('\\')
                && path.chars().all(|c| c.is_ascii_graphic()) =>
        {
            path.to_owned()
        }
        _ => "/plans".to_owned(),
    }
}

/// The session cookie's secret, if the request carries one.
pub fn secret_of(headers: &axum::http::HeaderMap) -> Option<String> {
    CookieJar::from_headers(headers)
        .get(SESSION_COOKIE)
        .map(|cookie| cookie.value().to_owned())
}

fn sign_in_redirect(parts: &Parts) -> Response {
    let here = parts
        .uri
        .path_and_query()
        .map_or("/plans", |p| p.as_str())
        .to_owned();
    if parts.method == Method::GET && !parts.uri.path().ends_with("/events") {
        let next = serde_urlencoded::to_string([("next", here)]).unwrap_or_default();
        Redirect::to(&format!("/login?{next}")).into_response()
    } else {
        PageError::new(
            StatusCode::UNAUTHORIZED,
            "Your session has ended. Sign in again.",
        )
        .into_response()
    }
}

impl FromRequestParts<AppState> for Operator {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Some(secret) = secret_of(&parts.headers) else {
            return Err(sign_in_redirect(parts));
        };
        // Authenticated already by the console's throttle, which saw the same cookie.
        let known = parts.extensions.get::<Principal>().cloned();
        let authenticated = match known {
            Some(principal) => Ok(principal),
            None => authenticate_token(state, &secret).await,
        };
        let principal = match authenticated {
            Ok(principal) => principal,
            Err(error) if error.status == 401 => {
                return Err(sign_in_redirect(parts));
            }
            Err(error) => return Err(PageError::from(error).into_response()),
        };
        check_read(&principal).map_err(|error| {
            PageError::new(StatusCode::FORBIDDEN, error.error.message.clone()).into_response()
        })?;
        let ClientAddress(address) = ClientAddress::from_request_parts(parts, state)
            .await
            .unwrap_or_else(|never| match never {});
        Ok(Operator {
            csrf: csrf_for(&secret),
            address,
            principal,
            secret,
        })
    }
}

/// Browsers reach this server over HTTPS: it serves TLS itself, or its public URL is HTTPS
/// (a proxy in front).
fn over_https(state: &AppState) -> bool {
    state.settings.tls
        || state
            .settings
            .public_url
            .as_deref()
            .is_some_and(|url| url.starts_with("https://"))
}

fn cookie(
    state: &AppState,
    name: &'static str,
    value: String,
    path: &'static str,
) -> Cookie<'static> {
    Cookie::build((name, value))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(over_https(state))
        .path(path)
        .build()
}

/// `GET /login`
pub async fn login_page(
    State(state): State<AppState>,
    jar: CookieJar,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let query = Fields::from_query(raw.as_deref());
    // Already signed in: straight on.
    if let Some(secret) = jar.get(SESSION_COOKIE).map(|c| c.value().to_owned())
        && authenticate_token(&state, &secret).await.is_ok()
    {
        return Ok(Redirect::to(&safe_next(query.get("next"))).into_response());
    }
    let token = random_token()?;
    let jar = jar.add(cookie(&state, LOGIN_COOKIE, token.clone(), "/login"));
    let page = view::LoginPage {
        csrf: token,
        next: safe_next(query.get("next")),
        user: String::new(),
        message: None,
    };
    Ok((jar, view::render(StatusCode::OK, &page)).into_response())
}

/// `POST /login`
pub async fn login(
    State(state): State<AppState>,
    jar: CookieJar,
    ClientAddress(address): ClientAddress,
    body: axum::body::Bytes,
) -> Result<Response, PageError> {
    let fields = Fields::from_body(&body);
    let user = fields.get("username").unwrap_or("").to_owned();
    let next = safe_next(fields.get("next"));
    let expected = jar.get(LOGIN_COOKIE).map(|c| c.value().to_owned());
    let again =
        |status: StatusCode, message: &str, jar: CookieJar| -> Result<Response, PageError> {
            let token = random_token()?;
            let jar = jar.add(cookie(&state, LOGIN_COOKIE, token.clone(), "/login"));
            let page = view::LoginPage {
                csrf: token,
                next: next.clone(),
                user: user.clone(),
                message: Some(message.to_owned()),
            };
            Ok((jar, view::render(status, &page)).into_response())
        };
    let given = fields.get("csrf").unwrap_or("");
    if !expected.is_some_and(|expected| constant_time_eq(expected.as_bytes(), given.as_bytes())) {
        return again(
            StatusCode::FORBIDDEN,
            "The sign-in form expired. Please try again.",
            jar,
        );
    }
    let password = fields.get("password").unwrap_or("");
    match check_password(&state, &user, password, &address).await {
        Ok(record) => {
            let secret = open_console_session(
                &state,
                &record,
                &address,
                state.settings.console_session_seconds,
            )
            .await?;
            let mut session = cookie(&state, SESSION_COOKIE, secret, "/");
            session.set_max_age(time::Duration::seconds(
                state.settings.console_session_seconds,
            ));
            let jar = jar
                .remove(Cookie::build(LOGIN_COOKIE).path("/login"))
                .add(session);
            Ok((jar, Redirect::to(&next)).into_response())
        }
        Err(LoginRefusal::Invalid(message)) => again(StatusCode::UNAUTHORIZED, message, jar),
        Err(LoginRefusal::Throttled(seconds)) => again(
            StatusCode::TOO_MANY_REQUESTS,
            &format!(
                "Too many failed sign-ins for this user or address; try again in {seconds} seconds."
            ),
            jar,
        ),
        Err(LoginRefusal::Api(error)) => Err(error.into()),
    }
}

/// `POST /logout`: the session's token is revoked, not only its cookie dropped.
pub async fn logout(
    State(state): State<AppState>,
    operator: Operator,
    jar: CookieJar,
    body: axum::body::Bytes,
) -> Result<Response, PageError> {
    operator.check_csrf(&Fields::from_body(&body))?;
    close_console_session(&state, &operator.secret).await?;
    tracing::info!(user.name = %operator.principal.name, "console session closed");
    let jar = jar.remove(Cookie::build(SESSION_COOKIE).path("/"));
    Ok((jar, Redirect::to("/login")).into_response())
}

/// The frame every page of a signed-in operator shares.
pub fn frame(operator: &Operator, title: impl Into<String>, section: &'static str) -> Page {
    Page {
        title: title.into(),
        section,
        user: operator.principal.name.clone(),
        role: operator.principal.role.to_string(),
        read_only: !operator.can_write(),
        admin: operator.is_admin(),
        csrf: operator.csrf.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(
            safe_next(Some("/plans?status=Failed")),
            "/plans?status=Failed"
        );
        for bad in [
            "//evil.example/x",
            "https://evil.example",
            "/\\evil",
            "plans",
            "/a\nb",
            "/plans/é",
            "/a b",
        ] {
            assert_eq!(safe_next(Some(bad)), "/plans", "{bad}");
        }
        assert_eq!(safe_next(None), "/plans");
    }

    #[test]
    fn csrf_is_per_session_and_compared_whole() {
        assert_ne!(csrf_for("a"), csrf_for("b"));
        assert_eq!(csrf_for("a").len(), 32);
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
