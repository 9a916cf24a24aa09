//! The production profile's refusals: settings that are fine on a laptop and unsafe with PHI.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::{MasterKeySource, Profile, Settings};
use crate::app::dev_certs::DEV_MARKER;

/// Lists what makes `settings` unsafe for its profile, one line each naming the setting
/// to fix. Empty in the dev profile and when everything is in order.
pub fn production_problems(settings: &Settings) -> Vec<String> {
    if settings.profile != Profile::Production {
        return Vec::new();
    }
    let mut problems = Vec::new();
    let cert = &settings.tls.cert_file;
    match std::fs::read(cert) {
        Ok(pem) if contains(&pem_der_bytes(&pem), DEV_MARKER.as_bytes()) => problems.push(format!(
            "tls.cert_file: {} is a development certificate (made by `claimgate dev-certs`); use one issued by your CA",
            cert.display()
        )),
        Ok(_) => {}
        Err(e) => problems.push(format!("tls.cert_file: cannot read {}: {e}", cert.display())),
    }
    if let Some(mode) = loose_mode(&settings.tls.key_file) {
        problems.push(format!(
            "tls.key_file: {} is readable by group or others (mode {mode:04o}); chmod 600 it",
            settings.tls.key_file.display()
        ));
    }
    for (setting, source) in [
        ("keys.master_key_file", &settings.keys.master_key),
        (
            "keys.audit_signing_key_file",
            &settings.keys.audit_signing_key,
        ),
    ] {
        let MasterKeySource::File(path) = source else {
            continue;
        };
        match std::fs::metadata(path) {
            Err(_) => problems.push(format!(
                "{setting}: {} does not exist (production never generates a key)",
                path.display()
            )),
            Ok(_) => {
                if let Some(mode) = loose_mode(path) {
                    problems.push(format!(
                        "{setting}: {} is readable by group or others (mode {mode:04o}); chmod 600 it",
                        path.display()
                    ));
                }
            }
        }
    }
    if settings.ingest.s3.as_ref().is_some_and(|s3| s3.allow_http) {
        problems.push(
            "ingest.s3.allow_http: a plain-HTTP object store is for local tests only".to_owned(),
        );
    }
    if settings.sftp.listen.is_some() {
        let key = &settings.sftp.host_key_file;
        if crate::sftp::host_key_fingerprint(key).as_deref() == Some(DEV_SFTP_HOST_KEY) {
            problems.push(format!(
                "sftp.host_key_file: {} is the public example host key; make one with ssh-keygen -t ed25519",
                key.display()
            ));
        }
        if let Some(mode) = loose_mode(key) {
            problems.push(format!(
                "sftp.host_key_file: {} is readable by group or others (mode {mode:04o}); chmod 600 it",
                key.display()
            ));
        }
    }
    if settings.uses_sqlite() && !settings.database.allow_sqlite {
        problems.push(
            "database.url: SQLite is not allowed in production; use PostgreSQL or set database.allow_sqlite = true"
                .to_owned(),
        );
    }
    problems
}

/// Fingerprint of `certs-example/sftp_host_ed25519_key`, whose private half is public.
const DEV_SFTP_HOST_KEY: &str = "SHA256:Os1UuPlSdF74OwNb17ErAr8VmvgB0An1Xi7HroqJoxI";

/// The permission bits of `path` if group or others have any access to it.
fn loose_mode(path: &Path) -> Option<u32> {
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then_some(mode)
}

/// DER bytes of every certificate in a PEM file (the subject text lives there, not in PEM).
fn pem_der_bytes(pem: &[u8]) -> Vec<u8> {
    use rustls_pki_types::{CertificateDer, pem::PemObject};
    CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .flat_map(|der| der.as_ref().to_vec())
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
