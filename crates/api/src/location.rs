//! Absolute `Location` headers. Handlers answer with a path (`/api/v3/asyncActions/{id}`); this
//! layer, outside every API layer (the idempotency layer included), makes it absolute with the address the client used: `--public-url` when set
//! (a deployment behind a proxy), else the scheme this server speaks and the request's authority
//! (HTTP/2's `:authority`, HTTP/1.1's `Host`). A stored idempotent answer keeps the path, so a
//! replay through another address is made absolute afresh rather than pinned to the first one.

use std::str::FromStr;

use axum::extract::{Request, State};
use axum::http::uri::Authority;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::{ApiSettings, AppState};

/// Where the client reached this server: `scheme://authority[/prefix]`, no trailing slash. Only a
/// plain `host[:port]` is echoed back (no user info); anything else falls back to our own address.
/// Without `--public-url` the client's `Host` is trusted, as the issue asks and as HTTP servers do
/// for relative-to-absolute links; behind a proxy, set `--public-url`.
fn base_of(settings: &ApiSettings, request: &Request) -> String {
    if let Some(url) = &settings.public_url {
        return url.clone();
    }
    let scheme = if settings.tls { "https" } else { "http" };
    let from_host = || {
        let host = request.headers().get(header::HOST)?.to_str().ok()?;
        Authority::from_str(host).ok()
    };
    let authority = request
        .uri()
        .authority()
        .cloned()
        .or_else(from_host)
        .filter(|authority| !authority.as_str().contains('@'))
        .map_or_else(|| settings.own_authority.clone(), |a| a.to_string());
    format!("{scheme}://{authority}")
}

pub async fn absolute_locations(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let base = base_of(&state.settings, &request);
    let mut response = next.run(request).await;
    let relative = response
        .headers()
        .get(header::LOCATION)
        .and_then(|value| value.to_str().ok())
        .filter(|path| path.starts_with('/'))
        .map(str::to_owned);
    if let Some(path) = relative
        && let Ok(value) = HeaderValue::from_str(&format!("{base}{path}"))
    {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn request(uri: &str, host: Option<&str>) -> Request {
        let mut builder = Request::get(uri);
        if let Some(host) = host {
            builder = builder.header(header::HOST, host);
        }
        builder.body(Body::empty()).unwrap()
    }

    #[test]
    fn the_base_follows_the_request_unless_a_public_url_is_set() {
        let mut settings = ApiSettings::default();
        assert_eq!(
            base_of(&settings, &request("/x", Some("dr.example.com:8443"))),
            "http://dr.example.com:8443"
        );
        // HTTP/2: the authority is in the URI and there is no Host header.
        settings.tls = true;
        assert_eq!(
            base_of(&settings, &request("https://[::1]:1280/x", None)),
            "https://[::1]:1280"
        );
        assert_eq!(
            base_of(&settings, &request("/x", Some("evil.example@x"))),
            format!("https://{}", settings.own_authority)
        );
        assert_eq!(
            base_of(&settings, &request("http://user@evil.example/x", None)),
            format!("https://{}", settings.own_authority)
        );
        assert_eq!(
            base_of(&settings, &request("/x", None)),
            format!("https://{}", settings.own_authority)
        );
        settings.public_url = Some("https://standby.example.com/dr".into());
        assert_eq!(
            base_of(&settings, &request("/x", Some("127.0.0.1:1280"))),
            "https://standby.example.com/dr"
        );
    }
}
