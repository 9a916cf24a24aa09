//! Upload throughput of the two intake channels in the same run: one generated file of
//! `BENCH_UPLOAD_MIB` MiB (default 1024) sent to an in-process gateway over loopback, by
//! `curl` to `POST /v1/uploads` (TLS) and by the OpenSSH `sftp` client to `/inbox` (SSH),
//! each into a fresh gateway, alternating, `BENCH_REPEAT` times (default 2); the fastest
//! of each is compared. Both paths include everything up to the recorded upload: the
//! transport, SHA-256, encryption into the raw store and its fsync. Processing is off
//! (no workers), so only intake is measured. Prints MB/s, the SFTP/HTTPS ratio (goal: at
//! least 0.5) and the peak RSS of the process (the gateway and this small harness).
//!
//! Run: `cargo bench --bench intake` (needs `curl`, `sftp` and `ssh-keygen`). Client and
//! gateway share the machine's cores, so the clients' own work counts: OpenSSH's default
//! cipher, chacha20-poly1305, costs its `ssh` process more than TLS's AES-GCM costs
//! `curl`; `BENCH_SFTP_CIPHER=aes128-gcm@openssh.com` measures SFTP with AES-GCM too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use claimgate::app::Application;
use claimgate::config::Settings;
use secrecy::ExposeSecret;

mod common;
use common::{env_u64, peak_rss_mib, reset_peak_rss};

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

/// A gateway in a fresh directory with provider `acme` and its submitter `acme-up`
/// (an API key and an SSH key).
struct Gateway {
    https: u16,
    sftp: u16,
    token: String,
    dir: tempfile::TempDir,
    handle: actix_web::dev::ServerHandle,
}

async fn gateway() -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let env = vec![
        (
            "CLAIMGATE_DATA_DIR".to_owned(),
            dir.path().display().to_string(),
        ),
        (
            "CLAIMGATE_HTTP__LISTEN".to_owned(),
            "127.0.0.1:0".to_owned(),
        ),
        (
            "CLAIMGATE_SFTP__LISTEN".to_owned(),
            "127.0.0.1:0".to_owned(),
        ),
        ("CLAIMGATE_INGEST__WORKERS".to_owned(), "0".to_owned()),
        ("CLAIMGATE_LOG__LEVEL".to_owned(), "warn".to_owned()),
    ];
    let settings = Settings::load(None, env).unwrap();
    let mut app = Application::build(&settings).await.unwrap();
    let https = app.https_addr().port();
    let sftp = app.sftp_addr().unwrap().port();
    let admin = app
        .take_bootstrap_credential()
        .unwrap()
        .expose_secret()
        .to_owned();
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    let api = |path: &str, body: String| {
        let mut curl = tokio::process::Command::new("curl");
        curl.args(["-sS", "--fail", "--cacert", "certs-example/ca.pem"])
            .args(["-H", &format!("Authorization: Bearer {admin}")])
            .args(["-H", "content-type: application/json", "-d", &body])
            .arg(format!("https://localhost:{https}{path}"));
        curl
    };
    let output = |out: std::process::Output| {
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    output(
        api(
            "/v1/admin/providers",
            r#"{"code":"acme","name":"Acme"}"#.into(),
        )
        .output()
        .await
        .unwrap(),
    );
    let created = output(
        api(
            "/v1/admin/principals",
            r#"{"name":"acme-up","kind":"system","grants":[{"role":"provider_submitter","provider":"acme"}]}"#
                .into(),
        )
        .output()
        .await
        .unwrap(),
    );
    let key = dir.path().join("id_ed25519");
    let keygen = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(keygen.success());
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    output(
        api(
            "/v1/admin/principals/acme-up/ssh-keys",
            serde_json::json!({ "public_key": public }).to_string(),
        )
        .output()
        .await
        .unwrap(),
    );
    let host = std::fs::read_to_string("certs-example/sftp_host_ed25519_key.pub").unwrap();
    let mut fields = host.split_whitespace();
    std::fs::write(
        dir.path().join("known_hosts"),
        format!(
            "[127.0.0.1]:{sftp} {} {}\n",
            fields.next().unwrap(),
            fields.next().unwrap()
        ),
    )
    .unwrap();
    Gateway {
        https,
        sftp,
        token: created["token"].as_str().unwrap().to_owned(),
        dir,
        handle,
    }
}

