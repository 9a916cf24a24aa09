//! # claimgate
//!
//! A HIPAA-oriented ingestion gateway for healthcare claims: it receives claim files over
//! TLS only, maps each provider's shape onto one normalized claim model, encrypts the PHI,
//! stores the result with database-level role separation and records every action in a
//! tamper-evident audit trail.
//!
//! ```text
//!  intake ──► raw store ──► job queue ──► read ──► map ──► clean/validate ──► protect ──► store ──► finish
//! ```
//!
//! What exists so far: settings ([`config`]), the TLS-only HTTPS listener and its start-up
//! ([`app`]), the HTTP API with one route table, one error type and one request guard
//! ([`api`]), principals, keys, the casbin policy and capabilities ([`authz`]), the
//! hash-chained audit trail ([`audit`]), keys ([`crypto`]), provider tenants
//! ([`providers`]), the store over SQLite and PostgreSQL ([`store`]), and the read → map →
//! validate pipeline ([`formats`], [`mapping`], [`claims`], [`pipeline`]).
//! `docs/architecture.md` keeps the module map.

pub mod api;
pub mod app;
pub mod audit;
pub mod authz;
pub mod claims;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod deid;
pub mod export;
pub mod findings;
pub mod formats;
pub mod ingest;
pub mod keyring;
pub mod mapping;
pub mod pipeline;
pub mod protect;
pub mod providers;
pub mod raw_store;
pub mod sftp;
pub mod store;
pub mod telemetry;
