//! PostgreSQL binary `COPY` encoding of claim rows, in the column orders of
//! [`super::columns`]: what the ingest writer streams, and what the ingest benchmark's
//! bare load sends for the very same rows.
//!
//! The format: a signature, flags and header extension; then per row a 16-bit field count
//! and each field as a 32-bit length (-1 for NULL) and its value in network byte order;
//! then a trailer of -1.

use time::{Date, OffsetDateTime};

use super::{ClaimRow, LineRow};

/// Number of claim columns in [`super::columns::CLAIM_COLUMNS`].
pub const CLAIM_FIELDS: i16 = 46;
/// Number of line columns in [`super::columns::LINE_COLUMNS`].
pub const LINE_FIELDS: i16 = 17;

/// PostgreSQL's epoch, 2000-01-01, as a Julian day.
const EPOCH_JULIAN_DAY: i32 = 2_451_545;
/// PostgreSQL's epoch in microseconds since the Unix epoch.
const EPOCH_UNIX_MICROS: i128 = 946_684_800_000_000;

/// Appends fields of one row to a `COPY` buffer.
struct Row<'a>(&'a mut Vec<u8>);

impl Row<'_> {
    fn start(out: &mut Vec<u8>, fields: i16) -> Row<'_> {
        out.extend_from_slice(&fields.to_be_bytes());
        Row(out)
    }

    fn null(&mut self) -> &mut Self {
        self.0.extend_from_slice(&(-1i32).to_be_bytes());
        self
    }

    fn bytes(&mut self, value: Option<&[u8]>) -> &mut Self {
        match value {
            // Values are bounded far below 2 GiB by the readers; a longer one would have
            // been refused by the server too.
            Some(v) => {
                let len = i32::try_from(v.len()).unwrap_or(i32::MAX);
                self.0.extend_from_slice(&len.to_be_bytes());
                self.0.extend_from_slice(v);
                self
            }
            None => self.null(),
        }
    }

    fn text(&mut self, value: &str) -> &mut Self {
        self.bytes(Some(value.as_bytes()))
    }

    fn opt_text(&mut self, value: Option<&String>) -> &mut Self {
        self.bytes(value.map(|v| v.as_bytes()))
    }

    fn int8(&mut self, value: Option<i64>) -> &mut Self {
        match value {
            Some(v) => {
                self.0.extend_from_slice(&8i32.to_be_bytes());
                self.0.extend_from_slice(&v.to_be_bytes());
                self
            }
            None => self.null(),
        }
    }

    fn int2(&mut self, value: Option<i16>) -> &mut Self {
        match value {
            Some(v) => {
                self.0.extend_from_slice(&2i32.to_be_bytes());
                self.0.extend_from_slice(&v.to_be_bytes());
                self
            }
            None => self.null(),
        }
    }

    fn int4(&mut self, value: i32) -> &mut Self {
        self.0.extend_from_slice(&4i32.to_be_bytes());
        self.0.extend_from_slice(&value.to_be_bytes());
        self
    }

    fn date(&mut self, value: Option<Date>) -> &mut Self {
        match value {
            Some(d) => self.int4(d.to_julian_day() - EPOCH_JULIAN_DAY),
            None => self.null(),
        }
    }

    fn timestamptz(&mut self, value: OffsetDateTime) -> &mut Self {
        let micros = value.unix_timestamp_nanos() / 1_000 - EPOCH_UNIX_MICROS;
        self.int8(Some(i64::try_from(micros).unwrap_or(i64::MAX)))
    }
}

/// The start of a binary `COPY` stream.
pub fn header(out: &mut Vec<u8>) {
    out.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    out.extend_from_slice(&0i32.to_be_bytes()); // flags: no OIDs
    out.extend_from_slice(&0i32.to_be_bytes()); // no header extension
}

/// The end of a binary `COPY` stream.
pub fn trailer(out: &mut Vec<u8>) {
    out.extend_from_slice(&(-1i16).to_be_bytes());
}

