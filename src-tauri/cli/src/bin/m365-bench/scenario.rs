//! The scenarios, and running one: the simulator in this process, the migrator in a child
//! process (so its memory and CPU are its own), then the simulator's request log analysed.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context as _};
use migrator_sim::{
    AppLimit, MailboxLimits, MailboxSizes, SimConfig, SimServer, SizeProfile, TenantSpec,
};
use serde::Serialize;

use crate::dovecot::{Dovecot, MASTER_PASSWORD, MASTER_USER};
use crate::proc_stats::{cpu_seconds, load_average, tree_cpu_seconds, MachineCpu};
use crate::worker::{Job, JobDestination, Sample, StopAt, WorkerResult, JOB_ENV};

/// Exchange Online's per-mailbox ceiling: 10,000 requests per 600 s.
pub const CEILING_RPS: f64 = 10_000.0 / 600.0;

/// One benchmark scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    pub name: &'static str,
    pub what: &'static str,
    pub users: usize,
    pub messages_per_user: usize,
    /// Largest attachment (bytes); the realistic size profile caps at it.
    pub max_attachment: usize,
    /// Every n-th message of a mailbox carries an attachment of exactly `max_attachment`.
    pub giant_every: Option<usize>,
    pub latency_ms: u64,
    pub jitter_ms: u64,
    /// Simulator's and pacer's per-mailbox limits: (in flight, budget, window seconds).
    pub limits: Option<(u32, u32, u64)>,
    pub parallel_mailboxes: usize,
    /// Heavy-tailed mailbox sizes (Pareto shape, largest mailbox); `messages_per_user` is
    /// then the smallest mailbox. `None`: every mailbox holds `messages_per_user`.
    pub heavy_tail: Option<(f64, usize)>,
    /// Graph's limit per app across the tenant on the simulator and the pacer: (budget,
    /// window seconds).
    pub app_limit: Option<(u32, u64)>,
}

const MB: usize = 1024 * 1024;
const EXCHANGE: Option<(u32, u32, u64)> = Some((4, 10_000, 600));

/// Every scenario, in the order `make bench` runs them.
pub fn all() -> Vec<Scenario> {
    let exchange = |name, what, users, messages| Scenario {
        name,
        what,
        users,
        messages_per_user: messages,
        max_attachment: 12 * MB,
        giant_every: None,
        latency_ms: 80,
        jitter_ms: 20,
        limits: EXCHANGE,
        parallel_mailboxes: users,
        heavy_tail: None,
        app_limit: None,
    };
    vec![
        Scenario {
            name: "quick",
            what: "smoke test: 2 mailboxes x 40 messages, Exchange limits, 5 ms latency",
            latency_ms: 5,
            jitter_ms: 2,
            max_attachment: MB,
            giant_every: Some(20),
            ..exchange("quick", "", 2, 40)
        },
        exchange(
            "small",
            "10 mailboxes x 2,000 messages, Exchange limits, 80 +/- 20 ms latency",
            10,
            2_000,
        ),
        exchange(
            "medium",
            "50 mailboxes x 2,000 messages, Exchange limits, 80 +/- 20 ms latency",
            50,
            2_000,
        ),
        exchange(
            "wide",
            "500 mailboxes x 100 messages, Exchange limits, 80 +/- 20 ms latency",
            500,
            100,
        ),
        Scenario {
            limits: Some((4, 1_000, 60)),
            ..exchange(
                "ceiling",
                "1 mailbox x 2,000 messages with the window scaled 10x down (1,000 per 60 s: \
                 the same 16.7 req/s), so the budget, not the 4 in flight, binds",
                1,
                2_000,
            )
        },
        Scenario {
            latency_ms: 0,
            jitter_ms: 0,
            limits: None,
            giant_every: Some(10_000),
            ..exchange(
                "mailbox-50k",
                "1 mailbox x 50,000 messages (five of 12 MB), latency 0 and limits off: \
                 memory flatness and the pipeline's own speed (at the Graph ceiling it would \
                 take ~50 minutes)",
                1,
                50_000,
            )
        },
    ]
}

