//! Success envelopes: `{"data": ..., "meta": {"pagingInfo": ...}}` with `select` applied.

use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use standby_model::ClientVersion;
use standby_query::Selection;

use crate::error::ApiError;

/// A JSON body with the API's content type.
pub fn json_response(status: u16, body: &Value) -> Response {
    json_bytes(
        status,
        Bytes::from(serde_json::to_vec(body).unwrap_or_default()),
    )
}

/// A body already serialized (kept in the response cache, or written directly).
pub fn json_bytes(status: u16, body: Bytes) -> Response {
    let status = axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::OK);
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

/// Serialises one resource as the client's version sees it.
pub fn to_wire<T: Serialize>(item: &T, version: ClientVersion) -> Result<Value, ApiError> {
    let mut value = serde_json::to_value(item).map_err(ApiError::internal)?;
    if let (false, Value::Object(object)) = (version.has_last_session(), &mut value) {
        object.remove("lastSession");
    }
    Ok(value)
}

/// `{"data": item}` for GET by id and PATCH.
pub fn single<T: Serialize>(
    item: &T,
    version: ClientVersion,
    selection: &Selection,
) -> Result<Response, ApiError> {
    Ok(json_bytes(200, single_body(item, version, selection)?))
}

/// The body of [`single`].
pub fn single_body<T: Serialize>(
    item: &T,
    version: ClientVersion,
    selection: &Selection,
) -> Result<Bytes, ApiError> {
    if writes_as_is(version, selection) {
        return to_bytes(&Single { data: item }, expected_size(1));
    }
    let data = selection.project(to_wire(item, version)?);
    to_bytes(&json!({ "data": data }), expected_size(1))
}

/// The body of `{"data": [items], "meta": {"pagingInfo": {total, count, offset}}}` for lists.
pub fn page_body<T: Serialize>(
    items: &[T],
    total: u64,
    offset: u32,
    version: ClientVersion,
    selection: &Selection,
) -> Result<Bytes, ApiError> {
    let paging_info = PagingInfo {
        total,
        count: items.len(),
        offset,
    };
    if writes_as_is(version, selection) {
        return to_bytes(
            &PageEnvelope {
                data: items,
                meta: Meta { paging_info },
            },
            expected_size(items.len()),
        );
    }
    let data = items
        .iter()
        .map(|item| to_wire(item, version).map(|value| selection.project(value)))
        .collect::<Result<Vec<_>, _>>()?;
    to_bytes(
        &PageEnvelope {
            data: &data,
            meta: Meta { paging_info },
        },
        expected_size(data.len()),
    )
}

/// Whether the model's own serialization is what this client sees: every field selected and a
/// version that knows `lastSession`. Then the items are written straight to bytes, without the
/// intermediate `Value` tree (most of a page's serialization cost).
fn writes_as_is(version: ClientVersion, selection: &Selection) -> bool {
    version.has_last_session() && selection.is_everything()
}

/// Serializes into a buffer of about the expected size (a plan is about 420 bytes), sparing the
/// regrowth copies of a page; a buffer left more than half empty is shrunk, because the response
/// cache keeps it whole and weighs only its length.
fn to_bytes<T: Serialize>(body: &T, expected: usize) -> Result<Bytes, ApiError> {
    let mut buffer = Vec::with_capacity(expected);
    serde_json::to_writer(&mut buffer, body).map_err(ApiError::internal)?;
    if buffer.capacity() > 2 * buffer.len() {
        buffer.shrink_to_fit();
    }
    Ok(Bytes::from(buffer))
}

/// The expected size of a body of `items` items.
fn expected_size(items: usize) -> usize {
    512 * items + 128
}

#[derive(Serialize)]
struct Single<'a, T> {
    data: &'a T,
}

#[derive(Serialize)]
struct PageEnvelope<'a, T> {
    data: &'a [T],
    meta: Meta,
}

#[derive(Serialize)]
struct Meta {
    #[serde(rename = "pagingInfo")]
    paging_info: PagingInfo,
}

#[derive(Serialize)]
struct PagingInfo {
    total: u64,
    count: usize,
    offset: u32,
}

/// A list envelope around items already in wire form.
pub fn page_of_values(data: Vec<Value>, total: u64, offset: u32) -> Response {
    let count = data.len();
    json_response(
        200,
        &json!({ "data": data, "meta": { "pagingInfo": { "total": total, "count": count, "offset": offset } } }),
    )
}

/// `EmptyResponse`: `{"data": {}, "errors": []}`.
pub fn empty() -> Response {
    json_response(200, &json!({ "data": {}, "errors": [] }))
}

