//! The second sink: every committed audit event as one JSON line in a daily-rolling file
//! (`tracing-appender`'s rolling appender, written synchronously so that no line is ever
//! dropped), carrying the same sequence number and hashes as the database row, so the
//! two can be cross-checked. The database is the source of truth: a journal write that
//! fails after the commit is reported on the log and shows up as a gap in the check.

use std::io::Write as _;
use std::path::{Path, PathBuf};
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

/// The JSON-lines audit file sink (or none).
#[derive(Clone)]
pub struct Journal {
    file: Option<Arc<Mutex<RollingFileAppender>>>,
    dir: Option<PathBuf>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").field("dir", &self.dir).finish()
    }
}

/// File names start with this.
const PREFIX: &str = "audit";

impl Journal {
    /// No file sink (the database alone).
    pub fn disabled() -> Self {
        Self {
            file: None,
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
        let appender = RollingFileAppender::builder()
            .rotation(Rotation::DAILY)
            .filename_prefix(PREFIX)
            .filename_suffix("jsonl")
            .build(dir)
            .map_err(|e| fail(e.to_string()))?;
        Ok(Self {
            file: Some(Arc::new(Mutex::new(appender))),
            dir: Some(dir.to_owned()),
        })
    }

    /// Appends one line for a committed event.
    pub fn record(&self, appended: &Appended) {
        let Some(file) = &self.file else { return };
        let line = match serde_json::to_string(appended) {
            Ok(line) => line + "\n",
            Err(_) => return,
        };
        let mut file = file.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = file.write_all(line.as_bytes()).and_then(|()| file.flush()) {
            tracing::error!(seq = appended.seq, error = %e.kind(), "audit journal write failed; the database holds the event");
        }
    }

    /// Every line of every journal file in `dir`, in file-name (date) then line order.
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
        let mut lines = Vec::new();
        for file in files {
            for line in std::fs::read_to_string(&file)?.lines() {
                let parsed = serde_json::from_str(line).map_err(|_| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{}: a line is not a journal entry", file.display()),
                    )
                })?;
                lines.push(parsed);
            }
        }
        Ok(lines)
    }
}
