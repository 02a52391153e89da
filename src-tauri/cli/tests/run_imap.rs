//! `m365-migrate check` and `run` with an IMAP destination, end to end: the simulator as the
//! tenant, a real Dovecot as the destination, secrets only in the environment.

#[path = "../../core/tests/support/mod.rs"]
mod support;

use std::process::Command;

use support::dovecot::{MASTER_PASSWORD, MASTER_USER};

#[tokio::test(flavor = "multi_thread")]
async fn check_then_run_then_rerun_into_dovecot() {
    let (sim, dovecot) = support::tenant_with_dovecot(2, 15).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("migrate.toml");
    std::fs::write(
        &config,
        format!(
            "[source]\ntenant_id = \"{}\"\nclient_id = \"{}\"\nlogin_url = \"{url}\"\ngraph_url = \"{url}\"\n\n\
             [destination]\nkind = \"imap\"\nhost = \"127.0.0.1\"\nport = {}\nca_file = \"{}\"\nmaster_user = \"{MASTER_USER}\"\n",
            sim.tenant_id(),
            sim.client_id(),
            dovecot.imaps_port,
            dovecot.ca_file.display(),
            url = sim.url(),
        ),
    )
    .unwrap();
    let secret = sim.client_secret().to_string();
    let migrate = |command: &str| {
        Command::new(env!("CARGO_BIN_EXE_m365-migrate"))
            .args([command, "--config"])
            .arg(&config)
            .env("M365_CLIENT_SECRET", &secret)
            .env("DEST_ADMIN_PASSWORD", MASTER_PASSWORD)
            .output()
            .unwrap()
    };
    // The blocking child processes must not stall the simulator's runtime.
    let check = tokio::task::block_in_place(|| migrate("check"));
    let out = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(out.contains("granted  Mail.Read"), "{out}");
    assert!(out.contains("ready to run"), "{out}");

    let first = tokio::task::block_in_place(|| migrate("run"));
    let out = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(
        out.contains("Migrated 2 users") && out.contains("30 messages"),
        "{out}"
    );
    assert!(out.contains("0 failed"), "{out}");
    assert!(dir
        .path()
        .join("m365-migrator-state/journal.sqlite")
        .exists());

    let second = tokio::task::block_in_place(|| migrate("run"));
    let out = String::from_utf8_lossy(&second.stdout);
    assert!(second.status.success());
    assert!(
        // Incremental: only changes are read (delta), and nothing changed.
        out.contains(" 0 messages") && out.contains(" 0 already present"),
        "{out}"
    );

    // Secrets never reach the output or the journal.
    // The whole state folder (the SQLite file and its write-ahead log).
    let mut journal = Vec::new();
    for entry in std::fs::read_dir(dir.path().join("m365-migrator-state")).unwrap() {
        journal.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    for output in [&check, &first, &second] {
        let all = [output.stdout.as_slice(), output.stderr.as_slice()].concat();
        let text = String::from_utf8_lossy(&all);
        assert!(!text.contains(&secret) && !text.contains(MASTER_PASSWORD));
    }
    let journal = String::from_utf8_lossy(&journal);
    assert!(!journal.contains(&secret) && !journal.contains(MASTER_PASSWORD));
    sim.shutdown().await;
}
