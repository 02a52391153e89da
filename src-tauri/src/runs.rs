//! The last run, remembered across app starts: what was asked (settings only, no secrets),
//! where its journal lives and what the journal says of it. The Report screen's buttons open
//! this run's files only; their paths are resolved here, never taken from the web view.

use std::path::{Path, PathBuf};

use migrator_core::config::read_accounts_csv;
use migrator_core::engine::{FailureLine, Report};
use migrator_core::journal::{Journal, LockError, StateLock};
use migrator_core::progress::RunSummary;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::IpcError;
use migrator_core::spec::{DestinationSettings, MigrationSpec};

/// The file under the app's data folder that remembers the last run.
const LAST_RUN_FILE: &str = "last-run.json";
/// Failed items the Report screen lists (the HTML report and failures.csv have them all).
const FAILURES_SHOWN: usize = 500;

/// What a run was asked to do, enough to run it again (the journal makes that incremental).
#[derive(Debug, Clone, Serialize, Deserialize, TS)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
#[ts(export)]
pub enum RunRequest {
    /// The built-in simulated tenant into a folder.
    Demo { out_dir: String },
    /// A pass of a project.
    Migration { request: Box<MigrationSpec> },
}

/// The remembered run: its request and its state folder (journal and reports).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RememberedRun {
    pub request: RunRequest,
    pub state_dir: PathBuf,
}

impl RememberedRun {
    /// Remembers this run as the last one (written before it starts, so a crash leaves it).
    pub fn save(&self, data_dir: &Path) -> Result<(), IpcError> {
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| IpcError::new("internal", format!("cannot encode the run: {e}")))?;
        std::fs::create_dir_all(data_dir)
            .and_then(|()| std::fs::write(data_dir.join(LAST_RUN_FILE), json))
            .map_err(|e| {
                IpcError::new(
                    "io",
                    format!(
                        "cannot write to the app's data folder {}: {e}",
                        data_dir.display()
                    ),
                )
            })
    }

    /// The last run, if one was remembered (an unreadable record counts as none).
    pub fn load(data_dir: &Path) -> Option<RememberedRun> {
        let bytes = std::fs::read(data_dir.join(LAST_RUN_FILE)).ok()?;
        match serde_json::from_slice(&bytes) {
            Ok(run) => Some(run),
            Err(e) => {
                tracing::warn!("ignoring the unreadable record of the last run: {e}");
                None
            }
        }
    }

    pub fn report_html(&self) -> PathBuf {
        self.state_dir.join("report").join("report.html")
    }

    /// The journal, when the run got far enough to create one (opening never creates it).
    fn journal(&self) -> Option<Journal> {
        if !self.state_dir.join(Journal::FILE_NAME).is_file() {
            return None;
        }
        Journal::open(&self.state_dir)
            .map_err(|e| tracing::warn!("cannot read the journal: {e}"))
            .ok()
    }
}

/// Writes the report files of the journal in `state_dir` into `state_dir/report` (after every
/// run, finished or not); a failure is logged, the run's result stands. Left to the other
/// process when one runs on `state_dir` now (this run was refused as busy).
pub fn write_report(state_dir: &Path) {
    if let Err(e @ LockError::Busy { .. }) = StateLock::check_free(state_dir) {
        tracing::info!("not writing the run report: {e}");
        return;
    }
    let written = Journal::open(state_dir)
        .map_err(|e| e.to_string())
        .and_then(|j| Report::from_journal(&j).map_err(|e| e.to_string()))
        .and_then(|r| {
            r.write(&state_dir.join("report"))
                .map_err(|e| e.to_string())
        });
    if let Err(e) = written {
        tracing::warn!(
            "cannot write the run report in {}: {e}",
            state_dir.display()
        );
    }
}

/// How the last run ended, as its journal says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub enum LastRunState {
    /// Running now, in this app.
    Running,
    Finished,
    /// Stopped by the user; the next run resumes.
    Stopped,
    /// Never finished: the app was closed, the computer stopped, or an error stopped it.
    Interrupted,
    /// Running now in another process (the CLI, another copy of the app): its state folder is
    /// locked, so it cannot be resumed from here until that run ends.
    RunningElsewhere,
}

