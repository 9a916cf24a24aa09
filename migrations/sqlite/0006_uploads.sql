-- Mirrors migrations/postgres/0006. Ingest (issue 7): uploads are the job queue; rejects keep every refused record's
-- position and reason (never its values); providers name the mapping their files use.

-- The mapping a provider's files are read with: a built-in name (`x12`, `x12-837p`,
-- `x12-837i`) or a mapping definition (TOML). NULL: uploads fail with `mapping_missing`.
ALTER TABLE providers ADD COLUMN mapping TEXT;

-- One row per received file. The id is the raw file's id. State machine:
--   received → processing → done | failed   (a lease that expires returns a job to the pool)
-- `checkpoint` is the last record whose outcome is committed; counts are committed with it.
-- `ack` is the 999 acknowledgement of an X12 file, made when its processing ends.
CREATE TABLE uploads (
    upload_id          TEXT PRIMARY KEY,
    provider_id        INTEGER NOT NULL REFERENCES providers (id),
    submitted_by       INTEGER REFERENCES principals (id),
    sha256             BLOB NOT NULL,
    size_bytes         INTEGER NOT NULL,
    idempotency_key    TEXT,
    state              TEXT NOT NULL CHECK (state IN ('received', 'processing', 'done', 'failed')),
    failure            TEXT,
    lease_owner        TEXT,
    lease_expires_at   TEXT,
    attempts           INTEGER NOT NULL DEFAULT 0,
    checkpoint         INTEGER NOT NULL DEFAULT 0,
    records            INTEGER NOT NULL DEFAULT 0,
    accepted           INTEGER NOT NULL DEFAULT 0,
    rejected           INTEGER NOT NULL DEFAULT 0,
    skipped            INTEGER NOT NULL DEFAULT 0,
    claims             INTEGER NOT NULL DEFAULT 0,
    lines              INTEGER NOT NULL DEFAULT 0,
    replaced           INTEGER NOT NULL DEFAULT 0,
    voided             INTEGER NOT NULL DEFAULT 0,
    unmatched          INTEGER NOT NULL DEFAULT 0,
    total_charge_cents INTEGER NOT NULL DEFAULT 0,
    line_charge_cents  INTEGER NOT NULL DEFAULT 0,
    ack                TEXT,
    received_at        TEXT NOT NULL,
    started_at         TEXT,
    finished_at        TEXT,
    UNIQUE (provider_id, sha256)
);
CREATE UNIQUE INDEX uploads_idempotency ON uploads (provider_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX uploads_queue ON uploads (state, received_at)
    WHERE state IN ('received', 'processing');

-- A refused record: where it is and why; `field` is the mapping's target or source path.
CREATE TABLE rejects (
    upload_id  TEXT NOT NULL REFERENCES uploads (upload_id),
    provider_id INTEGER NOT NULL REFERENCES providers (id),
    ordinal    INTEGER NOT NULL,
    record_no  INTEGER NOT NULL,
    line_no    INTEGER NOT NULL,
    byte_offset INTEGER NOT NULL,
    segment    TEXT,
    field      TEXT,
    code       TEXT NOT NULL,
    severity   TEXT NOT NULL,
    message    TEXT NOT NULL,
    PRIMARY KEY (upload_id, ordinal)
);

-- A replacement or void that names no earlier claim is kept and flagged, not dropped.
ALTER TABLE claims ADD COLUMN unmatched INTEGER NOT NULL DEFAULT 0;
CREATE INDEX claims_provider_original ON claims (provider_id, original_claim_id)
    WHERE original_claim_id IS NOT NULL;

-- The final-action view: each claim's current version (a void is current and says so).
CREATE VIEW claims_current AS
    SELECT * FROM claims WHERE superseded_at IS NULL;

