//! The target model as a catalogue: every field a mapping may fill, its name (as in the
//! normalized model and the preview output) and how a text value is parsed into it.

use time::Date;

use crate::claims::{
    Claim, ClaimLine, Diagnosis, DiagnosisCode, Icd10Cm, Modifier, Money, Npi, Phi, Procedure, Tin,
};

/// Why a value could not be stored in its field: a fixed reason, never the value.
pub type Refusal = &'static str;

macro_rules! fields {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $text:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $(#[doc = $text] $variant),* }

        impl $name {
            /// Every field.
            pub const ALL: &'static [Self] = &[$(Self::$variant),*];

            /// The field's name in mappings and output.
            pub fn name(self) -> &'static str {
                match self { $(Self::$variant => $text),* }
            }

            /// The field called `name`.
            pub fn from_name(name: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|f| f.name() == name)
            }
        }
    };
}

fields!(
    /// A claim-level field.
    ClaimField {
        SourceClaimId = "source_claim_id",
        ClaimType = "claim_type",
        Frequency = "frequency_code",
        OriginalClaimId = "original_claim_id",
        PayerId = "payer_id",
        PayerName = "payer_name",
        Plan = "plan",
        MemberId = "member_id",
        PatientFirstName = "patient_first_name",
        PatientLastName = "patient_last_name",
        BirthDate = "birth_date",
        Sex = "sex",
        Address = "address",
        City = "city",
        State = "state",
        Zip = "zip",
        BillingNpi = "billing_npi",
        BillingTin = "billing_tin",
        RenderingNpi = "rendering_npi",
        AttendingNpi = "attending_npi",
        FacilityNpi = "facility_npi",
        BillType = "bill_type",
        PlaceOfService = "place_of_service",
        StatementFrom = "statement_from",
        StatementThrough = "statement_through",
        AdmissionDate = "admission_date",
        DischargeDate = "discharge_date",
        AdmitType = "admit_type",
        AdmitSource = "admit_source",
        DischargeStatus = "discharge_status",
        Drg = "drg",
        Diagnoses = "diagnoses",
        Procedures = "procedures",
        TotalCharge = "total_charge",
        Paid = "paid",
        Allowed = "allowed",
    }
);

fields!(
    /// A line-level field.
    LineField {
        LineNumber = "line_number",
        ServiceFrom = "service_from",
        ServiceThrough = "service_through",
        ProcedureCode = "procedure_code",
        Modifiers = "modifiers",
        RevenueCode = "revenue_code",
        Ndc = "ndc",
        Units = "units",
        Charge = "charge",
        Paid = "paid",
        Allowed = "allowed",
        RenderingNpi = "rendering_npi",
        PlaceOfService = "place_of_service",
    }
);

/// What kind of value a field takes: decides which transforms make sense before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Free text.
    Text,
    /// A date: the value must be `YYYY-MM-DD` after transforms (the `date` transform gets it there).
    Date,
    /// An amount: decimal text.
    Money,
    /// A code of a fixed shape.
    Code,
    /// Several values (one per source value).
    List,
}

impl ClaimField {
    /// The kind of value.
    pub fn kind(self) -> Kind {
        use ClaimField::*;
        match self {
            BirthDate | StatementFrom | StatementThrough | AdmissionDate | DischargeDate => {
                Kind::Date
            }
            TotalCharge | Paid | Allowed => Kind::Money,
            Diagnoses | Procedures => Kind::List,
            BillingNpi | BillingTin | RenderingNpi | AttendingNpi | FacilityNpi | BillType
            | PlaceOfService | Drg | Frequency | ClaimType | Sex => Kind::Code,
            _ => Kind::Text,
        }
    }
}

impl LineField {
    /// The kind of value.
    pub fn kind(self) -> Kind {
        use LineField::*;
        match self {
            ServiceFrom | ServiceThrough => Kind::Date,
            Charge | Paid | Allowed => Kind::Money,
            Modifiers => Kind::List,
            ProcedureCode | RevenueCode | RenderingNpi | PlaceOfService | LineNumber | Units => {
                Kind::Code
            }
            Ndc => Kind::Text,
        }
    }
}

