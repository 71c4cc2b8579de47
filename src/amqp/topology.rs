//! The exchanges and queues relais works with, and their declaration.
//!
//! Declared idempotently at every (re)connection, with their final arguments
//! from the first deployment on, so that no operator ever declares or
//! migrates anything by hand:
//!
//! - `<exchange>` (topic): where the dispatch software publishes alerts,
//!   routing key = the alert's kind;
//! - `<queue>` (quorum, bound with `#`): what relais consumes; the broker
//!   dead-letters into `<queue>.dead`, at least once, a message delivered
//!   more than `delivery_limit` times (a poison message); it holds at most
//!   `max_queue_length` alerts, past which publishes are refused;
//! - `<queue>.retry.<delay>` (quorum, one per `retry.delays`): an alert that
//!   failed transiently waits there for the queue's TTL, then the broker
//!   dead-letters it back into `<queue>` (at least once). A queue per delay
//!   means no message waits behind a longer one;
//! - `<queue>.dead` (fanout exchange and quorum queue of the same name): the
//!   dead letters, with their original routing key and the reason;
//! - `<queue>.escalation.<wait>` (quorum, one per wait of the registry's
//!   `escalate_after`, declared when first needed): the copy of a delivered
//!   alert waits there for the next step of its escalation, then goes back
//!   to `<queue>` as the retries do. The broker, not relais, keeps the
//!   timer: it survives relais's restarts and holds the alert's content,
//!   which the store never does.
//!
//! Each queue is a quorum queue; on a cluster (`amqp.urls`), replicated on
//! `amqp.quorum_group_size` nodes (default: as many as `amqp.urls`, at
//! most 3).
//!
//! The main queue has a single active consumer: a second relais on the same
//! queue is a hot standby, never a second sender of the same alert.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use lapin::{Channel, Connection, ErrorKind, ExchangeKind};
use thiserror::Error;

use crate::amqp::headers::long_string;
use crate::settings::Settings;

#[derive(Debug, Error)]
pub enum TopologyError {
    #[error(
        "the broker refused to declare `{name}` because it exists with other arguments ({message}). \
         relais needs: {wanted}. To migrate: stop relais, move the queue's messages elsewhere \
         (e.g. with a shovel), delete the queue (`rabbitmqctl delete_queue {name}`), then start \
         relais, which declares it anew"
    )]
    Mismatch {
        name: String,
        message: String,
        wanted: String,
    },
    #[error("cannot declare `{name}` on the broker: {source}")]
    Broker { name: String, source: lapin::Error },
}

/// The names and arguments of everything relais declares.
#[derive(Debug, Clone)]
pub struct Topology {
    pub exchange: String,
    /// Where alerts' status events go (`amqp::status`).
    pub events: String,
    pub queue: String,
    /// Name of both the dead-letter exchange and the dead-letter queue.
    pub dead: String,
    /// The retry ladder: each queue's name and delay, shortest first as
    /// configured.
    pub retries: Vec<RetryQueue>,
    delivery_limit: u32,
    max_queue_length: u32,
    /// `x-quorum-initial-group-size` of every queue, when set.
    replicas: Option<u8>,
    /// Whether `.dead` was declared by a relais older than its delivery
    /// limit (see [`Topology::adopt_dead_queue`]): it is then declared as
    /// it is, and an operator on RabbitMQ 4.x sets the limit by a policy.
    legacy_dead: Arc<AtomicBool>,
}

/// `.dead`'s delivery limit: none, in effect. Nothing consumes it, but
/// `relais dead-letters` reads it by taking and giving back, which a
/// quorum queue counts as a delivery: RabbitMQ 4.0 gives a queue without
/// `x-delivery-limit` a limit of 20, and drops a dead letter past it
/// (`.dead` has nowhere to dead-letter to). RabbitMQ 3.x has no default,
/// and refuses a negative limit: the largest one both take.
const UNLIMITED_DELIVERIES: i32 = i32::MAX;

/// One step of the retry ladder.
#[derive(Debug, Clone)]
pub struct RetryQueue {
    pub name: String,
    pub delay: Duration,
}

