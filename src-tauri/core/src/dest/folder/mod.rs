//! The local-folder destination: one folder per user holding a Maildir++ tree
//! (<https://cr.yp.to/proto/maildir.html>; Maildir++ subfolders as `.Parent.Child`, the layout
//! Dovecot and Courier read).
//!
//! - A message is written to `tmp/`, synced, given the received date as its mtime, then renamed
//!   into `cur/` with its flags in the name: a crash never leaves a partial message in `cur/`.
//! - The file name carries a key derived from the Graph message id (`<time>.M<key>.m365:2,FS`;
//!   on Windows, which refuses `:` in a file name, `!` separates the info, as other Maildir
//!   tools there do: `...m365!2,FS`). Both forms are read on every OS.
//!   A folder knows the keys it holds, so a rerun writes nothing twice, even without a journal.
//! - Incremental passes mirror the source on these files only (never on files the migrator
//!   did not write): a flag change renames the file within `cur/` (its `:2,` info; letters the
//!   source does not report, such as R and P, are kept), a move renames it into the other
//!   folder's `cur/`, a deletion removes it (only when the user opted in). Each is one
//!   `rename(2)` or `unlink(2)`, so a crash leaves the message in one place.

mod groupware;
mod layout;

pub use groupware::CollectionDir;
pub(crate) use layout::shorten_name;
pub use layout::{maildir_folder_names, maildir_folder_names_in};

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::DestRef;
use crate::convert::flags::{merge_maildir_info, MailFlags};
use crate::graph::client::ByteSink;
use crate::private_files::{create_owned_dir, create_private_dir, sync_dir};

/// A local folder that receives one Maildir++ tree per user.
#[derive(Debug, Clone)]
pub struct FolderStore {
    root: PathBuf,
}

impl FolderStore {
    /// Creates `root` if needed (mode 0700 on Unix: it will hold everyone's mail) and checks
    /// that it is writable, so a bad path is reported before any data moves. The probe is a
    /// new file of a random name (`O_EXCL`), so a symbolic link planted in `root` is never
    /// written through.
    pub fn open(root: &Path) -> std::io::Result<Self> {
        create_private_dir(root)?;
        tempfile::Builder::new()
            .prefix(".m365-migrator-write-test")
            .tempfile_in(root)?
            .close()?;
        Ok(FolderStore {
            root: root.to_path_buf(),
        })
    }

    /// The Maildir++ root of one user, named after the mailbox address. An existing one must
    /// be a directory of the running user, not a symbolic link (see
    /// [`crate::private_files::create_owned_dir`]): else that mailbox fails, and no mail goes
    /// where another user could read it.
    pub fn mailbox(&self, address: &str) -> std::io::Result<Mailbox> {
        let name: String = address
            .trim()
            .to_lowercase()
            .chars()
            .map(|c| {
                if c == '/' || c == '\\' || c.is_control() {
                    '_'
                } else {
                    c
                }
            })
            .collect();
        let name = if name.is_empty() || name.starts_with('.') {
            format!("_{name}")
        } else {
            name
        };
        let root = self.root.join(name);
        create_owned_dir(&root)?;
        Ok(Mailbox { root })
    }
}

/// One user's Maildir++ tree.
#[derive(Debug, Clone)]
pub struct Mailbox {
    root: PathBuf,
}

impl Mailbox {
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Opens (creating if needed) the folder whose Maildir++ name is `name`: empty for INBOX,
    /// otherwise `.Parent.Child` as made by [`maildir_folder_names`].
    pub fn folder(&self, name: &str) -> std::io::Result<Folder> {
        let dir = if name.is_empty() {
            self.root.clone()
        } else {
            self.root.join(name)
        };
        for sub in ["cur", "new", "tmp"] {
            create_private_dir(&dir.join(sub))?;
        }
        if !name.is_empty() {
            // Maildir++: a subfolder is marked by an empty `maildirfolder` file.
            let marker = dir.join("maildirfolder");
            if !marker.exists() {
                std::fs::write(marker, b"")?;
            }
        }
        let mut keys = HashMap::new();
        for sub in ["cur", "new"] {
            for entry in std::fs::read_dir(dir.join(sub))? {
                let file_name = entry?.file_name();
                if let Some(name) = file_name.to_str() {
                    if let Some(key) = key_of_file_name(name) {
                        keys.insert(key.to_string(), dir.join(sub).join(name));
                    }
                }
            }
        }
        Ok(Folder { dir, keys })
    }
}

