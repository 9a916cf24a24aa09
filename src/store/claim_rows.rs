//! The stored shape of a claim: non-PHI columns in the clear, PHI columns sealed.
//!
//! These rows are built by [`crate::protect`] (which seals) and written or read by the
//! store; nothing here holds a PHI value in the clear.

use time::{Date, OffsetDateTime};

/// The sealed PHI columns of a claim, in [`SealedPhi::COLUMNS`] order. `None` where the
/// claim had no value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SealedPhi {
    /// Member id.
    pub member_id: Option<Vec<u8>>,
    /// Patient's first name.
    pub first_name: Option<Vec<u8>>,
    /// Patient's last name.
    pub last_name: Option<Vec<u8>>,
    /// Birth date (`YYYY-MM-DD`).
    pub birth_date: Option<Vec<u8>>,
    /// Street address.
    pub address: Option<Vec<u8>>,
    /// City.
    pub city: Option<Vec<u8>>,
    /// ZIP code.
    pub zip: Option<Vec<u8>>,
}

impl SealedPhi {
    /// The column names, in the order of [`SealedPhi::values`].
    pub const COLUMNS: [&'static str; 7] = [
        "member_id",
        "first_name",
        "last_name",
        "birth_date",
        "address",
        "city",
        "zip",
    ];

    /// The sealed values, in [`SealedPhi::COLUMNS`] order.
    pub fn values(&self) -> [Option<&[u8]>; 7] {
        [
            self.member_id.as_deref(),
            self.first_name.as_deref(),
            self.last_name.as_deref(),
            self.birth_date.as_deref(),
            self.address.as_deref(),
            self.city.as_deref(),
            self.zip.as_deref(),
        ]
    }

    /// Mutable access in [`SealedPhi::COLUMNS`] order.
    pub fn values_mut(&mut self) -> [&mut Option<Vec<u8>>; 7] {
        [
            &mut self.member_id,
            &mut self.first_name,
            &mut self.last_name,
            &mut self.birth_date,
            &mut self.address,
            &mut self.city,
            &mut self.zip,
        ]
    }
}

/// A claim's identity: the upload it came from and its record number there. Bound into
/// every sealed value of the claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimKey {
    /// The upload (its raw file id).
    pub upload_id: String,
    /// The record's number in that file, from 1.
    pub record_no: i64,
}

impl ClaimKey {
    /// The row identity sealed values are bound to.
    pub fn row_identity(&self) -> String {
        format!("{}/{}", self.upload_id, self.record_no)
    }
}

/// One claim header to store.
#[derive(Debug, Clone)]
pub struct ClaimRow {
    /// Identity.
    pub key: ClaimKey,
    /// The sender's claim id.
    pub source_claim_id: String,
    /// `professional` or `institutional`.
    pub claim_type: &'static str,
    /// Frequency code (1, 7, 8, …).
    pub frequency_code: String,
    /// The claim a replacement or void refers to.
    pub original_claim_id: Option<String>,
    /// Payer id.
    pub payer_id: Option<String>,
    /// Payer name.
    pub payer_name: Option<String>,
    /// Plan or group.
    pub plan: Option<String>,
    /// Sex.
    pub sex: Option<String>,
    /// State.
    pub state: Option<String>,
    /// Billing NPI.
    pub billing_npi: Option<String>,
    /// Billing TIN.
    pub billing_tin: Option<String>,
    /// Rendering NPI.
    pub rendering_npi: Option<String>,
    /// Attending NPI.
    pub attending_npi: Option<String>,
    /// Facility NPI.
    pub facility_npi: Option<String>,
    /// Type of bill.
    pub bill_type: Option<String>,
    /// Place of service.
    pub place_of_service: Option<String>,
    /// Statement from.
    pub statement_from: Option<Date>,
    /// Statement through.
    pub statement_through: Option<Date>,
    /// Admission date.
    pub admission_date: Option<Date>,
    /// Discharge date.
    pub discharge_date: Option<Date>,
    /// Admission type.
    pub admit_type: Option<String>,
    /// Admission source.
    pub admit_source: Option<String>,
    /// Discharge status.
    pub discharge_status: Option<String>,
    /// DRG.
    pub drg: Option<String>,
    /// Diagnoses as `code[:poa]` joined by `,` (principal first).
    pub diagnoses: String,
    /// Procedures as `code[:YYYY-MM-DD]` joined by `,`.
    pub procedures: String,
    /// Total charge in cents.
    pub total_charge_cents: Option<i64>,
    /// Paid in cents.
    pub paid_cents: Option<i64>,
    /// Allowed in cents.
    pub allowed_cents: Option<i64>,
    /// The data key that sealed `phi`.
    pub data_key_id: String,
    /// Sealed PHI.
    pub phi: SealedPhi,
    /// Blind index of the member id.
    pub member_index: Option<Vec<u8>>,
    /// Blind index of last name, first name and birth date.
    pub person_index: Option<Vec<u8>>,
    /// Safe Harbor ZIP: three digits, `000` for a restricted area ([`crate::deid::zip3`]).
    pub deid_zip3: Option<String>,
    /// Safe Harbor age on the first service date, 90 for over 89 ([`crate::deid::age_on`]).
    pub deid_age: Option<i16>,
    /// The lines.
    pub lines: Vec<LineRow>,
}

/// One claim line to store.
#[derive(Debug, Clone, Default)]
pub struct LineRow {
    /// Line number as given.
    pub line_number: i32,
    /// Service from.
    pub service_from: Option<Date>,
    /// Service through.
    pub service_through: Option<Date>,
    /// HCPCS/CPT.
    pub procedure_code: Option<String>,
    /// Modifiers joined by `,`.
    pub modifiers: String,
    /// Revenue code.
    pub revenue_code: Option<String>,
    /// NDC.
    pub ndc: Option<String>,
    /// Units in thousandths.
    pub units_milli: Option<i64>,
    /// Charge in cents.
    pub charge_cents: Option<i64>,
    /// Paid in cents.
    pub paid_cents: Option<i64>,
    /// Allowed in cents.
    pub allowed_cents: Option<i64>,
    /// Rendering NPI.
    pub rendering_npi: Option<String>,
    /// Place of service.
    pub place_of_service: Option<String>,
}

/// A stored claim's sealed PHI with what is needed to open it.
#[derive(Debug, Clone)]
pub struct StoredPhi {
    /// Stored id.
    pub id: i64,
    /// Identity (bound into the seals).
    pub key: ClaimKey,
    /// The sender's claim id.
    pub source_claim_id: String,
    /// The key that sealed it.
    pub data_key_id: String,
    /// Sealed values.
    pub phi: SealedPhi,
    /// When it was stored.
    pub created_at: OffsetDateTime,
}

/// A raw file whose key is sealed by a given data key (for re-encryption).
#[derive(Debug, Clone)]
pub struct SealedFileKey {
    /// The file id.
    pub file_id: String,
    /// The per-file key, sealed.
    pub sealed_key: Vec<u8>,
}

/// Which blind index to search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexColumn {
    /// `member_index`.
    Member,
    /// `person_index`.
    Person,
}
