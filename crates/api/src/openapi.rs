//! `GET /api/v3/openapi.json`: the OpenAPI document of what Standby serves under `/api/v3`.
//!
//! It is the contract's VSPC model (`openapi/vspc-failover-plans.openapi.json`, a copy of
//! `shared/contract/`) with Standby's extensions (`openapi/extensions.json`) merged in, less the
//! one contract operation Standby does not serve (`PUT /asyncActions/{actionId}/requestData`).
//! A black-box test calls every documented operation to keep the document and the router in step.

use std::sync::OnceLock;

use axum::response::Response;
use serde_json::{Value, json};

use crate::envelope::json_response;

const VSPC: &str = include_str!("../openapi/vspc-failover-plans.openapi.json");
const EXTENSIONS: &str = include_str!("../openapi/extensions.json");
/// Declared by the contract, not served (yet).
const NOT_SERVED: [&str; 1] = ["/asyncActions/{actionId}/requestData"];

fn merge(vspc: &str, extensions: &str) -> Result<Value, serde_json::Error> {
    let mut document: Value = serde_json::from_str(vspc)?;
    let extensions: Value = serde_json::from_str(extensions)?;
    document["info"]["title"] =
        json!("Standby: VSPC REST API v3 Backup Server Failover Plans, with Standby extensions");
    document["info"]["description"] = json!(
        "Standby's API: the Backup Server Failover Plans section of the Veeam Service Provider \
         Console REST API v3 (client version 3.6.1), wire-compatible, plus Standby's extensions \
         (restore points, start previews, run history). Log in with Authorize (the password \
         grant on /token) or paste an access token or API key as a bearer. filter, sort and \
         select carry URL-encoded JSON text. Outside /api/v3: /healthz, /readyz, /metrics \
         (Prometheus) and this explorer at /api/docs."
    );
    document["servers"] = json!([{ "url": "/api/v3" }]);
    if let Some(paths) = document["paths"].as_object_mut() {
        for path in NOT_SERVED {
            paths.remove(path);
        }
        if let Some(added) = extensions["paths"].as_object() {
            paths.extend(added.clone());
        }
    }
    // The contract declares no security scheme (VSPC describes bearer auth only in prose). Saying
    // it here lets generic tools and the explorer authenticate: the password grant on /token,
    // or a bearer (an access token or an API key).
    document["components"]["securitySchemes"] = json!({
        "password": {
            "type": "oauth2",
            "description": "Log in with a user name and password (the OAuth2 password grant on /token).",
            "flows": {"password": {"tokenUrl": "/api/v3/token", "scopes": {}}}
        },
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "An access token from /token, or an API key."
        }
    });
    // (The contract already marks /token as needing none.)
    document["security"] = json!([{"password": []}, {"bearer": []}]);
    // What Standby validates, said in the document: the version header's form, and /token's 429.
    document["components"]["parameters"]["XClientVersion"]["schema"]["pattern"] =
        json!(standby_model::ClientVersion::HEADER_PATTERN);
    if let Some(responses) = document["paths"]["/token"]["post"]["responses"].as_object_mut() {
        responses.insert(
            "429".into(),
            json!({"description": "Too many failed logins for this user name or address; see the Retry-After header.",
                   "content": {"application/json": {"schema": {"$ref": "#/components/schemas/OAuth2Error"}}}}),
        );
    }
    if let (Some(schemas), Some(added)) = (
        document["components"]["schemas"].as_object_mut(),
        extensions["schemas"].as_object(),
    ) {
        schemas.extend(added.clone());
    }
    if let (Some(tags), Some(added)) = (
        document["tags"].as_array_mut(),
        extensions["tags"].as_array(),
    ) {
        tags.extend(added.iter().cloned());
    }
    Ok(document)
}

/// The merged document, built once.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    // Both inputs are compiled in and checked by the test below; an empty object is unreachable.
    DOCUMENT.get_or_init(|| merge(VSPC, EXTENSIONS).unwrap_or_else(|_| json!({})))
}

pub async fn serve() -> Response {
    json_response(200, document())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_merges() {
        let document = merge(VSPC, EXTENSIONS).unwrap();
        let paths = document["paths"].as_object().unwrap();
        assert!(paths.contains_key("/infrastructure/backupServers/failoverplans"));
        assert!(paths.contains_key("/extensions/failoverplans/{planUid}/preview"));
        assert!(!paths.contains_key("/asyncActions/{actionId}/requestData"));
        assert!(document["components"]["schemas"]["StandbyStartPreview"].is_object());
        assert!(
            document["components"]["parameters"]["XClientVersion"]["schema"]["pattern"].is_string()
        );
        assert!(document["paths"]["/token"]["post"]["responses"]["429"].is_object());
        // Every $ref points at something that exists.
        let text = document.to_string();
        for reference in text.split("\"$ref\":\"#/").skip(1) {
            let pointer = format!("/{}", &reference[..reference.find('"').unwrap()]);
            assert!(
                document.pointer(&pointer).is_some(),
                "dangling $ref {pointer}"
            );
        }
    }
}
