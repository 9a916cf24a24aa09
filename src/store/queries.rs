//! Queries whose SQL is the same on both backends (`$N` parameters work on SQLite too).
//!
//! [`portable_queries!`] expands the same bodies once per backend module, so each is
//! type-checked against that backend's driver; only connection set-up and features that
//! exist on one backend alone (roles, row-level security) are written per backend.

/// Expands the portable queries for one pool type and its row type.
macro_rules! portable_queries {
    ($pool:ty, $row:ty) => {
        use sqlx::Row as _;
        use time::OffsetDateTime;

        use $crate::authz::{KeyId, KeyRecord, Principal};
        use $crate::providers::{Provider, ProviderCode, ProviderName};
        use $crate::store::{NewPrincipal, StoreError, roles_from};

        pub(super) async fn applied_migrations(pool: &$pool) -> Result<Vec<i64>, sqlx::Error> {
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
                .fetch_all(pool)
                .await
        }

        fn provider_from(row: &$row) -> Result<Provider, StoreError> {
            let code: String = row.try_get("code")?;
            Ok(Provider {
                code: ProviderCode::parse(&code)
                    .map_err(|_| StoreError::Database("stored provider code is invalid".into()))?,
                name: row.try_get("name")?,
                created_at: row.try_get("created_at")?,
                disabled: row.try_get::<Option<OffsetDateTime>, _>("disabled_at")?.is_some(),
            })
        }

        pub(super) async fn create_provider(
            pool: &$pool,
            code: &ProviderCode,
            name: &ProviderName,
            now: OffsetDateTime,
        ) -> Result<Provider, StoreError> {
            let row = sqlx::query(
                "INSERT INTO providers (code, name, created_at) VALUES ($1, $2, $3) \
                 RETURNING code, name, created_at, disabled_at",
            )
            .bind(code.as_str())
            .bind(name.as_str())
            .bind(now)
            .fetch_one(pool)
            .await?;
            provider_from(&row)
        }

        pub(super) async fn list_providers(pool: &$pool) -> Result<Vec<Provider>, StoreError> {
            sqlx::query("SELECT code, name, created_at, disabled_at FROM providers ORDER BY code")
                .fetch_all(pool)
                .await?
                .iter()
                .map(provider_from)
                .collect()
        }

        pub(super) async fn provider(
            pool: &$pool,
            code: &ProviderCode,
        ) -> Result<Option<Provider>, StoreError> {
            sqlx::query("SELECT code, name, created_at, disabled_at FROM providers WHERE code = $1")
                .bind(code.as_str())
                .fetch_optional(pool)
                .await?
                .as_ref()
                .map(provider_from)
                .transpose()
        }

        pub(super) async fn count_principals(pool: &$pool) -> Result<i64, StoreError> {
            Ok(sqlx::query_scalar("SELECT count(*) FROM principals").fetch_one(pool).await?)
        }

        pub(super) async fn create_principal(
            pool: &$pool,
            new: &NewPrincipal<'_>,
            now: OffsetDateTime,
        ) -> Result<i64, StoreError> {
            let mut tx = pool.begin().await?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO principals (name, kind, created_at) VALUES ($1, $2, $3) RETURNING id",
            )
            .bind(new.name)
            .bind(new.kind.as_str())
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            for role in new.roles {
                sqlx::query("INSERT INTO role_grants (principal_id, role, granted_at) VALUES ($1, $2, $3)")
                    .bind(id)
                    .bind(role.as_str())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(
                "INSERT INTO api_keys (key_id, principal_id, secret_hash, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(new.key.id.as_str())
            .bind(id)
            .bind(&new.key.secret_hash)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(id)
        }

        pub(super) async fn api_key(pool: &$pool, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
            let Some(row) = sqlx::query(
                "SELECT k.secret_hash, k.expires_at, k.revoked_at, p.id, p.name, p.disabled_at \
                 FROM api_keys k JOIN principals p ON p.id = k.principal_id WHERE k.key_id = $1",
            )
            .bind(id.as_str())
            .fetch_optional(pool)
            .await?
            else {
                return Ok(None);
            };
            let principal_id: i64 = row.try_get("id")?;
            let roles: Vec<String> = sqlx::query_scalar(
                "SELECT role FROM role_grants WHERE principal_id = $1 AND provider_id IS NULL",
            )
            .bind(principal_id)
            .fetch_all(pool)
            .await?;
            Ok(Some(KeyRecord {
                principal: Principal {
                    id: principal_id,
                    name: row.try_get("name")?,
                    roles: roles_from(roles),
                },
                secret_hash: row.try_get("secret_hash")?,
                expires_at: row.try_get("expires_at")?,
                revoked: row.try_get::<Option<OffsetDateTime>, _>("revoked_at")?.is_some(),
                principal_disabled: row.try_get::<Option<OffsetDateTime>, _>("disabled_at")?.is_some(),
            }))
        }
    };
}

pub(super) use portable_queries;
