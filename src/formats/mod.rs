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

/// Reads what is available into `buf`, retrying reads interrupted by a signal; 0 means the
/// input has ended.
pub(crate) fn read_some(source: &mut impl std::io::Read, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match source.read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}
