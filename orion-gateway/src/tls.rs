//! HTTPS: rustls with ALPN h2 and http/1.1; the certificate from files, or in dev mode a
//! self-signed one for localhost generated on first start and kept for the next.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::Config;
use crate::{Error, Result};

/// The TLS settings for the HTTPS listener.
pub(crate) fn server_config(config: &Config) -> Result<Arc<ServerConfig>> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (cert, key) = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => (cert.clone(), key.clone()),
        (None, None) if config.common.env.is_dev() => dev_certificate(&config.tls_dev_dir)?,
        (None, None) => {
            return Err(Error::Tls(
                "HTTPS needs ORION_TLS_CERT and ORION_TLS_KEY outside dev mode (or ORION_HTTPS_LISTEN=off)".into(),
            ));
        }
        _ => {
            return Err(Error::Tls(
                "ORION_TLS_CERT and ORION_TLS_KEY go together".into(),
            ));
        }
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
        .and_then(|certs| certs.collect())
        .map_err(|e| Error::Tls(format!("cannot read {}: {e}", cert.display())))?;
    let key = PrivateKeyDer::from_pem_file(&key)
        .map_err(|e| Error::Tls(format!("cannot read {}: {e}", key.display())))?;
    let mut server = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| Error::Tls(format!("certificate and key do not fit: {e}")))?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(server))
}

/// The dev certificate's files, generated when missing.
fn dev_certificate(dir: &Path) -> Result<(std::path::PathBuf, std::path::PathBuf)> {
    let cert = dir.join("dev-cert.pem");
    let key = dir.join("dev-key.pem");
    if cert.is_file() && key.is_file() {
        return Ok((cert, key));
    }
    let generated = rcgen::generate_simple_self_signed(vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ])
    .map_err(|e| Error::Tls(format!("cannot generate a dev certificate: {e}")))?;
    std::fs::create_dir_all(dir)?;
    std::fs::write(&cert, generated.cert.pem())?;
    write_private(&key, generated.signing_key.serialize_pem().as_bytes())?;
    tracing::info!(cert = %cert.display(), "generated a self-signed development certificate for localhost");
    Ok((cert, key))
}

fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)
}
