//! `claimgate ingest --provider P FILE...`: the bulk path for an initial load. Each file
//! goes through the same raw store, queue and runner as an HTTPS upload, without the HTTP
//! layer; a progress line shows bytes, records/s and the time left, and the receipt ends
//! each file (`--json`: one JSON object per file, the same fields as
//! `GET /v1/uploads/{id}`).
//!
//! Crash-safe like the gateway: run it again after an interruption and it resumes each
//! file from its last committed batch (a file already done prints its receipt; the same
//! file is never stored twice). A new file that repeats an X12 interchange already
//! received is refused as over HTTPS, unless the provider reuses control numbers.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use crate::audit::{AuditEvent, EventKind, Outcome};
use crate::authz::ProviderAdmin;
use crate::config::Settings;
use crate::formats::x12::InterchangeId;
use crate::formats::x12::interchange::HEAD_BYTES;
use crate::ingest::{Metrics, Runner, RunnerSettings, receipt_json};
use crate::providers::ProviderCode;
use crate::raw_store::RawStore;
use crate::store::{NewUpload, Store, StoreError, UploadRow};

/// Arguments of `claimgate ingest`.
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// The provider whose files these are.
    #[arg(long)]
    provider: String,
    /// Assign this mapping to the provider first (`x12`, a built-in name, or a TOML
    /// file); otherwise the provider's assigned mapping is used.
    #[arg(long)]
    mapping: Option<String>,
    /// Print each receipt as one JSON object.
    #[arg(long)]
    json: bool,
    /// The files.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

/// Runs `claimgate ingest`; fails when any file failed.
pub async fn run(settings: Settings, args: IngestArgs) -> anyhow::Result<()> {
    let provider = ProviderCode::parse(&args.provider)
        .map_err(|e| anyhow::anyhow!("--provider {:?}: {e}", args.provider))?;
    let store = super::console_store(&settings).await?;
    match store.provider(&provider).await? {
        None => anyhow::bail!("--provider {provider}: no such provider"),
        Some(p) if p.disabled => anyhow::bail!("--provider {provider}: the provider is disabled"),
        Some(_) => {}
    }
    if let Some(mapping) = &args.mapping {
        assign_mapping(&store, &provider, mapping).await?;
    }
    anyhow::ensure!(
        store.active_mapping(&provider).await?.is_some(),
        "provider {provider} has no active mapping: pass --mapping (x12, a built-in name or a TOML file) or draft, approve and activate one under /v1/admin/providers/{provider}/mappings"
    );
    let keyring = super::console_keyring(&settings, &store).await?;
    let raw = Arc::new(RawStore::configured(
        &settings.ingest,
        store.clone(),
        keyring.clone(),
    )?);
    let runner = Runner {
        store: store.clone(),
        keyring: keyring.clone(),
        raw: raw.clone(),
        metrics: Arc::new(Metrics::default()),
        settings: RunnerSettings {
            batch_claims: settings.ingest.batch_claims,
            lease: settings.ingest.lease,
        },
    };
    let owner = crate::ingest::worker::worker_name(0);
    let mut failed = 0;
    for file in &args.files {
        let row = ingest_file(&runner, &raw, &provider, &owner, file).await?;
        if row.state != "done" {
            failed += 1;
        }
        if args.json {
            println!("{}", receipt_json(&row));
        } else {
            print_receipt(file, &row);
        }
    }
    keyring.record_seal_counts().await?;
    anyhow::ensure!(failed == 0, "{failed} of {} files failed", args.files.len());
    Ok(())
}

async fn assign_mapping(
    store: &Store,
    provider: &ProviderCode,
    mapping: &str,
) -> anyhow::Result<()> {
    let text = match crate::mapping::builtin::builtin(mapping) {
        Some(_) => mapping.to_owned(),
        None if mapping == "x12" => mapping.to_owned(),
        None => std::fs::read_to_string(mapping)
            .with_context(|| format!("cannot read mapping {mapping}"))?,
    };
    if let Err(problems) = crate::pipeline::MappingChoice::resolve(&text) {
        let lines: Vec<String> = problems.iter().map(|p| format!("  {p}")).collect();
        anyhow::bail!("mapping {mapping} is not valid:\n{}", lines.join("\n"));
    }
    if store.active_mapping(provider).await?.as_deref() == Some(text.as_str()) {
        return Ok(());
    }
    let event = AuditEvent::new(EventKind::MappingActivated, Outcome::Success);
    let version = store
        .assign_mapping_from_console(&ProviderAdmin::operator_console(), provider, &text, &event)
        .await?;
    eprintln!(
        "provider {provider}: mapping version {} active (assigned by the operator console, unreviewed)",
        version.version
    );
    Ok(())
}

/// The SHA-256, size and first bytes (up to [`HEAD_BYTES`]) of a file, read once.
fn digest(path: &Path) -> anyhow::Result<([u8; 32], u64, Vec<u8>)> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut buffer = vec![0u8; 1 << 20];
    let mut size = 0u64;
    let mut head = Vec::with_capacity(HEAD_BYTES);
    loop {
        let n = file
            .read(&mut buffer)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        let read = buffer.get(..n).unwrap_or_default();
        context.update(read);
        let room = HEAD_BYTES.saturating_sub(head.len()).min(read.len());
        head.extend_from_slice(read.get(..room).unwrap_or_default());
        size += n as u64;
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(context.finish().as_ref());
    Ok((out, size, head))
}

