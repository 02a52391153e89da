//! The journal: an SQLite database in the state folder that remembers what every run did.
//!
//! Tables: `runs`; `users`; `folders` (with delta links for incremental passes); `items`
//! (source id -> destination reference, size, content hash, state).
//!
//! **Exactly once.** Before writing an item the engine records its *intent*
//! ([`Journal::record_intent`]); after the destination confirmed the write it records the
//! destination reference ([`Journal::record_done`]). An item left `pending` by a crash is
//! reconciled on the next run by asking the destination whether it arrived, before anything is
//! written again. Each call is its own transaction; SQLite's WAL journal makes it crash-safe.
//!
//! The journal never holds secrets: ids, names, sizes, hashes and reasons only.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};

mod report;
pub use report::{FailedItem, ItemGroup, RunRecord, UserRecord};

/// Schema version stored in `PRAGMA user_version`.
const SCHEMA_VERSION: i32 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    id          INTEGER PRIMARY KEY,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    status      TEXT NOT NULL,
    summary     TEXT
);
CREATE TABLE IF NOT EXISTS users (
    user_id    TEXT PRIMARY KEY,
    address    TEXT NOT NULL,
    state      TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS folders (
    user_id    TEXT NOT NULL,
    folder_id  TEXT NOT NULL,
    dest_name  TEXT NOT NULL,
    delta_link TEXT,
    PRIMARY KEY (user_id, folder_id)
);
CREATE TABLE IF NOT EXISTS items (
    user_id     TEXT NOT NULL,
    source_id   TEXT NOT NULL,
    folder_id   TEXT NOT NULL,
    dest_folder TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('pending', 'done', 'failed')),
    dest_ref    TEXT,
    size        INTEGER,
    hash        TEXT,
    reason      TEXT,
    run_id      INTEGER,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (user_id, source_id)
);
CREATE INDEX IF NOT EXISTS items_by_state ON items (user_id, state);
";

/// Why the journal cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot create the state folder {path}")]
    StateFolder {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the journal {path} cannot be opened or written (is the disk full or read-only?)")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("the journal {path} is damaged ({detail}); move it aside and run again: the destination is checked before every write, so nothing is duplicated")]
    Corrupt { path: PathBuf, detail: String },
    #[error("the journal {path} was written by a newer version (schema {found}, this version knows {SCHEMA_VERSION})")]
    NewerSchema { path: PathBuf, found: i32 },
    #[error("journal write failed")]
    Write(#[from] rusqlite::Error),
}

/// The state of one item as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemState {
    /// A write was started and not confirmed: ask the destination before writing again.
    Pending,
    Done,
    Failed,
}

/// One recorded item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemRecord {
    pub source_id: String,
    pub folder_id: String,
    pub dest_folder: String,
    pub state: ItemState,
    pub dest_ref: Option<String>,
    pub size: Option<u64>,
    pub hash: Option<String>,
    pub reason: Option<String>,
}

/// Where an item is being written.
#[derive(Debug, Clone, Copy)]
pub struct ItemTarget<'a> {
    pub user_id: &'a str,
    pub source_id: &'a str,
    pub folder_id: &'a str,
    pub dest_folder: &'a str,
}

