//! The journal's contract, run against both backends: the SQLite file in a state folder and a
//! private PostgreSQL ([`support::postgres`]). Each case is a function of an opener ("open the
//! same journal again", as a new process would) and runs twice: `<case>::sqlite` and
//! `<case>::postgres`.

use crate::support;

use migrator_core::journal::{
    GroupwareDone, ItemState, ItemTarget, Journal, JournalError, MailDetails, MailDone, MovedFrom,
    PageRecords, PostgresSettings,
};

/// Where a case's journal lives; [`Store::open`] opens it again each time.
enum Store {
    Sqlite(tempfile::TempDir),
    Postgres(support::postgres::Postgres),
}

impl Store {
    fn sqlite() -> Store {
        Store::Sqlite(tempfile::tempdir().expect("temp dir"))
    }

    fn postgres() -> Store {
        Store::Postgres(support::postgres::Postgres::start())
    }

    fn open(&self) -> Journal {
        match self {
            Store::Sqlite(dir) => Journal::open(&dir.path().join("state")).expect("journal opens"),
            Store::Postgres(pg) => {
                let settings = PostgresSettings::parse(&pg.url()).expect("the test URL parses");
                Journal::open_postgres(&settings, Some(&pg.password()))
                    .unwrap_or_else(|e| panic!("journal opens: {e:?}\n{}", pg.log()))
            }
        }
    }
}

/// Runs `case` against each backend, as `<name>::sqlite` and `<name>::postgres`.
macro_rules! on_both_backends {
    ($name:ident) => {
        mod $name {
            #[test]
            fn sqlite() {
                super::$name(&super::Store::sqlite());
            }
            #[test]
            fn postgres() {
                super::$name(&super::Store::postgres());
            }
        }
    };
}

fn target(id: &str) -> ItemTarget<'_> {
    ItemTarget {
        user_id: "u1",
        source_id: id,
        folder_id: "f1",
        dest_folder: ".Projects",
    }
}

on_both_backends!(intent_then_done_survives_reopening);
fn intent_then_done_survives_reopening(store: &Store) {
    {
        let j = store.open();
        let run = j.begin_run().unwrap();
        j.record_intent(target("m1"), run).unwrap();
        j.record_intent(target("m2"), run).unwrap();
        j.record_done("u1", "m1", "1700.Mab.m365:2,S", 42, Some("abc"))
            .unwrap();
        // A crash here leaves m2 pending.
    }
    let j = store.open();
    let m1 = j.item("u1", "m1").unwrap().unwrap();
    assert_eq!(m1.state, ItemState::Done);
    assert_eq!(m1.size, Some(42));
    assert_eq!(m1.hash.as_deref(), Some("abc"));
    assert_eq!(m1.dest_ref.as_deref(), Some("1700.Mab.m365:2,S"));
    let pending = j.items_in_state("u1", ItemState::Pending).unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].source_id, "m2");

    // A new intent never downgrades a done item.
    let run = j.begin_run().unwrap();
    j.record_intent(target("m1"), run).unwrap();
    assert_eq!(j.item("u1", "m1").unwrap().unwrap().state, ItemState::Done);

    j.record_failed("u1", "m2", "server said NO").unwrap();
    let m2 = j.item("u1", "m2").unwrap().unwrap();
    assert_eq!(
        (m2.state, m2.reason.as_deref()),
        (ItemState::Failed, Some("server said NO"))
    );
    assert_eq!(j.item("u1", "nope").unwrap(), None);
}

on_both_backends!(a_page_of_intents_is_recorded_together_and_read_back_by_id);
fn a_page_of_intents_is_recorded_together_and_read_back_by_id(store: &Store) {
    let j = store.open();
    let run = j.begin_run().unwrap();
    j.record_intent(target("m0"), run).unwrap();
    j.record_done("u1", "m0", "0", 5, None).unwrap();
    let ids: Vec<String> = (0..120).map(|i| format!("m{i}")).collect();
    let targets: Vec<ItemTarget<'_>> = ids.iter().map(|id| target(id)).collect();
    j.record_intents("mail", &targets, run).unwrap();
    j.record_intents("mail", &[], run).unwrap();
    let asked: Vec<&str> = ids.iter().map(String::as_str).chain(["absent"]).collect();
    let found = store.open().items_by_id("u1", &asked).unwrap();
    assert_eq!(found.len(), 120, "every recorded item, none other");
    assert_eq!(found["m0"].state, ItemState::Done, "a done record is kept");
    assert_eq!(found["m119"].state, ItemState::Pending);
    assert_eq!(found["m119"].dest_folder, ".Projects");
    assert!(store.open().items_by_id("u2", &asked).unwrap().is_empty());
}

on_both_backends!(delta_links_are_kept_per_folder);
fn delta_links_are_kept_per_folder(store: &Store) {
    let j = store.open();
    j.set_folder("u1", "f1", ".A", Some("https://graph/delta?token=1"))
        .unwrap();
    j.set_folder("u1", "f1", ".A", None).unwrap();
    assert_eq!(
        j.delta_link("u1", "f1").unwrap().as_deref(),
        Some("https://graph/delta?token=1")
    );
    assert_eq!(j.delta_link("u1", "f2").unwrap(), None);
    j.forget_folder("u1", "f1").unwrap();
    assert_eq!(j.delta_link("u1", "f1").unwrap(), None);
}

on_both_backends!(a_folders_round_begins_reading_its_link_and_ends_in_one_call);
fn a_folders_round_begins_reading_its_link_and_ends_in_one_call(store: &Store) {
    let j = store.open();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let run = j.begin_run().unwrap();
    let begin = |name| runtime.block_on(j.set_folder_reading_link_async("u1", "f1", name));
    assert_eq!(begin(".A").unwrap(), None, "a new folder has no link");
    j.record_intent(target("m1"), run).unwrap();
    j.record_done("u1", "m1", "1", 5, None).unwrap();
    let later = j.begin_run().unwrap();
    let link = "https://graph/delta?token=2";
    runtime
        .block_on(j.end_folder_round_async(("u1", "f1", ".A"), later, true, Some(link)))
        .unwrap();
    assert_eq!(
        j.item("u1", "m1").unwrap().unwrap().gone_from.as_deref(),
        Some("f1"),
        "not seen in the full round: gone"
    );
    assert_eq!(
        begin(".B").unwrap().as_deref(),
        Some(link),
        "read as stored"
    );
    assert_eq!(
        j.folders_of("u1").unwrap(),
        vec![("f1".to_string(), ".B".to_string())],
        "renamed, link kept"
    );
    assert_eq!(j.delta_link("u1", "f1").unwrap().as_deref(), Some(link));
    // An incremental round without a new link changes nothing.
    runtime
        .block_on(j.end_folder_round_async(("u1", "f1", ".B"), later, false, None))
        .unwrap();
    assert_eq!(j.delta_link("u1", "f1").unwrap().as_deref(), Some(link));
}

on_both_backends!(groupware_delta_links_stay_out_of_the_mail_folders_and_versions_are_kept);
fn groupware_delta_links_stay_out_of_the_mail_folders_and_versions_are_kept(store: &Store) {
    {
        let j = store.open();
        j.set_folder("u1", "f1", ".A", Some("https://graph/mail"))
            .unwrap();
        j.set_folder_as(
            "contact",
            "u1",
            "contacts",
            "contacts",
            Some("https://graph/c"),
        )
        .unwrap();
        let run = j.begin_run().unwrap();
        j.record_intent_as("contact", target("c1"), run).unwrap();
        j.record_done("u1", "c1", "c1.vcf", 3, Some("h")).unwrap();
        j.record_source_version("u1", "c1", Some("ck-1")).unwrap();
        j.record_etag("u1", "c1", Some("\"e1\"")).unwrap();
        j.record_no_photo_at("u1", "c1", Some("ck-1")).unwrap();
    }
    // Reopening an existing journal neither fails nor loses anything.
    let j = store.open();
    assert_eq!(
        j.folders_of("u1").unwrap(),
        [("f1".to_string(), ".A".to_string())],
        "the mail pass never forgets a groupware collection's link"
    );
    assert_eq!(
        j.delta_link("u1", "contacts").unwrap().as_deref(),
        Some("https://graph/c")
    );
    let c1 = j.item("u1", "c1").unwrap().unwrap();
    assert_eq!(c1.source_version.as_deref(), Some("ck-1"));
    assert_eq!(c1.etag.as_deref(), Some("\"e1\""));
    assert_eq!(c1.kind, "contact");
    assert_eq!(j.no_photo_at("u1", "c1").unwrap().as_deref(), Some("ck-1"));
    assert_eq!(j.no_photo_at("u1", "nope").unwrap(), None);
    j.clear_delta_link("u1", "contacts").unwrap();
    assert_eq!(j.delta_link("u1", "contacts").unwrap(), None);
    j.mark_found("u1", "c1").unwrap();
    assert!(!j.item("u1", "c1").unwrap().unwrap().created);
    j.forget("u1", "c1").unwrap();
    assert_eq!(j.item("u1", "c1").unwrap(), None);
}

on_both_backends!(gone_items_are_settled_by_the_folder_they_live_in);
fn gone_items_are_settled_by_the_folder_they_live_in(store: &Store) {
    let j = store.open();
    let run = j.begin_run().unwrap();
    for id in ["a", "b", "c"] {
        j.record_intent(target(id), run).unwrap();
        let details = MailDetails {
            message_id: Some(format!("<{id}@example.com>")),
            header_hash: Some("hh".into()),
            received: Some(1_700_000_000),
            flags: Some("\\Seen".into()),
        };
        j.record_mail_done(
            "u1",
            id,
            MailDone {
                dest_ref: "x",
                size: 1,
                hash: None,
                details: &details,
                created: true,
                run,
            },
        )
        .unwrap();
    }
    let a = j.item("u1", "a").unwrap().unwrap();
    assert_eq!(a.mail.message_id.as_deref(), Some("<a@example.com>"));
    assert_eq!(a.mail.received, Some(1_700_000_000));
    assert!(a.created);
    // a: removed from f1 and added to f2 (a move), in either order.
    j.mark_gone("u1", "a", "f1").unwrap();
    let moved = ItemTarget {
        folder_id: "f2",
        dest_folder: ".Other",
        ..target("a")
    };
    j.record_moved(moved, "y", run).unwrap();
    j.mark_gone("u1", "a", "f1").unwrap();
    // b: deleted. c: missing from a later full round.
    j.mark_gone("u1", "b", "f1").unwrap();
    let next = j.begin_run().unwrap();
    assert!(next > run, "run ids grow");
    j.mark_seen("u1", "a", next).unwrap();
    j.mark_seen("u1", "b", next).unwrap();
    assert_eq!(j.mark_unseen_gone("u1", "f1", next).unwrap(), 1);
    let gone: Vec<String> = j
        .gone_items("u1")
        .unwrap()
        .into_iter()
        .map(|r| r.source_id)
        .collect();
    assert_eq!(gone, ["c"], "seen in the round clears b's mark; a moved");
    // Another workload's item in the same table stays out of mail's bookkeeping.
    let event = ItemTarget {
        folder_id: "calendar-1",
        dest_folder: "/dav/calendar/",
        ..target("e1")
    };
    j.record_intent_as("event", event, next).unwrap();
    j.record_done("u1", "e1", "/dav/calendar/e1.ics", 10, None)
        .unwrap();
    j.mark_folder_gone("u1", "calendar-1").unwrap();
    let e1 = j.item("u1", "e1").unwrap().unwrap();
    assert_eq!((e1.kind.as_str(), e1.gone_from), ("event", None));
    j.record_removed("u1", "c").unwrap();
    j.mark_seen("u1", "c", next).unwrap();
    assert_eq!(j.item("u1", "c").unwrap().unwrap().state, ItemState::Done);
    assert_eq!(j.item("u1", "a").unwrap().unwrap().dest_folder, ".Other");
    let in_f2: Vec<String> = j
        .items_in_folder("u1", "f2")
        .unwrap()
        .into_iter()
        .map(|r| r.source_id)
        .collect();
    assert_eq!(in_f2, ["a"]);
    j.record_flags("u1", "a", "\\Seen \\Flagged", "z").unwrap();
    let a = j.item("u1", "a").unwrap().unwrap();
    assert_eq!(
        (a.mail.flags.as_deref(), a.dest_ref.as_deref()),
        (Some("\\Seen \\Flagged"), Some("z"))
    );
}

