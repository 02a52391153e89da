//! The Run and Report screens: the demo, pause/resume/stop, the state of the run going on,
//! the last run's details and files.

use migrator_core::progress::{ProgressEvent, RunSnapshot};
use migrator_core::project::DEMO_ID;
use serde::{Deserialize, Serialize};
use tauri::ipc::Channel;
use tauri::{AppHandle, Manager, Runtime, State};
use ts_rs::TS;

use super::pass::{begin, check_free};
use super::project::store;
use super::{blocking, data_dir};
use crate::runs::{self, LastRun, RememberedRun, RunDetails, RunFile, RunRequest};
use crate::{AppState, IpcError};

/// The snapshot of the pass going on (totals from the plan, each mailbox's state, rate and
/// ETA as of now), or of the last pass since the app started; `null` before any.
#[tauri::command]
pub(crate) fn run_snapshot(state: State<'_, AppState>) -> Option<RunSnapshot> {
    state.run_snapshot()
}

/// Starts the built-in demo in the background: a simulated tenant on 127.0.0.1 into the
/// demo project's own folder (never a real project's).
#[tauri::command]
pub(crate) async fn run_demo<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
) -> Result<(), IpcError> {
    let data_dir = data_dir(&app, &state)?;
    let out = store(&app, &state)?.project_dir(DEMO_ID)?;
    check_free(&crate::demo_state_dir(&out))?;
    let (control, reporter) = begin(&state)?;
    let remembered = RememberedRun {
        request: RunRequest::Demo {
            out_dir: out.display().to_string(),
        },
        state_dir: crate::demo_state_dir(&out),
    }
    .save(&data_dir);
    if let Err(e) = remembered {
        state.finish_run();
        return Err(e);
    }
    tauri::async_runtime::spawn(async move {
        if let Err(e) = crate::demo(&out, reporter, control).await {
            tracing::warn!("the demo failed: {}", e.message);
        }
        app.state::<AppState>().finish_run();
    });
    Ok(())
}

/// Whether a run is going on, and how the last one ended (to resume it or run it again).
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct RunStatus {
    pub running: bool,
    #[ts(optional)]
    pub last: Option<LastRun>,
    /// Whether the pass going on (or the last pass) keeps the computer awake.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub awake: Option<crate::KeptAwake>,
}

/// What the app shows when it opens: a run going on, or the last one from its journal.
#[tauri::command]
pub(crate) async fn run_status<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
) -> Result<RunStatus, IpcError> {
    let data_dir = data_dir(&app, &state)?;
    let running = state.current_run().is_some();
    let last = blocking(move || Ok(runs::last_run(&data_dir, running))).await?;
    Ok(RunStatus {
        running,
        last,
        awake: state.kept_awake(),
    })
}

/// Sends the running migration's progress events to `on_event` from now on (a reloaded
/// page); false when nothing runs.
#[tauri::command]
pub(crate) fn watch_run(state: State<'_, AppState>, on_event: Channel<ProgressEvent>) -> bool {
    match state.current_reporter() {
        Some(reporter) => {
            reporter.retarget(on_event);
            true
        }
        None => false,
    }
}

/// The Report screen's details of the last run: failures, report and log places, accounts.
#[tauri::command]
pub(crate) async fn run_details<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
) -> Result<RunDetails, IpcError> {
    let data_dir = data_dir(&app, &state)?;
    let log_dir = state.log_dir();
    blocking(move || Ok(runs::run_details(&data_dir, log_dir.as_deref())))
        .await?
        .ok_or_else(|| IpcError::new("missing", "No migration has run yet."))
}

/// Opens the last run's HTML report or the log folder with the desktop's default
/// application. The path is resolved here from the last run: the web view names which one,
/// never a path (it has no opener permission of its own).
#[tauri::command]
pub(crate) fn open_run_file<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    file: RunFile,
) -> Result<(), IpcError> {
    let data_dir = data_dir(&app, &state)?;
    let path = runs::resolve(file, &data_dir, state.log_dir().as_deref())?;
    let opened = match state.opener() {
        Some(open) => open(&path),
        None => {
            use tauri_plugin_opener::OpenerExt;
            app.opener()
                .open_path(path.display().to_string(), None::<&str>)
                .map_err(|e| e.to_string())
        }
    };
    opened.map_err(|e| IpcError::new("open", format!("cannot open {}: {e}", path.display())))
}

/// Pause, resume or stop the running migration.
#[derive(Debug, Clone, Copy, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub enum RunAction {
    Pause,
    Resume,
    Stop,
}

#[tauri::command]
pub(crate) fn control_run(state: State<'_, AppState>, action: RunAction) -> Result<(), IpcError> {
    let run = state
        .current_run()
        .ok_or_else(|| IpcError::new("idle", "No migration is running."))?;
    match action {
        RunAction::Pause => run.pause(),
        RunAction::Resume => run.resume(),
        RunAction::Stop => run.cancel(),
    }
    Ok(())
}
