//! Faults at the source: a throttle storm with expiring tokens and cut-off bodies. The run
//! completes, every message arrives exactly once (a truncated body is never delivered), and no
//! request reaches a mailbox before the `Retry-After` it was given has passed.

mod support;

use std::sync::Arc;
use std::time::Duration;

use migrator_core::config::{Cloud, SourceConfig, Workload};
use migrator_core::engine::{run, Destination, RunControl, RunOptions};
use migrator_core::graph::PacerSettings;
use migrator_core::progress::NullReporter;
use migrator_core::secrets::Secret;
use migrator_sim::{Faults, MailboxLimits, SimConfig, SimServer, TenantSpec};

#[tokio::test(flavor = "multi_thread")]
async fn a_throttle_storm_with_expiring_tokens_loses_nothing_and_never_sends_early() {
    let sim = SimServer::start(SimConfig {
        tenant: TenantSpec {
            users: 2,
            messages_per_user: 12,
            ..TenantSpec::default()
        },
        latency: Duration::from_millis(2),
        limits: Some(MailboxLimits::default()),
        // Tokens expire every two seconds: the run renews them, also after a 401.
        token_lifetime: Duration::from_secs(2),
        faults: Faults {
            error_rate_429: 0.30,
            error_rate_503: 0.05,
            reset_rate: 0.05,
            seed: 7,
            ..Faults::default()
        },
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let source = SourceConfig {
        tenant_id: sim.tenant_id().into(),
        client_id: sim.client_id().into(),
        cloud: Cloud::Global,
        login_url: Some(sim.url()),
        graph_url: Some(sim.url()),
    };
    let options = RunOptions {
        state_dir: Some(out.path().join("state")),
        workloads: vec![Workload::Mail],
        pacer: PacerSettings {
            // At a 35% failure rate, 8 attempts would leave about one request in 4,000
            // failing; the test asserts a complete run, so it allows more.
            max_attempts: 30,
            min_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(200),
            ..PacerSettings::default()
        },
        ..RunOptions::default()
    };
    let summary = run(
        &source,
        &Secret::new(sim.client_secret()),
        &Destination::Folder(out.path().join("out")),
        Arc::new(NullReporter),
        RunControl::new(),
        options,
    )
    .await
    .expect("the run completes");
    assert_eq!(summary.totals.failed, 0, "{summary:?}");

    let tenant = sim.tenant();
    for user in &tenant.users {
        let bodies = support::maildir_bodies(&out.path().join("out").join(&user.mail));
        support::assert_exactly_once(user, &bodies, "after a throttle storm");
    }

    let log = sim.requests();
    let throttled = log.iter().filter(|r| r.status == 429).count();
    assert!(
        throttled > 10,
        "the storm happened: {throttled} answers 429"
    );
    let renewals = log
        .iter()
        .filter(|r| r.path_and_query.contains("/oauth2/v2.0/token"))
        .count();
    assert!(
        renewals > 1,
        "tokens were renewed: {renewals} token requests"
    );
    // A request already on its way when the 429 left the server (its slot taken, waiting for
    // a token or a connection) cannot be recalled; one arriving later than this after the
    // answer was sent could only have been sent after the client read it.
    let in_flight = Duration::from_millis(50);
    let mut early = Vec::new();
    for (i, answer) in log.iter().enumerate() {
        let (Some(mailbox), Some(wait)) = (&answer.mailbox, answer.retry_after) else {
            continue;
        };
        let until = answer.finished + Duration::from_secs_f64(wait);
        for later in &log[i + 1..] {
            if later.mailbox.as_ref() == Some(mailbox)
                && later.at > answer.finished + in_flight
                && later.at < until
            {
                early.push(format!(
                    "{} arrived {:?} before the Retry-After of {wait} s had passed",
                    later.path_and_query,
                    until - later.at
                ));
            }
        }
    }
    assert_eq!(early, Vec::<String>::new());
    sim.shutdown().await;
}
