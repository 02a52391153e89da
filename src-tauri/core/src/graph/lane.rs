//! The run's message downloads, shared by every mailbox, granted to the largest first. A
//! tenant finishes when its largest mailbox does (engine::schedule): when more downloads
//! wait than the lane has slots, a freed slot goes to the waiting download whose mailbox has
//! the most left to copy, so the mailbox that bounds the finish is never queued behind small
//! ones. With room to spare nobody waits and the order does not matter.
//!
//! The lane's size is fixed (`[run] max_downloads`, which bounds memory). A lane that shrank
//! while the machine was saturated, so that its priority would act, throttled a CPU-bound
//! run at Exchange's real latency and was removed; what gives the largest mailbox the CPU on
//! a saturated machine is the run's admission of mailboxes (`engine::admission`).

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// Download slots across a run; clones share them.
#[derive(Debug, Clone)]
pub struct DownloadLane(Arc<Mutex<Slots>>);

#[derive(Debug)]
struct Slots {
    /// Slots granted and not yet given back.
    held: usize,
    /// Slots that may be held at once.
    limit: usize,
    waiting: BinaryHeap<Waiter>,
    /// Arrival order of the waiters: equal priorities are served first come, first served.
    arrivals: u64,
}

#[derive(Debug)]
struct Waiter {
    priority: u64,
    arrival: u64,
    grant: oneshot::Sender<DownloadSlot>,
}

impl Ord for Waiter {
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.arrival.cmp(&self.arrival))
    }
}

impl PartialOrd for Waiter {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Waiter {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Waiter {}

/// One download slot, given back when dropped (also when it was granted to a waiter that
/// had gone meanwhile: the channel drops it).
#[derive(Debug)]
pub struct DownloadSlot(Option<DownloadLane>);

impl Drop for DownloadSlot {
    fn drop(&mut self) {
        if let Some(lane) = self.0.take() {
            lane.release();
        }
    }
}

impl DownloadLane {
    /// `slots` downloads at once (at least one).
    pub fn new(slots: usize) -> Self {
        DownloadLane(Arc::new(Mutex::new(Slots {
            held: 0,
            limit: slots.max(1),
            waiting: BinaryHeap::new(),
            arrivals: 0,
        })))
    }

    /// A slot: at once when one is free and nobody waits, else when every waiter of a higher
    /// `priority` (items its mailbox has left) and every earlier one of the same has had one.
    pub async fn acquire(&self, priority: u64) -> DownloadSlot {
        loop {
            let granted = {
                let mut slots = self.lock();
                if slots.held < slots.limit && slots.waiting.is_empty() {
                    slots.held += 1;
                    return DownloadSlot(Some(self.clone()));
                }
                let (grant, granted) = oneshot::channel();
                let arrival = slots.arrivals;
                slots.arrivals += 1;
                slots.waiting.push(Waiter {
                    priority,
                    arrival,
                    grant,
                });
                granted
            };
            // A waiter is only ever taken out of the queue to be granted a slot, so the
            // sender is never dropped unsent; should it be, wait again.
            if let Ok(slot) = granted.await {
                return slot;
            }
        }
    }

    /// A slot comes back, and goes to the first waiter while the limit allows.
    fn release(&self) {
        {
            let mut slots = self.lock();
            slots.held = slots.held.saturating_sub(1);
        }
        self.grant_waiting();
    }

    /// Gives slots to the waiters, the first first, while fewer than the limit are held.
    fn grant_waiting(&self) {
        loop {
            let next = {
                let mut slots = self.lock();
                if slots.held >= slots.limit {
                    return;
                }
                match slots.waiting.pop() {
                    Some(next) => {
                        slots.held += 1;
                        next
                    }
                    None => return,
                }
            };
            if let Err(mut slot) = next.grant.send(DownloadSlot(Some(self.clone()))) {
                // That waiter was dropped (its download cancelled): the slot is offered to
                // the next instead.
                slot.0 = None;
                let mut slots = self.lock();
                slots.held = slots.held.saturating_sub(1);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        // A poisoned lock only means another task panicked between plain counter updates.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// One slot held; downloads of mailboxes with 1, 500, 30 and 500 items left wait in that
    /// order: freed one by one, the slot goes to 500 (the first), 500, 30, 1.
    #[tokio::test(start_paused = true)]
    async fn a_freed_slot_goes_to_the_mailbox_with_the_most_left() {
        let lane = DownloadLane::new(1);
        let held = lane.acquire(0).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waiting = Vec::new();
        for (name, left) in [("a", 1), ("b", 500), ("c", 30), ("d", 500)] {
            let (lane, order) = (lane.clone(), order.clone());
            waiting.push(tokio::spawn(async move {
                let _slot = lane.acquire(left).await;
                order.lock().unwrap().push(name);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }));
            // Each is queued before the next arrives.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        drop(held);
        for w in waiting {
            w.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), ["b", "d", "c", "a"]);
        assert_eq!(lane.lock().held, 0, "every slot came back");
    }

    /// A waiter that goes away (its download cancelled) does not take a slot with it.
    #[tokio::test(start_paused = true)]
    async fn a_cancelled_waiter_loses_no_slot() {
        let lane = DownloadLane::new(1);
        let held = lane.acquire(0).await;
        let gone = {
            let lane = lane.clone();
            tokio::spawn(async move {
                lane.acquire(99).await;
            })
        };
        tokio::time::sleep(Duration::from_millis(1)).await;
        gone.abort();
        let _ = gone.await;
        drop(held);
        let again = tokio::time::timeout(Duration::from_secs(1), lane.acquire(1)).await;
        assert!(again.is_ok(), "the slot was lost with the cancelled waiter");
        drop(again);
        assert_eq!(lane.lock().held, 0);
    }
}
