//! Reader tests: the public corpus against independent tools' figures, generated inputs,
//! limits and hostile inputs.
//!
//! The corpus lives in `../shared/corpus` beside the repository (override with
//! `CLAIMGATE_TEST_CORPUS`). Without it the corpus tests say so on standard error and
//! pass, unless `CLAIMGATE_TEST_REQUIRE_CORPUS=1` (CI sets it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod cli;
mod corpus;
mod csv;
mod fhir;
mod fixed_width;
mod fuzz_replay;
mod x12;
mod xml;

use claimgate::findings::Finding;
use claimgate::mapping::Plan;
use claimgate::pipeline::{MappedClaim, MappingChoice, Summary, preview};

/// Previews `bytes` with `plan`: the summary, every mapped claim, and the findings that
/// belong to no record.
pub fn run_plan(plan: Plan, bytes: &[u8]) -> (Summary, Vec<MappedClaim>, Vec<Finding>) {
    let (mut claims, mut file) = (Vec::new(), Vec::new());
    let summary = preview(
        &MappingChoice::One(Box::new(plan)),
        bytes,
        &mut |c| claims.push(c.clone()),
        &mut |f| file.push(f.clone()),
    )
    .unwrap();
    (summary, claims, file)
}
