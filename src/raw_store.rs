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

use zeroize::Zeroizing;

use crate::crypto::aead;
use crate::crypto::raw_file::{DecryptingReader, EncryptingWriter};
use crate::formats::x12::interchange::HEAD_BYTES;
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
    /// The object store refused or failed (the cause is logged, without contents).
    #[error("object store: cannot {0} a raw file")]
    Remote(&'static str),
}

impl RawStoreError {
    /// Whether the file system ran out of space (or quota): the file was not stored, and
    /// the sender may try again once there is room.
    pub fn is_storage_full(&self) -> bool {
        matches!(
            self,
            Self::Io {
                kind: io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded,
                ..
            }
        )
    }
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
    /// Where committed files go when not kept in `dir` (an S3-compatible bucket).
    remote: Option<Arc<dyn object_store::ObjectStore>>,
}

/// A raw file being written: bytes go through [`RawFileWriter::write`] (encrypted and
/// hashed as they come), then [`RawStore::commit`] makes it a stored file, or dropping it
/// removes the partial file. Synchronous: run it off the async executor.
pub struct RawFileWriter {
    provider: ProviderCode,
    file_id: String,
    key_id: String,
    sealed_key: Vec<u8>,
    /// Kept to seal it again if its data key is erased before the file is recorded.
    file_key: Zeroizing<[u8; aead::KEY_LEN]>,
    partial: PathBuf,
    writer: Option<EncryptingWriter<BufWriter<File>>>,
    sha256: aws_lc_rs::digest::Context,
    received: u64,
    /// The file's first bytes (at most [`HEAD_BYTES`], in memory only, wiped when
    /// dropped), for intake to read an X12 interchange's identity from.
    head: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for RawFileWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawFileWriter")
            .field("file_id", &self.file_id)
            .field("received", &self.received)
            .finish_non_exhaustive()
    }
}

/// A raw file written by an async producer (an HTTPS body, an SFTP transfer): chunks go
/// through a bounded channel to a blocking thread that encrypts, hashes and writes them,
/// so memory stays flat and back-pressure reaches the sender.
pub struct RawFileStream {
    sender: tokio::sync::mpsc::Sender<bytes::Bytes>,
    writing: tokio::task::JoinHandle<Result<RawFileWriter, RawStoreError>>,
}

impl RawFileStream {
    /// Starts the writing thread for `writer`.
    pub fn start(mut writer: RawFileWriter) -> Self {
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<bytes::Bytes>(8);
        let writing = tokio::task::spawn_blocking(move || {
            while let Some(chunk) = receiver.blocking_recv() {
                writer.write(&chunk)?;
            }
            Ok(writer)
        });
        Self { sender, writing }
    }

    /// Queues `chunk`; `false` when the writing thread has stopped (its error comes
    /// from [`RawFileStream::finish`]).
    pub async fn send(&self, chunk: bytes::Bytes) -> bool {
        self.sender.send(chunk).await.is_ok()
    }

    /// Waits for everything queued to be written; returns the writer, to be committed
    /// (or dropped, which removes the partial file).
    pub async fn finish(self) -> Result<RawFileWriter, RawStoreError> {
        drop(self.sender);
        self.writing.await.map_err(|_| RawStoreError::Io {
            path: "raw file writer thread".into(),
            kind: io::ErrorKind::Interrupted,
        })?
    }
}

