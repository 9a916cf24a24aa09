//! `claimgate export --provider P --out FILE`: the wide claim-line export (Tuva
//! `medical_claim` layout) for warehouse loads (Spark, DuckDB, dbt), written to a file
//! with a progress line; the same export as `GET /v1/providers/{code}/exports/…`,
//! audited as the operator console. De-identified unless `--identified` (which needs a
//! `--purpose` and is recorded as a disclosure of every claim it writes).
//!
//! The file is written under a temporary name beside the target and renamed when
//! complete, so a reader never sees half an export.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use clap::Args;

use crate::audit::{AuditEvent, EventKind, Outcome, Purpose};
use crate::authz::{ExportAccess, PhiAccess};
use crate::config::Settings;
use crate::export::{DEFAULT_CONFIGURATION, Export, ExportRequest, Format, valid_configuration};
use crate::providers::ProviderCode;
use crate::store::ExportSelection;

/// Arguments of `claimgate export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The provider whose claims to export.
    #[arg(long)]
    provider: String,
    /// The file to write (its extension does not choose the format; `--format` does).
    #[arg(long)]
    out: PathBuf,
    /// `parquet` or `csv`.
    #[arg(long, default_value = "parquet")]
    format: String,
    /// Identified: member ids, full dates and ZIPs (needs `--purpose`).
    #[arg(long)]
    identified: bool,
    /// Why an identified export is made: treatment, payment, operations, research,
    /// legal or other.
    #[arg(long)]
    purpose: Option<String>,
    /// The export configuration whose pseudonyms a de-identified export uses.
    #[arg(long, default_value = DEFAULT_CONFIGURATION)]
    configuration: String,
    /// Every version of each claim (default: final-action claims only).
    #[arg(long)]
    history: bool,
    /// Only claims of this upload.
    #[arg(long)]
    upload: Option<String>,
    /// Lines served on or after this date (YYYY-MM-DD).
    #[arg(long)]
    from: Option<String>,
    /// Lines served on or before this date (YYYY-MM-DD).
    #[arg(long)]
    to: Option<String>,
}

fn date(value: Option<&str>, flag: &str) -> anyhow::Result<Option<time::Date>> {
    value
        .map(|v| {
            time::Date::parse(v, time::macros::format_description!("[year]-[month]-[day]"))
                .with_context(|| format!("{flag} {v:?}: expected YYYY-MM-DD"))
        })
        .transpose()
}

/// Runs `claimgate export`.
pub async fn run(settings: Settings, args: ExportArgs) -> anyhow::Result<()> {
    let provider = ProviderCode::parse(&args.provider)
        .map_err(|e| anyhow::anyhow!("--provider {:?}: {e}", args.provider))?;
    let format = Format::parse(&args.format)
        .with_context(|| format!("--format {:?}: use parquet or csv", args.format))?;
    anyhow::ensure!(
        valid_configuration(&args.configuration),
        "--configuration {:?}: 1 to 63 of a-z, 0-9, _ and -",
        args.configuration
    );
    let purpose = match (&args.purpose, args.identified) {
        (Some(p), true) => Some(Purpose::parse(p).with_context(|| {
            format!(
                "--purpose {p:?}: one of treatment, payment, operations, research, legal, other"
            )
        })?),
        (None, true) => anyhow::bail!("--identified needs --purpose (why the PHI is read)"),
        (Some(_), false) => anyhow::bail!("--purpose applies to --identified exports only"),
        (None, false) => None,
    };
    let selection = ExportSelection {
        history: args.history,
        upload: args.upload.clone(),
        from: date(args.from.as_deref(), "--from")?,
        to: date(args.to.as_deref(), "--to")?,
    };
    let store = super::console_store(&settings).await?;
    anyhow::ensure!(
        store.provider(&provider).await?.is_some(),
        "--provider {provider}: no such provider"
    );
    let keyring = super::console_keyring(&settings, &store).await?;
    let access = if args.identified {
        ExportAccess::Identified(PhiAccess {
            provider: provider.clone(),
            break_glass: false,
        })
    } else {
        ExportAccess::Deidentified(provider.clone())
    };
    let mut event = AuditEvent::new(
        if args.identified {
            EventKind::PhiRead
        } else {
            EventKind::ClaimsExported
        },
        Outcome::Success,
    );
    event.provider = Some(provider.as_str().to_owned());
    event.purpose = purpose;
    event.phi = args.identified;
    event.resource = Some(if args.identified {
        "export:medical_claim:identified".to_owned()
    } else {
        format!("export:medical_claim:{}", args.configuration)
    });
    let request = ExportRequest {
        format,
        identified: args.identified,
        configuration: args.configuration.clone(),
        selection,
    };
    let export = Export::start(store, keyring, access, request, &event).await?;
    let partial = args.out.with_extension("partial");
    let file = std::fs::File::create(&partial)
        .with_context(|| format!("cannot create {}", partial.display()))?;
    let written = Arc::new(AtomicU64::new(0));
    let progress = tokio::spawn(show_progress(written.clone()));
    let result = export.write_to(file, written).await;
    progress.abort();
    let (file, summary) = match result {
        Ok(done) => done,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e.into());
        }
    };
    file.sync_all()
        .with_context(|| format!("cannot write {}", partial.display()))?;
    std::fs::rename(&partial, &args.out)
        .with_context(|| format!("cannot rename to {}", args.out.display()))?;
    eprintln!();
    println!(
        "{}: {} lines of {} claims ({}, {})",
        args.out.display(),
        summary.lines,
        summary.claims,
        format.extension(),
        if args.identified {
            "identified"
        } else {
            "de-identified"
        }
    );
    Ok(())
}

/// Prints lines written and the rate until aborted: on a terminal one line rewritten
/// twice a second, otherwise a plain line every five seconds.
async fn show_progress(written: Arc<AtomicU64>) {
    let progress = super::Progress::new();
    loop {
        let secs = progress.tick().await;
        let lines = written.load(Ordering::Relaxed);
        progress.show(&format!(
            "export: {lines} lines written, {:.0} lines/s, {:.0} s",
            lines as f64 / secs,
            secs
        ));
    }
}
