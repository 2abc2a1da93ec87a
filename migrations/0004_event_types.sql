-- The event-type catalog: per account, by name (byte order, so listings page as in sled).
-- `body` is the JSON of the model's EventType (name, description, json_schema, times, revision).
CREATE TABLE event_types (
    account_id  text   NOT NULL,
    name        text   COLLATE "C" NOT NULL,
    body        json   NOT NULL,
    PRIMARY KEY (account_id, name)
);
