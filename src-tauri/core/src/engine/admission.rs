//! How many mailboxes may run now (issue 17): up to `parallel_mailboxes`, fewer while the
//! mailbox that bounds the run's finish (the head) runs under its Graph ceiling on a
//! saturated machine.
//!
//! A tenant finishes when its largest mailbox does. On a machine whose CPUs are saturated the
//! runtime and the OS share them evenly among the mailboxes running, so with 100 running the
//! largest gets a hundredth, far under what its 4 requests in flight could do, and then runs
//! alone at the end with the machine half idle (BENCHMARKS.md, "What starves the largest
//! mailbox"). Small mailboxes finish in moments, so not starting new ones while the head lags
//! shrinks the crowd fast and gives the head the CPU it needs; once it keeps its pace, or the
//! machine has room, slots fill again. Where nothing lags (equal mailboxes, a machine with
//! room, a real latency at which each mailbox's even share reaches its ceiling) nothing
//! changes.
//!
//! [`Admission`] is the pure controller (fed [`Sample`]s, it answers the slots);
//! [`Running`] reads the running mailboxes' pacers; [`probe`] samples the machine's
//! saturation ([`pacer::lateness_after`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::graph::pacer::{self, Pace, Pacer, Saturation};

/// How often the saturation probe asks to wake.
pub const PROBE_PERIOD: Duration = Duration::from_millis(20);

/// What the controller is fed, once per probe sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Time since the previous sample.
    pub elapsed: Duration,
    /// How late the saturation probe woke ([`pacer::lateness_after`]).
    pub late: Duration,
    /// Mailboxes running.
    pub running: usize,
    /// Items left in the mailboxes running and in those sized and waiting for a slot.
    pub items_left: u64,
    /// The running mailbox with the most items left (its [`Running`] id and pace), if any.
    pub largest: Option<(usize, Pace)>,
}

/// The head mailbox followed from sample to sample.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Head {
    id: usize,
    requests_done: u64,
    /// Its requests a second, smoothed (weight 1/8 for the newest); `None` until its
    /// ceiling is known.
    rate: Option<f64>,
}

/// The slots for mailboxes, from samples of the machine and of the head (pure).
///
/// The head is the running mailbox with the most left, and only while its time at its
/// ceiling ([`time_at_ceiling`]) is at least 3/4 of the run's projected remaining time (the
/// items left over the highest rate the run has had, i.e. with the machine full): it then
/// bounds the finish, and every second it
/// runs under its ceiling is a second added at the end. A head whose smoothed rate is under
/// 3/4 of its ceiling lags (the ceiling is from its fastest request, which a loaded machine
/// seldom repeats). While the head lags and the machine is saturated
/// ([`Saturation::saturated`]) the slots are [`Admission::FLOOR`]: the mailboxes running go
/// on, none starts until fewer than that run, so each one that ends frees the CPU it used.
/// While the head keeps its pace, or lags on a machine with room, the slots grow to
/// [`Admission::GROWTH`] over those running a sample (the crowd comes back gradually, not
/// all at once into saturation); with no head they are `cap` at once. Always within `[FLOOR, cap]` (or `cap` if
/// lower); it starts at `cap`.
#[derive(Debug, Clone, PartialEq)]
pub struct Admission {
    cap: usize,
    limit: usize,
    saturation: Saturation,
    /// Items left at the previous sample, the run's rate in items a second (smoothed, weight
    /// 1/8 for the newest), and the highest that rate has been: what the machine does when
    /// it is full, so the run's projected time does not grow while starts are held.
    last_left: Option<u64>,
    run_rate: f64,
    capacity: f64,
    head: Option<Head>,
}

impl Admission {
    /// The fewest slots while holding: the head and one more, so the run never narrows to
    /// the head alone while mailboxes wait.
    pub const FLOOR: usize = 2;
    /// Slots over those running added a sample while the head lags on a machine with room:
    /// refilled gradually, so the crowd does not overshoot back into saturation at once.
    pub const GROWTH: usize = 2;

    /// A controller of at most `cap` slots (at least 1), starting at `cap`.
    pub fn new(cap: usize) -> Self {
        let cap = cap.max(1);
        Admission {
            cap,
            limit: cap,
            saturation: Saturation::default(),
            last_left: None,
            run_rate: 0.0,
            capacity: 0.0,
            head: None,
        }
    }

