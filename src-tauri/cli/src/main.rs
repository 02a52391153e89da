//! `m365-migrate`: the headless front end. Each subcommand is a few lines over
//! `migrator-core`; progress is drawn on stderr by [`reporter::CliReporter`].

mod packaging;
mod reporter;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use futures_util::FutureExt;
use indicatif::HumanDuration;
use migrator_core::config::{FileConfig, SourceConfig};
use migrator_core::engine::{
    self, CheckVerdict, Destination, EndpointCheck, Report, ReportFiles, RunControl, RunOptions,
};
use migrator_core::journal::Journal;
use migrator_core::progress::RunSummary;
use migrator_core::secrets::{KeyringStore, Secret, SecretStore};

/// Exit codes: 0 success, 1 finished with failed items, 2 stopped by a fatal error, 3 another
/// run holds the state folder (nothing was done: a scheduler may simply try again later).
const EXIT_ITEMS_FAILED: u8 = 1;
const EXIT_FATAL: u8 = 2;
const EXIT_BUSY: u8 = 3;

#[derive(Parser)]
#[command(
    name = "m365-migrate",
    version,
    about = "Migrate a Microsoft 365 tenant's mail, calendars, contacts and tasks",
    long_about = "Migrate a Microsoft 365 tenant's mail, calendars, contacts and tasks to IceWarp \
                  or any IMAP + CalDAV/CardDAV server, or to a local folder.\n\n\
                  Exit codes: 0 success, 1 finished but some items failed, 2 stopped by an error, \
                  3 another run is using the state folder (nothing was done)."
)]
struct Cli {
    /// No progress output; errors are still printed.
    #[arg(long, short, global = true)]
    quiet: bool,
    /// More log output on stderr (-v info, -vv debug, -vvv trace). RUST_LOG overrides it.
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Migrate a built-in simulated tenant into a local folder: the whole flow, no tenant needed.
    ///
    /// Starts a Microsoft Graph simulator on 127.0.0.1, signs in to it with the client
    /// credentials flow, and writes one Maildir++ tree per user under --out (the journal goes
    /// to --out/.m365-migrator). Running it again into the same folder writes nothing twice.
    Demo {
        /// Folder to write the users' Maildir trees into (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Number of simulated users.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        users: u32,
        /// Messages per simulated user.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
        messages: u32,
    },
    /// Migrate the tenant described by a configuration file.
    ///
    /// The client secret is read from the M365_CLIENT_SECRET environment variable, an IMAP
    /// master user's password from DEST_ADMIN_PASSWORD; when unset, from the OS keychain
    /// where the desktop app stores them. The journal
    /// lives in [run] state_dir (default: m365-migrator-state beside the configuration file);
    /// running again resumes a stopped run and writes nothing twice. One run at a time per
    /// state folder: while another holds it, `run` exits 3 at once naming the holder. Before
    /// any data moves, every destination endpoint is checked (as `check` does); a blocking
    /// problem stops the run at once with exit code 2.
    Run {
        /// The TOML configuration file (see the README's configuration reference).
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        /// The cut-over pass: also do the cut-over actions the configuration asks for
        /// (IceWarp's `expire_passwords`). Later runs then need the users' new passwords.
        #[arg(long = "final")]
        final_pass: bool,
    },
    /// Check that a run could start: sign-in, permissions, destination and state folder.
    ///
    /// Signs in, lists each application permission as granted or missing (from the token and
    /// one probe call per workload), checks every endpoint of the destination (IMAP: connect,
    /// certificate, login; CalDAV/CardDAV: an authenticated PROPFIND; IceWarp: also the admin
    /// API and the settings that would slow a run), each printed as ok, warning or BLOCKING
    /// with advice, and that the state folder is writable. Exits 2 when anything would stop a
    /// run. Moves no data. Last, where the MX records of each domain whose mail moves point
    /// (for the cut-over; they do not change the exit code).
    Check {
        /// The TOML configuration file.
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        /// Ask this DNS server (`IP:PORT`, repeatable) for the MX records instead of the
        /// system's resolver, e.g. a public one when the local DNS answers differently.
        #[arg(long, value_name = "IP:PORT")]
        dns_server: Vec<std::net::SocketAddr>,
    },
    /// Compare the source with the destination: is everything there?
    ///
    /// Lists each user's mail folders again from Microsoft 365 (ids only) and checks every
    /// message against the journal and the destination: present, missing (migrated but since
    /// deleted at the destination), or not migrated. Calendar, contact and task items the
    /// journal records are checked at the destination too. Reads only. Exits 0 when everything
    /// is there, 1 when something is missing, 2 on an error.
    Verify {
        /// The TOML configuration file.
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        /// Print the result as JSON instead of a summary.
        #[arg(long)]
        json: bool,
    },
    /// Show what a run would migrate and how long Microsoft's limits let it take.
    ///
    /// Signs in, lists the selected users ([users] include/exclude and batch) and, for the
    /// selected workloads, each mailbox's mail folders, calendars, contact folders and task
    /// lists with their item counts inside the date limits (listing requests only; no message
    /// or item is read, nothing is written), and estimates the run from the per-mailbox limits
    /// (4 requests in flight, 10,000 per 10 minutes) and [run] parallel_mailboxes. The estimate
    /// is the floor Microsoft's limits allow.
    Plan {
        /// The TOML configuration file.
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        /// Print the plan as JSON (for scripts) instead of a table.
        #[arg(long)]
        json: bool,
        /// Count every mailbox again. Without it, a mailbox counted by an earlier plan (for
        /// the same workloads and date limits, kept in the state folder) is not read again.
        #[arg(long)]
        refresh: bool,
    },
    /// Work as one of many workers sharing the PostgreSQL journal ([journal] url): queue the
    /// tenant's mailboxes (once, whoever comes first), then take one mailbox at a time
    /// (largest first; [run] parallel_mailboxes at once) under a lease, migrate it, and
    /// exit when no mailbox is left. Run it on as many machines as needed.
    Worker {
        /// The TOML configuration file; its [journal] url must be set.
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
    /// Show the workers sharing the PostgreSQL journal (host, mailboxes held, rate, last
    /// heartbeat) and the tenant's progress, from the database.
    Status {
        /// The TOML configuration file; its [journal] url must be set.
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
    /// Write the run report from the journal: JSON, CSV and a self-contained HTML page.
    ///
    /// Reads only the journal in the state folder (no sign-in, no network), so it works at any
    /// time, also while or after a run was stopped. Writes report.json, report.html, users.csv,
    /// folders.csv and failures.csv. `run` writes the same report when it finishes.
    Report {
        /// The TOML configuration file (its [run] state_dir locates the journal).
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        /// Folder to write the report into [default: <state folder>/report].
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Print the shell completion script for bash, zsh or fish (the packages install them).
    #[command(hide = true)]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the man pages (roff) into a folder (the packages install them).
    #[command(hide = true)]
    Man {
        /// Folder to write m365-migrate.1 and one page per command into (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

/// Exit code of `check` when something would stop a run.
const EXIT_CHECK_FAILED: u8 = 2;

/// Environment variable holding the client secret for headless runs.
const SECRET_ENV: &str = "M365_CLIENT_SECRET";
/// Environment variable holding the destination administrator's password.
const ADMIN_PASSWORD_ENV: &str = "DEST_ADMIN_PASSWORD";

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    migrator_core::open_files::raise_soft_limit();
    // Generated from the clap definition: no runtime, no configuration.
    let generated = match &cli.command {
        Command::Completions { shell } => Some(Ok(packaging::completions(*shell))),
        Command::Man { out } => Some(packaging::write_man_pages(out).map(|()| Vec::new())),
        _ => None,
    };
    if let Some(text) = generated {
        let written = text.and_then(|t| std::io::Write::write_all(&mut std::io::stdout(), &t));
        return match written {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: cannot write the generated files: {e}");
                ExitCode::from(EXIT_FATAL)
            }
        };
    }
    // Commands whose answer is yes or no: a "no" exits with its own code.
    let verdict = match &cli.command {
        Command::Check { config, dns_server } => {
            let (config, dns) = (config.clone(), dns_server.clone());
            Some((
                async move { check(&config, &dns).await }.boxed(),
                EXIT_CHECK_FAILED,
            ))
        }
        Command::Verify { config, json } => {
            let (config, json) = (config.clone(), *json);
            Some((
                async move { verify(&config, json).await }.boxed(),
                EXIT_ITEMS_FAILED,
            ))
        }
        _ => None,
    };
    if let Some((answer, no)) = verdict {
        return match tokio::runtime::Runtime::new().map(|rt| rt.block_on(answer)) {
            Ok(Ok(true)) => ExitCode::SUCCESS,
            Ok(Ok(false)) => ExitCode::from(no),
            Ok(Err(e)) => {
                eprintln!("error: {e:#}");
                ExitCode::from(EXIT_FATAL)
            }
            Err(e) => {
                eprintln!("error: cannot start the async runtime: {e}");
                ExitCode::from(EXIT_FATAL)
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FATAL);
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(summary) if summary.totals.failed > 0 => ExitCode::from(EXIT_ITEMS_FAILED),
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            let busy = e
                .downcast_ref::<engine::EngineError>()
                .is_some_and(|e| e.code() == "busy");
            ExitCode::from(if busy { EXIT_BUSY } else { EXIT_FATAL })
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<RunSummary> {
    match cli.command {
        Command::Demo {
            out,
            users,
            messages,
        } => demo(out, users, messages, cli.quiet).await,
        Command::Run { config, final_pass } => run_config(config, final_pass, cli.quiet).await,
        Command::Check { .. }
        | Command::Verify { .. }
        | Command::Completions { .. }
        | Command::Man { .. } => {
            unreachable!("check, verify, completions and man are dispatched in main")
        }
        Command::Plan {
            config,
            json,
            refresh,
        } => {
            print_plan(&config, json, refresh).await?;
            Ok(RunSummary::default())
        }
        Command::Report { config, out } => {
            write_report(&config, out)?;
            Ok(RunSummary::default())
        }
        Command::Worker { config } => work(&config, cli.quiet).await,
        Command::Status { config } => {
            print_status(&config)?;
            Ok(RunSummary::default())
        }
    }
}

/// `worker`: migrates leased mailboxes until none is left; the summary counts a mailbox that
/// failed as a failed item.
async fn work(path: &Path, quiet: bool) -> anyhow::Result<RunSummary> {
    let (config, secret, destination, options) = load(path)?;
    if options.journal.is_none() {
        anyhow::bail!(
            "`worker` needs the shared PostgreSQL journal: set [journal] url in {}",
            path.display()
        );
    }
    let (worker, host) = engine::default_worker_name();
    let reporter = Arc::new(reporter::CliReporter::new(quiet));
    let control = RunControl::new();
    stop_on_ctrl_c(control.clone());
    let started = std::time::Instant::now();
    let done = engine::work(
        &config.source_config(),
        &secret,
        &destination,
        reporter,
        control.clone(),
        engine::WorkerOptions {
            worker: worker.clone(),
            host,
            lease: config.journal.lease(),
            run: options,
        },
    )
    .await?;
    for mailbox in &done.lost {
        eprintln!("lease lost: {mailbox}: it expired while this worker was cut off, and another worker took the mailbox over; this worker wrote nothing more for it");
    }
    for (mailbox, reason) in &done.failed {
        eprintln!("failed: {mailbox}: {reason}");
    }
    let mut totals = done.totals.clone();
    totals.failed += done.failed.len() as u64;
    eprintln!(
        "worker {worker}: {} mailboxes finished, {} messages, {} lost leases, {} failed mailboxes",
        done.mailboxes,
        totals.messages,
        done.lost.len(),
        done.failed.len()
    );
    Ok(RunSummary {
        users: done.mailboxes,
        totals,
        seconds: started.elapsed().as_secs_f64(),
        cancelled: control.is_cancelled(),
    })
}

/// `status`: the workers and the queue, from the PostgreSQL journal.
fn print_status(path: &Path) -> anyhow::Result<()> {
    let config = FileConfig::load(path)?;
    let mut options = config.run_options();
    options.journal = config.journal.postgres()?;
    if options.journal.is_none() {
        anyhow::bail!(
            "`status` reads the shared PostgreSQL journal: set [journal] url in {}",
            path.display()
        );
    }
    let journal = open_journal(path, &options)?;
    let lease = config.journal.lease().as_secs();
    let workers = journal.workers()?;
    println!("{} workers", workers.len());
    for w in &workers {
        let alive = if w.seconds_since_heartbeat <= lease {
            "live"
        } else {
            "gone"
        };
        println!(
            "  {} on {}: {alive}, last heartbeat {} ago; {} mailboxes done, {} messages ({:.1}/s); holding: {}",
            w.worker,
            w.host,
            HumanDuration(Duration::from_secs(w.seconds_since_heartbeat)),
            w.mailboxes_done,
            w.messages,
            w.messages_per_second,
            if w.holding.is_empty() {
                "none".to_string()
            } else {
                w.holding.join(", ")
            }
        );
    }
    let q = journal.queue_progress()?;
    println!(
        "mailboxes: {} done, {} being migrated, {} waiting, {} failed (of {})",
        q.done,
        q.leased,
        q.waiting,
        q.failed,
        q.done + q.leased + q.waiting + q.failed
    );
    Ok(())
}

/// Loads the configuration, the secrets, the destination and the default state folder.
fn load(path: &Path) -> anyhow::Result<(FileConfig, Secret, Destination, RunOptions)> {
    let (config, secret, options) = load_source(path)?;
    let admin_entry = config.admin_password_entry();
    let admin_password = env_or_keychain(ADMIN_PASSWORD_ENV, admin_entry.as_deref());
    let destination = Destination::from_config(&config.destination(), admin_password)?;
    Ok((config, secret, destination, options))
}

/// Loads what reading the source needs: the configuration, the client secret and the options.
fn load_source(path: &Path) -> anyhow::Result<(FileConfig, Secret, RunOptions)> {
    let config = FileConfig::load(path)?;
    let client_entry = config.source_config().client_secret_entry();
    let secret = env_or_keychain(SECRET_ENV, Some(&client_entry)).ok_or_else(|| {
        anyhow::anyhow!(
            "the client secret is not set: export {SECRET_ENV} or store it with the desktop app"
        )
    })?;
    let mut options = config.run_options();
    options.state_dir = Some(state_dir(path, &options));
    options.journal = config.journal.postgres()?.map(|mut journal| {
        // A PostgreSQL journal that goes away mid-run is waited for like a destination.
        journal.outage_wait = config.run.outage_wait;
        journal
    });
    Ok((config, secret, options))
}

/// The journal's folder: `[run] state_dir`, else `m365-migrator-state` beside the file.
fn state_dir(config_path: &Path, options: &RunOptions) -> PathBuf {
    options.state_dir.clone().unwrap_or_else(|| {
        let base = config_path.parent().filter(|p| !p.as_os_str().is_empty());
        base.unwrap_or(Path::new(".")).join("m365-migrator-state")
    })
}

/// `verify`: prints the differences; `Ok(true)` when there are none.
async fn verify(path: &Path, json: bool) -> anyhow::Result<bool> {
    let (config, secret, destination, options) = load(path)?;
    let journal = open_journal(path, &options)?;
    let result = engine::verify(
        &config.source_config(),
        &secret,
        &destination,
        &journal,
        &options,
    )
    .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&result)?);
        return Ok(result.is_clean());
    }
    let (mut present, mut missing, mut not_migrated) = (0, 0, 0);
    for user in &result.users {
        if let Some(problem) = &user.problem {
            println!("{}: cannot be verified: {problem}", user.user);
        }
        if let Some(reason) = &user.not_migrated {
            println!("{}: not migrated: {reason}", user.user);
        }
        for f in &user.folders {
            present += f.present;
            missing += f.missing.len();
            not_migrated += f.not_migrated.len();
            if !f.missing.is_empty() || !f.not_migrated.is_empty() {
                println!(
                    "{} {} {:?}: {} of {} present, {} missing at the destination, {} not migrated",
                    user.user,
                    f.kind,
                    f.folder,
                    f.present,
                    f.source,
                    f.missing.len(),
                    f.not_migrated.len()
                );
                for id in f.missing.iter().take(20) {
                    println!("    missing: {id}");
                }
            }
        }
    }
    println!(
        "{} users: {present} items present, {missing} missing at the destination, {not_migrated} not migrated",
        result.users.len()
    );
    Ok(result.is_clean())
}

/// The journal of a configuration's runs; an error when nothing was migrated yet.
fn open_journal(config_path: &Path, options: &RunOptions) -> anyhow::Result<Journal> {
    let dir = state_dir(config_path, options);
    if options.journal.is_some() {
        return Ok(options.open_journal(&dir)?);
    }
    if !dir.join(Journal::FILE_NAME).is_file() {
        anyhow::bail!(
            "no journal in {}: nothing has been migrated with this configuration yet",
            dir.display()
        );
    }
    Ok(Journal::open(&dir)?)
}

/// `plan`: the table (or JSON) of what a run would do.
async fn print_plan(path: &Path, json: bool, refresh: bool) -> anyhow::Result<()> {
    let (config, secret, options) = load_source(path)?;
    let how = engine::PlanOptions {
        refresh,
        destination: engine::estimate::DestinationKind::of(&config.destination()),
        ..engine::PlanOptions::default()
    };
    let cancel = how.cancel.clone();
    // Ctrl-C stops the counting at once; what was counted is kept for the next plan.
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            cancel.cancel();
        }
    });
    let mut plan = engine::plan_with(&config.source_config(), &secret, &options, &how).await?;
    config.spec.decide(&mut plan);
    if json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
        return Ok(());
    }
    let width = plan
        .users
        .iter()
        .map(|u| u.address.chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    println!(
        "{:width$}  {:>7}  {:>9}  {:>7}  {:>8}  {:>6}  {:>10}  {:>10}",
        "user", "folders", "messages", "events", "contacts", "tasks", "left out", "estimate"
    );
    for u in &plan.users {
        println!(
            "{:width$}  {:>7}  {:>9}  {:>7}  {:>8}  {:>6}  {:>10}  {:>10}{}",
            u.address,
            u.folders,
            u.items,
            u.events,
            u.contacts,
            u.tasks,
            u.out_of_range,
            HumanDuration(Duration::from_secs_f64(u.estimated_seconds)),
            if u.enabled {
                ""
            } else {
                "  (account disabled)"
            }
        );
        if let Some(problem) = &u.problem {
            println!("{:width$}  cannot be read: {problem}", "");
        }
        if let Some(reason) = &u.not_migrated {
            println!("{:width$}  {reason}", "");
        }
        if u.online_archive == Some(true) {
            println!("{:width$}  {}", "", engine::ONLINE_ARCHIVE);
        }
        if matches!(
            u.kind,
            engine::MailboxKind::Shared
                | engine::MailboxKind::Room
                | engine::MailboxKind::Equipment
        ) {
            println!("{:width$}  {} mailbox", "", u.kind.label());
        }
        if let engine::PlanAction::CreateResource { resource } = &u.action {
            // IceWarp documents no login as a resource account: the run reports it if refused.
            println!(
                "{:width$}  create resource ({}); if IceWarp refuses a login as it, its data \
                 stays in Microsoft 365 (resources_as = \"user\" makes it an ordinary account)",
                "",
                resource.label()
            );
        }
    }
    println!(
        "\n{} users, {} folders, {} messages, {} events, {} contacts, {} tasks, {} left out by the \
         date limits; about {} Graph requests",
        plan.users.len(),
        plan.folders,
        plan.items,
        plan.events,
        plan.contacts,
        plan.tasks,
        plan.out_of_range,
        plan.requests
    );
    println!(
        "not migrated: {} guests, {} users without an Exchange mailbox, {} online archives \
         (export them separately)",
        plan.guests, plan.without_mailbox, plan.online_archives
    );
    println!("domains: {}", plan.domains.join(", "));
    let oldest = plan.users.iter().filter_map(|u| u.counted_at).min();
    if let (1.., Some(oldest)) = (plan.kept_counts, oldest) {
        let now = migrator_core::progress::unix_ms() / 1000;
        println!(
            "{} mailboxes as counted by an earlier plan (the oldest {} ago); --refresh counts again",
            plan.kept_counts,
            HumanDuration(Duration::from_secs(now.saturating_sub(oldest)))
        );
    }
    println!(
        "estimated duration: {} with {} mailboxes in parallel (bound by {}: the mailboxes at \
         Microsoft's per-mailbox limits and {} ms per request {:.0} s, the app's limit across \
         the tenant {:.0} s, this machine's CPU {:.0} s, the destination {:.0} s)",
        HumanDuration(Duration::from_secs_f64(plan.estimated_seconds)),
        plan.parallel_mailboxes,
        plan.estimate_binds,
        plan.assumed_latency_ms,
        plan.estimate_terms.mailboxes,
        plan.estimate_terms.app_limit,
        plan.estimate_terms.cpu,
        plan.estimate_terms.destination,
    );
    if plan.estimate_terms.destination_cpu_counted {
        println!(
            "the destination runs on this machine: its CPU is counted ({:.0} s of the CPU's {:.0} s)",
            plan.estimate_terms.destination_cpu, plan.estimate_terms.cpu,
        );
    }
    Ok(())
}

