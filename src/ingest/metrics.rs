//! Ingest counters (and the audit journal's health) for `GET /metrics` (Prometheus text format). Counts and durations
//! only: no identifier, no value from a file.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::audit::JournalHealth;
use crate::store::{Batch, UploadCounts};

/// Upper bounds of the batch-latency histogram, in seconds.
const BUCKETS: [f64; 8] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

/// The counters.
#[derive(Debug, Default)]
pub struct Metrics {
    uploads_received: AtomicU64,
    uploads_duplicate: AtomicU64,
    uploads_refused: AtomicU64,
    uploads_done: AtomicU64,
    uploads_failed: AtomicU64,
    bytes_received: AtomicU64,
    records_accepted: AtomicU64,
    records_rejected: AtomicU64,
    claims_stored: AtomicU64,
    batches: AtomicU64,
    batch_micros: AtomicU64,
    batch_buckets: [AtomicU64; BUCKETS.len()],
    integrity_failures: AtomicU64,
    alerts: [AtomicU64; Alert::ALL.len()],
}

/// A security alert: logged with its code in the `alert` field, and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alert {
    /// A client address or key reached the failed-authentication limit (HTTPS or SFTP).
    AuthLockout,
    /// A principal (or address) was refused permission many times in a short window.
    AuthzDenialBurst,
    /// An upload hit a reader's resource limit (a DOCTYPE, nesting, a record or segment
    /// too large): the shape of a parser bomb.
    ParserLimit,
}

impl Alert {
    /// Every alert, in the order of the counters.
    const ALL: [Self; 3] = [Self::AuthLockout, Self::AuthzDenialBurst, Self::ParserLimit];

