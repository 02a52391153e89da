//! The commands the UI calls. Each is a few lines over the core.

use std::path::PathBuf;
use std::sync::Arc;

use migrator_core::config::{is_guid, tenant_id_shape_ok, Cloud, SourceConfig};
use migrator_core::engine::{run_to_folder_with, test_source, RunOptions};
use migrator_core::graph::permissions::PermissionStatus;
use migrator_core::progress::{ProgressEvent, RunSummary};
use migrator_core::secrets::{
    dest_admin_password_entry, graph_client_secret_entry, Secret, SecretStore, SecretStoreError,
};
use serde::{Deserialize, Serialize};
use tauri::ipc::Channel;
use tauri::{AppHandle, Manager, Runtime, State};
use ts_rs::TS;

use crate::state::{Found, SecretPlaces};
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

/// Signs in with the Source screen's settings and the client secret stored for them
/// ([`store_secret`]), and reports each permission as granted or missing.
#[tauri::command]
pub(crate) async fn test_connection(
    state: State<'_, AppState>,
    source: SourceConfig,
) -> Result<Vec<PermissionStatus>, IpcError> {
    let secret = client_secret(state.secrets(), &source).await?;
    let (permissions, _) = test_source(&source, &secret, &RunOptions::default()).await?;
    Ok(permissions)
}

// --- Secrets ------------------------------------------------------------------------------

/// Which secret: an app registration's client secret (account `<tenant>/<client>`) or a
/// destination administrator's password (account `<host>/<user>`).
#[derive(Debug, Clone, Copy, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../ui/src/bindings/")]
pub enum SecretKind {
    GraphClientSecret,
    DestAdminPassword,
}

/// Where a secret is: in the keychain, kept for this session only, not stored yet, or
/// not stored and no keychain to store it in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../ui/src/bindings/")]
pub enum SecretStatus {
    Stored,
    Session,
    Missing,
    Unavailable,
}

/// The keychain entry of `kind` for `account`.
fn secret_entry(kind: SecretKind, account: &str) -> Result<String, IpcError> {
    let (a, b) = account
        .split_once('/')
        .filter(|(a, b)| !a.trim().is_empty() && !b.trim().is_empty())
        .ok_or_else(|| {
            IpcError::new(
                "invalid",
                "The account must be <tenant>/<client> or <host>/<user>.",
            )
        })?;
    Ok(match kind {
        SecretKind::GraphClientSecret => graph_client_secret_entry(a, b),
        SecretKind::DestAdminPassword => dest_admin_password_entry(a, b),
    })
}

/// Runs a keychain call on a blocking thread (D-Bus and the platform APIs block).
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, IpcError> + Send + 'static,
) -> Result<T, IpcError> {
    tauri::async_runtime::spawn_blocking(work)
        .await
        .map_err(|e| IpcError::new("internal", format!("keychain call failed: {e}")))?
}

fn status(places: &SecretPlaces, entry: &str) -> Result<SecretStatus, IpcError> {
    match places.find(entry) {
        Ok(Some(Found::Keychain(_))) => Ok(SecretStatus::Stored),
        Ok(Some(Found::Session(_))) => Ok(SecretStatus::Session),
        Ok(None) => Ok(SecretStatus::Missing),
        Err(SecretStoreError::Unavailable(_)) => Ok(SecretStatus::Unavailable),
        Err(e) => Err(e.into()),
    }
}

/// Stores a secret the user typed, in the keychain (or, with `session_only`, in memory until
/// the app quits). The value crosses the IPC boundary this once and is never sent back.
#[tauri::command]
pub(crate) async fn store_secret(
    state: State<'_, AppState>,
    kind: SecretKind,
    account: String,
    value: String,
    session_only: Option<bool>,
) -> Result<SecretStatus, IpcError> {
    let entry = secret_entry(kind, &account)?;
    let secret = Secret::new(value);
    if secret.is_empty() {
        return Err(IpcError::new("invalid", "The secret is empty."));
    }
    let places = state.secrets();
    blocking(move || {
        if session_only.unwrap_or(false) {
            places.session().put(&entry, &secret)?;
            return Ok(SecretStatus::Session);
        }
        places.keychain()?.put(&entry, &secret)?;
        // A value kept for the session before is superseded by the keychain's.
        places.session().delete(&entry)?;
        Ok(SecretStatus::Stored)
    })
    .await
}

/// Whether a secret is stored, without revealing it.
#[tauri::command]
pub(crate) async fn secret_status(
    state: State<'_, AppState>,
    kind: SecretKind,
    account: String,
) -> Result<SecretStatus, IpcError> {
    let entry = secret_entry(kind, &account)?;
    let places = state.secrets();
    blocking(move || status(&places, &entry)).await
}

/// Removes a secret from the keychain and the session.
#[tauri::command]
pub(crate) async fn forget_secret(
    state: State<'_, AppState>,
    kind: SecretKind,
    account: String,
) -> Result<SecretStatus, IpcError> {
    let entry = secret_entry(kind, &account)?;
    let places = state.secrets();
    blocking(move || {
        places.session().delete(&entry)?;
        if let Ok(keychain) = places.keychain() {
            keychain.delete(&entry)?;
        }
        status(&places, &entry)
    })
    .await
}

/// The stored secret under `entry`, or a `secret.missing` error saying what to enter.
async fn stored_secret(
    places: SecretPlaces,
    entry: String,
    what: &'static str,
) -> Result<Secret, IpcError> {
    blocking(move || match places.find(&entry) {
        Ok(Some(found)) => Ok(found.secret()),
        Ok(None) | Err(SecretStoreError::Unavailable(_)) => Err(IpcError::new(
            "secret.missing",
            format!("The {what} is not stored yet: enter it and it will be kept in the keychain."),
        )),
        Err(e) => Err(e.into()),
    })
    .await
}

/// The client secret stored for `source`'s app registration.
async fn client_secret(places: SecretPlaces, source: &SourceConfig) -> Result<Secret, IpcError> {
    let entry = graph_client_secret_entry(&source.tenant_id, &source.client_id);
    stored_secret(places, entry, "client secret").await
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
