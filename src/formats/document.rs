//! Records of document formats (XML, FHIR JSON): a flat list of (path, line, value)
//! entries that mappings address by path.

use crate::findings::Position;

/// One record of a document format. Paths are relative to the record (or, inside a line,
/// to the line element).
#[derive(Debug, Default)]
pub struct DocumentRecord {
    entries: Vec<(String, Option<usize>, String)>,
    lines: usize,
    bytes: usize,
    /// Where the record starts; `record` is its number in the file.
    pub position: Position,
    /// Whether a problem rejects the record (reported as a finding).
    pub broken: bool,
}

impl DocumentRecord {
    /// Empties the record for reuse.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.lines = 0;
        self.bytes = 0;
        self.broken = false;
    }

    /// Adds a value unless the record would exceed `max_bytes`; returns whether it fitted.
    pub fn add(
        &mut self,
        path: String,
        line: Option<usize>,
        value: String,
        max_bytes: usize,
    ) -> bool {
        self.bytes += path.len() + value.len();
        if self.bytes > max_bytes {
            return false;
        }
        self.entries.push((path, line, value));
        true
    }

    /// Starts the next line.
    pub fn start_line(&mut self) {
        self.lines += 1;
    }

    /// Values at `path` in the record (`line = None`) or in line `n` (0-based).
    pub fn values<'a>(
        &'a self,
        path: &'a str,
        line: Option<usize>,
    ) -> impl Iterator<Item = &'a str> + 'a {
        self.entries
            .iter()
            .filter(move |(p, l, _)| p == path && *l == line)
            .map(|(_, _, v)| v.as_str())
    }

    /// Number of lines.
    pub fn line_count(&self) -> usize {
        self.lines
    }

    /// Whether nothing was captured.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.lines == 0
    }
}
