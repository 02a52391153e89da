//! `m365-migrate check` and `run` with an IMAP destination, end to end: the simulator as the
//! tenant, a real Dovecot as the destination, secrets only in the environment.

use crate::support;

use std::process::Command;

use migrator_core::dest::imap::{ImapMailbox, MasterStyle};
use support::dovecot::MASTER_PASSWORD;

#[tokio::test(flavor = "multi_thread")]
async fn check_then_run_then_rerun_into_dovecot() {
    let (sim, dovecot) = support::tenant_with_dovecot(2, 15).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("migrate.toml");
    std::fs::write(
        &config,
        support::source_toml(&sim) + &support::dovecot_toml(&dovecot),
    )
    .unwrap();
    let secret = sim.client_secret().to_string();
    let migrate = |command: &str| {
        Command::new(env!("CARGO_BIN_EXE_m365-migrate"))
            .args([command, "--config"])
            .arg(&config)
            .env("M365_CLIENT_SECRET", &secret)
            .env("DEST_ADMIN_PASSWORD", MASTER_PASSWORD)
            // Every log line of every crate, so a secret logged anywhere shows up below.
            .env("RUST_LOG", "trace")
            .output()
            .unwrap()
    };
    // The blocking child processes must not stall the simulator's runtime.
    let plan = tokio::task::block_in_place(|| migrate("plan"));
    let out = String::from_utf8_lossy(&plan.stdout);
    assert!(plan.status.success(), "{out}");
    assert!(
        out.contains("2 users") && out.contains("30 messages"),
        "{out}"
    );
    // Dovecot here listens on 127.0.0.1: the Plan counts its CPU and says so.
    assert!(
        out.contains("the destination runs on this machine: its CPU is counted"),
        "{out}"
    );
    let plan_with = |option: &str| {
        tokio::task::block_in_place(|| {
            Command::new(env!("CARGO_BIN_EXE_m365-migrate"))
                .args(["plan", option, "--config"])
                .arg(&config)
                .env("M365_CLIENT_SECRET", &secret)
                .output()
                .unwrap()
        })
    };
    let json = plan_with("--json");
    let planned: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(planned["users"].as_array().map(Vec::len), Some(2));
    assert_eq!(planned["items"], 30);
    assert!(planned["estimatedSeconds"].as_f64().unwrap() > 0.0);
    // The destination term at an IMAP server's rate: 30 messages x 67,000 bytes at 50 MB/s.
    let destination_term = |plan: &serde_json::Value| plan["estimateTerms"]["destination"].as_f64();
    assert_eq!(destination_term(&planned), Some(30.0 * 67_000.0 / 50e6));
    // The same tenant planned into a local folder: at a local folder's rate, 31 MB/s.
    let folder_dir = tempfile::tempdir().unwrap();
    let folder_config = folder_dir.path().join("migrate.toml");
    std::fs::write(
        &folder_config,
        support::source_toml(&sim)
            + &format!(
                "[destination]\nkind = \"folder\"\npath = {:?}\n",
                folder_dir.path().join("out")
            ),
    )
    .unwrap();
    let into_folder = tokio::task::block_in_place(|| {
        Command::new(env!("CARGO_BIN_EXE_m365-migrate"))
            .args(["plan", "--json", "--config"])
            .arg(&folder_config)
            .env("M365_CLIENT_SECRET", &secret)
            .output()
            .unwrap()
    });
    let into_folder: serde_json::Value = serde_json::from_slice(&into_folder.stdout).unwrap();
    assert_eq!(into_folder["items"], 30);
    assert_eq!(destination_term(&into_folder), Some(30.0 * 67_000.0 / 31e6));
    let counted = |plan: &serde_json::Value| plan["estimateTerms"]["destinationCpuCounted"].clone();
    assert_eq!(counted(&planned), serde_json::json!(true));
    assert_eq!(counted(&into_folder), serde_json::json!(false));
    // What a run does with each mailbox, as the app's Plan shows it: into IMAP, a copy.
    assert!(
        planned["users"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["action"] == serde_json::json!({"kind": "copy"})),
        "{planned}"
    );
    // A plan writes nothing but its counts, kept for the next plan and the run's progress.
    let state: Vec<_> = std::fs::read_dir(dir.path().join("m365-migrator-state"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(state, [migrator_core::engine::COUNTS_FILE]);
    assert_eq!(
        planned["keptCounts"], 2,
        "the second plan reads no mailbox again"
    );
    let refreshed = plan_with("--refresh");
    let out = String::from_utf8_lossy(&refreshed.stdout);
    assert!(refreshed.status.success(), "{out}");
    assert!(out.contains("30 messages"), "{out}");
    assert!(!out.contains("counted by an earlier plan"), "{out}");
    assert!(
        !String::from_utf8_lossy(&plan.stdout).contains("earlier plan"),
        "the first plan counted"
    );
    let again = tokio::task::block_in_place(|| migrate("plan"));
    let out = String::from_utf8_lossy(&again.stdout);
    assert!(
        out.contains("30 messages") && out.contains("2 mailboxes as counted by an earlier plan"),
        "{out}"
    );

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

    let clean = tokio::task::block_in_place(|| migrate("verify"));
    let out = String::from_utf8_lossy(&clean.stdout);
    assert!(clean.status.success(), "{out}");
    assert!(
        out.contains("30 items present, 0 missing at the destination, 0 not migrated"),
        "{out}"
    );

    // A message deleted at the destination behind the migrator's back is found missing.
    let user = sim.tenant().users[0].mail.clone();
    let login = support::dovecot::Dovecot::master(&user, MasterStyle::SaslAuthzid);
    let mut mailbox = ImapMailbox::connect(&dovecot.tls_settings(), &login)
        .await
        .unwrap();
    let uid = mailbox.uids("INBOX").await.unwrap()[0];
    mailbox.delete_message("INBOX", uid).await.unwrap();
    mailbox.logout().await;
    let dirty = tokio::task::block_in_place(|| migrate("verify"));
    let out = String::from_utf8_lossy(&dirty.stdout);
    assert_eq!(dirty.status.code(), Some(1), "{out}");
    assert!(
        out.contains("29 items present, 1 missing at the destination"),
        "{out}"
    );
    assert!(out.contains(&format!("{user} mail \"Inbox\"")), "{out}");

    // Secrets never reach the output, the journal or the report.
    // The whole state folder: the SQLite file, its write-ahead log and the report.
    let mut journal = Vec::new();
    let mut folders = vec![dir.path().join("m365-migrator-state")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else {
                journal.extend(std::fs::read(path).unwrap());
            }
        }
    }
    assert!(
        dir.path()
            .join("m365-migrator-state/report/report.html")
            .is_file(),
        "run writes the report"
    );
    for output in [&check, &plan, &json, &first, &second, &clean, &dirty] {
        let all = [output.stdout.as_slice(), output.stderr.as_slice()].concat();
        let text = String::from_utf8_lossy(&all);
        assert!(!text.contains(&secret) && !text.contains(MASTER_PASSWORD));
    }
    let journal = String::from_utf8_lossy(&journal);
    assert!(!journal.contains(&secret) && !journal.contains(MASTER_PASSWORD));
    sim.shutdown().await;
}

/// Issue 15.4: the CLI's live output named a failed message by its Graph id and the server's
/// words; it names it by subject, folder as users see it, date and size, with the report's
/// plain reason and what to do.
#[tokio::test(flavor = "multi_thread")]
async fn the_live_output_names_a_refused_message_by_subject_and_gives_the_plain_reason() {
    let sim = migrator_sim::SimServer::start(migrator_sim::SimConfig {
        tenant: migrator_sim::TenantSpec {
            users: 1,
            messages_per_user: 6,
            ..migrator_sim::TenantSpec::default()
        },
        ..migrator_sim::SimConfig::default()
    })
    .await
    .unwrap();
    let user = sim.tenant().users[0].clone();
    let received = time::OffsetDateTime::from_unix_timestamp(1_709_287_200).unwrap();
    let place = (user.id.as_str(), user.folders[0].id.as_str());
    let (big, limit_kib) = support::too_big_message(&sim, "AAMkScans", "Scans of the contract");
    let message = migrator_sim::Message::from_mime("AAMkScans", big, received);
    assert!(sim.add_message(place.0, place.1, message));
    let dovecot = support::dovecot::Dovecot::start_with(support::dovecot::Options {
        users: support::tenant_accounts(&sim),
        max_mail_kib: Some(limit_kib),
        ..support::dovecot::Options::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("migrate.toml");
    std::fs::write(
        &config,
        support::source_toml(&sim) + &support::dovecot_toml(&dovecot),
    )
    .unwrap();
    let run = tokio::task::block_in_place(|| {
        Command::new(env!("CARGO_BIN_EXE_m365-migrate"))
            .args(["run", "--config"])
            .arg(&config)
            .env("M365_CLIENT_SECRET", sim.client_secret())
            .env("DEST_ADMIN_PASSWORD", MASTER_PASSWORD)
            .output()
            .unwrap()
    });
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(
        run.status.code(),
        Some(1),
        "finished with a failed item: {stderr}"
    );
    let line = stderr
        .lines()
        .find(|l| l.starts_with("failed: "))
        .unwrap_or_else(|| panic!("no failure line: {stderr}"));
    assert!(
        line.starts_with(&format!(
            "failed: {} in Inbox: \"Scans of the contract\" (2024-03-01T10:00:00Z, ",
            user.mail
        )) && line.contains(": The item is larger than the destination accepts. Raise the destination's message size limit"),
        "{line}"
    );
    assert!(
        !line.contains("AAMkScans"),
        "named by subject, not by id: {line}"
    );
}
