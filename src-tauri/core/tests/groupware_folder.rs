//! Calendars, contacts and tasks through the whole engine into the local folder: every item
//! arrives once, every series expands to exactly the occurrences Graph's calendarView lists,
//! and a rerun writes only what changed at the source.

use crate::support;

use crate::occurrences;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use migrator_core::config::Workload;
use migrator_core::engine::{run, Destination, RunControl, RunOptions};
use migrator_core::progress::{NullReporter, ProgressEvent, RunSummary};
use migrator_core::secrets::Secret;
use migrator_sim::{SimConfig, SimServer, TenantSpec};

struct Setup {
    sim: SimServer,
    out: tempfile::TempDir,
}

async fn setup(users: usize) -> Setup {
    let sim = SimServer::start(SimConfig {
        tenant: TenantSpec {
            users,
            messages_per_user: 2,
            ..TenantSpec::default()
        },
        ..SimConfig::default()
    })
    .await
    .unwrap();
    Setup {
        sim,
        out: tempfile::tempdir().unwrap(),
    }
}

impl Setup {
    async fn run(&self) -> RunSummary {
        self.run_with(false).await
    }

    async fn run_with(&self, mirror_deletions: bool) -> RunSummary {
        let source = support::source_config(&self.sim);
        let options = RunOptions {
            state_dir: Some(self.out.path().join("state")),
            workloads: vec![Workload::Calendar, Workload::Contacts, Workload::Tasks],
            mirror_deletions,
            ..RunOptions::default()
        };
        run(
            &source,
            &Secret::new(self.sim.client_secret()),
            &Destination::Folder(self.out.path().join("out")),
            Arc::new(NullReporter),
            RunControl::new(),
            options,
        )
        .await
        .expect("the run finishes")
    }

    fn user_dir(&self, address: &str) -> PathBuf {
        self.out.path().join("out").join(address)
    }
}

/// The files with this extension under `dir`, by name, with their text.
fn files(dir: &Path, extension: &str) -> BTreeMap<PathBuf, String> {
    support::files_under(dir)
        .into_iter()
        .filter(|p| p.extension() == Some(extension.as_ref()))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect()
}

