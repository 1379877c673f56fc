-- The audit log (see audit.rs): a hash chain, ids 1, 2, 3… without gaps, each entry
-- holding the hash of the one before. Appended under a transaction-scoped advisory lock.
CREATE TABLE audit_log (
    id BIGINT PRIMARY KEY,
    actor TEXT NOT NULL,
    role TEXT NOT NULL,
    at BIGINT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    before TEXT NOT NULL,
    after TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
