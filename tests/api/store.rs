//! One store test suite, run against SQLite and PostgreSQL.

use claimgate::audit::{AuditEvent, ChainBreak, EventKind, Outcome, verify_chain};
use claimgate::authz::{ApiKey, ParsedToken, PrincipalAdmin, PrincipalKind, ProviderAdmin, Role};
use claimgate::config::Settings;
use claimgate::providers::{ProviderCode, ProviderName};
use claimgate::store::{NewGrant, NewKey, NewPrincipal, Readiness, Store, StoreError};
use secrecy::ExposeSecret;

use crate::helpers::*;

/// A migrated store on a fresh database, with whatever keeps that database alive.
struct Fresh {
    store: Store,
    _dir: tempfile::TempDir,
    _db: Option<TestDatabase>,
}

async fn fresh(backend: Backend, test: &str) -> Option<Fresh> {
    let dir = tempfile::tempdir().unwrap();
    let db = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(TestDatabase::create(&postgres_admin_url(test).await?).await),
    };
    let settings: Settings = test_settings(dir.path(), db.as_ref().map(|d| d.url.as_str()), &[]);
    let store = Store::connect(&settings.database).await.unwrap();
    store.migrate().await.unwrap();
    Some(Fresh {
        store,
        _dir: dir,
        _db: db,
    })
}

/// Generates one `#[tokio::test]` per backend for a suite function.
macro_rules! on_both_backends {
    ($($suite:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $suite() {
                if let Some(f) = super::fresh(super::Backend::Sqlite, stringify!($suite)).await { super::$suite(&f.store).await }
            })*
        }
        mod postgres {
            $(#[tokio::test] async fn $suite() {
                if let Some(f) = super::fresh(super::Backend::Postgres, stringify!($suite)).await { super::$suite(&f.store).await }
            })*
        }
    };
}

on_both_backends!(
    audit_times_come_from_the_injected_clock,
    migrations_apply_once_and_again_as_a_no_op,
    providers_round_trip,
    principals_and_api_keys
);

async fn audit_times_come_from_the_injected_clock(store: &Store) {
    let fixed = time::macros::datetime!(2031-02-03 04:05:06.123456 UTC);
    let store = store
        .clone()
        .with_clock(claimgate::audit::Clock::from_fn(move || fixed));
    store
        .append_audit(&event(EventKind::ServerStarted))
        .await
        .unwrap();
    let trail = store.audit_events().await.unwrap();
    assert!(
        trail[0]
            .body
            .contains("\"ts\":\"2031-02-03T04:05:06.123456Z\""),
        "{}",
        trail[0].body
    );
}

async fn migrations_apply_once_and_again_as_a_no_op(store: &Store) {
    let expected: Vec<i64> = store.migrator().iter().map(|m| m.version).collect();
    assert!(!expected.is_empty());
    assert_eq!(store.applied_migrations().await.unwrap(), expected);
    store.migrate().await.unwrap();
    assert_eq!(
        store.applied_migrations().await.unwrap(),
        expected,
        "a second run changes nothing"
    );
    assert_eq!(
        store.readiness(std::time::Duration::from_secs(5)).await,
        Readiness::Ready
    );
}

async fn providers_round_trip(store: &Store) {
    let code = |c: &str| ProviderCode::parse(c).unwrap();
    let name = |n: &str| ProviderName::parse(n).unwrap();
    let admin = ProviderAdmin::operator_console();
    let made = event(EventKind::ProviderCreated);
    let created = store
        .create_provider(&admin, &code("zeta"), &name("Zeta Health"), &made)
        .await
        .unwrap();
    assert_eq!(
        (
            created.code.as_str(),
            created.name.as_str(),
            created.disabled
        ),
        ("zeta", "Zeta Health", false)
    );
    store
        .create_provider(&admin, &code("acme"), &name("Acme"), &made)
        .await
        .unwrap();
    assert!(matches!(
        store
            .create_provider(&admin, &code("acme"), &name("Again"), &made)
            .await,
        Err(StoreError::Conflict)
    ));
    let listed: Vec<String> = store
        .list_providers()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.code.to_string())
        .collect();
    assert_eq!(listed, ["acme", "zeta"]);
    let fetched = store.provider(&code("zeta")).await.unwrap().unwrap();
    assert_eq!(fetched, created, "what was written reads back identically");
    assert!(store.provider(&code("nobody")).await.unwrap().is_none());
}

fn grant(role: Role, provider: Option<&ProviderCode>) -> NewGrant<'_> {
    NewGrant {
        role,
        provider,
        expires_at: None,
        break_glass: false,
        sealed_reason: None,
        granted_by: None,
    }
}

fn event(kind: EventKind) -> AuditEvent {
    AuditEvent::new(kind, Outcome::Success)
}

