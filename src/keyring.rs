//! Provider data keys in use: created on a provider's first need, unwrapped with the
//! key-encryption key, cached, rotated (the old key is retired: it still opens what it
//! sealed) and destroyed (crypto-shredding: its wrapped bytes are erased, and everything
//! it sealed, fields and raw-file keys, can no longer be opened by any path).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use crate::audit::{AuditEvent, EventKind, Outcome};
use crate::authz::KeyAdmin;
use crate::crypto::{BlindIndexKey, CryptoError, DataKey, Envelope, FieldSlot, KeyWrapper, aead};
use crate::providers::ProviderCode;
use crate::store::{KeyPurpose, NewDataKey, SealedPhi, Store, StoreError, StoredDataKey};

/// Why a key could not be had or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    /// The key was destroyed: what it sealed is gone for good.
    #[error("data key {0} was destroyed")]
    KeyDestroyed(String),
    /// No such key.
    #[error("data key {0} does not exist")]
    UnknownKey(String),
    /// Stored keys are wrapped by a key-encryption key the configuration does not have.
    #[error(
        "keys.master_key_file: the database holds data keys wrapped by the key-encryption key with fingerprint {found}; the configured key has fingerprint {configured}"
    )]
    KekMismatch {
        /// The fingerprint in the database.
        found: String,
        /// The configured key's.
        configured: String,
    },
    /// Encryption or decryption failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How long an unwrapped key is used before its stored state is read again, so that a
/// destruction done by another instance takes effect here within this time.
const REVALIDATE_AFTER: Duration = Duration::from_secs(5);

/// A cached unwrapped key: its provider, the key, and when its state was last read.
type CachedKey = (String, Arc<DataKey>, Instant);

/// Where data keys come from and go.
pub struct Keyring {
    store: Store,
    kek: Arc<dyn KeyWrapper>,
    /// Unwrapped keys by key id.
    cache: Mutex<HashMap<String, CachedKey>>,
    /// The sealing key's id by provider, so that sealing does not query the store for
    /// every value (the entry is trusted as long as its cached key is fresh).
    active: Mutex<HashMap<String, String>>,
    /// Blind-index keys by provider, with when their state was last read.
    index: Mutex<HashMap<String, (Arc<BlindIndexKey>, Instant)>>,
    revalidate_after: Duration,
}

/// What one re-encryption pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reencryption {
    /// Claims whose PHI moved to the active key.
    pub claims: u64,
    /// Raw files whose key moved to the active key.
    pub files: u64,
    /// Retired keys erased because nothing is sealed by them any more.
    pub drained: Vec<String>,
}

/// Claims re-encrypted per transaction.
const REENCRYPT_BATCH: i64 = 500;

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("kek", &self.kek.fingerprint())
            .finish_non_exhaustive()
    }
}

/// Where a raw file's sealed key lives.
fn file_key_slot(file_id: &str) -> FieldSlot<'_> {
    FieldSlot {
        table: "raw_files",
        column: "file_key",
        row: file_id,
    }
}

impl Keyring {
    /// A keyring over `store`, wrapping with `kek`.
    pub fn new(store: Store, kek: Arc<dyn KeyWrapper>) -> Self {
        Self {
            store,
            kek,
            cache: Mutex::default(),
            active: Mutex::default(),
            index: Mutex::default(),
            revalidate_after: REVALIDATE_AFTER,
        }
    }

    /// The same keyring, re-reading a cached key's state after `after` (default 5 s).
    pub fn with_revalidation(mut self, after: Duration) -> Self {
        self.revalidate_after = after;
        self
    }

    /// Refuses when a live stored key was wrapped by another key-encryption key.
    pub async fn check_kek(&self) -> Result<(), KeyringError> {
        let configured = self.kek.fingerprint();
        let keys = self.store.data_keys(None).await?;
        match keys
            .iter()
            .find(|k| k.wrapped_key.is_some() && k.kek_fingerprint != configured)
        {
            Some(k) => Err(KeyringError::KekMismatch {
                found: k.kek_fingerprint.clone(),
                configured,
            }),
            None => Ok(()),
        }
    }

