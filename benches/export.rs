//! The wide claim-line export against PostgreSQL's own `COPY (SELECT …) TO STDOUT` of the
//! same rows, in the same run.
//!
//! An 837P of `BENCH_EXPORT_CLAIMS` claims with three lines each (default 333,334 ≈ 1
//! million lines) is ingested through the real pipeline into a fresh database; then the
//! de-identified export (the analyst path: through the analyst view on PostgreSQL, as
//! `claimgate_analyst`) is written to a file as Parquet and as CSV, and, on PostgreSQL,
//! the very query it runs is drained as text by `COPY (…) TO STDOUT` under the same role
//! and settings: the database's own cost of producing those rows. Each is run
//! `BENCH_REPEAT` times (default 3) and the fastest compared; the first export of a
//! configuration also draws its pseudonyms, timed on its own. Peak RSS is measured
//! around each export alone. One identified Parquet export (every member column opened)
//! is timed too.
//!
//! Run: `cargo bench --bench export`. Environment: `BENCH_EXPORT_CLAIMS`, `BENCH_REPEAT`,
//! `BENCH_BACKENDS` (default `postgres,sqlite`), `BENCH_POSTGRES_URL` (admin URL; default
//! `postgres://postgres@127.0.0.1:5432/postgres`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use claimgate::audit::{AuditEvent, EventKind, Outcome, Purpose};
use claimgate::authz::{ExportAccess, PhiAccess};
use claimgate::crypto::MasterKey;
use claimgate::export::{Export, ExportRequest, Format};
use claimgate::keyring::Keyring;
use claimgate::providers::ProviderCode;
use claimgate::store::{ExportSelection, Store};
use futures_util::TryStreamExt as _;
use sqlx::Connection;

mod common;
use common::{
    Gen837, Target, Timed, backends, cpu_secs, env_u64, ingest, peak_rss_mib, reset_peak_rss,
    target,
};

/// One export to a file: its start (audit, pseudonyms) and its writing, timed apart.
struct Measured {
    start_secs: f64,
    write: Timed,
    lines: u64,
    bytes: u64,
    rss_mib: f64,
    rss_before_mib: f64,
}

async fn export(
    target: &Target,
    keyring: &Arc<Keyring>,
    format: Format,
    identified: bool,
    out: &std::path::Path,
) -> Measured {
    let store = Store::connect(&target.settings.database).await.unwrap();
    let provider = ProviderCode::parse("acme").unwrap();
    let (access, kind) = if identified {
        (
            ExportAccess::Identified(PhiAccess {
                provider,
                break_glass: false,
            }),
            EventKind::PhiRead,
        )
    } else {
        (
            ExportAccess::Deidentified(provider),
            EventKind::ClaimsExported,
        )
    };
    let mut event = AuditEvent::new(kind, Outcome::Success);
    event.purpose = identified.then_some(Purpose::Operations);
    let request = ExportRequest {
        format,
        identified,
        configuration: "default".into(),
        selection: ExportSelection::default(),
    };
    reset_peak_rss();
    let rss_before_mib = peak_rss_mib();
    let started = Instant::now();
    let export = Export::start(store, keyring.clone(), access, request, &event)
        .await
        .unwrap();
    let start_secs = started.elapsed().as_secs_f64();
    let cpu = cpu_secs();
    let started = Instant::now();
    let file = std::fs::File::create(out).unwrap();
    let (file, summary) = export
        .write_to(file, Arc::new(AtomicU64::new(0)))
        .await
        .unwrap();
    let write = Timed::since(started, cpu);
    drop(file);
    Measured {
        start_secs,
        write,
        lines: summary.lines,
        bytes: std::fs::metadata(out).unwrap().len(),
        rss_mib: peak_rss_mib(),
        rss_before_mib,
    }
}

/// PostgreSQL's own text `COPY` of the export's query, as the analyst role with the same
/// settings, drained to nothing; returns the time and the bytes.
async fn bare_copy(url: &str) -> (Timed, u64) {
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let upto: i64 = sqlx::query_scalar("SELECT max(id) FROM claims")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let cpu = cpu_secs();
    let started = Instant::now();
    let mut tx = conn.begin().await.unwrap();
    // The export's session: tenant, selection, configuration, no parallel workers, the
    // analyst role.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "SELECT set_config('app.provider_id', (SELECT id::text FROM providers WHERE code = 'acme'), true), \
         set_config('app.export_configuration', 'default', true), \
         set_config('app.export_upto', '{upto}', true), set_config('app.export_history', 'off', true), \
         set_config('app.export_upload', '', true), set_config('app.export_from', '', true), \
         set_config('app.export_to', '', true); \
         SET LOCAL max_parallel_workers_per_gather = 0; SET LOCAL ROLE claimgate_analyst"
    )))
    .execute(&mut *tx)
    .await
    .unwrap();
    // The export's statement with its parameters as literals: provider 1, every claim up
    // to `upto`, final action only, no upload or date filter.
    let sql = format!(
        "COPY (SELECT * FROM analyst_claim_lines WHERE provider_id = 1 AND version_id <= {upto} \
         AND (false OR (current_version AND frequency_code <> '8')) \
         AND (NULL::text IS NULL OR upload_id = NULL::text) \
         AND (NULL::date IS NULL OR coalesce(service_from, statement_from) >= NULL::date) \
         AND (NULL::date IS NULL OR coalesce(service_from, statement_from) <= NULL::date)) TO STDOUT"
    );
    let mut bytes = 0u64;
    {
        let mut stream = tx.copy_out_raw(&sql).await.unwrap();
        while let Some(chunk) = stream.try_next().await.unwrap() {
            bytes += chunk.len() as u64;
        }
    }
    tx.rollback().await.unwrap();
    (Timed::since(started, cpu), bytes)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_owned()
}

