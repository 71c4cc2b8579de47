//! The `[smtp]` section: how mail leaves relais, to an SMTP server or, for
//! a local trial, to a folder.
//!
//! Its check is the one place these settings are checked, and it builds
//! what the mail side works with ([`Outbound`]): the mail side never reads
//! the settings. It refuses, one message per problem, what would send
//! health data or the SMTP password in clear to another machine. The
//! password stays where it is given (inline or a file) until the transport
//! is built.

use std::path::PathBuf;
use std::time::Duration;

use lettre::message::Mailbox;
use secrecy::SecretString;
use serde::Deserialize;

use super::is_loopback;
use crate::bounce::BounceAddress;
use crate::mail::outbound::{Credentials, MailServer, Outbound, SmtpTls};
use crate::mail::smtp::{Timeouts, is_domain};
use crate::secret::Password;

/// How mail leaves relais.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpSettings {
    /// `smtp` sends to `host`; `file` writes each email as a `.eml` file in
    /// `file_dir`, for a local trial without a mail server.
    pub transport: TransportKind,
    pub host: Option<String>,
    /// Defaults to 587 (`required`, `opportunistic`), 465 (`wrapper`) or 25 (`none`).
    pub port: Option<u16>,
    pub tls: SmtpTls,
    /// Sending health data in clear to another machine needs this, explicitly.
    pub allow_plaintext: bool,
    /// PEM file of the certificate authorities to trust for the server's
    /// certificate, instead of the system's (a private CA).
    pub ca_file: Option<PathBuf>,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    /// A file holding the password (e.g. in `$CREDENTIALS_DIRECTORY`).
    pub password_file: Option<PathBuf>,
    /// The sender, e.g. `relais SOS Médecins <relais@sos-medecins.example.org>`.
    pub from: Option<String>,
    /// Bound on each step of an SMTP exchange: connecting, the TLS
    /// handshake, each reply but the last (RFC 5321 §4.5.3.2).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Bound on the wait for the server's reply to the end of a message,
    /// which a server with a content filter gives only once the filter is
    /// done (RFC 5321 §4.5.3.2.6: 10 minutes).
    #[serde(with = "humantime_serde")]
    pub final_reply_timeout: Duration,
    /// The name relais gives in EHLO: a fully qualified domain name or an
    /// address literal. By default the machine's fully qualified name, or
    /// the address literal of each connection's own end when it has none.
    pub helo_name: Option<String>,
    /// Connections kept open to the server and reused.
    pub pool_size: u32,
    pub file_dir: Option<PathBuf>,
    /// Where bounces come back, e.g. `relais-bounces@sos-medecins.example.org`:
    /// each email leaves with the envelope sender `<local>+<tag>@<domain>`,
    /// the tag naming that one email (`relais bounce` reads what comes back
    /// there). Unset: the envelope sender is `smtp.from`'s address, and
    /// bounces go wherever it reads its mail.
    pub bounce_address: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    Smtp,
    File,
}

impl Default for SmtpSettings {
    fn default() -> Self {
        Self {
            transport: TransportKind::Smtp,
            host: None,
            port: None,
            tls: SmtpTls::Required,
            allow_plaintext: false,
            username: None,
            password: None,
            password_file: None,
            ca_file: None,
            from: None,
            timeout: Duration::from_secs(60),
            final_reply_timeout: Duration::from_secs(600),
            helo_name: None,
            pool_size: 8,
            file_dir: None,
            bounce_address: None,
        }
    }
}

impl SmtpSettings {
    /// The sender, then where the emails go: every problem, one message
    /// each.
    pub(super) fn check(&self, errors: &mut Vec<String>) {
        if let Err(error) = self.sender() {
            errors.push(error);
        }
        if let Err(mail) = self.outbound() {
            errors.extend(mail);
        }
        if let Err(error) = self.bounce_address() {
            errors.push(error);
        }
    }

    /// The return path's base address, checked (see
    /// [`BounceAddress::parse`]); `None` when bounces are not read.
    ///
    /// # Errors
    /// A sentence naming the rule `smtp.bounce_address` breaks.
    pub fn bounce_address(&self) -> Result<Option<BounceAddress>, String> {
        self.bounce_address
            .as_deref()
            .map(BounceAddress::parse)
            .transpose()
    }

    /// The `From` of every email.
    ///
    /// # Errors
    /// A message when `smtp.from` is missing or not a mailbox.
    pub fn sender(&self) -> Result<Mailbox, String> {
        let from = self.from.as_deref().ok_or(
            "smtp.from is required: the sender of the emails, e.g. \"relais <relais@example.org>\"",
        )?;
        from.parse()
            .map_err(|error| format!("smtp.from {from:?} is not a mailbox: {error}"))
    }

