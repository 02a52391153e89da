//! The whole engine into a real Dovecot: simulator -> IMAP, with a master login.

use crate::support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use migrator_core::convert::flags::keyword;
use migrator_core::dest::imap::{
    ConnectionLimit, ImapMailbox, ImapSettings, MasterStyle, Security,
};
use migrator_core::engine::{run, RunControl, RunOptions};
use migrator_core::progress::{NullReporter, RunSummary};
use migrator_core::secrets::Secret;
use migrator_sim::SimServer;
use support::dovecot::Dovecot;
use support::fault_proxy::FaultProxy;

struct Setup {
    sim: SimServer,
    dovecot: Dovecot,
    state: tempfile::TempDir,
}

async fn setup(users: usize, messages: usize) -> Setup {
    let (sim, dovecot) = support::tenant_with_dovecot(users, messages).await;
    Setup {
        sim,
        dovecot,
        state: tempfile::tempdir().unwrap(),
    }
}

/// Every selectable folder's messages: wire name -> UID -> (body, flags, INTERNALDATE).
type Snapshot = BTreeMap<String, BTreeMap<u32, (Vec<u8>, Vec<String>, i64)>>;

impl Setup {
    async fn run(&self) -> RunSummary {
        self.run_with(false).await
    }

    async fn run_with(&self, mirror_deletions: bool) -> RunSummary {
        let options = RunOptions {
            mirror_deletions,
            ..RunOptions::default()
        };
        self.run_into(self.dovecot.tls_settings(), options).await
    }

    /// A run into the server as `settings` reach it, with `options` (the journal is always
    /// this setup's).
    async fn run_into(&self, settings: ImapSettings, options: RunOptions) -> RunSummary {
        self.run_reported(settings, options, Arc::new(NullReporter))
            .await
    }

    /// [`Setup::run_into`], its progress going to `reporter`.
    async fn run_reported(
        &self,
        settings: ImapSettings,
        options: RunOptions,
        reporter: Arc<dyn migrator_core::progress::Reporter>,
    ) -> RunSummary {
        let source = support::source_config(&self.sim);
        let destination = support::dovecot::master_destination(settings);
        let options = RunOptions {
            state_dir: Some(self.state.path().join("state")),
            ..options
        };
        run(
            &source,
            &Secret::new(self.sim.client_secret()),
            &destination,
            reporter,
            RunControl::new(),
            options,
        )
        .await
        .unwrap_or_else(|e| panic!("run failed: {e:?}\n{}", self.dovecot.log()))
    }

    /// Every message on the server for `address`: body -> (flags, internal date), counted.
    async fn server_messages(&self, address: &str) -> HashMap<Vec<u8>, Vec<(Vec<String>, i64)>> {
        let mut out: HashMap<Vec<u8>, Vec<(Vec<String>, i64)>> = HashMap::new();
        for messages in self.snapshot(address).await.into_values() {
            for (body, flags, date) in messages.into_values() {
                out.entry(body).or_default().push((flags, date));
            }
        }
        out
    }

    async fn mailbox(&self, address: &str) -> ImapMailbox {
        let login = Dovecot::master(address, MasterStyle::SaslAuthzid);
        ImapMailbox::connect(&self.dovecot.tls_settings(), &login)
            .await
            .unwrap()
    }

    async fn snapshot(&self, address: &str) -> Snapshot {
        let mut mailbox = self.mailbox(address).await;
        let mut out = Snapshot::new();
        for folder in mailbox.list_folders().await.unwrap() {
            if folder
                .attributes
                .iter()
                .any(|a| a.eq_ignore_ascii_case("\\Noselect"))
            {
                continue;
            }
            let messages = out.entry(folder.wire.clone()).or_default();
            for uid in mailbox.uids(&folder.wire).await.unwrap() {
                let mut m = mailbox.fetch(&folder.wire, uid).await.unwrap().unwrap();
                // \Recent belongs to the session that sees it first, not to the message.
                m.flags.retain(|f| !f.eq_ignore_ascii_case("\\Recent"));
                let date = m.internal_date.map(|d| d.unix_timestamp()).unwrap_or(0);
                messages.insert(uid, (m.body, m.flags, date));
            }
        }
        out
    }

