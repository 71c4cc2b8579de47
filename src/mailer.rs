//! The way out: hands each email to the SMTP server (or, for a local trial,
//! to a folder of `.eml` files), and says what a failure means.
//!
//! This module owns the transport (a pool of reused SMTP connections, with
//! the TLS mode the settings demand) and the one classification of send
//! failures that the retry decisions rest on. It never decides what happens
//! to the alert; `handle` does.
//!
//! The pool is relais's own, around lettre's `AsyncSmtpConnection` (which
//! does the protocol, TLS and AUTH): lettre's async transport bounds only the
//! TCP connect, so a send must be cancelled on timeout, and its pool would
//! take a cancelled connection back mid-transaction (the next user would read
//! the previous transaction's reply). Here a connection returns to the pool
//! only after a complete, successful exchange; any other way out drops it.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::response::Response;
use lettre::{AsyncFileTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};
use thiserror::Error;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

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
/// An idle connection older than this is not reused at all.
const MAX_IDLE: Duration = Duration::from_secs(60);

/// Connections to one SMTP server: at most `slots` at once, the idle ones
/// kept for reuse.
struct SmtpPool {
    host: String,
    port: u16,
    tls: Tls,
    hello: ClientId,
    credentials: Option<Credentials>,
    connect_timeout: Duration,
    slots: Semaphore,
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
}

impl SmtpPool {
    async fn send(&self, envelope: &Envelope, email: &[u8]) -> Result<Response, SendError> {
        // The semaphore is never closed, so acquiring cannot fail.
        let _slot = self.slots.acquire().await;
        let mut connection = match self.reusable().await {
            Some(connection) => connection,
            None => self.connect().await?,
        };
        // If this future is dropped (timeout, shutdown), `connection` is
        // dropped with it, closing the socket: it never returns to the pool.
        let response = connection.send(envelope, email).await.map_err(classify)?;
        self.lock().push((connection, Instant::now()));
        Ok(response)
    }

    async fn reusable(&self) -> Option<AsyncSmtpConnection> {
        loop {
            let (mut connection, since) = self.lock().pop()?;
            let idle = since.elapsed();
            if idle > MAX_IDLE {
                continue;
            }
            if idle < CHECK_AFTER_IDLE || connection.test_connected().await {
                return Some(connection);
            }
        }
    }

    /// A new connection, secured and authenticated as the settings say
    /// (the same steps as lettre's own transport).
    async fn connect(&self) -> Result<AsyncSmtpConnection, SendError> {
        let mut connection = match &self.tls {
            Tls::Wrapper(parameters) => AsyncSmtpConnection::connect_tokio1(
                (self.host.as_str(), self.port),
                Some(self.connect_timeout),
                &self.hello,
                Some(parameters.clone()),
                None,
            )
            .await
            .map_err(classify)?,
            // relais opens the socket itself to disable Nagle's algorithm:
            // lettre writes the end of DATA as a second small write, which
            // Nagle would hold until the server's delayed ACK (up to 40 ms
            // per email). STARTTLS then upgrades this same socket.
            _ => {
                let address = (self.host.as_str(), self.port);
                let stream =
                    tokio::time::timeout(self.connect_timeout, TcpStream::connect(address))
                        .await
                        .map_err(|_| {
                            std::io::Error::new(
                                std::io::ErrorKind::TimedOut,
                                "connection timed out",
                            )
                        })
                        .and_then(|connected| connected)
                        .map_err(|error| self.unreachable(&error))?;
                stream
                    .set_nodelay(true)
                    .map_err(|error| self.unreachable(&error))?;
                AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello)
                    .await
                    .map_err(classify)?
            }
        };
        match &self.tls {
            Tls::Required(parameters) => connection
                .starttls(parameters.clone(), &self.hello)
                .await
                .map_err(classify)?,
            Tls::Opportunistic(parameters) if connection.can_starttls() => {
                connection
                    .starttls(parameters.clone(), &self.hello)
                    .await
                    .map_err(classify)?;
            }
            _ => {}
        }
        if let Some(credentials) = &self.credentials {
            connection
                .auth(DEFAULT_MECHANISMS, credentials)
                .await
                .map_err(classify)?;
        }
        Ok(connection)
    }

    /// A failure to reach the server: transient.
    fn unreachable(&self, error: &std::io::Error) -> SendError {
        SendError::Transient(format!(
            "SMTP connection to {}:{} failed: {error}",
            self.host, self.port
        ))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(AsyncSmtpConnection, Instant)>> {
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
            TransportKind::Smtp => Transport::Smtp(Arc::new(smtp_pool(settings)?)),
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
            Transport::Smtp(smtp) => smtp.send(envelope, email).await.map(|response| Accepted {
                reply: response.message().collect::<Vec<_>>().join(" "),
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

fn smtp_pool(settings: &SmtpSettings) -> Result<SmtpPool, MailerError> {
    let host = settings.host.clone().ok_or(MailerError::NoHost)?;
    let tls = match settings.tls {
        SmtpTls::None => Tls::None,
        SmtpTls::Opportunistic => Tls::Opportunistic(tls_parameters(&host)?),
        SmtpTls::Required => Tls::Required(tls_parameters(&host)?),
        SmtpTls::Wrapper => Tls::Wrapper(tls_parameters(&host)?),
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
            Some(Credentials::new(
                username.clone(),
                password.expose_secret().to_owned(),
            ))
        }
        None => None,
    };
    Ok(SmtpPool {
        port: settings.port(),
        host,
        tls,
        hello: ClientId::default(),
        credentials,
        connect_timeout: settings.timeout,
        slots: Semaphore::new(settings.pool_size as usize),
        idle: Mutex::new(Vec::new()),
    })
}

fn tls_parameters(host: &str) -> Result<TlsParameters, MailerError> {
    TlsParameters::new(host.to_owned()).map_err(MailerError::Tls)
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
