//! The plan: who and what a run would migrate, and how long Microsoft's limits let it take.
//! Reads only directory metadata and item ids (a few requests per mailbox and per thousand
//! items); moves no data.
//!
//! **Who.** Members with an Exchange Online mailbox are counted; guests and users whose
//! mailbox answers `MailboxNotEnabledForRESTAPI` are listed with the reason they are not
//! migrated, and an online archive (which Graph cannot read) is flagged (module
//! `engine::mailboxes`).
//!
//! **Counts.** Mail comes from each folder's `totalItemCount` (resources/mailfolder.md); with
//! mail date limits, the folder's messages are listed (`$select=id,receivedDateTime`, 1,000 a
//! page) and only those inside the limits count. Calendars, contacts and To Do tasks are listed
//! by id, 1,000 a page (100 for tasks): Graph documents `@odata.count` for these Outlook
//! collections nowhere reliable, so the plan pages instead. Events are single events and series
//! masters (api/calendar-list-events.md), as the run writes them, minus those outside
//! `calendar_since`; the flagged-mail task list is left out, as the run does.
//!
//! **Kept counts.** Each mailbox's counts go into the state folder as soon as they are taken
//! (module `engine::counts`), so the next plan for the same workloads and date limits sends
//! that mailbox no request unless asked to refresh, a cancelled plan keeps what it counted,
//! and a run knows each mailbox's total before its first copy.
//!
//! **Estimate.** Graph allows each mailbox at most `max_in_flight` requests at once and
//! `budget` requests per `window` (Exchange Online: 4, and 10,000 per 10 minutes,
//! throttling-limits.md "Outlook service limits"; one budget per mailbox for every workload).
//! A mailbox needs one request per message (its `$value`), one per contact (its photo), one
//! per series (its exceptions, beta) and per event with attachments, plus the listing pages.
//! The run's estimate is the tenant model of [`super::estimate`], the one the tenant benchmark
//! measures its lower bound with ([`Plan::estimate`]): the mailboxes at their ceilings largest
//! first over `parallel_mailboxes`, every request at the app's limit across the tenant, every
//! item's CPU over this machine's cores (the migrator's, and the destination server's when it
//! runs on this machine: a loopback address or `localhost`; a server elsewhere has its own),
//! every message's bytes (assumed [`super::estimate::ASSUMED_MESSAGE_BYTES`]) at the measured
//! rate of the run's destination ([`PlanOptions::destination`]: a local folder's or an IMAP
//! server's); the largest of them. Each mailbox's own estimate is its time at its ceiling.

use std::collections::BTreeSet;

use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::counts::MailboxCounts;
use super::estimate::{
    mailbox_seconds, DestinationKind, Estimate, Limits, Machine, MailboxWork, ASSUMED_LATENCY,
    ASSUMED_MESSAGE_BYTES,
};
use super::mailboxes::{verified_only, GUEST, NO_MAILBOX};
use super::{event_in_limits, signed_in_users, EngineError, RunOptions};
use crate::config::{DateLimits, SourceConfig, Workload};
use crate::graph::client::{GraphClient, GraphError, TASKS_LEFT_OUT};
use crate::graph::mail::{folder_tree, segment, FolderNode};
use crate::graph::paging::Pages;
use crate::graph::types::{Event, User};
use crate::graph::users::MailboxKind;
use crate::graph::{calendar, contacts, todo, users, Pacer, PacerSettings};
use crate::secrets::Secret;

/// Messages per listing page the engine asks for (`$top` of the message listing).
const PAGE_SIZE: u64 = 500;
/// Events and contacts per page of the engine's groupware listings.
const GROUPWARE_PAGE: u64 = 100;
/// Requests a mailbox spends before its messages: the well-known folder lookups.
const FIXED_REQUESTS: u64 = 6;

