//! Permissions in handler signatures. A handler names the access it needs by taking one of these
//! extractors instead of a bare [`Principal`], so it cannot forget the check: the request is
//! refused (401 without a valid token, 403 without the permission) before the handler runs, and
//! before any path parameter is looked up, so a refusal never reveals whether a target exists.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use standby_model::Role;
use standby_store::Scope;

use crate::AppState;
use crate::error::ApiError;
use crate::identity::Principal;

fn forbidden() -> ApiError {
    ApiError::forbidden("Access to the requested resource is forbidden.")
}

/// May call the read operations (GET).
pub fn check_read(principal: &Principal) -> Result<(), ApiError> {
    if principal.role.can_read_plans() {
        Ok(())
    } else {
        Err(forbidden())
    }
}

/// May change things: PATCH, start, undo, cancel, forget, faults. A `readOnly=true` token or a
/// read-only API key never may, whatever its user's role.
pub fn check_write(principal: &Principal) -> Result<(), ApiError> {
    if principal.read_only {
        return Err(ApiError::forbidden("This token is read-only."));
    }
    if principal.role.can_write_plans() {
        Ok(())
    } else {
        Err(forbidden())
    }
}

/// A portal administrator of the provider: may read the audit trail.
pub fn is_provider_admin(principal: &Principal) -> bool {
    principal.role == Role::PortalAdministrator && principal.scope == Scope::All
}

/// Read access: any role that may see plans.
#[derive(Debug, Clone)]
pub struct ReadAccess(pub Principal);

/// Write access: a role that may change plans, with a token that is not read-only.
#[derive(Debug, Clone)]
pub struct WriteAccess(pub Principal);

/// Write access for a provider-wide user (the simulator's faults touch every tenant's servers).
#[derive(Debug, Clone)]
pub struct ProviderWriteAccess(pub Principal);

/// A portal administrator of the provider (the audit trail).
#[derive(Debug, Clone)]
pub struct ProviderAdminAccess(pub Principal);

impl FromRequestParts<AppState> for ReadAccess {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = Principal::from_request_parts(parts, state).await?;
        check_read(&principal)?;
        Ok(ReadAccess(principal))
    }
}

impl FromRequestParts<AppState> for WriteAccess {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = Principal::from_request_parts(parts, state).await?;
        check_write(&principal)?;
        Ok(WriteAccess(principal))
    }
}

impl FromRequestParts<AppState> for ProviderWriteAccess {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let WriteAccess(principal) = WriteAccess::from_request_parts(parts, state).await?;
        if principal.scope != Scope::All {
            return Err(ApiError::forbidden("Only provider-wide users may do this."));
        }
        Ok(ProviderWriteAccess(principal))
    }
}

impl FromRequestParts<AppState> for ProviderAdminAccess {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = Principal::from_request_parts(parts, state).await?;
        if !is_provider_admin(&principal) {
            return Err(ApiError::forbidden(
                "Only portal administrators of the provider may use this route.",
            ));
        }
        Ok(ProviderAdminAccess(principal))
    }
}
