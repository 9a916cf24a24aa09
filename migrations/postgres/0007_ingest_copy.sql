-- Ingest writes claims and lines with binary COPY (issue 7).
--
-- PostgreSQL refuses COPY into a table whose row-level security applies to the writer, so
-- claimgate_ingest bypasses row-level security. What it writes is held to one tenant by keys
-- instead, which bind every row to the provider of the upload it came from:
--   a claim's provider is its upload's; a line's is its claim's; a reject's is its upload's.
-- An upload's provider is set once, from the sender's credential, by the serving role; the
-- ingest role may not create uploads or change who they belong to. It reads no PHI column,
-- and of the other claim columns only those that link versions.

-- Only a superuser may grant BYPASSRLS (PostgreSQL 15). Where the migrating user is not one,
-- the gateway refuses to start and says which statement a superuser must run.
DO $$
BEGIN
    ALTER ROLE claimgate_ingest BYPASSRLS;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE WARNING 'claimgate_ingest needs BYPASSRLS: a superuser must run ALTER ROLE claimgate_ingest BYPASSRLS';
END
$$;

ALTER TABLE uploads ADD CONSTRAINT uploads_upload_provider UNIQUE (upload_id, provider_id);

-- A claim belongs to its upload's provider (this also checks the provider exists).
ALTER TABLE claims DROP CONSTRAINT claims_provider_id_fkey;
ALTER TABLE claims ADD CONSTRAINT claims_upload_fkey
    FOREIGN KEY (upload_id, provider_id) REFERENCES uploads (upload_id, provider_id);
-- The claim's identity with its provider, for its lines to reference. (upload_id, record_no)
-- stays unique: the key above fixes one provider per upload.
ALTER TABLE claims ADD CONSTRAINT claims_identity UNIQUE (upload_id, record_no, provider_id);
ALTER TABLE claim_lines DROP CONSTRAINT claim_lines_upload_id_record_no_fkey;
ALTER TABLE claim_lines DROP CONSTRAINT claim_lines_provider_id_fkey;
ALTER TABLE claim_lines ADD CONSTRAINT claim_lines_claim_fkey
    FOREIGN KEY (upload_id, record_no, provider_id) REFERENCES claims (upload_id, record_no, provider_id);
ALTER TABLE claims DROP CONSTRAINT claims_upload_id_record_no_key;

ALTER TABLE rejects DROP CONSTRAINT rejects_upload_id_fkey;
ALTER TABLE rejects DROP CONSTRAINT rejects_provider_id_fkey;
ALTER TABLE rejects ADD CONSTRAINT rejects_upload_fkey
    FOREIGN KEY (upload_id, provider_id) REFERENCES uploads (upload_id, provider_id);

-- The queue: the ingest role records progress, never who an upload belongs to.
REVOKE INSERT, UPDATE ON uploads FROM claimgate_ingest;
GRANT UPDATE (checkpoint, lease_expires_at, records, accepted, rejected, skipped, claims, lines,
              replaced, voided, unmatched, total_charge_cents, line_charge_cents)
    ON uploads TO claimgate_ingest;
-- Claims: the columns that link versions, nothing more.
REVOKE SELECT (claim_type, payer_id, total_charge_cents, line_count, data_key_id, created_at)
    ON claims FROM claimgate_ingest;
