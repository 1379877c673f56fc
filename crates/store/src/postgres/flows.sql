-- Destinations' governance (see flows.rs): whether a destination's configuration is in
-- force (rows before this migration were created without approval and stay in force),
-- each destination's record, and the append-only destination change log.
ALTER TABLE destinations ADD COLUMN approved BOOLEAN NOT NULL DEFAULT TRUE;
CREATE TABLE destination_flows (
    destination_id BIGINT PRIMARY KEY,
    version BIGINT NOT NULL,
    doc TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE destination_changes (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    destination_id BIGINT NOT NULL,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    entry TEXT NOT NULL
);
CREATE INDEX destination_changes_by_destination ON destination_changes (destination_id, id);
CREATE FUNCTION destination_changes_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '% on % refused: the destination change log is append-only', TG_OP, TG_TABLE_NAME;
    END $$;
CREATE TRIGGER destination_changes_append_only BEFORE UPDATE OR DELETE ON destination_changes
    FOR EACH ROW EXECUTE FUNCTION destination_changes_refuse();
CREATE TRIGGER destination_changes_no_truncate BEFORE TRUNCATE ON destination_changes
    FOR EACH STATEMENT EXECUTE FUNCTION destination_changes_refuse();
