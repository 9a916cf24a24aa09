//! Delimited text (CSV and its relatives): bytes → rows of decoded fields, streaming.
//!
//! Built on `csv-core`'s tokenizer with our own buffers, so memory is bounded by the
//! record limit: a record longer than [`DelimitedLimits::max_record_bytes`] (an
//! unterminated quote that swallows the rest of a file, say) is skipped with a finding
//! while reading goes on. Any delimiter and quote byte, a header or none, CRLF, a UTF-8
//! BOM, and UTF-8, Windows-1252 or Latin-1 text. A row whose quotes do not balance or
//! whose width differs from the header's gets an error finding; its neighbours are
//! unaffected.

use std::io::Read;

use crate::findings::{Finding, Position};

/// Text encodings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TextEncoding {
    /// UTF-8 (invalid bytes are an error finding for the row).
    #[default]
    Utf8,
    /// Windows code page 1252.
    Windows1252,
    /// ISO-8859-1: every byte is the code point of the same number.
    Latin1,
}

/// Dialect and limits.
#[derive(Debug, Clone, Copy)]
pub struct DelimitedOptions {
    /// Field delimiter.
    pub delimiter: u8,
    /// Quote byte.
    pub quote: u8,
    /// Whether the first row names the columns.
    pub header: bool,
    /// Text encoding.
    pub encoding: TextEncoding,
    /// Limits.
    pub limits: DelimitedLimits,
}

impl Default for DelimitedOptions {
    fn default() -> Self {
        Self {
            delimiter: b',',
            quote: b'"',
            header: true,
            encoding: TextEncoding::Utf8,
            limits: DelimitedLimits::default(),
        }
    }
}

/// Hard limits.
#[derive(Debug, Clone, Copy)]
pub struct DelimitedLimits {
    /// Longest record, in bytes after unquoting.
    pub max_record_bytes: usize,
    /// Longest field, in bytes.
    pub max_field_bytes: usize,
    /// Most fields in a record.
    pub max_fields: usize,
}

impl Default for DelimitedLimits {
    fn default() -> Self {
        Self {
            max_record_bytes: 1024 * 1024,
            max_field_bytes: 64 * 1024,
            max_fields: 4096,
        }
    }
}

/// One row, reused from call to call.
#[derive(Debug, Default, Clone)]
pub struct Row {
    fields: Vec<String>,
    len: usize,
    /// Where the row starts; `record` is its 1-based number among data rows.
    pub position: Position,
    /// Whether the row had a problem that rejects it (reported as a finding).
    pub broken: bool,
}

impl Row {
    /// Field `index` (0-based).
    pub fn get(&self, index: usize) -> Option<&str> {
        (index < self.len)
            .then(|| self.fields.get(index).map(String::as_str))
            .flatten()
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the row has no fields.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Empties the row and gives it a position and record number (other readers).
    pub(crate) fn clear_with(&mut self, position: Position, record: u64) {
        self.len = 0;
        self.broken = false;
        self.position = position;
        self.position.record = record;
    }

    /// Sets field `index` and counts it (other readers fill rows field by field, in order).
    pub(crate) fn push_field(&mut self, index: usize, value: &str) {
        self.set(index, value);
        self.len = self.len.max(index + 1);
    }

    fn set(&mut self, index: usize, value: &str) {
        match self.fields.get_mut(index) {
            Some(slot) => {
                slot.clear();
                slot.push_str(value);
            }
            None => self.fields.push(value.to_owned()),
        }
    }
}

const CHUNK: usize = 64 * 1024;

/// Decodes one field; `None` when the bytes are not valid in a UTF-8 file (the caller
/// reports it, and the text is then decoded lossily).
pub(crate) fn decode(bytes: &[u8], encoding: TextEncoding) -> Option<std::borrow::Cow<'_, str>> {
    match encoding {
        TextEncoding::Utf8 => std::str::from_utf8(bytes)
            .ok()
            .map(std::borrow::Cow::Borrowed),
        TextEncoding::Windows1252 => Some(
            encoding_rs::WINDOWS_1252
                .decode_without_bom_handling(bytes)
                .0,
        ),
        TextEncoding::Latin1 => Some(std::borrow::Cow::Owned(
            bytes.iter().map(|b| char::from(*b)).collect(),
        )),
    }
}