    /// The journal, opened directly (to simulate a crash or a lost delta link).
    fn journal_db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.state.path().join("state/journal.sqlite")).unwrap()
    }

    /// The requests the simulator received from index `from` on.
    fn requests_since(&self, from: usize) -> Vec<String> {
        self.sim.requests()[from..]
            .iter()
            .map(|r| r.path_and_query.clone())
            .collect()
    }

    fn total(&self) -> u64 {
        self.sim
            .tenant()
            .users
            .iter()
            .flat_map(|u| &u.folders)
            .map(|f| f.messages.len() as u64)
            .sum()
    }
}

#[tokio::test]
async fn every_message_arrives_once_byte_identical_with_flags_and_date_even_without_the_journal() {
    let s = setup(2, 40).await;
    let first = s.run().await;
    assert_eq!(first.totals.failed, 0);
    assert_eq!(first.totals.messages, s.total());
    assert_every_message_once(&s, &[]).await;

    let rerun = s.run().await;
    assert_eq!(rerun.totals.messages, 0, "a rerun appends nothing");
    assert_eq!(
        rerun.totals.skipped, 0,
        "a rerun reads only changes (delta), and nothing changed"
    );

    // Losing the journal must not duplicate: the server is asked before every append.
    std::fs::remove_dir_all(s.state.path().join("state")).unwrap();
    let without_journal = s.run().await;
    assert_eq!(without_journal.totals.messages, 0);
    assert_eq!(without_journal.totals.skipped, s.total());
    let user = &s.sim.tenant().users[0];
    let count: usize = s
        .server_messages(&user.mail)
        .await
        .values()
        .map(Vec::len)
        .sum();
    let source: usize = user.folders.iter().map(|f| f.messages.len()).sum();
    assert_eq!(count, source, "still exactly one copy of each message");
}

/// Every source message (but those with an id in `except`) is on the server exactly once,
/// byte for byte, with its flags and INTERNALDATE, and nothing else is.
async fn assert_every_message_once(s: &Setup, except: &[&str]) {
    for user in &s.sim.tenant().users {
        let on_server = s.server_messages(&user.mail).await;
        let source: Vec<_> = user
            .folders
            .iter()
            .flat_map(|f| &f.messages)
            .filter(|m| !except.contains(&m.id.as_str()))
            .collect();
        assert_eq!(
            on_server.values().map(Vec::len).sum::<usize>(),
            source.len(),
            "message count for {}",
            user.mail
        );
        for m in source {
            let copies = on_server
                .get(m.mime.as_ref())
                .unwrap_or_else(|| panic!("message {} missing or altered", m.id));
            assert_eq!(copies.len(), 1, "message {} exactly once", m.id);
            let (flags, date) = &copies[0];
            assert_system_flags(m, flags);
            assert_eq!(
                *date,
                m.received.unix_timestamp(),
                "INTERNALDATE of {}",
                m.id
            );
        }
    }
}

#[tokio::test]
async fn batched_appends_over_pooled_connections_are_exactly_once_and_never_exceed_the_server_wide_cap(
) {
    let s = setup(4, 60).await;
    let proxy = FaultProxy::start(s.dovecot.imap_port).await;
    let mut settings = ImapSettings::new("127.0.0.1", proxy.port, Security::Plain);
    settings.allow_plaintext_loopback = true;
    settings.connections_per_mailbox = 2;
    settings.connection_limit = ConnectionLimit::new(3);
    // More mailboxes at once than the cap allows connections.
    let options = RunOptions {
        parallel_mailboxes: 4,
        ..RunOptions::default()
    };
    let first = s.run_into(settings.clone(), options.clone()).await;
    assert_eq!(first.totals.failed, 0);
    assert_eq!(first.totals.messages, s.total());
    assert!(
        proxy.stats().peak <= 3,
        "{} connections open at once over a cap of 3",
        proxy.stats().peak
    );
    assert!(proxy.stats().peak >= 2, "mailboxes ran in parallel");
    let appends = proxy.stats().appends;
    assert!(
        appends < s.total() as u64,
        "{appends} APPEND commands for {} messages: MULTIAPPEND batches them",
        s.total()
    );
    assert_every_message_once(&s, &[]).await;

    let rerun = s.run_into(settings, options).await;
    assert_eq!(rerun.totals.messages, 0);
    assert_eq!(proxy.stats().appends, appends, "a rerun appends nothing");
    assert!(proxy.stats().peak <= 3);
}

#[tokio::test]
async fn a_message_the_server_refuses_inside_a_batch_fails_alone() {
    refused_inside_a_batch(None).await;
}

