//! Generators and helpers shared by the benchmarks (not a benchmark itself).
#![allow(dead_code)]

use std::io::Read;

/// An environment variable as a number, or `default`.
pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Writes an 837P with `claims` claims (two lines each) as it is read.
pub struct Gen837 {
    claims: u64,
    lines: u64,
    next: u64,
    buf: Vec<u8>,
    pos: usize,
    stage: u8,
}

impl Gen837 {
    /// Two lines a claim.
    pub fn new(claims: u64) -> Self {
        Self::with_lines(claims, 2)
    }

    /// Two or three lines a claim.
    pub fn with_lines(claims: u64, lines: u64) -> Self {
        Self {
            claims,
            lines: lines.clamp(2, 3),
            next: 0,
            buf: Vec::new(),
            pos: 0,
            stage: 0,
        }
    }

    fn refill(&mut self) -> bool {
        self.buf.clear();
        self.pos = 0;
        match self.stage {
            0 => {
                self.buf.extend_from_slice(b"ISA*00*          *00*          *ZZ*SUBMITTER      *ZZ*RECEIVER       *240101*1200*^*00501*000000001*0*P*:~\n\
GS*HC*SUB*REC*20240101*1200*1*X*005010X222A1~\nST*837*0001*005010X222A1~\nBHT*0019*00*1*20240101*1200*CH~\n\
NM1*41*2*SUBMITTER*****46*S1~\nPER*IC*CONTACT*TE*5555550100~\nNM1*40*2*RECEIVER*****46*R1~\n\
HL*1**20*1~\nNM1*85*2*BILLING CLINIC*****XX*1234567893~\nN3*1 MAIN ST~\nN4*CITY*ST*12345~\nREF*EI*123456789~\n");
                self.stage = 1;
            }
            1 if self.next < self.claims => {
                let i = self.next;
                self.next += 1;
                let hl = i + 2;
                use std::io::Write;
                let _ = write!(
                    self.buf,
                    "HL*{hl}*1*22*0~\nSBR*P*18*GRP{g}******CI~\nNM1*IL*1*DOE{i}*JANE****MI*M{i:09}~\nN3*{i} OAK ST~\nN4*TOWN*ST*54321~\nDMG*D8*19600229*F~\n\
NM1*PR*2*PAYER*****PI*P1~\nCLM*C{i}*{total}***11:B:1*Y*A*Y*Y~\nHI*ABK:J020*ABF:E119~\nNM1*82*1*SMITH*ANN****XX*1234567893~\n\
LX*1~\nSV1*HC:99213:25*100.50*UN*1***1~\nDTP*472*D8*20240115~\nLX*2~\nSV1*HC:87070*25*UN*1***1~\nDTP*472*D8*20240115~\n",
                    g = i % 100,
                    total = if self.lines == 3 { "135.50" } else { "125.50" }
                );
                if self.lines == 3 {
                    let _ = write!(
                        self.buf,
                        "LX*3~\nSV1*HC:36415*10*UN*1***1~\nDTP*472*D8*20240115~\n"
                    );
                }
            }
            1 => {
                let count = 12 + self.claims * (10 + 3 * self.lines) + 1;
                use std::io::Write;
                let _ = write!(self.buf, "SE*{count}*0001~\nGE*1*1~\nIEA*1*000000001~\n");
                self.stage = 2;
            }
            _ => return false,
        }
        true
    }
}

impl Read for Gen837 {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let mut written = 0;
        while written < out.len() {
            if self.pos == self.buf.len() && !self.refill() {
                break;
            }
            let n = (self.buf.len() - self.pos).min(out.len() - written);
            out[written..written + n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
            self.pos += n;
            written += n;
        }
        Ok(written)
    }
}

/// Writes a line-level CSV with `lines` lines (three per claim) as it is read.
pub struct GenCsv {
    pub lines: u64,
    pub next: u64,
    pub buf: Vec<u8>,
    pub pos: usize,
    pub header: bool,
}

impl Read for GenCsv {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        use std::io::Write;
        let mut written = 0;
        while written < out.len() {
            if self.pos == self.buf.len() {
                self.buf.clear();
                self.pos = 0;
                if !self.header {
                    self.header = true;
                    self.buf.extend_from_slice(
                        b"CLAIM,MEMBER,NAME,TOTAL,DOB,DX1,DX2,HCPCS,CHARGE,DOS\n",
                    );
                } else if self.next < self.lines {
                    for _ in 0..64.min(self.lines - self.next) {
                        let claim = self.next / 3;
                        let _ = writeln!(
                            self.buf,
                            "C{claim},M{claim},\"DOE, JANE\",30.00,02/29/1960,J020,E119,99213,10.00,01/15/2024"
                        );
                        self.next += 1;
                    }
                } else {
                    break;
                }
            }
            let n = (self.buf.len() - self.pos).min(out.len() - written);
            out[written..written + n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
            self.pos += n;
            written += n;
        }
        Ok(written)
    }
}

pub const CSV_MAPPING: &str = r#"
name = "bench-lines"
format = "csv"
records = "lines"
claim_key = { column = "CLAIM" }
[claim]
claim_type = { value = "professional" }
source_claim_id = { column = "CLAIM", required = true }
member_id = { column = "MEMBER", required = true }
patient_last_name = { column = "NAME", transforms = [{ split = { on = ",", index = 1 } }] }
place_of_service = { value = "11" }
total_charge = { column = "TOTAL" }
birth_date = { column = "DOB", transforms = [{ date = "MM/DD/YYYY" }] }
diagnoses = { column = "DX{n}", slots = 2 }
[line]
procedure_code = { column = "HCPCS" }
charge = { column = "CHARGE", required = true }
service_from = { column = "DOS", transforms = [{ date = "MM/DD/YYYY" }] }
"#;

pub fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// PostgreSQL `COPY … FROM STDIN` text encoding of claim rows and lines (tab-separated,
/// `\N` for NULL, backslash escapes, `bytea` as `\\x` hex) for the bare load.
pub mod copy_text {
    use claimgate::store::ClaimRow;
    use time::format_description::well_known::Rfc3339;
    use time::{Date, OffsetDateTime};

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
    pub fn encode_claims(
        out: &mut Vec<u8>,
        provider_id: i64,
        rows: &[ClaimRow],
        now: OffsetDateTime,
    ) {
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
}
