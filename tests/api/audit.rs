//! The audit trail through the real server: tampering is detected and named, a failed
//! append refuses the action and leaves nothing of it, the journal file and the database
//! agree, exports round-trip against their signed manifest, search filters and pages.

use std::time::Duration;

use claimgate::audit::Journal;
use claimgate::crypto::{SigningKey, verify_signature};
use serde_json::json;

use crate::helpers::*;

/// A running app with six provider creations on the trail (events 4 to 9, after the
/// bootstrap admin, the start and the admin key's first use) and a signed checkpoint of
/// that head.
async fn app_with_history(backend: Backend) -> Option<TestApp> {
    let app = TestApp::on(
        backend,
        "audit_history",
        &[("CLAIMGATE_AUDIT__CHECKPOINT_INTERVAL_SECS", "1")],
    )
    .await?;
    for n in 1..=6 {
        app.provider(&format!("p{n}")).await;
    }
    // The checkpoint task runs every second; give it up to ten under load.
    for _ in 0..100 {
        if app
            .count("SELECT count(*) FROM audit_checkpoints WHERE seq = 9")
            .await
            == 1
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let kinds: Vec<String> = app.audit().await.into_iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds[..4],
        [
            "principal.created",
            "server.started",
            "auth.success",
            "provider.created"
        ]
    );
    assert_eq!(
        app.count("SELECT count(*) FROM audit_checkpoints WHERE seq = 9")
            .await,
        1,
        "the head was checkpointed: {kinds:?}"
    );
    Some(app)
}

async fn verify_via_api(app: &TestApp, token: &str) -> serde_json::Value {
    let response = app.call(token, "GET", "/v1/audit/verify", "").await;
    assert_eq!(response.status, 200, "{response:?}");
    response.json()
}

async fn tampering_on(backend: Backend) {
    let unlock = match backend {
        Backend::Sqlite => {
            "DROP TRIGGER audit_events_no_update; DROP TRIGGER audit_events_no_delete;"
        }
        Backend::Postgres => "ALTER TABLE audit_events DISABLE TRIGGER USER;",
    };
    let cases = [
        (
            "one field changed",
            "UPDATE audit_events SET body = replace(body, '\"p2\"', '\"p9\"') WHERE seq = 5",
            5,
        ),
        (
            "an event deleted",
            "DELETE FROM audit_events WHERE seq = 6",
            6,
        ),
        (
            "two events reordered",
            "UPDATE audit_events SET seq = -7 WHERE seq = 7; UPDATE audit_events SET seq = 7 WHERE seq = 8; \
             UPDATE audit_events SET seq = 8 WHERE seq = -7",
            7,
        ),
        ("the tail cut", "DELETE FROM audit_events WHERE seq > 7", 8),
    ];
    for (what, sql, first_bad) in cases {
        let Some(app) = app_with_history(backend).await else {
            return;
        };
        let auditor = app
            .principal(
                "auditor",
                "person",
                json!([{ "role": "compliance_auditor" }]),
            )
            .await;
        let clean = verify_via_api(&app, &auditor).await;
        assert_eq!(clean["ok"], true, "{what}: {clean}");
        app.sql(&format!("{unlock} {sql}")).await;
        let report = verify_via_api(&app, &auditor).await;
        assert_eq!(report["ok"], false, "{what}: {report}");
        assert_eq!(report["first_bad_seq"], first_bad, "{what}: {report}");
    }
}