/// The last run, for the start screen (resume it, or run an incremental pass).
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct LastRun {
    pub request: RunRequest,
    pub state: LastRunState,
    /// Unix seconds.
    #[ts(type = "number")]
    pub started_at: i64,
    /// Items the journal holds as written, failed, and begun but not confirmed.
    #[ts(type = "number")]
    pub done: u64,
    #[ts(type = "number")]
    pub failed: u64,
    #[ts(type = "number")]
    pub pending: u64,
    #[ts(optional)]
    pub summary: Option<RunSummary>,
    /// With `runningElsewhere`: who runs it ("process 4242 on host, started ..."), when it
    /// recorded itself.
    #[ts(optional)]
    pub held_by: Option<String>,
}

/// What the journal says of the remembered run; `running` when this app runs it now.
pub fn last_run(data_dir: &Path, running: bool) -> Option<LastRun> {
    let remembered = RememberedRun::load(data_dir)?;
    let mut last = LastRun {
        request: remembered.request.clone(),
        state: if running {
            LastRunState::Running
        } else {
            LastRunState::Interrupted
        },
        started_at: 0,
        done: 0,
        failed: 0,
        pending: 0,
        summary: None,
        held_by: None,
    };
    if running {
        return Some(last);
    }
    let elsewhere = match StateLock::check_free(&remembered.state_dir) {
        Ok(()) => None,
        Err(LockError::Busy { holder, .. }) => Some(holder.map(|h| h.to_string())),
        Err(e) => {
            tracing::warn!("cannot tell whether another process runs the last run: {e}");
            None
        }
    };
    let journal = remembered.journal()?;
    let run = journal.runs().ok()?.pop()?;
    last.started_at = run.started_at;
    last.state = match run.status.as_str() {
        "finished" => LastRunState::Finished,
        "stopped" => LastRunState::Stopped,
        _ => LastRunState::Interrupted,
    };
    if let Some(held_by) = elsewhere {
        last.state = LastRunState::RunningElsewhere;
        last.held_by = held_by;
    }
    last.summary = run
        .summary
        .and_then(|json| serde_json::from_str::<RunSummary>(&json).ok());
    if let Ok(report) = Report::from_journal(&journal) {
        last.done = report.totals.done;
        last.failed = report.totals.failed;
        last.pending = report.totals.pending;
    }
    Some(last)
}

/// Accounts the migration created at the destination and where their passwords are.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct CreatedAccounts {
    #[ts(type = "number")]
    pub count: u64,
    pub credentials_report: String,
}

/// The Report screen's details of the last run, from its journal and report files.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct RunDetails {
    /// Where the HTML report is, when it was written.
    #[ts(optional)]
    pub report_html: Option<String>,
    pub state_dir: String,
    #[ts(optional)]
    pub log_dir: Option<String>,
    /// The first failed items (all of them are in the HTML report and failures.csv).
    pub failures: Vec<FailureLine>,
    #[ts(type = "number")]
    pub failures_total: u64,
    #[ts(optional)]
    pub accounts: Option<CreatedAccounts>,
}

/// The details of the remembered run; `None` when no run was remembered.
pub fn run_details(data_dir: &Path, log_dir: Option<&Path>) -> Option<RunDetails> {
    let remembered = RememberedRun::load(data_dir)?;
    let html = remembered.report_html();
    let mut details = RunDetails {
        report_html: html.is_file().then(|| html.display().to_string()),
        state_dir: remembered.state_dir.display().to_string(),
        log_dir: log_dir.map(|d| d.display().to_string()),
        failures: Vec::new(),
        failures_total: 0,
        accounts: None,
    };
    if let Some(report) = remembered
        .journal()
        .and_then(|j| Report::from_journal(&j).ok())
    {
        details.failures_total = report.failures.len() as u64;
        details.failures = report.failures.into_iter().take(FAILURES_SHOWN).collect();
    }
    if let RunRequest::Migration { request } = &remembered.request {
        if let DestinationSettings::IceWarp {
            credentials_report, ..
        } = &request.destination
        {
            let path = Path::new(credentials_report.trim());
            // Only the number of addresses leaves this function, never a password.
            let count = read_accounts_csv(path).map_or(0, |accounts| accounts.len() as u64);
            details.accounts = Some(CreatedAccounts {
                count,
                credentials_report: path.display().to_string(),
            });
        }
    }
    Some(details)
}

/// A file or folder of the last run the Report screen can open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub enum RunFile {
    /// The HTML report of the last run.
    Report,
    /// The app's log folder.
    LogFolder,
}