/// Connections to Dovecot across the run when migrating into it: below Dovecot's default
/// `process_limit` of 100 IMAP processes.
pub const DOVECOT_MAX_CONNECTIONS: usize = 64;

/// Where a scenario's column wrote.
pub const INTO_DOVECOT: &str = "Dovecot";
pub const INTO_FOLDER: &str = "local folder";

/// The scenario at reduced size (`--reduced`, for when the full sizes do not fit the time
/// available): fewer messages (and mailboxes in `wide`), the same limits and latency.
pub fn reduced(s: Scenario) -> Scenario {
    let (users, messages) = match s.name {
        "small" => (10, 500),
        "medium" => (50, 500),
        "wide" => (250, 40),
        "ceiling" => (1, 1_500),
        "mailbox-50k" => (1, 10_000),
        _ => return s,
    };
    let what = format!(
        "REDUCED to {users} mailbox(es) x {messages} messages; full size: {}",
        s.what
    );
    Scenario {
        users,
        messages_per_user: messages,
        parallel_mailboxes: users,
        what: Box::leak(what.into_boxed_str()),
        ..s
    }
}

/// CPU seconds per 1,000 Graph requests (about one per message) the estimate assumes:
/// migrator + simulator, and Dovecot's own on top when writing into it (this benchmark's
/// reduced-size runs, 2026-11-29: migrator 1.2-1.8, simulator 0.25, Dovecot 1.25-2.3).
const CPU_PER_1K_FOLDER: f64 = 1.8;
const CPU_PER_1K_DOVECOT_EXTRA: f64 = 1.8;
/// Requests per mailbox besides the messages (sign-in, folder listings, delta pages).
const REQUESTS_PER_MAILBOX: f64 = 50.0;
/// One mailbox's own pipeline with Graph free (latency 0, limits off), messages per second:
/// the 1 x 10,000 mailbox measured 244 into Dovecot and 1,041 into the folder.
const PIPELINE_DOVECOT: f64 = 250.0;
const PIPELINE_FOLDER: f64 = 1_000.0;
/// Per column: starting Dovecot and the simulator, checks; plus generating the tenant.
const COLUMN_OVERHEAD: f64 = 5.0;
const GENERATE_PER_1K: f64 = 0.2;
/// Seconds the destination leg takes at full size (three legs of 2 x 3,000 messages, and
/// writing the Maildir mbsync reads).
const DESTLEG_ESTIMATE: f64 = 45.0;

/// How long one column of `s` should take on `cpus` CPUs, from its parameters: the longest
/// of the Graph-bound time (a mailbox's messages at the 16.7 req/s ceiling, all mailboxes in
/// parallel; none without limits), one mailbox's pipeline time (latency 0 only) and the
/// CPU-bound time (all requests at the CPU cost above, spread over every CPU), plus tenant
/// generation and start-up. A planning figure, not a measurement.
pub fn estimated_seconds(s: &Scenario, into: &str, cpus: usize) -> f64 {
    if s.name.starts_with("destleg") {
        return if s.name == "destleg" {
            DESTLEG_ESTIMATE
        } else {
            1.0
        };
    }
    let dovecot = into == INTO_DOVECOT;
    let per_mailbox = s.messages_per_user as f64;
    let graph = match s.limits {
        Some(_) => per_mailbox / CEILING_RPS + s.latency_ms as f64 / 1000.0,
        None if dovecot => per_mailbox / PIPELINE_DOVECOT,
        None => per_mailbox / PIPELINE_FOLDER,
    };
    let per_1k = CPU_PER_1K_FOLDER
        + if dovecot {
            CPU_PER_1K_DOVECOT_EXTRA
        } else {
            0.0
        };
    let messages = (s.users * s.messages_per_user) as f64;
    let requests = messages + REQUESTS_PER_MAILBOX * s.users as f64;
    let cpu = requests / 1000.0 * per_1k / cpus.max(1) as f64;
    COLUMN_OVERHEAD + messages / 1000.0 * GENERATE_PER_1K + graph.max(cpu)
}

