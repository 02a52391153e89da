-- Mailbox leases (issue 18): the work queue of many workers sharing one journal. A worker
-- takes the largest queued mailbox whose lease is free or expired, with
-- SELECT ... FOR UPDATE SKIP LOCKED, so two workers never take the same one; each take draws
-- a new fencing token, and a write under a lease commits only while that token still holds.
-- The lease lives on the mailbox's own row: a taker that locks a row another worker just
-- leased re-checks that row's new version (READ COMMITTED), never a stale join.
CREATE TABLE leases (
    mailbox       TEXT PRIMARY KEY,
    size_bytes    BIGINT NOT NULL DEFAULT 0,
    state         TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'done')),
    worker        TEXT,
    expires_at    TIMESTAMPTZ,
    fencing_token BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX leases_queued ON leases (size_bytes DESC, mailbox) WHERE state = 'queued';
CREATE SEQUENCE lease_fencing_tokens;
