-- Read side (issue 10): the Tuva medical_claim export and its Safe Harbor variant.
--
-- De-identified values are derived at ingest, while the PHI is in hand, and stored in the
-- clear next to the sealed columns, so the analyst path never opens a sealed value:
--   deid_zip3  the first three digits of the member's ZIP, or '000' where that
--              three-digit area holds 20,000 people or fewer (45 CFR 164.514(b)(2)(i)(B))
--   deid_age   the member's age in whole years on the claim's first service date, 90 for
--              every age over 89 (164.514(b)(2)(i)(C))
ALTER TABLE claims ADD COLUMN deid_zip3 TEXT CHECK (deid_zip3 ~ '^[0-9]{3}$');
ALTER TABLE claims ADD COLUMN deid_age SMALLINT CHECK (deid_age BETWEEN 0 AND 90);

-- Pseudonyms of the de-identified export: random codes (gen_random_uuid draws from the
-- server's strong random source), not derived from the member or claim (164.514(c)),
-- one per export configuration, member (its blind index) or claim (its id), kept here
-- so that every export of one configuration uses the same code. The analyst role cannot
-- read this table: the mapping never leaves the gateway.
CREATE TABLE export_pseudonyms (
    configuration TEXT NOT NULL CHECK (configuration ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    provider_id   BIGINT NOT NULL REFERENCES providers (id),
    kind          TEXT NOT NULL CHECK (kind IN ('member', 'claim')),
    subject       BYTEA NOT NULL,
    pseudonym     TEXT NOT NULL UNIQUE,
    created_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (configuration, provider_id, kind, subject)
);
ALTER TABLE export_pseudonyms ENABLE ROW LEVEL SECURITY;
ALTER TABLE export_pseudonyms FORCE ROW LEVEL SECURITY;
CREATE POLICY export_pseudonyms_tenant ON export_pseudonyms
    USING (provider_id = (SELECT NULLIF(current_setting('app.provider_id', true), '')::BIGINT))
    WITH CHECK (provider_id = (SELECT NULLIF(current_setting('app.provider_id', true), '')::BIGINT));
REVOKE ALL ON export_pseudonyms FROM PUBLIC;
GRANT SELECT, INSERT ON export_pseudonyms TO claimgate_api;

-- claimgate_analyst: the database role of the de-identified export. It may read one view
-- and nothing else of the claim store: no table, so no sealed PHI column, no blind
-- index, no claim id, no pseudonym mapping. The serving role assumes it
-- (SET LOCAL ROLE), so the login user must be a member.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'claimgate_analyst') THEN
        CREATE ROLE claimgate_analyst NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;

-- One row per stored claim line of the session's provider (app.provider_id) with its
-- claim's columns repeated and its pseudonyms for the session's export configuration
-- (app.export_configuration). The view runs with its owner's rights (the analyst reads
-- the view, not the tables); the tenant condition is in the view itself, so it holds
-- even for an owner that bypasses row-level security.
CREATE VIEW analyst_claim_lines WITH (security_barrier) AS
    SELECT c.provider_id, c.id AS version_id, pc.pseudonym AS claim_key,
           pm.pseudonym AS member_key, c.claim_type, c.frequency_code,
           c.superseded_at IS NULL AS current_version, c.payer_id, c.payer_name, c.plan,
           c.sex, c.state, c.billing_npi, c.billing_tin, c.facility_npi, c.bill_type,
           c.statement_from, c.statement_through, c.admission_date, c.discharge_date,
           c.admit_type, c.admit_source, c.discharge_status, c.drg, c.diagnoses,
           c.procedures, c.deid_zip3, c.deid_age, c.created_at, u.received_at, c.upload_id,
           c.record_no, l.ordinal, l.line_number, l.service_from, l.service_through,
           l.procedure_code, l.modifiers, l.revenue_code, l.units_milli, l.charge_cents,
           l.paid_cents, l.allowed_cents,
           coalesce(l.rendering_npi, c.rendering_npi) AS rendering_npi,
           coalesce(l.place_of_service, c.place_of_service) AS place_of_service
    FROM claims c
    JOIN claim_lines l ON l.upload_id = c.upload_id AND l.record_no = c.record_no
    JOIN uploads u ON u.upload_id = c.upload_id
    LEFT JOIN export_pseudonyms pc ON pc.provider_id = c.provider_id AND pc.kind = 'claim'
        AND pc.configuration = current_setting('app.export_configuration', true)
        AND pc.subject = convert_to(c.source_claim_id, 'UTF8')
    LEFT JOIN export_pseudonyms pm ON pm.provider_id = c.provider_id AND pm.kind = 'member'
        AND pm.configuration = current_setting('app.export_configuration', true)
        AND pm.subject = c.member_index
    WHERE c.provider_id = (SELECT NULLIF(current_setting('app.provider_id', true), '')::BIGINT);

REVOKE ALL ON analyst_claim_lines FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO claimgate_analyst;
GRANT SELECT ON analyst_claim_lines TO claimgate_analyst;

-- An identified export is a disclosure like any other identified read.
ALTER TABLE phi_disclosures DROP CONSTRAINT phi_disclosures_action_check;
ALTER TABLE phi_disclosures ADD CONSTRAINT phi_disclosures_action_check
    CHECK (action IN ('claims.list', 'claim.read', 'claims.search', 'claims.export'));
