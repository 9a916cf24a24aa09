//! The mapping editor over real HTTPS: drafts, validation, edits under `If-Match`, the
//! second principal's approval, activation, uploads that record their version, diffs,
//! rollback, the audit trail, and who may do none of it.

use serde_json::json;
use sqlx::Connection as _;

use crate::helpers::*;

const X12: &str = "Content-Type: application/edi-x12\r\n";

struct Editor {
    app: TestApp,
    reviewer: String,
    submitter: String,
}

impl Editor {
    fn path(&self, rest: &str) -> String {
        format!("/v1/admin/providers/acme/mappings{rest}")
    }

    async fn as_admin(&self, method: &str, rest: &str, body: &str) -> Response {
        self.app
            .call(&self.app.admin_key, method, &self.path(rest), body)
            .await
    }

    async fn with_etag(
        &self,
        token: &str,
        method: &str,
        rest: &str,
        etag: &str,
        body: &str,
    ) -> Response {
        call_with_headers_at(
            self.app.addr,
            token,
            method,
            &self.path(rest),
            &format!("If-Match: {etag}\r\n"),
            body,
        )
        .await
    }

    /// Uploads a one-claim 837P; returns the upload id once it is processed.
    async fn upload(&self, claim_id: &str) -> String {
        let file = x12_837p(&[X12Claim::new(claim_id, 12_500)]);
        let sent = upload_at(self.app.addr, &self.submitter, &file, X12).await;
        assert_eq!(sent.status, 202, "{sent:?}");
        let id = sent.json()["upload_id"].as_str().unwrap().to_owned();
        let receipt = receipt_when_finished(self.app.addr, &self.submitter, &id).await;
        assert_eq!(receipt["state"], "done", "{receipt}");
        id
    }

    /// The mapping version (number) an upload recorded.
    async fn version_of(&self, upload_id: &str) -> i64 {
        self.app
            .count(&format!(
                "SELECT CAST(v.version AS BIGINT) FROM uploads u JOIN mapping_versions v ON v.id = u.mapping_version_id \
                 WHERE u.upload_id = '{upload_id}'"
            ))
            .await
    }
}

/// A file of the public corpus (`../shared/corpus`, or `CLAIMGATE_TEST_CORPUS`) with its
/// figures from independent X12 tools (`expected.json`, "naive"); `None`, said on stderr,
/// where there is no corpus.
pub(super) fn corpus_file(name: &str) -> Option<(Vec<u8>, serde_json::Value)> {
    let dir = std::env::var_os("CLAIMGATE_TEST_CORPUS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus")
        });
    let Ok(expected) = std::fs::read(dir.join("expected.json")) else {
        assert!(
            std::env::var("CLAIMGATE_TEST_REQUIRE_CORPUS").as_deref() != Ok("1"),
            "the corpus is required but {} has none",
            dir.display()
        );
        eprintln!("SKIPPED the corpus preview: no corpus at {}", dir.display());
        return None;
    };
    let expected: serde_json::Value = serde_json::from_slice(&expected).unwrap();
    let figures = expected["files"][name]["naive"].clone();
    assert!(figures.is_object(), "{name} is not in expected.json");
    Some((std::fs::read(dir.join(name)).unwrap(), figures))
}

fn mapping_body(mapping: &str, comment: &str) -> String {
    json!({ "mapping": mapping, "comment": comment }).to_string()
}

async fn editor(backend: Backend, test: &str) -> Option<Editor> {
    let app = TestApp::on(backend, test, &[]).await?;
    app.provider("acme").await;
    let reviewer = app
        .principal("reviewer", "person", json!([{ "role": "mapping_admin" }]))
        .await;
    let submitter = app
        .principal(
            "acme-sftp",
            "system",
            json!([{ "role": "provider_submitter", "provider": "acme" }]),
        )
        .await;
    Some(Editor {
        app,
        reviewer,
        submitter,
    })
}

