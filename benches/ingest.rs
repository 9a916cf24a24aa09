//! End-to-end ingest against a bare load of the same rows, in the same run.
//!
//! For each backend (PostgreSQL when reachable, SQLite) and each input (an 837P of
//! `BENCH_INGEST_CLAIMS` claims with three lines each, default 333,334 ≈ 1 million lines;
//! a line-level CSV of as many lines), the file is ingested through the real pipeline
//! (raw file decrypted, read, mapped, validated, PHI sealed, blind indexes, batched
//! writes, versions, accounting) into a fresh database, then the very same normalized
//! rows are loaded into another fresh database with identical tables and indexes by bare
//! binary `COPY` (PostgreSQL, as superuser, one `COPY` a table in one transaction, the
//! very bytes the pipeline's writer sends) or bare prepared multi-row INSERTs in one
//! transaction (SQLite; a one-row-per-statement loop is several times slower through the
//! driver, so it would flatter the pipeline). The ratio of the two wall times is printed,
//! with the ingest's peak RSS and the CPU seconds of the gateway and of the PostgreSQL
//! server. Each ingest runs in a fresh process (the bench binary again), so its peak RSS
//! is the pipeline's alone; the peak printed is the highest of the runs.
//!
//! Wall times on a shared 2-core machine vary by up to 40 % from run to run, so each pair is
//! run `BENCH_REPEAT` times (default 3), alternating, each on a fresh database after a
//! `CHECKPOINT`, and the fastest of each is compared.
//!
//! Run: `cargo bench --bench ingest`. Environment: `BENCH_INGEST_CLAIMS`, `BENCH_REPEAT`,
//! `BENCH_BACKENDS` (default `postgres,sqlite`), `BENCH_BATCH` (claims a batch; default
//! 2,000, the gateway's), `BENCH_POSTGRES_URL` (admin URL; default
//! `postgres://postgres@127.0.0.1:5432/postgres`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use claimgate::pipeline::{MappingChoice, preview};
use claimgate::protect::ClaimSealer;
use claimgate::store::columns::{CLAIM_COLUMNS, LINE_COLUMNS};
use claimgate::store::{ClaimKey, ClaimRow, pg_copy};
use sqlx::Connection;

mod common;
use common::{
    CSV_MAPPING, Gen837, GenCsv, Timed, backends, cpu_secs, env_u64, ingest, peak_rss_mib,
    reset_peak_rss, target,
};

/// The normalized rows the pipeline stores for `file` (sealed under a fresh key).
fn rows(file: &std::path::Path, mapping: &str) -> Vec<ClaimRow> {
    let sealer = ClaimSealer::new(
        Arc::new(claimgate::crypto::DataKey::generate("acme-bench").unwrap()),
        Arc::new(claimgate::crypto::BlindIndexKey::generate().unwrap()),
    );
    let choice = MappingChoice::resolve(mapping).unwrap();
    let mut out = Vec::new();
    preview(
        &choice,
        std::io::BufReader::new(std::fs::File::open(file).unwrap()),
        &mut |mapped| {
            let key = ClaimKey {
                upload_id: "bare".into(),
                record_no: mapped.position.record as i64,
            };
            out.push(sealer.seal(key, &mapped.claim).unwrap());
        },
        &mut |_| {},
    )
    .unwrap();
    out
}

fn claim_text(r: &ClaimRow) -> Vec<Option<String>> {
    let s = |v: &Option<String>| v.clone();
    let d = |v: Option<time::Date>| v.map(|d| d.to_string());
    let n = |v: Option<i64>| v.map(|n| n.to_string());
    vec![
        Some("1".into()),
        Some(r.key.upload_id.clone()),
        Some(r.key.record_no.to_string()),
        Some(r.source_claim_id.clone()),
        Some(r.claim_type.into()),
        Some(r.frequency_code.clone()),
        s(&r.original_claim_id),
        s(&r.payer_id),
        s(&r.payer_name),
        s(&r.plan),
        s(&r.sex),
        s(&r.state),
        s(&r.billing_npi),
        s(&r.billing_tin),
        s(&r.rendering_npi),
        s(&r.attending_npi),
        s(&r.facility_npi),
        s(&r.bill_type),
        s(&r.place_of_service),
        d(r.statement_from),
        d(r.statement_through),
        d(r.admission_date),
        d(r.discharge_date),
        s(&r.admit_type),
        s(&r.admit_source),
        s(&r.discharge_status),
        s(&r.drg),
        Some(r.diagnoses.clone()),
        Some(r.procedures.clone()),
        n(r.total_charge_cents),
        n(r.paid_cents),
        n(r.allowed_cents),
        Some(r.lines.len().to_string()),
        Some(r.data_key_id.clone()),
    ]
}

