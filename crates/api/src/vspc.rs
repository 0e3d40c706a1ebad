//! The nine "Backup Server Failover Plans" operations of VSPC REST API v3.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use standby_model::{FailoverPlan, SessionKind, Timestamp};
use standby_query::{Catalog, Filter, Selection, SortOrder};
use standby_store::catalog::{OBJECT_CATALOG, PLAN_CATALOG};
use standby_store::freshness::Topics;
use standby_store::{ListQuery, NewAsyncAction, NewSession, Page};
use uuid::Uuid;

use crate::cache::CachedBody;

use crate::AppState;
use crate::access::{ReadAccess, WriteAccess};
use crate::envelope::{self, to_wire};
use crate::error::{ApiError, ApiResult};
use crate::identity::Principal;
use crate::middleware::{IdempotentRequest, keep_response, stored_response};
use crate::params::{Body, QueryParams, Version, path_uid};
use crate::patch;

type PathParam = Result<Path<String>, PathRejection>;

/// A parsed list request: the store query, the projection, and the client's version.
struct ListRequest {
    query: ListQuery,
    selection: Selection,
    version: Version,
}

impl ListRequest {
    fn parse(
        state: &AppState,
        principal: &Principal,
        version: Version,
        raw: Option<String>,
        catalog: &Catalog,
    ) -> ApiResult<Self> {
        let params = QueryParams::parse(raw.as_deref())?;
        let filter = match params.get("filter") {
            Some(text) => Filter::parse(text, catalog, version.0)?,
            None => Filter::And(Vec::new()),
        };
        let order = SortOrder::parse(params.get("sort"), catalog, version.0)?;
        let paging = params.paging(state.settings.max_page_size)?;
        let selection = Selection::parse(params.get("select"), catalog, version.0)?;
        let query = ListQuery {
            scope: principal.scope,
            server: None,
            plan: None,
            filter,
            order,
            paging,
        };
        Ok(ListRequest {
            query,
            selection,
            version,
        })
    }

    fn respond<T: serde::Serialize>(&self, page: Page<T>) -> ApiResult<Bytes> {
        envelope::page_body(
            &page.items,
            page.total,
            self.query.paging.offset,
            self.version.0,
            &self.selection,
        )
    }
}

/// The key of a read in the response cache: everything its answer depends on besides the data.
fn read_key(
    operation: &'static str,
    principal: &Principal,
    version: Version,
    target: Option<Uuid>,
    raw: Option<&str>,
) -> (&'static str, String) {
    let key = format!(
        "{operation} {:?} {} {target:?} {}",
        principal.scope,
        version.0,
        raw.unwrap_or("")
    );
    (operation, key)
}

/// A read's serialized answer, and the sessions whose log lines it shows (a plan shows its last
/// run's).
struct Answer {
    body: Bytes,
    logged: Option<Vec<Uuid>>,
}

impl From<Bytes> for Answer {
    fn from(body: Bytes) -> Self {
        Answer { body, logged: None }
    }
}

/// The last runs whose log lines these plans show.
fn logged_sessions(plans: &[FailoverPlan]) -> Vec<Uuid> {
    plans
        .iter()
        .filter_map(|plan| plan.last_session.as_ref())
        .map(|session| session.instance_uid)
        .collect()
}