async fn lifecycle_on(backend: Backend) {
    let Some(ed) = editor(backend, "mapping_lifecycle").await else {
        return;
    };
    // Validation: every problem with its path and code; nothing stored.
    let bad = ed
        .as_admin(
            "POST",
            "/validate",
            &mapping_body(
                "name = \"m\"\nformat = \"csv\"\n[claim]\nsource_claim_id = { column = \"ID\", transforms = [{ date = \"QQ\" }] }\n",
                "",
            ),
        )
        .await;
    assert_eq!(bad.status, 400, "{bad:?}");
    assert_eq!(bad.json()["error_code"], "mapping_invalid");
    let paths: Vec<String> = bad.json()["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        paths
            .iter()
            .any(|p| p.starts_with("claim.source_claim_id.transforms[0]")),
        "{paths:?}"
    );
    let good = ed
        .as_admin("POST", "/validate", &mapping_body("x12", ""))
        .await;
    assert_eq!(good.status, 200, "{good:?}");
    assert_eq!(good.json()["valid"], true);
    assert_eq!(ed.as_admin("GET", "", "").await.json(), json!([]));

    // Draft version 1, then edit it under If-Match.
    let drafted = ed
        .as_admin("POST", "", &mapping_body("x12", "first cut"))
        .await;
    assert_eq!(drafted.status, 201, "{drafted:?}");
    assert_eq!(drafted.json()["version"], 1);
    assert_eq!(drafted.json()["state"], "draft");
    assert_eq!(
        drafted.header("location"),
        Some("/v1/admin/providers/acme/mappings/1")
    );
    let first_etag = drafted.header("etag").unwrap().to_owned();
    assert_eq!(
        first_etag,
        format!("\"{}\"", drafted.json()["sha256"].as_str().unwrap())
    );
    let admin = ed.app.admin_key.clone();
    let no_etag = ed
        .app
        .call(
            &admin,
            "PUT",
            &ed.path("/1"),
            &mapping_body("x12-837p", "professional only"),
        )
        .await;
    assert_eq!(no_etag.status, 428, "{no_etag:?}");
    let edited = ed
        .with_etag(
            &admin,
            "PUT",
            "/1",
            &first_etag,
            &mapping_body("x12-837p", "professional only"),
        )
        .await;
    assert_eq!(edited.status, 200, "{edited:?}");
    let etag = edited.header("etag").unwrap().to_owned();
    assert_ne!(etag, first_etag);
    // An editor who read the first content is refused, not silently overwritten.
    let stale = ed
        .with_etag(
            &admin,
            "PUT",
            "/1",
            &first_etag,
            &mapping_body("x12", "lost update"),
        )
        .await;
    assert_eq!(stale.status, 409, "{stale:?}");
    assert_eq!(stale.json()["error_code"], "mapping_stale");
    let shown = ed.as_admin("GET", "/1", "").await;
    assert_eq!(shown.json()["content"], "x12-837p");
    assert_eq!(shown.json()["comment"], "professional only");

    // Maker-checker: not by the author, only the content reviewed, only once reviewed.
    let own = ed.with_etag(&admin, "POST", "/1/approve", &etag, "").await;
    assert_eq!(own.status, 409, "{own:?}");
    assert_eq!(own.json()["error_code"], "mapping_own_draft");
    let unreviewed = ed.as_admin("POST", "/1/activate", "").await;
    assert_eq!(unreviewed.json()["error_code"], "mapping_not_approved");
    let old_review = ed
        .with_etag(&ed.reviewer, "POST", "/1/approve", &first_etag, "")
        .await;
    assert_eq!(old_review.json()["error_code"], "mapping_stale");
    let approved = ed
        .with_etag(&ed.reviewer, "POST", "/1/approve", &etag, "")
        .await;
    assert_eq!(approved.status, 200, "{approved:?}");
    assert_eq!(approved.json()["state"], "approved");
    assert_eq!(approved.json()["approved_by"], "reviewer");
    let frozen = ed
        .with_etag(
            &admin,
            "PUT",
            "/1",
            &etag,
            &mapping_body("x12", "after review"),
        )
        .await;
    assert_eq!(frozen.json()["error_code"], "mapping_not_draft");
    let active = ed.as_admin("POST", "/1/activate", "").await;
    assert_eq!(active.status, 200, "{active:?}");
    assert_eq!(active.json()["state"], "active");

    // An upload records the version active when it was received.
    let first_upload = ed.upload("C-V1").await;
    assert_eq!(ed.version_of(&first_upload).await, 1);
    let also_first = ed.upload("C-V1B").await;
    assert_eq!(ed.version_of(&also_first).await, 1);

    // Version 2 from a JSON definition (stored as TOML), compared with version 1.
    let definition: toml::Value =
        toml::from_str(claimgate::mapping::builtin::builtin("x12-837p").unwrap()).unwrap();
    let mut definition = serde_json::to_value(definition).unwrap();
    definition["claim"]
        .as_object_mut()
        .unwrap()
        .remove("payer_name");
    definition["description"] = json!("837P without the payer name");
    let second = ed
        .as_admin(
            "POST",
            "",
            &json!({ "definition": definition, "comment": "drop payer name" }).to_string(),
        )
        .await;
    assert_eq!(second.status, 201, "{second:?}");
    assert_eq!(second.json()["version"], 2);
    assert!(
        second.json()["content"]
            .as_str()
            .unwrap()
            .contains("[claim")
    );
    let diff = ed.as_admin("GET", "/1/diff/2", "").await;
    assert_eq!(diff.status, 200, "{diff:?}");
    assert_eq!(
        diff.json()["diff"]["fields_removed"],
        json!(["claim.payer_name"])
    );
    assert_eq!(diff.json()["diff"]["fields_added"], json!([]));
    assert!(
        diff.json()["diff"]["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["path"] == "description"),
        "{diff:?}"
    );
    // The draft on a public corpus file: its claims as the independent tools count them.
    if let Some((file, expected)) =
        corpus_file("oopfactory-x12parser/837P_5010/Example1_2_And_3_Combined.txt")
    {
        let request = format!(
            "POST {} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/edi-x12\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            ed.path("/2/preview?claims=200"),
            ed.app.admin_key,
            file.len()
        );
        let mut bytes = request.into_bytes();
        bytes.extend_from_slice(&file);
        let preview = request_with(ed.app.addr, client_config(ClientOptions::default()), &bytes)
            .await
            .unwrap();
        assert_eq!(preview.status, 200, "{preview:?}");
        let body = preview.json();
        assert_eq!(body["summary"]["claims"], expected["claims"]);
        assert_eq!(body["summary"]["lines"], expected["service_lines"]);
        let ids: Vec<serde_json::Value> = body["claims"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["source_claim_id"].clone())
            .collect();
        assert_eq!(serde_json::Value::Array(ids), expected["claim_ids"]);
        assert!(
            body["claims"]
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c["payer_name"].is_null())
        );
    }
    // What version 2 would change on the two files received so far.
    let impact = ed.as_admin("POST", "/2/impact?uploads=2", "").await;
    assert_eq!(impact.status, 200, "{impact:?}");
    assert_eq!(impact.json()["uploads_read"], 2);
    assert_eq!(
        impact.json()["fields"],
        json!([{ "field": "payer_name", "claims_changed": 2, "percent": 100.0 }])
    );
    let etag2 = second.header("etag").unwrap().to_owned();
    let approved = ed
        .with_etag(&ed.reviewer, "POST", "/2/approve", &etag2, "")
        .await;
    assert_eq!(approved.status, 200, "{approved:?}");
    assert_eq!(ed.as_admin("POST", "/2/activate", "").await.status, 200);
    let states: Vec<serde_json::Value> = ed
        .as_admin("GET", "", "")
        .await
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["state"].clone())
        .collect();
    assert_eq!(states, vec![json!("retired"), json!("active")]);
    let second_upload = ed.upload("C-V2").await;
    assert_eq!(ed.version_of(&second_upload).await, 2);
    assert_eq!(ed.version_of(&first_upload).await, 1);

    // Rollback: the earlier reviewed version becomes active again.
    let rolled = ed.as_admin("POST", "/1/activate", "").await;
    assert_eq!(rolled.status, 200, "{rolled:?}");
    let third_upload = ed.upload("C-V3").await;
    assert_eq!(ed.version_of(&third_upload).await, 1);
    assert_eq!(
        ed.app
            .count("SELECT count(*) FROM mapping_versions WHERE state = 'active'")
            .await,
        1
    );

    // Every move is audited with the version and its content hash.
    let trail = ed.app.audit().await;
    for (kind, version_hash) in [
        (
            "mapping.created",
            format!("mappings/1#sha256={}", first_etag.trim_matches('"')),
        ),
        (
            "mapping.changed",
            format!("mappings/1#sha256={}", etag.trim_matches('"')),
        ),
        (
            "mapping.approved",
            format!("mappings/1#sha256={}", etag.trim_matches('"')),
        ),
        (
            "mapping.activated",
            format!("mappings/2#sha256={}", etag2.trim_matches('"')),
        ),
    ] {
        assert!(
            trail
                .iter()
                .any(|e| e.kind == kind && e.body.contains(&version_hash)),
            "{kind} {version_hash}"
        );
    }
}

