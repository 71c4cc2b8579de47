//! The certificate and key files of both sides, read as PEM: the broker's
//! authorities and client identity (`amqp.ca_file`, `cert_file`,
//! `key_file`) and the mail server's authorities (`smtp.ca_file`).
//!
//! Every error names the setting and the file, never a key's content. The
//! files are read again at each connection, so a renewed certificate is
//! taken without a restart; the settings check reads them once at
//! start-up, so that a bad file is refused then, with the other errors.

use std::path::{Path, PathBuf};

use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use thiserror::Error;

/// A certificate or key file that cannot be used.
#[derive(Debug, Error)]
#[error("{setting} {}: {problem}", path.display())]
pub struct FileError {
    /// The setting that names the file, e.g. `amqp.ca_file`.
    setting: &'static str,
    path: PathBuf,
    problem: String,
}

impl FileError {
    fn new(setting: &'static str, path: &Path, problem: impl Into<String>) -> Self {
        Self {
            setting,
            path: path.to_owned(),
            problem: problem.into(),
        }
    }
}

/// The files of a broker connection over TLS.
#[derive(Debug, Clone, Copy, Default)]
pub struct BrokerFiles<'a> {
    pub ca_file: Option<&'a Path>,
    pub cert_file: Option<&'a Path>,
    pub key_file: Option<&'a Path>,
}

/// The TLS part of a broker connection: extra authorities and the client
/// identity, each checked to hold PEM of the right kind.
///
/// # Errors
/// The first file that cannot be read or holds nothing usable.
pub fn broker(files: BrokerFiles<'_>) -> Result<OwnedTLSConfig, FileError> {
    let cert_chain = match files.ca_file {
        Some(path) => Some(certificates("amqp.ca_file", path)?),
        None => None,
    };
    let identity = match (files.cert_file, files.key_file) {
        (Some(cert), Some(key)) => Some(OwnedIdentity::PKCS8 {
            pem: certificates("amqp.cert_file", cert)?.into_bytes(),
            key: private_key("amqp.key_file", key)?,
        }),
        _ => None,
    };
    Ok(OwnedTLSConfig {
        identity,
        cert_chain,
    })
}

/// A client configuration that trusts the certificate authorities of
/// `path`, and only them.
///
/// # Errors
/// When the file cannot be read or holds no certificate.
pub fn trusting(setting: &'static str, path: &Path) -> Result<rustls::ClientConfig, FileError> {
    let problem = |problem: String| FileError::new(setting, path, problem);
    let text = certificates(setting, path)?;
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(text.as_bytes()) {
        let certificate = certificate.map_err(|error| problem(format!("not PEM: {error}")))?;
        roots
            .add(certificate)
            .map_err(|error| problem(error.to_string()))?;
    }
    Ok(rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The PEM text of `path`, which must hold at least one certificate.
fn certificates(setting: &'static str, path: &Path) -> Result<String, FileError> {
    let problem = |problem: String| FileError::new(setting, path, problem);
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
fn private_key(setting: &'static str, path: &Path) -> Result<Vec<u8>, FileError> {
    let problem = |problem: String| FileError::new(setting, path, problem);
    let bytes = std::fs::read(path).map_err(|error| problem(error.to_string()))?;
    PrivateKeyDer::from_pem_slice(&bytes)
        .map_err(|_| problem("no PEM private key (PKCS#8, PKCS#1 or SEC1) in the file".into()))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(
        dir: &Path,
        written: &[(&str, &str)],
    ) -> (Option<PathBuf>, Option<PathBuf>, Option<PathBuf>) {
        for (name, text) in written {
            std::fs::write(dir.join(name), text).unwrap();
        }
        let path = |name: &str| {
            written
                .iter()
                .any(|(n, _)| *n == name)
                .then(|| dir.join(name))
        };
        (path("ca.pem"), path("relais.pem"), path("relais.key"))
    }

    fn broker_of(
        (ca, cert, key): &(Option<PathBuf>, Option<PathBuf>, Option<PathBuf>),
    ) -> Result<OwnedTLSConfig, FileError> {
        broker(BrokerFiles {
            ca_file: ca.as_deref(),
            cert_file: cert.as_deref(),
            key_file: key.as_deref(),
        })
    }

    #[test]
    fn a_file_that_is_not_a_certificate_is_named_with_its_setting() {
        let dir = tempfile::tempdir().unwrap();
        let paths = files(dir.path(), &[("ca.pem", "not a certificate\n")]);
        let error = broker_of(&paths).unwrap_err().to_string();
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
        let paths = files(
            dir.path(),
            &[
                ("relais.pem", &certificate),
                ("relais.key", "SECRET-MATERIAL, not PEM\n"),
            ],
        );
        let error = broker_of(&paths).unwrap_err().to_string();
        assert!(error.starts_with("amqp.key_file "), "{error}");
        assert!(!error.contains("SECRET-MATERIAL"), "{error}");
    }

    #[test]
    fn authorities_and_identity_are_handed_to_the_connection() {
        let dir = tempfile::tempdir().unwrap();
        let (certificate, key) = self_signed();
        let paths = files(
            dir.path(),
            &[
                ("ca.pem", &certificate),
                ("relais.pem", &certificate),
                ("relais.key", &key),
            ],
        );
        let tls = broker_of(&paths).unwrap();
        assert_eq!(tls.cert_chain.as_deref(), Some(certificate.as_str()));
        assert_eq!(
            tls.identity,
            Some(OwnedIdentity::PKCS8 {
                pem: certificate.into_bytes(),
                key: key.into_bytes(),
            })
        );
    }

    #[test]
    fn a_mail_authority_file_without_a_certificate_is_refused_with_its_setting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "nothing here\n").unwrap();
        let error = trusting("smtp.ca_file", &path).unwrap_err().to_string();
        assert!(error.starts_with("smtp.ca_file "), "{error}");
        assert!(
            error.ends_with(": no PEM certificate in the file"),
            "{error}"
        );
    }

    fn self_signed() -> (String, String) {
        let certified =
            rcgen::generate_simple_self_signed(vec!["relais.example.org".into()]).unwrap();
        (certified.cert.pem(), certified.signing_key.serialize_pem())
    }
}
