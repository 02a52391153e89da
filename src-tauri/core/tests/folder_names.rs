//! Folder names as the user typed them (issue 15.1), through the whole engine into a real
//! Dovecot: `%`, `/`, `&`, `.`, `*`, emoji, Czech and Japanese; two names that collide; a
//! rename at the source; and a destination an earlier version migrated under escaped names.

use crate::support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::sync::Arc;

use migrator_core::convert::folder_name::{encode_mutf7, escape};
use migrator_core::dest::imap::{ImapMailbox, MasterStyle};
use migrator_core::engine::{run, RunControl, RunOptions};
use migrator_core::progress::{NullReporter, RunSummary};
use migrator_core::secrets::Secret;
use migrator_sim::SimServer;
use support::dovecot::{Dovecot, Options};

/// Display names as typed at the source (beside the simulator's own `100%`, `v1.2`,
/// `*starred*`, `Ideas 💡`, `a/b`, `R&D`, `日本語`), and how they must read at the destination (a `/`
/// separator: only `/` becomes `∕`).
const NAMES: [(&str, &str); 10] = [
    ("100% done", "100% done"),
    ("Reports 2024/25", "Reports 2024\u{2215}25"),
    ("Q&A", "Q&A"),
    ("v2.0 final", "v2.0 final"),
    ("*urgent*", "*urgent*"),
    ("Party 🎉", "Party 🎉"),
    ("Přílohy a účty", "Přílohy a účty"),
    ("日本語のフォルダ", "日本語のフォルダ"),
    // Collides with the next one once `/` is replaced: the second gets a suffix.
    ("x/y", "x\u{2215}y"),
    ("x\u{2215}y", "x\u{2215}y"),
];

fn folder_id(i: usize) -> String {
    format!("AAMkAGI2TG93AAAuAAAAAAAnamedfolder{i:02}AAA=")
}

/// A top-level folder `name` holding one new message, its id from `i` ([`folder_id`]).
fn top_level_folder(user: &migrator_sim::User, i: usize, name: &str) -> migrator_sim::MailFolder {
    let at = time::OffsetDateTime::now_utc();
    migrator_sim::MailFolder {
        id: folder_id(i),
        parent_id: None,
        display_name: name.to_string(),
        well_known_name: None,
        is_hidden: false,
        is_search_folder: false,
        messages: vec![migrator_sim::sample_message(user, 9000 + i as u64, at)],
    }
}

struct Setup {
    sim: SimServer,
    dovecot: Dovecot,
    state: tempfile::TempDir,
    address: String,
}

/// One user with one message in each folder of [`NAMES`], and a Dovecot with listescape (so
/// it stores `.` and a leading `~`; without it Dovecot refuses them).
async fn setup() -> Setup {
    let sim = SimServer::start(migrator_sim::SimConfig {
        tenant: migrator_sim::TenantSpec {
            users: 1,
            messages_per_user: 4,
            ..migrator_sim::TenantSpec::default()
        },
        ..migrator_sim::SimConfig::default()
    })
    .await
    .expect("the simulator starts");
    let user = sim.tenant().users[0].clone();
    sim.mutate(|t| {
        for (i, (name, _)) in NAMES.iter().enumerate() {
            t.users[0].folders.push(top_level_folder(&user, i, name));
        }
    });
    let dovecot = Dovecot::start_with(Options {
        users: support::tenant_accounts(&sim),
        listescape: true,
        ..Options::default()
    });
    Setup {
        address: user.mail.clone(),
        sim,
        dovecot,
        state: tempfile::tempdir().unwrap(),
    }
}

impl Setup {
    async fn run(&self) -> RunSummary {
        let source = support::source_config(&self.sim);
        let destination = support::dovecot::master_destination(self.dovecot.tls_settings());
        let options = RunOptions {
            state_dir: Some(self.state.path().join("state")),
            ..RunOptions::default()
        };
        let summary = run(
            &source,
            &Secret::new(self.sim.client_secret()),
            &destination,
            Arc::new(NullReporter),
            RunControl::new(),
            options,
        )
        .await
        .unwrap_or_else(|e| panic!("run failed: {e:?}\n{}", self.dovecot.log()));
        assert_eq!(summary.totals.failed, 0, "{}", self.dovecot.log());
        summary
    }

