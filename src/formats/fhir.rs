//! FHIR R4 JSON claims: `Claim` and `ExplanationOfBenefit` resources, alone, in a
//! `Bundle`, or as NDJSON (one resource per line, streamed).
//!
//! Each resource becomes a [`DocumentRecord`]: every scalar under the resource at its
//! dotted path (`billablePeriod.start`; arrays are transparent, so a path can give several
//! values), and each element of the line array (`item`) as a line with paths relative to
//! it. A resource of another type is counted and rejected with a finding. A whole JSON
//! document is read up to a size limit; NDJSON is read line by line in bounded memory.

use std::io::{BufRead, Read};

use serde_json::Value;

use super::document::DocumentRecord;
use crate::findings::{Finding, Position};

/// Resource types that are claims.
pub const CLAIM_RESOURCES: &[&str] = &["Claim", "ExplanationOfBenefit"];

/// Layout and limits.
#[derive(Debug, Clone)]
pub struct FhirOptions {
    /// One resource per line.
    pub ndjson: bool,
    /// Dotted path of the array whose elements are the claim's lines (`item`).
    pub line: String,
    /// Largest JSON document (or NDJSON line) read, in bytes.
    pub max_bytes: usize,
    /// Most bytes of values in one record.
    pub max_record_bytes: usize,
}

impl Default for FhirOptions {
    fn default() -> Self {
        Self {
            ndjson: false,
            line: "item".into(),
            max_bytes: 64 * 1024 * 1024,
            max_record_bytes: 4 * 1024 * 1024,
        }
    }
}

/// Streams claim resources.
pub struct FhirReader<R> {
    source: std::io::BufReader<R>,
    options: FhirOptions,
    queued: std::vec::IntoIter<(Value, Position)>,
    loaded: bool,
    offset: u64,
    line: u64,
    records: u64,
    done: bool,
}

impl<R: Read> FhirReader<R> {
    /// A reader with these options.
    pub fn new(source: R, options: FhirOptions) -> Self {
        Self {
            source: std::io::BufReader::with_capacity(256 * 1024, source),
            options,
            queued: Vec::new().into_iter(),
            loaded: false,
            offset: 0,
            line: 0,
            records: 0,
            done: false,
        }
    }

    /// Reads the next resource. Returns `Ok(false)` at the end.
    pub fn read_record(
        &mut self,
        record: &mut DocumentRecord,
        findings: &mut Vec<Finding>,
    ) -> std::io::Result<bool> {
        let next = if self.options.ndjson {
            self.next_line(findings)?
        } else {
            self.next_queued(findings)?
        };
        let Some((value, position)) = next else {
            return Ok(false);
        };
        self.records += 1;
        record.clear();
        record.position = position;
        record.position.record = self.records;
        let kind = value
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if CLAIM_RESOURCES.contains(&kind) {
            self.flatten(&value, String::new(), None, record, findings);
        } else {
            record.broken = true;
            findings.push(Finding::error(
                "fhir.resource_type",
                record.position.clone(),
                "the resource is not a Claim or an ExplanationOfBenefit",
            ));
        }
        Ok(true)
    }

    fn next_queued(
        &mut self,
        findings: &mut Vec<Finding>,
    ) -> std::io::Result<Option<(Value, Position)>> {
        if !self.loaded {
            self.loaded = true;
            let mut bytes = Vec::new();
            (&mut self.source)
                .take(self.options.max_bytes as u64 + 1)
                .read_to_end(&mut bytes)?;
            if bytes.len() > self.options.max_bytes {
                findings.push(Finding::error(
                    "fhir.too_large",
                    Position::default(),
                    "the JSON document is larger than the limit; use NDJSON for large volumes",
                ));
                return Ok(None);
            }
            let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
            let document: Value = match serde_json::from_slice(text) {
                Ok(v) => v,
                Err(e) => {
                    findings.push(json_error(&e, Position::default()));
                    return Ok(None);
                }
            };
            let mut resources = Vec::new();
            if document.get("resourceType").and_then(Value::as_str) == Some("Bundle") {
                let entries = document
                    .get("entry")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                for (i, entry) in entries.into_iter().enumerate() {
                    let position = Position {
                        path: Some(format!("entry[{i}]")),
                        ..Position::default()
                    };
                    match entry.get("resource") {
                        Some(resource) => resources.push((resource.clone(), position)),
                        None => findings.push(Finding::warning(
                            "fhir.empty_entry",
                            position,
                            "a Bundle entry without a resource",
                        )),
                    }
                }
            } else {
                resources.push((document, Position::default()));
            }
            self.queued = resources.into_iter();
        }
        Ok(self.queued.next())
    }

