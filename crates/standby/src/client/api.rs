//! HTTP to a running Standby server: bearer auth from the saved session (refreshed when it runs
//! out) or from `STANDBY_API_KEY`, and VSPC error envelopes turned into `ClientError`s.

use std::sync::Mutex;
use std::time::Duration;

use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::Value;
use uuid::Uuid;

use super::ClientError;
use super::credentials::{CredentialStore, Credentials};

/// Refresh this long before the access token expires, so a request does not race its expiry.
const EXPIRY_MARGIN_SECONDS: i64 = 60;

/// How a request is authorized.
enum Auth {
    /// `standby login`'s saved session.
    Session {
        store: CredentialStore,
        credentials: Mutex<Credentials>,
    },
    /// A long-lived API key from the environment; nothing is saved.
    ApiKey(String),
}

pub struct Api {
    http: reqwest::Client,
    /// `.../api/v3`.
    base: String,
    auth: Auth,
}

/// What a start or undo answered: the async action tracking it, when the server made one.
pub struct Accepted {
    pub action_id: Option<String>,
}

impl Api {
    /// The client for the saved session, or for `STANDBY_URL` + `STANDBY_API_KEY` when both are
    /// set (for scripts that should not hold a refresh token).
    pub fn connect(store: CredentialStore) -> Result<Api, ClientError> {
        let url = std::env::var("STANDBY_URL").ok().filter(|v| !v.is_empty());
        let key = std::env::var("STANDBY_API_KEY")
            .ok()
            .filter(|v| !v.is_empty());
        if let (Some(url), Some(key)) = (url, key) {
            return Ok(Api {
                http: http_client(None)?,
                base: api_base(&url)?,
                auth: Auth::ApiKey(key),
            });
        }
        let credentials = store.load()?;
        Ok(Api {
            http: http_client(credentials.ca_cert.as_deref())?,
            base: api_base(&credentials.url)?,
            auth: Auth::Session {
                store,
                credentials: Mutex::new(credentials),
            },
        })
    }

    /// `POST /token` with the password grant; the new session is saved by the caller.
    pub async fn login(
        url: &str,
        user: &str,
        password: &str,
        ca_cert: Option<&std::path::Path>,
    ) -> Result<Credentials, ClientError> {
        let http = http_client(ca_cert)?;
        let base = api_base(url)?;
        let form = [
            ("grant_type", "password"),
            ("username", user),
            ("password", password),
        ];
        let tokens = token_request(&http, &base, &form).await?;
        Ok(Credentials {
            url: base.trim_end_matches("/api/v3").to_owned(),
            user: user.to_owned(),
            refresh_token: tokens.refresh_token,
            access_token: tokens.access_token,
            access_expires_at: tokens.expires_at,
            ca_cert: ca_cert.map(std::path::Path::to_path_buf),
        })
    }

    /// A GET returning the response body.
    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, ClientError> {
        let (_, body) = self.send(Method::GET, path, query, None, None).await?;
        Ok(body)
    }

    /// A POST or PUT of a JSON body (a drill, targets), returning the response body. Not
    /// retried: these create or replace, and a lost answer is checked by reading back.
    pub async fn send_json(
        &self,
        method: Method,
        path: &str,
        body: &Value,
    ) -> Result<Value, ClientError> {
        let (_, body) = self.send(method, path, &[], None, Some(body)).await?;
        Ok(body)
    }

