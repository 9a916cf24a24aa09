//! Read, map and validate a file; report each claim and finding; store nothing.
//!
//! Accounting: every record read is either accepted or rejected (`records = accepted +
//! rejected`); a record is rejected when any error finding belongs to it (from the
//! reader, the mapping or the business rules).

use std::io::Read;

use crate::claims::validate::validate;
use crate::claims::{Claim, ClaimType, Money};
use crate::findings::Position;
use crate::findings::{Finding, Severity};
use crate::formats::delimited::{DelimitedOptions, DelimitedReader, Row, TextEncoding};
use crate::formats::document::DocumentRecord;
use crate::formats::fhir::{FhirOptions, FhirReader};
use crate::formats::fixed_width::{FixedWidthOptions, FixedWidthReader};
use crate::formats::x12::{ClaimReader, ClaimRecord, Variant};
use crate::formats::xml::{XmlOptions, XmlReader};
use crate::mapping::definition::Format;
use crate::mapping::definition::{Encoding, Records};
use crate::mapping::{Bindings, Plan, RowGroup};

/// Most rows grouped into one claim.
const MAX_GROUP_ROWS: usize = 10_000;
/// How many recent claim keys are remembered to catch a key that comes back after other
/// claims (a line-level file not grouped by claim). Bounded, so memory stays flat.
const RECENT_KEYS: usize = 65_536;

/// A bounded memory of recently seen claim keys (as hashes).
#[derive(Default)]
struct RecentKeys {
    order: std::collections::VecDeque<u64>,
    seen: std::collections::HashSet<u64>,
}

impl RecentKeys {
    /// Records `key`; returns whether it was seen recently.
    fn seen_before(&mut self, key: &str) -> bool {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(key);
        if self.seen.contains(&hash) {
            return true;
        }
        if self.order.len() == RECENT_KEYS {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        self.order.push_back(hash);
        self.seen.insert(hash);
        false
    }
}

/// Which mapping to apply.
#[derive(Debug)]
pub enum MappingChoice {
    /// One plan for every record.
    One(Box<Plan>),
    /// X12: the professional or institutional plan, by each transaction's guide version.
    X12ByVersion {
        /// For 837P transactions (and unknown versions).
        professional: Box<Plan>,
        /// For 837I transactions.
        institutional: Box<Plan>,
    },
}

impl MappingChoice {
    /// The mapping a provider names: `x12` (837P or 837I by each transaction's version),
    /// a built-in name (`x12-837p`, `x12-837i`), or a mapping definition in TOML.
    pub fn resolve(spec: &str) -> Result<Self, Vec<crate::mapping::MappingProblem>> {
        use crate::mapping::builtin::builtin;
        let plan = |name: &str| -> Result<Box<Plan>, Vec<crate::mapping::MappingProblem>> {
            Plan::from_toml(builtin(name).unwrap_or(name)).map(Box::new)
        };
        match spec.trim() {
            "x12" => Ok(Self::X12ByVersion {
                professional: plan("x12-837p")?,
                institutional: plan("x12-837i")?,
            }),
            other => plan(other).map(Self::One),
        }
    }
}

/// One mapped claim with its findings.
#[derive(Debug, Clone)]
pub struct MappedClaim {
    /// The claim as mapped (also when rejected).
    pub claim: Claim,
    /// Where the record is.
    pub position: crate::findings::Position,
    /// Findings that belong to this record.
    pub findings: Vec<Finding>,
    /// Whether no error finding belongs to it.
    pub accepted: bool,
    /// How many source records it came from (rows of a line-level file; 1 otherwise).
    pub records: u64,
}

/// Totals of a preview run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Records read.
    pub records: u64,
    /// Records accepted.
    pub accepted: u64,
    /// Records rejected.
    pub rejected: u64,
    /// Claims read (accepted or rejected).
    pub claims: u64,
    /// Lines read (accepted or rejected).
    pub lines: u64,
    /// Sum of claim total charges wherever they parse as amounts, in cents.
    pub total_charge_cents: i64,
    /// Sum of line charges wherever they parse as amounts, in cents.
    pub line_charge_cents: i64,
    /// Rows left out by the mapping's `keep_rows` filter (`records = accepted + rejected + skipped`).
    pub skipped: u64,
}

