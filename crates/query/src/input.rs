//! What `filter`, `sort` and `select` share: reading the JSON list, reading an expression's
//! fields the way VSPC clients send them, and resolving a property path.

use serde_json::{Map, Value};
use standby_model::ClientVersion;

use crate::catalog::{Catalog, Property};
use crate::error::QueryError;

/// The parameter's JSON list of expressions. A bare object (old VAC documents) is a list of one;
/// `null` is an empty list.
pub(crate) fn expressions(text: &str, parameter: &'static str) -> Result<Vec<Value>, QueryError> {
    let json: Value = serde_json::from_str(text).map_err(|e| {
        QueryError::new(
            parameter,
            format!("The {parameter} is not valid JSON: {e}."),
        )
    })?;
    match json {
        Value::Array(items) => Ok(items),
        object @ Value::Object(_) => Ok(vec![object]),
        Value::Null => Ok(Vec::new()),
        _ => Err(QueryError::new(
            parameter,
            format!("The {parameter} must be a JSON array of {parameter} expressions."),
        )),
    }
}

/// A field of an expression, named without regard to case; an explicit `null` is as absent.
pub(crate) fn field<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value)
        .filter(|value| !value.is_null())
}

/// The catalog's property for a client's path, or a 400 that lists the known ones.
pub(crate) fn property(
    catalog: &Catalog,
    path: &str,
    version: ClientVersion,
    parameter: &'static str,
) -> Result<&'static Property, QueryError> {
    catalog.lookup(path, version).ok_or_else(|| {
        QueryError::new(
            parameter,
            format!(
                "Unknown property '{path}' for {}. Known properties: {}.",
                catalog.resource,
                catalog.known_paths(version)
            ),
        )
    })
}
