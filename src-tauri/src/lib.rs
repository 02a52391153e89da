//! The desktop app's shell: thin Tauri commands over `migrator-core`. No migration logic
//! lives here; long work runs in the core's engine and its progress events are forwarded to
//! the UI through a Tauri Channel. The settings are the core's
//! [`migrator_core::spec::MigrationSpec`], saved in projects ([`migrator_core::project`]).

mod awake;
mod commands;
mod ipc_error;
mod reporter;
mod runs;
mod state;

pub use awake::{Inhibitor, KeptAwake};
pub use commands::pass::{migrate, prepare, PreparedRun};
pub use commands::schedule::scheduled_tick;
pub use ipc_error::IpcError;
pub use reporter::ChannelReporter;
pub use runs::{LastRun, LastRunState, RunDetails, RunFile, RunRequest};
pub use state::{AppState, Notifier, Opener, PathPicker, SecretPlaces};

use tauri::Manager;

/// Every command the app registers, by name: the app manifest (build.rs) declares the same
/// list, so the capability names each one.
macro_rules! app_commands {
    () => {
        tauri::generate_handler![
            commands::app_info,
            commands::source::validate_source,
            commands::source::test_connection,
            commands::keychain::store_secret,
            commands::keychain::secret_status,
            commands::keychain::forget_secret,
            commands::destination::validate_destination,
            commands::destination::test_destination,
            commands::project::list_projects,
            commands::project::create_project,
            commands::project::open_project,
            commands::project::save_project,
            commands::project::delete_project,
            commands::project::pick_path,
            commands::project::preview_accounts_csv,
            commands::project::cutover_checklist,
            commands::plan::plan_migration,
            commands::plan::cancel_plan,
            commands::pass::start_pass,
            commands::pass::retry_failed,
            commands::schedule::pass_schedule,
            commands::schedule::set_pass_schedule,
            commands::run::run_snapshot,
            commands::run::run_demo,
            commands::run::control_run,
            commands::run::run_status,
            commands::run::watch_run,
            commands::run::run_details,
            commands::run::open_run_file,
        ]
    };
}

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
        // The dialogs serve `pick_path` only: the web view holds no dialog permission.
        .plugin(tauri_plugin_dialog::init())
        // Notifications are sent from Rust when a pass ends; the web view holds no permission.
        .plugin(tauri_plugin_notification::init())
        .manage(state)
        .invoke_handler(app_commands!())
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
        migrator_core::open_files::raise_soft_limit();
        if let Err(e) = state.secrets().keychain() {
            tracing::warn!("{e}; secrets can be kept for this session only");
        }
        tauri::async_runtime::spawn(commands::schedule::run_timer(app.handle().clone()));
        Ok(())
    })
    .build(tauri::generate_context!());
    let app = match app {
        Ok(app) => app,
        Err(error) => {
            eprintln!("M365 Migrator could not start: {error}");
            std::process::exit(1);
        }
    };
    app.run(|handle, event| {
        // Quitting during a run (the page has asked and stopped it, or Cmd+Q): the process
        // stays until the engine has stopped at a clean point (journal written), then exits.
        if let tauri::RunEvent::ExitRequested { api, .. } = &event {
            if let Some(run) = handle.state::<AppState>().current_run() {
                api.prevent_exit();
                run.cancel();
                let handle = handle.clone();
                tauri::async_runtime::spawn(async move {
                    handle.state::<AppState>().wait_idle().await;
                    handle.exit(0);
                });
            }
        }
    });
}

/// The demo's state folder: the journal beside the users' folders.
pub(crate) fn demo_state_dir(out: &std::path::Path) -> std::path::PathBuf {
    out.join(".m365-migrator")
}

/// The demo: starts the simulator with the demo tenant, migrates it into `out`, stops it.
#[cfg(feature = "demo")]
pub async fn demo(
    out: &std::path::Path,
    reporter: std::sync::Arc<dyn migrator_core::progress::Reporter>,
    control: migrator_core::engine::RunControl,
) -> Result<migrator_core::progress::RunSummary, IpcError> {
    use migrator_core::config::SourceConfig;
    use migrator_core::secrets::Secret;
    let sim = migrator_sim::SimServer::start(migrator_sim::SimConfig::demo())
        .await
        .map_err(|e| IpcError::new("internal", format!("cannot start the demo tenant: {e}")))?;
    let source = SourceConfig::on_loopback(sim.tenant_id(), sim.client_id(), &sim.url());
    let secret = Secret::new(sim.client_secret());
    let options = migrator_core::engine::RunOptions {
        state_dir: Some(demo_state_dir(out)),
        ..Default::default()
    };
    let result = migrator_core::engine::run_to_folder_with(
        &source, &secret, out, reporter, control, options,
    )
    .await;
    runs::write_report(&demo_state_dir(out));
    sim.shutdown().await;
    Ok(result?)
}

/// Without the `demo` feature there is no simulated tenant to migrate.
#[cfg(not(feature = "demo"))]
pub async fn demo(
    _out: &std::path::Path,
    _reporter: std::sync::Arc<dyn migrator_core::progress::Reporter>,
    _control: migrator_core::engine::RunControl,
) -> Result<migrator_core::progress::RunSummary, IpcError> {
    Err(IpcError::new(
        "unsupported",
        "This build of the app has no demo (built without the demo feature).",
    ))
}
