//! Compiles filters and sorts to SQL over the catalog's columns, with bound parameters only.
//!
//! Every leaf compiles to a two-valued expression (never SQL NULL), so `not`, `or` and
//! `exclusiveOr` behave exactly as the in-memory evaluator does.

use crate::catalog::{Property, ValueType};
use crate::collate::Collation;
use crate::filter::{Filter, Leaf, LeafOp, Operand, Scalar};
use crate::sort::SortOrder;

/// What differs between the SQL dialects we speak. Text columns are expected to compare
/// byte-wise (SQLite's BINARY; `COLLATE "C"` columns on PostgreSQL).
pub trait Dialect: Send + Sync {
    /// The placeholder for the `index`-th bound value (1-based).
    fn placeholder(&self, index: usize) -> String;
    /// A boolean expression: `needle` occurs in `haystack`.
    fn contains(&self, haystack: &str, needle: &str) -> String;
}

pub struct SqliteDialect;

impl Dialect for SqliteDialect {
    fn placeholder(&self, index: usize) -> String {
        format!("${index}")
    }
    fn contains(&self, haystack: &str, needle: &str) -> String {
        format!("instr({haystack}, {needle}) > 0")
    }
}

pub struct PostgresDialect;

impl Dialect for PostgresDialect {
    fn placeholder(&self, index: usize) -> String {
        format!("${index}")
    }
    fn contains(&self, haystack: &str, needle: &str) -> String {
        format!("strpos({haystack}, {needle}) > 0")
    }
}

/// SQL text with its bound values, built up piece by piece.
pub struct SqlBuilder<'d> {
    dialect: &'d dyn Dialect,
    pub sql: String,
    pub binds: Vec<Scalar>,
}

impl<'d> SqlBuilder<'d> {
    pub fn new(dialect: &'d dyn Dialect) -> Self {
        SqlBuilder {
            dialect,
            sql: String::with_capacity(256),
            binds: Vec::new(),
        }
    }

    pub fn push(&mut self, text: &str) -> &mut Self {
        self.sql.push_str(text);
        self
    }

    pub fn push_bind(&mut self, value: Scalar) -> &mut Self {
        // An untyped literal: PostgreSQL types a bound NULL as text and then refuses to compare
        // it with a number column.
        if value == Scalar::Null {
            return self.push("NULL");
        }
        self.binds.push(value);
        let placeholder = self.dialect.placeholder(self.binds.len());
        self.sql.push_str(&placeholder);
        self
    }

