//! One stored claim made ready for the wide layout: identifiers opened (identified) or
//! pseudonymised (de-identified), dates reduced to the year where Safe Harbor asks,
//! diagnosis and procedure lists split into their slots; then any cell of any of its lines.

use time::{Date, OffsetDateTime};
use zeroize::Zeroizing;

use super::ExportError;
use super::columns::Column;
use crate::crypto::{DataKey, FieldSlot};
use crate::deid;
use crate::store::{ClaimKey, ExportClaim, LineRow};

/// One value of the wide layout.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'a> {
    /// No value.
    Null,
    /// Text.
    Text(&'a str),
    /// A whole number.
    Int(i64),
    /// An amount in cents.
    Cents(i64),
    /// A date.
    Date(Date),
    /// An instant.
    Timestamp(OffsetDateTime),
    /// A flag.
    Bool(bool),
}

/// A claim ready to be written, with its lines.
pub struct WideClaim {
    claim: ExportClaim,
    deidentified: bool,
    claim_id: Option<Zeroizing<String>>,
    member: Option<Zeroizing<String>>,
    zip: Option<Zeroizing<String>>,
    age: Option<String>,
    start: Option<Date>,
    end: Option<Date>,
    diagnoses: Vec<(String, Option<String>)>,
    procedures: Vec<(String, Option<Date>)>,
}

/// The table PHI columns are sealed in (part of each seal's associated data).
const TABLE: &str = "claims";

