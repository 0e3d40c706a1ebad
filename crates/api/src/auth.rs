//! Logins: `POST /api/v3/token` (OAuth2 password and refresh grants), the password check every
//! login shares (the console's form too), console sessions, and the first administrator. Who a
//! request is comes from `identity`; tokens and password hashes from `secrets`.

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::Response;
use serde_json::json;
use standby_model::{Role, Timestamp};
use standby_store::{
    AuditAction, AuditOutcome, AuthStore, StoreError, TokenKind, TokenRecord, UserRecord,
};
use uuid::Uuid;

use crate::AppState;
use crate::envelope::json_response;
use crate::error::ApiError;
use crate::secrets::{generate_password, hash_password, new_token, token_hash, verify_password};
use crate::throttle::LoginGate;

async fn login_audit(
    state: &AppState,
    actor: Option<Uuid>,
    name: &str,
    address: &str,
    outcome: AuditOutcome,
    detail: &str,
) {
    metrics::counter!("standby_logins_total", "outcome" => outcome.as_str()).increment(1);
    let entry = standby_store::AuditEntry {
        uid: Uuid::now_v7(),
        at: Timestamp::now(),
        actor_uid: actor,
        actor_name: name.to_owned(),
        address: address.to_owned(),
        action: AuditAction::Login,
        target: None,
        outcome,
        detail: detail.to_owned(),
    };
    crate::audit::record(state.store.as_ref(), entry).await;
}

/// An OAuth2Error body (the /token endpoint does not use the VSPC envelope).
fn oauth_error(error: &str, description: &str) -> Response {
    json_response(
        400,
        &json!({ "error": error, "error_description": description, "error_uri": null }),
    )
}

const LOGIN_FAILED: &str =
    "Cannot complete login due to incorrect username or password, or no sufficient rights.";

