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
-- (app.export_configuration), for the claims the session's export selects:
--   app.export_upto     the newest claim id included (unset: nothing)
--   app.export_history  'on': every version; otherwise final action (current, not void)
--   app.export_upload   only this upload's claims (empty: all)
--   app.export_from/to  lines served on or after / on or before (empty: no bound)
-- The view runs with its owner's rights (the analyst reads the view, not the tables); the
-- tenant condition is in the view itself, so it holds even for an owner that bypasses
-- row-level security.
--
-- Its shape makes the plan the same whatever the statistics say: claims are read once,
-- each claim's pseudonyms and file date are index look-ups of that claim, and its lines
-- come from a LATERAL subquery, so they follow their claim in order and rows stream from
-- the first claim. (A join of the three tables ordered at the end sorted the whole export
-- on disk before its first row; unanalysed, it chose a nested loop that rescanned every
-- pseudonym for each claim.) The export runs without parallel workers, so claims do
-- not interleave.
CREATE VIEW analyst_claim_lines WITH (security_barrier) AS
    SELECT c.provider_id, c.version_id, c.claim_key, c.member_key, c.claim_type,
           c.frequency_code, c.current_version, c.payer_id, c.payer_name, c.plan, c.sex,
           c.state, c.billing_npi, c.billing_tin, c.facility_npi, c.bill_type,
           c.statement_from, c.statement_through, c.admission_date, c.discharge_date,
           c.admit_type, c.admit_source, c.discharge_status, c.drg, c.diagnoses,
           c.procedures, c.deid_zip3, c.deid_age, c.created_at, c.received_at, c.upload_id,
           c.record_no, l.ordinal, l.line_number, l.service_from, l.service_through,
           l.procedure_code, l.modifiers, l.revenue_code, l.ndc, l.units_milli,
           l.charge_cents, l.paid_cents, l.allowed_cents,
           coalesce(l.rendering_npi, c.claim_rendering_npi) AS rendering_npi,
           coalesce(l.place_of_service, c.claim_place_of_service) AS place_of_service
    FROM (
        SELECT k.provider_id, k.id AS version_id, k.upload_id, k.record_no, k.claim_type,
               k.frequency_code, k.superseded_at IS NULL AS current_version, k.payer_id,
               k.payer_name, k.plan, k.sex, k.state, k.billing_npi, k.billing_tin,
               k.facility_npi, k.bill_type, k.statement_from, k.statement_through,
               k.admission_date, k.discharge_date, k.admit_type, k.admit_source,
               k.discharge_status, k.drg, k.diagnoses, k.procedures, k.deid_zip3,
               k.deid_age, k.created_at, k.rendering_npi AS claim_rendering_npi,
               k.place_of_service AS claim_place_of_service,
               (SELECT u.received_at FROM uploads u WHERE u.upload_id = k.upload_id)
                   AS received_at,
               (SELECT p.pseudonym FROM export_pseudonyms p
                 WHERE p.configuration = current_setting('app.export_configuration', true)
                   AND p.provider_id = k.provider_id AND p.kind = 'claim'
                   AND p.subject = convert_to(k.source_claim_id, 'UTF8')) AS claim_key,
               (SELECT p.pseudonym FROM export_pseudonyms p
                 WHERE p.configuration = current_setting('app.export_configuration', true)
                   AND p.provider_id = k.provider_id AND p.kind = 'member'
                   AND p.subject = k.member_index) AS member_key
        FROM claims k
        WHERE k.provider_id = (SELECT NULLIF(current_setting('app.provider_id', true), '')::BIGINT)
          AND k.id <= (SELECT NULLIF(current_setting('app.export_upto', true), '')::BIGINT)
          AND ((SELECT current_setting('app.export_history', true) = 'on')
               OR (k.superseded_at IS NULL AND k.frequency_code <> '8'))
          AND ((SELECT NULLIF(current_setting('app.export_upload', true), '')) IS NULL
               OR k.upload_id = (SELECT NULLIF(current_setting('app.export_upload', true), '')))
        OFFSET 0
    ) c
    CROSS JOIN LATERAL (
        SELECT x.* FROM claim_lines x
        WHERE x.upload_id = c.upload_id AND x.record_no = c.record_no
          AND ((SELECT NULLIF(current_setting('app.export_from', true), '')) IS NULL
               OR coalesce(x.service_from, c.statement_from)
                  >= (SELECT NULLIF(current_setting('app.export_from', true), '')::DATE))
          AND ((SELECT NULLIF(current_setting('app.export_to', true), '')) IS NULL
               OR coalesce(x.service_from, c.statement_from)
                  <= (SELECT NULLIF(current_setting('app.export_to', true), '')::DATE))
        ORDER BY x.ordinal
    ) l;

REVOKE ALL ON analyst_claim_lines FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO claimgate_analyst;
GRANT SELECT ON analyst_claim_lines TO claimgate_analyst;

-- An identified export is a disclosure like any other identified read.
ALTER TABLE phi_disclosures DROP CONSTRAINT phi_disclosures_action_check;
ALTER TABLE phi_disclosures ADD CONSTRAINT phi_disclosures_action_check
    CHECK (action IN ('claims.list', 'claim.read', 'claims.search', 'claims.export'));
