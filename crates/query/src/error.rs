//! Query errors name the query parameter at fault, as VSPC's `parameterName` does.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct QueryError {
    /// `filter`, `sort`, `select`, `limit` or `offset`.
    pub parameter: &'static str,
    pub message: String,
}

impl QueryError {
    pub fn new(parameter: &'static str, message: impl Into<String>) -> Self {
        QueryError {
            parameter,
            message: message.into(),
        }
    }
}
