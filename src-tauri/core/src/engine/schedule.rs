//! The order mailboxes run in. A tenant finishes when its largest mailbox does: at Exchange
//! Online's per-mailbox limits (10,000 requests per 10 minutes, throttling-limits.md §Outlook
//! service limits) a 100,000-message mailbox needs at least 100 minutes whatever else runs,
//! so it must start first while the small ones fill the other slots. [`largest_first`] sizes
//! mailboxes ahead of the copies (a plan's kept counts, else a cheap read per mailbox, many
//! at once, overlapping the copies of mailboxes already running) and gives each free slot to
//! the largest mailbox sized so far, one start at most every [`START_SPACING`]. Each started
//! mailbox is its own task on the runtime, so on a multi-thread runtime mailboxes use every
//! core (issue 17). While the
//! mailbox that bounds the finish runs under its Graph ceiling on a saturated machine, freed
//! slots are not given out at all ([`super::admission`]): the crowd of small mailboxes
//! shrinks and leaves it the CPU.

use std::any::Any;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinSet};

use super::admission::{Admission, Running, Sample};

/// A started item whose task ended without a result: it panicked (or was aborted).
#[derive(Debug)]
pub(super) struct Crashed<K> {
    /// What [`largest_first`]'s `migrate` named the item.
    pub key: K,
    /// The panic's message, where it has one.
    pub reason: String,
}

impl<K> Crashed<K> {
    fn new(key: K, error: JoinError) -> Self {
        let reason = match error.try_into_panic() {
            Ok(panic) => panic_message(panic),
            Err(_) => "the task was cancelled".to_string(),
        };
        Crashed { key, reason }
    }
}

/// The text a `panic!` carries (a `&str` or a `String` payload).
fn panic_message(panic: Box<dyn Any + Send>) -> String {
    match panic.downcast::<String>() {
        Ok(text) => *text,
        Err(panic) => match panic.downcast::<&'static str>() {
            Ok(text) => (*text).to_string(),
            Err(_) => "a panic without a message".to_string(),
        },
    }
}

/// What [`largest_first`] admits by: the controller, the saturation probe's samples and the
/// running mailboxes' pacers (which the copies enter).
pub(super) struct Admitting {
    pub admission: Admission,
    pub samples: mpsc::Receiver<Duration>,
    pub running: Arc<Running>,
}

/// The least time between two mailbox starts. Started all at once, the first wave of
/// mailboxes (and each wave the admission lets in after a hold) ran in step on a saturated
/// machine, entered the same phases together and ended together, leaving the CPU idle while
/// the next wave began; the largest mailbox, sized after the first wave took every slot,
/// waited for that wave to end. Spaced, the waves spread, and the largest, sized while the
/// first wave starts, starts before the rest of it. In the tenant benchmark (100 slots):
/// the largest began at 0.1 s instead of 2.0-2.3 s and the run finished 1-8 % sooner into a
/// local folder, about as soon into Dovecot (BENCHMARKS.md, 2026-12-08, D). 100 starts take
/// a second: nothing at Exchange's latency, where a mailbox takes minutes to hours. Empty
/// (or unsized) mailboxes are not spaced, nor any once the run is stopped ([`Spacing`]).
pub(super) const START_SPACING: Duration = Duration::from_millis(10);

/// How [`largest_first`] spaces its starts: `every` apart, except once `stopped` (a stopped
/// run's queued items each end at once, and its queue drains without waiting).
pub(super) struct Spacing<F> {
    pub every: Duration,
    pub stopped: F,
}

/// No spacing.
#[cfg(test)]
fn unspaced() -> Spacing<fn() -> bool> {
    Spacing {
        every: Duration::ZERO,
        stopped: || false,
    }
}

/// The next saturation sample; never, without an admission.
async fn next_sample(admitting: &mut Option<Admitting>) -> Option<Duration> {
    match admitting {
        Some(a) => a.samples.recv().await,
        None => std::future::pending().await,
    }
}

/// A mailbox waiting for a slot: the largest first, then the earliest listed.
struct Queued<T> {
    size: u64,
    order: usize,
    item: T,
}

impl<T> Ord for Queued<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.size
            .cmp(&other.size)
            .then_with(|| other.order.cmp(&self.order))
    }
}

impl<T> PartialOrd for Queued<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> PartialEq for Queued<T> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl<T> Eq for Queued<T> {}

