//! `kill -9` at random moments of a migration, then `run` to completion: every message is at
//! the destination exactly once. The simulator answers slowly enough that the kills land while
//! folders are listed, messages are fetched, appended and journaled.

#[path = "../../core/tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use support::dovecot::MASTER_PASSWORD;

/// Kills a `run` this many times before letting one finish.
const KILLS: usize = 8;
/// Seeded, so a failure can be replayed; the seed is printed with any failure.
const SEED: u64 = 0x5eed_c0de;

fn run_command(config: &Path, secret: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_m365-migrate"));
    command
        .args(["--quiet", "run", "--config"])
        .arg(config)
        .env("M365_CLIENT_SECRET", secret)
        .env("DEST_ADMIN_PASSWORD", MASTER_PASSWORD)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

/// Starts `run` [`KILLS`] times, each killed with SIGKILL at a random moment (unless it finished
/// first), then lets one run finish. Returns how many kills landed during a run.
async fn kill_repeatedly_then_finish(config: &Path, secret: &str) -> usize {
    let mut rng = rand::rngs::StdRng::seed_from_u64(SEED);
    let mut killed_mid_run = 0;
    for round in 0..KILLS {
        let mut child = run_command(config, secret).spawn().unwrap();
        let after = Duration::from_millis(rng.random_range(50..900));
        tokio::time::sleep(after).await;
        match child.try_wait().unwrap() {
            Some(status) => {
                // It finished before the kill: later rounds only resume an already complete run.
                assert!(
                    status.success(),
                    "round {round} (seed {SEED:#x}) failed: {status}"
                );
            }
            None => {
                child.kill().unwrap(); // SIGKILL: no destructor, no journal flush, no logout.
                child.wait().unwrap();
                killed_mid_run += 1;
            }
        }
    }
    assert!(
        killed_mid_run >= KILLS / 2,
        "only {killed_mid_run} of {KILLS} kills landed during a run: make the run slower"
    );

    let last = tokio::task::block_in_place(|| run_command(config, secret).output().unwrap());
    assert!(
        last.status.success(),
        "the final run (seed {SEED:#x}) failed: {}",
        String::from_utf8_lossy(&last.stderr)
    );

    killed_mid_run
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_at_random_moments_then_run_leaves_every_message_exactly_once() {
    let (sim, dovecot) = support::tenant_with_dovecot_config(migrator_sim::SimConfig {
        tenant: migrator_sim::TenantSpec {
            users: 3,
            messages_per_user: 60,
            ..migrator_sim::TenantSpec::default()
        },
        latency: Duration::from_millis(15),
        jitter: Duration::from_millis(10),
        ..migrator_sim::SimConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("migrate.toml");
    std::fs::write(
        &config,
        support::source_toml(&sim)
            + &support::dovecot_toml(&dovecot)
            + "[run]\nparallel_mailboxes = 3\n",
    )
    .unwrap();
    let secret = sim.client_secret().to_string();

    let killed = kill_repeatedly_then_finish(&config, &secret).await;

    for user in &sim.tenant().users {
        let actual = support::account_bodies(&dovecot, &user.mail).await;
        assert_exactly_once(user, &actual, killed);
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_at_random_moments_then_run_leaves_every_maildir_message_exactly_once() {
    let sim = migrator_sim::SimServer::start(migrator_sim::SimConfig {
        tenant: migrator_sim::TenantSpec {
            users: 3,
            messages_per_user: 80,
            ..migrator_sim::TenantSpec::default()
        },
        latency: Duration::from_millis(15),
        jitter: Duration::from_millis(10),
        ..migrator_sim::SimConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let config = dir.path().join("migrate.toml");
    std::fs::write(
        &config,
        support::source_toml(&sim)
            + &format!(
                "[destination]\nkind = \"folder\"\npath = {:?}\n\n[run]\nparallel_mailboxes = 3\n",
                out.display().to_string()
            ),
    )
    .unwrap();
    let killed = kill_repeatedly_then_finish(&config, sim.client_secret()).await;

    for user in &sim.tenant().users {
        let actual = maildir_bodies(&out.join(&user.mail));
        assert_exactly_once(user, &actual, killed);
    }
    sim.shutdown().await;
}

/// How many times each message body is delivered (in `cur/` or `new/`) under a Maildir++ tree.
/// Files in `tmp/` are deliveries in progress, which Maildir readers ignore.
fn maildir_bodies(root: &Path) -> HashMap<Vec<u8>, usize> {
    let mut bodies: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if matches!(
                path.parent()
                    .and_then(|p| p.file_name())
                    .and_then(|n| n.to_str()),
                Some("cur" | "new")
            ) {
                *bodies.entry(std::fs::read(&path).unwrap()).or_default() += 1;
            }
        }
    }
    bodies
}

/// Every source message of `user` is in `actual` exactly once, and nothing else is.
fn assert_exactly_once(
    user: &migrator_sim::tenant::User,
    actual: &HashMap<Vec<u8>, usize>,
    killed: usize,
) {
    let mut expected: HashMap<Vec<u8>, usize> = HashMap::new();
    for folder in &user.folders {
        for message in &folder.messages {
            *expected.entry(message.mime.as_ref().to_vec()).or_default() += 1;
        }
    }
    let missing = expected
        .iter()
        .filter(|(body, n)| actual.get(*body) < Some(n))
        .count();
    let duplicated = actual
        .iter()
        .filter(|(body, n)| expected.get(*body).is_some_and(|e| *n > e))
        .count();
    let foreign = actual.keys().filter(|b| !expected.contains_key(*b)).count();
    assert_eq!(
        (missing, duplicated, foreign),
        (0, 0, 0),
        "{}: missing, duplicated and unknown messages after {killed} kills (seed {SEED:#x})",
        user.mail
    );
}
