//! The order mailboxes run in. A tenant finishes when its largest mailbox does: at Exchange
//! Online's per-mailbox limits (10,000 requests per 10 minutes, throttling-limits.md §Outlook
//! service limits) a 100,000-message mailbox needs at least 100 minutes whatever else runs,
//! so it must start first while the small ones fill the other slots. [`largest_first`] sizes
//! mailboxes ahead of the copies (a plan's kept counts, else a cheap read per mailbox, many
//! at once, overlapping the copies of mailboxes already running) and gives each free slot at
//! once to the largest mailbox sized so far.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::future::Future;

use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;

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
pub(super) async fn largest_first<T, U, R, S, SF, M, MF>(
    items: Vec<T>,
    lookahead: usize,
    slots: usize,
    size_of: S,
    mut migrate: M,
) -> Vec<R>
where
    S: Fn(T) -> SF,
    SF: Future<Output = (u64, U)>,
    M: FnMut(U) -> MF,
    MF: Future<Output = R>,
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
    let mut running = FuturesUnordered::new();
    let mut results = Vec::with_capacity(total);
    loop {
        if sized >= first_wave {
            while running.len() < slots {
                match queue.pop() {
                    Some(next) => running.push(migrate(next.item)),
                    None => break,
                }
            }
        }
        tokio::select! {
            Some(next) = sizing.next(), if sized < total => {
                queue.push(next);
                sized += 1;
            }
            Some(result) = running.next(), if !running.is_empty() => results.push(result),
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
                async move {
                    started.lock().unwrap().push(i);
                    let start = Instant::now() - t0;
                    tokio::time::sleep(Duration::from_millis(size)).await;
                    spans.lock().unwrap().push((start, Instant::now() - t0));
                    i
                }
            },
        )
        .await;
        let started = started.lock().unwrap().clone();
        assert_eq!(started[0], 23, "the big mailbox first: {started:?}");
        let mut all = done.clone();
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
}
