//! The stored shape of uploads (the job queue) and rejects.

use time::OffsetDateTime;

use crate::formats::x12::InterchangeId;

/// A received file to record.
#[derive(Debug, Clone)]
pub struct NewUpload<'a> {
    /// The upload id (the raw file's id).
    pub upload_id: &'a str,
    /// Who sent it (`None` from the operator console).
    pub submitted_by: Option<i64>,
    /// SHA-256 of the file as received.
    pub sha256: &'a [u8],
    /// Its size.
    pub size_bytes: i64,
    /// The client's `Idempotency-Key`, if any.
    pub idempotency_key: Option<&'a str>,
    /// The identity of the X12 interchange the file starts with, if it does.
    pub interchange: Option<&'a InterchangeId>,
}

/// An upload as stored: state, counts, times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRow {
    /// Id.
    pub upload_id: String,
    /// Provider code.
    pub provider: String,
    /// SHA-256 (hex).
    pub sha256: String,
    /// Size in bytes.
    pub size_bytes: i64,
    /// `received`, `processing`, `done` or `failed`.
    pub state: String,
    /// Why it failed (a stable code).
    pub failure: Option<String>,
    /// Processing attempts so far.
    pub attempts: i32,
    /// The last record whose outcome is committed.
    pub checkpoint: i64,
    /// Counts committed with the checkpoint.
    pub counts: UploadCounts,
    /// Received.
    pub received_at: OffsetDateTime,
    /// Processing started (the last attempt).
    pub started_at: Option<OffsetDateTime>,
    /// Done or failed.
    pub finished_at: Option<OffsetDateTime>,
}

/// What an upload's processing has counted (cumulative up to the checkpoint).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UploadCounts {
    /// Source records read (rows for line-level files, claims otherwise).
    pub records: i64,
    /// Records accepted.
    pub accepted: i64,
    /// Records rejected.
    pub rejected: i64,
    /// Rows left out by the mapping's filter.
    pub skipped: i64,
    /// Claims read.
    pub claims: i64,
    /// Lines read.
    pub lines: i64,
    /// Accepted replacements (frequency 7).
    pub replaced: i64,
    /// Accepted voids (frequency 8).
    pub voided: i64,
    /// Replacements and voids that name no earlier claim (kept, flagged).
    pub unmatched: i64,
    /// Sum of claim total charges, in cents.
    pub total_charge_cents: i64,
    /// Sum of line charges, in cents.
    pub line_charge_cents: i64,
}

/// An upload claimed by a worker.
#[derive(Debug, Clone)]
pub struct ClaimedUpload {
    /// Id.
    pub upload_id: String,
    /// Provider code.
    pub provider: String,
    /// The mapping version active when the upload was received (`None`: there was none).
    pub mapping: Option<String>,
    /// Resume after this record.
    pub checkpoint: i64,
    /// Counts committed with the checkpoint.
    pub counts: UploadCounts,
    /// This attempt's number.
    pub attempts: i32,
}

/// One refused record's finding (positions and codes; never a value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectRow {
    /// Its place among the upload's findings (the same on every attempt).
    pub ordinal: i64,
    /// The record (0: the file as a whole, such as its envelope).
    pub record_no: i64,
    /// Line in the file, from 1 (0 when unknown).
    pub line_no: i64,
    /// Byte offset in the file.
    pub byte_offset: i64,
    /// X12 segment position, when there is one.
    pub segment: Option<String>,
    /// The field (the mapping's path or the source's).
    pub field: Option<String>,
    /// Stable code.
    pub code: String,
    /// `error` or `warning`.
    pub severity: String,
    /// Fixed message (no values).
    pub message: String,
}

/// One batch of an upload's outcome, committed together with its checkpoint.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// Accepted claims to store.
    pub claims: Vec<crate::store::ClaimRow>,
    /// Findings of rejected records (and of the file).
    pub rejects: Vec<RejectRow>,
    /// The last record covered.
    pub checkpoint: i64,
    /// Cumulative counts up to `checkpoint`.
    pub counts: UploadCounts,
}

/// A batch's place in its upload's commit order. Batches of one upload may be written at
/// the same time (PostgreSQL), but each takes the upload row's lock, and so commits, only
/// after the batch before it holds that lock; each names the checkpoint it follows, so it
/// commits only on top of the one before it.
#[derive(Debug)]
pub struct BatchTurn {
    /// The checkpoint of the batch before this one (the upload's committed checkpoint for
    /// the first batch of an attempt).
    pub after: i64,
    /// Fires once the batch before holds the upload row (`None`: none is in flight).
    pub previous: Option<tokio::sync::oneshot::Receiver<()>>,
    /// Fired once this batch holds the upload row.
    pub holding: Option<tokio::sync::oneshot::Sender<()>>,
}
