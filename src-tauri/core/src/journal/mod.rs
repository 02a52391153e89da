//! The journal: a database that remembers what every run did. By default an SQLite file in
//! the state folder ([`Journal::open`]); with `[journal] url` a shared PostgreSQL database
//! ([`Journal::open_postgres`], see [`postgres`] for why its calls go through a connection
//! thread), so many workers on many machines can share one journal (issue 18).
//!
//! **One contract, two backends.** [`Journal`]'s methods are the contract; each is written
//! once as SQL both databases accept ([`sql`]) and runs on either backend. The backends only
//! differ in how a statement reaches the database and how a record is made durable; the same
//! test suite (`tests/journal_backends.rs`) runs against both.
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
//! The records that say an item is done at the destination are on disk (power cuts too)
//! before the call returns, each with every record committed before it; on SQLite several
//! share one sync of the WAL, made without the connection's lock, and on PostgreSQL those
//! that arrive while one is in flight share the next transaction (group commit). The engine
//! reads a page's records in one call ([`Journal::items_by_id`]) and records a page's
//! intents in one transaction (mail: [`Journal::record_intents`]; groupware, with moves,
//! unchanged items' versions and photo states: [`Journal::record_page_async`]) before any of
//! its items is written; a groupware item's ETag and found state go with its "done" record
//! ([`GroupwareDone`]): on PostgreSQL each call is a round trip. Those per-item calls have awaitable
//! forms (`*_async`: the same statements, the same guarantees when they return) that the
//! engine uses, so a round trip holds no runtime thread; SQLite answers them at once.
//!
//! The journal never holds secrets: ids, names, sizes, hashes and reasons only.

use std::path::{Path, PathBuf};
use std::sync::Arc;

mod lease;
mod lock;
pub mod postgres;
mod report;
pub(crate) mod sql;
mod sqlite;
pub use lease::{Lease, QueueProgress, WorkerProgress, WorkerRecord, ENQUEUE_BATCH};
pub(crate) use lock::host_name;
pub use lock::{LockError, LockHolder, StateLock};
pub use postgres::{JournalUrlError, PostgresSettings, SslMode, PASSWORD_VARIABLE};
pub use report::{FailedItem, ItemGroup, MinuteCount, RunRecord, UserRecord, UserSpan};
use sql::{args, Row, Value};

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
    /// A row did not have the shape the journal wrote (a column missing or of another type).
    #[error("the journal holds a record of an unexpected shape (column {index})")]
    Column { index: usize },
    #[error("the PostgreSQL journal {target} cannot be reached or written")]
    Postgres {
        target: String,
        #[source]
        source: tokio_postgres::Error,
    },
    /// The server's TLS certificate was refused when the journal opened: nothing is read or
    /// written.
    #[error("the PostgreSQL journal {target} is refused: its TLS certificate {problem}")]
    Certificate { target: String, problem: String },
    #[error("the PostgreSQL journal {target} was migrated by a newer version (schema {found})")]
    NewerPostgresSchema { target: String, found: i64 },
    #[error("the PostgreSQL journal {target}'s connection stopped")]
    Stopped { target: String },
    #[error("cannot start the PostgreSQL journal's connection thread")]
    Thread {
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Settings(String),
    /// Leases exist only in a shared (PostgreSQL) journal.
    #[error("mailbox leases need the PostgreSQL journal ([journal] url)")]
    NeedsPostgres,
    /// The lease expired or another worker took the mailbox over: this worker must stop
    /// writing for it (its fencing token is stale).
    #[error("worker {worker} no longer holds the lease on mailbox {mailbox}: it expired or another worker took it over; nothing was recorded")]
    LeaseLost { mailbox: String, worker: String },
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
    /// A contact's source version at which it had no photo ([`Journal::record_no_photo_at`]).
    pub no_photo_at: Option<String>,
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

/// [`Journal::record_done`]'s statement: (user, source id, destination reference, size, hash,
/// now).
const RECORD_DONE: &str = "UPDATE items SET state = 'done', dest_ref = ?3, size = ?4, hash = ?5,
                          reason = NULL, moved_from = NULL, updated_at = ?6
     WHERE user_id = ?1 AND source_id = ?2";

/// [`Journal::record_intents`]' statement: (user, source id, folder, destination folder, run,
/// now, kind).
const RECORD_INTENT: &str = "INSERT INTO items (user_id, source_id, kind, folder_id, dest_folder,
                                state, run_id, updated_at)
     VALUES (?1, ?2, ?7, ?3, ?4, 'pending', ?5, ?6)
     ON CONFLICT (user_id, source_id) DO UPDATE
       SET folder_id = ?3, dest_folder = ?4, state = 'pending', reason = NULL,
           run_id = ?5, updated_at = ?6
       WHERE items.state != 'done' OR items.dest_folder != ?4";

/// [`RECORD_INTENT`] for an item planned with its page ([`Journal::record_intents`]): its
/// write may never have started, so a copy found at the destination later is not known to be
/// the migrator's (`created = 0`) unless an earlier single intent said it was about to be
/// written (a `pending` record keeps its `created`).
const RECORD_PLANNED_INTENT: &str = "INSERT INTO items (user_id, source_id, kind, folder_id,
                                dest_folder, state, run_id, updated_at, created)
     VALUES (?1, ?2, ?7, ?3, ?4, 'pending', ?5, ?6, 0)
     ON CONFLICT (user_id, source_id) DO UPDATE
       SET folder_id = ?3, dest_folder = ?4, state = 'pending', reason = NULL,
           run_id = ?5, updated_at = ?6,
           created = CASE WHEN items.state = 'pending' THEN items.created ELSE 0 END
       WHERE items.state != 'done' OR items.dest_folder != ?4";

/// [`Journal::record_moved_from`]'s statement: (user, source id, [`MovedFrom`] as JSON).
const RECORD_MOVED_FROM: &str =
    "UPDATE items SET moved_from = ?3 WHERE user_id = ?1 AND source_id = ?2";

/// [`Journal::record_source_version`]'s statement: (user, source id, version).
const RECORD_SOURCE_VERSION: &str =
    "UPDATE items SET source_version = ?3 WHERE user_id = ?1 AND source_id = ?2";

/// [`Journal::record_no_photo_at`]'s statement: (user, source id, version).
const RECORD_NO_PHOTO_AT: &str =
    "UPDATE items SET no_photo_at = ?3 WHERE user_id = ?1 AND source_id = ?2";

