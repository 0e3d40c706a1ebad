//! The agent's calls to the control plane (`/api/v3/extensions/agent/...`). The agent only
//! connects out; every answer is `{"data": ...}`, every error the API's error envelope.

use std::path::Path;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use standby_fleet::agent::{
    EnrollRequest, Enrolled, Heartbeat, HeartbeatAck, Inventory, InventoryApplied, Results,
};

use crate::AgentError;

/// Every call but the long poll.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// What a long poll may take beyond the wait it asked for.
const POLL_SLACK: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// 401: the credential (or the enrollment token) is refused.
    #[error("{0}")]
    Unauthorized(String),
    /// Another 4xx: the request itself is wrong; repeating it as is will not help.
    #[error("HTTP {status}: {message}")]
    Refused { status: u16, message: String },
    /// No answer, or a 5xx: try again later.
    #[error("{0}")]
    Unavailable(String),
}

#[derive(Clone)]
pub struct ControlPlane {
    http: reqwest::Client,
    /// `.../api/v3/extensions/agent`, without user info.
    agent_base: String,
    /// The URL as logs show it: no user info.
    shown: String,
    credential: Option<String>,
}

#[derive(serde::Deserialize)]
struct Envelope<T> {
    data: T,
}

impl ControlPlane {
    pub fn new(url: &str, ca_cert: Option<&Path>) -> Result<ControlPlane, AgentError> {
        let (root, had_user_info) = control_root(url)?;
        if had_user_info {
            tracing::info!(
                url = %root,
                "the control URL's user and password are not used: the agent authenticates with its own credential"
            );
        }
        Ok(ControlPlane {
            http: http_client(ca_cert)?,
            agent_base: format!("{root}/api/v3/extensions/agent"),
            shown: root,
            credential: None,
        })
    }

    pub fn with_credential(mut self, credential: String) -> ControlPlane {
        self.credential = Some(credential);
        self
    }

    pub fn shown_url(&self) -> &str {
        &self.shown
    }

    pub async fn enroll(&self, request: &EnrollRequest) -> Result<Enrolled, CallError> {
        self.call(Method::POST, "enroll", &[], Some(request), CALL_TIMEOUT)
            .await
    }

    pub async fn put_inventory(
        &self,
        inventory: &Inventory,
    ) -> Result<InventoryApplied, CallError> {
        self.call(Method::PUT, "inventory", &[], Some(inventory), CALL_TIMEOUT)
            .await
    }

    pub async fn heartbeat(&self, heartbeat: &Heartbeat) -> Result<HeartbeatAck, CallError> {
        self.call(
            Method::POST,
            "heartbeat",
            &[],
            Some(heartbeat),
            CALL_TIMEOUT,
        )
        .await
    }

    /// Long-polls for commands, each as JSON (one the agent cannot read must not hide the
    /// others).
    pub async fn commands(
        &self,
        wait: Duration,
        all: bool,
    ) -> Result<Vec<serde_json::Value>, CallError> {
        let query = [
            ("waitSeconds", wait.as_secs().to_string()),
            ("all", all.to_string()),
        ];
        self.call::<(), _>(Method::GET, "commands", &query, None, wait + POLL_SLACK)
            .await
    }

    pub async fn post_results(&self, results: &Results) -> Result<(), CallError> {
        self.call::<_, serde_json::Value>(Method::POST, "results", &[], Some(results), CALL_TIMEOUT)
            .await
            .map(|_| ())
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        route: &str,
        query: &[(&str, String)],
        body: Option<&B>,
        timeout: Duration,
    ) -> Result<T, CallError> {
        let mut request = self
            .http
            .request(method, format!("{}/{route}", self.agent_base))
            .timeout(timeout);
        if !query.is_empty() {
            request = request.query(query);
        }
        if let Some(credential) = &self.credential {
            request = request.bearer_auth(credential);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|error| CallError::Unavailable(describe(&error)))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|error| CallError::Unavailable(describe(&error)))?;
        if status.is_success() {
            return serde_json::from_str::<Envelope<T>>(&text)
                .map(|envelope| envelope.data)
                .map_err(|error| {
                    // A 2xx the agent cannot read: a proxy's page, or a control plane of
                    // another version. Retrying later is all the agent can do.
                    CallError::Unavailable(format!("{route}: unreadable answer ({error})"))
                });
        }
        let message = error_message(status, &text);
        Err(if status == StatusCode::UNAUTHORIZED {
            CallError::Unauthorized(message)
        } else if status.is_client_error() {
            CallError::Refused {
                status: status.as_u16(),
                message,
            }
        } else {
            CallError::Unavailable(format!("HTTP {}: {message}", status.as_u16()))
        })
    }
}

