//! Mapping versions: drafts, edits, approvals and activations, each audited in its own
//! transaction. Moves are compare-and-set on the row as read, so two admins racing on
//! one version cannot both win.

/// Expands the mapping-version queries for one pool type and its row type (inside the
/// backend module, after [`super::queries::portable_queries!`], whose helpers it uses).
macro_rules! mapping_queries {
    ($pool:ty, $row:ty, $db:ty) => {
        use $crate::mapping::versions::{MappingState, MappingVersion};

        fn mapping_version_from(row: &$row) -> Result<(i64, MappingVersion), StoreError> {
            let state: String = row.try_get("state")?;
            Ok((
                row.try_get("id")?,
                MappingVersion {
                    version: row.try_get("version")?,
                    state: MappingState::parse(&state)
                        .ok_or_else(|| StoreError::Database("stored mapping state is invalid".into()))?,
                    content: row.try_get("content")?,
                    comment: row.try_get("comment")?,
                    author: row.try_get("author")?,
                    created_at: row.try_get("created_at")?,
                    approved_by: row.try_get("approved_by")?,
                    approved_at: row.try_get("approved_at")?,
                    activated_by: row.try_get("activated_by")?,
                    activated_at: row.try_get("activated_at")?,
                },
            ))
        }

        /// The audit event of a move on `version`, naming it and its content hash.
        fn mapping_event(
            audit: &AuditEvent,
            provider: &ProviderCode,
            version: &MappingVersion,
        ) -> AuditEvent {
            let mut event = audit.clone();
            event.provider = Some(provider.to_string());
            event.resource = Some(format!(
                "provider:{provider}/mappings/{}#sha256={}",
                version.version,
                version.content_sha256()
            ));
            event
        }

        async fn mapping_row_in(
            tx: &mut sqlx::Transaction<'_, $db>,
            provider_id: i64,
            version: i32,
        ) -> Result<(i64, MappingVersion), StoreError> {
            let row = sqlx::query(
                "SELECT v.id, v.version, v.state, v.content, v.comment, v.author, v.created_at, v.approved_by, \
                 v.approved_at, v.activated_by, v.activated_at \
                 FROM mapping_versions v WHERE v.provider_id = $1 AND v.version = $2",
            )
            .bind(provider_id)
            .bind(version)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or(StoreError::NotFound)?;
            mapping_version_from(&row)
        }

        /// Retires the provider's active version, if any.
        async fn retire_active_in(
            tx: &mut sqlx::Transaction<'_, $db>,
            provider_id: i64,
        ) -> Result<(), StoreError> {
            sqlx::query("UPDATE mapping_versions SET state = 'retired' WHERE provider_id = $1 AND state = 'active'")
                .bind(provider_id)
                .execute(&mut **tx)
                .await?;
            Ok(())
        }

        /// Stores `content` as the provider's next version: a draft by `author`, or, when
        /// `activate` is set (the operator console), active at once without review.
        pub(super) async fn create_mapping_version(
            pool: &$pool,
            provider: &ProviderCode,
            (content, comment, author): (&str, &str, &str),
            activate: bool,
            audit: &AuditEvent,
            journal: &Journal,
            now: OffsetDateTime,
        ) -> Result<MappingVersion, StoreError> {
            let mut tx = begin_write(pool).await?;
            let provider_id = provider_id_in(&mut tx, provider).await?;
            if activate {
                retire_active_in(&mut tx, provider_id).await?;
            }
            let next: i32 = sqlx::query_scalar(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM mapping_versions WHERE provider_id = $1",
            )
            .bind(provider_id)
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO mapping_versions (provider_id, version, state, content, comment, author, \
                 created_at, activated_by, activated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(provider_id)
            .bind(next)
            .bind(if activate { "active" } else { "draft" })
            .bind(content)
            .bind(comment)
            .bind(author)
            .bind(now)
            .bind(activate.then_some(author))
            .bind(activate.then_some(now))
            .execute(&mut *tx)
            .await?;
            let (_, created) = mapping_row_in(&mut tx, provider_id, next).await?;
            finish(tx, &mapping_event(audit, provider, &created), journal, now).await?;
            Ok(created)
        }

        /// Every version of the provider's mapping, oldest first.
        pub(super) async fn mapping_versions(
            pool: &$pool,
            provider: &ProviderCode,
        ) -> Result<Vec<MappingVersion>, StoreError> {
            let rows = sqlx::query(
                "SELECT v.id, v.version, v.state, v.content, v.comment, v.author, v.created_at, v.approved_by, \
                 v.approved_at, v.activated_by, v.activated_at \
                 FROM mapping_versions v JOIN providers p ON p.id = v.provider_id \
                 WHERE p.code = $1 ORDER BY v.version",
            )
            .bind(provider.as_str())
            .fetch_all(pool)
            .await?;
            rows.iter().map(|r| mapping_version_from(r).map(|(_, v)| v)).collect()
        }

        /// One version of the provider's mapping.
        pub(super) async fn mapping_version(
            pool: &$pool,
            provider: &ProviderCode,
            version: i32,
        ) -> Result<Option<MappingVersion>, StoreError> {
            let row = sqlx::query(
                "SELECT v.id, v.version, v.state, v.content, v.comment, v.author, v.created_at, v.approved_by, \
                 v.approved_at, v.activated_by, v.activated_at \
                 FROM mapping_versions v JOIN providers p ON p.id = v.provider_id \
                 WHERE p.code = $1 AND v.version = $2",
            )
            .bind(provider.as_str())
            .bind(version)
            .fetch_optional(pool)
            .await?;
            row.as_ref().map(|r| mapping_version_from(r).map(|(_, v)| v)).transpose()
        }

        /// The provider's most recent processed uploads (ids, newest first): the files a
        /// candidate mapping's impact is measured on.
        pub(super) async fn recent_uploads(
            pool: &$pool,
            provider: &ProviderCode,
            limit: i64,
        ) -> Result<Vec<String>, StoreError> {
            Ok(sqlx::query_scalar(
                "SELECT u.upload_id FROM uploads u JOIN providers p ON p.id = u.provider_id \
                 WHERE p.code = $1 AND u.state = 'done' ORDER BY u.received_at DESC, u.upload_id LIMIT $2",
            )
            .bind(provider.as_str())
            .bind(limit)
            .fetch_all(pool)
            .await?)
        }

        /// The content of the provider's active version (`None`: none is active).
        pub(super) async fn active_mapping(
            pool: &$pool,
            provider: &ProviderCode,
        ) -> Result<Option<String>, StoreError> {
            let known: Option<i64> = sqlx::query_scalar("SELECT id FROM providers WHERE code = $1")
                .bind(provider.as_str())
                .fetch_optional(pool)
                .await?;
            let provider_id = known.ok_or(StoreError::UnknownProvider)?;
            Ok(sqlx::query_scalar(
                "SELECT content FROM mapping_versions WHERE provider_id = $1 AND state = 'active'",
            )
            .bind(provider_id)
            .fetch_optional(pool)
            .await?)
        }

        /// The draft `version` as the caller read it (content SHA-256 `seen`), in `tx`.
        async fn draft_as_seen(
            tx: &mut sqlx::Transaction<'_, $db>,
            provider_id: i64,
            (version, seen): (i32, &str),
        ) -> Result<(i64, MappingVersion), StoreError> {
            let (id, current) = mapping_row_in(tx, provider_id, version).await?;
            if current.state != MappingState::Draft {
                return Err(StoreError::MappingRefused("mapping_not_draft"));
            }
            if current.content_sha256() != seen {
                return Err(StoreError::MappingRefused("mapping_stale"));
            }
            Ok((id, current))
        }

        /// Whether a compare-and-set moved the row (someone else moved it first otherwise).
        fn moved(done: u64) -> Result<(), StoreError> {
            if done == 1 {
                Ok(())
            } else {
                Err(StoreError::MappingRefused("mapping_stale"))
            }
        }

        /// Audits the version as the move left it and commits.
        async fn finish_move(
            mut tx: sqlx::Transaction<'_, $db>,
            provider: &ProviderCode,
            (provider_id, version): (i64, i32),
            audit: &AuditEvent,
            journal: &Journal,
            now: OffsetDateTime,
        ) -> Result<MappingVersion, StoreError> {
            let (_, moved) = mapping_row_in(&mut tx, provider_id, version).await?;
            finish(tx, &mapping_event(audit, provider, &moved), journal, now).await?;
            Ok(moved)
        }

        /// Replaces a draft's content and comment if the draft still has the content whose
        /// hash is `seen`.
        pub(super) async fn edit_mapping_draft(
            pool: &$pool,
            provider: &ProviderCode,
            (version, seen): (i32, &str),
            (content, comment): (&str, &str),
            audit: &AuditEvent,
            journal: &Journal,
            now: OffsetDateTime,
        ) -> Result<MappingVersion, StoreError> {
            let mut tx = begin_write(pool).await?;
            let provider_id = provider_id_in(&mut tx, provider).await?;
            let (id, current) = draft_as_seen(&mut tx, provider_id, (version, seen)).await?;
            let done = sqlx::query(
                "UPDATE mapping_versions SET content = $2, comment = $3 \
                 WHERE id = $1 AND state = 'draft' AND content = $4",
            )
            .bind(id)
            .bind(content)
            .bind(comment)
            .bind(&current.content)
            .execute(&mut *tx)
            .await?;
            moved(done.rows_affected())?;
            finish_move(tx, provider, (provider_id, version), audit, journal, now).await
        }

        /// Approves a draft whose content hash is `seen`, by `approver`, who must not be its
        /// author.
        pub(super) async fn approve_mapping_version(
            pool: &$pool,
            provider: &ProviderCode,
            (version, seen): (i32, &str),
            approver: &str,
            audit: &AuditEvent,
            journal: &Journal,
            now: OffsetDateTime,
        ) -> Result<MappingVersion, StoreError> {
            let mut tx = begin_write(pool).await?;
            let provider_id = provider_id_in(&mut tx, provider).await?;
            let (id, current) = draft_as_seen(&mut tx, provider_id, (version, seen)).await?;
            if current.author == approver {
                return Err(StoreError::MappingRefused("mapping_own_draft"));
            }
            let done = sqlx::query(
                "UPDATE mapping_versions SET state = 'approved', approved_by = $2, approved_at = $3 \
                 WHERE id = $1 AND state = 'draft' AND content = $4",
            )
            .bind(id)
            .bind(approver)
            .bind(now)
            .bind(&current.content)
            .execute(&mut *tx)
            .await?;
            moved(done.rows_affected())?;
            finish_move(tx, provider, (provider_id, version), audit, journal, now).await
        }

        /// Makes a reviewed version (approved, or retired after an approval: a rollback)
        /// the provider's active one; the version active until now is retired.
        pub(super) async fn activate_mapping_version(
            pool: &$pool,
            provider: &ProviderCode,
            version: i32,
            by: &str,
            audit: &AuditEvent,
            journal: &Journal,
            now: OffsetDateTime,
        ) -> Result<MappingVersion, StoreError> {
            let mut tx = begin_write(pool).await?;
            let provider_id = provider_id_in(&mut tx, provider).await?;
            let (id, current) = mapping_row_in(&mut tx, provider_id, version).await?;
            let reviewed = current.approved_by.is_some()
                && matches!(current.state, MappingState::Approved | MappingState::Retired);
            if !reviewed {
                return Err(StoreError::MappingRefused("mapping_not_approved"));
            }
            retire_active_in(&mut tx, provider_id).await?;
            let done = sqlx::query(
                "UPDATE mapping_versions SET state = 'active', activated_by = $2, activated_at = $3 \
                 WHERE id = $1 AND state IN ('approved', 'retired') AND approved_by IS NOT NULL",
            )
            .bind(id)
            .bind(by)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            moved(done.rows_affected())?;
            finish_move(tx, provider, (provider_id, version), audit, journal, now).await
        }
    };
}

pub(super) use mapping_queries;
