//! What the app keeps between commands: the running migration's control handle and progress
//! reporter, the log folder and where secrets live (the OS keychain, or memory in
//! session-only mode).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use migrator_core::engine::RunControl;
use migrator_core::progress::RunSnapshot;
use migrator_core::secrets::{KeyringStore, MemoryStore, Secret, SecretStore, SecretStoreError};
use migrator_core::spec::PathPurpose;
use tokio_util::sync::CancellationToken;
use tracing_appender::non_blocking::WorkerGuard;

use crate::ChannelReporter;

/// Opens a file or folder with the desktop's default application.
pub type Opener = Arc<dyn Fn(&Path) -> Result<(), String> + Send + Sync>;

/// Shows a desktop notification (title, body). Tests record them instead.
pub type Notifier = Arc<dyn Fn(&str, &str) + Send + Sync>;

/// Asks the user for a path (a native dialog); `None` when cancelled. Tests answer in its
/// place; the page never sends a path.
pub type PathPicker = Arc<dyn Fn(PathPurpose) -> Option<PathBuf> + Send + Sync>;

/// Shared app state (managed by Tauri).
pub struct AppState {
    run: Mutex<Option<RunControl>>,
    /// `true` while a run goes on ([`AppState::wait_idle`]).
    running: tokio::sync::watch::Sender<bool>,
    reporter: Mutex<Option<Arc<ChannelReporter>>>,
    /// The reporter of the pass going on or of the last one (kept after it ends, so
    /// `run_snapshot` tells its final state, after a window reload too).
    last_reporter: Mutex<Option<Arc<ChannelReporter>>>,
    /// Cancels the plan being counted now (a new plan or `cancel_plan`).
    plan_cancel: Mutex<Option<(u64, CancellationToken)>>,
    /// Numbers the plans, so a plan that ended forgets its own token only.
    plans: std::sync::atomic::AtomicU64,
    log_dir: Mutex<Option<PathBuf>>,
    log_guard: Mutex<Option<WorkerGuard>>,
    secrets: SecretPlaces,
    /// Replaces the platform's app data folder (tests).
    data_dir: Option<PathBuf>,
    /// Replaces the desktop's opener (tests record what would open).
    opener: Option<Opener>,
    /// Replaces the native file dialogs (tests).
    picker: Option<PathPicker>,
    /// Replaces the desktop's notifications (tests).
    notifier: Option<Notifier>,
    /// Keeps the computer awake during a pass ([`crate::awake`]; tests give their own).
    inhibitor: crate::awake::Inhibitor,
    /// The lock held for the pass going on (dropped when it ends: released).
    awake_guard: Mutex<Option<Box<dyn Send>>>,
    /// Whether the pass going on (or the last one) keeps the computer awake.
    awake: Mutex<Option<crate::awake::KeptAwake>>,
    /// Replaces the system's DNS servers for MX lookups (tests: a loopback responder).
    dns_servers: Option<Vec<std::net::SocketAddr>>,
    /// The project the commands act on (`open_project`).
    project: Mutex<Option<String>>,
    /// The mailbox addresses of the open project's last plan (the accounts CSV preview
    /// matches against them).
    plan_addresses: Mutex<Vec<String>>,
}

/// Where secrets live: the OS keychain (or why there is none) and the session-only store.
/// Cheap to clone, so a blocking thread can take it along.
#[derive(Clone)]
pub struct SecretPlaces {
    keychain: Result<Arc<dyn SecretStore>, String>,
    session: Arc<MemoryStore>,
}

/// A secret and where it was found.
pub enum Found {
    Keychain(Secret),
    Session(Secret),
}

impl Found {
    pub fn secret(self) -> Secret {
        match self {
            Found::Keychain(s) | Found::Session(s) => s,
        }
    }
}

impl SecretPlaces {
    /// The keychain, or `Unavailable` with the reason.
    pub fn keychain(&self) -> Result<Arc<dyn SecretStore>, SecretStoreError> {
        self.keychain.clone().map_err(SecretStoreError::Unavailable)
    }

