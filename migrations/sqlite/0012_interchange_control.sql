-- X12 interchange replay (issue 11, catalogue X12-07); see the PostgreSQL migration of
-- the same number. SQLite cannot add a table constraint to an existing table, so the
-- all-or-nothing rule for the identity is a column check on the flag.
ALTER TABLE providers ADD COLUMN interchange_control TEXT NOT NULL DEFAULT 'unique'
    CHECK (interchange_control IN ('unique', 'reused'));

ALTER TABLE uploads ADD COLUMN interchange_sender TEXT;
ALTER TABLE uploads ADD COLUMN interchange_receiver TEXT;
ALTER TABLE uploads ADD COLUMN interchange_control TEXT;
ALTER TABLE uploads ADD COLUMN interchange_unique INTEGER NOT NULL DEFAULT 0
    CHECK (interchange_unique IN (0, 1)
        AND (interchange_control IS NULL) = (interchange_sender IS NULL)
        AND (interchange_control IS NULL) = (interchange_receiver IS NULL)
        AND (interchange_unique = 0 OR interchange_control IS NOT NULL));
CREATE UNIQUE INDEX uploads_interchange
    ON uploads (provider_id, interchange_sender, interchange_receiver, interchange_control)
    WHERE interchange_unique;