/// What a run would do (the CLI's `plan --json`, the app's Plan screen).
#[derive(Debug, Clone, Serialize, PartialEq, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct Plan {
    pub users: Vec<PlanUser>,
    /// Guests among them ([`PlanUser::not_migrated`]): listed, never migrated.
    #[ts(type = "number")]
    pub guests: u64,
    /// Users whose mailbox Graph cannot reach (`MailboxNotEnabledForRESTAPI`): not migrated.
    #[ts(type = "number")]
    pub without_mailbox: u64,
    /// Mailboxes with an online archive, which the run does not migrate.
    #[ts(type = "number")]
    pub online_archives: u64,
    /// Mailboxes whose counts an earlier plan took (kept in the state folder), not read now.
    #[ts(type = "number")]
    pub kept_counts: u64,
    /// The domains of the selected members' addresses (primary and aliases) that the tenant
    /// has verified (Graph's `/domains`; all of them when it cannot be read), sorted.
    pub domains: Vec<String>,
    /// Mail folders.
    #[ts(type = "number")]
    pub folders: u64,
    /// Messages (see [`PlanUser::items`]).
    #[ts(type = "number")]
    pub items: u64,
    #[ts(type = "number")]
    pub events: u64,
    #[ts(type = "number")]
    pub contacts: u64,
    #[ts(type = "number")]
    pub tasks: u64,
    /// Messages and events the date limits leave out.
    #[ts(type = "number")]
    pub out_of_range: u64,
    #[ts(type = "number")]
    pub requests: u64,
    /// The estimate of the whole run, in seconds (the largest of `estimate_terms`), and what
    /// it assumes.
    pub estimated_seconds: f64,
    /// The tenant model's terms ([`Plan::estimate`]).
    pub estimate_terms: Estimate,
    /// The term that binds: `mailboxes`, `app limit`, `CPU` or `destination`.
    pub estimate_binds: String,
    #[ts(type = "number")]
    pub parallel_mailboxes: usize,
    #[ts(type = "number")]
    pub assumed_latency_ms: u64,
}

/// One mailbox in the plan. Counts of workloads the run does not select are 0.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct PlanUser {
    pub address: String,
    pub user_principal_name: String,
    /// `false` for an account whose sign-in is blocked (what becomes of it: `action`).
    pub enabled: bool,
    /// Mail folders.
    #[ts(type = "number")]
    pub folders: u64,
    /// Messages in the migrated folders: Graph's `totalItemCount` (every item type), or with
    /// mail date limits the messages inside them.
    #[ts(type = "number")]
    pub items: u64,
    #[ts(type = "number")]
    pub calendars: u64,
    /// Single events and series (a series is one item, as the run writes it).
    #[ts(type = "number")]
    pub events: u64,
    #[ts(type = "number")]
    pub contact_folders: u64,
    #[ts(type = "number")]
    pub contacts: u64,
    /// To Do lists, the flagged-mail list left out.
    #[ts(type = "number")]
    pub task_lists: u64,
    #[ts(type = "number")]
    pub tasks: u64,
    /// Messages and events the date limits leave out.
    #[ts(type = "number")]
    pub out_of_range: u64,
    #[ts(type = "number")]
    pub requests: u64,
    pub estimated_seconds: f64,
    /// Why this mailbox, or one of its workloads, could not be read (e.g. an application
    /// access policy, a missing permission); the run would report the same and go on.
    pub problem: Option<String>,
    /// Why this user is not migrated at all: `guest, not migrated` or `no Exchange mailbox`.
    pub not_migrated: Option<String>,
    /// `Some(true)`: the user has an online archive, which the run does not migrate (`has an
    /// online archive: not migrated, export it separately`); `None`: not known.
    pub online_archive: Option<bool>,
    /// User, shared, room, equipment or guest (`mailboxSettings.userPurpose`).
    #[serde(default)]
    pub kind: MailboxKind,
    /// Graph's `proxyAddresses` (`SMTP:` primary, `smtp:` aliases): with the address and the
    /// domain map, the account's address at an IceWarp destination ([`Plan::decide`]).
    #[serde(default)]
    pub proxy_addresses: Vec<String>,
    /// What a run does with it: [`Plan::decide`] applies the destination and its account
    /// rules; until then a listed mailbox is copied and one not migrated is skipped.
    #[serde(default)]
    pub action: PlanAction,
    /// When these counts were taken (unix seconds): by this plan, or by an earlier one whose
    /// counts were kept in the state folder ([`PlanOptions::refresh`]).
    #[serde(default)]
    #[ts(type = "number | null")]
    pub counted_at: Option<u64>,
}

/// How a plan counts.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Count every mailbox again. Otherwise a mailbox counted before for the same workloads
    /// and date limits (kept in [`RunOptions::state_dir`]) is not read at all.
    pub refresh: bool,
    /// Cancelling it stops the plan at once: no further request leaves, the mailboxes'
    /// pacers are dropped, and the plan ends with [`EngineError::PlanCancelled`]. Mailboxes
    /// counted by then are kept for the next plan. A cancelled token stays cancelled: each
    /// plan takes a new one.
    pub cancel: CancellationToken,
    /// Where the run writes: the estimate's destination term takes its rate
    /// ([`DestinationKind::bytes_per_second`]), and its CPU term the server's CPU when the
    /// server runs on this machine ([`DestinationKind::of`]). Default: an IMAP server
    /// elsewhere.
    pub destination: DestinationKind,
}

/// Discovers the selected mailboxes (batch included) with their folders and item counts for
/// the selected workloads and date limits, and estimates the run. Counts kept by an earlier
/// plan are reused ([`plan_with`] to recount or cancel).
pub async fn plan(
    source: &SourceConfig,
    secret: &Secret,
    options: &RunOptions,
) -> Result<Plan, EngineError> {
    plan_with(source, secret, options, &PlanOptions::default()).await
}