impl Summary {
    /// Counts one mapped claim that came from `records` source records and `lines_read`
    /// lines (accepted or rejected alike).
    fn count(&mut self, claim: &Claim, records: u64, lines_read: u64, accepted: bool) {
        self.records += records;
        if accepted {
            self.accepted += records;
        } else {
            self.rejected += records;
        }
        self.claims += 1;
        self.lines += lines_read;
        self.total_charge_cents += claim.total_charge.map_or(0, Money::cents);
        self.line_charge_cents += claim
            .lines
            .iter()
            .filter_map(|l| l.charge)
            .map(Money::cents)
            .sum::<i64>();
    }
}

/// Reads `input` with `mapping`; calls `on_claim` for each record and `on_finding` for
/// findings that belong to no record (envelope, header). Returns the summary.
pub fn preview<R: Read>(
    mapping: &MappingChoice,
    input: R,
    on_claim: &mut dyn FnMut(&MappedClaim),
    on_finding: &mut dyn FnMut(&Finding),
) -> std::io::Result<Summary> {
    let format = match mapping {
        MappingChoice::One(plan) => plan.format,
        MappingChoice::X12ByVersion { .. } => Format::X12,
    };
    match format {
        Format::X12 => preview_x12(mapping, input, on_claim, on_finding),
        Format::Xml | Format::Fhir => match mapping {
            MappingChoice::One(plan) => preview_document(plan, input, on_claim, on_finding),
            MappingChoice::X12ByVersion { .. } => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "x12 mappings read X12 files",
            )),
        },
        Format::Csv | Format::FixedWidth => match mapping {
            MappingChoice::One(plan) if plan.format == Format::Csv => {
                preview_csv(plan, input, on_claim, on_finding)
            }
            MappingChoice::One(plan) => preview_fixed_width(plan, input, on_claim, on_finding),
            MappingChoice::X12ByVersion { .. } => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "x12 mappings read X12 files",
            )),
        },
    }
}

fn preview_x12<R: Read>(
    mapping: &MappingChoice,
    input: R,
    on_claim: &mut dyn FnMut(&MappedClaim),
    on_finding: &mut dyn FnMut(&Finding),
) -> std::io::Result<Summary> {
    let mut reader = ClaimReader::new(input);
    let mut record = ClaimRecord::default();
    let mut read_findings = Vec::new();
    let mut summary = Summary::default();
    let bindings = Bindings::default();
    while reader.next_claim(&mut record, &mut read_findings)? {
        // Findings raised while this claim's bytes were read belong to it.
        let (mine, others): (Vec<Finding>, Vec<Finding>) = read_findings
            .drain(..)
            .partition(|f| f.position.record == record.position.record);
        others.iter().for_each(&mut *on_finding);
        let (plan, claim_type) = match (mapping, record.variant) {
            (MappingChoice::One(plan), Variant::Institutional) => (plan, ClaimType::Institutional),
            (MappingChoice::One(plan), _) => (plan, ClaimType::Professional),
            (MappingChoice::X12ByVersion { institutional, .. }, Variant::Institutional) => {
                (institutional, ClaimType::Institutional)
            }
            (MappingChoice::X12ByVersion { professional, .. }, _) => {
                (professional, ClaimType::Professional)
            }
        };
        let mut findings = mine;
        let claim = plan.apply(
            &record,
            &bindings,
            claim_type,
            &record.position,
            &mut findings,
        );
        validate(&claim, &record.position, &mut findings);
        let accepted = !findings.iter().any(|f| f.severity == Severity::Error);
        summary.count(&claim, 1, record.line_count() as u64, accepted);
        on_claim(&MappedClaim {
            claim,
            position: record.position.clone(),
            findings,
            accepted,
            records: 1,
        });
    }
    read_findings.iter().for_each(&mut *on_finding);
    Ok(summary)
}

