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
    app.provider("zeta").await;
    app.activate_mapping("zeta", "x12").await;
    app.store_claims("zeta", "up1", &[phi_claim("Z-1", "AX")])
        .await;
    let submitter = app
        .principal(
            "zeta-up",
            "system",
            json!([{ "role": "provider_submitter", "provider": "zeta" }]),
        )
        .await;
    let reader = app
        .principal(
            "reader",
            "person",
            json!([{ "role": "phi_reader", "provider": "zeta" }]),
        )
        .await;
    let listed = app
        .call(
            &reader,
            "GET",
            "/v1/providers/zeta/claims?purpose=payment",
            "",
        )
        .await
        .json();
    let claim = format!(
        "/v1/providers/zeta/claims/{}?purpose=payment",
        listed[0]["id"].as_i64().unwrap()
    );
    let file = x12_837p(&[X12Claim::new("F-1", 100)]);
    const X12: &str = "Content-Type: application/edi-x12\r\n";
    let providers_before = app.count("SELECT count(*) FROM providers").await;
    let keys_before = app.count("SELECT count(*) FROM api_keys").await;
    let uploads_before = app.count("SELECT count(*) FROM uploads").await;
    let events_before = app.count("SELECT count(*) FROM audit_events").await;
    let down = match backend {
        Backend::Sqlite => "DROP TRIGGER audit_down",
        Backend::Postgres => "GRANT INSERT ON audit_events TO claimgate_audit_writer",
    };
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
    // A PHI read that cannot be recorded returns no PHI; an upload is not acknowledged.
    let shown = app.call(&reader, "GET", &claim, "").await;
    assert_eq!(shown.status, 503, "{shown:?}");
    assert_eq!(shown.json()["error_code"], "audit_unavailable");
    assert!(!shown.body.contains("ZZ"), "no PHI in a refused read");
    let sent = upload_at(app.addr, &submitter, &file, X12).await;
    assert_eq!(sent.status, 503, "{sent:?}");
    assert_eq!(sent.json()["error_code"], "audit_unavailable");
    assert_eq!(
        app.count("SELECT count(*) FROM uploads").await,
        uploads_before
    );
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
    assert_eq!(
        app.count("SELECT count(*) FROM providers").await,
        providers_before
    );
    assert_eq!(
        app.count("SELECT count(*) FROM principals WHERE name = 'ghost'")
            .await,
        0
    );
    assert_eq!(
        app.count("SELECT count(*) FROM api_keys").await,
        keys_before,
        "no key was added"
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
    assert_eq!(app.count("SELECT count(*) FROM claims").await, 1);

    // Once the sink takes writes again, so does the gateway.
    app.sql(down).await;
    let shown = app.call(&reader, "GET", &claim, "").await;
    assert_eq!(shown.status, 200, "{shown:?}");
    assert_eq!(shown.json()["member_id"], "ZZMEMAX");
    let sent = upload_at(app.addr, &submitter, &file, X12).await;
    assert_eq!(sent.status, 202, "{sent:?}");
    let id = sent.json()["upload_id"].as_str().unwrap().to_owned();
    let receipt = receipt_when_finished(app.addr, &submitter, &id).await;
    assert_eq!(receipt["state"], "done", "{receipt}");
    assert_eq!(app.count("SELECT count(*) FROM claims").await, 2);
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

/// LG-04: values that try to forge log or audit lines (a newline followed by a JSON
/// event, ANSI escapes) in a credential, a header and a JSON body. Every line the gateway
/// writes to its log and to the journal stays one JSON object, no raw escape byte is
/// written, and no event is forged.
#[tokio::test]
async fn forged_lines_and_terminal_escapes_stay_inside_one_json_line() {
    use sqlx::Connection as _;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // The production log format: one JSON object a line.
    let env = test_env(&data, None, &[("CLAIMGATE_LOG__FORMAT", "json")]);
    let gateway = Gateway::start(dir.path(), &env);
    let forged = "x\n{\"kind\":\"auth.success\",\"outcome\":\"success\"}\u{1b}[2J\u{1b}[31m";
    let body = json!({ "code": "acme", "name": forged }).to_string();
    let created = call_at(
        gateway.addr,
        &gateway.admin_key,
        "POST",
        "/v1/admin/providers",
        &body,
    )
    .await;
    assert!(matches!(created.status, 201 | 400), "{created:?}");
    let escaped = "Bearer \u{1b}[31mcgk_evil\u{1b}[0m";
    for header in [
        format!("Authorization: {escaped}\r\n"),
        format!(
            "Authorization: Bearer {}\r\nIdempotency-Key: \u{1b}]0;pwned\u{7}\r\n",
            gateway.admin_key
        ),
    ] {
        let request = format!(
            "GET /v1/admin/providers HTTP/1.1\r\nHost: localhost\r\n{header}Connection: close\r\n\r\n"
        );
        let response = request_with(
            gateway.addr,
            client_config(ClientOptions::default()),
            request.as_bytes(),
        )
        .await
        .unwrap();
        assert!(response.status < 500, "{response:?}");
        assert!(!response.body.contains('\u{1b}'), "{response:?}");
    }
    let url = format!("sqlite://{}", data.join("claimgate.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let successes: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE kind = 'auth.success'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert!(
        successes <= 1,
        "the admin key's first use only: {successes}"
    );
    gateway.stop();

    let mut lines = 0;
    for name in ["stdout.log", "stderr.log"] {
        let log = std::fs::read(dir.path().join(name)).unwrap();
        assert!(!log.contains(&0x1b), "{name}: a raw escape byte");
        for line in String::from_utf8(log).unwrap().lines() {
            if !line.starts_with('{') {
                continue; // the bootstrap key banner is plain text, on first start only
            }
            let event: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{name}: not one JSON line ({e})"));
            assert!(event.is_object());
            assert_ne!(event["kind"], "auth.success", "{name}: a forged event");
            lines += 1;
        }
    }
    assert!(lines > 5, "the gateway logged its requests");
    let journal = data.join("audit");
    for entry in std::fs::read_dir(&journal).unwrap() {
        let text = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!text.contains(&0x1b), "a raw escape byte in the journal");
    }
    Journal::read_all(&journal).unwrap();
}

/// AU-10: each start records the running configuration's SHA-256 (settings and policy
/// files) on `server.started` and in the log; a restart with the same configuration
/// records no change, and one with a changed limit or policy records `config.changed`
/// naming the old and the new digest.
#[tokio::test]
async fn a_restart_with_another_configuration_records_both_digests() {
    use sqlx::Connection as _;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let env = test_env(&data, None, &[]);
    let url = format!("sqlite://{}", data.join("claimgate.db").display());
    let events = || async {
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT kind, body FROM audit_events WHERE kind IN ('server.started', 'config.changed') ORDER BY seq")
                .fetch_all(&mut conn)
                .await
                .unwrap();
        rows.into_iter()
            .map(|(kind, body)| {
                let body: serde_json::Value = serde_json::from_str(&body).unwrap();
                let resource = body["resource"].as_str().unwrap().to_owned();
                let config = resource.rsplit_once("config:").unwrap().1.to_owned();
                (kind, config)
            })
            .collect::<Vec<_>>()
    };
    Gateway::start(dir.path(), &env).stop();
    Gateway::start_named(dir.path(), &env, "-same", false).stop();
    let mut changed = env.clone();
    changed.push(("CLAIMGATE_HTTP__MAX_BODY_BYTES".into(), "12345".into()));
    Gateway::start_named(dir.path(), &changed, "-limit", false).stop();
    let policy = dir.path().join("policy.csv");
    let mut text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/policy.csv"),
    )
    .unwrap();
    text.push_str("\n# an operator's comment\n");
    std::fs::write(&policy, text).unwrap();
    changed.push((
        "CLAIMGATE_AUTH__POLICY_FILE".into(),
        policy.display().to_string(),
    ));
    Gateway::start_named(dir.path(), &changed, "-policy", false).stop();

    let trail = events().await;
    let kinds: Vec<&str> = trail.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "server.started",
            "server.started",
            "config.changed",
            "server.started",
            "config.changed",
            "server.started"
        ]
    );
    let digest = |i: usize| trail[i].1.clone();
    assert_eq!(
        digest(0),
        digest(1),
        "the same configuration, the same digest"
    );
    assert_eq!(digest(0).len(), 64);
    assert_eq!(digest(2), format!("{}->{}", digest(1), digest(3)));
    assert_eq!(digest(4), format!("{}->{}", digest(3), digest(5)));
    assert_ne!(digest(3), digest(5));
    let log = std::fs::read_to_string(dir.path().join("stdout-policy.log")).unwrap()
        + std::fs::read_to_string(dir.path().join("stderr-policy.log"))
            .unwrap()
            .as_str();
    assert!(
        log.contains(&digest(5)),
        "the start-up log names the running digest"
    );
}

