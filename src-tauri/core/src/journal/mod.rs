//! The journal: an SQLite database in the state folder that remembers what every run did.
//!
//! Tables: `runs`; `users`; `folders` (mail folders and groupware collections, by `kind`,
//! with delta links for incremental passes); `items` (source id -> destination reference,
//! size, content hash, source version, state); `user_limits` (the date limits each user's
//! delta links were taken under).
//!
//! **Exactly once.** Before writing an item the engine records its *intent*
//! ([`Journal::record_intent`]); after the destination confirmed the write it records the
//! destination reference ([`Journal::record_done`]). An item left `pending` by a crash is
//! reconciled on the next run by asking the destination whether it arrived, before anything is
//! written again. Each call is its own transaction; SQLite's WAL journal makes it crash-safe.
//! The records that say an item is done at the destination commit with `synchronous = FULL`,
//! so they are on disk (power cuts too) before the call returns; each also syncs every record
//! committed before it.
//!
//! The journal never holds secrets: ids, names, sizes, hashes and reasons only.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};

mod lock;
mod report;
pub use lock::{LockError, LockHolder, StateLock};
pub use report::{FailedItem, ItemGroup, MinuteCount, RunRecord, UserRecord, UserSpan};

/// Schema version stored in `PRAGMA user_version`. Version 1 had no mail details in `items`
/// and no `removed` state; [`Journal::open`] upgrades it in place. Columns added since
/// version 2 ([`ADDED_COLUMNS`]) are added when missing, without a new version: older
/// versions of the migrator ignore them.
const SCHEMA_VERSION: i32 = 2;

/// Columns added to version 2, as (table, column, definition).
const ADDED_COLUMNS: [(&str, &str, &str); 9] = [
    // What a folder row is: `mail`, or a groupware collection's item kind (`event`,
    // `contact`, `task`) with that collection's delta link. The mail pass only sees `mail`.
    ("folders", "kind", "TEXT NOT NULL DEFAULT 'mail'"),
    // The source's version of a groupware item (changeKey or lastModifiedDateTime) when it
    // was last written: an item listed again at that version is not fetched or written again.
    ("items", "source_version", "TEXT"),
    // A groupware item moved at the source, being written in its new collection: where the
    // migrator's copy in the old collection is ([`MovedFrom`], JSON), until it is deleted.
    ("items", "moved_from", "TEXT"),
    // A DAV resource's ETag right after the migrator wrote it: later updates and deletions
    // send it as `If-Match`, so a change made at the destination is never overwritten.
    ("items", "etag", "TEXT"),
    // What the run left out of a migrated user by design (an online archive), for the report.
    ("users", "note", "TEXT"),
    // A failed item's subject (or an event's, a contact's name), for the report: recorded
    // with [`Journal::record_failure_details`] only when the item fails.
    ("items", "subject", "TEXT"),
    // A contact's source version at which Graph answered that it has no photo (404): while
    // the contact is at that version its photo is not asked for again.
    ("items", "no_photo_at", "TEXT"),
    // What a user's mailbox is (`user`, `shared`, `room`, `equipment`) and what the migration
    // made of it at the destination ([`Journal::set_user_destination`]), for the report.
    ("users", "kind", "TEXT"),
    ("users", "destination", "TEXT"),
];

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
CREATE TABLE IF NOT EXISTS user_limits (
    user_id    TEXT PRIMARY KEY,
    limits     TEXT NOT NULL
);
";

/// The `items` table of version 2: any workload's item (mail, event, contact, task) keyed by
/// user and source id, in a source folder or collection, with its destination reference.
/// The mail columns (`message_id` .. `seen_run`) stay NULL for other kinds.
const ITEMS_V2: &str = "
CREATE TABLE IF NOT EXISTS items (
    user_id     TEXT NOT NULL,
    source_id   TEXT NOT NULL,
    kind        TEXT NOT NULL DEFAULT 'mail',
    folder_id   TEXT NOT NULL,
    dest_folder TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('pending', 'done', 'failed', 'removed')),
    dest_ref    TEXT,
    size        INTEGER,
    hash        TEXT,
    reason      TEXT,
    run_id      INTEGER,
    updated_at  INTEGER NOT NULL,
    message_id  TEXT,
    header_hash TEXT,
    received    INTEGER,
    flags       TEXT,
    created     INTEGER NOT NULL DEFAULT 1,
    gone_from   TEXT,
    seen_run    INTEGER,
    PRIMARY KEY (user_id, source_id)
);
CREATE INDEX IF NOT EXISTS items_by_state ON items (user_id, state);
CREATE INDEX IF NOT EXISTS items_by_folder ON items (user_id, folder_id);
";

/// Version 1 -> 2: the items table is rebuilt (SQLite cannot change a CHECK constraint).
/// Version-1 rows are marked `created = 0`: version 1 did not record whether the migrator
/// appended a message or found it already there, so incremental passes leave those copies
/// alone rather than risk touching mail that predates the migration.
const MIGRATE_V1: &str = "
ALTER TABLE items RENAME TO items_v1;
DROP INDEX IF EXISTS items_by_state;
";
const MIGRATE_V1_COPY: &str = "
INSERT INTO items (user_id, source_id, folder_id, dest_folder, state, dest_ref, size, hash,
                   reason, run_id, updated_at, created)
    SELECT user_id, source_id, folder_id, dest_folder, state, dest_ref, size, hash, reason,
           run_id, updated_at, 0 FROM items_v1;
