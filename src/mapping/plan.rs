//! A mapping compiled into a plan: sources resolved, transforms parsed, field names
//! checked. Applying the plan to a record fills a [`Claim`] and reports a finding for
//! every value it cannot use.

use std::borrow::Cow;

use super::definition::{
    ColumnRef, CsvOptions, FieldRule, FixedWidthOptions, Format, MappingDefinition, Records,
    Transform,
};
use super::targets::{self, ClaimField, Kind, LineField, ListItem};
use crate::claims::{Claim, ClaimLine, ClaimType};
use crate::findings::{Finding, Position};
use crate::formats::x12::{Key, Segment};

/// A problem with the mapping itself, with the path of the offending key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message} ({code})")]
pub struct MappingProblem {
    /// Dotted path in the mapping (`claim.birth_date.transforms[1]`).
    pub path: String,
    /// Stable code.
    pub code: &'static str,
    /// What is wrong.
    pub message: String,
}

fn problem(
    path: impl Into<String>,
    code: &'static str,
    message: impl Into<String>,
) -> MappingProblem {
    MappingProblem {
        path: path.into(),
        code,
        message: message.into(),
    }
}

/// An X12 address: loop, segment, optional qualifier, element (or all), components.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct X12Path {
    /// Loop id (`2300`), or empty for any loop.
    pub loop_id: String,
    /// Segment id.
    pub segment: Vec<u8>,
    /// Element that must equal a value (element number, value).
    pub qualifier: Option<(usize, Vec<u8>)>,
    /// Element number; `None` means every element (list fields).
    pub element: Option<usize>,
    /// Component range (inclusive); `None` for the whole element.
    pub components: Option<(usize, usize)>,
    loop_key: Key,
    segment_key: Key,
}

impl X12Path {
    /// Parses `LOOP SEG[QUAL]NN`, `LOOP SEG[NN=QUAL]NN-C`, `LOOP SEG NN-C..D` or `LOOP SEG*`.
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        let (loop_id, rest) = text
            .trim()
            .split_once(' ')
            .ok_or("an X12 path is `LOOP SEGMENT…`")?;
        if !crate::formats::x12::LOOPS.contains(&loop_id) {
            return Err(
                "not a loop the 837 reader knows (2000A, 2010AA … 2300, 2310B, 2400, 2420A …)",
            );
        }
        let rest = rest.trim();
        // Element numbers are written with two digits (`N401`, `CLM05`, `SV101`), so a
        // run of 4 or 5 letters and digits is a 2- or 3-character segment id and its
        // element: `N401` is N4 element 1, not N40.
        let run = rest.bytes().take_while(u8::is_ascii_alphanumeric).count();
        let seg_len = match run {
            4 | 5
                if rest
                    .as_bytes()
                    .get(run - 2..run)
                    .is_some_and(|e| e.iter().all(u8::is_ascii_digit)) =>
            {
                run - 2
            }
            _ => run.min(3),
        };
        let (segment, mut rest) = rest.split_at(seg_len.min(rest.len()));
        if !(2..=3).contains(&segment.len()) {
            return Err("a segment id is 2 or 3 characters");
        }
        let mut qualifier = None;
        if let Some(inner) = rest.strip_prefix('[') {
            let (q, after) = inner.split_once(']').ok_or("an unclosed [qualifier]")?;
            qualifier = Some(match q.split_once('=') {
                Some((n, v)) => (
                    n.parse()
                        .map_err(|_| "a qualifier is [VALUE] or [NN=VALUE]")?,
                    v.as_bytes().to_vec(),
                ),
                None => (1, q.as_bytes().to_vec()),
            });
            rest = after;
        }
        let rest = rest.trim();
        if rest == "*" {
            return Ok(Self::new(loop_id, segment, qualifier, None, None));
        }
        let (element, components) = match rest.split_once('-') {
            Some((e, c)) => (e, Some(c)),
            None => (rest, None),
        };
        let element: usize = element
            .parse()
            .map_err(|_| "an element number is expected after the segment")?;
        let components = match components {
            None => None,
            Some(c) => Some(match c.split_once("..") {
                Some((a, b)) => (
                    a.parse().map_err(|_| "bad component range")?,
                    b.parse().map_err(|_| "bad component range")?,
                ),
                None => {
                    let c: usize = c.parse().map_err(|_| "bad component number")?;
                    (c, c)
                }
            }),
        };
        if element == 0 || components.is_some_and(|(a, b)| a == 0 || b < a) {
            return Err("element and component numbers start at 1");
        }
        Ok(Self::new(
            loop_id,
            segment,
            qualifier,
            Some(element),
            components,
        ))
    }

    fn new(
        loop_id: &str,
        segment: &str,
        qualifier: Option<(usize, Vec<u8>)>,
        element: Option<usize>,
        components: Option<(usize, usize)>,
    ) -> Self {
        Self {
            loop_id: loop_id.into(),
            segment: segment.as_bytes().to_vec(),
            qualifier,
            element,
            components,
            loop_key: Key::of(loop_id.as_bytes()),
            segment_key: Key::of(segment.as_bytes()),
        }
    }

    fn matches(&self, segment: &Segment) -> bool {
        segment.key() == self.segment_key
            && self.qualifier.as_ref().is_none_or(|(n, v)| {
                segment.element(*n) == v.as_slice() || segment.component(*n, 1) == v.as_slice()
            })
    }
}

