//! Audit appends per second on each backend: one writer, then 8 concurrent writers (the
//! chain serialises them). Run: `cargo bench --bench audit_append`. Environment:
//! `BENCH_APPENDS` (default 2000), `CLAIMGATE_TEST_POSTGRES_URL` (an admin URL; default
//! `postgres://postgres@127.0.0.1:5432/postgres`; unreachable, PostgreSQL is skipped).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::Instant;

use claimgate::audit::{AuditEvent, EventKind, Outcome};
use claimgate::config::Settings;
use claimgate::store::Store;
use sqlx::Connection;

fn event(n: u64) -> AuditEvent {
    let mut event = AuditEvent::new(EventKind::PhiRead, Outcome::Success);
    event.actor = Some(7);
    event.provider = Some("acme".into());
    event.resource = Some("claims".into());
    event.records = Some(n);
    event.phi = true;
    event
}

async fn measure(name: &str, store: &Store, appends: u64) {
    let started = Instant::now();
    for n in 0..appends {
        store.append_audit(&event(n)).await.unwrap();
    }
    let one = appends as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let writers: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for n in 0..appends / 8 {
                    store.append_audit(&event(n)).await.unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let eight = (appends / 8 * 8) as f64 / started.elapsed().as_secs_f64();
    let events = store.audit_events().await.unwrap();
    claimgate::audit::verify_chain(&events).unwrap();
    println!(
        "{name}: {one:.0} appends/s with one writer, {eight:.0} appends/s with 8 concurrent writers ({} events, chain verified)",
        events.len()
    );
}

fn settings(dir: &std::path::Path, url: Option<&str>) -> Settings {
    let mut env = vec![("CLAIMGATE_DATA_DIR".to_owned(), dir.display().to_string())];
    if let Some(url) = url {
        env.push(("CLAIMGATE_DATABASE__URL".into(), url.into()));
    }
    Settings::load(None, env).unwrap()
}

#[tokio::main]
async fn main() {
    let appends: u64 = std::env::var("BENCH_APPENDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let dir = tempfile::tempdir().unwrap();
    let sqlite = Store::connect(&settings(dir.path(), None).database)
        .await
        .unwrap();
    sqlite.migrate().await.unwrap();
    measure("sqlite (WAL, synchronous=FULL)", &sqlite, appends).await;

    let admin = std::env::var("CLAIMGATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await else {
        println!("postgres: skipped (not reachable at {admin})");
        return;
    };
    let name = format!("claimgate_bench_{}", std::process::id());
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let mut url = url::Url::parse(&admin).unwrap();
    url.set_path(&name);
    let pg = Store::connect(&settings(dir.path(), Some(url.as_str())).database)
        .await
        .unwrap();
    pg.migrate().await.unwrap();
    measure(
        "postgres (as claimgate_api, appends as claimgate_audit_writer)",
        &pg,
        appends,
    )
    .await;
    drop(pg);
    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await;
}
