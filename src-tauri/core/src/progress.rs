//! The one typed progress stream shared by every front end.
//!
//! The core counts; front ends only display. The CLI draws bars from these events and the
//! desktop app forwards them unchanged over a Tauri Channel, so the TypeScript types in
//! `ui/src/bindings/` are generated from this file (`cargo test` exports them; CI fails on drift).

use serde::{Deserialize, Serialize};
use ts_rs::TS;

mod snapshot;
pub use snapshot::{
    unix_ms, MailboxProgress, MailboxState, PlannedMailbox, RunSnapshot, SnapshotReporter,
};

/// One thing that happened during a run. Serialized as `{"kind": "...", ...}` in camelCase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
#[ts(export)]
pub enum ProgressEvent {
    /// The run has signed in and knows which mailboxes it will process.
    RunStarted { users: u32 },
    /// Every mailbox the run will process, in the order it starts them, with the items a
    /// plan counted for each (sent once, right after `RunStarted`): the totals of a
    /// [`RunSnapshot`].
    RunPlanned { mailboxes: Vec<PlannedMailbox> },
    /// A mailbox's folders are listed; `messages` and `bytes` are what it will process.
    UserStarted {
        user: String,
        folders: u32,
        #[ts(type = "number")]
        messages: u64,
    },
    /// A page of a mailbox's calendar events, contacts or tasks was listed: `items` more will
    /// each be reported as done or failed. Graph counts these only by listing them, so unlike
    /// messages (counted ahead in `UserStarted`) they add to the mailbox's total as the run goes.
    ItemsListed {
        user: String,
        #[ts(type = "number")]
        items: u64,
    },
    /// One item reached the destination (or was already there: `skipped`).
    ItemDone {
        user: String,
        #[ts(type = "number")]
        bytes: u64,
        skipped: bool,
    },
    /// One item could not be migrated; the run goes on. People know the item by `subject`,
    /// `folder`, `date` and `size`; `item` is the source's id (or, for a failure of more than
    /// one item, what failed: `(mailbox)`, `(folder)`), for support.
    ItemFailed {
        user: String,
        /// The mail folder, calendar, address book or task list, as users see it (after
        /// [`ProgressEvent::in_plain_words`]).
        folder: String,
        /// The source's (Graph's) id of the item.
        item: String,
        /// A message's or event's subject, a contact's display name, a task's title; `null`
        /// where it is not known (the item could not be read).
        #[serde(default)]
        subject: Option<String>,
        /// RFC 3339, UTC: when a message was received, an event starts, a task is due;
        /// `null` where not known.
        #[serde(default)]
        date: Option<String>,
        /// The item's size in bytes, where known.
        #[serde(default)]
        #[ts(type = "number | null")]
        size: Option<u64>,
        /// Why; after [`ProgressEvent::in_plain_words`], in plain words with what to do
        /// ([`plain_reason`], the report's wording).
        reason: String,
    },
    /// Microsoft Graph asked this mailbox to wait; this is a status, not an error.
    Throttled {
        user: String,
        #[ts(type = "number")]
        wait_ms: u64,
    },
    /// The destination server cannot be reached (connections refused or cut, or it answers
    /// that it is unavailable). This mailbox waits for it, retrying, for up to `limitMs` (the
    /// run's `outage_wait`) since it went down, then fails; reported before each retry. A
    /// status, not an error.
    DestinationDown {
        user: String,
        /// What is down, e.g. `IMAP server mail.example.com:993`.
        destination: String,
        /// How long it has been down so far.
        #[ts(type = "number")]
        down_ms: u64,
        #[ts(type = "number")]
        limit_ms: u64,
    },
    /// Something of this user is not migrated by design, not by failure, reported once per
    /// run and not counted as failed: the whole user (`guest, not migrated`, `no Exchange
    /// mailbox`) or a part of it (`has an online archive: not migrated, export it
    /// separately`).
    NotMigrated { user: String, reason: String },
    /// A mailbox is finished (possibly with failed items).
    UserFinished { user: String, stats: Stats },
    /// The whole run is finished.
    RunFinished { summary: RunSummary },
}

/// What people know an item by: the fields of [`ProgressEvent::ItemFailed`] and of a failed
/// item's journal record ([`crate::journal::Journal::record_failure_details`]), so the live
/// progress and the report name an item alike.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemName {
    /// A message's or event's subject, a contact's display name, a task's title.
    pub subject: Option<String>,
    /// Unix seconds: when a message was received, an event starts, a task is due.
    pub date: Option<i64>,
    /// Bytes.
    pub size: Option<u64>,
}

