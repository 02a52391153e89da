//! Mailbox leases: the work queue of workers sharing one PostgreSQL journal (issue 18).
//!
//! [`Journal::take_next_mailbox`] gives a worker the largest queued mailbox that no live lease
//! holds, with `SELECT ... FOR UPDATE SKIP LOCKED`: two workers asking at once lock different
//! rows, so they never get the same mailbox. Each take draws a new fencing token. A worker
//! that stops renewing ([`Journal::renew_lease`]) loses its lease when it expires; another
//! takes the mailbox with a higher token, and from then on every write of the old holder
//! under its [`Lease`] is refused with [`JournalError::LeaseLost`]: the write checks, and locks,
//! the lease row in the transaction that writes, so a takeover cannot slip in between.
//! Expiry is judged by the database's clock only, never the workers'.
//!
//! The SQLite journal has no leases (one machine, one run: [`super::StateLock`]).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::sql::{args, Row, Value};
use super::{Backend, Journal, JournalError, RECORD_DONE};

/// A worker's hold on one mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub mailbox: String,
    pub worker: String,
    /// Drawn anew at each take: higher than every token given for this mailbox before.
    pub fencing_token: i64,
    /// Its size in the queue (items, as a plan counted or a worker read them; 0: not known).
    pub size: u64,
}

/// What a worker finished since its last heartbeat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerProgress {
    pub mailboxes: u64,
    pub messages: u64,
    pub bytes: u64,
}

/// One worker as `status` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerRecord {
    pub worker: String,
    pub host: String,
    /// Unix seconds, by the database's clock.
    pub last_heartbeat: i64,
    pub seconds_since_heartbeat: u64,
    /// The mailboxes it holds a live lease on.
    pub holding: Vec<String>,
    pub mailboxes_done: u64,
    pub messages: u64,
    pub bytes: u64,
    /// Messages of finished mailboxes per second since it started.
    pub messages_per_second: f64,
}

/// The queue of mailboxes by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueProgress {
    /// Queued, no live lease.
    pub waiting: u64,
    /// Queued, held by a live lease.
    pub leased: u64,
    pub done: u64,
    pub failed: u64,
}

/// Mailboxes queued per transaction by [`Journal::enqueue_mailboxes`].
pub const ENQUEUE_BATCH: usize = 500;

/// Queues a mailbox or updates its size (a size of 0, unknown, keeps the one known).
const ENQUEUE: &str = "INSERT INTO leases (mailbox, size_bytes) VALUES (?1, ?2)
     ON CONFLICT (mailbox) DO UPDATE SET size_bytes = EXCLUDED.size_bytes
     WHERE EXCLUDED.size_bytes > 0 AND leases.size_bytes <> EXCLUDED.size_bytes";

/// Finds the lease row while `lease` still holds it, and locks it until the commit.
const LEASE_HELD: &str = "SELECT 1 FROM leases
     WHERE mailbox = ?1 AND worker = ?2 AND fencing_token = ?3 AND expires_at > now()
     FOR UPDATE";

fn held(lease: &Lease) -> Vec<Value> {
    args![&lease.mailbox, &lease.worker, lease.fencing_token]
}

/// The refusal of a write under `lease` once it is lost.
fn lost(lease: &Lease) -> JournalError {
    JournalError::LeaseLost {
        mailbox: lease.mailbox.clone(),
        worker: lease.worker.clone(),
    }
}

fn seconds(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX).max(1)
}

impl Journal {
    fn postgres(&self) -> Result<&super::postgres::PostgresStore, JournalError> {
        match &*self.backend {
            Backend::Postgres(p) => Ok(p),
            Backend::Sqlite(_) => Err(JournalError::NeedsPostgres),
        }
    }

