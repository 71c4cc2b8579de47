//! The status events of an alert's life, as the dispatch software reads
//! them (`schema/event.v2.json`): what changed ([`Status`]), for which
//! publisher's alert and référent ([`StatusEvent`]), and the bounded buffer
//! they are handed over through ([`StatusSink`]).
//!
//! Each event's routing key is `<publisher>.<status>`, so that each dispatch
//! software binds (and RabbitMQ's topic permissions let it bind) only its
//! own alerts' events.
//!
//! This module owns the events' shape and their hand-over; it never touches
//! the broker (`amqp::status` takes them from the buffer and publishes
//! them) and never waits: a full buffer drops the event, and says so to the
//! caller, who counts it. An event carries ids, never patient data.

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::mpsc;

use crate::registry::Referent;

/// Events waiting for the broker; past this many, new ones are dropped
/// (and counted) rather than holding up deliveries.
const BUFFER: usize = 10_000;

/// A change in an alert's fate; the last word of its event's routing key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// A référent's mail server accepted its email.
    Delivered,
    /// A référent acknowledged the alert.
    Acknowledged,
    /// A référent said what they did about it (the "suite donnée").
    FollowedUp,
    /// Nobody acknowledged in time: the next step of the chain was emailed.
    Escalated,
    /// The alert went to the dead-letter queue (with the reason).
    DeadLettered,
    /// The chain ended with nobody acknowledging.
    Unacknowledged,
    /// A référent's mailbox refused its email for good (a bounce, with its
    /// status code): the alert was sent on.
    Bounced,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Acknowledged => "acknowledged",
            Self::FollowedUp => "followed_up",
            Self::Escalated => "escalated",
            Self::DeadLettered => "dead_lettered",
            Self::Unacknowledged => "unacknowledged",
            Self::Bounced => "bounced",
        }
    }
}

/// One event, as published (`schema/event.v2.json`). It borrows what it
/// says, and is encoded at once into the one allocation that waits for
/// the broker ([`Encoded`]).
#[derive(Debug, Clone, Serialize)]
pub struct StatusEvent<'a> {
    /// The broker user that published the alert (empty when its message
    /// named none): whose alert it is, and the first word of the routing key.
    pub publisher: &'a str,
    /// `null` for a message that was not an alert and had no valid id.
    pub alert_id: Option<&'a str>,
    pub status: Status,
    /// When it happened, RFC 3339, UTC.
    #[serde(serialize_with = "rfc3339")]
    pub at: OffsetDateTime,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referent: Option<ReferentRef<'a>>,
    /// The network nobody acknowledged in (`unacknowledged`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<&'a str>,
    /// Why it was dead-lettered (a dead-letter reason).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
    /// What the référent did (`followed_up`): a code of the closed list
    /// of `follow_up::FollowUp`, never free text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<&'a str>,
    /// The bounce's enhanced status code (`bounced`), e.g. `5.1.1`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smtp_status: Option<&'a str>,
}

/// Who, by the registry's ids: never an address.
#[derive(Debug, Clone, Serialize)]
pub struct ReferentRef<'a> {
    pub id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organisation: Option<&'a str>,
    pub network: &'a str,
}

fn rfc3339<S: serde::Serializer>(at: &OffsetDateTime, serializer: S) -> Result<S::Ok, S::Error> {
    let mut text = [0u8; 32];
    let mut cursor = std::io::Cursor::new(&mut text[..]);
    let written = match at.format_into(&mut cursor, &Rfc3339) {
        Ok(_) => usize::try_from(cursor.position()).unwrap_or(0),
        Err(_) => 0,
    };
    serializer.serialize_str(std::str::from_utf8(&text[..written]).unwrap_or_default())
}

impl<'a> StatusEvent<'a> {
    pub fn new(publisher: &'a str, alert_id: Option<&'a str>, status: Status) -> Self {
        Self {
            publisher,
            alert_id,
            status,
            at: OffsetDateTime::now_utc(),
            referent: None,
            network: None,
            reason: None,
            outcome: None,
            smtp_status: None,
        }
    }

