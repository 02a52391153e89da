//! The run report: what every run did, per user and per folder, and every failed item with
//! its reason, built from the journal alone (so it can be written at any time, also after a
//! crash) and rendered as JSON, CSV and a self-contained HTML page.
//!
//! The journal holds no secrets, so neither does the report.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::mailboxes::{GUEST, NO_MAILBOX, ONLINE_ARCHIVE};
use crate::dest::imap::folders::decode_component;
use crate::graph::permissions::PERMISSIONS;
use crate::journal::{Journal, JournalError, StateLock};
use crate::progress::{plain_reason, rfc3339, RunSummary};

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("cannot write the report file {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the report file {path}")]
    Csv {
        path: PathBuf,
        #[source]
        source: csv::Error,
    },
    #[error("cannot encode the report as JSON")]
    Json(#[from] serde_json::Error),
}

/// Everything the journal knows about the migration.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// RFC 3339, UTC.
    pub generated_at: String,
    pub totals: Counts,
    pub runs: Vec<RunLine>,
    pub users: Vec<UserLine>,
    /// Users, or parts of them, the runs left out by design (not failures).
    pub not_migrated: NotMigrated,
    pub folders: Vec<FolderLine>,
    pub failures: Vec<FailureLine>,
    /// Items written per minute of the last run that wrote any (the chart's data).
    pub throughput: Vec<MinuteLine>,
    /// The application permissions the migrator reads with.
    pub permissions: Vec<&'static str>,
}

/// Items written in one minute.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MinuteLine {
    /// RFC 3339, UTC: the minute's start.
    pub minute: String,
    pub items: u64,
    pub bytes: u64,
}

/// Item counters. `pending` items were being written when a run stopped; the next run checks
/// the destination before writing them again.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    pub done: u64,
    pub failed: u64,
    pub pending: u64,
    pub bytes: u64,
}

