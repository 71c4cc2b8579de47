//! The way out: hands each email to the SMTP server (through the [`pool`]
//! of relais's own SMTP client) or, for a local trial, to a folder of
//! `.eml` files.
//!
//! It bounds each send and reports what the server said; it never decides
//! what happens to the alert (`relay` does, from the [`classify`]ication).
//!
//! [`pool`]: crate::mail::pool
//! [`classify`]: mod@crate::mail::classify

use std::sync::Arc;
use std::time::{Duration, Instant};

use lettre::{AsyncFileTransport, AsyncTransport, Tokio1Executor};
use rustls::pki_types::ServerName;
use rustls_platform_verifier::ConfigVerifierExt;
use thiserror::Error;

use crate::fence::Fence;
use crate::health::Health;
use crate::mail::classify::SendError;
use crate::mail::outbound::{MailServer, Outbound, SmtpTls};
use crate::mail::pool::SmtpPool;
use crate::mail::render::Email;
use crate::mail::smtp::{self, Hello, Security, Server};
use crate::secret::{Password, read_secret};

/// Why the transport could not be set up from the settings.
#[derive(Debug, Error)]
pub enum MailerError {
    #[error("cannot read smtp.password_file {path}: {source}")]
    PasswordFile {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create smtp.file_dir {path}: {source}")]
    FileDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("the TLS trust settings are not usable: {0}")]
    Tls(rustls::Error),
    #[error(transparent)]
    CaFile(#[from] crate::tls::FileError),
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

/// Sends emails; cheap to clone, every clone shares the connection pool.
#[derive(Clone)]
pub struct Mailer {
    transport: Transport,
    /// Whether this relais may still hand emails over (`fence`).
    fence: Fence,
}

impl Mailer {
    /// Builds the transport the settings describe, sending only while
    /// `fence` holds. Nothing is sent and no connection is opened yet.
    ///
    /// # Errors
    /// [`MailerError`] when a password file cannot be read, the folder of a
    /// trial cannot be made, or the TLS parameters are unusable.
    pub fn new(
        outbound: &Outbound,
        health: Arc<Health>,
        fence: Fence,
    ) -> Result<Self, MailerError> {
        let transport = match outbound {
            Outbound::Files(dir) => {
                std::fs::create_dir_all(dir).map_err(|source| MailerError::FileDir {
                    path: dir.clone(),
                    source,
                })?;
                Transport::File(AsyncFileTransport::new(dir))
            }
            Outbound::Smtp(server) => Transport::Smtp(Arc::new(SmtpPool::new(
                smtp_server(server)?,
                server.pool_size,
                health,
                fence.clone(),
            ))),
        };
        Ok(Self { transport, fence })
    }

    /// Hands one email to the server. Returns once the server accepted it
    /// (after `DATA`), which is when the alert may be considered delivered to
    /// that référent. Each step of the exchange has its own time limit
    /// (`smtp.timeout`, `smtp.final_reply_timeout`); waiting for a
    /// connection of the pool has none.
    ///
    /// # Errors
    /// [`SendError`], classified by [`classify`](crate::mail::classify()).
    pub async fn send(&self, email: &Email) -> Result<Accepted, SendError> {
        if !self.fence.holds() {
            return Err(crate::mail::classify(smtp::Error::Fenced));
        }
        let started = Instant::now();
        match &self.transport {
            Transport::Smtp(smtp) => {
                smtp.send(email.envelope(), email.bytes())
                    .await
                    .map(|reply| Accepted {
                        reply: reply.to_string(),
                        took: started.elapsed(),
                    })
            }
            Transport::File(file) => file
                .send_raw(email.envelope(), email.bytes())
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

    /// Whether this relais may still hand emails over.
    pub fn fence(&self) -> &Fence {
        &self.fence
    }

    /// Closes (`QUIT`) the SMTP connections idle for too long; call it now
    /// and then.
    pub async fn expire_idle(&self) {
        if let Transport::Smtp(smtp) = &self.transport {
            smtp.expire_idle().await;
        }
    }

    /// Closes (`QUIT`) every idle SMTP connection, at shutdown.
    pub async fn close(&self) {
        if let Transport::Smtp(smtp) = &self.transport {
            smtp.close().await;
        }
    }
}

/// The name relais gives in EHLO: `smtp.helo_name`, else the machine's.
pub fn hello(helo_name: Option<&str>) -> Hello {
    helo_name.map_or_else(Hello::for_this_machine, |name| Hello::Name(name.to_owned()))
}

/// The SMTP client's view of the checked settings: TLS trust, the password
/// read from its file, the name relais gives in EHLO.
fn smtp_server(server: &MailServer) -> Result<Server, MailerError> {
    let tls = || -> Result<smtp::Tls, MailerError> {
        let config = match &server.ca_file {
            Some(path) => crate::tls::trusting("smtp.ca_file", path)?,
            None => rustls::ClientConfig::with_platform_verifier().map_err(MailerError::Tls)?,
        };
        let server_name = ServerName::try_from(server.host.clone())
            .map_err(|_| MailerError::TlsName(server.host.clone()))?;
        Ok(smtp::Tls {
            config: Arc::new(config),
            server_name,
        })
    };
    let security = match server.tls {
        SmtpTls::None => Security::None,
        SmtpTls::Opportunistic => Security::Opportunistic(tls()?),
        SmtpTls::Required => Security::Required(tls()?),
        SmtpTls::Wrapper => Security::Wrapper(tls()?),
    };
    let credentials = match &server.credentials {
        Some(login) => {
            let password = match &login.password {
                Password::Inline(password) => password.clone(),
                Password::File(path) => {
                    read_secret(path).map_err(|source| MailerError::PasswordFile {
                        path: path.clone(),
                        source,
                    })?
                }
            };
            Some((login.username.clone(), password))
        }
        None => None,
    };
    Ok(Server {
        host: server.host.clone(),
        port: server.port,
        security,
        hello: hello(server.helo_name.as_deref()),
        credentials,
        timeouts: server.timeouts,
    })
}
