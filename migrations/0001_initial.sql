-- webhookd schema, version 1. Records are the JSON of the model types (webhook secrets
-- arrive sealed from the sealing layer); columns hold what queries filter, order or update.

-- Ids of every record, shared by all instances (each takes a block of ID_BLOCK at a time).
CREATE SEQUENCE webhookd_ids AS bigint START WITH 1 INCREMENT BY 256;

CREATE TABLE webhooks (
    id          bigint PRIMARY KEY,
    account_id  text   NOT NULL,
    body        json   NOT NULL
);
CREATE INDEX webhooks_account ON webhooks (account_id, id);

-- Delivery outcome times and the response log's sequence, per webhook.
CREATE TABLE webhook_stats (
    webhook_id        bigint PRIMARY KEY,
    last_success_ms   bigint,
    last_failure_ms   bigint,
    failing_since_ms  bigint,
    response_seq      bigint NOT NULL DEFAULT 0
);

-- API tokens by the SHA-256 of their secret (the secret itself is never stored).
CREATE TABLE tokens (
    hash  bytea  PRIMARY KEY,
    id    bigint NOT NULL UNIQUE,
    body  json   NOT NULL
);

CREATE TABLE events (
    id             bigint PRIMARY KEY,
    account_id     text   NOT NULL,
    created_at_ms  bigint NOT NULL,
    body           json   NOT NULL
);
CREATE INDEX events_created ON events (created_at_ms, id);

-- `request` is the delivery as created (its rendered request never changes); the columns
-- hold its current state.
CREATE TABLE deliveries (
    id                bigint PRIMARY KEY,
    event_id          bigint NOT NULL,
    webhook_id        bigint NOT NULL,
    state             text   NOT NULL,
    attempts          bigint NOT NULL,
    next_attempt_ms   bigint NOT NULL,
    last_status_code  integer,
    last_error        text   NOT NULL,
    request           json   NOT NULL
);
CREATE INDEX deliveries_event ON deliveries (event_id);

-- One row per delivery still to be attempted: due time and the lease of the instance
-- attempting it.
CREATE TABLE outbox (
    delivery_id     bigint PRIMARY KEY,
    event_id        bigint NOT NULL,
    webhook_id      bigint NOT NULL,
    due_ms          bigint NOT NULL,
    lease_until_ms  bigint
);
CREATE INDEX outbox_due ON outbox (due_ms, delivery_id);
CREATE INDEX outbox_event ON outbox (event_id);

-- The attempt log of each webhook, `seq` from webhook_stats.response_seq.
CREATE TABLE responses (
    webhook_id  bigint NOT NULL,
    seq         bigint NOT NULL,
    body        json   NOT NULL,
    PRIMARY KEY (webhook_id, seq)
);

-- An idempotency key names the event first emitted with it; unique per account across
-- every instance.
CREATE TABLE idempotency_keys (
    account_id  text   NOT NULL,
    key         text   NOT NULL,
    event_id    bigint NOT NULL,
    used_at_ms  bigint NOT NULL,
    PRIMARY KEY (account_id, key)
);
CREATE INDEX idempotency_keys_used ON idempotency_keys (used_at_ms);
