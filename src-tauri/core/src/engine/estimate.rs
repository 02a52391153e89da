//! How long a tenant's migration takes at best: one model for the Plan's estimate and for the
//! tenant benchmark's lower bound (issue 17.5). Pure arithmetic, no I/O.
//!
//! Four terms, each a time no run can beat, and the largest binds:
//! - **mailboxes**: each mailbox's requests at its own ceiling ([`mailbox_seconds`]), the
//!   mailboxes scheduled largest first onto `parallel_mailboxes` slots ([`run_seconds`]); the
//!   benchmark's lower bound takes only the largest mailbox (any schedule waits for it);
//! - **app limit**: every request of the tenant at Graph's limit per app across the tenant
//!   (130,000 per 10 s, learn.microsoft.com/graph/throttling-limits, global limits);
//! - **CPU**: every item's CPU over the machine's cores: the migrator's, and the destination
//!   server's where it runs on this machine ([`DestinationKind::Imap`]'s `mail_here` and
//!   `dav_here`);
//! - **destination**: every byte at the destination's rate.
//!
//! The CPU per item and the destination rates are measurements of this program on the test
//! machine (BENCHMARKS.md), not Graph's facts: [`Machine::default`] documents each, and the
//! benchmark overrides them with what it measured in the run.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use serde::Serialize;

use crate::graph::PacerSettings;

/// Mean time of one Graph request assumed by the Plan: a `$value` of a typical message of a
/// few tens of kilobytes from Exchange Online.
pub const ASSUMED_LATENCY: Duration = Duration::from_millis(250);

/// The migrator's CPU per item written (messages, events, contacts and tasks alike), in
/// seconds: BENCHMARKS.md, "Tenant scale", the quiet-machine runs 15-17 of 2026-12-07 (into
/// the local folder): 1.90-2.50 ms per message over 15,742 messages is 30-39 s for 42,742
/// items, 0.70-0.92 ms per item; the upper end.
pub const CPU_SECONDS_PER_ITEM: f64 = 0.000_92;

/// A destination server's CPU per item it stores, in seconds, counted when it runs on this
/// machine: Dovecot's, measured by the tenant benchmark ("Dovecot CPU", its master and all
/// its processes): BENCHMARKS.md, "Tenant scale", 2026-12-07 05:30 UTC (3.14 ms per message)
/// and 07:00 UTC (3.65 ms in the run of 06:13); the upper end of the quiet runs. IceWarp's
/// own CPU per item is not measured: the same figure is assumed for it and for a CalDAV/
/// CardDAV server on this machine.
pub const DESTINATION_CPU_SECONDS_PER_ITEM: f64 = 0.003_65;

/// A local folder's rate, bytes per second: BENCHMARKS.md, "Tenant scale" (2026-12-06), 2,000
/// of the tenant's messages written as the engine writes them (a file synced, renamed, the
/// folder synced), 16 at once: 31-54 MB/s; the lower end.
pub const FOLDER_BYTES_PER_SECOND: f64 = 31e6;

/// An IMAP server's rate, bytes per second: BENCHMARKS.md, "Results", the destination leg
/// (the migrator into Dovecot on the same machine, 2 mailboxes x 3,000 messages): 50.1 MB/s.
/// Also assumed for IceWarp, whose mail goes in by IMAP as well.
pub const IMAP_BYTES_PER_SECOND: f64 = 50e6;

/// Mean bytes of a message, for the destination term (Graph does not give a folder's size in
/// v1.0: reference/graph.md, GD21): BENCHMARKS.md, "Results", `small`, 1,340 MB in 20,000
/// messages of the realistic size profile.
pub const ASSUMED_MESSAGE_BYTES: u64 = 67_000;

/// What the source allows one mailbox and the tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Requests of one mailbox in flight at once (Exchange Online: 4).
    pub max_in_flight: usize,
    /// Requests of one mailbox per `window` (Exchange Online: 10,000 per 10 minutes).
    pub budget: u32,
    pub window: Duration,
    /// Requests of the whole tenant per window (Graph's limit per app): `None`, none.
    pub app: Option<(u32, Duration)>,
    /// Mean time of one request.
    pub latency: Duration,
    /// Mailboxes at once.
    pub parallel_mailboxes: usize,
}

