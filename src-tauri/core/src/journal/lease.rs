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

use std::time::Duration;

use super::sql::{args, Value};
use super::{Backend, Journal, JournalError, RECORD_DONE};

/// A worker's hold on one mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub mailbox: String,
    pub worker: String,
    /// Drawn anew at each take: higher than every token given for this mailbox before.
    pub fencing_token: i64,
}

/// Finds the lease row while `lease` still holds it, and locks it until the commit.
const LEASE_HELD: &str = "SELECT 1 FROM leases
     WHERE mailbox = ?1 AND worker = ?2 AND fencing_token = ?3 AND expires_at > now()
     FOR UPDATE";

fn held(lease: &Lease) -> Vec<Value> {
    args![&lease.mailbox, &lease.worker, lease.fencing_token]
}

fn seconds(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX).max(1)
}

impl Journal {
    fn postgres(&self) -> Result<&super::postgres::PostgresStore, JournalError> {
        match &self.backend {
            Backend::Postgres(p) => Ok(p),
            Backend::Sqlite(_) => Err(JournalError::NeedsPostgres),
        }
    }

    /// Puts a mailbox in the queue (or updates its size, the order of takes: largest first).
    /// A mailbox already done stays done.
    pub fn enqueue_mailbox(&self, mailbox: &str, size_bytes: u64) -> Result<(), JournalError> {
        self.postgres()?.execute(
            "INSERT INTO leases (mailbox, size_bytes) VALUES (?1, ?2)
             ON CONFLICT (mailbox) DO UPDATE SET size_bytes = EXCLUDED.size_bytes",
            args![mailbox, i64::try_from(size_bytes).unwrap_or(i64::MAX)],
        )?;
        Ok(())
    }

    /// Leases the largest queued mailbox that no live lease holds to `worker` for `ttl`;
    /// `None` when there is none now.
    pub fn take_next_mailbox(
        &self,
        worker: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, JournalError> {
        // SKIP LOCKED: rows another taker has locked are passed over, not waited for
        // (<https://www.postgresql.org/docs/15/sql-select.html#SQL-FOR-UPDATE-SHARE>). A row
        // leased by a taker that committed meanwhile is re-checked in its new version and
        // passed over too: its expires_at is no longer in the past.
        let rows = self.postgres()?.query(
            "UPDATE leases
                SET worker = ?1, expires_at = now() + make_interval(secs => CAST(?2 AS BIGINT)),
                    fencing_token = nextval('lease_fencing_tokens')
              WHERE mailbox = (
                    SELECT mailbox FROM leases
                     WHERE state = 'queued' AND (expires_at IS NULL OR expires_at < now())
                     ORDER BY size_bytes DESC, mailbox
                     LIMIT 1
                     FOR UPDATE SKIP LOCKED)
             RETURNING mailbox, fencing_token",
            args![worker, seconds(ttl)],
        )?;
        rows.first()
            .map(|r| {
                Ok(Lease {
                    mailbox: r.text(0)?,
                    worker: worker.to_string(),
                    fencing_token: r.int(1)?,
                })
            })
            .transpose()
    }

    /// Extends a lease by `ttl` from now (the heartbeat); [`JournalError::LeaseLost`] when it
    /// expired or was taken over.
    pub fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<(), JournalError> {
        self.under_lease(
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
        self.under_lease(
            lease,
            &[(
                "UPDATE leases SET state = 'done', worker = NULL, expires_at = NULL
                 WHERE mailbox = ?1",
                args![&lease.mailbox],
            )],
        )
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
        self.under_lease(
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

    /// Runs `statements` in one transaction that first checks and locks the lease.
    fn under_lease(
        &self,
        lease: &Lease,
        statements: &[(&str, Vec<Value>)],
    ) -> Result<(), JournalError> {
        let applied = self
            .postgres()?
            .guarded_transaction(Some((LEASE_HELD, held(lease))), statements)?;
        if applied {
            Ok(())
        } else {
            Err(JournalError::LeaseLost {
                mailbox: lease.mailbox.clone(),
                worker: lease.worker.clone(),
            })
        }
    }
}