impl ItemName {
    /// A name from a subject and a Graph date-time (RFC 3339, or Graph's `dateTimeTimeZone`
    /// text without an offset, read as UTC).
    pub fn new(subject: Option<&str>, date: Option<&str>, size: Option<u64>) -> ItemName {
        let date = date.and_then(|d| {
            use time::format_description::well_known::Rfc3339;
            time::OffsetDateTime::parse(d, &Rfc3339)
                .or_else(|_| {
                    // `2024-03-01T09:00:00.0000000` (dateTimeTimeZone): a date and time only.
                    let head = d.get(..19).unwrap_or(d);
                    time::OffsetDateTime::parse(&format!("{head}Z"), &Rfc3339)
                })
                .ok()
                .map(|t| t.unix_timestamp())
        });
        ItemName {
            subject: subject.map(str::to_string),
            date,
            size,
        }
    }

    /// The failure event of item `item` of `user` in `folder`, named by this.
    pub fn failed(&self, user: &str, folder: &str, item: &str, reason: String) -> ProgressEvent {
        ProgressEvent::ItemFailed {
            user: user.to_string(),
            folder: folder.to_string(),
            item: item.to_string(),
            subject: self.subject.clone(),
            date: self.date.map(rfc3339),
            size: self.size,
            reason,
        }
    }
}

/// Unix seconds as RFC 3339, UTC (the seconds themselves when out of range).
pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

/// Counters for one mailbox or a whole run.
/// Fields missing when read back (a summary journaled by an older version) count as zero.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase", default)]
#[ts(export)]
pub struct Stats {
    /// Mail folders, calendars, address books and task lists.
    pub folders: u32,
    #[ts(type = "number")]
    pub messages: u64,
    /// Calendar resources written: single events and whole series.
    #[ts(type = "number")]
    pub events: u64,
    #[ts(type = "number")]
    pub contacts: u64,
    #[ts(type = "number")]
    pub tasks: u64,
    #[ts(type = "number")]
    pub skipped: u64,
    #[ts(type = "number")]
    pub failed: u64,
    #[ts(type = "number")]
    pub bytes: u64,
    /// Items left out by the date limits (`mail_since`, `mail_until`, `calendar_since`):
    /// neither fetched nor written, and not failures.
    #[ts(type = "number")]
    pub out_of_range: u64,
}

impl Stats {
    /// Adds another mailbox's counters to these.
    pub fn add(&mut self, other: &Stats) {
        self.folders += other.folders;
        self.messages += other.messages;
        self.events += other.events;
        self.contacts += other.contacts;
        self.tasks += other.tasks;
        self.skipped += other.skipped;
        self.failed += other.failed;
        self.bytes += other.bytes;
        self.out_of_range += other.out_of_range;
    }
}

/// What a finished run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct RunSummary {
    pub users: u32,
    pub totals: Stats,
    pub seconds: f64,
    /// True when the run was stopped before every mailbox finished; the next run resumes.
    pub cancelled: bool,
}

/// Receives progress events. Implementations must be cheap and must not block: the engine
/// calls `report` from its workers.
pub trait Reporter: Send + Sync {
    fn report(&self, event: ProgressEvent);
}

/// A reporter that drops every event (for callers that only want the summary).
pub struct NullReporter;

impl Reporter for NullReporter {
    fn report(&self, _event: ProgressEvent) {}
}

impl<F: Fn(ProgressEvent) + Send + Sync> Reporter for F {
    fn report(&self, event: ProgressEvent) {
        self(event)
    }
}

/// A failure reason in plain words, with what to do about it: the one wording the report, the
/// CLI and the app show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct PlainReason {
    /// What happened, in a sentence, e.g. `The destination mailbox is full.`
    pub text: String,
    /// What to do, e.g. `Raise the user's quota at the destination, then run again.`
    pub advice: String,
    /// The technical reason as recorded, without the item's id.
    pub detail: String,
}

impl std::fmt::Display for PlainReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} ({})", self.text, self.advice, self.detail)
    }
}

