//! Fleets: what a provider protects. A fleet file (TOML, see `file`) or the built-in demo
//! (`demo`) is resolved into [`Fleet`] records with stable UIDs, which the store imports.

pub mod agent;
pub mod demo;
pub mod file;
pub mod generate;
pub mod records;
pub mod rng;

pub use file::{FleetError, FleetFile};
pub use records::*;
