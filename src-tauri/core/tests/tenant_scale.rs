//! A tenant at scale (issue 17): many mailboxes at once under Graph's limit per app across
//! the tenant (throttling-limits.md, global limits), and how mailboxes are scheduled.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use migrator_core::config::Workload;
use migrator_core::engine::{run, Destination, EngineError, RunControl, RunOptions};
use migrator_core::graph::pacer::AppBudget;
use migrator_core::graph::PacerSettings;
use migrator_core::progress::{ProgressEvent, Reporter, RunSnapshot, RunSummary};
use migrator_core::secrets::Secret;
use migrator_sim::{AppLimit, MailboxLimits, SimConfig, SimServer, TenantSpec};

/// The app's budget in these tests: small, so many mailboxes reach it within a few seconds.
const APP_BUDGET: u32 = 100;
const APP_WINDOW: Duration = Duration::from_secs(2);

/// Every message of every mailbox of `sim` is in the local folder `out` exactly once.
fn every_message_once(sim: &SimServer, out: &std::path::Path, context: &str) {
    for user in &sim.tenant().users {
        let bodies = support::maildir_bodies(&out.join(&user.mail));
        support::assert_exactly_once(user, &bodies, context);
    }
}

/// The mail of every mailbox of `sim` into the local folder `out`, one mailbox at a time.
async fn run_mail_in_one_slot(
    sim: &SimServer,
    out: &std::path::Path,
    reporter: Arc<dyn Reporter>,
    control: RunControl,
) -> Result<RunSummary, EngineError> {
    run(
        &support::source_config(sim),
        &Secret::new(sim.client_secret()),
        &Destination::Folder(out.to_path_buf()),
        reporter,
        control,
        RunOptions {
            parallel_mailboxes: 1,
            workloads: vec![Workload::Mail],
            ..RunOptions::default()
        },
    )
    .await
}

/// Sixteen mailboxes in parallel, each far within its own limits, together reach the app's
/// budget across the tenant: the run is never answered 429 for it (with and without the
/// usage headers, whose use for the global limit is not documented), uses the budget (the
/// busiest window holds at least half of it: the client does not starve itself), and every
/// message arrives once.
#[tokio::test(flavor = "multi_thread")]
async fn many_mailboxes_in_parallel_stay_under_the_app_limit_across_the_tenant() {
    for announce in [false, true] {
        let sim = SimServer::start(SimConfig {
            tenant: TenantSpec {
                users: 16,
                messages_per_user: 6,
                ..TenantSpec::default()
            },
            latency: Duration::from_millis(2),
            limits: Some(MailboxLimits::default()),
            app_limit: Some(AppLimit {
                budget: APP_BUDGET,
                window: APP_WINDOW,
                announce,
            }),
            ..SimConfig::default()
        })
        .await
        .unwrap();
        let out = tempfile::tempdir().unwrap();
        let (summary, failures) = support::run_with(
            &sim,
            &Destination::Folder(out.path().join("out")),
            RunOptions {
                parallel_mailboxes: 16,
                workloads: vec![Workload::Mail],
                pacer: PacerSettings {
                    app: Some(AppBudget::new(APP_BUDGET, APP_WINDOW)),
                    ..PacerSettings::default()
                },
                ..RunOptions::default()
            },
        )
        .await;
        assert_eq!(summary.totals.failed, 0, "{failures:?}");

        let log = sim.requests();
        let graph: Vec<_> = log
            .iter()
            .filter(|r| !r.path_and_query.contains("/oauth2/"))
            .collect();
        // Only the app's limit is asserted here: a MailboxConcurrency 429 can follow when the
        // client sends its next request before the simulator has released the slot of the
        // last answer (seen once in 749 requests with the whole suite running).
        let throttled: Vec<_> = graph
            .iter()
            .filter(|r| r.app_throttled)
            .map(|r| &r.path_and_query)
            .collect();
        assert!(
            throttled.is_empty(),
            "announce={announce}: {} of {} requests answered 429 for the app's limit: {throttled:?}",
            throttled.len(),
            graph.len()
        );
        assert!(
            graph.len() > 3 * APP_BUDGET as usize,
            "the run needs several windows: {} requests",
            graph.len()
        );
        let mut busiest = 0;
        for (i, r) in graph.iter().enumerate() {
            let in_window = graph[i..]
                .iter()
                .filter(|later| later.at < r.at + APP_WINDOW)
                .count();
            busiest = busiest.max(in_window);
        }
        assert!(
            busiest >= APP_BUDGET as usize / 2 && busiest <= APP_BUDGET as usize,
            "announce={announce}: the busiest window held {busiest} requests"
        );
        every_message_once(&sim, &out.path().join("out"), "under the app limit");
    }
}

