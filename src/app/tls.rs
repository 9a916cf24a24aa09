//! The rustls server configuration for the HTTPS listener.
//!
//! `intermediate` is rustls with TLS 1.2 and 1.3 (rustls offers only ECDHE key exchange and
//! AEAD suites, no CBC, no RSA key exchange, no renegotiation, no compression, which is
//! Mozilla's intermediate 6.0 list); `modern` is TLS 1.3 only. No cipher lists are
//! configurable. 0-RTT stays off (rustls' default `max_early_data_size = 0`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{ClientAuth, TlsProfile, TlsSettings};

/// Why the TLS configuration could not be built. Messages name the setting and file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{setting}: cannot load {path}: {reason}")]
    Load {
        /// The setting naming the file.
        setting: &'static str,
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The certificate does not belong to the private key, or another rustls refusal.
    #[error("tls.cert_file / tls.key_file: {0}")]
    Credentials(String),
    /// The client CA could not be used for verification.
    #[error("tls.client_ca_file: {0}")]
    ClientCa(String),
}

/// The process-wide crypto provider: aws-lc-rs.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Builds the server configuration from the settings, loading every file.
pub fn server_config(tls: &TlsSettings) -> Result<ServerConfig, TlsError> {
    let provider = crypto_provider();
    let versions: &[&rustls::SupportedProtocolVersion] = match tls.profile {
        TlsProfile::Intermediate => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsProfile::Modern => &[&rustls::version::TLS13],
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| TlsError::Credentials(e.to_string()))?;

    let builder = match (tls.client_auth, &tls.client_ca_file) {
        (ClientAuth::Off, _) => builder.with_no_client_auth(),
        (mode, ca_file) => {
            let ca_file = ca_file.as_deref().ok_or_else(|| {
                TlsError::ClientCa("required when tls.client_auth is optional or required".into())
            })?;
            let mut roots = RootCertStore::empty();
            for cert in load_certs("tls.client_ca_file", ca_file)? {
                roots
                    .add(cert)
                    .map_err(|e| TlsError::ClientCa(format!("{}: {e}", ca_file.display())))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if mode == ClientAuth::Optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier
                .build()
                .map_err(|e| TlsError::ClientCa(format!("{}: {e}", ca_file.display())))?;
            builder.with_client_cert_verifier(verifier)
        }
    };

    let chain = load_certs("tls.cert_file", &tls.cert_file)?;
    let key = PrivateKeyDer::from_pem_file(&tls.key_file).map_err(|e| TlsError::Load {
        setting: "tls.key_file",
        path: tls.key_file.clone(),
        reason: pem_reason(&e),
    })?;
    let mut config = builder.with_single_cert(chain, key).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => TlsError::Credentials(format!(
            "the certificate in {} does not match the private key in {}",
            tls.cert_file.display(),
            tls.key_file.display()
        )),
        other => TlsError::Credentials(other.to_string()),
    })?;
    config.max_early_data_size = 0;
    Ok(config)
}

fn load_certs(
    setting: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let fail = |reason: String| TlsError::Load {
        setting,
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| fail(pem_reason(&e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(pem_reason(&e)))?;
    if certs.is_empty() {
        return Err(fail("no PEM certificate in the file".into()));
    }
    Ok(certs)
}

/// A short reason for a PEM error (never the file's content).
fn pem_reason(e: &rustls_pki_types::pem::Error) -> String {
    use rustls_pki_types::pem::Error;
    match e {
        Error::Io(io) => io.to_string(),
        Error::NoItemsFound => "no PEM item of the expected kind in the file".into(),
        _ => "not a valid PEM file".into(),
    }
}
