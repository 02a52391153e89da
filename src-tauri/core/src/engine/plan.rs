//! The plan: who and what a run would migrate, and how long Microsoft's limits let it take.
//! Reads only directory and folder metadata (a few requests per mailbox); moves no data.
//!
//! **Estimate.** Graph allows each mailbox at most `max_in_flight` requests at once and
//! `budget` requests per `window` (Exchange Online: 4, and 10,000 per 10 minutes,
//! throttling-limits.md "Outlook service limits"). A mailbox needs about one request per
//! message (its `$value`) plus its listing pages, so its time is bounded below by both
//! `requests x latency / max_in_flight` and, past the first window's budget,
//! `window x (requests / budget - 1)`. Mailboxes run `parallel_mailboxes` at a time, longest
//! first. Destination speed and bandwidth are not modelled: the estimate is the time Microsoft's
//! limits allow, the floor of any real run (BENCHMARKS.md measures how close runs come to it).

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::time::Duration;

use futures_util::StreamExt;
use serde::Serialize;

use super::{signed_in_mailboxes, EngineError, RunOptions};
use crate::config::SourceConfig;
use crate::graph::mail::folder_tree;
use crate::graph::types::User;
use crate::graph::{Pacer, PacerSettings};
use crate::secrets::Secret;

/// Messages per listing page the engine asks for (`$top` of the message listing).
const PAGE_SIZE: u64 = 500;
/// Requests a mailbox spends before its messages: the well-known folder lookups.
const FIXED_REQUESTS: u64 = 6;
/// Mean time of one Graph request assumed by the estimate: a `$value` of a typical message of
/// a few tens of kilobytes from Exchange Online.
pub const ASSUMED_LATENCY: Duration = Duration::from_millis(250);

/// What a run would do.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub users: Vec<PlanUser>,
    /// The domains of the selected users' addresses (primary and aliases), sorted.
    pub domains: Vec<String>,
    pub folders: u64,
    pub items: u64,
    pub requests: u64,
    /// The estimate of the whole run, in seconds, and what it assumes.
    pub estimated_seconds: f64,
    pub parallel_mailboxes: usize,
    pub assumed_latency_ms: u64,
}

/// One mailbox in the plan.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PlanUser {
    pub address: String,
    pub user_principal_name: String,
    /// `false` for a disabled account (its mailbox is still migrated).
    pub enabled: bool,
    pub folders: u64,
    /// Items in the migrated folders (Graph's `totalItemCount`, which counts every item type).
    pub items: u64,
    pub requests: u64,
    pub estimated_seconds: f64,
    /// Why this mailbox could not be read (e.g. an application access policy); the run
    /// would report the same and go on with the others.
    pub problem: Option<String>,
}

/// Discovers the selected mailboxes and their folders and estimates the run.
pub async fn plan(
    source: &SourceConfig,
    secret: &Secret,
    options: &RunOptions,
) -> Result<Plan, EngineError> {
    let (client, mailboxes) = signed_in_mailboxes(source, secret, options).await?;
    let domains = domains_of(&mailboxes);

    let settings = &options.pacer;
    let mut users: Vec<PlanUser> = futures_util::stream::iter(mailboxes)
        .map(|user| {
            let client = &client;
            async move {
                let pacer = Pacer::new(settings.clone());
                let address = user.mail.clone().unwrap_or_default();
                let mut planned = PlanUser {
                    address,
                    user_principal_name: user.user_principal_name.clone(),
                    enabled: user.account_enabled.unwrap_or(true),
                    folders: 0,
                    items: 0,
                    requests: 0,
                    estimated_seconds: 0.0,
                    problem: None,
                };
                match folder_tree(client, &pacer, &user.id, |_| {}).await {
                    Ok((nodes, _bad)) => {
                        planned.folders = nodes.len() as u64;
                        planned.items = nodes.iter().map(|n| n.folder.total_item_count).sum();
                        planned.requests = mailbox_requests(&nodes);
                        planned.estimated_seconds =
                            mailbox_seconds(planned.requests, settings, ASSUMED_LATENCY);
                    }
                    Err(e) => planned.problem = Some(e.to_string()),
                }
                planned
            }
        })
        .buffer_unordered(options.parallel_mailboxes.max(1))
        .collect()
        .await;
    users.sort_by(|a, b| a.address.cmp(&b.address));

    let estimated_seconds = run_seconds(
        users.iter().map(|u| u.estimated_seconds),
        options.parallel_mailboxes,
    );
    Ok(Plan {
        domains,
        folders: users.iter().map(|u| u.folders).sum(),
        items: users.iter().map(|u| u.items).sum(),
        requests: users.iter().map(|u| u.requests).sum(),
        users,
        estimated_seconds,
        parallel_mailboxes: options.parallel_mailboxes.max(1),
        assumed_latency_ms: ASSUMED_LATENCY.as_millis() as u64,
    })
}

