//! `m365-bench`: how close the migrator runs to Exchange Online's limits, how fast its
//! destination leg is next to mbsync, and how much memory and CPU it needs (issue 9).
//!
//! Each scenario starts the Graph simulator in this process with a generated tenant, then
//! runs the real engine (`migrator_core::engine::run`) in a child process of this same binary
//! (`m365-bench worker`), so the peak RSS and CPU measured are the migrator's alone and no two
//! scenarios share a high-water mark. The simulator's request log gives the per-mailbox
//! request rates and the 429s. Nothing is timed against a threshold here: the smoke run
//! (`--quick`, in `make test`) fails only on errors or lost messages.

#[cfg(unix)]
mod coordination;
#[cfg(unix)]
mod destleg;
#[cfg(unix)]
mod dovecot;
#[cfg(unix)]
mod postgres;
#[cfg(unix)]
mod proc_stats;
#[cfg(unix)]
mod report;
#[cfg(unix)]
mod scenario;
#[cfg(unix)]
mod tenant;
#[cfg(unix)]
mod worker;

#[cfg(unix)]
use std::path::PathBuf;
#[cfg(unix)]
use std::process::ExitCode;

#[cfg(unix)]
use clap::{Parser, Subcommand};

#[cfg(unix)]
#[derive(Parser)]
#[command(
    name = "m365-bench",
    about = "Benchmarks of M365 Migrator (see BENCHMARKS.md)"
)]
struct Cli {
    /// Scenarios to run, comma-separated: small, medium, wide, ceiling, mailbox-50k, destleg,
    /// tenant, tenant-memory, tenant-startup, coordination, coordination-own-cpu (PostgreSQL on a CPU of its own), coordination-ceiling (default: all but the tenant
    /// and coordination ones, whose results go to tenant.json and coordination.json and are
    /// written into BENCHMARKS.md by hand).
    #[arg(long, value_delimiter = ',')]
    scenario: Vec<String>,
    /// The smoke run: a tiny tenant into a local folder and into Dovecot (seconds).
    #[arg(long)]
    quick: bool,
    /// Runs the scenarios at reduced sizes (see `scenario::reduced`), said so in the results.
    #[arg(long)]
    reduced: bool,
    /// A remark printed with the results (e.g. that other work shared the machine).
    #[arg(long)]
    note: Option<String>,
    /// Folder for results.json and throughput.svg.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Markdown file whose generated section (between the bench markers) is rewritten.
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
    /// The tenant scenarios with this many mailboxes at once instead of their own (to see
    /// how the finish time depends on it on this machine).
    #[arg(long, value_name = "N")]
    parallel: Option<usize>,
    /// Starts a tenant scenario at once even if an earlier one's files were deleted less than
    /// 361 s ago (they then slow its file creation on a journal-less ext4: `tenant::REUSE_WINDOW`).
    #[arg(long)]
    no_settle: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[cfg(unix)]
#[derive(Subcommand)]
enum Command {
    /// Internal: run one migration job from the environment and print its measurements.
    #[command(hide = true)]
    Worker,
}

#[cfg(unix)]
fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Worker) = cli.command {
        return match worker::main() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("m365-bench worker: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("m365-bench: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(bench(cli)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("m365-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the chosen scenarios; `Ok(false)` when any of them failed.
#[cfg(unix)]
async fn bench(cli: Cli) -> anyhow::Result<bool> {
    let names: Vec<String> = if cli.quick {
        vec!["quick".into(), "destleg-quick".into()]
    } else if cli.scenario.is_empty() {
        [
            "small",
            "medium",
            "wide",
            "ceiling",
            "mailbox-50k",
            "destleg",
        ]
        .map(String::from)
        .to_vec()
    } else {
        cli.scenario.clone()
    };
    let cpus = proc_stats::machine_cpus();
    let estimate = |reduced: bool| -> Vec<(String, f64)> {
        names
            .iter()
            .filter_map(|name| {
                let s = match name.as_str() {
                    "destleg" | "destleg-quick" => destleg::scenario(name == "destleg-quick"),
                    other if other.starts_with("tenant") || other.starts_with("coordination") => {
                        return None
                    }
                    other => scenario::find(other)?,
                };
                let s = if reduced { scenario::reduced(s) } else { s };
                let columns = if name.starts_with("destleg") {
                    vec![scenario::INTO_DOVECOT]
                } else {
                    vec![scenario::INTO_DOVECOT, scenario::INTO_FOLDER]
                };
                let secs = columns
                    .iter()
                    .map(|into| scenario::estimated_seconds(&s, into, cpus))
                    .sum();
                Some((name.clone(), secs))
            })
            .collect()
    };
    let planned = estimate(cli.reduced);
    eprintln!("{}", estimate_line(&planned, cpus));
    let mut results = report::Report::new();
    results.estimated_full_seconds = estimate(false);
    results.reduced = cli.reduced;
    results.note = cli.note.clone();
    let mut errors = Vec::new();
    let mut tenants = Vec::new();
    let mut startups = Vec::new();
    let mut coordinations = Vec::new();
    let started = std::time::Instant::now();
    for name in &names {
        eprintln!("m365-bench: scenario {name}");
        let work = scenario::work_dir(name)?;
        let outcome = match name.as_str() {
            "destleg" | "destleg-quick" => destleg::run(name == "destleg-quick", work.path())
                .await
                .map(|d| results.destleg.push(d)),
            other if other.starts_with("coordination") => {
                coordination::run(other, work.path()).await.map(|c| {
                    eprintln!("  {}", c.line());
                    coordinations.push(c);
                })
            }
            other if other.starts_with("tenant") => match tenant::find(other) {
                Some(s) if other == "tenant-startup" => {
                    let s = scenario::Scenario {
                        parallel_mailboxes: cli.parallel.unwrap_or(s.parallel_mailboxes),
                        ..s
                    };
                    tenant::startup(&s, work.path(), !cli.no_settle)
                        .await
                        .map(|t| {
                            eprintln!("  {}", t.line());
                            startups.push(t);
                        })
                }
                Some(s) => {
                    let s = scenario::Scenario {
                        parallel_mailboxes: cli.parallel.unwrap_or(s.parallel_mailboxes),
                        ..s
                    };
                    let mut ran = Ok(());
                    for into in tenant::destinations(other) {
                        let wait = !cli.no_settle && other != "tenant-quick";
                        match tenant::run(&s, into, work.path(), wait).await {
                            Ok((o, t)) => {
                                eprintln!("  {}", t.line());
                                results.scenarios.push(o);
                                tenants.push(t);
                            }
                            Err(e) => {
                                ran = Err(e);
                                break;
                            }
                        }
                    }
                    ran
                }
                None => Err(anyhow::anyhow!("no scenario named {other}")),
            },
            other => match scenario::find(other) {
                Some(s) => {
                    let s = if cli.reduced { scenario::reduced(s) } else { s };
                    scenario::run(&s, work.path())
                        .await
                        .map(|o| results.scenarios.extend(o))
                }
                None => Err(anyhow::anyhow!("no scenario named {other}")),
            },
        };
        if let Err(e) = outcome {
            eprintln!("m365-bench: scenario {name} failed: {e:#}");
            errors.push(format!("{name}: {e:#}"));
        }
        if let Some(line) = results.last_line() {
            eprintln!("  {line}");
        }
    }
    results.errors = errors.clone();
    results.total_wall_seconds = started.elapsed().as_secs_f64();
    println!("{}", results.table());
    for t in &tenants {
        println!("{}", t.line());
    }
    for t in &startups {
        println!("{}", t.line());
    }
    for c in &coordinations {
        println!("{}", c.line());
    }
    if let Some(dir) = &cli.out {
        results.write_files(dir)?;
        if !tenants.is_empty() {
            std::fs::write(
                dir.join("tenant.json"),
                serde_json::to_string_pretty(&tenants)?,
            )?;
            std::fs::write(dir.join("tenant.svg"), results.tenant_svg())?;
        }
        if !startups.is_empty() {
            std::fs::write(
                dir.join("tenant-startup.json"),
                serde_json::to_string_pretty(&startups)?,
            )?;
        }
        if !coordinations.is_empty() {
            std::fs::write(
                dir.join("coordination.json"),
                serde_json::to_string_pretty(&coordinations)?,
            )?;
        }
    }
    if let Some(md) = &cli.markdown {
        results.write_markdown(md)?;
    }
    for e in &errors {
        eprintln!("m365-bench: FAILED {e}");
    }
    Ok(errors.is_empty())
}

/// The line announcing how long the selected scenarios are estimated to take (`planned`: each
/// estimated scenario and its seconds). Tenant and coordination scenarios have no estimate
/// beforehand (their reports give a lower bound): with only those selected, the line says so.
#[cfg(unix)]
fn estimate_line(planned: &[(String, f64)], cpus: usize) -> String {
    if planned.is_empty() {
        return "m365-bench: no estimate beforehand for these scenarios (tenant and \
                coordination scenarios report their lower bound after the run)"
            .to_string();
    }
    let total = report::total_seconds(planned);
    format!(
        "m365-bench: estimated {total:.0} s on {cpus} CPUs ({})",
        planned
            .iter()
            .map(|(n, s)| format!("{n} {s:.0} s"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

#[cfg(all(test, unix))]
mod tests {
    use super::estimate_line;

    #[test]
    fn regression_only_tenant_scenarios_printed_estimated_minus_zero() {
        let line = estimate_line(&[], 2);
        assert!(!line.contains("-0"), "{line}");
        assert_eq!(
            line,
            "m365-bench: no estimate beforehand for these scenarios (tenant and coordination \
             scenarios report their lower bound after the run)"
        );
        let planned = [("small".to_string(), 129.4), ("ceiling".to_string(), 125.0)];
        assert_eq!(
            estimate_line(&planned, 2),
            "m365-bench: estimated 254 s on 2 CPUs (small 129 s, ceiling 125 s)"
        );
    }
}

/// The benchmarks read `/proc`, start Dovecot and PostgreSQL and use Unix process groups:
/// they run on Linux only.
#[cfg(not(unix))]
fn main() -> std::process::ExitCode {
    eprintln!("m365-bench runs on Linux only (it reads /proc and starts Dovecot and PostgreSQL)");
    std::process::ExitCode::FAILURE
}
