//! A real Dovecot (Debian package `dovecot-imapd`) for tests: a throwaway configuration in a
//! temp dir (no system config is read), passwd-file users and a master user, Maildir storage,
//! SPECIAL-USE folders, TLS with a certificate from a private test CA made by `openssl`, listening on two
//! free 127.0.0.1 ports (implicit TLS, and plaintext/STARTTLS). Stopped (SIGTERM, then
//! SIGKILL) when dropped.
//!
//! Dovecot runs as the current user. As root (CI), its login and internal processes and the
//! mail files use `nobody` instead, because Dovecot refuses to run those as root.
//!
//! A missing Dovecot is a test failure that says how to install it, never a skip.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use migrator_core::dest::imap::{ImapLogin, ImapSettings, MasterStyle, Security};
use migrator_core::engine::{Destination, ImapLogins};
use migrator_core::secrets::Secret;

pub const MASTER_USER: &str = "migrator-admin";
pub const MASTER_PASSWORD: &str = "master pw \"quoted\" ä";

/// The master login the runs into Dovecot use (SASL PLAIN with an authorization identity).
pub fn master_logins() -> ImapLogins {
    ImapLogins::Master {
        master_user: MASTER_USER.into(),
        password: Secret::new(MASTER_PASSWORD),
        style: MasterStyle::SaslAuthzid,
    }
}

/// A mail-only IMAP destination reached as `settings`, with [`master_logins`].
pub fn master_destination(settings: ImapSettings) -> Destination {
    Destination::Imap {
        settings,
        logins: master_logins(),
        dav: None,
    }
}

/// How to configure one instance.
#[derive(Debug, Clone)]
pub struct Options {
    /// The namespace's hierarchy separator (`/` or `.`).
    pub separator: char,
    /// Users and passwords.
    pub users: Vec<(String, String)>,
    /// Refuse messages larger than this many KiB (quota plugin `quota_max_mail_size`).
    pub max_mail_kib: Option<u64>,
    /// Replaces the announced capabilities (`imap_capability`), e.g. to hide LITERAL+.
    pub capability: Option<String>,
    /// Each account's storage quota in KiB (quota plugin, `quota_rule = *:storage=`).
    pub quota_kib: Option<u64>,
    /// Master logins (SASL PLAIN with an authorization identity, `user*master`) are accepted.
    /// Off: refused, as a server without a master user refuses them.
    pub master_logins: bool,
    /// Any password logs in to a known user (a `static` passdb with `nopassword`, Dovecot docs
    /// authentication/static_password_database): a stand-in for a server that knows passwords
    /// the test does not, such as those a run generates.
    pub any_password: bool,
    /// Loads the listescape plugin, so Maildir++ storage accepts `.`, `/` (when not the
    /// separator) and a leading `~` in folder names, stored as `\NN` (Dovecot docs,
    /// configuration_manual/plugins/listescape_plugin). Off: Dovecot refuses them.
    pub listescape: bool,
    /// listescape's escape character (`listescape_char`, default `\\`); `%` reads the local
    /// folder's on-disk escapes.
    pub listescape_char: Option<char>,
    /// Users whose logins are refused whatever the password (a `deny = yes` passdb, Dovecot
    /// docs authentication/password_databases_(passdb), "deny"): a server that refuses a login
    /// as an account it holds.
    pub denied: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            separator: '/',
            users: vec![
                ("alice".into(), "alice-secret".into()),
                ("bob".into(), "bob-secret".into()),
            ],
            max_mail_kib: None,
            capability: None,
            quota_kib: None,
            master_logins: true,
            any_password: false,
            listescape: false,
            listescape_char: None,
            denied: Vec::new(),
        }
    }
}

/// A running Dovecot.
pub struct Dovecot {
    dir: tempfile::TempDir,
    child: Child,
    /// Implicit TLS (993-style).
    pub imaps_port: u16,
    /// Plaintext greeting, STARTTLS offered (143-style).
    pub imap_port: u16,
    /// The private CA that signed the server's certificate (the CA file to trust).
    pub ca_file: PathBuf,
    pub separator: char,
    stopped: bool,
}

impl Dovecot {
    /// Starts Dovecot with `/` as separator and the default users.
    pub fn start() -> Dovecot {
        Self::start_with(Options::default())
    }

