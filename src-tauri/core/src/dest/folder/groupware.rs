//! Calendars, contacts and tasks in the local folder: beside the user's Maildir++ tree,
//! `calendars/<name>/`, `contacts/<name>/` and `tasks/<name>/` hold one `.ics` or `.vcf` file per
//! item, named after its UID. Maildir++ readers ignore these folders (theirs start with `.`).
//!
//! A file is written to a temporary name, synced and renamed over the old one, so a crash leaves
//! either the old or the new version, and rewriting an item never makes a second file; the
//! folder is synced after the rename, before the item is journaled done.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{create_private_dir, sync_dir, Mailbox};
use crate::dest::{CollectionKind, DestRef};

/// The longest file or folder name written, in bytes (common file systems allow 255).
const MAX_NAME: usize = 120;

/// One calendar, address book or task list of a user, as a folder.
#[derive(Debug, Clone)]
pub struct CollectionDir {
    dir: PathBuf,
    extension: &'static str,
}

impl Mailbox {
    /// Opens (creating if needed) the folder for a collection. `path` is the source
    /// collection's name from the top (a contact folder may be nested); `source_id` keeps two
    /// collections with the same name apart, so they never merge by accident.
    pub fn collection(
        &self,
        kind: CollectionKind,
        path: &[String],
        source_id: &str,
    ) -> std::io::Result<CollectionDir> {
        let (top, extension) = match kind {
            CollectionKind::Events => ("calendars", "ics"),
            CollectionKind::Contacts => ("contacts", "vcf"),
            CollectionKind::Tasks => ("tasks", "ics"),
        };
        let mut dir = self.path().join(top);
        let name = if path.is_empty() {
            "default".to_string()
        } else {
            path.iter()
                .map(|p| file_name(p))
                .collect::<Vec<_>>()
                .join("/")
        };
        // The short id suffix makes the name unique per source collection and stable across runs.
        let unique = format!("{} ~{}", name, &short_hash(source_id)[..8]);
        for part in unique.split('/') {
            dir.push(part);
        }
        create_private_dir(&dir)?;
        Ok(CollectionDir { dir, extension })
    }
}

impl CollectionDir {
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Writes (or replaces) the item with this UID. Returns the file name as its reference.
    pub fn put(&self, uid: &str, text: &[u8]) -> std::io::Result<DestRef> {
        let name = format!("{}.{}", item_name(uid), self.extension);
        let target = self.dir.join(&name);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(text)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, &target)?;
        // The directory too, so the item is on disk before the caller journals it done.
        sync_dir(&self.dir)?;
        Ok(DestRef(name))
    }

    /// Removes an item written earlier (by its reference). Missing is not an error.
    pub fn remove(&self, item: &DestRef) -> std::io::Result<()> {
        if item.0.contains(['/', '\\']) || item.0.starts_with('.') {
            return Err(std::io::Error::other("not an item of this collection"));
        }
        match std::fs::remove_file(self.dir.join(&item.0)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

fn short_hash(s: &str) -> String {
    hex::encode(&Sha256::digest(s.as_bytes())[..8])
}

/// A file name for an item: the UID when it is plain, else a hash of it (UIDs may hold any
/// character, and Exchange UIDs run to a hundred hex digits and more).
fn item_name(uid: &str) -> String {
    let plain = !uid.is_empty()
        && uid.len() <= MAX_NAME
        && !uid.starts_with('.')
        && uid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'));
    if plain {
        uid.to_string()
    } else {
        hex::encode(&Sha256::digest(uid.as_bytes())[..16])
    }
}

/// A display name made safe as one path segment: no separators, control characters or
/// leading dot, at most [`MAX_NAME`] bytes.
fn file_name(name: &str) -> String {
    let mut out: String = name
        .trim()
        .chars()
        .map(|c| {
            if matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|') || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    if out.starts_with('.') || out.is_empty() {
        out.insert(0, '_');
    }
    while out.len() > MAX_NAME {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dest::folder::FolderStore;

    #[test]
    fn items_are_replaced_in_place_and_collections_with_one_name_stay_apart() {
        let dir = tempfile::tempdir().unwrap();
        let mailbox = FolderStore::open(dir.path())
            .unwrap()
            .mailbox("ann@contoso.com")
            .unwrap();
        let work = mailbox
            .collection(CollectionKind::Events, &["Work/Projects".into()], "cal-1")
            .unwrap();
        let other = mailbox
            .collection(CollectionKind::Events, &["Work/Projects".into()], "cal-2")
            .unwrap();
        assert_ne!(work.path(), other.path());
        assert!(work.path().starts_with(mailbox.path().join("calendars")));

        let first = work
            .put("uid-1@contoso.com", b"BEGIN:VCALENDAR\r\nv1")
            .unwrap();
        let again = work
            .put("uid-1@contoso.com", b"BEGIN:VCALENDAR\r\nv2")
            .unwrap();
        assert_eq!(first, again);
        let files: Vec<_> = std::fs::read_dir(work.path()).unwrap().collect();
        assert_eq!(files.len(), 1, "one file per UID, no temporary left");
        assert_eq!(
            std::fs::read(work.path().join(&first.0)).unwrap(),
            b"BEGIN:VCALENDAR\r\nv2"
        );
        work.remove(&first).unwrap();
        work.remove(&first).unwrap();
        assert_eq!(std::fs::read_dir(work.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_written_item_is_in_a_synced_directory_before_it_is_reported_done() {
        let dir = tempfile::tempdir().unwrap();
        let work = FolderStore::open(dir.path())
            .unwrap()
            .mailbox("ann@contoso.com")
            .unwrap()
            .collection(CollectionKind::Contacts, &[], "c-1")
            .unwrap();
        assert_eq!(crate::private_files::synced::count(work.path()), 0);
        work.put("uid-1", b"BEGIN:VCARD\r\n").unwrap();
        assert_eq!(crate::private_files::synced::count(work.path()), 1);
    }

    #[test]
    fn hostile_uids_and_names_stay_inside_the_collection() {
        assert_eq!(item_name("../../etc/passwd").len(), 32);
        assert_eq!(
            item_name("040000008200E00074C5B7101A82E008"),
            "040000008200E00074C5B7101A82E008"
        );
        assert_eq!(file_name("../x"), "_.._x");
        assert_eq!(file_name("a\u{0}b"), "a_b");
        assert!(file_name(&"é".repeat(200)).len() <= MAX_NAME);
    }
}
