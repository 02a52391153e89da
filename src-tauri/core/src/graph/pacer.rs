//! The pacer: the only place in the migrator that waits or retries.
//!
//! Exchange Online limits each (app, mailbox) pair to 4 concurrent requests and 10,000 requests
//! per 10 minutes, and mailboxes are throttled independently (Graph docs,
//! concepts/throttling-limits.md, "Outlook service limits"). So every mailbox gets its own
//! [`Pacer`], which
//! - keeps at most `max_in_flight` requests in flight,
//! - keeps the number of requests sent within any `window` under `budget`, counting
//!   conservatively so a well-behaved run is never answered 429 for the budget,
//! - after a 429/503 with `Retry-After`, holds back *every* request of the mailbox until exactly
//!   that much time has passed (usage keeps accruing while throttled, so sending early only
//!   prolongs the throttle: concepts/throttling.md); a request that already had its turn but
//!   was still waiting for something else (a token) when the pause began is held back too,
//!   by [`Pacer::hold_while_paused`] just before it leaves,
//! - retries a throttled request ([`Verdict::Throttled`], a 429) for as long as the throttling
//!   lasts, up to [`PacerSettings::max_throttled`] of *time*, never counting it as a failed
//!   attempt: a mailbox throttled for an hour resumes and completes (Exchange keeps
//!   throttling while usage accrues, concepts/throttling.md; imapsync's FAQ.Office365 reports
//!   suggested backoffs of five minutes),
//! - otherwise retries transient failures (5xx, broken connections) with exponential backoff
//!   and jitter, a bounded number of *attempts*, and then gives the last error back to the
//!   caller,
//! - and, for a server that is down ([`Verdict::Down`]: connections refused or cut, a gateway
//!   saying it is unavailable), keeps retrying with the same backoff for a bounded *time*
//!   instead ([`Pacer::call_within`] with an [`OutagePolicy`]), telling the caller before each
//!   wait, so a destination's maintenance window is waited out rather than failing everything.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// A mailbox's progress and limits at one moment ([`Pacer::pace`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pace {
    /// Items it has left to copy ([`Pacer::items_left`]).
    pub items_left: u64,
    /// Requests answered so far (the attempt of each call that was done).
    pub requests_done: u64,
    /// Its fastest answered request, from its turn to its answer's end: the latency it
    /// meets when nothing else slows it. `None` before its first answer.
    pub fastest: Option<Duration>,
    pub max_in_flight: usize,
    /// Requests its budget's window still has room for now.
    pub room: u32,
    pub budget: u32,
    pub window: Duration,
}

/// Limits and retry policy for one mailbox.
#[derive(Debug, Clone, PartialEq)]
pub struct PacerSettings {
    /// Requests in flight at once (Exchange Online: 4).
    pub max_in_flight: usize,
    /// Requests allowed per `window` (Exchange Online: 10,000 per 10 minutes).
    pub budget: u32,
    pub window: Duration,
    /// Attempts per request, the first included. Throttled answers do not count.
    pub max_attempts: u32,
    /// How long one request keeps being retried while it is throttled (429), from its first
    /// throttled answer.
    pub max_throttled: Duration,
    /// First backoff without `Retry-After`; doubles per attempt up to `max_backoff`.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// The app's budget across the tenant, shared by every pacer of a run ([`AppBudget`]);
    /// `None`: none (a destination's pacer, or a test of one mailbox).
    pub app: Option<AppBudget>,
}

impl Default for PacerSettings {
    fn default() -> Self {
        PacerSettings {
            max_in_flight: 4,
            budget: 10_000,
            window: Duration::from_secs(600),
            max_attempts: 8,
            max_throttled: DEFAULT_MAX_THROTTLED,
            min_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
            app: None,
        }
    }
}

/// The default of [`PacerSettings::max_throttled`]: a day, so an unattended run outlasts a
/// night of throttling.
pub const DEFAULT_MAX_THROTTLED: Duration = Duration::from_secs(24 * 3600);

/// What one attempt of a request came to.
#[derive(Debug)]
pub enum Verdict<T, E> {
    Done(T),
    /// Transient. With `after` (a `Retry-After`), the whole mailbox waits exactly that long;
    /// without it, this request backs off exponentially.
    Retry {
        after: Option<Duration>,
        error: E,
    },
    /// The server cannot be reached or says it is down. [`Pacer::call_within`] retries it
    /// until its [`OutagePolicy::limit`] has passed (after `after`, a `Retry-After`, when
    /// given); [`Pacer::call`] treats it as [`Verdict::Retry`].
    Down {
        after: Option<Duration>,
        error: E,
    },
    /// Throttled (429): retried after `after` (a `Retry-After`, which holds back the whole
    /// mailbox) or with backoff, bounded by [`PacerSettings::max_throttled`] only, never by
    /// `max_attempts`.
    Throttled {
        after: Option<Duration>,
        error: E,
    },
    /// Permanent for this request: return the error at once.
    Fail(E),
}

