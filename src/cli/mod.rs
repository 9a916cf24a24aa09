//! The command line: `serve`, `check-config`, `dev-certs`, `mapping …` and
//! `principals …`. This is an edge of the program, so errors are `anyhow` here; `main`
//! prints them as one line.

mod export;
mod ingest;
mod keys;
mod mapping_versions;
mod principals;

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use secrecy::ExposeSecret;

use crate::app::{Application, dev_certs, tls};
use crate::claims::Money;
use crate::config::{MasterKeySource, Profile, Settings, production_problems};
use crate::crypto::MasterKey;
use crate::mapping::Plan;
use crate::mapping::builtin::builtin;
use crate::pipeline::preview::{claim_json, finding_json, summary_json};
use crate::pipeline::{MappingChoice, preview};
use crate::store::Store;

/// claimgate: a TLS-only ingestion gateway for healthcare claims.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// TOML configuration file (without one, the dev profile's defaults apply).
    #[arg(long, short, global = true, env = "CLAIMGATE_CONFIG")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve,
    /// Load and validate everything `serve` would, then exit.
    CheckConfig,
    /// Write a development CA, server and client certificate set (never for production).
    DevCerts {
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Validity of the certificates in days.
        #[arg(long, default_value_t = 90)]
        days: u32,
    },
    /// Check and try out mapping definitions.
    Mapping {
        /// What to do with a mapping.
        #[command(subcommand)]
        command: MappingCommand,
    },
    /// Load claim files for a provider through the full pipeline (the bulk path for an
    /// initial load), with progress and a receipt per file.
    Ingest(ingest::IngestArgs),
    /// Export claim lines in the Tuva medical_claim layout (Parquet or CSV) to a file,
    /// de-identified unless --identified, with progress (for warehouse loads).
    Export(export::ExportArgs),
    /// Manage provider data keys directly in the database: list, rotate, destroy.
    Keys {
        /// What to do.
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Work with the audit trail.
    Audit {
        /// What to do.
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Print the OpenAPI 3.1 document of the API (as `GET /openapi.json` serves it).
    Openapi,
    /// Manage principals and their roles directly in the database (bootstrapping the
    /// first admin without the API). Every change is audited.
    Principals {
        /// What to do.
        #[command(subcommand)]
        command: principals::PrincipalsCommand,
    },
}

/// `claimgate audit …`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chain and check every signed checkpoint; exits non-zero and
    /// names the first bad sequence number when the trail was altered.
    Verify,
}

/// `claimgate mapping …`
#[derive(Debug, Subcommand)]
pub enum MappingCommand {
    /// Validate a mapping: a TOML file, or a built-in name (x12-837p, x12-837i).
    Check {
        /// The mapping.
        mapping: String,
    },
    /// Print the JSON Schema of mapping definitions (for editors; `schemas/mapping.schema.json`).
    Schema,
    /// Work with a provider's stored versions (import a file, export, list).
    #[command(flatten)]
    Stored(mapping_versions::VersionCommand),
    /// Read a file with a mapping and show its claims, findings and totals; stores nothing.
    Preview {
        /// A TOML file, a built-in name, or `x12` (837P or 837I by each file's guide version).
        #[arg(long)]
        mapping: String,
        /// The claim file.
        input: PathBuf,
        /// Print JSON lines: one per claim, one per finding, then the summary.
        #[arg(long)]
        json: bool,
    },
}