/// `EmptyResponse` with a `Location` header (a path; see `location.rs`).
pub fn empty_with_location(location: &str) -> Response {
    let mut response = empty();
    if let Ok(value) = axum::http::HeaderValue::from_str(location) {
        response
            .headers_mut()
            .insert(axum::http::header::LOCATION, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use standby_model::{
        BackupStatus, FailoverPlan, LastSession, MessageSeverity, PlanObject, PlanStatus, PlanType,
        RestoreSession, SessionMessage, SessionStatus, Timestamp,
    };
    use standby_query::Catalog;
    use uuid::Uuid;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse(text).unwrap()
    }

    fn plans() -> Vec<FailoverPlan> {
        let plan = FailoverPlan {
            instance_uid: Uuid::from_u128(1),
            original_uid: Uuid::from_u128(2),
            backup_server_uid: Uuid::from_u128(3),
            name: "SQL \"tier\" <1>".into(),
            plan_type: PlanType::Tenant,
            status: PlanStatus::Failed,
            tenant_uid: Some(Uuid::from_u128(4)),
            objects_count: 2,
            pre_failover_script_enabled: true,
            pre_failover_command: "C:\\pre.ps1".into(),
            post_failover_script_enabled: false,
            post_failover_command: String::new(),
            last_session: Some(LastSession {
                instance_uid: Uuid::from_u128(5),
                end_time: Some(at("2026-11-27T10:00:00Z")),
                status: SessionStatus::Failed,
                message: Some("1 of 2 VMs failed".into()),
                detailed_messages: vec![SessionMessage {
                    title: "vm-1".into(),
                    description: "replica did not boot".into(),
                    severity: MessageSeverity::Failed,
                    start_time: Some(at("2026-11-27T09:59:00Z")),
                    end_time: None,
                }],
            }),
        };
        let mut never_run = plan.clone();
        never_run.instance_uid = Uuid::from_u128(6);
        never_run.tenant_uid = None;
        never_run.last_session = None;
        vec![plan, never_run]
    }

    fn objects() -> Vec<PlanObject> {
        let object = PlanObject {
            instance_uid: Uuid::from_u128(7),
            plan_uid: Uuid::from_u128(1),
            name: "vm-1".into(),
            host_name: String::new(),
            folder_name: "Tier 1".into(),
            path: "esx/vm-1".into(),
            backup_server_uid: Uuid::from_u128(3),
            restore_session: Some(RestoreSession {
                instance_uid: Uuid::from_u128(8),
                backup_status: BackupStatus::Failed,
                restore_point_uid: None,
                restore_point_date_time: Some(at("2026-11-27T08:00:00Z")),
                start_date_time: at("2026-11-27T09:59:00Z"),
                end_date_time: None,
            }),
        };
        let mut untouched = object.clone();
        untouched.restore_session = None;
        vec![object, untouched]
    }

    /// What the body is by definition: every item through `to_wire` and `project`.
    fn through_values<T: Serialize>(
        items: &[T],
        total: u64,
        offset: u32,
        version: ClientVersion,
        selection: &Selection,
    ) -> Value {
        let data: Vec<Value> = items
            .iter()
            .map(|item| selection.project(to_wire(item, version).unwrap()))
            .collect();
        json!({ "data": data, "meta": { "pagingInfo": { "total": total, "count": items.len(), "offset": offset } } })
    }

    fn check<T: Serialize>(items: &[T], catalog: &Catalog) {
        for version in [ClientVersion::OLDEST, ClientVersion::NEWEST] {
            for select in [None, Some("[{\"propertyPath\":\"name\"}]")] {
                let selection = Selection::parse(select, catalog, version).unwrap();
                let body = page_body(items, 40, 20, version, &selection).unwrap();
                let written: Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(
                    written,
                    through_values(items, 40, 20, version, &selection),
                    "{version} {select:?}"
                );
                // Byte for byte too, key order included.
                assert_eq!(
                    body,
                    serde_json::to_vec(&through_values(items, 40, 20, version, &selection))
                        .unwrap()
                );
                let single = single_body(&items[0], version, &selection).unwrap();
                let expected =
                    json!({ "data": selection.project(to_wire(&items[0], version).unwrap()) });
                assert_eq!(single, serde_json::to_vec(&expected).unwrap());
            }
        }
    }

    #[test]
    fn writing_items_directly_equals_the_value_path() {
        check(&plans(), &standby_store::catalog::PLAN_CATALOG);
        check(&objects(), &standby_store::catalog::OBJECT_CATALOG);
    }
}