/// The JSON object of a previewed claim (`"kind": "claim"`). It contains the claim's PHI:
/// it is for the person previewing a file they already hold, never for logs.
pub fn claim_json(mapped: &MappedClaim) -> serde_json::Value {
    use serde_json::json;
    let c = &mapped.claim;
    let date = |d: Option<time::Date>| d.map(|d| d.to_string());
    let money = |m: Option<Money>| m.map(Money::cents);
    let code = |s: Option<&str>| s.map(str::to_owned);
    let lines: Vec<serde_json::Value> = c
        .lines
        .iter()
        .map(|l| {
            json!({
                "line_number": l.line_number,
                "service_from": date(l.service_from),
                "service_through": date(l.service_through),
                "procedure_code": code(l.procedure_code.as_ref().map(|x| x.as_str())),
                "modifiers": l.modifiers.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
                "revenue_code": code(l.revenue_code.as_ref().map(|x| x.as_str())),
                "ndc": l.ndc,
                "units_milli": l.units_milli,
                "charge_cents": money(l.charge),
                "paid_cents": money(l.paid),
                "allowed_cents": money(l.allowed),
                "rendering_npi": code(l.rendering_npi.as_ref().map(|x| x.as_str())),
                "place_of_service": code(l.place_of_service.as_ref().map(|x| x.as_str())),
            })
        })
        .collect();
    json!({
        "kind": "claim",
        "record": mapped.position.record,
        "accepted": mapped.accepted,
        "source_claim_id": c.source_claim_id,
        "claim_type": c.claim_type.as_str(),
        "frequency_code": c.frequency.code().to_string(),
        "original_claim_id": c.original_claim_id,
        "payer_id": c.payer_id,
        "payer_name": c.payer_name,
        "plan": c.plan,
        "member_id": c.member_id.expose(),
        "patient_first_name": c.patient_first_name.expose(),
        "patient_last_name": c.patient_last_name.expose(),
        "birth_date": date(*c.birth_date.expose()),
        "sex": c.sex.map(String::from),
        "address": c.address.expose(),
        "city": c.city.expose(),
        "state": c.state,
        "zip": c.zip.expose(),
        "billing_npi": code(c.billing_npi.as_ref().map(|x| x.as_str())),
        "billing_tin": code(c.billing_tin.as_ref().map(|x| x.as_str())),
        "rendering_npi": code(c.rendering_npi.as_ref().map(|x| x.as_str())),
        "attending_npi": code(c.attending_npi.as_ref().map(|x| x.as_str())),
        "facility_npi": code(c.facility_npi.as_ref().map(|x| x.as_str())),
        "bill_type": code(c.bill_type.as_ref().map(|x| x.as_str())),
        "place_of_service": code(c.place_of_service.as_ref().map(|x| x.as_str())),
        "statement_from": date(c.statement_from),
        "statement_through": date(c.statement_through),
        "admission_date": date(c.admission_date),
        "discharge_date": date(c.discharge_date),
        "admit_type": c.admit_type,
        "admit_source": c.admit_source,
        "discharge_status": c.discharge_status,
        "drg": code(c.drg.as_ref().map(|x| x.as_str())),
        "diagnoses": c.diagnoses.iter().map(|d| json!({"code": d.code.as_str(), "system": d.code.system(), "poa": d.poa.map(String::from)})).collect::<Vec<_>>(),
        "procedures": c.procedures.iter().map(|p| json!({"code": p.code, "date": date(p.date)})).collect::<Vec<_>>(),
        "total_charge_cents": money(c.total_charge),
        "paid_cents": money(c.paid),
        "allowed_cents": money(c.allowed),
        "lines": lines,
    })
}

/// The keys of [`claim_json`] that hold PHI.
pub const PHI_KEYS: [&str; 7] = [
    "member_id",
    "patient_first_name",
    "patient_last_name",
    "birth_date",
    "address",
    "city",
    "zip",
];

/// Replaces the PHI of a [`claim_json`] object with `"***"` (an absent value stays null),
/// for callers who may see a mapping's effect but not the patients in a sample file.
pub fn mask_phi(claim: &mut serde_json::Value) {
    for key in PHI_KEYS {
        if let Some(value) = claim.get_mut(key).filter(|v| !v.is_null()) {
            *value = serde_json::Value::String("***".into());
        }
    }
}

/// The JSON object of a finding (`"kind": "finding"`).
pub fn finding_json(finding: &Finding) -> serde_json::Value {
    let p = &finding.position;
    serde_json::json!({
        "kind": "finding",
        "code": finding.code,
        "severity": finding.severity.as_str(),
        "message": finding.message,
        "position": { "byte": p.byte, "line": p.line, "record": p.record, "segment": p.segment, "path": p.path },
    })
}

/// The JSON object of the summary (`"kind": "summary"`).
pub fn summary_json(s: &Summary) -> serde_json::Value {
    serde_json::json!({
        "kind": "summary",
        "records": s.records,
        "accepted": s.accepted,
        "rejected": s.rejected,
        "claims": s.claims,
        "lines": s.lines,
        "total_charge_cents": s.total_charge_cents,
        "line_charge_cents": s.line_charge_cents,
    })
}

