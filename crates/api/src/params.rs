//! Request inputs shared by the VSPC handlers: the query string, path UIDs and the client
//! version, each refused in the error envelope with the parameter named.

use axum::extract::FromRequestParts;
use axum::extract::rejection::PathRejection;
use axum::http::request::Parts;
use standby_model::{ClientVersion, VersionError};
use uuid::Uuid;

use crate::error::ApiError;

/// The decoded query string. Names match case-insensitively, as VSPC's do.
#[derive(Debug, Default)]
pub struct QueryParams {
    pairs: Vec<(String, String)>,
}

impl QueryParams {
    pub fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        let pairs = match raw {
            None => Vec::new(),
            Some(raw) => {
                serde_urlencoded::from_str::<Vec<(String, String)>>(raw).map_err(|_| {
                    ApiError::bad_parameter("query", "The query string could not be decoded.")
                })?
            }
        };
        Ok(QueryParams { pairs })
    }

    /// Every parameter with its values, as VSPC's `AsyncActionInfo.queryParameters` shows them.
    pub fn grouped(&self) -> std::collections::BTreeMap<String, Vec<String>> {
        let mut grouped = std::collections::BTreeMap::<String, Vec<String>>::new();
        for (key, value) in &self.pairs {
            grouped.entry(key.clone()).or_default().push(value.clone());
        }
        grouped
    }

    /// `limit` and `offset`, bounded by the server's page-size cap.
    pub fn paging(&self, max_page_size: u32) -> Result<standby_query::Paging, ApiError> {
        Ok(standby_query::Paging::parse(
            self.get("limit"),
            self.get("offset"),
            max_page_size,
        )?)
    }

    /// Every value of a repeated parameter, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .collect()
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// A UID from the path; a malformed one is a 400 naming the parameter.
pub fn path_uid(
    parameter: &str,
    path: Result<axum::extract::Path<String>, PathRejection>,
) -> Result<Uuid, ApiError> {
    let text = path
        .map_err(|_| {
            ApiError::bad_parameter(parameter, format!("The {parameter} is not a valid UUID."))
        })?
        .0;
    Uuid::parse_str(text.trim())
        .map_err(|_| ApiError::bad_parameter(parameter, format!("'{text}' is not a valid UUID.")))
}

/// The API version negotiated from `X-Client-Version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version(pub ClientVersion);

impl Version {
    pub fn from_headers(headers: &axum::http::HeaderMap) -> Result<Self, ApiError> {
        let header = match headers.get("x-client-version") {
            None => None,
            Some(value) => Some(value.to_str().map_err(|_| {
                ApiError::bad_parameter("X-Client-Version", "The version is not text.")
            })?),
        };
        ClientVersion::negotiate(header)
            .map(Version)
            .map_err(|error| match error {
                VersionError::Malformed(_) | VersionError::Unsupported(_) => {
                    ApiError::bad_parameter("X-Client-Version", error.to_string())
                }
            })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Version {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Version::from_headers(&parts.headers)
    }
}

/// A JSON body that must be an object: sent as JSON, parsed, an object, and (when `known` is
/// given) naming no other property. Each refusal is a 400 (415 for another media type) saying
/// what is wrong, with the property named.
pub fn json_object(
    headers: &axum::http::HeaderMap,
    body: &[u8],
    known: Option<&[&str]>,
) -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
    crate::vspc::require_json(headers)?;
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_body(format!("The request body is not valid JSON: {e}.")))?;
    let serde_json::Value::Object(object) = value else {
        return Err(ApiError::bad_body(
            "The request body must be a JSON object.",
        ));
    };
    if let Some(known) = known
        && let Some(unknown) = object.keys().find(|key| !known.contains(&key.as_str()))
    {
        return Err(ApiError::bad_property(
            unknown,
            format!(
                "Unknown property '{unknown}'; this body takes {}.",
                known.join(", ")
            ),
        ));
    }
    Ok(object)
}

/// Request and response bodies are bounded; a JSON Patch or a page is far smaller.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The raw request body; a body over the limit (or one that cannot be read) is refused in the
/// error envelope rather than with the framework's plain-text rejection.
pub struct Body(pub axum::body::Bytes);

impl<S: Send + Sync> axum::extract::FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(
        request: axum::extract::Request,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        // Refuse an announced oversized body before reading any of it.
        let announced = request
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if announced.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
            return Err(ApiError::too_large(format!(
                "The request body is larger than {} bytes.",
                MAX_BODY_BYTES
            )));
        }
        match axum::body::Bytes::from_request(request, state).await {
            Ok(bytes) => Ok(Body(bytes)),
            Err(rejection) if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::too_large(format!(
                    "The request body is larger than {} bytes.",
                    MAX_BODY_BYTES
                )))
            }
            Err(rejection) => Err(ApiError::bad_body(format!(
                "The request body could not be read: {rejection}."
            ))),
        }
    }
}