#[tokio::test]
async fn a_mapping_goes_from_draft_to_active_under_review_and_rolls_back_sqlite() {
    lifecycle_on(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_a_mapping_goes_from_draft_to_active_under_review_and_rolls_back() {
    lifecycle_on(Backend::Postgres).await;
}

/// Who may not touch mappings, and precise refusals of bad requests.
#[tokio::test]
async fn submitters_cannot_read_or_change_mappings_and_bad_requests_are_precise() {
    let ed = editor(Backend::Sqlite, "mapping_refusals").await.unwrap();
    for (method, rest, body) in [
        ("GET", "", String::new()),
        ("POST", "", mapping_body("x12", "")),
        ("POST", "/validate", mapping_body("x12", "")),
        ("GET", "/1", String::new()),
        ("POST", "/1/activate", String::new()),
    ] {
        let refused = ed
            .app
            .call(&ed.submitter, method, &ed.path(rest), &body)
            .await;
        assert_eq!(refused.status, 403, "{method} {rest}: {refused:?}");
    }
    let unknown = ed
        .app
        .call(
            &ed.app.admin_key,
            "POST",
            "/v1/admin/providers/nobody/mappings",
            &mapping_body("x12", ""),
        )
        .await;
    assert_eq!(unknown.status, 404, "{unknown:?}");
    let missing = ed.as_admin("GET", "/7", "").await;
    assert_eq!(missing.status, 404);
    for (sent, code) in [
        (json!({ "comment": "neither" }), "invalid_field"),
        (
            json!({ "mapping": "x12", "definition": {} }),
            "invalid_field",
        ),
        (json!({ "mapping": "[claim" }), "mapping_invalid"),
        (
            json!({ "mapping": "x12", "author": "someone else" }),
            "malformed_json",
        ),
        (json!({ "definition": { "name": null } }), "mapping_invalid"),
        (
            json!({ "mapping": "name = \"m\"\nformat = \"csv\"\n[claim]\nsource_claim_id = { column = \"ID\", transforms = [{ shout = 1 }] }\n" }),
            "mapping_invalid",
        ),
    ] {
        let refused = ed.as_admin("POST", "", &sent.to_string()).await;
        assert_eq!(refused.status, 400, "{sent}: {refused:?}");
        assert_eq!(refused.json()["error_code"], code, "{sent}");
    }
    // A pattern too large for the regex engine's size limit (the engine never
    // backtracks, so a pattern that compiles runs in linear time): refused at its path.
    let expensive = ed
        .as_admin(
            "POST",
            "/validate",
            &mapping_body(
                "name = \"m\"\nformat = \"csv\"\n[claim]\nsource_claim_id = { column = \"ID\", transforms = [\"trim\", { regex = \"(a{1000}){1000}\" }] }\n",
                "",
            ),
        )
        .await;
    assert_eq!(expensive.status, 400, "{expensive:?}");
    assert_eq!(
        expensive.json()["problems"][0]["path"],
        "claim.source_claim_id.transforms[1]",
        "{expensive:?}"
    );
    let drafted = ed.as_admin("POST", "", &mapping_body("x12", "")).await;
    assert_eq!(drafted.status, 201);
    let malformed = ed
        .with_etag(&ed.reviewer, "POST", "/1/approve", "W/\"abc\"", "")
        .await;
    assert_eq!(malformed.status, 400, "{malformed:?}");
    assert_eq!(
        ed.app.count("SELECT count(*) FROM mapping_versions").await,
        1,
        "refused requests stored nothing"
    );
}

/// A database that had a mapping assigned before versions existed: after migration 8 the
/// mapping is version 1, active and marked unreviewed, and queued uploads point at it.
async fn assigned_mappings_survive_the_migration_on(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let database = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => {
            let Some(admin) = postgres_admin_url("mapping_migration").await else {
                return;
            };
            Some(TestDatabase::create(&admin).await)
        }
    };
    let settings = test_settings(dir.path(), database.as_ref().map(|d| d.url.as_str()), &[]);
    let url = secrecy::ExposeSecret::expose_secret(&settings.database.url).to_owned();
    let before = "INSERT INTO providers (code, name, created_at, mapping) VALUES ('acme', 'Acme', '2026-11-01T00:00:00Z', 'x12'); \
         INSERT INTO providers (code, name, created_at) VALUES ('bare', 'Bare', '2026-11-01T00:00:00Z'); \
         INSERT INTO uploads (upload_id, provider_id, sha256, size_bytes, state, received_at) \
         VALUES ('u1', (SELECT id FROM providers WHERE code = 'acme'), {sha}, 1, 'received', '2026-11-02T00:00:00Z')";
    let store = claimgate::store::Store::connect(&settings.database)
        .await
        .unwrap();
    if let Some(database) = &database {
        const SHA: &str = "'\\x00'::bytea";
        let migrator = sqlx::migrate::Migrator::new(std::path::Path::new("migrations/postgres"))
            .await
            .unwrap();
        let mut conn = sqlx::PgConnection::connect(&database.url).await.unwrap();
        // Another test's database may be changing the same cluster-wide role right now
        // (the gateway retries this too).
        let mut attempts = 0;
        while let Err(e) = migrator.run_to(7, &mut conn).await {
            attempts += 1;
            assert!(
                attempts < 5 && e.to_string().contains("tuple concurrently updated"),
                "{e}"
            );
            conn = sqlx::PgConnection::connect(&database.url).await.unwrap();
        }
        sqlx::raw_sql(sqlx::AssertSqlSafe(before.replace("{sha}", SHA)))
            .execute(&mut conn)
            .await
            .unwrap();
    } else {
        const SHA: &str = "x'00'";
        let migrator = sqlx::migrate::Migrator::new(std::path::Path::new("migrations/sqlite"))
            .await
            .unwrap();
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        migrator.run_to(7, &mut conn).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(before.replace("{sha}", SHA)))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    store.migrate().await.unwrap();
    let acme = claimgate::providers::ProviderCode::parse("acme").unwrap();
    let bare = claimgate::providers::ProviderCode::parse("bare").unwrap();
    assert_eq!(
        store.active_mapping(&acme).await.unwrap().as_deref(),
        Some("x12")
    );
    assert_eq!(store.active_mapping(&bare).await.unwrap(), None);
    let versions = store.mapping_versions(&acme).await.unwrap();
    assert_eq!(versions.len(), 1);
    assert_eq!(versions[0].version, 1);
    assert_eq!(versions[0].state.as_str(), "active");
    assert_eq!(versions[0].approved_by, None, "not reviewed: says so");
    assert_eq!(versions[0].activated_by.as_deref(), Some("migration-0008"));
    let claimed = store
        .claim_upload("w", std::time::Duration::from_secs(300), Some("u1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.mapping.as_deref(), Some("x12"));
}

#[tokio::test]
async fn assigned_mappings_survive_the_migration_sqlite() {
    assigned_mappings_survive_the_migration_on(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_assigned_mappings_survive_the_migration() {
    assigned_mappings_survive_the_migration_on(Backend::Postgres).await;
}

/// A preview reads a sample with a stored version and stores nothing; PHI only for a
/// caller who also holds `phi_reader` on the provider; the sample's size is limited.
#[tokio::test]
async fn a_preview_reads_a_sample_stores_nothing_and_masks_phi_without_phi_reader() {
    let app = TestApp::on(
        Backend::Sqlite,
        "mapping_preview",
        &[("CLAIMGATE_HTTP__MAX_SAMPLE_BYTES", "20000")],
    )
    .await
    .unwrap();
    app.provider("acme").await;
    let drafted = app
        .call(
            &app.admin_key,
            "POST",
            "/v1/admin/providers/acme/mappings",
            &mapping_body("x12", "to preview"),
        )
        .await;
    assert_eq!(drafted.status, 201);
    let clinician = app
        .principal(
            "onboarding-lead",
            "person",
            json!([{ "role": "mapping_admin" }, { "role": "phi_reader", "provider": "acme" }]),
        )
        .await;
    let submitter = app
        .principal(
            "acme-sftp",
            "system",
            json!([{ "role": "provider_submitter", "provider": "acme" }]),
        )
        .await;
    let mut bad = X12Claim::new("PREV2", 200);
    bad.member = String::new();
    let sample = x12_837p(&[X12Claim::new("PREV1", 100), bad]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sample.x12");
    std::fs::write(&file, &sample).unwrap();
    let port = app.addr.port();
    let curl = |token: &str, args: &[&str], query: &str| {
        let output = std::process::Command::new("curl")
            .args(["-sS", "--cacert"])
            .arg(certs().join("ca.pem"))
            .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .args(["-w", "\n%{http_code}"])
            .args(args)
            .arg(format!(
                "https://localhost:{port}/v1/admin/providers/acme/mappings/1/preview{query}"
            ))
            .output()
            .expect("curl is installed");
        let text = String::from_utf8(output.stdout).unwrap();
        let (body, status) = text.rsplit_once('\n').unwrap();
        (status.parse::<u16>().unwrap(), body.to_owned())
    };
    let as_file = format!("file=@{}", file.display());
    let raw = format!("@{}", file.display());

    // A mapping admin without phi_reader: the mapping's effect, not the patients.
    let (status, masked) = curl(&app.admin_key, &["-F", &as_file], "");
    assert_eq!(status, 200, "{masked}");
    for phi in ["ZZMPREV1", "ZZLASTPREV"] {
        assert!(
            !masked.contains(phi),
            "{phi} leaked into the masked preview"
        );
    }
    let masked: serde_json::Value = serde_json::from_str(&masked).unwrap();
    assert_eq!(masked["phi"], "masked");
    assert_eq!(masked["claims"][0]["member_id"], "***");
    assert_eq!(masked["claims"][0]["patient_last_name"], "***");
    assert_eq!(masked["claims"][0]["source_claim_id"], "PREV1");
    assert_eq!(masked["claims"][0]["total_charge_cents"], 100);
    assert_eq!(masked["summary"]["records"], 2);
    assert_eq!(masked["summary"]["accepted"], 1);
    assert_eq!(masked["summary"]["rejected"], 1);
    let findings = masked["findings"].as_array().unwrap();
    assert!(
        findings
            .iter()
            .any(|f| f["severity"] == "error" && f["position"]["record"] == 2),
        "{findings:?}"
    );

    // With phi_reader on the provider: the values, as a raw body, one claim asked for.
    let (status, shown) = curl(
        &clinician,
        &[
            "-H",
            "Content-Type: application/edi-x12",
            "--data-binary",
            &raw,
        ],
        "?claims=1",
    );
    assert_eq!(status, 200, "the preview with phi_reader failed");
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["phi"], "shown");
    assert_eq!(shown["claims"].as_array().unwrap().len(), 1);
    assert_eq!(shown["claims"][0]["member_id"], "ZZMPREV1");

    // Refusals: no permission, a bad count, an empty or oversized sample, no version.
    assert_eq!(curl(&submitter, &["-F", &as_file], "").0, 403);
    assert_eq!(curl(&app.admin_key, &["-F", &as_file], "?claims=0").0, 400);
    let empty = dir.path().join("empty.x12");
    std::fs::write(&empty, b"").unwrap();
    let (status, body) = curl(
        &app.admin_key,
        &[
            "-H",
            "Content-Type: application/edi-x12",
            "--data-binary",
            &format!("@{}", empty.display()),
        ],
        "",
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("empty_sample"), "{body}");
    let big = dir.path().join("big.x12");
    std::fs::write(&big, vec![b'A'; 30_000]).unwrap();
    let (status, body) = curl(
        &app.admin_key,
        &[
            "-H",
            "Content-Type: application/edi-x12",
            "--data-binary",
            &format!("@{}", big.display()),
        ],
        "",
    );
    assert_eq!(status, 413, "{body}");
    let missing = app
        .call(
            &app.admin_key,
            "POST",
            "/v1/admin/providers/acme/mappings/9/preview",
            "",
        )
        .await;
    assert_eq!(missing.status, 415, "a file content type is required first");

    // Nothing was stored, and each preview was audited, with whether PHI was shown.
    assert_eq!(app.count("SELECT count(*) FROM uploads").await, 0);
    assert_eq!(app.count("SELECT count(*) FROM claims").await, 0);
    let previews: Vec<_> = app
        .audit()
        .await
        .into_iter()
        .filter(|e| e.kind == "mapping.previewed")
        .collect();
    assert_eq!(previews.len(), 2, "{previews:?}");
    assert!(previews.iter().any(|e| e.body.contains("\"phi\":true")));
    assert!(previews.iter().any(|e| e.body.contains("\"phi\":false")));
}

/// `claimgate mapping import|export|versions`: a file from git becomes a draft, and a
/// stored version comes back out byte for byte.
#[tokio::test]
async fn the_console_imports_a_definition_file_as_a_draft_and_exports_it_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let env = test_env(&dir.path().join("data"), None, &[]);
    let settings = claimgate::config::Settings::load(None, env.clone()).unwrap();
    let store = claimgate::store::Store::connect(&settings.database)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    store
        .create_provider(
            &claimgate::authz::ProviderAdmin::operator_console(),
            &claimgate::providers::ProviderCode::parse("acme").unwrap(),
            &claimgate::providers::ProviderName::parse("Acme").unwrap(),
            &claimgate::audit::AuditEvent::new(
                claimgate::audit::EventKind::ProviderCreated,
                claimgate::audit::Outcome::Success,
            ),
        )
        .await
        .unwrap();
    let claimgate = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_claimgate"))
            .arg("mapping")
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env.iter().cloned())
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8(output.stdout).unwrap(),
            String::from_utf8(output.stderr).unwrap(),
        )
    };
    let file = "schemas/examples/desynpuf-carrier.toml";
    let (ok, out, err) = claimgate(&[
        "import",
        "--provider",
        "acme",
        "--comment",
        "from git",
        file,
    ]);
    assert!(ok, "{err}");
    let text = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file))
        .unwrap();
    let sha = hex::encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        text.as_bytes(),
    ));
    assert!(
        out.contains("version 1 drafted") && out.contains(&sha),
        "{out}"
    );
    let (ok, exported, err) = claimgate(&["export", "--provider", "acme", "--version", "1"]);
    assert!(ok, "{err}");
    assert_eq!(exported, text, "exported byte for byte");
    let (ok, listed, _) = claimgate(&["versions", "--provider", "acme"]);
    assert!(ok);
    assert!(
        listed.contains("draft")
            && listed.contains("operator-console")
            && listed.contains("from git"),
        "{listed}"
    );
    // Nothing is active until a mapping admin approves and activates it.
    let (ok, _, err) = claimgate(&["export", "--provider", "acme"]);
    assert!(!ok);
    assert!(err.contains("no active version"), "{err}");
    // A broken file is refused with its problems; an unknown provider by name.
    let broken = dir.path().join("broken.toml");
    std::fs::write(
        &broken,
        "name = \"b\"\nformat = \"csv\"\n[claim]\nnope = { column = \"X\" }\n",
    )
    .unwrap();
    let (ok, _, err) = claimgate(&["import", "--provider", "acme", broken.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("claim.nope"), "{err}");
    let (ok, _, err) = claimgate(&["import", "--provider", "nobody", file]);
    assert!(!ok);
    assert!(err.contains("no such provider"), "{err}");
    let acme = claimgate::providers::ProviderCode::parse("acme").unwrap();
    assert_eq!(store.mapping_versions(&acme).await.unwrap().len(), 1);
}

