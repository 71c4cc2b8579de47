//! Why an SMTP exchange failed, and at which step: the server's refusal
//! with its reply, the network, TLS, a time limit, or a server that broke
//! the protocol.
//!
//! It says what happened and whether the session can still speak; it never
//! decides what a failure means for the alert (`mail::classify` does).

use std::fmt;
use std::io;
use std::time::Duration;

use super::Reply;

/// The step of the exchange a failure happened at, for the error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Connect,
    Greeting,
    Hello,
    StartTls,
    Auth,
    Mail,
    Rcpt,
    Data,
    Message,
    Reset,
    Quit,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Connect => "connection",
            Self::Greeting => "greeting",
            Self::Hello => "EHLO",
            Self::StartTls => "STARTTLS",
            Self::Auth => "AUTH",
            Self::Mail => "MAIL FROM",
            Self::Rcpt => "RCPT TO",
            Self::Data => "DATA",
            Self::Message => "end of message",
            Self::Reset => "RSET",
            Self::Quit => "QUIT",
        })
    }
}

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with a negative reply (4xx or 5xx).
    #[error("the server refused at {step}: {reply}")]
    Refused { step: Step, reply: Reply },
    #[error("network error at {step}: {source}")]
    Io { step: Step, source: io::Error },
    #[error("TLS handshake with {host} failed: {source}")]
    Tls { host: String, source: io::Error },
    #[error("the server does not offer STARTTLS, and smtp.tls = \"required\"")]
    NoStartTls,
    #[error("the server offers no authentication mechanism relais knows (PLAIN, LOGIN)")]
    NoAuthMechanism,
    #[error(
        "the connection is not encrypted (the server did not offer STARTTLS): relais does \
         not send its SMTP password in clear"
    )]
    AuthInClear,
    #[error("the server does not accept 8-bit messages (8BITMIME)")]
    EightBit,
    /// An address whose local part is not ASCII, to a server without
    /// SMTPUTF8 (RFC 6531): no form of it can be sent there.
    #[error(
        "the address has a non-ASCII local part, and the server does not offer SMTPUTF8 \
         (RFC 6531): it cannot be sent there"
    )]
    Utf8Address,
    #[error("no answer at {step} within {}", humantime::format_duration(*after))]
    Timeout { step: Step, after: Duration },
    /// This relais no longer holds the standby lease (`fence`): the
    /// message was not handed over, and the session is abandoned.
    #[error("not sent: this relais no longer holds the standby lease")]
    Fenced,
    #[error("the server broke the protocol at {step}: {what}")]
    Protocol { step: Step, what: &'static str },
}

impl Error {
    /// Whether the server cannot be used as relais is configured, whatever
    /// the email: TLS required but not offered or refused, a certificate
    /// that does not prove the server's name, authentication refused or
    /// impossible. Not a network failure or a server that is down.
    pub fn is_setup(&self) -> bool {
        match self {
            Self::NoStartTls | Self::NoAuthMechanism | Self::AuthInClear => true,
            Self::Refused { step, .. } => matches!(step, Step::StartTls | Step::Auth),
            // rustls reports a refused certificate or handshake as invalid
            // data; a connection cut during the handshake is another kind.
            Self::Tls { source, .. } => source.kind() == io::ErrorKind::InvalidData,
            _ => false,
        }
    }

    /// Whether the session is still in step after this failure, so that
    /// relais may say `QUIT`: the server answered and nothing it has not
    /// answered is pending.
    pub(super) fn session_speaks(&self) -> bool {
        match self {
            Self::Refused { .. } | Self::NoStartTls | Self::NoAuthMechanism => true,
            Self::AuthInClear => true,
            Self::EightBit | Self::Utf8Address => true,
            Self::Io { .. }
            | Self::Tls { .. }
            | Self::Timeout { .. }
            | Self::Protocol { .. }
            | Self::Fenced => false,
        }
    }
}
