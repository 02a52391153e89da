//! Incremental passes on a schedule while the app runs ([`PassSchedule`]: every N hours). The
//! timer ([`run_timer`]) looks at the open project twice a minute and starts its pass when it
//! is due and nothing runs: never two passes at once; a pass due during another starts at the
//! first look after it; slots missed while the app was closed come to one pass.

use std::time::Duration;

use migrator_core::project::{
    unix_now, PassKind, PassRecord, PassSchedule, PassState, ScheduledPass, DEMO_ID,
};
use tauri::{AppHandle, Manager, Runtime, State};

use super::pass::{notify_end, pass};
use super::project::{current_project, store};
use crate::{AppState, IpcError};

/// The event the page hears when the timer started a pass.
pub const SCHEDULED_PASS_STARTED: &str = "scheduled-pass-started";

/// How often the timer looks whether a pass is due.
const TICK: Duration = Duration::from_secs(30);

/// The open project's schedule and when it next fires (`None`: off).
#[tauri::command]
pub(crate) fn pass_schedule<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
) -> Result<Option<ScheduledPass>, IpcError> {
    let project = current_project(&app, &state)?;
    Ok(project
        .schedule
        .map(|s| s.shown(&project.passes, unix_now())))
}

/// Sets the open project's schedule to an incremental pass every `every_hours` hours, or
/// clears it (`None`); returns it as [`pass_schedule`] does.
#[tauri::command]
pub(crate) fn set_pass_schedule<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    every_hours: Option<u32>,
) -> Result<Option<ScheduledPass>, IpcError> {
    let mut project = current_project(&app, &state)?;
    if project.id == DEMO_ID {
        return Err(IpcError::new("invalid", "The demo has no schedule."));
    }
    let now = unix_now();
    project.schedule = every_hours
        .map(|hours| PassSchedule::new(hours, now))
        .transpose()
        .map_err(|e| IpcError::new("invalid", e.to_string()))?;
    project.updated_at = now;
    store(&app, &state)?.save(&project)?;
    Ok(project.schedule.map(|s| s.shown(&project.passes, now)))
}

/// Looks once: starts the open project's incremental pass if its schedule is due and no run
/// goes on. `true` when a pass started. A pass that cannot start (a secret missing, bad
/// settings) is recorded as a failed pass with the reason and announced, like one that
/// failed while running; the schedule tries again one interval later.
pub async fn scheduled_tick<R: Runtime>(app: &AppHandle<R>) -> bool {
    let state = app.state::<AppState>();
    if state.current_run().is_some() {
        return false;
    }
    let Ok(mut project) = current_project(app, &state) else {
        return false;
    };
    let now = unix_now();
    let Some(schedule) = project.schedule else {
        return false;
    };
    if project.demo || !schedule.is_due(&project.passes, now) {
        return false;
    }
    project.schedule = Some(schedule.fired(now));
    let saved = store(app, &state).and_then(|s| Ok(s.save(&project)?));
    if let Err(e) = saved {
        tracing::warn!("the scheduled pass waits: {}", e.message);
        return false;
    }
    match pass(app.clone(), state.clone(), PassKind::Incremental, None).await {
        Ok(()) => {
            use tauri::Emitter;
            // The page follows it as a pass it started (ui/src/main.ts).
            if let Err(e) = app.emit(SCHEDULED_PASS_STARTED, ()) {
                tracing::info!("the page was not told of the scheduled pass: {e}");
            }
            true
        }
        Err(e) if e.code == "busy" => false,
        Err(e) => {
            let record = PassRecord {
                kind: PassKind::Incremental,
                started_at: now,
                finished_at: Some(now),
                state: PassState::Failed,
                summary: None,
                error: Some(e.message),
            };
            project.passes.push(record.clone());
            if let Err(e) = store(app, &state).and_then(|s| Ok(s.save(&project)?)) {
                tracing::warn!("cannot record the scheduled pass: {}", e.message);
            }
            notify_end(app, &project.name, &record);
            false
        }
    }
}

/// The app's schedule timer: [`scheduled_tick`] every [`TICK`], for as long as the app runs.
pub async fn run_timer<R: Runtime>(app: AppHandle<R>) {
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        scheduled_tick(&app).await;
    }
}
