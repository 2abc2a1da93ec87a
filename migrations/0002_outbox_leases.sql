-- webhookd schema, version 2: instances claim outbox rows under leases.
-- A row is leased to `lease_owner` (a random id each instance picks at start) until
-- `lease_until_ms`; NULL = free to claim. Claims walk the webhooks with rows (a loose index
-- scan over outbox_webhook_due) and take each one's earliest due rows, so a webhook with a
-- huge parked backlog costs a claim no more than any other.
ALTER TABLE outbox ADD COLUMN lease_owner bigint;
DROP INDEX outbox_due;
CREATE INDEX outbox_webhook_due ON outbox (webhook_id, due_ms, delivery_id);
