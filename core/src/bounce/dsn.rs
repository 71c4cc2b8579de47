//! One bounce message, as a mail server hands it over, read into what it
//! says: a delivery status notification (RFC 3464) with one
//! [`RecipientReport`] per recipient, or an unstructured bounce that the
//! caller must match by its return path's tag alone.
//!
//! `mail-parser` reads the MIME structure; the `message/delivery-status`
//! part (header-like blocks: the per-message fields, a blank line, then one
//! block per recipient) is read here. A message over [`MAX_SIZE`] is
//! refused before any parsing. Errors name the field and the rule and the
//! line of the delivery-status part, never a value: a bounce quotes
//! addresses and whatever the remote server said.

use std::fmt;

use mail_parser::{Message, MessageParser, MimeHeaders};
use thiserror::Error;

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

/// The class of an enhanced status code: its first digit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// 2: delivered.
    Success,
    /// 4: not delivered yet; the same message may get through later.
    Transient,
    /// 5: will not be delivered as it is.
    Permanent,
}

/// An enhanced mail system status code, `class.subject.detail` (RFC 3463):
/// `5.1.1` is a permanent failure (5) of the address (1): no such mailbox (1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    class: Class,
    subject: u16,
    detail: u16,
}

impl Status {
    /// Reads `class.subject.detail`: a class of 2, 4 or 5, then one to three
    /// digits twice, nothing around them.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split('.');
        let (Some(class), Some(subject), Some(detail), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let class = match class {
            "2" => Class::Success,
            "4" => Class::Transient,
            "5" => Class::Permanent,
            _ => return None,
        };
        let number = |digits: &str| {
            let valid =
                (1..=3).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
            valid.then(|| digits.parse::<u16>().ok()).flatten()
        };
        Some(Status {
            class,
            subject: number(subject)?,
            detail: number(detail)?,
        })
    }

    pub fn class(&self) -> Class {
        self.class
    }

    /// The second number: what the status is about (1 addressing,
    /// 2 mailbox, 4 routing, 7 security…).
    pub fn subject(&self) -> u16 {
        self.subject
    }

    pub fn detail(&self) -> u16 {
        self.detail
    }

    /// Class 5: the address will not take this mail as it is.
    pub fn is_permanent(&self) -> bool {
        self.class == Class::Permanent
    }

    /// Class 4: the failure may pass.
    pub fn is_transient(&self) -> bool {
        self.class == Class::Transient
    }

    /// Class 2: delivered.
    pub fn is_success(&self) -> bool {
        self.class == Class::Success
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let class = match self.class {
            Class::Success => 2,
            Class::Transient => 4,
            Class::Permanent => 5,
        };
        write!(f, "{class}.{}.{}", self.subject, self.detail)
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
            Some(part) => read_report(&String::from_utf8_lossy(part)).map(Bounce::Report),
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

/// Every enhanced status code written in free text: `d.d{1,3}.d{1,3}` with
/// a class of 2, 4 or 5, not glued to a letter, a digit or a dot (so not a
/// part of `192.0.2.7` or of a version number).
fn statuses_in(text: &str) -> impl Iterator<Item = Status> + '_ {
    let bytes = text.as_bytes();
    (0..bytes.len()).filter_map(move |start| {
        if !bytes[start].is_ascii_digit() {
            return None;
        }
        let before = start.checked_sub(1).map(|i| bytes[i]);
        if before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'.') {
            return None;
        }
        let mut end = start;
        let mut dots = 0;
        while end < bytes.len() && (bytes[end].is_ascii_digit() || bytes[end] == b'.') {
            if bytes[end] == b'.' {
                if dots == 2 {
                    break;
                }
                dots += 1;
            }
            end += 1;
        }
        let glued_after = match bytes.get(end) {
            Some(b) if b.is_ascii_alphabetic() => true,
            Some(b'.') => bytes.get(end + 1).is_some_and(u8::is_ascii_digit),
            _ => false,
        };
        if glued_after {
            return None;
        }
        Status::parse(&text[start..end])
    })
}

/// One `Name: value` line of a delivery-status block, unfolded.
struct Field {
    /// Lowercase.
    name: String,
    value: String,
    line: usize,
}

struct Block {
    first_line: usize,
    fields: Vec<Field>,
}

impl Block {
    fn get(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|field| field.name == name)
    }

    fn count(&self, name: &str) -> usize {
        self.fields
            .iter()
            .filter(|field| field.name == name)
            .count()
    }
}

/// Reads a delivery-status part: the per-message block (unless the first
/// block already names a `Final-Recipient`, as a few servers write it),
/// then the recipient blocks.
fn read_report(text: &str) -> Result<Report, DsnError> {
    let blocks = blocks(text).map_err(DsnError::Unreadable)?;
    let mut blocks = blocks.into_iter().peekable();
    let per_message = match blocks.peek() {
        Some(first) if first.get("final-recipient").is_none() => blocks.next(),
        _ => None,
    };
    let mut problems = Vec::new();
    let mut recipients = Vec::new();
    for block in blocks {
        match recipient(&block) {
            Ok(report) => recipients.push(report),
            Err(mut found) => problems.append(&mut found),
        }
    }
    if !problems.is_empty() {
        return Err(DsnError::Unreadable(problems));
    }
    if recipients.is_empty() {
        return Err(DsnError::NoRecipient);
    }
    let reporting_mta = per_message
        .as_ref()
        .and_then(|block| block.get("reporting-mta"))
        .map(|field| after_type(&field.value));
    Ok(Report {
        reporting_mta,
        recipients,
    })
}