/// Serves a read from the response cache while nothing in `topics` (nor the log of a session
/// it shows) changed since it was computed; otherwise computes it once for every request asking
/// at that moment (errors are never kept), keeps it and serves it.
async fn cached_read(
    state: &AppState,
    (operation, key): (&'static str, String),
    topics: Topics,
    read: impl Future<Output = ApiResult<Answer>>,
) -> ApiResult<Response> {
    let freshness = state.store.freshness();
    // Both noted before reading: a write committed after this moves one of them.
    let stamp = freshness.stamp(topics);
    let mark = freshness.log_mark();
    if let Some(body) = state.responses.get(freshness, stamp, &key) {
        metrics::counter!("standby_response_cache_total", "read" => operation, "outcome" => "hit")
            .increment(1);
        return Ok(envelope::json_bytes(200, body));
    }
    metrics::counter!("standby_response_cache_total", "read" => operation, "outcome" => "miss")
        .increment(1);
    let body = state
        .responses
        .compute(stamp, key, async {
            let answer = read.await?;
            Ok::<_, ApiError>(CachedBody {
                body: answer.body,
                logs: answer.logged.map(|sessions| (mark, Arc::from(sessions))),
            })
        })
        .await?;
    Ok(envelope::json_bytes(200, body))
}

async fn plans_page(
    state: &AppState,
    principal: &Principal,
    version: Version,
    raw: Option<String>,
    server: Option<Uuid>,
) -> ApiResult<Answer> {
    let mut request = ListRequest::parse(state, principal, version, raw, &PLAN_CATALOG)?;
    request.query.server = server;
    let page = state.store.list_plans(&request.query).await?;
    let logged = logged_sessions(&page.items);
    Ok(Answer {
        body: request.respond(page)?,
        logged: Some(logged),
    })
}

async fn objects_page(
    state: &AppState,
    principal: &Principal,
    version: Version,
    raw: Option<String>,
    server: Option<Uuid>,
    plan: Option<Uuid>,
) -> ApiResult<Answer> {
    let mut request = ListRequest::parse(state, principal, version, raw, &OBJECT_CATALOG)?;
    request.query.server = server;
    request.query.plan = plan;
    Ok(request
        .respond(state.store.list_objects(&request.query).await?)?
        .into())
}

async fn visible_server(state: &AppState, principal: &Principal, server: Uuid) -> ApiResult<()> {
    if !state.store.server_visible(principal.scope, server).await? {
        return Err(ApiError::not_found(format!(
            "Backup server {server} was not found."
        )));
    }
    Ok(())
}

async fn visible_plan(
    state: &AppState,
    principal: &Principal,
    plan: Uuid,
) -> ApiResult<FailoverPlan> {
    state
        .store
        .get_plan(principal.scope, plan)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Failover plan {plan} was not found.")))
}

/// `GET /infrastructure/backupServers/failoverplans`
pub async fn list_plans(
    State(state): State<AppState>,
    version: Version,
    ReadAccess(principal): ReadAccess,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let key = read_key("plans", &principal, version, None, raw.as_deref());
    cached_read(
        &state,
        key,
        Topics::PLAN_READ,
        plans_page(&state, &principal, version, raw, None),
    )
    .await
}

/// `GET /infrastructure/backupServers/{backupServerUid}/failoverplans`
pub async fn list_server_plans(
    State(state): State<AppState>,
    version: Version,
    ReadAccess(principal): ReadAccess,
    path: PathParam,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let server = path_uid("backupServerUid", path)?;
    let key = read_key(
        "server plans",
        &principal,
        version,
        Some(server),
        raw.as_deref(),
    );
    cached_read(&state, key, Topics::PLAN_READ, async {
        visible_server(&state, &principal, server).await?;
        plans_page(&state, &principal, version, raw, Some(server)).await
    })
    .await
}

/// `GET /infrastructure/backupServers/failoverplans/{planUid}`
pub async fn get_plan(
    State(state): State<AppState>,
    version: Version,
    ReadAccess(principal): ReadAccess,
    path: PathParam,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let uid = path_uid("planUid", path)?;
    let key = read_key("plan", &principal, version, Some(uid), raw.as_deref());
    cached_read(&state, key, Topics::PLAN_READ, async {
        let params = QueryParams::parse(raw.as_deref())?;
        let selection = Selection::parse(params.get("select"), &PLAN_CATALOG, version.0)?;
        let plan = visible_plan(&state, &principal, uid).await?;
        Ok(Answer {
            body: envelope::single_body(&plan, version.0, &selection)?,
            logged: Some(logged_sessions(std::slice::from_ref(&plan))),
        })
    })
    .await
}

/// `PATCH /infrastructure/backupServers/failoverplans/{planUid}`
// An axum handler takes one extractor per input; bundling them would only hide them.
#[allow(clippy::too_many_arguments)]
pub async fn patch_plan(
    State(state): State<AppState>,
    version: Version,
    WriteAccess(principal): WriteAccess,
    path: PathParam,
    RawQuery(raw): RawQuery,
    idempotent: Option<Extension<IdempotentRequest>>,
    headers: HeaderMap,
    Body(body): Body,
) -> ApiResult<Response> {
    let uid = path_uid("planUid", path)?;
    let params = QueryParams::parse(raw.as_deref())?;
    let selection = Selection::parse(params.get("select"), &PLAN_CATALOG, version.0)?;
    require_json(&headers)?;
    let operations: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_body(format!("The request body is not valid JSON: {e}.")))?;
    let plan = visible_plan(&state, &principal, uid).await?;
    let change = patch::plan_change(to_wire(&plan, version.0)?, operations)?;
    // The answer is the plan as the change leaves it, built now so that under an X-Request-id
    // it is kept in the change's own transaction: a retry after a crash between the two
    // replays it instead of patching again.
    let answer = keep_response(envelope::single(
        &change.applied_to(&plan),
        version.0,
        &selection,
    )?)
    .await?;
    let idempotent_answer = idempotent.map(|Extension(request)| (request.0, answer.clone()));
    state
        .store
        .update_plan_commands(principal.scope, &plan, &change, idempotent_answer.as_ref())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Failover plan {uid} was not found.")))?;
    crate::crash_point::reached("plan.patch");
    tracing::info!(plan.uid = %uid, user.name = %principal.name, "failover plan patched");
    Ok(stored_response(answer))
}