impl RawFileWriter {
    /// The file's id.
    pub fn file_id(&self) -> &str {
        &self.file_id
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The file's first bytes (up to [`HEAD_BYTES`]).
    pub fn head(&self) -> &[u8] {
        &self.head
    }

    /// Encrypts and hashes `data`.
    pub fn write(&mut self, data: &[u8]) -> Result<(), RawStoreError> {
        let room = HEAD_BYTES.saturating_sub(self.head.len());
        self.head
            .extend_from_slice(data.get(..room.min(data.len())).unwrap_or_default());
        self.sha256.update(data);
        self.received += data.len() as u64;
        let writer = self.writer.as_mut().ok_or(RawStoreError::Io {
            path: self.partial.display().to_string(),
            kind: io::ErrorKind::BrokenPipe,
        })?;
        io::Write::write_all(writer, data).map_err(|e| RawStoreError::Io {
            path: self.partial.display().to_string(),
            kind: e.kind(),
        })
    }

    /// The SHA-256 of everything written.
    pub fn sha256(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.sha256.clone().finish().as_ref());
        out
    }

    /// Seals the last chunk, syncs and renames the file to its real name (synchronous
    /// part of [`RawStore::commit`]); returns its size on disk.
    fn finish(&mut self, final_path: &Path) -> Result<u64, RawStoreError> {
        let fail = |path: &Path| {
            let path = path.display().to_string();
            move |e: io::Error| RawStoreError::Io {
                path,
                kind: e.kind(),
            }
        };
        let writer = self.writer.take().ok_or(RawStoreError::Io {
            path: self.partial.display().to_string(),
            kind: io::ErrorKind::BrokenPipe,
        })?;
        let written = (|| {
            let file = writer.finish()?.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            file.metadata().map(|m| m.len())
        })()
        .map_err(fail(&self.partial))?;
        std::fs::rename(&self.partial, final_path).map_err(fail(final_path))?;
        Ok(written)
    }
}

