//! Compiles filters and sorts to SQL over the catalog's columns, with bound parameters only.
//!
//! Every leaf compiles to a two-valued expression (never SQL NULL), so `not`, `or` and
//! `exclusiveOr` behave exactly as the in-memory evaluator does.

use crate::catalog::{Property, SubstringIndex, ValueType};
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
    /// A condition that holds for every row whose folded column contains `needle` (and few
    /// others), answered from the column's trigram index, with `{needle}` where its bound value
    /// goes; `None` where the index cannot help (a needle shorter than a trigram).
    fn narrow_contains(
        &self,
        index: &SubstringIndex,
        folded: &str,
        needle: &str,
    ) -> Option<(String, Scalar)>;
}

/// Trigram indexes only answer needles of 3 characters or more.
fn indexable(needle: &str) -> bool {
    needle.chars().nth(2).is_some()
}

pub struct SqliteDialect;

impl Dialect for SqliteDialect {
    fn placeholder(&self, index: usize) -> String {
        format!("${index}")
    }
    fn contains(&self, haystack: &str, needle: &str) -> String {
        format!("instr({haystack}, {needle}) > 0")
    }
    fn narrow_contains(
        &self,
        index: &SubstringIndex,
        _folded: &str,
        needle: &str,
    ) -> Option<(String, Scalar)> {
        if !indexable(needle) {
            return None;
        }
        let table = index.fts_table;
        // An FTS5 phrase of the trigram tokenizer matches the needle as a substring; quoting
        // makes every character literal.
        let phrase = format!("\"{}\"", needle.replace('"', "\"\""));
        Some((
            format!(
                "{} IN (SELECT rowid FROM {table} WHERE {table} MATCH {{needle}})",
                index.row_id
            ),
            Scalar::Text(phrase),
        ))
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
    fn narrow_contains(
        &self,
        _index: &SubstringIndex,
        folded: &str,
        needle: &str,
    ) -> Option<(String, Scalar)> {
        if !indexable(needle) {
            return None;
        }
        // pg_trgm's GIN index answers LIKE; `\` is LIKE's default escape character.
        let mut pattern = String::with_capacity(needle.len() + 2);
        pattern.push('%');
        for c in needle.chars() {
            if matches!(c, '%' | '_' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('%');
        Some((format!("{folded} LIKE {{needle}}"), Scalar::Text(pattern)))
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
                self.push("(");
                self.push_balanced(items, " + ", &mut |this, item| {
                    this.push("CASE WHEN ");
                    this.push_filter(item);
                    this.push(" THEN 1 ELSE 0 END");
                });
                self.push(" = 1)")
            }
            Filter::Leaf(leaf) => self.push_leaf(leaf),
        }
    }

    fn push_group(&mut self, items: &[Filter], joiner: &str, empty: &str) -> &mut Self {
        if items.is_empty() {
            return self.push(empty);
        }
        self.push_balanced(items, joiner, &mut |this, item| {
            this.push_filter(item);
        });
        self
    }

    /// `items` joined by a binary operator as a balanced tree, `((a OP b) OP (c OP d))`: SQL
    /// parsers nest a flat chain one level per item, and a backend refuses expressions past its
    /// depth limit (SQLite: 1,000), so a 1,000-item group must not become a 1,000-deep tree.
    fn push_balanced(
        &mut self,
        items: &[Filter],
        joiner: &str,
        push_item: &mut dyn FnMut(&mut Self, &Filter),
    ) {
        match items {
            [] => {}
            [only] => {
                self.push("(");
                push_item(self, only);
                self.push(")");
            }
            _ => {
                let (left, right) = items.split_at(items.len() / 2);
                self.push("(");
                self.push_balanced(left, joiner, push_item);
                self.push(joiner);
                self.push_balanced(right, joiner, push_item);
                self.push(")");
            }
        }
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
                self.push("(");
                if let Some((narrowing, bind)) = self.narrowing(leaf, &column, value) {
                    self.binds.push(bind);
                    let placeholder = self.dialect.placeholder(self.binds.len());
                    self.push(&narrowing.replace("{needle}", &placeholder));
                    self.push(" AND ");
                }
                self.binds.push(value.clone());
                let needle = self.dialect.placeholder(self.binds.len());
                let test = self.dialect.contains(&column, &needle);
                self.push(&format!("{column} IS NOT NULL AND {test})"))
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
                // A scalar property (a set of at most one element) contains every value only
                // when they are all one value: values are already collation keys, so distinct
                // ones can never all equal the column. One comparison, however many values.
                let mut distinct: Vec<&Scalar> = values.iter().collect();
                distinct.sort();
                distinct.dedup();
                match distinct.as_slice() {
                    [] => self.push("(1=1)"),
                    [value] => {
                        compare(self, "=", value);
                        self
                    }
                    _ => self.push("(1=0)"),
                }
            }
            // The parser never builds any other combination; match nothing rather than panic.
            _ => self.push("(1=0)"),
        }
    }

    /// The trigram-index condition for an ignorecase `contains` on an indexed column. The exact
    /// test still follows it: the index narrows, it never decides.
    fn narrowing(&self, leaf: &Leaf, column: &str, value: &Scalar) -> Option<(String, Scalar)> {
        let index = leaf.property.columns.substring_index?;
        let (Collation::IgnoreCase, Scalar::Text(needle)) = (leaf.collation, value) else {
            return None;
        };
        if leaf.property.columns.folded != Some(column) {
            return None;
        }
        self.dialect.narrow_contains(&index, column, needle)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Catalog, Columns};
    use standby_model::ClientVersion;

    static CATALOG: Catalog = Catalog {
        resource: "Thing",
        properties: &[
            Property::new(
                "name",
                ValueType::Text,
                Columns::text("t.name", "t.name_ci", "t.name_nat").with_substring_index(
                    SubstringIndex {
                        row_id: "t.rowid",
                        fts_table: "things_trigram",
                    },
                ),
            ),
            Property::new(
                "path",
                ValueType::Text,
                Columns::text("t.path", "t.path_ci", "t.path_nat"),
            ),
        ],
        default_order: &["name"],
    };

    fn compiled<'d>(
        dialect: &'d dyn Dialect,
        property: &str,
        needle: &str,
        collation: &str,
    ) -> SqlBuilder<'d> {
        let filter = serde_json::json!([{
            "property": property, "operation": "contains", "value": needle, "collation": collation
        }]);
        let filter = Filter::parse(&filter.to_string(), &CATALOG, ClientVersion::NEWEST).unwrap();
        let mut builder = SqlBuilder::new(dialect);
        builder.push_filter(&filter);
        builder
    }

    #[test]
    fn ignorecase_contains_on_an_indexed_name_is_narrowed_by_its_trigrams() {
        let sqlite = compiled(&SqliteDialect, "name", "Say \"HI\"", "ignorecase");
        assert!(
            sqlite.sql.contains(
                "t.rowid IN (SELECT rowid FROM things_trigram WHERE things_trigram MATCH $1)"
            ),
            "{}",
            sqlite.sql
        );
        assert!(
            sqlite.sql.contains("instr(t.name_ci, $2) > 0"),
            "{}",
            sqlite.sql
        );
        assert_eq!(sqlite.binds[0], Scalar::Text("\"say \"\"hi\"\"\"".into()));

        let postgres = compiled(&PostgresDialect, "name", "50%_o\\ff", "ignorecase");
        assert!(
            postgres.sql.contains("t.name_ci LIKE $1"),
            "{}",
            postgres.sql
        );
        assert_eq!(postgres.binds[0], Scalar::Text("%50\\%\\_o\\\\ff%".into()));
    }

    #[test]
    fn the_index_is_left_out_where_it_cannot_answer() {
        for (property, needle, collation) in [
            ("name", "ab", "ignorecase"),     // shorter than a trigram
            ("name", "abc", "lexicographic"), // the index is over folded text
            ("path", "abc", "ignorecase"),    // no index
        ] {
            let builder = compiled(&SqliteDialect, property, needle, collation);
            assert!(!builder.sql.contains("MATCH"), "{}", builder.sql);
            assert_eq!(builder.binds.len(), 1);
        }
    }
}