impl Topology {
    pub fn new(settings: &Settings) -> Self {
        let amqp = &settings.amqp;
        let retries = settings
            .retry
            .delays
            .iter()
            .map(|&delay| RetryQueue {
                name: format!("{}.retry.{}", amqp.queue, humantime::format_duration(delay)),
                delay,
            })
            .collect();
        Self {
            exchange: amqp.exchange.clone(),
            events: settings.events.exchange.clone(),
            queue: amqp.queue.clone(),
            dead: format!("{}.dead", amqp.queue),
            retries,
            delivery_limit: amqp.delivery_limit,
            max_queue_length: amqp.max_queue_length,
            replicas: amqp.quorum_replicas(),
            legacy_dead: Arc::default(),
        }
    }

    /// Looks at `.dead` before [`Topology::declare`], on channels of its
    /// own (a declaration refused closes its channel): when it exists
    /// without the delivery limit relais now gives it (declared by an older
    /// relais), relais keeps it as it is and says what to set on RabbitMQ
    /// 4.x, rather than refusing to start over a queue that holds dead
    /// letters.
    ///
    /// # Errors
    /// [`TopologyError::Broker`] when the broker cannot be asked.
    pub async fn adopt_dead_queue(&self, connection: &Connection) -> Result<(), TopologyError> {
        let broker = |source| TopologyError::Broker {
            name: self.dead.clone(),
            source,
        };
        let channel = connection.create_channel().await.map_err(broker)?;
        match self
            .declare_queue(&channel, &self.dead, self.dead_queue_arguments())
            .await
        {
            Ok(()) => {
                self.legacy_dead.store(false, Ordering::Relaxed);
                let _ = channel.close(200, "declared".into()).await;
                Ok(())
            }
            Err(TopologyError::Mismatch { .. }) => {
                let legacy = connection.create_channel().await.map_err(broker)?;
                self.declare_queue(&legacy, &self.dead, self.quorum())
                    .await?;
                let _ = legacy.close(200, "declared".into()).await;
                self.legacy_dead.store(true, Ordering::Relaxed);
                tracing::warn!(queue = %self.dead,
                    "the dead-letter queue was declared by an older relais, without a delivery \
                     limit of its own: on RabbitMQ 4.x, which drops a message delivered more than \
                     20 times, each `relais dead-letters list` counts one; set the policy of the \
                     operators' guide (RabbitMQ versions) so that no dead letter is lost");
                Ok(())
            }
            Err(other) => Err(other),
        }
    }

