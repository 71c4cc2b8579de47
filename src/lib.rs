//! relais relays social-care alerts from SOS Médecins doctors to the
//! référents of the social-action offices of the patient's territory.
//!
//! The path of one alert, module by module:
//!
//! 1. [`settings`]: what relais is configured with (file, then environment);
//! 2. [`registry`]: who the référents are and which of them an alert goes to;
//! 3. [`consumer`]: the broker connection, the [`topology`], the consume loop;
//! 4. [`handle`]: one delivery → [`alert`] parsed → référents resolved →
//!    [`email`] rendered → [`mailer`] sends → one [`handle::Outcome`];
//! 5. [`outcome`]: the outcome becomes broker actions: dead letters published
//!    with confirms, then the ack.
//!
//! Two failures matter above all: an alert lost, and an alert sent to the
//! wrong person or in clear. Every module's documentation says how it
//! guards against them.

pub mod broker;
pub mod cli;
pub mod commands;
pub mod consumer;
pub mod dead_letters;
pub mod email;
pub mod handle;
pub mod health;
pub mod http;
pub mod mailer;
pub mod memory;
pub mod metrics;
pub mod outcome;
pub mod settings;
pub mod smtp;
pub mod store;
pub mod telemetry;
pub mod topology;

pub use relais_core::{alert, registry, territory};

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use arc_swap::ArcSwap;
use sd_notify::NotifyState;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::email::Renderer;
use crate::handle::{Relay, SharedRegistry};
use crate::health::Health;
use crate::mailer::Mailer;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::settings::Settings;
use crate::store::Store;
use crate::telemetry::events::Events;
use crate::topology::Topology;

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
    let metrics = Arc::new(Metrics::new());
    let events = Events::new(metrics.clone());
    let health = Arc::new(Health::default());

    let registry_path = settings.registry.path.clone();
    let registry = Registry::load(&registry_path)?;
    tracing::info!(
        registry = %registry_path.display(),
        referents = registry.referents().len(),
        "registry loaded"
    );
    registry_loaded(&metrics, &registry);
    memory::return_freed();
    health.registry_loaded();
    let store = Store::open(&settings.store.path)?;
    let sender = settings.smtp.sender().map_err(anyhow::Error::msg)?;
    let relay = Arc::new(Relay::new(
        Arc::new(ArcSwap::from_pointee(registry)),
        Renderer::new(sender, settings.email.include_patient)?,
        Mailer::new(&settings.smtp, health.clone())?,
        store.clone(),
        (&settings.retry).into(),
        settings.amqp.max_message_bytes,
        events.clone(),
    ));

    let stop = CancellationToken::new();
    if !settings.http.listen.is_empty() {
        let listener = tokio::net::TcpListener::bind(&settings.http.listen)
            .await
            .with_context(|| format!("cannot listen on http.listen {}", settings.http.listen))?;
        tracing::info!(listen = %settings.http.listen, "serving /metrics, /healthz, /readyz");
        let serving = http::serve(listener, metrics.clone(), health.clone(), stop.clone());
        tokio::spawn(async move {
            if let Err(error) = serving.await {
                tracing::error!(%error, "the HTTP endpoint stopped");
            }
        });
        tokio::spawn(poll_queues(settings.clone(), metrics.clone(), stop.clone()));
    }
    tokio::spawn(prune(store, settings.store.retention, stop.clone()));
    let consumer = consumer::consume(
        &settings,
        relay.clone(),
        events,
        health.clone(),
        stop.clone(),
    );
    tokio::pin!(consumer);
    tokio::pin!(shutdown);

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
                reload(relay.registry(), &registry_path, &metrics);
                systemd::notify(&[NotifyState::Ready]);
            }
            _ = beat.tick() => {
                health.beat();
                systemd::notify(&[NotifyState::Watchdog]);
            }
        }
    }
    stop.cancel();
    tracing::info!("stopped");
    Ok(())
}

fn registry_loaded(metrics: &Metrics, registry: &Registry) {
    metrics
        .registry_referents
        .set(i64::try_from(registry.referents().len()).unwrap_or(i64::MAX));
    metrics.registry_reload_success.set(metrics::now_seconds());
}

/// Replaces the registry with the file's current content if, and only if,
/// it is valid; alerts in flight finish with the registry they started with.
fn reload(registry: &SharedRegistry, path: &Path, metrics: &Metrics) {
    match Registry::load(path) {
        Ok(new) => {
            let referents = new.referents().len();
            registry_loaded(metrics, &new);
            registry.store(Arc::new(new));
            // What alerts in flight still hold of the old registry is given
            // back at a later reload.
            memory::return_freed();
            tracing::info!(registry = %path.display(), referents, "registry reloaded");
        }
        Err(error) => {
            metrics.registry_reload_failures.inc();
            metrics.registry_reload_failure.set(metrics::now_seconds());
            let error = telemetry::one_line(&error);
            tracing::error!(%error, "registry reload refused; the registry in force stays");
        }
    }
}

/// Reads the queues' depths from the broker every `http.queue_poll`, on a
/// connection of its own, for `/metrics`.
async fn poll_queues(settings: Settings, metrics: Arc<Metrics>, stop: CancellationToken) {
    let topology = Topology::new(&settings);
    let mut connection: Option<lapin::Connection> = None;
    loop {
        if connection.as_ref().is_none_or(|c| !c.status().connected()) {
            connection = broker::connect(&settings.amqp, "relais (queue poll)")
                .await
                .ok();
        }
        if let Some(open) = &connection {
            match topology.inspect(open).await {
                Ok(queues) => {
                    for queue in queues {
                        let label = metrics::QueueLabel { queue: queue.name };
                        let messages = queue.messages.map_or(0, i64::from);
                        let consumers = queue.consumers.map_or(0, i64::from);
                        metrics.queue_messages.get_or_create(&label).set(messages);
                        metrics.queue_consumers.get_or_create(&label).set(consumers);
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

/// Forgets deliveries older than `retention`, now and then.
async fn prune(store: Store, retention: Duration, stop: CancellationToken) {
    let every = PRUNE_EVERY.min(retention / 10).max(Duration::from_secs(1));
    loop {
        let before = OffsetDateTime::now_utc() - retention;
        match store.prune(before).await {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(pruned, "store pruned"),
            Err(error) => tracing::warn!(%error, "cannot prune the store"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}
