//! The second sink: every committed audit event as one JSON line in a daily-rolling file
//! (`tracing-appender`'s rolling appender, written synchronously so that no line is ever
//! dropped), carrying the same sequence number and hashes as the database row, so the
//! two can be cross-checked. The database is the source of truth and fails closed: an
//! event is committed in the same transaction as the change it records, or the change is
//! not made. This sink degrades loudly instead: a line that cannot be written (a full or
//! broken disk) raises an `audit_sink_degraded` alert, counts in the metrics, and waits
//! in a bounded in-memory backlog that is written, in order, as soon as the file takes
//! writes again. Only a backlog overflow or a crash while degraded leaves a gap, which
//! the cross-check with the database shows.

use std::collections::VecDeque;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use tracing_appender::rolling::{RollingFileAppender, Rotation};

/// One committed event, as written to both sinks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Appended {
    /// Sequence number.
    pub seq: i64,
    /// The previous event's hash, hex.
    pub prev_hash: String,
    /// This event's hash, hex.
    pub hash: String,
    /// The canonical body the hash covers.
    pub body: String,
}

/// Why the journal could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("audit.dir {path}: {reason}")]
pub struct JournalError {
    path: String,
    reason: String,
}

/// Lines held while the file cannot be written; beyond this the oldest are dropped and
/// counted as lost (about 5 MB of typical lines).
const BACKLOG_LIMIT: usize = 10_000;

/// The file and the lines not yet written to it.
struct Sink {
    file: RollingFileAppender,
    backlog: VecDeque<String>,
    /// The last write stopped part-way through a line, which must be ended before the next.
    torn: bool,
}

/// The journal's health, for `GET /metrics`.
#[derive(Debug, Default)]
struct Health {
    failures: AtomicU64,
    backlog: AtomicU64,
    lost: AtomicU64,
}

/// A snapshot of the journal's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JournalHealth {
    /// Writes that failed since start.
    pub failures: u64,
    /// Events committed to the database and not yet in the file.
    pub backlog: u64,
    /// Events dropped from a full backlog: a gap in the file.
    pub lost: u64,
}

/// The JSON-lines audit file sink (or none).
#[derive(Clone)]
pub struct Journal {
    sink: Option<Arc<Mutex<Sink>>>,
    health: Arc<Health>,
    dir: Option<PathBuf>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").field("dir", &self.dir).finish()
    }
}

/// File names start with this.
const PREFIX: &str = "audit";

/// Writes all of `bytes`; on failure, whether some of them were written.
fn write_line(file: &mut RollingFileAppender, bytes: &[u8]) -> Result<(), (std::io::Error, bool)> {
    let mut written = 0;
    while written < bytes.len() {
        match file.write(&bytes[written..]) {
            Ok(0) => return Err((std::io::ErrorKind::WriteZero.into(), written > 0)),
            Ok(n) => written += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err((e, written > 0)),
        }
    }
    file.flush().map_err(|e| (e, false))
}

impl Journal {
    /// No file sink (the database alone).
    pub fn disabled() -> Self {
        Self {
            sink: None,
            health: Arc::default(),
            dir: None,
        }
    }

    /// Opens (creating, mode 0700) `dir` and its current day's file.
    pub fn open(dir: &Path) -> Result<Self, JournalError> {
        use std::os::unix::fs::DirBuilderExt;
        let fail = |reason: String| JournalError {
            path: dir.display().to_string(),
            reason,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| fail(e.to_string()))?;
        let file = RollingFileAppender::builder()
            .rotation(Rotation::DAILY)
            .filename_prefix(PREFIX)
            .filename_suffix("jsonl")
            .build(dir)
            .map_err(|e| fail(e.to_string()))?;
        Ok(Self {
            sink: Some(Arc::new(Mutex::new(Sink {
                file,
                backlog: VecDeque::new(),
                torn: false,
            }))),
            health: Arc::default(),
            dir: Some(dir.to_owned()),
        })
    }

    /// Appends one line for a committed event, after any lines still waiting.
    pub fn record(&self, appended: &Appended) {
        let Some(sink) = &self.sink else { return };
        let Ok(line) = serde_json::to_string(appended) else {
            return;
        };
        let mut sink = sink.lock().unwrap_or_else(PoisonError::into_inner);
        let was_degraded = !sink.backlog.is_empty();
        if sink.backlog.len() >= BACKLOG_LIMIT {
            sink.backlog.pop_front();
            self.health.lost.fetch_add(1, Ordering::Relaxed);
        }
        sink.backlog.push_back(line + "\n");
        let mut written = 0usize;
        while let Some(line) = sink.backlog.front().cloned() {
            let Sink { file, torn, .. } = &mut *sink;
            let result = if *torn {
                write_line(file, b"\n").and_then(|()| {
                    *torn = false;
                    write_line(file, line.as_bytes())
                })
            } else {
                write_line(file, line.as_bytes())
            };
            match result {
                Ok(()) => {
                    sink.backlog.pop_front();
                    written += 1;
                }
                Err((e, part)) => {
                    sink.torn |= part;
                    self.health.failures.fetch_add(1, Ordering::Relaxed);
                    if !was_degraded {
                        tracing::error!(
                            alert = "audit_sink_degraded",
                            sink = "journal",
                            seq = appended.seq,
                            error = %e.kind(),
                            "audit journal write failed; the database holds the event and the \
                             journal keeps it until the file takes writes again"
                        );
                    }
                    break;
                }
            }
        }
        let backlog = sink.backlog.len();
        self.health.backlog.store(backlog as u64, Ordering::Relaxed);
        if was_degraded && backlog == 0 {
            tracing::warn!(
                alert = "audit_sink_recovered",
                sink = "journal",
                backfilled = written,
                lost = self.health.lost.load(Ordering::Relaxed),
                "audit journal writable again; waiting events written"
            );
        }
    }

    /// The journal's health now.
    pub fn health(&self) -> JournalHealth {
        JournalHealth {
            failures: self.health.failures.load(Ordering::Relaxed),
            backlog: self.health.backlog.load(Ordering::Relaxed),
            lost: self.health.lost.load(Ordering::Relaxed),
        }
    }

    /// Every entry of every journal file in `dir`, in file-name (date) then line order.
    /// A line cut short by a failed write is skipped if it is the file's unfinished last
    /// line, or if the whole line follows later (written again on recovery); any other
    /// line that is not an entry is an error.
    pub fn read_all(dir: &Path) -> std::io::Result<Vec<Appended>> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(PREFIX) && n.ends_with(".jsonl"))
            })
            .collect();
        files.sort();
        // (file, line, whether a newline ends it)
        let mut lines = Vec::new();
        for file in &files {
            let text = std::fs::read_to_string(file)?;
            let mut rest = text.as_str();
            while !rest.is_empty() {
                let (line, ended, next) = match rest.split_once('\n') {
                    Some((line, next)) => (line, true, next),
                    None => (rest, false, ""),
                };
                lines.push((file, line.to_owned(), ended));
                rest = next;
            }
        }
        let mut entries = Vec::new();
        for (i, (file, line, ended)) in lines.iter().enumerate() {
            match serde_json::from_str::<Appended>(line) {
                // A line whose newline alone was cut off is whole, and written again.
                Ok(entry) if entries.last() == Some(&entry) => {}
                Ok(entry) => entries.push(entry),
                Err(_)
                    if !ended
                        || lines[i + 1..]
                            .iter()
                            .any(|(_, l, _)| l.starts_with(line.as_str())) => {}
                Err(_) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{}: a line is not a journal entry", file.display()),
                    ));
                }
            }
        }
        Ok(entries)
    }
}
