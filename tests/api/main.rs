//! Integration tests: the real gateway on port 0, real TLS clients, real SQLite files and
//! real PostgreSQL databases (a fresh one per test).
//!
//! PostgreSQL tests use `CLAIMGATE_TEST_POSTGRES_URL` (an admin URL; default
//! `postgres://postgres@127.0.0.1:5432/postgres`). When the server cannot be reached they
//! are skipped and say so on standard error, unless `CLAIMGATE_TEST_REQUIRE_POSTGRES=1`, which
//! turns a skip into a failure (CI sets it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod helpers;

mod access;
mod audit;
mod claim_store;
mod config;
mod crash;
mod exports;
mod faults;
mod http;
mod ingest;
mod keys;
mod leak;
mod load;
mod mappings;
mod postgres_roles;
mod raw_store;
mod readiness;
mod sftp;
mod startup;
mod store;
mod tls;
