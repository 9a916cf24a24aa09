-- The claim store. Mirrors migrations/postgres/0005 (SQLite has no row-level security:
-- every query names the provider; no roles: the file's permissions guard it).
DROP TABLE claims;
CREATE TABLE claims (
    id                 INTEGER PRIMARY KEY,
    provider_id        INTEGER NOT NULL REFERENCES providers (id),
    upload_id          TEXT NOT NULL,
    record_no          INTEGER NOT NULL,
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
    statement_from     TEXT,
    statement_through  TEXT,
    admission_date     TEXT,
    discharge_date     TEXT,
    admit_type         TEXT,
    admit_source       TEXT,
    discharge_status   TEXT,
    drg                TEXT,
    diagnoses          TEXT NOT NULL,
    procedures         TEXT NOT NULL,
    total_charge_cents INTEGER,
    paid_cents         INTEGER,
    allowed_cents      INTEGER,
    line_count         INTEGER NOT NULL,
    data_key_id        TEXT NOT NULL REFERENCES data_keys (key_id),
    member_id          BLOB,
    first_name         BLOB,
    last_name          BLOB,
    birth_date         BLOB,
    address            BLOB,
    city               BLOB,
    zip                BLOB,
    member_index       BLOB,
    person_index       BLOB,
    created_at         TEXT NOT NULL,
    superseded_at      TEXT,
    UNIQUE (upload_id, record_no)
);
CREATE INDEX claims_provider_claim ON claims (provider_id, source_claim_id);
CREATE INDEX claims_data_key ON claims (data_key_id);
CREATE INDEX claims_member_index ON claims (provider_id, member_index);
CREATE INDEX claims_person_index ON claims (provider_id, person_index);

CREATE TABLE claim_lines (
    provider_id      INTEGER NOT NULL REFERENCES providers (id),
    upload_id        TEXT NOT NULL,
    record_no        INTEGER NOT NULL,
    ordinal          INTEGER NOT NULL,
    line_number      INTEGER NOT NULL,
    service_from     TEXT,
    service_through  TEXT,
    procedure_code   TEXT,
    modifiers        TEXT NOT NULL,
    revenue_code     TEXT,
    ndc              TEXT,
    units_milli      INTEGER,
    charge_cents     INTEGER,
    paid_cents       INTEGER,
    allowed_cents    INTEGER,
    rendering_npi    TEXT,
    place_of_service TEXT,
    PRIMARY KEY (upload_id, record_no, ordinal),
    FOREIGN KEY (upload_id, record_no) REFERENCES claims (upload_id, record_no)
);

-- Data keys gain a purpose and a drained state; SQLite cannot alter a CHECK, so the
-- table is rebuilt (nothing references it yet).
CREATE TABLE data_keys_new (
    key_id          TEXT PRIMARY KEY,
    provider_id     INTEGER NOT NULL REFERENCES providers (id),
    purpose         TEXT NOT NULL DEFAULT 'seal' CHECK (purpose IN ('seal', 'index')),
    kek_fingerprint TEXT NOT NULL,
    wrapped_key     BLOB,
    sealed          INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT NOT NULL,
    retired_at      TEXT,
    destroyed_at    TEXT,
    drained_at      TEXT,
    CHECK ((destroyed_at IS NULL AND drained_at IS NULL) = (wrapped_key IS NOT NULL))
);
INSERT INTO data_keys_new (key_id, provider_id, kek_fingerprint, wrapped_key, sealed, created_at, retired_at, destroyed_at)
    SELECT key_id, provider_id, kek_fingerprint, wrapped_key, sealed, created_at, retired_at, destroyed_at FROM data_keys;
DROP TABLE data_keys;
ALTER TABLE data_keys_new RENAME TO data_keys;
CREATE UNIQUE INDEX data_keys_active ON data_keys (provider_id, purpose)
    WHERE retired_at IS NULL AND destroyed_at IS NULL;
ALTER TABLE raw_files ADD COLUMN data_key_id TEXT REFERENCES data_keys (key_id);
CREATE INDEX raw_files_data_key ON raw_files (data_key_id);
