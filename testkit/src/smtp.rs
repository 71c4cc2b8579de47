//! A real SMTP server for the tests and the benchmark, on a loopback port
//! chosen by the OS.
//!
//! It speaks enough of RFC 5321 for relais (EHLO, MAIL, RCPT, DATA, RSET,
//! NOOP, QUIT), with PIPELINING (RFC 2920) and CHUNKING (RFC 3030, BDAT)
//! offered unless told otherwise,
//! records every message it accepts, and can be scripted to
//! misbehave: refuse chosen recipients, fail the next N transactions with a
//! given reply, answer slowly, stall past the client's timeout, or drop the
//! connection in the middle of a transaction.
//!
//! Replies are written as Postfix writes them (RFC 2920): held while more
//! pipelined commands wait to be read, so the replies to a batch leave in
//! one write.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{
    AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter,
    ReadHalf, WriteHalf,
};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_rustls::TlsAcceptor;

/// A connection, in clear or under TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

type Reader = BufReader<ReadHalf<Box<dyn Io>>>;
type Writer = BufWriter<WriteHalf<Box<dyn Io>>>;

/// How the server speaks TLS.
#[derive(Clone)]
pub enum TlsMode {
    /// Offers STARTTLS.
    StartTls(TlsAcceptor),
    /// TLS from the first byte (port 465 style).
    Wrapper(TlsAcceptor),
}

/// What the server does instead of accepting a transaction.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer the end of DATA with this reply, e.g. `(451, "4.3.0 try later")`.
    Reply(u16, &'static str),
    /// Say nothing for this long after the end of DATA, then accept if the
    /// client is still there (a server that commits only once it replied).
    Stall(Duration),
    /// Say nothing for this long, then accept even if the client gave up
    /// (a server that commits on receipt: RFC 1047's duplicate problem).
    LateAccept(Duration),
    /// Close the connection at the end of DATA, without a reply.
    Drop,
}

/// One accepted message.
#[derive(Debug, Clone)]
pub struct Mail {
    /// Whether the message came over TLS.
    pub tls: bool,
    pub from: String,
    pub to: Vec<String>,
    /// The message; its header section only after
    /// [`SmtpServer::keep_headers_only`].
    pub data: Vec<u8>,
    /// When the server accepted it.
    pub at: Instant,
    /// The address of the client that sent it.
    pub peer: Option<std::net::IpAddr>,
    /// The link of its text's line that holds the marker given to
    /// [`SmtpServer::keep_headers_and_link`], kept before its body went.
    pub link: Option<String>,
}

impl Mail {
    pub fn parsed(&self) -> mail_parser::Message<'_> {
        mail_parser::MessageParser::default()
            .parse(&self.data)
            .expect("a parsable email")
    }

    /// The raw value of a header, e.g. `X-Relais-Alert-Id`.
    pub fn header(&self, name: &str) -> Option<String> {
        let parsed = self.parsed();
        parsed.header_raw(name).map(|value| value.trim().to_owned())
    }

    pub fn alert_id(&self) -> String {
        self.header("X-Relais-Alert-Id")
            .expect("an X-Relais-Alert-Id header")
    }

    pub fn referent(&self) -> String {
        self.header("X-Relais-Referent")
            .expect("an X-Relais-Referent header")
    }

    pub fn text(&self) -> String {
        self.parsed()
            .body_text(0)
            .map(|text| text.into_owned())
            .unwrap_or_default()
    }
}

