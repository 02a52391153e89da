//! A real PostgreSQL (Debian package `postgresql`, 15) for tests: `initdb` into a temp dir (no
//! system cluster or configuration is touched), one superuser `migrator` with a password
//! (scram-sha-256 over TCP), listening on a free 127.0.0.1 port with no Unix socket. Stopped
//! (immediate shutdown) when dropped.
//!
//! PostgreSQL refuses to run as root; under root the server runs as the `postgres` account the
//! Debian package creates, and the temp dir is handed to it.
//!
//! [`Postgres::start_tls`] serves TLS with a certificate made for the test by `openssl` (a CA
//! of its own, the server's certificate for 127.0.0.1 and `localhost`, as Dovecot's), optionally requiring
//! it (`hostssl` lines only in `pg_hba.conf`).
//!
//! A missing PostgreSQL (or `openssl`, for TLS) is a test failure that says how to install
//! it, never a skip.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use migrator_core::secrets::Secret;

use super::dovecot::{free_port, make_certificate, make_certificate_named};

/// The superuser the tests connect as, and its password.
pub const USER: &str = "migrator";
pub const PASSWORD: &str = "journal-test-password";

/// A running PostgreSQL.
pub struct Postgres {
    dir: tempfile::TempDir,
    child: Child,
    pub port: u16,
    bin: PathBuf,
    owner: Option<(u32, u32)>,
    /// `-c name=value` settings besides the usual ones (TLS).
    settings: Vec<String>,
}

/// How [`Postgres::start_tls`] serves TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    /// Offered: a client may connect with or without it.
    Offered,
    /// Required: `pg_hba.conf` has only `hostssl` lines, so a connection without TLS is
    /// refused (<https://www.postgresql.org/docs/15/auth-pg-hba-conf.html>).
    Required,
}

/// The certificates [`Postgres::start_tls`] made, in its temp dir.
#[derive(Debug, Clone)]
pub struct TestCertificates {
    /// The CA that signed the server's certificate: the right `sslrootcert`.
    pub ca: PathBuf,
    /// Another CA, which signed nothing the server has: a wrong `sslrootcert`.
    pub other_ca: PathBuf,
}

impl Postgres {
    /// Password authentication ([`USER`], [`PASSWORD`]).
    pub fn start() -> Postgres {
        Self::start_with(false)
    }

    /// `trust` authentication on loopback: any client connects as [`USER`] without a password
    /// (for runs through the engine, which reads the password from the environment).
    pub fn start_trusting() -> Postgres {
        Self::start_with(true)
    }

    /// Password authentication with TLS on, its certificate for 127.0.0.1 signed by a CA made
    /// for the test ([`TestCertificates`]).
    pub fn start_tls(tls: Tls) -> (Postgres, TestCertificates) {
        let dir = tempfile::Builder::new()
            .prefix("postgres-test-")
            .tempdir()
            .expect("temp dir");
        let owner = server_account();
        let certs = make_certificates(dir.path(), owner);
        let settings = vec![
            "ssl=on".to_string(),
            format!("ssl_cert_file={}", dir.path().join("cert.pem").display()),
            format!("ssl_key_file={}", dir.path().join("key.pem").display()),
        ];
        let pg = Self::start_in(dir, owner, false, settings, |data| {
            if tls == Tls::Required {
                let hba = data.join("pg_hba.conf");
                let text = std::fs::read_to_string(&hba).expect("pg_hba.conf");
                let only_tls: String = text
                    .lines()
                    .map(|l| match l.strip_prefix("host ") {
                        Some(rest) => format!("hostssl {rest}\n"),
                        None => format!("{l}\n"),
                    })
                    .collect();
                std::fs::write(&hba, only_tls).expect("pg_hba.conf written");
            }
        });
        (pg, certs)
    }

