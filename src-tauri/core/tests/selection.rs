//! Which users and which items a run takes: batches of users, date limits, and the plan's
//! counts of every workload, against the simulated tenant.

use crate::support;

use std::collections::BTreeSet;
use std::sync::Arc;

use migrator_core::config::{parse_date, DateLimits, UserSelection, Workload};
use migrator_core::engine::{
    plan, run_to_folder_with, verify, Destination, EngineError, RunControl, RunOptions,
};
use migrator_core::graph::mail::segment;
use migrator_core::journal::Journal;
use migrator_core::progress::{NullReporter, RunSummary};
use migrator_core::secrets::Secret;
use migrator_sim::{SimConfig, SimServer, TenantSpec};

async fn sim(users: usize, messages_per_user: usize) -> SimServer {
    SimServer::start(SimConfig {
        tenant: TenantSpec {
            users,
            messages_per_user,
            ..TenantSpec::default()
        },
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

async fn run_into(
    sim: &SimServer,
    out: &std::path::Path,
    options: RunOptions,
) -> Result<RunSummary, EngineError> {
    let options = RunOptions {
        state_dir: Some(out.join(".m365-migrator")),
        ..options
    };
    run_to_folder_with(
        &support::source_config(sim),
        &Secret::new(sim.client_secret()),
        out,
        Arc::new(NullReporter),
        RunControl::new(),
        options,
    )
    .await
}

/// The user folders a run into `out` created.
fn migrated_users(out: &std::path::Path) -> BTreeSet<String> {
    std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with('.'))
        .collect()
}

/// The day splitting `user`'s messages in two non-empty halves by received date (UTC).
fn middle_day(user: &migrator_sim::tenant::User) -> time::Date {
    let mut days: Vec<time::Date> = user
        .folders
        .iter()
        .flat_map(|f| &f.messages)
        .map(|m| m.received.to_offset(time::UtcOffset::UTC).date())
        .collect();
    days.sort();
    let day = days[days.len() / 2];
    assert!(days[0] < day, "the tenant's mail spans a single day");
    day
}

#[tokio::test(flavor = "multi_thread")]
async fn batch_two_of_two_migrates_exactly_the_third_and_fourth_users_by_principal_name() {
    let sim = sim(5, 2).await;
    let mut upns: Vec<(String, String)> = sim
        .tenant()
        .users
        .iter()
        .map(|u| (u.user_principal_name.to_lowercase(), u.mail.to_lowercase()))
        .collect();
    upns.sort();
    let batch = |n| RunOptions {
        users: UserSelection {
            batch_size: Some(2),
            batch: Some(n),
            ..UserSelection::default()
        },
        workloads: vec![Workload::Mail],
        ..RunOptions::default()
    };

    let out = tempfile::tempdir().unwrap();
    let summary = run_into(&sim, out.path(), batch(2)).await.unwrap();
    let expected: BTreeSet<String> = upns[2..4].iter().map(|(_, mail)| mail.clone()).collect();
    assert_eq!(summary.users, 2);
    assert_eq!(migrated_users(out.path()), expected);
    // The other mailboxes were not even read.
    let tenant = sim.tenant();
    let read: BTreeSet<String> = sim
        .requests()
        .iter()
        .filter(|r| r.path_and_query.contains("/mailFolders"))
        .filter_map(|r| r.mailbox.clone())
        .filter_map(|id| tenant.users.iter().find(|u| u.id == id))
        .map(|u| u.mail.to_lowercase())
        .collect();
    assert_eq!(read, expected);

    // The last batch holds the remainder; one past it is an error naming the batches.
    let out = tempfile::tempdir().unwrap();
    run_into(&sim, out.path(), batch(3)).await.unwrap();
    assert_eq!(
        migrated_users(out.path()),
        BTreeSet::from([upns[4].1.clone()])
    );
    let e = run_into(&sim, out.path(), batch(4)).await.unwrap_err();
    assert!(matches!(e, EngineError::Selection(_)), "{e:?}");
    assert!(e.to_string().contains("batches 1 to 3"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn mail_before_mail_since_is_neither_fetched_nor_written_and_a_wider_limit_brings_it() {
    let sim = sim(1, 40).await;
    let user = sim.tenant().users[0].clone();
    let since = middle_day(&user);
    let (newer, older): (Vec<_>, Vec<_>) = user
        .folders
        .iter()
        .flat_map(|f| &f.messages)
        .partition(|m| m.received.to_offset(time::UtcOffset::UTC).date() >= since);
    let options = |since| RunOptions {
        workloads: vec![Workload::Mail],
        limits: DateLimits {
            mail_since: since,
            ..DateLimits::default()
        },
        ..RunOptions::default()
    };

    let out = tempfile::tempdir().unwrap();
    let summary = run_into(&sim, out.path(), options(Some(since)))
        .await
        .unwrap();
    assert_eq!(summary.totals.messages as usize, newer.len());
    assert_eq!(summary.totals.out_of_range as usize, older.len());
    assert_eq!((summary.totals.failed, summary.totals.skipped), (0, 0));
    let bodies_fetched: Vec<String> = sim
        .requests()
        .into_iter()
        .map(|r| r.path_and_query)
        .filter(|p| p.ends_with("/$value"))
        .collect();
    assert_eq!(bodies_fetched.len(), newer.len(), "{bodies_fetched:?}");
    for m in &older {
        let id = format!("/messages/{}/$value", segment(&m.id));
        assert!(
            !bodies_fetched.iter().any(|p| p.ends_with(&id)),
            "an older message's body was fetched: {id}"
        );
    }
    let written = support::maildir_bodies(&out.path().join(user.mail.to_lowercase()));
    assert_eq!(written.values().sum::<usize>(), newer.len());
    for m in &newer {
        assert_eq!(written.get(m.mime.as_ref()), Some(&1));
    }
    // Verify under the same limits expects only the newer mail: clean. Without them it reports
    // exactly the older mail as not migrated.
    let journal = Journal::open(&out.path().join(".m365-migrator")).unwrap();
    let check = |since| {
        let destination = Destination::Folder(out.path().to_path_buf());
        let (source, secret) = (
            support::source_config(&sim),
            Secret::new(sim.client_secret()),
        );
        let options = options(since);
        let journal = &journal;
        async move {
            verify(&source, &secret, &destination, journal, &options)
                .await
                .unwrap()
        }
    };
    assert!(check(Some(since)).await.is_clean());
    let unlimited = check(None).await;
    let not_migrated: usize = unlimited.users[0]
        .folders
        .iter()
        .map(|f| f.not_migrated.len())
        .sum();
    assert_eq!(not_migrated, older.len());

    // Without the limit the next run lists every folder in full again and copies exactly the
    // older mail: every message is then there once.
    let again = run_into(&sim, out.path(), options(None)).await.unwrap();
    assert_eq!(again.totals.messages as usize, older.len());
    assert_eq!(again.totals.out_of_range, 0);
    let written = support::maildir_bodies(&out.path().join(user.mail.to_lowercase()));
    support::assert_exactly_once(&user, &written, "after widening the limit");

    // Narrowing it again removes nothing that was migrated.
    let narrowed = run_into(&sim, out.path(), options(Some(since)))
        .await
        .unwrap();
    assert_eq!(narrowed.totals.messages, 0);
    let written = support::maildir_bodies(&out.path().join(user.mail.to_lowercase()));
    support::assert_exactly_once(&user, &written, "after narrowing the limit again");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_plan_counts_every_workload_as_the_tenant_holds_it() {
    let sim = sim(2, 30).await;
    let source = support::source_config(&sim);
    let secret = Secret::new(sim.client_secret());
    let planned = plan(&source, &secret, &RunOptions::default())
        .await
        .unwrap();
    let tenant = sim.tenant();
    assert_eq!(planned.users.len(), tenant.users.len());
    let (mut events, mut contacts, mut tasks) = (0, 0, 0);
    for user in &tenant.users {
        let row = planned
            .users
            .iter()
            .find(|r| r.address.eq_ignore_ascii_case(&user.mail))
            .unwrap();
        assert_eq!(row.problem, None);
        // System folders (and their subfolders) are left out by default.
        let system = |f: &migrator_sim::MailFolder| {
            f.well_known_name
                .as_deref()
                .is_some_and(|w| migrator_core::graph::mail::SYSTEM_WELL_KNOWN.contains(&w))
        };
        let under_system = |f: &migrator_sim::MailFolder| {
            f.parent_id
                .as_ref()
                .is_some_and(|p| user.folders.iter().any(|x| &x.id == p && system(x)))
        };
        let folders: Vec<_> = user
            .folders
            .iter()
            .filter(|f| !f.is_search_folder && !system(f) && !under_system(f))
            .collect();
        let messages: usize = folders.iter().map(|f| f.messages.len()).sum();
        let lists: Vec<_> = user
            .todo_lists
            .iter()
            .filter(|l| l.wellknown_list_name != "flaggedEmails")
            .collect();
        let expected = (
            folders.len(),
            messages,
            user.calendars.len(),
            user.calendars.iter().map(|c| c.events.len()).sum::<usize>(),
            user.contact_folders.len(),
            user.contact_folders
                .iter()
                .map(|f| f.contacts.len())
                .sum::<usize>(),
            lists.len(),
            lists.iter().map(|l| l.tasks.len()).sum::<usize>(),
        );
        let got = (
            row.folders as usize,
            row.items as usize,
            row.calendars as usize,
            row.events as usize,
            row.contact_folders as usize,
            row.contacts as usize,
            row.task_lists as usize,
            row.tasks as usize,
        );
        assert_eq!(got, expected, "{}", user.mail);
        assert!(
            expected.3 > 0 && expected.5 > 0 && expected.7 > 0,
            "{expected:?}"
        );
        events += expected.3;
        contacts += expected.5;
        tasks += expected.7;
        assert_eq!(row.out_of_range, 0);
    }
    assert_eq!(
        (planned.events, planned.contacts, planned.tasks),
        (events as u64, contacts as u64, tasks as u64)
    );
    let all_workloads_requests = planned.requests;

    // Mail and calendars only, with date limits: the counts follow the limits.
    let user = &tenant.users[0];
    let since = middle_day(user);
    let far = parse_date("2100-01-01");
    let limited = RunOptions {
        workloads: vec![Workload::Mail, Workload::Calendar],
        limits: DateLimits {
            mail_since: Some(since),
            calendar_since: far,
            ..DateLimits::default()
        },
        users: UserSelection {
            include: vec![user.mail.clone()],
            ..UserSelection::default()
        },
        ..RunOptions::default()
    };
    let planned = plan(&source, &secret, &limited).await.unwrap();
    let row = &planned.users[0];
    let (newer, older): (Vec<_>, Vec<_>) = user
        .folders
        .iter()
        .filter(|f| !f.is_search_folder)
        .flat_map(|f| &f.messages)
        .partition(|m| m.received.to_offset(time::UtcOffset::UTC).date() >= since);
    // Only series without an end date reach 2100.
    let open_series = user
        .calendars
        .iter()
        .flat_map(|c| &c.events)
        .filter(|e| {
            e.recurrence.as_ref().is_some_and(|r| {
                !matches!(r.range.end, migrator_sim::calendar::RangeEnd::EndDate(_))
            })
        })
        .count();
    let all_events: usize = user.calendars.iter().map(|c| c.events.len()).sum();
    assert_eq!(row.items as usize, newer.len());
    assert_eq!(row.events as usize, open_series);
    assert_eq!(
        row.out_of_range as usize,
        older.len() + all_events - open_series
    );
    assert_eq!((row.contacts, row.tasks), (0, 0));
    assert!(planned.requests < all_workloads_requests);
}

#[tokio::test(flavor = "multi_thread")]
async fn events_that_ended_before_calendar_since_are_not_read_nor_written() {
    let sim = sim(1, 1).await;
    let user = sim.tenant().users[0].clone();
    // By 2100 every single event and every series with an end date has ended; series without
    // an end date, or with a number of occurrences, are kept whole.
    let (kept, left): (Vec<_>, Vec<_>) =
        user.calendars
            .iter()
            .flat_map(|c| &c.events)
            .partition(|e| {
                e.recurrence.as_ref().is_some_and(|r| {
                    !matches!(r.range.end, migrator_sim::calendar::RangeEnd::EndDate(_))
                })
            });
    assert!(!left.is_empty());
    let out = tempfile::tempdir().unwrap();
    let options = RunOptions {
        workloads: vec![Workload::Calendar],
        limits: DateLimits {
            calendar_since: parse_date("2100-01-01"),
            ..DateLimits::default()
        },
        ..RunOptions::default()
    };
    let summary = run_into(&sim, out.path(), options).await.unwrap();
    assert_eq!(summary.totals.events as usize, kept.len(), "{summary:?}");
    assert_eq!(summary.totals.out_of_range as usize, left.len());
    assert_eq!(summary.totals.failed, 0);
    let written = std::fs::read_dir(out.path().join(user.mail.to_lowercase()).join("calendars"))
        .unwrap()
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
        .filter(|f| f.as_ref().unwrap().path().extension() == Some("ics".as_ref()))
        .count();
    assert_eq!(written, kept.len());
    // Neither a left-out series' exceptions nor a left-out event's attachments were read.
    let requests = sim.requests();
    for e in &left {
        let item = format!("/events/{}", segment(&e.id));
        assert!(
            !requests.iter().any(|r| r.path_and_query.contains(&item)),
            "a left-out event was read: {}",
            e.subject
        );
    }
}
