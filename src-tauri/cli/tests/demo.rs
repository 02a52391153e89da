//! `m365-migrate demo` end to end, as a user runs it.

use std::path::Path;
use std::process::Command;

fn migrate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_m365-migrate"))
}

/// Files under `dir` for which `wanted` is true.
fn count_files(dir: &Path, wanted: impl Fn(&Path) -> bool) -> usize {
    crate::support::files_under(dir)
        .iter()
        .filter(|p| wanted(p))
        .count()
}

fn message_files(dir: &Path) -> usize {
    count_files(dir, |p| {
        p.parent().and_then(|p| p.file_name()) == Some("cur".as_ref())
    })
}

fn groupware_files(dir: &Path, extension: &str) -> usize {
    count_files(dir, |p| p.extension() == Some(extension.as_ref()))
}

#[test]
fn demo_writes_maildirs_and_a_rerun_writes_nothing() {
    let out = tempfile::tempdir().unwrap();
    let run = || {
        migrate()
            .args(["demo", "--users", "2", "--messages", "25", "--out"])
            .arg(out.path())
            .output()
            .unwrap()
    };
    let first = run();
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.status.success(),
        "exit {:?}: {stdout} {}",
        first.status,
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(stdout.contains("Migrated 2 users"), "{stdout}");
    assert!(stdout.contains("50 messages"), "{stdout}");
    assert!(stdout.contains("0 failed"), "{stdout}");
    assert_eq!(message_files(out.path()), 50);
    let users: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert_eq!(users.len(), 2, "one folder per user: {users:?}");
    assert!(out.path().join(".m365-migrator/journal.sqlite").exists());
    let report: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out.path().join(".m365-migrator/report/report.json")).unwrap(),
    )
    .unwrap();
    let summary = &report["runs"][0]["summary"]["totals"];
    let groupware: Vec<u64> = ["events", "contacts", "tasks"]
        .iter()
        .map(|k| summary[k].as_u64().unwrap())
        .collect();
    assert!(groupware.iter().all(|n| *n > 0), "{summary}");
    let items = 50 + groupware.iter().sum::<u64>();
    assert_eq!(report["totals"]["done"], items, "{report}");
    assert_eq!(
        groupware_files(out.path(), "ics"),
        (groupware[0] + groupware[2]) as usize,
        "one .ics per event series and per task"
    );
    assert_eq!(groupware_files(out.path(), "vcf"), groupware[1] as usize);
    assert_eq!(report["totals"]["failed"], 0);
    assert_eq!(report["users"].as_array().map(Vec::len), Some(2));
    // Issue 15: what each mailbox is and what the migration made of it.
    for user in report["users"].as_array().into_iter().flatten() {
        assert_eq!(
            (&user["kind"], &user["destination"]),
            (&"user".into(), &"local folder".into()),
            "{user}"
        );
    }
    let html =
        std::fs::read_to_string(out.path().join(".m365-migrator/report/report.html")).unwrap();
    assert!(html.contains(&format!("{items} items migrated")), "{html}");

    let second = run();
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert!(second.status.success());
    assert!(stdout.contains(" 0 messages"), "{stdout}");
    assert!(
        stdout.contains(&format!("{items} already present")),
        "{stdout}"
    );
    assert_eq!(message_files(out.path()), 50);
    assert_eq!(
        groupware_files(out.path(), "ics") + groupware_files(out.path(), "vcf"),
        groupware.iter().sum::<u64>() as usize
    );
}

#[test]
fn quiet_prints_only_the_summary_and_help_documents_exit_codes() {
    let out = tempfile::tempdir().unwrap();
    let run = migrate()
        .args([
            "--quiet",
            "demo",
            "--users",
            "1",
            "--messages",
            "3",
            "--out",
        ])
        .arg(out.path())
        .output()
        .unwrap();
    assert!(run.status.success());
    assert!(
        run.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&run.stdout).lines().count(), 1);

    let help = migrate().arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(help.status.success());
    assert!(text.contains("Exit codes: 0 success, 1"), "{text}");
    assert!(text.contains("demo"), "{text}");
}

#[test]
fn an_unwritable_output_folder_is_a_clear_fatal_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let run = migrate()
        .args(["demo", "--users", "1", "--messages", "1", "--out"])
        .arg(file.join("sub"))
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("cannot create the state folder") && stderr.contains("a-file/sub"),
        "{stderr}"
    );
}

