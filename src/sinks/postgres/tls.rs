//! The rustls configuration of a PostgreSQL connection, as libpq's `sslmode`
//! says (see [`crate::config::dsn`]).

use std::sync::Arc;

use anyhow::Context as _;

use crate::config::dsn::{SslMode, Tls};
use crate::tls::{certs, key, provider, roots};

/// The rustls configuration for a PostgreSQL connection, as libpq's `sslmode`
/// says; `None` for `disable`.
///
/// # Errors
/// A root or client certificate file that cannot be read.
pub fn postgres_config(tls: &Tls) -> anyhow::Result<Option<rustls::ClientConfig>> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match (tls.mode, &tls.root_cert) {
        (SslMode::Disable, _) => return Ok(None),
        // libpq checks nothing here without a root certificate.
        (SslMode::Prefer, _) | (SslMode::Require, None) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(pg_verify::Unchecked(provider()))),
        (SslMode::VerifyFull, Some(ca)) => builder.with_root_certificates(roots(ca)?),
        (SslMode::Require | SslMode::VerifyCa, Some(ca)) => {
            let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots(ca)?),
                provider(),
            )
            .build()
            .context("the root certificates")?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(pg_verify::AnyName(inner)))
        }
        (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
            anyhow::bail!("sslmode verify-ca and verify-full need sslrootcert")
        }
    };
    Ok(Some(match (&tls.client_cert, &tls.client_key) {
        (Some(cert), Some(key_file)) => builder
            .with_client_auth_cert(certs(cert)?, key(key_file)?)
            .context("sslcert and sslkey do not match")?,
        _ => builder.with_no_client_auth(),
    }))
}

/// Certificate checks for PostgreSQL's weaker modes.
mod pg_verify {
    use std::sync::Arc;

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::client::WebPkiServerVerifier;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{CertificateError, DigitallySignedStruct, Error, SignatureScheme};

    /// `prefer`, and `require` without a root certificate: any certificate (the
    /// handshake's signatures are still checked), as libpq does.
    #[derive(Debug)]
    pub struct Unchecked(pub Arc<rustls::crypto::CryptoProvider>);

    impl ServerCertVerifier for Unchecked {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }

    /// `verify-ca` (and `require` with a root certificate): signed by the CA,
    /// whatever host name it was issued for.
    #[derive(Debug)]
    pub struct AnyName(pub Arc<WebPkiServerVerifier>);

    impl ServerCertVerifier for AnyName {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            intermediates: &[CertificateDer<'_>],
            server_name: &ServerName<'_>,
            ocsp_response: &[u8],
            now: UnixTime,
        ) -> Result<ServerCertVerified, Error> {
            match self.0.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ) {
                Err(Error::InvalidCertificate(
                    CertificateError::NotValidForName
                    | CertificateError::NotValidForNameContext { .. },
                )) => Ok(ServerCertVerified::assertion()),
                other => other,
            }
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            self.0.verify_tls12_signature(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            self.0.verify_tls13_signature(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.supported_verify_schemes()
        }
    }
}
