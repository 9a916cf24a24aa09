//! The OpenAPI 3.1 document of the API, made from the code: every path, method and
//! permission from [`super::ROUTES`], request bodies and query parameters from the
//! request types' JSON Schemas (`schemars`, the same derive that checks them), and the
//! one error body of [`super::error::ApiError`]. `GET /openapi.json` serves it;
//! `docs/openapi.json` is a committed copy that a test compares, so drift fails the build.

use actix_web::HttpResponse;
use actix_web::http::Method;
use schemars::JsonSchema;
use serde_json::{Map, Value, json};

use super::{Access, ROUTES};

/// What a route takes as its body.
enum Body {
    /// Nothing.
    None,
    /// JSON of this schema.
    Json(fn() -> Value),
    /// A claim file: the body itself, or one `multipart/form-data` part.
    File,
}

/// The documentation of one route that its table entry does not carry.
struct Doc {
    summary: &'static str,
    body: Body,
    query: Option<fn() -> Value>,
    /// `If-Match` is required (edits and approvals of drafts).
    if_match: bool,
    /// Success status and media type.
    ok: (u16, &'static str),
}

/// A schema with every subschema inline (no `$ref` into a root it is not at).
fn schema<T: JsonSchema>() -> Value {
    let generator = schemars::generate::SchemaSettings::draft2020_12()
        .with(|s| s.inline_subschemas = true)
        .into_generator();
    let mut value = generator.into_root_schema_for::<T>().to_value();
    if let Some(map) = value.as_object_mut() {
        map.remove("$schema");
        map.remove("title");
    }
    value
}

const JSON: &str = "application/json";

/// The route pattern of one mapping version.
const VERSION: &str = "/v1/admin/providers/{code}/mappings/{version:\\d{1,9}}";

fn doc(method: &Method, path: &str) -> Option<Doc> {
    use super::{
        audit::Filter, break_glass::BreakGlassRequest, claims::PurposeParam, claims::Search,
        data_keys::Destroy, disclosures::Accounting, exports::ExportQuery, mappings::ImpactQuery,
        mappings::MappingBody, mappings::PreviewQuery, principals::AddCertificate,
        principals::AddSshKey, principals::CreateKey, principals::CreatePrincipal,
        principals::GrantRequest, principals::RevokeQuery, providers::CreateProvider,
        providers::SetInterchangeControl, uploads::RejectsQuery,
    };
    let plain = |summary, ok: u16| Doc {
        summary,
        body: Body::None,
        query: None,
        if_match: false,
        ok: (ok, JSON),
    };
    let with_body = |summary, body: fn() -> Value, ok: u16| Doc {
        body: Body::Json(body),
        ..plain(summary, ok)
    };
    let m = method.as_str();
    let version = VERSION;
    Some(match (m, path) {
        ("GET", "/healthz") => plain("The process is alive", 200),
        ("GET", "/readyz") => plain(
            "The gateway can serve (database reachable, schema current)",
            200,
        ),
        ("GET", "/openapi.json") => plain("This document", 200),
        ("GET", "/v1/whoami") => plain("The caller's principal and grants", 200),
        ("GET", "/v1/admin/providers") => plain("All providers", 200),
        ("POST", "/v1/admin/providers") => {
            with_body("Create a provider", schema::<CreateProvider>, 201)
        }
        ("GET", "/v1/admin/providers/{code}") => plain("One provider", 200),
        ("POST", "/v1/admin/providers/{code}/disable") => {
            plain("Disable a provider: its files are refused from now on", 200)
        }
        ("PUT", "/v1/admin/providers/{code}/interchange-control") => with_body(
            "Set whether the provider's X12 interchange control numbers are unique or reused",
            schema::<SetInterchangeControl>,
            200,
        ),
        ("GET", "/v1/admin/providers/{code}/mappings") => {
            plain("The provider's mapping versions", 200)
        }
        ("POST", "/v1/admin/providers/{code}/mappings") => {
            with_body("Draft the next mapping version", schema::<MappingBody>, 201)
        }
        ("POST", "/v1/admin/providers/{code}/mappings/validate") => with_body(
            "Check a mapping without storing it",
            schema::<MappingBody>,
            200,
        ),
        ("GET", p) if p == version => plain(
            "One mapping version with its content (ETag: its SHA-256)",
            200,
        ),
        ("PUT", p) if p == version => Doc {
            if_match: true,
            ..with_body(
                "Edit a draft (If-Match: the ETag read)",
                schema::<MappingBody>,
                200,
            )
        },
        ("GET", p) if p == format!("{version}/diff/{{other:\\d{{1,9}}}}") => {
            plain("Compare two versions", 200)
        }
        ("POST", p) if p == format!("{version}/approve") => Doc {
            if_match: true,
            ..plain("Approve a draft, as a principal other than its author", 200)
        },
        ("POST", p) if p == format!("{version}/activate") => {
            plain("Activate a reviewed version (or roll back to one)", 200)
        }
        ("POST", p) if p == format!("{version}/preview") => Doc {
            body: Body::File,
            query: Some(schema::<PreviewQuery>),
            ..plain("Read a sample file with a version; nothing is stored", 200)
        },
        ("POST", p) if p == format!("{version}/impact") => Doc {
            query: Some(schema::<ImpactQuery>),
            ..plain(
                "Per-field changes of a version on the provider's latest files",
                200,
            )
        },
        ("GET", "/v1/admin/providers/{code}/keys") => plain("The provider's data keys", 200),
        ("POST", "/v1/admin/providers/{code}/keys/rotate") => {
            plain("Rotate the provider's seal key", 201)
        }
        ("POST", "/v1/admin/providers/{code}/keys/destroy") => with_body(
            "Destroy every data key of the provider",
            schema::<Destroy>,
            200,
        ),
        ("GET", "/v1/admin/principals") => plain("All principals", 200),
        ("POST", "/v1/admin/principals") => with_body(
            "Create a principal (its first key is shown once)",
            schema::<CreatePrincipal>,
            201,
        ),
        ("GET", "/v1/admin/principals/{name}") => plain("One principal", 200),
        ("POST", "/v1/admin/principals/{name}/disable") => plain("Disable a principal", 200),
        ("POST", "/v1/admin/principals/{name}/grants") => {
            with_body("Grant a role", schema::<GrantRequest>, 201)
        }
        ("DELETE", "/v1/admin/principals/{name}/grants/{role}") => Doc {
            query: Some(schema::<RevokeQuery>),
            ..plain("Revoke a role", 204)
        },
        ("POST", "/v1/admin/principals/{name}/keys") => {
            with_body("Issue a key (shown once)", schema::<CreateKey>, 201)
        }
        ("POST", "/v1/admin/principals/{name}/certificates") => with_body(
            "Map a client certificate to the principal",
            schema::<AddCertificate>,
            201,
        ),
        ("POST", "/v1/admin/principals/{name}/ssh-keys") => with_body(
            "Map an SSH public key to the principal (SFTP login)",
            schema::<AddSshKey>,
            201,
        ),
        ("DELETE", "/v1/admin/keys/{key_id}") => plain("Revoke a key", 204),
        ("POST", "/v1/providers/{code}/break-glass") => with_body(
            "Time-limited PHI access, audited",
            schema::<BreakGlassRequest>,
            201,
        ),
        ("GET", "/v1/providers/{code}/claims") => Doc {
            query: Some(schema::<PurposeParam>),
            ..plain("The provider's stored claims (a recorded disclosure)", 200)
        },
        ("POST", "/v1/providers/{code}/claims/search") => {
            with_body("Exact look-up through blind indexes", schema::<Search>, 200)
        }
        ("GET", "/v1/providers/{code}/claims/{id:\\d{1,18}}") => Doc {
            query: Some(schema::<PurposeParam>),
            ..plain(
                "One claim with its PHI opened, its lines and versions (a recorded disclosure)",
                200,
            )
        },
        ("GET", "/v1/providers/{code}/exports/medical_claim") => Doc {
            query: Some(schema::<ExportQuery>),
            ok: (200, "application/vnd.apache.parquet"),
            ..plain(
                "De-identified (Safe Harbor) claim lines in the Tuva medical_claim layout, Parquet or CSV",
                200,
            )
        },
        ("GET", "/v1/providers/{code}/exports/medical_claim/identified") => Doc {
            query: Some(schema::<ExportQuery>),
            ok: (200, "application/vnd.apache.parquet"),
            ..plain(
                "Identified claim lines in the Tuva medical_claim layout (a recorded disclosure)",
                200,
            )
        },
        ("POST", "/v1/uploads") => Doc {
            body: Body::File,
            ..plain("Upload a claim file", 202)
        },
        ("GET", "/v1/uploads/{id}") => plain("An upload's receipt", 200),
        ("GET", "/v1/uploads/{id}/rejects") => Doc {
            query: Some(schema::<RejectsQuery>),
            ..plain("An upload's refused records", 200)
        },
        ("GET", "/v1/uploads/{id}/999") => Doc {
            ok: (200, "application/edi-x12"),
            ..plain("The X12 999 acknowledgement of an upload", 200)
        },
        ("GET", "/metrics") => Doc {
            ok: (200, "text/plain"),
            ..plain("Prometheus metrics", 200)
        },
        ("GET", "/v1/audit/events") => Doc {
            query: Some(schema::<Filter>),
            ..plain("Search the audit trail", 200)
        },
        ("GET", "/v1/audit/verify") => {
            plain("Verify the audit chain and its signed checkpoints", 200)
        }
        ("GET", "/v1/audit/export") => Doc {
            query: Some(schema::<Filter>),
            ok: (200, "application/x-ndjson"),
            ..plain("Export matching audit events (JSON lines or CSV)", 200)
        },
        ("GET", "/v1/audit/export/manifest") => Doc {
            query: Some(schema::<Filter>),
            ..plain("A signed manifest of an export", 200)
        },
        ("POST", "/v1/audit/disclosures") => with_body(
            "The accounting of disclosures for one member (JSON or CSV)",
            schema::<Accounting>,
            200,
        ),
        _ => return None,
    })
}

/// The success body's schema where the handler answers with a typed value; other JSON
/// bodies are documented as any JSON for now.
fn response_schema(method: &str, path: &str) -> Option<fn() -> Value> {
    use super::{mappings::VersionView, providers::ProviderView};
    let version = VERSION;
    match (method, path) {
        ("GET", "/v1/admin/providers") => Some(schema::<Vec<ProviderView>>),
        ("POST", "/v1/admin/providers")
        | ("GET", "/v1/admin/providers/{code}")
        | ("POST", "/v1/admin/providers/{code}/disable")
        | ("PUT", "/v1/admin/providers/{code}/interchange-control") => Some(schema::<ProviderView>),
        ("GET", "/v1/admin/providers/{code}/mappings") => Some(schema::<Vec<VersionView>>),
        ("POST", "/v1/admin/providers/{code}/mappings") => Some(schema::<VersionView>),
        ("GET" | "PUT", p) if p == version => Some(schema::<VersionView>),
        ("POST", p) if p == format!("{version}/approve") || p == format!("{version}/activate") => {
            Some(schema::<VersionView>)
        }
        _ => None,
    }
}

/// `{id:\d{1,18}}` → (`{id}`, its schema).
fn parameters(path: &str) -> (String, Vec<Value>) {
    let mut open = String::new();
    let mut params = Vec::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        open.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        // The pattern may hold braces of its own (`\d{1,9}`): the segment ends at the
        // first `}` that closes the outer one.
        let mut depth = 1;
        let mut end = 0;
        for (i, c) in after.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i;
                        break;
                    }
                }
                _ => {}
            }
        }
        let inner = &after[..end];
        let (name, pattern) = inner.split_once(':').unwrap_or((inner, ""));
        let schema = match pattern {
            "\\d{1,9}" => json!({ "type": "integer", "minimum": 0, "maximum": 999_999_999 }),
            "\\d{1,18}" => {
                json!({ "type": "integer", "minimum": 0, "maximum": 999_999_999_999_999_999_i64 })
            }
            _ => json!({ "type": "string", "minLength": 1 }),
        };
        params.push(json!({ "name": name, "in": "path", "required": true, "schema": schema }));
        open.push('{');
        open.push_str(name);
        open.push('}');
        rest = &after[end + 1..];
    }
    open.push_str(rest);
    (open, params)
}

