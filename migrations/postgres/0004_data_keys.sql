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
