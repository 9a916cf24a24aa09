//! The wide claim-line export, in the Tuva Project `medical_claim` input layout, as CSV
//! or Parquet: one row per stored claim line with its claim's columns repeated.
//!
//! ```text
//!  store (one ordered query) ──► keys (identified) ──► prepare + encode (blocking thread) ──► out
//! ```
//!
//! Each stage hands the next bounded batches, so memory holds a few batches and one
//! Parquet row group whatever the export's size. An export is started first
//! ([`Export::start`]: audited; identified exports recorded as disclosures) and then
//! written ([`Export::write_to`]); the file is finished (CSV flushed, Parquet footer
//! written) only when every row was read, so an interrupted export never looks whole.

pub mod columns;
mod csv_out;
mod parquet_out;
mod wide;

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;

use crate::audit::AuditEvent;
use crate::authz::ExportAccess;
use crate::crypto::{CryptoError, DataKey};
use crate::keyring::{Keyring, KeyringError};
use crate::store::{ExportClaim, ExportSelection, ExportStart, ExportView, Store, StoreError};

use wide::WideClaim;

/// The file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated values with a header line.
    Csv,
    /// Apache Parquet.
    Parquet,
}

impl Format {
    /// `csv` or `parquet`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "csv" => Some(Self::Csv),
            "parquet" => Some(Self::Parquet),
            _ => None,
        }
    }

    /// The file name extension.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Parquet => "parquet",
        }
    }

    /// The HTTP content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::Parquet => "application/vnd.apache.parquet",
        }
    }
}

/// The export configuration used when none is named.
pub const DEFAULT_CONFIGURATION: &str = "default";

/// Whether `name` can name an export configuration: 1 to 63 of `a-z 0-9 _ -`, starting
/// with a letter or digit.
pub fn valid_configuration(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=63).contains(&bytes.len())
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-'))
}

/// What to export.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    /// CSV or Parquet.
    pub format: Format,
    /// Identified (member ids, full dates and ZIPs) instead of de-identified.
    pub identified: bool,
    /// The export configuration whose pseudonyms a de-identified export uses.
    pub configuration: String,
    /// Which claims and lines.
    pub selection: ExportSelection,
}

/// Why an export failed. Messages carry no value of any claim.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A key could not be had.
    #[error(transparent)]
    Keyring(#[from] KeyringError),
    /// A sealed value did not open.
    #[error("a sealed value did not open")]
    Sealed,
    /// Encoding or writing the file failed.
    #[error("writing the export failed: {0}")]
    Write(String),
    /// The reading side stopped before the end (the file was not finished).
    #[error("the export was interrupted")]
    Interrupted,
}

impl From<CryptoError> for ExportError {
    fn from(_: CryptoError) -> Self {
        Self::Sealed
    }
}

/// Counts of a written export.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportSummary {
    /// Claim versions written.
    pub claims: u64,
    /// Lines (rows) written.
    pub lines: u64,
}

/// An export that was started (audited) and is ready to be written.
pub struct Export {
    store: Store,
    keyring: Arc<Keyring>,
    access: ExportAccess,
    request: ExportRequest,
    start: ExportStart,
}

/// Batches of claims queued for the encoder.
const QUEUED_BATCHES: usize = 64;

/// What the encoder receives.
enum Message {
    /// Claims, each with the key of its sealed values (identified exports).
    Claims(Vec<(ExportClaim, Option<Arc<DataKey>>)>),
    /// Every row was read: finish the file.
    End,
}

impl Export {
    /// Checks the request against the capability, then starts the export in the store:
    /// `audit` is appended (and, identified, every selected claim recorded as disclosed)
    /// before anything is read.
    pub async fn start(
        store: Store,
        keyring: Arc<Keyring>,
        access: ExportAccess,
        request: ExportRequest,
        audit: &AuditEvent,
    ) -> Result<Self, ExportError> {
        if !request.identified && !valid_configuration(&request.configuration) {
            return Err(StoreError::NotPermitted.into());
        }
        let start = store
            .start_export(&access, view(&request), &request.selection, audit)
            .await?;
        Ok(Self {
            store,
            keyring,
            access,
            request,
            start,
        })
    }

