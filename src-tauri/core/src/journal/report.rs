//! Read-only queries over the journal for reports and verification. They never change state.

use super::sql::args;
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
        self.rows(
            "SELECT id, started_at, finished_at, status, summary FROM runs ORDER BY id",
            args![],
        )?
        .iter()
        .map(|r| {
            Ok(RunRecord {
                id: r.int(0)?,
                started_at: r.int(1)?,
                finished_at: r.opt_int(2)?,
                status: r.text(3)?,
                summary: r.opt_text(4)?,
            })
        })
        .collect()
    }

    /// Every user the journal knows, by address.
    pub fn users(&self) -> Result<Vec<UserRecord>, JournalError> {
        self.rows(
            "SELECT user_id, address, state, note, kind, destination FROM users
             ORDER BY address, user_id",
            args![],
        )?
        .iter()
        .map(|r| {
            Ok(UserRecord {
                user_id: r.text(0)?,
                address: r.text(1)?,
                state: r.text(2)?,
                note: r.opt_text(3)?,
                kind: r.opt_text(4)?,
                destination: r.opt_text(5)?,
            })
        })
        .collect()
    }

    /// Item counts and bytes per user, destination folder and state.
    pub fn item_groups(&self) -> Result<Vec<ItemGroup>, JournalError> {
        // Sums are cast: PostgreSQL's SUM of a BIGINT is a NUMERIC.
        self.rows(
            "SELECT user_id, kind, dest_folder, state, COUNT(*),
                    CAST(COALESCE(SUM(CASE WHEN state = 'done' THEN size END), 0) AS BIGINT)
             FROM items
             WHERE state != 'removed'
             GROUP BY user_id, kind, dest_folder, state ORDER BY user_id, kind, dest_folder, state",
            args![],
        )?
        .iter()
        .map(|r| {
            Ok(ItemGroup {
                user_id: r.text(0)?,
                kind: r.text(1)?,
                dest_folder: r.text(2)?,
                state: r.text(3)?,
                count: r.count(4)?,
                bytes: r.count(5)?,
            })
        })
        .collect()
    }

    /// Every item whose last attempt failed, with the reason.
    pub fn failed_items(&self) -> Result<Vec<FailedItem>, JournalError> {
        self.rows(
            "SELECT user_id, kind, dest_folder, source_id, COALESCE(reason, ''), subject,
                    received, size FROM items
             WHERE state = ?1 ORDER BY user_id, dest_folder, source_id",
            args!["failed"],
        )?
        .iter()
        .map(|r| {
            Ok(FailedItem {
                user_id: r.text(0)?,
                kind: r.text(1)?,
                dest_folder: r.text(2)?,
                source_id: r.text(3)?,
                reason: r.text(4)?,
                subject: r.opt_text(5)?,
                date: r.opt_int(6)?,
                size: r.opt_int(7)?.map(|s| s.max(0) as u64),
            })
        })
        .collect()
    }

    /// Items of run `run` that reached the destination, per minute of their last update.
    pub fn done_per_minute(&self, run: i64) -> Result<Vec<MinuteCount>, JournalError> {
        self.rows(
            "SELECT (updated_at / 60) * 60 AS minute, COUNT(*),
                    CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM items
             WHERE state = 'done' AND run_id = ?1 GROUP BY minute ORDER BY minute",
            args![run],
        )?
        .iter()
        .map(|r| {
            Ok(MinuteCount {
                minute: r.int(0)?,
                items: r.count(1)?,
                bytes: r.count(2)?,
            })
        })
        .collect()
    }

    /// Per user, when its migrated items were first and last written.
    pub fn user_spans(&self) -> Result<Vec<UserSpan>, JournalError> {
        self.rows(
            "SELECT user_id, MIN(updated_at), MAX(updated_at) FROM items WHERE state = 'done'
             GROUP BY user_id ORDER BY user_id",
            args![],
        )?
        .iter()
        .map(|r| {
            Ok(UserSpan {
                user_id: r.text(0)?,
                first: r.int(1)?,
                last: r.int(2)?,
            })
        })
        .collect()
    }
}
