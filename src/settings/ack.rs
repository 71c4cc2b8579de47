//! The `[ack]` section: the référents' acknowledgement links and the pages
//! they open.
//!
//! It refuses links that would travel in clear (`http://` to another
//! machine) and a signing key too short to be a secret. The key is read
//! from its file only where it is used ([`AckSettings::key`]), and never
//! shown.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// The référents' acknowledgement links: each email carries one, and the
/// page it opens (behind the operator's HTTPS reverse proxy) records that
/// someone has seen the alert.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AckSettings {
    /// `host:port` of the acknowledgement pages; empty: no links, no pages.
    pub listen: String,
    /// What the links start with, e.g. `https://relais.sos-medecins.fr`:
    /// `https://`, unless it names this machine.
    pub public_url: String,
    /// The secret that signs the links: the file's bytes, at least 32 of
    /// them (systemd credential `ack-key`).
    pub key_file: Option<PathBuf>,
    /// How long a link works.
    #[serde(with = "humantime_serde")]
    pub link_ttl: Duration,
}

impl Default for AckSettings {
    fn default() -> Self {
        Self {
            listen: String::new(),
            public_url: String::new(),
            key_file: None,
            link_ttl: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

impl AckSettings {
    pub fn enabled(&self) -> bool {
        !self.listen.is_empty()
    }

    /// The signing key, read from `key_file`.
    ///
    /// # Errors
    /// The file is missing, unreadable, or shorter than 32 bytes.
    pub fn key(&self) -> Result<Vec<u8>, String> {
        let path = self
            .key_file
            .as_ref()
            .ok_or("ack.key_file is required when ack.listen is set")?;
        let key = std::fs::read(path)
            .map_err(|error| format!("cannot read ack.key_file {}: {error}", path.display()))?;
        if key.len() < 32 {
            return Err(format!(
                "ack.key_file {} holds {} bytes; at least 32 random bytes are needed \
                 (`head -c 32 /dev/urandom > {}`)",
                path.display(),
                key.len(),
                path.display()
            ));
        }
        Ok(key)
    }

    pub(super) fn check(&self, errors: &mut Vec<String>) {
        if !self.enabled() {
            return;
        }
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            errors.push(format!(
                "ack.listen {:?} must be host:port with an IP address (e.g. 127.0.0.1:8443)",
                self.listen
            ));
        }
        match url::Url::parse(&self.public_url) {
            Ok(url) => {
                let local = matches!(
                    url.host_str(),
                    Some("localhost" | "127.0.0.1" | "[::1]" | "::1")
                );
                if url.scheme() != "https" && !(url.scheme() == "http" && local) {
                    errors.push(format!(
                        "ack.public_url {:?} must start with https:// (the links travel by email \
                         and open a page that acknowledges an alert); http:// only for this machine",
                        self.public_url
                    ));
                }
            }
            Err(_) => errors.push(format!(
                "ack.public_url {:?} must be the URL the links start with, e.g. \
                 https://relais.example.org",
                self.public_url
            )),
        }
        if let Err(error) = self.key() {
            errors.push(error);
        }
        if self.link_ttl.is_zero() {
            errors.push("ack.link_ttl must be more than 0s".into());
        }
    }
}