/// One Maildir folder, with the keys of the messages it already holds and their files.
#[derive(Debug)]
pub struct Folder {
    dir: PathBuf,
    keys: HashMap<String, PathBuf>,
}

impl Folder {
    /// The key under which a Graph message is stored.
    pub fn key_for(source_id: &str) -> String {
        let digest = Sha256::digest(source_id.as_bytes());
        hex::encode(&digest[..12])
    }

    /// True when the message with this key is already in the folder.
    pub fn contains(&self, key: &str) -> bool {
        self.keys.contains_key(key)
    }

    /// Starts writing one message; nothing is visible until [`Delivery::commit`].
    pub async fn deliver(&self, key: &str) -> std::io::Result<Delivery> {
        // A name no other writer uses, as Maildir asks of files in tmp/
        // (<https://cr.yp.to/proto/maildir.html>): another process delivering the same
        // message at once (a worker paused mid-delivery and resumed after another took its
        // mailbox over, issue 18) never writes into, commits or removes this file.
        static DELIVERIES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = DELIVERIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = self
            .dir
            .join("tmp")
            .join(format!("M{key}.{}_{n}.m365", std::process::id()));
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .await?;
        Ok(Delivery {
            file: TmpFile::new(file),
            tmp,
            key: key.to_string(),
            cur: self.dir.join("cur"),
        })
    }

    /// Records that `key` is now present as `dest` (after a successful commit).
    pub fn remember(&mut self, key: String, dest: &DestRef) {
        let path = self.dir.join("cur").join(&dest.0);
        self.keys.insert(key, path);
    }

    /// The file name of the message stored under `key`, if the folder holds it.
    pub fn file_name(&self, key: &str) -> Option<String> {
        let path = self.keys.get(key)?;
        Some(path.file_name()?.to_string_lossy().into_owned())
    }

    /// Gives the message under `key` the flags of `flags` (renaming it within `cur/`, see
    /// [`merge_maildir_info`]). `None` when the folder does not hold it.
    pub fn set_flags(&mut self, key: &str, flags: &MailFlags) -> std::io::Result<Option<DestRef>> {
        let Some(from) = self.keys.get(key).cloned() else {
            return Ok(None);
        };
        let name = renamed(&from, flags);
        let to = self.dir.join("cur").join(&name);
        if to != from {
            std::fs::rename(&from, &to)?;
            sync_dir(&self.dir.join("cur"))?;
            self.keys.insert(key.to_string(), to);
        }
        Ok(Some(DestRef(name)))
    }

    /// Moves the message under `key` into `target`, with the flags of `flags` or (`None`)
    /// those it has, in one rename. `None` when this folder does not hold it.
    pub fn move_to(
        &mut self,
        key: &str,
        target: &mut Folder,
        flags: Option<&MailFlags>,
    ) -> std::io::Result<Option<DestRef>> {
        let Some(from) = self.keys.get(key).cloned() else {
            return Ok(None);
        };
        let name = match flags {
            Some(flags) => renamed(&from, flags),
            None => from
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        };
        let to = target.dir.join("cur").join(&name);
        std::fs::rename(&from, &to)?;
        // The new name first: a crash between the two syncs leaves the message in both
        // directories' records at worst, never in neither.
        sync_dir(&target.dir.join("cur"))?;
        if let Some(old) = from.parent() {
            sync_dir(old)?;
        }
        self.keys.remove(key);
        target.keys.insert(key.to_string(), to);
        Ok(Some(DestRef(name)))
    }

