//! The measured side: a child process that runs the migration engine against the simulator
//! the parent started, and measures only itself (the simulator's memory and CPU stay in the
//! parent). It reads its [`Job`] from the environment and prints one [`WorkerResult`] as JSON.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use migrator_core::config::{Cloud, SourceConfig, Workload};
use migrator_core::dest::imap::{ConnectionLimit, ImapSettings, MasterStyle, Security};
use migrator_core::engine::{self, Destination, ImapLogins, RunControl, RunOptions, WorkerOptions};
use migrator_core::graph::pacer::AppBudget;
use migrator_core::graph::PacerSettings;
use migrator_core::journal::PostgresSettings;
use migrator_core::progress::{ProgressEvent, RunSummary};
use migrator_core::secrets::Secret;
use serde::{Deserialize, Serialize};

use crate::proc_stats::{cpu_seconds, rss_kib, system_cpu_seconds};

/// Environment variable carrying the job (JSON) to the child.
pub const JOB_ENV: &str = "M365_BENCH_JOB";

/// Environment variable: a `tracing` filter for the child's log on stderr (unset: no log).
pub const TIMELINE_ENV: &str = "M365_BENCH_TIMELINE";

/// What the child runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub url: String,
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
    pub destination: JobDestination,
    pub parallel_mailboxes: usize,
    pub max_in_flight: usize,
    pub budget: u32,
    pub window_secs: u64,
    /// The journal's folder (a real run always has one).
    pub state_dir: PathBuf,
    /// `[destination] max_connections` for an IMAP destination (the engine's default if unset).
    #[serde(default)]
    pub max_connections: Option<usize>,
    /// The app's budget across the tenant (budget, window seconds); the engine's default if
    /// unset.
    #[serde(default)]
    pub app_limit: Option<(u32, u64)>,
    /// A PostgreSQL journal (`[journal] url`): the job runs as one `m365-migrate worker`
    /// ([`engine::work`]) instead of `run` on SQLite in `state_dir`.
    #[serde(default)]
    pub journal_url: Option<String>,
    /// Stops the run through the engine's cancel once this many mailboxes finished, or this
    /// many seconds after the start, whichever comes first (a bounded start-up measurement).
    #[serde(default)]
    pub stop: Option<StopAt>,
    /// Migrates mail only (`RunOptions::workloads`), for a tenant generated without groupware.
    #[serde(default)]
    pub mail_only: bool,
}

/// When a bounded run is stopped.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct StopAt {
    pub mailboxes_finished: u64,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum JobDestination {
    Folder(PathBuf),
    /// Plaintext IMAP on loopback with a master login.
    Imap {
        port: u16,
        master_user: String,
        master_password: String,
    },
}

/// One sample of the run's progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sample {
    pub t: f64,
    pub messages: u64,
    pub bytes: u64,
    pub rss_kib: u64,
    /// Mailboxes started and not finished.
    #[serde(default)]
    pub running: u64,
}

/// What the child measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerResult {
    pub summary: RunSummary,
    pub wall_seconds: f64,
    /// From the start of the run to the first message written.
    pub first_message_seconds: Option<f64>,
    pub peak_rss_kib: u64,
    pub cpu_seconds: f64,
    /// The part of `cpu_seconds` spent in the kernel.
    #[serde(default)]
    pub cpu_system_seconds: f64,
    /// Every 250 ms: messages and bytes written so far, resident memory.
    pub samples: Vec<Sample>,
    pub throttled_events: u64,
    /// From the start of the run to the moment `parallel_mailboxes` mailboxes (or all, if
    /// fewer) were running at once, counted from `UserStarted` to `UserFinished`.
    #[serde(default)]
    pub all_running_seconds: Option<f64>,
    /// Mailboxes that reported `UserFinished`.
    #[serde(default)]
    pub mailboxes_finished: u64,
}

#[derive(Default)]
struct Counters {
    messages: AtomicU64,
    bytes: AtomicU64,
    throttled: AtomicU64,
    started: AtomicU64,
    finished: AtomicU64,
    /// `parallel_mailboxes`, capped at the mailboxes of the run once it announced them.
    slots: AtomicU64,
    first: OnceLock<Instant>,
    all_running: OnceLock<Instant>,
}