fn preview_csv<R: Read>(
    plan: &Plan,
    input: R,
    on_claim: &mut dyn FnMut(&MappedClaim),
    on_finding: &mut dyn FnMut(&Finding),
) -> std::io::Result<Summary> {
    let options = DelimitedOptions {
        delimiter: u8::try_from(plan.csv.delimiter).unwrap_or(b','),
        quote: u8::try_from(plan.csv.quote).unwrap_or(b'"'),
        header: plan.csv.header,
        encoding: text_encoding(plan.csv.encoding),
        ..DelimitedOptions::default()
    };
    let mut reader = DelimitedReader::new(input, options);
    let mut findings = Vec::new();
    let header = reader.header(&mut findings)?.map(<[String]>::to_vec);
    let width = header.as_ref().map_or(usize::MAX, Vec::len);
    let (bindings, bind_findings) = plan.bind(
        header.as_deref(),
        width,
        &Position {
            line: 1,
            ..Position::default()
        },
    );
    let unusable = bind_findings.iter().any(|f| f.severity == Severity::Error);
    findings
        .iter()
        .chain(bind_findings.iter())
        .for_each(&mut *on_finding);
    run_rows(plan, &mut reader, &bindings, unusable, on_claim)
}

fn preview_fixed_width<R: Read>(
    plan: &Plan,
    input: R,
    on_claim: &mut dyn FnMut(&MappedClaim),
    on_finding: &mut dyn FnMut(&Finding),
) -> std::io::Result<Summary> {
    let ranges = plan.ranges();
    let options = FixedWidthOptions {
        encoding: text_encoding(plan.fixed_width.encoding),
        record_length: plan.fixed_width.record_length,
        ..FixedWidthOptions::default()
    };
    let width = ranges.len();
    let mut reader = FixedWidthReader::new(input, ranges, options);
    let (bindings, bind_findings) = plan.bind(None, width, &Position::default());
    bind_findings.iter().for_each(&mut *on_finding);
    let unusable = bind_findings.iter().any(|f| f.severity == Severity::Error);
    run_rows(plan, &mut reader, &bindings, unusable, on_claim)
}

fn text_encoding(encoding: Encoding) -> TextEncoding {
    match encoding {
        Encoding::Utf8 => TextEncoding::Utf8,
        Encoding::Windows1252 => TextEncoding::Windows1252,
        Encoding::Latin1 => TextEncoding::Latin1,
    }
}

/// A reader of rows (delimited or fixed-width).
trait RowSource {
    fn read_row(&mut self, row: &mut Row, findings: &mut Vec<Finding>) -> std::io::Result<bool>;
}

impl<R: Read> RowSource for DelimitedReader<R> {
    fn read_row(&mut self, row: &mut Row, findings: &mut Vec<Finding>) -> std::io::Result<bool> {
        DelimitedReader::read_row(self, row, findings)
    }
}

impl<R: Read> RowSource for FixedWidthReader<R> {
    fn read_row(&mut self, row: &mut Row, findings: &mut Vec<Finding>) -> std::io::Result<bool> {
        FixedWidthReader::read_row(self, row, findings)
    }
}

/// Groups rows into claims (or one claim per row), maps, validates and counts them.
fn run_rows(
    plan: &Plan,
    reader: &mut dyn RowSource,
    bindings: &Bindings,
    unusable: bool,
    on_claim: &mut dyn FnMut(&MappedClaim),
) -> std::io::Result<Summary> {
    let mut findings = Vec::new();
    let grouped = plan.records == Records::Lines;
    let mut summary = Summary::default();
    let mut row = Row::default();
    let mut group = RowGroup::new(grouped);
    let mut group_key: Option<String> = None;
    let mut group_findings = Vec::new();
    let mut recent = RecentKeys::default();
    let mut claims = 0u64;
    let mut emit =
        |group: &mut RowGroup, group_findings: &mut Vec<Finding>, summary: &mut Summary| {
            if group.is_empty() {
                return;
            }
            claims += 1;
            let mut position = group
                .rows()
                .first()
                .map(|r| r.position.clone())
                .unwrap_or_default();
            position.record = claims;
            let mut findings: Vec<Finding> = std::mem::take(group_findings);
            if unusable {
                findings.push(Finding::error(
                    "mapping.unusable",
                    position.clone(),
                    "the mapping names columns the file lacks",
                ));
            }
            let claim = plan.apply(
                group,
                bindings,
                ClaimType::Professional,
                &position,
                &mut findings,
            );
            validate(&claim, &position, &mut findings);
            let accepted = !findings.iter().any(|f| f.severity == Severity::Error);
            summary.count(
                &claim,
                group.len() as u64,
                claim.lines.len() as u64,
                accepted,
            );
            let records = group.len() as u64;
            on_claim(&MappedClaim {
                claim,
                position,
                findings,
                accepted,
                records,
            });
            group.clear();
        };
    loop {
        let more = reader.read_row(&mut row, &mut findings)?;
        if more && !row.broken && !plan.keeps(&row, bindings) {
            summary.records += 1;
            summary.skipped += 1;
            findings.clear();
            continue;
        }
        let key = if grouped && more {
            plan.claim_key(&row, bindings)
        } else {
            None
        };
        let boundary = !more || !grouped || key != group_key || group.len() >= MAX_GROUP_ROWS;
        if grouped && boundary {
            if group.len() >= MAX_GROUP_ROWS && key == group_key {
                let at = group
                    .rows()
                    .first()
                    .map(|r| r.position.clone())
                    .unwrap_or_default();
                group_findings.push(Finding::error(
                    "csv.group_too_large",
                    at,
                    "more rows share this claim key than the limit; the claim is split",
                ));
            }
            emit(&mut group, &mut group_findings, &mut summary);
        }
        if !more {
            break;
        }
        if grouped && group.is_empty() && key.as_deref().is_some_and(|k| recent.seen_before(k)) {
            group_findings.push(Finding::error(
                "csv.claim_key_repeated",
                row.position.clone(),
                "rows with this claim key came earlier, separated by other claims; a line-level file must list each claim's lines together",
            ));
        }
        group_key = key;
        group.push(&row);
        group_findings.append(&mut findings);
        if !grouped {
            emit(&mut group, &mut group_findings, &mut summary);
        }
    }
    Ok(summary)
}

