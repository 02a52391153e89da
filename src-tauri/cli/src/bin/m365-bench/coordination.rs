//! The coordination benchmark (issue 18): what the shared PostgreSQL journal and its leases
//! cost. One scenario runs as `run` on the SQLite journal and as one `m365-migrate worker` on a
//! private PostgreSQL (a fresh database each time: queue filled, mailboxes leased, every
//! journal write fenced), side by side, [`RUNS`] times, alternating; the ratio is the SQLite
//! run's median finish time over the worker's (1.0: no cost; the target is 0.9 or
//! more). Both write into the local folder and are checked the same way (every message once,
//! none failed).

use std::path::Path;

use anyhow::bail;
use serde::Serialize;

use crate::postgres::Postgres;
use crate::scenario::{self, Scenario, INTO_FOLDER};

/// `coordination` with PostgreSQL on a CPU of its own: the server on the last CPU, the
/// benchmark (the simulator and the migrator, in both legs) on the others, as when the
/// database has a machine of its own (README, "Many workers on many machines"). On a shared
/// machine the server's CPU per statement is taken from the migrator's; this leg shows what
/// the coordination costs without that: the round trips, the leases, the fencing.
pub const OWN_CPU: &str = "coordination-own-cpu";

/// Side-by-side runs of each journal.
pub const RUNS: usize = 3;

/// `coordination`: the `tenant-quick` tenant (12 heavy-tailed mailboxes, all at once,
/// Exchange's limits and latency time-scaled 10x); `coordination-ceiling`: the `ceiling`
/// scenario (one mailbox of 2,000 messages held at its request budget).
pub fn find(name: &str) -> Option<Scenario> {
    match name {
        "coordination" | OWN_CPU => crate::tenant::find("tenant-quick"),
        "coordination-ceiling" => scenario::find("ceiling"),
        _ => None,
    }
}

/// What the coordination benchmark measured.
#[derive(Debug, Clone, Serialize)]
pub struct CoordinationOutcome {
    pub name: String,
    /// The scenario both journals ran.
    pub scenario: &'static str,
    pub messages: u64,
    /// Finish times (the migrator's own, from its start to its end), in run order.
    pub sqlite_seconds: Vec<f64>,
    pub postgres_seconds: Vec<f64>,
    pub sqlite_median: f64,
    pub postgres_median: f64,
    /// `sqlite_median / postgres_median`.
    pub ratio: f64,
    /// Peak RSS, MiB (medians).
    pub sqlite_rss_mib: f64,
    pub postgres_rss_mib: f64,
    /// Transactions PostgreSQL committed per run (each statement outside an explicit
    /// transaction counts as one), from `pg_stat_database`.
    pub postgres_commits: Vec<u64>,
    /// CPU seconds per run, medians: the migrator's (the `run` process, the worker process)
    /// and the PostgreSQL server's (postmaster and backends), which shares the machine.
    pub sqlite_migrator_cpu_seconds: f64,
    pub postgres_migrator_cpu_seconds: f64,
    pub postgres_server_cpu_seconds: f64,
    /// Items (messages, events, contacts, tasks) the first SQLite run wrote.
    pub items: u64,
    /// 429s answered by the simulator across all runs, per journal.
    pub sqlite_429: u64,
    pub postgres_429: u64,
}

