//! One bounce message, as a mail server hands it over, read into what it
//! says: a delivery status notification (RFC 3464) with one
//! [`RecipientReport`] per recipient, or an unstructured bounce that the
//! caller must match by its return path's tag alone.
//!
//! `mail-parser` reads the MIME structure; [`fields`] reads the
//! `message/delivery-status` part (header-like blocks: the per-message
//! fields, a blank line, then one block per recipient). A message over [`MAX_SIZE`] is
//! refused before any parsing. Errors name the field and the rule and the
//! line of the delivery-status part, never a value: a bounce quotes
//! addresses and whatever the remote server said.

mod fields;

use std::fmt;

use mail_parser::{Message, MessageParser, MimeHeaders};
use thiserror::Error;

use super::status::statuses_in;
pub use super::status::{Class, Status};

/// Largest bounce read, in bytes. A delivery report is a few kilobytes,
/// with the returned message (relais's own mail, small) a few dozen: a
/// larger message is not a bounce of relais's and is refused unread.
pub const MAX_SIZE: usize = 1024 * 1024;

/// What one bounce message says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bounce {
    /// A delivery status notification (RFC 3464): per recipient, what
    /// happened and why.
    Report(Report),
    /// A message with no `message/delivery-status` part, as some servers
    /// still send (qmail, old Exchange, hand-written autoresponders). It says
    /// nothing reliable about which recipient failed: the caller relies on
    /// the envelope recipient's tag alone (see [`super::tag`]).
    ///
    /// `status` is the enhanced status code (RFC 3463) found in its text
    /// parts only when it is unambiguous: every code written there (such as
    /// `5.1.1` in `550 5.1.1 User unknown` or qmail's `(#5.1.1)`) is the
    /// same one. No code, or two different ones, gives `None`. A message
    /// that is not a bounce at all (an automatic reply sent to the return
    /// path) is read as `Unstructured` too, most often with no status.
    Unstructured { status: Option<Status> },
}

/// A delivery status notification: its recipients, in the report's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The server that wrote the report (`Reporting-MTA`, without its
    /// `dns;` type), when it says.
    pub reporting_mta: Option<String>,
    /// At least one.
    pub recipients: Vec<RecipientReport>,
}

/// What a report says about one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientReport {
    /// The address the reporting server tried (`Final-Recipient`).
    pub final_recipient: Recipient,
    /// The address as the sender gave it, when the server kept it
    /// (`Original-Recipient`).
    pub original_recipient: Option<Recipient>,
    pub action: Action,
    pub status: Status,
    /// The server that answered, without its `dns;` type (`Remote-MTA`).
    pub remote_mta: Option<String>,
    /// What the remote server said, without its `smtp;` type, unfolded
    /// (`Diagnostic-Code`).
    pub diagnostic: Option<String>,
}

/// A recipient as a report names it: an address type and an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// Lowercase, `rfc822` for a mail address (RFC 3464, 2.3.2).
    pub address_type: String,
    /// Without angle brackets or comments.
    pub address: String,
}

impl Recipient {
    /// The mail address, if the report gives one (`rfc822;`).
    pub fn mail_address(&self) -> Option<&str> {
        (self.address_type == "rfc822").then_some(self.address.as_str())
    }
}

/// What the reporting server did for a recipient (RFC 3464, 2.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Not delivered, and will not be.
    Failed,
    /// Not delivered yet; the server keeps trying.
    Delayed,
    Delivered,
    /// Passed on to a system that sends no reports.
    Relayed,
    /// Delivered, and forwarded to several addresses.
    Expanded,
}

impl Action {
    fn parse(value: &str) -> Option<Self> {
        let actions = [
            ("failed", Action::Failed),
            ("delayed", Action::Delayed),
            ("delivered", Action::Delivered),
            ("relayed", Action::Relayed),
            ("expanded", Action::Expanded),
        ];
        actions
            .into_iter()
            .find(|(name, _)| value.eq_ignore_ascii_case(name))
            .map(|(_, action)| action)
    }
}

/// Why a message could not be read as a bounce. The text names the rule,
/// never a value from the message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DsnError {
    #[error("the message is {size} bytes, over the limit of {max} bytes for a bounce")]
    TooLarge { size: usize, max: usize },
    #[error("not a mail message: it has no From header")]
    NotAMessage,
    #[error("malformed MIME: {0}")]
    MalformedMime(&'static str),
    #[error("unreadable delivery-status part: {}", list(.0))]
    Unreadable(Vec<Problem>),
    #[error("the delivery-status part names no recipient")]
    NoRecipient,
}

/// One problem in a delivery-status part, at a line of that part
/// (counted from 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub problem: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.problem)
    }
}

fn list(problems: &[Problem]) -> String {
    let problems: Vec<String> = problems.iter().map(Problem::to_string).collect();
    problems.join("; ")
}

