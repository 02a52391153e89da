//! One picture of a whole run, built from the event stream: what the CLI's overall bar and the
//! app's progress screen show, and what the app hands a reloaded window.
//!
//! Every mailbox is known from the start ([`ProgressEvent::RunPlanned`]), so the mailbox
//! counts never move backwards and the ETA covers queued mailboxes too. Item totals come from
//! the plan's cached counts where a mailbox has them (fixed from the start), otherwise from
//! the mailbox's own listings as they arrive. The rate is measured over the last
//! [`RATE_WINDOW_MS`] of processed items.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use super::{ProgressEvent, Reporter};

/// The span over which the rate is measured, in milliseconds.
pub const RATE_WINDOW_MS: u64 = 60_000;

/// An item event that changes no mailbox's state brings the derived figures (totals, bar,
/// rate, ETA: passes over every mailbox) up to date at most this often; [`RunSnapshot::at`]
/// and every other event always do. At tenant scale a pass per item would cost more than
/// the item.
const SETTLE_EVERY_MS: u64 = 250;

/// `item` of an [`ProgressEvent::ItemFailed`] that stands for the whole mailbox (its folders
/// could not be listed, its destination could not be opened, its account not provisioned).
const WHOLE_MAILBOX: [&str; 2] = ["(mailbox)", "(provision)"];

/// A mailbox the run will process, in the order the engine starts them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct PlannedMailbox {
    /// The address the run's events name the mailbox by.
    pub user: String,
    /// Items a plan counted for it (kept in the state folder); `None` when never counted for
    /// the run's workloads and date limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional, type = "number")]
    pub items: Option<u64>,
}

/// Where a mailbox is in the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub enum MailboxState {
    #[default]
    Queued,
    Running,
    /// Finished; some of its items may have failed (`itemsFailed`).
    Done,
    /// The mailbox as a whole could not be migrated (its other workloads may have been).
    Failed,
    /// Not migrated by design (no Exchange mailbox).
    Skipped,
    /// Started, then the run stopped before it finished (Stop, or a run that ended while it
    /// was copying): part of it is copied, the next pass resumes it.
    Stopped,
}

impl MailboxState {
    fn finished(self) -> bool {
        matches!(
            self,
            MailboxState::Done | MailboxState::Failed | MailboxState::Skipped
        )
    }
}

/// One mailbox's progress. Times are unix seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct MailboxProgress {
    pub user: String,
    pub state: MailboxState,
    /// The plan's count while the mailbox runs (raised if more items than counted are
    /// processed), or what its listings announced so far; once finished, what was processed.
    #[ts(type = "number")]
    pub items_total: u64,
    #[ts(type = "number")]
    pub items_done: u64,
    #[ts(type = "number")]
    pub items_failed: u64,
    #[ts(type = "number")]
    pub bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional, type = "number")]
    pub started_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional, type = "number")]
    pub finished_at: Option<u64>,
    /// The plan's count.
    #[serde(skip)]
    #[ts(skip)]
    planned: Option<u64>,
    /// Items its listings announced.
    #[serde(skip)]
    #[ts(skip)]
    listed: u64,
    /// An item failure named the whole mailbox.
    #[serde(skip)]
    #[ts(skip)]
    whole_failed: bool,
    /// The highest share of it ever shown, so its part of the bar never shrinks.
    #[serde(skip)]
    #[ts(skip)]
    peak: f64,
}

impl MailboxProgress {
    fn processed(&self) -> u64 {
        self.items_done + self.items_failed
    }

    /// Its total as defined on [`MailboxProgress::items_total`].
    fn total(&self) -> u64 {
        if self.state.finished() {
            return self.processed();
        }
        // With a plan count, later listings do not move the total (only items processed
        // beyond the count do, one for one, which never moves the bar back).
        self.planned.unwrap_or(self.listed).max(self.processed())
    }

    /// Whether its size is known: counted by a plan, listed, or finished.
    fn sized(&self) -> bool {
        self.planned.is_some() || self.state != MailboxState::Queued
    }

