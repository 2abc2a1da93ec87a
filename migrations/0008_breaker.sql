-- The circuit breaker of each webhook's endpoint, kept with its stats and moved by the
-- attempt's own statement (see src/model/breaker.rs for the rules), so every instance sees
-- the failures of all. `breaker_open_until_ms` is NULL while the breaker is closed;
-- `breaker_changed_seq` is the response_seq of the attempt that last opened or closed it
-- (that attempt reports the transition, once).
ALTER TABLE webhook_stats
    ADD COLUMN breaker_failures      integer NOT NULL DEFAULT 0,
    ADD COLUMN breaker_open_until_ms bigint,
    ADD COLUMN breaker_level         integer NOT NULL DEFAULT 0,
    ADD COLUMN breaker_opened_at_ms  bigint,
    ADD COLUMN breaker_changed_seq   bigint  NOT NULL DEFAULT 0,
    ADD COLUMN breaker_changed_at_ms bigint  NOT NULL DEFAULT 0;