/// The messages of the API's error envelope, else the status.
fn error_message(status: StatusCode, text: &str) -> String {
    let body: serde_json::Value = serde_json::from_str(text).unwrap_or(serde_json::Value::Null);
    let messages: Vec<&str> = body
        .get("errors")
        .and_then(|errors| errors.as_array())
        .map(|errors| {
            errors
                .iter()
                .filter_map(|error| error.get("message").and_then(|m| m.as_str()))
                .collect()
        })
        .unwrap_or_default();
    if messages.is_empty() {
        status
            .canonical_reason()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("HTTP {}", status.as_u16()))
    } else {
        messages.join("; ")
    }
}

/// reqwest's errors name the URL; ours has no secrets in it, but the chain says more.
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `http://host:1280`, with `/`, `/api/v3` or user info removed; `true` if it had user info.
pub fn control_root(url: &str) -> Result<(String, bool), AgentError> {
    let mut parsed = reqwest::Url::parse(url.trim()).map_err(|error| {
        AgentError::Config(format!(
            "the control URL '{}' is not a URL: {error}",
            strip_user_info_text(url)
        ))
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(AgentError::Config(format!(
            "the control URL '{}' must start with http:// or https://",
            strip_user_info_text(url)
        )));
    }
    let had_user_info = !parsed.username().is_empty() || parsed.password().is_some();
    let _ = parsed.set_username("");
    let _ = parsed.set_password(None);
    parsed.set_query(None);
    parsed.set_fragment(None);
    let text = parsed.as_str().trim_end_matches('/').to_owned();
    let root = text.strip_suffix("/api/v3").unwrap_or(&text).to_owned();
    Ok((root, had_user_info))
}

/// For messages about a URL that did not parse: whatever precedes an `@` goes.
fn strip_user_info_text(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}{}", &url[..scheme + 3], &url[at + 1..])
        }
        (_, Some(at)) => url[at + 1..].to_owned(),
        _ => url.to_owned(),
    }
}

fn http_client(ca_cert: Option<&Path>) -> Result<reqwest::Client, AgentError> {
    // reqwest is built without a default crypto provider; the project's is ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("standby-agent/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = ca_cert {
        let pem = std::fs::read(path).map_err(|error| {
            AgentError::Config(format!("{} (--ca-cert): {error}", path.display()))
        })?;
        let certificate = reqwest::Certificate::from_pem(&pem).map_err(|error| {
            AgentError::Config(format!("{} (--ca-cert): {error}", path.display()))
        })?;
        builder = builder.add_root_certificate(certificate);
    }
    builder
        .build()
        .map_err(|error| AgentError::Http(format!("setting up HTTP: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_control_url_loses_its_user_info_and_api_suffix() {
        for url in [
            "http://127.0.0.1:1280",
            "http://127.0.0.1:1280/",
            "http://127.0.0.1:1280/api/v3",
            "http://127.0.0.1:1280/api/v3/",
        ] {
            assert_eq!(
                control_root(url).ok(),
                Some(("http://127.0.0.1:1280".to_owned(), false)),
                "{url}"
            );
        }
        let (root, had) = control_root("https://admin:s3cret@cp.example:1280/api/v3")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(root, "https://cp.example:1280");
        assert!(had);
        let refused = control_root("ftp://admin:s3cret@cp")
            .err()
            .map(|e| e.to_string());
        assert!(
            refused
                .as_deref()
                .is_some_and(|text| !text.contains("s3cret") && text.contains("http://")),
            "{refused:?}"
        );
        let refused = control_root("::admin:s3cret@nowhere")
            .err()
            .map(|e| e.to_string());
        assert!(refused.is_some_and(|text| !text.contains("s3cret")));
    }

    #[test]
    fn error_envelopes_give_their_messages() {
        let text = r#"{"errors":[{"message":"the token was used already","type":"auth","code":401}],"data":null,"meta":null}"#;
        assert_eq!(
            error_message(StatusCode::UNAUTHORIZED, text),
            "the token was used already"
        );
        assert_eq!(
            error_message(StatusCode::BAD_GATEWAY, "<html>"),
            "Bad Gateway"
        );
    }
}
