//! `filter`: a JSON array of `FilterExpression`s (AND-ed), parsed and type-checked against a
//! catalog into a [`Filter`] tree.

use serde_json::Value;
use standby_model::{ClientVersion, Timestamp};
use uuid::Uuid;

use crate::catalog::{Catalog, Property, ValueType};
use crate::collate::{Collation, fold};
use crate::error::QueryError;
use crate::input::{expressions, field, property};

const PARAMETER: &str = "filter";
/// Bounds on one filter, so a hostile query cannot build unbounded SQL.
const MAX_NODES: usize = 1_000;
const MAX_VALUES: usize = 10_000;
/// Groups nested deeper than this are refused: the compiled SQL stays far inside every backend's
/// expression-depth limit (SQLite's is 1,000), whatever the filter's shape.
const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    /// Exactly one item matches.
    ExclusiveOr(Vec<Filter>),
    /// Not all items match: NOT(AND(items)).
    Not(Vec<Filter>),
    Leaf(Leaf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeafOp {
    Equals,
    NotEquals,
    LessThan,
    LessThanOrEqual,
    GreaterThan,
    GreaterThanOrEqual,
    Contains,
    In,
    Subset,
    Superset,
}

impl LeafOp {
    fn parse(text: &str) -> Option<Self> {
        Some(match text.to_ascii_lowercase().as_str() {
            "equals" => LeafOp::Equals,
            "notequals" => LeafOp::NotEquals,
            "lessthan" => LeafOp::LessThan,
            "lessthanorequal" => LeafOp::LessThanOrEqual,
            "greaterthan" => LeafOp::GreaterThan,
            "greaterthanorequal" => LeafOp::GreaterThanOrEqual,
            "contains" => LeafOp::Contains,
            "in" => LeafOp::In,
            "subset" => LeafOp::Subset,
            "superset" => LeafOp::Superset,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            LeafOp::Equals => "equals",
            LeafOp::NotEquals => "notEquals",
            LeafOp::LessThan => "lessThan",
            LeafOp::LessThanOrEqual => "lessThanOrEqual",
            LeafOp::GreaterThan => "greaterThan",
            LeafOp::GreaterThanOrEqual => "greaterThanOrEqual",
            LeafOp::Contains => "contains",
            LeafOp::In => "in",
            LeafOp::Subset => "subset",
            LeafOp::Superset => "superset",
        }
    }

    fn takes_list(self) -> bool {
        matches!(self, LeafOp::In | LeafOp::Subset | LeafOp::Superset)
    }

    fn is_ordering(self) -> bool {
        matches!(
            self,
            LeafOp::LessThan
                | LeafOp::LessThanOrEqual
                | LeafOp::GreaterThan
                | LeafOp::GreaterThanOrEqual
        )
    }
}

/// A typed, normalised filter value: UUIDs lower-case, instants as ticks.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    Text(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    One(Scalar),
    List(Vec<Scalar>),
}

/// One comparison of a property with a value.
///
/// Semantics (shared by SQL and the in-memory evaluator): a scalar property is a set of one
/// element, null the empty set; `subset` is property ⊆ value, `superset` property ⊇ value.
/// `equals null` matches a null property; ordering operations never match a null property.
#[derive(Debug, Clone, PartialEq)]
pub struct Leaf {
    pub property: &'static Property,
    pub op: LeafOp,
    /// Already reduced to what the property's type honours.
    pub collation: Collation,
    /// For text under ignorecase or lexicographic, the collation key of the client's value.
    pub operand: Operand,
}

impl Filter {
    /// Parses the raw `filter` query value.
    pub fn parse(
        text: &str,
        catalog: &Catalog,
        version: ClientVersion,
    ) -> Result<Filter, QueryError> {
        let items = expressions(text, PARAMETER)?;
        let mut budget = Budget {
            nodes: 0,
            values: 0,
            depth: 0,
        };
        let parsed = items
            .iter()
            .map(|item| parse_expression(item, catalog, version, &mut budget))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Filter::And(parsed))
    }

    /// True when the filter can match anything at all (an empty filter is `And([])`).
    pub fn is_trivial(&self) -> bool {
        matches!(self, Filter::And(items) if items.is_empty())
    }
}

struct Budget {
    nodes: usize,
    values: usize,
    depth: usize,
}

