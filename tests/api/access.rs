//! Access control through the real server: the permission matrix (every role × every
//! route, expected outcomes read from `policies/policy.csv` by this test's own parser),
//! credentials, rate limiting, break-glass, self-grants, client certificates and
//! database-enforced tenancy.

use std::collections::HashSet;
use std::time::Duration;

use claimgate::api::{Access, ROUTES};
use claimgate::audit::verify_chain;
use serde_json::json;

use crate::helpers::*;

/// `(role, scope, object, action)` rows of the shipped policy, parsed here independently.
fn policy_rows() -> HashSet<(String, String, String, String)> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/policy.csv");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let f: Vec<String> = l.split(',').map(|x| x.trim().to_owned()).collect();
            assert_eq!(f[0], "p");
            (f[1].clone(), f[2].clone(), f[3].clone(), f[4].clone())
        })
        .collect()
}

const ROLES: [&str; 7] = [
    "security_admin",
    "mapping_admin",
    "provider_submitter",
    "phi_reader",
    "analyst",
    "compliance_auditor",
    "monitoring",
];

/// A caller of the matrix: unauthenticated, or one role held globally or on `acme`.
#[derive(Debug, Clone)]
struct Caller {
    label: String,
    role: Option<&'static str>,
    tenant: bool,
    token: String,
}

/// Whether the policy lets `caller` through a route's access rule for provider `code`.
fn expected(
    rows: &HashSet<(String, String, String, String)>,
    caller: &Caller,
    access: Access,
    code: &str,
) -> bool {
    let has = |scope: &str, p: claimgate::authz::Permission| {
        caller.role.is_some_and(|role| {
            rows.contains(&(
                role.into(),
                scope.into(),
                p.object().into(),
                p.action().into(),
            ))
        })
    };
    match access {
        Access::Public => true,
        Access::Authenticated => caller.role.is_some(),
        Access::Global(p) => !caller.tenant && has("global", p),
        Access::Tenant(p) if caller.tenant => code == "acme" && has("tenant", p),
        Access::Tenant(p) => has("global", p) || has("tenant", p),
        Access::Credential(p) => has("global", p) || has("tenant", p),
    }
}

/// A request that an allowed caller can make without changing anything: bodies are
/// invalid and names do not exist, so an allowed call ends in 200, 400, 404 or 428 (an
/// edit or approval without `If-Match`), a denied one in 403 (authorization comes before
/// validation and look-ups).
fn probe(path: &str, code: &str) -> String {
    path.replace("{code}", code)
        .replace("{name}", "nobody")
        .replace("{role}", "analyst")
        .replace("{key_id}", "00000000000000ff")
        .replace("{id:\\d{1,18}}", "1")
        .replace("{version:\\d{1,9}}", "1")
        .replace("{other:\\d{1,9}}", "2")
}

