//! One run per state folder: a second run started while one goes on fails at once with the
//! `busy` error and writes nothing; the first completes with every message exactly once, and
//! a run after it proceeds.

use crate::support;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use migrator_core::engine::{run_to_folder_with, Report, RunControl, RunOptions};
use migrator_core::journal::Journal;
use migrator_core::progress::{ProgressEvent, Reporter};
use migrator_core::secrets::Secret;
use migrator_sim::{SimConfig, SimServer};

fn options(state: &Path) -> RunOptions {
    RunOptions {
        state_dir: Some(state.to_path_buf()),
        ..RunOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_run_on_a_busy_state_folder_fails_at_once_and_the_first_writes_each_message_once()
{
    let sim = SimServer::start(SimConfig {
        tenant: migrator_sim::TenantSpec {
            users: 2,
            messages_per_user: 60,
            ..migrator_sim::TenantSpec::default()
        },
        // Slow enough that the first run is still going when the second starts.
        latency: Duration::from_millis(20),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (out, state) = (dir.path().join("out"), dir.path().join("state"));
    let (source, secret) = (
        support::source_config(&sim),
        Secret::new(sim.client_secret()),
    );

    // The first run signals its first written item: it holds the folder and is mid-flight.
    let (first_item, mut first_item_rx) = tokio::sync::mpsc::unbounded_channel();
    let first_reporter: Arc<dyn Reporter> = Arc::new(move |e: ProgressEvent| {
        if matches!(e, ProgressEvent::ItemDone { .. }) {
            let _ = first_item.send(());
        }
    });
    let first = tokio::spawn({
        let (source, secret, out, state) =
            (source.clone(), secret.clone(), out.clone(), state.clone());
        async move {
            run_to_folder_with(
                &source,
                &secret,
                &out,
                first_reporter,
                RunControl::new(),
                options(&state),
            )
            .await
        }
    });
    first_item_rx
        .recv()
        .await
        .expect("the first run writes an item");

    let second_events = Arc::new(Mutex::new(Vec::new()));
    let second_reporter: Arc<dyn Reporter> = Arc::new({
        let seen = second_events.clone();
        move |e: ProgressEvent| seen.lock().unwrap().push(e)
    });
    let second = run_to_folder_with(
        &source,
        &secret,
        &out,
        second_reporter,
        RunControl::new(),
        options(&state),
    )
    .await;
    assert!(
        !first.is_finished(),
        "the first run ended before the second started: make the simulator slower"
    );
    let error = match second {
        Ok(summary) => panic!("the second run went on: {summary:?}"),
        Err(e) => e,
    };
    assert_eq!(error.code(), "busy", "{error}");
    let message = error.to_string();
    assert!(
        message.contains(&state.display().to_string())
            && message.contains(&format!("process {}", std::process::id())),
        "names the state folder and the holder: {message}"
    );
    assert!(
        second_events.lock().unwrap().is_empty(),
        "the second run reported progress: {:?}",
        second_events.lock().unwrap()
    );

    // Readers (report, verify, the app's start screen) still read the journal meanwhile.
    let journal = Journal::open(&state).expect("the journal opens while a run holds it");
    Report::from_journal(&journal).expect("a report while a run holds the state folder");
    drop(journal);

    let summary = first
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("the first run failed: {e}"));
    assert_eq!(summary.totals.failed, 0, "{summary:?}");
    for user in &sim.tenant().users {
        let actual = support::maildir_bodies(&out.join(&user.mail));
        support::assert_exactly_once(user, &actual, "after a refused concurrent run");
    }

    // The lock ended with the first run: a new one proceeds, and finds nothing to write.
    let again = run_to_folder_with(
        &source,
        &secret,
        &out,
        Arc::new(migrator_core::progress::NullReporter),
        RunControl::new(),
        options(&state),
    )
    .await
    .unwrap_or_else(|e| panic!("the run after the first failed: {e}"));
    assert_eq!(support::written(&again), 0, "{again:?}");
    assert_eq!(again.totals.failed, 0, "{again:?}");
    for user in &sim.tenant().users {
        let actual = support::maildir_bodies(&out.join(&user.mail));
        support::assert_exactly_once(user, &actual, "after the incremental run");
    }
    sim.shutdown().await;
}
