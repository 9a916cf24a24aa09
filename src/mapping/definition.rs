//! Mapping definitions as written in `schemas/*.toml`: data, never code.
//!
//! ```toml
//! name = "acme-csv"
//! format = "csv"              # x12 | csv
//! records = "lines"           # claims (one record per claim) | lines (rows grouped by claim_key)
//! claim_key = { column = "CLAIM_ID" }
//! [csv]
//! delimiter = ","
//! encoding = "windows-1252"
//! [claim]
//! source_claim_id = { column = "CLAIM_ID" }
//! total_charge = { column = "TOTAL", transforms = ["trim"] }
//! birth_date = { column = "DOB", transforms = [{ date = "MM/DD/YYYY" }] }
//! diagnoses = { column = "DX_{n}", slots = 12 }
//! [line]
//! procedure_code = { column = "HCPCS" }
//! ```
//!
//! Every key is checked: unknown keys and unknown field names are errors with their path.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

/// The source format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// X12 837 (5010, and 4010).
    X12,
    /// Delimited text.
    Csv,
    /// Fixed-width records, one per line.
    FixedWidth,
    /// XML documents with a repeated claim element.
    Xml,
    /// FHIR R4 JSON: Claim or ExplanationOfBenefit resources, alone, in a Bundle or NDJSON.
    Fhir,
}

/// What one source record is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Records {
    /// One record per claim (X12 claims, wide CSV layouts).
    #[default]
    Claims,
    /// One record per claim line; consecutive records with the same `claim_key` form a claim.
    Lines,
}

/// Text encodings for delimited files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Encoding {
    /// UTF-8 (a BOM is skipped).
    #[default]
    Utf8,
    /// Windows code page 1252.
    Windows1252,
    /// ISO-8859-1.
    Latin1,
}

/// Options of delimited files.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CsvOptions {
    /// Field delimiter (one byte).
    pub delimiter: char,
    /// Quote character (one byte).
    pub quote: char,
    /// Whether the first row names the columns.
    pub header: bool,
    /// Text encoding.
    pub encoding: Encoding,
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            delimiter: ',',
            quote: '"',
            header: true,
            encoding: Encoding::Utf8,
        }
    }
}

/// Options of fixed-width files.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct FixedWidthOptions {
    /// Text encoding.
    pub encoding: Encoding,
    /// The layout's record length; lines of another length are errors.
    pub record_length: Option<usize>,
}

/// Options of XML files.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct XmlOptions {
    /// Element path from the root to each claim, `Claims/Claim`.
    pub record: String,
    /// Element path from a claim to each of its lines, `Lines/Line`.
    #[serde(default)]
    pub line: String,
}

/// Options of FHIR files.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct FhirOptions {
    /// One resource per line (NDJSON), read in bounded memory.
    pub ndjson: bool,
    /// The array of line elements, `item`.
    pub line: String,
}

impl Default for FhirOptions {
    fn default() -> Self {
        Self {
            ndjson: false,
            line: "item".into(),
        }
    }
}

/// A CSV column: by header name, or by 1-based position.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ColumnRef {
    /// Header name (may contain `{n}` for slots).
    Name(String),
    /// 1-based position.
    Index(usize),
}

/// How one target field gets its value: exactly one source, then transforms.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldRule {
    /// CSV column.
    pub column: Option<ColumnRef>,
    /// Fixed-width field: first and last byte, 1-based and inclusive.
    pub range: Option<[usize; 2]>,
    /// XML: element path below the record (or line) element, `a/b`, or `a/@attribute`;
    /// FHIR: dotted path below the resource (or line element), `billablePeriod.start`.
    pub path: Option<String>,
    /// X12 path: `LOOP SEG[QUAL]NN`, `…NN-C`, `…NN-C..D` (components), or `LOOP SEG*` (every
    /// element, for list fields).
    pub x12: Option<String>,
    /// A constant.
    pub value: Option<String>,
    /// The first of these rules that gives a non-empty value.
    pub first_of: Option<Vec<FieldRule>>,
    /// These rules' values joined by `separator`.
    pub concat: Option<Vec<FieldRule>>,
    /// Separator for `concat`.
    #[serde(default)]
    pub separator: String,
    /// For list fields with `{n}` in the column: slots 1..=n.
    pub slots: Option<u32>,
    /// For X12 list paths (`SEG*`): the component holding the code (default 2).
    pub component: Option<usize>,
    /// For X12 list paths: the component holding the POA indicator or date.
    pub extra_component: Option<usize>,
    /// For X12 list paths: keep only composites whose first component is one of these.
    pub qualifiers: Option<Vec<String>>,
    /// For diagnoses: the code system of the values (`icd-9-cm` or `icd-10-cm`), where the
    /// source does not say (X12 qualifiers do).
    pub code_system: Option<CodeSystem>,
    /// Applied in order to each value.
    #[serde(default)]
    pub transforms: Vec<Transform>,
    /// A missing value is an error finding (otherwise the field stays empty).
    #[serde(default)]
    pub required: bool,
}

