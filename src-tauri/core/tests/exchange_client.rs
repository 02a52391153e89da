//! The Graph client as Exchange Online sees it: request headers, paging, throttling over long
//! times, tokens, groupware details (issue 20, items 8, 9, 10 and 12). Each test pins a
//! behaviour the simulator reproduces from Microsoft's documentation.

use crate::support;

use std::sync::Arc;

use std::time::Duration;

use migrator_core::config::{Cloud, SourceConfig, Workload};
use migrator_core::engine::{run, Destination, RunControl, RunOptions};
use migrator_core::graph::GraphClient;
use migrator_core::progress::{NullReporter, ProgressEvent, RunSummary};
use migrator_core::secrets::Secret;
use migrator_sim::{
    Faults, LongThrottle, NationalCloud, PageSizeBy, SimConfig, SimServer, TenantSpec,
};

/// Runs every workload of `sim` into a local folder under `out`.
async fn run_into(sim: &SimServer, out: &std::path::Path, options: RunOptions) -> RunSummary {
    run_from(&support::source_config(sim), sim, out, options).await
}

/// [`run_into`] with the source settings given.
async fn run_from(
    source: &SourceConfig,
    sim: &SimServer,
    out: &std::path::Path,
    options: RunOptions,
) -> RunSummary {
    run(
        source,
        &Secret::new(sim.client_secret()),
        &Destination::Folder(out.join("out")),
        Arc::new(NullReporter),
        RunControl::new(),
        RunOptions {
            state_dir: Some(out.join("state")),
            ..options
        },
    )
    .await
    .expect("the run completes")
}

/// A simulator with one user holding `messages` messages (and the default groupware),
/// configured by `config` otherwise.
async fn one_user(messages: usize, config: SimConfig) -> SimServer {
    SimServer::start(SimConfig {
        tenant: TenantSpec {
            users: 1,
            messages_per_user: messages,
            ..config.tenant.clone()
        },
        ..config
    })
    .await
    .unwrap()
}

/// Run options for `workloads` only.
fn only(workloads: &[Workload]) -> RunOptions {
    RunOptions {
        workloads: workloads.to_vec(),
        ..RunOptions::default()
    }
}

/// The `.ics` files under `dir`, unfolded (RFC 5545 §3.1).
fn calendar_files(dir: &std::path::Path) -> Vec<String> {
    support::files_under(dir)
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "ics"))
        .map(|p| std::fs::read_to_string(p).unwrap().replace("\r\n ", ""))
        .collect()
}

/// Regression: `IdType` and `odata.maxpagesize` went out as two `Prefer` lines; a server that
/// honours one line paged every delta round by its default of 10, and listings without
/// `$top` (To Do lists, event attachments) did the same.
#[tokio::test(flavor = "multi_thread")]
async fn preferences_travel_in_one_prefer_line_and_every_listing_sets_top() {
    let sim = one_user(
        30,
        SimConfig {
            ..SimConfig::default()
        },
    )
    .await;
    let out = tempfile::tempdir().unwrap();
    let summary = run_into(&sim, out.path(), RunOptions::default()).await;
    assert_eq!(summary.totals.failed, 0, "{summary:?}");
    assert_eq!(summary.totals.messages, 30);

    let pages: Vec<_> = sim
        .requests()
        .into_iter()
        .filter_map(|r| r.page_size.map(|by| (r.path_and_query, by)))
        .collect();
    assert!(pages.iter().any(|(p, _)| p.contains("/messages/delta")));
    let wrong: Vec<_> = pages
        .iter()
        .filter(|(path, by)| {
            let delta = path.contains("/delta");
            // Delta rounds are sized by the Prefer line (their later pages take no `$top`);
            // every other listing says its `$top`.
            (delta && *by == PageSizeBy::ServerDefault) || (!delta && *by != PageSizeBy::Top)
        })
        .collect();
    assert_eq!(wrong, Vec::<&(String, PageSizeBy)>::new());
    sim.shutdown().await;
}