DROP TABLE items_v1;
";

/// A user's destination ([`Journal::set_user_destination`]) when the migration created its
/// account.
pub const ACCOUNT_CREATED: &str = "account created";

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
    #[error("cannot write in the state folder {path}: {reason}")]
    Unwritable {
        path: PathBuf,
        /// In plain words: the file system is read-only, the disk is full, ...
        reason: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the journal {path} is damaged ({detail}); move it (and its -wal and -shm files) aside and run again: the destination is checked before every write, so nothing is duplicated")]
    Corrupt { path: PathBuf, detail: String },
    #[error("the journal {path} was written by a newer version (schema {found}, this version knows {SCHEMA_VERSION})")]
    NewerSchema { path: PathBuf, found: i32 },
    #[error("journal write failed")]
    Write(#[from] rusqlite::Error),
    /// A write failed during a run ([`JournalError::in_state_folder`] of a `Write`).
    #[error("cannot write the journal in the state folder {path}: {reason}; make room (or make it writable) and run again: what was written meanwhile is found at the destination, not written twice")]
    WriteFailed {
        path: PathBuf,
        /// In plain words: the disk is full, the file system is read-only, ...
        reason: String,
        #[source]
        source: rusqlite::Error,
    },
}

impl JournalError {
    /// This error with the state folder `dir` named and SQLite's reason in plain words, for
    /// the person who has to fix it (a bare `Write` names neither).
    pub fn in_state_folder(self, dir: &Path) -> Self {
        let JournalError::Write(source) = self else {
            return self;
        };
        let reason = match source.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DiskFull) => "the disk is full".to_string(),
            Some(rusqlite::ErrorCode::ReadOnly) => "the file system is read-only".to_string(),
            Some(rusqlite::ErrorCode::PermissionDenied) => "permission denied".to_string(),
            Some(rusqlite::ErrorCode::SystemIoFailure) => {
                "an I/O error (is the disk full or failing?)".to_string()
            }
            _ => source.to_string(),
        };
        JournalError::WriteFailed {
            path: dir.to_path_buf(),
            reason,
            source,
        }
    }
}

/// The state of one item as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemState {
    /// A write was started and not confirmed: ask the destination before writing again.
    Pending,
    Done,
    Failed,
    /// Deleted at the source; the destination copy (`dest_ref`) was kept.
    Removed,
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
    /// `mail`, or another workload's kind (`event`, `contact`, `task`).
    pub kind: String,
    /// The mail details of a migrated message (all `None` for other kinds).
    pub mail: MailDetails,
    /// False when the destination already held the message and the migrator only found it:
    /// incremental passes never change, move or delete such a copy.
    pub created: bool,
    /// Set when the source folder reported the item gone (`@removed`, or missing from a full
    /// round); cleared when another folder reports it (it was moved).
    pub gone_from: Option<String>,
    /// A groupware item's version at the source when it was last written or found unchanged
    /// (its changeKey or lastModifiedDateTime); `None` for mail.
    pub source_version: Option<String>,
    /// Set while a groupware item that moved at the source is rewritten in its new
    /// collection: its copy in the old one, to delete (also after a crash).
    pub moved_from: Option<MovedFrom>,
    /// A DAV resource's ETag when the migrator last wrote it ([`Journal::record_etag`]).
    pub etag: Option<String>,
}

/// Where the migrator's copy of a moved groupware item is in the collection it left.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MovedFrom {
    /// The source collection and its destination label, as the item's record named them.
    pub folder_id: String,
    pub dest_folder: String,
    pub dest_ref: String,
    /// The copy's ETag when the migrator wrote it, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

/// What the journal keeps about a migrated message, to mirror later changes exactly once and
/// to find the copy again at the destination.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailDetails {
    /// The Message-ID header, `<...>` included.
    pub message_id: Option<String>,
    /// SHA-256 (hex) of the header section as the IMAP fingerprint computes it.
    pub header_hash: Option<String>,
    /// The received date (Unix seconds): the INTERNALDATE given.
    pub received: Option<i64>,
    /// The flags last applied at the destination, as an IMAP flag list (`\Seen kw`).
    pub flags: Option<String>,
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
    /// Commits made through [`Journal::durable`], for the tests.
    #[cfg(test)]
    durable_commits: std::sync::atomic::AtomicUsize,
}

/// The connection, set to `synchronous = FULL` until dropped: in WAL mode NORMAL syncs only at
/// checkpoints, so a power cut may drop the last commits
/// (<https://www.sqlite.org/pragma.html#pragma_synchronous>); FULL syncs the WAL at commit.
/// A lost "done" whose item the destination holds would make the next run re-check it at
/// best; the destination synced its side first (see `private_files::sync_dir`).
struct Durable<'a>(std::sync::MutexGuard<'a, Connection>);

impl std::ops::Deref for Durable<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.0
    }
}

impl Drop for Durable<'_> {
    fn drop(&mut self) {
        // Failing to go back to NORMAL only costs speed (each commit is then synced).
        let _ = self.0.execute_batch("PRAGMA synchronous = NORMAL");
    }
}