async fn run() {
    let claims = env_u64("BENCH_EXPORT_CLAIMS", 333_334);
    let repeat = env_u64("BENCH_REPEAT", 3).max(1);
    let admin = std::env::var("BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let files = tempfile::tempdir().unwrap();
    let x12 = files.path().join("bench.x12");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&x12).unwrap());
    std::io::copy(&mut Gen837::with_lines(claims, 3), &mut out).unwrap();
    out.flush().unwrap();
    drop(out);
    println!(
        "input: 837P {claims} claims x 3 lines; load average {}",
        load_average()
    );
    let backends = backends(&admin).await;
    for backend in backends {
        let target = target(backend, &admin, "bench_export").await;
        let (ingested, _, records) = ingest(&target, &x12, "x12").await;
        println!(
            "{backend}: ingested {records} claims in {:.1} s",
            ingested.secs
        );
        let store = Store::connect(&target.settings.database).await.unwrap();
        let kek = Arc::new(
            MasterKey::load(
                &target.settings.keys.master_key,
                claimgate::config::Profile::Dev,
            )
            .unwrap(),
        );
        let keyring = Arc::new(Keyring::new(store, kek));
        let mut first_start = None;
        for format in [Format::Parquet, Format::Csv] {
            let out = files.path().join(format!("export.{}", format.extension()));
            let mut best: Option<Measured> = None;
            for _ in 0..repeat {
                let m = export(&target, &keyring, format, false, &out).await;
                first_start.get_or_insert(m.start_secs);
                if best.as_ref().is_none_or(|b| m.write.secs < b.write.secs) {
                    best = Some(m);
                }
            }
            let best = best.unwrap();
            let mut line = format!(
                "{backend} de-identified {}: {} lines in {:.2} s ({:.0} lines/s; CPU {:.1} s here{}), {:.0} MB, peak RSS {:.0} MiB (from {:.0} MiB before it)",
                format.extension(),
                best.lines,
                best.write.secs,
                best.lines as f64 / best.write.secs,
                best.write.own_cpu,
                if backend == "postgres" {
                    format!(", {:.1} s PostgreSQL", best.write.server_cpu)
                } else {
                    String::new()
                },
                best.bytes as f64 / 1e6,
                best.rss_mib,
                best.rss_before_mib
            );
            if backend == "postgres" {
                let mut bare: Option<(Timed, u64)> = None;
                for _ in 0..repeat {
                    let b = bare_copy(&target.url).await;
                    if bare.as_ref().is_none_or(|x| b.0.secs < x.0.secs) {
                        bare = Some(b);
                    }
                }
                let (bare, bytes) = bare.unwrap();
                line.push_str(&format!(
                    "; COPY (SELECT …) TO STDOUT {:.2} s ({:.0} lines/s, {:.0} MB of text); ratio {:.2} (goal 1.5)",
                    bare.secs,
                    best.lines as f64 / bare.secs,
                    bytes as f64 / 1e6,
                    best.write.secs / bare.secs
                ));
            }
            println!("{line}");
        }
        println!(
            "{backend}: the first de-identified export started in {:.2} s (drawing the configuration's pseudonyms); later ones start at once",
            first_start.unwrap_or(f64::NAN)
        );
        let out = files.path().join("identified.parquet");
        let m = export(&target, &keyring, Format::Parquet, true, &out).await;
        println!(
            "{backend} identified parquet: {} lines in {:.2} s ({:.0} lines/s, member columns opened), recorded as a disclosure in {:.2} s, peak RSS {:.0} MiB (from {:.0} MiB)",
            m.lines,
            m.write.secs,
            m.lines as f64 / m.write.secs,
            m.start_secs,
            m.rss_mib,
            m.rss_before_mib
        );
    }
    println!("load average after: {}", load_average());
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}
