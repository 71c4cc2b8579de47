//! Each alert's fate, told back to the dispatch software: a JSON event on
//! the topic exchange `events.exchange` (`relais.events`), with the alert's
//! publisher and the status as routing key (`<publisher>.delivered` per
//! référent, `<publisher>.dead_lettered` with the reason;
//! `schema/event.v2.json`). Each dispatch software binds a queue of its
//! own to its own events (`<its user>.#`) and shows a doctor what became of
//! an alert.
//!
//! Events go through a bounded buffer to one task with a connection of its
//! own, which publishes each persistently and waits for the broker's
//! confirm; one that fails is tried again, after a reconnection if need be,
//! in order. Publishing an event never holds up an alert's delivery: when
//! the buffer is full (the broker unreachable for long), the event is
//! dropped, counted (`relais_events_dropped_total`) and logged, never lost
//! silently. An event carries ids, never patient data.
//!
//! What an event says and the buffer it waits in are `telemetry::status`'s;
//! this module only takes events from that buffer to the broker.

use std::time::Duration;

use lapin::BasicProperties;
use lapin::options::ExchangeDeclareOptions;
use lapin::types::{FieldTable, ShortString};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::amqp::publisher::Publisher;
use crate::backoff;
use crate::settings::Settings;
use crate::telemetry::metrics::Metrics;
use crate::telemetry::status::Encoded;

/// Most events published in one confirmed batch.
const BATCH: usize = 256;
/// How long, at stop, the events still buffered may take to go out.
const FLUSH_AT_STOP: Duration = Duration::from_secs(5);

/// Publishes the events until `stop` is cancelled, then for at most
/// [`FLUSH_AT_STOP`] those still buffered. Events go in batches (what has
/// arrived, up to [`BATCH`]), each confirmed as a whole; a batch that fails
/// is published again, whole, after a reconnection if need be (so that an
/// event may rarely come twice, never out of order). It never returns
/// because the broker is down: it waits and reconnects.
pub async fn publish_events(
    settings: Settings,
    mut events: mpsc::Receiver<Encoded>,
    metrics: std::sync::Arc<Metrics>,
    stop: CancellationToken,
) {
    let exchange = settings.events.exchange.clone();
    let login = settings.amqp.login();
    let mut link: Option<Link> = None;
    let mut waits = backoff::waits(Duration::from_millis(200));
    let mut deadline: Option<tokio::time::Instant> = None;
    let mut batch: Vec<Encoded> = Vec::with_capacity(BATCH);
    'events: loop {
        if batch.is_empty() {
            let next = match deadline {
                Some(deadline) => tokio::time::timeout_at(deadline, events.recv())
                    .await
                    .ok()
                    .flatten(),
                None => tokio::select! {
                    () = stop.cancelled() => {
                        events.close();
                        deadline = Some(tokio::time::Instant::now() + FLUSH_AT_STOP);
                        continue;
                    }
                    next = events.recv() => next,
                },
            };
            let Some(first) = next else { break };
            batch.push(first);
            while batch.len() < BATCH {
                match events.try_recv() {
                    Ok(event) => batch.push(event),
                    Err(_) => break,
                }
            }
        }
        let messages: Vec<(&str, &[u8])> = batch
            .iter()
            .map(|event| (event.routing_key.as_str(), event.body.as_slice()))
            .collect();
        if link.is_none() {
            link = connect(&settings).await;
        }
        let published = match &link {
            Some(open) => open
                .publisher
                .publish_all_confirmed(&exchange, &messages, &properties(login.as_deref()))
                .await
                .map_err(|error| error.to_string()),
            None => Err("cannot reach the broker".to_owned()),
        };
        match published {
            Ok(()) => {
                metrics.events_published.inc_by(batch.len() as u64);
                batch.clear();
                waits = backoff::waits(Duration::from_millis(200));
            }
            Err(error) => {
                metrics.events_failed.inc();
                warn!(%error, events = batch.len(), "could not publish alerts' events; trying again");
                if let Some(broken) = link.take() {
                    let _ = crate::amqp::connection::close(
                        &broken.connection,
                        "reconnecting",
                        &settings.amqp,
                    )
                    .await;
                }
                let wait = waits.next().unwrap_or(backoff::LONGEST_WAIT);
                if stop.is_cancelled() && deadline.is_none() {
                    deadline = Some(tokio::time::Instant::now() + FLUSH_AT_STOP);
                }
                let until = tokio::time::Instant::now() + wait;
                match deadline {
                    Some(deadline) if until > deadline => break 'events,
                    Some(_) => tokio::time::sleep_until(until).await,
                    None => tokio::select! {
                        () = stop.cancelled() => {}
                        () = tokio::time::sleep_until(until) => {}
                    },
                }
            }
        }
    }
    if let Some(open) = link {
        let _ = crate::amqp::connection::close(&open.connection, "relais stopping", &settings.amqp)
            .await;
    }
    let left = batch.len() + events.len();
    if left > 0 {
        metrics.events_dropped.inc_by(left as u64);
        warn!(left, "relais stopped with alerts' events not published");
    }
}

/// Persistent JSON of the version the schema names, with relais's own
/// login in `user_id`: the broker checks it, so that a consumer can tell
/// relais's events from any other publisher's on the exchange.
fn properties(login: Option<&str>) -> BasicProperties {
    let properties = BasicProperties::default()
        .with_content_type(ShortString::from("application/json"))
        .with_delivery_mode(2)
        .with_type(ShortString::from("relais.event.v2"))
        .with_app_id(ShortString::from("relais"));
    match login {
        Some(login) => properties.with_user_id(ShortString::from(login)),
        None => properties,
    }
}

/// A connection of the events' own, and its confirming channel.
struct Link {
    connection: lapin::Connection,
    publisher: Publisher,
}

async fn connect(settings: &Settings) -> Option<Link> {
    let connection = crate::amqp::connect(&settings.amqp, "relais (events)")
        .await
        .ok()?;
    let publisher = Publisher::open(&connection, settings.amqp.confirm_timeout)
        .await
        .ok()?;
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    publisher
        .channel()
        .exchange_declare(
            settings.events.exchange.as_str().into(),
            lapin::ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        )
        .await
        .ok()?;
    info!(exchange = %settings.events.exchange, "publishing alerts' events");
    Some(Link {
        connection,
        publisher,
    })
}
