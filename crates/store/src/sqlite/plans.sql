-- Tracking plans (see plans.rs): plans at their newest version, every version, which plan
-- each source is held to with its fixes, a revision that moves with every plan or
-- assignment written (servers reload their plans when it does), and the violations found:
-- counts per (source, event, kind, day) and the newest masked samples.
CREATE TABLE tracking_plans (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    version INTEGER NOT NULL,
    document TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE tracking_plan_versions (
    plan_id INTEGER NOT NULL REFERENCES tracking_plans (id),
    version INTEGER NOT NULL,
    document TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (plan_id, version)
);
CREATE TABLE plan_assignments (
    source_id INTEGER PRIMARY KEY REFERENCES sources (id),
    plan_id INTEGER NOT NULL REFERENCES tracking_plans (id),
    fixes TEXT NOT NULL
);
CREATE TABLE plan_revision (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    revision INTEGER NOT NULL
);
INSERT INTO plan_revision (id, revision) VALUES (1, 0);
CREATE TABLE plan_violations (
    source_id INTEGER NOT NULL,
    event TEXT NOT NULL,
    kind TEXT NOT NULL,
    day TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (source_id, event, kind, day)
) WITHOUT ROWID;
CREATE TABLE plan_violation_samples (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source_id INTEGER NOT NULL,
    event TEXT NOT NULL,
    kind TEXT NOT NULL,
    sample TEXT NOT NULL
);
CREATE INDEX plan_violation_samples_by_key ON plan_violation_samples (source_id, event, kind, id);