#[derive(Default)]
struct Script {
    /// Recipient → the reply to its RCPT TO, every time.
    refused: HashMap<String, (u16, &'static str)>,
    /// Recipient → the reply to its next RCPT TOs, and how many more.
    refused_next: HashMap<String, (u16, &'static str, usize)>,
    /// While set, every transaction waits at the end of DATA, unanswered.
    held: bool,
    /// Faults for the next transactions, in order.
    next: Vec<Fault>,
    /// Delay before every end-of-DATA reply.
    latency: Duration,
    /// Do not offer PIPELINING (a server that wants one command at a time).
    no_pipelining: bool,
    /// Do not offer CHUNKING (a server that takes messages by DATA only).
    no_chunking: bool,
    /// Require AUTH PLAIN with this user and password before MAIL.
    auth: Option<(String, String)>,
    /// Keep only each message's header section (for the benchmark's many
    /// thousands of emails).
    headers_only: bool,
    /// With `headers_only`, keep the link of the text's line that holds
    /// this marker.
    link: Option<&'static str>,
    /// Do not offer SMTPUTF8 (RFC 6531).
    no_smtputf8: bool,
    /// Close the connection right after refusing a recipient, as some
    /// servers do after a 5xx.
    close_after_refusal: bool,
}

#[derive(Default)]
struct State {
    mails: Vec<Mail>,
    script: Script,
    /// Transactions that reached the end of DATA, accepted or not.
    attempts: usize,
    /// Transactions waiting because of a hold.
    held: usize,
    /// RCPT TOs refused by the script.
    refusals: usize,
    /// Commands that were already waiting when the previous one was read.
    pipelined: usize,
    /// Messages received by BDAT rather than DATA.
    chunked: usize,
    /// Users who authenticated, one entry per successful AUTH.
    authenticated: Vec<String>,
    /// Every MAIL and RCPT command, as received.
    envelopes: Vec<String>,
    /// The name given in each EHLO or HELO.
    hellos: Vec<String>,
    /// Sessions opened, and those the client ended with QUIT.
    sessions: usize,
    quits: usize,
    /// RSET commands received.
    resets: usize,
    /// AUTH attempts refused.
    auth_refusals: usize,
}

#[derive(Clone)]
pub struct SmtpServer {
    addr: SocketAddr,
    /// The client's address, in a session's copy.
    peer: Option<std::net::IpAddr>,
    state: Arc<Mutex<State>>,
    received: Arc<Notify>,
    released: Arc<Notify>,
}

impl SmtpServer {
    pub async fn start() -> Self {
        Self::start_on(0).await
    }

    /// A free loopback port with nothing listening on it yet.
    pub async fn free_port() -> u16 {
        crate::rabbitmq::free_port()
    }

    /// A server that speaks TLS as `mode` says.
    pub async fn start_tls(mode: TlsMode) -> Self {
        Self::start_with(0, Some(mode)).await
    }

    pub async fn start_on(port: u16) -> Self {
        Self::start_with(port, None).await
    }

    /// As [`SmtpServer::start`], listening on every address of the
    /// machine, for a relais on a host of the test's own
    /// ([`crate::netns::Host`]); [`SmtpServer::port`] is still its port.
    pub async fn start_on_every_address() -> Self {
        Self::listening(Ipv4Addr::UNSPECIFIED, 0, None).await
    }

    async fn start_with(port: u16, tls: Option<TlsMode>) -> Self {
        Self::listening(Ipv4Addr::LOCALHOST, port, tls).await
    }

    async fn listening(address: Ipv4Addr, port: u16, tls: Option<TlsMode>) -> Self {
        let listener = TcpListener::bind((address, port))
            .await
            .expect("bind a port");
        let server = Self {
            addr: listener.local_addr().expect("a local address"),
            peer: None,
            state: Arc::default(),
            received: Arc::default(),
            released: Arc::default(),
        };
        let accepting = server.clone();
        tokio::spawn(async move {
            while let Ok((stream, peer)) = listener.accept().await {
                let mut session = accepting.clone();
                session.peer = Some(peer.ip());
                let tls = tls.clone();
                tokio::spawn(async move {
                    // Each reply is its own write; without this, the replies
                    // to a pipelined batch would wait for the client's
                    // delayed ACK.
                    let _ = stream.set_nodelay(true);
                    match tls {
                        Some(TlsMode::Wrapper(acceptor)) => {
                            if let Ok(secured) = acceptor.accept(stream).await {
                                session.serve(Box::new(secured), None, true).await;
                            }
                        }
                        Some(TlsMode::StartTls(acceptor)) => {
                            session.serve(Box::new(stream), Some(acceptor), false).await;
                        }
                        None => session.serve(Box::new(stream), None, false).await,
                    }
                });
            }
        });
        server
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every RCPT TO for `address` is answered with `code text`.
    pub fn refuse_recipient(&self, address: &str, code: u16, text: &'static str) {
        let mut state = self.state.lock().unwrap();
        state
            .script
            .refused
            .insert(address.to_owned(), (code, text));
    }

    /// The next `count` RCPT TOs for `address` are answered `code text`.
    pub fn refuse_recipient_next(
        &self,
        address: &str,
        count: usize,
        code: u16,
        text: &'static str,
    ) {
        let mut state = self.state.lock().unwrap();
        state
            .script
            .refused_next
            .insert(address.to_owned(), (code, text, count));
    }

    /// From now on, transactions wait at the end of DATA without an answer.
    pub fn hold(&self) {
        self.state.lock().unwrap().script.held = true;
    }

    /// Holds the answers (see [`SmtpServer::hold`]) and waits until the
    /// transactions in flight all wait, so that a kill then lands while no
    /// email is half accepted; returns how many wait (at most 10 s).
    pub async fn hold_in_flight(&self) -> usize {
        self.hold();
        let mut held = 0;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = self.held();
            if now > 0 && now == held {
                break;
            }
            held = now;
        }
        held
    }

    /// Ends a hold: the transactions that waited are dropped unanswered (as
    /// a server does when its client went away); new ones are accepted.
    pub fn drop_held(&self) {
        self.state.lock().unwrap().script.held = false;
        self.released.notify_waiters();
    }

    /// How many RCPT TOs the script refused.
    pub fn refusals(&self) -> usize {
        self.state.lock().unwrap().refusals
    }

    /// Transactions waiting at the end of DATA because of a hold.
    pub fn held(&self) -> usize {
        self.state.lock().unwrap().held
    }

    /// The next `count` transactions meet `fault` at the end of DATA.
    pub fn fail_next(&self, count: usize, fault: Fault) {
        let mut state = self.state.lock().unwrap();
        state.script.next.extend(std::iter::repeat_n(fault, count));
    }

    /// Every transaction is answered after `latency`.
    pub fn set_latency(&self, latency: Duration) {
        self.state.lock().unwrap().script.latency = latency;
    }

    /// Stop offering PIPELINING to new connections.
    pub fn without_pipelining(&self) {
        self.state.lock().unwrap().script.no_pipelining = true;
    }

    /// Stop offering CHUNKING (BDAT) to new connections.
    pub fn without_chunking(&self) {
        self.state.lock().unwrap().script.no_chunking = true;
    }

    /// From now on, MAIL is refused until the client authenticates (AUTH
    /// PLAIN) as `user` with `password`.
    pub fn require_auth(&self, user: &str, password: &str) {
        self.state.lock().unwrap().script.auth = Some((user.to_owned(), password.to_owned()));
    }

    /// The users who authenticated, one entry per successful AUTH.
    pub fn authenticated(&self) -> Vec<String> {
        self.state.lock().unwrap().authenticated.clone()
    }

    /// How many AUTH attempts were refused.
    pub fn auth_refusals(&self) -> usize {
        self.state.lock().unwrap().auth_refusals
    }

    /// How many messages arrived by BDAT, since the start.
    pub fn chunked(&self) -> usize {
        self.state.lock().unwrap().chunked
    }

    /// How many commands arrived in the same read as the one before them
    /// (pipelined by the client), since the start.
    pub fn pipelined(&self) -> usize {
        self.state.lock().unwrap().pipelined
    }

    /// Back to accepting everything at once.
    pub fn heal(&self) {
        let mut state = self.state.lock().unwrap();
        let (headers_only, link) = (state.script.headers_only, state.script.link);
        state.script = Script {
            headers_only,
            link,
            ..Script::default()
        };
    }

    /// Stop offering SMTPUTF8 to new connections.
    pub fn without_smtputf8(&self) {
        self.state.lock().unwrap().script.no_smtputf8 = true;
    }

    /// From now on, close the connection after refusing a recipient.
    pub fn close_after_refusal(&self) {
        self.state.lock().unwrap().script.close_after_refusal = true;
    }

    /// Every MAIL and RCPT command received, in order.
    pub fn envelopes(&self) -> Vec<String> {
        self.state.lock().unwrap().envelopes.clone()
    }

    /// The name given in each EHLO (or HELO), in order.
    pub fn hellos(&self) -> Vec<String> {
        self.state.lock().unwrap().hellos.clone()
    }

    /// How many sessions were opened, and how many the client ended with
    /// QUIT.
    pub fn sessions(&self) -> (usize, usize) {
        let state = self.state.lock().unwrap();
        (state.sessions, state.quits)
    }

    /// How many RSET commands were received.
    pub fn resets(&self) -> usize {
        self.state.lock().unwrap().resets
    }

    /// From now on, keep only the header section of each message.
    pub fn keep_headers_only(&self) {
        self.state.lock().unwrap().script.headers_only = true;
    }

    /// As [`SmtpServer::keep_headers_only`], and each message's link on
    /// the line of its text that holds `marker` (e.g. `"/ack/"`), in
    /// [`Mail::link`]: a client follows it long after.
    pub fn keep_headers_and_link(&self, marker: &'static str) {
        let mut state = self.state.lock().unwrap();
        state.script.headers_only = true;
        state.script.link = Some(marker);
    }

    /// The messages accepted after the first `count`.
    pub fn mails_after(&self, count: usize) -> Vec<Mail> {
        let state = self.state.lock().unwrap();
        state.mails.get(count..).unwrap_or_default().to_vec()
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.state.lock().unwrap().mails.clone()
    }

    /// How many mails were accepted.
    pub fn count(&self) -> usize {
        self.state.lock().unwrap().mails.len()
    }

    /// Forgets the mails accepted so far.
    pub fn clear(&self) {
        self.state.lock().unwrap().mails.clear();
    }

    /// How many transactions reached the end of DATA, accepted or not.
    pub fn attempts(&self) -> usize {
        self.state.lock().unwrap().attempts
    }

    /// Waits until at least `count` mails were accepted, or `within` passed;
    /// returns the mails accepted by then.
    pub async fn wait_for(&self, count: usize, within: Duration) -> Vec<Mail> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.received.notified();
            if self.count() >= count || tokio::time::Instant::now() >= deadline {
                return self.mails();
            }
            let _ = tokio::time::timeout_at(deadline, notified).await;
        }
    }