#[tokio::test]
async fn a_message_the_server_refuses_among_pipelined_appends_fails_alone() {
    // No MULTIAPPEND announced: the writer pipelines single APPENDs with LITERAL+.
    refused_inside_a_batch(Some(
        "IMAP4rev1 SASL-IR LITERAL+ ID ENABLE IDLE NAMESPACE CHILDREN SPECIAL-USE UIDPLUS",
    ))
    .await;
}

async fn refused_inside_a_batch(capability: Option<&str>) {
    let sim = migrator_sim::SimServer::start(migrator_sim::SimConfig {
        tenant: migrator_sim::TenantSpec {
            users: 1,
            messages_per_user: 30,
            ..migrator_sim::TenantSpec::default()
        },
        ..migrator_sim::SimConfig::default()
    })
    .await
    .unwrap();
    let user = sim.tenant().users[0].clone();
    // Too big for the server, between ordinary messages of the same folder.
    let inbox = &user.folders[0];
    let received = inbox.messages[inbox.messages.len() / 2].received;
    let (big, limit_kib) = support::too_big_message(&sim, "too-big", "big");
    let message = migrator_sim::Message::from_mime("too-big", big, received);
    assert!(sim.add_message(&user.id, &inbox.id, message));
    let dovecot = Dovecot::start_with(support::dovecot::Options {
        users: vec![(user.mail.clone(), "pw".into())],
        max_mail_kib: Some(limit_kib),
        capability: capability.map(str::to_string),
        ..support::dovecot::Options::default()
    });
    let s = Setup {
        sim,
        dovecot,
        state: tempfile::tempdir().unwrap(),
    };
    let failures = support::Failures::default();
    let options = RunOptions::default();
    let summary = s
        .run_reported(s.dovecot.tls_settings(), options, failures.reporter())
        .await;
    assert_eq!(summary.totals.failed, 1, "only the refused message fails");
    assert_eq!(summary.totals.messages, s.total() - 1);
    assert_every_message_once(&s, &["too-big"]).await;
    let failed: i64 = s
        .journal_db()
        .query_row(
            "SELECT COUNT(*) FROM items WHERE state = 'failed' AND source_id = 'too-big'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(failed, 1, "the journal names the refused message");
    // Issue 15: a refused APPEND was named by its Graph id only, live and in the report.
    let failures = failures.list();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0].contains(" Inbox too-big \"big\": "),
        "the progress names the subject: {failures:?}"
    );
    let journal = migrator_core::journal::Journal::open(&s.state.path().join("state")).unwrap();
    let report = migrator_core::engine::report::Report::from_journal(&journal).unwrap();
    let f = &report.failures[0];
    assert_eq!(
        (f.subject.as_deref(), f.folder.as_str(), f.item.as_str()),
        (Some("big"), "INBOX", "too-big")
    );
    assert_eq!(
        f.date,
        Some(migrator_core::progress::rfc3339(received.unix_timestamp()))
    );
    assert!(f.size.is_some_and(|n| n > limit_kib * 1024), "{f:?}");
}

/// Asserts \\Seen, \\Flagged and \\Draft at the server match the source message.
fn assert_system_flags(m: &migrator_sim::Message, flags: &[String]) {
    let has = |f: &str| flags.iter().any(|x| x.eq_ignore_ascii_case(f));
    assert_eq!(has("\\Seen"), m.is_read, "\\Seen of {}", m.id);
    assert_eq!(
        has("\\Flagged"),
        m.flag_status == "flagged",
        "\\Flagged of {}",
        m.id
    );
    assert_eq!(has("\\Draft"), m.is_draft, "\\Draft of {}", m.id);
}

