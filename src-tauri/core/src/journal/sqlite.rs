//! The embedded backend: one SQLite file in the state folder, one connection behind a mutex.
//! Each call is its own transaction; the WAL journal makes it crash-safe. Records that say an
//! item is done are synced to disk before their call returns, several per sync ([`GroupSync`]).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::types::ValueRef;
use rusqlite::{params, Connection};

use super::sql::{Row, Value};
use super::{
    check_writable, create_state_folder, JournalError, ADDED_COLUMNS, ITEMS_V2, MIGRATE_V1,
    MIGRATE_V1_COPY, SCHEMA, SCHEMA_VERSION,
};

#[derive(Debug)]
pub(super) struct SqliteStore {
    pub path: PathBuf,
    conn: Mutex<Connection>,
    group: GroupSync,
    /// Commits made through [`SqliteStore::execute`] with `durable`, for the tests.
    #[cfg(test)]
    pub durable_commits: std::sync::atomic::AtomicUsize,
    /// WAL syncs made for them, for the tests.
    #[cfg(test)]
    pub wal_syncs: std::sync::atomic::AtomicUsize,
    /// Each WAL sync: whether the connection's lock was free meanwhile, and its thread, for
    /// the tests.
    #[cfg(test)]
    pub syncs_seen: Mutex<Vec<(bool, std::thread::ThreadId)>>,
}

/// Group commit for records that say an item is done: each commits with `synchronous =
/// NORMAL` under the connection's lock, then waits, without the lock, until the WAL file
/// holding its commit has been synced. One sync covers every commit made before it started,
/// so concurrent "done" records share one fsync instead of queueing one each behind the lock
/// (issue 17: 42,742 items of a tenant run through one connection). A WAL's commits are
/// replayed in order up to the last complete one
/// (<https://www.sqlite.org/wal.html#the_wal_file>), so a record synced this way survives a
/// power cut together with every record committed before it, as with FULL, which syncs the
/// WAL at each commit (<https://www.sqlite.org/pragma.html#pragma_synchronous>). A lost
/// "done" whose item the destination holds would make the next run re-check it at best; the
/// destination synced its side first (see `private_files::sync_dir`).
#[derive(Debug, Default)]
struct GroupSync {
    state: Mutex<SyncState>,
    synced: std::sync::Condvar,
}

#[derive(Debug, Default)]
struct SyncState {
    /// Durable commits made, counted under the connection's lock.
    committed: u64,
    /// Commits known on disk.
    synced: u64,
    /// A sync is running (its leader syncs every commit counted when it started).
    syncing: bool,
}

fn bind(args: &[Value]) -> Vec<rusqlite::types::Value> {
    args.iter()
        .map(|v| match v {
            Value::Null => rusqlite::types::Value::Null,
            Value::Int(i) => rusqlite::types::Value::Integer(*i),
            Value::Text(t) => rusqlite::types::Value::Text(t.clone()),
        })
        .collect()
}

impl SqliteStore {
    /// Opens (or creates) the journal in `state_dir`, creating the folder with mode 0700.
    /// Checks integrity and that it can write, and upgrades an older schema.
    pub fn open(state_dir: &Path) -> Result<Self, JournalError> {
        create_state_folder(state_dir)?;
        check_writable(state_dir)?;
        let path = state_dir.join(super::Journal::FILE_NAME);
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
            // synchronous = NORMAL; the records that say an item is done are synced after
            // their commit ([`GroupSync`]).
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
        Ok(SqliteStore {
            path,
            conn: Mutex::new(conn),
            group: GroupSync::default(),
            #[cfg(test)]
            durable_commits: Default::default(),
            #[cfg(test)]
            wal_syncs: Default::default(),
            #[cfg(test)]
            syncs_seen: Default::default(),
        })
    }

