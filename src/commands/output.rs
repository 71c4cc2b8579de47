//! What the subcommands print in common: text from outside (a mail
//! server's reply, a header a publisher wrote, a Unix user's name) made
//! safe for a terminal, the escalation steps' names as operators read
//! them, and which registry file is meant (its digest and label). It never
//! prints anything itself.

use std::fmt::Write as _;

use crate::registry::{DIGEST_SHOWN, Registry};
use crate::store::UNACKNOWLEDGED_STEP;

/// Which registry file this is, as operators are shown it: `registry
/// sha256:abcdef123456, version "2026-12-06 UNCCAS"` (or `, no version
/// label`).
pub(super) fn provenance(registry: &Registry) -> String {
    let digest = &registry.digest()[..DIGEST_SHOWN];
    match registry.version() {
        Some(version) => format!("registry sha256:{digest}, version {version:?}"),
        None => format!("registry sha256:{digest}, no version label"),
    }
}

/// What a step of escalation does, as operators read it.
pub(super) fn step_name(step: u8) -> &'static str {
    match step {
        1 => "deputies",
        2 => "fallback",
        UNACKNOWLEDGED_STEP => "unacknowledged",
        _ => "unknown",
    }
}

/// `text` with its control characters escaped (`\u{1b}`): a mail server's
/// reply or a header a publisher wrote cannot move the operator's cursor,
/// recolour the terminal or hide a line.
pub(super) fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            let _ = write!(escaped, "\\u{{{:x}}}", u32::from(c));
        } else {
            escaped.push(c);
        }
    }
    std::borrow::Cow::Owned(escaped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_in_what_the_cli_prints() {
        assert_eq!(printable("250 2.0.0 Ok"), "250 2.0.0 Ok");
        assert_eq!(
            printable("451 \u{1b}[2J\u{1b}[31mfake\rok\tx"),
            "451 \\u{1b}[2J\\u{1b}[31mfake\\u{d}ok\\u{9}x"
        );
        assert_eq!(printable("é à \u{85}"), "é à \\u{85}");
    }
}
