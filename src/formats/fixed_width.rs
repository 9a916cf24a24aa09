//! Fixed-width records (CMS CCLF style): one record per line, fields at byte positions.
//!
//! The reader is given the byte ranges a mapping uses (1-based, inclusive, as record
//! layouts print them) and yields each line as a [`Row`] whose fields are those ranges, in
//! that order, so a fixed-width line is mapped exactly like a delimited row. Lines longer
//! than the limit are skipped with a finding, in bounded memory; a line shorter than a
//! range gives that field empty and, when the layout declares a record length, a finding.

use std::io::Read;

use super::delimited::{Row, TextEncoding};
use crate::findings::{Finding, Position};

/// Options of a fixed-width file.
#[derive(Debug, Clone, Copy)]
pub struct FixedWidthOptions {
    /// Text encoding.
    pub encoding: TextEncoding,
    /// The layout's record length, when it declares one: other lengths are errors.
    pub record_length: Option<usize>,
    /// Longest line accepted, in bytes.
    pub max_line_bytes: usize,
}

impl Default for FixedWidthOptions {
    fn default() -> Self {
        Self {
            encoding: TextEncoding::Utf8,
            record_length: None,
            max_line_bytes: 64 * 1024,
        }
    }
}

const CHUNK: usize = 64 * 1024;

/// Streams fixed-width lines as rows of the given ranges.
pub struct FixedWidthReader<R> {
    source: R,
    ranges: Vec<(usize, usize)>,
    options: FixedWidthOptions,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    offset: u64,
    line: u64,
    rows: u64,
}

impl<R: Read> FixedWidthReader<R> {
    /// A reader that cuts each line into `ranges` (1-based, inclusive byte positions).
    pub fn new(source: R, ranges: Vec<(usize, usize)>, options: FixedWidthOptions) -> Self {
        Self {
            source,
            ranges,
            options,
            buf: vec![0; CHUNK],
            start: 0,
            end: 0,
            eof: false,
            offset: 0,
            line: 0,
            rows: 0,
        }
    }

    fn fill(&mut self) -> std::io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            self.buf.resize(self.buf.len() + CHUNK, 0);
        }
        let n = crate::formats::read_some(
            &mut self.source,
            self.buf.get_mut(self.end..).unwrap_or_default(),
        )?;
        self.eof = n == 0;
        self.end += n;
        Ok(n > 0)
    }

    /// Reads the next non-blank line. Problem lines are returned `broken`, with a finding.
    pub fn read_row(
        &mut self,
        row: &mut Row,
        findings: &mut Vec<Finding>,
    ) -> std::io::Result<bool> {
        loop {
            let window = self.buf.get(self.start..self.end).unwrap_or_default();
            let (line_len, terminated) = match memchr::memchr(b'\n', window) {
                Some(at) => (at, true),
                None if self.eof => (window.len(), false),
                None if window.len() > self.options.max_line_bytes => {
                    // Too long and no end in sight: drop what we have and keep looking.
                    let position = Position {
                        byte: self.offset,
                        line: self.line + 1,
                        ..Position::default()
                    };
                    let dropped = window.len();
                    self.start += dropped;
                    self.offset += dropped as u64;
                    self.skip_line()?;
                    self.line += 1;
                    self.rows += 1;
                    row.clear_with(position, self.rows);
                    findings.push(Finding::error(
                        "fixed.line_too_long",
                        row.position.clone(),
                        "the line is longer than the limit; it was skipped",
                    ));
                    return Ok(true);
                }
                None => {
                    self.fill()?;
                    continue;
                }
            };
            if line_len == 0 && !terminated {
                return Ok(false);
            }
            let raw = window.get(..line_len).unwrap_or_default();
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            let position = Position {
                byte: self.offset,
                line: self.line + 1,
                ..Position::default()
            };
            let consumed = line_len + usize::from(terminated);
            self.line += 1;
            if raw.iter().all(|b| b.is_ascii_whitespace()) {
                self.start += consumed;
                self.offset += consumed as u64;
                continue;
            }
            self.rows += 1;
            row.clear_with(position, self.rows);
            if raw.len() > self.options.max_line_bytes {
                row.broken = true;
                findings.push(Finding::error(
                    "fixed.line_too_long",
                    row.position.clone(),
                    "the line is longer than the limit",
                ));
            } else {
                if let Some(expected) = self.options.record_length.filter(|l| *l != raw.len()) {
                    row.broken = true;
                    findings.push(Finding::error(
                        "fixed.record_length",
                        row.position.clone(),
                        format!(
                            "the record is {} bytes long; the layout says {expected}",
                            raw.len()
                        ),
                    ));
                }
                for (i, (from, to)) in self.ranges.iter().enumerate() {
                    let bytes = raw
                        .get(from.saturating_sub(1)..(*to).min(raw.len()))
                        .unwrap_or_default();
                    let text = match super::delimited::decode(bytes, self.options.encoding) {
                        Some(text) => text,
                        None => {
                            row.broken = true;
                            let mut at = row.position.clone();
                            at.path = Some(format!("bytes {from}-{to}"));
                            findings.push(Finding::error(
                                "fixed.invalid_utf8",
                                at,
                                "the field is not valid UTF-8 (or a range splits a character)",
                            ));
                            String::from_utf8_lossy(bytes)
                        }
                    };
                    row.push_field(i, &text);
                }
            }
            self.start += consumed;
            self.offset += consumed as u64;
            return Ok(true);
        }
    }

    fn skip_line(&mut self) -> std::io::Result<()> {
        loop {
            let window = self.buf.get(self.start..self.end).unwrap_or_default();
            if let Some(at) = memchr::memchr(b'\n', window) {
                self.start += at + 1;
                self.offset += (at + 1) as u64;
                return Ok(());
            }
            let all = window.len();
            self.start += all;
            self.offset += all as u64;
            if !self.fill()? {
                return Ok(());
            }
        }
    }
}
