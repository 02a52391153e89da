//! `m365-migrate worker` processes sharing a private PostgreSQL journal (issue 18): three at
//! once, one killed with SIGKILL mid-mailbox, one paused with SIGSTOP past its lease, and
//! PostgreSQL restarted mid-run. Every message arrives exactly once, byte for byte.

use crate::support;
use support::postgres::Postgres;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// A tenant of `users` mailboxes of `messages` each, answering after `latency`.
async fn tenant(users: usize, messages: usize, latency: u64) -> migrator_sim::SimServer {
    migrator_sim::SimServer::start(migrator_sim::SimConfig {
        tenant: migrator_sim::TenantSpec {
            users,
            messages_per_user: messages,
            ..migrator_sim::TenantSpec::default()
        },
        latency: Duration::from_millis(latency),
        ..migrator_sim::SimConfig::default()
    })
    .await
    .unwrap()
}

/// A configuration into a local folder with the journal in `pg`; returns (file, folder).
fn config(
    dir: &Path,
    sim: &migrator_sim::SimServer,
    pg: &Postgres,
    journal: &str,
) -> (PathBuf, PathBuf) {
    config_with(dir, sim, pg, "", journal)
}

/// [`config`] with more `[run]` settings (`parallel_mailboxes = 1` unless they set it).
fn config_with(
    dir: &Path,
    sim: &migrator_sim::SimServer,
    pg: &Postgres,
    run: &str,
    journal: &str,
) -> (PathBuf, PathBuf) {
    let path = dir.join("migrate.toml");
    let out = dir.join("out");
    let parallel = if run.contains("parallel_mailboxes") {
        ""
    } else {
        "parallel_mailboxes = 1\n"
    };
    std::fs::write(
        &path,
        format!(
            "{}[destination]\nkind = \"folder\"\npath = {:?}\n\n[run]\n{parallel}{run}\n[journal]\nurl = \"{}\"\n{journal}",
            support::source_toml(sim),
            out.display().to_string(),
            pg.url()
        ),
    )
    .unwrap();
    (path, out)
}

