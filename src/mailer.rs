//! The way out: hands each email to the SMTP server (or, for a local trial,
//! to a folder of `.eml` files), and says what a failure means.
//!
//! This module owns the transport (a pool of reused SMTP connections, with
//! the TLS mode the settings demand) and the one classification of send
//! failures that the retry decisions rest on. It never decides what happens
//! to the alert; `handle` does.
//!
//! The pool keeps connections of relais's own SMTP client (`smtp`), which
//! pipelines each transaction. lettre builds the messages and writes the
//! `.eml` files of a local trial. A connection returns to the pool only
//! after a complete, successful exchange; any other way out (a failure, a
//! timeout that cancelled the send) drops it, so a connection is never
//! reused in the middle of a transaction.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncFileTransport, AsyncTransport, Message, Tokio1Executor};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls_platform_verifier::ConfigVerifierExt;
use secrecy::SecretString;
use thiserror::Error;
use tokio::sync::Semaphore;

use crate::health::Health;
use crate::settings::{SmtpSettings, SmtpTls, TransportKind};
use crate::smtp::{self, Connection, Security, Server, Step};

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
    #[error("the TLS trust settings are not usable: {0}")]
    Tls(rustls::Error),
    #[error("cannot read the certificate authorities of smtp.ca_file {path}: {problem}")]
    CaFile {
        path: std::path::PathBuf,
        problem: String,
    },
    #[error("smtp.host {0:?} is not a valid name for TLS")]
    TlsName(String),
}

/// What the SMTP server said when it accepted an email (typically the queue
/// id it gave the message), kept for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub reply: String,
    /// How long the server took to accept it.
    pub took: Duration,
}

#[derive(Clone)]
enum Transport {
    Smtp(Arc<SmtpPool>),
    File(AsyncFileTransport<Tokio1Executor>),
}

/// An idle connection older than this is checked (NOOP) before reuse: the
/// server may have closed it meanwhile.
const CHECK_AFTER_IDLE: Duration = Duration::from_secs(2);
/// How long that check may take before the connection is given up for a
/// new one.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// An idle connection older than this is not reused at all.
const MAX_IDLE: Duration = Duration::from_secs(60);

/// Connections to one SMTP server: at most `slots` at once, the idle ones
/// kept for reuse.
struct SmtpPool {
    server: Server,
    /// Told when the server turns out unusable as configured, and when a
    /// connection opens again.
    health: Arc<Health>,
    slots: Semaphore,
    idle: Mutex<Vec<(Connection, Instant)>>,
}

impl SmtpPool {
    async fn send(&self, envelope: &Envelope, email: &[u8]) -> Result<smtp::Reply, SendError> {
        // The semaphore is never closed, so acquiring cannot fail.
        let _slot = self.slots.acquire().await;
        let mut connection = match self.reusable().await {
            Some(connection) => connection,
            None => self.open().await?,
        };
        // If this future is dropped (timeout, shutdown), `connection` is
        // dropped with it, closing the socket: it never returns to the pool.
        let reply = connection.send(envelope, email).await.map_err(classify)?;
        self.lock().push((connection, Instant::now()));
        Ok(reply)
    }

    async fn open(&self) -> Result<Connection, SendError> {
        match Connection::open(&self.server).await {
            Ok(connection) => {
                self.health.smtp_usable();
                Ok(connection)
            }
            Err(error) => {
                if error.is_setup() {
                    self.health.smtp_unusable(format!(
                        "the mail server {}:{} cannot be used as configured: {error}",
                        self.server.host, self.server.port
                    ));
                }
                Err(classify(error))
            }
        }
    }

