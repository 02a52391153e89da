//! Workers: many `m365-migrate worker` processes, on many machines, sharing one PostgreSQL
//! journal as their work queue (issue 18).
//!
//! [`work`] fills the queue from the tenant's user listing (every worker may: a mailbox
//! already queued keeps its state; the order of takes is largest first: by the plan's kept
//! item counts when the state folder has them, else by one read per mailbox as `run` sizes
//! its own, the first of which are sized before the first take and the rest while mailboxes
//! are migrated), then runs `parallel_mailboxes` lease loops. Each takes the next mailbox
//! ([`Journal::take_next_mailbox`]) and migrates it with
//! the same engine ([`super::run`] for that one mailbox) through a journal handle fenced by
//! the lease ([`Journal::fenced`]): every journal write of that mailbox, the intent before
//! each destination write included, commits only while the lease holds. Meanwhile it renews
//! the lease every third of its life, on a pacer's clock. When a renewal or a write finds
//! the lease lost (it expired while the worker was cut off, and another worker took it
//! over), the mailbox's migration is dropped at once, so nothing more is written to the
//! destination for it, and the loss is reported ([`WorkerSummary::lost`]). The mailbox is
//! then finished by the worker that holds it, from the journal, without duplicates.
//!
//! A loop with nothing to take waits while other workers hold live leases (one of them may
//! have died: its mailbox is taken again once its lease expires) and ends when no mailbox is
//! left. A mailbox whose migration stops with an error of its own (the source or the
//! destination failing for it) is marked failed with its reason; errors that every mailbox
//! would meet (sign-in, the journal gone past `outage_wait`) stop the worker.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{
    counts, signed_in_mailboxes, Destination, EngineError, RunControl, RunOptions, Workload,
};
use crate::config::{SourceConfig, UserSelection};
use crate::dest::imap::ConnectionLimit;
use crate::graph::client::GraphClient;
use crate::graph::types::User;
use crate::graph::{Pacer, PacerSettings};
use crate::journal::{Journal, JournalError, JournalLocation, Lease, WorkerProgress};
use crate::progress::{Reporter, Stats};
use crate::secrets::Secret;

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// This worker's name in the journal, unique among the workers (host and process id).
    pub worker: String,
    /// The machine it runs on, for `status`.
    pub host: String,
    /// A lease's life (`[journal] lease_seconds`); renewed every third of it.
    pub lease: Duration,
    /// How each leased mailbox is migrated; `journal` must be the PostgreSQL journal, and
    /// `parallel_mailboxes` leases are held at once.
    pub run: RunOptions,
}

/// What one worker did.
#[derive(Debug, Clone, Default)]
pub struct WorkerSummary {
    /// Mailboxes it finished.
    pub mailboxes: u32,
    pub totals: Stats,
    /// Mailboxes whose lease it lost mid-migration (another worker finishes them).
    pub lost: Vec<String>,
    /// Mailboxes whose migration stopped with an error, with the error.
    pub failed: Vec<(String, String)>,
}

/// The default worker name: `host:pid`.
pub fn default_worker_name() -> (String, String) {
    let host = crate::journal::host_name();
    (format!("{host}:{}", std::process::id()), host)
}

