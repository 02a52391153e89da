//! Saved migrations: a [`Project`] is a [`MigrationSpec`] with a name and the history of its
//! passes, kept as one JSON file per project in a folder ([`ProjectStore`]). Files are
//! written atomically (a private temporary file, then `rename(2)`) with mode 0600 through
//! [`crate::private_files`]. A project never holds a secret: the spec has none, passwords live
//! in the keychain. The demo project has its own file and id and never replaces a real one.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::progress::RunSummary;
use crate::spec::MigrationSpec;

/// The demo project's id (its file is `demo.json`; real projects' ids are never this).
pub const DEMO_ID: &str = "demo";

/// Which pass a run is: the first full copy, a later incremental one, or the cut-over pass
/// (deletions mirrored, then the destination's cut-over actions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub enum PassKind {
    Full,
    Incremental,
    Final,
}

/// How a pass ended; `Running` while it runs, `Interrupted` when the app quit or crashed
/// before it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub enum PassState {
    Running,
    Finished,
    Stopped,
    Failed,
    Interrupted,
}

/// One pass of a project (unix seconds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct PassRecord {
    pub kind: PassKind,
    #[ts(type = "number")]
    pub started_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional, type = "number")]
    pub finished_at: Option<u64>,
    pub state: PassState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub summary: Option<RunSummary>,
    /// Why a `failed` pass stopped (never a secret: the engine's messages hold none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub error: Option<String>,
}

/// A saved migration (unix seconds). No secret is ever in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct Project {
    pub id: String,
    pub name: String,
    pub demo: bool,
    #[ts(type = "number")]
    pub created_at: u64,
    #[ts(type = "number")]
    pub updated_at: u64,
    #[serde(flatten)]
    #[ts(flatten)]
    pub spec: MigrationSpec,
    #[serde(default)]
    pub passes: Vec<PassRecord>,
    /// Incremental passes on a schedule while the app runs (none: off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub schedule: Option<PassSchedule>,
}

/// The longest schedule: a week.
pub const MAX_SCHEDULE_HOURS: u32 = 24 * 7;

/// An incremental pass every `every_hours` hours, counted from the start of the last pass (or
/// from `since`, when the schedule was set or last fired, if that is later). One model only:
/// an interval, not a time of day, so a pass that ran long or late moves the next one too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct PassSchedule {
    pub every_hours: u32,
    /// When the schedule was set, or when it last fired (unix seconds).
    #[ts(type = "number")]
    pub since: u64,
}

/// A schedule and when it next fires, as the Migrate screen shows it (unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct ScheduledPass {
    pub every_hours: u32,
    #[ts(type = "number")]
    pub next_at: u64,
}

/// Why a schedule was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScheduleError {
    #[error("a pass every {0} hours: choose 1 to {MAX_SCHEDULE_HOURS} hours")]
    OutOfRange(u32),
}

impl PassSchedule {
    /// A schedule set at `now`.
    pub fn new(every_hours: u32, now: u64) -> Result<Self, ScheduleError> {
        if every_hours == 0 || every_hours > MAX_SCHEDULE_HOURS {
            return Err(ScheduleError::OutOfRange(every_hours));
        }
        Ok(PassSchedule {
            every_hours,
            since: now,
        })
    }

    /// When the next pass is due: one interval after the later of `since` and the last
    /// pass's start, and never before `now`. Slots missed while the app was closed (or while
    /// another pass ran) come to one pass due `now`, not one per slot; once the timer fires it
    /// records `since` ([`PassSchedule::fired`]) so the next is a whole interval later.
    pub fn next_at(&self, passes: &[PassRecord], now: u64) -> u64 {
        let last = passes.iter().map(|p| p.started_at).max().unwrap_or(0);
        let due = self
            .since
            .max(last)
            .saturating_add(u64::from(self.every_hours) * 3600);
        due.max(now)
    }

    /// Whether a pass is due at `now`.
    pub fn is_due(&self, passes: &[PassRecord], now: u64) -> bool {
        self.next_at(passes, now) <= now
    }

    /// The schedule after it fired at `now` (whether the pass could start or not: a pass that
    /// cannot start is tried again one interval later, not at every tick).
    pub fn fired(self, now: u64) -> Self {
        PassSchedule {
            since: self.since.max(now),
            ..self
        }
    }

    /// As the Migrate screen shows it.
    pub fn shown(&self, passes: &[PassRecord], now: u64) -> ScheduledPass {
        ScheduledPass {
            every_hours: self.every_hours,
            next_at: self.next_at(passes, now),
        }
    }
}

/// What the project list shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct ProjectSummary {
    pub id: String,
    pub name: String,
    pub demo: bool,
    #[ts(type = "number")]
    pub updated_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub last_pass: Option<PassRecord>,
}

impl Project {
    /// A new, empty project named `name`.
    pub fn new(name: &str, now: u64) -> Project {
        Project {
            id: new_id(),
            name: name.trim().to_string(),
            demo: false,
            created_at: now,
            updated_at: now,
            spec: MigrationSpec::default(),
            passes: Vec::new(),
            schedule: None,
        }
    }

