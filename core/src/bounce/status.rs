//! Enhanced mail system status codes (RFC 3463), `class.subject.detail`:
//! what a delivery report's `Status` field says, and what a bounce's free
//! text may quote.

use std::fmt;

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

/// Every enhanced status code written in free text: `d.d{1,3}.d{1,3}` with
/// a class of 2, 4 or 5, not glued to a letter, a digit or a dot (so not a
/// part of `192.0.2.7` or of a version number).
pub(super) fn statuses_in(text: &str) -> impl Iterator<Item = Status> + '_ {
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
