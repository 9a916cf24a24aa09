//! `/v1/audit/…`: the compliance API (permission `audit:read`): search with filters and a
//! cursor, verify the chain, export as CSV or JSON lines (streamed page by page) with a
//! signed manifest. Every search, verification and export is itself audited.
//!
//! Exports are reproducible: a range is pinned by `until_seq` (default: the head when the
//! request arrives), and the trail is append-only, so the manifest and the export of the
//! same filters and `until_seq` describe the same rows.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use crate::audit::{EventKind, verify_trail};
use crate::authz::{Permission, Target};
use crate::store::{Store, StoredAuditEvent};

/// Rows read from the store per page.
const PAGE: i64 = 500;

/// Filters shared by search, export and manifest.
#[derive(Debug, Clone, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// Events at or after this time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    from: Option<String>,
    /// Events before this time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    to: Option<String>,
    /// The acting principal's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    actor: Option<String>,
    /// The event code (`grant.added`, `phi.read`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    action: Option<String>,
    /// The provider code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    provider: Option<String>,
    /// `success` or `denied`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    outcome: Option<String>,
    /// A prefix of the resource (`principal:alice`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resource: Option<String>,
    /// Only events up to this sequence number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    until_seq: Option<String>,
    /// Search: continue after this sequence number (the previous page's `next`).
    #[serde(default, skip_serializing)]
    after: Option<String>,
    /// Search: page size, 1 to 1,000 (default 100).
    #[serde(default, skip_serializing)]
    limit: Option<String>,
    /// Export: `csv` or `jsonl` (default).
    #[serde(default, skip_serializing)]
    format: Option<String>,
}

/// A number from a query string (serde cannot parse numbers inside a flattened query).
fn number(text: Option<&str>, field: &'static str) -> Result<Option<i64>, ApiError> {
    text.map(|t| {
        t.parse().map_err(|_| ApiError::InvalidField {
            field,
            code: "not_a_number",
        })
    })
    .transpose()
}

/// A filter with its times parsed and its range pinned.
struct Query {
    window: (Option<OffsetDateTime>, Option<OffsetDateTime>),
    until_seq: i64,
    actor: Option<i64>,
    filter: Filter,
}

impl Filter {
    async fn resolve(self, store: &Store) -> Result<Query, ApiError> {
        let time = |text: &Option<String>, field: &'static str| {
            text.as_deref()
                .map(|t| OffsetDateTime::parse(t, &Rfc3339))
                .transpose()
                .map_err(|_| ApiError::InvalidField {
                    field,
                    code: "not_rfc3339",
                })
        };
        let window = (time(&self.from, "from")?, time(&self.to, "to")?);
        let actor = number(self.actor.as_deref(), "actor")?;
        let head = store.audit_head().await?.map_or(0, |(seq, _)| seq);
        let until_seq =
            number(self.until_seq.as_deref(), "until_seq")?.map_or(head, |u| u.min(head));
        Ok(Query {
            window,
            until_seq,
            actor,
            filter: Self {
                until_seq: Some(until_seq.to_string()),
                ..self
            },
        })
    }

    /// Whether a stored event's body matches the filters the store does not apply.
    fn matches(&self, actor: Option<i64>, event: &StoredAuditEvent) -> bool {
        let Ok(body) = serde_json::from_str::<serde_json::Value>(&event.body) else {
            return false;
        };
        let text = |key: &str| body.get(key).and_then(serde_json::Value::as_str);
        self.action.as_deref().is_none_or(|a| event.kind == a)
            && actor
                .is_none_or(|a| body.get("actor").and_then(serde_json::Value::as_i64) == Some(a))
            && self
                .provider
                .as_deref()
                .is_none_or(|p| text("provider") == Some(p))
            && self
                .outcome
                .as_deref()
                .is_none_or(|o| text("outcome") == Some(o))
            && self
                .resource
                .as_deref()
                .is_none_or(|r| text("resource").is_some_and(|v| v.starts_with(r)))
    }
}

impl Query {
    /// The next matching events after `after`, at most `limit`; and where to go on.
    async fn page(
        &self,
        store: &Store,
        mut after: i64,
        limit: usize,
    ) -> Result<(Vec<StoredAuditEvent>, Option<i64>), ApiError> {
        let mut found = Vec::new();
        loop {
            let batch = store
                .audit_page(after, self.until_seq, self.window, PAGE)
                .await?;
            let Some(last) = batch.last().map(|e| e.seq) else {
                return Ok((found, None));
            };
            for event in batch {
                after = event.seq;
                if self.filter.matches(self.actor, &event) {
                    found.push(event);
                    if found.len() == limit {
                        let more = after < self.until_seq;
                        return Ok((found, more.then_some(after)));
                    }
                }
            }
            after = last;
        }
    }
}

#[derive(Debug, Serialize)]
struct EventJson {
    seq: i64,
    kind: String,
    event: serde_json::Value,
    prev_hash: String,
    hash: String,
}

