//! Processes one claimed upload: raw file → read → map → validate → protect → batched
//! writes, each batch committed with its checkpoint; then the accounting check and the end
//! state. A resumed upload re-reads the file and skips the records already committed,
//! so a crash at any point neither loses nor doubles a record.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use futures_util::stream::FuturesOrdered;

use crate::audit::{AuditEvent, EventKind, Outcome};
use crate::findings::Finding;
use crate::keyring::{Keyring, KeyringError};
use crate::pipeline::{MappedClaim, MappingChoice, Summary, preview};
use crate::protect::ClaimSealer;
use crate::providers::ProviderCode;
use crate::raw_store::{RawStore, RawStoreError};
use crate::store::{
    Batch, BatchPlan, BatchTurn, BatchWriter, ClaimKey, ClaimedUpload, RejectRow, Store,
    StoreError, UploadCounts,
};

use super::metrics::{Alert, Metrics};

/// Why processing stopped before an end state was recorded (the upload stays claimed
/// until its lease expires, then another attempt resumes it).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Keys could not be had.
    #[error(transparent)]
    Keyring(#[from] KeyringError),
    /// The raw file could not be opened.
    #[error(transparent)]
    RawStore(#[from] RawStoreError),
    /// The reading thread ended abnormally.
    #[error("the reading thread failed")]
    Thread,
}

/// How an upload ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// Every record accounted for.
    Done,
    /// Failed with a stable code (`mapping_missing`, `mapping_invalid`, `key_destroyed`,
    /// `format_mismatch`, `raw_file_unreadable`, `accounting_mismatch`,
    /// `reader_panicked`).
    Failed(&'static str),
}

/// Settings of the runner.
#[derive(Debug, Clone, Copy)]
pub struct RunnerSettings {
    /// Claims per committed batch.
    pub batch_claims: usize,
    /// How long a claimed upload is held without progress before another worker may
    /// take it over.
    pub lease: Duration,
}

/// What runs uploads: the store, keys, the raw store and the counters.
#[derive(Debug, Clone)]
pub struct Runner {
    /// The store.
    pub store: Store,
    /// Provider keys.
    pub keyring: Arc<Keyring>,
    /// Raw files.
    pub raw: Arc<RawStore>,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Batch size and lease.
    pub settings: RunnerSettings,
}

/// A message from the reading thread.
enum Step {
    Batch(Batch),
    End(std::io::Result<Summary>),
}

/// The next batch from the reading side; an end step is kept in `outcome` and skipped.
/// `None` once the reading side is done.
async fn next_batch(
    receiver: &mut tokio::sync::mpsc::Receiver<Step>,
    outcome: &mut Option<std::io::Result<Summary>>,
) -> Option<Batch> {
    while let Some(step) = receiver.recv().await {
        match step {
            Step::Batch(batch) => return Some(batch),
            Step::End(end) => *outcome = Some(end),
        }
    }
    None
}

impl Runner {
    /// Processes `job` for worker `owner` to its end state. `progress` receives the raw
    /// bytes read so far (for a progress display).
    pub async fn run(
        &self,
        job: &ClaimedUpload,
        owner: &str,
        progress: Option<Arc<AtomicU64>>,
    ) -> Result<Ending, RunError> {
        let provider = ProviderCode::parse(&job.provider)
            .map_err(|_| StoreError::Database("stored provider code is invalid".into()))?;
        let mapping = match job.mapping.as_deref().map(MappingChoice::resolve) {
            None => {
                return self
                    .end(job, owner, Ending::Failed("mapping_missing"))
                    .await;
            }
            Some(Err(_)) => {
                return self
                    .end(job, owner, Ending::Failed("mapping_invalid"))
                    .await;
            }
            Some(Ok(mapping)) => mapping,
        };
        let x12 = match &mapping {
            MappingChoice::X12ByVersion { .. } => true,
            MappingChoice::One(plan) => plan.format == crate::mapping::definition::Format::X12,
        };
        let sealer = ClaimSealer::for_provider(&self.keyring, &provider).await?;
        let reader = match self.raw.open(&provider, &job.upload_id).await {
            Ok(reader) => reader,
            Err(RawStoreError::Keyring(KeyringError::KeyDestroyed(_))) => {
                return self.end(job, owner, Ending::Failed("key_destroyed")).await;
            }
            Err(e) => return Err(e.into()),
        };
        let resume_rejects = self.store.reject_ordinal(&provider, &job.upload_id).await?;
        let plan = self.store.batch_plan();
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<Step>(plan.queued.max(1));
        let reading = Reading {
            upload_id: job.upload_id.clone(),
            checkpoint: job.checkpoint,
            resume_rejects,
            batch_claims: self.settings.batch_claims.max(1),
            sealer,
            sender,
            metrics: self.metrics.clone(),
        };
        let thread = tokio::task::spawn_blocking(move || reading.run(mapping, reader, progress));
        let outcome = if plan.concurrent > 1 {
            self.write_concurrently(&provider, job, owner, &mut receiver, plan.concurrent)
                .await
        } else {
            self.write_grouped(&provider, job, owner, &mut receiver, &plan)
                .await
        };
        // On an error the receiver goes with this frame and the reading thread stops.
        drop(receiver);
        let outcome = outcome?;
        if let Some(ending) = thread_ending(thread.await, &job.upload_id)? {
            return self.end(job, owner, ending).await;
        }
        let summary = match outcome {
            Some(Ok(summary)) => summary,
            Some(Err(_)) => {
                return self
                    .end(job, owner, Ending::Failed("raw_file_unreadable"))
                    .await;
            }
            None => return Err(RunError::Thread),
        };
        if summary.records == 0 && summary.claims == 0 {
            return self
                .end(job, owner, Ending::Failed("format_mismatch"))
                .await;
        }
        // Accounting: every record read is accepted or rejected (or left out by the
        // mapping's filter), and the store holds exactly the accepted claims.
        let (stored, rejected_claims) =
            self.store.upload_outcome(&provider, &job.upload_id).await?;
        let row = self
            .store
            .upload(Some(&provider), &job.upload_id)
            .await?
            .ok_or(StoreError::NotFound)?;
        let counts = row.counts;
        let balanced = summary.records == summary.accepted + summary.rejected + summary.skipped
            && i64::try_from(summary.records).ok() == Some(counts.records)
            && stored + rejected_claims == counts.claims;
        if !balanced {
            tracing::error!(upload = %job.upload_id, "accounting check failed");
            return self
                .end(job, owner, Ending::Failed("accounting_mismatch"))
                .await;
        }
        let ack = if x12 {
            self.acknowledgement(&provider, &job.upload_id).await?
        } else {
            None
        };
        self.finish(job, owner, Ending::Done, ack.as_deref()).await
    }

    /// Writes batches with up to `depth` in flight, each committed in its own transaction
    /// in turn (PostgreSQL: the next batch's rows are written while the one before
    /// commits). Returns how reading ended.
    async fn write_concurrently(
        &self,
        provider: &ProviderCode,
        job: &ClaimedUpload,
        owner: &str,
        receiver: &mut tokio::sync::mpsc::Receiver<Step>,
        depth: usize,
    ) -> Result<Option<std::io::Result<Summary>>, RunError> {
        let mut commits = FuturesOrdered::new();
        let mut after = job.checkpoint;
        let mut previous = None;
        let mut outcome = None;
        let mut reading = true;
        loop {
            tokio::select! {
                step = receiver.recv(), if reading && commits.len() < depth => match step {
                    Some(Step::Batch(batch)) => {
                        let (holding, next) = tokio::sync::oneshot::channel();
                        let turn = BatchTurn { after, previous: previous.take(), holding: Some(holding) };
                        previous = Some(next);
                        after = batch.checkpoint;
                        commits.push_back(self.commit(provider, job, owner, batch, turn));
                    }
                    Some(Step::End(end)) => outcome = Some(end),
                    None => reading = false,
                },
                Some(committed) = commits.next(), if !commits.is_empty() => committed?,
                else => break,
            }
        }
        Ok(outcome)
    }

    /// Writes batches one at a time into a shared transaction, committed when it holds
    /// enough rows or has held the write lock long enough under `plan`, or when no batch
    /// is waiting (SQLite: fewer, larger commits). Returns how reading ended.
    async fn write_grouped(
        &self,
        provider: &ProviderCode,
        job: &ClaimedUpload,
        owner: &str,
        receiver: &mut tokio::sync::mpsc::Receiver<Step>,
        plan: &BatchPlan,
    ) -> Result<Option<std::io::Result<Summary>>, RunError> {
        // One writer for the whole upload (on SQLite, one connection whose page cache
        // stays warm across its transactions).
        let mut writer = BatchWriter::default();
        let mut after = job.checkpoint;
        let mut outcome = None;
        while let Some(mut batch) = next_batch(receiver, &mut outcome).await {
            let mut open = self.store.begin_batches(&mut writer, provider).await?;
            loop {
                let started = Instant::now();
                let turn = BatchTurn {
                    after,
                    previous: None,
                    holding: None,
                };
                self.store
                    .write_batch(
                        &mut open,
                        (&job.upload_id, owner),
                        self.settings.lease,
                        &batch,
                        turn,
                    )
                    .await?;
                after = batch.checkpoint;
                if open.due(plan) || receiver.is_empty() {
                    // The last batch of the transaction is timed with its commit.
                    self.store.commit_batches(open).await?;
                    self.metrics.batch(&batch, started.elapsed());
                    break;
                }
                self.metrics.batch(&batch, started.elapsed());
                match next_batch(receiver, &mut outcome).await {
                    Some(next) => batch = next,
                    None => {
                        self.store.commit_batches(open).await?;
                        break;
                    }
                }
            }
        }
        Ok(outcome)
    }

    /// Commits one batch in its turn and counts it.
    async fn commit(
        &self,
        provider: &ProviderCode,
        job: &ClaimedUpload,
        owner: &str,
        batch: Batch,
        turn: BatchTurn,
    ) -> Result<(), StoreError> {
        let started = Instant::now();
        self.store
            .commit_batch(
                (provider, &job.upload_id, owner),
                self.settings.lease,
                &batch,
                turn,
            )
            .await?;
        self.metrics.batch(&batch, started.elapsed());
        Ok(())
    }

    /// The 999 of an X12 upload: the raw file read again for its envelope, with the
    /// syntax findings recorded in its rejects.
    async fn acknowledgement(
        &self,
        provider: &ProviderCode,
        upload_id: &str,
    ) -> Result<Option<String>, RunError> {
        let findings: Vec<super::ack999::SyntaxFinding> = self
            .store
            .syntax_findings(provider, upload_id, 10_000)
            .await?
            .into_iter()
            .filter_map(|(segment, code)| {
                Some(super::ack999::SyntaxFinding {
                    segment: segment.parse().ok()?,
                    code,
                })
            })
            .collect();
        let reader = self.raw.open(provider, upload_id).await?;
        let control = u32::from_str_radix(upload_id.get(..7).unwrap_or("1"), 16).unwrap_or(1);
        let now = time::OffsetDateTime::now_utc();
        let built = tokio::task::spawn_blocking(move || {
            super::ack999::build(std::io::BufReader::new(reader), &findings, control, now)
        })
        .await
        .map_err(|_| RunError::Thread)?;
        Ok(built.unwrap_or_else(|_| {
            tracing::warn!(upload = %upload_id, "the 999 could not be made: the raw file did not read");
            None
        }))
    }

    async fn end(
        &self,
        job: &ClaimedUpload,
        owner: &str,
        ending: Ending,
    ) -> Result<Ending, RunError> {
        self.finish(job, owner, ending, None).await
    }

    async fn finish(
        &self,
        job: &ClaimedUpload,
        owner: &str,
        ending: Ending,
        ack: Option<&str>,
    ) -> Result<Ending, RunError> {
        let failure = match &ending {
            Ending::Done => None,
            Ending::Failed(code) => Some(*code),
        };
        let (kind, outcome) = match failure {
            None => (EventKind::UploadProcessed, Outcome::Success),
            Some(_) => (EventKind::UploadRejected, Outcome::Denied),
        };
        let mut event = AuditEvent::new(kind, outcome);
        event.provider = Some(job.provider.clone());
        event.resource = Some(format!("upload:{}", job.upload_id));
        event.reason = failure;
        let counts = self
            .store
            .upload(None, &job.upload_id)
            .await?
            .map(|row| row.counts)
            .unwrap_or_default();
        event.records = u64::try_from(counts.records).ok();
        self.store
            .finish_upload(&job.upload_id, owner, (failure, ack), &event)
            .await?;
        self.metrics.finished(failure.is_none(), &counts);
        tracing::info!(
            upload = %job.upload_id,
            provider = %job.provider,
            attempt = job.attempts,
            records = counts.records,
            accepted = counts.accepted,
            rejected = counts.rejected,
            failure = failure.unwrap_or(""),
            "upload finished"
        );
        Ok(ending)
    }
}

/// How the reading thread ended, once joined: normally (`None`), or with a panic, which
/// is the file's doing (a bug it hits in a reader or mapping) and ends the upload as
/// failed with `reader_panicked` rather than leaving it to be retried, and panic, again
/// after every lease. A thread cancelled with the runtime is an error: the upload
/// resumes later.
fn thread_ending(
    joined: Result<(), tokio::task::JoinError>,
    upload_id: &str,
) -> Result<Option<Ending>, RunError> {
    match joined {
        Ok(()) => Ok(None),
        Err(e) if e.is_panic() => {
            tracing::error!(alert = "reader_panicked", upload = %upload_id, "reading the upload panicked; it is failed, not retried");
            Ok(Some(Ending::Failed("reader_panicked")))
        }
        Err(_) => Err(RunError::Thread),
    }
}

/// The reading side, on a blocking thread: read, map, validate, seal, batch.
struct Reading {
    upload_id: String,
    checkpoint: i64,
    resume_rejects: i64,
    batch_claims: usize,
    sealer: ClaimSealer,
    sender: tokio::sync::mpsc::Sender<Step>,
    metrics: Arc<Metrics>,
}

/// A reader that counts the bytes it yields.
struct Counted<R> {
    inner: R,
    count: Option<Arc<AtomicU64>>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(count) = &self.count {
            count.fetch_add(n as u64, Ordering::Relaxed);
        }
        Ok(n)
    }
}

