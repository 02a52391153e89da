//! The IMAP destination against a real Dovecot (see `support/dovecot.rs`).

use crate::support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use migrator_core::convert::flags::MailFlags;
use migrator_core::dest::imap::{
    ConnectionLimit, ImapError, ImapLogin, ImapMailbox, ImapRef, ImapSettings, MasterStyle,
    MessageFingerprint, Security,
};
use migrator_core::error::{Classify, ErrorClass};
use migrator_core::graph::mail::FolderNode;
use migrator_core::graph::types::MailFolder;
use migrator_core::secrets::Secret;
use support::dovecot::{Dovecot, Options, MASTER_PASSWORD};
use time::macros::datetime;
use time::OffsetDateTime;

fn message(id: Option<&str>, subject: &str, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(b"Received: from mx.example.com by x; Mon, 1 Jan 2024 10:00:00 +0000\r\n");
    m.extend_from_slice(
        b"From: =?utf-8?q?J=C3=B6rg?= <joerg@example.com>\r\nTo: alice@example.com\r\n",
    );
    if let Some(id) = id {
        m.extend_from_slice(format!("Message-ID: {id}\r\n").as_bytes());
    }
    m.extend_from_slice(format!("Subject: {subject}\r\n").as_bytes());
    m.extend_from_slice(b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n");
    m.extend_from_slice(b"Content-Transfer-Encoding: 8bit\r\n\r\n");
    m.extend_from_slice(body);
    m
}

async fn connect(settings: &ImapSettings, login: &ImapLogin) -> ImapMailbox {
    ImapMailbox::connect(settings, login)
        .await
        .unwrap_or_else(|e| panic!("connect: {e:?}"))
}

async fn append(
    mb: &mut ImapMailbox,
    folder: &str,
    msg: &[u8],
    flags: &MailFlags,
    at: OffsetDateTime,
) -> Result<ImapRef, ImapError> {
    mb.append(folder, msg, msg.len() as u64, flags, at)
        .await
        .map(|r| ImapRef::from_dest_ref(&r))
}

#[tokio::test]
async fn append_preserves_bytes_flags_and_internaldate() {
    let server = Dovecot::start();
    let mut mb = connect(&server.tls_settings(), &Dovecot::password("alice")).await;

    // 8-bit UTF-8 and Latin-1 bytes, long lines, CRLF throughout, a body of ~1.5 MB.
    let mut body = "Grüße aus Köln — 日本語 ✓\r\n".as_bytes().to_vec();
    body.extend_from_slice(b"latin1: \xe4\xf6\xfc\r\n");
    for i in 0..20_000 {
        body.extend_from_slice(format!("line {i:05} {}\r\n", "x".repeat(60)).as_bytes());
    }
    let msg = message(Some("<big-1@example.com>"), "Gr\u{fc}\u{df}e", &body);
    let flags = MailFlags {
        seen: true,
        flagged: true,
        draft: false,
        answered: true,
        forwarded: true,
        keywords: vec!["Red_category".into(), "Projekt__".into()],
    };
    let received = datetime!(2023-11-05 22:17:43 +01:00);

    // Streamed from a file, as the engine does with its spool.
    let spool = server.dir().join("spool.eml");
    std::fs::write(&spool, &msg).unwrap();
    let file = tokio::fs::File::open(&spool).await.unwrap();
    let r = mb
        .append("INBOX", file, msg.len() as u64, &flags, received)
        .await
        .unwrap();
    let r = ImapRef::from_dest_ref(&r);
    assert_eq!(r.folder, "INBOX");
    let (validity, uid) = r.uid.expect("Dovecot has UIDPLUS");
    assert_eq!(mb.uid_validity("INBOX").await.unwrap(), Some(validity));

    let got = mb.fetch("INBOX", uid).await.unwrap().expect("message");
    assert!(got.body == msg, "BODY[] differs from the appended bytes");
    assert_eq!(got.size, msg.len() as u64);
    assert_eq!(got.internal_date, Some(received));
    let got_flags: HashSet<&str> = got.flags.iter().map(String::as_str).collect();
    for f in [
        "\\Seen",
        "\\Flagged",
        "\\Answered",
        "$Forwarded",
        "Red_category",
        "Projekt__",
    ] {
        assert!(got_flags.contains(f), "{f} missing from {got_flags:?}");
    }
    assert!(!got_flags.contains("\\Draft"));

    // An unflagged draft into Drafts.
    let draft = message(None, "draft", b"not yet\r\n");
    let flags = MailFlags {
        draft: true,
        ..MailFlags::default()
    };
    let r = append(&mut mb, "Drafts", &draft, &flags, received)
        .await
        .unwrap();
    let got = mb.fetch("Drafts", r.uid.unwrap().1).await.unwrap().unwrap();
    assert_eq!(got.body, draft);
    let flags: Vec<&str> = got
        .flags
        .iter()
        .map(String::as_str)
        .filter(|f| *f != "\\Recent")
        .collect();
    assert_eq!(flags, ["\\Draft"]);
    mb.logout().await;
}

#[tokio::test]
async fn synchronizing_literals_without_literal_plus_and_no_uidplus() {
    // Dovecot still understands `{n+}`, but the client must not use what is not announced.
    let server = Dovecot::start_with(Options {
        capability: Some("IMAP4rev1 SASL-IR ID ENABLE IDLE NAMESPACE CHILDREN SPECIAL-USE".into()),
        ..Options::default()
    });
    let mut mb = connect(&server.tls_settings(), &Dovecot::password("bob")).await;
    let caps = mb.capabilities().await.unwrap();
    assert!(!caps.has("LITERAL+") && !caps.has("UIDPLUS"), "{caps:?}");
    let msg = message(Some("<sync@example.com>"), "sync", b"body\r\n");
    let at = datetime!(2024-02-29 12:00:00 UTC);
    let r = append(&mut mb, "INBOX", &msg, &MailFlags::default(), at)
        .await
        .unwrap();
    // (Dovecot sends APPENDUID even when UIDPLUS is hidden; the client takes it if given.)
    assert!(r.uid.is_some());
    let fp = MessageFingerprint::of_message(&msg, at);
    let uid = mb
        .find_existing("INBOX", &fp)
        .await
        .unwrap()
        .expect("found");
    assert_eq!(mb.fetch("INBOX", uid).await.unwrap().unwrap().body, msg);
}

fn node(id: &str, parent: Option<&str>, path: &[&str], wk: Option<&'static str>) -> FolderNode {
    FolderNode {
        folder: MailFolder {
            id: id.into(),
            display_name: path.last().copied().unwrap_or_default().into(),
            parent_folder_id: parent.map(Into::into),
            child_folder_count: 0,
            total_item_count: 0,
            is_hidden: false,
            odata_type: None,
        },
        path: path.iter().map(|s| s.to_string()).collect(),
        well_known: wk,
        under_well_known: None,
    }
}

/// A source tree with localized well-known folders, unicode, separator characters and
/// would-be collisions.
fn source_tree() -> Vec<FolderNode> {
    vec![
        node("AAinbox", None, &["Posteingang"], Some("inbox")),
        node("AAsent", None, &["Gesendete Elemente"], Some("sentitems")),
        node("AAdrafts", None, &["Entwürfe"], Some("drafts")),
        node(
            "AAtrash",
            None,
            &["Gelöschte Elemente"],
            Some("deleteditems"),
        ),
        node("AAjunk", None, &["Junk-E-Mail"], Some("junkemail")),
        node("AAarch", None, &["Archiv"], Some("archive")),
        node("B1", Some("AAinbox"), &["Posteingang", "v1.2"], None),
        node("B2", Some("B1"), &["Posteingang", "v1.2", "a/b"], None),
        node("B3", Some("AAsent"), &["Gesendete Elemente", "2024"], None),
        node("C1", None, &["Rechnungen äöü"], None),
        node("C2", None, &["Ideas 💡 & R&D"], None),
        node("C3", None, &["100% done"], None),
        node("C4", None, &["Sent Messages"], None),
        node("C5", None, &["~home"], None),
        node("C6", None, &["Projects"], None),
        node("C7", None, &["projects"], None),
        node(
            "C8",
            Some("C2"),
            &["Ideas 💡 & R&D", "日本語/中文.txt"],
            None,
        ),
        node("C9", None, &["INBOX"], None),
    ]
}

/// Where each source folder must appear, as decoded paths (empty: checked separately). Names
/// arrive as typed but for the separator (`∕`); where Dovecot refuses `.`, `/` or a leading
/// `~` (Maildir++ storage without listescape), they arrive with look-alikes (`․`, `∕`, `～`).
fn expected_paths(separator: char, listescape: bool) -> Vec<Vec<String>> {
    let typed = |name: &str| -> String {
        let visible = name.replace(separator, "\u{2215}");
        let refused = visible.contains(['.', '/']) || visible.starts_with('~');
        if listescape || !refused {
            return visible;
        }
        let strict = visible.replace('.', "\u{2024}").replace('/', "\u{2215}");
        match strict.strip_prefix('~') {
            Some(rest) => format!("\u{ff5e}{rest}"),
            None => strict,
        }
    };
    let paths: Vec<Vec<&str>> = vec![
        vec!["INBOX"],
        vec!["Sent Messages"],
        vec!["Drafts"],
        vec!["Trash"],
        vec!["Junk"],
        vec!["Archive"],
        vec!["INBOX", "v1.2"],
        vec!["INBOX", "v1.2", "a/b"],
        vec!["Sent Messages", "2024"],
        vec!["Rechnungen äöü"],
        vec!["Ideas 💡 & R&D"],
        vec!["100% done"],
        vec!["Sent Messages ~"], // plus a suffix
        vec!["~home"],
        vec![],
        vec![],
        vec!["Ideas 💡 & R&D", "日本語/中文.txt"],
        vec!["INBOX ~"],
    ];
    paths
        .into_iter()
        .map(|p| {
            p.into_iter()
                .map(|n| match n {
                    "INBOX" | "Sent Messages" | "INBOX ~" | "Sent Messages ~" => n.to_string(),
                    n => typed(n),
                })
                .collect()
        })
        .collect()
}

async fn folder_tree_round_trips(separator: char) {
    folder_tree_round_trips_with(separator, None, false).await;
}

async fn folder_tree_round_trips_with(separator: char, capability: Option<&str>, listescape: bool) {
    let server = Dovecot::start_with(Options {
        separator,
        capability: capability.map(str::to_string),
        listescape,
        ..Options::default()
    });
    let mut mb = connect(&server.tls_settings(), &Dovecot::password("alice")).await;
    // Dovecot 2.3 implements no UTF8=ACCEPT: even when announced, ENABLE does not confirm
    // it, so names stay modified UTF-7 (RFC 6855 §3: UTF-8 only once enabled).
    assert!(!mb.utf8_names());
    let nodes = source_tree();
    let results = mb.ensure_folders(&nodes).await.unwrap();
    let wires: Vec<String> = results
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.unwrap_or_else(|e| panic!("folder {:?}: {e}", nodes[i].path)))
        .collect();
    assert_eq!(mb.separator(), Some(separator));

    let listed = mb.list_folders().await.unwrap();
    let by_wire: std::collections::HashMap<&str, &Vec<String>> =
        listed.iter().map(|f| (f.wire.as_str(), &f.path)).collect();
    for (i, expected) in expected_paths(separator, listescape).iter().enumerate() {
        let path = by_wire
            .get(wires[i].as_str())
            .unwrap_or_else(|| panic!("{} not listed: {listed:?}", wires[i]));
        if expected.is_empty() {
            continue;
        }
        if expected.last().is_some_and(|l| l.ends_with(" ~")) {
            let last = path.last().unwrap();
            assert!(
                last.starts_with(expected.last().unwrap())
                    && last.len() == expected.last().unwrap().len() + 6,
                "{path:?}"
            );
            continue;
        }
        assert_eq!(
            *path, expected,
            "folder {:?} (wire {})",
            nodes[i].path, wires[i]
        );
    }
    // "Projects" and "projects" stay apart; the lowest id keeps the plain name.
    assert_eq!(by_wire[wires[14].as_str()], &vec!["Projects".to_string()]);
    let suffixed = by_wire[wires[15].as_str()].last().unwrap();
    assert!(
        suffixed.starts_with("projects ~") && suffixed.len() == "projects ~123456".len(),
        "{suffixed}"
    );
    let unique: HashSet<String> = wires.iter().map(|w| w.to_lowercase()).collect();
    assert_eq!(
        unique.len(),
        wires.len(),
        "two source folders merged: {wires:?}"
    );

    // Special folders are mapped, not duplicated beside the server's own.
    for f in &listed {
        let name = f.path.join("/");
        assert!(
            ![
                "Gesendete Elemente",
                "Entwürfe",
                "Gelöschte Elemente",
                "Junk-E-Mail",
                "Archiv",
                "Sent",
                "Posteingang"
            ]
            .contains(&name.as_str()),
            "duplicated special folder {name}"
        );
    }
    let sent: Vec<_> = listed
        .iter()
        .filter(|f| f.attributes.iter().any(|a| a == "\\Sent"))
        .collect();
    assert_eq!(sent.len(), 1);

    // Everything mapped is subscribed (created folders by us, specials by the server).
    let subscribed: HashSet<String> = mb.subscribed().await.unwrap().into_iter().collect();
    for w in &wires {
        assert!(
            subscribed.contains(w) || w == "INBOX" || w == "Junk",
            "{w} not subscribed: {subscribed:?}"
        );
    }

    // The mapping is stable and creates nothing the second time.
    let again: Vec<String> = mb
        .ensure_folders(&nodes)
        .await
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(again, wires);
    let relisted = mb.list_folders().await.unwrap();
    assert_eq!(relisted.len(), listed.len(), "{listed:#?}\n{relisted:#?}");
    for (n, w) in nodes.iter().zip(&wires) {
        assert_eq!(mb.folder_for(n), Some(w.as_str()));
    }

    // Every mapped folder takes mail.
    let msg = message(Some("<tree@example.com>"), "tree", b"x\r\n");
    for w in &wires {
        append(
            &mut mb,
            w,
            &msg,
            &MailFlags::default(),
            OffsetDateTime::UNIX_EPOCH,
        )
        .await
        .unwrap_or_else(|e| panic!("append to {w}: {e}"));
    }
}