/// Which part of a record a rule reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The claim (header, or first row of a group).
    Claim,
    /// Line `n` (0-based): a 2400 loop, a slot of a wide row, or a row of a group.
    Line(usize),
}

/// What a record must answer for a plan to read it.
pub trait SourceRecord {
    /// The text of column `index` (0-based) in `scope`.
    fn column(&self, index: usize, scope: Scope) -> Option<&str>;
    /// Calls `each` with every segment with id `segment_key` in the loop `loop_key`
    /// ([`Key::ANY`]: any loop) in `scope`.
    fn segments(
        &self,
        loop_key: Key,
        segment_key: Key,
        scope: Scope,
        each: &mut dyn FnMut(&Segment),
    );
    /// Number of lines (2400 loops, or rows of a group).
    fn line_count(&self) -> usize;
    /// Calls `each` with every value at `path` in `scope` (document formats).
    fn path_values(&self, _path: &str, _scope: Scope, _each: &mut dyn FnMut(&str)) {}
}

#[derive(Debug, Clone)]
enum Source {
    Column {
        slot_columns: Vec<PlanColumn>,
        binding: usize,
    },
    X12(X12Path),
    Path(String),
    Value(String),
    FirstOf(Vec<Rule>),
    Concat(Vec<Rule>, String),
}

#[derive(Debug, Clone)]
enum Step {
    Trim,
    Upper,
    Lower,
    Digits,
    Date(Vec<DateToken>),
    RangePart(usize),
    ImpliedDecimals(usize),
    Map(std::collections::BTreeMap<String, String>),
    Default(String),
    Regex(regex_lite::Regex),
    Split(String, usize),
    When(String, String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DateToken {
    Year4,
    Month2,
    Day2,
    Month1,
    Day1,
    Literal(char),
}

#[derive(Debug, Clone)]
struct Rule {
    source: Source,
    steps: Vec<Step>,
    required: bool,
    component: usize,
    extra_component: Option<usize>,
    qualifiers: Option<Vec<Vec<u8>>>,
    system: Option<super::definition::CodeSystem>,
}

/// A column a plan reads: a CSV column, or a fixed-width byte range.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PlanColumn {
    Csv(ColumnRef),
    Range(usize, usize),
}

/// Column names (with `{n}` expanded) that a plan needs, resolved per file.
#[derive(Debug, Clone, Default)]
pub struct Bindings {
    columns: Vec<Option<usize>>,
}

/// A compiled mapping.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Mapping name.
    pub name: String,
    /// Source format.
    pub format: Format,
    /// Claims or lines.
    pub records: Records,
    /// Delimited options.
    pub csv: CsvOptions,
    /// Fixed-width options.
    pub fixed_width: FixedWidthOptions,
    /// XML options.
    pub xml: Option<super::definition::XmlOptions>,
    /// FHIR options.
    pub fhir: super::definition::FhirOptions,
    claim_key: Option<Rule>,
    claim: Vec<(ClaimField, Rule)>,
    /// Line rules, one set per slot (one set when the layout has no slots).
    line: Vec<Vec<(LineField, Rule)>>,
    slotted: bool,
    line_keys: Vec<Rule>,
    keep_rows: Option<(usize, Vec<String>)>,
    columns: Vec<PlanColumn>,
}

