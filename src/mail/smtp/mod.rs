//! The SMTP client (RFC 5321): one connection to the mail server, secured
//! and authenticated as the settings say, and the transaction that hands it
//! one email.
//!
//! relais speaks SMTP itself, rather than through lettre's connection, for
//! two reasons. A transaction is pipelined when the server offers
//! PIPELINING (RFC 2920): with CHUNKING (RFC 3030) too, the envelope and
//! the message leave in one write (`BDAT`), one round trip instead of four;
//! without it, `MAIL`, `RCPT` and `DATA` in one write and the message and
//! its end in another, two round trips. That divides an email's time to a
//! remote server, and its system calls.
//! And every step is bounded and inspectable: a reply is read with a size
//! limit, bytes the server sent ahead of a STARTTLS upgrade are refused
//! (they would otherwise be read as if they had come over TLS), and each
//! failure says at which step it happened.
//!
//! Every step has its own time limit, as RFC 5321 §4.5.3.2 gives them:
//! `smtp.timeout` for connecting, the TLS handshake and each reply, and
//! `smtp.final_reply_timeout` (10 minutes by default, the RFC's) for the
//! reply to the end of the message, which a server with a content filter
//! gives only once the filter is done. Waiting for a connection of the pool
//! is never counted: giving up on a server that already queued the message
//! is what sends it twice (RFC 1047).
//!
//! A connection that can still speak is closed with `QUIT` (and TLS's
//! close_notify); a refused transaction is ended with `RSET` and the
//! connection kept. Only a broken connection is dropped without a word.
//!
//! This module never decides what a failure means for the alert; it reports
//!
//! The client by layer, as lettre's and mini-redis's are: `connection`
//! (the socket, TCP or TLS, reading and writing lines, each step bounded),
//! `reply` (a reply's code and text, parsed), `extension` (the EHLO name
//! and what the server announces), `transaction` (the envelope and the
//! message, pipelined, dot-stuffed), `error` (what failed, and where). This
//! file is the client's API: where to connect and how, and a connection's
//! life from its opening to its `QUIT`.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rustls::pki_types::ServerName;
use secrecy::{ExposeSecret, SecretString};

mod connection;
mod error;
mod extension;
mod reply;
mod transaction;

use self::connection::Wire;
pub use self::error::{Error, Step};
use self::extension::Extensions;
pub use self::extension::{Hello, address_literal, is_domain};
pub use self::reply::Reply;

/// How the connection is secured.
#[derive(Clone)]
pub enum Security {
    /// In clear (the settings allow it only towards this machine, or when
    /// explicitly allowed).
    None,
    /// STARTTLS when the server offers it, in clear otherwise.
    Opportunistic(Tls),
    /// STARTTLS, and no email if the server does not offer it.
    Required(Tls),
    /// TLS from the first byte (port 465).
    Wrapper(Tls),
}

/// What a TLS handshake needs: the trust configuration and the name the
/// server's certificate must carry.
#[derive(Clone)]
pub struct Tls {
    pub config: Arc<rustls::ClientConfig>,
    pub server_name: ServerName<'static>,
}

/// Where to connect and how to present relais.
pub struct Server {
    pub host: String,
    pub port: u16,
    pub security: Security,
    /// The name relais gives in EHLO.
    pub hello: Hello,
    pub credentials: Option<(String, SecretString)>,
    pub timeouts: Timeouts,
}

/// How long each step may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Connecting, the TLS handshake, each write and each reply but the last.
    pub step: Duration,
    /// The reply to the end of the message (and to the commands pipelined
    /// with it, which a server may hold until then).
    pub final_reply: Duration,
}

/// An open, greeted, secured and authenticated connection, between
/// transactions.
pub struct Connection {
    wire: Wire,
    extensions: Extensions,
    /// Reused for each command batch and message.
    out: Vec<u8>,
    /// The name given in EHLO, again after STARTTLS.
    hello: String,
    /// False once a reply went missing or the server was left waiting for
    /// a message: the session is out of step and cannot be reused.
    in_step: bool,
}

impl Connection {
    /// Connects and gets the connection ready for transactions: greeting,
    /// EHLO, TLS as `server.security` says, AUTH when credentials are set,
    /// each step within `server.timeouts.step`. A refusal on the way is
    /// answered with `QUIT`.
    ///
    /// # Errors
    /// [`Error`] at the step that failed.
    pub async fn open(server: &Server) -> Result<Self, Error> {
        let (wire, local) = Wire::connect(server).await?;
        let mut connection = Self {
            wire,
            extensions: Extensions::default(),
            out: Vec::with_capacity(1024),
            hello: server.hello.for_connection(local),
            in_step: true,
        };
        match connection.prepare(server).await {
            Ok(()) => Ok(connection),
            Err(error) => {
                if error.session_speaks() {
                    connection.quit().await;
                }
                Err(error)
            }
        }
    }