/// Parses `YYYY-MM-DD` (what the `date` transform produces) or `YYYYMMDD`.
pub fn parse_date(text: &str) -> Result<Date, Refusal> {
    let mut digits = [0u32; 8];
    let mut n = 0;
    for b in text.trim().bytes() {
        match b {
            b'-' => {}
            b'0'..=b'9' if n < 8 => {
                digits[n] = u32::from(b - b'0');
                n += 1;
            }
            _ => return Err("not a date (YYYY-MM-DD)"),
        }
    }
    if n != 8 {
        return Err("not a date (YYYY-MM-DD)");
    }
    let number = |r: std::ops::Range<usize>| digits[r].iter().fold(0, |acc, d| acc * 10 + d);
    let month = time::Month::try_from(number(4..6) as u8).map_err(|_| "not a valid month")?;
    Date::from_calendar_date(number(0..4) as i32, month, number(6..8) as u8)
        .map_err(|_| "not a valid calendar date")
}

fn money(text: &str) -> Result<Money, Refusal> {
    Money::parse_decimal(text).map_err(|e| match e {
        crate::claims::MoneyError::NotDecimal => "not a decimal amount",
        crate::claims::MoneyError::TooPrecise => "an amount with more than two decimals",
        crate::claims::MoneyError::OutOfRange => "an amount out of range",
    })
}

fn text(value: &str) -> Option<String> {
    Some(value.to_owned())
}

fn one_char(value: &str) -> Result<char, Refusal> {
    let mut chars = value.trim().chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Ok(c.to_ascii_uppercase()),
        _ => Err("not a one-character code"),
    }
}

/// Parses a diagnosis code. An X12 qualifier decides the code system (`ABK`, `ABF`, `ABJ`,
/// `APR` are ICD-10-CM; `BK`, `BF`, `BJ`, `PR` are ICD-9-CM); without one, a code of
/// ICD-10-CM shape is ICD-10-CM, else ICD-9-CM (digits, or V/E and digits).
pub fn parse_diagnosis(
    code: &str,
    qualifier: Option<&str>,
    system: Option<super::definition::CodeSystem>,
) -> Result<DiagnosisCode, Refusal> {
    use super::definition::CodeSystem;
    match system {
        Some(CodeSystem::Icd9Cm) => return parse_icd9(code),
        Some(CodeSystem::Icd10Cm) => {
            return Icd10Cm::parse(code)
                .map(DiagnosisCode::Icd10)
                .map_err(|_| "not an ICD-10-CM code");
        }
        None => {}
    }
    match qualifier {
        Some("ABK" | "ABF" | "ABJ" | "APR") => {
            return Icd10Cm::parse(code)
                .map(DiagnosisCode::Icd10)
                .map_err(|_| "not an ICD-10-CM code");
        }
        Some("BK" | "BF" | "BJ" | "PR") => return parse_icd9(code),
        _ => {}
    }
    if let Ok(icd10) = Icd10Cm::parse(code) {
        return Ok(DiagnosisCode::Icd10(icd10));
    }
    parse_icd9(code).map_err(|_| "not an ICD-10-CM or ICD-9-CM code")
}

fn parse_icd9(code: &str) -> Result<DiagnosisCode, Refusal> {
    let compact: String = code
        .trim()
        .chars()
        .filter(|c| *c != '.')
        .collect::<String>()
        .to_ascii_uppercase();
    let b = compact.as_bytes();
    let icd9 = (3..=5).contains(&b.len())
        && b.iter().skip(1).all(u8::is_ascii_digit)
        && b.first()
            .is_some_and(|c| c.is_ascii_digit() || *c == b'V' || *c == b'E');
    if icd9 {
        Ok(DiagnosisCode::Icd9(compact))
    } else {
        Err("not an ICD-9-CM code")
    }
}

/// An item of a list field: a code with an optional second part (POA indicator or date).
#[derive(Debug, Clone, Default)]
pub struct ListItem {
    /// The code.
    pub code: String,
    /// POA indicator (diagnoses) or date (procedures).
    pub extra: Option<String>,
    /// Set when a transform refused the value (a code missing from a table, say).
    pub refused: Option<Refusal>,
    /// The X12 code list qualifier of the composite (`ABK`, `BK`, …), when there is one.
    pub qualifier: Option<String>,
    /// The code system the mapping declares for the value, if any.
    pub system: Option<super::definition::CodeSystem>,
}