impl Limits {
    /// The limits a run with these pacer settings keeps, at `latency` per request.
    pub fn of_run(pacer: &PacerSettings, parallel_mailboxes: usize, latency: Duration) -> Self {
        Limits {
            max_in_flight: pacer.max_in_flight,
            budget: pacer.budget,
            window: pacer.window,
            app: pacer.app.as_ref().map(|a| a.limit()),
            latency,
            parallel_mailboxes,
        }
    }
}

/// What the machine and the destination do.
#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    pub cpus: usize,
    /// CPU seconds per item written.
    pub cpu_seconds_per_item: f64,
    /// Bytes per second the destination takes.
    pub destination_bytes_per_second: f64,
    /// The destination server's CPU seconds per message on this machine's cores: 0 when it
    /// runs elsewhere.
    pub mail_server_cpu_seconds_per_message: f64,
    /// The same for the calendars, contacts and tasks (the DAV server).
    pub dav_server_cpu_seconds_per_item: f64,
}

impl Machine {
    /// This machine's CPUs, [`CPU_SECONDS_PER_ITEM`], `destination`'s measured rate and, for
    /// a server on this machine, [`DESTINATION_CPU_SECONDS_PER_ITEM`].
    pub fn writing_to(destination: DestinationKind) -> Self {
        let (mail_here, dav_here) = match destination {
            DestinationKind::Folder => (false, false),
            DestinationKind::Imap {
                mail_here,
                dav_here,
            } => (mail_here, dav_here),
        };
        let here = |yes: bool| {
            if yes {
                DESTINATION_CPU_SECONDS_PER_ITEM
            } else {
                0.0
            }
        };
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_seconds_per_item: CPU_SECONDS_PER_ITEM,
            destination_bytes_per_second: destination.bytes_per_second(),
            mail_server_cpu_seconds_per_message: here(mail_here),
            dav_server_cpu_seconds_per_item: here(dav_here),
        }
    }
}

impl Default for Machine {
    /// [`Machine::writing_to`] an IMAP server elsewhere (the slower destination measured).
    fn default() -> Self {
        Machine::writing_to(DestinationKind::default())
    }
}

/// Where a run writes, as the destination and CPU terms see it. A local folder's writes are
/// the migrator's work (in [`CPU_SECONDS_PER_ITEM`], measured into the folder); a server's
/// work is on its own CPUs, inside its rate, unless it runs on this machine: then it shares
/// the cores with the migrator and the CPU term counts it too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestinationKind {
    /// A local folder (Maildir++): [`FOLDER_BYTES_PER_SECOND`].
    Folder,
    /// An IMAP server, IceWarp included (its mail goes in by IMAP): [`IMAP_BYTES_PER_SECOND`].
    Imap {
        /// The IMAP server (IceWarp's host) runs on this machine ([`is_this_machine`]).
        mail_here: bool,
        /// The CalDAV/CardDAV server (IceWarp's WebDAV) runs on this machine.
        dav_here: bool,
    },
}

impl Default for DestinationKind {
    /// An IMAP server elsewhere, for a plan that is not told its destination.
    fn default() -> Self {
        DestinationKind::Imap {
            mail_here: false,
            dav_here: false,
        }
    }
}

impl DestinationKind {
    /// The destination of a run with this configuration: a server is on this machine when
    /// its host is a loopback address or `localhost` ([`is_this_machine`]).
    pub fn of(destination: &crate::config::DestinationConfig) -> Self {
        use crate::config::DestinationConfig;
        let url_here = |url: &Option<String>| {
            url.as_deref()
                .and_then(|u| url::Url::parse(u).ok())
                .and_then(|u| u.host_str().map(is_this_machine))
        };
        match destination {
            DestinationConfig::Folder { .. } => DestinationKind::Folder,
            DestinationConfig::Imap { host, dav_url, .. } => DestinationKind::Imap {
                mail_here: is_this_machine(host),
                dav_here: url_here(dav_url).unwrap_or(false),
            },
            DestinationConfig::IceWarp {
                host, webdav_url, ..
            } => DestinationKind::Imap {
                mail_here: is_this_machine(host),
                // The WebDAV base derives from the host unless overridden.
                dav_here: url_here(webdav_url).unwrap_or_else(|| is_this_machine(host)),
            },
        }
    }

