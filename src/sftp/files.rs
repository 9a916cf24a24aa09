//! One SFTP session's file operations on its provider's jail ([`super::jail`]).
//!
//! - A file opened for writing in `/inbox` streams, packet by packet and in order,
//!   straight into the encrypted raw store (no plaintext temporary file). It becomes an
//!   upload only when the client closes it after a complete write; a file with a
//!   temporary name (`.part`, `.tmp`, …) becomes one when it is renamed to its final
//!   name. A transfer cut off, over the size limit, empty, never renamed, or repeating
//!   an X12 interchange already received (`interchange_replay`, unless the provider
//!   reuses control numbers) is discarded and audited (`sftp.upload_discarded`), never
//!   processed.
//! - `/outbox` holds, read-only, `<upload id>.receipt.json` for every processed upload of
//!   the provider (the same JSON as `GET /v1/uploads/{id}`) and `<upload id>.999` for X12
//!   uploads; they are made from the database when read, so they appear the moment
//!   processing ends.
//! - Everything else (removing, making directories, links, changing attributes, reading
//!   the inbox, writing the outbox) is refused with `SSH_FX_PERMISSION_DENIED` and
//!   audited (`sftp.refused`).
//!
//! Client file names are never logged or audited (a name may carry PHI); uploads are
//! named by their ids.

use std::collections::HashMap;
use std::sync::Arc;

use russh_sftp::protocol::{
    Attrs, Data, File, FileAttributes, Handle, Name, OpenFlags, Status, StatusCode, Version,
};
use russh_sftp::server::StatusReply;

use super::jail::{VirtualPath, is_temporary};
use super::{Account, Shared};
use crate::audit::{EventKind, Outcome};
use crate::raw_store::{RawFileStream, RawFileWriter};
use crate::store::StoreError;

/// The most receipts `/outbox` lists (the newest).
const OUTBOX_LISTING: i64 = 1_000;

/// One SFTP session of an authenticated account.
pub(super) struct FileSession {
    shared: Arc<Shared>,
    account: Account,
    handles: HashMap<String, Open>,
    next_handle: u64,
    /// Temporary-named files closed after a complete write, waiting for their rename.
    held: HashMap<String, RawFileWriter>,
}

enum Open {
    Upload(Upload),
    Download(Vec<u8>),
    /// A directory listing: `Some` until it has been sent.
    Listing(Option<Vec<File>>),
}

struct Upload {
    name: String,
    stream: RawFileStream,
    received: u64,
}

fn ok(id: u32) -> Status {
    Status {
        id,
        status_code: StatusCode::Ok,
        error_message: "Ok".to_owned(),
        language_tag: "en-US".to_owned(),
    }
}

fn denied(message: &'static str) -> StatusReply {
    StatusCode::PermissionDenied.with_message(message)
}

fn failure(message: &'static str) -> StatusReply {
    StatusCode::Failure.with_message(message)
}

fn directory() -> FileAttributes {
    let mut attrs = FileAttributes::empty();
    attrs.permissions = Some(0o040_500);
    attrs
}

/// A read-only file; `size` is left out of listings (a receipt is made when read).
fn readable_file(size: Option<u64>) -> FileAttributes {
    let mut attrs = FileAttributes::empty();
    attrs.size = size;
    attrs.permissions = Some(0o100_400);
    attrs
}

impl FileSession {
    pub(super) fn new(shared: Arc<Shared>, account: Account) -> Self {
        Self {
            shared,
            account,
            handles: HashMap::new(),
            next_handle: 0,
            held: HashMap::new(),
        }
    }

    /// Audits a refused operation and answers with `reply`.
    async fn refuse(&self, reason: &'static str, reply: StatusReply) -> StatusReply {
        let mut event = self.account.event(EventKind::SftpRefused, Outcome::Denied);
        event.reason = Some(reason);
        self.shared.audit(&event).await;
        reply
    }

    async fn parse(&self, path: &str) -> Result<VirtualPath, StatusReply> {
        match VirtualPath::parse(path) {
            Ok(place) => Ok(place),
            Err(refusal) => Err(self
                .refuse(refusal.code(), denied("outside this account's folders"))
                .await),
        }
    }

    fn handle_for(&mut self, id: u32, open: Open) -> Handle {
        self.next_handle += 1;
        let handle = format!("h{}", self.next_handle);
        self.handles.insert(handle.clone(), open);
        Handle { id, handle }
    }

