//! A real Radicale (Debian package `radicale`, 3.1) for tests: a throwaway configuration and
//! storage in a temp dir (no system configuration is read), htpasswd users with plain
//! passwords, `owner_only` rights, listening on a free 127.0.0.1 port, plain http or TLS with
//! a certificate from a private test CA (made as for Dovecot). Killed when dropped.
//!
//! Radicale logs to `radicale.log` in the temp dir at `info` level; the reason it refuses a
//! resource ("Bad PUT request ...: <parser message>") is only there, its HTTP answer being a
//! bare `400 Bad Request`.
//!
//! A missing Radicale is a test failure that says how to install it, never a skip.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use migrator_core::dest::dav::{DavLogin, DavSettings};
use migrator_core::secrets::Secret;

use super::dovecot::{free_port, make_certificate};

/// How to configure one instance.
#[derive(Debug, Clone)]
pub struct Options {
    /// Users and passwords.
    pub users: Vec<(String, String)>,
    /// Serve https with a certificate signed by the test CA.
    pub tls: bool,
    /// Accept any password (`[auth] type = none`): for accounts whose password the migrator
    /// generates during the run. Each user still sees only their own collections.
    pub any_password: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            users: vec![
                ("alice@example.com".into(), "alice-secret".into()),
                ("bob@example.com".into(), "bob-secret".into()),
            ],
            tls: false,
            any_password: false,
        }
    }
}

/// A running Radicale.
pub struct Radicale {
    dir: tempfile::TempDir,
    child: Child,
    pub port: u16,
    /// The private CA that signed the server's certificate (with `tls`).
    pub ca_file: Option<PathBuf>,
    tls: bool,
}

impl Radicale {
    /// Plain http with the default users.
    pub fn start() -> Radicale {
        Self::start_with(Options::default())
    }

    pub fn start_with(options: Options) -> Radicale {
        let command = find_radicale();
        let dir = tempfile::Builder::new()
            .prefix("radicale-test-")
            .tempdir()
            .expect("temp dir");
        let root = dir.path().to_path_buf();
        if options.tls {
            make_certificate(&root);
        }
        let users: String = options
            .users
            .iter()
            .map(|(u, p)| format!("{u}:{p}\n"))
            .collect();
        std::fs::write(root.join("users"), users).expect("users file");

        let mut last_log = String::new();
        for _ in 0..5 {
            let port = free_port();
            let conf = root.join("config");
            std::fs::write(
                &conf,
                config(&root, port, options.tls, options.any_password),
            )
            .expect("write config");
            let log_path = root.join("radicale.log");
            let log = std::fs::File::create(&log_path).expect("log file");
            let (mut child, ready) = spawn(&command, &conf, log, port);
            if ready {
                return Radicale {
                    dir,
                    child,
                    port,
                    ca_file: options.tls.then(|| root.join("ca.pem")),
                    tls: options.tls,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
            last_log = std::fs::read_to_string(&log_path).unwrap_or_default();
            // A port taken between probing and binding: try another.
            if !last_log.contains("in use") {
                break;
            }
        }
        panic!("Radicale did not start:\n{last_log}");
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops the server now (as drop does); its collections stay.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again after [`Radicale::stop`] with the same configuration, port and
    /// collections: a restart. Its log goes on in the same file.
    pub fn start_again(&mut self) {
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.path().join("radicale.log"))
            .expect("log file");
        let conf = self.dir.path().join("config");
        let (mut child, ready) = spawn(&find_radicale(), &conf, log, self.port);
        if !ready {
            let _ = child.kill();
            let _ = child.wait();
            panic!("Radicale did not start again:\n{}", self.log());
        }
        self.child = child;
    }

    /// The server log so far (for assertions and their messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("radicale.log")).unwrap_or_default()
    }

    pub fn base_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}/", self.port)
    }

    /// Discovery from the base URL; plaintext to loopback allowed; the test CA trusted.
    pub fn settings(&self) -> DavSettings {
        let mut s = DavSettings::new(self.base_url());
        s.allow_plaintext_loopback = !self.tls;
        s.ca_file = self.ca_file.clone();
        s.timeout = Duration::from_secs(20);
        s
    }

    /// The default users' login (`alice@example.com` / `alice-secret`).
    pub fn login(user: &str) -> DavLogin {
        let local = user.split('@').next().unwrap_or(user);
        DavLogin::new(user, Secret::new(format!("{local}-secret")))
    }
}

impl Drop for Radicale {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts Radicale with `conf`, logging to `log`; true once `port` accepts connections
/// (false if it exited or 20 s passed).
fn spawn(command: &[String], conf: &Path, log: std::fs::File, port: u16) -> (Child, bool) {
    let mut child = Command::new(&command[0])
        .args(&command[1..])
        .arg("--config")
        .arg(conf)
        .env_remove("RADICALE_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(20);
    let ready = loop {
        if let Ok(Some(_)) = child.try_wait() {
            break false;
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
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

/// The command that runs Radicale: `python3 -m radicale` (PATH's python3, then the system's,
/// which has the Debian package when PATH's is a pyenv), or the `radicale` script.
fn find_radicale() -> Vec<String> {
    let candidates: [&[&str]; 3] = [
        &["python3", "-m", "radicale"],
        &["/usr/bin/python3", "-m", "radicale"],
        &["radicale"],
    ];
    for c in candidates {
        let ok = Command::new(c[0])
            .args(&c[1..])
            .arg("--version")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return c.iter().map(|s| s.to_string()).collect();
        }
    }
    panic!("Radicale not found: apt-get install radicale (or run scripts/install-deps.sh)");
}

/// Radicale 3.1 configuration (keys as in its `config.py` schema).
fn config(root: &Path, port: u16, tls: bool, any_password: bool) -> String {
    let auth = if any_password { "none" } else { "htpasswd" };
    let r = root.display();
    let ssl = if tls {
        format!("ssl = True\ncertificate = {r}/cert.pem\nkey = {r}/key.pem\n")
    } else {
        "ssl = False\n".to_string()
    };
    format!(
        "# Throwaway test configuration; no system configuration is read.
[server]
hosts = 127.0.0.1:{port}
max_connections = 16
{ssl}
[auth]
type = {auth}
htpasswd_filename = {r}/users
htpasswd_encryption = plain
delay = 0

[rights]
type = owner_only

[storage]
filesystem_folder = {r}/collections

[web]
type = none

[logging]
level = info
mask_passwords = True
"
    )
}
