//! The columns of the wide export: the Tuva Project `medical_claim` input layer, in its
//! order and with its types, then claimgate's extension columns (prefixed `x_`, which
//! Tuva passes through).

use std::sync::OnceLock;

/// A column's type, as Tuva declares it and as Parquet stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `varchar`: Parquet UTF-8 string.
    Text,
    /// `integer`: Parquet INT32.
    Integer,
    /// A 64-bit integer: Parquet INT64.
    BigInt,
    /// `numeric` amounts: Parquet DECIMAL(18, 2) over INT64 cents.
    Decimal,
    /// `date`: Parquet DATE.
    Date,
    /// `timestamp`: Parquet TIMESTAMP (microseconds, UTC).
    Timestamp,
    /// Boolean.
    Boolean,
}

/// What a column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// claim_id
    ClaimId,
    /// claim_line_number
    ClaimLineNumber,
    /// claim_type
    ClaimType,
    /// person_id
    PersonId,
    /// member_id
    MemberId,
    /// payer
    Payer,
    /// plan
    Plan,
    /// claim_start_date
    ClaimStartDate,
    /// claim_end_date
    ClaimEndDate,
    /// claim_line_start_date
    LineStartDate,
    /// claim_line_end_date
    LineEndDate,
    /// admission_date
    AdmissionDate,
    /// discharge_date
    DischargeDate,
    /// admit_source_code
    AdmitSource,
    /// admit_type_code
    AdmitType,
    /// discharge_disposition_code
    DischargeDisposition,
    /// place_of_service_code
    PlaceOfService,
    /// bill_type_code
    BillType,
    /// drg_code_type
    DrgCodeType,
    /// drg_code
    Drg,
    /// revenue_center_code
    RevenueCenter,
    /// service_unit_quantity
    ServiceUnits,
    /// hcpcs_code
    Hcpcs,
    /// hcpcs_modifier_N (N from 1)
    HcpcsModifier(u8),
    /// rendering_npi
    RenderingNpi,
    /// billing_npi
    BillingNpi,
    /// billing_tin
    BillingTin,
    /// facility_npi
    FacilityNpi,
    /// paid_amount
    PaidAmount,
    /// allowed_amount
    AllowedAmount,
    /// charge_amount
    ChargeAmount,
    /// diagnosis_code_type
    DiagnosisCodeType,
    /// diagnosis_code_N
    Diagnosis(u8),
    /// diagnosis_poa_N
    DiagnosisPoa(u8),
    /// procedure_code_type
    ProcedureCodeType,
    /// procedure_code_N
    Procedure(u8),
    /// procedure_date_N
    ProcedureDate(u8),
    /// data_source
    DataSource,
    /// file_name
    FileName,
    /// file_date
    FileDate,
    /// ingest_datetime
    IngestDatetime,
    /// A Tuva column claimgate has no source for (always null).
    Unmapped,
    /// x_claim_version_id: the stored version's id (not derived from any PHI).
    VersionId,
    /// x_frequency_code
    FrequencyCode,
    /// x_final_action: the version is current and not a void.
    FinalAction,
    /// x_member_sex
    MemberSex,
    /// x_member_state
    MemberState,
    /// x_member_zip: full ZIP (identified) or Safe Harbor ZIP3.
    MemberZip,
    /// x_member_age: age on the first service date (de-identified: `90+` over 89).
    MemberAge,
}

/// One export column.
#[derive(Debug, Clone)]
pub struct ColumnSpec {
    /// Its name.
    pub name: String,
    /// What it holds.
    pub column: Column,
    /// Its type.
    pub kind: Kind,
}

/// Diagnosis and procedure slots in the Tuva layout.
pub const CODE_SLOTS: u8 = 25;
/// HCPCS modifier slots.
pub const MODIFIER_SLOTS: u8 = 5;

/// Every export column, in order: the Tuva `medical_claim` columns, then the extensions.
pub fn columns() -> &'static [ColumnSpec] {
    static COLUMNS: OnceLock<Vec<ColumnSpec>> = OnceLock::new();
    COLUMNS.get_or_init(build)
}

