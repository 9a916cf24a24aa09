//! `/readyz` follows the database: not ready while it is unreachable or its schema does not
//! match, ready again when it returns, while `/healthz` and the process stay up.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::helpers::*;

async fn readyz(app: &TestApp) -> Response {
    app.send(&get("/readyz")).await
}

#[tokio::test]
async fn sqlite_readyz_reports_a_schema_this_build_does_not_know() {
    let app = TestApp::sqlite(&[]).await;
    assert_eq!(readyz(&app).await.status, 200);
    app.sql("INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (99999999999999, 'from the future', 1, x'00', 0)")
        .await;
    let response = readyz(&app).await;
    assert_eq!(response.status, 503);
    assert_eq!(response.json()["error_code"], "not_ready");
    assert!(
        response.json()["message"]
            .as_str()
            .unwrap()
            .contains("schema_mismatch")
    );
}

/// A TCP relay to PostgreSQL that the test can cut and restore.
struct Relay {
    addr: SocketAddr,
    upstream: SocketAddr,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Relay {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let relay = Self {
            addr: listener.local_addr().unwrap(),
            upstream,
            tasks: Arc::default(),
        };
        relay.serve(listener);
        relay
    }

    fn serve(&self, listener: TcpListener) {
        let (upstream, tasks) = (self.upstream, self.tasks.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let pipe = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                tasks.lock().unwrap().push(pipe);
            }
        });
        self.tasks.lock().unwrap().push(accept);
    }

    /// Stops listening and drops every relayed connection.
    fn cut(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    /// Listens again on the same address.
    async fn restore(&self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }
}

#[tokio::test]
async fn postgres_readyz_follows_the_database_and_the_server_recovers() {
    let test = "postgres_readyz_follows_the_database_and_the_server_recovers";
    let Some(admin) = postgres_admin_url(test).await else {
        return;
    };
    let db = TestDatabase::create(&admin).await;
    let mut url = url::Url::parse(&db.url).unwrap();
    let upstream: SocketAddr =
        format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432))
            .parse()
            .unwrap();
    let relay = Relay::start(upstream).await;
    url.set_port(Some(relay.addr.port())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let settings = test_settings(
        dir.path(),
        Some(url.as_str()),
        &[("CLAIMGATE_DATABASE__ACQUIRE_TIMEOUT_SECS", "1")],
    );
    let app = TestApp::start(settings, dir, Some(db)).await;
    assert_eq!(readyz(&app).await.status, 200);

    relay.cut();
    let response = readyz(&app).await;
    assert_eq!(response.status, 503, "{response:?}");
    assert!(
        response.json()["message"]
            .as_str()
            .unwrap()
            .contains("database_unreachable")
    );
    assert_eq!(
        app.send(&get("/healthz")).await.status,
        200,
        "the process keeps serving"
    );

    relay.restore().await;
    let mut status = 0;
    for _ in 0..20 {
        status = readyz(&app).await.status;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(status, 200, "ready again once the database is back");
}