impl Plan {
    /// Parses a TOML definition and compiles it; every problem is listed with its path.
    pub fn from_toml(text: &str) -> Result<Self, Vec<MappingProblem>> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let line = e
                .span()
                .and_then(|s| text.get(..s.start))
                .map_or(1, |b| b.matches('\n').count() + 1);
            vec![problem(
                format!("line {line}"),
                "syntax",
                e.message().trim(),
            )]
        })?;
        let definition: MappingDefinition =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
                let path = e.path().to_string();
                vec![problem(path, "schema", e.into_inner().message().trim())]
            })?;
        Self::compile(&definition)
    }

    /// Compiles a parsed definition.
    pub fn compile(def: &MappingDefinition) -> Result<Self, Vec<MappingProblem>> {
        let mut problems = Vec::new();
        let mut columns = Vec::new();
        let mut claim = Vec::new();
        for (name, rule) in &def.claim {
            let path = format!("claim.{name}");
            let Some(field) = ClaimField::from_name(name) else {
                problems.push(problem(
                    path,
                    "unknown_field",
                    "not a field of the claim model",
                ));
                continue;
            };
            if let Some(rule) = compile_rule(
                rule,
                def.format,
                &path,
                field.kind(),
                0,
                &mut columns,
                &mut problems,
            ) {
                claim.push((field, rule));
            }
        }
        if def.format != Format::X12 && !def.claim.contains_key("claim_type") {
            problems.push(problem(
                "claim.claim_type",
                "required_field",
                "only X12 decides the claim type by itself; other formats must map or state it",
            ));
        }
        if !def.claim.contains_key("source_claim_id") {
            problems.push(problem(
                "claim.source_claim_id",
                "required_field",
                "every mapping must fill source_claim_id",
            ));
        }
        let slots = def.line_slots.unwrap_or(1).max(1);
        if def.line_slots.is_some_and(|s| s == 0 || s > 100) {
            problems.push(problem(
                "line_slots",
                "out_of_range",
                "line_slots is 1 to 100",
            ));
        }
        let mut line = Vec::new();
        for slot in 1..=slots {
            let mut set = Vec::new();
            for (name, rule) in &def.line {
                let path = format!("line.{name}");
                let Some(field) = LineField::from_name(name) else {
                    if slot == 1 {
                        problems.push(problem(
                            path,
                            "unknown_field",
                            "not a field of the claim line model",
                        ));
                    }
                    continue;
                };
                let slot_no = if def.line_slots.is_some() { slot } else { 0 };
                let mut slot_problems = Vec::new();
                if let Some(rule) = compile_rule(
                    rule,
                    def.format,
                    &path,
                    field.kind(),
                    slot_no,
                    &mut columns,
                    &mut slot_problems,
                ) {
                    set.push((field, rule));
                }
                if slot == 1 {
                    problems.extend(slot_problems);
                }
            }
            line.push(set);
        }
        let claim_key = match (&def.records, &def.claim_key) {
            (Records::Lines, None) => {
                problems.push(problem(
                    "claim_key",
                    "required_field",
                    "records = \"lines\" needs a claim_key",
                ));
                None
            }
            (_, Some(rule)) => compile_rule(
                rule,
                def.format,
                "claim_key",
                Kind::Text,
                0,
                &mut columns,
                &mut problems,
            ),
            (Records::Claims, None) => None,
        };
        let mut line_keys = Vec::new();
        if let Some(rule) = &def.line_key {
            if def.line_slots.is_none() {
                problems.push(problem(
                    "line_key",
                    "no_slots",
                    "line_key is for layouts with line_slots",
                ));
            }
            for slot in 1..=slots {
                let mut slot_problems = Vec::new();
                if let Some(r) = compile_rule(
                    rule,
                    def.format,
                    "line_key",
                    Kind::Text,
                    slot,
                    &mut columns,
                    &mut slot_problems,
                ) {
                    line_keys.push(r);
                }
                if slot == 1 {
                    problems.extend(slot_problems);
                }
            }
        }
        let keep_rows = match &def.keep_rows {
            Some(keep) if def.format == Format::Csv => {
                columns.push(PlanColumn::Csv(keep.column.clone()));
                Some((columns.len() - 1, keep.values.clone()))
            }
            Some(_) => {
                problems.push(problem(
                    "keep_rows",
                    "wrong_format",
                    "keep_rows is for csv mappings",
                ));
                None
            }
            None => None,
        };
        match (&def.xml, def.format) {
            (None, Format::Xml) => problems.push(problem(
                "xml",
                "required_field",
                "xml mappings need [xml] record = \"…\"",
            )),
            (Some(_), f) if f != Format::Xml => {
                problems.push(problem("xml", "wrong_format", "[xml] is for xml mappings"))
            }
            (Some(x), _) if x.record.is_empty() || x.record.split('/').any(str::is_empty) => {
                problems.push(problem(
                    "xml.record",
                    "bad_path",
                    "the record path is element names joined by `/`",
                ))
            }
            _ => {}
        }
        if matches!(def.format, Format::Xml | Format::Fhir) && def.records == Records::Lines {
            problems.push(problem(
                "records",
                "unsupported",
                "XML records are claims; lines are [xml] line",
            ));
        }
        if def.format == Format::X12 && def.records == Records::Lines {
            problems.push(problem("records", "unsupported", "X12 records are claims"));
        }
        for (key, c) in [
            ("csv.delimiter", def.csv.delimiter),
            ("csv.quote", def.csv.quote),
        ] {
            if !c.is_ascii() {
                problems.push(problem(
                    key,
                    "not_ascii",
                    "must be a single ASCII character",
                ));
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Self {
            name: def.name.clone(),
            format: def.format,
            records: def.records,
            csv: def.csv.clone(),
            fixed_width: def.fixed_width.clone(),
            xml: def.xml.clone(),
            fhir: def.fhir.clone(),
            claim_key,
            claim,
            line,
            slotted: def.line_slots.is_some(),
            line_keys,
            keep_rows,
            columns,
        })
    }

    /// Resolves the plan's column names against a file's header (or checks positions
    /// against its width). A column the file lacks is an error finding at the header.
    pub fn bind(
        &self,
        header: Option<&[String]>,
        width: usize,
        at: &Position,
    ) -> (Bindings, Vec<Finding>) {
        let mut findings = Vec::new();
        let columns = self
            .columns
            .iter()
            .map(|c| {
                let found = match (c, header) {
                    (PlanColumn::Range(..), _) => self
                        .ranges()
                        .iter()
                        .position(|r| PlanColumn::Range(r.0, r.1) == *c),
                    (PlanColumn::Csv(ColumnRef::Index(i)), _) => {
                        (*i >= 1 && *i <= width).then(|| i - 1)
                    }
                    (PlanColumn::Csv(ColumnRef::Name(n)), Some(h)) => {
                        h.iter().position(|x| x.trim() == n)
                    }
                    (PlanColumn::Csv(ColumnRef::Name(_)), None) => None,
                };
                if found.is_none() {
                    let what = match c {
                        PlanColumn::Csv(ColumnRef::Index(i)) => {
                            format!("the file has no column {i}")
                        }
                        PlanColumn::Csv(ColumnRef::Name(n)) => {
                            format!("the file has no column named `{n}`")
                        }
                        PlanColumn::Range(a, b) => format!("no field at bytes {a}-{b}"),
                    };
                    findings.push(Finding::error("mapping.missing_column", at.clone(), what));
                }
                found
            })
            .collect();
        (Bindings { columns }, findings)
    }

    /// The distinct fixed-width ranges the plan reads, in the order a fixed-width reader
    /// must yield them.
    pub fn ranges(&self) -> Vec<(usize, usize)> {
        let mut ranges: Vec<(usize, usize)> = Vec::new();
        for c in &self.columns {
            if let PlanColumn::Range(a, b) = c {
                if !ranges.contains(&(*a, *b)) {
                    ranges.push((*a, *b));
                }
            }
        }
        ranges
    }

    /// Whether a row passes the mapping's `keep_rows` filter (always, without one).
    pub fn keeps(&self, record: &dyn SourceRecord, bindings: &Bindings) -> bool {
        let Some((binding, values)) = &self.keep_rows else {
            return true;
        };
        let value = bindings
            .columns
            .get(*binding)
            .copied()
            .flatten()
            .and_then(|c| record.column(c, Scope::Claim));
        value.is_some_and(|v| values.iter().any(|x| x == v.trim()))
    }

    /// The grouping key of a line record (`records = "lines"`).
    pub fn claim_key(&self, record: &dyn SourceRecord, bindings: &Bindings) -> Option<String> {
        let rule = self.claim_key.as_ref()?;
        let mut out = Items::default();
        collect(rule, record, Scope::Claim, bindings, &mut out);
        out.first_code(0).map(str::to_owned)
    }

    /// Maps one record into `claim_type`'s claim; findings for values it cannot use are
    /// appended (errors reject the record).
    pub fn apply(
        &self,
        record: &dyn SourceRecord,
        bindings: &Bindings,
        claim_type: ClaimType,
        at: &Position,
        findings: &mut Vec<Finding>,
    ) -> Claim {
        let mut claim = Claim::new(claim_type);
        let mut items = Items::default();
        for (field, rule) in &self.claim {
            items.clear();
            collect(rule, record, Scope::Claim, bindings, &mut items);
            let path = || format!("claim.{}", field.name());
            if items
                .iter()
                .all(|i| i.code.is_empty() && i.refused.is_none())
            {
                if rule.required {
                    findings.push(field_finding(
                        "mapping.missing_value",
                        at,
                        path(),
                        "required value is missing",
                    ));
                }
                continue;
            }
            for item in items
                .iter()
                .filter(|i| !i.code.is_empty() || i.refused.is_some())
            {
                if let Some(reason) = item.refused {
                    findings.push(field_finding("mapping.invalid_value", at, path(), reason));
                    continue;
                }
                let result = match field {
                    _ if targets::holds_nul(item) => Err(targets::NUL_REFUSAL),
                    ClaimField::Diagnoses => targets::push_diagnosis(&mut claim, item),
                    ClaimField::Procedures => targets::push_procedure(&mut claim, item),
                    _ => targets::set_claim(&mut claim, *field, &item.code),
                };
                if let Err(reason) = result {
                    findings.push(field_finding("mapping.invalid_value", at, path(), reason));
                }
                if field.kind() != Kind::List {
                    break;
                }
            }
        }
        let lines = if self.slotted {
            self.line.len()
        } else {
            record.line_count()
        };
        for index in 0..lines {
            let rules = if self.slotted {
                self.line.get(index)
            } else {
                self.line.first()
            };
            let Some(rules) = rules else { continue };
            let mut line = ClaimLine {
                line_number: index as u32 + 1,
                ..ClaimLine::default()
            };
            let mut any = false;
            let mut line_findings = Vec::new();
            for (field, rule) in rules {
                items.clear();
                collect(rule, record, Scope::Line(index), bindings, &mut items);
                let path = || format!("line[{}].{}", index + 1, field.name());
                if items
                    .iter()
                    .all(|i| i.code.is_empty() && i.refused.is_none())
                {
                    if rule.required {
                        line_findings.push(field_finding(
                            "mapping.missing_value",
                            at,
                            path(),
                            "required value is missing",
                        ));
                    }
                    continue;
                }
                any = true;
                for item in items
                    .iter()
                    .filter(|i| !i.code.is_empty() || i.refused.is_some())
                {
                    if let Some(reason) = item.refused {
                        line_findings.push(field_finding(
                            "mapping.invalid_value",
                            at,
                            path(),
                            reason,
                        ));
                        continue;
                    }
                    let result = if targets::holds_nul(item) {
                        Err(targets::NUL_REFUSAL)
                    } else {
                        targets::set_line(&mut line, *field, &item.code)
                    };
                    if let Err(reason) = result {
                        line_findings.push(field_finding(
                            "mapping.invalid_value",
                            at,
                            path(),
                            reason,
                        ));
                    }
                    if field.kind() != Kind::List {
                        break;
                    }
                }
            }
            // An empty slot of a wide layout is no line at all.
            let keyed = match self.line_keys.get(index) {
                Some(key) => {
                    items.clear();
                    collect(key, record, Scope::Line(index), bindings, &mut items);
                    items.iter().any(|i| !i.code.trim().is_empty())
                }
                None => any,
            };
            if !self.slotted || keyed {
                findings.extend(line_findings);
                claim.lines.push(line);
            }
        }
        claim
    }
}