    pub fn start_with(options: Options) -> Dovecot {
        let binary = find_dovecot();
        let dir = tempfile::Builder::new()
            .prefix("dovecot-test-")
            .tempdir()
            .expect("temp dir");
        let root = dir.path().to_path_buf();
        let run_as = RunAs::detect();
        make_certificate(&root);
        write_users(&root, &options, &run_as);

        let mut last_log = String::new();
        for _ in 0..5 {
            let (imaps_port, imap_port) = (free_port(), free_port());
            if imaps_port == imap_port {
                continue;
            }
            let conf = root.join("dovecot.conf");
            std::fs::write(
                &conf,
                config(&root, &options, &run_as, imaps_port, imap_port),
            )
            .expect("write dovecot.conf");
            let log = root.join("dovecot.log");
            let _ = std::fs::remove_file(&log);
            let (mut child, ready) = spawn(&binary, &conf, &[imaps_port, imap_port]);
            if ready {
                return Dovecot {
                    dir,
                    child,
                    imaps_port,
                    imap_port,
                    ca_file: root.join("ca.pem"),
                    separator: options.separator,
                    stopped: false,
                };
            }
            let _ = child.kill();
            let mut stderr = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read as _;
                let _ = e.read_to_string(&mut stderr);
            }
            let _ = child.wait();
            last_log = format!(
                "{stderr}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            // A port taken between probing and binding: try other ports.
            if !last_log.contains("in use") {
                break;
            }
        }
        panic!("Dovecot did not start:\n{last_log}");
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts the server again after [`Dovecot::stop`], with the same configuration, ports
    /// and mail: a restart.
    pub fn start_again(&mut self) {
        assert!(self.stopped, "start_again after stop");
        let conf = self.dir.path().join("dovecot.conf");
        let (mut child, ready) = spawn(&find_dovecot(), &conf, &[self.imaps_port, self.imap_port]);
        if !ready {
            let _ = child.kill();
            let _ = child.wait();
            panic!("Dovecot did not start again:\n{}", self.log());
        }
        self.child = child;
        self.stopped = false;
    }

    /// The server log so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }

    /// The changes clients made to mail so far (mail_log lines: saves, appends, copies,
    /// expunges, flag changes), in order.
    pub fn mail_changes(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| {
                [
                    ": save:",
                    ": append:",
                    ": copy:",
                    ": expunge:",
                    ": flag_change:",
                ]
                .iter()
                .any(|e| l.contains(e))
            })
            .map(str::to_string)
            .collect()
    }

    /// Implicit TLS to 127.0.0.1 trusting the test certificate.
    pub fn tls_settings(&self) -> ImapSettings {
        let mut s = ImapSettings::new("127.0.0.1", self.imaps_port, Security::Tls);
        s.ca_file = Some(self.ca_file.clone());
        s.timeout = Duration::from_secs(20);
        s
    }

    /// STARTTLS on the plaintext port, trusting the test certificate.
    pub fn starttls_settings(&self) -> ImapSettings {
        let mut s = ImapSettings::new("127.0.0.1", self.imap_port, Security::StartTls);
        s.ca_file = Some(self.ca_file.clone());
        s.timeout = Duration::from_secs(20);
        s
    }

    pub fn password(user: &str) -> ImapLogin {
        ImapLogin::Password {
            user: user.into(),
            password: Secret::new(format!("{user}-secret")),
        }
    }

    pub fn master(user: &str, style: MasterStyle) -> ImapLogin {
        ImapLogin::Master {
            user: user.into(),
            master_user: MASTER_USER.into(),
            master_password: Secret::new(MASTER_PASSWORD),
            style,
        }
    }

    /// Makes a copy of the Maildir++ tree at `maildir` the mailbox of `user` (a configured
    /// user), owned by the mail processes: Dovecot then reads it as a Maildir++ reader.
    pub fn adopt_maildir(&self, user: &str, maildir: &Path) {
        let home = self.dir.path().join("mail").join(user);
        std::fs::create_dir_all(&home).expect("home");
        let status = Command::new("cp")
            .arg("-r")
            .arg(maildir)
            .arg(home.join("Maildir"))
            .status()
            .expect("cp");
        assert!(status.success(), "cp -r {}", maildir.display());
        let run_as = RunAs::detect();
        let status = Command::new("chown")
            .arg("-R")
            .arg(format!("{}:{}", run_as.uid, run_as.gid))
            .arg(&home)
            .status()
            .expect("chown");
        assert!(status.success(), "chown -R {}", home.display());
    }

