//! Where the emails go, as the mail side takes it from the checked
//! settings: an SMTP server (host, port, TLS mode, trust, login, pool size,
//! time limits, EHLO name) or, for a local trial, a folder of `.eml` files.
//!
//! These are the mail transport's own shapes; the `[smtp]` section of the
//! settings builds them once its check passed (`SmtpSettings::outbound`),
//! so the mail side never reads the settings and never meets an unchecked
//! value. They never hold a password in clear: the login carries a
//! [`Password`], read only when the transport is built.

use std::path::PathBuf;

use serde::Deserialize;

use crate::mail::smtp::Timeouts;
use crate::secret::Password;

/// Where the emails go, as the `[smtp]` settings' check gave it.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// To an SMTP server.
    Smtp(MailServer),
    /// As `.eml` files in this folder, for a local trial.
    Files(PathBuf),
}

/// An SMTP server relais can use as configured.
#[derive(Debug, Clone)]
pub struct MailServer {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    /// The authorities to trust instead of the system's.
    pub ca_file: Option<PathBuf>,
    pub credentials: Option<Credentials>,
    /// Connections at once, at least 1.
    pub pool_size: usize,
    pub timeouts: Timeouts,
    /// `smtp.helo_name`, checked; `None`: the machine's name.
    pub helo_name: Option<String>,
}

/// The SMTP login.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub username: String,
    pub password: Password,
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// STARTTLS, and refuse to send if the server does not offer it.
    Required,
    /// STARTTLS if offered, else in clear.
    Opportunistic,
    /// TLS from the first byte (SMTPS, port 465).
    Wrapper,
    /// In clear: loopback only, unless `allow_plaintext`.
    None,
}