/// Streams rows out of any reader.
pub struct DelimitedReader<R> {
    source: R,
    core: csv_core::Reader,
    options: DelimitedOptions,
    input: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    output: Vec<u8>,
    ends: Vec<usize>,
    offset: u64,
    line: u64,
    rows: u64,
    header: Option<Vec<String>>,
    started: bool,
    done: bool,
}

impl<R: Read> DelimitedReader<R> {
    /// A reader with these options.
    pub fn new(source: R, options: DelimitedOptions) -> Self {
        let core = csv_core::ReaderBuilder::new()
            .delimiter(options.delimiter)
            .quote(options.quote)
            .build();
        Self {
            source,
            core,
            options,
            input: vec![0; CHUNK],
            start: 0,
            end: 0,
            eof: false,
            output: vec![0; 4096],
            ends: vec![0; 64],
            offset: 0,
            line: 1,
            rows: 0,
            header: None,
            started: false,
            done: false,
        }
    }

    /// The header row's names (after the first call to [`Self::read_row`]), if the
    /// options say there is one.
    pub fn header(&mut self, findings: &mut Vec<Finding>) -> std::io::Result<Option<&[String]>> {
        self.start_file(findings)?;
        Ok(self.header.as_deref())
    }

    fn start_file(&mut self, findings: &mut Vec<Finding>) -> std::io::Result<()> {
        if self.started {
            return Ok(());
        }
        self.started = true;
        self.fill()?;
        if self.input.get(..3) == Some(b"\xEF\xBB\xBF".as_slice()) && self.end >= 3 {
            self.start = 3;
            self.offset = 3;
        }
        if self.options.header {
            let mut row = Row::default();
            if self.read_raw(&mut row, findings)? {
                self.header = Some(
                    (0..row.len())
                        .filter_map(|i| row.get(i).map(str::to_owned))
                        .collect(),
                );
            }
        }
        Ok(())
    }