    /// A start or undo, sent with an `X-Request-id` so that a retry after a lost answer cannot
    /// start a second run: the server replays its first answer.
    pub async fn post_action(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Accepted, ClientError> {
        let request_id = Uuid::new_v4().to_string();
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self
                .send(Method::POST, path, query, Some(&request_id), None)
                .await
            {
                Ok((headers, _)) => {
                    let action_id = headers
                        .get(reqwest::header::LOCATION)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|location| location.rsplit('/').next())
                        .map(str::to_owned);
                    return Ok(Accepted { action_id });
                }
                Err(ClientError::Transport(_)) if attempt < 3 => {
                    tokio::time::sleep(Duration::from_millis(500 * attempt)).await;
                }
                Err(error) => return Err(error),
            }
        }
    }

    pub async fn delete(&self, path: &str) -> Result<Value, ClientError> {
        self.send(Method::DELETE, path, &[], None, None)
            .await
            .map(|(_, body)| body)
    }

    /// Opens a server-sent event stream: a GET that answers `text/event-stream`, left open (no
    /// overall timeout: the caller watches for silence). `Ok(None)` when the server has no such
    /// route (an older Standby, or VSPC itself), so the caller can fall back to polling.
    pub async fn open_events(
        &self,
        path: &str,
        query: &[(&str, String)],
        last_event_id: Option<&str>,
    ) -> Result<Option<reqwest::Response>, ClientError> {
        let mut refreshed = false;
        loop {
            let bearer = self.bearer(refreshed).await?;
            let mut request = self
                .http
                .get(format!("{}{path}", self.base))
                .bearer_auth(bearer)
                .header("X-Client-Version", "3.6.1")
                .header(reqwest::header::ACCEPT, "text/event-stream")
                // A run may take hours; silence is detected by the reader instead.
                .timeout(Duration::from_secs(7 * 24 * 3600))
                .query(query);
            if let Some(id) = last_event_id {
                request = request.header("Last-Event-ID", id);
            }
            let response = request.send().await.map_err(transport)?;
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED && !refreshed && self.can_refresh() {
                refreshed = true;
                continue;
            }
            // No such route (or a plan gone meanwhile): polling says which, as it always did.
            if status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED {
                return Ok(None);
            }
            if !status.is_success() {
                let text = response.text().await.map_err(transport)?;
                return Err(api_error(status, &text));
            }
            return Ok(Some(response));
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        request_id: Option<&str>,
        json: Option<&Value>,
    ) -> Result<(reqwest::header::HeaderMap, Value), ClientError> {
        let mut refreshed = false;
        loop {
            let bearer = self.bearer(refreshed).await?;
            let mut request: RequestBuilder = self
                .http
                .request(method.clone(), format!("{}{path}", self.base))
                .bearer_auth(bearer)
                .header("X-Client-Version", "3.6.1")
                .query(query);
            if let Some(id) = request_id {
                request = request.header("X-Request-id", id);
            }
            if let Some(json) = json {
                request = request.json(json);
            }
            let response = request.send().await.map_err(transport)?;
            let status = response.status();
            let headers = response.headers().clone();
            let text = response.text().await.map_err(transport)?;
            // An access token can be revoked early (a password change, a server-side logout);
            // one refresh and retry covers that before reporting the 401.
            if status == StatusCode::UNAUTHORIZED && !refreshed && self.can_refresh() {
                refreshed = true;
                continue;
            }
            if !status.is_success() {
                return Err(api_error(status, &text));
            }
            let body = if text.trim().is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).map_err(|e| {
                    ClientError::Transport(format!(
                        "the server answered {status} with invalid JSON: {e}"
                    ))
                })?
            };
            return Ok((headers, body));
        }
    }

    fn can_refresh(&self) -> bool {
        matches!(self.auth, Auth::Session { .. })
    }

    /// The bearer for the next request: the cached access token, refreshed first when it is
    /// about to run out (or `force`d after a 401).
    async fn bearer(&self, force: bool) -> Result<String, ClientError> {
        let (store, credentials) = match &self.auth {
            Auth::ApiKey(key) => return Ok(key.clone()),
            Auth::Session { store, credentials } => (store, credentials),
        };
        let now = now_seconds();
        let current = lock(credentials).clone();
        if !force && current.access_expires_at - EXPIRY_MARGIN_SECONDS > now {
            return Ok(current.access_token);
        }
        // Another command may have refreshed while this one ran: re-read under the lock and
        // spend the refresh token only if it is still the one we hold.
        let _guard = store.lock_for_refresh()?;
        let saved = store.load()?;
        if saved.refresh_token != current.refresh_token
            && saved.access_expires_at - EXPIRY_MARGIN_SECONDS > now
        {
            *lock(credentials) = saved.clone();
            return Ok(saved.access_token);
        }
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", saved.refresh_token.as_str()),
        ];
        let tokens = match token_request(&self.http, &self.base, &form).await {
            Ok(tokens) => tokens,
            Err(ClientError::Api { status, .. }) if status == 400 || status == 401 => {
                return Err(ClientError::NotLoggedIn(format!(
                    "the saved session for {} at {} has expired or was revoked: run `standby login` again",
                    saved.user, saved.url
                )));
            }
            Err(error) => return Err(error),
        };
        let renewed = Credentials {
            refresh_token: tokens.refresh_token,
            access_token: tokens.access_token,
            access_expires_at: tokens.expires_at,
            ..saved
        };
        store.save(&renewed)?;
        let bearer = renewed.access_token.clone();
        *lock(credentials) = renewed;
        Ok(bearer)
    }
}

struct Tokens {
    access_token: String,
    refresh_token: String,
    expires_at: i64,
}

