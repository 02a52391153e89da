-- Workers (issue 18, second stage): each worker's heartbeat and what it finished, for
-- `m365-migrate status` and for the per-worker share of the shared limits (live workers are
-- those whose heartbeat is recent). A mailbox whose migration stopped with an error is
-- `failed` with its reason, so the workers do not take it again and again.
CREATE TABLE workers (
    worker         TEXT PRIMARY KEY,
    host           TEXT NOT NULL,
    started_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_heartbeat TIMESTAMPTZ NOT NULL DEFAULT now(),
    mailboxes_done BIGINT NOT NULL DEFAULT 0,
    messages       BIGINT NOT NULL DEFAULT 0,
    bytes          BIGINT NOT NULL DEFAULT 0
);
ALTER TABLE leases DROP CONSTRAINT leases_state_check;
ALTER TABLE leases ADD CONSTRAINT leases_state_check
    CHECK (state IN ('queued', 'done', 'failed'));
ALTER TABLE leases ADD COLUMN reason TEXT;
