//! `claimgate mapping import|export|versions`: mapping versions kept in git.
//!
//! A definition file (`schemas/*.toml`) is imported as the provider's next version, a
//! draft that a mapping admin other than the importer approves through the API before it
//! can be activated; any stored version is exported byte for byte, so the file under
//! review in git and the version in the database can be compared by their SHA-256.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;

use crate::audit::{AuditEvent, EventKind, Outcome};
use crate::authz::ProviderAdmin;
use crate::config::Settings;
use crate::providers::ProviderCode;

/// The author the console's imports are recorded under.
const CONSOLE: &str = "operator-console";

/// `claimgate mapping` commands that work on a provider's stored versions.
#[derive(Debug, Subcommand)]
pub enum VersionCommand {
    /// Store a definition file as the provider's next version, a draft (approve and
    /// activate it through the API, as another principal).
    Import {
        /// The provider.
        #[arg(long)]
        provider: String,
        /// The author's note.
        #[arg(long, default_value = "")]
        comment: String,
        /// The definition (TOML).
        file: PathBuf,
    },
    /// Print a stored version's content exactly (the active one without `--version`).
    Export {
        /// The provider.
        #[arg(long)]
        provider: String,
        /// The version number.
        #[arg(long)]
        version: Option<i32>,
    },
    /// List the provider's versions: number, state, SHA-256, author, reviewer.
    Versions {
        /// The provider.
        #[arg(long)]
        provider: String,
    },
}

/// Runs one of the version commands against the configured database.
pub async fn run(settings: Settings, command: VersionCommand) -> anyhow::Result<()> {
    let store = super::console_store(&settings).await?;
    let provider_of = |code: &str| {
        ProviderCode::parse(code).map_err(|e| anyhow::anyhow!("--provider {code:?}: {e}"))
    };
    match command {
        VersionCommand::Import {
            provider,
            comment,
            file,
        } => {
            let provider = provider_of(&provider)?;
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            if let Err(problems) = crate::pipeline::MappingChoice::resolve(&text) {
                let lines: Vec<String> = problems.iter().map(|p| format!("  {p}")).collect();
                anyhow::bail!("{} is not valid:\n{}", file.display(), lines.join("\n"));
            }
            let event = AuditEvent::new(EventKind::MappingCreated, Outcome::Success);
            let draft = store
                .draft_mapping(
                    &ProviderAdmin::operator_console(),
                    &provider,
                    (&text, &comment, CONSOLE),
                    &event,
                )
                .await
                .map_err(|e| match e {
                    crate::store::StoreError::UnknownProvider => {
                        anyhow::anyhow!("--provider {provider}: no such provider")
                    }
                    other => other.into(),
                })?;
            println!(
                "provider {provider}: version {} drafted from {} (sha256 {}); approve it as a mapping admin: \
                 POST /v1/admin/providers/{provider}/mappings/{}/approve with If-Match: \"{}\"",
                draft.version,
                file.display(),
                draft.content_sha256(),
                draft.version,
                draft.content_sha256(),
            );
            Ok(())
        }
        VersionCommand::Export { provider, version } => {
            let provider = provider_of(&provider)?;
            let content = match version {
                Some(n) => store
                    .mapping_version(&provider, n)
                    .await?
                    .map(|v| v.content)
                    .with_context(|| format!("provider {provider} has no version {n}"))?,
                None => store
                    .active_mapping(&provider)
                    .await?
                    .with_context(|| format!("provider {provider} has no active version"))?,
            };
            print!("{content}");
            Ok(())
        }
        VersionCommand::Versions { provider } => {
            let provider = provider_of(&provider)?;
            for v in store.mapping_versions(&provider).await? {
                println!(
                    "{:>4}  {:<8}  {}  author {}  approved by {}  {}",
                    v.version,
                    v.state.as_str(),
                    v.content_sha256(),
                    v.author,
                    v.approved_by.as_deref().unwrap_or("-"),
                    v.comment
                );
            }
            Ok(())
        }
    }
}