    pub fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A poisoned lock means a panic mid-call; SQLite rolled the statement back.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs one statement; returns the rows changed. A record that says an item is done goes
    /// through [`SqliteStore::commit_durable`] instead.
    pub fn execute(&self, sql: &str, args: &[Value]) -> Result<u64, JournalError> {
        let conn = self.conn();
        Ok(conn.execute(sql, rusqlite::params_from_iter(bind(args)))? as u64)
    }

    /// Commits a record that says an item is done without waiting for the disk: returns the
    /// rows changed and the commit's number, on disk once [`SqliteStore::synced_through`] it
    /// returns ([`GroupSync`]).
    pub fn commit_durable(&self, sql: &str, args: &[Value]) -> Result<(u64, u64), JournalError> {
        let conn = self.conn();
        let changed = conn.execute(sql, rusqlite::params_from_iter(bind(args)))?;
        // Counted before the lock is released: a sync that starts later covers it.
        let commit = {
            let mut state = self.sync_state();
            state.committed += 1;
            state.committed
        };
        drop(conn);
        #[cfg(test)]
        self.durable_commits
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok((changed as u64, commit))
    }

    fn sync_state(&self) -> std::sync::MutexGuard<'_, SyncState> {
        self.group.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until durable commit number `commit` is on disk, syncing the WAL itself when no
    /// sync covering it is running.
    pub fn synced_through(&self, commit: u64) -> Result<(), JournalError> {
        let mut state = self.sync_state();
        loop {
            if state.synced >= commit {
                return Ok(());
            }
            if !state.syncing {
                break;
            }
            state = self
                .group
                .synced
                .wait(state)
                .unwrap_or_else(|p| p.into_inner());
        }
        state.syncing = true;
        let covers = state.committed;
        drop(state);
        let synced = self.sync_wal();
        let mut state = self.sync_state();
        state.syncing = false;
        if synced.is_ok() {
            state.synced = state.synced.max(covers);
        }
        drop(state);
        // Waiters whose commit this did not cover (or after a failure) sync again themselves.
        self.group.synced.notify_all();
        synced
    }

    /// Syncs the WAL file (fsync is per file, whichever descriptor asks). No WAL file means
    /// its commits were checkpointed into the database, which SQLite synced first.
    fn sync_wal(&self) -> Result<(), JournalError> {
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        let wal = PathBuf::from(wal);
        let unwritable = |source: std::io::Error| JournalError::Unwritable {
            path: wal.clone(),
            reason: format!("cannot sync it to disk: {source}"),
            source,
        };
        #[cfg(test)]
        {
            self.wal_syncs
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let free = self.conn.try_lock().is_ok();
            self.syncs_seen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((free, std::thread::current().id()));
        }
        // Opened for writing: Windows flushes a file only through a handle with write access
        // (FlushFileBuffers, which `sync_all` calls); no truncation, no creation.
        match std::fs::OpenOptions::new().write(true).open(&wal) {
            Ok(file) => file.sync_all().map_err(unwritable),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(unwritable(e)),
        }
    }

    pub fn query(&self, sql: &str, args: &[Value]) -> Result<Vec<Row>, JournalError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(sql)?;
        let width = stmt.column_count();
        let rows = stmt.query_map(rusqlite::params_from_iter(bind(args)), |r| {
            (0..width)
                .map(|i| {
                    Ok(match r.get_ref(i)? {
                        ValueRef::Null => Value::Null,
                        ValueRef::Integer(v) => Value::Int(v),
                        ValueRef::Real(v) => Value::Int(v as i64),
                        ValueRef::Text(t) | ValueRef::Blob(t) => {
                            Value::Text(String::from_utf8_lossy(t).into_owned())
                        }
                    })
                })
                .collect::<rusqlite::Result<Vec<_>>>()
                .map(Row)
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Runs the statements in one transaction.
    pub fn transaction(&self, statements: &[(&str, Vec<Value>)]) -> Result<(), JournalError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for (sql, args) in statements {
            tx.execute(sql, rusqlite::params_from_iter(bind(args)))?;
        }
        tx.commit()?;
        Ok(())
    }
}