#[tokio::test]
async fn tampering_is_detected_and_the_first_bad_event_named_sqlite() {
    tampering_on(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_tampering_is_detected_and_the_first_bad_event_named() {
    tampering_on(Backend::Postgres).await;
}

async fn fail_closed_on(backend: Backend) {
    let Some(app) = TestApp::on(backend, "audit_fail_closed", &[]).await else {
        return;
    };
    let events_before = app.count("SELECT count(*) FROM audit_events").await;
    app.sql(match backend {
        Backend::Sqlite => {
            "CREATE TRIGGER audit_down BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'down'); END;"
        }
        Backend::Postgres => "REVOKE INSERT ON audit_events FROM claimgate_audit_writer",
    })
    .await;
    let provider = app
        .call(
            &app.admin_key,
            "POST",
            "/v1/admin/providers",
            r#"{"code":"acme","name":"Acme"}"#,
        )
        .await;
    assert_eq!(provider.status, 503, "{provider:?}");
    assert_eq!(provider.json()["error_code"], "audit_unavailable");
    let principal = app
        .call(
            &app.admin_key,
            "POST",
            "/v1/admin/principals",
            r#"{"name":"ghost","kind":"system"}"#,
        )
        .await;
    assert_eq!(principal.status, 503);
    assert_eq!(principal.header("content-type"), Some("application/json"));
    assert!(!principal.body.contains("cgk_"), "no key was handed out");
    assert_eq!(app.count("SELECT count(*) FROM providers").await, 0);
    assert_eq!(
        app.count("SELECT count(*) FROM principals WHERE name = 'ghost'")
            .await,
        0
    );
    assert_eq!(
        app.count("SELECT count(*) FROM api_keys").await,
        1,
        "the bootstrap key only"
    );
    let refused = app.call("cgk_bad", "GET", "/v1/whoami", "").await;
    assert_eq!(
        refused.status, 503,
        "a failure that cannot be recorded is not answered 401"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM audit_events").await,
        events_before
    );
}

#[tokio::test]
async fn an_unrecordable_action_is_refused_and_leaves_nothing_sqlite() {
    fail_closed_on(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_an_unrecordable_action_is_refused_and_leaves_nothing() {
    fail_closed_on(Backend::Postgres).await;
}

/// Mixed actions: creations, grants, a refusal, a bad credential, break-glass, PHI reads.
async fn mixed_actions(app: &TestApp) -> String {
    app.provider("acme").await;
    app.store_claims("acme", "u1", &[phi_claim(CANARY, "AUD")])
        .await;
    let analyst = app
        .principal("ann", "person", json!([{ "role": "analyst" }]))
        .await;
    assert_eq!(
        app.call(
            &analyst,
            "GET",
            "/v1/providers/acme/claims?purpose=payment",
            ""
        )
        .await
        .status,
        403
    );
    assert_eq!(
        app.call("cgk_nope", "GET", "/v1/whoami", "").await.status,
        401
    );
    let glass = app
        .call(
            &analyst,
            "POST",
            "/v1/providers/acme/break-glass",
            &json!({ "reason": format!("chart of {CANARY} needed") }).to_string(),
        )
        .await;
    assert_eq!(glass.status, 201);
    let read = app
        .call(
            &analyst,
            "GET",
            "/v1/providers/acme/claims?purpose=payment",
            "",
        )
        .await;
    assert!(read.body.contains(CANARY), "the PHI read works");
    app.principal(
        "auditor",
        "person",
        json!([{ "role": "compliance_auditor" }]),
    )
    .await
}

#[tokio::test]
async fn the_journal_file_and_the_database_hold_the_same_events_and_no_phi() {
    let app = TestApp::sqlite(&[]).await;
    mixed_actions(&app).await;
    let database = app.audit().await;
    let journal = Journal::read_all(&app.settings.audit.dir).unwrap();
    assert!(database.len() >= 9, "{}", database.len());
    assert_eq!(journal.len(), database.len());
    for (line, row) in journal.iter().zip(&database) {
        assert_eq!(line.seq, row.seq);
        assert_eq!(line.hash, hex::encode(&row.hash));
        assert_eq!(line.prev_hash, hex::encode(&row.prev_hash));
        assert_eq!(line.body, row.body);
    }
    for entry in std::fs::read_dir(&app.settings.audit.dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        assert!(!text.contains(CANARY), "no PHI in the journal");
    }
    assert!(
        database.iter().all(|e| !e.body.contains(CANARY)),
        "no PHI in the table"
    );
}

/// Splits one CSV line (quoted cells, doubled quotes).
fn csv_cells(line: &str) -> Vec<String> {
    let mut cells = Vec::new();
    let mut chars = line.chars().peekable();
    while chars.peek().is_some() {
        assert_eq!(chars.next(), Some('"'), "every cell is quoted: {line}");
        let mut cell = String::new();
        loop {
            match chars.next() {
                Some('"') if chars.peek() == Some(&'"') => {
                    chars.next();
                    cell.push('"');
                }
                Some('"') => break,
                Some(c) => cell.push(c),
                None => panic!("unterminated cell in {line}"),
            }
        }
        cells.push(cell);
        let _ = chars.next(); // the comma, or nothing at the end
    }
    cells
}

fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for part in parts {
        ctx.update(part);
    }
    hex::encode(ctx.finish().as_ref())
}

#[tokio::test]
async fn an_export_round_trips_against_its_signed_manifest() {
    let app = TestApp::sqlite(&[]).await;
    let from = time::OffsetDateTime::now_utc() - time::Duration::seconds(1);
    let auditor = mixed_actions(&app).await;
    let to = time::OffsetDateTime::now_utc() + time::Duration::seconds(1);
    let rfc = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
            .replace('+', "%2B")
            .replace(':', "%3A")
    };
    let range = format!("from={}&to={}", rfc(from), rfc(to));
    let manifest = app
        .call(
            &auditor,
            "GET",
            &format!("/v1/audit/export/manifest?{range}"),
            "",
        )
        .await;
    assert_eq!(manifest.status, 200, "{manifest:?}");
    let manifest = manifest.json();

    // The signature holds for the gateway's key, over the manifest without it.
    let key = SigningKey::load(&app.settings.keys.audit_signing_key, app.settings.profile).unwrap();
    let mut unsigned = manifest.clone();
    let signature = hex::decode(
        unsigned
            .as_object_mut()
            .unwrap()
            .remove("signature")
            .unwrap()
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let message = serde_json::to_vec(&unsigned).unwrap();
    assert!(verify_signature(&key.public_key(), &message, &signature));
    let mut forged = unsigned.clone();
    forged["count"] = json!(0);
    assert!(!verify_signature(
        &key.public_key(),
        &serde_json::to_vec(&forged).unwrap(),
        &signature
    ));

    // The JSON-lines export of the same range, pinned to the manifest's head.
    let until = manifest["head_seq"].as_i64().unwrap();
    let export = app
        .call(
            &auditor,
            "GET",
            &format!("/v1/audit/export?{range}&until_seq={until}&format=jsonl"),
            "",
        )
        .await;
    assert_eq!(export.status, 200);
    let rows: Vec<serde_json::Value> = export
        .body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len() as u64, manifest["count"].as_u64().unwrap());
    assert!(rows.len() >= 9);
    assert_eq!(rows[0]["seq"], manifest["first_seq"]);
    assert_eq!(rows[rows.len() - 1]["seq"], manifest["last_seq"]);
    let mut digest = String::new();
    for row in &rows {
        let prev = hex::decode(row["prev_hash"].as_str().unwrap()).unwrap();
        let body = row["body"].as_str().unwrap();
        assert_eq!(
            sha256_hex(&[&prev, body.as_bytes()]),
            row["hash"].as_str().unwrap(),
            "each row's hash recomputes"
        );
        digest.push_str(row["hash"].as_str().unwrap());
        digest.push('\n');
        assert!(!body.contains(CANARY));
    }
    assert_eq!(sha256_hex(&[digest.as_bytes()]), manifest["rows_digest"]);

    // The CSV export carries the same rows, every cell quoted, the body last.
    let csv = app
        .call(
            &auditor,
            "GET",
            &format!("/v1/audit/export?{range}&until_seq={until}&format=csv"),
            "",
        )
        .await;
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    let lines: Vec<&str> = csv.body.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(csv_cells(lines[0])[0], "seq");
    assert_eq!(lines.len() - 1, rows.len());
    for (line, row) in lines[1..].iter().zip(&rows) {
        let cells = csv_cells(line);
        assert_eq!(cells.len(), 17);
        assert_eq!(cells[15], row["hash"].as_str().unwrap());
        assert_eq!(cells[16], row["body"].as_str().unwrap());
    }

    // A value a spreadsheet would run as a formula is exported as text.
    let store = claimgate::store::Store::connect(&app.settings.database)
        .await
        .unwrap();
    let mut crafted = claimgate::audit::AuditEvent::new(
        claimgate::audit::EventKind::AuditRead,
        claimgate::audit::Outcome::Success,
    );
    crafted.resource = Some("=HYPERLINK(\"http://evil.example\",\"x\")".into());
    let seq = store.append_audit(&crafted).await.unwrap();
    let csv = app
        .call(
            &auditor,
            "GET",
            &format!("/v1/audit/export?format=csv&action=audit.read&until_seq={seq}"),
            "",
        )
        .await;
    let line = csv
        .body
        .split("\r\n")
        .find(|l| l.starts_with(&format!("\"{seq}\"")))
        .unwrap();
    let cells = csv_cells(line);
    assert_eq!(cells[7], "'=HYPERLINK(\"http://evil.example\",\"x\")");
    assert!(
        cells[16].starts_with('{'),
        "the body cell is JSON, unchanged"
    );

    // Exports are audited.
    let trail = app.audit().await;
    assert!(trail.iter().filter(|e| e.kind == "audit.exported").count() >= 3);
}

#[tokio::test]
async fn search_filters_and_pages_with_a_cursor() {
    let app = TestApp::sqlite(&[]).await;
    for n in 1..=5 {
        app.provider(&format!("p{n}")).await;
    }
    let auditor = app
        .principal(
            "auditor",
            "person",
            json!([{ "role": "compliance_auditor" }]),
        )
        .await;
    let page = |path: String| {
        let app = &app;
        let auditor = auditor.clone();
        async move {
            let response = app.call(&auditor, "GET", &path, "").await;
            assert_eq!(response.status, 200, "{response:?}");
            response.json()
        }
    };
    let first = page("/v1/audit/events?action=provider.created&limit=2".into()).await;
    let codes = |v: &serde_json::Value| -> Vec<String> {
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event"]["provider"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    assert_eq!(codes(&first), ["p1", "p2"]);
    let next = first["next"].as_i64().unwrap();
    let second = page(format!(
        "/v1/audit/events?action=provider.created&limit=2&after={next}"
    ))
    .await;
    assert_eq!(codes(&second), ["p3", "p4"]);
    let third = page(format!(
        "/v1/audit/events?action=provider.created&limit=2&after={}",
        second["next"].as_i64().unwrap()
    ))
    .await;
    assert_eq!(codes(&third), ["p5"]);
    assert!(third["next"].is_null());

    let by_resource = page("/v1/audit/events?resource=principal%3Aauditor".into()).await;
    assert_eq!(by_resource["events"].as_array().unwrap().len(), 1);
    let denied = page("/v1/audit/events?outcome=denied".into()).await;
    assert!(denied["events"].as_array().unwrap().is_empty());
    for bad in [
        "/v1/audit/events?limit=0",
        "/v1/audit/events?from=yesterday",
        "/v1/audit/events?actor=me",
        "/v1/audit/events?colour=red",
        "/v1/audit/export?format=xlsx",
    ] {
        let response = app.call(&auditor, "GET", bad, "").await;
        assert_eq!(response.status, 400, "{bad}: {response:?}");
    }
}