    fn cached(&self, key_id: &str) -> Option<Arc<DataKey>> {
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache
            .get(key_id)
            .filter(|(_, _, checked)| checked.elapsed() < self.revalidate_after)
            .map(|(_, k, _)| Arc::clone(k))
    }

    fn unwrap_stored(&self, stored: &StoredDataKey) -> Result<Arc<DataKey>, KeyringError> {
        let wrapped = stored
            .wrapped_key
            .as_deref()
            .ok_or_else(|| KeyringError::KeyDestroyed(stored.key_id.clone()))?;
        let bytes = self.kek.unwrap(&stored.key_id, wrapped)?;
        let sealed = u64::try_from(stored.sealed).unwrap_or(0);
        let key = Arc::new(DataKey::from_bytes(&stored.key_id, bytes, sealed)?);
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                stored.key_id.clone(),
                (stored.provider.clone(), Arc::clone(&key), Instant::now()),
            );
        Ok(key)
    }

    /// The key that seals new values for `provider`, created on first need.
    pub async fn sealing_key(&self, provider: &ProviderCode) -> Result<Arc<DataKey>, KeyringError> {
        let known = self
            .active
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(provider.as_str())
            .cloned();
        if let Some(key) = known.and_then(|id| self.cached(&id)) {
            return Ok(key);
        }
        for _ in 0..2 {
            let keys = self.store.data_keys(Some(provider)).await?;
            if let Some(active) = keys.iter().find(|k| {
                k.purpose == KeyPurpose::Seal.as_str()
                    && k.retired_at.is_none()
                    && k.destroyed_at.is_none()
            }) {
                let key = self.unwrap_stored(active)?;
                self.set_active(provider, &active.key_id);
                return Ok(key);
            }
            let mut event = AuditEvent::new(EventKind::DataKeyCreated, Outcome::Success);
            event.provider = Some(provider.as_str().to_owned());
            match self
                .create(&KeyAdmin::operator_console(), provider, &event, false)
                .await
            {
                // Another request created it first: read it.
                Err(KeyringError::Store(StoreError::Conflict)) => continue,
                other => return other,
            }
        }
        Err(KeyringError::Store(StoreError::Conflict))
    }

    /// The provider's blind-index key, created on first need. It is never rotated and is
    /// destroyed with the provider's other keys.
    pub async fn index_key(
        &self,
        provider: &ProviderCode,
    ) -> Result<Arc<BlindIndexKey>, KeyringError> {
        let cached = self
            .index
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(provider.as_str())
            .filter(|(_, checked)| checked.elapsed() < self.revalidate_after)
            .map(|(k, _)| Arc::clone(k));
        if let Some(key) = cached {
            return Ok(key);
        }
        for _ in 0..2 {
            let keys = self.store.data_keys(Some(provider)).await?;
            // After crypto-shredding, new data gets a new index key.
            let stored = keys
                .iter()
                .find(|k| k.purpose == KeyPurpose::Index.as_str() && k.destroyed_at.is_none());
            let bytes = match stored {
                Some(stored) => {
                    let wrapped = stored
                        .wrapped_key
                        .as_deref()
                        .ok_or_else(|| KeyringError::KeyDestroyed(stored.key_id.clone()))?;
                    self.kek.unwrap(&stored.key_id, wrapped)?
                }
                None => {
                    let bytes = aead::random_key()?;
                    let mut event = AuditEvent::new(EventKind::DataKeyCreated, Outcome::Success);
                    event.provider = Some(provider.as_str().to_owned());
                    match self
                        .store_new_key(
                            &KeyAdmin::operator_console(),
                            provider,
                            KeyPurpose::Index,
                            &bytes,
                            &event,
                            false,
                        )
                        .await
                    {
                        Ok(_) => bytes,
                        // Another request created it first: read it.
                        Err(KeyringError::Store(StoreError::Conflict)) => continue,
                        Err(e) => return Err(e),
                    }
                }
            };
            let key = Arc::new(BlindIndexKey::from_bytes(bytes));
            self.index
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(provider.to_string(), (Arc::clone(&key), Instant::now()));
            return Ok(key);
        }
        Err(KeyringError::Store(StoreError::Conflict))
    }

    /// Wraps `bytes` under a new key id and stores it as the provider's active key for
    /// `purpose` (retiring the previous one), audited. Returns the key id.
    async fn store_new_key(
        &self,
        admin: &KeyAdmin,
        provider: &ProviderCode,
        purpose: KeyPurpose,
        bytes: &[u8; aead::KEY_LEN],
        audit: &AuditEvent,
        replaces_active: bool,
    ) -> Result<String, KeyringError> {
        let mut suffix = [0u8; 8];
        aws_lc_rs::rand::fill(&mut suffix).map_err(|_| CryptoError::Random)?;
        let key_id = match purpose {
            KeyPurpose::Seal => format!("{provider}-{}", hex::encode(suffix)),
            KeyPurpose::Index => format!("{provider}-index-{}", hex::encode(suffix)),
        };
        let wrapped = self.kek.wrap(&key_id, bytes)?;
        let mut event = audit.clone();
        event.resource = Some(format!("datakey:{key_id}"));
        self.store
            .rotate_data_key(
                admin,
                provider,
                &NewDataKey {
                    key_id: &key_id,
                    kek_fingerprint: &self.kek.fingerprint(),
                    wrapped_key: &wrapped,
                    purpose,
                    replaces_active,
                },
                &event,
            )
            .await?;
        Ok(key_id)
    }

    /// A new sealing key for `provider`: the first one (`rotation` false; `Conflict` when
    /// another request made it first) or the active one's successor.
    async fn create(
        &self,
        admin: &KeyAdmin,
        provider: &ProviderCode,
        audit: &AuditEvent,
        rotation: bool,
    ) -> Result<Arc<DataKey>, KeyringError> {
        let bytes = aead::random_key()?;
        let key_id = self
            .store_new_key(admin, provider, KeyPurpose::Seal, &bytes, audit, rotation)
            .await?;
        let key = Arc::new(DataKey::from_bytes(&key_id, bytes, 0)?);
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                key_id.clone(),
                (provider.to_string(), Arc::clone(&key), Instant::now()),
            );
        self.set_active(provider, &key_id);
        Ok(key)
    }

    fn set_active(&self, provider: &ProviderCode, key_id: &str) {
        self.active
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(provider.to_string(), key_id.to_owned());
    }

    /// Creates a new active key for `provider`; the old one is retired. Returns the new id.
    pub async fn rotate(
        &self,
        admin: &KeyAdmin,
        provider: &ProviderCode,
        audit: &AuditEvent,
    ) -> Result<String, KeyringError> {
        self.create(admin, provider, audit, true)
            .await
            .map(|k| k.id().to_owned())
    }

    /// Destroys every data key of `provider`; returns how many.
    pub async fn destroy(
        &self,
        admin: &KeyAdmin,
        provider: &ProviderCode,
        audit: &AuditEvent,
    ) -> Result<u64, KeyringError> {
        let destroyed = self.store.destroy_data_keys(admin, provider, audit).await?;
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, (p, _, _)| p != provider.as_str());
        self.active
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(provider.as_str());
        self.index
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(provider.as_str());
        Ok(destroyed)
    }

    /// Records the seal counts of the keys in use, so that the 2^32 limit holds across
    /// restarts. Called periodically and at stop.
    pub async fn record_seal_counts(&self) -> Result<(), KeyringError> {
        let counts: Vec<(String, i64)> = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(id, (_, key, _))| (id.clone(), i64::try_from(key.sealed()).unwrap_or(i64::MAX)))
            .collect();
        self.store.record_seal_counts(&counts).await?;
        Ok(())
    }

    /// Wraps every live data key anew under `new_kek` (rotation of the key-encryption key;
    /// the data keys and everything they sealed stay as they are). Returns how many.
    pub async fn rewrap(
        &self,
        admin: &KeyAdmin,
        new_kek: &dyn KeyWrapper,
        audit: &AuditEvent,
    ) -> Result<usize, KeyringError> {
        let mut rewrapped = Vec::new();
        for stored in self.store.data_keys(None).await? {
            let Some(wrapped) = stored.wrapped_key.as_deref() else {
                continue;
            };
            let bytes = self.kek.unwrap(&stored.key_id, wrapped)?;
            rewrapped.push((stored.key_id.clone(), new_kek.wrap(&stored.key_id, &bytes)?));
        }
        let mut event = audit.clone();
        event.records = Some(rewrapped.len() as u64);
        event.resource = Some(format!("kek:{}", new_kek.fingerprint()));
        self.store
            .rewrap_data_keys(admin, &rewrapped, &new_kek.fingerprint(), &event)
            .await?;
        Ok(rewrapped.len())
    }

    /// The key with id `key_id`, to open what it sealed.
    pub async fn opening_key(&self, key_id: &str) -> Result<Arc<DataKey>, KeyringError> {
        if let Some(key) = self.cached(key_id) {
            return Ok(key);
        }
        let stored = self
            .store
            .data_key(key_id)
            .await?
            .ok_or_else(|| KeyringError::UnknownKey(key_id.to_owned()))?;
        self.unwrap_stored(&stored)
    }

    /// Seals a PHI value for `slot` under the provider's active key.
    pub async fn seal_field(
        &self,
        provider: &ProviderCode,
        slot: FieldSlot<'_>,
        value: &[u8],
    ) -> Result<Vec<u8>, KeyringError> {
        Ok(self.sealing_key(provider).await?.seal(slot, value)?)
    }

    /// Opens a sealed PHI value; [`KeyringError::KeyDestroyed`] after crypto-shredding.
    pub async fn open_field(
        &self,
        slot: FieldSlot<'_>,
        envelope: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KeyringError> {
        let key_id = Envelope::parse(envelope)?.key_id.to_owned();
        Ok(self.opening_key(&key_id).await?.open(slot, envelope)?)
    }

    /// A new random key for the raw file `file_id`, that key sealed under the provider's
    /// data key (to store beside the encrypted file), and the sealing key's id.
    pub async fn new_file_key(
        &self,
        provider: &ProviderCode,
        file_id: &str,
    ) -> Result<(Zeroizing<[u8; aead::KEY_LEN]>, Vec<u8>, String), KeyringError> {
        let key = aead::random_key()?;
        let sealing = self.sealing_key(provider).await?;
        let sealed = sealing.seal(file_key_slot(file_id), key.as_ref())?;
        Ok((key, sealed, sealing.id().to_owned()))
    }

    /// Seals a raw file's key again, under the provider's active data key read afresh,
    /// when `erased_key_id`, the key it was first sealed under, was drained or destroyed
    /// before the file was recorded; returns the sealed key and the sealing key's id.
    pub async fn reseal_new_file_key(
        &self,
        provider: &ProviderCode,
        file_id: &str,
        key: &[u8; aead::KEY_LEN],
        erased_key_id: &str,
    ) -> Result<(Vec<u8>, String), KeyringError> {
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(erased_key_id);
        let sealing = self.sealing_key(provider).await?;
        let sealed = sealing.seal(file_key_slot(file_id), key)?;
        Ok((sealed, sealing.id().to_owned()))
    }

    /// Opens a raw file's sealed key.
    pub async fn open_file_key(
        &self,
        file_id: &str,
        sealed: &[u8],
    ) -> Result<Zeroizing<[u8; aead::KEY_LEN]>, KeyringError> {
        let plain = self.open_field(file_key_slot(file_id), sealed).await?;
        let mut key = Zeroizing::new([0u8; aead::KEY_LEN]);
        if plain.len() != aead::KEY_LEN {
            return Err(CryptoError::Malformed.into());
        }
        key.copy_from_slice(&plain);
        Ok(key)
    }

    /// Moves everything sealed by the provider's retired keys to its active key, in
    /// batches that each commit on their own (so a crash loses at most the batch in
    /// flight, and the next pass resumes), then erases each retired key nothing is sealed
    /// by any more (`datakey.drained`, audited).
    pub async fn reencrypt(
        &self,
        admin: &KeyAdmin,
        provider: &ProviderCode,
    ) -> Result<Reencryption, KeyringError> {
        let mut done = Reencryption::default();
        let retired: Vec<StoredDataKey> = self
            .store
            .data_keys(Some(provider))
            .await?
            .into_iter()
            .filter(|k| {
                k.purpose == KeyPurpose::Seal.as_str()
                    && k.retired_at.is_some()
                    && k.wrapped_key.is_some()
            })
            .collect();
        for old in retired {
            let old_key = self.opening_key(&old.key_id).await?;
            let mut moved_here = 0;
            loop {
                let rows = self
                    .store
                    .phi_sealed_by(admin, provider, &old.key_id, REENCRYPT_BATCH)
                    .await?;
                if rows.is_empty() {
                    break;
                }
                let new_key = self.sealing_key(provider).await?;
                let mut resealed = Vec::with_capacity(rows.len());
                for row in &rows {
                    let identity = row.key.row_identity();
                    let mut phi = SealedPhi::default();
                    for ((slot, sealed), column) in phi
                        .values_mut()
                        .into_iter()
                        .zip(row.phi.values())
                        .zip(SealedPhi::COLUMNS)
                    {
                        if let Some(sealed) = sealed {
                            let at = FieldSlot {
                                table: "claims",
                                column,
                                row: &identity,
                            };
                            let plain = old_key.open(at, sealed)?;
                            *slot = Some(new_key.seal(at, &plain)?);
                        }
                    }
                    resealed.push((row.id, phi));
                }
                let moved = self
                    .store
                    .reseal_phi(admin, provider, (&old.key_id, new_key.id()), &resealed)
                    .await?;
                done.claims += moved;
                moved_here += moved;
            }
            for file in self
                .store
                .file_keys_sealed_by(admin, provider, &old.key_id)
                .await?
            {
                let new_key = self.sealing_key(provider).await?;
                let slot = file_key_slot(&file.file_id);
                let plain = old_key.open(slot, &file.sealed_key)?;
                let moved = crate::store::SealedFileKey {
                    file_id: file.file_id.clone(),
                    sealed_key: new_key.seal(slot, &plain)?,
                };
                let n = self
                    .store
                    .reseal_file_key(admin, provider, (&old.key_id, new_key.id()), &moved)
                    .await?;
                done.files += n;
                moved_here += n;
            }
            let mut event = AuditEvent::new(EventKind::DataKeyDrained, Outcome::Success);
            event.provider = Some(provider.as_str().to_owned());
            event.resource = Some(format!("datakey:{}", old.key_id));
            event.records = Some(moved_here);
            if self
                .store
                .drain_data_key(admin, provider, &old.key_id, &event)
                .await?
            {
                self.cache
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&old.key_id);
                done.drained.push(old.key_id);
            }
        }
        Ok(done)
    }

    /// Runs [`Keyring::reencrypt`] for every provider that has a retired key still holding
    /// values (the gateway's background job); returns what it did per provider.
    pub async fn reencrypt_all(
        &self,
        admin: &KeyAdmin,
    ) -> Result<Vec<(ProviderCode, Reencryption)>, KeyringError> {
        let mut providers: Vec<String> = self
            .store
            .data_keys(None)
            .await?
            .into_iter()
            .filter(|k| {
                k.purpose == KeyPurpose::Seal.as_str()
                    && k.retired_at.is_some()
                    && k.wrapped_key.is_some()
            })
            .map(|k| k.provider)
            .collect();
        providers.sort_unstable();
        providers.dedup();
        let mut report = Vec::new();
        for code in providers {
            let Ok(provider) = ProviderCode::parse(&code) else {
                continue;
            };
            let done = self.reencrypt(admin, &provider).await?;
            report.push((provider, done));
        }
        Ok(report)
    }
}
