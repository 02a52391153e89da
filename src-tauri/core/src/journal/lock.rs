//! One run per state folder: an exclusive OS advisory lock on `run.lock` in the state folder.
//!
//! Two runs writing the same mailboxes at once could both find a message "not there yet" and
//! both append it, and would interleave their journal records. [`StateLock::acquire`] takes the
//! lock before the run reads or writes anything and keeps it until the [`StateLock`] is dropped.
//! The lock belongs to the open file (`flock(2)` on Unix, `LockFileEx` on Windows, through
//! `std::fs::File::try_lock`), so the OS releases it when the process ends in any way,
//! `kill -9` included: a stale lock file never blocks a later run. The file records who holds
//! it (process id, host, start time; nothing secret) so a second run can name the holder.
//!
//! Readers (`plan`, `verify`, `report`, the app's start screen) do not take it: SQLite's WAL
//! mode lets them read the journal while a run writes.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use super::JournalError;

/// Why the state folder could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another run, in this process or another, holds the state folder.
    #[error("another run is using the state folder {}{}; wait for it to finish or stop it, then run again", state_dir.display(), describe(holder.as_ref()))]
    Busy {
        state_dir: PathBuf,
        /// `None` when the holder had not yet recorded itself.
        holder: Option<LockHolder>,
    },
    #[error(transparent)]
    StateFolder(#[from] JournalError),
    /// The lock file cannot be created or locked (a file system without locks, permissions).
    #[error("cannot lock {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn describe(holder: Option<&LockHolder>) -> String {
    holder.map(|h| format!(" ({h})")).unwrap_or_default()
}

/// Who holds a state folder's lock, as its lock file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockHolder {
    pub pid: u32,
    pub host: String,
    /// Unix seconds.
    pub started_at: i64,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let started = time::OffsetDateTime::from_unix_timestamp(self.started_at)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_else(|| self.started_at.to_string());
        write!(
            f,
            "process {} on {}, started {started}",
            self.pid, self.host
        )
    }
}

impl LockHolder {
    fn this_process() -> Self {
        LockHolder {
            pid: std::process::id(),
            host: host_name(),
            started_at: super::now(),
        }
    }

    fn encode(&self) -> String {
        format!(
            "pid={}\nhost={}\nstarted={}\n",
            self.pid, self.host, self.started_at
        )
    }

    /// `None` for an empty or partly written file.
    fn decode(text: &str) -> Option<Self> {
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
        };
        Some(LockHolder {
            pid: field("pid")?.parse().ok()?,
            host: field("host")?.to_string(),
            started_at: field("started")?.parse().ok()?,
        })
    }
}

/// The machine's name, for telling which computer holds a state folder on a shared disk.
pub(crate) fn host_name() -> String {
    ["HOSTNAME", "COMPUTERNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty() && !h.contains('\n'))
        .unwrap_or_else(|| "an unknown host".to_string())
}

/// The exclusive right to run on one state folder; released when dropped or when the process
/// ends.
#[derive(Debug)]
pub struct StateLock {
    // Held for its OS lock, released when the file is closed.
    _file: File,
    path: PathBuf,
}

impl StateLock {
    /// The lock file's name inside the state folder.
    pub const FILE_NAME: &'static str = "run.lock";

    /// Locks `state_dir` (creating it with mode 0700) without waiting: fails at once with
    /// [`LockError::Busy`] naming the holder when another run has it.
    pub fn acquire(state_dir: &Path) -> Result<StateLock, LockError> {
        super::create_state_folder(state_dir)?;
        let path = state_dir.join(Self::FILE_NAME);
        // A read-only or full state folder is named as such (the journal's wording).
        let io = |source| LockError::StateFolder(super::unwritable(state_dir, source));
        // Not truncated on open: the holder's record must survive a failed attempt.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(LockError::Busy {
                    state_dir: state_dir.to_path_buf(),
                    holder: read_holder(&mut file),
                })
            }
            Err(TryLockError::Error(source)) => {
                return Err(LockError::Io {
                    path: path.clone(),
                    source,
                })
            }
        }
        file.set_len(0).map_err(io)?;
        file.write_all(LockHolder::this_process().encode().as_bytes())
            .map_err(io)?;
        Ok(StateLock { _file: file, path })
    }

    /// Fails with [`LockError::Busy`] when a run holds `state_dir` now. Never creates anything.
    /// Probes with a shared lock held for an instant, so readers do not block each other; a
    /// run starting in that very instant is refused as busy.
    pub fn check_free(state_dir: &Path) -> Result<(), LockError> {
        let path = state_dir.join(Self::FILE_NAME);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io(e)),
        };
        match file.try_lock_shared() {
            // Dropping `file` releases the probe.
            Ok(()) => Ok(()),
            Err(TryLockError::WouldBlock) => Err(LockError::Busy {
                state_dir: state_dir.to_path_buf(),
                holder: read_holder(&mut file),
            }),
            Err(TryLockError::Error(e)) => Err(io(e)),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn read_holder(file: &mut File) -> Option<LockHolder> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    LockHolder::decode(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_folder_is_refused_naming_the_holder_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        assert!(StateLock::check_free(&state).is_ok(), "nothing yet");

        let first = StateLock::acquire(&state).unwrap();
        match StateLock::acquire(&state) {
            Err(LockError::Busy { state_dir, holder }) => {
                assert_eq!(state_dir, state);
                let holder = holder.expect("the holder recorded itself");
                assert_eq!(holder.pid, std::process::id());
                let message = LockError::Busy {
                    state_dir: state.clone(),
                    holder: Some(holder),
                }
                .to_string();
                assert!(
                    message.contains(&format!("process {}", std::process::id()))
                        && message.contains(&state.display().to_string()),
                    "{message}"
                );
            }
            other => panic!("expected busy, got {other:?}"),
        }
        match StateLock::check_free(&state) {
            Err(LockError::Busy { holder, .. }) => {
                assert_eq!(holder.map(|h| h.pid), Some(std::process::id()))
            }
            other => panic!("expected busy, got {other:?}"),
        }

        drop(first);
        assert!(StateLock::check_free(&state).is_ok(), "released on drop");
        let again = StateLock::acquire(&state).unwrap();
        assert_eq!(again.path(), state.join(StateLock::FILE_NAME));
    }

    #[test]
    fn a_partly_written_record_reads_as_an_unknown_holder() {
        assert_eq!(LockHolder::decode(""), None);
        assert_eq!(LockHolder::decode("pid=12\nhost=a"), None);
        let h = LockHolder {
            pid: 7,
            host: "box".into(),
            started_at: 0,
        };
        assert_eq!(LockHolder::decode(&h.encode()), Some(h.clone()));
        assert_eq!(
            h.to_string(),
            "process 7 on box, started 1970-01-01T00:00:00Z"
        );
    }
}