/// A reader of document records (XML or FHIR).
trait DocumentSource {
    fn read_record(
        &mut self,
        record: &mut DocumentRecord,
        findings: &mut Vec<Finding>,
    ) -> std::io::Result<bool>;
}

impl<R: std::io::BufRead> DocumentSource for XmlReader<R> {
    fn read_record(
        &mut self,
        record: &mut DocumentRecord,
        findings: &mut Vec<Finding>,
    ) -> std::io::Result<bool> {
        XmlReader::read_record(self, record, findings)
    }
}

impl<R: Read> DocumentSource for FhirReader<R> {
    fn read_record(
        &mut self,
        record: &mut DocumentRecord,
        findings: &mut Vec<Finding>,
    ) -> std::io::Result<bool> {
        FhirReader::read_record(self, record, findings)
    }
}

fn preview_document<R: Read>(
    plan: &Plan,
    input: R,
    on_claim: &mut dyn FnMut(&MappedClaim),
    on_finding: &mut dyn FnMut(&Finding),
) -> std::io::Result<Summary> {
    let mut reader: Box<dyn DocumentSource> = if plan.format == Format::Fhir {
        let options = FhirOptions {
            ndjson: plan.fhir.ndjson,
            line: plan.fhir.line.clone(),
            ..FhirOptions::default()
        };
        Box::new(FhirReader::new(input, options))
    } else {
        let split = |p: &str| {
            p.split('/')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        let options = XmlOptions {
            record_path: plan
                .xml
                .as_ref()
                .map(|x| split(&x.record))
                .unwrap_or_default(),
            line_path: plan
                .xml
                .as_ref()
                .map(|x| split(&x.line))
                .unwrap_or_default(),
            ..XmlOptions::default()
        };
        Box::new(XmlReader::new(std::io::BufReader::new(input), options))
    };
    let mut record = DocumentRecord::default();
    let mut findings = Vec::new();
    let mut summary = Summary::default();
    let bindings = Bindings::default();
    while reader.read_record(&mut record, &mut findings)? {
        let (mut mine, others): (Vec<Finding>, Vec<Finding>) = findings.drain(..).partition(|f| {
            f.position.record == record.position.record
                || (f.position.record == 0
                    && f.position.byte >= record.position.byte
                    && record.position.byte > 0)
        });
        others.iter().for_each(&mut *on_finding);
        for f in &mut mine {
            f.position.record = record.position.record;
        }
        let claim = if record.broken && record.is_empty() {
            Claim::new(ClaimType::Professional)
        } else {
            let claim = plan.apply(
                &record,
                &bindings,
                ClaimType::Professional,
                &record.position,
                &mut mine,
            );
            validate(&claim, &record.position, &mut mine);
            claim
        };
        let accepted = !record.broken && !mine.iter().any(|f| f.severity == Severity::Error);
        summary.count(&claim, 1, claim.lines.len() as u64, accepted);
        on_claim(&MappedClaim {
            claim,
            position: record.position.clone(),
            findings: mine,
            accepted,
            records: 1,
        });
    }
    findings.iter().for_each(&mut *on_finding);
    Ok(summary)
}