fn parse_expression(
    json: &Value,
    catalog: &Catalog,
    version: ClientVersion,
    budget: &mut Budget,
) -> Result<Filter, QueryError> {
    budget.nodes += 1;
    if budget.nodes > MAX_NODES {
        return Err(QueryError::new(
            PARAMETER,
            format!("The filter has more than {MAX_NODES} expressions."),
        ));
    }
    let Value::Object(object) = json else {
        return Err(QueryError::new(
            PARAMETER,
            "Each filter expression must be a JSON object.",
        ));
    };
    let operation = match field(object, "operation") {
        Some(Value::String(op)) => op.as_str(),
        Some(_) => {
            return Err(QueryError::new(
                PARAMETER,
                "The filter expression's 'operation' must be a string.",
            ));
        }
        None => {
            return Err(QueryError::new(
                PARAMETER,
                "A filter expression has no 'operation'.",
            ));
        }
    };
    let group = match operation.to_ascii_lowercase().as_str() {
        "and" => Some(Filter::And as fn(Vec<Filter>) -> Filter),
        "or" => Some(Filter::Or as fn(Vec<Filter>) -> Filter),
        "exclusiveor" => Some(Filter::ExclusiveOr as fn(Vec<Filter>) -> Filter),
        "not" => Some(Filter::Not as fn(Vec<Filter>) -> Filter),
        _ => None,
    };
    if let Some(make) = group {
        let items = match field(object, "items") {
            Some(Value::Array(items)) => items,
            Some(_) => {
                return Err(QueryError::new(
                    PARAMETER,
                    format!("The '{operation}' expression's 'items' must be an array."),
                ));
            }
            None => {
                return Err(QueryError::new(
                    PARAMETER,
                    format!("The '{operation}' expression needs 'items'."),
                ));
            }
        };
        budget.depth += 1;
        if budget.depth > MAX_DEPTH {
            return Err(QueryError::new(
                PARAMETER,
                format!("The filter nests groups more than {MAX_DEPTH} deep."),
            ));
        }
        let children = items
            .iter()
            .map(|item| parse_expression(item, catalog, version, budget))
            .collect::<Result<Vec<_>, _>>()?;
        budget.depth -= 1;
        return Ok(make(children));
    }
    let op = LeafOp::parse(operation).ok_or_else(|| {
        QueryError::new(
            PARAMETER,
            format!(
                "Unknown filter operation '{operation}'. Use one of: in, contains, subset, superset, equals, notEquals, \
                 lessThan, lessThanOrEqual, greaterThan, greaterThanOrEqual, and, or, not, exclusiveOr."
            ),
        )
    })?;
    let path = match field(object, "property") {
        Some(Value::String(path)) => path.as_str(),
        Some(_) => {
            return Err(QueryError::new(
                PARAMETER,
                "The filter expression's 'property' must be a string.",
            ));
        }
        None => {
            return Err(QueryError::new(
                PARAMETER,
                format!("The '{}' expression needs a 'property'.", op.name()),
            ));
        }
    };
    let property = property(catalog, path, version, PARAMETER)?;
    if !property.is_queryable() {
        return Err(QueryError::new(
            PARAMETER,
            format!("The property '{}' cannot be filtered on.", property.path),
        ));
    }
    let requested = match field(object, "collation") {
        None => Collation::Ordinal,
        Some(Value::String(name)) => Collation::parse(name).ok_or_else(|| {
            QueryError::new(
                PARAMETER,
                format!("Unknown collation '{name}'. Use ordinal, ignorecase or lexicographic."),
            )
        })?,
        Some(_) => {
            return Err(QueryError::new(
                PARAMETER,
                "The filter expression's 'collation' must be a string.",
            ));
        }
    };
    let collation = property.effective_collation(requested);
    let raw = object
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case("value"))
        .map(|(_, v)| v)
        .unwrap_or(&Value::Null);
    let operand = typed_operand(property, op, collation, raw, budget)?;
    Ok(Filter::Leaf(Leaf {
        property,
        op,
        collation,
        operand,
    }))
}

fn typed_operand(
    property: &Property,
    op: LeafOp,
    collation: Collation,
    raw: &Value,
    budget: &mut Budget,
) -> Result<Operand, QueryError> {
    let path = property.path;
    let wrong = |why: String| {
        QueryError::new(
            PARAMETER,
            format!("Invalid value for '{}' ({}): {why}", path, op.name()),
        )
    };
    match property.value_type {
        ValueType::Object => {
            return match (op, raw) {
                (LeafOp::Equals | LeafOp::NotEquals, Value::Null) => Ok(Operand::One(Scalar::Null)),
                _ => Err(wrong(format!(
                    "'{path}' is an object; only equals or notEquals null apply to it."
                ))),
            };
        }
        ValueType::Array => return Err(wrong("arrays cannot be filtered on.".into())),
        _ => {}
    }
    if op == LeafOp::Contains
        && !matches!(
            property.value_type,
            ValueType::Text | ValueType::Enum(_) | ValueType::Uuid
        )
    {
        return Err(wrong("contains applies to text properties only.".into()));
    }
    if op.is_ordering() && matches!(property.value_type, ValueType::Bool) {
        return Err(wrong(
            "booleans cannot be ordered; use equals or notEquals.".into(),
        ));
    }
    if op.takes_list() {
        let Value::Array(values) = raw else {
            return Err(wrong("expected a JSON array of values.".into()));
        };
        budget.values += values.len();
        if budget.values > MAX_VALUES {
            return Err(QueryError::new(
                PARAMETER,
                format!("The filter has more than {MAX_VALUES} values."),
            ));
        }
        let list = values
            .iter()
            .map(|value| {
                if value.is_null() && op != LeafOp::In {
                    return Err(wrong("null cannot be an element of a set.".into()));
                }
                typed_scalar(property, op, collation, value).map_err(&wrong)
            })
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Operand::List(list));
    }
    if raw.is_null() && !matches!(op, LeafOp::Equals | LeafOp::NotEquals) {
        return Err(wrong("a value is required.".into()));
    }
    budget.values += 1;
    typed_scalar(property, op, collation, raw)
        .map(Operand::One)
        .map_err(wrong)
}

