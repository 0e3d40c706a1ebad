//! The VSPC query language for list endpoints: `filter`, `sort`, `select`, `limit`, `offset`.
//!
//! Pure: text in, typed queries out. Each query is validated against a [`Catalog`] of the
//! resource's properties, then either compiled to SQL ([`sql`]) or evaluated in memory over the
//! wire JSON ([`eval`]). The two must agree; the property tests hold them to it.

pub mod catalog;
pub mod collate;
pub mod error;
pub mod eval;
pub mod filter;
mod input;
pub mod paging;
pub mod select;
pub mod sort;
pub mod sql;

pub use catalog::{Catalog, Property, ValueType};
pub use collate::Collation;
pub use error::QueryError;
pub use filter::{Filter, Leaf, LeafOp, Operand, Scalar};
pub use paging::Paging;
pub use select::Selection;
pub use sort::{SortKey, SortOrder};
