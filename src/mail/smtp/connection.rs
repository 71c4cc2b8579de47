//! The connection: a TCP socket, in clear or under TLS (from the first
//! byte, or after STARTTLS), through which commands are written whole and
//! replies read line by line.
//!
//! Every step is bounded: connecting, the TLS handshake, each write and
//! each reply have their time limit, a reply line its length and a reply
//! its number of lines. Bytes the server sent ahead of a STARTTLS upgrade
//! are refused, never read as if they had come over TLS. It knows nothing
//! of what the commands mean (`mod.rs` and `transaction` do).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::reply::parse_line;
use super::{Error, Reply, Security, Server, Step, Timeouts, Tls};

/// Longest reply line accepted (RFC 5321 allows 512 octets; servers write
/// longer EHLO lines).
const MAX_LINE: u64 = 4096;
/// Most lines in one reply.
const MAX_LINES: usize = 64;

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

/// The socket as SMTP reads and writes it, each step within its time
/// limit.
pub(super) struct Wire {
    stream: BufReader<Stream>,
    /// The time limits of every step, and of the final reply.
    pub(super) timeouts: Timeouts,
}

impl Wire {
    /// Connects to `server`, under TLS from the first byte when its
    /// security says so; returns the connection's own address too, for the
    /// EHLO address literal.
    ///
    /// # Errors
    /// [`Error`] at [`Step::Connect`], or the TLS handshake's.
    pub(super) async fn connect(server: &Server) -> Result<(Self, SocketAddr), Error> {
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
        let wire = Self {
            stream: BufReader::new(stream),
            timeouts: server.timeouts,
        };
        Ok((wire, local))
    }

    /// Whether the connection is under TLS.
    pub(super) fn is_tls(&self) -> bool {
        matches!(self.stream.get_ref(), Stream::Tls(_))
    }

    /// Upgrades the connection in place, once the server accepted STARTTLS
    /// (RFC 3207).
    ///
    /// # Errors
    /// [`Error::Protocol`] when the server sent anything after its reply,
    /// or the TLS handshake's failure.
    pub(super) async fn upgrade(&mut self, tls: &Tls, host: &str) -> Result<(), Error> {
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
        Ok(())
    }

    /// The TLS close_notify and the socket's shutdown, within the step's
    /// time limit. Best effort: a server that already went away costs
    /// nothing more than that limit.
    pub(super) async fn shutdown(&mut self) {
        let _ = tokio::time::timeout(self.timeouts.step, self.stream.get_mut().shutdown()).await;
    }

    /// Writes `bytes`, a whole command batch or message, and flushes
    /// them, within the step's time limit.
    pub(super) async fn write(&mut self, bytes: &[u8], step: Step) -> Result<(), Error> {
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
    pub(super) async fn expect(&mut self, step: Step) -> Result<Reply, Error> {
        let reply = self.reply(step).await?;
        if reply.is_positive() {
            Ok(reply)
        } else {
            Err(Error::Refused { step, reply })
        }
    }

    /// Reads one reply, within the final reply's time limit for the end of
    /// the message and the step's for any other.
    pub(super) async fn reply(&mut self, step: Step) -> Result<Reply, Error> {
        let limit = if step == Step::Message {
            self.timeouts.final_reply
        } else {
            self.timeouts.step
        };
        self.read_reply(step, None, limit).await
    }

    /// Reads one reply within `limit`.
    pub(super) async fn read_reply(
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
    pub(super) async fn read_reply_unbounded(
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
