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
mod x12;
mod xml;
