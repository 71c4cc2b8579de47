//! The way out: hands each email to the SMTP server (or, for a local trial,
//! to a folder of `.eml` files), and says what a failure means.
//!
//! This module owns the transport (a pool of reused SMTP connections, with
//! the TLS mode the settings demand) and the one classification of send
//! failures that the retry decisions rest on. It never decides what happens
//! to the alert; `handle` does.

use lettre::address::Envelope;
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};
use thiserror::Error;

use crate::settings::{SmtpSettings, SmtpTls, TransportKind};

/// Why an email was not accepted, split by what should happen next.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SendError {
    /// Worth trying again later: a 4xx reply, a refused, reset or timed-out
    /// connection, a TLS handshake cut short.
    #[error("{0}")]
    Transient(String),
    /// Trying again would fail the same way: a 5xx reply (unknown mailbox,
    /// message refused).
    #[error("{0}")]
    Permanent(String),
}

impl SendError {
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient(_))
    }

    /// The failure class as it appears in metrics and logs.
    pub fn class(&self) -> &'static str {
        match self {
            Self::Transient(_) => "transient",
            Self::Permanent(_) => "rejected",
        }
    }
}

/// Why the transport could not be set up from the settings.
#[derive(Debug, Error)]
pub enum MailerError {
    #[error("cannot read smtp.password_file {path}: {source}")]
    PasswordFile {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("smtp.host is required with smtp.transport = \"smtp\"")]
    NoHost,
    #[error("smtp.file_dir is required with smtp.transport = \"file\"")]
    NoFileDir,
    #[error("cannot create smtp.file_dir {path}: {source}")]
    FileDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("the SMTP TLS settings are not usable: {0}")]
    Tls(lettre::transport::smtp::Error),
}

/// What the SMTP server said when it accepted an email (typically the queue
/// id it gave the message), kept for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub reply: String,
}

#[derive(Clone)]
enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    File(AsyncFileTransport<Tokio1Executor>),
}

/// Sends emails; cheap to clone, every clone shares the connection pool.
#[derive(Clone)]
pub struct Mailer {
    transport: Transport,
}

impl Mailer {
    /// Builds the transport the settings describe. Nothing is sent and no
    /// connection is opened yet.
    ///
    /// # Errors
    /// [`MailerError`] when a password file cannot be read or the TLS
    /// parameters are unusable.
    pub fn new(settings: &SmtpSettings) -> Result<Self, MailerError> {
        let transport = match settings.transport {
            TransportKind::File => {
                let dir = settings.file_dir.clone().ok_or(MailerError::NoFileDir)?;
                std::fs::create_dir_all(&dir).map_err(|source| MailerError::FileDir {
                    path: dir.clone(),
                    source,
                })?;
                Transport::File(AsyncFileTransport::new(dir))
            }
            TransportKind::Smtp => Transport::Smtp(smtp_transport(settings)?),
        };
        Ok(Self { transport })
    }

    /// Hands one email to the server. Returns once the server accepted it
    /// (after `DATA`), which is when the alert may be considered delivered to
    /// that référent.
    ///
    /// # Errors
    /// [`SendError`], classified by [`classify`].
    pub async fn send(&self, envelope: &Envelope, email: &[u8]) -> Result<Accepted, SendError> {
        match &self.transport {
            Transport::Smtp(smtp) => smtp
                .send_raw(envelope, email)
                .await
                .map(|response| Accepted {
                    reply: response.message().collect::<Vec<_>>().join(" "),
                })
                .map_err(classify),
            Transport::File(file) => file
                .send_raw(envelope, email)
                .await
                .map(|id| Accepted {
                    reply: format!("written as {id}.eml"),
                })
                .map_err(|error| {
                    SendError::Transient(format!("cannot write the email file: {error}"))
                }),
        }
    }

    /// Formats a message once, for [`Mailer::send`] (and its retries).
    pub fn prepare(message: &Message) -> (Envelope, Vec<u8>) {
        (message.envelope().clone(), message.formatted())
    }
}

fn smtp_transport(
    settings: &SmtpSettings,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, MailerError> {
    let host = settings.host.clone().ok_or(MailerError::NoHost)?;
    let tls = match settings.tls {
        SmtpTls::None => Tls::None,
        SmtpTls::Opportunistic => Tls::Opportunistic(tls_parameters(&host)?),
        SmtpTls::Required => Tls::Required(tls_parameters(&host)?),
        SmtpTls::Wrapper => Tls::Wrapper(tls_parameters(&host)?),
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(settings.port())
        .tls(tls)
        .timeout(Some(settings.timeout))
        .pool_config(PoolConfig::new().max_size(settings.pool_size));
    if let Some(username) = &settings.username {
        let password = match (&settings.password, &settings.password_file) {
            (Some(password), _) => password.clone(),
            (None, Some(path)) => read_secret(path)?,
            (None, None) => SecretString::from(""),
        };
        builder = builder.credentials(Credentials::new(
            username.clone(),
            password.expose_secret().to_owned(),
        ));
    }
    Ok(builder.build())
}

fn tls_parameters(host: &str) -> Result<TlsParameters, MailerError> {
    TlsParameters::new(host.to_owned()).map_err(MailerError::Tls)
}

/// Reads a secret from a file, without its trailing line break.
fn read_secret(path: &std::path::Path) -> Result<SecretString, MailerError> {
    let text = std::fs::read_to_string(path).map_err(|source| MailerError::PasswordFile {
        path: path.to_owned(),
        source,
    })?;
    Ok(SecretString::from(
        text.trim_end_matches(['\r', '\n']).to_owned(),
    ))
}

/// The one place where a send failure is classified: a 5xx reply is
/// permanent; everything else (4xx, connection refused or reset, timeout,
/// TLS) is transient, so the alert waits and is tried again rather than
/// being given up on.
pub fn classify(error: lettre::transport::smtp::Error) -> SendError {
    let text = if error.is_timeout() {
        format!("SMTP timeout: {error}")
    } else {
        format!("SMTP {error}")
    };
    if error.is_permanent() {
        SendError::Permanent(text)
    } else {
        SendError::Transient(text)
    }
}
