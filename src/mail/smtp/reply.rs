//! The server's replies (RFC 5321 §4.2): a three-digit code and its text,
//! on one line or several (`250-…` then `250 …`).
//!
//! It parses one reply line at a time, from bytes that came off the wire;
//! it never reads the socket (`connection` does) and never judges a reply
//! beyond positive or negative (`mail::classify` does).

use std::fmt;

/// A server's reply: its code and text (lines joined by a space).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub text: String,
}

impl Reply {
    pub(super) fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.text)
    }
}

/// `ddd-text` or `ddd text` (CRLF or LF), as (code, last line?, text).
pub(super) fn parse_line(line: &[u8]) -> Option<(u16, bool, &str)> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
