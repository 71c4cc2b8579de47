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
//! the server's reply code, and `mail::classify` decides.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use lettre::address::Envelope;
use rustls::pki_types::ServerName;
use secrecy::{ExposeSecret, SecretString};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Longest reply line accepted (RFC 5321 allows 512 octets; servers write
/// longer EHLO lines).
const MAX_LINE: u64 = 4096;
/// Most lines in one reply.
const MAX_LINES: usize = 64;

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

/// The name relais gives in EHLO (RFC 5321 §4.1.4: a fully qualified
/// domain name, or an address literal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hello {
    /// This name (`smtp.helo_name`, or the machine's fully qualified name).
    Name(String),
    /// The address literal of the connection's own end, e.g.
    /// `[127.0.0.1]` or `[IPv6:::1]`, for a machine without a qualified name.
    LocalAddress,
}

impl Hello {
    /// The machine's fully qualified name when it has one (its host name if
    /// qualified, else the canonical name the resolver gives for it, as
    /// `hostname --fqdn` does), else [`Hello::LocalAddress`].
    pub fn for_this_machine() -> Self {
        machine_fqdn().map_or(Self::LocalAddress, Self::Name)
    }

    fn for_connection(&self, local: SocketAddr) -> String {
        match self {
            Self::Name(name) => name.clone(),
            Self::LocalAddress => address_literal(local),
        }
    }
}

impl fmt::Display for Hello {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Name(name) => f.write_str(name),
            Self::LocalAddress => f.write_str("the address literal of each connection's own end"),
        }
    }
}

/// The machine's fully qualified domain name, if it has one.
fn machine_fqdn() -> Option<String> {
    let mut buffer = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at
    // most that many bytes.
    let status = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    if status != 0 {
        return None;
    }
    let end = buffer.iter().position(|&b| b == 0)?;
    let host = std::str::from_utf8(&buffer[..end]).ok()?.to_owned();
    let qualified =
        |name: &str| name.contains('.') && !name.ends_with(".localdomain") && is_domain(name);
    if qualified(&host) {
        return Some(host);
    }
    canonical_name(&host).filter(|name| qualified(name))
}

/// The canonical name the resolver gives for `host` (AI_CANONNAME).
fn canonical_name(host: &str) -> Option<String> {
    let host = std::ffi::CString::new(host).ok()?;
    // SAFETY: a zeroed addrinfo is a valid "no hints" value; the flags ask
    // for the canonical name only.
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_flags = libc::AI_CANONNAME;
    hints.ai_family = libc::AF_UNSPEC;
    let mut found: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: every pointer is valid; `found` is freed below when set.
    let status = unsafe { libc::getaddrinfo(host.as_ptr(), std::ptr::null(), &hints, &mut found) };
    if status != 0 || found.is_null() {
        return None;
    }
    // SAFETY: `found` is the list getaddrinfo made; its first entry holds
    // the canonical name (or null), read before the list is freed.
    unsafe {
        let canonical = (*found).ai_canonname;
        let name = (!canonical.is_null()).then(|| {
            std::ffi::CStr::from_ptr(canonical)
                .to_string_lossy()
                .into_owned()
        });
        libc::freeaddrinfo(found);
        name
    }
}

/// Whether `name` is a domain name: labels of letters, digits and hyphens,
/// separated by dots.
pub fn is_domain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// `[192.0.2.1]`, or `[IPv6:2001:db8::1]` (RFC 5321 §4.1.3).
pub fn address_literal(address: SocketAddr) -> String {
    match address.ip().to_canonical() {
        std::net::IpAddr::V4(ip) => format!("[{ip}]"),
        std::net::IpAddr::V6(ip) => format!("[IPv6:{ip}]"),
    }
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

/// A server's reply: its code and text (lines joined by a space).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub text: String,
}

impl Reply {
    fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.text)
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
    fn session_speaks(&self) -> bool {
        match self {
            Self::Refused { .. } | Self::NoStartTls | Self::NoAuthMechanism => true,
            Self::AuthInClear => true,
            Self::EightBit | Self::Utf8Address => true,
            Self::Io { .. } | Self::Tls { .. } | Self::Timeout { .. } | Self::Protocol { .. } => {
                false
            }
        }
    }
}

