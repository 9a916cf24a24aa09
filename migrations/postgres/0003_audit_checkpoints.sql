-- Signed checkpoints of the audit chain head (issue 5): a verifier that trusts the
-- signing key can tell that no event at or before a checkpoint was removed, including
-- the tail. Append-only like the trail itself.
CREATE TABLE audit_checkpoints (
    seq        BIGINT PRIMARY KEY,
    hash       BYTEA NOT NULL,
    signed_at  TIMESTAMPTZ NOT NULL,
    public_key BYTEA NOT NULL,
    signature  BYTEA NOT NULL
);
CREATE TRIGGER audit_checkpoints_no_change BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

REVOKE ALL ON audit_checkpoints FROM PUBLIC;
GRANT SELECT, INSERT ON audit_checkpoints TO claimgate_audit_writer;
GRANT SELECT ON audit_checkpoints TO claimgate_auditor;