    async fn reusable(&self) -> Option<Connection> {
        loop {
            let (mut connection, since) = self.lock().pop()?;
            let idle = since.elapsed();
            if idle > MAX_IDLE {
                continue;
            }
            if idle < CHECK_AFTER_IDLE
                || tokio::time::timeout(CHECK_TIMEOUT, connection.is_alive())
                    .await
                    .unwrap_or(false)
            {
                return Some(connection);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Connection, Instant)>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Sends emails; cheap to clone, every clone shares the connection pool.
#[derive(Clone)]
pub struct Mailer {
    transport: Transport,
    /// Bound on one email's whole exchange with the server.
    timeout: std::time::Duration,
}

impl Mailer {
    /// Builds the transport the settings describe. Nothing is sent and no
    /// connection is opened yet.
    ///
    /// # Errors
    /// [`MailerError`] when a password file cannot be read or the TLS
    /// parameters are unusable.
    pub fn new(settings: &SmtpSettings, health: Arc<Health>) -> Result<Self, MailerError> {
        let transport = match settings.transport {
            TransportKind::File => {
                let dir = settings.file_dir.clone().ok_or(MailerError::NoFileDir)?;
                std::fs::create_dir_all(&dir).map_err(|source| MailerError::FileDir {
                    path: dir.clone(),
                    source,
                })?;
                Transport::File(AsyncFileTransport::new(dir))
            }
            TransportKind::Smtp => Transport::Smtp(Arc::new(smtp_pool(settings, health)?)),
        };
        Ok(Self {
            transport,
            timeout: settings.timeout,
        })
    }

    /// Hands one email to the server. Returns once the server accepted it
    /// (after `DATA`), which is when the alert may be considered delivered to
    /// that référent.
    ///
    /// # Errors
    /// [`SendError`], classified by [`classify`].
    pub async fn send(&self, envelope: &Envelope, email: &[u8]) -> Result<Accepted, SendError> {
        // lettre bounds only the TCP connect; a server that stops answering
        // mid-transaction must not hold an alert (and a pooled connection)
        // forever. Dropping the exchange drops its connection.
        tokio::time::timeout(self.timeout, self.send_unbounded(envelope, email))
            .await
            .unwrap_or_else(|_| {
                Err(SendError::Transient(format!(
                    "SMTP timeout: no complete answer within {}",
                    humantime::format_duration(self.timeout)
                )))
            })
    }

    async fn send_unbounded(
        &self,
        envelope: &Envelope,
        email: &[u8],
    ) -> Result<Accepted, SendError> {
        let started = Instant::now();
        match &self.transport {
            Transport::Smtp(smtp) => smtp.send(envelope, email).await.map(|reply| Accepted {
                reply: reply.to_string(),
                took: started.elapsed(),
            }),
            Transport::File(file) => file
                .send_raw(envelope, email)
                .await
                .map(|id| Accepted {
                    reply: format!("written as {id}.eml"),
                    took: started.elapsed(),
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

fn smtp_pool(settings: &SmtpSettings, health: Arc<Health>) -> Result<SmtpPool, MailerError> {
    let host = settings.host.clone().ok_or(MailerError::NoHost)?;
    let tls = || -> Result<smtp::Tls, MailerError> {
        let config = match &settings.ca_file {
            Some(path) => trusting(path)?,
            None => rustls::ClientConfig::with_platform_verifier().map_err(MailerError::Tls)?,
        };
        let server_name =
            ServerName::try_from(host.clone()).map_err(|_| MailerError::TlsName(host.clone()))?;
        Ok(smtp::Tls {
            config: Arc::new(config),
            server_name,
        })
    };
    let security = match settings.tls {
        SmtpTls::None => Security::None,
        SmtpTls::Opportunistic => Security::Opportunistic(tls()?),
        SmtpTls::Required => Security::Required(tls()?),
        SmtpTls::Wrapper => Security::Wrapper(tls()?),
    };
    let credentials = match &settings.username {
        Some(username) => {
            let password = match (&settings.password, &settings.password_file) {
                (Some(password), _) => password.clone(),
                (None, Some(path)) => crate::settings::read_secret(path).map_err(|source| {
                    MailerError::PasswordFile {
                        path: path.clone(),
                        source,
                    }
                })?,
                (None, None) => SecretString::from(""),
            };
            Some((username.clone(), password))
        }
        None => None,
    };
    Ok(SmtpPool {
        server: Server {
            port: settings.port(),
            host,
            security,
            hello: ClientId::default().to_string(),
            credentials,
        },
        health,
        slots: Semaphore::new(settings.pool_size as usize),
        idle: Mutex::new(Vec::new()),
    })
}

/// A TLS configuration that trusts the certificate authorities of `path`
/// (PEM), and only them.
fn trusting(path: &std::path::Path) -> Result<rustls::ClientConfig, MailerError> {
    let problem = |problem: String| MailerError::CaFile {
        path: path.to_owned(),
        problem,
    };
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|error| problem(error.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| problem(error.to_string()))?;
    if certificates.is_empty() {
        return Err(problem("no certificate in the file".into()));
    }
    let mut roots = rustls::RootCertStore::empty();
    for certificate in certificates {
        roots
            .add(certificate)
            .map_err(|error| problem(error.to_string()))?;
    }
    Ok(rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The one place where a send failure is classified. Only a 5xx reply to
/// the transaction itself (sender, recipient, message) is permanent: trying
/// again would fail the same way. Everything else waits and is tried again
/// rather than the alert being given up on: a 4xx reply, a connection
/// refused, reset or timed out, TLS, and a refusal before the transaction
/// (greeting, EHLO, STARTTLS, AUTH), which says something about the server
/// or relais's settings, not about this email.
pub fn classify(error: smtp::Error) -> SendError {
    let text = format!("SMTP: {error}");
    match &error {
        smtp::Error::Refused { step, reply }
            if reply.code >= 500
                && matches!(step, Step::Mail | Step::Rcpt | Step::Data | Step::Message) =>
        {
            SendError::Permanent(text)
        }
        _ => SendError::Transient(text),
    }
}