async fn matrix_on(backend: Backend) {
    let Some(app) = TestApp::on(backend, "permission_matrix", &[]).await else {
        return;
    };
    app.provider("acme").await;
    app.provider("other").await;
    let mut callers = vec![Caller {
        label: "anonymous".into(),
        role: None,
        tenant: false,
        token: String::new(),
    }];
    for role in ROLES {
        for tenant in [false, true] {
            let label = format!("{role}-{}", if tenant { "acme" } else { "global" });
            let grant = if tenant {
                json!([{ "role": role, "provider": "acme" }])
            } else {
                json!([{ "role": role }])
            };
            let token = app
                .principal(&label.replace('_', "-"), "system", grant)
                .await;
            callers.push(Caller {
                label,
                role: Some(role),
                tenant,
                token,
            });
        }
    }
    let rows = policy_rows();
    let mut checked = 0;
    let mut covered = HashSet::new();
    for route in ROUTES {
        let codes: &[&str] = if route.path.contains("{code}") {
            &["acme", "other"]
        } else {
            &["acme"]
        };
        for code in codes {
            // Disabling changes state: probe it on a provider that does not exist.
            let path = if route.path.ends_with("/disable") {
                probe(route.path, "nobody")
            } else {
                probe(route.path, code)
            };
            let body = if route.method == "POST" || route.method == "PUT" {
                "{}"
            } else {
                ""
            };
            for caller in &callers {
                let response = app
                    .call(&caller.token, route.method.as_str(), &path, body)
                    .await;
                let allowed = expected(&rows, caller, route.access, code);
                let outcome = match response.status {
                    401 | 403 => false,
                    200 | 201 | 202 | 204 | 400 | 404 | 409 | 428 => true,
                    other => panic!(
                        "{} {path} as {}: unexpected {other}: {}",
                        route.method, caller.label, response.body
                    ),
                };
                assert_eq!(
                    outcome, allowed,
                    "{} {path} as {}: {} {}",
                    route.method, caller.label, response.status, response.body
                );
                if caller.role.is_none() && route.access != Access::Public {
                    assert_eq!(response.status, 401, "{} {path} anonymous", route.method);
                }
                checked += 1;
            }
        }
        covered.insert((route.method.as_str(), route.path));
    }
    assert_eq!(
        covered.len(),
        ROUTES.len(),
        "every route is checked once per caller"
    );
    assert!(checked >= ROUTES.len() * callers.len());
    // A path outside the table does not exist.
    assert_eq!(
        app.call(&app.admin_key, "GET", "/v1/admin/everything", "")
            .await
            .status,
        404
    );
    // Every refusal was audited, and the trail still verifies.
    let trail = app.audit().await;
    assert!(trail.iter().any(|e| e.kind == "authz.denied"));
    verify_chain(&trail).unwrap();
}

