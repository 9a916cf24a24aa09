-- SFTP intake (issue 9): an SSH public key authenticates as one principal, as a client
-- certificate does on HTTPS. Keys are added, never changed; a principal's keys stop
-- working when it is disabled.
CREATE TABLE ssh_keys (
    fingerprint  TEXT PRIMARY KEY CHECK (fingerprint ~ '^SHA256:[A-Za-z0-9+/]{43}$'),
    principal_id BIGINT NOT NULL REFERENCES principals (id),
    algorithm    TEXT NOT NULL,
    public_key   TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL
);
REVOKE ALL ON ssh_keys FROM PUBLIC;
GRANT SELECT, INSERT ON ssh_keys TO claimgate_api;