    /// Puts a mailbox in the queue (or updates its size, the order of takes: largest first;
    /// a size of 0, unknown, keeps the one known: workers without the plan's counts do not
    /// undo the order). A mailbox already done or failed keeps its state.
    pub fn enqueue_mailbox(&self, mailbox: &str, size_bytes: u64) -> Result<(), JournalError> {
        super::postgres::block_on(self.enqueue_mailboxes(&[(mailbox, size_bytes)]))
    }

    /// [`Journal::enqueue_mailbox`] for many mailboxes, [`ENQUEUE_BATCH`] to a transaction of
    /// one round trip (a worker's start queues the whole tenant: 10,000 mailboxes were 10,000
    /// round trips before its first take).
    pub async fn enqueue_mailboxes(&self, mailboxes: &[(&str, u64)]) -> Result<(), JournalError> {
        let store = self.postgres()?;
        for batch in mailboxes.chunks(ENQUEUE_BATCH) {
            let statements: Vec<(&str, Vec<Value>)> = batch
                .iter()
                .map(|(mailbox, size)| {
                    let size = i64::try_from(*size).unwrap_or(i64::MAX);
                    (ENQUEUE, args![*mailbox, size])
                })
                .collect();
            store.transaction(&statements).await?;
        }
        Ok(())
    }

    /// The queued mailboxes of unknown size (0: no plan's count, not sized yet), by name.
    pub fn unsized_mailboxes(&self) -> Result<Vec<String>, JournalError> {
        self.postgres()?
            .query(
                "SELECT mailbox FROM leases WHERE state = 'queued' AND size_bytes = 0
                 ORDER BY mailbox",
                Vec::new(),
            )?
            .iter()
            .map(|r| r.text(0))
            .collect()
    }

