//! What the wide export reads: one stored claim with the lines selected, either
//! de-identified (pseudonyms, derived Safe Harbor values, no sealed column) or
//! identified (the sealed member columns, opened by the exporter).

use time::{Date, OffsetDateTime};

/// Claims sent to the exporter at a time.
pub(super) const EXPORT_BATCH: usize = 256;

/// Which claims and lines an export covers.
#[derive(Debug, Clone, Default)]
pub struct ExportSelection {
    /// Every version (`true`) or only final-action claims: current and not voided.
    pub history: bool,
    /// Only this upload's claims.
    pub upload: Option<String>,
    /// Lines whose service date (the line's, else the claim's statement start) is on or
    /// after this date.
    pub from: Option<Date>,
    /// … and on or before this date.
    pub to: Option<Date>,
}

/// How an export reads: which capability it holds and which columns it may see.
#[derive(Debug, Clone, Copy)]
pub enum ExportView<'a> {
    /// De-identified, with the pseudonyms of this export configuration.
    Deidentified {
        /// The configuration name (pseudonyms are stable within it).
        configuration: &'a str,
    },
    /// Identified: the sealed member columns are read too.
    Identified,
}

/// Where an export stands once started: the newest stored claim it may include (claims
/// stored later are left out, so what is recorded as disclosed covers what is sent).
#[derive(Debug, Clone, Copy)]
pub struct ExportStart {
    /// Highest claim id included.
    pub upto: i64,
}

/// A claim's sealed member values (identified exports only).
#[derive(Debug, Clone)]
pub struct ExportSealed {
    /// The key that sealed them.
    pub data_key_id: String,
    /// Member id.
    pub member_id: Option<Vec<u8>>,
    /// ZIP code.
    pub zip: Option<Vec<u8>>,
    /// Birth date.
    pub birth_date: Option<Vec<u8>>,
}

/// One stored claim version as exported.
#[derive(Debug, Clone)]
pub struct ExportClaim {
    /// The stored version's id.
    pub version_id: i64,
    /// Upload it came from (also the seal identity with `record_no`).
    pub upload_id: String,
    /// Record number in that upload.
    pub record_no: i64,
    /// The claim id as exported: the sender's, or its pseudonym.
    pub claim_key: Option<String>,
    /// The member's pseudonym (de-identified exports).
    pub member_key: Option<String>,
    /// Sealed member values (identified exports).
    pub sealed: Option<ExportSealed>,
    /// `professional` or `institutional`.
    pub claim_type: String,
    /// Frequency code.
    pub frequency_code: String,
    /// Whether no later version superseded it.
    pub current_version: bool,
    /// Payer id.
    pub payer_id: Option<String>,
    /// Payer name.
    pub payer_name: Option<String>,
    /// Plan.
    pub plan: Option<String>,
    /// Member's sex.
    pub sex: Option<String>,
    /// Member's state.
    pub state: Option<String>,
    /// Billing NPI.
    pub billing_npi: Option<String>,
    /// Billing TIN.
    pub billing_tin: Option<String>,
    /// Facility NPI.
    pub facility_npi: Option<String>,
    /// Type of bill.
    pub bill_type: Option<String>,
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
    /// Diagnoses, `code[:poa]` joined by `,`.
    pub diagnoses: String,
    /// Procedures, `code[:YYYY-MM-DD]` joined by `,`.
    pub procedures: String,
    /// Safe Harbor ZIP.
    pub deid_zip3: Option<String>,
    /// Safe Harbor age.
    pub deid_age: Option<i16>,
    /// When it was stored.
    pub created_at: OffsetDateTime,
    /// When its file was received.
    pub received_at: OffsetDateTime,
    /// The selected lines, in order (rendering NPI and place of service: the line's,
    /// else the claim's).
    pub lines: Vec<super::LineRow>,
}
