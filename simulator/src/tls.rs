//! A test certificate authority, made at run time, and the TLS it puts in front of the
//! stand-ins: what a real cold start pays (handshakes, certificate checks) is then paid
//! against them too. The function trusts it the standard way, through `SSL_CERT_FILE`.

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use std::sync::Arc;

/// A certificate authority and a server certificate it signed for `localhost` and
/// `127.0.0.1`.
pub struct TestCa {
    ca_pem: String,
    server: Arc<rustls::ServerConfig>,
}

impl TestCa {
    pub fn new() -> Self {
        let ca_key = KeyPair::generate().expect("a key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("parameters");
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "ilert-servicenow test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).expect("a CA certificate");
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().expect("a key");
        let server_params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("parameters");
        let server_cert = server_params
            .signed_by(&server_key, &issuer)
            .expect("a server certificate");

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![server_cert.der().clone(), ca_cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into()),
            )
            .expect("a server configuration");
        Self {
            ca_pem: ca_cert.pem(),
            server: Arc::new(server),
        }
    }

    /// The CA certificate, PEM: what `SSL_CERT_FILE` should hold for the function to trust
    /// the stand-ins.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(Arc::clone(&self.server))
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}