    async fn mailbox(&self) -> ImapMailbox {
        let login = Dovecot::master(&self.address, MasterStyle::SaslAuthzid);
        ImapMailbox::connect(&self.dovecot.tls_settings(), &login)
            .await
            .unwrap()
    }

    /// Every folder as a user reads it (decoded path joined by `/`) -> (wire name, messages).
    async fn folders(&self) -> BTreeMap<String, (String, u32)> {
        let mut mailbox = self.mailbox().await;
        let mut out = BTreeMap::new();
        for f in mailbox.list_folders().await.unwrap() {
            let count = mailbox.message_count(&f.wire).await.unwrap();
            out.insert(f.path.join("/"), (f.wire, count));
        }
        out
    }

    /// Every message body exactly once in the account.
    async fn assert_each_message_once(&self) {
        let bodies = support::account_bodies(&self.dovecot, &self.address).await;
        let total: usize = self.sim.tenant().users[0]
            .folders
            .iter()
            .map(|f| f.messages.len())
            .sum();
        assert_eq!(bodies.len(), total, "every message arrived");
        assert!(bodies.values().all(|&n| n == 1), "a duplicate: {bodies:?}");
    }

    /// Renames a folder on the server (RENAME, RFC 3501 §6.3.5) over a plain login on the
    /// loopback port: what an earlier version's name looked like.
    fn rename_on_server(&self, from: &str, to: &str) {
        let stream = std::net::TcpStream::connect(("127.0.0.1", self.dovecot.imap_port)).unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut writer = stream;
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let quote = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
        for (tag, command) in [
            ("a", format!("LOGIN {} \"pw\"", quote(&self.address))),
            ("b", format!("RENAME {} {}", quote(from), quote(to))),
            ("c", "LOGOUT".to_string()),
        ] {
            write!(writer, "{tag} {command}\r\n").unwrap();
            loop {
                line.clear();
                assert!(
                    reader.read_line(&mut line).unwrap() > 0,
                    "connection closed"
                );
                if line.starts_with(&format!("{tag} ")) {
                    assert!(line.starts_with(&format!("{tag} OK")), "{command}: {line}");
                    break;
                }
            }
        }
    }
}

/// Regression (issue 15.1): folders arrived as `100%25 done`, `Reports 2024%2F25`, `v1%2E2`.
#[tokio::test]
async fn folder_names_arrive_as_typed_collide_apart_and_follow_a_rename() {
    let s = setup().await;
    s.run().await;
    let folders = s.folders().await;
    for (i, (typed, visible)) in NAMES.iter().enumerate().take(8) {
        let (wire, count) = folders
            .get(*visible)
            .unwrap_or_else(|| panic!("{typed} (source {i}) not at {visible}: {folders:#?}"));
        assert_eq!(*count, 1, "{visible}: {folders:#?}");
        assert!(wire.is_ascii(), "modified UTF-7 on the wire: {wire}");
    }
    // The colliding pair: the lower folder id keeps the name, the other a short suffix.
    assert_eq!(folders["x\u{2215}y"].1, 1);
    let suffixed: Vec<_> = folders
        .keys()
        .filter(|k| k.starts_with("x\u{2215}y ~"))
        .collect();
    assert_eq!(suffixed.len(), 1, "{folders:#?}");
    assert_eq!(suffixed[0].chars().count(), "x∕y ~123456".chars().count());
    assert_eq!(folders[suffixed[0].as_str()].1, 1);
    assert!(
        !folders
            .keys()
            .any(|k| k.contains('%') && !k.starts_with("100%")),
        "no escape codes: {folders:#?}"
    );
    // Dovecot 2.3 does not confirm UTF8=ACCEPT, so names travel in modified UTF-7 only.
    assert!(!s.mailbox().await.utf8_names());
    s.assert_each_message_once().await;

    // Renamed at the source: the folder follows under its new name, as typed.
    s.sim.mutate(|t| {
        for f in &mut t.users[0].folders {
            if f.id == folder_id(0) {
                f.display_name = "99% done/almost".into();
            }
        }
    });
    s.run().await;
    let after = s.folders().await;
    assert_eq!(after["99% done\u{2215}almost"].1, 1, "{after:#?}");
    assert_eq!(after.get("100% done").map(|f| f.1).unwrap_or(0), 0);
    s.assert_each_message_once().await;
}