/// The extensions the server announced in its EHLO reply that relais uses.
#[derive(Debug, Default, Clone, Copy)]
struct Extensions {
    pipelining: bool,
    chunking: bool,
    starttls: bool,
    eight_bit_mime: bool,
    smtp_utf8: bool,
    auth_plain: bool,
    auth_login: bool,
}

impl Extensions {
    fn from_ehlo(lines: &[String]) -> Self {
        let mut found = Self::default();
        // The first line is the server's name; the others are keywords.
        for line in lines.iter().skip(1) {
            let mut words = line.split_ascii_whitespace();
            let keyword = words.next().unwrap_or_default().to_ascii_uppercase();
            match keyword.as_str() {
                "PIPELINING" => found.pipelining = true,
                "CHUNKING" => found.chunking = true,
                "STARTTLS" => found.starttls = true,
                "8BITMIME" => found.eight_bit_mime = true,
                "SMTPUTF8" => found.smtp_utf8 = true,
                "AUTH" => {
                    for mechanism in words {
                        match mechanism.to_ascii_uppercase().as_str() {
                            "PLAIN" => found.auth_plain = true,
                            "LOGIN" => found.auth_login = true,
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        found
    }
}

/// The socket, in clear or under TLS; `Closed` only for the instant of a
/// STARTTLS upgrade, when the socket is handed to the TLS handshake.
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    Closed,
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the connection is closed")
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
            Self::Closed => Poll::Ready(Err(closed())),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
            Self::Closed => Poll::Ready(Err(closed())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
            Self::Closed => Poll::Ready(Err(closed())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
            Self::Closed => Poll::Ready(Ok(())),
        }
    }
}

/// An open, greeted, secured and authenticated connection, between
/// transactions.
pub struct Connection {
    stream: BufReader<Stream>,
    extensions: Extensions,
    /// Reused for each command batch and message.
    out: Vec<u8>,
    timeouts: Timeouts,
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
        let step = server.timeouts.step;
        let connect = TcpStream::connect((server.host.as_str(), server.port));
        let tcp = within(step, Step::Connect, connect)
            .await?
            .map_err(|source| Error::Io {
                step: Step::Connect,
                source,
            })?;
        // Every write is a complete command batch or message: send it now,
        // do not wait for the server's ACK of the previous one (Nagle).
        let local = tcp
            .set_nodelay(true)
            .and_then(|()| tcp.local_addr())
            .map_err(|source| Error::Io {
                step: Step::Connect,
                source,
            })?;
        let stream = match &server.security {
            Security::Wrapper(tls) => handshake(tls, tcp, &server.host, step).await?,
            _ => Stream::Plain(tcp),
        };
        let mut connection = Self {
            stream: BufReader::new(stream),
            extensions: Extensions::default(),
            out: Vec::with_capacity(1024),
            timeouts: server.timeouts,
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
        self.expect(Step::Greeting).await?;
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
            if !matches!(self.stream.get_ref(), Stream::Tls(_)) {
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
        if self.write(b"QUIT\r\n", Step::Quit).await.is_ok() {
            let _ = self.reply(Step::Quit).await;
        }
        let _ = tokio::time::timeout(self.timeouts.step, self.stream.get_mut().shutdown()).await;
    }

    /// After a failed transaction: whether the connection can serve the
    /// next one. A refusal leaves the session in step; `RSET` clears the
    /// transaction (RFC 5321 §4.1.1.5). Anything else leaves it unusable.
    pub async fn recover(&mut self, failure: &Error) -> bool {
        match failure {
            Error::EightBit | Error::Utf8Address => true,
            Error::Refused { .. } if self.in_step => {
                self.write(b"RSET\r\n", Step::Reset).await.is_ok()
                    && self.expect(Step::Reset).await.is_ok()
            }
            _ => false,
        }
    }

    /// Hands one email to the server; returns its final reply once it
    /// accepted the message. `message` is the formatted email (CRLF line
    /// endings); it is dot-stuffed here.
    ///
    /// Addresses go in the form the server takes: an internationalised
    /// domain in its ASCII form (IDNA) unless the address needs SMTPUTF8
    /// anyway (a non-ASCII local part) and the server offers it.
    ///
    /// After an error, [`Connection::recover`] says whether the connection
    /// can serve again.
    ///
    /// # Errors
    /// [`Error::Refused`] with the server's reply, or the failure.
    pub async fn send(&mut self, envelope: &Envelope, message: &[u8]) -> Result<Reply, Error> {
        let eight_bit = !message.is_ascii();
        if eight_bit && !self.extensions.eight_bit_mime {
            return Err(Error::EightBit);
        }
        let smtp_utf8 = self.extensions.smtp_utf8;
        let from = envelope
            .from()
            .map(|address| wire_address(address.as_ref(), smtp_utf8))
            .transpose()?
            .unwrap_or(Cow::Borrowed(""));
        let to = envelope
            .to()
            .iter()
            .map(|address| wire_address(address.as_ref(), smtp_utf8))
            .collect::<Result<Vec<_>, _>>()?;
        let utf8_addresses = !from.is_ascii() || to.iter().any(|address| !address.is_ascii());
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        out.extend_from_slice(b"MAIL FROM:<");
        out.extend_from_slice(from.as_bytes());
        out.push(b'>');
        if eight_bit {
            out.extend_from_slice(b" BODY=8BITMIME");
        }
        if utf8_addresses {
            out.extend_from_slice(b" SMTPUTF8");
        }
        out.extend_from_slice(b"\r\n");
        let mut steps = vec![Step::Mail];
        for to in &to {
            out.extend_from_slice(b"RCPT TO:<");
            out.extend_from_slice(to.as_bytes());
            out.extend_from_slice(b">\r\n");
            steps.push(Step::Rcpt);
        }
        let sent = self.transaction(&mut out, steps, message).await;
        self.out = out;
        sent
    }

    /// Sends the envelope already in `out`, then the message, the fastest
    /// way the server allows:
    /// - PIPELINING and CHUNKING (RFC 3030): the envelope, `BDAT <length>
    ///   LAST` and the message in one write, one round trip;
    /// - PIPELINING: the envelope and `DATA` in one write, then the message
    ///   with its end in another, two round trips;
    /// - neither: one command at a time.
    async fn transaction(
        &mut self,
        out: &mut Vec<u8>,
        mut steps: Vec<Step>,
        message: &[u8],
    ) -> Result<Reply, Error> {
        if self.extensions.pipelining && self.extensions.chunking {
            // The server reads a chunk by its length whatever it thinks of
            // the envelope, so a refused recipient leaves the connection in
            // step; it then refuses the BDAT too.
            let _ = write!(out, "BDAT {} LAST\r\n", message.len());
            out.extend_from_slice(message);
            steps.push(Step::Message);
            self.write(out, Step::Mail).await?;
            // The server may hold the envelope's replies until the end of
            // the message (RFC 2920 lets it): the whole batch has the final
            // reply's time.
            return self.replies(&steps, self.timeouts.final_reply).await;
        }
        out.extend_from_slice(b"DATA\r\n");
        steps.push(Step::Data);
        if self.extensions.pipelining {
            self.write(out, Step::Mail).await?;
            self.replies(&steps, self.timeouts.step).await?;
        } else {
            let commands = std::mem::take(out);
            for (command, step) in commands.split_inclusive(|b| *b == b'\n').zip(steps) {
                self.write(command, step).await?;
                self.expect(step).await?;
            }
        }
        out.clear();
        dot_stuff(message, out);
        self.write(out, Step::Message).await?;
        self.expect(Step::Message).await
    }

    /// Reads the replies to a pipelined batch, one per step, all within
    /// `limit` (the server answers a batch together), and returns the last.
    /// Every reply is read before judging (each command was sent and is
    /// answered); the first refusal is the one reported, even if the server
    /// then closes the connection.
    async fn replies(&mut self, steps: &[Step], limit: Duration) -> Result<Reply, Error> {
        let mut refused = None;
        let mut last = None;
        // One timer for the batch, rather than one per reply.
        let deadline = tokio::time::sleep(limit);
        tokio::pin!(deadline);
        for &step in steps {
            let read = tokio::select! {
                biased;
                reply = self.read_reply_unbounded(step, None) => reply,
                () = &mut deadline => Err(Error::Timeout { step, after: limit }),
            };
            let reply = match read {
                Ok(reply) => reply,
                Err(failure) => {
                    self.in_step = false;
                    return Err(refused.unwrap_or(failure));
                }
            };
            if !reply.is_positive() && refused.is_none() {
                refused = Some(Error::Refused {
                    step,
                    reply: reply.clone(),
                });
            }
            last = Some(reply);
        }
        match (refused, last) {
            (Some(refused), last) => {
                // A server that opened DATA despite the refusal now waits
                // for a message: the session is no longer in step.
                if last.is_some_and(|reply| reply.code == 354) {
                    self.in_step = false;
                }
                Err(refused)
            }
            (None, Some(last)) => Ok(last),
            (None, None) => Err(Error::Protocol {
                step: Step::Mail,
                what: "an empty transaction",
            }),
        }
    }

    /// Whether the server still answers (for a connection that waited in
    /// the pool).
    pub async fn is_alive(&mut self) -> bool {
        self.write(b"NOOP\r\n", Step::Hello).await.is_ok() && self.expect(Step::Hello).await.is_ok()
    }

    async fn hello(&mut self) -> Result<(), Error> {
        let command = format!("EHLO {}\r\n", self.hello);
        self.write(command.as_bytes(), Step::Hello).await?;
        let mut lines = Vec::new();
        let reply = self
            .read_reply(Step::Hello, Some(&mut lines), self.timeouts.step)
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
        self.write(b"STARTTLS\r\n", Step::StartTls).await?;
        self.expect(Step::StartTls).await?;
        // Anything the server sent after its 220 came in clear and must not
        // be read as if it had come over TLS (a known injection).
        if !self.stream.buffer().is_empty() {
            return Err(Error::Protocol {
                step: Step::StartTls,
                what: "data sent ahead of the TLS handshake",
            });
        }
        let plain = std::mem::replace(&mut self.stream, BufReader::new(Stream::Closed));
        let Stream::Plain(tcp) = plain.into_inner() else {
            return Err(Error::Protocol {
                step: Step::StartTls,
                what: "STARTTLS on a connection already secured",
            });
        };
        self.stream = BufReader::new(handshake(tls, tcp, host, self.timeouts.step).await?);
        self.extensions = Extensions::default();
        Ok(())
    }

    async fn authenticate(&mut self, username: &str, password: &SecretString) -> Result<(), Error> {
        if self.extensions.auth_plain {
            let token = format!("\0{username}\0{}", password.expose_secret());
            let command = format!("AUTH PLAIN {}\r\n", BASE64.encode(token));
            self.write(command.as_bytes(), Step::Auth).await?;
            self.expect(Step::Auth).await?;
        } else if self.extensions.auth_login {
            self.write(b"AUTH LOGIN\r\n", Step::Auth).await?;
            self.expect(Step::Auth).await?;
            let user = format!("{}\r\n", BASE64.encode(username));
            self.write(user.as_bytes(), Step::Auth).await?;
            self.expect(Step::Auth).await?;
            let pass = format!("{}\r\n", BASE64.encode(password.expose_secret()));
            self.write(pass.as_bytes(), Step::Auth).await?;
            self.expect(Step::Auth).await?;
        } else {
            return Err(Error::NoAuthMechanism);
        }
        Ok(())
    }

    async fn write(&mut self, bytes: &[u8], step: Step) -> Result<(), Error> {
        let stream = self.stream.get_mut();
        let written = async {
            stream.write_all(bytes).await?;
            stream.flush().await
        };
        within(self.timeouts.step, step, written)
            .await?
            .map_err(|source| Error::Io { step, source })
    }

    /// Reads one reply and fails unless it is positive.
    async fn expect(&mut self, step: Step) -> Result<Reply, Error> {
        let reply = self.reply(step).await?;
        if reply.is_positive() {
            Ok(reply)
        } else {
            Err(Error::Refused { step, reply })
        }
    }

    /// Reads one reply, within the final reply's time limit for the end of
    /// the message and the step's for any other.
    async fn reply(&mut self, step: Step) -> Result<Reply, Error> {
        let limit = if step == Step::Message {
            self.timeouts.final_reply
        } else {
            self.timeouts.step
        };
        self.read_reply(step, None, limit).await
    }

    /// Reads one reply within `limit`.
    async fn read_reply(
        &mut self,
        step: Step,
        lines: Option<&mut Vec<String>>,
        limit: Duration,
    ) -> Result<Reply, Error> {
        within(limit, step, self.read_reply_unbounded(step, lines)).await?
    }

    /// Reads one reply, possibly of several lines (`250-…` then `250 …`);
    /// its text is the lines' joined by a space. Each line's text also goes
    /// to `lines` when given (EHLO's keywords).
    async fn read_reply_unbounded(
        &mut self,
        step: Step,
        mut lines: Option<&mut Vec<String>>,
    ) -> Result<Reply, Error> {
        let mut text = String::new();
        let mut line = Vec::with_capacity(128);
        let mut count = 0;
        loop {
            line.clear();
            let read = (&mut self.stream)
                .take(MAX_LINE)
                .read_until(b'\n', &mut line)
                .await
                .map_err(|source| Error::Io { step, source })?;
            if read == 0 {
                return Err(Error::Io {
                    step,
                    source: io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the connection",
                    ),
                });
            }
            let (code, last, part) = parse_line(&line).ok_or(Error::Protocol {
                step,
                what: "a malformed or overlong reply line",
            })?;
            count += 1;
            if count > 1 {
                text.push(' ');
            }
            text.push_str(part);
            if let Some(lines) = lines.as_deref_mut() {
                lines.push(part.to_owned());
            }
            if last {
                return Ok(Reply { code, text });
            }
            if count >= MAX_LINES {
                return Err(Error::Protocol {
                    step,
                    what: "a reply of too many lines",
                });
            }
        }
    }
}

async fn handshake(
    tls: &Tls,
    tcp: TcpStream,
    host: &str,
    limit: Duration,
) -> Result<Stream, Error> {
    let connecting = TlsConnector::from(tls.config.clone()).connect(tls.server_name.clone(), tcp);
    within(limit, Step::StartTls, connecting)
        .await?
        .map(|stream| Stream::Tls(Box::new(stream)))
        .map_err(|source| Error::Tls {
            host: host.to_owned(),
            source,
        })
}

/// `work`, or [`Error::Timeout`] at `step` if it takes longer than `limit`.
async fn within<T>(limit: Duration, step: Step, work: impl Future<Output = T>) -> Result<T, Error> {
    tokio::time::timeout(limit, work)
        .await
        .map_err(|_| Error::Timeout { step, after: limit })
}

/// An address as the server takes it: `local@domain` with the domain in
/// its ASCII form (IDNA, `xn--…`), unless the local part is not ASCII and
/// the server offers SMTPUTF8, in which case it goes as it is.
///
/// # Errors
/// [`Error::Utf8Address`] for a non-ASCII local part and a server without
/// SMTPUTF8.
fn wire_address(address: &str, smtp_utf8: bool) -> Result<Cow<'_, str>, Error> {
    if address.is_ascii() {
        return Ok(Cow::Borrowed(address));
    }
    let (local, domain) = address.rsplit_once('@').unwrap_or((address, ""));
    if !local.is_ascii() {
        return if smtp_utf8 {
            Ok(Cow::Borrowed(address))
        } else {
            Err(Error::Utf8Address)
        };
    }
    // The registry refuses a domain without an ASCII form; should one get
    // here, it goes as it is and the server judges.
    let domain = idna::domain_to_ascii(domain).unwrap_or_else(|_| domain.to_owned());
    Ok(Cow::Owned(format!("{local}@{domain}")))
}

/// `ddd-text` or `ddd text` (CRLF or LF), as (code, last line?, text).
fn parse_line(line: &[u8]) -> Option<(u16, bool, &str)> {
    let line = line
        .strip_suffix(b"\n")
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))?;
    let code = line.get(..3)?;
    if !code.iter().all(u8::is_ascii_digit) || !(b'2'..=b'5').contains(&code[0]) {
        return None;
    }
    let code = u16::from(code[0] - b'0') * 100
        + u16::from(code[1] - b'0') * 10
        + u16::from(code[2] - b'0');
    let (last, text) = match line.get(3) {
        None => (true, &[][..]),
        Some(b' ') => (true, &line[4..]),
        Some(b'-') => (false, &line[4..]),
        Some(_) => return None,
    };
    Some((
        code,
        last,
        std::str::from_utf8(text).unwrap_or("(not UTF-8)"),
    ))
}

/// Appends `message` to `out` as the DATA content (RFC 5321 §4.5.2): a line
/// starting with `.` gets a second one, and the content ends with CRLF `.`
/// CRLF.
fn dot_stuff(message: &[u8], out: &mut Vec<u8>) {
    out.reserve(message.len() + message.len() / 512 + 5);
    let mut at_line_start = true;
    for chunk in message.split_inclusive(|b| *b == b'\n') {
        if at_line_start && chunk.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(chunk);
        at_line_start = chunk.last() == Some(&b'\n');
    }
    if !out.ends_with(b"\r\n") && !message.is_empty() {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_starting_with_a_dot_is_doubled_and_the_end_is_marked() {
        let mut out = Vec::new();
        dot_stuff(b".first\r\nmiddle\r\n.\r\n..two\r\nend\r\n", &mut out);
        assert_eq!(
            out,
            b"..first\r\nmiddle\r\n..\r\n...two\r\nend\r\n.\r\n".to_vec()
        );
    }

    #[test]
    fn a_message_without_a_final_line_break_gets_one_before_the_end_mark() {
        let mut out = Vec::new();
        dot_stuff(b"no newline", &mut out);
        assert_eq!(out, b"no newline\r\n.\r\n".to_vec());
    }

    #[test]
    fn reply_lines_are_parsed_with_their_code_and_continuation() {
        assert_eq!(
            parse_line(b"250-PIPELINING\r\n"),
            Some((250, false, "PIPELINING"))
        );
        assert_eq!(parse_line(b"250 ok\r\n"), Some((250, true, "ok")));
        assert_eq!(parse_line(b"354\r\n"), Some((354, true, "")));
        assert_eq!(
            parse_line(b"451 4.3.0 later\n"),
            Some((451, true, "4.3.0 later"))
        );
    }

    #[test]
    fn malformed_reply_lines_are_refused() {
        for line in [
            &b"25 short\r\n"[..],
            b"abc text\r\n",
            b"250x\r\n",
            b"650 no\r\n",
            b"250 no end",
        ] {
            assert_eq!(
                parse_line(line),
                None,
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn an_address_literal_is_written_as_rfc_5321_says() {
        let v4: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let v6: SocketAddr = "[2001:db8::1]:40000".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:192.0.2.7]:40000".parse().unwrap();
        assert_eq!(address_literal(v4), "[127.0.0.1]");
        assert_eq!(address_literal(v6), "[IPv6:2001:db8::1]");
        assert_eq!(address_literal(mapped), "[192.0.2.7]");
        assert_eq!(Hello::LocalAddress.for_connection(v4), "[127.0.0.1]");
        assert_eq!(
            Hello::Name("relais.example.org".into()).for_connection(v4),
            "relais.example.org"
        );
    }

    #[test]
    fn addresses_go_in_the_form_the_server_takes() {
        assert_eq!(
            wire_address("agent@mairie-évry.test", false).unwrap(),
            "agent@xn--mairie-vry-h7a.test"
        );
        assert_eq!(
            wire_address("agent@mairie-évry.test", true).unwrap(),
            "agent@xn--mairie-vry-h7a.test"
        );
        assert_eq!(
            wire_address("éloïse@mairie-évry.test", true).unwrap(),
            "éloïse@mairie-évry.test"
        );
        assert!(matches!(
            wire_address("éloïse@example.org", false),
            Err(Error::Utf8Address)
        ));
        assert_eq!(
            wire_address("agent@example.org", false).unwrap(),
            "agent@example.org"
        );
    }

    #[test]
    fn the_ehlo_reply_gives_the_extensions_relais_uses() {
        let lines: Vec<String> = [
            "mx.example.org",
            "PIPELINING",
            "CHUNKING",
            "8BITMIME",
            "AUTH LOGIN PLAIN",
            "STARTTLS",
            "SIZE 1000",
        ]
        .map(String::from)
        .to_vec();
        let found = Extensions::from_ehlo(&lines);
        assert!(found.pipelining && found.chunking && found.eight_bit_mime && found.starttls);
        assert!(found.auth_plain && found.auth_login);
        assert!(!found.smtp_utf8);
    }
}