/// One binary `COPY … FROM STDIN` of `rows` into `target`, encoded in chunks as it is
/// sent, as the pipeline's writer does.
async fn copy_all(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    target: &str,
    rows: &[ClaimRow],
    encode: impl Fn(&mut Vec<u8>, &[ClaimRow]),
) {
    let mut copy = tx
        .copy_in_raw(&format!("COPY {target} FROM STDIN (FORMAT binary)"))
        .await
        .unwrap();
    let mut buffer = Vec::new();
    pg_copy::header(&mut buffer);
    for chunk in rows.chunks(2_000) {
        encode(&mut buffer, chunk);
        copy.send(buffer.as_slice()).await.unwrap();
        buffer.clear();
    }
    pg_copy::trailer(&mut buffer);
    copy.send(buffer.as_slice()).await.unwrap();
    copy.finish().await.unwrap();
}

/// Bare PostgreSQL load: one binary COPY a table, as superuser, in one transaction.
async fn bare_postgres(url: &str, rows: &[ClaimRow]) -> Timed {
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query("INSERT INTO data_keys (key_id, provider_id, kek_fingerprint, wrapped_key, created_at) VALUES ('acme-bench', 1, 'f', '\\x00', now())")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("INSERT INTO uploads (upload_id, provider_id, sha256, size_bytes, state, received_at) VALUES ('bare', 1, '\\x00', 0, 'done', now())")
        .execute(&mut conn)
        .await
        .unwrap();
    let cpu = cpu_secs();
    let started = Instant::now();
    let mut tx = conn.begin().await.unwrap();
    let now = time::OffsetDateTime::now_utc();
    copy_all(
        &mut tx,
        &format!("claims ({CLAIM_COLUMNS})"),
        rows,
        |out, chunk| pg_copy::claim_rows(out, 1, chunk, now),
    )
    .await;
    copy_all(
        &mut tx,
        &format!("claim_lines ({LINE_COLUMNS})"),
        rows,
        |out, chunk| pg_copy::line_rows(out, 1, chunk),
    )
    .await;
    tx.commit().await.unwrap();
    let timed = Timed::since(started, cpu);
    conn.close().await.unwrap();
    timed
}

/// Bare SQLite load: prepared multi-row INSERTs (500 claims or 1,500 lines a statement,
/// the statements cached by the driver) in one transaction.
async fn bare_sqlite(url: &str, rows: &[ClaimRow]) -> Timed {
    let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
    // The same page cache as the store's connections.
    sqlx::query("PRAGMA cache_size = -32768")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("INSERT INTO data_keys (key_id, provider_id, kek_fingerprint, wrapped_key, created_at) VALUES ('acme-bench', 1, 'f', x'00', '2026-11-27')")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("INSERT INTO uploads (upload_id, provider_id, sha256, size_bytes, state, received_at) VALUES ('bare', 1, x'00', 0, 'done', '2026-11-27')")
        .execute(&mut conn)
        .await
        .unwrap();
    let cpu = cpu_secs();
    let started = Instant::now();
    let mut tx = conn.begin().await.unwrap();
    for chunk in rows.chunks(500) {
        let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(format!(
            "INSERT INTO claims ({CLAIM_COLUMNS}) "
        ));
        insert.push_values(chunk, |mut b, r| {
            for v in claim_text(r) {
                b.push_bind(v);
            }
            for v in r.phi.values() {
                b.push_bind(v.map(<[u8]>::to_vec));
            }
            b.push_bind(r.member_index.clone())
                .push_bind(r.person_index.clone())
                .push_bind("2026-11-27T00:00:00Z")
                .push_bind(r.deid_zip3.clone())
                .push_bind(r.deid_age);
        });
        insert.build().execute(&mut *tx).await.unwrap();
        let lines: Vec<(&ClaimRow, usize)> = chunk
            .iter()
            .flat_map(|r| (0..r.lines.len()).map(move |i| (r, i)))
            .collect();
        for part in lines.chunks(1_500) {
            let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(format!(
                "INSERT INTO claim_lines ({LINE_COLUMNS}) "
            ));
            insert.push_values(part, |mut b, (r, i)| {
                let l = &r.lines[*i];
                b.push_bind(1i64)
                    .push_bind(r.key.upload_id.clone())
                    .push_bind(r.key.record_no)
                    .push_bind(*i as i64 + 1)
                    .push_bind(l.line_number)
                    .push_bind(l.service_from)
                    .push_bind(l.service_through)
                    .push_bind(l.procedure_code.clone())
                    .push_bind(l.modifiers.clone())
                    .push_bind(l.revenue_code.clone())
                    .push_bind(l.ndc.clone())
                    .push_bind(l.units_milli)
                    .push_bind(l.charge_cents)
                    .push_bind(l.paid_cents)
                    .push_bind(l.allowed_cents)
                    .push_bind(l.rendering_npi.clone())
                    .push_bind(l.place_of_service.clone());
            });
            insert.build().execute(&mut *tx).await.unwrap();
        }
    }
    tx.commit().await.unwrap();
    Timed::since(started, cpu)
}

/// One ingest measured in a process of its own.
struct ChildIngest {
    timed: Timed,
    raw_secs: f64,
    records: i64,
    peak_rss_mib: f64,
}

/// The environment variable that makes this binary run one ingest and report it.
const CHILD: &str = "BENCH_INGEST_CHILD";