/// [`plan`], counting as `how` says.
pub async fn plan_with(
    source: &SourceConfig,
    secret: &Secret,
    options: &RunOptions,
    how: &PlanOptions,
) -> Result<Plan, EngineError> {
    let counts = std::sync::Mutex::new(MailboxCounts::load(options.state_dir.as_deref()));
    let planned = tokio::select! {
        biased;
        _ = how.cancel.cancelled() => Err(EngineError::PlanCancelled),
        planned = counted_plan(source, secret, options, how, &counts) => planned,
    };
    counts.lock().unwrap_or_else(|p| p.into_inner()).save();
    planned
}

/// [`plan_with`] until cancelled; each mailbox counted goes into `counts` at once.
async fn counted_plan(
    source: &SourceConfig,
    secret: &Secret,
    options: &RunOptions,
    how: &PlanOptions,
    counts: &std::sync::Mutex<MailboxCounts>,
) -> Result<Plan, EngineError> {
    let refresh = how.refresh;
    let (client, selected) = signed_in_users(source, secret, options).await?;
    let verified = users::verified_domains(&client, &Pacer::new(options.pacer.clone()))
        .await
        .ok();
    let domains = verified_only(domains_of(&selected.members), verified.as_deref());

    let settings = &options.pacer;
    let listed = |user: &User| PlanUser {
        address: user.mail.clone().unwrap_or_default(),
        user_principal_name: user.user_principal_name.clone(),
        enabled: user.account_enabled.unwrap_or(true),
        proxy_addresses: user.proxy_addresses.clone(),
        ..PlanUser::default()
    };
    let guests: Vec<PlanUser> = selected
        .guests
        .iter()
        .map(|g| PlanUser {
            not_migrated: Some(GUEST.to_string()),
            kind: MailboxKind::Guest,
            ..listed(g)
        })
        .collect();
    let counted: Vec<(PlanUser, bool)> = futures_util::stream::iter(selected.members)
        .map(|user| {
            let client = &client;
            async move {
                let kept = (!refresh)
                    .then(|| {
                        let counts = counts.lock().unwrap_or_else(|p| p.into_inner());
                        counts.for_plan(&user.id, &options.workloads, &options.limits)
                    })
                    .flatten();
                if let Some(kept) = kept {
                    // The counts as kept; who the user is, as listed now.
                    let now = listed(&user);
                    let row = PlanUser {
                        address: now.address,
                        user_principal_name: now.user_principal_name,
                        enabled: now.enabled,
                        proxy_addresses: now.proxy_addresses,
                        ..kept
                    };
                    return (row, true);
                }
                let planned = count_mailbox(client, settings, options, &user, listed(&user)).await;
                counts.lock().unwrap_or_else(|p| p.into_inner()).keep(
                    &user.id,
                    &options.workloads,
                    &options.limits,
                    &planned,
                );
                (planned, false)
            }
        })
        .buffer_unordered(options.parallel_mailboxes.max(1))
        .collect()
        .await;
    let kept_counts = counted.iter().filter(|(_, kept)| *kept).count() as u64;
    let mut users: Vec<PlanUser> = counted.into_iter().map(|(row, _)| row).collect();
    users.extend(guests);
    users.sort_by(|a, b| a.address.cmp(&b.address));
    for u in &mut users {
        u.action = undecided(u.not_migrated.as_deref());
    }

    let sum = |f: fn(&PlanUser) -> u64| users.iter().map(f).sum::<u64>();
    let mut plan = Plan {
        guests: sum(|u| u64::from(u.not_migrated.as_deref() == Some(GUEST))),
        without_mailbox: sum(|u| u64::from(u.not_migrated.as_deref() == Some(NO_MAILBOX))),
        online_archives: sum(|u| u64::from(u.online_archive == Some(true))),
        kept_counts,
        domains,
        folders: sum(|u| u.folders),
        items: sum(|u| u.items),
        events: sum(|u| u.events),
        contacts: sum(|u| u.contacts),
        tasks: sum(|u| u.tasks),
        out_of_range: sum(|u| u.out_of_range),
        requests: sum(|u| u.requests),
        users,
        estimated_seconds: 0.0,
        estimate_terms: Estimate::default(),
        estimate_binds: String::new(),
        parallel_mailboxes: options.parallel_mailboxes.max(1),
        assumed_latency_ms: ASSUMED_LATENCY.as_millis() as u64,
    };
    let limits = Limits::of_run(&options.pacer, plan.parallel_mailboxes, ASSUMED_LATENCY);
    plan.estimate_terms = plan.estimate(&limits, &Machine::writing_to(how.destination));
    let (binds, seconds) = plan.estimate_terms.seconds();
    plan.estimated_seconds = seconds;
    plan.estimate_binds = binds.to_string();
    Ok(plan)
}