/// Impact: a candidate read against the provider's latest stored files gives per-field
/// change counts and the movement of rejects versus the active version, values never.
#[tokio::test]
async fn impact_counts_what_a_candidate_would_change_on_stored_files() {
    let ed = editor(Backend::Sqlite, "mapping_impact").await.unwrap();
    ed.app.activate_mapping("acme", "x12").await;
    ed.upload("IMP1").await;
    let mut bad = X12Claim::new("IMP3", 300);
    bad.member = String::new();
    let file = x12_837p(&[X12Claim::new("IMP2", 200), bad]);
    let sent = upload_at(ed.app.addr, &ed.submitter, &file, X12).await;
    let id = sent.json()["upload_id"].as_str().unwrap().to_owned();
    receipt_when_finished(ed.app.addr, &ed.submitter, &id).await;

    // Version 2 drops the payer name; version 3 requires a facility NPI, which no claim
    // of these files has.
    let definition = |edit: &dyn Fn(&mut serde_json::Value)| {
        let toml: toml::Value =
            toml::from_str(claimgate::mapping::builtin::builtin("x12-837p").unwrap()).unwrap();
        let mut json = serde_json::to_value(toml).unwrap();
        edit(&mut json);
        json!({ "definition": json }).to_string()
    };
    let v2 = ed
        .as_admin(
            "POST",
            "",
            &definition(&|d| {
                d["claim"].as_object_mut().unwrap().remove("payer_name");
            }),
        )
        .await;
    assert_eq!(v2.json()["version"], 2, "{v2:?}");
    let impact = ed.as_admin("POST", "/2/impact?uploads=5", "").await;
    assert_eq!(impact.status, 200, "{impact:?}");
    let body = impact.json();
    assert_eq!(body["against_version"], 1);
    assert_eq!(body["uploads_read"], 2);
    assert_eq!(body["claims_compared"], 3);
    assert_eq!(body["current"]["rejected"], 1);
    assert_eq!(body["more_rejects"], 0);
    assert_eq!(
        body["fields"],
        json!([{ "field": "payer_name", "claims_changed": 3, "percent": 100.0 }])
    );
    for value in ["IMP1", "IMP2", "PAYER", "ZZM"] {
        assert!(!impact.body.contains(value), "{value} in the impact answer");
    }
    let v3 = ed
        .as_admin(
            "POST",
            "",
            &definition(&|d| {
                d["claim"]["facility_npi"]["required"] = json!(true);
            }),
        )
        .await;
    assert_eq!(v3.json()["version"], 3, "{v3:?}");
    let stricter = ed.as_admin("POST", "/3/impact?uploads=1", "").await.json();
    assert_eq!(stricter["uploads_read"], 1, "the latest upload only");
    assert_eq!(stricter["claims_compared"], 2);
    assert_eq!(stricter["newly_rejected"], 1, "{stricter}");
    assert_eq!(stricter["more_rejects"], 1);
    // Bad requests and the audit trail.
    assert_eq!(
        ed.as_admin("POST", "/3/impact?uploads=0", "").await.status,
        400
    );
    assert_eq!(ed.as_admin("POST", "/9/impact", "").await.status, 404);
    let measured = ed
        .app
        .audit()
        .await
        .into_iter()
        .filter(|e| e.kind == "mapping.impact_measured")
        .count();
    assert_eq!(measured, 2);
}