/// Asserts that the server mirrors `user`'s mailbox: each source message exactly once,
/// byte-identical, with its flags; the messages of one source folder together in one
/// destination folder, and no two source folders in the same one. `extra` are the other
/// messages the server must hold exactly once (pre-existing mail, deletions kept).
fn assert_mirrors(user: &migrator_sim::User, snap: &Snapshot, extra: &[&[u8]]) {
    let mut copies: HashMap<&[u8], Vec<(&str, &Vec<String>)>> = HashMap::new();
    for (folder, messages) in snap {
        for (body, flags, _) in messages.values() {
            copies
                .entry(body.as_slice())
                .or_default()
                .push((folder.as_str(), flags));
        }
    }
    let mut dest_of_folder: HashMap<&str, &str> = HashMap::new();
    let mut expected = 0;
    for folder in user.folders.iter().filter(|f| !f.is_search_folder) {
        for m in &folder.messages {
            expected += 1;
            let found = copies
                .get(m.mime.as_ref())
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            assert_eq!(
                found.len(),
                1,
                "message {} of {} must be there exactly once, found in {:?}",
                m.id,
                folder.display_name,
                found.iter().map(|c| c.0).collect::<Vec<_>>()
            );
            let (dest, flags) = found[0];
            let previous = dest_of_folder.insert(&folder.id, dest);
            assert!(
                previous.is_none_or(|p| p == dest),
                "messages of {} are spread over {previous:?} and {dest}",
                folder.display_name
            );
            assert_system_flags(m, flags);
            let has = |f: &str| flags.iter().any(|x| x.eq_ignore_ascii_case(f));
            match m.last_verb_executed {
                Some(102 | 103) => assert!(has("\\Answered"), "\\Answered of {}", m.id),
                Some(104) => assert!(has("$Forwarded"), "$Forwarded of {}", m.id),
                _ => assert!(
                    !has("\\Answered") && !has("$Forwarded"),
                    "never answered: {}",
                    m.id
                ),
            }
            let keywords: HashSet<String> = flags
                .iter()
                .filter(|f| !f.starts_with('\\') && !f.eq_ignore_ascii_case("$Forwarded"))
                .cloned()
                .collect();
            let categories: HashSet<String> =
                m.categories.iter().filter_map(|c| keyword(c)).collect();
            assert_eq!(keywords, categories, "keywords of {}", m.id);
        }
    }
    let distinct: HashSet<&str> = dest_of_folder.values().copied().collect();
    assert_eq!(
        distinct.len(),
        dest_of_folder.len(),
        "two source folders merged"
    );
    for body in extra {
        assert_eq!(
            copies.get(body).map(Vec::len),
            Some(1),
            "a message that must stay is missing or doubled"
        );
    }
    let on_server: usize = snap.values().map(BTreeMap::len).sum();
    assert_eq!(on_server, expected + extra.len(), "messages on the server");
}

fn wire_of<'a>(snap: &'a Snapshot, body: &[u8]) -> &'a str {
    snap.iter()
        .find(|(_, m)| m.values().any(|(b, ..)| b == body))
        .map(|(f, _)| f.as_str())
        .unwrap_or_else(|| panic!("message not on the server"))
}

fn folder_by_name<'a>(user: &'a migrator_sim::User, name: &str) -> &'a migrator_sim::MailFolder {
    user.folders
        .iter()
        .find(|f| f.display_name == name)
        .unwrap_or_else(|| panic!("no folder {name}"))
}

const FOREIGN: &[u8] =
    b"Message-ID: <pre-existing@example.org>\r\nSubject: was here before\r\n\r\nkeep me\r\n";