    /// The port to connect to, by default the one of the TLS mode.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            SmtpTls::Required | SmtpTls::Opportunistic => 587,
            SmtpTls::Wrapper => 465,
            SmtpTls::None => 25,
        })
    }

    /// Where the emails go, checked: an SMTP server always has its host,
    /// its port and, when it authenticates, its password; a trial always
    /// has its folder. The one place these settings are checked.
    ///
    /// # Errors
    /// Every problem found, one message each.
    pub fn outbound(&self) -> Result<Outbound, Vec<String>> {
        let mut errors = Vec::new();
        if self.transport == TransportKind::File {
            return match &self.file_dir {
                Some(dir) => Ok(Outbound::Files(dir.clone())),
                None => Err(vec![
                    "smtp.file_dir is required with smtp.transport = \"file\"".into(),
                ]),
            };
        }
        let Some(host) = self.host.as_deref().filter(|host| !host.is_empty()) else {
            return Err(vec![
                "smtp.host is required with smtp.transport = \"smtp\"".into(),
            ]);
        };
        let in_clear = matches!(self.tls, SmtpTls::None | SmtpTls::Opportunistic);
        if in_clear && !is_loopback(host) && !self.allow_plaintext {
            errors.push(format!(
                "smtp.tls = \"{}\" towards {host}, which is not this machine, could send health \
                 data in clear: use \"required\" or \"wrapper\", or set smtp.allow_plaintext = true \
                 if the network to it is trusted",
                if self.tls == SmtpTls::None { "none" } else { "opportunistic" }
            ));
        }
        if self.password.is_some() && self.password_file.is_some() {
            errors.push("give smtp.password or smtp.password_file, not both".into());
        }
        // A password file without a username is allowed (and not read), so
        // that a systemd unit can always hand relais the credential.
        let password = match (&self.password, &self.password_file) {
            (Some(password), _) => Some(Password::Inline(password.clone())),
            (None, Some(path)) => Some(Password::File(path.clone())),
            (None, None) => None,
        };
        let credentials = match (&self.username, password) {
            (Some(username), Some(password)) => Some(Credentials {
                username: username.clone(),
                password,
            }),
            (Some(_), None) => {
                errors.push("smtp.username needs smtp.password or smtp.password_file".into());
                None
            }
            (None, Some(Password::Inline(_))) => {
                errors.push("smtp.password is given without smtp.username".into());
                None
            }
            (None, _) => None,
        };
        if self.pool_size == 0 {
            errors.push("smtp.pool_size must be at least 1".into());
        }
        if self.username.is_some() && self.tls == SmtpTls::None {
            errors.push(
                "smtp.username with smtp.tls = \"none\" would send the SMTP password in clear: \
                 use \"required\" or \"wrapper\" (or \"opportunistic\", which then does not \
                 authenticate without STARTTLS)"
                    .into(),
            );
        }
        if self.timeout.is_zero() || self.final_reply_timeout.is_zero() {
            errors.push("smtp.timeout and smtp.final_reply_timeout must be more than 0".into());
        }
        if let Some(name) = &self.helo_name
            && !is_helo_name(name)
        {
            errors.push(format!(
                "smtp.helo_name {name:?} must be a fully qualified domain name (e.g. \
                 relais.example.org) or an address literal (e.g. [192.0.2.1])"
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Outbound::Smtp(MailServer {
            host: host.to_owned(),
            port: self.port(),
            tls: self.tls,
            ca_file: self.ca_file.clone(),
            credentials,
            pool_size: self.pool_size as usize,
            timeouts: Timeouts {
                step: self.timeout,
                final_reply: self.final_reply_timeout,
            },
            helo_name: self.helo_name.clone(),
        }))
    }
}

/// A fully qualified domain name (at least two labels) or an address
/// literal (`[192.0.2.1]`, `[IPv6:2001:db8::1]`).
fn is_helo_name(name: &str) -> bool {
    if let Some(literal) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        return match literal.strip_prefix("IPv6:") {
            Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
            None => literal.parse::<std::net::Ipv4Addr>().is_ok(),
        };
    }
    name.contains('.') && is_domain(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Settings;
    use crate::settings::fixtures::{MINIMAL, env, write};

    #[test]
    fn an_smtp_login_without_tls_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(dir.path(), MINIMAL);
        let login = [
            ("RELAIS__SMTP__USERNAME", "relais"),
            ("RELAIS__SMTP__PASSWORD", "PASSWORD-0b1"),
        ];
        let error = Settings::load_with_env(Some(&file), env(&login))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(
                "smtp.username with smtp.tls = \"none\" would send the SMTP password in clear"
            ),
            "{error}"
        );
        assert!(!error.contains("PASSWORD-0b1"), "{error}");
        let mut required = login.to_vec();
        required.push(("RELAIS__SMTP__TLS", "required"));
        assert!(Settings::load_with_env(Some(&file), env(&required)).is_ok());
    }

    #[test]
    fn the_ehlo_name_must_be_a_qualified_name_or_an_address_literal() {
        for good in ["relais.example.org", "[192.0.2.1]", "[IPv6:2001:db8::1]"] {
            assert!(is_helo_name(good), "{good}");
        }
        for bad in [
            "relais",
            "relais example.org",
            "relais.example.org\r\nRCPT TO:<x@y>",
            "[relais]",
            "[2001:db8::1]",
            "-relais.example.org",
            "",
        ] {
            assert!(!is_helo_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn plaintext_smtp_to_another_machine_is_refused_unless_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let file = write(
            dir.path(),
            &MINIMAL.replace("127.0.0.1", "mail.example.org"),
        );
        let error = Settings::load_with_env(Some(&file), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("could send health data in clear"), "{error}");
        let allowed = env(&[("RELAIS__SMTP__ALLOW_PLAINTEXT", "true")]);
        assert!(Settings::load_with_env(Some(&file), allowed).is_ok());
        let opportunistic = env(&[("RELAIS__SMTP__TLS", "opportunistic")]);
        assert!(Settings::load_with_env(Some(&file), opportunistic).is_err());
        let required = env(&[("RELAIS__SMTP__TLS", "required")]);
        assert!(Settings::load_with_env(Some(&file), required).is_ok());
    }
}