async fn principals_and_api_keys(store: &Store) {
    let admin = PrincipalAdmin::operator_console();
    let acme = ProviderCode::parse("acme").unwrap();
    store
        .create_provider(
            &ProviderAdmin::operator_console(),
            &acme,
            &ProviderName::parse("Acme").unwrap(),
            &event(EventKind::ProviderCreated),
        )
        .await
        .unwrap();
    assert_eq!(store.count_principals().await.unwrap(), 0);
    let key = ApiKey::generate().unwrap();
    let grants = [
        grant(Role::MappingAdmin, None),
        grant(Role::PhiReader, Some(&acme)),
    ];
    let new = NewPrincipal {
        name: "ops",
        kind: PrincipalKind::Person,
        grants: &grants,
        key: Some(NewKey {
            key: &key,
            expires_at: None,
        }),
    };
    store
        .create_principal(&admin, &new, &event(EventKind::PrincipalCreated))
        .await
        .unwrap();
    assert_eq!(store.count_principals().await.unwrap(), 1);
    let record = store.api_key(&key.id).await.unwrap().unwrap();
    assert_eq!(record.principal.name, "ops");
    let held: Vec<(Role, Option<String>)> = record
        .principal
        .grants
        .iter()
        .map(|g| (g.role, g.provider.as_ref().map(|p| p.to_string())))
        .collect();
    assert_eq!(
        held,
        [
            (Role::MappingAdmin, None),
            (Role::PhiReader, Some("acme".to_owned()))
        ]
    );
    let token = ParsedToken::parse(key.token.expose_secret()).unwrap();
    assert!(record.authenticates(&token, time::OffsetDateTime::now_utc()));

    // The same name again is refused, and nothing of the failed attempt remains: not
    // its key, and not its audit event.
    let other = ApiKey::generate().unwrap();
    let again = NewPrincipal {
        name: "ops",
        kind: PrincipalKind::System,
        grants: &[],
        key: Some(NewKey {
            key: &other,
            expires_at: None,
        }),
    };
    assert!(matches!(
        store
            .create_principal(&admin, &again, &event(EventKind::PrincipalCreated))
            .await,
        Err(StoreError::Conflict)
    ));
    assert!(
        store.api_key(&other.id).await.unwrap().is_none(),
        "the transaction rolled back"
    );
    assert_eq!(store.count_principals().await.unwrap(), 1);

    // Grants: a provider that does not exist, a duplicate, a revoke of what is not held.
    let nowhere = ProviderCode::parse("nowhere").unwrap();
    assert!(matches!(
        store
            .add_grant(
                &admin,
                "ops",
                &grant(Role::Analyst, Some(&nowhere)),
                &event(EventKind::RoleGranted)
            )
            .await,
        Err(StoreError::UnknownProvider)
    ));
    assert!(matches!(
        store
            .add_grant(
                &admin,
                "ops",
                &grant(Role::MappingAdmin, None),
                &event(EventKind::RoleGranted)
            )
            .await,
        Err(StoreError::Conflict)
    ));
    assert!(matches!(
        store
            .add_grant(
                &admin,
                "nobody",
                &grant(Role::Analyst, None),
                &event(EventKind::RoleGranted)
            )
            .await,
        Err(StoreError::NotFound)
    ));
    store
        .revoke_grant(
            &admin,
            "ops",
            Role::PhiReader,
            Some(&acme),
            &event(EventKind::RoleRevoked),
        )
        .await
        .unwrap();
    assert!(matches!(
        store
            .revoke_grant(
                &admin,
                "ops",
                Role::PhiReader,
                None,
                &event(EventKind::RoleRevoked)
            )
            .await,
        Err(StoreError::NotFound)
    ));
    let view = store.principal("ops").await.unwrap().unwrap();
    assert_eq!(view.principal.grants.len(), 1);
    assert_eq!(view.keys.len(), 1);

    // Certificates, key revocation and disabling.
    let fingerprint = "ab".repeat(32);
    store
        .add_credential(
            &admin,
            "ops",
            &claimgate::store::NewCredential::Certificate {
                fingerprint: &fingerprint,
            },
            &event(EventKind::CertificateMapped),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .principal_by_credential(claimgate::store::CredentialKind::Certificate, &fingerprint)
            .await
            .unwrap()
            .map(|p| p.name),
        Some("ops".to_owned())
    );
    store
        .revoke_key(&admin, &key.id, &event(EventKind::KeyRevoked))
        .await
        .unwrap();
    assert!(store.api_key(&key.id).await.unwrap().unwrap().revoked);
    store
        .disable_principal(&admin, "ops", &event(EventKind::PrincipalDisabled))
        .await
        .unwrap();
    assert!(
        store
            .principal_by_credential(claimgate::store::CredentialKind::Certificate, &fingerprint)
            .await
            .unwrap()
            .is_none(),
        "a disabled principal's certificate no longer maps"
    );

    // Every successful write left exactly one event, and the chain verifies.
    let trail = store.audit_events().await.unwrap();
    let kinds: Vec<&str> = trail.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "provider.created",
            "principal.created",
            "grant.revoked",
            "certificate.mapped",
            "key.revoked",
            "principal.disabled"
        ]
    );
    assert_eq!(verify_chain(&trail), Ok(6));
    let mut tampered = trail;
    tampered[2].body = tampered[2].body.replace("grant.revoked", "grant.added");
    assert_eq!(verify_chain(&tampered), Err(ChainBreak::Broken { seq: 3 }));
}