#[tokio::test]
async fn an_incremental_pass_mirrors_adds_moves_flags_and_deletions_and_a_quiet_one_writes_nothing()
{
    let s = setup(1, 60).await;
    let user = s.sim.tenant().users[0].clone();
    let address = user.mail.clone();
    // Mail that predates the migration, with flags of its own.
    {
        let mut mailbox = s.mailbox(&address).await;
        let flags = migrator_core::convert::flags::MailFlags {
            flagged: true,
            ..Default::default()
        };
        let at = time::OffsetDateTime::from_unix_timestamp(1_600_000_000).unwrap();
        mailbox
            .append("INBOX", FOREIGN, FOREIGN.len() as u64, &flags, at)
            .await
            .unwrap();
        mailbox.logout().await;
    }
    // Answered before the migration: delta does not say so, the extra listing does.
    let answered = user.folders[0].messages[6].id.clone();
    assert!(s
        .sim
        .update_message(&user.id, &answered, |m| m.last_verb_executed = Some(102)));
    let user = s.sim.tenant().users[0].clone();
    let first = s.run().await;
    assert_eq!(first.totals.failed, 0);
    let before = s.snapshot(&address).await;
    assert_mirrors(&user, &before, &[FOREIGN]);
    let foreign_at = |snap: &Snapshot| {
        snap["INBOX"]
            .iter()
            .find(|(_, (b, ..))| b == FOREIGN)
            .map(|(uid, (_, flags, _))| (*uid, flags.clone()))
    };
    let foreign = foreign_at(&before).unwrap();

    // Users keep working: one of each change.
    let inbox = folder_by_name(&user, "Inbox");
    let archive = folder_by_name(&user, "Archive");
    let sent = user
        .folders
        .iter()
        .find(|f| f.well_known_name.as_deref() == Some("sentitems"))
        .unwrap();
    assert!(
        inbox.messages.len() >= 6 && !sent.messages.is_empty(),
        "tenant shape"
    );
    let m = |i: usize| inbox.messages[i].clone();
    let (to_archive, to_new, read, flag, categorised, deleted) =
        (m(0), m(1), m(2), m(3), m(4), m(5));
    let from_sent = sent.messages[0].clone();
    assert!(s.sim.move_message(&user.id, &to_archive.id, &archive.id));
    s.sim.mutate(|t| {
        t.users[0].folders.push(migrator_sim::MailFolder {
            id: "AAMkAGI2TG93AAAuAAAAAAAbrandnewfolderAAA=".into(),
            parent_id: Some(inbox.id.clone()),
            display_name: "Neu ✓".into(),
            well_known_name: None,
            is_hidden: false,
            is_search_folder: false,
            messages: Vec::new(),
        })
    });
    assert!(s.sim.move_message(
        &user.id,
        &to_new.id,
        "AAMkAGI2TG93AAAuAAAAAAAbrandnewfolderAAA="
    ));
    assert!(s.sim.move_message(&user.id, &from_sent.id, &inbox.id));
    assert!(s.sim.set_read(&user.id, &read.id, !read.is_read));
    assert!(s.sim.set_flag(&user.id, &flag.id, "flagged"));
    assert!(s.sim.update_message(&user.id, &categorised.id, |m| {
        m.categories = vec!["Green category".into()]
    }));
    assert!(s.sim.delete_message(&user.id, &deleted.id));
    // Answered, then forwarded: \Answered stays, $Forwarded is added.
    assert!(s
        .sim
        .update_message(&user.id, &answered, |m| m.last_verb_executed = Some(104)));
    let forwarded = m(7);
    assert!(s
        .sim
        .update_message(&user.id, &forwarded.id, |m| m.last_verb_executed =
            Some(104)));
    // A folder renamed at the source: its messages and its subfolders' follow it.
    s.sim.mutate(|t| {
        for f in &mut t.users[0].folders {
            if f.display_name == "Projects" {
                f.display_name = "Projekte".into();
            }
        }
    });
    let under_projects: Vec<_> = ["Projects", "2024", "Q1"]
        .iter()
        .flat_map(|n| folder_by_name(&user, n).messages.clone())
        .collect();
    assert!(!under_projects.is_empty(), "tenant shape");
    let added = migrator_sim::sample_message(
        &s.sim.tenant().users[0],
        4242,
        time::OffsetDateTime::now_utc(),
    );
    assert!(s.sim.add_message(&user.id, "inbox", added.clone()));

    let log_mark = s.sim.requests().len();
    let second = s.run().await;
    assert_eq!(second.totals.failed, 0);
    assert_eq!(
        second.totals.messages, 1,
        "only the new message is appended"
    );
    let user_now = s.sim.tenant().users[0].clone();
    let after = s.snapshot(&address).await;
    // Deleted at the source: kept by default.
    assert_mirrors(&user_now, &after, &[FOREIGN, deleted.mime.as_ref()]);
    assert_eq!(wire_of(&after, deleted.mime.as_ref()), "INBOX");
    assert_eq!(
        foreign_at(&after),
        Some(foreign.clone()),
        "pre-existing mail untouched"
    );
    for m in &under_projects {
        let wire = wire_of(&after, m.mime.as_ref());
        assert!(wire.starts_with("INBOX/Projekte"), "{wire}");
    }
    let new_folder = wire_of(&after, to_new.mime.as_ref());
    assert!(
        new_folder.ends_with("Neu &/xM-") || new_folder.contains("Neu"),
        "{new_folder}"
    );
    // Moves keep the message's identity: nothing is downloaded again but the new message,
    // and the second pass reads changes only.
    let requests = s.requests_since(log_mark);
    let values: Vec<_> = requests
        .iter()
        .filter(|p| p.contains("/messages/") && p.contains("/$value"))
        .collect();
    assert_eq!(
        values.len(),
        1,
        "only the added message is downloaded: {values:?}"
    );
    assert!(
        requests
            .iter()
            .all(|p| !p.contains("/messages?") || p.contains("$filter=")),
        "no full listing: {requests:?}"
    );
    let answered_flags = after
        .values()
        .flat_map(|m| m.values())
        .find(|(b, ..)| {
            Some(b.as_slice())
                == user_now
                    .folders
                    .iter()
                    .flat_map(|f| &f.messages)
                    .find(|m| m.id == answered)
                    .map(|m| m.mime.as_ref())
        })
        .map(|(_, f, _)| f.clone())
        .unwrap();
    assert!(
        answered_flags.iter().any(|f| f == "\\Answered")
            && answered_flags.iter().any(|f| f == "$Forwarded"),
        "{answered_flags:?}"
    );
    let full_rounds: Vec<_> = requests
        .iter()
        .filter(|p| p.contains("/messages/delta?") && !p.contains("token="))
        .collect();
    assert_eq!(
        full_rounds.len(),
        1,
        "a full round only for the new folder: {full_rounds:?}"
    );

    // Nothing changed: nothing is read but delta pages, and nothing is written.
    let changes = s.dovecot.mail_changes();
    let log_mark = s.sim.requests().len();
    let quiet = s.run().await;
    assert_eq!((quiet.totals.messages, quiet.totals.failed), (0, 0));
    assert_eq!(
        s.dovecot.mail_changes(),
        changes,
        "no APPEND, STORE, MOVE or EXPUNGE"
    );
    assert_eq!(s.snapshot(&address).await, after);
    let requests = s.requests_since(log_mark);
    assert!(
        requests
            .iter()
            .filter(|p| p.contains("/messages"))
            .all(|p| p.contains("/messages/delta?$deltatoken=")),
        "{requests:?}"
    );

    // A replay of whole rounds (delta links lost) changes nothing either.
    s.journal_db()
        .execute("UPDATE folders SET delta_link = NULL", [])
        .unwrap();
    let replay = s.run().await;
    assert_eq!((replay.totals.messages, replay.totals.failed), (0, 0));
    assert_eq!(s.dovecot.mail_changes(), changes, "a replay writes nothing");
    assert_eq!(s.snapshot(&address).await, after);

    // Expired delta links (410): a full resync picks up the change, without duplicates.
    let unread = user_now
        .folders
        .iter()
        .flat_map(|f| &f.messages)
        .find(|m| !m.is_read)
        .unwrap()
        .clone();
    s.sim.expire_delta_tokens();
    assert!(s.sim.set_read(&user.id, &unread.id, true));
    let resync = s.run().await;
    assert_eq!((resync.totals.messages, resync.totals.failed), (0, 0));
    let changed = s.dovecot.mail_changes();
    assert_eq!(
        changed.len(),
        changes.len() + 1,
        "one flag change: {:?}",
        &changed[changes.len()..]
    );
    assert!(
        changed[changes.len()].contains("flag_change"),
        "{}",
        changed[changes.len()]
    );
    let resynced = s.snapshot(&address).await;
    assert_mirrors(
        &s.sim.tenant().users[0],
        &resynced,
        &[FOREIGN, deleted.mime.as_ref()],
    );

    // Opting in deletes what was deleted at the source, and only that.
    let mirrored = s.run_with(true).await;
    assert_eq!(mirrored.totals.failed, 0);
    let last = s.snapshot(&address).await;
    assert_mirrors(&s.sim.tenant().users[0], &last, &[FOREIGN]);
    assert_eq!(
        foreign_at(&last),
        Some(foreign),
        "pre-existing mail untouched"
    );
}