/// A destination an earlier version migrated with `%XX` escapes (`100%25 done`,
/// `Reports 2024%2F25`): the journal recognises its folders, a rerun keeps their names and
/// duplicates neither folders nor messages; a folder new at the source gets its name as typed.
#[tokio::test]
async fn a_destination_migrated_under_escaped_names_is_rerun_without_duplicates() {
    let s = setup().await;
    s.run().await;
    // Turn the destination and the journal into what the earlier version left.
    let db = rusqlite::Connection::open(s.state.path().join("state/journal.sqlite")).unwrap();
    let folders = s.folders().await;
    let mut legacy_names = Vec::new();
    for (i, (typed, visible)) in NAMES.iter().enumerate().take(8) {
        let wire = folders[*visible].0.clone();
        let legacy = encode_mutf7(&escape(typed, &['/']));
        if legacy == wire {
            continue;
        }
        s.rename_on_server(&wire, &legacy);
        let changed = db
            .execute(
                "UPDATE folders SET dest_name = ?1 WHERE folder_id = ?2 AND dest_name = ?3",
                rusqlite::params![legacy, folder_id(i), wire],
            )
            .unwrap();
        assert_eq!(changed, 1, "{typed}");
        db.execute(
            "UPDATE items SET dest_folder = ?1,
                 dest_ref = ?1 || substr(dest_ref, length(?2) + 1)
             WHERE dest_folder = ?2",
            rusqlite::params![legacy, wire],
        )
        .unwrap();
        legacy_names.push(legacy);
    }
    assert!(legacy_names.len() >= 2, "{legacy_names:?}");
    drop(db);
    let before = s.folders().await;
    assert!(before.contains_key("100%25 done"), "{before:#?}");

    s.run().await;
    let after = s.folders().await;
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>(),
        "no folder created under the new names"
    );
    for legacy in &legacy_names {
        let name = migrator_core::convert::folder_name::decode_mutf7(legacy).unwrap();
        assert_eq!(after[&name].1, 1, "{name} keeps its message");
    }
    s.assert_each_message_once().await;

    // A folder new at the source is named as typed beside the kept ones.
    let user = s.sim.tenant().users[0].clone();
    s.sim.mutate(|t| {
        t.users[0]
            .folders
            .push(top_level_folder(&user, 50, "50% more"))
    });
    s.run().await;
    let last = s.folders().await;
    assert_eq!(last["50% more"].1, 1, "{last:#?}");
    assert_eq!(last.len(), before.len() + 1);
    s.assert_each_message_once().await;
}