impl Counts {
    fn add(&mut self, state: &str, count: u64, bytes: u64) {
        match state {
            "done" => self.done += count,
            "failed" => self.failed += count,
            _ => self.pending += count,
        }
        self.bytes += bytes;
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunLine {
    pub id: i64,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// `finished`, `stopped`, `failed`, `running` (its process holds the state folder now),
    /// or `interrupted`: recorded as running, but no process holds the state folder (its
    /// process died) or a later run started.
    pub status: String,
    pub seconds: Option<i64>,
    pub summary: Option<RunSummary>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UserLine {
    pub user: String,
    /// `started`, `finished`, `failed`, or why the user is not migrated (`guest, not
    /// migrated`, `no Exchange mailbox`).
    pub state: String,
    /// What was left out of this user by design (`has an online archive: not migrated,
    /// export it separately`).
    pub note: Option<String>,
    /// What the mailbox is: `user`, `shared`, `room` or `equipment` (Graph's
    /// `mailboxSettings.userPurpose`; a user mailbox when Graph does not say). `None` for a
    /// user not migrated, or journaled before this was recorded.
    pub kind: Option<String>,
    /// What the migration made of it at the destination: `account created`, `merged into an
    /// existing account` or `local folder`.
    pub destination: Option<String>,
    #[serde(flatten)]
    pub counts: Counts,
    /// The counters per workload (`mail`, `event`, `contact`, `task`).
    pub workloads: BTreeMap<String, Counts>,
    /// From the first to the last item written, over all runs.
    pub seconds: Option<i64>,
    /// Migrated bytes per second over `seconds`.
    pub bytes_per_second: Option<u64>,
}

/// The workloads in the order the report shows them.
const WORKLOADS: [&str; 4] = ["mail", "event", "contact", "task"];

impl UserLine {
    /// Items of `workload` migrated.
    fn migrated(&self, workload: &str) -> u64 {
        self.workloads.get(workload).map_or(0, |c| c.done)
    }
}

/// How many users were not migrated, or not whole, by design.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NotMigrated {
    pub guests: u64,
    pub without_mailbox: u64,
    pub online_archives: u64,
}

impl NotMigrated {
    fn of(users: &[UserLine]) -> Self {
        let count = |f: &dyn Fn(&UserLine) -> bool| users.iter().filter(|u| f(u)).count() as u64;
        NotMigrated {
            guests: count(&|u| u.state == GUEST),
            without_mailbox: count(&|u| u.state == NO_MAILBOX),
            online_archives: count(&|u| u.note.as_deref() == Some(ONLINE_ARCHIVE)),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct FolderLine {
    pub user: String,
    /// `mail`, `event`, `contact` or `task`.
    pub workload: String,
    /// The name as users see it (modified UTF-7 and escapes decoded).
    pub folder: String,
    #[serde(flatten)]
    pub counts: Counts,
}

/// One item that could not be migrated (report.json, failures.csv, the app's Report screen),
/// named as people know it: subject, folder, date and size where the journal recorded them
/// (the Graph id only says which one).
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct FailureLine {
    pub user: String,
    /// `mail`, `event`, `contact` or `task`.
    pub workload: String,
    /// The folder as users see it.
    pub folder: String,
    /// The source's id of the item.
    pub item: String,
    /// A message's or event's subject, a contact's display name, a task's title.
    pub subject: Option<String>,
    /// RFC 3339, UTC: when a message was received, an event starts, a task is due.
    pub date: Option<String>,
    /// Bytes.
    #[ts(type = "number | null")]
    pub size: Option<u64>,
    /// What happened, in plain words ([`plain_reason`]).
    pub reason: String,
    /// What to do about it.
    pub advice: String,
    /// The technical reason as recorded.
    pub detail: String,
}

/// The files [`Report::write`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFiles {
    pub json: PathBuf,
    pub html: PathBuf,
    pub users_csv: PathBuf,
    pub folders_csv: PathBuf,
    pub failures_csv: PathBuf,
}

/// The status of a run whose process died before it finished.
pub const INTERRUPTED: &str = "interrupted";

/// A destination folder's name as users see it: a mail folder's wire name has its modified
/// UTF-7 (RFC 3501 §5.1.3) decoded (names are as typed since issue 15; a folder an earlier
/// version named with `%XX` escapes keeps that name, which is what its users see); calendars
/// and address books are named as is.
fn folder_as_seen(kind: &str, dest_folder: &str) -> String {
    if kind == "mail" {
        decode_component(dest_folder)
    } else {
        dest_folder.to_string()
    }
}

impl Report {
    /// Reads the report out of a journal.
    pub fn from_journal(journal: &Journal) -> Result<Report, ReportError> {
        let users = journal.users()?;
        let address: BTreeMap<&str, &str> = users
            .iter()
            .map(|u| (u.user_id.as_str(), u.address.as_str()))
            .collect();
        let name = |id: &str| address.get(id).copied().unwrap_or(id).to_string();

        let mut per_user: BTreeMap<String, Counts> = BTreeMap::new();
        let mut per_workload: BTreeMap<String, BTreeMap<String, Counts>> = BTreeMap::new();
        let mut per_folder: BTreeMap<(String, String, String), Counts> = BTreeMap::new();
        let mut totals = Counts::default();
        for g in journal.item_groups()? {
            let user = name(&g.user_id);
            per_user
                .entry(user.clone())
                .or_default()
                .add(&g.state, g.count, g.bytes);
            per_workload
                .entry(user.clone())
                .or_default()
                .entry(g.kind.clone())
                .or_default()
                .add(&g.state, g.count, g.bytes);
            per_folder
                .entry((user, folder_as_seen(&g.kind, &g.dest_folder), g.kind))
                .or_default()
                .add(&g.state, g.count, g.bytes);
            totals.add(&g.state, g.count, g.bytes);
        }
        let spans: BTreeMap<String, i64> = journal
            .user_spans()?
            .into_iter()
            .map(|s| (name(&s.user_id), s.last - s.first))
            .collect();
        let timing = |user: &str, counts: &Counts| {
            let seconds = spans.get(user).copied();
            let rate = seconds.map(|s| counts.bytes / s.max(1) as u64);
            (seconds, rate)
        };
        let mut user_lines: Vec<UserLine> = users
            .iter()
            .map(|u| {
                let counts = per_user.remove(&u.address).unwrap_or_default();
                let (seconds, bytes_per_second) = timing(&u.address, &counts);
                UserLine {
                    user: u.address.clone(),
                    state: u.state.clone(),
                    note: u.note.clone(),
                    kind: u.kind.clone(),
                    destination: u.destination.clone(),
                    counts,
                    workloads: per_workload.remove(&u.address).unwrap_or_default(),
                    seconds,
                    bytes_per_second,
                }
            })
            .collect();
        // Items of users the users table does not name (a journal from a crashed first run).
        user_lines.extend(per_user.into_iter().map(|(user, counts)| {
            let (seconds, bytes_per_second) = timing(&user, &counts);
            UserLine {
                workloads: per_workload.remove(&user).unwrap_or_default(),
                user,
                state: "unknown".into(),
                note: None,
                kind: None,
                destination: None,
                counts,
                seconds,
                bytes_per_second,
            }
        }));

        let records = journal.runs()?;
        let last_run = records.last().map(|r| r.id);
        // A run that holds the state folder is running; one recorded as running without
        // holding it has died (the OS releases the lock with the process, see journal::lock).
        // A PostgreSQL journal has no state folder: there a run recorded as running is
        // running while any worker holds a live lease (its heartbeat renews it), since
        // workers run at once (each leased mailbox is one run); with no live lease, every run
        // still recorded as running was interrupted.
        let live_workers = journal.path().is_none() && journal.live_leases().unwrap_or(0) > 0;
        let held = journal
            .path()
            .and_then(Path::parent)
            .is_some_and(|dir| StateLock::check_free(dir).is_err());
        let throughput_run = records
            .iter()
            .rev()
            .map(|r| r.id)
            .find(|&id| journal.done_per_minute(id).is_ok_and(|m| !m.is_empty()));
        let runs = records
            .into_iter()
            .map(|r| RunLine {
                id: r.id,
                started_at: rfc3339(r.started_at),
                finished_at: r.finished_at.map(rfc3339),
                seconds: r.finished_at.map(|f| f - r.started_at),
                status: if r.status == "running"
                    && !(held && Some(r.id) == last_run)
                    && !live_workers
                {
                    INTERRUPTED.into()
                } else {
                    r.status
                },
                summary: r.summary.and_then(|s| serde_json::from_str(&s).ok()),
            })
            .collect();
        let failures = journal
            .failed_items()?
            .into_iter()
            .map(|f| {
                let plain = plain_reason(&f.reason);
                FailureLine {
                    user: name(&f.user_id),
                    folder: folder_as_seen(&f.kind, &f.dest_folder),
                    workload: f.kind,
                    item: f.source_id,
                    subject: f.subject,
                    date: f.date.map(rfc3339),
                    size: f.size,
                    reason: plain.text,
                    advice: plain.advice,
                    detail: plain.detail,
                }
            })
            .collect();
        let throughput = match throughput_run {
            Some(run) => journal
                .done_per_minute(run)?
                .into_iter()
                .map(|m| MinuteLine {
                    minute: rfc3339(m.minute),
                    items: m.items,
                    bytes: m.bytes,
                })
                .collect(),
            None => Vec::new(),
        };
        Ok(Report {
            generated_at: rfc3339(time::OffsetDateTime::now_utc().unix_timestamp()),
            totals,
            runs,
            not_migrated: NotMigrated::of(&user_lines),
            users: user_lines,
            folders: per_folder
                .into_iter()
                .map(|((user, folder, workload), counts)| FolderLine {
                    user,
                    workload,
                    folder,
                    counts,
                })
                .collect(),
            failures,
            throughput,
            permissions: PERMISSIONS.iter().map(|p| p.name).collect(),
        })
    }

    /// Writes `report.json`, `report.html`, `users.csv`, `folders.csv` and `failures.csv`
    /// into `dir` (created if missing), replacing earlier ones.
    pub fn write(&self, dir: &Path) -> Result<ReportFiles, ReportError> {
        std::fs::create_dir_all(dir).map_err(|source| ReportError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        let files = ReportFiles {
            json: dir.join("report.json"),
            html: dir.join("report.html"),
            users_csv: dir.join("users.csv"),
            folders_csv: dir.join("folders.csv"),
            failures_csv: dir.join("failures.csv"),
        };
        write_file(&files.json, serde_json::to_string_pretty(self)?.as_bytes())?;
        write_file(&files.html, self.html().as_bytes())?;
        let counts = |c: &Counts| [c.done, c.failed, c.pending, c.bytes].map(|n| n.to_string());
        write_csv(
            &files.users_csv,
            &[
                "user",
                "state",
                "done",
                "failed",
                "pending",
                "bytes",
                "note",
                "seconds",
                "bytes_per_second",
                "kind",
                "destination",
                "mail",
                "events",
                "contacts",
                "tasks",
            ],
            self.users.iter().map(|u| {
                let mut row = vec![u.user.clone(), u.state.clone()];
                row.extend(counts(&u.counts));
                row.push(u.note.clone().unwrap_or_default());
                row.push(u.seconds.map(|s| s.to_string()).unwrap_or_default());
                row.push(
                    u.bytes_per_second
                        .map(|s| s.to_string())
                        .unwrap_or_default(),
                );
                row.push(u.kind.clone().unwrap_or_default());
                row.push(u.destination.clone().unwrap_or_default());
                row.extend(WORKLOADS.map(|w| u.migrated(w).to_string()));
                row
            }),
        )?;
        write_csv(
            &files.folders_csv,
            &[
                "user", "workload", "folder", "done", "failed", "pending", "bytes",
            ],
            self.folders.iter().map(|f| {
                let mut row = vec![f.user.clone(), f.workload.clone(), f.folder.clone()];
                row.extend(counts(&f.counts));
                row
            }),
        )?;
        write_csv(
            &files.failures_csv,
            &[
                "user", "workload", "folder", "subject", "date", "size", "reason", "advice",
                "detail", "item",
            ],
            self.failures.iter().map(|f| {
                vec![
                    f.user.clone(),
                    f.workload.clone(),
                    f.folder.clone(),
                    f.subject.clone().unwrap_or_default(),
                    f.date.clone().unwrap_or_default(),
                    f.size.map(|s| s.to_string()).unwrap_or_default(),
                    f.reason.clone(),
                    f.advice.clone(),
                    f.detail.clone(),
                    f.item.clone(),
                ]
            }),
        )?;
        Ok(files)
    }

    /// The report as one HTML page with its styles inline (no scripts, no external requests).
    pub fn html(&self) -> String {
        let mut h = String::with_capacity(16 * 1024);
        h.push_str(concat!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
            // Nothing but the inline styles may load or run, even if an escape were missed
            // (CSP Level 3, https://www.w3.org/TR/CSP3/#meta-element).
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; ",
            "style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'\">",
            "<meta name=\"viewport\" content=\"width=device-width\">",
            "<title>M365 Migrator report</title><style>",
            "body{font:14px/1.45 system-ui,sans-serif;margin:2rem;color:#1b1f24;background:#fff}",
            "@media(prefers-color-scheme:dark){body{color:#e6e6e6;background:#16181c}",
            "th{background:#23262c!important}td,th{border-color:#333!important}}",
            "h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}",
            "table{border-collapse:collapse;margin:.5rem 0}",
            "td,th{border:1px solid #d0d7de;padding:.25rem .6rem;text-align:left}",
            "th{background:#f3f5f7}td.n{text-align:right;font-variant-numeric:tabular-nums}",
            ".bad{color:#c62828;font-weight:600}",
            "svg.chart{display:block;margin:.5rem 0;font-size:12px;fill:currentColor;max-width:100%}",
            "</style></head><body>\n<h1>M365 Migrator report</h1>\n"
        ));
        let t = &self.totals;
        h.push_str(&format!(
            "<p>Generated {}. {} users, {} items migrated ({}), {} failed, {} pending.</p>\n",
            esc(&self.generated_at),
            self.users.len(),
            t.done,
            human_bytes(t.bytes),
            fail_cell(t.failed),
            t.pending
        ));

        h.push_str("<h2>Runs</h2>\n<table><tr><th>Run</th><th>Started</th><th>Finished</th><th>Status</th><th>Duration</th><th>Items</th><th>Left out by date</th><th>Failed</th></tr>\n");
        for r in &self.runs {
            let (items, left_out, failed) = r
                .summary
                .as_ref()
                .map(|s| {
                    let t = &s.totals;
                    (
                        t.messages.to_string(),
                        t.out_of_range.to_string(),
                        fail_cell(t.failed),
                    )
                })
                .unwrap_or_default();
            h.push_str(&format!(
                "<tr><td class=n>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td></tr>\n",
                r.id,
                esc(&r.started_at),
                esc(r.finished_at.as_deref().unwrap_or("")),
                esc(&r.status),
                r.seconds.map(|s| format!("{s} s")).unwrap_or_default(),
                items,
                left_out,
                failed
            ));
        }
        h.push_str("</table>\n");

        let n = &self.not_migrated;
        if *n != NotMigrated::default() {
            h.push_str(&format!(
                "<p>Not migrated: {} guests, {} users without an Exchange mailbox, {} online archives (export them separately).</p>\n",
                n.guests, n.without_mailbox, n.online_archives
            ));
        }
        let states: Vec<String> = self
            .users
            .iter()
            .map(|u| match &u.note {
                Some(note) => format!("{}; {note}", u.state),
                None => u.state.clone(),
            })
            .collect();
        h.push_str("<h2>Users</h2>\n<table><tr><th>User</th><th>Kind</th><th>At the destination</th><th>State</th><th>Mail</th><th>Events</th><th>Contacts</th><th>Tasks</th><th>Failed</th><th>Pending</th><th>Size</th><th>Duration</th><th>Rate</th></tr>\n");
        for (u, state) in self.users.iter().zip(&states) {
            let [mail, events, contacts, tasks] = WORKLOADS.map(|w| u.migrated(w));
            h.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td></tr>\n",
                esc(&u.user),
                esc(u.kind.as_deref().unwrap_or("")),
                esc(u.destination.as_deref().unwrap_or("")),
                esc(state),
                mail,
                events,
                contacts,
                tasks,
                fail_cell(u.counts.failed),
                u.counts.pending,
                human_bytes(u.counts.bytes),
                u.seconds.map(duration).unwrap_or_default(),
                u.bytes_per_second
                    .map(|r| format!("{}/s", human_bytes(r)))
                    .unwrap_or_default(),
            ));
        }
        h.push_str("</table>\n");
        h.push_str(&user_bars(&self.users));
        counts_table(
            &mut h,
            ["Folders", "User", "Folder"],
            self.folders.iter().map(|f| (&f.user, &f.folder, &f.counts)),
        );
        h.push_str(&throughput_chart(&self.throughput));

        h.push_str(&format!(
            "<h2>Failed items ({})</h2>\n",
            self.failures.len()
        ));
        if self.failures.is_empty() {
            h.push_str("<p>None.</p>\n");
        } else {
            h.push_str(
                "<table><tr><th>User</th><th>Subject</th><th>Folder</th><th>Date</th><th>Size</th><th>What happened</th><th>What to do</th></tr>\n",
            );
            for f in &self.failures {
                // Without a recorded subject the item is named by its id, so it can be found.
                let subject = match &f.subject {
                    Some(s) if !s.trim().is_empty() => esc(s),
                    Some(_) => "(no subject)".into(),
                    None => format!("<code>{}</code>", esc(&f.item)),
                };
                h.push_str(&format!(
                    "<tr><td>{}</td><td>{subject}</td><td>{}</td><td>{}</td><td class=n>{}</td><td>{} <small title=\"{}\">{}</small></td><td>{}</td></tr>\n",
                    esc(&f.user),
                    esc(&f.folder),
                    esc(f.date.as_deref().unwrap_or("")),
                    f.size.map(human_bytes).unwrap_or_default(),
                    esc(&f.reason),
                    esc(&f.item),
                    esc(&f.detail),
                    esc(&f.advice),
                ));
            }
            h.push_str("</table>\n");
        }

        h.push_str("<h2>Permissions used</h2>\n<p>");
        h.push_str(&esc(&self.permissions.join(", ")));
        h.push_str(" (application permissions, read only).</p>\n</body></html>\n");
        h
    }
}

/// A section with a table of two text columns followed by the item counters.
fn counts_table<'a>(
    h: &mut String,
    [title, first, second]: [&str; 3],
    rows: impl Iterator<Item = (&'a String, &'a String, &'a Counts)>,
) {
    h.push_str(&format!(
        "<h2>{title}</h2>\n<table><tr><th>{first}</th><th>{second}</th><th>Migrated</th><th>Failed</th><th>Pending</th><th>Size</th></tr>\n"
    ));
    for (a, b, c) in rows {
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td></tr>\n",
            esc(a),
            esc(b),
            c.done,
            fail_cell(c.failed),
            c.pending,
            human_bytes(c.bytes)
        ));
    }
    h.push_str("</table>\n");
}