/// Fills the queue, then migrates leased mailboxes until none is left (see the module doc).
pub async fn work(
    source: &SourceConfig,
    secret: &Secret,
    destination: &Destination,
    reporter: Arc<dyn Reporter>,
    control: RunControl,
    options: WorkerOptions,
) -> Result<WorkerSummary, EngineError> {
    let Some(settings) = &options.run.journal else {
        return Err(JournalError::NeedsPostgres.into());
    };
    tracing::debug!(target: "timeline", user = "", "worker starts");
    // A connection per lease loop: one mailbox's journal calls do not wait behind another's.
    let mut settings = settings.clone();
    settings.connections = options.run.parallel_mailboxes.max(1);
    // The journal opens (its connections, its migrations) while the tenant's mailboxes are
    // listed: neither needs the other, and both are round trips.
    let location = JournalLocation::Postgres(Box::new(settings));
    let opening = {
        let location = location.clone();
        tokio::task::spawn_blocking(move || Journal::open_at(&location))
    };
    let (opened, listed) = tokio::join!(
        async {
            let opened = match opening.await {
                Ok(opened) => opened,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                // Not run (the runtime is shutting down): opened here instead.
                Err(_) => Journal::open_at(&location),
            };
            tracing::debug!(target: "timeline", user = "", "journal opened");
            opened
        },
        signed_in_mailboxes(source, secret, &options.run)
    );
    let journal = Arc::new(opened?);
    let (client, users) = listed?;
    tracing::debug!(target: "timeline", user = "", "users listed");
    let beat = WorkerProgress::default();
    journal
        .worker_heartbeat_async(&options.worker, &options.host, beat)
        .await?;
    share_app_budget(&journal, &options).await?;
    let users = fill_queue(users, &options.run, &journal).await?;
    tracing::debug!(target: "timeline", user = "", "queue filled");
    let summary = Mutex::new(WorkerSummary::default());
    let worker = Worker {
        source,
        secret,
        destination,
        reporter,
        control: &control,
        options: &options,
        journal: &journal,
        users,
        client: client.with_download_limit(options.run.max_downloads),
        settled: tokio::sync::Notify::new(),
    };
    let not_sized = if options.run.workloads.contains(&Workload::Mail) {
        journal.unsized_mailboxes()?
    } else {
        Vec::new()
    };
    let (first_wave, sized_first_wave) = tokio::sync::oneshot::channel();
    let sizing = worker.size_queue(not_sized, first_wave);
    let leasing = async {
        // As `run`'s first copy waits for its first sizes: the first take is the largest of
        // them. A sizing that stopped early (its sender dropped) holds nothing back.
        let _ = sized_first_wave.await;
        let loops = (0..options.run.parallel_mailboxes.max(1)).map(|_| worker.lease_loop(&summary));
        futures_util::future::join_all(loops).await
    };
    let (sized, results) = tokio::join!(sizing, leasing);
    for result in results {
        result?;
    }
    sized?;
    Ok(summary.into_inner().unwrap_or_else(|p| p.into_inner()))
}

/// Queues every selected mailbox of `users` (idempotent: one already queued, done or failed
/// keeps its state), sized by the plan's kept item counts when there are any. Returns the
/// users by lower-case address, so each leased mailbox's run needs no listing of its own.
async fn fill_queue(
    users: Vec<User>,
    options: &RunOptions,
    journal: &Journal,
) -> Result<HashMap<String, User>, EngineError> {
    let kept = counts::MailboxCounts::load(options.state_dir.as_deref());
    let mut queue = Vec::with_capacity(users.len());
    for user in &users {
        let Some(address) = user.mail.as_deref() else {
            continue;
        };
        let size = kept
            .items_for_run(&user.id, &options.workloads, &options.limits)
            .unwrap_or(0);
        queue.push((address, size));
    }
    journal.enqueue_mailboxes(&queue).await?;
    let by_address = users
        .into_iter()
        .filter_map(|u| Some((u.mail.as_deref()?.to_lowercase(), u)))
        .collect();
    Ok(by_address)
}

/// Waits `wait` on `pacer`'s clock (the pacer is the only place that waits).
async fn pause(pacer: &Pacer, wait: Duration) {
    pacer.pause(wait);
    pacer.hold_while_paused().await;
}

/// What every lease loop of one worker shares.
struct Worker<'a> {
    source: &'a SourceConfig,
    secret: &'a Secret,
    destination: &'a Destination,
    reporter: Arc<dyn Reporter>,
    control: &'a RunControl,
    options: &'a WorkerOptions,
    journal: &'a Journal,
    /// The tenant's selected users, by lower-case address (from the queue's listing).
    users: HashMap<String, User>,
    /// Signed in once for the worker: every leased mailbox's run uses its token (one sign-in
    /// per worker, not per mailbox) and its download cap (`[run] max_downloads`).
    client: GraphClient,
    /// Told whenever one of this worker's lease loops settles a mailbox (done, failed, lost),
    /// so its idle loops look at the queue again at once instead of after a heartbeat.
    settled: tokio::sync::Notify,
}