/// Runs `migrate` on every item, at most `slots` at once, largest first. `size_of` reads an
/// item's size and what `migrate` needs of it (`lookahead` of them at once, in list order,
/// while copies run); the first copy
/// starts once the first `lookahead` items (or all, if fewer) are sized, so the largest of
/// them goes first, and from then on a slot that frees is given at once to the largest item
/// sized and not yet started, but never sooner than `spacing.every` after the previous start
/// ([`START_SPACING`]); an item of size 0 (empty, or not sized), and every item once
/// `spacing.stopped` says so, starts without waiting. Results come in the order the copies
/// finish.
///
/// `migrate` names the item (`K`) and gives its copy, which is spawned as its own task: a
/// copy that panics is that item's [`Crashed`] result, never the caller's panic. Dropping
/// the returned future aborts the copies still running, as dropping their futures did.
///
/// With `admitting`, fewer than `slots` may run while items wait: at each saturation sample
/// its [`Admission`] is fed the running items' pacers ([`Running`]) and the items queued,
/// and no item starts while as many run as it allows (it never stops one that runs).
pub(super) async fn largest_first<T, U, K, R, S, SF, M, MF, X>(
    items: Vec<T>,
    lookahead: usize,
    slots: usize,
    spacing: Spacing<X>,
    mut admitting: Option<Admitting>,
    size_of: S,
    mut migrate: M,
) -> Vec<Result<R, Crashed<K>>>
where
    S: Fn(T) -> SF,
    SF: Future<Output = (u64, U)>,
    M: FnMut(U) -> (K, MF),
    MF: Future<Output = R> + Send + 'static,
    R: Send + 'static,
    X: Fn() -> bool,
{
    let total = items.len();
    let first_wave = lookahead.max(1).min(total);
    let slots = slots.max(1);
    let mut sizing = futures_util::stream::iter(items.into_iter().enumerate())
        .map(|(order, item)| {
            let sized = size_of(item);
            async move {
                let (size, item) = sized.await;
                Queued { size, order, item }
            }
        })
        .buffer_unordered(lookahead.max(1));
    let mut queue: BinaryHeap<Queued<U>> = BinaryHeap::new();
    let mut sized = 0;
    // A JoinSet aborts its tasks when dropped: a dropped run stops its copies.
    let mut running = JoinSet::new();
    let mut names = HashMap::new();
    let mut results = Vec::with_capacity(total);
    // Items of the mailboxes sized and not started.
    let mut queued_items = 0u64;
    let mut last_sample = tokio::time::Instant::now();
    let mut next_start = last_sample;
    loop {
        if sized >= total && queue.is_empty() {
            // Nothing left to start: the probe stops with its receiver.
            admitting = None;
        }
        let limit = admitting
            .as_ref()
            .map_or(slots, |a| a.admission.limit().min(slots));
        // A start waits for `next_start`.
        let mut spaced = false;
        if sized >= first_wave {
            while running.len() < limit {
                let Some(sized_next) = queue.peek().map(|next| next.size > 0) else {
                    break;
                };
                let now = tokio::time::Instant::now();
                if sized_next && !(spacing.stopped)() {
                    if now < next_start {
                        spaced = true;
                        break;
                    }
                    next_start = now + spacing.every;
                }
                let Some(next) = queue.pop() else { break };
                queued_items = queued_items.saturating_sub(next.size);
                let (key, copy) = migrate(next.item);
                names.insert(running.spawn(copy).id(), key);
            }
        }
        tokio::select! {
            () = tokio::time::sleep_until(next_start), if spaced => {}
            Some(late) = next_sample(&mut admitting), if admitting.is_some() => {
                if let Some(a) = admitting.as_mut() {
                    let now = tokio::time::Instant::now();
                    let (running_items, largest) = a.running.read();
                    let before = a.admission.limit();
                    let after = a.admission.observe(Sample {
                        elapsed: now - last_sample,
                        late,
                        running: running.len(),
                        items_left: running_items.saturating_add(queued_items),
                        largest,
                    });
                    last_sample = now;
                    if before != after {
                        tracing::debug!(target: "timeline", slots = after, running = running.len(), "mailbox admission");
                    }
                }
            }
            Some(next) = sizing.next(), if sized < total => {
                queued_items = queued_items.saturating_add(next.size);
                queue.push(next);
                sized += 1;
            }
            Some(ended) = running.join_next_with_id(), if !running.is_empty() => {
                match ended {
                    Ok((id, result)) => {
                        names.remove(&id);
                        results.push(Ok(result));
                    }
                    Err(error) => {
                        if let Some(key) = names.remove(&error.id()) {
                            results.push(Err(Crashed::new(key, error)));
                        }
                    }
                }
            }
            else => break,
        }
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;
    use tokio::time::Instant;

    /// One big mailbox listed in the middle of many small ones: it starts first, every slot
    /// stays busy while mailboxes are queued (each finished mailbox's slot is taken at once),
    /// every mailbox runs once, and the run ends when the big one does.
    #[tokio::test(start_paused = true)]
    async fn the_largest_mailbox_starts_first_and_no_slot_idles_while_mailboxes_wait() {
        let mut sizes = vec![10u64; 40];
        sizes[23] = 1_000;
        let started = Arc::new(Mutex::new(Vec::new()));
        // (start, finish) of each copy, in virtual time.
        let spans = Arc::new(Mutex::new(Vec::new()));
        let t0 = Instant::now();
        let items: Vec<(usize, u64)> = sizes.iter().copied().enumerate().collect();
        let done = largest_first(
            items,
            64,
            4,
            unspaced(),
            None,
            |(i, size)| async move {
                // A sizing read takes a moment, some a little longer.
                tokio::time::sleep(Duration::from_millis(1 + i as u64 % 3)).await;
                (size, (i, size))
            },
            |(i, size)| {
                let (started, spans) = (started.clone(), spans.clone());
                let copy = async move {
                    started.lock().unwrap().push(i);
                    let start = Instant::now() - t0;
                    tokio::time::sleep(Duration::from_millis(size)).await;
                    spans.lock().unwrap().push((start, Instant::now() - t0));
                    i
                };
                (i, copy)
            },
        )
        .await;
        let started = started.lock().unwrap().clone();
        assert_eq!(started[0], 23, "the big mailbox first: {started:?}");
        let mut all: Vec<usize> = done.into_iter().map(|r| r.unwrap()).collect();
        all.sort();
        assert_eq!(all, (0..40).collect::<Vec<_>>(), "each mailbox once");
        // The first four start together once the first wave is sized; every later start is at
        // the very instant a copy finished (virtual time): no slot idles while one waits.
        let spans = spans.lock().unwrap().clone();
        let mut starts: Vec<_> = spans.iter().map(|s| s.0).collect();
        starts.sort();
        let finishes: Vec<_> = spans.iter().map(|s| s.1).collect();
        assert!(starts[..4].iter().all(|s| *s == starts[0]), "{starts:?}");
        for at in &starts[4..] {
            assert!(finishes.contains(at), "a slot idled before {at:?}");
        }
        // 39 small mailboxes of 10 ms over the other 3 slots take 130 ms: the big one (1 s)
        // bounds the run.
        assert_eq!(
            Instant::now() - t0,
            starts[0] + Duration::from_millis(1_000)
        );
    }

    /// Regression (issue 17): started all at once, the first wave took every slot before the
    /// largest mailbox was sized, and it waited for that wave to end (2.1-2.9 s into a
    /// 19-25 s tenant benchmark). With starts 10 ms apart, the largest (listed 31st, sized 4
    /// at a time at 1 ms each) starts second, the first starts at once, no two starts are
    /// closer than the spacing, the slots are never exceeded, and every mailbox runs once.
    /// (Without the spacing it started after 1 s.)
    #[tokio::test(start_paused = true)]
    async fn regression_the_first_wave_took_every_slot_before_the_largest_was_sized() {
        use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
        let mut sizes = vec![10u64; 60];
        sizes[30] = 5_000;
        let t0 = Instant::now();
        let starts = Arc::new(Mutex::new(Vec::new()));
        let (now_running, most_running) =
            (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let items: Vec<(usize, u64)> = sizes.into_iter().enumerate().collect();
        let done = largest_first(
            items,
            4,
            20,
            Spacing {
                every: START_SPACING,
                stopped: || false,
            },
            None,
            |(i, size)| async move {
                tokio::time::sleep(Duration::from_millis(1)).await;
                (size, (i, size))
            },
            |(i, size)| {
                let starts = starts.clone();
                let (now_running, most_running) = (now_running.clone(), most_running.clone());
                let copy = async move {
                    starts.lock().unwrap().push((Instant::now() - t0, size));
                    most_running.fetch_max(now_running.fetch_add(1, Relaxed) + 1, Relaxed);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    now_running.fetch_sub(1, Relaxed);
                    i
                };
                (i, copy)
            },
        )
        .await;
        let starts = starts.lock().unwrap().clone();
        assert_eq!(
            starts[0].0,
            Duration::from_millis(1),
            "the first once the first wave is sized"
        );
        assert_eq!(starts[1], (Duration::from_millis(11), 5_000), "{starts:?}");
        for pair in starts.windows(2) {
            assert!(pair[1].0 - pair[0].0 >= START_SPACING, "{pair:?}");
        }
        assert_eq!(most_running.load(Relaxed), 20);
        let mut all: Vec<usize> = done.into_iter().map(|r| r.unwrap()).collect();
        all.sort();
        assert_eq!(all, (0..60).collect::<Vec<_>>(), "each mailbox once");
    }

    /// Items of size 0 (empty, or not sized), and every item once the run is stopped, start
    /// without spacing: 1,000 of either on 10 slots all start within a millisecond of
    /// virtual time, where spaced they would take 10 s (a stop would wait 10 ms for each
    /// mailbox still queued).
    #[tokio::test(start_paused = true)]
    async fn items_of_size_zero_and_a_stopped_runs_start_without_spacing() {
        for (size, stopped) in [(0u64, false), (500, true)] {
            let t0 = Instant::now();
            let done = largest_first(
                (0..1_000usize).collect(),
                64,
                10,
                Spacing {
                    every: START_SPACING,
                    stopped: move || stopped,
                },
                None,
                move |i| async move { (size, i) },
                |i| (i, async move { i }),
            )
            .await;
            assert_eq!(done.len(), 1_000);
            let took = Instant::now() - t0;
            assert!(took < Duration::from_millis(1), "size {size}: {took:?}");
        }
    }

    /// Issue 17: with 100 mailboxes on 2 saturated CPUs every mailbox got an even share, so
    /// the largest ran far under its Graph ceiling while the crowd ran, then alone at the end
    /// with the machine half idle. Here the largest (5,000 items, 20 ms a request with 4 in
    /// flight: 25 s at its ceiling) makes one request every 100 ms, 40 small ones (10 items,
    /// 20 ms each) keep 9 other slots busy, and the probe says the machine is saturated: new
    /// starts are held until only the head and one small mailbox run, and while the machine
    /// stays saturated no more than that run. Once the probe says it has room, the rest start
    /// and every mailbox runs once. (Without the hold all 40 had started after 0.8 s.)
    #[tokio::test(start_paused = true)]
    async fn regression_the_crowd_took_the_cpu_while_the_largest_mailbox_lagged() {
        use crate::graph::pacer::{Pacer, PacerSettings, Verdict};
        use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

        let settings = PacerSettings {
            max_in_flight: 4,
            budget: 10_000,
            window: Duration::from_secs(60),
            ..PacerSettings::default()
        };
        let running_paces = Arc::new(Running::default());
        let late_ms = Arc::new(AtomicU64::new(30));
        let (feed, samples) = mpsc::channel(16);
        let feeder = {
            let late_ms = late_ms.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let late = Duration::from_millis(late_ms.load(Ordering::Relaxed));
                    if feed.send(late).await.is_err() {
                        return;
                    }
                }
            })
        };
        let small_started = Arc::new(AtomicUsize::new(0));
        let small_running = Arc::new(AtomicUsize::new(0));
        let most_small_running_while_held = Arc::new(AtomicUsize::new(0));
        let held = Arc::new(AtomicBool::new(false));
        let head_done = Arc::new(AtomicBool::new(false));
        let mut sizes = vec![10u64; 41];
        sizes[5] = 5_000;
        let items: Vec<(usize, u64)> = sizes.into_iter().enumerate().collect();
        let scheduler = {
            let (running_paces, small_started, small_running) = (
                running_paces.clone(),
                small_started.clone(),
                small_running.clone(),
            );
            let (most, held, head_done) = (
                most_small_running_while_held.clone(),
                held.clone(),
                head_done.clone(),
            );
            let admitting = Admitting {
                admission: Admission::new(10),
                samples,
                running: running_paces.clone(),
            };
            tokio::spawn(largest_first(
                items,
                64,
                10,
                unspaced(),
                Some(admitting),
                |(i, size)| async move { (size, (i, size)) },
                move |(i, size)| {
                    let pacer = Arc::new(Pacer::new(settings.clone()));
                    running_paces.enter(&pacer);
                    pacer.set_items_left(size);
                    let (small_started, small_running) =
                        (small_started.clone(), small_running.clone());
                    let (most, held, head_done) = (most.clone(), held.clone(), head_done.clone());
                    let copy = async move {
                        let request = |ms| {
                            pacer.call(
                                move |_| async move {
                                    tokio::time::sleep(Duration::from_millis(ms)).await;
                                    Verdict::<(), ()>::Done(())
                                },
                                |_| {},
                            )
                        };
                        if size > 10 {
                            // The head: its requests at its latency (so its ceiling is
                            // known), one every 100 ms, until the test ends it.
                            while !head_done.load(Ordering::Relaxed) {
                                let _ = request(20).await;
                                pacer.item_downloaded();
                                tokio::time::sleep(Duration::from_millis(80)).await;
                            }
                            return i;
                        }
                        small_started.fetch_add(1, Ordering::Relaxed);
                        let now = small_running.fetch_add(1, Ordering::Relaxed) + 1;
                        if held.load(Ordering::Relaxed) {
                            most.fetch_max(now, Ordering::Relaxed);
                        }
                        for _ in 0..size {
                            let _ = request(20).await;
                            pacer.item_downloaded();
                        }
                        small_running.fetch_sub(1, Ordering::Relaxed);
                        i
                    };
                    (i, copy)
                },
            ))
        };
        // Saturated: within a second the crowd is down to one small mailbox beside the head.
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(
            small_started.load(Ordering::Relaxed) < 20,
            "every small mailbox started while the largest lagged on a saturated machine"
        );
        assert!(small_running.load(Ordering::Relaxed) <= 1);
        held.store(true, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let started_while_held = small_started.load(Ordering::Relaxed);
        assert!(started_while_held < 30, "{started_while_held} started");
        assert_eq!(
            most_small_running_while_held.load(Ordering::Relaxed),
            1,
            "more than one small mailbox ran beside the head while held"
        );
        // The machine has room: the slots fill again and the rest start.
        late_ms.store(0, Ordering::Relaxed);
        held.store(false, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(small_started.load(Ordering::Relaxed), 40);
        head_done.store(true, Ordering::Relaxed);
        let done = scheduler.await.unwrap();
        let mut all: Vec<usize> = done.into_iter().map(|r| r.unwrap()).collect();
        all.sort();
        assert_eq!(all, (0..41).collect::<Vec<_>>(), "each mailbox once");
        feeder.abort();
    }

    /// Issue 17: the whole run was one future, so every mailbox's CPU work shared one thread
    /// and a 2-core machine used one. Two mailboxes that each hold their thread until the
    /// other has been seen running (a copy's CPU work, in the extreme) both finish on a
    /// 2-worker runtime: each copy runs on its own thread. Before, the first held the only
    /// thread polling the copies and the second never started (each waits at most 20 s, then
    /// reports that it ran alone).
    #[test]
    fn mailboxes_run_on_separate_threads_of_a_multi_thread_runtime() {
        use std::sync::{Condvar, Mutex};
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        // The copies seen running, and the threads they ran on.
        let seen = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let done = runtime.block_on(largest_first(
            vec![0usize, 1],
            2,
            2,
            unspaced(),
            None,
            |i| async move { (10, i) },
            |i| {
                let seen = seen.clone();
                let copy = async move {
                    let (lock, changed) = &*seen;
                    let mut running = lock.lock().unwrap();
                    running.push(std::thread::current().id());
                    changed.notify_all();
                    let (running, _) = changed
                        .wait_timeout_while(running, Duration::from_secs(20), |r| r.len() < 2)
                        .unwrap();
                    running.len() == 2 && running[0] != running[1]
                };
                (i, copy)
            },
        ));
        let together: Vec<bool> = done.into_iter().map(|r| r.unwrap()).collect();
        assert_eq!(
            together,
            vec![true, true],
            "each copy saw the other running on another thread"
        );
    }

    /// A copy that panics is its mailbox's failure: the other copies run to their end and
    /// the scheduler returns, naming the one that crashed and why.
    #[tokio::test]
    async fn a_panicking_mailbox_is_its_own_failure_not_the_runs() {
        let done = largest_first(
            vec![0usize, 1, 2],
            3,
            2,
            unspaced(),
            None,
            |i| async move { (i as u64, i) },
            |i| {
                let copy = async move {
                    if i == 1 {
                        panic!("mailbox {i} broke");
                    }
                    i
                };
                (format!("user{i}"), copy)
            },
        )
        .await;
        let mut finished: Vec<usize> = done
            .iter()
            .filter_map(|r| r.as_ref().ok().copied())
            .collect();
        finished.sort();
        assert_eq!(finished, vec![0, 2]);
        let crashed: Vec<(&str, &str)> = done
            .iter()
            .filter_map(|r| r.as_ref().err())
            .map(|c| (c.key.as_str(), c.reason.as_str()))
            .collect();
        assert_eq!(crashed, vec![("user1", "mailbox 1 broke")]);
    }
}
