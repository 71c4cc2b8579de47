//! The broker side: connect, declare the topology, consume, and hand each
//! delivery to [`Relay::handle`] then [`Settler::settle`].
//!
//! Up to `amqp.prefetch` alerts are in flight at once (the broker sends no
//! more than that unacked). The connection is supervised here: if it fails
//! or the consumer ends, the whole session is rebuilt after a capped,
//! jittered backoff; deliveries whose channel died were never acked, so the
//! broker gives them again. A stop request ends consuming, lets the alerts
//! in flight finish (bounded by `shutdown_timeout`) and closes cleanly.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

use crate::amqp::headers;
use crate::amqp::publisher::Publisher;
use crate::amqp::settle::Settler;
use crate::amqp::topology::Topology;
use crate::backoff::{LONGEST_WAIT, waits};
use crate::health::Health;
use crate::relay::{Incoming, Relay};
use crate::settings::{AmqpSettings, Settings};
use crate::standby::Active;
use crate::telemetry::events::Events;

/// First wait between two connection attempts.
const RECONNECT_MIN: Duration = Duration::from_secs(1);

/// Consumes alerts until `shutdown` is cancelled. Never returns early
/// because the broker is down: it waits and reconnects.
pub async fn consume(
    settings: &Settings,
    relay: Arc<Relay>,
    events: Events,
    health: Arc<Health>,
    mut active: Active,
    shutdown: CancellationToken,
) {
    let amqp = &settings.amqp;
    let shutdown_timeout = settings.shutdown_timeout;
    let topology = Topology::new(settings);
    let mut backoff = waits(RECONNECT_MIN);
    loop {
        // A standby waits for the lock before it consumes anything.
        if !*active.borrow() {
            health.standby(true);
            tokio::select! {
                () = shutdown.cancelled() => return,
                changed = active.wait_for(|active| *active) => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
            health.standby(false);
        }
        let session = Session {
            active: active.clone(),
            store_is_shared: settings.store.url.is_some(),
            amqp,
            topology: &topology,
            relay: relay.clone(),
            events: events.clone(),
            health: &health,
            shutdown_timeout,
        };
        let ended = session.run(&shutdown).await;
        events.broker_disconnected();
        match ended {
            Ok(SessionEnd::Stopped) => {
                health.consumer_down("stopping");
                return;
            }
            Ok(SessionEnd::Lost(why)) => {
                warn!(reason = %why, "lost the broker; reconnecting");
                health.consumer_down(format!("lost the broker ({why}); reconnecting"));
                backoff = waits(RECONNECT_MIN);
            }
            Err(error) => {
                let error = crate::telemetry::one_line(&crate::telemetry::causes(&error));
                error!(broker = %amqp.redacted_url(), %error, "cannot consume from the broker");
                health.consumer_down(format!("cannot consume from the broker: {error}"));
            }
        }
        let wait = backoff.next().unwrap_or(LONGEST_WAIT);
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// How a session ended without failing to start.
enum SessionEnd {
    /// Asked to stop; everything in flight was settled or left to the broker.
    Stopped,
    /// The connection or the consumer went away.
    Lost(String),
}

/// One connection's worth of consuming.
struct Session<'a> {
    /// Whether this relais holds the queue's lease (see `standby`).
    active: Active,
    /// Whether the store is one several relais share (PostgreSQL): on
    /// SQLite, another consumer of the same queue is a relais that does not
    /// know what this one sent.
    store_is_shared: bool,
    amqp: &'a AmqpSettings,
    topology: &'a Topology,
    relay: Arc<Relay>,
    events: Events,
    health: &'a Health,
    shutdown_timeout: Duration,
}

impl Session<'_> {
    async fn run(self, shutdown: &CancellationToken) -> anyhow::Result<SessionEnd> {
        let name = format!("relais {}", env!("CARGO_PKG_VERSION"));
        let connection = crate::amqp::connect(self.amqp, &name).await?;

        // Publishing (dead letters) and consuming use separate channels, so a
        // slow confirm never holds up deliveries and acks.
        let publisher = Publisher::open(&connection, self.amqp.confirm_timeout).await?;
        self.topology.adopt_dead_queue(&connection).await?;
        self.topology.declare(publisher.channel()).await?;
        let settler = Settler::new(
            publisher,
            self.topology.clone(),
            self.events.clone(),
            self.amqp.login(),
        );

        let consuming = connection.create_channel().await?;
        consuming
            .basic_qos(self.amqp.prefetch, BasicQosOptions::default())
            .await?;
        if !self.store_is_shared {
            let others = consuming
                .queue_declare(
                    self.topology.queue.as_str().into(),
                    QueueDeclareOptions {
                        passive: true,
                        ..QueueDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await?
                .consumer_count();
            if others > 0 {
                self.events
                    .queue_shared_on_sqlite(&self.topology.queue, others);
            }
        }
        let mut consumer = consuming
            .basic_consume(
                self.topology.queue.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        self.health.consuming();
        self.events.broker_connected();
        info!(
            broker = %self.amqp.redacted_url(),
            queue = %self.topology.queue,
            prefetch = self.amqp.prefetch,
            "consuming alerts"
        );

        let in_flight = TaskTracker::new();
        let mut active = self.active.clone();
        let end = loop {
            tokio::select! {
                () = shutdown.cancelled() => break SessionEnd::Stopped,
                // (With the SQLite store nothing sends: the branch never fires.)
                Ok(_) = active.wait_for(|active| !*active) => {
                    break SessionEnd::Lost("this relais lost the lease of its queue".into());
                }
                next = consumer.next() => match next {
                    Some(Ok(delivery)) => {
                        let relay = self.relay.clone();
                        let settler = settler.clone();
                        in_flight.spawn(async move { process(&relay, &settler, delivery).await });
                    }
                    Some(Err(error)) => break SessionEnd::Lost(error.to_string()),
                    None => break SessionEnd::Lost("the broker ended the consumer".into()),
                },
            }
        };

        if !matches!(end, SessionEnd::Lost(_)) || !*self.active.borrow() {
            // Take no new alert; those already received but not started stay
            // unacked and return to the queue when the channel closes.
            let tag = consumer.tag();
            let cancel = consuming.basic_cancel(tag, BasicCancelOptions::default());
            match tokio::time::timeout(crate::amqp::connection::silent_peer(self.amqp), cancel)
                .await
            {
                Ok(Ok(())) => {}
                Ok(Err(error)) => warn!(%error, "could not cancel the consumer"),
                Err(_) => warn!("the broker did not answer the consumer's cancel"),
            }
        }
        debug!(in_flight = in_flight.len(), "the consumer is cancelled");
        in_flight.close();
        let finished = tokio::time::timeout(self.shutdown_timeout, in_flight.wait()).await;
        if finished.is_err() {
            warn!(
                left = in_flight.len(),
                "alerts still in flight after shutdown_timeout; the broker will deliver them again"
            );
        }
        debug!("the alerts in flight are settled");
        if let Err(error) =
            crate::amqp::connection::close(&connection, "relais stopping", self.amqp).await
        {
            warn!(error = %format!("{error:#}"), "could not close the broker connection cleanly");
        }
        Ok(end)
    }
}

/// Relays one delivery and settles it. relais's own headers are dropped
/// from it first unless relais published it: the relay reads, and the
/// settler copies onto a retry, an escalation timer or a dead letter, only
/// what relais wrote.
async fn process(relay: &Relay, settler: &Settler, mut delivery: Delivery) {
    let login = settler.login();
    delivery.properties = headers::strip_foreign(delivery.properties, login);
    let publisher = headers::publisher(&delivery.properties, login);
    let served = headers::served(&delivery.properties, login);
    let message = Incoming {
        body: &delivery.data,
        publisher: publisher.as_deref(),
        served: &served,
        escalation: headers::escalation(&delivery.properties, login),
    };
    let outcome = relay.handle(message).await;
    if !relay.mailer().fence().holds() {
        // This relais lost its standby lease meanwhile: it settles
        // nothing, and the alert goes back to the queue as it came, for the
        // relais that holds the lease now (the store says whom this one
        // emailed).
        let requeue = BasicNackOptions {
            requeue: true,
            ..BasicNackOptions::default()
        };
        if let Err(error) = delivery.nack(requeue).await {
            warn!(%error, "cannot give an alert back to the broker; it returns when the channel closes");
        }
        return;
    }
    let settled = settler.settle(&delivery, &outcome).await;
    if settled.scheduled {
        relay
            .escalation_scheduled(publisher.as_deref(), &outcome)
            .await;
    }
    if let Some(reason) = settled.dead_lettered {
        let named = delivery
            .properties
            .message_id()
            .as_ref()
            .map(|id| id.as_str());
        relay.dead_lettered(message, &outcome, named, reason);
    }
}
