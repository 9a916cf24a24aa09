//! XML claims: a record path selects the claim elements; each is captured as a flat list
//! of (relative path, line, value) entries that mappings address by path.
//!
//! Untrusted XML is read with quick-xml's pull parser, which expands no entities and loads
//! no DTD; on top of that this reader **refuses any DOCTYPE** (so billion-laughs and XXE
//! files stop at once), resolves only the five predefined entities and character
//! references (any other entity reference is an error for its record), and limits element
//! depth and record size. Text split around entity references is accumulated.

use std::io::BufRead;

use quick_xml::events::Event;

use super::document::DocumentRecord;
use crate::findings::{Finding, Position};

/// Where records and lines are, and the limits.
#[derive(Debug, Clone)]
pub struct XmlOptions {
    /// Element path from the root to each record, for example `["Claims", "Claim"]`.
    pub record_path: Vec<String>,
    /// Element path from a record to each line, for example `["Lines", "Line"]`.
    pub line_path: Vec<String>,
    /// Deepest element nesting accepted.
    pub max_depth: usize,
    /// Most bytes of values in one record.
    pub max_record_bytes: usize,
}

impl Default for XmlOptions {
    fn default() -> Self {
        Self {
            record_path: Vec::new(),
            line_path: Vec::new(),
            max_depth: 64,
            max_record_bytes: 1024 * 1024,
        }
    }
}

/// Streams records out of an XML document.
pub struct XmlReader<R> {
    reader: quick_xml::Reader<R>,
    options: XmlOptions,
    buf: Vec<u8>,
    stack: Vec<String>,
    text: String,
    records: u64,
    done: bool,
}

impl<R: BufRead> XmlReader<R> {
    /// A reader with these options.
    pub fn new(source: R, options: XmlOptions) -> Self {
        let mut reader = quick_xml::Reader::from_reader(source);
        reader.config_mut().trim_text(false);
        Self {
            reader,
            options,
            buf: Vec::new(),
            stack: Vec::new(),
            text: String::new(),
            records: 0,
            done: false,
        }
    }

    fn position(&self) -> Position {
        Position {
            byte: self.reader.buffer_position(),
            ..Position::default()
        }
    }

    fn in_record(&self) -> bool {
        !self.options.record_path.is_empty()
            && self.stack.len() >= self.options.record_path.len()
            && self
                .stack
                .iter()
                .zip(&self.options.record_path)
                .all(|(a, b)| a == b)
    }

    /// The current element's path relative to the record (or to its line), and the line.
    fn relative(&self, record: &DocumentRecord) -> (String, Option<usize>) {
        let below = self
            .stack
            .get(self.options.record_path.len()..)
            .unwrap_or_default();
        let line_depth = self.options.line_path.len();
        let in_line = line_depth > 0
            && below.len() >= line_depth
            && below
                .iter()
                .zip(&self.options.line_path)
                .all(|(a, b)| a == b);
        if in_line {
            (
                below.get(line_depth..).unwrap_or_default().join("/"),
                record.line_count().checked_sub(1),
            )
        } else {
            (below.join("/"), None)
        }
    }

    fn add(
        &self,
        record: &mut DocumentRecord,
        path: String,
        line: Option<usize>,
        value: String,
        findings: &mut Vec<Finding>,
    ) {
        if !record.add(path, line, value, self.options.max_record_bytes) {
            if !record.broken {
                findings.push(Finding::error(
                    "xml.record_too_large",
                    record.position.clone(),
                    "the record is larger than the limit",
                ));
            }
            record.broken = true;
        }
    }

    fn flush_text(&mut self, record: &mut DocumentRecord, findings: &mut Vec<Finding>) {
        let text = std::mem::take(&mut self.text);
        if self.in_record() && !text.trim().is_empty() {
            let (path, line) = self.relative(record);
            self.add(record, path, line, text.trim().to_owned(), findings);
        }
    }

