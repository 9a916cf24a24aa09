//! Streaming encryption of raw files: a chunked AEAD in the STREAM construction
//! (Hoang, Reyhanitabar, Rogaway, Vizár 2015), so a multi-gigabyte upload never sits in
//! memory and chunks cannot be reordered, dropped or cut off undetected.
//!
//! Each file has its own random key (wrapped by the provider's data key by the caller).
//! Layout: `"CGRF" | version (1) | nonce prefix (7)`, then chunks of [`CHUNK`] plaintext
//! bytes, each sealed with nonce `prefix | chunk counter (4, big-endian) | last flag (1)`
//! and the file id as associated data. The last chunk (possibly empty) has the flag set:
//! a file cut at a chunk boundary lacks it and fails; a swapped chunk has the wrong
//! counter and fails.

use std::io::{self, Read, Write};

use zeroize::Zeroizing;

use super::aead::{AeadKey, CryptoError, KEY_LEN, TAG_LEN};

/// Plaintext bytes per chunk.
pub const CHUNK: usize = 64 * 1024;
const MAGIC: &[u8; 4] = b"CGRF";
const VERSION: u8 = 1;
const PREFIX_LEN: usize = 7;
const HEADER_LEN: usize = MAGIC.len() + 1 + PREFIX_LEN;

fn nonce(prefix: &[u8; PREFIX_LEN], counter: u32, last: bool) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[..PREFIX_LEN].copy_from_slice(prefix);
    nonce[PREFIX_LEN..11].copy_from_slice(&counter.to_be_bytes());
    nonce[11] = u8::from(last);
    nonce
}

fn io_error(e: CryptoError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// Encrypts what is written to it into `inner`; call [`EncryptingWriter::finish`].
pub struct EncryptingWriter<W: Write> {
    inner: W,
    key: AeadKey,
    prefix: [u8; PREFIX_LEN],
    aad: Vec<u8>,
    counter: u32,
    buffer: Zeroizing<Vec<u8>>,
    sealed: Vec<u8>,
}

impl<W: Write> EncryptingWriter<W> {
    /// Starts a file with `file_key`, bound to `file_id`; writes the header.
    pub fn new(mut inner: W, file_key: &[u8; KEY_LEN], file_id: &str) -> io::Result<Self> {
        let mut prefix = [0u8; PREFIX_LEN];
        aws_lc_rs::rand::fill(&mut prefix).map_err(|_| io_error(CryptoError::Random))?;
        inner.write_all(MAGIC)?;
        inner.write_all(&[VERSION])?;
        inner.write_all(&prefix)?;
        Ok(Self {
            inner,
            key: AeadKey::new(file_key).map_err(io_error)?,
            prefix,
            aad: file_id.as_bytes().to_vec(),
            counter: 0,
            buffer: Zeroizing::new(Vec::with_capacity(CHUNK)),
            sealed: Vec::with_capacity(CHUNK + TAG_LEN),
        })
    }

    fn seal_chunk(&mut self, last: bool) -> io::Result<()> {
        self.sealed.clear();
        self.key
            .seal_into(
                nonce(&self.prefix, self.counter, last),
                &self.aad,
                &self.buffer,
                &mut self.sealed,
            )
            .map_err(io_error)?;
        self.inner.write_all(&self.sealed)?;
        self.buffer.clear();
        self.counter = self
            .counter
            .checked_add(1)
            .ok_or_else(|| io::Error::other("raw file too large for one key"))?;
        Ok(())
    }

    /// Seals the last chunk and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.seal_chunk(true)?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for EncryptingWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buffer.len();
        let take = room.min(data.len());
        self.buffer.extend_from_slice(&data[..take]);
        if self.buffer.len() == CHUNK {
            self.seal_chunk(false)?;
        }
        Ok(take)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Decrypts a file written by [`EncryptingWriter`]; every failure is `InvalidData`.
pub struct DecryptingReader<R: Read> {
    inner: R,
    key: AeadKey,
    prefix: [u8; PREFIX_LEN],
    aad: Vec<u8>,
    counter: u32,
    frame: Vec<u8>,
    /// One byte read ahead, to know whether a frame is the last.
    ahead: Option<u8>,
    plain: Zeroizing<Vec<u8>>,
    pos: usize,
    done: bool,
}

impl<R: Read> DecryptingReader<R> {
    /// Reads and checks the header.
    pub fn new(mut inner: R, file_key: &[u8; KEY_LEN], file_id: &str) -> io::Result<Self> {
        let mut header = [0u8; HEADER_LEN];
        inner
            .read_exact(&mut header)
            .map_err(|_| io_error(CryptoError::Malformed))?;
        if &header[..4] != MAGIC {
            return Err(io_error(CryptoError::Malformed));
        }
        if header[4] != VERSION {
            return Err(io_error(CryptoError::UnsupportedVersion(header[4])));
        }
        let mut prefix = [0u8; PREFIX_LEN];
        prefix.copy_from_slice(&header[5..]);
        let mut reader = Self {
            inner,
            key: AeadKey::new(file_key).map_err(io_error)?,
            prefix,
            aad: file_id.as_bytes().to_vec(),
            counter: 0,
            frame: Vec::with_capacity(CHUNK + TAG_LEN),
            ahead: None,
            plain: Zeroizing::new(Vec::new()),
            pos: 0,
            done: false,
        };
        reader.ahead = reader.read_byte()?;
        Ok(reader)
    }

    fn read_byte(&mut self) -> io::Result<Option<u8>> {
        let mut byte = [0u8; 1];
        loop {
            match self.inner.read(&mut byte) {
                Ok(0) => return Ok(None),
                Ok(_) => return Ok(Some(byte[0])),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads the next frame and decrypts it.
    fn next_frame(&mut self) -> io::Result<()> {
        self.frame.clear();
        let Some(first) = self.ahead.take() else {
            // The stream ended without a frame marked last: truncated.
            return Err(io_error(CryptoError::Decrypt));
        };
        self.frame.push(first);
        let mut rest = (&mut self.inner).take((CHUNK + TAG_LEN - 1) as u64);
        rest.read_to_end(&mut self.frame)?;
        self.ahead = self.read_byte()?;
        let last = self.ahead.is_none();
        self.plain = self
            .key
            .open(
                nonce(&self.prefix, self.counter, last),
                &self.aad,
                &self.frame,
            )
            .map_err(io_error)?;
        self.pos = 0;
        self.counter = self.counter.wrapping_add(1);
        self.done = last;
        Ok(())
    }
}

impl<R: Read> Read for DecryptingReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.plain.len() {
            if self.done {
                return Ok(0);
            }
            self.next_frame()?;
        }
        let n = (self.plain.len() - self.pos).min(out.len());
        out[..n].copy_from_slice(&self.plain[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
