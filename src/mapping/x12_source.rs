//! X12 claim records as mapping sources.

use super::plan::{Scope, SourceRecord};
use crate::formats::x12::{ClaimRecord, Key, Segment};

impl SourceRecord for ClaimRecord {
    fn column(&self, _index: usize, _scope: Scope) -> Option<&str> {
        None
    }

    fn segments(
        &self,
        loop_key: Key,
        segment_key: Key,
        scope: Scope,
        each: &mut dyn FnMut(&Segment),
    ) {
        match scope {
            Scope::Claim => self
                .context
                .matching(loop_key, segment_key)
                .chain(self.claim.matching(loop_key, segment_key))
                .for_each(each),
            Scope::Line(n) => {
                if let Some(line) = self.lines().nth(n) {
                    line.matching(loop_key, segment_key).for_each(each);
                }
            }
        }
    }

    fn line_count(&self) -> usize {
        ClaimRecord::line_count(self)
    }
}