    /// The session-only store (memory; gone when the app quits).
    pub fn session(&self) -> &MemoryStore {
        &self.session
    }

    /// The secret under `entry`: the session's first, then the keychain's. Blocks on the
    /// keychain: call it from a blocking thread.
    pub fn find(&self, entry: &str) -> Result<Option<Found>, SecretStoreError> {
        if let Some(secret) = self.session.get(entry)? {
            return Ok(Some(Found::Session(secret)));
        }
        Ok(self.keychain()?.get(entry)?.map(Found::Keychain))
    }
}

impl AppState {
    /// State whose secrets go to `keychain` (`Err` says why there is no keychain).
    pub fn new(keychain: Result<Arc<dyn SecretStore>, String>) -> Self {
        AppState {
            run: Mutex::new(None),
            running: tokio::sync::watch::Sender::new(false),
            reporter: Mutex::new(None),
            last_reporter: Mutex::new(None),
            plan_cancel: Mutex::new(None),
            plans: std::sync::atomic::AtomicU64::new(0),
            log_dir: Mutex::new(None),
            log_guard: Mutex::new(None),
            secrets: SecretPlaces {
                keychain,
                session: Arc::new(MemoryStore::default()),
            },
            data_dir: None,
            opener: None,
            picker: None,
            notifier: None,
            dns_servers: None,
            inhibitor: crate::awake::system_inhibitor(),
            awake_guard: Mutex::new(None),
            awake: Mutex::new(None),
            project: Mutex::new(None),
            plan_addresses: Mutex::new(Vec::new()),
        }
    }

    /// Keeps the journals of server destinations under `dir` instead of the app data folder.
    pub fn with_data_dir(mut self, dir: PathBuf) -> Self {
        self.data_dir = Some(dir);
        self
    }

    /// Opens files with `opener` instead of the desktop's default application.
    pub fn with_opener(mut self, opener: Opener) -> Self {
        self.opener = Some(opener);
        self
    }

    /// Answers path questions with `picker` instead of native dialogs.
    pub fn with_picker(mut self, picker: PathPicker) -> Self {
        self.picker = Some(picker);
        self
    }

    /// Keeps the computer awake during passes through `inhibitor` instead of the system's.
    pub fn with_inhibitor(mut self, inhibitor: crate::awake::Inhibitor) -> Self {
        self.inhibitor = inhibitor;
        self
    }

    /// Takes the keep-awake lock for the pass that just started (held until
    /// [`AppState::finish_run`]); blocks on the system bus: call it from a blocking thread.
    pub fn keep_awake(&self) -> crate::awake::KeptAwake {
        let (kept, guard) = crate::awake::KeptAwake::take(&self.inhibitor);
        *self.awake_guard.lock().unwrap_or_else(|p| p.into_inner()) = guard;
        *self.awake.lock().unwrap_or_else(|p| p.into_inner()) = Some(kept.clone());
        kept
    }