/// The path of `file` for the remembered run; an error when there is none yet.
pub fn resolve(
    file: RunFile,
    data_dir: &Path,
    log_dir: Option<&Path>,
) -> Result<PathBuf, IpcError> {
    let missing = |what: &str| IpcError::new("missing", format!("There is no {what} yet."));
    let path = match file {
        RunFile::LogFolder => log_dir.ok_or_else(|| missing("log folder"))?.to_path_buf(),
        RunFile::Report => RememberedRun::load(data_dir)
            .ok_or_else(|| missing("report"))?
            .report_html(),
    };
    if !path.exists() {
        return Err(missing(match file {
            RunFile::Report => "report",
            RunFile::LogFolder => "log folder",
        }));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_accounts_are_counted_and_their_passwords_stay_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("new-accounts.csv");
        std::fs::write(
            &csv,
            "adele@contoso.com,Xy7!first-pass\nalex@contoso.com,Qz9?second-pass\n",
        )
        .unwrap();
        let request: MigrationSpec = serde_json::from_value(serde_json::json!({
            "source": {"tenantId": "contoso.com", "clientId": "00000000-0000-0000-0000-000000000001", "cloud": "global"},
            "destination": {"kind": "iceWarp", "host": "mail.example.com", "adminEmail": "admin@example.com",
                            "credentialsReport": csv},
        }))
        .unwrap();
        RememberedRun {
            request: RunRequest::Migration {
                request: Box::new(request),
            },
            state_dir: dir.path().join("state"),
        }
        .save(dir.path())
        .unwrap();
        let details = run_details(dir.path(), None).expect("a remembered run");
        let accounts = details.accounts.as_ref().expect("an IceWarp run");
        assert_eq!(accounts.count, 2);
        assert_eq!(accounts.credentials_report, csv.display().to_string());
        // No journal yet: no report, nothing failed, and the state folder is not created.
        assert_eq!(details.report_html, None);
        assert_eq!(details.failures_total, 0);
        assert!(!dir.path().join("state").exists());
        let json = serde_json::to_string(&details).unwrap();
        assert!(
            !json.contains("first-pass") && !json.contains("second-pass"),
            "{json}"
        );
    }

    #[test]
    fn failed_items_are_named_by_subject_date_and_size_in_run_details() {
        use migrator_core::journal::ItemTarget;
        let dir = tempfile::tempdir().unwrap();
        let state_dir = dir.path().join("state");
        let journal = Journal::open(&state_dir).unwrap();
        let run = journal.begin_run().unwrap();
        for id in ["AAMkAGI2-named", "AAMkAGI2-unnamed"] {
            let target = ItemTarget {
                user_id: "adele@contoso.com",
                source_id: id,
                folder_id: "inbox",
                dest_folder: "INBOX",
            };
            journal.record_intent(target, run).unwrap();
            journal
                .record_failed("adele@contoso.com", id, "message too large")
                .unwrap();
        }
        journal
            .record_failure_details(
                "adele@contoso.com",
                "AAMkAGI2-named",
                Some("Invoice scans"),
                Some(1_700_000_000),
                Some(31_457_280),
            )
            .unwrap();
        drop(journal);
        RememberedRun {
            request: RunRequest::Demo {
                out_dir: dir.path().display().to_string(),
            },
            state_dir,
        }
        .save(dir.path())
        .unwrap();
        let details = run_details(dir.path(), None).expect("a remembered run");
        assert_eq!(details.failures_total, 2);
        let json = serde_json::to_value(&details.failures).unwrap();
        let named = json
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["item"] == "AAMkAGI2-named")
            .expect("the named failure");
        assert_eq!(named["subject"], "Invoice scans", "{json}");
        assert_eq!(named["date"], "2023-11-14T22:13:20Z", "{json}");
        assert_eq!(named["size"], 31_457_280, "{json}");
        let unnamed = json
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["item"] == "AAMkAGI2-unnamed")
            .expect("the unnamed failure");
        // Nothing recorded: the fields are null, so the page shows the Graph id.
        assert!(unnamed["subject"].is_null(), "{json}");
        assert!(unnamed["date"].is_null(), "{json}");
    }

    #[test]
    fn an_unreadable_record_of_the_last_run_counts_as_none() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LAST_RUN_FILE), "{not json").unwrap();
        assert!(last_run(dir.path(), false).is_none());
        let err = resolve(RunFile::Report, dir.path(), None).unwrap_err();
        assert_eq!(err.code, "missing");
    }
}
