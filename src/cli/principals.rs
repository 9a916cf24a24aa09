//! `claimgate principals create|grant|revoke|disable|list`: the operator console for
//! principals. It works on the configured database directly (migrating it first, so the
//! first admin of a new installation can be created before the gateway ever ran) and
//! audits every change with no actor, which marks it as done from the console.

use anyhow::Context as _;
use clap::Subcommand;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::audit::{AuditEvent, EventKind, Outcome};
use crate::authz::{ApiKey, PrincipalAdmin, PrincipalKind, Role, valid_principal_name};
use crate::config::Settings;
use crate::providers::ProviderCode;
use crate::store::{NewCredential, NewGrant, NewKey, NewPrincipal};

/// `claimgate principals …`
#[derive(Debug, Subcommand)]
pub enum PrincipalsCommand {
    /// Create a principal; prints its first API key once.
    Create {
        /// Unique name (a-z, 0-9, '.', '_', '@', '-').
        #[arg(long)]
        name: String,
        /// `person` (keys expire: auth.person_key_ttl_hours) or `system`.
        #[arg(long)]
        kind: String,
        /// A role to grant, `ROLE` or `ROLE@PROVIDER`; repeatable.
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Key lifetime in hours (default: the person TTL for people, none for systems).
        #[arg(long)]
        key_hours: Option<u32>,
        /// Map this client certificate (PEM) to the principal.
        #[arg(long)]
        certificate: Option<std::path::PathBuf>,
    },
    /// Grant a role.
    Grant(GrantArgs),
    /// Revoke a role.
    Revoke(GrantArgs),
    /// Disable a principal: none of its credentials authenticate any more.
    Disable {
        /// The principal.
        #[arg(long)]
        name: String,
    },
    /// List principals with their grants and key ids.
    List,
}

/// A principal, a role and optionally the provider the grant is limited to.
#[derive(Debug, clap::Args)]
pub struct GrantArgs {
    /// The principal.
    #[arg(long)]
    name: String,
    /// The role.
    #[arg(long)]
    role: String,
    /// The provider of a provider-scoped grant.
    #[arg(long)]
    provider: Option<String>,
}

fn role(text: &str) -> anyhow::Result<Role> {
    text.parse()
        .map_err(|_| anyhow::anyhow!("unknown role {text:?} (known: {})", Role::names()))
}

fn provider(text: Option<&str>) -> anyhow::Result<Option<ProviderCode>> {
    text.map(|p| ProviderCode::parse(p).map_err(|e| anyhow::anyhow!("provider {p:?}: {e}")))
        .transpose()
}

fn console_event(kind: EventKind, resource: String) -> AuditEvent {
    let mut event = AuditEvent::new(kind, Outcome::Success);
    event.resource = Some(resource);
    event
}