#[tokio::test]
async fn a_crash_between_append_and_journal_write_leaves_no_duplicate_on_the_next_pass() {
    let s = setup(1, 20).await;
    let user = s.sim.tenant().users[0].clone();
    let first = s.run().await;
    assert_eq!(first.totals.failed, 0);
    let added = migrator_sim::sample_message(&user, 77, time::OffsetDateTime::now_utc());
    assert!(s.sim.add_message(&user.id, "inbox", added.clone()));
    let second = s.run().await;
    assert_eq!(second.totals.messages, 1);
    // The crash: the APPEND happened, the journal never heard of it, and the round's new
    // delta link was never stored.
    let inbox = folder_by_name(&user, "Inbox");
    let db = s.journal_db();
    assert_eq!(
        db.execute("DELETE FROM items WHERE source_id = ?1", [&added.id])
            .unwrap(),
        1
    );
    db.execute(
        "UPDATE folders SET delta_link = NULL WHERE folder_id = ?1",
        [&inbox.id],
    )
    .unwrap();
    let changes = s.dovecot.mail_changes();
    let again = s.run_with(true).await;
    assert_eq!((again.totals.messages, again.totals.failed), (0, 0));
    assert_eq!(s.dovecot.mail_changes(), changes, "nothing appended again");
    assert_mirrors(&s.sim.tenant().users[0], &s.snapshot(&user.mail).await, &[]);
}

