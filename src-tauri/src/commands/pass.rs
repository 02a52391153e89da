//! Passes of the open project: checked by the core's validation, secrets from the keychain,
//! run by the engine in the background, recorded in the project's history, announced by a
//! desktop notification when they end.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use migrator_core::engine::{self, Destination, RunControl, RunOptions};
use migrator_core::progress::{Reporter, RunSummary};
use migrator_core::project::{unix_now, PassKind, PassRecord, PassState, DEMO_ID};
use migrator_core::secrets::Secret;
use migrator_core::spec::{Completeness, MigrationSpec};
use tauri::{AppHandle, Manager, Runtime, State};

use super::destination::open_destination;
use super::keychain::client_secret;
use super::project::{current_project, store};
use super::{blocking, data_dir};
use crate::runs::{self, RememberedRun, RunRequest};
use crate::state::SecretPlaces;
use crate::{AppState, ChannelReporter, IpcError};

/// A migration ready to start: the secrets read from the keychain, the destination opened.
pub struct PreparedRun {
    source: migrator_core::config::SourceConfig,
    secret: Secret,
    target: Destination,
    options: RunOptions,
}

impl PreparedRun {
    /// The folder of the run's journal and reports.
    pub fn state_dir(&self) -> PathBuf {
        self.options.state_dir.clone().unwrap_or_default()
    }

    /// Runs it (the core's engine), then writes the report files beside the journal.
    pub async fn run(
        self,
        reporter: Arc<dyn Reporter>,
        control: RunControl,
    ) -> Result<RunSummary, IpcError> {
        let state_dir = self.state_dir();
        let result = engine::run(
            &self.source,
            &self.secret,
            &self.target,
            reporter,
            control,
            self.options,
        )
        .await;
        runs::write_report(&state_dir);
        Ok(result?)
    }
}

/// Checks `spec` with the core's validation, reads its secrets and opens its destination;
/// the journal goes beside a destination folder, or under `data_dir` for a server. The final
/// pass mirrors deletions and runs the destination's cut-over actions.
pub async fn prepare(
    places: SecretPlaces,
    data_dir: &Path,
    spec: &MigrationSpec,
    kind: PassKind,
) -> Result<PreparedRun, IpcError> {
    IpcError::refuse_fields(spec.field_errors(Completeness::Ready))?;
    let secret = client_secret(places.clone(), &spec.source).await?;
    let target = open_destination(places, &spec.destination, &spec.rules).await?;
    // A server's journal lives in the app's data folder, one per tenant and server.
    let server_dir = |settings: &migrator_core::dest::imap::ImapSettings| {
        let name = format!(
            "{}-{}-{}",
            spec.source.tenant_id, settings.host, settings.port
        );
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        data_dir.join("journal").join(safe)
    };
    let state_dir = match &target {
        Destination::Folder(path) => path.join(".m365-migrator"),
        Destination::Imap { settings, .. } => server_dir(settings),
        Destination::IceWarp(d) => server_dir(&d.imap),
    };
    let options = spec
        .run_options()
        .map_err(|e| IpcError::refuse_fields(vec![e]).unwrap_err())?;
    let final_pass = kind == PassKind::Final;
    Ok(PreparedRun {
        source: spec.source.clone(),
        secret,
        target,
        options: RunOptions {
            state_dir: Some(state_dir),
            final_pass,
            mirror_deletions: final_pass,
            ..options
        },
    })
}

/// Runs a pass of `spec` ([`prepare`], then [`PreparedRun::run`]).
pub async fn migrate(
    places: SecretPlaces,
    data_dir: &Path,
    spec: &MigrationSpec,
    reporter: Arc<dyn Reporter>,
    control: RunControl,
) -> Result<RunSummary, IpcError> {
    prepare(places, data_dir, spec, PassKind::Full)
        .await?
        .run(reporter, control)
        .await
}

/// Tells the desktop that a pass of `name` ended (the window may be hidden for hours): how,
/// and what moved. Never a secret: counts and the engine's message only.
pub(crate) fn notify_end<R: Runtime>(app: &AppHandle<R>, name: &str, record: &PassRecord) {
    let how = match record.state {
        PassState::Finished => "finished",
        PassState::Stopped => "stopped",
        _ => "failed",
    };
    let title = format!("{name}: pass {how}");
    let body = match (&record.summary, &record.error) {
        (Some(s), _) => format!(
            "{} mailboxes, {} messages, {} events, {} contacts, {} tasks; {} failed",
            s.users,
            s.totals.messages,
            s.totals.events,
            s.totals.contacts,
            s.totals.tasks,
            s.totals.failed
        ),
        (None, Some(error)) => error.clone(),
        (None, None) => String::new(),
    };
    match app.state::<AppState>().notifier() {
        Some(notify) => notify(&title, &body),
        None => {
            use tauri_plugin_notification::NotificationExt;
            if let Err(e) = app
                .notification()
                .builder()
                .title(&title)
                .body(&body)
                .show()
            {
                tracing::info!("no desktop notification: {e}");
            }
        }
    }
}

