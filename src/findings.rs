//! Findings: what readers, mappings and validation say about a record.
//!
//! A finding has a stable code, a severity (an error rejects the record it belongs to, a
//! warning keeps it), a [`Position`] and a fixed message. **Findings say where, never
//! what**: no message contains a value from the file, which may be PHI.

use std::fmt;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The record is kept; the finding is reported.
    Warning,
    /// The record (or, for envelope problems, the records it covers) is rejected.
    Error,
}

impl Severity {
    /// `warning` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Warning => "warning",
            Self::Error => "error",
        }
    }
}

/// Where in the source something is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Position {
    /// Byte offset from the start of the file.
    pub byte: u64,
    /// 1-based line number (0 when the file has no line breaks to count).
    pub line: u64,
    /// 1-based record number (claim, row, resource) within the file, 0 when not in a record.
    pub record: u64,
    /// For X12: 1-based segment number within the file.
    pub segment: Option<u64>,
    /// For X12: loop and segment, for example `2300/CLM`; for other formats a field path.
    pub path: Option<String>,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "byte {}, line {}", self.byte, self.line)?;
        if self.record > 0 {
            write!(f, ", record {}", self.record)?;
        }
        if let Some(segment) = self.segment {
            write!(f, ", segment {segment}")?;
        }
        if let Some(path) = &self.path {
            write!(f, ", at {path}")?;
        }
        Ok(())
    }
}

/// A problem found while reading, mapping or validating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Stable machine-readable code, for example `x12.se_count`.
    pub code: &'static str,
    /// Error or warning.
    pub severity: Severity,
    /// Where.
    pub position: Position,
    /// A fixed human-readable message: never a value from the file.
    pub message: String,
}

/// Codes of findings that mean the input hit one of a reader's resource limits (a DOCTYPE,
/// nesting too deep, a record, field, segment or file too large): the shape of a parser
/// bomb, which raises the `parser_limit` alert.
const RESOURCE_LIMITS: [&str; 13] = [
    "csv.field_too_long",
    "csv.group_too_large",
    "csv.record_too_long",
    "csv.too_many_fields",
    "fhir.record_too_large",
    "fhir.too_large",
    "fixed.line_too_long",
    "x12.file_too_large",
    "x12.segment_too_long",
    "x12.too_many_elements",
    "xml.doctype",
    "xml.record_too_large",
    "xml.too_deep",
];

impl Finding {
    /// Whether this finding says the input hit a reader's resource limit.
    pub fn is_resource_limit(&self) -> bool {
        RESOURCE_LIMITS.contains(&self.code)
    }

    /// An error finding.
    pub fn error(code: &'static str, position: Position, message: impl Into<String>) -> Self {
        Self {
            code,
            severity: Severity::Error,
            position,
            message: message.into(),
        }
    }

    /// A warning finding.
    pub fn warning(code: &'static str, position: Position, message: impl Into<String>) -> Self {
        Self {
            code,
            severity: Severity::Warning,
            position,
            message: message.into(),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} ({}): {}",
            self.severity.as_str(),
            self.code,
            self.position,
            self.message
        )
    }
}