on_both_backends!(a_moves_old_copy_is_kept_until_done);
fn a_moves_old_copy_is_kept_until_done(store: &Store) {
    let from = MovedFrom {
        folder_id: "f1".into(),
        dest_folder: ".Projects".into(),
        dest_ref: "c1.vcf".into(),
        etag: Some("\"1\"".into()),
    };
    {
        let j = store.open();
        let run = j.begin_run().unwrap();
        j.record_intent_as("contact", target("c1"), run).unwrap();
        j.record_done("u1", "c1", "c1.vcf", 3, Some("h")).unwrap();
        let moved = ItemTarget {
            folder_id: "f2",
            dest_folder: "contacts/Other",
            ..target("c1")
        };
        let run = j.begin_run().unwrap();
        j.record_intent_as("contact", moved, run).unwrap();
        j.record_moved_from("u1", "c1", &from).unwrap();
    }
    // A crash here: the next run still knows where the old copy is.
    let j = store.open();
    let c1 = j.item("u1", "c1").unwrap().unwrap();
    assert_eq!(c1.state, ItemState::Pending);
    assert_eq!(c1.folder_id, "f2");
    assert_eq!(c1.moved_from, Some(from));
    let pending = j
        .items_of_kind_in_folder("u1", "f2", "contact", ItemState::Pending)
        .unwrap();
    assert_eq!(pending.len(), 1);
    j.record_done("u1", "c1", "c1.vcf", 3, Some("h")).unwrap();
    assert_eq!(j.item("u1", "c1").unwrap().unwrap().moved_from, None);
}

on_both_backends!(a_groupware_page_is_recorded_together_and_its_done_records_carry_etag_and_found);
fn a_groupware_page_is_recorded_together_and_its_done_records_carry_etag_and_found(store: &Store) {
    let from = MovedFrom {
        folder_id: "f0".into(),
        dest_folder: "contacts/Old".into(),
        dest_ref: "c1.vcf".into(),
        etag: None,
    };
    let run = {
        let j = store.open();
        let run = j.begin_run().unwrap();
        j.record_intent_as("contact", target("c0"), run).unwrap();
        let done = GroupwareDone {
            dest_ref: "c0.vcf",
            size: 3,
            version: Some("v1"),
            etag: Some("\"e0\""),
            ..GroupwareDone::default()
        };
        j.record_done_at_version("u1", "c0", &done).unwrap();
        let page = PageRecords {
            user_id: "u1",
            intents: vec![(target("c1"), Some(&from)), (target("c2"), None)],
            versions: vec![("c0", Some("v2"))],
            no_photo_at: vec![("c0", Some("v2")), ("c2", Some("v9"))],
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime
            .block_on(j.record_page_async("contact", &page, run))
            .unwrap();
        run
    };
    // A crash here: every intent of the page is recorded, with where the moved item was.
    let j = store.open();
    let found = j.items_by_id("u1", &["c0", "c1", "c2"]).unwrap();
    assert_eq!(found["c1"].state, ItemState::Pending);
    assert_eq!(found["c1"].kind, "contact");
    assert_eq!(found["c1"].moved_from, Some(from));
    assert_eq!(found["c2"].state, ItemState::Pending);
    assert_eq!(found["c2"].no_photo_at.as_deref(), Some("v9"));
    let c0 = &found["c0"];
    assert_eq!(
        (
            c0.state.clone(),
            c0.source_version.as_deref(),
            c0.no_photo_at.as_deref()
        ),
        (ItemState::Done, Some("v2"), Some("v2")),
        "an unchanged item keeps its done record, at its new version"
    );
    assert_eq!(c0.etag.as_deref(), Some("\"e0\""));
    assert!(c0.created);

    // The user's copy found at the destination; ours written with its ETag.
    let c1 = GroupwareDone {
        dest_ref: "c1.vcf",
        size: 4,
        etag: Some("\"e1\""),
        found: true,
        ..GroupwareDone::default()
    };
    j.record_done_at_version("u1", "c1", &c1).unwrap();
    let c2 = GroupwareDone {
        dest_ref: "c2.vcf",
        size: 5,
        ..GroupwareDone::default()
    };
    j.record_done_at_version("u1", "c2", &c2).unwrap();
    let found = j.items_by_id("u1", &["c1", "c2"]).unwrap();
    let state = |id: &str| {
        let r = &found[id];
        (
            r.state.clone(),
            r.created,
            r.etag.clone(),
            r.moved_from.clone(),
        )
    };
    assert_eq!(
        state("c1"),
        (ItemState::Done, false, Some("\"e1\"".into()), None)
    );
    assert_eq!(state("c2"), (ItemState::Done, true, None, None));
    let _ = run;
}

on_both_backends!(runs_users_and_report_queries_read_what_was_recorded);
fn runs_users_and_report_queries_read_what_was_recorded(store: &Store) {
    let j = store.open();
    let run = j.begin_run().unwrap();
    j.set_user_state("u1", "ann@example.com", "started")
        .unwrap();
    j.set_user_note("u1", "ann@example.com", Some("online archive not migrated"))
        .unwrap();
    j.set_user_state("u1", "ann@example.com", "finished")
        .unwrap();
    j.set_user_note("u2", "bob@example.com", None).unwrap();
    for (id, size) in [("m1", 10u64), ("m2", 32)] {
        j.record_intent(target(id), run).unwrap();
        j.record_done("u1", id, id, size, None).unwrap();
    }
    j.record_intent(target("m3"), run).unwrap();
    j.record_failed("u1", "m3", "too large").unwrap();
    j.record_failure_details("u1", "m3", Some("Budget"), Some(1_700_000_000), Some(99))
        .unwrap();
    j.record_failure_details("u1", "m3", None, None, None)
        .unwrap();
    j.finish_run(run, "finished", "{\"ok\":true}").unwrap();

    let runs = j.runs().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (
            runs[0].id,
            runs[0].status.as_str(),
            runs[0].summary.as_deref()
        ),
        (run, "finished", Some("{\"ok\":true}"))
    );
    assert!(runs[0].finished_at.is_some());
    let users = j.users().unwrap();
    let shown: Vec<_> = users
        .iter()
        .map(|u| (u.address.as_str(), u.state.as_str(), u.note.as_deref()))
        .collect();
    assert_eq!(
        shown,
        [
            (
                "ann@example.com",
                "finished",
                Some("online archive not migrated")
            ),
            ("bob@example.com", "pending", None)
        ]
    );
    let groups: Vec<_> = j
        .item_groups()
        .unwrap()
        .into_iter()
        .map(|g| (g.state, g.count, g.bytes))
        .collect();
    assert_eq!(
        groups,
        [("done".to_string(), 2, 42), ("failed".to_string(), 1, 0)]
    );
    let failed = j.failed_items().unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(
        (
            failed[0].source_id.as_str(),
            failed[0].reason.as_str(),
            failed[0].subject.as_deref(),
            failed[0].date,
            failed[0].size
        ),
        (
            "m3",
            "too large",
            Some("Budget"),
            Some(1_700_000_000),
            Some(99)
        )
    );
    let minutes = j.done_per_minute(run).unwrap();
    assert_eq!(
        (
            minutes.iter().map(|m| m.items).sum::<u64>(),
            minutes.iter().map(|m| m.bytes).sum::<u64>()
        ),
        (2, 42)
    );
    assert!(minutes.iter().all(|m| m.minute % 60 == 0));
    let spans = j.user_spans().unwrap();
    assert_eq!(spans.len(), 1);
    assert!(spans[0].first <= spans[0].last);
}

on_both_backends!(new_date_limits_drop_the_users_delta_links_together);
fn new_date_limits_drop_the_users_delta_links_together(store: &Store) {
    let j = store.open();
    assert_eq!(j.user_limits("u1").unwrap(), None);
    j.set_folder("u1", "f1", ".A", Some("https://graph/d1"))
        .unwrap();
    j.set_folder("u2", "f1", ".A", Some("https://graph/d2"))
        .unwrap();
    j.set_user_limits("u1", "after=2024-01-01").unwrap();
    assert_eq!(
        j.user_limits("u1").unwrap().as_deref(),
        Some("after=2024-01-01")
    );
    assert_eq!(j.delta_link("u1", "f1").unwrap(), None);
    assert_eq!(
        j.delta_link("u2", "f1").unwrap().as_deref(),
        Some("https://graph/d2"),
        "another user's links stay"
    );
    j.set_user_limits("u1", "").unwrap();
    assert_eq!(j.user_limits("u1").unwrap().as_deref(), Some(""));
}

#[test]
fn postgres_journal_workers_opening_together_apply_each_migration_once() {
    let pg = support::postgres::Postgres::start();
    let settings = PostgresSettings::parse(&pg.url()).unwrap();
    std::thread::scope(|s| {
        let opens: Vec<_> = (0..4)
            .map(|_| s.spawn(|| Journal::open_postgres(&settings, Some(&pg.password()))))
            .collect();
        for open in opens {
            open.join()
                .unwrap()
                .expect("every worker opens the journal");
        }
    });
    assert_eq!(
        pg.psql("SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_migrations"),
        "1,2,3,4"
    );
}

