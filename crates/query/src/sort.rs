//! `sort`: a JSON array of `SortExpression`s, the first one primary.

use serde_json::Value;
use standby_model::ClientVersion;

use crate::catalog::{Catalog, Property};
use crate::collate::Collation;
use crate::error::QueryError;
use crate::input::{expressions, field, property};

const PARAMETER: &str = "sort";
const MAX_KEYS: usize = 16;

#[derive(Debug, Clone, PartialEq)]
pub struct SortKey {
    pub property: &'static Property,
    pub descending: bool,
    /// Already reduced to what the property's type honours.
    pub collation: Collation,
}

/// The client's keys followed by the catalog's default order, which makes the order total.
#[derive(Debug, Clone, PartialEq)]
pub struct SortOrder {
    pub keys: Vec<SortKey>,
}

impl SortOrder {
    pub fn parse(
        text: Option<&str>,
        catalog: &Catalog,
        version: ClientVersion,
    ) -> Result<Self, QueryError> {
        let mut keys = match text {
            None => Vec::new(),
            Some(text) => parse_keys(text, catalog, version)?,
        };
        keys.extend(Self::default_keys(catalog));
        // A key repeating an earlier property under the same collation can never break a tie
        // the earlier one left; dropping it lets the database walk an index in order instead
        // of sorting (`name, name, uid` defeated SQLite's `(status, name, uid)` index).
        let mut seen: Vec<(&'static Property, Collation)> = Vec::with_capacity(keys.len());
        keys.retain(|key| {
            let repeated = seen
                .iter()
                .any(|(p, c)| std::ptr::eq(*p, key.property) && *c == key.collation);
            if !repeated {
                seen.push((key.property, key.collation));
            }
            !repeated
        });
        Ok(SortOrder { keys })
    }

    pub fn default_for(catalog: &Catalog) -> Self {
        SortOrder {
            keys: Self::default_keys(catalog).collect(),
        }
    }

    fn default_keys(catalog: &Catalog) -> impl Iterator<Item = SortKey> + '_ {
        catalog
            .default_order
            .iter()
            .filter_map(|path| catalog.property(path))
            .map(|property| SortKey {
                property,
                descending: false,
                collation: Collation::Ordinal,
            })
    }
}

fn parse_keys(
    text: &str,
    catalog: &Catalog,
    version: ClientVersion,
) -> Result<Vec<SortKey>, QueryError> {
    let items = expressions(text, PARAMETER)?;
    if items.len() > MAX_KEYS {
        return Err(QueryError::new(
            PARAMETER,
            format!("At most {MAX_KEYS} sort expressions are allowed."),
        ));
    }
    items
        .iter()
        .map(|item| {
            let Value::Object(object) = item else {
                return Err(QueryError::new(
                    PARAMETER,
                    "Each sort expression must be a JSON object.",
                ));
            };
            let path = match field(object, "property") {
                Some(Value::String(path)) => path,
                _ => {
                    return Err(QueryError::new(
                        PARAMETER,
                        "A sort expression needs a string 'property'.",
                    ));
                }
            };
            let property = property(catalog, path, version, PARAMETER)?;
            if !property.is_queryable() || matches!(property.value_type, crate::ValueType::Object) {
                return Err(QueryError::new(
                    PARAMETER,
                    format!("The property '{}' cannot be sorted on.", property.path),
                ));
            }
            let descending = match field(object, "direction") {
                None => false,
                Some(Value::String(direction)) => match direction.to_ascii_lowercase().as_str() {
                    "ascending" => false,
                    "descending" => true,
                    _ => {
                        return Err(QueryError::new(
                            PARAMETER,
                            format!(
                                "Unknown sort direction '{direction}'. Use ascending or descending."
                            ),
                        ));
                    }
                },
                Some(_) => {
                    return Err(QueryError::new(
                        PARAMETER,
                        "The sort 'direction' must be a string.",
                    ));
                }
            };
            let requested = match field(object, "collation") {
                None => Collation::Ordinal,
                Some(Value::String(name)) => Collation::parse(name).ok_or_else(|| {
                    QueryError::new(
                        PARAMETER,
                        format!(
                            "Unknown collation '{name}'. Use ordinal, ignorecase or lexicographic."
                        ),
                    )
                })?,
                Some(_) => {
                    return Err(QueryError::new(
                        PARAMETER,
                        "The sort 'collation' must be a string.",
                    ));
                }
            };
            Ok(SortKey {
                property,
                descending,
                collation: property.effective_collation(requested),
            })
        })
        .collect()
}

#[cfg(test)]
mod dedup_tests {
    use super::*;
    use crate::catalog::{Columns, ValueType};

    static CATALOG: Catalog = Catalog {
        resource: "Thing",
        properties: &[
            Property::new("name", ValueType::Text, Columns::plain("name")),
            Property::new("instanceUid", ValueType::Uuid, Columns::plain("uid")),
        ],
        default_order: &["name", "instanceUid"],
    };

    #[test]
    fn a_repeated_key_is_dropped_but_another_collation_is_kept() {
        let v = ClientVersion::NEWEST;
        let order = SortOrder::parse(
            Some(r#"[{"property":"name","direction":"descending"}]"#),
            &CATALOG,
            v,
        )
        .unwrap();
        let keys: Vec<(&str, bool)> = order
            .keys
            .iter()
            .map(|k| (k.property.path, k.descending))
            .collect();
        assert_eq!(keys, [("name", true), ("instanceUid", false)]);
        let order = SortOrder::parse(
            Some(r#"[{"property":"name","collation":"ignorecase"}]"#),
            &CATALOG,
            v,
        )
        .unwrap();
        assert_eq!(
            order.keys.len(),
            3,
            "ignorecase, then the ordinal tiebreak on name"
        );
    }
}