/// What one scenario measured into one destination.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub scenario: Scenario,
    /// [`INTO_DOVECOT`] or [`INTO_FOLDER`].
    pub destination: &'static str,
    pub messages: u64,
    pub bytes: u64,
    pub failed: u64,
    pub wall_seconds: f64,
    pub messages_per_second: f64,
    /// 10^6 bytes per second.
    pub mb_per_second: f64,
    pub first_message_seconds: Option<f64>,
    /// From the run's first request (sign-in) to the first `$value` answered, in the
    /// simulator's log: when the first message's bytes had arrived.
    pub first_fetch_seconds: Option<f64>,
    pub peak_rss_mib: f64,
    /// RSS when half the messages were written, and at the end (flatness).
    pub rss_half_mib: f64,
    pub rss_end_mib: f64,
    pub cpu_seconds: f64,
    /// The part of `cpu_seconds` spent in the kernel.
    pub cpu_system_seconds: f64,
    pub cpu_seconds_per_1000: f64,
    /// The simulator's CPU (this process) during the run, for the bottleneck analysis.
    pub sim_cpu_seconds: f64,
    /// Dovecot's CPU during the run: its master and every descendant (live ones' utime +
    /// stime, reaped ones through the master's cutime + cstime); `None` into the folder.
    pub dovecot_cpu_seconds: Option<f64>,
    /// The machine's busy CPU seconds during the run, all CPUs (/proc/stat), and that as a
    /// share of all CPUs' time over the run (1.0 = every CPU busy all the time).
    pub machine_busy_cpu_seconds: f64,
    pub machine_busy_fraction: f64,
    /// CPU seconds other programs used during the run: machine busy minus the migrator, the
    /// simulator (this process) and Dovecot. Kernel threads (writeback) count here too; large
    /// values mean the machine was shared and the run's rates are pessimistic.
    pub other_cpu_seconds: f64,
    /// 1-, 5- and 15-minute load averages just before the scenario started (they still carry
    /// the previous scenario's own load).
    pub load_before: [f64; 3],
    /// The whole column, tenant generation and checks included (for the time budget).
    pub column_seconds: f64,
    /// [`estimated_seconds`] for this column, to check the estimate against `column_seconds`.
    pub estimated_seconds: f64,
    pub requests: u64,
    pub requests_429: u64,
    /// When each 429 was answered, in seconds from the run's first request.
    pub throttled_at: Vec<f64>,
    pub requests_failed_other: u64,
    /// Median over mailboxes of requests / (last response - first request).
    pub mailbox_rps_median: f64,
    pub mailbox_rps_min: f64,
    pub mailbox_rps_max: f64,
    /// Median over mailboxes of the best possible time under the limits (4 in flight at the
    /// observed request latency, budget per window) divided by the actual time.
    pub mailbox_efficiency_median: Option<f64>,
    /// Median over mailboxes of the mean number of requests in flight.
    pub mailbox_in_flight_median: f64,
    /// Median duration of a Graph request as the simulator served it.
    pub request_ms_median: f64,
    pub largest_message_bytes: u64,
    /// Graph requests to the mailbox that needed the most (the tenant's lower bound).
    pub largest_mailbox_requests: u64,
    /// Each mailbox's requests, from the simulator's log (for the tenant model).
    #[serde(skip)]
    pub mailbox_requests: Vec<u64>,
    pub samples: Vec<Sample>,
}

