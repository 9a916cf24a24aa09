-- Foundation schema (PostgreSQL, production).
--
-- Database roles (DESIGN.md §4). They are group roles without LOGIN: an operator grants
-- each one to the login user of the matching connection pool. Migrations run as the
-- owner; the gateway's pools connect as non-owner, non-superuser, NOBYPASSRLS users.
--   claimgate_ingest        INSERT claims; reads no PHI column
--   claimgate_api           reads claims through row-level security keyed by app.provider_id
--   claimgate_audit_writer  INSERT only on audit_events (and reads the chain head)
--   claimgate_auditor       SELECT on audit tables only, no claims
-- Roles are cluster-wide, so creation tolerates an existing role (and a concurrent
-- creation from another database's migration).
DO $$
DECLARE
    r TEXT;
BEGIN
    FOREACH r IN ARRAY ARRAY['claimgate_ingest', 'claimgate_api', 'claimgate_audit_writer', 'claimgate_auditor'] LOOP
        BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
                EXECUTE format('CREATE ROLE %I NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS', r);
            END IF;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END LOOP;
END
$$;

CREATE TABLE providers (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    disabled_at TIMESTAMPTZ
);

CREATE TABLE principals (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL CHECK (kind IN ('person', 'system')),
    provider_id BIGINT REFERENCES providers (id),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    disabled_at TIMESTAMPTZ
);

CREATE TABLE role_grants (
    principal_id BIGINT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    role         TEXT NOT NULL,
    provider_id  BIGINT REFERENCES providers (id),
    granted_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE NULLS NOT DISTINCT (principal_id, role, provider_id)
);

CREATE TABLE api_keys (
    key_id       TEXT PRIMARY KEY,
    principal_id BIGINT NOT NULL REFERENCES principals (id),
    secret_hash  BYTEA NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at   TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ
);

-- Claims: identifying fields live only inside the encrypted envelope.
CREATE TABLE claims (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    provider_id     BIGINT NOT NULL REFERENCES providers (id),
    source_claim_id TEXT NOT NULL,
    phi_envelope    BYTEA NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX claims_provider ON claims (provider_id);

-- Tenancy in the database: a session sees and writes only the provider named by
-- SET LOCAL app.provider_id; with it unset, nothing. FORCE applies it to the owner too.
ALTER TABLE claims ENABLE ROW LEVEL SECURITY;
ALTER TABLE claims FORCE ROW LEVEL SECURITY;
CREATE POLICY claims_tenant ON claims
    USING (provider_id = NULLIF(current_setting('app.provider_id', true), '')::BIGINT)
    WITH CHECK (provider_id = NULLIF(current_setting('app.provider_id', true), '')::BIGINT);

-- Append-only, hash-chained audit trail.
CREATE TABLE audit_events (
    seq        BIGINT PRIMARY KEY,
    ts         TIMESTAMPTZ NOT NULL,
    kind       TEXT NOT NULL,
    body       JSONB NOT NULL,
    prev_hash  BYTEA NOT NULL,
    hash       BYTEA NOT NULL
);
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only' USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

-- Least-privilege grants. Every later table brings its own grants in its migration.
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public
    TO claimgate_ingest, claimgate_api, claimgate_audit_writer, claimgate_auditor;

GRANT SELECT (id, code, disabled_at) ON providers TO claimgate_ingest;
GRANT INSERT (provider_id, source_claim_id, phi_envelope) ON claims TO claimgate_ingest;
GRANT SELECT (id, provider_id, source_claim_id, created_at) ON claims TO claimgate_ingest;

GRANT SELECT ON providers TO claimgate_api;
GRANT SELECT ON claims TO claimgate_api;

GRANT INSERT ON audit_events TO claimgate_audit_writer;
GRANT SELECT (seq, hash) ON audit_events TO claimgate_audit_writer;

GRANT SELECT ON audit_events TO claimgate_auditor;

-- Authentication reads principals, grants and key hashes through the API pool.
GRANT SELECT ON principals, role_grants, api_keys TO claimgate_api;
