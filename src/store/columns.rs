//! The column lists of the claim tables as the PostgreSQL writer fills them (and the
//! ingest benchmark's bare COPY of the same rows).

/// The claim columns written, in order.
pub const CLAIM_COLUMNS: &str = "provider_id, upload_id, record_no, source_claim_id, claim_type, \
    frequency_code, original_claim_id, payer_id, payer_name, plan, sex, state, billing_npi, \
    billing_tin, rendering_npi, attending_npi, facility_npi, bill_type, place_of_service, \
    statement_from, statement_through, admission_date, discharge_date, admit_type, admit_source, \
    discharge_status, drg, diagnoses, procedures, total_charge_cents, paid_cents, allowed_cents, \
    line_count, data_key_id, member_id, first_name, last_name, birth_date, address, city, zip, \
    member_index, person_index, created_at, deid_zip3, deid_age";

/// The line columns written, in order.
pub const LINE_COLUMNS: &str = "provider_id, upload_id, record_no, ordinal, line_number, \
    service_from, service_through, procedure_code, modifiers, revenue_code, ndc, units_milli, \
    charge_cents, paid_cents, allowed_cents, rendering_npi, place_of_service";

/// The columns both exports read, from claims `c`, lines `l` and uploads `u` (the
/// PostgreSQL view `analyst_claim_lines` has the same names).
macro_rules! export_columns {
    () => {
        "c.provider_id, c.id AS version_id, c.claim_type, c.frequency_code, \
         c.superseded_at IS NULL AS current_version, c.payer_id, c.payer_name, c.plan, c.sex, \
         c.state, c.billing_npi, c.billing_tin, c.facility_npi, c.bill_type, c.statement_from, \
         c.statement_through, c.admission_date, c.discharge_date, c.admit_type, c.admit_source, \
         c.discharge_status, c.drg, c.diagnoses, c.procedures, c.deid_zip3, c.deid_age, \
         c.created_at, u.received_at, c.upload_id, c.record_no, l.ordinal, l.line_number, \
         l.service_from, l.service_through, l.procedure_code, l.modifiers, l.revenue_code, l.ndc, \
         l.units_milli, l.charge_cents, l.paid_cents, l.allowed_cents, \
         coalesce(l.rendering_npi, c.rendering_npi) AS rendering_npi, \
         coalesce(l.place_of_service, c.place_of_service) AS place_of_service"
    };
}

/// The tables of [`export_columns`] (SQLite).
macro_rules! export_tables {
    () => {
        " FROM claims c \
         JOIN claim_lines l ON l.upload_id = c.upload_id AND l.record_no = c.record_no \
         JOIN uploads u ON u.upload_id = c.upload_id"
    };
}

/// The selection of an export over the rows of [`export_columns`]: `$1` provider id,
/// `$2` highest claim id, `$3` history, `$4` upload, `$5`/`$6` service dates.
macro_rules! export_where {
    () => {
        " WHERE provider_id = $1 AND version_id <= $2 \
         AND ($3 OR (current_version AND frequency_code <> '8')) \
         AND ($4 IS NULL OR upload_id = $4) \
         AND ($5 IS NULL OR coalesce(service_from, statement_from) >= $5) \
         AND ($6 IS NULL OR coalesce(service_from, statement_from) <= $6)"
    };
}

/// The order SQLite reads an export in: a claim's lines together, in their order.
macro_rules! export_order {
    () => {
        " ORDER BY upload_id, record_no, ordinal"
    };
}

/// The claims an identified export selects (the same parameters as [`export_where`]),
/// for the disclosure record.
macro_rules! disclosed_claims {
    () => {
        " FROM claims c WHERE c.provider_id = $1 AND c.id <= $2 \
         AND ($3 OR (c.superseded_at IS NULL AND c.frequency_code <> '8')) \
         AND ($4 IS NULL OR c.upload_id = $4) \
         AND EXISTS (SELECT 1 FROM claim_lines l \
             WHERE l.upload_id = c.upload_id AND l.record_no = c.record_no \
             AND ($5 IS NULL OR coalesce(l.service_from, c.statement_from) >= $5) \
             AND ($6 IS NULL OR coalesce(l.service_from, c.statement_from) <= $6))"
    };
}