async fn ingest_file(
    runner: &Runner,
    raw: &RawStore,
    provider: &ProviderCode,
    owner: &str,
    path: &Path,
) -> anyhow::Result<UploadRow> {
    let store = &runner.store;
    let (sha256, size, head) = digest(path)?;
    let interchange = InterchangeId::of_head(&head);
    let replay = |earlier: String| {
        anyhow::anyhow!(
            "{}: repeats the X12 interchange (sender, receiver and ISA13) of upload {earlier}, \
             and provider {provider} numbers its interchanges uniquely; send it with a new \
             interchange control number, or set the provider to reuse them \
             (PUT /v1/admin/providers/{provider}/interchange-control)",
            path.display()
        )
    };
    let upload_id = match store.upload_by_sha256(provider, &sha256).await? {
        Some(earlier) => {
            let mut event = AuditEvent::new(EventKind::UploadDuplicate, Outcome::Success);
            event.provider = Some(provider.to_string());
            event.resource = Some(format!("upload:{}", earlier.upload_id));
            store.append_audit(&event).await?;
            earlier.upload_id
        }
        None => {
            if let Some(id) = &interchange {
                if let Some(earlier) = store.interchange_holder(provider, id).await? {
                    return Err(replay(earlier));
                }
            }
            let file = std::fs::File::open(path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            let stored = raw.put(provider, std::io::BufReader::new(file)).await?;
            let mut event = AuditEvent::new(EventKind::UploadReceived, Outcome::Success);
            event.provider = Some(provider.to_string());
            event.resource = Some(format!("upload:{}", stored.file_id));
            let (row, _) = store
                .create_upload(
                    provider,
                    &NewUpload {
                        upload_id: &stored.file_id,
                        submitted_by: None,
                        sha256: &sha256,
                        size_bytes: i64::try_from(size).unwrap_or(i64::MAX),
                        idempotency_key: None,
                        interchange: interchange.as_ref(),
                    },
                    &event,
                )
                .await
                .map_err(|e| match e {
                    StoreError::InterchangeReplay(earlier) => replay(earlier),
                    other => other.into(),
                })?;
            row.upload_id
        }
    };
    let mut waited = false;
    loop {
        let current = store
            .upload(Some(provider), &upload_id)
            .await?
            .context("the upload disappeared")?;
        if current.state == "done" || current.state == "failed" {
            return Ok(current);
        }
        let Some(job) = store
            .claim_upload(owner, runner.settings.lease, Some(&upload_id))
            .await?
        else {
            // Another process holds it (or held it and died): wait for it to finish or
            // for its lease to lapse.
            if !waited {
                eprintln!(
                    "{}: another process holds this upload; waiting for it or its lease",
                    path.display()
                );
                waited = true;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        let read = Arc::new(AtomicU64::new(0));
        let progress = tokio::spawn(show_progress(
            path.display().to_string(),
            size,
            Arc::clone(&read),
            store.clone(),
            provider.clone(),
            upload_id.clone(),
        ));
        let outcome = runner.run(&job, owner, Some(read)).await;
        progress.abort();
        let _ = progress.await;
        if std::io::stderr().is_terminal() {
            eprintln!();
        }
        outcome?;
    }
}

/// Prints progress until aborted: on a terminal one line rewritten twice a second,
/// otherwise a plain line every five seconds.
async fn show_progress(
    name: String,
    size: u64,
    read: Arc<AtomicU64>,
    store: Store,
    provider: ProviderCode,
    upload_id: String,
) {
    let progress = super::Progress::new();
    loop {
        let secs = progress.tick().await;
        let bytes = read.load(Ordering::Relaxed);
        let committed = store
            .upload(Some(&provider), &upload_id)
            .await
            .ok()
            .flatten()
            .map_or(0, |r| r.counts.records);
        let rate = bytes as f64 / secs;
        let left = if rate > 0.0 {
            (size.saturating_sub(bytes)) as f64 / rate
        } else {
            0.0
        };
        let line = format!(
            "{name}: {:.1}% of {:.1} MB, {committed} records committed, {:.0} records/s, {:.0} s left",
            if size == 0 {
                100.0
            } else {
                bytes as f64 * 100.0 / size as f64
            },
            size as f64 / 1e6,
            committed as f64 / secs,
            left
        );
        progress.show(&line);
    }
}

fn print_receipt(path: &Path, row: &UploadRow) {
    let c = &row.counts;
    println!(
        "{}: upload {} {}{}\n  records read {}, accepted {}, rejected {}, skipped {}; claims {}, lines {}; replaced {}, voided {}, unmatched {}\n  total charge {}.{:02}; line charges {}.{:02}",
        path.display(),
        row.upload_id,
        row.state,
        row.failure
            .as_deref()
            .map(|f| format!(" ({f})"))
            .unwrap_or_default(),
        c.records,
        c.accepted,
        c.rejected,
        c.skipped,
        c.claims,
        c.lines,
        c.replaced,
        c.voided,
        c.unmatched,
        c.total_charge_cents / 100,
        (c.total_charge_cents % 100).abs(),
        c.line_charge_cents / 100,
        (c.line_charge_cents % 100).abs(),
    );
}