impl WideClaim {
    /// Prepares `claim`. Identified exports pass the key that sealed its member columns
    /// (`None` when that key was destroyed: those values are gone and export as null).
    pub fn prepare(
        claim: ExportClaim,
        key: Option<&DataKey>,
        deidentified: bool,
    ) -> Result<Self, ExportError> {
        let start = claim
            .statement_from
            .or_else(|| claim.lines.iter().filter_map(|l| l.service_from).min());
        let end = claim.statement_through.or_else(|| {
            claim
                .lines
                .iter()
                .filter_map(|l| l.service_through.or(l.service_from))
                .max()
        });
        let diagnoses = claim
            .diagnoses
            .split(',')
            .filter(|d| !d.is_empty())
            .map(|d| match d.split_once(':') {
                Some((code, poa)) => (code.to_owned(), Some(poa.to_owned())),
                None => (d.to_owned(), None),
            })
            .collect();
        let procedures = claim
            .procedures
            .split(',')
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once(':') {
                Some((code, date)) => (code.to_owned(), parse_date(date)),
                None => (p.to_owned(), None),
            })
            .collect();
        let mut wide = Self {
            deidentified,
            claim_id: None,
            member: None,
            zip: None,
            age: None,
            start,
            end,
            diagnoses,
            procedures,
            claim,
        };
        if deidentified {
            wide.claim_id = wide.claim.claim_key.take().map(Zeroizing::new);
            wide.member = wide.claim.member_key.take().map(Zeroizing::new);
            wide.zip = wide.claim.deid_zip3.clone().map(Zeroizing::new);
            wide.age = wide.claim.deid_age.map(deid::age_label);
        } else {
            wide.claim_id = wide.claim.claim_key.take().map(Zeroizing::new);
            if let (Some(sealed), Some(key)) = (wide.claim.sealed.take(), key) {
                let identity = ClaimKey {
                    upload_id: wide.claim.upload_id.clone(),
                    record_no: wide.claim.record_no,
                }
                .row_identity();
                let open = |column: &'static str, value: Option<Vec<u8>>| {
                    value
                        .map(|v| {
                            let at = FieldSlot {
                                table: TABLE,
                                column,
                                row: &identity,
                            };
                            let mut plain = key.open(at, &v)?;
                            String::from_utf8(std::mem::take(&mut *plain))
                                .map(Zeroizing::new)
                                .map_err(|_| ExportError::Sealed)
                        })
                        .transpose()
                };
                wide.member = open("member_id", sealed.member_id)?;
                wide.zip = open("zip", sealed.zip)?;
                let born = open("birth_date", sealed.birth_date)?;
                wide.age = match (born.as_deref().and_then(|b| parse_date(b)), wide.start) {
                    (Some(born), Some(on)) => deid::whole_years(born, on).map(|a| a.to_string()),
                    _ => None,
                };
            }
        }
        Ok(wide)
    }

    /// The number of lines (rows) of this claim.
    pub fn lines(&self) -> usize {
        self.claim.lines.len()
    }

    fn date(&self, date: Option<Date>) -> Cell<'_> {
        match date {
            Some(d) if self.deidentified => Cell::Date(deid::year_only(d)),
            Some(d) => Cell::Date(d),
            None => Cell::Null,
        }
    }

    /// The value of `column` on line `line` (0-based); `data_source` names the provider.
    pub fn cell<'a>(&'a self, column: Column, line: usize, data_source: &'a str) -> Cell<'a> {
        let Some(l) = self.claim.lines.get(line) else {
            return Cell::Null;
        };
        let c = &self.claim;
        let text = |v: &'a Option<String>| v.as_deref().map_or(Cell::Null, Cell::Text);
        let secret =
            |v: &'a Option<Zeroizing<String>>| v.as_deref().map_or(Cell::Null, |s| Cell::Text(s));
        match column {
            Column::ClaimId => secret(&self.claim_id),
            Column::ClaimLineNumber => Cell::Int(i64::from(l.line_number)),
            Column::ClaimType => Cell::Text(&c.claim_type),
            Column::PersonId | Column::MemberId => secret(&self.member),
            Column::Payer => c
                .payer_name
                .as_deref()
                .or(c.payer_id.as_deref())
                .map_or(Cell::Null, Cell::Text),
            Column::Plan => text(&c.plan),
            Column::ClaimStartDate => self.date(self.start),
            Column::ClaimEndDate => self.date(self.end),
            Column::LineStartDate => self.date(l.service_from),
            Column::LineEndDate => self.date(l.service_through.or(l.service_from)),
            Column::AdmissionDate => self.date(c.admission_date),
            Column::DischargeDate => self.date(c.discharge_date),
            Column::AdmitSource => text(&c.admit_source),
            Column::AdmitType => text(&c.admit_type),
            Column::DischargeDisposition => text(&c.discharge_status),
            Column::PlaceOfService => text(&l.place_of_service),
            Column::BillType => text(&c.bill_type),
            Column::DrgCodeType => c.drg.as_ref().map_or(Cell::Null, |_| Cell::Text("ms-drg")),
            Column::Drg => text(&c.drg),
            Column::RevenueCenter => text(&l.revenue_code),
            Column::ServiceUnits => l.units_milli.map_or(Cell::Null, |m| Cell::Int(units(m))),
            Column::Hcpcs => text(&l.procedure_code),
            Column::HcpcsModifier(n) => modifier(l, n).map_or(Cell::Null, Cell::Text),
            Column::RenderingNpi => text(&l.rendering_npi),
            Column::BillingNpi => text(&c.billing_npi),
            Column::BillingTin => text(&c.billing_tin),
            Column::FacilityNpi => text(&c.facility_npi),
            Column::PaidAmount => l.paid_cents.map_or(Cell::Null, Cell::Cents),
            Column::AllowedAmount => l.allowed_cents.map_or(Cell::Null, Cell::Cents),
            Column::ChargeAmount => l.charge_cents.map_or(Cell::Null, Cell::Cents),
            Column::DiagnosisCodeType if !self.diagnoses.is_empty() => Cell::Text("icd-10-cm"),
            Column::Diagnosis(n) => {
                slot(&self.diagnoses, n).map_or(Cell::Null, |d| Cell::Text(&d.0))
            }
            Column::DiagnosisPoa(n) => slot(&self.diagnoses, n)
                .and_then(|d| d.1.as_deref())
                .map_or(Cell::Null, Cell::Text),
            Column::ProcedureCodeType if !self.procedures.is_empty() => Cell::Text("icd-10-pcs"),
            Column::Procedure(n) => {
                slot(&self.procedures, n).map_or(Cell::Null, |p| Cell::Text(&p.0))
            }
            Column::ProcedureDate(n) => self.date(slot(&self.procedures, n).and_then(|p| p.1)),
            Column::DataSource => Cell::Text(data_source),
            Column::FileName => Cell::Text(&c.upload_id),
            Column::FileDate => self.date(Some(c.received_at.date())),
            Column::IngestDatetime if self.deidentified => {
                Cell::Timestamp(deid::year_only(c.created_at.date()).midnight().assume_utc())
            }
            Column::IngestDatetime => Cell::Timestamp(c.created_at),
            Column::VersionId => Cell::Int(c.version_id),
            Column::FrequencyCode => Cell::Text(&c.frequency_code),
            Column::FinalAction => Cell::Bool(c.current_version && c.frequency_code != "8"),
            Column::MemberSex => text(&c.sex),
            Column::MemberState => text(&c.state),
            Column::MemberZip => secret(&self.zip),
            Column::MemberAge => self.age.as_deref().map_or(Cell::Null, Cell::Text),
            Column::DiagnosisCodeType | Column::ProcedureCodeType | Column::Unmapped => Cell::Null,
        }
    }
}

/// The `n`th (from 1) element of a slot list.
fn slot<T>(list: &[T], n: u8) -> Option<&T> {
    list.get(usize::from(n).checked_sub(1)?)
}

fn modifier(line: &LineRow, n: u8) -> Option<&str> {
    line.modifiers
        .split(',')
        .filter(|m| !m.is_empty())
        .nth(usize::from(n).checked_sub(1)?)
}

/// Whole units from thousandths, rounded half away from zero (Tuva's column is an
/// integer; the exact value stays in the store).
fn units(milli: i64) -> i64 {
    let half = if milli < 0 { -500 } else { 500 };
    milli.saturating_add(half) / 1000
}

fn parse_date(text: &str) -> Option<Date> {
    Date::parse(
        text,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_round_half_away_from_zero() {
        assert_eq!(units(1_000), 1);
        assert_eq!(units(1_500), 2);
        assert_eq!(units(1_499), 1);
        assert_eq!(units(-1_500), -2);
        assert_eq!(units(250), 0);
    }
}