/// Domains of the users' addresses: `mail` and every `smtp:` proxy address.
pub(super) fn domains_of(users: &[User]) -> Vec<String> {
    let mut domains = BTreeSet::new();
    for u in users {
        let proxies = u.proxy_addresses.iter().filter_map(|p| {
            let (scheme, address) = p.split_once(':')?;
            scheme.eq_ignore_ascii_case("smtp").then_some(address)
        });
        for address in u.mail.as_deref().into_iter().chain(proxies) {
            if let Some((_, domain)) = address.rsplit_once('@') {
                domains.insert(domain.to_ascii_lowercase());
            }
        }
    }
    domains.into_iter().collect()
}

/// Graph requests a mailbox needs: the fixed lookups, one listing per folder page, one
/// `$value` per item.
fn mailbox_requests(nodes: &[crate::graph::mail::FolderNode]) -> u64 {
    FIXED_REQUESTS
        + nodes
            .iter()
            .map(|n| {
                let items = n.folder.total_item_count;
                1 + items + items.div_ceil(PAGE_SIZE)
            })
            .sum::<u64>()
}

/// The shortest time the per-mailbox limits allow for `requests` requests (module doc).
pub fn mailbox_seconds(requests: u64, limits: &PacerSettings, latency: Duration) -> f64 {
    let by_flight = requests as f64 * latency.as_secs_f64() / limits.max_in_flight.max(1) as f64;
    let budget = f64::from(limits.budget.max(1));
    let by_budget = limits.window.as_secs_f64() * (requests as f64 / budget - 1.0);
    by_flight.max(by_budget).max(0.0)
}

/// The time `parallel` workers need for mailboxes of the given durations, longest first onto
/// the least loaded worker.
pub fn run_seconds(mailboxes: impl Iterator<Item = f64>, parallel: usize) -> f64 {
    let mut jobs: Vec<f64> = mailboxes.filter(|s| s.is_finite() && *s > 0.0).collect();
    jobs.sort_by(|a, b| b.total_cmp(a));
    // Loads in milliseconds, as integers, so the heap has a total order.
    let mut workers: BinaryHeap<Reverse<u64>> =
        std::iter::repeat_n(Reverse(0), parallel.max(1)).collect();
    for job in jobs {
        if let Some(Reverse(load)) = workers.pop() {
            workers.push(Reverse(load + (job * 1000.0).round() as u64));
        }
    }
    workers.into_iter().map(|Reverse(l)| l).max().unwrap_or(0) as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_mailbox_is_bound_by_requests_in_flight() {
        let limits = PacerSettings::default();
        // 4,000 requests of 250 ms, 4 at a time: 250 s; well inside the first window's budget.
        let s = mailbox_seconds(4_000, &limits, Duration::from_millis(250));
        assert!((s - 250.0).abs() < 1e-9, "{s}");
    }

    #[test]
    fn a_big_mailbox_is_bound_by_the_ten_minute_budget() {
        let limits = PacerSettings::default();
        // 100,000 requests: 10,000 in the first window, then 10,000 per 600 s: 9 more windows.
        // At 100 ms, 4 in flight would allow 40 per second, far above the budget's 16.7.
        let s = mailbox_seconds(100_000, &limits, Duration::from_millis(100));
        assert!((s - 5_400.0).abs() < 1e-6, "{s}");
        // At 250 ms, 4 in flight is 16 per second: slower than the budget, so it binds.
        let s = mailbox_seconds(100_000, &limits, Duration::from_millis(250));
        assert!((s - 6_250.0).abs() < 1e-6, "{s}");
    }

    #[test]
    fn mailboxes_are_packed_longest_first_onto_parallel_workers() {
        assert_eq!(run_seconds([10.0, 10.0, 10.0, 10.0].into_iter(), 2), 20.0);
        assert_eq!(run_seconds([30.0, 10.0, 10.0, 10.0].into_iter(), 2), 30.0);
        assert_eq!(run_seconds([5.0, 7.0].into_iter(), 8), 7.0);
        assert_eq!(run_seconds(std::iter::empty(), 4), 0.0);
    }

    #[test]
    fn domains_come_from_mail_and_smtp_proxy_addresses() {
        let user = |mail: &str, proxies: &[&str]| User {
            id: "1".into(),
            user_principal_name: String::new(),
            mail: Some(mail.into()),
            display_name: None,
            account_enabled: None,
            proxy_addresses: proxies.iter().map(|p| p.to_string()).collect(),
        };
        let users = [
            user(
                "ann@Contoso.com",
                &["SMTP:ann@contoso.com", "smtp:ann@fabrikam.com"],
            ),
            user(
                "bob@contoso.onmicrosoft.com",
                &["X500:/o=Exchange@ignored.example"],
            ),
        ];
        assert_eq!(
            domains_of(&users),
            ["contoso.com", "contoso.onmicrosoft.com", "fabrikam.com"]
        );
    }
}
