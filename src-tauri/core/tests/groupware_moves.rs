//! Every calendar of every calendar group, and items the user moves between calendars,
//! contact folders and To Do lists, through the whole engine into the local folder and into
//! Radicale: each source collection's items arrive in their own destination collection once,
//! calendars shared with the user stay out, and after a move an incremental run leaves
//! exactly one copy, in the new collection.

use crate::support;

use std::collections::BTreeMap;

use migrator_core::config::Workload;
use migrator_core::dest::dav::{CollectionKind, DavAccount, DavLogin};
use migrator_core::engine::{run, Destination, ImapLogins, RunControl, RunOptions};
use migrator_core::progress::RunSummary;
use migrator_core::secrets::Secret;
use migrator_sim::{Calendar, SimConfig, SimServer, TenantSpec, User, Zone};
use sha2::{Digest, Sha256};
use support::dovecot::Dovecot;
use support::radicale::{self, Radicale};

/// Where a test migrates to.
enum Dest {
    Folder,
    Dav {
        dovecot: Dovecot,
        radicale: Radicale,
    },
}

struct Setup {
    sim: SimServer,
    dest: Dest,
    dir: tempfile::TempDir,
    /// `mirror_deletions` for the runs.
    mirror: bool,
}

async fn setup(dav: bool) -> Setup {
    let config = SimConfig {
        tenant: TenantSpec {
            users: 1,
            messages_per_user: 1,
            ..TenantSpec::default()
        },
        ..SimConfig::default()
    };
    let (sim, dest) = if dav {
        let (sim, dovecot) = support::tenant_with_dovecot_config(config).await;
        let radicale = Radicale::start_with(radicale::Options {
            users: support::tenant_accounts(&sim),
            ..radicale::Options::default()
        });
        let dest = Dest::Dav { dovecot, radicale };
        (sim, dest)
    } else {
        (SimServer::start(config).await.unwrap(), Dest::Folder)
    };
    Setup {
        sim,
        dest,
        dir: tempfile::tempdir().unwrap(),
        mirror: false,
    }
}

impl Setup {
    fn user(&self) -> User {
        self.sim.tenant().users[0].clone()
    }

    /// Runs calendars, contacts and tasks; returns the summary and every failure's reason.
    async fn run(&self) -> (RunSummary, Vec<String>) {
        let destination = match &self.dest {
            Dest::Folder => Destination::Folder(self.dir.path().join("out")),
            Dest::Dav { dovecot, radicale } => Destination::Imap {
                settings: dovecot.tls_settings(),
                logins: ImapLogins::Accounts(
                    [(self.user().mail.to_lowercase(), Secret::new("pw"))].into(),
                ),
                dav: Some(radicale.settings()),
            },
        };
        let options = RunOptions {
            state_dir: Some(self.dir.path().join("state")),
            workloads: vec![Workload::Calendar, Workload::Contacts, Workload::Tasks],
            mirror_deletions: self.mirror,
            ..RunOptions::default()
        };
        let failures = support::Failures::default();
        let summary = run(
            &support::source_config(&self.sim),
            &Secret::new(self.sim.client_secret()),
            &destination,
            failures.reporter(),
            RunControl::new(),
            options,
        )
        .await
        .expect("the run finishes");
        (summary, failures.list())
    }

    async fn first_run(&self) {
        let (summary, failures) = self.run().await;
        assert_eq!(failures, Vec::<String>::new(), "{summary:?}");
    }

    /// Items per destination collection, named as [`expected`] names them.
    async fn held(&self) -> BTreeMap<String, usize> {
        match &self.dest {
            Dest::Folder => {
                let root = self
                    .dir
                    .path()
                    .join("out")
                    .join(self.user().mail.to_lowercase());
                let mut held = BTreeMap::new();
                for (top, kind) in [
                    ("calendars", "event"),
                    ("contacts", "contact"),
                    ("tasks", "task"),
                ] {
                    count_files(&root.join(top), kind, &mut held);
                }
                held
            }
            Dest::Dav { radicale, .. } => {
                let address = self.user().mail;
                let account = DavAccount::connect(
                    &radicale.settings(),
                    &address,
                    DavLogin::new(address.clone(), Secret::new("pw")),
                )
                .await
                .unwrap();
                let mut held = BTreeMap::new();
                for (kind, noun) in [
                    (CollectionKind::Events, "event"),
                    (CollectionKind::Contacts, "contact"),
                    (CollectionKind::Tasks, "task"),
                ] {
                    for collection in account.collections(kind).await.unwrap() {
                        let items = account.list(&collection).await.unwrap().len();
                        let name = collection.display_name.clone().unwrap_or_default();
                        held.insert(format!("{noun}:{name}"), items);
                    }
                }
                held
            }
        }
    }

