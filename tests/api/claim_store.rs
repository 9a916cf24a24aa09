//! The encrypted claim store: PHI columns are sealed per value and bound to their row and
//! column, blind indexes find claims without decrypting, rotation re-encrypts in resumable
//! batches and erases the old key, and crypto-shredding leaves one provider's non-PHI
//! records readable but its PHI and raw files unreadable by any path.

use claimgate::audit::{AuditEvent, EventKind, Outcome};
use claimgate::authz::KeyAdmin;
use claimgate::keyring::KeyringError;
use claimgate::protect::{ClaimSealer, open_phi};
use claimgate::providers::ProviderCode;
use claimgate::raw_store::RawStore;
use claimgate::store::{ClaimKey, StoreError};
use serde_json::json;

use crate::helpers::*;

fn acme() -> ProviderCode {
    ProviderCode::parse("acme").unwrap()
}

async fn sealed_and_opened_on(backend: Backend) {
    let Some(app) = TestApp::on(backend, "claim_store_open", &[]).await else {
        return;
    };
    app.provider("acme").await;
    app.provider("zeta").await;
    app.store_claims(
        "acme",
        "up1",
        &[phi_claim("C-1", "AX"), phi_claim("C-2", "AY")],
    )
    .await;
    app.store_claims("zeta", "up2", &[phi_claim("Z-1", "AX")])
        .await;
    let reader = app
        .principal(
            "reader",
            "person",
            json!([{ "role": "phi_reader", "provider": "acme" }]),
        )
        .await;
    let listed = app
        .call(
            &reader,
            "GET",
            "/v1/providers/acme/claims?purpose=payment",
            "",
        )
        .await
        .json();
    let ids: Vec<i64> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);

    // The PHI reader sees the values; nothing in the database holds them in the clear.
    let shown = app
        .call(
            &reader,
            "GET",
            &format!("/v1/providers/acme/claims/{}?purpose=payment", ids[0]),
            "",
        )
        .await;
    assert_eq!(shown.status, 200, "{shown:?}");
    assert_eq!(shown.header("cache-control"), Some("no-store"));
    let claim = shown.json();
    assert_eq!(claim["member_id"], "ZZMEMAX");
    assert_eq!(claim["patient_last_name"], "ZZLASTAX");
    assert_eq!(claim["birth_date"], "1950-02-03");
    assert_eq!(claim["zip"], "99AX");
    assert_eq!(
        app.count("SELECT count(*) FROM claims WHERE member_id IS NOT NULL AND city IS NOT NULL AND member_index IS NOT NULL AND person_index IS NOT NULL")
            .await,
        3
    );
    assert_eq!(
        app.count("SELECT count(*) FROM claim_lines").await,
        3,
        "one line each"
    );

    // Another provider's claim id is not found through this tenancy.
    let zeta_id = app
        .count("SELECT c.id FROM claims c JOIN providers p ON p.id = c.provider_id WHERE p.code = 'zeta'")
        .await;
    assert_eq!(
        app.call(
            &reader,
            "GET",
            &format!("/v1/providers/acme/claims/{zeta_id}?purpose=payment"),
            ""
        )
        .await
        .status,
        404
    );

    // Blind indexes: exact look-ups by member id and by name + birth date, normalised.
    let search = |body: serde_json::Value| {
        let reader = reader.clone();
        let app = &app;
        async move {
            app.call(
                &reader,
                "POST",
                "/v1/providers/acme/claims/search",
                &body.to_string(),
            )
            .await
        }
    };
    let found = search(json!({ "member_id": "zzmem-ax", "purpose": "payment" })).await;
    assert_eq!(found.status, 200, "{found:?}");
    assert_eq!(found.json()["ids"], json!([ids[0]]));
    let found = search(
        json!({ "last_name": "zzlast ay", "first_name": "ZZFIRSTAY", "birth_date": "1950-02-03", "purpose": "treatment" }),
    )
    .await;
    assert_eq!(found.json()["ids"], json!([ids[1]]));
    let none = search(
        json!({ "last_name": "ZZLASTAY", "first_name": "ZZFIRSTAY", "birth_date": "1950-02-04", "purpose": "treatment" }),
    )
    .await;
    assert_eq!(none.json()["ids"], json!([]));
    let bad = search(
        json!({ "member_id": "ZZBADMEMBER", "last_name": "ZZBADLAST", "purpose": "payment" }),
    )
    .await;
    assert_eq!(bad.status, 400);
    assert!(
        !bad.body.contains("ZZBAD"),
        "the refusal echoes no value: {}",
        bad.body
    );
    // The same member id at another provider has another index (per-provider keys).
    let indexes = app
        .count("SELECT count(DISTINCT hex(member_index)) FROM claims WHERE source_claim_id IN ('C-1', 'Z-1')".replace("hex(member_index)", if backend == Backend::Postgres { "encode(member_index, 'hex')" } else { "hex(member_index)" }).as_str())
        .await;
    assert_eq!(indexes, 2);

    // An analyst (no PHI permission) gets nothing.
    let analyst = app
        .principal("ann", "person", json!([{ "role": "analyst" }]))
        .await;
    assert_eq!(
        app.call(
            &analyst,
            "GET",
            &format!("/v1/providers/acme/claims/{}?purpose=payment", ids[0]),
            ""
        )
        .await
        .status,
        403
    );

    // A sealed value copied to another row, or to another column, does not open.
    app.sql(&format!(
        "UPDATE claims SET member_id = (SELECT member_id FROM claims WHERE id = {a}) WHERE id = {b}",
        a = ids[0],
        b = ids[1]
    ))
    .await;
    app.sql(&format!(
        "UPDATE claims SET city = zip WHERE id = {a}",
        a = ids[0]
    ))
    .await;
    for &id in &ids {
        let moved = app
            .call(
                &reader,
                "GET",
                &format!("/v1/providers/acme/claims/{id}?purpose=payment"),
                "",
            )
            .await;
        assert_eq!(moved.status, 500, "{moved:?}");
        assert_eq!(moved.json()["error_code"], "integrity_check_failed");
        assert!(!moved.body.contains("ZZ"), "no value in the error");
    }
    let trail = app.audit().await;
    assert!(
        trail
            .iter()
            .filter(|e| e.kind == "phi.read")
            .any(|e| e.body.contains("disclosure:") && e.body.contains(r#""purpose":"payment""#)),
        "each opened claim is audited with its purpose and disclosure"
    );
    assert!(trail.iter().all(|e| !e.body.contains("ZZ")));
    let failures: Vec<_> = trail
        .iter()
        .filter(|e| e.kind == "integrity.failure")
        .collect();
    assert_eq!(failures.len(), 2, "one integrity event a failed read");
    for (failure, id) in failures.iter().zip(&ids) {
        assert!(
            failure.body.contains(&format!("claim:{id}")),
            "{}",
            failure.body
        );
    }
    let metrics = app.call(&app.admin_key, "GET", "/metrics", "").await;
    assert!(
        metrics
            .body
            .contains("claimgate_integrity_failures_total 2"),
        "{}",
        metrics.body
    );
}

#[tokio::test]
async fn sealed_claims_open_for_a_phi_reader_and_are_found_by_blind_index_sqlite() {
    sealed_and_opened_on(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_sealed_claims_open_for_a_phi_reader_and_are_found_by_blind_index() {
    sealed_and_opened_on(Backend::Postgres).await;
}

async fn rotation_on(backend: Backend) {
    let Some(app) = TestApp::on(backend, "claim_store_rotation", &[]).await else {
        return;
    };
    app.provider("acme").await;
    let (store, keyring) = app.keyring().await;
    let raw = RawStore::new(
        &app.settings.data_dir.join("raw"),
        store.clone(),
        keyring.clone(),
    )
    .unwrap();
    let admin = KeyAdmin::operator_console();
    let seal = |sealer: &ClaimSealer, upload: &str, from: i64, n: i64| {
        (from..from + n)
            .map(|i| {
                let key = ClaimKey {
                    upload_id: upload.to_owned(),
                    record_no: i,
                };
                sealer
                    .seal(key, &phi_claim(&format!("C{i}"), &format!("R{i}")))
                    .unwrap()
            })
            .collect::<Vec<_>>()
    };

    // Before rotation: 1,200 claims and a raw file under the first key.
    for upload in ["u1", "u2", "u3"] {
        record_upload(&store, "acme", upload).await;
    }
    let before = ClaimSealer::for_provider(&keyring, &acme()).await.unwrap();
    store
        .insert_claims(&acme(), &seal(&before, "u1", 1, 1_200))
        .await
        .unwrap();
    let file = raw
        .put(&acme(), format!("raw {CANARY}").as_bytes())
        .await
        .unwrap();
    let old_id = before.key_id().to_owned();
    let rotated = AuditEvent::new(EventKind::DataKeyRotated, Outcome::Success);
    let new_id = keyring.rotate(&admin, &acme(), &rotated).await.unwrap();

    // While rotating: a writer that still holds the old key (sealed before it learned of
    // the rotation) commits its batch; new writers use the new key.
    store
        .insert_claims(&acme(), &seal(&before, "u1", 1_201, 100))
        .await
        .unwrap();
    let after = ClaimSealer::for_provider(&keyring, &acme()).await.unwrap();
    assert_eq!(after.key_id(), new_id);
    store
        .insert_claims(&acme(), &seal(&after, "u2", 1, 100))
        .await
        .unwrap();

    // A crash after one committed batch: simulate by moving 500 rows by hand with the
    // store's own batch step, then run the job, which resumes with the rest.
    let first = store
        .phi_sealed_by(&admin, &acme(), &old_id, 500)
        .await
        .unwrap();
    let old_key = keyring.opening_key(&old_id).await.unwrap();
    let new_key = keyring.sealing_key(&acme()).await.unwrap();
    let moved: Vec<_> = first
        .iter()
        .map(|row| {
            let identity = row.key.row_identity();
            let mut phi = claimgate::store::SealedPhi::default();
            for ((slot, sealed), column) in phi
                .values_mut()
                .into_iter()
                .zip(row.phi.values())
                .zip(claimgate::store::SealedPhi::COLUMNS)
            {
                let at = claimgate::crypto::FieldSlot {
                    table: "claims",
                    column,
                    row: &identity,
                };
                let plain = old_key.open(at, sealed.unwrap()).unwrap();
                *slot = Some(new_key.seal(at, &plain).unwrap());
            }
            (row.id, phi)
        })
        .collect();
    assert_eq!(
        store
            .reseal_phi(&admin, &acme(), (&old_id, &new_id), &moved)
            .await
            .unwrap(),
        500
    );
    let done = keyring.reencrypt(&admin, &acme()).await.unwrap();
    assert_eq!(done.claims, 800, "the rest of the 1,300 under the old key");
    assert_eq!(done.files, 1);
    assert_eq!(done.drained, std::slice::from_ref(&old_id));

    // Every value opens under the new key; the old key is erased.
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM claims WHERE data_key_id = '{new_id}'"
        ))
        .await,
        1_400
    );
    let keys = store.data_keys(Some(&acme())).await.unwrap();
    let old = keys.iter().find(|k| k.key_id == old_id).unwrap();
    assert_eq!(old.state(), "drained");
    assert!(old.wrapped_key.is_none());
    let fresh = app.keyring().await.1;
    for (upload, record, tag) in [("u1", 1, "R1"), ("u1", 1_250, "R1250"), ("u2", 100, "R100")] {
        let id = app
            .count(&format!(
                "SELECT id FROM claims WHERE upload_id = '{upload}' AND record_no = {record}"
            ))
            .await;
        let stored = store
            .phi_sealed_by(&admin, &acme(), &new_id, 10_000)
            .await
            .unwrap()
            .into_iter()
            .find(|c| c.id == id)
            .unwrap();
        let opened = open_phi(&fresh, &stored).await.unwrap();
        assert_eq!(
            opened.member_id.expose().as_deref(),
            Some(format!("ZZMEM{tag}").as_str())
        );
    }
    let mut reopened = Vec::new();
    std::io::Read::read_to_end(
        &mut raw.open(&acme(), &file.file_id).await.unwrap(),
        &mut reopened,
    )
    .unwrap();
    assert_eq!(reopened, format!("raw {CANARY}").as_bytes());

    // A writer still holding the erased key is refused, and nothing is stored.
    let refused = store
        .insert_claims(&acme(), &seal(&before, "u3", 1, 10))
        .await;
    assert!(matches!(refused, Err(StoreError::KeyErased)), "{refused:?}");
    assert_eq!(
        app.count("SELECT count(*) FROM claims WHERE upload_id = 'u3'")
            .await,
        0
    );
    // A second pass has nothing to do.
    assert_eq!(
        keyring.reencrypt(&admin, &acme()).await.unwrap(),
        Default::default()
    );
    let kinds: Vec<String> = app.audit().await.into_iter().map(|e| e.kind).collect();
    assert!(kinds.contains(&"datakey.drained".to_owned()));
}

