//! The listener speaks TLS 1.2 and 1.3 only, AEAD suites only, and never plaintext HTTP;
//! client certificates are enforced as configured.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::*;

/// Runs `openssl s_client` against the gateway; returns (exit success, all output).
async fn s_client(addr: SocketAddr, args: &[&str]) -> (bool, String) {
    let mut command = tokio::process::Command::new("openssl");
    command
        .arg("s_client")
        .arg("-connect")
        .arg(addr.to_string())
        .args(["-servername", "localhost", "-CAfile"])
        .arg(certs().join("ca.pem"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(20), command.output())
        .await
        .expect("openssl s_client finished")
        .expect("openssl is installed");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn negotiated(output: &str) -> bool {
    output.contains("Cipher is ") && !output.contains("Cipher is (NONE)")
}

#[tokio::test]
async fn tls13_and_tls12_clients_reach_healthz() {
    let app = TestApp::sqlite(&[]).await;
    for version in [13, 12] {
        let config = client_config(ClientOptions {
            only_version: Some(version),
            ..Default::default()
        });
        let mut stream = connect(app.addr, config).await.unwrap();
        let expected = if version == 13 {
            rustls::ProtocolVersion::TLSv1_3
        } else {
            rustls::ProtocolVersion::TLSv1_2
        };
        assert_eq!(stream.get_ref().1.protocol_version(), Some(expected));
        send_bytes(&mut stream, get("/healthz").as_bytes())
            .await
            .unwrap();
        let response = read_response(&mut stream).await.unwrap();
        assert_eq!(response.status, 200, "TLS 1.{} client", version - 10);
        assert_eq!(response.json()["status"], "alive");
    }
    // The same with OpenSSL's client, which also checks the certificate chain.
    for flag in ["-tls1_3", "-tls1_2"] {
        let (ok, output) = s_client(app.addr, &[flag, "-verify_return_error"]).await;
        assert!(
            ok && negotiated(&output),
            "{flag} should negotiate:\n{output}"
        );
    }
}

#[tokio::test]
async fn tls10_and_tls11_clients_are_refused_at_the_handshake() {
    let app = TestApp::sqlite(&[]).await;
    for flag in ["-tls1", "-tls1_1"] {
        // SECLEVEL=0 lets OpenSSL's own client offer the old protocol, so a refusal
        // comes from the server (its alert), not from the client's policy.
        let (ok, output) = s_client(app.addr, &[flag, "-cipher", "DEFAULT:@SECLEVEL=0"]).await;
        assert!(!ok && !negotiated(&output), "{flag} must fail:\n{output}");
        assert!(
            output.contains("alert"),
            "{flag}: the server should answer with an alert:\n{output}"
        );
    }
}

#[tokio::test]
async fn cbc_and_rsa_key_exchange_suites_are_refused() {
    let app = TestApp::sqlite(&[]).await;
    for suite in [
        "ECDHE-ECDSA-AES128-SHA",
        "AES128-SHA",
        "ECDHE-ECDSA-AES256-SHA384",
    ] {
        let (ok, output) = s_client(app.addr, &["-tls1_2", "-cipher", suite]).await;
        assert!(
            !ok && !negotiated(&output),
            "{suite} must be refused:\n{output}"
        );
    }
}

#[tokio::test]
async fn modern_profile_refuses_tls12() {
    let app = TestApp::sqlite(&[("CLAIMGATE_TLS__PROFILE", "modern")]).await;
    let tls12 = client_config(ClientOptions {
        only_version: Some(12),
        ..Default::default()
    });
    assert!(
        connect(app.addr, tls12).await.is_err(),
        "TLS 1.2 must fail on the modern profile"
    );
    let tls13 = client_config(ClientOptions {
        only_version: Some(13),
        ..Default::default()
    });
    let response = request_with(app.addr, tls13, get("/healthz").as_bytes())
        .await
        .unwrap();
    assert_eq!(response.status, 200);
}

#[tokio::test]
async fn plaintext_http_never_gets_an_http_response() {
    let app = TestApp::sqlite(&[]).await;
    let mut tcp = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    tcp.write_all(get("/healthz").as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut answer)).await;
    assert!(
        !answer.starts_with(b"HTTP/"),
        "plaintext got an HTTP answer: {:?}",
        String::from_utf8_lossy(&answer)
    );
    assert!(!String::from_utf8_lossy(&answer).contains("alive"));
}

async fn mtls_request(
    app: &TestApp,
    cert_from: Option<&'static Path>,
) -> std::io::Result<Response> {
    let config = client_config(ClientOptions {
        client_cert_from: cert_from,
        ..Default::default()
    });
    request_with(app.addr, config, get("/healthz").as_bytes()).await
}

#[tokio::test]
async fn required_client_certificates_admit_only_the_configured_ca() {
    let app = TestApp::sqlite(&[("CLAIMGATE_TLS__CLIENT_AUTH", "required")]).await;
    assert!(
        mtls_request(&app, None).await.is_err(),
        "no certificate must be refused"
    );
    assert!(
        mtls_request(&app, Some(other_certs())).await.is_err(),
        "another CA's certificate must be refused"
    );
    let response = mtls_request(&app, Some(certs())).await.unwrap();
    assert_eq!(
        response.status, 200,
        "the dev client certificate is accepted"
    );
    // And with OpenSSL's client (TLS 1.2, where the certificate is checked inside the
    // handshake): no certificate fails with the server's alert, the dev certificate works.
    let (ok, output) = s_client(app.addr, &["-tls1_2"]).await;
    assert!(!ok && output.contains("alert"), "{output}");
    let cert = certs().join("client.pem");
    let key = certs().join("client.key");
    let (ok, output) = s_client(
        app.addr,
        &[
            "-tls1_2",
            "-cert",
            cert.to_str().unwrap(),
            "-key",
            key.to_str().unwrap(),
        ],
    )
    .await;
    assert!(ok && negotiated(&output), "{output}");
}

#[tokio::test]
async fn optional_client_certificates_admit_none_but_refuse_a_foreign_ca() {
    let app = TestApp::sqlite(&[("CLAIMGATE_TLS__CLIENT_AUTH", "optional")]).await;
    assert_eq!(mtls_request(&app, None).await.unwrap().status, 200);
    assert_eq!(mtls_request(&app, Some(certs())).await.unwrap().status, 200);
    assert!(mtls_request(&app, Some(other_certs())).await.is_err());
}

/// TL-04: OpenSSL resumes a TLS 1.3 session and offers a POST as 0-RTT early data. The
/// session resumes, but the early data is never accepted (the server's tickets allow
/// none), so a replayed request cannot be processed from it.
#[tokio::test]
async fn a_resumed_session_gets_no_early_data_and_the_request_is_not_processed() {
    let app = TestApp::sqlite(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let session = dir.path().join("session.pem");
    let session = session.to_str().unwrap();
    // Waits for the server to close the idle connection, so the tickets have arrived.
    let (_, first) = s_client(app.addr, &["-tls1_3", "-sess_out", session, "-ign_eof"]).await;
    assert!(negotiated(&first), "{first}");
    assert!(std::path::Path::new(session).exists(), "{first}");
    let post = dir.path().join("post.txt");
    let body = r#"{"code":"early","name":"Early"}"#;
    std::fs::write(
        &post,
        format!(
            "POST /v1/admin/providers HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            app.admin_key,
            body.len()
        ),
    )
    .unwrap();
    let (_, second) = s_client(
        app.addr,
        &[
            "-tls1_3",
            "-sess_in",
            session,
            "-early_data",
            post.to_str().unwrap(),
        ],
    )
    .await;
    assert!(
        second.contains("Reused, TLSv1.3"),
        "the session resumed: {second}"
    );
    assert!(
        second.contains("Early data was not sent") || second.contains("Early data was rejected"),
        "{second}"
    );
    assert!(!second.contains("Early data was accepted"), "{second}");
    assert_eq!(
        app.count("SELECT count(*) FROM providers WHERE code = 'early'")
            .await,
        0
    );
}

/// HT-07 and the HTTP/2 variant of HT-01: the gateway speaks HTTP/1.1 only. A client
/// offering only `h2` in ALPN is refused at the handshake, one offering both gets
/// HTTP/1.1, and the HTTP/2 connection preface
/// with a burst of HEADERS and RST_STREAM frames is answered as a bad HTTP/1.1 request,
/// never with an HTTP/2 frame; other clients are unaffected.
#[tokio::test]
async fn http2_is_not_spoken_so_rapid_reset_has_no_stream_to_reset() {
    let app = TestApp::sqlite(&[]).await;
    let offering = |protocols: &[&[u8]]| {
        let mut config = (*client_config(ClientOptions::default())).clone();
        config.alpn_protocols = protocols.iter().map(|p| p.to_vec()).collect();
        std::sync::Arc::new(config)
    };
    let refused = connect(app.addr, offering(&[b"h2"])).await;
    let Err(error) = refused else {
        panic!("a client speaking only h2 got a connection");
    };
    assert!(
        error.to_string().contains("NoApplicationProtocol"),
        "{error}"
    );
    let mut stream = connect(app.addr, offering(&[b"h2", b"http/1.1"]))
        .await
        .unwrap();
    assert_eq!(
        stream.get_ref().1.alpn_protocol(),
        Some(b"http/1.1".as_slice()),
        "HTTP/1.1 is chosen over h2"
    );
    let mut burst = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    burst.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]); // an empty SETTINGS frame
    for stream_id in (1u32..2000).step_by(2) {
        // HEADERS (END_HEADERS | END_STREAM) with one indexed field (:method GET), then
        // RST_STREAM (CANCEL) for the same stream.
        burst.extend_from_slice(&[0, 0, 1, 1, 5]);
        burst.extend_from_slice(&stream_id.to_be_bytes());
        burst.push(0x82);
        burst.extend_from_slice(&[0, 0, 4, 3, 0]);
        burst.extend_from_slice(&stream_id.to_be_bytes());
        burst.extend_from_slice(&8u32.to_be_bytes());
    }
    let _ = send_bytes(&mut stream, &burst).await; // the server may close before the end
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1 4"),
        "{:?}",
        String::from_utf8_lossy(&answer[..answer.len().min(200)])
    );
    assert_eq!(app.send(&get("/healthz")).await.status, 200);
}
