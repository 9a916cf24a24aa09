-- Foundation schema (SQLite, the embedded default). Mirrors migrations/postgres/0001;
-- SQLite has no roles or row-level security, so tenancy is enforced by the application.

CREATE TABLE providers (
    id          INTEGER PRIMARY KEY,
    code        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    disabled_at TEXT
);

CREATE TABLE principals (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL CHECK (kind IN ('person', 'system')),
    provider_id INTEGER REFERENCES providers (id),
    created_at  TEXT NOT NULL,
    disabled_at TEXT
);

CREATE TABLE role_grants (
    principal_id INTEGER NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    role         TEXT NOT NULL,
    provider_id  INTEGER REFERENCES providers (id),
    granted_at   TEXT NOT NULL
);
CREATE UNIQUE INDEX role_grants_unique ON role_grants (principal_id, role, ifnull(provider_id, 0));

CREATE TABLE api_keys (
    key_id       TEXT PRIMARY KEY,
    principal_id INTEGER NOT NULL REFERENCES principals (id),
    secret_hash  BLOB NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT,
    revoked_at   TEXT
);

-- Claims: identifying fields live only inside the encrypted envelope.
CREATE TABLE claims (
    id              INTEGER PRIMARY KEY,
    provider_id     INTEGER NOT NULL REFERENCES providers (id),
    source_claim_id TEXT NOT NULL,
    phi_envelope    BLOB NOT NULL,
    created_at      TEXT NOT NULL
);
CREATE INDEX claims_provider ON claims (provider_id);

-- Append-only, hash-chained audit trail.
CREATE TABLE audit_events (
    seq        INTEGER PRIMARY KEY,
    ts         TEXT NOT NULL,
    kind       TEXT NOT NULL,
    body       TEXT NOT NULL,
    prev_hash  BLOB NOT NULL,
    hash       BLOB NOT NULL
);
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
