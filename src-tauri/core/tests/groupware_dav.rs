//! The whole engine into real servers: mail into Dovecot, calendars, contacts and tasks into
//! Radicale over CalDAV/CardDAV, each user logging in with their own password.

use crate::support;

use std::collections::HashMap;

use migrator_core::dest::dav::{CollectionKind, DavAccount, DavLogin};
use migrator_core::engine::{run, Destination, ImapLogins, RunControl, RunOptions};
use migrator_core::progress::RunSummary;
use migrator_core::secrets::Secret;
use migrator_sim::{SimConfig, SimServer, TenantSpec};
use support::dovecot::Dovecot;
use support::radicale::{self, Radicale};

struct Setup {
    sim: SimServer,
    dovecot: Dovecot,
    radicale: Radicale,
    state: tempfile::TempDir,
}

async fn setup() -> Setup {
    let (sim, dovecot) = support::tenant_with_dovecot_config(SimConfig {
        tenant: TenantSpec {
            users: 2,
            messages_per_user: 3,
            ..TenantSpec::default()
        },
        ..SimConfig::default()
    })
    .await;
    let radicale = Radicale::start_with(radicale::Options {
        users: support::tenant_accounts(&sim),
        ..radicale::Options::default()
    });
    Setup {
        sim,
        dovecot,
        radicale,
        state: tempfile::tempdir().unwrap(),
    }
}

impl Setup {
    /// Runs the migration; returns its summary and the reason of every failed item.
    async fn run(&self) -> (RunSummary, Vec<String>) {
        self.run_with(RunOptions::default()).await
    }

    /// [`Setup::run`] with `options` (its state folder set here).
    async fn run_with(&self, options: RunOptions) -> (RunSummary, Vec<String>) {
        let source = support::source_config(&self.sim);
        let accounts: HashMap<String, Secret> = self
            .sim
            .tenant()
            .users
            .iter()
            .map(|u| (u.mail.to_lowercase(), Secret::new("pw")))
            .collect();
        let destination = Destination::Imap {
            settings: self.dovecot.tls_settings(),
            logins: ImapLogins::Accounts(accounts),
            dav: Some(self.radicale.settings()),
        };
        let options = RunOptions {
            state_dir: Some(self.state.path().join("state")),
            ..options
        };
        let failures = support::Failures::default();
        let summary = run(
            &source,
            &Secret::new(self.sim.client_secret()),
            &destination,
            failures.reporter(),
            RunControl::new(),
            options,
        )
        .await
        .unwrap_or_else(|e| panic!("run failed: {e:?}\n{}", self.radicale.log()));
        let failures = failures.list();
        (summary, failures)
    }

    /// The first user's first calendar at the destination, holding `uid` already: (the
    /// user's DAV account, the collection).
    async fn calendar_holding(
        &self,
        uid: &str,
    ) -> (DavAccount, migrator_core::dest::dav::Collection) {
        let tenant = self.sim.tenant();
        let user = &tenant.users[0];
        let calendar = &user.calendars[0];
        let account = self.account(&user.mail).await;
        let existing = account
            .ensure_collection(CollectionKind::Events, &calendar.name, None)
            .await
            .unwrap();
        let old = vevent(uid, "an old copy");
        account.put(&existing, uid, old.as_bytes()).await.unwrap();
        (account, existing)
    }

    async fn account(&self, address: &str) -> DavAccount {
        DavAccount::connect(
            &self.radicale.settings(),
            address,
            DavLogin::new(address, Secret::new("pw")),
        )
        .await
        .unwrap()
    }

