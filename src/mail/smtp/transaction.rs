//! The mail transaction (RFC 5321 §3.3): the envelope (`MAIL FROM`,
//! `RCPT TO`) and the message (`DATA`, dot-stuffed, or `BDAT` with
//! CHUNKING), pipelined when the server allows it.
//!
//! Addresses go in the form the server takes (an internationalised domain
//! in its ASCII form unless SMTPUTF8 is needed and offered); a message with
//! 8-bit bytes goes only to a server that takes them. Every reply of a
//! pipelined batch is read before judging, so that the session stays in
//! step. It never retries (`pool` and `relay` decide).

use std::borrow::Cow;
use std::io::Write as _;
use std::time::Duration;

use lettre::address::Envelope;

use super::{Connection, Error, Reply, Step};
use crate::fence::Fence;

impl Connection {
    /// Hands one email to the server; returns its final reply once it
    /// accepted the message. `message` is the formatted email (CRLF line
    /// endings); it is dot-stuffed here.
    ///
    /// Addresses go in the form the server takes: an internationalised
    /// domain in its ASCII form (IDNA) unless the address needs SMTPUTF8
    /// anyway (a non-ASCII local part) and the server offers it.
    ///
    /// The message is handed over only if `fence` still holds right
    /// before it is written: a relais that lost its standby lease while it
    /// waited for the server's replies sends nothing more.
    ///
    /// After an error, [`Connection::recover`] says whether the connection
    /// can serve again.
    ///
    /// # Errors
    /// [`Error::Refused`] with the server's reply, [`Error::Fenced`], or
    /// the failure.
    pub async fn send(
        &mut self,
        envelope: &Envelope,
        message: &[u8],
        fence: &Fence,
    ) -> Result<Reply, Error> {
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
        let sent = self.transaction(&mut out, steps, message, fence).await;
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
        fence: &Fence,
    ) -> Result<Reply, Error> {
        if self.extensions.pipelining && self.extensions.chunking {
            // The server reads a chunk by its length whatever it thinks of
            // the envelope, so a refused recipient leaves the connection in
            // step; it then refuses the BDAT too.
            let _ = write!(out, "BDAT {} LAST\r\n", message.len());
            out.extend_from_slice(message);
            steps.push(Step::Message);
            if !fence.holds() {
                return Err(Error::Fenced);
            }
            self.wire.write(out, Step::Mail).await?;
            // The server may hold the envelope's replies until the end of
            // the message (RFC 2920 lets it): the whole batch has the final
            // reply's time.
            return self.replies(&steps, self.wire.timeouts.final_reply).await;
        }
        out.extend_from_slice(b"DATA\r\n");
        steps.push(Step::Data);
        if self.extensions.pipelining {
            self.wire.write(out, Step::Mail).await?;
            self.replies(&steps, self.wire.timeouts.step).await?;
        } else {
            let commands = std::mem::take(out);
            for (command, step) in commands.split_inclusive(|b| *b == b'\n').zip(steps) {
                self.wire.write(command, step).await?;
                self.wire.expect(step).await?;
            }
        }
        out.clear();
        dot_stuff(message, out);
        if !fence.holds() {
            // The server waits for the message after its 354: the session
            // is out of step, and `recover` does not reuse it.
            return Err(Error::Fenced);
        }
        self.wire.write(out, Step::Message).await?;
        self.wire.expect(Step::Message).await
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
                reply = self.wire.read_reply_unbounded(step, None) => reply,
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
}
