//! The order mailboxes run in. A tenant finishes when its largest mailbox does: at Exchange
//! Online's per-mailbox limits (10,000 requests per 10 minutes, throttling-limits.md §Outlook
//! service limits) a 100,000-message mailbox needs at least 100 minutes whatever else runs,
//! so it must start first while the small ones fill the other slots. [`largest_first`] sizes
//! mailboxes ahead of the copies (a plan's kept counts, else a cheap read per mailbox, many
//! at once, overlapping the copies of mailboxes already running) and gives each free slot at
//! once to the largest mailbox sized so far. Each started mailbox is its own task on the
//! runtime, so on a multi-thread runtime mailboxes use every core (issue 17).

use std::any::Any;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::future::Future;

use futures_util::StreamExt;
use tokio::task::{JoinError, JoinSet};

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
/// sized and not yet started. Results come in the order the copies finish.
///
/// `migrate` names the item (`K`) and gives its copy, which is spawned as its own task: a
/// copy that panics is that item's [`Crashed`] result, never the caller's panic. Dropping
/// the returned future aborts the copies still running, as dropping their futures did.
pub(super) async fn largest_first<T, U, K, R, S, SF, M, MF>(
    items: Vec<T>,
    lookahead: usize,
    slots: usize,
    size_of: S,
    mut migrate: M,
) -> Vec<Result<R, Crashed<K>>>
where
    S: Fn(T) -> SF,
    SF: Future<Output = (u64, U)>,
    M: FnMut(U) -> (K, MF),
    MF: Future<Output = R> + Send + 'static,
    R: Send + 'static,
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
    loop {
        if sized >= first_wave {
            while running.len() < slots {
                match queue.pop() {
                    Some(next) => {
                        let (key, copy) = migrate(next.item);
                        names.insert(running.spawn(copy).id(), key);
                    }
                    None => break,
                }
            }
        }
        tokio::select! {
            Some(next) = sizing.next(), if sized < total => {
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