fn field_finding(code: &'static str, at: &Position, path: String, reason: &str) -> Finding {
    let mut position = at.clone();
    let message = format!("{path}: {reason}");
    position.path = Some(path);
    Finding::error(code, position, message)
}

#[allow(clippy::too_many_arguments)]
fn compile_rule(
    rule: &FieldRule,
    format: Format,
    path: &str,
    kind: Kind,
    slot: u32,
    columns: &mut Vec<PlanColumn>,
    problems: &mut Vec<MappingProblem>,
) -> Option<Rule> {
    let given = [
        rule.range.is_some(),
        rule.path.is_some(),
        rule.column.is_some(),
        rule.x12.is_some(),
        rule.value.is_some(),
        rule.first_of.is_some(),
        rule.concat.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        problems.push(problem(
            path,
            "one_source",
            "give exactly one of column, range, path, x12, value, first_of, concat",
        ));
        return None;
    }
    let expand = |name: &str, n: u32| name.replace("{n}", &n.to_string());
    let source = if let Some(path_text) = &rule.path {
        if format != Format::Xml && format != Format::Fhir {
            problems.push(problem(
                format!("{path}.path"),
                "wrong_format",
                "path sources are for xml and fhir mappings",
            ));
            return None;
        }
        let valid = !path_text.is_empty()
            && path_text.split('/').enumerate().all(|(i, part)| {
                let name = part
                    .strip_prefix('@')
                    .filter(|_| i + 1 == path_text.split('/').count())
                    .unwrap_or(part);
                !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
            });
        if !valid {
            problems.push(problem(
                format!("{path}.path"),
                "bad_path",
                "a path is element names joined by `/`, optionally ending in `@attribute`",
            ));
            return None;
        }
        Source::Path(path_text.clone())
    } else if let Some([from, to]) = rule.range {
        if format != Format::FixedWidth {
            problems.push(problem(
                format!("{path}.range"),
                "wrong_format",
                "range sources are for fixed_width mappings",
            ));
            return None;
        }
        if from == 0 || to < from || to > 100_000 {
            problems.push(problem(
                format!("{path}.range"),
                "bad_range",
                "a range is [first, last] byte, 1-based, first <= last",
            ));
            return None;
        }
        let binding = columns.len();
        columns.push(PlanColumn::Range(from, to));
        Source::Column {
            slot_columns: vec![PlanColumn::Range(from, to)],
            binding,
        }
    } else if let Some(column) = &rule.column {
        if format != Format::Csv {
            problems.push(problem(
                format!("{path}.column"),
                "wrong_format",
                "column sources are for csv mappings",
            ));
            return None;
        }
        let slots = match (rule.slots, kind) {
            (Some(n), Kind::List) if (1..=100).contains(&n) => n,
            (Some(_), Kind::List) => {
                problems.push(problem(
                    format!("{path}.slots"),
                    "out_of_range",
                    "slots is 1 to 100",
                ));
                return None;
            }
            (Some(_), _) => {
                problems.push(problem(
                    format!("{path}.slots"),
                    "not_a_list",
                    "slots is for list fields (diagnoses, procedures, modifiers)",
                ));
                return None;
            }
            (None, _) => 0,
        };
        let refs: Vec<PlanColumn> = match column {
            ColumnRef::Name(n) if slots > 0 => (1..=slots)
                .map(|i| PlanColumn::Csv(ColumnRef::Name(expand(n, i))))
                .collect(),
            ColumnRef::Name(n) if slot > 0 => {
                vec![PlanColumn::Csv(ColumnRef::Name(expand(n, slot)))]
            }
            ColumnRef::Name(n) if n.contains("{n}") => {
                problems.push(problem(
                    format!("{path}.column"),
                    "no_slots",
                    "{n} needs slots (list fields) or line_slots",
                ));
                return None;
            }
            other => vec![PlanColumn::Csv(other.clone())],
        };
        let binding = columns.len();
        columns.extend(refs.iter().cloned());
        Source::Column {
            slot_columns: refs,
            binding,
        }
    } else if let Some(text) = &rule.x12 {
        if format != Format::X12 {
            problems.push(problem(
                format!("{path}.x12"),
                "wrong_format",
                "x12 sources are for x12 mappings",
            ));
            return None;
        }
        match X12Path::parse(text) {
            Ok(p) => {
                if p.element.is_none() && kind != Kind::List {
                    problems.push(problem(
                        format!("{path}.x12"),
                        "not_a_list",
                        "`SEG*` paths are for list fields",
                    ));
                    return None;
                }
                Source::X12(p)
            }
            Err(why) => {
                problems.push(problem(format!("{path}.x12"), "bad_path", why));
                return None;
            }
        }
    } else if let Some(value) = &rule.value {
        Source::Value(value.clone())
    } else {
        let (list, concat) = match (&rule.first_of, &rule.concat) {
            (Some(l), _) => (l, false),
            (None, Some(l)) => (l, true),
            (None, None) => return None,
        };
        let key = if concat { "concat" } else { "first_of" };
        let mut rules = Vec::new();
        for (i, sub) in list.iter().enumerate() {
            if let Some(r) = compile_rule(
                sub,
                format,
                &format!("{path}.{key}[{i}]"),
                kind,
                slot,
                columns,
                problems,
            ) {
                rules.push(r);
            }
        }
        if concat {
            Source::Concat(rules, rule.separator.clone())
        } else {
            Source::FirstOf(rules)
        }
    };
    let mut steps = Vec::new();
    for (i, t) in rule.transforms.iter().enumerate() {
        let at = format!("{path}.transforms[{i}]");
        match compile_step(t) {
            Ok(step) => steps.push(step),
            Err(why) => problems.push(problem(at, "bad_transform", why)),
        }
    }
    Some(Rule {
        source,
        steps,
        required: rule.required,
        component: rule.component.unwrap_or(2),
        extra_component: rule.extra_component,
        qualifiers: rule
            .qualifiers
            .as_ref()
            .map(|q| q.iter().map(|s| s.as_bytes().to_vec()).collect()),
        system: rule.code_system,
    })
}