/// The UID of an iCalendar resource (lines unfolded first, RFC 5545 §3.1).
fn uid(ics: &str) -> String {
    let unfolded = ics.replace("\r\n ", "");
    unfolded
        .lines()
        .find_map(|l| l.strip_prefix("UID:"))
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn every_calendar_contact_and_task_arrives_once_and_a_rerun_writes_nothing() {
    let s = setup(2).await;
    let first = s.run().await;
    assert_eq!(first.totals.failed, 0, "{first:?}");
    let tenant = s.sim.tenant();
    let (mut events, mut contacts, mut tasks) = (0, 0, 0);
    for user in &tenant.users {
        let dir = s.user_dir(&user.mail);
        let user_events: usize = user.calendars.iter().map(|c| c.events.len()).sum();
        let user_contacts: usize = user.contact_folders.iter().map(|f| f.contacts.len()).sum();
        let user_tasks: usize = user
            .todo_lists
            .iter()
            .filter(|l| l.wellknown_list_name != "flaggedEmails")
            .map(|l| l.tasks.len())
            .sum();
        assert_eq!(files(&dir.join("calendars"), "ics").len(), user_events);
        assert_eq!(files(&dir.join("contacts"), "vcf").len(), user_contacts);
        assert_eq!(files(&dir.join("tasks"), "ics").len(), user_tasks);
        // One folder per source collection, the flagged-mail list left out.
        let lists = std::fs::read_dir(dir.join("tasks")).unwrap().count();
        assert_eq!(lists, user.todo_lists.len() - 1);
        events += user_events as u64;
        contacts += user_contacts as u64;
        tasks += user_tasks as u64;
    }
    assert!(events > 0 && contacts > 0 && tasks > 0);
    assert_eq!(
        (
            first.totals.events,
            first.totals.contacts,
            first.totals.tasks
        ),
        (events, contacts, tasks)
    );

    let before = files(s.out.path(), "ics");
    let second = s.run().await;
    assert_eq!(
        (
            second.totals.events,
            second.totals.contacts,
            second.totals.tasks
        ),
        (0, 0, 0),
        "a rerun writes nothing"
    );
    // Delta rounds bring nothing: the unchanged items are not even read again.
    assert_eq!(second.totals.skipped, 0);
    assert_eq!(files(s.out.path(), "ics"), before);
}

#[tokio::test]
async fn every_series_expands_to_the_occurrences_calendar_view_lists() {
    let s = setup(1).await;
    assert_eq!(s.run().await.totals.failed, 0);
    let tenant = s.sim.tenant();
    let user = &tenant.users[0];
    let written: BTreeMap<String, String> = files(&s.user_dir(&user.mail).join("calendars"), "ics")
        .into_values()
        .map(|text| (uid(&text), text))
        .collect();

    let mut compared = 0;
    for event in user.calendars.iter().flat_map(|c| &c.events) {
        let first = event.at(event.start);
        let from = first - time::Duration::days(3);
        let to = first + time::Duration::days(730);
        // Compare inside a margin, so the two sides' rules at the window's edges do not matter.
        let inside = |key: &str| {
            let day = &key[..10];
            day > &(from + time::Duration::days(2)).date().to_string()[..]
                && day < &(to - time::Duration::days(2)).date().to_string()[..]
        };
        let expected: Vec<String> = migrator_sim::expand(event, from, to)
            .iter()
            .map(|o| {
                if event.is_all_day {
                    o.start.date().to_string()
                } else {
                    let format = time::macros::format_description!(
                        "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
                    );
                    let utc = o.start.to_offset(time::UtcOffset::UTC);
                    utc.format(&format).unwrap()
                }
            })
            .filter(|k| inside(k))
            .collect();
        let ics = written
            .get(&event.uid)
            .unwrap_or_else(|| panic!("no resource with UID {} ({})", event.uid, event.subject));
        let chrono = |t: time::OffsetDateTime| {
            DateTime::<Utc>::from_timestamp(t.unix_timestamp(), 0).unwrap()
        };
        let mut got = occurrences::occurrences(ics, chrono(from), chrono(to))
            .unwrap_or_else(|e| panic!("{}: {e}\n{ics}", event.subject));
        got.retain(|k| inside(k));
        got.sort();
        let mut expected = expected;
        expected.sort();
        assert_eq!(got, expected, "{}\n{ics}", event.subject);
        compared += expected.len();
    }
    assert!(compared > 50, "only {compared} occurrences compared");
}

#[tokio::test]
async fn each_user_finishes_once_after_its_groupware_with_every_count() {
    let s = setup(2).await;
    let events = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = events.clone();
    let reporter = move |e: ProgressEvent| seen.lock().unwrap().push(e);
    let source = support::source_config(&s.sim);
    run(
        &source,
        &Secret::new(s.sim.client_secret()),
        &Destination::Folder(s.out.path().join("out")),
        Arc::new(reporter),
        RunControl::new(),
        RunOptions::default(),
    )
    .await
    .unwrap();
    let events = events.lock().unwrap();
    for user in &s.sim.tenant().users {
        let mine: Vec<&ProgressEvent> = events
            .iter()
            .filter(|e| match e {
                ProgressEvent::UserStarted { user: u, .. }
                | ProgressEvent::ItemDone { user: u, .. }
                | ProgressEvent::UserFinished { user: u, .. } => u == &user.mail,
                _ => false,
            })
            .collect();
        assert!(matches!(
            mine.first(),
            Some(ProgressEvent::UserStarted { .. })
        ));
        let finished: Vec<_> = mine
            .iter()
            .filter(|e| matches!(e, ProgressEvent::UserFinished { .. }))
            .collect();
        assert_eq!(finished.len(), 1, "{}", user.mail);
        let Some(ProgressEvent::UserFinished { stats, .. }) = mine.last() else {
            panic!("{}: UserFinished is not the last event", user.mail);
        };
        assert!(stats.messages > 0 && stats.events > 0 && stats.contacts > 0 && stats.tasks > 0);
        let done = mine
            .iter()
            .filter(|e| matches!(e, ProgressEvent::ItemDone { .. }))
            .count() as u64;
        assert_eq!(
            done,
            stats.messages + stats.events + stats.contacts + stats.tasks
        );
    }
}

#[tokio::test]
async fn source_changes_are_rewritten_and_deletions_mirrored_only_when_asked() {
    let s = setup(1).await;
    assert_eq!(s.run().await.totals.failed, 0);
    let tenant = s.sim.tenant();
    let user = &tenant.users[0];
    let dir = s.user_dir(&user.mail);
    let event = user.calendars[0]
        .events
        .iter()
        .find(|e| e.recurrence.is_none())
        .unwrap();
    let gone = &user.contact_folders[0].contacts[0];
    let contacts_before = files(&dir.join("contacts"), "vcf");

    assert!(s.sim.update_event(&user.id, &event.id, |e| {
        e.subject = "Moved to the big room".into()
    }));
    assert!(s
        .sim
        .add_contact(&user.id, None, migrator_sim::sample_contact(4242)));
    assert!(s.sim.delete_contact(&user.id, &gone.id));
    let second = s.run().await;
    let t = &second.totals;
    assert_eq!(
        (t.events, t.contacts, t.tasks, t.failed),
        (1, 1, 0, 0),
        "exactly the edited event and the new contact are written"
    );
    let edited = files(&dir.join("calendars"), "ics")
        .into_values()
        .filter(|text| text.contains("Moved to the big room"))
        .count();
    assert_eq!(edited, 1);
    let contacts = files(&dir.join("contacts"), "vcf");
    assert_eq!(
        contacts.len(),
        contacts_before.len() + 1,
        "deletions are kept by default"
    );

    let third = s.run_with(true).await;
    assert_eq!(
        (
            third.totals.events,
            third.totals.contacts,
            third.totals.failed
        ),
        (0, 0, 0)
    );
    let after = files(&dir.join("contacts"), "vcf");
    assert_eq!(
        after.len(),
        contacts_before.len(),
        "the deleted contact is gone"
    );
    let removed: Vec<_> = contacts
        .keys()
        .filter(|k| !after.contains_key(*k))
        .collect();
    assert_eq!(removed.len(), 1);
    assert!(contacts_before.contains_key(removed[0]));
}