fn build() -> Vec<ColumnSpec> {
    use Column as C;
    use Kind as K;
    let mut out = Vec::with_capacity(170);
    let mut push = |name: &str, column: Column, kind: Kind| {
        out.push(ColumnSpec {
            name: name.to_owned(),
            column,
            kind,
        });
    };
    for (name, column, kind) in [
        ("claim_id", C::ClaimId, K::Text),
        ("claim_line_number", C::ClaimLineNumber, K::Integer),
        ("claim_type", C::ClaimType, K::Text),
        ("person_id", C::PersonId, K::Text),
        ("member_id", C::MemberId, K::Text),
        ("payer", C::Payer, K::Text),
        ("plan", C::Plan, K::Text),
        ("claim_start_date", C::ClaimStartDate, K::Date),
        ("claim_end_date", C::ClaimEndDate, K::Date),
        ("claim_line_start_date", C::LineStartDate, K::Date),
        ("claim_line_end_date", C::LineEndDate, K::Date),
        ("admission_date", C::AdmissionDate, K::Date),
        ("discharge_date", C::DischargeDate, K::Date),
        ("admit_source_code", C::AdmitSource, K::Text),
        ("admit_type_code", C::AdmitType, K::Text),
        (
            "discharge_disposition_code",
            C::DischargeDisposition,
            K::Text,
        ),
        ("place_of_service_code", C::PlaceOfService, K::Text),
        ("bill_type_code", C::BillType, K::Text),
        ("drg_code_type", C::DrgCodeType, K::Text),
        ("drg_code", C::Drg, K::Text),
        ("revenue_center_code", C::RevenueCenter, K::Text),
        ("service_unit_quantity", C::ServiceUnits, K::Integer),
        ("hcpcs_code", C::Hcpcs, K::Text),
    ] {
        push(name, column, kind);
    }
    for n in 1..=MODIFIER_SLOTS {
        push(&format!("hcpcs_modifier_{n}"), C::HcpcsModifier(n), K::Text);
    }
    for (name, column, kind) in [
        ("rendering_npi", C::RenderingNpi, K::Text),
        ("rendering_tin", C::Unmapped, K::Text),
        ("billing_npi", C::BillingNpi, K::Text),
        ("billing_tin", C::BillingTin, K::Text),
        ("facility_npi", C::FacilityNpi, K::Text),
        ("paid_date", C::Unmapped, K::Date),
        ("paid_amount", C::PaidAmount, K::Decimal),
        ("allowed_amount", C::AllowedAmount, K::Decimal),
        ("charge_amount", C::ChargeAmount, K::Decimal),
        ("coinsurance_amount", C::Unmapped, K::Decimal),
        ("copayment_amount", C::Unmapped, K::Decimal),
        ("deductible_amount", C::Unmapped, K::Decimal),
        ("total_cost_amount", C::Unmapped, K::Decimal),
        ("diagnosis_code_type", C::DiagnosisCodeType, K::Text),
    ] {
        push(name, column, kind);
    }
    for n in 1..=CODE_SLOTS {
        push(&format!("diagnosis_code_{n}"), C::Diagnosis(n), K::Text);
    }
    for n in 1..=CODE_SLOTS {
        push(&format!("diagnosis_poa_{n}"), C::DiagnosisPoa(n), K::Text);
    }
    push("procedure_code_type", C::ProcedureCodeType, K::Text);
    for n in 1..=CODE_SLOTS {
        push(&format!("procedure_code_{n}"), C::Procedure(n), K::Text);
    }
    for n in 1..=CODE_SLOTS {
        push(&format!("procedure_date_{n}"), C::ProcedureDate(n), K::Date);
    }
    for (name, column, kind) in [
        ("in_network_flag", C::Unmapped, K::Integer),
        ("data_source", C::DataSource, K::Text),
        ("file_name", C::FileName, K::Text),
        ("file_date", C::FileDate, K::Date),
        ("ingest_datetime", C::IngestDatetime, K::Timestamp),
        ("x_claim_version_id", C::VersionId, K::BigInt),
        ("x_frequency_code", C::FrequencyCode, K::Text),
        ("x_final_action", C::FinalAction, K::Boolean),
        ("x_member_sex", C::MemberSex, K::Text),
        ("x_member_state", C::MemberState, K::Text),
        ("x_member_zip", C::MemberZip, K::Text),
        ("x_member_age", C::MemberAge, K::Text),
    ] {
        push(name, column, kind);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tuva_columns_come_first_then_the_extensions() {
        let names: Vec<&str> = columns().iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names.len(), 155);
        let tuva = names.iter().take_while(|n| !n.starts_with("x_")).count();
        assert_eq!(tuva, 148);
        assert_eq!(names[..3], ["claim_id", "claim_line_number", "claim_type"]);
        assert_eq!(names[147], "ingest_datetime");
        assert!(names[148..].iter().all(|n| n.starts_with("x_")));
        let unique: std::collections::HashSet<&&str> = names.iter().collect();
        assert_eq!(unique.len(), names.len(), "no name twice");
    }
}
