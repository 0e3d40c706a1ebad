//! `select`: which properties each returned item keeps. Dotted paths keep part of a sub-object.

use serde_json::{Map, Value};
use standby_model::ClientVersion;

use crate::catalog::Catalog;
use crate::error::QueryError;
use crate::input::{expressions, field, property};

const PARAMETER: &str = "select";

/// Canonical (catalog-spelled) paths to keep; empty means everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selection {
    paths: Vec<Vec<&'static str>>,
}

impl Selection {
    pub fn parse(
        text: Option<&str>,
        catalog: &Catalog,
        version: ClientVersion,
    ) -> Result<Self, QueryError> {
        let Some(text) = text else {
            return Ok(Selection::default());
        };
        let mut paths = Vec::new();
        for path in property_paths(text)? {
            let property = property(catalog, &path, version, PARAMETER)?;
            paths.push(property.path.split('.').collect());
        }
        Ok(Selection { paths })
    }

    /// Checks a `select` for form only (an array of `{"propertyPath": string}`), where the
    /// response has no fixed set of properties to check the paths against.
    pub fn check_form(text: Option<&str>) -> Result<(), QueryError> {
        match text {
            Some(text) => property_paths(text).map(|_| ()),
            None => Ok(()),
        }
    }

    pub fn is_everything(&self) -> bool {
        self.paths.is_empty()
    }

    /// Keeps only the selected properties of one item, nesting partial sub-objects. Keys keep
    /// the item's own order. A selected path under a null or absent parent keeps that parent as
    /// it is (null, or left out).
    pub fn project(&self, item: Value) -> Value {
        if self.is_everything() {
            return item;
        }
        let paths: Vec<&[&str]> = self.paths.iter().map(Vec::as_slice).collect();
        project(item, &paths)
    }
}

/// The `propertyPath` of each select expression.
fn property_paths(text: &str) -> Result<Vec<String>, QueryError> {
    let items = expressions(text, PARAMETER)?;
    let mut paths = Vec::with_capacity(items.len());
    for item in &items {
        let path = match item {
            Value::Object(object) => field(object, "propertyPath").and_then(Value::as_str),
            _ => None,
        }
        .ok_or_else(|| {
            QueryError::new(
                PARAMETER,
                "Each select expression must be an object with a string 'propertyPath'.",
            )
        })?;
        paths.push(path.to_owned());
    }
    Ok(paths)
}

fn project(item: Value, paths: &[&[&str]]) -> Value {
    let Value::Object(object) = item else {
        return item;
    };
    let mut kept = Map::new();
    for (key, value) in object {
        let under: Vec<&[&str]> = paths
            .iter()
            .filter(|path| path.first() == Some(&key.as_str()))
            .map(|path| &path[1..])
            .collect();
        if under.is_empty() {
            continue;
        }
        if under.iter().any(|rest| rest.is_empty()) {
            kept.insert(key, value);
        } else {
            kept.insert(key, project(value, &under));
        }
    }
    Value::Object(kept)
}