#[tokio::test]
async fn folder_tree_round_trips_with_slash_separator() {
    folder_tree_round_trips('/').await;
}

#[tokio::test]
async fn folder_tree_round_trips_with_dot_separator() {
    folder_tree_round_trips('.').await;
}

#[tokio::test]
async fn folder_tree_round_trips_when_utf8_accept_is_announced_but_not_enabled() {
    folder_tree_round_trips_with('/', Some("+UTF8=ACCEPT"), false).await;
}

/// Regression (issue 15.1): `100% done` arrived as `100%25 done`, `v1.2` as `v1%2E2` and
/// `a/b` as `a%2Fb`. With Dovecot's listescape plugin every character but the separator
/// arrives as typed.
#[tokio::test]
async fn folder_names_arrive_as_typed_with_slash_separator_and_listescape() {
    folder_tree_round_trips_with('/', None, true).await;
}

#[tokio::test]
async fn folder_names_arrive_as_typed_with_dot_separator_and_listescape() {
    folder_tree_round_trips_with('.', None, true).await;
}

#[tokio::test]
async fn multiappend_stores_all_with_their_uids_or_nothing_when_one_is_refused() {
    let server = Dovecot::start_with(Options {
        max_mail_kib: Some(64),
        ..Options::default()
    });
    let mut mb = connect(&server.tls_settings(), &Dovecot::password("alice")).await;
    assert!(
        mb.can_multiappend().await.unwrap(),
        "Dovecot offers MULTIAPPEND"
    );
    let seen = MailFlags {
        seen: true,
        keywords: vec!["Blue_category".into()],
        ..MailFlags::default()
    };
    let plain = MailFlags::default();
    let a = message(Some("<a@example.com>"), "a", b"first\r\n");
    let b = message(None, "b", b"second \xc3\xa4 8-bit\r\n");
    let big = message(Some("<big@example.com>"), "big", &vec![b'x'; 200 * 1024]);
    let (at_a, at_b) = (
        datetime!(2023-05-06 07:08:09 UTC),
        datetime!(2021-01-02 03:04:05 +02:00),
    );

    // One refused message: RFC 3502 says none is stored.
    let err = mb
        .append_many(
            "INBOX",
            vec![
                (&a[..], a.len() as u64, &seen, at_a),
                (&big[..], big.len() as u64, &plain, at_a),
                (&b[..], b.len() as u64, &plain, at_b),
            ],
        )
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::SkipItem, "{err:?}");
    assert!(mb.uids("INBOX").await.unwrap().is_empty(), "nothing stored");

    let refs = mb
        .append_many(
            "INBOX",
            vec![
                (&a[..], a.len() as u64, &seen, at_a),
                (&b[..], b.len() as u64, &plain, at_b),
            ],
        )
        .await
        .unwrap();
    let uids: Vec<u32> = refs
        .iter()
        .map(|r| {
            ImapRef::from_dest_ref(r)
                .uid
                .expect("APPENDUID with a uid-set")
                .1
        })
        .collect();
    assert_eq!(mb.uids("INBOX").await.unwrap(), uids);
    for (uid, (body, flags, at)) in uids.iter().zip([(&a, &seen, at_a), (&b, &plain, at_b)]) {
        let m = mb.fetch("INBOX", *uid).await.unwrap().unwrap();
        assert_eq!(&m.body, body, "byte for byte");
        assert_eq!(m.internal_date, Some(at));
        assert_eq!(m.flags.contains(&"\\Seen".to_string()), flags.seen);
        assert_eq!(m.flags.contains(&"Blue_category".to_string()), flags.seen);
    }
}

