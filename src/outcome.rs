//! Turns an [`Outcome`] into broker actions, in the one order that loses
//! nothing: anything to publish (a retry, a dead letter) is published first,
//! with a publisher confirm, and the original delivery is acked only once the
//! broker confirmed. If the broker does not confirm, the delivery is
//! requeued, never dropped.
//!
//! The retry ladder: an alert that failed transiently for the n-th time goes
//! to the n-th retry queue; after the last one it is dead-lettered as
//! `exhausted`. The count travels with the message in `x-relais-attempts`.

use std::time::Duration;

use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions, BasicPublishOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel};
use thiserror::Error;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::handle::{Outcome, Reason};
use crate::telemetry::events::Events;
use crate::topology::Topology;

/// Header: why the alert was dead-lettered (`invalid`, `unroutable`, …).
pub const REASON_HEADER: &str = "x-relais-reason";
/// Header: the human-readable cause, with the SMTP reply where there is one.
pub const ERROR_HEADER: &str = "x-relais-error";
/// Header: how many times relais tried to deliver the alert.
pub const ATTEMPTS_HEADER: &str = "x-relais-attempts";
/// Header: when relais gave up on it (RFC 3339, UTC).
pub const FAILED_AT_HEADER: &str = "x-relais-failed-at";
/// Header: the routing key the alert was published with, kept while it
/// goes through the retry queues (which route it back by queue name).
pub const ROUTING_KEY_HEADER: &str = "x-relais-routing-key";

/// Longest `x-relais-error` kept; an SMTP reply can be long.
const ERROR_MAX_BYTES: usize = 2000;

#[derive(Debug, Error)]
pub enum PublishError {
    #[error("publish failed: {0}")]
    Broker(#[from] lapin::Error),
    #[error("the broker did not confirm the publish within {0:?}")]
    Timeout(Duration),
    #[error("the broker refused the publish (nack)")]
    Nacked,
    #[error("the broker could not route the publish to any queue")]
    Unroutable,
}

/// Publishes on a channel in confirm mode and waits for the broker's word.
#[derive(Clone)]
pub struct Publisher {
    channel: Channel,
    confirm_timeout: Duration,
}

impl Publisher {
    /// `channel` must have had `confirm_select` called on it.
    pub fn new(channel: Channel, confirm_timeout: Duration) -> Self {
        Self {
            channel,
            confirm_timeout,
        }
    }

    /// Publishes `mandatory`, and returns once the broker has confirmed that
    /// a queue holds the message.
    ///
    /// # Errors
    /// [`PublishError`] when the broker refused, could not route, did not
    /// confirm in time, or the channel failed.
    pub async fn publish_confirmed(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<(), PublishError> {
        let options = BasicPublishOptions {
            mandatory: true,
            ..BasicPublishOptions::default()
        };
        let confirm = self
            .channel
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                options,
                body,
                properties,
            )
            .await?;
        let confirmation = tokio::time::timeout(self.confirm_timeout, confirm)
            .await
            .map_err(|_| PublishError::Timeout(self.confirm_timeout))??;
        if confirmation.is_nack() {
            return Err(PublishError::Nacked);
        }
        if confirmation.take_message().is_some() {
            return Err(PublishError::Unroutable);
        }
        Ok(())
    }
}

/// Applies outcomes to deliveries.
#[derive(Clone)]
pub struct Settler {
    publisher: Publisher,
    topology: Topology,
    events: Events,
}

impl Settler {
    pub fn new(publisher: Publisher, topology: Topology, events: Events) -> Self {
        Self {
            publisher,
            topology,
            events,
        }
    }

    /// Acks, requeues, retries or dead-letters `delivery` as `outcome` says.
    /// Failures are logged, not returned: in every failure case the delivery
    /// stays with the broker, which delivers it again.
    pub async fn settle(&self, delivery: &Delivery, outcome: &Outcome) {
        let alert_id = alert_id(delivery);
        match outcome {
            Outcome::Delivered { .. } => self.ack(delivery, &alert_id).await,
            Outcome::Retry { error } => self.retry(delivery, &alert_id, error).await,
            Outcome::DeadLetter { reason, error } => {
                self.dead_letter_then_ack(delivery, &alert_id, *reason, error)
                    .await;
            }
        }
    }

