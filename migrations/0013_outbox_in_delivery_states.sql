-- webhookd schema, version 13: the outbox is a part of each delivery's state row. Until now
-- a delivery still to attempt also had a row of its own in `outbox` (its due time and lease),
-- written at the emit and deleted at its last attempt: one more row, its three index entries
-- and its deletion per delivery, and one more table in each emit's and attempt batch's
-- statement. Now `queued` says the delivery is in the outbox (to attempt: not final, not
-- waiting behind the head of its ordering queue), its due time is its `next_attempt_ms`
-- (the outbox's `due_ms` was always that), and its lease is in the same row; a partial
-- index of the queued rows by webhook and due time is what claims walk. Leases of rows
-- that are not queued are NULL.
ALTER TABLE delivery_states
    ADD COLUMN webhook_id bigint,
    ADD COLUMN queued boolean NOT NULL DEFAULT false,
    ADD COLUMN lease_owner bigint,
    ADD COLUMN lease_until_ms bigint;

UPDATE delivery_states s SET webhook_id = o.webhook_id, queued = true,
        next_attempt_ms = o.due_ms, lease_owner = o.lease_owner, lease_until_ms = o.lease_until_ms
    FROM outbox o WHERE o.delivery_id = s.id;

CREATE INDEX delivery_states_queued ON delivery_states (webhook_id, next_attempt_ms, id)
    WHERE queued;

DROP TABLE outbox;