#[tokio::test]
async fn pipelined_appends_without_multiappend_fail_one_by_one() {
    let server = Dovecot::start_with(Options {
        max_mail_kib: Some(64),
        capability: Some(
            "IMAP4rev1 SASL-IR LITERAL+ ID ENABLE IDLE NAMESPACE CHILDREN SPECIAL-USE UIDPLUS"
                .into(),
        ),
        ..Options::default()
    });
    let mut mb = connect(&server.tls_settings(), &Dovecot::password("alice")).await;
    assert!(!mb.can_multiappend().await.unwrap());
    assert!(mb.can_pipeline().await.unwrap());
    let flags = MailFlags {
        flagged: true,
        ..MailFlags::default()
    };
    let a = message(Some("<pa@example.com>"), "a", b"first\r\n");
    let big = message(Some("<pbig@example.com>"), "big", &vec![b'x'; 200 * 1024]);
    let c = message(None, "c", b"third\r\n");
    let at = datetime!(2022-02-03 04:05:06 UTC);
    let results = mb
        .append_pipelined(
            "INBOX",
            vec![
                (&a[..], a.len() as u64, &flags, at),
                (&big[..], big.len() as u64, &flags, at),
                (&c[..], c.len() as u64, &flags, at),
            ],
        )
        .await
        .unwrap();
    assert_eq!(results.len(), 3);
    let err = results[1].as_ref().unwrap_err();
    assert_eq!(err.class(), ErrorClass::SkipItem, "{err:?}");
    let mut stored = Vec::new();
    for (r, body) in [(&results[0], &a), (&results[2], &c)] {
        let dest = r.as_ref().unwrap_or_else(|e| panic!("{e}"));
        let (_, uid) = ImapRef::from_dest_ref(dest).uid.expect("APPENDUID");
        let m = mb.fetch("INBOX", uid).await.unwrap().unwrap();
        assert_eq!(&m.body, body);
        assert_eq!(m.internal_date, Some(at));
        assert!(m.flags.contains(&"\\Flagged".to_string()));
        stored.push(uid);
    }
    assert_eq!(
        mb.uids("INBOX").await.unwrap(),
        stored,
        "the refused one alone is missing"
    );
    assert!(mb.capabilities().await.is_ok(), "the session goes on");
}