fn compile_step(t: &Transform) -> Result<Step, String> {
    Ok(match t {
        Transform::Trim => Step::Trim,
        Transform::Upper => Step::Upper,
        Transform::Lower => Step::Lower,
        Transform::Digits => Step::Digits,
        Transform::Date(pattern) => Step::Date(date_pattern(pattern)?),
        Transform::RangePart(n) if (1..=2).contains(n) => Step::RangePart(*n),
        Transform::RangePart(_) => return Err("range_part is 1 (from) or 2 (through)".into()),
        Transform::ImpliedDecimals(n) if *n <= 6 => Step::ImpliedDecimals(*n),
        Transform::ImpliedDecimals(_) => return Err("implied_decimals is 0 to 6".into()),
        Transform::Map(table) => Step::Map(table.clone()),
        Transform::Default(v) => Step::Default(v.clone()),
        Transform::Regex(pattern) => {
            if pattern.len() > 512 {
                return Err("the pattern is longer than 512 characters".into());
            }
            Step::Regex(
                regex_lite::RegexBuilder::new(pattern)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|_| "not a valid regular expression".to_owned())?,
            )
        }
        Transform::Split { on, index } if !on.is_empty() && *index >= 1 => {
            Step::Split(on.clone(), *index)
        }
        Transform::Split { .. } => {
            return Err("split needs a non-empty `on` and an `index` from 1".into());
        }
        Transform::When { equals, then } => Step::When(equals.clone(), then.clone()),
    })
}

