//! Rows and documents as mapping sources: one row (a claim, or a claim with line slots),
//! a group of consecutive rows sharing a claim key (one line each), or an XML record.

use super::plan::{Scope, SourceRecord};
use crate::formats::delimited::Row;
use crate::formats::document::DocumentRecord;
use crate::formats::x12::{Key, Segment};

impl SourceRecord for Row {
    fn column(&self, index: usize, _scope: Scope) -> Option<&str> {
        self.get(index)
    }

    fn segments(
        &self,
        _loop_key: Key,
        _segment_key: Key,
        _scope: Scope,
        _each: &mut dyn FnMut(&Segment),
    ) {
    }

    fn line_count(&self) -> usize {
        1
    }
}

/// The rows of one claim; their allocations are reused.
#[derive(Debug, Default)]
pub struct RowGroup {
    rows: Vec<Row>,
    len: usize,
    grouped: bool,
}

impl RowGroup {
    /// A group for line-level files (`grouped`) or a single-row holder.
    pub fn new(grouped: bool) -> Self {
        Self {
            rows: Vec::new(),
            len: 0,
            grouped,
        }
    }

    /// Empties the group.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Appends a copy of `row`.
    pub fn push(&mut self, row: &Row) {
        match self.rows.get_mut(self.len) {
            Some(slot) => slot.clone_from(row),
            None => self.rows.push(row.clone()),
        }
        self.len += 1;
    }

    /// The rows.
    pub fn rows(&self) -> &[Row] {
        self.rows.get(..self.len).unwrap_or_default()
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl SourceRecord for RowGroup {
    fn column(&self, index: usize, scope: Scope) -> Option<&str> {
        let row = match scope {
            Scope::Line(i) if self.grouped => self.rows().get(i),
            _ => self.rows().first(),
        };
        row.and_then(|r| r.get(index))
    }

    fn segments(
        &self,
        _loop_key: Key,
        _segment_key: Key,
        _scope: Scope,
        _each: &mut dyn FnMut(&Segment),
    ) {
    }

    fn line_count(&self) -> usize {
        if self.grouped { self.len } else { 1 }
    }
}

impl SourceRecord for DocumentRecord {
    fn column(&self, _index: usize, _scope: Scope) -> Option<&str> {
        None
    }

    fn segments(
        &self,
        _loop_key: Key,
        _segment_key: Key,
        _scope: Scope,
        _each: &mut dyn FnMut(&Segment),
    ) {
    }

    fn line_count(&self) -> usize {
        DocumentRecord::line_count(self)
    }

    fn path_values(&self, path: &str, scope: Scope, each: &mut dyn FnMut(&str)) {
        let line = match scope {
            Scope::Claim => None,
            Scope::Line(n) => Some(n),
        };
        self.values(path, line).for_each(each);
    }
}
