//! The in-memory evaluator: filter and sort over items' wire JSON.
//!
//! This is the reference semantics of the query language. The SQL compiler must agree with it
//! on every input; the store's property tests compare the two on random fleets and filters.

use std::cmp::Ordering;

use serde_json::Value;
use standby_model::Timestamp;

use crate::catalog::{Property, ValueType};
use crate::collate::{Collation, fold, natural_key};
use crate::filter::{Filter, Leaf, LeafOp, Operand, Scalar};
use crate::sort::SortOrder;

pub fn matches(filter: &Filter, item: &Value) -> bool {
    match filter {
        Filter::And(items) => items.iter().all(|f| matches(f, item)),
        Filter::Or(items) => items.iter().any(|f| matches(f, item)),
        Filter::ExclusiveOr(items) => items.iter().filter(|f| matches(f, item)).count() == 1,
        Filter::Not(items) => !items.iter().all(|f| matches(f, item)),
        Filter::Leaf(leaf) => leaf_matches(leaf, item),
    }
}

/// Orders two items as the SQL `ORDER BY` of the same sort does (nulls first when ascending).
pub fn compare(order: &SortOrder, left: &Value, right: &Value) -> Ordering {
    for key in &order.keys {
        let a = keyed(key.property, key.collation, false, read(left, key.property));
        let b = keyed(
            key.property,
            key.collation,
            false,
            read(right, key.property),
        );
        let ord = if key.descending { b.cmp(&a) } else { a.cmp(&b) };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    Ordering::Equal
}

fn lookup<'a>(item: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(item, |value, key| value.get(key))
}

/// A property's stored value in the store's normal form.
fn read(item: &Value, property: &Property) -> Scalar {
    let Some(value) = lookup(item, property.path).filter(|v| !v.is_null()) else {
        return Scalar::Null;
    };
    match (property.value_type, value) {
        (ValueType::Text | ValueType::Enum(_), Value::String(text)) => Scalar::Text(text.clone()),
        (ValueType::Uuid, Value::String(text)) => Scalar::Text(text.to_ascii_lowercase()),
        (ValueType::Int, Value::Number(n)) => n.as_i64().map_or(Scalar::Null, Scalar::Int),
        (ValueType::Bool, Value::Bool(flag)) => Scalar::Bool(*flag),
        (ValueType::DateTime, Value::String(text)) => {
            Timestamp::parse(text).map_or(Scalar::Null, |at| Scalar::Int(at.ticks()))
        }
        (ValueType::Object, _) => Scalar::Bool(true),
        _ => Scalar::Null,
    }
}

/// The value as the collation sees it: the column SQL reads for this collation and operation.
fn keyed(property: &Property, collation: Collation, contains: bool, value: Scalar) -> Scalar {
    let Scalar::Text(text) = value else {
        return value;
    };
    Scalar::Text(match (property.value_type, collation, contains) {
        (ValueType::Text | ValueType::Enum(_), Collation::IgnoreCase, _) => fold(&text),
        (ValueType::Text, Collation::Lexicographic, false) => natural_key(&text),
        _ => text,
    })
}

fn leaf_matches(leaf: &Leaf, item: &Value) -> bool {
    let column = keyed(
        leaf.property,
        leaf.collation,
        leaf.op == LeafOp::Contains,
        read(item, leaf.property),
    );
    let present = column != Scalar::Null;
    match (&leaf.op, &leaf.operand) {
        (LeafOp::Equals, Operand::One(Scalar::Null)) => !present,
        (LeafOp::NotEquals, Operand::One(Scalar::Null)) => present,
        (LeafOp::Equals, Operand::One(value)) => present && column == *value,
        (LeafOp::NotEquals, Operand::One(value)) => !present || column != *value,
        (LeafOp::LessThan, Operand::One(value)) => present && column < *value,
        (LeafOp::LessThanOrEqual, Operand::One(value)) => present && column <= *value,
        (LeafOp::GreaterThan, Operand::One(value)) => present && column > *value,
        (LeafOp::GreaterThanOrEqual, Operand::One(value)) => present && column >= *value,
        (LeafOp::Contains, Operand::One(Scalar::Text(needle))) => {
            matches!(&column, Scalar::Text(text) if text.contains(needle.as_str()))
        }
        (LeafOp::In, Operand::List(values)) => values.contains(&column),
        (LeafOp::Subset, Operand::List(values)) => !present || values.contains(&column),
        (LeafOp::Superset, Operand::List(values)) => {
            values.is_empty() || (present && values.iter().all(|v| *v == column))
        }
        // The parser never builds any other combination.
        _ => false,
    }
}