/// Diagnosis code systems.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum CodeSystem {
    /// ICD-9-CM.
    #[serde(rename = "icd-9-cm")]
    Icd9Cm,
    /// ICD-10-CM.
    #[serde(rename = "icd-10-cm")]
    Icd10Cm,
}

/// A value transform.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Transform {
    /// Remove surrounding blanks.
    Trim,
    /// Upper case.
    Upper,
    /// Lower case.
    Lower,
    /// Keep digits only.
    Digits,
    /// Parse a date written as the pattern (`YYYYMMDD`, `MM/DD/YYYY`, `M/D/YYYY`,
    /// `YYYY-MM-DD`, `DD.MM.YYYY`…) and give `YYYY-MM-DD`.
    Date(String),
    /// The part of a date range `A-B` (X12 RD8): 1 = from, 2 = through.
    RangePart(usize),
    /// Insert a decimal point this many digits from the right (`12345` → `123.45`).
    ImpliedDecimals(usize),
    /// A code table; a value not in it is refused, unless the table has a `"*"` entry.
    Map(BTreeMap<String, String>),
    /// A value for an empty value.
    Default(String),
    /// Keep what the pattern's first group (or whole match) matches; no match gives empty.
    Regex(String),
    /// Split on a separator and keep one part.
    Split {
        /// The separator.
        on: String,
        /// 1-based part.
        index: usize,
    },
    /// Replace the value when it equals `equals`.
    When {
        /// The value to test for.
        equals: String,
        /// What it becomes.
        then: String,
    },
}

/// A row filter.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeepRows {
    /// The column to test.
    pub column: ColumnRef,
    /// The values that keep a row.
    pub values: Vec<String>,
}

/// A whole mapping definition.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MappingDefinition {
    /// Unique name.
    pub name: String,
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// Source format.
    pub format: Format,
    /// Claims or lines.
    #[serde(default)]
    pub records: Records,
    /// For `records = "lines"`: the value that groups lines into claims.
    pub claim_key: Option<FieldRule>,
    /// For wide layouts: each record holds this many line slots (`{n}` in line sources).
    pub line_slots: Option<u32>,
    /// For wide layouts: a slot is a line only when this value is not empty (without it,
    /// when any of its line fields is not empty).
    pub line_key: Option<FieldRule>,
    /// Keep only rows whose column holds one of the values; other rows are counted as
    /// skipped (a transactions file whose charge rows are the claim lines, say).
    pub keep_rows: Option<KeepRows>,
    /// Delimited-file options.
    #[serde(default)]
    pub csv: CsvOptions,
    /// Fixed-width options.
    #[serde(default)]
    pub fixed_width: FixedWidthOptions,
    /// XML options (required for `format = "xml"`).
    pub xml: Option<XmlOptions>,
    /// FHIR options.
    #[serde(default)]
    pub fhir: FhirOptions,
    /// Claim fields.
    pub claim: BTreeMap<String, FieldRule>,
    /// Line fields.
    #[serde(default)]
    pub line: BTreeMap<String, FieldRule>,
}

/// The JSON Schema of mapping definitions, generated from these types (the loader's own
/// shape), as pretty JSON. `schemas/mapping.schema.json` holds a copy for editors; a test
/// fails when the copy is stale.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(MappingDefinition);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}
