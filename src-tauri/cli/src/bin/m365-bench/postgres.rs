//! A throwaway PostgreSQL for the coordination benchmark, after the test harness in
//! src-tauri/core/tests/support/postgres.rs: Debian's `initdb` into a temp dir (no system
//! cluster or configuration is touched), `trust` authentication for one superuser, listening
//! on a free 127.0.0.1 port with no Unix socket. Stopped (immediate shutdown) when dropped. As
//! root, the server runs as the `postgres` account, because PostgreSQL refuses root.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

const USER: &str = "bench";

/// When set (to anything), the server loads `pg_stat_statements` and the coordination
/// benchmark prints each run's statements by total time ([`Postgres::statements`]). Off by
/// default: the extension's own bookkeeping costs CPU per statement.
pub const STATEMENTS_ENV: &str = "M365_BENCH_PG_STATEMENTS";

/// Server settings for experiments, `name=value` separated by spaces (each passed as `-c`),
/// e.g. `synchronous_commit=off`; none by default.
pub const SETTINGS_ENV: &str = "M365_BENCH_PG_SETTINGS";

pub struct Postgres {
    dir: tempfile::TempDir,
    child: Child,
    port: u16,
}

impl Postgres {
    /// Starts the server on `cpus` (`taskset -c`'s list, e.g. `1`), or on any.
    pub fn start_on(cpus: Option<&str>) -> anyhow::Result<Postgres> {
        let bin = find_bin_dir()?;
        let dir = tempfile::Builder::new()
            .prefix("m365-bench-postgres-")
            .tempdir()?;
        let owner = server_account()?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .context("cannot hand the temp dir to the postgres account")?;
        }
        let data = dir.path().join("data");
        let out = as_owner(Command::new(bin.join("initdb")), owner)
            .arg("-D")
            .arg(&data)
            .args(["-U", USER, "-E", "UTF8", "--auth=trust", "--no-sync"])
            .arg("--locale=C.UTF-8")
            .output()
            .context("cannot run initdb")?;
        if !out.status.success() {
            bail!("initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let port = std::net::TcpListener::bind(("127.0.0.1", 0))?
            .local_addr()?
            .port();
        let log_path = dir.path().join("postgres.log");
        let log = std::fs::File::create(&log_path)?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&log_path, Some(uid), Some(gid))?;
        }
        let mut server = match cpus {
            Some(cpus) => {
                let mut pinned = as_owner(Command::new("taskset"), owner);
                pinned.args(["-c", cpus]).arg(bin.join("postgres"));
                pinned
            }
            None => as_owner(Command::new(bin.join("postgres")), owner),
        };
        server
            .arg("-D")
            .arg(&data)
            .args(["-c", "listen_addresses=127.0.0.1", "-c"])
            .arg(format!("port={port}"))
            .args(["-c", "unix_socket_directories="]);
        if std::env::var_os(STATEMENTS_ENV).is_some() {
            server.args(["-c", "shared_preload_libraries=pg_stat_statements"]);
        }
        let settings = std::env::var(SETTINGS_ENV).unwrap_or_default();
        for setting in settings.split_whitespace() {
            server.args(["-c", setting]);
        }
        let child = server
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .context("cannot start PostgreSQL")?;
        let mut pg = Postgres { dir, child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            if log.contains("ready to accept connections") {
                return Ok(pg);
            }
            if pg.child.try_wait()?.is_some() || Instant::now() > deadline {
                bail!("PostgreSQL did not start:\n{log}");
            }
            // Not the migrator: the benchmark's own setup, like its Dovecot.
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// The journal URL (`[journal] url`) of database `postgres`.
    pub fn url(&self) -> String {
        format!(
            "postgres://{USER}@127.0.0.1:{}/postgres?sslmode=disable",
            self.port
        )
    }

    /// Runs `sql` in database `postgres` with psql; its unaligned, tuples-only output.
    fn psql(&self, sql: &str) -> anyhow::Result<String> {
        let out = Command::new(find_bin_dir()?.join("psql"))
            .args([
                "-X",
                "-A",
                "-t",
                "-h",
                "127.0.0.1",
                "-U",
                USER,
                "-d",
                "postgres",
            ])
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-c")
            .arg(sql)
            .output()
            .context("cannot run psql")?;
        if !out.status.success() {
            bail!("psql: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// With [`STATEMENTS_ENV`] set: the statements run so far, by total execution time (calls,
    /// total ms, rows, the text's first 110 characters), one per line; else `None`.
    pub fn statements(&self) -> anyhow::Result<Option<String>> {
        if std::env::var_os(STATEMENTS_ENV).is_none() {
            return Ok(None);
        }
        self.psql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")?;
        let rows = self.psql(
            "SELECT calls, round(total_exec_time::numeric, 1), rows, \
             left(regexp_replace(query, '\\s+', ' ', 'g'), 110) \
             FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 40",
        )?;
        Ok(Some(rows))
    }

    /// Transactions committed in database `postgres` so far (every statement outside an
    /// explicit transaction is one), from `pg_stat_database`.
    pub fn commits(&self) -> anyhow::Result<u64> {
        let out =
            self.psql("SELECT xact_commit FROM pg_stat_database WHERE datname = 'postgres'")?;
        out.trim()
            .parse()
            .with_context(|| format!("psql answered {out:?}"))
    }

    /// CPU seconds the server has used so far: its postmaster's and every backend's, live or
    /// exited ([`crate::proc_stats::tree_cpu_seconds`]; a backend counts once its connection
    /// closed and the postmaster waited for it, so read it after the worker has ended).
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        crate::proc_stats::tree_cpu_seconds(self.child.id())
    }

    /// Where the server's files are (for its log on failure).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SIGQUIT: PostgreSQL's immediate shutdown
        // (<https://www.postgresql.org/docs/15/server-shutdown.html>).
        let quit = Command::new("kill")
            .args(["-QUIT", &self.child.id().to_string()])
            .status();
        if !quit.is_ok_and(|s| s.success()) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn as_owner(mut command: Command, owner: Option<(u32, u32)>) -> Command {
    use std::os::unix::process::CommandExt;
    if let Some((uid, gid)) = owner {
        command.uid(uid).gid(gid);
    }
    command
}

/// `None` unless this process is root; then the `postgres` account's (uid, gid).
fn server_account() -> anyhow::Result<Option<(u32, u32)>> {
    let id = |args: &[&str]| -> anyhow::Result<Option<u32>> {
        let out = Command::new("id")
            .args(args)
            .output()
            .context("the `id` command")?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().parse().ok())
    };
    if id(&["-u"])? != Some(0) {
        return Ok(None);
    }
    match (id(&["-u", "postgres"])?, id(&["-g", "postgres"])?) {
        (Some(uid), Some(gid)) => Ok(Some((uid, gid))),
        _ => bail!("PostgreSQL refuses to run as root and there is no `postgres` account: apt-get install postgresql"),
    }
}

/// Debian's newest `/usr/lib/postgresql/<version>/bin`.
fn find_bin_dir() -> anyhow::Result<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, bin)) => Ok(bin),
        None => bail!("PostgreSQL not found (initdb): apt-get install postgresql"),
    }
}
