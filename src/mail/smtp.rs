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
//! This module never decides what a failure means for the alert; it reports
//! the server's reply code, and `mail::classify` decides.

use std::fmt;
use std::io::{self, Write as _};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

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
    pub hello: String,
    pub credentials: Option<(String, SecretString)>,
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
    #[error("the server does not accept 8-bit messages (8BITMIME) or UTF-8 addresses (SMTPUTF8)")]
    EightBit,
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
            Self::NoStartTls | Self::NoAuthMechanism => true,
            Self::Refused { step, .. } => matches!(step, Step::StartTls | Step::Auth),
            // rustls reports a refused certificate or handshake as invalid
            // data; a connection cut during the handshake is another kind.
            Self::Tls { source, .. } => source.kind() == io::ErrorKind::InvalidData,
            _ => false,
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

/// The socket, in clear or under TLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
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
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
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
}

impl Connection {
    /// Connects and gets the connection ready for transactions: greeting,
    /// EHLO, TLS as `server.security` says, AUTH when credentials are set.
    /// The caller bounds the time it takes.
    ///
    /// # Errors
    /// [`Error`] at the step that failed.
    pub async fn open(server: &Server) -> Result<Self, Error> {
        let tcp = TcpStream::connect((server.host.as_str(), server.port))
            .await
            .map_err(|source| Error::Io {
                step: Step::Connect,
                source,
            })?;
        // Every write is a complete command batch or message: send it now,
        // do not wait for the server's ACK of the previous one (Nagle).
        tcp.set_nodelay(true).map_err(|source| Error::Io {
            step: Step::Connect,
            source,
        })?;
        let stream = match &server.security {
            Security::Wrapper(tls) => handshake(tls, tcp, &server.host).await?,
            _ => Stream::Plain(tcp),
        };
        let mut connection = Self {
            stream: BufReader::new(stream),
            extensions: Extensions::default(),
            out: Vec::with_capacity(1024),
        };
        connection.expect(Step::Greeting).await?;
        connection.hello(&server.hello).await?;

        let upgrade = match &server.security {
            Security::Required(_) if !connection.extensions.starttls => {
                return Err(Error::NoStartTls);
            }
            Security::Required(tls) => Some(tls),
            Security::Opportunistic(tls) if connection.extensions.starttls => Some(tls),
            _ => None,
        };
        if let Some(tls) = upgrade {
            connection = connection.starttls(tls, &server.host).await?;
            connection.hello(&server.hello).await?;
        }
        if let Some((username, password)) = &server.credentials {
            connection.authenticate(username, password).await?;
        }
        Ok(connection)
    }

    /// Hands one email to the server; returns its final reply once it
    /// accepted the message. `message` is the formatted email (CRLF line
    /// endings); it is dot-stuffed here.
    ///
    /// On any error the connection is in an unknown state: drop it.
    ///
    /// # Errors
    /// [`Error::Refused`] with the server's reply, or the failure.
    pub async fn send(&mut self, envelope: &Envelope, message: &[u8]) -> Result<Reply, Error> {
        let eight_bit = !message.is_ascii();
        let utf8_addresses = envelope
            .from()
            .into_iter()
            .chain(envelope.to())
            .any(|address| !AsRef::<str>::as_ref(address).is_ascii());
        if (eight_bit && !self.extensions.eight_bit_mime)
            || (utf8_addresses && !self.extensions.smtp_utf8)
        {
            return Err(Error::EightBit);
        }
        let from = envelope.from().map_or("", AsRef::as_ref);
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
        for to in envelope.to() {
            out.extend_from_slice(b"RCPT TO:<");
            out.extend_from_slice(AsRef::<str>::as_ref(to).as_bytes());
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
            return self.replies(&steps).await;
        }
        out.extend_from_slice(b"DATA\r\n");
        steps.push(Step::Data);
        if self.extensions.pipelining {
            self.write(out, Step::Mail).await?;
            self.replies(&steps).await?;
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

    /// Reads the replies to a pipelined batch, one per step, and returns
    /// the last. Every reply is read before judging (each command was sent
    /// and is answered); the first refusal is the one reported.
    async fn replies(&mut self, steps: &[Step]) -> Result<Reply, Error> {
        let mut refused = None;
        let mut last = None;
        for &step in steps {
            let reply = self.reply(step).await?;
            if !reply.is_positive() && refused.is_none() {
                refused = Some(Error::Refused {
                    step,
                    reply: reply.clone(),
                });
            }
            last = Some(reply);
        }
        match (refused, last) {
            (Some(refused), _) => Err(refused),
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

    async fn hello(&mut self, name: &str) -> Result<(), Error> {
        self.write(format!("EHLO {name}\r\n").as_bytes(), Step::Hello)
            .await?;
        let mut lines = Vec::new();
        let reply = self.read_reply(Step::Hello, Some(&mut lines)).await?;
        if !reply.is_positive() {
            return Err(Error::Refused {
                step: Step::Hello,
                reply,
            });
        }
        self.extensions = Extensions::from_ehlo(&lines);
        Ok(())
    }

    async fn starttls(mut self, tls: &Tls, host: &str) -> Result<Self, Error> {
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
        let Stream::Plain(tcp) = self.stream.into_inner() else {
            return Err(Error::Protocol {
                step: Step::StartTls,
                what: "STARTTLS on a connection already secured",
            });
        };
        Ok(Self {
            stream: BufReader::new(handshake(tls, tcp, host).await?),
            extensions: Extensions::default(),
            out: self.out,
        })
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
        written.await.map_err(|source| Error::Io { step, source })
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

    async fn reply(&mut self, step: Step) -> Result<Reply, Error> {
        self.read_reply(step, None).await
    }

    /// Reads one reply, possibly of several lines (`250-…` then `250 …`);
    /// its text is the lines' joined by a space. Each line's text also goes
    /// to `lines` when given (EHLO's keywords).
    async fn read_reply(
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

async fn handshake(tls: &Tls, tcp: TcpStream, host: &str) -> Result<Stream, Error> {
    TlsConnector::from(tls.config.clone())
        .connect(tls.server_name.clone(), tcp)
        .await
        .map(|stream| Stream::Tls(Box::new(stream)))
        .map_err(|source| Error::Tls {
            host: host.to_owned(),
            source,
        })
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