/// `report`: the journal's report into `out` (default `<state folder>/report`).
fn write_report(config_path: &Path, out: Option<PathBuf>) -> anyhow::Result<()> {
    let config = FileConfig::load(config_path)?;
    let mut options = config.run_options();
    options.journal = config.journal.postgres()?;
    let dir = state_dir(config_path, &options);
    let journal = open_journal(config_path, &options)?;
    let files = save_report(&journal, &out.unwrap_or_else(|| dir.join("report")))?;
    println!("report written: {}", files.html.display());
    Ok(())
}

fn save_report(journal: &Journal, dir: &Path) -> anyhow::Result<ReportFiles> {
    Ok(Report::from_journal(journal)?.write(dir)?)
}

/// A secret from the environment variable `var`, else from the OS keychain entry the desktop
/// app stores it under (the keychain may be absent on a server: then only the variable counts).
fn env_or_keychain(var: &str, entry: Option<&str>) -> Option<Secret> {
    if let Some(value) = std::env::var(var).ok().filter(|s| !s.trim().is_empty()) {
        return Some(Secret::new(value));
    }
    let entry = entry?;
    let keychain = KeyringStore::platform().ok()?;
    match keychain.get(entry) {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!("cannot read the keychain: {e}");
            None
        }
    }
}

/// One line per destination check: verdict, name, advice.
fn print_checks(checks: &[EndpointCheck]) {
    for c in checks {
        let mark = match c.verdict {
            CheckVerdict::Ok => "ok",
            CheckVerdict::Warning => "warning",
            CheckVerdict::Blocking => "BLOCKING",
        };
        println!("  {mark:8} {}: {}", c.name, c.advice);
    }
}