    /// An outbox file's content: a finished upload's receipt or 999.
    async fn outbox_file(&self, name: &str) -> Result<Vec<u8>, StatusReply> {
        let missing = || StatusCode::NoSuchFile.with_message("no such receipt");
        let (upload_id, ack) = match name.strip_suffix(".receipt.json") {
            Some(id) => (id, false),
            None => (name.strip_suffix(".999").ok_or_else(missing)?, true),
        };
        let provider = &self.account.provider;
        let row = self
            .shared
            .intake
            .store
            .upload(Some(provider), upload_id)
            .await
            .map_err(|_| failure("the receipt could not be read"))?
            .filter(|row| row.state == "done" || row.state == "failed")
            .ok_or_else(missing)?;
        if ack {
            return self
                .shared
                .intake
                .store
                .upload_ack(provider, &row.upload_id)
                .await
                .map_err(|_| failure("the acknowledgement could not be read"))?
                .map(String::into_bytes)
                .ok_or_else(missing);
        }
        let mut json = serde_json::to_vec_pretty(&crate::ingest::receipt_json(&row))
            .map_err(|_| failure("the receipt could not be written"))?;
        json.push(b'\n');
        Ok(json)
    }

    async fn outbox_listing(&self) -> Result<Vec<File>, StatusReply> {
        let finished = self
            .shared
            .intake
            .store
            .finished_uploads(&self.account.provider, OUTBOX_LISTING)
            .await
            .map_err(|_| failure("the outbox could not be listed"))?;
        let mut files = Vec::with_capacity(finished.len() * 2);
        for (upload_id, has_ack) in finished {
            files.push(File::new(
                format!("{upload_id}.receipt.json"),
                readable_file(None),
            ));
            if has_ack {
                files.push(File::new(format!("{upload_id}.999"), readable_file(None)));
            }
        }
        Ok(files)
    }

    /// Makes a completely received file an upload.
    /// Audits an upload whose raw file could not be written (and is gone): `storage_full`
    /// (with an alert) when the raw store ran out of space, `write_failed` otherwise.
    async fn write_failed(&self, received: u64, error: &crate::raw_store::RawStoreError) {
        let reason = if error.is_storage_full() {
            tracing::error!(
                alert = "storage_full",
                session = %self.account.session,
                "the raw store is full; an sftp upload was refused"
            );
            "storage_full"
        } else {
            tracing::error!(session = %self.account.session, error = %error, "an sftp upload could not be written");
            "write_failed"
        };
        self.shared.discarded(&self.account, received, reason).await;
    }

    async fn complete(&mut self, writer: RawFileWriter) -> Result<(), StatusReply> {
        if writer.received() == 0 {
            self.shared.discard(&self.account, writer, "empty").await;
            return Err(failure("an empty file is not a claim file"));
        }
        let event = self
            .account
            .event(EventKind::UploadReceived, Outcome::Success);
        match self
            .shared
            .intake
            .record(
                &self.account.provider,
                writer,
                Some(self.account.principal_id),
                None,
                event,
            )
            .await
        {
            Ok((row, created)) => {
                tracing::info!(
                    session = %self.account.session,
                    upload = %row.upload_id,
                    duplicate = !created,
                    "sftp upload received"
                );
                Ok(())
            }
            Err(crate::ingest::IntakeError::Store(StoreError::ProviderDisabled)) => {
                Err(denied("this provider is disabled"))
            }
            Err(crate::ingest::IntakeError::InterchangeReplay { earlier, received }) => {
                tracing::info!(
                    session = %self.account.session,
                    earlier = %earlier,
                    "sftp upload refused: it repeats an earlier interchange"
                );
                self.shared
                    .discarded(&self.account, received, "interchange_replay")
                    .await;
                Err(failure(
                    "this interchange control number (ISA13) was received before; \
                     send the file with a new one",
                ))
            }
            Err(e) => {
                tracing::error!(session = %self.account.session, error = %e, "sftp upload not recorded");
                Err(failure("the file could not be recorded; send it again"))
            }
        }
    }
}

impl Drop for FileSession {
    /// A session that ends (the client closed it, was killed or went idle) discards
    /// every transfer it had not completed.
    fn drop(&mut self) {
        let uploads: Vec<Upload> = self
            .handles
            .drain()
            .filter_map(|(_, open)| match open {
                Open::Upload(upload) => Some(upload),
                _ => None,
            })
            .collect();
        let held: Vec<RawFileWriter> = self.held.drain().map(|(_, w)| w).collect();
        if uploads.is_empty() && held.is_empty() {
            return;
        }
        let shared = self.shared.clone();
        let account = self.account.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                for upload in uploads {
                    if let Ok(writer) = upload.stream.finish().await {
                        shared.discard(&account, writer, "incomplete").await;
                    }
                }
                for writer in held {
                    shared.discard(&account, writer, "never_renamed").await;
                }
            });
        }
    }
}

