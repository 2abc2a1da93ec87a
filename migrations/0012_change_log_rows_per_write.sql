-- webhookd schema, version 12: the change log takes one row per account per write, not one
-- per delivery. A write (an emit's batch, an attempt batch, a redelivery, a cancel) appends,
-- per account, one row holding its entries as a JSON array in order, with one value of the
-- table's sequence per entry in `seqs` (ascending); the row's `seq` is the last of them, so
-- the primary key and the account index order rows as before and an entry's cursor is
-- `(xid, its own value)`. A batch of attempts or of emitted events so adds one row and its
-- two index entries instead of one per delivery. Rows written before keep their one entry
-- (`seqs` NULL) at their `seq`: a cursor handed out before the upgrade still means the same.
ALTER TABLE delivery_changes ADD COLUMN seqs bigint[];
