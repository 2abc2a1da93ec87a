-- Ordering-key queues: one row per unfinished delivery that has an ordering key, in write
-- order (`seq`) within its webhook's queue (the hash of target URL and key the core computes).
-- Only a queue's head has an outbox row; making it final releases the next (same transaction,
-- under the queue's advisory lock).
CREATE TABLE ordering_queue (
    delivery_id  bigint    PRIMARY KEY,
    webhook_id   bigint    NOT NULL,
    queue        text      NOT NULL,
    seq          bigserial NOT NULL
);
CREATE INDEX ordering_queue_order ON ordering_queue (webhook_id, queue, seq);
