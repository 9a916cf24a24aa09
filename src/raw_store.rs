//! The raw store: the original bytes of every upload, kept encrypted on disk
//! (`<dir>/<provider>/<file id>.cgrf`, directories 0700, files 0600) in STREAM chunks under
//! a per-file key. The file key is sealed under the provider's data key and recorded in
//! `raw_files` (under the provider's tenancy), so destroying the provider's data keys makes
//! its raw files unreadable. A file is written to a temporary name, synced, then renamed:
//! a crash never leaves a partial file under a real name.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, BufWriter, Read};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::crypto::raw_file::{DecryptingReader, EncryptingWriter};
use crate::keyring::{Keyring, KeyringError};
use crate::providers::ProviderCode;
use crate::store::{NewRawFile, Store, StoreError};

/// Why a raw file could not be stored or read. Names paths, never contents.
#[derive(Debug, thiserror::Error)]
pub enum RawStoreError {
    /// The file system failed.
    #[error("raw store {path}: {kind}")]
    Io {
        /// The file or directory.
        path: String,
        /// What went wrong.
        kind: io::ErrorKind,
    },
    /// No such raw file for this provider.
    #[error("no such raw file")]
    NotFound,
    /// The file key could not be had (a destroyed data key, say).
    #[error(transparent)]
    Keyring(#[from] KeyringError),
    /// The record could not be written or read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A stored raw file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRawFile {
    /// Its id.
    pub file_id: String,
    /// Bytes received.
    pub plaintext_bytes: u64,
    /// Bytes on disk.
    pub stored_bytes: u64,
}

/// The encrypted raw-file store.
#[derive(Debug, Clone)]
pub struct RawStore {
    dir: PathBuf,
    store: Store,
    keyring: Arc<Keyring>,
}

struct Counting<R>(R, u64);

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.0.read(buf)?;
        self.1 += n as u64;
        Ok(n)
    }
}

impl RawStore {
    /// A raw store under `dir` (created 0700).
    pub fn new(dir: &Path, store: Store, keyring: Arc<Keyring>) -> Result<Self, RawStoreError> {
        create_dir(dir)?;
        Ok(Self {
            dir: dir.to_owned(),
            store,
            keyring,
        })
    }

    fn path(&self, provider: &ProviderCode, file_id: &str) -> PathBuf {
        self.dir
            .join(provider.as_str())
            .join(format!("{file_id}.cgrf"))
    }

    /// Encrypts everything `source` yields into a new raw file of `provider`.
    pub async fn put(
        &self,
        provider: &ProviderCode,
        source: impl Read,
    ) -> Result<StoredRawFile, RawStoreError> {
        let mut random = [0u8; 16];
        aws_lc_rs::rand::fill(&mut random).map_err(|_| RawStoreError::Io {
            path: "random".into(),
            kind: io::ErrorKind::Other,
        })?;
        let file_id = hex::encode(random);
        let (file_key, sealed_key, key_id) = self.keyring.new_file_key(provider, &file_id).await?;
        let dir = self.dir.join(provider.as_str());
        create_dir(&dir)?;
        let final_path = self.path(provider, &file_id);
        let partial = dir.join(format!(".{file_id}.partial"));
        let fail = |path: &Path| {
            let path = path.display().to_string();
            move |e: io::Error| RawStoreError::Io {
                path,
                kind: e.kind(),
            }
        };
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)
            .map_err(fail(&partial))?;
        let mut source = Counting(source, 0);
        let written = (|| {
            let mut writer = EncryptingWriter::new(
                BufWriter::with_capacity(256 * 1024, file),
                &file_key,
                &file_id,
            )?;
            io::copy(&mut source, &mut writer)?;
            let file = writer.finish()?.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            file.metadata().map(|m| m.len())
        })();
        let stored_bytes = match written {
            Ok(n) => n,
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                return Err(fail(&partial)(e));
            }
        };
        std::fs::rename(&partial, &final_path).map_err(fail(&final_path))?;
        self.store
            .insert_raw_file(
                provider,
                &NewRawFile {
                    file_id: &file_id,
                    sealed_key: &sealed_key,
                    stored_bytes: i64::try_from(stored_bytes).unwrap_or(i64::MAX),
                    data_key_id: &key_id,
                },
            )
            .await?;
        Ok(StoredRawFile {
            file_id,
            plaintext_bytes: source.1,
            stored_bytes,
        })
    }

    /// Opens one of `provider`'s raw files for reading (decrypting as it is read; any
    /// alteration, reordering or truncation is an `InvalidData` read error).
    pub async fn open(
        &self,
        provider: &ProviderCode,
        file_id: &str,
    ) -> Result<DecryptingReader<File>, RawStoreError> {
        let sealed = self
            .store
            .raw_file_key(provider, file_id)
            .await?
            .ok_or(RawStoreError::NotFound)?;
        let key = self.keyring.open_file_key(file_id, &sealed).await?;
        let path = self.path(provider, file_id);
        let io_err = |e: io::Error| RawStoreError::Io {
            path: path.display().to_string(),
            kind: e.kind(),
        };
        let file = File::open(&path).map_err(io_err)?;
        DecryptingReader::new(file, &key, file_id).map_err(io_err)
    }
}

fn create_dir(dir: &Path) -> Result<(), RawStoreError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| RawStoreError::Io {
            path: dir.display().to_string(),
            kind: e.kind(),
        })?;
    Ok(())
}
