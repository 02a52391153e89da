//! Files and folders that hold passwords or mail: never reached through a symbolic link,
//! owned by the running user, readable by no one else, and (for renames) synced so a crash
//! cannot undo what the journal then records as done.
//!
//! A shared or world-writable directory is the threat: another local user can put a symbolic
//! link where the migrator will write (`/tmp/new-accounts.csv -> ~victim/.bashrc`), or make a
//! directory of their own where a user's mail is about to go.

use std::fs::File;
use std::io;
use std::path::Path;

/// Opens `path` for appending, creating it (mode 0600) if missing, as a file only the running
/// user can read. Refused (`PermissionDenied`) when the path is a symbolic link (it is not
/// followed: `O_NOFOLLOW`), not a regular file (a FIFO or device is refused without blocking:
/// `O_NONBLOCK`), or owned by another user. An existing file's mode is narrowed to 0600. On
/// Windows the link is not followed either (`FILE_FLAG_OPEN_REPARSE_POINT`) and the file's
/// access list is reduced to its owner.
pub fn open_private_append(path: &Path) -> io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
        options
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
        let file = options.open(path).map_err(|e| {
            // open(2): ELOOP is what O_NOFOLLOW answers for a symbolic link.
            if e.raw_os_error() == Some(libc::ELOOP) {
                refused(path, "is a symbolic link")
            } else {
                e
            }
        })?;
        let meta = file.metadata()?;
        if !meta.file_type().is_file() {
            return Err(refused(path, "is not a regular file"));
        }
        if meta.uid() != running_uid() {
            return Err(refused(path, "belongs to another user"));
        }
        if meta.mode() & 0o777 != 0o600 {
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        Ok(file)
    }
    #[cfg(windows)]
    {
        use std::os::windows::fs::OpenOptionsExt;
        // FILE_FLAG_OPEN_REPARSE_POINT: opens a symbolic link itself, not its target
        // (https://learn.microsoft.com/windows/win32/api/fileapi/nf-fileapi-createfilew).
        options.custom_flags(0x0020_0000);
        let file = options.open(path)?;
        let kind = file.metadata()?.file_type();
        if kind.is_symlink() || !kind.is_file() {
            return Err(refused(path, "is a link or not a regular file"));
        }
        restrict_to_owner(path)?;
        Ok(file)
    }
    #[cfg(not(any(unix, windows)))]
    {
        options.open(path)
    }
}

/// Creates `path` (mode 0700 on Unix, parents too) if missing, or accepts the existing one only
/// when it is a directory itself (not a symbolic link to one) owned by the running user; its
/// mode is narrowed to 0700 so no one else can put links into it.
pub fn create_owned_dir(path: &Path) -> io::Result<()> {
    create_private_dir(path)?;
    let meta = std::fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        return Err(refused(path, "is a symbolic link"));
    }
    if !meta.is_dir() {
        return Err(refused(path, "is not a directory"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        if meta.uid() != running_uid() {
            return Err(refused(path, "belongs to another user"));
        }
        if meta.mode() & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    Ok(())
}

/// Creates `path` and its missing parents, new ones with mode 0700 on Unix.
pub fn create_private_dir(path: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path)
}

/// Makes the entries of directory `dir` durable: after `rename(2)` the new name is only on disk
/// once the directory itself is synced (fsync(2): "Calling fsync() does not necessarily ensure
/// that the entry in the directory containing the file has also reached disk. For that an
/// explicit fsync() on a file descriptor for the directory is also needed."). Windows has no
/// directory handle to sync; NTFS journals the rename itself.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(test)]
    synced::record(dir);
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

fn refused(path: &Path, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("{} {why}: refused", path.display()),
    )
}

#[cfg(unix)]
fn running_uid() -> u32 {
    // SAFETY: geteuid(2) takes no arguments, touches no memory and "is always successful".
    unsafe { libc::geteuid() }
}

