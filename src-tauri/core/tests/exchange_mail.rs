//! Exchange Online as it really is, for mail (issue 20): expired delta state answered with
//! any documented code, messages Graph cannot export as MIME, hidden system folders, and
//! messages moved away and back between passes. Each test is named after the bug it pins.

use crate::support;

use migrator_core::engine::{run_to_folder_with, RunControl, RunOptions};
use migrator_core::graph::PacerSettings;
use migrator_core::progress::RunSummary;
use migrator_core::secrets::Secret;
use migrator_sim::{DeltaExpiry, SimConfig, SimServer, TenantSpec};

/// Pacer settings that retry at once: the simulator answers without delay, and a test must
/// not wait out real backoffs.
fn quick_pacer() -> PacerSettings {
    PacerSettings {
        min_backoff: std::time::Duration::from_millis(1),
        max_backoff: std::time::Duration::from_millis(5),
        ..PacerSettings::default()
    }
}

/// One mailbox into a local folder, journaled in `out/.state`.
async fn run_folder(
    sim: &SimServer,
    out: &std::path::Path,
    failures: &support::Failures,
    options: RunOptions,
) -> RunSummary {
    let options = RunOptions {
        state_dir: Some(out.join(".state")),
        pacer: quick_pacer(),
        ..options
    };
    run_to_folder_with(
        &support::source_config(sim),
        &Secret::new(sim.client_secret()),
        out,
        failures.reporter(),
        RunControl::new(),
        options,
    )
    .await
    .expect("the run completes")
}

#[tokio::test]
async fn regression_expired_delta_state_answered_400_or_with_another_code_restarts_the_round() {
    for expiry in DeltaExpiry::ALL {
        let sim = SimServer::start(SimConfig {
            tenant: TenantSpec {
                users: 1,
                messages_per_user: 30,
                ..TenantSpec::default()
            },
            delta_expiry: expiry,
            ..SimConfig::default()
        })
        .await
        .unwrap();
        let out = tempfile::tempdir().unwrap();
        let failures = support::Failures::default();
        let first = run_folder(&sim, out.path(), &failures, RunOptions::default()).await;
        assert_eq!(first.totals.failed, 0, "{expiry:?}: {:?}", failures.list());

        let user = sim.tenant().users[0].clone();
        let added = migrator_sim::sample_message(&user, 4711, time::OffsetDateTime::now_utc());
        assert!(sim.add_message(&user.id, "inbox", added.clone()));
        assert!(sim.add_contact(&user.id, None, migrator_sim::sample_contact(4711)));
        sim.expire_delta_tokens();
        let log_mark = sim.requests().len();
        let second = run_folder(&sim, out.path(), &failures, RunOptions::default()).await;
        assert_eq!(
            (
                second.totals.failed,
                second.totals.messages,
                second.totals.contacts
            ),
            (0, 1, 1),
            "{expiry:?}: the new message and contact arrive, nothing fails: {:?}",
            failures.list()
        );
        let refused = sim.requests()[log_mark..]
            .iter()
            .filter(|r| r.path_and_query.contains("$deltatoken=") && r.status >= 400)
            .count();
        assert!(refused > 0, "{expiry:?}: the stored links were refused");
        let root = out.path().join(user.mail.to_lowercase());
        support::assert_exactly_once(
            &sim.tenant().users[0],
            &support::maildir_bodies(&root),
            &format!("after a resync answered {expiry:?}"),
        );

        // The links of the full rounds were stored: a quiet pass follows them.
        let log_mark = sim.requests().len();
        let third = run_folder(&sim, out.path(), &failures, RunOptions::default()).await;
        assert_eq!((third.totals.failed, third.totals.messages), (0, 0));
        assert!(
            sim.requests()[log_mark..]
                .iter()
                .filter(|r| r.path_and_query.contains("/messages/delta"))
                .all(|r| r.path_and_query.contains("$deltatoken=") && r.status == 200),
            "{expiry:?}: every folder follows its new link"
        );
    }
}
