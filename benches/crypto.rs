//! Field-encryption and raw-file encryption throughput on one core, next to
//! `openssl speed -evp aes-256-gcm` measured in the same run. Run:
//! `cargo bench --bench crypto`. Environment: `BENCH_VALUES` (default 1,000,000 values of
//! 24 bytes), `BENCH_RAW_MIB` (default 256).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::Write;
use std::time::Instant;

use claimgate::crypto::{DataKey, FieldSlot, aead, raw_file};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A sink that counts bytes (so the raw-file figure is encryption, not disk).
struct Count(u64);

impl Write for Count {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0 += data.len() as u64;
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn main() {
    let _ = std::process::Command::new("taskset")
        .args(["-cp", "0", &std::process::id().to_string()])
        .output();
    let values = env_u64("BENCH_VALUES", 1_000_000);
    let dek = DataKey::generate("bench-1").unwrap();
    let value = b"ZZCANARY-MEMBER-00123456"; // 24 bytes, a typical member id or name
    let rows: Vec<String> = (0..1000).map(|i| format!("acme/C{i}/1")).collect();
    let started = Instant::now();
    let mut bytes = 0usize;
    for i in 0..values {
        let slot = FieldSlot {
            table: "claims",
            column: "member_id",
            row: &rows[(i % 1000) as usize],
        };
        bytes += dek.seal(slot, value).unwrap().len();
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "field seal: {values} values of {} bytes in {secs:.2} s = {:.0} values/s, {:.1} MB/s of plaintext ({:.1} MB/s of envelopes)",
        value.len(),
        values as f64 / secs,
        (values as usize * value.len()) as f64 / secs / 1e6,
        bytes as f64 / secs / 1e6
    );
    let sealed = dek
        .seal(
            FieldSlot {
                table: "claims",
                column: "member_id",
                row: "acme/C0/1",
            },
            value,
        )
        .unwrap();
    let slot = FieldSlot {
        table: "claims",
        column: "member_id",
        row: "acme/C0/1",
    };
    let started = Instant::now();
    for _ in 0..values {
        assert_eq!(dek.open(slot, &sealed).unwrap().len(), value.len());
    }
    let secs = started.elapsed().as_secs_f64();
    println!("field open: {:.0} values/s", values as f64 / secs);

    let mib = env_u64("BENCH_RAW_MIB", 256);
    let key = aead::random_key().unwrap();
    let block = vec![0x5au8; 1 << 20];
    let started = Instant::now();
    let mut writer = raw_file::EncryptingWriter::new(Count(0), &key, "file-1").unwrap();
    for _ in 0..mib {
        writer.write_all(&block).unwrap();
    }
    let written = writer.finish().unwrap().0;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "raw file: {mib} MiB in {secs:.2} s = {:.0} MB/s ({written} bytes out)",
        (mib << 20) as f64 / secs / 1e6
    );

    match std::process::Command::new("openssl")
        .args([
            "speed",
            "-seconds",
            "2",
            "-bytes",
            "16384",
            "-evp",
            "aes-256-gcm",
        ])
        .output()
    {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout);
            match text
                .lines()
                .find(|l| l.to_lowercase().starts_with("aes-256-gcm"))
            {
                Some(line) => println!(
                    "openssl speed -evp aes-256-gcm, 16 KiB blocks, same run: {}",
                    line.split_whitespace().last().unwrap_or("?")
                ),
                None => println!("openssl speed printed no aes-256-gcm line"),
            }
        }
        Err(e) => println!("openssl speed did not run: {e}"),
    }
}
