//! Faults at the destination and in the state folder, end to end into real Dovecot and
//! Radicale: connections cut mid-APPEND and during login (a fault proxy), servers restarted
//! during a run, CalDAV 500 and 507, an account over quota, a read-only or full state folder
//! and a damaged journal. Each run completes with every item exactly once, or fails one item
//! with a clear reason while the rest goes on, or stops with one clear error before anything
//! is written.

use crate::dav_front::{DavFront, Refusal};
use crate::support;
use support::chain;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use migrator_core::config::UserSelection;
use migrator_core::dest::dav::{CollectionKind, DavAccount, DavLogin, DavSettings};
use migrator_core::dest::imap::{ImapSettings, Security};
use migrator_core::engine::{run, Destination, EngineError, ImapLogins, RunControl, RunOptions};
use migrator_core::journal::Journal;
use migrator_core::progress::{ProgressEvent, RunSummary};
use migrator_core::secrets::Secret;
use migrator_sim::{SimConfig, SimServer, TenantSpec};
use support::dovecot::{self, Dovecot};
use support::fault_proxy::{Fault, FaultProxy};
use support::radicale::{self, Radicale};

/// Plaintext IMAP to `port` on loopback (the fault proxy must read the commands).
fn plain_imap(port: u16) -> ImapSettings {
    let mut s = ImapSettings::new("127.0.0.1", port, Security::Plain);
    s.allow_plaintext_loopback = true;
    s.timeout = Duration::from_secs(20);
    s
}

/// A run's outcome and the reason of every failed item.
struct Outcome {
    result: Result<RunSummary, EngineError>,
    failures: Vec<String>,
}

impl Outcome {
    fn summary(&self) -> &RunSummary {
        match &self.result {
            Ok(s) => s,
            Err(e) => panic!("the run failed: {}", chain(e)),
        }
    }
}

/// Runs from `sim` into `destination` with a journal in `state`.
async fn run_into(
    sim: &SimServer,
    destination: &Destination,
    state: &Path,
    users: UserSelection,
) -> Outcome {
    let options = RunOptions {
        users,
        ..RunOptions::default()
    };
    run_watched(sim, destination, state, options, |_| {}).await
}

/// Runs from `sim` into `destination` with a journal in `state` and `options`, showing every
/// progress event to `watch` as it happens.
async fn run_watched(
    sim: &SimServer,
    destination: &Destination,
    state: &Path,
    options: RunOptions,
    watch: impl Fn(&ProgressEvent) + Send + Sync + 'static,
) -> Outcome {
    let failures = support::Failures::default();
    let recorder = failures.reporter();
    let reporter = Arc::new(move |event: ProgressEvent| {
        watch(&event);
        recorder.report(event);
    });
    let result = run(
        &support::source_config(sim),
        &Secret::new(sim.client_secret()),
        destination,
        reporter,
        RunControl::new(),
        RunOptions {
            state_dir: Some(state.to_path_buf()),
            ..options
        },
    )
    .await;
    let failures = failures.list();
    Outcome { result, failures }
}

/// Appends Dovecot logged so far.
fn appends(dovecot: &Dovecot) -> usize {
    dovecot
        .mail_changes()
        .iter()
        .filter(|l| l.contains(": save:") || l.contains(": append:"))
        .count()
}

/// Every user's mail is in Dovecot exactly once, byte for byte, and nothing else is.
async fn assert_all_mail_exactly_once(sim: &SimServer, dovecot: &Dovecot, context: &str) {
    for user in &sim.tenant().users {
        let bodies = support::account_bodies(dovecot, &user.mail).await;
        support::assert_exactly_once(user, &bodies, context);
    }
}

