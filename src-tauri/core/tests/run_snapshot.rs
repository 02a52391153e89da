//! One run snapshot from the event stream, and plan counts kept per mailbox (reused without a
//! Graph request, recounted on request, cancellable), against the simulated tenant.

use crate::support;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use migrator_core::config::{parse_date, DateLimits, Workload};
use migrator_core::engine::{
    plan_with, run_to_folder_with, EngineError, PlanOptions, RunControl, RunOptions,
};
use migrator_core::progress::{PlannedMailbox, ProgressEvent, RunSnapshot};
use migrator_core::secrets::Secret;
use migrator_sim::{SimConfig, SimServer, TenantSpec};

async fn sim(tenant: TenantSpec, latency: Duration) -> SimServer {
    SimServer::start(SimConfig {
        tenant,
        latency,
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

fn options(state: &std::path::Path) -> RunOptions {
    RunOptions {
        state_dir: Some(state.to_path_buf()),
        ..RunOptions::default()
    }
}

/// Graph requests per mailbox (by user id) from request `from` on.
fn mailbox_requests(sim: &SimServer, from: usize) -> BTreeMap<String, usize> {
    let ids: HashSet<String> = sim.tenant().users.iter().map(|u| u.id.clone()).collect();
    let mut per = BTreeMap::new();
    for r in &sim.requests()[from..] {
        if let Some(m) = r.mailbox.as_ref().filter(|m| ids.contains(*m)) {
            *per.entry(m.clone()).or_insert(0) += 1;
        }
    }
    per
}

/// A run into a folder whose events go into one snapshot; the run's summary, the snapshot,
/// the planned mailboxes and the mailboxes in the order they started.
async fn run_with_snapshot(
    sim: &SimServer,
    out: &std::path::Path,
    options: RunOptions,
) -> (
    migrator_core::progress::RunSummary,
    RunSnapshot,
    Vec<PlannedMailbox>,
    Vec<String>,
) {
    let snapshot = Arc::new(Mutex::new(RunSnapshot::default()));
    let events = Arc::new(Mutex::new(Vec::new()));
    let (s, seen) = (snapshot.clone(), events.clone());
    let reporter = Arc::new(move |e: ProgressEvent| {
        s.lock().unwrap().apply(&e);
        seen.lock().unwrap().push(e);
    });
    let summary = run_to_folder_with(
        &support::source_config(sim),
        &Secret::new(sim.client_secret()),
        out,
        reporter,
        RunControl::new(),
        options,
    )
    .await
    .unwrap();
    let snapshot = snapshot.lock().unwrap().clone();
    let events = events.lock().unwrap().clone();
    let planned = (events.iter())
        .find_map(|e| match e {
            ProgressEvent::RunPlanned { mailboxes } => Some(mailboxes.clone()),
            _ => None,
        })
        .expect("the run announces its mailboxes");
    let started = (events.iter())
        .filter_map(|e| match e {
            ProgressEvent::UserStarted { user, .. } => Some(user.clone()),
            _ => None,
        })
        .collect();
    (summary, snapshot, planned, started)
}

fn assert_snapshot_is_the_summary(
    snapshot: &RunSnapshot,
    summary: &migrator_core::progress::RunSummary,
) {
    let t = &summary.totals;
    assert_eq!(snapshot.mailboxes_done, summary.users);
    assert_eq!(
        (snapshot.mailboxes_running, snapshot.mailboxes_queued),
        (0, 0)
    );
    assert_eq!(
        snapshot.items_done,
        t.messages + t.events + t.contacts + t.tasks + t.skipped,
        "{snapshot:?}\n{summary:?}"
    );
    assert_eq!(snapshot.items_failed, t.failed);
    assert_eq!(snapshot.bytes_done, t.bytes);
    assert_eq!(
        snapshot.items_total,
        snapshot.items_done + snapshot.items_failed
    );
    assert_eq!(snapshot.fraction, 1.0);
}

fn tenant(users: usize, messages: usize) -> TenantSpec {
    TenantSpec {
        users,
        messages_per_user: messages,
        without_mailbox: 1,
        guests: 1,
        ..TenantSpec::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_ends_with_a_snapshot_whose_totals_equal_the_summarys() {
    let sim = sim(tenant(4, 6), Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let one_at_a_time = RunOptions {
        parallel_mailboxes: 1,
        ..options(&dir.path().join("state"))
    };
    let (summary, snapshot, planned, started) = run_with_snapshot(&sim, &out, one_at_a_time).await;
    let users: Vec<&str> = snapshot.mailboxes.iter().map(|m| m.user.as_str()).collect();
    let announced: Vec<&str> = planned.iter().map(|p| p.user.as_str()).collect();
    assert_eq!(users, announced, "the snapshot lists them as announced");
    // One at a time, the run starts them in the announced order (the one without an
    // Exchange mailbox never starts).
    let in_order: Vec<&str> = (announced.iter().copied())
        .filter(|u| started.iter().any(|s| s == u))
        .collect();
    assert_eq!(in_order, started);
    assert_eq!(started.len(), 4);
    // Every member with a mail address is planned from the start, the one without an
    // Exchange mailbox too (it is found out when its turn comes); the guest is not.
    assert_eq!(planned.len(), 5);
    assert!(planned.iter().all(|p| p.items.is_none()), "no plan ran");
    assert_eq!(snapshot.mailboxes_total, 5);
    assert_eq!(snapshot.mailboxes_skipped, 1);
    assert_eq!(summary.users, 4);
    assert_snapshot_is_the_summary(&snapshot, &summary);
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_plan_the_runs_totals_are_known_before_the_first_copy() {
    let sim = sim(tenant(4, 6), Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let planned_by_plan = plan_with(
        &support::source_config(&sim),
        &Secret::new(sim.client_secret()),
        &options(&state),
        &PlanOptions::default(),
    )
    .await
    .unwrap();
    let (summary, snapshot, planned, _) =
        run_with_snapshot(&sim, &dir.path().join("out"), options(&state)).await;
    assert_snapshot_is_the_summary(&snapshot, &summary);
    for p in &planned {
        let row = planned_by_plan
            .users
            .iter()
            .find(|u| u.address == p.user)
            .unwrap();
        if row.not_migrated.is_some() {
            assert_eq!(p.items, None, "{}", p.user);
            continue;
        }
        // The plan's count is what the run then processed in that mailbox.
        let m = snapshot
            .mailboxes
            .iter()
            .find(|m| m.user == p.user)
            .unwrap();
        assert_eq!(
            p.items,
            Some(m.items_done + m.items_failed),
            "{}: {row:?}",
            p.user
        );
        assert_eq!(
            p.items,
            Some(row.items + row.events + row.contacts + row.tasks)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plan_reuses_kept_counts_without_a_request_to_the_mailboxes_and_refresh_recounts() {
    let sim = sim(tenant(3, 4), Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let options = options(dir.path());
    let plan = |how: PlanOptions, options: RunOptions| {
        let (source, secret) = (
            support::source_config(&sim),
            Secret::new(sim.client_secret()),
        );
        async move { plan_with(&source, &secret, &options, &how).await.unwrap() }
    };
    let first = plan(PlanOptions::default(), options.clone()).await;
    let counted = mailbox_requests(&sim, 0);
    assert_eq!(
        counted.len(),
        4,
        "every member's mailbox is read: {counted:?}"
    );
    let guest = Some(migrator_core::engine::GUEST);
    assert!((first.users.iter())
        .filter(|u| u.not_migrated.as_deref() != guest)
        .all(|u| u.counted_at.is_some()));

    let before = sim.requests().len();
    let again = plan(PlanOptions::default(), options.clone()).await;
    assert_eq!(mailbox_requests(&sim, before), BTreeMap::new());
    assert_eq!((first.kept_counts, again.kept_counts), (0, 4));
    let again = migrator_core::engine::Plan {
        kept_counts: 0,
        ..again
    };
    assert_eq!(
        again, first,
        "the kept counts, when they were taken included"
    );

    let before = sim.requests().len();
    let refreshed = plan(
        PlanOptions {
            refresh: true,
            ..PlanOptions::default()
        },
        options.clone(),
    )
    .await;
    assert_eq!(
        mailbox_requests(&sim, before),
        counted,
        "refresh reads each again"
    );
    assert_eq!((refreshed.items, refreshed.kept_counts), (first.items, 0));

    // Other date limits: the counts taken for the old ones do not hold.
    let before = sim.requests().len();
    let limited = RunOptions {
        limits: DateLimits {
            mail_since: Some(parse_date("2000-01-01").unwrap()),
            ..DateLimits::default()
        },
        ..options.clone()
    };
    plan(PlanOptions::default(), limited).await;
    assert_eq!(mailbox_requests(&sim, before).len(), 4);

    // Fewer workloads than were counted: counted again for the plan (its rows show them).
    let before = sim.requests().len();
    let mail_only = RunOptions {
        workloads: vec![Workload::Mail],
        ..options
    };
    let mail = plan(PlanOptions::default(), mail_only).await;
    assert_eq!(mailbox_requests(&sim, before).len(), 4);
    assert_eq!(mail.events, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn cancelling_a_plan_mid_scan_stops_its_requests_at_once() {
    // Slow answers, so the scan is caught in the middle.
    let sim = sim(tenant(12, 30), Duration::from_millis(40)).await;
    let dir = tempfile::tempdir().unwrap();
    let options = RunOptions {
        parallel_mailboxes: 2,
        ..options(dir.path())
    };
    let how = PlanOptions::default();
    let scan = {
        let (source, secret) = (
            support::source_config(&sim),
            Secret::new(sim.client_secret()),
        );
        let (options, how) = (options.clone(), how.clone());
        tokio::spawn(async move { plan_with(&source, &secret, &options, &how).await })
    };
    // Test harness polling: until a third mailbox is read. Two are counted at a time, so one
    // of the first two is counted by then.
    let deadline = Instant::now() + Duration::from_secs(60);
    while mailbox_requests(&sim, 0).len() < 3 {
        assert!(Instant::now() < deadline, "the plan never read a mailbox");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    how.cancel.cancel();
    let ended = scan.await.unwrap();
    assert!(
        matches!(ended, Err(EngineError::PlanCancelled)),
        "{ended:?}"
    );
    assert_eq!(ended.unwrap_err().code(), "cancelled");
    // A request written to the socket just before the cancel may still be read by the
    // simulator; one that was not sent yet never is.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let at_cancel = sim.requests().len();
    // Well past the simulator's latency: a request still queued in a pacer would have left
    // (a scan that goes on sends one about every 10 ms).
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(40)).await;
        tokio::task::yield_now().await;
    }
    assert_eq!(
        sim.requests().len(),
        at_cancel,
        "a request left after the cancel"
    );
    let read = mailbox_requests(&sim, 0).len();
    assert!(
        read < 13,
        "the scan was not stopped mid-way: {read} mailboxes read"
    );

    // What was counted by then is kept: the next plan reads only the others.
    let before = sim.requests().len();
    let options = RunOptions {
        parallel_mailboxes: 8,
        ..options
    };
    plan_with(
        &support::source_config(&sim),
        &Secret::new(sim.client_secret()),
        &options,
        &PlanOptions::default(),
    )
    .await
    .unwrap();
    let reread = mailbox_requests(&sim, before).len();
    assert!(reread < 13, "nothing counted before the cancel was kept");
    assert!(
        reread >= 13 - read,
        "mailboxes not read before the cancel are read now"
    );
}

/// After a plan, a run lists its mailboxes in `RunPlanned` in the order it starts them:
/// largest plan count first (the scheduler's order), and it sizes them from the kept counts
/// without the sizing request (`totalItemCount` of the top-level folders). Before, the run
/// announced them in userPrincipalName order while the scheduler started the largest first,
/// and each mailbox cost one sizing request even when a plan had counted it.
#[tokio::test(flavor = "multi_thread")]
async fn after_a_plan_the_run_announces_its_mailboxes_in_the_order_it_starts_them() {
    let sim = sim(tenant(5, 12), Duration::ZERO).await;
    let mut by_upn: Vec<_> = sim.tenant().users.clone();
    by_upn.sort_by(|a, b| a.user_principal_name.cmp(&b.user_principal_name));
    // The last by name is the largest, the first the smallest, the others between.
    let keep: BTreeMap<String, usize> = (by_upn.iter().enumerate())
        .map(|(i, u)| (u.id.clone(), 1 + i))
        .collect();
    sim.mutate(|t| {
        for user in &mut t.users {
            for folder in &mut user.folders {
                folder.messages.truncate(keep[&user.id]);
            }
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mail_only = RunOptions {
        workloads: vec![Workload::Mail],
        parallel_mailboxes: 1,
        ..options(&state)
    };
    plan_with(
        &support::source_config(&sim),
        &Secret::new(sim.client_secret()),
        &mail_only,
        &PlanOptions::default(),
    )
    .await
    .unwrap();
    let before = sim.requests().len();
    let (summary, _, planned, started) =
        run_with_snapshot(&sim, &dir.path().join("out"), mail_only).await;
    assert_eq!(summary.totals.failed, 0, "{summary:?}");
    let counted: Vec<&PlannedMailbox> = planned.iter().filter(|p| p.items.is_some()).collect();
    assert_eq!(counted.len(), started.len(), "{planned:?}");
    let announced: Vec<&str> = counted.iter().map(|p| p.user.as_str()).collect();
    assert_eq!(announced, started, "announced order is the start order");
    assert!(
        counted.windows(2).all(|w| w[0].items >= w[1].items),
        "largest first: {counted:?}"
    );
    // The mailbox the plan found none of is not counted: it is sized by its request.
    let ids: HashSet<String> = (sim.tenant().users.iter())
        .filter(|u| announced.contains(&u.mail.as_str()))
        .map(|u| u.id.clone())
        .collect();
    let sizing: Vec<_> = sim.requests()[before..]
        .iter()
        .filter(|r| r.mailbox.as_deref().is_some_and(|m| ids.contains(m)))
        .filter(|r| r.path_and_query.contains("totalItemCount"))
        .map(|r| r.path_and_query.clone())
        .collect();
    assert_eq!(
        sizing,
        Vec::<String>::new(),
        "no sizing request after a plan"
    );
}
