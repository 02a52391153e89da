//! The destination leg: how fast the migrator writes into a real Dovecot when Graph costs
//! nothing (simulator latency 0, limits off), next to mbsync (isync) pushing the same messages
//! from a local Maildir into the same Dovecot: the destination's own limit for an IMAP client.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context as _};
use migrator_sim::SimServer;
use serde::Serialize;

use crate::dovecot::{Dovecot, MASTER_PASSWORD, MASTER_USER};
use crate::scenario::{self, Scenario};
use crate::worker::JobDestination;

/// One way of moving the messages.
#[derive(Debug, Clone, Serialize)]
pub struct Leg {
    pub seconds: f64,
    pub messages_per_second: f64,
    pub mb_per_second: f64,
    /// Peak RSS of the migrator's process (not measured for mbsync).
    pub peak_rss_mib: Option<f64>,
    pub cpu_seconds: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DestLeg {
    pub name: &'static str,
    pub mailboxes: usize,
    pub messages: u64,
    pub bytes: u64,
    pub migrator_imap: Leg,
    pub migrator_folder: Leg,
    pub mbsync: Leg,
    pub mbsync_version: String,
    /// migrator into Dovecot / mbsync into Dovecot, in messages per second.
    pub ratio: f64,
}

pub fn scenario(quick: bool) -> Scenario {
    let (name, users, messages) = if quick {
        ("destleg-quick", 1, 30)
    } else {
        ("destleg", 2, 3_000)
    };
    Scenario {
        name,
        what: "destination leg: simulator latency 0, limits off, into Dovecot vs mbsync",
        users,
        messages_per_user: messages,
        max_attachment: 12 * 1024 * 1024,
        giant_every: None,
        latency_ms: 0,
        jitter_ms: 0,
        limits: None,
        parallel_mailboxes: users,
        heavy_tail: None,
        app_limit: None,
    }
}

fn leg(seconds: f64, messages: u64, bytes: u64) -> Leg {
    let s = seconds.max(1e-9);
    Leg {
        seconds,
        messages_per_second: messages as f64 / s,
        mb_per_second: bytes as f64 / 1e6 / s,
        peak_rss_mib: None,
        cpu_seconds: None,
    }
}

fn mbsync_version() -> anyhow::Result<String> {
    let out = std::process::Command::new("mbsync")
        .arg("--version")
        .output()
        .context("mbsync not found: apt-get install isync (or run scripts/install-deps.sh)")?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

pub async fn run(quick: bool, work: &Path) -> anyhow::Result<DestLeg> {
    let s = scenario(quick);
    let version = mbsync_version()?;
    let sim = SimServer::start(scenario::sim_config(&s)).await?;
    let tenant = sim.tenant();
    let (expected, _) = scenario::expected_messages(&sim);
    let per_user: Vec<u64> = tenant
        .users
        .iter()
        .map(|u| {
            u.folders
                .iter()
                .filter(|f| !f.is_search_folder)
                .map(|f| f.messages.len() as u64)
                .sum()
        })
        .collect();
    let mut accounts: Vec<(String, String)> = tenant
        .users
        .iter()
        .map(|u| (u.mail.clone(), "pw".to_string()))
        .collect();
    let mbsync_users: Vec<String> = (0..tenant.users.len())
        .map(|i| format!("mbsync{i}"))
        .collect();
    accounts.extend(mbsync_users.iter().map(|u| (u.clone(), "pw".to_string())));
    let dovecot = Dovecot::start(&accounts)?;

    // 1. The migrator into Dovecot.
    let imap = scenario::run_child(
        &sim,
        &s,
        JobDestination::Imap {
            port: dovecot.port,
            master_user: MASTER_USER.into(),
            master_password: MASTER_PASSWORD.into(),
        },
        &work.join("imap"),
        None,
    )
    .await?;
    let totals = &imap.summary.totals;
    for (user, want) in tenant.users.iter().zip(&per_user) {
        let stored = dovecot.stored_messages(&user.mail);
        if stored != *want {
            bail!(
                "{}: Dovecot holds {stored} of {want} messages for {}\n{}",
                s.name,
                user.mail,
                dovecot.log()
            );
        }
    }
    if totals.failed > 0 || totals.messages != expected {
        bail!(
            "{}: {} of {expected} migrated into Dovecot, {} failed",
            s.name,
            totals.messages,
            totals.failed
        );
    }
    let bytes = totals.bytes;
    let mut migrator_imap = leg(imap.wall_seconds, totals.messages, bytes);
    migrator_imap.peak_rss_mib = Some(imap.peak_rss_kib as f64 / 1024.0);
    migrator_imap.cpu_seconds = Some(imap.cpu_seconds);

    // 2. The migrator into a local folder, same tenant (reference).
    let folder = scenario::run_child(
        &sim,
        &s,
        JobDestination::Folder(work.join("folder-out")),
        &work.join("folder"),
        None,
    )
    .await?;
    if folder.summary.totals.messages != expected {
        bail!("{}: local folder leg lost messages", s.name);
    }
    let mut migrator_folder = leg(folder.wall_seconds, expected, folder.summary.totals.bytes);
    migrator_folder.peak_rss_mib = Some(folder.peak_rss_kib as f64 / 1024.0);
    migrator_folder.cpu_seconds = Some(folder.cpu_seconds);
    sim.shutdown().await;

    // 3. mbsync: the same messages from a Maildir, one process per mailbox in parallel (the
    // migrator also runs the mailboxes in parallel, one IMAP connection each).
    let mut configs = Vec::new();
    for (i, user) in tenant.users.iter().enumerate() {
        let maildir = work.join(format!("maildir{i}"));
        for (f, folder) in user.folders.iter().enumerate() {
            if folder.is_search_folder {
                continue;
            }
            let name = if folder.well_known_name.as_deref() == Some("inbox") {
                "INBOX".to_string()
            } else {
                format!("F{f:02}")
            };
            for sub in ["cur", "new", "tmp"] {
                std::fs::create_dir_all(maildir.join(&name).join(sub))?;
            }
            for (n, m) in folder.messages.iter().enumerate() {
                let mut flags = String::new();
                if m.flag_status == "flagged" {
                    flags.push('F');
                }
                if m.is_read {
                    flags.push('S');
                }
                let file = maildir
                    .join(&name)
                    .join("cur")
                    .join(format!("{n}.bench{i}:2,{flags}"));
                std::fs::write(file, m.mime.bytes())?;
            }
        }
        let state = work.join(format!("mbsync-state{i}"));
        std::fs::create_dir_all(&state)?;
        let conf = work.join(format!("mbsyncrc{i}"));
        std::fs::write(
            &conf,
            format!(
                "IMAPAccount far\nHost 127.0.0.1\nPort {port}\nUser {user}\nPass pw\n\
                 SSLType None\nAuthMechs PLAIN LOGIN\n\n\
                 IMAPStore far\nAccount far\n\n\
                 MaildirStore near\nPath {dir}/\nInbox {dir}/INBOX\nSubFolders Verbatim\n\n\
                 Channel push\nFar :far:\nNear :near:\nPatterns INBOX F*\nCreate Far\nSync Push\n\
                 SyncState {state}/\n",
                port = dovecot.port,
                user = mbsync_users[i],
                dir = maildir.display(),
                state = state.display(),
            ),
        )?;
        configs.push(conf);
    }
    let started = Instant::now();
    let children: Vec<_> = configs
        .iter()
        .map(|conf| {
            std::process::Command::new("mbsync")
                .arg("-q")
                .arg("-c")
                .arg(conf)
                .arg("-a")
                .stdin(std::process::Stdio::null())
                .spawn()
                .context("cannot start mbsync")
        })
        .collect::<anyhow::Result<_>>()?;
    for mut child in children {
        let status = child.wait()?;
        if !status.success() {
            bail!("mbsync failed ({status})\n{}", dovecot.log());
        }
    }
    let mbsync_seconds = started.elapsed().as_secs_f64();
    for (user, want) in mbsync_users.iter().zip(&per_user) {
        let stored = dovecot.stored_messages(user);
        if stored != *want {
            bail!("{}: mbsync stored {stored} of {want} for {user}", s.name);
        }
    }
    let mbsync = leg(mbsync_seconds, expected, bytes);
    let ratio = migrator_imap.messages_per_second / mbsync.messages_per_second.max(1e-9);
    Ok(DestLeg {
        name: s.name,
        mailboxes: s.users,
        messages: expected,
        bytes,
        migrator_imap,
        migrator_folder,
        mbsync,
        mbsync_version: version,
        ratio,
    })
}