/// `1 h 02 min`, `3 min 05 s`, `42 s`.
fn duration(seconds: i64) -> String {
    let s = seconds.max(0);
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, s) => format!("{s} s"),
        (0, m, s) => format!("{m} min {s:02} s"),
        (h, m, _) => format!("{h} h {m:02} min"),
    }
}

/// A bar per user of the items migrated, drawn as inline SVG (no script, no external request:
/// the page's Content-Security-Policy allows nothing else).
fn user_bars(users: &[UserLine]) -> String {
    let max = users.iter().map(|u| u.counts.done).max().unwrap_or(0);
    if max == 0 {
        return String::new();
    }
    const ROW: usize = 22;
    const LABEL: usize = 260;
    const BAR: u64 = 400;
    let height = users.len() * ROW + 4;
    let mut svg = format!(
        "<svg class=chart role=img aria-label=\"Items migrated per user\" width=\"{}\" height=\"{height}\" viewBox=\"0 0 {} {height}\" xmlns=\"http://www.w3.org/2000/svg\">\n",
        LABEL + BAR as usize + 120,
        LABEL + BAR as usize + 120
    );
    for (i, u) in users.iter().enumerate() {
        let y = i * ROW + 2;
        let width = (u.counts.done * BAR).div_ceil(max);
        svg.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text><rect x=\"{}\" y=\"{y}\" width=\"{width}\" height=\"{}\" fill=\"#2f81f7\"><title>{}: {} items</title></rect><text x=\"{}\" y=\"{}\">{}</text>\n",
            LABEL - 8,
            y + 14,
            esc(&u.user),
            LABEL,
            ROW - 6,
            esc(&u.user),
            u.counts.done,
            LABEL as u64 + width + 6,
            y + 14,
            u.counts.done
        ));
    }
    svg.push_str("</svg>\n");
    svg
}