fn query_parameters(schema: &Value) -> Vec<Value> {
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    schema["properties"]
        .as_object()
        .map(|props| {
            props
                .iter()
                .map(|(name, s)| {
                    json!({
                        "name": name,
                        "in": "query",
                        "required": required.contains(&name.as_str()),
                        "schema": s,
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The statuses any route may answer besides its success, all with the error body.
const ERRORS: [(u16, &str); 12] = [
    (400, "The request is not valid (the code says how)"),
    (401, "No valid credential"),
    (403, "Not permitted"),
    (404, "No such resource"),
    (405, "Method not allowed"),
    (409, "Conflict with the resource's state"),
    (413, "The body is larger than allowed"),
    (415, "Unsupported content type"),
    (428, "If-Match is required"),
    (429, "Too many failed attempts"),
    (
        503,
        "Not ready, the database or audit trail unavailable, or too many connections",
    ),
    (507, "The storage is full: nothing was stored"),
];

/// The document, or the first route without documentation.
pub fn document() -> Result<Value, String> {
    let error = schema::<super::error::ErrorBody<'static>>();
    let mut paths = Map::new();
    for route in ROUTES {
        let doc = doc(&route.method, route.path)
            .ok_or_else(|| format!("{} {} has no OpenAPI entry", route.method, route.path))?;
        let (path, mut params) = parameters(route.path);
        if let Some(query) = doc.query {
            params.extend(query_parameters(&query()));
        }
        if doc.if_match {
            params.push(
                json!({ "name": "If-Match", "in": "header", "required": false,
                "schema": { "type": "string" }, "description": "The ETag of the version read" }),
            );
        }
        let mut responses = Map::new();
        let (status, media) = doc.ok;
        let content = if status == 204 {
            json!(null)
        } else if media == JSON {
            let body = response_schema(route.method.as_str(), route.path)
                .map_or_else(|| json!({}), |s| s());
            json!({ JSON: { "schema": body } })
        } else {
            json!({ media: { "schema": { "type": "string" } } })
        };
        let mut ok = json!({ "description": "Success" });
        if !content.is_null() {
            ok["content"] = content;
        }
        responses.insert(status.to_string(), ok);
        for (code, description) in ERRORS {
            responses.insert(
                code.to_string(),
                json!({ "description": description,
                    "content": { JSON: { "schema": { "$ref": "#/components/schemas/Error" } } } }),
            );
        }
        let mut operation = json!({
            "summary": doc.summary,
            "operationId": format!("{}{}", route.method.as_str().to_lowercase(), path.replace(['/', '{', '}', '.', '-'], "_")),
            "parameters": params,
            "responses": responses,
            "x-permission": access_text(route.access),
        });
        operation["security"] = if route.access == Access::Public {
            json!([])
        } else {
            json!([{ "bearer": [] }, { "clientCertificate": [] }])
        };
        match doc.body {
            Body::None => {}
            Body::Json(schema) => {
                operation["requestBody"] =
                    json!({ "required": true, "content": { JSON: { "schema": schema() } } });
            }
            Body::File => {
                let file = json!({ "type": "string", "format": "binary" });
                operation["requestBody"] = json!({ "required": true, "content": {
                    "application/edi-x12": { "schema": file },
                    "text/csv": { "schema": file },
                    "application/octet-stream": { "schema": file },
                    "multipart/form-data": { "schema": { "type": "object",
                        "properties": { "file": file }, "required": ["file"] } },
                } });
            }
        }
        let entry = paths
            .entry(path)
            .or_insert_with(|| Value::Object(Map::new()));
        entry[route.method.as_str().to_lowercase()] = operation;
    }
    Ok(json!({
        "openapi": "3.1.0",
        "info": {
            "title": "claimgate",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "A TLS-only ingestion gateway for healthcare claims. Every error is {error_code, message, request_id}; no response quotes a submitted value.",
        },
        "paths": paths,
        "components": {
            "schemas": { "Error": error },
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "description": "An API key, `cgk_…`" },
                "clientCertificate": { "type": "mutualTLS", "description": "A client certificate mapped to a principal" },
            },
        },
    }))
}

fn access_text(access: Access) -> String {
    match access {
        Access::Public => "public".into(),
        Access::Authenticated => "any principal".into(),
        Access::Global(p) => format!("{}:{}", p.object(), p.action()),
        Access::Tenant(p) => format!("{}:{} on the provider", p.object(), p.action()),
        Access::Credential(p) => {
            format!("{}:{} (the credential's provider)", p.object(), p.action())
        }
    }
}

/// `GET /openapi.json`.
pub async fn serve() -> Result<HttpResponse, super::ApiError> {
    let document = document().map_err(|e| super::ApiError::internal(std::io::Error::other(e)))?;
    Ok(HttpResponse::Ok().json(document))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_route_is_documented_with_its_parameters() {
        let doc = document().unwrap();
        let paths = doc["paths"].as_object().unwrap();
        let count: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
        assert_eq!(count, ROUTES.len());
        let diff = &paths["/v1/admin/providers/{code}/mappings/{version}/diff/{other}"]["get"];
        let names: Vec<&str> = diff["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["code", "version", "other"]);
        let search = &paths["/v1/audit/events"]["get"]["parameters"];
        assert!(
            search
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "from")
        );
        assert_eq!(paths["/healthz"]["get"]["security"], json!([]));
        let approved = &paths["/v1/admin/providers/{code}/mappings/{version}/approve"]["post"];
        let schema = &approved["responses"]["200"]["content"]["application/json"]["schema"];
        let states: Vec<&Value> = schema["properties"]["state"]["oneOf"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| &v["const"])
            .collect();
        assert_eq!(
            states,
            [
                &json!("draft"),
                &json!("approved"),
                &json!("active"),
                &json!("retired")
            ]
        );
    }
}