    fn share(&mut self) -> f64 {
        let share = if self.state.finished() {
            1.0
        } else {
            match self.total() {
                0 => 0.0,
                total => self.processed() as f64 / total as f64,
            }
        };
        self.peak = self.peak.max(share);
        self.peak
    }
}

/// The whole run at one moment (see the module doc). Times are unix seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct RunSnapshot {
    #[ts(type = "number")]
    pub started_at: u64,
    pub mailboxes_total: u32,
    pub mailboxes_done: u32,
    pub mailboxes_running: u32,
    pub mailboxes_queued: u32,
    pub mailboxes_failed: u32,
    /// Mailboxes not migrated by design (`state: "skipped"`).
    pub mailboxes_skipped: u32,
    /// Mailboxes the run stopped part-way (`state: "stopped"`).
    pub mailboxes_stopped: u32,
    #[ts(type = "number")]
    pub items_total: u64,
    #[ts(type = "number")]
    pub items_done: u64,
    #[ts(type = "number")]
    pub items_failed: u64,
    #[ts(type = "number")]
    pub bytes_done: u64,
    /// Items processed per second over the last minute; 0 while unknown.
    pub items_per_second: f64,
    /// Seconds left at the measured rate, queued mailboxes included; absent while the rate or
    /// the size of what is left is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub eta_seconds: Option<f64>,
    /// How much of the run is done, 0 to 1, for a bar over the whole run; it never goes
    /// back. Weighted by items when every mailbox has a plan count, else by mailboxes.
    pub fraction: f64,
    /// In the order the engine starts them.
    pub mailboxes: Vec<MailboxProgress>,
    /// Processed items per second of the rate window: (unix ms of the second, items).
    #[serde(skip)]
    #[ts(skip)]
    window: VecDeque<(u64, u64)>,
    #[serde(skip)]
    #[ts(skip)]
    index: HashMap<String, usize>,
    #[serde(skip)]
    #[ts(skip)]
    started_ms: u64,
    /// The fraction is weighted by items: every mailbox had a plan count when planned.
    #[serde(skip)]
    #[ts(skip)]
    by_items: bool,
    #[serde(skip)]
    #[ts(skip)]
    finished: bool,
    /// When the derived figures were last brought up to date (unix ms).
    #[serde(skip)]
    #[ts(skip)]
    settled_ms: u64,
}

impl RunSnapshot {
    /// A run starting at `now_ms` (unix milliseconds) over `planned`, all of them queued.
    pub fn new(planned: &[PlannedMailbox], now_ms: u64) -> Self {
        let mut snapshot = RunSnapshot {
            started_at: now_ms / 1000,
            started_ms: now_ms,
            ..RunSnapshot::default()
        };
        snapshot.plan(planned);
        snapshot.settle(now_ms);
        snapshot
    }

    /// Applies one event at the current time ([`RunSnapshot::apply_at`]).
    pub fn apply(&mut self, event: &ProgressEvent) {
        self.apply_at(event, unix_ms());
    }