/// Regression: a 429 counted toward the request's attempts (8), so a mailbox Exchange kept
/// throttling failed its folders although it would have resumed. Here one mailbox is answered
/// 429 forty times over (standing for an hour of throttling): the run waits it out and every
/// message arrives.
#[tokio::test(flavor = "multi_thread")]
async fn a_mailbox_throttled_far_past_the_attempt_limit_resumes_and_completes() {
    let spec = TenantSpec {
        users: 1,
        messages_per_user: 5,
        ..TenantSpec::default()
    };
    let mailbox = migrator_sim::generate_tenant(&spec).users[0].id.clone();
    let sim = SimServer::start(SimConfig {
        tenant: spec,
        faults: Faults {
            long_throttle: Some(LongThrottle {
                mailbox,
                answers: 40,
                retry_after: Duration::from_millis(20),
            }),
            ..Faults::default()
        },
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let summary = run_into(&sim, out.path(), only(&[Workload::Mail])).await;
    assert_eq!(summary.totals.failed, 0, "{summary:?}");
    assert_eq!(summary.totals.messages, 5);
    let throttled = sim.requests().iter().filter(|r| r.status == 429).count();
    assert_eq!(
        throttled, 40,
        "the mailbox was throttled as long as intended"
    );
    let user = &sim.tenant().users[0];
    let bodies = support::maildir_bodies(&out.path().join("out").join(&user.mail));
    support::assert_exactly_once(user, &bodies, "after a long throttle");
    sim.shutdown().await;
}

/// Regression: the token scope was built from `graph_url`, so a run through a proxy (or any
/// Graph URL override) asked Entra for a token to a resource it does not know (AADSTS500011).
/// The scope is the cloud's Graph resource, in every cloud.
#[tokio::test(flavor = "multi_thread")]
async fn the_token_scope_is_the_clouds_graph_even_through_a_proxy() {
    for (sim_cloud, cloud) in [
        (NationalCloud::Global, Cloud::Global),
        (NationalCloud::China, Cloud::China),
    ] {
        let sim = SimServer::start(SimConfig {
            cloud: sim_cloud,
            ..SimConfig::demo()
        })
        .await
        .unwrap();
        let source = SourceConfig {
            cloud,
            ..support::source_config(&sim)
        };
        let http = migrator_core::graph::client::http_client().unwrap();
        let client = GraphClient::new(&source, &Secret::new(sim.client_secret()), http).unwrap();
        let signed_in = client.sign_in().await;
        assert!(signed_in.is_ok(), "{cloud:?}: {:?}", signed_in.err());
        sim.shutdown().await;
    }
}

/// Regression: a token was renewed when less than five minutes were left, so a token living
/// 20 seconds was fetched again before every Graph request.
#[tokio::test(flavor = "multi_thread")]
async fn a_short_lived_token_is_not_fetched_for_every_request() {
    let sim = one_user(
        20,
        SimConfig {
            token_lifetime: Duration::from_secs(20),
            ..SimConfig::default()
        },
    )
    .await;
    let out = tempfile::tempdir().unwrap();
    let summary = run_into(&sim, out.path(), only(&[Workload::Mail])).await;
    assert_eq!(summary.totals.failed, 0, "{summary:?}");
    let log = sim.requests();
    let tokens = log
        .iter()
        .filter(|r| r.path_and_query.contains("/oauth2/v2.0/token"))
        .count();
    let graph = log.len() - tokens;
    // One token serves 15 s of requests; a loaded machine may need a renewal or two.
    assert!(
        graph >= 20 && tokens * 5 < graph,
        "{tokens} token requests for {graph} Graph requests"
    );
    sim.shutdown().await;
}

/// Regression: tasks were read with `$expand=checklistItems` only, so the links a task was
/// created from (`linkedResources`, e.g. the mail behind a flagged-mail task) never reached
/// the VTODO. The converter writes them as a "Links:" section of DESCRIPTION
/// (convert::task).
#[tokio::test(flavor = "multi_thread")]
async fn a_tasks_linked_resources_reach_its_vtodo() {
    let sim = one_user(
        1,
        SimConfig {
            ..SimConfig::default()
        },
    )
    .await;
    let url = "https://outlook.office365.com/owa/?ItemID=AAMkAGI2linked&exvsurl=1";
    let title = sim.mutate(|t| {
        let list = t.users[0]
            .todo_lists
            .iter_mut()
            .find(|l| l.wellknown_list_name != "flaggedEmails" && !l.tasks.is_empty())
            .expect("a task list with tasks");
        let task = &mut list.tasks[0];
        task.linked_message = Some((url.to_string(), "AAMkAGI2linked".to_string()));
        task.title.clone()
    });
    let out = tempfile::tempdir().unwrap();
    let summary = run_into(&sim, out.path(), only(&[Workload::Tasks])).await;
    assert_eq!(summary.totals.failed, 0, "{summary:?}");
    let dir = out.path().join("out").join(&sim.tenant().users[0].mail);
    let tasks = calendar_files(&dir.join("tasks"));
    let linked: Vec<_> = tasks.iter().filter(|t| t.contains(url)).collect();
    assert_eq!(linked.len(), 1, "one VTODO carries the link");
    assert!(
        linked[0].contains(&format!("Links:\\n- {title}: {url}")),
        "{}",
        linked[0]
    );
    sim.shutdown().await;
}

/// Regression: an event's attachments were listed with their bytes, so one large attachment
/// made the listing time out (504, as Exchange does for large payloads) and the whole event
/// failed. Attachments are listed by metadata, the small one is read and inlined, the large
/// one is listed in the description and never downloaded.
#[tokio::test(flavor = "multi_thread")]
async fn a_large_event_attachment_is_listed_not_downloaded_and_the_event_arrives() {
    let sim = one_user(
        1,
        SimConfig {
            faults: Faults {
                value_fails_above: Some(2 * 1024 * 1024),
                ..Faults::default()
            },
            ..SimConfig::default()
        },
    )
    .await;
    let big_size = 3 * 1024 * 1024;
    let big_id = sim.mutate(|t| {
        let event = t.users[0]
            .calendars
            .iter_mut()
            .flat_map(|c| c.events.iter_mut())
            .find(|e| e.recurrence.is_none())
            .expect("a single event");
        let at = event.last_modified;
        let attachment =
            |id: &str, name: &str, bytes: Vec<u8>| migrator_sim::calendar::EventAttachment {
                id: id.to_string(),
                name: name.to_string(),
                content_type: "application/octet-stream".to_string(),
                bytes,
                last_modified: at,
            };
        event.attachments = vec![
            attachment("AAMkAttSmall=", "small.txt", b"small attachment".to_vec()),
            attachment("AAMkAttBig=", "big.bin", vec![7u8; big_size]),
        ];
        "AAMkAttBig=".to_string()
    });
    let out = tempfile::tempdir().unwrap();
    let summary = run_into(&sim, out.path(), only(&[Workload::Calendar])).await;
    assert_eq!(summary.totals.failed, 0, "{summary:?}");
    let dir = out.path().join("out").join(&sim.tenant().users[0].mail);
    let with_attachments: Vec<String> = calendar_files(&dir.join("calendars"))
        .into_iter()
        .filter(|ics| ics.contains("FILENAME=small.txt"))
        .collect();
    assert_eq!(with_attachments.len(), 1, "the event arrived once");
    let ics = &with_attachments[0];
    assert!(
        ics.contains("c21hbGwgYXR0YWNobWVudA=="),
        "the small attachment's bytes are inlined: {ics}"
    );
    assert!(
        ics.contains(&format!(
            "Attachments not carried over:\\n- big.bin ({big_size} bytes)"
        )),
        "the large one is listed: {ics}"
    );
    let read_big = sim
        .requests()
        .iter()
        .filter(|r| r.path_and_query.contains(&big_id))
        .count();
    assert_eq!(read_big, 0, "the large attachment was never downloaded");
    sim.shutdown().await;
}

/// A simulated tenant in China (21Vianet) with one user holding `messages` messages, and the
/// source settings that name that cloud.
async fn china(messages: usize) -> (SimServer, SourceConfig) {
    let sim = one_user(
        messages,
        SimConfig {
            cloud: NationalCloud::China,
            ..SimConfig::default()
        },
    )
    .await;
    let source = SourceConfig {
        cloud: Cloud::China,
        ..support::source_config(&sim)
    };
    (sim, source)
}

/// Regression: in China (21Vianet) the client read messages by v1.0 delta and tasks by the
/// To Do API, neither of which that cloud serves: every folder and the tasks failed. The
/// client reads message delta from beta there, leaves tasks out, and the plan says so.
#[tokio::test(flavor = "multi_thread")]
async fn china_reads_message_delta_from_beta_and_says_tasks_are_left_out() {
    let (sim, source) = china(6).await;
    let out = tempfile::tempdir().unwrap();
    let summary = run_from(&source, &sim, out.path(), RunOptions::default()).await;
    assert_eq!(summary.totals.failed, 0, "{summary:?}");
    assert_eq!(summary.totals.messages, 6);
    assert!(summary.totals.events > 0 && summary.totals.contacts > 0);
    assert_eq!(summary.totals.tasks, 0);
    let log = sim.requests();
    assert!(log
        .iter()
        .any(|r| r.path_and_query.starts_with("/beta/")
            && r.path_and_query.contains("/messages/delta")));
    let refused: Vec<_> = log
        .iter()
        .filter(|r| r.status == 400)
        .map(|r| r.path_and_query.clone())
        .collect();
    assert_eq!(
        refused,
        Vec::<String>::new(),
        "nothing the cloud lacks was asked for"
    );

    let plan = migrator_core::engine::plan(
        &source,
        &Secret::new(sim.client_secret()),
        &RunOptions::default(),
    )
    .await
    .expect("the plan is made");
    assert_eq!(
        plan.users[0].problem.as_deref(),
        Some(migrator_core::graph::client::TASKS_LEFT_OUT)
    );
    sim.shutdown().await;
}

/// Regression: in China the tasks a run left out were only a log line; the front ends never
/// learned of them. Each mailbox now reports them once as a `NotMigrated` event.
#[tokio::test(flavor = "multi_thread")]
async fn china_run_reports_left_out_tasks_as_a_not_migrated_event() {
    let (sim, source) = china(2).await;
    let out = tempfile::tempdir().unwrap();
    let events = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = events.clone();
    let summary = run(
        &source,
        &Secret::new(sim.client_secret()),
        &Destination::Folder(out.path().join("out")),
        Arc::new(move |e: ProgressEvent| seen.lock().unwrap().push(e)),
        RunControl::new(),
        RunOptions {
            state_dir: Some(out.path().join("state")),
            ..RunOptions::default()
        },
    )
    .await
    .expect("the run completes");
    assert_eq!(summary.totals.failed, 0, "{summary:?}");
    let address = sim.tenant().users[0].mail.clone();
    let left_out = support::not_migrated(&events.lock().unwrap());
    assert_eq!(
        left_out,
        [(
            address,
            migrator_core::graph::client::TASKS_LEFT_OUT.to_string()
        )]
    );
    sim.shutdown().await;
}

/// Regression: `check` probed `/todo/lists` in China, which has no To Do API, and reported
/// Tasks.Read.All as not working. It now leaves the probe out and says why.
#[tokio::test(flavor = "multi_thread")]
async fn china_check_does_not_report_tasks_read_all_missing() {
    let (sim, source) = china(1).await;
    let (statuses, probe) = migrator_core::engine::test_source(
        &source,
        &Secret::new(sim.client_secret()),
        &RunOptions::default(),
    )
    .await
    .expect("the check runs");
    assert!(probe.is_some());
    let tasks = statuses
        .iter()
        .find(|s| s.name == "Tasks.Read.All")
        .expect("Tasks.Read.All is listed");
    assert_eq!(tasks.probe_ok, None, "{tasks:?}");
    assert_eq!(
        tasks.not_used.as_deref(),
        Some(migrator_core::graph::client::TASKS_LEFT_OUT),
        "{tasks:?}"
    );
    assert!(!tasks.missing(), "{tasks:?}");
    assert!(
        !sim.requests()
            .iter()
            .any(|r| r.path_and_query.contains("/todo/")),
        "no To Do request in a cloud without To Do"
    );
    sim.shutdown().await;
}