    /// Every queue relais declares: main, retries, dead.
    pub fn queues(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.queue.as_str())
            .chain(self.retries.iter().map(|retry| retry.name.as_str()))
            .chain(std::iter::once(self.dead.as_str()))
    }

    /// Declares everything; a no-op when it all exists as it should.
    ///
    /// # Errors
    /// [`TopologyError::Mismatch`] when a queue exists with other arguments
    /// (the message says how to migrate), [`TopologyError::Broker`] otherwise.
    pub async fn declare(&self, channel: &Channel) -> Result<(), TopologyError> {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        channel
            .exchange_declare(
                self.exchange.as_str().into(),
                ExchangeKind::Topic,
                durable,
                FieldTable::default(),
            )
            .await
            .map_err(|source| self.error(&self.exchange, source, "a durable topic exchange"))?;
        if !self.events.is_empty() {
            channel
                .exchange_declare(
                    self.events.as_str().into(),
                    ExchangeKind::Topic,
                    durable,
                    FieldTable::default(),
                )
                .await
                .map_err(|source| self.error(&self.events, source, "a durable topic exchange"))?;
        }
        channel
            .exchange_declare(
                self.dead.as_str().into(),
                ExchangeKind::Fanout,
                durable,
                FieldTable::default(),
            )
            .await
            .map_err(|source| self.error(&self.dead, source, "a durable fanout exchange"))?;

        self.declare_queue(channel, &self.dead, self.dead_queue_arguments())
            .await?;
        channel
            .queue_bind(
                self.dead.as_str().into(),
                self.dead.as_str().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|source| self.error(&self.dead, source, "a binding"))?;

        self.declare_queue(channel, &self.queue, self.main_queue_arguments())
            .await?;
        channel
            .queue_bind(
                self.queue.as_str().into(),
                self.exchange.as_str().into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|source| self.error(&self.queue, source, "a binding"))?;

        for retry in &self.retries {
            self.declare_queue(channel, &retry.name, self.retry_queue_arguments(retry))
                .await?;
        }
        Ok(())
    }

    async fn declare_queue(
        &self,
        channel: &Channel,
        name: &str,
        arguments: FieldTable,
    ) -> Result<(), TopologyError> {
        let wanted = describe(&arguments);
        let options = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        channel
            .queue_declare(name.into(), options, arguments)
            .await
            .map(drop)
            .map_err(|source| self.error(name, source, &wanted))
    }

    /// The consumed queue: quorum (replicated, durable), dead-lettering at
    /// least once into `.dead` after `delivery_limit` deliveries.
    pub fn main_queue_arguments(&self) -> FieldTable {
        let mut arguments = self.quorum();
        arguments.insert("x-dead-letter-exchange".into(), long_string(&self.dead));
        arguments.insert(
            "x-dead-letter-strategy".into(),
            long_string("at-least-once"),
        );
        // At-least-once dead-lettering requires reject-publish overflow,
        // which also pushes back on publishers once the queue is full.
        arguments.insert("x-overflow".into(), long_string("reject-publish"));
        arguments.insert(
            "x-max-length".into(),
            AMQPValue::LongInt(i32::try_from(self.max_queue_length).unwrap_or(i32::MAX)),
        );
        arguments.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongInt(i32::try_from(self.delivery_limit).unwrap_or(i32::MAX)),
        );
        arguments.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
        arguments
    }

    /// The queue where alerts wait `after` for their next step of
    /// escalation, and its arguments (those of a retry queue).
    pub fn escalation_queue(&self, after: Duration) -> (String, FieldTable) {
        let queue = RetryQueue {
            name: format!(
                "{}.escalation.{}",
                self.queue,
                humantime::format_duration(after)
            ),
            delay: after,
        };
        let arguments = self.retry_queue_arguments(&queue);
        (queue.name, arguments)
    }

    /// Declares `name` with `arguments` (a no-op when it exists as such).
    ///
    /// # Errors
    /// As [`Topology::declare`].
    pub async fn declare_one(
        &self,
        channel: &Channel,
        name: &str,
        arguments: FieldTable,
    ) -> Result<(), TopologyError> {
        self.declare_queue(channel, name, arguments).await
    }

    /// A step of the ladder: messages expire after the delay and go back,
    /// at least once, to the main queue through the default exchange.
    fn retry_queue_arguments(&self, retry: &RetryQueue) -> FieldTable {
        let mut arguments = self.quorum();
        let ttl = i64::try_from(retry.delay.as_millis()).unwrap_or(i64::MAX);
        arguments.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ttl));
        arguments.insert("x-dead-letter-exchange".into(), long_string(""));
        arguments.insert("x-dead-letter-routing-key".into(), long_string(&self.queue));
        arguments.insert(
            "x-dead-letter-strategy".into(),
            long_string("at-least-once"),
        );
        arguments.insert("x-overflow".into(), long_string("reject-publish"));
        arguments
    }

    /// `.dead`: kept until an operator replays or purges it, however often
    /// it is read ([`UNLIMITED_DELIVERIES`]), unless an older relais
    /// declared it (see [`Topology::adopt_dead_queue`]).
    fn dead_queue_arguments(&self) -> FieldTable {
        let mut arguments = self.quorum();
        if !self.legacy_dead.load(Ordering::Relaxed) {
            arguments.insert(
                "x-delivery-limit".into(),
                AMQPValue::LongInt(UNLIMITED_DELIVERIES),
            );
        }
        arguments
    }

    /// A quorum queue, replicated on `replicas` nodes of the cluster when
    /// set (else on as many as the broker's default).
    fn quorum(&self) -> FieldTable {
        let mut arguments = FieldTable::default();
        arguments.insert("x-queue-type".into(), long_string("quorum"));
        if let Some(replicas) = self.replicas {
            arguments.insert(
                "x-quorum-initial-group-size".into(),
                AMQPValue::LongInt(i32::from(replicas)),
            );
        }
        arguments
    }

    fn error(&self, name: &str, source: lapin::Error, wanted: &str) -> TopologyError {
        if let Some(message) = soft_error(&source, AMQPSoftError::PRECONDITIONFAILED) {
            return TopologyError::Mismatch {
                name: name.to_owned(),
                message,
                wanted: wanted.to_owned(),
            };
        }
        TopologyError::Broker {
            name: name.to_owned(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_main_queue_is_replicated_bounded_and_dead_letters_at_least_once() {
        let settings = Settings::load_with_env(
            None,
            Some(
                [
                    ("RELAIS__REGISTRY__PATH", "referents.toml"),
                    ("RELAIS__STORE__PATH", "relais.db"),
                    ("RELAIS__SMTP__TRANSPORT", "file"),
                    ("RELAIS__SMTP__FILE_DIR", "mail"),
                    ("RELAIS__SMTP__FROM", "relais@example.org"),
                    ("RELAIS__AMQP__QUEUE", "alerts"),
                ]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .into(),
            ),
        )
        .unwrap();
        let topology = Topology::new(&settings);
        assert_eq!(
            describe(&topology.main_queue_arguments()),
            "x-dead-letter-exchange=alerts.dead, x-dead-letter-strategy=at-least-once, \
             x-delivery-limit=10, x-max-length=1000000, x-overflow=reject-publish, \
             x-queue-type=quorum, x-single-active-consumer=true"
        );
        let names: Vec<&str> = topology.queues().collect();
        assert_eq!(
            names,
            [
                "alerts",
                "alerts.retry.30s",
                "alerts.retry.2m",
                "alerts.retry.10m",
                "alerts.retry.1h",
                "alerts.retry.6h",
                "alerts.dead"
            ]
        );
    }
}

/// A queue as the broker sees it now.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct QueueState {
    pub name: String,
    /// Ready messages; `None` when the queue does not exist.
    pub messages: Option<u32>,
    pub consumers: Option<u32>,
}

impl Topology {
    /// Reads every queue's depth and consumers with a passive declare (one
    /// channel per queue, since a missing queue closes its channel).
    ///
    /// # Errors
    /// When the broker cannot be reached.
    pub async fn inspect(
        &self,
        connection: &lapin::Connection,
    ) -> Result<Vec<QueueState>, lapin::Error> {
        let mut states = Vec::new();
        for name in self.queues() {
            let channel = connection.create_channel().await?;
            let declared = passive_declare(&channel, name).await;
            let (messages, consumers) = match declared {
                Ok(queue) => (Some(queue.message_count()), Some(queue.consumer_count())),
                Err(error) if soft_error(&error, AMQPSoftError::NOTFOUND).is_some() => (None, None),
                Err(error) => return Err(error),
            };
            if channel.status().connected() {
                let _ = channel.close(200, "inspected".into()).await;
            }
            states.push(QueueState {
                name: name.to_owned(),
                messages,
                consumers,
            });
        }
        Ok(states)
    }
}

impl Topology {
    /// How many ready messages the queue `name` holds now.
    ///
    /// # Errors
    /// When the queue does not exist (the channel is then closed) or the
    /// broker fails.
    pub async fn depth(channel: &Channel, name: &str) -> Result<u32, lapin::Error> {
        Ok(passive_declare(channel, name).await?.message_count())
    }
}

/// Reads a queue's state without creating or changing it.
async fn passive_declare(channel: &Channel, name: &str) -> Result<lapin::Queue, lapin::Error> {
    let options = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(name.into(), options, FieldTable::default())
        .await
}

/// The broker's message, when `error` is the channel-level error `kind`
/// (e.g. PRECONDITION_FAILED, NOT_FOUND).
pub fn soft_error(error: &lapin::Error, kind: AMQPSoftError) -> Option<String> {
    match error.kind() {
        ErrorKind::ProtocolError(error) if *error.kind() == AMQPErrorKind::Soft(kind) => {
            Some(error.get_message().to_string())
        }
        _ => None,
    }
}

/// `x-queue-type=quorum, x-delivery-limit=10, …` for error messages.
fn describe(arguments: &FieldTable) -> String {
    let mut parts: Vec<String> = arguments
        .inner()
        .iter()
        .map(|(key, value): (&ShortString, &AMQPValue)| {
            let value = match value {
                AMQPValue::LongString(text) => text.to_string(),
                AMQPValue::LongInt(number) => number.to_string(),
                AMQPValue::LongLongInt(number) => number.to_string(),
                AMQPValue::Boolean(flag) => flag.to_string(),
                other => format!("{other:?}"),
            };
            format!("{key}={value}")
        })
        .collect();
    parts.sort();
    parts.join(", ")
}