    /// The slots now.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The head as of the last sample: `None` when no running mailbox bounds the finish,
    /// else whether it lags (runs under 3/4 of its ceiling).
    fn head_lags(&self, largest: Option<&Pace>, items_left: u64) -> Option<bool> {
        let (Some(head), Some(pace)) = (self.head, largest) else {
            return None;
        };
        let (Some(rate), Some(ceiling)) = (head.rate, burst_rate(pace)) else {
            return None;
        };
        if self.capacity <= 0.0 {
            return None;
        }
        let run_left = items_left as f64 / self.capacity;
        let bounds = time_at_ceiling(pace).is_some_and(|t| t * 4.0 >= run_left * 3.0);
        bounds.then_some(rate * 4.0 < ceiling * 3.0)
    }

    /// One sample; returns the slots.
    pub fn observe(&mut self, sample: Sample) -> usize {
        self.saturation.observe(sample.late);
        let seconds = sample.elapsed.as_secs_f64();
        if let (Some(last), true) = (self.last_left, seconds > 0.0) {
            let now = last.saturating_sub(sample.items_left) as f64 / seconds;
            self.run_rate += (now - self.run_rate) / 8.0;
            self.capacity = self.capacity.max(self.run_rate);
        }
        self.last_left = Some(sample.items_left);
        self.follow(sample.largest, seconds);
        let largest = sample.largest.map(|(_, pace)| pace);
        let floor = Self::FLOOR.min(self.cap);
        let grown = (self.limit.max(sample.running) + Self::GROWTH).min(self.cap);
        match self.head_lags(largest.as_ref(), sample.items_left) {
            None => self.limit = self.cap,
            Some(false) => self.limit = grown,
            // No mailbox running is stopped: the slots only stay taken until they end.
            Some(true) if self.saturation.saturated() => self.limit = floor,
            Some(true) if self.saturation.has_room() => self.limit = grown,
            Some(true) => {}
        }
        self.limit
    }

    /// Follows the running mailbox with the most left: its rate from its requests answered
    /// since the previous sample; a new one (or one whose count went back) starts at its
    /// ceiling, so a few slow samples, not one, make it lag.
    fn follow(&mut self, largest: Option<(usize, Pace)>, seconds: f64) {
        let Some((id, pace)) = largest else {
            self.head = None;
            return;
        };
        let ceiling = burst_rate(&pace);
        match &mut self.head {
            Some(head) if head.id == id && pace.requests_done >= head.requests_done => {
                let now = (pace.requests_done - head.requests_done) as f64 / seconds.max(1e-6);
                head.requests_done = pace.requests_done;
                head.rate = match head.rate {
                    Some(rate) => Some(rate + (now - rate) / 8.0),
                    None => ceiling,
                };
            }
            _ => {
                self.head = Some(Head {
                    id,
                    requests_done: pace.requests_done,
                    rate: ceiling,
                })
            }
        }
    }
}

/// A mailbox's most requests a second while its budget's window has room: `max_in_flight`
/// over its fastest answered request. `None` before its first answer, or while the window is
/// all but full (it then runs at its budget's pace, which is its ceiling).
pub fn burst_rate(pace: &Pace) -> Option<f64> {
    let fastest = pace.fastest?.as_secs_f64().max(1e-6);
    (pace.room as usize > pace.max_in_flight).then(|| pace.max_in_flight as f64 / fastest)
}

/// The least time a mailbox needs for the items it has left (a request each) at its Graph
/// ceiling: at [`burst_rate`] while its window has room, and the rest at its budget's pace
/// (`budget` per `window`; Exchange Online: 10,000 per 10 minutes, throttling-limits.md,
/// Outlook service limits). `None` where [`burst_rate`] is.
pub fn time_at_ceiling(pace: &Pace) -> Option<f64> {
    let burst = burst_rate(pace)?;
    let at_burst = pace.items_left as f64 / burst;
    let beyond = pace.items_left.saturating_sub(u64::from(pace.room));
    let budget = f64::from(pace.budget.max(1));
    let at_budget = beyond as f64 * pace.window.as_secs_f64() / budget;
    Some(at_burst.max(at_budget))
}

/// The running mailboxes' pacers, as the engine starts them; a mailbox's entry goes when its
/// pacer is dropped.
#[derive(Debug, Default)]
pub struct Running {
    pacers: Mutex<Vec<(usize, Weak<Pacer>)>>,
    next: AtomicUsize,
}

