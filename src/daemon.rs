//! The daemon: start-up, the main loop, and the jobs beside the consumer.
//!
//! [`run`] loads the registry, opens the store, builds the relay (renderer,
//! mailer) and starts the consumer; then, until asked to stop, it reloads
//! the registry on SIGHUP, pings systemd's watchdog, reads the queues'
//! depths for `/metrics` and prunes the store. It decides nothing about an
//! alert: the consumer hands each one to the relay.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sd_notify::NotifyState;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::ack::{self, Links};
use crate::amqp::Topology;
use crate::amqp::status;
use crate::fence::Fence;
use crate::flood::FloodGuard;
use crate::geography::Geography;
use crate::health::Health;
use crate::mail::{Mailer, Renderer, ReturnPaths};
use crate::relay::{Relay, RelayParts};
use crate::settings::{Settings, SettingsError};
use crate::store::Store;
use crate::telemetry::events::Events;
use crate::telemetry::metrics::Metrics;
use crate::telemetry::status::StatusSink;
use crate::{amqp, backoff, http, live_registry, memory};

/// Longest wait between two prunings of the store.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Runs the daemon until `shutdown` completes, then stops consuming, lets
/// the alerts in flight finish (within `shutdown_timeout`) and returns. Each
/// message on `reloads` (SIGHUP) reloads the registry.
///
/// Under systemd it notifies READY once the registry is loaded and the
/// consumer started (consuming, or waiting for the broker: `/readyz` tells
/// which), RELOADING around a reload, STOPPING, and pings the watchdog from
/// the main loop.
///
/// # Errors
/// Only for what an operator must fix before relais can start: an invalid
/// registry, an unusable store, mail settings or HTTP address. A broker or
/// mail server that is down is waited for, never an error.
pub async fn run(
    settings: Settings,
    shutdown: impl Future<Output = ()>,
    mut reloads: mpsc::Receiver<()>,
) -> anyhow::Result<()> {
    tokio::pin!(shutdown);
    let metrics = Arc::new(Metrics::new());
    let (status, status_events) = StatusSink::new();
    let events = if settings.events.enabled() {
        Events::new(metrics.clone()).with_status(status)
    } else {
        Events::new(metrics.clone())
    };
    let health = Arc::new(Health::default());

    let mut geography = settings.territories.geography()?;
    geography.forget_populations();
    geography.forget_postal_communes();
    let geography = Arc::new(geography);
    memory::release_pages(Geography::built_in_text().as_bytes());
    tracing::info!(
        territories = %geography.origin(),
        millesime = geography.millesime(),
        "official geography loaded"
    );
    let registry_path = settings.registry.path.clone();
    let fences = live_registry::Fences::from(&settings);
    let file = live_registry::fleet::read_file(&registry_path, &geography, &fences)?;
    let Some(store) = open_store(&settings, shutdown.as_mut()).await? else {
        tracing::info!("stopped while waiting for the store");
        return Ok(());
    };
    let store = store.watched_by(health.clone());
    let fleet = live_registry::fleet::Fleet {
        store: store.clone(),
        shared: settings.store.url.is_some(),
    };
    let registry =
        live_registry::fleet::start(file, &registry_path, &fleet, &fences, &events).await?;
    memory::return_freed();
    health.registry_loaded(registry.provenance());
    let sender = settings.smtp.sender().map_err(anyhow::Error::msg)?;
    let outbound = settings.smtp.outbound().map_err(SettingsError::Invalid)?;
    // With a store shared by a standby pair, this relais sends only while
    // it holds the queue's lease (`standby`).
    let fence = if settings.store.url.is_some() {
        Fence::closed()
    } else {
        Fence::open()
    };
    let digest_key = store.key("digest").await?;
    let mailer = Mailer::new(&outbound, health.clone(), fence.clone())?;
    let notices = settings.ack.notify_colleagues.then(|| ack::Notices {
        mailer: mailer.clone(),
        from: sender.clone(),
    });
    let relay = Relay::new(RelayParts {
        registry: live_registry::shared(registry),
        renderer: Renderer::new(sender, settings.email.include_patient)?,
        mailer,
        store: store.clone(),
        retry: (&settings.retry).into(),
        max_message_bytes: settings.amqp.max_message_bytes,
        consent_required: settings.consent.required,
        flood: FloodGuard::new(settings.registry.max_alerts_per_referent_per_hour),
        events: events.clone(),
        digest_key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &digest_key),
    });
    let relay = match settings.smtp.bounce_address().map_err(anyhow::Error::msg)? {
        Some(address) => {
            tracing::info!(
                "each email leaves with its own return path, and its bounce comes back to relais bounce"
            );
            let key = store.key("bounce").await?;
            relay.with_return_paths(Arc::new(ReturnPaths::new(address, &key)))
        }
        None => relay,
    };
    let stop = CancellationToken::new();
    let relay = if settings.ack.enabled() {
        let key = settings.ack.key().map_err(anyhow::Error::msg)?;
        let previous = settings.ack.previous_key().map_err(anyhow::Error::msg)?;
        let links = Arc::new(Links::new(
            &key,
            previous.as_deref(),
            &settings.ack.public_url,
            settings.ack.link_ttl,
        ));
        let listener = tokio::net::TcpListener::bind(&settings.ack.listen)
            .await
            .with_context(|| format!("cannot listen on ack.listen {}", settings.ack.listen))?;
        tracing::info!(listen = %settings.ack.listen, public_url = %settings.ack.public_url,
            "serving the acknowledgement pages");
        let pages = ack::router(
            links.clone(),
            relay.registry().clone(),
            store.clone(),
            events.clone(),
            notices,
            relay.absences().clone(),
        )?;
        tokio::spawn(http::serve_bounded(
            listener,
            pages,
            (&settings.http).into(),
            stop.clone(),
        ));
        Arc::new(relay.with_ack(links))
    } else {
        Arc::new(relay)
    };

    if !settings.http.listen.is_empty() {
        let listener = tokio::net::TcpListener::bind(&settings.http.listen)
            .await
            .with_context(|| format!("cannot listen on http.listen {}", settings.http.listen))?;
        tracing::info!(listen = %settings.http.listen, "serving /metrics, /healthz, /readyz");
        tokio::spawn(http::serve(
            listener,
            (&settings.http).into(),
            metrics.clone(),
            health.clone(),
            stop.clone(),
        ));
        tokio::spawn(poll_queues(settings.clone(), events.clone(), stop.clone()));
    }
    let publishing = settings.events.enabled().then(|| {
        tokio::spawn(status::publish_events(
            settings.clone(),
            status_events,
            metrics.clone(),
            stop.clone(),
        ))
    });
    if settings.ack.enabled() {
        tokio::spawn(count_pending(
            store.clone(),
            settings.ack.link_ttl,
            events.clone(),
            stop.clone(),
        ));
    }
    tokio::spawn(prune(store, Retentions::of(&settings.store), stop.clone()));
    tokio::spawn(expire_idle_connections(relay.clone(), stop.clone()));
    if fleet.shared {
        tokio::spawn(live_registry::fleet::follow(
            relay.registry().clone(),
            fleet.store.clone(),
            fences.clone(),
            (events.clone(), health.clone()),
            stop.clone(),
        ));
    }
    if settings.ack.enabled() {
        tokio::spawn(send_on(relay.clone(), stop.clone()));
    }
    let standby = crate::standby::start(&settings.store, &settings.amqp.queue, fence);
    let consumer = amqp::consumer::consume(
        &settings,
        relay.clone(),
        events.clone(),
        health.clone(),
        standby.active.clone(),
        stop.clone(),
    );
    tokio::pin!(consumer);

    systemd::notify(&[NotifyState::Ready]);
    let watchdog =
        sd_notify::watchdog_enabled().map_or(http::BEAT, |period| (period / 2).min(http::BEAT));
    let mut beat = tokio::time::interval(watchdog);
    loop {
        tokio::select! {
            () = &mut consumer => break,
            () = &mut shutdown => {
                tracing::info!("stopping: finishing the alerts in flight");
                systemd::notify(&[NotifyState::Stopping]);
                stop.cancel();
                consumer.await;
                break;
            }
            Some(()) = reloads.recv() => {
                systemd::notify(&[NotifyState::Reloading]);
                live_registry::reload(relay.registry(), &registry_path, &fences, &events, &fleet)
                    .await;
                health.registry_loaded(relay.registry().load().provenance());
                systemd::notify(&[NotifyState::Ready]);
            }
            _ = beat.tick() => {
                health.beat();
                systemd::notify(&[NotifyState::Watchdog]);
            }
        }
    }
    stop.cancel();
    tracing::debug!("the consumer has stopped");
    // The alerts in flight are done: give the lease to a standby, close the
    // idle SMTP connections, and let the last events out.
    standby.release().await;
    tracing::debug!("the lease is released");
    relay.mailer().close().await;
    tracing::debug!("the SMTP connections are closed");
    if let Some(publishing) = publishing {
        let _ = publishing.await;
        tracing::debug!("the last events are published");
    }
    tracing::info!("stopped");
    Ok(())
}