/// Writes (and removes) a probe file in the state folder, so a read-only file system or a
/// full disk is named as such before the run starts, rather than as SQLite's "unable to open
/// database file".
fn check_writable(dir: &Path) -> Result<(), JournalError> {
    use std::io::Write as _;
    let probe = || -> std::io::Result<()> {
        let mut file = tempfile::Builder::new()
            .prefix(".write-check")
            .tempfile_in(dir)?;
        // A few pages: what opening and upgrading the journal writes.
        file.write_all(&[0u8; 64 * 1024])?;
        file.as_file().sync_all()
    };
    probe().map_err(|source| unwritable(dir, source))
}

/// A failed write in the state folder `dir`, its reason in plain words.
fn unwritable(dir: &Path, source: std::io::Error) -> JournalError {
    let reason = match source.kind() {
        std::io::ErrorKind::ReadOnlyFilesystem => "the file system is read-only".to_string(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
            "the disk is full".to_string()
        }
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => source.to_string(),
    };
    JournalError::Unwritable {
        path: dir.to_path_buf(),
        reason,
        source,
    }
}

/// Creates the state folder (and its parents) with mode 0700 when missing.
fn create_state_folder(state_dir: &Path) -> Result<(), JournalError> {
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
        })
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
        create_state_folder(state_dir)?;
        check_writable(state_dir)?;
        let path = state_dir.join(Self::FILE_NAME);
        let open_err = |source| JournalError::Open {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(open_err)?;
        // Another process (a run, while `report` or `verify` opens it) may be writing: wait.
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(open_err)?;
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
        let items = if version == 1 {
            format!("{MIGRATE_V1}{ITEMS_V2}{MIGRATE_V1_COPY}")
        } else {
            ITEMS_V2.to_string()
        };
        conn.execute_batch(&format!(
            // IMMEDIATE: a deferred transaction that reads, then writes while a run commits,
            // fails with SQLITE_BUSY_SNAPSHOT without waiting; this one waits for the lock.
            // synchronous = NORMAL for most records; the ones that say an item is done commit
            // with FULL ([`Journal::durable`]).
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
             BEGIN IMMEDIATE; {SCHEMA} {items} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
        ))
        .map_err(open_err)?;
        for (table, column, definition) in ADDED_COLUMNS {
            let present: bool = conn
                .query_row(
                    &format!("SELECT COUNT(*) FROM pragma_table_info('{table}') WHERE name = ?1"),
                    params![column],
                    |r| r.get::<_, i64>(0),
                )
                .map_err(open_err)?
                > 0;
            if !present {
                conn.execute_batch(&format!(
                    "ALTER TABLE {table} ADD COLUMN {column} {definition};"
                ))
                .map_err(open_err)?;
            }
        }
        Ok(Journal {
            path,
            conn: Mutex::new(conn),
            #[cfg(test)]
            durable_commits: Default::default(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A poisoned lock means a panic mid-call; SQLite rolled the statement back.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The connection for a record that says an item is done: its commit is synced to disk
    /// before the call returns ([`Durable`]).
    fn durable(&self) -> Result<Durable<'_>, JournalError> {
        let conn = self.conn();
        conn.execute_batch("PRAGMA synchronous = FULL")?;
        #[cfg(test)]
        self.durable_commits
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Durable(conn))
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

    /// Records (or with `None` clears) what the run leaves out of a user by design, e.g. an
    /// online archive; a user not yet recorded is recorded as `pending`.
    pub fn set_user_note(
        &self,
        user_id: &str,
        address: &str,
        note: Option<&str>,
    ) -> Result<(), JournalError> {
        self.conn().execute(
            "INSERT INTO users (user_id, address, state, updated_at, note)
             VALUES (?1, ?2, 'pending', ?3, ?4)
             ON CONFLICT (user_id) DO UPDATE SET note = ?4",
            params![user_id, address, now(), note],
        )?;
        Ok(())
    }

    /// Records what `user_id`'s mailbox is (`kind`) and what the migration made of it at the
    /// destination (`destination`, e.g. [`ACCOUNT_CREATED`]); a user not yet recorded is
    /// recorded as `pending`. An account the migration created stays recorded as created
    /// when a later run finds it there and merges into it.
    pub fn set_user_destination(
        &self,
        user_id: &str,
        address: &str,
        kind: &str,
        destination: &str,
    ) -> Result<(), JournalError> {
        self.conn().execute(
            "INSERT INTO users (user_id, address, state, updated_at, kind, destination)
             VALUES (?1, ?2, 'pending', ?3, ?4, ?5)
             ON CONFLICT (user_id) DO UPDATE SET kind = ?4,
               destination = CASE WHEN users.destination = ?6 THEN users.destination ELSE ?5 END",
            params![user_id, address, now(), kind, destination, ACCOUNT_CREATED],
        )?;
        Ok(())
    }

    /// The recorded state of one item, if any.
    pub fn item(&self, user_id: &str, source_id: &str) -> Result<Option<ItemRecord>, JournalError> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {ITEM_COLUMNS} FROM items WHERE user_id = ?1 AND source_id = ?2"),
                params![user_id, source_id],
                row_to_item,
            )
            .optional()?)
    }

    /// Records that `target` is about to be written. A `done` record is kept as it is unless the
    /// item now goes to another destination folder (it was moved at the source).
    pub fn record_intent(&self, target: ItemTarget<'_>, run: i64) -> Result<(), JournalError> {
        self.record_intent_as("mail", target, run)
    }

    /// [`Journal::record_intent`] for an item of another workload: `kind` is `event`,
    /// `contact` or `task` (with the calendar, address book or task list as `folder_id`).
    /// Mail-only queries (gone items, a folder's messages) never see such items.
    pub fn record_intent_as(
        &self,
        kind: &str,
        target: ItemTarget<'_>,
        run: i64,
    ) -> Result<(), JournalError> {
        self.conn().execute(
            "INSERT INTO items (user_id, source_id, kind, folder_id, dest_folder, state, run_id,
                                updated_at)
             VALUES (?1, ?2, ?7, ?3, ?4, 'pending', ?5, ?6)
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
                now(),
                kind
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
        self.durable()?.execute(
            "UPDATE items SET state = 'done', dest_ref = ?3, size = ?4, hash = ?5, reason = NULL,
                              moved_from = NULL, updated_at = ?6
             WHERE user_id = ?1 AND source_id = ?2",
            params![user_id, source_id, dest_ref, size as i64, hash, now()],
        )?;
        Ok(())
    }

    /// Records where a moved item's old copy is (see [`ItemRecord::moved_from`]), before the
    /// item is written in its new collection; [`Journal::record_done`] clears it.
    pub fn record_moved_from(
        &self,
        user_id: &str,
        source_id: &str,
        moved_from: &MovedFrom,
    ) -> Result<(), JournalError> {
        let json = serde_json::to_string(moved_from).unwrap_or_default();
        self.conn().execute(
            "UPDATE items SET moved_from = ?3 WHERE user_id = ?1 AND source_id = ?2",
            params![user_id, source_id, json],
        )?;
        Ok(())
    }

    /// Records the source's version of an item (see [`ItemRecord::source_version`]).
    pub fn record_source_version(
        &self,
        user_id: &str,
        source_id: &str,
        version: Option<&str>,
    ) -> Result<(), JournalError> {
        self.set_item_text(user_id, source_id, "source_version", version)
    }

    /// Sets one text column of an item's record; `column` is one of this file's names.
    fn set_item_text(
        &self,
        user_id: &str,
        source_id: &str,
        column: &'static str,
        value: Option<&str>,
    ) -> Result<(), JournalError> {
        self.conn().execute(
            &format!("UPDATE items SET {column} = ?3 WHERE user_id = ?1 AND source_id = ?2"),
            params![user_id, source_id, value],
        )?;
        Ok(())
    }

    /// Records the contact's source version at which it had no photo (`None`: it had one, or
    /// it is not known).
    pub fn record_no_photo_at(
        &self,
        user_id: &str,
        source_id: &str,
        version: Option<&str>,
    ) -> Result<(), JournalError> {
        self.set_item_text(user_id, source_id, "no_photo_at", version)
    }

    /// The source version at which the contact had no photo ([`Journal::record_no_photo_at`]).
    pub fn no_photo_at(
        &self,
        user_id: &str,
        source_id: &str,
    ) -> Result<Option<String>, JournalError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT no_photo_at FROM items WHERE user_id = ?1 AND source_id = ?2",
                params![user_id, source_id],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()?
            .flatten())
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

    /// Records what the report shows of a failed item so a person can find it: its subject,
    /// date (Unix seconds; the `received` column) and size, where known. Call it after
    /// [`Journal::record_failed`]; `None` leaves a value as it was.
    pub fn record_failure_details(
        &self,
        user_id: &str,
        source_id: &str,
        subject: Option<&str>,
        date: Option<i64>,
        size: Option<u64>,
    ) -> Result<(), JournalError> {
        self.conn().execute(
            "UPDATE items SET subject = COALESCE(?3, subject), received = COALESCE(?4, received),
                              size = COALESCE(?5, size)
             WHERE user_id = ?1 AND source_id = ?2",
            params![user_id, source_id, subject, date, size.map(|s| s as i64)],
        )?;
        Ok(())
    }

    /// [`Journal::record_failure_details`] of what people know the item by.
    pub fn record_failure_name(
        &self,
        user_id: &str,
        source_id: &str,
        name: &crate::progress::ItemName,
    ) -> Result<(), JournalError> {
        let subject = name.subject.as_deref();
        self.record_failure_details(user_id, source_id, subject, name.date, name.size)
    }

    /// Items of a user in a given state.
    pub fn items_in_state(
        &self,
        user_id: &str,
        state: ItemState,
    ) -> Result<Vec<ItemRecord>, JournalError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {ITEM_COLUMNS} FROM items WHERE user_id = ?1 AND state = ?2 ORDER BY source_id"
        ))?;
        let rows = stmt.query_map(params![user_id, state_name(&state)], row_to_item)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Remembers a mail folder's destination name and delta link.
    pub fn set_folder(
        &self,
        user_id: &str,
        folder_id: &str,
        dest_name: &str,
        delta_link: Option<&str>,
    ) -> Result<(), JournalError> {
        self.set_folder_as("mail", user_id, folder_id, dest_name, delta_link)
    }

    /// [`Journal::set_folder`] for a groupware collection: `kind` is its items' kind
    /// (`event`, `contact`, `task`), `folder_id` the collection's id in the items' records.
    /// [`Journal::delta_link`] and [`Journal::clear_delta_link`] serve both.
    pub fn set_folder_as(
        &self,
        kind: &str,
        user_id: &str,
        folder_id: &str,
        dest_name: &str,
        delta_link: Option<&str>,
    ) -> Result<(), JournalError> {
        self.conn().execute(
            "INSERT INTO folders (user_id, folder_id, dest_name, delta_link, kind)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (user_id, folder_id) DO UPDATE
               SET dest_name = ?3, delta_link = COALESCE(?4, folders.delta_link), kind = ?5",
            params![user_id, folder_id, dest_name, delta_link, kind],
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

/// A message the destination confirmed, with what later passes need to mirror changes.
#[derive(Debug, Clone, Copy)]
pub struct MailDone<'a> {
    pub dest_ref: &'a str,
    pub size: u64,
    /// SHA-256 (hex) of the whole message as written.
    pub hash: Option<&'a str>,
    pub details: &'a MailDetails,
    /// The migrator appended it (true) or found it already there (false).
    pub created: bool,
    pub run: i64,
}

impl Journal {
    /// Records that the destination confirmed a message (see [`MailDone`]). The record is
    /// `done`, seen in `run`, and no longer gone.
    pub fn record_mail_done(
        &self,
        user_id: &str,
        source_id: &str,
        done: MailDone<'_>,
    ) -> Result<(), JournalError> {
        let d = done.details;
        self.durable()?.execute(
            "UPDATE items SET state = 'done', dest_ref = ?3, size = ?4, hash = ?5, reason = NULL,
                              message_id = ?6, header_hash = ?7, received = ?8, flags = ?9,
                              created = ?10, gone_from = NULL, seen_run = ?11, updated_at = ?12
             WHERE user_id = ?1 AND source_id = ?2",
            params![
                user_id,
                source_id,
                done.dest_ref,
                done.size as i64,
                done.hash,
                d.message_id,
                d.header_hash,
                d.received,
                d.flags,
                done.created,
                done.run,
                now()
            ],
        )?;
        Ok(())
    }

    /// Records that a message now lives in source folder `folder_id`, at `dest_ref` in
    /// `dest_folder` (it was moved), and is no longer gone.
    pub fn record_moved(
        &self,
        target: ItemTarget<'_>,
        dest_ref: &str,
        run: i64,
    ) -> Result<(), JournalError> {
        self.durable()?.execute(
            "UPDATE items SET folder_id = ?3, dest_folder = ?4, dest_ref = ?5, state = 'done',
                              gone_from = NULL, seen_run = ?6, updated_at = ?7
             WHERE user_id = ?1 AND source_id = ?2",
            params![
                target.user_id,
                target.source_id,
                target.folder_id,
                target.dest_folder,
                dest_ref,
                run,
                now()
            ],
        )?;
        Ok(())
    }

    /// Records the flags now applied at the destination and where the copy is.
    pub fn record_flags(
        &self,
        user_id: &str,
        source_id: &str,
        flags: &str,
        dest_ref: &str,
    ) -> Result<(), JournalError> {
        self.durable()?.execute(
            "UPDATE items SET flags = ?3, dest_ref = ?4, updated_at = ?5
             WHERE user_id = ?1 AND source_id = ?2",
            params![user_id, source_id, flags, dest_ref, now()],
        )?;
        Ok(())
    }

    /// Notes that a round of `run` listed the item in its folder: it is not gone (and an item
    /// recorded as removed at the source is migrated again).
    pub fn mark_seen(&self, user_id: &str, source_id: &str, run: i64) -> Result<(), JournalError> {
        self.conn().execute(
            "UPDATE items SET seen_run = ?3, gone_from = NULL,
                              state = CASE state WHEN 'removed' THEN 'done' ELSE state END
             WHERE user_id = ?1 AND source_id = ?2",
            params![user_id, source_id, run],
        )?;
        Ok(())
    }

    /// Notes that source folder `folder_id` reported the item gone. It may have moved to a
    /// folder whose round comes later, so it is settled only at the end of the mailbox's pass
    /// ([`Journal::gone_items`]). Ignored when the record already lives in another folder.
    pub fn mark_gone(
        &self,
        user_id: &str,
        source_id: &str,
        folder_id: &str,
    ) -> Result<(), JournalError> {
        self.conn().execute(
            "UPDATE items SET gone_from = ?3, updated_at = ?4
             WHERE user_id = ?1 AND source_id = ?2 AND folder_id = ?3",
            params![user_id, source_id, folder_id, now()],
        )?;
        Ok(())
    }

    /// After a complete full round of `run` over `folder_id`: every mail item of that folder
    /// the round did not list is gone. Returns how many.
    pub fn mark_unseen_gone(
        &self,
        user_id: &str,
        folder_id: &str,
        run: i64,
    ) -> Result<usize, JournalError> {
        Ok(self.conn().execute(
            "UPDATE items SET gone_from = folder_id, updated_at = ?3
             WHERE user_id = ?1 AND folder_id = ?2 AND kind = 'mail'
               AND state IN ('done', 'removed') AND seen_run IS NOT ?4",
            params![user_id, folder_id, now(), run],
        )?)
    }

    /// Marks every mail item of a source folder that no longer exists as gone.
    pub fn mark_folder_gone(&self, user_id: &str, folder_id: &str) -> Result<(), JournalError> {
        self.conn().execute(
            "UPDATE items SET gone_from = folder_id, updated_at = ?3
             WHERE user_id = ?1 AND folder_id = ?2 AND kind = 'mail'",
            params![user_id, folder_id, now()],
        )?;
        Ok(())
    }

    /// Mail items reported gone and not found in another folder since: deleted at the source.
    pub fn gone_items(&self, user_id: &str) -> Result<Vec<ItemRecord>, JournalError> {
        self.select_items(
            "WHERE user_id = ?1 AND kind = 'mail' AND gone_from IS NOT NULL
               AND gone_from = folder_id",
            user_id,
        )
    }

    /// The mail items of one source folder that were migrated (`done`).
    pub fn items_in_folder(
        &self,
        user_id: &str,
        folder_id: &str,
    ) -> Result<Vec<ItemRecord>, JournalError> {
        self.items_of_kind_in_folder(user_id, folder_id, "mail", ItemState::Done)
    }

    /// The items of one kind and state in one source folder or collection.
    pub fn items_of_kind_in_folder(
        &self,
        user_id: &str,
        folder_id: &str,
        kind: &str,
        state: ItemState,
    ) -> Result<Vec<ItemRecord>, JournalError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {ITEM_COLUMNS} FROM items
             WHERE user_id = ?1 AND folder_id = ?2 AND kind = ?3 AND state = ?4
             ORDER BY source_id"
        ))?;
        let rows = stmt.query_map(
            params![user_id, folder_id, kind, state_name(&state)],
            row_to_item,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records the ETag a DAV resource had right after the migrator wrote it (`None`: the
    /// server gave none).
    pub fn record_etag(
        &self,
        user_id: &str,
        source_id: &str,
        etag: Option<&str>,
    ) -> Result<(), JournalError> {
        self.conn().execute(
            "UPDATE items SET etag = ?3 WHERE user_id = ?1 AND source_id = ?2",
            params![user_id, source_id, etag],
        )?;
        Ok(())
    }

    /// Records that the item's destination copy existed before the migration (the write
    /// updated it): incremental passes never delete it.
    pub fn mark_found(&self, user_id: &str, source_id: &str) -> Result<(), JournalError> {
        self.conn().execute(
            "UPDATE items SET created = 0 WHERE user_id = ?1 AND source_id = ?2",
            params![user_id, source_id],
        )?;
        Ok(())
    }

    fn select_items(&self, filter: &str, user_id: &str) -> Result<Vec<ItemRecord>, JournalError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {ITEM_COLUMNS} FROM items {filter} ORDER BY source_id"
        ))?;
        let rows = stmt.query_map(params![user_id], row_to_item)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records that the item was deleted at the source and its destination copy kept.
    pub fn record_removed(&self, user_id: &str, source_id: &str) -> Result<(), JournalError> {
        self.conn().execute(
            "UPDATE items SET state = 'removed', gone_from = NULL, updated_at = ?3
             WHERE user_id = ?1 AND source_id = ?2",
            params![user_id, source_id, now()],
        )?;
        Ok(())
    }

    /// Forgets an item (deleted at the source and at the destination).
    pub fn forget(&self, user_id: &str, source_id: &str) -> Result<(), JournalError> {
        self.conn().execute(
            "DELETE FROM items WHERE user_id = ?1 AND source_id = ?2",
            params![user_id, source_id],
        )?;
        Ok(())
    }

    /// Every mail folder recorded for a user: (source folder id, destination name).
    pub fn folders_of(&self, user_id: &str) -> Result<Vec<(String, String)>, JournalError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT folder_id, dest_name FROM folders WHERE user_id = ?1 AND kind = 'mail'
             ORDER BY folder_id",
        )?;
        let rows = stmt.query_map(params![user_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Forgets a folder that no longer exists at the source (and its delta link).
    pub fn forget_folder(&self, user_id: &str, folder_id: &str) -> Result<(), JournalError> {
        self.conn().execute(
            "DELETE FROM folders WHERE user_id = ?1 AND folder_id = ?2",
            params![user_id, folder_id],
        )?;
        Ok(())
    }

    /// The date limits (their [`crate::config::DateLimits::fingerprint`]) the user's mail
    /// delta links were taken under; `None` before the first pass.
    pub fn user_limits(&self, user_id: &str) -> Result<Option<String>, JournalError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT limits FROM user_limits WHERE user_id = ?1",
                params![user_id],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Records new date limits for a user and drops the user's delta links in the same
    /// transaction: the next round of every folder is a full one, which lists what the new
    /// limits let in (a delta link would only bring what changed).
    pub fn set_user_limits(&self, user_id: &str, limits: &str) -> Result<(), JournalError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "UPDATE folders SET delta_link = NULL WHERE user_id = ?1",
            params![user_id],
        )?;
        tx.execute(
            "INSERT INTO user_limits (user_id, limits) VALUES (?1, ?2)
             ON CONFLICT (user_id) DO UPDATE SET limits = ?2",
            params![user_id, limits],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Drops a folder's delta link (Graph answered 410: the next round starts over).
    pub fn clear_delta_link(&self, user_id: &str, folder_id: &str) -> Result<(), JournalError> {
        self.conn().execute(
            "UPDATE folders SET delta_link = NULL WHERE user_id = ?1 AND folder_id = ?2",
            params![user_id, folder_id],
        )?;
        Ok(())
    }
}

fn state_name(state: &ItemState) -> &'static str {
    match state {
        ItemState::Pending => "pending",
        ItemState::Done => "done",
        ItemState::Failed => "failed",
        ItemState::Removed => "removed",
    }
}