impl Running {
    /// A mailbox starts, paced by `pacer`.
    pub fn enter(&self, pacer: &Arc<Pacer>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().push((id, Arc::downgrade(pacer)));
    }

    /// Items left over the running mailboxes, and the one with the most left.
    pub fn read(&self) -> (u64, Option<(usize, Pace)>) {
        let mut pacers = self.lock();
        pacers.retain(|(_, pacer)| pacer.strong_count() > 0);
        let mut total = 0u64;
        let mut largest: Option<(usize, Pace)> = None;
        for (id, pacer) in pacers.iter() {
            let Some(pacer) = pacer.upgrade() else {
                continue;
            };
            let pace = pacer.pace();
            total = total.saturating_add(pace.items_left);
            if largest.is_none_or(|(_, l)| pace.items_left > l.items_left) {
                largest = Some((*id, pace));
            }
        }
        (total, largest)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(usize, Weak<Pacer>)>> {
        // A poisoned lock only means another task panicked while pushing or pruning.
        self.pacers.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Spawns the saturation probe on the current runtime: every [`PROBE_PERIOD`] it sends how
/// late it woke, until the receiver is dropped. Outside a runtime nothing is spawned and the
/// receiver never yields.
pub fn probe() -> mpsc::Receiver<Duration> {
    let (samples, received) = mpsc::channel(16);
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            loop {
                let late = pacer::lateness_after(PROBE_PERIOD).await;
                // Full: the scheduler is busy; this sample is dropped, the next one counts.
                if let Err(mpsc::error::TrySendError::Closed(_)) = samples.try_send(late) {
                    return;
                }
            }
        });
    }
    received
}

#[cfg(test)]
mod tests {
    use super::*;

    const LATE: Duration = Duration::from_millis(30);
    const ON_TIME: Duration = Duration::from_millis(1);
    const TICK: Duration = Duration::from_millis(20);

    /// A head of `left` items with `done` requests answered, 8 ms at its fastest with 4 in
    /// flight (500 a second) and a window with room.
    fn head(left: u64, done: u64) -> Pace {
        Pace {
            items_left: left,
            requests_done: done,
            fastest: Some(Duration::from_millis(8)),
            max_in_flight: 4,
            room: 10_000,
            budget: 10_000,
            window: Duration::from_secs(60),
        }
    }

    /// Feeds `samples` ticks: the run does `run_rate` items a second, the head `head_rate`
    /// requests a second (and as many items), the machine `late` each tick; `running`
    /// mailboxes run. Returns the slots after each.
    struct Run {
        admission: Admission,
        left: u64,
        head_left: u64,
        head_done: u64,
    }

    impl Run {
        fn new(cap: usize, left: u64, head_left: u64) -> Self {
            Run {
                admission: Admission::new(cap),
                left,
                head_left,
                head_done: 0,
            }
        }

        fn tick(&mut self, late: Duration, run_rate: u64, head_rate: u64, running: usize) -> usize {
            let per_tick = |rate: u64| rate * TICK.as_millis() as u64 / 1000;
            self.left = self.left.saturating_sub(per_tick(run_rate));
            self.head_left = self.head_left.saturating_sub(per_tick(head_rate));
            self.head_done += per_tick(head_rate);
            self.admission.observe(Sample {
                elapsed: TICK,
                late,
                running,
                items_left: self.left,
                largest: Some((7, head(self.head_left, self.head_done))),
            })
        }
    }

    /// The tenant benchmark's shape: 100 mailboxes on a saturated machine doing 1,000 items a
    /// second, 10,000 left, the head (5,000 left: 10 s at its 500 a second, over 3/4 of the
    /// run's 10 s) doing 50. Starts are held: the slots fall to the floor (the head and one
    /// more) and stay there while the crowd drains.
    #[test]
    fn holds_starts_while_the_head_lags_on_a_saturated_machine() {
        let mut run = Run::new(100, 10_000, 5_000);
        let mut running = 100;
        let mut slots = Vec::new();
        for _ in 0..60 {
            slots.push(run.tick(LATE, 1_000, 50, running));
            running = running.saturating_sub(3);
        }
        assert_eq!(slots[0], 100, "one sample decides nothing");
        assert!(slots.windows(2).all(|w| w[1] <= w[0]), "{slots:?}");
        assert_eq!(*slots.last().unwrap(), Admission::FLOOR, "{slots:?}");
    }