#[tokio::test]
async fn the_connection_limit_is_shared_by_every_mailbox_and_freed_when_one_closes() {
    let server = Dovecot::start();
    let mut settings = server.tls_settings();
    settings.connection_limit = ConnectionLimit::new(2);
    let alice = Dovecot::password("alice");
    let first = connect(&settings, &alice).await;
    let second = ImapMailbox::connect_if_room(&settings, &Dovecot::password("bob"))
        .await
        .unwrap();
    assert!(second.is_some());
    assert_eq!(settings.connection_limit.in_use(), 2);
    assert!(ImapMailbox::connect_if_room(&settings, &alice)
        .await
        .unwrap()
        .is_none());
    // A waiting connect gets the place as soon as one is closed.
    let waiting = tokio::spawn({
        let settings = settings.clone();
        let alice = alice.clone();
        async move { ImapMailbox::connect(&settings, &alice).await.map(|_| ()) }
    });
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished());
    first.logout().await;
    tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .expect("the waiting connect proceeds")
        .unwrap()
        .unwrap();
    drop(second);
    assert_eq!(settings.connection_limit.in_use(), 0);
}

#[tokio::test]
async fn master_user_logs_in_for_the_user_in_both_styles() {
    let server = Dovecot::start();
    let at = datetime!(2024-05-01 08:00:00 UTC);
    for (i, style) in [MasterStyle::SaslAuthzid, MasterStyle::DovecotStar]
        .into_iter()
        .enumerate()
    {
        let mut mb = connect(&server.tls_settings(), &Dovecot::master("alice", style)).await;
        let msg = message(
            Some(&format!("<master-{i}@example.com>")),
            "via master",
            b"m\r\n",
        );
        append(&mut mb, "INBOX", &msg, &MailFlags::default(), at)
            .await
            .unwrap();
        mb.logout().await;
    }
    // Both messages are in alice's mailbox, not the master's or bob's.
    let mut alice = connect(&server.tls_settings(), &Dovecot::password("alice")).await;
    assert_eq!(alice.uids("INBOX").await.unwrap().len(), 2);
    let mut bob = connect(&server.starttls_settings(), &Dovecot::password("bob")).await;
    assert!(bob.uids("INBOX").await.unwrap().is_empty());

    let wrong = ImapLogin::Master {
        user: "alice".into(),
        master_user: support::dovecot::MASTER_USER.into(),
        master_password: Secret::new("wrong"),
        style: MasterStyle::SaslAuthzid,
    };
    let err = ImapMailbox::connect(&server.tls_settings(), &wrong)
        .await
        .unwrap_err();
    assert!(matches!(err, ImapError::Auth { .. }), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Fatal);
}