/// `POST /api/v3/token`.
pub async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    crate::audit::ClientAddress(address): crate::audit::ClientAddress,
    body: Result<crate::params::Body, ApiError>,
) -> Response {
    // /token answers in OAuth2Error form, even for a body it cannot read.
    let body = match body {
        Ok(crate::params::Body(body)) => body,
        Err(error) => return oauth_error("invalid_request", &error.error.message),
    };
    match issue(&state, &headers, &body, &address).await {
        Ok(response) => response,
        Err(TokenError::OAuth(error, description)) => oauth_error(error, &description),
        Err(TokenError::Throttled(seconds)) => {
            let description = format!(
                "Too many failed logins for this user or address; try again in {seconds} seconds."
            );
            let mut response = json_response(
                429,
                &json!({ "error": "invalid_request", "error_description": description, "error_uri": null }),
            );
            if let Ok(value) = axum::http::HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
        Err(TokenError::Api(error)) => axum::response::IntoResponse::into_response(error),
    }
}

enum TokenError {
    OAuth(&'static str, String),
    /// Too many failed logins: wait this many seconds.
    Throttled(u64),
    Api(ApiError),
}

impl From<ApiError> for TokenError {
    fn from(error: ApiError) -> Self {
        TokenError::Api(error)
    }
}

impl From<StoreError> for TokenError {
    fn from(error: StoreError) -> Self {
        TokenError::Api(error.into())
    }
}

fn invalid_request(description: impl Into<String>) -> TokenError {
    TokenError::OAuth("invalid_request", description.into())
}

async fn issue(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
    address: &str,
) -> Result<Response, TokenError> {
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    if !form_type {
        return Err(invalid_request(
            "The request must be sent as application/x-www-form-urlencoded.",
        ));
    }
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|_| invalid_request("The form body could not be read."))?;
    let field = |name: &str| {
        fields
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    let read_only = match field("readOnly") {
        None => false,
        Some(value) if value.eq_ignore_ascii_case("true") => true,
        Some(value) if value.eq_ignore_ascii_case("false") => false,
        Some(_) => return Err(invalid_request("readOnly must be true or false.")),
    };
    let now = Timestamp::now();
    let (user, read_only, family) = match field("grant_type") {
        None | Some("") => return Err(invalid_request("grant_type is required.")),
        Some("password") => {
            let username = field("username").unwrap_or_default();
            let password = field("password").unwrap_or_default();
            let user = check_password(state, username, password, address)
                .await
                .map_err(|refusal| match refusal {
                    LoginRefusal::Invalid(message) => invalid_request(message),
                    LoginRefusal::Throttled(seconds) => TokenError::Throttled(seconds),
                    LoginRefusal::Api(error) => TokenError::Api(error),
                })?;
            (user, read_only, Uuid::now_v7())
        }
        Some("refresh_token") => {
            let refresh = field("refresh_token").unwrap_or_default();
            if refresh.is_empty() || refresh.len() > 2048 {
                return Err(invalid_request("refresh_token is required."));
            }
            match state
                .store
                .consume_refresh_token(&token_hash(refresh), now)
                .await?
            {
                // A refreshed pair is never less restricted than the one it replaces.
                Some((token, user)) => (user, token.read_only || read_only, token.family),
                None => {
                    return Err(TokenError::OAuth(
                        "invalid_grant",
                        "The refresh token is invalid or has expired.".into(),
                    ));
                }
            }
        }
        Some(other @ ("authorization_code" | "public_key" | "mfa" | "as")) => {
            return Err(TokenError::OAuth(
                "unsupported_grant_type",
                format!("The grant type '{other}' is not supported by this server."),
            ));
        }
        Some(other) => {
            return Err(TokenError::OAuth(
                "unsupported_grant_type",
                format!("Unknown grant type '{other}'."),
            ));
        }
    };
    let access = new_token()?;
    let refresh = new_token()?;
    for (token, kind, lifetime) in [
        (
            &access,
            TokenKind::Access,
            state.settings.access_token_seconds,
        ),
        (
            &refresh,
            TokenKind::Refresh,
            state.settings.refresh_token_seconds,
        ),
    ] {
        state
            .store
            .insert_token(&TokenRecord {
                hash: token_hash(token),
                user_uid: user.uid,
                kind,
                read_only,
                family,
                created_at: now,
                expires_at: now.plus_seconds(lifetime),
            })
            .await?;
    }
    tracing::info!(user.name = %user.name, read_only, "token issued");
    let detail = format!(
        "{} grant{}",
        field("grant_type").unwrap_or_default(),
        if read_only { ", read-only" } else { "" }
    );
    login_audit(
        state,
        Some(user.uid),
        &user.name,
        address,
        AuditOutcome::Success,
        &detail,
    )
    .await;
    Ok(json_response(
        200,
        &json!({
            "access_token": access,
            "token_type": "bearer",
            "refresh_token": refresh,
            "mfa_token": null,
            "encrypted_code": null,
            "expires_in": state.settings.access_token_seconds,
        }),
    ))
}

/// Why a password login was refused.
#[derive(Debug)]
pub enum LoginRefusal {
    /// Wrong, missing or malformed credentials: the message is safe to show.
    Invalid(&'static str),
    /// Too many failed logins for this user or address: wait this many seconds.
    Throttled(u64),
    Api(ApiError),
}

impl From<ApiError> for LoginRefusal {
    fn from(error: ApiError) -> Self {
        LoginRefusal::Api(error)
    }
}

impl From<StoreError> for LoginRefusal {
    fn from(error: StoreError) -> Self {
        LoginRefusal::Api(error.into())
    }
}

/// The password check of every login, the API's password grant and the console's form alike:
/// bounds, throttling (counted before the check, so concurrent guesses cannot all pass), the
/// same timing for unknown users, and an audit row for every refusal.
pub async fn check_password(
    state: &AppState,
    username: &str,
    password: &str,
    address: &str,
) -> Result<UserRecord, LoginRefusal> {
    if username.is_empty()
        || username.chars().count() > 2048
        || password.is_empty()
        || password.chars().count() > 128
    {
        return Err(LoginRefusal::Invalid(
            "username (1 to 2048 characters) and password (1 to 128) are required.",
        ));
    }
    // No user name holds NUL, and PostgreSQL cannot even be asked for one.
    if username.contains('\0') {
        return Err(LoginRefusal::Invalid(LOGIN_FAILED));
    }
    let reservation = match state
        .throttle
        .reserve_login(state.store.as_ref(), username, address)
        .await?
    {
        LoginGate::Open(reservation) => reservation,
        LoginGate::Throttled(seconds) => {
            tracing::warn!(user.name = %username, %address, "login throttled");
            return Err(LoginRefusal::Throttled(seconds));
        }
    };
    let user = state.store.find_user_by_name(username).await?;
    // Verify against a fixed hash when the user is unknown, so timing does not tell.
    let hash = user
        .as_ref()
        .map_or_else(|| state.dummy_hash.to_string(), |u| u.password_hash.clone());
    let matches = verify_password(password.to_owned(), hash).await?;
    match user {
        Some(user) if matches && !user.disabled => {
            reservation.succeeded(state.store.as_ref()).await;
            Ok(user)
        }
        _ => {
            tracing::warn!(user.name = %username, "login failed");
            login_audit(
                state,
                None,
                username,
                address,
                AuditOutcome::Refused,
                "wrong user name or password, or disabled",
            )
            .await;
            Err(LoginRefusal::Invalid(LOGIN_FAILED))
        }
    }
}

/// Opens a console session for a user whose password was checked: an access token of the
/// console's lifetime (never read-only by itself; the user's role decides), audited as a login.
/// Returns the secret for the cookie; only its hash is stored.
pub async fn open_console_session(
    state: &AppState,
    user: &UserRecord,
    address: &str,
    lifetime_seconds: i64,
) -> Result<String, ApiError> {
    let secret = new_token()?;
    let now = Timestamp::now();
    state
        .store
        .insert_token(&TokenRecord {
            hash: token_hash(&secret),
            user_uid: user.uid,
            kind: TokenKind::Access,
            read_only: false,
            family: Uuid::now_v7(),
            created_at: now,
            expires_at: now.plus_seconds(lifetime_seconds),
        })
        .await?;
    tracing::info!(user.name = %user.name, "console session opened");
    login_audit(
        state,
        Some(user.uid),
        &user.name,
        address,
        AuditOutcome::Success,
        "console session",
    )
    .await;
    Ok(secret)
}

/// Ends a console session: its token is revoked at once, for every node.
pub async fn close_console_session(state: &AppState, secret: &str) -> Result<(), ApiError> {
    state.store.revoke_token(&token_hash(secret)).await?;
    Ok(())
}

/// The first portal administrator. With `credentials`, that user is created if missing; without,
/// and with no user at all, `admin` is created with a random password, which is returned so the
/// caller can print it once.
pub async fn bootstrap_admin(
    store: &dyn AuthStore,
    credentials: Option<(String, String)>,
) -> Result<Option<(String, String)>, ApiError> {
    let organization = store.ensure_provider_organization("Standby").await?;
    let (name, password, generated) = match credentials {
        Some((name, password)) => {
            if store.find_user_by_name(&name).await?.is_some() {
                return Ok(None);
            }
            (name, password, false)
        }
        None => {
            if store.count_users().await? > 0 {
                return Ok(None);
            }
            ("admin".to_owned(), generate_password()?, true)
        }
    };
    let created = store
        .create_user(&UserRecord {
            uid: Uuid::now_v7(),
            name: name.clone(),
            organization_uid: organization,
            role: Role::PortalAdministrator,
            password_hash: hash_password(password.clone()).await?,
            disabled: false,
        })
        .await;
    match created {
        Ok(()) => Ok(generated.then_some((name, password))),
        // Several nodes starting at once on one database: another one created it first.
        Err(standby_store::StoreError::Conflict(_)) => Ok(None),
        Err(error) => Err(error.into()),
    }
}
