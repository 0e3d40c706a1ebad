//! What the templates show: the page frame, times (ISO 8601 in UTC, which the script can turn to
//! local time with its offset), durations, statuses (a word and a symbol, never colour alone), and
//! the error page.

use askama::Template;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use standby_api::error::ApiError;
use standby_model::Timestamp;

/// The frame of every signed-in page: title, section, who is signed in and the form token.
#[derive(Debug, Clone)]
pub struct Page {
    pub title: String,
    /// The navigation entry to mark current.
    pub section: &'static str,
    pub user: String,
    pub role: String,
    pub read_only: bool,
    pub admin: bool,
    pub csrf: String,
}

/// Renders a template as an HTML answer with this status.
pub fn render(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html,
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "a console page could not be rendered");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "The page could not be rendered.",
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub csrf: String,
    pub next: String,
    pub user: String,
    pub message: Option<String>,
}

/// The second, explicit step of a production start or undo: what will happen, and "Confirm".
#[derive(Template)]
#[template(path = "confirm.html")]
pub struct Confirmation {
    pub page: Page,
    pub heading: String,
    pub consequence: String,
    pub columns: Vec<&'static str>,
    pub rows: Vec<Vec<String>>,
    /// Where "Confirm" posts, with these fields and `confirm=yes`.
    pub action_url: String,
    pub hidden: Vec<(String, String)>,
    pub cancel_url: String,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    status: u16,
    reason: String,
    message: String,
}

/// A page that says what went wrong, with the status a client should see.
pub fn error_page(status: StatusCode, message: &str) -> Response {
    let page = ErrorPage {
        status: status.as_u16(),
        reason: status.canonical_reason().unwrap_or("Error").to_owned(),
        message: message.to_owned(),
    };
    render(status, &page)
}

/// Why a console request failed: shown to the person as the error page, with its status. Kept
/// small (a status and a message) so that every handler's `Result` stays cheap to move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageError {
    pub status: StatusCode,
    pub message: String,
}

impl PageError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> PageError {
        PageError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> PageError {
        PageError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> PageError {
        PageError::new(StatusCode::NOT_FOUND, message)
    }
}

impl From<ApiError> for PageError {
    fn from(error: ApiError) -> PageError {
        // The API answers server errors with VSPC's 520; a browser is told 500.
        let status = StatusCode::from_u16(error.status)
            .ok()
            .filter(|status| status.is_client_error())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::error!(message = %error.error.message, "console request failed");
        }
        PageError::new(status, error.error.message.clone())
    }
}

impl From<standby_store::StoreError> for PageError {
    fn from(error: standby_store::StoreError) -> PageError {
        ApiError::from(error).into()
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        error_page(self.status, &self.message)
    }
}

/// `2026-12-04T12:00:05Z`: ISO 8601, always with its zone.
pub fn iso(at: Timestamp) -> String {
    let at = at.to_datetime();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

pub fn iso_or_empty(at: Option<Timestamp>) -> String {
    at.map_or_else(String::new, iso)
}

/// Seconds between two instants.
pub fn seconds(start: Timestamp, end: Timestamp) -> f64 {
    standby_api::extensions::seconds_between(start, Some(end)).unwrap_or_default()
}

/// A UID from a path or a form, or a 400 naming what it should have been.
pub fn parse_uid(text: &str, what: &str) -> Result<uuid::Uuid, PageError> {
    uuid::Uuid::parse_str(text.trim())
        .map_err(|_| PageError::bad_request(format!("'{text}' is not a {what} UID.")))
}

/// `1 h 02 min`, `4 min 05 s`, `12.3 s`.
pub fn duration(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return String::new();
    }
    let whole = seconds.round() as u64;
    if whole >= 3600 {
        format!("{} h {:02} min", whole / 3600, (whole % 3600) / 60)
    } else if whole >= 60 {
        format!("{} min {:02} s", whole / 60, whole % 60)
    } else {
        format!("{seconds:.1} s")
    }
}

/// A status as a person reads it: the word, a symbol that does not depend on colour, and the
/// class that colours it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Status {
    pub word: String,
    pub symbol: &'static str,
    pub tone: &'static str,
}

pub fn status(word: &str) -> Status {
    let (symbol, tone) = match word {
        "Ready" => ("●", "ready"),
        "Success" | "Completed" | "succeed" => ("✔", "ok"),
        "Failed" | "UndoFailed" | "failed" => ("✖", "bad"),
        "Warning" => ("▲", "warn"),
        "InProgress" | "InUndoProgress" | "Running" | "running" => ("◐", "busy"),
        "canceled" => ("■", "muted"),
        _ => ("○", "muted"),
    };
    Status {
        word: word.to_owned(),
        symbol,
        tone,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_durations() {
        let at = Timestamp::parse("2026-12-04T12:00:05.123+01:00").unwrap();
        assert_eq!(iso(at), "2026-12-04T11:00:05Z");
        assert_eq!(duration(12.34), "12.3 s");
        assert_eq!(duration(65.0), "1 min 05 s");
        assert_eq!(duration(3725.0), "1 h 02 min");
        assert_eq!(duration(-1.0), "");
    }

    #[test]
    fn every_status_has_a_word_and_a_symbol() {
        for word in [
            "Ready",
            "InProgress",
            "InUndoProgress",
            "Success",
            "Completed",
            "Failed",
            "UndoFailed",
            "Unknown",
        ] {
            let shown = status(word);
            assert_eq!(shown.word, word);
            assert!(!shown.symbol.is_empty());
        }
        assert_ne!(status("Failed").symbol, status("Success").symbol);
    }
}