#[tokio::test]
async fn wrong_password_is_fatal_and_never_shown() {
    let server = Dovecot::start();
    let login = ImapLogin::Password {
        user: "alice".into(),
        password: Secret::new("not-the-password-1234"),
    };
    let err = ImapMailbox::connect(&server.tls_settings(), &login)
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Fatal, "{err:?}");
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("not-the-password"), "{shown}");
    assert!(!shown.contains(MASTER_PASSWORD));
}

#[tokio::test]
async fn a_message_the_server_refuses_is_skipped_and_the_session_goes_on() {
    let server = Dovecot::start_with(Options {
        max_mail_kib: Some(64),
        ..Options::default()
    });
    let mut mb = connect(&server.tls_settings(), &Dovecot::password("alice")).await;
    let at = datetime!(2024-01-01 00:00:00 UTC);
    let big = message(Some("<big@example.com>"), "big", &vec![b'a'; 200 * 1024]);
    let err = append(&mut mb, "INBOX", &big, &MailFlags::default(), at)
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::SkipItem, "{err:?}");
    assert!(matches!(err, ImapError::Rejected { .. }), "{err:?}");
    assert!(err.to_string().contains("INBOX"), "{err}");

    let small = message(Some("<small@example.com>"), "small", b"ok\r\n");
    append(&mut mb, "INBOX", &small, &MailFlags::default(), at)
        .await
        .unwrap();
    assert_eq!(mb.uids("INBOX").await.unwrap().len(), 1);
}

