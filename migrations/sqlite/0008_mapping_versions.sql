-- Mapping versions (issue 8); see the PostgreSQL migration of the same number.
--   draft → approved → active → retired (→ active again: a rollback)
CREATE TABLE mapping_versions (
    id             INTEGER PRIMARY KEY,
    provider_id    INTEGER NOT NULL REFERENCES providers (id),
    version        INTEGER NOT NULL CHECK (version > 0),
    state          TEXT NOT NULL CHECK (state IN ('draft', 'approved', 'active', 'retired')),
    content        TEXT NOT NULL,
    comment        TEXT NOT NULL DEFAULT '',
    author         TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    approved_by    TEXT,
    approved_at    TEXT,
    activated_by   TEXT,
    activated_at   TEXT,
    UNIQUE (provider_id, version),
    CHECK (approved_by IS NULL OR approved_by <> author)
);
CREATE UNIQUE INDEX mapping_versions_one_active ON mapping_versions (provider_id)
    WHERE state = 'active';

INSERT INTO mapping_versions (provider_id, version, state, content, comment, author, created_at,
                              activated_by, activated_at)
SELECT id, 1, 'active', mapping, 'assigned before mapping versions', 'migration-0008',
       strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), 'migration-0008', strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
FROM providers WHERE mapping IS NOT NULL;

ALTER TABLE uploads ADD COLUMN mapping_version_id INTEGER REFERENCES mapping_versions (id);
UPDATE uploads SET mapping_version_id = (SELECT v.id FROM mapping_versions v
    WHERE v.provider_id = uploads.provider_id AND v.state = 'active');

ALTER TABLE providers DROP COLUMN mapping;