    /// Stops the server now (as drop does).
    pub fn stop(&mut self) {
        if std::mem::replace(&mut self.stopped, true) {
            return;
        }
        let pid = self.child.id().to_string();
        let _ = Command::new("kill")
            .args(["-TERM", &pid])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts Dovecot in the foreground with `conf`; true once every port in `ports` accepts
/// connections (false if it exited or 15 s passed).
fn spawn(binary: &Path, conf: &Path, ports: &[u16]) -> (Child, bool) {
    let mut child = Command::new(binary)
        .arg("-F")
        .arg("-c")
        .arg(conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
    let deadline = Instant::now() + Duration::from_secs(15);
    let ready = loop {
        if let Ok(Some(_)) = child.try_wait() {
            break false;
        }
        let up = |p: &u16| std::net::TcpStream::connect(("127.0.0.1", *p)).is_ok();
        if ports.iter().all(up) {
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

fn find_dovecot() -> PathBuf {
    for dir in ["/usr/sbin", "/usr/local/sbin", "/usr/bin", "/sbin"] {
        let p = Path::new(dir).join("dovecot");
        if p.exists() {
            return p;
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("dovecot");
            if p.exists() {
                return p;
            }
        }
    }
    panic!("dovecot not found: apt-get install dovecot-imapd (or run scripts/install-deps.sh)");
}

/// Who Dovecot's unprivileged processes and the mail files run as.
struct RunAs {
    user: String,
    group: String,
    uid: u32,
    gid: u32,
}

impl RunAs {
    fn detect() -> RunAs {
        let id = |args: &[&str]| -> String {
            let out = Command::new("id")
                .args(args)
                .output()
                .expect("the `id` command");
            assert!(out.status.success(), "id {args:?} failed");
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        let root = id(&["-u"]) == "0";
        // Dovecot refuses to run login processes (and mail access) as root.
        let who: &[&str] = if root { &["nobody"] } else { &[] };
        let with = |flag: &str| {
            let mut args = vec![flag];
            args.extend_from_slice(who);
            id(&args)
        };
        RunAs {
            user: with("-un"),
            group: with("-gn"),
            uid: with("-u").parse().expect("uid"),
            gid: with("-g").parse().expect("gid"),
        }
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A private CA (`ca.pem`) and a server certificate it signed for 127.0.0.1 and localhost
/// (`cert.pem`, `key.pem`). webpki refuses a CA certificate used as the server's own, so the
/// test sets up what a private deployment has: a CA file and a leaf.
pub fn make_certificate(root: &Path) {
    make_certificate_named(root, "M365 Migrator Test CA");
}

/// [`make_certificate`] with a CA of this name (another CA than the usual one).
pub fn make_certificate_named(root: &Path, ca_name: &str) {
    let subject = format!("/CN={ca_name}");
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(root)
            .stdin(Stdio::null())
            .output()
            .expect("openssl not found: apt-get install openssl");
        assert!(
            out.status.success(),
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", &subject,
        "-keyout", "ca.key", "-out", "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "key.pem",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        root.join("server.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .expect("server.ext");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "cert.pem",
    ]);
}

fn write_users(root: &Path, options: &Options, run_as: &RunAs) {
    let mail = root.join("mail");
    std::fs::create_dir_all(&mail).expect("mail dir");
    let mut users = String::new();
    for (user, password) in &options.users {
        // passwd-file: user:{PLAIN}password:uid:gid::home
        users.push_str(&format!(
            "{user}:{{PLAIN}}{password}:{}:{}::{}\n",
            run_as.uid,
            run_as.gid,
            mail.join(user).display()
        ));
    }
    std::fs::write(root.join("users"), users).expect("users file");
    std::fs::write(
        root.join("masters"),
        format!("{MASTER_USER}:{{PLAIN}}{MASTER_PASSWORD}\n"),
    )
    .expect("masters file");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // Reachable by the unprivileged mail processes (as root they run as nobody).
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::os::unix::fs::chown(&mail, Some(run_as.uid), Some(run_as.gid)).expect("chown");
    }
}

/// The mail_log plugin's settings: which changes are logged, with which fields.
const MAIL_LOG: &str = "mail_log_events = save append copy expunge flag_change\n  \
                        mail_log_fields = uid box msgid flags";

fn config(root: &Path, o: &Options, run_as: &RunAs, imaps: u16, imap: u16) -> String {
    let r = root.display();
    let sep = o.separator;
    // mail_log records every change a client makes, for tests that count writes
    // (Dovecot docs, plugins/mail_log).
    let quota = match (o.max_mail_kib, o.quota_kib) {
        (None, None) => {
            format!("mail_plugins = $mail_plugins notify mail_log\nplugin {{\n  {MAIL_LOG}\n}}\n")
        }
        (max_mail, storage) => {
            // Dovecot docs, plugins/quota: `quota_rule = *:storage=` limits the account,
            // `quota_max_mail_size` one message; APPEND over either is refused.
            let storage = storage.map_or("1G".to_string(), |k| format!("{k}k"));
            let max_mail = max_mail
                .map(|k| format!("quota_max_mail_size = {k}k\n  "))
                .unwrap_or_default();
            format!(
                "mail_plugins = $mail_plugins notify mail_log quota\n\
                 plugin {{\n  quota = maildir:User quota\n  quota_rule = *:storage={storage}\n  \
                 {max_mail}{MAIL_LOG}\n}}\n"
            )
        }
    };
    let masters = if o.master_logins {
        format!(
            "passdb {{\n  driver = passwd-file\n  args = {r}/masters\n  master = yes\n  \
             result_success = continue\n}}\n"
        )
    } else {
        String::new()
    };
    let denied = if o.denied.is_empty() {
        String::new()
    } else {
        let names: String = o.denied.iter().map(|u| format!("{u}\n")).collect();
        std::fs::write(format!("{r}/denied"), names).expect("write the denied users");
        format!("passdb {{\n  driver = passwd-file\n  args = {r}/denied\n  deny = yes\n}}\n")
    };
    let users = if o.any_password {
        "driver = static\n  args = nopassword=y".to_string()
    } else {
        format!("driver = passwd-file\n  args = {r}/users")
    };
    // `%` is doubled in a plugin setting: variables are expanded there (Dovecot docs,
    // settings/plugin/listescape-plugin).
    let listescape =
        match (o.listescape, o.listescape_char) {
            (false, _) => String::new(),
            (true, None) => "mail_plugins = $mail_plugins listescape\n".to_string(),
            (true, Some(c)) => format!(
            "mail_plugins = $mail_plugins listescape\nplugin {{\n  listescape_char = \"{}\"\n}}\n",
            if c == '%' { "%%".to_string() } else { c.to_string() }
        ),
        };
    let capability = o
        .capability
        .as_deref()
        .map(|c| format!("imap_capability = {c}\n"))
        .unwrap_or_default();
    format!(
        r#"# Throwaway test configuration; no system configuration is read.
protocols = imap
listen = 127.0.0.1
base_dir = {r}/run
state_dir = {r}/state
log_path = {r}/dovecot.log
info_log_path = {r}/dovecot.log
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
first_valid_uid = 0
first_valid_gid = 0
ssl = yes
ssl_cert = <{r}/cert.pem
ssl_key = <{r}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_master_user_separator = *
mail_location = maildir:~/Maildir
{quota}{listescape}{capability}
{denied}{masters}passdb {{
  {users}
}}
userdb {{
  driver = passwd-file
  args = {r}/users
}}
namespace inbox {{
  inbox = yes
  separator = {sep}
  prefix =
  mailbox "Sent Messages" {{
    special_use = \Sent
    auto = subscribe
  }}
  mailbox Drafts {{
    special_use = \Drafts
    auto = subscribe
  }}
  mailbox Trash {{
    special_use = \Trash
    auto = subscribe
  }}
  mailbox Junk {{
    special_use = \Junk
    auto = create
  }}
}}
service imap-login {{
  inet_listener imap {{
    port = {imap}
  }}
  inet_listener imaps {{
    port = {imaps}
    ssl = yes
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0600
  }}
  unix_listener stats-writer {{
    mode = 0600
  }}
}}
"#,
        user = run_as.user,
        group = run_as.group,
    )
}
