//! HTTP behaviour: security headers, error bodies, body limits and deadlines, the
//! per-address connection cap, authentication, and the providers resource.

use std::time::{Duration, Instant};

use crate::helpers::*;

const SECURITY_HEADERS: [(&str, &str); 5] = [
    ("strict-transport-security", "max-age=63072000"),
    ("cache-control", "no-store"),
    ("x-content-type-options", "nosniff"),
    (
        "content-security-policy",
        "default-src 'none'; frame-ancestors 'none'",
    ),
    ("referrer-policy", "no-referrer"),
];

fn assert_error(response: &Response, status: u16, code: &str) {
    assert_eq!(response.status, status, "{response:?}");
    assert_eq!(response.header("content-type"), Some("application/json"));
    let body = response.json();
    assert_eq!(body["error_code"], code, "{body}");
    assert_eq!(
        body["request_id"].as_str(),
        response.header("x-request-id"),
        "body and header ids agree"
    );
    assert_eq!(
        body.as_object().map(|o| o.len()),
        Some(3),
        "exactly error_code, message, request_id: {body}"
    );
}

#[tokio::test]
async fn every_response_carries_security_headers_and_a_request_id() {
    let app = TestApp::sqlite(&[]).await;
    let mut ids = Vec::new();
    for request in [
        get("/healthz"),
        get("/no/such/path?member=1"),
        app.json_request("DELETE", "/healthz", ""),
        get("/v1/admin/providers"),
    ] {
        let response = app.send(&request).await;
        for (name, value) in SECURITY_HEADERS {
            assert_eq!(response.header(name), Some(value), "{name} on {request:?}");
        }
        let id = response.header("x-request-id").unwrap().to_owned();
        assert_eq!(id.len(), 32);
        ids.push(id);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4, "request ids are unique");
}

#[tokio::test]
async fn unknown_paths_and_methods_get_404_and_405_with_allow() {
    let app = TestApp::sqlite(&[]).await;
    assert_error(&app.send(&get("/nope")).await, 404, "not_found");
    let response = app
        .send(&app.json_request("DELETE", "/v1/admin/providers", ""))
        .await;
    assert_error(&response, 405, "method_not_allowed");
    assert_eq!(response.header("allow"), Some("GET, POST"));
    let trace = app.send("TRACE /healthz HTTP/1.1\r\nHost: localhost\r\nX-Echo: ZZCANARY\r\nConnection: close\r\n\r\n").await;
    assert_error(&trace, 405, "method_not_allowed");
    assert!(!trace.body.contains("ZZCANARY"), "TRACE never echoes");
}

