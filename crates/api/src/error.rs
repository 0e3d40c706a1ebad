//! The VSPC error envelope: `{"errors":[{message, type, code, ...}]}`. Client errors keep their
//! status; everything else leaves as HTTP 520 with `type: unspecified, code: 500`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use standby_query::QueryError;
use standby_store::StoreError;

/// VSPC's status for every server-side failure.
pub const SERVER_ERROR: u16 = 520;

/// `ResponseErrorType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ErrorType {
    Unspecified,
    Transport,
    Logical,
    RetryableLogical,
    Security,
}

/// One `ResponseError`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResponseError {
    pub message: String,
    #[serde(rename = "type")]
    pub error_type: ErrorType,
    pub code: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub property_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_json_patch: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

/// A failed request: the HTTP status and the error it reports.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    /// Boxed: errors travel in every `Result` of the handlers, which should stay small.
    pub error: Box<ResponseError>,
}

impl ApiError {
    fn new(status: u16, error_type: ErrorType, code: i32, message: impl Into<String>) -> Self {
        ApiError {
            status,
            error: Box::new(ResponseError {
                message: message.into(),
                error_type,
                code,
                parameter_name: None,
                property_name: None,
                failed_json_patch: None,
                retry_after: None,
            }),
        }
    }

    /// 400 naming the query, path or header parameter at fault.
    pub fn bad_parameter(parameter: &str, message: impl Into<String>) -> Self {
        let mut error = Self::new(400, ErrorType::Logical, 400, message);
        error.error.parameter_name = Some(parameter.to_owned());
        error
    }

    /// 400 about the request body.
    pub fn bad_body(message: impl Into<String>) -> Self {
        Self::new(400, ErrorType::Logical, 400, message)
    }

    /// 400 about one property of the request body, named in `propertyName`.
    pub fn bad_property(property: &str, message: impl Into<String>) -> Self {
        let mut error = Self::bad_body(message);
        error.error.property_name = Some(property.to_owned());
        error
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(401, ErrorType::Security, 401, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, ErrorType::Security, 403, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, ErrorType::Logical, 404, message)
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            ErrorType::Logical,
            405,
            "The HTTP method is not allowed for this resource.",
        )
    }

    /// 409, code 1000: the operation cannot be done right now (the message says why).
    pub fn cannot_now(message: impl Into<String>) -> Self {
        Self::new(409, ErrorType::Logical, 1000, message)
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(413, ErrorType::Logical, 413, message)
    }

    pub fn uri_too_long(message: impl Into<String>) -> Self {
        Self::new(414, ErrorType::Transport, 414, message)
    }

    pub fn headers_too_large(message: impl Into<String>) -> Self {
        Self::new(431, ErrorType::Transport, 431, message)
    }

    /// 429: throttled (`retryAfter` is set by the caller).
    pub fn too_many(message: impl Into<String>) -> Self {
        Self::new(429, ErrorType::Transport, 429, message)
    }

    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(415, ErrorType::Logical, 415, message)
    }

    /// 400, code 1001, echoing the JSON Patch operation that could not be applied, when it has
    /// the shape the contract's `JsonPatch` schema gives `failedJsonPatch`: an operation too
    /// malformed to have it (an unknown `op`, a path that is not text) is named by the message
    /// alone, so the error itself always matches the schema (schemathesis found the echo of an
    /// invalid `op` breaking it).
    pub fn patch_failed(operation: Value, message: impl Into<String>) -> Self {
        let mut error = Self::new(400, ErrorType::Logical, 1001, message);
        error.error.failed_json_patch = schema_shaped_patch(operation);
        error
    }

    /// 400, code 9000: failover to a future point in time.
    pub fn future_date() -> Self {
        let mut error = Self::new(
            400,
            ErrorType::Logical,
            9000,
            "Failover to a future date cannot be performed.",
        );
        error.error.parameter_name = Some("dateTime".into());
        error
    }

    /// 520 for anything that went wrong on our side. The detail is logged, not sent.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "request failed on the server");
        Self::new(
            SERVER_ERROR,
            ErrorType::Unspecified,
            500,
            "The server could not complete the request.",
        )
    }
}

impl From<QueryError> for ApiError {
    fn from(error: QueryError) -> Self {
        ApiError::bad_parameter(error.parameter, error.message)
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Refused(refused) => ApiError::cannot_now(refused.describe()),
            StoreError::Conflict(message) => ApiError::cannot_now(message),
            other => ApiError::internal(other),
        }
    }
}

#[derive(Serialize)]
struct ErrorResponse<'a> {
    errors: [&'a ResponseError; 1],
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&ErrorResponse {
            errors: [&*self.error],
        })
        .unwrap_or_default();
        let mut response = (status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        if let Some(value) = self
            .error
            .retry_after
            .and_then(|seconds| HeaderValue::from_str(&seconds.to_string()).ok())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The operation as `JsonPatch` allows it (`op` one of six, `path` text, `from` text or null,
/// `value` present: a `remove` gets `"value": null`), or nothing.
pub(crate) fn schema_shaped_patch(operation: Value) -> Option<Value> {
    const OPS: [&str; 6] = ["add", "replace", "test", "remove", "move", "copy"];
    let Value::Object(mut object) = operation else {
        return None;
    };
    let op_ok = object
        .get("op")
        .and_then(Value::as_str)
        .is_some_and(|op| OPS.contains(&op));
    let path_ok = object.get("path").is_some_and(Value::is_string);
    let from_ok = object
        .get("from")
        .is_none_or(|from| from.is_string() || from.is_null());
    if !(op_ok && path_ok && from_ok) {
        return None;
    }
    object.entry("value").or_insert(Value::Null);
    Some(Value::Object(object))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn failed_patches_are_echoed_only_in_the_schemas_shape() {
        let echo = |op: Value| ApiError::patch_failed(op, "no").error.failed_json_patch;
        assert_eq!(
            echo(json!({"op": "replace", "path": "/name", "value": 1})),
            Some(json!({"op": "replace", "path": "/name", "value": 1}))
        );
        assert_eq!(
            echo(json!({"op": "remove", "path": "/name"})),
            Some(json!({"op": "remove", "path": "/name", "value": null}))
        );
        for malformed in [
            json!({"op": "frobnicate", "path": "/name", "value": 1}),
            json!({"op": "replace", "path": 7, "value": 1}),
            json!({"op": "move", "path": "/a", "from": [], "value": 1}),
            json!(["not", "an", "object"]),
        ] {
            assert_eq!(echo(malformed.clone()), None, "{malformed}");
        }
    }
}