/// Splits the part into blocks of fields at blank lines, unfolding
/// continued lines (those starting with a space or a tab).
fn blocks(text: &str) -> Result<Vec<Block>, Vec<Problem>> {
    let mut blocks = Vec::new();
    let mut current: Option<Block> = None;
    let mut problems = Vec::new();
    for (index, line) in text.split('\n').enumerate() {
        let number = index + 1;
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            blocks.extend(current.take());
            continue;
        }
        if line.starts_with([' ', '\t']) {
            match current.as_mut().and_then(|block| block.fields.last_mut()) {
                Some(field) => {
                    field.value.push(' ');
                    field.value.push_str(line.trim());
                }
                None => problems.push(Problem {
                    line: number,
                    problem: "a continued line with no field before it".into(),
                }),
            }
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            problems.push(Problem {
                line: number,
                problem: "not a `Name: value` field".into(),
            });
            continue;
        };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
            problems.push(Problem {
                line: number,
                problem: "a field name must be printable ASCII without spaces".into(),
            });
            continue;
        }
        current
            .get_or_insert_with(|| Block {
                first_line: number,
                fields: Vec::new(),
            })
            .fields
            .push(Field {
                name: name.to_ascii_lowercase(),
                value: value.trim().to_owned(),
                line: number,
            });
    }
    blocks.extend(current);
    if problems.is_empty() {
        Ok(blocks)
    } else {
        Err(problems)
    }
}

/// One recipient block, or every problem it has. `Final-Recipient`,
/// `Action` and `Status` must appear once; other fields may repeat (Exim
/// writes two `Remote-MTA`), the first is kept.
fn recipient(block: &Block) -> Result<RecipientReport, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut required = |name: &'static str, label: &str| -> Option<&Field> {
        match block.count(name) {
            0 => {
                problems.push(Problem {
                    line: block.first_line,
                    problem: format!("the recipient block has no {label} field"),
                });
                None
            }
            1 => block.get(name),
            _ => {
                problems.push(Problem {
                    line: block.first_line,
                    problem: format!("the recipient block has more than one {label} field"),
                });
                None
            }
        }
    };
    let final_recipient = required("final-recipient", "Final-Recipient");
    let action = required("action", "Action");
    let status = required("status", "Status");

    let final_recipient = final_recipient.and_then(|field| {
        address(field, "Final-Recipient")
            .map_err(|problem| problems.push(problem))
            .ok()
    });
    let original_recipient = block.get("original-recipient").and_then(|field| {
        address(field, "Original-Recipient")
            .map_err(|problem| problems.push(problem))
            .ok()
    });
    let action = action.and_then(|field| {
        let action = Action::parse(strip_comments(&field.value).trim());
        if action.is_none() {
            problems.push(Problem {
                line: field.line,
                problem: "Action must be failed, delayed, delivered, relayed or expanded".into(),
            });
        }
        action
    });
    let status = status.and_then(|field| {
        let status = Status::parse(strip_comments(&field.value).trim());
        if status.is_none() {
            problems.push(Problem {
                line: field.line,
                problem: "Status must be an enhanced status code, class.subject.detail (RFC 3463)"
                    .into(),
            });
        }
        status
    });
    let (Some(final_recipient), Some(action), Some(status), true) =
        (final_recipient, action, status, problems.is_empty())
    else {
        return Err(problems);
    };
    Ok(RecipientReport {
        final_recipient,
        original_recipient,
        action,
        status,
        remote_mta: block
            .get("remote-mta")
            .map(|field| after_type(&field.value)),
        diagnostic: block
            .get("diagnostic-code")
            .map(|field| after_type(&field.value)),
    })
}

/// `rfc822; someone@example.org`, comments and angle brackets removed.
fn address(field: &Field, label: &str) -> Result<Recipient, Problem> {
    let value = strip_comments(&field.value);
    let problem = |rule: &str| Problem {
        line: field.line,
        problem: format!("{label} {rule}"),
    };
    let (address_type, address) = value.split_once(';').ok_or_else(|| {
        problem("must be `type; address` (such as `rfc822; someone@example.org`)")
    })?;
    let address_type = address_type.trim().to_ascii_lowercase();
    let address = address.trim();
    let address = address
        .strip_prefix('<')
        .and_then(|inner| inner.strip_suffix('>'))
        .unwrap_or(address)
        .trim();
    if address_type.is_empty() || address.is_empty() {
        return Err(problem("must name an address type and an address"));
    }
    Ok(Recipient {
        address_type,
        address: address.to_owned(),
    })
}

/// The text after a `type;` prefix (`dns; mx.example.org`,
/// `smtp; 550 5.1.1 …`), or all of it when there is none.
fn after_type(value: &str) -> String {
    value
        .split_once(';')
        .map_or(value, |(_, text)| text)
        .trim()
        .to_owned()
}

/// The value without its RFC 5322 comments (parenthesised, nestable, not
/// inside a quoted string; a backslash quotes the next character).
fn strip_comments(value: &str) -> String {
    let mut kept = String::with_capacity(value.len());
    let mut depth = 0usize;
    let mut quoted = false;
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted || depth > 0 => {
                let next = chars.next();
                if depth == 0 {
                    kept.push(c);
                    kept.extend(next);
                }
            }
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => depth -= 1,
            _ if depth > 0 => {}
            '"' => {
                quoted = !quoted;
                kept.push(c);
            }
            _ => kept.push(c),
        }
    }
    kept
}

#[cfg(test)]
#[path = "dsn_tests.rs"]
mod tests;