/// Prints what would stop a run; `Ok(false)` when something would.
async fn check(path: &Path, dns_servers: &[std::net::SocketAddr]) -> anyhow::Result<bool> {
    let (config, secret, destination, options) = load(path)?;
    let report =
        engine::preflight(&config.source_config(), &secret, &destination, &options).await?;
    println!("signed in to tenant {}", config.spec.source.tenant_id);
    for p in &report.permissions {
        if let Some(why) = &p.not_used {
            println!("  {:8} {:22} ({why})", "n/a", p.name);
            continue;
        }
        let mark = if p.granted() {
            "granted"
        } else if p.required {
            "MISSING"
        } else {
            "missing"
        };
        let need = if p.required { "required" } else { "optional" };
        println!("  {mark:8} {:22} ({need})", p.name);
        if let (false, Some(detail)) = (p.granted(), &p.detail) {
            println!("           {detail}");
        }
    }
    println!("destination:");
    print_checks(&report.checks);
    // The destination's blocking checks are printed above; the rest (permissions, state).
    let destination_problems: Vec<&String> = report
        .checks
        .iter()
        .filter(|c| c.blocks())
        .map(|c| &c.advice)
        .collect();
    for problem in report
        .problems
        .iter()
        .filter(|p| !destination_problems.contains(p))
    {
        println!("problem: {problem}");
    }
    let ok = report.problems.is_empty();
    println!(
        "{}",
        if ok {
            "ready to run"
        } else {
            "not ready: fix the problems above"
        }
    );
    print_mx(&config, &secret, &options, dns_servers).await;
    Ok(ok)
}

