//! The tenant scenarios (issue 17.5): a generated tenant with heavy-tailed mailbox sizes
//! under Exchange Online's per-mailbox limits and Graph's limit per app across the tenant,
//! time-scaled so it fits minutes on 2 CPUs, into the local folder (`tenant` and `tenant-quick`
//! into Dovecot too). Each reports its finish time against the lower bound the limits, the
//! machine and the destination allow, the Plan's estimate for the same tenant, the time to the
//! first message and the migrator's peak RSS. The lower bound and the Plan's estimate are one
//! model, the core's `engine::estimate`.
//!
//! **Time scale.** Every limit and latency is [`TIME_SCALE`] times faster than Exchange's
//! (10,000 requests per 60 s instead of 600 s per mailbox, 130,000 per 1 s instead of 10 s per
//! app, 8 +/- 2 ms instead of 80 +/- 20 ms per request), so one scaled second stands for ten
//! real ones while the CPU and the disk run at their real speed: the scaled run is closer to
//! CPU-bound than the real tenant would be, never further.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures_util::StreamExt as _;
use migrator_core::config::Workload;
use migrator_core::convert::flags::MailFlags;
use migrator_core::dest::folder::{Folder, FolderStore};
use migrator_core::engine::estimate::{
    is_this_machine, DestinationKind, Estimate, Limits, Machine, MailboxWork, IMAP_BYTES_PER_SECOND,
};
use migrator_core::engine::RunOptions;
use migrator_core::graph::client::ByteSink as _;
use migrator_core::secrets::Secret;
use serde::Serialize;

use crate::scenario::{self, Outcome, Scenario, INTO_DOVECOT, INTO_FOLDER};
use crate::worker::{JobDestination, StopAt};

/// How many times faster than Exchange Online's the scenario's limits and latency are.
pub const TIME_SCALE: f64 = 10.0;

/// Exchange Online's per-mailbox limits, time-scaled: 4 in flight, 10,000 per 60 s.
const SCALED_EXCHANGE: Option<(u32, u32, u64)> = Some((4, 10_000, 60));
/// Graph's global limit (130,000 per 10 s), time-scaled.
const SCALED_APP: Option<(u32, u64)> = Some((130_000, 1));

/// Messages written to measure the destination's rate before the run.
const RATE_SAMPLE: usize = 2_000;

/// The tenant scenarios: `tenant` (finish time against the lower bound), `tenant-memory`
/// (1,000 mailboxes at once), `tenant-quick` (a smoke run, about 10 s in a debug build on a
/// busy machine: too long for `--quick`).
pub fn scenarios() -> Vec<Scenario> {
    let base = |name, what, users, smallest, largest: Option<usize>, parallel| Scenario {
        name,
        what,
        users,
        messages_per_user: smallest,
        max_attachment: 256 * 1024,
        giant_every: None,
        latency_ms: 8,
        jitter_ms: 2,
        limits: SCALED_EXCHANGE,
        parallel_mailboxes: parallel,
        heavy_tail: largest.map(|l| (1.2, l)),
        app_limit: SCALED_APP,
    };
    vec![
        base(
            "tenant",
            "500 mailboxes, heavy-tailed (Pareto 1.2 from 5 messages, the largest 5,000), with \
             calendars, contacts and tasks, 100 at once, Exchange's limits and latency \
             time-scaled 10x, into the local folder and into Dovecot (mail only there)",
            500,
            5,
            Some(5_000),
            100,
        ),
        base(
            "tenant-memory",
            "1,000 mailboxes x 5 messages with calendars, contacts and tasks, all 1,000 at \
             once, limits and latency time-scaled 10x, into the local folder: peak RSS",
            1_000,
            5,
            None,
            1_000,
        ),
        base(
            "tenant-largest",
            "the tenant scenario's largest mailbox alone: 1 mailbox of 5,000 messages with \
             calendars, contacts and tasks, limits and latency time-scaled 10x, into the local \
             folder (what holds one big mailbox below its ceiling when nothing else runs)",
            1,
            5_000,
            None,
            1,
        ),
        base(
            "tenant-startup",
            "start-up: 10,000 mailboxes, heavy-tailed (Pareto 1.2 from 5 messages, the largest \
             5,000), mail only, 100 at once, limits and latency time-scaled 10x, into the local \
             folder; stopped once 1,000 mailboxes finished or after 60 s",
            10_000,
            5,
            Some(5_000),
            100,
        ),
        base(
            "tenant-quick",
            "smoke: 12 mailboxes, heavy-tailed (from 2 messages, the largest 60), all at once, \
             into the local folder and into Dovecot",
            12,
            2,
            Some(60),
            12,
        ),
    ]
}

