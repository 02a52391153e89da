//! The desktop app's shell: thin Tauri commands over `migrator-core`. No migration logic
//! lives here; long work runs in the core's engine and its progress events are forwarded to
//! the UI through a Tauri Channel.

mod commands;
mod ipc_error;
mod reporter;
mod runs;
mod state;

pub use commands::{
    migrate, prepare, DestinationSettings, MigrationRequest, PreparedRun, RunScope,
};
pub use ipc_error::IpcError;
pub use reporter::ChannelReporter;
pub use runs::{LastRun, LastRunState, RunDetails, RunFile, RunRequest};
pub use state::{AppState, Opener, SecretPlaces};

use tauri::Manager;

/// Registers the app's state and commands on a builder (the real runtime with the OS
/// keychain, or the mock runtime in tests with a mock store).
pub fn builder<R: tauri::Runtime>(
    builder: tauri::Builder<R>,
    state: AppState,
) -> tauri::Builder<R> {
    builder
        // The opener serves `open_run_file` only: the web view holds no opener permission, and
        // links in the page are not handed to it.
        .plugin(
            tauri_plugin_opener::Builder::new()
                .open_js_links_on_click(false)
                .build(),
        )
        .manage(state)
        .invoke_handler(tauri::generate_handler![
            commands::app_info,
            commands::validate_source,
            commands::test_connection,
            commands::store_secret,
            commands::secret_status,
            commands::forget_secret,
            commands::validate_destination,
            commands::test_destination,
            commands::plan_migration,
            commands::start_migration,
            commands::run_demo,
            commands::control_run,
            commands::run_status,
            commands::watch_run,
            commands::run_details,
            commands::open_run_file,
        ])
}

/// Starts the desktop app.
pub fn run() {
    let app = builder(
        tauri::Builder::default(),
        AppState::with_platform_keychain(),
    )
    .setup(|app| {
        let log_dir = app.path().app_log_dir()?;
        let guard = state::init_logging(&log_dir)?;
        let state = app.state::<AppState>();
        state.set_logging(log_dir, guard);
        if let Err(e) = state.secrets().keychain() {
            tracing::warn!("{e}; secrets can be kept for this session only");
        }
        Ok(())
    })
    .run(tauri::generate_context!());
    if let Err(error) = app {
        eprintln!("M365 Migrator could not start: {error}");
        std::process::exit(1);
    }
}

/// The demo: starts the simulator with the demo tenant, migrates it into `out`, stops it.
pub async fn demo(
    out: &std::path::Path,
    reporter: std::sync::Arc<dyn migrator_core::progress::Reporter>,
    control: migrator_core::engine::RunControl,
) -> Result<migrator_core::progress::RunSummary, IpcError> {
    let sim = migrator_sim::SimServer::start(migrator_sim::SimConfig::demo())
        .await
        .map_err(|e| IpcError::new("internal", format!("cannot start the demo tenant: {e}")))?;
    let result = commands::run_against(&sim, out, reporter, control).await;
    sim.shutdown().await;
    result
}
