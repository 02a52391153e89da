//! What the app keeps between commands: the running migration's control handle and the log
//! folder.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use migrator_core::engine::RunControl;
use tracing_appender::non_blocking::WorkerGuard;

/// Shared app state (managed by Tauri).
#[derive(Default)]
pub struct AppState {
    run: Mutex<Option<RunControl>>,
    log_dir: Mutex<Option<PathBuf>>,
    log_guard: Mutex<Option<WorkerGuard>>,
}

impl AppState {
    /// Registers a starting run; `None` when one is already running.
    pub fn start_run(&self) -> Option<RunControl> {
        let mut run = self.run.lock().unwrap_or_else(|p| p.into_inner());
        if run.is_some() {
            return None;
        }
        let control = RunControl::new();
        *run = Some(control.clone());
        Some(control)
    }

    pub fn finish_run(&self) {
        *self.run.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    pub fn current_run(&self) -> Option<RunControl> {
        self.run.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn log_dir(&self) -> Option<PathBuf> {
        self.log_dir
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn set_logging(&self, dir: PathBuf, guard: WorkerGuard) {
        *self.log_dir.lock().unwrap_or_else(|p| p.into_inner()) = Some(dir);
        *self.log_guard.lock().unwrap_or_else(|p| p.into_inner()) = Some(guard);
    }
}

/// Logs to a daily-rotating file in `dir` (info level unless RUST_LOG says otherwise).
/// Secrets never reach it: the core only ever logs `Secret` as `[redacted]`.
pub fn init_logging(dir: &Path) -> std::io::Result<WorkerGuard> {
    std::fs::create_dir_all(dir)?;
    let appender = tracing_appender::rolling::daily(dir, "m365-migrator.log");
    let (writer, guard) = tracing_appender::non_blocking(appender);
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // A second initialisation (tests) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false)
        .try_init();
    Ok(guard)
}