impl CoordinationOutcome {
    pub fn line(&self) -> String {
        let list = |v: &[f64]| {
            v.iter()
                .map(|s| format!("{s:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "{} ({}): {} messages; run on SQLite {:.2} s ({}), one worker on PostgreSQL {:.2} s \
             ({}): ratio {:.2}; {} items, PostgreSQL commits {:?}; CPU s per run: migrator \
             {:.2} / {:.2}, PostgreSQL server {:.2}; peak RSS {:.0} / {:.0} MiB; 429s {} / {}",
            self.name,
            self.scenario,
            self.messages,
            self.sqlite_median,
            list(&self.sqlite_seconds),
            self.postgres_median,
            list(&self.postgres_seconds),
            self.ratio,
            self.items,
            self.postgres_commits,
            self.sqlite_migrator_cpu_seconds,
            self.postgres_migrator_cpu_seconds,
            self.postgres_server_cpu_seconds,
            self.sqlite_rss_mib,
            self.postgres_rss_mib,
            self.sqlite_429,
            self.postgres_429,
        )
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Runs coordination scenario `name` under `work`.
pub async fn run(name: &str, work: &Path) -> anyhow::Result<CoordinationOutcome> {
    let Some(s) = find(name) else {
        bail!("no scenario named {name}");
    };
    let pinned = if name == OWN_CPU {
        Some(Pinned::split()?)
    } else {
        None
    };
    let server_cpu_list = pinned.as_ref().map(|p| p.server.clone());
    let (mut sqlite, mut postgres, mut commits) = (Vec::new(), Vec::new(), Vec::new());
    let mut server_cpu = Vec::new();
    for i in 0..RUNS {
        eprintln!("  {name}: run {} of {RUNS}, SQLite then PostgreSQL", i + 1);
        sqlite.push(scenario::run_into(&s, INTO_FOLDER, &work.join(format!("sqlite-{i}"))).await?);
        let pg = Postgres::start_on(server_cpu_list.as_deref())?;
        let with_pg = scenario::run_into_with(
            &s,
            INTO_FOLDER,
            &work.join(format!("postgres-{i}")),
            Some(pg.url()),
        )
        .await;
        match with_pg {
            Ok(o) => {
                commits.push(pg.commits()?);
                server_cpu.push(pg.cpu_seconds()?);
                if let Some(statements) = pg.statements()? {
                    eprintln!(
                        "  statements of run {} (calls|ms|rows|text):\n{statements}",
                        i + 1
                    );
                }
                postgres.push(o)
            }
            Err(e) => {
                let log = std::fs::read_to_string(pg.dir().join("postgres.log"));
                bail!("{e:#}\nPostgreSQL's log:\n{}", log.unwrap_or_default());
            }
        }
    }
    let seconds = |v: &[scenario::Outcome]| v.iter().map(|o| o.wall_seconds).collect::<Vec<_>>();
    let rss = |v: &[scenario::Outcome]| median(v.iter().map(|o| o.peak_rss_mib).collect());
    let (sqlite_seconds, postgres_seconds) = (seconds(&sqlite), seconds(&postgres));
    let (sqlite_median, postgres_median) = (
        median(sqlite_seconds.clone()),
        median(postgres_seconds.clone()),
    );
    Ok(CoordinationOutcome {
        name: name.to_string(),
        scenario: s.name,
        messages: sqlite.first().map_or(0, |o| o.messages),
        postgres_commits: commits,
        items: sqlite
            .first()
            .and_then(|o| o.samples.last())
            .map_or(0, |x| x.messages),
        sqlite_seconds,
        postgres_seconds,
        sqlite_median,
        postgres_median,
        ratio: sqlite_median / postgres_median.max(1e-9),
        sqlite_migrator_cpu_seconds: median(sqlite.iter().map(|o| o.cpu_seconds).collect()),
        postgres_migrator_cpu_seconds: median(postgres.iter().map(|o| o.cpu_seconds).collect()),
        postgres_server_cpu_seconds: median(server_cpu),
        sqlite_rss_mib: rss(&sqlite),
        postgres_rss_mib: rss(&postgres),
        sqlite_429: sqlite.iter().map(|o| o.requests_429).sum(),
        postgres_429: postgres.iter().map(|o| o.requests_429).sum(),
    })
}

/// This process (every thread, and so the processes and threads it starts) pinned to all
/// CPUs but the last, which is the PostgreSQL server's, until dropped.
struct Pinned {
    all: String,
    /// The server's CPU, as `taskset -c` takes it.
    server: String,
}

impl Pinned {
    fn split() -> anyhow::Result<Pinned> {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        if cpus < 2 {
            bail!("{OWN_CPU} needs 2 CPUs or more: this machine has {cpus}");
        }
        let pinned = Pinned {
            all: format!("0-{}", cpus - 1),
            server: (cpus - 1).to_string(),
        };
        let rest = if cpus == 2 {
            "0".to_string()
        } else {
            format!("0-{}", cpus - 2)
        };
        taskset(&rest)?;
        Ok(pinned)
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        let _ = taskset(&self.all);
    }
}

/// Sets every thread of this process to `cpus` (`taskset -a -p -c`, util-linux).
fn taskset(cpus: &str) -> anyhow::Result<()> {
    let status = std::process::Command::new("taskset")
        .args(["-a", "-p", "-c", cpus, &std::process::id().to_string()])
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(|e| {
            anyhow::anyhow!("{OWN_CPU} needs taskset (apt-get install util-linux): {e}")
        })?;
    if !status.success() {
        bail!("taskset -a -p -c {cpus} failed: {status}");
    }
    Ok(())
}
