//! PostgreSQL `COPY … FROM STDIN` text encoding of claim rows and lines: tab-separated,
//! `\N` for NULL, backslash escapes, `bytea` as `\\x` hex. The column lists are
//! [`CLAIM_COLUMNS`] and [`LINE_COLUMNS`].

use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime};

use super::ClaimRow;

/// The claim columns written, in order.
pub const CLAIM_COLUMNS: &str = "provider_id, upload_id, record_no, source_claim_id, claim_type, \
    frequency_code, original_claim_id, payer_id, payer_name, plan, sex, state, billing_npi, \
    billing_tin, rendering_npi, attending_npi, facility_npi, bill_type, place_of_service, \
    statement_from, statement_through, admission_date, discharge_date, admit_type, admit_source, \
    discharge_status, drg, diagnoses, procedures, total_charge_cents, paid_cents, allowed_cents, \
    line_count, data_key_id, member_id, first_name, last_name, birth_date, address, city, zip, \
    member_index, person_index, created_at";

/// The line columns written, in order.
pub const LINE_COLUMNS: &str = "provider_id, upload_id, record_no, ordinal, line_number, \
    service_from, service_through, procedure_code, modifiers, revenue_code, ndc, units_milli, \
    charge_cents, paid_cents, allowed_cents, rendering_npi, place_of_service";

/// One row being encoded.
struct Row<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl Row<'_> {
    fn sep(&mut self) {
        if !self.first {
            self.out.push(b'\t');
        }
        self.first = false;
    }

    fn text(&mut self, value: Option<&str>) -> &mut Self {
        self.sep();
        match value {
            None => self.out.extend_from_slice(b"\\N"),
            Some(v) => {
                for b in v.bytes() {
                    match b {
                        b'\\' => self.out.extend_from_slice(b"\\\\"),
                        b'\t' => self.out.extend_from_slice(b"\\t"),
                        b'\n' => self.out.extend_from_slice(b"\\n"),
                        b'\r' => self.out.extend_from_slice(b"\\r"),
                        other => self.out.push(other),
                    }
                }
            }
        }
        self
    }

    fn int(&mut self, value: Option<i64>) -> &mut Self {
        self.sep();
        match value {
            None => self.out.extend_from_slice(b"\\N"),
            Some(n) => self.out.extend_from_slice(n.to_string().as_bytes()),
        }
        self
    }

    fn date(&mut self, value: Option<Date>) -> &mut Self {
        self.sep();
        match value {
            None => self.out.extend_from_slice(b"\\N"),
            Some(d) => self.out.extend_from_slice(d.to_string().as_bytes()),
        }
        self
    }

    fn bytes(&mut self, value: Option<&[u8]>) -> &mut Self {
        self.sep();
        match value {
            None => self.out.extend_from_slice(b"\\N"),
            Some(v) => {
                self.out.extend_from_slice(b"\\\\x");
                self.out.extend_from_slice(hex::encode(v).as_bytes());
            }
        }
        self
    }

    fn end(&mut self) {
        self.out.push(b'\n');
    }
}

/// Appends `rows` as COPY text for [`CLAIM_COLUMNS`].
pub fn encode_claims(out: &mut Vec<u8>, provider_id: i64, rows: &[ClaimRow], now: OffsetDateTime) {
    let created = now.format(&Rfc3339).unwrap_or_default();
    for r in rows {
        let mut row = Row { out, first: true };
        row.int(Some(provider_id))
            .text(Some(&r.key.upload_id))
            .int(Some(r.key.record_no))
            .text(Some(&r.source_claim_id))
            .text(Some(r.claim_type))
            .text(Some(&r.frequency_code))
            .text(r.original_claim_id.as_deref())
            .text(r.payer_id.as_deref())
            .text(r.payer_name.as_deref())
            .text(r.plan.as_deref())
            .text(r.sex.as_deref())
            .text(r.state.as_deref())
            .text(r.billing_npi.as_deref())
            .text(r.billing_tin.as_deref())
            .text(r.rendering_npi.as_deref())
            .text(r.attending_npi.as_deref())
            .text(r.facility_npi.as_deref())
            .text(r.bill_type.as_deref())
            .text(r.place_of_service.as_deref())
            .date(r.statement_from)
            .date(r.statement_through)
            .date(r.admission_date)
            .date(r.discharge_date)
            .text(r.admit_type.as_deref())
            .text(r.admit_source.as_deref())
            .text(r.discharge_status.as_deref())
            .text(r.drg.as_deref())
            .text(Some(&r.diagnoses))
            .text(Some(&r.procedures))
            .int(r.total_charge_cents)
            .int(r.paid_cents)
            .int(r.allowed_cents)
            .int(Some(r.lines.len() as i64))
            .text(Some(&r.data_key_id));
        for value in r.phi.values() {
            row.bytes(value);
        }
        row.bytes(r.member_index.as_deref())
            .bytes(r.person_index.as_deref())
            .text(Some(&created))
            .end();
    }
}

/// Appends the lines of `rows` as COPY text for [`LINE_COLUMNS`].
pub fn encode_lines(out: &mut Vec<u8>, provider_id: i64, rows: &[ClaimRow]) {
    for r in rows {
        for (i, l) in r.lines.iter().enumerate() {
            Row { out, first: true }
                .int(Some(provider_id))
                .text(Some(&r.key.upload_id))
                .int(Some(r.key.record_no))
                .int(Some(i as i64 + 1))
                .int(Some(i64::from(l.line_number)))
                .date(l.service_from)
                .date(l.service_through)
                .text(l.procedure_code.as_deref())
                .text(Some(&l.modifiers))
                .text(l.revenue_code.as_deref())
                .text(l.ndc.as_deref())
                .int(l.units_milli)
                .int(l.charge_cents)
                .int(l.paid_cents)
                .int(l.allowed_cents)
                .text(l.rendering_npi.as_deref())
                .text(l.place_of_service.as_deref())
                .end();
        }
    }
}