    /// Sends the alert one step down the ladder, or dead-letters it as
    /// `exhausted` past the last step.
    async fn retry(&self, delivery: &Delivery, alert_id: &str, error: &str) {
        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
        let attempts = attempts(&headers) + 1;
        let step = usize::try_from(attempts - 1).unwrap_or(usize::MAX);
        let Some(queue) = self.topology.retries.get(step) else {
            return self
                .dead_letter_then_ack(delivery, alert_id, Reason::Exhausted, error)
                .await;
        };
        headers.insert(ATTEMPTS_HEADER.into(), AMQPValue::LongInt(attempts));
        headers.insert(
            ERROR_HEADER.into(),
            long_string(truncate(error, ERROR_MAX_BYTES)),
        );
        let routing_key = original_routing_key(delivery);
        headers.insert(ROUTING_KEY_HEADER.into(), long_string(&routing_key));
        let properties = delivery.properties.clone().with_headers(headers);
        let published = self
            .publisher
            .publish_confirmed("", &queue.name, &delivery.data, properties)
            .await;
        if published.is_ok() {
            self.events.retry_scheduled(alert_id, attempts, queue.delay);
        }
        self.ack_once_published(delivery, alert_id, "retry", published)
            .await;
    }

    async fn dead_letter_then_ack(
        &self,
        delivery: &Delivery,
        alert_id: &str,
        reason: Reason,
        error: &str,
    ) {
        let published = self.dead_letter(delivery, reason, error).await;
        if published.is_ok() {
            self.events.dead_lettered(alert_id, reason);
        }
        self.ack_once_published(delivery, alert_id, "dead-letter", published)
            .await;
    }

    async fn ack_once_published(
        &self,
        delivery: &Delivery,
        alert_id: &str,
        action: &str,
        published: Result<(), PublishError>,
    ) {
        match published {
            Ok(()) => self.ack(delivery, alert_id).await,
            Err(failure) => {
                self.events.settle_failed(alert_id, action, &failure);
                self.requeue(delivery, alert_id).await;
            }
        }
    }

    async fn dead_letter(
        &self,
        delivery: &Delivery,
        reason: Reason,
        error: &str,
    ) -> Result<(), PublishError> {
        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
        let attempts = attempts(&headers) + 1;
        headers.insert(REASON_HEADER.into(), long_string(reason.as_str()));
        headers.insert(
            ERROR_HEADER.into(),
            long_string(truncate(error, ERROR_MAX_BYTES)),
        );
        headers.insert(ATTEMPTS_HEADER.into(), AMQPValue::LongInt(attempts));
        let now = OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_default();
        headers.insert(FAILED_AT_HEADER.into(), long_string(&now));
        let properties = delivery.properties.clone().with_headers(headers);
        self.publisher
            .publish_confirmed(
                &self.topology.dead,
                &original_routing_key(delivery),
                &delivery.data,
                properties,
            )
            .await
    }

    async fn ack(&self, delivery: &Delivery, alert_id: &str) {
        match delivery.ack(BasicAckOptions::default()).await {
            Ok(true) => {}
            Ok(false) => self.events.ack_lost(alert_id),
            Err(error) => self.events.settle_failed(alert_id, "ack", &error),
        }
    }

    async fn requeue(&self, delivery: &Delivery, alert_id: &str) {
        let options = BasicNackOptions {
            requeue: true,
            ..BasicNackOptions::default()
        };
        match delivery.nack(options).await {
            Ok(true) => {}
            Ok(false) => self.events.ack_lost(alert_id),
            Err(error) => self.events.settle_failed(alert_id, "requeue", &error),
        }
    }
}

/// The alert id for logs, from the message's `message_id` property (set by
/// `relais publish` and recommended to publishers); `-` when absent.
fn alert_id(delivery: &Delivery) -> String {
    delivery
        .properties
        .message_id()
        .as_ref()
        .map(ToString::to_string)
        .filter(|id| crate::alert::AlertId::parse(id).is_ok())
        .unwrap_or_else(|| "-".into())
}

/// The routing key the alert was first published with.
fn original_routing_key(delivery: &Delivery) -> String {
    let headers = delivery.properties.headers().as_ref();
    match headers.and_then(|headers| headers.inner().get(ROUTING_KEY_HEADER)) {
        Some(AMQPValue::LongString(key)) => key.to_string(),
        Some(AMQPValue::ShortString(key)) => key.to_string(),
        _ => delivery.routing_key.to_string(),
    }
}

/// The `x-relais-attempts` a message carries (0 when it has none).
pub fn attempts(headers: &FieldTable) -> i32 {
    match headers.inner().get(ATTEMPTS_HEADER) {
        Some(AMQPValue::LongInt(n)) => *n,
        Some(AMQPValue::LongLongInt(n)) => i32::try_from(*n).unwrap_or(i32::MAX),
        Some(AMQPValue::ShortInt(n)) => i32::from(*n),
        _ => 0,
    }
}

fn long_string(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

/// At most `max` bytes of `text`, cut on a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