pub(crate) fn require_json(headers: &HeaderMap) -> ApiResult<()> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
    {
        Ok(())
    } else {
        Err(ApiError::unsupported_media_type(format!(
            "The request body must be application/json, not '{}'.",
            if content_type.is_empty() {
                "(none)"
            } else {
                content_type
            }
        )))
    }
}

/// What a start asks for, once validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartRequest {
    pub point_in_time: Option<Timestamp>,
    pub test: bool,
}

/// `dateTime`: a date (00:00 UTC) or an RFC 3339 instant, not in the future.
pub(crate) fn parse_point_in_time(
    params: &QueryParams,
    now: Timestamp,
) -> ApiResult<Option<Timestamp>> {
    match params.get("dateTime") {
        None => Ok(None),
        // An empty value is not "the latest point": that is said by leaving the parameter out.
        Some("") => Err(ApiError::bad_parameter(
            "dateTime",
            "dateTime is empty; give a date (YYYY-MM-DD) or an RFC 3339 date-time, or leave it out for the latest restore points.",
        )),
        Some(text) => {
            let at = Timestamp::parse(text).map_err(|_| {
                ApiError::bad_parameter(
                    "dateTime",
                    format!("'{text}' is not a date (YYYY-MM-DD) or an RFC 3339 date-time."),
                )
            })?;
            if at > now {
                return Err(ApiError::future_date());
            }
            Ok(Some(at))
        }
    }
}

fn parse_start(params: &QueryParams, now: Timestamp) -> ApiResult<StartRequest> {
    let point_in_time = parse_point_in_time(params, now)?;
    let test = match params.get("test") {
        None => false,
        Some(text) if text.eq_ignore_ascii_case("true") => true,
        Some(text) if text.eq_ignore_ascii_case("false") => false,
        Some(text) => {
            return Err(ApiError::bad_parameter(
                "test",
                format!("'{text}' is not a boolean; use true or false."),
            ));
        }
    };
    Ok(StartRequest {
        point_in_time,
        test,
    })
}

/// Queues a session for a plan and answers as VSPC does: 200 `EmptyResponse` with a `Location`
/// header naming the async action (whose id is the `X-Request-id` when one was sent). Under an
/// `X-Request-id` the answer is stored in the same transaction as the session, so a retry after
/// the process died between the two still replays it.
pub async fn queue_session(
    state: &AppState,
    principal: &Principal,
    idempotent: Option<IdempotentRequest>,
    plan: Uuid,
    kind: SessionKind,
    requested_point: Option<Timestamp>,
    params: &QueryParams,
) -> ApiResult<Response> {
    // Every caller checks this already (the API's extractor, the console's form); a public
    // function that starts plans checks it once more itself.
    crate::access::check_write(principal)?;
    // The async action is named after the operation that created it, as VSPC names them.
    let action_name = match kind {
        SessionKind::Undo => "UndoBackupFailoverPlan",
        SessionKind::Failover | SessionKind::Test => "StartBackupFailoverPlan",
    };
    let action = idempotent.map_or_else(Uuid::now_v7, |request| request.0);
    // A path: the location layer makes it absolute with the address this client used.
    let answer = keep_response(envelope::empty_with_location(&format!(
        "/api/v3/asyncActions/{action}"
    )))
    .await?;
    let session = NewSession {
        uid: Uuid::now_v7(),
        plan_uid: plan,
        kind,
        requested_point,
        started_by: principal.name.clone(),
        action: NewAsyncAction {
            uid: action,
            initiator_uid: principal.user_uid,
            action_name: action_name.to_owned(),
            query_parameters: params.grouped(),
            result: String::from_utf8_lossy(&answer.body).into_owned(),
        },
        idempotent_answer: idempotent.map(|request| (request.0, answer.clone())),
    };
    match state
        .store
        .begin_session(principal.scope, &session, Timestamp::now())
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            return Err(ApiError::not_found(format!(
                "Failover plan {plan} was not found."
            )));
        }
        Err(error) => return Err(error.into()),
    }
    crate::crash_point::reached("plan.start");
    if let Some(engine) = &state.engine {
        engine.notify();
    }
    tracing::info!(plan.uid = %plan, session.uid = %session.uid, action.id = %action, kind = kind.as_str(), user.name = %principal.name, "session queued");
    Ok(stored_response(answer))
}