/// Sends on the alerts that the acknowledgement pages recorded handed back
/// and those whose mailbox bounced (`relais bounce`), recorded on any relais
/// of the store, every two seconds, while this relais may send.
async fn send_on(relay: Arc<Relay>, stop: CancellationToken) {
    const EVERY: Duration = Duration::from_secs(2);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(EVERY) => {
                relay.hand_backs().await;
                relay.bounces().await;
            }
        }
    }
}

/// Closes the SMTP connections idle for too long, every few seconds.
async fn expire_idle_connections(relay: Arc<Relay>, stop: CancellationToken) {
    const EVERY: Duration = Duration::from_secs(5);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(EVERY) => relay.mailer().expire_idle().await,
        }
    }
}

/// Reads the queues' depths from the broker every `http.queue_poll`, on a
/// connection of its own, for `/metrics`.
async fn poll_queues(settings: Settings, events: Events, stop: CancellationToken) {
    let topology = Topology::new(&settings);
    let mut connection: Option<lapin::Connection> = None;
    loop {
        if connection.as_ref().is_none_or(|c| !c.status().connected()) {
            connection = amqp::connect(&settings.amqp, "relais (queue poll)")
                .await
                .ok();
        }
        if let Some(open) = &connection {
            match topology.inspect(open).await {
                Ok(queues) => {
                    for queue in queues {
                        events.queue_read(&queue.name, queue.messages, queue.consumers);
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, "cannot read the queues' depths");
                    connection = None;
                }
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(settings.http.queue_poll) => {}
        }
    }
}

/// systemd's notification socket; a no-op outside systemd.
mod systemd {
    use sd_notify::NotifyState;

    pub fn notify(states: &[NotifyState<'_>]) {
        if let Err(error) = sd_notify::notify(states) {
            tracing::warn!(%error, "cannot notify systemd");
        }
    }
}

/// Counts the alerts awaiting an acknowledgement for `/metrics`, every
/// minute (a long read, kept off the dedup check's way by the store).
async fn count_pending(store: Store, link_ttl: Duration, events: Events, stop: CancellationToken) {
    const EVERY: Duration = Duration::from_secs(60);
    loop {
        let since = OffsetDateTime::now_utc() - link_ttl;
        match store.pending_count(since).await {
            Ok(count) => events.alerts_pending(count),
            Err(error) => {
                tracing::warn!(%error, "cannot count the alerts awaiting acknowledgement");
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(EVERY) => {}
        }
    }
}

/// Opens the store; a PostgreSQL store that cannot be reached yet is
/// waited for (relais takes no alert meanwhile), as the broker is, until
/// `shutdown` completes: `None`.
async fn open_store(
    settings: &Settings,
    mut shutdown: std::pin::Pin<&mut impl Future<Output = ()>>,
) -> anyhow::Result<Option<Store>> {
    let mut waits = backoff::waits(Duration::from_millis(500));
    loop {
        let opened = tokio::select! {
            opened = Store::open(&settings.store) => opened,
            () = shutdown.as_mut() => return Ok(None),
        };
        match opened {
            Ok(store) => return Ok(Some(store)),
            Err(error @ crate::store::StoreError::Postgres { .. }) => {
                let wait = waits.next().unwrap_or(backoff::LONGEST_WAIT);
                tracing::warn!(%error, ?wait, "cannot open the store; trying again");
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = shutdown.as_mut() => return Ok(None),
                }
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// How long each part of the store is kept (`[store]`).
#[derive(Clone, Copy)]
struct Retentions {
    /// Deliveries and what hangs on them (`store.retention`).
    deliveries: Duration,
    /// The operator trace (`store.operations_retention`).
    operations: Duration,
    /// The yearly report's facts (`store.report_retention`).
    report: Duration,
}

impl Retentions {
    fn of(store: &crate::settings::StoreSettings) -> Self {
        Self {
            deliveries: store.retention,
            operations: store.operations_retention,
            report: store.report_retention,
        }
    }
}

/// Forgets deliveries, operators' commands (the operator trace) and the
/// yearly report's facts older than their retentions, now and then.
async fn prune(store: Store, retentions: Retentions, stop: CancellationToken) {
    let every = PRUNE_EVERY
        .min(retentions.deliveries / 10)
        .max(Duration::from_secs(1));
    loop {
        let now = OffsetDateTime::now_utc();
        match store.prune(now - retentions.deliveries).await {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(pruned, "store pruned"),
            Err(error) => tracing::warn!(%error, "cannot prune the store"),
        }
        match store.prune_operations(now - retentions.operations).await {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(pruned, "operator trace pruned"),
            Err(error) => tracing::warn!(%error, "cannot prune the operator trace"),
        }
        match store.prune_report(now - retentions.report).await {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(pruned, "yearly report's facts pruned"),
            Err(error) => tracing::warn!(%error, "cannot prune the yearly report's facts"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}