async fn token_request(
    http: &reqwest::Client,
    base: &str,
    form: &[(&str, &str)],
) -> Result<Tokens, ClientError> {
    let response = http
        .post(format!("{base}/token"))
        .form(form)
        .send()
        .await
        .map_err(transport)?;
    let status = response.status();
    let text = response.text().await.map_err(transport)?;
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if !status.is_success() {
        // /token answers in OAuth's format, not VSPC's envelope.
        let message = body["error_description"]
            .as_str()
            .or_else(|| body["errors"][0]["message"].as_str())
            .unwrap_or("the server refused the login")
            .to_owned();
        return Err(ClientError::Api {
            status: status.as_u16(),
            code: i64::from(status.as_u16()),
            message,
        });
    }
    let field = |name: &str| {
        body[name].as_str().map(str::to_owned).ok_or_else(|| {
            ClientError::Transport(format!(
                "the token answer has no {name}: is this a Standby or VSPC server?"
            ))
        })
    };
    Ok(Tokens {
        access_token: field("access_token")?,
        refresh_token: field("refresh_token")?,
        expires_at: now_seconds() + body["expires_in"].as_i64().unwrap_or(300),
    })
}

fn http_client(ca_cert: Option<&std::path::Path>) -> Result<reqwest::Client, ClientError> {
    // reqwest is built without a default crypto provider; the server's is ring, so use it too.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(120))
        .user_agent(concat!("standby-cli/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = ca_cert {
        let pem = std::fs::read(path)
            .map_err(|e| ClientError::Local(format!("{}: {e}", path.display())))?;
        let certificate = reqwest::Certificate::from_pem(&pem)
            .map_err(|e| ClientError::Local(format!("{}: {e}", path.display())))?;
        builder = builder.add_root_certificate(certificate);
    }
    builder
        .build()
        .map_err(|e| ClientError::Local(format!("setting up HTTP: {e}")))
}

/// `http://host:1280`, `http://host:1280/` and `http://host:1280/api/v3` all name one server.
pub fn api_base(url: &str) -> Result<String, ClientError> {
    let trimmed = url.trim().trim_end_matches('/');
    let parsed = reqwest::Url::parse(trimmed)
        .map_err(|e| ClientError::Usage(format!("'{url}' is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ClientError::Usage(format!(
            "'{url}' must start with http:// or https://"
        )));
    }
    let root = trimmed.strip_suffix("/api/v3").unwrap_or(trimmed);
    Ok(format!("{root}/api/v3"))
}

fn api_error(status: StatusCode, text: &str) -> ClientError {
    let body: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let first = &body["errors"][0];
    let code = first["code"].as_i64().unwrap_or(i64::from(status.as_u16()));
    let mut message = first["message"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| format!("the server answered {status}"));
    if let Some(parameter) = first["parameterName"].as_str() {
        message = format!("{message} (parameter {parameter})");
    }
    if let Some(after) = first["retryAfter"].as_i64() {
        message = format!("{message} (retry after {after} s)");
    }
    ClientError::Api {
        status: status.as_u16(),
        code,
        message,
    }
}

fn transport(error: reqwest::Error) -> ClientError {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        message = format!("{message}: {cause}");
        source = cause.source();
    }
    ClientError::Transport(message)
}

fn lock(credentials: &Mutex<Credentials>) -> std::sync::MutexGuard<'_, Credentials> {
    credentials
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn now_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_normalize() {
        for url in [
            "http://h:1280",
            "http://h:1280/",
            "http://h:1280/api/v3",
            "http://h:1280/api/v3/",
        ] {
            assert_eq!(api_base(url).unwrap(), "http://h:1280/api/v3");
        }
        assert!(matches!(api_base("h:1280x"), Err(ClientError::Usage(_))));
        assert!(matches!(api_base("ftp://h"), Err(ClientError::Usage(_))));
    }

    #[test]
    fn error_envelopes_become_messages() {
        let error = api_error(
            StatusCode::BAD_REQUEST,
            r#"{"errors":[{"message":"Failover to a future date cannot be performed.","type":"logical","code":9000,"parameterName":"dateTime"}]}"#,
        );
        match error {
            ClientError::Api {
                status,
                code,
                message,
            } => {
                assert_eq!((status, code), (400, 9000));
                assert!(message.ends_with("(parameter dateTime)"));
            }
            other => panic!("{other:?}"),
        }
        // A proxy's HTML page still gives a readable error.
        assert!(matches!(
            api_error(StatusCode::BAD_GATEWAY, "<html>"),
            ClientError::Api { status: 502, .. }
        ));
    }
}
