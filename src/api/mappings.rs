//! `/v1/admin/providers/{code}/mappings`: versioned mappings under maker-checker.
//!
//! A mapping admin drafts a version (TOML, a built-in name, or the definition as JSON),
//! validates it, compares versions, edits the draft (`If-Match` with the ETag it read), a
//! second mapping admin approves exactly the content it reviewed (`If-Match` again), and
//! an admin activates it; activating an earlier reviewed version is the rollback. Every
//! move is audited with the version and its content hash.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use crate::audit::EventKind;
use crate::authz::{Access, Permission, ProviderAdmin, Target};
use crate::mapping::MappingProblem;
use crate::mapping::versions::{self, MappingVersion};
use crate::providers::ProviderCode;

/// Body of a draft, an edit or a validation: the mapping as text (`x12`, a built-in name,
/// or TOML) or as a JSON definition, and a comment.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MappingBody {
    /// `x12`, `x12-837p`, `x12-837i`, or a mapping definition in TOML.
    mapping: Option<String>,
    /// The mapping definition as a JSON object (stored as the equivalent TOML).
    definition: Option<serde_json::Value>,
    /// The author's note.
    #[serde(default)]
    comment: String,
}

impl MappingBody {
    /// The mapping text, checked: every problem with its path and code.
    fn checked_text(&self) -> Result<String, ApiError> {
        let text = match (&self.mapping, &self.definition) {
            (Some(text), None) => text.clone(),
            (None, Some(definition)) => toml::to_string(definition).map_err(|_| {
                ApiError::MappingInvalid(vec![MappingProblem {
                    path: "definition".into(),
                    code: "not_a_definition",
                    message: "must be a JSON object without nulls".into(),
                }])
            })?,
            _ => {
                return Err(ApiError::InvalidField {
                    field: "mapping",
                    code: "mapping_or_definition",
                });
            }
        };
        if self.comment.chars().count() > 2_000 {
            return Err(ApiError::InvalidField {
                field: "comment",
                code: "too_long",
            });
        }
        crate::pipeline::MappingChoice::resolve(&text).map_err(ApiError::MappingInvalid)?;
        Ok(text)
    }
}

/// A version as the API shows it (the content only where one version is asked for).
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct VersionView {
    version: i32,
    state: versions::MappingState,
    sha256: String,
    comment: String,
    author: String,
    created_at: String,
    approved_by: Option<String>,
    approved_at: Option<String>,
    activated_by: Option<String>,
    activated_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<String>,
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

impl VersionView {
    fn of(v: MappingVersion, with_content: bool) -> Self {
        Self {
            version: v.version,
            state: v.state,
            sha256: v.content_sha256(),
            comment: v.comment,
            author: v.author,
            created_at: rfc3339(v.created_at),
            approved_by: v.approved_by,
            approved_at: v.approved_at.map(rfc3339),
            activated_by: v.activated_by,
            activated_at: v.activated_at.map(rfc3339),
            content: with_content.then_some(v.content),
        }
    }
}

/// The version with its ETag (its content's SHA-256).
fn with_etag(mut response: actix_web::HttpResponseBuilder, v: MappingVersion) -> HttpResponse {
    response
        .insert_header((header::ETAG, format!("\"{}\"", v.content_sha256())))
        .json(VersionView::of(v, true))
}

/// The content hash the caller saw, from `If-Match` (428 without one).
fn if_match(req: &HttpRequest) -> Result<String, ApiError> {
    let value = req
        .headers()
        .get(header::IF_MATCH)
        .ok_or(ApiError::PreconditionRequired)?
        .to_str()
        .map_err(|_| ApiError::BadParameter)?
        .trim();
    let tag = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or(ApiError::InvalidField {
            field: "if-match",
            code: "not_an_etag",
        })?;
    Ok(tag.to_ascii_lowercase())
}

/// The provider of the path, 404 when there is none.
async fn provider(state: &AppState, code: &str) -> Result<ProviderCode, ApiError> {
    let code = ProviderCode::parse(code).map_err(|_| ApiError::NotFound)?;
    state
        .store
        .provider(&code)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(code)
}

/// A mapping writer's access and capability, with the provider and version of the path.
async fn writer_on(
    caller: &Caller,
    state: &AppState,
    path: web::Path<(String, i32)>,
) -> Result<(Access, ProviderAdmin, ProviderCode, i32), ApiError> {
    let access = caller
        .authorize(state, Permission::MappingsWrite, Target::Global)
        .await?;
    let admin = ProviderAdmin::from_access(&access).ok_or(ApiError::Forbidden)?;
    let (code, version) = path.into_inner();
    let code = provider(state, &code).await?;
    Ok((access, admin, code, version))
}

/// Lists the provider's versions, oldest first (without their content).
pub async fn list(
    caller: Caller,
    state: web::Data<AppState>,
    code: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller
        .authorize(&state, Permission::MappingsRead, Target::Global)
        .await?;
    let code = provider(&state, &code).await?;
    let views: Vec<VersionView> = state
        .store
        .mapping_versions(&code)
        .await?
        .into_iter()
        .map(|v| VersionView::of(v, false))
        .collect();
    Ok(HttpResponse::Ok().json(views))
}

/// Checks a mapping without storing it: 200 `{"valid": true}` or 400 `mapping_invalid`
/// with every problem's path and code.
pub async fn validate(
    caller: Caller,
    state: web::Data<AppState>,
    code: web::Path<String>,
    req: HttpRequest,
    body: super::Body,
) -> Result<HttpResponse, ApiError> {
    caller
        .authorize(&state, Permission::MappingsRead, Target::Global)
        .await?;
    provider(&state, &code).await?;
    let body: MappingBody = super::parse_json(&req, &body.0)?;
    let text = body.checked_text()?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "valid": true,
        "sha256": versions::content_sha256(&text),
    })))
}

