-- Destinations' governance (see flows.rs): whether a destination's configuration is in
-- force (rows before this migration were created without approval and stay in force),
-- each destination's record, and the append-only destination change log.
ALTER TABLE destinations ADD COLUMN approved INTEGER NOT NULL DEFAULT 1;
CREATE TABLE destination_flows (
    destination_id INTEGER PRIMARY KEY,
    version INTEGER NOT NULL,
    doc TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE destination_changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    destination_id INTEGER NOT NULL,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    entry TEXT NOT NULL
);
CREATE INDEX destination_changes_by_destination ON destination_changes (destination_id, id);
CREATE TRIGGER destination_changes_no_update BEFORE UPDATE ON destination_changes
    BEGIN SELECT RAISE(ABORT, 'the destination change log is append-only: UPDATE refused'); END;
CREATE TRIGGER destination_changes_no_delete BEFORE DELETE ON destination_changes
    BEGIN SELECT RAISE(ABORT, 'the destination change log is append-only: DELETE refused'); END;