impl Outcome {
    pub fn rps_fraction(&self) -> f64 {
        self.mailbox_rps_median / CEILING_RPS
    }
    /// Busy CPU seconds of all CPUs per wall second of the run, split by who used them:
    /// (migrator, simulator, Dovecot, other programs), each as a share of all CPUs' time.
    pub fn cpu_shares(&self, cpus: usize) -> [f64; 4] {
        // busy / busy fraction = all CPUs' time over the measured interval.
        let capacity = if self.machine_busy_fraction > 0.0 {
            self.machine_busy_cpu_seconds / self.machine_busy_fraction
        } else {
            self.wall_seconds * cpus as f64
        }
        .max(1e-9);
        [
            self.cpu_seconds,
            self.sim_cpu_seconds,
            self.dovecot_cpu_seconds.unwrap_or(0.0),
            self.other_cpu_seconds,
        ]
        .map(|x| x / capacity)
    }

    pub fn fraction_429(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.requests_429 as f64 / self.requests as f64
        }
    }
}

pub fn tenant_spec(s: &Scenario) -> TenantSpec {
    TenantSpec {
        seed: 365,
        users: s.users,
        messages_per_user: s.messages_per_user,
        max_attachment: s.max_attachment,
        sizes: SizeProfile::Realistic {
            giant_every: s.giant_every,
        },
        mailbox_sizes: match s.heavy_tail {
            Some((alpha, largest)) => MailboxSizes::HeavyTailed { alpha, largest },
            None => MailboxSizes::Even,
        },
        ..TenantSpec::default()
    }
}

pub fn sim_config(s: &Scenario) -> SimConfig {
    SimConfig {
        tenant: tenant_spec(s),
        latency: Duration::from_millis(s.latency_ms),
        jitter: Duration::from_millis(s.jitter_ms),
        limits: s.limits.map(|(in_flight, budget, window)| MailboxLimits {
            max_in_flight: in_flight,
            budget,
            window: Duration::from_secs(window),
        }),
        app_limit: s.app_limit.map(|(budget, window)| AppLimit {
            budget,
            window: Duration::from_secs(window),
            announce: false,
        }),
        ..SimConfig::default()
    }
}

/// Messages the engine should migrate: all but search folders' (they hold none of their own).
pub fn expected_messages(sim: &SimServer) -> (u64, u64) {
    let tenant = sim.tenant();
    let mut count = 0;
    let mut largest = 0;
    for f in tenant.users.iter().flat_map(|u| &u.folders) {
        if f.is_search_folder {
            continue;
        }
        count += f.messages.len() as u64;
        for m in &f.messages {
            largest = largest.max(m.mime.len() as u64);
        }
    }
    (count, largest)
}

/// Runs the migrator in a child process against `sim` into `destination`.
pub async fn run_child(
    sim: &SimServer,
    s: &Scenario,
    destination: JobDestination,
    work: &Path,
    journal_url: Option<String>,
) -> anyhow::Result<WorkerResult> {
    run_child_stopping(sim, s, destination, work, journal_url, None, false).await
}

/// [`run_child`], stopped through the engine's cancel at `stop` (if any), mail only if
/// `mail_only`.
pub async fn run_child_stopping(
    sim: &SimServer,
    s: &Scenario,
    destination: JobDestination,
    work: &Path,
    journal_url: Option<String>,
    stop: Option<StopAt>,
    mail_only: bool,
) -> anyhow::Result<WorkerResult> {
    let (in_flight, budget, window) = s.limits.unwrap_or((4, 10_000, 600));
    let max_connections =
        matches!(destination, JobDestination::Imap { .. }).then_some(DOVECOT_MAX_CONNECTIONS);
    let job = Job {
        url: sim.url(),
        tenant_id: sim.tenant_id().into(),
        client_id: sim.client_id().into(),
        client_secret: sim.client_secret().into(),
        destination,
        parallel_mailboxes: s.parallel_mailboxes,
        max_in_flight: in_flight as usize,
        // Without limits on the simulator the pacer's budget must not bind either.
        budget: if s.limits.is_some() { budget } else { u32::MAX },
        window_secs: window,
        state_dir: work.join("state"),
        max_connections,
        app_limit: s.app_limit,
        journal_url,
        stop,
        mail_only,
    };
    let exe = std::env::current_exe().context("cannot find this program")?;
    let json = serde_json::to_string(&job)?;
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(exe)
            .arg("worker")
            .env(JOB_ENV, json)
            .stderr(std::process::Stdio::inherit())
            .output()
    })
    .await
    .context("the worker task failed")?
    .context("cannot start the worker process")?;
    if !output.status.success() {
        bail!("the worker process failed ({})", output.status);
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().last().unwrap_or_default();
    serde_json::from_str(line).context("the worker's result is not valid JSON")
}