    fn next_line(
        &mut self,
        findings: &mut Vec<Finding>,
    ) -> std::io::Result<Option<(Value, Position)>> {
        let mut buf = Vec::new();
        while !self.done {
            buf.clear();
            let start = self.offset;
            let n = (&mut self.source)
                .take(self.options.max_bytes as u64 + 1)
                .read_until(b'\n', &mut buf)?;
            if n == 0 {
                self.done = true;
                break;
            }
            self.offset += n as u64;
            self.line += 1;
            let position = Position {
                byte: start,
                line: self.line,
                ..Position::default()
            };
            if n > self.options.max_bytes && !buf.ends_with(b"\n") {
                // Skip the rest of the over-long line without keeping it.
                let mut rest = Vec::new();
                loop {
                    rest.clear();
                    let m = (&mut self.source)
                        .take(64 * 1024)
                        .read_until(b'\n', &mut rest)?;
                    self.offset += m as u64;
                    if m == 0 || rest.ends_with(b"\n") {
                        break;
                    }
                }
                findings.push(Finding::error(
                    "fhir.too_large",
                    position,
                    "the NDJSON line is longer than the limit",
                ));
                continue;
            }
            let text = buf.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&buf);
            if text.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            // A line that is not JSON is still a record read: it comes back as Null, and
            // `read_record` counts it as rejected with this finding.
            return Ok(Some(match serde_json::from_slice::<Value>(text) {
                Ok(value) => (value, position),
                Err(e) => {
                    let mut at = position.clone();
                    at.record = self.records + 1;
                    findings.push(json_error(&e, at));
                    (Value::Null, position)
                }
            }));
        }
        Ok(None)
    }

    fn flatten(
        &self,
        value: &Value,
        path: String,
        line: Option<usize>,
        record: &mut DocumentRecord,
        findings: &mut Vec<Finding>,
    ) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    let child_path = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    if line.is_none() && child_path == self.options.line {
                        for item in child
                            .as_array()
                            .map(Vec::as_slice)
                            .unwrap_or(std::slice::from_ref(child))
                        {
                            record.start_line();
                            self.flatten(
                                item,
                                String::new(),
                                Some(record.line_count() - 1),
                                record,
                                findings,
                            );
                        }
                    } else {
                        self.flatten(child, child_path, line, record, findings);
                    }
                }
            }
            Value::Array(items) => {
                for item in items {
                    self.flatten(item, path.clone(), line, record, findings);
                }
            }
            Value::Null => {}
            scalar => {
                let text = match scalar {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                if !record.add(path, line, text, self.options.max_record_bytes) && !record.broken {
                    record.broken = true;
                    findings.push(Finding::error(
                        "fhir.record_too_large",
                        record.position.clone(),
                        "the resource is larger than the limit",
                    ));
                }
            }
        }
    }
}

/// A JSON syntax error as a finding: where, and what kind, never the text.
fn json_error(e: &serde_json::Error, mut at: Position) -> Finding {
    at.line = at.line.max(e.line() as u64);
    let kind = match e.classify() {
        serde_json::error::Category::Eof => "the JSON ends early",
        serde_json::error::Category::Syntax => "not valid JSON",
        serde_json::error::Category::Data => "unexpected JSON data",
        serde_json::error::Category::Io => "the JSON could not be read",
    };
    Finding::error(
        "fhir.malformed",
        at,
        format!("{kind} (column {})", e.column()),
    )
}