/// Parses the command line and runs the command.
pub fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::DevCerts { out, days } => {
            dev_certs::write_dev_certs(&out, days)?;
            println!(
                "wrote a development certificate set to {} (never use it in production)",
                out.display()
            );
            Ok(())
        }
        Command::CheckConfig => runtime()?.block_on(check_config(load(cli.config)?)),
        Command::Mapping {
            command: MappingCommand::Schema,
        } => {
            print!("{}", crate::mapping::definition::json_schema());
            Ok(())
        }
        Command::Mapping {
            command: MappingCommand::Check { mapping },
        } => {
            let plan = load_plan(&mapping)?;
            println!(
                "ok: mapping {} ({:?} format) is valid",
                plan.name, plan.format
            );
            Ok(())
        }
        Command::Mapping {
            command:
                MappingCommand::Preview {
                    mapping,
                    input,
                    json,
                },
        } => preview_command(&mapping, &input, json),
        Command::Mapping {
            command: MappingCommand::Stored(command),
        } => runtime()?.block_on(mapping_versions::run(load(cli.config)?, command)),
        Command::Openapi => {
            let document = crate::api::openapi::document().map_err(anyhow::Error::msg)?;
            println!("{}", serde_json::to_string_pretty(&document)?);
            Ok(())
        }
        Command::Serve => runtime()?.block_on(serve(load(cli.config)?)),
        Command::Audit {
            command: AuditCommand::Verify,
        } => runtime()?.block_on(verify_audit(load(cli.config)?)),
        Command::Keys { command } => runtime()?.block_on(keys::run(load(cli.config)?, command)),
        Command::Ingest(args) => runtime()?.block_on(ingest::run(load(cli.config)?, args)),
        Command::Export(args) => runtime()?.block_on(export::run(load(cli.config)?, args)),
        Command::Principals { command } => {
            runtime()?.block_on(principals::run(load(cli.config)?, command))
        }
    }
}

/// A plan from a built-in name or a TOML file; every problem is listed.
fn load_plan(mapping: &str) -> anyhow::Result<Plan> {
    let text = match builtin(mapping) {
        Some(text) => text.to_owned(),
        None => std::fs::read_to_string(mapping)
            .with_context(|| format!("cannot read mapping {mapping}"))?,
    };
    Plan::from_toml(&text).map_err(|problems| {
        let lines: Vec<String> = problems.iter().map(|p| format!("  {p}")).collect();
        anyhow::anyhow!("mapping {mapping} is not valid:\n{}", lines.join("\n"))
    })
}

fn preview_command(mapping: &str, input: &std::path::Path, json: bool) -> anyhow::Result<()> {
    use std::io::Write;
    let choice = if mapping == "x12" {
        MappingChoice::X12ByVersion {
            professional: Box::new(load_plan("x12-837p")?),
            institutional: Box::new(load_plan("x12-837i")?),
        }
    } else {
        MappingChoice::One(Box::new(load_plan(mapping)?))
    };
    let file =
        std::fs::File::open(input).with_context(|| format!("cannot open {}", input.display()))?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut write_error = None;
    let mut emit = |line: String| {
        if write_error.is_none() {
            if let Err(e) = writeln!(out, "{line}") {
                write_error = Some(e);
            }
        }
    };
    let summary = {
        let emit = std::cell::RefCell::new(&mut emit);
        preview(
            &choice,
            std::io::BufReader::with_capacity(256 * 1024, file),
            &mut |claim| {
                let mut emit = emit.borrow_mut();
                if json {
                    emit(claim_json(claim).to_string());
                    claim
                        .findings
                        .iter()
                        .for_each(|f| emit(finding_json(f).to_string()));
                } else {
                    let c = &claim.claim;
                    let total = c
                        .total_charge
                        .map_or_else(|| "-".to_owned(), |m| m.to_string());
                    emit(format!(
                        "#{:<6} {:<20} {:<13} {:<8} lines {:>3}  total {:>12}",
                        claim.position.record,
                        c.source_claim_id,
                        c.claim_type.as_str(),
                        if claim.accepted {
                            "accepted"
                        } else {
                            "REJECTED"
                        },
                        c.lines.len(),
                        total
                    ));
                    claim
                        .findings
                        .iter()
                        .for_each(|f| emit(format!("        {f}")));
                }
            },
            &mut |finding| {
                let mut emit = emit.borrow_mut();
                emit(if json {
                    finding_json(finding).to_string()
                } else {
                    format!("file: {finding}")
                });
            },
        )?
    };
    if json {
        emit(summary_json(&summary).to_string());
    } else {
        emit(format!(
            "\n{} records: {} accepted, {} rejected; {} claims, {} lines; total charges {}, line charges {}",
            summary.records,
            summary.accepted,
            summary.rejected,
            summary.claims,
            summary.lines,
            Money::from_cents(summary.total_charge_cents),
            Money::from_cents(summary.line_charge_cents)
        ));
    }
    if let Some(e) = write_error {
        return Err(e).context("cannot write the preview");
    }
    out.flush().context("cannot write the preview")
}