    /// Whether the pass going on (or the last one) keeps the computer awake.
    pub fn kept_awake(&self) -> Option<crate::awake::KeptAwake> {
        self.awake.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Looks MX records up at `servers` instead of the system's DNS servers.
    pub fn with_dns_servers(mut self, servers: Vec<std::net::SocketAddr>) -> Self {
        self.dns_servers = Some(servers);
        self
    }

    /// The MX lookup of the cut-over checklist: the system's resolver, or the test's servers.
    pub fn mx_lookup(
        &self,
    ) -> Result<migrator_core::cutover::MxLookup, migrator_core::cutover::CutoverError> {
        use migrator_core::cutover::{MxLookup, MX_LOOKUP_BUDGET};
        match &self.dns_servers {
            Some(servers) => MxLookup::with_servers(servers, MX_LOOKUP_BUDGET),
            None => MxLookup::system(MX_LOOKUP_BUDGET),
        }
    }

    /// Shows notifications through `notifier` instead of the desktop's.
    pub fn with_notifier(mut self, notifier: Notifier) -> Self {
        self.notifier = Some(notifier);
        self
    }

    pub fn notifier(&self) -> Option<Notifier> {
        self.notifier.clone()
    }

    pub fn picker(&self) -> Option<PathPicker> {
        self.picker.clone()
    }

    /// The open project's id.
    pub fn project(&self) -> Option<String> {
        self.project
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Opens project `id` (or none); the last plan's addresses belonged to the one before.
    pub fn set_project(&self, id: Option<String>) {
        *self.project.lock().unwrap_or_else(|p| p.into_inner()) = id;
        self.set_plan_addresses(Vec::new());
    }

    pub fn set_plan_addresses(&self, addresses: Vec<String>) {
        *self
            .plan_addresses
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = addresses;
    }

    pub fn plan_addresses(&self) -> Vec<String> {
        self.plan_addresses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn opener(&self) -> Option<Opener> {
        self.opener.clone()
    }

    pub fn data_dir(&self) -> Option<PathBuf> {
        self.data_dir.clone()
    }

    /// State over the OS keychain (Secret Service, Keychain, Credential Manager).
    pub fn with_platform_keychain() -> Self {
        let keychain = KeyringStore::platform()
            .map(|k| Arc::new(k) as Arc<dyn SecretStore>)
            .map_err(|e| e.to_string());
        AppState::new(keychain)
    }

    pub fn secrets(&self) -> SecretPlaces {
        self.secrets.clone()
    }

    /// Registers a starting run; `None` when one is already running.
    pub fn start_run(&self) -> Option<RunControl> {
        let mut run = self.run.lock().unwrap_or_else(|p| p.into_inner());
        if run.is_some() {
            return None;
        }
        let control = RunControl::new();
        *run = Some(control.clone());
        self.running.send_replace(true);
        Some(control)
    }

    pub fn finish_run(&self) {
        // The keep-awake lock goes with the pass (a closed descriptor releases logind's lock).
        *self.awake_guard.lock().unwrap_or_else(|p| p.into_inner()) = None;
        *self.run.lock().unwrap_or_else(|p| p.into_inner()) = None;
        *self.reporter.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.running.send_replace(false);
    }

    /// Returns once no run goes on (a pass runs in the background after its command returns;
    /// quitting and tests wait for it here).
    pub async fn wait_idle(&self) {
        let mut running = self.running.subscribe();
        // The sender lives as long as `self`: the wait ends only when the run does.
        let _ = running.wait_for(|running| !running).await;
    }

    /// The running migration's reporter, whose Channel a reloaded page can take over.
    pub fn set_reporter(&self, reporter: Arc<ChannelReporter>) {
        *self.last_reporter.lock().unwrap_or_else(|p| p.into_inner()) = Some(reporter.clone());
        *self.reporter.lock().unwrap_or_else(|p| p.into_inner()) = Some(reporter);
    }

    pub fn current_reporter(&self) -> Option<Arc<ChannelReporter>> {
        self.reporter
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The snapshot of the pass going on, or of the last one since the app started.
    pub fn run_snapshot(&self) -> Option<RunSnapshot> {
        self.last_reporter
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|r| r.snapshot())
    }

    /// A token for a new plan and its number; the plan counting before it (if any) is
    /// cancelled.
    pub fn begin_plan(&self) -> (u64, CancellationToken) {
        let token = CancellationToken::new();
        let number = self
            .plans
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let old = self
            .plan_cancel
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace((number, token.clone()));
        if let Some((_, old)) = old {
            old.cancel();
        }
        (number, token)
    }

    /// Cancels the plan being counted; `false` when none is.
    pub fn cancel_plan(&self) -> bool {
        let token = self
            .plan_cancel
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        token.map(|(_, t)| t.cancel()).is_some()
    }

    /// Forgets plan `number`'s token once it ended (unless a newer plan replaced it).
    pub fn end_plan(&self, number: u64) {
        let mut current = self.plan_cancel.lock().unwrap_or_else(|p| p.into_inner());
        if current.as_ref().is_some_and(|(n, _)| *n == number) {
            *current = None;
        }
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
