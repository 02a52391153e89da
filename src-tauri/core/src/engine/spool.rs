//! A message spooled to an anonymous temporary file: written once from Graph's stream, then
//! read once by a destination that needs the length up front. Its header section is kept
//! while it streams past, so the IMAP fingerprint needs no read of the file. Memory holds
//! only a write buffer (freed by [`Spool::seal`]); the file disappears when dropped.

use sha2::{Digest, Sha256};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use crate::dest::imap::{HeaderCapture, MessageFingerprint};
use crate::graph::client::ByteSink;

/// Writes reach the file in pieces of up to this many bytes: every write of a
/// `tokio::fs::File` is a trip to the blocking thread pool, and Graph's chunks are small.
/// The buffer never grows beyond it (one per download in flight).
const WRITE_BUFFER: usize = 64 * 1024;

pub struct Spool {
    file: tokio::fs::File,
    /// Bytes not yet written to `file`.
    pending: Vec<u8>,
    len: u64,
    sha256: Sha256,
    head: HeaderCapture,
    /// Everything written is in the file and no write is in flight.
    sealed: bool,
}

impl Spool {
    /// An empty spool file in the system's temporary folder (or `dir`).
    pub fn new(dir: Option<&std::path::Path>) -> std::io::Result<Self> {
        let file = match dir {
            Some(dir) => tempfile::tempfile_in(dir)?,
            None => tempfile::tempfile()?,
        };
        Ok(Spool {
            file: tokio::fs::File::from_std(file),
            pending: Vec::new(),
            len: 0,
            sha256: Sha256::new(),
            head: HeaderCapture::default(),
            sealed: false,
        })
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// SHA-256 (hex) of the bytes written: the message's content hash for the journal.
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256.clone().finalize())
    }

    /// The fingerprint of the message written, `received` at the source (from the header
    /// section kept while it was written; see [`MessageFingerprint::read`]).
    pub fn fingerprint(&self, received: time::OffsetDateTime) -> MessageFingerprint {
        self.head.fingerprint(self.len, received)
    }

    /// Writes what is buffered to the file and frees every buffer: the message is complete
    /// and may wait in a queue holding no memory but its header section.
    pub async fn seal(&mut self) -> std::io::Result<()> {
        if self.sealed {
            return Ok(());
        }
        if !self.pending.is_empty() {
            self.file.write_all(&self.pending).await?;
        }
        self.pending = Vec::new();
        self.file.flush().await?;
        // A `tokio::fs::File` keeps the buffer of its last write for reuse (64 KiB here) for
        // as long as it lives; a new handle to the same file holds none. With a hundred
        // spools queued per mailbox, those buffers were most of the run's memory.
        self.file = self.file.try_clone().await?;
        self.sealed = true;
        Ok(())
    }

    /// A reader of the whole message from its start: a handle of its own, so the buffer it
    /// fills while being read is freed when the reader is dropped, not when the spool is.
    pub async fn reader(&mut self) -> std::io::Result<tokio::fs::File> {
        self.seal().await?;
        let mut reader = self.file.try_clone().await?;
        reader.rewind().await?;
        Ok(reader)
    }
}

impl ByteSink for Spool {
    async fn reset(&mut self) -> std::io::Result<()> {
        self.pending = Vec::new();
        self.file.set_len(0).await?;
        self.file.rewind().await?;
        self.len = 0;
        self.sha256 = Sha256::new();
        self.head = HeaderCapture::default();
        self.sealed = false;
        Ok(())
    }

    async fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.sealed = false;
        if self.pending.len() + chunk.len() > WRITE_BUFFER {
            if !self.pending.is_empty() {
                self.file.write_all(&self.pending).await?;
                self.pending.clear();
            }
            if chunk.len() >= WRITE_BUFFER {
                self.file.write_all(chunk).await?;
            } else {
                self.pending.extend_from_slice(chunk);
            }
        } else {
            if self.pending.capacity() == 0 {
                self.pending.reserve_exact(WRITE_BUFFER);
            }
            self.pending.extend_from_slice(chunk);
        }
        self.len += chunk.len() as u64;
        self.sha256.update(chunk);
        self.head.feed(chunk);
        Ok(())
    }
}
