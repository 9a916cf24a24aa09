-- Mapping versions (issue 8): every mapping a provider's files can be read with is an
-- immutable, numbered version with its author, review and activation. A draft may be
-- edited (the SHA-256 of its content is its ETag); an approved version never changes. Exactly one
-- version of a provider is active; an upload records the version active when it was
-- received and is read with that one, whatever is activated later.
--   draft → approved → active → retired (→ active again: a rollback)
CREATE TABLE mapping_versions (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    provider_id    BIGINT NOT NULL REFERENCES providers (id),
    version        INTEGER NOT NULL CHECK (version > 0),
    state          TEXT NOT NULL CHECK (state IN ('draft', 'approved', 'active', 'retired')),
    content        TEXT NOT NULL,
    comment        TEXT NOT NULL DEFAULT '',
    author         TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    approved_by    TEXT,
    approved_at    TIMESTAMPTZ,
    activated_by   TEXT,
    activated_at   TIMESTAMPTZ,
    UNIQUE (provider_id, version),
    -- Maker-checker: the approver is never the author. A version activated without a
    -- review (by the operator console, or assigned before versions existed) keeps
    -- `approved_by` NULL, and the API never activates such a version.
    CHECK (approved_by IS NULL OR approved_by <> author)
);
CREATE UNIQUE INDEX mapping_versions_one_active ON mapping_versions (provider_id)
    WHERE state = 'active';

-- Mappings assigned before versions existed become version 1, active, unreviewed.
INSERT INTO mapping_versions (provider_id, version, state, content, comment,
                              author, created_at, approved_by, approved_at, activated_by, activated_at)
SELECT id, 1, 'active', mapping, 'assigned before mapping versions',
       'migration-0008', now(), NULL, NULL, 'migration-0008', now()
FROM providers WHERE mapping IS NOT NULL;

ALTER TABLE uploads ADD COLUMN mapping_version_id BIGINT REFERENCES mapping_versions (id);
UPDATE uploads u SET mapping_version_id = v.id FROM mapping_versions v
    WHERE v.provider_id = u.provider_id AND v.state = 'active';

REVOKE UPDATE (mapping) ON providers FROM claimgate_api;
ALTER TABLE providers DROP COLUMN mapping;

GRANT SELECT, INSERT ON mapping_versions TO claimgate_api;
GRANT UPDATE (state, content, comment, approved_by, approved_at, activated_by,
              activated_at) ON mapping_versions TO claimgate_api;
GRANT USAGE ON SEQUENCE mapping_versions_id_seq TO claimgate_api;
GRANT SELECT ON mapping_versions TO claimgate_ingest;

-- Providers can be disabled through the API (their files are refused from then on).
GRANT UPDATE (disabled_at) ON providers TO claimgate_api;