/// Stores a checked mapping as the provider's next version, a draft by the caller.
pub async fn draft(
    caller: Caller,
    state: web::Data<AppState>,
    code: web::Path<String>,
    req: HttpRequest,
    body: super::Body,
) -> Result<HttpResponse, ApiError> {
    let access = caller
        .authorize(&state, Permission::MappingsWrite, Target::Global)
        .await?;
    let admin = ProviderAdmin::from_access(&access).ok_or(ApiError::Forbidden)?;
    let code = provider(&state, &code).await?;
    let body: MappingBody = super::parse_json(&req, &body.0)?;
    let text = body.checked_text()?;
    let event = caller.event_for(&access, EventKind::MappingCreated);
    let created = state
        .store
        .draft_mapping(
            &admin,
            &code,
            (&text, &body.comment, &caller.principal.name),
            &event,
        )
        .await
        .map_err(ApiError::for_path_provider)?;
    let location = format!("/v1/admin/providers/{code}/mappings/{}", created.version);
    let mut response = HttpResponse::Created();
    response.insert_header((header::LOCATION, location));
    Ok(with_etag(response, created))
}

/// One version with its content; `ETag` is its content's SHA-256.
pub async fn show(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(String, i32)>,
) -> Result<HttpResponse, ApiError> {
    caller
        .authorize(&state, Permission::MappingsRead, Target::Global)
        .await?;
    let (code, version) = path.into_inner();
    let code = provider(&state, &code).await?;
    let found = state
        .store
        .mapping_version(&code, version)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(with_etag(HttpResponse::Ok(), found))
}

/// Replaces a draft's content and comment; `If-Match` must carry the ETag of the content
/// being replaced (409 `mapping_stale` otherwise, 409 `mapping_not_draft` after review).
pub async fn edit(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(String, i32)>,
    req: HttpRequest,
    body: super::Body,
) -> Result<HttpResponse, ApiError> {
    let (access, admin, code, version) = writer_on(&caller, &state, path).await?;
    let seen = if_match(&req)?;
    let body: MappingBody = super::parse_json(&req, &body.0)?;
    let text = body.checked_text()?;
    let event = caller.event_for(&access, EventKind::MappingChanged);
    let edited = state
        .store
        .edit_mapping_draft(
            &admin,
            &code,
            (version, &seen),
            (&text, &body.comment),
            &event,
        )
        .await
        .map_err(ApiError::for_path_provider)?;
    Ok(with_etag(HttpResponse::Ok(), edited))
}

/// A structured comparison of two versions: fields added, removed, changed, and each
/// setting that differs.
pub async fn diff(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(String, i32, i32)>,
) -> Result<HttpResponse, ApiError> {
    caller
        .authorize(&state, Permission::MappingsRead, Target::Global)
        .await?;
    let (code, from, to) = path.into_inner();
    let code = provider(&state, &code).await?;
    let version = |n: i32| {
        let state = state.clone();
        let code = code.clone();
        async move {
            state
                .store
                .mapping_version(&code, n)
                .await?
                .ok_or(ApiError::NotFound)
        }
    };
    let (a, b) = (version(from).await?, version(to).await?);
    let diff = versions::diff(&a, &b).map_err(|_| ApiError::InvalidField {
        field: "version",
        code: "not_comparable",
    })?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "from": from,
        "to": to,
        "diff": diff,
    })))
}

