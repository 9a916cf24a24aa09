//! Provider data keys: rotation keeps everything readable, destruction makes one
//! provider's sealed values and raw files unreadable by any path and leaves the others
//! alone, start-up refuses a key-encryption key that did not wrap the stored keys, and
//! the API and console do what they say.

use std::io::{Read, Write};
use std::sync::Arc;

use claimgate::audit::{AuditEvent, EventKind, Outcome};
use claimgate::authz::{KeyAdmin, ProviderAdmin};
use claimgate::config::{MasterKeySource, Profile};
use claimgate::crypto::{FieldSlot, MasterKey, raw_file};
use claimgate::keyring::{Keyring, KeyringError};
use claimgate::providers::{ProviderCode, ProviderName};
use claimgate::store::Store;
use serde_json::json;

use crate::helpers::*;

fn slot(row: &str) -> FieldSlot<'_> {
    FieldSlot {
        table: "claims",
        column: "member_id",
        row,
    }
}

fn event(kind: EventKind) -> AuditEvent {
    AuditEvent::new(kind, Outcome::Success)
}

async fn keyring_on(backend: Backend) {
    let Some(app) = TestApp::on(backend, "keyring", &[]).await else {
        return;
    };
    let store = Store::connect(&app.settings.database).await.unwrap();
    let kek = Arc::new(MasterKey::load(&app.settings.keys.master_key, Profile::Dev).unwrap());
    let keyring = Keyring::new(store.clone(), kek);
    let (acme, zeta) = (
        ProviderCode::parse("acme").unwrap(),
        ProviderCode::parse("zeta").unwrap(),
    );
    for code in [&acme, &zeta] {
        store
            .create_provider(
                &ProviderAdmin::operator_console(),
                code,
                &ProviderName::parse("P").unwrap(),
                &event(EventKind::ProviderCreated),
            )
            .await
            .unwrap();
    }

    // First use creates a key; values and a raw file are sealed under it.
    let first = keyring
        .seal_field(&acme, slot("C1"), CANARY.as_bytes())
        .await
        .unwrap();
    let other = keyring
        .seal_field(&zeta, slot("Z1"), b"ZETA-VALUE")
        .await
        .unwrap();
    let (file_key, sealed_file_key, _) = keyring.new_file_key(&acme, "file-1").await.unwrap();
    let mut writer = raw_file::EncryptingWriter::new(Vec::new(), &file_key, "file-1").unwrap();
    writer.write_all(CANARY.as_bytes()).unwrap();
    let raw = writer.finish().unwrap();

    // Rotation: new values use the new key, old ones still open.
    let first_id = keyring.sealing_key(&acme).await.unwrap().id().to_owned();
    let new_id = keyring
        .rotate(
            &KeyAdmin::operator_console(),
            &acme,
            &event(EventKind::DataKeyRotated),
        )
        .await
        .unwrap();
    assert_ne!(first_id, new_id);
    let second = keyring
        .seal_field(&acme, slot("C2"), b"SECOND")
        .await
        .unwrap();
    assert!(
        second[2..].starts_with(new_id.as_bytes()),
        "sealed under the new key"
    );
    // A fresh keyring (nothing cached; another instance, say) reads everything back
    // from the store, and re-reads a key's state on every use.
    let fresh = Keyring::new(
        store.clone(),
        Arc::new(MasterKey::load(&app.settings.keys.master_key, Profile::Dev).unwrap()),
    )
    .with_revalidation(std::time::Duration::ZERO);
    assert_eq!(
        fresh
            .open_field(slot("C1"), &first)
            .await
            .unwrap()
            .as_slice(),
        CANARY.as_bytes()
    );
    assert_eq!(
        fresh
            .open_field(slot("C2"), &second)
            .await
            .unwrap()
            .as_slice(),
        b"SECOND"
    );
    let states: Vec<(String, bool)> = store
        .data_keys(Some(&acme))
        .await
        .unwrap()
        .into_iter()
        .map(|k| (k.key_id, k.retired_at.is_some()))
        .collect();
    assert_eq!(states, [(first_id.clone(), true), (new_id.clone(), false)]);

    // Destruction: acme's values and raw file cannot be opened by any path.
    let destroyed = keyring
        .destroy(
            &KeyAdmin::operator_console(),
            &acme,
            &event(EventKind::DataKeyDestroyed),
        )
        .await
        .unwrap();
    assert_eq!(destroyed, 2);
    for ring in [&keyring, &fresh] {
        assert!(matches!(
            ring.open_field(slot("C1"), &first).await,
            Err(KeyringError::KeyDestroyed(id)) if id == first_id
        ));
        assert!(matches!(
            ring.open_field(slot("C2"), &second).await,
            Err(KeyringError::KeyDestroyed(_))
        ));
        assert!(matches!(
            ring.open_file_key("file-1", &sealed_file_key).await,
            Err(KeyringError::KeyDestroyed(_))
        ));
    }
    let rows = store.data_keys(Some(&acme)).await.unwrap();
    assert!(
        rows.iter()
            .all(|k| k.wrapped_key.is_none() && k.destroyed_at.is_some())
    );
    // Before destruction the file key opened the raw file; that is the only path to it.
    let mut plain = Vec::new();
    raw_file::DecryptingReader::new(raw.as_slice(), &file_key, "file-1")
        .unwrap()
        .read_to_end(&mut plain)
        .unwrap();
    assert_eq!(plain, CANARY.as_bytes());
    // zeta is untouched; the audit trail holds the key events and verifies.
    assert_eq!(
        fresh
            .open_field(slot("Z1"), &other)
            .await
            .unwrap()
            .as_slice(),
        b"ZETA-VALUE"
    );
    let trail = store.audit_events().await.unwrap();
    claimgate::audit::verify_chain(&trail).unwrap();
    let kinds: Vec<&str> = trail.iter().map(|e| e.kind.as_str()).collect();
    for kind in ["datakey.created", "datakey.rotated", "datakey.destroyed"] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    assert!(trail.iter().all(|e| !e.body.contains(CANARY)));
}