/// Where the MX records of each domain whose mail moves point (the app's cut-over checklist
/// does the same lookups), or why they could not be read.
async fn print_mx(
    config: &FileConfig,
    secret: &Secret,
    options: &RunOptions,
    dns_servers: &[std::net::SocketAddr],
) {
    use migrator_core::cutover::{mx_of, MxLookup, MX_LOOKUP_BUDGET};
    let mapped: Vec<String> = config.spec.rules.domain_map.keys().cloned().collect();
    let domains =
        match engine::mail_domains(&config.source_config(), secret, options, &mapped).await {
            Ok(domains) => domains,
            Err(e) => {
                println!("MX records: cannot list the mailboxes' domains: {e}");
                return;
            }
        };
    let lookup = if dns_servers.is_empty() {
        MxLookup::system(MX_LOOKUP_BUDGET)
    } else {
        MxLookup::with_servers(dns_servers, MX_LOOKUP_BUDGET)
    };
    println!("MX records (where each domain's mail is delivered now):");
    for d in mx_of(lookup, &domains).await {
        match d.error {
            Some(why) => println!("  {:24} {why}", d.domain),
            None => println!("  {:24} {}", d.domain, d.mx.join(", ")),
        }
    }
}

async fn run_config(path: PathBuf, final_pass: bool, quiet: bool) -> anyhow::Result<RunSummary> {
    let (config, secret, destination, mut options) = load(&path)?;
    options.final_pass = final_pass;
    // Before any data moves: a wrong port or password stops here in seconds, not at each
    // mailbox after the reconnect policy's wait.
    let checks = engine::check_destination(&destination, None).await;
    let blocking: Vec<&str> = checks
        .iter()
        .filter(|c| c.blocks())
        .map(|c| c.advice.as_str())
        .collect();
    if !blocking.is_empty() {
        anyhow::bail!(
            "the destination is not ready, nothing was migrated: {} (`m365-migrate check` lists every check)",
            blocking.join("; ")
        );
    }
    if !quiet {
        for c in checks.iter().filter(|c| c.verdict == CheckVerdict::Warning) {
            eprintln!("warning: {}: {}", c.name, c.advice);
        }
    }
    migrate(
        &config.source_config(),
        &secret,
        &destination,
        options,
        quiet,
    )
    .await
}

