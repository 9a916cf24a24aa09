-- Accounting of disclosures (issue 10); see the PostgreSQL migration of the same number.
CREATE TABLE phi_disclosures (
    id           INTEGER PRIMARY KEY,
    occurred_at  TEXT NOT NULL,
    provider_id  INTEGER NOT NULL REFERENCES providers (id),
    principal_id INTEGER REFERENCES principals (id),
    role         TEXT,
    purpose      TEXT NOT NULL
        CHECK (purpose IN ('treatment', 'payment', 'operations', 'research', 'legal', 'other')),
    action       TEXT NOT NULL CHECK (action IN ('claims.list', 'claim.read', 'claims.search')),
    request_id   TEXT,
    break_glass  INTEGER NOT NULL,
    claim_count  INTEGER NOT NULL
);
CREATE TABLE phi_disclosed_claims (
    disclosure_id INTEGER NOT NULL REFERENCES phi_disclosures (id),
    provider_id   INTEGER NOT NULL REFERENCES providers (id),
    claim_id      INTEGER NOT NULL,
    member_index  BLOB,
    PRIMARY KEY (disclosure_id, claim_id)
);
CREATE INDEX phi_disclosed_claims_member ON phi_disclosed_claims (provider_id, member_index);
CREATE TRIGGER phi_disclosures_no_update BEFORE UPDATE ON phi_disclosures
BEGIN SELECT RAISE(ABORT, 'phi_disclosures is append-only'); END;
CREATE TRIGGER phi_disclosures_no_delete BEFORE DELETE ON phi_disclosures
BEGIN SELECT RAISE(ABORT, 'phi_disclosures is append-only'); END;
CREATE TRIGGER phi_disclosed_claims_no_update BEFORE UPDATE ON phi_disclosed_claims
BEGIN SELECT RAISE(ABORT, 'phi_disclosed_claims is append-only'); END;
CREATE TRIGGER phi_disclosed_claims_no_delete BEFORE DELETE ON phi_disclosed_claims
BEGIN SELECT RAISE(ABORT, 'phi_disclosed_claims is append-only'); END;
