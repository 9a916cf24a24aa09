//! The encrypted raw-file store through the real keyring and database: round trip,
//! tenancy, tampering on disk, crypto-shredding, and a leak search of every byte the
//! gateway wrote (database files, raw store, audit journal) for the canary PHI.

use std::io::Read;
use std::sync::Arc;

use claimgate::audit::{AuditEvent, EventKind, Outcome};
use claimgate::authz::KeyAdmin;
use claimgate::config::Profile;
use claimgate::crypto::MasterKey;
use claimgate::keyring::{Keyring, KeyringError};
use claimgate::providers::ProviderCode;
use claimgate::raw_store::{RawStore, RawStoreError};
use claimgate::store::Store;

use crate::helpers::*;

/// Every file below `dir`, recursively.
fn files_below(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_below(&path));
        } else {
            out.push(path);
        }
    }
    out
}

async fn raw_store_on(backend: Backend) {
    let Some(app) = TestApp::on(backend, "raw_store", &[]).await else {
        return;
    };
    app.provider("acme").await;
    app.provider("zeta").await;
    let store = Store::connect(&app.settings.database).await.unwrap();
    let kek = Arc::new(MasterKey::load(&app.settings.keys.master_key, Profile::Dev).unwrap());
    let keyring = Arc::new(Keyring::new(store.clone(), kek));
    let raw_dir = app.settings.data_dir.join("raw");
    let raw = RawStore::new(&raw_dir, store.clone(), keyring.clone()).unwrap();
    let (acme, zeta) = (
        ProviderCode::parse("acme").unwrap(),
        ProviderCode::parse("zeta").unwrap(),
    );

    let original: Vec<u8> = format!("NM1*IL*1*{CANARY}*JANE****MI*{CANARY}~\n")
        .repeat(5_000)
        .into_bytes();
    let stored = raw.put(&acme, original.as_slice()).await.unwrap();
    assert_eq!(stored.plaintext_bytes, original.len() as u64);
    assert!(
        stored.stored_bytes > stored.plaintext_bytes,
        "header and tags"
    );
    let other = raw.put(&zeta, &b"ZETA FILE"[..]).await.unwrap();

    let mut back = Vec::new();
    raw.open(&acme, &stored.file_id)
        .await
        .unwrap()
        .read_to_end(&mut back)
        .unwrap();
    // Not assert_eq!: a failure would print the canary.
    assert!(back == original, "the file reads back whole");
    assert!(
        matches!(
            raw.open(&zeta, &stored.file_id).await,
            Err(RawStoreError::NotFound)
        ),
        "another provider cannot name it"
    );

    // Nothing the gateway wrote holds the canary: database files, raw store, journal.
    let mut searched = 0;
    for path in files_below(&app.settings.data_dir) {
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !bytes.windows(CANARY.len()).any(|w| w == CANARY.as_bytes()),
            "canary PHI in {}",
            path.display()
        );
        searched += 1;
    }
    assert!(searched >= 4, "searched {searched} files");

    // A flipped byte on disk is an error, not altered data.
    let path = raw_dir
        .join("acme")
        .join(format!("{}.cgrf", stored.file_id));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let mut reader = raw.open(&acme, &stored.file_id).await.unwrap();
    let error = reader.read_to_end(&mut Vec::new()).unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);

    // Crypto-shredding: acme's raw files are gone for good; zeta's are untouched.
    let mut event = AuditEvent::new(EventKind::DataKeyDestroyed, Outcome::Success);
    event.provider = Some("acme".into());
    keyring
        .destroy(&KeyAdmin::operator_console(), &acme, &event)
        .await
        .unwrap();
    assert!(matches!(
        raw.open(&acme, &stored.file_id).await,
        Err(RawStoreError::Keyring(KeyringError::KeyDestroyed(_)))
    ));
    let mut zeta_back = String::new();
    raw.open(&zeta, &other.file_id)
        .await
        .unwrap()
        .read_to_string(&mut zeta_back)
        .unwrap();
    assert_eq!(zeta_back, "ZETA FILE");
}

#[tokio::test]
async fn raw_files_are_encrypted_tenant_scoped_and_shredded_with_their_keys_sqlite() {
    raw_store_on(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_raw_files_are_encrypted_tenant_scoped_and_shredded_with_their_keys() {
    raw_store_on(Backend::Postgres).await;
}

/// CR-07: a key rotation whose re-encryption pass drains the old key while a raw file
/// is still being written under it. The file is recorded under the new key and reads
/// back whole; it is never acknowledged under an erased key.
async fn rotation_during_a_raw_upload_on(backend: Backend) {
    let Some(app) = TestApp::on(backend, "raw_rotation", &[]).await else {
        return;
    };
    app.provider("acme").await;
    let store = Store::connect(&app.settings.database).await.unwrap();
    let kek = Arc::new(MasterKey::load(&app.settings.keys.master_key, Profile::Dev).unwrap());
    let keyring = Arc::new(Keyring::new(store.clone(), kek));
    let raw = RawStore::new(&app.settings.data_dir.join("raw"), store, keyring.clone()).unwrap();
    let acme = ProviderCode::parse("acme").unwrap();
    let admin = KeyAdmin::operator_console();
    let original = format!("CLM*{CANARY}*100~\n").repeat(2_000).into_bytes();

    let mut writer = raw.begin(&acme).await.unwrap();
    writer.write(&original).unwrap();
    let first_key = keyring.sealing_key(&acme).await.unwrap().id().to_owned();
    let rotated = AuditEvent::new(EventKind::DataKeyRotated, Outcome::Success);
    let new_key = keyring.rotate(&admin, &acme, &rotated).await.unwrap();
    let done = keyring.reencrypt(&admin, &acme).await.unwrap();
    assert_eq!(
        done.drained,
        std::slice::from_ref(&first_key),
        "nothing recorded is sealed by the first key yet, so the pass erases it"
    );

    let stored = raw.commit(writer).await.unwrap();
    let mut back = Vec::new();
    raw.open(&acme, &stored.file_id)
        .await
        .unwrap()
        .read_to_end(&mut back)
        .unwrap();
    assert!(back == original, "the file reads back under the new key");
    let again = keyring.reencrypt(&admin, &acme).await.unwrap();
    assert_eq!(again.files, 0, "nothing is left under a retired key");
    assert_ne!(new_key, first_key);
}

#[tokio::test]
async fn a_raw_file_whose_key_is_drained_mid_upload_is_recorded_under_the_new_key_sqlite() {
    rotation_during_a_raw_upload_on(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_a_raw_file_whose_key_is_drained_mid_upload_is_recorded_under_the_new_key() {
    rotation_during_a_raw_upload_on(Backend::Postgres).await;
}