/// Regression (issue 18, page-wide intents): a run that stopped after recording a page's
/// intents but before writing one of its messages left that message `pending`; the user's
/// own copy of it, at the destination before the migration, was then taken for the
/// migrator's and deleted by mirror deletions once the message was deleted at the source.
#[tokio::test]
async fn regression_a_copy_found_for_an_intent_planned_with_its_page_is_never_taken_as_the_migrators(
) {
    let s = setup(1, 20).await;
    let user = s.sim.tenant().users[0].clone();
    let inbox = folder_by_name(&user, "Inbox").clone();
    let own = inbox.messages[3].clone();
    // The user's own copy, there before the migration.
    {
        let mut mailbox = s.mailbox(&user.mail).await;
        let flags = migrator_core::convert::flags::MailFlags::default();
        let at = time::OffsetDateTime::from_unix_timestamp(1_600_000_000).unwrap();
        let body = own.mime.as_ref();
        mailbox
            .append("INBOX", body, body.len() as u64, &flags, at)
            .await
            .unwrap();
        mailbox.logout().await;
    }
    // An earlier run recorded the Inbox page's intents and stopped before writing this one.
    {
        let journal = migrator_core::journal::Journal::open(&s.state.path().join("state")).unwrap();
        let run = journal.begin_run().unwrap();
        let target = migrator_core::journal::ItemTarget {
            user_id: &user.id,
            source_id: &own.id,
            folder_id: &inbox.id,
            dest_folder: "INBOX",
        };
        journal.record_intents("mail", &[target], run).unwrap();
    }
    let first = s.run().await;
    assert_eq!(first.totals.failed, 0);
    let found: i64 = s
        .journal_db()
        .query_row(
            "SELECT created FROM items WHERE source_id = ?1 AND state = 'done' AND dest_folder = 'INBOX'",
            [&own.id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(found, 0, "the copy at the destination was found, not made");

    assert!(s.sim.delete_message(&user.id, &own.id));
    let second = s.run_with(true).await;
    assert_eq!(second.totals.failed, 0);
    let held = s.server_messages(&user.mail).await;
    assert_eq!(
        held.get(own.mime.as_ref()).map(Vec::len),
        Some(1),
        "the user's own copy is still there, once"
    );
}

#[tokio::test]
async fn after_a_uidvalidity_change_the_message_is_found_again_by_its_fingerprint() {
    let s = setup(1, 20).await;
    let user = s.sim.tenant().users[0].clone();
    let first = s.run().await;
    assert_eq!(first.totals.failed, 0);
    // The destination renumbered its UIDs (as after a restore): every recorded UIDVALIDITY
    // and UID is now wrong, and no recorded UID may be trusted.
    let db = s.journal_db();
    let stale = db
        .execute(
            "UPDATE items SET dest_ref =
                 replace(replace(dest_ref, ';UIDVALIDITY=', ';UIDVALIDITY=9'), ';UID=', ';UID=77')",
            [],
        )
        .unwrap();
    assert!(stale > 0);
    let target = user.folders[0].messages[0].clone();
    assert!(s.sim.set_read(&user.id, &target.id, !target.is_read));
    assert!(s.sim.set_flag(&user.id, &target.id, "flagged"));
    let changes = s.dovecot.mail_changes();
    let second = s.run().await;
    assert_eq!((second.totals.messages, second.totals.failed), (0, 0));
    let new: Vec<_> = s.dovecot.mail_changes()[changes.len()..].to_vec();
    assert!(
        !new.is_empty() && new.iter().all(|l| l.contains("flag_change")),
        "only the flags of the one message change: {new:?}"
    );
    assert_mirrors(&s.sim.tenant().users[0], &s.snapshot(&user.mail).await, &[]);
    let dest_ref: String = db
        .query_row(
            "SELECT dest_ref FROM items WHERE source_id = ?1",
            [&target.id],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        !dest_ref.contains(";UIDVALIDITY=9"),
        "the new UID is recorded: {dest_ref}"
    );
}