/// [`Journal::record_etag`]'s statement: (user, source id, ETag).
const RECORD_ETAG: &str = "UPDATE items SET etag = ?3 WHERE user_id = ?1 AND source_id = ?2";

/// What a page of groupware items records before any of them is written
/// ([`Journal::record_page_async`]), all of one user.
#[derive(Debug, Default)]
pub struct PageRecords<'a> {
    pub user_id: &'a str,
    /// The items about to be written: each intent as [`Journal::record_intent_as`] records it
    /// (a write is about to start), and for an item moved at the source where its old copy
    /// is ([`Journal::record_moved_from`]).
    pub intents: Vec<(ItemTarget<'a>, Option<&'a MovedFrom>)>,
    /// Items found unchanged at a source version other than the recorded one, by source id:
    /// that version ([`Journal::record_source_version`]).
    pub versions: Vec<(&'a str, Option<&'a str>)>,
    /// Contacts whose no-photo version changed ([`Journal::record_no_photo_at`]).
    pub no_photo_at: Vec<(&'a str, Option<&'a str>)>,
}

/// A groupware item the destination confirmed ([`Journal::record_done_at_version`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct GroupwareDone<'a> {
    pub dest_ref: &'a str,
    pub size: u64,
    /// SHA-256 (hex) of the resource as written.
    pub hash: Option<&'a str>,
    /// The source version it was written from ([`ItemRecord::source_version`]).
    pub version: Option<&'a str>,
    /// The DAV resource's ETag right after the write ([`Journal::record_etag`]; `None`: the
    /// server gave none, or a file).
    pub etag: Option<&'a str>,
    /// The destination already held the item on its first write: it is the user's
    /// ([`Journal::mark_found`]).
    pub found: bool,
}

/// How many source ids one [`Journal::items_by_id`] statement asks for: one SQL text (so
/// one prepared statement), its unused places given an id no item has.
const IDS_PER_LOOKUP: usize = 50;

/// The journal of one state folder (SQLite) or of a shared PostgreSQL database. Share it
/// behind an `Arc`.
#[derive(Debug)]
pub struct Journal {
    backend: Arc<Backend>,
    /// Set on a worker's handle for one leased mailbox ([`Journal::fenced`]): every write
    /// through it commits only while the lease holds.
    fence: Option<lease::Fence>,
}

/// Where the journal lives. Both run the same statements ([`sql`]); what differs is how a
/// statement reaches the database and how a record is made durable.
#[derive(Debug)]
enum Backend {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PostgresStore),
}

