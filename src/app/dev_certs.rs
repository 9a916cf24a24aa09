//! `claimgate dev-certs`: a throw-away certificate set for development and tests.
//!
//! Writes a development CA, a server certificate for `localhost` and `127.0.0.1`, and a
//! client certificate for mutual-TLS tests, all ECDSA P-256. Every certificate carries
//! [`DEV_MARKER`] as its organisation, which the production profile refuses.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use time::{Duration, OffsetDateTime};

/// Organisation name of every development certificate; production refuses certificates
/// that carry it.
pub const DEV_MARKER: &str = "claimgate-dev-only";

/// Why a certificate set could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DevCertsError {
    /// Key generation or signing failed.
    #[error("cannot generate certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The validity period is not usable.
    #[error("--days must be between 1 and 3650")]
    Days,
}

/// The file names written into the output directory.
pub mod files {
    /// CA certificate (trust anchor for server and client certificates).
    pub const CA_CERT: &str = "ca.pem";
    /// CA private key.
    pub const CA_KEY: &str = "ca.key";
    /// Server certificate chain.
    pub const SERVER_CERT: &str = "server.pem";
    /// Server private key.
    pub const SERVER_KEY: &str = "server.key";
    /// Client certificate for mutual-TLS tests.
    pub const CLIENT_CERT: &str = "client.pem";
    /// Client private key.
    pub const CLIENT_KEY: &str = "client.key";
}

/// Writes a fresh CA, server and client certificate into `out`, leaves valid for `days`
/// days (the CA for as long). Private keys are written with mode 0600.
pub fn write_dev_certs(out: &Path, days: u32) -> Result<(), DevCertsError> {
    if !(1..=3650).contains(&days) {
        return Err(DevCertsError::Days);
    }
    std::fs::create_dir_all(out).map_err(|source| DevCertsError::Write {
        path: out.to_owned(),
        source,
    })?;
    let now = OffsetDateTime::now_utc();
    let validity = |params: &mut CertificateParams, common_name: &str| {
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(i64::from(days));
        params
            .distinguished_name
            .push(DnType::OrganizationName, DEV_MARKER);
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
    };

    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    validity(&mut ca_params, "claimgate development CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, &ca_key);

    let server_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut server_params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    validity(&mut server_params, "localhost");
    server_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server_params.use_authority_key_identifier_extension = true;
    let server_cert = server_params.signed_by(&server_key, &issuer)?;

    let client_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut client_params = CertificateParams::new(Vec::<String>::new())?;
    validity(&mut client_params, "claimgate-dev-client");
    client_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    client_params.use_authority_key_identifier_extension = true;
    let client_cert = client_params.signed_by(&client_key, &issuer)?;

    write(out, files::CA_CERT, &ca_cert.pem(), 0o644)?;
    write(out, files::CA_KEY, &ca_key.serialize_pem(), 0o600)?;
    write(out, files::SERVER_CERT, &server_cert.pem(), 0o644)?;
    write(out, files::SERVER_KEY, &server_key.serialize_pem(), 0o600)?;
    write(out, files::CLIENT_CERT, &client_cert.pem(), 0o644)?;
    write(out, files::CLIENT_KEY, &client_key.serialize_pem(), 0o600)?;
    Ok(())
}

/// Replaces `dir/name` with `contents`, created with `mode` (an existing file is removed
/// first so that a loose mode is never inherited).
fn write(dir: &Path, name: &str, contents: &str, mode: u32) -> Result<(), DevCertsError> {
    let path = dir.join(name);
    let fail = |source| DevCertsError::Write {
        path: path.clone(),
        source,
    };
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(fail(e)),
        _ => {}
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&path)
        .map_err(fail)?;
    file.write_all(contents.as_bytes()).map_err(fail)
}
