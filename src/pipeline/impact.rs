//! What a candidate mapping would change: the same files read with the current mapping and
//! with the candidate, claim by claim, counting per field how many claims would get
//! another value, and how acceptance moves. Only counts leave: no value, no claim id.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::io::Read;

use serde::Serialize;

use super::preview::{MappingChoice, claim_json, preview};

/// Claims of one file compared at most (the rest are counted, not compared): about 40
/// field hashes a claim are kept in memory between the two readings.
pub const MAX_COMPARED_PER_FILE: usize = 50_000;

/// The outcome of one reading.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct Outcome {
    /// Records read.
    pub records: u64,
    /// Records accepted.
    pub accepted: u64,
    /// Records rejected.
    pub rejected: u64,
}

impl Outcome {
    fn of(summary: &super::preview::Summary) -> Self {
        Self {
            records: summary.records,
            accepted: summary.accepted,
            rejected: summary.rejected,
        }
    }

    fn add(&mut self, other: &Outcome) {
        self.records += other.records;
        self.accepted += other.accepted;
        self.rejected += other.rejected;
    }
}

/// The comparison over every file read.
#[derive(Debug, Default, Serialize)]
pub struct Impact {
    /// Files read.
    pub files: u64,
    /// Claims compared field by field.
    pub claims_compared: u64,
    /// Claims not compared (beyond [`MAX_COMPARED_PER_FILE`] of a file, or without a
    /// counterpart because the candidate groups records into claims differently).
    pub claims_not_compared: u64,
    /// The current mapping's totals.
    pub current: Outcome,
    /// The candidate's totals.
    pub candidate: Outcome,
    /// Compared claims the candidate rejects and the current mapping accepts.
    pub newly_rejected: u64,
    /// Compared claims the candidate accepts and the current mapping rejects.
    pub newly_accepted: u64,
    /// Per normalized field (`claim_type`, `lines`, …): compared claims whose value differs.
    pub field_changes: BTreeMap<String, u64>,
}

/// One claim as field hashes (values are not kept).
struct Fingerprint {
    accepted: bool,
    fields: Vec<(String, u64)>,
}

fn fingerprint(claim: &serde_json::Value, accepted: bool) -> Fingerprint {
    let fields = claim
        .as_object()
        .map(|map| {
            map.iter()
                .filter(|(key, _)| !matches!(key.as_str(), "kind" | "record" | "accepted"))
                .map(|(key, value)| {
                    let mut hasher = std::collections::hash_map::DefaultHasher::new();
                    value.to_string().hash(&mut hasher);
                    (key.clone(), hasher.finish())
                })
                .collect()
        })
        .unwrap_or_default();
    Fingerprint { accepted, fields }
}

impl Impact {
    /// Reads one file with both mappings (`current_input` and `candidate_input` are the
    /// same file, opened twice) and adds the comparison.
    pub fn add_file(
        &mut self,
        (current, current_input): (&MappingChoice, impl Read),
        (candidate, candidate_input): (&MappingChoice, impl Read),
    ) -> std::io::Result<()> {
        let mut kept = Vec::new();
        let mut beyond = 0u64;
        let before = preview(
            current,
            current_input,
            &mut |mapped| {
                if kept.len() < MAX_COMPARED_PER_FILE {
                    kept.push(fingerprint(&claim_json(mapped), mapped.accepted));
                } else {
                    beyond += 1;
                }
            },
            &mut |_| {},
        )?;
        let mut index = 0usize;
        let after = preview(
            candidate,
            candidate_input,
            &mut |mapped| {
                let Some(old) = kept.get(index) else {
                    index += 1;
                    return;
                };
                index += 1;
                let new = fingerprint(&claim_json(mapped), mapped.accepted);
                self.claims_compared += 1;
                match (old.accepted, new.accepted) {
                    (true, false) => self.newly_rejected += 1,
                    (false, true) => self.newly_accepted += 1,
                    _ => {}
                }
                let old_fields: BTreeMap<&str, u64> =
                    old.fields.iter().map(|(k, h)| (k.as_str(), *h)).collect();
                for (key, hash) in &new.fields {
                    if old_fields.get(key.as_str()) != Some(hash) {
                        *self.field_changes.entry(key.clone()).or_default() += 1;
                    }
                }
            },
            &mut |_| {},
        )?;
        let compared = index.min(kept.len()) as u64;
        let unpaired = (kept.len() as u64).saturating_sub(compared)
            + (index as u64).saturating_sub(kept.len() as u64);
        self.claims_not_compared += beyond + unpaired;
        self.files += 1;
        self.current.add(&Outcome::of(&before));
        self.candidate.add(&Outcome::of(&after));
        Ok(())
    }

    /// Adds another comparison (of other files) to this one.
    pub fn absorb(&mut self, other: Impact) {
        self.files += other.files;
        self.claims_compared += other.claims_compared;
        self.claims_not_compared += other.claims_not_compared;
        self.current.add(&other.current);
        self.candidate.add(&other.candidate);
        self.newly_rejected += other.newly_rejected;
        self.newly_accepted += other.newly_accepted;
        for (field, n) in other.field_changes {
            *self.field_changes.entry(field).or_default() += n;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const CSV: &str = "ID,TYPE,AMOUNT\nA1,p,10.00\nA2,p,20.00\nA3,i,x\n";

    fn mapping(claim_type: &str, amount: &str) -> MappingChoice {
        MappingChoice::resolve(&format!(
            "name = \"t\"\nformat = \"csv\"\n[claim]\nsource_claim_id = {{ column = \"ID\" }}\n\
             claim_type = {{ column = \"TYPE\", transforms = [{{ map = {{ p = \"professional\", i = \"{claim_type}\" }} }}] }}\n\
             total_charge = {{ column = \"AMOUNT\"{amount} }}\n"
        ))
        .unwrap()
    }

    #[test]
    fn counts_changed_fields_and_moved_acceptance_without_keeping_values() {
        let current = mapping("institutional", "");
        let candidate = mapping("professional", ", transforms = [{ default = \"0\" }]");
        let mut impact = Impact::default();
        impact
            .add_file((&current, CSV.as_bytes()), (&candidate, CSV.as_bytes()))
            .unwrap();
        assert_eq!(impact.files, 1);
        assert_eq!(impact.claims_compared, 3);
        assert_eq!(impact.claims_not_compared, 0);
        assert_eq!(impact.field_changes.get("claim_type"), Some(&1));
        assert_eq!(impact.field_changes.get("source_claim_id"), None);
        assert_eq!(impact.current.records, 3);
        // The same mapping twice changes nothing.
        let mut same = Impact::default();
        same.add_file((&current, CSV.as_bytes()), (&current, CSV.as_bytes()))
            .unwrap();
        assert!(same.field_changes.is_empty(), "{:?}", same.field_changes);
        assert_eq!((same.newly_accepted, same.newly_rejected), (0, 0));
        let text = serde_json::to_string(&impact).unwrap();
        assert!(!text.contains("A1") && !text.contains("10.00"), "{text}");
    }
}