    /// Deletes the message under `key`; false when the folder does not hold it.
    pub fn remove(&mut self, key: &str) -> std::io::Result<bool> {
        let Some(path) = self.keys.remove(key) else {
            return Ok(false);
        };
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// A message being written into `tmp/`.
pub struct Delivery {
    file: TmpFile,
    tmp: PathBuf,
    key: String,
    cur: PathBuf,
}

/// A delivery's file in `tmp/`, created at once (so a folder that cannot be written fails
/// the message before its download), buffered from its first byte on: the copies of a
/// mailbox waiting for their downloads hold no buffer (issue 17: 1,000 mailboxes at once).
/// One of the two is there.
struct TmpFile {
    waiting: Option<tokio::fs::File>,
    writing: Option<tokio::io::BufWriter<tokio::fs::File>>,
}

impl TmpFile {
    fn new(file: tokio::fs::File) -> Self {
        TmpFile {
            waiting: Some(file),
            writing: None,
        }
    }

    /// The buffered writer, made on first use.
    fn writer(&mut self) -> std::io::Result<&mut tokio::io::BufWriter<tokio::fs::File>> {
        if let Some(file) = self.waiting.take() {
            self.writing = Some(tokio::io::BufWriter::with_capacity(64 * 1024, file));
        }
        self.writing.as_mut().ok_or_else(lost_file)
    }

    /// The file with everything written so far flushed into it.
    async fn into_file(mut self) -> std::io::Result<tokio::fs::File> {
        if let Some(file) = self.waiting.take() {
            return Ok(file);
        }
        let mut writer = self.writing.take().ok_or_else(lost_file)?;
        writer.flush().await?;
        Ok(writer.into_inner())
    }
}

fn lost_file() -> std::io::Error {
    std::io::Error::other("internal: a delivery lost its file")
}

impl ByteSink for Delivery {
    async fn reset(&mut self) -> std::io::Result<()> {
        if self.file.waiting.is_some() {
            // Nothing written yet: the file is as `create_new` made it, empty.
            return Ok(());
        }
        let writer = self.file.writer()?;
        writer.flush().await?;
        let file = writer.get_mut();
        file.set_len(0).await?;
        file.rewind().await?;
        Ok(())
    }

    async fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.file.writer()?.write_all(chunk).await
    }
}

impl Delivery {
    /// Makes the message visible in `cur/` with its flags, and the received date (Unix seconds)
    /// as its modification time. The file is synced first, so a crash leaves it whole or absent,
    /// and `cur/` after the rename, so the message is on disk before the caller journals it done.
    pub async fn commit(self, flags: &MailFlags, received: i64) -> std::io::Result<DestRef> {
        let file = self.file.into_file().await?.into_std().await;
        let name = format!(
            "{}.M{}.m365{INFO_SEPARATOR}{}",
            received.max(0),
            self.key,
            flags.maildir_info()
        );
        let target = self.cur.join(&name);
        let tmp = self.tmp;
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let mtime =
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(received.max(0) as u64);
            file.set_modified(mtime)?;
            file.sync_all()?;
            drop(file);
            std::fs::rename(&tmp, &target)?;
            sync_dir(target.parent().unwrap_or(Path::new(".")))
        })
        .await
        .map_err(std::io::Error::other)??;
        Ok(DestRef(name))
    }

    /// Removes the partial file after a failed download.
    pub async fn abandon(self) {
        drop(self.file);
        let _ = tokio::fs::remove_file(&self.tmp).await;
    }
}

use tokio::io::AsyncSeekExt as _;

/// The file name of `path` with its info replaced for `flags`.
fn renamed(path: &Path, flags: &MailFlags) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (base, info) = name.split_once([':', '!']).unwrap_or((&name, ""));
    format!("{base}{INFO_SEPARATOR}{}", merge_maildir_info(info, flags))
}

/// What separates a Maildir file name's unique part from its info (`2,FS`): `:` by the
/// Maildir specification, `!` where the file system refuses `:` (Windows).
const INFO_SEPARATOR: char = if cfg!(windows) { '!' } else { ':' };