#[tokio::test]
async fn rotation_while_writing_loses_nothing_and_drains_the_old_key_sqlite() {
    rotation_on(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_rotation_while_writing_loses_nothing_and_drains_the_old_key() {
    rotation_on(Backend::Postgres).await;
}

async fn shredding_on(backend: Backend) {
    let Some(app) = TestApp::on(backend, "claim_store_shred", &[]).await else {
        return;
    };
    app.provider("acme").await;
    app.provider("zeta").await;
    app.store_claims("acme", "ua", &[phi_claim("A-1", "S1")])
        .await;
    app.store_claims("zeta", "uz", &[phi_claim("Z-1", "S2")])
        .await;
    let (store, keyring) = app.keyring().await;
    let raw = RawStore::new(
        &app.settings.data_dir.join("raw"),
        store.clone(),
        keyring.clone(),
    )
    .unwrap();
    let file = raw.put(&acme(), &b"ISA*ZZRAW~"[..]).await.unwrap();
    let sec = app
        .principal("sec", "person", json!([{ "role": "security_admin" }]))
        .await;
    let reader = app
        .principal("reader", "person", json!([{ "role": "phi_reader" }]))
        .await;
    let destroyed = app
        .call(
            &sec,
            "POST",
            "/v1/admin/providers/acme/keys/destroy",
            r#"{"confirm":"acme"}"#,
        )
        .await;
    assert_eq!(destroyed.status, 200, "{destroyed:?}");
    assert_eq!(destroyed.json()["destroyed"], 2, "the seal and index keys");

    let acme_id = app
        .count("SELECT id FROM claims WHERE source_claim_id = 'A-1'")
        .await;
    let gone = app
        .call(
            &reader,
            "GET",
            &format!("/v1/providers/acme/claims/{acme_id}?purpose=payment"),
            "",
        )
        .await;
    assert_eq!(gone.status, 410, "{gone:?}");
    assert_eq!(gone.json()["error_code"], "key_destroyed");
    let search = app
        .call(
            &reader,
            "POST",
            "/v1/providers/acme/claims/search",
            r#"{"member_id":"ZZMEMS1","purpose":"payment"}"#,
        )
        .await;
    assert_eq!(search.status, 200, "{search:?}");
    assert_eq!(
        search.json()["ids"],
        json!([]),
        "the blind-index key is shredded too: the old indexes match nothing"
    );
    // A raw store over a fresh keyring (the test's own cached the key for up to 5 s).
    let (_, fresh) = app.keyring().await;
    let raw = RawStore::new(
        &app.settings.data_dir.join("raw"),
        store.clone(),
        fresh.clone(),
    )
    .unwrap();
    assert!(matches!(
        raw.open(&acme(), &file.file_id).await,
        Err(claimgate::raw_store::RawStoreError::Keyring(
            KeyringError::KeyDestroyed(_)
        ))
    ));
    // Nor can the keyring open the sealed fields by any other path.
    let key_id: String = store
        .data_keys(Some(&acme()))
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.purpose == "seal")
        .unwrap()
        .key_id;
    let stored = store
        .phi_sealed_by(&KeyAdmin::operator_console(), &acme(), &key_id, 10)
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert!(matches!(
        open_phi(&fresh, &stored).await,
        Err(KeyringError::KeyDestroyed(_))
    ));
    // The non-PHI record stays: the claim, its line, its totals; the audit trail too.
    assert_eq!(
        app.count("SELECT total_charge_cents FROM claims WHERE source_claim_id = 'A-1'")
            .await,
        12_345
    );
    assert_eq!(
        app.count("SELECT count(*) FROM claim_lines WHERE upload_id = 'ua'")
            .await,
        1
    );
    // zeta is untouched.
    let zeta_id = app
        .count("SELECT id FROM claims WHERE source_claim_id = 'Z-1'")
        .await;
    let zeta = app
        .call(
            &reader,
            "GET",
            &format!("/v1/providers/zeta/claims/{zeta_id}?purpose=payment"),
            "",
        )
        .await;
    assert_eq!(zeta.status, 200);
    assert_eq!(zeta.json()["member_id"], "ZZMEMS2");
    // New writes for the shredded provider start a new key; old data stays unreadable.
    app.store_claims("acme", "ua2", &[phi_claim("A-2", "S3")])
        .await;
    assert_eq!(
        app.call(
            &reader,
            "GET",
            &format!("/v1/providers/acme/claims/{acme_id}?purpose=payment"),
            ""
        )
        .await
        .status,
        410
    );
}

#[tokio::test]
async fn shredding_one_provider_leaves_its_records_but_not_its_phi_sqlite() {
    shredding_on(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_shredding_one_provider_leaves_its_records_but_not_its_phi() {
    shredding_on(Backend::Postgres).await;
}

async fn disclosures_on(backend: Backend) {
    let Some(app) = TestApp::on(backend, "claim_store_disclosures", &[]).await else {
        return;
    };
    app.provider("acme").await;
    app.store_claims(
        "acme",
        "up1",
        &[
            phi_claim("D-1", "DQ"),
            phi_claim("D-2", "DQ"),
            phi_claim("D-3", "DR"),
        ],
    )
    .await;
    let reader = app
        .principal(
            "reader",
            "person",
            json!([{ "role": "phi_reader", "provider": "acme" }]),
        )
        .await;
    let auditor = app
        .principal("comp", "person", json!([{ "role": "compliance_auditor" }]))
        .await;
    let analyst = app
        .principal(
            "ann",
            "person",
            json!([{ "role": "analyst", "provider": "acme" }]),
        )
        .await;
    let id = |source: &str| {
        let app = &app;
        let sql = format!("SELECT id FROM claims WHERE source_claim_id = '{source}'");
        async move { app.count(&sql).await }
    };
    let (d1, d2, d3) = (id("D-1").await, id("D-2").await, id("D-3").await);
    let code = |r: &Response| {
        r.json()["error_code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let field = |r: &Response| {
        let message = r.json()["message"].as_str().unwrap_or_default().to_owned();
        if message.contains("`purpose`") {
            "purpose".to_owned()
        } else {
            message
        }
    };

    // Without a purpose, or with one off the list, nothing is read and nothing recorded.
    for path in [
        "/v1/providers/acme/claims".to_owned(),
        format!("/v1/providers/acme/claims/{d1}"),
        format!("/v1/providers/acme/claims/{d1}?purpose="),
        format!("/v1/providers/acme/claims/{d1}?purpose=curiosity"),
    ] {
        let refused = app.call(&reader, "GET", &path, "").await;
        assert_eq!(refused.status, 400, "{path}: {refused:?}");
        assert_eq!(field(&refused), "purpose", "{refused:?}");
        assert!(!refused.body.contains("ZZ"), "{refused:?}");
    }
    let unstated = app
        .call(
            &reader,
            "POST",
            "/v1/providers/acme/claims/search",
            &json!({ "member_id": "ZZMEMDQ" }).to_string(),
        )
        .await;
    assert_eq!(
        (unstated.status, code(&unstated).as_str()),
        (400, "invalid_field"),
        "{unstated:?}"
    );
    assert!(unstated.body.contains("purpose_required"), "{unstated:?}");
    assert_eq!(app.count("SELECT count(*) FROM phi_disclosures").await, 0);

    // With a purpose: a search (two claims of member DQ), one claim read, a list of all.
    let found = app
        .call(
            &reader,
            "POST",
            "/v1/providers/acme/claims/search",
            &json!({ "member_id": "ZZMEMDQ", "purpose": "treatment" }).to_string(),
        )
        .await;
    assert_eq!(found.json()["ids"], json!([d1, d2]), "{found:?}");
    let shown = app
        .call(
            &reader,
            "GET",
            &format!("/v1/providers/acme/claims/{d2}?purpose=payment"),
            "",
        )
        .await;
    assert_eq!(shown.status, 200, "{shown:?}");
    let claim = shown.json();
    assert_eq!(claim["member_id"], "ZZMEMDQ");
    assert_eq!(claim["lines"][0]["charge_cents"], 12_345);
    assert_eq!(claim["versions"].as_array().unwrap().len(), 1);
    assert_eq!(claim["versions"][0]["current"], true);
    let listed = app
        .call(
            &reader,
            "GET",
            "/v1/providers/acme/claims?purpose=operations",
            "",
        )
        .await;
    assert_eq!(listed.json().as_array().unwrap().len(), 3);
    // Member DR: only the list touched its claim.
    let other = app
        .call(
            &reader,
            "GET",
            &format!("/v1/providers/acme/claims/{d3}?purpose=legal"),
            "",
        )
        .await;
    assert_eq!(other.status, 200);

    // Every read is audited with its purpose and names its disclosure.
    let audited = app
        .count("SELECT count(*) FROM audit_events WHERE kind = 'phi.read'")
        .await;
    assert_eq!(audited, 4);
    let accounting = |body: serde_json::Value, token: String| {
        let app = &app;
        async move {
            app.call(&token, "POST", "/v1/audit/disclosures", &body.to_string())
                .await
        }
    };
    let dq = json!({ "provider": "acme", "member_id": "ZZMEMDQ" });
    let report = accounting(dq.clone(), auditor.clone()).await;
    assert_eq!(report.status, 200, "{report:?}");
    assert_eq!(report.header("cache-control"), Some("no-store"));
    let disclosures = report.json()["disclosures"].as_array().unwrap().clone();
    let summary: Vec<(String, String, String, serde_json::Value)> = disclosures
        .iter()
        .map(|d| {
            (
                d["principal"].as_str().unwrap().to_owned(),
                d["purpose"].as_str().unwrap().to_owned(),
                d["action"].as_str().unwrap().to_owned(),
                d["claim_ids"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "reader".into(),
                "treatment".into(),
                "claims.search".into(),
                json!([d1, d2])
            ),
            (
                "reader".into(),
                "payment".into(),
                "claim.read".into(),
                json!([d2])
            ),
            (
                "reader".into(),
                "operations".into(),
                "claims.list".into(),
                json!([d1, d2])
            ),
        ],
        "the member's claims only, in order: {report:?}"
    );
    assert!(
        !report.body.contains("ZZMEMDQ"),
        "no PHI echoed: {report:?}"
    );
    let dr = accounting(
        json!({ "provider": "acme", "member_id": "ZZMEMDR", "format": "csv" }),
        auditor.clone(),
    )
    .await;
    assert_eq!(dr.status, 200, "{dr:?}");
    assert!(dr.header("content-type").unwrap().starts_with("text/csv"));
    let lines: Vec<&str> = dr.body.lines().collect();
    assert_eq!(
        lines[0],
        "disclosure_id,occurred_at,principal,role,purpose,action,request_id,break_glass,claim_ids"
    );
    assert_eq!(lines.len(), 3, "the list and the read of D-3: {}", dr.body);
    assert!(lines[1].contains("\"operations\"") && lines[1].contains(&format!("\"{d3}\"")));
    assert!(lines[2].contains("\"legal\"") && lines[2].contains("\"claim.read\""));
    // A range before the reads finds none; an unknown member none.
    let before = accounting(
        json!({ "provider": "acme", "member_id": "ZZMEMDQ", "to": "2020-01-01T00:00:00Z" }),
        auditor.clone(),
    )
    .await;
    assert_eq!(before.json()["disclosures"], json!([]));
    let nobody = accounting(
        json!({ "provider": "acme", "member_id": "ZZNOBODY" }),
        auditor.clone(),
    )
    .await;
    assert_eq!(nobody.json()["disclosures"], json!([]));
    // The accounting is audited; only the compliance role may ask for it.
    assert_eq!(
        app.count("SELECT count(*) FROM audit_events WHERE kind = 'disclosures.accounted'")
            .await,
        4
    );
    assert_eq!(accounting(dq.clone(), reader.clone()).await.status, 403);
    assert_eq!(accounting(dq.clone(), analyst.clone()).await.status, 403);
    // An analyst cannot reach the lookup API at all.
    for path in [
        "/v1/providers/acme/claims?purpose=research".to_owned(),
        format!("/v1/providers/acme/claims/{d1}?purpose=research"),
    ] {
        assert_eq!(app.call(&analyst, "GET", &path, "").await.status, 403);
    }
    let search = app
        .call(
            &analyst,
            "POST",
            "/v1/providers/acme/claims/search",
            &json!({ "member_id": "ZZMEMDQ", "purpose": "research" }).to_string(),
        )
        .await;
    assert_eq!(search.status, 403);
    // The records cannot be changed, even by the gateway's own database role.
    let tampered = app
        .try_sql("UPDATE phi_disclosures SET purpose = 'other'")
        .await;
    assert!(tampered.is_err(), "disclosures are append-only");
    let erased = app.try_sql("DELETE FROM phi_disclosed_claims").await;
    assert!(erased.is_err(), "disclosed claims are append-only");
}

#[tokio::test]
async fn a_phi_read_needs_a_purpose_and_shows_in_the_accounting_of_disclosures_sqlite() {
    disclosures_on(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_a_phi_read_needs_a_purpose_and_shows_in_the_accounting_of_disclosures() {
    disclosures_on(Backend::Postgres).await;
}
