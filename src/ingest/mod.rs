//! Ingest: a received file becomes stored, encrypted, accounted-for claims.
//!
//! ```text
//!  upload (HTTPS / console) ──► raw store (encrypted, SHA-256) ──► uploads row (queue)
//!      ──► worker claims it (lease) ──► runner: read → map → validate → protect
//!      ──► batches committed with their checkpoint ──► accounting check ──► done | failed
//! ```
//!
//! [`runner`] processes one upload; [`worker`] runs the queue; [`metrics`] counts.

pub mod metrics;
pub mod runner;
pub mod worker;

pub use metrics::Metrics;
pub use runner::{Ending, RunError, Runner, RunnerSettings};
pub use worker::spawn_workers;