pub fn find(name: &str) -> Option<Scenario> {
    scenarios().into_iter().find(|s| s.name == name)
}

/// Where tenant scenario `name` writes: `tenant` and `tenant-quick` into the local folder and
/// into Dovecot, the others into the local folder.
pub fn destinations(name: &str) -> &'static [&'static str] {
    match name {
        "tenant" | "tenant-quick" => &[INTO_FOLDER, INTO_DOVECOT],
        _ => &[INTO_FOLDER],
    }
}

/// What a tenant scenario measured.
#[derive(Debug, Clone, Serialize)]
pub struct TenantOutcome {
    pub name: &'static str,
    pub destination: &'static str,
    pub time_scale: f64,
    pub mailboxes: usize,
    pub largest_mailbox_messages: usize,
    pub messages: u64,
    pub bytes: u64,
    pub requests: u64,
    pub requests_429: u64,
    pub largest_mailbox_requests: u64,
    pub wall_seconds: f64,
    pub first_message_seconds: Option<f64>,
    pub peak_rss_mib: f64,
    /// Mailboxes running at once, at most (from the 250-ms samples).
    pub peak_running: u64,
    pub migrator_cpu_ms_per_message: f64,
    /// The kernel's part of it (file creation, fsyncs, sockets).
    pub migrator_system_cpu_ms_per_message: f64,
    pub simulator_cpu_ms_per_message: f64,
    pub destination_bytes_per_second: f64,
    /// `true`: measured before the run (the local folder); `false`: the model's measured
    /// constant for an IMAP server (Dovecot).
    pub destination_rate_measured: bool,
    /// The tenant model with what this run measured: each mailbox's requests at its ceiling
    /// at the median request time, the CPU the migrator, the simulator and Dovecot used, the
    /// bytes at the destination's rate. Seconds of the scaled run.
    pub bounds: Estimate,
    pub lower_bound_seconds: f64,
    pub binds: &'static str,
    /// Finish time / lower bound.
    pub ratio: f64,
    /// The Plan's estimate for the same tenant, before the run: [`plan_estimate`].
    pub plan: Estimate,
    pub plan_seconds: f64,
    pub plan_binds: &'static str,
    /// The Plan's estimate / finish time (the target: within 20%, 0.8 to 1.2).
    pub plan_ratio: f64,
}

impl TenantOutcome {
    /// The run's line. Without the requests in flight per mailbox that the other scenarios
    /// report: a mailbox's requests span from its sizing read at the run's start to the end of
    /// its copy, so its time in the queue counted as idle (0.01-0.03 of 4 in the tenant runs).
    pub fn line(&self) -> String {
        format!(
            "{} into {}: {} mailboxes, {} messages in {:.1} s, lower bound {:.1} s ({}: \
             largest mailbox {:.1}, app {:.1}, CPU {:.1}, destination {:.1}{}), ratio {:.2}, \
             plan's estimate {:.1} s ({}: mailboxes {:.1}, app {:.1}, CPU {:.1}, destination \
             {:.1}) = {:.2} of the finish, first message {} s, \
             peak RSS {:.0} MiB, {} running at most, CPU {:.2} ms/msg ({:.2} of it in the \
             kernel; + simulator {:.2}), \
             largest mailbox {} requests",
            self.name,
            self.destination,
            self.mailboxes,
            self.messages,
            self.wall_seconds,
            self.lower_bound_seconds,
            self.binds,
            self.bounds.largest_mailbox,
            self.bounds.app_limit,
            self.bounds.cpu,
            self.bounds.destination,
            if self.destination_rate_measured {
                ""
            } else {
                " at the assumed rate"
            },
            self.ratio,
            self.plan_seconds,
            self.plan_binds,
            self.plan.mailboxes,
            self.plan.app_limit,
            self.plan.cpu,
            self.plan.destination,
            self.plan_ratio,
            self.first_message_seconds
                .map_or("-".into(), |s| format!("{s:.2}")),
            self.peak_rss_mib,
            self.peak_running,
            self.migrator_cpu_ms_per_message,
            self.migrator_system_cpu_ms_per_message,
            self.simulator_cpu_ms_per_message,
            self.largest_mailbox_requests,
        )
    }
}

