//! The server's logs and the one metric taken from them.
//!
//! Logs go to standard error as text (a terminal) or JSON lines (`--log-format json`), filtered
//! by `RUST_LOG`. Separately, and whatever `RUST_LOG` says, every statement sqlx reports on
//! its `sqlx::query` target is timed into `standby_store_query_duration_seconds{statement}`:
//! sqlx already measures each statement, so the store needs no wrapper of its own.

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Registry;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogFormat;

pub fn init(format: LogFormat) {
    // PostgreSQL's notices ("relation ... already exists, skipping") are not news.
    const DEFAULT: &str = "info,sqlx::postgres::notice=warn";
    // `RUST_LOG` as `Targets`: a level and `target=level` directives, comma-separated (span and
    // field filters would need the regex engine in every build for no user of ours).
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => {
            directives.parse::<Targets>().unwrap_or_else(|error| {
                eprintln!("standby: RUST_LOG '{directives}' ignored ({error}); using {DEFAULT}");
                default_targets(DEFAULT)
            })
        }
        _ => default_targets(DEFAULT),
    };
    let logs: Box<dyn Layer<Registry> + Send + Sync> = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(logs.with_filter(filter))
        .with(
            StoreQueryMetrics.with_filter(Targets::new().with_target("sqlx::query", Level::DEBUG)),
        )
        .init();
}

fn default_targets(directives: &str) -> Targets {
    directives.parse().unwrap_or_default()
}

/// Records each finished statement's duration, labelled by its verb.
struct StoreQueryMetrics;

impl<S: Subscriber> Layer<S> for StoreQueryMetrics {
    fn on_event(&self, event: &Event<'_>, _context: Context<'_, S>) {
        let mut statement = StatementFields::default();
        event.record(&mut statement);
        if let Some(seconds) = statement.elapsed_seconds {
            metrics::histogram!("standby_store_query_duration_seconds", "statement" => statement.verb)
                .record(seconds);
        }
    }
}

#[derive(Default)]
struct StatementFields {
    elapsed_seconds: Option<f64>,
    verb: &'static str,
}

impl Visit for StatementFields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        if field.name() == "elapsed_secs" {
            self.elapsed_seconds = Some(value);
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "summary" {
            self.verb = verb(value);
        }
    }

    fn record_debug(&mut self, _field: &Field, _value: &dyn std::fmt::Debug) {}
}

/// The statement's first word, from a fixed set so the label cannot grow without bound.
fn verb(summary: &str) -> &'static str {
    let first = summary.split_whitespace().next().unwrap_or("");
    const VERBS: [&str; 8] = [
        "select", "insert", "update", "delete", "with", "begin", "commit", "rollback",
    ];
    VERBS
        .into_iter()
        .find(|verb| first.eq_ignore_ascii_case(verb))
        .unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_labelled_by_verb() {
        assert_eq!(verb("SELECT p.uid, p.name …"), "select");
        assert_eq!(verb("insert into plans"), "insert");
        assert_eq!(verb("PRAGMA foreign_keys = ON"), "other");
        assert_eq!(verb(""), "other");
    }
}