/// Items migrated per minute of the last run, as an inline SVG polyline (see [`user_bars`]).
fn throughput_chart(minutes: &[MinuteLine]) -> String {
    let Some(max) = minutes.iter().map(|m| m.items).max().filter(|&m| m > 0) else {
        return String::new();
    };
    const W: usize = 600;
    const H: u64 = 160;
    let step = if minutes.len() > 1 {
        W as f64 / (minutes.len() - 1) as f64
    } else {
        0.0
    };
    let xy: Vec<(f64, u64)> = minutes
        .iter()
        .enumerate()
        .map(|(i, m)| (40.0 + i as f64 * step, 10 + H - m.items * H / max))
        .collect();
    // One minute (a short run) is a level line across the chart: a polyline of one point
    // draws nothing.
    let line = match xy[..] {
        [(_, y)] => vec![(40.0, y), ((40 + W) as f64, y)],
        _ => xy.clone(),
    };
    let points: Vec<String> = line.iter().map(|(x, y)| format!("{x:.1},{y}")).collect();
    let marks: String = xy
        .iter()
        .zip(minutes)
        .map(|((x, y), m)| {
            format!(
                "<circle cx=\"{x:.1}\" cy=\"{y}\" r=\"3\" fill=\"#2f81f7\"><title>{}: {} items</title></circle>",
                esc(&m.minute),
                m.items
            )
        })
        .collect();
    let first = minutes.first().map_or("", |m| m.minute.as_str());
    let last = minutes.last().map_or("", |m| m.minute.as_str());
    format!(
        concat!(
            "<h2>Throughput of the last run</h2>\n",
            "<svg class=chart role=img aria-label=\"Items migrated per minute\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" xmlns=\"http://www.w3.org/2000/svg\">\n",
            "<line x1=\"40\" y1=\"{base}\" x2=\"{right}\" y2=\"{base}\" stroke=\"#8c959f\"/>",
            "<line x1=\"40\" y1=\"10\" x2=\"40\" y2=\"{base}\" stroke=\"#8c959f\"/>\n",
            "<text x=\"36\" y=\"20\" text-anchor=\"end\">{max}</text><text x=\"36\" y=\"{base}\" text-anchor=\"end\">0</text>\n",
            "<polyline fill=\"none\" stroke=\"#2f81f7\" stroke-width=\"2\" points=\"{points}\"/>{marks}\n",
            "<text x=\"40\" y=\"{label}\">{first}</text><text x=\"{right}\" y=\"{label}\" text-anchor=\"end\">{last}</text>\n",
            "</svg>\n<p>Items per minute (most: {max}).</p>\n"
        ),
        w = W + 60,
        h = H + 40,
        base = 10 + H,
        right = 40 + W,
        label = H + 32,
        max = max,
        points = points.join(" "),
        marks = marks,
        first = esc(first),
        last = esc(last),
    )
}