/// The journal of one state folder. Share it behind an `Arc`.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    conn: Mutex<Connection>,
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl Journal {
    /// The journal's file name inside the state folder.
    pub const FILE_NAME: &'static str = "journal.sqlite";

    /// Opens (or creates) the journal in `state_dir`, creating the folder with mode 0700.
    /// Checks integrity and that it can write, so a full or read-only disk is reported
    /// before anything is written to the destination.
    pub fn open(state_dir: &Path) -> Result<Self, JournalError> {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder
            .create(state_dir)
            .map_err(|source| JournalError::StateFolder {
                path: state_dir.to_path_buf(),
                source,
            })?;
        let path = state_dir.join(Self::FILE_NAME);
        let open_err = |source| JournalError::Open {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(open_err)?;
        let check: Result<String, rusqlite::Error> =
            conn.query_row("PRAGMA quick_check", [], |r| r.get(0));
        match check {
            Ok(ok) if ok == "ok" => {}
            Ok(detail) => return Err(JournalError::Corrupt { path, detail }),
            Err(e) => {
                return Err(JournalError::Corrupt {
                    path,
                    detail: e.to_string(),
                })
            }
        }
        let version: i32 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(open_err)?;
        if version > SCHEMA_VERSION {
            return Err(JournalError::NewerSchema {
                path,
                found: version,
            });
        }
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;
             BEGIN; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
        ))
        .map_err(open_err)?;
        Ok(Journal {
            path,
            conn: Mutex::new(conn),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A poisoned lock means a panic mid-call; SQLite rolled the statement back.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a run and returns its id.
    pub fn begin_run(&self) -> Result<i64, JournalError> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO runs (started_at, status) VALUES (?1, 'running')",
            params![now()],
        )?;
        Ok(conn.last_insert_rowid())
    }

    /// Closes a run with its status (`finished`, `stopped`, `failed`) and summary JSON.
    pub fn finish_run(&self, run: i64, status: &str, summary: &str) -> Result<(), JournalError> {
        self.conn().execute(
            "UPDATE runs SET finished_at = ?2, status = ?3, summary = ?4 WHERE id = ?1",
            params![run, now(), status, summary],
        )?;
        Ok(())
    }

    /// Records a user's state (`started`, `finished`, `failed`).
    pub fn set_user_state(
        &self,
        user_id: &str,
        address: &str,
        state: &str,
    ) -> Result<(), JournalError> {
        self.conn().execute(
            "INSERT INTO users (user_id, address, state, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (user_id) DO UPDATE SET address = ?2, state = ?3, updated_at = ?4",
            params![user_id, address, state, now()],
        )?;
        Ok(())
    }

    /// The recorded state of one item, if any.
    pub fn item(&self, user_id: &str, source_id: &str) -> Result<Option<ItemRecord>, JournalError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT source_id, folder_id, dest_folder, state, dest_ref, size, hash, reason
                 FROM items WHERE user_id = ?1 AND source_id = ?2",
                params![user_id, source_id],
                row_to_item,
            )
            .optional()?)
    }

    /// Records that `target` is about to be written. A `done` record is kept as it is unless the
    /// item now goes to another destination folder (it was moved at the source).
    pub fn record_intent(&self, target: ItemTarget<'_>, run: i64) -> Result<(), JournalError> {
        self.conn().execute(
            "INSERT INTO items (user_id, source_id, folder_id, dest_folder, state, run_id, updated_at)
             VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?6)
             ON CONFLICT (user_id, source_id) DO UPDATE
               SET folder_id = ?3, dest_folder = ?4, state = 'pending', reason = NULL,
                   run_id = ?5, updated_at = ?6
               WHERE items.state != 'done' OR items.dest_folder != ?4",
            params![
                target.user_id,
                target.source_id,
                target.folder_id,
                target.dest_folder,
                run,
                now()
            ],
        )?;
        Ok(())
    }

    /// Records that the destination confirmed the write.
    pub fn record_done(
        &self,
        user_id: &str,
        source_id: &str,
        dest_ref: &str,
        size: u64,
        hash: Option<&str>,
    ) -> Result<(), JournalError> {
        self.conn().execute(
            "UPDATE items SET state = 'done', dest_ref = ?3, size = ?4, hash = ?5, reason = NULL,
                              updated_at = ?6
             WHERE user_id = ?1 AND source_id = ?2",
            params![user_id, source_id, dest_ref, size as i64, hash, now()],
        )?;
        Ok(())
    }

    /// Records that the item could not be migrated, with the reason (retried on the next run).
    pub fn record_failed(
        &self,
        user_id: &str,
        source_id: &str,
        reason: &str,
    ) -> Result<(), JournalError> {
        self.conn().execute(
            "UPDATE items SET state = 'failed', reason = ?3, updated_at = ?4
             WHERE user_id = ?1 AND source_id = ?2",
            params![user_id, source_id, reason, now()],
        )?;
        Ok(())
    }

    /// Items of a user in a given state.
    pub fn items_in_state(
        &self,
        user_id: &str,
        state: ItemState,
    ) -> Result<Vec<ItemRecord>, JournalError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT source_id, folder_id, dest_folder, state, dest_ref, size, hash, reason
             FROM items WHERE user_id = ?1 AND state = ?2 ORDER BY source_id",
        )?;
        let rows = stmt.query_map(params![user_id, state_name(&state)], row_to_item)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Remembers a folder's destination name and delta link.
    pub fn set_folder(
        &self,
        user_id: &str,
        folder_id: &str,
        dest_name: &str,
        delta_link: Option<&str>,
    ) -> Result<(), JournalError> {
        self.conn().execute(
            "INSERT INTO folders (user_id, folder_id, dest_name, delta_link) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (user_id, folder_id) DO UPDATE
               SET dest_name = ?3, delta_link = COALESCE(?4, folders.delta_link)",
            params![user_id, folder_id, dest_name, delta_link],
        )?;
        Ok(())
    }

    /// A folder's stored delta link, for the next incremental pass.
    pub fn delta_link(
        &self,
        user_id: &str,
        folder_id: &str,
    ) -> Result<Option<String>, JournalError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT delta_link FROM folders WHERE user_id = ?1 AND folder_id = ?2",
                params![user_id, folder_id],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()?
            .flatten())
    }
}