impl Worker<'_> {
    /// Sizes the queued mailboxes of unknown size (no plan's count, `not_sized`) as `run` sizes
    /// its own ([`super::read_mailbox_size`], [`super::mailboxes::FACT_READS`] at once), so
    /// takes go largest first without a plan (issue 18: a worker took mailboxes by name, and
    /// a tenant's largest could start last). Sends `first_wave` once the first
    /// `FACT_READS` (or all) are sized; the rest are sized while mailboxes are migrated. A
    /// mailbox that cannot be sized keeps size 0 and is taken after the sized ones; its own
    /// run reports why. The read is not charged to the mailbox's pacer when it runs (perhaps
    /// on another worker): one request of its 10,000 per 10 minutes.
    async fn size_queue(
        &self,
        not_sized: Vec<String>,
        first_wave: tokio::sync::oneshot::Sender<()>,
    ) -> Result<(), EngineError> {
        use futures_util::StreamExt;
        let wave = not_sized.len().min(super::mailboxes::FACT_READS);
        let mut first_wave = Some(first_wave);
        let mut sized = futures_util::stream::iter(not_sized)
            .map(|mailbox| async move {
                let user = self.users.get(&mailbox.to_lowercase());
                let size = match user {
                    Some(user) if !self.control.is_cancelled() => {
                        let limits = &self.options.run.pacer;
                        let (size, _) =
                            super::read_mailbox_size(&self.client, limits, &user.id).await;
                        size.unwrap_or(0)
                    }
                    _ => 0,
                };
                (mailbox, size)
            })
            .buffer_unordered(super::mailboxes::FACT_READS);
        if wave == 0 {
            first_wave.take().map(|f| f.send(()));
        }
        // The first wave's sizes are queued in one call, then each as it is read.
        let mut first: Vec<(String, u64)> = Vec::with_capacity(wave);
        let mut done = 0;
        while let Some((mailbox, size)) = sized.next().await {
            done += 1;
            if size > 0 {
                first.push((mailbox, size));
            }
            if done < wave {
                continue;
            }
            let queue: Vec<(&str, u64)> = first.iter().map(|(m, s)| (m.as_str(), *s)).collect();
            self.journal.enqueue_mailboxes(&queue).await?;
            first.clear();
            first_wave.take().map(|f| f.send(()));
        }
        Ok(())
    }

    /// One lease at a time until no mailbox is left.
    async fn lease_loop(&self, summary: &Mutex<WorkerSummary>) -> Result<(), EngineError> {
        let (control, options, journal) = (self.control, self.options, self.journal);
        let pacer = Pacer::new(PacerSettings::default());
        let beat = (options.lease / 3).max(Duration::from_millis(100));
        while !control.is_cancelled() {
            // Registered before the queue is read, so a mailbox another loop of this worker
            // settles meanwhile still ends the wait below.
            let settled = self.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            let taken = journal
                .take_next_mailbox_async(&options.worker, options.lease)
                .await?;
            let Some(lease) = taken else {
                if journal.mailboxes_left_async().await? == 0 {
                    break;
                }
                // Others hold the rest; one of them may have died: its lease expires, and the
                // mailbox is taken again. When the one still held is this worker's own, its
                // end ends the wait (the worker exits as soon as the queue is done).
                let beat_due = tokio::select! {
                    () = pause(&pacer, beat) => true,
                    () = &mut settled => false,
                };
                // A mailbox that settled woke every idle loop: the loop that settled it has
                // just beaten for the worker, so the others only look at the queue again.
                if beat_due {
                    journal
                        .worker_heartbeat_async(
                            &options.worker,
                            &options.host,
                            WorkerProgress::default(),
                        )
                        .await?;
                    share_app_budget(journal, options).await?;
                }
                continue;
            };
            tracing::info!(mailbox = %lease.mailbox, token = lease.fencing_token, "leased");
            let outcome = self.migrate_leased(&lease, &pacer).await;
            tracing::debug!(target: "timeline", user = %lease.mailbox, "migrated");
            let mut done = WorkerProgress::default();
            match outcome {
                Ok(stats) if control.is_cancelled() => {
                    // Stopped: the lease expires and the mailbox is resumed from the journal.
                    summary
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .totals
                        .add(&stats);
                }
                Ok(stats) => match journal.finish_mailbox_async(&lease).await {
                    Ok(()) => {
                        tracing::debug!(target: "timeline", user = %lease.mailbox, "mailbox finished");
                        done = WorkerProgress {
                            mailboxes: 1,
                            messages: stats.messages,
                            bytes: stats.bytes,
                        };
                        let mut s = summary.lock().unwrap_or_else(|p| p.into_inner());
                        s.mailboxes += 1;
                        s.totals.add(&stats);
                    }
                    Err(JournalError::LeaseLost { .. }) => lost(summary, &lease),
                    Err(e) => return Err(e.into()),
                },
                Err(EngineError::Journal(JournalError::LeaseLost { .. })) => lost(summary, &lease),
                Err(e) if stops_the_worker(&e) => return Err(e),
                Err(e) => {
                    let reason = e.to_string();
                    tracing::warn!(mailbox = %lease.mailbox, "the mailbox failed: {reason}");
                    match journal.fail_mailbox_async(&lease, &reason).await {
                        Ok(()) => {}
                        Err(JournalError::LeaseLost { .. }) => {}
                        Err(e) => return Err(e.into()),
                    }
                    summary
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .failed
                        .push((lease.mailbox.clone(), reason));
                }
            }
            journal
                .worker_heartbeat_async(&options.worker, &options.host, done)
                .await?;
            self.settled.notify_waiters();
        }
        Ok(())
    }

    /// Migrates the leased mailbox while renewing the lease; a lost lease drops the migration
    /// at once (see the module doc).
    async fn migrate_leased(&self, lease: &Lease, pacer: &Pacer) -> Result<Stats, EngineError> {
        let (options, journal) = (self.options, self.journal);
        let live = share_app_budget(journal, options).await?;
        let destination = &with_share(self.destination, live, options.run.parallel_mailboxes);
        let fenced = Arc::new(journal.fenced(lease, options.lease)?);
        let run_options = RunOptions {
            users: UserSelection {
                include: vec![lease.mailbox.clone()],
                ..UserSelection::default()
            },
            parallel_mailboxes: 1,
            leased_journal: Some(fenced.clone()),
            // Queued by another worker from a listing this one did not see: listed again.
            listed_users: self
                .users
                .get(&lease.mailbox.to_lowercase())
                .map(|u| vec![u.clone()]),
            signed_in: Some(self.client.clone()),
            leased_size: Some(lease.size),
            ..options.run.clone()
        };
        let migrate = super::run(
            self.source,
            self.secret,
            destination,
            self.reporter.clone(),
            self.control.clone(),
            run_options,
        );
        let heartbeat = async {
            loop {
                pause(pacer, options.lease / 3).await;
                if let Err(e) = fenced.renew_fence(options.lease) {
                    return e;
                }
                let beat = WorkerProgress::default();
                let beat = journal.worker_heartbeat_async(&options.worker, &options.host, beat);
                if let Err(e) = beat.await {
                    tracing::warn!("cannot record the worker's heartbeat: {e}");
                }
                if let Err(e) = share_app_budget(journal, options).await {
                    tracing::warn!("cannot count the live workers: {e}");
                }
            }
        };
        tokio::select! {
            result = migrate => result.map(|summary| summary.totals),
            lost = heartbeat => Err(EngineError::Journal(lost)),
        }
    }
}