    /// Greeting, EHLO, STARTTLS and EHLO again, AUTH.
    async fn prepare(&mut self, server: &Server) -> Result<(), Error> {
        self.wire.expect(Step::Greeting).await?;
        self.hello().await?;
        let upgrade = match &server.security {
            Security::Required(_) if !self.extensions.starttls => {
                return Err(Error::NoStartTls);
            }
            Security::Required(tls) => Some(tls),
            Security::Opportunistic(tls) if self.extensions.starttls => Some(tls),
            _ => None,
        };
        if let Some(tls) = upgrade {
            self.starttls(tls, &server.host).await?;
            self.hello().await?;
        }
        if let Some((username, password)) = &server.credentials {
            // A password never crosses the network in clear, whatever the
            // server offers (a STARTTLS stripped on the way included).
            if !self.wire.is_tls() {
                return Err(Error::AuthInClear);
            }
            self.authenticate(username, password).await?;
        }
        Ok(())
    }

    /// Ends the session politely: `QUIT`, its reply, then the TLS
    /// close_notify and the socket's shutdown. Best effort: a server that
    /// already went away costs nothing more than the step's time limit.
    pub async fn quit(mut self) {
        if self.wire.write(b"QUIT\r\n", Step::Quit).await.is_ok() {
            let _ = self.wire.reply(Step::Quit).await;
        }
        self.wire.shutdown().await;
    }

    /// After a failed transaction: whether the connection can serve the
    /// next one. A refusal leaves the session in step; `RSET` clears the
    /// transaction (RFC 5321 §4.1.1.5). Anything else leaves it unusable.
    pub async fn recover(&mut self, failure: &Error) -> bool {
        match failure {
            Error::EightBit | Error::Utf8Address => true,
            Error::Refused { .. } if self.in_step => {
                self.wire.write(b"RSET\r\n", Step::Reset).await.is_ok()
                    && self.wire.expect(Step::Reset).await.is_ok()
            }
            _ => false,
        }
    }

    /// Whether the server still answers (for a connection that waited in
    /// the pool).
    pub async fn is_alive(&mut self) -> bool {
        self.wire.write(b"NOOP\r\n", Step::Hello).await.is_ok()
            && self.wire.expect(Step::Hello).await.is_ok()
    }

    async fn hello(&mut self) -> Result<(), Error> {
        let command = format!("EHLO {}\r\n", self.hello);
        self.wire.write(command.as_bytes(), Step::Hello).await?;
        let mut lines = Vec::new();
        let reply = self
            .wire
            .read_reply(Step::Hello, Some(&mut lines), self.wire.timeouts.step)
            .await?;
        if !reply.is_positive() {
            return Err(Error::Refused {
                step: Step::Hello,
                reply,
            });
        }
        self.extensions = Extensions::from_ehlo(&lines);
        Ok(())
    }

    /// Upgrades the connection in place (RFC 3207); the EHLO that follows
    /// is the caller's.
    async fn starttls(&mut self, tls: &Tls, host: &str) -> Result<(), Error> {
        self.wire.write(b"STARTTLS\r\n", Step::StartTls).await?;
        self.wire.expect(Step::StartTls).await?;
        self.wire.upgrade(tls, host).await?;
        self.extensions = Extensions::default();
        Ok(())
    }

    async fn authenticate(&mut self, username: &str, password: &SecretString) -> Result<(), Error> {
        if self.extensions.auth_plain {
            let token = format!("\0{username}\0{}", password.expose_secret());
            let command = format!("AUTH PLAIN {}\r\n", BASE64.encode(token));
            self.wire.write(command.as_bytes(), Step::Auth).await?;
            self.wire.expect(Step::Auth).await?;
        } else if self.extensions.auth_login {
            self.wire.write(b"AUTH LOGIN\r\n", Step::Auth).await?;
            self.wire.expect(Step::Auth).await?;
            let user = format!("{}\r\n", BASE64.encode(username));
            self.wire.write(user.as_bytes(), Step::Auth).await?;
            self.wire.expect(Step::Auth).await?;
            let pass = format!("{}\r\n", BASE64.encode(password.expose_secret()));
            self.wire.write(pass.as_bytes(), Step::Auth).await?;
            self.wire.expect(Step::Auth).await?;
        } else {
            return Err(Error::NoAuthMechanism);
        }
        Ok(())
    }
}