/// A disabled provider's submitters are refused before their file is stored; what it
/// sent before stays readable.
async fn a_disabled_provider_sends_no_more_files_on(backend: Backend) {
    let Some(ed) = editor(backend, "provider_disable").await else {
        return;
    };
    ed.app.activate_mapping("acme", "x12").await;
    let before = ed.upload("DIS1").await;
    let disable = |token: String, code: &'static str| {
        let addr = ed.app.addr;
        async move {
            call_at(
                addr,
                &token,
                "POST",
                &format!("/v1/admin/providers/{code}/disable"),
                "",
            )
            .await
        }
    };
    assert_eq!(disable(ed.submitter.clone(), "acme").await.status, 403);
    assert_eq!(
        disable(ed.app.admin_key.clone(), "nobody").await.status,
        404
    );
    let disabled = disable(ed.app.admin_key.clone(), "acme").await;
    assert_eq!(disabled.status, 200, "{disabled:?}");
    assert_eq!(disabled.json()["disabled"], true);
    assert_eq!(disable(ed.app.admin_key.clone(), "acme").await.status, 200);
    let file = x12_837p(&[X12Claim::new("DIS2", 100)]);
    let refused = upload_at(ed.app.addr, &ed.submitter, &file, X12).await;
    assert_eq!(refused.status, 403, "{refused:?}");
    assert_eq!(refused.json()["error_code"], "provider_disabled");
    assert_eq!(ed.app.count("SELECT count(*) FROM uploads").await, 1);
    let receipt = ed
        .app
        .call(&ed.submitter, "GET", &format!("/v1/uploads/{before}"), "")
        .await;
    assert_eq!(receipt.status, 200);
    assert_eq!(
        ed.app
            .audit()
            .await
            .iter()
            .filter(|e| e.kind == "provider.disabled")
            .count(),
        2
    );
}

#[tokio::test]
async fn a_disabled_provider_sends_no_more_files_sqlite() {
    a_disabled_provider_sends_no_more_files_on(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_a_disabled_provider_sends_no_more_files() {
    a_disabled_provider_sends_no_more_files_on(Backend::Postgres).await;
}