impl<T, E> Verdict<T, E> {
    /// The value of a [`Verdict::Done`], or any other verdict as one for another value type,
    /// to pass on from a step of an attempt.
    pub fn done<U>(self) -> Result<T, Verdict<U, E>> {
        match self {
            Verdict::Done(value) => Ok(value),
            Verdict::Retry { after, error } => Err(Verdict::Retry { after, error }),
            Verdict::Down { after, error } => Err(Verdict::Down { after, error }),
            Verdict::Throttled { after, error } => Err(Verdict::Throttled { after, error }),
            Verdict::Fail(error) => Err(Verdict::Fail(error)),
        }
    }
}

/// How long [`Pacer::call_within`] waits out a server that is down, and whom it tells while
/// it waits. The limit is the time since the call's first [`Verdict::Down`].
#[derive(Clone)]
pub struct OutagePolicy {
    pub limit: Duration,
    /// Told before each wait how long the server has been down so far.
    notice: Option<Arc<dyn Fn(Duration) + Send + Sync>>,
}

impl OutagePolicy {
    /// Waits up to `limit`, telling nobody.
    pub fn new(limit: Duration) -> Self {
        OutagePolicy {
            limit,
            notice: None,
        }
    }

    /// The same limit, calling `notice(down_for)` before each wait.
    pub fn with_notice(self, notice: impl Fn(Duration) + Send + Sync + 'static) -> Self {
        OutagePolicy {
            notice: Some(Arc::new(notice)),
            ..self
        }
    }
}

impl std::fmt::Debug for OutagePolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutagePolicy")
            .field("limit", &self.limit)
            .field("notice", &self.notice.is_some())
            .finish()
    }
}

/// Why [`Pacer::call_within`] gave up.
#[derive(Debug, PartialEq)]
pub enum GaveUp<E> {
    /// The server was still down when the outage limit ran out, `down_for` after the first
    /// [`Verdict::Down`] (or a `Retry-After` it sent reached past the limit).
    Down { error: E, down_for: Duration },
    /// A permanent failure, a transient one ([`Verdict::Retry`]) past `max_attempts`, or
    /// throttling that outlasted `max_throttled`.
    Failed(E),
}

/// Number of buckets the budget window is divided into.
const BUCKETS: u32 = 600;

/// Paces one mailbox. Share it (by reference or `Arc`) between all of that mailbox's requests.
#[derive(Debug)]
pub struct Pacer {
    settings: PacerSettings,
    slots: Semaphore,
    state: Mutex<State>,
    /// Items the mailbox has left to copy, as far as known: its downloads' place in the
    /// run's download lane ([`super::lane::DownloadLane`]).
    items_left: AtomicU64,
    /// Requests answered (done) so far, and the fastest of them in microseconds
    /// (`u64::MAX`: none yet): the mailbox's pace against its ceiling ([`Pacer::pace`]).
    done: AtomicU64,
    fastest_micros: AtomicU64,
}

#[derive(Debug)]
struct State {
    /// Retry-After in force: nothing is sent before this instant.
    blocked_until: Option<Instant>,
    sent: Window,
}

/// Requests counted in a sliding window, in [`BUCKETS`] buckets.
#[derive(Debug)]
struct Window {
    epoch: Instant,
    /// (bucket index, requests sent in it), oldest first, only buckets inside the window.
    sent: VecDeque<(u64, u32)>,
    sent_total: u32,
}

/// Graph's limit per app across all tenants, shared by every [`Pacer`] of a run (all
/// mailboxes and the directory calls): "Any request: 130,000 requests per 10 seconds, per app
/// across all tenants", evaluated besides the service limits, the first limit reached
/// throttling (learn.microsoft.com/graph/throttling-limits, global limits). Clones share one
/// count; two budgets are equal only when they are the same count.
#[derive(Debug, Clone)]
pub struct AppBudget(Arc<AppCount>);

#[derive(Debug)]
struct AppCount {
    /// The app's whole budget per window, as configured.
    whole: u32,
    /// What this process may send of it per window: `whole`, or its share
    /// ([`AppBudget::share_among`]).
    budget: AtomicU32,
    window: Duration,
    sent: Mutex<Window>,
}

/// The documented global limit: 130,000 requests per 10 seconds per app
/// (learn.microsoft.com/graph/throttling-limits).
pub const APP_BUDGET: u32 = 130_000;
/// The window of [`APP_BUDGET`].
pub const APP_WINDOW: Duration = Duration::from_secs(10);
/// How much longer than its window [`AppBudget`] counts a request: more than a request's
/// arrival at Graph varies after it left (a new connection, a loaded machine; a test run
/// on two busy cores saw over 20 ms).
pub const APP_MARGIN: Duration = Duration::from_millis(250);

impl AppBudget {
    /// A new count of `budget` requests per `window` (at least 1 request). A request is
    /// counted when it leaves but reaches Graph a moment later, and sooner on a pooled
    /// connection than on a new one or on a busy machine, so one counted early can still be
    /// inside Graph's window when one counted a full window later arrives. The count
    /// therefore holds each request [`APP_MARGIN`] longer than the window (2.5% of the
    /// documented 10 s, of a limit a single machine does not reach).
    pub fn new(budget: u32, window: Duration) -> Self {
        AppBudget(Arc::new(AppCount {
            whole: budget.max(1),
            budget: AtomicU32::new(budget.max(1)),
            window: window + APP_MARGIN,
            sent: Mutex::new(Window::new()),
        }))
    }

