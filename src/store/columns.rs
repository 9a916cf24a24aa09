//! The column lists of the claim tables as the PostgreSQL writer fills them (and the
//! ingest benchmark's bare COPY of the same rows).

/// The claim columns written, in order.
pub const CLAIM_COLUMNS: &str = "provider_id, upload_id, record_no, source_claim_id, claim_type, \
    frequency_code, original_claim_id, payer_id, payer_name, plan, sex, state, billing_npi, \
    billing_tin, rendering_npi, attending_npi, facility_npi, bill_type, place_of_service, \
    statement_from, statement_through, admission_date, discharge_date, admit_type, admit_source, \
    discharge_status, drg, diagnoses, procedures, total_charge_cents, paid_cents, allowed_cents, \
    line_count, data_key_id, member_id, first_name, last_name, birth_date, address, city, zip, \
    member_index, person_index, created_at";

/// The line columns written, in order.
pub const LINE_COLUMNS: &str = "provider_id, upload_id, record_no, ordinal, line_number, \
    service_from, service_through, procedure_code, modifiers, revenue_code, ndc, units_milli, \
    charge_cents, paid_cents, allowed_cents, rendering_npi, place_of_service";
