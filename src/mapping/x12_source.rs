//! X12 claim records as mapping sources.

use super::plan::{Scope, SourceRecord};
use crate::formats::x12::{ClaimRecord, Segment};

impl SourceRecord for ClaimRecord {
    fn column(&self, _index: usize, _scope: Scope) -> Option<&str> {
        None
    }

    fn segments(&self, loop_id: &str, scope: Scope, each: &mut dyn FnMut(&Segment)) {
        let wanted = |l: &str| loop_id.is_empty() || l == loop_id;
        match scope {
            Scope::Claim => {
                for (l, segment) in self.context.iter().chain(self.claim.iter()) {
                    if wanted(l) {
                        each(segment);
                    }
                }
            }
            Scope::Line(n) => {
                if let Some(line) = self.lines().nth(n) {
                    for (l, segment) in line.iter() {
                        if wanted(l) {
                            each(segment);
                        }
                    }
                }
            }
        }
    }

    fn line_count(&self) -> usize {
        ClaimRecord::line_count(self)
    }
}
