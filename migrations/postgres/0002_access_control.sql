-- Access control (issue 4): expiring and break-glass grants, who granted what,
-- client certificates mapped to principals, and what the serving role may write.

ALTER TABLE role_grants
    ADD COLUMN granted_by  BIGINT REFERENCES principals (id),
    ADD COLUMN expires_at  TIMESTAMPTZ,
    ADD COLUMN break_glass BOOLEAN NOT NULL DEFAULT false,
    ADD COLUMN sealed_reason BYTEA;
-- A break-glass grant may be requested again after the last one expired.
ALTER TABLE role_grants DROP CONSTRAINT role_grants_principal_id_role_provider_id_key;
CREATE UNIQUE INDEX role_grants_standing ON role_grants (principal_id, role, coalesce(provider_id, 0))
    WHERE NOT break_glass;

-- A client certificate (SHA-256 of its DER) authenticates as one principal.
CREATE TABLE client_certificates (
    fingerprint  TEXT PRIMARY KEY CHECK (fingerprint ~ '^[0-9a-f]{64}$'),
    principal_id BIGINT NOT NULL REFERENCES principals (id),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- A later version of a claim supersedes the earlier one (ingest, issue 7).
ALTER TABLE claims ADD COLUMN superseded_at TIMESTAMPTZ;

REVOKE ALL ON client_certificates FROM PUBLIC;

-- The serving role manages principals, grants, keys, certificates and providers through
-- the admin API; principals, keys and providers are disabled or revoked, never deleted.
GRANT INSERT, UPDATE ON providers, principals, role_grants, api_keys TO claimgate_api;
GRANT SELECT, INSERT ON client_certificates TO claimgate_api;
-- Identity columns need their sequences.
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO claimgate_api;
-- Marking a superseded version is the only change to a stored claim; RLS still applies.
GRANT UPDATE (superseded_at) ON claims TO claimgate_api, claimgate_ingest;
-- Revoking a role deletes its grant (the audit trail keeps the history).
GRANT DELETE ON role_grants TO claimgate_api;
-- Readiness compares the applied migrations with this build's.
GRANT SELECT ON _sqlx_migrations TO claimgate_api;
-- The chain hash covers the exact bytes of the canonical body; jsonb would reorder and
-- respace them, so the body is kept as text (cast to jsonb where it is searched).
ALTER TABLE audit_events ALTER COLUMN body TYPE TEXT USING body::text;
