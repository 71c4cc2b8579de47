//! Settings: built-in defaults, then the settings file, then environment
//! variables `RELAIS__SECTION__KEY`.
//!
//! This module owns reading and checking them, and turns them into the
//! values the rest of relais works with (the sender's mailbox, the SMTP
//! security mode, the broker address). It refuses, with every problem
//! listed, settings that would send health data in clear over a network by
//! accident. It never logs a secret: the broker URL is shown redacted and the
//! SMTP password is only read where the transport is built.
//!
//! One file per section of the settings file, each owning its struct, its
//! defaults, its check and its tests: `amqp`, `smtp`, `store`, `retry`,
//! `ack`, `events`, `http`, `territories`, `registry`, `email`, `consent`,
//! `log`.
//! `load` reads them (file, then environment); `secrets` puts systemd's
//! credentials in place of the secret files and warns about secrets other
//! users can read. `Settings::check` only calls each section's check, in
//! the order the messages have always come in.

use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

mod ack;
mod amqp;
mod consent;
mod email;
mod events;
#[cfg(test)]
mod fixtures;
mod http;
mod load;
mod log;
mod registry;
mod retry;
mod secrets;
mod smtp;
mod store;
mod territories;

pub use self::ack::AckSettings;
pub use self::amqp::{AmqpSettings, redacted};
pub use self::consent::ConsentSettings;
pub use self::email::EmailSettings;
pub use self::events::EventsSettings;
pub use self::http::HttpSettings;
pub use self::load::CONFIG_ENV;
pub use self::log::{LogFormat, LogSettings};
pub use self::registry::RegistrySettings;
pub use self::retry::RetrySettings;
pub use self::secrets::{CREDENTIALS, CREDENTIALS_ENV};
pub use self::smtp::{SmtpSettings, TransportKind};
pub use self::store::StoreSettings;
pub use self::territories::TerritoriesSettings;

/// Why the settings were refused.
#[derive(Debug, Error)]
pub enum SettingsError {
    #[error("cannot read the settings: {0}")]
    Read(String),
    #[error("the settings have {} error(s):\n  - {}", .0.len(), .0.join("\n  - "))]
    Invalid(Vec<String>),
}

/// Everything relais is configured with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub amqp: AmqpSettings,
    #[serde(default)]
    pub smtp: SmtpSettings,
    #[serde(default)]
    pub registry: RegistrySettings,
    #[serde(default)]
    pub territories: TerritoriesSettings,
    #[serde(default)]
    pub events: EventsSettings,
    #[serde(default)]
    pub ack: AckSettings,
    #[serde(default)]
    pub retry: RetrySettings,
    #[serde(default)]
    pub store: StoreSettings,
    #[serde(default)]
    pub http: HttpSettings,
    #[serde(default)]
    pub log: LogSettings,
    #[serde(default)]
    pub email: EmailSettings,
    #[serde(default)]
    pub consent: ConsentSettings,
    /// How long in-flight alerts may take to finish once a stop is asked
    /// (SIGTERM/SIGINT); what is left after that is not acked, so the broker
    /// delivers it again.
    #[serde(default = "defaults::shutdown_timeout", with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// What works but should be fixed (a secret file other users can read):
    /// logged at start, printed by `relais check`.
    #[serde(skip)]
    pub warnings: Vec<String>,
}

mod defaults {
    use std::time::Duration;

    pub fn shutdown_timeout() -> Duration {
        Duration::from_secs(30)
    }
}

impl Settings {
    /// Every section's check, in the order of the settings' reference:
    /// every problem found, one message each.
    fn check(&self) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        self.registry.check(&mut errors);
        self.smtp.check(&mut errors);
        self.amqp.check(&mut errors);
        self.store.check(self.retry.ladder(), &mut errors);
        self.retry.check(&mut errors);
        self.ack.check(&mut errors);
        self.http.check(&mut errors);
        self.log.check(&mut errors);
        if self.smtp.bounce_address.is_some() && !self.ack.enabled() {
            errors.push(
                "smtp.bounce_address needs the acknowledgement pages (ack.listen and \
                 ack.key_file): relais sends a bounced alert on from the copy it keeps sealed \
                 under ack.key_file, and keeps none without it"
                    .into(),
            );
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `text` with its `%XX` escapes decoded, as a URL's user name or a query
/// parameter's name and value are read (an escape that is not one stays as
/// written; bytes that are not UTF-8 are replaced).
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