/// Runs one ingest of `file` into a fresh database `db` in a new process (this binary
/// again), so that its peak RSS is the pipeline's alone, not what the bare loads and
/// earlier ingests left on this process's heap.
fn ingest_in_child(backend: &str, db: &str, file: &std::path::Path, mapping: &str) -> ChildIngest {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .env(CHILD, format!("{backend}\t{db}\t{}", file.display()))
        .env("BENCH_INGEST_MAPPING", mapping)
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "ingest child failed: {}",
        output.status
    );
    let out = String::from_utf8(output.stdout).unwrap();
    let f: Vec<f64> = out.trim().split(' ').map(|v| v.parse().unwrap()).collect();
    ChildIngest {
        timed: Timed {
            secs: f[0],
            own_cpu: f[1],
            server_cpu: f[2],
        },
        raw_secs: f[3],
        records: f[4] as i64,
        peak_rss_mib: f[5],
    }
}

/// The child's side of [`ingest_in_child`]: ingest, print the figures on one line.
async fn child(spec: &str, admin: &str) {
    let mut parts = spec.splitn(3, '\t');
    let (backend, db, file) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        std::path::PathBuf::from(parts.next().unwrap()),
    );
    let mapping = std::env::var("BENCH_INGEST_MAPPING").unwrap();
    let pipeline = target(backend, admin, db).await;
    reset_peak_rss();
    let (timed, raw_secs, records) = ingest(&pipeline, &file, &mapping).await;
    println!(
        "{} {} {} {raw_secs} {records} {}",
        timed.secs,
        timed.own_cpu,
        timed.server_cpu,
        peak_rss_mib()
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let claims = env_u64("BENCH_INGEST_CLAIMS", 333_334);
    let admin = std::env::var("BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    if let Ok(spec) = std::env::var(CHILD) {
        return child(&spec, &admin).await;
    }
    let files = tempfile::tempdir().unwrap();
    let x12 = files.path().join("bench.x12");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&x12).unwrap());
    std::io::copy(&mut Gen837::with_lines(claims, 3), &mut out).unwrap();
    out.flush().unwrap();
    drop(out);
    let csv = files.path().join("bench.csv");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&csv).unwrap());
    let mut gen_csv = GenCsv {
        lines: claims * 3,
        next: 0,
        buf: Vec::new(),
        pos: 0,
        header: false,
    };
    std::io::copy(&mut gen_csv, &mut out).unwrap();
    out.flush().unwrap();
    drop(out);
    let size = |p: &std::path::Path| std::fs::metadata(p).unwrap().len() as f64 / 1e6;
    println!(
        "inputs: 837P {claims} claims x 3 lines ({:.0} MB), CSV {} lines ({:.0} MB); load average {}",
        size(&x12),
        claims * 3,
        size(&csv),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    let backends = backends(&admin).await;
    let repeat = env_u64("BENCH_REPEAT", 3).max(1);
    let inputs = [("837P", &x12, "x12"), ("CSV", &csv, CSV_MAPPING)];
    for backend in &backends {
        for (label, file, mapping) in inputs {
            let db = format!("bench_ingest_{}", label.to_lowercase());
            let rows = rows(file, mapping);
            let mut best_ingest: Option<Timed> = None;
            let mut best_bare: Option<Timed> = None;
            let (mut raw_secs, mut records, mut rss) = (f64::MAX, 0, 0.0_f64);
            for _ in 0..repeat {
                let one = ingest_in_child(backend, &db, file, mapping);
                best_ingest = Some(one.timed.fastest(best_ingest));
                raw_secs = raw_secs.min(one.raw_secs);
                records = one.records;
                rss = rss.max(one.peak_rss_mib);
                let bare_target = target(backend, &admin, &format!("{db}_bare")).await;
                let bare = if *backend == "postgres" {
                    bare_postgres(&bare_target.url, &rows).await
                } else {
                    bare_sqlite(&bare_target.url, &rows).await
                };
                best_bare = Some(bare.fastest(best_bare));
            }
            let best_ingest = best_ingest.unwrap();
            let bare = best_bare.unwrap();
            let lines: usize = rows.iter().map(|r| r.lines.len()).sum();
            let cpu = |t: &Timed| {
                if *backend == "postgres" {
                    format!(
                        "gateway CPU {:.1} s, PostgreSQL CPU {:.1} s",
                        t.own_cpu, t.server_cpu
                    )
                } else {
                    format!("CPU {:.1} s", t.own_cpu)
                }
            };
            println!(
                "{backend} {label}: {records} records ({} claims, {lines} lines), fastest of {repeat}: ingest {:.2} s ({:.0} lines/s; {}), bare {} {:.2} s ({}); ratio {:.2} (goal {}); raw file stored in {raw_secs:.2} s; peak RSS of the ingest {rss:.0} MiB",
                rows.len(),
                best_ingest.secs,
                lines as f64 / best_ingest.secs,
                cpu(&best_ingest),
                if *backend == "postgres" {
                    "binary COPY"
                } else {
                    "prepared multi-row INSERTs"
                },
                bare.secs,
                cpu(&bare),
                best_ingest.secs / bare.secs,
                if *backend == "postgres" {
                    "1.15"
                } else {
                    "1.25"
                },
            );
        }
    }
    println!(
        "load average after: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
}
