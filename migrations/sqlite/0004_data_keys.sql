-- Per-provider data keys. Mirrors migrations/postgres/0004.
CREATE TABLE data_keys (
    key_id          TEXT PRIMARY KEY,
    provider_id     INTEGER NOT NULL REFERENCES providers (id),
    kek_fingerprint TEXT NOT NULL,
    wrapped_key     BLOB,
    sealed          INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT NOT NULL,
    retired_at      TEXT,
    destroyed_at    TEXT,
    CHECK ((destroyed_at IS NULL) = (wrapped_key IS NOT NULL))
);
CREATE UNIQUE INDEX data_keys_active ON data_keys (provider_id)
    WHERE retired_at IS NULL AND destroyed_at IS NULL;

CREATE TABLE raw_files (
    file_id        TEXT PRIMARY KEY,
    provider_id    INTEGER NOT NULL REFERENCES providers (id),
    sealed_key     BLOB NOT NULL,
    stored_bytes   INTEGER NOT NULL,
    created_at     TEXT NOT NULL
);