    /// Applies one event that happened at `now_ms` (unix milliseconds). Pure: the same
    /// events at the same times give the same snapshot. Counts of items and mailboxes are
    /// current after each event; the derived figures (totals, bar, rate, ETA) at most
    /// [`SETTLE_EVERY_MS`] behind while only items flow, and current after [`Self::at`].
    pub fn apply_at(&mut self, event: &ProgressEvent, now_ms: u64) {
        if self.started_ms == 0 {
            self.started_ms = now_ms;
            self.started_at = now_ms / 1000;
        }
        let now = now_ms / 1000;
        let mut per_item = false;
        match event {
            ProgressEvent::RunPlanned { mailboxes } => self.plan(mailboxes),
            ProgressEvent::UserStarted { user, messages, .. } => {
                let m = self.mailbox(user);
                m.listed += messages;
                start(m, now);
            }
            ProgressEvent::ItemsListed { user, items } => {
                let m = self.mailbox(user);
                m.listed += items;
                start(m, now);
            }
            ProgressEvent::ItemDone { user, bytes, .. } => {
                self.items_done += 1;
                self.bytes_done += bytes;
                self.count_processed(now_ms);
                let m = self.mailbox(user);
                m.items_done += 1;
                m.bytes += bytes;
                per_item = m.state != MailboxState::Queued;
                start(m, now);
            }
            ProgressEvent::ItemFailed { user, item, .. } => {
                self.items_failed += 1;
                self.count_processed(now_ms);
                // Failures of what is not a mailbox (the directory, a group) count for the
                // run only.
                per_item = true;
                if let Some(&i) = self.index.get(user) {
                    let m = &mut self.mailboxes[i];
                    m.items_failed += 1;
                    if WHOLE_MAILBOX.contains(&item.as_str()) {
                        m.whole_failed = true;
                        per_item = false;
                        if m.state == MailboxState::Queued {
                            // It will not start.
                            m.state = MailboxState::Failed;
                            m.finished_at = Some(now);
                        }
                    }
                }
            }
            ProgressEvent::NotMigrated { user, reason }
                if [
                    crate::engine::NO_MAILBOX,
                    crate::engine::GUEST,
                    crate::dest::provision::icewarp::RESOURCE_LOGIN_REFUSED,
                ]
                .contains(&reason.as_str()) =>
            {
                if let Some(&i) = self.index.get(user) {
                    let m = &mut self.mailboxes[i];
                    m.state = MailboxState::Skipped;
                    m.finished_at = Some(now);
                }
            }
            ProgressEvent::UserFinished { user, .. } => {
                let m = self.mailbox(user);
                if m.state != MailboxState::Skipped {
                    m.state = if m.whole_failed {
                        MailboxState::Failed
                    } else {
                        MailboxState::Done
                    };
                }
                m.started_at.get_or_insert(now);
                m.finished_at = Some(now);
            }
            ProgressEvent::RunFinished { .. } => {
                self.finished = true;
                // No mailbox runs once the run has ended: one not finished by then was stopped.
                for m in &mut self.mailboxes {
                    if m.state == MailboxState::Running {
                        m.state = MailboxState::Stopped;
                    }
                }
            }
            _ => {}
        }
        if !per_item || now_ms >= self.settled_ms + SETTLE_EVERY_MS {
            self.settle(now_ms);
        }
    }

    /// Brings the rate and the ETA to `now_ms` without an event (a front end asking while
    /// nothing moves).
    pub fn at(&mut self, now_ms: u64) {
        self.settle(now_ms);
    }

    /// Adds the planned mailboxes not yet known, in order, and their plan counts.
    fn plan(&mut self, planned: &[PlannedMailbox]) {
        self.reindex();
        for p in planned {
            let m = self.mailbox(&p.user);
            if p.items.is_some() {
                m.planned = p.items;
            }
        }
        self.by_items = self.mailboxes.iter().all(|m| m.planned.is_some());
    }

    /// The mailbox named `user`; one the plan did not name joins the run at the end.
    fn mailbox(&mut self, user: &str) -> &mut MailboxProgress {
        let i = match self.index.get(user) {
            Some(&i) => i,
            None => {
                self.mailboxes.push(MailboxProgress {
                    user: user.to_string(),
                    ..MailboxProgress::default()
                });
                self.index
                    .insert(user.to_string(), self.mailboxes.len() - 1);
                self.mailboxes.len() - 1
            }
        };
        &mut self.mailboxes[i]
    }

    /// After deserializing, the index by user is rebuilt.
    fn reindex(&mut self) {
        if self.index.len() != self.mailboxes.len() {
            self.index = (self.mailboxes.iter().enumerate())
                .map(|(i, m)| (m.user.clone(), i))
                .collect();
        }
    }

    fn count_processed(&mut self, now_ms: u64) {
        let second = now_ms - now_ms % 1000;
        match self.window.back_mut() {
            Some((at, n)) if *at == second => *n += 1,
            _ => self.window.push_back((second, 1)),
        }
    }

