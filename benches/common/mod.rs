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

/// Resets the process's peak RSS (Linux: `echo 5 > /proc/self/clear_refs`).
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The process's peak RSS in MiB (`VmHWM`).
pub fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// CPU seconds (user and system) used so far by this process, and by the local
/// PostgreSQL server: every process named `postgres`, with the children they reaped
/// (so backends that already exited are counted in the postmaster's total).
pub fn cpu_secs() -> (f64, f64) {
    // Linux reports these in USER_HZ ticks, 100 a second on every platform it supports.
    fn ticks(stat: &str, children: bool) -> Option<u64> {
        let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split(' ').collect();
        let take = if children { 11..15 } else { 11..13 };
        fields
            .get(take)?
            .iter()
            .map(|f| f.parse::<u64>().ok())
            .sum()
    }
    let own = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| ticks(&s, false))
        .unwrap_or(0);
    let mut server = 0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if stat.contains(" (postgres) ") {
            server += ticks(&stat, true).unwrap_or(0);
        }
    }
    (own as f64 / 100.0, server as f64 / 100.0)
}
