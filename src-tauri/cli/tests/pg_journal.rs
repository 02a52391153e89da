//! `m365-migrate check`, `run`, `report` with `[journal] url` pointing at a private PostgreSQL:
//! the password only in `M365_MIGRATOR_JOURNAL_PASSWORD`, never in the output or the files.

use crate::support;

use std::process::Command;

#[tokio::test(flavor = "multi_thread")]
async fn check_run_rerun_and_report_on_a_postgres_journal() {
    let pg = support::postgres::Postgres::start();
    let sim = migrator_sim::SimServer::start(migrator_sim::SimConfig {
        tenant: migrator_sim::TenantSpec {
            users: 2,
            messages_per_user: 10,
            ..migrator_sim::TenantSpec::default()
        },
        ..migrator_sim::SimConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("migrate.toml");
    let out_dir = dir.path().join("out");
    std::fs::write(
        &config,
        format!(
            "{}[destination]\nkind = \"folder\"\npath = \"{}\"\n\n[journal]\nurl = \"{}\"\n",
            support::source_toml(&sim),
            out_dir.display(),
            pg.url()
        ),
    )
    .unwrap();
    let secret = sim.client_secret().to_string();
    let migrate = |command: &str, password: &str| {
        Command::new(env!("CARGO_BIN_EXE_m365-migrate"))
            .args([command, "--config"])
            .arg(&config)
            .env("M365_CLIENT_SECRET", &secret)
            .env("M365_MIGRATOR_JOURNAL_PASSWORD", password)
            // Every log line of every crate, so a password logged anywhere shows up below.
            .env("RUST_LOG", "trace")
            .output()
            .unwrap()
    };
    let text = |o: &std::process::Output| {
        format!(
            "{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };

    let wrong = tokio::task::block_in_place(|| migrate("run", "not-the-password-4711"));
    let said = text(&wrong);
    assert_eq!(wrong.status.code(), Some(2), "{said}");
    assert!(said.contains("PostgreSQL journal"), "{said}");
    assert!(!said.contains("not-the-password-4711"), "{said}");
    assert!(
        !out_dir.exists() || support::files_under(&out_dir).is_empty(),
        "nothing moved before the journal opened"
    );

    let check = tokio::task::block_in_place(|| migrate("check", support::postgres::PASSWORD));
    assert!(check.status.success(), "{}", text(&check));
    for round in ["first", "second"] {
        let run = tokio::task::block_in_place(|| migrate("run", support::postgres::PASSWORD));
        assert!(run.status.success(), "{round}: {}", text(&run));
        assert!(
            !text(&run).contains(support::postgres::PASSWORD),
            "{round}: the password was printed or logged"
        );
    }
    assert_eq!(
        pg.psql("SELECT count(*) FROM items WHERE kind = 'mail' AND state = 'done'"),
        "20"
    );
    assert_eq!(
        pg.psql("SELECT count(*) FROM runs WHERE status = 'finished'"),
        "2"
    );
    let report = tokio::task::block_in_place(|| migrate("report", support::postgres::PASSWORD));
    assert!(report.status.success(), "{}", text(&report));
    let state = dir.path().join("m365-migrator-state");
    assert!(
        state.join("report/report.html").is_file(),
        "{}",
        text(&report)
    );
    assert!(!state.join("journal.sqlite").exists(), "no SQLite journal");
    for file in support::files_under(dir.path()) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(support::postgres::PASSWORD),
            "the password is in {}",
            file.display()
        );
    }
}
