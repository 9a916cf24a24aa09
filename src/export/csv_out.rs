//! The CSV form of the wide export: a header line of the column names, then one line per
//! claim line; empty for null; `,`-separated, `"`-quoted where needed, `\n`-terminated.
//! Text cells that a spreadsheet would run as a formula (first character `=`, `+`, `-`,
//! `@`, tab or carriage return) are prefixed with `'`; numbers are written as numbers.

use std::io::Write;

use super::columns::columns;
use super::wide::{Cell, WideClaim};

/// Writes CSV rows to `out`.
pub(super) struct CsvSink<W: Write> {
    out: std::io::BufWriter<W>,
    line: Vec<u8>,
}

impl<W: Write> CsvSink<W> {
    /// Starts the file with its header line.
    pub(super) fn new(out: W) -> std::io::Result<Self> {
        let mut out = std::io::BufWriter::with_capacity(1 << 16, out);
        let names: Vec<&str> = columns().iter().map(|c| c.name.as_str()).collect();
        out.write_all(names.join(",").as_bytes())?;
        out.write_all(b"\n")?;
        Ok(Self {
            out,
            line: Vec::with_capacity(1024),
        })
    }

    /// Writes every line of `claim`.
    pub(super) fn claim(&mut self, claim: &WideClaim, source: &str) -> std::io::Result<()> {
        for line in 0..claim.lines() {
            self.line.clear();
            for (i, spec) in columns().iter().enumerate() {
                if i > 0 {
                    self.line.push(b',');
                }
                cell(&mut self.line, claim.cell(spec.column, line, source));
            }
            self.line.push(b'\n');
            self.out.write_all(&self.line)?;
        }
        Ok(())
    }

    /// Flushes and returns the writer.
    pub(super) fn finish(self) -> std::io::Result<W> {
        self.out
            .into_inner()
            .map_err(std::io::IntoInnerError::into_error)
    }
}

fn cell(out: &mut Vec<u8>, value: Cell<'_>) {
    match value {
        Cell::Null => {}
        Cell::Text(text) => {
            let formula = text
                .as_bytes()
                .first()
                .is_some_and(|b| matches!(b, b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r'));
            let quote = formula
                || text
                    .bytes()
                    .any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'));
            if quote {
                out.push(b'"');
            }
            if formula {
                out.push(b'\'');
            }
            for b in text.bytes() {
                if b == b'"' {
                    out.push(b'"');
                }
                out.push(b);
            }
            if quote {
                out.push(b'"');
            }
        }
        Cell::Int(n) => {
            let _ = write!(out, "{n}");
        }
        Cell::Cents(cents) => {
            let sign = if cents < 0 { "-" } else { "" };
            let abs = cents.unsigned_abs();
            let _ = write!(out, "{sign}{}.{:02}", abs / 100, abs % 100);
        }
        Cell::Date(d) => {
            let _ = write!(
                out,
                "{:04}-{:02}-{:02}",
                d.year(),
                u8::from(d.month()),
                d.day()
            );
        }
        Cell::Timestamp(t) => {
            let t = t.to_offset(time::UtcOffset::UTC);
            let _ = write!(
                out,
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            );
        }
        Cell::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(value: Cell<'_>) -> String {
        let mut out = Vec::new();
        cell(&mut out, value);
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn cells_are_typed_quoted_and_formula_safe() {
        assert_eq!(text(Cell::Cents(-1250)), "-12.50");
        assert_eq!(text(Cell::Cents(5)), "0.05");
        assert_eq!(
            text(Cell::Text("=HYPERLINK(\"x\")")),
            "\"'=HYPERLINK(\"\"x\"\")\""
        );
        assert_eq!(text(Cell::Text("-5")), "\"'-5\"");
        assert_eq!(text(Cell::Text("a,b")), "\"a,b\"");
        assert_eq!(text(Cell::Text("99213")), "99213");
        assert_eq!(text(Cell::Null), "");
        assert_eq!(
            text(Cell::Date(time::macros::date!(2024 - 03 - 05))),
            "2024-03-05"
        );
        assert_eq!(
            text(Cell::Timestamp(
                time::macros::datetime!(2026-11-27 10:11:12 UTC)
            )),
            "2026-11-27 10:11:12"
        );
    }
}