    /// Items per collection display name, as Radicale holds them.
    async fn held(&self, address: &str, kind: CollectionKind) -> HashMap<String, usize> {
        let account = self.account(address).await;
        let mut held = HashMap::new();
        for collection in account.collections(kind).await.unwrap() {
            let items = account.list(&collection).await.unwrap();
            held.insert(
                collection.display_name.clone().unwrap_or_default(),
                items.len(),
            );
        }
        held
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn calendars_contacts_and_tasks_arrive_in_radicale_once_and_mail_in_dovecot() {
    let s = setup().await;
    let (first, failures) = s.run().await;
    assert_eq!(
        failures,
        Vec::<String>::new(),
        "{first:?}\n{}",
        s.radicale.log()
    );
    let tenant = s.sim.tenant();
    let mut expected_total = 0;
    for user in &tenant.users {
        let calendars = s.held(&user.mail, CollectionKind::Events).await;
        for calendar in &user.calendars {
            assert_eq!(
                calendars.get(&calendar.name).copied(),
                Some(calendar.events.len()),
                "{}: calendar {:?} in {calendars:?}",
                user.mail,
                calendar.name
            );
        }
        let contacts: usize = s
            .held(&user.mail, CollectionKind::Contacts)
            .await
            .values()
            .sum();
        let source_contacts: usize = user.contact_folders.iter().map(|f| f.contacts.len()).sum();
        assert_eq!(contacts, source_contacts, "{}", user.mail);
        let tasks = s.held(&user.mail, CollectionKind::Tasks).await;
        for list in &user.todo_lists {
            let held = tasks.get(&list.display_name).copied();
            if list.wellknown_list_name == "flaggedEmails" {
                assert_eq!(held, None, "the flagged-mail list is not migrated");
            } else {
                assert_eq!(held, Some(list.tasks.len()), "{}", list.display_name);
            }
        }
        expected_total += user.calendars.iter().map(|c| c.events.len()).sum::<usize>();
        let bodies = support::account_bodies(&s.dovecot, &user.mail).await;
        assert_eq!(bodies.values().sum::<usize>(), 3, "mail in Dovecot");
    }
    assert_eq!(first.totals.events as usize, expected_total);

    let (second, _) = s.run().await;
    assert_eq!(
        (
            second.totals.messages,
            second.totals.events,
            second.totals.contacts,
            second.totals.tasks,
            second.totals.failed
        ),
        (0, 0, 0, 0, 0),
        "a rerun writes nothing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_master_login_cannot_carry_groupware_and_says_so_per_user() {
    let s = setup().await;
    let source = support::source_config(&s.sim);
    let failures = support::Failures::default();
    let summary = run(
        &source,
        &Secret::new(s.sim.client_secret()),
        &Destination::Imap {
            settings: s.dovecot.tls_settings(),
            logins: ImapLogins::Master {
                master_user: support::dovecot::MASTER_USER.into(),
                password: Secret::new(support::dovecot::MASTER_PASSWORD),
                style: migrator_core::dest::imap::MasterStyle::SaslAuthzid,
            },
            dav: Some(s.radicale.settings()),
        },
        failures.reporter(),
        RunControl::new(),
        RunOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(summary.totals.messages, 6, "mail still arrives");
    let failures = failures.list();
    assert_eq!(
        failures.len(),
        2,
        "one clear failure per user: {failures:?}"
    );
    assert!(failures[0].contains("accounts_csv"), "{failures:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_calendar_already_holding_an_event_with_the_same_uid_ends_with_one_copy() {
    let s = setup().await;
    let tenant = s.sim.tenant();
    let user = &tenant.users[0];
    let calendar = &user.calendars[0];
    let event = &calendar.events[0];
    let (account, existing) = s.calendar_holding(&event.uid).await;
    let own = account
        .put(
            &existing,
            "the-users-own@example.com",
            vevent("the-users-own@example.com", "mine").as_bytes(),
        )
        .await
        .unwrap();

    let (summary, failures) = s.run().await;
    assert_eq!(failures, Vec::<String>::new(), "{summary:?}");
    let items = account.list(&existing).await.unwrap();
    assert_eq!(
        items.len(),
        calendar.events.len() + 1,
        "one copy per source event, plus the user's own event"
    );
    let mut with_uid = 0;
    for item in &items {
        let body = account.get(&item.href).await.unwrap().unwrap().body;
        let text = String::from_utf8_lossy(&body).replace("\r\n ", "");
        if text.contains(&format!("UID:{}", event.uid)) {
            with_uid += 1;
            assert!(
                !text.contains("an old copy"),
                "updated in place from the source"
            );
        }
    }
    assert_eq!(with_uid, 1);
    let mine = account.get(&own.href).await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&mine.body).contains("SUMMARY:mine"));
}

/// Regression (issue 18: a groupware item cost several PostgreSQL round trips in a row): after
/// each CalDAV/CardDAV write the ETag was recorded in a statement of its own, and a copy the
/// calendar already held was marked found in another, each before the "done" record; both
/// are only meaningful with "done" and now go in its statement. Counted on a PostgreSQL
/// journal for the events of one calendar that already holds one of them (the user's copy,
/// updated in place): before, one ETag statement per event and one "found" statement.
#[tokio::test(flavor = "multi_thread")]
async fn regression_postgres_a_dav_write_records_its_etag_and_found_state_with_its_done_record() {
    use migrator_core::config::Workload;
    let s = setup().await;
    let pg = support::postgres::Postgres::start_with_settings(&["log_statement=all"]);
    let tenant = s.sim.tenant();
    let event = &tenant.users[0].calendars[0].events[0];
    s.calendar_holding(&event.uid).await;
    std::env::set_var(
        migrator_core::journal::PASSWORD_VARIABLE,
        pg.password().expose(),
    );
    let options = RunOptions {
        journal: Some(migrator_core::journal::PostgresSettings::parse(&pg.url()).unwrap()),
        workloads: vec![Workload::Calendar],
        ..RunOptions::default()
    };
    let log_start = pg.log().len();
    let (summary, failures) = s.run_with(options).await;
    assert_eq!(failures, Vec::<String>::new(), "{summary:?}");
    let events: usize = tenant
        .users
        .iter()
        .flat_map(|u| &u.calendars)
        .map(|c| c.events.len())
        .sum();
    assert_eq!(summary.totals.events as usize, events);

    let log = pg.log();
    let statements = |start: &str| {
        log[log_start..]
            .lines()
            .filter(|l| l.contains(&format!(": {start}")))
            .count()
    };
    assert_eq!(
        statements("UPDATE items SET etag"),
        0,
        "ETags recorded alone"
    );
    assert_eq!(statements("UPDATE items SET created = 0"), 0, "found alone");
    assert_eq!(statements("UPDATE items SET state = 'done'"), events);
    let psql = |sql: &str| pg.psql(sql).trim().to_string();
    let source_id = &event.id;
    assert_eq!(
        psql(&format!(
            "SELECT created, etag IS NOT NULL FROM items WHERE source_id = '{source_id}'"
        )),
        "0|t",
        "the user's copy is marked found, its ETag kept"
    );
    assert_eq!(
        psql(
            "SELECT count(*) FROM items WHERE state = 'done' AND created = 1 AND etag IS NOT NULL"
        ),
        (events - 1).to_string(),
        "every other event is the migrator's, its ETag kept"
    );
}

/// A one-event calendar resource.
fn vevent(uid: &str, summary: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\n\
         DTSTAMP:20240101T000000Z\r\nDTSTART:20240102T100000Z\r\nDTEND:20240102T110000Z\r\n\
         SUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}