    /// The measured rate of this kind of destination, bytes per second.
    pub fn bytes_per_second(self) -> f64 {
        match self {
            DestinationKind::Folder => FOLDER_BYTES_PER_SECOND,
            DestinationKind::Imap { .. } => IMAP_BYTES_PER_SECOND,
        }
    }
}

/// `host` (a name or an address, IPv6 bracketed or not) is this machine: a loopback address
/// (`127.0.0.0/8`, `::1`, or IPv4 loopback mapped into IPv6), `localhost` or a name under
/// `.localhost` (RFC 6761, section 6.3: they resolve to loopback). Other names of this
/// machine are not recognised: the estimate then leaves the server's CPU out.
pub fn is_this_machine(host: &str) -> bool {
    let bare = host.trim().trim_end_matches('.');
    let bare = bare
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(bare);
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.to_canonical().is_loopback(),
        Err(_) => {
            let name = bare.to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
    }
}

/// One mailbox's work.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MailboxWork {
    /// Graph requests.
    pub requests: u64,
    /// Items written (messages, events, contacts, tasks).
    pub items: u64,
    /// Of `items`, the messages (the rest go to the DAV server).
    pub messages: u64,
    /// Bytes written.
    pub bytes: u64,
}

/// The model's terms for one tenant, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
#[ts(export)]
pub struct Estimate {
    /// The mailboxes at their ceilings, largest first onto the parallel slots.
    pub mailboxes: f64,
    /// The largest mailbox alone at its ceiling.
    pub largest_mailbox: f64,
    /// Every request at the app's limit.
    pub app_limit: f64,
    /// Every item's CPU over the cores, the destination server's on this machine included.
    pub cpu: f64,
    /// Of `cpu`, the destination server's (0 when it runs elsewhere).
    pub destination_cpu: f64,
    /// The destination server runs on this machine: its CPU is counted in `cpu`.
    pub destination_cpu_counted: bool,
    /// Every byte at the destination's rate.
    pub destination: f64,
}

impl Estimate {
    /// The tenant's terms under `limits` on `machine`.
    pub fn of(mailboxes: &[MailboxWork], limits: &Limits, machine: &Machine) -> Self {
        let each: Vec<f64> = mailboxes
            .iter()
            .map(|m| mailbox_seconds(m.requests, limits))
            .collect();
        let requests: u64 = mailboxes.iter().map(|m| m.requests).sum();
        let items: u64 = mailboxes.iter().map(|m| m.items).sum();
        let bytes: u64 = mailboxes.iter().map(|m| m.bytes).sum();
        let messages: u64 = mailboxes.iter().map(|m| m.messages.min(m.items)).sum();
        let cpus = machine.cpus.max(1) as f64;
        let destination_cpu = (messages as f64 * machine.mail_server_cpu_seconds_per_message
            + (items - messages) as f64 * machine.dav_server_cpu_seconds_per_item)
            / cpus;
        Estimate {
            largest_mailbox: each.iter().copied().fold(0.0, f64::max),
            mailboxes: run_seconds(each.into_iter(), limits.parallel_mailboxes),
            app_limit: limits.app.map_or(0.0, |(budget, window)| {
                requests as f64 * window.as_secs_f64() / f64::from(budget.max(1))
            }),
            cpu: items as f64 * machine.cpu_seconds_per_item / cpus + destination_cpu,
            destination_cpu,
            destination_cpu_counted: machine.mail_server_cpu_seconds_per_message > 0.0
                || machine.dav_server_cpu_seconds_per_item > 0.0,
            destination: bytes as f64 / machine.destination_bytes_per_second.max(1.0),
        }
    }

    /// The estimate of the run: its largest term, the schedule of mailboxes included, and
    /// that term's name.
    pub fn seconds(&self) -> (&'static str, f64) {
        largest([
            ("mailboxes", self.mailboxes),
            ("app limit", self.app_limit),
            ("CPU", self.cpu),
            ("destination", self.destination),
        ])
    }

