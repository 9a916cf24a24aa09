//! One store test suite, run against SQLite and PostgreSQL.

use claimgate::authz::{ApiKey, ParsedToken, Role};
use claimgate::config::Settings;
use claimgate::providers::{ProviderCode, ProviderName};
use claimgate::store::{NewPrincipal, PrincipalKind, Readiness, Store, StoreError};
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
    migrations_apply_once_and_again_as_a_no_op,
    providers_round_trip,
    principals_and_api_keys
);

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
    let created = store
        .create_provider(&code("zeta"), &name("Zeta Health"))
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
        .create_provider(&code("acme"), &name("Acme"))
        .await
        .unwrap();
    assert!(matches!(
        store.create_provider(&code("acme"), &name("Again")).await,
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

async fn principals_and_api_keys(store: &Store) {
    assert_eq!(store.count_principals().await.unwrap(), 0);
    let key = ApiKey::generate().unwrap();
    let new = NewPrincipal {
        name: "ops",
        kind: PrincipalKind::Person,
        roles: &[Role::MappingAdmin, Role::PhiReader],
        key: &key,
    };
    store.create_principal(&new).await.unwrap();
    assert_eq!(store.count_principals().await.unwrap(), 1);
    let record = store.api_key(&key.id).await.unwrap().unwrap();
    assert_eq!(record.principal.name, "ops");
    let mut roles = record.principal.roles.clone();
    roles.sort_by_key(|r| r.as_str());
    assert_eq!(roles, [Role::MappingAdmin, Role::PhiReader]);
    let token = ParsedToken::parse(key.token.expose_secret()).unwrap();
    assert!(record.authenticates(&token, time::OffsetDateTime::now_utc()));
    // The same name again is refused, and nothing of the failed attempt remains.
    let other = ApiKey::generate().unwrap();
    let again = NewPrincipal {
        name: "ops",
        kind: PrincipalKind::System,
        roles: &[],
        key: &other,
    };
    assert!(matches!(
        store.create_principal(&again).await,
        Err(StoreError::Conflict)
    ));
    assert!(
        store.api_key(&other.id).await.unwrap().is_none(),
        "the transaction rolled back"
    );
    assert_eq!(store.count_principals().await.unwrap(), 1);
}
