//! The audit rows of the console's writes. The API's writes are audited by its middleware; the
//! console's routes are outside it, so each write records its own row, with the same actions,
//! outcomes and bounds (`standby_api::audit::record`), and a detail that says it came from here.

use standby_api::AppState;
use standby_api::error::ApiError;
use standby_store::{AuditAction, AuditEntry, AuditOutcome};
use uuid::Uuid;

use crate::session::Operator;

/// Records what `operator` did to `target` and how it ended.
pub async fn record<T>(
    state: &AppState,
    operator: &Operator,
    action: AuditAction,
    target: String,
    what: &str,
    result: &Result<T, ApiError>,
) {
    let (outcome, detail) = match result {
        Ok(_) => (AuditOutcome::Success, format!("console: {what}")),
        Err(error) if error.status < 500 => (
            AuditOutcome::Refused,
            format!("console: {what}: {}", error.error.message),
        ),
        Err(error) => (
            AuditOutcome::Failed,
            format!("console: {what}: {}", error.error.message),
        ),
    };
    let entry = AuditEntry {
        uid: Uuid::now_v7(),
        at: standby_model::Timestamp::now(),
        actor_uid: Some(operator.principal.user_uid),
        actor_name: operator.principal.name.clone(),
        address: operator.address.clone(),
        action,
        target: Some(target),
        outcome,
        detail,
    };
    standby_api::audit::record(state.store.as_ref(), entry).await;
}
