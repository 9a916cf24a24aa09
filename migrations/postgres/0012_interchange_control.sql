-- X12 interchange replay (issue 11, catalogue X12-07). A sender numbers its interchanges:
-- ISA13 is unique from one sender (ISA05/ISA06) to one receiver (ISA07/ISA08). Every
-- upload that starts with an ISA records that identity. A provider whose policy is
-- 'unique' (the default) has a new file that repeats an identity refused as a replay; a
-- clearinghouse known to reuse control numbers is set to 'reused', and its uploads are
-- then deduplicated by their bytes alone.
ALTER TABLE providers ADD COLUMN interchange_control TEXT NOT NULL DEFAULT 'unique'
    CHECK (interchange_control IN ('unique', 'reused'));
GRANT UPDATE (interchange_control) ON providers TO claimgate_api;

ALTER TABLE uploads ADD COLUMN interchange_sender TEXT;
ALTER TABLE uploads ADD COLUMN interchange_receiver TEXT;
ALTER TABLE uploads ADD COLUMN interchange_control TEXT;
-- Whether the provider's policy was 'unique' when the upload was received: only those
-- uploads hold their identity against later files (so two concurrent uploads of one
-- identity cannot both be recorded).
ALTER TABLE uploads ADD COLUMN interchange_unique BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE uploads ADD CONSTRAINT uploads_interchange_complete CHECK (
    (interchange_control IS NULL AND interchange_sender IS NULL AND interchange_receiver IS NULL
        AND NOT interchange_unique)
    OR (interchange_control IS NOT NULL AND interchange_sender IS NOT NULL
        AND interchange_receiver IS NOT NULL));
CREATE UNIQUE INDEX uploads_interchange
    ON uploads (provider_id, interchange_sender, interchange_receiver, interchange_control)
    WHERE interchange_unique;
