//! Turns an [`Outcome`] into broker actions, in the one order that loses
//! nothing: anything to publish (a retry, a dead letter) is published first,
//! with a publisher confirm, and the original delivery is acked only once the
//! broker confirmed. If the broker does not confirm, the delivery is
//! requeued, never dropped.
//!
//! The retry ladder: an alert that failed transiently for the n-th time goes
//! to the n-th retry queue; after the last one it is dead-lettered as
//! `exhausted`. The count travels with the message in `x-relais-attempts`.
//!
//! The deliveries it is given carry only relais's own `x-relais-*` headers
//! (the consumer dropped any other, see `headers::strip_foreign`): what it
//! copies onto a retry, an escalation timer or a dead letter is what relais
//! wrote, never a publisher's.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions};

use crate::alert::AlertId;
use crate::amqp::headers;
use crate::amqp::publisher::{PublishError, Publisher};
use crate::amqp::topology::Topology;
use crate::outcome::{NextStep, Outcome, Reason, Verdict};
use crate::telemetry::events::Events;

/// What settling a delivery did that is recorded once the broker
/// confirmed it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    /// The next step of the alert's escalation waits in the broker.
    pub scheduled: bool,
    /// The alert is in the dead-letter queue, for this reason.
    pub dead_lettered: Option<Reason>,
}

/// Applies outcomes to deliveries.
#[derive(Clone)]
pub struct Settler {
    publisher: Publisher,
    topology: Topology,
    events: Events,
    /// relais's login on the broker: the `user_id` of what it republishes.
    login: Option<String>,
    /// The escalation queues declared on this connection.
    declared: Arc<Mutex<HashSet<String>>>,
}

impl Settler {
    pub fn new(
        publisher: Publisher,
        topology: Topology,
        events: Events,
        login: Option<String>,
    ) -> Self {
        Self {
            publisher,
            topology,
            events,
            login,
            declared: Arc::default(),
        }
    }

    /// relais's login on the broker, if it logs in with a user name.
    pub fn login(&self) -> Option<&str> {
        self.login.as_deref()
    }

    /// Acks, requeues, retries or dead-letters `delivery` as `outcome` says,
    /// scheduling its next step of escalation first if it has one; says
    /// whether that step is scheduled, and whether the alert is in the
    /// dead-letter queue. Failures are logged, not returned: in every
    /// failure case the delivery stays with the broker, which delivers it
    /// again.
    pub async fn settle(&self, delivery: &Delivery, outcome: &Outcome) -> Settled {
        let alert_id = alert_id(outcome, delivery);
        match &outcome.verdict {
            Verdict::Delivered { .. } => match outcome.next {
                Some(next) => {
                    return Settled {
                        scheduled: self.escalate_then_ack(delivery, &alert_id, next).await,
                        dead_lettered: None,
                    };
                }
                None => self.ack(delivery, &alert_id).await,
            },
            Verdict::Retry { error } => {
                return Settled {
                    scheduled: false,
                    dead_lettered: self
                        .retry(delivery, &alert_id, error, &outcome.served)
                        .await,
                };
            }
            Verdict::DeadLetter { reason, error } => {
                let dead = self
                    .dead_letter_then_ack(delivery, &alert_id, *reason, error, &outcome.served)
                    .await;
                return Settled {
                    scheduled: false,
                    dead_lettered: dead.then_some(*reason),
                };
            }
        }
        Settled::default()
    }

    /// Puts a copy of the alert in the queue of `next`'s wait, then acks.
    async fn escalate_then_ack(&self, delivery: &Delivery, alert_id: &str, next: NextStep) -> bool {
        let (queue, arguments) = self.topology.escalation_queue(next.after);
        let known = self
            .declared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&queue);
        if !known {
            let declared = self
                .topology
                .declare_one(self.publisher.channel(), &queue, arguments)
                .await;
            if let Err(error) = declared {
                self.events.settle_failed(alert_id, "escalation", &error);
                self.requeue(delivery, alert_id).await;
                return false;
            }
            self.declared
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(queue.clone());
        }
        let original = delivery.properties.headers().clone().unwrap_or_default();
        let routing_key = headers::routing_key(&original, delivery.routing_key.as_str());
        let properties = headers::republish(
            &delivery.properties,
            headers::for_escalation(&original, &routing_key, next.step),
            self.login.as_deref(),
        );
        let published = self
            .publisher
            .publish_confirmed("", &queue, &delivery.data, properties)
            .await;
        let scheduled = published.is_ok();
        self.ack_once_published(delivery, alert_id, "escalation", published)
            .await;
        scheduled
    }

    /// Sends the alert one step down the ladder, or dead-letters it as
    /// `exhausted` past the last step (then `Some`, once the broker
    /// confirmed the dead letter).
    async fn retry(
        &self,
        delivery: &Delivery,
        alert_id: &str,
        error: &str,
        served: &[String],
    ) -> Option<Reason> {
        let original = delivery.properties.headers().clone().unwrap_or_default();
        let attempts = headers::attempts(&original, self.topology.retries.len()) + 1;
        let step = usize::try_from(attempts - 1).unwrap_or(usize::MAX);
        let Some(queue) = self.topology.retries.get(step) else {
            let dead = self
                .dead_letter_then_ack(delivery, alert_id, Reason::Exhausted, error, served)
                .await;
            return dead.then_some(Reason::Exhausted);
        };
        let routing_key = headers::routing_key(&original, delivery.routing_key.as_str());
        let properties = headers::republish(
            &delivery.properties,
            headers::for_retry(&original, attempts, error, &routing_key, served),
            self.login.as_deref(),
        );
        let published = self
            .publisher
            .publish_confirmed("", &queue.name, &delivery.data, properties)
            .await;
        if published.is_ok() {
            self.events.retry_scheduled(alert_id, attempts, queue.delay);
        }
        self.ack_once_published(delivery, alert_id, "retry", published)
            .await;
        None
    }

    /// Dead-letters the alert, then acks it; `true` once the broker
    /// confirmed the dead letter.
    async fn dead_letter_then_ack(
        &self,
        delivery: &Delivery,
        alert_id: &str,
        reason: Reason,
        error: &str,
        served: &[String],
    ) -> bool {
        let original = delivery.properties.headers().clone().unwrap_or_default();
        let attempts = headers::attempts(&original, self.topology.retries.len()) + 1;
        let routing_key = headers::routing_key(&original, delivery.routing_key.as_str());
        let properties = headers::republish(
            &delivery.properties,
            headers::for_dead_letter(&original, attempts, reason, error, served),
            self.login.as_deref(),
        );
        let published = self
            .publisher
            .publish_confirmed(
                &self.topology.dead,
                &routing_key,
                &delivery.data,
                properties,
            )
            .await;
        let confirmed = published.is_ok();
        if confirmed {
            let publisher = headers::publisher(&delivery.properties, self.login.as_deref());
            self.events
                .dead_lettered(publisher.as_deref().unwrap_or(""), alert_id, reason);
        }
        self.ack_once_published(delivery, alert_id, "dead-letter", published)
            .await;
        confirmed
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

/// The alert id for logs: the parsed alert's; for a message that is not a
/// valid alert, its `message_id` property when that is a valid id (set by
/// `relais publish` and recommended to publishers); `-` otherwise.
fn alert_id(outcome: &Outcome, delivery: &Delivery) -> String {
    if let Some(id) = &outcome.alert_id {
        return id.to_string();
    }
    delivery
        .properties
        .message_id()
        .as_ref()
        .and_then(|id| AlertId::parse(id.as_str()).ok())
        .map_or_else(|| "-".into(), |id| id.to_string())
}