/// The rows of a binary `COPY claims (CLAIM_COLUMNS)` stream for `rows` of `provider_id`.
pub fn claim_rows(
    out: &mut Vec<u8>,
    provider_id: i64,
    rows: &[ClaimRow],
    created_at: OffsetDateTime,
) {
    for r in rows {
        let mut row = Row::start(out, CLAIM_FIELDS);
        row.int8(Some(provider_id))
            .text(&r.key.upload_id)
            .int8(Some(r.key.record_no))
            .text(&r.source_claim_id)
            .text(r.claim_type)
            .text(&r.frequency_code)
            .opt_text(r.original_claim_id.as_ref())
            .opt_text(r.payer_id.as_ref())
            .opt_text(r.payer_name.as_ref())
            .opt_text(r.plan.as_ref())
            .opt_text(r.sex.as_ref())
            .opt_text(r.state.as_ref())
            .opt_text(r.billing_npi.as_ref())
            .opt_text(r.billing_tin.as_ref())
            .opt_text(r.rendering_npi.as_ref())
            .opt_text(r.attending_npi.as_ref())
            .opt_text(r.facility_npi.as_ref())
            .opt_text(r.bill_type.as_ref())
            .opt_text(r.place_of_service.as_ref())
            .date(r.statement_from)
            .date(r.statement_through)
            .date(r.admission_date)
            .date(r.discharge_date)
            .opt_text(r.admit_type.as_ref())
            .opt_text(r.admit_source.as_ref())
            .opt_text(r.discharge_status.as_ref())
            .opt_text(r.drg.as_ref())
            .text(&r.diagnoses)
            .text(&r.procedures)
            .int8(r.total_charge_cents)
            .int8(r.paid_cents)
            .int8(r.allowed_cents)
            .int4(i32::try_from(r.lines.len()).unwrap_or(i32::MAX))
            .text(&r.data_key_id);
        for value in r.phi.values() {
            row.bytes(value);
        }
        row.bytes(r.member_index.as_deref())
            .bytes(r.person_index.as_deref())
            .timestamptz(created_at)
            .opt_text(r.deid_zip3.as_ref())
            .int2(r.deid_age);
    }
}

/// The rows of a binary `COPY claim_lines (LINE_COLUMNS)` stream for the lines of `rows`.
pub fn line_rows(out: &mut Vec<u8>, provider_id: i64, rows: &[ClaimRow]) {
    for r in rows {
        for (ordinal, l) in (1..).zip(&r.lines) {
            line(out, provider_id, r, ordinal, l);
        }
    }
}

fn line(out: &mut Vec<u8>, provider_id: i64, claim: &ClaimRow, ordinal: i32, l: &LineRow) {
    Row::start(out, LINE_FIELDS)
        .int8(Some(provider_id))
        .text(&claim.key.upload_id)
        .int8(Some(claim.key.record_no))
        .int4(ordinal)
        .int4(l.line_number)
        .date(l.service_from)
        .date(l.service_through)
        .opt_text(l.procedure_code.as_ref())
        .text(&l.modifiers)
        .opt_text(l.revenue_code.as_ref())
        .opt_text(l.ndc.as_ref())
        .int8(l.units_milli)
        .int8(l.charge_cents)
        .int8(l.paid_cents)
        .int8(l.allowed_cents)
        .opt_text(l.rendering_npi.as_ref())
        .opt_text(l.place_of_service.as_ref());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::columns::{CLAIM_COLUMNS, LINE_COLUMNS};

    #[test]
    fn field_counts_match_the_column_lists() {
        assert_eq!(CLAIM_COLUMNS.split(',').count(), CLAIM_FIELDS as usize);
        assert_eq!(LINE_COLUMNS.split(',').count(), LINE_FIELDS as usize);
    }

    #[test]
    fn dates_and_timestamps_count_from_2000() {
        let mut out = Vec::new();
        let mut row = Row(&mut out);
        row.date(Some(time::macros::date!(2000 - 01 - 02)))
            .date(Some(time::macros::date!(1999 - 12 - 31)))
            .timestamptz(time::macros::datetime!(2000-01-01 00:00:01 UTC));
        let expected: Vec<u8> = [
            &4i32.to_be_bytes()[..],
            &1i32.to_be_bytes(),
            &4i32.to_be_bytes(),
            &(-1i32).to_be_bytes(),
            &8i32.to_be_bytes(),
            &1_000_000i64.to_be_bytes(),
        ]
        .concat();
        assert_eq!(out, expected);
    }
}