/// Checks one JSON value against the property's type and normalises it to the form the store
/// keeps (and, for text under a collation, to the collation key).
fn typed_scalar(
    property: &Property,
    op: LeafOp,
    collation: Collation,
    raw: &Value,
) -> Result<Scalar, String> {
    if raw.is_null() {
        return Ok(Scalar::Null);
    }
    // No stored text holds NUL (PostgreSQL cannot store it at all), and neither the full-text
    // index nor PostgreSQL's parameters accept it: refused here, before any backend sees it.
    if matches!(raw, Value::String(text) if text.contains('\0')) {
        return Err("text values cannot contain the NUL character (U+0000).".into());
    }
    match property.value_type {
        ValueType::Text => match raw {
            Value::String(text) => Ok(Scalar::Text(match (op, collation) {
                // contains is a substring test: ordinal, or on folded text for ignorecase.
                (LeafOp::Contains, Collation::IgnoreCase) => fold(text),
                (LeafOp::Contains, _) => text.clone(),
                _ => collation.key(text),
            })),
            _ => Err(format!("expected a string, got {raw}.")),
        },
        ValueType::Uuid => match raw {
            Value::String(text) if op == LeafOp::Contains => {
                Ok(Scalar::Text(text.to_ascii_lowercase()))
            }
            Value::String(text) => Uuid::parse_str(text.trim())
                .map(|uid| Scalar::Text(uid.hyphenated().to_string()))
                .map_err(|_| format!("'{text}' is not a UUID.")),
            _ => Err(format!("expected a UUID string, got {raw}.")),
        },
        ValueType::Enum(literals) => match raw {
            Value::String(text) => {
                let equality = matches!(
                    op,
                    LeafOp::Equals
                        | LeafOp::NotEquals
                        | LeafOp::In
                        | LeafOp::Subset
                        | LeafOp::Superset
                );
                if equality {
                    let known = literals
                        .iter()
                        .any(|literal| collation.key(literal) == collation.key(text));
                    if !known {
                        return Err(format!("'{text}' is not one of {}.", literals.join(", ")));
                    }
                }
                Ok(Scalar::Text(match (op, collation) {
                    (LeafOp::Contains, Collation::IgnoreCase) => fold(text),
                    (LeafOp::Contains, _) => text.clone(),
                    _ => collation.key(text),
                }))
            }
            _ => Err(format!(
                "expected one of {}, got {raw}.",
                literals.join(", ")
            )),
        },
        ValueType::Int => match raw {
            Value::Number(number) => number
                .as_i64()
                .map(Scalar::Int)
                .ok_or_else(|| format!("{number} is not an integer.")),
            // .NET clients sometimes send numbers as strings ("450").
            Value::String(text) => text
                .trim()
                .parse()
                .map(Scalar::Int)
                .map_err(|_| format!("'{text}' is not an integer.")),
            _ => Err(format!("expected an integer, got {raw}.")),
        },
        ValueType::Bool => match raw {
            Value::Bool(flag) => Ok(Scalar::Bool(*flag)),
            Value::String(text) if text.eq_ignore_ascii_case("true") => Ok(Scalar::Bool(true)),
            Value::String(text) if text.eq_ignore_ascii_case("false") => Ok(Scalar::Bool(false)),
            _ => Err(format!("expected true or false, got {raw}.")),
        },
        ValueType::DateTime => match raw {
            Value::String(text) => Timestamp::parse(text)
                .map(|at| Scalar::Int(at.ticks()))
                .map_err(|e| e.to_string()),
            _ => Err(format!("expected a date-time string, got {raw}.")),
        },
        ValueType::Object | ValueType::Array => Err("not filterable.".into()),
    }
}
