//! The connection to the broker: `amqp://`, or `amqps://` with the
//! authorities and client certificate the settings name.
//!
//! The certificate files are read at each connection, so that a renewed
//! certificate is taken at the next reconnection without a restart; the
//! settings check reads them once at start-up, so that a bad file is
//! refused then, with the others' errors.

use std::path::Path;

use anyhow::Context as _;
use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::{Connection, ConnectionProperties};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use secrecy::ExposeSecret;
use thiserror::Error;

use crate::settings::AmqpSettings;

/// A certificate file of `[amqp]` that cannot be used.
#[derive(Debug, Error)]
#[error("amqp.{key} {path}: {problem}")]
pub struct TlsFileError {
    key: &'static str,
    path: String,
    problem: String,
}

impl TlsFileError {
    fn new(key: &'static str, path: &Path, problem: impl Into<String>) -> Self {
        Self {
            key,
            path: path.display().to_string(),
            problem: problem.into(),
        }
    }
}

/// Opens a connection named `name` (shown in the broker's connection list).
///
/// # Errors
/// When a certificate file cannot be used, or the broker cannot be reached,
/// refuses the TLS handshake or the login; the message names the broker
/// with its password hidden.
pub async fn connect(amqp: &AmqpSettings, name: &str) -> anyhow::Result<Connection> {
    let tls = tls_config(amqp)?;
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    let runtime = lapin::runtime::default_runtime()?;
    Connection::connect_with_config(amqp.url.expose_secret(), properties, tls, runtime)
        .await
        .with_context(|| format!("cannot connect to the broker {}", amqp.redacted_url()))
}

/// The TLS part of the connection: extra authorities (`ca_file`) and the
/// client identity (`cert_file`, `key_file`), each checked to hold PEM of
/// the right kind.
///
/// # Errors
/// The first file that cannot be read or holds nothing usable.
pub fn tls_config(amqp: &AmqpSettings) -> Result<OwnedTLSConfig, TlsFileError> {
    let cert_chain = match &amqp.ca_file {
        Some(path) => Some(certificates("ca_file", path)?),
        None => None,
    };
    let identity = match (&amqp.cert_file, &amqp.key_file) {
        (Some(cert), Some(key)) => Some(OwnedIdentity::PKCS8 {
            pem: certificates("cert_file", cert)?.into_bytes(),
            key: private_key(key)?,
        }),
        _ => None,
    };
    Ok(OwnedTLSConfig {
        identity,
        cert_chain,
    })
}

/// The PEM text of `path`, which must hold at least one certificate.
fn certificates(key: &'static str, path: &Path) -> Result<String, TlsFileError> {
    let problem = |problem: String| TlsFileError::new(key, path, problem);
    let text = std::fs::read_to_string(path).map_err(|error| problem(error.to_string()))?;
    let mut found = 0;
    for certificate in CertificateDer::pem_slice_iter(text.as_bytes()) {
        certificate.map_err(|error| problem(format!("not PEM: {error}")))?;
        found += 1;
    }
    if found == 0 {
        return Err(problem("no PEM certificate in the file".into()));
    }
    Ok(text)
}

/// The PEM bytes of `path`, which must hold a private key. The key itself
/// never appears in an error.
fn private_key(path: &Path) -> Result<Vec<u8>, TlsFileError> {
    let problem = |problem: String| TlsFileError::new("key_file", path, problem);
    let bytes = std::fs::read(path).map_err(|error| problem(error.to_string()))?;
    PrivateKeyDer::from_pem_slice(&bytes)
        .map_err(|_| problem("no PEM private key (PKCS#8, PKCS#1 or SEC1) in the file".into()))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dir: &Path, files: &[(&str, &str)]) -> AmqpSettings {
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        let path = |name: &str| {
            files
                .iter()
                .any(|(n, _)| *n == name)
                .then(|| dir.join(name))
        };
        AmqpSettings {
            url: "amqps://relais@broker.example.org/%2f".to_owned().into(),
            ca_file: path("ca.pem"),
            cert_file: path("relais.pem"),
            key_file: path("relais.key"),
            ..AmqpSettings::default()
        }
    }

    #[test]
    fn a_file_that_is_not_a_certificate_is_named_with_its_setting() {
        let dir = tempfile::tempdir().unwrap();
        let amqp = settings(dir.path(), &[("ca.pem", "not a certificate\n")]);
        let error = tls_config(&amqp).unwrap_err().to_string();
        assert!(error.starts_with("amqp.ca_file "), "{error}");
        assert!(
            error.ends_with("ca.pem: no PEM certificate in the file"),
            "{error}"
        );
    }

    #[test]
    fn a_key_file_without_a_key_is_refused_without_quoting_it() {
        let dir = tempfile::tempdir().unwrap();
        let (certificate, _) = self_signed();
        let amqp = settings(
            dir.path(),
            &[
                ("relais.pem", &certificate),
                ("relais.key", "SECRET-MATERIAL, not PEM\n"),
            ],
        );
        let error = tls_config(&amqp).unwrap_err().to_string();
        assert!(error.starts_with("amqp.key_file "), "{error}");
        assert!(!error.contains("SECRET-MATERIAL"), "{error}");
    }

    #[test]
    fn authorities_and_identity_are_handed_to_the_connection() {
        let dir = tempfile::tempdir().unwrap();
        let (certificate, key) = self_signed();
        let amqp = settings(
            dir.path(),
            &[
                ("ca.pem", &certificate),
                ("relais.pem", &certificate),
                ("relais.key", &key),
            ],
        );
        let tls = tls_config(&amqp).unwrap();
        assert_eq!(tls.cert_chain.as_deref(), Some(certificate.as_str()));
        assert_eq!(
            tls.identity,
            Some(OwnedIdentity::PKCS8 {
                pem: certificate.into_bytes(),
                key: key.into_bytes(),
            })
        );
    }

    fn self_signed() -> (String, String) {
        let certified =
            rcgen::generate_simple_self_signed(vec!["relais.example.org".into()]).unwrap();
        (certified.cert.pem(), certified.signing_key.serialize_pem())
    }
}