    /// Recomputes the counts, totals, rate, ETA and fraction.
    fn settle(&mut self, now_ms: u64) {
        self.settled_ms = now_ms;
        self.reindex();
        let count = |state| (self.mailboxes.iter()).filter(|m| m.state == state).count() as u32;
        self.mailboxes_total = self.mailboxes.len() as u32;
        self.mailboxes_done = count(MailboxState::Done);
        self.mailboxes_running = count(MailboxState::Running);
        self.mailboxes_queued = count(MailboxState::Queued);
        self.mailboxes_failed = count(MailboxState::Failed);
        self.mailboxes_skipped = count(MailboxState::Skipped);
        self.mailboxes_stopped = count(MailboxState::Stopped);
        for m in &mut self.mailboxes {
            m.items_total = m.total();
        }
        self.items_total = self.mailboxes.iter().map(|m| m.items_total).sum();

        while let Some(&(at, _)) = self.window.front() {
            if at + RATE_WINDOW_MS <= now_ms {
                self.window.pop_front();
            } else {
                break;
            }
        }
        let in_window: u64 = self.window.iter().map(|(_, n)| n).sum();
        // Over the last minute, or since the start when the run is younger; at least a
        // second, so the first items do not read as a burst.
        let span_ms = now_ms
            .saturating_sub(self.started_ms)
            .clamp(1000, RATE_WINDOW_MS);
        self.items_per_second = in_window as f64 * 1000.0 / span_ms as f64;
        self.eta_seconds = self.eta();

        let fraction = if self.mailboxes.is_empty() {
            0.0
        } else if self.by_items {
            let processed: u64 = self.mailboxes.iter().map(MailboxProgress::processed).sum();
            if self.items_total == 0 {
                0.0
            } else {
                processed as f64 / self.items_total as f64
            }
        } else {
            let shares: f64 = self.mailboxes.iter_mut().map(MailboxProgress::share).sum();
            shares / self.mailboxes.len() as f64
        };
        // Every mailbox finished is the whole bar, however the items added up.
        let fraction =
            if self.mailboxes.iter().all(|m| m.state.finished()) && !self.mailboxes.is_empty() {
                1.0
            } else {
                fraction.min(1.0)
            };
        self.fraction = self.fraction.max(fraction);
    }

    /// Items left over the measured rate. Queued mailboxes without a count are taken at the
    /// mean size of the others.
    fn eta(&self) -> Option<f64> {
        if self.finished || self.items_per_second <= 0.0 {
            return None;
        }
        let (sized, unsized_): (Vec<&MailboxProgress>, Vec<&MailboxProgress>) =
            self.mailboxes.iter().partition(|m| m.sized());
        let left = |m: &&MailboxProgress| m.items_total.saturating_sub(m.processed());
        let mut remaining = sized.iter().map(left).sum::<u64>() as f64;
        if !unsized_.is_empty() {
            if sized.is_empty() {
                return None;
            }
            let mean = sized.iter().map(|m| m.items_total).sum::<u64>() as f64 / sized.len() as f64;
            remaining += mean * unsized_.len() as f64;
        }
        Some(remaining / self.items_per_second)
    }
}

/// A reporter that keeps the run's snapshot and passes every event on to `inner`: what a
/// front end holds to say where the run is at any moment (after a window reload too).
pub struct SnapshotReporter<R> {
    inner: R,
    snapshot: Mutex<RunSnapshot>,
}

impl<R: Reporter> SnapshotReporter<R> {
    pub fn new(inner: R) -> Self {
        SnapshotReporter {
            inner,
            snapshot: Mutex::new(RunSnapshot::default()),
        }
    }

    /// The run as of now (rate and ETA brought to this moment).
    pub fn snapshot(&self) -> RunSnapshot {
        let mut snapshot = self
            .snapshot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        snapshot.at(unix_ms());
        snapshot
    }
}

impl<R: Reporter> Reporter for SnapshotReporter<R> {
    fn report(&self, event: ProgressEvent) {
        (self.snapshot.lock().unwrap_or_else(|p| p.into_inner())).apply(&event);
        self.inner.report(event);
    }
}

/// A mailbox that reports work is running (unless it already finished).
fn start(m: &mut MailboxProgress, now: u64) {
    if m.state == MailboxState::Queued {
        m.state = MailboxState::Running;
        m.started_at = Some(now);
    }
}