/// Refuses a run whose state folder another process (the CLI, another copy of the app) runs
/// on now: said before anything starts, as the engine would refuse it.
pub(crate) fn check_free(state_dir: &Path) -> Result<(), IpcError> {
    match migrator_core::journal::StateLock::check_free(state_dir) {
        Err(e @ migrator_core::journal::LockError::Busy { .. }) => {
            Err(IpcError::new("busy", crate::ipc_error::message_chain(&e)))
        }
        _ => Ok(()),
    }
}

/// Gives the run the Plan's counts: `plan_migration` keeps them in the project's folder, the
/// engine reads them from the run's state folder for its `runPlanned` event (the snapshot's
/// totals over the whole run from the start). Counts taken for other workloads or date
/// limits are ignored by the engine; a copy that fails leaves the run without them (logged).
fn hand_over_plan_counts(project_dir: &Path, state_dir: &Path) {
    let kept = project_dir.join(engine::COUNTS_FILE);
    if !kept.is_file() {
        return;
    }
    let copied = std::fs::create_dir_all(state_dir)
        .and_then(|()| std::fs::copy(&kept, state_dir.join(engine::COUNTS_FILE)));
    if let Err(e) = copied {
        tracing::warn!("the run starts without the Plan's counts: {e}");
    }
}

/// Registers a run with a reporter no page watches yet (`watch_run` attaches one), so
/// Pause/Stop, `run_status` and a reloaded page reach it.
pub(crate) fn begin(state: &AppState) -> Result<(RunControl, Arc<ChannelReporter>), IpcError> {
    let control = state
        .start_run()
        .ok_or_else(|| IpcError::new("busy", "A migration is already running."))?;
    let reporter = Arc::new(ChannelReporter::unwatched());
    state.set_reporter(reporter.clone());
    Ok((control, reporter))
}

/// Starts a pass of the open project (`users`: only those) in the background, recorded in
/// its history; returns once it has started. Bad settings and missing secrets are refused
/// before anything moves.
pub(crate) async fn pass<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    kind: PassKind,
    users: Option<Vec<String>>,
) -> Result<(), IpcError> {
    let data_dir = data_dir(&app, &state)?;
    let mut project = current_project(&app, &state)?;
    if project.id == DEMO_ID {
        return Err(IpcError::new("invalid", "The demo runs with Run demo."));
    }
    let mut spec = project.spec.clone();
    if let Some(users) = users {
        spec.selection.users = users;
    }
    let (control, reporter) = begin(&state)?;
    let started = async {
        let awake_app = app.clone();
        blocking(move || Ok(awake_app.state::<AppState>().keep_awake())).await?;
        let prepared = prepare(state.secrets(), &data_dir, &spec, kind).await?;
        check_free(&prepared.state_dir())?;
        let project_dir = store(&app, &state)?.project_dir(&project.id)?;
        hand_over_plan_counts(&project_dir, &prepared.state_dir());
        RememberedRun {
            request: RunRequest::Migration {
                request: Box::new(spec.clone()),
            },
            state_dir: prepared.state_dir(),
        }
        .save(&data_dir)?;
        project.passes.push(PassRecord {
            kind,
            started_at: unix_now(),
            finished_at: None,
            state: PassState::Running,
            summary: None,
            error: None,
        });
        store(&app, &state)?.save(&project)?;
        Ok::<_, IpcError>(prepared)
    }
    .await;
    let prepared = match started {
        Ok(prepared) => prepared,
        Err(e) => {
            state.finish_run();
            return Err(e);
        }
    };
    tauri::async_runtime::spawn(async move {
        let ran = prepared.run(reporter, control.clone()).await;
        let state = app.state::<AppState>();
        if let Some(record) = project.passes.last_mut() {
            record.finished_at = Some(unix_now());
            record.state = match &ran {
                Err(_) => PassState::Failed,
                Ok(_) if control.is_cancelled() => PassState::Stopped,
                Ok(_) => PassState::Finished,
            };
            record.summary = ran.as_ref().ok().cloned();
            record.error = ran.as_ref().err().map(|e| e.message.clone());
        }
        if let Err(e) = store(&app, &state).and_then(|s| Ok(s.save(&project)?)) {
            tracing::warn!("cannot record the pass in the project: {}", e.message);
        }
        // Idle as soon as the pass is on record: a window closed from now on quits at once.
        state.finish_run();
        if let Some(record) = project.passes.last() {
            notify_end(&app, &project.name, record);
        }
    });
    Ok(())
}

/// Starts a pass of the open project (full, incremental, or the final cut-over pass) in the
/// background; its progress is in `run_status`/`watch_run`, its result in the project's
/// `passes` once it ends.
#[tauri::command]
pub(crate) async fn start_pass<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    kind: PassKind,
) -> Result<(), IpcError> {
    pass(app, state, kind, None).await
}

/// Retries the failed items of one mailbox (`user`) or all: an incremental pass, since the
/// journal retries every failed item on the next run.
#[tauri::command]
pub(crate) async fn retry_failed<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    user: Option<String>,
) -> Result<(), IpcError> {
    let users = user.filter(|u| !u.trim().is_empty()).map(|u| vec![u]);
    pass(app, state, PassKind::Incremental, users).await
}
