//! Each mailbox's plan counts, kept in the state folder (`mailbox-counts.json`) with when
//! they were taken, so a plan reuses them without reading the mailbox again and a run knows
//! its totals before its first copy ([`crate::progress::RunSnapshot`]).
//!
//! Counts hold for the workloads and date limits they were taken with: a plan with other
//! date limits counts again, and a run uses a mailbox's counts only for workloads that were
//! counted. A mailbox whose counting met a problem is not kept (the next plan tries again).
//! The file holds addresses and counts, no secret; it is written whole and renamed into place.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::plan::PlanUser;
use crate::config::{DateLimits, Workload};
use crate::graph::types::User;
use crate::private_files::{create_owned_dir, sync_dir};
use crate::progress::{PlannedMailbox, ProgressEvent};

/// The file's name in the state folder.
pub const FILE_NAME: &str = "mailbox-counts.json";

/// Counts by Graph user id, loaded from the state folder (empty without one).
#[derive(Debug, Default)]
pub(super) struct MailboxCounts {
    path: Option<PathBuf>,
    file: CountsFile,
    changed: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CountsFile {
    mailboxes: BTreeMap<String, Counted>,
}

/// One mailbox's counts and what they were taken for.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Counted {
    workloads: Vec<Workload>,
    /// [`DateLimits::fingerprint`] of the plan.
    limits: String,
    row: PlanUser,
}

impl MailboxCounts {
    /// The counts kept in `state_dir`; none when there is no state folder, no file yet, or a
    /// file this version cannot read (it is then rewritten by the next plan).
    pub(super) fn load(state_dir: Option<&Path>) -> Self {
        let Some(dir) = state_dir else {
            return MailboxCounts::default();
        };
        let path = dir.join(FILE_NAME);
        let file = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(path = %path.display(), "the kept plan counts cannot be read, counting again: {e}");
                CountsFile::default()
            }),
            Err(_) => CountsFile::default(),
        };
        MailboxCounts {
            path: Some(path),
            file,
            changed: false,
        }
    }

    /// The counts of user `id` taken within `limits` for at least `workloads`.
    fn covering(&self, id: &str, workloads: &[Workload], limits: &DateLimits) -> Option<&Counted> {
        let counted = self.file.mailboxes.get(id)?;
        let covers = counted.limits == limits.fingerprint()
            && workloads.iter().all(|w| counted.workloads.contains(w));
        covers.then_some(counted)
    }

    /// The counts of user `id` taken for exactly these workloads and limits.
    pub(super) fn for_plan(
        &self,
        id: &str,
        workloads: &[Workload],
        limits: &DateLimits,
    ) -> Option<PlanUser> {
        let counted = self.covering(id, workloads, limits)?;
        (counted.workloads.len() == workloads.len()).then(|| counted.row.clone())
    }

    /// Items a run of `workloads` within `limits` will process in user `id`'s mailbox, when
    /// a plan counted all of them.
    pub(super) fn items_for_run(
        &self,
        id: &str,
        workloads: &[Workload],
        limits: &DateLimits,
    ) -> Option<u64> {
        let row = &self.covering(id, workloads, limits)?.row;
        if row.not_migrated.is_some() {
            return None;
        }
        Some(
            workloads
                .iter()
                .map(|w| match w {
                    Workload::Mail => row.items,
                    Workload::Calendar => row.events,
                    Workload::Contacts => row.contacts,
                    Workload::Tasks => row.tasks,
                })
                .sum(),
        )
    }

    /// True when a plan found that user `id` has no Exchange mailbox (whatever it counted
    /// for): the run does not size it (its facts read still tells, should it have one now).
    pub(super) fn has_no_mailbox(&self, id: &str) -> bool {
        (self.file.mailboxes.get(id))
            .is_some_and(|c| c.row.not_migrated.as_deref() == Some(super::NO_MAILBOX))
    }

    /// Keeps `row`, counted for `workloads` and `limits`, for user `id`.
    pub(super) fn keep(
        &mut self,
        id: &str,
        workloads: &[Workload],
        limits: &DateLimits,
        row: &PlanUser,
    ) {
        if row.problem.is_some() {
            return;
        }
        let counted = Counted {
            workloads: workloads.to_vec(),
            limits: limits.fingerprint(),
            row: row.clone(),
        };
        self.file.mailboxes.insert(id.to_string(), counted);
        self.changed = true;
    }

    /// Writes the counts back when a plan added any; a failure is logged, not fatal (the
    /// plan is still right, only the next one counts again).
    pub(super) fn save(&mut self) {
        let Some(path) = &self.path else { return };
        if !self.changed {
            return;
        }
        if let Err(e) = write_whole(path, &self.file) {
            tracing::warn!(path = %path.display(), "cannot keep the plan counts: {e}");
        } else {
            self.changed = false;
        }
    }
}

fn write_whole(path: &Path, file: &CountsFile) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    create_owned_dir(dir)?;
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    temp.write_all(&serde_json::to_vec(file).map_err(std::io::Error::other)?)?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir)
}

/// The run's [`ProgressEvent::RunPlanned`]: `mailboxes` in the order the run starts them,
/// each with the items a plan counted (`counts`) for the run's workloads and limits.
pub(super) fn run_planned<'a>(
    counts: &MailboxCounts,
    workloads: &[Workload],
    limits: &DateLimits,
    mailboxes: impl Iterator<Item = &'a User>,
) -> ProgressEvent {
    ProgressEvent::RunPlanned {
        mailboxes: mailboxes
            .map(|u| PlannedMailbox {
                user: u.mail.clone().unwrap_or_default(),
                items: counts.items_for_run(&u.id, workloads, limits),
            })
            .collect(),
    }
}
