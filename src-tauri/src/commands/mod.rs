//! The commands the UI calls, one module per screen. Each is a few lines over the core: the
//! settings are the current project's [`migrator_core::spec::MigrationSpec`], checked by the
//! core's one validation; paths come from native dialogs ([`project::pick_path`]), never
//! from the page; secrets come from the keychain.

pub(crate) mod destination;
pub(crate) mod keychain;
pub(crate) mod pass;
pub(crate) mod plan;
pub(crate) mod project;
pub(crate) mod run;
pub(crate) mod schedule;
pub(crate) mod source;

use std::path::PathBuf;

use serde::Serialize;
use tauri::{AppHandle, Manager, Runtime, State};
use ts_rs::TS;

use crate::{AppState, IpcError};

/// What the About box and the log button need.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct AppInfo {
    pub version: String,
    /// `macos`, `windows` or `linux`: which secret store the page names (Keychain, Windows
    /// Credential Manager, Secret Service).
    #[ts(type = "\"macos\" | \"windows\" | \"linux\"")]
    pub os: String,
    #[ts(optional)]
    pub log_dir: Option<String>,
}

#[tauri::command]
pub(crate) fn app_info(state: State<'_, AppState>) -> AppInfo {
    AppInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
        os: match std::env::consts::OS {
            "macos" => "macos",
            "windows" => "windows",
            _ => "linux",
        }
        .to_string(),
        log_dir: state.log_dir().map(|d| d.display().to_string()),
    }
}

/// The app's data folder: projects, journals of server destinations, the demo, the last run.
pub(crate) fn data_dir<R: Runtime>(
    app: &AppHandle<R>,
    state: &AppState,
) -> Result<PathBuf, IpcError> {
    match state.data_dir() {
        Some(dir) => Ok(dir),
        None => app
            .path()
            .app_data_dir()
            .map_err(|e| IpcError::new("internal", format!("no data folder: {e}"))),
    }
}

/// Runs blocking work (the keychain, SQLite, files) off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, IpcError> + Send + 'static,
) -> Result<T, IpcError> {
    tauri::async_runtime::spawn_blocking(work)
        .await
        .map_err(|e| IpcError::new("internal", format!("background work failed: {e}")))?
}
