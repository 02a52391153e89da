//! The hostile mail corpus (`migrator_sim::hostile`) migrated end to end into the local
//! folder destination and into a real Dovecot: nothing panics, each item no destination can
//! hold is one reported failure with a reason, everything else arrives exactly once, and a
//! second run writes nothing.

use crate::support;

use std::collections::HashMap;
use std::path::Path;

use migrator_core::dest::imap::MasterStyle;
use migrator_core::engine::{run, Destination, ImapLogins, RunControl, RunOptions};
use migrator_core::progress::RunSummary;
use migrator_core::secrets::Secret;
use migrator_sim::hostile::{add_hostile_mail, ZERO_BYTE_MESSAGE};
use migrator_sim::{SimConfig, SimServer, TenantSpec};
use support::dovecot::{Dovecot, MASTER_PASSWORD, MASTER_USER};

/// A one-user tenant with a few ordinary messages and the hostile corpus.
async fn hostile_sim() -> SimServer {
    let sim = SimServer::start(SimConfig {
        tenant: TenantSpec {
            users: 1,
            messages_per_user: 6,
            ..TenantSpec::default()
        },
        ..SimConfig::default()
    })
    .await
    .expect("the simulator starts");
    sim.mutate(|t| add_hostile_mail(&mut t.users[0]));
    sim
}

/// One run; the summary and the failed items (`user folder item: reason`).
async fn run_once(
    sim: &SimServer,
    destination: &Destination,
    state: &Path,
) -> (RunSummary, Vec<String>) {
    let failures = support::Failures::default();
    let summary = run(
        &support::source_config(sim),
        &Secret::new(sim.client_secret()),
        destination,
        failures.reporter(),
        RunControl::new(),
        RunOptions {
            state_dir: Some(state.to_path_buf()),
            ..RunOptions::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("the run fails as a whole: {e}"));
    (summary, failures.list())
}

/// The user's messages minus the zero-byte one, which must be a reported failure.
fn user_without_empty(sim: &SimServer) -> migrator_sim::User {
    let mut user = sim.tenant().users[0].clone();
    for folder in &mut user.folders {
        folder.messages.retain(|m| m.id != ZERO_BYTE_MESSAGE);
    }
    user
}

/// Exactly one failure, naming the zero-byte message and saying it is empty.
fn assert_only_the_empty_message_failed(failures: &[String]) {
    assert_eq!(failures.len(), 1, "failed items: {failures:#?}");
    assert!(
        failures[0].contains(ZERO_BYTE_MESSAGE) && failures[0].contains("empty"),
        "the failure names the empty message and says why: {}",
        failures[0]
    );
}

#[tokio::test]
async fn hostile_mail_into_the_local_folder_fails_only_the_empty_message_and_reruns_clean() {
    let sim = hostile_sim().await;
    let out = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let destination = Destination::Folder(out.path().to_path_buf());
    let (_, failures) = run_once(&sim, &destination, state.path()).await;
    assert_only_the_empty_message_failed(&failures);
    let first: HashMap<Vec<u8>, usize> = support::maildir_bodies(out.path());
    support::assert_exactly_once(&user_without_empty(&sim), &first, "in the folder");

    let (again, failures) = run_once(&sim, &destination, state.path()).await;
    assert_eq!(again.totals.messages, 0, "the rerun writes no message");
    assert_only_the_empty_message_failed(&failures);
    assert_eq!(
        support::maildir_bodies(out.path()),
        first,
        "the rerun changes nothing"
    );
}

#[tokio::test]
async fn hostile_mail_into_dovecot_fails_only_the_empty_message_and_reruns_clean() {
    let sim = hostile_sim().await;
    let dovecot = Dovecot::start_with(support::dovecot::Options {
        users: support::tenant_accounts(&sim),
        ..support::dovecot::Options::default()
    });
    let state = tempfile::tempdir().unwrap();
    let destination = Destination::Imap {
        settings: dovecot.tls_settings(),
        logins: ImapLogins::Master {
            master_user: MASTER_USER.into(),
            password: Secret::new(MASTER_PASSWORD),
            style: MasterStyle::SaslAuthzid,
        },
        dav: None,
    };
    let (_, failures) = run_once(&sim, &destination, state.path()).await;
    assert_only_the_empty_message_failed(&failures);
    let user = user_without_empty(&sim);
    let first = support::account_bodies(&dovecot, &user.mail).await;
    support::assert_exactly_once(&user, &first, "in Dovecot");

    let changes = dovecot.mail_changes().len();
    let (again, failures) = run_once(&sim, &destination, state.path()).await;
    assert_eq!(again.totals.messages, 0, "the rerun appends no message");
    assert_only_the_empty_message_failed(&failures);
    assert_eq!(
        dovecot.mail_changes().len(),
        changes,
        "Dovecot logged no change on the rerun"
    );
}