    /// What [`Setup::held`] must find: per source collection, its item count. The local
    /// folder names a collection by the hash its folder name ends with (` ~<hash of the
    /// source id>`), Radicale by display name (`renamed`: calendar id -> destination name).
    fn expected(&self, renamed: &[(String, String)]) -> BTreeMap<String, usize> {
        let user = self.user();
        let dav = matches!(self.dest, Dest::Dav { .. });
        let mut expected = BTreeMap::new();
        for c in user.calendars.iter().filter(|c| c.shared_by.is_none()) {
            let name = renamed
                .iter()
                .find(|(id, _)| *id == c.id)
                .map_or(c.name.clone(), |(_, n)| n.clone());
            let key = if dav { name } else { short_hash(&c.id) };
            expected.insert(format!("event:{key}"), c.events.len());
        }
        let default_folder = &user.contact_folders[0];
        for f in &user.contact_folders {
            let key = match (dav, f.parent_id.is_none()) {
                (true, true) => "Contacts".to_string(),
                (true, false) => folder_path(&user, &f.id, &default_folder.id).join(" / "),
                (false, true) => short_hash("contacts"),
                (false, false) => short_hash(&f.id),
            };
            expected.insert(format!("contact:{key}"), f.contacts.len());
        }
        for l in user
            .todo_lists
            .iter()
            .filter(|l| l.wellknown_list_name != "flaggedEmails")
        {
            let key = if dav {
                l.display_name.clone()
            } else {
                short_hash(&l.id)
            };
            expected.insert(format!("task:{key}"), l.tasks.len());
        }
        expected
    }

    /// Asserts each collection holds exactly its source's items, and that a rerun writes
    /// nothing.
    async fn assert_mirrors_the_source(&self, renamed: &[(String, String)]) {
        let held = self.held().await;
        let expected = self.expected(renamed);
        let held_nonempty: BTreeMap<_, _> = held.iter().filter(|(_, n)| **n > 0).collect();
        let expected_nonempty: BTreeMap<_, _> = expected.iter().filter(|(_, n)| **n > 0).collect();
        assert_eq!(held_nonempty, expected_nonempty, "items per collection");
        let (again, failures) = self.run().await;
        assert_eq!(failures, Vec::<String>::new());
        assert_eq!(
            (
                again.totals.events,
                again.totals.contacts,
                again.totals.tasks,
                again.totals.failed
            ),
            (0, 0, 0, 0),
            "a rerun writes nothing"
        );
        assert_eq!(self.held().await, held, "a rerun changes nothing");
    }
}

/// Counts the files of each collection folder under `dir` (nested contact folders included)
/// as `kind:<hash>`, the hash its folder name ends with.
fn count_files(dir: &std::path::Path, kind: &str, held: &mut BTreeMap<String, usize>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            count_files(&path, kind, held);
        } else if !path.file_name().unwrap().to_string_lossy().starts_with('.') {
            files += 1;
        }
    }
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    if let Some((_, hash)) = name.rsplit_once(" ~") {
        held.insert(format!("{kind}:{hash}"), files);
    }
}

/// The hash the local folder's collection folders end with.
fn short_hash(source_id: &str) -> String {
    hex::encode(&Sha256::digest(source_id.as_bytes())[..4])
}

/// A contact folder's display names from below the default folder down to it.
fn folder_path(user: &User, id: &str, default_id: &str) -> Vec<String> {
    let mut path = Vec::new();
    let mut at = Some(id.to_string());
    while let Some(current) = at.filter(|c| c != default_id) {
        let folder = user
            .contact_folders
            .iter()
            .find(|f| f.id == current)
            .unwrap();
        path.insert(0, folder.display_name.clone());
        at = folder.parent_id.clone();
    }
    path
}