fn load(config: Option<PathBuf>) -> anyhow::Result<Settings> {
    Ok(Settings::load(config.as_deref(), std::env::vars())?)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// The store an operator command writes through: migrated, and copying every audit event
/// it records to the same journal as the gateway (so the journal misses nothing the console
/// did).
pub(crate) async fn console_store(settings: &Settings) -> anyhow::Result<Store> {
    let store = Store::connect(&settings.database).await?;
    store.migrate().await?;
    let journal = crate::audit::Journal::open(&settings.audit.dir)?;
    Ok(store.with_journal(journal))
}

/// A progress line on stderr: on a terminal one line rewritten twice a second, otherwise
/// a plain line every five seconds (logs stay readable).
pub(crate) struct Progress {
    terminal: bool,
    started: std::time::Instant,
}

impl Progress {
    /// Starts the clock.
    pub(crate) fn new() -> Self {
        use std::io::IsTerminal;
        Self {
            terminal: std::io::stderr().is_terminal(),
            started: std::time::Instant::now(),
        }
    }

    /// Waits for the next line's time; the seconds since the start.
    pub(crate) async fn tick(&self) -> f64 {
        let every = if self.terminal {
            std::time::Duration::from_millis(500)
        } else {
            std::time::Duration::from_secs(5)
        };
        tokio::time::sleep(every).await;
        self.started.elapsed().as_secs_f64().max(0.001)
    }

    /// Shows `line`.
    pub(crate) fn show(&self, line: &str) {
        use std::io::Write;
        let mut err = std::io::stderr().lock();
        if self.terminal {
            let _ = write!(err, "\r{line:<100}");
        } else {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
    }
}

/// The keyring an operator command opens PHI or keys with: the configured master key,
/// checked against the key-encryption key the stored data keys were wrapped by.
pub(crate) async fn console_keyring(
    settings: &Settings,
    store: &Store,
) -> anyhow::Result<std::sync::Arc<crate::keyring::Keyring>> {
    let kek = std::sync::Arc::new(MasterKey::load(
        &settings.keys.master_key,
        settings.profile,
    )?);
    let keyring = std::sync::Arc::new(crate::keyring::Keyring::new(store.clone(), kek));
    keyring.check_kek().await?;
    Ok(keyring)
}

async fn verify_audit(settings: Settings) -> anyhow::Result<()> {
    // Verification never creates anything: not a key, not a database.
    if let Some(file) =
        crate::store::sqlite_file(settings.database.url.expose_secret()).filter(|f| !f.exists())
    {
        anyhow::bail!("database {}: no such file", file.display());
    }
    let store = Store::connect(&settings.database).await?;
    match store.readiness(settings.database.acquire_timeout).await {
        crate::store::Readiness::Ready => {}
        crate::store::Readiness::SchemaMismatch => anyhow::bail!(
            "the database schema is not this build's; start the gateway once to migrate it"
        ),
        crate::store::Readiness::Unreachable => {
            anyhow::bail!("the database does not answer, or holds no claimgate schema")
        }
    }
    let events = store.audit_events().await?;
    let checkpoints = store.audit_checkpoints().await?;
    let key = match crate::crypto::SigningKey::load(
        &settings.keys.audit_signing_key,
        Profile::Production,
    ) {
        Ok(key) => Some(key),
        // Without checkpoints (the gateway never ran) there is nothing to check it with.
        Err(crate::crypto::KeyError::Io { .. }) if checkpoints.is_empty() => None,
        Err(e) => return Err(e.into()),
    };
    let count = match &key {
        Some(key) => crate::audit::verify_trail(&events, &checkpoints, &key.public_key())?,
        None => crate::audit::verify_chain(&events)?,
    };
    println!(
        "ok: {count} audit events, {} signed checkpoints (key {}); head {}",
        checkpoints.len(),
        key.as_ref()
            .map_or_else(|| "none".to_owned(), |k| k.fingerprint()),
        events
            .last()
            .map(|e| format!("{} {}", e.seq, hex::encode(&e.hash)))
            .unwrap_or_else(|| "none".into())
    );
    Ok(())
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    crate::telemetry::init(&settings.log)?;
    let mut app = Application::build(&settings).await?;
    tracing::info!(
        profile = ?settings.profile,
        address = %app.https_addr(),
        sftp = %app
            .sftp_addr()
            .map_or_else(|| "off".to_owned(), |a| a.to_string()),
        tls_profile = ?settings.tls.profile,
        client_auth = ?settings.tls.client_auth,
        master_key = app.master_key_fingerprint(),
        "claimgate listening (HTTPS and SFTP only)"
    );
    if let Some(key) = app.take_bootstrap_credential() {
        println!(
            "\nCreated the bootstrap admin. Its API key is shown only this once; keep it:\n\n    {}\n\n\
             Try: curl --cacert {} -H 'Authorization: Bearer <key>' https://localhost:{}/v1/admin/providers\n",
            key.expose_secret(),
            settings
                .tls
                .client_ca_file
                .clone()
                .unwrap_or_else(|| "certs-example/ca.pem".into())
                .display(),
            app.https_addr().port()
        );
    }
    let handle = app.handle();
    let server = tokio::spawn(app.run_until_stopped());
    shutdown_signal().await;
    tracing::info!("shutting down");
    handle.stop(true).await;
    server.await.context("server task failed")??;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}

async fn check_config(settings: Settings) -> anyhow::Result<()> {
    let problems = production_problems(&settings);
    if !problems.is_empty() {
        anyhow::bail!(
            "unsafe for the production profile:\n{}",
            problems.join("\n")
        );
    }
    println!("ok: settings ({:?} profile)", settings.profile);
    tls::server_config(&settings.tls)?;
    println!(
        "ok: TLS certificate and key ({:?} profile)",
        settings.tls.profile
    );
    if let Some(listen) = settings.sftp.listen {
        let key = &settings.sftp.host_key_file;
        let fingerprint = crate::sftp::host_key_fingerprint(key).with_context(|| {
            format!(
                "sftp.host_key_file: {} is not an ed25519 or ECDSA OpenSSH private key",
                key.display()
            )
        })?;
        println!("ok: SFTP host key {fingerprint} (listening on {listen})");
    }
    match &settings.keys.master_key {
        MasterKeySource::File(path) if settings.profile == Profile::Dev && !path.exists() => {
            println!(
                "ok: master key {} will be generated on first start",
                path.display()
            );
        }
        source => {
            let key = MasterKey::load(source, settings.profile)?;
            println!("ok: master key (fingerprint {})", key.fingerprint());
        }
    }
    let policy =
        crate::authz::Policy::load(&settings.auth.policy_model_file, &settings.auth.policy_file)
            .await?;
    println!(
        "ok: access policy {} ({} rules)",
        settings.auth.policy_file.display(),
        policy.rows().len()
    );
    if let Some(file) =
        crate::store::sqlite_file(settings.database.url.expose_secret()).filter(|f| !f.exists())
    {
        println!(
            "ok: database {} will be created on first start",
            file.display()
        );
        return Ok(());
    }
    let store = Store::connect(&settings.database).await?;
    let applied = store.applied_migrations().await.unwrap_or_default();
    let pending = store
        .migrator()
        .iter()
        .filter(|m| !applied.contains(&m.version))
        .count();
    println!(
        "ok: {} database reachable; {pending} migration(s) to apply at start",
        store.backend_name()
    );
    Ok(())
}