/// Counts one mailbox (`planned`: the user as listed) with its own pacer: the requests its
/// run would make, what its workloads hold, and why anything could not be counted.
async fn count_mailbox(
    client: &GraphClient,
    settings: &PacerSettings,
    options: &RunOptions,
    user: &User,
    mut planned: PlanUser,
) -> PlanUser {
    let pacer = Pacer::new(settings.clone());
    planned.counted_at = Some(crate::progress::unix_ms() / 1000);
    let facts = users::mailbox_facts(client, &pacer, &user.id).await;
    if facts.no_mailbox {
        planned.not_migrated = Some(NO_MAILBOX.to_string());
        return planned;
    }
    planned.online_archive = facts.online_archive;
    planned.kind = MailboxKind::from_purpose(facts.purpose);
    // The run reads the same two: mailboxSettings and the Exchange settings.
    planned.requests += 2;
    let counter = Counter {
        client,
        pacer: &pacer,
        user,
        limits: &options.limits,
    };
    let mut problems = Vec::new();
    for workload in Workload::ALL {
        if !options.workloads.contains(&workload) {
            continue;
        }
        if workload == Workload::Tasks && !counter.client.serves_todo() {
            problems.push(TASKS_LEFT_OUT.to_string());
            continue;
        }
        let counted = match workload {
            Workload::Mail => counter.mail(&mut planned).await,
            Workload::Calendar => counter.calendars(&mut planned).await,
            Workload::Contacts => counter.contacts(&mut planned).await,
            Workload::Tasks => counter.tasks(&mut planned).await,
        };
        if let Err(e) = counted {
            problems.push(match workload {
                Workload::Mail => e.to_string(),
                other => format!("{}: {e}", format!("{other:?}").to_lowercase()),
            });
        }
    }
    planned.problem = (!problems.is_empty()).then(|| problems.join("; "));
    let limits = Limits::of_run(settings, options.parallel_mailboxes, ASSUMED_LATENCY);
    planned.estimated_seconds = mailbox_seconds(planned.requests, &limits);
    planned
}

/// An item listed by id only.
#[derive(Deserialize)]
struct Listed {}

/// A message listed with its date, for the mail limits.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Dated {
    #[serde(default)]
    received_date_time: Option<String>,
}

/// Counts one mailbox's items, each workload into a [`PlanUser`].
struct Counter<'a> {
    client: &'a GraphClient,
    pacer: &'a Pacer,
    user: &'a User,
    limits: &'a DateLimits,
}