/// A calendar for user 0 in an existing group (the one of calendar `like`), with one event.
fn calendar_like(
    sim: &SimServer,
    like: usize,
    id: &str,
    name: &str,
    shared_by: Option<(&str, &str)>,
) {
    sim.mutate(|t| {
        let u = &mut t.users[0];
        let template = &u.calendars[like];
        let mut event = migrator_sim::sample_event(
            id.len() as u64 + name.len() as u64,
            &format!("In {name}"),
            Zone::windows("W. Europe Standard Time"),
            time::macros::datetime!(2025-06-02 10:00),
        );
        event.id = format!("{id}-EVT");
        let calendar = Calendar {
            id: id.into(),
            name: name.into(),
            color: "auto".into(),
            hex_color: String::new(),
            is_default: false,
            group_id: template.group_id.clone(),
            group_name: template.group_name.clone(),
            shared_by: shared_by.map(|(n, a)| (n.to_string(), a.to_string())),
            events: vec![event],
        };
        u.calendars.push(calendar);
    });
}

/// Gives user 0 a calendar of the same name as the default calendar in the second group
/// ("Other calendars"), and a calendar someone shared with them in a third group. Returns
/// the renamed calendar as (id, destination name).
fn add_group_calendars(s: &Setup) -> Vec<(String, String)> {
    let user = s.user();
    let second = user
        .calendars
        .iter()
        .position(|c| c.group_id != user.calendars[0].group_id)
        .expect("the demo data has a second calendar group");
    calendar_like(&s.sim, second, "AAMkAGI2CALsame-name", "Calendar", None);
    s.sim.mutate(|t| {
        let u = &mut t.users[0];
        u.calendars.push(Calendar {
            group_id: "AAMkAGI2CGRpeople".into(),
            group_name: "People's calendars".into(),
            ..u.calendars[0].clone()
        });
        let shared = u.calendars.last_mut().unwrap();
        shared.id = "AAMkAGI2CALshared".into();
        shared.name = "Megan's calendar".into();
        shared.is_default = false;
        shared.shared_by = Some(("Megan Bowen".into(), "megan.bowen@fabrikam.com".into()));
    });
    vec![(
        "AAMkAGI2CALsame-name".to_string(),
        "Calendar (Other calendars)".to_string(),
    )]
}