/// One big mailbox among small ones, listed after several of them: it starts first (its
/// `UserStarted` comes before any other), and every message of every mailbox arrives once.
/// Before, mailboxes started in userPrincipalName order, the big one when its turn came. One
/// slot: with more, the first few start together and each reports `UserStarted` after its
/// own folder listing, in no fixed order (the unit test `engine::schedule` covers slots).
#[tokio::test(flavor = "multi_thread")]
async fn the_largest_mailbox_starts_first() {
    let sim = SimServer::start(SimConfig {
        tenant: TenantSpec {
            users: 10,
            messages_per_user: 30,
            ..TenantSpec::default()
        },
        limits: Some(MailboxLimits::default()),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let mut by_upn: Vec<_> = sim.tenant().users.clone();
    by_upn.sort_by(|a, b| a.user_principal_name.cmp(&b.user_principal_name));
    let big = by_upn[6].id.clone();
    sim.mutate(|tenant| {
        for user in tenant.users.iter_mut().filter(|u| u.id != big) {
            for folder in &mut user.folders {
                folder.messages.truncate(1);
            }
        }
    });
    let events = Arc::new(std::sync::Mutex::new(Vec::new()));
    let reporter = {
        let events = events.clone();
        Arc::new(move |e: ProgressEvent| events.lock().unwrap().push(e))
    };
    let out = tempfile::tempdir().unwrap();
    let summary = run_mail_in_one_slot(&sim, &out.path().join("out"), reporter, RunControl::new())
        .await
        .expect("the run completes");
    assert_eq!(summary.totals.failed, 0, "{summary:?}");
    let started: Vec<String> = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            ProgressEvent::UserStarted { user, .. } => Some(user.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(started.len(), 10, "{started:?}");
    assert_eq!(
        started[0], by_upn[6].mail,
        "the big mailbox starts first: {started:?}"
    );
    every_message_once(&sim, &out.path().join("out"), "largest first");
}

/// A mailbox Exchange keeps throttling while the run sizes mailboxes does not hold back the
/// others: their messages are copied while it is still throttled (its sizing read gives up
/// at the first 429 and the mailbox runs last, honouring the `Retry-After`). Before, the first
/// copies waited until every mailbox of the first wave was sized, the throttled one too.
#[tokio::test(flavor = "multi_thread")]
async fn a_throttled_mailbox_does_not_hold_back_the_first_copies() {
    let tenant = migrator_sim::generate_tenant(&TenantSpec {
        users: 5,
        messages_per_user: 4,
        ..TenantSpec::default()
    });
    let throttled = tenant.users[2].id.clone();
    let sim = SimServer::start(SimConfig {
        tenant: TenantSpec {
            users: 5,
            messages_per_user: 4,
            ..TenantSpec::default()
        },
        limits: Some(MailboxLimits::default()),
        faults: migrator_sim::Faults {
            long_throttle: Some(migrator_sim::LongThrottle {
                mailbox: throttled.clone(),
                answers: 6,
                retry_after: Duration::from_secs(1),
            }),
            ..migrator_sim::Faults::default()
        },
        ..SimConfig::default()
    })
    .await
    .unwrap();
    assert_eq!(
        sim.tenant().users[2].id,
        throttled,
        "the same generated tenant"
    );
    let out = tempfile::tempdir().unwrap();
    let (summary, failures) = support::run_with(
        &sim,
        &Destination::Folder(out.path().join("out")),
        RunOptions {
            parallel_mailboxes: 2,
            workloads: vec![Workload::Mail],
            ..RunOptions::default()
        },
    )
    .await;
    assert_eq!(summary.totals.failed, 0, "{failures:?}");
    let log = sim.requests();
    let throttle_over = log
        .iter()
        .filter(|r| r.mailbox.as_deref() == Some(throttled.as_str()) && r.status == 429)
        .map(|r| r.finished)
        .max()
        .expect("the mailbox was throttled");
    let copied_meanwhile = log
        .iter()
        .filter(|r| r.mailbox.as_deref() != Some(throttled.as_str()))
        .filter(|r| r.path_and_query.ends_with("/$value") && r.at < throttle_over)
        .count();
    assert!(
        copied_meanwhile > 0,
        "no other mailbox's message was copied while one mailbox was throttled"
    );
    every_message_once(&sim, &out.path().join("out"), "after a throttled mailbox");
}

/// A run stopped while its first mailbox copies: the mailboxes that never started stay
/// queued (no `UserStarted`, no `UserFinished`), the stopped one is not reported finished,
/// and neither is counted in `summary.users`; the snapshot shows no mailbox done. Before,
/// every remaining mailbox was started after the stop, reported `UserFinished` and counted,
/// so a stopped run looked finished.
#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_run_does_not_report_its_remaining_mailboxes_finished() {
    let sim = SimServer::start(SimConfig {
        tenant: TenantSpec {
            users: 6,
            messages_per_user: 8,
            ..TenantSpec::default()
        },
        latency: Duration::from_millis(2),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let control = RunControl::new();
    let events = Arc::new(std::sync::Mutex::new(Vec::new()));
    let snapshot = Arc::new(std::sync::Mutex::new(RunSnapshot::default()));
    let reporter = {
        let (events, snapshot, control) = (events.clone(), snapshot.clone(), control.clone());
        Arc::new(move |e: ProgressEvent| {
            if matches!(e, ProgressEvent::ItemDone { .. }) {
                control.cancel();
            }
            snapshot.lock().unwrap().apply(&e);
            events.lock().unwrap().push(e);
        })
    };
    let out = tempfile::tempdir().unwrap();
    let summary = run_mail_in_one_slot(&sim, &out.path().join("out"), reporter, control)
        .await
        .expect("a stopped run ends with a summary");
    assert!(summary.cancelled);
    let events = events.lock().unwrap().clone();
    let started = events
        .iter()
        .filter(|e| matches!(e, ProgressEvent::UserStarted { .. }))
        .count();
    let finished = events
        .iter()
        .filter(|e| matches!(e, ProgressEvent::UserFinished { .. }))
        .count();
    assert_eq!(started, 1, "only the mailbox running at the stop started");
    assert_eq!(finished, 0, "no mailbox finished: {summary:?}");
    assert_eq!(summary.users, 0, "{summary:?}");
    assert!(summary.totals.messages >= 1, "what was copied is counted");
    let snapshot = snapshot.lock().unwrap().clone();
    assert_eq!(snapshot.mailboxes_done, 0, "{snapshot:?}");
    assert_eq!(snapshot.mailboxes_queued, 5, "{snapshot:?}");
    // The mailbox copying at the stop is shown stopped, not running, once the run ended.
    assert_eq!(snapshot.mailboxes_running, 0, "{snapshot:?}");
    assert_eq!(snapshot.mailboxes_stopped, 1, "{snapshot:?}");
}

/// Requests the simulator served for user `id`'s mailbox from request `from` on.
fn requests_to(sim: &SimServer, id: &str, from: usize) -> Vec<String> {
    sim.requests()[from..]
        .iter()
        .filter(|r| r.mailbox.as_deref() == Some(id))
        .map(|r| r.path_and_query.clone())
        .collect()
}

/// A member without an Exchange mailbox (Graph answers `MailboxNotEnabledForRESTAPI`) is
/// asked once whether it has a mailbox and never sized: without a plan, the sizing read's
/// 404 is that answer (no second request for its facts); after a plan that found it has
/// none, no sizing request at all. Either way it is reported not migrated and nothing fails.
/// Before: a sizing request, then a `mailboxSettings` read, in both runs.
#[tokio::test(flavor = "multi_thread")]
async fn regression_a_mailbox_without_exchange_still_got_a_sizing_request() {
    let sim = SimServer::start(SimConfig {
        tenant: TenantSpec {
            users: 3,
            messages_per_user: 3,
            without_mailbox: 1,
            ..TenantSpec::default()
        },
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let none = (sim.tenant().users.iter())
        .find(|u| !u.has_mailbox)
        .expect("a member without a mailbox")
        .clone();
    let dir = tempfile::tempdir().unwrap();
    let options = |state: &str| RunOptions {
        workloads: vec![Workload::Mail],
        state_dir: Some(dir.path().join(state)),
        ..RunOptions::default()
    };
    let run_once = |state: &'static str| {
        let (sim, out, options) = (&sim, dir.path().join(state).join("out"), options(state));
        async move {
            let events = Arc::new(std::sync::Mutex::new(Vec::new()));
            let seen = events.clone();
            let reporter = Arc::new(move |e: ProgressEvent| seen.lock().unwrap().push(e));
            let summary = run(
                &support::source_config(sim),
                &Secret::new(sim.client_secret()),
                &Destination::Folder(out),
                reporter,
                RunControl::new(),
                options,
            )
            .await
            .expect("the run completes");
            assert_eq!(summary.totals.failed, 0, "{summary:?}");
            let events = events.lock().unwrap().clone();
            support::not_migrated(&events)
        }
    };
    let expected = vec![(
        none.mail.clone(),
        migrator_core::engine::NO_MAILBOX.to_string(),
    )];

    // Without a plan: one request, the sizing read, whose 404 says it all.
    let before = sim.requests().len();
    assert_eq!(run_once("unplanned").await, expected);
    let asked = requests_to(&sim, &none.id, before);
    assert_eq!(
        asked.len(),
        1,
        "one request to learn it has no mailbox: {asked:?}"
    );

    // After a plan that found it has none: no sizing request.
    migrator_core::engine::plan_with(
        &support::source_config(&sim),
        &Secret::new(sim.client_secret()),
        &options("planned"),
        &migrator_core::engine::PlanOptions::default(),
    )
    .await
    .expect("the plan");
    let before = sim.requests().len();
    assert_eq!(run_once("planned").await, expected);
    let asked = requests_to(&sim, &none.id, before);
    assert!(
        asked.iter().all(|r| !r.contains("totalItemCount")),
        "no sizing request after a plan: {asked:?}"
    );
    assert_eq!(asked.len(), 1, "its facts read only: {asked:?}");
}

/// When every download slot of the run (`max_downloads`) is taken, a freed one goes to the
/// mailbox with the most left to copy: the largest mailbox's downloads are not queued behind
/// eight small mailboxes' (one slot; of the 60 downloads after its first, at least half are
/// its own; with first-come, first-served slots each mailbox got about one in nine), and
/// every message of every mailbox still arrives once.
#[tokio::test(flavor = "multi_thread")]
async fn regression_the_largest_mailbox_waited_behind_small_ones_for_download_slots() {
    let sim = SimServer::start(SimConfig {
        tenant: TenantSpec {
            users: 9,
            messages_per_user: 150,
            ..TenantSpec::default()
        },
        latency: Duration::from_millis(2),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let big = sim.tenant().users[4].id.clone();
    sim.mutate(|tenant| {
        for user in tenant.users.iter_mut().filter(|u| u.id != big) {
            for folder in &mut user.folders {
                folder.messages.truncate(20);
            }
        }
    });
    let out = tempfile::tempdir().unwrap();
    let (summary, failures) = support::run_with(
        &sim,
        &Destination::Folder(out.path().join("out")),
        RunOptions {
            parallel_mailboxes: 9,
            max_downloads: 1,
            workloads: vec![Workload::Mail],
            ..RunOptions::default()
        },
    )
    .await;
    assert_eq!(summary.totals.failed, 0, "{failures:?}");
    let mut downloads: Vec<_> = (sim.requests().iter())
        .filter(|r| r.path_and_query.ends_with("/$value"))
        .map(|r| (r.at, r.mailbox.as_deref() == Some(big.as_str())))
        .collect();
    downloads.sort_by_key(|d| d.0);
    let first = downloads
        .iter()
        .position(|d| d.1)
        .expect("the big mailbox downloaded");
    let next: Vec<bool> = downloads[first..].iter().take(60).map(|d| d.1).collect();
    let own = next.iter().filter(|b| **b).count();
    assert!(
        own >= 30,
        "{own} of the {} downloads after the big mailbox's first were its own",
        next.len()
    );
    every_message_once(&sim, &out.path().join("out"), "with one download slot");
}

/// Issue 17.3: a queued mailbox keeps only what orders it (its user, size and what its
/// sizing read left its pacer), never a pacer of its own. Before, every sized mailbox held
/// its pacer (with its semaphore, window and settings) while it waited, so memory grew with
/// the queue: 10,000 queued mailboxes held 10,000 pacers. Each pacer of a run holds a share
/// of the run's app budget, so its holders count the live pacers: while 40 mailboxes are
/// queued and 2 run, at most the 2 running ones (and the run's own few) are alive.
#[tokio::test(flavor = "multi_thread")]
async fn regression_every_queued_mailbox_kept_its_pacer() {
    const MAILBOXES: usize = 40;
    const PARALLEL: usize = 2;
    let sim = SimServer::start(SimConfig {
        tenant: TenantSpec {
            users: MAILBOXES,
            messages_per_user: 2,
            ..TenantSpec::default()
        },
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let app = AppBudget::new(100_000, Duration::from_secs(10));
    // Live holders of the app budget each time a mailbox starts.
    let holders = Arc::new(std::sync::Mutex::new(Vec::new()));
    let reporter = {
        let (holders, app) = (holders.clone(), app.clone());
        Arc::new(move |e: ProgressEvent| {
            if let ProgressEvent::UserStarted { .. } = e {
                holders.lock().unwrap().push(app.holders());
            }
        })
    };
    let out = tempfile::tempdir().unwrap();
    let summary = run(
        &support::source_config(&sim),
        &Secret::new(sim.client_secret()),
        &Destination::Folder(out.path().join("out")),
        reporter,
        RunControl::new(),
        RunOptions {
            parallel_mailboxes: PARALLEL,
            workloads: vec![Workload::Mail],
            pacer: PacerSettings {
                app: Some(app.clone()),
                ..PacerSettings::default()
            },
            ..RunOptions::default()
        },
    )
    .await
    .expect("the run completes");
    assert_eq!(summary.totals.failed, 0, "{summary:?}");
    every_message_once(&sim, &out.path().join("out"), "queued mailboxes");
    let holders = holders.lock().unwrap().clone();
    assert_eq!(holders.len(), MAILBOXES, "each mailbox started once");
    // The holders besides the mailboxes' pacers: this test's own `app`, the reporter's
    // clone, the run's settings and its tenant-wide pacer.
    let own = 4;
    let most = holders.iter().copied().max().unwrap_or_default();
    assert!(
        most <= own + PARALLEL,
        "{most} holders of the app budget with {PARALLEL} mailboxes running: the queued \
         mailboxes keep pacers ({holders:?})"
    );
}

/// A simulated tenant of 8 mailboxes of 6 messages (48 messages), for the Plan's estimate.
async fn eight_mailboxes_of_six_messages() -> SimServer {
    SimServer::start(SimConfig {
        tenant: TenantSpec {
            users: 8,
            messages_per_user: 6,
            ..TenantSpec::default()
        },
        ..SimConfig::default()
    })
    .await
    .expect("the simulator starts")
}

/// The Plan's estimate is the tenant model's (`engine::estimate`), from the plan's own counts:
/// with eight mailboxes under an app limit of 50 requests per second, the app limit binds
/// (the eight, four at a time at 4 in flight and 250 ms a request, need about 5 s; their
/// ~300 requests at the app limit about 6 s) and the estimate is at least every request at
/// that limit. Before: the estimate was the mailboxes'
/// schedule alone, which ignored the app limit, the CPU and the destination.
#[tokio::test(flavor = "multi_thread")]
async fn regression_the_plans_estimate_ignored_the_app_limit_and_the_cpu() {
    use migrator_core::engine::estimate::{
        Estimate, Limits, Machine, MailboxWork, ASSUMED_LATENCY, ASSUMED_MESSAGE_BYTES,
    };
    let sim = eight_mailboxes_of_six_messages().await;
    let dir = tempfile::tempdir().unwrap();
    let (budget, window) = (50, Duration::from_secs(1));
    let options = RunOptions {
        workloads: vec![Workload::Mail],
        state_dir: Some(dir.path().to_path_buf()),
        parallel_mailboxes: 4,
        pacer: PacerSettings {
            app: Some(AppBudget::new(budget, window)),
            ..PacerSettings::default()
        },
        ..RunOptions::default()
    };
    let plan = migrator_core::engine::plan(
        &support::source_config(&sim),
        &Secret::new(sim.client_secret()),
        &options,
    )
    .await
    .expect("the plan");
    assert!(plan.requests > 0 && plan.items == 8 * 6, "{plan:?}");

    let at_app_limit = plan.requests as f64 * window.as_secs_f64() / f64::from(budget);
    assert!(
        plan.estimated_seconds >= at_app_limit - 1e-9,
        "{} requests at {budget} per {window:?} take at least {at_app_limit} s; the plan says {} s",
        plan.requests,
        plan.estimated_seconds
    );
    // The model, from the plan's counts, the run's limits and this machine.
    let work: Vec<MailboxWork> = plan
        .users
        .iter()
        .map(|u| MailboxWork {
            requests: u.requests,
            items: u.items + u.events + u.contacts + u.tasks,
            messages: u.items,
            bytes: u.items * ASSUMED_MESSAGE_BYTES,
        })
        .collect();
    let limits = Limits {
        max_in_flight: 4,
        budget: 10_000,
        window: Duration::from_secs(600),
        app: Some((budget, window)),
        latency: ASSUMED_LATENCY,
        parallel_mailboxes: 4,
    };
    let model = Estimate::of(&work, &limits, &Machine::default());
    assert_eq!(plan.estimate_terms, model);
    assert_eq!(model.seconds(), ("app limit", at_app_limit));
    assert_eq!(plan.estimate_binds, "app limit");
    assert!(
        (plan.estimated_seconds - at_app_limit).abs() < 1e-9,
        "{plan:?}"
    );
}

/// The Plan of `sim`'s mail for a run into `destination`.
async fn mail_plan_into(
    sim: &SimServer,
    destination: migrator_core::engine::estimate::DestinationKind,
) -> migrator_core::engine::Plan {
    let options = RunOptions {
        workloads: vec![Workload::Mail],
        ..RunOptions::default()
    };
    let how = migrator_core::engine::PlanOptions {
        destination,
        ..migrator_core::engine::PlanOptions::default()
    };
    let secret = Secret::new(sim.client_secret());
    migrator_core::engine::plan_with(&support::source_config(sim), &secret, &options, &how)
        .await
        .expect("the plan")
}

/// The Plan's destination term takes the rate of the run's destination: 48 messages at the
/// assumed 67,000 bytes (3,216,000 bytes) take 0.10374 s at a local folder's 31 MB/s and
/// 0.06432 s at an IMAP server's 50 MB/s. Before: the Plan did not know its destination and
/// always assumed the IMAP rate, also into a local folder.
#[tokio::test(flavor = "multi_thread")]
async fn regression_the_plans_estimate_assumed_an_imap_server_for_a_local_folder() {
    use migrator_core::engine::estimate::DestinationKind;
    use migrator_core::engine::PlanOptions;
    let sim = eight_mailboxes_of_six_messages().await;
    let folder = mail_plan_into(&sim, DestinationKind::Folder).await;
    let imap = mail_plan_into(&sim, DestinationKind::default()).await;
    assert_eq!((folder.items, imap.items), (48, 48));
    let (folder_term, imap_term) = (
        folder.estimate_terms.destination,
        imap.estimate_terms.destination,
    );
    assert!(
        (folder_term - 3_216_000.0 / 31e6).abs() < 1e-12,
        "into a local folder at 31 MB/s: {folder_term} s"
    );
    assert!(
        (imap_term - 0.064_32).abs() < 1e-12,
        "into an IMAP server at 50 MB/s: {imap_term} s"
    );
    // What a plan is not told is an IMAP server, as before.
    assert_eq!(
        PlanOptions::default().destination,
        DestinationKind::Imap {
            mail_here: false,
            dav_here: false
        }
    );
}

/// A destination server on this machine shares its CPUs with the migrator, so the Plan's CPU
/// term counts the server's CPU per message (`DESTINATION_CPU_SECONDS_PER_ITEM`, Dovecot's as
/// measured) when the configured IMAP host is a loopback address or `localhost`, and not
/// when it is another host; the Plan's JSON says which (`estimateTerms.destinationCpuCounted`).
/// Before: the CPU term was the migrator's alone, so into Dovecot on the same machine the
/// estimate was half the finish (BENCHMARKS.md, "Tenant scale", 05:30 UTC).
#[tokio::test(flavor = "multi_thread")]
async fn regression_the_plans_estimate_left_out_a_destination_servers_cpu_on_this_machine() {
    use migrator_core::config::FileConfig;
    use migrator_core::engine::estimate::{
        DestinationKind, CPU_SECONDS_PER_ITEM, DESTINATION_CPU_SECONDS_PER_ITEM,
    };
    let sim = eight_mailboxes_of_six_messages().await;
    let plan_into = |host: &str| {
        let file = format!(
            "[source]\ntenant_id = \"contoso.onmicrosoft.com\"\n\
             client_id = \"00000000-0000-0000-0000-000000000001\"\n\n\
             [destination]\nkind = \"imap\"\nhost = \"{host}\"\nmaster_user = \"admin\"\n"
        );
        let config = FileConfig::parse(&file, std::path::Path::new("m.toml")).expect("the file");
        mail_plan_into(&sim, DestinationKind::of(&config.destination()))
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let migrators = 48.0 * CPU_SECONDS_PER_ITEM / cpus;
    let servers = 48.0 * DESTINATION_CPU_SECONDS_PER_ITEM / cpus;
    for host in ["127.0.0.1", "localhost", "[::1]"] {
        let plan = plan_into(host).await;
        assert_eq!(plan.items, 48, "{host}");
        let terms = plan.estimate_terms;
        assert!(terms.destination_cpu_counted, "{host}: {terms:?}");
        assert!(
            (terms.destination_cpu - servers).abs() < 1e-12,
            "{host}: 48 messages at {DESTINATION_CPU_SECONDS_PER_ITEM} s over {cpus} CPUs: {terms:?}"
        );
        assert!(
            (terms.cpu - (migrators + servers)).abs() < 1e-12,
            "{host}: {terms:?}"
        );
        let json = serde_json::to_value(&plan).expect("the plan's JSON");
        assert_eq!(
            json["estimateTerms"]["destinationCpuCounted"],
            serde_json::json!(true),
            "{host}"
        );
    }
    let remote = plan_into("mail.example.com").await;
    let terms = remote.estimate_terms;
    assert!(!terms.destination_cpu_counted, "{terms:?}");
    assert_eq!(terms.destination_cpu, 0.0);
    assert!((terms.cpu - migrators).abs() < 1e-12, "{terms:?}");
}

/// A mailbox whose migration panics (here: the reporter, on its `UserStarted`) is that
/// mailbox's one failure, named with the panic's message; the other mailbox is migrated and
/// the run ends with its summary. Before, the panic unwound through the run: no summary, no
/// `RunFinished`, and the front end's process went down with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_a_panicking_mailbox_took_the_whole_run_down() {
    let sim = SimServer::start(SimConfig {
        tenant: TenantSpec {
            users: 2,
            messages_per_user: 3,
            ..TenantSpec::default()
        },
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let broken = sim.tenant().users[0].mail.clone();
    let events = Arc::new(std::sync::Mutex::new(Vec::new()));
    let reporter = {
        let (events, broken) = (events.clone(), broken.clone());
        Arc::new(move |e: ProgressEvent| {
            if matches!(&e, ProgressEvent::UserStarted { user, .. } if *user == broken) {
                panic!("the reporter broke on {broken}");
            }
            events.lock().unwrap().push(e);
        })
    };
    let out = tempfile::tempdir().unwrap();
    let summary = run(
        &support::source_config(&sim),
        &Secret::new(sim.client_secret()),
        &Destination::Folder(out.path().to_path_buf()),
        reporter,
        RunControl::new(),
        RunOptions {
            parallel_mailboxes: 2,
            workloads: vec![Workload::Mail],
            ..RunOptions::default()
        },
    )
    .await
    .expect("the run ends with its summary");
    assert_eq!(
        (summary.users, summary.totals.failed),
        (1, 1),
        "{summary:?}"
    );
    let events = events.lock().unwrap();
    let failures: Vec<(&str, &str, &str)> = events
        .iter()
        .filter_map(|e| match e {
            ProgressEvent::ItemFailed {
                user, item, reason, ..
            } => Some((user.as_str(), item.as_str(), reason.as_str())),
            _ => None,
        })
        .collect();
    let expected = format!(
        "the migrator stopped on an internal error in this mailbox: the reporter broke on {broken}"
    );
    assert_eq!(
        failures,
        vec![(broken.as_str(), "(mailbox)", expected.as_str())]
    );
    assert!(matches!(
        events.last(),
        Some(ProgressEvent::RunFinished { .. })
    ));
    let other = &sim.tenant().users[1];
    let bodies = support::maildir_bodies(&out.path().join(&other.mail));
    support::assert_exactly_once(other, &bodies, "the mailbox beside the one that panicked");
}
