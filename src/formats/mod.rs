//! Readers: one module per source format, each turning a byte stream into source records
//! with positions, streaming with bounded memory. Problems are reported as
//! [`Finding`]s, never as failures of the whole file.

pub mod delimited;
pub mod document;
pub mod fhir;
pub mod fixed_width;
pub mod x12;
pub mod xml;

pub use crate::findings::{Finding, Position, Severity};
