CREATE TABLE deletion_requests (
    erasure_id TEXT NOT NULL,
    destination TEXT NOT NULL,
    body TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_at BIGINT NOT NULL,
    status TEXT NOT NULL,
    outcome TEXT NOT NULL,
    PRIMARY KEY (erasure_id, destination)
);
CREATE INDEX deletion_requests_due ON deletion_requests (next_at) WHERE status = 'queued';