    /// Marks a pass still recorded as running as `interrupted` (call it when no run goes on:
    /// the app quit or crashed before the pass ended). `true` when something changed.
    pub fn settle_interrupted(&mut self) -> bool {
        let mut changed = false;
        for pass in &mut self.passes {
            if pass.state == PassState::Running {
                pass.state = PassState::Interrupted;
                changed = true;
            }
        }
        changed
    }

    pub fn summary(&self) -> ProjectSummary {
        ProjectSummary {
            id: self.id.clone(),
            name: self.name.clone(),
            demo: self.demo,
            updated_at: self.updated_at,
            last_pass: self.passes.last().cloned(),
        }
    }
}

/// One domain's mail exchangers as DNS answers them (or why they could not be looked up).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct DomainMx {
    pub domain: String,
    pub mx: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub error: Option<String>,
}

/// What to check before pointing the domains at the new server: each domain's MX, the last
/// pass's result, the credentials report to hand out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct CutoverChecklist {
    pub domains: Vec<DomainMx>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub last_pass: Option<PassRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub credentials_report: Option<String>,
}

/// Why a project could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error("no project {0}")]
    Missing(String),
    #[error("'{0}' is not a project id")]
    BadId(String),
    #[error("cannot read project file {path}: {message}")]
    Unreadable { path: PathBuf, message: String },
    #[error("cannot write project file {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The folder of project files: `<id>.json` each.
#[derive(Debug, Clone)]
pub struct ProjectStore {
    dir: PathBuf,
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A fresh id: 16 random lower-case hex digits (never [`DEMO_ID`]).
fn new_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Ids name files: only `[a-z0-9-]`, so none can reach outside the folder.
fn id_ok(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

impl ProjectStore {
    pub fn new(dir: PathBuf) -> Self {
        ProjectStore { dir }
    }

    fn file(&self, id: &str) -> Result<PathBuf, ProjectError> {
        if !id_ok(id) {
            return Err(ProjectError::BadId(id.to_string()));
        }
        Ok(self.dir.join(format!("{id}.json")))
    }

    /// Every readable project, most recently updated first (an unreadable file is skipped).
    pub fn list(&self) -> Vec<Project> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut projects: Vec<Project> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                let id = name.strip_suffix(".json")?.to_string();
                self.load(&id).ok()
            })
            .collect();
        projects.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then(a.id.cmp(&b.id)));
        projects
    }

    /// The project `id`.
    pub fn load(&self, id: &str) -> Result<Project, ProjectError> {
        let path = self.file(id)?;
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ProjectError::Missing(id.to_string()))
            }
            Err(e) => {
                return Err(ProjectError::Unreadable {
                    path,
                    message: e.to_string(),
                })
            }
        };
        let project: Project =
            serde_json::from_slice(&bytes).map_err(|e| ProjectError::Unreadable {
                path: path.clone(),
                message: e.to_string(),
            })?;
        // The file's name is the id; a demo file cannot pose as a real project or back.
        if project.id != id || project.demo != (id == DEMO_ID) {
            return Err(ProjectError::Unreadable {
                path,
                message: "its id does not match its file name".into(),
            });
        }
        Ok(project)
    }

    /// Writes `project` (mode 0600, atomically: readers see the old file or the new one).
    pub fn save(&self, project: &Project) -> Result<(), ProjectError> {
        let path = self.file(&project.id)?;
        if project.demo != (project.id == DEMO_ID) {
            return Err(ProjectError::BadId(project.id.clone()));
        }
        let write = |source| ProjectError::Write {
            path: path.clone(),
            source,
        };
        crate::private_files::create_private_dir(&self.dir).map_err(write)?;
        let json = serde_json::to_vec_pretty(project)
            .map_err(|e| write(std::io::Error::other(e.to_string())))?;
        let tmp = self.dir.join(format!(".{}.json.tmp", project.id));
        // A leftover temporary file from a crash is replaced, not appended to.
        match std::fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(write(e)),
        }
        let mut file = crate::private_files::open_private_append(&tmp).map_err(write)?;
        file.write_all(&json)
            .and_then(|()| file.sync_all())
            .map_err(write)?;
        drop(file);
        std::fs::rename(&tmp, &path).map_err(write)?;
        crate::private_files::sync_dir(&self.dir).map_err(write)
    }

    /// Removes the project `id` (gone already is fine).
    pub fn delete(&self, id: &str) -> Result<(), ProjectError> {
        let path = self.file(id)?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(ProjectError::Write { path, source }),
        }
    }

    /// The folder of a project's own files (the demo's output, its journal).
    pub fn project_dir(&self, id: &str) -> Result<PathBuf, ProjectError> {
        self.file(id)?;
        Ok(self.dir.join(id))
    }
}