/// Approves a draft by a principal other than its author; `If-Match` must carry the ETag
/// of the content reviewed.
pub async fn approve(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(String, i32)>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (access, admin, code, version) = writer_on(&caller, &state, path).await?;
    let seen = if_match(&req)?;
    let event = caller.event_for(&access, EventKind::MappingApproved);
    let approved = state
        .store
        .approve_mapping(
            &admin,
            &code,
            (version, &seen),
            &caller.principal.name,
            &event,
        )
        .await
        .map_err(ApiError::for_path_provider)?;
    Ok(with_etag(HttpResponse::Ok(), approved))
}

/// Activates a reviewed version; uploads received from now on are read with it (a
/// rollback is the activation of an earlier one).
pub async fn activate(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(String, i32)>,
) -> Result<HttpResponse, ApiError> {
    let (access, admin, code, version) = writer_on(&caller, &state, path).await?;
    let event = caller.event_for(&access, EventKind::MappingActivated);
    let active = state
        .store
        .activate_mapping(&admin, &code, version, &caller.principal.name, &event)
        .await
        .map_err(ApiError::for_path_provider)?;
    Ok(with_etag(HttpResponse::Ok(), active))
}

/// Query of a preview.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewQuery {
    /// How many normalized claims to return (default 20, at most 200).
    claims: Option<usize>,
}

/// Findings returned by one preview at most (the summary counts them all).
const MAX_PREVIEW_FINDINGS: usize = 1_000;

/// Reads a sample file (the body, or its one `multipart/form-data` part, at most
/// `http.max_sample_bytes`) with a version: the first claims as normalized, every finding
/// with its position (up to 1,000) and the totals. Nothing is stored. The claims' PHI is
/// shown only to a caller who also holds `phi_reader` on the provider (an audited PHI
/// read); everyone else sees `"***"`.
pub async fn preview(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(String, i32)>,
    query: web::Query<PreviewQuery>,
    req: HttpRequest,
    body: super::Body,
) -> Result<HttpResponse, ApiError> {
    let access = caller
        .authorize(&state, Permission::MappingsRead, Target::Global)
        .await?;
    let (code, version) = path.into_inner();
    let code = provider(&state, &code).await?;
    let wanted = query.claims.unwrap_or(20);
    if !(1..=200).contains(&wanted) {
        return Err(ApiError::InvalidField {
            field: "claims",
            code: "between_1_and_200",
        });
    }
    let sample = match super::uploads::file_body(&req)? {
        None => body.0.to_vec(),
        Some(mut part) => {
            let mut file = Vec::with_capacity(body.0.len());
            part.push(&body.0, &mut |piece| file.extend_from_slice(piece))
                .map_err(super::uploads::multipart_error)?;
            part.finish().map_err(super::uploads::multipart_error)?;
            file
        }
    };
    if sample.is_empty() {
        return Err(ApiError::InvalidField {
            field: "body",
            code: "empty_sample",
        });
    }
    let found = state
        .store
        .mapping_version(&code, version)
        .await?
        .ok_or(ApiError::NotFound)?;
    let mapping = crate::pipeline::MappingChoice::resolve(&found.content)
        .map_err(ApiError::MappingInvalid)?;
    let phi = caller
        .principal
        .authorize(
            &state.policy,
            Permission::ClaimsReadPhi,
            Target::Provider(&code),
            time::OffsetDateTime::now_utc(),
        )
        .is_some();
    let read = tokio::task::spawn_blocking(move || read_sample(&mapping, &sample, wanted, phi))
        .await
        .map_err(ApiError::thread_stopped)?;
    let (claims, findings, truncated, summary) = read.map_err(|_| ApiError::InvalidField {
        field: "body",
        code: "sample_unreadable_with_this_mapping",
    })?;
    let mut event = caller.event_for(&access, EventKind::MappingPreviewed);
    event.provider = Some(code.to_string());
    event.resource = Some(format!(
        "provider:{code}/mappings/{version}#sha256={}",
        found.content_sha256()
    ));
    event.records = Some(summary.records);
    event.phi = phi;
    state.store.append_audit(&event).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "version": version,
        "phi": if phi { "shown" } else { "masked" },
        "claims": claims,
        "findings": findings,
        "findings_truncated": truncated,
        "summary": crate::pipeline::preview::summary_json(&summary),
    })))
}

/// The previewed claims (PHI masked unless `phi`), findings and totals of a sample.
type SampleRead = (
    Vec<serde_json::Value>,
    Vec<serde_json::Value>,
    bool,
    crate::pipeline::preview::Summary,
);

