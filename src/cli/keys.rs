//! `claimgate keys list|rotate|reencrypt|rewrap|destroy`: the operator console for
//! provider data keys.
//! Every change is audited with no actor.

use clap::Subcommand;

use crate::audit::{AuditEvent, EventKind, Outcome};
use crate::authz::KeyAdmin;
use crate::config::{MasterKeySource, Profile, Settings};
use crate::crypto::MasterKey;
use crate::providers::ProviderCode;

/// `claimgate keys …`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List data keys (ids, states, the wrapping key's fingerprint; never key material).
    List {
        /// Only this provider's.
        #[arg(long)]
        provider: Option<String>,
    },
    /// Create a new data key for a provider; new writes use it, the old one is retired;
    /// then move what the old key sealed to the new one and erase the old key.
    Rotate {
        /// The provider code.
        #[arg(long)]
        provider: String,
        /// Only rotate; leave re-encryption to the gateway's background job.
        #[arg(long)]
        no_reencrypt: bool,
    },
    /// Move everything still sealed by retired keys to the active key (resumes an
    /// interrupted re-encryption), then erase the retired keys nothing uses.
    Reencrypt {
        /// Only this provider (default: every provider with a retired key in use).
        #[arg(long)]
        provider: Option<String>,
    },
    /// Wrap every data key anew under another master key (rotation of the key-encryption
    /// key); then point `keys.master_key_file` at the new key.
    Rewrap {
        /// The new master key file (64 hex characters, mode 0600).
        #[arg(long)]
        new_master_key_file: std::path::PathBuf,
    },
    /// Destroy every data key of a provider (crypto-shredding): its PHI and raw files
    /// can never be read again.
    Destroy {
        /// The provider code.
        #[arg(long)]
        provider: String,
        /// The provider code again, to confirm.
        #[arg(long)]
        confirm: String,
    },
}

fn code(text: &str) -> anyhow::Result<ProviderCode> {
    ProviderCode::parse(text).map_err(|e| anyhow::anyhow!("--provider {text:?}: {e}"))
}

/// Runs one `keys` command.
pub async fn run(settings: Settings, command: KeysCommand) -> anyhow::Result<()> {
    let store = super::console_store(&settings).await?;
    let keyring = super::console_keyring(&settings, &store).await?;
    let console = |kind: EventKind, provider: &ProviderCode| {
        let mut event = AuditEvent::new(kind, Outcome::Success);
        event.provider = Some(provider.as_str().to_owned());
        event
    };
    match command {
        KeysCommand::List { provider } => {
            let provider = provider.as_deref().map(code).transpose()?;
            for k in store.data_keys(provider.as_ref()).await? {
                println!(
                    "{}\t{}\t{}\t{}\tkek {}",
                    k.provider,
                    k.key_id,
                    k.purpose,
                    k.state(),
                    k.kek_fingerprint
                );
            }
        }
        KeysCommand::Rotate {
            provider,
            no_reencrypt,
        } => {
            let provider = code(&provider)?;
            anyhow::ensure!(
                store.provider(&provider).await?.is_some(),
                "--provider {provider}: no such provider"
            );
            let id = keyring
                .rotate(
                    &KeyAdmin::operator_console(),
                    &provider,
                    &console(EventKind::DataKeyRotated, &provider),
                )
                .await?;
            println!("{provider}: new data key {id}; earlier keys are retired");
            if !no_reencrypt {
                let done = keyring
                    .reencrypt(&KeyAdmin::operator_console(), &provider)
                    .await?;
                report(&provider, &done);
            }
        }
        KeysCommand::Reencrypt { provider } => match provider {
            Some(provider) => {
                let provider = code(&provider)?;
                let done = keyring
                    .reencrypt(&KeyAdmin::operator_console(), &provider)
                    .await?;
                report(&provider, &done);
            }
            None => {
                for (provider, done) in keyring.reencrypt_all(&KeyAdmin::operator_console()).await?
                {
                    report(&provider, &done);
                }
            }
        },
        KeysCommand::Rewrap {
            new_master_key_file,
        } => {
            let new_kek = MasterKey::load(
                &MasterKeySource::File(new_master_key_file.clone()),
                Profile::Production,
            )?;
            let count = keyring
                .rewrap(
                    &KeyAdmin::operator_console(),
                    &new_kek,
                    &AuditEvent::new(EventKind::KekRotated, Outcome::Success),
                )
                .await?;
            println!(
                "wrapped {count} data keys under the master key {}; set keys.master_key_file = {:?} before the next start",
                new_kek.fingerprint(),
                new_master_key_file.display().to_string()
            );
        }
        KeysCommand::Destroy { provider, confirm } => {
            anyhow::ensure!(
                confirm == provider,
                "--confirm must repeat the provider code exactly"
            );
            let provider = code(&provider)?;
            let destroyed = keyring
                .destroy(
                    &KeyAdmin::operator_console(),
                    &provider,
                    &console(EventKind::DataKeyDestroyed, &provider),
                )
                .await?;
            println!(
                "{provider}: destroyed {destroyed} data keys; its encrypted data is unreadable"
            );
        }
    }
    Ok(())
}

fn report(provider: &ProviderCode, done: &crate::keyring::Reencryption) {
    println!(
        "{provider}: re-encrypted {} claims and {} raw-file keys; erased retired keys: {}",
        done.claims,
        done.files,
        if done.drained.is_empty() {
            "none".to_owned()
        } else {
            done.drained.join(", ")
        }
    );
}
