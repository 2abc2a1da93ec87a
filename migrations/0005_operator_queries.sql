-- webhookd schema, version 5: the operator API's queries (events and deliveries of an
-- account, newest first, by keyset on (created_at_ms, id)).

-- The event type, for ListEvents' filter (taken from the record, so every row has it).
ALTER TABLE events ADD COLUMN event_type text GENERATED ALWAYS AS (body->>'event_type') STORED;
CREATE INDEX events_account_created ON events (account_id, created_at_ms DESC, id DESC);
CREATE INDEX events_account_type_created
    ON events (account_id, event_type, created_at_ms DESC, id DESC);

-- A delivery's account and creation time come from its record (written once); its last
-- change of state is a column of its own, set by attempts and cancellation. Deliveries
-- written before version 5 have no account in their record and are not listed.
ALTER TABLE deliveries
    ADD COLUMN account_id text GENERATED ALWAYS AS (request->>'account_id') STORED,
    ADD COLUMN created_at_ms bigint
        GENERATED ALWAYS AS (coalesce((request->>'created_at_ms')::bigint, 0)) STORED,
    ADD COLUMN updated_at_ms bigint;
CREATE INDEX deliveries_account_created
    ON deliveries (account_id, created_at_ms DESC, id DESC);
CREATE INDEX deliveries_webhook_created
    ON deliveries (webhook_id, created_at_ms DESC, id DESC);
CREATE INDEX deliveries_account_state_created
    ON deliveries (account_id, state, created_at_ms DESC, id DESC);
