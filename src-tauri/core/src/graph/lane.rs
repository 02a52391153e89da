//! The run's message downloads, shared by every mailbox, granted to the largest first. A
//! tenant finishes when its largest mailbox does (engine::schedule): when more downloads
//! wait than the lane has slots, a freed slot goes to the waiting download whose mailbox has
//! the most left to copy, so the mailbox that bounds the finish is never queued behind small
//! ones. With room to spare nobody waits and the order does not matter.
//!
//! An adaptive lane ([`DownloadLane::adaptive`], not used by the client yet: with its fixed
//! floor it throttled a CPU-bound run at Exchange's real latency, see
//! [`super::client::GraphClient::with_download_limit`]) sizes itself ([`LaneController`]): between a floor
//! ([`LANE_FLOOR`]) and `[run] max_downloads` (the cap, which bounds memory), it shrinks while
//! the machine is saturated and grows back while it is not and downloads wait. On a
//! saturated machine every download in flight takes an even share of the CPU, so a wide lane
//! only dilutes the largest mailbox's share; its priority acts only when slots are scarce.
//! The signal is this process's scheduling delay ([`pacer::lateness_after`]: how late a task
//! that asked to wake at a fixed interval runs), never Graph's response time, which varies
//! with message size and server load: a tenant with slow responses keeps its slots.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::oneshot;

use super::pacer;

/// The fewest slots the lane shrinks to: the mailbox with the most left keeps Exchange
/// Online's 4 requests in flight per mailbox (concepts/throttling-limits.md, Outlook service
/// limits), and the next three largest theirs.
pub const LANE_FLOOR: usize = 16;

/// How often the saturation probe asks to wake.
pub const PROBE_PERIOD: Duration = Duration::from_millis(20);

/// Download slots across a run; clones share them.
#[derive(Debug, Clone)]
pub struct DownloadLane(Arc<Mutex<Slots>>);

#[derive(Debug)]
struct Slots {
    /// Slots granted and not yet given back.
    held: usize,
    /// Slots that may be held at once: fixed, or set by the controller.
    limit: usize,
    waiting: BinaryHeap<Waiter>,
    /// Arrival order of the waiters: equal priorities are served first come, first served.
    arrivals: u64,
    /// Sizes the lane from the probe's samples; `None`: a fixed lane.
    controller: Option<LaneController>,
    /// The probe has been started (at the first download, inside the runtime).
    probing: bool,
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
    /// `slots` downloads at once (at least one), whatever the machine's load.
    pub fn new(slots: usize) -> Self {
        Self::with(slots.max(1), None)
    }

    /// At most `cap` downloads at once (at least one), fewer while the machine is saturated
    /// (never under [`LANE_FLOOR`], or `cap` if that is lower). The probe starts with the
    /// first download and ends when the lane is idle or its last clone is dropped.
    pub fn adaptive(cap: usize) -> Self {
        let controller = LaneController::new(LANE_FLOOR, cap.max(1));
        Self::with(controller.limit(), Some(controller))
    }

    fn with(limit: usize, controller: Option<LaneController>) -> Self {
        DownloadLane(Arc::new(Mutex::new(Slots {
            held: 0,
            limit,
            waiting: BinaryHeap::new(),
            arrivals: 0,
            controller,
            probing: false,
        })))
    }