impl Reading {
    fn run(self, mapping: MappingChoice, reader: impl Read, progress: Option<Arc<AtomicU64>>) {
        let input = std::io::BufReader::with_capacity(
            256 * 1024,
            Counted {
                inner: reader,
                count: progress,
            },
        );
        let mut state = BatchState {
            upload_id: &self.upload_id,
            checkpoint: self.checkpoint,
            resume_rejects: self.resume_rejects,
            batch_claims: self.batch_claims,
            sealer: &self.sealer,
            sender: &self.sender,
            batch: Batch::default(),
            counts: UploadCounts::default(),
            ordinal: 0,
            broken: false,
            limit_hits: 0,
        };
        let mut file_findings = Vec::new();
        let result = preview(
            &mapping,
            input,
            &mut |mapped| state.claim(mapped),
            &mut |finding| file_findings.push(finding.clone()),
        );
        let end = match result {
            Ok(summary) if !state.broken => {
                for finding in &file_findings {
                    state.reject(0, finding);
                }
                state.counts.records = i64::try_from(summary.records).unwrap_or(i64::MAX);
                state.counts.accepted = i64::try_from(summary.accepted).unwrap_or(i64::MAX);
                state.counts.rejected = i64::try_from(summary.rejected).unwrap_or(i64::MAX);
                state.counts.skipped = i64::try_from(summary.skipped).unwrap_or(i64::MAX);
                state.flush(true);
                Ok(summary)
            }
            Ok(_) => Err(std::io::Error::other("the writer stopped")),
            Err(e) => Err(e),
        };
        if state.limit_hits > 0 {
            tracing::warn!(
                alert = Alert::ParserLimit.code(),
                upload = %self.upload_id,
                findings = state.limit_hits,
                "the upload hit a reader's resource limit (the shape of a parser bomb)"
            );
            self.metrics.alert(Alert::ParserLimit);
        }
        let _ = self.sender.blocking_send(Step::End(end));
    }
}