/// Most diagnoses or procedures kept per claim (the Tuva layout has 25 of each).
pub const MAX_CODES: usize = 25;

/// Why a value holding a NUL character is refused: no claim field has one, and
/// PostgreSQL text cannot store it.
pub const NUL_REFUSAL: Refusal = "a value holding a NUL character";

/// Whether the item's code or second part holds a NUL character.
pub fn holds_nul(item: &ListItem) -> bool {
    item.code.contains('\0') || item.extra.as_deref().is_some_and(|e| e.contains('\0'))
}

/// Stores `value` in `field` of `claim`.
pub fn set_claim(claim: &mut Claim, field: ClaimField, value: &str) -> Result<(), Refusal> {
    use ClaimField::*;
    match field {
        SourceClaimId => claim.source_claim_id = value.to_owned(),
        ClaimType => {
            claim.claim_type = match value.trim().to_ascii_lowercase().as_str() {
                "professional" | "p" | "837p" => crate::claims::ClaimType::Professional,
                "institutional" | "i" | "837i" => crate::claims::ClaimType::Institutional,
                _ => return Err("claim type is not professional or institutional"),
            }
        }
        Frequency => claim.frequency = crate::claims::Frequency::from_code(one_char(value)?),
        OriginalClaimId => claim.original_claim_id = text(value),
        PayerId => claim.payer_id = text(value),
        PayerName => claim.payer_name = text(value),
        Plan => claim.plan = text(value),
        MemberId => claim.member_id = Phi::new(text(value)),
        PatientFirstName => claim.patient_first_name = Phi::new(text(value)),
        PatientLastName => claim.patient_last_name = Phi::new(text(value)),
        BirthDate => claim.birth_date = Phi::new(Some(parse_date(value)?)),
        Sex => {
            claim.sex = Some(match one_char(value)? {
                c @ ('F' | 'M' | 'U') => c,
                _ => return Err("sex is not F, M or U"),
            })
        }
        Address => claim.address = Phi::new(text(value)),
        City => claim.city = Phi::new(text(value)),
        State => claim.state = text(value),
        Zip => claim.zip = Phi::new(text(value)),
        BillingNpi => claim.billing_npi = Some(Npi::parse(value).map_err(|e| e.0)?),
        BillingTin => claim.billing_tin = Some(Tin::parse(value).map_err(|e| e.0)?),
        RenderingNpi => claim.rendering_npi = Some(Npi::parse(value).map_err(|e| e.0)?),
        AttendingNpi => claim.attending_npi = Some(Npi::parse(value).map_err(|e| e.0)?),
        FacilityNpi => claim.facility_npi = Some(Npi::parse(value).map_err(|e| e.0)?),
        BillType => claim.bill_type = Some(crate::claims::BillType::parse(value).map_err(|e| e.0)?),
        PlaceOfService => {
            claim.place_of_service =
                Some(crate::claims::PlaceOfService::parse(value).map_err(|e| e.0)?)
        }
        StatementFrom => claim.statement_from = Some(parse_date(value)?),
        StatementThrough => claim.statement_through = Some(parse_date(value)?),
        AdmissionDate => claim.admission_date = Some(parse_date(value)?),
        DischargeDate => claim.discharge_date = Some(parse_date(value)?),
        AdmitType => claim.admit_type = text(value),
        AdmitSource => claim.admit_source = text(value),
        DischargeStatus => claim.discharge_status = text(value),
        Drg => claim.drg = Some(crate::claims::Drg::parse(value).map_err(|e| e.0)?),
        Diagnoses => push_diagnosis(
            claim,
            &ListItem {
                code: value.to_owned(),
                ..ListItem::default()
            },
        )?,
        Procedures => push_procedure(
            claim,
            &ListItem {
                code: value.to_owned(),
                ..ListItem::default()
            },
        )?,
        TotalCharge => claim.total_charge = Some(money(value)?),
        Paid => claim.paid = Some(money(value)?),
        Allowed => claim.allowed = Some(money(value)?),
    }
    Ok(())
}