/// The columns [`row_to_item`] reads, in its order.
const ITEM_COLUMNS: &str = "source_id, folder_id, dest_folder, state, dest_ref, size, hash, reason,
     kind, message_id, header_hash, received, flags, created, gone_from, source_version,
     moved_from, etag";

fn row_to_item(row: &rusqlite::Row<'_>) -> rusqlite::Result<ItemRecord> {
    let state: String = row.get(3)?;
    Ok(ItemRecord {
        source_id: row.get(0)?,
        folder_id: row.get(1)?,
        dest_folder: row.get(2)?,
        state: match state.as_str() {
            "done" => ItemState::Done,
            "failed" => ItemState::Failed,
            "removed" => ItemState::Removed,
            _ => ItemState::Pending,
        },
        dest_ref: row.get(4)?,
        size: row.get::<_, Option<i64>>(5)?.map(|s| s.max(0) as u64),
        hash: row.get(6)?,
        reason: row.get(7)?,
        kind: row.get(8)?,
        mail: MailDetails {
            message_id: row.get(9)?,
            header_hash: row.get(10)?,
            received: row.get(11)?,
            flags: row.get(12)?,
        },
        created: row.get::<_, i64>(13)? != 0,
        gone_from: row.get(14)?,
        source_version: row.get(15)?,
        // Unreadable JSON (not written by this version) is no move to finish.
        moved_from: row
            .get::<_, Option<String>>(16)?
            .and_then(|json| serde_json::from_str(&json).ok()),
        etag: row.get(17)?,
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
    fn a_done_record_is_on_disk_when_the_call_returns() {
        // NORMAL in WAL mode syncs only at checkpoints: a power cut could drop "done" records
        // whose items the destination has. Those records commit with FULL, the rest NORMAL.
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        let synchronous = |j: &Journal| -> i64 {
            j.conn()
                .query_row("PRAGMA synchronous", [], |r| r.get(0))
                .unwrap()
        };
        let durable = || j.durable_commits.load(std::sync::atomic::Ordering::Relaxed);
        {
            let conn = j.durable().unwrap();
            let inside: i64 = conn
                .query_row("PRAGMA synchronous", [], |r| r.get(0))
                .unwrap();
            assert_eq!(inside, 2, "2 is FULL");
        }
        assert_eq!(synchronous(&j), 1, "back to NORMAL");
        let before = durable();
        let run = j.begin_run().unwrap();
        j.record_intent(target("m1"), run).unwrap();
        assert_eq!(durable(), before, "an intent need not be synced");
        j.record_done("u1", "m1", "1", 10, None).unwrap();
        assert_eq!(durable(), before + 1);
        j.record_flags("u1", "m1", "S", "1").unwrap();
        j.record_moved(target("m1"), "2", run).unwrap();
        assert_eq!(durable(), before + 3);
        assert_eq!(synchronous(&j), 1);
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
    fn groupware_delta_links_stay_out_of_the_mail_folders_and_versions_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        {
            let j = Journal::open(dir.path()).unwrap();
            j.set_folder("u1", "f1", ".A", Some("https://graph/mail"))
                .unwrap();
            j.set_folder_as(
                "contact",
                "u1",
                "contacts",
                "contacts",
                Some("https://graph/c"),
            )
            .unwrap();
            let run = j.begin_run().unwrap();
            j.record_intent_as("contact", target("c1"), run).unwrap();
            j.record_done("u1", "c1", "c1.vcf", 3, Some("h")).unwrap();
            j.record_source_version("u1", "c1", Some("ck-1")).unwrap();
        }
        // Reopening an existing journal neither fails nor loses anything.
        let j = Journal::open(dir.path()).unwrap();
        assert_eq!(
            j.folders_of("u1").unwrap(),
            [("f1".to_string(), ".A".to_string())],
            "the mail pass never forgets a groupware collection's link"
        );
        assert_eq!(
            j.delta_link("u1", "contacts").unwrap().as_deref(),
            Some("https://graph/c")
        );
        let c1 = j.item("u1", "c1").unwrap().unwrap();
        assert_eq!(c1.source_version.as_deref(), Some("ck-1"));
        j.clear_delta_link("u1", "contacts").unwrap();
        assert_eq!(j.delta_link("u1", "contacts").unwrap(), None);
    }

    #[test]
    fn a_version_1_journal_is_upgraded_and_keeps_its_items() {
        let dir = tempfile::tempdir().unwrap();
        {
            let conn = Connection::open(dir.path().join(Journal::FILE_NAME)).unwrap();
            conn.execute_batch(
                "CREATE TABLE folders (user_id TEXT NOT NULL, folder_id TEXT NOT NULL,
                     dest_name TEXT NOT NULL, delta_link TEXT, PRIMARY KEY (user_id, folder_id));
                 CREATE TABLE items (user_id TEXT NOT NULL, source_id TEXT NOT NULL,
                     folder_id TEXT NOT NULL, dest_folder TEXT NOT NULL,
                     state TEXT NOT NULL CHECK (state IN ('pending', 'done', 'failed')),
                     dest_ref TEXT, size INTEGER, hash TEXT, reason TEXT, run_id INTEGER,
                     updated_at INTEGER NOT NULL, PRIMARY KEY (user_id, source_id));
                 CREATE INDEX items_by_state ON items (user_id, state);
                 INSERT INTO items VALUES ('u1', 'm1', 'f1', 'INBOX', 'done',
                     'INBOX;UIDVALIDITY=7/;UID=3', 42, NULL, NULL, 1, 0);
                 PRAGMA user_version = 1;",
            )
            .unwrap();
        }
        let j = Journal::open(dir.path()).unwrap();
        let m1 = j.item("u1", "m1").unwrap().unwrap();
        assert_eq!(m1.state, ItemState::Done);
        assert_eq!(m1.dest_ref.as_deref(), Some("INBOX;UIDVALIDITY=7/;UID=3"));
        assert_eq!(m1.kind, "mail");
        assert!(
            !m1.created,
            "version-1 copies are never touched by mirroring"
        );
        let version: i32 = j
            .conn()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        // The new state is accepted by the rebuilt table.
        j.record_removed("u1", "m1").unwrap();
        assert_eq!(
            j.item("u1", "m1").unwrap().unwrap().state,
            ItemState::Removed
        );
        drop(j);
        Journal::open(dir.path()).unwrap();
    }

    #[test]
    fn gone_items_are_settled_by_the_folder_they_live_in() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        let run = j.begin_run().unwrap();
        for id in ["a", "b", "c"] {
            j.record_intent(target(id), run).unwrap();
            let details = MailDetails::default();
            j.record_mail_done(
                "u1",
                id,
                MailDone {
                    dest_ref: "x",
                    size: 1,
                    hash: None,
                    details: &details,
                    created: true,
                    run,
                },
            )
            .unwrap();
        }
        // a: removed from f1 and added to f2 (a move), in either order.
        j.mark_gone("u1", "a", "f1").unwrap();
        let moved = ItemTarget {
            folder_id: "f2",
            dest_folder: ".Other",
            ..target("a")
        };
        j.record_moved(moved, "y", run).unwrap();
        j.mark_gone("u1", "a", "f1").unwrap();
        // b: deleted. c: missing from a later full round.
        j.mark_gone("u1", "b", "f1").unwrap();
        let next = j.begin_run().unwrap();
        j.mark_seen("u1", "a", next).unwrap();
        j.mark_seen("u1", "b", next).unwrap();
        assert_eq!(j.mark_unseen_gone("u1", "f1", next).unwrap(), 1);
        let gone: Vec<String> = j
            .gone_items("u1")
            .unwrap()
            .into_iter()
            .map(|r| r.source_id)
            .collect();
        assert_eq!(gone, ["c"], "seen in the round clears b's mark; a moved");
        // Another workload's item in the same table stays out of mail's bookkeeping.
        let event = ItemTarget {
            folder_id: "calendar-1",
            dest_folder: "/dav/calendar/",
            ..target("e1")
        };
        j.record_intent_as("event", event, next).unwrap();
        j.record_done("u1", "e1", "/dav/calendar/e1.ics", 10, None)
            .unwrap();
        j.mark_folder_gone("u1", "calendar-1").unwrap();
        let e1 = j.item("u1", "e1").unwrap().unwrap();
        assert_eq!((e1.kind.as_str(), e1.gone_from), ("event", None));
        j.record_removed("u1", "c").unwrap();
        j.mark_seen("u1", "c", next).unwrap();
        assert_eq!(j.item("u1", "c").unwrap().unwrap().state, ItemState::Done);
        assert_eq!(j.item("u1", "a").unwrap().unwrap().dest_folder, ".Other");
    }

    #[test]
    fn a_journal_without_moved_from_opens_and_a_moves_old_copy_is_kept_until_done() {
        let dir = tempfile::tempdir().unwrap();
        {
            let j = Journal::open(dir.path()).unwrap();
            let run = j.begin_run().unwrap();
            j.record_intent_as("contact", target("c1"), run).unwrap();
            j.record_done("u1", "c1", "c1.vcf", 3, Some("h")).unwrap();
            // As the previous version left it: no such column.
            j.conn()
                .execute_batch("ALTER TABLE items DROP COLUMN moved_from;")
                .unwrap();
        }
        let j = Journal::open(dir.path()).unwrap();
        let c1 = j.item("u1", "c1").unwrap().unwrap();
        assert_eq!((c1.state, c1.moved_from), (ItemState::Done, None));
        let from = MovedFrom {
            folder_id: "f1".into(),
            dest_folder: ".Projects".into(),
            dest_ref: "c1.vcf".into(),
            etag: None,
        };
        let moved = ItemTarget {
            folder_id: "f2",
            dest_folder: "contacts/Other",
            ..target("c1")
        };
        let run = j.begin_run().unwrap();
        j.record_intent_as("contact", moved, run).unwrap();
        j.record_moved_from("u1", "c1", &from).unwrap();
        drop(j);
        // A crash here: the next run still knows where the old copy is.
        let j = Journal::open(dir.path()).unwrap();
        let c1 = j.item("u1", "c1").unwrap().unwrap();
        assert_eq!(c1.state, ItemState::Pending);
        assert_eq!(c1.folder_id, "f2");
        assert_eq!(c1.moved_from, Some(from));
        j.record_done("u1", "c1", "c1.vcf", 3, Some("h")).unwrap();
        assert_eq!(j.item("u1", "c1").unwrap().unwrap().moved_from, None);
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
    fn the_probe_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        Journal::open(dir.path()).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".write-check"))
            .collect();
        assert_eq!(names, Vec::<String>::new());
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