    /// A slot: at once when one is free and nobody waits, else when every waiter of a higher
    /// `priority` (items its mailbox has left) and every earlier one of the same has had one.
    pub async fn acquire(&self, priority: u64) -> DownloadSlot {
        loop {
            let granted = {
                let mut slots = self.lock();
                if slots.controller.is_some() && !slots.probing {
                    slots.probing = true;
                    self.start_probe();
                }
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

    /// Slots that may be held at once now.
    pub fn limit(&self) -> usize {
        self.lock().limit
    }

    /// Sets the slots that may be held at once (at least one). A lower limit revokes no slot
    /// held: freed ones are not given out again until fewer than `limit` are held. A higher
    /// one is given to the waiters at once, the largest first.
    pub fn set_limit(&self, limit: usize) {
        self.lock().limit = limit.max(1);
        self.grant_waiting();
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

    /// Samples the runtime's scheduling delay every [`PROBE_PERIOD`] and sizes the lane by
    /// it, until the lane is gone or idle (no slot held, nobody waiting). Outside a runtime
    /// (which `acquire` never is) nothing runs and the lane keeps its size.
    fn start_probe(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let lane: Weak<Mutex<Slots>> = Arc::downgrade(&self.0);
        runtime.spawn(async move {
            loop {
                let late = pacer::lateness_after(PROBE_PERIOD).await;
                let Some(lane) = lane.upgrade().map(DownloadLane) else {
                    return;
                };
                let resized = {
                    let mut slots = lane.lock();
                    let waiting = !slots.waiting.is_empty();
                    if slots.held == 0 && !waiting {
                        // Idle (between runs of a long-lived client): the next download
                        // starts the probe again, with the controller as it was.
                        slots.probing = false;
                        return;
                    }
                    let Some(controller) = slots.controller.as_mut() else {
                        return;
                    };
                    let limit = controller.observe(late, waiting);
                    (limit != slots.limit).then_some(limit)
                };
                if let Some(limit) = resized {
                    tracing::debug!(limit, late_ms = late.as_millis(), "download lane resized");
                    lane.set_limit(limit);
                }
            }
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        // A poisoned lock only means another task panicked between plain counter updates.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Sizes the download lane from samples of the machine's saturation (pure: fed samples, it
/// answers the new limit; [`pacer::Saturation`] reads them). While the machine is saturated
/// the limit shrinks by a quarter per sample; while it has room and downloads wait for a
/// slot, it grows by [`LaneController::GROWTH`] per sample; in between it holds. Always
/// within `[floor, cap]`; it starts at the cap, so a machine with room never waits for it to
/// grow.
#[derive(Debug, Clone, PartialEq)]
pub struct LaneController {
    floor: usize,
    cap: usize,
    limit: usize,
    saturation: pacer::Saturation,
}

impl LaneController {
    /// A sample later than this was late ([`pacer::Saturation::LATE`]).
    pub const LATE: Duration = pacer::Saturation::LATE;
    /// Slots added per quiet sample while downloads wait.
    pub const GROWTH: usize = 2;

    /// A controller between `floor` and `cap` (the floor no higher than the cap, both at
    /// least 1), starting at the cap.
    pub fn new(floor: usize, cap: usize) -> Self {
        let cap = cap.max(1);
        LaneController {
            floor: floor.clamp(1, cap),
            cap,
            limit: cap,
            saturation: pacer::Saturation::default(),
        }
    }

    /// The limit now.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// One sample: the probe woke `late` after it asked to, and downloads were `waiting`
    /// for a slot or not. Returns the new limit.
    pub fn observe(&mut self, late: Duration, waiting: bool) -> usize {
        self.saturation.observe(late);
        if self.saturation.saturated() {
            self.limit = (self.limit - (self.limit / 4).max(1)).max(self.floor);
        } else if self.saturation.has_room() && waiting {
            self.limit = (self.limit + Self::GROWTH).min(self.cap);
        }
        self.limit
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

    const LATE: Duration = Duration::from_millis(30);
    const ON_TIME: Duration = Duration::from_millis(1);

    /// Sustained lateness shrinks the limit to the floor and no further; quiet samples with
    /// downloads waiting grow it back to the cap and no further.
    #[test]
    fn the_controller_shrinks_under_sustained_lateness_and_grows_back_when_quiet() {
        let mut c = LaneController::new(16, 128);
        assert_eq!(c.limit(), 128, "starts at the cap");
        let mut limits = Vec::new();
        for _ in 0..40 {
            limits.push(c.observe(LATE, true));
        }
        assert!(limits.windows(2).all(|w| w[1] <= w[0]), "{limits:?}");
        assert_eq!(c.limit(), 16, "at the floor: {limits:?}");
        for _ in 0..200 {
            c.observe(ON_TIME, true);
        }
        assert_eq!(c.limit(), 128, "back at the cap, not over it");
    }

    /// One late sample among quiet ones (a page fault, one long poll) changes nothing, nor
    /// does one in eight; three in a row do.
    #[test]
    fn the_controller_ignores_one_late_sample() {
        let mut c = LaneController::new(16, 128);
        for _ in 0..20 {
            assert_eq!(c.observe(LATE, false), 128);
            for _ in 0..7 {
                assert_eq!(c.observe(ON_TIME, false), 128);
            }
        }
        for _ in 0..10 {
            c.observe(ON_TIME, false);
        }
        assert_eq!(c.observe(LATE, false), 128);
        assert_eq!(c.observe(LATE, false), 128);
        assert_eq!(c.observe(LATE, false), 96, "the third in a row shrinks it");
    }

    /// Every other sample late (a saturated machine as measured: 40-80 % of the samples
    /// over 2 ms) holds the lane at its floor, though half the samples are on time.
    #[test]
    fn the_controller_stays_at_the_floor_while_every_other_sample_is_late() {
        let mut c = LaneController::new(16, 128);
        for i in 0..200 {
            c.observe(if i % 2 == 0 { LATE } else { ON_TIME }, true);
        }
        assert_eq!(c.limit(), 16);
    }

    /// Quiet samples grow the limit only while downloads wait: slots nobody asks for would
    /// only be taken at once by the next burst.
    #[test]
    fn the_controller_grows_only_while_downloads_wait() {
        let mut c = LaneController::new(16, 128);
        for _ in 0..40 {
            c.observe(LATE, true);
        }
        // Quiet again: the share of late samples falls under a tenth, then it grows, but
        // only while downloads wait.
        for _ in 0..30 {
            assert_eq!(c.observe(ON_TIME, false), 16);
        }
        assert_eq!(c.observe(ON_TIME, true), 16 + LaneController::GROWTH);
    }

    /// A cap under the floor is a fixed lane of the cap; a floor of 0 is 1.
    #[test]
    fn the_controller_stays_within_a_cap_under_the_floor() {
        let mut c = LaneController::new(16, 3);
        for _ in 0..10 {
            assert_eq!(c.observe(LATE, true), 3);
        }
        let mut c = LaneController::new(0, 4);
        for _ in 0..10 {
            c.observe(LATE, true);
        }
        assert_eq!(c.limit(), 1);
    }

    /// Spawns a download of a mailbox with `left` items that holds its slot until told, and
    /// records its name when granted.
    fn download(
        lane: &DownloadLane,
        name: &'static str,
        left: u64,
        order: &Arc<Mutex<Vec<&'static str>>>,
    ) -> (tokio::task::JoinHandle<()>, oneshot::Sender<()>) {
        let (lane, order) = (lane.clone(), order.clone());
        let (finish, finished) = oneshot::channel();
        let task = tokio::spawn(async move {
            let _slot = lane.acquire(left).await;
            order.lock().unwrap().push(name);
            let _ = finished.await;
        });
        (task, finish)
    }

    /// Four slots held when the limit drops to 2: none is revoked (all four downloads
    /// finish), freed ones are kept back until fewer than 2 are held, then go to the waiting
    /// mailbox with the most left; every slot comes back.
    #[tokio::test(start_paused = true)]
    async fn a_lowered_limit_revokes_no_slot_and_the_largest_gets_the_next() {
        let lane = DownloadLane::new(4);
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut held = Vec::new();
        for name in ["h1", "h2", "h3", "h4"] {
            held.push(download(&lane, name, 0, &order));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        lane.set_limit(2);
        let small = download(&lane, "small", 1, &order);
        tokio::time::sleep(Duration::from_millis(1)).await;
        let large = download(&lane, "large", 500, &order);
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(lane.lock().held, 4, "no slot held was revoked");
        let finish = |(task, tx): (tokio::task::JoinHandle<()>, oneshot::Sender<()>)| {
            let _ = tx.send(());
            task
        };
        for (i, h) in held.drain(..).enumerate() {
            finish(h).await.unwrap();
            tokio::time::sleep(Duration::from_millis(1)).await;
            let granted = order.lock().unwrap().len() - 4;
            // Held after this one finished: 3, 2, 1 (+ the large one), ...
            let expected = match i {
                0 | 1 => 0,
                2 => 1,
                _ => 2,
            };
            assert_eq!(granted, expected, "after {} finished", i + 1);
        }
        assert_eq!(order.lock().unwrap()[4..], ["large", "small"]);
        finish(large).await.unwrap();
        finish(small).await.unwrap();
        assert_eq!(lane.lock().held, 0, "every slot came back");
        assert!(lane.lock().waiting.is_empty());
    }

    /// A raised limit is given to the waiters at once, the largest first; the rest wait.
    #[tokio::test(start_paused = true)]
    async fn a_raised_limit_goes_to_the_waiting_largest_first() {
        let lane = DownloadLane::new(1);
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut all = vec![download(&lane, "held", 0, &order)];
        for (name, left) in [("a", 1), ("b", 500), ("c", 30)] {
            tokio::time::sleep(Duration::from_millis(1)).await;
            all.push(download(&lane, name, left, &order));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        lane.set_limit(3);
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(*order.lock().unwrap(), ["held", "b", "c"]);
        for (task, finish) in all {
            let _ = finish.send(());
            task.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), ["held", "b", "c", "a"]);
        assert_eq!(lane.lock().held, 0);
    }

    /// Issue 17: with 100 mailboxes on 2 CPUs the lane's 128 slots never filled up, so its
    /// priority never acted and the largest mailbox got the same starved share as every
    /// small one. Here a task hogs the runtime's only thread (as a saturated machine does):
    /// the lane shrinks to its floor without revoking the 40 slots held, gives a freed slot
    /// to nobody while 16 or more are held, and once the runtime is quiet grows back until
    /// every waiting download has had a slot.
    #[tokio::test]
    async fn regression_the_lane_kept_every_slot_while_the_machine_was_saturated() {
        let lane = DownloadLane::adaptive(64);
        assert_eq!(lane.limit(), 64);
        let mut held = Vec::new();
        for _ in 0..40 {
            held.push(lane.acquire(0).await);
        }
        // Blocks the thread for 50 ms at a time: every probe wakes about 30 ms late.
        for _ in 0..20 {
            std::thread::sleep(Duration::from_millis(50));
            tokio::task::yield_now().await;
        }
        assert_eq!(
            lane.limit(),
            LANE_FLOOR,
            "the lane kept its slots while saturated"
        );
        assert_eq!(lane.lock().held, 40, "no slot held was revoked");
        let waiting: Vec<_> = (0..30)
            .map(|_| {
                let lane = lane.clone();
                tokio::spawn(async move { lane.acquire(1).await })
            })
            .collect();
        tokio::task::yield_now().await;
        held.truncate(LANE_FLOOR);
        assert_eq!(
            lane.lock().held,
            LANE_FLOOR,
            "freed slots were given out over the limit"
        );
        // Quiet now: the limit grows while downloads wait, until all 30 have one.
        let mut granted = Vec::new();
        for w in waiting {
            granted.push(w.await.unwrap());
        }
        assert_eq!(lane.lock().held, LANE_FLOOR + 30);
        drop((held, granted));
        assert_eq!(lane.lock().held, 0, "every slot came back");
    }

    /// An idle lane (no slot held, nobody waiting: a long-lived client between runs) stops
    /// its probe; the next download starts it again.
    #[tokio::test(start_paused = true)]
    async fn an_idle_lane_stops_its_probe_until_the_next_download() {
        let lane = DownloadLane::adaptive(64);
        let slot = lane.acquire(1).await;
        tokio::time::sleep(PROBE_PERIOD * 3).await;
        assert!(lane.lock().probing, "probing while a slot is held");
        drop(slot);
        tokio::time::sleep(PROBE_PERIOD * 3).await;
        assert!(
            !lane.lock().probing,
            "the probe ran on while the lane was idle"
        );
        let _slot = lane.acquire(1).await;
        assert!(lane.lock().probing);
    }
}