    fn start(
        &mut self,
        element: &quick_xml::events::BytesStart<'_>,
        record: &mut DocumentRecord,
        findings: &mut Vec<Finding>,
    ) -> bool {
        self.flush_text(record, findings);
        let name = element.local_name().as_ref().to_owned();
        self.stack.push(name);
        if self.stack.len() > self.options.max_depth {
            findings.push(Finding::error(
                "xml.too_deep",
                self.position(),
                "elements nest deeper than the limit; reading stops",
            ));
            self.done = true;
            return false;
        }
        if self.stack.len() == self.options.record_path.len() && self.in_record() {
            self.records += 1;
            record.clear();
            record.position = self.position();
            record.position.record = self.records;
        }
        if !self.in_record() {
            return true;
        }
        // Entering a line element starts the next line.
        let below = self
            .stack
            .get(self.options.record_path.len()..)
            .unwrap_or_default();
        if !below.is_empty() && below == self.options.line_path.as_slice() {
            record.start_line();
        }
        for attribute in element.attributes() {
            match attribute {
                Ok(a) => {
                    let key = a.key.local_name().as_ref().to_owned();
                    match a.normalized_value(quick_xml::XmlVersion::Implicit1_0) {
                        Ok(value) => {
                            let (path, line) = self.relative(record);
                            let path = if path.is_empty() {
                                format!("@{key}")
                            } else {
                                format!("{path}/@{key}")
                            };
                            self.add(record, path, line, value.into_owned(), findings);
                        }
                        Err(_) => self.refuse_entity(record, findings),
                    }
                }
                Err(_) => {
                    record.broken = true;
                    findings.push(Finding::error(
                        "xml.malformed",
                        self.position(),
                        "a malformed attribute",
                    ));
                }
            }
        }
        true
    }

    fn refuse_entity(&self, record: &mut DocumentRecord, findings: &mut Vec<Finding>) {
        record.broken = true;
        findings.push(Finding::error(
            "xml.entity",
            self.position(),
            "an entity reference other than the predefined five; entities are never expanded",
        ));
    }

    /// Reads the next record. Returns `Ok(false)` at the end of the document, or when it
    /// cannot be read further (with a finding saying why).
    pub fn read_record(
        &mut self,
        record: &mut DocumentRecord,
        findings: &mut Vec<Finding>,
    ) -> std::io::Result<bool> {
        let mut capturing = self.in_record();
        while !self.done {
            self.buf.clear();
            let event = match self.reader.read_event_into(&mut self.buf) {
                Ok(event) => event.into_owned(),
                Err(quick_xml::Error::Io(e)) => {
                    return Err(std::io::Error::new(e.kind(), "cannot read the XML input"));
                }
                Err(_) => {
                    self.done = true;
                    findings.push(Finding::error(
                        "xml.malformed",
                        self.position(),
                        "the document is not well-formed XML; reading stops",
                    ));
                    if capturing {
                        record.broken = true;
                        return Ok(true);
                    }
                    return Ok(false);
                }
            };
            match event {
                Event::DocType(_) => {
                    self.done = true;
                    findings.push(Finding::error(
                        "xml.doctype",
                        self.position(),
                        "a DOCTYPE declaration; DTDs are refused, nothing was read",
                    ));
                    return Ok(false);
                }
                Event::Start(e) => {
                    if !self.start(&e, record, findings) {
                        return Ok(false);
                    }
                    capturing = capturing || self.in_record();
                }
                Event::Empty(e) => {
                    if !self.start(&e, record, findings) {
                        return Ok(false);
                    }
                    capturing = capturing || self.in_record();
                    if self.end(record, findings) {
                        return Ok(true);
                    }
                }
                Event::End(_) => {
                    if self.end(record, findings) {
                        return Ok(true);
                    }
                }
                Event::Text(t) => {
                    if self.in_record() {
                        self.text.push_str(&t);
                    }
                }
                Event::CData(c) => {
                    if self.in_record() {
                        self.text.push_str(&c.into_inner());
                    }
                }
                Event::GeneralRef(r) => {
                    if !self.in_record() {
                        continue;
                    }
                    let resolved = match &*r {
                        "amp" => Some('&'),
                        "lt" => Some('<'),
                        "gt" => Some('>'),
                        "quot" => Some('"'),
                        "apos" => Some('\''),
                        _ => r.resolve_char_ref().ok().flatten(),
                    };
                    match resolved {
                        Some(c) => self.text.push(c),
                        None => self.refuse_entity(record, findings),
                    }
                }
                Event::Eof => {
                    self.done = true;
                    if capturing && self.in_record() {
                        record.broken = true;
                        findings.push(Finding::error(
                            "xml.truncated",
                            record.position.clone(),
                            "the document ends inside this record",
                        ));
                        return Ok(true);
                    }
                    return Ok(false);
                }
                Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            }
        }
        Ok(false)
    }

    /// Closes the current element; returns whether it closed a record.
    fn end(&mut self, record: &mut DocumentRecord, findings: &mut Vec<Finding>) -> bool {
        self.flush_text(record, findings);
        let was_record = self.stack.len() == self.options.record_path.len() && self.in_record();
        self.stack.pop();
        was_record
    }
}