    /// Writes the export to `out` (on a blocking thread), counting lines in `progress`;
    /// returns the writer and the counts.
    pub async fn write_to<W: Write + Send + 'static>(
        self,
        out: W,
        progress: Arc<AtomicU64>,
    ) -> Result<(W, ExportSummary), ExportError> {
        // The encoder works in bursts (a Parquet row group of 32,768 lines is encoded at
        // once): room for about one row group of claims lets the database keep streaming
        // meanwhile instead of waiting (about 16 MiB at most).
        let (claims_tx, mut claims_rx) = mpsc::channel::<Vec<ExportClaim>>(4);
        let (encode_tx, encode_rx) = mpsc::channel::<Message>(QUEUED_BATCHES);
        let format = self.request.format;
        let deidentified = !self.request.identified;
        let source = self.access.provider().as_str().to_owned();
        let encoder = tokio::task::spawn_blocking(move || {
            encode(format, deidentified, &source, encode_rx, out, &progress)
        });
        let read = async {
            let result = self
                .store
                .export_claims(
                    &self.access,
                    view(&self.request),
                    &self.request.selection,
                    self.start,
                    &claims_tx,
                )
                .await;
            drop(claims_tx);
            result
        };
        let keyed = async {
            let mut keys: HashMap<String, Option<Arc<DataKey>>> = HashMap::new();
            while let Some(batch) = claims_rx.recv().await {
                let mut out = Vec::with_capacity(batch.len());
                for claim in batch {
                    let key = match claim.sealed.as_ref().map(|s| s.data_key_id.clone()) {
                        None => None,
                        Some(id) => match keys.get(&id) {
                            Some(key) => key.clone(),
                            None => {
                                let key = match self.keyring.opening_key(&id).await {
                                    Ok(key) => Some(key),
                                    // Crypto-shredded: the values are gone for good.
                                    Err(KeyringError::KeyDestroyed(_)) => None,
                                    Err(e) => return Err(ExportError::from(e)),
                                };
                                keys.insert(id, key.clone());
                                key
                            }
                        },
                    };
                    out.push((claim, key));
                }
                if encode_tx.send(Message::Claims(out)).await.is_err() {
                    break;
                }
            }
            Ok(encode_tx)
        };
        let (read, keyed) = tokio::join!(read, keyed);
        let encode_tx = keyed?;
        read?;
        // Every row was read and handed on: the encoder may finish the file.
        let _ = encode_tx.send(Message::End).await;
        drop(encode_tx);
        encoder
            .await
            .map_err(|_| ExportError::Write("the encoder stopped".into()))?
    }
}

fn view(request: &ExportRequest) -> ExportView<'_> {
    if request.identified {
        ExportView::Identified
    } else {
        ExportView::Deidentified {
            configuration: &request.configuration,
        }
    }
}

/// The encoding side, on a blocking thread.
fn encode<W: Write + Send>(
    format: Format,
    deidentified: bool,
    source: &str,
    mut rx: mpsc::Receiver<Message>,
    out: W,
    progress: &AtomicU64,
) -> Result<(W, ExportSummary), ExportError> {
    let write = |e: &dyn std::fmt::Display| ExportError::Write(e.to_string());
    let mut summary = ExportSummary::default();
    let mut count = |wide: &WideClaim| {
        summary.claims += 1;
        summary.lines += wide.lines() as u64;
        progress.fetch_add(wide.lines() as u64, Ordering::Relaxed);
    };
    match format {
        Format::Csv => {
            let mut sink = csv_out::CsvSink::new(out).map_err(|e| write(&e))?;
            loop {
                match rx.blocking_recv() {
                    Some(Message::Claims(batch)) => {
                        for (claim, key) in batch {
                            let wide = WideClaim::prepare(claim, key.as_deref(), deidentified)?;
                            sink.claim(&wide, source).map_err(|e| write(&e))?;
                            count(&wide);
                        }
                    }
                    Some(Message::End) => {
                        let mut out = sink.finish().map_err(|e| write(&e))?;
                        out.flush().map_err(|e| write(&e))?;
                        return Ok((out, summary));
                    }
                    None => return Err(ExportError::Interrupted),
                }
            }
        }
        Format::Parquet => {
            let mut sink = parquet_out::ParquetSink::new(out).map_err(|e| write(&e))?;
            loop {
                match rx.blocking_recv() {
                    Some(Message::Claims(batch)) => {
                        for (claim, key) in batch {
                            let wide = WideClaim::prepare(claim, key.as_deref(), deidentified)?;
                            count(&wide);
                            sink.claim(wide, source).map_err(|e| write(&e))?;
                        }
                    }
                    Some(Message::End) => {
                        let mut out = sink.finish(source).map_err(|e| write(&e))?;
                        out.flush().map_err(|e| write(&e))?;
                        return Ok((out, summary));
                    }
                    None => return Err(ExportError::Interrupted),
                }
            }
        }
    }
}

/// A blocking writer whose bytes go, in chunks of about 64 KiB, to an async channel (an
/// HTTP response body). Writing fails once the receiver is gone.
pub struct ChannelWriter {
    tx: mpsc::Sender<Result<bytes::Bytes, std::io::Error>>,
    buffer: Vec<u8>,
}

/// Bytes gathered before a chunk is sent.
const CHUNK: usize = 1 << 16;

impl ChannelWriter {
    /// A writer into `tx`.
    pub fn new(tx: mpsc::Sender<Result<bytes::Bytes, std::io::Error>>) -> Self {
        Self {
            tx,
            buffer: Vec::with_capacity(CHUNK),
        }
    }

    fn send(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = bytes::Bytes::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(CHUNK),
        ));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_names_are_short_plain_words() {
        assert!(valid_configuration("default"));
        assert!(valid_configuration("warehouse-2026_q4"));
        for bad in ["", "-x", "Upper", "a b", "../x", "é", &"a".repeat(64)] {
            assert!(!valid_configuration(bad), "{bad:?}");
        }
    }
}