/// The identified export on SQLite: the export columns, the sender's claim id and the
/// sealed member columns (opened by the exporter, never by the database).
pub const SQLITE_IDENTIFIED_EXPORT: &str = concat!(
    "SELECT * FROM (SELECT ",
    export_columns!(),
    ", c.source_claim_id AS claim_key, CAST(NULL AS TEXT) AS member_key, c.data_key_id, \
     c.member_id AS sealed_member_id, c.zip AS sealed_zip, c.birth_date AS sealed_birth_date",
    export_tables!(),
    ") s",
    export_where!(),
    export_order!()
);

/// The identified export on PostgreSQL, shaped like the analyst view (migration 0011):
/// claims selected once, each with its file date, then its lines from a LATERAL
/// subquery, so a claim's lines follow it in order and rows stream from the first claim
/// whatever the planner's statistics say.
pub const POSTGRES_IDENTIFIED_EXPORT: &str = "SELECT * FROM (\
    SELECT c.provider_id, c.id AS version_id, c.claim_type, c.frequency_code, \
        c.superseded_at IS NULL AS current_version, c.payer_id, c.payer_name, c.plan, c.sex, \
        c.state, c.billing_npi, c.billing_tin, c.facility_npi, c.bill_type, c.statement_from, \
        c.statement_through, c.admission_date, c.discharge_date, c.admit_type, c.admit_source, \
        c.discharge_status, c.drg, c.diagnoses, c.procedures, c.deid_zip3, c.deid_age, \
        c.created_at, (SELECT u.received_at FROM uploads u WHERE u.upload_id = c.upload_id) \
        AS received_at, c.upload_id, c.record_no, c.rendering_npi AS claim_rendering_npi, \
        c.place_of_service AS claim_place_of_service, c.source_claim_id AS claim_key, \
        CAST(NULL AS TEXT) AS member_key, c.data_key_id, c.member_id AS sealed_member_id, \
        c.zip AS sealed_zip, c.birth_date AS sealed_birth_date \
    FROM claims c WHERE c.provider_id = $1 AND c.id <= $2 \
        AND ($3 OR (c.superseded_at IS NULL AND c.frequency_code <> '8')) \
        AND ($4::text IS NULL OR c.upload_id = $4) \
    OFFSET 0) c \
    CROSS JOIN LATERAL (SELECT x.ordinal, x.line_number, x.service_from, x.service_through, \
        x.procedure_code, x.modifiers, x.revenue_code, x.ndc, x.units_milli, x.charge_cents, \
        x.paid_cents, x.allowed_cents, \
        coalesce(x.rendering_npi, c.claim_rendering_npi) AS rendering_npi, \
        coalesce(x.place_of_service, c.claim_place_of_service) AS place_of_service \
    FROM claim_lines x WHERE x.upload_id = c.upload_id AND x.record_no = c.record_no \
        AND ($5::date IS NULL OR coalesce(x.service_from, c.statement_from) >= $5) \
        AND ($6::date IS NULL OR coalesce(x.service_from, c.statement_from) <= $6) \
    ORDER BY x.ordinal) l";

/// The de-identified export on SQLite (no roles there): the export columns and the
/// pseudonyms of configuration `$7`; no sealed column, no claim id.
pub const SQLITE_DEIDENTIFIED_EXPORT: &str = concat!(
    "SELECT * FROM (SELECT ",
    export_columns!(),
    ", pc.pseudonym AS claim_key, pm.pseudonym AS member_key",
    export_tables!(),
    " LEFT JOIN export_pseudonyms pc ON pc.provider_id = c.provider_id AND pc.kind = 'claim' \
     AND pc.configuration = $7 AND pc.subject = CAST(c.source_claim_id AS BLOB) \
     LEFT JOIN export_pseudonyms pm ON pm.provider_id = c.provider_id AND pm.kind = 'member' \
     AND pm.configuration = $7 AND pm.subject = c.member_index) s",
    export_where!(),
    export_order!()
);

/// The de-identified export on PostgreSQL, as `claimgate_analyst` through its view. The
/// view selects by the session's settings (so the selection reaches inside it); the
/// same conditions here only confirm it.
pub const POSTGRES_DEIDENTIFIED_EXPORT: &str =
    concat!("SELECT * FROM analyst_claim_lines", export_where!());

/// How many claims an identified export selects.
pub const DISCLOSED_COUNT: &str = concat!("SELECT count(*)", disclosed_claims!());

/// Records the claims an identified export selects as disclosed by disclosure `$7`.
pub const DISCLOSED_INSERT: &str = concat!(
    "INSERT INTO phi_disclosed_claims (disclosure_id, provider_id, claim_id, member_index) \
     SELECT $7, c.provider_id, c.id, c.member_index",
    disclosed_claims!()
);
