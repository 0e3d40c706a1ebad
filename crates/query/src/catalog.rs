//! A resource's queryable properties: their wire paths, types, and the SQL that reads them.

use standby_model::ClientVersion;

use crate::collate::Collation;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    /// Free text; compared under the requested collation.
    Text,
    /// A UUID; compared in canonical lower-case form whatever the collation.
    Uuid,
    /// One of a wire enum's literals; compared as text.
    Enum(&'static [&'static str]),
    Int,
    Bool,
    /// An instant; compared in time order. Stored as 100 ns ticks.
    DateTime,
    /// A sub-object (`lastSession`); only `equals`/`notEquals` null apply.
    Object,
    /// An array (`lastSession.detailedMessages`); selectable, not filterable or sortable.
    Array,
}

/// How the store reads a property. `None` everywhere means "selectable only".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Columns {
    /// The stored value (ordinal comparisons, and the value itself).
    pub value: Option<&'static str>,
    /// `fold(value)`, for ignorecase on free text.
    pub folded: Option<&'static str>,
    /// `natural_key(value)`, for lexicographic on free text.
    pub natural: Option<&'static str>,
    /// A trigram index over `folded`, narrowing `contains` under ignorecase.
    pub substring_index: Option<SubstringIndex>,
}

/// Where a folded text column's trigram index is. PostgreSQL indexes the column itself (a
/// pg_trgm GIN index); SQLite keeps an FTS5 table with the trigram tokenizer whose row ids are
/// the indexed table's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubstringIndex {
    /// The indexed table's row id as the query names it (`o.rowid`).
    pub row_id: &'static str,
    /// The SQLite FTS5 table.
    pub fts_table: &'static str,
}

impl Columns {
    pub const NONE: Columns = Columns {
        value: None,
        folded: None,
        natural: None,
        substring_index: None,
    };

    pub const fn plain(value: &'static str) -> Self {
        Columns {
            value: Some(value),
            folded: None,
            natural: None,
            substring_index: None,
        }
    }

    pub const fn text(value: &'static str, folded: &'static str, natural: &'static str) -> Self {
        Columns {
            value: Some(value),
            folded: Some(folded),
            natural: Some(natural),
            substring_index: None,
        }
    }

    pub const fn with_substring_index(mut self, index: SubstringIndex) -> Self {
        self.substring_index = Some(index);
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Property {
    /// The wire path, dotted for sub-objects: `lastSession.status`.
    pub path: &'static str,
    pub value_type: ValueType,
    pub columns: Columns,
    /// The first client version that has this property (`None`: all versions).
    pub since: Option<ClientVersion>,
}

impl Property {
    pub const fn new(path: &'static str, value_type: ValueType, columns: Columns) -> Self {
        Property {
            path,
            value_type,
            columns,
            since: None,
        }
    }

    pub const fn since(mut self, version: ClientVersion) -> Self {
        self.since = Some(version);
        self
    }

    pub fn is_queryable(&self) -> bool {
        self.columns.value.is_some()
    }

    /// Which collation really applies: only free text honours all three; enums honour
    /// ignorecase and lexicographic; every other type compares in its own natural way.
    pub fn effective_collation(&self, requested: Collation) -> Collation {
        match (self.value_type, requested) {
            (ValueType::Text | ValueType::Enum(_), requested) => requested,
            _ => Collation::Ordinal,
        }
    }
}

/// The properties of one resource, plus the order lists fall back on.
#[derive(Debug)]
pub struct Catalog {
    pub resource: &'static str,
    pub properties: &'static [Property],
    /// Paths sorted ascending (ordinal) after any client sort keys; the last one is unique, so
    /// every order is total and pages are stable.
    pub default_order: &'static [&'static str],
}

impl Catalog {
    /// Finds a property by path, ignoring case, as the client version sees the resource.
    pub fn lookup(&self, path: &str, version: ClientVersion) -> Option<&'static Property> {
        self.properties.iter().find(|p| {
            p.path.eq_ignore_ascii_case(path) && p.since.is_none_or(|since| version >= since)
        })
    }

    pub fn property(&self, path: &str) -> Option<&'static Property> {
        self.properties.iter().find(|p| p.path == path)
    }

    pub(crate) fn known_paths(&self, version: ClientVersion) -> String {
        self.properties
            .iter()
            .filter(|p| p.since.is_none_or(|since| version >= since))
            .map(|p| p.path)
            .collect::<Vec<_>>()
            .join(", ")
    }
}
