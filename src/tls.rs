//! TLS configurations (rustls with the ring provider) from PEM files: the syslog TLS
//! listeners, the HTTP listener, and the peer links' client side.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate in a PEM file.
pub(crate) fn certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    CertificateDer::pem_file_iter(path)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow::anyhow!("cannot read certificates from {}: {e}", path.display()))
}

pub(crate) fn key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| anyhow::anyhow!("cannot read the private key from {}: {e}", path.display()))
}

pub(crate) fn roots(path: &Path) -> anyhow::Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    for c in certs(path)? {
        roots
            .add(c)
            .with_context(|| format!("invalid CA certificate in {}", path.display()))?;
    }
    Ok(roots)
}

/// A server configuration: this certificate chain and key; with `client_ca`, only
/// clients presenting a certificate that CA signed get through the handshake.
///
/// # Errors
/// A file that cannot be read or holds no valid certificate or key, or a key that
/// does not match the certificate.
pub fn server_config(
    cert_file: &Path,
    key_file: &Path,
    client_ca: Option<&Path>,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots(ca)?),
                provider(),
            )
            .build()
            .context("client certificate verifier")?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs(cert_file)?, key(key_file)?)
        .context("certificate and key do not match")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The client side of the peer links from `[cluster]`: `None` without
/// `tls_ca_file` (peers spoken to over plain HTTP), else [`client_config`] with the
/// node's certificate when one is set.
///
/// # Errors
/// As [`client_config`].
pub fn cluster_client_config(
    cluster: &crate::config::ClusterConfig,
) -> anyhow::Result<Option<Arc<rustls::ClientConfig>>> {
    let Some(ca) = &cluster.tls_ca_file else {
        return Ok(None);
    };
    let identity = cluster
        .tls_cert_file
        .as_deref()
        .zip(cluster.tls_key_file.as_deref());
    client_config(ca, identity).map(Some)
}

/// An HTTP client with `timeout`, speaking TLS with `tls` when given.
pub fn http_client(
    timeout: std::time::Duration,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> awc::Client {
    let builder = awc::Client::builder().timeout(timeout);
    match tls {
        Some(tls) => builder
            .connector(awc::Connector::new().rustls_0_23(tls))
            .finish(),
        None => builder.finish(),
    }
}

/// A client configuration that trusts the CAs in `ca_file` and, with `identity`
/// (certificate chain, key), presents that certificate (mutual TLS).
///
/// # Errors
/// As [`server_config`].
pub fn client_config(
    ca_file: &Path,
    identity: Option<(&Path, &Path)>,
) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots(ca_file)?);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key_file)) => builder
            .with_client_auth_cert(certs(cert)?, key(key_file)?)
            .context("client certificate and key do not match")?,
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The names a certificate (DER) goes by: its subject's common names, then its DNS,
/// URI and email subject alternative names.
///
/// # Errors
/// The certificate cannot be decoded.
pub fn certificate_names(der: &[u8]) -> anyhow::Result<Vec<String>> {
    use x509_cert::der::asn1::{Ia5StringRef, PrintableStringRef, Utf8StringRef};
    use x509_cert::der::oid::db::rfc4519::CN;
    use x509_cert::der::Decode;
    use x509_cert::ext::pkix::name::GeneralName;
    use x509_cert::ext::pkix::SubjectAltName;

    let cert = x509_cert::Certificate::from_der(der).context("cannot decode the certificate")?;
    let tbs = &cert.tbs_certificate;
    let mut names = Vec::new();
    for atv in tbs.subject.0.iter().flat_map(|rdn| rdn.0.iter()) {
        if atv.oid != CN {
            continue;
        }
        let v = &atv.value;
        let text = v
            .decode_as::<Utf8StringRef<'_>>()
            .map(|s| s.as_str().to_owned())
            .or_else(|_| {
                v.decode_as::<PrintableStringRef<'_>>()
                    .map(|s| s.as_str().to_owned())
            })
            .or_else(|_| {
                v.decode_as::<Ia5StringRef<'_>>()
                    .map(|s| s.as_str().to_owned())
            });
        if let Ok(text) = text {
            names.push(text);
        }
    }
    let sans = tbs
        .get::<SubjectAltName>()
        .context("cannot decode the subject alternative names")?;
    for name in sans.map(|(_, s)| s.0).unwrap_or_default() {
        match name {
            GeneralName::DnsName(s)
            | GeneralName::UniformResourceIdentifier(s)
            | GeneralName::Rfc822Name(s) => names.push(s.to_string()),
            _ => {}
        }
    }
    Ok(names)
}
