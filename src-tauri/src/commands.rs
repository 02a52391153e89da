//! The commands the UI calls. Each is a few lines over the core.

use std::path::PathBuf;
use std::sync::Arc;

use migrator_core::config::{is_guid, tenant_id_shape_ok, Cloud, SourceConfig};
use migrator_core::engine::{run_to_folder_with, test_source, RunOptions};
use migrator_core::graph::permissions::PermissionStatus;
use migrator_core::progress::{ProgressEvent, RunSummary};
use migrator_core::secrets::Secret;
use serde::{Deserialize, Serialize};
use tauri::ipc::Channel;
use tauri::{AppHandle, Manager, Runtime, State};
use ts_rs::TS;

use crate::{AppState, ChannelReporter, IpcError};

/// What the About box and the log button need.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../ui/src/bindings/")]
pub struct AppInfo {
    pub version: String,
    #[ts(optional)]
    pub log_dir: Option<String>,
}

#[tauri::command]
pub(crate) fn app_info(state: State<'_, AppState>) -> AppInfo {
    AppInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
        log_dir: state.log_dir().map(|d| d.display().to_string()),
    }
}

/// One problem with one form field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../ui/src/bindings/")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// Checks the Source screen's fields with the same rules the engine applies.
#[tauri::command]
pub(crate) fn validate_source(source: SourceConfig) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut push = |field: &str, message: &str| {
        errors.push(FieldError {
            field: field.into(),
            message: message.into(),
        })
    };
    if !tenant_id_shape_ok(source.tenant_id.trim()) {
        push(
            "tenantId",
            "Enter the Directory (tenant) ID: a GUID, or a domain such as contoso.onmicrosoft.com.",
        );
    }
    if !is_guid(source.client_id.trim()) {
        push(
            "clientId",
            "Enter the Application (client) ID: a GUID from the app registration's Overview page.",
        );
    }
    errors
}

/// Signs in with the Source screen's settings and reports each permission as granted or
/// missing. The secret is used for this sign-in only and is not kept or logged.
#[tauri::command]
pub(crate) async fn test_connection(
    source: SourceConfig,
    client_secret: String,
) -> Result<Vec<PermissionStatus>, IpcError> {
    let secret = Secret::new(client_secret);
    let (permissions, _) = test_source(&source, &secret, &RunOptions::default()).await?;
    Ok(permissions)
}

/// Runs the built-in demo: a simulated tenant on 127.0.0.1 into `out_dir` (default: the app's
/// data folder), streaming progress events over `on_event`.
#[tauri::command]
pub(crate) async fn run_demo<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    out_dir: Option<String>,
    on_event: Channel<ProgressEvent>,
) -> Result<RunSummary, IpcError> {
    let out = match out_dir.filter(|d| !d.trim().is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => app
            .path()
            .app_data_dir()
            .map_err(|e| IpcError::new("internal", format!("no data folder: {e}")))?
            .join("demo-output"),
    };
    let control = state
        .start_run()
        .ok_or_else(|| IpcError::new("busy", "A migration is already running."))?;
    let result = crate::demo(&out, Arc::new(ChannelReporter::new(on_event)), control).await;
    state.finish_run();
    result
}

/// Pause, resume or stop the running migration.
#[derive(Debug, Clone, Copy, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../ui/src/bindings/")]
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

/// The demo's source: the simulator's tenant and credentials.
pub(crate) fn demo_source(sim: &migrator_sim::SimServer) -> (SourceConfig, Secret) {
    (
        SourceConfig {
            tenant_id: sim.tenant_id().to_string(),
            client_id: sim.client_id().to_string(),
            cloud: Cloud::Global,
            login_url: Some(sim.url()),
            graph_url: Some(sim.url()),
        },
        Secret::new(sim.client_secret()),
    )
}

/// Options for a demo run into `out`: the journal beside the users' folders.
pub(crate) fn demo_options(out: &std::path::Path) -> RunOptions {
    RunOptions {
        state_dir: Some(out.join(".m365-migrator")),
        ..RunOptions::default()
    }
}

/// Runs the core against a started simulator.
pub(crate) async fn run_against(
    sim: &migrator_sim::SimServer,
    out: &std::path::Path,
    reporter: Arc<dyn migrator_core::progress::Reporter>,
    control: migrator_core::engine::RunControl,
) -> Result<RunSummary, IpcError> {
    let (source, secret) = demo_source(sim);
    Ok(run_to_folder_with(&source, &secret, out, reporter, control, demo_options(out)).await?)
}