fn date_pattern(pattern: &str) -> Result<Vec<DateToken>, String> {
    let mut tokens = Vec::new();
    let mut rest = pattern;
    while !rest.is_empty() {
        let (token, len) = if rest.starts_with("YYYY") || rest.starts_with("CCYY") {
            (DateToken::Year4, 4)
        } else if rest.starts_with("MM") {
            (DateToken::Month2, 2)
        } else if rest.starts_with("DD") {
            (DateToken::Day2, 2)
        } else if rest.starts_with('M') {
            (DateToken::Month1, 1)
        } else if rest.starts_with('D') {
            (DateToken::Day1, 1)
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            if c.is_ascii_alphanumeric() {
                return Err(format!(
                    "unknown date pattern letter `{c}` (use YYYY, MM, DD, M, D)"
                ));
            }
            (DateToken::Literal(c), c.len_utf8())
        };
        tokens.push(token);
        rest = rest.get(len..).unwrap_or_default();
    }
    let has = |t: &[DateToken]| tokens.iter().any(|x| t.contains(x));
    if !(has(&[DateToken::Year4])
        && has(&[DateToken::Month2, DateToken::Month1])
        && has(&[DateToken::Day2, DateToken::Day1]))
    {
        return Err("a date pattern needs a year, a month and a day".into());
    }
    Ok(tokens)
}

/// Reads a date by pattern; `None` when the text does not fit.
fn read_date(tokens: &[DateToken], text: &str) -> Option<String> {
    let (mut y, mut m, mut d) = (0u32, 0u32, 0u32);
    let mut rest = text.trim();
    for token in tokens {
        let take_digits = |rest: &str, min: usize, max: usize| {
            let n = rest
                .bytes()
                .take(max)
                .take_while(u8::is_ascii_digit)
                .count();
            (n >= min).then(|| (rest.get(..n).and_then(|s| s.parse::<u32>().ok()), n))
        };
        let (value, used) = match token {
            DateToken::Year4 => take_digits(rest, 4, 4)?,
            DateToken::Month2 | DateToken::Day2 => take_digits(rest, 2, 2)?,
            DateToken::Month1 | DateToken::Day1 => take_digits(rest, 1, 2)?,
            DateToken::Literal(c) => {
                rest = rest.strip_prefix(*c)?;
                continue;
            }
        };
        match token {
            DateToken::Year4 => y = value?,
            DateToken::Month2 | DateToken::Month1 => m = value?,
            _ => d = value?,
        }
        rest = rest.get(used..)?;
    }
    rest.is_empty().then(|| format!("{y:04}-{m:02}-{d:02}"))
}

