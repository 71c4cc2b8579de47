//! The `[ack]` section: the référents' acknowledgement links and the pages
//! they open.
//!
//! It refuses links that would travel in clear (`http://` to another
//! machine) and a key too short to be a secret. The keys are read from
//! their files only where they are used ([`AckSettings::key`],
//! [`AckSettings::previous_key`]), and never shown.

use std::path::{Path, PathBuf};
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
    /// The secret the links are sealed with: the file's bytes, at least 32
    /// of them (systemd credential `ack-key`).
    pub key_file: Option<PathBuf>,
    /// During a rotation, the key `key_file` held before: the links it
    /// sealed still open until they expire; new links are sealed with
    /// `key_file` (systemd credential `ack-previous-key`).
    pub previous_key_file: Option<PathBuf>,
    /// How long a link works: [`AckSettings::DEFAULT_LINK_TTL`] unless set.
    #[serde(with = "humantime_serde")]
    pub link_ttl: Duration,
    /// Whether the first acknowledgement of an alert in a network is also
    /// emailed to the other référents of that network who received it
    /// (one short email each: who acknowledged it and when, never patient
    /// data). Off unless set: most offices have one référent per network,
    /// and where there are several, each one's page already says who
    /// acknowledged first, so an email per acknowledgement would be noise.
    pub notify_colleagues: bool,
}

impl Default for AckSettings {
    fn default() -> Self {
        Self {
            listen: String::new(),
            public_url: String::new(),
            key_file: None,
            previous_key_file: None,
            link_ttl: Self::DEFAULT_LINK_TTL,
            notify_colleagues: false,
        }
    }
}

impl AckSettings {
    /// `ack.link_ttl` unless set: 14 days. Long enough for an escalation chain
    /// of three waits of up to 4 days 16 hours (the operators' guide's `2d` for
    /// normal alerts ends after 6 days) and for a référent back from a long
    /// weekend; short enough that a link seen in a log stops acknowledging two
    /// weeks later, where it used to work for 30 days. Fixed rather than
    /// computed from the registry, so that a reload of the registry never
    /// changes how long the links already sent live; `relais check` warns when
    /// the registry's longest chain outlives it, or when it is set far longer
    /// than the chain needs.
    pub const DEFAULT_LINK_TTL: Duration = Duration::from_secs(14 * 24 * 3600);

    pub fn enabled(&self) -> bool {
        !self.listen.is_empty()
    }

    /// The key new links are sealed with, read from `key_file`.
    ///
    /// # Errors
    /// The file is missing, unreadable, or shorter than 32 bytes.
    pub fn key(&self) -> Result<Vec<u8>, String> {
        let path = self
            .key_file
            .as_ref()
            .ok_or("ack.key_file is required when ack.listen is set")?;
        read_key("ack.key_file", path)
    }

    /// The key of the links sent before a rotation, read from
    /// `previous_key_file`; `None` when it is not set.
    ///
    /// # Errors
    /// The file is unreadable, or shorter than 32 bytes.
    pub fn previous_key(&self) -> Result<Option<Vec<u8>>, String> {
        self.previous_key_file
            .as_ref()
            .map(|path| read_key("ack.previous_key_file", path))
            .transpose()
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
        if let Err(error) = self.previous_key() {
            errors.push(error);
        }
        if self.link_ttl.is_zero() {
            errors.push("ack.link_ttl must be more than 0s".into());
        }
    }
}