    /// Appends the filter as one parenthesised boolean expression.
    pub fn push_filter(&mut self, filter: &Filter) -> &mut Self {
        match filter {
            Filter::And(items) => self.push_group(items, " AND ", "(1=1)"),
            Filter::Or(items) => self.push_group(items, " OR ", "(1=0)"),
            Filter::Not(items) => {
                self.push("(NOT ");
                self.push_group(items, " AND ", "(1=1)");
                self.push(")")
            }
            Filter::ExclusiveOr(items) => {
                if items.is_empty() {
                    return self.push("(1=0)");
                }
                self.push("((");
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.push(" + ");
                    }
                    self.push("CASE WHEN ");
                    self.push_filter(item);
                    self.push(" THEN 1 ELSE 0 END");
                }
                self.push(") = 1)")
            }
            Filter::Leaf(leaf) => self.push_leaf(leaf),
        }
    }

    fn push_group(&mut self, items: &[Filter], joiner: &str, empty: &str) -> &mut Self {
        if items.is_empty() {
            return self.push(empty);
        }
        self.push("(");
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.push(joiner);
            }
            self.push_filter(item);
        }
        self.push(")")
    }

    fn push_leaf(&mut self, leaf: &Leaf) -> &mut Self {
        let column = column_for(leaf.property, leaf.collation, leaf.op == LeafOp::Contains);
        let compare = |this: &mut Self, operator: &str, value: &Scalar| {
            this.push(&format!("({column} IS NOT NULL AND {column} {operator} "));
            this.push_bind(value.clone());
            this.push(")");
        };
        match (&leaf.op, &leaf.operand) {
            (LeafOp::Equals, Operand::One(Scalar::Null)) => {
                self.push(&format!("({column} IS NULL)"))
            }
            (LeafOp::NotEquals, Operand::One(Scalar::Null)) => {
                self.push(&format!("({column} IS NOT NULL)"))
            }
            (LeafOp::Equals, Operand::One(value)) => {
                compare(self, "=", value);
                self
            }
            (LeafOp::NotEquals, Operand::One(value)) => {
                self.push(&format!("({column} IS NULL OR {column} <> "));
                self.push_bind(value.clone());
                self.push(")")
            }
            (LeafOp::LessThan, Operand::One(value)) => {
                compare(self, "<", value);
                self
            }
            (LeafOp::LessThanOrEqual, Operand::One(value)) => {
                compare(self, "<=", value);
                self
            }
            (LeafOp::GreaterThan, Operand::One(value)) => {
                compare(self, ">", value);
                self
            }
            (LeafOp::GreaterThanOrEqual, Operand::One(value)) => {
                compare(self, ">=", value);
                self
            }
            (LeafOp::Contains, Operand::One(value)) => {
                self.binds.push(value.clone());
                let needle = self.dialect.placeholder(self.binds.len());
                let test = self.dialect.contains(&column, &needle);
                self.push(&format!("({column} IS NOT NULL AND {test})"))
            }
            (LeafOp::In, Operand::List(values)) => {
                let with_null = values.contains(&Scalar::Null);
                let present: Vec<&Scalar> = values.iter().filter(|v| **v != Scalar::Null).collect();
                self.push("(");
                if present.is_empty() {
                    self.push("(1=0)");
                } else {
                    self.push_in_list(&column, &present);
                }
                if with_null {
                    self.push(&format!(" OR {column} IS NULL"));
                }
                self.push(")")
            }
            (LeafOp::Subset, Operand::List(values)) => {
                self.push(&format!("({column} IS NULL"));
                if !values.is_empty() {
                    self.push(" OR ");
                    let all: Vec<&Scalar> = values.iter().collect();
                    self.push_in_list(&column, &all);
                }
                self.push(")")
            }
            (LeafOp::Superset, Operand::List(values)) => {
                if values.is_empty() {
                    return self.push("(1=1)");
                }
                let mut distinct: Vec<&Scalar> = values.iter().collect();
                distinct.sort();
                distinct.dedup();
                self.push(&format!("({column} IS NOT NULL"));
                for value in distinct {
                    self.push(&format!(" AND {column} = "));
                    self.push_bind(value.clone());
                }
                self.push(")")
            }
            // The parser never builds any other combination; match nothing rather than panic.
            _ => self.push("(1=0)"),
        }
    }

    fn push_in_list(&mut self, column: &str, values: &[&Scalar]) {
        self.push(&format!("({column} IS NOT NULL AND {column} IN ("));
        for (i, value) in values.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.push_bind((*value).clone());
        }
        self.push("))");
    }

    /// Appends `ORDER BY ...` for the sort (nulls first when ascending, last when descending).
    pub fn push_order_by(&mut self, order: &SortOrder) -> &mut Self {
        self.push(" ORDER BY ");
        for (i, key) in order.keys.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            let column = column_for(key.property, key.collation, false);
            let direction = if key.descending {
                "DESC NULLS LAST"
            } else {
                "ASC NULLS FIRST"
            };
            self.push(&format!("{column} {direction}"));
        }
        self
    }
}

/// The SQL expression a comparison reads under a collation (see `eval::keyed`, its twin).
fn column_for(property: &Property, collation: Collation, contains: bool) -> String {
    let value = property.columns.value.unwrap_or("NULL");
    match (property.value_type, collation, contains) {
        (ValueType::Text, Collation::IgnoreCase, _) => {
            property.columns.folded.unwrap_or(value).to_owned()
        }
        (ValueType::Text, Collation::Lexicographic, false) => {
            property.columns.natural.unwrap_or(value).to_owned()
        }
        // Enum literals are ASCII, where SQL lower() and Unicode folding agree.
        (ValueType::Enum(_), Collation::IgnoreCase, _) => format!("lower({value})"),
        _ => value.to_owned(),
    }
}
