//! End to end against the Graph simulator: a whole tenant into the local-folder destination.

use crate::support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use migrator_core::config::SourceConfig;
use migrator_core::dest::folder::maildir_folder_names;
use migrator_core::engine::{
    run_to_folder, run_to_folder_with, EngineError, RunControl, RunOptions,
};
use migrator_core::graph::mail::FolderNode;
use migrator_core::graph::types::MailFolder;
use migrator_core::graph::AuthError;
use migrator_core::progress::{ProgressEvent, Reporter};
use migrator_core::secrets::Secret;
use migrator_sim::{SimConfig, SimServer};

fn source(sim: &SimServer) -> SourceConfig {
    support::source_config(sim)
}

#[derive(Default)]
struct Recorder(Mutex<Vec<ProgressEvent>>);

impl Reporter for Recorder {
    fn report(&self, event: ProgressEvent) {
        self.0.lock().unwrap().push(event);
    }
}

/// A simulated tenant of `users` users with `messages` messages each (and the default
/// groupware).
async fn tenant_of(users: usize, messages: usize) -> SimServer {
    SimServer::start(SimConfig {
        tenant: migrator_sim::TenantSpec {
            users,
            messages_per_user: messages,
            ..migrator_sim::TenantSpec::default()
        },
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

/// Every file under `dir/<sub>/cur`, keyed by the Maildir folder name.
fn maildir_files(user_root: &Path) -> HashMap<String, Vec<PathBuf>> {
    let mut out = HashMap::new();
    let mut dirs = vec![(String::new(), user_root.to_path_buf())];
    for entry in std::fs::read_dir(user_root).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && entry.path().is_dir() {
            dirs.push((name, entry.path()));
        }
    }
    for (name, dir) in dirs {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("cur"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert_eq!(
            std::fs::read_dir(dir.join("tmp")).unwrap().count(),
            0,
            "tmp/ not empty in {name}"
        );
        out.insert(name, files);
    }
    out
}

/// The Maildir++ name the destination must use for each simulated folder.
fn expected_names(user: &migrator_sim::User) -> HashMap<String, &migrator_sim::MailFolder> {
    let nodes: Vec<FolderNode> = ordered(user)
        .into_iter()
        .map(|f| FolderNode {
            folder: MailFolder {
                id: f.id.clone(),
                display_name: f.display_name.clone(),
                parent_folder_id: f.parent_id.clone(),
                child_folder_count: 0,
                total_item_count: f.messages.len() as u64,
                is_hidden: f.is_hidden,
                odata_type: None,
            },
            path: vec![f.display_name.clone()],
            well_known: f.well_known_name.as_deref().and_then(|w| {
                migrator_core::graph::mail::MAPPED_WELL_KNOWN
                    .iter()
                    .find(|k| **k == w)
                    .copied()
            }),
            under_well_known: None,
        })
        .collect();
    let names = maildir_folder_names(&nodes);
    names.into_iter().zip(ordered(user)).collect()
}

/// Parents before children; search folders left out (they hold no items of their own), and
/// system folders with their subfolders (left out by default: `SYSTEM_WELL_KNOWN`).
fn ordered(user: &migrator_sim::User) -> Vec<&migrator_sim::MailFolder> {
    let mut out: Vec<&migrator_sim::MailFolder> = Vec::new();
    let mut frontier: Vec<Option<&str>> = vec![None];
    while let Some(parent) = frontier.pop() {
        for f in user
            .folders
            .iter()
            .filter(|f| f.parent_id.as_deref() == parent)
        {
            let system = f
                .well_known_name
                .as_deref()
                .is_some_and(|w| migrator_core::graph::mail::SYSTEM_WELL_KNOWN.contains(&w));
            if f.is_search_folder || system {
                continue;
            }
            out.push(f);
            frontier.push(Some(f.id.as_str()));
        }
    }
    out
}

#[tokio::test]
async fn every_message_arrives_byte_identical_in_its_folder_with_flags_and_date() {
    // Mail only, so the byte total is the messages' (groupware_folder.rs covers the rest).
    let mut config = SimConfig::demo();
    config.tenant.groupware = migrator_sim::GroupwareSpec::none();
    let sim = SimServer::start(config).await.unwrap();
    let out = tempfile::tempdir().unwrap();
    let recorder = Arc::new(Recorder::default());
    let summary = run_to_folder(
        &source(&sim),
        &Secret::new(sim.client_secret()),
        out.path(),
        recorder.clone(),
        RunControl::new(),
    )
    .await
    .unwrap();

    let tenant = sim.tenant();
    let total: usize = tenant
        .users
        .iter()
        .flat_map(|u| &u.folders)
        .map(|f| f.messages.len())
        .sum();
    assert!(
        total >= 200,
        "the demo tenant should have a few hundred messages, has {total}"
    );
    assert_eq!(summary.users as usize, tenant.users.len());
    assert_eq!(summary.totals.messages as usize, total);
    assert_eq!(summary.totals.failed, 0);
    assert_eq!(summary.totals.skipped, 0);
    let mime_bytes: u64 = tenant
        .users
        .iter()
        .flat_map(|u| &u.folders)
        .flat_map(|f| &f.messages)
        .map(|m| m.mime.len() as u64)
        .sum();
    assert_eq!(summary.totals.bytes, mime_bytes);

    for user in &tenant.users {
        let root = out.path().join(user.mail.to_lowercase());
        let files = maildir_files(&root);
        let expected = expected_names(user);
        for (name, folder) in &expected {
            let got = files
                .get(name)
                .unwrap_or_else(|| panic!("folder {name:?} missing"));
            assert_eq!(
                got.len(),
                folder.messages.len(),
                "message count in {name:?}"
            );
            let mut want: Vec<&[u8]> = folder.messages.iter().map(|m| m.mime.as_ref()).collect();
            let contents: Vec<Vec<u8>> = got.iter().map(|p| std::fs::read(p).unwrap()).collect();
            let mut have: Vec<&[u8]> = contents.iter().map(|c| c.as_slice()).collect();
            want.sort();
            have.sort();
            assert!(want == have, "bytes differ in {name:?}");
            // Flags in the file name and received date as mtime, message by message.
            for m in &folder.messages {
                let path = got
                    .iter()
                    .find(|p| std::fs::read(p).unwrap() == m.mime.as_ref())
                    .unwrap();
                let info = path
                    .to_string_lossy()
                    .rsplit(":2,")
                    .next()
                    .unwrap()
                    .to_string();
                assert_eq!(info.contains('S'), m.is_read, "seen flag of {}", m.id);
                assert_eq!(
                    info.contains('F'),
                    m.flag_status == "flagged",
                    "flagged of {}",
                    m.id
                );
                assert_eq!(info.contains('D'), m.is_draft, "draft flag of {}", m.id);
                let mtime = std::fs::metadata(path).unwrap().modified().unwrap();
                let secs = mtime
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs() as i64;
                assert_eq!(secs, m.received.unix_timestamp(), "mtime of {}", m.id);
            }
        }
        assert_eq!(
            files.len(),
            expected.len(),
            "no folder beyond the source's: {:?}",
            files.keys()
        );
    }

    let events = recorder.0.lock().unwrap().clone();
    assert!(matches!(
        events.first(),
        Some(ProgressEvent::RunStarted { .. })
    ));
    assert!(matches!(
        events.last(),
        Some(ProgressEvent::RunFinished { .. })
    ));
    let done = events
        .iter()
        .filter(|e| matches!(e, ProgressEvent::ItemDone { skipped: false, .. }))
        .count();
    assert_eq!(done, total);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_rerun_writes_nothing_and_a_stopped_run_resumes_without_duplicates() {
    let sim = SimServer::start(SimConfig::demo()).await.unwrap();
    let out = tempfile::tempdir().unwrap();
    let (src, secret) = (source(&sim), Secret::new(sim.client_secret()));

    // Stop after the first 40 messages.
    let control = RunControl::new();
    let count = Arc::new(Mutex::new(0u32));
    let stopper = {
        let (control, count) = (control.clone(), count.clone());
        move |e: ProgressEvent| {
            if let ProgressEvent::ItemDone { .. } = e {
                let mut n = count.lock().unwrap();
                *n += 1;
                if *n == 40 {
                    control.cancel();
                }
            }
        }
    };
    let options = RunOptions {
        parallel_mailboxes: 1,
        ..RunOptions::default()
    };
    let first = run_to_folder_with(
        &src,
        &secret,
        out.path(),
        Arc::new(stopper),
        control,
        options,
    )
    .await
    .unwrap();
    assert!(first.cancelled);
    let total: u64 = sim
        .tenant()
        .users
        .iter()
        .flat_map(|u| &u.folders)
        .map(|f| f.messages.len() as u64)
        .sum();
    assert!(
        first.totals.messages < total,
        "the stop came too late to test resuming"
    );

    let second = rerun(&src, &secret, out.path()).await;
    assert!(!second.cancelled);
    assert_eq!(first.totals.messages + second.totals.messages, total);
    assert_eq!(second.totals.skipped, first.totals.messages);

    let third = rerun(&src, &secret, out.path()).await;
    assert_eq!(third.totals.messages, 0, "a rerun must write nothing");
    assert_eq!(third.totals.skipped, total);

    let files: usize = sim
        .tenant()
        .users
        .iter()
        .map(|u| {
            maildir_files(&out.path().join(u.mail.to_lowercase()))
                .values()
                .map(Vec::len)
                .sum::<usize>()
        })
        .sum();
    assert_eq!(files as u64, total, "every message exactly once on disk");
    sim.shutdown().await;
}

/// One complete run with default options.
async fn rerun(
    src: &SourceConfig,
    secret: &Secret,
    out: &Path,
) -> migrator_core::progress::RunSummary {
    run_to_folder(
        src,
        secret,
        out,
        Arc::new(Recorder::default()),
        RunControl::new(),
    )
    .await
    .unwrap()
}

/// Runs against the simulator with `source` and `secret`, expecting a sign-in failure.
async fn sign_in_error(source: &SourceConfig, secret: &str, target: &Path) -> EngineError {
    run_to_folder(
        source,
        &Secret::new(secret),
        target,
        Arc::new(Recorder::default()),
        RunControl::new(),
    )
    .await
    .unwrap_err()
}

#[tokio::test]
async fn a_wrong_secret_stops_before_anything_is_written() {
    let sim = SimServer::start(SimConfig::demo()).await.unwrap();
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("never-created");
    let err = sign_in_error(
        &source(&sim),
        "wrong-secret-value~1234567890abcdefghij",
        &target,
    )
    .await;
    assert!(
        matches!(err, EngineError::Auth(AuthError::WrongSecret { .. })),
        "{err:?}"
    );
    assert_eq!(err.code(), "auth.secret");
    assert!(
        !target.exists(),
        "nothing may be written before sign-in succeeds"
    );

    // The secret's ID (a GUID) pasted instead of its value gets the specific advice.
    let err = sign_in_error(
        &source(&sim),
        "6a3e4f0c-1b2d-4c5e-8f90-123456789abc",
        &target,
    )
    .await;
    assert!(err.to_string().contains("secret's ID"), "{err}");

    let mut unknown_tenant = source(&sim);
    unknown_tenant.tenant_id = "fabrikam.example.com".into();
    let err = sign_in_error(&unknown_tenant, sim.client_secret(), &target).await;
    assert!(
        matches!(err, EngineError::Auth(AuthError::TenantNotFound(_))),
        "{err:?}"
    );

    let mut unknown_app = source(&sim);
    unknown_app.client_id = "11111111-2222-3333-4444-555555555555".into();
    let err = sign_in_error(&unknown_app, sim.client_secret(), &target).await;
    assert!(
        matches!(err, EngineError::Auth(AuthError::AppNotInTenant(_))),
        "{err:?}"
    );
    assert!(!target.exists());
    sim.shutdown().await;
}

/// Asserts that `user`'s Maildir mirrors the source: per folder the same message bytes, each
/// once, with its flags in the file name; `extra` are `(folder name, bytes)` that must also
/// be there (deletions kept).
fn assert_maildir_mirrors(root: &Path, user: &migrator_sim::User, extra: &[(&str, &[u8])]) {
    let files = maildir_files(root);
    for (name, folder) in expected_names(user) {
        let got = files.get(&name).cloned().unwrap_or_default();
        let mut have: Vec<(Vec<u8>, String)> = got
            .iter()
            .map(|p| {
                let info = p
                    .to_string_lossy()
                    .rsplit(":2,")
                    .next()
                    .unwrap()
                    .to_string();
                (std::fs::read(p).unwrap(), info)
            })
            .collect();
        let mut want: Vec<(Vec<u8>, String)> = folder
            .messages
            .iter()
            .map(|m| {
                let mut info = String::new();
                for (on, c) in [
                    (m.is_draft, 'D'),
                    (m.flag_status == "flagged", 'F'),
                    (m.last_verb_executed == Some(104), 'P'),
                    (matches!(m.last_verb_executed, Some(102 | 103)), 'R'),
                    (m.is_read, 'S'),
                ] {
                    if on {
                        info.push(c);
                    }
                }
                (m.mime.as_ref().to_vec(), info)
            })
            .chain(extra.iter().filter(|(f, _)| *f == name).map(|(_, b)| {
                let keep = have.iter().find(|(h, _)| h == b).map(|h| h.1.clone());
                (b.to_vec(), keep.unwrap_or_default())
            }))
            .collect();
        have.sort();
        want.sort();
        assert!(have == want, "folder {name:?} differs from the source");
    }
}

#[tokio::test]
async fn an_incremental_pass_into_a_maildir_mirrors_changes_and_a_quiet_one_writes_nothing() {
    let sim = tenant_of(1, 50).await;
    let out = tempfile::tempdir().unwrap();
    let (src, secret) = (source(&sim), Secret::new(sim.client_secret()));
    let run = |mirror_deletions: bool| {
        let options = RunOptions {
            state_dir: Some(out.path().join(".state")),
            mirror_deletions,
            ..RunOptions::default()
        };
        run_to_folder_with(
            &src,
            &secret,
            out.path(),
            Arc::new(Recorder::default()),
            RunControl::new(),
            options,
        )
    };
    let replied = sim.tenant().users[0].folders[0].messages[5].id.clone();
    let user_id = sim.tenant().users[0].id.clone();
    assert!(sim.update_message(&user_id, &replied, |m| m.last_verb_executed = Some(103)));
    let first = run(false).await.unwrap();
    assert_eq!(first.totals.failed, 0);
    let user = sim.tenant().users[0].clone();
    let root = out.path().join(user.mail.to_lowercase());
    assert_maildir_mirrors(&root, &user, &[]);

    let inbox = user
        .folders
        .iter()
        .find(|f| f.display_name == "Inbox")
        .unwrap();
    let archive = user
        .folders
        .iter()
        .find(|f| f.display_name == "Archive")
        .unwrap();
    let m = |i: usize| inbox.messages[i].clone();
    let (to_archive, to_new, read, flag, deleted) = (m(0), m(1), m(2), m(3), m(4));
    assert!(sim.move_message(&user.id, &to_archive.id, &archive.id));
    sim.mutate(|t| {
        t.users[0].folders.push(migrator_sim::MailFolder {
            id: "AAMkAGI2TG93AAAuAAAAAAAbrandnewfolderAAA=".into(),
            parent_id: None,
            display_name: "Neu ✓".into(),
            well_known_name: None,
            is_hidden: false,
            is_search_folder: false,
            messages: Vec::new(),
        })
    });
    assert!(sim.move_message(
        &user.id,
        &to_new.id,
        "AAMkAGI2TG93AAAuAAAAAAAbrandnewfolderAAA="
    ));
    assert!(sim.set_read(&user.id, &read.id, !read.is_read));
    assert!(sim.set_flag(&user.id, &flag.id, "flagged"));
    assert!(sim.delete_message(&user.id, &deleted.id));
    // A folder deleted at the source with its messages (hard delete).
    let starred = user
        .folders
        .iter()
        .find(|f| f.display_name == "*starred*")
        .unwrap()
        .clone();
    assert!(!starred.messages.is_empty(), "tenant shape");
    sim.mutate(|t| t.users[0].folders.retain(|f| f.id != starred.id));
    let starred_name = expected_names(&user)
        .into_iter()
        .find(|(_, f)| f.id == starred.id)
        .map(|(n, _)| n)
        .unwrap();
    let forwarded = m(6);
    assert!(
        sim.update_message(&user.id, &forwarded.id, |m| m.last_verb_executed =
            Some(104))
    );
    // A folder renamed at the source: its messages and its subfolders' follow it.
    sim.mutate(|t| {
        for f in &mut t.users[0].folders {
            if f.display_name == "Projects" {
                f.display_name = "Projekte".into();
            }
        }
    });
    let added = migrator_sim::sample_message(&user, 99, time::OffsetDateTime::now_utc());
    assert!(sim.add_message(&user.id, "inbox", added));

    let mark = sim.requests().len();
    let second = run(false).await.unwrap();
    assert_eq!((second.totals.messages, second.totals.failed), (1, 0));
    let user_now = sim.tenant().users[0].clone();
    let mut kept: Vec<(&str, &[u8])> = vec![("", deleted.mime.as_ref())];
    kept.extend(
        starred
            .messages
            .iter()
            .map(|m| (starred_name.as_str(), m.mime.as_ref())),
    );
    assert_maildir_mirrors(&root, &user_now, &kept);
    let in_starred = maildir_files(&root)[&starred_name].len();
    assert_eq!(in_starred, starred.messages.len(), "kept by default");
    let renamed: usize = maildir_files(&root)
        .iter()
        .filter(|(name, _)| name.starts_with(".INBOX.Projekte"))
        .map(|(_, files)| files.len())
        .sum();
    assert!(renamed > 0, "the renamed folders hold their messages");
    let values = sim.requests()[mark..]
        .iter()
        .filter(|r| r.path_and_query.contains("/messages/") && r.path_and_query.contains("/$value"))
        .count();
    assert_eq!(values, 1, "moves are renames, not downloads");

    // Nothing changed: no file is written, renamed or removed.
    let before = maildir_files(&root);
    let quiet = run(false).await.unwrap();
    assert_eq!((quiet.totals.messages, quiet.totals.failed), (0, 0));
    assert_eq!(maildir_files(&root), before);

    // Opting in removes the message deleted at the source.
    let mirrored = run(true).await.unwrap();
    assert_eq!(mirrored.totals.failed, 0);
    assert_maildir_mirrors(&root, &user_now, &[]);
    assert_eq!(maildir_files(&root)[&starred_name].len(), 0);
    let files: usize = maildir_files(&root).values().map(Vec::len).sum();
    let source: usize = user_now.folders.iter().map(|f| f.messages.len()).sum();
    assert_eq!(files, source, "every message exactly once");
    sim.shutdown().await;
}

/// `max_downloads` bounds the message bodies streaming at once across every mailbox: six
/// mailboxes of up to 4 requests each, limited to 3, never have more than 3 `$value` bodies
/// being served together (a permit is released only after its body was read, so the
/// simulator's own overlap is an upper bound of the client's), and every message arrives.
#[tokio::test(flavor = "multi_thread")]
async fn message_downloads_across_mailboxes_stay_within_max_downloads() {
    let sim = SimServer::start(SimConfig {
        tenant: migrator_sim::TenantSpec {
            users: 6,
            messages_per_user: 20,
            groupware: migrator_sim::GroupwareSpec::none(),
            ..migrator_sim::TenantSpec::default()
        },
        latency: std::time::Duration::from_millis(20),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let options = RunOptions {
        parallel_mailboxes: 6,
        max_downloads: 3,
        ..RunOptions::default()
    };
    let summary = run_to_folder_with(
        &source(&sim),
        &Secret::new(sim.client_secret()),
        out.path(),
        Arc::new(Recorder::default()),
        RunControl::new(),
        options,
    )
    .await
    .unwrap();
    assert_eq!(summary.totals.failed, 0);
    assert_eq!(summary.totals.messages, 6 * 20);

    // The most `$value` responses open at the same moment (an end before a start at a tie).
    let mut edges: Vec<(std::time::Instant, i32)> = sim
        .requests()
        .into_iter()
        .filter(|r| r.path_and_query.contains("/$value"))
        .flat_map(|r| [(r.at, 1), (r.finished, -1)])
        .collect();
    assert_eq!(edges.len(), 2 * 6 * 20, "one body request per message");
    edges.sort();
    let (mut open, mut most) = (0, 0);
    for (_, step) in edges {
        open += step;
        most = most.max(open);
    }
    assert!(most <= 3, "{most} bodies at once, limit 3");
    assert!(most >= 2, "the mailboxes did download in parallel ({most})");
}

/// Regression (issue 19.4): a local folder that could not be created (here a file stands where
/// the directory goes) stopped the whole run with "cannot write to the destination folder".
/// It now fails that folder only, reported, and every other folder and user goes on.
#[tokio::test]
async fn a_local_folder_that_cannot_be_created_fails_that_folder_not_the_run() {
    let sim = tenant_of(2, 6).await;
    let out = tempfile::tempdir().unwrap();
    let (src, secret) = (source(&sim), Secret::new(sim.client_secret()));
    let first = rerun(&src, &secret, out.path()).await;
    assert_eq!(first.totals.failed, 0, "{first:?}");

    // In the first user's tree, a file where a mail folder and an address book go.
    let user_root = out.path().join(sim.tenant().users[0].mail.to_lowercase());
    let mail_dir = std::fs::read_dir(&user_root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() && p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .min()
        .expect("a mail folder under the inbox");
    // A collection's own directory ends in its id suffix (a nested one's parents do not).
    let book = std::fs::read_dir(user_root.join("contacts"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().contains(" ~"))
        .min()
        .expect("an address book");
    for dir in [&mail_dir, &book] {
        std::fs::remove_dir_all(dir).unwrap();
        std::fs::write(dir, b"not a directory").unwrap();
    }

    let recorder = Arc::new(Recorder::default());
    let again = run_to_folder(
        &src,
        &secret,
        out.path(),
        recorder.clone(),
        RunControl::new(),
    )
    .await
    .expect("the run goes on past a folder it cannot create");
    assert_eq!(again.users, 2, "both users finished");
    let failed: Vec<(String, String)> = recorder
        .0
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            ProgressEvent::ItemFailed { item, reason, .. } => Some((item.clone(), reason.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert_eq!(again.totals.failed, 2, "{again:?}");
    for (item, reason) in &failed {
        assert_eq!(item, "(folder)", "{failed:?}");
        assert!(reason.starts_with("cannot create the folder"), "{failed:?}");
    }
    sim.shutdown().await;
}
