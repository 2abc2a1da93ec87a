-- webhookd schema, version 11: a logged attempt does not copy the body it sent.
-- An attempt's request body is almost always its delivery's (the rendered body, or for a
-- forward_all webhook its event's data): `body_is_request` says to read it from the
-- delivery (and from there, when `deliveries.body_is_event_data`, from the event), so each
-- attempt no longer writes and parses ~1 KB again. A body that differs (a template error
-- text) is kept in the entry as before; the rows written before keep their copy. As on the
-- embedded store, an entry that outlives its delivery (retention) reads no body.
ALTER TABLE responses ADD COLUMN body_is_request boolean NOT NULL DEFAULT false;
