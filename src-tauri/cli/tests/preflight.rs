//! `m365-migrate run` checks the destination before any data moves: a wrong IMAP port stops
//! it in seconds with one clear message (not after each mailbox's reconnect wait), and
//! `check` prints every destination check with its verdict.

use crate::support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::dovecot::{self, MASTER_PASSWORD};

#[tokio::test(flavor = "multi_thread")]
async fn run_with_a_wrong_imap_port_stops_quickly_and_writes_nothing() {
    let (sim, dovecot) = support::tenant_with_dovecot(1, 3).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("migrate.toml");
    let port = dovecot::free_port();
    let toml = support::dovecot_toml(&dovecot).replace(
        &format!("port = {}\n", dovecot.imaps_port),
        &format!("port = {port}\n"),
    );
    std::fs::write(&config, support::source_toml(&sim) + &toml).unwrap();
    let secret = sim.client_secret().to_string();
    let migrate = |command: &str| {
        let started = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_m365-migrate"))
            .args([command, "--config"])
            .arg(&config)
            .env("M365_CLIENT_SECRET", &secret)
            .env("DEST_ADMIN_PASSWORD", MASTER_PASSWORD)
            .output()
            .unwrap();
        (out, started.elapsed())
    };

    let (run, took) = tokio::task::block_in_place(|| migrate("run"));
    let stderr = String::from_utf8_lossy(&run.stderr);
    // 2: stopped by a fatal error, as for any run that cannot start.
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(took < Duration::from_secs(20), "took {took:?}");
    assert!(
        stderr.contains("the destination is not ready, nothing was migrated")
            && stderr.contains(&format!("127.0.0.1:{port}"))
            && stderr.contains("destination.port"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("error:").count(), 1, "{stderr}");
    assert!(!stderr.contains(MASTER_PASSWORD) && !stderr.contains(&secret));
    assert!(
        dovecot.mail_changes().is_empty(),
        "{:?}",
        dovecot.mail_changes()
    );
    assert!(
        !dir.path().join("m365-migrator-state").exists(),
        "nothing written before the check"
    );

    let (check, took) = tokio::task::block_in_place(|| migrate("check"));
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(2), "{stdout}");
    assert!(took < Duration::from_secs(20), "took {took:?}");
    let blocking: Vec<_> = stdout.lines().filter(|l| l.contains("BLOCKING")).collect();
    assert_eq!(blocking.len(), 1, "{stdout}");
    assert!(
        blocking[0].contains("IMAP") && blocking[0].contains(&format!("127.0.0.1:{port}")),
        "{stdout}"
    );
    assert!(stdout.contains("not ready"), "{stdout}");
}

/// `check` ends with where each migrated domain's MX records point, as the app's cut-over
/// checklist shows them: asked of the DNS server `--dns-server` names (here a responder on
/// 127.0.0.1), sorted by preference.
#[tokio::test(flavor = "multi_thread")]
async fn check_lists_where_each_domain_mx_records_point() {
    use support::dns::{responder, Answer};
    let (sim, dovecot) = support::tenant_with_dovecot(2, 1).await;
    let domain = sim
        .tenant()
        .users
        .iter()
        .find_map(|u| u.mail.rsplit_once('@').map(|(_, d)| d.to_lowercase()))
        .expect("a user with an address");
    let zone_domain: &'static str = Box::leak(domain.clone().into_boxed_str());
    let dns = responder(std::collections::HashMap::from([(
        zone_domain,
        Answer::Mx(vec![
            (20, "backup.example.net"),
            (10, "primary.example.net"),
        ]),
    )]))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("migrate.toml");
    std::fs::write(
        &config,
        support::source_toml(&sim) + &support::dovecot_toml(&dovecot),
    )
    .unwrap();
    let secret = sim.client_secret().to_string();
    let out = tokio::task::block_in_place(|| {
        Command::new(env!("CARGO_BIN_EXE_m365-migrate"))
            .args(["check", "--dns-server", &dns.to_string(), "--config"])
            .arg(&config)
            .env("M365_CLIENT_SECRET", &secret)
            .env("DEST_ADMIN_PASSWORD", MASTER_PASSWORD)
            .output()
            .unwrap()
    });
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mx: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("MX records"))
        .skip(1)
        .map(str::trim)
        .collect();
    assert_eq!(
        mx,
        [format!("{domain:24} primary.example.net, backup.example.net").as_str()],
        "{stdout}"
    );
}