    /// Holds a run with the head lagging on a saturated machine (20 mailboxes running),
    /// then feeds it `samples` ticks of `late` with the head at `head_rate`: the slots grow
    /// back gradually (never falling, some between 20 and the cap) to the cap, not over it.
    fn fills_again_after_a_hold(late: Duration, head_rate: u64, samples: usize) {
        let mut run = Run::new(100, 10_000, 5_000);
        for _ in 0..40 {
            run.tick(LATE, 1_000, 50, 20);
        }
        assert_eq!(run.admission.limit(), Admission::FLOOR);
        let slots: Vec<usize> = (0..samples)
            .map(|_| run.tick(late, 1_000, head_rate, 20))
            .collect();
        assert!(slots.windows(2).all(|w| w[1] >= w[0]), "{slots:?}");
        assert!(slots.iter().any(|s| *s > 20 && *s < 100), "{slots:?}");
        assert_eq!(*slots.last().unwrap(), 100, "back at the cap, not over it");
    }

    /// The head catches up (450 a second of its 500), though the machine stays saturated.
    #[test]
    fn fills_again_when_the_head_keeps_its_pace() {
        fills_again_after_a_hold(LATE, 450, 80);
    }

    /// The head still lags but the machine has room (its samples on time).
    #[test]
    fn fills_again_gradually_when_the_machine_has_room() {
        fills_again_after_a_hold(ON_TIME, 50, 100);
    }

    /// One late sample among on-time ones (a page fault, one long poll) holds nothing.
    #[test]
    fn one_late_sample_is_ignored() {
        let mut run = Run::new(100, 10_000, 5_000);
        for i in 0..80 {
            let late = if i % 8 == 0 { LATE } else { ON_TIME };
            assert_eq!(run.tick(late, 1_000, 50, 100), 100, "sample {i}");
        }
    }

    /// Equal mailboxes (the `medium` benchmark: 50 x 2,000, each 40 s at its ceiling of 50 a
    /// second while the run needs 77 s at 1,300 a second): no mailbox bounds the finish, so
    /// nothing is held though every mailbox runs under its ceiling on a saturated machine.
    #[test]
    fn equal_mailboxes_have_no_head_to_protect() {
        let mut admission = Admission::new(50);
        let mut done = 0;
        for _ in 0..100 {
            done += 1;
            let pace = Pace {
                fastest: Some(Duration::from_millis(80)),
                ..head(2_000, done)
            };
            let slots = admission.observe(Sample {
                elapsed: TICK,
                late: LATE,
                running: 50,
                items_left: 100_000 - done * 26,
                largest: Some((3, pace)),
            });
            assert_eq!(slots, 50);
        }
    }

    /// A cap of 1 stays 1 (the floor is never over the cap); a head at its budget's pace
    /// (the window all but full) is at its ceiling, so nothing is held.
    #[test]
    fn never_over_the_cap_and_a_head_at_its_budget_is_at_pace() {
        let mut run = Run::new(1, 10_000, 5_000);
        for _ in 0..40 {
            assert_eq!(run.tick(LATE, 1_000, 50, 1), 1);
        }
        let mut admission = Admission::new(100);
        for i in 0..60 {
            let slots = admission.observe(Sample {
                elapsed: TICK,
                late: LATE,
                running: 100,
                items_left: 100_000 - i * 20,
                largest: Some((
                    1,
                    Pace {
                        room: 2,
                        ..head(50_000, i)
                    },
                )),
            });
            assert_eq!(slots, 100);
        }
    }

    /// The time at the ceiling: at the burst rate while the window has room, the rest at the
    /// budget's pace.
    #[test]
    fn time_at_ceiling_counts_the_budget_beyond_the_window() {
        assert_eq!(time_at_ceiling(&head(5_000, 0)), Some(10.0));
        // 100,000 items, 10,000 of room: 90,000 at 10,000 a minute.
        let t = time_at_ceiling(&head(100_000, 0)).unwrap();
        assert!((t - 540.0).abs() < 1e-6, "{t}");
        assert_eq!(
            time_at_ceiling(&Pace {
                fastest: None,
                ..head(5, 0)
            }),
            None
        );
    }
}
