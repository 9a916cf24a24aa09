-- The claim store (issues 6 and 7): claim headers and lines in columns, PHI columns sealed.
--
-- A claim's identity is (upload_id, record_no): the upload it came from and its record
-- number in that file. It is bound into every sealed PHI value (so a ciphertext moved to
-- another row fails to open) and makes re-processing after a crash idempotent (a record
-- is stored at most once). PHI columns hold envelopes sealed by the provider's data key
-- `data_key_id`; member_index and person_index are blind indexes (keyed HMAC-SHA256,
-- 16 bytes) for exact look-ups without decrypting.
DROP TABLE claims;
CREATE TABLE claims (
    id                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    provider_id        BIGINT NOT NULL REFERENCES providers (id),
    upload_id          TEXT NOT NULL,
    record_no          BIGINT NOT NULL,
    source_claim_id    TEXT NOT NULL,
    claim_type         TEXT NOT NULL CHECK (claim_type IN ('professional', 'institutional')),
    frequency_code     TEXT NOT NULL,
    original_claim_id  TEXT,
    payer_id           TEXT,
    payer_name         TEXT,
    plan               TEXT,
    sex                TEXT,
    state              TEXT,
    billing_npi        TEXT,
    billing_tin        TEXT,
    rendering_npi      TEXT,
    attending_npi      TEXT,
    facility_npi       TEXT,
    bill_type          TEXT,
    place_of_service   TEXT,
    statement_from     DATE,
    statement_through  DATE,
    admission_date     DATE,
    discharge_date     DATE,
    admit_type         TEXT,
    admit_source       TEXT,
    discharge_status   TEXT,
    drg                TEXT,
    diagnoses          TEXT NOT NULL,
    procedures         TEXT NOT NULL,
    total_charge_cents BIGINT,
    paid_cents         BIGINT,
    allowed_cents      BIGINT,
    line_count         INTEGER NOT NULL,
    data_key_id        TEXT NOT NULL REFERENCES data_keys (key_id),
    member_id          BYTEA,
    first_name         BYTEA,
    last_name          BYTEA,
    birth_date         BYTEA,
    address            BYTEA,
    city               BYTEA,
    zip                BYTEA,
    member_index       BYTEA,
    person_index       BYTEA,
    created_at         TIMESTAMPTZ NOT NULL,
    superseded_at      TIMESTAMPTZ,
    UNIQUE (upload_id, record_no)
);
CREATE INDEX claims_provider_claim ON claims (provider_id, source_claim_id);
CREATE INDEX claims_data_key ON claims (data_key_id);
CREATE INDEX claims_member_index ON claims (provider_id, member_index);
CREATE INDEX claims_person_index ON claims (provider_id, person_index);

CREATE TABLE claim_lines (
    provider_id      BIGINT NOT NULL REFERENCES providers (id),
    upload_id        TEXT NOT NULL,
    record_no        BIGINT NOT NULL,
    ordinal          INTEGER NOT NULL,
    line_number      INTEGER NOT NULL,
    service_from     DATE,
    service_through  DATE,
    procedure_code   TEXT,
    modifiers        TEXT NOT NULL,
    revenue_code     TEXT,
    ndc              TEXT,
    units_milli      BIGINT,
    charge_cents     BIGINT,
    paid_cents       BIGINT,
    allowed_cents    BIGINT,
    rendering_npi    TEXT,
    place_of_service TEXT,
    PRIMARY KEY (upload_id, record_no, ordinal),
    FOREIGN KEY (upload_id, record_no) REFERENCES claims (upload_id, record_no)
);

-- Tenancy in the database, as for the claims table it replaces. The setting is read in a
-- scalar subquery, so it is evaluated once per statement, not once per row.
DO $$
DECLARE
    t TEXT;
BEGIN
    FOREACH t IN ARRAY ARRAY['claims', 'claim_lines'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format($p$CREATE POLICY %I ON %I
            USING (provider_id = (SELECT NULLIF(current_setting('app.provider_id', true), '')::BIGINT))
            WITH CHECK (provider_id = (SELECT NULLIF(current_setting('app.provider_id', true), '')::BIGINT))$p$,
            t || '_tenant', t);
    END LOOP;
END
$$;

-- Data keys have a purpose: 'seal' keys encrypt fields and file keys and rotate;
-- an 'index' key computes the provider's blind indexes (it never rotates: indexes would
-- change) and is destroyed with the seal keys. A retired seal key is drained when the
-- re-encryption job has moved every value off it: its wrapped bytes are then erased.
ALTER TABLE data_keys ADD COLUMN purpose TEXT NOT NULL DEFAULT 'seal'
    CHECK (purpose IN ('seal', 'index'));
ALTER TABLE data_keys ADD COLUMN drained_at TIMESTAMPTZ;
ALTER TABLE data_keys DROP CONSTRAINT data_keys_check;
ALTER TABLE data_keys ADD CONSTRAINT data_keys_erased
    CHECK ((destroyed_at IS NULL AND drained_at IS NULL) = (wrapped_key IS NOT NULL));
DROP INDEX data_keys_active;
CREATE UNIQUE INDEX data_keys_active ON data_keys (provider_id, purpose)
    WHERE retired_at IS NULL AND destroyed_at IS NULL;
-- Which key sealed a raw file's key, so re-encryption finds what a retired key holds.
ALTER TABLE raw_files ADD COLUMN data_key_id TEXT REFERENCES data_keys (key_id);
CREATE INDEX raw_files_data_key ON raw_files (data_key_id);

REVOKE ALL ON claims, claim_lines FROM PUBLIC;
-- claimgate_ingest (a dedicated ingest worker): writes claims and lines, marks superseded
-- versions, reads no PHI column. The serving role runs the in-process workers and the
-- re-encryption job, so it also writes claims and may replace sealed PHI columns.
GRANT INSERT ON claims, claim_lines TO claimgate_ingest, claimgate_api;
GRANT SELECT (id, provider_id, upload_id, record_no, source_claim_id, claim_type, frequency_code,
              original_claim_id, payer_id, total_charge_cents, line_count, data_key_id,
              created_at, superseded_at) ON claims TO claimgate_ingest;
GRANT SELECT (provider_id, upload_id, record_no, ordinal) ON claim_lines TO claimgate_ingest;
GRANT UPDATE (superseded_at) ON claims TO claimgate_ingest;
GRANT SELECT ON claims, claim_lines TO claimgate_api;
GRANT UPDATE (superseded_at, data_key_id, member_id, first_name, last_name, birth_date,
              address, city, zip) ON claims TO claimgate_api;
GRANT UPDATE (sealed_key, data_key_id) ON raw_files TO claimgate_api;
-- A writer share-locks the data key it seals under (SELECT … FOR SHARE needs UPDATE on a
-- column); it also records seal counts and creates a provider's first keys.
GRANT INSERT, UPDATE (sealed) ON data_keys TO claimgate_ingest;