    /// Leases the largest queued mailbox that no live lease holds to `worker` for `ttl`;
    /// `None` when there is none now.
    pub fn take_next_mailbox(
        &self,
        worker: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, JournalError> {
        super::postgres::block_on(self.take_next_mailbox_async(worker, ttl))
    }

    /// [`Journal::take_next_mailbox`], awaited (a worker's lease loops run on the engine's
    /// runtime: a blocked call would hold one of its threads).
    pub async fn take_next_mailbox_async(
        &self,
        worker: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, JournalError> {
        // SKIP LOCKED: rows another taker has locked are passed over, not waited for
        // (<https://www.postgresql.org/docs/15/sql-select.html#SQL-FOR-UPDATE-SHARE>). A row
        // leased by a taker that committed meanwhile is re-checked in its new version and
        // passed over too: its expires_at is no longer in the past.
        let rows = self
            .postgres()?
            .query_async(
                "UPDATE leases
                SET worker = ?1, expires_at = now() + make_interval(secs => CAST(?2 AS BIGINT)),
                    fencing_token = nextval('lease_fencing_tokens')
              WHERE mailbox = (
                    SELECT mailbox FROM leases
                     WHERE state = 'queued' AND (expires_at IS NULL OR expires_at < now())
                     ORDER BY size_bytes DESC, mailbox
                     LIMIT 1
                     FOR UPDATE SKIP LOCKED)
             RETURNING mailbox, fencing_token, size_bytes",
                args![worker, seconds(ttl)],
            )
            .await?;
        rows.first()
            .map(|r| {
                Ok(Lease {
                    mailbox: r.text(0)?,
                    worker: worker.to_string(),
                    fencing_token: r.int(1)?,
                    size: u64::try_from(r.int(2)?).unwrap_or(0),
                })
            })
            .transpose()
    }

    /// Extends a lease by `ttl` from now (the heartbeat); [`JournalError::LeaseLost`] when it
    /// expired or was taken over.
    pub fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<(), JournalError> {
        self.under_lease_unit(
            lease,
            &[(
                "UPDATE leases SET expires_at = now() + make_interval(secs => CAST(?2 AS BIGINT))
                 WHERE mailbox = ?1",
                args![&lease.mailbox, seconds(ttl)],
            )],
        )
    }

    /// Marks the leased mailbox done and releases the lease; refused as for
    /// [`Journal::renew_lease`].
    pub fn finish_mailbox(&self, lease: &Lease) -> Result<(), JournalError> {
        super::postgres::block_on(self.finish_mailbox_async(lease))
    }

    /// [`Journal::finish_mailbox`], awaited.
    pub async fn finish_mailbox_async(&self, lease: &Lease) -> Result<(), JournalError> {
        let release = (
            "UPDATE leases SET state = 'done', worker = NULL, expires_at = NULL
             WHERE mailbox = ?1",
            args![&lease.mailbox],
        );
        self.under_lease(lease, &[release]).await.map(|_| ())
    }

    /// [`Journal::record_done`] under a lease: refused with [`JournalError::LeaseLost`], and
    /// nothing recorded, once the lease expired or was taken over.
    pub fn record_done_under(
        &self,
        lease: &Lease,
        source_id: &str,
        dest_ref: &str,
        size: u64,
        hash: Option<&str>,
    ) -> Result<(), JournalError> {
        self.under_lease_unit(
            lease,
            &[(
                RECORD_DONE,
                args![
                    &lease.mailbox,
                    source_id,
                    dest_ref,
                    size as i64,
                    hash,
                    super::now()
                ],
            )],
        )
    }

    /// Marks the leased mailbox failed with `reason` (its migration stopped with an error)
    /// and releases the lease, so the workers do not take it again and again; `status` lists
    /// it with its reason. Refused as [`Journal::renew_lease`].
    pub fn fail_mailbox(&self, lease: &Lease, reason: &str) -> Result<(), JournalError> {
        super::postgres::block_on(self.fail_mailbox_async(lease, reason))
    }

    /// [`Journal::fail_mailbox`], awaited.
    pub async fn fail_mailbox_async(
        &self,
        lease: &Lease,
        reason: &str,
    ) -> Result<(), JournalError> {
        let release = (
            "UPDATE leases SET state = 'failed', reason = ?2, worker = NULL, expires_at = NULL
             WHERE mailbox = ?1",
            args![&lease.mailbox, reason],
        );
        self.under_lease(lease, &[release]).await.map(|_| ())
    }

    /// Mailboxes still to do: queued, leased or not (a worker waits for these before it
    /// exits, so a mailbox whose worker died is finished after its lease expires).
    pub fn mailboxes_left(&self) -> Result<u64, JournalError> {
        super::postgres::block_on(self.mailboxes_left_async())
    }

    /// [`Journal::mailboxes_left`], awaited.
    pub async fn mailboxes_left_async(&self) -> Result<u64, JournalError> {
        let rows = self
            .postgres()?
            .query_async("SELECT COUNT(*) FROM leases WHERE state = 'queued'", vec![])
            .await?;
        rows.first().map_or(Ok(0), |r| r.count(0))
    }

    /// Leases alive now (held by a worker whose heartbeat keeps them).
    pub fn live_leases(&self) -> Result<u64, JournalError> {
        let rows = self.postgres()?.query(
            "SELECT COUNT(*) FROM leases WHERE state = 'queued' AND expires_at > now()",
            vec![],
        )?;
        rows.first().map_or(Ok(0), |r| r.count(0))
    }

    /// Records `worker`'s heartbeat (and registers it on the first), adding what it finished
    /// since the last one.
    pub fn worker_heartbeat(
        &self,
        worker: &str,
        host: &str,
        finished: WorkerProgress,
    ) -> Result<(), JournalError> {
        super::postgres::block_on(self.worker_heartbeat_async(worker, host, finished))
    }

    /// [`Journal::worker_heartbeat`], awaited.
    pub async fn worker_heartbeat_async(
        &self,
        worker: &str,
        host: &str,
        finished: WorkerProgress,
    ) -> Result<(), JournalError> {
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.postgres()?
            .execute_async(
                "INSERT INTO workers (worker, host, mailboxes_done, messages, bytes)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (worker) DO UPDATE SET last_heartbeat = now(),
                 mailboxes_done = workers.mailboxes_done + EXCLUDED.mailboxes_done,
                 messages = workers.messages + EXCLUDED.messages,
                 bytes = workers.bytes + EXCLUDED.bytes",
                args![
                    worker,
                    host,
                    n(finished.mailboxes),
                    n(finished.messages),
                    n(finished.bytes)
                ],
            )
            .await?;
        Ok(())
    }

    /// Workers whose heartbeat is younger than `within` (this one included, once it beat).
    pub fn live_workers(&self, within: Duration) -> Result<u64, JournalError> {
        super::postgres::block_on(self.live_workers_async(within))
    }

    /// [`Journal::live_workers`], awaited.
    pub async fn live_workers_async(&self, within: Duration) -> Result<u64, JournalError> {
        let rows = self
            .postgres()?
            .query_async(
                "SELECT COUNT(*) FROM workers
              WHERE last_heartbeat > now() - make_interval(secs => CAST(?1 AS BIGINT))",
                args![seconds(within)],
            )
            .await?;
        rows.first().map_or(Ok(0), |r| r.count(0))
    }

    /// Every worker that ever beat, with the mailboxes it holds now, for `status`.
    pub fn workers(&self) -> Result<Vec<WorkerRecord>, JournalError> {
        let rows = self.postgres()?.query(
            "SELECT w.worker, w.host,
                    CAST(EXTRACT(EPOCH FROM w.started_at) AS BIGINT),
                    CAST(EXTRACT(EPOCH FROM w.last_heartbeat) AS BIGINT),
                    CAST(EXTRACT(EPOCH FROM now() - w.last_heartbeat) AS BIGINT),
                    w.mailboxes_done, w.messages, w.bytes,
                    COALESCE((SELECT string_agg(l.mailbox, ' ' ORDER BY l.mailbox) FROM leases l
                               WHERE l.worker = w.worker AND l.state = 'queued'
                                 AND l.expires_at > now()), '')
               FROM workers w ORDER BY w.worker",
            vec![],
        )?;
        rows.iter()
            .map(|r| {
                let started = r.int(2)?;
                let last = r.int(3)?;
                let messages = r.count(6)?;
                let seconds = (last - started).max(1) as f64;
                Ok(WorkerRecord {
                    worker: r.text(0)?,
                    host: r.text(1)?,
                    last_heartbeat: last,
                    seconds_since_heartbeat: r.count(4)?,
                    mailboxes_done: r.count(5)?,
                    messages,
                    bytes: r.count(7)?,
                    messages_per_second: messages as f64 / seconds,
                    holding: r.text(8)?.split_whitespace().map(str::to_string).collect(),
                })
            })
            .collect()
    }

    /// The queue's mailboxes by state, for `status`.
    pub fn queue_progress(&self) -> Result<QueueProgress, JournalError> {
        let rows = self.postgres()?.query(
            "SELECT
                COUNT(*) FILTER (WHERE state = 'queued' AND (expires_at IS NULL OR expires_at < now())),
                COUNT(*) FILTER (WHERE state = 'queued' AND expires_at >= now()),
                COUNT(*) FILTER (WHERE state = 'done'),
                COUNT(*) FILTER (WHERE state = 'failed')
               FROM leases",
            vec![],
        )?;
        let Some(r) = rows.first() else {
            return Ok(QueueProgress::default());
        };
        Ok(QueueProgress {
            waiting: r.count(0)?,
            leased: r.count(1)?,
            done: r.count(2)?,
            failed: r.count(3)?,
        })
    }

    fn under_lease_unit(
        &self,
        lease: &Lease,
        statements: &[(&str, Vec<Value>)],
    ) -> Result<(), JournalError> {
        super::postgres::block_on(self.under_lease(lease, statements)).map(|_| ())
    }

    /// A durable record under `lease` ([`super::postgres::PostgresStore::durable`]: shared
    /// with the records under the same lease that arrive meanwhile), refused as
    /// [`Journal::under_lease`].
    pub(super) async fn durable_under_lease(
        &self,
        lease: &Lease,
        sql: &str,
        args: Vec<Value>,
    ) -> Result<(), JournalError> {
        self.postgres()?
            .durable(Some((LEASE_HELD, held(lease))), sql, args)
            .await?
            .ok_or_else(|| lost(lease))
    }

    /// Runs `statements` in one transaction that first checks and locks the lease; the last
    /// statement's changed-row count and `RETURNING` rows.
    pub(super) async fn under_lease(
        &self,
        lease: &Lease,
        statements: &[(&str, Vec<Value>)],
    ) -> Result<(u64, Vec<Row>), JournalError> {
        self.postgres()?
            .guarded_transaction(Some((LEASE_HELD, held(lease))), statements)
            .await?
            .ok_or_else(|| lost(lease))
    }

    /// [`Journal::under_lease`] for statements that touch different rows and read nothing
    /// another writes, as one statement ([`super::postgres::PostgresStore::guarded_at_once`]).
    pub(super) async fn at_once_under_lease(
        &self,
        lease: &Lease,
        statements: &[(&str, Vec<Value>)],
    ) -> Result<(), JournalError> {
        self.postgres()?
            .guarded_at_once(Some((LEASE_HELD, held(lease))), statements)
            .await?
            .map(|_| ())
            .ok_or_else(|| lost(lease))
    }

    /// A handle on this journal (the same connection) whose every write commits only while
    /// `lease` holds, else is refused with [`JournalError::LeaseLost`]: what a worker gives
    /// the engine for the leased mailbox, so a worker cut off past its lease cannot record
    /// anything after the takeover.
    ///
    /// The handle also keeps the lease's deadline by this process's monotonic clock (from
    /// now, then from each [`Journal::renew_fence`] call's start: never later than the
    /// database's expiry), and refuses every call, reads too, once it has passed: a worker
    /// that was paused (SIGSTOP, a frozen VM) past its lease stops at its next journal call
    /// without asking the database.
    pub fn fenced(&self, lease: &Lease, ttl: Duration) -> Result<Journal, JournalError> {
        self.postgres()?;
        Ok(Journal {
            backend: self.backend.clone(),
            fence: Some(Fence {
                lease: lease.clone(),
                deadline: Arc::new(Mutex::new(Instant::now() + ttl)),
            }),
        })
    }

    /// On a [`Journal::fenced`] handle: [`JournalError::LeaseLost`] once the lease's local
    /// deadline has passed (no database call); `Ok` on any other handle. The engine asks right
    /// before each write to the destination.
    pub fn check_fence(&self) -> Result<(), JournalError> {
        match &self.fence {
            Some(fence) => fence.held().map(|_| ()),
            None => Ok(()),
        }
    }

    /// On a [`Journal::fenced`] handle: renews its lease by `ttl` ([`Journal::renew_lease`])
    /// and moves its local deadline.
    pub fn renew_fence(&self, ttl: Duration) -> Result<(), JournalError> {
        let Some(fence) = &self.fence else {
            return Ok(());
        };
        let sent = Instant::now();
        self.renew_lease(fence.held()?, ttl)?;
        *fence.deadline.lock().unwrap_or_else(|p| p.into_inner()) = sent + ttl;
        Ok(())
    }
}

/// A fenced handle's lease and its deadline by the local monotonic clock.
#[derive(Debug)]
pub(super) struct Fence {
    lease: Lease,
    deadline: Arc<Mutex<Instant>>,
}

impl Fence {
    /// The lease, while its local deadline has not passed.
    pub(super) fn held(&self) -> Result<&Lease, JournalError> {
        let deadline = *self.deadline.lock().unwrap_or_else(|p| p.into_inner());
        if Instant::now() < deadline {
            Ok(&self.lease)
        } else {
            Err(lost(&self.lease))
        }
    }
}
