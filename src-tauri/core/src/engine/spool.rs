//! A message spooled to an anonymous temporary file: written once from Graph's stream, then
//! read (possibly twice: fingerprint, then APPEND) by a destination that needs the length
//! up front. Memory holds only a buffer; the file disappears when dropped.

use sha2::{Digest, Sha256};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use crate::graph::client::ByteSink;

pub struct Spool {
    file: tokio::fs::File,
    len: u64,
    sha256: Sha256,
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
            len: 0,
            sha256: Sha256::new(),
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

    /// The file, rewound, for reading.
    pub async fn reader(&mut self) -> std::io::Result<&mut tokio::fs::File> {
        self.file.flush().await?;
        self.file.rewind().await?;
        Ok(&mut self.file)
    }
}

impl ByteSink for Spool {
    async fn reset(&mut self) -> std::io::Result<()> {
        self.file.set_len(0).await?;
        self.file.rewind().await?;
        self.len = 0;
        self.sha256 = Sha256::new();
        Ok(())
    }

    async fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.file.write_all(chunk).await?;
        self.len += chunk.len() as u64;
        self.sha256.update(chunk);
        Ok(())
    }
}
