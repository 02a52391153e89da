//! A throwaway Dovecot for the destination-leg comparison, after the test harness in
//! src-tauri/core/tests/support/dovecot.rs: its own configuration in a temp dir (no system
//! configuration is read), passwd-file users and a master user, Maildir storage, one
//! plaintext listener on a free 127.0.0.1 port (both clients use it alike, so TLS cost is left
//! out of the comparison). Stopped when dropped. As root, Dovecot's processes and the mail files
//! use `nobody`, because Dovecot refuses root for them.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

/// The loopback address Dovecot listens on (the Plan's estimate counts its CPU for it).
pub const HOST: &str = "127.0.0.1";
pub const MASTER_USER: &str = "bench-admin";
pub const MASTER_PASSWORD: &str = "bench-master-pw";

pub struct Dovecot {
    dir: tempfile::TempDir,
    child: Child,
    pub port: u16,
}

fn id(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("id")
        .args(args)
        .output()
        .context("the `id` command")?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn find_dovecot() -> anyhow::Result<PathBuf> {
    for dir in ["/usr/sbin", "/usr/local/sbin", "/usr/bin", "/sbin"] {
        let p = Path::new(dir).join("dovecot");
        if p.exists() {
            return Ok(p);
        }
    }
    bail!("dovecot not found: apt-get install dovecot-imapd (or run scripts/install-deps.sh)")
}

impl Dovecot {
    /// Starts Dovecot with these `(user, password)` accounts.
    pub fn start(users: &[(String, String)]) -> anyhow::Result<Dovecot> {
        let binary = find_dovecot()?;
        let dir = tempfile::Builder::new()
            .prefix("m365-bench-dovecot-")
            .tempdir()?;
        let root = dir.path();
        let as_root = id(&["-u"])? == "0";
        let who: Vec<&str> = if as_root { vec!["nobody"] } else { vec![] };
        let with = |flag: &str| {
            let mut args = vec![flag];
            args.extend(&who);
            id(&args)
        };
        let (user, group, uid, gid) = (with("-un")?, with("-gn")?, with("-u")?, with("-g")?);
        let mail = root.join("mail");
        std::fs::create_dir_all(&mail)?;
        let mut passwd = String::new();
        for (name, password) in users {
            passwd.push_str(&format!(
                "{name}:{{PLAIN}}{password}:{uid}:{gid}::{}\n",
                mail.join(name).display()
            ));
        }
        std::fs::write(root.join("users"), passwd)?;
        std::fs::write(
            root.join("masters"),
            format!("{MASTER_USER}:{{PLAIN}}{MASTER_PASSWORD}\n"),
        )?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755))?;
            let (uid, gid) = (uid.parse().ok(), gid.parse().ok());
            std::os::unix::fs::chown(&mail, uid, gid)?;
        }
        let port = TcpListener::bind((HOST, 0))?.local_addr()?.port();
        let r = root.display();
        let conf = root.join("dovecot.conf");
        std::fs::write(
            &conf,
            format!(
                r#"protocols = imap
listen = {HOST}
base_dir = {r}/run
state_dir = {r}/state
log_path = {r}/dovecot.log
info_log_path = {r}/dovecot.log
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
first_valid_uid = 0
first_valid_gid = 0
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_master_user_separator = *
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = {r}/masters
  master = yes
  result_success = continue
}}
passdb {{
  driver = passwd-file
  args = {r}/users
}}
userdb {{
  driver = passwd-file
  args = {r}/users
}}
namespace inbox {{
  inbox = yes
  separator = /
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
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"#
            ),
        )?;
        let mut child = Command::new(&binary)
            .arg("-F")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if std::net::TcpStream::connect((HOST, port)).is_ok() {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(root.join("dovecot.log")).unwrap_or_default();
                bail!("Dovecot exited ({status}):\n{log}");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("Dovecot did not start within 15 s");
            }
            // Benchmark harness only: the migrator's own code waits only in its pacer.
            std::thread::sleep(Duration::from_millis(25));
        }
        Ok(Dovecot { dir, child, port })
    }

    /// Messages stored for `user` (files in the Maildir's cur/ and new/ folders).
    pub fn stored_messages(&self, user: &str) -> u64 {
        crate::scenario::count_maildir_messages(&self.dir.path().join("mail").join(user))
    }

    /// The Dovecot master's process id (started with `-F`, so the child is the master).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
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
