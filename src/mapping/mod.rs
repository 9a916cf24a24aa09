//! Mapping definitions (`schemas/*.toml`) and their compiled plans.
//!
//! A definition names the source format and, for every field of the normalized claim
//! model it fills, one source (a CSV column, an X12 path, a constant, or a combination)
//! and a list of transforms. It is data: nothing in it is executed or spliced into SQL.
//! [`Plan::from_toml`] checks it completely at load (unknown keys, unknown fields, bad
//! paths, bad patterns, each with its path in the mapping) and compiles it once; applying
//! the plan to a record is cheap.

pub mod builtin;
pub mod definition;
pub mod plan;
mod row_and_document_sources;
pub mod targets;
pub mod versions;
mod x12_source;

pub use row_and_document_sources::RowGroup;

pub use plan::{Bindings, MappingProblem, Plan, Scope, SourceRecord, X12Path};
