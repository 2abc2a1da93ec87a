-- webhookd schema, version 9: a delivery's changing part moves out of its wide row.
-- `deliveries` keeps what never changes after the emit (ids, the rendered `request` of
-- about 1 KB, and the account and creation time drawn from it); `delivery_states` holds,
-- per delivery, what attempts and cancellation change. Until now every attempt rewrote the
-- whole wide row and, as `state` was in one of its indexes, added an entry to every index
-- of it; now an attempt rewrites a row of about 100 bytes and its two index entries.
-- The operator queries filtering by state read this table's index, which carries copies of
-- the delivery's account and creation time (both written once, at the emit; NULL account
-- as in `deliveries`: such a delivery, stored before version 5, is not listed).
-- Both rows of a delivery are written by one statement and deleted by one (retention).
CREATE TABLE delivery_states (
    id                bigint PRIMARY KEY,
    account_id        text,
    created_at_ms     bigint NOT NULL,
    state             text   NOT NULL,
    attempts          bigint NOT NULL,
    next_attempt_ms   bigint NOT NULL,
    last_status_code  integer,
    last_error        text   NOT NULL,
    updated_at_ms     bigint
);

INSERT INTO delivery_states (id, account_id, created_at_ms, state, attempts, next_attempt_ms,
        last_status_code, last_error, updated_at_ms)
    SELECT id, account_id, created_at_ms, state, attempts, next_attempt_ms, last_status_code,
        last_error, updated_at_ms
    FROM deliveries;

CREATE INDEX delivery_states_account_state_created
    ON delivery_states (account_id, state, created_at_ms DESC, id DESC);

DROP INDEX deliveries_account_state_created;
ALTER TABLE deliveries
    DROP COLUMN state,
    DROP COLUMN attempts,
    DROP COLUMN next_attempt_ms,
    DROP COLUMN last_status_code,
    DROP COLUMN last_error,
    DROP COLUMN updated_at_ms;