/// The local folder read back by a Maildir++ reader: Dovecot over the migrated tree (a `/`
/// separator), its listescape plugin reading the on-disk `%xx` escapes
/// (`listescape_char = "%%"`). After a rename at the source and a rerun.
#[tokio::test]
async fn local_folder_names_read_back_as_typed_through_a_maildir_reader() {
    let s = setup().await;
    let out = tempfile::tempdir().unwrap();
    let to_folder = || async {
        let summary = migrator_core::engine::run_to_folder_with(
            &support::source_config(&s.sim),
            &Secret::new(s.sim.client_secret()),
            out.path(),
            Arc::new(NullReporter),
            RunControl::new(),
            RunOptions {
                workloads: vec![migrator_core::config::Workload::Mail],
                state_dir: Some(out.path().join("state")),
                ..RunOptions::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(summary.totals.failed, 0);
    };
    to_folder().await;
    s.sim.mutate(|t| {
        for f in &mut t.users[0].folders {
            if f.id == folder_id(1) {
                f.display_name = "Reports 2025/26".into();
            }
        }
    });
    to_folder().await;

    let reader = Dovecot::start_with(Options {
        users: vec![(s.address.clone(), "pw".into())],
        listescape: true,
        listescape_char: Some('%'),
        ..Options::default()
    });
    reader.adopt_maildir(&s.address, &out.path().join(s.address.to_lowercase()));
    let login = migrator_core::dest::imap::ImapLogin::Password {
        user: s.address.clone(),
        password: Secret::new("pw"),
    };
    let mut mailbox = ImapMailbox::connect(&reader.tls_settings(), &login)
        .await
        .unwrap();
    let mut folders = BTreeMap::new();
    for f in mailbox.list_folders().await.unwrap() {
        let count = mailbox.message_count(&f.wire).await.ok();
        folders.insert(f.path.join("/"), count);
    }
    let mut expected: Vec<&str> = NAMES.iter().map(|(_, visible)| *visible).collect();
    expected[1] = "Reports 2025\u{2215}26";
    for visible in &expected[..8] {
        let count = folders
            .get(*visible)
            .unwrap_or_else(|| panic!("{visible} not listed: {folders:#?}"));
        // Dovecot 2.3's listescape lists a name with a character Windows refuses (escaped on
        // disk) as typed, but looks it up unescaped: it cannot open it.
        if !visible.contains('*') {
            assert_eq!(*count, Some(1), "{visible}: {folders:#?}");
        }
    }
    // The rename followed: the old folder is empty.
    assert_eq!(
        folders
            .get("Reports 2024\u{2215}25")
            .copied()
            .flatten()
            .unwrap_or(0),
        0
    );
    // The colliding pair stays apart over the rerun.
    assert_eq!(folders["x\u{2215}y"], Some(1));
    let suffixed: Vec<_> = folders
        .keys()
        .filter(|k| k.starts_with("x\u{2215}y ~"))
        .collect();
    assert_eq!(suffixed.len(), 1, "{folders:#?}");
    assert_eq!(folders[suffixed[0].as_str()], Some(1));
}

/// Regression (issue 19.4): siblings that differ only by case reach a server that may compare
/// names without case as distinct folders. `projects` migrated first; `Projects` appears later
/// with a lower folder id and took the plain name (a case-insensitive server merged it into
/// `projects`, and the next message of `projects` went to a new suffixed folder); Ä and ɤ
/// (`&AMQ-` and `&AmQ-` on the wire) folded together. Each keeps its own folder and messages,
/// no two wire names are equal ignoring case, and a rerun changes nothing.
#[tokio::test]
async fn regression_siblings_differing_only_by_case_never_share_a_folder() {
    let s = setup().await;
    let user = s.sim.tenant().users[0].clone();
    s.sim.mutate(|t| {
        t.users[0]
            .folders
            .push(top_level_folder(&user, 60, "projects"));
        t.users[0].folders.push(top_level_folder(&user, 62, "Ä"));
    });
    s.run().await;
    let first = s.folders().await;
    assert_eq!(first["projects"], ("projects".to_string(), 1), "{first:#?}");

    // Later: `Projects` (a lower id than `projects`) and ɤ appear, and `projects` gets a second
    // message.
    s.sim.mutate(|t| {
        t.users[0]
            .folders
            .push(top_level_folder(&user, 50, "Projects"));
        t.users[0].folders.push(top_level_folder(&user, 51, "ɤ"));
        let at = time::OffsetDateTime::now_utc();
        let folder = t.users[0]
            .folders
            .iter_mut()
            .find(|f| f.display_name == "projects")
            .unwrap();
        folder
            .messages
            .push(migrator_sim::sample_message(&user, 9500, at));
    });
    s.run().await;
    let folders = s.folders().await;
    assert_eq!(
        folders["projects"],
        ("projects".to_string(), 2),
        "the existing folder keeps its name and gets its new message: {folders:#?}"
    );
    assert_eq!(
        folders["Ä"].1, 1,
        "the existing Ä keeps its name: {folders:#?}"
    );
    for (typed, other) in [("Projects", "projects"), ("ɤ", "Ä")] {
        let own: Vec<_> = folders
            .iter()
            .filter(|(k, _)| k.starts_with(&format!("{typed} ~")))
            .collect();
        assert_eq!(own.len(), 1, "{typed} under a distinct name: {folders:#?}");
        assert_eq!(own[0].1 .1, 1, "{typed}: its own message");
        assert!(!folders.contains_key(typed), "{typed} beside {other}");
    }
    let mut folded: Vec<String> = folders.values().map(|(w, _)| w.to_lowercase()).collect();
    folded.sort();
    let all = folded.len();
    folded.dedup();
    assert_eq!(
        folded.len(),
        all,
        "no two wire names equal ignoring case: {folders:#?}"
    );
    s.assert_each_message_once().await;

    let again = s.run().await;
    assert_eq!(again.totals.messages, 0, "a rerun writes nothing");
    assert_eq!(s.folders().await, folders, "a rerun keeps every name");
}
