-- Access control (issue 4). Mirrors migrations/postgres/0002; SQLite has no roles, so
-- who may write what is enforced by the application alone.

ALTER TABLE role_grants ADD COLUMN granted_by INTEGER REFERENCES principals (id);
ALTER TABLE role_grants ADD COLUMN expires_at TEXT;
ALTER TABLE role_grants ADD COLUMN break_glass INTEGER NOT NULL DEFAULT 0;
ALTER TABLE role_grants ADD COLUMN sealed_reason BLOB;
DROP INDEX role_grants_unique;
CREATE UNIQUE INDEX role_grants_standing ON role_grants (principal_id, role, ifnull(provider_id, 0))
    WHERE NOT break_glass;

CREATE TABLE client_certificates (
    fingerprint  TEXT PRIMARY KEY CHECK (length(fingerprint) = 64),
    principal_id INTEGER NOT NULL REFERENCES principals (id),
    created_at   TEXT NOT NULL
);

ALTER TABLE claims ADD COLUMN superseded_at TEXT;
