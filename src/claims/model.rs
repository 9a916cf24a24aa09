//! The normalized claim: one header with its lines, whatever shape it arrived in.
//!
//! Identifying fields are [`Phi`]: their `Debug` and `Display` print a redaction, they
//! have no `Serialize`, so they cannot reach a log line or an error by accident, and their
//! memory is wiped when they are dropped; code that must see them calls [`Phi::expose`].

use std::fmt;

use time::Date;

use super::codes::{
    BillType, Drg, Icd10Cm, Modifier, Npi, PlaceOfService, ProcedureCode, RevenueCode, Tin,
};
use super::money::Money;

/// What a [`Phi`] can hold: a value that can be wiped when it is dropped.
pub trait PhiValue {
    /// Overwrites the value's memory.
    fn wipe(&mut self);
}

impl PhiValue for Option<String> {
    fn wipe(&mut self) {
        if let Some(text) = self {
            zeroize::Zeroize::zeroize(text);
        }
    }
}

impl PhiValue for Option<Date> {
    /// A date holds no heap memory; it is cleared as far as safe Rust can.
    fn wipe(&mut self) {
        *self = None;
    }
}

/// A value that is protected health information. Its memory is wiped when dropped.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Phi<T: PhiValue>(T);

impl<T: PhiValue> Drop for Phi<T> {
    fn drop(&mut self) {
        self.0.wipe();
    }
}

impl<T: PhiValue> Phi<T> {
    /// Wraps a value.
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The value itself: every call site is a place where PHI is handled on purpose.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T: PhiValue> fmt::Debug for Phi<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[PHI]")
    }
}

impl<T: PhiValue> fmt::Display for Phi<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[PHI]")
    }
}

/// Professional (CMS-1500, 837P) or institutional (UB-04, 837I).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimType {
    /// Physician and supplier claims.
    Professional,
    /// Facility claims.
    Institutional,
}

impl ClaimType {
    /// `professional` or `institutional` (the Tuva `claim_type` values).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Professional => "professional",
            Self::Institutional => "institutional",
        }
    }
}

/// The claim frequency (CLM05-3, or the third character of the type of bill).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frequency {
    /// 1: an original claim.
    Original,
    /// 7: replaces an earlier claim.
    Replacement,
    /// 8: voids an earlier claim.
    Void,
    /// Any other code (interim bills 2–5 and the like), kept as given.
    Other(char),
}

impl Frequency {
    /// From the one-character code.
    pub fn from_code(code: char) -> Self {
        match code {
            '1' => Self::Original,
            '7' => Self::Replacement,
            '8' => Self::Void,
            other => Self::Other(other),
        }
    }

    /// The one-character code.
    pub fn code(self) -> char {
        match self {
            Self::Original => '1',
            Self::Replacement => '7',
            Self::Void => '8',
            Self::Other(c) => c,
        }
    }
}

/// A diagnosis code, ICD-10-CM or (in older files) ICD-9-CM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiagnosisCode {
    /// ICD-10-CM, without the dot.
    Icd10(Icd10Cm),
    /// ICD-9-CM, without the dot (only its shape is checked).
    Icd9(String),
}

impl DiagnosisCode {
    /// The code text.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Icd10(c) => c.as_str(),
            Self::Icd9(c) => c,
        }
    }

    /// `icd-10-cm` or `icd-9-cm`.
    pub fn system(&self) -> &'static str {
        match self {
            Self::Icd10(_) => "icd-10-cm",
            Self::Icd9(_) => "icd-9-cm",
        }
    }
}

/// One diagnosis with its present-on-admission indicator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    /// The code.
    pub code: DiagnosisCode,
    /// POA indicator (Y, N, U, W, 1) when given.
    pub poa: Option<char>,
}

/// An ICD procedure code (institutional) with its date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Procedure {
    /// The code as given, upper case without the dot.
    pub code: String,
    /// When it was performed.
    pub date: Option<Date>,
}