/// `POST /infrastructure/backupServers/failoverplans/{planUid}/start`
pub async fn start_plan(
    State(state): State<AppState>,
    _version: Version,
    WriteAccess(principal): WriteAccess,
    path: PathParam,
    RawQuery(raw): RawQuery,
    idempotent: Option<Extension<IdempotentRequest>>,
) -> ApiResult<Response> {
    let uid = path_uid("planUid", path)?;
    let params = QueryParams::parse(raw.as_deref())?;
    let request = parse_start(&params, Timestamp::now())?;
    let kind = if request.test {
        SessionKind::Test
    } else {
        SessionKind::Failover
    };
    queue_session(
        &state,
        &principal,
        idempotent.map(|Extension(request)| request),
        uid,
        kind,
        request.point_in_time,
        &params,
    )
    .await
}

/// `POST /infrastructure/backupServers/failoverplans/{planUid}/undo`
pub async fn undo_plan(
    State(state): State<AppState>,
    _version: Version,
    WriteAccess(principal): WriteAccess,
    path: PathParam,
    RawQuery(raw): RawQuery,
    idempotent: Option<Extension<IdempotentRequest>>,
) -> ApiResult<Response> {
    let uid = path_uid("planUid", path)?;
    let params = QueryParams::parse(raw.as_deref())?;
    queue_session(
        &state,
        &principal,
        idempotent.map(|Extension(request)| request),
        uid,
        SessionKind::Undo,
        None,
        &params,
    )
    .await
}

/// `GET /infrastructure/backupServers/failoverplans/objects`
pub async fn list_objects(
    State(state): State<AppState>,
    version: Version,
    ReadAccess(principal): ReadAccess,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let key = read_key("objects", &principal, version, None, raw.as_deref());
    cached_read(
        &state,
        key,
        Topics::OBJECT_READ,
        objects_page(&state, &principal, version, raw, None, None),
    )
    .await
}

/// `GET /infrastructure/backupServers/{backupServerUid}/failoverplans/objects`
pub async fn list_server_objects(
    State(state): State<AppState>,
    version: Version,
    ReadAccess(principal): ReadAccess,
    path: PathParam,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let server = path_uid("backupServerUid", path)?;
    let key = read_key(
        "server objects",
        &principal,
        version,
        Some(server),
        raw.as_deref(),
    );
    cached_read(&state, key, Topics::OBJECT_READ, async {
        visible_server(&state, &principal, server).await?;
        objects_page(&state, &principal, version, raw, Some(server), None).await
    })
    .await
}

/// `GET /infrastructure/backupServers/failoverplans/{planUid}/objects`
pub async fn list_plan_objects(
    State(state): State<AppState>,
    version: Version,
    ReadAccess(principal): ReadAccess,
    path: PathParam,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let uid = path_uid("planUid", path)?;
    let key = read_key(
        "plan objects",
        &principal,
        version,
        Some(uid),
        raw.as_deref(),
    );
    cached_read(&state, key, Topics::OBJECT_READ, async {
        visible_plan(&state, &principal, uid).await?;
        objects_page(&state, &principal, version, raw, None, Some(uid)).await
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(raw: &str) -> QueryParams {
        QueryParams::parse(Some(raw)).unwrap()
    }

    #[test]
    fn start_parameters() {
        let now = Timestamp::parse("2026-11-27T12:00:00Z").unwrap();
        assert_eq!(
            parse_start(&params(""), now).unwrap(),
            StartRequest {
                point_in_time: None,
                test: false
            }
        );
        let request = parse_start(&params("dateTime=2026-11-27&test=TRUE"), now).unwrap();
        assert_eq!(
            request.point_in_time,
            Timestamp::parse("2026-11-27T00:00:00Z").ok()
        );
        assert!(request.test);
        assert_eq!(
            parse_start(&params("dateTime=2026-11-28"), now)
                .unwrap_err()
                .error
                .code,
            9000
        );
        assert_eq!(
            parse_start(&params("dateTime=2026-11-27T12:00:01Z"), now)
                .unwrap_err()
                .error
                .code,
            9000
        );
        assert!(parse_start(&params("dateTime=2026-11-27T12:00:00Z"), now).is_ok());
        let error = parse_start(&params("dateTime=tomorrow"), now).unwrap_err();
        assert_eq!(error.error.parameter_name.as_deref(), Some("dateTime"));
        let error = parse_start(&params("test=yes"), now).unwrap_err();
        assert_eq!(error.error.parameter_name.as_deref(), Some("test"));
    }
}
