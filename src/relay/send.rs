//! One email to one référent: rendered (with its acknowledgement and
//! absence links when the pages are served), handed to the mailer with the in-process retries
//! of `retry.immediate`, and recorded in the store as soon as a server
//! accepted it.
//!
//! It decides nothing about the alert: the failure that remains is given
//! back to [`deliver`](super::deliver) or [`escalate`](super::escalate),
//! which weigh it with the others.

use backon::{ExponentialBuilder, Retryable};
use time::OffsetDateTime;

use super::Relay;
use crate::geography::Description;
use crate::mail::{Addressed, PageLinks, Published, ReturnPaths, SendError, Wording};
use crate::registry::Referent;
use crate::store::{Digest, SentEmail, consent_record};

/// What a delivery's record says of where it came from: the content of
/// the alert (its keyed digest) and the registry that chose the référent.
#[derive(Clone, Copy)]
pub(super) struct Origin<'a> {
    pub(super) content: Digest,
    /// The registry's SHA-256 ([`crate::registry::Registry::digest`]).
    pub(super) registry: &'a str,
}

impl Relay {
    /// Emails one référent, retrying transient failures in process, and
    /// records the delivery; `Some` is the failure that remains.
    pub(super) async fn send(
        &self,
        published: Published<'_>,
        referent: &Referent,
        wording: Wording<'_>,
        place: &Description,
        addressed: Addressed<'_>,
        origin: Origin<'_>,
    ) -> Option<SendError> {
        // A failure to build the email is relais's (or its registry's), not
        // a mail server's refusal: it is never `rejected`. It is retried, so
        // that a registry fixed and reloaded meanwhile delivers the alert.
        let Published { alert, publisher } = published;
        let ack_link = self
            .ack
            .as_ref()
            .and_then(|links| links.link(published, referent));
        let absence_link = self
            .ack
            .as_ref()
            .and_then(|links| links.absence_link(referent.id().as_str()));
        let links = PageLinks {
            ack: ack_link.as_deref(),
            absence: absence_link.as_deref(),
        };
        let email = match self
            .renderer
            .render(published, referent, wording, place, addressed, links)
        {
            Ok(email) => email,
            Err(error) => {
                let error = SendError::Transient(format!(
                    "cannot build the email for référent {}: {error}",
                    referent.id()
                ));
                self.events.email_failed(alert, referent, &error);
                return Some(error);
            }
        };
        let (email, return_path) = match self.return_paths.as_deref().and_then(ReturnPaths::fresh) {
            Some((number, address)) => (email.returning_to(address), Some(number)),
            None => (email, None),
        };
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.retry.base)
            .with_max_times(self.retry.attempts.saturating_sub(1) as usize)
            .with_jitter();
        let sent = (|| self.mailer.send(&email))
            .retry(backoff)
            .when(SendError::is_transient)
            .notify(|error, wait| self.events.email_retrying(alert, referent, error, wait))
            .await;
        match sent {
            Ok(accepted) => {
                let delivered = matches!(addressed, Addressed::Directly | Addressed::OnBehalfOf(_));
                self.events
                    .email_sent(publisher, alert, referent, &accepted, delivered);
                let sent = SentEmail {
                    publisher: publisher.to_owned(),
                    alert_id: alert.id().to_string(),
                    referent_id: referent.id().to_string(),
                    network: Some(referent.network().to_owned()),
                    email: referent.email().to_string(),
                    message_id: email.message_id().to_owned(),
                    smtp_reply: accepted.reply,
                    delivered_at: OffsetDateTime::now_utc(),
                    consent: Some(consent_record(alert.consent())),
                    registry: Some(origin.registry.to_owned()),
                    return_path,
                };
                // The email is delivered whatever happens to the record; a
                // failed record only costs the dedup of a later redelivery.
                if let Err(error) = self.store.record(sent, origin.content).await {
                    self.events.record_failed(alert, referent, &error);
                }
                None
            }
            Err(error) => {
                self.events.email_failed(alert, referent, &error);
                Some(error)
            }
        }
    }
}