/// Waits (test harness polling) until `ready` or `limit` passes.
async fn wait_until(limit: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs a tenant of `users` x `messages` into Dovecot through a fault proxy armed with
/// `faults` (and refusing connections for `outage` at the start): the run must complete
/// without a failed item, every fault must have fired, and every message must be in Dovecot
/// exactly once, byte for byte (a message cut mid-APPEND would be an unknown body).
async fn run_through_faults(users: usize, messages: usize, faults: &[Fault], outage: Duration) {
    let (sim, dovecot) = support::tenant_with_dovecot(users, messages).await;
    let proxy = FaultProxy::start(dovecot.imap_port).await;
    for fault in faults {
        proxy.arm(*fault);
    }
    if !outage.is_zero() {
        proxy.outage(outage);
    }
    let state = tempfile::tempdir().unwrap();
    let outcome = run_into(
        &sim,
        &support::dovecot::master_destination(plain_imap(proxy.port)),
        state.path(),
        UserSelection::default(),
    )
    .await;
    // A command the proxy still holds for the server is delivered before the mail is counted.
    let late = faults
        .iter()
        .filter(|f| matches!(f, Fault::LateCommit { .. }))
        .count() as u64;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while proxy.stats().late_commits < late && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let summary = outcome.summary();
    assert_eq!(
        outcome.failures,
        Vec::<String>::new(),
        "{summary:?}\n{}",
        dovecot.log()
    );
    assert_eq!(
        proxy.stats().late_commits,
        late,
        "held commands were delivered"
    );
    // Each armed fault fires at most once.
    assert_eq!(
        proxy.fired().len(),
        faults.len(),
        "every fault happened: {:?} ({:?})",
        proxy.fired(),
        proxy.stats()
    );
    assert_all_mail_exactly_once(&sim, &dovecot, &format!("after {faults:?}")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn imap_connections_cut_mid_append_and_during_login_lose_and_duplicate_nothing() {
    run_through_faults(
        2,
        12,
        &[
            Fault::DuringLogin,
            Fault::MidAppend { nth: 2 },
            Fault::DuringLogin,
            Fault::MidAppend { nth: 7 },
            Fault::MidAppend { nth: 15 },
        ],
        Duration::ZERO,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn regression_an_append_the_server_stores_after_the_client_reconnected_is_not_written_twice()
{
    // The connection breaks once an APPEND was sent whole; the server is still busy with it and
    // stores the message(s) 300 ms later, when the migrator has long reconnected: its lookup
    // must not run before the server could have finished.
    run_through_faults(
        1,
        12,
        &[Fault::LateCommit {
            nth: 2,
            delay_ms: 300,
        }],
        Duration::ZERO,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_cut_after_a_few_bytes_and_a_refused_port_are_waited_out() {
    // The port refuses connections for 12 s (the settings' own policy gives up after 3.5 to
    // 7 s; the run waits longer for a destination that went away); then the first connection
    // dies inside its first command, the second after its first kilobyte (while creating
    // folders).
    run_through_faults(
        1,
        6,
        &[Fault::AfterClientBytes(5), Fault::AfterClientBytes(1024)],
        Duration::from_secs(12),
    )
    .await;
}

/// A simulator slow enough that a run of `users` x `messages` is still going when a server is
/// restarted.
async fn slow_sim(users: usize, messages: usize) -> SimServer {
    SimServer::start(SimConfig {
        tenant: TenantSpec {
            users,
            messages_per_user: messages,
            ..TenantSpec::default()
        },
        latency: Duration::from_millis(15),
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

fn dovecot_for(sim: &SimServer) -> Dovecot {
    Dovecot::start_with(dovecot::Options {
        users: support::tenant_accounts(sim),
        ..dovecot::Options::default()
    })
}

/// How long a destination stays down in the restart tests.
const DOWNTIME: Duration = Duration::from_secs(3);
/// The longest a run may need after the server is back: the IMAP reconnect policy backs off
/// 1, 2, 4 s (jittered) between attempts, the DAV writes by the pacer's 0.5 s doubling.
const RECOVERY: Duration = Duration::from_secs(45);

/// A real server a test restarts, and how far a run got with it.
trait Restartable {
    fn stop(&mut self);
    fn start_again(&mut self);
    /// Items written so far (from the server's log).
    fn written(&self) -> usize;
    fn what(&self) -> &'static str;
}

impl Restartable for Dovecot {
    fn stop(&mut self) {
        Dovecot::stop(self)
    }
    fn start_again(&mut self) {
        Dovecot::start_again(self)
    }
    fn written(&self) -> usize {
        appends(self)
    }
    fn what(&self) -> &'static str {
        "appends"
    }
}

impl Restartable for Radicale {
    fn stop(&mut self) {
        Radicale::stop(self)
    }
    fn start_again(&mut self) {
        Radicale::start_again(self)
    }
    fn written(&self) -> usize {
        self.log().matches("PUT request for").count()
    }
    fn what(&self) -> &'static str {
        "PUTs"
    }
}

/// Runs into `destination` and, once `server` has `after` items written, stops it for
/// [`DOWNTIME`] and starts it again. Returns the run's outcome, the items written before the
/// stop, and how long the run went on after the server was back.
async fn restart_mid_run(
    sim: Arc<SimServer>,
    destination: Destination,
    state: &Path,
    server: &mut impl Restartable,
    after: usize,
) -> (Outcome, usize, Duration) {
    let options = RunOptions::default();
    restart_mid_run_with(sim, destination, state, server, (after, DOWNTIME), options).await
}

/// [`restart_mid_run`] with the server down for `downtime` and the run's `options`.
async fn restart_mid_run_with(
    sim: Arc<SimServer>,
    destination: Destination,
    state: &Path,
    server: &mut impl Restartable,
    (after, downtime): (usize, Duration),
    options: RunOptions,
) -> (Outcome, usize, Duration) {
    let running = {
        let state = state.to_path_buf();
        tokio::spawn(async move { run_watched(&sim, &destination, &state, options, |_| {}).await })
    };
    wait_until(Duration::from_secs(60), server.what(), || {
        server.written() >= after
    })
    .await;
    tokio::task::block_in_place(|| server.stop());
    let before = server.written();
    tokio::time::sleep(downtime).await;
    tokio::task::block_in_place(|| server.start_again());
    let back = Instant::now();
    let outcome = running.await.unwrap();
    (outcome, before, back.elapsed())
}

#[tokio::test(flavor = "multi_thread")]
async fn dovecot_restarted_during_a_run_is_waited_for_and_every_message_arrives_once() {
    // 400 messages: the restart must fall mid-run even when Dovecot's log (which counts the
    // appends) lags on a loaded machine; with 80 a fast run could finish before the stop.
    let sim = Arc::new(slow_sim(2, 200).await);
    let mut dovecot = dovecot_for(&sim);
    let destination = support::dovecot::master_destination(dovecot.tls_settings());
    let state = tempfile::tempdir().unwrap();
    let (outcome, before, recovered_in) =
        restart_mid_run(sim.clone(), destination, state.path(), &mut dovecot, 5).await;
    let summary = outcome.summary();
    assert_eq!(
        outcome.failures,
        Vec::<String>::new(),
        "{summary:?}\n{}",
        dovecot.log()
    );
    assert!(
        before < 400,
        "the restart happened mid-run: {before} of 400 appended before it"
    );
    assert!(
        recovered_in < RECOVERY,
        "the run finished {recovered_in:?} after Dovecot was back"
    );
    assert_all_mail_exactly_once(&sim, &dovecot, "after a Dovecot restart").await;
}

/// Items per kind at the destination, and the source's counts.
async fn groupware_counts(radicale: &Radicale, address: &str) -> HashMap<CollectionKind, usize> {
    let account = DavAccount::connect(
        &radicale.settings(),
        address,
        DavLogin::new(address, Secret::new("pw")),
    )
    .await
    .unwrap();
    let mut held = HashMap::new();
    for kind in [
        CollectionKind::Events,
        CollectionKind::Contacts,
        CollectionKind::Tasks,
    ] {
        let mut n = 0;
        for collection in account.collections(kind).await.unwrap() {
            n += account.list(&collection).await.unwrap().len();
        }
        held.insert(kind, n);
    }
    held
}

fn source_counts(user: &migrator_sim::tenant::User) -> HashMap<CollectionKind, usize> {
    HashMap::from([
        (
            CollectionKind::Events,
            user.calendars.iter().map(|c| c.events.len()).sum(),
        ),
        (
            CollectionKind::Contacts,
            user.contact_folders.iter().map(|f| f.contacts.len()).sum(),
        ),
        (
            CollectionKind::Tasks,
            user.todo_lists
                .iter()
                .filter(|l| l.wellknown_list_name != "flaggedEmails")
                .map(|l| l.tasks.len())
                .sum(),
        ),
    ])
}

/// Dovecot and Radicale for `sim`'s users (password "pw"), and the destination using them
/// with DAV at `dav`.
fn groupware_destination(sim: &SimServer, dovecot: &Dovecot, dav: DavSettings) -> Destination {
    Destination::Imap {
        settings: dovecot.tls_settings(),
        logins: ImapLogins::Accounts(
            sim.tenant()
                .users
                .iter()
                .map(|u| (u.mail.to_lowercase(), Secret::new("pw")))
                .collect(),
        ),
        dav: Some(dav),
    }
}

fn radicale_for(sim: &SimServer) -> Radicale {
    Radicale::start_with(radicale::Options {
        users: support::tenant_accounts(sim),
        ..radicale::Options::default()
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn radicale_restarted_during_a_run_is_waited_for_and_every_item_arrives_once() {
    let sim = Arc::new(slow_sim(1, 2).await);
    let dovecot = dovecot_for(&sim);
    let mut radicale = radicale_for(&sim);
    let destination = groupware_destination(&sim, &dovecot, radicale.settings());
    let state = tempfile::tempdir().unwrap();
    let (outcome, before, recovered_in) =
        restart_mid_run(sim.clone(), destination, state.path(), &mut radicale, 3).await;
    let summary = outcome.summary().clone();
    assert_eq!(
        outcome.failures,
        Vec::<String>::new(),
        "{summary:?}\n{}",
        radicale.log()
    );
    assert!(
        recovered_in < RECOVERY,
        "the run finished {recovered_in:?} after Radicale was back"
    );
    let user = &sim.tenant().users[0];
    let expected = source_counts(user);
    let total: usize = expected.values().sum();
    assert!(
        before < total,
        "the restart happened mid-run: {before} of {total} PUTs before it"
    );
    assert_eq!(groupware_counts(&radicale, &user.mail).await, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn caldav_500_is_retried_and_507_fails_that_item_alone_saying_storage_is_full() {
    let sim = slow_sim(1, 1).await;
    let dovecot = dovecot_for(&sim);
    let radicale = radicale_for(&sim);
    // The 2nd PUT is answered 500 (its retry is the 3rd); the 5th and 9th find no room.
    let front = DavFront::start(
        &radicale.base_url(),
        vec![
            Refusal {
                nth: 2,
                status: 500,
            },
            Refusal {
                nth: 5,
                status: 507,
            },
            Refusal {
                nth: 9,
                status: 507,
            },
        ],
    )
    .await;
    let mut dav = DavSettings::new(front.base_url());
    dav.allow_plaintext_loopback = true;
    dav.timeout = Duration::from_secs(20);
    let destination = groupware_destination(&sim, &dovecot, dav);
    let state = tempfile::tempdir().unwrap();
    let outcome = run_into(&sim, &destination, state.path(), UserSelection::default()).await;
    let summary = outcome.summary();
    let refused = front.refused();
    assert_eq!(refused.len(), 3, "{refused:?}");
    assert_eq!(
        summary.totals.failed, 2,
        "{summary:?} {:?}",
        outcome.failures
    );
    assert_eq!(outcome.failures.len(), 2, "{:?}", outcome.failures);
    for failure in &outcome.failures {
        assert!(
            failure.contains("storage is full"),
            "a 507 says so in plain words: {failure}"
        );
    }
    // The 500 was retried: its resource is there.
    let user = &sim.tenant().users[0];
    let account = DavAccount::connect(
        &radicale.settings(),
        &user.mail,
        DavLogin::new(&user.mail, Secret::new("pw")),
    )
    .await
    .unwrap();
    let mut hrefs = Vec::new();
    for kind in [
        CollectionKind::Events,
        CollectionKind::Contacts,
        CollectionKind::Tasks,
    ] {
        for collection in account.collections(kind).await.unwrap() {
            for item in account.list(&collection).await.unwrap() {
                hrefs.push(item.href.0.clone());
            }
        }
    }
    let name = |path: &str| path.rsplit('/').next().unwrap_or_default().to_string();
    let held = |path: &str| hrefs.iter().any(|h| name(h) == name(path));
    assert!(held(&refused[0].1), "the 500 was retried: {}", refused[0].1);
    assert!(!held(&refused[1].1) && !held(&refused[2].1));
    // Everything else arrived.
    let expected: usize = source_counts(user).values().sum();
    assert_eq!(hrefs.len(), expected - 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_account_over_quota_fails_per_message_naming_the_quota_and_the_rest_goes_on() {
    let sim = SimServer::start(SimConfig {
        tenant: TenantSpec {
            users: 2,
            messages_per_user: 12,
            ..TenantSpec::default()
        },
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let tenant = sim.tenant();
    let sizes: Vec<usize> = tenant
        .users
        .iter()
        .map(|u| {
            u.folders
                .iter()
                .flat_map(|f| &f.messages)
                .map(|m| m.mime.len())
                .sum()
        })
        .collect();
    // Room for about half of the smaller mailbox.
    let quota_kib = (*sizes.iter().min().unwrap() / 2 / 1024).max(1) as u64;
    let dovecot = Dovecot::start_with(dovecot::Options {
        users: support::tenant_accounts(&sim),
        quota_kib: Some(quota_kib),
        ..dovecot::Options::default()
    });
    let destination = support::dovecot::master_destination(dovecot.tls_settings());
    let state = tempfile::tempdir().unwrap();
    let outcome = run_into(&sim, &destination, state.path(), UserSelection::default()).await;
    let summary = outcome.summary();
    assert!(
        !outcome.failures.is_empty(),
        "the quota refused something: {summary:?}"
    );
    for failure in &outcome.failures {
        assert!(
            failure.to_ascii_lowercase().contains("quota"),
            "the reason names the quota: {failure}"
        );
    }
    let mut delivered = 0;
    for user in &tenant.users {
        let bodies = support::account_bodies(&dovecot, &user.mail).await;
        let sources: Vec<&[u8]> = user
            .folders
            .iter()
            .flat_map(|f| &f.messages)
            .map(|m| m.mime.as_ref())
            .collect();
        assert!(
            bodies
                .iter()
                .all(|(b, n)| *n == 1 && sources.contains(&b.as_slice())),
            "{}: no duplicate, no partial message",
            user.mail
        );
        let user_failures = outcome
            .failures
            .iter()
            .filter(|f| f.starts_with(&format!("{} ", user.mail)))
            .count();
        assert!(user_failures > 0, "{} hit its quota", user.mail);
        assert_eq!(
            bodies.len() + user_failures,
            sources.len(),
            "{}: every message arrived or was reported",
            user.mail
        );
        assert!(!bodies.is_empty(), "{}: what fits arrived", user.mail);
        delivered += bodies.len();
    }
    assert_eq!(summary.totals.messages as usize, delivered);
}

/// A small tmpfs mounted for one test (root only), unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(options: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mnt");
        std::fs::create_dir(&path).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(&path)
            .status()
            .expect("the mount command");
        assert!(
            status.success(),
            "cannot mount a tmpfs (the state-folder tests need root, as CI runs them, to \
             mount a small file system)"
        );
        Tmpfs { path, _dir: dir }
    }

    fn remount(&self, options: &str) {
        let status = std::process::Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.path)
            .status()
            .expect("the mount command");
        assert!(status.success(), "remount {options}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(&self.path)
            .status();
    }
}

/// Runs into Dovecot with the state folder at `state`: the run must fail with a state error
/// whose text contains `expect`, before anything reached Dovecot.
async fn assert_refused_before_writing(state: &Path, expect: &str) {
    let (sim, dovecot) = support::tenant_with_dovecot(1, 3).await;
    let destination = support::dovecot::master_destination(dovecot.tls_settings());
    let outcome = run_into(&sim, &destination, state, UserSelection::default()).await;
    let error = match outcome.result {
        Ok(summary) => panic!("the run went on: {summary:?}"),
        Err(e) => e,
    };
    let text = chain(&error);
    assert_eq!(error.code(), "state", "{text}");
    assert!(text.contains(expect), "{text}");
    assert!(
        text.contains(&state.display().to_string()),
        "names the folder: {text}"
    );
    assert_eq!(
        dovecot.mail_changes(),
        Vec::<String>::new(),
        "nothing written"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_only_state_folder_stops_the_run_before_anything_is_written() {
    let fs = Tmpfs::mount("size=1m");
    let state = fs.path.join("state");
    std::fs::create_dir(&state).unwrap();
    fs.remount("ro");
    assert_refused_before_writing(&state, "the file system is read-only").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_state_disk_stops_the_run_before_anything_is_written() {
    let fs = Tmpfs::mount("size=256k");
    // Fill it up.
    {
        use std::io::Write as _;
        let mut filler = std::fs::File::create(fs.path.join("filler")).unwrap();
        let block = vec![0u8; 4096];
        while filler.write_all(&block).is_ok() {}
        let _ = filler.sync_all();
    }
    assert_refused_before_writing(&fs.path.join("state"), "the disk is full").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_journal_is_detected_and_moving_it_aside_duplicates_nothing() {
    let (sim, dovecot) = support::tenant_with_dovecot(2, 6).await;
    let destination = support::dovecot::master_destination(dovecot.tls_settings());
    let state = tempfile::tempdir().unwrap();
    let first_user = sim.tenant().users[0].mail.clone();
    // A first run migrates one mailbox.
    let first = run_into(
        &sim,
        &destination,
        state.path(),
        UserSelection {
            include: vec![first_user.clone()],
            ..UserSelection::default()
        },
    )
    .await;
    assert_eq!(first.summary().totals.messages, 6);
    let journal = state.path().join("journal.sqlite");
    // Garbage over the file's pages after the header.
    {
        let mut bytes = std::fs::read(&journal).unwrap();
        assert!(bytes.len() > 4096, "a journal of several pages");
        for (i, b) in bytes.iter_mut().enumerate().skip(100) {
            *b = (i as u8).wrapping_mul(151).wrapping_add(7);
        }
        std::fs::write(&journal, bytes).unwrap();
    }
    let appended = appends(&dovecot);
    let damaged = run_into(&sim, &destination, state.path(), UserSelection::default()).await;
    let error = match damaged.result {
        Ok(summary) => panic!("a damaged journal went unnoticed: {summary:?}"),
        Err(e) => chain(&e),
    };
    assert!(
        error.contains("damaged") && error.contains("aside and run again"),
        "the error says what happened and what to do: {error}"
    );
    assert_eq!(appends(&dovecot), appended, "nothing written meanwhile");

    // The documented recovery: move the journal (and its -wal/-shm files) aside, run again.
    for suffix in ["", "-wal", "-shm"] {
        let file = state.path().join(format!("journal.sqlite{suffix}"));
        if file.exists() {
            std::fs::rename(&file, state.path().join(format!("damaged{suffix}"))).unwrap();
        }
    }
    let recovered = run_into(&sim, &destination, state.path(), UserSelection::default()).await;
    let summary = recovered.summary();
    assert_eq!(recovered.failures, Vec::<String>::new(), "{summary:?}");
    assert_eq!(
        appends(&dovecot),
        appended + 6,
        "only the second mailbox was appended; the first was found at the destination"
    );
    assert_all_mail_exactly_once(&sim, &dovecot, "after moving a damaged journal aside").await;
}

/// Fills the file system holding `path` with one ballast file there.
fn fill_with_ballast(path: &Path) {
    use std::io::Write as _;
    let mut ballast = std::fs::File::create(path).unwrap();
    let block = vec![0u8; 4096];
    while ballast.write_all(&block).is_ok() {}
    let _ = ballast.sync_all();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_state_disk_filling_up_mid_run_stops_it_with_one_error_and_a_rerun_duplicates_nothing() {
    let fs = Tmpfs::mount("size=8m");
    let state = fs.path.join("state");
    let sim = slow_sim(2, 30).await;
    let dovecot = dovecot_for(&sim);
    let destination = support::dovecot::master_destination(dovecot.tls_settings());
    // Once 8 messages were reported done, the state folder's disk is full.
    const K: usize = 8;
    let ballast = fs.path.join("ballast");
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let outcome = {
        let (ballast, done) = (ballast.clone(), done.clone());
        run_watched(
            &sim,
            &destination,
            &state,
            RunOptions::default(),
            move |event| {
                if let ProgressEvent::ItemDone { .. } = event {
                    if done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == K {
                        fill_with_ballast(&ballast);
                    }
                }
            },
        )
        .await
    };
    let done = done.load(std::sync::atomic::Ordering::SeqCst);
    assert!(done >= K, "the disk filled mid-run ({done} items done)");
    let error = match &outcome.result {
        Ok(summary) => panic!("the run went on with a full state disk: {summary:?}"),
        Err(e) => e,
    };
    let text = chain(error);
    assert_eq!(error.code(), "state", "{text}");
    assert!(text.contains("the disk is full"), "{text}");
    assert!(
        text.contains(&state.display().to_string()),
        "names the state folder: {text}"
    );
    assert_eq!(
        outcome.failures,
        Vec::<String>::new(),
        "one error, no per-item failures"
    );
    let appended = appends(&dovecot);
    assert!(appended < 60, "the run stopped: {appended} of 60 appended");

    // Every message Dovecot holds is in the journal (done, or an intent the next run checks
    // at the destination before writing).
    std::fs::remove_file(&ballast).unwrap();
    {
        let journal = Journal::open(&state).unwrap();
        for user in &sim.tenant().users {
            let bodies = support::account_bodies(&dovecot, &user.mail).await;
            for message in user.folders.iter().flat_map(|f| &f.messages) {
                if bodies.contains_key(message.mime.as_ref() as &[u8]) {
                    let record = journal.item(&user.id, &message.id).unwrap();
                    assert!(
                        record.is_some(),
                        "{}: message {} is in Dovecot but not in the journal",
                        user.mail,
                        message.id
                    );
                }
            }
        }
    }

    // With room again, a rerun completes: every message once, byte for byte.
    let rerun = run_into(&sim, &destination, &state, UserSelection::default()).await;
    let summary = rerun.summary();
    assert_eq!(rerun.failures, Vec::<String>::new(), "{summary:?}");
    assert_eq!(
        appends(&dovecot),
        60,
        "each message appended once over both runs"
    );
    assert_all_mail_exactly_once(&sim, &dovecot, "after the state disk filled up mid-run").await;
}

/// Plaintext IMAP to `port` whose own reconnect policy gives up after 2 attempts (a second or
/// two): only the run's outage wait can carry it through an outage.
fn impatient_imap(port: u16) -> ImapSettings {
    let mut s = plain_imap(port);
    s.reconnect.max_attempts = 2;
    s
}

/// A `DestinationDown` event: (user, destination, down for, limit).
type Down = (String, String, Duration, Duration);

/// Runs `sim` into Dovecot through `proxy` with `options`; when the `at`-th item is reported
/// done, the proxy refuses and cuts every connection for `outage`. Returns the outcome, the
/// `DestinationDown` events, the user whose item started the outage, and when it started.
async fn run_into_an_outage(
    sim: &SimServer,
    proxy: &Arc<FaultProxy>,
    state: &Path,
    options: RunOptions,
    (at, outage): (usize, Duration),
) -> (Outcome, Vec<Down>, String, Instant) {
    let downs = Arc::new(std::sync::Mutex::new(Vec::<Down>::new()));
    let started = Arc::new(std::sync::Mutex::new(None::<(String, Instant)>));
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let watch = {
        let (proxy, downs, started) = (proxy.clone(), downs.clone(), started.clone());
        move |event: &ProgressEvent| match event {
            ProgressEvent::ItemDone { user, .. }
                if done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == at =>
            {
                proxy.outage(outage);
                *started.lock().unwrap() = Some((user.clone(), Instant::now()));
            }
            ProgressEvent::DestinationDown {
                user,
                destination,
                down_ms,
                limit_ms,
            } => downs.lock().unwrap().push((
                user.clone(),
                destination.clone(),
                Duration::from_millis(*down_ms),
                Duration::from_millis(*limit_ms),
            )),
            _ => {}
        }
    };
    let destination = support::dovecot::master_destination(impatient_imap(proxy.port));
    let outcome = run_watched(sim, &destination, state, options, watch).await;
    let downs = downs.lock().unwrap().clone();
    let started = started.lock().unwrap().clone();
    let (user, at) = started.expect("the outage started mid-run");
    (outcome, downs, user, at)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_imap_outage_shorter_than_outage_wait_is_waited_out_and_every_message_arrives_once() {
    const OUTAGE: Duration = Duration::from_secs(20);
    const WAIT: Duration = Duration::from_secs(40);
    let sim = slow_sim(2, 30).await;
    let dovecot = dovecot_for(&sim);
    let proxy = Arc::new(FaultProxy::start(dovecot.imap_port).await);
    let state = tempfile::tempdir().unwrap();
    let options = RunOptions {
        outage_wait: WAIT,
        ..RunOptions::default()
    };
    let (outcome, downs, _, started) =
        run_into_an_outage(&sim, &proxy, state.path(), options, (5, OUTAGE)).await;
    let summary = outcome.summary();
    assert_eq!(
        outcome.failures,
        Vec::<String>::new(),
        "{summary:?}\n{}",
        dovecot.log()
    );
    assert!(
        started.elapsed() >= OUTAGE,
        "the run went on through the outage"
    );
    // The run said it was waiting, for which server, and for how long at most.
    let server = format!("IMAP server 127.0.0.1:{}", proxy.port);
    assert!(!downs.is_empty(), "the wait was reported");
    for (_, destination, down_for, limit) in &downs {
        assert_eq!((destination, *limit), (&server, WAIT));
        assert!(*down_for < WAIT, "{down_for:?}");
    }
    let longest = downs.iter().map(|d| d.2).max().unwrap_or_default();
    // Two attempts of the reconnect policy give up after about a second; the notices come
    // before each wait, 1 to 30 s apart with jitter, so the last one may fall anywhere past 5 s.
    assert!(
        longest >= Duration::from_secs(5),
        "waited well past the reconnect policy's own 2 attempts: {longest:?}"
    );
    assert_all_mail_exactly_once(&sim, &dovecot, "after a 20 s outage").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_imap_outage_longer_than_outage_wait_fails_that_mailbox_naming_server_and_wait() {
    // One mailbox at a time: the first is mid-run when the server goes down for 14 s and
    // gives up after 8; the second starts then and waits out the rest.
    const OUTAGE: Duration = Duration::from_secs(14);
    const WAIT: Duration = Duration::from_secs(8);
    let sim = slow_sim(2, 30).await;
    let dovecot = dovecot_for(&sim);
    let proxy = Arc::new(FaultProxy::start(dovecot.imap_port).await);
    let state = tempfile::tempdir().unwrap();
    let options = RunOptions {
        parallel_mailboxes: 1,
        outage_wait: WAIT,
        ..RunOptions::default()
    };
    let (outcome, downs, first, _) =
        run_into_an_outage(&sim, &proxy, state.path(), options, (5, OUTAGE)).await;
    let summary = outcome.summary();
    assert_eq!(summary.totals.failed, 1, "the mailbox counts once");
    let server = format!("IMAP server 127.0.0.1:{}", proxy.port);
    assert_eq!(
        outcome.failures.len(),
        1,
        "one failure: {:#?}",
        outcome.failures
    );
    for failure in &outcome.failures {
        assert!(
            failure.starts_with(&format!("{first} "))
                && failure.contains(&format!("{server} still unreachable after waiting 8 s")),
            "only the mailbox that was writing fails, naming the server and the wait: {failure}"
        );
    }
    assert!(
        downs.iter().any(|d| d.0 == first) && downs.iter().all(|d| d.3 == WAIT),
        "{downs:?}"
    );
    let tenant = sim.tenant();
    for user in &tenant.users {
        let bodies = support::account_bodies(&dovecot, &user.mail).await;
        if user.mail == first {
            assert!(
                bodies.values().all(|n| *n == 1),
                "{}: no duplicate",
                user.mail
            );
        } else {
            // The other mailbox went on once the server was back.
            support::assert_exactly_once(user, &bodies, "after waiting out the rest");
        }
    }

    // The server is back: a rerun completes the failed mailbox, duplicating nothing.
    let rerun = run_into(
        &sim,
        &support::dovecot::master_destination(plain_imap(proxy.port)),
        state.path(),
        UserSelection::default(),
    )
    .await;
    let summary = rerun.summary();
    assert_eq!(rerun.failures, Vec::<String>::new(), "{summary:?}");
    assert_all_mail_exactly_once(&sim, &dovecot, "after the rerun").await;
}

/// A groupware run into Dovecot and Radicale with `outage_wait`, Radicale stopped for
/// `downtime` after 3 PUTs and started again.
struct RadicaleOutage {
    sim: Arc<SimServer>,
    _dovecot: Dovecot,
    radicale: Radicale,
    destination: Destination,
    state: tempfile::TempDir,
    outcome: Outcome,
    /// PUTs before the stop, and how long the run went on after Radicale was back.
    before: usize,
    recovered_in: Duration,
}

async fn radicale_down_mid_run(downtime: Duration, outage_wait: Duration) -> RadicaleOutage {
    let sim = Arc::new(slow_sim(1, 2).await);
    let dovecot = dovecot_for(&sim);
    let mut radicale = radicale_for(&sim);
    let destination = groupware_destination(&sim, &dovecot, radicale.settings());
    let state = tempfile::tempdir().unwrap();
    let options = RunOptions {
        outage_wait,
        ..RunOptions::default()
    };
    let (outcome, before, recovered_in) = restart_mid_run_with(
        sim.clone(),
        destination.clone(),
        state.path(),
        &mut radicale,
        (3, downtime),
        options,
    )
    .await;
    RadicaleOutage {
        sim,
        _dovecot: dovecot,
        radicale,
        destination,
        state,
        outcome,
        before,
        recovered_in,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn radicale_down_for_20_s_is_waited_out_within_outage_wait_and_every_item_arrives_once() {
    let down = radicale_down_mid_run(Duration::from_secs(20), Duration::from_secs(40)).await;
    let summary = down.outcome.summary().clone();
    assert_eq!(
        down.outcome.failures,
        Vec::<String>::new(),
        "{summary:?}\n{}",
        down.radicale.log()
    );
    assert!(
        down.recovered_in < RECOVERY,
        "the run finished {:?} after Radicale was back",
        down.recovered_in
    );
    let user = &down.sim.tenant().users[0];
    let expected = source_counts(user);
    let total: usize = expected.values().sum();
    let before = down.before;
    assert!(before < total, "stopped mid-run: {before} of {total} PUTs");
    assert_eq!(groupware_counts(&down.radicale, &user.mail).await, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn radicale_down_longer_than_outage_wait_fails_that_users_groupware_once_and_a_rerun_completes(
) {
    let down = radicale_down_mid_run(Duration::from_secs(12), Duration::from_secs(5)).await;
    let (outcome, radicale) = (&down.outcome, &down.radicale);
    let summary = outcome.summary().clone();
    let url = url::Url::parse(&radicale.base_url()).unwrap();
    let server = format!(
        "{}:{}",
        url.host_str().unwrap_or_default(),
        url.port().unwrap_or_default()
    );
    // One failure for the user's groupware, not one per item (each would wait again).
    assert_eq!(outcome.failures.len(), 1, "{:#?}", outcome.failures);
    let failure = &outcome.failures[0];
    assert!(
        failure.contains("(groupware) (account)")
            && failure.contains(&format!("DAV server {server}"))
            && failure.contains("still unreachable after waiting 5 s"),
        "{failure}"
    );
    assert_eq!(summary.totals.failed, 1);

    // Radicale is back: a rerun writes the rest, each item once.
    let sim = &down.sim;
    let rerun = run_into(
        sim,
        &down.destination,
        down.state.path(),
        UserSelection::default(),
    )
    .await;
    let summary = rerun.summary();
    assert_eq!(rerun.failures, Vec::<String>::new(), "{summary:?}");
    let user = &sim.tenant().users[0];
    assert_eq!(
        groupware_counts(radicale, &user.mail).await,
        source_counts(user)
    );
}
