//! Queries whose SQL is the same on both backends (`$N` parameters work on SQLite too).
//!
//! [`portable_queries!`] expands the same bodies once per backend module, so each is
//! type-checked against that backend's driver; only connection set-up and features that
//! exist on one backend alone (roles, row-level security) are written per backend.

/// The provider columns `provider_from` reads, for `concat!` into every provider query.
macro_rules! provider_columns {
    () => {
        "code, name, created_at, disabled_at, interchange_control"
    };
}

/// Expands the portable queries for one pool type and its row type.
macro_rules! portable_queries {
    ($pool:ty, $row:ty, $db:ty) => {
        use sqlx::Row as _;
        use time::OffsetDateTime;

        use $crate::audit::{AuditEvent, Appended, Checkpoint, GENESIS_HASH, Journal, chain_hash};
        use $crate::authz::{Grant, KeyId, KeyRecord, Principal, PrincipalKind, Role};
        use $crate::formats::x12::InterchangeId;
        use $crate::providers::{InterchangeControl, Provider, ProviderCode, ProviderName};
        use $crate::store::{
            Batch, BatchTurn, ClaimDetail, ExportClaim, ExportSealed, ExportSelection, ExportStart, ExportView, ClaimKey, ClaimVersion, DisclosureRow, LineRow, CredentialKind, NewCredential, ClaimRow, ClaimSummary, IndexColumn, KeyView, NewDataKey, NewGrant,
            NewKey, NewPrincipal, NewRawFile, NewUpload, PrincipalView, RejectRow, SealedFileKey, SealedPhi,
            StoreError, StoredAuditEvent, StoredDataKey, StoredPhi, UploadCounts, UploadRow,
        };

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
                interchange_control: InterchangeControl::parse(row.try_get("interchange_control")?)
                    .ok_or_else(|| StoreError::Database("stored interchange policy is invalid".into()))?,
            })
        }

        pub(super) async fn create_provider(
            pool: &$pool,
            code: &ProviderCode,
            name: &ProviderName,
            interchange_control: InterchangeControl,
            audit: &AuditEvent,
            journal: &Journal,
            now: OffsetDateTime,
        ) -> Result<Provider, StoreError> {
            let mut tx = begin_write(pool).await?;
            let row = sqlx::query(
                concat!(
                    "INSERT INTO providers (code, name, created_at, interchange_control) \
                     VALUES ($1, $2, $3, $4) RETURNING ",
                    super::queries::provider_columns!()
                ),
            )
            .bind(code.as_str())
            .bind(name.as_str())
            .bind(now)
            .bind(interchange_control.as_str())
            .fetch_one(&mut *tx)
            .await?;
            finish(tx, audit, journal, now).await?;
            provider_from(&row)
        }

        pub(super) async fn list_providers(pool: &$pool) -> Result<Vec<Provider>, StoreError> {
            sqlx::query(concat!("SELECT ", super::queries::provider_columns!(), " FROM providers ORDER BY code"))
                .fetch_all(pool)
                .await?
                .iter()
                .map(provider_from)
                .collect()
        }

        /// Disables a provider (new files are refused from now on), audited; disabling a
        /// disabled provider keeps its first time.
        pub(super) async fn disable_provider(
            pool: &$pool,
            code: &ProviderCode,
            audit: &AuditEvent,
            journal: &Journal,
            now: OffsetDateTime,
        ) -> Result<Provider, StoreError> {
            let mut tx = begin_write(pool).await?;
            let row = sqlx::query(
                concat!(
                    "UPDATE providers SET disabled_at = coalesce(disabled_at, $2) WHERE code = $1 RETURNING ",
                    super::queries::provider_columns!()
                ),
            )
            .bind(code.as_str())
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::UnknownProvider)?;
            finish(tx, audit, journal, now).await?;
            provider_from(&row)
        }

        /// Sets a provider's interchange control-number policy, audited.
        pub(super) async fn set_interchange_control(
            pool: &$pool,
            code: &ProviderCode,
            policy: InterchangeControl,
            audit: &AuditEvent,
            journal: &Journal,
            now: OffsetDateTime,
        ) -> Result<Provider, StoreError> {
            let mut tx = begin_write(pool).await?;
            let row = sqlx::query(
                concat!(
                    "UPDATE providers SET interchange_control = $2 WHERE code = $1 RETURNING ",
                    super::queries::provider_columns!()
                ),
            )
            .bind(code.as_str())
            .bind(policy.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::UnknownProvider)?;
            finish(tx, audit, journal, now).await?;
            provider_from(&row)
        }

        pub(super) async fn provider(
            pool: &$pool,
            code: &ProviderCode,
        ) -> Result<Option<Provider>, StoreError> {
            sqlx::query(concat!("SELECT ", super::queries::provider_columns!(), " FROM providers WHERE code = $1"))
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

        async fn principal_id(
            tx: &mut sqlx::Transaction<'_, $db>,
            name: &str,
        ) -> Result<i64, StoreError> {
            sqlx::query_scalar("SELECT id FROM principals WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut **tx)
                .await?
                .ok_or(StoreError::NotFound)
        }

        async fn insert_grant(
            tx: &mut sqlx::Transaction<'_, $db>,
            principal_id: i64,
            grant: &NewGrant<'_>,
            now: OffsetDateTime,
        ) -> Result<(), StoreError> {
            let provider_id: Option<i64> = match grant.provider {
                Some(code) => Some(
                    sqlx::query_scalar("SELECT id FROM providers WHERE code = $1")
                        .bind(code.as_str())
                        .fetch_optional(&mut **tx)
                        .await?
                        .ok_or(StoreError::UnknownProvider)?,
                ),
                None => None,
            };
            sqlx::query(
                "INSERT INTO role_grants (principal_id, role, provider_id, granted_at, granted_by, \
                 expires_at, break_glass, sealed_reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(principal_id)
            .bind(grant.role.as_str())
            .bind(provider_id)
            .bind(now)
            .bind(grant.granted_by)
            .bind(grant.expires_at)
            .bind(grant.break_glass)
            .bind(grant.sealed_reason)
            .execute(&mut **tx)
            .await?;
            Ok(())
        }

        async fn insert_key(
            tx: &mut sqlx::Transaction<'_, $db>,
            principal_id: i64,
            key: &NewKey<'_>,
            now: OffsetDateTime,
        ) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO api_keys (key_id, principal_id, secret_hash, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(key.key.id.as_str())
            .bind(principal_id)
            .bind(&key.key.secret_hash)
            .bind(now)
            .bind(key.expires_at)
            .execute(&mut **tx)
            .await?;
            Ok(())
        }

        pub(super) async fn create_principal(
            pool: &$pool,
            new: &NewPrincipal<'_>,
            audit: &AuditEvent,
            journal: &Journal,
            now: OffsetDateTime,
        ) -> Result<i64, StoreError> {
            let mut tx = begin_write(pool).await?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO principals (name, kind, created_at) VALUES ($1, $2, $3) RETURNING id",
            )
            .bind(new.name)
            .bind(new.kind.as_str())
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            for grant in new.grants {
                insert_grant(&mut tx, id, grant, now).await?;
            }
            if let Some(key) = &new.key {
                insert_key(&mut tx, id, key, now).await?;
            }
            finish(tx, audit, journal, now).await?;
            Ok(id)
        }

        pub(super) async fn add_grant(
            pool: &$pool,
            name: &str,
            grant: &NewGrant<'_>,
            audit: &AuditEvent,
            journal: &Journal,
            now: OffsetDateTime,
        ) -> Result<(), StoreError> {
            let mut tx = begin_write(pool).await?;
            let id = principal_id(&mut tx, name).await?;
            insert_grant(&mut tx, id, grant, now).await?;
            finish(tx, audit, journal, now).await
        }

        pub(super) async fn revoke_grant(
            pool: &$pool,
            name: &str,
            role: Role,
            provider: Option<&ProviderCode>,
            audit: &AuditEvent,
            journal: &Journal,
            now: OffsetDateTime,
        ) -> Result<(), StoreError> {
            let mut tx = begin_write(pool).await?;
            let id = principal_id(&mut tx, name).await?;
            let done = sqlx::query(
                "DELETE FROM role_grants WHERE principal_id = $1 AND role = $2 AND \
                 coalesce(provider_id, 0) = coalesce((SELECT id FROM providers WHERE code = $3), 0) \
                 AND ($3 IS NOT NULL OR provider_id IS NULL)",
            )
            .bind(id)
            .bind(role.as_str())
            .bind(provider.map(ProviderCode::as_str))
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            finish(tx, audit, journal, now).await
        }

        pub(super) async fn disable_principal(
            pool: &$pool,
            name: &str,
            audit: &AuditEvent,
            journal: &Journal,
            now: OffsetDateTime,
        ) -> Result<(), StoreError> {
            let mut tx = begin_write(pool).await?;
            let done = sqlx::query(
                "UPDATE principals SET disabled_at = coalesce(disabled_at, $2) WHERE name = $1",
            )
            .bind(name)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            finish(tx, audit, journal, now).await
        }

        pub(super) async fn add_key(
            pool: &$pool,
            name: &str,
            key: &NewKey<'_>,
            audit: &AuditEvent,
            journal: &Journal,
            now: OffsetDateTime,
        ) -> Result<(), StoreError> {
            let mut tx = begin_write(pool).await?;
            let id = principal_id(&mut tx, name).await?;
            insert_key(&mut tx, id, key, now).await?;
            finish(tx, audit, journal, now).await
        }

        pub(super) async fn revoke_key(
            pool: &$pool,
            key_id: &KeyId,
            audit: &AuditEvent,
            journal: &Journal,
            now: OffsetDateTime,
        ) -> Result<(), StoreError> {
            let mut tx = begin_write(pool).await?;
            let done = sqlx::query(
                "UPDATE api_keys SET revoked_at = coalesce(revoked_at, $2) WHERE key_id = $1",
            )
            .bind(key_id.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            finish(tx, audit, journal, now).await
        }

        pub(super) async fn add_credential(
            pool: &$pool,
            name: &str,
            credential: &NewCredential<'_>,
            audit: &AuditEvent,
            journal: &Journal,
            now: OffsetDateTime,
        ) -> Result<(), StoreError> {
            let mut tx = begin_write(pool).await?;
            let id = principal_id(&mut tx, name).await?;
            let insert = match credential {
                NewCredential::Certificate { fingerprint } => sqlx::query(
                    "INSERT INTO client_certificates (fingerprint, principal_id, created_at) VALUES ($1, $2, $3)",
                )
                .bind(*fingerprint)
                .bind(id)
                .bind(now),
                NewCredential::SshKey { fingerprint, algorithm, public_key } => sqlx::query(
                    "INSERT INTO ssh_keys (fingerprint, principal_id, created_at, algorithm, public_key) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(*fingerprint)
                .bind(id)
                .bind(now)
                .bind(*algorithm)
                .bind(*public_key),
            };
            insert.execute(&mut *tx).await?;
            finish(tx, audit, journal, now).await
        }

        async fn grants_of(pool: &$pool, principal_id: i64) -> Result<Vec<Grant>, StoreError> {
            let rows = sqlx::query(
                "SELECT g.role, p.code, g.expires_at, g.break_glass FROM role_grants g \
                 LEFT JOIN providers p ON p.id = g.provider_id WHERE g.principal_id = $1 \
                 ORDER BY g.role, p.code",
            )
            .bind(principal_id)
            .fetch_all(pool)
            .await?;
            let mut grants = Vec::with_capacity(rows.len());
            for row in &rows {
                let role: String = row.try_get("role")?;
                let provider: Option<String> = row.try_get("code")?;
                // A role this build does not know grants nothing.
                let Ok(role) = role.parse() else { continue };
                grants.push(Grant {
                    role,
                    provider: provider.as_deref().map(ProviderCode::parse).transpose().map_err(
                        |_| StoreError::Database("stored provider code is invalid".into()),
                    )?,
                    expires_at: row.try_get("expires_at")?,
                    break_glass: row.try_get("break_glass")?,
                });
            }
            Ok(grants)
        }

        fn principal_from(row: &$row, grants: Vec<Grant>) -> Result<Principal, StoreError> {
            let kind: String = row.try_get("kind")?;
            Ok(Principal {
                id: row.try_get("id")?,
                name: row.try_get("name")?,
                kind: PrincipalKind::parse(&kind)
                    .ok_or_else(|| StoreError::Database("stored principal kind is invalid".into()))?,
                grants,
            })
        }

        pub(super) async fn api_key(pool: &$pool, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
            let Some(row) = sqlx::query(
                "SELECT k.secret_hash, k.expires_at, k.revoked_at, p.id, p.name, p.kind, p.disabled_at \
                 FROM api_keys k JOIN principals p ON p.id = k.principal_id WHERE k.key_id = $1",
            )
            .bind(id.as_str())
            .fetch_optional(pool)
            .await?
            else {
                return Ok(None);
            };
            let grants = grants_of(pool, row.try_get("id")?).await?;
            Ok(Some(KeyRecord {
                principal: principal_from(&row, grants)?,
                secret_hash: row.try_get("secret_hash")?,
                expires_at: row.try_get("expires_at")?,
                revoked: row.try_get::<Option<OffsetDateTime>, _>("revoked_at")?.is_some(),
                principal_disabled: row.try_get::<Option<OffsetDateTime>, _>("disabled_at")?.is_some(),
            }))
        }

        pub(super) async fn principal_by_credential(
            pool: &$pool,
            kind: CredentialKind,
            fingerprint: &str,
        ) -> Result<Option<Principal>, StoreError> {
            let query = match kind {
                CredentialKind::Certificate => sqlx::query(
                    "SELECT p.id, p.name, p.kind FROM client_certificates c \
                     JOIN principals p ON p.id = c.principal_id \
                     WHERE c.fingerprint = $1 AND p.disabled_at IS NULL",
                ),
                CredentialKind::SshKey => sqlx::query(
                    "SELECT p.id, p.name, p.kind FROM ssh_keys c \
                     JOIN principals p ON p.id = c.principal_id \
                     WHERE c.fingerprint = $1 AND p.disabled_at IS NULL",
                ),
            };
            let Some(row) = query
            .bind(fingerprint)
            .fetch_optional(pool)
            .await?
            else {
                return Ok(None);
            };
            let grants = grants_of(pool, row.try_get("id")?).await?;
            principal_from(&row, grants).map(Some)
        }

        pub(super) async fn list_principals(pool: &$pool) -> Result<Vec<PrincipalView>, StoreError> {
            let rows = sqlx::query(
                "SELECT id, name, kind, created_at, disabled_at FROM principals ORDER BY name",
            )
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(principal_view(pool, row).await?);
            }
            Ok(out)
        }

        pub(super) async fn principal(pool: &$pool, name: &str) -> Result<Option<PrincipalView>, StoreError> {
            let row = sqlx::query(
                "SELECT id, name, kind, created_at, disabled_at FROM principals WHERE name = $1",
            )
            .bind(name)
            .fetch_optional(pool)
            .await?;
            match row {
                Some(row) => principal_view(pool, &row).await.map(Some),
                None => Ok(None),
            }
        }

        async fn principal_view(pool: &$pool, row: &$row) -> Result<PrincipalView, StoreError> {
            let id: i64 = row.try_get("id")?;
            let grants = grants_of(pool, id).await?;
            let keys = sqlx::query(
                "SELECT key_id, created_at, expires_at, revoked_at FROM api_keys \
                 WHERE principal_id = $1 ORDER BY created_at, key_id",
            )
            .bind(id)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|k| {
                Ok(KeyView {
                    key_id: k.try_get("key_id")?,
                    created_at: k.try_get("created_at")?,
                    expires_at: k.try_get("expires_at")?,
                    revoked_at: k.try_get("revoked_at")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
            let certificates = sqlx::query_scalar(
                "SELECT fingerprint FROM client_certificates WHERE principal_id = $1 ORDER BY fingerprint",
            )
            .bind(id)
            .fetch_all(pool)
            .await?;
            let ssh_keys = sqlx::query_scalar(
                "SELECT fingerprint FROM ssh_keys WHERE principal_id = $1 ORDER BY fingerprint",
            )
            .bind(id)
            .fetch_all(pool)
            .await?;
            Ok(PrincipalView {
                principal: principal_from(row, grants)?,
                created_at: row.try_get("created_at")?,
                disabled_at: row.try_get("disabled_at")?,
                keys,
                certificates,
                ssh_keys,
            })
        }

        /// Records `event` as the last statement of `tx`, commits, then copies the event to
        /// the journal: the one ending of every audited write.
        async fn finish(
            mut tx: sqlx::Transaction<'_, $db>,
            event: &AuditEvent,
            journal: &Journal,
            now: OffsetDateTime,
        ) -> Result<(), StoreError> {
            let appended = append_in(&mut tx, event, now).await?;
            tx.commit().await?;
            journal.record(&appended);
            Ok(())
        }

        /// Appends `event` inside `tx`, under the chain lock, as the next sequence number.
        /// On PostgreSQL this switches the transaction to the audit-writer role, so it is
        /// always the transaction's last statement.
        async fn append_in(
            tx: &mut sqlx::Transaction<'_, $db>,
            event: &AuditEvent,
            now: OffsetDateTime,
        ) -> Result<Appended, StoreError> {
            let unavailable = |e: sqlx::Error| {
                tracing::error!(error = %$crate::store::describe(&e), "audit append failed");
                if $crate::store::is_unavailable(&e) {
                    StoreError::Unavailable($crate::store::describe(&e))
                } else {
                    StoreError::AuditUnavailable
                }
            };
            lock_audit_chain(tx).await.map_err(unavailable)?;
            let head: Option<(i64, Vec<u8>)> =
                sqlx::query_as("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
                    .fetch_optional(&mut **tx)
                    .await
                    .map_err(unavailable)?;
            let (seq, prev) = match head {
                Some((seq, hash)) => (seq + 1, hash),
                None => (1, GENESIS_HASH.to_vec()),
            };
            let body = event.canonical(seq, now);
            let hash = chain_hash(&prev, &body);
            let body = String::from_utf8(body).map_err(|_| StoreError::AuditUnavailable)?;
            sqlx::query(
                "INSERT INTO audit_events (seq, ts, kind, body, prev_hash, hash) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(seq)
            .bind(now)
            .bind(event.kind.code())
            .bind(&body)
            .bind(&prev)
            .bind(&hash)
            .execute(&mut **tx)
            .await
            .map_err(unavailable)?;
            Ok(Appended {
                seq,
                prev_hash: hex::encode(prev),
                hash: hex::encode(hash),
                body,
            })
        }

        pub(super) async fn append_audit(
            pool: &$pool,
            event: &AuditEvent,
            journal: &Journal,
            now: OffsetDateTime,
        ) -> Result<i64, StoreError> {
            let unavailable = |e: sqlx::Error| {
                if $crate::store::is_unavailable(&e) {
                    StoreError::Unavailable($crate::store::describe(&e))
                } else {
                    StoreError::AuditUnavailable
                }
            };
            let mut tx = begin_write(pool).await.map_err(unavailable)?;
            let appended = append_in(&mut tx, event, now).await?;
            tx.commit().await.map_err(unavailable)?;
            journal.record(&appended);
            Ok(appended.seq)
        }

        pub(super) async fn checkpoint(
            pool: &$pool,
            key: &$crate::crypto::SigningKey,
            now: OffsetDateTime,
        ) -> Result<Option<Checkpoint>, StoreError> {
            let unavailable = |e: sqlx::Error| {
                tracing::error!(error = %$crate::store::describe(&e), "audit checkpoint failed");
                StoreError::AuditUnavailable
            };
            let mut tx = begin_write(pool).await.map_err(unavailable)?;
            lock_audit_chain(&mut tx).await.map_err(unavailable)?;
            let head: Option<(i64, Vec<u8>)> =
                sqlx::query_as("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(unavailable)?;
            let last: Option<i64> = sqlx::query_scalar("SELECT max(seq) FROM audit_checkpoints")
                .fetch_one(&mut *tx)
                .await
                .map_err(unavailable)?;
            let Some((seq, hash)) = head.filter(|(seq, _)| last.is_none_or(|l| l < *seq)) else {
                return Ok(None);
            };
            let checkpoint = Checkpoint::sign(key, seq, hash, now);
            sqlx::query(
                "INSERT INTO audit_checkpoints (seq, hash, signed_at, public_key, signature) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(checkpoint.seq)
            .bind(&checkpoint.hash)
            .bind(checkpoint.signed_at)
            .bind(&checkpoint.public_key)
            .bind(&checkpoint.signature)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
            tx.commit().await.map_err(unavailable)?;
            Ok(Some(checkpoint))
        }

        pub(super) async fn audit_checkpoints(pool: &$pool) -> Result<Vec<Checkpoint>, StoreError> {
            let mut tx = begin_audit_read(pool).await?;
            let rows = sqlx::query(
                "SELECT seq, hash, signed_at, public_key, signature FROM audit_checkpoints ORDER BY seq",
            )
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            rows.iter()
                .map(|r| {
                    Ok(Checkpoint {
                        seq: r.try_get("seq")?,
                        hash: r.try_get("hash")?,
                        signed_at: r.try_get("signed_at")?,
                        public_key: r.try_get("public_key")?,
                        signature: r.try_get("signature")?,
                    })
                })
                .collect()
        }

        pub(super) async fn audit_head(pool: &$pool) -> Result<Option<(i64, Vec<u8>)>, StoreError> {
            let mut tx = begin_audit_read(pool).await?;
            let head = sqlx::query_as("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
                .fetch_optional(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(head)
        }

        pub(super) async fn audit_page(
            pool: &$pool,
            after_seq: i64,
            until_seq: i64,
            from: Option<OffsetDateTime>,
            to: Option<OffsetDateTime>,
            limit: i64,
        ) -> Result<Vec<StoredAuditEvent>, StoreError> {
            let mut tx = begin_audit_read(pool).await?;
            let rows = sqlx::query(
                "SELECT seq, kind, body, prev_hash, hash FROM audit_events \
                 WHERE seq > $1 AND seq <= $2 AND ($3 IS NULL OR ts >= $3) AND ($4 IS NULL OR ts < $4) \
                 ORDER BY seq LIMIT $5",
            )
            .bind(after_seq)
            .bind(until_seq)
            .bind(from)
            .bind(to)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            rows.iter().map(audit_event_from).collect()
        }

        fn audit_event_from(r: &$row) -> Result<StoredAuditEvent, StoreError> {
            Ok(StoredAuditEvent {
                seq: r.try_get("seq")?,
                kind: r.try_get("kind")?,
                body: r.try_get("body")?,
                prev_hash: r.try_get("prev_hash")?,
                hash: r.try_get("hash")?,
            })
        }

        pub(super) async fn last_audit_event(
            pool: &$pool,
            kind: &str,
        ) -> Result<Option<StoredAuditEvent>, StoreError> {
            let mut tx = begin_audit_read(pool).await?;
            let row = sqlx::query(
                "SELECT seq, kind, body, prev_hash, hash FROM audit_events \
                 WHERE kind = $1 ORDER BY seq DESC LIMIT 1",
            )
            .bind(kind)
            .fetch_optional(&mut *tx)
            .await?;
            tx.commit().await?;
            row.as_ref().map(audit_event_from).transpose()
        }

        pub(super) async fn audit_events(pool: &$pool) -> Result<Vec<StoredAuditEvent>, StoreError> {
            audit_page(pool, 0, i64::MAX, None, None, i64::MAX).await
        }

        fn data_key_from(row: &$row) -> Result<StoredDataKey, StoreError> {
            Ok(StoredDataKey {
                key_id: row.try_get("key_id")?,
                provider: row.try_get("code")?,
                kek_fingerprint: row.try_get("kek_fingerprint")?,
                wrapped_key: row.try_get("wrapped_key")?,
                sealed: row.try_get("sealed")?,
                created_at: row.try_get("created_at")?,
                retired_at: row.try_get("retired_at")?,
                destroyed_at: row.try_get("destroyed_at")?,
                purpose: row.try_get("purpose")?,
                drained_at: row.try_get("drained_at")?,
            })
        }

        pub(super) async fn data_keys(
            pool: &$pool,
            provider: Option<&ProviderCode>,
        ) -> Result<Vec<StoredDataKey>, StoreError> {
            sqlx::query(
                "SELECT k.key_id, p.code, k.kek_fingerprint, k.wrapped_key, k.sealed, k.created_at, \
                 k.retired_at, k.destroyed_at, k.purpose, k.drained_at FROM data_keys k JOIN providers p ON p.id = k.provider_id \
                 WHERE $1 IS NULL OR p.code = $1 ORDER BY k.created_at, k.key_id",
            )
            .bind(provider.map(ProviderCode::as_str))
            .fetch_all(pool)
            .await?
            .iter()
            .map(data_key_from)
            .collect()
        }

        pub(super) async fn data_key(pool: &$pool, key_id: &str) -> Result<Option<StoredDataKey>, StoreError> {
            sqlx::query(
                "SELECT k.key_id, p.code, k.kek_fingerprint, k.wrapped_key, k.sealed, k.created_at, \
                 k.retired_at, k.destroyed_at, k.purpose, k.drained_at FROM data_keys k JOIN providers p ON p.id = k.provider_id \
                 WHERE k.key_id = $1",
            )
            .bind(key_id)
            .fetch_optional(pool)
            .await?
            .as_ref()
            .map(data_key_from)
            .transpose()
        }

        /// Retires the provider's active key (if any) and stores `new` as the active one.
        pub(super) async fn rotate_data_key(
            pool: &$pool,
            provider: &ProviderCode,
            new: &NewDataKey<'_>,
            audit: &AuditEvent,
            journal: &Journal,
            now: OffsetDateTime,
        ) -> Result<(), StoreError> {
            let mut tx = begin_write(pool).await?;
            let provider_id: i64 = sqlx::query_scalar("SELECT id FROM providers WHERE code = $1")
                .bind(provider.as_str())
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::UnknownProvider)?;
            if !new.replaces_active {
                let active: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM data_keys WHERE provider_id = $1 AND purpose = $2 \
                     AND retired_at IS NULL AND destroyed_at IS NULL",
                )
                .bind(provider_id)
                .bind(new.purpose.as_str())
                .fetch_one(&mut *tx)
                .await?;
                if active > 0 {
                    return Err(StoreError::Conflict);
                }
            }
            sqlx::query(
                "UPDATE data_keys SET retired_at = $2 WHERE provider_id = $1 AND purpose = $3 \
                 AND retired_at IS NULL AND destroyed_at IS NULL",
            )
            .bind(provider_id)
            .bind(now)
            .bind(new.purpose.as_str())
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO data_keys (key_id, provider_id, kek_fingerprint, wrapped_key, created_at, purpose) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(new.key_id)
            .bind(provider_id)
            .bind(new.kek_fingerprint)
            .bind(new.wrapped_key)
            .bind(now)
            .bind(new.purpose.as_str())
            .execute(&mut *tx)
            .await?;
            finish(tx, audit, journal, now).await
        }

        pub(super) async fn insert_raw_file(
            pool: &$pool,
            provider: &ProviderCode,
            file: &NewRawFile<'_>,
            now: OffsetDateTime,
        ) -> Result<(), StoreError> {
            let mut tx = begin_tenant(pool, provider).await?;
            // The file's key is sealed under this data key: a key drained or destroyed
            // while the file was being written would leave it unreadable once recorded.
            if !lock_data_key(&mut tx, file.data_key_id).await? {
                return Err(StoreError::KeyErased);
            }
            let done = sqlx::query(
                "INSERT INTO raw_files (file_id, provider_id, sealed_key, stored_bytes, created_at, data_key_id) \
                 SELECT $1, id, $3, $4, $5, $6 FROM providers WHERE code = $2",
            )
            .bind(file.file_id)
            .bind(provider.as_str())
            .bind(file.sealed_key)
            .bind(file.stored_bytes)
            .bind(now)
            .bind(file.data_key_id)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::UnknownProvider);
            }
            tx.commit().await?;
            Ok(())
        }

        pub(super) async fn raw_file_key(
            pool: &$pool,
            provider: &ProviderCode,
            file_id: &str,
        ) -> Result<Option<Vec<u8>>, StoreError> {
            let mut tx = begin_tenant(pool, provider).await?;
            let key = sqlx::query_scalar(
                "SELECT r.sealed_key FROM raw_files r JOIN providers p ON p.id = r.provider_id \
                 WHERE r.file_id = $1 AND p.code = $2",
            )
            .bind(file_id)
            .bind(provider.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(key)
        }

        /// Raises the stored seal counts to the given ones (never lowers them).
        pub(super) async fn record_seal_counts(
            pool: &$pool,
            counts: &[(String, i64)],
        ) -> Result<(), StoreError> {
            let mut tx = begin_write(pool).await?;
            for (key_id, sealed) in counts {
                sqlx::query("UPDATE data_keys SET sealed = $2 WHERE key_id = $1 AND sealed < $2")
                    .bind(key_id)
                    .bind(sealed)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        }

        /// Replaces every live key's wrapping (a new key-encryption key), audited.
        pub(super) async fn rewrap_data_keys(
            pool: &$pool,
            rewrapped: &[(String, Vec<u8>)],
            kek_fingerprint: &str,
            audit: &AuditEvent,
            journal: &Journal,
            now: OffsetDateTime,
        ) -> Result<(), StoreError> {
            let mut tx = begin_write(pool).await?;
            for (key_id, wrapped) in rewrapped {
                sqlx::query(
                    "UPDATE data_keys SET wrapped_key = $2, kek_fingerprint = $3 \
                     WHERE key_id = $1 AND destroyed_at IS NULL",
                )
                .bind(key_id)
                .bind(wrapped)
                .bind(kek_fingerprint)
                .execute(&mut *tx)
                .await?;
            }
            finish(tx, audit, journal, now).await
        }

        /// Erases every wrapped key of the provider; returns how many were destroyed.
        pub(super) async fn destroy_data_keys(
            pool: &$pool,
            provider: &ProviderCode,
            audit: &AuditEvent,
            journal: &Journal,
            now: OffsetDateTime,
        ) -> Result<u64, StoreError> {
            let mut tx = begin_write(pool).await?;
            let done = sqlx::query(
                "UPDATE data_keys SET wrapped_key = NULL, destroyed_at = $2 \
                 WHERE destroyed_at IS NULL AND provider_id = (SELECT id FROM providers WHERE code = $1)",
            )
            .bind(provider.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let mut event = audit.clone();
            event.records = Some(done.rows_affected());
            finish(tx, &event, journal, now).await?;
            Ok(done.rows_affected())
        }

        pub(super) async fn grant_break_glass(
            pool: &$pool,
            principal_id: i64,
            grant: &NewGrant<'_>,
            audit: &AuditEvent,
            journal: &Journal,
            now: OffsetDateTime,
        ) -> Result<(), StoreError> {
            let mut tx = begin_write(pool).await?;
            insert_grant(&mut tx, principal_id, grant, now).await?;
            finish(tx, audit, journal, now).await
        }

        pub(super) async fn list_claims(
            pool: &$pool,
            provider: &ProviderCode,
            audit: &AuditEvent,
            journal: &Journal,
            now: OffsetDateTime,
        ) -> Result<Vec<ClaimSummary>, StoreError> {
            let mut tx = begin_tenant(pool, provider).await?;
            // Row-level security scopes this to the provider on PostgreSQL; the WHERE
            // clause does so on SQLite, which has none.
            let rows = sqlx::query(
                "SELECT c.id, c.source_claim_id, c.created_at FROM claims c \
                 JOIN providers p ON p.id = c.provider_id WHERE p.code = $1 ORDER BY c.id",
            )
            .bind(provider.as_str())
            .fetch_all(&mut *tx)
            .await?;
            let claims = rows
                .iter()
                .map(|r| {
                    Ok(ClaimSummary {
                        id: r.try_get("id")?,
                        source_claim_id: r.try_get("source_claim_id")?,
                        created_at: r.try_get("created_at")?,
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            let ids: Vec<i64> = claims.iter().map(|c| c.id).collect();
            let event = record_disclosure_in(&mut tx, provider, audit, "claims.list", &ids, now).await?;
            finish(tx, &event, journal, now).await?;
            Ok(claims)
        }

        /// Records, inside `tx`, that the caller of `audit` read the identified claims
        /// `ids` of `provider` with `action`, for the purpose `audit` states; returns the
        /// event to append, naming the disclosure and counting its claims.
        async fn record_disclosure_in(
            tx: &mut sqlx::Transaction<'_, $db>,
            provider: &ProviderCode,
            audit: &AuditEvent,
            action: &str,
            ids: &[i64],
            now: OffsetDateTime,
        ) -> Result<AuditEvent, StoreError> {
            let provider_id = provider_id_in(tx, provider).await?;
            let count = i64::try_from(ids.len()).unwrap_or(i64::MAX);
            let id = insert_disclosure(tx, provider_id, audit, action, count, now).await?;
            for chunk in ids.chunks(1_000) {
                let mut insert = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO phi_disclosed_claims (disclosure_id, provider_id, claim_id, member_index) SELECT ",
                );
                insert
                    .push_bind(id)
                    .push(", provider_id, id, member_index FROM claims WHERE provider_id = ")
                    .push_bind(provider_id)
                    .push(" AND id IN (");
                let mut list = insert.separated(", ");
                for claim in chunk {
                    list.push_bind(*claim);
                }
                insert.push(")");
                insert.build().execute(&mut **tx).await?;
            }
            Ok(disclosure_event(audit, id, count))
        }

        /// The audit event of disclosure `id` of `count` claims.
        fn disclosure_event(audit: &AuditEvent, id: i64, count: i64) -> AuditEvent {
            let mut event = audit.clone();
            event.resource = Some(format!("disclosure:{id}"));
            event.records = Some(u64::try_from(count).unwrap_or(0));
            event.phi = true;
            event
        }

        /// Inserts the disclosure row of an identified read of `count` claims by the
        /// caller of `audit`, for its stated purpose; its id.
        async fn insert_disclosure(
            tx: &mut sqlx::Transaction<'_, $db>,
            provider_id: i64,
            audit: &AuditEvent,
            action: &str,
            count: i64,
            now: OffsetDateTime,
        ) -> Result<i64, StoreError> {
            let purpose = audit.purpose.ok_or(StoreError::PurposeRequired)?;
            Ok(sqlx::query_scalar(
                "INSERT INTO phi_disclosures (occurred_at, provider_id, principal_id, role, purpose, action, \
                 request_id, break_glass, claim_count) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
            )
            .bind(now)
            .bind(provider_id)
            .bind(audit.actor)
            .bind(audit.role.map(|r| r.as_str()))
            .bind(purpose.code())
            .bind(action)
            .bind(audit.request_id.as_deref())
            .bind(audit.break_glass)
            .bind(count)
            .fetch_one(&mut **tx)
            .await?)
        }

        /// Starts an export of `provider`'s claims: fixes the newest claim it includes,
        /// draws the missing pseudonyms of a de-identified export's configuration, or
        /// records an identified export as a disclosure of every claim it selects; and
        /// appends `audit`, all in one committed transaction, before a row is read.
        pub(super) async fn start_export(
            pool: &$pool,
            provider: &ProviderCode,
            view: ExportView<'_>,
            selection: &ExportSelection,
            audit: &AuditEvent,
            journal: &Journal,
            now: OffsetDateTime,
        ) -> Result<ExportStart, StoreError> {
            let mut tx = begin_tenant(pool, provider).await?;
            let provider_id = provider_id_in(&mut tx, provider).await?;
            let upto: i64 =
                sqlx::query_scalar("SELECT coalesce(max(id), 0) FROM claims WHERE provider_id = $1")
                    .bind(provider_id)
                    .fetch_one(&mut *tx)
                    .await?;
            let event = match view {
                ExportView::Deidentified { configuration } => {
                    fill_pseudonyms(&mut tx, configuration, provider_id, upto, now).await?;
                    audit.clone()
                }
                ExportView::Identified => {
                    let count: i64 = sqlx::query_scalar($crate::store::columns::DISCLOSED_COUNT)
                        .bind(provider_id)
                        .bind(upto)
                        .bind(selection.history)
                        .bind(selection.upload.as_deref())
                        .bind(selection.from)
                        .bind(selection.to)
                        .fetch_one(&mut *tx)
                        .await?;
                    let id = insert_disclosure(&mut tx, provider_id, audit, "claims.export", count, now).await?;
                    sqlx::query($crate::store::columns::DISCLOSED_INSERT)
                        .bind(provider_id)
                        .bind(upto)
                        .bind(selection.history)
                        .bind(selection.upload.as_deref())
                        .bind(selection.from)
                        .bind(selection.to)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    disclosure_event(audit, id, count)
                }
            };
            finish(tx, &event, journal, now).await?;
            Ok(ExportStart { upto })
        }

        /// Streams the claims an export selects (up to claim `upto`) to `sink`, a batch
        /// at a time, in the order of their stored keys; returns the lines read. Stops
        /// early, without error, when the receiver is gone.
        pub(super) async fn export_claims(
            pool: &$pool,
            provider: &ProviderCode,
            view: ExportView<'_>,
            selection: &ExportSelection,
            upto: i64,
            sink: &tokio::sync::mpsc::Sender<Vec<ExportClaim>>,
        ) -> Result<u64, StoreError> {
            use futures_util::TryStreamExt as _;
            let (configuration, sql) = match view {
                ExportView::Deidentified { configuration } => (Some(configuration), DEIDENTIFIED_EXPORT),
                ExportView::Identified => (None, IDENTIFIED_EXPORT),
            };
            let (mut tx, provider_id) = begin_export_read(pool, provider, configuration, (selection, upto)).await?;
            let mut query = sqlx::query(sql)
                .bind(provider_id)
                .bind(upto)
                .bind(selection.history)
                .bind(selection.upload.as_deref())
                .bind(selection.from)
                .bind(selection.to);
            if DEIDENTIFIED_BINDS_CONFIGURATION {
                if let Some(configuration) = configuration {
                    query = query.bind(configuration);
                }
            }
            let mut lines = 0u64;
            let mut batch: Vec<ExportClaim> = Vec::with_capacity(super::export_rows::EXPORT_BATCH);
            let mut current: Option<ExportClaim> = None;
            {
                let mut rows = query.fetch(&mut *tx);
                while let Some(row) = rows.try_next().await? {
                    let version: i64 = row.try_get("version_id")?;
                    if current.as_ref().map(|c| c.version_id) != Some(version) {
                        if let Some(done) = current.replace(export_claim_from(&row, configuration.is_none())?) {
                            batch.push(done);
                            if batch.len() >= super::export_rows::EXPORT_BATCH && sink.send(std::mem::take(&mut batch)).await.is_err() {
                                return Ok(lines);
                            }
                        }
                    }
                    if let Some(claim) = current.as_mut() {
                        claim.lines.push(export_line_from(&row)?);
                    }
                    lines += 1;
                }
            }
            batch.extend(current);
            if !batch.is_empty() && sink.send(batch).await.is_err() {
                return Ok(lines);
            }
            tx.commit().await?;
            Ok(lines)
        }

        fn export_claim_from(row: &$row, identified: bool) -> Result<ExportClaim, StoreError> {
            let sealed = if identified {
                Some(ExportSealed {
                    data_key_id: row.try_get("data_key_id")?,
                    member_id: row.try_get("sealed_member_id")?,
                    zip: row.try_get("sealed_zip")?,
                    birth_date: row.try_get("sealed_birth_date")?,
                })
            } else {
                None
            };
            Ok(ExportClaim {
                version_id: row.try_get("version_id")?,
                upload_id: row.try_get("upload_id")?,
                record_no: row.try_get("record_no")?,
                claim_key: row.try_get("claim_key")?,
                member_key: row.try_get("member_key")?,
                sealed,
                claim_type: row.try_get("claim_type")?,
                frequency_code: row.try_get("frequency_code")?,
                current_version: row.try_get("current_version")?,
                payer_id: row.try_get("payer_id")?,
                payer_name: row.try_get("payer_name")?,
                plan: row.try_get("plan")?,
                sex: row.try_get("sex")?,
                state: row.try_get("state")?,
                billing_npi: row.try_get("billing_npi")?,
                billing_tin: row.try_get("billing_tin")?,
                facility_npi: row.try_get("facility_npi")?,
                bill_type: row.try_get("bill_type")?,
                statement_from: row.try_get("statement_from")?,
                statement_through: row.try_get("statement_through")?,
                admission_date: row.try_get("admission_date")?,
                discharge_date: row.try_get("discharge_date")?,
                admit_type: row.try_get("admit_type")?,
                admit_source: row.try_get("admit_source")?,
                discharge_status: row.try_get("discharge_status")?,
                drg: row.try_get("drg")?,
                diagnoses: row.try_get("diagnoses")?,
                procedures: row.try_get("procedures")?,
                deid_zip3: row.try_get("deid_zip3")?,
                deid_age: row.try_get("deid_age")?,
                created_at: row.try_get("created_at")?,
                received_at: row.try_get("received_at")?,
                lines: Vec::new(),
            })
        }

        fn export_line_from(row: &$row) -> Result<LineRow, StoreError> {
            Ok(LineRow {
                line_number: row.try_get("line_number")?,
                service_from: row.try_get("service_from")?,
                service_through: row.try_get("service_through")?,
                procedure_code: row.try_get("procedure_code")?,
                modifiers: row.try_get("modifiers")?,
                revenue_code: row.try_get("revenue_code")?,
                ndc: row.try_get("ndc")?,
                units_milli: row.try_get("units_milli")?,
                charge_cents: row.try_get("charge_cents")?,
                paid_cents: row.try_get("paid_cents")?,
                allowed_cents: row.try_get("allowed_cents")?,
                rendering_npi: row.try_get("rendering_npi")?,
                place_of_service: row.try_get("place_of_service")?,
            })
        }

        /// The recorded disclosures of `provider`'s claims whose member blind index is
        /// `member_index`, from `from` (inclusive) to `to` (exclusive), oldest first, with
        /// the claims of each that belong to that member; audited with `audit` in the
        /// same transaction.
        pub(super) async fn disclosures_for_member(
            pool: &$pool,
            provider: &ProviderCode,
            member_index: &[u8],
            (from, to): (OffsetDateTime, OffsetDateTime),
            audit: &AuditEvent,
            journal: &Journal,
            now: OffsetDateTime,
        ) -> Result<Vec<DisclosureRow>, StoreError> {
            let mut tx = begin_write(pool).await?;
            let rows = sqlx::query(
                "SELECT d.id, d.occurred_at, pr.name AS principal, d.role, d.purpose, d.action, \
                 d.request_id, d.break_glass, dc.claim_id \
                 FROM phi_disclosed_claims dc JOIN phi_disclosures d ON d.id = dc.disclosure_id \
                 JOIN providers p ON p.id = dc.provider_id LEFT JOIN principals pr ON pr.id = d.principal_id \
                 WHERE p.code = $1 AND dc.member_index = $2 AND d.occurred_at >= $3 AND d.occurred_at < $4 \
                 ORDER BY d.id, dc.claim_id",
            )
            .bind(provider.as_str())
            .bind(member_index)
            .bind(from)
            .bind(to)
            .fetch_all(&mut *tx)
            .await?;
            let mut disclosures: Vec<DisclosureRow> = Vec::new();
            for row in &rows {
                let id: i64 = row.try_get("id")?;
                let claim: i64 = row.try_get("claim_id")?;
                match disclosures.last_mut() {
                    Some(last) if last.id == id => last.claim_ids.push(claim),
                    _ => disclosures.push(DisclosureRow {
                        id,
                        occurred_at: row.try_get("occurred_at")?,
                        principal: row.try_get("principal")?,
                        role: row.try_get("role")?,
                        purpose: row.try_get("purpose")?,
                        action: row.try_get("action")?,
                        request_id: row.try_get("request_id")?,
                        break_glass: row.try_get("break_glass")?,
                        claim_ids: vec![claim],
                    }),
                }
            }
            let mut event = audit.clone();
            event.records = Some(disclosures.len() as u64);
            finish(tx, &event, journal, now).await?;
            Ok(disclosures)
        }

        async fn provider_id_in(
            tx: &mut sqlx::Transaction<'_, $db>,
            provider: &ProviderCode,
        ) -> Result<i64, StoreError> {
            sqlx::query_scalar("SELECT id FROM providers WHERE code = $1")
                .bind(provider.as_str())
                .fetch_optional(&mut **tx)
                .await?
                .ok_or(StoreError::UnknownProvider)
        }

        /// Inserts claim rows (and their lines) inside `tx`. Refuses with
        /// [`StoreError::KeyErased`] when a row's data key was destroyed or drained.
        async fn insert_claims_in(
            tx: &mut sqlx::Transaction<'_, $db>,
            provider_id: i64,
            rows: &[ClaimRow],
            now: OffsetDateTime,
        ) -> Result<(), StoreError> {
            let mut keys: Vec<&str> = rows.iter().map(|r| r.data_key_id.as_str()).collect();
            keys.sort_unstable();
            keys.dedup();
            for key_id in keys {
                if !lock_data_key(tx, key_id).await? {
                    return Err(StoreError::KeyErased);
                }
            }
            write_claim_rows(tx, provider_id, rows, now).await
        }

        pub(super) async fn insert_claims(
            pool: &$pool,
            provider: &ProviderCode,
            rows: &[ClaimRow],
            now: OffsetDateTime,
        ) -> Result<(), StoreError> {
            let mut tx = begin_tenant(pool, provider).await?;
            let provider_id = provider_id_in(&mut tx, provider).await?;
            insert_claims_in(&mut tx, provider_id, rows, now).await?;
            tx.commit().await?;
            Ok(())
        }

        fn stored_phi_from(row: &$row) -> Result<StoredPhi, StoreError> {
            let mut phi = SealedPhi::default();
            for (slot, column) in phi.values_mut().into_iter().zip(SealedPhi::COLUMNS) {
                *slot = row.try_get(column)?;
            }
            Ok(StoredPhi {
                id: row.try_get("id")?,
                key: ClaimKey {
                    upload_id: row.try_get("upload_id")?,
                    record_no: row.try_get("record_no")?,
                },
                source_claim_id: row.try_get("source_claim_id")?,
                data_key_id: row.try_get("data_key_id")?,
                phi,
                created_at: row.try_get("created_at")?,
            })
        }

        /// One claim's sealed PHI, under the provider's tenancy, audited in the same
        /// transaction (a PHI read).
        pub(super) async fn claim_phi(
            pool: &$pool,
            provider: &ProviderCode,
            id: i64,
            audit: &AuditEvent,
            journal: &Journal,
            now: OffsetDateTime,
        ) -> Result<Option<ClaimDetail>, StoreError> {
            let mut tx = begin_tenant(pool, provider).await?;
            let row = sqlx::query(
                "SELECT c.id, c.upload_id, c.record_no, c.source_claim_id, c.data_key_id, \
                 c.member_id, c.first_name, c.last_name, c.birth_date, c.address, c.city, c.zip, c.created_at, \
                 c.claim_type, c.frequency_code, c.original_claim_id, c.total_charge_cents \
                 FROM claims c JOIN providers p ON p.id = c.provider_id WHERE p.code = $1 AND c.id = $2",
            )
                .bind(provider.as_str())
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else {
                return Ok(None);
            };
            let phi = stored_phi_from(&row)?;
            let lines = sqlx::query(
                "SELECT line_number, service_from, service_through, procedure_code, modifiers, revenue_code, \
                 ndc, units_milli, charge_cents, paid_cents, allowed_cents, rendering_npi, place_of_service \
                 FROM claim_lines WHERE upload_id = $1 AND record_no = $2 ORDER BY ordinal",
            )
            .bind(&phi.key.upload_id)
            .bind(phi.key.record_no)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|l| {
                Ok(LineRow {
                    line_number: l.try_get("line_number")?,
                    service_from: l.try_get("service_from")?,
                    service_through: l.try_get("service_through")?,
                    procedure_code: l.try_get("procedure_code")?,
                    modifiers: l.try_get("modifiers")?,
                    revenue_code: l.try_get("revenue_code")?,
                    ndc: l.try_get("ndc")?,
                    units_milli: l.try_get("units_milli")?,
                    charge_cents: l.try_get("charge_cents")?,
                    paid_cents: l.try_get("paid_cents")?,
                    allowed_cents: l.try_get("allowed_cents")?,
                    rendering_npi: l.try_get("rendering_npi")?,
                    place_of_service: l.try_get("place_of_service")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
            // The versions: every stored claim of the provider with this claim id, or
            // correcting it, or the claim this one corrects.
            let original: Option<String> = row.try_get("original_claim_id")?;
            let versions = sqlx::query(
                "SELECT c.id, c.upload_id, c.record_no, c.frequency_code, c.created_at, c.superseded_at, c.unmatched \
                 FROM claims c JOIN providers p ON p.id = c.provider_id WHERE p.code = $1 \
                 AND (c.source_claim_id IN ($2, $3) OR c.original_claim_id IN ($2, $3)) ORDER BY c.id",
            )
            .bind(provider.as_str())
            .bind(&phi.source_claim_id)
            .bind(original.as_deref().unwrap_or(phi.source_claim_id.as_str()))
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|v| {
                Ok(ClaimVersion {
                    id: v.try_get("id")?,
                    upload_id: v.try_get("upload_id")?,
                    record_no: v.try_get("record_no")?,
                    frequency_code: v.try_get("frequency_code")?,
                    created_at: v.try_get("created_at")?,
                    superseded_at: v.try_get("superseded_at")?,
                    unmatched: v.try_get("unmatched")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
            let detail = ClaimDetail {
                claim_type: row.try_get("claim_type")?,
                frequency_code: row.try_get("frequency_code")?,
                original_claim_id: original,
                total_charge_cents: row.try_get("total_charge_cents")?,
                phi,
                lines,
                versions,
            };
            let event = record_disclosure_in(&mut tx, provider, audit, "claim.read", &[id], now).await?;
            finish(tx, &event, journal, now).await?;
            Ok(Some(detail))
        }

        /// Ids of the provider's claims whose blind index `column` equals `index`,
        /// recorded as a disclosure and audited with `audit`.
        pub(super) async fn find_claims(
            pool: &$pool,
            provider: &ProviderCode,
            (column, index): (IndexColumn, &[u8]),
            audit: &AuditEvent,
            journal: &Journal,
            now: OffsetDateTime,
        ) -> Result<Vec<i64>, StoreError> {
            let sql = match column {
                IndexColumn::Member => "SELECT c.id FROM claims c JOIN providers p ON p.id = c.provider_id \
                     WHERE p.code = $1 AND c.member_index = $2 ORDER BY c.id",
                IndexColumn::Person => "SELECT c.id FROM claims c JOIN providers p ON p.id = c.provider_id \
                     WHERE p.code = $1 AND c.person_index = $2 ORDER BY c.id",
            };
            let mut tx = begin_tenant(pool, provider).await?;
            let ids: Vec<i64> = sqlx::query_scalar(sql)
                .bind(provider.as_str())
                .bind(index)
                .fetch_all(&mut *tx)
                .await?;
            let event = record_disclosure_in(&mut tx, provider, audit, "claims.search", &ids, now).await?;
            finish(tx, &event, journal, now).await?;
            Ok(ids)
        }

        /// Up to `limit` of the provider's claims whose PHI is sealed by `key_id`.
        pub(super) async fn phi_sealed_by(
            pool: &$pool,
            provider: &ProviderCode,
            key_id: &str,
            limit: i64,
        ) -> Result<Vec<StoredPhi>, StoreError> {
            let mut tx = begin_tenant(pool, provider).await?;
            let rows = sqlx::query(
                "SELECT c.id, c.upload_id, c.record_no, c.source_claim_id, c.data_key_id, \
                 c.member_id, c.first_name, c.last_name, c.birth_date, c.address, c.city, c.zip, c.created_at \
                 FROM claims c JOIN providers p ON p.id = c.provider_id WHERE p.code = $1 \
                 AND c.data_key_id = $2 ORDER BY c.id LIMIT $3",
            )
                .bind(provider.as_str())
                .bind(key_id)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
            tx.commit().await?;
            rows.iter().map(stored_phi_from).collect()
        }

        /// Replaces the sealed PHI of claims still sealed by `old_key_id` with values sealed
        /// by `new_key_id`, in one transaction; a row moved meanwhile is left alone.
        pub(super) async fn reseal_phi(
            pool: &$pool,
            provider: &ProviderCode,
            old_key_id: &str,
            new_key_id: &str,
            rows: &[(i64, SealedPhi)],
        ) -> Result<u64, StoreError> {
            let mut tx = begin_tenant(pool, provider).await?;
            if !lock_data_key(&mut tx, new_key_id).await? {
                return Err(StoreError::KeyErased);
            }
            let mut moved = 0;
            for (id, phi) in rows {
                let mut update = sqlx::query(
                    "UPDATE claims SET data_key_id = $3, member_id = $4, first_name = $5, last_name = $6, \
                     birth_date = $7, address = $8, city = $9, zip = $10 WHERE id = $1 AND data_key_id = $2",
                )
                .bind(id)
                .bind(old_key_id)
                .bind(new_key_id);
                for value in phi.values() {
                    update = update.bind(value);
                }
                moved += update.execute(&mut *tx).await?.rows_affected();
            }
            tx.commit().await?;
            Ok(moved)
        }

        /// The provider's raw files whose key is sealed by `key_id`.
        pub(super) async fn file_keys_sealed_by(
            pool: &$pool,
            provider: &ProviderCode,
            key_id: &str,
        ) -> Result<Vec<SealedFileKey>, StoreError> {
            let mut tx = begin_tenant(pool, provider).await?;
            let rows = sqlx::query(
                "SELECT r.file_id, r.sealed_key FROM raw_files r JOIN providers p ON p.id = r.provider_id \
                 WHERE p.code = $1 AND r.data_key_id = $2 ORDER BY r.file_id",
            )
            .bind(provider.as_str())
            .bind(key_id)
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            rows.iter()
                .map(|r| {
                    Ok(SealedFileKey {
                        file_id: r.try_get("file_id")?,
                        sealed_key: r.try_get("sealed_key")?,
                    })
                })
                .collect()
        }

        /// Replaces one raw file's sealed key if it is still sealed by `old_key_id`.
        pub(super) async fn reseal_file_key(
            pool: &$pool,
            provider: &ProviderCode,
            old_key_id: &str,
            new_key_id: &str,
            file: &SealedFileKey,
        ) -> Result<u64, StoreError> {
            let mut tx = begin_tenant(pool, provider).await?;
            if !lock_data_key(&mut tx, new_key_id).await? {
                return Err(StoreError::KeyErased);
            }
            let done = sqlx::query(
                "UPDATE raw_files SET sealed_key = $3, data_key_id = $4 WHERE file_id = $1 AND data_key_id = $2",
            )
            .bind(file.file_id.as_str())
            .bind(old_key_id)
            .bind(file.sealed_key.as_slice())
            .bind(new_key_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(done.rows_affected())
        }

        /// Erases a retired key that nothing is sealed by any more; audited. The key row is
        /// updated first, so a concurrent write sealing under it either committed before
        /// (and is counted) or waits and then sees the key erased.
        pub(super) async fn drain_data_key(
            pool: &$pool,
            provider: &ProviderCode,
            key_id: &str,
            audit: &AuditEvent,
            journal: &Journal,
            now: OffsetDateTime,
        ) -> Result<bool, StoreError> {
            let mut tx = begin_tenant(pool, provider).await?;
            let erased = sqlx::query(
                "UPDATE data_keys SET wrapped_key = NULL, drained_at = $2 WHERE key_id = $1 \
                 AND purpose = 'seal' AND retired_at IS NOT NULL AND wrapped_key IS NOT NULL",
            )
            .bind(key_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if erased.rows_affected() == 0 {
                return Ok(false);
            }
            let in_use: i64 = sqlx::query_scalar(
                "SELECT (SELECT count(*) FROM claims WHERE data_key_id = $1) \
                 + (SELECT count(*) FROM raw_files WHERE data_key_id = $1)",
            )
            .bind(key_id)
            .fetch_one(&mut *tx)
            .await?;
            if in_use > 0 {
                tx.rollback().await?;
                return Ok(false);
            }
            finish(tx, audit, journal, now).await?;
            Ok(true)
        }

        fn counts_from(row: &$row) -> Result<UploadCounts, StoreError> {
            Ok(UploadCounts {
                records: row.try_get("records")?,
                accepted: row.try_get("accepted")?,
                rejected: row.try_get("rejected")?,
                skipped: row.try_get("skipped")?,
                claims: row.try_get("claims")?,
                lines: row.try_get("lines")?,
                replaced: row.try_get("replaced")?,
                voided: row.try_get("voided")?,
                unmatched: row.try_get("unmatched")?,
                total_charge_cents: row.try_get("total_charge_cents")?,
                line_charge_cents: row.try_get("line_charge_cents")?,
            })
        }

        /// The upload a worker claimed (the backends' `claim_upload` return its row).
        fn claimed_from(row: &$row) -> Result<$crate::store::ClaimedUpload, StoreError> {
            Ok($crate::store::ClaimedUpload {
                upload_id: row.try_get("upload_id")?,
                provider: row.try_get("code")?,
                mapping: row.try_get("mapping")?,
                checkpoint: row.try_get("checkpoint")?,
                counts: counts_from(row)?,
                attempts: row.try_get("attempts")?,
            })
        }

        fn upload_from(row: &$row) -> Result<UploadRow, StoreError> {
            Ok(UploadRow {
                upload_id: row.try_get("upload_id")?,
                provider: row.try_get("code")?,
                sha256: hex::encode(row.try_get::<Vec<u8>, _>("sha256")?),
                size_bytes: row.try_get("size_bytes")?,
                state: row.try_get("state")?,
                failure: row.try_get("failure")?,
                attempts: row.try_get("attempts")?,
                checkpoint: row.try_get("checkpoint")?,
                counts: counts_from(row)?,
                received_at: row.try_get("received_at")?,
                started_at: row.try_get("started_at")?,
                finished_at: row.try_get("finished_at")?,
            })
        }

        /// The upload of provider `provider_id` that holds interchange `id`, if any.
        async fn interchange_holder_of<'e>(
            executor: impl sqlx::Executor<'e, Database = $db>,
            provider_id: i64,
            id: &InterchangeId,
        ) -> Result<Option<String>, StoreError> {
            Ok(sqlx::query_scalar(
                "SELECT upload_id FROM uploads WHERE provider_id = $1 AND interchange_unique \
                 AND interchange_sender = $2 AND interchange_receiver = $3 AND interchange_control = $4",
            )
            .bind(provider_id)
            .bind(&id.sender)
            .bind(&id.receiver)
            .bind(&id.control_number)
            .fetch_optional(executor)
            .await?)
        }

        /// Records a received upload (audited); an earlier upload of the same file (same
        /// provider and SHA-256) or with the same idempotency key is returned instead, with
        /// `false`.
        pub(super) async fn create_upload(
            pool: &$pool,
            provider: &ProviderCode,
            new: &NewUpload<'_>,
            audit: &AuditEvent,
            journal: &Journal,
            now: OffsetDateTime,
        ) -> Result<(UploadRow, bool), StoreError> {
            let mut tx = begin_write(pool).await?;
            let provider_id = provider_id_in(&mut tx, provider).await?;
            let (disabled, policy): (bool, String) = sqlx::query_as(
                "SELECT disabled_at IS NOT NULL, interchange_control FROM providers WHERE id = $1",
            )
            .bind(provider_id)
            .fetch_one(&mut *tx)
            .await?;
            if disabled {
                return Err(StoreError::ProviderDisabled);
            }
            let earlier: Option<String> = sqlx::query_scalar(
                "SELECT upload_id FROM uploads WHERE provider_id = $1 \
                 AND (sha256 = $2 OR idempotency_key = $3) ORDER BY received_at LIMIT 1",
            )
            .bind(provider_id)
            .bind(new.sha256)
            .bind(new.idempotency_key)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(earlier) = earlier {
                tx.rollback().await?;
                let row = upload(pool, Some(provider), &earlier)
                    .await?
                    .ok_or(StoreError::NotFound)?;
                return Ok((row, false));
            }
            // A new file that repeats an interchange held by an earlier upload.
            let unique = new.interchange.is_some()
                && InterchangeControl::parse(&policy) == Some(InterchangeControl::Unique);
            if let (true, Some(id)) = (unique, new.interchange) {
                if let Some(earlier) = interchange_holder_of(&mut *tx, provider_id, id).await? {
                    tx.rollback().await?;
                    return Err(StoreError::InterchangeReplay(earlier));
                }
            }
            let inserted = sqlx::query(
                "INSERT INTO uploads (upload_id, provider_id, submitted_by, sha256, size_bytes, \
                 idempotency_key, state, received_at, mapping_version_id, interchange_sender, \
                 interchange_receiver, interchange_control, interchange_unique) VALUES ($1, $2, $3, $4, $5, $6, \
                 'received', $7, (SELECT id FROM mapping_versions WHERE provider_id = $2 AND state = 'active'), \
                 $8, $9, $10, $11)",
            )
            .bind(new.upload_id)
            .bind(provider_id)
            .bind(new.submitted_by)
            .bind(new.sha256)
            .bind(new.size_bytes)
            .bind(new.idempotency_key)
            .bind(now)
            .bind(new.interchange.map(|i| i.sender.as_str()))
            .bind(new.interchange.map(|i| i.receiver.as_str()))
            .bind(new.interchange.map(|i| i.control_number.as_str()))
            .bind(unique)
            .execute(&mut *tx)
            .await;
            match (inserted, new.interchange) {
                // Another upload of the same interchange committed after the look-up
                // above (PostgreSQL; SQLite's writers take turns): the unique index
                // refused this one.
                (Err(sqlx::Error::Database(db)), Some(id)) if unique && db.is_unique_violation() => {
                    tx.rollback().await?;
                    return Err(match interchange_holder_of(pool, provider_id, id).await? {
                        Some(earlier) => StoreError::InterchangeReplay(earlier),
                        None => StoreError::Conflict,
                    });
                }
                (inserted, _) => {
                    inserted?;
                }
            }
            finish(tx, audit, journal, now).await?;
            let row = upload(pool, Some(provider), new.upload_id)
                .await?
                .ok_or(StoreError::NotFound)?;
            Ok((row, true))
        }

        /// One upload (of `provider` when given).
        pub(super) async fn upload(
            pool: &$pool,
            provider: Option<&ProviderCode>,
            upload_id: &str,
        ) -> Result<Option<UploadRow>, StoreError> {
            sqlx::query(
                "SELECT u.*, p.code FROM uploads u JOIN providers p ON p.id = u.provider_id \
                 WHERE u.upload_id = $1 AND ($2 IS NULL OR p.code = $2)",
            )
            .bind(upload_id)
            .bind(provider.map(ProviderCode::as_str))
            .fetch_optional(pool)
            .await?
            .as_ref()
            .map(upload_from)
            .transpose()
        }

        /// The provider's upload sent with this idempotency key, if any.
        pub(super) async fn upload_by_idempotency_key(
            pool: &$pool,
            provider: &ProviderCode,
            key: &str,
        ) -> Result<Option<UploadRow>, StoreError> {
            sqlx::query(
                "SELECT u.*, p.code FROM uploads u JOIN providers p ON p.id = u.provider_id \
                 WHERE p.code = $1 AND u.idempotency_key = $2",
            )
            .bind(provider.as_str())
            .bind(key)
            .fetch_optional(pool)
            .await?
            .as_ref()
            .map(upload_from)
            .transpose()
        }

        /// The provider's upload that holds interchange `id` against later files, if any.
        pub(super) async fn interchange_holder(
            pool: &$pool,
            provider: &ProviderCode,
            id: &InterchangeId,
        ) -> Result<Option<String>, StoreError> {
            Ok(sqlx::query_scalar(
                "SELECT u.upload_id FROM uploads u JOIN providers p ON p.id = u.provider_id \
                 WHERE p.code = $1 AND p.interchange_control = 'unique' AND u.interchange_unique \
                 AND u.interchange_sender = $2 AND u.interchange_receiver = $3 AND u.interchange_control = $4",
            )
            .bind(provider.as_str())
            .bind(&id.sender)
            .bind(&id.receiver)
            .bind(&id.control_number)
            .fetch_optional(pool)
            .await?)
        }

        /// The provider's upload of the file with this SHA-256, if any.
        pub(super) async fn upload_by_sha256(
            pool: &$pool,
            provider: &ProviderCode,
            sha256: &[u8],
        ) -> Result<Option<UploadRow>, StoreError> {
            sqlx::query(
                "SELECT u.*, p.code FROM uploads u JOIN providers p ON p.id = u.provider_id \
                 WHERE p.code = $1 AND u.sha256 = $2",
            )
            .bind(provider.as_str())
            .bind(sha256)
            .fetch_optional(pool)
            .await?
            .as_ref()
            .map(upload_from)
            .transpose()
        }

        /// The provider's processed uploads (done or failed), newest first, with whether
        /// each has a 999 acknowledgement.
        pub(super) async fn finished_uploads(
            pool: &$pool,
            provider: &ProviderCode,
            limit: i64,
        ) -> Result<Vec<(String, bool)>, StoreError> {
            Ok(sqlx::query_as(
                "SELECT u.upload_id, u.ack IS NOT NULL FROM uploads u JOIN providers p ON p.id = u.provider_id \
                 WHERE p.code = $1 AND u.state IN ('done', 'failed') \
                 ORDER BY u.finished_at DESC, u.upload_id LIMIT $2",
            )
            .bind(provider.as_str())
            .bind(limit)
            .fetch_all(pool)
            .await?)
        }

        /// How many uploads are waiting or being processed, by state.
        pub(super) async fn queue_depth(pool: &$pool) -> Result<Vec<(String, i64)>, StoreError> {
            Ok(sqlx::query_as(
                "SELECT state, count(*) FROM uploads GROUP BY state ORDER BY state",
            )
            .fetch_all(pool)
            .await?)
        }

        /// Writes one batch of an upload into `tx`: its claims (and their versions), its
        /// rejects, its checkpoint and counts, if `owner` still holds the lease (which is
        /// extended to `lease_until`) and the checkpoint is still `turn.after`. Nothing
        /// of it is visible before the caller commits `tx`; on an error the caller drops
        /// `tx`, which rolls back every batch in it.
        ///
        /// The rows are written first, which may happen while the batch before is still
        /// being committed; the upload row is updated only once that batch holds it (so
        /// this one waits for its commit), and the versions are resolved after that, when
        /// the claims of every earlier batch are visible.
        #[allow(clippy::too_many_arguments)]
        pub(super) async fn write_batch(
            (tx, provider_id): &mut (sqlx::Transaction<'_, $db>, i64),
            upload_id: &str,
            owner: &str,
            lease_until: OffsetDateTime,
            batch: &Batch,
            turn: BatchTurn,
            now: OffsetDateTime,
        ) -> Result<i64, StoreError> {
            let provider_id = *provider_id;
            if !batch.claims.is_empty() {
                insert_claims_in(tx, provider_id, &batch.claims, now).await?;
            }
            if let Some(previous) = turn.previous {
                if previous.await.is_err() {
                    return Err(StoreError::LeaseLost);
                }
            }
            if lock_upload_checkpoint(tx, upload_id, owner).await? != Some(turn.after) {
                return Err(StoreError::LeaseLost);
            }
            let c = &batch.counts;
            sqlx::query(
                "UPDATE uploads SET checkpoint = $2, lease_expires_at = $3, records = $4, accepted = $5, \
                 rejected = $6, skipped = $7, claims = $8, lines = $9, replaced = $10, voided = $11, \
                 total_charge_cents = $12, line_charge_cents = $13 WHERE upload_id = $1",
            )
            .bind(upload_id)
            .bind(batch.checkpoint)
            .bind(lease_until)
            .bind(c.records)
            .bind(c.accepted)
            .bind(c.rejected)
            .bind(c.skipped)
            .bind(c.claims)
            .bind(c.lines)
            .bind(c.replaced)
            .bind(c.voided)
            .bind(c.total_charge_cents)
            .bind(c.line_charge_cents)
            .execute(&mut **tx)
            .await?;
            if let Some(holding) = turn.holding {
                // The next batch may now queue behind this one's lock.
                let _ = holding.send(());
            }
            let mut unmatched = 0;
            if !batch.claims.is_empty() {
                let first = batch.claims.iter().map(|r| r.key.record_no).min().unwrap_or(0);
                let last = batch.claims.iter().map(|r| r.key.record_no).max().unwrap_or(0);
                // Earlier versions of these claims are superseded: the same claim id, or
                // the claim a replacement or void names. Earlier means an earlier record
                // of the same file, or a claim stored before from another file (ids of
                // one file's batches written at once interleave, so they order only
                // across files).
                sqlx::query(
                    "UPDATE claims SET superseded_at = $4 WHERE superseded_at IS NULL AND id IN ( \
                     SELECT o.id FROM claims n JOIN claims o ON o.provider_id = n.provider_id \
                       AND o.source_claim_id = n.source_claim_id AND o.id <> n.id \
                       AND CASE WHEN o.upload_id = n.upload_id THEN o.record_no < n.record_no ELSE o.id < n.id END \
                       WHERE n.upload_id = $1 AND n.record_no BETWEEN $2 AND $3 AND n.provider_id = $5 \
                     UNION SELECT o.id FROM claims n JOIN claims o ON o.provider_id = n.provider_id \
                       AND o.source_claim_id = n.original_claim_id AND o.id <> n.id \
                       AND CASE WHEN o.upload_id = n.upload_id THEN o.record_no < n.record_no ELSE o.id < n.id END \
                       WHERE n.upload_id = $1 AND n.record_no BETWEEN $2 AND $3 AND n.provider_id = $5 \
                       AND n.frequency_code IN ('7', '8'))",
                )
                .bind(upload_id)
                .bind(first)
                .bind(last)
                .bind(now)
                .bind(provider_id)
                .execute(&mut **tx)
                .await?;
                unmatched = sqlx::query(
                    "UPDATE claims SET unmatched = TRUE WHERE upload_id = $1 AND record_no BETWEEN $2 AND $3 \
                     AND provider_id = $4 AND frequency_code IN ('7', '8') AND NOT EXISTS ( \
                       SELECT 1 FROM claims o WHERE o.provider_id = claims.provider_id AND o.id <> claims.id \
                       AND CASE WHEN o.upload_id = claims.upload_id THEN o.record_no < claims.record_no \
                         ELSE o.id < claims.id END \
                       AND (o.source_claim_id = claims.source_claim_id OR o.source_claim_id = claims.original_claim_id))",
                )
                .bind(upload_id)
                .bind(first)
                .bind(last)
                .bind(provider_id)
                .execute(&mut **tx)
                .await?
                .rows_affected();
                sqlx::query("UPDATE uploads SET unmatched = unmatched + $2 WHERE upload_id = $1")
                    .bind(upload_id)
                    .bind(i64::try_from(unmatched).unwrap_or(i64::MAX))
                    .execute(&mut **tx)
                    .await?;
            }
            for chunk in batch.rejects.chunks(2_000) {
                let mut insert = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO rejects (upload_id, provider_id, ordinal, record_no, line_no, byte_offset, \
                     segment, field, code, severity, message) ",
                );
                insert.push_values(chunk, |mut b, r| {
                    b.push_bind(upload_id)
                        .push_bind(provider_id)
                        .push_bind(r.ordinal)
                        .push_bind(r.record_no)
                        .push_bind(r.line_no)
                        .push_bind(r.byte_offset)
                        .push_bind(r.segment.as_deref())
                        .push_bind(r.field.as_deref())
                        .push_bind(r.code.as_str())
                        .push_bind(r.severity.as_str())
                        .push_bind(r.message.as_str());
                });
                insert.build().execute(&mut **tx).await?;
            }
            Ok(i64::try_from(unmatched).unwrap_or(i64::MAX))
        }

        /// Ends an upload's processing (done or failed with a code), audited, if `owner`
        /// still holds its lease.
        pub(super) async fn finish_upload(
            pool: &$pool,
            upload_id: &str,
            owner: &str,
            (failure, ack): (Option<&str>, Option<&str>),
            audit: &AuditEvent,
            journal: &Journal,
            now: OffsetDateTime,
        ) -> Result<(), StoreError> {
            let mut tx = begin_write(pool).await?;
            let done = sqlx::query(
                "UPDATE uploads SET state = $3, failure = $4, finished_at = $5, lease_owner = NULL, \
                 lease_expires_at = NULL, ack = $6 \
                 WHERE upload_id = $1 AND lease_owner = $2 AND state = 'processing'",
            )
            .bind(upload_id)
            .bind(owner)
            .bind(if failure.is_some() { "failed" } else { "done" })
            .bind(failure)
            .bind(now)
            .bind(ack)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() != 1 {
                tx.rollback().await?;
                return Err(StoreError::LeaseLost);
            }
            finish(tx, audit, journal, now).await
        }

        /// How many claims of an upload are stored, and how many distinct records have
        /// rejects (the runner's accounting check).
        pub(super) async fn upload_outcome(
            pool: &$pool,
            provider: &ProviderCode,
            upload_id: &str,
        ) -> Result<(i64, i64), StoreError> {
            let mut tx = begin_tenant(pool, provider).await?;
            let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM claims WHERE upload_id = $1")
                .bind(upload_id)
                .fetch_one(&mut *tx)
                .await?;
            let rejected: i64 = sqlx::query_scalar(
                "SELECT count(DISTINCT record_no) FROM rejects WHERE upload_id = $1 AND record_no > 0",
            )
            .bind(upload_id)
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok((stored, rejected))
        }

        /// Up to `limit` rejects of an upload after `after` (an ordinal).
        pub(super) async fn rejects(
            pool: &$pool,
            provider: &ProviderCode,
            upload_id: &str,
            after: i64,
            limit: i64,
        ) -> Result<Vec<RejectRow>, StoreError> {
            let mut tx = begin_tenant(pool, provider).await?;
            let rows = sqlx::query(
                "SELECT r.* FROM rejects r JOIN providers p ON p.id = r.provider_id \
                 WHERE r.upload_id = $1 AND p.code = $2 AND r.ordinal > $3 ORDER BY r.ordinal LIMIT $4",
            )
            .bind(upload_id)
            .bind(provider.as_str())
            .bind(after)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            rows.iter()
                .map(|r| {
                    Ok(RejectRow {
                        ordinal: r.try_get("ordinal")?,
                        record_no: r.try_get("record_no")?,
                        line_no: r.try_get("line_no")?,
                        byte_offset: r.try_get("byte_offset")?,
                        segment: r.try_get("segment")?,
                        field: r.try_get("field")?,
                        code: r.try_get("code")?,
                        severity: r.try_get("severity")?,
                        message: r.try_get("message")?,
                    })
                })
                .collect()
        }

        pub(super) async fn reject_ordinal(
            pool: &$pool,
            provider: &ProviderCode,
            upload_id: &str,
        ) -> Result<i64, StoreError> {
            let mut tx = begin_tenant(pool, provider).await?;
            let max: Option<i64> =
                sqlx::query_scalar("SELECT max(ordinal) FROM rejects WHERE upload_id = $1")
                    .bind(upload_id)
                    .fetch_one(&mut *tx)
                    .await?;
            tx.commit().await?;
            Ok(max.unwrap_or(0))
        }

        /// Syntax findings (`x12.…` codes) of an upload with their segment numbers.
        pub(super) async fn syntax_findings(
            pool: &$pool,
            provider: &ProviderCode,
            upload_id: &str,
            limit: i64,
        ) -> Result<Vec<(String, String)>, StoreError> {
            let mut tx = begin_tenant(pool, provider).await?;
            let rows = sqlx::query_as(
                "SELECT segment, code FROM rejects WHERE upload_id = $1 AND code LIKE 'x12.%' \
                 AND segment IS NOT NULL ORDER BY ordinal LIMIT $2",
            )
            .bind(upload_id)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(rows)
        }

        /// An upload's 999 acknowledgement, if one was made.
        pub(super) async fn upload_ack(
            pool: &$pool,
            provider: &ProviderCode,
            upload_id: &str,
        ) -> Result<Option<String>, StoreError> {
            let ack: Option<Option<String>> = sqlx::query_scalar(
                "SELECT u.ack FROM uploads u JOIN providers p ON p.id = u.provider_id \
                 WHERE u.upload_id = $1 AND p.code = $2",
            )
            .bind(upload_id)
            .bind(provider.as_str())
            .fetch_optional(pool)
            .await?;
            Ok(ack.flatten())
        }
    };
}

pub(super) use portable_queries;
pub(super) use provider_columns;