struct BatchState<'a> {
    upload_id: &'a str,
    checkpoint: i64,
    resume_rejects: i64,
    batch_claims: usize,
    sealer: &'a ClaimSealer,
    sender: &'a tokio::sync::mpsc::Sender<Step>,
    batch: Batch,
    counts: UploadCounts,
    ordinal: i64,
    broken: bool,
    /// Rejects (recorded in this run) that say a reader's resource limit was hit.
    limit_hits: u64,
}

impl BatchState<'_> {
    fn claim(&mut self, mapped: &MappedClaim) {
        if self.broken {
            return;
        }
        let record = i64::try_from(mapped.position.record).unwrap_or(i64::MAX);
        let c = &mut self.counts;
        let records = i64::try_from(mapped.records).unwrap_or(i64::MAX);
        c.records += records;
        c.claims += 1;
        c.lines += mapped.claim.lines.len() as i64;
        c.total_charge_cents += mapped.claim.total_charge.map_or(0, |m| m.cents());
        c.line_charge_cents += mapped
            .claim
            .lines
            .iter()
            .filter_map(|l| l.charge)
            .map(|m| m.cents())
            .sum::<i64>();
        if mapped.accepted {
            c.accepted += records;
            match mapped.claim.frequency {
                crate::claims::Frequency::Replacement => c.replaced += 1,
                crate::claims::Frequency::Void => c.voided += 1,
                _ => {}
            }
        } else {
            c.rejected += records;
        }
        let resumed = record <= self.checkpoint;
        if mapped.accepted {
            if !resumed {
                let key = ClaimKey {
                    upload_id: self.upload_id.to_owned(),
                    record_no: record,
                };
                match self.sealer.seal(key, &mapped.claim) {
                    Ok(row) => self.batch.claims.push(row),
                    Err(_) => {
                        self.broken = true;
                        return;
                    }
                }
            }
        } else if mapped.findings.is_empty() {
            // Rejected without a finding of its own (an unreadable record): still one row.
            let finding = Finding::error(
                "record.unreadable",
                mapped.position.clone(),
                "the record could not be read",
            );
            self.reject(record, &finding);
        } else {
            for finding in &mapped.findings {
                self.reject(record, finding);
            }
        }
        self.batch.checkpoint = record.max(self.checkpoint);
        if self.batch.claims.len() + self.batch.rejects.len() >= self.batch_claims {
            self.flush(false);
        }
    }

    fn reject(&mut self, record: i64, finding: &Finding) {
        self.ordinal += 1;
        if self.ordinal <= self.resume_rejects {
            return;
        }
        if finding.is_resource_limit() {
            self.limit_hits += 1;
        }
        let p = &finding.position;
        self.batch.rejects.push(RejectRow {
            ordinal: self.ordinal,
            record_no: record,
            line_no: i64::try_from(p.line).unwrap_or(i64::MAX),
            byte_offset: i64::try_from(p.byte).unwrap_or(i64::MAX),
            segment: p.segment.map(|s| s.to_string()),
            field: p.path.clone(),
            code: finding.code.to_owned(),
            severity: finding.severity.as_str().to_owned(),
            message: finding.message.clone(),
        });
    }

    /// Sends the batch (with the counts so far) to be committed; waits while the queue
    /// is full (back-pressure keeps memory flat). The last one always goes: it
    /// carries the final counts.
    fn flush(&mut self, last: bool) {
        if self.broken {
            return;
        }
        if !last && self.batch.claims.is_empty() && self.batch.rejects.is_empty() {
            return;
        }
        let mut batch = std::mem::take(&mut self.batch);
        batch.counts = self.counts;
        self.batch.checkpoint = batch.checkpoint;
        if self.sender.blocking_send(Step::Batch(batch)).is_err() {
            self.broken = true;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    /// RS-07: a reading thread that panics fails its upload for good; one that ends
    /// normally does not; one cancelled with its runtime is left to resume.
    #[tokio::test]
    async fn a_panicking_reader_fails_its_upload_instead_of_looping() {
        let panicked = tokio::task::spawn_blocking(|| panic!("a reader bug")).await;
        assert_eq!(
            thread_ending(panicked, "u1").unwrap(),
            Some(Ending::Failed("reader_panicked"))
        );
        let normal = tokio::task::spawn_blocking(|| ()).await;
        assert_eq!(thread_ending(normal, "u2").unwrap(), None);
        let stalled = tokio::spawn(std::future::pending::<()>());
        stalled.abort();
        let cancelled = stalled.await;
        assert!(matches!(
            thread_ending(cancelled, "u3"),
            Err(RunError::Thread)
        ));
    }
}