/// Words a recorded failure reason (`message AAMk...: cannot append message to folder INBOX:
/// [OVERQUOTA] ...`) for people: what happened and what to do, recognised from the response
/// codes of RFC 5530 §3 and the wording of the migrator's own errors; anything else reads as a
/// failure to run again.
pub fn plain_reason(reason: &str) -> PlainReason {
    // The engine prefixes the source id (`message <id>: `); the report names the item instead.
    let detail = reason
        .strip_prefix("message ")
        .and_then(|rest| rest.split_once(": "))
        .filter(|(id, _)| !id.contains(' '))
        .map_or(reason, |(_, rest)| rest)
        .trim();
    let lower = detail.to_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| lower.contains(w));
    let (text, advice) = if has(&["overquota", "quota", "mailbox is full"]) {
        (
            "The destination mailbox is full.",
            "Raise the user's quota at the destination, then run again.",
        )
    } else if has(&["toobig", "too big", "too large", "larger than", "exceeds"]) {
        (
            "The item is larger than the destination accepts.",
            "Raise the destination's message size limit and run again, or move the item by hand.",
        )
    } else if has(&[
        "http 404",
        "(erroritemnotfound)",
        "no longer exists",
        "deleted at the source",
    ]) {
        (
            "The item was deleted at the source while it was being migrated.",
            "Nothing to do.",
        )
    } else if has(&["cannot convert"]) {
        (
            "The item could not be converted for the destination.",
            "Recreate it by hand at the destination, and send the detail to support.",
        )
    } else if has(&["changed at the destination"]) {
        (
            "Someone changed the item at the destination while it was being written.",
            "Nothing to do: the destination's version is kept.",
        )
    } else if has(&[
        "cut short",
        "ended after",
        "timed out",
        "did not answer",
        "connection",
    ]) {
        (
            "The transfer was interrupted.",
            "Run again: the item is tried again.",
        )
    } else if has(&["refused", "rejected", "cannot append", "not allowed"]) {
        (
            "The destination refused the item.",
            "Look for the item in the destination server's log, then run again.",
        )
    } else {
        (
            "The item could not be migrated.",
            "Run again; if it fails again, send the detail to support.",
        )
    };
    PlainReason {
        text: text.into(),
        advice: advice.into(),
        detail: detail.into(),
    }
}

impl ProgressEvent {
    /// The event as people read it: an item failure's folder as the user sees it (modified
    /// UTF-7 and escapes decoded) and its reason in plain words ([`plain_reason`]). Front ends
    /// show events through this; other events are unchanged.
    pub fn in_plain_words(self) -> ProgressEvent {
        match self {
            ProgressEvent::ItemFailed {
                user,
                folder,
                item,
                subject,
                date,
                size,
                reason,
            } => ProgressEvent::ItemFailed {
                user,
                folder: crate::dest::imap::folders::decode_component(&folder),
                item,
                subject,
                date,
                size,
                reason: plain_reason(&reason).to_string(),
            },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_dates_read_graphs_offsets_and_its_zone_less_date_times() {
        let at = |d: &str| ItemName::new(None, Some(d), None).date.map(rfc3339);
        assert_eq!(
            at("2024-03-01T09:00:00Z").as_deref(),
            Some("2024-03-01T09:00:00Z")
        );
        assert_eq!(
            at("2024-03-01T10:00:00+01:00").as_deref(),
            Some("2024-03-01T09:00:00Z")
        );
        // dateTimeTimeZone's text (in UTC when read without `Prefer: outlook.timezone`).
        assert_eq!(
            at("2025-01-14T15:00:00.0000000").as_deref(),
            Some("2025-01-14T15:00:00Z")
        );
        assert_eq!(at("not a date"), None);
    }

    #[test]
    fn cli_and_app_show_the_reports_folder_names_and_reasons() {
        let event = ItemName::default().failed(
            "ann@contoso.com",
            "P&AVkA7Q-lohy 100%",
            "AAMk1",
            "message AAMk1: cannot append message to folder X: NO [TOOBIG] too big".into(),
        );
        let ProgressEvent::ItemFailed { folder, reason, .. } = event.in_plain_words() else {
            panic!("still an item failure");
        };
        assert_eq!(folder, "Přílohy 100%");
        let plain =
            plain_reason("message AAMk1: cannot append message to folder X: NO [TOOBIG] too big");
        assert_eq!(
            plain.text,
            "The item is larger than the destination accepts."
        );
        assert_eq!(
            plain.detail,
            "cannot append message to folder X: NO [TOOBIG] too big"
        );
        assert_eq!(reason, plain.to_string());
        assert!(reason.starts_with("The item is larger than the destination accepts. Raise"));
    }
}
