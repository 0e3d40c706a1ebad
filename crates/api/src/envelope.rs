//! Success envelopes: `{"data": ..., "meta": {"pagingInfo": ...}}` with `select` applied.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use standby_model::ClientVersion;
use standby_query::Selection;

use crate::error::ApiError;

/// A JSON body with the API's content type.
pub fn json_response(status: u16, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let status = axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::OK);
    let mut response = (status, bytes).into_response();
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
    let data = selection.project(to_wire(item, version)?);
    Ok(json_response(200, &json!({ "data": data })))
}

/// `{"data": [items], "meta": {"pagingInfo": {total, count, offset}}}` for lists.
pub fn page<T: Serialize>(
    items: &[T],
    total: u64,
    offset: u32,
    version: ClientVersion,
    selection: &Selection,
) -> Result<Response, ApiError> {
    let data = items
        .iter()
        .map(|item| to_wire(item, version).map(|value| selection.project(value)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(page_of_values(data, total, offset))
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