    /// One session. `starttls`: offer STARTTLS with this; `secured`: the
    /// connection is already under TLS (the greeting is then sent only if
    /// it is a new connection, not after an upgrade).
    async fn serve(self, stream: Box<dyn Io>, starttls: Option<TlsAcceptor>, secured: bool) {
        self.state.lock().unwrap().sessions += 1;
        self.session(stream, starttls, secured, true).await;
    }

    fn session(
        self,
        stream: Box<dyn Io>,
        starttls: Option<TlsAcceptor>,
        secured: bool,
        greet: bool,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(async move { self.converse(stream, starttls, secured, greet).await })
    }

    async fn converse(
        self,
        stream: Box<dyn Io>,
        starttls: Option<TlsAcceptor>,
        secured: bool,
        greet: bool,
    ) {
        let (read, write) = tokio::io::split(stream);
        let mut write: Writer = BufWriter::new(write);
        let mut lines: Reader = BufReader::new(read);
        let mut line = String::new();
        let mut from = String::new();
        let mut to: Vec<String> = Vec::new();
        // BDAT chunks of the message being received.
        let mut chunks: Vec<u8> = Vec::new();
        let mut authenticated = false;
        if greet && send(&mut write, "220 relais-test ESMTP").await.is_err() {
            return;
        }
        loop {
            line.clear();
            let waiting = !lines.buffer().is_empty();
            match lines.read_line(&mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if waiting {
                self.state.lock().unwrap().pipelined += 1;
            }
            let command = line.trim_end().to_owned();
            let verb = command
                .split([' ', ':'])
                .next()
                .unwrap_or_default()
                .to_ascii_uppercase();
            let reply: String = match verb.as_str() {
                "EHLO" => {
                    let mut state = self.state.lock().unwrap();
                    let name = command.split_ascii_whitespace().nth(1).unwrap_or_default();
                    state.hellos.push(name.to_owned());
                    let script = &state.script;
                    let mut reply = String::from("250-relais-test\r\n");
                    if !script.no_pipelining {
                        reply.push_str("250-PIPELINING\r\n");
                    }
                    if !script.no_chunking {
                        reply.push_str("250-CHUNKING\r\n");
                    }
                    if starttls.is_some() && !secured {
                        reply.push_str("250-STARTTLS\r\n");
                    }
                    if script.auth.is_some() {
                        reply.push_str("250-AUTH PLAIN\r\n");
                    }
                    if script.no_smtputf8 {
                        reply.push_str("250 8BITMIME");
                    } else {
                        reply.push_str("250-8BITMIME\r\n250 SMTPUTF8");
                    }
                    reply
                }
                "AUTH" => {
                    let mut state = self.state.lock().unwrap();
                    let given = plain_credentials(&command);
                    let expected = state.script.auth.clone();
                    if given.is_some() && given == expected {
                        authenticated = true;
                        let user = given.map(|(user, _)| user).unwrap_or_default();
                        state.authenticated.push(user);
                        "235 2.7.0 Authentication successful".into()
                    } else {
                        state.auth_refusals += 1;
                        "535 5.7.8 Authentication credentials invalid".into()
                    }
                }
                "MAIL" if !authenticated && self.state.lock().unwrap().script.auth.is_some() => {
                    "530 5.7.0 Authentication required".into()
                }
                "HELO" => "250 relais-test".into(),
                "STARTTLS" if !secured && lines.buffer().is_empty() => {
                    let Some(acceptor) = starttls.clone() else {
                        let _ = send(&mut write, "502 5.5.1 not offered").await;
                        continue;
                    };
                    if send(&mut write, "220 2.0.0 ready to start TLS")
                        .await
                        .is_err()
                    {
                        return;
                    }
                    let plain = lines.into_inner().unsplit(write.into_inner());
                    let Ok(secured) = acceptor.accept(plain).await else {
                        return;
                    };
                    // RFC 3207: the session starts again, with EHLO.
                    return self.session(Box::new(secured), None, true, false).await;
                }
                "MAIL" => {
                    self.state.lock().unwrap().envelopes.push(command.clone());
                    from = address(&command);
                    to.clear();
                    chunks.clear();
                    "250 2.1.0 Ok".into()
                }
                "RCPT" => {
                    let recipient = address(&command);
                    let refused = {
                        let mut state = self.state.lock().unwrap();
                        state.envelopes.push(command.clone());
                        let once = state
                            .script
                            .refused_next
                            .get_mut(&recipient)
                            .and_then(|next| {
                                (next.2 > 0).then(|| {
                                    next.2 -= 1;
                                    (next.0, next.1)
                                })
                            });
                        let refused =
                            once.or_else(|| state.script.refused.get(&recipient).copied());
                        if refused.is_some() {
                            state.refusals += 1;
                        }
                        refused
                    };
                    match refused {
                        Some((code, text))
                            if self.state.lock().unwrap().script.close_after_refusal =>
                        {
                            let _ = send(&mut write, &format!("{code} {text}")).await;
                            return;
                        }
                        Some((code, text)) => format!("{code} {text}"),
                        None => {
                            to.push(recipient);
                            "250 2.1.5 Ok".into()
                        }
                    }
                }
                "DATA" if to.is_empty() => "554 5.5.1 no valid recipients".into(),
                "DATA" => {
                    if send(&mut write, "354 End data with <CR><LF>.<CR><LF>")
                        .await
                        .is_err()
                    {
                        return;
                    }
                    let Some(data) = read_data(&mut lines).await else {
                        return;
                    };
                    match self
                        .end_of_message(secured, &from, &to, data, &mut lines)
                        .await
                    {
                        Some(reply) => reply,
                        None => return,
                    }
                }
                "BDAT" => {
                    // `BDAT <size> [LAST]`: the chunk is read whatever the
                    // envelope, so the session stays in step.
                    let mut words = command.split_ascii_whitespace().skip(1);
                    let size: usize = words.next().and_then(|n| n.parse().ok()).unwrap_or(0);
                    let last = words.next().is_some_and(|w| w.eq_ignore_ascii_case("LAST"));
                    let mut chunk = vec![0; size];
                    if lines.read_exact(&mut chunk).await.is_err() {
                        return;
                    }
                    chunks.extend_from_slice(&chunk);
                    if !last {
                        "250 2.0.0 chunk received".into()
                    } else if to.is_empty() {
                        chunks.clear();
                        "554 5.5.1 no valid recipients".into()
                    } else {
                        self.state.lock().unwrap().chunked += 1;
                        let data = std::mem::take(&mut chunks);
                        match self
                            .end_of_message(secured, &from, &to, data, &mut lines)
                            .await
                        {
                            Some(reply) => reply,
                            None => return,
                        }
                    }
                }
                "RSET" => {
                    self.state.lock().unwrap().resets += 1;
                    from.clear();
                    to.clear();
                    "250 2.0.0 Ok".into()
                }
                "NOOP" => "250 2.0.0 Ok".into(),
                "QUIT" => {
                    self.state.lock().unwrap().quits += 1;
                    let _ = send(&mut write, "221 2.0.0 Bye").await;
                    return;
                }
                _ => "502 5.5.2 command not recognised".into(),
            };
            // Held while pipelined commands wait, then sent together.
            let written = if lines.buffer().is_empty() {
                send(&mut write, &reply).await
            } else {
                write.write_all(format!("{reply}\r\n").as_bytes()).await
            };
            if written.is_err() {
                return;
            }
        }
    }

    /// What the server does with a whole message (after DATA's end or the
    /// last BDAT chunk): the scripted fault, or acceptance. `None`: the
    /// connection is to be dropped without a reply.
    async fn end_of_message(
        &self,
        tls: bool,
        from: &str,
        to: &[String],
        data: Vec<u8>,
        lines: &mut Reader,
    ) -> Option<String> {
        let released = self.released.notified();
        let (fault, latency, held) = {
            let mut state = self.state.lock().unwrap();
            state.attempts += 1;
            let fault = (!state.script.next.is_empty()).then(|| state.script.next.remove(0));
            if state.script.held {
                state.held += 1;
            }
            (fault, state.script.latency, state.script.held)
        };
        if held {
            released.await;
            self.state.lock().unwrap().held -= 1;
            return None;
        }
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        match fault {
            Some(Fault::Reply(code, text)) => Some(format!("{code} {text}")),
            Some(Fault::Drop) => None,
            Some(Fault::Stall(pause)) => {
                tokio::time::sleep(pause).await;
                if client_left(lines).await {
                    return None;
                }
                Some(self.accept(tls, from, to, data))
            }
            Some(Fault::LateAccept(pause)) => {
                tokio::time::sleep(pause).await;
                Some(self.accept(tls, from, to, data))
            }
            None => Some(self.accept(tls, from, to, data)),
        }
    }

    fn accept(&self, tls: bool, from: &str, to: &[String], mut data: Vec<u8>) -> String {
        let marker = self.state.lock().unwrap().script.link;
        let link = marker.and_then(|marker| {
            let message = mail_parser::MessageParser::default().parse(&data)?;
            crate::fixtures::find_link(&message.body_text(0)?, marker)
        });
        let mut state = self.state.lock().unwrap();
        if state.script.headers_only
            && let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n")
        {
            data.truncate(end + 4);
        }
        state.mails.push(Mail {
            tls,
            from: from.to_owned(),
            to: to.to_vec(),
            data,
            at: Instant::now(),
            peer: self.peer,
            link,
        });
        let id = state.mails.len();
        drop(state);
        self.received.notify_waiters();
        format!("250 2.0.0 Ok: queued as TEST{id}")
    }
}

/// Writes `reply` and everything held before it.
async fn send(write: &mut Writer, reply: &str) -> std::io::Result<()> {
    write.write_all(reply.as_bytes()).await?;
    write.write_all(b"\r\n").await?;
    write.flush().await
}

/// Whether the client closed the connection (nothing more will come).
async fn client_left(lines: &mut Reader) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_millis(50), lines.fill_buf()).await,
        Ok(Ok([])) | Ok(Err(_))
    )
}

/// The user and password of `AUTH PLAIN <base64 of "\0user\0password">`.
fn plain_credentials(command: &str) -> Option<(String, String)> {
    use base64::Engine as _;
    let mut words = command.split_ascii_whitespace().skip(1);
    if !words.next()?.eq_ignore_ascii_case("PLAIN") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(words.next()?)
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let mut parts = decoded.split('\0').skip(1);
    Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
}

/// The address inside `MAIL FROM:<a@b> SIZE=…` or `RCPT TO:<a@b>`.
fn address(command: &str) -> String {
    let start = command.find('<').map_or(0, |i| i + 1);
    let end = command[start..]
        .find('>')
        .map_or(command.len(), |i| start + i);
    command[start..end].to_owned()
}

/// The message after DATA, up to the lone `.`, with dot-stuffing undone.
async fn read_data(lines: &mut Reader) -> Option<Vec<u8>> {
    let mut data = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        match lines.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        if line == b".\r\n" || line == b".\n" {
            return Some(data);
        }
        let unstuffed = if line.starts_with(b"..") {
            &line[1..]
        } else {
            &line[..]
        };
        data.extend_from_slice(unstuffed);
    }
}