/// Runs the engine with the CLI's reporter and Ctrl-C handling, then prints the summary.
async fn migrate(
    source: &SourceConfig,
    secret: &Secret,
    destination: &Destination,
    options: RunOptions,
    quiet: bool,
) -> anyhow::Result<RunSummary> {
    let reporter = Arc::new(reporter::CliReporter::new(quiet));
    let control = RunControl::new();
    stop_on_ctrl_c(control.clone());
    let state_dir = options.state_dir.clone();
    let report_journal = options.clone();
    let summary = engine::run(
        source,
        secret,
        destination,
        reporter.clone(),
        control,
        options,
    )
    .await?;
    let target = match destination {
        Destination::Folder(path) => path.display().to_string(),
        Destination::Imap { settings, .. } => format!("imap://{}:{}", settings.host, settings.port),
        Destination::IceWarp(d) => format!("IceWarp {}", d.imap.host),
    };
    reporter.finish(&summary, &target);
    if let Some(dir) = state_dir {
        let written = report_journal
            .open_journal(&dir)
            .map_err(anyhow::Error::from)
            .and_then(|journal| save_report(&journal, &dir.join("report")));
        match written {
            Ok(files) if !quiet => eprintln!("report: {}", files.html.display()),
            Ok(_) => {}
            Err(e) => eprintln!("warning: the run finished but its report was not written: {e:#}"),
        }
    }
    Ok(summary)
}

