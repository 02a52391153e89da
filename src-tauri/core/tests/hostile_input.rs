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
use migrator_sim::hostile::{
    add_hostile_groupware, add_hostile_mail, add_huge_message, add_many_messages, BARE_LF_MESSAGE,
    HUGE_PHOTO_CONTACT, UNKNOWN_ZONE_EVENT, ZERO_BYTE_MESSAGE,
};
use migrator_sim::{Faults, SimConfig, SimServer, TenantSpec};
use support::dovecot::{Dovecot, MASTER_PASSWORD, MASTER_USER};

/// A one-user tenant with a few ordinary messages and the hostile corpus, whose pages each
/// repeat an item already returned (a folder of 520 messages makes the message list span
/// two pages).
async fn hostile_sim() -> SimServer {
    let sim = SimServer::start(SimConfig {
        tenant: TenantSpec {
            users: 1,
            messages_per_user: 6,
            ..TenantSpec::default()
        },
        faults: Faults {
            repeat_page_item: true,
            ..Faults::default()
        },
        ..SimConfig::default()
    })
    .await
    .expect("the simulator starts");
    sim.mutate(|t| {
        add_hostile_mail(&mut t.users[0]);
        add_hostile_groupware(&mut t.users[0]);
        add_many_messages(&mut t.users[0], 520);
    });
    sim
}

