-- Accounting of disclosures (issue 10): every identified read of claims is recorded with
-- who, when, why and which claims, so compliance can answer a member's request under
-- 45 CFR 164.528. Rows are appended, never changed or removed; each disclosure is named
-- by the `phi.read` event of the same transaction in the hash-chained audit trail.
CREATE TABLE phi_disclosures (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at  TIMESTAMPTZ NOT NULL,
    provider_id  BIGINT NOT NULL REFERENCES providers (id),
    principal_id BIGINT REFERENCES principals (id),
    role         TEXT,
    purpose      TEXT NOT NULL
        CHECK (purpose IN ('treatment', 'payment', 'operations', 'research', 'legal', 'other')),
    action       TEXT NOT NULL CHECK (action IN ('claims.list', 'claim.read', 'claims.search')),
    request_id   TEXT,
    break_glass  BOOLEAN NOT NULL,
    claim_count  BIGINT NOT NULL
);
-- The claims of each disclosure, with the member's blind index (keyed HMAC of the member
-- id) copied from the claim, so the accounting for one member is an index look-up.
CREATE TABLE phi_disclosed_claims (
    disclosure_id BIGINT NOT NULL REFERENCES phi_disclosures (id),
    provider_id   BIGINT NOT NULL REFERENCES providers (id),
    claim_id      BIGINT NOT NULL,
    member_index  BYTEA,
    PRIMARY KEY (disclosure_id, claim_id)
);
CREATE INDEX phi_disclosed_claims_member ON phi_disclosed_claims (provider_id, member_index);

CREATE TRIGGER phi_disclosures_no_change BEFORE UPDATE OR DELETE ON phi_disclosures
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER phi_disclosures_no_truncate BEFORE TRUNCATE ON phi_disclosures
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER phi_disclosed_claims_no_change BEFORE UPDATE OR DELETE ON phi_disclosed_claims
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER phi_disclosed_claims_no_truncate BEFORE TRUNCATE ON phi_disclosed_claims
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

REVOKE ALL ON phi_disclosures, phi_disclosed_claims FROM PUBLIC;
GRANT SELECT, INSERT ON phi_disclosures, phi_disclosed_claims TO claimgate_api;