impl Counter<'_> {
    /// Pages through `url`: (items `keep` accepts, items it refuses, pages read).
    async fn count<T: DeserializeOwned>(
        &self,
        url: String,
        mut keep: impl FnMut(&T) -> bool,
    ) -> Result<(u64, u64, u64), GraphError> {
        let (mut kept, mut left, mut pages) = (0, 0, 0);
        let mut listing = Pages::<T>::new(self.client, self.pacer, url);
        while let Some(page) = listing.next_page(|_| {}).await {
            let page = page?;
            pages += 1;
            for item in &page.items {
                if keep(item) {
                    kept += 1;
                } else {
                    left += 1;
                }
            }
            // An entry the run could not decode either is still an item the run meets.
            kept += page.bad.len() as u64;
        }
        Ok((kept, left, pages))
    }

    fn url(&self, path: &str) -> String {
        self.client
            .url(&format!("/users/{}{path}", segment(&self.user.id)))
    }

    async fn mail(&self, planned: &mut PlanUser) -> Result<(), GraphError> {
        let (nodes, _bad) = folder_tree(self.client, self.pacer, &self.user.id, |_| {}).await?;
        planned.folders = nodes.len() as u64;
        let mut in_range = Vec::with_capacity(nodes.len());
        for node in &nodes {
            let total = node.folder.total_item_count;
            if total == 0 || (self.limits.mail_since.is_none() && self.limits.mail_until.is_none())
            {
                in_range.push(total);
                continue;
            }
            let url = self.url(&format!(
                "/mailFolders/{}/messages?$select=id,receivedDateTime&$top=1000",
                segment(&node.folder.id)
            ));
            let (kept, left, pages) = self
                .count(url, |m: &Dated| {
                    self.limits.keeps_mail(m.received_date_time.as_deref())
                })
                .await?;
            in_range.push(kept);
            planned.out_of_range += left;
            planned.requests += pages;
        }
        planned.items = in_range.iter().sum();
        planned.requests += mailbox_requests(&nodes, &in_range);
        Ok(())
    }

    async fn calendars(&self, planned: &mut PlanUser) -> Result<(), GraphError> {
        let listed = calendar::all_calendars(self.client, self.pacer, self.user, |_| {}).await?;
        planned.calendars = listed.own.len() as u64;
        // The group listing, then one listing per group.
        let groups: std::collections::HashSet<_> = listed.own.iter().map(|g| &g.group).collect();
        planned.requests += 1 + groups.len() as u64;
        for cal in listed.own.iter().map(|g| &g.calendar) {
            let url = self.url(&format!(
                "/calendars/{}/events?$select=id,type,end,recurrence,hasAttachments&$top=1000",
                segment(&cal.id)
            ));
            // Per kept event: a series' exceptions and an event's attachments are one more
            // request each.
            let mut extra = 0;
            let (kept, left, _) = self
                .count(url, |e: &Event| {
                    let keep = event_in_limits(self.limits, e);
                    if keep {
                        let series = e.kind.as_deref() == Some("seriesMaster");
                        extra += u64::from(series) + u64::from(e.has_attachments == Some(true));
                    }
                    keep
                })
                .await?;
            planned.events += kept;
            planned.out_of_range += left;
            planned.requests += pages_of(kept + left) + extra;
        }
        Ok(())
    }

    async fn contacts(&self, planned: &mut PlanUser) -> Result<(), GraphError> {
        let (folders, _bad) =
            contacts::contact_folders(self.client, self.pacer, &self.user.id, |_| {}).await?;
        planned.contact_folders = folders.len() as u64;
        // The folder listing: one request per folder (its children), the default's included.
        planned.requests += folders.len() as u64;
        for folder in &folders {
            let path = match &folder.id {
                None => "/contacts?$select=id&$top=1000".to_string(),
                Some(id) => format!(
                    "/contactFolders/{}/contacts?$select=id&$top=1000",
                    segment(id)
                ),
            };
            let (kept, _, _) = self.count(self.url(&path), |_: &Listed| true).await?;
            planned.contacts += kept;
            // Listing pages, and each contact's photo.
            planned.requests += pages_of(kept) + kept;
        }
        Ok(())
    }

    async fn tasks(&self, planned: &mut PlanUser) -> Result<(), GraphError> {
        let lists = todo::task_lists(self.client, self.pacer, &self.user.id, |_| {}).await?;
        planned.requests += 1;
        for list in &lists.items {
            if list.wellknown_list_name.as_deref() == Some(todo::FLAGGED_EMAILS) {
                continue;
            }
            planned.task_lists += 1;
            let url = self.url(&format!(
                "/todo/lists/{}/tasks?$select=id&$top=100",
                segment(&list.id)
            ));
            let (kept, _, _) = self.count(url, |_: &Listed| true).await?;
            planned.tasks += kept;
            planned.requests += pages_of(kept);
        }
        Ok(())
    }
}