async fn every_calendar_of_every_group_arrives_once(dav: bool) {
    let s = setup(dav).await;
    let renamed = add_group_calendars(&s);
    let user = s.user();
    let (first, failures) = s.run().await;
    assert_eq!(failures, Vec::<String>::new(), "{first:?}");
    let own: usize = user
        .calendars
        .iter()
        .filter(|c| c.shared_by.is_none())
        .map(|c| c.events.len())
        .sum();
    let shared = user
        .calendars
        .iter()
        .find(|c| c.shared_by.is_some())
        .unwrap();
    assert!(own > 0 && !shared.events.is_empty());
    assert_eq!(
        first.totals.events as usize, own,
        "every own calendar's events, none of the shared calendar's"
    );
    let held = s.held().await;
    assert!(
        !held
            .keys()
            .any(|k| k.contains("Megan") || k.contains(&short_hash(&shared.id))),
        "the shared calendar stays out: {held:?}"
    );
    s.assert_mirrors_the_source(&renamed).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn calendars_of_every_group_arrive_once_in_the_local_folder_and_shared_ones_stay_out() {
    every_calendar_of_every_group_arrives_once(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn calendars_of_every_group_arrive_once_in_radicale_under_unique_names() {
    every_calendar_of_every_group_arrives_once(true).await;
}

/// Moves, between two runs, in both orders of the collections' rounds (into a collection
/// read before the old one, and into one read after it): two contacts, two events, a task.
async fn moved_items_leave_one_copy(dav: bool) {
    let s = setup(dav).await;
    s.first_run().await;
    let before = s.held().await;
    let user = s.user();
    let default_folder = &user.contact_folders[0];
    let child = user
        .contact_folders
        .iter()
        .find(|f| f.parent_id.is_some() && !f.contacts.is_empty())
        .expect("a contact folder with contacts");
    assert!(s.sim.move_contact(&user.id, &child.contacts[0].id, None));
    let from_default = &default_folder.contacts[0].id;
    assert!(s.sim.move_contact(&user.id, from_default, Some(&child.id)));
    let (cal0, cal1) = (&user.calendars[0], &user.calendars[1]);
    let other_group = user.calendars.last().unwrap();
    assert_ne!(other_group.group_id, cal0.group_id);
    assert!(s.sim.move_event(&user.id, &cal1.events[0].id, &cal0.id));
    let single = cal0
        .events
        .iter()
        .find(|e| e.recurrence.is_none())
        .expect("a single event");
    assert!(s.sim.move_event(&user.id, &single.id, &other_group.id));
    let lists: Vec<_> = user
        .todo_lists
        .iter()
        .filter(|l| l.wellknown_list_name != "flaggedEmails")
        .collect();
    let (from, to) = (lists[1], lists[0]);
    assert!(s.sim.move_task(&user.id, &from.tasks[0].id, &to.id, None));

    let (second, failures) = s.run().await;
    assert_eq!(failures, Vec::<String>::new(), "{second:?}");
    assert_eq!(
        (
            second.totals.contacts,
            second.totals.events,
            second.totals.tasks
        ),
        (2, 2, 1),
        "each moved item is written once, in its new collection"
    );
    let after = s.held().await;
    assert_eq!(
        after.values().sum::<usize>(),
        before.values().sum::<usize>(),
        "no duplicate, no loss: {before:?} -> {after:?}"
    );
    s.assert_mirrors_the_source(&[]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn moved_contacts_events_and_tasks_leave_one_copy_in_the_local_folder() {
    moved_items_leave_one_copy(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn moved_contacts_events_and_tasks_leave_one_copy_in_radicale() {
    moved_items_leave_one_copy(true).await;
}

/// To Do is not documented to keep a task's id across lists; a task that comes back with a
/// new id is a deletion in its old list and an addition in the new one. With deletions
/// mirrored, that too leaves one copy, in the new list.
#[tokio::test(flavor = "multi_thread")]
async fn a_task_moved_under_a_new_id_leaves_one_copy_when_deletions_are_mirrored() {
    let mut s = setup(false).await;
    s.mirror = true;
    s.first_run().await;
    let before = s.held().await;
    let user = s.user();
    let lists: Vec<_> = user
        .todo_lists
        .iter()
        .filter(|l| l.wellknown_list_name != "flaggedEmails")
        .collect();
    let moved = &lists[0].tasks[0].id;
    let new_id = format!("{moved}-moved");
    assert!(s
        .sim
        .move_task(&user.id, moved, &lists[1].id, Some(&new_id)));
    let (second, failures) = s.run().await;
    assert_eq!(failures, Vec::<String>::new(), "{second:?}");
    assert_eq!(second.totals.tasks, 1);
    assert_eq!(
        s.held().await.values().sum::<usize>(),
        before.values().sum::<usize>()
    );
    s.assert_mirrors_the_source(&[]).await;
}

/// A run that stopped (crashed) after journaling a moved contact's intent and old copy, but
/// before deleting that copy: the next run finishes the move, one copy remains.
#[tokio::test(flavor = "multi_thread")]
async fn a_move_interrupted_before_its_old_copy_was_deleted_is_finished_by_the_next_run() {
    use migrator_core::journal::{ItemTarget, Journal, MovedFrom};
    let s = setup(false).await;
    s.first_run().await;
    let before = s.held().await;
    let user = s.user();
    let child = user
        .contact_folders
        .iter()
        .find(|f| f.parent_id.is_some() && !f.contacts.is_empty())
        .unwrap();
    let contact = &child.contacts[0].id;
    {
        let journal = Journal::open(&s.dir.path().join("state")).unwrap();
        let old = journal.item(&user.id, contact).unwrap().unwrap();
        let run = journal.begin_run().unwrap();
        let into_default = ItemTarget {
            user_id: &user.id,
            source_id: contact,
            folder_id: "contacts",
            dest_folder: "contacts",
        };
        journal
            .record_intent_as("contact", into_default, run)
            .unwrap();
        let from = MovedFrom {
            folder_id: old.folder_id,
            dest_folder: old.dest_folder,
            dest_ref: old.dest_ref.unwrap(),
            etag: old.etag,
        };
        journal.record_moved_from(&user.id, contact, &from).unwrap();
    }
    assert!(s.sim.move_contact(&user.id, contact, None));
    let (second, failures) = s.run().await;
    assert_eq!(failures, Vec::<String>::new(), "{second:?}");
    assert_eq!(
        s.held().await.values().sum::<usize>(),
        before.values().sum::<usize>(),
        "the old copy is gone"
    );
    s.assert_mirrors_the_source(&[]).await;
}