impl russh_sftp::server::Handler for FileSession {
    type Error = StatusReply;

    fn unimplemented(&self) -> Self::Error {
        StatusCode::OpUnsupported.into()
    }

    async fn init(
        &mut self,
        _version: u32,
        _extensions: HashMap<String, String>,
    ) -> Result<Version, Self::Error> {
        Ok(Version::new())
    }

    async fn realpath(&mut self, id: u32, path: String) -> Result<Name, Self::Error> {
        let place = self.parse(&path).await?;
        Ok(Name {
            id,
            files: vec![File::dummy(place.display())],
        })
    }

    async fn stat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        let attrs = match self.parse(&path).await? {
            VirtualPath::Root | VirtualPath::Inbox | VirtualPath::Outbox => directory(),
            VirtualPath::InboxFile(_) => {
                return Err(StatusCode::NoSuchFile.with_message("the inbox is write-only"));
            }
            VirtualPath::OutboxFile(name) => {
                readable_file(Some(self.outbox_file(&name).await?.len() as u64))
            }
        };
        Ok(Attrs { id, attrs })
    }

    async fn lstat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        self.stat(id, path).await
    }

    async fn fstat(&mut self, id: u32, handle: String) -> Result<Attrs, Self::Error> {
        let attrs = match self.handles.get(&handle) {
            Some(Open::Upload(upload)) => {
                let mut attrs = FileAttributes::empty();
                attrs.size = Some(upload.received);
                attrs.permissions = Some(0o100_200);
                attrs
            }
            Some(Open::Download(data)) => readable_file(Some(data.len() as u64)),
            Some(Open::Listing(_)) => directory(),
            None => return Err(failure("no such handle")),
        };
        Ok(Attrs { id, attrs })
    }

    async fn open(
        &mut self,
        id: u32,
        filename: String,
        pflags: OpenFlags,
        _attrs: FileAttributes,
    ) -> Result<Handle, Self::Error> {
        match self.parse(&filename).await? {
            VirtualPath::InboxFile(name) => {
                if pflags.contains(OpenFlags::READ) || !pflags.contains(OpenFlags::WRITE) {
                    return Err(self
                        .refuse("inbox_read", denied("the inbox is write-only"))
                        .await);
                }
                let writer = self
                    .shared
                    .intake
                    .raw
                    .begin(&self.account.provider)
                    .await
                    .map_err(|_| failure("the file could not be started"))?;
                let upload = Upload {
                    name,
                    stream: RawFileStream::start(writer),
                    received: 0,
                };
                Ok(self.handle_for(id, Open::Upload(upload)))
            }
            VirtualPath::OutboxFile(name) => {
                if pflags.intersects(
                    OpenFlags::WRITE | OpenFlags::APPEND | OpenFlags::CREATE | OpenFlags::TRUNCATE,
                ) {
                    return Err(self
                        .refuse("outbox_write", denied("the outbox is read-only"))
                        .await);
                }
                let data = self.outbox_file(&name).await?;
                Ok(self.handle_for(id, Open::Download(data)))
            }
            VirtualPath::Root | VirtualPath::Inbox | VirtualPath::Outbox => {
                Err(failure("a directory cannot be opened as a file"))
            }
        }
    }

    async fn write(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        data: Vec<u8>,
    ) -> Result<Status, Self::Error> {
        let max = self.shared.max_file_bytes;
        let Some(Open::Upload(upload)) = self.handles.get_mut(&handle) else {
            return Err(failure("not a file open for writing"));
        };
        if offset != upload.received {
            return Err(failure("writes must be sequential"));
        }
        let size = upload.received + data.len() as u64;
        if size > max {
            if let Some(Open::Upload(upload)) = self.handles.remove(&handle) {
                if let Ok(writer) = upload.stream.finish().await {
                    self.shared
                        .discard(&self.account, writer, "too_large")
                        .await;
                }
            }
            return Err(failure("the file exceeds the size limit"));
        }
        if !upload.stream.send(bytes::Bytes::from(data)).await {
            // The raw file's writer stopped (its partial file is removed): say why.
            if let Some(Open::Upload(upload)) = self.handles.remove(&handle) {
                let received = upload.received;
                if let Err(e) = upload.stream.finish().await {
                    self.write_failed(received, &e).await;
                }
            }
            return Err(failure("the file could not be written"));
        }
        upload.received = size;
        Ok(ok(id))
    }

    async fn fsetstat(
        &mut self,
        id: u32,
        handle: String,
        _attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        // `put -p` sets times and modes on the file it wrote: accepted and ignored.
        match self.handles.get(&handle) {
            Some(Open::Upload(_)) => Ok(ok(id)),
            _ => Err(denied("attributes cannot be changed")),
        }
    }

    async fn read(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        len: u32,
    ) -> Result<Data, Self::Error> {
        let Some(Open::Download(data)) = self.handles.get(&handle) else {
            return Err(denied("not a file open for reading"));
        };
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let end = start.saturating_add(len as usize).min(data.len());
        match data.get(start..end) {
            Some(chunk) if !chunk.is_empty() => Ok(Data {
                id,
                data: chunk.to_vec(),
            }),
            _ => Err(StatusCode::Eof.into()),
        }
    }

    async fn close(&mut self, id: u32, handle: String) -> Result<Status, Self::Error> {
        match self.handles.remove(&handle) {
            Some(Open::Upload(upload)) => {
                let writer = match upload.stream.finish().await {
                    Ok(writer) => writer,
                    Err(e) => {
                        self.write_failed(upload.received, &e).await;
                        return Err(failure("the file could not be written"));
                    }
                };
                if is_temporary(&upload.name) {
                    if let Some(earlier) = self.held.insert(upload.name, writer) {
                        self.shared
                            .discard(&self.account, earlier, "overwritten")
                            .await;
                    }
                } else {
                    self.complete(writer).await?;
                }
                Ok(ok(id))
            }
            Some(_) => Ok(ok(id)),
            None => Err(failure("no such handle")),
        }
    }

    async fn rename(
        &mut self,
        id: u32,
        oldpath: String,
        newpath: String,
    ) -> Result<Status, Self::Error> {
        let from = self.parse(&oldpath).await?;
        let to = self.parse(&newpath).await?;
        let (VirtualPath::InboxFile(from), VirtualPath::InboxFile(to)) = (from, to) else {
            return Err(self
                .refuse(
                    "rename",
                    denied("only inbox files can be renamed, within the inbox"),
                )
                .await);
        };
        let Some(writer) = self.held.remove(&from) else {
            return Err(
                StatusCode::NoSuchFile.with_message("no completed temporary file of that name")
            );
        };
        if is_temporary(&to) {
            self.held.insert(to, writer);
        } else {
            self.complete(writer).await?;
        }
        Ok(ok(id))
    }

    async fn opendir(&mut self, id: u32, path: String) -> Result<Handle, Self::Error> {
        let files = match self.parse(&path).await? {
            VirtualPath::Root => vec![
                File::new("inbox", directory()),
                File::new("outbox", directory()),
            ],
            VirtualPath::Outbox => self.outbox_listing().await?,
            VirtualPath::Inbox => {
                return Err(self
                    .refuse("inbox_read", denied("the inbox is write-only"))
                    .await);
            }
            VirtualPath::InboxFile(_) | VirtualPath::OutboxFile(_) => {
                return Err(failure("not a directory"));
            }
        };
        Ok(self.handle_for(id, Open::Listing(Some(files))))
    }

    async fn readdir(&mut self, id: u32, handle: String) -> Result<Name, Self::Error> {
        match self.handles.get_mut(&handle) {
            Some(Open::Listing(files)) => match files.take() {
                Some(files) => Ok(Name { id, files }),
                None => Err(StatusCode::Eof.into()),
            },
            _ => Err(failure("not a directory handle")),
        }
    }

    async fn remove(&mut self, _id: u32, filename: String) -> Result<Status, Self::Error> {
        self.parse(&filename).await?;
        Err(self
            .refuse("remove", denied("files cannot be removed"))
            .await)
    }

    async fn mkdir(
        &mut self,
        _id: u32,
        path: String,
        _attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        self.parse(&path).await?;
        Err(self.refuse("mkdir", denied("folders cannot be made")).await)
    }

    async fn rmdir(&mut self, _id: u32, path: String) -> Result<Status, Self::Error> {
        self.parse(&path).await?;
        Err(self
            .refuse("rmdir", denied("folders cannot be removed"))
            .await)
    }

    async fn setstat(
        &mut self,
        _id: u32,
        path: String,
        _attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        self.parse(&path).await?;
        Err(self
            .refuse("setstat", denied("attributes cannot be changed"))
            .await)
    }

    async fn symlink(
        &mut self,
        _id: u32,
        _linkpath: String,
        _targetpath: String,
    ) -> Result<Status, Self::Error> {
        Err(self.refuse("symlink", denied("links cannot be made")).await)
    }

    async fn readlink(&mut self, _id: u32, path: String) -> Result<Name, Self::Error> {
        self.parse(&path).await?;
        Err(StatusCode::NoSuchFile.with_message("there are no links"))
    }
}