async fn demo(out: PathBuf, users: u32, messages: u32, quiet: bool) -> anyhow::Result<RunSummary> {
    let mut config = migrator_sim::SimConfig::demo();
    config.tenant.users = users as usize;
    config.tenant.messages_per_user = messages as usize;
    let sim = migrator_sim::SimServer::start(config).await?;
    let source = SourceConfig::on_loopback(sim.tenant_id(), sim.client_id(), &sim.url());
    let secret = Secret::new(sim.client_secret());
    let options = RunOptions {
        state_dir: Some(out.join(".m365-migrator")),
        ..RunOptions::default()
    };
    let destination = Destination::Folder(out);
    let result = migrate(&source, &secret, &destination, options, quiet).await;
    sim.shutdown().await;
    result
}

/// Ctrl-C stops at the next item boundary; a later run resumes.
fn stop_on_ctrl_c(control: RunControl) {
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("stopping after the messages in flight; run again to resume");
            control.cancel();
        }
    });
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cut-over actions (IceWarp's `expire_passwords`) run only on an explicit final pass.
    #[test]
    fn run_is_an_ordinary_pass_unless_final_is_given() {
        let pass = |args: &[&str]| match Cli::try_parse_from(args).map(|c| c.command) {
            Ok(Command::Run { final_pass, .. }) => final_pass,
            _ => panic!("{args:?} does not parse as run"),
        };
        assert!(!pass(&["m365-migrate", "run", "--config", "m.toml"]));
        assert!(pass(&[
            "m365-migrate",
            "run",
            "--config",
            "m.toml",
            "--final"
        ]));
    }
}
