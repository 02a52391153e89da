//! Calendars, contacts and tasks in the local folder: beside the user's Maildir++ tree,
//! `calendars/<name>/`, `contacts/<name>/` and `tasks/<name>/` hold one `.ics` or `.vcf` file per
//! item, named after its UID. Maildir++ readers ignore these folders (theirs start with `.`).
//!
//! A file is written to a temporary name, synced and renamed over the old one, so a crash leaves
//! either the old or the new version, and rewriting an item never makes a second file; the
//! folder is synced after the rename, before the item is journaled done.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{create_private_dir, sync_dir, Mailbox};
use crate::dest::{CollectionKind, DestRef};

/// Writes `text` as `dir/name` through a synced temporary file and a rename, then syncs `dir`,
/// so the item is on disk before the caller journals it done and a crash leaves either the
/// old or the new version.
fn write_item(dir: &Path, name: &str, text: &[u8]) -> std::io::Result<()> {
    let target = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(text)?;
    file.sync_all()?;
    drop(file);
    if let Err(e) = std::fs::rename(&tmp, &target) {
        // Nothing half-written stays behind.
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir)
}

/// The longest file or folder name written, in bytes (common file systems allow 255).
const MAX_NAME: usize = 120;

/// One calendar, address book or task list of a user, as a folder.
#[derive(Debug, Clone)]
pub struct CollectionDir {
    dir: PathBuf,
    extension: &'static str,
    /// The file names in the directory when it was opened, exactly as listed (so on a
    /// case-insensitive file system `ABC.ics` is never taken for `abc.ics`).
    listed: HashSet<String>,
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
        let dir_of = |segment: fn(&str) -> String| {
            let mut dir = self.path().join(top);
            let name = if path.is_empty() {
                "default".to_string()
            } else {
                path.iter()
                    .map(|p| segment(p))
                    .collect::<Vec<_>>()
                    .join("/")
            };
            // The short id suffix makes the name unique per source collection and stable
            // across runs.
            let unique = format!("{} ~{}", name, &short_hash(source_id)[..8]);
            for part in unique.split('/') {
                dir.push(part);
            }
            dir
        };
        let (dir, legacy) = (dir_of(file_name), dir_of(legacy_file_name));
        let dir = if legacy != dir && listed_exactly(&legacy) {
            legacy
        } else {
            dir
        };
        create_private_dir(&dir)?;
        let listed = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        Ok(CollectionDir {
            dir,
            extension,
            listed,
        })
    }
}

impl CollectionDir {
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Writes (or replaces) the item with this UID. Returns the file name as its reference.
    pub fn put(&self, uid: &str, text: &[u8]) -> std::io::Result<DestRef> {
        let name = self.file_name(uid);
        write_item(&self.dir, &name, text)?;
        Ok(DestRef(name))
    }

    /// [`CollectionDir::put`] on Tokio's blocking pool: its two syncs wait for the disk,
    /// which on a runtime worker would stall every mailbox queued on that worker (issue 17).
    pub async fn put_async(&self, uid: &str, text: Vec<u8>) -> std::io::Result<DestRef> {
        let name = self.file_name(uid);
        let dir = self.dir.clone();
        let written = name.clone();
        tokio::task::spawn_blocking(move || write_item(&dir, &written, &text))
            .await
            .map_err(std::io::Error::other)??;
        Ok(DestRef(name))
    }

    /// The file an item with this UID has: its legacy name when the folder already held that.
    fn file_name(&self, uid: &str) -> String {
        let name = format!("{}.{}", item_name(uid), self.extension);
        let legacy = format!("{}.{}", legacy_item_name(uid), self.extension);
        if legacy != name && self.listed.contains(&legacy) {
            legacy
        } else {
            name
        }
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

/// Whether `path` exists under exactly this name in its parent's listing (not merely a name
/// equal to it ignoring case).
fn listed_exactly(path: &Path) -> bool {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return false;
    };
    std::fs::read_dir(parent)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| e.file_name() == name)
}

fn short_hash(s: &str) -> String {
    hex::encode(&Sha256::digest(s.as_bytes())[..8])
}

/// Whether Windows reserves `name` for a device (CON, PRN, AUX, NUL, COM1-9, LPT1-9, with or
/// without an extension: the part before the first dot, trailing spaces dropped, any case; the
/// Win32 naming rules, learn.microsoft.com/windows/win32/fileio/naming-a-file).
fn reserved_on_windows(name: &str) -> bool {
    let base = name.split('.').next().unwrap_or_default().trim_end();
    let upper = base.to_ascii_uppercase();
    matches!(upper.as_str(), "CON" | "PRN" | "AUX" | "NUL")
        || ((upper.starts_with("COM") || upper.starts_with("LPT"))
            && upper.len() == 4
            && upper.as_bytes()[3].is_ascii_digit()
            && upper.as_bytes()[3] != b'0')
}

/// A file name for an item: the UID when it is plain, else a hash of it (UIDs may hold any
/// character, and Exchange UIDs run to a hundred hex digits and more). Plain is lower case
/// (UIDs are case-sensitive, NTFS and APFS names are not: `abc` and `ABC` would be one file)
/// and no name Windows reserves.
fn item_name(uid: &str) -> String {
    if plain_uid(uid) && !uid.bytes().any(|b| b.is_ascii_uppercase()) && !reserved_on_windows(uid) {
        uid.to_string()
    } else {
        hex::encode(&Sha256::digest(uid.as_bytes())[..16])
    }
}

/// [`item_name`] as written before names were made portable (upper case and reserved names
/// kept): an item an earlier run wrote under it keeps its file.
fn legacy_item_name(uid: &str) -> String {
    if plain_uid(uid) {
        uid.to_string()
    } else {
        hex::encode(&Sha256::digest(uid.as_bytes())[..16])
    }
}