/// Reduces the access list of `path` to its owner: inherited entries are dropped and OWNER
/// RIGHTS (`S-1-3-4`, https://learn.microsoft.com/windows/win32/secauthz/well-known-sids) gets
/// full control, through `icacls` (https://learn.microsoft.com/windows-server/administration/windows-commands/icacls).
/// Untested here: it is compiled and run on Windows only.
#[cfg(windows)]
fn restrict_to_owner(path: &Path) -> io::Result<()> {
    let system = std::env::var_os("SystemRoot").unwrap_or_else(|| "C:\\Windows".into());
    let icacls = Path::new(&system).join("System32").join("icacls.exe");
    let status = std::process::Command::new(icacls)
        .arg(path)
        .args(["/inheritance:r", "/grant:r", "*S-1-3-4:F"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(refused(
            path,
            "could not be restricted to its owner (icacls failed)",
        ))
    }
}

/// The directories [`sync_dir`] synced, so tests can check that a rename was made durable
/// before it was reported done.
#[cfg(test)]
pub(crate) mod synced {
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    use std::thread::ThreadId;

    static SYNCED: Mutex<Vec<(PathBuf, ThreadId)>> = Mutex::new(Vec::new());

    pub(super) fn record(dir: &Path) {
        SYNCED
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((dir.to_path_buf(), std::thread::current().id()));
    }

    /// How often `dir` was synced so far.
    pub(crate) fn count(dir: &Path) -> usize {
        threads(dir).len()
    }

    /// The thread of each sync of `dir` so far.
    pub(crate) fn threads(dir: &Path) -> Vec<ThreadId> {
        SYNCED
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(d, _)| d.as_path() == dir)
            .map(|(_, thread)| *thread)
            .collect()
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_symlinked_private_file_is_refused_and_its_target_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("victim");
        std::fs::write(&target, "keep").unwrap();
        let link = dir.path().join("new.csv");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = open_private_append(&link).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}");
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("new.csv");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo (coreutils) runs");
        assert!(made.success());
        // O_NONBLOCK: with no reader, open(2) fails (ENXIO) instead of waiting forever.
        assert!(open_private_append(&fifo).is_err());
    }

    #[test]
    fn a_private_file_is_created_0600_and_a_wider_one_narrowed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.csv");
        open_private_append(&path)
            .unwrap()
            .write_all(b"a\n")
            .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        open_private_append(&path)
            .unwrap()
            .write_all(b"b\n")
            .unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a\nb\n");
    }

    /// A path owned by another user: as root, a fresh one given to `nobody`; otherwise `/`.
    fn of_another_user(dir: &Path, name: &str, make: impl Fn(&Path)) -> std::path::PathBuf {
        if running_uid() != 0 {
            return "/".into();
        }
        let path = dir.join(name);
        make(&path);
        std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
        path
    }

    #[test]
    fn an_existing_dir_or_file_of_another_user_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let theirs = of_another_user(dir.path(), "ann", |p| std::fs::create_dir(p).unwrap());
        let e = create_owned_dir(&theirs).unwrap_err();
        assert!(e.to_string().contains("belongs to another user"), "{e}");
        if running_uid() == 0 {
            let file = of_another_user(dir.path(), "new.csv", |p| std::fs::write(p, "").unwrap());
            let e = open_private_append(&file).unwrap_err();
            assert!(e.to_string().contains("belongs to another user"), "{e}");
        }
    }

    #[test]
    fn an_owned_dir_is_not_a_symlink_and_is_narrowed() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        let link = dir.path().join("ann");
        std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
        let e = create_owned_dir(&link).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}");

        let wide = dir.path().join("bob");
        std::fs::create_dir(&wide).unwrap();
        std::fs::set_permissions(&wide, std::fs::Permissions::from_mode(0o777)).unwrap();
        create_owned_dir(&wide).unwrap();
        let mode = std::fs::metadata(&wide).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }
}