/// Where a project keeps the passwords of accounts it creates, unless the user chooses:
/// `<documents>/M365 Migrator/<project id>-new-accounts.csv` (never a system folder).
pub fn default_credentials_report(documents: &Path, id: &str) -> PathBuf {
    documents
        .join("M365 Migrator")
        .join(format!("{id}-new-accounts.csv"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3600;

    fn pass_at(started_at: u64) -> PassRecord {
        PassRecord {
            kind: PassKind::Incremental,
            started_at,
            finished_at: Some(started_at + 60),
            state: PassState::Finished,
            summary: None,
            error: None,
        }
    }

    #[test]
    fn a_schedule_is_due_one_interval_after_the_last_pass() {
        let schedule = PassSchedule::new(6, 1_000).expect("6 h");
        // No pass yet: one interval after it was set.
        assert_eq!(schedule.next_at(&[], 1_000), 1_000 + 6 * HOUR);
        assert!(!schedule.is_due(&[], 1_000 + 6 * HOUR - 1));
        assert!(schedule.is_due(&[], 1_000 + 6 * HOUR));
        // A manual pass after it was set moves the next one.
        let passes = [pass_at(1_000), pass_at(1_000 + 2 * HOUR)];
        assert_eq!(
            schedule.next_at(&passes, 1_000 + 3 * HOUR),
            1_000 + 8 * HOUR
        );
        assert!(!schedule.is_due(&passes, 1_000 + 6 * HOUR));
    }

    #[test]
    fn slots_missed_while_the_app_was_closed_come_to_one_pass_due_now() {
        let schedule = PassSchedule::new(1, 0).expect("1 h");
        let passes = [pass_at(0)];
        // Opened three days later: due now, not 72 times.
        let now = 72 * HOUR + 17;
        assert_eq!(schedule.next_at(&passes, now), now);
        assert!(schedule.is_due(&passes, now));
        // Once fired (and its pass recorded), the next is a whole interval later.
        let fired = schedule.fired(now);
        let passes = [pass_at(0), pass_at(now)];
        assert_eq!(fired.next_at(&passes, now), now + HOUR);
        assert!(!fired.is_due(&passes, now + 1));
    }

    #[test]
    fn regression_a_pass_that_cannot_start_is_not_tried_again_at_every_tick() {
        // The timer fires, the pass is refused (no pass recorded): the next try is an
        // interval later, never in the past, so the timer does not loop.
        let schedule = PassSchedule::new(2, 0).expect("2 h");
        let now = 10 * HOUR;
        assert!(schedule.is_due(&[], now));
        let fired = schedule.fired(now);
        for later in [now, now + 1, now + HOUR, now + 2 * HOUR - 1] {
            assert!(!fired.is_due(&[], later), "due again at {later}");
            assert!(fired.next_at(&[], later) >= later);
        }
        assert!(fired.is_due(&[], now + 2 * HOUR));
    }

    #[test]
    fn a_schedule_outside_one_hour_to_a_week_is_refused() {
        assert_eq!(PassSchedule::new(0, 5), Err(ScheduleError::OutOfRange(0)));
        assert_eq!(
            PassSchedule::new(MAX_SCHEDULE_HOURS + 1, 5),
            Err(ScheduleError::OutOfRange(MAX_SCHEDULE_HOURS + 1))
        );
        assert!(PassSchedule::new(MAX_SCHEDULE_HOURS, 5).is_ok());
    }

    #[test]
    fn an_old_project_file_without_a_schedule_reads_as_off() {
        let mut json = serde_json::to_value(Project::new("Old", 1)).expect("json");
        assert!(json.get("schedule").is_none());
        json.as_object_mut().expect("object").remove("schedule");
        let project: Project = serde_json::from_value(json).expect("reads");
        assert_eq!(project.schedule, None);
    }

    #[test]
    fn projects_sit_side_by_side_and_the_demo_never_overwrites_one() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = ProjectStore::new(dir.path().join("projects"));
        let a = Project::new("Contoso", 10);
        let mut b = Project::new("Fabrikam", 20);
        store.save(&a).expect("save a");
        store.save(&b).expect("save b");
        b.updated_at = 30;
        store.save(&b).expect("save b again");
        let mut demo = Project::new("Demo", 40);
        demo.id = DEMO_ID.into();
        demo.demo = true;
        store.save(&demo).expect("save demo");
        // A real project cannot take the demo's file, nor the demo a real one's.
        let mut fake = a.clone();
        fake.id = DEMO_ID.into();
        assert!(store.save(&fake).is_err());
        let mut demo_as_a = demo.clone();
        demo_as_a.id = a.id.clone();
        assert!(store.save(&demo_as_a).is_err());
        let ids: Vec<String> = store.list().into_iter().map(|p| p.id).collect();
        assert_eq!(ids, vec![DEMO_ID.to_string(), b.id.clone(), a.id.clone()]);
        assert_eq!(store.load(&a.id).expect("a"), a);
        assert!(matches!(
            store.load("../etc/passwd"),
            Err(ProjectError::BadId(_))
        ));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode =
                std::fs::metadata(dir.path().join("projects").join(format!("{}.json", a.id)))
                    .expect("file")
                    .permissions()
                    .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        store.delete(&a.id).expect("delete");
        assert!(matches!(store.load(&a.id), Err(ProjectError::Missing(_))));
    }
}