impl Bounce {
    /// Reads one bounce message, raw RFC 5322 bytes.
    ///
    /// A message with a `message/delivery-status` part is a [`Report`]
    /// (whatever its top-level type); one without is
    /// [`Bounce::Unstructured`], unless it declares itself a delivery
    /// report (`multipart/report; report-type=delivery-status`).
    ///
    /// # Errors
    /// [`DsnError`]: over [`MAX_SIZE`]; a multipart boundary over 300
    /// characters anywhere (both refused before any parsing); no From
    /// header (not a mail message); a multipart without a boundary, whose
    /// boundary never starts a line, or a delivery report without its
    /// delivery-status part; a
    /// delivery-status part with lines that are not fields, a recipient
    /// block without `Final-Recipient`, `Action` or `Status`, or values that
    /// break their rule (every problem at once); no recipient block.
    pub fn parse(raw: &[u8]) -> Result<Bounce, DsnError> {
        if raw.len() > MAX_SIZE {
            return Err(DsnError::TooLarge {
                size: raw.len(),
                max: MAX_SIZE,
            });
        }
        if has_overlong_boundary(raw) {
            return Err(DsnError::MalformedMime(
                "a multipart boundary over 300 characters, or in RFC 2231 pieces",
            ));
        }
        let message = MessageParser::new()
            .parse(raw)
            .ok_or(DsnError::NotAMessage)?;
        let root = message.root_part();
        if !root
            .headers()
            .iter()
            .any(|header| header.name().eq_ignore_ascii_case("from"))
        {
            return Err(DsnError::NotAMessage);
        }
        let mut declares_report = false;
        if let Some(content_type) = root.content_type()
            && content_type.ctype().eq_ignore_ascii_case("multipart")
        {
            let Some(boundary) = content_type.attribute("boundary") else {
                return Err(DsnError::MalformedMime(
                    "a multipart message without a boundary",
                ));
            };
            let delimiter = format!("--{boundary}");
            if !starts_a_line(raw, delimiter.as_bytes()) {
                return Err(DsnError::MalformedMime(
                    "the multipart boundary never appears",
                ));
            }
            declares_report = content_type
                .subtype()
                .is_some_and(|subtype| subtype.eq_ignore_ascii_case("report"))
                && content_type
                    .attribute("report-type")
                    .is_some_and(|kind| kind.eq_ignore_ascii_case("delivery-status"));
        }
        match delivery_status(&message) {
            Some(part) => fields::read_report(&String::from_utf8_lossy(part)).map(Bounce::Report),
            None if declares_report => Err(DsnError::MalformedMime(
                "a delivery report without its message/delivery-status part",
            )),
            None => Ok(Bounce::Unstructured {
                status: unambiguous_status(&message),
            }),
        }
    }
}

/// Longest multipart boundary read. RFC 2046 allows 70 characters; some
/// servers write their host name in it. The MIME parser's search for a
/// boundary costs its length at each position of the message: 300
/// characters over a megabyte is a few milliseconds, 200,000 is seconds.
const MAX_BOUNDARY: usize = 300;

/// Whether any `boundary=` parameter in the message, at any depth, is
/// longer than [`MAX_BOUNDARY`] (or is split in RFC 2231 pieces, which no
/// mail server writes for a boundary and which would join into a long one).
/// Each occurrence costs at most `MAX_BOUNDARY` steps.
fn has_overlong_boundary(raw: &[u8]) -> bool {
    const NAME: &[u8] = b"boundary";
    raw.windows(NAME.len())
        .enumerate()
        .filter(|(_, window)| window.eq_ignore_ascii_case(NAME))
        .any(|(at, _)| {
            let rest = &raw[at + NAME.len()..];
            match rest.first() {
                Some(b'*') => true,
                Some(b'=') => {
                    let value = &rest[1..];
                    let length = match value.strip_prefix(b"\"") {
                        Some(quoted) => quoted
                            .iter()
                            .take(MAX_BOUNDARY + 1)
                            .take_while(|&&byte| byte != b'"')
                            .count(),
                        None => value
                            .iter()
                            .take(MAX_BOUNDARY + 1)
                            .take_while(|byte| !b"; \t\r\n".contains(byte))
                            .count(),
                    };
                    length > MAX_BOUNDARY
                }
                _ => false,
            }
        })
}

/// Whether a line of `raw` starts with `prefix`, as a multipart delimiter
/// does: linear in `raw` whatever the boundary a stranger chose.
fn starts_a_line(raw: &[u8], prefix: &[u8]) -> bool {
    raw.split(|&byte| byte == b'\n')
        .any(|line| line.starts_with(prefix))
}

/// The body of the message's first `message/delivery-status` part (or
/// RFC 6533's `message/global-delivery-status`), not looking into attached
/// messages: the returned original cannot pass for the report.
fn delivery_status<'a>(message: &'a Message<'_>) -> Option<&'a [u8]> {
    message
        .parts
        .iter()
        .find(|part| {
            part.content_type().is_some_and(|content_type| {
                content_type.ctype().eq_ignore_ascii_case("message")
                    && content_type.subtype().is_some_and(|subtype| {
                        subtype.eq_ignore_ascii_case("delivery-status")
                            || subtype.eq_ignore_ascii_case("global-delivery-status")
                    })
            })
        })
        .map(|part| part.contents())
}

/// The one enhanced status code that the message's text parts write, if
/// they write exactly one (any number of times).
fn unambiguous_status(message: &Message<'_>) -> Option<Status> {
    let mut found: Option<Status> = None;
    for part in message.text_bodies() {
        let Some(text) = part.text_contents() else {
            continue;
        };
        for status in statuses_in(text) {
            match found {
                None => found = Some(status),
                Some(seen) if seen == status => {}
                Some(_) => return None,
            }
        }
    }
    found
}

#[cfg(test)]
mod tests;