fn run_steps<'a>(steps: &[Step], value: Cow<'a, str>) -> Result<Cow<'a, str>, targets::Refusal> {
    let mut value = value;
    for step in steps {
        value = match step {
            Step::Trim => match value {
                Cow::Borrowed(s) => Cow::Borrowed(s.trim()),
                Cow::Owned(s) => Cow::Owned(s.trim().to_owned()),
            },
            Step::Upper => Cow::Owned(value.to_uppercase()),
            Step::Lower => Cow::Owned(value.to_lowercase()),
            Step::Digits => Cow::Owned(value.chars().filter(char::is_ascii_digit).collect()),
            // A date that does not fit the pattern is passed on unchanged, so that the
            // field refuses it with its own reason.
            Step::Date(tokens) => match read_date(tokens, &value) {
                Some(iso) => Cow::Owned(iso),
                None => value,
            },
            Step::RangePart(n) => match value {
                Cow::Borrowed(s) => Cow::Borrowed(s.split('-').nth(n - 1).unwrap_or_default()),
                Cow::Owned(s) => Cow::Owned(s.split('-').nth(n - 1).unwrap_or_default().to_owned()),
            },
            Step::ImpliedDecimals(n) => Cow::Owned(implied_decimals(value.trim(), *n)),
            Step::Map(table) => match table.get(value.as_ref()).or_else(|| table.get("*")) {
                Some(v) => Cow::Owned(v.clone()),
                None if value.is_empty() => value,
                None => return Err("the value is not in the mapping's code table"),
            },
            Step::Default(d) if value.trim().is_empty() => Cow::Owned(d.clone()),
            Step::Default(_) => value,
            Step::Regex(re) => Cow::Owned(
                re.captures(&value)
                    .and_then(|c| c.get(1).or_else(|| c.get(0)))
                    .map(|m| m.as_str().to_owned())
                    .unwrap_or_default(),
            ),
            Step::Split(on, index) => Cow::Owned(
                value
                    .split(on.as_str())
                    .nth(index - 1)
                    .unwrap_or_default()
                    .to_owned(),
            ),
            Step::When(equals, then) if value.as_ref() == equals => Cow::Owned(then.clone()),
            Step::When(..) => value,
        };
    }
    Ok(value)
}

fn implied_decimals(digits: &str, places: usize) -> String {
    if places == 0 || digits.is_empty() {
        return digits.to_owned();
    }
    let (sign, digits) = match digits.strip_prefix('-') {
        Some(d) => ("-", d),
        None => ("", digits),
    };
    let padded = format!("{digits:0>width$}", width = places + 1);
    let split = padded.len() - places;
    format!(
        "{sign}{}.{}",
        padded.get(..split).unwrap_or("0"),
        padded.get(split..).unwrap_or_default()
    )
}

/// Values collected for a rule. The items and their strings are reused from rule to rule
/// and record to record, so mapping a record allocates almost nothing.
#[derive(Debug, Default)]
struct Items {
    buf: Vec<ListItem>,
    len: usize,
}

impl Items {
    fn clear(&mut self) {
        self.len = 0;
    }

    fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    fn as_slice(&self) -> &[ListItem] {
        self.buf.get(..self.len).unwrap_or_default()
    }

    fn iter(&self) -> std::slice::Iter<'_, ListItem> {
        self.as_slice().iter()
    }

    fn first_code(&self, from: usize) -> Option<&str> {
        self.as_slice()
            .get(from..)?
            .iter()
            .map(|i| i.code.as_str())
            .find(|c| !c.is_empty())
    }

    /// A cleared item at the end.
    fn push(&mut self) -> &mut ListItem {
        if self.buf.len() == self.len {
            self.buf.push(ListItem::default());
        }
        let index = self.len;
        self.len += 1;
        let item = &mut self.buf[index];
        item.code.clear();
        item.extra = None;
        item.refused = None;
        item.qualifier = None;
        item.system = None;
        item
    }

    fn push_text(&mut self, text: &str) {
        self.push().code.push_str(text);
    }

    fn push_bytes(&mut self, bytes: &[u8]) {
        let item = self.push();
        match std::str::from_utf8(bytes) {
            Ok(text) => item.code.push_str(text),
            Err(_) => item.code.push_str(&String::from_utf8_lossy(bytes)),
        }
    }
}