/// Appends a diagnosis (code and POA).
pub fn push_diagnosis(claim: &mut Claim, item: &ListItem) -> Result<(), Refusal> {
    if claim.diagnoses.len() >= MAX_CODES {
        return Err("more than 25 diagnoses");
    }
    let poa = match item.extra.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(p) => Some(one_char(p)?),
    };
    claim.diagnoses.push(Diagnosis {
        code: parse_diagnosis(&item.code, item.qualifier.as_deref(), item.system)?,
        poa,
    });
    Ok(())
}

/// Appends an ICD procedure (code and date).
pub fn push_procedure(claim: &mut Claim, item: &ListItem) -> Result<(), Refusal> {
    if claim.procedures.len() >= MAX_CODES {
        return Err("more than 25 procedures");
    }
    let code: String = item
        .code
        .trim()
        .chars()
        .filter(|c| *c != '.')
        .collect::<String>()
        .to_ascii_uppercase();
    if code.is_empty() || code.len() > 7 || !code.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err("not an ICD procedure code");
    }
    let date = item
        .extra
        .as_deref()
        .filter(|d| !d.trim().is_empty())
        .map(parse_date)
        .transpose()?;
    claim.procedures.push(Procedure { code, date });
    Ok(())
}

/// Stores `value` in `field` of `line`.
pub fn set_line(line: &mut ClaimLine, field: LineField, value: &str) -> Result<(), Refusal> {
    use LineField::*;
    match field {
        LineNumber => line.line_number = value.trim().parse().map_err(|_| "not a line number")?,
        ServiceFrom => line.service_from = Some(parse_date(value)?),
        ServiceThrough => line.service_through = Some(parse_date(value)?),
        ProcedureCode => {
            line.procedure_code = Some(crate::claims::ProcedureCode::parse(value).map_err(|e| e.0)?)
        }
        Modifiers => {
            if line.modifiers.len() >= 4 {
                return Err("more than 4 modifiers");
            }
            line.modifiers
                .push(Modifier::parse(value).map_err(|e| e.0)?);
        }
        RevenueCode => {
            line.revenue_code = Some(crate::claims::RevenueCode::parse(value).map_err(|e| e.0)?)
        }
        Ndc => line.ndc = text(value),
        Units => line.units_milli = Some(parse_units(value)?),
        Charge => line.charge = Some(money(value)?),
        Paid => line.paid = Some(money(value)?),
        Allowed => line.allowed = Some(money(value)?),
        RenderingNpi => line.rendering_npi = Some(Npi::parse(value).map_err(|e| e.0)?),
        PlaceOfService => {
            line.place_of_service =
                Some(crate::claims::PlaceOfService::parse(value).map_err(|e| e.0)?)
        }
    }
    Ok(())
}

/// Units as thousandths (a decimal with up to three places).
fn parse_units(value: &str) -> Result<i64, Refusal> {
    // Reuse the exact decimal parser: 1.5 units = 150 "cents" → 1500 thousandths.
    let scaled = Money::parse_decimal(value).map_err(|_| "not a number of units")?;
    Ok(scaled.cents() * 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_name_round_trips() {
        for f in ClaimField::ALL {
            assert_eq!(ClaimField::from_name(f.name()), Some(*f));
        }
        for f in LineField::ALL {
            assert_eq!(LineField::from_name(f.name()), Some(*f));
        }
        assert_eq!(ClaimField::from_name("nope"), None);
    }

    #[test]
    fn dates_and_codes() {
        assert_eq!(
            parse_date("2024-02-29").map(|d| d.to_string()),
            Ok("2024-02-29".into())
        );
        assert!(parse_date("2023-02-29").is_err());
        assert!(parse_date("20241301").is_err());
        assert!(
            matches!(parse_diagnosis("401.9", None, None), Ok(DiagnosisCode::Icd9(c)) if c == "4019")
        );
        assert!(matches!(
            parse_diagnosis("J02.0", None, None),
            Ok(DiagnosisCode::Icd10(_))
        ));
        assert!(matches!(
            parse_diagnosis("V7389", Some("BF"), None),
            Ok(DiagnosisCode::Icd9(_))
        ));
        assert!(matches!(
            parse_diagnosis("V7389", None, None),
            Ok(DiagnosisCode::Icd10(_))
        ));
        assert!(parse_diagnosis("4019", Some("ABF"), None).is_err());
        assert!(parse_diagnosis("??", None, None).is_err());
    }
}