/// AU-11: the wall clock steps back an hour in the middle of a run. Sequence numbers come
/// from the chain head under its lock, never from the clock, so they stay strictly
/// increasing; the events keep the times the clock gave (an hour earlier, as a reviewer
/// must see it), and the chain and its signed checkpoints still verify.
async fn clock_step_back_on(backend: Backend) {
    let Some(app) = TestApp::on(backend, "audit_clock_back", &[]).await else {
        return;
    };
    let (store, _) = app.keyring().await;
    let counted = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let store = store.with_clock(claimgate::audit::Clock::from_fn(move || {
        let now = time::OffsetDateTime::now_utc();
        if counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 3 {
            now
        } else {
            now - time::Duration::hours(1)
        }
    }));
    let key = SigningKey::load(
        &app.settings.keys.audit_signing_key,
        claimgate::config::Profile::Dev,
    )
    .unwrap();
    let auditor = app
        .principal(
            "auditor",
            "person",
            json!([{ "role": "compliance_auditor" }]),
        )
        .await;
    let before = app.audit().await.len();
    for i in 0..6 {
        let mut event = claimgate::audit::AuditEvent::new(
            claimgate::audit::EventKind::AuditRead,
            claimgate::audit::Outcome::Success,
        );
        event.resource = Some(format!("audit:clock-{i}"));
        store.append_audit(&event).await.unwrap();
        if i == 1 || i == 5 {
            store.checkpoint(&key).await.unwrap();
        }
    }
    let trail = app.audit().await;
    let ours: Vec<_> = trail[before..].iter().collect();
    assert_eq!(ours.len(), 6);
    let seqs: Vec<i64> = trail.iter().map(|e| e.seq).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    let ts = |e: &claimgate::store::StoredAuditEvent| {
        let body: serde_json::Value = serde_json::from_str(&e.body).unwrap();
        time::OffsetDateTime::parse(
            body["ts"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    };
    let stepped = ours.windows(2).filter(|w| ts(w[1]) < ts(w[0])).count();
    assert_eq!(stepped, 1, "the step back shows once in the times");
    let report = verify_via_api(&app, &auditor).await;
    assert_eq!(report["ok"], true, "{report}");
}

#[tokio::test]
async fn a_clock_stepped_back_keeps_the_sequence_and_the_chain_sqlite() {
    clock_step_back_on(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_a_clock_stepped_back_keeps_the_sequence_and_the_chain() {
    clock_step_back_on(Backend::Postgres).await;
}
