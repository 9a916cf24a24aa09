//! Ingest end to end over real HTTPS: upload → raw store → queue → runner → stored,
//! encrypted claims with a receipt; duplicates, versions, rejects and bad input.

use serde_json::json;

use crate::helpers::*;

struct Ingest {
    app: TestApp,
    submitter: String,
    reader: String,
}

/// An app with provider `acme` (mapping `x12`), a submitter and a PHI reader for it.
async fn ingest_app(backend: Backend, test: &str) -> Option<Ingest> {
    ingest_app_with(backend, test, &[]).await
}

async fn ingest_app_with(backend: Backend, test: &str, env: &[(&str, &str)]) -> Option<Ingest> {
    let mut env = env.to_vec();
    env.push(("CLAIMGATE_INGEST__BATCH_CLAIMS", "7"));
    let app = TestApp::on(backend, test, &env).await?;
    app.provider("acme").await;
    app.activate_mapping("acme", "x12").await;
    let submitter = app
        .principal(
            "acme-sftp",
            "system",
            json!([{ "role": "provider_submitter", "provider": "acme" }]),
        )
        .await;
    let reader = app
        .principal(
            "ops",
            "person",
            json!([{ "role": "phi_reader", "provider": "acme" }]),
        )
        .await;
    Some(Ingest {
        app,
        submitter,
        reader,
    })
}

const X12: &str = "Content-Type: application/edi-x12\r\n";

async fn upload(ingest: &Ingest, body: &[u8]) -> serde_json::Value {
    let sent = upload_at(ingest.app.addr, &ingest.submitter, body, X12).await;
    assert!(sent.status == 202 || sent.status == 200, "{sent:?}");
    let id = sent.json()["upload_id"].as_str().unwrap().to_owned();
    receipt_when_finished(ingest.app.addr, &ingest.submitter, &id).await
}

async fn end_to_end_on(backend: Backend) {
    let Some(ingest) = ingest_app(backend, "ingest_end_to_end").await else {
        return;
    };
    let app = &ingest.app;
    let claims: Vec<X12Claim> = (1..=20)
        .map(|i| X12Claim::new(&format!("C{i}"), 10_000 + i))
        .collect();
    let file = x12_837p(&claims);
    let digest = hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &file));
    let sent = upload_at(
        app.addr,
        &ingest.submitter,
        &file,
        &format!("{X12}X-Content-SHA256: {digest}\r\nIdempotency-Key: batch-0001\r\n"),
    )
    .await;
    assert_eq!(sent.status, 202, "{sent:?}");
    let body = sent.json();
    let id = body["upload_id"].as_str().unwrap().to_owned();
    assert_eq!(body["status_url"], format!("/v1/uploads/{id}"));
    assert_eq!(
        sent.header("location"),
        Some(format!("/v1/uploads/{id}").as_str())
    );
    assert_eq!(body["sha256"], digest);

    let receipt = receipt_when_finished(app.addr, &ingest.submitter, &id).await;
    assert_eq!(receipt["state"], "done", "{receipt}");
    let counts = &receipt["counts"];
    assert_eq!(counts["records_read"], 20);
    assert_eq!(counts["accepted"], 20);
    assert_eq!(counts["rejected"], 0);
    assert_eq!(counts["claims"], 20);
    assert_eq!(counts["lines"], 20);
    let total: i64 = (1..=20).map(|i| 10_000 + i).sum();
    assert_eq!(receipt["control_totals"]["total_charge_cents"], total);
    assert_eq!(receipt["control_totals"]["line_charge_cents"], total);

    // Stored: 20 claims and lines, PHI sealed; a decrypted spot check.
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM claims WHERE upload_id = '{id}'"
        ))
        .await,
        20
    );
    assert_eq!(
        app.count(&format!(
            "SELECT CAST(sum(total_charge_cents) AS BIGINT) FROM claims WHERE upload_id = '{id}'"
        ))
        .await,
        total
    );
    assert_eq!(app.count("SELECT count(*) FROM claim_lines").await, 20);
    let c7 = app
        .count("SELECT id FROM claims WHERE source_claim_id = 'C7'")
        .await;
    let shown = app
        .call(
            &ingest.reader,
            "GET",
            &format!("/v1/providers/acme/claims/{c7}?purpose=payment"),
            "",
        )
        .await;
    assert_eq!(shown.status, 200, "{shown:?}");
    assert_eq!(shown.json()["member_id"], "ZZMC7");
    assert_eq!(shown.json()["birth_date"], "1960-02-29");
    let found = app
        .call(
            &ingest.reader,
            "POST",
            "/v1/providers/acme/claims/search",
            r#"{"member_id":"ZZMC7","purpose":"payment"}"#,
        )
        .await;
    assert_eq!(found.json()["ids"], json!([c7]));

    // The 999: one group, one accepted transaction set; its own counts add up.
    let ack = app
        .call(
            &ingest.submitter,
            "GET",
            &format!("/v1/uploads/{id}/999"),
            "",
        )
        .await;
    assert_eq!(ack.status, 200, "{ack:?}");
    assert_eq!(ack.header("content-type"), Some("application/edi-x12"));
    let segments: Vec<&str> = ack.body.split("~\n").filter(|s| !s.is_empty()).collect();
    assert!(
        segments[0]
            .starts_with("ISA*00*          *00*          *ZZ*RECEIVER       *ZZ*SUBMITTER      *"),
        "{}",
        ack.body
    );
    assert!(segments[1].starts_with("GS*FA*REC*SUB*"));
    assert_eq!(segments[2], "ST*999*0001*005010X231A1");
    assert_eq!(segments[3], "AK1*HC*1*005010X222A1");
    assert_eq!(segments[4], "AK2*837*0001*005010X222A1");
    assert_eq!(segments[5], "IK5*A");
    assert_eq!(segments[6], "AK9*A*1*1*1");
    assert_eq!(segments[7], "SE*6*0001");
    assert!(segments[8].starts_with("GE*1*"));
    assert!(segments[9].starts_with("IEA*1*"));

    // The same file again: the earlier upload, not processed again. The same key too.
    let again = upload_at(app.addr, &ingest.submitter, &file, X12).await;
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(again.json()["upload_id"], id.as_str());
    assert_eq!(again.json()["duplicate"], true);
    let other = x12_837p(&[X12Claim::new("D1", 500)]);
    let keyed = upload_at(
        app.addr,
        &ingest.submitter,
        &other,
        &format!("{X12}Idempotency-Key: batch-0001\r\n"),
    )
    .await;
    assert_eq!(keyed.status, 200);
    assert_eq!(keyed.json()["upload_id"], id.as_str());
    assert_eq!(app.count("SELECT count(*) FROM uploads").await, 1);
    assert_eq!(app.count("SELECT count(*) FROM claims").await, 20);
    assert_eq!(
        app.count("SELECT count(*) FROM raw_files").await,
        1,
        "neither the re-sent file nor the keyed retry is stored again"
    );

    // Receipts are the provider's: another provider's submitter sees 404.
    app.provider("zeta").await;
    let zeta = app
        .principal(
            "zeta-sftp",
            "system",
            json!([{ "role": "provider_submitter", "provider": "zeta" }]),
        )
        .await;
    assert_eq!(
        app.call(&zeta, "GET", &format!("/v1/uploads/{id}"), "")
            .await
            .status,
        404
    );
    // The audit trail has the receipt and the processing, without PHI.
    let trail = app.audit().await;
    for kind in ["upload.received", "upload.processed", "mapping.activated"] {
        assert!(trail.iter().any(|e| e.kind == kind), "{kind}");
    }
    assert!(trail.iter().all(|e| !e.body.contains("ZZ")));
    // Metrics: behind a role, counters and queue depth.
    let metrics = app.call(&app.admin_key, "GET", "/metrics", "").await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .body
            .contains("claimgate_uploads_total{outcome=\"done\"} 1"),
        "{}",
        metrics.body
    );
    assert!(
        metrics
            .body
            .contains("claimgate_queue_uploads{state=\"done\"} 1")
    );
    assert!(metrics.body.contains("claimgate_claims_stored_total 20"));
    assert!(!metrics.body.contains("ZZ"));
    assert_eq!(
        app.call(&ingest.submitter, "GET", "/metrics", "")
            .await
            .status,
        403
    );
}