/// Runs one `principals` command.
pub async fn run(settings: Settings, command: PrincipalsCommand) -> anyhow::Result<()> {
    let store = super::console_store(&settings).await?;
    let admin = PrincipalAdmin::operator_console();
    match command {
        PrincipalsCommand::Create {
            name,
            kind,
            roles,
            key_hours,
            certificate,
        } => {
            anyhow::ensure!(
                valid_principal_name(&name),
                "--name: 1-64 characters of a-z, 0-9, '.', '_', '@' and '-'"
            );
            let kind = PrincipalKind::parse(&kind)
                .ok_or_else(|| anyhow::anyhow!("--kind: person or system"))?;
            let parsed = roles
                .iter()
                .map(|r| {
                    let (r, p) = r
                        .split_once('@')
                        .map_or((r.as_str(), None), |(r, p)| (r, Some(p)));
                    Ok((role(r)?, provider(p)?))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let grants: Vec<NewGrant<'_>> = parsed
                .iter()
                .map(|(role, provider)| NewGrant {
                    role: *role,
                    provider: provider.as_ref(),
                    expires_at: None,
                    break_glass: false,
                    sealed_reason: None,
                    granted_by: None,
                })
                .collect();
            let now = time::OffsetDateTime::now_utc();
            let expires_at = match (key_hours, kind) {
                (Some(0), _) => anyhow::bail!("--key-hours: at least 1"),
                (Some(h), _) => Some(now + time::Duration::hours(i64::from(h))),
                (None, PrincipalKind::Person) => Some(now + settings.auth.person_key_ttl),
                (None, PrincipalKind::System) => None,
            };
            let key = ApiKey::generate()?;
            store
                .create_principal(
                    &admin,
                    &NewPrincipal {
                        name: &name,
                        kind,
                        grants: &grants,
                        key: Some(NewKey {
                            key: &key,
                            expires_at,
                        }),
                    },
                    &console_event(EventKind::PrincipalCreated, format!("principal:{name}")),
                )
                .await
                .with_context(|| format!("cannot create principal {name}"))?;
            if let Some(path) = certificate {
                let der = CertificateDer::from_pem_file(&path).with_context(|| {
                    format!("--certificate {}: not a PEM certificate", path.display())
                })?;
                let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der.as_ref());
                let fingerprint = hex::encode(digest.as_ref());
                store
                    .add_credential(
                        &admin,
                        &name,
                        &NewCredential::Certificate {
                            fingerprint: &fingerprint,
                        },
                        &console_event(
                            EventKind::CertificateMapped,
                            format!("principal:{name}/certificate:{fingerprint}"),
                        ),
                    )
                    .await?;
                println!("certificate sha256 {fingerprint} maps to {name}");
            }
            println!(
                "created {name}; its API key (key id {}) is shown only this once:\n{}",
                key.id,
                key.reveal()
            );
        }
        PrincipalsCommand::Grant(GrantArgs {
            name,
            role: r,
            provider: p,
        }) => {
            let (r, p) = (role(&r)?, provider(p.as_deref())?);
            store
                .add_grant(
                    &admin,
                    &name,
                    &NewGrant {
                        role: r,
                        provider: p.as_ref(),
                        expires_at: None,
                        break_glass: false,
                        sealed_reason: None,
                        granted_by: None,
                    },
                    &console_event(
                        EventKind::RoleGranted,
                        format!("principal:{name}/grant:{r}"),
                    ),
                )
                .await
                .with_context(|| format!("cannot grant {r} to {name}"))?;
            println!("granted {r} to {name}");
        }
        PrincipalsCommand::Revoke(GrantArgs {
            name,
            role: r,
            provider: p,
        }) => {
            let (r, p) = (role(&r)?, provider(p.as_deref())?);
            store
                .revoke_grant(
                    &admin,
                    &name,
                    r,
                    p.as_ref(),
                    &console_event(
                        EventKind::RoleRevoked,
                        format!("principal:{name}/grant:{r}"),
                    ),
                )
                .await
                .with_context(|| format!("cannot revoke {r} from {name}"))?;
            println!("revoked {r} from {name}");
        }
        PrincipalsCommand::Disable { name } => {
            store
                .disable_principal(
                    &admin,
                    &name,
                    &console_event(EventKind::PrincipalDisabled, format!("principal:{name}")),
                )
                .await
                .with_context(|| format!("cannot disable {name}"))?;
            println!("disabled {name}");
        }
        PrincipalsCommand::List => {
            for view in store.list_principals().await? {
                let grants: Vec<String> = view
                    .principal
                    .grants
                    .iter()
                    .map(|g| match &g.provider {
                        Some(p) => format!("{}@{p}", g.role),
                        None => g.role.to_string(),
                    })
                    .collect();
                let keys: Vec<String> = view
                    .keys
                    .iter()
                    .map(|k| {
                        let state = if k.revoked_at.is_some() {
                            " (revoked)"
                        } else {
                            ""
                        };
                        format!("{}{state}", k.key_id)
                    })
                    .collect();
                println!(
                    "{}\t{}\t{}\troles: {}\tkeys: {}",
                    view.principal.name,
                    view.principal.kind.as_str(),
                    if view.disabled_at.is_some() {
                        "disabled"
                    } else {
                        "enabled"
                    },
                    if grants.is_empty() {
                        "-".to_owned()
                    } else {
                        grants.join(", ")
                    },
                    if keys.is_empty() {
                        "-".to_owned()
                    } else {
                        keys.join(", ")
                    },
                );
            }
        }
    }
    Ok(())
}
