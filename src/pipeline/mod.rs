//! The pipeline: the only place that orders the stages (read → map → validate → …).
//!
//! For now it runs the stages that need no storage: [`preview`] reads a file with a
//! mapping and reports every claim, every finding and the summary, storing nothing.

pub mod impact;
pub mod preview;

pub use preview::{MappedClaim, MappingChoice, Summary, preview};
