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

pub use metrics::{Alert, Metrics};
pub use runner::{Ending, RunError, Runner, RunnerSettings};
pub use worker::spawn_workers;

use std::sync::Arc;

use time::format_description::well_known::Rfc3339;

use crate::audit::{AuditEvent, EventKind};
use crate::formats::x12::InterchangeId;
use crate::providers::ProviderCode;
use crate::raw_store::{RawFileWriter, RawStore, RawStoreError};
use crate::store::{NewUpload, Store, StoreError, UploadRow};

/// Why a received file could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// The raw store failed.
    #[error(transparent)]
    RawStore(#[from] RawStoreError),
    /// The database failed (or refused: a disabled provider).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The file repeats an X12 interchange (sender, receiver, ISA13) that upload
    /// `earlier` carried, and the provider's control numbers are unique: it was not
    /// recorded and its bytes are gone.
    #[error("the interchange was received before, as upload {earlier}")]
    InterchangeReplay {
        /// The upload that carried the interchange first.
        earlier: String,
        /// Bytes received of the refused file.
        received: u64,
    },
}

/// Where every channel (HTTPS, SFTP) hands a completely received file: the raw store,
/// the queue and the counters.
#[derive(Debug, Clone)]
pub struct Intake {
    /// The store.
    pub store: Store,
    /// The encrypted raw store.
    pub raw: Arc<RawStore>,
    /// Ingest counters.
    pub metrics: Arc<Metrics>,
    /// Wakes an idle worker when an upload is queued.
    pub wake: Arc<tokio::sync::Notify>,
}

impl Intake {
    /// Records the file `writer` holds as an upload of `provider`, queued and audited
    /// with `event` (its resource is set to the upload). The same file sent before (same
    /// provider and SHA-256) is answered with the earlier upload and `false`, audited as
    /// `upload.duplicate`, and no second copy is kept. A new file that repeats an X12
    /// interchange already received is [`IntakeError::InterchangeReplay`] (for the
    /// channel to refuse and audit) when the provider's control numbers are unique.
    pub async fn record(
        &self,
        provider: &ProviderCode,
        writer: RawFileWriter,
        submitted_by: Option<i64>,
        idempotency_key: Option<&str>,
        mut event: AuditEvent,
    ) -> Result<(UploadRow, bool), IntakeError> {
        let size = writer.received();
        let sha256 = writer.sha256();
        if let Some(earlier) = self.store.upload_by_sha256(provider, &sha256).await? {
            drop(writer);
            self.duplicate(&event, &earlier, size).await?;
            return Ok((earlier, false));
        }
        let interchange = InterchangeId::of_head(writer.head());
        if let Some(id) = &interchange {
            if let Some(earlier) = self.store.interchange_holder(provider, id).await? {
                drop(writer);
                return Err(IntakeError::InterchangeReplay {
                    earlier,
                    received: size,
                });
            }
        }
        let stored = self.raw.commit(writer).await?;
        event.resource = Some(format!("upload:{}", stored.file_id));
        let (row, created) = self
            .store
            .create_upload(
                provider,
                &NewUpload {
                    upload_id: &stored.file_id,
                    submitted_by,
                    sha256: &sha256,
                    size_bytes: i64::try_from(size).unwrap_or(i64::MAX),
                    idempotency_key,
                    interchange: interchange.as_ref(),
                },
                &event,
            )
            .await
            .map_err(|e| match e {
                // Another file of the same interchange was recorded first, concurrently;
                // this one's raw file stays unreferenced in the raw store.
                StoreError::InterchangeReplay(earlier) => IntakeError::InterchangeReplay {
                    earlier,
                    received: size,
                },
                other => other.into(),
            })?;
        if created {
            self.metrics.received(size, false);
            self.wake.notify_one();
        } else {
            self.duplicate(&event, &row, size).await?;
        }
        Ok((row, created))
    }

    /// Counts and audits (`upload.duplicate`, with the earlier upload as its resource) a
    /// file answered with `earlier`; the audit event of the upload it repeats is `event`.
    async fn duplicate(
        &self,
        event: &AuditEvent,
        earlier: &UploadRow,
        size: u64,
    ) -> Result<(), IntakeError> {
        self.metrics.received(size, true);
        let mut duplicate = event.clone();
        duplicate.kind = EventKind::UploadDuplicate;
        duplicate.resource = Some(format!("upload:{}", earlier.upload_id));
        self.store.append_audit(&duplicate).await?;
        Ok(())
    }
}

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