/// The message list of the "Many" folder was read in more than one page, so the simulator
/// repeated an item (`Faults::repeat_page_item`).
fn assert_a_page_repeated_an_item(sim: &SimServer) {
    let next_pages = sim
        .requests()
        .iter()
        .filter(|r| {
            r.path_and_query.contains("/messages") && r.path_and_query.contains("skiptoken")
        })
        .count();
    assert!(next_pages > 0, "no message list needed a second page");
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

/// Every file with `extension` under `dir`, with its text.
fn texts(dir: &Path, extension: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension() == Some(extension.as_ref()) {
                found.push(std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    found
}

/// The documented repairs of the hostile groupware: the contact whose photo is over the
/// 4 MiB cap arrives without it, the event in an unknown zone arrives with its wall-clock
/// times read as UTC; every contact and event arrives once.
fn assert_groupware_repaired(sim: &SimServer, user_dir: &Path) {
    let user = &sim.tenant().users[0];
    let huge = user
        .contact_folders
        .iter()
        .flat_map(|f| &f.contacts)
        .find(|c| c.id == HUGE_PHOTO_CONTACT)
        .expect("the corpus has the huge-photo contact");
    let cards = texts(&user_dir.join("contacts"), "vcf");
    let contacts: usize = user.contact_folders.iter().map(|f| f.contacts.len()).sum();
    assert_eq!(cards.len(), contacts, "every contact arrives once");
    let card = cards
        .iter()
        .find(|c| c.contains(&huge.display_name))
        .expect("the huge-photo contact arrives");
    assert!(
        !card.contains("PHOTO"),
        "its photo is left out: {card:.300}"
    );

    let events = texts(&user_dir.join("calendars"), "ics");
    let count: usize = user.calendars.iter().map(|c| c.events.len()).sum();
    assert_eq!(events.len(), count, "every event arrives once");
    let mars = events
        .iter()
        .find(|e| e.contains("SUMMARY:Meeting on Mars"))
        .unwrap_or_else(|| panic!("the event {UNKNOWN_ZONE_EVENT} arrives"));
    assert!(
        mars.contains("DTSTART:20240429T090000Z"),
        "read as UTC: {mars}"
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
    assert_groupware_repaired(&sim, &out.path().join(&sim.tenant().users[0].mail));
    assert_a_page_repeated_an_item(&sim);

    let (again, failures) = run_once(&sim, &destination, state.path()).await;
    assert_eq!(again.totals.messages, 0, "the rerun writes no message");
    assert_only_the_empty_message_failed(&failures);
    assert_eq!(
        support::maildir_bodies(out.path()),
        first,
        "the rerun changes nothing"
    );
}

/// Dovecot refuses the 300-character name ("Mailbox name too long") and the deep tree
/// below its own path limit (level 29 with its Maildir++ storage): each refused folder is one
/// failure with the server's reason or naming its failed parent (not every ancestor's reason:
/// a deep tree would repeat them at each level), besides the empty message. Returns the
/// display names of the refused folders.
fn assert_refused_folders_are_reported(failures: &[String]) -> Vec<String> {
    let (folders, items): (Vec<&String>, Vec<&String>) =
        failures.iter().partition(|f| f.contains(" (folder): "));
    assert_only_the_empty_message_failed(&items.into_iter().cloned().collect::<Vec<_>>());
    let mut refused = Vec::new();
    for failure in folders {
        // The path appears three times at most (folder, its path, its parent's): linear in depth.
        assert!(failure.len() < 4_000, "a short reason: {failure}");
        let path = failure
            .split_once(' ')
            .and_then(|(_, rest)| rest.split_once(" (folder): "))
            .map(|(path, _)| path)
            .unwrap_or_default();
        let name = path.rsplit('/').next().unwrap_or_default().to_string();
        if name.starts_with("level ") {
            assert!(
                failure.contains("Not found") || failure.contains("its parent folder level"),
                "{failure}"
            );
        } else {
            assert!(failure.contains("Mailbox name too long"), "{failure}");
        }
        refused.push(name);
    }
    assert!(
        refused.iter().any(|n| n == "level 99") && refused.len() < 100,
        "the deepest folders are refused, the shallow ones created: {refused:?}"
    );
    refused.sort();
    refused
}

#[tokio::test]
async fn hostile_mail_into_dovecot_reports_refused_folders_and_reruns_clean() {
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
    let refused = assert_refused_folders_are_reported(&failures);
    let mut user = user_without_empty(&sim);
    user.folders.retain(|f| !refused.contains(&f.display_name));
    let mut first = support::account_bodies(&dovecot, &user.mail).await;
    // Dovecot hands a bare-LF message back with CRLF line ends (IMAP's, RFC 3501 §4.3) and its
    // NUL byte as 0x80 (IMAP text has no NUL, RFC 3501 §4.3): count that copy as the source's
    // bytes, once, when nothing else changed.
    let bare_lf = user
        .folders
        .iter()
        .flat_map(|f| &f.messages)
        .find(|m| m.id == BARE_LF_MESSAGE)
        .map(|m| m.mime.as_ref().to_vec())
        .expect("the corpus has a bare-LF message");
    let as_crlf: Vec<u8> = bare_lf
        .iter()
        .flat_map(|b| match b {
            b'\n' => vec![b'\r', b'\n'],
            0 => vec![0x80],
            b => vec![*b],
        })
        .collect();
    let stored = first.remove(&as_crlf);
    assert_eq!(
        stored,
        Some(1),
        "the bare-LF message is stored once, with CRLF and no NUL"
    );
    first.insert(bare_lf, 1);
    support::assert_exactly_once(&user, &first, "in Dovecot");
    assert_a_page_repeated_an_item(&sim);

    let changes = dovecot.mail_changes().len();
    let (again, failures) = run_once(&sim, &destination, state.path()).await;
    assert_eq!(again.totals.messages, 0, "the rerun appends no message");
    assert_eq!(assert_refused_folders_are_reported(&failures), refused);
    assert_eq!(
        dovecot.mail_changes().len(),
        changes,
        "Dovecot logged no change on the rerun"
    );
}

/// Long test (`cargo nextest run -p migrator-core --run-ignored only -E 'test(/150_mb/)'`):
/// a 150 MB message arrives in the local folder byte for byte, once.
#[tokio::test]
#[ignore = "long: a 150 MB message"]
async fn a_150_mb_message_arrives_in_the_local_folder_byte_for_byte() {
    let sim = SimServer::start(SimConfig {
        tenant: TenantSpec {
            users: 1,
            messages_per_user: 1,
            ..TenantSpec::default()
        },
        ..SimConfig::default()
    })
    .await
    .expect("the simulator starts");
    sim.mutate(|t| add_huge_message(&mut t.users[0], 150 * 1024 * 1024));
    let out = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let destination = Destination::Folder(out.path().to_path_buf());
    let (_, failures) = run_once(&sim, &destination, state.path()).await;
    assert_eq!(failures, Vec::<String>::new());
    let bodies = support::maildir_bodies(out.path());
    support::assert_exactly_once(&sim.tenant().users[0], &bodies, "in the folder");
}
