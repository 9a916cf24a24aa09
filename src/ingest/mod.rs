//! Ingest: a received file becomes stored, encrypted, accounted-for claims.
//!
//! ```text
//!  upload (HTTPS / console) ──► raw store (encrypted, SHA-256) ──► uploads row (queue)
//!      ──► worker claims it (lease) ──► runner: read → map → validate → protect
//!      ──► batches committed with their checkpoint ──► accounting check ──► done | failed
//! ```
//!
//! [`runner`] processes one upload; [`worker`] runs the queue; [`metrics`] counts.

pub mod ack999;
pub mod metrics;
pub mod runner;
pub mod worker;

pub use metrics::Metrics;
pub use runner::{Ending, RunError, Runner, RunnerSettings};
pub use worker::spawn_workers;

use time::format_description::well_known::Rfc3339;

use crate::store::UploadRow;

/// The receipt of an upload as JSON.
pub fn receipt_json(row: &UploadRow) -> serde_json::Value {
    let time = |t: Option<time::OffsetDateTime>| t.and_then(|t| t.format(&Rfc3339).ok());
    let c = &row.counts;
    let seconds = match (row.started_at, row.finished_at) {
        (Some(start), Some(end)) => Some((end - start).as_seconds_f64()),
        _ => None,
    };
    serde_json::json!({
        "upload_id": row.upload_id,
        "provider": row.provider,
        "state": row.state,
        "failure": row.failure,
        "sha256": row.sha256,
        "size_bytes": row.size_bytes,
        "attempts": row.attempts,
        "counts": {
            "records_read": c.records,
            "accepted": c.accepted,
            "rejected": c.rejected,
            "skipped": c.skipped,
            "claims": c.claims,
            "lines": c.lines,
            "replaced": c.replaced,
            "voided": c.voided,
            "unmatched": c.unmatched,
        },
        "control_totals": {
            "total_charge_cents": c.total_charge_cents,
            "line_charge_cents": c.line_charge_cents,
        },
        "received_at": time(Some(row.received_at)),
        "started_at": time(row.started_at),
        "finished_at": time(row.finished_at),
        "processing_seconds": seconds,
        "rejects_url": format!("/v1/uploads/{}/rejects", row.upload_id),
    })
}
