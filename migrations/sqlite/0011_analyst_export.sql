-- no-transaction
-- Read side (issue 10); see the PostgreSQL migration of the same number. SQLite cannot
-- change a CHECK constraint in place, so phi_disclosures is rebuilt the documented way
-- (foreign keys off around one transaction of its own; sqlx runs this file outside its
-- transaction because foreign_keys cannot change inside one).
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;

ALTER TABLE claims ADD COLUMN deid_zip3 TEXT
    CHECK (length(deid_zip3) = 3 AND deid_zip3 NOT GLOB '*[^0-9]*');
ALTER TABLE claims ADD COLUMN deid_age INTEGER CHECK (deid_age BETWEEN 0 AND 90);

-- Pseudonyms of the de-identified export (random, one per configuration and member or
-- claim; see the PostgreSQL migration). SQLite has no roles: the de-identified query
-- selects no sealed column, which the tests check.
CREATE TABLE export_pseudonyms (
    configuration TEXT NOT NULL,
    provider_id   INTEGER NOT NULL REFERENCES providers (id),
    kind          TEXT NOT NULL CHECK (kind IN ('member', 'claim')),
    subject       BLOB NOT NULL,
    pseudonym     TEXT NOT NULL UNIQUE,
    created_at    TEXT NOT NULL,
    PRIMARY KEY (configuration, provider_id, kind, subject)
);

CREATE TABLE phi_disclosures_next (
    id           INTEGER PRIMARY KEY,
    occurred_at  TEXT NOT NULL,
    provider_id  INTEGER NOT NULL REFERENCES providers (id),
    principal_id INTEGER REFERENCES principals (id),
    role         TEXT,
    purpose      TEXT NOT NULL
        CHECK (purpose IN ('treatment', 'payment', 'operations', 'research', 'legal', 'other')),
    action       TEXT NOT NULL
        CHECK (action IN ('claims.list', 'claim.read', 'claims.search', 'claims.export')),
    request_id   TEXT,
    break_glass  INTEGER NOT NULL,
    claim_count  INTEGER NOT NULL
);
INSERT INTO phi_disclosures_next SELECT * FROM phi_disclosures;
DROP TABLE phi_disclosures;
ALTER TABLE phi_disclosures_next RENAME TO phi_disclosures;
CREATE TRIGGER phi_disclosures_no_update BEFORE UPDATE ON phi_disclosures
BEGIN SELECT RAISE(ABORT, 'phi_disclosures is append-only'); END;
CREATE TRIGGER phi_disclosures_no_delete BEFORE DELETE ON phi_disclosures
BEGIN SELECT RAISE(ABORT, 'phi_disclosures is append-only'); END;

COMMIT;
PRAGMA foreign_keys = ON;