fn lost(summary: &Mutex<WorkerSummary>, lease: &Lease) {
    tracing::warn!(
        mailbox = %lease.mailbox,
        "the lease was lost (it expired and another worker took the mailbox over): this worker stopped writing for it"
    );
    summary
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .lost
        .push(lease.mailbox.clone());
}

/// Errors every further mailbox would meet too.
fn stops_the_worker(e: &EngineError) -> bool {
    matches!(
        e,
        EngineError::Auth(_) | EngineError::Http(_) | EngineError::Journal(_)
    )
}

/// Counts the live workers (heartbeats younger than a lease, this one included) and limits
/// this worker to its share of the app's Graph budget across the tenant (`[run]
/// app_requests_per_window` over them), so the fleet together stays under the limit Graph
/// sets per app ([`crate::graph::pacer::AppBudget`]). Returns the count, at least one.
async fn share_app_budget(journal: &Journal, options: &WorkerOptions) -> Result<u64, JournalError> {
    let live = journal.live_workers_async(options.lease).await?.max(1);
    if let Some(app) = &options.run.pacer.app {
        app.share_among(live);
    }
    Ok(live)
}

/// `destination` with one leased mailbox's share of the destination's connection cap
/// (`max_connections`, the whole fleet's): the cap over the live workers (heartbeats younger
/// than a lease) and each worker's `parallel_mailboxes`, at least one connection.
fn with_share(destination: &Destination, live_workers: u64, parallel: usize) -> Destination {
    let slices = usize::try_from(live_workers)
        .unwrap_or(usize::MAX)
        .saturating_mul(parallel.max(1));
    let share = |limit: &mut ConnectionLimit| {
        *limit = ConnectionLimit::new(limit.max() / slices.max(1));
    };
    let mut shared = destination.clone();
    match &mut shared {
        Destination::Imap { settings, .. } => share(&mut settings.connection_limit),
        Destination::IceWarp(d) => share(&mut d.imap.connection_limit),
        Destination::Folder(_) => {}
    }
    shared
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dest::imap::{ImapSettings, Security};

    #[test]
    fn each_leased_mailbox_gets_its_share_of_the_connection_cap() {
        let mut settings = ImapSettings::new("imap.example", 993, Security::Tls);
        settings.connection_limit = ConnectionLimit::new(24);
        let imap = Destination::Imap {
            settings,
            logins: super::super::ImapLogins::Accounts(Default::default()),
            dav: None,
        };
        let cap = |d: &Destination| match d {
            Destination::Imap { settings, .. } => settings.connection_limit.max(),
            _ => 0,
        };
        assert_eq!(
            cap(&with_share(&imap, 3, 2)),
            4,
            "24 over 3 workers of 2 leases"
        );
        assert_eq!(
            cap(&with_share(&imap, 1, 1)),
            24,
            "a lone worker with one lease"
        );
        assert_eq!(cap(&with_share(&imap, 100, 2)), 1, "never none");
    }
}
