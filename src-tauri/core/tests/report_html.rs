//! The report as an administrator opens it (issue 15.2): report.html from a real run against
//! the simulator into a real Dovecot, opened in Debian's Chromium through ui/tests/harness.mjs
//! (`ui/tests/report-page.mjs`). The run leaves folder names in Czech, Japanese and emoji, a
//! message the server refuses, and an interrupted run before it; the page must show them as
//! people read them, draw both charts, and trigger no Content-Security-Policy violation. The
//! screenshot is the README's `docs/screenshots/report-html.png`.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use migrator_core::engine::report::Report;
use migrator_core::engine::{run, RunControl, RunOptions};
use migrator_core::journal::Journal;
use migrator_core::progress::NullReporter;
use migrator_core::secrets::Secret;
use support::dovecot::{Dovecot, Options};

/// Folders as typed at the source.
const FOLDERS: [&str; 3] = ["Přílohy a účty", "会議メモ", "Party 🎉"];
/// The subject of the message the destination refuses.
const REFUSED: &str = "Invoice scans, too big to migrate";

/// The id of the `i`th folder of [`FOLDERS`].
fn folder_id(i: usize) -> String {
    format!("AAMkAGI2TG93AAAuAAAAAAAreportfolder{i:02}AAA=")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// What `ui/tests/report-page.mjs` saw.
#[derive(serde::Deserialize, Debug)]
struct Seen {
    missing: Vec<String>,
    charts: Vec<String>,
    violations: Vec<String>,
}

/// Opens `html` in Chromium, saves the page to `shot`, and says which of `texts` are not
/// visible, which charts are, and the CSP violations. Node, ui/node_modules and Chromium are
/// required: a missing one fails the test and says how to install it.
fn open_in_chromium(html: &Path, shot: &Path, texts: &[&str]) -> Seen {
    let ui = repo().join("ui");
    assert!(
        ui.join("node_modules/playwright-core").exists(),
        "ui/node_modules is missing: run `npm ci` in ui/ (make test installs it)"
    );
    let out = Command::new("node")
        .current_dir(&ui)
        .arg("tests/report-page.mjs")
        .arg(html)
        .arg(shot)
        .args(texts)
        .output()
        .unwrap_or_else(|e| panic!("cannot run node (apt-get install nodejs): {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "report-page.mjs failed ({}): {stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn report_html_shows_names_an_interrupted_run_failures_and_charts_in_chromium() {
    let sim = migrator_sim::SimServer::start(migrator_sim::SimConfig {
        tenant: migrator_sim::TenantSpec {
            users: 2,
            messages_per_user: 8,
            ..migrator_sim::TenantSpec::default()
        },
        ..migrator_sim::SimConfig::default()
    })
    .await
    .expect("the simulator starts");
    let user = sim.tenant().users[0].clone();
    let at = time::OffsetDateTime::now_utc();
    sim.mutate(|t| {
        for (i, name) in FOLDERS.iter().enumerate() {
            let messages = vec![
                migrator_sim::sample_message(&user, 7000 + i as u64, at),
                migrator_sim::sample_message(&user, 7100 + i as u64, at),
            ];
            t.users[0].folders.push(migrator_sim::MailFolder {
                id: folder_id(i),
                parent_id: None,
                display_name: name.to_string(),
                well_known_name: None,
                is_hidden: false,
                is_search_folder: false,
                messages,
            });
        }
    });
    let refused = folder_id(0);
    let place = (user.id.as_str(), refused.as_str());
    let (big, limit_kib) = support::too_big_message(&sim, "invoices", REFUSED);
    let message = migrator_sim::Message::from_mime("invoices", big, at);
    assert!(sim.add_message(place.0, place.1, message));
    let dovecot = Dovecot::start_with(Options {
        users: support::tenant_accounts(&sim),
        max_mail_kib: Some(limit_kib),
        ..Options::default()
    });
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().join("state");
    // A run whose process was killed: recorded as running, its lock released with it.
    Journal::open(&state_dir).unwrap().begin_run().unwrap();

    let summary = run(
        &support::source_config(&sim),
        &Secret::new(sim.client_secret()),
        &support::dovecot::master_destination(dovecot.tls_settings()),
        Arc::new(NullReporter),
        RunControl::new(),
        RunOptions {
            state_dir: Some(state_dir.clone()),
            ..RunOptions::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("run failed: {e:?}\n{}", dovecot.log()));
    assert_eq!(summary.totals.failed, 1, "{}", dovecot.log());

    let report = Report::from_journal(&Journal::open(&state_dir).unwrap()).unwrap();
    let out = repo().join("artifacts/report-html");
    let files = report.write(&out).unwrap();
    let shots = repo().join("docs/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let mut texts = FOLDERS.to_vec();
    texts.extend([
        "interrupted",
        "finished",
        REFUSED,
        "The item is larger than the destination accepts.",
        "Raise the destination's message size limit",
        "merged into an existing account",
        user.mail.as_str(),
    ]);
    let seen = open_in_chromium(&files.html, &shots.join("report-html.png"), &texts);
    assert_eq!(seen.missing, Vec::<String>::new(), "not visible: {seen:?}");
    for chart in ["Items migrated per user", "Items migrated per minute"] {
        assert!(seen.charts.iter().any(|c| c == chart), "{chart}: {seen:?}");
    }
    assert_eq!(seen.violations, Vec::<String>::new(), "CSP: {seen:?}");
}