    /// The lower bound no run can beat: the largest term with the largest mailbox alone in
    /// place of the schedule, and that term's name.
    pub fn lower_bound(&self) -> (&'static str, f64) {
        largest([
            ("largest mailbox", self.largest_mailbox),
            ("app limit", self.app_limit),
            ("CPU", self.cpu),
            ("destination", self.destination),
        ])
    }
}

fn largest(terms: [(&'static str, f64); 4]) -> (&'static str, f64) {
    terms
        .into_iter()
        .fold(("none", 0.0), |a, b| if b.1 > a.1 { b } else { a })
}

/// The shortest time the per-mailbox limits allow for `requests` requests: bounded below by
/// both `requests x latency / max_in_flight` and, past the first window's budget, `window x
/// (requests / budget - 1)` (Graph counts requests per window; the first window's budget can
/// be spent at once).
pub fn mailbox_seconds(requests: u64, limits: &Limits) -> f64 {
    let by_flight =
        requests as f64 * limits.latency.as_secs_f64() / limits.max_in_flight.max(1) as f64;
    let budget = f64::from(limits.budget.max(1));
    let by_budget = limits.window.as_secs_f64() * (requests as f64 / budget - 1.0);
    by_flight.max(by_budget).max(0.0)
}

/// The time `parallel` slots need for mailboxes of the given durations, longest first onto
/// the least loaded slot (as the run schedules them).
pub fn run_seconds(mailboxes: impl Iterator<Item = f64>, parallel: usize) -> f64 {
    let mut jobs: Vec<f64> = mailboxes.filter(|s| s.is_finite() && *s > 0.0).collect();
    jobs.sort_by(|a, b| b.total_cmp(a));
    // Loads in milliseconds, as integers, so the heap has a total order.
    let mut workers: BinaryHeap<Reverse<u64>> =
        std::iter::repeat_n(Reverse(0), parallel.max(1)).collect();
    for job in jobs {
        if let Some(Reverse(load)) = workers.pop() {
            workers.push(Reverse(load + (job * 1000.0).round() as u64));
        }
    }
    workers.into_iter().map(|Reverse(l)| l).max().unwrap_or(0) as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(latency_ms: u64, parallel: usize) -> Limits {
        Limits {
            max_in_flight: 4,
            budget: 10_000,
            window: Duration::from_secs(600),
            app: Some((130_000, Duration::from_secs(10))),
            latency: Duration::from_millis(latency_ms),
            parallel_mailboxes: parallel,
        }
    }

    fn machine(cpus: usize, ms_per_item: f64, mb_per_second: f64) -> Machine {
        Machine {
            cpus,
            cpu_seconds_per_item: ms_per_item / 1000.0,
            destination_bytes_per_second: mb_per_second * 1e6,
            mail_server_cpu_seconds_per_message: 0.0,
            dav_server_cpu_seconds_per_item: 0.0,
        }
    }

    /// `got` is term `name` of about `seconds`.
    fn assert_binds(got: (&str, f64), name: &str, seconds: f64) {
        assert_eq!(got.0, name, "{got:?}");
        assert!(
            (got.1 - seconds).abs() < 1e-6,
            "{got:?}, expected {seconds}"
        );
    }

    fn mailbox(requests: u64, items: u64, bytes: u64) -> MailboxWork {
        MailboxWork {
            requests,
            items,
            messages: items,
            bytes,
        }
    }

    #[test]
    fn a_small_mailbox_is_bound_by_requests_in_flight() {
        // 4,000 requests of 250 ms, 4 at a time: 250 s; well inside the first window's budget.
        let s = mailbox_seconds(4_000, &exchange(250, 1));
        assert!((s - 250.0).abs() < 1e-9, "{s}");
    }

    #[test]
    fn a_big_mailbox_is_bound_by_the_ten_minute_budget() {
        // 100,000 requests: 10,000 in the first window, then 10,000 per 600 s: 9 more windows.
        // At 100 ms, 4 in flight would allow 40 per second, far above the budget's 16.7.
        let s = mailbox_seconds(100_000, &exchange(100, 1));
        assert!((s - 5_400.0).abs() < 1e-6, "{s}");
        // At 250 ms, 4 in flight is 16 per second: slower than the budget, so it binds.
        let s = mailbox_seconds(100_000, &exchange(250, 1));
        assert!((s - 6_250.0).abs() < 1e-6, "{s}");
    }

    #[test]
    fn mailboxes_are_packed_longest_first_onto_parallel_slots() {
        assert_eq!(run_seconds([10.0, 10.0, 10.0, 10.0].into_iter(), 2), 20.0);
        assert_eq!(run_seconds([30.0, 10.0, 10.0, 10.0].into_iter(), 2), 30.0);
        assert_eq!(run_seconds([5.0, 7.0].into_iter(), 8), 7.0);
        assert_eq!(run_seconds(std::iter::empty(), 4), 0.0);
    }

    /// Golden numbers: each term binds in turn.
    #[test]
    fn the_largest_mailbox_binds_a_tenant_with_one_huge_mailbox() {
        // 100,000 requests at 100 ms: 5,400 s; 99 small ones of 1,000 requests (25 s each).
        let mut tenant = vec![mailbox(100_000, 99_000, 99_000 * 50_000)];
        tenant.extend(std::iter::repeat_n(mailbox(1_000, 900, 900 * 50_000), 99));
        let e = Estimate::of(&tenant, &exchange(100, 10), &machine(8, 1.0, 50.0));
        assert!((e.largest_mailbox - 5_400.0).abs() < 1e-6, "{e:?}");
        assert!((e.mailboxes - 5_400.0).abs() < 1e-6, "{e:?}");
        // 199,000 requests at 13,000 per second; 188,100 items x 1 ms over 8 CPUs; 9.405 GB at
        // 50 MB/s.
        assert!((e.app_limit - 199_000.0 / 13_000.0).abs() < 1e-9, "{e:?}");
        assert!((e.cpu - 23.5125).abs() < 1e-9, "{e:?}");
        assert!((e.destination - 188.1).abs() < 1e-9, "{e:?}");
        assert_binds(e.seconds(), "mailboxes", e.mailboxes);
        assert_binds(e.lower_bound(), "largest mailbox", 5_400.0);
    }

    #[test]
    fn the_schedule_binds_many_equal_mailboxes_on_few_slots() {
        // 40 mailboxes of 4,000 requests at 250 ms (250 s each), 10 at once: 4 rounds.
        let tenant = vec![mailbox(4_000, 3_900, 0); 40];
        let e = Estimate::of(&tenant, &exchange(250, 10), &machine(8, 1.0, 50.0));
        assert!((e.mailboxes - 1_000.0).abs() < 1e-6, "{e:?}");
        assert_binds(e.seconds(), "mailboxes", 1_000.0);
        // The lower bound does not assume the schedule: one mailbox, or the CPU.
        assert_binds(e.lower_bound(), "largest mailbox", 250.0);
    }

    #[test]
    fn the_app_limit_binds_thousands_of_mailboxes_at_once() {
        // 10,000 mailboxes of 5,000 requests at 80 ms (100 s each), all at once: 50 million
        // requests at 13,000 per second.
        let tenant = vec![mailbox(5_000, 10, 0); 10_000];
        let e = Estimate::of(&tenant, &exchange(80, 10_000), &machine(1_000, 1.0, 50.0));
        assert!((e.mailboxes - 100.0).abs() < 1e-6, "{e:?}");
        let app = 50_000_000.0 / 13_000.0;
        assert_binds(e.seconds(), "app limit", app);
        assert_binds(e.lower_bound(), "app limit", app);
    }

    #[test]
    fn the_cpu_binds_many_small_items_on_two_cores() {
        // 100 mailboxes of 1,000 requests at 8 ms (2 s each), all at once; 100,000 items at
        // 2 ms over 2 CPUs: 100 s.
        let tenant = vec![mailbox(1_000, 1_000, 1_000); 100];
        let e = Estimate::of(&tenant, &exchange(8, 100), &machine(2, 2.0, 50.0));
        assert_binds(e.seconds(), "CPU", 100.0);
        assert_binds(e.lower_bound(), "CPU", 100.0);
    }

    #[test]
    fn the_destination_binds_large_messages_into_a_slow_server() {
        // 10 mailboxes of 100 requests at 8 ms; 10 x 100 MB at 10 MB/s: 100 s.
        let tenant = vec![mailbox(100, 100, 100_000_000); 10];
        let e = Estimate::of(&tenant, &exchange(8, 10), &machine(2, 1.0, 10.0));
        assert_binds(e.seconds(), "destination", 100.0);
        assert_binds(e.lower_bound(), "destination", 100.0);
    }

    /// `machine` with a destination server on it at `mail_ms` per message and `dav_ms` per
    /// calendar, contact or task item.
    fn sharing(machine: Machine, mail_ms: f64, dav_ms: f64) -> Machine {
        Machine {
            mail_server_cpu_seconds_per_message: mail_ms / 1000.0,
            dav_server_cpu_seconds_per_item: dav_ms / 1000.0,
            ..machine
        }
    }

    #[test]
    fn a_destination_server_on_this_machine_binds_through_the_cpu() {
        // 100 mailboxes of 1,000 requests at 8 ms (2 s each), all at once, 1,000 messages of
        // 1 kB each: the migrator's 1 ms per item over 2 CPUs is 50 s; the server's 3 ms per
        // message 150 s more: 200 s. The destination's rate (100 MB at 50 MB/s) is 2 s.
        let tenant = vec![mailbox(1_000, 1_000, 1_000_000); 100];
        let limits = exchange(8, 100);
        let e = Estimate::of(&tenant, &limits, &sharing(machine(2, 1.0, 50.0), 3.0, 0.0));
        assert!((e.destination_cpu - 150.0).abs() < 1e-9, "{e:?}");
        assert!(e.destination_cpu_counted, "{e:?}");
        assert_binds(e.seconds(), "CPU", 200.0);
        assert_binds(e.lower_bound(), "CPU", 200.0);
        // The same server elsewhere: the migrator's CPU alone, 50 s, still above the
        // mailboxes' 2 s.
        let e = Estimate::of(&tenant, &limits, &machine(2, 1.0, 50.0));
        assert_eq!((e.destination_cpu, e.destination_cpu_counted), (0.0, false));
        assert_binds(e.seconds(), "CPU", 50.0);
    }

    #[test]
    fn a_destination_server_on_this_machine_is_counted_where_another_term_binds() {
        // The huge-mailbox tenant above: its server's 3 ms per message over 8 CPUs, 99,000 +
        // 99 x 900 = 188,100 messages: 70.5375 s more CPU, still far below the mailbox's
        // 5,400 s.
        let mut tenant = vec![mailbox(100_000, 99_000, 99_000 * 50_000)];
        tenant.extend(std::iter::repeat_n(mailbox(1_000, 900, 900 * 50_000), 99));
        let e = Estimate::of(
            &tenant,
            &exchange(100, 10),
            &sharing(machine(8, 1.0, 50.0), 3.0, 0.0),
        );
        assert!((e.destination_cpu - 70.5375).abs() < 1e-9, "{e:?}");
        assert!((e.cpu - (23.5125 + 70.5375)).abs() < 1e-9, "{e:?}");
        assert!(e.destination_cpu_counted);
        assert_binds(e.seconds(), "mailboxes", 5_400.0);
        assert_binds(e.lower_bound(), "largest mailbox", 5_400.0);
    }

    #[test]
    fn messages_count_at_the_mail_servers_cpu_and_the_rest_at_the_dav_servers() {
        // 1,000 items of which 600 messages, 1 CPU, the migrator's CPU 0: 600 x 3 ms + 400 x
        // 5 ms = 3.8 s; with the DAV server elsewhere 1.8 s; with only it here 2.0 s.
        let tenant = [MailboxWork {
            requests: 1,
            items: 1_000,
            messages: 600,
            bytes: 0,
        }];
        let cpu = |mail_ms, dav_ms| {
            Estimate::of(
                &tenant,
                &exchange(8, 1),
                &sharing(machine(1, 0.0, 50.0), mail_ms, dav_ms),
            )
        };
        assert!((cpu(3.0, 5.0).destination_cpu - 3.8).abs() < 1e-9);
        assert!((cpu(3.0, 0.0).destination_cpu - 1.8).abs() < 1e-9);
        assert!((cpu(0.0, 5.0).destination_cpu - 2.0).abs() < 1e-9);
        assert!(cpu(0.0, 5.0).destination_cpu_counted);
    }

    #[test]
    fn only_a_server_on_this_machine_adds_its_cpu_to_the_machine() {
        let here = |mail_here, dav_here| {
            let m = Machine::writing_to(DestinationKind::Imap {
                mail_here,
                dav_here,
            });
            (
                m.mail_server_cpu_seconds_per_message,
                m.dav_server_cpu_seconds_per_item,
            )
        };
        let d = DESTINATION_CPU_SECONDS_PER_ITEM;
        assert_eq!(here(true, true), (d, d));
        assert_eq!(here(true, false), (d, 0.0));
        assert_eq!(here(false, false), (0.0, 0.0));
        let folder = Machine::writing_to(DestinationKind::Folder);
        assert_eq!(folder.mail_server_cpu_seconds_per_message, 0.0);
        assert_eq!(folder.dav_server_cpu_seconds_per_item, 0.0);
        assert_eq!(Machine::default().mail_server_cpu_seconds_per_message, 0.0);
    }

    #[test]
    fn this_machine_is_a_loopback_address_or_localhost() {
        for host in [
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "[::1]",
            "::ffff:127.0.0.1",
            "localhost",
            "LocalHost.",
            "mail.localhost",
        ] {
            assert!(is_this_machine(host), "{host}");
        }
        for host in [
            "mail.example.com",
            "10.0.0.1",
            "[2001:db8::1]",
            "localhost.example.com",
            "127.0.0.1.example.com",
            "",
        ] {
            assert!(!is_this_machine(host), "{host}");
        }
    }

    #[test]
    fn a_configured_destination_is_here_by_its_hosts() {
        use crate::config::FileConfig;
        let of = |destination: &str| {
            let file = format!(
                "[source]\ntenant_id = \"contoso.onmicrosoft.com\"\n\
                 client_id = \"00000000-0000-0000-0000-000000000001\"\n\n\
                 [destination]\n{destination}\n"
            );
            let config = FileConfig::parse(&file, std::path::Path::new("m.toml"))
                .unwrap_or_else(|e| panic!("{destination}: {e}"));
            DestinationKind::of(&config.destination())
        };
        let imap = |mail_here, dav_here| DestinationKind::Imap {
            mail_here,
            dav_here,
        };
        assert_eq!(
            of("kind = \"folder\"\npath = \"/srv/out\""),
            DestinationKind::Folder
        );
        let mail = "kind = \"imap\"\nmaster_user = \"admin\"\nhost =";
        assert_eq!(of(&format!("{mail} \"127.0.0.1\"")), imap(true, false));
        assert_eq!(
            of(&format!("{mail} \"mail.example.com\"")),
            imap(false, false)
        );
        let dav = "kind = \"imap\"\naccounts_csv = \"a.csv\"\nhost =";
        assert_eq!(
            of(&format!(
                "{dav} \"mail.example.com\"\ndav_url = \"https://localhost:5232/\""
            )),
            imap(false, true)
        );
        let icewarp = "kind = \"icewarp\"\nadmin_email = \"admin@example.com\"\n\
                       credentials_report = \"/root/new.csv\"\nhost =";
        assert_eq!(of(&format!("{icewarp} \"localhost\"")), imap(true, true));
        assert_eq!(
            of(&format!("{icewarp} \"mail.example.com\"")),
            imap(false, false)
        );
    }

    #[test]
    fn without_an_app_limit_its_term_is_zero() {
        let limits = Limits {
            app: None,
            ..exchange(8, 1)
        };
        let e = Estimate::of(&[mailbox(1_000_000, 1, 1)], &limits, &machine(2, 1.0, 10.0));
        assert_eq!(e.app_limit, 0.0);
    }
}