fn fail_cell(n: u64) -> String {
    if n == 0 {
        "0".into()
    } else {
        format!("<span class=bad>{n}</span>")
    }
}

/// Escapes text for HTML element content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `1.5 MB`-style sizes (decimal units, as mail servers report quotas).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    let fail = |source| ReportError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::create(path).map_err(fail)?;
    f.write_all(bytes).map_err(fail)?;
    f.sync_all().map_err(fail)
}

fn write_csv(
    path: &Path,
    header: &[&str],
    rows: impl Iterator<Item = Vec<String>>,
) -> Result<(), ReportError> {
    let fail = |source| ReportError::Csv {
        path: path.to_path_buf(),
        source,
    };
    let mut w = csv::Writer::from_path(path).map_err(fail)?;
    w.write_record(header).map_err(fail)?;
    for row in rows {
        w.write_record(row.iter().map(|cell| inert_cell(cell)))
            .map_err(fail)?;
    }
    w.flush().map_err(|source| ReportError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// A CSV cell a spreadsheet shows as text: a cell starting with `=`, `+`, `-`, `@`, tab or
/// carriage return would be evaluated as a formula (CSV injection), so it gets a leading `'`, as
/// OWASP advises (<https://owasp.org/www-community/attacks/CSV_Injection>). Folder names, item
/// ids and failure reasons come from the mailbox and the servers, so they are hostile input.
fn inert_cell(cell: &str) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::ItemTarget;

    fn journal_with_items(dir: &Path) -> Journal {
        let j = Journal::open(dir).unwrap();
        let run = j.begin_run().unwrap();
        j.set_user_state("u1", "ann@contoso.com", "finished")
            .unwrap();
        j.set_user_state("u2", "bob@contoso.com", "started")
            .unwrap();
        for (user, id, folder) in [
            ("u1", "m1", "INBOX"),
            ("u1", "m2", "INBOX"),
            ("u1", "m3", "Sent"),
            ("u2", "m4", "INBOX"),
            ("u2", "m5", "INBOX"),
        ] {
            j.record_intent(
                ItemTarget {
                    user_id: user,
                    source_id: id,
                    folder_id: folder,
                    dest_folder: folder,
                },
                run,
            )
            .unwrap();
        }
        j.record_done("u1", "m1", "1", 1000, None).unwrap();
        j.record_done("u1", "m2", "2", 2500, None).unwrap();
        j.record_done("u1", "m3", "3", 500, None).unwrap();
        j.record_done("u2", "m4", "1", 42, None).unwrap();
        j.record_failed("u2", "m5", "the server refused it: <too big> & more")
            .unwrap();
        j.finish_run(run, "finished", "{\"users\":2,\"totals\":{\"folders\":3,\"messages\":4,\"skipped\":0,\"failed\":1,\"bytes\":4042},\"seconds\":1.5,\"cancelled\":false}")
            .unwrap();
        j
    }

    #[test]
    fn counts_per_user_folder_and_failures_come_from_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let report = Report::from_journal(&journal_with_items(dir.path())).unwrap();
        assert_eq!(
            report.totals,
            Counts {
                done: 4,
                failed: 1,
                pending: 0,
                bytes: 4042
            }
        );
        let ann = &report.users[0];
        assert_eq!(
            (ann.user.as_str(), ann.state.as_str(), ann.counts.done),
            ("ann@contoso.com", "finished", 3)
        );
        let folders: Vec<_> = report
            .folders
            .iter()
            .map(|f| {
                (
                    f.user.as_str(),
                    f.folder.as_str(),
                    f.counts.done,
                    f.counts.bytes,
                )
            })
            .collect();
        assert_eq!(
            folders,
            [
                ("ann@contoso.com", "INBOX", 2, 3500),
                ("ann@contoso.com", "Sent", 1, 500),
                ("bob@contoso.com", "INBOX", 1, 42),
            ]
        );
        assert_eq!(report.failures.len(), 1);
        assert_eq!(report.failures[0].user, "bob@contoso.com");
        assert_eq!(
            report.failures[0].detail,
            "the server refused it: <too big> & more"
        );
        assert_eq!(report.runs.len(), 1);
        assert_eq!(report.runs[0].status, "finished");
        assert_eq!(report.runs[0].summary.as_ref().unwrap().totals.failed, 1);
    }

    #[test]
    fn writes_json_csv_and_escaped_html() {
        let dir = tempfile::tempdir().unwrap();
        let report = Report::from_journal(&journal_with_items(dir.path())).unwrap();
        let out = dir.path().join("report");
        let files = report.write(&out).unwrap();

        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&files.json).unwrap()).unwrap();
        assert_eq!(json["totals"]["done"], 4);
        assert_eq!(
            json["failures"][0]["detail"],
            "the server refused it: <too big> & more"
        );

        let html = std::fs::read_to_string(&files.html).unwrap();
        assert!(html.contains("the server refused it: &lt;too big&gt; &amp; more"));
        assert!(!html.contains("<too big>"));
        assert!(!html.contains("<script"), "the page must be inert");

        let users = std::fs::read_to_string(&files.users_csv).unwrap();
        let mut lines = users.lines();
        assert_eq!(
            lines.next(),
            Some("user,state,done,failed,pending,bytes,note,seconds,bytes_per_second,kind,destination,mail,events,contacts,tasks")
        );
        // Then the duration and rate, which depend on the clock.
        assert!(lines
            .next()
            .unwrap()
            .starts_with("ann@contoso.com,finished,3,0,0,4000,,"));
        assert!(lines
            .next()
            .unwrap()
            .starts_with("bob@contoso.com,started,1,1,0,42,,"));
        let failures = std::fs::read_to_string(&files.failures_csv).unwrap();
        assert!(
            failures.contains(
                "bob@contoso.com,mail,INBOX,,,,The item is larger than the destination accepts.,"
            ),
            "{failures}"
        );
        assert!(
            failures.contains(",the server refused it: <too big> & more,m5"),
            "{failures}"
        );
    }

    /// Issue 15: folders by their modified UTF-7 wire names, killed runs "running" forever,
    /// failed items named by Graph ids.
    #[test]
    fn report_speaks_the_users_language() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        let finished = j.begin_run().unwrap();
        j.finish_run(finished, "finished", "{}").unwrap();
        // Its process died: recorded as running, and nobody holds the state folder.
        let killed = j.begin_run().unwrap();
        j.set_user_state("u1", "ann@contoso.com", "started")
            .unwrap();
        j.set_user_destination("u1", "ann@contoso.com", "shared", "local folder")
            .unwrap();
        for (id, folder) in [
            ("m1", "INBOX/&2DzfiQ- Party"),
            ("m2", "P&AVkA7Q-lohy a &APoBDQ-ty"),
            ("m3", "Reports 2024&IhU-25"),
        ] {
            j.record_intent(
                ItemTarget {
                    user_id: "u1",
                    source_id: id,
                    folder_id: folder,
                    dest_folder: folder,
                },
                killed,
            )
            .unwrap();
        }
        j.record_done("u1", "m1", "1", 1000, None).unwrap();
        j.record_done("u1", "m2", "2", 2000, None).unwrap();
        j.record_failed(
            "u1",
            "m3",
            "message AAMkAGI2=: cannot append message to folder Reports: NO [OVERQUOTA] Quota exceeded",
        )
        .unwrap();
        j.record_failure_details(
            "u1",
            "m3",
            Some("Q3 <budget>"),
            Some(1_700_000_000),
            Some(5_000_000),
        )
        .unwrap();

        let report = Report::from_journal(&j).unwrap();
        let statuses: Vec<_> = report.runs.iter().map(|r| r.status.as_str()).collect();
        assert_eq!(statuses, ["finished", "interrupted"]);
        let folders: Vec<_> = report.folders.iter().map(|f| f.folder.as_str()).collect();
        assert_eq!(
            folders,
            [
                "INBOX/\u{1F389} Party",
                "Přílohy a účty",
                "Reports 2024\u{2215}25"
            ]
        );
        let f = &report.failures[0];
        assert_eq!(
            (
                f.subject.as_deref(),
                f.folder.as_str(),
                f.date.as_deref(),
                f.size,
                f.reason.as_str(),
                f.advice.as_str(),
            ),
            (
                Some("Q3 <budget>"),
                "Reports 2024\u{2215}25",
                Some("2023-11-14T22:13:20Z"),
                Some(5_000_000),
                "The destination mailbox is full.",
                "Raise the user's quota at the destination, then run again.",
            )
        );
        assert!(!f.detail.contains("AAMkAGI2"), "{}", f.detail);
        let ann = &report.users[0];
        assert_eq!(ann.workloads["mail"].done, 2);
        assert!(ann.seconds.is_some() && ann.bytes_per_second.is_some());
        assert_eq!(report.throughput.iter().map(|m| m.items).sum::<u64>(), 2);

        let files = report.write(&dir.path().join("report")).unwrap();
        let html = std::fs::read_to_string(&files.html).unwrap();
        for shown in [
            "INBOX/\u{1F389} Party",
            "Přílohy a účty",
            "Reports 2024\u{2215}25",
            "Q3 &lt;budget&gt;",
            "The destination mailbox is full.",
            "<td>interrupted</td>",
            "<td>ann@contoso.com</td><td>shared</td><td>local folder</td><td>started</td>",
            "aria-label=\"Items migrated per minute\"",
            "aria-label=\"Items migrated per user\"",
            "<polyline",
        ] {
            assert!(html.contains(shown), "{shown} missing");
        }
        for hidden in ["&amp;2DzfiQ-", "%2F", "<script"] {
            assert!(!html.contains(hidden), "{hidden} shown");
        }
        // report.json carries the same data.
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&files.json).unwrap()).unwrap();
        assert_eq!(json["runs"][1]["status"], "interrupted");
        assert_eq!(json["folders"][0]["folder"], "INBOX/\u{1F389} Party");
        assert_eq!(json["failures"][0]["subject"], "Q3 <budget>");
        assert_eq!(
            json["failures"][0]["reason"],
            "The destination mailbox is full."
        );
        assert_eq!(json["users"][0]["workloads"]["mail"]["done"], 2);
        assert_eq!(json["users"][0]["kind"], "shared");
        assert_eq!(json["users"][0]["destination"], "local folder");
        let users = std::fs::read_to_string(&files.users_csv).unwrap();
        assert!(
            users.contains(",shared,local folder,2,0,0,0\n"),
            "kind, destination and items per workload: {users}"
        );
        assert_eq!(json["throughput"][0]["items"], 2);
    }

    #[test]
    fn a_run_whose_process_holds_the_state_folder_is_running() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        let _lock = StateLock::acquire(dir.path()).unwrap();
        j.begin_run().unwrap();
        let report = Report::from_journal(&j).unwrap();
        assert_eq!(report.runs[0].status, "running");
    }

    #[test]
    fn csv_cells_that_spreadsheets_would_evaluate_are_neutralised() {
        let dir = tempfile::tempdir().unwrap();
        let mut report = Report::from_journal(&journal_with_items(dir.path())).unwrap();
        report.users[0].user = "=1+1@contoso.com".into();
        report.folders[0].folder = "=HYPERLINK(\"http://evil.example\",\"x\")".into();
        report.failures[0].folder = "+SUM(A1)".into();
        report.failures[0].item = "-2+3".into();
        report.failures[0].reason = "@cmd|' /C calc'!A0".into();
        report.folders[1].folder = "\tTab".into();
        report.folders[2].folder = "\rReturn".into();
        let files = report.write(&dir.path().join("report")).unwrap();
        let cells = |path: &Path| -> Vec<String> {
            csv::Reader::from_path(path)
                .unwrap()
                .records()
                .flat_map(|r| r.unwrap().iter().map(String::from).collect::<Vec<_>>())
                .collect()
        };
        let users = cells(&files.users_csv);
        let folders = cells(&files.folders_csv);
        let failures = cells(&files.failures_csv);
        assert!(
            users.contains(&"'=1+1@contoso.com".to_string()),
            "{users:?}"
        );
        for want in [
            "'=HYPERLINK(\"http://evil.example\",\"x\")",
            "'\tTab",
            "'\rReturn",
        ] {
            assert!(folders.contains(&want.to_string()), "{folders:?}");
        }
        for want in ["'+SUM(A1)", "'-2+3", "'@cmd|' /C calc'!A0"] {
            assert!(failures.contains(&want.to_string()), "{failures:?}");
        }
        for cell in users.iter().chain(&folders).chain(&failures) {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "{cell:?}"
            );
        }
        // Plain cells are untouched: numbers, addresses, folder names.
        assert!(users.contains(&"bob@contoso.com".to_string()));
        assert!(users.contains(&"4000".to_string()));
    }

    #[test]
    fn the_html_report_forbids_scripts_and_remote_loads() {
        let dir = tempfile::tempdir().unwrap();
        let html = Report::from_journal(&journal_with_items(dir.path()))
            .unwrap()
            .html();
        let head = &html[..html.find("</head>").unwrap()];
        assert!(
            head.contains("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'\">"),
            "{head}"
        );
    }

    /// A run that wrote everything within one minute drew a polyline of one point: nothing.
    #[test]
    fn a_run_within_one_minute_still_draws_its_throughput() {
        let one = [MinuteLine {
            minute: "2026-12-06T18:29:00Z".into(),
            items: 22,
            bytes: 1000,
        }];
        let svg = throughput_chart(&one);
        assert!(
            svg.contains("points=\"40.0,10 640.0,10\""),
            "a level line across the chart: {svg}"
        );
        assert!(svg.contains("<circle"), "{svg}");
    }

    #[test]
    fn sizes_read_like_a_mail_server_quota() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1_500_000), "1.5 MB");
        assert_eq!(human_bytes(2_000_000_000_000), "2.0 TB");
    }
}