    /// The code in the log's `alert` field and the metric's label.
    pub fn code(self) -> &'static str {
        match self {
            Self::AuthLockout => "auth_lockout",
            Self::AuthzDenialBurst => "authz_denial_burst",
            Self::ParserLimit => "parser_limit",
        }
    }
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Metrics {
    /// An upload was received and recorded (`duplicate`: it was a re-sent file).
    pub fn received(&self, bytes: u64, duplicate: bool) {
        add(&self.bytes_received, bytes);
        if duplicate {
            add(&self.uploads_duplicate, 1);
        } else {
            add(&self.uploads_received, 1);
        }
    }

    /// An upload was refused on arrival (cut off, checksum mismatch, too large).
    pub fn refused(&self, bytes: u64) {
        add(&self.bytes_received, bytes);
        add(&self.uploads_refused, 1);
    }

    /// A batch was committed in `took`.
    pub fn batch(&self, batch: &Batch, took: Duration) {
        add(&self.batches, 1);
        add(&self.claims_stored, batch.claims.len() as u64);
        add(
            &self.batch_micros,
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
        );
        let secs = took.as_secs_f64();
        for (bound, bucket) in BUCKETS.iter().zip(&self.batch_buckets) {
            if secs <= *bound {
                add(bucket, 1);
            }
        }
    }

    /// A stored value failed its integrity check when read.
    pub fn integrity_failure(&self) {
        add(&self.integrity_failures, 1);
    }

    /// Counts one security alert (the caller logs it).
    pub fn alert(&self, alert: Alert) {
        let slot = Alert::ALL.iter().position(|a| *a == alert);
        if let Some(counter) = slot.and_then(|i| self.alerts.get(i)) {
            add(counter, 1);
        }
    }

    /// An upload ended, with its final counts.
    pub fn finished(&self, done: bool, counts: &UploadCounts) {
        add(
            if done {
                &self.uploads_done
            } else {
                &self.uploads_failed
            },
            1,
        );
        add(
            &self.records_accepted,
            u64::try_from(counts.accepted).unwrap_or(0),
        );
        add(
            &self.records_rejected,
            u64::try_from(counts.rejected).unwrap_or(0),
        );
    }

    /// The Prometheus text exposition, with the queue depth by state read from the store
    /// and the audit journal's health.
    pub fn render(&self, queue: &[(String, i64)], journal: JournalHealth) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, lines: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (labels, value) in lines {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        counter(
            "claimgate_uploads_total",
            "Uploads by outcome.",
            &[
                ("{outcome=\"received\"}", get(&self.uploads_received)),
                ("{outcome=\"duplicate\"}", get(&self.uploads_duplicate)),
                ("{outcome=\"refused\"}", get(&self.uploads_refused)),
                ("{outcome=\"done\"}", get(&self.uploads_done)),
                ("{outcome=\"failed\"}", get(&self.uploads_failed)),
            ],
        );
        counter(
            "claimgate_bytes_received_total",
            "Upload bytes received.",
            &[("", get(&self.bytes_received))],
        );
        counter(
            "claimgate_records_total",
            "Records of finished uploads by outcome.",
            &[
                ("{outcome=\"accepted\"}", get(&self.records_accepted)),
                ("{outcome=\"rejected\"}", get(&self.records_rejected)),
            ],
        );
        counter(
            "claimgate_claims_stored_total",
            "Claims written to the store.",
            &[("", get(&self.claims_stored))],
        );
        counter(
            "claimgate_integrity_failures_total",
            "Stored values that failed their integrity check when read.",
            &[("", get(&self.integrity_failures))],
        );
        let alerts: Vec<(String, u64)> = Alert::ALL
            .iter()
            .zip(&self.alerts)
            .map(|(a, c)| (format!("{{alert=\"{}\"}}", a.code()), get(c)))
            .collect();
        let alerts: Vec<(&str, u64)> = alerts.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        counter(
            "claimgate_alerts_total",
            "Security alerts raised (lock-outs, bursts of denials, parser limits).",
            &alerts,
        );
        let _ = writeln!(
            out,
            "# HELP claimgate_batch_seconds Time to commit one batch.\n# TYPE claimgate_batch_seconds histogram"
        );
        for (bound, bucket) in BUCKETS.iter().zip(&self.batch_buckets) {
            let _ = writeln!(
                out,
                "claimgate_batch_seconds_bucket{{le=\"{bound}\"}} {}",
                get(bucket)
            );
        }
        let batches = get(&self.batches);
        let _ = writeln!(
            out,
            "claimgate_batch_seconds_bucket{{le=\"+Inf\"}} {batches}\nclaimgate_batch_seconds_sum {}\nclaimgate_batch_seconds_count {batches}",
            get(&self.batch_micros) as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "# HELP claimgate_queue_uploads Uploads in the queue by state.\n# TYPE claimgate_queue_uploads gauge"
        );
        for state in ["received", "processing", "done", "failed"] {
            let n = queue
                .iter()
                .find(|(s, _)| s == state)
                .map_or(0, |(_, n)| *n);
            let _ = writeln!(out, "claimgate_queue_uploads{{state=\"{state}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP claimgate_audit_sink_failures_total Failed writes to an audit sink.\n\
             # TYPE claimgate_audit_sink_failures_total counter\n\
             claimgate_audit_sink_failures_total{{sink=\"journal\"}} {}\n\
             # HELP claimgate_audit_sink_degraded 1 while committed audit events wait for a sink.\n\
             # TYPE claimgate_audit_sink_degraded gauge\n\
             claimgate_audit_sink_degraded{{sink=\"journal\"}} {}\n\
             # HELP claimgate_audit_sink_backlog Committed audit events not yet in a sink.\n\
             # TYPE claimgate_audit_sink_backlog gauge\n\
             claimgate_audit_sink_backlog{{sink=\"journal\"}} {}\n\
             # HELP claimgate_audit_sink_lost_total Audit events a sink will never hold (the database does).\n\
             # TYPE claimgate_audit_sink_lost_total counter\n\
             claimgate_audit_sink_lost_total{{sink=\"journal\"}} {}",
            journal.failures,
            u8::from(journal.backlog > 0),
            journal.backlog,
            journal.lost,
        );
        out
    }
}
