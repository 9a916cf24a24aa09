-- Ingest (issue 7): uploads are the job queue; rejects keep every refused record's
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
    provider_id        BIGINT NOT NULL REFERENCES providers (id),
    submitted_by       BIGINT REFERENCES principals (id),
    sha256             BYTEA NOT NULL,
    size_bytes         BIGINT NOT NULL,
    idempotency_key    TEXT,
    state              TEXT NOT NULL CHECK (state IN ('received', 'processing', 'done', 'failed')),
    failure            TEXT,
    lease_owner        TEXT,
    lease_expires_at   TIMESTAMPTZ,
    attempts           INTEGER NOT NULL DEFAULT 0,
    checkpoint         BIGINT NOT NULL DEFAULT 0,
    records            BIGINT NOT NULL DEFAULT 0,
    accepted           BIGINT NOT NULL DEFAULT 0,
    rejected           BIGINT NOT NULL DEFAULT 0,
    skipped            BIGINT NOT NULL DEFAULT 0,
    claims             BIGINT NOT NULL DEFAULT 0,
    lines              BIGINT NOT NULL DEFAULT 0,
    replaced           BIGINT NOT NULL DEFAULT 0,
    voided             BIGINT NOT NULL DEFAULT 0,
    unmatched          BIGINT NOT NULL DEFAULT 0,
    total_charge_cents BIGINT NOT NULL DEFAULT 0,
    line_charge_cents  BIGINT NOT NULL DEFAULT 0,
    ack                TEXT,
    received_at        TIMESTAMPTZ NOT NULL,
    started_at         TIMESTAMPTZ,
    finished_at        TIMESTAMPTZ,
    UNIQUE (provider_id, sha256)
);
CREATE UNIQUE INDEX uploads_idempotency ON uploads (provider_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX uploads_queue ON uploads (state, received_at)
    WHERE state IN ('received', 'processing');

-- A refused record: where it is and why; `field` is the mapping's target or source path.
CREATE TABLE rejects (
    upload_id  TEXT NOT NULL REFERENCES uploads (upload_id),
    provider_id BIGINT NOT NULL REFERENCES providers (id),
    ordinal    BIGINT NOT NULL,
    record_no  BIGINT NOT NULL,
    line_no    BIGINT NOT NULL,
    byte_offset BIGINT NOT NULL,
    segment    TEXT,
    field      TEXT,
    code       TEXT NOT NULL,
    severity   TEXT NOT NULL,
    message    TEXT NOT NULL,
    PRIMARY KEY (upload_id, ordinal)
);

-- A replacement or void that names no earlier claim is kept and flagged, not dropped.
ALTER TABLE claims ADD COLUMN unmatched BOOLEAN NOT NULL DEFAULT false;
CREATE INDEX claims_provider_original ON claims (provider_id, original_claim_id)
    WHERE original_claim_id IS NOT NULL;

-- The final-action view: each claim's current version (a void is current and says so).
CREATE VIEW claims_current WITH (security_barrier, security_invoker) AS
    SELECT * FROM claims WHERE superseded_at IS NULL;

ALTER TABLE rejects ENABLE ROW LEVEL SECURITY;
ALTER TABLE rejects FORCE ROW LEVEL SECURITY;
CREATE POLICY rejects_tenant ON rejects
    USING (provider_id = (SELECT NULLIF(current_setting('app.provider_id', true), '')::BIGINT))
    WITH CHECK (provider_id = (SELECT NULLIF(current_setting('app.provider_id', true), '')::BIGINT));

REVOKE ALL ON uploads, rejects, claims_current FROM PUBLIC;
-- The queue is shared by every worker (it holds no PHI: ids, hashes, counts, codes).
GRANT SELECT, INSERT, UPDATE ON uploads TO claimgate_api, claimgate_ingest;
GRANT SELECT, INSERT ON rejects TO claimgate_api, claimgate_ingest;
GRANT SELECT ON claims_current TO claimgate_api;
GRANT UPDATE (unmatched) ON claims TO claimgate_api, claimgate_ingest;
GRANT UPDATE (mapping) ON providers TO claimgate_api;