impl From<StoredAuditEvent> for EventJson {
    fn from(e: StoredAuditEvent) -> Self {
        Self {
            seq: e.seq,
            event: serde_json::from_str(&e.body).unwrap_or(serde_json::Value::Null),
            kind: e.kind,
            prev_hash: hex::encode(e.prev_hash),
            hash: hex::encode(e.hash),
        }
    }
}

/// `GET /v1/audit/events`: matching events in sequence order, with a cursor.
pub async fn search(
    caller: Caller,
    state: web::Data<AppState>,
    query: web::Query<Filter>,
) -> Result<HttpResponse, ApiError> {
    let access = caller
        .authorize(&state, Permission::AuditRead, Target::Global)
        .await?;
    let filter = query.into_inner();
    let limit = number(filter.limit.as_deref(), "limit")?.unwrap_or(100);
    let after = number(filter.after.as_deref(), "after")?;
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::InvalidField {
            field: "limit",
            code: "between_1_and_1000",
        });
    }
    let query = filter.resolve(&state.store).await?;
    let (events, next) = query
        .page(
            &state.store,
            after.unwrap_or(0),
            usize::try_from(limit).unwrap_or(100),
        )
        .await?;
    let mut event = caller.event_for(&access, EventKind::AuditRead);
    event.resource = Some("audit:search".into());
    event.records = Some(events.len() as u64);
    state.store.append_audit(&event).await?;
    let events: Vec<EventJson> = events.into_iter().map(EventJson::from).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "events": events, "next": next })))
}

/// `GET /v1/audit/verify`: recomputes the chain and checks every signed checkpoint.
pub async fn verify(caller: Caller, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let access = caller
        .authorize(&state, Permission::AuditRead, Target::Global)
        .await?;
    let events = state.store.audit_events().await?;
    let checkpoints = state.store.audit_checkpoints().await?;
    let outcome = verify_trail(&events, &checkpoints, &state.signing_key.public_key());
    let mut event = caller.event_for(&access, EventKind::AuditRead);
    event.resource = Some("audit:verify".into());
    event.records = Some(events.len() as u64);
    state.store.append_audit(&event).await?;
    let head = events.last();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "ok": outcome.is_ok(),
        "events": events.len(),
        "checkpoints": checkpoints.len(),
        "head_seq": head.map(|e| e.seq),
        "head_hash": head.map(|e| hex::encode(&e.hash)),
        "first_bad_seq": outcome.as_ref().err().map(|b| b.seq()),
        "problem": outcome.err().map(|b| b.to_string()),
    })))
}

/// The signed description of an export.
#[derive(Debug, Serialize)]
struct Manifest {
    v: u32,
    filters: Filter,
    count: u64,
    first_seq: Option<i64>,
    last_seq: Option<i64>,
    /// The chain head the range was pinned to, and its hash.
    head_seq: i64,
    head_hash: String,
    /// SHA-256 over the exported rows' hashes (hex), one per line, in order.
    rows_digest: String,
    generated_at: String,
    public_key: String,
}

/// `GET /v1/audit/export/manifest`: count, first and last sequence numbers, the head and
/// a digest of the rows an export with the same filters returns, signed (Ed25519) over
/// the manifest's JSON, keys sorted, without its `signature`.
pub async fn manifest(
    caller: Caller,
    state: web::Data<AppState>,
    query: web::Query<Filter>,
) -> Result<HttpResponse, ApiError> {
    let access = caller
        .authorize(&state, Permission::AuditRead, Target::Global)
        .await?;
    let query = query.into_inner().resolve(&state.store).await?;
    let mut digest = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let (mut count, mut first, mut last, mut after) = (0u64, None, None, 0);
    loop {
        let (events, next) = query.page(&state.store, after, PAGE as usize).await?;
        for event in &events {
            digest.update(hex::encode(&event.hash).as_bytes());
            digest.update(b"\n");
            first = first.or(Some(event.seq));
            last = Some(event.seq);
            count += 1;
        }
        match next {
            Some(n) => after = n,
            None => break,
        }
    }
    let head_hash = if query.until_seq > 0 {
        state
            .store
            .audit_page(query.until_seq - 1, query.until_seq, (None, None), 1)
            .await?
            .first()
            .map(|e| hex::encode(&e.hash))
            .unwrap_or_default()
    } else {
        String::new()
    };
    let manifest = Manifest {
        v: 1,
        head_seq: query.until_seq,
        filters: query.filter,
        count,
        first_seq: first,
        last_seq: last,
        head_hash,
        rows_digest: hex::encode(digest.finish().as_ref()),
        generated_at: OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_default(),
        public_key: hex::encode(state.signing_key.public_key()),
    };
    // Signed over the JSON with its keys sorted (serde_json's map order), so a verifier
    // can rebuild the message from the parsed manifest.
    let mut body = serde_json::to_value(&manifest).map_err(ApiError::internal)?;
    let signed = serde_json::to_vec(&body).map_err(ApiError::internal)?;
    let signature = hex::encode(state.signing_key.sign(&signed));
    let mut event = caller.event_for(&access, EventKind::AuditExported);
    event.resource = Some("audit:manifest".into());
    event.records = Some(count);
    state.store.append_audit(&event).await?;
    if let Some(object) = body.as_object_mut() {
        object.insert("signature".into(), signature.into());
    }
    Ok(HttpResponse::Ok().json(body))
}

