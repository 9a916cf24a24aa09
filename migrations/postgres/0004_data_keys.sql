-- Per-provider data keys (issue 6): stored only wrapped by the key-encryption key, whose
-- fingerprint is kept so that start-up can refuse a configuration without it. A rotated
-- key is retired (it still opens old values, seals nothing new); a destroyed key has its
-- wrapped bytes erased (crypto-shredding) and opens nothing.
CREATE TABLE data_keys (
    key_id          TEXT PRIMARY KEY,
    provider_id     BIGINT NOT NULL REFERENCES providers (id),
    kek_fingerprint TEXT NOT NULL,
    wrapped_key     BYTEA,
    sealed          BIGINT NOT NULL DEFAULT 0,
    created_at      TIMESTAMPTZ NOT NULL,
    retired_at      TIMESTAMPTZ,
    destroyed_at    TIMESTAMPTZ,
    CHECK ((destroyed_at IS NULL) = (wrapped_key IS NOT NULL))
);
CREATE UNIQUE INDEX data_keys_active ON data_keys (provider_id)
    WHERE retired_at IS NULL AND destroyed_at IS NULL;

REVOKE ALL ON data_keys FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE ON data_keys TO claimgate_api;
GRANT SELECT ON data_keys TO claimgate_ingest;

-- Raw files: the stored original of every upload, encrypted in chunks under a per-file
-- key sealed by the provider's data key (the encrypted bytes live in the raw store).
CREATE TABLE raw_files (
    file_id        TEXT PRIMARY KEY,
    provider_id    BIGINT NOT NULL REFERENCES providers (id),
    sealed_key     BYTEA NOT NULL,
    stored_bytes   BIGINT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL
);
ALTER TABLE raw_files ENABLE ROW LEVEL SECURITY;
ALTER TABLE raw_files FORCE ROW LEVEL SECURITY;
CREATE POLICY raw_files_tenant ON raw_files
    USING (provider_id = NULLIF(current_setting('app.provider_id', true), '')::BIGINT)
    WITH CHECK (provider_id = NULLIF(current_setting('app.provider_id', true), '')::BIGINT);
REVOKE ALL ON raw_files FROM PUBLIC;
GRANT SELECT, INSERT ON raw_files TO claimgate_api, claimgate_ingest;
