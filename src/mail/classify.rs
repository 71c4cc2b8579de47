//! What a failed send means: the one classification of send failures, from
//! the SMTP reply codes (RFC 5321, with the step the reply answered), that
//! every retry decision rests on.
//!
//! It never retries or decides an alert's fate: it says whether trying
//! again could help, and `relay` decides.

use thiserror::Error;

use crate::mail::smtp::{self, Step};

/// Why an email was not accepted, split by what should happen next.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SendError {
    /// Worth trying again later: a 4xx reply, a refused, reset or timed-out
    /// connection, a TLS handshake cut short.
    #[error("{0}")]
    Transient(String),
    /// Trying again would fail the same way: a 5xx reply (unknown mailbox,
    /// message refused).
    #[error("{0}")]
    Permanent(String),
}

impl SendError {
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient(_))
    }

    /// The failure class as it appears in metrics and logs.
    pub fn class(&self) -> &'static str {
        match self {
            Self::Transient(_) => "transient",
            Self::Permanent(_) => "rejected",
        }
    }
}

/// The one place where a send failure is classified. Only a 5xx reply to
/// the transaction itself (sender, recipient, message) is permanent: trying
/// again would fail the same way. Everything else waits and is tried again
/// rather than the alert being given up on: a 4xx reply, a connection
/// refused, reset or timed out, TLS, and a refusal before the transaction
/// (greeting, EHLO, STARTTLS, AUTH), which says something about the server
/// or relais's settings, not about this email. An address that the server
/// cannot take in any form (a non-ASCII mailbox without SMTPUTF8) is
/// permanent too.
pub fn classify(error: smtp::Error) -> SendError {
    let text = format!("SMTP: {error}");
    match &error {
        smtp::Error::Refused { step, reply }
            if reply.code >= 500
                && matches!(step, Step::Mail | Step::Rcpt | Step::Data | Step::Message) =>
        {
            SendError::Permanent(text)
        }
        // No form of the address can be sent to this server, now or later.
        smtp::Error::Utf8Address => SendError::Permanent(text),
        _ => SendError::Transient(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::smtp::Reply;

    fn refused(step: Step, code: u16) -> smtp::Error {
        smtp::Error::Refused {
            step,
            reply: Reply {
                code,
                text: "5.1.1 <x@example.org>: refused".into(),
            },
        }
    }

    #[test]
    fn a_5xx_to_the_transaction_is_permanent() {
        for step in [Step::Mail, Step::Rcpt, Step::Data, Step::Message] {
            let failure = classify(refused(step, 550));
            assert!(!failure.is_transient(), "{step}: {failure}");
            assert_eq!(failure.class(), "rejected");
        }
    }

    #[test]
    fn a_4xx_at_any_step_is_transient() {
        for step in [
            Step::Greeting,
            Step::Hello,
            Step::Mail,
            Step::Rcpt,
            Step::Message,
        ] {
            assert!(classify(refused(step, 451)).is_transient(), "{step}");
        }
    }

    #[test]
    fn a_5xx_before_the_transaction_is_transient_since_it_is_about_the_server_or_relais() {
        for step in [Step::Greeting, Step::Hello, Step::StartTls, Step::Auth] {
            let failure = classify(refused(step, 535));
            assert!(failure.is_transient(), "{step}: {failure}");
            assert_eq!(failure.class(), "transient");
        }
    }

    #[test]
    fn a_mailbox_the_server_cannot_take_in_any_form_is_permanent() {
        let failure = classify(smtp::Error::Utf8Address);
        assert_eq!(failure.class(), "rejected");
        assert!(failure.to_string().contains("SMTPUTF8"), "{failure}");
    }

    #[test]
    fn a_reply_that_does_not_come_in_time_is_transient() {
        let failure = classify(smtp::Error::Timeout {
            step: Step::Message,
            after: std::time::Duration::from_secs(600),
        });
        assert!(failure.is_transient());
        assert_eq!(
            failure.to_string(),
            "SMTP: no answer at end of message within 10m"
        );
    }

    #[test]
    fn a_network_failure_is_transient_and_says_where_it_happened() {
        let failure = classify(smtp::Error::Io {
            step: Step::Message,
            source: std::io::Error::from(std::io::ErrorKind::ConnectionReset),
        });
        assert!(failure.is_transient());
        assert!(
            failure
                .to_string()
                .starts_with("SMTP: network error at end of message: "),
            "{failure}"
        );
    }
}
