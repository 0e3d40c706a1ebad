//! `/api/docs`: the API explorer, Swagger UI on `/api/v3/openapi.json`, served from files
//! compiled into the binary (`assets/`), so it works on a site with no internet access.
//!
//! The page loads nothing from elsewhere, and its Content-Security-Policy says so: scripts and
//! connections only to this origin (Swagger UI needs inline styles and `data:` images).

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::AppState;

const PAGE: &str = include_str!("../assets/docs/index.html");
const EXPLORER_JS: &str = include_str!("../assets/docs/explorer.js");
const SWAGGER_JS: &str = include_str!("../assets/swagger-ui/swagger-ui-bundle.js");
const SWAGGER_CSS: &str = include_str!("../assets/swagger-ui/swagger-ui.css");

const POLICY: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Path, body and content type of each file the explorer is made of.
const ASSETS: [(&str, &str, &str); 5] = [
    ("/api/docs", PAGE, "text/html; charset=utf-8"),
    ("/api/docs/", PAGE, "text/html; charset=utf-8"),
    (
        "/api/docs/explorer.js",
        EXPLORER_JS,
        "text/javascript; charset=utf-8",
    ),
    (
        "/api/docs/swagger-ui-bundle.js",
        SWAGGER_JS,
        "text/javascript; charset=utf-8",
    ),
    (
        "/api/docs/swagger-ui.css",
        SWAGGER_CSS,
        "text/css; charset=utf-8",
    ),
];

pub fn router() -> Router<AppState> {
    ASSETS
        .into_iter()
        .fold(Router::new(), |router, (path, body, content_type)| {
            router.route(path, get(move || async move { asset(body, content_type) }))
        })
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            // The assets change only with the binary; an hour keeps upgrades visible soon.
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}
