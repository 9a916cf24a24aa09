//! The PostgreSQL backend: connection set-up, then the portable queries.

use std::str::FromStr;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::config::DatabaseSettings;

/// Connects a pool; fails if the server does not answer within the acquire timeout.
pub(super) async fn connect(url: &str, settings: &DatabaseSettings) -> Result<PgPool, sqlx::Error> {
    let options = PgConnectOptions::from_str(url)?.application_name("claimgate");
    PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        .connect_with(options)
        .await
}

super::queries::portable_queries!(PgPool, sqlx::postgres::PgRow);
