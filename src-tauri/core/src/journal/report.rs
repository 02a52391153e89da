//! Read-only queries over the journal for reports and verification. They never change state.

use rusqlite::params;

use super::{Journal, JournalError};

/// One run as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    pub id: i64,
    /// Unix seconds.
    pub started_at: i64,
    pub finished_at: Option<i64>,
    /// `running` (or crashed while running), `finished`, `stopped`, `failed`.
    pub status: String,
    /// The run's summary as JSON ([`crate::progress::RunSummary`]), when it finished.
    pub summary: Option<String>,
}

/// One user as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub user_id: String,
    pub address: String,
    /// `started`, `finished`, `failed`, or why the user is not migrated (`guest, not
    /// migrated`, `no Exchange mailbox`).
    pub state: String,
    /// What the run leaves out of this user by design (an online archive).
    pub note: Option<String>,
    /// What the mailbox is: `user`, `shared`, `room`, `equipment` (recorded since issue 15).
    pub kind: Option<String>,
    /// What the migration made of it at the destination: `account created`, `merged into an
    /// existing account`, `local folder`.
    pub destination: Option<String>,
}

/// Item counts of one (user, workload, destination folder, state) group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemGroup {
    pub user_id: String,
    /// `mail`, `event`, `contact` or `task`.
    pub kind: String,
    pub dest_folder: String,
    /// `pending`, `done` or `failed`.
    pub state: String,
    pub count: u64,
    /// Sum of the recorded sizes (only `done` items have one).
    pub bytes: u64,
}

/// One failed item with its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedItem {
    pub user_id: String,
    /// `mail`, `event`, `contact` or `task`.
    pub kind: String,
    pub dest_folder: String,
    pub source_id: String,
    pub reason: String,
    /// What [`Journal::record_failure_details`] recorded, where known.
    pub subject: Option<String>,
    /// Unix seconds.
    pub date: Option<i64>,
    pub size: Option<u64>,
}

/// Items written in one minute of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinuteCount {
    /// Unix seconds of the minute's start.
    pub minute: i64,
    pub items: u64,
    pub bytes: u64,
}

/// When a user's items were written: the first and the last (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSpan {
    pub user_id: String,
    pub first: i64,
    pub last: i64,
}

impl Journal {
    /// Every run, oldest first.
    pub fn runs(&self) -> Result<Vec<RunRecord>, JournalError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT id, started_at, finished_at, status, summary FROM runs ORDER BY id")?;
        let rows = stmt.query_map([], |r| {
            Ok(RunRecord {
                id: r.get(0)?,
                started_at: r.get(1)?,
                finished_at: r.get(2)?,
                status: r.get(3)?,
                summary: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every user the journal knows, by address.
    pub fn users(&self) -> Result<Vec<UserRecord>, JournalError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT user_id, address, state, note, kind, destination FROM users
             ORDER BY address, user_id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(UserRecord {
                user_id: r.get(0)?,
                address: r.get(1)?,
                state: r.get(2)?,
                note: r.get(3)?,
                kind: r.get(4)?,
                destination: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Item counts and bytes per user, destination folder and state.
    pub fn item_groups(&self) -> Result<Vec<ItemGroup>, JournalError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT user_id, kind, dest_folder, state, COUNT(*),
                    COALESCE(SUM(CASE WHEN state = 'done' THEN size END), 0) FROM items
             WHERE state != 'removed'
             GROUP BY user_id, kind, dest_folder, state ORDER BY user_id, kind, dest_folder, state",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(ItemGroup {
                user_id: r.get(0)?,
                kind: r.get(1)?,
                dest_folder: r.get(2)?,
                state: r.get(3)?,
                count: r.get::<_, i64>(4)?.max(0) as u64,
                bytes: r.get::<_, i64>(5)?.max(0) as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every item whose last attempt failed, with the reason.
    pub fn failed_items(&self) -> Result<Vec<FailedItem>, JournalError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT user_id, kind, dest_folder, source_id, COALESCE(reason, ''), subject,
                    received, size FROM items
             WHERE state = ?1 ORDER BY user_id, dest_folder, source_id",
        )?;
        let rows = stmt.query_map(params!["failed"], |r| {
            Ok(FailedItem {
                user_id: r.get(0)?,
                kind: r.get(1)?,
                dest_folder: r.get(2)?,
                source_id: r.get(3)?,
                reason: r.get(4)?,
                subject: r.get(5)?,
                date: r.get(6)?,
                size: r.get::<_, Option<i64>>(7)?.map(|s| s.max(0) as u64),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Items of run `run` that reached the destination, per minute of their last update.
    pub fn done_per_minute(&self, run: i64) -> Result<Vec<MinuteCount>, JournalError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT (updated_at / 60) * 60 AS minute, COUNT(*), COALESCE(SUM(size), 0) FROM items
             WHERE state = 'done' AND run_id = ?1 GROUP BY minute ORDER BY minute",
        )?;
        let rows = stmt.query_map(params![run], |r| {
            Ok(MinuteCount {
                minute: r.get(0)?,
                items: r.get::<_, i64>(1)?.max(0) as u64,
                bytes: r.get::<_, i64>(2)?.max(0) as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Per user, when its migrated items were first and last written.
    pub fn user_spans(&self) -> Result<Vec<UserSpan>, JournalError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT user_id, MIN(updated_at), MAX(updated_at) FROM items WHERE state = 'done'
             GROUP BY user_id ORDER BY user_id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(UserSpan {
                user_id: r.get(0)?,
                first: r.get(1)?,
                last: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
