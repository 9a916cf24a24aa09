-- SFTP intake (issue 9); see the PostgreSQL migration of the same number.
CREATE TABLE ssh_keys (
    fingerprint  TEXT PRIMARY KEY CHECK (fingerprint LIKE 'SHA256:%' AND length(fingerprint) = 50),
    principal_id INTEGER NOT NULL REFERENCES principals (id),
    algorithm    TEXT NOT NULL,
    public_key   TEXT NOT NULL,
    created_at   TEXT NOT NULL
);
