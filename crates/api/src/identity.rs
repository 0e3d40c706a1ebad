//! Who is calling: the [`Principal`], and the one way every surface establishes it. The API
//! reads `Authorization: Bearer`, the web console its session cookie; both resolve the secret
//! with [`authenticate_token`] (access tokens, API keys and console sessions are stored alike,
//! as SHA-256 hashes). The throttle layer authenticates each API request once and leaves the
//! principal in the request's extensions, where the extractor, the idempotency layer and the
//! audit layer find it.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use standby_model::{Role, Timestamp};
use standby_store::{Scope, UserRecord};
use uuid::Uuid;

use crate::AppState;
use crate::cache::GenerationCache;
use crate::error::ApiError;
use crate::secrets::token_hash;

/// Who a token hash stands for, and until when (API keys do not expire).
#[derive(Debug, Clone)]
pub struct KnownCredential {
    pub principal: Principal,
    pub expires_at: Option<Timestamp>,
}

/// Credentials already checked, kept per data generation (`cache`), weighed one each.
pub type CredentialCache = GenerationCache<KnownCredential>;

/// How many distinct credentials are kept (a bound on memory: about 200 bytes each).
pub const MAX_KNOWN_CREDENTIALS: usize = 100_000;

/// Who is calling, as established from their bearer token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_uid: Uuid,
    pub name: String,
    pub organization_uid: Uuid,
    pub role: Role,
    /// The token was issued with `readOnly=true`.
    pub read_only: bool,
    pub scope: Scope,
}

impl Principal {
    pub(crate) fn from_user(user: UserRecord, read_only: bool, provider: Option<Uuid>) -> Self {
        // Provider roles in the provider organization see everything; everyone else their own.
        let scope = if user.role.is_provider_role() && Some(user.organization_uid) == provider {
            Scope::All
        } else {
            Scope::Organization(user.organization_uid)
        };
        Principal {
            user_uid: user.uid,
            name: user.name,
            organization_uid: user.organization_uid,
            role: user.role,
            read_only,
            scope,
        }
    }
}

/// The token of `Authorization: Bearer <token>`.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::unauthorized("Authorization is required."));
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty())
        .ok_or_else(|| ApiError::unauthorized("Authorization must be 'Bearer <token>'."))
}

/// Resolves `Authorization: Bearer <token>` to a principal.
pub async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    authenticate_token(state, bearer_token(headers)?).await
}

/// Resolves an access token, API key or console session (all stored the same way, as the
/// SHA-256 of the secret) to a principal. Every surface authenticates through this: the API
/// with a bearer header, the web console with its session cookie.
pub async fn authenticate_token(state: &AppState, token: &str) -> Result<Principal, ApiError> {
    let hash = token_hash(token);
    let now = Timestamp::now();
    // Noted before the lookup: a revocation committed after it advances the stamp.
    let generation = state
        .store
        .freshness()
        .stamp(standby_store::freshness::Topics::CREDENTIALS);
    if let Some(known) = state.credentials.get(generation, &hash)
        && known.expires_at.is_none_or(|expiry| now < expiry)
    {
        return Ok(known.principal);
    }
    let credential = state
        .store
        .find_credential(&hash, now)
        .await?
        .ok_or_else(|| ApiError::unauthorized("The access token is invalid or has expired."))?;
    let expires_at = credential.expires_at;
    // Any organization of kind provider is the provider's: an installation started empty (with
    // its own "Standby" organization) and later given a fleet with a named provider has two.
    let provider = credential
        .provider_organization
        .then_some(credential.user.organization_uid);
    let principal = Principal::from_user(credential.user, credential.read_only, provider);
    let known = KnownCredential {
        principal: principal.clone(),
        expires_at,
    };
    state.credentials.keep(generation, hash, known, 1);
    Ok(principal)
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // The throttle layer authenticated this request already (every API request passes it).
        if let Some(principal) = parts.extensions.get::<Principal>().cloned() {
            return Ok(principal);
        }
        let principal = authenticate(state, &parts.headers).await?;
        parts.extensions.insert(principal.clone());
        Ok(principal)
    }
}