fn state_name(state: &ItemState) -> &'static str {
    match state {
        ItemState::Pending => "pending",
        ItemState::Done => "done",
        ItemState::Failed => "failed",
    }
}

fn row_to_item(row: &rusqlite::Row<'_>) -> rusqlite::Result<ItemRecord> {
    let state: String = row.get(3)?;
    Ok(ItemRecord {
        source_id: row.get(0)?,
        folder_id: row.get(1)?,
        dest_folder: row.get(2)?,
        state: match state.as_str() {
            "done" => ItemState::Done,
            "failed" => ItemState::Failed,
            _ => ItemState::Pending,
        },
        dest_ref: row.get(4)?,
        size: row.get::<_, Option<i64>>(5)?.map(|s| s.max(0) as u64),
        hash: row.get(6)?,
        reason: row.get(7)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target<'a>(id: &'a str) -> ItemTarget<'a> {
        ItemTarget {
            user_id: "u1",
            source_id: id,
            folder_id: "f1",
            dest_folder: ".Projects",
        }
    }

    #[test]
    fn intent_then_done_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        {
            let j = Journal::open(&state).unwrap();
            let run = j.begin_run().unwrap();
            j.record_intent(target("m1"), run).unwrap();
            j.record_intent(target("m2"), run).unwrap();
            j.record_done("u1", "m1", "1700.Mab.m365:2,S", 42, Some("abc"))
                .unwrap();
            // A crash here leaves m2 pending.
        }
        let j = Journal::open(&state).unwrap();
        let m1 = j.item("u1", "m1").unwrap().unwrap();
        assert_eq!(m1.state, ItemState::Done);
        assert_eq!(m1.size, Some(42));
        assert_eq!(m1.dest_ref.as_deref(), Some("1700.Mab.m365:2,S"));
        let pending = j.items_in_state("u1", ItemState::Pending).unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].source_id, "m2");

        // A new intent never downgrades a done item.
        let run = j.begin_run().unwrap();
        j.record_intent(target("m1"), run).unwrap();
        assert_eq!(j.item("u1", "m1").unwrap().unwrap().state, ItemState::Done);

        j.record_failed("u1", "m2", "server said NO").unwrap();
        let m2 = j.item("u1", "m2").unwrap().unwrap();
        assert_eq!(
            (m2.state, m2.reason.as_deref()),
            (ItemState::Failed, Some("server said NO"))
        );
        assert_eq!(j.item("u1", "nope").unwrap(), None);
    }

    #[test]
    fn delta_links_are_kept_per_folder() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        j.set_folder("u1", "f1", ".A", Some("https://graph/delta?token=1"))
            .unwrap();
        j.set_folder("u1", "f1", ".A", None).unwrap();
        assert_eq!(
            j.delta_link("u1", "f1").unwrap().as_deref(),
            Some("https://graph/delta?token=1")
        );
        assert_eq!(j.delta_link("u1", "f2").unwrap(), None);
    }

    #[test]
    fn a_damaged_journal_is_reported_with_the_recovery() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(Journal::FILE_NAME), vec![0x42u8; 8192]).unwrap();
        let err = Journal::open(dir.path()).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(
                err,
                JournalError::Corrupt { .. } | JournalError::Open { .. }
            ),
            "{err:?}"
        );
        assert!(text.contains("journal"), "{text}");
    }

    #[cfg(unix)]
    #[test]
    fn the_state_folder_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        Journal::open(&state).unwrap();
        let mode = std::fs::metadata(&state).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }
}