impl Drop for RawFileWriter {
    /// An unfinished file (a cut-off upload, a failed check) is removed.
    fn drop(&mut self) {
        if self.writer.is_some() {
            let _ = std::fs::remove_file(&self.partial);
        }
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
            remote: None,
        })
    }

    /// The raw store the ingest settings describe: `raw_dir`, and the S3 bucket if one
    /// is configured.
    pub fn configured(
        settings: &crate::config::IngestSettings,
        store: Store,
        keyring: Arc<Keyring>,
    ) -> Result<Self, RawStoreError> {
        let local = Self::new(&settings.raw_dir, store, keyring)?;
        Ok(match &settings.s3 {
            None => local,
            Some(s3) => local.with_remote(Self::s3(s3)?),
        })
    }

    /// The same store, keeping committed files in `remote` (`dir` then only holds files
    /// being written or read).
    pub fn with_remote(mut self, remote: Arc<dyn object_store::ObjectStore>) -> Self {
        self.remote = Some(remote);
        self
    }

    /// An S3-compatible bucket from the settings.
    pub fn s3(
        settings: &crate::config::S3Settings,
    ) -> Result<Arc<dyn object_store::ObjectStore>, RawStoreError> {
        use secrecy::ExposeSecret;
        let mut builder = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(&settings.bucket)
            .with_region(&settings.region)
            .with_allow_http(settings.allow_http);
        if let Some(endpoint) = &settings.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(id) = &settings.access_key_id {
            builder = builder.with_access_key_id(id);
        }
        if let Some(secret) = &settings.secret_access_key {
            builder = builder.with_secret_access_key(secret.expose_secret());
        }
        let store = builder.build().map_err(|e| {
            tracing::error!(error = %e, "object store configuration refused");
            RawStoreError::Remote("configure the store for")
        })?;
        Ok(Arc::new(store))
    }

    fn object_path(provider: &ProviderCode, file_id: &str) -> object_store::path::Path {
        object_store::path::Path::from(format!("{provider}/{file_id}.cgrf"))
    }

    fn path(&self, provider: &ProviderCode, file_id: &str) -> PathBuf {
        self.dir
            .join(provider.as_str())
            .join(format!("{file_id}.cgrf"))
    }

    /// Starts a new raw file of `provider` under a fresh id and file key.
    pub async fn begin(&self, provider: &ProviderCode) -> Result<RawFileWriter, RawStoreError> {
        let mut random = [0u8; 16];
        aws_lc_rs::rand::fill(&mut random).map_err(|_| RawStoreError::Io {
            path: "random".into(),
            kind: io::ErrorKind::Other,
        })?;
        let file_id = hex::encode(random);
        let (file_key, sealed_key, key_id) = self.keyring.new_file_key(provider, &file_id).await?;
        let dir = self.dir.join(provider.as_str());
        create_dir(&dir)?;
        let partial = dir.join(format!(".{file_id}.partial"));
        let io_err = |e: io::Error| RawStoreError::Io {
            path: partial.display().to_string(),
            kind: e.kind(),
        };
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)
            .map_err(io_err)?;
        let writer = EncryptingWriter::new(
            BufWriter::with_capacity(256 * 1024, file),
            &file_key,
            &file_id,
        )
        .map_err(io_err)?;
        Ok(RawFileWriter {
            provider: provider.clone(),
            file_id,
            key_id,
            sealed_key,
            file_key,
            partial,
            writer: Some(writer),
            sha256: aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256),
            received: 0,
            // Allocated once at its full size, so that no copy is left behind by growing.
            head: Zeroizing::new(Vec::with_capacity(HEAD_BYTES)),
        })
    }

    /// Makes a written file a stored raw file: synced, renamed to its real name, recorded
    /// with its sealed key. The sync and rename run off the async executor.
    pub async fn commit(&self, mut writer: RawFileWriter) -> Result<StoredRawFile, RawStoreError> {
        let final_path = self.path(&writer.provider, &writer.file_id);
        let (mut writer, stored_bytes) = tokio::task::spawn_blocking(move || {
            let written = writer.finish(&final_path);
            (writer, written)
        })
        .await
        .map_err(|_| RawStoreError::Io {
            path: self.dir.display().to_string(),
            kind: io::ErrorKind::Interrupted,
        })?;
        let stored_bytes = stored_bytes?;
        if let Some(remote) = &self.remote {
            let local = self.path(&writer.provider, &writer.file_id);
            let uploaded = upload(
                remote.as_ref(),
                &Self::object_path(&writer.provider, &writer.file_id),
                &local,
            )
            .await;
            let _ = tokio::fs::remove_file(&local).await;
            uploaded?;
        }
        // A rotation whose re-encryption pass drained the sealing key while the file was
        // written: seal the file's key under the new active key and record it so (a
        // second drain in between would need a second rotation within the same upload).
        for attempt in 0..3 {
            let recorded = self
                .store
                .insert_raw_file(
                    &writer.provider,
                    &NewRawFile {
                        file_id: &writer.file_id,
                        sealed_key: &writer.sealed_key,
                        stored_bytes: i64::try_from(stored_bytes).unwrap_or(i64::MAX),
                        data_key_id: &writer.key_id,
                    },
                )
                .await;
            match recorded {
                Err(StoreError::KeyErased) if attempt < 2 => {
                    let (sealed_key, key_id) = self
                        .keyring
                        .reseal_new_file_key(
                            &writer.provider,
                            &writer.file_id,
                            &writer.file_key,
                            &writer.key_id,
                        )
                        .await?;
                    writer.sealed_key = sealed_key;
                    writer.key_id = key_id;
                }
                other => {
                    other?;
                    break;
                }
            }
        }
        Ok(StoredRawFile {
            file_id: writer.file_id.clone(),
            plaintext_bytes: writer.received,
            stored_bytes,
        })
    }

    /// Encrypts everything `source` yields into a new raw file of `provider` (reading on
    /// the calling thread: for the console and tests; uploads use [`RawStore::begin`]).
    pub async fn put(
        &self,
        provider: &ProviderCode,
        mut source: impl Read,
    ) -> Result<StoredRawFile, RawStoreError> {
        let mut writer = self.begin(provider).await?;
        let mut buffer = vec![0u8; 256 * 1024];
        loop {
            let n = source.read(&mut buffer).map_err(|e| RawStoreError::Io {
                path: "input".into(),
                kind: e.kind(),
            })?;
            if n == 0 {
                break;
            }
            writer.write(buffer.get(..n).unwrap_or_default())?;
        }
        self.commit(writer).await
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
        let path = match &self.remote {
            None => self.path(provider, file_id),
            Some(remote) => {
                let dir = self.dir.join(provider.as_str());
                create_dir(&dir)?;
                let mut random = [0u8; 8];
                let _ = aws_lc_rs::rand::fill(&mut random);
                let local = dir.join(format!(".{file_id}.{}.download", hex::encode(random)));
                download(
                    remote.as_ref(),
                    &Self::object_path(provider, file_id),
                    &local,
                )
                .await?;
                local
            }
        };
        let io_err = |e: io::Error| RawStoreError::Io {
            path: path.display().to_string(),
            kind: e.kind(),
        };
        let file = File::open(&path).map_err(io_err)?;
        if self.remote.is_some() {
            // The open handle keeps the downloaded copy readable; its name goes now.
            let _ = std::fs::remove_file(&path);
        }
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

/// Parts of a multipart upload to the object store (S3 wants at least 5 MiB but the last).
const PART: usize = 8 << 20;

/// Copies the encrypted file `local` to `path` in `remote`, part by part.
async fn upload(
    remote: &dyn object_store::ObjectStore,
    path: &object_store::path::Path,
    local: &Path,
) -> Result<(), RawStoreError> {
    use object_store::ObjectStoreExt as _;
    use tokio::io::AsyncReadExt;
    let failed = |operation: &'static str| {
        move |e: object_store::Error| {
            tracing::error!(error = %e, "object store {operation} failed");
            RawStoreError::Remote("store")
        }
    };
    let mut file = tokio::fs::File::open(local)
        .await
        .map_err(|e| RawStoreError::Io {
            path: local.display().to_string(),
            kind: e.kind(),
        })?;
    let mut multipart = remote
        .put_multipart(path)
        .await
        .map_err(failed("upload start"))?;
    loop {
        let mut part = Vec::with_capacity(PART);
        while part.len() < PART {
            let read = (&mut file)
                .take((PART - part.len()) as u64)
                .read_to_end(&mut part)
                .await
                .map_err(|e| RawStoreError::Io {
                    path: local.display().to_string(),
                    kind: e.kind(),
                })?;
            if read == 0 {
                break;
            }
        }
        if part.is_empty() {
            break;
        }
        let last = part.len() < PART;
        if let Err(e) = multipart.put_part(part.into()).await {
            let _ = multipart.abort().await;
            return Err(failed("upload part")(e));
        }
        if last {
            break;
        }
    }
    multipart
        .complete()
        .await
        .map_err(failed("upload completion"))?;
    Ok(())
}

/// Copies `path` from `remote` to the new local file `local` (0600).
async fn download(
    remote: &dyn object_store::ObjectStore,
    path: &object_store::path::Path,
    local: &Path,
) -> Result<(), RawStoreError> {
    use futures_util::StreamExt;
    use object_store::ObjectStoreExt as _;
    use tokio::io::AsyncWriteExt;
    let io_err = |e: io::Error| RawStoreError::Io {
        path: local.display().to_string(),
        kind: e.kind(),
    };
    let got = remote.get(path).await.map_err(|e| match e {
        object_store::Error::NotFound { .. } => RawStoreError::NotFound,
        other => {
            tracing::error!(error = %other, "object store download failed");
            RawStoreError::Remote("read")
        }
    })?;
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(local)
        .await
        .map_err(io_err)?;
    let mut stream = got.into_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            tracing::error!(error = %e, "object store download failed");
            RawStoreError::Remote("read")
        })?;
        file.write_all(&chunk).await.map_err(io_err)?;
    }
    file.flush().await.map_err(io_err)?;
    Ok(())
}
