//! End to end against the Graph simulator: a whole tenant into the local-folder destination.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use migrator_core::config::{Cloud, SourceConfig};
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
    SourceConfig {
        tenant_id: sim.tenant_id().to_string(),
        client_id: sim.client_id().to_string(),
        cloud: Cloud::Global,
        login_url: Some(sim.url()),
        graph_url: Some(sim.url()),
    }
}

#[derive(Default)]
struct Recorder(Mutex<Vec<ProgressEvent>>);

impl Reporter for Recorder {
    fn report(&self, event: ProgressEvent) {
        self.0.lock().unwrap().push(event);
    }
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

/// Parents before children; search folders left out (they hold no items of their own).
fn ordered(user: &migrator_sim::User) -> Vec<&migrator_sim::MailFolder> {
    let mut out: Vec<&migrator_sim::MailFolder> = Vec::new();
    let mut frontier: Vec<Option<&str>> = vec![None];
    while let Some(parent) = frontier.pop() {
        for f in user
            .folders
            .iter()
            .filter(|f| f.parent_id.as_deref() == parent)
        {
            if f.is_search_folder {
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