/// Now, in unix milliseconds.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Stats;

    const START: u64 = 1_800_000_000_000;

    fn failed(user: &str, item: &str) -> ProgressEvent {
        // From JSON, so fields added to the event later keep this test as it is.
        serde_json::from_value(serde_json::json!({
            "kind": "itemFailed", "user": user, "folder": "Inbox", "item": item, "reason": "x"
        }))
        .expect("an item failure")
    }

    /// 200 mailboxes, 8 at a time, in the plan's order; each announces `size(i)` messages when
    /// it starts and, halfway, a groupware listing of `extra(i)` more. Every 20th item fails.
    /// One event per 50 ms.
    fn a_run(size: impl Fn(usize) -> u64, extra: impl Fn(usize) -> u64) -> Vec<ProgressEvent> {
        let users: Vec<String> = (0..200).map(|i| format!("u{i:03}@contoso.com")).collect();
        let mut events = vec![ProgressEvent::RunStarted { users: 200 }];
        let mut next = 0;
        let mut running: Vec<(usize, u64, u64)> = Vec::new(); // (mailbox, left, listed later)
        let mut n = 0u64;
        while next < users.len() || !running.is_empty() {
            while running.len() < 8 && next < users.len() {
                events.push(ProgressEvent::UserStarted {
                    user: users[next].clone(),
                    folders: 3,
                    messages: size(next),
                });
                running.push((next, size(next), extra(next)));
                next += 1;
            }
            // Round-robin over the running mailboxes, one item each.
            let mut finished = Vec::new();
            for (slot, (i, left, later)) in running.iter_mut().enumerate() {
                if *left == 0 && *later > 0 {
                    events.push(ProgressEvent::ItemsListed {
                        user: users[*i].clone(),
                        items: *later,
                    });
                    *left = *later;
                    *later = 0;
                }
                if *left == 0 {
                    events.push(ProgressEvent::UserFinished {
                        user: users[*i].clone(),
                        stats: Stats::default(),
                    });
                    finished.push(slot);
                    continue;
                }
                n += 1;
                events.push(if n.is_multiple_of(20) {
                    failed(&users[*i], "AAMk")
                } else {
                    ProgressEvent::ItemDone {
                        user: users[*i].clone(),
                        bytes: 100,
                        skipped: false,
                    }
                });
                *left -= 1;
            }
            for slot in finished.into_iter().rev() {
                running.remove(slot);
            }
        }
        events
    }

    fn planned(items: impl Fn(usize) -> Option<u64>) -> Vec<PlannedMailbox> {
        (0..200)
            .map(|i| PlannedMailbox {
                user: format!("u{i:03}@contoso.com"),
                items: items(i),
            })
            .collect()
    }

    /// Applies the run's events 50 ms apart and checks what must hold at every step.
    fn replay(mut snapshot: RunSnapshot, events: &[ProgressEvent]) -> RunSnapshot {
        let mut last_fraction = 0.0;
        let mut processed = 0;
        for (k, event) in events.iter().enumerate() {
            snapshot.apply_at(event, START + 50 * k as u64);
            // As a front end reads it (SnapshotReporter::snapshot).
            snapshot.at(START + 50 * k as u64);
            assert!(
                snapshot.fraction >= last_fraction,
                "the bar went back at event {k} ({event:?}): {last_fraction} -> {}",
                snapshot.fraction
            );
            last_fraction = snapshot.fraction;
            assert_eq!(snapshot.mailboxes_total, 200, "at event {k}");
            assert_eq!(
                snapshot.mailboxes_done
                    + snapshot.mailboxes_running
                    + snapshot.mailboxes_queued
                    + snapshot.mailboxes_failed
                    + snapshot.mailboxes_skipped
                    + snapshot.mailboxes_stopped,
                200
            );
            assert!(snapshot.mailboxes_running <= 8, "at event {k}");
            if matches!(
                event,
                ProgressEvent::ItemDone { .. } | ProgressEvent::ItemFailed { .. }
            ) {
                processed += 1;
                assert!(snapshot.items_per_second > 0.0);
                if processed > 1 {
                    let eta = snapshot.eta_seconds.expect("an ETA once items flow");
                    assert!(eta.is_finite() && eta >= 0.0, "{eta}");
                }
            }
        }
        snapshot
    }

    /// At tenant scale each item event passed over every mailbox; item events now bring
    /// the derived figures up to date at most every SETTLE_EVERY_MS, and `at` always does.
    #[test]
    fn item_counts_are_current_at_once_and_the_bar_after_at() {
        let two = [("a@contoso.com", 10), ("b@contoso.com", 10)].map(|(u, n)| PlannedMailbox {
            user: u.to_string(),
            items: Some(n),
        });
        let mut s = RunSnapshot::new(&two, START);
        let started = ProgressEvent::UserStarted {
            user: "a@contoso.com".into(),
            folders: 1,
            messages: 10,
        };
        s.apply_at(&started, START);
        for k in 1..=5 {
            let done = ProgressEvent::ItemDone {
                user: "a@contoso.com".into(),
                bytes: 1,
                skipped: false,
            };
            s.apply_at(&done, START + 10 * k);
        }
        assert_eq!(
            (s.items_done, s.mailboxes_running, s.mailboxes_queued),
            (5, 1, 1)
        );
        s.at(START + 60);
        assert_eq!(s.fraction, 0.25);
        assert!(s.items_per_second > 0.0);
    }

    #[test]
    fn with_plan_counts_the_bar_and_the_totals_never_go_back_while_mailboxes_start_late() {
        // The plan counted 30 + i % 7 items each; the mailboxes announce their messages, and
        // later calendars, that add up to the count, except mailbox 5 which got 4 more mails.
        let size = |i: usize| 20 + (i % 7) as u64 + u64::from(i == 5) * 4;
        let events = a_run(size, |_| 10);
        let start = RunSnapshot::new(&planned(|i| Some(30 + (i % 7) as u64)), START);
        assert_eq!(start.mailboxes_queued, 200);
        let fixed_total: u64 = (0..200).map(|i| 30 + (i % 7) as u64).sum();
        assert_eq!(
            start.items_total, fixed_total,
            "the plan fixes the total at the start"
        );
        assert_eq!(start.eta_seconds, None, "no rate yet");

        let mut last_done_share = 0.0;
        let mut snapshot = start.clone();
        for (k, event) in events.iter().enumerate() {
            snapshot.apply_at(event, START + 50 * k as u64);
            // As a front end reads it (SnapshotReporter::snapshot).
            snapshot.at(START + 50 * k as u64);
            let share =
                (snapshot.items_done + snapshot.items_failed) as f64 / snapshot.items_total as f64;
            assert!(share >= last_done_share, "items share went back at {k}");
            last_done_share = share;
            // The plan's total throughout; mailbox 5's 4 extra mails add one each as processed.
            assert!(
                (fixed_total..=fixed_total + 4).contains(&snapshot.items_total),
                "at {k}: {}",
                snapshot.items_total
            );
        }
        let end = replay(start, &events);
        let items: u64 = (0..200).map(|i| size(i) + 10).sum();
        assert_eq!(end.mailboxes_done, 200);
        assert_eq!((end.mailboxes_running, end.mailboxes_queued), (0, 0));
        assert_eq!(end.items_done + end.items_failed, items);
        assert_eq!(end.items_failed, items / 20);
        assert_eq!(end.items_total, items);
        assert_eq!(end.bytes_done, end.items_done * 100);
        assert_eq!(end.fraction, 1.0);
    }

    #[test]
    fn without_plan_counts_the_bar_never_goes_back_and_the_eta_covers_queued_mailboxes() {
        let events = a_run(|i| 5 + (i % 11) as u64, |i| (i % 3) as u64 * 4);
        let start = RunSnapshot::new(&planned(|_| None), START);
        assert_eq!((start.items_total, start.fraction), (0, 0.0));

        // Early on, 8 mailboxes started and 192 queued: the ETA counts the queued ones at the
        // started ones' mean size, so it is far longer than the started ones' remainder.
        let mut early = start.clone();
        for (k, event) in events.iter().take(40).enumerate() {
            early.apply_at(event, START + 50 * k as u64);
        }
        assert_eq!(early.mailboxes_queued, 192);
        let started_left = (early.items_total - early.items_done - early.items_failed) as f64;
        let eta = early.eta_seconds.expect("an ETA once items flow");
        assert!(eta > 10.0 * started_left / early.items_per_second, "{eta}");

        let end = replay(start, &events);
        assert_eq!(end.mailboxes_done, 200);
        assert_eq!(end.fraction, 1.0);
        let items: u64 = (0..200)
            .map(|i| 5 + (i % 11) as u64 + (i % 3) as u64 * 4)
            .sum();
        assert_eq!(end.items_total, items);
        assert_eq!(end.items_done + end.items_failed, items);
    }

    #[test]
    fn queued_mailboxes_are_listed_in_the_order_the_engine_starts_them() {
        let snapshot = RunSnapshot::new(&planned(|_| None), START);
        let users: Vec<&str> = snapshot.mailboxes.iter().map(|m| m.user.as_str()).collect();
        assert_eq!(users[0], "u000@contoso.com");
        assert_eq!(users[199], "u199@contoso.com");
        // Also when the plan arrives as an event, after a snapshot was made empty.
        let mut late = RunSnapshot::default();
        late.apply_at(
            &ProgressEvent::RunPlanned {
                mailboxes: planned(|i| Some(i as u64)),
            },
            START,
        );
        assert_eq!(late.mailboxes[42].user, "u042@contoso.com");
        assert_eq!(late.items_total, (0..200).sum::<u64>());
    }

    #[test]
    fn a_mailbox_that_fails_whole_or_has_no_exchange_mailbox_is_not_done() {
        let mut s = RunSnapshot::new(&planned(|_| Some(1))[..3], START);
        s.apply_at(&failed("u000@contoso.com", "(provision)"), START + 1);
        s.apply_at(
            &ProgressEvent::NotMigrated {
                user: "u001@contoso.com".into(),
                reason: crate::engine::NO_MAILBOX.into(),
            },
            START + 2,
        );
        s.apply_at(
            &ProgressEvent::UserStarted {
                user: "u002@contoso.com".into(),
                folders: 1,
                messages: 1,
            },
            START + 3,
        );
        s.apply_at(&failed("u002@contoso.com", "(mailbox)"), START + 4);
        assert_eq!(s.mailboxes[2].state, MailboxState::Running);
        s.apply_at(
            &ProgressEvent::UserFinished {
                user: "u002@contoso.com".into(),
                stats: Stats::default(),
            },
            START + 5,
        );
        let states: Vec<MailboxState> = s.mailboxes.iter().map(|m| m.state).collect();
        assert_eq!(
            states,
            [
                MailboxState::Failed,
                MailboxState::Skipped,
                MailboxState::Failed
            ]
        );
        assert_eq!((s.mailboxes_failed, s.mailboxes_skipped), (2, 1));
        assert_eq!(s.items_failed, 2);
        assert_eq!(s.fraction, 1.0);
    }

    /// Issue 14.5: an IceWarp resource whose login the server refused is left out, not done:
    /// `skipped` after its `UserFinished`, as a mailbox without Exchange.
    #[test]
    fn a_resource_whose_login_was_refused_is_skipped_not_done() {
        let mut s = RunSnapshot::new(&planned(|_| Some(1))[..1], START);
        s.apply_at(
            &ProgressEvent::NotMigrated {
                user: "u000@contoso.com".into(),
                reason: crate::dest::provision::icewarp::RESOURCE_LOGIN_REFUSED.into(),
            },
            START + 1,
        );
        s.apply_at(
            &ProgressEvent::UserFinished {
                user: "u000@contoso.com".into(),
                stats: Stats::default(),
            },
            START + 2,
        );
        assert_eq!(s.mailboxes[0].state, MailboxState::Skipped);
        assert_eq!(s.mailboxes_skipped, 1);
    }

    /// A run stopped while a mailbox copied: after `RunFinished` that mailbox is `stopped`
    /// (neither running nor done), its plan count stays its total (it is not complete), the
    /// queued one stays queued and the bar stays short of the end. Before, it stayed
    /// `running` after the run had ended.
    #[test]
    fn regression_a_mailbox_stopped_part_way_stays_running_after_the_run_finished() {
        let mut s = RunSnapshot::new(&planned(|_| Some(10))[..3], START);
        let user = |i: usize| format!("u{i:03}@contoso.com");
        s.apply_at(
            &ProgressEvent::UserStarted {
                user: user(0),
                folders: 1,
                messages: 10,
            },
            START + 1,
        );
        s.apply_at(
            &ProgressEvent::UserFinished {
                user: user(0),
                stats: Stats::default(),
            },
            START + 2,
        );
        s.apply_at(
            &ProgressEvent::UserStarted {
                user: user(1),
                folders: 1,
                messages: 10,
            },
            START + 3,
        );
        for k in 0..4 {
            let done = ProgressEvent::ItemDone {
                user: user(1),
                bytes: 5,
                skipped: false,
            };
            s.apply_at(&done, START + 4 + k);
        }
        let summary = crate::progress::RunSummary {
            cancelled: true,
            ..Default::default()
        };
        s.apply_at(&ProgressEvent::RunFinished { summary }, START + 10);
        let states: Vec<MailboxState> = s.mailboxes.iter().map(|m| m.state).collect();
        assert_eq!(
            states,
            [
                MailboxState::Done,
                MailboxState::Stopped,
                MailboxState::Queued
            ]
        );
        assert_eq!(
            (
                s.mailboxes_done,
                s.mailboxes_running,
                s.mailboxes_stopped,
                s.mailboxes_queued
            ),
            (1, 0, 1, 1)
        );
        assert_eq!(
            (s.mailboxes[1].items_done, s.mailboxes[1].items_total),
            (4, 10)
        );
        assert!(s.fraction < 1.0, "{}", s.fraction);
        assert_eq!(s.eta_seconds, None);
    }

    #[test]
    fn a_snapshot_reporter_keeps_the_run_and_passes_every_event_on() {
        let passed = std::sync::Arc::new(Mutex::new(Vec::new()));
        let seen = passed.clone();
        let reporter = SnapshotReporter::new(move |e: ProgressEvent| {
            seen.lock().unwrap().push(e);
        });
        let events = [
            ProgressEvent::RunPlanned {
                mailboxes: planned(|_| Some(2))[..2].to_vec(),
            },
            ProgressEvent::ItemDone {
                user: "u001@contoso.com".into(),
                bytes: 7,
                skipped: false,
            },
        ];
        for e in &events {
            reporter.report(e.clone());
        }
        assert_eq!(*passed.lock().unwrap(), events);
        let s = reporter.snapshot();
        assert_eq!((s.mailboxes_total, s.mailboxes_running), (2, 1));
        assert_eq!((s.items_total, s.items_done, s.bytes_done), (4, 1, 7));
    }

    #[test]
    fn the_rate_is_measured_over_the_last_minute() {
        let mut s = RunSnapshot::new(&planned(|_| Some(1000))[..1], START);
        let done = ProgressEvent::ItemDone {
            user: "u000@contoso.com".into(),
            bytes: 1,
            skipped: false,
        };
        // 10 items a second for two minutes, then 1 a second for a minute.
        for k in 0..1200 {
            s.apply_at(&done, START + 100 * k);
        }
        assert!(
            (s.items_per_second - 10.0).abs() < 0.2,
            "{}",
            s.items_per_second
        );
        for k in 0..60 {
            s.apply_at(&done, START + 120_000 + 1000 * k);
        }
        assert!(
            (s.items_per_second - 1.0).abs() < 0.1,
            "{}",
            s.items_per_second
        );
        // More processed than planned: the total follows, nothing is left.
        assert_eq!(s.items_total, 1260);
        assert_eq!(s.eta_seconds, Some(0.0));
        // Nothing for two minutes: no rate, no ETA.
        s.at(START + 300_000);
        assert_eq!((s.items_per_second, s.eta_seconds), (0.0, None));
    }
}
