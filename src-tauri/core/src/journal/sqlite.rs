//! The embedded backend: one SQLite file in the state folder, one connection behind a mutex.
//! Each call is its own transaction; the WAL journal makes it crash-safe. Records that say an
//! item is done commit with `synchronous = FULL` ([`Durable`]).

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
    /// Commits made through [`SqliteStore::durable`], for the tests.
    #[cfg(test)]
    pub durable_commits: std::sync::atomic::AtomicUsize,
}

/// The connection, set to `synchronous = FULL` until dropped: in WAL mode NORMAL syncs only at
/// checkpoints, so a power cut may drop the last commits
/// (<https://www.sqlite.org/pragma.html#pragma_synchronous>); FULL syncs the WAL at commit.
/// A lost "done" whose item the destination holds would make the next run re-check it at
/// best; the destination synced its side first (see `private_files::sync_dir`).
pub(super) struct Durable<'a>(std::sync::MutexGuard<'a, Connection>);

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
            // synchronous = NORMAL for most records; the ones that say an item is done commit
            // with FULL ([`SqliteStore::durable`]).
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
            #[cfg(test)]
            durable_commits: Default::default(),
        })
    }

    pub fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A poisoned lock means a panic mid-call; SQLite rolled the statement back.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The connection for a record that says an item is done: its commit is synced to disk
    /// before the call returns ([`Durable`]).
    pub fn durable(&self) -> Result<Durable<'_>, JournalError> {
        let conn = self.conn();
        conn.execute_batch("PRAGMA synchronous = FULL")?;
        #[cfg(test)]
        self.durable_commits
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Durable(conn))
    }

    /// Runs one statement; `durable` as [`SqliteStore::durable`]. Returns the rows changed.
    pub fn execute(&self, sql: &str, args: &[Value], durable: bool) -> Result<u64, JournalError> {
        let args = rusqlite::params_from_iter(bind(args));
        let changed = if durable {
            self.durable()?.execute(sql, args)?
        } else {
            self.conn().execute(sql, args)?
        };
        Ok(changed as u64)
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
