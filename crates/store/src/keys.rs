//! The derived columns stored beside each free-text property (see the migration's header).

use standby_query::collate::{fold, natural_key};

/// `(value, ignorecase key, lexicographic key)` for one text property.
pub(crate) fn text_keys(value: &str) -> (String, String, String) {
    (value.to_owned(), fold(value), natural_key(value))
}
