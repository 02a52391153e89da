//! Incremental groupware reads: after a first full run, a rerun reads contacts, To Do tasks and
//! events by delta (Graph docs api/contact-delta.md, api/todotask-delta.md, beta
//! api/event-delta.md). What is counted is the simulator's request log: per-item reads (an
//! event, a series, a contact, a photo, a task, attachments) happen only for items that changed,
//! and only the changed resources are written.

use crate::support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use migrator_core::config::Workload;
use migrator_core::engine::{run, Destination, RunControl, RunOptions};
use migrator_core::progress::{NullReporter, RunSummary};
use migrator_core::secrets::Secret;
use migrator_sim::{RequestRecord, SimConfig, SimServer, TenantSpec, Zone};

struct Setup {
    sim: SimServer,
    out: tempfile::TempDir,
}

async fn setup() -> Setup {
    setup_with(true).await
}

/// `beta_events_delta: false`: a cloud without beta's events delta.
async fn setup_with(beta_events_delta: bool) -> Setup {
    let sim = SimServer::start(SimConfig {
        tenant: TenantSpec {
            users: 1,
            messages_per_user: 1,
            ..TenantSpec::default()
        },
        beta_events_delta,
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
    /// Runs the groupware workloads; returns the summary and the requests the run sent.
    async fn run(&self, mirror_deletions: bool) -> (RunSummary, Vec<RequestRecord>) {
        let before = self.sim.requests().len();
        let options = RunOptions {
            state_dir: Some(self.out.path().join("state")),
            workloads: vec![Workload::Calendar, Workload::Contacts, Workload::Tasks],
            mirror_deletions,
            ..RunOptions::default()
        };
        let summary = run(
            &support::source_config(&self.sim),
            &Secret::new(self.sim.client_secret()),
            &Destination::Folder(self.out.path().join("out")),
            Arc::new(NullReporter),
            RunControl::new(),
            options,
        )
        .await
        .expect("the run finishes");
        let requests = self.sim.requests().split_off(before);
        (summary, requests)
    }

    /// Every written resource under the destination, by path, with its text.
    fn resources(&self) -> BTreeMap<PathBuf, String> {
        support::files_under(&self.out.path().join("out"))
            .into_iter()
            .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("ics" | "vcf")))
            .map(|p| {
                let text = std::fs::read_to_string(&p).unwrap();
                (p, text)
            })
            .collect()
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], s.get(i + 1..i + 3)) {
            (b'%', Some(hex)) if u8::from_str_radix(hex, 16).is_ok() => {
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

/// The path's segments after `/users/{id}`, decoded.
fn segments(r: &RequestRecord) -> Vec<String> {
    let path = r.path_and_query.split('?').next().unwrap_or_default();
    let parts: Vec<String> = path.split('/').map(percent_decode).collect();
    match parts.iter().position(|p| p == "users") {
        Some(at) => parts.get(at + 2..).unwrap_or_default().to_vec(),
        None => Vec::new(),
    }
}

/// A GET that reads one item: (what, the item's id).
fn item_read(r: &RequestRecord) -> Option<(&'static str, String)> {
    let s = segments(r);
    let s: Vec<&str> = s.iter().map(String::as_str).collect();
    let read = match s.as_slice() {
        [.., "contacts", id, "photo", "$value"] => ("photo", id),
        [.., "contacts", id] if *id != "delta" => ("contact", id),
        [.., "events", id, "attachments"] => ("attachments", id),
        [.., "events", id] if *id != "delta" => ("event", id),
        ["todo", "lists", _, "tasks", id, ..] if *id != "delta" => ("task", id),
        _ => return None,
    };
    Some((read.0, read.1.to_string()))
}

/// A listing of a collection's items (instead of its delta).
fn is_item_listing(r: &RequestRecord) -> bool {
    let s = segments(r);
    let s: Vec<&str> = s.iter().map(String::as_str).collect();
    matches!(
        s.as_slice(),
        ["calendars", _, "events"]
            | ["todo", "lists", _, "tasks"]
            | ["contactFolders", _, "contacts"]
    )
}

fn count(requests: &[RequestRecord], part: &str) -> usize {
    requests
        .iter()
        .filter(|r| r.path_and_query.contains(part))
        .count()
}

fn item_reads(requests: &[RequestRecord]) -> Vec<(&'static str, String)> {
    requests.iter().filter_map(item_read).collect()
}

/// (added, changed, removed) resources between two snapshots, per extension.
fn diff(
    before: &BTreeMap<PathBuf, String>,
    after: &BTreeMap<PathBuf, String>,
    extension: &str,
) -> (usize, usize, usize) {
    let of = |p: &Path| p.extension().and_then(|e| e.to_str()) == Some(extension);
    let added = after
        .keys()
        .filter(|p| of(p) && !before.contains_key(*p))
        .count();
    let changed = after
        .iter()
        .filter(|(p, text)| of(p) && before.get(*p).is_some_and(|b| b != *text))
        .count();
    let removed = before
        .keys()
        .filter(|p| of(p) && !after.contains_key(*p))
        .count();
    (added, changed, removed)
}

fn is_task(path: &Path) -> bool {
    path.components().any(|c| c.as_os_str() == "tasks")
}

#[tokio::test]
async fn a_rerun_without_source_changes_reads_no_item_and_writes_nothing() {
    let s = setup().await;
    let (first, requests) = s.run(false).await;
    assert_eq!(first.totals.failed, 0, "{first:?}");
    assert!(first.totals.events > 0 && first.totals.contacts > 0 && first.totals.tasks > 0);
    assert!(
        item_reads(&requests)
            .iter()
            .any(|(what, _)| *what == "photo"),
        "the first run reads photos"
    );
    let written = s.resources();

    let (second, requests) = s.run(false).await;
    let t = &second.totals;
    assert_eq!(
        (t.events, t.contacts, t.tasks, t.skipped, t.failed),
        (0, 0, 0, 0, 0),
        "{second:?}"
    );
    assert_eq!(item_reads(&requests), Vec::new(), "no per-item GET");
    let listings: Vec<_> = requests.iter().filter(|r| is_item_listing(r)).collect();
    assert!(listings.is_empty(), "no collection listed: {listings:?}");
    let user = &s.sim.tenant().users[0];
    let calendars = user.calendars.len();
    let lists = user.todo_lists.len() - 1;
    assert_eq!(count(&requests, "/events/delta?$deltatoken="), calendars);
    assert_eq!(count(&requests, "/tasks/delta?$deltatoken="), lists);
    assert!(count(&requests, "/contacts/delta?$deltatoken=") >= user.contact_folders.len() - 1);
    assert_eq!(s.resources(), written, "nothing written");
}

#[tokio::test]
async fn changes_are_read_by_delta_and_only_the_changed_resources_are_written() {
    let s = setup().await;
    assert_eq!(s.run(false).await.0.totals.failed, 0);
    let tenant = s.sim.tenant();
    let user = &tenant.users[0];
    let before = s.resources();

    // Contacts: one added (with a photo), one edited in a nested folder, one deleted.
    let new_contact = migrator_sim::sample_contact(4242);
    assert!(new_contact.photo.is_some());
    assert!(s.sim.add_contact(&user.id, None, new_contact.clone()));
    let nested = user
        .contact_folders
        .iter()
        .skip(1)
        .find(|f| !f.contacts.is_empty())
        .expect("a contact in a subfolder");
    let edited_contact = &nested.contacts[0];
    assert!(s
        .sim
        .update_contact(&user.id, &edited_contact.id, |c| c.job_title = "CTO".into()));
    let deleted_contact = &user.contact_folders[0].contacts[0];
    assert!(s.sim.delete_contact(&user.id, &deleted_contact.id));

    // Tasks: one added, one completed, one deleted.
    let list = user
        .todo_lists
        .iter()
        .find(|l| l.wellknown_list_name != "flaggedEmails" && l.tasks.len() >= 2)
        .expect("a list with two tasks");
    let new_task = migrator_sim::sample_task(77);
    assert!(s.sim.add_task(&user.id, &list.id, new_task.clone()));
    let open = list.tasks.iter().find(|t| t.status != "completed").unwrap();
    assert!(s.sim.complete_task(&user.id, &open.id));
    let dropped = list.tasks.iter().find(|t| t.id != open.id).unwrap();
    assert!(s.sim.delete_task(&user.id, &dropped.id));

    // Events: one added, one edited, one deleted, one occurrence of a series moved.
    let cal = &user.calendars[0];
    let singles: Vec<_> = cal
        .events
        .iter()
        .filter(|e| e.recurrence.is_none())
        .collect();
    let (edited_event, deleted_event) = (singles[0], singles[1]);
    let new_event = migrator_sim::sample_event(
        9,
        "Added later",
        Zone::windows("UTC"),
        time::macros::datetime!(2025-04-02 10:00),
    );
    assert!(s.sim.add_event(&user.id, Some(&cal.id), new_event.clone()));
    assert!(s.sim.update_event(&user.id, &edited_event.id, |e| {
        e.subject = "Moved to the big room".into()
    }));
    assert!(s.sim.delete_event(&user.id, &deleted_event.id));
    let series = cal
        .events
        .iter()
        .find(|e| e.recurrence.is_some() && !e.is_all_day)
        .expect("a timed series");
    let first = series.at(series.start);
    let occurrence = migrator_sim::expand(series, first, first + time::Duration::days(90))
        .into_iter()
        .find(|o| o.exception_id.is_none() && o.original_date > series.start.date())
        .expect("a plain occurrence");
    let start = time::PrimitiveDateTime::new(occurrence.original_date, series.start.time())
        + time::Duration::hours(1);
    s.sim
        .edit_occurrence(
            &user.id,
            &series.id,
            occurrence.original_date,
            start,
            start + time::Duration::minutes(30),
            "Moved once",
        )
        .expect("a live occurrence");

    let (second, requests) = s.run(true).await;
    let t = &second.totals;
    assert_eq!(
        (t.events, t.contacts, t.tasks, t.failed),
        (3, 2, 2, 0),
        "the added, edited and series resources; {second:?}"
    );

    // Reads: delta pages, plus exactly one read per changed item that needs one.
    // A contact's JSON does not say whether it has a photo: each changed one is asked once.
    let mut expected: Vec<(&str, String)> = vec![
        ("photo", new_contact.id.clone()),
        ("photo", edited_contact.id.clone()),
        ("event", new_event.id.clone()),
        ("event", edited_event.id.clone()),
        ("event", series.id.clone()),
    ];
    for e in [&new_event, edited_event, series] {
        if !e.attachments.is_empty() {
            expected.push(("attachments", e.id.clone()));
        }
    }
    let mut reads = item_reads(&requests);
    reads.sort();
    expected.sort();
    assert_eq!(reads, expected, "per-item reads");
    assert!(requests.iter().all(|r| !is_item_listing(r)), "no listing");
    let series_read = requests
        .iter()
        .find(|r| item_read(r) == Some(("event", series.id.clone())))
        .unwrap();
    assert!(
        series_read.path_and_query.starts_with("/beta/")
            && series_read.path_and_query.contains("exceptionOccurrences"),
        "a changed series is read with its exceptions: {}",
        series_read.path_and_query
    );

    // Writes: exactly the changed resources.
    let after = s.resources();
    assert_eq!(
        diff(&before, &after, "vcf"),
        (1, 1, 1),
        "contacts added, changed, removed"
    );
    let tasks = |m: &BTreeMap<PathBuf, String>| -> BTreeMap<PathBuf, String> {
        m.iter()
            .filter(|(p, _)| is_task(p))
            .map(|(p, t)| (p.clone(), t.clone()))
            .collect()
    };
    let events = |m: &BTreeMap<PathBuf, String>| -> BTreeMap<PathBuf, String> {
        m.iter()
            .filter(|(p, _)| !is_task(p))
            .map(|(p, t)| (p.clone(), t.clone()))
            .collect()
    };
    assert_eq!(
        diff(&tasks(&before), &tasks(&after), "ics"),
        (1, 1, 1),
        "tasks added, changed, removed"
    );
    assert_eq!(
        diff(&events(&before), &events(&after), "ics"),
        (1, 2, 1),
        "events added, changed (edited + series), removed"
    );
    let moved: Vec<String> = after
        .values()
        .map(|text| text.replace("\r\n ", ""))
        .filter(|text| text.contains("SUMMARY:Moved once"))
        .collect();
    assert_eq!(moved.len(), 1, "one resource holds the moved occurrence");
    assert!(
        moved[0].contains("RRULE:") && moved[0].contains("RECURRENCE-ID"),
        "written with its series: {}",
        moved[0]
    );

    // And the round after brings nothing.
    let (third, requests) = s.run(true).await;
    assert_eq!(
        (
            third.totals.events,
            third.totals.contacts,
            third.totals.tasks
        ),
        (0, 0, 0)
    );
    assert_eq!(item_reads(&requests), Vec::new());
}

#[tokio::test]
async fn an_expired_delta_link_resyncs_in_full_without_duplicates_or_photo_rereads() {
    let s = setup().await;
    assert_eq!(s.run(false).await.0.totals.failed, 0);
    let written = s.resources();
    s.sim.expire_delta_tokens();
    let new_contact = migrator_sim::sample_contact(4245);
    assert!(new_contact.photo.is_some());
    let user_id = s.sim.tenant().users[0].id.clone();
    assert!(s.sim.add_contact(&user_id, None, new_contact.clone()));

    let (second, requests) = s.run(false).await;
    let t = &second.totals;
    assert_eq!(
        (t.events, t.contacts, t.tasks, t.failed),
        (0, 1, 0, 0),
        "{second:?}"
    );
    let gone = requests.iter().filter(|r| r.status == 410).count();
    let user = &s.sim.tenant().users[0];
    assert!(
        gone > user.calendars.len(),
        "every stored link was refused ({gone})"
    );
    // The full rounds list everything again, but only the new contact is read by id.
    assert_eq!(
        item_reads(&requests),
        vec![("photo", new_contact.id.clone())],
        "unchanged contacts and series are not read again"
    );
    let after = s.resources();
    assert_eq!(after.len(), written.len() + 1, "no duplicates");
    assert!(written.iter().all(|(p, text)| after.get(p) == Some(text)));
    let contacts: usize = user.contact_folders.iter().map(|f| f.contacts.len()).sum();
    assert_eq!(diff(&BTreeMap::new(), &after, "vcf").0, contacts);

    // The links were stored again.
    let (third, requests) = s.run(false).await;
    assert_eq!(third.totals.contacts + third.totals.skipped, 0);
    assert_eq!(requests.iter().filter(|r| r.status == 410).count(), 0);
    assert_eq!(item_reads(&requests), Vec::new());
}

#[tokio::test]
async fn without_events_delta_calendars_are_listed_and_only_changed_series_are_read() {
    let s = setup_with(false).await;
    let (first, requests) = s.run(false).await;
    assert_eq!(first.totals.failed, 0, "{first:?}");
    let tenant = s.sim.tenant();
    let user = &tenant.users[0];
    let events: usize = user.calendars.iter().map(|c| c.events.len()).sum();
    assert_eq!(
        first.totals.events as usize, events,
        "every event from the listing"
    );
    assert!(requests.iter().any(|r| r.status == 400));

    let cal = &user.calendars[0];
    let series = cal.events.iter().find(|e| e.recurrence.is_some()).unwrap();
    let gone = cal.events.iter().find(|e| e.recurrence.is_none()).unwrap();
    assert!(s.sim.update_event(&user.id, &series.id, |e| {
        e.subject = "Renamed series".into()
    }));
    assert!(s.sim.delete_event(&user.id, &gone.id));
    let before = s.resources();
    let (second, requests) = s.run(true).await;
    assert_eq!(
        (second.totals.events, second.totals.failed),
        (1, 0),
        "{second:?}"
    );
    let event_reads: Vec<_> = item_reads(&requests)
        .into_iter()
        .filter(|(what, _)| *what != "photo")
        .filter(|(what, id)| !(*what == "attachments" && *id == series.id))
        .collect();
    assert_eq!(
        event_reads,
        vec![("event", series.id.clone())],
        "only the changed series is read again"
    );
    let after = s.resources();
    assert_eq!(
        after.len(),
        before.len() - 1,
        "the deleted event is removed"
    );
}

/// True when the vCard `card`'s FN is `name`.
fn names(card: &str, name: &str) -> bool {
    card.lines()
        .any(|l| l.starts_with("FN") && l.split_once(':').is_some_and(|(_, v)| v == name))
}

/// The contact of `user` with (`true`) or without a photo, and a contact folder other than
/// the one holding it.
fn contact_and_elsewhere(user: &migrator_sim::User, with_photo: bool) -> (String, String, String) {
    for folder in &user.contact_folders {
        if let Some(c) = folder
            .contacts
            .iter()
            .find(|c| c.photo.is_some() == with_photo)
        {
            let other = user
                .contact_folders
                .iter()
                .find(|f| f.id != folder.id)
                .expect("a second contact folder");
            return (c.id.clone(), c.display_name.clone(), other.id.clone());
        }
    }
    panic!("no contact with_photo = {with_photo}");
}

/// Regression (issue 20.12): a contact written again at the same source version (here moved
/// to another folder, which keeps its changeKey) was asked for its photo again, though Graph
/// had answered 404 for that very version. The 404 is journaled with the version: only the
/// contact that has a photo costs a photo request, and it still arrives with it.
#[tokio::test]
async fn a_contact_without_a_photo_is_not_asked_for_it_again_at_the_same_version() {
    let s = setup().await;
    let (first, requests) = s.run(false).await;
    assert_eq!(first.totals.failed, 0, "{first:?}");
    let user = s.sim.tenant().users[0].clone();
    let (bare, bare_name, to) = contact_and_elsewhere(&user, false);
    let (pictured, pictured_name, _) = contact_and_elsewhere(&user, true);
    let photo_reads = |requests: &[RequestRecord], id: &str| {
        item_reads(requests)
            .iter()
            .filter(|(what, read)| *what == "photo" && read == id)
            .count()
    };
    assert_eq!(
        photo_reads(&requests, &bare),
        1,
        "the first run asks once (404)"
    );
    let before = s.resources();

    assert!(s.sim.move_contact(&user.id, &bare, Some(&to)));
    assert!(s.sim.move_contact(&user.id, &pictured, Some(&to)));
    let (second, requests) = s.run(false).await;
    assert_eq!(second.totals.failed, 0, "{second:?}");
    assert_eq!(second.totals.contacts, 2, "{second:?}");
    let photos: Vec<_> = item_reads(&requests)
        .into_iter()
        .filter(|(what, _)| *what == "photo")
        .collect();
    assert_eq!(photos, vec![("photo", pictured.clone())]);

    let after = s.resources();
    let added: Vec<&String> = after
        .iter()
        .filter(|(p, _)| !before.contains_key(*p))
        .map(|(_, text)| text)
        .collect();
    assert_eq!(
        added.len(),
        2,
        "both moved contacts written in their new folder"
    );
    let card = |name: &str| {
        added
            .iter()
            .find(|t| names(t, name))
            .unwrap_or_else(|| panic!("no card for {name}: {added:?}"))
    };
    assert!(card(&pictured_name).contains("PHOTO"), "the photo arrives");
    assert!(!card(&bare_name).contains("PHOTO"));
}

/// Whether a photo change alone gives a contact a new version is not documented; the
/// simulator answers both ways. With a new version the photo is read and arrives though the
/// contact had none before (the journaled 404 was for the old version); without one the
/// contact is at a version already migrated, so nothing is read or written for it.
#[tokio::test]
async fn a_photo_added_to_a_contact_arrives_when_graph_gives_the_contact_a_new_version() {
    let s = setup().await;
    assert_eq!(s.run(false).await.0.totals.failed, 0);
    let user = s.sim.tenant().users[0].clone();
    let (bare, bare_name, _) = contact_and_elsewhere(&user, false);
    let photo = migrator_sim::sample_contact(4250).photo.expect("a photo");

    // Without a new version: listed by delta, but already migrated at that version.
    assert!(s
        .sim
        .set_contact_photo(&user.id, &bare, Some(photo.clone()), false));
    let (second, requests) = s.run(false).await;
    assert_eq!((second.totals.contacts, second.totals.failed), (0, 0));
    assert_eq!(item_reads(&requests), Vec::new());

    // With a new version: read and written with the photo.
    assert!(s.sim.set_contact_photo(&user.id, &bare, Some(photo), true));
    let (third, requests) = s.run(false).await;
    assert_eq!((third.totals.contacts, third.totals.failed), (1, 0));
    assert_eq!(item_reads(&requests), vec![("photo", bare.clone())]);
    let card = s
        .resources()
        .into_values()
        .find(|t| names(t, &bare_name))
        .expect("the contact's card");
    assert!(card.contains("PHOTO"), "{card}");
}

/// Regression (issue 19.4): a contact file that could not be written in the local folder
/// (here a directory stands where the file goes) stopped the whole run. It is now that
/// contact's reported failure, retried by the next run; the other changed contact is written.
#[tokio::test]
async fn a_local_item_file_that_cannot_be_written_fails_that_item_not_the_run() {
    let s = setup().await;
    assert_eq!(s.run(false).await.0.totals.failed, 0);
    let user = s.sim.tenant().users[0].clone();
    let (blocked, blocked_name, _) = contact_and_elsewhere(&user, false);
    let (other, other_name, _) = contact_and_elsewhere(&user, true);
    let path = s
        .resources()
        .into_iter()
        .find(|(_, text)| names(text, &blocked_name))
        .map(|(p, _)| p)
        .expect("the contact's file");
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir_all(path.join("in the way")).unwrap();
    for id in [&blocked, &other] {
        assert!(s
            .sim
            .update_contact(&user.id, id, |c| c.job_title = "CTO".into()));
    }

    let (second, _) = s.run(false).await;
    assert_eq!(
        (second.totals.contacts, second.totals.failed),
        (1, 1),
        "{second:?}"
    );
    let leftovers: Vec<_> = support::files_under(&s.out.path().join("out"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "tmp"))
        .collect();
    assert_eq!(leftovers, Vec::<PathBuf>::new(), "no temporary file left");
    let card = s
        .resources()
        .into_values()
        .find(|t| names(t, &other_name))
        .expect("the other contact's card");
    assert!(card.contains("CTO"), "{card}");

    // Once the way is clear, the next run writes it.
    std::fs::remove_dir_all(&path).unwrap();
    let (third, _) = s.run(false).await;
    assert_eq!(
        (third.totals.contacts, third.totals.failed),
        (1, 0),
        "{third:?}"
    );
    assert!(std::fs::read_to_string(&path).unwrap().contains("CTO"));
}