#[tokio::test]
async fn permission_matrix_every_role_by_every_route_sqlite() {
    matrix_on(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_permission_matrix_every_role_by_every_route() {
    matrix_on(Backend::Postgres).await;
}

/// The error body without its request id.
fn anonymous_body(response: &Response) -> serde_json::Value {
    let mut body = response.json();
    body.as_object_mut().unwrap().remove("request_id");
    body
}

#[tokio::test]
async fn every_bad_credential_gets_the_same_401_and_an_audit_reason() {
    let app = TestApp::sqlite(&[("CLAIMGATE_AUTH__MAX_FAILURES", "100")]).await;
    let revoked = app.principal("revoked", "person", json!([])).await;
    let disabled = app.principal("disabled", "person", json!([])).await;
    let expired = app.principal("expired", "person", json!([])).await;
    let live = app.principal("live", "person", json!([])).await;
    let key_id = |t: &str| t[4..20].to_owned();
    let revoke = app
        .call(
            &app.admin_key,
            "DELETE",
            &format!("/v1/admin/keys/{}", key_id(&revoked)),
            "",
        )
        .await;
    assert_eq!(revoke.status, 204);
    let disable = app
        .call(
            &app.admin_key,
            "POST",
            "/v1/admin/principals/disabled/disable",
            "",
        )
        .await;
    assert_eq!(disable.status, 204);
    app.sql(&format!(
        "UPDATE api_keys SET expires_at = '2020-01-01 00:00:00+00:00' WHERE key_id = '{}'",
        key_id(&expired)
    ))
    .await;
    assert_eq!(app.call(&live, "GET", "/v1/whoami", "").await.status, 200);

    let unknown = format!("cgk_{}_{}", "ab".repeat(8), "cd".repeat(32));
    let wrong_secret = format!("{}{}", &live[..21], "ef".repeat(32));
    let oversized = format!("cgk_{}", "a".repeat(4000));
    let huge = "a".repeat(64 * 1024);
    let mut bodies = Vec::new();
    for token in [
        unknown.as_str(),
        "not-a-key",
        wrong_secret.as_str(),
        expired.as_str(),
        revoked.as_str(),
        disabled.as_str(),
        oversized.as_str(),
        huge.as_str(),
    ] {
        let response = app.call(token, "GET", "/v1/whoami", "").await;
        assert_eq!(response.status, 401, "{token:.30}: {response:?}");
        assert_eq!(response.header("www-authenticate"), Some("Bearer"));
        bodies.push(anonymous_body(&response));
    }
    // A scheme other than Bearer is malformed too.
    let basic = app
        .send("GET /v1/whoami HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic YTpi\r\nConnection: close\r\n\r\n")
        .await;
    bodies.push(anonymous_body(&basic));
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "identical bodies: {bodies:#?}"
    );

    let reasons: Vec<String> = app
        .audit()
        .await
        .iter()
        .filter(|e| e.kind == "auth.failure")
        .map(|e| {
            serde_json::from_str::<serde_json::Value>(&e.body).unwrap()["reason"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        reasons,
        [
            "unknown_key",
            "malformed_credential",
            "wrong_secret",
            "expired_key",
            "revoked_key",
            "disabled_principal",
            "malformed_credential",
            "malformed_credential",
            "malformed_credential"
        ]
    );
}

#[tokio::test]
async fn failed_authentication_is_rate_limited_then_released() {
    let app = TestApp::sqlite(&[
        ("CLAIMGATE_AUTH__MAX_FAILURES", "3"),
        ("CLAIMGATE_AUTH__FAILURE_WINDOW_SECS", "2"),
    ])
    .await;
    let good = app.admin_key.clone();
    assert_eq!(app.call(&good, "GET", "/v1/whoami", "").await.status, 200);
    for _ in 0..3 {
        assert_eq!(app.call("guess", "GET", "/v1/whoami", "").await.status, 401);
    }
    let locked = app.call(&good, "GET", "/v1/whoami", "").await;
    assert_eq!(
        locked.status, 429,
        "even a good key, from a locked-out address"
    );
    assert_eq!(locked.json()["error_code"], "too_many_attempts");
    let retry: u64 = locked.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    // The lock-out is one audit event and one alert, however often it is knocked on.
    assert_eq!(app.call("guess", "GET", "/v1/whoami", "").await.status, 429);
    let trail = app.audit().await;
    assert_eq!(trail.iter().filter(|e| e.kind == "auth.failure").count(), 3);
    let lockouts: Vec<_> = trail.iter().filter(|e| e.kind == "auth.lockout").collect();
    assert_eq!(lockouts.len(), 1, "{lockouts:?}");
    assert!(lockouts[0].body.contains("too_many_failures"));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        app.call(&good, "GET", "/v1/whoami", "").await.status,
        200,
        "released when the window ends"
    );
    assert_eq!(app.alerts("auth_lockout").await, 1);
}

#[tokio::test]
async fn a_burst_of_permission_denials_raises_one_alert() {
    let app = TestApp::sqlite(&[]).await;
    app.provider("acme").await;
    let submitter = app
        .principal(
            "acme-upload",
            "system",
            json!([{ "role": "provider_submitter", "provider": "acme" }]),
        )
        .await;
    assert_eq!(app.alerts("authz_denial_burst").await, 0);
    for n in 1..=25 {
        let denied = app
            .call(&submitter, "GET", "/v1/admin/principals", "")
            .await;
        assert_eq!(denied.status, 403);
        let expected = u64::from(n >= 20);
        if n == 19 || n == 20 || n == 25 {
            assert_eq!(
                app.alerts("authz_denial_burst").await,
                expected,
                "after {n} denials"
            );
        }
    }
    let denials = app
        .audit()
        .await
        .iter()
        .filter(|e| e.kind == "authz.denied")
        .count();
    assert_eq!(denials, 25, "every denial is audited, the alert comes once");
}

async fn break_glass_on(backend: Backend) {
    let Some(app) = TestApp::on(backend, "break_glass", &[]).await else {
        return;
    };
    app.provider("acme").await;
    app.store_claims("acme", "u1", &[phi_claim(CANARY, "BG")])
        .await;
    let analyst = app
        .principal("ann", "person", json!([{ "role": "analyst" }]))
        .await;
    let claims = "/v1/providers/acme/claims?purpose=payment";
    assert_eq!(app.call(&analyst, "GET", claims, "").await.status, 403);

    let reason = "ZZREASON patient in ER, chart needed now";
    let too_short = app
        .call(
            &analyst,
            "POST",
            "/v1/providers/acme/break-glass",
            r#"{"reason":"now"}"#,
        )
        .await;
    assert_eq!(too_short.status, 400);
    let granted = app
        .call(
            &analyst,
            "POST",
            "/v1/providers/acme/break-glass",
            &json!({ "reason": reason, "minutes": 15 }).to_string(),
        )
        .await;
    assert_eq!(granted.status, 201, "{granted:?}");
    let expires = time::OffsetDateTime::parse(
        granted.json()["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let left = expires - time::OffsetDateTime::now_utc();
    assert!(left > time::Duration::minutes(14) && left <= time::Duration::minutes(15));

    let read = app.call(&analyst, "GET", claims, "").await;
    assert_eq!(read.status, 200, "{read:?}");
    assert_eq!(read.json()[0]["source_claim_id"], CANARY);
    let read_again = app.call(&analyst, "GET", claims, "").await;
    assert_eq!(read_again.status, 200);

    // It lapses by itself: move its expiry into the past, as time would.
    let past = if backend == Backend::Postgres {
        "now() - interval '1 second'"
    } else {
        "'2020-01-01 00:00:00+00:00'"
    };
    app.sql(&format!(
        "UPDATE role_grants SET expires_at = {past} WHERE break_glass"
    ))
    .await;
    assert_eq!(app.call(&analyst, "GET", claims, "").await.status, 403);

    let trail = app.audit().await;
    verify_chain(&trail).unwrap();
    let bodies: Vec<serde_json::Value> = trail
        .iter()
        .map(|e| serde_json::from_str(&e.body).unwrap())
        .collect();
    let uses: Vec<&serde_json::Value> = bodies.iter().filter(|b| b["kind"] == "phi.read").collect();
    assert_eq!(uses.len(), 2, "each use is audited");
    for used in uses {
        assert_eq!(used["break_glass"], true);
        assert_eq!(used["review"], true, "flagged for review");
        assert_eq!(used["phi"], true);
        assert_eq!(used["records"], 1);
        assert_eq!(used["provider"], "acme");
    }
    assert!(bodies.iter().any(|b| b["kind"] == "breakglass.granted"));
    for event in &trail {
        assert!(
            !event.body.contains("ZZREASON"),
            "the free-text reason stays out of the trail"
        );
        assert!(!event.body.contains(CANARY), "no PHI in the trail");
    }
}

#[tokio::test]
async fn break_glass_grants_expire_and_every_use_is_audited_sqlite() {
    break_glass_on(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_break_glass_grants_expire_and_every_use_is_audited() {
    break_glass_on(Backend::Postgres).await;
}

#[tokio::test]
async fn no_self_grants_and_security_admins_read_no_phi() {
    let app = TestApp::sqlite(&[]).await;
    app.provider("acme").await;
    let own = app
        .call(
            &app.admin_key,
            "POST",
            "/v1/admin/principals/bootstrap-admin/grants",
            r#"{"role":"phi_reader"}"#,
        )
        .await;
    assert_eq!(own.status, 403);
    assert_eq!(own.json()["error_code"], "self_grant");

    let sec = app
        .principal("sec", "person", json!([{ "role": "security_admin" }]))
        .await;
    for (method, path) in [
        ("GET", "/v1/providers/acme/claims?purpose=payment"),
        ("POST", "/v1/providers/acme/break-glass"),
    ] {
        let body = if method == "POST" {
            r#"{"reason":"I would like to look, please"}"#
        } else {
            ""
        };
        assert_eq!(
            app.call(&sec, method, path, body).await.status,
            403,
            "{path}"
        );
    }
    // It may grant phi_reader to someone else, and that someone can then read.
    let other = app.principal("reader", "person", json!([])).await;
    let grant = app
        .call(
            &sec,
            "POST",
            "/v1/admin/principals/reader/grants",
            r#"{"role":"phi_reader","provider":"acme"}"#,
        )
        .await;
    assert_eq!(grant.status, 204, "{grant:?}");
    assert_eq!(
        app.call(
            &other,
            "GET",
            "/v1/providers/acme/claims?purpose=payment",
            ""
        )
        .await
        .status,
        200
    );
    assert_eq!(
        app.call(
            &other,
            "GET",
            "/v1/providers/other/claims?purpose=payment",
            ""
        )
        .await
        .status,
        403
    );
    // And revoke it: effective immediately.
    let revoke = app
        .call(
            &sec,
            "DELETE",
            "/v1/admin/principals/reader/grants/phi_reader?provider=acme",
            "",
        )
        .await;
    assert_eq!(revoke.status, 204);
    assert_eq!(
        app.call(
            &other,
            "GET",
            "/v1/providers/acme/claims?purpose=payment",
            ""
        )
        .await
        .status,
        403
    );

    // Bad grants get precise 400s, never 500.
    for (body, code) in [
        (r#"{"role":"wizard"}"#, "invalid_field"),
        (
            r#"{"role":"analyst","provider":"nowhere"}"#,
            "invalid_field",
        ),
        (
            r#"{"role":"analyst","provider":"NOT A CODE"}"#,
            "invalid_field",
        ),
        (r#"{"role":"analyst","extra":1}"#, "malformed_json"),
        ("[", "malformed_json"),
    ] {
        let response = app
            .call(&sec, "POST", "/v1/admin/principals/reader/grants", body)
            .await;
        assert_eq!(response.status, 400, "{body}: {response:?}");
        assert_eq!(response.json()["error_code"], code, "{body}");
    }
    let unknown_provider = app
        .call(
            &sec,
            "POST",
            "/v1/admin/principals/reader/grants",
            r#"{"role":"analyst","provider":"nowhere"}"#,
        )
        .await;
    assert!(
        unknown_provider.body.contains("provider"),
        "{unknown_provider:?}"
    );
}

#[tokio::test]
async fn keys_are_shown_once_expire_for_people_and_are_revocable() {
    let app = TestApp::sqlite(&[("CLAIMGATE_AUTH__PERSON_KEY_TTL_HOURS", "2")]).await;
    let body = json!({ "name": "pat", "kind": "person" }).to_string();
    let created = app
        .call(&app.admin_key, "POST", "/v1/admin/principals", &body)
        .await;
    assert_eq!(created.status, 201);
    assert_eq!(created.header("cache-control"), Some("no-store"));
    let token = created.json()["token"].as_str().unwrap().to_owned();
    let expires = time::OffsetDateTime::parse(
        created.json()["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let ttl = expires - time::OffsetDateTime::now_utc();
    assert!(
        ttl > time::Duration::minutes(119) && ttl <= time::Duration::hours(2),
        "{ttl}"
    );
    let shown = app
        .call(&app.admin_key, "GET", "/v1/admin/principals/pat", "")
        .await;
    assert_eq!(shown.status, 200);
    assert!(
        !shown.body.contains(&token[21..]),
        "the secret is never shown again"
    );
    assert_eq!(shown.json()["keys"][0]["key_id"], &token[4..20]);

    let system = json!({ "name": "feed", "kind": "system" }).to_string();
    let created = app
        .call(&app.admin_key, "POST", "/v1/admin/principals", &system)
        .await;
    assert!(
        created.json()["expires_at"].is_null(),
        "system keys do not expire by default"
    );

    let second = app
        .call(&app.admin_key, "POST", "/v1/admin/principals/pat/keys", "")
        .await;
    assert_eq!(second.status, 201);
    let second = second.json()["token"].as_str().unwrap().to_owned();
    assert_eq!(
        app.call(&second, "GET", "/v1/whoami", "").await.json()["name"],
        "pat"
    );
    let revoke = app
        .call(
            &app.admin_key,
            "DELETE",
            &format!("/v1/admin/keys/{}", &second[4..20]),
            "",
        )
        .await;
    assert_eq!(revoke.status, 204);
    assert_eq!(app.call(&second, "GET", "/v1/whoami", "").await.status, 401);
    assert_eq!(
        app.call(&token, "GET", "/v1/whoami", "").await.status,
        200,
        "the other key lives"
    );
}

#[tokio::test]
async fn a_mapped_client_certificate_authenticates_its_principal() {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let app = TestApp::sqlite(&[("CLAIMGATE_TLS__CLIENT_AUTH", "optional")]).await;
    app.provider("acme").await;
    app.principal(
        "clinic-feed",
        "system",
        json!([{ "role": "provider_submitter", "provider": "acme" }]),
    )
    .await;
    let with_cert = client_config(ClientOptions {
        client_cert_from: Some(certs()),
        ..ClientOptions::default()
    });
    let whoami = get("/v1/whoami");
    let before = request_with(app.addr, with_cert.clone(), whoami.as_bytes())
        .await
        .unwrap();
    assert_eq!(
        before.status, 401,
        "an unmapped certificate is no credential"
    );

    let der = CertificateDer::from_pem_file(certs().join("client.pem")).unwrap();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der.as_ref());
    let colons: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    let mapped = app
        .call(
            &app.admin_key,
            "POST",
            "/v1/admin/principals/clinic-feed/certificates",
            &json!({ "sha256": colons.join(":") }).to_string(),
        )
        .await;
    assert_eq!(mapped.status, 204, "{mapped:?}");
    let after = request_with(app.addr, with_cert, whoami.as_bytes())
        .await
        .unwrap();
    assert_eq!(after.status, 200, "{after:?}");
    assert_eq!(after.json()["name"], "clinic-feed");
    assert_eq!(after.json()["grants"][0]["provider"], "acme");
    let plain = app.send(&whoami).await;
    assert_eq!(plain.status, 401, "without the certificate, nothing");
}

#[tokio::test]
async fn postgres_tenancy_holds_in_the_database_and_an_unsafe_role_is_refused() {
    let Some(app) = TestApp::postgres("postgres_tenancy", &[]).await else {
        return;
    };
    app.provider("acme").await;
    app.provider("other").await;
    app.store_claims("acme", "u-acme", &[phi_claim("acme-1", "T1")])
        .await;
    app.store_claims("other", "u-other", &[phi_claim("other-1", "T2")])
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
        .await;
    assert_eq!(listed.status, 200);
    let body = listed.json();
    let ids: Vec<&str> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["source_claim_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["acme-1"]);

    // The gateway's own connections run as claimgate_api.
    use secrecy::ExposeSecret;
    let url = app.settings.database.url.expose_secret().to_owned();
    let store = claimgate::store::Store::connect(&app.settings.database)
        .await
        .unwrap();
    assert!(
        store
            .serving_role_problems("claimgate_api")
            .await
            .unwrap()
            .is_empty()
    );

    // A role with BYPASSRLS is refused at start-up.
    let mut random = [0u8; 4];
    aws_lc_rs::rand::fill(&mut random).unwrap();
    let role = format!("claimgate_test_bypass_{}", hex::encode(random));
    app.sql(&format!(
        "CREATE ROLE {role} NOLOGIN BYPASSRLS; GRANT claimgate_api TO {role}"
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let settings = test_settings(
        dir.path(),
        Some(&url),
        &[("CLAIMGATE_DATABASE__ROLE", &role)],
    );
    let refused = claimgate::app::Application::build(&settings)
        .await
        .err()
        .map(|e| e.to_string());
    app.sql(&format!("DROP ROLE {role}")).await;
    let refused = refused.expect("start-up must refuse");
    assert!(
        refused.contains("BYPASSRLS") && refused.contains(&role),
        "{refused}"
    );
}
