//! A certificate authority made at test time (rcgen), for the TLS tests of
//! both sides: the SMTP test server's certificate and the private RabbitMQ
//! node's, and client certificates.

use std::sync::Arc;

use tokio_rustls::TlsAcceptor;

/// A certificate authority made at test time, and a server certificate it
/// signed for some names.
pub struct TestCa {
    /// The authority's certificate, PEM, for `smtp.ca_file`.
    pub ca_pem: String,
    /// For a server presenting the signed certificate.
    pub acceptor: TlsAcceptor,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    /// A new authority and a server certificate for `names`.
    pub fn new(names: &[&str]) -> Self {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "relais test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let (cert, key) = signed(&issuer, names, names.first().copied().unwrap_or("server"));
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap();
        Self {
            ca_pem: ca_cert.pem(),
            acceptor: TlsAcceptor::from(Arc::new(config)),
            issuer,
        }
    }

    /// Another certificate of this authority, for `names` (none for a
    /// client's) with `common_name`: its PEM and its key's.
    pub fn issue(&self, names: &[&str], common_name: &str) -> (String, String) {
        let (cert, key) = signed(&self.issuer, names, common_name);
        (cert.pem(), key.serialize_pem())
    }
}

fn signed(
    issuer: &rcgen::Issuer<'static, rcgen::KeyPair>,
    names: &[&str],
    common_name: &str,
) -> (rcgen::Certificate, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = rcgen::CertificateParams::new(names).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    (params.signed_by(&key, issuer).unwrap(), key)
}