fn read_sample(
    mapping: &crate::pipeline::MappingChoice,
    sample: &[u8],
    wanted: usize,
    phi: bool,
) -> std::io::Result<SampleRead> {
    use crate::pipeline::preview::{claim_json, finding_json, mask_phi};
    let mut claims = Vec::new();
    let mut findings = Vec::new();
    let mut truncated = false;
    let mut keep = |f: &crate::findings::Finding, findings: &mut Vec<serde_json::Value>| {
        if findings.len() < MAX_PREVIEW_FINDINGS {
            findings.push(finding_json(f));
        } else {
            truncated = true;
        }
    };
    let mut loose = Vec::new();
    let summary = crate::pipeline::preview::preview(
        mapping,
        sample,
        &mut |mapped| {
            if claims.len() < wanted {
                let mut json = claim_json(mapped);
                if !phi {
                    mask_phi(&mut json);
                }
                claims.push(json);
            }
            mapped.findings.iter().for_each(|f| keep(f, &mut findings));
        },
        &mut |f| loose.push(finding_json(f)),
    )?;
    for f in loose {
        if findings.len() < MAX_PREVIEW_FINDINGS {
            findings.push(f);
        } else {
            truncated = true;
        }
    }
    Ok((claims, findings, truncated, summary))
}

/// Query of an impact measurement.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImpactQuery {
    /// How many of the provider's latest processed uploads to read (default 3, at most 20).
    uploads: Option<i64>,
}

/// Reads the provider's latest processed uploads (decrypted as they are read, in memory
/// only) with the active version and with version n, and answers with counts: per field
/// how many claims would change, how many more or fewer records would be rejected.
pub async fn impact(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(String, i32)>,
    query: web::Query<ImpactQuery>,
) -> Result<HttpResponse, ApiError> {
    use crate::pipeline::impact::Impact;
    let access = caller
        .authorize(&state, Permission::MappingsRead, Target::Global)
        .await?;
    let (code, version) = path.into_inner();
    let code = provider(&state, &code).await?;
    let wanted = query.uploads.unwrap_or(3);
    if !(1..=20).contains(&wanted) {
        return Err(ApiError::InvalidField {
            field: "uploads",
            code: "between_1_and_20",
        });
    }
    let candidate = state
        .store
        .mapping_version(&code, version)
        .await?
        .ok_or(ApiError::NotFound)?;
    let versions = state.store.mapping_versions(&code).await?;
    let active = versions
        .into_iter()
        .find(|v| v.state == versions::MappingState::Active)
        .ok_or(ApiError::MappingState("mapping_none_active"))?;
    let resolve = |v: &MappingVersion| {
        crate::pipeline::MappingChoice::resolve(&v.content).map_err(ApiError::MappingInvalid)
    };
    let (current, proposed) = (
        std::sync::Arc::new(resolve(&active)?),
        std::sync::Arc::new(resolve(&candidate)?),
    );
    let uploads = state.store.recent_uploads(&code, wanted).await?;
    let mut impact = Impact::default();
    let mut unreadable = 0u64;
    for upload in &uploads {
        let opened = match (
            state.raw.open(&code, upload).await,
            state.raw.open(&code, upload).await,
        ) {
            (Ok(a), Ok(b)) => (a, b),
            _ => {
                unreadable += 1;
                continue;
            }
        };
        let (current, proposed) = (current.clone(), proposed.clone());
        let mut one = Impact::default();
        let read = tokio::task::spawn_blocking(move || {
            one.add_file(
                (&current, std::io::BufReader::new(opened.0)),
                (&proposed, std::io::BufReader::new(opened.1)),
            )
            .map(|()| one)
        })
        .await
        .map_err(ApiError::thread_stopped)?;
        match read {
            Ok(one) => impact.absorb(one),
            Err(_) => unreadable += 1,
        }
    }
    let mut event = caller.event_for(&access, EventKind::MappingImpactMeasured);
    event.provider = Some(code.to_string());
    event.resource = Some(format!(
        "provider:{code}/mappings/{version}#sha256={}",
        candidate.content_sha256()
    ));
    event.records = Some(impact.current.records);
    state.store.append_audit(&event).await?;
    let percent = |n: u64| {
        if impact.claims_compared == 0 {
            0.0
        } else {
            (n as f64 * 1000.0 / impact.claims_compared as f64).round() / 10.0
        }
    };
    let fields: Vec<serde_json::Value> = impact
        .field_changes
        .iter()
        .map(|(field, n)| serde_json::json!({ "field": field, "claims_changed": n, "percent": percent(*n) }))
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "version": version,
        "against_version": active.version,
        "uploads_read": impact.files,
        "uploads_unreadable": unreadable,
        "claims_compared": impact.claims_compared,
        "claims_not_compared": impact.claims_not_compared,
        "current": impact.current,
        "candidate": impact.candidate,
        "more_rejects": impact.candidate.rejected as i64 - impact.current.rejected as i64,
        "newly_rejected": impact.newly_rejected,
        "newly_accepted": impact.newly_accepted,
        "fields": fields,
    })))
}