/// The key inside a file name written by [`Delivery::commit`], if it is one of ours (with
/// either info separator).
fn key_of_file_name(name: &str) -> Option<&str> {
    let base = name.split([':', '!']).next()?;
    let mut parts = base.split('.');
    let _time = parts.next()?;
    let key = parts.next()?.strip_prefix('M')?;
    (parts.next()? == "m365").then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::client::ByteSink;

    /// A delivery waiting for its download holds its file but no write buffer (1,000
    /// mailboxes at once each wait with several); the buffer comes with the first byte, and a
    /// reset before any byte (a retried download) leaves the file empty.
    #[tokio::test]
    async fn a_waiting_delivery_holds_no_buffer_until_its_first_byte() {
        let dir = tempfile::tempdir().unwrap();
        let store = FolderStore::open(dir.path()).unwrap();
        let folder = store.mailbox("a@b.c").unwrap().folder(".Inbox").unwrap();
        let mut d = folder.deliver(&Folder::key_for("m1")).await.unwrap();
        assert!(d.file.writing.is_none() && d.file.waiting.is_some());
        d.reset().await.unwrap();
        assert!(
            d.file.writing.is_none(),
            "a reset before any byte makes no buffer"
        );
        d.write(b"Subject: x\r\n\r\n").await.unwrap();
        assert!(d.file.writing.is_some() && d.file.waiting.is_none());
        let dest = d.commit(&MailFlags::default(), 0).await.unwrap();
        let path = dir.path().join("a@b.c/.Inbox/cur").join(&dest.0);
        assert_eq!(std::fs::read(path).unwrap(), b"Subject: x\r\n\r\n");
    }

    #[tokio::test]
    async fn delivery_is_atomic_flagged_dated_and_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let store = FolderStore::open(dir.path()).unwrap();
        let mailbox = store.mailbox("Adele.Vance@Contoso.com").unwrap();
        let folder = mailbox.folder(".Projects.2024").unwrap();
        let key = Folder::key_for("AAMkAGI2=");
        assert!(!folder.contains(&key));

        let mut d = folder.deliver(&key).await.unwrap();
        d.write(b"partial first attempt").await.unwrap();
        d.reset().await.unwrap();
        d.write(b"Subject: hi\r\n\r\nbody\r\n").await.unwrap();
        let flags = MailFlags {
            seen: true,
            flagged: true,
            ..Default::default()
        };
        let dest = d.commit(&flags, 1_700_000_000).await.unwrap();
        assert!(dest.0.ends_with(":2,FS"), "{}", dest.0);

        let path = dir
            .path()
            .join("adele.vance@contoso.com/.Projects.2024/cur")
            .join(&dest.0);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"Subject: hi\r\n\r\nbody\r\n"
        );
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        assert_eq!(
            mtime
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
            1_700_000_000
        );
        assert!(dir
            .path()
            .join("adele.vance@contoso.com/.Projects.2024/maildirfolder")
            .exists());
        assert_eq!(
            std::fs::read_dir(
                dir.path()
                    .join("adele.vance@contoso.com/.Projects.2024/tmp")
            )
            .unwrap()
            .count(),
            0
        );

        // Reopening finds the message by its key: a rerun will not write it again.
        let reopened = mailbox.folder(".Projects.2024").unwrap();
        assert!(reopened.contains(&key));
        assert_eq!(reopened.len(), 1);
    }

    /// A mailbox in `dir` with its INBOX and a folder `.Other`.
    fn inbox_and_other(dir: &Path) -> (Mailbox, Folder, Folder) {
        let mailbox = FolderStore::open(dir).unwrap().mailbox("a@b.c").unwrap();
        let inbox = mailbox.folder("").unwrap();
        let other = mailbox.folder(".Other").unwrap();
        (mailbox, inbox, other)
    }

    /// Delivers one message (source id `m1`) into `folder`: its key and file name.
    async fn deliver_one(folder: &mut Folder) -> (String, DestRef) {
        let key = Folder::key_for("m1");
        let mut d = folder.deliver(&key).await.unwrap();
        d.write(b"Subject: x\r\n\r\nbody").await.unwrap();
        let dest = d
            .commit(&MailFlags::default(), 1_700_000_000)
            .await
            .unwrap();
        folder.remember(key.clone(), &dest);
        (key, dest)
    }

    #[tokio::test]
    async fn a_delivered_message_is_in_a_synced_directory_before_it_is_reported_done() {
        // A kill between the rename and the journal's "done" must not lose the message after
        // the journal said done: commit returns (and the engine journals) only once `cur/` is
        // synced, so the rename is on disk.
        let dir = tempfile::tempdir().unwrap();
        let (mailbox, mut inbox, mut other) = inbox_and_other(dir.path());
        let (cur, other_cur) = (
            mailbox.path().join("cur"),
            mailbox.path().join(".Other/cur"),
        );
        let before = crate::private_files::synced::count(&cur);
        let (key, _) = deliver_one(&mut inbox).await;
        assert_eq!(crate::private_files::synced::count(&cur), before + 1);
        let seen = MailFlags {
            seen: true,
            ..Default::default()
        };
        inbox.set_flags(&key, &seen).unwrap().unwrap();
        assert_eq!(crate::private_files::synced::count(&cur), before + 2);
        inbox.move_to(&key, &mut other, None).unwrap().unwrap();
        assert_eq!(crate::private_files::synced::count(&other_cur), 1);
        assert_eq!(crate::private_files::synced::count(&cur), before + 3);
    }

    #[cfg(unix)]
    #[test]
    fn the_write_probe_never_writes_through_a_planted_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let root = dir.path().join("out");
        std::fs::create_dir(&root).unwrap();
        std::os::unix::fs::symlink(&victim, root.join(".m365-migrator-write-test")).unwrap();
        FolderStore::open(&root).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
    }

    #[cfg(unix)]
    #[test]
    fn a_per_user_directory_that_is_a_symlink_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = dir.path().join("shared");
        std::fs::create_dir(&elsewhere).unwrap();
        let root = dir.path().join("out");
        let store = FolderStore::open(&root).unwrap();
        std::os::unix::fs::symlink(&elsewhere, root.join("ann@contoso.com")).unwrap();
        let e = store.mailbox("ann@contoso.com").unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied, "{e}");
        assert!(
            store.mailbox("bob@contoso.com").is_ok(),
            "other users go on"
        );
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn flags_moves_and_deletions_rename_or_remove_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let (mailbox, mut inbox, mut other) = inbox_and_other(dir.path());
        let (key, dest) = deliver_one(&mut inbox).await;
        // A mail client marked it answered (R) meanwhile: the letter stays.
        let answered = dest.0.replace(":2,", ":2,R");
        std::fs::rename(
            mailbox.path().join("cur").join(&dest.0),
            mailbox.path().join("cur").join(&answered),
        )
        .unwrap();
        let mut inbox = mailbox.folder("").unwrap();
        let seen = MailFlags {
            seen: true,
            ..Default::default()
        };
        let renamed = inbox.set_flags(&key, &seen).unwrap().unwrap();
        assert_eq!(renamed.0, format!("1700000000.M{key}.m365:2,RS"));
        let moved = inbox.move_to(&key, &mut other, None).unwrap().unwrap();
        assert_eq!(moved, renamed);
        assert!(!inbox.contains(&key) && other.contains(&key));
        assert!(mailbox.path().join(".Other/cur").join(&moved.0).exists());
        assert_eq!(
            std::fs::read_dir(mailbox.path().join("cur"))
                .unwrap()
                .count(),
            0
        );
        assert_eq!(inbox.set_flags(&key, &seen).unwrap(), None);
        assert!(other.remove(&key).unwrap());
        assert!(!other.remove(&key).unwrap());
        assert_eq!(
            std::fs::read_dir(mailbox.path().join(".Other/cur"))
                .unwrap()
                .count(),
            0
        );
    }

    #[test]
    fn only_our_file_names_yield_keys() {
        assert_eq!(key_of_file_name("1700000000.Mabc.m365:2,S"), Some("abc"));
        // Regression (issue 19.4): a tree written on Windows (`!`, `:` is refused there) or
        // copied from it was not recognised, so every message was written again.
        assert_eq!(key_of_file_name("1700000000.Mabc.m365!2,S"), Some("abc"));
        assert_eq!(key_of_file_name("1700000000.M1P2.host:2,S"), None);
        assert_eq!(key_of_file_name("garbage"), None);
    }
}
