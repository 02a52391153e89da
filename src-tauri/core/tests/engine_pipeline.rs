//! The mail pass as a pipeline into a real Dovecot: the next delta page is requested while the
//! current page's messages are still being downloaded and appended, and progress moves per
//! message as each one is journaled, not per page.

use crate::support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use migrator_core::config::Workload;
use migrator_core::engine::{run, RunControl, RunOptions};
use migrator_core::progress::{ProgressEvent, Reporter};
use migrator_core::secrets::Secret;

/// Records when each message was reported done.
#[derive(Default)]
struct DoneTimes(Mutex<Vec<Instant>>);

impl Reporter for DoneTimes {
    fn report(&self, event: ProgressEvent) {
        if let ProgressEvent::ItemDone { skipped: false, .. } = event {
            self.0.lock().unwrap().push(Instant::now());
        }
    }
}

/// Messages per delta page: the client asks for `Prefer: odata.maxpagesize=500`, which the
/// simulator honours.
const PAGE: usize = 500;

#[tokio::test]
async fn the_next_delta_page_is_requested_while_the_current_one_is_appended_and_progress_moves_per_message(
) {
    let messages = 2 * PAGE + 100;
    let (sim, dovecot) = support::tenant_with_dovecot_config(migrator_sim::SimConfig {
        tenant: migrator_sim::TenantSpec {
            users: 1,
            messages_per_user: messages,
            ..migrator_sim::TenantSpec::default()
        },
        // Downloads take a while, so a page's copy is long against one append.
        latency: Duration::from_millis(10),
        ..migrator_sim::SimConfig::default()
    })
    .await;
    // Every message in the inbox: one folder of three pages.
    sim.mutate(|t| {
        let folders = &mut t.users[0].folders;
        let all: Vec<_> = folders
            .iter_mut()
            .flat_map(|f| std::mem::take(&mut f.messages))
            .collect();
        let inbox = folders
            .iter_mut()
            .find(|f| f.well_known_name.as_deref() == Some("inbox"))
            .expect("the tenant has an inbox");
        inbox.messages = all;
    });
    let address = sim.tenant().users[0].mail.clone();

    let state = tempfile::tempdir().unwrap();
    let destination = support::dovecot::master_destination(dovecot.tls_settings());
    let options = RunOptions {
        state_dir: Some(state.path().join("state")),
        workloads: vec![Workload::Mail],
        ..RunOptions::default()
    };
    let done = Arc::new(DoneTimes::default());
    let summary = run(
        &support::source_config(&sim),
        &Secret::new(sim.client_secret()),
        &destination,
        done.clone(),
        RunControl::new(),
        options,
    )
    .await
    .unwrap_or_else(|e| panic!("run failed: {e:?}\n{}", dovecot.log()));
    assert_eq!(summary.totals.failed, 0);
    assert_eq!(summary.totals.messages, messages as u64);
    let bodies = support::account_bodies(&dovecot, &address).await;
    assert_eq!(
        bodies.values().sum::<usize>(),
        messages,
        "each message once"
    );
    assert!(bodies.values().all(|n| *n == 1), "no duplicates");

    let done = done.0.lock().unwrap().clone();
    assert_eq!(done.len(), messages, "one ItemDone per message");

    let requests = sim.requests();
    let next_pages: Vec<Instant> = requests
        .iter()
        .filter(|r| {
            r.path_and_query.contains("/messages/delta") && r.path_and_query.contains("skiptoken")
        })
        .map(|r| r.at)
        .collect();
    assert_eq!(next_pages.len(), 2, "three pages: two followed by nextLink");
    let before_second = done.iter().filter(|t| **t < next_pages[0]).count();
    assert!(
        before_second < PAGE,
        "the second page was requested only after all {PAGE} messages of the first were \
         appended ({before_second} done before it)"
    );

    // The first page's downloads are the first PAGE MIME requests (the next page's copy
    // starts after them); progress must move before the last of them is even sent.
    let mut mime: Vec<Instant> = requests
        .iter()
        .filter(|r| r.path_and_query.ends_with("/$value"))
        .map(|r| r.at)
        .collect();
    mime.sort();
    assert_eq!(mime.len(), messages, "one download per message");
    assert!(
        done[0] < mime[PAGE - 1],
        "no message was reported done before the first page was downloaded completely"
    );
}
