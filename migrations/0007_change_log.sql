-- The change log of delivery states (WatchDeliveries and its SSE twin read it from a
-- cursor). One row per change, written in the transaction of the change itself. Readers
-- order rows by (xid, seq) and read only rows whose transaction id is below the oldest
-- transaction still running (pg_snapshot_xmin of pg_current_snapshot()): every such
-- transaction has ended, so no row can appear later below a cursor a reader has passed,
-- whichever instance wrote it and however late it committed. `seq` orders the rows of one
-- transaction.
CREATE TABLE delivery_changes (
    xid         xid8   NOT NULL DEFAULT pg_current_xact_id(),
    seq         bigint GENERATED ALWAYS AS IDENTITY,
    account_id  text   NOT NULL,
    at_ms       bigint NOT NULL,
    body        json   NOT NULL,
    PRIMARY KEY (xid, seq)
);
CREATE INDEX delivery_changes_account ON delivery_changes (account_id, xid, seq);

-- How far retention has deleted the log: a cursor below this lost entries for good.
CREATE TABLE delivery_changes_horizon (
    only_row  boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    xid       xid8    NOT NULL,
    seq       bigint  NOT NULL
);