    pub fn for_referent(mut self, referent: &'a Referent) -> Self {
        self.referent = Some(ReferentRef {
            id: referent.id().as_str(),
            organisation: referent.organisation(),
            network: referent.network(),
        });
        self
    }

    pub fn because(mut self, reason: &'a str) -> Self {
        self.reason = Some(reason);
        self
    }

    /// The event as it will be published.
    pub fn encode(&self) -> Encoded {
        let mut body = Vec::with_capacity(224);
        // Serialising plain strings and a date into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut body, self);
        Encoded {
            routing_key: routing_key(self.publisher, self.status),
            body,
        }
    }
}

/// `<publisher>.<status>`: the publisher is one word of the key whatever
/// its name holds (every character but letters, digits, `-` and `_` is
/// written `=` and its bytes in hexadecimal, so that neither a dot nor a
/// wildcard of another's name can reach into a binding of one's own);
/// `=` stands for no publisher.
pub fn routing_key(publisher: &str, status: Status) -> String {
    let mut key = String::with_capacity(publisher.len() + 16);
    if publisher.is_empty() {
        key.push('=');
    }
    for byte in publisher.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
            key.push(char::from(byte));
        } else {
            key.push_str(&format!("={byte:02X}"));
        }
    }
    key.push('.');
    key.push_str(status.as_str());
    key
}

/// An event ready to publish: its routing key and its JSON body.
#[derive(Debug)]
pub struct Encoded {
    pub routing_key: String,
    pub body: Vec<u8>,
}

/// Where events are handed over; cheap to clone.
#[derive(Clone)]
pub struct StatusSink {
    sender: mpsc::Sender<Encoded>,
}

impl StatusSink {
    /// The sink, and the receiving end that `amqp::status::publish_events`
    /// drains.
    pub fn new() -> (Self, mpsc::Receiver<Encoded>) {
        let (sender, receiver) = mpsc::channel(BUFFER);
        (Self { sender }, receiver)
    }

    /// Hands `event` over without waiting; `false` when it had to be
    /// dropped (the buffer is full).
    pub fn send(&self, event: &StatusEvent<'_>) -> bool {
        self.sender.try_send(event.encode()).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_routing_key_is_the_publisher_then_the_status_each_one_word() {
        assert_eq!(
            routing_key("sos75-dispatch", Status::Delivered),
            "sos75-dispatch.delivered"
        );
        assert_eq!(
            routing_key("sos.75", Status::Acknowledged),
            "sos=2E75.acknowledged"
        );
        assert_eq!(routing_key("a#*", Status::Escalated), "a=23=2A.escalated");
        assert_eq!(routing_key("", Status::DeadLettered), "=.dead_lettered");
    }

    #[test]
    fn a_follow_up_event_says_what_was_done_by_its_code() {
        let mut event = StatusEvent::new("sos75-dispatch", Some("SOS75-1"), Status::FollowedUp);
        event.outcome = Some("injoignable");

        let encoded = event.encode();

        let mut body: serde_json::Value = serde_json::from_slice(&encoded.body).unwrap();
        body.as_object_mut().unwrap().remove("at");
        assert_eq!(encoded.routing_key, "sos75-dispatch.followed_up");
        assert_eq!(
            body,
            serde_json::json!({ "publisher": "sos75-dispatch", "alert_id": "SOS75-1",
                                "status": "followed_up", "outcome": "injoignable" })
        );
    }

    #[test]
    fn an_event_says_whose_alert_it_is() {
        let event = StatusEvent::new("sos75-dispatch", Some("SOS75-1"), Status::Delivered);

        let encoded = event.encode();

        let body: serde_json::Value = serde_json::from_slice(&encoded.body).unwrap();
        assert_eq!(encoded.routing_key, "sos75-dispatch.delivered");
        assert_eq!(body["publisher"], "sos75-dispatch");
        assert_eq!(body["alert_id"], "SOS75-1");
    }
}