/// Appends the transformed values that `rule` selects.
fn collect(
    rule: &Rule,
    record: &dyn SourceRecord,
    scope: Scope,
    bindings: &Bindings,
    out: &mut Items,
) {
    let start = out.len;
    match &rule.source {
        Source::Value(v) => out.push_text(v),
        Source::Path(p) => record.path_values(p, scope, &mut |v| out.push_text(v)),
        Source::Column {
            slot_columns,
            binding,
        } => {
            for i in 0..slot_columns.len() {
                let text = bindings
                    .columns
                    .get(binding + i)
                    .copied()
                    .flatten()
                    .and_then(|c| record.column(c, scope));
                out.push_text(text.unwrap_or_default());
            }
        }
        Source::X12(path) => {
            record.segments(path.loop_key, path.segment_key, scope, &mut |segment| {
                if !path.matches(segment) {
                    return;
                }
                match (path.element, path.components) {
                    (Some(e), None) => out.push_bytes(segment.element(e)),
                    (Some(e), Some((first, last))) => {
                        for c in first..=last {
                            out.push_bytes(segment.component(e, c));
                        }
                    }
                    (None, _) => {
                        for e in 1..=segment.element_count() {
                            let qualifier = segment.component(e, 1);
                            if rule
                                .qualifiers
                                .as_ref()
                                .is_some_and(|q| !q.iter().any(|x| x.as_slice() == qualifier))
                            {
                                continue;
                            }
                            let item = out.push();
                            item.code.push_str(&String::from_utf8_lossy(
                                segment.component(e, rule.component),
                            ));
                            item.extra = rule.extra_component.map(|x| {
                                String::from_utf8_lossy(segment.component(e, x)).into_owned()
                            });
                            item.qualifier = Some(String::from_utf8_lossy(qualifier).into_owned());
                        }
                    }
                }
            });
        }
        Source::FirstOf(rules) => {
            for sub in rules {
                let before = out.len;
                collect(sub, record, scope, bindings, out);
                if out.first_code(before).is_some() {
                    break;
                }
                out.truncate(before);
            }
        }
        Source::Concat(rules, separator) => {
            let mut joined = String::new();
            for sub in rules {
                let before = out.len;
                collect(sub, record, scope, bindings, out);
                if let Some(code) = out.first_code(before) {
                    if !joined.is_empty() {
                        joined.push_str(separator);
                    }
                    joined.push_str(code);
                }
                out.truncate(before);
            }
            out.push_text(&joined);
        }
    }
    for item in out.buf.iter_mut().take(out.len).skip(start) {
        item.system = rule.system;
        if rule.steps.is_empty() {
            continue;
        }
        // A borrowed result is a slice of the value itself: cut it in place, no allocation.
        let (base, len) = (item.code.as_ptr() as usize, item.code.len());
        let outcome = match run_steps(&rule.steps, Cow::Borrowed(&item.code)) {
            Ok(Cow::Borrowed(slice)) => {
                let start = (slice.as_ptr() as usize).saturating_sub(base).min(len);
                Ok(Err(start..start + slice.len()))
            }
            Ok(Cow::Owned(owned)) => Ok(Ok(owned)),
            Err(reason) => Err(reason),
        };
        match outcome {
            Ok(Ok(owned)) => item.code = owned,
            Ok(Err(range)) => {
                item.code.truncate(range.end.min(len));
                item.code.drain(..range.start.min(item.code.len()));
            }
            Err(reason) => item.refused = Some(reason),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn x12_paths() {
        let p = X12Path::parse("2010BA NM1[IL]09").unwrap();
        assert_eq!(
            (p.loop_id.as_str(), p.segment.as_slice(), p.element),
            ("2010BA", b"NM1".as_slice(), Some(9))
        );
        assert_eq!(p.qualifier, Some((1, b"IL".to_vec())));
        let n4 = X12Path::parse("2010BA N403").unwrap();
        assert_eq!((n4.segment.as_slice(), n4.element), (&b"N4"[..], Some(3)));
        let n3 = X12Path::parse("2010CA N301").unwrap();
        assert_eq!((n3.segment.as_slice(), n3.element), (&b"N3"[..], Some(1)));
        let p = X12Path::parse("2400 SV101-3..6").unwrap();
        assert_eq!(p.components, Some((3, 6)));
        assert_eq!(
            X12Path::parse("2300 CLM05-1").unwrap().components,
            Some((1, 1))
        );
        assert_eq!(X12Path::parse("2300 CLM05").unwrap().components, None);
        let p = X12Path::parse("2300 DTP[434]03").unwrap();
        assert_eq!(p.element, Some(3));
        let p = X12Path::parse("2300 REF[01=F8]02").unwrap();
        assert_eq!(p.qualifier, Some((1, b"F8".to_vec())));
        assert!(X12Path::parse("2300 HI*").unwrap().element.is_none());
        for bad in [
            "CLM01",
            "2010BAA NM109",
            "2300 C01",
            "2300 CLM",
            "2300 CLM00",
            "2300 SV101-3..2",
            "2300 NM1[IL",
        ] {
            assert!(X12Path::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dates_by_pattern() {
        let p = date_pattern("MM/DD/YYYY").unwrap();
        assert_eq!(read_date(&p, "02/29/2024").as_deref(), Some("2024-02-29"));
        assert_eq!(read_date(&p, "2/29/2024"), None);
        let p = date_pattern("M/D/YYYY").unwrap();
        assert_eq!(read_date(&p, "2/9/2024").as_deref(), Some("2024-02-09"));
        assert_eq!(
            read_date(&date_pattern("YYYYMMDD").unwrap(), "20240131").as_deref(),
            Some("2024-01-31")
        );
        assert!(date_pattern("YYYY-MM").is_err());
        assert!(date_pattern("YYYY-MM-DDx").is_err());
    }

    #[test]
    fn implied_decimals_insert_the_point() {
        assert_eq!(implied_decimals("12345", 2), "123.45");
        assert_eq!(implied_decimals("5", 2), "0.05");
        assert_eq!(implied_decimals("-123", 2), "-1.23");
    }
}
