//! Workers: each claims the next upload from the queue (the `uploads` table), runs it to
//! its end state, and claims again; between jobs it waits for a new upload or a poll tick.
//! Several gateway processes on one PostgreSQL share the queue (`FOR UPDATE SKIP
//! LOCKED`); a worker that dies leaves a lease that expires, and the next worker resumes
//! the upload from its last committed checkpoint.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::runner::Runner;

/// How long an idle worker waits before looking at the queue again (a new upload in this
/// process wakes it at once; this bounds the wait for one from another process or for an
/// expired lease).
const POLL: Duration = Duration::from_secs(1);

/// A unique name for a worker: host process and a random suffix.
pub fn worker_name(index: usize) -> String {
    let mut random = [0u8; 4];
    let _ = aws_lc_rs::rand::fill(&mut random);
    format!("{}-{}-{index}", std::process::id(), hex::encode(random))
}

/// Starts `count` workers; `wake` is notified when an upload arrives.
pub fn spawn_workers(
    runner: Runner,
    count: usize,
    wake: Arc<Notify>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..count)
        .map(|index| {
            let runner = runner.clone();
            let wake = Arc::clone(&wake);
            tokio::spawn(async move {
                let owner = worker_name(index);
                loop {
                    match runner
                        .store
                        .claim_upload(&owner, runner.settings.lease, None)
                        .await
                    {
                        Ok(Some(job)) => {
                            if let Err(e) = runner.run(&job, &owner, None).await {
                                // The lease lapses and the upload is resumed later.
                                tracing::error!(upload = %job.upload_id, error = %e, "upload processing stopped");
                                tokio::time::sleep(POLL).await;
                            }
                        }
                        Ok(None) => {
                            let _ = tokio::time::timeout(POLL, wake.notified()).await;
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "cannot claim an upload");
                            tokio::time::sleep(POLL).await;
                        }
                    }
                }
            })
        })
        .collect()
}