#[test]
fn postgres_journal_of_a_newer_version_is_refused() {
    let pg = support::postgres::Postgres::start();
    let settings = PostgresSettings::parse(&pg.url()).unwrap();
    drop(Journal::open_postgres(&settings, Some(&pg.password())).unwrap());
    pg.psql("INSERT INTO schema_migrations (version) VALUES (999)");
    match Journal::open_postgres(&settings, Some(&pg.password())) {
        Err(JournalError::NewerPostgresSchema { found, .. }) => assert_eq!(found, 999),
        other => panic!("expected a newer schema, got {other:?}"),
    }
}

#[test]
fn postgres_journal_with_a_wrong_password_names_the_server_and_not_the_password() {
    let pg = support::postgres::Postgres::start();
    let settings = PostgresSettings::parse(&pg.url()).unwrap();
    let wrong = migrator_core::secrets::Secret::new("not-the-password-4711");
    let err = Journal::open_postgres(&settings, Some(&wrong)).unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(matches!(err, JournalError::Postgres { .. }), "{err:?}");
    assert!(
        text.contains(&format!("127.0.0.1:{}", pg.port)),
        "names the server: {text}"
    );
    assert!(!text.contains("not-the-password-4711"), "{text}");
}

/// The simulated tenant of `users` mailboxes with `messages` messages each.
async fn sim_tenant(users: usize, messages: usize) -> migrator_sim::SimServer {
    migrator_sim::SimServer::start(migrator_sim::SimConfig {
        tenant: migrator_sim::TenantSpec {
            users,
            messages_per_user: messages,
            ..migrator_sim::TenantSpec::default()
        },
        ..migrator_sim::SimConfig::default()
    })
    .await
    .expect("the simulator starts")
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_journal_a_run_records_there_and_a_rerun_writes_nothing() {
    use migrator_core::engine::{run_to_folder_with, RunControl, RunOptions};
    use migrator_core::progress::{ProgressEvent, Reporter};
    use std::sync::Arc;

    let pg = support::postgres::Postgres::start_trusting();
    let sim = sim_tenant(2, 15).await;
    let dir = tempfile::tempdir().unwrap();
    let (out, state) = (dir.path().join("out"), dir.path().join("state"));
    let (source, secret) = (
        support::source_config(&sim),
        migrator_core::secrets::Secret::new(sim.client_secret()),
    );
    let options = RunOptions {
        state_dir: Some(state.clone()),
        journal: Some(PostgresSettings::parse(&pg.url()).unwrap()),
        ..RunOptions::default()
    };
    let quiet = || -> Arc<dyn Reporter> { Arc::new(|_: ProgressEvent| {}) };
    let first = run_to_folder_with(
        &source,
        &secret,
        &out,
        quiet(),
        RunControl::new(),
        options.clone(),
    )
    .await
    .expect("the first run");
    assert_eq!(first.totals.messages, 30, "{first:?}");
    let second = run_to_folder_with(
        &source,
        &secret,
        &out,
        quiet(),
        RunControl::new(),
        options.clone(),
    )
    .await
    .expect("the second run");
    assert_eq!(
        support::written(&second),
        0,
        "the rerun wrote again: {second:?}"
    );

    assert!(
        !state.join(Journal::FILE_NAME).exists(),
        "no SQLite journal beside the PostgreSQL one"
    );
    assert_eq!(
        pg.psql("SELECT count(*) FROM items WHERE kind = 'mail' AND state = 'done'"),
        "30"
    );
    assert_eq!(
        pg.psql("SELECT count(*) FROM runs WHERE status = 'finished'"),
        "2"
    );
    let journal = options.open_journal(&state).unwrap();
    let report = migrator_core::engine::Report::from_journal(&journal).unwrap();
    assert_eq!(report.users.len(), 2);
}

#[test]
fn postgres_leases_workers_taking_at_once_never_get_the_same_mailbox() {
    use std::time::Duration;
    let pg = support::postgres::Postgres::start();
    let settings = PostgresSettings::parse(&pg.url()).unwrap();
    let open = || Journal::open_postgres(&settings, Some(&pg.password())).unwrap();
    let setup = open();
    const WORKERS: usize = 4;
    const EACH: usize = 50;
    let sizes: Vec<(String, u64)> = (0..(WORKERS * EACH) as u64)
        .map(|i| (format!("user-{i:03}"), (i * 7919) % 1000))
        .collect();
    for (mailbox, size) in &sizes {
        setup.enqueue_mailbox(mailbox, *size).unwrap();
    }
    // The workers take in lockstep (a barrier before each take), so every take races the
    // others'.
    let barrier = std::sync::Barrier::new(WORKERS);
    let taken: Vec<Vec<(String, i64)>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..WORKERS)
            .map(|w| {
                let name = format!("worker-{w}");
                let journal = open();
                let barrier = &barrier;
                s.spawn(move || {
                    let mut mine = Vec::new();
                    // One round more than each worker's share: the last finds none.
                    for _ in 0..=EACH {
                        barrier.wait();
                        let lease = journal
                            .take_next_mailbox(&name, Duration::from_secs(600))
                            .unwrap();
                        if let Some(lease) = lease {
                            assert_eq!(lease.worker, name);
                            mine.push((lease.mailbox, lease.fencing_token));
                        }
                    }
                    mine
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let mut all: Vec<&String> = taken.iter().flatten().map(|(m, _)| m).collect();
    all.sort();
    let before = all.len();
    all.dedup();
    assert_eq!(before, all.len(), "a mailbox was taken twice: {taken:?}");
    assert_eq!(
        all.len(),
        WORKERS * EACH,
        "every mailbox taken once: {taken:?}"
    );
    assert!(
        taken.iter().all(|mine| mine.len() == EACH),
        "takes at once get a mailbox each: {taken:?}"
    );
    let size = |m: &str| sizes.iter().find(|(n, _)| n == m).unwrap().1;
    for mine in &taken {
        assert!(
            mine.windows(2).all(|w| size(&w[0].0) >= size(&w[1].0)),
            "largest first: {mine:?}"
        );
    }
    let mut tokens: Vec<i64> = taken.iter().flatten().map(|(_, t)| *t).collect();
    tokens.sort();
    tokens.dedup();
    assert_eq!(
        tokens.len(),
        WORKERS * EACH,
        "each take draws its own fencing token"
    );
    assert_eq!(
        setup
            .take_next_mailbox("worker-c", Duration::from_secs(600))
            .unwrap(),
        None,
        "every lease is live"
    );
}

#[test]
fn postgres_leases_a_write_with_a_stale_fencing_token_is_refused() {
    use std::time::Duration;
    let pg = support::postgres::Postgres::start();
    let settings = PostgresSettings::parse(&pg.url()).unwrap();
    let j = Journal::open_postgres(&settings, Some(&pg.password())).unwrap();
    let ttl = Duration::from_secs(600);
    j.enqueue_mailbox("u1", 10).unwrap();
    let run = j.begin_run().unwrap();
    for id in ["m1", "m2"] {
        j.record_intent(target(id), run).unwrap();
    }
    let a = j.take_next_mailbox("worker-a", ttl).unwrap().unwrap();
    j.renew_lease(&a, ttl).unwrap();
    j.record_done_under(&a, "m1", "1", 5, None).unwrap();
    assert_eq!(j.item("u1", "m1").unwrap().unwrap().state, ItemState::Done);

    // worker-a is paused past its lease (the expiry is set back rather than waited for).
    pg.psql("UPDATE leases SET expires_at = now() - interval '1 second'");
    let refused = j.record_done_under(&a, "m2", "2", 5, None).unwrap_err();
    assert!(
        matches!(refused, JournalError::LeaseLost { ref mailbox, ref worker } if mailbox == "u1" && worker == "worker-a"),
        "an expired lease writes nothing: {refused:?}"
    );
    let b = j.take_next_mailbox("worker-b", ttl).unwrap().unwrap();
    assert_eq!(b.mailbox, "u1");
    assert!(b.fencing_token > a.fencing_token);
    for refused in [
        j.record_done_under(&a, "m2", "2", 5, None),
        j.renew_lease(&a, ttl),
        j.finish_mailbox(&a),
    ] {
        assert!(
            matches!(refused, Err(JournalError::LeaseLost { .. })),
            "{refused:?}"
        );
    }
    let m2 = j.item("u1", "m2").unwrap().unwrap();
    assert_eq!(
        (m2.state, m2.dest_ref),
        (ItemState::Pending, None),
        "nothing of worker-a's stale writes was recorded"
    );
    j.record_done_under(&b, "m2", "2", 5, None).unwrap();
    j.finish_mailbox(&b).unwrap();
    assert_eq!(j.item("u1", "m2").unwrap().unwrap().state, ItemState::Done);
    assert_eq!(j.take_next_mailbox("worker-c", ttl).unwrap(), None, "done");
}

#[test]
fn sqlite_journal_has_no_leases() {
    let store = Store::sqlite();
    let j = store.open();
    let err = j
        .take_next_mailbox("w", std::time::Duration::from_secs(60))
        .unwrap_err();
    assert!(matches!(err, JournalError::NeedsPostgres), "{err:?}");
}

/// Mailbox `u1` queued and leased to `worker-a` for 600 s: the lease's fenced handle and a run
/// begun through it.
fn fenced_u1(j: &Journal) -> (Journal, i64) {
    let ttl = std::time::Duration::from_secs(600);
    j.enqueue_mailbox("u1", 10).unwrap();
    let lease = j.take_next_mailbox("worker-a", ttl).unwrap().unwrap();
    let fenced = j.fenced(&lease, ttl).unwrap();
    let run = fenced.begin_run().unwrap();
    (fenced, run)
}

#[test]
fn postgres_fenced_handle_refuses_every_write_after_the_lease_is_lost() {
    use std::time::Duration;
    let pg = support::postgres::Postgres::start();
    let settings = PostgresSettings::parse(&pg.url()).unwrap();
    let j = Journal::open_postgres(&settings, Some(&pg.password())).unwrap();
    let ttl = Duration::from_secs(600);
    let (fenced, run) = fenced_u1(&j);
    fenced.record_intent(target("m1"), run).unwrap();
    fenced.record_done("u1", "m1", "1", 5, None).unwrap();

    // Taken over in the database: every write through the old handle is refused there.
    pg.psql("UPDATE leases SET expires_at = now() - interval '1 second'");
    let b = j.take_next_mailbox("worker-b", ttl).unwrap().unwrap();
    let refused = [
        fenced.record_intent(target("m2"), run).map(|_| ()),
        fenced.begin_run().map(|_| ()),
        fenced.finish_run(run, "finished", "{}"),
        fenced.set_folder("u1", "inbox", "INBOX", Some("delta-2")),
    ];
    for r in refused {
        assert!(matches!(r, Err(JournalError::LeaseLost { .. })), "{r:?}");
    }
    assert_eq!(j.item("u1", "m2").unwrap(), None, "no intent recorded");
    assert_eq!(j.runs().unwrap().len(), 1, "no run begun");
    assert_eq!(j.delta_link("u1", "inbox").unwrap(), None);

    // A handle whose deadline has passed by the local clock refuses without asking the
    // database, reads too: a worker paused past its lease stops at its next call.
    let late = j.fenced(&b, Duration::ZERO).unwrap();
    assert!(matches!(
        late.check_fence(),
        Err(JournalError::LeaseLost { .. })
    ));
    assert!(matches!(
        late.item("u1", "m1"),
        Err(JournalError::LeaseLost { .. })
    ));
    let live = j.fenced(&b, ttl).unwrap();
    live.record_intent(target("m2"), run).unwrap();
    live.renew_fence(ttl).unwrap();
}

#[test]
fn postgres_report_counts_a_run_as_running_while_a_lease_lives() {
    use std::time::Duration;
    let pg = support::postgres::Postgres::start();
    let settings = PostgresSettings::parse(&pg.url()).unwrap();
    let j = Journal::open_postgres(&settings, Some(&pg.password())).unwrap();
    j.enqueue_mailbox("u1", 10).unwrap();
    j.begin_run().unwrap();
    let status = |j: &Journal| {
        migrator_core::engine::Report::from_journal(j).unwrap().runs[0]
            .status
            .clone()
    };
    assert_eq!(status(&j), "interrupted", "no worker holds a lease");
    let _lease = j
        .take_next_mailbox("worker-a", Duration::from_secs(600))
        .unwrap()
        .unwrap();
    assert_eq!(status(&j), "running", "a worker holds a live lease");
    pg.psql("UPDATE leases SET expires_at = now() - interval '1 second'");
    assert_eq!(status(&j), "interrupted", "its worker died");
}

#[test]
fn postgres_leases_a_worker_without_sizes_keeps_the_known_order() {
    use std::time::Duration;
    let pg = support::postgres::Postgres::start();
    let settings = PostgresSettings::parse(&pg.url()).unwrap();
    let j = Journal::open_postgres(&settings, Some(&pg.password())).unwrap();
    // A worker with the plan's counts queues first; one without them (sizes 0) later.
    j.enqueue_mailbox("z-big", 900).unwrap();
    j.enqueue_mailbox("a-small", 10).unwrap();
    j.enqueue_mailbox("z-big", 0).unwrap();
    j.enqueue_mailbox("a-small", 0).unwrap();
    let ttl = Duration::from_secs(600);
    let first = j.take_next_mailbox("w", ttl).unwrap().unwrap();
    assert_eq!(first.mailbox, "z-big", "largest first, as the counts said");
    j.finish_mailbox(&first).unwrap();
    j.enqueue_mailbox("z-big", 900).unwrap();
    assert_eq!(
        j.take_next_mailbox("w", ttl).unwrap().unwrap().mailbox,
        "a-small",
        "a finished mailbox queued again stays done"
    );
}

/// The TLS state of the journal's own session (`application_name` m365-migrate), as the
/// server sees it (pg_stat_ssl, <https://www.postgresql.org/docs/15/monitoring-stats.html>).
fn journal_session_ssl(pg: &support::postgres::Postgres) -> String {
    pg.psql(
        "SELECT string_agg(s.ssl::text, ',') FROM pg_stat_ssl s
           JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'm365-migrate'",
    )
}

#[test]
fn postgres_tls_verify_full_with_the_test_ca_connects_encrypted() {
    use support::postgres::{Postgres, Tls};
    let (pg, certs) = Postgres::start_tls(Tls::Required);
    let url = pg.url_with(&format!(
        "sslmode=verify-full&sslrootcert={}",
        certs.ca.display()
    ));
    let settings = PostgresSettings::parse(&url).unwrap();
    let journal = Journal::open_postgres(&settings, Some(&pg.password())).unwrap_or_else(|e| {
        panic!(
            "verify-full with the test CA: {}\n{}",
            support::chain(&e),
            pg.log()
        )
    });
    journal.begin_run().expect("a write over TLS");
    assert_eq!(journal_session_ssl(&pg), "true");
}

#[test]
fn postgres_tls_require_encrypts_the_session() {
    use support::postgres::{Postgres, Tls};
    let (pg, _) = Postgres::start_tls(Tls::Offered);
    let settings = PostgresSettings::parse(&pg.url_with("sslmode=require")).unwrap();
    let journal = Journal::open_postgres(&settings, Some(&pg.password()))
        .unwrap_or_else(|e| panic!("sslmode=require: {}\n{}", support::chain(&e), pg.log()));
    journal.begin_run().expect("a write over TLS");
    assert_eq!(journal_session_ssl(&pg), "true");
    drop(journal);
    // The same server without TLS, to show the check tells them apart.
    let settings = PostgresSettings::parse(&pg.url()).unwrap();
    let journal = Journal::open_postgres(&settings, Some(&pg.password())).unwrap();
    journal.begin_run().unwrap();
    assert_eq!(journal_session_ssl(&pg), "false");
}

#[test]
fn postgres_tls_disable_against_a_server_requiring_tls_fails_clearly() {
    use support::postgres::{Postgres, Tls};
    let (pg, _) = Postgres::start_tls(Tls::Required);
    let settings = PostgresSettings::parse(&pg.url()).unwrap();
    let err = Journal::open_postgres(&settings, Some(&pg.password())).unwrap_err();
    let text = support::chain(&err);
    assert!(matches!(err, JournalError::Postgres { .. }), "{err:?}");
    assert!(
        text.contains(&format!("127.0.0.1:{}", pg.port)) && text.contains("no encryption"),
        "names the server and why it refused: {text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_tls_a_wrong_root_certificate_is_refused_before_any_data_moves() {
    use migrator_core::engine::{run_to_folder_with, RunControl, RunOptions};
    use migrator_core::progress::{ProgressEvent, Reporter};
    use std::sync::Arc;
    use support::postgres::{Postgres, Tls};

    let (pg, certs) = Postgres::start_tls(Tls::Required);
    let url = pg.url_with(&format!(
        "sslmode=verify-full&sslrootcert={}",
        certs.other_ca.display()
    ));
    let settings = PostgresSettings::parse(&url).unwrap();
    let err = Journal::open_postgres(&settings, Some(&pg.password())).unwrap_err();
    // The message itself (not only its causes) names the server, the problem and the file
    // that did not vouch for the certificate.
    let text = err.to_string();
    assert!(
        text.contains(&format!("127.0.0.1:{}", pg.port))
            && text.contains("certificate is not signed by")
            && text.contains(&certs.other_ca.display().to_string()),
        "names the server, the certificate problem and sslrootcert: {}",
        support::chain(&err)
    );
    assert!(
        !support::chain(&err).contains(support::postgres::PASSWORD),
        "{text}"
    );

    // A run with it stops before it signs in or writes anything.
    let sim = migrator_sim::SimServer::start(migrator_sim::SimConfig::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let options = RunOptions {
        state_dir: Some(dir.path().join("state")),
        journal: Some(settings),
        ..RunOptions::default()
    };
    let quiet: Arc<dyn Reporter> = Arc::new(|_: ProgressEvent| {});
    let source = support::source_config(&sim);
    let secret = migrator_core::secrets::Secret::new(sim.client_secret());
    let err = run_to_folder_with(&source, &secret, &out, quiet, RunControl::new(), options)
        .await
        .unwrap_err();
    assert!(
        support::chain(&err).contains("certificate"),
        "{}",
        support::chain(&err)
    );
    assert!(sim.requests().is_empty(), "the run reached Graph");
    assert!(support::files_under(&out).is_empty(), "the run wrote");
    assert_eq!(
        pg.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'm365-migrate'"),
        "0"
    );
}

/// Regression (issue 18, found by the coordination benchmark): every journal statement was
/// prepared anew before each run of it (tokio-postgres prepares a statement given as text, a
/// round trip of its own, under a new name each time). Each SQL text is now prepared once per
/// connection: 30 items journaled the same way run a handful of prepared statements, each
/// many times (the server logs each execution with its statement's name).
#[test]
fn postgres_journal_prepares_each_statement_once_per_connection() {
    let pg = support::postgres::Postgres::start_with_settings(&["log_statement=all"]);
    let settings = PostgresSettings::parse(&pg.url()).unwrap();
    let j = Journal::open_postgres(&settings, Some(&pg.password())).unwrap();
    let run = j.begin_run().unwrap();
    for i in 0..30 {
        let id = format!("m{i}");
        j.record_intent(target(&id), run).unwrap();
        j.record_done("u1", &id, "1700.Mab.m365:2,S", 42, None)
            .unwrap();
    }
    let log = pg.log();
    // `LOG:  execute s12: INSERT INTO items ...`
    let names: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split("execute ").nth(1)?.split(':').next())
        .filter(|name| name.starts_with('s'))
        .collect();
    let distinct: std::collections::HashSet<&str> = names.iter().copied().collect();
    assert!(names.len() >= 60, "{} executions logged", names.len());
    assert!(
        distinct.len() <= 10,
        "{} statements prepared for {} executions",
        distinct.len(),
        names.len()
    );
}

/// Counts the round trips between a client and a server: how often the client speaks again
/// after the server answered. A plain TCP relay on 127.0.0.1, one thread per direction.
struct RoundTripCounter {
    port: u16,
    /// (the server spoke last, round trips so far)
    turns: std::sync::Arc<std::sync::Mutex<(bool, u64)>>,
}

impl RoundTripCounter {
    fn start(server_port: u16) -> RoundTripCounter {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        let turns = std::sync::Arc::new(std::sync::Mutex::new((true, 0u64)));
        let shared = turns.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let server =
                    std::net::TcpStream::connect(("127.0.0.1", server_port)).expect("server");
                let _ = (client.set_nodelay(true), server.set_nodelay(true));
                for (mut from, mut to, from_client) in [
                    (
                        client.try_clone().expect("clone"),
                        server.try_clone().expect("clone"),
                        true,
                    ),
                    (server, client, false),
                ] {
                    let turns = shared.clone();
                    std::thread::spawn(move || {
                        let mut buf = vec![0u8; 64 * 1024];
                        while let Ok(n @ 1..) = from.read(&mut buf) {
                            {
                                let mut t = turns.lock().unwrap_or_else(|p| p.into_inner());
                                if from_client && t.0 {
                                    t.1 += 1;
                                }
                                t.0 = !from_client;
                            }
                            if to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        RoundTripCounter { port, turns }
    }

    /// A counter relaying to `pg`, and the URL that reaches `pg` through it.
    fn in_front_of(pg: &support::postgres::Postgres) -> (RoundTripCounter, String) {
        let port: u16 = pg
            .url()
            .split("127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .and_then(|p| p.parse().ok())
            .expect("the test server's port");
        let counter = RoundTripCounter::start(port);
        let url = pg
            .url()
            .replace(&format!(":{port}/"), &format!(":{}/", counter.port));
        (counter, url)
    }

    fn round_trips(&self) -> u64 {
        self.turns.lock().unwrap_or_else(|p| p.into_inner()).1
    }
}

/// Issue 18's coordination benchmark (one worker on PostgreSQL at 0.35 to 0.41 of `run` on
/// SQLite): a fenced write was `BEGIN`, the lease check, the statement and `COMMIT`, each
/// waited for in turn, 4 round trips. They are now sent as one pipeline: one round trip per
/// fenced write, and a write refused because the lease was lost costs one too and writes
/// nothing.
#[test]
fn postgres_fenced_write_is_one_round_trip_not_four() {
    let pg = support::postgres::Postgres::start();
    let (counter, url) = RoundTripCounter::in_front_of(&pg);
    let settings = PostgresSettings::parse(&url).unwrap();
    let j = Journal::open_postgres(&settings, Some(&pg.password())).unwrap();
    let (fenced, run) = fenced_u1(&j);
    // Each SQL text is prepared on its first use (a round trip of its own, once).
    fenced.record_intent(target("m0"), run).unwrap();
    fenced.record_done("u1", "m0", "0", 5, None).unwrap();

    let before = counter.round_trips();
    for i in 1..=20 {
        fenced
            .record_done("u1", "m0", &format!("{i}"), 5, None)
            .unwrap();
    }
    let per_write = (counter.round_trips() - before) as f64 / 20.0;
    assert!(per_write <= 1.5, "{per_write} round trips per fenced write");
    assert_eq!(
        j.item("u1", "m0").unwrap().and_then(|r| r.dest_ref),
        Some("20".to_string())
    );

    pg.psql("UPDATE leases SET fencing_token = fencing_token + 1");
    let before = counter.round_trips();
    let refused = fenced.record_done("u1", "m0", "lost", 5, None);
    assert!(
        matches!(refused, Err(JournalError::LeaseLost { .. })),
        "{refused:?}"
    );
    assert!(counter.round_trips() - before <= 1);
    assert_eq!(
        j.item("u1", "m0").unwrap().and_then(|r| r.dest_ref),
        Some("20".to_string()),
        "nothing written under a lost lease"
    );
}

/// Issue 18's coordination benchmark: on one machine the PostgreSQL leg's cost is CPU (the
/// server's and the client's work per statement, most of it on sockets), and a fenced write
/// was four statements the server answered one by one (`BEGIN`, the lease check, the write,
/// `COMMIT`). A fenced write of one statement is now one statement; refused under a lost
/// lease, it still writes nothing.
#[test]
fn regression_postgres_a_fenced_write_was_four_statements_on_the_server() {
    let pg = support::postgres::Postgres::start_with_settings(&["log_statement=all"]);
    let settings = PostgresSettings::parse(&pg.url()).unwrap();
    let j = Journal::open_postgres(&settings, Some(&pg.password())).unwrap();
    let (fenced, run) = fenced_u1(&j);
    fenced.record_intent(target("m0"), run).unwrap();
    fenced.record_done("u1", "m0", "0", 5, None).unwrap();
    // The server logs each statement it runs: "statement: " (simple protocol) or
    // "execute <name>: " (a prepared statement's run).
    let statements = |log: &str| {
        log.lines()
            .filter(|l| l.contains("LOG:  statement: ") || l.contains("LOG:  execute "))
            .count()
    };
    let start = pg.log().len();
    for i in 1..=10 {
        fenced
            .record_done("u1", "m0", &format!("{i}"), 5, None)
            .unwrap();
    }
    let log = pg.log();
    assert_eq!(
        statements(&log[start..]),
        10,
        "one statement per fenced write:\n{}",
        &log[start..]
    );
    assert_eq!(
        j.item("u1", "m0").unwrap().and_then(|r| r.dest_ref),
        Some("10".to_string())
    );

    pg.psql("UPDATE leases SET fencing_token = fencing_token + 1");
    let refused = fenced.record_done("u1", "m0", "lost", 5, None);
    assert!(
        matches!(refused, Err(JournalError::LeaseLost { .. })),
        "{refused:?}"
    );
    assert_eq!(
        j.item("u1", "m0").unwrap().and_then(|r| r.dest_ref),
        Some("10".to_string()),
        "nothing written under a lost lease"
    );
}

/// Issue 18's coordination benchmark: most of a tenant's mail folders are empty, and each
/// folder's round under a lease was nine statements on the server: its start (`BEGIN`, the
/// lease check, the folder's row written returning its stored link, `COMMIT`) and its end
/// (`BEGIN`, the lease check, the items not seen marked gone, the new link, `COMMIT`). Each is
/// now one statement; under a lost lease each is refused and writes nothing.
#[test]
fn regression_postgres_a_mail_folders_round_under_a_lease_was_nine_statements() {
    let pg = support::postgres::Postgres::start_with_settings(&["log_statement=all"]);
    let settings = PostgresSettings::parse(&pg.url()).unwrap();
    let j = Journal::open_postgres(&settings, Some(&pg.password())).unwrap();
    let (fenced, run) = fenced_u1(&j);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for id in ["m1", "m2"] {
        fenced.record_intent(target(id), run).unwrap();
        fenced.record_done("u1", id, id, 5, None).unwrap();
    }
    let statements = |log: &str| {
        log.lines()
            .filter(|l| l.contains("LOG:  statement: ") || l.contains("LOG:  execute "))
            .count()
    };
    let begin = |name| runtime.block_on(fenced.set_folder_reading_link_async("u1", "f1", name));
    let end = |name, link| {
        let round = fenced.end_folder_round_async(("u1", "f1", name), run, true, link);
        runtime.block_on(round)
    };

    let start = pg.log().len();
    assert_eq!(begin(".A").unwrap(), None, "a new folder has no link");
    end(".A", Some("delta-1")).unwrap();
    let log = pg.log();
    assert_eq!(
        statements(&log[start..]),
        2,
        "one statement to begin the round, one to end it:\n{}",
        &log[start..]
    );
    for id in ["m1", "m2"] {
        let record = j.item("u1", id).unwrap().unwrap();
        assert_eq!(
            record.gone_from.as_deref(),
            Some("f1"),
            "{id} not seen: gone"
        );
    }
    assert_eq!(
        j.delta_link("u1", "f1").unwrap().as_deref(),
        Some("delta-1")
    );
    assert_eq!(
        begin(".B").unwrap().as_deref(),
        Some("delta-1"),
        "read as stored"
    );

    pg.psql("UPDATE items SET gone_from = NULL");
    pg.psql("UPDATE leases SET fencing_token = fencing_token + 1");
    for refused in [begin(".C").map(|_| ()), end(".C", Some("delta-2"))] {
        assert!(
            matches!(refused, Err(JournalError::LeaseLost { .. })),
            "{refused:?}"
        );
    }
    assert_eq!(
        j.folders_of("u1").unwrap(),
        vec![("f1".to_string(), ".B".to_string())],
        "not renamed under a lost lease"
    );
    assert_eq!(
        j.delta_link("u1", "f1").unwrap().as_deref(),
        Some("delta-1")
    );
    for id in ["m1", "m2"] {
        let record = j.item("u1", id).unwrap().unwrap();
        assert_eq!(record.gone_from, None, "{id} not marked under a lost lease");
    }
}

/// Issue 18: a worker's start queued the tenant one mailbox per round trip (10,000 round
/// trips for a 10,000-user tenant before its first take). The queue is now filled
/// [`ENQUEUE_BATCH`] mailboxes to a round trip, with the semantics of one at a time: a
/// mailbox already queued gets its new size, a size of 0 keeps the one known, and a mailbox
/// done keeps its state.
#[test]
fn regression_postgres_a_workers_queue_was_filled_one_mailbox_per_round_trip() {
    use migrator_core::journal::ENQUEUE_BATCH;
    use std::time::Duration;
    let pg = support::postgres::Postgres::start();
    let (counter, url) = RoundTripCounter::in_front_of(&pg);
    let settings = PostgresSettings::parse(&url).unwrap();
    let j = Journal::open_postgres(&settings, Some(&pg.password())).unwrap();
    j.enqueue_mailbox("done@x", 5).unwrap();
    let lease = j
        .take_next_mailbox("w", Duration::from_secs(60))
        .unwrap()
        .unwrap();
    j.finish_mailbox(&lease).unwrap();
    j.enqueue_mailbox("known@x", 70).unwrap();

    let names: Vec<String> = (0..ENQUEUE_BATCH + 100)
        .map(|i| format!("m{i:04}@x"))
        .collect();
    let mut queue: Vec<(&str, u64)> = names.iter().map(|n| (n.as_str(), 1)).collect();
    queue[7].1 = 900;
    queue.push(("done@x", 800));
    queue.push(("known@x", 0));
    let before = counter.round_trips();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(j.enqueue_mailboxes(&queue)).unwrap();
    let trips = counter.round_trips() - before;
    assert!(
        trips <= 3,
        "{trips} round trips for {} mailboxes",
        queue.len()
    );

    assert_eq!(
        pg.psql("SELECT count(*) FROM leases WHERE state = 'queued'"),
        (ENQUEUE_BATCH + 101).to_string()
    );
    assert_eq!(
        pg.psql("SELECT state FROM leases WHERE mailbox = 'done@x'"),
        "done",
        "a mailbox done stays done"
    );
    assert_eq!(
        pg.psql("SELECT size_bytes FROM leases WHERE mailbox = 'known@x'"),
        "70",
        "a size of 0 keeps the one known"
    );
    let first = j
        .take_next_mailbox("w", Duration::from_secs(60))
        .unwrap()
        .unwrap();
    assert_eq!(first.mailbox, "m0007@x", "largest first");
}

/// Issue 18: every call of a worker's journal went through one connection, so one lease
/// loop's call waiting on the server (here: on a row lock another session holds) held up
/// every other loop's calls. With a connection per lease loop another call is answered
/// while the first still waits.
#[test]
fn postgres_journal_call_waiting_on_the_server_does_not_hold_up_another_loops_call() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let pg = Arc::new(support::postgres::Postgres::start());
    let mut settings = PostgresSettings::parse(&pg.url()).unwrap();
    settings.connections = 2;
    let j = Journal::open_postgres(&settings, Some(&pg.password())).unwrap();
    let (fenced, run) = fenced_u1(&j);
    fenced.record_intent(target("m0"), run).unwrap();

    let count = |sql: &str| pg.psql(sql).trim().to_string();
    // Another session holds the lease row's lock until it is cancelled.
    let holder = {
        let pg = pg.clone();
        std::thread::spawn(move || {
            pg.psql("BEGIN; SELECT 1 FROM leases FOR UPDATE; SELECT pg_sleep(600); COMMIT;")
        })
    };
    while count("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'") != "1" {}
    let written = Arc::new(AtomicBool::new(false));
    let writer = {
        let written = written.clone();
        std::thread::spawn(move || {
            let r = fenced.record_done("u1", "m0", "1", 5, None);
            written.store(true, Ordering::SeqCst);
            r
        })
    };
    while count("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'") != "1" {}

    let read = j.item("u1", "m0").unwrap();
    assert!(
        !written.load(Ordering::SeqCst),
        "the read waited for the blocked write"
    );
    assert_eq!(read.map(|r| r.state), Some(ItemState::Pending));

    count("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE wait_event = 'PgSleep'");
    let _ = holder.join();
    writer.join().unwrap().unwrap();
    assert_eq!(
        j.item("u1", "m0").unwrap().map(|r| r.state),
        Some(ItemState::Done)
    );
}

/// What a first pass of one mailbox's `workload` cost on a PostgreSQL journal: (items
/// written, round trips the journal made during the run, the journal's statements by kind
/// with how often each ran, from the server's log). One mailbox, a local folder as the
/// destination, the journal reached through a [`RoundTripCounter`].
async fn first_pass_on_postgres(
    workload: migrator_core::config::Workload,
    messages: usize,
) -> (u64, u64, Vec<(usize, String)>) {
    use migrator_core::engine::{run_to_folder_with, RunControl, RunOptions};
    use migrator_core::progress::{ProgressEvent, Reporter};
    use std::sync::Arc;

    let pg = support::postgres::Postgres::start_with_settings(&["log_statement=all"]);
    let (counter, url) = RoundTripCounter::in_front_of(&pg);
    let sim = sim_tenant(1, messages).await;
    let dir = tempfile::tempdir().unwrap();
    let (out, state) = (dir.path().join("out"), dir.path().join("state"));
    let source = support::source_config(&sim);
    let secret = migrator_core::secrets::Secret::new(sim.client_secret());
    let mut settings = PostgresSettings::parse(&url).unwrap();
    settings.connections = 1;
    // The schema is made before the count starts.
    drop(Journal::open_postgres(&settings, Some(&pg.password())).unwrap());
    let before = counter.round_trips();
    let log_before = pg.log().len();
    let options = RunOptions {
        state_dir: Some(state),
        journal: Some(settings),
        workloads: vec![workload],
        ..RunOptions::default()
    };
    std::env::set_var(
        migrator_core::journal::PASSWORD_VARIABLE,
        pg.password().expose(),
    );
    let quiet: Arc<dyn Reporter> = Arc::new(|_: ProgressEvent| {});
    let summary = run_to_folder_with(&source, &secret, &out, quiet, RunControl::new(), options)
        .await
        .expect("the first pass");
    let round_trips = counter.round_trips() - before;
    let log = pg.log();
    // A statement's text goes on over the log's lines that begin with a tab.
    let mut entries: Vec<String> = Vec::new();
    for line in log[log_before..].lines() {
        match (line.strip_prefix('\t'), entries.last_mut()) {
            (Some(more), Some(entry)) => {
                entry.push(' ');
                entry.push_str(more);
            }
            _ => entries.push(line.to_string()),
        }
    }
    let mut calls = std::collections::BTreeMap::<String, usize>::new();
    for entry in &entries {
        let Some(sql) = entry
            .split("LOG:  execute ")
            .nth(1)
            .and_then(|rest| rest.split_once(": ").map(|(_, sql)| sql))
            .or_else(|| entry.split("LOG:  statement: ").nth(1))
        else {
            continue;
        };
        let words: Vec<&str> = sql.split_whitespace().collect();
        *calls.entry(words.join(" ")).or_default() += 1;
    }
    let mut calls: Vec<(usize, String)> = calls.into_iter().map(|(k, v)| (v, k)).collect();
    calls.sort_by(|a, b| b.cmp(a));
    (support::written(&summary), round_trips, calls)
}

/// Regression (issue 18, the coordination benchmark: about 7.5 commits per item on
/// PostgreSQL, each a round trip the engine waits for): a first pass read each item's record
/// once or twice before writing it (mail: in the page loop and again before the copy;
/// groupware: for the version check and again for the write; a contact's photo state a third
/// time), recorded each intent on its own, and a groupware item's version and a contact's
/// unchanged photo state after its "done". Now a page's records are read in one call, a mail
/// page's intents recorded in one transaction, the version goes with the "done" record and
/// the photo state is written only when it changes. Counted exactly (the journal's round trips
/// during the run, prepares and the mailbox's and folders' bookkeeping included) for one
/// mailbox of the simulated tenant; before: mail 274, calendar 181, contacts 127, tasks 88.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_first_pass_reads_each_page_once_and_records_its_intents_together() {
    use migrator_core::config::Workload;
    let ceilings = [
        (Workload::Mail, 40, 200),
        (Workload::Calendar, 28, 115),
        (Workload::Contacts, 12, 85),
        (Workload::Tasks, 14, 70),
    ];
    for (workload, items_expected, ceiling) in ceilings {
        let (items, round_trips, calls) = first_pass_on_postgres(workload, 40).await;
        let calls = listed(&calls);
        assert_eq!(items, items_expected, "{workload:?}");
        assert!(
            round_trips <= ceiling,
            "{workload:?}: {round_trips} round trips for {items} items (at most {ceiling}):\n{calls}"
        );
        eprintln!("{workload:?}: {items} items, {round_trips} round trips:\n{calls}");
    }
}

/// `calls` ([`first_pass_on_postgres`]) one per line: the count, the text's beginning.
fn listed(calls: &[(usize, String)]) -> String {
    let lines: Vec<String> = calls
        .iter()
        .map(|(n, sql)| format!("{n:5}  {}", sql.chars().take(100).collect::<String>()))
        .collect();
    lines.join("\n")
}

/// Issue 18: "done" records of concurrent items coalesce on PostgreSQL as they do on SQLite
/// (group commit): the records that arrive while a transaction of records under the same
/// lease is in flight share the next one, and each call returns once its own record is
/// committed. Before, each was a transaction of its own (9 records, 9 commits). A shared
/// transaction is still fenced: when the lease is lost while records wait, none of them
/// commits.
#[test]
fn postgres_done_records_arriving_together_share_one_fenced_transaction() {
    use std::sync::Arc;
    let pg = Arc::new(support::postgres::Postgres::start_with_settings(&[
        "log_statement=all",
    ]));
    let mut settings = PostgresSettings::parse(&pg.url()).unwrap();
    settings.connections = 2;
    let j = Journal::open_postgres(&settings, Some(&pg.password())).unwrap();
    let (fenced, run) = fenced_u1(&j);
    let fenced = Arc::new(fenced);
    let ids: Vec<String> = (0..9).map(|i| format!("m{i}")).collect();
    let targets: Vec<ItemTarget<'_>> = ids.iter().map(|id| target(id)).collect();
    fenced.record_intents("mail", &targets, run).unwrap();
    let count = |sql: &str| pg.psql(sql).trim().to_string();
    let lock_waits = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'";
    let sleeping = "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'";
    // The first record waits on the lease row (another session holds its lock) while the
    // other eight arrive; then the lock is let go. `dest_ref`: what each record says.
    let record_all_while_held = |dest_ref: &'static str, let_go: &dyn Fn()| {
        let before = count(lock_waits).parse::<u32>().unwrap_or(0);
        let first = {
            let fenced = fenced.clone();
            std::thread::spawn(move || fenced.record_done("u1", "m0", dest_ref, 5, None))
        };
        while count(lock_waits).parse::<u32>().unwrap_or(0) <= before {}
        let others: Vec<_> = (1..9)
            .map(|i| {
                let fenced = fenced.clone();
                std::thread::spawn(move || {
                    fenced.record_done("u1", &format!("m{i}"), dest_ref, 5, None)
                })
            })
            .collect();
        // Until the 8 wait for the next shared transaction, or (each record its own
        // transaction, as before) another one waits on the lease row too.
        while j.done_records_waiting() != 8
            && count(lock_waits).parse::<u32>().unwrap_or(0) < before + 2
        {}
        let_go();
        std::iter::once(first)
            .chain(others)
            .map(|t| t.join().unwrap())
            .collect::<Vec<_>>()
    };

    let holder = {
        let pg = pg.clone();
        std::thread::spawn(move || {
            pg.psql("BEGIN; SELECT 1 FROM leases FOR UPDATE; SELECT pg_sleep(600); COMMIT;")
        })
    };
    while count(sleeping) != "1" {}
    let log_start = pg.log().len();
    let results = record_all_while_held("1", &|| {
        count("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE wait_event = 'PgSleep'");
    });
    let _ = holder.join();
    for r in &results {
        assert!(r.is_ok(), "{r:?}");
    }
    let log = pg.log();
    // A transaction of one record is one statement (its guard in a `WITH` query); of
    // more, `BEGIN` ... `COMMIT`.
    let transactions = log[log_start..]
        .lines()
        .filter(|l| l.ends_with("statement: COMMIT") || l.contains(": WITH fence AS ("))
        .count();
    assert_eq!(
        transactions, 2,
        "the first record's transaction, then one for the other 8"
    );
    for id in &ids {
        let item = j.item("u1", id).unwrap().unwrap();
        assert_eq!(
            (item.state, item.dest_ref),
            (ItemState::Done, Some("1".into()))
        );
    }

    // The lease is taken over (its fencing token drawn anew, committed by the session that
    // held the row) while the records wait: none of them commits.
    let advisory = {
        let pg = pg.clone();
        std::thread::spawn(move || pg.psql("SELECT pg_advisory_lock(18), pg_sleep(600)"))
    };
    while count(sleeping) != "1" {}
    let takeover = {
        let pg = pg.clone();
        std::thread::spawn(move || {
            pg.psql(
                "BEGIN; UPDATE leases SET fencing_token = fencing_token + 1;
                 SELECT pg_advisory_xact_lock(18); COMMIT;",
            )
        })
    };
    while count(lock_waits) != "1" {}
    let results = record_all_while_held("after the takeover", &|| {
        count("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE wait_event = 'PgSleep'");
    });
    let _ = (advisory.join(), takeover.join());
    for r in &results {
        assert!(matches!(r, Err(JournalError::LeaseLost { .. })), "{r:?}");
    }
    for id in &ids {
        let item = j.item("u1", id).unwrap().unwrap();
        assert_eq!(
            item.dest_ref,
            Some("1".into()),
            "{id}: written after the lease was lost"
        );
    }
}

/// Waits until `done` holds; a test that waited 60 s for it fails (it would hang) naming
/// `what`. A bound on a wait that should end at once, not a timed assertion.
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
    }
}

/// A journal on a private PostgreSQL (2 connections) with mailbox `u1` leased and the intents
/// of `m0`, `m1`, `m2` recorded, while another session holds the lease row's lock: every
/// fenced write waits on it in the server until [`LeaseRowHeld::let_go`].
struct LeaseRowHeld {
    pg: std::sync::Arc<support::postgres::Postgres>,
    journal: Journal,
    fenced: std::sync::Arc<Journal>,
    holder: Option<std::thread::JoinHandle<String>>,
}

impl LeaseRowHeld {
    fn start() -> LeaseRowHeld {
        let pg = std::sync::Arc::new(support::postgres::Postgres::start());
        let mut settings = PostgresSettings::parse(&pg.url()).unwrap();
        settings.connections = 2;
        let journal = Journal::open_postgres(&settings, Some(&pg.password())).unwrap();
        let (fenced, run) = fenced_u1(&journal);
        fenced
            .record_intents("mail", &[target("m0"), target("m1"), target("m2")], run)
            .unwrap();
        let holder = {
            let pg = pg.clone();
            std::thread::spawn(move || {
                pg.psql("BEGIN; SELECT 1 FROM leases FOR UPDATE; SELECT pg_sleep(600); COMMIT;")
            })
        };
        let held = LeaseRowHeld {
            pg,
            journal,
            fenced: std::sync::Arc::new(fenced),
            holder: Some(holder),
        };
        wait_until("another session holds the lease row", || {
            held.count("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'") == "1"
        });
        held
    }

    fn count(&self, sql: &str) -> String {
        self.pg.psql(sql).trim().to_string()
    }

    /// Waits until a fenced write waits on the lease row.
    fn wait_for_a_write_on_the_row(&self) {
        wait_for_a_write_on_the_row(&self.pg);
    }

    /// Waits until `n` "done" records wait for the next shared transaction.
    fn wait_for_records_waiting(&self, n: usize) {
        wait_until("records wait for the next transaction", || {
            self.journal.done_records_waiting() == n
        });
    }

    fn record_in_task(
        &self,
        runtime: &tokio::runtime::Runtime,
        id: &'static str,
    ) -> tokio::task::JoinHandle<Result<(), JournalError>> {
        record_in_task(&self.fenced, runtime, id)
    }

    /// The other session lets go of the lease row.
    fn let_go(&mut self) {
        self.count(
            "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE wait_event = 'PgSleep'",
        );
        if let Some(holder) = self.holder.take() {
            let _ = holder.join();
        }
    }

    /// Asserts that each of `ids` is recorded done at destination reference `1`.
    fn assert_done(&self, ids: &[&str]) {
        for id in ids {
            let item = self.journal.item("u1", id).unwrap().unwrap();
            assert_eq!(
                (item.state, item.dest_ref),
                (ItemState::Done, Some("1".into())),
                "{id}"
            );
        }
    }
}

/// Waits until a write waits on a row lock in `pg` (the lease row, in these tests).
fn wait_for_a_write_on_the_row(pg: &support::postgres::Postgres) {
    let lock_waits = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'";
    wait_until("a write waits on the lease row", || {
        pg.psql(lock_waits).trim() == "1"
    });
}

/// A "done" record of `id` through `fenced` at source version `v1`, awaited in a task of
/// `runtime`.
fn record_in_task(
    fenced: &std::sync::Arc<Journal>,
    runtime: &tokio::runtime::Runtime,
    id: &'static str,
) -> tokio::task::JoinHandle<Result<(), JournalError>> {
    let fenced = fenced.clone();
    runtime.spawn(async move {
        let done = GroupwareDone {
            dest_ref: "1",
            size: 5,
            version: Some("v1"),
            ..GroupwareDone::default()
        };
        fenced.record_done_at_version_async("u1", id, &done).await
    })
}

fn two_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Issue 18's coordination benchmark (one worker on PostgreSQL at 0.70 of `run` on SQLite):
/// a journal call on PostgreSQL held the thread of the task that made it until the server
/// answered, so on a runtime of 2 worker threads (one per CPU) two calls in flight stopped
/// every other task of the run (its other mailboxes' downloads and writes). The engine's
/// calls per item (a page's records, its intents, "done" records) are now awaited: here two
/// "done" records wait on the lease row, one in the server, one for the next shared
/// transaction, and another task still runs meanwhile. The wait for it is bounded only so
/// that the old behaviour (it never runs) fails, not hangs.
#[test]
fn postgres_journal_calls_in_flight_leave_the_runtime_threads_to_other_tasks() {
    let mut held = LeaseRowHeld::start();
    let runtime = two_thread_runtime();
    let first = held.record_in_task(&runtime, "m0");
    held.wait_for_a_write_on_the_row();
    let second = held.record_in_task(&runtime, "m1");
    held.wait_for_records_waiting(1);

    let (ran, heard) = std::sync::mpsc::channel();
    runtime.spawn(async move {
        let _ = ran.send(());
    });
    let other_task_ran = heard
        .recv_timeout(std::time::Duration::from_secs(60))
        .is_ok();
    held.let_go();
    assert!(
        other_task_ran,
        "no other task ran while two journal calls were in flight"
    );
    for write in [first, second] {
        runtime.block_on(write).unwrap().unwrap();
    }
    held.assert_done(&["m0", "m1"]);
    let version = held
        .journal
        .item("u1", "m1")
        .unwrap()
        .unwrap()
        .source_version;
    assert_eq!(version.as_deref(), Some("v1"));
}

/// The group commit's records are awaited (issue 18), so a caller may go away while its
/// record's transaction is in flight (its task aborted): the records that arrived meanwhile
/// still commit, each once, and none waits for the caller that is gone.
#[test]
fn postgres_done_records_still_commit_when_the_leading_callers_task_is_aborted() {
    let mut held = LeaseRowHeld::start();
    let runtime = two_thread_runtime();
    let leader = held.record_in_task(&runtime, "m0");
    held.wait_for_a_write_on_the_row();
    let waiting = [
        held.record_in_task(&runtime, "m1"),
        held.record_in_task(&runtime, "m2"),
    ];
    held.wait_for_records_waiting(2);
    leader.abort();
    let _ = runtime.block_on(leader);
    held.let_go();
    for write in waiting {
        runtime.block_on(write).unwrap().unwrap();
    }
    held.assert_done(&["m1", "m2"]);
}

/// A synchronous journal call (most of the journal's API; it parks its thread until the
/// answer) made on the thread of a current-thread runtime (tests, `report`) while an awaited
/// "done" record of a task of that runtime is in flight: the synchronous record waits for the
/// next shared transaction. That transaction is sent by the connection thread that committed
/// the first one, not by the first record's task (which cannot run while its thread is
/// parked), so both commit. The wait for them is bounded so that a deadlock fails, not hangs.
#[test]
fn postgres_a_blocking_done_record_never_waits_for_a_task_of_the_thread_it_parks() {
    let mut held = LeaseRowHeld::start();
    let (fenced, pg) = (held.fenced.clone(), held.pg.clone());
    let (ended, heard) = std::sync::mpsc::channel();
    // Not scoped: if it deadlocks, the test still ends (below).
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let first = record_in_task(&fenced, &runtime, "m0");
        let both = runtime.block_on(async {
            // The first record's task sends it, then waits.
            tokio::task::yield_now().await;
            wait_for_a_write_on_the_row(&pg);
            let second = fenced.record_done("u1", "m1", "1", 5, None);
            (first.await, second)
        });
        let _ = ended.send(both);
    });
    held.wait_for_records_waiting(1);
    held.let_go();
    let (first, second) = heard
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the blocking record waited for a task of the thread it parks");
    first.unwrap().unwrap();
    second.unwrap();
    held.assert_done(&["m0", "m1"]);
}

/// What one pass of `workload` into the local folder `out` asked of the PostgreSQL journal
/// `pg` (reached with `settings`): the items written, the transactions the pass committed
/// (each statement outside `BEGIN` .. `COMMIT` is one), and how often each of the journal's
/// item statements ran (the first words of its SQL), from the server's statement log.
async fn pass_on_postgres(
    pg: &support::postgres::Postgres,
    sim: &migrator_sim::SimServer,
    settings: &PostgresSettings,
    (out, state): (&std::path::Path, &std::path::Path),
    workload: migrator_core::config::Workload,
) -> (u64, usize, std::collections::BTreeMap<String, usize>) {
    use migrator_core::engine::{run_to_folder_with, RunControl, RunOptions};
    use migrator_core::progress::{ProgressEvent, Reporter};
    use std::sync::Arc;
    let options = RunOptions {
        state_dir: Some(state.to_path_buf()),
        journal: Some(settings.clone()),
        workloads: vec![workload],
        ..RunOptions::default()
    };
    std::env::set_var(
        migrator_core::journal::PASSWORD_VARIABLE,
        pg.password().expose(),
    );
    let log_before = pg.log().len();
    let quiet: Arc<dyn Reporter> = Arc::new(|_: ProgressEvent| {});
    let source = support::source_config(sim);
    let secret = migrator_core::secrets::Secret::new(sim.client_secret());
    let summary = run_to_folder_with(&source, &secret, out, quiet, RunControl::new(), options)
        .await
        .expect("the pass");
    let log = pg.log();
    // A transaction of "done" records only is not counted: the records that arrive while one
    // is in flight share the next one (the group commit), so their number depends on timing;
    // the records themselves are counted as statements in `items`.
    let done_record = "UPDATE items SET state";
    let (mut transactions, mut open, mut only_done) = (0, false, true);
    let mut items = std::collections::BTreeMap::<String, usize>::new();
    for line in log[log_before..].lines() {
        if let Some(simple) = line.split("LOG:  statement: ").nth(1) {
            match simple.trim() {
                "BEGIN" | "START TRANSACTION" => (open, only_done) = (true, true),
                "COMMIT" | "ROLLBACK" => {
                    open = false;
                    transactions += usize::from(!only_done);
                }
                _ if !open => transactions += 1,
                _ => only_done = false,
            }
            continue;
        }
        let Some(sql) = line
            .split("LOG:  execute ")
            .nth(1)
            .and_then(|rest| rest.split_once(": ").map(|(_, sql)| sql))
        else {
            continue;
        };
        let words: Vec<&str> = sql.split_whitespace().take(4).collect();
        let words = words.join(" ");
        if !open && words != done_record {
            transactions += 1;
        }
        if open && words != done_record {
            only_done = false;
        }
        if words.contains(" items") && !words.starts_with("SELECT") {
            *items.entry(words).or_default() += 1;
        }
    }
    (support::written(&summary), transactions, items)
}

/// Regression (issue 18, the coordination benchmark: a groupware item cost two or more
/// PostgreSQL transactions, each a round trip the engine waits for): each item to be written
/// recorded its intent in a transaction of its own, and an item found unchanged (same
/// content; every task of a rerun, tasks having no version) recorded its source version in
/// one, synchronously. Now a page's intents (and the versions of its unchanged items) are one
/// transaction before any of its items is written, and a version already recorded is not
/// written again. Counted exactly for one mailbox of the simulated tenant (tasks: 14 in 2
/// lists; contacts: 12 in 5 folders; events: 28 in 5 calendars), every transaction of the
/// pass (the mailbox's and collections' bookkeeping included): before, a first pass committed
/// tasks 42, contacts 54, calendar 82 transactions, and a full rerun of tasks (their delta
/// links expired) 30. The "done" records' transactions are not counted (their number depends
/// on how many arrive together, see [`pass_on_postgres`]): a first pass's were one per item
/// before the records were pipelined (tasks 14, contacts 12, calendar 28 of the 30, 43, 59
/// transactions then). Since the mailbox's stored links are read in one call
/// ([`regression_postgres_each_collection_read_its_delta_link_alone`]), every pass has one
/// read fewer per collection after the first.
#[tokio::test(flavor = "multi_thread")]
async fn regression_postgres_groupware_page_intents_one_transaction_per_page() {
    use migrator_core::config::Workload;
    let pg = support::postgres::Postgres::start_with_settings(&["log_statement=all"]);
    let sim = sim_tenant(1, 40).await;
    let dir = tempfile::tempdir().unwrap();
    let (out, state) = (dir.path().join("out"), dir.path().join("state"));
    let mut settings = PostgresSettings::parse(&pg.url()).unwrap();
    settings.connections = 1;
    drop(Journal::open_postgres(&settings, Some(&pg.password())).unwrap());
    let mut counted = Vec::new();
    for workload in [Workload::Tasks, Workload::Contacts, Workload::Calendar] {
        for pass in ["first", "rerun", "full rerun"] {
            if pass == "full rerun" {
                // Every delta link answers 410: the round lists every item again.
                sim.expire_delta_tokens();
            }
            let (written, transactions, items) =
                pass_on_postgres(&pg, &sim, &settings, (&out, &state), workload).await;
            let items: Vec<String> = items.iter().map(|(sql, n)| format!("{n} {sql}")).collect();
            counted.push((
                format!("{workload:?} {pass}"),
                written,
                transactions,
                items.join("; "),
            ));
        }
    }
    eprintln!("{counted:#?}");
    // (pass, items written, transactions committed, the item statements that ran)
    let (intent, done) = ("INSERT INTO items (user_id,", "UPDATE items SET state");
    let photo = "UPDATE items SET no_photo_at";
    let expected: Vec<(String, u64, usize, String)> = [
        ("Tasks first", 14, 15, format!("14 {intent}; 14 {done}")),
        ("Tasks rerun", 0, 11, String::new()),
        ("Tasks full rerun", 0, 15, String::new()),
        (
            "Contacts first",
            12,
            27,
            format!("12 {intent}; 4 {photo}; 12 {done}"),
        ),
        ("Contacts rerun", 0, 17, String::new()),
        ("Contacts full rerun", 0, 27, String::new()),
        ("Calendar first", 28, 27, format!("28 {intent}; 28 {done}")),
        ("Calendar rerun", 0, 17, String::new()),
        ("Calendar full rerun", 0, 27, String::new()),
    ]
    .into_iter()
    .map(|(p, w, t, i)| (p.to_string(), w, t, i))
    .collect();
    assert_eq!(counted, expected);
}

/// Files under `dir` at any depth that `counts` (by name and parent folder's name).
fn files_under(dir: &std::path::Path, counts: &dyn Fn(&str, &str) -> bool) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let parent = dir.file_name().map(|n| n.to_string_lossy().to_string());
    entries
        .flatten()
        .map(|e| {
            let path = e.path();
            if path.is_dir() {
                files_under(&path, counts)
            } else {
                let name = e.file_name().to_string_lossy().to_string();
                usize::from(counts(&name, parent.as_deref().unwrap_or_default()))
            }
        })
        .sum()
}

/// Written tasks or events (a write in progress is a hidden `.tmp` file).
fn ics_files(dir: &std::path::Path) -> usize {
    files_under(dir, &|name, _| {
        name.ends_with(".ics") && !name.starts_with('.')
    })
}

/// Written messages (Maildir's `cur` and `new`).
fn maildir_messages(dir: &std::path::Path) -> usize {
    files_under(dir, &|_, parent| parent == "cur" || parent == "new")
}

/// One mailbox's `workload` (`messages` messages in the tenant) into a local folder on a
/// private PostgreSQL, while a trigger holds every "done" record in the server (on an
/// advisory lock the test holds) until `written` counts `while_held` items written (or 60 s
/// passed: the wait is bounded only so that the old behaviour fails, not hangs). Asserts
/// that they were written while no record was committed, then that the pass wrote `items`
/// once each, all recorded done, and that a rerun writes nothing.
async fn pass_with_done_records_held(
    workload: migrator_core::config::Workload,
    messages: usize,
    (written, while_held): (fn(&std::path::Path) -> usize, usize),
    items: usize,
) {
    use std::sync::Arc;
    let pg = Arc::new(support::postgres::Postgres::start());
    let sim = sim_tenant(1, messages).await;
    let dir = tempfile::tempdir().unwrap();
    let (out, state) = (dir.path().join("out"), dir.path().join("state"));
    let mut settings = PostgresSettings::parse(&pg.url()).unwrap();
    settings.connections = 2;
    drop(Journal::open_postgres(&settings, Some(&pg.password())).unwrap());
    pg.psql(
        "CREATE FUNCTION hold_done() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN PERFORM pg_advisory_xact_lock_shared(18); RETURN NEW; END $$;
         CREATE TRIGGER hold_done BEFORE UPDATE ON items FOR EACH ROW
           WHEN (NEW.state = 'done' AND OLD.state <> 'done') EXECUTE FUNCTION hold_done();",
    );
    let sleeping = "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'";
    let holder = {
        let pg = pg.clone();
        std::thread::spawn(move || pg.psql("SELECT pg_advisory_lock(18), pg_sleep(600)"))
    };
    wait_until("the lock is held", || pg.psql(sleeping).trim() == "1");
    let done = "SELECT count(*) FROM items WHERE state = 'done'";
    // Lets the records go on every path, so the pass below always ends.
    let watcher = {
        let (pg, out) = (pg.clone(), out.clone());
        std::thread::spawn(move || {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while written(&out) < while_held && std::time::Instant::now() < deadline {}
            let seen = (written(&out), pg.psql(done).trim().to_string());
            pg.psql(
                "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE wait_event = 'PgSleep'",
            );
            seen
        })
    };
    let (first, _, _) = pass_on_postgres(&pg, &sim, &settings, (&out, &state), workload).await;
    let (seen, done_then) = watcher.join().unwrap();
    let _ = holder.join();
    assert!(
        seen >= while_held && done_then == "0",
        "{workload:?}: written while the first \"done\" records waited: {seen} (expected at \
         least {while_held}), recorded done meanwhile: {done_then}"
    );
    let (after, done_after) = (written(&out), pg.psql(done).trim().to_string());
    let items_text = items.to_string();
    assert_eq!(
        (first, after, done_after.as_str()),
        (items as u64, items, items_text.as_str()),
        "{workload:?}: every item once, recorded done"
    );
    let (again, _, _) = pass_on_postgres(&pg, &sim, &settings, (&out, &state), workload).await;
    assert_eq!(again, 0, "{workload:?}: a rerun writes nothing");
}

/// Regression (issue 18, the coordination benchmark at 0.85 on a quiet machine: the run is
/// latency-bound, the largest mailbox's groupware items one after another): each groupware
/// item waited for its "done" record's commit (a round trip of ~1 ms on PostgreSQL) before
/// the next item was written. Now the record is sent and the next item written meanwhile
/// (at most 16 records in flight, all answered before the collection's delta link is
/// stored). Here every "done" record is held in the server while one mailbox's tasks (14 in
/// 2 lists) go to a local folder: a second task is written while the first one's record
/// waits (before: never, the run waited on it). Then the records go on: every task written
/// once and recorded done, and a rerun writes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn regression_postgres_groupware_items_are_written_while_earlier_done_records_commit() {
    use migrator_core::config::Workload;
    pass_with_done_records_held(Workload::Tasks, 40, (ics_files, 2), 14).await;
}

/// Regression (issue 18, as above, for mail into a local folder): a message's "done" record
/// held its place among the `max_in_flight` (4) messages being copied until it committed, so
/// with the records held in the server at most 4 messages were written. Now a message's
/// place goes to the next one once it is written, while its record commits (all of a page's
/// records answered before the page ends): more than 4 are written while none is recorded.
#[tokio::test(flavor = "multi_thread")]
async fn regression_postgres_messages_are_written_while_earlier_done_records_commit() {
    use migrator_core::config::Workload;
    pass_with_done_records_held(Workload::Mail, 40, (maildir_messages, 5), 40).await;
}

/// Regression (issue 18, the coordination benchmark: the largest mailbox's groupware ends
/// last): each calendar, contact folder and task list began by reading its stored delta
/// link, one round trip each on the mailbox's path. A mailbox's links are now read in one
/// call, at its first collection.
#[tokio::test(flavor = "multi_thread")]
async fn regression_postgres_each_collection_read_its_delta_link_alone() {
    use migrator_core::config::Workload;
    for workload in [Workload::Calendar, Workload::Contacts, Workload::Tasks] {
        let (_, _, calls) = first_pass_on_postgres(workload, 40).await;
        let count = |start: &str| {
            calls
                .iter()
                .filter(|(_, sql)| sql.starts_with(start))
                .map(|(n, _)| n)
                .sum::<usize>()
        };
        let folders_recorded = count("INSERT INTO folders");
        assert!(folders_recorded > 0, "{workload:?}: no collection");
        assert_eq!(
            (
                count("SELECT delta_link FROM folders"),
                count("SELECT folder_id, delta_link FROM folders"),
            ),
            (0, 1),
            "{workload:?} (links read alone, the mailbox's links read), {folders_recorded} collections recorded:\n{}",
            listed(&calls)
        );
    }
}

/// Regression (issue 18, the coordination benchmark: the largest mailbox's mail folders one
/// after another, each round trip on PostgreSQL awaited): a mail folder's round began with
/// two calls (the folder recorded, then its stored delta link read) and ended with two (its
/// unseen items marked gone, then the new link stored). Now the folder's record returns its
/// link, and the end is one statement. Counted exactly from the server's log for one
/// mailbox of the simulated tenant (40 messages in 20 folders): before, 20 reads of a link.
#[tokio::test(flavor = "multi_thread")]
async fn regression_postgres_a_mail_folders_link_is_read_with_its_record() {
    use migrator_core::config::Workload;
    let (items, round_trips, calls) = first_pass_on_postgres(Workload::Mail, 40).await;
    // A statement's writes may be `WITH` queries of one statement.
    let count = |write: &str| {
        calls
            .iter()
            .filter(|(_, sql)| sql.contains(write))
            .map(|(n, _)| n)
            .sum::<usize>()
    };
    let listed = listed(&calls);
    assert_eq!(items, 40);
    assert_eq!(
        (
            count("SELECT delta_link FROM folders"),
            count("INSERT INTO folders"),
            count("UPDATE items SET gone_from"),
        ),
        (0, 40, 20),
        "(links read, folders recorded, folders' unseen items marked), {round_trips} round trips:\n{listed}"
    );
}