#[tokio::test]
async fn malformed_json_gets_the_error_body_without_the_submitted_values() {
    let app = TestApp::sqlite(&[]).await;
    let bodies = [
        format!(r#"{{"code": "acme", "name": "{CANARY}"#), // truncated
        format!(r#"{{"code": 123, "name": "{CANARY}"}}"#), // wrong type
        format!(r#"{{"code": ["{CANARY}"], "name": "x"}}"#), // wrong type quoting the value
        format!(r#"{{"code": "acme", "name": "x", "{CANARY}": 1}}"#), // unknown field
        CANARY.to_owned(),
    ];
    for body in &bodies {
        let response = app
            .send(&app.json_request("POST", "/v1/admin/providers", body))
            .await;
        assert_error(&response, 400, "malformed_json");
        assert!(
            !response.body.contains(CANARY),
            "the body echoes input: {}",
            response.body
        );
        assert!(response.headers.iter().all(|(_, v)| !v.contains(CANARY)));
    }
    let wrong_type = app
        .json_request("POST", "/v1/admin/providers", r#"{"code":"a","name":"b"}"#)
        .replace("application/json", "text/plain");
    assert_error(&app.send(&wrong_type).await, 415, "unsupported_media_type");
}

/// Opens a connection and sends the head of an authenticated JSON POST with `framing`
/// (a `Content-Length` or `Transfer-Encoding` header), no body yet.
async fn post_head(
    app: &TestApp,
    framing: &str,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut stream = connect(app.addr, client_config(ClientOptions::default()))
        .await
        .unwrap();
    let head = format!(
        "POST /v1/admin/providers HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\n{framing}\r\n\r\n",
        app.admin_key
    );
    send_bytes(&mut stream, head.as_bytes()).await.unwrap();
    stream
}

#[tokio::test]
async fn a_declared_oversized_body_gets_413_before_it_is_sent() {
    let app = TestApp::sqlite(&[("CLAIMGATE_HTTP__MAX_BODY_BYTES", "1024")]).await;
    let mut stream = post_head(&app, "Content-Length: 1000000000").await;
    // Not one byte of the body is sent: the answer must come from the declared length.
    let response = read_response(&mut stream).await.unwrap();
    assert_error(&response, 413, "payload_too_large");
    assert_eq!(response.header("connection"), Some("close"));
}

#[tokio::test]
async fn an_undeclared_chunked_body_over_the_limit_gets_413() {
    let app = TestApp::sqlite(&[("CLAIMGATE_HTTP__MAX_BODY_BYTES", "1024")]).await;
    let mut stream = post_head(&app, "Transfer-Encoding: chunked").await;
    let chunk = format!("200\r\n{}\r\n", "x".repeat(0x200));
    for _ in 0..4 {
        if send_bytes(&mut stream, chunk.as_bytes()).await.is_err() {
            break; // the server may answer and close before the rest arrives
        }
    }
    let _ = send_bytes(&mut stream, b"0\r\n\r\n").await;
    let response = read_response(&mut stream).await.unwrap();
    assert_error(&response, 413, "payload_too_large");
}

#[tokio::test]
async fn fifty_slow_body_clients_are_cut_off_while_a_normal_request_is_answered() {
    let app = TestApp::sqlite(&[
        ("CLAIMGATE_HTTP__BODY_RATE_WINDOW_SECS", "2"),
        ("CLAIMGATE_HTTP__BODY_MIN_BYTES_PER_SEC", "100"),
    ])
    .await;
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..50 {
        let (addr, key) = (app.addr, app.admin_key.clone());
        clients.push(tokio::spawn(async move {
            let mut stream = connect(addr, client_config(ClientOptions::default())).await.unwrap();
            let head = format!(
                "POST /v1/admin/providers HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {key}\r\n\
                 Content-Type: application/json\r\nContent-Length: 200000\r\n\r\n"
            );
            send_bytes(&mut stream, head.as_bytes()).await.unwrap();
            // One byte a second, for at most 30 s: the server must cut this off long before.
            let sender = async {
                for _ in 0..30 {
                    if send_bytes(&mut stream, b"{").await.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(30), sender).await;
            // The answer was written while we were still sending; read whatever came.
            read_response(&mut stream).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = Instant::now();
    let normal = app.send(&get("/healthz")).await;
    let latency = before.elapsed();
    assert_eq!(normal.status, 200);
    assert!(
        latency < Duration::from_secs(1),
        "a normal request took {latency:?} during the attack"
    );

    for client in clients {
        match client.await.unwrap() {
            Ok(response) => assert_error(&response, 408, "body_timeout"),
            Err(e) => assert_ne!(
                e.kind(),
                std::io::ErrorKind::TimedOut,
                "a slow client was never cut off"
            ),
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "slow clients held on for {:?}",
        started.elapsed()
    );
}

/// HT-03: forty clients trickle a request head one header line a second, and ten open a
/// TCP connection and never start TLS. The server closes every one of them within its
/// head timeout (3 s here; a margin for a loaded machine), and a normal request made
/// during the attack is answered at once.
#[tokio::test]
async fn slow_header_and_stalled_handshake_clients_are_closed_while_a_normal_request_is_answered() {
    let app = TestApp::sqlite(&[("CLAIMGATE_HTTP__REQUEST_HEAD_TIMEOUT_SECS", "3")]).await;
    let limit = Duration::from_secs(10);
    let mut clients = Vec::new();
    let established = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for _ in 0..40 {
        let (addr, established) = (app.addr, established.clone());
        clients.push(tokio::spawn(async move {
            let started = Instant::now();
            // On a loaded machine the server may cut a handshake at its deadline: that
            // client was closed too, but only the established ones test the head timeout.
            let Ok(mut stream) = connect(addr, client_config(ClientOptions::default())).await
            else {
                return started.elapsed();
            };
            established.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let trickle = async {
                send_bytes(&mut stream, b"GET /healthz HTTP/1.1\r\n").await?;
                for i in 0..30 {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    send_bytes(&mut stream, format!("X-Slow-{i}: 1\r\n").as_bytes()).await?;
                }
                Ok::<_, std::io::Error>(())
            };
            // A write fails once the server has closed the connection (408 first, or not).
            let finished = tokio::time::timeout(Duration::from_secs(30), trickle).await;
            assert!(
                matches!(finished, Ok(Err(_))),
                "the server never closed a slow-header connection"
            );
            started.elapsed()
        }));
    }
    for _ in 0..10 {
        let addr = app.addr;
        clients.push(tokio::spawn(async move {
            let started = Instant::now();
            let mut raw = tokio::net::TcpStream::connect(addr).await.unwrap();
            let mut buf = [0u8; 64];
            let read = tokio::time::timeout(
                Duration::from_secs(30),
                tokio::io::AsyncReadExt::read(&mut raw, &mut buf),
            )
            .await;
            assert!(
                matches!(read, Ok(Ok(0) | Err(_))),
                "a stalled handshake was not closed: {read:?}"
            );
            started.elapsed()
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = Instant::now();
    let normal = app.send(&get("/healthz")).await;
    let latency = before.elapsed();
    assert_eq!(normal.status, 200);
    assert!(
        latency < Duration::from_secs(1),
        "a normal request took {latency:?} during the attack"
    );
    for client in clients {
        let held = client.await.unwrap();
        assert!(held < limit, "a slow client was held for {held:?}");
    }
    let established = established.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        established >= 20,
        "only {established} of 40 slow clients got a connection"
    );
    assert_eq!(app.send(&get("/healthz")).await.status, 200);
}

#[tokio::test]
async fn connections_over_the_per_address_cap_are_refused_and_slots_come_back() {
    let app = TestApp::sqlite(&[("CLAIMGATE_HTTP__MAX_CONNECTIONS_PER_IP", "3")]).await;
    let config = client_config(ClientOptions::default());
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect(app.addr, config.clone()).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The fourth is shut down on arrival: no HTTP response ever comes back on it.
    let over = request_with(app.addr, config.clone(), get("/healthz").as_bytes()).await;
    assert!(
        over.as_ref().map(|r| r.status != 200).unwrap_or(true),
        "over the cap: {over:?}"
    );
    if let Ok(response) = over {
        assert_error(&response, 503, "too_many_connections");
    }
    // The held connections still work, and closing one frees a slot.
    let mut first = held.remove(0);
    send_bytes(&mut first, get("/healthz").as_bytes())
        .await
        .unwrap();
    assert_eq!(read_response(&mut first).await.unwrap().status, 200);
    drop(first);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(app.send(&get("/healthz")).await.status, 200);
}

#[tokio::test]
async fn protected_routes_need_a_live_key_and_say_nothing_about_why() {
    let app = TestApp::sqlite(&[]).await;
    let no_key = app.send(&get("/v1/admin/providers")).await;
    assert_error(&no_key, 401, "unauthenticated");
    assert_eq!(no_key.header("www-authenticate"), Some("Bearer"));
    let forged = format!("cgk_{}_{}", &app.admin_key[4..20], "0".repeat(64));
    let unknown = format!("cgk_{}_{}", "0".repeat(16), "0".repeat(64));
    let mut bodies = Vec::new();
    for key in [forged, unknown, "garbage".to_owned()] {
        let request = app
            .json_request("GET", "/v1/admin/providers", "")
            .replace(&app.admin_key, &key);
        let response = app.send(&request).await;
        assert_error(&response, 401, "unauthenticated");
        bodies.push(response.json()["message"].clone());
    }
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "the same answer whatever part was wrong"
    );
}

#[tokio::test]
async fn providers_can_be_created_listed_and_shown_on_both_backends() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(app) = TestApp::on(backend, "providers_api_on_postgres", &[]).await else {
            continue;
        };
        providers_api(&app).await;
    }
}

async fn providers_api(app: &TestApp) {
    let created = app
        .send(&app.json_request(
            "POST",
            "/v1/admin/providers",
            r#"{"code":"acme","name":" Acme Clinic "}"#,
        ))
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(created.json()["name"], "Acme Clinic");
    let again = app
        .send(&app.json_request(
            "POST",
            "/v1/admin/providers",
            r#"{"code":"acme","name":"Other"}"#,
        ))
        .await;
    assert_error(&again, 409, "conflict");
    let bad = app
        .send(&app.json_request(
            "POST",
            "/v1/admin/providers",
            r#"{"code":"Acme Inc","name":"x"}"#,
        ))
        .await;
    assert_error(&bad, 400, "invalid_field");
    assert!(bad.json()["message"].as_str().unwrap().contains("`code`"));
    app.send(&app.json_request(
        "POST",
        "/v1/admin/providers",
        r#"{"code":"beta","name":"Beta"}"#,
    ))
    .await;
    let list = app
        .send(&app.json_request("GET", "/v1/admin/providers", ""))
        .await
        .json();
    let codes: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["acme", "beta"]);
    let one = app
        .send(&app.json_request("GET", "/v1/admin/providers/beta", ""))
        .await;
    assert_eq!(one.json()["name"], "Beta");
    assert_error(
        &app.send(&app.json_request("GET", "/v1/admin/providers/zeta", ""))
            .await,
        404,
        "not_found",
    );
}

/// `/openapi.json` is public, describes every route, and is the committed
/// `docs/openapi.json` (regenerate with `cargo run -- openapi > docs/openapi.json`).
#[tokio::test]
async fn the_served_openapi_document_is_the_committed_one() {
    let app = TestApp::sqlite(&[]).await;
    let served = app.send(&get("/openapi.json")).await;
    assert_eq!(served.status, 200, "{served:?}");
    let committed: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert!(
        served.json() == committed,
        "docs/openapi.json is stale: run `cargo run -- openapi > docs/openapi.json`"
    );
    assert_eq!(served.json()["openapi"], "3.1.0");
    let operations: usize = served.json()["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_object().unwrap().len())
        .sum();
    assert_eq!(operations, claimgate::api::ROUTES.len());
}

/// An app with provider `acme` and a submitter's key for it.
async fn app_with_submitter() -> (TestApp, String) {
    let app = TestApp::sqlite(&[]).await;
    app.provider("acme").await;
    let submitter = app
        .principal(
            "acme-up",
            "system",
            serde_json::json!([{ "role": "provider_submitter", "provider": "acme" }]),
        )
        .await;
    (app, submitter)
}

/// HT-02: a compressed body is refused before it is read, on the upload route and any
/// other: 415 `encoding_not_allowed`. Bodies are never inflated, so a small gzip that
/// would decode to gigabytes costs nothing, and a file is stored as its sender sent it.
#[tokio::test]
async fn a_content_encoded_body_is_refused_and_never_inflated() {
    let (app, submitter) = app_with_submitter().await;
    // The gzip header and a run of deflate blocks: what a bomb starts with.
    let mut bomb = vec![0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0x03];
    bomb.extend(std::iter::repeat_n(0xed, 4096));
    for encoding in ["gzip", "br", "deflate", "identity, gzip"] {
        let mut request = format!(
            "POST /v1/uploads HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {submitter}\r\n\
             Content-Type: application/edi-x12\r\nContent-Encoding: {encoding}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            bomb.len()
        )
        .into_bytes();
        request.extend_from_slice(&bomb);
        let response = request_with(app.addr, client_config(ClientOptions::default()), &request)
            .await
            .unwrap();
        assert_error(&response, 415, "encoding_not_allowed");
    }
    let json = format!(
        "POST /v1/admin/providers HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: 2\r\n\
         Connection: close\r\n\r\n{{}}",
        app.admin_key
    );
    let response = request_with(
        app.addr,
        client_config(ClientOptions::default()),
        json.as_bytes(),
    )
    .await
    .unwrap();
    assert_error(&response, 415, "encoding_not_allowed");
    assert_eq!(app.count("SELECT count(*) FROM uploads").await, 0);
    // `identity` is no encoding at all.
    let body = r#"{"code":"zeta","name":"Zeta"}"#;
    let plain = format!(
        "POST /v1/admin/providers HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Encoding: identity\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        app.admin_key,
        body.len()
    );
    let response = request_with(
        app.addr,
        client_config(ClientOptions::default()),
        plain.as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(response.status, 201, "{response:?}");
}

/// HT-06: a 128 KiB header, 200 headers and a 1 MiB header are refused with 431 (or the
/// connection is closed before the rest is read); the server keeps serving.
#[tokio::test]
async fn oversized_and_too_many_headers_are_refused_with_431() {
    let app = TestApp::sqlite(&[]).await;
    let long = format!(
        "GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Long: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(128 << 10)
    );
    let many = format!(
        "GET /healthz HTTP/1.1\r\nHost: localhost\r\n{}Connection: close\r\n\r\n",
        (0..200)
            .map(|i| format!("X-H{i}: {i}\r\n"))
            .collect::<String>()
    );
    for request in [long, many] {
        let response = request_with(
            app.addr,
            client_config(ClientOptions::default()),
            request.as_bytes(),
        )
        .await
        .unwrap();
        assert_eq!(response.status, 431, "{response:?}");
    }
    let huge = format!(
        "GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Huge: {}\r\n\r\n",
        "a".repeat(1 << 20)
    );
    match request_with(
        app.addr,
        client_config(ClientOptions::default()),
        huge.as_bytes(),
    )
    .await
    {
        Ok(response) => assert_eq!(response.status, 431, "{response:?}"),
        Err(e) => assert_ne!(e.kind(), std::io::ErrorKind::TimedOut, "the server held on"),
    }
    assert_eq!(app.send(&get("/healthz")).await.status, 200);
}

/// AZ-02: a provider's submitter tries spellings of an admin path. Each is refused (403
/// on the matched route, which is what authorization decides on) or unknown (404): none
/// is ever served.
#[tokio::test]
async fn spellings_of_an_admin_path_are_never_served_to_a_submitter() {
    let (app, submitter) = app_with_submitter().await;
    let canonical = app.call(&submitter, "GET", "/v1/admin/providers", "").await;
    assert_error(&canonical, 403, "forbidden");
    for path in [
        "/v1/uploads/../admin/providers",
        "/v1/./admin/providers",
        "//v1/admin/providers",
        "/v1/admin/providers/",
        "/v1/%61dmin/providers",
        "/v1/admin%2Fproviders",
        "/v1/admin/providers;x=1",
        "/V1/ADMIN/providers",
        "/v1/admin//providers",
        "/v1/admin/providers%00",
        "/v1/admin/providers%2e",
        "/v1/uploads/%2e%2e/admin/providers",
    ] {
        let response = app.call(&submitter, "GET", path, "").await;
        assert!(matches!(response.status, 403 | 404), "{path}: {response:?}");
        assert!(!response.body.contains("acme"), "{path}: {}", response.body);
    }
}