/// How long after a tenant run's outputs were deleted the next one waits (`--no-settle`
/// skips it). On ext4 without a journal (this machine's disk), every inode allocated in a
/// block group first skips, one by one, each inode of the group deleted less than 60 s ago,
/// or 360 s while its inode table block is dirty, which the new inodes next to it make it
/// (Linux fs/ext4/ialloc.c, `find_inode_bit()`, `recently_deleted()`, `RECENTCY_MIN`,
/// `RECENTCY_DIRTY`). A run that starts within minutes of an earlier one's clean-up (~80,000
/// files and folders) pays for them in system CPU on every file and folder it creates, more
/// each run: the drift in BENCHMARKS.md (2026-12-07). Measured there: a sync and 61 s do not
/// help (the dirty window), nor reliably does `chattr +T` on the destination root (ext4's
/// Orlov allocator then prefers the groups the clean-up just emptied).
pub const REUSE_WINDOW: Duration = Duration::from_secs(361);

/// Where the time of the last tenant run's clean-up is kept between runs of this program.
fn deleted_at_path() -> PathBuf {
    std::env::temp_dir().join("m365-bench-tenant-deleted-at")
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Removes a run's output `dirs` and notes when, for the next run's [`settle`].
fn remove_outputs(dirs: &[PathBuf]) {
    for dir in dirs {
        let _ = std::fs::remove_dir_all(dir);
    }
    let _ = std::fs::write(deleted_at_path(), unix_now().to_string());
}

/// Makes a run start on a disk as a fresh destination finds it: syncs the filesystem holding
/// `work` (`sync -f`, so earlier runs' write-back does not run during this one), then, if
/// `wait`, waits until [`REUSE_WINDOW`] has passed since the last tenant run's clean-up
/// (other programs' deletions are not covered).
pub fn settle(work: &Path, wait: bool) -> anyhow::Result<()> {
    let status = std::process::Command::new("sync")
        .arg("-f")
        .arg(work)
        .status()
        .context("cannot run sync -f")?;
    if !status.success() {
        anyhow::bail!("sync -f {} failed ({status})", work.display());
    }
    let deleted_at = std::fs::read_to_string(deleted_at_path())
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok());
    let ago = deleted_at.map(|t| unix_now().saturating_sub(t));
    if let (true, Some(ago)) = (wait, ago) {
        let left = REUSE_WINDOW.saturating_sub(Duration::from_secs(ago));
        if !left.is_zero() {
            eprintln!(
                "  settling: an earlier run's files were deleted {ago} s ago; waiting {} s more \
                 (ext4's reuse window; --no-settle skips it)",
                left.as_secs()
            );
            std::thread::sleep(left);
        }
    }
    Ok(())
}