#[test]
fn run_reports_config_and_secret_problems_before_any_data_moves() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("migrate.toml");
    std::fs::write(
        &config,
        "[source]\ntenant_id = \"contoso.com\"\nclient_id = \"00000000-0000-0000-0000-000000000001\"\n\
         [destination]\nkind = \"folder\"\npath = \"out\"\nparallel = 3\n",
    )
    .unwrap();
    let run = migrate()
        .args(["run", "--config"])
        .arg(&config)
        .env_remove("M365_CLIENT_SECRET")
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("line 7") && stderr.contains("parallel"),
        "{stderr}"
    );

    std::fs::write(
        &config,
        "[source]\ntenant_id = \"contoso.com\"\nclient_id = \"00000000-0000-0000-0000-000000000001\"\n\
         [destination]\nkind = \"folder\"\npath = \"out\"\n",
    )
    .unwrap();
    let run = migrate()
        .args(["run", "--config"])
        .arg(&config)
        .env_remove("M365_CLIENT_SECRET")
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("M365_CLIENT_SECRET"), "{stderr}");
    assert!(!dir.path().join("out").exists());
}

#[test]
fn report_reads_the_journal_of_a_configuration_without_signing_in() {
    let out = tempfile::tempdir().unwrap();
    let demo = migrate()
        .args(["-q", "demo", "--users", "1", "--messages", "4", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    assert!(demo.status.success());
    let config = out.path().join("migrate.toml");
    let write_config = |state: &Path| {
        std::fs::write(
            &config,
            format!(
                "[source]\ntenant_id = \"contoso.com\"\nclient_id = \"00000000-0000-0000-0000-000000000001\"\n\
                 [destination]\nkind = \"folder\"\npath = \"out\"\n[run]\nstate_dir = {:?}\n",
                state.display().to_string()
            ),
        )
        .unwrap()
    };

    write_config(&out.path().join(".m365-migrator"));
    let dest = out.path().join("the-report");
    let report = migrate()
        .args(["report", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(&dest)
        .env_remove("M365_CLIENT_SECRET")
        .output()
        .unwrap();
    assert!(
        report.status.success(),
        "{}",
        String::from_utf8_lossy(&report.stderr)
    );
    let users = std::fs::read_to_string(dest.join("users.csv")).unwrap();
    assert_eq!(users.lines().count(), 2, "{users}");
    let row: Vec<&str> = users.lines().nth(1).unwrap().split(',').collect();
    assert_eq!((row[1], row[3], row[4]), ("finished", "0", "0"), "{users}");
    assert!(
        row[2].parse::<u64>().unwrap() > 4,
        "4 messages and the groupware: {users}"
    );
    for file in ["report.json", "report.html", "folders.csv", "failures.csv"] {
        assert!(dest.join(file).is_file(), "{file} missing");
    }

    write_config(&out.path().join("nothing-here"));
    let missing = migrate()
        .args(["report", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("no journal in"), "{stderr}");
    assert!(
        !out.path().join("nothing-here").exists(),
        "report must not create state"
    );
}

/// Issue 16: totals grew as mailboxes started, so the progress covered only the started
/// ones. Without a terminal, each finished mailbox is followed by the whole run's tally, every
/// mailbox counted from the start.
#[test]
fn progress_lines_count_every_mailbox_from_the_start() {
    let out = tempfile::tempdir().unwrap();
    let run = migrate()
        .args(["demo", "--users", "10", "--messages", "3", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    let tallies: Vec<(u32, u32, u32, u32)> = stderr
        .lines()
        .filter_map(|l| {
            // `3 of 10 mailboxes done, 6 running, 1 queued; 120 of 300 items; ETA 2 s`
            let (done, rest) = l.split_once(" of 10 mailboxes done, ")?;
            let (running, rest) = rest.split_once(" running, ")?;
            let (queued, _) = rest.split_once(" queued")?;
            Some((
                done.parse().ok()?,
                running.parse().ok()?,
                queued.parse().ok()?,
                10,
            ))
        })
        .collect();
    let done: Vec<u32> = tallies.iter().map(|t| t.0).collect();
    assert_eq!(done, (1..=10).collect::<Vec<_>>(), "{stderr}");
    for (done, running, queued, total) in &tallies {
        assert_eq!(done + running + queued, *total, "{stderr}");
    }
    // 8 mailboxes at a time: when the first is done, at least two have not started.
    assert!(tallies[0].2 >= 2, "{stderr}");
    let last = stderr
        .lines()
        .rfind(|l| l.contains("mailboxes done"))
        .unwrap_or_default();
    assert!(
        last.starts_with("10 of 10 mailboxes done, 0 running, 0 queued; "),
        "{last}"
    );
}
