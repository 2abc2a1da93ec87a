-- webhookd schema, version 10: an emit writes and parses each value once.
-- The columns drawn from a record's JSON become plain columns the writer fills: until now
-- PostgreSQL parsed the whole ~1 KB record again for each of them (an event's type; a
-- delivery's account and creation time). Their values stay as they are (no rewrite).
-- A delivery whose body is its event's data (a forward_all webhook's) no longer stores a copy
-- of it: `body_is_event_data` says to read it from the event (`events.body -> 'data'`, the
-- same JSON text); the rows written before keep their copy.
ALTER TABLE events ALTER COLUMN event_type DROP EXPRESSION;
ALTER TABLE deliveries
    ALTER COLUMN account_id DROP EXPRESSION,
    ALTER COLUMN created_at_ms DROP EXPRESSION,
    ADD COLUMN body_is_event_data boolean NOT NULL DEFAULT false;