/// Where to open the journal: `[journal] url` when set, else the state folder's SQLite file.
#[derive(Debug, Clone)]
pub enum JournalLocation {
    StateFolder(PathBuf),
    Postgres(Box<PostgresSettings>),
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
        Ok(Journal {
            backend: Arc::new(Backend::Sqlite(sqlite::SqliteStore::open(state_dir)?)),
            fence: None,
        })
    }

    /// Connects to a PostgreSQL journal and applies the schema migrations it lacks.
    /// `password`: from [`PASSWORD_VARIABLE`] (never the configuration file).
    pub fn open_postgres(
        settings: &PostgresSettings,
        password: Option<&crate::secrets::Secret>,
    ) -> Result<Self, JournalError> {
        Ok(Journal {
            backend: Arc::new(Backend::Postgres(postgres::PostgresStore::open(
                settings, password,
            )?)),
            fence: None,
        })
    }

    /// Opens the journal at `location`; a PostgreSQL password is read from
    /// [`PASSWORD_VARIABLE`] when set.
    pub fn open_at(location: &JournalLocation) -> Result<Self, JournalError> {
        match location {
            JournalLocation::StateFolder(dir) => Self::open(dir),
            JournalLocation::Postgres(settings) => {
                let password = std::env::var(PASSWORD_VARIABLE)
                    .ok()
                    .filter(|p| !p.is_empty())
                    .map(crate::secrets::Secret::new);
                Self::open_postgres(settings, password.as_ref())
            }
        }
    }

    /// The SQLite file, or the PostgreSQL `user@host:port/db`, for messages.
    pub fn location(&self) -> String {
        match &*self.backend {
            Backend::Sqlite(s) => s.path.display().to_string(),
            Backend::Postgres(p) => p.target.clone(),
        }
    }

    /// The SQLite journal's file (`None` for PostgreSQL).
    pub fn path(&self) -> Option<&Path> {
        match &*self.backend {
            Backend::Sqlite(s) => Some(&s.path),
            Backend::Postgres(_) => None,
        }
    }

    #[cfg(test)]
    fn sqlite(&self) -> &sqlite::SqliteStore {
        match &*self.backend {
            Backend::Sqlite(s) => s,
            Backend::Postgres(_) => panic!("a SQLite journal"),
        }
    }

    /// Runs one statement; returns the rows it changed.
    fn exec(&self, sql: &str, args: Vec<Value>) -> Result<u64, JournalError> {
        postgres::block_on(self.exec_async(sql, args))
    }

    /// [`Journal::exec`], awaited: on PostgreSQL the caller holds no thread while the
    /// statement is under way (issue 18); on SQLite it is answered at once.
    async fn exec_async(&self, sql: &str, args: Vec<Value>) -> Result<u64, JournalError> {
        match (&*self.backend, &self.fence) {
            (Backend::Postgres(_), Some(fence)) => {
                Ok(self.under_lease(fence.held()?, &[(sql, args)]).await?.0)
            }
            (Backend::Sqlite(s), _) => s.execute(sql, &args),
            (Backend::Postgres(p), None) => p.execute_async(sql, args).await,
        }
    }

    /// [`Journal::exec`] for a record that says an item is done at the destination: on disk
    /// when the call returns, concurrent records sharing the work (SQLite: its WAL synced
    /// after the commit, one sync for the records committed meanwhile; PostgreSQL: one
    /// transaction for the records that arrived while one was in flight, under the same
    /// lease, its commits durable with the default `synchronous_commit = on`). Awaited, as
    /// [`Journal::exec_async`].
    async fn exec_durable(&self, sql: &str, args: Vec<Value>) -> Result<(), JournalError> {
        match (&*self.backend, &self.fence) {
            (Backend::Sqlite(s), _) => {
                let (_, commit) = s.commit_durable(sql, &args)?;
                self.sqlite_synced_through(commit).await
            }
            (Backend::Postgres(_), Some(fence)) => {
                self.durable_under_lease(fence.held()?, sql, args).await
            }
            (Backend::Postgres(p), None) => p.durable(None, sql, args).await.map(|_| ()),
        }
    }

    /// Waits until SQLite commit `commit` is on disk. Inside a Tokio runtime the WAL sync
    /// (or the wait for another caller's) holds a blocking-pool thread, not the caller's: a
    /// runtime worker parked on a disk flush stalls every mailbox queued on it (issue 17).
    /// Without a runtime it waits here.
    async fn sqlite_synced_through(&self, commit: u64) -> Result<(), JournalError> {
        let sync = move |backend: &Backend| match backend {
            Backend::Sqlite(s) => s.synced_through(commit),
            Backend::Postgres(_) => Ok(()),
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let backend = Arc::clone(&self.backend);
            if let Ok(synced) = runtime.spawn_blocking(move || sync(&backend)).await {
                return synced;
            }
            // Not run (the runtime is shutting down): synced here instead.
        }
        sync(&self.backend)
    }

    /// Records waiting to share a PostgreSQL transaction of "done" records under way (0 on
    /// SQLite), for tests.
    #[doc(hidden)]
    pub fn done_records_waiting(&self) -> usize {
        match &*self.backend {
            Backend::Sqlite(_) => 0,
            Backend::Postgres(p) => p.durable_waiting(),
        }
    }

    fn rows(&self, sql: &str, args: Vec<Value>) -> Result<Vec<Row>, JournalError> {
        postgres::block_on(self.rows_async(sql, args))
    }

    /// [`Journal::rows`], awaited, as [`Journal::exec_async`].
    async fn rows_async(&self, sql: &str, args: Vec<Value>) -> Result<Vec<Row>, JournalError> {
        if let Some(fence) = &self.fence {
            // A worker that was paused past its lease learns it at its next read, before the
            // write that read leads to.
            fence.held()?;
        }
        match &*self.backend {
            Backend::Sqlite(s) => s.query(sql, &args),
            Backend::Postgres(p) => p.query_async(sql, args).await,
        }
    }

    /// The first row's first column, if any row.
    fn first(&self, sql: &str, args: Vec<Value>) -> Result<Option<Row>, JournalError> {
        Ok(self.rows(sql, args)?.into_iter().next())
    }

    /// `statements` in one transaction, in order; awaited, as [`Journal::exec_async`].
    async fn transaction_async(
        &self,
        statements: &[(&str, Vec<Value>)],
    ) -> Result<(), JournalError> {
        match (&*self.backend, &self.fence) {
            (Backend::Postgres(_), Some(fence)) => self
                .under_lease(fence.held()?, statements)
                .await
                .map(|_| ()),
            (Backend::Sqlite(s), _) => s.transaction(statements),
            (Backend::Postgres(p), None) => p.transaction(statements).await,
        }
    }

    /// A write that returns rows (`RETURNING`), fenced like [`Journal::exec`]; awaited, as
    /// [`Journal::exec_async`].
    async fn write_returning_async(
        &self,
        sql: &str,
        args: Vec<Value>,
    ) -> Result<Vec<Row>, JournalError> {
        match &self.fence {
            Some(fence) => Ok(self.under_lease(fence.held()?, &[(sql, args)]).await?.1),
            None => self.rows_async(sql, args).await,
        }
    }

    /// Starts a run and returns its id.
    pub fn begin_run(&self) -> Result<i64, JournalError> {
        postgres::block_on(self.begin_run_async())
    }

    /// [`Journal::begin_run`], awaited, as [`Journal::record_mail_done_async`].
    pub async fn begin_run_async(&self) -> Result<i64, JournalError> {
        let row = self
            .write_returning_async(
                "INSERT INTO runs (started_at, status) VALUES (?1, 'running') RETURNING id",
                args![now()],
            )
            .await?
            .into_iter()
            .next();
        row.ok_or(JournalError::Column { index: 0 })?.int(0)
    }

    /// Closes a run with its status (`finished`, `stopped`, `failed`) and summary JSON.
    pub fn finish_run(&self, run: i64, status: &str, summary: &str) -> Result<(), JournalError> {
        postgres::block_on(self.finish_run_async(run, status, summary))
    }

    /// [`Journal::finish_run`], awaited, as [`Journal::record_mail_done_async`].
    pub async fn finish_run_async(
        &self,
        run: i64,
        status: &str,
        summary: &str,
    ) -> Result<(), JournalError> {
        self.exec_async(
            "UPDATE runs SET finished_at = ?2, status = ?3, summary = ?4 WHERE id = ?1",
            args![run, now(), status, summary],
        )
        .await?;
        Ok(())
    }

    /// Records a user's state (`started`, `finished`, `failed`).
    pub fn set_user_state(
        &self,
        user_id: &str,
        address: &str,
        state: &str,
    ) -> Result<(), JournalError> {
        postgres::block_on(self.set_user_state_async(user_id, address, state))
    }

    /// [`Journal::set_user_state`], awaited, as [`Journal::record_mail_done_async`].
    pub async fn set_user_state_async(
        &self,
        user_id: &str,
        address: &str,
        state: &str,
    ) -> Result<(), JournalError> {
        self.exec_async(
            "INSERT INTO users (user_id, address, state, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (user_id) DO UPDATE SET address = ?2, state = ?3, updated_at = ?4",
            args![user_id, address, state, now()],
        )
        .await?;
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
        postgres::block_on(self.set_user_note_async(user_id, address, note))
    }

    /// [`Journal::set_user_note`], awaited, as [`Journal::record_mail_done_async`].
    pub async fn set_user_note_async(
        &self,
        user_id: &str,
        address: &str,
        note: Option<&str>,
    ) -> Result<(), JournalError> {
        self.exec_async(
            "INSERT INTO users (user_id, address, state, updated_at, note)
             VALUES (?1, ?2, 'pending', ?3, ?4)
             ON CONFLICT (user_id) DO UPDATE SET note = ?4",
            args![user_id, address, now(), note],
        )
        .await?;
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
        let recorded = self.set_user_destination_async(user_id, address, kind, destination);
        postgres::block_on(recorded)
    }

    /// [`Journal::set_user_destination`], awaited, as [`Journal::record_mail_done_async`].
    pub async fn set_user_destination_async(
        &self,
        user_id: &str,
        address: &str,
        kind: &str,
        destination: &str,
    ) -> Result<(), JournalError> {
        self.exec_async(
            "INSERT INTO users (user_id, address, state, updated_at, kind, destination)
             VALUES (?1, ?2, 'pending', ?3, ?4, ?5)
             ON CONFLICT (user_id) DO UPDATE SET kind = ?4,
               destination = CASE WHEN users.destination = ?6 THEN users.destination ELSE ?5 END",
            args![user_id, address, now(), kind, destination, ACCOUNT_CREATED],
        )
        .await?;
        Ok(())
    }

    /// The recorded state of one item, if any.
    pub fn item(&self, user_id: &str, source_id: &str) -> Result<Option<ItemRecord>, JournalError> {
        self.first(
            &format!("SELECT {ITEM_COLUMNS} FROM items WHERE user_id = ?1 AND source_id = ?2"),
            args![user_id, source_id],
        )?
        .map(|r| row_to_item(&r))
        .transpose()
    }

    /// The recorded items among `source_ids` of one user, by source id (one statement per
    /// [`IDS_PER_LOOKUP`] ids): what a page of listed items needs to know, asked once.
    pub fn items_by_id(
        &self,
        user_id: &str,
        source_ids: &[&str],
    ) -> Result<std::collections::HashMap<String, ItemRecord>, JournalError> {
        postgres::block_on(self.items_by_id_async(user_id, source_ids))
    }

    /// [`Journal::items_by_id`], awaited, as [`Journal::record_mail_done_async`].
    pub async fn items_by_id_async(
        &self,
        user_id: &str,
        source_ids: &[&str],
    ) -> Result<std::collections::HashMap<String, ItemRecord>, JournalError> {
        let places: Vec<String> = (2..IDS_PER_LOOKUP + 2).map(|i| format!("?{i}")).collect();
        let filter = format!(
            "WHERE user_id = ?1 AND source_id IN ({})",
            places.join(", ")
        );
        let mut found = std::collections::HashMap::new();
        for chunk in source_ids.chunks(IDS_PER_LOOKUP) {
            let mut args = args![user_id];
            args.extend(chunk.iter().map(|id| Value::from(*id)));
            // No source id is empty (Graph's ids never are).
            args.resize(IDS_PER_LOOKUP + 1, Value::from(""));
            for item in self.select_items_async(&filter, args).await? {
                found.insert(item.source_id.clone(), item);
            }
        }
        Ok(found)
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
        postgres::block_on(self.record_intent_as_async(kind, target, run))
    }

    /// [`Journal::record_intent_as`], awaited, as [`Journal::record_mail_done_async`]: the
    /// intent is recorded when it returns.
    pub async fn record_intent_as_async(
        &self,
        kind: &str,
        target: ItemTarget<'_>,
        run: i64,
    ) -> Result<(), JournalError> {
        self.intents(RECORD_INTENT, kind, &[target], run).await
    }

    /// [`Journal::record_intent_as`] for several items (a page of them) in one transaction:
    /// every intent is recorded when the call returns, so each item may then be written. On
    /// PostgreSQL that is one round trip, whatever the number of items. Unlike a single
    /// intent, a planned one does not say the write began: a copy found at the destination
    /// after a crash counts as found, never as the migrator's ([`ItemRecord::created`]
    /// false), so mirror deletions never remove mail that may predate the migration.
    pub fn record_intents(
        &self,
        kind: &str,
        targets: &[ItemTarget<'_>],
        run: i64,
    ) -> Result<(), JournalError> {
        postgres::block_on(self.record_intents_async(kind, targets, run))
    }

    /// [`Journal::record_intents`], awaited, as [`Journal::record_mail_done_async`]: every
    /// intent is recorded when it returns.
    pub async fn record_intents_async(
        &self,
        kind: &str,
        targets: &[ItemTarget<'_>],
        run: i64,
    ) -> Result<(), JournalError> {
        self.intents(RECORD_PLANNED_INTENT, kind, targets, run)
            .await
    }

    async fn intents(
        &self,
        sql: &'static str,
        kind: &str,
        targets: &[ItemTarget<'_>],
        run: i64,
    ) -> Result<(), JournalError> {
        let at = now();
        let statements: Vec<(&str, Vec<Value>)> = targets
            .iter()
            .map(|target| (sql, intent_args(target, kind, run, at)))
            .collect();
        self.together_async(&statements).await
    }

    /// `statements` in one transaction (a single one alone, none not at all), awaited.
    async fn together_async(&self, statements: &[(&str, Vec<Value>)]) -> Result<(), JournalError> {
        match statements {
            [] => Ok(()),
            [(sql, args)] => self.exec_async(sql, args.clone()).await.map(|_| ()),
            _ => self.transaction_async(statements).await,
        }
    }

    /// [`Journal::together_async`] for statements that touch different rows and read nothing
    /// another writes: on PostgreSQL one statement, one message to the server instead of one
    /// per statement plus `BEGIN`, the lease's guard and `COMMIT` (issue 18).
    async fn at_once_async(&self, statements: &[(&str, Vec<Value>)]) -> Result<(), JournalError> {
        if statements.is_empty() {
            return Ok(());
        }
        match (&*self.backend, &self.fence) {
            (Backend::Postgres(_), Some(fence)) => {
                self.at_once_under_lease(fence.held()?, statements).await
            }
            (Backend::Postgres(p), None) => p.guarded_at_once(None, statements).await.map(|_| ()),
            (Backend::Sqlite(_), _) => self.together_async(statements).await,
        }
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
        postgres::block_on(self.exec_durable(
            RECORD_DONE,
            args![user_id, source_id, dest_ref, size as i64, hash, now()],
        ))?;
        Ok(())
    }

    /// [`Journal::record_done`] of a groupware item (see [`GroupwareDone`]), in one
    /// statement: its source version, its ETag and whether its copy was found at the
    /// destination are only meaningful together with "done".
    pub fn record_done_at_version(
        &self,
        user_id: &str,
        source_id: &str,
        done: &GroupwareDone<'_>,
    ) -> Result<(), JournalError> {
        postgres::block_on(self.record_done_at_version_async(user_id, source_id, done))
    }

    /// [`Journal::record_done_at_version`], awaited, as [`Journal::record_mail_done_async`].
    pub async fn record_done_at_version_async(
        &self,
        user_id: &str,
        source_id: &str,
        done: &GroupwareDone<'_>,
    ) -> Result<(), JournalError> {
        self.exec_durable(
            "UPDATE items SET state = 'done', dest_ref = ?3, size = ?4, hash = ?5,
                              reason = NULL, moved_from = NULL, updated_at = ?6,
                              source_version = ?7, etag = ?8,
                              created = CASE WHEN ?9 = 1 THEN 0 ELSE created END
             WHERE user_id = ?1 AND source_id = ?2",
            args![
                user_id,
                source_id,
                done.dest_ref,
                done.size as i64,
                done.hash,
                now(),
                done.version,
                done.etag,
                i64::from(done.found)
            ],
        )
        .await?;
        Ok(())
    }

    /// Records, in one transaction (on PostgreSQL one round trip), what a page of groupware
    /// items of `kind` needs before any of its items is written (see [`PageRecords`]): when
    /// it returns, each intent is recorded, so each of those items may be written.
    pub async fn record_page_async(
        &self,
        kind: &str,
        page: &PageRecords<'_>,
        run: i64,
    ) -> Result<(), JournalError> {
        let at = now();
        let mut statements: Vec<(&str, Vec<Value>)> = Vec::new();
        for (target, _) in &page.intents {
            statements.push((RECORD_INTENT, intent_args(target, kind, run, at)));
        }
        // After the intents: an item's row exists for the updates below.
        for (target, moved_from) in &page.intents {
            if let Some(from) = moved_from {
                let json = serde_json::to_string(from).unwrap_or_default();
                statements.push((
                    RECORD_MOVED_FROM,
                    args![target.user_id, target.source_id, json],
                ));
            }
        }
        for (source_id, version) in &page.versions {
            let args = args![page.user_id, *source_id, *version];
            statements.push((RECORD_SOURCE_VERSION, args));
        }
        for (source_id, absent_at) in &page.no_photo_at {
            let args = args![page.user_id, *source_id, *absent_at];
            statements.push((RECORD_NO_PHOTO_AT, args));
        }
        self.together_async(&statements).await
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
        self.exec(RECORD_MOVED_FROM, args![user_id, source_id, json])?;
        Ok(())
    }

    /// Records the source's version of an item (see [`ItemRecord::source_version`]).
    pub fn record_source_version(
        &self,
        user_id: &str,
        source_id: &str,
        version: Option<&str>,
    ) -> Result<(), JournalError> {
        self.set_item_text(RECORD_SOURCE_VERSION, user_id, source_id, version)
    }

    /// Sets one text column of an item's record with `sql` (one of this file's statements
    /// taking user, source id and the value).
    fn set_item_text(
        &self,
        sql: &'static str,
        user_id: &str,
        source_id: &str,
        value: Option<&str>,
    ) -> Result<(), JournalError> {
        self.exec(sql, args![user_id, source_id, value])?;
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
        self.set_item_text(RECORD_NO_PHOTO_AT, user_id, source_id, version)
    }

    /// The source version at which the contact had no photo ([`Journal::record_no_photo_at`]).
    pub fn no_photo_at(
        &self,
        user_id: &str,
        source_id: &str,
    ) -> Result<Option<String>, JournalError> {
        self.first(
            "SELECT no_photo_at FROM items WHERE user_id = ?1 AND source_id = ?2",
            args![user_id, source_id],
        )?
        .map_or(Ok(None), |r| r.opt_text(0))
    }

    /// Records that the item could not be migrated, with the reason (retried on the next run).
    pub fn record_failed(
        &self,
        user_id: &str,
        source_id: &str,
        reason: &str,
    ) -> Result<(), JournalError> {
        self.exec(
            "UPDATE items SET state = 'failed', reason = ?3, updated_at = ?4
             WHERE user_id = ?1 AND source_id = ?2",
            args![user_id, source_id, reason, now()],
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
        self.exec(
            "UPDATE items SET subject = COALESCE(?3, subject), received = COALESCE(?4, received),
                              size = COALESCE(?5, size)
             WHERE user_id = ?1 AND source_id = ?2",
            args![user_id, source_id, subject, date, size.map(|s| s as i64)],
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
        self.select_items(
            "WHERE user_id = ?1 AND state = ?2",
            args![user_id, state_name(&state)],
        )
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

    /// [`Journal::set_folder`], awaited, as [`Journal::record_mail_done_async`].
    pub async fn set_folder_async(
        &self,
        user_id: &str,
        folder_id: &str,
        dest_name: &str,
        delta_link: Option<&str>,
    ) -> Result<(), JournalError> {
        self.set_folder_as_async("mail", user_id, folder_id, dest_name, delta_link)
            .await
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
        let recorded = self.set_folder_as_async(kind, user_id, folder_id, dest_name, delta_link);
        postgres::block_on(recorded)
    }

    /// [`Journal::set_folder_as`], awaited, as [`Journal::record_mail_done_async`].
    pub async fn set_folder_as_async(
        &self,
        kind: &str,
        user_id: &str,
        folder_id: &str,
        dest_name: &str,
        delta_link: Option<&str>,
    ) -> Result<(), JournalError> {
        self.exec_async(
            SET_FOLDER,
            args![user_id, folder_id, dest_name, delta_link, kind],
        )
        .await?;
        Ok(())
    }

    /// [`Journal::set_folder`] without a new link, returning the folder's stored delta link
    /// ([`Journal::delta_link`]) in the same statement: a mail folder's round begins with one
    /// round trip, not two (issue 18).
    pub async fn set_folder_reading_link_async(
        &self,
        user_id: &str,
        folder_id: &str,
        dest_name: &str,
    ) -> Result<Option<String>, JournalError> {
        let sql = format!("{SET_FOLDER} RETURNING delta_link");
        let none: Option<&str> = None;
        let rows = self
            .write_returning_async(&sql, args![user_id, folder_id, dest_name, none, "mail"])
            .await?;
        rows.first().map_or(Ok(None), |r| r.opt_text(0))
    }

    /// Ends a complete round of mail folder `folder_id` in `run`, in one transaction: after a
    /// full round, its items the round did not list are gone ([`Journal::mark_unseen_gone`]);
    /// the round's delta link, if any, is stored ([`Journal::set_folder`]).
    pub async fn end_folder_round_async(
        &self,
        (user_id, folder_id, dest_name): (&str, &str, &str),
        run: i64,
        full: bool,
        delta_link: Option<&str>,
    ) -> Result<(), JournalError> {
        let mut statements = Vec::new();
        if full {
            statements.push((MARK_UNSEEN_GONE, args![user_id, folder_id, now(), run]));
        }
        if let Some(link) = delta_link {
            let args = args![user_id, folder_id, dest_name, link, "mail"];
            statements.push((SET_FOLDER, args));
        }
        // The folder's row and its items' rows: different rows, different tables.
        self.at_once_async(&statements).await
    }

    /// The stored delta links of `user_id`'s folders and collections, by id, in one call
    /// ([`Journal::delta_link`] of each). Whatever their kind: a journal from before kinds
    /// were recorded holds its collections' links as `mail`.
    pub async fn delta_links_async(
        &self,
        user_id: &str,
    ) -> Result<Vec<(String, String)>, JournalError> {
        self.rows_async(
            "SELECT folder_id, delta_link FROM folders
             WHERE user_id = ?1 AND delta_link IS NOT NULL",
            args![user_id],
        )
        .await?
        .iter()
        .map(|r| Ok((r.text(0)?, r.text(1)?)))
        .collect()
    }

    /// A folder's stored delta link, for the next incremental pass.
    pub fn delta_link(
        &self,
        user_id: &str,
        folder_id: &str,
    ) -> Result<Option<String>, JournalError> {
        postgres::block_on(self.delta_link_async(user_id, folder_id))
    }

    /// [`Journal::delta_link`], awaited, as [`Journal::record_mail_done_async`].
    pub async fn delta_link_async(
        &self,
        user_id: &str,
        folder_id: &str,
    ) -> Result<Option<String>, JournalError> {
        let rows = self
            .rows_async(
                "SELECT delta_link FROM folders WHERE user_id = ?1 AND folder_id = ?2",
                args![user_id, folder_id],
            )
            .await?;
        rows.first().map_or(Ok(None), |r| r.opt_text(0))
    }
}

/// Records a folder's destination name, kind and delta link (`NULL` keeps the stored one).
const SET_FOLDER: &str = "INSERT INTO folders (user_id, folder_id, dest_name, delta_link, kind)
     VALUES (?1, ?2, ?3, ?4, ?5)
     ON CONFLICT (user_id, folder_id) DO UPDATE
       SET dest_name = ?3, delta_link = COALESCE(?4, folders.delta_link), kind = ?5";

/// Marks the mail items of a folder not seen in a run as gone from it.
const MARK_UNSEEN_GONE: &str = "UPDATE items SET gone_from = folder_id, updated_at = ?3
     WHERE user_id = ?1 AND folder_id = ?2 AND kind = 'mail'
       AND state IN ('done', 'removed') AND seen_run IS DISTINCT FROM ?4";

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
        postgres::block_on(self.record_mail_done_async(user_id, source_id, done))
    }

    /// [`Journal::record_mail_done`], awaited: on PostgreSQL the caller holds no thread
    /// until the record is committed (issue 18).
    pub async fn record_mail_done_async(
        &self,
        user_id: &str,
        source_id: &str,
        done: MailDone<'_>,
    ) -> Result<(), JournalError> {
        let d = done.details;
        self.exec_durable(
            "UPDATE items SET state = 'done', dest_ref = ?3, size = ?4, hash = ?5, reason = NULL,
                              message_id = ?6, header_hash = ?7, received = ?8, flags = ?9,
                              created = ?10, gone_from = NULL, seen_run = ?11, updated_at = ?12
             WHERE user_id = ?1 AND source_id = ?2",
            args![
                user_id,
                source_id,
                done.dest_ref,
                done.size as i64,
                done.hash,
                &d.message_id,
                &d.header_hash,
                d.received,
                &d.flags,
                i64::from(done.created),
                done.run,
                now()
            ],
        )
        .await?;
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
        postgres::block_on(self.exec_durable(
            "UPDATE items SET folder_id = ?3, dest_folder = ?4, dest_ref = ?5, state = 'done',
                              gone_from = NULL, seen_run = ?6, updated_at = ?7
             WHERE user_id = ?1 AND source_id = ?2",
            args![
                target.user_id,
                target.source_id,
                target.folder_id,
                target.dest_folder,
                dest_ref,
                run,
                now()
            ],
        ))?;
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
        postgres::block_on(self.exec_durable(
            "UPDATE items SET flags = ?3, dest_ref = ?4, updated_at = ?5
             WHERE user_id = ?1 AND source_id = ?2",
            args![user_id, source_id, flags, dest_ref, now()],
        ))?;
        Ok(())
    }

    /// Notes that a round of `run` listed the item in its folder: it is not gone (and an item
    /// recorded as removed at the source is migrated again).
    pub fn mark_seen(&self, user_id: &str, source_id: &str, run: i64) -> Result<(), JournalError> {
        self.exec(
            "UPDATE items SET seen_run = ?3, gone_from = NULL,
                              state = CASE state WHEN 'removed' THEN 'done' ELSE state END
             WHERE user_id = ?1 AND source_id = ?2",
            args![user_id, source_id, run],
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
        self.exec(
            "UPDATE items SET gone_from = ?3, updated_at = ?4
             WHERE user_id = ?1 AND source_id = ?2 AND folder_id = ?3",
            args![user_id, source_id, folder_id, now()],
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
        postgres::block_on(self.mark_unseen_gone_async(user_id, folder_id, run))
    }

    /// [`Journal::mark_unseen_gone`], awaited, as [`Journal::record_mail_done_async`].
    pub async fn mark_unseen_gone_async(
        &self,
        user_id: &str,
        folder_id: &str,
        run: i64,
    ) -> Result<usize, JournalError> {
        let changed = self
            .exec_async(MARK_UNSEEN_GONE, args![user_id, folder_id, now(), run])
            .await?;
        Ok(changed as usize)
    }

    /// Marks every mail item of a source folder that no longer exists as gone.
    pub fn mark_folder_gone(&self, user_id: &str, folder_id: &str) -> Result<(), JournalError> {
        self.exec(
            "UPDATE items SET gone_from = folder_id, updated_at = ?3
             WHERE user_id = ?1 AND folder_id = ?2 AND kind = 'mail'",
            args![user_id, folder_id, now()],
        )?;
        Ok(())
    }

    /// Mail items reported gone and not found in another folder since: deleted at the source.
    pub fn gone_items(&self, user_id: &str) -> Result<Vec<ItemRecord>, JournalError> {
        self.select_items(
            "WHERE user_id = ?1 AND kind = 'mail' AND gone_from IS NOT NULL
               AND gone_from = folder_id",
            args![user_id],
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
        postgres::block_on(self.items_of_kind_in_folder_async(user_id, folder_id, kind, state))
    }

    /// [`Journal::items_of_kind_in_folder`], awaited, as [`Journal::record_mail_done_async`].
    pub async fn items_of_kind_in_folder_async(
        &self,
        user_id: &str,
        folder_id: &str,
        kind: &str,
        state: ItemState,
    ) -> Result<Vec<ItemRecord>, JournalError> {
        self.select_items_async(
            "WHERE user_id = ?1 AND folder_id = ?2 AND kind = ?3 AND state = ?4",
            args![user_id, folder_id, kind, state_name(&state)],
        )
        .await
    }

    /// Records the ETag a DAV resource had right after the migrator wrote it (`None`: the
    /// server gave none).
    pub fn record_etag(
        &self,
        user_id: &str,
        source_id: &str,
        etag: Option<&str>,
    ) -> Result<(), JournalError> {
        self.set_item_text(RECORD_ETAG, user_id, source_id, etag)
    }

    /// Records that the item's destination copy existed before the migration (the write
    /// updated it): incremental passes never delete it.
    pub fn mark_found(&self, user_id: &str, source_id: &str) -> Result<(), JournalError> {
        self.exec(
            "UPDATE items SET created = 0 WHERE user_id = ?1 AND source_id = ?2",
            args![user_id, source_id],
        )?;
        Ok(())
    }

    /// The items matching `filter` (a `WHERE` clause over `args`), by source id.
    fn select_items(
        &self,
        filter: &str,
        args: Vec<Value>,
    ) -> Result<Vec<ItemRecord>, JournalError> {
        postgres::block_on(self.select_items_async(filter, args))
    }

    /// [`Journal::select_items`], awaited.
    async fn select_items_async(
        &self,
        filter: &str,
        args: Vec<Value>,
    ) -> Result<Vec<ItemRecord>, JournalError> {
        self.rows_async(
            &format!("SELECT {ITEM_COLUMNS} FROM items {filter} ORDER BY source_id"),
            args,
        )
        .await?
        .iter()
        .map(row_to_item)
        .collect()
    }

    /// Records that the item was deleted at the source and its destination copy kept.
    pub fn record_removed(&self, user_id: &str, source_id: &str) -> Result<(), JournalError> {
        self.exec(
            "UPDATE items SET state = 'removed', gone_from = NULL, updated_at = ?3
             WHERE user_id = ?1 AND source_id = ?2",
            args![user_id, source_id, now()],
        )?;
        Ok(())
    }

    /// Forgets an item (deleted at the source and at the destination).
    pub fn forget(&self, user_id: &str, source_id: &str) -> Result<(), JournalError> {
        self.exec(
            "DELETE FROM items WHERE user_id = ?1 AND source_id = ?2",
            args![user_id, source_id],
        )?;
        Ok(())
    }

    /// Every mail folder recorded for a user: (source folder id, destination name).
    pub fn folders_of(&self, user_id: &str) -> Result<Vec<(String, String)>, JournalError> {
        postgres::block_on(self.folders_of_async(user_id))
    }

    /// [`Journal::folders_of`], awaited, as [`Journal::record_mail_done_async`].
    pub async fn folders_of_async(
        &self,
        user_id: &str,
    ) -> Result<Vec<(String, String)>, JournalError> {
        self.rows_async(
            "SELECT folder_id, dest_name FROM folders WHERE user_id = ?1 AND kind = 'mail'
             ORDER BY folder_id",
            args![user_id],
        )
        .await?
        .iter()
        .map(|r| Ok((r.text(0)?, r.text(1)?)))
        .collect()
    }

    /// Forgets a folder that no longer exists at the source (and its delta link).
    pub fn forget_folder(&self, user_id: &str, folder_id: &str) -> Result<(), JournalError> {
        self.exec(
            "DELETE FROM folders WHERE user_id = ?1 AND folder_id = ?2",
            args![user_id, folder_id],
        )?;
        Ok(())
    }

    /// The date limits (their [`crate::config::DateLimits::fingerprint`]) the user's mail
    /// delta links were taken under; `None` before the first pass.
    pub fn user_limits(&self, user_id: &str) -> Result<Option<String>, JournalError> {
        postgres::block_on(self.user_limits_async(user_id))
    }

    /// [`Journal::user_limits`], awaited, as [`Journal::record_mail_done_async`].
    pub async fn user_limits_async(&self, user_id: &str) -> Result<Option<String>, JournalError> {
        let rows = self
            .rows_async(
                "SELECT limits FROM user_limits WHERE user_id = ?1",
                args![user_id],
            )
            .await?;
        rows.first().map_or(Ok(None), |r| r.opt_text(0))
    }

    /// Records new date limits for a user and drops the user's delta links in the same
    /// transaction: the next round of every folder is a full one, which lists what the new
    /// limits let in (a delta link would only bring what changed).
    pub fn set_user_limits(&self, user_id: &str, limits: &str) -> Result<(), JournalError> {
        postgres::block_on(self.set_user_limits_async(user_id, limits))
    }

    /// [`Journal::set_user_limits`], awaited, as [`Journal::record_mail_done_async`].
    pub async fn set_user_limits_async(
        &self,
        user_id: &str,
        limits: &str,
    ) -> Result<(), JournalError> {
        // The user's folders' rows and the user's limits' row: different tables.
        self.at_once_async(&[
            (
                "UPDATE folders SET delta_link = NULL WHERE user_id = ?1",
                args![user_id],
            ),
            (
                "INSERT INTO user_limits (user_id, limits) VALUES (?1, ?2)
                 ON CONFLICT (user_id) DO UPDATE SET limits = ?2",
                args![user_id, limits],
            ),
        ])
        .await
    }

    /// Drops a folder's delta link (Graph answered 410: the next round starts over).
    pub fn clear_delta_link(&self, user_id: &str, folder_id: &str) -> Result<(), JournalError> {
        self.exec(
            "UPDATE folders SET delta_link = NULL WHERE user_id = ?1 AND folder_id = ?2",
            args![user_id, folder_id],
        )?;
        Ok(())
    }
}

/// The arguments of [`RECORD_INTENT`] and [`RECORD_PLANNED_INTENT`] for `target`.
fn intent_args(target: &ItemTarget<'_>, kind: &str, run: i64, at: i64) -> Vec<Value> {
    args![
        target.user_id,
        target.source_id,
        target.folder_id,
        target.dest_folder,
        run,
        at,
        kind
    ]
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
     moved_from, etag, no_photo_at";

fn row_to_item(row: &Row) -> Result<ItemRecord, JournalError> {
    Ok(ItemRecord {
        source_id: row.text(0)?,
        folder_id: row.text(1)?,
        dest_folder: row.text(2)?,
        state: match row.text(3)?.as_str() {
            "done" => ItemState::Done,
            "failed" => ItemState::Failed,
            "removed" => ItemState::Removed,
            _ => ItemState::Pending,
        },
        dest_ref: row.opt_text(4)?,
        size: row.opt_int(5)?.map(|s| s.max(0) as u64),
        hash: row.opt_text(6)?,
        reason: row.opt_text(7)?,
        kind: row.text(8)?,
        mail: MailDetails {
            message_id: row.opt_text(9)?,
            header_hash: row.opt_text(10)?,
            received: row.opt_int(11)?,
            flags: row.opt_text(12)?,
        },
        created: row.int(13)? != 0,
        gone_from: row.opt_text(14)?,
        source_version: row.opt_text(15)?,
        // Unreadable JSON (not written by this version) is no move to finish.
        moved_from: row
            .opt_text(16)?
            .and_then(|json| serde_json::from_str(&json).ok()),
        etag: row.opt_text(17)?,
        no_photo_at: row.opt_text(18)?,
    })
}

/// SQLite-only behaviour; the contract both backends keep is tested in
/// `tests/journal_backends.rs`.
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
    fn a_done_record_is_on_disk_when_the_call_returns() {
        // NORMAL in WAL mode syncs only at checkpoints: a power cut could drop "done" records
        // whose items the destination has. Those records are synced before the call returns.
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        let count =
            |c: &std::sync::atomic::AtomicUsize| c.load(std::sync::atomic::Ordering::Relaxed);
        let durable = || count(&j.sqlite().durable_commits);
        let syncs = || count(&j.sqlite().wal_syncs);
        let before = (durable(), syncs());
        let run = j.begin_run().unwrap();
        j.record_intent(target("m1"), run).unwrap();
        assert_eq!((durable(), syncs()), before, "an intent need not be synced");
        j.record_done("u1", "m1", "1", 10, None).unwrap();
        assert_eq!((durable(), syncs()), (before.0 + 1, before.1 + 1));
        j.record_flags("u1", "m1", "S", "1").unwrap();
        j.record_moved(target("m1"), "2", run).unwrap();
        assert_eq!((durable(), syncs()), (before.0 + 3, before.1 + 3));
        let synchronous: i64 = j
            .sqlite()
            .conn()
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(synchronous, 1, "NORMAL: the sync is the journal's own");
    }

    #[test]
    fn regression_a_done_record_synced_on_the_runtime_thread_that_awaits_it() {
        // Issue 17: the WAL sync (or the wait for another caller's) ran on the runtime worker
        // awaiting the record, so each disk flush stalled every mailbox queued on that worker.
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        let run = j.begin_run().unwrap();
        j.record_intent(target("m1"), run).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let done = GroupwareDone {
            dest_ref: "1",
            size: 10,
            ..GroupwareDone::default()
        };
        runtime
            .block_on(j.record_done_at_version_async("u1", "m1", &done))
            .unwrap();
        let threads: Vec<_> = j
            .sqlite()
            .syncs_seen
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.1)
            .collect();
        assert_eq!(
            threads.len(),
            1,
            "the record is synced before the call returns"
        );
        assert_ne!(threads[0], std::thread::current().id());
        let item = j.item("u1", "m1").unwrap().unwrap();
        assert_eq!(
            (item.state, item.dest_ref.as_deref()),
            (ItemState::Done, Some("1"))
        );
    }

    #[test]
    fn regression_every_done_record_synced_while_holding_the_journal_lock() {
        // Issue 17: each "done" committed with FULL, its fsync under the one connection's
        // lock, so every item of a tenant run queued behind every other's disk sync.
        let dir = tempfile::tempdir().unwrap();
        let j = std::sync::Arc::new(Journal::open(dir.path()).unwrap());
        let run = j.begin_run().unwrap();
        j.record_intent(target("m0"), run).unwrap();
        j.record_done("u1", "m0", "1", 10, None).unwrap();
        // One thread: nothing else can hold the lock while its record is synced.
        let free: Vec<_> = j
            .sqlite()
            .syncs_seen
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.0)
            .collect();
        assert_eq!(
            free,
            [true],
            "the connection's lock was held during the sync"
        );
        // Concurrent records: every one done, never more syncs than records.
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let j = std::sync::Arc::clone(&j);
                std::thread::spawn(move || {
                    for i in 0..25 {
                        let id = format!("m{t}-{i}");
                        j.record_intent(target(&id), run).unwrap();
                        j.record_done("u1", &id, "1", 10, None).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let syncs = j
            .sqlite()
            .wal_syncs
            .load(std::sync::atomic::Ordering::Relaxed);
        assert!(syncs <= 101, "at most one sync per done record");
        for t in 0..4 {
            for i in 0..25 {
                let item = j.item("u1", &format!("m{t}-{i}")).unwrap().unwrap();
                assert_eq!(item.state, ItemState::Done);
            }
        }
    }

    #[test]
    fn a_version_1_journal_is_upgraded_and_keeps_its_items() {
        let dir = tempfile::tempdir().unwrap();
        {
            let conn = rusqlite::Connection::open(dir.path().join(Journal::FILE_NAME)).unwrap();
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
            .sqlite()
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
    fn a_journal_without_moved_from_opens_and_gains_the_column() {
        // What a move does with the column is in the contract suite (tests/journal_backends.rs).
        let dir = tempfile::tempdir().unwrap();
        {
            let j = Journal::open(dir.path()).unwrap();
            let run = j.begin_run().unwrap();
            j.record_intent_as("contact", target("c1"), run).unwrap();
            j.record_done("u1", "c1", "c1.vcf", 3, Some("h")).unwrap();
            // As the previous version left it: no such column.
            j.sqlite()
                .conn()
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
        j.record_moved_from("u1", "c1", &from).unwrap();
        assert_eq!(j.item("u1", "c1").unwrap().unwrap().moved_from, Some(from));
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