/// The CSV columns of an export.
const CSV_COLUMNS: [&str; 16] = [
    "seq",
    "ts",
    "kind",
    "outcome",
    "actor",
    "role",
    "provider",
    "resource",
    "request_id",
    "client",
    "records",
    "phi",
    "break_glass",
    "reason",
    "prev_hash",
    "hash",
];

/// One CSV cell: quoted, and neutralised when a spreadsheet would read it as a formula.
pub fn csv_cell(value: &str) -> String {
    let risky = value
        .chars()
        .next()
        .is_some_and(|c| matches!(c, '=' | '+' | '-' | '@' | '\t' | '\r'));
    let text = if risky {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// One event as a CSV line: the columns, then the canonical body (which the hash covers).
fn csv_line(event: &StoredAuditEvent) -> String {
    let body: serde_json::Value = serde_json::from_str(&event.body).unwrap_or_default();
    let mut cells: Vec<String> = CSV_COLUMNS
        .iter()
        .map(|column| match *column {
            "seq" => event.seq.to_string(),
            "prev_hash" => hex::encode(&event.prev_hash),
            "hash" => hex::encode(&event.hash),
            key => match body.get(key) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(serde_json::Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            },
        })
        .map(|v| csv_cell(&v))
        .collect();
    cells.push(csv_cell(&event.body));
    cells.join(",") + "\r\n"
}

/// One event as a JSON line.
fn jsonl_line(event: &StoredAuditEvent) -> String {
    serde_json::json!({
        "seq": event.seq,
        "prev_hash": hex::encode(&event.prev_hash),
        "hash": hex::encode(&event.hash),
        "body": event.body,
    })
    .to_string()
        + "\n"
}

/// `GET /v1/audit/export?format=csv|jsonl&…`: the matching events, streamed page by page.
pub async fn export(
    caller: Caller,
    state: web::Data<AppState>,
    query: web::Query<Filter>,
) -> Result<HttpResponse, ApiError> {
    let access = caller
        .authorize(&state, Permission::AuditRead, Target::Global)
        .await?;
    let filter = query.into_inner();
    let csv = match filter.format.as_deref() {
        None | Some("jsonl") => false,
        Some("csv") => true,
        Some(_) => {
            return Err(ApiError::InvalidField {
                field: "format",
                code: "csv_or_jsonl",
            });
        }
    };
    let query = filter.resolve(&state.store).await?;
    let mut event = caller.event_for(&access, EventKind::AuditExported);
    event.resource = Some(format!(
        "audit:export:{}:until:{}",
        if csv { "csv" } else { "jsonl" },
        query.until_seq
    ));
    state.store.append_audit(&event).await?;
    let store = state.store.clone();
    let query = std::sync::Arc::new(query);
    let header_line = csv.then(|| {
        let mut names: Vec<String> = CSV_COLUMNS.iter().map(|c| csv_cell(c)).collect();
        names.push(csv_cell("body"));
        names.join(",") + "\r\n"
    });
    let pages = futures_util::stream::unfold(Some(0i64), move |cursor| {
        let store = store.clone();
        let query = std::sync::Arc::clone(&query);
        async move {
            let after = cursor?;
            match query.page(&store, after, PAGE as usize).await {
                Ok((events, next)) => {
                    let chunk: String = events
                        .iter()
                        .map(|e| if csv { csv_line(e) } else { jsonl_line(e) })
                        .collect();
                    Some((Ok::<_, ApiError>(bytes::Bytes::from(chunk)), next))
                }
                Err(e) => Some((Err(e), None)),
            }
        }
    });
    let head = futures_util::stream::iter(header_line.map(|h| Ok(bytes::Bytes::from(h))));
    let content_type = if csv {
        "text/csv; charset=utf-8"
    } else {
        "application/x-ndjson"
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .streaming(futures_util::StreamExt::chain(head, pages)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_neutralised_and_quotes_doubled() {
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_cell("+1"), "\"'+1\"");
        assert_eq!(csv_cell("-2"), "\"'-2\"");
        assert_eq!(csv_cell("@SUM(A1)"), "\"'@SUM(A1)\"");
        assert_eq!(csv_cell("grant.added"), "\"grant.added\"");
        assert_eq!(csv_cell(""), "\"\"");
    }
}