/// A claim header. Money is in integer cents, dates are calendar dates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The sender's claim id (CLM01).
    pub source_claim_id: String,
    /// Professional or institutional.
    pub claim_type: ClaimType,
    /// Original, replacement or void.
    pub frequency: Frequency,
    /// For replacements and voids: the payer's id of the claim being corrected.
    pub original_claim_id: Option<String>,
    /// Payer id.
    pub payer_id: Option<String>,
    /// Payer name.
    pub payer_name: Option<String>,
    /// Plan or group number.
    pub plan: Option<String>,
    /// Member id of the patient (or subscriber).
    pub member_id: Phi<Option<String>>,
    /// Patient's first name.
    pub patient_first_name: Phi<Option<String>>,
    /// Patient's last name.
    pub patient_last_name: Phi<Option<String>>,
    /// Patient's birth date.
    pub birth_date: Phi<Option<Date>>,
    /// Patient's sex (F, M, U).
    pub sex: Option<char>,
    /// Patient's street address.
    pub address: Phi<Option<String>>,
    /// Patient's city.
    pub city: Phi<Option<String>>,
    /// Patient's state.
    pub state: Option<String>,
    /// Patient's ZIP code.
    pub zip: Phi<Option<String>>,
    /// Billing provider NPI.
    pub billing_npi: Option<Npi>,
    /// Billing provider TIN.
    pub billing_tin: Option<Tin>,
    /// Rendering provider NPI.
    pub rendering_npi: Option<Npi>,
    /// Attending provider NPI (institutional).
    pub attending_npi: Option<Npi>,
    /// Service facility NPI.
    pub facility_npi: Option<Npi>,
    /// Type of bill (institutional).
    pub bill_type: Option<BillType>,
    /// Place of service (professional).
    pub place_of_service: Option<PlaceOfService>,
    /// Statement period start.
    pub statement_from: Option<Date>,
    /// Statement period end.
    pub statement_through: Option<Date>,
    /// Admission date.
    pub admission_date: Option<Date>,
    /// Discharge date.
    pub discharge_date: Option<Date>,
    /// Admission type code.
    pub admit_type: Option<String>,
    /// Admission source code.
    pub admit_source: Option<String>,
    /// Discharge status code.
    pub discharge_status: Option<String>,
    /// MS-DRG.
    pub drg: Option<Drg>,
    /// Diagnoses, principal first (at most 25 are kept).
    pub diagnoses: Vec<Diagnosis>,
    /// ICD procedures (at most 25).
    pub procedures: Vec<Procedure>,
    /// Total charge.
    pub total_charge: Option<Money>,
    /// Paid amount.
    pub paid: Option<Money>,
    /// Allowed amount.
    pub allowed: Option<Money>,
    /// The lines.
    pub lines: Vec<ClaimLine>,
}

/// A claim line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimLine {
    /// Line number (LX01, or position).
    pub line_number: u32,
    /// Service start.
    pub service_from: Option<Date>,
    /// Service end.
    pub service_through: Option<Date>,
    /// HCPCS or CPT code.
    pub procedure_code: Option<ProcedureCode>,
    /// Up to four modifiers.
    pub modifiers: Vec<Modifier>,
    /// Revenue code (institutional).
    pub revenue_code: Option<RevenueCode>,
    /// National Drug Code.
    pub ndc: Option<String>,
    /// Units, in thousandths.
    pub units_milli: Option<i64>,
    /// Line charge.
    pub charge: Option<Money>,
    /// Paid amount.
    pub paid: Option<Money>,
    /// Allowed amount.
    pub allowed: Option<Money>,
    /// Rendering provider NPI.
    pub rendering_npi: Option<Npi>,
    /// Place of service.
    pub place_of_service: Option<PlaceOfService>,
}

impl Claim {
    /// An empty claim of a type, to be filled by a mapping.
    pub fn new(claim_type: ClaimType) -> Self {
        Self {
            source_claim_id: String::new(),
            claim_type,
            frequency: Frequency::Original,
            original_claim_id: None,
            payer_id: None,
            payer_name: None,
            plan: None,
            member_id: Phi::default(),
            patient_first_name: Phi::default(),
            patient_last_name: Phi::default(),
            birth_date: Phi::default(),
            sex: None,
            address: Phi::default(),
            city: Phi::default(),
            state: None,
            zip: Phi::default(),
            billing_npi: None,
            billing_tin: None,
            rendering_npi: None,
            attending_npi: None,
            facility_npi: None,
            bill_type: None,
            place_of_service: None,
            statement_from: None,
            statement_through: None,
            admission_date: None,
            discharge_date: None,
            admit_type: None,
            admit_source: None,
            discharge_status: None,
            drg: None,
            diagnoses: Vec::new(),
            procedures: Vec::new(),
            total_charge: None,
            paid: None,
            allowed: None,
            lines: Vec::new(),
        }
    }
}