    /// Waits until the window has room, then counts one request as sent.
    async fn wait_for_turn(&self) {
        loop {
            let wait = {
                let mut sent = self.0.sent.lock().unwrap_or_else(|p| p.into_inner());
                let budget = self.0.budget.load(Ordering::Relaxed);
                match sent.take(budget, self.0.window, Instant::now()) {
                    None => return,
                    Some(wait) => wait,
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Limits this process to its share of the app's budget when `parts` processes (the live
    /// workers sharing one journal, this one included) send under the same app: the whole
    /// budget over `parts`, at least one request per window. Takes effect at the next
    /// request; those already counted stay counted. Call it again whenever `parts` changes.
    pub fn share_among(&self, parts: u64) {
        let share = u64::from(self.0.whole) / parts.max(1);
        let share = u32::try_from(share).unwrap_or(u32::MAX).max(1);
        self.0.budget.store(share, Ordering::Relaxed);
    }

    /// The app's whole budget and its window, as configured (without [`APP_MARGIN`]).
    pub fn limit(&self) -> (u32, Duration) {
        (self.0.whole, self.0.window.saturating_sub(APP_MARGIN))
    }

    /// The requests per window this process may send now ([`AppBudget::share_among`]).
    pub fn budget(&self) -> u32 {
        self.0.budget.load(Ordering::Relaxed)
    }

    /// How many holders share this count: every live [`Pacer`] of the run holds one (through
    /// its settings), so a run's live pacers are this less the run's own settings.
    pub fn holders(&self) -> usize {
        Arc::strong_count(&self.0)
    }
}

/// What the requests of a mailbox sent through a pacer leave for the pacer that later takes
/// the mailbox over ([`Pacer::debt`], [`Pacer::take_over`]): the pause it was answered and
/// the requests it counted. A few bytes, so a queued mailbox keeps this, not a pacer.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Debt {
    paused_until: Option<Instant>,
    sent: u32,
}

impl PartialEq for AppBudget {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Pacer {
    pub fn new(settings: PacerSettings) -> Self {
        let slots = Semaphore::new(settings.max_in_flight.max(1));
        Pacer {
            settings,
            slots,
            state: Mutex::new(State {
                blocked_until: None,
                sent: Window::new(),
            }),
            items_left: AtomicU64::new(0),
            done: AtomicU64::new(0),
            fastest_micros: AtomicU64::new(u64::MAX),
        }
    }

    /// What this mailbox has done and may do now, for the run's admission of mailboxes
    /// (`engine::admission`): its requests answered so far, its fastest, and the room left in
    /// its budget's window.
    pub fn pace(&self) -> Pace {
        let fastest = self.fastest_micros.load(AtomicOrdering::Relaxed);
        let sent = self.lock().sent.count(self.settings.window, Instant::now());
        Pace {
            items_left: self.items_left(),
            requests_done: self.done.load(AtomicOrdering::Relaxed),
            fastest: (fastest != u64::MAX).then(|| Duration::from_micros(fastest)),
            max_in_flight: self.settings.max_in_flight.max(1),
            room: self.settings.budget.saturating_sub(sent),
            budget: self.settings.budget,
            window: self.settings.window,
        }
    }

    /// One request answered after `took` (from its turn to its answer's end).
    fn answered(&self, took: Duration) {
        self.done.fetch_add(1, AtomicOrdering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX - 1);
        self.fastest_micros
            .fetch_min(micros, AtomicOrdering::Relaxed);
    }

    /// The mailbox has `items` left to copy (its size when it is scheduled).
    pub fn set_items_left(&self, items: u64) {
        self.items_left.store(items, AtomicOrdering::Relaxed);
    }

    /// Items the mailbox has left to copy: its size, less the messages downloaded since.
    pub fn items_left(&self) -> u64 {
        self.items_left.load(AtomicOrdering::Relaxed)
    }

    /// One item of the mailbox was downloaded.
    pub fn item_downloaded(&self) {
        let _ =
            (self.items_left).fetch_update(AtomicOrdering::Relaxed, AtomicOrdering::Relaxed, |n| {
                n.checked_sub(1)
            });
    }

    pub fn settings(&self) -> &PacerSettings {
        &self.settings
    }

    /// Runs `attempt` until it is done, fails, or runs out of attempts. `on_throttle` is told of
    /// every wait the server asked for (`Retry-After`), so progress can show it as a status.
    /// Each attempt receives its 1-based number.
    pub async fn call<T, E, F, Fut>(
        &self,
        attempt: F,
        on_throttle: impl FnMut(Duration),
    ) -> Result<T, E>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Verdict<T, E>>,
    {
        self.call_within(None, attempt, on_throttle)
            .await
            .map_err(|gave_up| match gave_up {
                GaveUp::Down { error, .. } | GaveUp::Failed(error) => error,
            })
    }

    /// [`Pacer::call`] that, with an `outage` policy, retries [`Verdict::Down`] answers (with
    /// the usual backoff, or their `Retry-After`) until the policy's limit has passed since
    /// the first of them, however many attempts that takes; no wait reaches past the limit,
    /// and the last attempt is made at it. [`Verdict::Retry`] answers still count against
    /// `max_attempts`. Without a policy, `Down` is `Retry`.
    pub async fn call_within<T, E, F, Fut>(
        &self,
        outage: Option<&OutagePolicy>,
        mut attempt: F,
        mut on_throttle: impl FnMut(Duration),
    ) -> Result<T, GaveUp<E>>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Verdict<T, E>>,
    {
        let mut number = 0;
        // Attempts answered `Retry` (or `Down` without a policy): bounded by `max_attempts`.
        let mut retries = 0;
        let mut down_since: Option<Instant> = None;
        // Throttled answers: bounded by time since the first, never by `max_attempts`.
        let mut throttled = 0;
        let mut throttled_since: Option<Instant> = None;
        loop {
            number += 1;
            let (verdict, took) = {
                // The semaphore is never closed, so acquire cannot fail; treat it as a free slot.
                let _permit = self.slots.acquire().await.ok();
                self.wait_for_turn().await;
                let turn = Instant::now();
                (attempt(number).await, turn.elapsed())
            };
            let (after, error, down) = match verdict {
                Verdict::Done(value) => {
                    self.answered(took);
                    return Ok(value);
                }
                Verdict::Fail(error) => return Err(GaveUp::Failed(error)),
                Verdict::Retry { after, error } => (after, error, false),
                Verdict::Down { after, error } => (after, error, outage.is_some()),
                Verdict::Throttled { after, error } => {
                    let since = *throttled_since.get_or_insert_with(Instant::now);
                    throttled += 1;
                    let wait = after.unwrap_or_else(|| self.backoff(throttled));
                    if since.elapsed() + wait > self.settings.max_throttled {
                        return Err(GaveUp::Failed(error));
                    }
                    match after {
                        Some(after) => {
                            self.block_for(after);
                            on_throttle(after);
                        }
                        None => tokio::time::sleep(wait).await,
                    }
                    continue;
                }
            };
            let wait = match (down, outage) {
                (true, Some(policy)) => {
                    let since = *down_since.get_or_insert_with(Instant::now);
                    let down_for = since.elapsed();
                    let left = policy.limit.saturating_sub(down_for);
                    let wait = after.unwrap_or_else(|| self.backoff(retries + 1).min(left));
                    if left.is_zero() || wait > left {
                        return Err(GaveUp::Down { error, down_for });
                    }
                    if let Some(notice) = &policy.notice {
                        notice(down_for);
                    }
                    retries += 1;
                    wait
                }
                _ => {
                    retries += 1;
                    if retries >= self.settings.max_attempts {
                        return Err(GaveUp::Failed(error));
                    }
                    match after {
                        Some(wait) => wait,
                        None => self.backoff(retries),
                    }
                }
            };
            match after {
                Some(after) => {
                    self.block_for(after);
                    on_throttle(after);
                }
                None => tokio::time::sleep(wait).await,
            }
        }
    }

    /// Holds every request of this mailbox back for `wait` from now (never shortens a block).
    /// [`Pacer::call`] does this itself for a `Retry` verdict with `after`; a caller may do it
    /// earlier, as soon as it reads the answer's status, so no other request of the mailbox
    /// slips out while the rest of that answer is read.
    pub fn pause(&self, wait: Duration) {
        self.block_for(wait);
    }

    /// Waits while a pause (`Retry-After`) is in force; takes no budget. Call it at the last
    /// moment before a request leaves, after anything else it waited for: a request that had
    /// its turn and then waited for a token must not go out during a pause that began
    /// meanwhile.
    pub async fn hold_while_paused(&self) {
        loop {
            let wait = {
                let state = self.lock();
                let now = Instant::now();
                match state.blocked_until {
                    Some(until) if until > now => until - now,
                    _ => return,
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Call at the last moment before a request leaves, after anything else it waited for
    /// (its turn, a token): waits for room in the app's budget across the tenant
    /// ([`PacerSettings::app`]) and counts the request there, then while a pause is in force
    /// ([`Pacer::hold_while_paused`]). The app's count is taken this late because it is
    /// shared by the whole run: counted at the turn, a request that then waited would reach
    /// Graph later than counted and crowd a later window.
    pub async fn leave(&self) {
        if let Some(app) = &self.settings.app {
            app.wait_for_turn().await;
        }
        self.hold_while_paused().await;
    }

    /// How long the pause (`Retry-After`) in force still lasts, if one is.
    pub fn paused_for(&self) -> Option<Duration> {
        let state = self.lock();
        let now = Instant::now();
        state
            .blocked_until
            .filter(|until| *until > now)
            .map(|until| until - now)
    }

    /// The pause in force and the requests counted in this pacer's window, for a pacer that
    /// takes the mailbox over later ([`Pacer::take_over`]): a request of the mailbox sent
    /// through another pacer (with its own retry policy), or before the mailbox's turn.
    pub fn debt(&self) -> Debt {
        let state = self.lock();
        Debt {
            paused_until: state.blocked_until.filter(|until| *until > Instant::now()),
            sent: state.sent.sent_total,
        }
    }

    /// Honours what another pacer of this mailbox left ([`Pacer::debt`]): its pause, and its
    /// requests counted again now, so they stay in this mailbox's window at least as long as
    /// they really do.
    pub async fn take_over(&self, debt: Debt) {
        if let Some(until) = debt.paused_until {
            self.block_for(until.saturating_duration_since(Instant::now()));
        }
        for _ in 0..debt.sent {
            self.wait_for_turn().await;
        }
    }

    fn block_for(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut state = self.lock();
        if state.blocked_until.is_none_or(|b| b < until) {
            state.blocked_until = Some(until);
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .settings
            .min_backoff
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let capped = exp.min(self.settings.max_backoff);
        // Full jitter in [50%, 100%] keeps retries of many workers from synchronising.
        capped.mul_f64(rand::rng().random_range(0.5..=1.0))
    }

    /// Waits until a `Retry-After` in force has passed and the budget has room, then counts
    /// one request as sent.
    async fn wait_for_turn(&self) {
        loop {
            let wait = {
                let mut state = self.lock();
                let now = Instant::now();
                match state.blocked_until {
                    Some(until) if until > now => until - now,
                    _ => {
                        state.blocked_until = None;
                        match state
                            .sent
                            .take(self.settings.budget, self.settings.window, now)
                        {
                            None => break,
                            Some(wait) => wait,
                        }
                    }
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means another worker panicked mid-update of plain counters.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Waits `period` and returns how much later than that the caller ran again: the time it
/// waited for a CPU after its timer fired. Near zero on a machine with room (the timer's
/// 1 ms resolution); on a saturated one, the runtime's queue and the OS's run queue make it
/// late. The saturation probe ([`Saturation`]) of the run's admission of mailboxes.
pub async fn lateness_after(period: Duration) -> Duration {
    let due = Instant::now() + period;
    tokio::time::sleep_until(due).await;
    Instant::now().saturating_duration_since(due)
}

/// The machine's saturation, read from samples of [`lateness_after`]: the share of recent
/// samples that were late (over [`Saturation::LATE`]), an average with a weight of 1/8 for
/// the newest. One late sample (a page fault, one long poll) moves the share to 1/8 only; a
/// saturated machine makes every second sample or more late (measured: 40-80 % over 2 ms in
/// the tenant benchmark while 100 mailboxes ran on 2 CPUs, 0-2 % once one ran; BENCHMARKS.md,
/// "2026-12-07, 09:32-10:39 UTC").
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Saturation {
    /// Share of recent samples that were late, in 1/65,536ths.
    late_share: u32,
}

impl Saturation {
    /// A sample later than this was late: runnable tasks waited that long for a CPU. An idle
    /// runtime wakes within its 1 ms timer resolution.
    pub const LATE: Duration = Duration::from_millis(2);
    const ONE: u32 = 1 << 16;

    /// One sample: the probe woke `late` after it asked to.
    pub fn observe(&mut self, late: Duration) {
        let sample = if late > Self::LATE { Self::ONE } else { 0 };
        self.late_share = self.late_share - self.late_share / 8 + sample / 8;
    }

    /// Over a quarter of recent samples were late.
    pub fn saturated(&self) -> bool {
        self.late_share > Self::ONE / 4
    }

    /// Under a tenth of recent samples were late.
    pub fn has_room(&self) -> bool {
        self.late_share < Self::ONE / 10
    }
}

impl Window {
    fn new() -> Self {
        Window {
            epoch: Instant::now(),
            sent: VecDeque::new(),
            sent_total: 0,
        }
    }

    /// Counts one request at `now` if the window has room; otherwise the time until the oldest
    /// counted bucket leaves the window. A request is taken as sent at the *end* of its bucket,
    /// so it leaves the window no earlier than it really does and the count over any real
    /// window is never below the true one. (Expiring it from the bucket's start let a request
    /// through up to one bucket early; the benchmark's `ceiling` scenario got 429s for it.)
    fn take(&mut self, budget: u32, window: Duration, now: Instant) -> Option<Duration> {
        let (width, current, buckets) = self.expire(window, now);
        if self.sent_total >= budget.max(1) {
            let oldest = self.sent.front().map_or(current, |&(b, _)| b);
            let frees_at = self.epoch + width * (oldest + buckets + 1) as u32;
            return Some(
                frees_at
                    .saturating_duration_since(now)
                    .max(Duration::from_millis(1)),
            );
        }
        match self.sent.back_mut() {
            Some((b, n)) if *b == current => *n += 1,
            _ => self.sent.push_back((current, 1)),
        }
        self.sent_total += 1;
        None
    }

    /// The requests counted in the window at `now`.
    fn count(&mut self, window: Duration, now: Instant) -> u32 {
        self.expire(window, now);
        self.sent_total
    }

    /// Drops the buckets that left the window at `now`; returns the bucket width, the
    /// current bucket and the window's length in buckets.
    fn expire(&mut self, window: Duration, now: Instant) -> (Duration, u64, u64) {
        let width = (window / BUCKETS).max(Duration::from_millis(1));
        let epoch = self.epoch;
        let bucket_of = |t: Instant| (t.duration_since(epoch).as_nanos() / width.as_nanos()) as u64;
        let current = bucket_of(now);
        let buckets = window.as_nanos().div_ceil(width.as_nanos()) as u64;
        while let Some(&(b, n)) = self.sent.front() {
            if b + buckets < current {
                self.sent.pop_front();
                self.sent_total -= n;
            } else {
                break;
            }
        }
        (width, current, buckets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// A mailbox's requests sent through one pacer (its sizing read) still bind the pacer that
    /// takes the mailbox over when it starts: the pause it was answered is waited out and its
    /// requests count in the new pacer's window, though the first pacer is gone (issue 17.3).
    #[tokio::test(start_paused = true)]
    async fn a_pacer_taking_over_a_mailbox_honours_the_pause_and_requests_before_it() {
        let t0 = Instant::now();
        let before = Pacer::new(settings());
        for _ in 0..3 {
            before.wait_for_turn().await;
        }
        before.pause(Duration::from_secs(30));
        let debt = before.debt();
        drop(before);
        let after = Pacer::new(settings());
        after.take_over(debt).await;
        assert_eq!(Instant::now() - t0, Duration::from_secs(30), "the pause");
        assert_eq!(after.lock().sent.sent_total, 3, "the requests before");
        assert_eq!(Pacer::new(settings()).debt(), Debt::default());
    }

    fn settings() -> PacerSettings {
        PacerSettings {
            max_in_flight: 4,
            budget: 10,
            window: Duration::from_secs(60),
            max_attempts: 4,
            max_throttled: Duration::from_secs(2 * 3600),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            app: None,
        }
    }

    /// A mailbox throttled for an hour (a 429 with `Retry-After: 60` sixty times over, far
    /// more than `max_attempts`) resumes and completes: throttling is bounded by time only.
    /// Then a 5xx storm still gives up after `max_attempts`.
    #[tokio::test(start_paused = true)]
    async fn an_hour_of_throttling_never_uses_up_the_attempts() {
        // Budget for every attempt: only throttling and attempts count here.
        let pacer = Pacer::new(PacerSettings {
            budget: 1_000_000,
            ..settings()
        });
        let start = Instant::now();
        let mut waits = Vec::new();
        let answered = pacer
            .call(
                |n| async move {
                    if start.elapsed() < Duration::from_secs(3600) {
                        Verdict::Throttled {
                            after: Some(Duration::from_secs(60)),
                            error: "429 MailboxConcurrency",
                        }
                    } else {
                        Verdict::Done(n)
                    }
                },
                |w| waits.push(w),
            )
            .await;
        assert_eq!(answered, Ok(61));
        assert_eq!(start.elapsed(), Duration::from_secs(3600));
        assert_eq!(waits.len(), 60);
        // Without Retry-After, throttling backs off and is bounded by time too.
        let t0 = Instant::now();
        let calls = AtomicUsize::new(0);
        let gave_up: Result<(), &str> = pacer
            .call(
                |_| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    async {
                        Verdict::Throttled {
                            after: None,
                            error: "429 ApplicationThrottled",
                        }
                    }
                },
                |_| {},
            )
            .await;
        assert_eq!(gave_up, Err("429 ApplicationThrottled"));
        assert!(t0.elapsed() <= Duration::from_secs(2 * 3600));
        assert!(calls.load(Ordering::SeqCst) > 4);
        // A 5xx is still bounded by attempts.
        let calls = AtomicUsize::new(0);
        let failed: Result<(), &str> = pacer
            .call(
                |_| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    async {
                        Verdict::Retry {
                            after: None,
                            error: "502",
                        }
                    }
                },
                |_| {},
            )
            .await;
        assert_eq!(failed, Err("502"));
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_holds_back_the_whole_mailbox_exactly() {
        let pacer = Arc::new(Pacer::new(settings()));
        let start = Instant::now();
        let first = pacer
            .call(
                |n| async move {
                    if n == 1 {
                        Verdict::Retry {
                            after: Some(Duration::from_millis(2128)),
                            error: "429",
                        }
                    } else {
                        Verdict::Done(Instant::now())
                    }
                },
                |_| {},
            )
            .await
            .unwrap();
        assert_eq!(first - start, Duration::from_millis(2128));
        // Another request of the same mailbox, started during the block, also waits for it.
        let pacer2 = Pacer::new(settings());
        pacer2.block_for(Duration::from_secs(3));
        let t0 = Instant::now();
        let sent = pacer2
            .call(|_| async { Verdict::<_, ()>::Done(Instant::now()) }, |_| {})
            .await
            .unwrap();
        assert!(sent - t0 >= Duration::from_secs(3));
    }

    /// A request that had its turn before a 429 arrived, and then waited (for a token), does
    /// not leave until the Retry-After has passed.
    #[tokio::test(start_paused = true)]
    async fn a_pause_that_began_after_the_turn_still_holds_the_request_back() {
        let pacer = Arc::new(Pacer::new(settings()));
        let start = Instant::now();
        let late = {
            let pacer = pacer.clone();
            tokio::spawn(async move {
                pacer
                    .call(
                        |_| {
                            let pacer = pacer.clone();
                            async move {
                                // Waiting for a token, past its turn.
                                tokio::time::sleep(Duration::from_millis(100)).await;
                                pacer.hold_while_paused().await;
                                Verdict::<_, ()>::Done(Instant::now())
                            }
                        },
                        |_| {},
                    )
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        // Another request of the mailbox is answered 429 with Retry-After: 2 s.
        pacer.pause(Duration::from_secs(2));
        let sent = late.await.unwrap().unwrap();
        assert_eq!(sent - start, Duration::from_millis(2010));
    }

    #[tokio::test(start_paused = true)]
    async fn never_more_than_max_in_flight() {
        let pacer = Arc::new(Pacer::new(PacerSettings {
            budget: 1000,
            ..settings()
        }));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (pacer, in_flight, peak) = (pacer.clone(), in_flight.clone(), peak.clone());
            tasks.push(tokio::spawn(async move {
                pacer
                    .call(
                        |_| {
                            let (in_flight, peak) = (in_flight.clone(), peak.clone());
                            async move {
                                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                                peak.fetch_max(now, Ordering::SeqCst);
                                tokio::time::sleep(Duration::from_millis(50)).await;
                                in_flight.fetch_sub(1, Ordering::SeqCst);
                                Verdict::<(), ()>::Done(())
                            }
                        },
                        |_| {},
                    )
                    .await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn budget_spreads_requests_over_the_window() {
        let pacer = Pacer::new(settings());
        let start = Instant::now();
        let mut times = Vec::new();
        for _ in 0..25 {
            let t = pacer
                .call(|_| async { Verdict::<_, ()>::Done(Instant::now()) }, |_| {})
                .await
                .unwrap();
            times.push(t - start);
        }
        // Any 60 s window holds at most 10 sends.
        for (i, t) in times.iter().enumerate() {
            let in_window = times[i..]
                .iter()
                .filter(|u| **u < *t + Duration::from_secs(60))
                .count();
            assert!(in_window <= 10, "{in_window} sends within 60 s of {t:?}");
        }
        assert!(times[24] >= Duration::from_secs(120));
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_max_attempts_with_the_last_error() {
        let pacer = Pacer::new(settings());
        let calls = AtomicUsize::new(0);
        let result: Result<(), String> = pacer
            .call(
                |n| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    async move {
                        Verdict::Retry {
                            after: None,
                            error: format!("reset #{n}"),
                        }
                    }
                },
                |_| {},
            )
            .await;
        assert_eq!(result, Err("reset #4".to_string()));
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn fail_is_not_retried_and_throttle_is_reported() {
        let pacer = Pacer::new(settings());
        let mut waits = Vec::new();
        let r: Result<(), &str> = pacer
            .call(
                |n| async move {
                    if n == 1 {
                        Verdict::Retry {
                            after: Some(Duration::from_secs(5)),
                            error: "throttled",
                        }
                    } else {
                        Verdict::Fail("not found")
                    }
                },
                |w| waits.push(w),
            )
            .await;
        assert_eq!(r, Err("not found"));
        assert_eq!(waits, vec![Duration::from_secs(5)]);
    }

    /// A server down longer than `max_attempts` backoffs last is waited for until the outage
    /// limit, with a notice before every wait, and the call succeeds when it is back.
    #[tokio::test(start_paused = true)]
    async fn a_down_server_is_waited_for_past_max_attempts_within_the_limit() {
        // Budget for every attempt: only the outage limit counts here.
        let pacer = Pacer::new(PacerSettings {
            budget: 10_000,
            ..settings()
        });
        let notices = Arc::new(Mutex::new(Vec::new()));
        let policy = OutagePolicy::new(Duration::from_secs(40)).with_notice({
            let notices = notices.clone();
            move |down_for| notices.lock().unwrap().push(down_for)
        });
        let start = Instant::now();
        let back_at = Duration::from_secs(20);
        let result: Result<u32, GaveUp<&str>> = pacer
            .call_within(
                Some(&policy),
                |n| async move {
                    if start.elapsed() < back_at {
                        Verdict::Down {
                            after: None,
                            error: "refused",
                        }
                    } else {
                        Verdict::Done(n)
                    }
                },
                |_| {},
            )
            .await;
        let attempts = result.unwrap();
        // `max_attempts` is 4 and backoffs are capped at 1 s: far more attempts were made.
        assert!(attempts > 4, "{attempts} attempts");
        assert!(start.elapsed() >= back_at && start.elapsed() < back_at + Duration::from_secs(2));
        let notices = notices.lock().unwrap();
        assert_eq!(
            notices.len() as u32,
            attempts - 1,
            "a notice before every wait"
        );
        assert!(
            notices.windows(2).all(|w| w[0] < w[1]),
            "down time grows: {notices:?}"
        );
    }

    /// Still down at the limit: the call gives up at the limit (not later), saying how long
    /// the server was down; a `Retry` answer meanwhile still counts against `max_attempts`.
    #[tokio::test(start_paused = true)]
    async fn a_server_down_past_the_limit_gives_up_at_the_limit() {
        // Budget for every attempt: only the outage limit counts here.
        let pacer = Pacer::new(PacerSettings {
            budget: 10_000,
            ..settings()
        });
        let policy = OutagePolicy::new(Duration::from_secs(10));
        let start = Instant::now();
        let result: Result<(), GaveUp<&str>> = pacer
            .call_within(
                Some(&policy),
                |_| async {
                    Verdict::Down {
                        after: None,
                        error: "refused",
                    }
                },
                |_| {},
            )
            .await;
        match result {
            Err(GaveUp::Down { error, down_for }) => {
                assert_eq!(error, "refused");
                assert_eq!(down_for, Duration::from_secs(10));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(start.elapsed(), Duration::from_secs(10));
        // A Retry-After beyond the limit gives up at once: the server said it will not be back.
        let t0 = Instant::now();
        let result: Result<(), GaveUp<&str>> = pacer
            .call_within(
                Some(&policy),
                |_| async {
                    Verdict::Down {
                        after: Some(Duration::from_secs(3600)),
                        error: "maintenance",
                    }
                },
                |_| {},
            )
            .await;
        assert!(matches!(result, Err(GaveUp::Down { .. })), "{result:?}");
        assert_eq!(t0.elapsed(), Duration::ZERO);
        // Without a policy a Down answer is a Retry: `max_attempts` (4) attempts.
        let calls = AtomicUsize::new(0);
        let result: Result<(), GaveUp<&str>> = pacer
            .call_within(
                None,
                |_| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    async {
                        Verdict::Down {
                            after: None,
                            error: "refused",
                        }
                    }
                },
                |_| {},
            )
            .await;
        assert_eq!(result, Err(GaveUp::Failed("refused")));
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    /// Sends one request through `pacer` as a Graph call does (its turn, then
    /// [`Pacer::leave`]) and returns when it left.
    async fn sent_through(pacer: &Pacer) -> Instant {
        pacer
            .call(
                |_| async {
                    pacer.leave().await;
                    Verdict::<_, ()>::Done(Instant::now())
                },
                |_| {},
            )
            .await
            .unwrap()
    }

    /// Many mailboxes, each well within its own budget, together stay within the app's
    /// budget across the tenant (throttling-limits.md, global limits) in every window.
    #[tokio::test(start_paused = true)]
    async fn many_mailboxes_together_stay_within_the_app_budget() {
        let app = AppBudget::new(30, Duration::from_secs(10));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let pacer = Pacer::new(PacerSettings {
                budget: 1000,
                app: Some(app.clone()),
                ..settings()
            });
            tasks.push(tokio::spawn(async move {
                let mut times = Vec::new();
                for _ in 0..6 {
                    times.push(sent_through(&pacer).await - start);
                }
                times
            }));
        }
        let mut times = Vec::new();
        for t in tasks {
            times.extend(t.await.unwrap());
        }
        times.sort();
        assert_eq!(times.len(), 120);
        for (i, t) in times.iter().enumerate() {
            let in_window = times[i..]
                .iter()
                .filter(|u| **u < *t + Duration::from_secs(10))
                .count();
            assert!(in_window <= 30, "{in_window} sends within 10 s of {t:?}");
        }
        // 120 requests at 30 per 10 s: the fourth window is reached, not much later.
        assert!(times[119] >= Duration::from_secs(30));
        assert!(times[119] < Duration::from_secs(32), "{:?}", times[119]);
    }

    /// A worker's share of the app's budget (the whole over the live workers) is what it
    /// sends per window, recomputed when the number of workers changes; never below one.
    #[tokio::test(start_paused = true)]
    async fn a_share_of_the_app_budget_is_what_one_worker_sends_per_window() {
        let app = AppBudget::new(30, Duration::from_secs(10));
        app.share_among(3);
        assert_eq!(app.budget(), 10);
        let pacer = Pacer::new(PacerSettings {
            budget: 1000,
            app: Some(app.clone()),
            ..settings()
        });
        let start = Instant::now();
        let mut times = Vec::new();
        for _ in 0..11 {
            times.push(sent_through(&pacer).await - start);
        }
        assert!(times[9] < Duration::from_secs(1), "{:?}", times[9]);
        assert!(times[10] >= Duration::from_secs(10), "{:?}", times[10]);
        app.share_among(1);
        assert_eq!(app.budget(), 30);
        app.share_among(100);
        assert_eq!(app.budget(), 1, "never none");
        app.share_among(0);
        assert_eq!(app.budget(), 30, "no worker counted yet: the whole");
    }

    /// The budget must not free a request's slot before a full window has passed since it was
    /// really sent, wherever in its bucket it was sent (regression: the benchmark's ceiling
    /// scenario was answered 429 at window boundaries).
    #[tokio::test(start_paused = true)]
    async fn budget_never_frees_a_slot_before_a_whole_window() {
        let pacer = Pacer::new(settings());
        let start = Instant::now();
        // Send the first request late in its bucket (bucket width is 100 ms here).
        tokio::time::sleep(Duration::from_millis(99)).await;
        let mut times = Vec::new();
        for _ in 0..11 {
            let t = pacer
                .call(|_| async { Verdict::<_, ()>::Done(Instant::now()) }, |_| {})
                .await
                .unwrap();
            times.push(t - start);
        }
        assert!(
            times[10] >= times[0] + Duration::from_secs(60),
            "11th request at {:?}, first at {:?}",
            times[10],
            times[0]
        );
    }
}