/// Runs tenant scenario `s` into `into` (the local folder or Dovecot) under `work`: [`settle`]
/// (`wait`), the Plan's estimate, the local folder's rate (Dovecot's is the model's
/// [`IMAP_BYTES_PER_SECOND`]), then the run (checked: every message once, none failed). The
/// rate sample stays on disk until the run has finished: removing its files just before the
/// run would slow the run's own file creation (see [`REUSE_WINDOW`]).
pub async fn run(
    s: &Scenario,
    into: &'static str,
    work: &Path,
    wait: bool,
) -> anyhow::Result<(Outcome, TenantOutcome)> {
    settle(work, wait)?;
    let cpus = crate::proc_stats::machine_cpus().max(1);
    let (plan, plan_binds, plan_seconds) = plan_estimate(s, into, work, cpus).await?;
    let spec = scenario::tenant_spec(s);
    let tenant = migrator_sim::generate_tenant(&spec);
    let largest_mailbox_messages = (0..spec.users).map(|u| spec.messages_of(u)).max();
    let (rate, measured) = if into == INTO_FOLDER {
        (destination_rate(&tenant, &work.join("rate")).await?, true)
    } else {
        (IMAP_BYTES_PER_SECOND, false)
    };
    drop(tenant);
    let run = work.join("run");
    let o = scenario::run_into(s, into, &run).await;
    // `run_into` removed its output once checked; the rest of the run's folders go too.
    remove_outputs(&[work.join("rate"), run]);
    let o = o?;
    // The model with what the run measured: the CPU per message of everything that ran.
    let messages = o.messages.max(1) as f64;
    let cpu = o.cpu_seconds + o.sim_cpu_seconds + o.dovecot_cpu_seconds.unwrap_or(0.0);
    let mut work: Vec<MailboxWork> = (o.mailbox_requests.iter())
        .map(|&requests| MailboxWork {
            requests,
            ..MailboxWork::default()
        })
        .collect();
    // The totals (the CPU and destination terms are sums over the tenant).
    work.push(MailboxWork {
        requests: 0,
        items: o.messages,
        messages: o.messages,
        bytes: o.bytes,
    });
    // Dovecot's CPU is measured into `cpu`, so no destination server's CPU is added.
    let machine = Machine {
        cpus,
        cpu_seconds_per_item: cpu / messages,
        destination_bytes_per_second: rate,
        mail_server_cpu_seconds_per_message: 0.0,
        dav_server_cpu_seconds_per_item: 0.0,
    };
    let latency = Duration::try_from_secs_f64(o.request_ms_median / 1000.0).unwrap_or_default();
    let bounds = Estimate::of(&work, &scenario_limits(s, latency), &machine);
    let (binds, lower) = bounds.lower_bound();
    let t = TenantOutcome {
        name: s.name,
        destination: into,
        time_scale: TIME_SCALE,
        mailboxes: s.users,
        largest_mailbox_messages: largest_mailbox_messages.unwrap_or(0),
        messages: o.messages,
        bytes: o.bytes,
        requests: o.requests,
        requests_429: o.requests_429,
        largest_mailbox_requests: o.largest_mailbox_requests,
        wall_seconds: o.wall_seconds,
        first_message_seconds: o.first_message_seconds,
        peak_rss_mib: o.peak_rss_mib,
        peak_running: o.samples.iter().map(|x| x.running).max().unwrap_or(0),
        migrator_cpu_ms_per_message: o.cpu_seconds * 1000.0 / messages,
        migrator_system_cpu_ms_per_message: o.cpu_system_seconds * 1000.0 / messages,
        simulator_cpu_ms_per_message: o.sim_cpu_seconds * 1000.0 / messages,
        destination_bytes_per_second: rate,
        destination_rate_measured: measured,
        bounds,
        lower_bound_seconds: lower,
        binds,
        ratio: o.wall_seconds / lower.max(1e-9),
        plan,
        plan_seconds,
        plan_binds,
        plan_ratio: plan_seconds / o.wall_seconds.max(1e-9),
    };
    Ok((o, t))
}

/// The model's limits for scenario `s` (its scaled per-mailbox and app limits) at `latency`
/// per request.
fn scenario_limits(s: &Scenario, latency: Duration) -> Limits {
    let (in_flight, budget, window) = s.limits.unwrap_or((4, u32::MAX, 1));
    Limits {
        max_in_flight: in_flight as usize,
        budget,
        window: Duration::from_secs(window),
        app: s
            .app_limit
            .map(|(budget, window)| (budget, Duration::from_secs(window))),
        latency,
        parallel_mailboxes: s.parallel_mailboxes,
    }
}