/// A key file's bytes, at least 32 of them.
fn read_key(setting: &str, path: &Path) -> Result<Vec<u8>, String> {
    let key = std::fs::read(path)
        .map_err(|error| format!("cannot read {setting} {}: {error}", path.display()))?;
    if key.len() < 32 {
        return Err(format!(
            "{setting} {} holds {} bytes; at least 32 random bytes are needed \
             (`head -c 32 /dev/urandom > {}`)",
            path.display(),
            key.len(),
            path.display()
        ));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::settings::fixtures::{MINIMAL, env, write};
    use crate::settings::{Settings, SettingsError};

    fn with_ack(dir: &std::path::Path, pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let file = write(dir, MINIMAL);
        std::fs::write(dir.join("ack-key"), [7u8; 32]).unwrap();
        let mut all = vec![
            ("RELAIS__ACK__LISTEN", "127.0.0.1:8443"),
            ("RELAIS__ACK__PUBLIC_URL", "http://127.0.0.1:8443"),
            ("RELAIS__ACK__KEY_FILE", "ack-key"),
        ];
        all.extend_from_slice(pairs);
        Settings::load_with_env(Some(&file), env(&all))
    }

    #[test]
    fn a_bounce_address_is_read_with_the_pages_and_refused_without_them_saying_why() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), MINIMAL);
        let bounces = [("RELAIS__SMTP__BOUNCE_ADDRESS", "bounces@relais.test")];

        let with_pages = with_ack(dir.path(), &bounces).unwrap();
        let without = Settings::load_with_env(Some(&file), env(&bounces));
        let tagged = with_ack(
            dir.path(),
            &[("RELAIS__SMTP__BOUNCE_ADDRESS", "bounces+x@relais.test")],
        );

        assert!(with_pages.smtp.bounce_address().unwrap().is_some());
        let Err(SettingsError::Invalid(errors)) = without else {
            panic!("a bounce address without the pages accepted");
        };
        assert_eq!(
            errors,
            [
                "smtp.bounce_address needs the acknowledgement pages (ack.listen and \
              ack.key_file): relais sends a bounced alert on from the copy it keeps sealed \
              under ack.key_file, and keeps none without it"
            ]
        );
        let Err(SettingsError::Invalid(errors)) = tagged else {
            panic!("a bounce address with a `+` accepted");
        };
        assert_eq!(
            errors,
            [
                "smtp.bounce_address must have no `+` in its local part: relais adds `+` and a tag to it"
            ]
        );
    }

    #[test]
    fn a_link_works_for_fourteen_days_unless_set() {
        let dir = tempfile::tempdir().unwrap();

        let settings = with_ack(dir.path(), &[]).unwrap();

        assert_eq!(settings.ack.link_ttl, Duration::from_secs(14 * 24 * 3600));
        assert_eq!(settings.ack.previous_key().unwrap(), None);
    }

    #[test]
    fn colleagues_are_emailed_of_an_acknowledgement_only_when_set() {
        let dir = tempfile::tempdir().unwrap();

        let default = with_ack(dir.path(), &[]).unwrap();
        let set = with_ack(dir.path(), &[("RELAIS__ACK__NOTIFY_COLLEAGUES", "true")]).unwrap();

        assert!(!default.ack.notify_colleagues);
        assert!(set.ack.notify_colleagues);
    }

    #[test]
    fn the_previous_key_is_read_beside_the_settings_file_and_must_be_a_secret() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ack-key.old"), [6u8; 32]).unwrap();
        std::fs::write(dir.path().join("short"), [6u8; 31]).unwrap();

        let rotating = with_ack(
            dir.path(),
            &[("RELAIS__ACK__PREVIOUS_KEY_FILE", "ack-key.old")],
        )
        .unwrap();
        let short = with_ack(dir.path(), &[("RELAIS__ACK__PREVIOUS_KEY_FILE", "short")]);
        let missing = with_ack(dir.path(), &[("RELAIS__ACK__PREVIOUS_KEY_FILE", "nowhere")]);

        assert_eq!(rotating.ack.key().unwrap(), vec![7u8; 32]);
        assert_eq!(rotating.ack.previous_key().unwrap(), Some(vec![6u8; 32]));
        let Err(SettingsError::Invalid(errors)) = short else {
            panic!("a 31-byte previous key accepted");
        };
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("ack.previous_key_file ")
                    && e.contains(" holds 31 bytes; at least 32 random bytes are needed")),
            "{errors:?}"
        );
        let Err(SettingsError::Invalid(errors)) = missing else {
            panic!("a missing previous key accepted");
        };
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("cannot read ack.previous_key_file ")),
            "{errors:?}"
        );
    }
}