/// Files in every Maildir `cur`/`new` folder under `root`: the messages on disk.
pub fn count_maildir_messages(root: &Path) -> u64 {
    let mut count = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let here = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
        for e in entries.flatten() {
            let Ok(kind) = e.file_type() else { continue };
            if kind.is_dir() {
                stack.push(e.path());
            } else if kind.is_file() && (here == "cur" || here == "new") {
                count += 1;
            }
        }
    }
    count
}

/// Runs one scenario twice, each time with a fresh simulator: into a real Dovecot, then into a
/// local folder under `work`; checks nothing was lost either time. Dovecot's column first.
pub async fn run(s: &Scenario, work: &Path) -> anyhow::Result<Vec<Outcome>> {
    let mut outcomes = Vec::new();
    for into in [INTO_DOVECOT, INTO_FOLDER] {
        outcomes.push(run_into(s, into, &work.join(into.replace(' ', "-"))).await?);
    }
    Ok(outcomes)
}

pub async fn run_into(s: &Scenario, into: &'static str, work: &Path) -> anyhow::Result<Outcome> {
    run_into_with(s, into, work, None).await
}

/// [`run_into`] with a PostgreSQL journal (`journal_url`): the child runs as one worker.
pub async fn run_into_with(
    s: &Scenario,
    into: &'static str,
    work: &Path,
    journal_url: Option<String>,
) -> anyhow::Result<Outcome> {
    let started = std::time::Instant::now();
    let sim = SimServer::start(sim_config(s))
        .await
        .context("cannot start the simulator")?;
    let (expected, largest) = expected_messages(&sim);
    eprintln!(
        "  {} into {into}: tenant generated in {:.1} s ({expected} messages)",
        s.name,
        started.elapsed().as_secs_f64()
    );
    let tenant = sim.tenant();
    let out = work.join("out");
    let dovecot = if into == INTO_DOVECOT {
        let accounts: Vec<(String, String)> = tenant
            .users
            .iter()
            .map(|u| (u.mail.clone(), "pw".to_string()))
            .collect();
        Some(Dovecot::start(&accounts)?)
    } else {
        None
    };
    let destination = match &dovecot {
        Some(d) => JobDestination::Imap {
            port: d.port,
            master_user: MASTER_USER.into(),
            master_password: MASTER_PASSWORD.into(),
        },
        None => JobDestination::Folder(out.clone()),
    };
    let dovecot_cpu = || {
        dovecot
            .as_ref()
            .map(|d| tree_cpu_seconds(d.pid()))
            .transpose()
    };
    let load_before = load_average()?;
    let dovecot_before = dovecot_cpu()?;
    let cpu_before = cpu_seconds()?;
    let machine_before = MachineCpu::now()?;
    let result = run_child(&sim, s, destination, work, journal_url).await?;
    let machine = MachineCpu::now()?.since(machine_before);
    let sim_cpu_seconds = cpu_seconds()? - cpu_before;
    let dovecot_cpu_seconds = dovecot_cpu()?
        .zip(dovecot_before)
        .map(|(after, before)| after - before);
    let log = sim.requests();
    sim.shutdown().await;

    let totals = &result.summary.totals;
    if totals.failed > 0 {
        bail!("{} into {into}: {} messages failed", s.name, totals.failed);
    }
    if totals.messages != expected {
        bail!(
            "{} into {into}: {} of {expected} messages migrated ({} skipped)",
            s.name,
            totals.messages,
            totals.skipped
        );
    }
    let stored = match &dovecot {
        Some(d) => tenant
            .users
            .iter()
            .map(|u| d.stored_messages(&u.mail))
            .sum(),
        None => count_maildir_messages(&out),
    };
    if stored != expected {
        bail!(
            "{} into {into}: {stored} of {expected} messages stored",
            s.name
        );
    }
    // The checks above have run: free the disk now (a full-size medium column is about
    // 7 GB) instead of when the scenario's work folder goes.
    drop(dovecot);
    let _ = std::fs::remove_dir_all(&out);
    let mut o = outcome(s, result, &log, sim_cpu_seconds, largest);
    o.destination = into;
    o.dovecot_cpu_seconds = dovecot_cpu_seconds;
    o.machine_busy_cpu_seconds = machine.busy;
    o.machine_busy_fraction = machine.busy_fraction();
    o.other_cpu_seconds =
        (machine.busy - o.cpu_seconds - o.sim_cpu_seconds - dovecot_cpu_seconds.unwrap_or(0.0))
            .max(0.0);
    o.load_before = load_before;
    o.column_seconds = started.elapsed().as_secs_f64();
    o.estimated_seconds = estimated_seconds(s, into, crate::proc_stats::machine_cpus());
    Ok(o)
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Turns the worker's measurements and the simulator's log into the scenario's numbers.
pub fn outcome(
    s: &Scenario,
    r: WorkerResult,
    log: &[migrator_sim::RequestRecord],
    sim_cpu_seconds: f64,
    largest: u64,
) -> Outcome {
    let mut per_mailbox: HashMap<&str, Vec<&migrator_sim::RequestRecord>> = HashMap::new();
    for rec in log {
        if let Some(m) = &rec.mailbox {
            per_mailbox.entry(m.as_str()).or_default().push(rec);
        }
    }
    let (mut rates, mut efficiencies, mut in_flight) = (Vec::new(), Vec::new(), Vec::new());
    let largest_mailbox_requests = per_mailbox.values().map(Vec::len).max().unwrap_or(0) as u64;
    for recs in per_mailbox.values() {
        let (Some(first), Some(last)) = (
            recs.iter().map(|r| r.at).min(),
            recs.iter().map(|r| r.finished).max(),
        ) else {
            continue;
        };
        let span = last.duration_since(first).as_secs_f64().max(1e-3);
        let n = recs.len() as f64;
        let busy: f64 = recs
            .iter()
            .map(|r| r.finished.duration_since(r.at).as_secs_f64())
            .sum();
        rates.push(n / span);
        in_flight.push(busy / span);
        if let Some((c, budget, window)) = s.limits {
            // The best possible schedule: bursts of `budget` requests at `c` in flight with the
            // observed mean latency, one burst per window.
            let latency = busy / n;
            let burst = |k: f64| k * latency / c as f64;
            let full_windows = ((n - 1.0) / budget as f64).floor();
            let rest = n - full_windows * budget as f64;
            let ideal = burst(n).max(full_windows * window as f64 + burst(rest));
            efficiencies.push(ideal / span);
        }
    }
    let mut durations: Vec<f64> = log
        .iter()
        .filter(|r| r.mailbox.is_some())
        .map(|r| r.finished.duration_since(r.at).as_secs_f64() * 1000.0)
        .collect();
    let messages = r.summary.totals.messages;
    let bytes = r.summary.totals.bytes;
    let half = r
        .samples
        .iter()
        .find(|x| x.messages * 2 >= messages)
        .map_or(0, |x| x.rss_kib);
    let end = r.samples.last().map_or(0, |x| x.rss_kib);
    let wall = r.wall_seconds.max(1e-9);
    let first_request = log.iter().map(|x| x.at).min();
    let first_fetch = first_fetch(log);
    let first_fetch_seconds = first_request
        .zip(first_fetch)
        .map(|(a, b)| b.saturating_duration_since(a).as_secs_f64());
    let rps_min = rates.iter().copied().fold(f64::INFINITY, f64::min);
    let rps_max = rates.iter().copied().fold(0.0, f64::max);
    Outcome {
        scenario: s.clone(),
        destination: INTO_FOLDER,
        messages,
        bytes,
        failed: r.summary.totals.failed,
        wall_seconds: r.wall_seconds,
        messages_per_second: messages as f64 / wall,
        mb_per_second: bytes as f64 / 1e6 / wall,
        first_message_seconds: r.first_message_seconds,
        first_fetch_seconds,
        peak_rss_mib: r.peak_rss_kib as f64 / 1024.0,
        rss_half_mib: half as f64 / 1024.0,
        rss_end_mib: end as f64 / 1024.0,
        cpu_seconds: r.cpu_seconds,
        cpu_system_seconds: r.cpu_system_seconds,
        cpu_seconds_per_1000: r.cpu_seconds * 1000.0 / (messages.max(1) as f64),
        sim_cpu_seconds,
        dovecot_cpu_seconds: None,
        machine_busy_cpu_seconds: 0.0,
        machine_busy_fraction: 0.0,
        other_cpu_seconds: 0.0,
        load_before: [0.0; 3],
        column_seconds: 0.0,
        estimated_seconds: 0.0,
        requests: log.len() as u64,
        requests_429: log.iter().filter(|x| x.status == 429).count() as u64,
        throttled_at: log
            .iter()
            .filter(|x| x.status == 429)
            .filter_map(|x| Some(x.at.saturating_duration_since(first_request?).as_secs_f64()))
            .collect(),
        requests_failed_other: log
            .iter()
            .filter(|x| x.status >= 400 && x.status != 429 && x.status != 404)
            .count() as u64,
        mailbox_rps_median: median(&mut rates),
        mailbox_rps_min: if rps_min.is_finite() { rps_min } else { 0.0 },
        mailbox_rps_max: rps_max,
        mailbox_efficiency_median: (!efficiencies.is_empty()).then(|| median(&mut efficiencies)),
        mailbox_in_flight_median: median(&mut in_flight),
        request_ms_median: median(&mut durations),
        largest_message_bytes: largest,
        largest_mailbox_requests,
        mailbox_requests: per_mailbox.values().map(|r| r.len() as u64).collect(),
        samples: thin(r.samples, 400),
    }
}

/// When the first message's bytes (`$value`) were answered in full, in the simulator's log.
pub fn first_fetch(log: &[migrator_sim::RequestRecord]) -> Option<std::time::Instant> {
    log.iter()
        .filter(|x| x.status == 200 && x.path_and_query.ends_with("/$value"))
        .map(|x| x.finished)
        .min()
}

/// At most `max` samples, evenly spaced (the last one kept).
fn thin(samples: Vec<Sample>, max: usize) -> Vec<Sample> {
    if samples.len() <= max {
        return samples;
    }
    let step = samples.len().div_ceil(max);
    let last = samples.last().cloned();
    let mut out: Vec<Sample> = samples.into_iter().step_by(step).collect();
    if let Some(last) = last {
        out.push(last);
    }
    out
}

/// A fresh work folder for one scenario (removed when dropped).
pub fn work_dir(name: &str) -> anyhow::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(&format!("m365-bench-{name}-"))
        .tempdir()
        .context("cannot create a work folder")
}

pub fn find(name: &str) -> Option<Scenario> {
    all().into_iter().find(|s| s.name == name)
}