/// What the Plan says beforehand of scenario `s` into `into`: `engine::plan` against the
/// same generated tenant (a simulator of its own, so the plan's requests are not the run's),
/// with the run's limits, then [`migrator_core::engine::Plan::estimate`] at the scenario's
/// mean latency (the Plan assumes Exchange's 250 ms; the scenario's is time-scaled) on this
/// machine's `cpus` with the model's constants ([`Machine::writing_to`] the destination): the
/// CPU per item is the migrator's and, into Dovecot (on [`crate::dovecot::HOST`], a loopback
/// address, so on this machine), Dovecot's (the Plan does not know of the simulator); the
/// destination's rate its measured constant. Returns the terms, the binding one and the
/// estimate.
async fn plan_estimate(
    s: &Scenario,
    into: &str,
    work: &Path,
    cpus: usize,
) -> anyhow::Result<(Estimate, &'static str, f64)> {
    let sim = migrator_sim::SimServer::start(scenario::sim_config(s))
        .await
        .context("cannot start the simulator for the plan")?;
    let (in_flight, budget, window) = s.limits.unwrap_or((4, u32::MAX, 1));
    // Into Dovecot the run writes mail only (the worker gives its IMAP destination no DAV
    // server), so the plan counts what the run copies.
    let workloads = match into {
        INTO_DOVECOT => vec![Workload::Mail],
        _ => Workload::ALL.to_vec(),
    };
    let options = RunOptions {
        parallel_mailboxes: s.parallel_mailboxes,
        pacer: crate::worker::pacer_settings(in_flight as usize, budget, window, s.app_limit),
        state_dir: Some(work.join("plan")),
        workloads,
        ..RunOptions::default()
    };
    let source = crate::worker::sim_source(&sim.url(), sim.tenant_id(), sim.client_id());
    let plan =
        migrator_core::engine::plan(&source, &Secret::new(sim.client_secret()), &options).await;
    sim.shutdown().await;
    let _ = std::fs::remove_dir_all(work.join("plan"));
    let plan = plan.context("the plan failed")?;
    let destination = if into == INTO_FOLDER {
        DestinationKind::Folder
    } else {
        DestinationKind::Imap {
            mail_here: is_this_machine(crate::dovecot::HOST),
            dav_here: false,
        }
    };
    let machine = Machine {
        cpus,
        ..Machine::writing_to(destination)
    };
    let latency = Duration::from_millis(s.latency_ms);
    let estimate = plan.estimate(&scenario_limits(s, latency), &machine);
    let (binds, seconds) = estimate.seconds();
    Ok((estimate, binds, seconds))
}