#[tokio::test]
async fn self_signed_server_needs_the_ca_file() {
    let server = Dovecot::start();
    for mut settings in [server.tls_settings(), server.starttls_settings()] {
        settings.ca_file = None;
        let err = ImapMailbox::connect(&settings, &Dovecot::password("alice"))
            .await
            .unwrap_err();
        assert!(matches!(err, ImapError::Tls { .. }), "{err:?}");
        assert_eq!(err.class(), ErrorClass::Fatal);
    }
    connect(&server.tls_settings(), &Dovecot::password("alice")).await;
    connect(&server.starttls_settings(), &Dovecot::password("alice")).await;

    // A certificate for another name is refused even with the CA.
    let mut other = server.tls_settings();
    other.host = "127.0.0.2".into();
    let err = ImapMailbox::connect(&other, &Dovecot::password("alice"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ImapError::Tls { .. } | ImapError::Connect { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn plaintext_only_to_loopback_and_only_when_allowed() {
    let server = Dovecot::start();
    let login = Dovecot::password("alice");
    for host in ["192.0.2.10", "mail.example.com", "10.0.0.1"] {
        let mut s = ImapSettings::new(host, server.imap_port, Security::Plain);
        s.allow_plaintext_loopback = true;
        s.timeout = Duration::from_secs(5);
        let err = ImapMailbox::connect(&s, &login).await.unwrap_err();
        assert!(matches!(err, ImapError::Config(_)), "{host}: {err:?}");
        assert_eq!(err.class(), ErrorClass::Fatal);
    }
    let mut s = ImapSettings::new("127.0.0.1", server.imap_port, Security::Plain);
    let err = ImapMailbox::connect(&s, &login).await.unwrap_err();
    assert!(matches!(err, ImapError::Config(_)), "{err:?}");
    s.allow_plaintext_loopback = true;
    let mut mb = connect(&s, &login).await;
    let msg = message(Some("<plain@example.com>"), "plain", b"p\r\n");
    append(
        &mut mb,
        "INBOX",
        &msg,
        &MailFlags::default(),
        OffsetDateTime::UNIX_EPOCH,
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn find_existing_confirms_size_and_header_not_just_message_id() {
    let server = Dovecot::start();
    let mut mb = connect(&server.tls_settings(), &Dovecot::password("alice")).await;
    let at = datetime!(2022-06-15 09:30:00 UTC);
    let a = message(Some("<shared@example.com>"), "first", b"one\r\n");
    let b = message(
        Some("<shared@example.com>"),
        "first",
        b"one, but longer\r\n",
    );
    let c = message(Some("<shared@example.com>"), "other", b"one\r\n"); // same size as a
    assert_eq!(a.len(), c.len());

    let fa = MessageFingerprint::of_message(&a, at);
    assert_eq!(mb.find_existing("INBOX", &fa).await.unwrap(), None);
    let ra = append(&mut mb, "INBOX", &a, &MailFlags::default(), at)
        .await
        .unwrap();
    // Appended to the selected folder: found without reselecting.
    assert_eq!(
        mb.find_existing("INBOX", &fa).await.unwrap(),
        Some(ra.uid.unwrap().1)
    );
    let fb = MessageFingerprint::of_message(&b, at);
    assert_eq!(mb.find_existing("INBOX", &fb).await.unwrap(), None);
    let fc = MessageFingerprint::of_message(&c, at);
    assert_eq!(mb.find_existing("INBOX", &fc).await.unwrap(), None);
    let rb = append(&mut mb, "INBOX", &b, &MailFlags::default(), at)
        .await
        .unwrap();
    assert_eq!(
        mb.find_existing("INBOX", &fb).await.unwrap(),
        Some(rb.uid.unwrap().1)
    );
    // Other folders are not searched.
    assert_eq!(mb.find_existing("Trash", &fa).await.unwrap(), None);

    // Without a Message-ID: size, INTERNALDATE and header.
    let n = message(None, "no id", b"anonymous\r\n");
    let fn_ = MessageFingerprint::of_message(&n, at);
    assert_eq!(fn_.message_id, None);
    assert_eq!(mb.find_existing("INBOX", &fn_).await.unwrap(), None);
    let rn = append(&mut mb, "INBOX", &n, &MailFlags::default(), at)
        .await
        .unwrap();
    assert_eq!(
        mb.find_existing("INBOX", &fn_).await.unwrap(),
        Some(rn.uid.unwrap().1)
    );
    let later = MessageFingerprint::of_message(&n, at + Duration::from_secs(60));
    assert_eq!(mb.find_existing("INBOX", &later).await.unwrap(), None);

    // A fingerprint read from a spool file equals the in-memory one.
    let spool = server.dir().join("a.eml");
    std::fs::write(&spool, &a).unwrap();
    let file = tokio::fs::File::open(&spool).await.unwrap();
    let from_file = MessageFingerprint::read(file, a.len() as u64, at)
        .await
        .unwrap();
    assert_eq!(from_file, fa);
}

/// A TCP relay in front of the server whose connections the test can cut, as a network
/// failure would.
struct Relay {
    port: u16,
    conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    refuse: Arc<AtomicBool>,
    accept: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(target: u16) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let conns = Arc::new(Mutex::new(Vec::new()));
        let refuse = Arc::new(AtomicBool::new(false));
        let accept = tokio::spawn({
            let (conns, refuse) = (conns.clone(), refuse.clone());
            async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    if refuse.load(Ordering::SeqCst) {
                        continue; // dropped: closed at once
                    }
                    let relay = tokio::spawn(async move {
                        if let Ok(mut out) =
                            tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                        {
                            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                        }
                    });
                    conns.lock().unwrap().push(relay);
                }
            }
        });
        Relay {
            port,
            conns,
            refuse,
            accept,
        }
    }

    /// Drops every relayed connection; with `refuse`, new ones are closed at once too.
    fn cut(&self, refuse: bool) {
        self.refuse.store(refuse, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut(true);
    }
}

#[tokio::test]
async fn lost_connection_is_retry_and_the_next_call_reconnects() {
    let server = Dovecot::start();
    let relay = Relay::start(server.imaps_port).await;
    let mut settings = server.tls_settings();
    settings.port = relay.port;
    settings.reconnect.max_attempts = 2;
    settings.reconnect.min_backoff = Duration::from_millis(10);
    settings.reconnect.max_backoff = Duration::from_millis(20);
    let mut mb = connect(&settings, &Dovecot::password("alice")).await;
    let at = OffsetDateTime::UNIX_EPOCH;
    let first = message(Some("<before@example.com>"), "before", b"1\r\n");
    append(&mut mb, "INBOX", &first, &MailFlags::default(), at)
        .await
        .unwrap();

    // The connection drops, and the server stays unreachable for a while.
    relay.cut(true);
    let msg = message(Some("<lost@example.com>"), "lost", b"l\r\n");
    let err = append(&mut mb, "INBOX", &msg, &MailFlags::default(), at)
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Retry, "{err:?}");
    let err = append(&mut mb, "INBOX", &msg, &MailFlags::default(), at)
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Retry, "{err:?}");

    // Back again: the next call reconnects; the engine checks before appending again.
    relay.cut(false);
    let fp = MessageFingerprint::of_message(&msg, at);
    assert_eq!(mb.find_existing("INBOX", &fp).await.unwrap(), None);
    append(&mut mb, "INBOX", &msg, &MailFlags::default(), at)
        .await
        .unwrap();
    assert_eq!(mb.uids("INBOX").await.unwrap().len(), 2);
}

/// Flags, a move and a deletion on one message, next to a message the user marked
/// `\Deleted`, which none of them may expunge.
async fn store_move_and_delete_touch_only_the_message_named(capability: Option<&str>) {
    let server = Dovecot::start_with(Options {
        capability: capability.map(str::to_string),
        ..Options::default()
    });
    let mut mb = connect(&server.tls_settings(), &Dovecot::password("alice")).await;
    let has_move = mb.capabilities().await.unwrap().has("MOVE");
    assert_eq!(has_move, capability.is_none());
    let at = datetime!(2024-03-01 08:00:00 UTC);
    let ours = message(Some("<ours@example.com>"), "ours", b"ours\r\n");
    let theirs = message(Some("<theirs@example.com>"), "theirs", b"theirs\r\n");
    let seen = MailFlags {
        seen: true,
        keywords: vec!["Red".into()],
        ..Default::default()
    };
    let uid = append(&mut mb, "INBOX", &ours, &seen, at)
        .await
        .unwrap()
        .uid
        .unwrap()
        .1;
    let their_uid = append(&mut mb, "INBOX", &theirs, &MailFlags::default(), at)
        .await
        .unwrap()
        .uid
        .unwrap()
        .1;
    mb.store_flags("INBOX", their_uid, &["\\Deleted".into()], &[])
        .await
        .unwrap();

    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    mb.store_flags(
        "INBOX",
        uid,
        &strings(&["\\Flagged", "Blue"]),
        &strings(&["\\Seen", "Red"]),
    )
    .await
    .unwrap();
    let flags: HashSet<String> = mb
        .fetch("INBOX", uid)
        .await
        .unwrap()
        .unwrap()
        .flags
        .into_iter()
        .filter(|f| f != "\\Recent")
        .collect();
    assert_eq!(flags, HashSet::from(["\\Flagged".into(), "Blue".into()]));

    let (_, moved) = mb
        .move_message("INBOX", uid, "Trash")
        .await
        .unwrap()
        .expect("COPYUID names the new UID");
    let there = mb.fetch("Trash", moved).await.unwrap().unwrap();
    assert_eq!(there.body, ours);
    assert!(there.flags.iter().any(|f| f == "\\Flagged"));
    assert!(!there.flags.iter().any(|f| f == "\\Deleted"));
    assert_eq!(
        mb.uids("INBOX").await.unwrap(),
        [their_uid],
        "the user's message stays"
    );

    mb.delete_message("Trash", moved).await.unwrap();
    assert!(mb.uids("Trash").await.unwrap().is_empty());
    assert_eq!(mb.uids("INBOX").await.unwrap(), [their_uid]);
    // A UID that is gone changes nothing and is no error.
    mb.store_flags("Trash", moved, &strings(&["\\Seen"]), &[])
        .await
        .unwrap();
    assert_eq!(
        mb.move_message("Trash", moved, "INBOX").await.unwrap(),
        None
    );
}

#[tokio::test]
async fn store_move_and_delete_with_move() {
    store_move_and_delete_touch_only_the_message_named(None).await;
}

#[tokio::test]
async fn store_move_and_delete_without_move_copy_then_uid_expunge() {
    store_move_and_delete_touch_only_the_message_named(Some(
        "IMAP4rev1 SASL-IR ID ENABLE IDLE NAMESPACE CHILDREN SPECIAL-USE LITERAL+ UIDPLUS",
    ))
    .await;
}