    fn fill(&mut self) -> std::io::Result<()> {
        if self.eof {
            return Ok(());
        }
        if self.start > 0 {
            self.input.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let n = crate::formats::read_some(
            &mut self.source,
            self.input.get_mut(self.end..).unwrap_or_default(),
        )?;
        self.eof = n == 0;
        self.end += n;
        Ok(())
    }

    /// Reads the next data row. Returns `Ok(false)` at the end of the input. Rows with
    /// problems are still returned (with `broken` set) so that they are counted.
    pub fn read_row(
        &mut self,
        row: &mut Row,
        findings: &mut Vec<Finding>,
    ) -> std::io::Result<bool> {
        self.start_file(findings)?;
        loop {
            if !self.read_raw(row, findings)? {
                return Ok(false);
            }
            // A blank line is no record.
            if row.len() == 1 && row.get(0).is_some_and(str::is_empty) && !row.broken {
                continue;
            }
            self.rows += 1;
            row.position.record = self.rows;
            for finding in findings
                .iter_mut()
                .rev()
                .take_while(|f| f.position.record == 0 && f.position.byte >= row.position.byte)
            {
                finding.position.record = self.rows;
            }
            if let Some(width) = self.header.as_ref().map(Vec::len) {
                if row.len() != width {
                    row.broken = true;
                    findings.push(Finding::error(
                        "csv.column_count",
                        row.position.clone(),
                        format!("the row has {} fields; the header has {width}", row.len()),
                    ));
                }
            }
            return Ok(true);
        }
    }

    /// Reads one record (header or data) into `row`.
    fn read_raw(&mut self, row: &mut Row, findings: &mut Vec<Finding>) -> std::io::Result<bool> {
        if self.done {
            return Ok(false);
        }
        row.len = 0;
        row.broken = false;
        row.position = Position {
            byte: self.offset,
            line: self.line,
            ..Position::default()
        };
        let mut out_len = 0usize;
        let mut ends_len = 0usize;
        let mut quotes = 0u64;
        let mut too_long = false;
        loop {
            if self.start == self.end && !self.eof {
                self.fill()?;
            }
            let input = self.input.get(self.start..self.end).unwrap_or_default();
            let (result, nin, nout, nend) = self.core.read_record(
                input,
                self.output.get_mut(out_len..).unwrap_or_default(),
                self.ends.get_mut(ends_len..).unwrap_or_default(),
            );
            let consumed = input.get(..nin).unwrap_or_default();
            quotes += memchr::memchr_iter(self.options.quote, consumed).count() as u64;
            self.line += memchr::memchr_iter(b'\n', consumed).count() as u64;
            self.offset += nin as u64;
            self.start += nin;
            out_len += nout;
            ends_len += nend;
            use csv_core::ReadRecordResult as R;
            match result {
                R::InputEmpty => {
                    if self.eof {
                        continue; // csv-core finishes the last record on empty input
                    }
                    self.fill()?;
                }
                R::OutputFull => {
                    if self.output.len() >= self.options.limits.max_record_bytes {
                        // Keep tokenizing to find the record's end, but drop its bytes.
                        too_long = true;
                        out_len = 0;
                        ends_len = 0;
                    } else {
                        let grow = self.output.len().min(self.options.limits.max_record_bytes);
                        self.output.resize(self.output.len() + grow, 0);
                    }
                }
                R::OutputEndsFull => {
                    if self.ends.len() >= self.options.limits.max_fields {
                        too_long = true;
                        out_len = 0;
                        ends_len = 0;
                    } else {
                        let grow = self.ends.len();
                        self.ends.resize(self.ends.len() + grow, 0);
                    }
                }
                R::Record => break,
                R::End => {
                    self.done = true;
                    return Ok(false);
                }
            }
        }
        if too_long {
            row.broken = true;
            findings.push(Finding::error(
                "csv.record_too_long",
                row.position.clone(),
                "the record is longer than the limit; its fields were dropped",
            ));
            return Ok(true);
        }
        if ends_len > self.options.limits.max_fields {
            row.broken = true;
            findings.push(Finding::error(
                "csv.too_many_fields",
                row.position.clone(),
                "the record has more fields than the limit; its fields were dropped",
            ));
            return Ok(true);
        }
        if quotes % 2 == 1 {
            row.broken = true;
            findings.push(Finding::error(
                "csv.unbalanced_quote",
                row.position.clone(),
                "a quoted field is not closed",
            ));
        }
        let mut field_start = 0;
        for (i, end) in self.ends.iter().take(ends_len).enumerate() {
            let bytes = self.output.get(field_start..*end).unwrap_or_default();
            field_start = *end;
            if bytes.len() > self.options.limits.max_field_bytes {
                row.broken = true;
                let mut at = row.position.clone();
                at.path = Some(format!("field {}", i + 1));
                findings.push(Finding::error(
                    "csv.field_too_long",
                    at,
                    "the field is longer than the limit",
                ));
                row.set(i, "");
                continue;
            }
            let text = match decode(bytes, self.options.encoding) {
                Some(text) => text,
                None => {
                    row.broken = true;
                    let mut at = row.position.clone();
                    at.path = Some(format!("field {}", i + 1));
                    findings.push(Finding::error(
                        "csv.invalid_utf8",
                        at,
                        "the field is not valid UTF-8",
                    ));
                    String::from_utf8_lossy(bytes)
                }
            };
            row.set(i, &text);
        }
        row.len = ends_len;
        Ok(true)
    }
}