/// Bytes per second the local folder takes: the tenant's first [`RATE_SAMPLE`] messages
/// (its size mix) written as the engine writes them (a file synced, renamed into `cur/`,
/// the folder synced), 16 at once. Left on disk for the caller to remove after the run.
async fn destination_rate(tenant: &migrator_sim::Tenant, dir: &Path) -> anyhow::Result<f64> {
    let store = FolderStore::open(dir).context("cannot open the rate folder")?;
    let mut folders = Vec::new();
    let mut sample = Vec::new();
    for (i, user) in tenant.users.iter().enumerate().take(64) {
        let mailbox = store.mailbox(&user.mail)?;
        folders.push(mailbox.folder("Inbox")?);
        for m in user.folders.iter().flat_map(|f| &f.messages) {
            if sample.len() < RATE_SAMPLE {
                sample.push((i, m.id.clone(), m.mime.bytes()));
            }
        }
    }
    let total: u64 = sample.iter().map(|(_, _, b)| b.len() as u64).sum();
    let started = Instant::now();
    let folders = &folders;
    let written: Vec<std::io::Result<()>> = futures_util::stream::iter(sample)
        .map(|(i, id, bytes)| async move {
            let folder: &Folder = &folders[i];
            let mut delivery = folder.deliver(&Folder::key_for(&id)).await?;
            delivery.write(&bytes).await?;
            delivery.commit(&MailFlags::default(), 0).await?;
            Ok(())
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let seconds = started.elapsed().as_secs_f64();
    for w in written {
        w.context("cannot write the rate sample")?;
    }
    Ok(total as f64 / seconds.max(1e-9))
}

/// When `tenant-startup` stops (through the engine's cancel): once 1,000 mailboxes finished,
/// or 60 s after the start, so the scenario stays around two minutes.
pub const STARTUP_STOP: StopAt = StopAt {
    mailboxes_finished: 1_000,
    seconds: 60.0,
};

/// What `tenant-startup` measured: how soon a 10,000-user tenant starts copying (issue 17.2).
#[derive(Debug, Clone, Serialize)]
pub struct StartupOutcome {
    pub name: &'static str,
    pub time_scale: f64,
    pub mailboxes: usize,
    pub parallel_mailboxes: usize,
    /// Generating the tenant and starting the simulator (not part of the run).
    pub generate_seconds: f64,
    /// From the start of the run to the first message written.
    pub first_message_seconds: Option<f64>,
    /// From the start of the run until `parallel_mailboxes` were running at once.
    pub all_running_seconds: Option<f64>,
    /// `GET /users` requests, and those answered with a page (200).
    pub user_requests: u64,
    pub user_pages: u64,
    /// From the run's first request: the last user page requested, and the first message's
    /// bytes answered (`$value`): copying overlapped the listing if the second comes first.
    pub last_user_page_seconds: Option<f64>,
    pub first_fetch_seconds: Option<f64>,
    pub mailboxes_finished: u64,
    pub messages: u64,
    pub wall_seconds: f64,
    pub peak_rss_mib: f64,
    pub requests: u64,
    pub requests_429: u64,
}

impl StartupOutcome {
    pub fn line(&self) -> String {
        let s = |x: Option<f64>| x.map_or("-".into(), |s| format!("{s:.2}"));
        format!(
            "{}: {} mailboxes, {} at once: first message {} s, all {} running {} s, users \
             listed in {} pages ({} requests, the last requested at {} s; first message \
             fetched at {} s), stopped after {:.1} s with {} mailboxes and {} messages done, \
             peak RSS {:.0} MiB, {} requests, {} answered 429 (tenant generated in {:.1} s)",
            self.name,
            self.mailboxes,
            self.parallel_mailboxes,
            s(self.first_message_seconds),
            self.parallel_mailboxes,
            s(self.all_running_seconds),
            self.user_pages,
            self.user_requests,
            s(self.last_user_page_seconds),
            s(self.first_fetch_seconds),
            self.wall_seconds,
            self.mailboxes_finished,
            self.messages,
            self.peak_rss_mib,
            self.requests,
            self.requests_429,
            self.generate_seconds,
        )
    }
}

/// True for a request of the user listing (`GET /users`, any page).
fn is_user_listing(path_and_query: &str) -> bool {
    path_and_query
        .split('?')
        .next()
        .is_some_and(|path| path.ends_with("/users"))
}

/// Runs `tenant-startup` into the local folder under `work` after [`settle`] (`wait`): a
/// mail-only tenant, the run stopped at [`STARTUP_STOP`]; checked: nothing failed, every
/// message reported written is on disk once.
pub async fn startup(s: &Scenario, work: &Path, wait: bool) -> anyhow::Result<StartupOutcome> {
    settle(work, wait)?;
    let mut config = scenario::sim_config(s);
    config.tenant.groupware = migrator_sim::GroupwareSpec::none();
    let generating = Instant::now();
    let sim = migrator_sim::SimServer::start(config)
        .await
        .context("cannot start the simulator")?;
    let generate_seconds = generating.elapsed().as_secs_f64();
    eprintln!("  {}: tenant generated in {generate_seconds:.1} s", s.name);
    let out = work.join("out");
    let r = scenario::run_child_stopping(
        &sim,
        s,
        JobDestination::Folder(out.clone()),
        work,
        None,
        Some(STARTUP_STOP),
        true,
    )
    .await?;
    let log = sim.requests();
    sim.shutdown().await;
    let totals = &r.summary.totals;
    if totals.failed > 0 {
        anyhow::bail!("{}: {} messages failed", s.name, totals.failed);
    }
    let stored = scenario::count_maildir_messages(&out);
    if stored != totals.messages {
        anyhow::bail!(
            "{}: {} messages reported written, {stored} on disk",
            s.name,
            totals.messages
        );
    }
    remove_outputs(&[out]);
    let first_request = log.iter().map(|x| x.at).min();
    let since = |t: Option<Instant>| {
        first_request
            .zip(t)
            .map(|(a, b)| b.saturating_duration_since(a).as_secs_f64())
    };
    let listing: Vec<_> = log
        .iter()
        .filter(|x| x.mailbox.is_none() && is_user_listing(&x.path_and_query))
        .collect();
    let first_fetch = scenario::first_fetch(&log);
    Ok(StartupOutcome {
        name: s.name,
        time_scale: TIME_SCALE,
        mailboxes: s.users,
        parallel_mailboxes: s.parallel_mailboxes,
        generate_seconds,
        first_message_seconds: r.first_message_seconds,
        all_running_seconds: r.all_running_seconds,
        user_requests: listing.len() as u64,
        user_pages: listing.iter().filter(|x| x.status == 200).count() as u64,
        last_user_page_seconds: since(listing.iter().map(|x| x.at).max()),
        first_fetch_seconds: since(first_fetch),
        mailboxes_finished: r.mailboxes_finished,
        messages: totals.messages,
        wall_seconds: r.wall_seconds,
        peak_rss_mib: r.peak_rss_kib as f64 / 1024.0,
        requests: log.len() as u64,
        requests_429: log.iter().filter(|x| x.status == 429).count() as u64,
    })
}
