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
use crate::graph::permissions::PERMISSIONS;
use crate::journal::{Journal, JournalError};
use crate::progress::RunSummary;

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
    /// The application permissions the migrator reads with.
    pub permissions: Vec<&'static str>,
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
    #[serde(flatten)]
    pub counts: Counts,
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
    pub folder: String,
    #[serde(flatten)]
    pub counts: Counts,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct FailureLine {
    pub user: String,
    pub folder: String,
    pub item: String,
    pub reason: String,
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

fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
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
        let mut per_folder: BTreeMap<(String, String), Counts> = BTreeMap::new();
        let mut totals = Counts::default();
        for g in journal.item_groups()? {
            let user = name(&g.user_id);
            per_user
                .entry(user.clone())
                .or_default()
                .add(&g.state, g.count, g.bytes);
            per_folder
                .entry((user, g.dest_folder.clone()))
                .or_default()
                .add(&g.state, g.count, g.bytes);
            totals.add(&g.state, g.count, g.bytes);
        }
        let mut user_lines: Vec<UserLine> = users
            .iter()
            .map(|u| UserLine {
                user: u.address.clone(),
                state: u.state.clone(),
                note: u.note.clone(),
                counts: per_user.remove(&u.address).unwrap_or_default(),
            })
            .collect();
        // Items of users the users table does not name (a journal from a crashed first run).
        user_lines.extend(per_user.into_iter().map(|(user, counts)| UserLine {
            user,
            state: "unknown".into(),
            note: None,
            counts,
        }));

        let runs = journal
            .runs()?
            .into_iter()
            .map(|r| RunLine {
                id: r.id,
                started_at: rfc3339(r.started_at),
                finished_at: r.finished_at.map(rfc3339),
                seconds: r.finished_at.map(|f| f - r.started_at),
                status: r.status,
                summary: r.summary.and_then(|s| serde_json::from_str(&s).ok()),
            })
            .collect();
        let failures = journal
            .failed_items()?
            .into_iter()
            .map(|f| FailureLine {
                user: name(&f.user_id),
                folder: f.dest_folder,
                item: f.source_id,
                reason: f.reason,
            })
            .collect();
        Ok(Report {
            generated_at: rfc3339(time::OffsetDateTime::now_utc().unix_timestamp()),
            totals,
            runs,
            not_migrated: NotMigrated::of(&user_lines),
            users: user_lines,
            folders: per_folder
                .into_iter()
                .map(|((user, folder), counts)| FolderLine {
                    user,
                    folder,
                    counts,
                })
                .collect(),
            failures,
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
                "user", "state", "done", "failed", "pending", "bytes", "note",
            ],
            self.users.iter().map(|u| {
                let mut row = vec![u.user.clone(), u.state.clone()];
                row.extend(counts(&u.counts));
                row.push(u.note.clone().unwrap_or_default());
                row
            }),
        )?;
        write_csv(
            &files.folders_csv,
            &["user", "folder", "done", "failed", "pending", "bytes"],
            self.folders.iter().map(|f| {
                let mut row = vec![f.user.clone(), f.folder.clone()];
                row.extend(counts(&f.counts));
                row
            }),
        )?;
        write_csv(
            &files.failures_csv,
            &["user", "folder", "item", "reason"],
            self.failures.iter().map(|f| {
                vec![
                    f.user.clone(),
                    f.folder.clone(),
                    f.item.clone(),
                    f.reason.clone(),
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
        counts_table(
            &mut h,
            ["Users", "User", "State"],
            self.users
                .iter()
                .zip(&states)
                .map(|(u, state)| (&u.user, state, &u.counts)),
        );
        counts_table(
            &mut h,
            ["Folders", "User", "Folder"],
            self.folders.iter().map(|f| (&f.user, &f.folder, &f.counts)),
        );

        h.push_str(&format!(
            "<h2>Failed items ({})</h2>\n",
            self.failures.len()
        ));
        if self.failures.is_empty() {
            h.push_str("<p>None.</p>\n");
        } else {
            h.push_str(
                "<table><tr><th>User</th><th>Folder</th><th>Item</th><th>Reason</th></tr>\n",
            );
            for f in &self.failures {
                h.push_str(&format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                    esc(&f.user),
                    esc(&f.folder),
                    esc(&f.item),
                    esc(&f.reason)
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
            json["failures"][0]["reason"],
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
            Some("user,state,done,failed,pending,bytes,note")
        );
        assert_eq!(lines.next(), Some("ann@contoso.com,finished,3,0,0,4000,"));
        assert_eq!(lines.next(), Some("bob@contoso.com,started,1,1,0,42,"));
        let failures = std::fs::read_to_string(&files.failures_csv).unwrap();
        assert!(
            failures.contains("bob@contoso.com,INBOX,m5,the server refused it: <too big> & more")
        );
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

    #[test]
    fn sizes_read_like_a_mail_server_quota() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1_500_000), "1.5 MB");
        assert_eq!(human_bytes(2_000_000_000_000), "2.0 TB");
    }
}