#[tokio::test]
async fn rotation_keeps_data_readable_and_destruction_shreds_one_provider_sqlite() {
    keyring_on(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_rotation_keeps_data_readable_and_destruction_shreds_one_provider() {
    keyring_on(Backend::Postgres).await;
}

#[tokio::test]
async fn start_up_refuses_a_master_key_that_did_not_wrap_the_stored_keys() {
    let app = TestApp::sqlite(&[]).await;
    app.provider("acme").await;
    let sec = app
        .principal("sec", "person", json!([{ "role": "security_admin" }]))
        .await;
    let rotated = app
        .call(&sec, "POST", "/v1/admin/providers/acme/keys/rotate", "")
        .await;
    assert_eq!(rotated.status, 201, "{rotated:?}");
    let fingerprint = MasterKey::load(&app.settings.keys.master_key, Profile::Dev)
        .unwrap()
        .fingerprint();
    let mut settings = app.settings.clone();
    let other = tempfile::tempdir().unwrap();
    settings.keys.master_key = MasterKeySource::File(other.path().join("another.key"));
    let refused = claimgate::app::Application::build(&settings)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(
        refused.contains(&fingerprint) && refused.contains("keys.master_key_file"),
        "{refused}"
    );
}

#[tokio::test]
async fn the_keys_api_rotates_lists_and_destroys_with_confirmation() {
    let app = TestApp::sqlite(&[]).await;
    app.provider("acme").await;
    let sec = app
        .principal("sec", "person", json!([{ "role": "security_admin" }]))
        .await;
    let keys = "/v1/admin/providers/acme/keys";
    for _ in 0..2 {
        let rotated = app.call(&sec, "POST", &format!("{keys}/rotate"), "").await;
        assert_eq!(rotated.status, 201);
    }
    let listed = app.call(&sec, "GET", keys, "").await.json();
    let states: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["retired", "active"]);
    assert!(
        !listed.to_string().contains("wrapped"),
        "no key material is listed"
    );
    let unconfirmed = app
        .call(
            &sec,
            "POST",
            &format!("{keys}/destroy"),
            r#"{"confirm":"zeta"}"#,
        )
        .await;
    assert_eq!(unconfirmed.status, 400);
    let destroyed = app
        .call(
            &sec,
            "POST",
            &format!("{keys}/destroy"),
            r#"{"confirm":"acme"}"#,
        )
        .await;
    assert_eq!(destroyed.status, 200, "{destroyed:?}");
    assert_eq!(destroyed.json()["destroyed"], 2);
    let listed = app.call(&sec, "GET", keys, "").await.json();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["state"] == "destroyed")
    );
    assert_eq!(
        app.call(&sec, "GET", "/v1/admin/providers/nowhere/keys", "")
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn seal_counts_survive_a_restart_and_the_kek_rotates_by_rewrapping() {
    let app = TestApp::sqlite(&[]).await;
    app.provider("acme").await;
    let store = Store::connect(&app.settings.database).await.unwrap();
    let old_kek = Arc::new(MasterKey::load(&app.settings.keys.master_key, Profile::Dev).unwrap());
    let keyring = Keyring::new(store.clone(), old_kek.clone());
    let acme = ProviderCode::parse("acme").unwrap();
    let mut sealed = Vec::new();
    for n in 0..5 {
        let row = format!("C{n}");
        sealed.push((
            row.clone(),
            keyring.seal_field(&acme, slot(&row), b"V").await.unwrap(),
        ));
    }
    keyring.record_seal_counts().await.unwrap();
    let stored = store.data_keys(Some(&acme)).await.unwrap();
    assert_eq!(stored[0].sealed, 5, "the count is recorded");
    let reloaded = Keyring::new(store.clone(), old_kek.clone());
    assert_eq!(
        reloaded.sealing_key(&acme).await.unwrap().sealed(),
        5,
        "and reloaded"
    );

    // KEK rotation: rewrap under a new master key; the data keys and values stay.
    let dir = tempfile::tempdir().unwrap();
    let new_source = MasterKeySource::File(dir.path().join("new.key"));
    let new_kek = Arc::new(MasterKey::load(&new_source, Profile::Dev).unwrap());
    let count = keyring
        .rewrap(
            &KeyAdmin::operator_console(),
            new_kek.as_ref(),
            &event(EventKind::KekRotated),
        )
        .await
        .unwrap();
    assert_eq!(count, 1);
    let under_new = Keyring::new(store.clone(), new_kek.clone());
    under_new.check_kek().await.unwrap();
    for (row, envelope) in &sealed {
        assert_eq!(
            under_new
                .open_field(slot(row), envelope)
                .await
                .unwrap()
                .as_slice(),
            b"V"
        );
    }
    assert!(matches!(
        Keyring::new(store.clone(), old_kek).check_kek().await,
        Err(KeyringError::KekMismatch { found, .. }) if found == new_kek.fingerprint()
    ));
    let kinds: Vec<String> = store
        .audit_events()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(kinds.contains(&"kek.rotated".to_owned()));
}

/// Concurrent first uploads of a provider each need its first sealing key: exactly one
/// is created and all of them seal under it. (A second creation used to retire the
/// first, and the background re-encryption pass, finding nothing stored under it yet,
/// erased it: an upload sealed under it then failed with `key_destroyed`.)
async fn first_key_race_on(backend: Backend) {
    let Some(app) = TestApp::on(backend, "keys_first_race", &[]).await else {
        return;
    };
    app.provider("acme").await;
    let provider = ProviderCode::parse("acme").unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (_, keyring) = app.keyring().await;
        let provider = provider.clone();
        tasks.push(tokio::spawn(async move {
            keyring
                .sealing_key(&provider)
                .await
                .unwrap()
                .id()
                .to_owned()
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 1, "one key for all: {ids:?}");
    assert_eq!(
        app.count("SELECT count(*) FROM data_keys WHERE purpose = 'seal'")
            .await,
        1
    );
}

#[tokio::test]
async fn concurrent_first_uploads_share_one_sealing_key_sqlite() {
    first_key_race_on(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_concurrent_first_uploads_share_one_sealing_key() {
    first_key_race_on(Backend::Postgres).await;
}