/// Runs the job from the environment and prints the result on stdout.
pub fn main() -> anyhow::Result<()> {
    let job: Job = serde_json::from_str(
        &std::env::var(JOB_ENV).with_context(|| format!("{JOB_ENV} is not set"))?,
    )
    .context("the job is not valid JSON")?;
    // Issue 18: where a run's time goes, from the engine's `timeline` events (the variable's
    // value is the filter, e.g. `timeline=debug`), on stderr with their times.
    if let Ok(filter) = std::env::var(TIMELINE_ENV) {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .init();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(run(job))?;
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}

/// The source settings for the simulator at `url`.
pub fn sim_source(url: &str, tenant_id: &str, client_id: &str) -> SourceConfig {
    SourceConfig {
        tenant_id: tenant_id.into(),
        client_id: client_id.into(),
        cloud: Cloud::Global,
        login_url: Some(url.into()),
        graph_url: Some(url.into()),
        allow_plaintext_loopback: Some(true),
    }
}

/// A run's pacer settings: `max_in_flight` and `budget` per `window_secs` per mailbox, and the
/// app's limit across the tenant, (budget, window seconds) (Graph's documented one if `None`).
pub fn pacer_settings(
    max_in_flight: usize,
    budget: u32,
    window_secs: u64,
    app_limit: Option<(u32, u64)>,
) -> PacerSettings {
    PacerSettings {
        max_in_flight,
        budget,
        window: Duration::from_secs(window_secs),
        app: app_limit
            .map(|(budget, window)| AppBudget::new(budget, Duration::from_secs(window)))
            .or(PacerSettings::default().app),
        ..PacerSettings::default()
    }
}

async fn run(job: Job) -> anyhow::Result<WorkerResult> {
    let source = sim_source(&job.url, &job.tenant_id, &job.client_id);
    let destination = match &job.destination {
        JobDestination::Folder(path) => Destination::Folder(path.clone()),
        JobDestination::Imap {
            port,
            master_user,
            master_password,
        } => {
            let mut settings = ImapSettings::new(crate::dovecot::HOST, *port, Security::Plain);
            settings.allow_plaintext_loopback = true;
            if let Some(max) = job.max_connections {
                settings.connection_limit = ConnectionLimit::new(max);
            }
            Destination::Imap {
                settings,
                logins: ImapLogins::Master {
                    master_user: master_user.clone(),
                    password: Secret::new(master_password.clone()),
                    style: MasterStyle::SaslAuthzid,
                },
                dav: None,
            }
        }
    };
    let options = RunOptions {
        parallel_mailboxes: job.parallel_mailboxes,
        pacer: pacer_settings(
            job.max_in_flight,
            job.budget,
            job.window_secs,
            job.app_limit,
        ),
        state_dir: Some(job.state_dir.clone()),
        ..RunOptions::default()
    };
    let options = if job.mail_only {
        RunOptions {
            workloads: vec![Workload::Mail],
            ..options
        }
    } else {
        options
    };
    let counters = Arc::new(Counters::default());
    let control = RunControl::new();
    // Every slot taken: `parallel_mailboxes` running, or every mailbox if there are fewer.
    let slots = job.parallel_mailboxes.max(1) as u64;
    let reporter = {
        let counters = counters.clone();
        let (control, stop) = (control.clone(), job.stop);
        move |event: ProgressEvent| match event {
            ProgressEvent::RunStarted { users } => {
                counters
                    .slots
                    .store(slots.min(u64::from(users).max(1)), Ordering::Relaxed);
            }
            ProgressEvent::ItemDone {
                bytes,
                skipped: false,
                ..
            } => {
                let _ = counters.first.set(Instant::now());
                counters.messages.fetch_add(1, Ordering::Relaxed);
                counters.bytes.fetch_add(bytes, Ordering::Relaxed);
            }
            ProgressEvent::Throttled { .. } => {
                counters.throttled.fetch_add(1, Ordering::Relaxed);
            }
            ProgressEvent::UserStarted { .. } => {
                let started = counters.started.fetch_add(1, Ordering::Relaxed) + 1;
                let running = started.saturating_sub(counters.finished.load(Ordering::Relaxed));
                if running >= counters.slots.load(Ordering::Relaxed) {
                    let _ = counters.all_running.set(Instant::now());
                }
            }
            ProgressEvent::UserFinished { .. } => {
                let finished = counters.finished.fetch_add(1, Ordering::Relaxed) + 1;
                if stop.is_some_and(|s| finished >= s.mailboxes_finished) {
                    control.cancel();
                }
            }
            _ => {}
        }
    };
    counters.slots.store(slots, Ordering::Relaxed);
    let started = Instant::now();
    let stopper = job.stop.map(|stop| {
        let control = control.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs_f64(stop.seconds)).await;
            control.cancel();
        })
    });
    let samples = Arc::new(Mutex::new(Vec::new()));
    let sample = {
        let (counters, samples) = (counters.clone(), samples.clone());
        move || {
            if let Ok(mut samples) = samples.lock() {
                samples.push(Sample {
                    t: started.elapsed().as_secs_f64(),
                    messages: counters.messages.load(Ordering::Relaxed),
                    bytes: counters.bytes.load(Ordering::Relaxed),
                    rss_kib: rss_kib("VmRSS").unwrap_or(0),
                    running: counters
                        .started
                        .load(Ordering::Relaxed)
                        .saturating_sub(counters.finished.load(Ordering::Relaxed)),
                });
            }
        }
    };
    let sampler = {
        let sample = sample.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                sample();
            }
        })
    };
    let secret = Secret::new(job.client_secret.clone());
    let summary = match &job.journal_url {
        None => engine::run(
            &source,
            &secret,
            &destination,
            Arc::new(reporter),
            control.clone(),
            options,
        )
        .await
        .map_err(|e| anyhow::anyhow!("the run stopped: {e} ({})", e.code()))?,
        Some(url) => {
            let (worker, host) = engine::default_worker_name();
            let options = WorkerOptions {
                worker,
                host,
                lease: Duration::from_secs(migrator_core::config::DEFAULT_LEASE_SECONDS),
                run: RunOptions {
                    journal: Some(PostgresSettings::parse(url)?),
                    ..options
                },
            };
            let done = engine::work(
                &source,
                &secret,
                &destination,
                Arc::new(reporter),
                RunControl::new(),
                options,
            )
            .await
            .map_err(|e| anyhow::anyhow!("the worker stopped: {e} ({})", e.code()))?;
            if !done.lost.is_empty() || !done.failed.is_empty() {
                anyhow::bail!(
                    "the worker lost {:?} and failed {:?}",
                    done.lost,
                    done.failed
                );
            }
            RunSummary {
                users: done.mailboxes,
                totals: done.totals,
                seconds: started.elapsed().as_secs_f64(),
                cancelled: false,
            }
        }
    };
    let wall_seconds = started.elapsed().as_secs_f64();
    // Issue 18: where the runtime's worker threads went (busy includes a call blocking one),
    // and what the PostgreSQL journal's callers waited for.
    let metrics = tokio::runtime::Handle::current().metrics();
    let busy: f64 = (0..metrics.num_workers())
        .map(|w| metrics.worker_total_busy_duration(w).as_secs_f64())
        .sum();
    let waits = migrator_core::journal::postgres::call_waits();
    eprintln!(
        "  worker: {wall_seconds:.2} s on {} runtime threads, busy {:.0}%; journal on \
         PostgreSQL: {} calls answered in {:.2} s, {} blocked a thread for {:.2} s in all, \
         {} shared transactions of done records holding {} (at most {})",
        metrics.num_workers(),
        100.0 * busy / (wall_seconds * metrics.num_workers() as f64).max(1e-9),
        waits.calls,
        waits.answered_seconds,
        waits.blocked_calls,
        waits.blocked_seconds,
        waits.shared_transactions,
        waits.shared_records,
        waits.largest_share,
    );
    sampler.abort();
    if let Some(stopper) = stopper {
        stopper.abort();
    }
    sample();
    let samples = samples.lock().map(|s| s.clone()).unwrap_or_default();
    Ok(WorkerResult {
        summary,
        wall_seconds,
        first_message_seconds: counters
            .first
            .get()
            .map(|t| t.duration_since(started).as_secs_f64()),
        peak_rss_kib: rss_kib("VmHWM")?,
        cpu_seconds: cpu_seconds()?,
        cpu_system_seconds: system_cpu_seconds()?,
        samples,
        throttled_events: counters.throttled.load(Ordering::Relaxed),
        all_running_seconds: counters
            .all_running
            .get()
            .map(|t| t.duration_since(started).as_secs_f64()),
        mailboxes_finished: counters.finished.load(Ordering::Relaxed),
    })
}