/// Listing pages the run reads for `items` groupware items (at least one).
fn pages_of(items: u64) -> u64 {
    items.div_ceil(GROUPWARE_PAGE).max(1)
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

/// Graph requests a mailbox's mail needs: the fixed lookups, one delta listing per folder page
/// (every message is listed, whatever the limits), one `$value` per message inside the limits
/// (`in_range`, per node).
fn mailbox_requests(nodes: &[FolderNode], in_range: &[u64]) -> u64 {
    FIXED_REQUESTS
        + nodes
            .iter()
            .zip(in_range)
            .map(|(n, kept)| {
                let items = n.folder.total_item_count;
                1 + kept + items.div_ceil(PAGE_SIZE)
            })
            .sum::<u64>()
}

/// What a run does with one mailbox, from the destination and the account rules (the Plan
/// shows it per mailbox).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(tag = "kind", rename_all = "camelCase")]
#[ts(export)]
pub enum PlanAction {
    /// An IceWarp account is created for it.
    Create,
    /// An IceWarp resource account (a room or equipment, `resources_as = "resource"`) is
    /// created for it: "create resource (room)".
    CreateResource {
        resource: crate::dest::provision::ResourceKind,
    },
    /// Its data goes into an IceWarp account that exists (its password is in the accounts CSV).
    Merge,
    /// Copied into an IMAP server or a local folder (no account is created).
    #[default]
    Copy,
    /// Left out, and why (the rule or the fact that decides it).
    Skip { reason: String },
}

impl Plan {
    /// The tenant model's terms for the mailboxes this plan migrates (every one listed and
    /// not `not_migrated`): its counts, its requests, each message at
    /// [`ASSUMED_MESSAGE_BYTES`].
    pub fn estimate(&self, limits: &Limits, machine: &Machine) -> Estimate {
        let work: Vec<MailboxWork> = self
            .users
            .iter()
            .filter(|u| u.not_migrated.is_none())
            .map(|u| MailboxWork {
                requests: u.requests,
                items: u.items + u.events + u.contacts + u.tasks,
                messages: u.items,
                bytes: u.items * ASSUMED_MESSAGE_BYTES,
            })
            .collect();
        Estimate::of(&work, limits, machine)
    }

    /// Gives each mailbox its action for a destination: with IceWarp's account `rules`,
    /// provisioning's own plan ([`crate::dest::provision::plan`]) decides, from each user's
    /// kind, sign-in and addresses in the plan's domains, mapped and with `*.onmicrosoft.com`
    /// left out as the rules say; an account whose address is in `existing` (the accounts
    /// CSV's, lower case) is merged into, else created. Without rules (IMAP, a folder) every
    /// migrated mailbox is copied.
    pub fn decide(
        &mut self,
        rules: Option<&crate::spec::AccountRules>,
        existing: &BTreeSet<String>,
    ) {
        use crate::dest::provision::{self, AccountAction, DirectoryUser, TenantDomain};
        let rules = match rules {
            Some(rules) => rules.normalized(),
            None => {
                for u in &mut self.users {
                    u.action = undecided(u.not_migrated.as_deref());
                }
                return;
            }
        };
        let domains: Vec<TenantDomain> = self
            .domains
            .iter()
            .map(|d| TenantDomain {
                name: d.clone(),
                is_verified: true,
            })
            .collect();
        // Each listed user by its index: provisioning names users by id. In the run's order
        // (not the Plan's, by address): a contested address goes to the same user in both.
        let mut listed: Vec<(&PlanUser, usize)> = self
            .users
            .iter()
            .enumerate()
            .filter(|(_, u)| u.not_migrated.is_none())
            .map(|(i, u)| (u, i))
            .collect();
        listed.sort_by_cached_key(|(u, _)| crate::config::selection_order(&u.user_principal_name));
        let listed: Vec<DirectoryUser> = listed
            .into_iter()
            .map(|(u, i)| DirectoryUser {
                id: i.to_string(),
                user_principal_name: u.user_principal_name.clone(),
                mail: Some(u.address.clone()).filter(|a| !a.is_empty()),
                display_name: None,
                account_enabled: Some(u.enabled),
                proxy_addresses: u.proxy_addresses.clone(),
                kind: u.kind.or_user(),
            })
            .collect();
        let made = provision::plan(&listed, &[], &domains, &rules);
        let mut actions = std::collections::HashMap::new();
        for account in &made.accounts {
            let action = match account.resource {
                _ if existing.contains(&account.address) => PlanAction::Merge,
                Some(resource) => PlanAction::CreateResource { resource },
                None => PlanAction::Create,
            };
            actions.insert(account.user_id.clone(), action);
        }
        for skipped in made.skipped {
            if let AccountAction::Skipped { reason } = skipped.action {
                actions.insert(skipped.user_id, PlanAction::Skip { reason });
            }
        }
        for (i, u) in self.users.iter_mut().enumerate() {
            u.action = actions
                .remove(&i.to_string())
                .unwrap_or_else(|| undecided(u.not_migrated.as_deref()));
        }
    }
}

/// The action for a mailbox before a destination decides ([`Plan::decide`]): one
/// `not_migrated` (a guest, no mailbox) is skipped with that reason, any other copied.
fn undecided(not_migrated: Option<&str>) -> PlanAction {
    match not_migrated {
        Some(reason) => PlanAction::Skip {
            reason: reason.to_string(),
        },
        None => PlanAction::Copy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The desktop app runs the plan on its async runtime's worker threads.
    #[test]
    fn the_plan_future_can_move_between_threads() {
        fn assert_send<T: Send>(_: &T) {}
        let source = SourceConfig {
            tenant_id: "contoso.onmicrosoft.com".into(),
            client_id: "00000000-0000-0000-0000-000000000001".into(),
            cloud: crate::config::Cloud::Global,
            login_url: None,
            graph_url: None,
            allow_plaintext_loopback: None,
        };
        let secret = Secret::new("s");
        let options = RunOptions::default();
        assert_send(&plan(&source, &secret, &options));
    }

    /// Regression: the Plan said "skip: sign-in blocked" for a shared mailbox whose sign-in is
    /// blocked (as administrators commonly leave it) while provisioning, which follows the
    /// shared mailboxes' rule, created its account. For every kind, sign-in and rule, the
    /// Plan's action is provisioning's.
    #[test]
    fn plan_says_skip_for_a_blocked_shared_mailbox_that_provisioning_creates() {
        use crate::config::AccountRule::{Create, Skip};
        use crate::dest::provision::{self, DirectoryUser, TenantDomain};
        let domains = [TenantDomain {
            name: "contoso.com".into(),
            is_verified: true,
        }];
        let kinds = [
            MailboxKind::User,
            MailboxKind::Shared,
            MailboxKind::Room,
            MailboxKind::Equipment,
            MailboxKind::Unknown,
        ];
        for kind in kinds {
            for enabled in [true, false] {
                for (disabled, shared, resource) in [
                    (Skip, Create, Create),
                    (Create, Skip, Create),
                    (Create, Create, Skip),
                    (Skip, Skip, Skip),
                    (Create, Create, Create),
                ] {
                    let rules = crate::spec::AccountRules {
                        disabled_users: disabled,
                        shared_mailboxes: shared,
                        resource_mailboxes: resource,
                        ..Default::default()
                    };
                    let provisioning = crate::spec::AccountRules {
                        disabled_users: disabled,
                        shared_mailboxes: shared,
                        resource_mailboxes: resource,
                        ..Default::default()
                    };
                    let user = DirectoryUser {
                        id: "1".into(),
                        user_principal_name: "box@contoso.com".into(),
                        mail: Some("box@contoso.com".into()),
                        display_name: None,
                        account_enabled: Some(enabled),
                        proxy_addresses: Vec::new(),
                        kind: kind.or_user(),
                    };
                    let made = provision::plan(&[user], &[], &domains, &provisioning);
                    let mut plan = one_user_plan(PlanUser {
                        address: "box@contoso.com".into(),
                        user_principal_name: "box@contoso.com".into(),
                        enabled,
                        kind,
                        ..PlanUser::default()
                    });
                    plan.decide(Some(&rules), &BTreeSet::new());
                    let action = plan.users[0].action.clone();
                    assert_eq!(
                        matches!(action, PlanAction::Skip { .. }),
                        made.accounts.is_empty(),
                        "{kind:?}, enabled {enabled}, rules {rules:?}: the plan says {action:?}, provisioning {made:?}"
                    );
                }
            }
        }
    }

    /// Issue 14.5: the Plan said "create" for a room or equipment mailbox, which IceWarp now
    /// gets as a resource account; with `resources_as = "user"` it is an ordinary account.
    #[test]
    fn the_plan_says_create_resource_for_rooms_and_equipment() {
        use crate::config::ResourcesAs;
        use crate::dest::provision::ResourceKind;
        for (resources_as, kind, expected) in [
            (
                ResourcesAs::Resource,
                MailboxKind::Room,
                PlanAction::CreateResource {
                    resource: ResourceKind::Room,
                },
            ),
            (
                ResourcesAs::Resource,
                MailboxKind::Equipment,
                PlanAction::CreateResource {
                    resource: ResourceKind::Equipment,
                },
            ),
            (ResourcesAs::Resource, MailboxKind::User, PlanAction::Create),
            (ResourcesAs::User, MailboxKind::Room, PlanAction::Create),
            (
                ResourcesAs::User,
                MailboxKind::Equipment,
                PlanAction::Create,
            ),
        ] {
            let mut plan = one_user_plan(PlanUser {
                address: "box@contoso.com".into(),
                user_principal_name: "box@contoso.com".into(),
                enabled: kind == MailboxKind::User,
                kind,
                ..PlanUser::default()
            });
            let rules = crate::spec::AccountRules {
                resources_as,
                ..Default::default()
            };
            plan.decide(Some(&rules), &BTreeSet::new());
            assert_eq!(plan.users[0].action, expected, "{kind:?}, {resources_as:?}");
        }
    }

    fn one_user_plan(user: PlanUser) -> Plan {
        Plan {
            users: vec![user],
            guests: 0,
            without_mailbox: 0,
            online_archives: 0,
            kept_counts: 0,
            domains: vec!["contoso.com".into(), "contoso.onmicrosoft.com".into()],
            folders: 0,
            items: 0,
            events: 0,
            contacts: 0,
            tasks: 0,
            out_of_range: 0,
            requests: 0,
            estimated_seconds: 0.0,
            estimate_terms: Estimate::default(),
            estimate_binds: String::new(),
            parallel_mailboxes: 1,
            assumed_latency_ms: 250,
        }
    }

    /// Regression: the Plan walked its users in address order while the run provisions them
    /// in the selection's order (userPrincipalName, [`crate::config::selection_order`]), so
    /// when two users claim one destination address the Plan and the run said "already
    /// belongs to another user" about different users. Both name the same loser now.
    #[test]
    fn regression_plan_and_provisioning_name_different_losers_of_a_contested_address() {
        use crate::dest::provision::{self, DirectoryUser, TenantDomain};
        use crate::graph::types::User;
        let user = |id: &str, upn: &str, mail: &str| User {
            id: id.into(),
            user_principal_name: upn.into(),
            mail: Some(mail.into()),
            display_name: None,
            account_enabled: Some(true),
            proxy_addresses: vec![format!("SMTP:{mail}")],
            user_type: None,
        };
        // Both become a@contoso.com through the domain map; address order and
        // userPrincipalName order disagree.
        let listed = vec![
            user("x", "zed@contoso.com", "a@contoso.com"),
            user("y", "amy@contoso.com", "a@contoso.onmicrosoft.com"),
        ];
        let rules = crate::spec::AccountRules {
            domain_map: [("contoso.onmicrosoft.com".into(), "contoso.com".into())].into(),
            ..Default::default()
        };
        let domains: Vec<TenantDomain> = ["contoso.com", "contoso.onmicrosoft.com"]
            .map(|name| TenantDomain {
                name: name.into(),
                is_verified: true,
            })
            .to_vec();

        // The run: the selection's members, provisioned in the order it gives them.
        let selected = super::super::select_mailboxes(
            listed.clone(),
            &crate::config::UserSelection::default(),
        )
        .expect("no batch");
        let directory: Vec<DirectoryUser> =
            selected.members.iter().map(DirectoryUser::from).collect();
        let made = provision::plan(&directory, &[], &domains, &rules.normalized());
        let run_losers: Vec<String> = made
            .skipped
            .iter()
            .filter_map(|s| listed.iter().find(|u| u.id == s.user_id))
            .map(|u| u.user_principal_name.clone())
            .collect();

        // The Plan: its rows as a plan lists them (by address), then decided.
        let mut plan = one_user_plan(PlanUser::default());
        plan.users = listed
            .iter()
            .map(|u| PlanUser {
                address: u.mail.clone().unwrap_or_default(),
                user_principal_name: u.user_principal_name.clone(),
                enabled: true,
                proxy_addresses: u.proxy_addresses.clone(),
                ..PlanUser::default()
            })
            .collect();
        plan.users.sort_by(|a, b| a.address.cmp(&b.address));
        plan.decide(Some(&rules), &BTreeSet::new());
        let plan_losers: Vec<String> = plan
            .users
            .iter()
            .filter(|u| matches!(&u.action, PlanAction::Skip { reason } if reason.contains("already belongs")))
            .map(|u| u.user_principal_name.clone())
            .collect();
        assert_eq!(run_losers, ["zed@contoso.com"], "{made:?}");
        assert_eq!(plan_losers, run_losers, "{:?}", plan.users);
    }

    /// Regression: the Plan said "create" for a user whose only address is in
    /// `*.onmicrosoft.com` (provisioning leaves it out: no address in a migrated domain), and
    /// "create" for one whose account exists under its domain-mapped address (provisioning
    /// merges into it).
    #[test]
    fn plan_says_create_for_an_onmicrosoft_only_user_and_a_domain_mapped_existing_account() {
        let user = |address: &str, proxies: &[&str]| PlanUser {
            address: address.into(),
            user_principal_name: address.into(),
            enabled: true,
            kind: MailboxKind::User,
            proxy_addresses: proxies.iter().map(|p| p.to_string()).collect(),
            ..PlanUser::default()
        };
        let mut plan = one_user_plan(user("kiosk@contoso.onmicrosoft.com", &[]));
        plan.users.push(user(
            "adele@contoso.onmicrosoft.com",
            &["SMTP:adele@contoso.onmicrosoft.com"],
        ));
        plan.users.push(user(
            "megan@contoso.com",
            &[
                "SMTP:megan@contoso.com",
                "smtp:megan@contoso.onmicrosoft.com",
            ],
        ));
        let rules = crate::spec::AccountRules::default();
        assert!(rules.skip_onmicrosoft, "the default leaves them out");
        plan.decide(Some(&rules), &BTreeSet::new());
        let actions: Vec<PlanAction> = plan.users.iter().map(|u| u.action.clone()).collect();
        assert!(
            matches!(&actions[0], PlanAction::Skip { reason } if reason.contains("no address")),
            "{actions:?}"
        );
        assert!(
            matches!(&actions[1], PlanAction::Skip { .. }),
            "{actions:?}"
        );
        assert_eq!(actions[2], PlanAction::Create);
        // Mapped onto contoso.com, Adele's account exists there (the accounts CSV lists it).
        let mapped = crate::spec::AccountRules {
            domain_map: [("Contoso.onmicrosoft.com".into(), "contoso.com".into())].into(),
            ..Default::default()
        };
        let existing: BTreeSet<String> = ["adele@contoso.com".to_string()].into();
        plan.decide(Some(&mapped), &existing);
        let actions: Vec<PlanAction> = plan.users.iter().map(|u| u.action.clone()).collect();
        assert_eq!(
            actions,
            [PlanAction::Create, PlanAction::Merge, PlanAction::Create],
            "{actions:?}"
        );
        // Into IMAP or a folder every one is copied.
        plan.decide(None, &existing);
        assert!(plan.users.iter().all(|u| u.action == PlanAction::Copy));
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
            user_type: None,
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