fn worker(config: &Path, sim: &migrator_sim::SimServer) -> Child {
    Command::new(env!("CARGO_BIN_EXE_m365-migrate"))
        .args(["--quiet", "worker", "--config"])
        .arg(config)
        .env("M365_CLIENT_SECRET", sim.client_secret())
        .env(
            "M365_MIGRATOR_JOURNAL_PASSWORD",
            support::postgres::PASSWORD,
        )
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(child: Child) -> Output {
    tokio::task::block_in_place(|| child.wait_with_output().unwrap())
}

fn said(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Waits until `sql` (a count) answers more than `above`, once the journal's tables exist.
async fn wait_for(pg: &Postgres, sql: &str, above: u64) {
    loop {
        if pg.psql("SELECT to_regclass('public.workers') IS NOT NULL") == "t"
            && pg.psql(sql).parse::<u64>().unwrap_or(0) > above
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {signal}");
}

fn assert_every_message_once(sim: &migrator_sim::SimServer, out: &Path, context: &str) {
    for user in &sim.tenant().users {
        let actual = support::maildir_bodies(&out.join(&user.mail));
        support::assert_exactly_once(user, &actual, context);
    }
}

/// The journal's records of the migration (items, folders, runs), as one text to compare.
fn journal_records(pg: &Postgres) -> String {
    pg.psql(
        "SELECT md5(
            (SELECT string_agg(user_id || source_id || state || coalesce(dest_ref, '') || updated_at, ',' ORDER BY user_id, source_id) FROM items) ||
            (SELECT coalesce(string_agg(user_id || folder_id || coalesce(delta_link, ''), ',' ORDER BY user_id, folder_id), '') FROM folders) ||
            (SELECT string_agg(id || status || coalesce(finished_at, 0), ',' ORDER BY id) FROM runs) ||
            (SELECT string_agg(mailbox || state || fencing_token, ',' ORDER BY mailbox) FROM leases))",
    )
}

/// The destination's files with their sizes, but for deliveries in progress (a Maildir's
/// `tmp/`, which readers never see: the paused worker's own partial file may still grow
/// there).
fn destination_files(out: &Path) -> Vec<(PathBuf, u64)> {
    let mut files: Vec<(PathBuf, u64)> = support::files_under(out)
        .into_iter()
        .filter(|p| !p.parent().is_some_and(|d| d.ends_with("tmp")))
        .map(|p| {
            let size = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
            (p, size)
        })
        .collect();
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread")]
async fn three_workers_migrate_every_mailbox_exactly_once() {
    let pg = Postgres::start();
    let sim = tenant(7, 25, 2).await;
    let dir = tempfile::tempdir().unwrap();
    let (config, out) = config(dir.path(), &sim, &pg, "");
    let workers: Vec<Child> = (0..3).map(|_| worker(&config, &sim)).collect();
    let mut finished_by_workers = 0;
    for w in workers {
        let o = finish(w);
        assert!(o.status.success(), "{}", said(&o));
        assert!(!said(&o).contains("lease lost"), "{}", said(&o));
        finished_by_workers += 1;
    }
    assert_eq!(finished_by_workers, 3);
    assert_every_message_once(&sim, &out, "after three workers");
    assert_eq!(
        pg.psql("SELECT count(*) FROM leases WHERE state = 'done'"),
        "7"
    );
    assert_eq!(
        pg.psql("SELECT count(*) FROM items WHERE kind = 'mail' AND state = 'done'"),
        "175"
    );
    // Each mailbox was migrated by one run of one worker: taken once, finished once.
    assert_eq!(
        pg.psql("SELECT count(*) FROM runs WHERE status = 'finished'"),
        "7"
    );
    assert_eq!(pg.psql("SELECT max(fencing_token) FROM leases"), "7");
    assert_eq!(
        pg.psql("SELECT count(*), sum(mailboxes_done) FROM workers"),
        "3|7"
    );
    // Each worker listed the tenant once, to queue it; no leased mailbox listed it again.
    let listings = sim
        .requests()
        .iter()
        .filter(|r| r.path_and_query.starts_with("/v1.0/users?"))
        .count();
    assert_eq!(listings, 3, "one user listing per worker");
    let status = tokio::task::block_in_place(|| {
        Command::new(env!("CARGO_BIN_EXE_m365-migrate"))
            .args(["status", "--config"])
            .arg(&config)
            .env(
                "M365_MIGRATOR_JOURNAL_PASSWORD",
                support::postgres::PASSWORD,
            )
            .output()
            .unwrap()
    });
    let shown = said(&status);
    assert!(status.status.success(), "{shown}");
    assert!(shown.contains("3 workers"), "{shown}");
    assert_eq!(shown.matches("holding: none").count(), 3, "{shown}");
    assert!(
        shown.contains("mailboxes: 7 done, 0 being migrated, 0 waiting, 0 failed (of 7)"),
        "{shown}"
    );
    // For docs/scale-out.md: the journal's size per migrated item (tables and indexes).
    eprintln!(
        "journal size: items {} bytes for {} rows; database {} bytes",
        pg.psql("SELECT pg_total_relation_size('items')"),
        pg.psql("SELECT count(*) FROM items"),
        pg.psql("SELECT pg_database_size(current_database())")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_killed_mid_mailbox_leaves_it_to_another_after_the_lease_expires() {
    let pg = Postgres::start();
    let sim = tenant(3, 150, 10).await;
    let dir = tempfile::tempdir().unwrap();
    let (config, out) = config(dir.path(), &sim, &pg, "lease_seconds = 3\n");
    let mut first = worker(&config, &sim);
    wait_for(&pg, "SELECT count(*) FROM items WHERE state = 'done'", 5).await;
    first.kill().unwrap(); // SIGKILL: no destructor, no lease given back.
    first.wait().unwrap();
    let held = pg.psql("SELECT mailbox FROM leases WHERE state = 'queued' AND worker IS NOT NULL");
    assert!(!held.is_empty(), "the killed worker held a mailbox");
    let partial: u64 = pg
        .psql("SELECT count(*) FROM items WHERE state = 'done'")
        .parse()
        .unwrap();
    assert!(partial < 450, "killed mid-run");

    let (second, third) = (worker(&config, &sim), worker(&config, &sim));
    for w in [second, third] {
        let o = finish(w);
        assert!(o.status.success(), "{}", said(&o));
    }
    assert_every_message_once(&sim, &out, "after a worker was killed mid-mailbox");
    assert_eq!(
        pg.psql("SELECT count(*) FROM leases WHERE state = 'done'"),
        "3"
    );
    assert_eq!(
        pg.psql("SELECT count(*) FROM items WHERE kind = 'mail' AND state = 'done'"),
        "450"
    );
    // The killed worker's mailbox was taken again, with a newer token.
    assert_ne!(
        pg.psql(&format!(
            "SELECT fencing_token FROM leases WHERE mailbox = '{held}'"
        )),
        "1"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_paused_past_its_lease_writes_nothing_after_the_takeover() {
    let pg = Postgres::start();
    let sim = tenant(2, 150, 10).await;
    let dir = tempfile::tempdir().unwrap();
    let (config, out) = config(dir.path(), &sim, &pg, "lease_seconds = 3\n");
    let paused = worker(&config, &sim);
    wait_for(&pg, "SELECT count(*) FROM items WHERE state = 'done'", 5).await;
    signal(&paused, "-STOP");
    let held = pg.psql("SELECT mailbox FROM leases WHERE state = 'queued' AND worker IS NOT NULL");
    assert!(!held.is_empty(), "the paused worker held a mailbox");

    // Another worker takes the mailbox over once the lease expired and finishes everything.
    let o = finish(worker(&config, &sim));
    assert!(o.status.success(), "{}", said(&o));
    assert_every_message_once(&sim, &out, "after the takeover");
    let journal_before = journal_records(&pg);
    let files_before = destination_files(&out);

    signal(&paused, "-CONT");
    let o = finish(paused);
    let text = said(&o);
    assert!(
        text.contains(&format!("lease lost: {held}")),
        "the resumed worker reports its lost lease: {text}"
    );
    assert_eq!(
        journal_records(&pg),
        journal_before,
        "the resumed worker recorded nothing"
    );
    let files_after = destination_files(&out);
    let changed: Vec<_> = files_after
        .iter()
        .filter(|f| !files_before.contains(f))
        .chain(files_before.iter().filter(|f| !files_after.contains(f)))
        .collect();
    assert!(
        changed.is_empty(),
        "the resumed worker wrote nothing: {changed:?}"
    );
    assert_every_message_once(&sim, &out, "after the paused worker resumed");
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_restarted_mid_run_workers_wait_and_go_on() {
    let mut pg = Postgres::start();
    let sim = tenant(4, 120, 10).await;
    let dir = tempfile::tempdir().unwrap();
    let (config, out) = config(dir.path(), &sim, &pg, "lease_seconds = 60\n");
    let workers = [worker(&config, &sim), worker(&config, &sim)];
    wait_for(&pg, "SELECT count(*) FROM items WHERE state = 'done'", 5).await;
    pg.stop();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    pg.start_again();
    for w in workers {
        let o = finish(w);
        assert!(o.status.success(), "{}", said(&o));
    }
    assert_every_message_once(&sim, &out, "after PostgreSQL restarted");
    assert_eq!(
        pg.psql("SELECT count(*) FROM leases WHERE state = 'done'"),
        "4"
    );
    assert_eq!(
        pg.psql("SELECT count(*) FROM items WHERE kind = 'mail' AND state = 'done'"),
        "480"
    );
}

/// Regression (issue 18.3): each worker paced itself by the whole of `[run]
/// app_requests_per_window`, so three workers together sent three times Graph's limit per app
/// and were answered 429 for it. Each takes its share (the limit over the live workers).
#[tokio::test(flavor = "multi_thread")]
async fn workers_together_stay_under_the_app_limit_each_taking_its_share() {
    let pg = Postgres::start();
    let sim = migrator_sim::SimServer::start(migrator_sim::SimConfig {
        tenant: migrator_sim::TenantSpec {
            users: 6,
            messages_per_user: 20,
            ..migrator_sim::TenantSpec::default()
        },
        // The app's limit binds (20 requests per second for all), not the latency; a slow
        // listing also leaves each worker time to count the others before its first take
        // (a worker that joins later is counted at the others' next heartbeat).
        latency: Duration::from_millis(100),
        app_limit: Some(migrator_sim::AppLimit {
            budget: 40,
            window: Duration::from_secs(2),
            announce: false,
        }),
        ..migrator_sim::SimConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (config, out) = config_with(
        dir.path(),
        &sim,
        &pg,
        "workloads = [\"mail\"]\napp_requests_per_window = 40\napp_window_seconds = 2\n",
        "lease_seconds = 3\n",
    );
    let workers: Vec<Child> = (0..3).map(|_| worker(&config, &sim)).collect();
    for w in workers {
        let o = finish(w);
        assert!(o.status.success(), "{}", said(&o));
    }
    assert_every_message_once(&sim, &out, "after three workers under a low app limit");
    let requests = sim.requests();
    let t0 = requests.first().map(|r| r.at);
    let throttled: Vec<_> = requests
        .iter()
        .filter(|r| r.app_throttled)
        .map(|r| (t0.map(|t| r.at - t), &r.path_and_query))
        .collect();
    assert!(
        throttled.is_empty(),
        "{} of {} requests answered 429 for the app's limit (since the first request): {throttled:?}",
        throttled.len(),
        requests.len()
    );
    assert_eq!(
        pg.psql("SELECT count(*), sum(mailboxes_done) FROM workers"),
        "3|6"
    );
}

/// Regression (issue 18): each leased mailbox's run signed in anew, one token request per
/// mailbox. One worker signs in once and its token serves every mailbox it leases.
#[tokio::test(flavor = "multi_thread")]
async fn one_worker_signs_in_once_for_all_its_mailboxes() {
    let pg = Postgres::start();
    let sim = tenant(5, 4, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let (config, out) = config_with(dir.path(), &sim, &pg, "workloads = [\"mail\"]\n", "");
    let o = finish(worker(&config, &sim));
    assert!(o.status.success(), "{}", said(&o));
    assert_every_message_once(&sim, &out, "after one worker");
    assert_eq!(
        pg.psql("SELECT count(*) FROM leases WHERE state = 'done'"),
        "5"
    );
    let sign_ins = sim
        .requests()
        .iter()
        .filter(|r| r.path_and_query.contains("/oauth2/v2.0/token"))
        .count();
    assert_eq!(sign_ins, 1, "one token request for 5 mailboxes");
}

/// Regression (issue 18, found by the coordination benchmark): a worker's lease loop with
/// nothing left to take, while another loop of the same worker still migrated a mailbox,
/// looked at the queue again only a third of a lease later, so the worker exited up to
/// `lease_seconds / 3` after its last mailbox was done (40 s by default). Its idle loops now
/// wake when another settles a mailbox. With a lease of 600 s the old wait is 200 s; the
/// deadline below only guards against that hang, far from both outcomes.
#[tokio::test(flavor = "multi_thread")]
async fn a_worker_exits_when_its_last_mailbox_is_done_not_a_heartbeat_later() {
    let pg = Postgres::start();
    let sim = tenant(4, 10, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let (config, out) = config_with(
        dir.path(),
        &sim,
        &pg,
        "parallel_mailboxes = 3\nworkloads = [\"mail\"]\n",
        "lease_seconds = 600\n",
    );
    let mut w = worker(&config, &sim);
    let started = std::time::Instant::now();
    while w.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(100) {
            w.kill().unwrap();
            let o = finish(w);
            panic!(
                "the worker was still running after its mailboxes were done ({} of 4): {}",
                pg.psql("SELECT count(*) FROM leases WHERE state = 'done'"),
                said(&o)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let o = finish(w);
    assert!(o.status.success(), "{}", said(&o));
    assert_every_message_once(&sim, &out, "after one worker of three loops");
    assert_eq!(
        pg.psql("SELECT count(*) FROM leases WHERE state = 'done'"),
        "4"
    );
}

/// Regression (issue 18, the coordination benchmark's start-up): a worker sized each queued
/// mailbox to take the largest first, then the run of each leased mailbox read its size again
/// before starting it, a second request on the mailbox's path to its first copy. The lease
/// now carries the size the queue holds, and the run starts with it.
#[tokio::test(flavor = "multi_thread")]
async fn regression_a_leased_mailbox_was_sized_twice() {
    let pg = Postgres::start();
    let sim = tenant(4, 3, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let (config, out) = config_with(dir.path(), &sim, &pg, "workloads = [\"mail\"]\n", "");
    let o = finish(worker(&config, &sim));
    assert!(o.status.success(), "{}", said(&o));
    assert_every_message_once(&sim, &out, "after one worker");
    let sizings = sim
        .requests()
        .iter()
        .filter(|r| {
            r.path_and_query.contains(
                "/mailFolders?includeHiddenFolders=true&$top=250&$select=id,totalItemCount",
            )
        })
        .count();
    assert_eq!(sizings, 4, "each of 4 mailboxes sized once");
}

/// Regression (issue 18): without a plan's counts a worker queued every mailbox with size 0,
/// so mailboxes were taken by name and a tenant's largest could start last (the coordination
/// benchmark's largest was taken 7th of 12). The worker now sizes them first, as `run` does.
#[tokio::test(flavor = "multi_thread")]
async fn a_worker_without_a_plan_takes_the_largest_mailbox_first() {
    let pg = Postgres::start();
    let sim = migrator_sim::SimServer::start(migrator_sim::SimConfig {
        tenant: migrator_sim::TenantSpec {
            users: 7,
            messages_per_user: 2,
            mailbox_sizes: migrator_sim::MailboxSizes::HeavyTailed {
                alpha: 1.5,
                largest: 40,
            },
            ..migrator_sim::TenantSpec::default()
        },
        ..migrator_sim::SimConfig::default()
    })
    .await
    .unwrap();
    let largest = sim
        .tenant()
        .users
        .iter()
        .max_by_key(|u| u.folders.iter().map(|f| f.messages.len()).sum::<usize>())
        .map(|u| u.mail.clone())
        .unwrap();
    let first_by_name = sim
        .tenant()
        .users
        .iter()
        .map(|u| u.mail.clone())
        .min()
        .unwrap();
    assert_ne!(
        largest, first_by_name,
        "the test needs the largest not first by name"
    );
    let dir = tempfile::tempdir().unwrap();
    let (config, out) = config_with(dir.path(), &sim, &pg, "workloads = [\"mail\"]\n", "");
    let o = finish(worker(&config, &sim));
    assert!(o.status.success(), "{}", said(&o));
    assert_every_message_once(&sim, &out, "after one worker");
    let order = pg.psql("SELECT string_agg(mailbox, ',' ORDER BY fencing_token) FROM leases");
    assert_eq!(
        order.split(',').next(),
        Some(largest.as_str()),
        "the largest mailbox is taken first: {order}"
    );
}