#[tokio::test]
async fn an_upload_over_https_is_stored_encrypted_and_accounted_for_sqlite() {
    end_to_end_on(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_an_upload_over_https_is_stored_encrypted_and_accounted_for() {
    end_to_end_on(Backend::Postgres).await;
}

/// Every file under `dir`, recursively.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path);
        }
    }
    found
}

async fn replay_on(backend: Backend) {
    let Some(ingest) = ingest_app(backend, "ingest_replay").await else {
        return;
    };
    let app = &ingest.app;
    let first = x12_837p(&[X12Claim::new("R1", 1_000), X12Claim::new("R2", 2_000)]);
    let receipt = upload(&ingest, &first).await;
    assert_eq!(receipt["state"], "done", "{receipt}");
    let id = receipt["upload_id"].as_str().unwrap().to_owned();
    let raw_files = files_under(&app.settings.ingest.raw_dir);
    assert_eq!(raw_files.len(), 1, "{raw_files:?}");

    // The same bytes again: the first upload, 200, audited as a duplicate.
    let again = upload_at(app.addr, &ingest.submitter, &first, X12).await;
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(again.json()["upload_id"], id.as_str());
    assert_eq!(again.json()["duplicate"], true);

    // Other content under the same interchange (sender, receiver and ISA13): 409, with
    // the first upload named, and nothing of it kept.
    let control = control_number_in(&first);
    let edited = x12_837p(&[X12Claim::new("R1", 1_000), X12Claim::new("R3", 3_000)]);
    let replayed = with_control_number(&edited, &control);
    assert_ne!(replayed, first);
    let refused = upload_at(app.addr, &ingest.submitter, &replayed, X12).await;
    assert_eq!(refused.status, 409, "{refused:?}");
    let body = refused.json();
    assert_eq!(body["error_code"], "interchange_replay");
    assert_eq!(body["upload_id"], id.as_str());
    assert!(
        !refused.body.contains(&control),
        "the control number is not echoed"
    );
    assert_eq!(app.count("SELECT count(*) FROM uploads").await, 1);
    assert_eq!(app.count("SELECT count(*) FROM raw_files").await, 1);
    assert_eq!(app.count("SELECT count(*) FROM claims").await, 2);
    assert_eq!(
        app.count("SELECT count(*) FROM claims WHERE source_claim_id = 'R3'")
            .await,
        0
    );
    assert_eq!(
        files_under(&app.settings.ingest.raw_dir),
        raw_files,
        "the refused file's bytes are not kept"
    );
    let trail = app.audit().await;
    let duplicate: Vec<_> = trail
        .iter()
        .filter(|e| e.kind == "upload.duplicate")
        .collect();
    assert_eq!(duplicate.len(), 1, "{duplicate:?}");
    assert!(duplicate[0].body.contains(&format!("upload:{id}")));
    let rejected: Vec<_> = trail
        .iter()
        .filter(|e| e.kind == "upload.rejected" && e.body.contains("interchange_replay"))
        .collect();
    assert_eq!(rejected.len(), 1, "{trail:?}");
    assert!(rejected[0].body.contains(&format!("upload:{id}")));
    assert!(rejected[0].body.contains(r#""outcome":"denied""#));

    // The same control number from another sender is another interchange.
    let other_sender = String::from_utf8(replayed.clone())
        .unwrap()
        .replacen("*ZZ*SUBMITTER      *", "*ZZ*SUBMITTER2     *", 1)
        .into_bytes();
    let receipt = upload(&ingest, &other_sender).await;
    assert_eq!(receipt["state"], "done", "{receipt}");

    // Only an administrator may say that the provider reuses control numbers; then the
    // replayed content is taken (and its resend still deduplicated by its bytes).
    let path = "/v1/admin/providers/acme/interchange-control";
    let reused = r#"{"interchange_control":"reused"}"#;
    let denied = app.call(&ingest.submitter, "PUT", path, reused).await;
    assert_eq!(denied.status, 403, "{denied:?}");
    let bad = app
        .call(
            &app.admin_key,
            "PUT",
            path,
            r#"{"interchange_control":"sometimes"}"#,
        )
        .await;
    assert_eq!(bad.status, 400, "{bad:?}");
    let missing = app
        .call(
            &app.admin_key,
            "PUT",
            "/v1/admin/providers/nobody/interchange-control",
            reused,
        )
        .await;
    assert_eq!(missing.status, 404, "{missing:?}");
    let set = app.call(&app.admin_key, "PUT", path, reused).await;
    assert_eq!(set.status, 200, "{set:?}");
    assert_eq!(set.json()["interchange_control"], "reused");
    assert!(
        app.audit()
            .await
            .iter()
            .any(|e| e.kind == "provider.changed" && e.body.contains("interchange_control:reused"))
    );
    let receipt = upload(&ingest, &replayed).await;
    assert_eq!(receipt["state"], "done", "{receipt}");
    assert_eq!(
        app.count("SELECT count(*) FROM claims WHERE source_claim_id = 'R3'")
            .await,
        2,
        "R3 from the other sender's file and from the replayed one"
    );
    let resent = upload_at(app.addr, &ingest.submitter, &replayed, X12).await;
    assert_eq!(resent.status, 200, "{resent:?}");
    assert_eq!(resent.json()["upload_id"], receipt["upload_id"]);

    // Back to unique: the uploads taken while control numbers were reused hold none of
    // them, the ones before still do.
    let unique = app
        .call(
            &app.admin_key,
            "PUT",
            path,
            r#"{"interchange_control":"unique"}"#,
        )
        .await;
    assert_eq!(unique.json()["interchange_control"], "unique");
    let third = with_control_number(&x12_837p(&[X12Claim::new("R4", 4_000)]), &control);
    let refused = upload_at(app.addr, &ingest.submitter, &third, X12).await;
    assert_eq!(refused.status, 409, "{refused:?}");
    assert_eq!(refused.json()["upload_id"], id.as_str());
    assert_eq!(app.count("SELECT count(*) FROM uploads").await, 3);

    // The store holds the line itself, inside the upload's transaction (whatever a
    // channel checked before).
    let (store, _) = app.keyring().await;
    let interchange = claimgate::formats::x12::InterchangeId::of_head(&first).unwrap();
    let direct = store
        .create_upload(
            &claimgate::providers::ProviderCode::parse("acme").unwrap(),
            &claimgate::store::NewUpload {
                upload_id: "direct-replay",
                submitted_by: None,
                sha256: &[7; 32],
                size_bytes: 1,
                idempotency_key: None,
                interchange: Some(&interchange),
            },
            &claimgate::audit::AuditEvent::new(
                claimgate::audit::EventKind::UploadReceived,
                claimgate::audit::Outcome::Success,
            ),
        )
        .await;
    match direct {
        Err(claimgate::store::StoreError::InterchangeReplay(earlier)) => assert_eq!(earlier, id),
        other => panic!("expected a replay, got {other:?}"),
    }

    // Eight files of one new interchange at once: exactly one is taken.
    let sends = (0..8).map(|n| {
        let file = with_control_number(
            &x12_837p(&[X12Claim::new(&format!("S{n}"), 100 + n)]),
            "777777777",
        );
        let (addr, token) = (app.addr, ingest.submitter.clone());
        tokio::spawn(async move { upload_at(addr, &token, &file, X12).await })
    });
    let mut statuses = Vec::new();
    for send in sends {
        statuses.push(send.await.unwrap().status);
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [202, 409, 409, 409, 409, 409, 409, 409]);
    assert_eq!(app.count("SELECT count(*) FROM uploads").await, 4);
}

#[tokio::test]
async fn an_interchange_sent_again_with_other_content_is_refused_as_a_replay_sqlite() {
    replay_on(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_an_interchange_sent_again_with_other_content_is_refused_as_a_replay() {
    replay_on(Backend::Postgres).await;
}

#[tokio::test]
async fn a_file_that_hits_a_reader_limit_raises_the_parser_limit_alert() {
    let ingest = ingest_app(Backend::Sqlite, "ingest_parser_limit")
        .await
        .unwrap();
    let app = &ingest.app;
    let plain = upload(&ingest, &x12_837p(&[X12Claim::new("L1", 100)])).await;
    assert_eq!(plain["state"], "done", "{plain}");
    assert_eq!(
        app.alerts("parser_limit").await,
        0,
        "an ordinary file raises none"
    );

    // A segment of 80 KB (the limit is 64 KiB) inside the second claim.
    let file = String::from_utf8(x12_837p(&[
        X12Claim::new("L2", 100),
        X12Claim::new("L3", 200),
    ]))
    .unwrap()
    .replacen(
        "CLM*L3*",
        &format!("NTE*ADD*{}~\nCLM*L3*", "A".repeat(80_000)),
        1,
    );
    let receipt = upload(&ingest, file.as_bytes()).await;
    assert_eq!(receipt["state"], "done", "{receipt}");
    let id = receipt["upload_id"].as_str().unwrap();
    let rejects = app
        .call(
            &ingest.submitter,
            "GET",
            &format!("/v1/uploads/{id}/rejects"),
            "",
        )
        .await;
    assert!(
        rejects.body.contains("x12.segment_too_long"),
        "{}",
        rejects.body
    );
    assert_eq!(app.alerts("parser_limit").await, 1);
}

async fn bad_records_on(backend: Backend) {
    let Some(ingest) = ingest_app(backend, "ingest_bad_records").await else {
        return;
    };
    let claims: Vec<X12Claim> = (1..=50)
        .map(|i| {
            let mut c = X12Claim::new(&format!("B{i}"), 1_000);
            if i % 10 == 3 {
                c.member = String::new(); // required: the record is rejected
            }
            c
        })
        .collect();
    let receipt = upload(&ingest, &x12_837p(&claims)).await;
    assert_eq!(receipt["state"], "done", "{receipt}");
    let counts = &receipt["counts"];
    assert_eq!(counts["records_read"], 50);
    assert_eq!(counts["accepted"], 45);
    assert_eq!(counts["rejected"], 5);
    let id = receipt["upload_id"].as_str().unwrap();
    assert_eq!(
        ingest
            .app
            .count(&format!(
                "SELECT count(*) FROM claims WHERE upload_id = '{id}'"
            ))
            .await,
        45
    );
    let rejects = ingest
        .app
        .call(
            &ingest.submitter,
            "GET",
            &format!("/v1/uploads/{id}/rejects"),
            "",
        )
        .await
        .json();
    let rows = rejects["rejects"].as_array().unwrap();
    let records: std::collections::BTreeSet<i64> =
        rows.iter().map(|r| r["record"].as_i64().unwrap()).collect();
    assert_eq!(records, [3, 13, 23, 33, 43].into_iter().collect());
    for r in rows {
        assert!(r["line"].as_i64().unwrap() > 0, "{r}");
        assert!(r["code"].as_str().unwrap().contains('.'), "{r}");
        assert!(!r.to_string().contains("ZZ"), "no values: {r}");
    }
    assert!(
        rows.iter()
            .any(|r| r["field"].as_str().is_some_and(|f| f.contains("member_id")))
    );
}

#[tokio::test]
async fn a_file_with_ten_percent_bad_records_stores_the_rest_and_lists_the_rejects_sqlite() {
    bad_records_on(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_a_file_with_ten_percent_bad_records_stores_the_rest_and_lists_the_rejects() {
    bad_records_on(Backend::Postgres).await;
}

async fn versions_on(backend: Backend) {
    let Some(ingest) = ingest_app(backend, "ingest_versions").await else {
        return;
    };
    let app = &ingest.app;
    let first = upload(
        &ingest,
        &x12_837p(&[
            X12Claim::new("V1", 100),
            X12Claim::new("V2", 200),
            X12Claim::new("V3", 300),
        ]),
    )
    .await;
    assert_eq!(first["state"], "done");
    let mut replacement = X12Claim::new("V1", 150);
    replacement.frequency = '7';
    replacement.original = Some("V1".into());
    let second = upload(
        &ingest,
        &x12_837p(&[
            replacement,
            X12Claim::new("V2", 200),
            X12Claim::new("V4", 400),
        ]),
    )
    .await;
    assert_eq!(second["counts"]["replaced"], 1);
    let mut void = X12Claim::new("V3", 300);
    void.frequency = '8';
    let mut orphan = X12Claim::new("V9", 900);
    orphan.frequency = '7';
    orphan.original = Some("NOPE".into());
    let mut again = X12Claim::new("V1R", 175);
    again.frequency = '7';
    again.original = Some("V1".into());
    let third = upload(&ingest, &x12_837p(&[void, orphan, again])).await;
    assert_eq!(third["state"], "done", "{third}");
    assert_eq!(third["counts"]["voided"], 1);
    assert_eq!(third["counts"]["replaced"], 2);
    assert_eq!(third["counts"]["unmatched"], 1, "{third}");

    // History is kept: 9 versions stored; the final-action view has one per claim.
    assert_eq!(app.count("SELECT count(*) FROM claims").await, 9);
    assert_eq!(
        app.count("SELECT count(*) FROM claims_current WHERE source_claim_id IN ('V1', 'V1R')")
            .await,
        1,
        "V1 replaced twice: only the last replacement is current"
    );
    assert_eq!(
        app.count(
            "SELECT total_charge_cents FROM claims_current WHERE source_claim_id IN ('V1', 'V1R')"
        )
        .await,
        175
    );
    assert_eq!(
        app.count("SELECT count(*) FROM claims_current WHERE source_claim_id = 'V2'")
            .await,
        1,
        "the same claim in two files: one current claim"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM claims WHERE source_claim_id = 'V2'")
            .await,
        2,
        "with its history"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM claims_current WHERE source_claim_id = 'V3' AND frequency_code = '8'")
            .await,
        1,
        "the void is the current state of V3"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM claims WHERE source_claim_id = 'V9' AND unmatched = TRUE AND superseded_at IS NULL")
            .await,
        1,
        "an unmatched replacement is kept and flagged"
    );
    assert_eq!(app.count("SELECT count(*) FROM claims_current").await, 5);

    // Versions inside one file, across its batches (7 claims a batch; on PostgreSQL the
    // next batch is written while the one before commits): the later record wins.
    let mut claims: Vec<X12Claim> = (1..=30)
        .map(|n| X12Claim::new(&format!("W{n}"), 1_000 + n))
        .collect();
    claims[11] = X12Claim::new("W2", 2_012);
    let mut replacement = X12Claim::new("W1R", 3_020);
    replacement.frequency = '7';
    replacement.original = Some("W1".into());
    claims[19] = replacement;
    let mut void = X12Claim::new("W1R", 3_027);
    void.frequency = '8';
    claims[26] = void;
    let fourth = upload(&ingest, &x12_837p(&claims)).await;
    assert_eq!(fourth["state"], "done", "{fourth}");
    assert_eq!(fourth["counts"]["unmatched"], 0, "{fourth}");
    assert_eq!(
        app.count("SELECT total_charge_cents FROM claims_current WHERE source_claim_id = 'W2'")
            .await,
        2_012,
        "the second W2 of the file is current"
    );
    assert_eq!(
        app.count(
            "SELECT count(*) FROM claims_current WHERE source_claim_id IN ('W1', 'W1R') \
             AND frequency_code = '8' AND total_charge_cents = 3027"
        )
        .await,
        1,
        "W1, replaced by W1R and W1R voided, all in one file: the void alone is current"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM claims_current WHERE source_claim_id LIKE 'W%'")
            .await,
        27
    );
}

#[tokio::test]
async fn replacement_and_void_chains_across_three_files_sqlite() {
    versions_on(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_replacement_and_void_chains_across_three_files() {
    versions_on(Backend::Postgres).await;
}

#[tokio::test]
async fn bad_uploads_get_a_precise_answer_and_leave_nothing_half_ingested() {
    let ingest = ingest_app(Backend::Sqlite, "ingest_bad_input")
        .await
        .unwrap();
    let app = &ingest.app;
    let file = x12_837p(&[X12Claim::new("E1", 100)]);
    let code = |r: &Response| {
        r.json()["error_code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };

    let empty = upload_at(app.addr, &ingest.submitter, b"", X12).await;
    assert_eq!(
        (empty.status, code(&empty).as_str()),
        (400, "invalid_field"),
        "{empty:?}"
    );
    let untyped = upload_at(app.addr, &ingest.submitter, &file, "").await;
    assert_eq!(untyped.status, 415);
    let html = upload_at(
        app.addr,
        &ingest.submitter,
        &file,
        "Content-Type: text/html\r\n",
    )
    .await;
    assert_eq!(html.status, 415);
    let wrong_sum = upload_at(
        app.addr,
        &ingest.submitter,
        &file,
        &format!("{X12}X-Content-SHA256: {}\r\n", "0".repeat(64)),
    )
    .await;
    assert_eq!(wrong_sum.status, 400, "{wrong_sum:?}");
    assert!(wrong_sum.body.contains("invalid_field"));
    // Cut off mid-body: the client declares more than it sends and closes.
    let mut request = format!(
        "POST /v1/uploads HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n{X12}Content-Length: {}\r\n\r\n",
        ingest.submitter,
        file.len() + 1000
    )
    .into_bytes();
    request.extend_from_slice(&file);
    {
        use tokio::io::AsyncWriteExt;
        let mut stream = connect(app.addr, client_config(ClientOptions::default()))
            .await
            .unwrap();
        stream.write_all(&request).await.unwrap();
        stream.shutdown().await.unwrap();
        let _ = read_response(&mut stream).await;
    }
    // Analysts cannot upload.
    let analyst = app
        .principal(
            "ann",
            "person",
            json!([{ "role": "analyst", "provider": "acme" }]),
        )
        .await;
    assert_eq!(upload_at(app.addr, &analyst, &file, X12).await.status, 403);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        app.count("SELECT count(*) FROM uploads").await,
        0,
        "nothing recorded"
    );
    let raw_dir = app.settings.ingest.raw_dir.join("acme");
    let leftovers: Vec<_> = std::fs::read_dir(&raw_dir)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "no partial files: {leftovers:?}");
    let refusals = app
        .audit()
        .await
        .into_iter()
        .filter(|e| e.kind == "upload.rejected")
        .count();
    assert!(refusals >= 3, "{refusals}");

    // A file whose format does not match the mapping: a failed receipt with the reason.
    let csv = upload(&ingest, b"claim_id,member\nC1,M1\n").await;
    assert_eq!(csv["state"], "failed");
    assert_eq!(csv["failure"], "format_mismatch", "{csv}");
    // A provider without a mapping.
    app.provider("nomap").await;
    let lost = app
        .principal(
            "nomap-sftp",
            "system",
            json!([{ "role": "provider_submitter", "provider": "nomap" }]),
        )
        .await;
    let sent = upload_at(app.addr, &lost, &file, X12).await;
    assert_eq!(sent.status, 202);
    let id = sent.json()["upload_id"].as_str().unwrap().to_owned();
    let receipt = receipt_when_finished(app.addr, &lost, &id).await;
    assert_eq!(receipt["failure"], "mapping_missing");
    assert_eq!(app.count("SELECT count(*) FROM claims").await, 0);
    // A mapping with a mistake is refused with its problems.
    let refused = app
        .call(
            &app.admin_key,
            "POST",
            "/v1/admin/providers/nomap/mappings",
            &json!({ "mapping": "format = \"csv\"\n[claim]\nnope = 1\n" }).to_string(),
        )
        .await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.json()["error_code"], "mapping_invalid");
    assert!(
        !refused.json()["problems"].as_array().unwrap().is_empty(),
        "{refused:?}"
    );
}

/// Two gateway processes (the real binary, twice) on one PostgreSQL, two workers each,
/// share the queue: 20 uploads sent to both at once are each processed exactly once.
#[tokio::test]
async fn postgres_two_gateway_processes_process_each_of_twenty_uploads_exactly_once() {
    let Some(admin) = postgres_admin_url("two_gateways").await else {
        return;
    };
    let database = TestDatabase::create(&admin).await;
    let dir = tempfile::tempdir().unwrap();
    let env = test_env(
        &dir.path().join("data"),
        Some(&database.url),
        &[
            ("CLAIMGATE_INGEST__WORKERS", "2"),
            ("CLAIMGATE_INGEST__BATCH_CLAIMS", "50"),
            // The subject is two processes sharing the queue, not a lapsed lease (the
            // crash and kill tests cover those): a one-minute I/O stall of this machine
            // under the full suite once let the default 60 s lease lapse mid-upload.
            ("CLAIMGATE_INGEST__LEASE_SECS", "300"),
        ],
    );
    let first = Gateway::start_named(dir.path(), &env, "-a", true);
    let second = Gateway::start_named(dir.path(), &env, "-b", false);
    let admin_key = first.admin_key.clone();
    let created = call_at(
        first.addr,
        &admin_key,
        "POST",
        "/v1/admin/providers",
        r#"{"code":"acme","name":"Acme"}"#,
    )
    .await;
    assert_eq!(created.status, 201);
    activate_mapping_at(first.addr, &admin_key, "acme", "x12").await;
    let principal = call_at(
        first.addr,
        &admin_key,
        "POST",
        "/v1/admin/principals",
        &json!({ "name": "acme-sftp", "kind": "system", "grants": [{ "role": "provider_submitter", "provider": "acme" }] }).to_string(),
    )
    .await;
    let submitter = principal.json()["token"].as_str().unwrap().to_owned();

    let mut sends = Vec::new();
    for n in 0..20 {
        let addr = if n % 2 == 0 { first.addr } else { second.addr };
        let claims: Vec<X12Claim> = (0..300)
            .map(|i| X12Claim::new(&format!("U{n}C{i}"), 100 + i))
            .collect();
        let token = submitter.clone();
        sends.push(tokio::spawn(async move {
            let sent = upload_at(addr, &token, &x12_837p(&claims), X12).await;
            assert_eq!(sent.status, 202, "{sent:?}");
            sent.json()["upload_id"].as_str().unwrap().to_owned()
        }));
    }
    let mut ids = Vec::new();
    for send in sends {
        ids.push(send.await.unwrap());
    }
    for id in &ids {
        let receipt = receipt_when_finished(first.addr, &submitter, id).await;
        assert_eq!(receipt["state"], "done", "{receipt}");
        assert_eq!(receipt["attempts"], 1, "processed once: {receipt}");
        assert_eq!(receipt["counts"]["accepted"], 300);
    }
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&database.url)
        .await
        .unwrap();
    let (claims, distinct): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT (upload_id, record_no)) FROM claims")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!((claims, distinct), (6_000, 6_000));
    let processed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE kind = 'upload.processed'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(processed, 20, "one processing event per upload");
    first.stop();
    second.stop();
}

/// A transaction set whose trailer count is wrong: its claims are processed (a wrong
/// count does not make a complete claim wrong) and the 999 notes the error.
#[tokio::test]
async fn the_999_notes_a_wrong_trailer_count_and_accepts_with_errors() {
    let ingest = ingest_app(Backend::Sqlite, "ingest_999").await.unwrap();
    let file = String::from_utf8(x12_837p(&[
        X12Claim::new("S1", 100),
        X12Claim::new("S2", 200),
    ]))
    .unwrap();
    let se = file
        .lines()
        .find(|l| l.starts_with("SE*"))
        .unwrap()
        .to_owned();
    let broken = file.replace(&se, "SE*99*0001~");
    let receipt = upload(&ingest, broken.as_bytes()).await;
    assert_eq!(receipt["state"], "done", "{receipt}");
    assert_eq!(receipt["counts"]["accepted"], 2);
    let id = receipt["upload_id"].as_str().unwrap();
    let ack = ingest
        .app
        .call(
            &ingest.submitter,
            "GET",
            &format!("/v1/uploads/{id}/999"),
            "",
        )
        .await;
    assert_eq!(ack.status, 200);
    let segments: Vec<&str> = ack.body.split("~\n").filter(|s| !s.is_empty()).collect();
    let se_position = file.lines().position(|l| l.starts_with("SE*")).unwrap() - 1;
    assert_eq!(segments[4], "AK2*837*0001*005010X222A1");
    assert_eq!(
        segments[5],
        format!("IK3*SE*{se_position}**8"),
        "{}",
        ack.body
    );
    assert_eq!(segments[6], "IK5*E*4");
    assert_eq!(segments[7], "AK9*E*1*1*1");
    // Not X12: no 999.
    let csv_ack = ingest
        .app
        .call(&ingest.submitter, "GET", "/v1/uploads/nope/999", "")
        .await;
    assert_eq!(csv_ack.status, 404);
}

/// `curl -F file=@…` (multipart) and `curl --data-binary @…` (raw) both upload a file; a
/// multipart body with two parts is refused.
#[tokio::test]
async fn curl_uploads_a_file_raw_or_as_multipart() {
    let ingest = ingest_app(Backend::Sqlite, "ingest_curl").await.unwrap();
    let app = &ingest.app;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("claims.x12");
    std::fs::write(
        &file,
        x12_837p(&[X12Claim::new("M1", 100), X12Claim::new("M2", 200)]),
    )
    .unwrap();
    let other = dir.path().join("other.x12");
    std::fs::write(&other, x12_837p(&[X12Claim::new("R1", 300)])).unwrap();
    let port = app.addr.port();
    let curl = |args: &[&str]| {
        let output = std::process::Command::new("curl")
            .args(["-sS", "--cacert"])
            .arg(certs().join("ca.pem"))
            .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
            .args(["-H", &format!("Authorization: Bearer {}", ingest.submitter)])
            .args(args)
            .arg(format!("https://localhost:{port}/v1/uploads"))
            .output()
            .expect("curl is installed");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()
    };
    let multipart = curl(&["-F", &format!("file=@{}", file.display())]);
    let id = multipart["upload_id"].as_str().unwrap().to_owned();
    let receipt = receipt_when_finished(app.addr, &ingest.submitter, &id).await;
    assert_eq!(receipt["counts"]["accepted"], 2, "{receipt}");
    assert_eq!(
        receipt["sha256"],
        hex::encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            &std::fs::read(&file).unwrap()
        )),
        "the part, not the multipart envelope, is what is stored"
    );
    let raw = curl(&[
        "-H",
        "Content-Type: application/edi-x12",
        "--data-binary",
        &format!("@{}", other.display()),
    ]);
    let id = raw["upload_id"].as_str().unwrap().to_owned();
    let receipt = receipt_when_finished(app.addr, &ingest.submitter, &id).await;
    assert_eq!(receipt["counts"]["accepted"], 1);
    let two = curl(&[
        "-F",
        &format!("a=@{}", file.display()),
        "-F",
        &format!("b=@{}", other.display()),
    ]);
    assert_eq!(two["error_code"], "invalid_field", "{two}");
    assert_eq!(app.count("SELECT count(*) FROM uploads").await, 2);
}

/// A local S3-compatible server (moto, from PyPI): `CLAIMGATE_TEST_MOTO` or `moto_server`
/// on the PATH. Skipped (and said) without one, unless `CLAIMGATE_TEST_REQUIRE_S3=1`.
fn moto_server() -> Option<std::path::PathBuf> {
    let candidate = std::env::var("CLAIMGATE_TEST_MOTO").unwrap_or_else(|_| "moto_server".into());
    let found = std::process::Command::new(&candidate)
        .arg("--help")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some(candidate.into());
    }
    assert!(
        std::env::var("CLAIMGATE_TEST_REQUIRE_S3").as_deref() != Ok("1"),
        "an S3-compatible test server is required (CLAIMGATE_TEST_MOTO) but {candidate} does not run"
    );
    eprintln!("SKIPPED the S3 raw-store test: no moto_server (pip install 'moto[server]')");
    None
}

/// The raw store in an S3-compatible bucket: the upload is encrypted before it leaves the
/// gateway, processed from the bucket, and nothing stays in the local directory.
#[tokio::test]
async fn raw_files_go_to_an_s3_compatible_bucket_encrypted() {
    let Some(moto) = moto_server() else {
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = std::process::Command::new(moto)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let endpoint = format!("http://127.0.0.1:{port}");
    let s3 = |args: &[&str]| {
        std::process::Command::new("curl")
            .args(["-s", "-f"])
            .args(args)
            .output()
            .unwrap()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !s3(&["-X", "PUT", &format!("{endpoint}/claimgate-raw")])
        .status
        .success()
    {
        assert!(std::time::Instant::now() < deadline, "moto did not start");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let ingest = ingest_app_with(
        Backend::Sqlite,
        "ingest_s3",
        &[
            ("CLAIMGATE_INGEST__S3__BUCKET", "claimgate-raw"),
            ("CLAIMGATE_INGEST__S3__ENDPOINT", &endpoint),
            ("CLAIMGATE_INGEST__S3__ACCESS_KEY_ID", "test"),
            ("CLAIMGATE_INGEST__S3__SECRET_ACCESS_KEY", "test"),
            ("CLAIMGATE_INGEST__S3__ALLOW_HTTP", "true"),
        ],
    )
    .await
    .unwrap();
    let claims: Vec<X12Claim> = (0..40)
        .map(|i| X12Claim::new(&format!("S{i}"), 100))
        .collect();
    let file = x12_837p(&claims);
    let receipt = upload(&ingest, &file).await;
    assert_eq!(receipt["state"], "done", "{receipt}");
    assert_eq!(receipt["counts"]["accepted"], 40);
    let id = receipt["upload_id"].as_str().unwrap();
    let listing =
        String::from_utf8(s3(&[&format!("{endpoint}/claimgate-raw?list-type=2")]).stdout).unwrap();
    assert!(listing.contains(&format!("acme/{id}.cgrf")), "{listing}");
    let object = s3(&[&format!("{endpoint}/claimgate-raw/acme/{id}.cgrf")]).stdout;
    assert!(object.len() > file.len(), "chunks carry tags");
    assert!(
        !object.windows(4).any(|w| w == b"ZZMS"),
        "the object is encrypted"
    );
    let local: Vec<_> = std::fs::read_dir(ingest.app.settings.ingest.raw_dir.join("acme"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(local.is_empty(), "nothing stays on local disk: {local:?}");
    let _ = server.kill();
    let _ = server.wait();
}

/// DB-08: SQL in claim values is data. A patient named `ROBERT'); DROP TABLE claims;--`
/// with a street that tries to delete the uploads is stored (sealed), read back byte for
/// byte, and found by a search on the same text; a NUL inside a value is refused with a
/// reason; the tables are intact.
async fn injection_on(backend: Backend) {
    let Some(ingest) = ingest_app(backend, "ingest_injection").await else {
        return;
    };
    let app = &ingest.app;
    let last = "ROBERT'); DROP TABLE claims;--";
    let street = "1 O'BRIEN \"ST\"; DELETE FROM uploads; --";
    let member = "ZZ' OR '1'='1";
    let mut sly = X12Claim::new("INJ1", 1_000);
    sly.last = last.into();
    sly.street = Some(street.into());
    sly.member = member.into();
    let mut nul = X12Claim::new("INJ2", 2_000);
    nul.last = "ZZNUL\0LAST".into();
    let nul_id = X12Claim::new("INJ\u{0}4", 4_000);
    let file = x12_837p(&[sly, nul, X12Claim::new("INJ3", 3_000), nul_id]);
    let receipt = upload(&ingest, &file).await;
    assert_eq!(receipt["state"], "done", "{receipt}");
    let counts = &receipt["counts"];
    assert_eq!(counts["records_read"], 4, "{receipt}");
    assert_eq!(counts["accepted"], 2, "{receipt}");
    assert_eq!(counts["rejected"], 2, "{receipt}");
    let id = receipt["upload_id"].as_str().unwrap();
    let rejects = app
        .call(
            &ingest.submitter,
            "GET",
            &format!("/v1/uploads/{id}/rejects"),
            "",
        )
        .await;
    assert_eq!(rejects.status, 200, "{rejects:?}");
    assert!(!rejects.body.contains("ZZNUL"), "no PHI in rejects");
    let rejects = rejects.json();
    let refused: Vec<_> = rejects["rejects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["record"].as_i64().unwrap(),
                r["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for (record, field) in [(2, "patient_last_name"), (4, "source_claim_id")] {
        let message = format!("claim.{field}: a value holding a NUL character");
        assert!(refused.contains(&(record, message)), "{rejects}");
    }

    assert_eq!(app.count("SELECT count(*) FROM claims").await, 2);
    assert_eq!(app.count("SELECT count(*) FROM uploads").await, 1);
    let stored = app
        .count("SELECT id FROM claims WHERE source_claim_id = 'INJ1'")
        .await;
    let shown = app
        .call(
            &ingest.reader,
            "GET",
            &format!("/v1/providers/acme/claims/{stored}?purpose=payment"),
            "",
        )
        .await;
    assert_eq!(shown.status, 200, "{shown:?}");
    let claim = shown.json();
    assert_eq!(claim["patient_last_name"], last);
    assert_eq!(claim["address"], street);
    assert_eq!(claim["member_id"], member);
    let found = app
        .call(
            &ingest.reader,
            "POST",
            "/v1/providers/acme/claims/search",
            &json!({ "member_id": member, "purpose": "payment" }).to_string(),
        )
        .await;
    assert_eq!(found.json()["ids"], json!([stored]), "{found:?}");
}

#[tokio::test]
async fn sql_in_claim_values_is_stored_as_data_sqlite() {
    injection_on(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_sql_in_claim_values_is_stored_as_data() {
    injection_on(Backend::Postgres).await;
}