/// Seconds to send `file` with `curl -T` (streamed, not read into memory).
async fn https_upload(gw: &Gateway, file: &Path) -> f64 {
    let started = Instant::now();
    let out = tokio::process::Command::new("curl")
        .args([
            "-sS",
            "--fail",
            "--cacert",
            "certs-example/ca.pem",
            "-X",
            "POST",
        ])
        .args(["-H", &format!("Authorization: Bearer {}", gw.token)])
        .args(["-H", "content-type: application/octet-stream", "-T"])
        .arg(file)
        .arg(format!("https://localhost:{}/v1/uploads", gw.https))
        .output()
        .await
        .unwrap();
    let secs = started.elapsed().as_secs_f64();
    assert!(out.status.success(), "{out:?}");
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["state"], "received", "{answer}");
    secs
}

/// Seconds to `put` `file` with OpenSSH's `sftp`: its default cipher negotiation
/// (chacha20-poly1305), or `BENCH_SFTP_CIPHER` (for example `aes128-gcm@openssh.com`).
async fn sftp_upload(gw: &Gateway, file: &Path) -> f64 {
    let batch = gw.dir.path().join("batch");
    std::fs::write(&batch, format!("put {} bench.bin\n", file.display())).unwrap();
    let mut sftp = tokio::process::Command::new("sftp");
    if let Ok(cipher) = std::env::var("BENCH_SFTP_CIPHER") {
        sftp.args(["-c", &cipher]);
    }
    let started = Instant::now();
    let out = sftp
        .args(["-F", "/dev/null", "-b"])
        .arg(&batch)
        .args(["-P", &gw.sftp.to_string(), "-i"])
        .arg(gw.dir.path().join("id_ed25519"))
        .args(["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"])
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            gw.dir.path().join("known_hosts").display()
        ))
        .arg("acme-up@127.0.0.1")
        .output()
        .await
        .unwrap();
    let secs = started.elapsed().as_secs_f64();
    assert!(out.status.success(), "{out:?}");
    secs
}

async fn run() {
    let mib = env_u64("BENCH_UPLOAD_MIB", 1024);
    let repeat = env_u64("BENCH_REPEAT", 2).max(1);
    let files = tempfile::tempdir().unwrap();
    let file = files.path().join("upload.bin");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
    let mut block = vec![0u8; 1 << 20];
    for i in 0..mib {
        for (j, b) in block.iter_mut().enumerate() {
            *b = (i as usize).wrapping_mul(31).wrapping_add(j) as u8;
        }
        out.write_all(&block).unwrap();
    }
    out.flush().unwrap();
    drop(out);
    let bytes = (mib << 20) as f64;
    let load = || {
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    println!("input: {mib} MiB; load average {}", load());
    let (mut best_https, mut best_sftp) = (f64::MAX, f64::MAX);
    let (mut rss_https, mut rss_sftp) = (0f64, 0f64);
    for _ in 0..repeat {
        let gw = gateway().await;
        reset_peak_rss();
        let secs = https_upload(&gw, &file).await;
        rss_https = rss_https.max(peak_rss_mib());
        best_https = best_https.min(secs);
        gw.handle.stop(true).await;

        let gw = gateway().await;
        reset_peak_rss();
        let secs = sftp_upload(&gw, &file).await;
        rss_sftp = rss_sftp.max(peak_rss_mib());
        best_sftp = best_sftp.min(secs);
        gw.handle.stop(true).await;
    }
    let rate = |secs: f64| bytes / secs / 1e6;
    println!(
        "HTTPS (curl, TLS): {:.0} MB/s ({best_https:.2} s), peak RSS {rss_https:.0} MiB; \
         SFTP (OpenSSH sftp): {:.0} MB/s ({best_sftp:.2} s), peak RSS {rss_sftp:.0} MiB; \
         ratio SFTP/HTTPS {:.2} (goal at least 0.5); fastest of {repeat}",
        rate(best_https),
        rate(best_sftp),
        rate(best_sftp) / rate(best_https),
    );
    println!("load average after: {}", load());
}