fn plain_uid(uid: &str) -> bool {
    !uid.is_empty()
        && uid.len() <= MAX_NAME
        && !uid.starts_with('.')
        && uid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'))
}

/// A display name made safe as one path segment on every OS: [`legacy_file_name`], then a
/// reserved name gets a leading `_` and a trailing dot becomes `_` (Windows drops it).
fn file_name(name: &str) -> String {
    let mut out = legacy_file_name(name);
    if reserved_on_windows(&out) {
        out.insert(0, '_');
    }
    if out.ends_with('.') {
        out.pop();
        out.push('_');
    }
    out
}

/// A display name made safe as one path segment: no separators, control characters or
/// leading dot, at most [`MAX_NAME`] bytes (the rule of earlier versions, whose directories
/// keep their names).
fn legacy_file_name(name: &str) -> String {
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

    /// A user's folder in a fresh local destination (kept while the directory lives).
    fn mailbox() -> (tempfile::TempDir, Mailbox) {
        let dir = tempfile::tempdir().unwrap();
        let mailbox = FolderStore::open(dir.path())
            .unwrap()
            .mailbox("ann@contoso.com")
            .unwrap();
        (dir, mailbox)
    }

    #[test]
    fn items_are_replaced_in_place_and_collections_with_one_name_stay_apart() {
        let (_dir, mailbox) = mailbox();
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

    /// Regression (issue 19.4): item files were named after plain UIDs as they were, so a UID
    /// `CON` or `nul.txt` made a file Windows cannot open, and UIDs differing only by case
    /// (`abc`, `ABC`) overwrote each other on a case-insensitive file system (NTFS, APFS).
    #[test]
    fn item_file_names_avoid_reserved_names_and_differ_ignoring_case() {
        let (_dir, mailbox) = mailbox();
        let book = mailbox
            .collection(CollectionKind::Contacts, &[], "book")
            .unwrap();
        let uids = [
            "CON", "nul.txt", "Com1", "lpt9.x", "aux", "abc", "ABC", "AbC",
        ];
        let mut names = HashSet::new();
        for uid in uids {
            let DestRef(name) = book.put(uid, uid.as_bytes()).unwrap();
            assert!(!reserved_on_windows(&name), "{uid}: {name}");
            assert!(
                names.insert(name.to_lowercase()),
                "{uid}: {name} equals another ignoring case"
            );
            assert_eq!(
                std::fs::read(book.path().join(&name)).unwrap(),
                uid.as_bytes()
            );
        }
        assert_eq!(std::fs::read_dir(book.path()).unwrap().count(), uids.len());
    }

    /// A file an earlier version wrote under the UID itself is still the item's file: a rerun
    /// replaces it instead of writing a second copy.
    #[test]
    fn an_item_file_written_under_its_old_name_is_replaced_in_place() {
        let (_dir, mailbox) = mailbox();
        let cal = mailbox
            .collection(CollectionKind::Events, &["Work".into()], "cal")
            .unwrap();
        let uid = "040000008200E00074C5B7101A82E008";
        std::fs::write(cal.path().join(format!("{uid}.ics")), b"v1").unwrap();
        let cal = mailbox
            .collection(CollectionKind::Events, &["Work".into()], "cal")
            .unwrap();
        assert_eq!(cal.put(uid, b"v2").unwrap(), DestRef(format!("{uid}.ics")));
        assert_eq!(std::fs::read_dir(cal.path()).unwrap().count(), 1);
    }

    /// Regression (issue 19.4): a nested contact folder's parent named `CON` or ending in a
    /// dot made a directory Windows cannot open or silently renames.
    #[test]
    fn collection_directories_avoid_reserved_names_and_trailing_dots() {
        let (_dir, mailbox) = mailbox();
        let book = mailbox
            .collection(
                CollectionKind::Contacts,
                &["CON".into(), "Friends.".into(), "x".into()],
                "book",
            )
            .unwrap();
        let inside = book.path().strip_prefix(mailbox.path()).unwrap();
        for part in inside.iter() {
            let part = part.to_string_lossy();
            assert!(!reserved_on_windows(&part), "{inside:?}");
            assert!(!part.ends_with(['.', ' ']), "{inside:?}");
        }
    }

    #[test]
    fn regression_an_item_synced_on_the_runtime_thread_that_writes_it() {
        // Issue 17: each calendar, contact and task file was synced (twice) on the runtime
        // worker writing it, which stalled every mailbox queued on that worker meanwhile.
        let (_dir, mailbox) = mailbox();
        let cal = mailbox
            .collection(CollectionKind::Events, &["Calendar".into()], "cal")
            .unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let written = runtime
            .block_on(cal.put_async("uid-1@contoso.com", b"BEGIN:VCALENDAR\r\n".to_vec()))
            .unwrap();
        assert_eq!(
            std::fs::read(cal.path().join(&written.0)).unwrap(),
            b"BEGIN:VCALENDAR\r\n"
        );
        let threads = crate::private_files::synced::threads(cal.path());
        assert_eq!(
            threads.len(),
            1,
            "the directory is synced before the call returns"
        );
        assert_ne!(threads[0], std::thread::current().id());
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
            item_name("040000008200e00074c5b7101a82e008"),
            "040000008200e00074c5b7101a82e008"
        );
        assert_eq!(file_name("../x"), "_.._x");
        assert_eq!(file_name("a\u{0}b"), "a_b");
        assert!(file_name(&"é".repeat(200)).len() <= MAX_NAME);
    }
}