    /// Password authentication with more server settings (`name=value`), such as
    /// `log_statement=all` for a test that reads [`Postgres::log`].
    pub fn start_with_settings(settings: &[&str]) -> Postgres {
        let dir = tempfile::Builder::new()
            .prefix("postgres-test-")
            .tempdir()
            .expect("temp dir");
        let settings = settings.iter().map(|s| s.to_string()).collect();
        Self::start_in(dir, server_account(), false, settings, |_| {})
    }

    fn start_with(trust: bool) -> Postgres {
        let dir = tempfile::Builder::new()
            .prefix("postgres-test-")
            .tempdir()
            .expect("temp dir");
        Self::start_in(dir, server_account(), trust, Vec::new(), |_| {})
    }

    fn start_in(
        dir: tempfile::TempDir,
        owner: Option<(u32, u32)>,
        trust: bool,
        settings: Vec<String>,
        configure: impl FnOnce(&Path),
    ) -> Postgres {
        let bin = find_bin_dir();
        let data = dir.path().join("data");
        std::fs::write(dir.path().join("pwfile"), PASSWORD).expect("password file");
        if let Some((uid, gid)) = owner {
            for p in [dir.path(), &dir.path().join("pwfile")] {
                std::os::unix::fs::chown(p, Some(uid), Some(gid)).expect("chown to postgres");
            }
        }
        let out = as_owner(Command::new(bin.join("initdb")), owner)
            .arg("-D")
            .arg(&data)
            .args(["-U", USER, "-E", "UTF8"])
            .arg(if trust {
                "--auth=trust"
            } else {
                "--auth=scram-sha-256"
            })
            .arg(format!("--pwfile={}", dir.path().join("pwfile").display()))
            .args(["--no-sync", "--locale=C.UTF-8"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run initdb: {e}"));
        assert!(
            out.status.success(),
            "initdb failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        configure(&data);
        let mut last_log = String::new();
        for _ in 0..5 {
            let port = free_port();
            let (mut child, ready) = spawn(&bin, dir.path(), port, owner, &settings);
            if ready {
                return Postgres {
                    dir,
                    child,
                    port,
                    bin,
                    owner,
                    settings,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
            last_log = std::fs::read_to_string(dir.path().join("postgres.log")).unwrap_or_default();
            // A port taken between probing and binding: try another.
            if !last_log.contains("in use") {
                break;
            }
        }
        panic!("PostgreSQL did not start:\n{last_log}");
    }

    /// The journal URL of database `postgres` (no TLS: loopback).
    pub fn url(&self) -> String {
        format!(
            "postgres://{USER}@127.0.0.1:{}/postgres?sslmode=disable",
            self.port
        )
    }

    /// The journal URL of database `postgres` with `query` (`sslmode=...&sslrootcert=...`).
    pub fn url_with(&self, query: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/postgres?{query}", self.port)
    }

    pub fn password(&self) -> Secret {
        Secret::new(PASSWORD.to_string())
    }

    /// The server log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }

    /// Runs SQL with `psql` as the superuser (for a test's own checks).
    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
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
            .env("PGPASSWORD", PASSWORD)
            .output()
            .unwrap_or_else(|e| panic!("cannot run psql: {e}"));
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Stops the server now (immediate shutdown, as drop does); its data stays.
    pub fn stop(&mut self) {
        stop(&mut self.child);
    }

    /// Starts the server again after [`Postgres::stop`] on the same port and data.
    pub fn start_again(&mut self) {
        let (child, ready) = spawn(
            &self.bin,
            self.dir.path(),
            self.port,
            self.owner,
            &self.settings,
        );
        self.child = child;
        assert!(ready, "PostgreSQL did not start again:\n{}", self.log());
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// SIGQUIT is PostgreSQL's immediate shutdown: the postmaster stops its backends and exits
/// (<https://www.postgresql.org/docs/15/server-shutdown.html>); SIGKILL would leave them.
fn stop(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        let quit = Command::new("kill")
            .args(["-QUIT", &child.id().to_string()])
            .status();
        if !quit.is_ok_and(|s| s.success()) {
            let _ = child.kill();
        }
        let _ = child.wait();
    }
}

/// Starts the server on `port`; true once it accepts connections (its log says so), false if
/// it exited or 30 s passed.
fn spawn(
    bin: &Path,
    root: &Path,
    port: u16,
    owner: Option<(u32, u32)>,
    settings: &[String],
) -> (Child, bool) {
    let log_path = root.join("postgres.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .expect("log file");
    if let Some((uid, gid)) = owner {
        let _ = std::os::unix::fs::chown(&log_path, Some(uid), Some(gid));
    }
    let start_len = std::fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0) as usize;
    let mut child = as_owner(Command::new(bin.join("postgres")), owner)
        .arg("-D")
        .arg(root.join("data"))
        .args(["-c", "listen_addresses=127.0.0.1"])
        .arg("-c")
        .arg(format!("port={port}"))
        .args(["-c", "unix_socket_directories="])
        .args(["-c", "fsync=off", "-c", "max_connections=50"])
        .args(settings.iter().flat_map(|s| ["-c", s.as_str()]))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start PostgreSQL: {e}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let ready = loop {
        if let Ok(Some(_)) = child.try_wait() {
            break false;
        }
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        if log
            .get(start_len..)
            .is_some_and(|l| l.contains("ready to accept connections"))
        {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        // Test support only: the migrator's own code waits only in its pacer.
        std::thread::sleep(Duration::from_millis(25));
    };
    (child, ready)
}

/// Makes, in `dir`, a CA and the server's key and certificate for 127.0.0.1 and `localhost`
/// signed by it (as for Dovecot: [`make_certificate`]; the key private to the server's
/// account, as PostgreSQL demands), and in `dir/other` another CA.
fn make_certificates(dir: &Path, owner: Option<(u32, u32)>) -> TestCertificates {
    make_certificate(dir);
    let other = dir.join("other");
    std::fs::create_dir(&other).expect("a folder for the other CA");
    make_certificate_named(&other, "Another Test CA");
    use std::os::unix::fs::PermissionsExt;
    let key = dir.join("key.pem");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod key");
    if let Some((uid, gid)) = owner {
        for f in ["key.pem", "cert.pem"] {
            std::os::unix::fs::chown(dir.join(f), Some(uid), Some(gid)).expect("chown to postgres");
        }
    }
    TestCertificates {
        ca: dir.join("ca.pem"),
        other_ca: other.join("ca.pem"),
    }
}

/// Under root, the command runs as the `postgres` account.
fn as_owner(mut command: Command, owner: Option<(u32, u32)>) -> Command {
    use std::os::unix::process::CommandExt;
    if let Some((uid, gid)) = owner {
        command.uid(uid).gid(gid);
    }
    command
}

/// The (uid, gid) to run the server as: `None` unless this process is root.
fn server_account() -> Option<(u32, u32)> {
    let id = |args: &[&str]| -> Option<u32> {
        let out = Command::new("id").args(args).output().expect("id runs");
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    if id(&["-u"]) != Some(0) {
        return None;
    }
    let account = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("id runs");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|_| {
                panic!("PostgreSQL refuses to run as root and there is no `postgres` account: apt-get install postgresql (or run scripts/install-deps.sh)")
            })
    };
    Some((account("-u"), account("-g")))
}

/// The folder with `initdb` and `postgres`: PATH's, else Debian's newest
/// `/usr/lib/postgresql/<version>/bin`.
fn find_bin_dir() -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .find(|d| d.join("initdb").is_file() && d.join("postgres").is_file())
    });
    if let Some(dir) = on_path {
        return std::fs::canonicalize(dir.join("initdb"))
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or(dir);
    }
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
    versions.pop().map(|(_, bin)| bin).unwrap_or_else(|| {
        panic!("PostgreSQL not found (initdb): apt-get install postgresql (or run scripts/install-deps.sh)")
    })
}
