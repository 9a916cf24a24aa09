//! Generators and helpers shared by the benchmarks (not a benchmark itself).
#![allow(dead_code)]

use std::io::Read;
use std::sync::Arc;
use std::time::Instant;

use claimgate::audit::{AuditEvent, EventKind, Outcome};
use claimgate::authz::ProviderAdmin;
use claimgate::config::Settings;
use claimgate::crypto::MasterKey;
use claimgate::ingest::{Metrics, Runner, RunnerSettings};
use claimgate::keyring::Keyring;
use claimgate::providers::{ProviderCode, ProviderName};
use claimgate::raw_store::RawStore;
use claimgate::store::{NewUpload, Store};
use sqlx::Connection;

/// The backends `BENCH_BACKENDS` names (default `postgres,sqlite`); PostgreSQL only if
/// `admin` answers.
pub async fn backends(admin: &str) -> Vec<&'static str> {
    let wanted = std::env::var("BENCH_BACKENDS").unwrap_or_else(|_| "postgres,sqlite".into());
    let mut backends = vec![];
    if wanted.contains("postgres") {
        if sqlx::PgConnection::connect(admin).await.is_ok() {
            backends.push("postgres");
        } else {
            println!("PostgreSQL not reachable at BENCH_POSTGRES_URL: SQLite only");
        }
    }
    if wanted.contains("sqlite") {
        backends.push("sqlite");
    }
    backends
}

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

/// A fresh database (PostgreSQL under `admin`, or a SQLite file) with provider `acme`.
pub struct Target {
    pub settings: Settings,
    pub url: String,
    _dir: tempfile::TempDir,
}

pub async fn target(backend: &str, admin: &str, name: &str) -> Target {
    let dir = tempfile::tempdir().unwrap();
    let url = if backend == "postgres" {
        let mut conn = sqlx::PgConnection::connect(admin).await.unwrap();
        for sql in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .unwrap();
        }
        // Dirty pages of earlier runs are written out now, not during this one.
        sqlx::raw_sql("CHECKPOINT")
            .execute(&mut conn)
            .await
            .unwrap();
        let mut url = url::Url::parse(admin).unwrap();
        url.set_path(&format!("/{name}"));
        url.to_string()
    } else {
        format!("sqlite://{}/bench.db", dir.path().display())
    };
    let env = vec![
        (
            "CLAIMGATE_DATA_DIR".to_owned(),
            dir.path().display().to_string(),
        ),
        ("CLAIMGATE_DATABASE__URL".to_owned(), url.clone()),
        (
            "CLAIMGATE_INGEST__BATCH_CLAIMS".to_owned(),
            std::env::var("BENCH_BATCH").unwrap_or_else(|_| "2000".into()),
        ),
    ];
    let settings = Settings::load(None, env).unwrap();
    let store = Store::connect(&settings.database).await.unwrap();
    store.migrate().await.unwrap();
    store
        .create_provider(
            &ProviderAdmin::operator_console(),
            &ProviderCode::parse("acme").unwrap(),
            &ProviderName::parse("Acme").unwrap(),
            &AuditEvent::new(EventKind::ProviderCreated, Outcome::Success),
        )
        .await
        .unwrap();
    Target {
        settings,
        url,
        _dir: dir,
    }
}

/// One timed run: wall seconds, and CPU seconds of this process and of PostgreSQL.
#[derive(Debug, Clone, Copy)]
pub struct Timed {
    pub secs: f64,
    pub own_cpu: f64,
    pub server_cpu: f64,
}

impl Timed {
    pub fn since(started: Instant, (own, server): (f64, f64)) -> Timed {
        let (own_now, server_now) = cpu_secs();
        Timed {
            secs: started.elapsed().as_secs_f64(),
            own_cpu: own_now - own,
            server_cpu: server_now - server,
        }
    }

    pub fn fastest(self, other: Option<Timed>) -> Timed {
        match other {
            Some(o) if o.secs < self.secs => o,
            _ => self,
        }
    }
}

/// Ingests `file` through the pipeline; returns (the processing run, seconds to store
/// the raw file, records read).
pub async fn ingest(target: &Target, file: &std::path::Path, mapping: &str) -> (Timed, f64, i64) {
    let store = Store::connect(&target.settings.database).await.unwrap();
    let provider = ProviderCode::parse("acme").unwrap();
    store
        .assign_mapping_from_console(
            &ProviderAdmin::operator_console(),
            &provider,
            mapping,
            &AuditEvent::new(EventKind::MappingActivated, Outcome::Success),
        )
        .await
        .unwrap();
    let kek = Arc::new(
        MasterKey::load(
            &target.settings.keys.master_key,
            claimgate::config::Profile::Dev,
        )
        .unwrap(),
    );
    let keyring = Arc::new(Keyring::new(store.clone(), kek));
    let raw = Arc::new(
        RawStore::new(
            &target.settings.ingest.raw_dir,
            store.clone(),
            keyring.clone(),
        )
        .unwrap(),
    );
    let started = Instant::now();
    let stored = raw
        .put(
            &provider,
            std::io::BufReader::new(std::fs::File::open(file).unwrap()),
        )
        .await
        .unwrap();
    let (upload, _) = store
        .create_upload(
            &provider,
            &NewUpload {
                upload_id: &stored.file_id,
                submitted_by: None,
                sha256: &[0; 32],
                size_bytes: stored.plaintext_bytes as i64,
                idempotency_key: None,
                interchange: None,
            },
            &AuditEvent::new(EventKind::UploadReceived, Outcome::Success),
        )
        .await
        .unwrap();
    let raw_secs = started.elapsed().as_secs_f64();
    let runner = Runner {
        store: store.clone(),
        keyring,
        raw,
        metrics: Arc::new(Metrics::default()),
        settings: RunnerSettings {
            batch_claims: target.settings.ingest.batch_claims,
            lease: target.settings.ingest.lease,
        },
    };
    let cpu = cpu_secs();
    let started = Instant::now();
    let job = store
        .claim_upload("bench", runner.settings.lease, Some(&upload.upload_id))
        .await
        .unwrap()
        .unwrap();
    let ending = runner.run(&job, "bench", None).await.unwrap();
    let timed = Timed::since(started, cpu);
    assert_eq!(ending, claimgate::ingest::Ending::Done);
    let row = store
        .upload(Some(&provider), &upload.upload_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.counts.rejected, 0);
    (timed, raw_secs, row.counts.records)
}
